/*  sw_model.h: decoder-only transformers over any contiguous range of layers:
 *  llama (incl. Llama-3.1 RoPE factors, Mistral sliding window, Mixtral
 *  experts), qwen2, qwen3, qwen3moe, gemma2, gemma3 (text) and phi3.
 *
 *  The three parts a swarm splits are separate calls:
 *    embed(tokens)                         -> hidden (n_tok, n_embd)
 *    forward(layers [a, b), hidden, kv)    -> hidden (n_tok, n_embd)
 *    head(hidden)                          -> logits (n_tok, n_vocab)
 *  One block (Touvron et al. 2023, "LLaMA"):
 *    h   = x + Wo * Attn(RoPE(Wq*RMSNorm(x)), RoPE(Wk*RMSNorm(x)), Wv*RMSNorm(x))
 *    out = h + Wdown * (SiLU(Wgate*RMSNorm(h)) * Wup*RMSNorm(h))      (SwiGLU)
 *  RMSNorm (Zhang & Sennrich 2019) with the file's epsilon; RoPE (Su et al.
 *  2021) with theta from metadata, "normal" layout (adjacent pairs) for
 *  `llama` and NeoX layout (halves) for `qwen2`; grouped-query attention
 *  (Ainslie et al. 2023) with causal masking; qwen2 adds Q/K/V biases.
 *  Per family (semantics as in ../shared/refs/families/README.md, "Forward
 *  pass", which the family test checks against an independent engine):
 *  - llama: `rope_freqs.weight` divides each pair's angle (Llama 3.1);
 *    `attention.sliding_window` limits attention (Mistral 7B v0.1); expert
 *    tensors make it Mixtral (Jiang et al. 2024).
 *  - qwen3, qwen3moe, gemma3: per-head RMSNorm of q and k before RoPE
 *    (`attn_q_norm`, `attn_k_norm`), head dim from `attention.key_length`.
 *  - MoE (Shazeer et al. 2017; Fedus et al. 2022): p = softmax(W_router h)
 *    over the experts, the `expert_used_count` largest kept (renormalized
 *    unless `expert_weights_norm` is false), out = sum p_e * SwiGLU_e(h);
 *    only the chosen experts' matrices are read.
 *  - gemma2/gemma3 (Gemma Team 2024, 2025): hidden = embedding * sqrt(n_embd);
 *    GeGLU with tanh GELU (Hendrycks & Gimpel 2016); RMSNorm of the
 *    attention and FFN outputs (`post_attention_norm`, `post_ffw_norm`)
 *    before each residual add; norm weights used as stored; sliding-window
 *    attention on local blocks (gemma2: even blocks; gemma3: 5 of 6, with
 *    `rope.freq_base_swa`); gemma2 soft-caps attention scores and final
 *    logits: c * tanh(x / c).
 *  - phi3: fused `attn_qkv` (q | k | v rows) and `ffn_up` (gate | up rows).
 *  Attention with a window w: position i sees j iff 0 <= i - j < w.
 *
 *  Thread safety: a sw_model_t is immutable after load and may be shared by
 *  threads. A sw_exec_t (thread pool + scratch) and a sw_kv_t belong to one
 *  thread at a time.
 */
#ifndef SW_MODEL_H
#define SW_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_gguf.h"
#include "sw_matmul.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SW_ARCH_LLAMA = 1,
    SW_ARCH_QWEN2 = 2,
    SW_ARCH_QWEN3 = 3,
    SW_ARCH_QWEN3MOE = 4,
    SW_ARCH_GEMMA2 = 5,
    SW_ARCH_GEMMA3 = 6,
    SW_ARCH_PHI3 = 7,
} sw_arch_t;
typedef enum { SW_ROPE_NORMAL = 0, SW_ROPE_NEOX = 2 } sw_rope_type_t;
/*  FFN activation: SiLU (SwiGLU) or GELU, tanh form (GeGLU):
 *  0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))). */
typedef enum { SW_ACT_SILU = 0, SW_ACT_GELU_TANH = 1 } sw_act_t;

typedef struct {
    sw_arch_t arch;
    char arch_name[32];     /* general.architecture */
    int32_t n_vocab;        /* vocabulary size (rows of token_embd) */
    int32_t n_embd;         /* hidden size */
    int32_t n_layer;        /* transformer blocks */
    int32_t n_head;         /* query heads */
    int32_t n_head_kv;      /* key/value heads (GQA: n_head % n_head_kv == 0) */
    int32_t head_dim;       /* attention.key_length, else n_embd / n_head */
    int32_t n_rot;          /* dims rotated by RoPE (= head_dim here) */
    int32_t n_ff;           /* feed-forward hidden size */
    int32_t n_ctx_train;    /* context length the model was trained with */
    float rms_eps;          /* RMSNorm epsilon */
    float rope_theta;       /* RoPE base frequency */
    float rope_scale;       /* positions times this (1 / linear scaling factor) */
    float rope_theta_swa;   /* base on sliding-window blocks (gemma3's own) */
    float rope_scale_swa;   /* position scale on sliding-window blocks */
    sw_rope_type_t rope_type;
    bool tied_output;       /* output matrix is token_embd */
    int32_t n_swa;          /* sliding window in positions; 0 = full attention */
    int32_t swa_period;     /* with n_swa: block i is local iff i % period < period - 1
                               (period <= 1: every block) */
    float attn_softcap;     /* attention-score soft cap c (0 = off) */
    float final_softcap;    /* output-logit soft cap c (0 = off) */
    bool embed_scale;       /* hidden = embedding * sqrt(n_embd) (Gemma) */
    bool post_norms;        /* post_attention_norm / post_ffw_norm (Gemma) */
    bool qk_norm;           /* per-head RMSNorm of q and k */
    bool fused;             /* attn_qkv and ffn_up (gate | up) tensors (phi3) */
    sw_act_t act;           /* FFN activation */
    int32_t n_expert;       /* experts per MoE block; 0 = dense FFN */
    int32_t n_expert_used;  /* experts chosen per token */
    int32_t n_ff_exp;       /* hidden size of one expert */
    bool expert_weights_norm; /* renormalize the chosen experts' weights to sum 1 */
} sw_hparams_t;

/*  True when block il attends through the sliding window (hp->n_swa). */
bool sw_hparams_layer_is_local(const sw_hparams_t *hp, int32_t il);

/*  What to map from the file. Only these tensors are touched. */
typedef struct {
    int32_t layer_begin;    /* first block, >= 0 */
    int32_t layer_end;      /* one past the last block; -1 = n_layer */
    bool embed;             /* token embeddings */
    bool head;              /* final RMSNorm + output matrix */
} sw_model_parts_t;

/*  Everything: all layers, embeddings and head. */
sw_model_parts_t sw_model_parts_all(void);

typedef struct sw_model_t sw_model_t;
typedef struct sw_kv_t sw_kv_t;
typedef struct sw_exec_t sw_exec_t;

/*  Loads the hyperparameters and the requested parts of a GGUF model.
 *  Errors (NULL + reason): unknown architecture, missing or inconsistent
 *  metadata, missing tensor, wrong tensor shape or type, layer range out of
 *  bounds. Caller destroys result. */
sw_model_t *sw_model_load(const char *path, const sw_model_parts_t *parts, char *err, size_t errlen);
void sw_model_destroy(sw_model_t **self_p);

const sw_hparams_t *sw_model_hparams(const sw_model_t *self);
/*  The opened file (borrowed; e.g. for the tokenizer). */
const sw_gguf_t *sw_model_gguf(const sw_model_t *self);
/*  The parts that were loaded. */
sw_model_parts_t sw_model_parts(const sw_model_t *self);
/*  Reads hyperparameters only (no tensors checked; core/sw_hparams.c). An
 *  unknown architecture or a metadata value this library does not implement
 *  (e.g. rope.scaling.type yarn, shared experts) is an error naming it.
 *  Returns 0 or -1. */
int sw_hparams_from_gguf(const sw_gguf_t *gguf, sw_hparams_t *hp, char *err, size_t errlen);

/*  The model's identity in the swarm: id = general.name with characters
 *  outside [A-Za-z0-9._-] replaced by '_' (or the file name without .gguf
 *  when there is no name), checksum = 16 hex digits of
 *  sw_gguf_identity_hash. id: >= 129 bytes; checksum: >= 17 bytes. */
void sw_model_identity(const sw_model_t *self, const char *path, char *id, size_t id_len, char *checksum,
                       size_t sum_len);
/*  The same identity from an opened GGUF (fetch/sw_manifest uses it so a
 *  manifest names the model as its stages will). */
void sw_model_identity_of(const sw_gguf_t *gguf, const char *path, char *id, size_t id_len, char *checksum,
                          size_t sum_len);

/* ---- execution context ------------------------------------------------- */

/*  A thread pool of n_threads plus scratch buffers grown on demand.
 *  Returns NULL on failure. Caller destroys result. */
sw_exec_t *sw_exec_new(int n_threads);
void sw_exec_destroy(sw_exec_t **self_p);
sw_pool_t *sw_exec_pool(sw_exec_t *self);

/* ---- KV cache ---------------------------------------------------------- */

/*  A KV cache for one sequence over layers [layer_begin, layer_end) of the
 *  model, for up to n_ctx positions: 2 * n_layers * n_ctx * n_head_kv *
 *  head_dim f32 (see sw_kv_bytes). Returns NULL on bad arguments or
 *  allocation failure. Caller destroys result. */
sw_kv_t *sw_kv_new(const sw_model_t *model, int32_t layer_begin, int32_t layer_end, int32_t n_ctx);
void sw_kv_destroy(sw_kv_t **self_p);
/*  Positions held (0..n_ctx). */
int32_t sw_kv_n_past(const sw_kv_t *self);
int32_t sw_kv_n_ctx(const sw_kv_t *self);
size_t sw_kv_bytes(const sw_kv_t *self);
/*  Forgets every position >= n_past (n_past <= current). Returns 0 or -1. */
int sw_kv_truncate(sw_kv_t *self, int32_t n_past);

/* ---- forward ----------------------------------------------------------- */

/*  hidden (n_tok, n_embd) f32 = rows of token_embd for tokens[0..n_tok),
 *  times sqrt(n_embd) for Gemma (hp->embed_scale). Needs parts.embed. Returns 0, or -1 for a token id out of range. */
int sw_model_embed(const sw_model_t *self, const int32_t *tokens, int64_t n_tok, float *hidden,
                   char *err, size_t errlen);

/*  One sequence's share of a forward call. */
typedef struct {
    sw_kv_t *kv;     /* its KV cache, covering [a, b) */
    int32_t pos;     /* position of the first token; 0 <= pos <= sw_kv_n_past(kv).
                        Everything cached at >= pos is discarded first. */
    int32_t n_tok;   /* tokens in this call, >= 1; pos + n_tok <= n_ctx */
    float *hidden;   /* (n_tok, n_embd) f32, input and output (in place) */
} sw_seq_t;

/*  Runs blocks [a, b) over several sequences at once: the linear layers see
 *  all sequences' tokens as one matrix; attention is per sequence (causal).
 *  Afterwards each kv holds pos + n_tok positions.
 *  Returns 0, or -1 (reason in err) when [a, b) is not loaded, a kv does not
 *  cover [a, b), a position is out of range, or allocation fails; on error
 *  hidden contents are unspecified but the KV caches are left as before. */
int sw_model_forward(sw_exec_t *ex, const sw_model_t *self, int32_t a, int32_t b, sw_seq_t *seqs,
                     int n_seqs, char *err, size_t errlen);

/*  logits (n_tok, n_vocab) f32 = output * RMSNorm(hidden), soft-capped
 *  when hp->final_softcap > 0. hidden is not modified. Needs parts.head.
 *  Returns 0 or -1. */
int sw_model_head(sw_exec_t *ex, const sw_model_t *self, const float *hidden, int64_t n_tok,
                  float *logits, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
