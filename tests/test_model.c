/*  test_model.c: the forward pass against an independent naive reference.
 *
 *  The reference below is written from the equations (RMSNorm, RoPE, causal
 *  GQA attention, SwiGLU), in double precision, one token at a time, with
 *  weights dequantized to f32 up front. It shares no code with sw_model.c.
 *  Checked: prefill logits on the real stories260K; splitting the layers over
 *  several KV caches; several sequences in one call; KV truncation and
 *  rewrite; a qwen2-style model (NeoX RoPE, Q/K/V biases) written here with
 *  random weights; and clear errors for bad input.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_gguf.h"
#include "sw_model.h"
#include "sw_test.h"
#include "sw_test_data.h"

/* ---- naive reference ----------------------------------------------------- */

typedef struct {
    int dim, n_layer, n_head, n_kv, hd, ff, vocab, neox, has_bias;
    double eps, theta;
    float *embd, *out_norm, *out;                 /* out: (vocab, dim) */
    float **an, **fn, **wq, **wk, **wv, **wo, **wg, **wu, **wd, **bq, **bk, **bv;
    double *kc, *vc;                               /* (layer, pos, kv*hd) */
    int max_pos;
} ref_t;

static float *ref_tensor(const sw_gguf_t *g, const char *name)
{
    const sw_gguf_tensor_t *t = sw_gguf_find_tensor(g, name);
    if (!t)
        return NULL;
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    float *f = malloc(sizeof(float) * (size_t) (t->ne[0] * rows));
    size_t rb = sw_dtype_row_size(t->type, t->ne[0]);
    for (int64_t r = 0; r < rows; r++)
        sw_dequantize_row(t->type, (const uint8_t *) t->data + r * rb, f + r * t->ne[0], t->ne[0]);
    return f;
}

static int ref_load(ref_t *R, const char *path, int max_pos)
{
    char err[256];
    sw_gguf_t *g = sw_gguf_open(path, err, sizeof err);
    if (!g) {
        fprintf(stderr, "ref: %s\n", err);
        return -1;
    }
    memset(R, 0, sizeof *R);
    char arch[32], key[96];
    sw_gguf_get_str_buf(g, "general.architecture", arch, sizeof arch);
    uint32_t v;
#define U(k, dst) (snprintf(key, sizeof key, "%s." k, arch), sw_gguf_get_u32(g, key, &v), dst = (int) v)
    U("embedding_length", R->dim);
    U("block_count", R->n_layer);
    U("attention.head_count", R->n_head);
    U("attention.head_count_kv", R->n_kv);
    U("feed_forward_length", R->ff);
#undef U
    float f;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    R->eps = sw_gguf_get_f32(g, key, &f) == 0 ? f : 1e-5;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    R->theta = sw_gguf_get_f32(g, key, &f) == 0 ? f : 10000.0;
    R->neox = !strcmp(arch, "qwen2");
    R->hd = R->dim / R->n_head;
    R->embd = ref_tensor(g, "token_embd.weight");
    R->vocab = (int) sw_gguf_find_tensor(g, "token_embd.weight")->ne[1];
    R->out_norm = ref_tensor(g, "output_norm.weight");
    R->out = ref_tensor(g, "output.weight");
    if (!R->out)
        R->out = ref_tensor(g, "token_embd.weight");
    float ***lists[] = {&R->an, &R->fn, &R->wq, &R->wk, &R->wv, &R->wo, &R->wg, &R->wu, &R->wd, &R->bq, &R->bk, &R->bv};
    const char *names[] = {"attn_norm.weight", "ffn_norm.weight", "attn_q.weight", "attn_k.weight",
                           "attn_v.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                           "ffn_down.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias"};
    for (int i = 0; i < 12; i++) {
        *lists[i] = calloc((size_t) R->n_layer, sizeof(float *));
        for (int l = 0; l < R->n_layer; l++) {
            snprintf(key, sizeof key, "blk.%d.%s", l, names[i]);
            (*lists[i])[l] = ref_tensor(g, key);
        }
    }
    R->has_bias = R->bq[0] != NULL;
    R->max_pos = max_pos;
    R->kc = calloc((size_t) R->n_layer * max_pos * R->n_kv * R->hd, sizeof(double));
    R->vc = calloc((size_t) R->n_layer * max_pos * R->n_kv * R->hd, sizeof(double));
    sw_gguf_destroy(&g);
    return 0;
}

static void ref_free(ref_t *R)
{
    float ***lists[] = {&R->an, &R->fn, &R->wq, &R->wk, &R->wv, &R->wo, &R->wg, &R->wu, &R->wd, &R->bq, &R->bk, &R->bv};
    for (int i = 0; i < 12; i++) {
        for (int l = 0; l < R->n_layer; l++)
            free((*lists[i])[l]);
        free(*lists[i]);
    }
    if (R->out != R->embd)
        free(R->out);
    free(R->embd);
    free(R->out_norm);
    free(R->kc);
    free(R->vc);
}

/* y (rows) = W (rows, cols) x (cols), plus bias */
static void ref_mv(double *y, const float *W, const double *x, int rows, int cols, const float *bias)
{
    for (int r = 0; r < rows; r++) {
        double s = bias ? bias[r] : 0.0;
        for (int c = 0; c < cols; c++)
            s += (double) W[(size_t) r * cols + c] * x[c];
        y[r] = s;
    }
}

static void ref_norm(double *o, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        o[i] = x[i] * sc * w[i];
}

static void ref_rope(double *v, int pos, int hd, double theta, int neox)
{
    for (int i = 0; i < hd / 2; i++) {
        double ang = pos * pow(theta, -2.0 * i / hd);
        int a = neox ? i : 2 * i, b = neox ? i + hd / 2 : 2 * i + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(ang) - x1 * sin(ang);
        v[b] = x0 * sin(ang) + x1 * cos(ang);
    }
}

/* logits (vocab) for token at pos; the cache holds positions < pos */
static void ref_step(ref_t *R, int token, int pos, float *logits)
{
    const int D = R->dim, KV = R->n_kv * R->hd, F = R->ff;
    double *x = calloc(D, sizeof(double)), *xn = calloc(D, sizeof(double)), *q = calloc(D, sizeof(double));
    double *k = calloc(KV, sizeof(double)), *v = calloc(KV, sizeof(double)), *att = calloc(D, sizeof(double));
    double *o = calloc(D, sizeof(double)), *g = calloc(F, sizeof(double)), *u = calloc(F, sizeof(double));
    double *sc = calloc(pos + 1, sizeof(double));
    for (int i = 0; i < D; i++)
        x[i] = R->embd[(size_t) token * D + i];
    for (int l = 0; l < R->n_layer; l++) {
        ref_norm(xn, x, R->an[l], D, R->eps);
        ref_mv(q, R->wq[l], xn, D, D, R->bq[l]);
        ref_mv(k, R->wk[l], xn, KV, D, R->bk[l]);
        ref_mv(v, R->wv[l], xn, KV, D, R->bv[l]);
        for (int h = 0; h < R->n_head; h++)
            ref_rope(q + h * R->hd, pos, R->hd, R->theta, R->neox);
        for (int h = 0; h < R->n_kv; h++)
            ref_rope(k + h * R->hd, pos, R->hd, R->theta, R->neox);
        double *kc = R->kc + ((size_t) l * R->max_pos) * KV, *vc = R->vc + ((size_t) l * R->max_pos) * KV;
        memcpy(kc + (size_t) pos * KV, k, sizeof(double) * KV);
        memcpy(vc + (size_t) pos * KV, v, sizeof(double) * KV);
        for (int h = 0; h < R->n_head; h++) {
            int kh = h / (R->n_head / R->n_kv);
            double mx = -1e300, sum = 0;
            for (int t = 0; t <= pos; t++) {
                double d = 0;
                for (int i = 0; i < R->hd; i++)
                    d += q[h * R->hd + i] * kc[(size_t) t * KV + kh * R->hd + i];
                sc[t] = d / sqrt((double) R->hd);
                if (sc[t] > mx) mx = sc[t];
            }
            for (int t = 0; t <= pos; t++)
                sum += (sc[t] = exp(sc[t] - mx));
            for (int i = 0; i < R->hd; i++) {
                double a = 0;
                for (int t = 0; t <= pos; t++)
                    a += sc[t] / sum * vc[(size_t) t * KV + kh * R->hd + i];
                att[h * R->hd + i] = a;
            }
        }
        ref_mv(o, R->wo[l], att, D, D, NULL);
        for (int i = 0; i < D; i++) x[i] += o[i];
        ref_norm(xn, x, R->fn[l], D, R->eps);
        ref_mv(g, R->wg[l], xn, F, D, NULL);
        ref_mv(u, R->wu[l], xn, F, D, NULL);
        for (int i = 0; i < F; i++)
            g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
        ref_mv(o, R->wd[l], g, D, F, NULL);
        for (int i = 0; i < D; i++) x[i] += o[i];
    }
    ref_norm(xn, x, R->out_norm, D, R->eps);
    double *lg = calloc(R->vocab, sizeof(double));
    ref_mv(lg, R->out, xn, R->vocab, D, NULL);
    for (int i = 0; i < R->vocab; i++)
        logits[i] = (float) lg[i];
    free(lg); free(x); free(xn); free(q); free(k); free(v); free(att); free(o); free(g); free(u); free(sc);
}

/* ---- helpers ------------------------------------------------------------- */

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double) a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* Runs the model over tokens as one prefill (or as given chunks) and returns
 * logits of every position (n, vocab). split: layer boundaries, NULL = one. */
static float *model_logits(sw_model_t *m, sw_exec_t *ex, const int32_t *tok, int n, const int *bounds, int n_bounds)
{
    const sw_hparams_t *hp = sw_model_hparams(m);
    float *h = malloc(sizeof(float) * n * hp->n_embd), *lg = malloc(sizeof(float) * n * hp->n_vocab);
    char err[256] = "";
    int rc = sw_model_embed(m, tok, n, h, err, sizeof err);
    for (int i = 0; i + 1 < n_bounds && rc == 0; i++) {
        sw_kv_t *kv = sw_kv_new(m, bounds[i], bounds[i + 1], 64);
        sw_seq_t s = {.kv = kv, .pos = 0, .n_tok = n, .hidden = h};
        rc = sw_model_forward(ex, m, bounds[i], bounds[i + 1], &s, 1, err, sizeof err);
        sw_kv_destroy(&kv);
    }
    if (rc == 0)
        rc = sw_model_head(ex, m, h, n, lg, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    free(h);
    return lg;
}

/* ---- tests --------------------------------------------------------------- */

static void test_against_reference(const char *path, double rel_tol)
{
    char err[256] = "";
    sw_model_parts_t all = sw_model_parts_all();
    sw_model_t *m = sw_model_load(path, &all, err, sizeof err);
    CHECK_MSG(m != NULL, "%s: %s", path, err);
    if (!m)
        return;
    const sw_hparams_t *hp = sw_model_hparams(m);
    ref_t R = {0};
    CHECK(ref_load(&R, path, 64) == 0);
    if (!R.embd) {
        sw_model_destroy(&m);
        return;
    }
    const int n = 12;
    int32_t tok[12];
    for (int i = 0; i < n; i++)
        tok[i] = (int32_t) ((i * 37 + 1) % hp->n_vocab);
    float *ref = malloc(sizeof(float) * n * hp->n_vocab);
    for (int i = 0; i < n; i++)
        ref_step(&R, tok[i], i, ref + (size_t) i * hp->n_vocab);
    const double scale = max_abs(ref, (size_t) n * hp->n_vocab);
    for (int threads = 1; threads <= 3; threads += 2) {
        sw_exec_t *ex = sw_exec_new(threads);
        int whole[2] = {0, hp->n_layer};
        float *lg = model_logits(m, ex, tok, n, whole, 2);
        double d = max_abs_diff(lg, ref, (size_t) n * hp->n_vocab);
        CHECK_MSG(d <= rel_tol * scale, "%s threads %d: max |logit - ref| = %g (scale %g)", path, threads, d, scale);
        /* split over three caches gives the same numbers */
        if (hp->n_layer >= 3) {
            int split[4] = {0, 1, hp->n_layer - 1, hp->n_layer};
            float *lg2 = model_logits(m, ex, tok, n, split, 4);
            CHECK_MSG(max_abs_diff(lg, lg2, (size_t) n * hp->n_vocab) == 0.0, "split changes the logits");
            free(lg2);
        }
        free(lg);
        sw_exec_destroy(&ex);
    }
    free(ref);
    ref_free(&R);
    sw_model_destroy(&m);
}

/* Decode token by token, batch two sequences, truncate and rewrite. */
static void test_kv_semantics(const char *path)
{
    char err[256] = "";
    sw_model_t *m = sw_model_load(path, NULL, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    const sw_hparams_t *hp = sw_model_hparams(m);
    const int D = hp->n_embd, V = hp->n_vocab, L = hp->n_layer;
    sw_exec_t *ex = sw_exec_new(2);
    int32_t a[6] = {1, 400, 33, 90, 7, 250}, b[4] = {1, 12, 300, 5};
    int whole[2] = {0, L};
    float *la = model_logits(m, ex, a, 6, whole, 2), *lb = model_logits(m, ex, b, 4, whole, 2);

    /* token-by-token decode equals prefill */
    sw_kv_t *kv = sw_kv_new(m, 0, L, 16);
    float h[4096], lg[4096];
    double worst = 0;
    for (int i = 0; i < 6; i++) {
        sw_seq_t s = {.kv = kv, .pos = i, .n_tok = 1, .hidden = h};
        CHECK(sw_model_embed(m, &a[i], 1, h, err, sizeof err) == 0);
        CHECK(sw_model_forward(ex, m, 0, L, &s, 1, err, sizeof err) == 0);
        CHECK(sw_model_head(ex, m, h, 1, lg, err, sizeof err) == 0);
        double d = max_abs_diff(lg, la + (size_t) i * V, V);
        if (d > worst) worst = d;
    }
    CHECK_MSG(worst < 1e-3 * (1 + max_abs(la, 6 * V)), "decode vs prefill differ by %g", worst);
    CHECK(sw_kv_n_past(kv) == 6);

    /* truncate to 1 and write b[1..3] at positions 1..3: equals b's prefill */
    CHECK(sw_kv_truncate(kv, 7) == -1);
    CHECK(sw_kv_truncate(kv, 1) == 0 && sw_kv_n_past(kv) == 1);
    float hb[3 * 4096];
    sw_seq_t s = {.kv = kv, .pos = 1, .n_tok = 3, .hidden = hb};
    CHECK(sw_model_embed(m, b + 1, 3, hb, err, sizeof err) == 0);
    CHECK(sw_model_forward(ex, m, 0, L, &s, 1, err, sizeof err) == 0);
    CHECK(sw_model_head(ex, m, hb + 2 * D, 1, lg, err, sizeof err) == 0);
    CHECK_MSG(max_abs_diff(lg, lb + 3 * V, V) < 1e-3 * (1 + max_abs(lb, 4 * V)), "rewrite after truncate differs");
    /* writing at pos (< n_past) discards what follows: pos 2 again */
    s = (sw_seq_t){.kv = kv, .pos = 2, .n_tok = 2, .hidden = hb};
    CHECK(sw_model_embed(m, b + 2, 2, hb, err, sizeof err) == 0);
    CHECK(sw_model_forward(ex, m, 0, L, &s, 1, err, sizeof err) == 0);
    CHECK(sw_kv_n_past(kv) == 4);
    CHECK(sw_model_head(ex, m, hb + D, 1, lg, err, sizeof err) == 0);
    CHECK_MSG(max_abs_diff(lg, lb + 3 * V, V) < 1e-3 * (1 + max_abs(lb, 4 * V)), "overwrite at pos 2 differs");

    /* two sequences in one call equal each alone */
    sw_kv_t *ka = sw_kv_new(m, 0, L, 16), *kb = sw_kv_new(m, 0, L, 16);
    float *ha = malloc(sizeof(float) * 6 * D), *hb2 = malloc(sizeof(float) * 4 * D);
    sw_model_embed(m, a, 6, ha, err, sizeof err);
    sw_model_embed(m, b, 4, hb2, err, sizeof err);
    sw_seq_t two[2] = {{.kv = ka, .pos = 0, .n_tok = 6, .hidden = ha}, {.kv = kb, .pos = 0, .n_tok = 4, .hidden = hb2}};
    CHECK(sw_model_forward(ex, m, 0, L, two, 2, err, sizeof err) == 0);
    CHECK(sw_model_head(ex, m, ha + 5 * D, 1, lg, err, sizeof err) == 0);
    CHECK(max_abs_diff(lg, la + 5 * V, V) < 1e-3 * (1 + max_abs(la, 6 * V)));
    CHECK(sw_model_head(ex, m, hb2 + 3 * D, 1, lg, err, sizeof err) == 0);
    CHECK(max_abs_diff(lg, lb + 3 * V, V) < 1e-3 * (1 + max_abs(lb, 4 * V)));

    /* errors, not crashes */
    int32_t bad = V;
    CHECK(sw_model_embed(m, &bad, 1, h, err, sizeof err) == -1 && strstr(err, "out of range"));
    sw_seq_t gap = {.kv = ka, .pos = 9, .n_tok = 1, .hidden = h};
    CHECK(sw_model_forward(ex, m, 0, L, &gap, 1, err, sizeof err) == -1);
    sw_seq_t same[2] = {{.kv = ka, .pos = 0, .n_tok = 1, .hidden = h}, {.kv = ka, .pos = 0, .n_tok = 1, .hidden = h}};
    CHECK(sw_model_forward(ex, m, 0, L, same, 2, err, sizeof err) == -1);
    CHECK(sw_kv_new(m, 0, L + 1, 8) == NULL);

    free(ha); free(hb2); free(la); free(lb);
    sw_kv_destroy(&ka); sw_kv_destroy(&kb); sw_kv_destroy(&kv);
    sw_exec_destroy(&ex);
    sw_model_destroy(&m);
}

/* Partial loads: a stage's instance refuses layers it did not load. */
static void test_parts(const char *path)
{
    char err[256] = "";
    sw_model_parts_t p = {.layer_begin = 1, .layer_end = 3, .embed = false, .head = false};
    sw_model_t *m = sw_model_load(path, &p, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    sw_exec_t *ex = sw_exec_new(1);
    float h[64 * 2] = {0};
    int32_t t = 1;
    CHECK(sw_model_embed(m, &t, 1, h, err, sizeof err) == -1);
    sw_kv_t *kv = sw_kv_new(m, 0, 5, 8);
    sw_seq_t s = {.kv = kv, .pos = 0, .n_tok = 1, .hidden = h};
    CHECK(sw_model_forward(ex, m, 0, 2, &s, 1, err, sizeof err) == -1 && strstr(err, "not loaded"));
    CHECK(sw_model_forward(ex, m, 1, 3, &s, 1, err, sizeof err) == 0);
    CHECK(sw_model_head(ex, m, h, 1, h, err, sizeof err) == -1);
    sw_kv_destroy(&kv);
    sw_exec_destroy(&ex);
    sw_model_destroy(&m);
    p.layer_end = 9;
    CHECK(sw_model_load(path, &p, err, sizeof err) == NULL && strstr(err, "layer range"));
}

/* A small qwen2-style model with random weights, written here. With moe,
 * the same model as a mixture of 4 experts: a zero router (every expert
 * equally likely, so the top 2 are experts 0 and 1, ties to the lower index,
 * each weighted 1/2 after renormalization), experts 0 and 1 both equal to
 * the dense FFN, experts 2 and 3 all NaN: the logits must equal the dense
 * model's, and would be NaN if an unchosen expert were ever computed with. */
static int write_qwen2(const char *path, sw_dtype_t wtype, int bad_arch, int moe)
{
    const int D = 64, H = 4, KVH = 2, HD = 16, F = 96, V = 100, L = 2;
    sw_gguf_writer_t *w = sw_gguf_writer_new();
    const char *arch = bad_arch ? "mamba" : "qwen2";
    sw_gguf_writer_set_str(w, "general.architecture", arch, strlen(arch));
    sw_gguf_writer_set_u32(w, "qwen2.embedding_length", D);
    sw_gguf_writer_set_u32(w, "qwen2.block_count", L);
    sw_gguf_writer_set_u32(w, "qwen2.feed_forward_length", F);
    sw_gguf_writer_set_u32(w, "qwen2.attention.head_count", H);
    sw_gguf_writer_set_u32(w, "qwen2.attention.head_count_kv", KVH);
    sw_gguf_writer_set_f32(w, "qwen2.rope.freq_base", 1000000.0f);
    sw_gguf_writer_set_f32(w, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
    if (moe) {
        sw_gguf_writer_set_u32(w, "qwen2.expert_count", 4);
        sw_gguf_writer_set_u32(w, "qwen2.expert_used_count", 2);
    }
    uint64_t st = 12345;
    float *buf = malloc(sizeof(float) * V * D * 4);
    void *q = malloc(sizeof(float) * V * D * 4);
#define RND() ((float) ((st = st * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f - 0.5f)
#define ADD(name, ne0, ne1, scale, type)                                                              \
    do {                                                                                              \
        int64_t ne[2] = {ne0, ne1};                                                                   \
        for (int i = 0; i < (ne0) * (ne1); i++) buf[i] = (scale) == 0 ? 1.0f + 0.1f * RND() : (scale) * RND(); \
        size_t rb = sw_dtype_row_size(type, ne0);                                                     \
        for (int r = 0; r < (ne1); r++) sw_quantize_row(type, buf + r * (ne0), (uint8_t *) q + r * rb, ne0); \
        sw_gguf_writer_add_tensor(w, name, type, (ne1) > 1 ? 2 : 1, ne, q);                           \
    } while (0)
#define ADD_EXPS(name, ne0, ne1, scale, type)                                                         \
    do {                                                                                              \
        int64_t ne[3] = {ne0, ne1, 4};                                                                \
        const int m_ = (ne0) * (ne1);                                                                 \
        for (int i = 0; i < m_; i++) buf[i] = (scale) * RND();                                        \
        for (int i = 0; i < m_; i++) buf[m_ + i] = buf[i];                                            \
        for (int i = 2 * m_; i < 4 * m_; i++) buf[i] = NAN;                                           \
        size_t rb = sw_dtype_row_size(type, ne0);                                                     \
        for (int r = 0; r < 4 * (ne1); r++) sw_quantize_row(type, buf + r * (ne0), (uint8_t *) q + r * rb, ne0); \
        sw_gguf_writer_add_tensor(w, name, type, 3, ne, q);                                           \
    } while (0)
    ADD("token_embd.weight", D, V, 1.0f, SW_DTYPE_F32);
    ADD("output_norm.weight", D, 1, 0, SW_DTYPE_F32);
    char n[64];
    for (int l = 0; l < L; l++) {
#define NM(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
        ADD(NM("attn_norm.weight"), D, 1, 0, SW_DTYPE_F32);
        ADD(NM("ffn_norm.weight"), D, 1, 0, SW_DTYPE_F32);
        ADD(NM("attn_q.weight"), D, H * HD, 0.3f, wtype);
        ADD(NM("attn_k.weight"), D, KVH * HD, 0.3f, wtype);
        ADD(NM("attn_v.weight"), D, KVH * HD, 0.3f, wtype);
        ADD(NM("attn_q.bias"), H * HD, 1, 0.5f, SW_DTYPE_F32);
        ADD(NM("attn_k.bias"), KVH * HD, 1, 0.5f, SW_DTYPE_F32);
        ADD(NM("attn_v.bias"), KVH * HD, 1, 0.5f, SW_DTYPE_F32);
        ADD(NM("attn_output.weight"), H * HD, D, 0.3f, wtype);
        if (moe) {
            memset(q, 0, sizeof(float) * D * 4);
            int64_t ne[2] = {D, 4};
            sw_gguf_writer_add_tensor(w, NM("ffn_gate_inp.weight"), SW_DTYPE_F32, 2, ne, q);
            ADD_EXPS(NM("ffn_gate_exps.weight"), D, F, 0.3f, wtype);
            ADD_EXPS(NM("ffn_up_exps.weight"), D, F, 0.3f, wtype);
            ADD_EXPS(NM("ffn_down_exps.weight"), F, D, 0.3f, SW_DTYPE_F32);
        } else {
            ADD(NM("ffn_gate.weight"), D, F, 0.3f, wtype);
            ADD(NM("ffn_up.weight"), D, F, 0.3f, wtype);
            ADD(NM("ffn_down.weight"), F, D, 0.3f, SW_DTYPE_F32);
        }
#undef NM
    }
#undef ADD
#undef ADD_EXPS
#undef RND
    char err[256];
    int rc = sw_gguf_writer_write(w, path, err, sizeof err);
    sw_gguf_writer_destroy(&w);
    free(buf);
    free(q);
    return rc;
}

/* Several sequences in one forward call, prefill then one decode step each
 * at different positions, give the logits of each sequence run alone one
 * token at a time: per-sequence attention (and windows longer prompts
 * cross), and the FFN (MoE: experts routed rows of several sequences) over
 * the stacked rows. The model's blocks are split in two calls [0, L/2),
 * [L/2, L) as stages run them. tol: relative to max(1, |logit|). */
static void test_batch(const char *path, double tol)
{
    char err[256] = "";
    sw_model_t *m = sw_model_load(path, NULL, err, sizeof err);
    CHECK_MSG(m != NULL, "%s: %s", path, err);
    if (!m)
        return;
    const sw_hparams_t *hp = sw_model_hparams(m);
    const int32_t L = hp->n_layer, mid = L / 2, V = hp->n_vocab, D = hp->n_embd;
    enum { NA = 20, NB = 11 }; /* prompt lengths; then one more token each */
    int32_t tok[2][NA + 1];
    for (int i = 0; i <= NA; i++) {
        tok[0][i] = (7 + 13 * i) % V;
        tok[1][i] = (3 + 29 * i) % V;
    }
    const int n_tok[2] = {NA, NB};
    sw_exec_t *ex = sw_exec_new(2);
    float *h = malloc(sizeof(float) * (NA + 1) * D), *lg = malloc(sizeof(float) * (NA + 1) * V);
    float *ref = malloc(sizeof(float) * 2 * (NA + 1) * V);
    /* alone, one token at a time */
    for (int s = 0; s < 2; s++) {
        sw_kv_t *kv = sw_kv_new(m, 0, L, 64);
        for (int i = 0; i <= n_tok[s]; i++) {
            sw_seq_t q = {.kv = kv, .pos = i, .n_tok = 1, .hidden = h};
            CHECK(sw_model_embed(m, &tok[s][i], 1, h, err, sizeof err) == 0 &&
                  sw_model_forward(ex, m, 0, L, &q, 1, err, sizeof err) == 0 &&
                  sw_model_head(ex, m, h, 1, ref + ((size_t) s * (NA + 1) + i) * V, err, sizeof err) == 0);
        }
        sw_kv_destroy(&kv);
    }
    /* together: both prompts in one call, then both next tokens in one call */
    sw_kv_t *kv[2][2]; /* [sequence][stage] */
    float *hs[2] = {malloc(sizeof(float) * NA * D), malloc(sizeof(float) * NA * D)};
    for (int s = 0; s < 2; s++) {
        kv[s][0] = sw_kv_new(m, 0, mid, 64);
        kv[s][1] = sw_kv_new(m, mid, L, 64);
    }
    double worst = 0;
    for (int step = 0; step < 2; step++) {
        sw_seq_t q[2];
        for (int s = 0; s < 2; s++) {
            const int pos = step == 0 ? 0 : n_tok[s], n = step == 0 ? n_tok[s] : 1;
            CHECK(sw_model_embed(m, &tok[s][pos], n, hs[s], err, sizeof err) == 0);
            q[s] = (sw_seq_t){.kv = kv[s][0], .pos = pos, .n_tok = n, .hidden = hs[s]};
        }
        CHECK_MSG(sw_model_forward(ex, m, 0, mid, q, 2, err, sizeof err) == 0, "%s", err);
        q[0].kv = kv[0][1];
        q[1].kv = kv[1][1];
        CHECK_MSG(sw_model_forward(ex, m, mid, L, q, 2, err, sizeof err) == 0, "%s", err);
        for (int s = 0; s < 2; s++) {
            CHECK(sw_model_head(ex, m, hs[s], q[s].n_tok, lg, err, sizeof err) == 0);
            for (int i = 0; i < q[s].n_tok; i++)
                for (int v = 0; v < V; v++) {
                    const float r = ref[((size_t) s * (NA + 1) + q[s].pos + i) * V + v];
                    const double d = fabs(lg[(size_t) i * V + v] - r) / fmax(1.0, fabs(r));
                    worst = d > worst ? d : worst;
                }
        }
    }
    CHECK_MSG(worst <= tol, "%s: batched sequences differ from single ones by %g (relative)", path, worst);
    for (int s = 0; s < 2; s++) {
        sw_kv_destroy(&kv[s][0]);
        sw_kv_destroy(&kv[s][1]);
        free(hs[s]);
    }
    free(h), free(lg), free(ref);
    sw_exec_destroy(&ex);
    sw_model_destroy(&m);
}

/* The MoE twin of write_qwen2's model gives the dense model's logits, for a
 * prompt and for single decode steps, whole and split over two ranges. */
static void test_moe(const char *dense_path, sw_dtype_t wtype)
{
    char moe_path[1100];
    snprintf(moe_path, sizeof moe_path, "%s.moe", dense_path);
    CHECK(write_qwen2(dense_path, wtype, 0, 0) == 0);
    CHECK(write_qwen2(moe_path, wtype, 0, 1) == 0);
    char err[256] = "";
    sw_model_t *dense = sw_model_load(dense_path, NULL, err, sizeof err);
    sw_model_t *moe = sw_model_load(moe_path, NULL, err, sizeof err);
    CHECK_MSG(dense && moe, "%s", err);
    if (dense && moe) {
        CHECK(sw_model_hparams(moe)->n_expert == 4 && sw_model_hparams(moe)->n_expert_used == 2);
        sw_exec_t *ex = sw_exec_new(2);
        const int32_t tok[] = {3, 17, 42, 99, 0, 5, 5, 61};
        const int n = (int) (sizeof tok / sizeof tok[0]);
        const int whole[] = {0, 2}, split[] = {0, 1, 2};
        float *a = model_logits(dense, ex, tok, n, whole, 2);
        float *b = model_logits(moe, ex, tok, n, whole, 2);
        float *c = model_logits(moe, ex, tok, n, split, 3);
        float *d = model_logits(moe, ex, tok + 3, 1, whole, 2); /* one token, as in decode */
        float *e = model_logits(dense, ex, tok + 3, 1, whole, 2);
        const size_t nv = (size_t) sw_model_hparams(dense)->n_vocab;
        const double tol = 1e-5 * (1.0 + max_abs(a, n * nv));
        CHECK_MSG(max_abs_diff(a, b, n * nv) <= tol, "moe vs dense (%s): %g", sw_dtype_name(wtype),
                  max_abs_diff(a, b, n * nv));
        CHECK(max_abs_diff(a, c, n * nv) <= tol);
        CHECK(max_abs_diff(d, e, nv) <= tol);
        free(a), free(b), free(c), free(d), free(e);
        sw_exec_destroy(&ex);
    }
    sw_model_destroy(&dense);
    sw_model_destroy(&moe);
    test_batch(moe_path, 1e-4);
    unlink(moe_path);
}

/* Hyperparameters of a header written here: arch with its basic keys (8
 * heads of 16 over 128) plus one extra key (u32, f32 or string by which of
 * u, f, str is set). Returns sw_hparams_from_gguf's result; err gets the
 * reason. */
static int hparams_with(const char *path, const char *arch, const char *key, const uint32_t *u, const float *f,
                        const char *str, sw_hparams_t *hp, char *err, size_t errlen)
{
    sw_gguf_writer_t *w = sw_gguf_writer_new();
    char k[128];
    sw_gguf_writer_set_str(w, "general.architecture", arch, strlen(arch));
    static const char *const names[] = {"embedding_length", "block_count", "feed_forward_length",
                                        "attention.head_count", "attention.sliding_window"};
    const uint32_t vals[] = {128, 2, 256, 8, 8};
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, names[i]);
        sw_gguf_writer_set_u32(w, k, vals[i]);
    }
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (u)
        sw_gguf_writer_set_u32(w, k, *u);
    if (f)
        sw_gguf_writer_set_f32(w, k, *f);
    if (str)
        sw_gguf_writer_set_str(w, k, str, strlen(str));
    float *emb = calloc(128 * 10, sizeof(float));
    int64_t ne[2] = {128, 10};
    sw_gguf_writer_add_tensor(w, "token_embd.weight", SW_DTYPE_F32, 2, ne, emb);
    int rc = sw_gguf_writer_write(w, path, err, errlen);
    sw_gguf_writer_destroy(&w);
    free(emb);
    sw_gguf_t *g = rc == 0 ? sw_gguf_open(path, err, errlen) : NULL;
    rc = g ? sw_hparams_from_gguf(g, hp, err, errlen) : -1;
    sw_gguf_destroy(&g);
    return rc;
}

/* Metadata per family: defaults the files rely on, and values refused with
 * an error that names the key. */
static void test_hparams(const char *path)
{
    sw_hparams_t hp;
    char err[256] = "";
    const uint32_t u0 = 0, u2 = 2, u32 = 32, u3 = 3, u5 = 5;
    const float f8 = 8.0f, fneg = -1.0f;
    CHECK(hparams_with(path, "gemma3", "rope.scaling.type", NULL, NULL, "none", &hp, err, sizeof err) == 0);
    /* gemma3: local blocks 0-4 of each 6, local RoPE base 10000 unless the file says */
    CHECK(hp.n_swa == 8 && sw_hparams_layer_is_local(&hp, 0) && sw_hparams_layer_is_local(&hp, 4) &&
          !sw_hparams_layer_is_local(&hp, 5) && sw_hparams_layer_is_local(&hp, 6));
    CHECK(hp.rope_theta_swa == 10000.0f && hp.qk_norm && hp.embed_scale && hp.post_norms && hp.act == SW_ACT_GELU_TANH);
    CHECK(hparams_with(path, "gemma2", "rope.scaling.factor", NULL, &f8, NULL, &hp, err, sizeof err) == 0);
    CHECK(sw_hparams_layer_is_local(&hp, 0) && !sw_hparams_layer_is_local(&hp, 1) && !hp.qk_norm);
    CHECK(hparams_with(path, "gemma2", "attention.sliding_window_pattern", &u3, NULL, NULL, &hp, err, sizeof err) == 0);
    CHECK(sw_hparams_layer_is_local(&hp, 1) && !sw_hparams_layer_is_local(&hp, 2));
    /* llama: a window applies to every block (Mistral 7B v0.1) */
    CHECK(hparams_with(path, "llama", "rope.scaling.type", NULL, NULL, "linear", &hp, err, sizeof err) == -1 &&
          strstr(err, "llama.rope.scaling.factor"));
    CHECK(hparams_with(path, "llama", "attention.key_length", &u32, NULL, NULL, &hp, err, sizeof err) == 0);
    CHECK(hp.head_dim == 32 && hp.n_swa == 8 && sw_hparams_layer_is_local(&hp, 0) && sw_hparams_layer_is_local(&hp, 1));
    CHECK(hparams_with(path, "qwen3", "rope.scaling.type", NULL, NULL, "yarn", &hp, err, sizeof err) == -1 &&
          strstr(err, "qwen3.rope.scaling.type = 'yarn' is not supported"));
    CHECK(hparams_with(path, "qwen3moe", "expert_used_count", &u2, NULL, NULL, &hp, err, sizeof err) == -1 &&
          strstr(err, "qwen3moe.expert_count is missing"));
    CHECK(hparams_with(path, "llama", "expert_count", &u0, NULL, NULL, &hp, err, sizeof err) == 0 && hp.n_expert == 0);
    CHECK(hparams_with(path, "llama", "expert_count", &u5, NULL, NULL, &hp, err, sizeof err) == -1 &&
          strstr(err, "llama.expert_used_count"));
    CHECK(hparams_with(path, "qwen3", "attention.value_length", &u32, NULL, NULL, &hp, err, sizeof err) == -1 &&
          strstr(err, "qwen3.attention.value_length = 32"));
    CHECK(hparams_with(path, "gemma2", "final_logit_softcapping", NULL, &fneg, NULL, &hp, err, sizeof err) == -1 &&
          strstr(err, "gemma2.final_logit_softcapping = -1 is invalid"));
    CHECK(hparams_with(path, "phi2", "block_count", &u2, NULL, NULL, &hp, err, sizeof err) == -1 &&
          strstr(err, "unknown architecture 'phi2'"));
    unlink(path);
}

int main(void)
{
    char path[1024];
    sw_test_src_path("models/stories260K.gguf", path, sizeof path);

    test_against_reference(path, 1e-4);
    test_kv_semantics(path);
    test_parts(path);

    char tmp[] = "/tmp/swisd_test_model_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd >= 0)
        close(fd);
    CHECK(write_qwen2(tmp, SW_DTYPE_F32, 0, 0) == 0);
    test_against_reference(tmp, 1e-4);
    test_moe(tmp, SW_DTYPE_F32);
    test_moe(tmp, SW_DTYPE_Q8_0);
    test_hparams(tmp);
    /* the reference family files: sliding window + soft caps (gemma2), Llama
     * 3.1 RoPE factors (llama), biases (qwen2) */
    const char *families[] = {"refs/families/gemma2-f16.gguf", "refs/families/llama-f16.gguf",
                              "refs/families/qwen2-f16.gguf"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char fp[1024];
        int r = sw_test_data_path(families[i], "batched sequences of that family", fp, sizeof fp);
        CHECK(r >= 0);
        if (r == 0)
            test_batch(fp, 1e-4);
    }
    /* quantized weights: activations are quantized to q8 too, so compare loosely */
    CHECK(write_qwen2(tmp, SW_DTYPE_Q8_0, 0, 0) == 0);
    test_against_reference(tmp, 3e-2);
    CHECK(write_qwen2(tmp, SW_DTYPE_Q4_0, 0, 0) == 0);
    test_against_reference(tmp, 8e-2);

    CHECK(write_qwen2(tmp, SW_DTYPE_F32, 1, 0) == 0);
    char err[256] = "";
    CHECK(sw_model_load(tmp, NULL, err, sizeof err) == NULL && strstr(err, "unknown architecture 'mamba'"));
    unlink(tmp);
    return sw_test_report("model");
}
