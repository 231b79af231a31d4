/*  sw_dtype.h: tensor element types, quantization blocks, conversions.
 *
 *  Type ids and block layouts are those of ggml (ggml/include/ggml.h and
 *  ggml-common.h), so GGUF files from other tools load unchanged. A row of n
 *  elements of a block type holds n / block_size blocks back to back.
 *
 *    F32   1 elem,    4 bytes: IEEE binary32
 *    F16   1 elem,    2 bytes: IEEE binary16
 *    BF16  1 elem,    2 bytes: upper 16 bits of binary32
 *    Q8_0  32 elems, 34 bytes: d (f16) | qs[32] int8;           x = d * q
 *    Q4_0  32 elems, 18 bytes: d (f16) | qs[16] nibbles;        x = d * (q - 8)
 *          byte j holds element j in the low nibble and element j+16 in the high
 *    Q4_K  256 elems, 144 bytes: d (f16) | dmin (f16) | scales[12] | qs[128]
 *          8 sub-blocks of 32 with 6-bit scale sc and 6-bit min m packed in
 *          scales[12]; x = d*sc*q - dmin*m; qs: 4 groups of 32 bytes, each byte
 *          holding sub-block 2g in the low nibble, 2g+1 in the high nibble
 *    Q6_K  256 elems, 210 bytes: ql[128] | qh[64] | scales[16] int8 | d (f16)
 *          16 sub-blocks of 16; x = d * scales[s] * (q - 32), q 6-bit from
 *          4 low bits in ql and 2 high bits in qh
 *    Q8_K  256 elems, 292 bytes: d (f32) | qs[256] int8 | bsums[16] int16
 *          (activation-side type for K-quant dot products; never in files here)
 *    Q4_1  32 elems, 20 bytes: d (f16) | m (f16) | qs[16];      x = d * q + m
 *          nibbles as Q4_0
 *    Q5_0  32 elems, 22 bytes: d (f16) | qh[4] | qs[16];        x = d * (q - 16)
 *          q = nibble (as Q4_0) | bit j of the little-endian u32 qh << 4,
 *          element j in 0..31
 *    Q5_1  32 elems, 24 bytes: d (f16) | m (f16) | qh[4] | qs[16]; x = d * q + m
 *    IQ4_NL 32 elems, 18 bytes: d (f16) | qs[16];               x = d * K[q]
 *          nibbles as Q4_0; K = the 16-entry non-linear grid s_iq4nl_grid
 *          {-127 .. 113} (GGUF's kvalues_iq4nl)
 *    Q2_K  256 elems, 84 bytes: scales[16] | qs[64] | d (f16) | dmin (f16)
 *          16 sub-blocks of 16; scales[s] = sc (low 4 bits) | m (high 4);
 *          x = d*sc*q - dmin*m, q 2-bit: element e in half n = e/128, group
 *          j = (e%128)/32, lane l = e%32 is bits 2j..2j+1 of qs[32n + l]
 *    Q3_K  256 elems, 110 bytes: hmask[32] | qs[64] | scales[12] | d (f16)
 *          16 sub-blocks of 16 with 6-bit scales sc (stored + 32): sub-block
 *          s has low 4 bits in scales[s] (s < 8) or scales[s-8] >> 4, high 2
 *          bits at bits 2*(s/4) of scales[8 + s%4]; x = d * (sc - 32) * q,
 *          q = 2 low bits (placed as in Q2_K) - 4 unless bit 4n+j of
 *          hmask[l] is set (then q is the 2 low bits alone, 0..3)
 *    Q5_K  256 elems, 176 bytes: d (f16) | dmin (f16) | scales[12] | qh[32] | qs[128]
 *          as Q4_K plus a fifth bit: element 32s + l (sub-block s) has bit s
 *          of qh[l] as bit 4
 *    IQ4_XS 256 elems, 136 bytes: d (f16) | scales_h (u16) | scales_l[4] | qs[128]
 *          8 sub-blocks of 32 with 6-bit scales ls = low nibble s%2 of
 *          scales_l[s/2] | bits 2s..2s+1 of scales_h << 4; x = d*(ls-32)*K[q],
 *          sub-block s uses qs[16s..16s+15] with nibbles placed as in Q4_0
 *
 *  All of these are GGUF's (ggml-common.h block_q4_1, block_q5_0, ... and
 *  dequantize_row_* in ggml-quants.c, read for the format only).
 *
 *  Thread safety: all functions are pure and reentrant.
 */
#ifndef SW_DTYPE_H
#define SW_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SW_DTYPE_F32 = 0,
    SW_DTYPE_F16 = 1,
    SW_DTYPE_Q4_0 = 2,
    SW_DTYPE_Q4_1 = 3,
    SW_DTYPE_Q5_0 = 6,
    SW_DTYPE_Q5_1 = 7,
    SW_DTYPE_Q8_0 = 8,
    SW_DTYPE_Q2_K = 10,
    SW_DTYPE_Q3_K = 11,
    SW_DTYPE_Q4_K = 12,
    SW_DTYPE_Q5_K = 13,
    SW_DTYPE_Q6_K = 14,
    SW_DTYPE_Q8_K = 15,
    SW_DTYPE_IQ4_NL = 20,
    SW_DTYPE_IQ4_XS = 23,
    SW_DTYPE_BF16 = 30,
} sw_dtype_t;

#define SW_QK8_0 32
#define SW_QK4_0 32
#define SW_QK_K 256
#define SW_K_SCALE_SIZE 12

typedef uint16_t sw_f16_t;   /* IEEE binary16 bits */
typedef uint16_t sw_bf16_t;  /* bfloat16 bits */

typedef struct { sw_f16_t d; int8_t qs[SW_QK8_0]; } sw_block_q8_0;
typedef struct { sw_f16_t d; uint8_t qs[SW_QK4_0 / 2]; } sw_block_q4_0;
typedef struct { sw_f16_t d; sw_f16_t dmin; uint8_t scales[SW_K_SCALE_SIZE]; uint8_t qs[SW_QK_K / 2]; } sw_block_q4_K;
typedef struct { uint8_t ql[SW_QK_K / 2]; uint8_t qh[SW_QK_K / 4]; int8_t scales[SW_QK_K / 16]; sw_f16_t d; } sw_block_q6_K;
typedef struct { float d; int8_t qs[SW_QK_K]; int16_t bsums[SW_QK_K / 16]; } sw_block_q8_K;
typedef struct { sw_f16_t d; sw_f16_t m; uint8_t qs[16]; } sw_block_q4_1;
typedef struct { sw_f16_t d; uint8_t qh[4]; uint8_t qs[16]; } sw_block_q5_0;
typedef struct { sw_f16_t d; sw_f16_t m; uint8_t qh[4]; uint8_t qs[16]; } sw_block_q5_1;
typedef struct { sw_f16_t d; uint8_t qs[16]; } sw_block_iq4_nl;
typedef struct { uint8_t scales[SW_QK_K / 16]; uint8_t qs[SW_QK_K / 4]; sw_f16_t d; sw_f16_t dmin; } sw_block_q2_K;
typedef struct { uint8_t hmask[SW_QK_K / 8]; uint8_t qs[SW_QK_K / 4]; uint8_t scales[12]; sw_f16_t d; } sw_block_q3_K;
typedef struct { sw_f16_t d; sw_f16_t dmin; uint8_t scales[SW_K_SCALE_SIZE]; uint8_t qh[SW_QK_K / 8]; uint8_t qs[SW_QK_K / 2]; } sw_block_q5_K;
typedef struct { sw_f16_t d; uint16_t scales_h; uint8_t scales_l[SW_QK_K / 64]; uint8_t qs[SW_QK_K / 2]; } sw_block_iq4_xs;

/*  The IQ4_NL / IQ4_XS grid: the value of each 4-bit code (GGUF's
 *  kvalues_iq4nl), to be multiplied by the block (or sub-block) scale. */
extern const int8_t sw_iq4nl_grid[16];

/*  6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of a
 *  Q4_K / Q5_K block (layout above). */
static inline void sw_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t) ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t) ((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/*  6-bit scale (0..63, stored with +32 offset) of sub-block s (0..15) from
 *  the 12 packed bytes of a Q3_K block (layout above). */
static inline int sw_q3k_scale(int s, const uint8_t *q)
{
    int lo = s < 8 ? (q[s] & 0x0f) : (q[s - 8] >> 4);
    int hi = (q[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
    return lo | (hi << 4);
}

/*  True for the types this library can load and compute with. */
bool sw_dtype_is_known(uint32_t type);
/*  Short lower-case name ("f32", "q8_0", "q4_K", ...) or "?" for unknown. */
const char *sw_dtype_name(sw_dtype_t type);
/*  Parses a name as printed by sw_dtype_name (case-insensitive). Returns 0 and
 *  writes *out, or -1. */
int sw_dtype_from_name(const char *name, sw_dtype_t *out);
/*  Elements per block (1 for F32/F16/BF16) and bytes per block; 0 if unknown. */
int64_t sw_dtype_block_size(sw_dtype_t type);
size_t sw_dtype_block_bytes(sw_dtype_t type);
/*  Bytes of a row of n elements; 0 if the type is unknown or n is not a
 *  multiple of the block size. */
size_t sw_dtype_row_size(sw_dtype_t type, int64_t n);

/*  Scalar conversions (round to nearest even; NaN/Inf preserved). */
float sw_f16_to_f32(sw_f16_t h);
sw_f16_t sw_f32_to_f16(float f);
float sw_bf16_to_f32(sw_bf16_t h);
sw_bf16_t sw_f32_to_bf16(float f);

/*  Converts one row of n elements of `type` at src into n f32 at dst.
 *  n must be a multiple of the block size. Returns 0, or -1 for an unknown
 *  type or a bad n. */
int sw_dequantize_row(sw_dtype_t type, const void *src, float *dst, int64_t n);

/*  Quantizes n f32 at src into one row of `type` at dst (sw_dtype_row_size
 *  bytes). Every type above. F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q8_K with
 *  ggml's reference rounding (d = absmax/127 for q8, d = signed max/-8 for
 *  q4_0, /-16 for q5_0); the others with a simple one-pass scale choice:
 *  Q4_1/Q5_1 block min and range, Q2_K/Q4_K/Q5_K sub-block min and range
 *  (6-bit, or 4-bit for Q2_K, scales of d and dmin), Q3_K/Q6_K sub-block
 *  absmax, IQ4_NL/IQ4_XS largest value onto the grid end, then one least-
 *  squares refinement of the scale. Good for tests and synthetic models.
 *  Returns 0 or -1. */
int sw_quantize_row(sw_dtype_t type, const float *src, void *dst, int64_t n);

/*  Like sw_quantize_row, with per-element weights w (n floats > 0, finite;
 *  NULL = sw_quantize_row) for the types that search their sub-block scales
 *  for the least weighted squared error: Q4_K and Q5_K (each sub-block of
 *  32: 21 code spacings around its range's, (scale, min) refitted by
 *  weighted least squares, the best kept), Q2_K (sub-blocks of 16, the
 *  same), Q6_K and Q3_K (each sub-block of 16: its symmetric scale
 *  likewise). Other types ignore w. Returns 0,
 *  or -1 (also for a weight <= 0 or not finite). */
int sw_quantize_row_weighted(sw_dtype_t type, const float *src, void *dst, int64_t n, const float *w);

#ifdef __cplusplus
}
#endif
#endif
