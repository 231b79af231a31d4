/*  test_quant.c: the quantization policy selftest (core/sw_quant.h).
 *
 *  Which type a tensor gets: 1-D tensors (norms, biases) stay F32 whatever
 *  the target; matrices whose rows hold a whole number of the target's blocks
 *  get the target (q8_0/q4_0: 32, q4_K/q6_K: 256, f16/bf16: 1); odd widths,
 *  empty rows and unknown targets stay F32. The file_type numbers are
 *  llama.cpp's LLAMA_FTYPE values. sw_quant_rows lays rows back to back, each
 *  equal to sw_quantize_row's encoding of that row alone, and decodes to
 *  within half a q8_0 step (plus the f16 scale's rounding) of the input; a
 *  width with a partial block fails.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sw_quant.h"
#include "sw_test.h"

static void s_policy(void)
{
    /* norms and biases: 1-D, F32 whatever the target */
    CHECK(sw_quant_type_for(1, 64, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(1, 256, SW_DTYPE_Q4_K) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(1, 64, SW_DTYPE_F16) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(0, 64, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    /* matrices with whole blocks per row get the target */
    CHECK(sw_quant_type_for(2, 64, SW_DTYPE_Q8_0) == SW_DTYPE_Q8_0);
    CHECK(sw_quant_type_for(2, 288, SW_DTYPE_Q4_0) == SW_DTYPE_Q4_0);
    CHECK(sw_quant_type_for(3, 32, SW_DTYPE_Q8_0) == SW_DTYPE_Q8_0);
    CHECK(sw_quant_type_for(2, 512, SW_DTYPE_Q4_K) == SW_DTYPE_Q4_K);
    CHECK(sw_quant_type_for(2, 256, SW_DTYPE_Q6_K) == SW_DTYPE_Q6_K);
    CHECK(sw_quant_type_for(2, 65, SW_DTYPE_F16) == SW_DTYPE_F16);
    CHECK(sw_quant_type_for(2, 7, SW_DTYPE_BF16) == SW_DTYPE_BF16);
    /* odd widths: a partial block cannot be encoded */
    CHECK(sw_quant_type_for(2, 65, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 48, SW_DTYPE_Q4_0) == SW_DTYPE_F32);
    /* stories260K's width: 9 blocks of 32, not a whole block of 256 */
    CHECK(sw_quant_type_for(2, 288, SW_DTYPE_Q4_K) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 128, SW_DTYPE_Q6_K) == SW_DTYPE_F32);
    /* nonsense stays F32 instead of dividing by a zero block size */
    CHECK(sw_quant_type_for(2, 0, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, -32, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 64, (sw_dtype_t) 99) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 64, SW_DTYPE_F32) == SW_DTYPE_F32);
}

static void s_file_type(void)
{
    CHECK(sw_quant_file_type(SW_DTYPE_F32) == 0);
    CHECK(sw_quant_file_type(SW_DTYPE_F16) == 1);
    CHECK(sw_quant_file_type(SW_DTYPE_Q4_0) == 2);
    CHECK(sw_quant_file_type(SW_DTYPE_Q8_0) == 7);
    CHECK(sw_quant_file_type(SW_DTYPE_Q4_K) == 15);
    CHECK(sw_quant_file_type(SW_DTYPE_Q6_K) == 18);
    CHECK(sw_quant_file_type(SW_DTYPE_BF16) == 32);
    CHECK(sw_quant_file_type((sw_dtype_t) 99) == 0);
}

static void s_rows(void)
{
    enum { NE0 = 64, ROWS = 3 };
    float src[ROWS * NE0], back[NE0];
    for (int i = 0; i < ROWS * NE0; i++)
        src[i] = sinf(0.37f * (float) i) * (float) (1 + i % 5); /* varied scales per block */
    const size_t row = sw_dtype_row_size(SW_DTYPE_Q8_0, NE0);
    CHECK(row == 2 * sizeof(sw_block_q8_0));
    unsigned char *all = calloc(ROWS, row), *one = calloc(1, row);
    CHECK(all && one);
    if (!all || !one) {
        free(all);
        free(one);
        return;
    }
    CHECK(sw_quant_rows(SW_DTYPE_Q8_0, src, all, NE0, ROWS) == 0);
    for (int r = 0; r < ROWS; r++) {
        CHECK(sw_quantize_row(SW_DTYPE_Q8_0, src + r * NE0, one, NE0) == 0);
        CHECK_MSG(memcmp(all + (size_t) r * row, one, row) == 0, "row %d is not where it belongs", r);
        CHECK(sw_dequantize_row(SW_DTYPE_Q8_0, all + (size_t) r * row, back, NE0) == 0);
        for (int b = 0; b < NE0 / SW_QK8_0; b++) {
            float amax = 0;
            for (int i = 0; i < SW_QK8_0; i++)
                amax = fmaxf(amax, fabsf(src[r * NE0 + b * SW_QK8_0 + i]));
            /* half a step, plus the scale's rounding to f16 (relative 2^-11) times the largest code, 127 */
            const float half_step = amax / 127.0f / 2.0f + amax / 2048.0f + 1e-6f;
            for (int i = 0; i < SW_QK8_0; i++) {
                const int k = b * SW_QK8_0 + i;
                CHECK_MSG(fabsf(back[k] - src[r * NE0 + k]) <= half_step, "row %d elem %d: %g vs %g", r, k,
                          back[k], src[r * NE0 + k]);
            }
        }
    }
    CHECK(sw_quant_rows(SW_DTYPE_Q8_0, src, all, NE0 - 1, 1) == -1); /* partial block */
    CHECK(sw_quant_rows((sw_dtype_t) 99, src, all, NE0, 1) == -1);
    CHECK(sw_quant_rows(SW_DTYPE_Q8_0, src, all, NE0, 0) == 0);    /* nothing to do */
    free(all);
    free(one);
}

int main(void)
{
    s_policy();
    s_file_type();
    s_rows();
    return sw_test_report("quant");
}
