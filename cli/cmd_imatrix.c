/*  cmd_imatrix.c: `swisd imatrix MODEL --text FILE -o IMATRIX`: activation
 *  statistics for importance-weighted quantization (swisd quantize
 *  --imatrix).
 *
 *  The text is tokenized with the model's vocabulary and run through the
 *  model in chunks of --ctx tokens (each starting with BOS where the
 *  vocabulary has one, each with an empty KV cache). Every matrix product's
 *  input is seen (sw_matmul_set_observer); for each weight matrix W with
 *  rows of n_in, column i collects sum_t x_t[i]^2 over the tokens t that
 *  went through W. Output, a GGUF file:
 *    - one F32 tensor per weight matrix seen, named like the matrix, shape
 *      [n_in]: the mean squared activation of each input column;
 *    - imatrix.dataset (string, the text file), imatrix.n_tokens (u32),
 *      imatrix.chunk_size (u32).
 *  Token embeddings are a lookup, not a product: no entry for token_embd
 *  (unless it is also the tied output matrix).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_gguf.h"
#include "sw_matmul.h"
#include "sw_model.h"
#include "sw_tokenizer.h"
#include "swisd_cli.h"

#define S_MAX_TEXT (64u << 20)

typedef struct {
    const sw_gguf_tensor_t *t; /* the weight matrix (borrowed from the file) */
    double *sum;               /* (n_in) sum of squared inputs */
    int64_t n;                 /* tokens seen */
} s_stat_t;

typedef struct {
    s_stat_t *st;
    int64_t n_st;
} s_ctx_t;

static void s_observe(void *arg, const sw_weight_t *w, const float *x, int64_t n_tok)
{
    s_ctx_t *c = arg;
    const uint8_t *p = w->data;
    for (int64_t k = 0; k < c->n_st; k++) {
        const sw_gguf_tensor_t *t = c->st[k].t;
        const uint8_t *lo = t->data;
        if (p < lo || p >= lo + t->nbytes || t->ne[0] != w->n_in)
            continue;
        for (int64_t r = 0; r < n_tok; r++)
            for (int64_t i = 0; i < w->n_in; i++)
                c->st[k].sum[i] += (double) x[r * w->n_in + i] * x[r * w->n_in + i];
        c->st[k].n += n_tok;
        return;
    }
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd imatrix MODEL.gguf --text FILE -o IMATRIX.gguf [--ctx N] [-t THREADS]\n"
                 "  Runs FILE's text through the model in chunks of N tokens (default 128) and writes, for\n"
                 "  each weight matrix, the mean squared activation of each input column: the importance\n"
                 "  matrix for `swisd quantize ... --imatrix IMATRIX.gguf`.\n");
}

static char *s_read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && (unsigned long) n <= S_MAX_TEXT &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t) n + 1)) && fread(buf, 1, (size_t) n, f) == (size_t) n) {
        buf[n] = '\0';
        *len = (size_t) n;
    } else {
        free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

int swisd_cmd_imatrix(int argc, char **argv)
{
    static const struct option opts[] = {
        {"text", required_argument, NULL, 'x'}, {"output", required_argument, NULL, 'o'},
        {"ctx", required_argument, NULL, 'c'},  {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *text_path = NULL, *out_path = NULL;
    long ctx = 128, threads = 2;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "x:o:c:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'x': text_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'c': ctx = strtol(optarg, NULL, 10); break;
        case 't': threads = strtol(optarg, NULL, 10); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !text_path || !out_path || ctx < 2 || ctx > 8192 || threads < 1 || threads > 256) {
        s_usage(stderr);
        return 2;
    }
    const char *model_path = argv[optind];
    char err[512];
    int rc = 1;
    size_t text_len = 0;
    char *text = s_read_text(text_path, &text_len);
    sw_model_parts_t parts = sw_model_parts_all();
    sw_model_t *m = text ? sw_model_load(model_path, &parts, err, sizeof err) : NULL;
    sw_tokenizer_t *tok = m ? sw_tokenizer_from_gguf(sw_model_gguf(m), err, sizeof err) : NULL;
    sw_exec_t *ex = NULL;
    sw_kv_t *kv = NULL;
    int32_t *ids = NULL;
    float *hid = NULL, *logits = NULL;
    s_ctx_t sc = {0};
    sw_gguf_writer_t *w = NULL;
    if (!text) {
        fprintf(stderr, "swisd imatrix: cannot read %s (or it is over %u MiB)\n", text_path, S_MAX_TEXT >> 20);
        goto done;
    }
    if (!m || !tok) {
        fprintf(stderr, "swisd imatrix: %s: %s\n", model_path, err);
        goto done;
    }
    const sw_hparams_t *hp = sw_model_hparams(m);
    int64_t n_ids = sw_tokenizer_encode(tok, text, text_len, false, NULL, 0);
    if (n_ids <= 0 || !(ids = malloc(sizeof(int32_t) * (size_t) n_ids)) ||
        sw_tokenizer_encode(tok, text, text_len, false, ids, n_ids) != n_ids) {
        fprintf(stderr, "swisd imatrix: %s: no tokens (or out of memory)\n", text_path);
        goto done;
    }
    if (ctx > hp->n_ctx_train && hp->n_ctx_train > 1)
        ctx = hp->n_ctx_train;
    const sw_gguf_t *g = sw_model_gguf(m);
    sc.st = calloc((size_t) sw_gguf_n_tensors(g), sizeof(s_stat_t));
    if (!sc.st)
        goto oom;
    for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        if (t->n_dims < 2)
            continue;
        sc.st[sc.n_st].t = t;
        if (!(sc.st[sc.n_st].sum = calloc((size_t) t->ne[0], sizeof(double))))
            goto oom;
        sc.n_st++;
    }
    ex = sw_exec_new((int) threads);
    kv = sw_kv_new(m, 0, hp->n_layer, (int32_t) ctx);
    hid = malloc(sizeof(float) * (size_t) ctx * (size_t) hp->n_embd);
    logits = malloc(sizeof(float) * (size_t) hp->n_vocab);
    if (!ex || !kv || !hid || !logits)
        goto oom;
    sw_matmul_set_observer(s_observe, &sc);
    const int32_t bos = sw_tokenizer_bos(tok);
    const int64_t per = bos >= 0 ? ctx - 1 : ctx;
    int64_t n_tokens = 0, chunks = 0;
    int32_t *chunk = malloc(sizeof(int32_t) * (size_t) ctx);
    if (!chunk)
        goto oom;
    for (int64_t at = 0; at < n_ids; at += per) {
        int32_t n = 0;
        if (bos >= 0)
            chunk[n++] = bos;
        for (int64_t i = at; i < n_ids && i < at + per; i++)
            chunk[n++] = ids[i];
        sw_seq_t s = {.kv = kv, .pos = 0, .n_tok = n, .hidden = hid};
        if (sw_model_embed(m, chunk, n, hid, err, sizeof err) != 0 ||
            sw_model_forward(ex, m, 0, hp->n_layer, &s, 1, err, sizeof err) != 0 ||
            sw_model_head(ex, m, hid + (size_t) (n - 1) * (size_t) hp->n_embd, 1, logits, err, sizeof err) != 0) {
            fprintf(stderr, "swisd imatrix: forward: %s\n", err);
            free(chunk);
            sw_matmul_set_observer(NULL, NULL);
            goto done;
        }
        n_tokens += n;
        chunks++;
    }
    free(chunk);
    sw_matmul_set_observer(NULL, NULL);

    w = sw_gguf_writer_new();
    if (!w || sw_gguf_writer_set_str(w, "imatrix.dataset", text_path, strlen(text_path)) != 0 ||
        sw_gguf_writer_set_u32(w, "imatrix.n_tokens", (uint32_t) (n_tokens > UINT32_MAX ? UINT32_MAX : n_tokens)) != 0 ||
        sw_gguf_writer_set_u32(w, "imatrix.chunk_size", (uint32_t) ctx) != 0)
        goto oom;
    int written = 0;
    for (int64_t k = 0; k < sc.n_st; k++) {
        const s_stat_t *st = &sc.st[k];
        if (st->n == 0)
            continue;
        float *mean = malloc(sizeof(float) * (size_t) st->t->ne[0]);
        if (!mean)
            goto oom;
        for (int64_t i = 0; i < st->t->ne[0]; i++)
            mean[i] = (float) (st->sum[i] / (double) st->n);
        const int64_t ne[4] = {st->t->ne[0], 1, 1, 1};
        int bad = sw_gguf_writer_add_tensor(w, st->t->name, SW_DTYPE_F32, 1, ne, mean);
        free(mean);
        if (bad)
            goto oom;
        written++;
    }
    if (sw_gguf_writer_write(w, out_path, err, sizeof err) != 0) {
        fprintf(stderr, "swisd imatrix: %s: %s\n", out_path, err);
        goto done;
    }
    fprintf(stderr, "swisd imatrix: %lld tokens in %lld chunks of up to %ld: %d matrices -> %s\n",
            (long long) n_tokens, (long long) chunks, ctx, written, out_path);
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "swisd imatrix: out of memory\n");
done:
    for (int64_t k = 0; k < sc.n_st; k++)
        free(sc.st[k].sum);
    free(sc.st);
    sw_gguf_writer_destroy(&w);
    free(hid);
    free(logits);
    free(ids);
    sw_kv_destroy(&kv);
    sw_exec_destroy(&ex);
    sw_tokenizer_destroy(&tok);
    sw_model_destroy(&m);
    free(text);
    return rc;
}
