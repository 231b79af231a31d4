/*  bench_seal.c: what sealing a forward body costs (identity/sw_seal).
 *
 *  For activation bodies of rows x n_embd f32 (decode steps of 1 row, a prefill
 *  of 512 rows) it times sw_seal_close (nonce derivation + XSalsa20-Poly1305)
 *  and sw_seal_open separately, and prints per-message time in microseconds
 *  and throughput in MB/s (10^6 bytes of plaintext per second), plus the one-off
 *  cost of sw_seal_new (X25519 + HSalsa20: crypto_box_beforenm) per peer pair.
 *  Single thread. Prints a Markdown table; never fails on a timing.
 *
 *  usage: bench_seal [--seconds S]   (S: time per measurement, default 0.5)
 */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_seal.h"

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    double seconds = 0.5;
    static const struct option opts[] = {{"seconds", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
        if (c == 's')
            seconds = atof(optarg);
        else {
            fprintf(stderr, "usage: bench_seal [--seconds S]\n");
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 60)
        seconds = 0.5;
    if (sodium_init() < 0)
        return 1;
    uint8_t gp[32], gs[32], sp[32], ss[32];
    crypto_box_keypair(gp, gs);
    crypto_box_keypair(sp, ss);

    /* one-off: the shared key of a pair */
    int n_new = 0;
    double t0 = s_now(), t;
    do {
        sw_seal_t *x = sw_seal_new(gs, sp);
        sw_seal_destroy(&x);
        n_new++;
    } while ((t = s_now()) - t0 < seconds);
    printf("sw_seal_new (crypto_box_beforenm): %.1f us per peer pair\n\n", (t - t0) * 1e6 / n_new);

    sw_seal_t *g = sw_seal_new(gs, sp), *s = sw_seal_new(ss, gp);
    if (!g || !s)
        return 1;
    static const struct { int rows, n_embd; const char *what; } shapes[] = {
        {1, 288, "decode, stories15M width"},
        {1, 2048, "decode, 1 row x 2048 f32"},
        {1, 4096, "decode, 1 row x 4096 f32"},
        {512, 2048, "prefill, 512 rows x 2048 f32"},
    };
    printf("| body | bytes | seal us | seal MB/s | open us | open MB/s |\n|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t n = (size_t) shapes[i].rows * (size_t) shapes[i].n_embd * sizeof(float);
        uint8_t *plain = malloc(n), *box = malloc(n + SW_SEAL_MAC_BYTES), *out = malloc(n);
        if (!plain || !box || !out)
            return 1;
        randombytes_buf(plain, n);
        sw_seal_ctx_t ctx = {.dir = SW_SEAL_TO_STAGE, .session_id = "bench-session", .session_len = 13,
                             .request_id = 1, .pos = 0, .n_rows = (uint32_t) shapes[i].rows, .hop = 0};
        size_t blen = 0, olen = 0;
        long iters = 0;
        t0 = s_now();
        do {
            ctx.request_id++;
            if (sw_seal_close(g, &ctx, plain, n, box, n + SW_SEAL_MAC_BYTES, &blen) != 0)
                return 1;
            iters++;
        } while ((t = s_now()) - t0 < seconds);
        double seal_s = (t - t0) / (double) iters;
        iters = 0;
        t0 = s_now();
        do {
            if (sw_seal_open(s, &ctx, box, blen, out, n, &olen) != 0 || olen != n)
                return 1;
            iters++;
        } while ((t = s_now()) - t0 < seconds);
        double open_s = (t - t0) / (double) iters;
        printf("| %s | %zu | %.1f | %.0f | %.1f | %.0f |\n", shapes[i].what, n, seal_s * 1e6, n / seal_s / 1e6,
               open_s * 1e6, n / open_s / 1e6);
        if (memcmp(out, plain, n) != 0)
            return 1;
        free(plain);
        free(box);
        free(out);
    }
    sw_seal_destroy(&g);
    sw_seal_destroy(&s);
    return 0;
}
