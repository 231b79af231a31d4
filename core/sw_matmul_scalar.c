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

/*  The 32-element types against Q8_0 activations: each weight block is
 *  decoded to integers q[32] and a map x = d * q + m (m = 0 for the symmetric
 *  types), so dot = d*dx * sum q*x8 + m*dx * sum x8. */
typedef void (s_dec32_fn)(const uint8_t *blk, int8_t *q, float *d, float *m);

static void s_dec_q4_1(const uint8_t *p, int8_t *q, float *d, float *m)
{
    const sw_block_q4_1 *b = (const sw_block_q4_1 *) p;
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t) (b->qs[j] & 0x0f);
        q[j + 16] = (int8_t) (b->qs[j] >> 4);
    }
    *d = sw_f16_to_f32(b->d);
    *m = sw_f16_to_f32(b->m);
}

static void s_dec_q5(const uint8_t *qs, const uint8_t *qh, int off, int8_t *q)
{
    uint32_t h = (uint32_t) qh[0] | ((uint32_t) qh[1] << 8) | ((uint32_t) qh[2] << 16) | ((uint32_t) qh[3] << 24);
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t) (((qs[j] & 0x0f) | (((h >> j) & 1) << 4)) - off);
        q[j + 16] = (int8_t) (((qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4)) - off);
    }
}

static void s_dec_q5_0(const uint8_t *p, int8_t *q, float *d, float *m)
{
    const sw_block_q5_0 *b = (const sw_block_q5_0 *) p;
    s_dec_q5(b->qs, b->qh, 16, q);
    *d = sw_f16_to_f32(b->d);
    *m = 0.0f;
}

static void s_dec_q5_1(const uint8_t *p, int8_t *q, float *d, float *m)
{
    const sw_block_q5_1 *b = (const sw_block_q5_1 *) p;
    s_dec_q5(b->qs, b->qh, 0, q);
    *d = sw_f16_to_f32(b->d);
    *m = sw_f16_to_f32(b->m);
}

static void s_dec_iq4_nl(const uint8_t *p, int8_t *q, float *d, float *m)
{
    const sw_block_iq4_nl *b = (const sw_block_iq4_nl *) p;
    for (int j = 0; j < 16; j++) {
        q[j] = sw_iq4nl_grid[b->qs[j] & 0x0f];
        q[j + 16] = sw_iq4nl_grid[b->qs[j] >> 4];
    }
    *d = sw_f16_to_f32(b->d);
    *m = 0.0f;
}

static inline void s_rows_b32(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                              const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy,
                              s_dec32_fn *dec, size_t block_bytes)
{
    const int64_t nb = n_in / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t) r * row_bytes;
        for (int64_t t = 0; t < n_tok; t++) {
            const sw_block_q8_0 *xb = (const sw_block_q8_0 *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int8_t q[32];
                float d, m;
                dec(wr + (size_t) b * block_bytes, q, &d, &m);
                int32_t is = 0, sx = 0;
                for (int j = 0; j < 32; j++) {
                    is += (int32_t) q[j] * xb[b].qs[j];
                    sx += xb[b].qs[j];
                }
                float dx = sw_f16_to_f32(xb[b].d);
                s += (float) is * (d * dx) + (float) sx * (m * dx);
            }
            y[t * ldy + r] = s;
        }
    }
}

#define S_ROWS32(name, dec, blk)                                                                                \
    static void name(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1, const void *xa, \
                     size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)                                   \
    {                                                                                                           \
        s_rows_b32(w, row_bytes, n_in, r0, r1, xa, xa_stride, n_tok, y, ldy, dec, sizeof(blk));                 \
    }
S_ROWS32(s_rows_q4_1, s_dec_q4_1, sw_block_q4_1)
S_ROWS32(s_rows_q5_0, s_dec_q5_0, sw_block_q5_0)
S_ROWS32(s_rows_q5_1, s_dec_q5_1, sw_block_q5_1)
S_ROWS32(s_rows_iq4_nl, s_dec_iq4_nl, sw_block_iq4_nl)

/*  The 256-element types against Q8_K activations: each weight block is
 *  decoded to integers q[256], an integer scale sc[s] and min mn[s] per 16
 *  elements, and the float factors d, dmin, so that
 *  x = d * sc[e/16] * q[e] - dmin * mn[e/16]; the min part uses the Q8_K
 *  sums of 16 (bsums). */
typedef void (s_dec256_fn)(const uint8_t *blk, int8_t *q, int *sc, int *mn, float *d, float *dmin);

static void s_dec_q2_K(const uint8_t *p, int8_t *q, int *sc, int *mn, float *d, float *dmin)
{
    const sw_block_q2_K *b = (const sw_block_q2_K *) p;
    for (int e = 0; e < SW_QK_K; e++)
        q[e] = (int8_t) ((b->qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3);
    for (int s = 0; s < 16; s++) {
        sc[s] = b->scales[s] & 0x0f;
        mn[s] = b->scales[s] >> 4;
    }
    *d = sw_f16_to_f32(b->d);
    *dmin = sw_f16_to_f32(b->dmin);
}

static void s_dec_q3_K(const uint8_t *p, int8_t *q, int *sc, int *mn, float *d, float *dmin)
{
    const sw_block_q3_K *b = (const sw_block_q3_K *) p;
    for (int e = 0; e < SW_QK_K; e++) {
        int lo = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
        int hi = (b->hmask[e % 32] >> (4 * (e / 128) + (e / 32) % 4)) & 1;
        q[e] = (int8_t) (lo - (hi ? 0 : 4));
    }
    for (int s = 0; s < 16; s++) {
        sc[s] = sw_q3k_scale(s, b->scales) - 32;
        mn[s] = 0;
    }
    *d = sw_f16_to_f32(b->d);
    *dmin = 0.0f;
}

static void s_dec_q5_K(const uint8_t *p, int8_t *q, int *sc, int *mn, float *d, float *dmin)
{
    const sw_block_q5_K *b = (const sw_block_q5_K *) p;
    for (int s = 0; s < 8; s++) {
        uint8_t a, m;
        sw_k4_scale_min(s, b->scales, &a, &m);
        sc[2 * s] = sc[2 * s + 1] = a;
        mn[2 * s] = mn[2 * s + 1] = m;
        for (int l = 0; l < 32; l++) {
            uint8_t byte = b->qs[32 * (s / 2) + l];
            q[32 * s + l] = (int8_t) (((s & 1) ? byte >> 4 : byte & 0x0f) | (((b->qh[l] >> s) & 1) << 4));
        }
    }
    *d = sw_f16_to_f32(b->d);
    *dmin = sw_f16_to_f32(b->dmin);
}

static void s_dec_iq4_xs(const uint8_t *p, int8_t *q, int *sc, int *mn, float *d, float *dmin)
{
    const sw_block_iq4_xs *b = (const sw_block_iq4_xs *) p;
    for (int s = 0; s < 8; s++) {
        int ls = ((b->scales_l[s / 2] >> (4 * (s % 2))) & 0x0f) | (((b->scales_h >> (2 * s)) & 3) << 4);
        sc[2 * s] = sc[2 * s + 1] = ls - 32;
        mn[2 * s] = mn[2 * s + 1] = 0;
        for (int j = 0; j < 16; j++) {
            q[32 * s + j] = sw_iq4nl_grid[b->qs[16 * s + j] & 0x0f];
            q[32 * s + j + 16] = sw_iq4nl_grid[b->qs[16 * s + j] >> 4];
        }
    }
    *d = sw_f16_to_f32(b->d);
    *dmin = 0.0f;
}

static inline void s_rows_b256(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                               const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy,
                               s_dec256_fn *dec, size_t block_bytes)
{
    const int64_t nb = n_in / SW_QK_K;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t) r * row_bytes;
        for (int64_t t = 0; t < n_tok; t++) {
            const sw_block_q8_K *xb = (const sw_block_q8_K *) ((const char *) xa + (size_t) t * xa_stride);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int8_t q[SW_QK_K];
                int sc[16], mn[16];
                float d, dmin;
                dec(wr + (size_t) b * block_bytes, q, sc, mn, &d, &dmin);
                int32_t sumi = 0, summ = 0;
                for (int k = 0; k < 16; k++) {
                    int32_t dk = 0;
                    for (int j = 0; j < 16; j++)
                        dk += (int32_t) q[16 * k + j] * xb[b].qs[16 * k + j];
                    sumi += sc[k] * dk;
                    summ += mn[k] * xb[b].bsums[k];
                }
                s += d * xb[b].d * (float) sumi - dmin * xb[b].d * (float) summ;
            }
            y[t * ldy + r] = s;
        }
    }
}

#define S_ROWS256(name, dec, blk)                                                                               \
    static void name(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1, const void *xa, \
                     size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)                                   \
    {                                                                                                           \
        s_rows_b256(w, row_bytes, n_in, r0, r1, xa, xa_stride, n_tok, y, ldy, dec, sizeof(blk));                \
    }
S_ROWS256(s_rows_q2_K, s_dec_q2_K, sw_block_q2_K)
S_ROWS256(s_rows_q3_K, s_dec_q3_K, sw_block_q3_K)
S_ROWS256(s_rows_q5_K, s_dec_q5_K, sw_block_q5_K)
S_ROWS256(s_rows_iq4_xs, s_dec_iq4_xs, sw_block_iq4_xs)

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
        [SW__K_Q4_1] = s_rows_q4_1,
        [SW__K_Q5_0] = s_rows_q5_0,
        [SW__K_Q5_1] = s_rows_q5_1,
        [SW__K_IQ4_NL] = s_rows_iq4_nl,
        [SW__K_Q2_K] = s_rows_q2_K,
        [SW__K_Q3_K] = s_rows_q3_K,
        [SW__K_Q5_K] = s_rows_q5_K,
        [SW__K_IQ4_XS] = s_rows_iq4_xs,
    },
    .tile_q8_0 = NULL,
    .tile_q4_0 = NULL,
    .quant = sw__quant_scalar,
    .q8_0_bias = 0,
};
