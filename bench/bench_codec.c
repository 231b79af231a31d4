/*  bench_codec.c: what each activation codec costs and loses.
 *
 *  Part 1 (size, speed): bytes per token per hop for n_embd 64, 2048 and 4096
 *  with every codec, with and without zstd, and encode / decode throughput in
 *  GB/s of f32 input. Input: hidden states from a real forward pass when a
 *  model of that width is given (--model), else synthetic rows: Gaussian
 *  values with a few large outlier channels, as LLM residual streams have
 *  (Dettmers et al. 2022).
 *
 *  Part 2 (quality): stories260K split into three layer ranges [0,2) [2,4)
 *  [4,5) in one process, the hidden state passed through the codec at both
 *  boundaries; greedy decoding of 100 tokens for each prompt of the
 *  reference file. Reports the share of positions whose greedy token equals
 *  the f32 path's (teacher-forced on the f32 path's tokens, so one early
 *  difference does not count twice), and the max / mean absolute logit error.
 *
 *  usage: bench_codec [--model stories260K.gguf] [--refs refs.tsv] [--seconds S]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_codec.h"
#include "sw_common.h"
#include "sw_model.h"
#include "sw_tokenizer.h"

static const char *s_specs[] = {"f32", "f16", "bf16", "q8_0", "q4_0",
                                "f32+zstd3", "f16+zstd3", "bf16+zstd3", "q8_0+zstd3", "q4_0+zstd3"};
#define N_SPECS (sizeof s_specs / sizeof s_specs[0])

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;
static double s_gauss(void)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        s_rng ^= s_rng << 13; s_rng ^= s_rng >> 7; s_rng ^= s_rng << 17;
        u[i] = ((s_rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    }
    return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

static void s_size_speed(int n_embd, double seconds)
{
    const int n_tok = 1;       /* a decode step */
    const int n_big = 128;     /* a prefill, for throughput */
    float *x = malloc(sizeof(float) * n_big * n_embd), *y = malloc(sizeof(float) * n_big * n_embd);
    for (int i = 0; i < n_big * n_embd; i++) {
        int ch = i % n_embd;
        x[i] = (float) (s_gauss() * ((ch % 97 == 5) ? 20.0 : 1.0));
    }
    for (size_t s = 0; s < N_SPECS; s++) {
        sw_codec_config_t cfg;
        sw_codec_config_parse(s_specs[s], &cfg);
        sw_codec_t *c = sw_codec_new(&cfg, n_embd, n_big);
        if (!c) {
            printf("| %d | %s | n/a | | |\n", n_embd, s_specs[s]);
            continue;
        }
        sw_codec_header_t h;
        const void *p;
        size_t len = 0, total = 0;
        char err[256];
        /* bytes per token: average over 64 single-token frames */
        for (int r = 0; r < 64; r++) {
            sw_codec_encode(c, x + (size_t) (r % n_big) * n_embd, n_tok, &h, &p, &len, err, sizeof err);
            total += len;
        }
        double bytes_per_token = total / 64.0;
        /* throughput on 128-token frames */
        uint64_t t0 = sw_now_ns();
        int reps = 0;
        while (sw_now_ns() - t0 < seconds * 1e9 / 2) {
            sw_codec_encode(c, x, n_big, &h, &p, &len, err, sizeof err);
            reps++;
        }
        double enc = (double) reps * n_big * n_embd * 4 / ((sw_now_ns() - t0) / 1e9) / 1e9;
        void *copy = malloc(len);
        memcpy(copy, p, len);
        t0 = sw_now_ns();
        int dreps = 0;
        while (sw_now_ns() - t0 < seconds * 1e9 / 2) {
            if (sw_codec_decode(c, &h, copy, len, y, err, sizeof err) != 0) {
                fprintf(stderr, "decode failed: %s\n", err);
                break;
            }
            dreps++;
        }
        double dec = (double) dreps * n_big * n_embd * 4 / ((sw_now_ns() - t0) / 1e9) / 1e9;
        printf("| %d | %s | %.0f | %.3f | %.2f | %.2f |\n", n_embd, s_specs[s], bytes_per_token,
               bytes_per_token / n_embd, enc, dec);
        free(copy);
        sw_codec_destroy(&c);
    }
    free(x);
    free(y);
}

/* Logits of one step through [0,2) -> codec -> [2,4) -> codec -> [4,5). */
typedef struct {
    sw_kv_t *kv[3];
    sw_codec_t *tx, *rx;
} s_pipe_t;

static int s_step(sw_exec_t *ex, const sw_model_t *m, s_pipe_t *P, const int32_t *tok, int n, int pos, float *logits,
                  int b1, int b2)
{
    const sw_hparams_t *hp = sw_model_hparams(m);
    float *h = malloc(sizeof(float) * n * hp->n_embd);
    char err[256];
    int bounds[4] = {0, b1, b2, hp->n_layer};
    int rc = sw_model_embed(m, tok, n, h, err, sizeof err);
    for (int s = 0; s < 3 && rc == 0; s++) {
        if (s > 0 && P->tx) {
            sw_codec_header_t hd;
            const void *p;
            size_t len;
            rc = sw_codec_encode(P->tx, h, n, &hd, &p, &len, err, sizeof err) ||
                 sw_codec_decode(P->rx, &hd, p, len, h, err, sizeof err);
        }
        sw_seq_t sq = {.kv = P->kv[s], .pos = pos, .n_tok = n, .hidden = h};
        rc = rc || sw_model_forward(ex, m, bounds[s], bounds[s + 1], &sq, 1, err, sizeof err);
    }
    rc = rc || sw_model_head(ex, m, h + (size_t) (n - 1) * hp->n_embd, 1, logits, err, sizeof err);
    if (rc)
        fprintf(stderr, "step failed: %s\n", err);
    free(h);
    return rc;
}

static int s_argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void s_quality(const char *model_path, const char *refs_path)
{
    char err[256];
    sw_model_t *m = sw_model_load(model_path, NULL, err, sizeof err);
    sw_tokenizer_t *tok = m ? sw_tokenizer_from_gguf(sw_model_gguf(m), err, sizeof err) : NULL;
    FILE *f = fopen(refs_path, "r");
    if (!m || !tok || !f) {
        fprintf(stderr, "quality: cannot load %s / %s: %s\n", model_path, refs_path, err);
        return;
    }
    char *prompts[64];
    int n_prompts = 0;
    char line[8192];
    while (fgets(line, sizeof line, f) && n_prompts < 64) {
        if (line[0] == '#' || !strchr(line, '\t')) continue;
        *strchr(line, '\t') = 0;
        prompts[n_prompts++] = strdup(line);
    }
    fclose(f);
    const sw_hparams_t *hp = sw_model_hparams(m);
    const int V = hp->n_vocab, steps = 100, b1 = hp->n_layer * 2 / 5, b2 = hp->n_layer * 4 / 5;
    sw_exec_t *ex = sw_exec_new(1);
    printf("\n| codec | greedy agreement | max abs logit error | mean abs logit error |\n|---|---|---|---|\n");
    for (size_t s = 0; s < N_SPECS; s++) {
        sw_codec_config_t cfg;
        sw_codec_config_parse(s_specs[s], &cfg);
        long agree = 0, total = 0;
        double max_err = 0, sum_err = 0;
        long n_err = 0;
        for (int pi = 0; pi < n_prompts; pi++) {
            int32_t ids[1024];
            int64_t n = sw_tokenizer_encode(tok, prompts[pi], strlen(prompts[pi]), true, ids, 512);
            s_pipe_t ref = {0}, cod = {0};
            for (int k = 0; k < 3; k++) {
                int lo = k == 0 ? 0 : (k == 1 ? b1 : b2), hi = k == 0 ? b1 : (k == 1 ? b2 : hp->n_layer);
                ref.kv[k] = sw_kv_new(m, lo, hi, 1024);
                cod.kv[k] = sw_kv_new(m, lo, hi, 1024);
            }
            cod.tx = sw_codec_new(&cfg, hp->n_embd, 512);
            cod.rx = sw_codec_new(&cfg, hp->n_embd, 512);
            float *lr = malloc(sizeof(float) * V), *lc = malloc(sizeof(float) * V);
            int pos = 0, cnt = (int) n;
            int32_t *cur = ids;
            for (int t = 0; t < steps; t++) {
                if (s_step(ex, m, &ref, cur, cnt, pos, lr, b1, b2) || s_step(ex, m, &cod, cur, cnt, pos, lc, b1, b2))
                    break;
                for (int i = 0; i < V; i++) {
                    double d = fabs((double) lr[i] - lc[i]);
                    if (d > max_err) max_err = d;
                    sum_err += d;
                    n_err++;
                }
                int next = s_argmax(lr, V); /* teacher-forced on the f32 path */
                agree += next == s_argmax(lc, V);
                total++;
                pos += cnt;
                ids[pos] = next;
                cur = &ids[pos];
                cnt = 1;
            }
            free(lr); free(lc);
            for (int k = 0; k < 3; k++) { sw_kv_destroy(&ref.kv[k]); sw_kv_destroy(&cod.kv[k]); }
            sw_codec_destroy(&cod.tx);
            sw_codec_destroy(&cod.rx);
        }
        printf("| %s | %.2f%% (%ld/%ld) | %.4g | %.4g |\n", s_specs[s], 100.0 * agree / (total ? total : 1), agree,
               total, max_err, sum_err / (n_err ? n_err : 1));
    }
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    sw_exec_destroy(&ex);
    sw_tokenizer_destroy(&tok);
    sw_model_destroy(&m);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *refs = NULL;
    double seconds = 0.5;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"refs", required_argument, 0, 'r'},
                                         {"seconds", required_argument, 0, 's'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'm') model = optarg;
        else if (c == 'r') refs = optarg;
        else if (c == 's') seconds = atof(optarg);
        else return 2;
    }
    printf("| n_embd | codec | bytes/token/hop | bytes/element | encode GB/s | decode GB/s |\n|---|---|---|---|---|---|\n");
    const int embds[] = {64, 2048, 4096};
    for (int i = 0; i < 3; i++)
        s_size_speed(embds[i], seconds);
    if (model && refs)
        s_quality(model, refs);
    return 0;
}
