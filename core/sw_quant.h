/*  sw_quant.h: the quantization policy: which type each tensor of a model
 *  gets when the model is re-encoded as a target type (swisd quantize, draft
 *  and synth), the GGUF `general.file_type` that names the result, and the
 *  row-by-row conversion.
 *
 *  Mixed recipes (sw_quant_recipe_*): Q4_K_M and Q5_K_M as the K_M recipes
 *  of llama.cpp's quantizer (llama_tensor_get_type, read for the policy; the
 *  reference files in refs/families were made by it and test_quant checks
 *  this policy against every one of them), per tensor:
 *    - 1-D tensors and the MoE router `ffn_gate_inp`: F32;
 *    - `output.weight`, or `token_embd.weight` when there is no output
 *      matrix (tied embeddings): Q6_K;
 *    - `attn_v`, `attn_qkv`, `ffn_down`, `ffn_down_exps` of block i: Q6_K
 *      when more_bits(i, n_layer): i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2
 *      (integer division), i.e. the first and last eighth of the blocks and
 *      every third in between; else the base type;
 *    - everything else: the base type (Q4_K or Q5_K).
 *  Q6_K: every matrix Q6_K. Any single type T: every matrix T except the
 *  router. A row that is not a whole number of the chosen type's blocks
 *  falls back as that quantizer does: Q2_K, Q3_K, IQ4_XS -> IQ4_NL, Q4_K ->
 *  Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; if that does not fit either, F32 (the
 *  reference uses F16 there).
 *
 *  Policy: matrices (n_dims >= 2) whose rows (ne0 elements) are a whole
 *  number of the target's blocks get the target; everything else stays F32:
 *  1-D tensors (norm weights, biases), whose few bytes cost nothing and whose
 *  precision the residual stream needs, and matrices whose rows would end
 *  in a partial block (no block format can hold them).
 *
 *  Thread safety: reentrant (pure functions).
 */
#ifndef SW_QUANT_H
#define SW_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "sw_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  The type a tensor of n_dims dimensions with rows of ne0 elements gets
 *  when its model is quantized to `target` (see the policy above). An
 *  unknown target, or ne0 <= 0, gives SW_DTYPE_F32. */
sw_dtype_t sw_quant_type_for(uint32_t n_dims, int64_t ne0, sw_dtype_t target);

/*  The `general.file_type` value (llama.cpp's LLAMA_FTYPE numbering: F32 0,
 *  F16 1, Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q2_K 10, Q3_K_S 11,
 *  Q4_K_M 15, Q5_K_M 17, Q6_K 18, IQ4_NL 25, IQ4_XS 30, BF16 32) of a model
 *  whose matrices are mostly `type`; 0 (all F32) for a type without one. */
uint32_t sw_quant_file_type(sw_dtype_t type);

/*  Like sw_quant_rows, with the rounding chosen to minimise the
 *  importance-weighted squared error sum_i imp[i] * (x_i - q_i)^2 of each
 *  block (imp: ne0 f32, one per input column, e.g. the mean squared
 *  activation of that column from `swisd imatrix`; NULL = all 1; negative
 *  or non-finite values count as 0, every column gets 1% of its block's
 *  mean on top so that none is ignored, and a block that is all 0 is
 *  weighted 1).
 *  Per block: the type's quantizer is run on x * c for 9 factors c in
 *  [0.8, 1.2] (the K types Q2_K..Q6_K: once, c = 1, with
 *  sw_quantize_row_weighted, which searches each sub-block's scale and min
 *  under the weights), the block's f16 scale
 *  (d) and, where the format has one, its offset (Q4_1/Q5_1 m, K-quant
 *  dmin) are refitted by weighted least squares for the codes chosen, and
 *  the candidate with the least weighted error is kept (the idea of ggml's
 *  importance-matrix quantizers, not their code).
 *  Types without a block scale (F32, F16, BF16) are converted as by
 *  sw_quant_rows. Tens of times slower than sw_quant_rows (9 encodings
 *  and 3 decodings per block, more for the K types). Returns as
 *  sw_quant_rows; -1 also when out of memory. */
int sw_quant_rows_weighted(sw_dtype_t type, const float *src, void *dst, int64_t ne0, int64_t n_rows,
                           const float *imp);

/*  A quantization recipe: a base type, and whether the K_M mix applies. */
typedef struct {
    sw_dtype_t base;    /* Q4_K or Q5_K for the K_M recipes; any type otherwise */
    bool k_m;           /* the K_M per-tensor mix (above) */
    char name[16];      /* as parsed, e.g. "q4_K_M" */
} sw_quant_recipe_t;

/*  Parses "q4_K_M", "q5_K_M" (case-insensitive) or any sw_dtype_name except
 *  q8_K. Returns 0 and fills *out, or -1. */
int sw_quant_recipe_parse(const char *name, sw_quant_recipe_t *out);

/*  The type tensor `name` (n_dims dimensions, rows of ne0) gets under recipe
 *  r in a model of n_layer blocks; `tied`: the model has no output.weight.
 *  Block numbers come from names "blk.<i>.". Never fails: anything it cannot
 *  place stays F32. */
sw_dtype_t sw_quant_recipe_type(const sw_quant_recipe_t *r, const char *name, uint32_t n_dims, int64_t ne0,
                                int32_t n_layer, bool tied);

/*  general.file_type of a file made by recipe r (Q4_K_M 15, Q5_K_M 17, else
 *  sw_quant_file_type(r->base)). */
uint32_t sw_quant_recipe_file_type(const sw_quant_recipe_t *r);

/*  Converts n_rows rows of ne0 f32 each at src ((n_rows, ne0) f32 row-major)
 *  into `type` at dst (n_rows rows of sw_dtype_row_size(type, ne0) bytes,
 *  back to back; caller allocates). Returns 0, or -1 when the type cannot
 *  hold rows of ne0 (unknown type, partial block) or cannot be written
 *  (sw_quantize_row). */
int sw_quant_rows(sw_dtype_t type, const float *src, void *dst, int64_t ne0, int64_t n_rows);

#ifdef __cplusplus
}
#endif
#endif
