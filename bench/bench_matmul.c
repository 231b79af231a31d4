/*  bench_matmul.c: sw_matmul speed at TinyLlama-1.1B shapes.
 *
 *  usage: bench_matmul [types] [threads]     e.g. bench_matmul q8_0,q4_0 2
 *         bench_matmul [types] model         part 2 only
 *         bench_matmul [types] decode        part 3 only (no types: every quantized one)
 *
 *  Part 1, per shape (n_in x n_out) and type: n_tok 1 (decode) and 128
 *  (prefill), 1 and 2 threads. Enough weight copies are cycled that decode
 *  reads from DRAM, as in a real model. Prints GB/s of weights and GFLOP/s.
 *  Part 2, per type: a whole TinyLlama token (22 layers of wq, wk, wv, wo,
 *  w1, w3, w2 plus the 32000-row output; the q4_0 model's output is q6_K as
 *  llama.cpp quantizes it) with all weights resident: matmul-only tokens/s
 *  for decode and for a 128-token prefill. Random weights; numbers only.
 *  Part 3 (`decode`): per type and thread count, the machine's read
 *  bandwidth measured right before (the threads each summing their part of
 *  a 512 MiB buffer with 256-bit loads, best of 5), then a decode-shape
 *  product (n_tok 1, a
 *  4096 x 4096 matrix, copies cycled over 512 MiB so every byte comes from
 *  DRAM): GB/s of weights read and its share of the bandwidth. A matvec at
 *  100% would be limited by memory alone. Last column: the same kernel on
 *  1024 rows that stay in the L3 cache (best of 200), about its compute
 *  limit; a kernel can only reach the bandwidth if this is above it. Part 3
 *  first prints the time to quantize a 4096-element activation row to Q8_K
 *  (sw_quantize_row and the kernel set's own quantizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_dtype.h"
#include "sw_kernels_impl.h"
#include "sw_matmul.h"
#include "sw_pool.h"

static uint64_t s_rng = 88172645463325252ull;

static float rndf(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (float) ((double) (s_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/*  n_out rows of random data (a few distinct rows quantized, then copied). */
static void *make_weights(sw_dtype_t type, int64_t n_in, int64_t n_out)
{
    size_t rb = sw_dtype_row_size(type, n_in);
    uint8_t *w = sw_alloc_aligned(rb * (size_t) n_out);
    float *row = malloc(sizeof(float) * (size_t) n_in);
    if (!w || !row) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    const int distinct = 8;
    for (int r = 0; r < distinct && r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++)
            row[i] = rndf() * 0.05f;
        sw_quantize_row(type, row, w + (size_t) r * rb, n_in);
    }
    for (int64_t r = distinct; r < n_out; r++)
        memcpy(w + (size_t) r * rb, w + (size_t) (r % distinct) * rb, rb);
    free(row);
    return w;
}

typedef struct {
    sw_weight_t w;
    void *data;
} wt_t;

static void wt_make(wt_t *t, sw_dtype_t type, int64_t n_in, int64_t n_out)
{
    t->data = make_weights(type, n_in, n_out);
    if (sw_weight_init(&t->w, type, n_in, n_out, t->data) != 0) {
        fprintf(stderr, "sw_weight_init failed\n");
        exit(1);
    }
}

static void wt_free(wt_t *t)
{
    sw_weight_release(&t->w);
    sw_free(t->data);
}

static void bench_shape(sw_dtype_t type, int64_t n_in, int64_t n_out, sw_pool_t *pools[2])
{
    size_t bytes = sw_dtype_row_size(type, n_in) * (size_t) n_out;
    int copies = (int) ((256u << 20) / bytes) + 1;
    if (copies > 32)
        copies = 32;
    wt_t *ws = calloc((size_t) copies, sizeof(wt_t));
    for (int c = 0; c < copies; c++)
        wt_make(&ws[c], type, n_in, n_out);
    const int64_t max_tok = 128;
    float *x = malloc(sizeof(float) * (size_t) (n_in * max_tok));
    float *y = malloc(sizeof(float) * (size_t) (n_out * max_tok));
    for (int64_t i = 0; i < n_in * max_tok; i++)
        x[i] = rndf();
    for (int p = 0; p < 2; p++) {
        for (int64_t n_tok = 1; n_tok <= max_tok; n_tok *= 128) {
            /* warm up, then run for ~0.3 s */
            sw_matmul(pools[p], &ws[0].w, x, n_tok, y);
            int iters = 0;
            uint64_t t0 = sw_now_ns(), t1;
            do {
                sw_matmul(pools[p], &ws[iters % copies].w, x, n_tok, y);
                iters++;
                t1 = sw_now_ns();
            } while (t1 - t0 < 300000000ull || iters < 3);
            double s = (double) (t1 - t0) / 1e9 / iters;
            double flop = 2.0 * (double) n_in * (double) n_out * (double) n_tok;
            printf("%-5s %5lld x %5lld  n_tok %3lld  threads %d: %8.3f ms  %6.1f GB/s  %7.1f GFLOP/s\n",
                   sw_dtype_name(type), (long long) n_in, (long long) n_out, (long long) n_tok,
                   sw_pool_n_threads(pools[p]), s * 1e3, (double) bytes / s / 1e9, flop / s / 1e9);
        }
    }
    for (int c = 0; c < copies; c++)
        wt_free(&ws[c]);
    free(ws);
    free(x);
    free(y);
}

enum { L_Q, L_K, L_V, L_O, L_1, L_3, L_2, L_N };

static void bench_model(sw_dtype_t type, sw_pool_t *pool)
{
    const int n_layer = 22;
    const int64_t E = 2048, F = 5632, KV = 256, V = 32000;
    const int64_t shp[L_N][2] = { { E, E }, { E, KV }, { E, KV }, { E, E }, { E, F }, { E, F }, { F, E } };
    wt_t *L = calloc((size_t) n_layer * L_N, sizeof(wt_t));
    size_t total = 0;
    for (int l = 0; l < n_layer; l++)
        for (int k = 0; k < L_N; k++) {
            wt_make(&L[l * L_N + k], type, shp[k][0], shp[k][1]);
            total += L[l * L_N + k].w.row_bytes * (size_t) shp[k][1];
        }
    sw_dtype_t out_type = type == SW_DTYPE_Q4_0 ? SW_DTYPE_Q6_K : type;
    wt_t out;
    wt_make(&out, out_type, E, V);
    total += out.w.row_bytes * (size_t) V;

    const int64_t T = 128;
    float *x = malloc(sizeof(float) * (size_t) (F * T));
    float *y = malloc(sizeof(float) * (size_t) (V * T));
    for (int64_t i = 0; i < F * T; i++)
        x[i] = rndf();
    for (int pass = 0; pass < 2; pass++) {
        int64_t n_tok = pass == 0 ? 1 : T;
        int reps = pass == 0 ? 20 : 2;
        uint64_t best = UINT64_MAX;
        for (int r = 0; r < reps + 1; r++) {
            uint64_t t0 = sw_now_ns();
            for (int l = 0; l < n_layer; l++)
                for (int k = 0; k < L_N; k++)
                    sw_matmul(pool, &L[l * L_N + k].w, x, n_tok, y);
            /* logits: every token at decode, only the last one at prefill */
            sw_matmul(pool, &out.w, x, 1, y);
            uint64_t dt = sw_now_ns() - t0;
            if (r > 0 && dt < best)
                best = dt;
        }
        double s = (double) best / 1e9;
        printf("model %-5s (out %-4s) threads %d %-8s: %7.2f ms  %7.1f tok/s  (%.2f GB weights, %.1f GB/s)\n",
               sw_dtype_name(type), sw_dtype_name(out_type), sw_pool_n_threads(pool),
               pass == 0 ? "decode" : "prefill", s * 1e3, (double) n_tok / s, (double) total / 1e9,
               pass == 0 ? (double) total / s / 1e9 : 0.0);
    }
    for (int i = 0; i < n_layer * L_N; i++)
        wt_free(&L[i]);
    free(L);
    wt_free(&out);
    free(x);
    free(y);
}

/* ------------------------------------------------------------------------ */
/*  Part 3: decode matvec against the memory bandwidth                       */

#define S_BW_BYTES ((size_t) 512 << 20)

typedef struct {
    const uint64_t *buf;
    size_t n;          /* uint64 words */
    uint64_t sink[8];  /* per thread, keeps the sums alive */
} bw_job_t;

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t s_sum_words(const uint64_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *) (p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *) (p + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *) (p + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *) (p + i + 12)));
    }
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *) t, _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
    uint64_t s = t[0] + t[1] + t[2] + t[3];
    for (; i < n; i++)
        s += p[i];
    return s;
}
#else
static uint64_t s_sum_words(const uint64_t *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}
#endif

static void s_bw_job(void *arg, int ith, int nth)
{
    bw_job_t *j = arg;
    size_t lo = j->n * (size_t) ith / (size_t) nth & ~(size_t) 15;
    size_t hi = ith == nth - 1 ? j->n : (j->n * (size_t) (ith + 1) / (size_t) nth & ~(size_t) 15);
    j->sink[ith & 7] += s_sum_words(j->buf + lo, hi - lo);
}

/*  Read bandwidth in GB/s with the pool's threads (best of 5 passes). */
static double s_bandwidth(sw_pool_t *pool, const uint64_t *buf)
{
    bw_job_t j = { .buf = buf, .n = S_BW_BYTES / 8 };
    double best = 0;
    for (int r = 0; r < 6; r++) {
        uint64_t t0 = sw_now_ns();
        sw_pool_run(pool, s_bw_job, &j);
        double gbs = (double) S_BW_BYTES / ((double) (sw_now_ns() - t0) / 1e9) / 1e9;
        if (r > 0 && gbs > best)
            best = gbs;
    }
    if (j.sink[0] == 42)
        printf(" ");
    return best;
}

/*  Microseconds to quantize one 4096-element row to Q8_K (the activations
 *  of every 256-element type), best of 2000: sw_quantize_row (scalar) and
 *  the chosen kernel set's vector quantizer, which writes the same bytes. */
static void bench_quant_q8_K(const float *x)
{
    static sw_block_q8_K q[4096 / SW_QK_K];
    double best[2] = { 1e30, 1e30 };
    const sw__kernels_t *k = NULL;
#if defined(__x86_64__)
    if (strcmp(sw_matmul_kernel_name(), "avx512vnni") == 0)
        k = &sw__kernels_avx512;
    else if (strcmp(sw_matmul_kernel_name(), "avx2") == 0)
        k = &sw__kernels_avx2;
#endif
    for (int v = 0; v < 2; v++) {
        if (v == 1 && !(k && k->quant_q8_K))
            break;
        for (int r = 0; r < 2000; r++) {
            uint64_t t0 = sw_now_ns();
            if (v == 0)
                sw_quantize_row(SW_DTYPE_Q8_K, x, q, 4096);
            else
                k->quant_q8_K(x, q, 4096);
            double us = (double) (sw_now_ns() - t0) / 1e3;
            if (us < best[v])
                best[v] = us;
        }
    }
    printf("q8_K activations, 4096 elements: sw_quantize_row %.2f us", best[0]);
    if (best[1] < 1e30)
        printf(", %s quantizer %.2f us", k->name, best[1]);
    printf("\n");
}

static void bench_decode(const char *types_arg, sw_pool_t *pools[2])
{
    uint64_t *buf = sw_alloc_aligned(S_BW_BYTES);
    if (!buf) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < S_BW_BYTES / 8; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    const int64_t n_in = 4096, n_out = 4096;
    float x[4096], y[4096];
    for (int i = 0; i < 4096; i++)
        x[i] = rndf();
    bench_quant_q8_K(x);
    printf("%-7s %-11s %-8s %9s %9s %9s %8s %14s\n", "type", "shape", "threads", "ms", "GB/s", "bw GB/s", "of bw",
           "in-cache GB/s");
    char tb[256];
    snprintf(tb, sizeof tb, "%s", types_arg);
    for (char *save = NULL, *tok = strtok_r(tb, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        sw_dtype_t type;
        if (sw_dtype_from_name(tok, &type) != 0) {
            fprintf(stderr, "unknown type %s\n", tok);
            continue;
        }
        const size_t bytes = sw_dtype_row_size(type, n_in) * (size_t) n_out;
        int copies = (int) (S_BW_BYTES / bytes) + 1;
        wt_t *ws = calloc((size_t) copies, sizeof(wt_t));
        for (int c = 0; c < copies; c++)
            wt_make(&ws[c], type, n_in, n_out);
        for (int p = 0; p < 2; p++) {
            /* the bandwidth right before, with as many threads: the VM's
             * neighbours change it from minute to minute */
            const double bw = s_bandwidth(pools[p], buf);
            double best = 1e30, best_hot = 1e30;
            for (int r = 0; r < 5; r++) {
                uint64_t t0 = sw_now_ns();
                for (int c = 0; c < copies; c++)
                    sw_matmul(pools[p], &ws[c].w, x, 1, y);
                double s = (double) (sw_now_ns() - t0) / 1e9 / copies;
                if (s < best)
                    best = s;
            }
            /* in cache (L3): the first 1024 rows of one copy, again and again */
            sw_weight_t hot;
            if (sw_weight_init(&hot, type, n_in, 1024, ws[0].data) == 0) {
                for (int r = 0; r < 200; r++) {
                    uint64_t t0 = sw_now_ns();
                    sw_matmul(pools[p], &hot, x, 1, y);
                    double s = (double) (sw_now_ns() - t0) / 1e9;
                    if (r > 0 && s < best_hot)
                        best_hot = s;
                }
                sw_weight_release(&hot);
            }
            double gbs = (double) bytes / best / 1e9;
            double hot_gbs = (double) sw_dtype_row_size(type, n_in) * 1024.0 / best_hot / 1e9;
            printf("%-7s %5lldx%-5lld %-8d %9.3f %9.1f %9.1f %7.0f%% %14.1f\n", sw_dtype_name(type), (long long) n_in,
                   (long long) n_out, sw_pool_n_threads(pools[p]), best * 1e3, gbs, bw, 100.0 * gbs / bw, hot_gbs);
        }
        for (int c = 0; c < copies; c++)
            wt_free(&ws[c]);
        free(ws);
        fflush(stdout);
    }
    sw_free(buf);
}

int main(int argc, char **argv)
{
    const char *types_arg = argc > 1 ? argv[1] : "q8_0,q4_0,q4_K,q6_K,f16,f32";
    const int decode = (argc > 2 && strcmp(argv[2], "decode") == 0) || (argc == 2 && strcmp(argv[1], "decode") == 0);
    if (argc == 2 && decode) /* every quantized type */
        types_arg = "q4_K,q5_K,q6_K,q8_0,q4_0,q2_K,q3_K,iq4_xs,q4_1,q5_0,q5_1,iq4_nl";
    int only_model = argc > 2 && strcmp(argv[2], "model") == 0;
    printf("kernels: %s\n", sw_matmul_kernel_name());
    sw_pool_t *pools[2] = { sw_pool_new(1), sw_pool_new(2) };
    if (decode) {
        bench_decode(types_arg, pools);
        sw_pool_destroy(&pools[0]);
        sw_pool_destroy(&pools[1]);
        return 0;
    }
    const int64_t shapes[][2] = { { 2048, 2048 }, { 2048, 256 }, { 2048, 5632 }, { 5632, 2048 }, { 2048, 32000 } };
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", types_arg);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        sw_dtype_t type;
        if (sw_dtype_from_name(tok, &type) != 0) {
            fprintf(stderr, "unknown type %s\n", tok);
            continue;
        }
        if (!only_model)
            for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
                bench_shape(type, shapes[s][0], shapes[s][1], pools);
        if (type == SW_DTYPE_Q8_0 || type == SW_DTYPE_Q4_0 || only_model) {
            bench_model(type, pools[1]);
        }
        fflush(stdout);
    }
    sw_pool_destroy(&pools[0]);
    sw_pool_destroy(&pools[1]);
    return 0;
}
