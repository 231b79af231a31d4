/*  sw_matmul_scalar.c: portable reference kernels (GGUF layout), one output
 *  row at a time. Also the fallback on CPUs without the SIMD sets. Integer
 *  block dot products, f32 accumulation, as the SIMD kernels.
 */
#include <math.h>
#include <string.h>

#include "sw_kernels_impl.h"

static void s_rows_f32(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                       const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *wr = (const float *) (w + (size_t) r * row_bytes);
        for (int64_t t = 0; t < n_tok; t++) {
            const float *x = (const float *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t i = 0; i < n_in; i++)
                s += wr[i] * x[i];
            y[t * ldy + r] = s;
        }
    }
}

static void s_rows_f16(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                       const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    for (int64_t r = r0; r < r1; r++) {
        const sw_f16_t *wr = (const sw_f16_t *) (w + (size_t) r * row_bytes);
        for (int64_t t = 0; t < n_tok; t++) {
            const float *x = (const float *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t i = 0; i < n_in; i++)
                s += sw_f16_to_f32(wr[i]) * x[i];
            y[t * ldy + r] = s;
        }
    }
}

static void s_rows_bf16(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                        const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    for (int64_t r = r0; r < r1; r++) {
        const sw_bf16_t *wr = (const sw_bf16_t *) (w + (size_t) r * row_bytes);
        for (int64_t t = 0; t < n_tok; t++) {
            const float *x = (const float *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t i = 0; i < n_in; i++)
                s += sw_bf16_to_f32(wr[i]) * x[i];
            y[t * ldy + r] = s;
        }
    }
}

static void s_rows_q8_0(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                        const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    const int64_t nb = n_in / SW_QK8_0;
    for (int64_t r = r0; r < r1; r++) {
        const sw_block_q8_0 *wb = (const sw_block_q8_0 *) (w + (size_t) r * row_bytes);
        for (int64_t t = 0; t < n_tok; t++) {
            const sw_block_q8_0 *xb = (const sw_block_q8_0 *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t is = 0;
                for (int j = 0; j < SW_QK8_0; j++)
                    is += (int32_t) wb[b].qs[j] * xb[b].qs[j];
                s += (float) is * (sw_f16_to_f32(wb[b].d) * sw_f16_to_f32(xb[b].d));
            }
            y[t * ldy + r] = s;
        }
    }
}

static void s_rows_q4_0(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                        const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    const int64_t nb = n_in / SW_QK4_0;
    for (int64_t r = r0; r < r1; r++) {
        const sw_block_q4_0 *wb = (const sw_block_q4_0 *) (w + (size_t) r * row_bytes);
        for (int64_t t = 0; t < n_tok; t++) {
            const sw_block_q8_0 *xb = (const sw_block_q8_0 *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t is = 0;
                for (int j = 0; j < SW_QK4_0 / 2; j++) {
                    is += ((wb[b].qs[j] & 0x0f) - 8) * xb[b].qs[j];
                    is += ((wb[b].qs[j] >> 4) - 8) * xb[b].qs[j + 16];
                }
                s += (float) is * (sw_f16_to_f32(wb[b].d) * sw_f16_to_f32(xb[b].d));
            }
            y[t * ldy + r] = s;
        }
    }
}

static void s_rows_q4_K(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                        const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    const int64_t nb = n_in / SW_QK_K;
    for (int64_t r = r0; r < r1; r++) {
        const sw_block_q4_K *wb = (const sw_block_q4_K *) (w + (size_t) r * row_bytes);
        for (int64_t t = 0; t < n_tok; t++) {
            const sw_block_q8_K *xb = (const sw_block_q8_K *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *sc = wb[b].scales;
                int32_t sumi = 0, summ = 0;
                for (int sb = 0; sb < 8; sb++) {
                    int scale, min;
                    if (sb < 4) {
                        scale = sc[sb] & 63;
                        min = sc[sb + 4] & 63;
                    } else {
                        scale = (sc[sb + 4] & 0x0f) | ((sc[sb - 4] >> 6) << 4);
                        min = (sc[sb + 4] >> 4) | ((sc[sb] >> 6) << 4);
                    }
                    const uint8_t *q = wb[b].qs + 32 * (sb / 2);
                    const int8_t *x = xb[b].qs + 32 * sb;
                    int32_t d = 0;
                    for (int j = 0; j < 32; j++)
                        d += (int32_t) ((sb & 1) ? (q[j] >> 4) : (q[j] & 0x0f)) * x[j];
                    sumi += scale * d;
                    summ += min * (xb[b].bsums[2 * sb] + xb[b].bsums[2 * sb + 1]);
                }
                float dx = xb[b].d;
                s += sw_f16_to_f32(wb[b].d) * dx * (float) sumi - sw_f16_to_f32(wb[b].dmin) * dx * (float) summ;
            }
            y[t * ldy + r] = s;
        }
    }
}

static void s_rows_q6_K(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                        const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    const int64_t nb = n_in / SW_QK_K;
    for (int64_t r = r0; r < r1; r++) {
        const sw_block_q6_K *wb = (const sw_block_q6_K *) (w + (size_t) r * row_bytes);
        for (int64_t t = 0; t < n_tok; t++) {
            const sw_block_q8_K *xb = (const sw_block_q8_K *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t sub[16] = { 0 };
                for (int h = 0; h < 2; h++) {
                    const uint8_t *ql = wb[b].ql + 64 * h;
                    const uint8_t *qh = wb[b].qh + 32 * h;
                    const int8_t *x = xb[b].qs + 128 * h;
                    for (int l = 0; l < 32; l++) {
                        int q1 = (int) ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                        int q2 = (int) ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        int q3 = (int) ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        int q4 = (int) ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        sub[8 * h + 0 + l / 16] += q1 * x[l];
                        sub[8 * h + 2 + l / 16] += q2 * x[l + 32];
                        sub[8 * h + 4 + l / 16] += q3 * x[l + 64];
                        sub[8 * h + 6 + l / 16] += q4 * x[l + 96];
                    }
                }
                int32_t sumi = 0;
                for (int k = 0; k < 16; k++)
                    sumi += wb[b].scales[k] * sub[k];
                s += sw_f16_to_f32(wb[b].d) * xb[b].d * (float) sumi;
            }
            y[t * ldy + r] = s;
        }
    }
}

void sw__quant_scalar(const float *x, int64_t n_in, int8_t *xq, float *xd, int32_t *xb, int bias_mul)
{
    for (int64_t b = 0; b < n_in / SW_QK8_0; b++) {
        const float *xx = x + b * SW_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < SW_QK8_0; j++)
            amax = fmaxf(amax, fabsf(xx[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < SW_QK8_0; j++) {
            int8_t q = (int8_t) roundf(xx[j] * id);
            xq[b * SW_QK8_0 + j] = q;
            sum += q;
        }
        xd[b] = sw_f16_to_f32(sw_f32_to_f16(d));
        xb[b] = -bias_mul * sum;
    }
}

const sw__kernels_t sw__kernels_scalar = {
    .name = "scalar",
    .rows = {
        [SW__K_F32] = s_rows_f32,
        [SW__K_F16] = s_rows_f16,
        [SW__K_BF16] = s_rows_bf16,
        [SW__K_Q8_0] = s_rows_q8_0,
        [SW__K_Q4_0] = s_rows_q4_0,
        [SW__K_Q4_K] = s_rows_q4_K,
        [SW__K_Q6_K] = s_rows_q6_K,
    },
    .tile_q8_0 = NULL,
    .tile_q4_0 = NULL,
    .quant = sw__quant_scalar,
    .q8_0_bias = 0,
};
