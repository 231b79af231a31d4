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
#include <math.h>
#include <string.h>

#include "sw_kernels_impl.h"

#define SW_TGT "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,bmi2"
#define SW_512 __attribute__((target(SW_TGT)))
#define SW_512_INLINE static inline __attribute__((always_inline, target(SW_TGT)))

#define S_T 8 /* tokens per tile */

/*  f16 to f32 by F16C (the library's sw_f16_to_f32 is an out-of-line call). */
SW_512_INLINE float s_f16(sw_f16_t h)
{
    return _cvtsh_ss(h);
}

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

/*  Q4_K / Q5_K r16 tiles against Q8_K activations (layout: sw_kernels_impl.h).
 *  Per sub-block pair p (chunks 8p..8p+7), vpdpbusd sums the low nibbles
 *  times the 32 values of sub-block 2p and the high nibbles, masked in
 *  place (16 times the nibble, saving a shift), times those of 2p + 1; the
 *  int32 sums are scaled by 16 sc and sc (vpmulld) and summed over the
 *  block (at most 8 * 32 * 15 * 128 * 1008 < 2^31), then converted once
 *  with d / 16 * d_x. The mins: vpdpwssd of (mn_2q, mn_2q+1) i16 pairs with
 *  the Q8_K sums of the same sub-blocks, times dmin * d_x. Q5_K ORs the
 *  fifth bits into both nibbles (vpternlogd) and scales by sc, d, as the
 *  high nibble can no longer be masked in place (at most
 *  8 * 32 * 31 * 128 * 63 < 2^31). */

#define S_KT4 4 /* tokens per Q4_K tile pass */

SW_512_INLINE void s_tile_k45_body(const sw__tile_t *a, int64_t t0, const int T, const int q5)
{
    const size_t rec_bytes = q5 ? SW__REC_Q5_K : SW__REC_Q4_K;
    const uint8_t *const qs0 = a->wg + (q5 ? 832 : 320); /* chunk 0 of block 0 */
    const __m512i m4 = _mm512_set1_epi8(0x0f), m4h = _mm512_set1_epi8((char) 0xf0);
    const __m512i b4 = _mm512_set1_epi8(0x10);
    const __m256i ones16 = _mm256_set1_epi16(1);
    const sw_block_q8_K *xk[S_KT4];
    for (int t = 0; t < S_KT4; t++)
        xk[t] = a->xk + (t0 + (t < T ? t : 0)) * a->xk_stride;
    __m512 acc[S_KT4], accm[S_KT4]; /* sum of d sc q x, sum of dmin mn x (ggml keeps them apart too) */
    for (int t = 0; t < S_KT4; t++) {
        acc[t] = _mm512_setzero_ps();
        accm[t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *rec = a->wg + (size_t) b * rec_bytes;
        const uint8_t *qs = qs0 + (size_t) b * rec_bytes;
        __m512i si[S_KT4];
        for (int t = 0; t < S_KT4; t++)
            si[t] = _mm512_setzero_si512();
        for (int p = 0; p < 4; p++) {
            /* i32 lane r: scale of row r, sub-blocks 2p (times 16) and 2p + 1 */
            __m512i sc_lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *) (rec + 64 + 32 * p)));
            if (!q5)
                sc_lo = _mm512_slli_epi32(sc_lo, 4);
            const __m512i sc_hi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *) (rec + 80 + 32 * p)));
            __m512i s_lo[S_KT4], s_hi[S_KT4];
            for (int t = 0; t < S_KT4; t++) {
                s_lo[t] = _mm512_setzero_si512();
                s_hi[t] = _mm512_setzero_si512();
            }
            for (int c = 0; c < 8; c++) {
                const __m512i v = _mm512_loadu_si512((const void *) (qs + 64 * (8 * p + c)));
                __m512i lo, hi;
                if (q5) {
                    /* fifth bits: bit 2p of qh to bit 4 (low), bit 2p + 1 (high);
                     * 16-bit shifts by at most 4 move no bit across bytes into bit 4 */
                    const __m512i h = _mm512_loadu_si512((const void *) (rec + 320 + 64 * c));
                    const __m512i hl = p < 3 ? _mm512_slli_epi16(h, 4 - 2 * p) : _mm512_srli_epi16(h, 2);
                    const __m512i hh = p < 2 ? _mm512_slli_epi16(h, 3 - 2 * p) : _mm512_srli_epi16(h, 2 * p - 3);
                    lo = _mm512_ternarylogic_epi32(v, m4, _mm512_and_si512(hl, b4), 0xea); /* (v & m4) | x */
                    hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), m4, _mm512_and_si512(hh, b4), 0xea);
                } else {
                    lo = _mm512_and_si512(v, m4);
                    hi = _mm512_and_si512(v, m4h); /* 16 times the nibble */
                }
                for (int t = 0; t < T; t++) {
                    const int8_t *xp = xk[t][b].qs + 64 * p + 4 * c;
                    s_lo[t] = _mm512_dpbusd_epi32(s_lo[t], lo, s_bcast(xp));
                    s_hi[t] = _mm512_dpbusd_epi32(s_hi[t], hi, s_bcast(xp + 32));
                }
            }
            for (int t = 0; t < T; t++)
                si[t] = _mm512_add_epi32(si[t], _mm512_add_epi32(_mm512_mullo_epi32(s_lo[t], sc_lo),
                                                                 _mm512_mullo_epi32(s_hi[t], sc_hi)));
        }
        /* d (Q4_K: d / 16, exact) and dmin of the 16 rows */
        const __m512 dw = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) rec)),
                                        _mm512_set1_ps(q5 ? 1.0f : 1.0f / 16.0f));
        const __m512 dmw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (rec + 32)));
        /* i32 lane r of mnp[q]: (mn_2q, mn_2q+1) of row r as two i16 */
        __m512i mnp[4];
        for (int q = 0; q < 4; q++) {
            const __m128i m0 = _mm_loadu_si128((const __m128i *) (rec + 192 + 32 * q));
            const __m128i m1 = _mm_loadu_si128((const __m128i *) (rec + 208 + 32 * q));
            const __m256i pr = _mm256_setr_m128i(_mm_unpacklo_epi8(m0, m1), _mm_unpackhi_epi8(m0, m1));
            mnp[q] = _mm512_cvtepu8_epi16(pr);
        }
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *x = &xk[t][b];
            /* sums of the 8 sub-blocks of 32, as i16 pairs: i32 element q
             * of lane 0 = (sum_2q, sum_2q+1) for q < 2, lane 1 for q >= 2 */
            const __m256i s32 = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) x->bsums), ones16);
            const __m512i sp = _mm512_castsi256_si512(_mm256_packs_epi32(s32, s32));
            __m512i mi = _mm512_setzero_si512();
            for (int q = 0; q < 4; q++) {
                const int e = q < 2 ? q : q + 2; /* i32 element of sp */
                mi = _mm512_dpwssd_epi32(mi, mnp[q], _mm512_permutexvar_epi32(_mm512_set1_epi32(e), sp));
            }
            const __m512 xd = _mm512_set1_ps(x->d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(si[t]), _mm512_mul_ps(dw, xd), acc[t]);
            accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mi), _mm512_mul_ps(dmw, xd), accm[t]);
        }
    }
    const __mmask16 m = (__mmask16) (a->n_rows >= 16 ? 0xffff : ((1u << a->n_rows) - 1));
    for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(a->y + (t0 + t) * a->ldy, m, _mm512_sub_ps(acc[t], accm[t]));
}

#define S_K45_DISPATCH(q5)                                                             \
    for (int64_t t0 = 0; t0 < a->n_tok; t0 += S_KT4) {                                 \
        switch (a->n_tok - t0 >= S_KT4 ? S_KT4 : (int) (a->n_tok - t0)) {              \
        case 1: s_tile_k45_body(a, t0, 1, q5); break;                                  \
        case 2: s_tile_k45_body(a, t0, 2, q5); break;                                  \
        case 3: s_tile_k45_body(a, t0, 3, q5); break;                                  \
        default: s_tile_k45_body(a, t0, 4, q5); break;                                 \
        }                                                                              \
    }

SW_512 static void s_tile_q4_K(const sw__tile_t *a)
{
    S_K45_DISPATCH(0)
}

SW_512 static void s_tile_q5_K(const sw__tile_t *a)
{
    S_K45_DISPATCH(1)
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

/*  Q8_K rows, byte for byte what sw_quantize_row(Q8_K) writes: per block of
 *  256, amax as fmaxf does (a NaN element is skipped), id = 127 / amax,
 *  q = lrintf(x id) (vcvtps2dq rounds to nearest even like lrintf in the
 *  default rounding mode) clamped to +-127, bsums per 16, d = amax / 127. A
 *  block with a NaN or an infinity goes to sw_quantize_row, whose integer
 *  conversion of NaN differs from vcvtps2dq's. */
SW_512 static void s_quant_q8_K(const float *x, sw_block_q8_K *out, int64_t n_in)
{
    const __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
    for (int64_t b = 0; b < n_in / SW_QK_K; b++) {
        const float *xb = x + b * SW_QK_K;
        sw_block_q8_K *o = &out[b];
        __m512 amax = _mm512_setzero_ps();
        __mmask16 bad = 0;
        for (int k = 0; k < 16; k++) {
            __m512 v = _mm512_abs_ps(_mm512_loadu_ps(xb + 16 * k));
            bad |= _mm512_cmp_ps_mask(v, _mm512_set1_ps(INFINITY), _CMP_NLT_UQ); /* inf or NaN */
            amax = _mm512_max_ps(amax, v);
        }
        if (bad) {
            sw_quantize_row(SW_DTYPE_Q8_K, xb, o, SW_QK_K);
            continue;
        }
        const float am = _mm512_reduce_max_ps(amax);
        if (am == 0.0f) {
            memset(o, 0, sizeof(*o));
            continue;
        }
        const __m512 id = _mm512_set1_ps(127.0f / am);
        for (int k = 0; k < 16; k++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * k), id));
            q = _mm512_max_epi32(_mm512_min_epi32(q, lim), nlim);
            _mm_storeu_si128((__m128i *) (o->qs + 16 * k), _mm512_cvtepi32_epi8(q));
            o->bsums[k] = (int16_t) _mm512_reduce_add_epi32(q);
        }
        o->d = am / 127.0f;
    }
}

/* ------------------------------------------------------------------------ */
/*  K-quants (GGUF layout) with Q8_K activations: one zmm holds 64 weights
 *  in element order (two sub-blocks of 32 for Q4_K/Q5_K, four of 16 for
 *  Q6_K), so the Q8_K values load straight; vpmaddubsw makes i16 pairs and
 *  vpdpwssd multiplies them by the per-sub-block scales (one i16 lane set per
 *  sub-block) and accumulates in i32. The weights of a block are unpacked
 *  once for up to 4 tokens. */

#define S_KT 4 /* tokens per pass (SW__ROWS_FN) */

/*  The 8 lanes of v summed. */
SW_512_INLINE float s_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/*  i16 lane i of a zmm of 64 weights (elements 2i, 2i+1) belongs to
 *  sub-block first + i/8 of 16: the vpermw index that spreads 16 i16
 *  sub-block scales over the lanes. */
SW_512_INLINE __m512i s_sub16_idx(int first)
{
    const __m512i lane = _mm512_setr_epi32(0x00010000, 0x00030002, 0x00050004, 0x00070006, 0x00090008, 0x000b000a,
                                           0x000d000c, 0x000f000e, 0x00110010, 0x00130012, 0x00150014, 0x00170016,
                                           0x00190018, 0x001b001a, 0x001d001c, 0x001f001e);
    return _mm512_add_epi16(_mm512_set1_epi16((short) first), _mm512_srli_epi16(lane, 3));
}

/*  Q4_K and Q5_K: weight vector g (0..3) = sub-blocks 2g, 2g+1 = the low
 *  and high nibbles of qs[32g..32g+31]: broadcast, shift the upper half by 4. */
SW_512_INLINE void s_dot_k45(const uint8_t *w, const sw_block_q8_K *const *x, int64_t nb, float *out, const int T,
                             const int q5)
{
    const size_t bb = q5 ? sizeof(sw_block_q5_K) : sizeof(sw_block_q4_K);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    __m512 acc[S_KT];
    __m256 accm[S_KT];
    for (int t = 0; t < S_KT; t++) {
        acc[t] = _mm512_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t) b * bb;
        const uint8_t *s = blk + 4;
        const uint8_t *qs = blk + (q5 ? 48 : 16);
        /* the 6-bit scales and mins in registers (stores then a vector load
         * would stall on store forwarding): 4 bytes per u32 */
        uint32_t sc_lo, sc_hi, mn_lo, mn_hi;
        sw__k4_scales(s, &sc_lo, &sc_hi, &mn_lo, &mn_hi);
        const __m512i sc8 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_setr_epi32((int) sc_lo, (int) sc_hi, 0, 0)));
        const __m128i mnb = _mm_setr_epi32((int) mn_lo, (int) mn_hi, 0, 0);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mnb, mnb)); /* each min twice: per 16 */
        __m512i q[4], scv[4];
        const __m512i qh = q5 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (blk + 16)))
                              : _mm512_setzero_si512();
        for (int g = 0; g < 4; g++) {
            __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (qs + 32 * g)));
            q[g] = _mm512_and_si512(_mm512_srlv_epi16(v, shift), m4);
            if (q5) {
                /* bit 2g of qh[l] for the lower half, bit 2g+1 for the upper */
                __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char) (1 << (2 * g))),
                                                 _mm256_set1_epi8((char) (1 << (2 * g + 1))), 1);
                __mmask64 k = _mm512_test_epi8_mask(qh, bit);
                q[g] = _mm512_or_si512(q[g], _mm512_maskz_mov_epi8(k, _mm512_set1_epi8(0x10)));
            }
            /* i16 lanes 0..15 scale of sub-block 2g, 16..31 of 2g+1 */
            __m512i idx = _mm512_inserti64x4(_mm512_set1_epi16((short) (2 * g)), _mm256_set1_epi16((short) (2 * g + 1)), 1);
            scv[g] = _mm512_permutexvar_epi16(idx, sc8);
        }
        sw_f16_t d16, dm16;
        memcpy(&d16, blk, 2);
        memcpy(&dm16, blk + 2, 2);
        const float dw = s_f16(d16), dmw = s_f16(dm16);
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m512i sumi = _mm512_setzero_si512();
            for (int g = 0; g < 4; g++) {
                __m512i xv = _mm512_loadu_si512((const void *) (xb->qs + 64 * g));
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q[g], xv), scv[g]);
            }
            __m256i summ = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *) xb->bsums));
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(dw * xb->d), _mm512_cvtepi32_ps(sumi), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmw * xb->d), _mm256_cvtepi32_ps(summ), accm[t]);
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = _mm512_reduce_add_ps(acc[t]) - s_hsum8(accm[t]);
}

/*  Q6_K: weight vector 2h + k (h, k in 0..1) = elements 128h + 64k .. +63:
 *  the low (k = 0) or high (k = 1) nibbles of ql[64h..64h+63] plus 2 bits of
 *  qh[32h + l] (bits 4k+0..1 for the lower 32, 4k+2..3 for the upper 32);
 *  sub-blocks of 16 = i16 lanes of 8. The -32 offset through the Q8_K sums. */
SW_512_INLINE void s_dot_q6_K(const uint8_t *row, const sw_block_q8_K *const *x, int64_t nb, float *out,
                              const int T, const int kind)
{
    const sw_block_q6_K *w = (const sw_block_q6_K *) row;
    (void) kind;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    __m512 acc[S_KT];
    for (int t = 0; t < S_KT; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) w[b].scales));
        const __m512i sc16z = _mm512_castsi256_si512(sc16);
        __m512i q[4], scv[4];
        for (int h = 0; h < 2; h++) {
            __m512i ql = _mm512_loadu_si512((const void *) (w[b].ql + 64 * h));
            __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (w[b].qh + 32 * h)));
            for (int k = 0; k < 2; k++) {
                __m512i lo = k ? _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4) : _mm512_and_si512(ql, m4);
                __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short) (4 * k)), _mm256_set1_epi16((short) (4 * k + 2)), 1);
                __m512i hi = _mm512_and_si512(_mm512_srlv_epi16(qh, sh), m2);
                q[2 * h + k] = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
                /* i16 lane i covers elements 2i, 2i+1: sub-block 8h + 4k + i/8 */
                __m512i idx = s_sub16_idx(8 * h + 4 * k);
                scv[2 * h + k] = _mm512_permutexvar_epi16(idx, sc16z);
            }
        }
        const float dw = s_f16(w[b].d);
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m512i sumi = _mm512_setzero_si512();
            for (int v = 0; v < 4; v++) {
                __m512i xv = _mm512_loadu_si512((const void *) (xb->qs + 64 * v));
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q[v], xv), scv[v]);
            }
            __m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *) xb->bsums));
            sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(dw * xb->d), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = _mm512_reduce_add_ps(acc[t]);
}

/*  IQ4_XS: codes looked up as unsigned grid values u = K[q] + 128 (vpshufb
 *  per 128-bit lane), vpdpbusd with the Q8_K values (sums of 4 in i32, no
 *  i16 saturation), the sub-block scales d*(ls - 32) applied in f32; the
 *  +128 comes back out through the Q8_K sums of 16. Weight vector g holds
 *  sub-blocks 2g, 2g+1 in element order. */
SW_512_INLINE void s_dot_iq4_xs(const uint8_t *row, const sw_block_q8_K *const *x, int64_t nb, float *out,
                                const int T, const int kind)
{
    const sw_block_iq4_xs *w = (const sw_block_iq4_xs *) row;
    (void) kind;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m512i gridu = _mm512_add_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) sw_iq4nl_grid)),
                                          _mm512_set1_epi8((char) 128));
    __m512 acc[S_KT];
    __m256 accb[S_KT];
    for (int t = 0; t < S_KT; t++) {
        acc[t] = _mm512_setzero_ps();
        accb[t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        /* 6-bit scales ls = nibble s of scales_l | bits 2s..2s+1 of scales_h << 4 */
        uint32_t l4;
        memcpy(&l4, w[b].scales_l, 4);
        /* one byte per sub-block: nibble k of l4 | 2-bit group k of scales_h << 4 */
        const uint64_t lo8 = _pdep_u64(l4, 0x0f0f0f0f0f0f0f0full);
        const uint64_t hi8 = _pdep_u64(w[b].scales_h, 0x3030303030303030ull);
        const __m128i ls8 = _mm_cvtsi64_si128((long long) (lo8 | hi8));
        const __m256i sc32 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(ls8), _mm256_set1_epi32(32));
        const float dw = s_f16(w[b].d);
        const __m512 fs = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(sc32), _mm256_set1_ps(dw)));
        /* the offset: each scale twice, against the sums of 16 */
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(ls8, ls8));
        const __m256i scb = _mm256_sub_epi16(sc16, _mm256_set1_epi16(32));
        __m512i u[4];
        __m512 fsv[4];
        for (int g = 0; g < 4; g++) {
            __m256i ab = _mm256_loadu_si256((const __m256i *) (w[b].qs + 32 * g));
            __m256i lo = _mm256_and_si256(ab, m4), hi = _mm256_and_si256(_mm256_srli_epi16(ab, 4), m4);
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); /* 2g lo, 2g+1 lo, 2g hi, 2g+1 hi */
            u[g] = _mm512_shuffle_epi8(gridu, _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)));
            __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(2 * g), _mm256_set1_epi32(2 * g + 1), 1);
            fsv[g] = _mm512_permutexvar_ps(idx, fs);
        }
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m512 s = _mm512_setzero_ps();
            for (int g = 0; g < 4; g++) {
                __m512i xv = _mm512_loadu_si512((const void *) (xb->qs + 64 * g));
                __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[g], xv);
                s = _mm512_fmadd_ps(fsv[g], _mm512_cvtepi32_ps(dp), s);
            }
            acc[t] = _mm512_fmadd_ps(s, _mm512_set1_ps(xb->d), acc[t]);
            __m256i off = _mm256_madd_epi16(scb, _mm256_loadu_si256((const __m256i *) xb->bsums));
            accb[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(off), _mm256_set1_ps(dw * xb->d), accb[t]);
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = _mm512_reduce_add_ps(acc[t]) - 128.0f * s_hsum8(accb[t]);
}

/*  Q2_K and Q3_K: weight vector 2n + k = elements 128n + 64k .. +63, the
 *  2-bit codes at bits 4k (lower 32) and 4k + 2 (upper 32) of
 *  qs[32n..32n+31]; Q3_K adds 4 where bit 4n + 2k (+1 for the upper half)
 *  of hmask[l] is set and takes 4 off through the sums (u - 4). Sub-blocks
 *  of 16 = i16 lanes of 8, as Q6_K. Q2_K's mins through the sums of 16. */
SW_512_INLINE void s_dot_q23(const uint8_t *w, const sw_block_q8_K *const *x, int64_t nb, float *out, const int T,
                             const int q3)
{
    const size_t bb = q3 ? sizeof(sw_block_q3_K) : sizeof(sw_block_q2_K);
    const __m512i m2 = _mm512_set1_epi8(3);
    __m512 acc[S_KT];
    __m256 accm[S_KT];
    for (int t = 0; t < S_KT; t++) {
        acc[t] = _mm512_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t) b * bb;
        const uint8_t *qs = blk + (q3 ? 32 : 16);
        __m128i sc8, mn8;
        float dw, dmw;
        sw__q23_scales(blk, q3, &sc8, &mn8, &dw, &dmw);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const __m512i sc16z = _mm512_castsi256_si512(sc16);
        const __m256i mn16 = q3 ? _mm256_slli_epi16(sc16, 2) : _mm256_cvtepu8_epi16(mn8);
        const __m512i hm = q3 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) blk)) : _mm512_setzero_si512();
        __m512i q[4], scv[4];
        for (int n = 0; n < 2; n++) {
            const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (qs + 32 * n)));
            for (int k = 0; k < 2; k++) {
                __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short) (4 * k)), _mm256_set1_epi16((short) (4 * k + 2)), 1);
                __m512i u = _mm512_and_si512(_mm512_srlv_epi16(v, sh), m2);
                if (q3) {
                    __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char) (1 << (4 * n + 2 * k))),
                                                     _mm256_set1_epi8((char) (1 << (4 * n + 2 * k + 1))), 1);
                    u = _mm512_or_si512(u, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(hm, bit), _mm512_set1_epi8(4)));
                }
                q[2 * n + k] = u;
                __m512i idx = s_sub16_idx(8 * n + 4 * k);
                scv[2 * n + k] = _mm512_permutexvar_epi16(idx, sc16z);
            }
        }
        for (int t = 0; t < T; t++) {
            const sw_block_q8_K *xb = &x[t][b];
            __m512i sumi = _mm512_setzero_si512();
            for (int v = 0; v < 4; v++) {
                __m512i xv = _mm512_loadu_si512((const void *) (xb->qs + 64 * v));
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q[v], xv), scv[v]);
            }
            __m256i summ = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *) xb->bsums));
            if (q3) {
                sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(summ));
            } else {
                accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmw * xb->d), _mm256_cvtepi32_ps(summ), accm[t]);
            }
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(dw * xb->d), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        out[t] = _mm512_reduce_add_ps(acc[t]) - s_hsum8(accm[t]);
}

SW__ROWS_FN(SW_512 static, s_rows_q4_K, s_dot_k45, 0, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_512 static, s_rows_q5_K, s_dot_k45, 1, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_512 static, s_rows_q6_K, s_dot_q6_K, 0, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_512 static, s_rows_iq4_xs, s_dot_iq4_xs, 0, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_512 static, s_rows_q2_K, s_dot_q23, 0, sw_block_q8_K, SW_QK_K)
SW__ROWS_FN(SW_512 static, s_rows_q3_K, s_dot_q23, 1, sw_block_q8_K, SW_QK_K)

const sw__kernels_t sw__kernels_avx512 = {
    .name = "avx512vnni",
    .rows = {
        SW__AVX2_SHARED_ROWS,
        [SW__K_Q4_K] = s_rows_q4_K,
        [SW__K_Q5_K] = s_rows_q5_K,
        [SW__K_Q6_K] = s_rows_q6_K,
        [SW__K_IQ4_XS] = s_rows_iq4_xs,
        [SW__K_Q2_K] = s_rows_q2_K,
        [SW__K_Q3_K] = s_rows_q3_K,
    },
    .tile_q8_0 = s_tile_q8_0,
    .tile_q4_0 = s_tile_q4_0,
    .tile_q4_K = s_tile_q4_K,
    .tile_q5_K = s_tile_q5_K,
    .quant = s_quant,
    .quant_q8_K = s_quant_q8_K,
    .q8_0_bias = 128,
};

#else
typedef int sw__matmul_avx512_unused_t;
#endif
