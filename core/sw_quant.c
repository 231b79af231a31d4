/*  sw_quant.c: the quantization policy (see sw_quant.h). */
#include "sw_quant.h"

sw_dtype_t sw_quant_type_for(uint32_t n_dims, int64_t ne0, sw_dtype_t target)
{
    const int64_t block = sw_dtype_block_size(target);
    if (n_dims < 2 || block <= 0 || ne0 <= 0 || ne0 % block != 0)
        return SW_DTYPE_F32;
    return target;
}

uint32_t sw_quant_file_type(sw_dtype_t type)
{
    switch (type) {
    case SW_DTYPE_F32: return 0;
    case SW_DTYPE_F16: return 1;
    case SW_DTYPE_Q4_0: return 2;
    case SW_DTYPE_Q8_0: return 7;
    case SW_DTYPE_Q4_K: return 15;
    case SW_DTYPE_Q6_K: return 18;
    case SW_DTYPE_BF16: return 32;
    default: return 0;
    }
}

int sw_quant_rows(sw_dtype_t type, const float *src, void *dst, int64_t ne0, int64_t n_rows)
{
    const size_t row = sw_dtype_row_size(type, ne0);
    if (row == 0 || n_rows < 0)
        return -1;
    for (int64_t r = 0; r < n_rows; r++)
        if (sw_quantize_row(type, src + r * ne0, (uint8_t *) dst + (size_t) r * row, ne0) != 0)
            return -1;
    return 0;
}
