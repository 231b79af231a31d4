/*  sw_matmul_avx512.c: AVX-512 VNNI kernels for r16-repacked Q8_0 / Q4_0
 *  (x86-64, picked at run time; see sw_kernels_impl.h for the layout).
 *
 *  One zmm holds 4 consecutive weights of each of the 16 rows of a group.
 *  vpdpbusd multiplies it with 4 activation bytes broadcast to every lane, so
 *  each lane accumulates its own row: no horizontal sums, and a weight
 *  register is reused for every token of a tile (up to S_T tokens).
 *  Per block and token the int32 sums start at the block bias xb and are
 *  scaled by d_w (16 lanes) * d_x once.
 */
#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#include "sw_kernels_impl.h"

#define SW_TGT "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
#define SW_512 __attribute__((target(SW_TGT)))
#define SW_512_INLINE static inline __attribute__((always_inline, target(SW_TGT)))

#define S_T 8 /* tokens per tile */

SW_512_INLINE __m512i s_bcast(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/*  Loads the 8 weight registers of block b: w[k] = elements 4k..4k+3. */
SW_512_INLINE void s_load_w(const uint8_t *rec, int q4, __m512i w[8])
{
    if (!q4) {
        for (int k = 0; k < 8; k++)
            w[k] = _mm512_loadu_si512((const void *) (rec + 32 + 64 * k));
    } else {
        const __m512i m4 = _mm512_set1_epi8(0x0f);
        for (int c = 0; c < 4; c++) {
            __m512i v = _mm512_loadu_si512((const void *) (rec + 32 + 64 * c));
            w[c] = _mm512_and_si512(v, m4);
            w[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
    }
}

SW_512_INLINE void s_tile_body(const sw__tile_t *a, int64_t t0, const int T, const int q4)
{
    const size_t rec_bytes = q4 ? SW__REC_Q4_0 : SW__REC_Q8_0;
    const int8_t *xq = a->xq + t0 * a->xq_stride;
    const float *xd = a->xd + t0 * a->xs_stride;
    const int32_t *xb = a->xb + t0 * a->xs_stride;
    __m512 acc[S_T];
    for (int t = 0; t < S_T; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *rec = a->wg + (size_t) b * rec_bytes;
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) rec));
        __m512i w[8];
        s_load_w(rec, q4, w);
        for (int t = 0; t < T; t++) {
            const int8_t *xp = xq + t * a->xq_stride + b * 32;
            __m512i s0 = _mm512_set1_epi32(xb[t * a->xs_stride + b]);
            if (T < 4) {
                /* few tokens: two chains to hide the vpdpbusd latency */
                __m512i s1 = _mm512_setzero_si512();
                for (int k = 0; k < 8; k += 2) {
                    s0 = _mm512_dpbusd_epi32(s0, w[k], s_bcast(xp + 4 * k));
                    s1 = _mm512_dpbusd_epi32(s1, w[k + 1], s_bcast(xp + 4 * k + 4));
                }
                s0 = _mm512_add_epi32(s0, s1);
            } else {
                for (int k = 0; k < 8; k++)
                    s0 = _mm512_dpbusd_epi32(s0, w[k], s_bcast(xp + 4 * k));
            }
            __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(xd[t * a->xs_stride + b]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), sc, acc[t]);
        }
    }
    const __mmask16 m = (__mmask16) (a->n_rows >= 16 ? 0xffff : ((1u << a->n_rows) - 1));
    for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(a->y + (t0 + t) * a->ldy, m, acc[t]);
}

#define S_DISPATCH(q4)                                                                 \
    for (int64_t t0 = 0; t0 < a->n_tok; t0 += S_T) {                                   \
        switch (a->n_tok - t0 >= S_T ? S_T : (int) (a->n_tok - t0)) {                  \
        case 1: s_tile_body(a, t0, 1, q4); break;                                      \
        case 2: s_tile_body(a, t0, 2, q4); break;                                      \
        case 3: s_tile_body(a, t0, 3, q4); break;                                      \
        case 4: s_tile_body(a, t0, 4, q4); break;                                      \
        case 5: s_tile_body(a, t0, 5, q4); break;                                      \
        case 6: s_tile_body(a, t0, 6, q4); break;                                      \
        case 7: s_tile_body(a, t0, 7, q4); break;                                      \
        default: s_tile_body(a, t0, 8, q4); break;                                     \
        }                                                                              \
    }

SW_512 static void s_tile_q8_0(const sw__tile_t *a)
{
    S_DISPATCH(0)
}

SW_512 static void s_tile_q4_0(const sw__tile_t *a)
{
    S_DISPATCH(1)
}

/*  roundf (half away from zero) on 16 lanes. */
SW_512_INLINE __m512 s_roundf16(__m512 v)
{
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_abs_ps(_mm512_sub_ps(v, t));
    __mmask16 m = _mm512_cmp_ps_mask(f, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int) 0x80000000u)),
                                                     _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    return _mm512_mask_add_ps(t, m, t, one);
}

/*  Same results as sw_quantize_row(Q8_0) (see sw__quant_scalar). */
SW_512 static void s_quant(const float *x, int64_t n_in, int8_t *xq, float *xd, int32_t *xb, int bias_mul)
{
    for (int64_t b = 0; b < n_in / 32; b++) {
        __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m512 idv = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvttps_epi32(s_roundf16(_mm512_mul_ps(v0, idv)));
        __m512i q1 = _mm512_cvttps_epi32(s_roundf16(_mm512_mul_ps(v1, idv)));
        _mm_storeu_si128((__m128i *) (xq + 32 * b), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *) (xq + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
        xd[b] = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
        xb[b] = -bias_mul * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

const sw__kernels_t sw__kernels_avx512 = {
    .name = "avx512vnni",
    .rows = {
        [SW__K_F32] = sw__avx2_rows_f32,
        [SW__K_F16] = sw__avx2_rows_f16,
        [SW__K_BF16] = sw__avx2_rows_bf16,
        [SW__K_Q4_K] = sw__avx2_rows_q4_K,
        [SW__K_Q6_K] = sw__avx2_rows_q6_K,
        [SW__K_Q4_1] = sw__avx2_rows_q4_1,
        [SW__K_Q5_0] = sw__avx2_rows_q5_0,
        [SW__K_Q5_1] = sw__avx2_rows_q5_1,
        [SW__K_IQ4_NL] = sw__avx2_rows_iq4_nl,
        [SW__K_Q2_K] = sw__avx2_rows_q2_K,
        [SW__K_Q3_K] = sw__avx2_rows_q3_K,
        [SW__K_Q5_K] = sw__avx2_rows_q5_K,
        [SW__K_IQ4_XS] = sw__avx2_rows_iq4_xs,
    },
    .tile_q8_0 = s_tile_q8_0,
    .tile_q4_0 = s_tile_q4_0,
    .quant = s_quant,
    .q8_0_bias = 128,
};

#else
typedef int sw__matmul_avx512_unused_t;
#endif
