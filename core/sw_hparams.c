/*  sw_hparams.c: a decoder's hyperparameters from GGUF metadata (see
 *  sw_model.h, sw_hparams_t).
 *
 *  Keys are "<general.architecture>.<name>" as the GGUF converters write
 *  them (llama.cpp's convert_hf_to_gguf.py and gguf-py constants). Every
 *  value that shapes an allocation is range-checked here; an architecture or
 *  a value this library cannot honour is refused with a message naming it.
 *  Family defaults that files rely on without a key (the reference engine's
 *  implicit ones, ../shared/refs/families/README.md "Metadata notes"):
 *  gemma2 sliding window on every 2nd block, gemma3 on 5 of every 6 with
 *  local RoPE base 10000.
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "sw_common.h"
#include "sw_model.h"

static int s_u32(const sw_gguf_t *g, const char *arch, const char *suffix, uint32_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return sw_gguf_get_u32(g, key, out);
}

static int s_f32(const sw_gguf_t *g, const char *arch, const char *suffix, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return sw_gguf_get_f32(g, key, out);
}

/* What each supported general.architecture turns on. */
typedef struct {
    const char *name;
    sw_arch_t arch;
    sw_rope_type_t rope_type;
    float rms_eps;    /* default when the key is absent */
    bool qk_norm;     /* per-head RMSNorm of q and k */
    bool gemma;       /* embedding scale, post-norms, GeGLU */
    int32_t swa_period; /* default sliding-window period (0 = every block) */
    bool fused;       /* attn_qkv and ffn_up = gate|up */
} s_arch_info_t;

static const s_arch_info_t s_archs[] = {
    {"llama", SW_ARCH_LLAMA, SW_ROPE_NORMAL, 1e-5f, false, false, 0, false},
    {"qwen2", SW_ARCH_QWEN2, SW_ROPE_NEOX, 1e-6f, false, false, 0, false},
    {"qwen3", SW_ARCH_QWEN3, SW_ROPE_NEOX, 1e-6f, true, false, 0, false},
    {"qwen3moe", SW_ARCH_QWEN3MOE, SW_ROPE_NEOX, 1e-6f, true, false, 0, false},
    {"gemma2", SW_ARCH_GEMMA2, SW_ROPE_NEOX, 1e-6f, false, true, 2, false},
    {"gemma3", SW_ARCH_GEMMA3, SW_ROPE_NEOX, 1e-6f, true, true, 6, false},
    {"phi3", SW_ARCH_PHI3, SW_ROPE_NEOX, 1e-5f, false, false, 0, true},
};

bool sw_hparams_layer_is_local(const sw_hparams_t *hp, int32_t il)
{
    if (hp->n_swa <= 0)
        return false;
    return hp->swa_period <= 1 || il % hp->swa_period < hp->swa_period - 1;
}

static int s_experts(const sw_gguf_t *g, const char *arch, sw_hparams_t *hp, char *err, size_t errlen)
{
    uint32_t v;
    if (s_u32(g, arch, "expert_count", &v) != 0 || v == 0) {
        if (hp->arch == SW_ARCH_QWEN3MOE)
            return sw_err(err, errlen, "%s.expert_count is missing", arch);
        return 0;
    }
    if (v > 1024)
        return sw_err(err, errlen, "%s.expert_count = %u is out of range (1..1024)", arch, v);
    hp->n_expert = (int32_t) v;
    if (s_u32(g, arch, "expert_used_count", &v) != 0 || v == 0 || (int32_t) v > hp->n_expert || v > 64)
        return sw_err(err, errlen, "%s.expert_used_count is missing or not in 1..min(expert_count, 64)", arch);
    hp->n_expert_used = (int32_t) v;
    hp->n_ff_exp = hp->n_ff;
    if (s_u32(g, arch, "expert_feed_forward_length", &v) == 0) {
        if (v == 0 || v > 1048576)
            return sw_err(err, errlen, "%s.expert_feed_forward_length = %u is out of range", arch, v);
        hp->n_ff_exp = (int32_t) v;
    }
    if (s_u32(g, arch, "expert_shared_count", &v) == 0 && v != 0)
        return sw_err(err, errlen, "%s.expert_shared_count = %u: shared experts are not supported", arch, v);
    if (s_u32(g, arch, "expert_gating_func", &v) == 0 && v != 1)
        return sw_err(err, errlen, "%s.expert_gating_func = %u is not supported (only 1, softmax)", arch, v);
    /* softmax over all experts, keep the top k, renormalize them: Mixtral
     * (Jiang et al. 2024) and Qwen3-MoE do; a file may say otherwise */
    hp->expert_weights_norm = true;
    char key[128];
    snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
    bool b;
    if (sw_gguf_get_bool(g, key, &b) == 0)
        hp->expert_weights_norm = b;
    float f;
    if (s_f32(g, arch, "expert_weights_scale", &f) == 0 && f != 1.0f)
        return sw_err(err, errlen, "%s.expert_weights_scale = %g is not supported (only 1)", arch, f);
    return 0;
}

/* A RoPE base frequency key ARCH.SUFFIX into *out when present (> 1,
 * finite). 0 (absent or read), or -1 with the reason. */
static int s_rope_base(const sw_gguf_t *g, const char *arch, const char *suffix, float *out, char *err,
                       size_t errlen)
{
    float f;
    if (s_f32(g, arch, suffix, &f) != 0)
        return 0;
    if (!(f > 1.0f) || !isfinite(f))
        return sw_err(err, errlen, "%s.%s = %g is invalid", arch, suffix, f);
    *out = f;
    return 0;
}

static int s_rope(const sw_gguf_t *g, const char *arch, sw_hparams_t *hp, char *err, size_t errlen)
{
    hp->rope_theta = 10000.0f;
    if (s_rope_base(g, arch, "rope.freq_base", &hp->rope_theta, err, errlen) != 0)
        return -1;
    hp->rope_scale = 1.0f;
    char key[128], type[32] = "";
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (sw_gguf_find_key(g, key) >= 0 && sw_gguf_get_str_buf(g, key, type, sizeof type) != 0)
        return sw_err(err, errlen, "%s is not a short string", key);
    if (type[0] && strcmp(type, "none") && strcmp(type, "linear"))
        return sw_err(err, errlen, "%s = '%s' is not supported (none, linear)", key, type);
    float f;
    if (!strcmp(type, "linear")) {
        if (s_f32(g, arch, "rope.scaling.factor", &f) != 0 || !(f >= 1.0f && f <= 1024.0f))
            return sw_err(err, errlen, "%s.rope.scaling.factor is missing or not in [1, 1024]", arch);
        hp->rope_scale = 1.0f / f;
    }
    /* sliding-window blocks: as the others, except gemma3's own base 10000
     * without scaling (Gemma 3 report: local layers keep base 10k) */
    hp->rope_theta_swa = hp->arch == SW_ARCH_GEMMA3 ? 10000.0f : hp->rope_theta;
    hp->rope_scale_swa = hp->arch == SW_ARCH_GEMMA3 ? 1.0f : hp->rope_scale;
    return s_rope_base(g, arch, "rope.freq_base_swa", &hp->rope_theta_swa, err, errlen);
}

int sw_hparams_from_gguf(const sw_gguf_t *g, sw_hparams_t *hp, char *err, size_t errlen)
{
    memset(hp, 0, sizeof *hp);
    if (sw_gguf_get_str_buf(g, "general.architecture", hp->arch_name, sizeof hp->arch_name) != 0)
        return sw_err(err, errlen, "metadata key general.architecture is missing or not a string");
    const char *arch = hp->arch_name;
    const s_arch_info_t *ai = NULL;
    for (size_t i = 0; i < sizeof s_archs / sizeof s_archs[0]; i++)
        if (!strcmp(arch, s_archs[i].name))
            ai = &s_archs[i];
    if (!ai)
        return sw_err(err, errlen,
                      "unknown architecture '%s' (supported: llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3)",
                      arch);
    hp->arch = ai->arch;
    hp->rope_type = ai->rope_type;
    hp->rms_eps = ai->rms_eps;
    hp->qk_norm = ai->qk_norm;
    hp->embed_scale = hp->post_norms = ai->gemma;
    hp->act = ai->gemma ? SW_ACT_GELU_TANH : SW_ACT_SILU;
    hp->fused = ai->fused;
    uint32_t v;
    if (s_u32(g, arch, "embedding_length", &v) || v == 0 || v > 65536)
        return sw_err(err, errlen, "%s.embedding_length missing or out of range", arch);
    hp->n_embd = (int32_t) v;
    if (s_u32(g, arch, "block_count", &v) || v == 0 || v > 1024)
        return sw_err(err, errlen, "%s.block_count missing or out of range", arch);
    hp->n_layer = (int32_t) v;
    if (s_u32(g, arch, "feed_forward_length", &v) || v == 0 || v > 1048576)
        return sw_err(err, errlen, "%s.feed_forward_length missing or out of range", arch);
    hp->n_ff = (int32_t) v;
    if (s_u32(g, arch, "attention.head_count", &v) || v == 0 || v > 1024)
        return sw_err(err, errlen, "%s.attention.head_count missing or out of range", arch);
    hp->n_head = (int32_t) v;
    hp->n_head_kv = hp->n_head;
    if (s_u32(g, arch, "attention.head_count_kv", &v) == 0) {
        if (v == 0 || v > (uint32_t) hp->n_head || hp->n_head % (int32_t) v != 0)
            return sw_err(err, errlen, "%s.attention.head_count_kv = %u does not divide head_count %d",
                          arch, v, hp->n_head);
        hp->n_head_kv = (int32_t) v;
    }
    if (hp->n_head / hp->n_head_kv > 64)
        return sw_err(err, errlen, "%d query heads per KV head is not supported (at most 64)",
                      hp->n_head / hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (s_u32(g, arch, "attention.key_length", &v) == 0)
        hp->head_dim = (int32_t) v;
    if (hp->head_dim <= 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0)
        return sw_err(err, errlen, "head dimension %d is not supported (must be even, 2..1024)", hp->head_dim);
    if (s_u32(g, arch, "attention.value_length", &v) == 0 && (int32_t) v != hp->head_dim)
        return sw_err(err, errlen, "%s.attention.value_length = %u differs from the key length %d (not supported)",
                      arch, v, hp->head_dim);
    hp->n_rot = hp->head_dim;
    if (s_u32(g, arch, "rope.dimension_count", &v) == 0) {
        if (v == 0 || (int32_t) v > hp->head_dim || v % 2 != 0)
            return sw_err(err, errlen, "%s.rope.dimension_count = %u is invalid for head dim %d", arch, v,
                          hp->head_dim);
        hp->n_rot = (int32_t) v;
    }
    hp->n_ctx_train = 2048;
    if (s_u32(g, arch, "context_length", &v) == 0 && v > 0)
        hp->n_ctx_train = v > (1u << 24) ? (1 << 24) : (int32_t) v;
    float f;
    if (s_f32(g, arch, "attention.layer_norm_rms_epsilon", &f) == 0) {
        if (!(f > 0.0f && f < 1.0f))
            return sw_err(err, errlen, "%s.attention.layer_norm_rms_epsilon = %g is invalid", arch, f);
        hp->rms_eps = f;
    }
    if (s_rope(g, arch, hp, err, errlen) != 0)
        return -1;
    /* sliding-window attention */
    hp->swa_period = ai->swa_period;
    if (s_u32(g, arch, "attention.sliding_window", &v) == 0 && v > 0)
        hp->n_swa = v >= (uint32_t) hp->n_ctx_train ? 0 : (int32_t) v; /* a window >= the context is no window */
    if (s_u32(g, arch, "attention.sliding_window_pattern", &v) == 0) {
        if (v == 0 || v > 1024)
            return sw_err(err, errlen, "%s.attention.sliding_window_pattern = %u is out of range", arch, v);
        hp->swa_period = (int32_t) v;
    }
    if ((hp->arch == SW_ARCH_GEMMA2 || hp->arch == SW_ARCH_GEMMA3) && hp->n_swa == 0)
        return sw_err(err, errlen, "%s.attention.sliding_window is missing", arch);
    /* soft-capping (Gemma 2): c * tanh(x / c) */
    if (s_f32(g, arch, "attn_logit_softcapping", &f) == 0 && f != 0.0f) {
        if (!(f > 0.0f && f < 1e6f))
            return sw_err(err, errlen, "%s.attn_logit_softcapping = %g is invalid", arch, f);
        hp->attn_softcap = f;
    }
    if (s_f32(g, arch, "final_logit_softcapping", &f) == 0 && f != 0.0f) {
        if (!(f > 0.0f && f < 1e6f))
            return sw_err(err, errlen, "%s.final_logit_softcapping = %g is invalid", arch, f);
        hp->final_softcap = f;
    }
    if (s_experts(g, arch, hp, err, errlen) != 0)
        return -1;
    const sw_gguf_tensor_t *te = sw_gguf_find_tensor(g, "token_embd.weight");
    if (!te)
        return sw_err(err, errlen, "tensor token_embd.weight is missing");
    if (te->n_dims != 2 || te->ne[0] != hp->n_embd || te->ne[1] <= 0 || te->ne[1] > (1 << 24))
        return sw_err(err, errlen, "tensor token_embd.weight has shape [%lld, %lld], expected [%d, n_vocab]",
                      (long long) te->ne[0], (long long) te->ne[1], hp->n_embd);
    hp->n_vocab = (int32_t) te->ne[1];
    hp->tied_output = sw_gguf_find_tensor(g, "output.weight") == NULL;
    /* tensors of features this library does not implement */
    static const char *const unsupported[] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (sw_gguf_find_tensor(g, unsupported[i]))
            return sw_err(err, errlen, "tensor %s is not supported (LongRoPE scaling)", unsupported[i]);
    return 0;
}
