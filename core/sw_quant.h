/*  sw_quant.h: the quantization policy: which type each tensor of a model
 *  gets when the model is re-encoded as a target type (swisd quantize, draft
 *  and synth), the GGUF `general.file_type` that names the result, and the
 *  row-by-row conversion.
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
 *  F16 1, Q4_0 2, Q8_0 7, Q4_K_M 15, Q6_K 18, BF16 32) of a model whose
 *  matrices are mostly `type`; 0 (all F32) for a type without one. */
uint32_t sw_quant_file_type(sw_dtype_t type);

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
