/*  sw_model.c: the decoder families of sw_model.h over a layer range.
 *
 *  Tensor names follow the GGUF convention used by llama.cpp's converters:
 *  token_embd, output_norm, output, rope_freqs, blk.N.{attn_norm, attn_q,
 *  attn_k, attn_v, attn_qkv, attn_q_norm, attn_k_norm, attn_output,
 *  post_attention_norm, ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm,
 *  ffn_gate_inp, ffn_gate_exps, ffn_up_exps, ffn_down_exps}.weight and
 *  blk.N.attn_{q,k,v}.bias. GGUF dims are innermost first, so a matrix
 *  W[out][in] is listed as [in, out], and experts as [in, out, n_expert].
 */
#include "sw_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sw_common.h"

/* Tokens processed per pass through the blocks; longer inputs are split so
 * scratch memory stays bounded (attention still sees the whole cache). */
#define SW_MAX_UBATCH 512

typedef struct {
    const float *attn_norm;   /* (n_embd) */
    sw_weight_t wq, wk, wv;   /* (q_dim, n_embd), (kv_dim, n_embd), (kv_dim, n_embd) */
    sw_weight_t wqkv;         /* fused (phi3): (q_dim + 2 kv_dim, n_embd), rows q | k | v */
    const float *bq, *bk, *bv; /* qwen2 biases or NULL */
    const float *q_norm, *k_norm; /* (head_dim) per-head RMSNorm weights or NULL */
    sw_weight_t wo;           /* (n_embd, q_dim) */
    const float *post_attn_norm; /* (n_embd) or NULL */
    const float *ffn_norm;    /* (n_embd) */
    sw_weight_t w_gate, w_up; /* (n_ff, n_embd); fused: w_up (2 n_ff, n_embd), rows gate | up */
    sw_weight_t w_down;       /* (n_embd, n_ff) */
    const float *post_ffn_norm; /* (n_embd) or NULL */
    sw_weight_t router;       /* MoE: (n_expert, n_embd) */
    sw_weight_t *exp_gate, *exp_up, *exp_down; /* MoE: n_expert each, (n_ff_exp, n_embd) / (n_embd, n_ff_exp) */
} sw_layer_t;

struct sw_model_t {
    sw_gguf_t *gguf;
    sw_hparams_t hp;
    sw_model_parts_t parts;
    const sw_gguf_tensor_t *tok_embd; /* for embed (row lookup) */
    const float *output_norm;         /* (n_embd) */
    sw_weight_t output;               /* (n_vocab, n_embd) */
    const float *rope_freqs;          /* (n_rot / 2) angle divisors (Llama 3.1) or NULL */
    sw_layer_t *layers;               /* n_layer entries; only [begin, end) set */
    float **owned;                    /* f32 copies of non-f32 norm/bias vectors */
    int n_owned;
};

struct sw_kv_t {
    int32_t layer_begin, layer_end; /* layers covered */
    int32_t n_ctx;                  /* positions allocated */
    int32_t n_past;                 /* positions held */
    int32_t kv_dim;                 /* n_head_kv * head_dim */
    float *k;                       /* (n_layers, n_head_kv, head_dim, n_ctx): keys
                                       transposed per head, so attention scores
                                       accumulate over positions as vector FMAs */
    float *v;                       /* (n_layers, n_ctx, kv_dim) */
};

struct sw_exec_t {
    sw_pool_t *pool;
    float *buf;     /* scratch arena */
    size_t buf_len; /* floats in buf */
};

sw_model_parts_t sw_model_parts_all(void)
{
    sw_model_parts_t p = {.layer_begin = 0, .layer_end = -1, .embed = true, .head = true};
    return p;
}

/* ------------------------------------------------------------------------ */
/* hyperparameters                                                          */

/* ------------------------------------------------------------------------ */
/* loading                                                                  */

static const sw_gguf_tensor_t *s_tensor(const sw_model_t *m, const char *name, int64_t ne0, int64_t ne1,
                                        char *err, size_t errlen)
{
    const sw_gguf_tensor_t *t = sw_gguf_find_tensor(m->gguf, name);
    if (!t) {
        sw_err(err, errlen, "tensor %s is missing", name);
        return NULL;
    }
    int64_t want1 = ne1 < 0 ? 1 : ne1;
    uint32_t want_dims = ne1 < 0 ? 1 : 2;
    bool ok = t->ne[0] == ne0 && t->ne[1] == want1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok || (t->n_dims != want_dims && !(want_dims == 2 && t->n_dims == 1 && want1 == 1))) {
        sw_err(err, errlen, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
               (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3],
               (long long) ne0, (long long) want1);
        return NULL;
    }
    return t;
}

/* A vector (norm weight or bias) as f32 in *out: borrowed if stored as F32,
 * else an owned converted copy. An absent optional vector gives *out = NULL
 * and success. Returns 0 or -1. */
static int s_vector(sw_model_t *m, const char *name, int64_t n, bool optional, const float **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (optional && !sw_gguf_find_tensor(m->gguf, name))
        return 0;
    const sw_gguf_tensor_t *t = s_tensor(m, name, n, -1, err, errlen);
    if (!t)
        return -1;
    if (t->type == SW_DTYPE_F32) {
        *out = (const float *) t->data;
        return 0;
    }
    float *copy = malloc(sizeof(float) * (size_t) n);
    float **list = realloc(m->owned, sizeof(float *) * (size_t) (m->n_owned + 1));
    if (list)
        m->owned = list;
    if (!copy || !list) {
        free(copy);
        return sw_err(err, errlen, "out of memory converting %s", name);
    }
    m->owned[m->n_owned++] = copy;
    if (sw_dequantize_row(t->type, t->data, copy, n) != 0)
        return sw_err(err, errlen, "tensor %s: cannot convert type %s to f32", name, sw_dtype_name(t->type));
    *out = copy;
    return 0;
}

/* The kernels keep a repacked copy of some weight types, so the file pages
 * of the original are no longer read: give them back (the mapping stays
 * valid; a later read would fault them in again). Only whole pages inside
 * [data, data + n) are dropped. */
static void s_drop_pages(const void *data, size_t n)
{
    const uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t) data + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t) data + n) & ~(page - 1);
    if (hi > lo)
        madvise((void *) lo, hi - lo, MADV_DONTNEED);
}

/* token_embd rows are still read by embed() even when it doubles as the
 * (repacked) output matrix. */
static bool s_is_token_embd(const char *name) { return !strcmp(name, "token_embd.weight"); }

static int s_matrix(sw_model_t *m, sw_weight_t *w, const char *name, int64_t n_in, int64_t n_out, char *err,
                    size_t errlen)
{
    const sw_gguf_tensor_t *t = s_tensor(m, name, n_in, n_out, err, errlen);
    if (!t)
        return -1;
    if (sw_weight_init(w, t->type, n_in, n_out, t->data) != 0)
        return sw_err(err, errlen, "tensor %s: type %s is not supported for matrix products", name,
                      sw_dtype_name(t->type));
    if (w->priv && !s_is_token_embd(name))
        s_drop_pages(t->data, t->nbytes);
    return 0;
}

/* The n_expert matrices of a 3-D expert tensor [n_in, n_out, n_expert]:
 * expert e is the e-th [n_in, n_out] slice. *ws gets n_expert weights
 * (owned by the layer). Returns 0 or -1. */
static int s_experts(sw_model_t *m, sw_weight_t **ws, const char *name, int64_t n_in, int64_t n_out, char *err,
                     size_t errlen)
{
    const int32_t n_exp = m->hp.n_expert;
    const sw_gguf_tensor_t *t = sw_gguf_find_tensor(m->gguf, name);
    if (!t)
        return sw_err(err, errlen, "tensor %s is missing", name);
    if (t->n_dims != 3 || t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != n_exp || t->ne[3] != 1)
        return sw_err(err, errlen, "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %d]", name,
                      (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3],
                      (long long) n_in, (long long) n_out, (int) n_exp);
    if (!(*ws = calloc((size_t) n_exp, sizeof **ws)))
        return sw_err(err, errlen, "out of memory");
    const size_t slice = sw_dtype_row_size(t->type, n_in) * (size_t) n_out;
    for (int32_t e = 0; e < n_exp; e++) {
        const uint8_t *data = (const uint8_t *) t->data + (size_t) e * slice;
        if (sw_weight_init(&(*ws)[e], t->type, n_in, n_out, data) != 0)
            return sw_err(err, errlen, "tensor %s: type %s is not supported for matrix products", name,
                          sw_dtype_name(t->type));
        if ((*ws)[e].priv)
            s_drop_pages(data, slice);
    }
    return 0;
}

static void s_experts_release(sw_weight_t **ws, int32_t n)
{
    for (int32_t e = 0; *ws && e < n; e++)
        sw_weight_release(&(*ws)[e]);
    free(*ws);
    *ws = NULL;
}

static int s_load_layer(sw_model_t *m, int32_t il, char *err, size_t errlen)
{
    const sw_hparams_t *hp = &m->hp;
    sw_layer_t *L = &m->layers[il];
    const int64_t q_dim = (int64_t) hp->n_head * hp->head_dim;
    const int64_t kv_dim = (int64_t) hp->n_head_kv * hp->head_dim;
    char name[96];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, (int) il), name)
    if (s_vector(m, NAME("attn_norm.weight"), hp->n_embd, false, &L->attn_norm, err, errlen) ||
        s_vector(m, NAME("ffn_norm.weight"), hp->n_embd, false, &L->ffn_norm, err, errlen))
        return -1;
    if (hp->fused) {
        if (s_matrix(m, &L->wqkv, NAME("attn_qkv.weight"), hp->n_embd, q_dim + 2 * kv_dim, err, errlen))
            return -1;
    } else if (s_matrix(m, &L->wq, NAME("attn_q.weight"), hp->n_embd, q_dim, err, errlen) ||
               s_matrix(m, &L->wk, NAME("attn_k.weight"), hp->n_embd, kv_dim, err, errlen) ||
               s_matrix(m, &L->wv, NAME("attn_v.weight"), hp->n_embd, kv_dim, err, errlen)) {
        return -1;
    }
    if (s_matrix(m, &L->wo, NAME("attn_output.weight"), q_dim, hp->n_embd, err, errlen))
        return -1;
    if (hp->n_expert > 0) {
        if (s_matrix(m, &L->router, NAME("ffn_gate_inp.weight"), hp->n_embd, hp->n_expert, err, errlen) ||
            s_experts(m, &L->exp_gate, NAME("ffn_gate_exps.weight"), hp->n_embd, hp->n_ff_exp, err, errlen) ||
            s_experts(m, &L->exp_up, NAME("ffn_up_exps.weight"), hp->n_embd, hp->n_ff_exp, err, errlen) ||
            s_experts(m, &L->exp_down, NAME("ffn_down_exps.weight"), hp->n_ff_exp, hp->n_embd, err, errlen))
            return -1;
    } else if (hp->fused) {
        if (s_matrix(m, &L->w_up, NAME("ffn_up.weight"), hp->n_embd, 2 * (int64_t) hp->n_ff, err, errlen) ||
            s_matrix(m, &L->w_down, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, err, errlen))
            return -1;
    } else if (s_matrix(m, &L->w_gate, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, err, errlen) ||
               s_matrix(m, &L->w_up, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, err, errlen) ||
               s_matrix(m, &L->w_down, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, err, errlen)) {
        return -1;
    }
    /* Q/K/V biases: required by qwen2, accepted when present elsewhere */
    const bool optional = hp->arch != SW_ARCH_QWEN2;
    if (!hp->fused && (s_vector(m, NAME("attn_q.bias"), q_dim, optional, &L->bq, err, errlen) ||
                       s_vector(m, NAME("attn_k.bias"), kv_dim, optional, &L->bk, err, errlen) ||
                       s_vector(m, NAME("attn_v.bias"), kv_dim, optional, &L->bv, err, errlen)))
        return -1;
    if (hp->qk_norm && (s_vector(m, NAME("attn_q_norm.weight"), hp->head_dim, false, &L->q_norm, err, errlen) ||
                        s_vector(m, NAME("attn_k_norm.weight"), hp->head_dim, false, &L->k_norm, err, errlen)))
        return -1;
    if (hp->post_norms &&
        (s_vector(m, NAME("post_attention_norm.weight"), hp->n_embd, false, &L->post_attn_norm, err, errlen) ||
         s_vector(m, NAME("post_ffw_norm.weight"), hp->n_embd, false, &L->post_ffn_norm, err, errlen)))
        return -1;
#undef NAME
    return 0;
}

static sw_model_t *s_model_from_gguf(sw_gguf_t *gguf, const sw_model_parts_t *parts_in, char *err, size_t errlen)
{
    sw_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        sw_gguf_destroy(&gguf);
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    m->gguf = gguf;
    if (sw_hparams_from_gguf(gguf, &m->hp, err, errlen) != 0)
        goto fail;
    sw_model_parts_t parts = parts_in ? *parts_in : sw_model_parts_all();
    if (parts.layer_end < 0)
        parts.layer_end = m->hp.n_layer;
    if (parts.layer_begin < 0 || parts.layer_begin > parts.layer_end || parts.layer_end > m->hp.n_layer) {
        sw_err(err, errlen, "layer range [%d, %d) is outside the model's %d layers", (int) parts.layer_begin,
               (int) parts.layer_end, (int) m->hp.n_layer);
        goto fail;
    }
    m->parts = parts;
    m->layers = calloc((size_t) m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) {
        sw_err(err, errlen, "out of memory");
        goto fail;
    }
    if (parts.embed || (parts.head && m->hp.tied_output)) {
        m->tok_embd = s_tensor(m, "token_embd.weight", m->hp.n_embd, m->hp.n_vocab, err, errlen);
        if (!m->tok_embd)
            goto fail;
        if (!sw_dtype_is_known(m->tok_embd->type)) {
            sw_err(err, errlen, "token_embd.weight: unsupported type");
            goto fail;
        }
    }
    if (parts.head) {
        if (s_vector(m, "output_norm.weight", m->hp.n_embd, false, &m->output_norm, err, errlen))
            goto fail;
        const char *out_name = m->hp.tied_output ? "token_embd.weight" : "output.weight";
        if (s_matrix(m, &m->output, out_name, m->hp.n_embd, m->hp.n_vocab, err, errlen) != 0)
            goto fail;
    }
    /* Llama 3.1 frequency factors: every block's RoPE needs them */
    if (parts.layer_end > parts.layer_begin &&
        s_vector(m, "rope_freqs.weight", m->hp.n_rot / 2, true, &m->rope_freqs, err, errlen) != 0)
        goto fail;
    for (int32_t il = parts.layer_begin; il < parts.layer_end; il++)
        if (s_load_layer(m, il, err, errlen) != 0)
            goto fail;
    return m;
fail:
    sw_model_destroy(&m);
    return NULL;
}

sw_model_t *sw_model_load(const char *path, const sw_model_parts_t *parts, char *err, size_t errlen)
{
    sw_gguf_t *g = sw_gguf_open(path, err, errlen);
    if (!g)
        return NULL;
    return s_model_from_gguf(g, parts, err, errlen);
}

void sw_model_destroy(sw_model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_model_t *m = *self_p;
    if (m->layers) {
        for (int32_t il = 0; il < m->hp.n_layer; il++) {
            sw_layer_t *L = &m->layers[il];
            sw_weight_release(&L->wq);
            sw_weight_release(&L->wk);
            sw_weight_release(&L->wv);
            sw_weight_release(&L->wo);
            sw_weight_release(&L->w_gate);
            sw_weight_release(&L->w_up);
            sw_weight_release(&L->w_down);
            sw_weight_release(&L->wqkv);
            sw_weight_release(&L->router);
            s_experts_release(&L->exp_gate, m->hp.n_expert);
            s_experts_release(&L->exp_up, m->hp.n_expert);
            s_experts_release(&L->exp_down, m->hp.n_expert);
        }
        free(m->layers);
    }
    sw_weight_release(&m->output);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    sw_gguf_destroy(&m->gguf);
    free(m);
    *self_p = NULL;
}

void sw_model_identity(const sw_model_t *self, const char *path, char *id, size_t id_len, char *checksum,
                       size_t sum_len)
{
    sw_model_identity_of(self->gguf, path, id, id_len, checksum, sum_len);
}

void sw_model_identity_of(const sw_gguf_t *gguf, const char *path, char *id, size_t id_len, char *checksum,
                          size_t sum_len)
{
    char name[129] = "";
    if (sw_gguf_get_str_buf(gguf, "general.name", name, sizeof name) != 0 || !name[0]) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        snprintf(name, sizeof name, "%s", base);
        size_t n = strlen(name);
        if (n > 5 && !strcmp(name + n - 5, ".gguf"))
            name[n - 5] = 0;
    }
    for (char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            *p = '_';
    snprintf(id, id_len, "%s", name);
    snprintf(checksum, sum_len, "%016llx", (unsigned long long) sw_gguf_identity_hash(gguf));
}

const sw_hparams_t *sw_model_hparams(const sw_model_t *self) { return &self->hp; }
const sw_gguf_t *sw_model_gguf(const sw_model_t *self) { return self->gguf; }
sw_model_parts_t sw_model_parts(const sw_model_t *self) { return self->parts; }

/* ------------------------------------------------------------------------ */
/* execution context and KV cache                                           */

sw_exec_t *sw_exec_new(int n_threads)
{
    sw_exec_t *ex = calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    ex->pool = sw_pool_new(n_threads < 1 ? 1 : n_threads);
    if (!ex->pool) {
        free(ex);
        return NULL;
    }
    return ex;
}

void sw_exec_destroy(sw_exec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_pool_destroy(&(*self_p)->pool);
    sw_free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

sw_pool_t *sw_exec_pool(sw_exec_t *self) { return self->pool; }

/* Ensures the scratch arena holds n floats; returns it or NULL. */
static float *s_scratch(sw_exec_t *ex, size_t n)
{
    if (n > ex->buf_len) {
        float *b = sw_alloc_aligned(n * sizeof(float));
        if (!b)
            return NULL;
        sw_free(ex->buf);
        ex->buf = b;
        ex->buf_len = n;
    }
    return ex->buf;
}

sw_kv_t *sw_kv_new(const sw_model_t *model, int32_t layer_begin, int32_t layer_end, int32_t n_ctx)
{
    const sw_hparams_t *hp = &model->hp;
    if (layer_begin < 0 || layer_end <= layer_begin || layer_end > hp->n_layer || n_ctx <= 0 || n_ctx > (1 << 22))
        return NULL;
    sw_kv_t *kv = calloc(1, sizeof *kv);
    if (!kv)
        return NULL;
    kv->layer_begin = layer_begin;
    kv->layer_end = layer_end;
    kv->n_ctx = n_ctx;
    kv->kv_dim = hp->n_head_kv * hp->head_dim;
    size_t n = (size_t) (layer_end - layer_begin) * (size_t) n_ctx * (size_t) kv->kv_dim;
    /* calloc: pages are only backed once positions are written. */
    kv->k = calloc(n, sizeof(float));
    kv->v = calloc(n, sizeof(float));
    if (!kv->k || !kv->v) {
        sw_kv_destroy(&kv);
        return NULL;
    }
    return kv;
}

void sw_kv_destroy(sw_kv_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->k);
    free((*self_p)->v);
    free(*self_p);
    *self_p = NULL;
}

int32_t sw_kv_n_past(const sw_kv_t *self) { return self->n_past; }
int32_t sw_kv_n_ctx(const sw_kv_t *self) { return self->n_ctx; }

size_t sw_kv_bytes(const sw_kv_t *self)
{
    return 2 * sizeof(float) * (size_t) (self->layer_end - self->layer_begin) * (size_t) self->n_ctx *
           (size_t) self->kv_dim;
}

int sw_kv_truncate(sw_kv_t *self, int32_t n_past)
{
    if (n_past < 0 || n_past > self->n_past)
        return -1;
    self->n_past = n_past;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* forward                                                                  */

int sw_model_embed(const sw_model_t *self, const int32_t *tokens, int64_t n_tok, float *hidden, char *err,
                   size_t errlen)
{
    if (!self->tok_embd || !self->parts.embed)
        return sw_err(err, errlen, "embeddings are not loaded in this model instance");
    const int64_t n_embd = self->hp.n_embd;
    const size_t row = sw_dtype_row_size(self->tok_embd->type, n_embd);
    const float scale = self->hp.embed_scale ? sqrtf((float) n_embd) : 1.0f; /* Gemma: sqrt(n_embd) */
    for (int64_t i = 0; i < n_tok; i++) {
        if (tokens[i] < 0 || tokens[i] >= self->hp.n_vocab)
            return sw_err(err, errlen, "token id %d is out of range [0, %d)", (int) tokens[i], (int) self->hp.n_vocab);
        const uint8_t *src = (const uint8_t *) self->tok_embd->data + (size_t) tokens[i] * row;
        float *h = hidden + i * n_embd;
        if (sw_dequantize_row(self->tok_embd->type, src, h, n_embd) != 0)
            return sw_err(err, errlen, "cannot convert token_embd row of type %s", sw_dtype_name(self->tok_embd->type));
        if (scale != 1.0f)
            for (int64_t j = 0; j < n_embd; j++)
                h[j] *= scale;
    }
    return 0;
}

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]  (Zhang & Sennrich 2019) */
static void s_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double) x[i] * x[i];
    const float scale = (float) (1.0 / sqrt(ss / (double) n + (double) eps));
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

/* Fills cs[0..half) with cos and cs[half..2*half) with sin of the angles
 * pos * scale * theta^(-2i / n_rot) / freq[i], i < half = n_rot / 2 (Su et
 * al. 2021, eq. 34; scale: linear position interpolation, Chen et al. 2023;
 * freq: Llama 3.1's per-pair factors, or NULL), computed in double so the
 * result does not depend on evaluation order. */
static void s_rope_table(float *cs, int32_t pos, int32_t n_rot, float theta, float scale, const float *freq)
{
    const int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half; i++) {
        double angle = (double) pos * (double) scale * pow((double) theta, -2.0 * (double) i / (double) n_rot);
        if (freq)
            angle /= (double) freq[i];
        cs[i] = (float) cos(angle);
        cs[half + i] = (float) sin(angle);
    }
}

/* Rotates one head vector in place with a table from s_rope_table. "normal"
 * rotates adjacent pairs (2i, 2i+1); NeoX rotates (i, i + n_rot/2). */
static void s_rope(float *x, const float *cs, int32_t n_rot, sw_rope_type_t type)
{
    const int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half; i++) {
        const float c = cs[i], s = cs[half + i];
        const int32_t a = type == SW_ROPE_NEOX ? i : 2 * i;
        const int32_t b = type == SW_ROPE_NEOX ? i + half : 2 * i + 1;
        const float x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

typedef struct {
    const sw_hparams_t *hp;
    sw_seq_t *seqs;
    int n_seqs;
    int32_t il_local;     /* layer index inside each kv */
    int32_t window;       /* sliding window in positions, 0 = none */
    float softcap;        /* attention-score soft cap, 0 = none */
    const float *q;       /* (N, q_dim) */
    float *out;           /* (N, q_dim) */
    float *scores;        /* (nth, group, max_ctx) */
    int32_t max_ctx;
    int64_t n_items;      /* N * n_head_kv */
    const int64_t *seq_start; /* first row of each sequence in the batch */
} s_attn_job_t;

/* Causal scaled dot-product attention (Vaswani et al. 2017) for the work
 * items [ith * n / nth, (ith+1) * n / nth). One item = (token, KV head): the
 * query heads of a GQA group share each read of their K and V rows. With a
 * window w, position p sees positions [p - w + 1, p]; with a soft cap c,
 * scores s become c * tanh(s / c) before the softmax (Gemma 2). */
static void s_attn_worker(void *arg, int ith, int nth)
{
    s_attn_job_t *J = arg;
    const sw_hparams_t *hp = J->hp;
    const int32_t hd = hp->head_dim, q_dim = hp->n_head * hd, n_kv = hp->n_head_kv, kv_dim = n_kv * hd;
    const int32_t group = hp->n_head / n_kv;
    const float scale = 1.0f / sqrtf((float) hd);
    float *scores = J->scores + (size_t) ith * (size_t) group * (size_t) J->max_ctx;
    const int64_t begin = J->n_items * ith / nth, end = J->n_items * (ith + 1) / nth;
    int s = 0;
    for (int64_t item = begin; item < end; item++) {
        const int64_t row = item / n_kv;
        const int32_t kh = (int32_t) (item % n_kv);
        while (s + 1 < J->n_seqs && J->seq_start[s + 1] <= row)
            s++;
        while (s > 0 && J->seq_start[s] > row)
            s--;
        const sw_seq_t *sq = &J->seqs[s];
        const int32_t pos = sq->pos + (int32_t) (row - J->seq_start[s]), n_t = pos + 1;
        const int32_t t0 = J->window > 0 && n_t > J->window ? n_t - J->window : 0;
        const sw_kv_t *kv = sq->kv;
        const size_t n_ctx = (size_t) kv->n_ctx;
        const float *Kt = kv->k + ((size_t) J->il_local * n_kv + kh) * hd * n_ctx;
        const float *V = kv->v + (size_t) J->il_local * n_ctx * kv_dim + (size_t) kh * hd;
        float inv[64];
        for (int32_t g = 0; g < group; g++) {
            const float *q = J->q + row * q_dim + (int64_t) (kh * group + g) * hd;
            float *sc = scores + (size_t) g * J->max_ctx;
            memset(sc + t0, 0, sizeof(float) * (size_t) (n_t - t0));
            for (int32_t i = 0; i < hd; i++) {
                const float qi = q[i] * scale;
                const float *kr = Kt + (size_t) i * n_ctx;
                for (int32_t t = t0; t < n_t; t++)
                    sc[t] += qi * kr[t];
            }
            if (J->softcap > 0.0f)
                for (int32_t t = t0; t < n_t; t++)
                    sc[t] = J->softcap * tanhf(sc[t] / J->softcap);
            float mx = -INFINITY;
            for (int32_t t = t0; t < n_t; t++)
                mx = sc[t] > mx ? sc[t] : mx;
            float sum = 0.0f;
            for (int32_t t = t0; t < n_t; t++) {
                sc[t] = expf(sc[t] - mx);
                sum += sc[t];
            }
            inv[g] = 1.0f / sum;
            float *o = J->out + row * q_dim + (int64_t) (kh * group + g) * hd;
            memset(o, 0, sizeof(float) * (size_t) hd);
        }
        for (int32_t t = t0; t < n_t; t++) {
            const float *v = V + (size_t) t * kv_dim;
            for (int32_t g = 0; g < group; g++) {
                const float p = scores[(size_t) g * J->max_ctx + t] * inv[g];
                float *o = J->out + row * q_dim + (int64_t) (kh * group + g) * hd;
                for (int32_t i = 0; i < hd; i++)
                    o[i] += p * v[i];
            }
        }
    }
}

static inline float s_silu(float x) { return x / (1.0f + expf(-x)); }

/* GELU, tanh approximation (Hendrycks & Gimpel 2016, eq. 2). */
static inline float s_gelu_tanh(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

/* g[i] = act(g[i]) * u[i] for n elements (SwiGLU / GeGLU). */
static void s_glu(float *g, const float *u, size_t n, sw_act_t act)
{
    if (act == SW_ACT_GELU_TANH)
        for (size_t i = 0; i < n; i++)
            g[i] = s_gelu_tanh(g[i]) * u[i];
    else
        for (size_t i = 0; i < n; i++)
            g[i] = s_silu(g[i]) * u[i];
}

/* Scratch of the MoE feed-forward for N tokens (floats, 16-aligned parts). */
static size_t s_moe_floats(const sw_hparams_t *hp, int64_t N)
{
    const size_t ne = (size_t) hp->n_expert, k = (size_t) hp->n_expert_used, n = (size_t) N;
    return n * ne + 2 * n * k + n + n * (size_t) hp->n_embd * 2 + 2 * n * (size_t) hp->n_ff_exp + 16 * 8;
}

/* Mixture-of-experts feed-forward: y (N, n_embd) = sum over each token's
 * chosen experts e of w_e * W_down,e (act(W_gate,e x) * W_up,e x), with
 * p = softmax(W_router x) over all experts, the n_expert_used largest kept
 * (ties to the lower index) and, if hp->expert_weights_norm, divided by
 * their sum. Tokens are grouped by expert, so each chosen expert's matrices
 * are read once per call and unchosen experts not at all. */
static int s_moe(sw_exec_t *ex, const sw_hparams_t *hp, const sw_layer_t *L, const float *x, int64_t N, float *y,
                 float *scratch)
{
    const int32_t ne = hp->n_expert, k = hp->n_expert_used, n_embd = hp->n_embd, n_ff = hp->n_ff_exp;
    float *p = scratch;
    float *r = p; p += (size_t) N * ne;                   /* (N, n_expert) router logits, then probabilities */
    float *wsel = p; p += (size_t) N * k;                 /* (N, k) weights of the chosen experts */
    int32_t *sel = (int32_t *) p; p += (size_t) N * k;    /* (N, k) chosen expert ids */
    int32_t *rows = (int32_t *) p; p += (size_t) N;       /* tokens routed to the current expert */
    float *xg = p; p += (size_t) N * n_embd;              /* (cnt, n_embd) their inputs */
    float *yg = p; p += (size_t) N * n_embd;              /* (cnt, n_embd) expert outputs */
    float *g = p; p += (size_t) N * n_ff;                 /* (cnt, n_ff_exp) gate */
    float *u = p;                                         /* (cnt, n_ff_exp) up */
    if (sw_matmul(ex->pool, &L->router, x, N, r) != 0)
        return -1;
    for (int64_t t = 0; t < N; t++) {
        float *rt = r + t * ne;
        float mx = -INFINITY;
        for (int32_t e = 0; e < ne; e++)
            mx = rt[e] > mx ? rt[e] : mx;
        double sum = 0.0;
        for (int32_t e = 0; e < ne; e++)
            sum += (rt[e] = expf(rt[e] - mx));
        for (int32_t e = 0; e < ne; e++)
            rt[e] = (float) (rt[e] / sum);
        double kept = 0.0;
        for (int32_t j = 0; j < k; j++) {
            int32_t best = -1;
            for (int32_t e = 0; e < ne; e++) {
                bool taken = false;
                for (int32_t i = 0; i < j; i++)
                    taken |= sel[t * k + i] == e;
                if (!taken && (best < 0 || rt[e] > rt[best]))
                    best = e;
            }
            sel[t * k + j] = best;
            wsel[t * k + j] = rt[best];
            kept += rt[best];
        }
        if (hp->expert_weights_norm)
            for (int32_t j = 0; j < k; j++)
                wsel[t * k + j] = (float) (wsel[t * k + j] / kept);
    }
    memset(y, 0, sizeof(float) * (size_t) N * (size_t) n_embd);
    for (int32_t e = 0; e < ne; e++) {
        int64_t cnt = 0;
        for (int64_t t = 0; t < N; t++)
            for (int32_t j = 0; j < k; j++)
                if (sel[t * k + j] == e) {
                    rows[cnt] = (int32_t) t;
                    memcpy(xg + cnt * n_embd, x + t * n_embd, sizeof(float) * (size_t) n_embd);
                    cnt++;
                }
        if (cnt == 0)
            continue;
        const sw_weight_t *gu_w[2] = {&L->exp_gate[e], &L->exp_up[e]};
        float *gu_y[2] = {g, u};
        if (sw_matmul_multi(ex->pool, gu_w, 2, xg, cnt, gu_y) != 0)
            return -1;
        s_glu(g, u, (size_t) cnt * (size_t) n_ff, hp->act);
        if (sw_matmul(ex->pool, &L->exp_down[e], g, cnt, yg) != 0)
            return -1;
        for (int64_t c = 0; c < cnt; c++) {
            const int64_t t = rows[c];
            float w = 0.0f;
            for (int32_t j = 0; j < k; j++)
                w += sel[t * k + j] == e ? wsel[t * k + j] : 0.0f;
            for (int32_t i = 0; i < n_embd; i++)
                y[t * n_embd + i] += w * yg[c * n_embd + i];
        }
    }
    return 0;
}

/* Forward over blocks [a, b) for sequences whose tokens all fit one ubatch. */
static int s_forward_ubatch(sw_exec_t *ex, const sw_model_t *m, int32_t a, int32_t b, sw_seq_t *seqs, int n_seqs,
                            char *err, size_t errlen)
{
    const sw_hparams_t *hp = &m->hp;
    const int64_t n_embd = hp->n_embd, hd = hp->head_dim;
    const int64_t q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd, n_ff = hp->n_ff;
    int64_t N = 0;
    int32_t max_ctx = 0;
    for (int s = 0; s < n_seqs; s++) {
        N += seqs[s].n_tok;
        if (seqs[s].pos + seqs[s].n_tok > max_ctx)
            max_ctx = seqs[s].pos + seqs[s].n_tok;
    }
    const int nth = sw_pool_n_threads(ex->pool);
    /* scratch layout */
    const size_t n_x = (size_t) (N * n_embd), n_q = (size_t) (N * q_dim), n_kv = (size_t) (N * kv_dim);
    const size_t n_f = (size_t) (N * n_ff) * (hp->fused ? 2 : 1);
    const size_t n_qkv = hp->fused ? (size_t) N * (size_t) (q_dim + 2 * kv_dim) : 0;
    const size_t n_moe = hp->n_expert > 0 ? s_moe_floats(hp, N) + n_x : 0;
    const size_t n_sc = (size_t) nth * (size_t) (hp->n_head / hp->n_head_kv) * (size_t) max_ctx;
    const size_t n_rope = (size_t) N * (size_t) hp->n_rot;
    const size_t pad = 16; /* keep each region 64-byte aligned */
#define ROUND(n) (((n) + pad - 1) / pad * pad)
    size_t total = ROUND(n_x) * 2 + ROUND(n_q) * 2 + ROUND(n_kv) * 2 + ROUND(n_f) * 2 + ROUND(n_qkv) + ROUND(n_moe) +
                   ROUND(n_sc) + ROUND(n_rope) * 2 + ROUND((size_t) n_seqs + 1) * 4;
    float *base = s_scratch(ex, total);
    if (!base)
        return sw_err(err, errlen, "out of memory for %lld tokens of scratch", (long long) N);
    float *p = base;
    float *x = p; p += ROUND(n_x);          /* (N, n_embd) residual stream */
    float *xn = p; p += ROUND(n_x);         /* (N, n_embd) normed input / block output */
    float *q = p; p += ROUND(n_q);          /* (N, q_dim) */
    float *att = p; p += ROUND(n_q);        /* (N, q_dim) attention output */
    float *k = p; p += ROUND(n_kv);         /* (N, kv_dim) */
    float *v = p; p += ROUND(n_kv);         /* (N, kv_dim) */
    float *g = p; p += ROUND(n_f);          /* (N, n_ff) gate; fused: (N, 2 n_ff) gate | up */
    float *u = p; p += ROUND(n_f);          /* (N, n_ff) up */
    float *qkv = p; p += ROUND(n_qkv);      /* fused: (N, q_dim + 2 kv_dim) */
    float *moe = p; p += ROUND(n_moe);      /* s_moe scratch */
    float *scores = p; p += ROUND(n_sc);    /* (nth, group, max_ctx) */
    float *rope = p; p += ROUND(n_rope);    /* (N, n_rot) cos | sin, global blocks */
    float *rope_swa = p; p += ROUND(n_rope); /* (N, n_rot) cos | sin, sliding-window blocks */
    int64_t *seq_start = (int64_t *) p; /* n_seqs + 1 int64 (2 floats each) */
    int64_t *local_start = seq_start + n_seqs + 1;
#undef ROUND
    int64_t row = 0;
    for (int s = 0; s < n_seqs; s++) {
        seq_start[s] = row;
        memcpy(x + row * n_embd, seqs[s].hidden, sizeof(float) * (size_t) (seqs[s].n_tok * n_embd));
        row += seqs[s].n_tok;
    }
    seq_start[n_seqs] = row;
    for (int s = 0; s < n_seqs; s++)
        for (int32_t t = 0; t < seqs[s].n_tok; t++) {
            const int64_t r = seq_start[s] + t;
            s_rope_table(rope + r * hp->n_rot, seqs[s].pos + t, hp->n_rot, hp->rope_theta, hp->rope_scale,
                         m->rope_freqs);
            if (hp->n_swa > 0)
                s_rope_table(rope_swa + r * hp->n_rot, seqs[s].pos + t, hp->n_rot, hp->rope_theta_swa,
                             hp->rope_scale_swa, m->rope_freqs);
        }

    for (int32_t il = a; il < b; il++) {
        const sw_layer_t *L = &m->layers[il];
        const bool local = sw_hparams_layer_is_local(hp, il);
        const float *rope_l = local ? rope_swa : rope;
        /* attention */
        for (int64_t r = 0; r < N; r++)
            s_rmsnorm(xn + r * n_embd, x + r * n_embd, L->attn_norm, n_embd, hp->rms_eps);
        if (hp->fused) {
            if (sw_matmul(ex->pool, &L->wqkv, xn, N, qkv))
                return sw_err(err, errlen, "matrix product failed (out of memory)");
            for (int64_t r = 0; r < N; r++) {
                const float *src = qkv + r * (q_dim + 2 * kv_dim);
                memcpy(q + r * q_dim, src, sizeof(float) * (size_t) q_dim);
                memcpy(k + r * kv_dim, src + q_dim, sizeof(float) * (size_t) kv_dim);
                memcpy(v + r * kv_dim, src + q_dim + kv_dim, sizeof(float) * (size_t) kv_dim);
            }
        } else {
            const sw_weight_t *qkv_w[3] = {&L->wq, &L->wk, &L->wv};
            float *qkv_y[3] = {q, k, v};
            if (sw_matmul_multi(ex->pool, qkv_w, 3, xn, N, qkv_y))
                return sw_err(err, errlen, "matrix product failed (out of memory)");
        }
        for (int64_t r = 0; r < N; r++) {
            if (L->bq)
                for (int64_t i = 0; i < q_dim; i++) q[r * q_dim + i] += L->bq[i];
            if (L->bk)
                for (int64_t i = 0; i < kv_dim; i++) k[r * kv_dim + i] += L->bk[i];
            if (L->bv)
                for (int64_t i = 0; i < kv_dim; i++) v[r * kv_dim + i] += L->bv[i];
            if (L->q_norm) /* per-head RMSNorm, one weight vector for all heads */
                for (int32_t h = 0; h < hp->n_head; h++)
                    s_rmsnorm(q + r * q_dim + h * hd, q + r * q_dim + h * hd, L->q_norm, hd, hp->rms_eps);
            if (L->k_norm)
                for (int32_t h = 0; h < hp->n_head_kv; h++)
                    s_rmsnorm(k + r * kv_dim + h * hd, k + r * kv_dim + h * hd, L->k_norm, hd, hp->rms_eps);
        }
        for (int s = 0; s < n_seqs; s++) {
            sw_kv_t *kv = seqs[s].kv;
            const size_t layer_off = (size_t) (il - kv->layer_begin) * (size_t) kv->n_ctx * (size_t) kv_dim;
            for (int32_t t = 0; t < seqs[s].n_tok; t++) {
                const int64_t r = seq_start[s] + t;
                const int32_t pos = seqs[s].pos + t;
                const float *cs = rope_l + r * hp->n_rot;
                for (int32_t h = 0; h < hp->n_head; h++)
                    s_rope(q + r * q_dim + h * hd, cs, hp->n_rot, hp->rope_type);
                for (int32_t h = 0; h < hp->n_head_kv; h++)
                    s_rope(k + r * kv_dim + h * hd, cs, hp->n_rot, hp->rope_type);
                for (int64_t i = 0; i < kv_dim; i++) /* keys transposed: [head][dim][position] */
                    kv->k[layer_off + (size_t) i * kv->n_ctx + pos] = k[r * kv_dim + i];
                memcpy(kv->v + layer_off + (size_t) pos * kv_dim, v + r * kv_dim, sizeof(float) * (size_t) kv_dim);
            }
        }
        /* attention per run of sequences whose caches start at the same
         * layer (then the layer's index inside each cache is the same) */
        for (int s0 = 0; s0 < n_seqs;) {
            int s1 = s0 + 1;
            while (s1 < n_seqs && seqs[s1].kv->layer_begin == seqs[s0].kv->layer_begin)
                s1++;
            const int64_t shift = seq_start[s0];
            for (int s = s0; s <= s1; s++)
                local_start[s - s0] = seq_start[s] - shift;
            s_attn_job_t job = {
                .hp = hp, .seqs = seqs + s0, .n_seqs = s1 - s0, .il_local = il - seqs[s0].kv->layer_begin,
                .window = local ? hp->n_swa : 0, .softcap = hp->attn_softcap,
                .q = q + shift * q_dim, .out = att + shift * q_dim, .scores = scores, .max_ctx = max_ctx,
                .n_items = (seq_start[s1] - shift) * hp->n_head_kv, .seq_start = local_start,
            };
            /* short contexts of small models: hand-offs would cost more than the work */
            const int64_t work = job.n_items * (int64_t) max_ctx * hd * (hp->n_head / hp->n_head_kv);
            sw_pool_run(work < (1 << 16) ? NULL : ex->pool, s_attn_worker, &job);
            s0 = s1;
        }
        if (sw_matmul(ex->pool, &L->wo, att, N, xn))
            return sw_err(err, errlen, "matrix product failed (out of memory)");
        if (L->post_attn_norm)
            for (int64_t r = 0; r < N; r++)
                s_rmsnorm(xn + r * n_embd, xn + r * n_embd, L->post_attn_norm, n_embd, hp->rms_eps);
        for (size_t i = 0; i < n_x; i++)
            x[i] += xn[i];
        /* feed-forward: SwiGLU / GeGLU (Shazeer 2020), dense or experts */
        for (int64_t r = 0; r < N; r++)
            s_rmsnorm(xn + r * n_embd, x + r * n_embd, L->ffn_norm, n_embd, hp->rms_eps);
        if (hp->n_expert > 0) {
            float *moe_y = moe + s_moe_floats(hp, N); /* (N, n_embd) */
            if (s_moe(ex, hp, L, xn, N, moe_y, moe) != 0)
                return sw_err(err, errlen, "matrix product failed (out of memory)");
            memcpy(xn, moe_y, sizeof(float) * n_x);
        } else if (hp->fused) {
            if (sw_matmul(ex->pool, &L->w_up, xn, N, g))
                return sw_err(err, errlen, "matrix product failed (out of memory)");
            for (int64_t r = 0; r < N; r++)
                for (int64_t i = 0; i < n_ff; i++)
                    u[r * n_ff + i] = g[r * 2 * n_ff + i];
            for (int64_t r = 0; r < N; r++)
                memmove(g + r * n_ff, g + r * 2 * n_ff + n_ff, sizeof(float) * (size_t) n_ff);
            /* now u = gate, g = up */
            s_glu(u, g, (size_t) (N * n_ff), hp->act);
            if (sw_matmul(ex->pool, &L->w_down, u, N, xn))
                return sw_err(err, errlen, "matrix product failed (out of memory)");
        } else {
            const sw_weight_t *gu_w[2] = {&L->w_gate, &L->w_up};
            float *gu_y[2] = {g, u};
            if (sw_matmul_multi(ex->pool, gu_w, 2, xn, N, gu_y))
                return sw_err(err, errlen, "matrix product failed (out of memory)");
            s_glu(g, u, n_f, hp->act);
            if (sw_matmul(ex->pool, &L->w_down, g, N, xn))
                return sw_err(err, errlen, "matrix product failed (out of memory)");
        }
        if (L->post_ffn_norm)
            for (int64_t r = 0; r < N; r++)
                s_rmsnorm(xn + r * n_embd, xn + r * n_embd, L->post_ffn_norm, n_embd, hp->rms_eps);
        for (size_t i = 0; i < n_x; i++)
            x[i] += xn[i];
    }
    for (int s = 0; s < n_seqs; s++) {
        memcpy(seqs[s].hidden, x + seq_start[s] * n_embd, sizeof(float) * (size_t) (seqs[s].n_tok * n_embd));
        seqs[s].kv->n_past = seqs[s].pos + seqs[s].n_tok;
    }
    return 0;
}

int sw_model_forward(sw_exec_t *ex, const sw_model_t *self, int32_t a, int32_t b, sw_seq_t *seqs, int n_seqs,
                     char *err, size_t errlen)
{
    if (a < self->parts.layer_begin || b > self->parts.layer_end || a > b)
        return sw_err(err, errlen, "layers [%d, %d) are not loaded (this instance holds [%d, %d))", (int) a, (int) b,
                      (int) self->parts.layer_begin, (int) self->parts.layer_end);
    if (n_seqs <= 0)
        return sw_err(err, errlen, "no sequences");
    int64_t total = 0;
    for (int s = 0; s < n_seqs; s++) {
        const sw_seq_t *sq = &seqs[s];
        if (!sq->kv || !sq->hidden)
            return sw_err(err, errlen, "sequence %d has no KV cache or hidden state", s);
        if (sq->kv->layer_begin > a || sq->kv->layer_end < b)
            return sw_err(err, errlen, "sequence %d: KV cache covers layers [%d, %d), not [%d, %d)", s,
                          (int) sq->kv->layer_begin, (int) sq->kv->layer_end, (int) a, (int) b);
        if (sq->n_tok <= 0 || sq->pos < 0 || sq->pos > sq->kv->n_past || sq->pos + sq->n_tok > sq->kv->n_ctx)
            return sw_err(err, errlen, "sequence %d: %d tokens at position %d do not fit (KV holds %d of %d)", s,
                          (int) sq->n_tok, (int) sq->pos, (int) sq->kv->n_past, (int) sq->kv->n_ctx);
        for (int t = 0; t < s; t++)
            if (seqs[t].kv == sq->kv)
                return sw_err(err, errlen, "sequences %d and %d share one KV cache", t, s);
        total += sq->n_tok;
    }
    if (a == b) {
        for (int s = 0; s < n_seqs; s++)
            seqs[s].kv->n_past = seqs[s].pos + seqs[s].n_tok;
        return 0;
    }
    if (total <= SW_MAX_UBATCH)
        return s_forward_ubatch(ex, self, a, b, seqs, n_seqs, err, errlen);
    /* long inputs: one sequence at a time, in chunks of SW_MAX_UBATCH tokens */
    for (int s = 0; s < n_seqs; s++) {
        for (int32_t off = 0; off < seqs[s].n_tok; off += SW_MAX_UBATCH) {
            sw_seq_t part = seqs[s];
            part.pos = seqs[s].pos + off;
            part.n_tok = seqs[s].n_tok - off < SW_MAX_UBATCH ? seqs[s].n_tok - off : SW_MAX_UBATCH;
            part.hidden = seqs[s].hidden + (int64_t) off * self->hp.n_embd;
            if (s_forward_ubatch(ex, self, a, b, &part, 1, err, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

int sw_model_head(sw_exec_t *ex, const sw_model_t *self, const float *hidden, int64_t n_tok, float *logits,
                  char *err, size_t errlen)
{
    if (!self->parts.head)
        return sw_err(err, errlen, "the output head is not loaded in this model instance");
    const int64_t n_embd = self->hp.n_embd;
    for (int64_t off = 0; off < n_tok; off += SW_MAX_UBATCH) {
        int64_t n = n_tok - off < SW_MAX_UBATCH ? n_tok - off : SW_MAX_UBATCH;
        float *xn = s_scratch(ex, (size_t) (n * n_embd));
        if (!xn)
            return sw_err(err, errlen, "out of memory");
        for (int64_t r = 0; r < n; r++)
            s_rmsnorm(xn + r * n_embd, hidden + (off + r) * n_embd, self->output_norm, n_embd, self->hp.rms_eps);
        float *y = logits + off * self->hp.n_vocab;
        if (sw_matmul(ex->pool, &self->output, xn, n, y) != 0)
            return sw_err(err, errlen, "matrix product failed (out of memory)");
        const float cap = self->hp.final_softcap; /* Gemma 2: c * tanh(l / c) */
        if (cap > 0.0f)
            for (int64_t i = 0; i < n * self->hp.n_vocab; i++)
                y[i] = cap * tanhf(y[i] / cap);
    }
    return 0;
}
