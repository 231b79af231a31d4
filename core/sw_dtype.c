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
};

_Static_assert(sizeof(sw_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(sw_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(sw_block_q4_K) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(sw_block_q6_K) == 210, "q6_K block is 210 bytes");
_Static_assert(sizeof(sw_block_q8_K) == 292, "q8_K block is 292 bytes");

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

/*  6-bit scale and min of sub-block j (0..7) of a Q4_K block. */
static inline void s_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t) ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t) ((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
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
            s_q4k_scale_min(2 * g, b[i].scales, &sc0, &m0);
            s_q4k_scale_min(2 * g + 1, b[i].scales, &sc1, &m1);
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

static void s_q_q4_K(const float *x, sw_block_q4_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * SW_QK_K;
        float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
        for (int s = 0; s < 8; s++) {
            float lo = 0.0f, hi = 0.0f; /* range always includes 0 */
            for (int j = 0; j < 32; j++) {
                lo = fminf(lo, xb[32 * s + j]);
                hi = fmaxf(hi, xb[32 * s + j]);
            }
            scale[s] = (hi - lo) / 15.0f;
            minv[s] = -lo;
            max_scale = fmaxf(max_scale, scale[s]);
            max_min = fmaxf(max_min, minv[s]);
        }
        float d = max_scale / 63.0f, dmin = max_min / 63.0f;
        /* store d, dmin first and use their f16-rounded values */
        b[i].d = sw_f32_to_f16(d);
        b[i].dmin = sw_f32_to_f16(dmin);
        d = sw_f16_to_f32(b[i].d);
        dmin = sw_f16_to_f32(b[i].dmin);
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
        memset(b[i].scales, 0, sizeof(b[i].scales));
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                b[i].scales[j] |= sc[j];
                b[i].scales[j + 4] |= mn[j];
            } else {
                b[i].scales[j + 4] = (uint8_t) ((sc[j] & 0x0f) | ((mn[j] & 0x0f) << 4));
                b[i].scales[j - 4] |= (uint8_t) ((sc[j] >> 4) << 6);
                b[i].scales[j] |= (uint8_t) ((mn[j] >> 4) << 6);
            }
        }
        uint8_t q[SW_QK_K];
        for (int s = 0; s < 8; s++) {
            float ds = d * sc[s], ms = dmin * mn[s];
            for (int j = 0; j < 32; j++) {
                int v = ds > 0.0f ? s_nearest_int((xb[32 * s + j] + ms) / ds) : 0;
                q[32 * s + j] = (uint8_t) (v < 0 ? 0 : v > 15 ? 15 : v);
            }
        }
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * g + l] = (uint8_t) (q[64 * g + l] | (q[64 * g + 32 + l] << 4));
    }
}

static void s_q_q6_K(const float *x, sw_block_q6_K *b, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * SW_QK_K;
        float scale[16], max_abs_scale = 0.0f;
        for (int s = 0; s < 16; s++) {
            float amax = 0.0f;
            for (int j = 0; j < 16; j++)
                amax = fmaxf(amax, fabsf(xb[16 * s + j]));
            scale[s] = amax / 31.0f;
            max_abs_scale = fmaxf(max_abs_scale, scale[s]);
        }
        b[i].d = sw_f32_to_f16(max_abs_scale / 127.0f);
        float d = sw_f16_to_f32(b[i].d);
        uint8_t q[SW_QK_K];
        for (int s = 0; s < 16; s++) {
            int sc = d > 0.0f ? s_nearest_int(scale[s] / d) : 0;
            sc = sc > 127 ? 127 : sc < 0 ? 0 : sc;
            /* make sure the sub-block's largest value still fits in 31 steps */
            if (sc < 127 && d * sc * 31.0f < scale[s] * 31.0f * 0.999f)
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
    case SW_DTYPE_Q4_K: s_q_q4_K(src, dst, nb); return 0;
    case SW_DTYPE_Q6_K: s_q_q6_K(src, dst, nb); return 0;
    }
    return -1;
}
