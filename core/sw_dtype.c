/*  sw_dtype.c: type table, f16/bf16 conversions, scalar (de)quantizers.
 *
 *  Block layouts follow ggml (ggml-common.h); see sw_dtype.h for the byte
 *  layouts. Everything here is the portable reference: the matmul kernels have
 *  their own vectorised activation quantizers and are tested against these.
 */
#include "sw_dtype.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/*  Type table                                                              */

typedef struct {
    sw_dtype_t type;
    const char *name;
    int64_t block_size;
    size_t block_bytes;
} s_type_info_t;

static const s_type_info_t s_types[] = {
    { SW_DTYPE_F32, "f32", 1, 4 },
    { SW_DTYPE_F16, "f16", 1, 2 },
    { SW_DTYPE_BF16, "bf16", 1, 2 },
    { SW_DTYPE_Q8_0, "q8_0", SW_QK8_0, sizeof(sw_block_q8_0) },
    { SW_DTYPE_Q4_0, "q4_0", SW_QK4_0, sizeof(sw_block_q4_0) },
    { SW_DTYPE_Q4_K, "q4_K", SW_QK_K, sizeof(sw_block_q4_K) },
    { SW_DTYPE_Q6_K, "q6_K", SW_QK_K, sizeof(sw_block_q6_K) },
    { SW_DTYPE_Q8_K, "q8_K", SW_QK_K, sizeof(sw_block_q8_K) },
    { SW_DTYPE_Q4_1, "q4_1", 32, sizeof(sw_block_q4_1) },
    { SW_DTYPE_Q5_0, "q5_0", 32, sizeof(sw_block_q5_0) },
    { SW_DTYPE_Q5_1, "q5_1", 32, sizeof(sw_block_q5_1) },
    { SW_DTYPE_IQ4_NL, "iq4_nl", 32, sizeof(sw_block_iq4_nl) },
    { SW_DTYPE_Q2_K, "q2_K", SW_QK_K, sizeof(sw_block_q2_K) },
    { SW_DTYPE_Q3_K, "q3_K", SW_QK_K, sizeof(sw_block_q3_K) },
    { SW_DTYPE_Q5_K, "q5_K", SW_QK_K, sizeof(sw_block_q5_K) },
    { SW_DTYPE_IQ4_XS, "iq4_xs", SW_QK_K, sizeof(sw_block_iq4_xs) },
};

const int8_t sw_iq4nl_grid[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

_Static_assert(sizeof(sw_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(sw_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(sw_block_q4_K) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(sw_block_q6_K) == 210, "q6_K block is 210 bytes");
_Static_assert(sizeof(sw_block_q8_K) == 292, "q8_K block is 292 bytes");
_Static_assert(sizeof(sw_block_q4_1) == 20, "q4_1 block is 20 bytes");
_Static_assert(sizeof(sw_block_q5_0) == 22, "q5_0 block is 22 bytes");
_Static_assert(sizeof(sw_block_q5_1) == 24, "q5_1 block is 24 bytes");
_Static_assert(sizeof(sw_block_iq4_nl) == 18, "iq4_nl block is 18 bytes");
_Static_assert(sizeof(sw_block_q2_K) == 84, "q2_K block is 84 bytes");
_Static_assert(sizeof(sw_block_q3_K) == 110, "q3_K block is 110 bytes");
_Static_assert(sizeof(sw_block_q5_K) == 176, "q5_K block is 176 bytes");
_Static_assert(sizeof(sw_block_iq4_xs) == 136, "iq4_xs block is 136 bytes");

static const s_type_info_t *s_info(uint32_t type)
{
    for (size_t i = 0; i < sizeof(s_types) / sizeof(s_types[0]); i++)
        if ((uint32_t) s_types[i].type == type)
            return &s_types[i];
    return NULL;
}

bool sw_dtype_is_known(uint32_t type)
{
    return s_info(type) != NULL;
}

const char *sw_dtype_name(sw_dtype_t type)
{
    const s_type_info_t *t = s_info((uint32_t) type);
    return t ? t->name : "?";
}

int sw_dtype_from_name(const char *name, sw_dtype_t *out)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof(s_types) / sizeof(s_types[0]); i++) {
        if (strcasecmp(name, s_types[i].name) == 0) {
            if (out)
                *out = s_types[i].type;
            return 0;
        }
    }
    return -1;
}

int64_t sw_dtype_block_size(sw_dtype_t type)
{
    const s_type_info_t *t = s_info((uint32_t) type);
    return t ? t->block_size : 0;
}

size_t sw_dtype_block_bytes(sw_dtype_t type)
{
    const s_type_info_t *t = s_info((uint32_t) type);
    return t ? t->block_bytes : 0;
}

size_t sw_dtype_row_size(sw_dtype_t type, int64_t n)
{
    const s_type_info_t *t = s_info((uint32_t) type);
    if (!t || n < 0 || n % t->block_size != 0)
        return 0;
    uint64_t blocks = (uint64_t) (n / t->block_size);
    if (blocks > SIZE_MAX / t->block_bytes)
        return 0;
    return (size_t) blocks * t->block_bytes;
}

/* ------------------------------------------------------------------------ */
/*  f16 / bf16                                                              */

static inline uint32_t s_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float s_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sw_f16_to_f32(sw_f16_t h)
{
    uint32_t sign = (uint32_t) (h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f)
        return s_bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in f32 */
        float v = (float) mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return s_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

sw_f16_t sw_f32_to_f16(float f)
{
    uint32_t x = s_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) {
        /* Inf stays Inf; NaN keeps its top payload bits and stays quiet */
        uint32_t nan = x > 0x7f800000u ? (0x200u | ((x >> 13) & 0x3ffu)) : 0;
        return (sw_f16_t) (sign | 0x7c00u | nan);
    }
    if (x >= 0x477ff000u) /* >= 65520: rounds to Inf */
        return (sw_f16_t) (sign | 0x7c00u);
    if (x < 0x38800000u) {
        /* below 2^-14: subnormal result; adding 0.5 puts the f32 ulp at
         * 2^-24, so the FPU rounds to nearest even for us */
        float t = s_bits_f32(x) + 0.5f;
        return (sw_f16_t) (sign | (s_f32_bits(t) - 0x3f000000u));
    }
    /* normal: rebias exponent by -112 and round to nearest even on bit 13 */
    uint32_t odd = (x >> 13) & 1u;
    x += 0xc8000fffu + odd;
    return (sw_f16_t) (sign | (x >> 13));
}

float sw_bf16_to_f32(sw_bf16_t h)
{
    return s_bits_f32((uint32_t) h << 16);
}

sw_bf16_t sw_f32_to_bf16(float f)
{
    uint32_t x = s_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (sw_bf16_t) ((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (sw_bf16_t) (x >> 16);
}

/* ------------------------------------------------------------------------ */
/*  Dequantization                                                          */

static void s_deq_q8_0(const sw_block_q8_0 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        for (int j = 0; j < SW_QK8_0; j++)
            y[i * SW_QK8_0 + j] = d * (float) b[i].qs[j];
    }
}

static void s_deq_q4_0(const sw_block_q4_0 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        float *o = y + i * SW_QK4_0;
        for (int j = 0; j < SW_QK4_0 / 2; j++) {
            o[j] = d * (float) ((b[i].qs[j] & 0x0f) - 8);
            o[j + 16] = d * (float) ((b[i].qs[j] >> 4) - 8);
        }
    }
}

static void s_deq_q4_K(const sw_block_q4_K *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        float dmin = sw_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        float *o = y + i * SW_QK_K;
        for (int g = 0; g < 4; g++) {
            uint8_t sc0, m0, sc1, m1;
            sw_k4_scale_min(2 * g, b[i].scales, &sc0, &m0);
            sw_k4_scale_min(2 * g + 1, b[i].scales, &sc1, &m1);
            float d0 = d * sc0, mm0 = dmin * m0;
            float d1 = d * sc1, mm1 = dmin * m1;
            for (int l = 0; l < 32; l++) {
                o[64 * g + l] = d0 * (float) (q[32 * g + l] & 0x0f) - mm0;
                o[64 * g + 32 + l] = d1 * (float) (q[32 * g + l] >> 4) - mm1;
            }
        }
    }
}

static void s_deq_q6_K(const sw_block_q6_K *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        float *o = y + i * SW_QK_K;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b[i].ql + 64 * h;
            const uint8_t *qh = b[i].qh + 32 * h;
            const int8_t *sc = b[i].scales + 8 * h;
            float *oo = o + 128 * h;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = (int) ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = (int) ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = (int) ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = (int) ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                oo[l] = d * sc[is + 0] * q1;
                oo[l + 32] = d * sc[is + 2] * q2;
                oo[l + 64] = d * sc[is + 4] * q3;
                oo[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

/*  Q4_1 / Q5_0 / Q5_1 / IQ4_NL: 32-element blocks, element j's 4 low bits
 *  in qs[j % 16] (low nibble for j < 16), Q5's fifth bit at bit j of qh. */
static inline int s_nib32(const uint8_t *qs, int j)
{
    return j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
}

static inline int s_bit5(const uint8_t *qh, int j)
{
    return ((qh[j >> 3] >> (j & 7)) & 1) << 4;
}

static void s_deq_q4_1(const sw_block_q4_1 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d), m = sw_f16_to_f32(b[i].m);
        for (int j = 0; j < 32; j++)
            y[i * 32 + j] = d * (float) s_nib32(b[i].qs, j) + m;
    }
}

static void s_deq_q5_0(const sw_block_q5_0 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++)
            y[i * 32 + j] = d * (float) ((s_nib32(b[i].qs, j) | s_bit5(b[i].qh, j)) - 16);
    }
}

static void s_deq_q5_1(const sw_block_q5_1 *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d), m = sw_f16_to_f32(b[i].m);
        for (int j = 0; j < 32; j++)
            y[i * 32 + j] = d * (float) (s_nib32(b[i].qs, j) | s_bit5(b[i].qh, j)) + m;
    }
}

static void s_deq_iq4_nl(const sw_block_iq4_nl *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        for (int j = 0; j < 32; j++)
            y[i * 32 + j] = d * (float) sw_iq4nl_grid[s_nib32(b[i].qs, j)];
    }
}

/*  2 low bits of element e (0..255) of a Q2_K / Q3_K block's qs[64]. */
static inline int s_q2bits(const uint8_t *qs, int e)
{
    return (qs[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
}

static void s_deq_q2_K(const sw_block_q2_K *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d), dmin = sw_f16_to_f32(b[i].dmin);
        for (int e = 0; e < SW_QK_K; e++) {
            uint8_t sc = b[i].scales[e / 16];
            y[i * SW_QK_K + e] = d * (float) (sc & 0x0f) * (float) s_q2bits(b[i].qs, e) - dmin * (float) (sc >> 4);
        }
    }
}

/*  Q3_K value of element e in -4..3 (layout in sw_dtype.h). */
static inline int s_q3val(const sw_block_q3_K *b, int e)
{
    int hbit = (b->hmask[e & 31] >> (4 * (e >> 7) + ((e >> 5) & 3))) & 1;
    return s_q2bits(b->qs, e) - (hbit ? 0 : 4);
}

static void s_deq_q3_K(const sw_block_q3_K *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        for (int e = 0; e < SW_QK_K; e++)
            y[i * SW_QK_K + e] = d * (float) (sw_q3k_scale(e / 16, b[i].scales) - 32) * (float) s_q3val(&b[i], e);
    }
}

static void s_deq_q5_K(const sw_block_q5_K *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d), dmin = sw_f16_to_f32(b[i].dmin);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            sw_k4_scale_min(s, b[i].scales, &sc, &m);
            const uint8_t *q = b[i].qs + 32 * (s / 2);
            for (int l = 0; l < 32; l++) {
                int v = ((s & 1) ? (q[l] >> 4) : (q[l] & 0x0f)) | (((b[i].qh[l] >> s) & 1) << 4);
                y[i * SW_QK_K + 32 * s + l] = d * (float) sc * (float) v - dmin * (float) m;
            }
        }
    }
}

static void s_deq_iq4_xs(const sw_block_iq4_xs *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d = sw_f16_to_f32(b[i].d);
        for (int s = 0; s < 8; s++) {
            int ls = ((b[i].scales_l[s / 2] >> (4 * (s & 1))) & 0x0f) | (((b[i].scales_h >> (2 * s)) & 3) << 4);
            float dl = d * (float) (ls - 32);
            for (int j = 0; j < 32; j++)
                y[i * SW_QK_K + 32 * s + j] = dl * (float) sw_iq4nl_grid[s_nib32(b[i].qs + 16 * s, j)];
        }
    }
}

static void s_deq_q8_K(const sw_block_q8_K *b, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < SW_QK_K; j++)
            y[i * SW_QK_K + j] = b[i].d * (float) b[i].qs[j];
}

int sw_dequantize_row(sw_dtype_t type, const void *src, float *dst, int64_t n)
{
    int64_t bs = sw_dtype_block_size(type);
    if (bs == 0 || n < 0 || n % bs != 0 || (!src && n) || (!dst && n))
        return -1;
    int64_t nb = n / bs;
    switch (type) {
    case SW_DTYPE_F32:
        memcpy(dst, src, (size_t) n * 4);
        return 0;
    case SW_DTYPE_F16: {
        const sw_f16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = sw_f16_to_f32(s[i]);
        return 0;
    }
    case SW_DTYPE_BF16: {
        const sw_bf16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = sw_bf16_to_f32(s[i]);
        return 0;
    }
    case SW_DTYPE_Q8_0: s_deq_q8_0(src, dst, nb); return 0;
    case SW_DTYPE_Q4_0: s_deq_q4_0(src, dst, nb); return 0;
    case SW_DTYPE_Q4_K: s_deq_q4_K(src, dst, nb); return 0;
    case SW_DTYPE_Q6_K: s_deq_q6_K(src, dst, nb); return 0;
    case SW_DTYPE_Q8_K: s_deq_q8_K(src, dst, nb); return 0;
    case SW_DTYPE_Q4_1: s_deq_q4_1(src, dst, nb); return 0;
    case SW_DTYPE_Q5_0: s_deq_q5_0(src, dst, nb); return 0;
    case SW_DTYPE_Q5_1: s_deq_q5_1(src, dst, nb); return 0;
    case SW_DTYPE_IQ4_NL: s_deq_iq4_nl(src, dst, nb); return 0;
    case SW_DTYPE_Q2_K: s_deq_q2_K(src, dst, nb); return 0;
    case SW_DTYPE_Q3_K: s_deq_q3_K(src, dst, nb); return 0;
    case SW_DTYPE_Q5_K: s_deq_q5_K(src, dst, nb); return 0;
    case SW_DTYPE_IQ4_XS: s_deq_iq4_xs(src, dst, nb); return 0;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/*  Quantization                                                            */

static inline int s_nearest_int(float f)
{
    return (int) lrintf(f);
}

static void s_q_q8_0(const float *x, sw_block_q8_0 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * SW_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < SW_QK8_0; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = sw_f32_to_f16(d);
        for (int j = 0; j < SW_QK8_0; j++)
            b[i].qs[j] = (int8_t) roundf(xb[j] * id);
    }
}

static void s_q_q4_0(const float *x, sw_block_q4_0 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * SW_QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < SW_QK4_0; j++) {
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = sw_f32_to_f16(d);
        for (int j = 0; j < SW_QK4_0 / 2; j++) {
            int q0 = (int) (xb[j] * id + 8.5f);
            int q1 = (int) (xb[j + 16] * id + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t) (q0 | (q1 << 4));
        }
    }
}

static void s_q_q8_K(const float *x, sw_block_q8_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * SW_QK_K;
        float amax = 0.0f;
        for (int j = 0; j < SW_QK_K; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof(b[i]));
            continue;
        }
        float id = 127.0f / amax;
        for (int j = 0; j < SW_QK_K; j++) {
            int v = s_nearest_int(xb[j] * id);
            b[i].qs[j] = (int8_t) (v > 127 ? 127 : v < -127 ? -127 : v);
        }
        for (int s = 0; s < SW_QK_K / 16; s++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += b[i].qs[16 * s + j];
            b[i].bsums[s] = (int16_t) sum;
        }
        b[i].d = amax / 127.0f;
    }
}

/*  Q4_K / Q5_K block encoding shared by both: 8 sub-blocks of 32 with an
 *  affine map x ~ d*sc*q - dmin*m, q in 0..nmax (15 or 31), sc and m 6-bit
 *  packed into scales[12] (sw_k4_scale_min layout). Writes the f16 d and
 *  dmin and the codes q[256] (element order). */
/*  Weighted choice of one sub-block's affine map x ~ scale * q - mn (q in
 *  0..nmax, mn >= 0) for its n values: for 21 code spacings around the
 *  range's, the codes are rounded and (scale, mn) refitted by weighted least
 *  squares; the pair with the least weighted error wins (w: n weights > 0). */
static void s_k4_sub_weighted(const float *x, const float *w, int n, int nmax, float *scale_out, float *min_out)
{
    float lo = 0.0f, hi = 0.0f; /* range always includes 0 */
    for (int j = 0; j < n; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *scale_out = (hi - lo) / (float) nmax;
    *min_out = -lo;
    if (hi - lo <= 0.0f)
        return;
    double best = INFINITY;
    for (int k = -10; k <= 10; k++) {
        const float iscale = ((float) nmax + 0.1f * (float) k) / (hi - lo);
        double sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
        for (int j = 0; j < n; j++) {
            int q = s_nearest_int(iscale * (x[j] - lo));
            q = q < 0 ? 0 : q > nmax ? nmax : q;
            sw += w[j];
            sq += w[j] * q;
            sqq += w[j] * q * q;
            sx += w[j] * x[j];
            sqx += w[j] * q * x[j];
        }
        /* x ~ a * q + b: weighted least squares; the format needs b <= 0 */
        const double det = sw * sqq - sq * sq;
        if (det <= 0)
            continue;
        double a = (sw * sqx - sq * sx) / det, b = (sqq * sx - sq * sqx) / det;
        if (b > 0) {
            b = 0;
            a = sqq > 0 ? sqx / sqq : 0;
        }
        if (a <= 0)
            continue;
        double err = 0;
        for (int j = 0; j < n; j++) {
            int q = s_nearest_int((float) ((x[j] - b) / a));
            q = q < 0 ? 0 : q > nmax ? nmax : q;
            const double e = a * q + b - x[j];
            err += w[j] * e * e;
        }
        if (err < best) {
            best = err;
            *scale_out = (float) a;
            *min_out = (float) -b;
        }
    }
}

/*  w: NULL, or 256 weights > 0 for the weighted sub-block search. */
static void s_k4_encode(const float *xb, const float *w, int nmax, sw_f16_t *d_out, sw_f16_t *dmin_out,
                        uint8_t *scales, uint8_t *q)
{
    float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < 8; s++) {
        if (w) {
            s_k4_sub_weighted(xb + 32 * s, w + 32 * s, 32, nmax, &scale[s], &minv[s]);
        } else {
            float lo = 0.0f, hi = 0.0f; /* range always includes 0 */
            for (int j = 0; j < 32; j++) {
                lo = fminf(lo, xb[32 * s + j]);
                hi = fmaxf(hi, xb[32 * s + j]);
            }
            scale[s] = (hi - lo) / (float) nmax;
            minv[s] = -lo;
        }
        max_scale = fmaxf(max_scale, scale[s]);
        max_min = fmaxf(max_min, minv[s]);
    }
    /* store d, dmin first and use their f16-rounded values */
    *d_out = sw_f32_to_f16(max_scale / 63.0f);
    *dmin_out = sw_f32_to_f16(max_min / 63.0f);
    const float d = sw_f16_to_f32(*d_out), dmin = sw_f16_to_f32(*dmin_out);
    uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; s++) {
        int a = d > 0.0f ? s_nearest_int(scale[s] / d) : 0;
        int m = dmin > 0.0f ? s_nearest_int(minv[s] / dmin) : 0;
        /* round the min up so that (x + dmin*m) stays >= 0 where possible */
        if (dmin > 0.0f && m < 63 && dmin * m < minv[s])
            m++;
        sc[s] = (uint8_t) (a < 0 ? 0 : a > 63 ? 63 : a);
        mn[s] = (uint8_t) (m < 0 ? 0 : m > 63 ? 63 : m);
    }
    memset(scales, 0, SW_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales[j] |= sc[j];
            scales[j + 4] |= mn[j];
        } else {
            scales[j + 4] = (uint8_t) ((sc[j] & 0x0f) | ((mn[j] & 0x0f) << 4));
            scales[j - 4] |= (uint8_t) ((sc[j] >> 4) << 6);
            scales[j] |= (uint8_t) ((mn[j] >> 4) << 6);
        }
    }
    for (int s = 0; s < 8; s++) {
        float ds = d * sc[s], ms = dmin * mn[s];
        for (int j = 0; j < 32; j++) {
            int v = ds > 0.0f ? s_nearest_int((xb[32 * s + j] + ms) / ds) : 0;
            q[32 * s + j] = (uint8_t) (v < 0 ? 0 : v > nmax ? nmax : v);
        }
    }
}

static void s_q_q4_K(const float *x, const float *w, sw_block_q4_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[SW_QK_K];
        s_k4_encode(x + i * SW_QK_K, w ? w + i * SW_QK_K : NULL, 15, &b[i].d, &b[i].dmin, b[i].scales, q);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * g + l] = (uint8_t) (q[64 * g + l] | (q[64 * g + 32 + l] << 4));
    }
}

static void s_q_q5_K(const float *x, const float *w, sw_block_q5_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[SW_QK_K];
        s_k4_encode(x + i * SW_QK_K, w ? w + i * SW_QK_K : NULL, 31, &b[i].d, &b[i].dmin, b[i].scales, q);
        memset(b[i].qh, 0, sizeof(b[i].qh));
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * g + l] = (uint8_t) ((q[64 * g + l] & 15) | ((q[64 * g + 32 + l] & 15) << 4));
        for (int s = 0; s < 8; s++)
            for (int l = 0; l < 32; l++)
                b[i].qh[l] |= (uint8_t) ((q[32 * s + l] >> 4) << s);
    }
}

/*  Weighted choice of a symmetric scale for n values, codes in
 *  -nmax-1..nmax: for 21 spacings around amax/nmax the codes are rounded,
 *  the scale refitted by weighted least squares, the least weighted error
 *  kept. Returns the scale (>= 0). */
static float s_sym_scale_weighted(const float *x, const float *w, int n, int nmax)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float best_scale = amax / (float) nmax;
    if (amax == 0.0f)
        return 0.0f;
    double best = INFINITY;
    for (int k = -10; k <= 10; k++) {
        const float iscale = ((float) nmax + 0.1f * (float) k) / amax;
        double sqq = 0, sqx = 0;
        for (int j = 0; j < n; j++) {
            int q = s_nearest_int(iscale * x[j]);
            q = q < -nmax - 1 ? -nmax - 1 : q > nmax ? nmax : q;
            sqq += w[j] * q * q;
            sqx += w[j] * q * x[j];
        }
        if (sqq <= 0 || sqx <= 0)
            continue;
        const double a = sqx / sqq;
        double err = 0;
        for (int j = 0; j < n; j++) {
            int q = s_nearest_int((float) (x[j] / a));
            q = q < -nmax - 1 ? -nmax - 1 : q > nmax ? nmax : q;
            err += w[j] * (a * q - x[j]) * (a * q - x[j]);
        }
        if (err < best) {
            best = err;
            best_scale = (float) a;
        }
    }
    return best_scale;
}

/*  w: NULL, or n weights > 0 for the weighted sub-block scale search. */
static void s_q_q6_K(const float *x, const float *w, sw_block_q6_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * SW_QK_K;
        float scale[16], max_abs_scale = 0.0f;
        for (int s = 0; s < 16; s++) {
            float amax = 0.0f;
            for (int j = 0; j < 16; j++)
                amax = fmaxf(amax, fabsf(xb[16 * s + j]));
            scale[s] = w ? s_sym_scale_weighted(xb + 16 * s, w + i * SW_QK_K + 16 * s, 16, 31) : amax / 31.0f;
            max_abs_scale = fmaxf(max_abs_scale, scale[s]);
        }
        b[i].d = sw_f32_to_f16(max_abs_scale / 127.0f);
        float d = sw_f16_to_f32(b[i].d);
        uint8_t q[SW_QK_K];
        for (int s = 0; s < 16; s++) {
            int sc = d > 0.0f ? s_nearest_int(scale[s] / d) : 0;
            sc = sc > 127 ? 127 : sc < 0 ? 0 : sc;
            /* make sure the sub-block's largest value still fits in 31 steps
             * (the weighted search chose its clipping itself) */
            if (!w && sc < 127 && d * sc * 31.0f < scale[s] * 31.0f * 0.999f)
                sc++;
            b[i].scales[s] = (int8_t) sc;
            float ds = d * sc;
            for (int j = 0; j < 16; j++) {
                int v = ds > 0.0f ? s_nearest_int(xb[16 * s + j] / ds) : 0;
                v = v < -32 ? -32 : v > 31 ? 31 : v;
                q[16 * s + j] = (uint8_t) (v + 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = b[i].ql + 64 * h;
            uint8_t *qh = b[i].qh + 32 * h;
            const uint8_t *qq = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                uint8_t q1 = qq[l], q2 = qq[l + 32], q3 = qq[l + 64], q4 = qq[l + 96];
                ql[l] = (uint8_t) ((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                ql[l + 32] = (uint8_t) ((q2 & 0x0f) | ((q4 & 0x0f) << 4));
                qh[l] = (uint8_t) ((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

/*  Packs 32 codes q[0..31] (0..15) into the Q4_0-style nibbles qs[16]. */
static void s_pack_nib32(const uint8_t *q, uint8_t *qs)
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t) ((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
}

/*  Fifth bits of 32 codes (0..31) as the little-endian u32 qh[4]. */
static void s_pack_qh32(const uint8_t *q, uint8_t *qh)
{
    memset(qh, 0, 4);
    for (int j = 0; j < 32; j++)
        qh[j / 8] |= (uint8_t) (((q[j] >> 4) & 1) << (j % 8));
}

/*  Affine 32-element block: x ~ d*q + m, q in 0..nmax, m = block min. */
static void s_affine32(const float *x, int nmax, sw_f16_t *d_out, sw_f16_t *m_out, uint8_t *q)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *d_out = sw_f32_to_f16((hi - lo) / (float) nmax);
    *m_out = sw_f32_to_f16(lo);
    const float d = sw_f16_to_f32(*d_out), m = sw_f16_to_f32(*m_out);
    for (int j = 0; j < 32; j++) {
        int v = d > 0.0f ? s_nearest_int((x[j] - m) / d) : 0;
        q[j] = (uint8_t) (v < 0 ? 0 : v > nmax ? nmax : v);
    }
}

static void s_q_q4_1(const float *x, sw_block_q4_1 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[32];
        s_affine32(x + 32 * i, 15, &b[i].d, &b[i].m, q);
        s_pack_nib32(q, b[i].qs);
    }
}

static void s_q_q5_1(const float *x, sw_block_q5_1 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[32];
        s_affine32(x + 32 * i, 31, &b[i].d, &b[i].m, q);
        s_pack_nib32(q, b[i].qs);
        s_pack_qh32(q, b[i].qh);
    }
}

/*  Q5_0 as ggml's reference rounding for Q4_0, with 32 levels: d = the
 *  signed value of largest magnitude / -16. */
static void s_q_q5_0(const float *x, sw_block_q5_0 *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + 32 * i;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        b[i].d = sw_f32_to_f16(max / -16.0f);
        const float d = sw_f16_to_f32(b[i].d), id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[32];
        for (int j = 0; j < 32; j++) {
            int v = (int) floorf(xb[j] * id + 16.5f);
            q[j] = (uint8_t) (v < 0 ? 0 : v > 31 ? 31 : v);
        }
        s_pack_nib32(q, b[i].qs);
        s_pack_qh32(q, b[i].qh);
    }
}

/*  Nearest grid code to v (in grid units). */
static int s_iq4_code(float v)
{
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabsf(v - sw_iq4nl_grid[k]) < fabsf(v - sw_iq4nl_grid[best]))
            best = k;
    return best;
}

/*  IQ4 scale of 32 values: the one mapping the value of largest magnitude
 *  onto the grid's end -127, then refined once by least squares over the
 *  chosen codes. Writes the codes. */
static float s_iq4_scale32(const float *x, uint8_t *q)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    if (amax == 0.0f) {
        memset(q, 8, 32); /* grid value 1, times 0 */
        return 0.0f;
    }
    float d = max / (float) sw_iq4nl_grid[0];
    double sxg = 0, sgg = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = (uint8_t) s_iq4_code(x[j] / d);
        sxg += (double) x[j] * sw_iq4nl_grid[q[j]];
        sgg += (double) sw_iq4nl_grid[q[j]] * sw_iq4nl_grid[q[j]];
    }
    return sgg > 0 ? (float) (sxg / sgg) : d;
}

static void s_q_iq4_nl(const float *x, sw_block_iq4_nl *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[32];
        b[i].d = sw_f32_to_f16(s_iq4_scale32(x + 32 * i, q));
        const float d = sw_f16_to_f32(b[i].d);
        for (int j = 0; j < 32 && d != 0.0f; j++)
            q[j] = (uint8_t) s_iq4_code(x[32 * i + j] / d);
        s_pack_nib32(q, b[i].qs);
    }
}

static void s_q_iq4_xs(const float *x, sw_block_iq4_xs *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + SW_QK_K * i;
        float sub[8], amax = 0.0f;
        uint8_t q[32];
        for (int s = 0; s < 8; s++) {
            sub[s] = s_iq4_scale32(xb + 32 * s, q);
            amax = fmaxf(amax, fabsf(sub[s]));
        }
        b[i].d = sw_f32_to_f16(amax / 31.0f);
        const float d = sw_f16_to_f32(b[i].d);
        b[i].scales_h = 0;
        memset(b[i].scales_l, 0, sizeof(b[i].scales_l));
        for (int s = 0; s < 8; s++) {
            int l = d != 0.0f ? s_nearest_int(sub[s] / d) : 0;
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            int ls = l + 32;
            b[i].scales_l[s / 2] |= (uint8_t) ((ls & 0x0f) << (4 * (s % 2)));
            b[i].scales_h |= (uint16_t) ((ls >> 4) << (2 * s));
            const float dl = d * (float) l;
            for (int j = 0; j < 32; j++)
                q[j] = dl != 0.0f ? (uint8_t) s_iq4_code(xb[32 * s + j] / dl) : 8;
            s_pack_nib32(q, b[i].qs + 16 * s);
        }
    }
}

/*  Places the 2-bit code of element e of a Q2_K / Q3_K block into qs[64]
 *  (which the caller zeroed). */
static void s_put_q2(uint8_t *qs, int e, int v)
{
    qs[32 * (e / 128) + e % 32] |= (uint8_t) ((v & 3) << (2 * ((e % 128) / 32)));
}

/*  w: NULL, or 256 weights per block > 0 for the weighted sub-block search. */
static void s_q_q2_K(const float *x, const float *w, sw_block_q2_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + SW_QK_K * i;
        float scale[16], minv[16], max_scale = 0.0f, max_min = 0.0f;
        for (int s = 0; s < 16; s++) {
            if (w) {
                s_k4_sub_weighted(xb + 16 * s, w + SW_QK_K * i + 16 * s, 16, 3, &scale[s], &minv[s]);
            } else {
                float lo = 0.0f, hi = 0.0f; /* range always includes 0 */
                for (int j = 0; j < 16; j++) {
                    lo = fminf(lo, xb[16 * s + j]);
                    hi = fmaxf(hi, xb[16 * s + j]);
                }
                scale[s] = (hi - lo) / 3.0f;
                minv[s] = -lo;
            }
            max_scale = fmaxf(max_scale, scale[s]);
            max_min = fmaxf(max_min, minv[s]);
        }
        b[i].d = sw_f32_to_f16(max_scale / 15.0f);
        b[i].dmin = sw_f32_to_f16(max_min / 15.0f);
        const float d = sw_f16_to_f32(b[i].d), dmin = sw_f16_to_f32(b[i].dmin);
        memset(b[i].qs, 0, sizeof(b[i].qs));
        for (int s = 0; s < 16; s++) {
            int a = d > 0.0f ? s_nearest_int(scale[s] / d) : 0;
            int m = dmin > 0.0f ? s_nearest_int(minv[s] / dmin) : 0;
            if (!w && dmin > 0.0f && m < 15 && dmin * m < minv[s])
                m++;
            a = a < 0 ? 0 : a > 15 ? 15 : a;
            m = m < 0 ? 0 : m > 15 ? 15 : m;
            b[i].scales[s] = (uint8_t) (a | (m << 4));
            const float ds = d * a, ms = dmin * m;
            for (int j = 0; j < 16; j++) {
                int v = ds > 0.0f ? s_nearest_int((xb[16 * s + j] + ms) / ds) : 0;
                s_put_q2(b[i].qs, 16 * s + j, v < 0 ? 0 : v > 3 ? 3 : v);
            }
        }
    }
}

/*  w: NULL, or 256 weights per block > 0 for the weighted sub-block search. */
static void s_q_q3_K(const float *x, const float *w, sw_block_q3_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + SW_QK_K * i;
        float scale[16], max_scale = 0.0f;
        for (int s = 0; s < 16; s++) {
            float amax = 0.0f;
            for (int j = 0; j < 16; j++)
                amax = fmaxf(amax, fabsf(xb[16 * s + j]));
            scale[s] = w ? s_sym_scale_weighted(xb + 16 * s, w + SW_QK_K * i + 16 * s, 16, 3)
                         : amax / 4.0f; /* codes -4..3 */
            max_scale = fmaxf(max_scale, scale[s]);
        }
        b[i].d = sw_f32_to_f16(max_scale / 31.0f);
        const float d = sw_f16_to_f32(b[i].d);
        memset(b[i].qs, 0, sizeof(b[i].qs));
        memset(b[i].hmask, 0, sizeof(b[i].hmask));
        memset(b[i].scales, 0, sizeof(b[i].scales));
        for (int s = 0; s < 16; s++) {
            int a = d > 0.0f ? s_nearest_int(scale[s] / d) : 0;
            a = a < 0 ? 0 : a > 31 ? 31 : a;
            const int sc = a + 32; /* stored with the +32 offset */
            if (s < 8)
                b[i].scales[s] |= (uint8_t) (sc & 0x0f);
            else
                b[i].scales[s - 8] |= (uint8_t) ((sc & 0x0f) << 4);
            b[i].scales[8 + s % 4] |= (uint8_t) ((sc >> 4) << (2 * (s / 4)));
            const float ds = d * a;
            for (int j = 0; j < 16; j++) {
                const int e = 16 * s + j;
                int v = ds > 0.0f ? s_nearest_int(xb[e] / ds) : 0;
                v = (v < -4 ? -4 : v > 3 ? 3 : v) + 4; /* 0..7: 2 low bits + high bit */
                s_put_q2(b[i].qs, e, v);
                b[i].hmask[e % 32] |= (uint8_t) ((v >> 2) << (4 * (e / 128) + (e % 128) / 32));
            }
        }
    }
}

int sw_quantize_row(sw_dtype_t type, const float *src, void *dst, int64_t n)
{
    int64_t bs = sw_dtype_block_size(type);
    if (bs == 0 || n < 0 || n % bs != 0 || (!src && n) || (!dst && n))
        return -1;
    int64_t nb = n / bs;
    switch (type) {
    case SW_DTYPE_F32:
        memcpy(dst, src, (size_t) n * 4);
        return 0;
    case SW_DTYPE_F16: {
        sw_f16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = sw_f32_to_f16(src[i]);
        return 0;
    }
    case SW_DTYPE_BF16: {
        sw_bf16_t *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = sw_f32_to_bf16(src[i]);
        return 0;
    }
    case SW_DTYPE_Q8_0: s_q_q8_0(src, dst, nb); return 0;
    case SW_DTYPE_Q4_0: s_q_q4_0(src, dst, nb); return 0;
    case SW_DTYPE_Q8_K: s_q_q8_K(src, dst, nb); return 0;
    case SW_DTYPE_Q4_K: s_q_q4_K(src, NULL, dst, nb); return 0;
    case SW_DTYPE_Q6_K: s_q_q6_K(src, NULL, dst, nb); return 0;
    case SW_DTYPE_Q5_K: s_q_q5_K(src, NULL, dst, nb); return 0;
    case SW_DTYPE_Q4_1: s_q_q4_1(src, dst, nb); return 0;
    case SW_DTYPE_Q5_0: s_q_q5_0(src, dst, nb); return 0;
    case SW_DTYPE_Q5_1: s_q_q5_1(src, dst, nb); return 0;
    case SW_DTYPE_IQ4_NL: s_q_iq4_nl(src, dst, nb); return 0;
    case SW_DTYPE_IQ4_XS: s_q_iq4_xs(src, dst, nb); return 0;
    case SW_DTYPE_Q2_K: s_q_q2_K(src, NULL, dst, nb); return 0;
    case SW_DTYPE_Q3_K: s_q_q3_K(src, NULL, dst, nb); return 0;
    }
    return -1;
}

int sw_quantize_row_weighted(sw_dtype_t type, const float *src, void *dst, int64_t n, const float *w)
{
    int64_t bs = sw_dtype_block_size(type);
    if (!w || bs == 0 || n < 0 || n % bs != 0 || (!src && n) || (!dst && n))
        return sw_quantize_row(type, src, dst, n);
    for (int64_t i = 0; i < n; i++)
        if (!(w[i] > 0.0f) || !isfinite(w[i]))
            return -1;
    switch (type) {
    case SW_DTYPE_Q4_K: s_q_q4_K(src, w, dst, n / bs); return 0;
    case SW_DTYPE_Q5_K: s_q_q5_K(src, w, dst, n / bs); return 0;
    case SW_DTYPE_Q6_K: s_q_q6_K(src, w, dst, n / bs); return 0;
    case SW_DTYPE_Q2_K: s_q_q2_K(src, w, dst, n / bs); return 0;
    case SW_DTYPE_Q3_K: s_q_q3_K(src, w, dst, n / bs); return 0;
    default: return sw_quantize_row(type, src, dst, n);
    }
}
