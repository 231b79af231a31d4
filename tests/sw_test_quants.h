/*  sw_test_quants.h: naive element decoders of the GGUF block types Q4_1,
 *  Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K and IQ4_XS for the tests
 *  (test_dtype.c, test_matmul.c), written element by element from the byte
 *  layouts in core/sw_dtype.h, independently of the library's decoders: each
 *  reads the bytes at their offsets, not through the library's structs.
 *
 *  Thread safety: pure functions.
 */
#ifndef SW_TEST_QUANTS_H
#define SW_TEST_QUANTS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sw_dtype.h"

static const int sw_tq_grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static inline double sw_tq_f16(const uint8_t *p)
{
    int h = p[0] | (p[1] << 8);
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v; /* callers keep scales finite */
}

/*  Low 4 bits of element i (0..31) of a 32-element nibble array at qs. */
static inline int sw_tq_nib(const uint8_t *qs, int i)
{
    return i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4);
}

/*  Writes element e of a row of `type` at p into *out and returns 1, or 0
 *  when the type is not one of this header's. */
static inline int sw_tq_elem(sw_dtype_t type, const uint8_t *p, int64_t e, double *out)
{
    const int i32 = (int) (e % 32), i = (int) (e % 256);
    switch (type) {
    case SW_DTYPE_Q4_1: {
        const uint8_t *b = p + 20 * (e / 32);
        *out = sw_tq_f16(b) * sw_tq_nib(b + 4, i32) + sw_tq_f16(b + 2);
        return 1;
    }
    case SW_DTYPE_Q5_0: {
        const uint8_t *b = p + 22 * (e / 32);
        int hb = (b[2 + i32 / 8] >> (i32 % 8)) & 1;
        *out = sw_tq_f16(b) * ((sw_tq_nib(b + 6, i32) + 16 * hb) - 16);
        return 1;
    }
    case SW_DTYPE_Q5_1: {
        const uint8_t *b = p + 24 * (e / 32);
        int hb = (b[4 + i32 / 8] >> (i32 % 8)) & 1;
        *out = sw_tq_f16(b) * (sw_tq_nib(b + 8, i32) + 16 * hb) + sw_tq_f16(b + 2);
        return 1;
    }
    case SW_DTYPE_IQ4_NL: {
        const uint8_t *b = p + 18 * (e / 32);
        *out = sw_tq_f16(b) * sw_tq_grid[sw_tq_nib(b + 2, i32)];
        return 1;
    }
    case SW_DTYPE_Q2_K: {
        const uint8_t *b = p + 84 * (e / 256);
        int q = (b[16 + 32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
        int sc = b[i / 16] & 15, mn = b[i / 16] >> 4;
        *out = sw_tq_f16(b + 80) * sc * q - sw_tq_f16(b + 82) * mn;
        return 1;
    }
    case SW_DTYPE_Q3_K: {
        const uint8_t *b = p + 110 * (e / 256);
        int q = (b[32 + 32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
        int h = (b[i % 32] >> (4 * (i / 128) + (i % 128) / 32)) & 1;
        int s = i / 16;
        const uint8_t *sb = b + 96;
        int lo = s < 8 ? (sb[s] & 15) : (sb[s - 8] >> 4);
        int hi = (sb[8 + s % 4] >> (2 * (s / 4))) & 3;
        *out = sw_tq_f16(b + 108) * ((lo | (hi << 4)) - 32) * (h ? q : q - 4);
        return 1;
    }
    case SW_DTYPE_Q5_K: {
        const uint8_t *b = p + 176 * (e / 256);
        int s = i / 32;
        const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 48;
        int scale = s < 4 ? (sc[s] & 63) : ((sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4));
        int min = s < 4 ? (sc[s + 4] & 63) : ((sc[s + 4] >> 4) | ((sc[s] >> 6) << 4));
        uint8_t byte = qs[32 * (s / 2) + i % 32];
        int q = ((s & 1) ? byte >> 4 : byte & 15) + 16 * ((qh[i % 32] >> s) & 1);
        *out = sw_tq_f16(b) * scale * q - sw_tq_f16(b + 2) * min;
        return 1;
    }
    case SW_DTYPE_IQ4_XS: {
        const uint8_t *b = p + 136 * (e / 256);
        int s = i / 32;
        int sh = b[2] | (b[3] << 8);
        int ls = ((b[4 + s / 2] >> (4 * (s % 2))) & 15) | (((sh >> (2 * s)) & 3) << 4);
        *out = sw_tq_f16(b) * (ls - 32) * sw_tq_grid[sw_tq_nib(b + 8 + 16 * s, i % 32)];
        return 1;
    }
    default: return 0;
    }
}

/*  Puts finite f16 scales d (and d2 for the second scale: m, dmin) into a
 *  block of `type` at blk, whose other bytes may be random. Returns 1, or 0
 *  for a type not of this header. */
static inline int sw_tq_set_scales(sw_dtype_t type, uint8_t *blk, uint16_t d, uint16_t d2)
{
    switch (type) {
    case SW_DTYPE_Q5_0:
    case SW_DTYPE_IQ4_NL:
    case SW_DTYPE_IQ4_XS: memcpy(blk, &d, 2); return 1;
    case SW_DTYPE_Q4_1:
    case SW_DTYPE_Q5_1:
    case SW_DTYPE_Q5_K: memcpy(blk, &d, 2); memcpy(blk + 2, &d2, 2); return 1;
    case SW_DTYPE_Q2_K: memcpy(blk + 80, &d, 2); memcpy(blk + 82, &d2, 2); return 1;
    case SW_DTYPE_Q3_K: memcpy(blk + 108, &d, 2); return 1;
    default: return 0;
    }
}

#endif
