/*  bench_layers.c: what one transformer block costs, as a stage runs it.
 *
 *  Loads only the blocks of a GGUF file (no embeddings, no head: what a
 *  stage holds), then times sw_model_forward on random hidden states:
 *  prefill of --prompt tokens at position 0, and decode, one token at a time
 *  at positions prompt, prompt + 1, ... (a KV cache as in a session). Best of
 *  --repeat runs. Prints per block: the bytes it holds in the file, the bytes
 *  one decode step reads (a MoE block: attention, router and only the
 *  experts chosen, expert_used_count of expert_count), prefill ms, decode ms
 *  per token, and decode GB/s = bytes read / time; and the machine's memory
 *  read bandwidth measured in the same run (every thread summing its share
 *  of a 1 GiB buffer, best of 5), the limit decode of large blocks runs into.
 *  Numbers only; nothing fails on a timing.
 *
 *  usage: bench_layers MODEL.gguf [--threads N] [--prompt 128] [--decode 32] [--repeat 5]
 *  Files of published shapes: `swisd synth SHAPE TYPE OUT.gguf --layers 2`.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_model.h"
#include "sw_opt.h"

typedef struct {
    const float *buf; /* n floats */
    size_t n;
    double sums[256]; /* per thread, so the reads are not optimized away */
} s_bw_job_t;

static void s_bw_worker(void *arg, int ith, int nth)
{
    s_bw_job_t *J = arg;
    const size_t lo = J->n * (size_t) ith / (size_t) nth, hi = J->n * (size_t) (ith + 1) / (size_t) nth;
    float acc[16] = {0};
    for (size_t i = lo; i + 16 <= hi; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += J->buf[i + j];
    double s = 0;
    for (int j = 0; j < 16; j++)
        s += acc[j];
    J->sums[ith] = s;
}

/* Best read bandwidth in GB/s over 5 passes of a 1 GiB buffer. */
static double s_read_bandwidth(sw_pool_t *pool)
{
    const size_t n = (size_t) 1 << 28; /* floats: 1 GiB */
    float *buf = malloc(n * sizeof(float));
    if (!buf)
        return NAN;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float) (i & 1023);
    s_bw_job_t job = {.buf = buf, .n = n};
    double best = 0;
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = sw_now_ns();
        sw_pool_run(pool, s_bw_worker, &job);
        double gbs = (double) (n * sizeof(float)) / (double) (sw_now_ns() - t0);
        best = gbs > best ? gbs : best;
    }
    free(buf);
    return best;
}

/* Bytes of blocks [a, b) in the file, and those one decode step reads. */
static void s_block_bytes(const sw_model_t *m, int32_t a, int32_t b, double *total, double *active)
{
    const sw_gguf_t *g = sw_model_gguf(m);
    const sw_hparams_t *hp = sw_model_hparams(m);
    *total = *active = 0;
    for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        int blk = -1;
        if (sscanf(t->name, "blk.%d.", &blk) != 1 || blk < a || blk >= b)
            continue;
        *total += (double) t->nbytes;
        const bool expert = strstr(t->name, "_exps.") != NULL && hp->n_expert > 0;
        *active += expert ? (double) t->nbytes * hp->n_expert_used / hp->n_expert : (double) t->nbytes;
    }
}

int main(int argc, char **argv)
{
    int64_t n_threads = sw_opt_default_threads(), n_prompt = 128, n_decode = 32, repeat = 5;
    static const struct option opts[] = {
        {"threads", required_argument, 0, 't'}, {"prompt", required_argument, 0, 'p'},
        {"decode", required_argument, 0, 'd'}, {"repeat", required_argument, 0, 'r'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        switch (c) {
        case 't': if (sw_opt_i64("--threads", optarg, 1, 256, &n_threads)) return 2; break;
        case 'p': if (sw_opt_i64("--prompt", optarg, 1, 4096, &n_prompt)) return 2; break;
        case 'd': if (sw_opt_i64("--decode", optarg, 1, 4096, &n_decode)) return 2; break;
        case 'r': if (sw_opt_i64("--repeat", optarg, 1, 100, &repeat)) return 2; break;
        default: fprintf(stderr, "usage: bench_layers MODEL.gguf [--threads N] [--prompt N] [--decode N] [--repeat N]\n");
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: bench_layers MODEL.gguf [--threads N] [--prompt N] [--decode N] [--repeat N]\n");
        return 2;
    }
    char err[512];
    sw_model_parts_t parts = {.layer_begin = 0, .layer_end = -1, .embed = false, .head = false};
    sw_model_t *m = sw_model_load(argv[optind], &parts, err, sizeof err);
    if (!m) {
        fprintf(stderr, "bench_layers: %s: %s\n", argv[optind], err);
        return 1;
    }
    const sw_hparams_t *hp = sw_model_hparams(m);
    const int32_t L = hp->n_layer, n_ctx = (int32_t) (n_prompt + n_decode);
    sw_exec_t *ex = sw_exec_new((int) n_threads);
    sw_kv_t *kv = sw_kv_new(m, 0, L, n_ctx);
    float *x0 = malloc(sizeof(float) * (size_t) (n_prompt * hp->n_embd));
    float *x = malloc(sizeof(float) * (size_t) (n_prompt * hp->n_embd));
    if (!ex || !kv || !x0 || !x) {
        fprintf(stderr, "bench_layers: out of memory\n");
        return 1;
    }
    uint64_t st = 1;
    for (int64_t i = 0; i < n_prompt * hp->n_embd; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        x0[i] = (float) ((double) (st >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    double best_prefill = INFINITY, best_decode = INFINITY;
    for (int64_t r = 0; r < repeat; r++) {
        memcpy(x, x0, sizeof(float) * (size_t) (n_prompt * hp->n_embd));
        sw_seq_t s = {.kv = kv, .pos = 0, .n_tok = (int32_t) n_prompt, .hidden = x};
        uint64_t t0 = sw_now_ns();
        if (sw_model_forward(ex, m, 0, L, &s, 1, err, sizeof err) != 0) {
            fprintf(stderr, "bench_layers: %s\n", err);
            return 1;
        }
        double ms = (double) (sw_now_ns() - t0) / 1e6;
        best_prefill = ms < best_prefill ? ms : best_prefill;
        t0 = sw_now_ns();
        for (int64_t d = 0; d < n_decode; d++) {
            memcpy(x, x0 + d * hp->n_embd, sizeof(float) * (size_t) hp->n_embd);
            s = (sw_seq_t){.kv = kv, .pos = (int32_t) (n_prompt + d), .n_tok = 1, .hidden = x};
            if (sw_model_forward(ex, m, 0, L, &s, 1, err, sizeof err) != 0) {
                fprintf(stderr, "bench_layers: %s\n", err);
                return 1;
            }
        }
        ms = (double) (sw_now_ns() - t0) / 1e6 / (double) n_decode;
        best_decode = ms < best_decode ? ms : best_decode;
    }
    double total, active;
    s_block_bytes(m, 0, L, &total, &active);
    const double bw = s_read_bandwidth(sw_exec_pool(ex));
    printf("| %s | %s | %.1f | %.1f | %.2f | %.3f | %.1f | %.1f |\n", argv[optind], hp->arch_name, total / L / 1e6,
           active / L / 1e6, best_prefill / L, best_decode / L, active / L / (best_decode / L * 1e6), bw);
    fprintf(stderr,
            "bench_layers: %d blocks, %lld threads, kernels %s; columns: file | arch | MB per block | MB read per "
            "decode step | prefill ms per block (%lld tokens) | decode ms per block per token | decode GB/s | "
            "memory read GB/s\n",
            (int) L, (long long) n_threads, sw_matmul_kernel_name(), (long long) n_prompt);
    free(x0);
    free(x);
    sw_kv_destroy(&kv);
    sw_exec_destroy(&ex);
    sw_model_destroy(&m);
    return 0;
}
