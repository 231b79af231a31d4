/*  sw_kernels_impl.h: internal interface between sw_matmul.c and the kernel
 *  sets (sw_matmul_scalar.c, sw_matmul_avx2.c, sw_matmul_avx512.c).
 *  Not installed, not part of the public API.
 *
 *  Two kinds of kernels:
 *
 *  rows kernels work on the GGUF layout. They compute
 *      y[t * ldy + r] = dot(W row r, activation row t)  for r in [r0, r1), t < n_tok
 *  where the activation row t starts at (const char *) xa + t * xa_stride and
 *  is f32 (F32/F16/BF16 weights), Q8_0 blocks (the 32-element types Q8_0,
 *  Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) or Q8_K blocks (the 256-element types
 *  Q2_K..Q6_K, IQ4_XS), as ggml pairs them (it uses Q8_1, i.e. Q8_0 plus the
 *  block sum, for Q4_1/Q5_1; the kernels here sum the int8 values themselves).
 *
 *  tile kernels (x86 only) work on a repacked copy of Q8_0/Q4_0 weights in
 *  groups of 16 rows ("r16" layout, built by sw_matmul.c):
 *    group g = rows 16g..16g+15 (rows past n_out are zero), nb blocks, each
 *    block record:
 *      Q8_0: d[16] f16 (row r) | 8 chunks of 64 bytes; chunk k holds for row r
 *            (bytes 4r..4r+3) the weights of elements 4k..4k+3 of the block,
 *            as unsigned bytes q + 128 (q ^ 0x80).                  544 bytes
 *      Q4_0: d[16] f16 | 4 chunks of 64 bytes; chunk c holds for row r the
 *            bytes qs[4c..4c+3] of the row's GGUF block, i.e. elements 4c+j
 *            in the low nibbles and 16+4c+j in the high nibbles.   288 bytes
 *      Q4_K: a 256-element block of 16 rows (nb = n_in / 256):
 *            d[16] f16 (row r's d) | dmin[16] f16 | sc[8][16] u8 (the 6-bit
 *            scale of sub-block s of row r at 16s + r) | mn[8][16] u8 (the
 *            mins, same order) | 32 chunks of 64 bytes; chunk k holds for
 *            row r (bytes 4r..4r+3) the bytes qs[4k..4k+3] of the row's
 *            GGUF block, i.e. elements 64(k/8) + 4(k%8) + j (sub-block
 *            2(k/8)) in the low nibbles and those + 32 (sub-block
 *            2(k/8) + 1) in the high nibbles.                    2368 bytes
 *            (148 bytes per row and block against GGUF's 144: the scales
 *            and mins unpacked to bytes.)
 *      Q5_K: as Q4_K up to byte 320, then 8 chunks of 64 bytes; chunk c
 *            holds for row r the bytes qh[4c..4c+3] (bit 2p of qh[l] is the
 *            fifth bit of element 64p + l, bit 2p + 1 that of 64p + 32 + l),
 *            then the 32 qs chunks as Q4_K's (at byte 832).   2880 bytes
 *            (180 bytes per row and block against GGUF's 176.)
 *    groups are stored one after another, each with its nb records in order.
 *  Their activations are split into int8 values xq (n_in per token), f32
 *  block scales xd (the f16-rounded Q8_0 scale) and int32 block biases xb
 *  (-bias_mul * sum of the block's 32 int8 values), so that for each block
 *      sum_j w_j x_j = xb + sum_j u_j x_j
 *  with u_j the unsigned weight the kernel multiplies (q + 128 or the nibble).
 *  Q4_K / Q5_K tiles take Q8_K activation rows instead (sw__tile_t.xk), as
 *  the rows kernels do: row r of block b is, per sub-block s of 32 elements,
 *      d_r sc_rs sum_j u_j x_j - dmin_r mn_rs sum_j x_j   (times the Q8_K d)
 *  with the sums of x_j from the Q8_K bsums (ggml's Q4_K x Q8_K dot).
 */
#ifndef SW_KERNELS_IMPL_H
#define SW_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "sw_dtype.h"
#include "sw_pool.h"

#define SW__GROUP 16              /* rows per repacked group */
#define SW__REC_Q8_0 544          /* bytes per r16 block record */
#define SW__REC_Q4_0 288
#define SW__REC_Q4_K 2368
#define SW__REC_Q5_K 2880

/*  Kernel slots for rows kernels. */
enum {
    SW__K_F32, SW__K_F16, SW__K_BF16, SW__K_Q8_0, SW__K_Q4_0, SW__K_Q4_K, SW__K_Q6_K,
    SW__K_Q4_1, SW__K_Q5_0, SW__K_Q5_1, SW__K_IQ4_NL,   /* Q8_0 activations */
    SW__K_Q2_K, SW__K_Q3_K, SW__K_Q5_K, SW__K_IQ4_XS,   /* Q8_K activations */
    SW__K_N
};

typedef void(sw__rows_fn)(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1,
                          const void *xa, size_t xa_stride, int64_t n_tok, float *y, int64_t ldy);

typedef struct {
    const uint8_t *wg;        /* first record of the group */
    int64_t nb;               /* blocks per row (32-element blocks; Q4_K, Q5_K: 256) */
    const int8_t *xq;         /* int8 activations of token 0, n_in per token */
    int64_t xq_stride;        /* bytes between tokens in xq */
    const float *xd;          /* block scales of token 0, xs_stride per token */
    const int32_t *xb;        /* block biases of token 0, xs_stride per token */
    int64_t xs_stride;        /* elements between tokens in xd / xb */
    const sw_block_q8_K *xk;  /* Q4_K / Q5_K tiles: Q8_K activations of token 0 (nb blocks) */
    int64_t xk_stride;        /* Q8_K blocks between tokens in xk */
    int64_t n_tok;            /* tokens to compute (any count >= 1) */
    float *y;                 /* y of token 0, row 16g */
    int64_t ldy;              /* floats between tokens in y (n_out) */
    int n_rows;               /* valid rows in the group, 1..16 */
} sw__tile_t;

typedef void(sw__tile_fn)(const sw__tile_t *t);

/*  Quantizes one token row x[0..n_in) into xq / xd / xb (see above). */
typedef void(sw__quant_fn)(const float *x, int64_t n_in, int8_t *xq, float *xd, int32_t *xb, int bias_mul);

/*  Quantizes one token row x[0..n_in) (n_in a multiple of 256) into n_in /
 *  256 Q8_K blocks, byte for byte as sw_quantize_row(SW_DTYPE_Q8_K). */
typedef void(sw__quant_q8_K_fn)(const float *x, sw_block_q8_K *out, int64_t n_in);

typedef struct {
    const char *name;               /* "avx512vnni", "avx2", "scalar" */
    sw__rows_fn *rows[SW__K_N];     /* NULL where the type goes through tiles */
    sw__tile_fn *tile_q8_0;         /* NULL: no repacking, use rows */
    sw__tile_fn *tile_q4_0;
    sw__tile_fn *tile_q4_K;         /* NULL: Q4_K through rows */
    sw__tile_fn *tile_q5_K;         /* NULL: Q5_K through rows */
    sw__quant_fn *quant;            /* activation quantizer for the tiles */
    sw__quant_q8_K_fn *quant_q8_K;  /* Q8_K activations; NULL: sw_quantize_row */
    int q8_0_bias;                  /* bias_mul for Q8_0 tiles (128 or 0) */
} sw__kernels_t;

extern const sw__kernels_t sw__kernels_scalar;
#if defined(__x86_64__)
extern const sw__kernels_t sw__kernels_avx2;
extern const sw__kernels_t sw__kernels_avx512;
/*  AVX2 rows kernels, reused by the AVX-512 set. */
sw__rows_fn sw__avx2_rows_f32, sw__avx2_rows_f16, sw__avx2_rows_bf16, sw__avx2_rows_q4_K, sw__avx2_rows_q6_K;
sw__rows_fn sw__avx2_rows_q4_1, sw__avx2_rows_q5_0, sw__avx2_rows_q5_1, sw__avx2_rows_iq4_nl;
sw__rows_fn sw__avx2_rows_q2_K, sw__avx2_rows_q3_K, sw__avx2_rows_q5_K, sw__avx2_rows_iq4_xs;
/*  The rows entries both x86 sets take from the AVX2 file (designated
 *  initializers for sw__kernels_t.rows); each set adds its own K-quants
 *  (Q2_K..Q6_K) and IQ4_XS. */
#define SW__AVX2_SHARED_ROWS                                                                      \
    [SW__K_F32] = sw__avx2_rows_f32, [SW__K_F16] = sw__avx2_rows_f16,                            \
    [SW__K_BF16] = sw__avx2_rows_bf16, [SW__K_Q4_1] = sw__avx2_rows_q4_1,                        \
    [SW__K_Q5_0] = sw__avx2_rows_q5_0, [SW__K_Q5_1] = sw__avx2_rows_q5_1,                        \
    [SW__K_IQ4_NL] = sw__avx2_rows_iq4_nl
#endif

/*  Defines `attr void name(sw__rows_fn parameters)` over a dot product
 *  `dot(const uint8_t *row, const xtype *const *x, int64_t nb, float *out,
 *  int T, int kind)` that computes out[t] = dot(row, x[t]) for t < T <= 4
 *  tokens at once (weights decoded once per block for all of them); xtype
 *  is the activation block (sw_block_q8_0 / sw_block_q8_K) of bs elements,
 *  kind a constant the dot may branch on (its variant). The T cases are
 *  spelled out so that each dot is compiled for a constant T. */
#define SW__ROWS_FN(attr, name, dot, kind, xtype, bs)                                                        \
    attr void name(const uint8_t *w, size_t row_bytes, int64_t n_in, int64_t r0, int64_t r1, const void *xa,  \
                   size_t xa_stride, int64_t n_tok, float *y, int64_t ldy)                                    \
    {                                                                                                         \
        for (int64_t r = r0; r < r1; r++) {                                                                   \
            const uint8_t *wr = w + (size_t) r * row_bytes;                                                   \
            for (int64_t t0 = 0; t0 < n_tok; t0 += 4) {                                                       \
                const int T = n_tok - t0 < 4 ? (int) (n_tok - t0) : 4;                                       \
                const xtype *xs[4];                                                                           \
                float out[4];                                                                                 \
                for (int t = 0; t < 4; t++)                                                                   \
                    xs[t] = (const xtype *) ((const char *) xa + (size_t) (t0 + (t < T ? t : 0)) * xa_stride); \
                switch (T) {                                                                                  \
                case 1: dot(wr, xs, n_in / (bs), out, 1, kind); break;                                        \
                case 2: dot(wr, xs, n_in / (bs), out, 2, kind); break;                                        \
                case 3: dot(wr, xs, n_in / (bs), out, 3, kind); break;                                        \
                default: dot(wr, xs, n_in / (bs), out, 4, kind); break;                                       \
                }                                                                                             \
                for (int t = 0; t < T; t++)                                                                   \
                    y[(t0 + t) * ldy + r] = out[t];                                                           \
            }                                                                                                 \
        }                                                                                                     \
    }

#include <string.h>

/*  The 6-bit scales and mins of a Q4_K / Q5_K block (its 12 packed bytes at
 *  s, sw_dtype.h) as 4 bytes per u32, in registers: scales of sub-blocks
 *  0..3 in *sc_lo, 4..7 in *sc_hi, mins likewise. */
static inline void sw__k4_scales(const uint8_t *s, uint32_t *sc_lo, uint32_t *sc_hi, uint32_t *mn_lo, uint32_t *mn_hi)
{
    uint32_t a0, a1, a2;
    memcpy(&a0, s, 4);
    memcpy(&a1, s + 4, 4);
    memcpy(&a2, s + 8, 4);
    *sc_lo = a0 & 0x3f3f3f3fu;
    *mn_lo = a1 & 0x3f3f3f3fu;
    *sc_hi = (a2 & 0x0f0f0f0fu) | (((a0 >> 6) & 0x03030303u) << 4);
    *mn_hi = ((a2 >> 4) & 0x0f0f0f0fu) | (((a1 >> 6) & 0x03030303u) << 4);
}

#if defined(__x86_64__)
#include <immintrin.h>

#include <string.h>

/*  Q2_K / Q3_K block at blk: its 16 sub-block scales as int8 in *sc8 (Q3_K:
 *  the 6-bit value - 32; Q2_K: the low nibbles), the Q2_K mins in *mn8
 *  (zero for Q3_K), and the f16 factors d (*dw) and dmin (*dmw, 0 for Q3_K),
 *  unpacked in registers (scalar stores followed by a vector load would
 *  stall on store forwarding). Layouts in sw_dtype.h. */
static inline __attribute__((always_inline, target("avx2,f16c"))) void
sw__q23_scales(const uint8_t *blk, int q3, __m128i *sc8, __m128i *mn8, float *dw, float *dmw)
{
    const __m128i m4 = _mm_set1_epi8(0x0f);
    sw_f16_t h16;
    if (q3) {
        uint64_t lo8;
        uint32_t a2;
        memcpy(&lo8, blk + 96, 8);
        memcpy(&a2, blk + 104, 4);
        __m128i v = _mm_cvtsi64_si128((long long) lo8);
        __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
        __m128i hi = _mm_setr_epi32((int) (a2 & 0x03030303u), (int) ((a2 >> 2) & 0x03030303u),
                                    (int) ((a2 >> 4) & 0x03030303u), (int) ((a2 >> 6) & 0x03030303u));
        *sc8 = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
        *mn8 = _mm_setzero_si128();
        memcpy(&h16, blk + 108, 2);
        *dw = _cvtsh_ss(h16);
        *dmw = 0.0f;
    } else {
        __m128i v = _mm_loadu_si128((const __m128i *) blk);
        *sc8 = _mm_and_si128(v, m4);
        *mn8 = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
        memcpy(&h16, blk + 80, 2);
        *dw = _cvtsh_ss(h16);
        memcpy(&h16, blk + 82, 2);
        *dmw = _cvtsh_ss(h16);
    }
}
#endif

/*  Scalar helpers shared by the kernel sets. */
void sw__quant_scalar(const float *x, int64_t n_in, int8_t *xq, float *xd, int32_t *xb, int bias_mul);

/*  Per-pool scratch memory for sw_matmul (grow-only, 64-byte aligned, owned
 *  by the pool, valid until the next call or sw_pool_destroy). Only the pool
 *  owner may call it, outside of sw_pool_run. Returns NULL on failure. */
void *sw__pool_scratch(sw_pool_t *pool, size_t size);

#endif
