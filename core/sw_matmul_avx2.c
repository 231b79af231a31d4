/*  sw_matmul_avx2.c: AVX2 + FMA + F16C kernels (x86-64).
 *
 *  Every function carries a target attribute, so this file builds without
 *  -mavx2 (meson -Dx86_baseline=generic) and sw_matmul.c only calls it after
 *  __builtin_cpu_supports said yes. The rows kernels here (f32/f16/bf16,
 *  Q4_K, Q6_K) are also used by the AVX-512 set.
 */
#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "sw_kernels_impl.h"

#define SW_AVX2 __attribute__((target("avx2,fma,f16c")))
#define SW_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

SW_AVX2_INLINE float s_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SW_AVX2_INLINE int32_t s_hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/*  f16 to f32 by F16C (the library's sw_f16_to_f32 is an out-of-line call). */
SW_AVX2_INLINE float s_f16(sw_f16_t h)
{
    return _cvtsh_ss(h);
}

SW_AVX2_INLINE int32_t s_load_i32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------------------ */
/*  f32 / f16 / bf16 rows: up to 4 tokens per pass over a weight row        */

enum { S_F32, S_F16, S_BF16 };

SW_AVX2_INLINE __m256 s_load_w8(const uint8_t *w, int64_t i, int kind)
{
    if (kind == S_F32)
        return _mm256_loadu_ps((const float *) w + i);
    if (kind == S_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) ((const uint16_t *) w + i)));
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) ((const uint16_t *) w + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

SW_AVX2_INLINE float s_load_w1(const uint8_t *w, int64_t i, int kind)
{
    if (kind == S_F32)
        return ((const float *) w)[i];
    if (kind == S_F16)
        return sw_f16_to_f32(((const uint16_t *) w)[i]);
    return sw_bf16_to_f32(((const uint16_t *) w)[i]);
}

SW_AVX2_INLINE void s_rows_float(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                                 const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy, int kind)
{
    const int64_t n16 = n_in & ~(int64_t) 15;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t) r * row_bytes;
        for (int64_t t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? (int) (n_tok - t0) : 4;
            const float *x[4];
            for (int t = 0; t < 4; t++)
                x[t] = (const float *) ((const char *) xa + (size_t) (t0 + (t < T ? t : 0)) * xa_stride);
            __m256 a0[4], a1[4];
            for (int t = 0; t < 4; t++)
                a0[t] = a1[t] = _mm256_setzero_ps();
            for (int64_t i = 0; i < n16; i += 16) {
                __m256 w0 = s_load_w8(wr, i, kind), w1 = s_load_w8(wr, i + 8, kind);
                for (int t = 0; t < 4; t++) {
                    if (t < T) {
                        a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + i), a0[t]);
                        a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + i + 8), a1[t]);
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                float s = s_hsum(_mm256_add_ps(a0[t], a1[t]));
                for (int64_t i = n16; i < n_in; i++)
                    s += s_load_w1(wr, i, kind) * x[t][i];
                y[(t0 + t) * ldy + r] = s;
            }
        }
    }
}

SW_AVX2 void sw__avx2_rows_f32(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                               const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    s_rows_float(w, row_bytes, n_in, r0, r1, xa, xa_stride, n_tok, y, ldy, S_F32);
}

SW_AVX2 void sw__avx2_rows_f16(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                               const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    s_rows_float(w, row_bytes, n_in, r0, r1, xa, xa_stride, n_tok, y, ldy, S_F16);
}

SW_AVX2 void sw__avx2_rows_bf16(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                                const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)
{
    s_rows_float(w, row_bytes, n_in, r0, r1, xa, xa_stride, n_tok, y, ldy, S_BF16);
}

/* ------------------------------------------------------------------------ */
/*  K-quants with Q8_K activations (GGUF layout)                            */

#define S_KT 4 /* tokens per pass over a row (SW__ROWS_FN) */

/*  32 bytes, byte j = 0xff where bit j of h is set (Q5 fifth bits). */
SW_AVX2_INLINE __m256i s_bits_to_bytes(uint32_t h)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long) 0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int) h), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/*  y[t] = dot(Q4_K or Q5_K row, Q8_K row of token t) for t < T: the weights
 *  of a block are unpacked once and used for every token. Both blocks start
 *  d | dmin | scales[12]; Q5_K then has qh[32] before qs (sw_dtype.h). */
SW_AVX2_INLINE void s_dot_k45(const uint8_t *w, const sw_block_q8_K *const *x, int64_t nb, float *out, const int T,
                              const int q5)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const size_t bb = q5 ? sizeof(sw_block_q5_K) : sizeof(sw_block_q4_K);
    __m256 acc[S_KT], accm[S_KT];
    for (int t = 0; t < S_KT; t++)
        acc[t] = accm[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t) b * bb;
        const uint8_t *qs = blk + (q5 ? 48 : 16);
        /* scales as scalars in registers, mins as a vector of 16 i16 (each
         * twice, against the Q8_K sums of 16) */
        uint32_t sc_lo, sc_hi, mn_lo, mn_hi;
        sw__k4_scales(blk + 4, &sc_lo, &sc_hi, &mn_lo, &mn_hi);
        const uint64_t sc64 = (uint64_t) sc_lo | ((uint64_t) sc_hi << 32);
        const __m128i mnb = _mm_setr_epi32((int) mn_lo, (int) mn_hi, 0, 0);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mnb, mnb));
        __m256i q[8];
        for (int g = 0; g < 4; g++) {
            __m256i v = _mm256_loadu_si256((const __m256i *) (qs + 32 * g));
            q[2 * g] = _mm256_and_si256(v, m4);
            q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
        if (q5) {
            /* bit j of qh[l] is bit 4 of element 32j + l */
            const __m256i hh = _mm256_loadu_si256((const __m256i *) (blk + 16));
            const __m256i b4 = _mm256_set1_epi8(0x10);
            for (int j = 0; j < 8; j++) {
                __m256i bit = _mm256_set1_epi8((char) (1 << j));
                __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hh, bit), bit);
                q[j] = _mm256_or_si256(q[j], _mm256_and_si256(set, b4));
            }
        }
        sw_f16_t d16, dm16;
        memcpy(&d16, blk, 2);
        memcpy(&dm16, blk + 2, 2);
        const float dw = s_f16(d16), dmw = s_f16(dm16);
        __m256i scv[8];
        for (int j = 0; j < 8; j++)
            scv[j] = _mm256_set1_epi16((short) ((sc64 >> (8 * j)) & 0xff));
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m256i summ = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *) xb->bsums));
            __m256i sumi = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *) (xb->qs + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], xv), scv[j]));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(sumi), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmw * xb->d), _mm256_cvtepi32_ps(summ), accm[t]);
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = s_hsum(_mm256_sub_ps(acc[t], accm[t]));
}

/*  Q2_K and Q3_K: 16 sub-blocks of 16 with 2-bit codes; q[k] (k = 4n + j)
 *  holds elements 128n + 32j .. +31, i.e. sub-blocks 2k and 2k+1 in its two
 *  128-bit lanes, as in Q6_K. Q2_K: unsigned q, mins through the Q8_K sums
 *  of 16. Q3_K: unsigned q + 4*hbit (0..7), the -4 offset folded in through
 *  the sums (sum sc*(u-4)*x = sum sc*u*x - 4 sum sc*bsum). */
SW_AVX2_INLINE void s_dot_q23(const uint8_t *w, const sw_block_q8_K *const *x, int64_t nb, float *out, const int T,
                              const int q3)
{
    const __m256i m2 = _mm256_set1_epi8(3);
    const size_t bb = q3 ? sizeof(sw_block_q3_K) : sizeof(sw_block_q2_K);
    __m256 acc[S_KT];
    for (int t = 0; t < S_KT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t) b * bb;
        const uint8_t *qs = blk + (q3 ? 32 : 16);
        /* scales (and mins) as 16 i16 built in registers: scalar stores
         * followed by a vector load would stall on store forwarding */
        __m128i sc8, mn8;
        float dw, dmw;
        sw__q23_scales(blk, q3, &sc8, &mn8, &dw, &dmw);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        /* Q3_K: the offset term 4*sc; Q2_K: the mins */
        const __m256i mn16 = q3 ? _mm256_slli_epi16(sc16, 2) : _mm256_cvtepu8_epi16(mn8);
        int16_t sc[16];
        _mm256_storeu_si256((__m256i *) sc, sc16); /* scalars for the broadcasts below */
        __m256i q[8], scv[8];
        const __m256i hm = q3 ? _mm256_loadu_si256((const __m256i *) blk) : _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            __m256i v = _mm256_loadu_si256((const __m256i *) (qs + 32 * n));
            for (int j = 0; j < 4; j++) {
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m2);
                if (q3) {
                    __m256i bit = _mm256_set1_epi8((char) (1 << (4 * n + j)));
                    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
                    u = _mm256_or_si256(u, _mm256_and_si256(set, _mm256_set1_epi8(4)));
                }
                q[4 * n + j] = u;
                int k = 2 * (4 * n + j);
                scv[4 * n + j] = _mm256_set_m128i(_mm_set1_epi16(sc[k + 1]), _mm_set1_epi16(sc[k]));
            }
        }
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m256i bs16 = _mm256_loadu_si256((const __m256i *) xb->bsums);
            __m256i sumi = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *) (xb->qs + 32 * k));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], xv), scv[k]));
            }
            __m256i summ = _mm256_madd_epi16(mn16, bs16);
            if (q3) {
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi, summ)),
                                         acc[t]);
            } else {
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(sumi), acc[t]);
                acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmw * xb->d), _mm256_cvtepi32_ps(summ), acc[t]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = s_hsum(acc[t]);
}

/*  IQ4_XS: 4-bit codes looked up in the non-linear grid (pshufb), signed
 *  products by the sign trick |w| * sign(x, w); 8 sub-blocks of 32 with
 *  6-bit scales ls - 32. */
SW_AVX2_INLINE void s_dot_iq4_xs(const uint8_t *row, const sw_block_q8_K *const *x, int64_t nb, float *out,
                                 const int T, const int kind)
{
    const sw_block_iq4_xs *w = (const sw_block_iq4_xs *) row;
    (void) kind;
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i grid = _mm_loadu_si128((const __m128i *) sw_iq4nl_grid);
    __m256 acc[S_KT];
    for (int t = 0; t < S_KT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i aw[8], sw[8], scv[8];
        for (int s = 0; s < 8; s++) {
            __m128i v = _mm_loadu_si128((const __m128i *) (w[b].qs + 16 * s));
            __m128i lo = _mm_shuffle_epi8(grid, _mm_and_si128(v, m4));
            __m128i hi = _mm_shuffle_epi8(grid, _mm_and_si128(_mm_srli_epi16(v, 4), m4));
            sw[s] = _mm256_set_m128i(hi, lo);
            aw[s] = _mm256_sign_epi8(sw[s], sw[s]);
            int ls = ((w[b].scales_l[s / 2] >> (4 * (s & 1))) & 0x0f) | (((w[b].scales_h >> (2 * s)) & 3) << 4);
            scv[s] = _mm256_set1_epi16((int16_t) (ls - 32));
        }
        const float dw = s_f16(w[b].d);
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m256i sumi = _mm256_setzero_si256();
            for (int s = 0; s < 8; s++) {
                __m256i xv = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) (xb->qs + 32 * s)), sw[s]);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(aw[s], xv), scv[s]));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = s_hsum(acc[t]);
}

/*  Q6_K: unsigned 6-bit q times x with maddubs, the -32 offset folded in
 *  through the Q8_K sums of 16; weights unpacked once for T tokens. */
SW_AVX2_INLINE void s_dot_q6_K(const uint8_t *row, const sw_block_q8_K *const *x, int64_t nb, float *out,
                               const int T, const int kind)
{
    const sw_block_q6_K *w = (const sw_block_q6_K *) row;
    (void) kind;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m3 = _mm256_set1_epi8(0x30);
    __m256 acc[S_KT];
    for (int t = 0; t < S_KT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *sc = w[b].scales;
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) sc));
        __m256i q[8], scv[8];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h;
            const uint8_t *qh = w[b].qh + 32 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *) ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *) (ql + 32));
            __m256i hh = _mm256_loadu_si256((const __m256i *) qh);
            q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m3));
            q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m3));
            q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m3));
            q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                           _mm256_and_si256(_mm256_srli_epi16(hh, 2), m3));
            for (int k = 0; k < 4; k++) {
                int s0 = 8 * h + 2 * k;
                scv[4 * h + k] = _mm256_set_m128i(_mm_set1_epi16(sc[s0 + 1]), _mm_set1_epi16(sc[s0]));
            }
        }
        const float dw = s_f16(w[b].d);
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m256i bs16 = _mm256_loadu_si256((const __m256i *) xb->bsums);
            __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs16), 5));
            for (int k = 0; k < 8; k++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *) (xb->qs + 32 * k));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], xv), scv[k]));
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = s_hsum(acc[t]);
}

/* ------------------------------------------------------------------------ */
/*  32-element types (Q4_1, Q5_0, Q5_1, IQ4_NL) with Q8_0 activations       */

enum { S_Q4_1, S_Q5_0, S_Q5_1, S_IQ4_NL };

/*  y[t] = dot(row, Q8_0 row of token t) for t < T. Each weight block is
 *  decoded once into 32 bytes in element order (low nibbles 0..15, high
 *  16..31): unsigned codes for Q4_1/Q5_1 (x = d*q + m; the m part needs the
 *  block sum of x), signed values for Q5_0 (q - 16) and IQ4_NL (grid), which
 *  go through the sign trick. */
SW_AVX2_INLINE void s_dot_b32(const uint8_t *w, const sw_block_q8_0 *const *x, int64_t nb, float *out, const int T,
                              const int kind)
{
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m256i ones16 = _mm256_set1_epi16(1), ones8 = _mm256_set1_epi8(1);
    const size_t bb = kind == S_Q4_1 ? sizeof(sw_block_q4_1)
                      : kind == S_Q5_0 ? sizeof(sw_block_q5_0)
                      : kind == S_Q5_1 ? sizeof(sw_block_q5_1)
                                       : sizeof(sw_block_iq4_nl);
    const int has_m = kind == S_Q4_1 || kind == S_Q5_1;
    const int is_signed = kind == S_Q5_0 || kind == S_IQ4_NL;
    /* qs offset: after d (and m) (and qh[4]) */
    const size_t qo = kind == S_Q4_1 ? 4 : kind == S_Q5_0 ? 6 : kind == S_Q5_1 ? 8 : 2;
    __m256 acc[S_KT], accm[S_KT];
    for (int t = 0; t < S_KT; t++)
        acc[t] = accm[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t) b * bb;
        __m128i v = _mm_loadu_si128((const __m128i *) (blk + qo));
        __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
        if (kind == S_IQ4_NL) {
            const __m128i grid = _mm_loadu_si128((const __m128i *) sw_iq4nl_grid);
            lo = _mm_shuffle_epi8(grid, lo);
            hi = _mm_shuffle_epi8(grid, hi);
        }
        __m256i q = _mm256_set_m128i(hi, lo);
        if (kind == S_Q5_0 || kind == S_Q5_1) {
            uint32_t h;
            memcpy(&h, blk + qo - 4, 4);
            q = _mm256_or_si256(q, _mm256_and_si256(s_bits_to_bytes(h), _mm256_set1_epi8(0x10)));
            if (kind == S_Q5_0)
                q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        }
        const __m256i aq = is_signed ? _mm256_sign_epi8(q, q) : q;
        sw_f16_t d16, m16;
        memcpy(&d16, blk, 2);
        memcpy(&m16, blk + 2, 2);
        const float dw = s_f16(d16), mw = has_m ? s_f16(m16) : 0.0f;
        for (int t = 0; t < T; t++) {
            const sw_block_q8_0 *xb = &x[t][b];
            __m256i xv = _mm256_loadu_si256((const __m256i *) xb->qs);
            const float dx = s_f16(xb->d);
            __m256i xs = is_signed ? _mm256_sign_epi8(xv, q) : xv;
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, xs), ones16);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(p), acc[t]);
            if (has_m) {
                __m256i sx = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, xv), ones16);
                accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(mw * dx), _mm256_cvtepi32_ps(sx), accm[t]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = s_hsum(_mm256_add_ps(acc[t], accm[t]));
}

SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q4_1, s_dot_b32, S_Q4_1, sw_block_q8_0, 32)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q5_0, s_dot_b32, S_Q5_0, sw_block_q8_0, 32)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q5_1, s_dot_b32, S_Q5_1, sw_block_q8_0, 32)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_iq4_nl, s_dot_b32, S_IQ4_NL, sw_block_q8_0, 32)

SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q4_K, s_dot_k45, 0, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q5_K, s_dot_k45, 1, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q6_K, s_dot_q6_K, 0, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q2_K, s_dot_q23, 0, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_q3_K, s_dot_q23, 1, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_AVX2, sw__avx2_rows_iq4_xs, s_dot_iq4_xs, 0, sw_block_q8_K, SW_QK_K)

/* ------------------------------------------------------------------------ */
/*  Activation quantizer (bit-identical to sw_quantize_row Q8_0)            */

/*  roundf (half away from zero) on 8 lanes. */
SW_AVX2_INLINE __m256 s_roundf8(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 m = _mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(m, one));
}

SW_AVX2 static void s_quant(const float *x, int64_t n_in, int8_t *xq, float *xd, int32_t *xb, int bias_mul)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n_in / 32; b++) {
        __m256 v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_loadu_ps(x + 32 * b + 8 * k);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvttps_epi32(s_roundf8(_mm256_mul_ps(v[k], idv)));
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
        __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *) (xq + 32 * b), p);
        xd[b] = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
        xb[b] = -bias_mul * s_hsum_i32(sum);
    }
}

/*  Q8_K rows, byte for byte as sw_quantize_row(Q8_K) (the reasoning of the
 *  AVX-512 version in sw_matmul_avx512.c: vcvtps2dq rounds as lrintf; a
 *  block with a NaN or an infinity goes to sw_quantize_row). */
SW_AVX2 static void s_quant_q8_K(const float *x, sw_block_q8_K *out, int64_t n_in)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(INFINITY);
    const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
    for (int64_t b = 0; b < n_in / SW_QK_K; b++) {
        const float *xb = x + b * SW_QK_K;
        sw_block_q8_K *o = &out[b];
        __m256 amax = _mm256_setzero_ps();
        int bad = 0;
        for (int k = 0; k < 32; k++) {
            __m256 v = _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + 8 * k));
            bad |= _mm256_movemask_ps(_mm256_cmp_ps(v, inf, _CMP_NLT_UQ));
            amax = _mm256_max_ps(amax, v);
        }
        if (bad) {
            sw_quantize_row(SW_DTYPE_Q8_K, xb, o, SW_QK_K);
            continue;
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float am = _mm_cvtss_f32(m4);
        if (am == 0.0f) {
            memset(o, 0, sizeof(*o));
            continue;
        }
        const __m256 id = _mm256_set1_ps(127.0f / am);
        for (int k = 0; k < 8; k++) { /* 32 values */
            __m256i q[4];
            for (int i = 0; i < 4; i++) {
                q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 32 * k + 8 * i), id));
                q[i] = _mm256_max_epi32(_mm256_min_epi32(q[i], lim), nlim);
            }
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *) (o->qs + 32 * k), p);
            o->bsums[2 * k] = (int16_t) s_hsum_i32(_mm256_add_epi32(q[0], q[1]));
            o->bsums[2 * k + 1] = (int16_t) s_hsum_i32(_mm256_add_epi32(q[2], q[3]));
        }
        o->d = am / 127.0f;
    }
}

/* ------------------------------------------------------------------------ */
/*  r16 tiles. Each half of a 16-row group (8 rows) is one ymm lane set.    */

#define S_T2 4 /* tokens per tile */

/*  Q8_0: signed weights (u ^ 0x80) with the sign trick: |w| * sign(x, w). */
SW_AVX2_INLINE void s_tile_q8_0_half(const sw__tile_t *a, int h, int64_t t0, const int T)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i flip = _mm256_set1_epi8((char) 0x80);
    __m256 acc[S_T2];
    for (int t = 0; t < S_T2; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *rec = a->wg + (size_t) b * SW__REC_Q8_0;
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (rec + 16 * h)));
        __m256i si[S_T2];
        for (int t = 0; t < S_T2; t++)
            si[t] = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++) {
            __m256i ws = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *) (rec + 32 + 64 * k + 32 * h)), flip);
            __m256i aw = _mm256_sign_epi8(ws, ws);
            for (int t = 0; t < T; t++) {
                const int8_t *xp = a->xq + (t0 + t) * a->xq_stride + b * 32 + 4 * k;
                __m256i xs = _mm256_sign_epi8(_mm256_set1_epi32(s_load_i32(xp)), ws);
                si[t] = _mm256_add_epi32(si[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, xs), ones));
            }
        }
        for (int t = 0; t < T; t++) {
            int64_t xi = (t0 + t) * a->xs_stride + b;
            si[t] = _mm256_add_epi32(si[t], _mm256_set1_epi32(a->xb[xi]));
            __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(a->xd[xi]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[t]), sc, acc[t]);
        }
    }
    for (int t = 0; t < T; t++) {
        float *yp = a->y + (t0 + t) * a->ldy + 8 * h;
        int n = a->n_rows - 8 * h;
        if (n >= 8) {
            _mm256_storeu_ps(yp, acc[t]);
        } else if (n > 0) {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[t]);
            memcpy(yp, tmp, sizeof(float) * (size_t) n);
        }
    }
}

/*  Q4_0: unsigned nibbles times signed x; sums of 16 products fit in int16. */
SW_AVX2_INLINE void s_tile_q4_0_half(const sw__tile_t *a, int h, int64_t t0, const int T)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[S_T2];
    for (int t = 0; t < S_T2; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *rec = a->wg + (size_t) b * SW__REC_Q4_0;
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (rec + 16 * h)));
        __m256i s16[S_T2];
        for (int t = 0; t < S_T2; t++)
            s16[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *) (rec + 32 + 64 * c + 32 * h));
            __m256i lo = _mm256_and_si256(v, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            for (int t = 0; t < T; t++) {
                const int8_t *xp = a->xq + (t0 + t) * a->xq_stride + b * 32;
                __m256i pl = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(s_load_i32(xp + 4 * c)));
                __m256i ph = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(s_load_i32(xp + 16 + 4 * c)));
                s16[t] = _mm256_add_epi16(s16[t], _mm256_add_epi16(pl, ph));
            }
        }
        for (int t = 0; t < T; t++) {
            int64_t xi = (t0 + t) * a->xs_stride + b;
            __m256i si = _mm256_add_epi32(_mm256_madd_epi16(s16[t], ones), _mm256_set1_epi32(a->xb[xi]));
            __m256 sc = _mm256_mul_ps(dw, _mm256_set1_ps(a->xd[xi]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), sc, acc[t]);
        }
    }
    for (int t = 0; t < T; t++) {
        float *yp = a->y + (t0 + t) * a->ldy + 8 * h;
        int n = a->n_rows - 8 * h;
        if (n >= 8) {
            _mm256_storeu_ps(yp, acc[t]);
        } else if (n > 0) {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[t]);
            memcpy(yp, tmp, sizeof(float) * (size_t) n);
        }
    }
}

/*  Q4_K (layout: sw_kernels_impl.h) against Q8_K activations, 8 rows per
 *  half. Per sub-block pair p, vpmaddubsw of the low and high nibbles with
 *  the values of sub-blocks 2p and 2p + 1 summed in i16 over its 8 chunks
 *  (at most 8 * 2 * 15 * 128 = 30720); vpmaddwd with the scale in both i16
 *  halves of each row's i32 lane adds the pair and applies the scale in one
 *  step. The mins: vpmaddwd of (mn_2q, mn_2q+1) pairs with the Q8_K sums of
 *  the same sub-blocks.
 *  Q5_K stays on the rows kernel with AVX2: the same tiles with the fifth
 *  bits ORed in (6 loads per 64 weight bytes) ran 2x faster in cache but
 *  1.3-1.5 ms against 0.8-1.2 from DRAM for a 4096 x 4096 matvec on the
 *  Zen 4 VM (docs/performance.md). */
SW_AVX2_INLINE void s_tile_q4_K_half(const sw__tile_t *a, int h, int64_t t0, const int T)
{
    const size_t rec_bytes = SW__REC_Q4_K, qs_off = 320;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ones16 = _mm256_set1_epi16(1);
    const sw_block_q8_K *xk[S_T2];
    for (int t = 0; t < S_T2; t++)
        xk[t] = a->xk + (t0 + (t < T ? t : 0)) * a->xk_stride;
    __m256 acc[S_T2], accm[S_T2]; /* sum of d sc q x, sum of dmin mn x (ggml keeps them apart too) */
    for (int t = 0; t < S_T2; t++) {
        acc[t] = _mm256_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *rec = a->wg + (size_t) b * rec_bytes;
        __m256i si[S_T2];
        for (int t = 0; t < S_T2; t++)
            si[t] = _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            /* i32 lane r: the scale of row 8h + r in both i16 halves */
            __m256i sc_lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (rec + 64 + 32 * p + 8 * h)));
            __m256i sc_hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (rec + 80 + 32 * p + 8 * h)));
            sc_lo = _mm256_or_si256(sc_lo, _mm256_slli_epi32(sc_lo, 16));
            sc_hi = _mm256_or_si256(sc_hi, _mm256_slli_epi32(sc_hi, 16));
            __m256i s_lo[S_T2], s_hi[S_T2];
            for (int t = 0; t < S_T2; t++) {
                s_lo[t] = _mm256_setzero_si256();
                s_hi[t] = _mm256_setzero_si256();
            }
            for (int c = 0; c < 8; c++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *) (rec + qs_off + 64 * (8 * p + c) + 32 * h));
                __m256i lo = _mm256_and_si256(v, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for (int t = 0; t < T; t++) {
                    const int8_t *xp = xk[t][b].qs + 64 * p + 4 * c;
                    s_lo[t] = _mm256_add_epi16(s_lo[t], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(s_load_i32(xp))));
                    s_hi[t] = _mm256_add_epi16(s_hi[t],
                                               _mm256_maddubs_epi16(hi, _mm256_set1_epi32(s_load_i32(xp + 32))));
                }
                if (c == 7) { /* i16 sums of 8 chunks: <= 30720 */
                    for (int t = 0; t < T; t++) {
                        si[t] = _mm256_add_epi32(si[t], _mm256_add_epi32(_mm256_madd_epi16(s_lo[t], sc_lo),
                                                                         _mm256_madd_epi16(s_hi[t], sc_hi)));
                        s_lo[t] = _mm256_setzero_si256();
                        s_hi[t] = _mm256_setzero_si256();
                    }
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (rec + 16 * h)));
        const __m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (rec + 32 + 16 * h)));
        __m256i mnp[4];
        for (int q = 0; q < 4; q++) {
            const __m128i m0 = _mm_loadl_epi64((const __m128i *) (rec + 192 + 32 * q + 8 * h));
            const __m128i m1 = _mm_loadl_epi64((const __m128i *) (rec + 208 + 32 * q + 8 * h));
            mnp[q] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m0, m1));
        }
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *x = &xk[t][b];
            /* i32 element q (q < 2) / q + 2: (sum_2q, sum_2q+1) as i16 */
            const __m256i s32 = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) x->bsums), ones16);
            const __m256i sp = _mm256_packs_epi32(s32, s32);
            __m256i mi = _mm256_setzero_si256();
            for (int q = 0; q < 4; q++) {
                const int e = q < 2 ? q : q + 2;
                mi = _mm256_add_epi32(mi, _mm256_madd_epi16(mnp[q], _mm256_permutevar8x32_epi32(sp, _mm256_set1_epi32(e))));
            }
            const __m256 xd = _mm256_set1_ps(x->d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[t]), _mm256_mul_ps(dw, xd), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mi), _mm256_mul_ps(dmw, xd), accm[t]);
        }
    }
    for (int t = 0; t < T; t++) {
        acc[t] = _mm256_sub_ps(acc[t], accm[t]);
        float *yp = a->y + (t0 + t) * a->ldy + 8 * h;
        int n = a->n_rows - 8 * h;
        if (n >= 8) {
            _mm256_storeu_ps(yp, acc[t]);
        } else if (n > 0) {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[t]);
            memcpy(yp, tmp, sizeof(float) * (size_t) n);
        }
    }
}

/*  One token (decode), both halves in one pass: each activation broadcast
 *  feeds 16 rows instead of 8. Same arithmetic as s_tile_q4_K_half. */
SW_AVX2_INLINE void s_tile_q4_K_t1(const sw__tile_t *a)
{
    const size_t rec_bytes = SW__REC_Q4_K, qs_off = 320;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    __m256 accm[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *rec = a->wg + (size_t) b * rec_bytes;
        const sw_block_q8_K *x = &a->xk[b];
        __m256i si[2] = { _mm256_setzero_si256(), _mm256_setzero_si256() };
        for (int p = 0; p < 4; p++) {
            __m256i s_lo[2] = { _mm256_setzero_si256(), _mm256_setzero_si256() };
            __m256i s_hi[2] = { _mm256_setzero_si256(), _mm256_setzero_si256() };
            for (int c = 0; c < 8; c++) {
                const __m256i xl = _mm256_set1_epi32(s_load_i32(x->qs + 64 * p + 4 * c));
                const __m256i xh = _mm256_set1_epi32(s_load_i32(x->qs + 64 * p + 32 + 4 * c));
                for (int h = 0; h < 2; h++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *) (rec + qs_off + 64 * (8 * p + c) + 32 * h));
                    __m256i lo = _mm256_and_si256(v, m4);
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    s_lo[h] = _mm256_add_epi16(s_lo[h], _mm256_maddubs_epi16(lo, xl));
                    s_hi[h] = _mm256_add_epi16(s_hi[h], _mm256_maddubs_epi16(hi, xh));
                }
                if (c == 7) {
                    for (int h = 0; h < 2; h++) {
                        __m256i sc_lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (rec + 64 + 32 * p + 8 * h)));
                        __m256i sc_hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (rec + 80 + 32 * p + 8 * h)));
                        sc_lo = _mm256_or_si256(sc_lo, _mm256_slli_epi32(sc_lo, 16));
                        sc_hi = _mm256_or_si256(sc_hi, _mm256_slli_epi32(sc_hi, 16));
                        si[h] = _mm256_add_epi32(si[h], _mm256_add_epi32(_mm256_madd_epi16(s_lo[h], sc_lo),
                                                                         _mm256_madd_epi16(s_hi[h], sc_hi)));
                        s_lo[h] = _mm256_setzero_si256();
                        s_hi[h] = _mm256_setzero_si256();
                    }
                }
            }
        }
        const __m256i s32 = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) x->bsums), ones16);
        const __m256i sp = _mm256_packs_epi32(s32, s32);
        const __m256 xd = _mm256_set1_ps(x->d);
        for (int h = 0; h < 2; h++) {
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (rec + 16 * h)));
            const __m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (rec + 32 + 16 * h)));
            __m256i mi = _mm256_setzero_si256();
            for (int q = 0; q < 4; q++) {
                const __m128i m0 = _mm_loadl_epi64((const __m128i *) (rec + 192 + 32 * q + 8 * h));
                const __m128i m1 = _mm_loadl_epi64((const __m128i *) (rec + 208 + 32 * q + 8 * h));
                const int e = q < 2 ? q : q + 2;
                mi = _mm256_add_epi32(mi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m0, m1)),
                                                            _mm256_permutevar8x32_epi32(sp, _mm256_set1_epi32(e))));
            }
            acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[h]), _mm256_mul_ps(dw, xd), acc[h]);
            accm[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mi), _mm256_mul_ps(dmw, xd), accm[h]);
        }
    }
    for (int h = 0; h < 2; h++) {
        const __m256 r = _mm256_sub_ps(acc[h], accm[h]);
        float *yp = a->y + 8 * h;
        int n = a->n_rows - 8 * h;
        if (n >= 8) {
            _mm256_storeu_ps(yp, r);
        } else if (n > 0) {
            float tmp[8];
            _mm256_storeu_ps(tmp, r);
            memcpy(yp, tmp, sizeof(float) * (size_t) n);
        }
    }
}

SW_AVX2 static void s_tile_q4_K(const sw__tile_t *a)
{
    if (a->n_tok == 1) {
        s_tile_q4_K_t1(a);
        return;
    }
    for (int h = 0; h < 2; h++) {
        if (a->n_rows <= 8 * h)
            break;
        for (int64_t t0 = 0; t0 < a->n_tok; t0 += S_T2) {
            switch (a->n_tok - t0 >= S_T2 ? S_T2 : (int) (a->n_tok - t0)) {
            case 1: s_tile_q4_K_half(a, h, t0, 1); break;
            case 2: s_tile_q4_K_half(a, h, t0, 2); break;
            case 3: s_tile_q4_K_half(a, h, t0, 3); break;
            default: s_tile_q4_K_half(a, h, t0, 4); break;
            }
        }
    }
}

SW_AVX2 static void s_tile_q8_0(const sw__tile_t *a)
{
    for (int h = 0; h < 2; h++) {
        if (a->n_rows <= 8 * h)
            break;
        for (int64_t t0 = 0; t0 < a->n_tok; t0 += S_T2) {
            switch (a->n_tok - t0 >= S_T2 ? S_T2 : (int) (a->n_tok - t0)) {
            case 1: s_tile_q8_0_half(a, h, t0, 1); break;
            case 2: s_tile_q8_0_half(a, h, t0, 2); break;
            case 3: s_tile_q8_0_half(a, h, t0, 3); break;
            default: s_tile_q8_0_half(a, h, t0, 4); break;
            }
        }
    }
}

SW_AVX2 static void s_tile_q4_0(const sw__tile_t *a)
{
    for (int h = 0; h < 2; h++) {
        if (a->n_rows <= 8 * h)
            break;
        for (int64_t t0 = 0; t0 < a->n_tok; t0 += S_T2) {
            switch (a->n_tok - t0 >= S_T2 ? S_T2 : (int) (a->n_tok - t0)) {
            case 1: s_tile_q4_0_half(a, h, t0, 1); break;
            case 2: s_tile_q4_0_half(a, h, t0, 2); break;
            case 3: s_tile_q4_0_half(a, h, t0, 3); break;
            default: s_tile_q4_0_half(a, h, t0, 4); break;
            }
        }
    }
}

const sw__kernels_t sw__kernels_avx2 = {
    .name = "avx2",
    .rows = {
        SW__AVX2_SHARED_ROWS,
        [SW__K_Q4_K] = sw__avx2_rows_q4_K,
        [SW__K_Q5_K] = sw__avx2_rows_q5_K,
        [SW__K_Q6_K] = sw__avx2_rows_q6_K,
        [SW__K_IQ4_XS] = sw__avx2_rows_iq4_xs,
        [SW__K_Q2_K] = sw__avx2_rows_q2_K,
        [SW__K_Q3_K] = sw__avx2_rows_q3_K,
    },
    .tile_q8_0 = s_tile_q8_0,
    .tile_q4_0 = s_tile_q4_0,
    .tile_q4_K = s_tile_q4_K,
    .quant = s_quant,
    .quant_q8_K = s_quant_q8_K,
    .q8_0_bias = 0,
};

#else
typedef int sw__matmul_avx2_unused_t;
#endif
