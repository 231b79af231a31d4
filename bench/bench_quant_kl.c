/*  bench_quant_kl.c: how far quantized copies of a model are from it.
 *
 *  usage: bench_quant_kl REF.gguf TEXT MODEL.gguf...
 *
 *  TEXT is tokenized with REF's vocabulary and run in chunks of 128 tokens
 *  (BOS first where the vocabulary has one, empty KV cache per chunk)
 *  through REF and through each MODEL (same vocabulary). At every position,
 *  with p = softmax(REF logits) and q = softmax(MODEL logits):
 *    KL(p || q) = sum_v p_v (log p_v - log q_v)   (nats; mean and max over positions)
 *    top-1: argmax p == argmax q                  (share of positions)
 *  One line per MODEL: file, tensor bytes, mean KL, max KL, top-1 %.
 *  Numbers only; the thresholds are for the reader.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_gguf.h"
#include "sw_model.h"
#include "sw_tokenizer.h"

#define S_CTX 128

/*  logits (n_ids + chunks, n_vocab): every position of every chunk. Returns
 *  the number of positions, or -1. */
static int64_t s_logits(const char *path, const int32_t *ids, int64_t n_ids, int32_t bos, float **out, int32_t *n_vocab,
                        size_t *bytes)
{
    char err[512];
    sw_model_parts_t parts = sw_model_parts_all();
    sw_model_t *m = sw_model_load(path, &parts, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    const sw_hparams_t *hp = sw_model_hparams(m);
    *n_vocab = hp->n_vocab;
    *bytes = 0;
    const sw_gguf_t *g = sw_model_gguf(m);
    for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++)
        *bytes += sw_gguf_tensor(g, i)->nbytes;
    const int64_t per = bos >= 0 ? S_CTX - 1 : S_CTX;
    const int64_t n_chunks = (n_ids + per - 1) / per;
    const int64_t n_pos = n_ids + (bos >= 0 ? n_chunks : 0);
    float *lg = malloc(sizeof(float) * (size_t) n_pos * (size_t) hp->n_vocab);
    float *hid = malloc(sizeof(float) * S_CTX * (size_t) hp->n_embd);
    sw_exec_t *ex = sw_exec_new(2);
    sw_kv_t *kv = sw_kv_new(m, 0, hp->n_layer, S_CTX);
    int64_t pos = 0;
    int rc = lg && hid && ex && kv ? 0 : -1;
    for (int64_t at = 0; at < n_ids && rc == 0; at += per) {
        int32_t chunk[S_CTX], n = 0;
        if (bos >= 0)
            chunk[n++] = bos;
        for (int64_t i = at; i < n_ids && i < at + per; i++)
            chunk[n++] = ids[i];
        sw_seq_t s = {.kv = kv, .pos = 0, .n_tok = n, .hidden = hid};
        rc = sw_model_embed(m, chunk, n, hid, err, sizeof err);
        rc = rc ? rc : sw_model_forward(ex, m, 0, hp->n_layer, &s, 1, err, sizeof err);
        rc = rc ? rc : sw_model_head(ex, m, hid, n, lg + (size_t) pos * (size_t) hp->n_vocab, err, sizeof err);
        pos += n;
    }
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", path, err);
    free(hid);
    sw_kv_destroy(&kv);
    sw_exec_destroy(&ex);
    sw_model_destroy(&m);
    if (rc != 0) {
        free(lg);
        return -1;
    }
    *out = lg;
    return pos;
}

static void s_log_softmax(const float *l, int32_t n, double *out)
{
    double mx = l[0], sum = 0;
    for (int32_t i = 1; i < n; i++)
        mx = fmax(mx, l[i]);
    for (int32_t i = 0; i < n; i++)
        sum += exp(l[i] - mx);
    const double lse = mx + log(sum);
    for (int32_t i = 0; i < n; i++)
        out[i] = l[i] - lse;
}

static int32_t s_argmax(const float *l, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_quant_kl REF.gguf TEXT MODEL.gguf...\n");
        return 2;
    }
    char err[512];
    FILE *f = fopen(argv[2], "rb");
    static char text[1 << 20];
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    sw_gguf_t *g = sw_gguf_open(argv[1], err, sizeof err);
    sw_tokenizer_t *tok = g ? sw_tokenizer_from_gguf(g, err, sizeof err) : NULL;
    if (!len || !tok) {
        fprintf(stderr, "cannot read %s or the vocabulary of %s: %s\n", argv[2], argv[1], err);
        return 1;
    }
    const int64_t n_ids = sw_tokenizer_encode(tok, text, len, false, NULL, 0);
    int32_t *ids = n_ids > 0 ? malloc(sizeof(int32_t) * (size_t) n_ids) : NULL;
    if (!ids || sw_tokenizer_encode(tok, text, len, false, ids, n_ids) != n_ids)
        return 1;
    const int32_t bos = sw_tokenizer_bos(tok);
    sw_tokenizer_destroy(&tok);
    sw_gguf_destroy(&g);

    float *ref = NULL;
    int32_t nv = 0;
    size_t ref_bytes = 0;
    const int64_t n_pos = s_logits(argv[1], ids, n_ids, bos, &ref, &nv, &ref_bytes);
    if (n_pos < 0)
        return 1;
    printf("reference %s: %lld positions, %.1f KiB of tensors\n", argv[1], (long long) n_pos, ref_bytes / 1024.0);
    printf("%-40s %10s %10s %10s %8s\n", "model", "KiB", "mean KL", "max KL", "top-1");
    double *lp = malloc(sizeof(double) * (size_t) nv), *lq = malloc(sizeof(double) * (size_t) nv);
    int rc = 0;
    for (int a = 3; a < argc; a++) {
        float *q = NULL;
        int32_t nv2 = 0;
        size_t bytes = 0;
        if (s_logits(argv[a], ids, n_ids, bos, &q, &nv2, &bytes) != n_pos || nv2 != nv) {
            fprintf(stderr, "%s: cannot compare\n", argv[a]);
            free(q);
            rc = 1;
            continue;
        }
        double kl_sum = 0, kl_max = 0;
        int64_t agree = 0;
        for (int64_t p = 0; p < n_pos; p++) {
            const float *lr = ref + (size_t) p * (size_t) nv, *lm = q + (size_t) p * (size_t) nv;
            s_log_softmax(lr, nv, lp);
            s_log_softmax(lm, nv, lq);
            double kl = 0;
            for (int32_t i = 0; i < nv; i++)
                kl += exp(lp[i]) * (lp[i] - lq[i]);
            kl_sum += kl;
            kl_max = fmax(kl_max, kl);
            agree += s_argmax(lr, nv) == s_argmax(lm, nv);
        }
        const char *name = strrchr(argv[a], '/');
        printf("%-40s %10.1f %10.5f %10.5f %7.1f%%\n", name ? name + 1 : argv[a], bytes / 1024.0, kl_sum / (double) n_pos,
               kl_max, 100.0 * (double) agree / (double) n_pos);
        fflush(stdout);
        free(q);
    }
    free(lp);
    free(lq);
    free(ref);
    free(ids);
    return rc;
}
