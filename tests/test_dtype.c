/*  test_dtype.c: sw_dtype selftest.
 *
 *  - type table (sizes from the ggml layouts, names, row sizes, bad input);
 *  - f16: every one of the 65536 codes decoded against ldexp, round trips,
 *    f32 -> f16 rounding against a brute-force nearest-even search over all
 *    finite f16 values, overflow, subnormals, NaN/Inf;
 *  - bf16: round trips and nearest-even against a two-candidate search;
 *  - dequantize of random hand-built blocks of every type against a naive
 *    element-by-element decoder written here from the layout description;
 *  - quantize -> dequantize error bounds for q8_0, q4_0, q8_K, q4_K, q6_K.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_dtype.h"
#include "sw_test.h"
#include "sw_test_quants.h"

static uint64_t s_rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t) (s_rng >> 16);
}

static float rndf(void)
{
    return (float) ((double) rnd() / 2147483648.0 - 1.0);
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/*  f16 code -> value, NaN for NaN codes (independent of the library). */
static double ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}

/*  Naive element decoder from the layout description in sw_dtype.h. */
static double ref_elem(sw_dtype_t type, const uint8_t *p, int64_t e)
{
    switch (type) {
    case SW_DTYPE_F32: {
        float f;
        memcpy(&f, p + 4 * e, 4);
        return f;
    }
    case SW_DTYPE_F16: return ref_f16(rd16(p + 2 * e));
    case SW_DTYPE_BF16: return bits_f((uint32_t) rd16(p + 2 * e) << 16);
    case SW_DTYPE_Q8_0: {
        const uint8_t *b = p + 34 * (e / 32);
        return ref_f16(rd16(b)) * (int8_t) b[2 + e % 32];
    }
    case SW_DTYPE_Q4_0: {
        const uint8_t *b = p + 18 * (e / 32);
        int i = (int) (e % 32);
        int nib = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
        return ref_f16(rd16(b)) * (nib - 8);
    }
    case SW_DTYPE_Q4_K: {
        const uint8_t *b = p + 144 * (e / 256);
        int i = (int) (e % 256), s = i / 32;
        const uint8_t *sc = b + 4, *qs = b + 16;
        int scale, min;
        if (s < 4) {
            scale = sc[s] & 63;
            min = sc[s + 4] & 63;
        } else {
            scale = (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
            min = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
        }
        uint8_t byte = qs[32 * (s / 2) + i % 32];
        int nib = (s & 1) ? byte >> 4 : byte & 15;
        return ref_f16(rd16(b)) * scale * nib - ref_f16(rd16(b + 2)) * min;
    }
    case SW_DTYPE_Q6_K: {
        const uint8_t *b = p + 210 * (e / 256);
        int i = (int) (e % 256), h = i / 128, k = (i % 128) / 32, l = i % 32;
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *scales = (const int8_t *) (b + 192);
        uint8_t lb = ql[64 * h + l + 32 * (k & 1)];
        int lo = k < 2 ? (lb & 15) : (lb >> 4);
        int hi = (qh[32 * h + l] >> (2 * k)) & 3;
        return ref_f16(rd16(b + 208)) * scales[i / 16] * ((lo | (hi << 4)) - 32);
    }
    case SW_DTYPE_Q8_K: {
        const uint8_t *b = p + 292 * (e / 256);
        float d;
        memcpy(&d, b, 4);
        return (double) d * (int8_t) b[4 + e % 256];
    }
    default: {
        double v;
        return sw_tq_elem(type, p, e, &v) ? v : NAN;
    }
    }
}

/* ------------------------------------------------------------------------ */

static void test_table(void)
{
    struct { sw_dtype_t t; const char *name; int64_t bs; size_t bb; } want[] = {
        { SW_DTYPE_F32, "f32", 1, 4 },      { SW_DTYPE_F16, "f16", 1, 2 },
        { SW_DTYPE_BF16, "bf16", 1, 2 },    { SW_DTYPE_Q8_0, "q8_0", 32, 34 },
        { SW_DTYPE_Q4_0, "q4_0", 32, 18 },  { SW_DTYPE_Q4_K, "q4_K", 256, 144 },
        { SW_DTYPE_Q6_K, "q6_K", 256, 210 }, { SW_DTYPE_Q8_K, "q8_K", 256, 292 },
        { SW_DTYPE_Q4_1, "q4_1", 32, 20 },  { SW_DTYPE_Q5_0, "q5_0", 32, 22 },
        { SW_DTYPE_Q5_1, "q5_1", 32, 24 },  { SW_DTYPE_IQ4_NL, "iq4_nl", 32, 18 },
        { SW_DTYPE_Q2_K, "q2_K", 256, 84 }, { SW_DTYPE_Q3_K, "q3_K", 256, 110 },
        { SW_DTYPE_Q5_K, "q5_K", 256, 176 }, { SW_DTYPE_IQ4_XS, "iq4_xs", 256, 136 },
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CHECK(sw_dtype_is_known((uint32_t) want[i].t));
        CHECK(strcmp(sw_dtype_name(want[i].t), want[i].name) == 0);
        CHECK(sw_dtype_block_size(want[i].t) == want[i].bs);
        CHECK(sw_dtype_block_bytes(want[i].t) == want[i].bb);
        sw_dtype_t got = (sw_dtype_t) 77;
        CHECK(sw_dtype_from_name(want[i].name, &got) == 0 && got == want[i].t);
        CHECK(sw_dtype_row_size(want[i].t, want[i].bs * 5) == want[i].bb * 5);
        CHECK(sw_dtype_row_size(want[i].t, 0) == 0);
        if (want[i].bs > 1)
            CHECK(sw_dtype_row_size(want[i].t, want[i].bs + 1) == 0);
        CHECK(sw_dtype_row_size(want[i].t, -want[i].bs) == 0);
    }
    sw_dtype_t got;
    CHECK(sw_dtype_from_name("Q4_k", &got) == 0 && got == SW_DTYPE_Q4_K);
    CHECK(sw_dtype_from_name("BF16", &got) == 0 && got == SW_DTYPE_BF16);
    CHECK(sw_dtype_from_name("IQ4_xs", &got) == 0 && got == SW_DTYPE_IQ4_XS);
    CHECK(sw_dtype_from_name("q5_2", &got) == -1);
    CHECK(sw_dtype_from_name("", &got) == -1);
    CHECK(sw_dtype_from_name(NULL, &got) == -1);
    /* 4, 5: removed Q4_2/Q4_3; 9 Q8_1, 16..19, 21, 22 the other IQ types */
    const uint32_t unknown[] = { 4, 5, 9, 16, 19, 21, 22, 29, 31, 1000, 0xffffffffu };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        CHECK(!sw_dtype_is_known(unknown[i]));
        CHECK(strcmp(sw_dtype_name((sw_dtype_t) unknown[i]), "?") == 0);
        CHECK(sw_dtype_block_size((sw_dtype_t) unknown[i]) == 0);
        CHECK(sw_dtype_block_bytes((sw_dtype_t) unknown[i]) == 0);
        CHECK(sw_dtype_row_size((sw_dtype_t) unknown[i], 32) == 0);
    }
    CHECK(sw_dtype_row_size(SW_DTYPE_F32, INT64_MAX) == 0); /* overflow */
}

/*  Brute-force f32 -> f16: nearest of all finite f16 values, ties to the
 *  even code, overflow at 65520 (halfway past 65504) to Inf. */
static double s_f16_vals[31744]; /* codes 0..0x7bff */

static uint16_t ref_to_f16(float f)
{
    double a = fabs((double) f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (a >= 65520.0)
        return sign | 0x7c00;
    int lo = 0, hi = 0x7bff;
    while (hi - lo > 1) { /* values increase with the code */
        int mid = (lo + hi) / 2;
        if (s_f16_vals[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    double dl = a - s_f16_vals[lo], dh = s_f16_vals[hi] - a;
    int c = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
    if (a < s_f16_vals[lo])
        c = lo;
    return (uint16_t) (sign | c);
}

static void test_f16(void)
{
    int bad_dec = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sw_f16_to_f32((uint16_t) h);
        double r = ref_f16((uint16_t) h);
        if (isnan(r)) {
            if (!isnan(f))
                bad_dec++;
            uint16_t back = sw_f32_to_f16(f);
            if ((back & 0x7c00) != 0x7c00 || (back & 0x3ff) == 0)
                bad_rt++;
            continue;
        }
        if ((double) f != r || (signbit(f) != 0) != (int) (h >> 15))
            bad_dec++;
        if (sw_f32_to_f16(f) != h)
            bad_rt++;
    }
    CHECK_MSG(bad_dec == 0, "%d f16 codes decoded wrongly", bad_dec);
    CHECK_MSG(bad_rt == 0, "%d f16 codes did not round-trip", bad_rt);

    for (int c = 0; c < 0x7c00; c++)
        s_f16_vals[c] = ref_f16((uint16_t) c);
    float edges[] = { 0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e10f, -1e-10f,
                      ldexpf(1, -24), ldexpf(1, -25), ldexpf(3, -26), ldexpf(1, -25) * 1.0001f, ldexpf(1, -14),
                      ldexpf(1023, -24), ldexpf(2047, -25), 1.0f + ldexpf(1, -11), 1.0f + ldexpf(3, -11),
                      2049.0f, 2051.0f, 0.1f, 1.0f / 3.0f };
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        uint16_t got = sw_f32_to_f16(edges[i]), want = ref_to_f16(edges[i]);
        CHECK_MSG(got == want, "f32_to_f16(%.9g) = 0x%04x, want 0x%04x", (double) edges[i], got, want);
    }
    int bad = 0;
    for (int i = 0; i < 300000; i++) {
        /* random exponents across the whole f16 range and beyond */
        float f = ldexpf(rndf(), (int) (rnd() % 50) - 30);
        if (i % 3 == 0)
            f = bits_f(rnd() << 1 ^ rnd()); /* arbitrary bit patterns */
        if (isnan(f))
            continue;
        if (sw_f32_to_f16(f) != ref_to_f16(f)) {
            if (bad++ < 5)
                fprintf(stderr, "f32_to_f16(%.9g): 0x%04x want 0x%04x\n", (double) f, sw_f32_to_f16(f), ref_to_f16(f));
        }
    }
    CHECK_MSG(bad == 0, "%d random f32 -> f16 conversions wrong", bad);
    CHECK(sw_f32_to_f16(INFINITY) == 0x7c00);
    CHECK(sw_f32_to_f16(-INFINITY) == 0xfc00);
    uint16_t n = sw_f32_to_f16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    CHECK(isnan(sw_f16_to_f32(0x7e00)) && isinf(sw_f16_to_f32(0x7c00)));
}

static uint16_t ref_to_bf16(float f)
{
    uint32_t u = f_bits(f);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    if ((u & 0x7fffffffu) >= 0x7f7f8000u && (u & 0x7fffffffu) < 0x7f800000u) /* rounds past max */
        return (uint16_t) (hi >> 16);
    double dl = fabs((double) f - (double) bits_f(lo)), dh = fabs((double) bits_f(hi) - (double) f);
    uint32_t c = dl < dh ? lo : dh < dl ? hi : (((lo >> 16) & 1) ? hi : lo);
    return (uint16_t) (c >> 16);
}

static void test_bf16(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sw_bf16_to_f32((uint16_t) h);
        if (f_bits(f) != h << 16)
            bad++;
        if (!isnan(f) && sw_f32_to_bf16(f) != h)
            bad++;
    }
    CHECK_MSG(bad == 0, "%d bf16 codes failed decode/round trip", bad);
    bad = 0;
    for (int i = 0; i < 300000; i++) {
        float f = i % 2 ? ldexpf(rndf(), (int) (rnd() % 200) - 100) : bits_f(rnd() << 1 ^ rnd());
        if (isnan(f) || isinf(f))
            continue;
        if (sw_f32_to_bf16(f) != ref_to_bf16(f))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d random f32 -> bf16 conversions wrong", bad);
    CHECK(sw_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80);      /* tie to even (down) */
    CHECK(sw_f32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82);      /* tie to even (up) */
    CHECK(sw_f32_to_bf16(INFINITY) == 0x7f80);
    uint16_t n = sw_f32_to_bf16(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    n = sw_f32_to_bf16(bits_f(0x7f800001u)); /* NaN with a low payload only: must stay NaN */
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
}

/*  Random but valid blocks: random bytes everywhere, sane f16/f32 scales. */
static void fill_blocks(sw_dtype_t type, uint8_t *p, int64_t n)
{
    size_t rb = sw_dtype_row_size(type, n);
    for (size_t i = 0; i < rb; i++)
        p[i] = (uint8_t) rnd();
    int64_t nb = n / sw_dtype_block_size(type);
    size_t bb = sw_dtype_block_bytes(type);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *q = p + (size_t) b * bb;
        uint16_t d = sw_f32_to_f16(rndf()), d2 = sw_f32_to_f16(rndf() * 0.1f);
        switch (type) {
        case SW_DTYPE_Q8_0:
        case SW_DTYPE_Q4_0: memcpy(q, &d, 2); break;
        case SW_DTYPE_Q4_K: memcpy(q, &d, 2); memcpy(q + 2, &d2, 2); break;
        case SW_DTYPE_Q6_K: memcpy(q + 208, &d, 2); break;
        case SW_DTYPE_Q8_K: { float f = rndf(); memcpy(q, &f, 4); break; }
        case SW_DTYPE_F16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h = (uint16_t) rnd();
                if ((h & 0x7c00) == 0x7c00)
                    h &= 0xbfff; /* no Inf/NaN */
                memcpy(p + 2 * i, &h, 2);
            }
            return;
        case SW_DTYPE_F32:
            for (int64_t i = 0; i < n; i++) {
                float f = rndf() * 100;
                memcpy(p + 4 * i, &f, 4);
            }
            return;
        case SW_DTYPE_BF16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h = (uint16_t) rnd();
                if ((h & 0x7f80) == 0x7f80)
                    h &= 0xbfff;
                memcpy(p + 2 * i, &h, 2);
            }
            return;
        default: sw_tq_set_scales(type, q, d, d2); break;
        }
    }
}

static void test_dequant(void)
{
    const sw_dtype_t types[] = { SW_DTYPE_F32, SW_DTYPE_F16, SW_DTYPE_BF16, SW_DTYPE_Q8_0,
                                 SW_DTYPE_Q4_0, SW_DTYPE_Q4_K, SW_DTYPE_Q6_K, SW_DTYPE_Q8_K,
                                 SW_DTYPE_Q4_1, SW_DTYPE_Q5_0, SW_DTYPE_Q5_1, SW_DTYPE_IQ4_NL,
                                 SW_DTYPE_Q2_K, SW_DTYPE_Q3_K, SW_DTYPE_Q5_K, SW_DTYPE_IQ4_XS };
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        sw_dtype_t type = types[ti];
        int64_t n = sw_dtype_block_size(type) == 1 ? 333 : sw_dtype_block_size(type) * 3;
        uint8_t *buf = malloc(sw_dtype_row_size(type, n));
        float *out = malloc(sizeof(float) * (size_t) n);
        int bad = 0;
        for (int rep = 0; rep < 20; rep++) {
            fill_blocks(type, buf, n);
            CHECK(sw_dequantize_row(type, buf, out, n) == 0);
            for (int64_t e = 0; e < n; e++) {
                double want = ref_elem(type, buf, e);
                if (fabs((double) out[e] - want) > 1e-6 * fabs(want) + 1e-30) {
                    if (bad++ < 3)
                        fprintf(stderr, "%s elem %lld: %g want %g\n", sw_dtype_name(type), (long long) e,
                                (double) out[e], want);
                }
            }
        }
        CHECK_MSG(bad == 0, "%s: %d elements dequantized wrongly", sw_dtype_name(type), bad);
        CHECK(sw_dequantize_row(type, buf, out, n + (sw_dtype_block_size(type) > 1 ? 1 : -n - 1)) == -1);
        free(buf);
        free(out);
    }
    float f[32];
    uint8_t b[64];
    CHECK(sw_dequantize_row((sw_dtype_t) 5, b, f, 32) == -1);
    CHECK(sw_quantize_row((sw_dtype_t) 5, f, b, 32) == -1);
    CHECK(sw_quantize_row(SW_DTYPE_Q8_0, f, b, 31) == -1);
}

/*  quantize -> dequantize round trips: per-block max-error bounds where the
 *  reference rounding makes them exact, relative RMS bounds otherwise. */
static void test_quant_error(void)
{
    const int64_t n = 256 * 8;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    uint8_t *q = malloc(sizeof(float) * n + 64); /* the largest row here: f32 */
    const sw_dtype_t types[] = { SW_DTYPE_Q8_0, SW_DTYPE_Q4_0, SW_DTYPE_Q8_K, SW_DTYPE_Q4_K, SW_DTYPE_Q6_K,
                                 SW_DTYPE_F16, SW_DTYPE_BF16, SW_DTYPE_F32, SW_DTYPE_Q4_1, SW_DTYPE_Q5_0,
                                 SW_DTYPE_Q5_1, SW_DTYPE_IQ4_NL, SW_DTYPE_Q2_K, SW_DTYPE_Q3_K, SW_DTYPE_Q5_K,
                                 SW_DTYPE_IQ4_XS };
    /* with the 1-in-97 outliers of 8x below; q8_0 data alone gives ~0.004 */
    const double rms_bound[] = { 0.015, 0.2, 0.03, 0.12, 0.04, 0.0004, 0.003, 0.0, 0.13, 0.09, 0.065, 0.14, 0.5, 0.33, 0.065, 0.14 };
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        sw_dtype_t type = types[ti];
        int64_t bs = sw_dtype_block_size(type);
        double worst_rel = 0;
        int bad_max = 0;
        for (int rep = 0; rep < 10; rep++) {
            /* mixed scales, some all-zero blocks, outliers */
            for (int64_t i = 0; i < n; i++) {
                float s = (float) ((i / 256) % 4 + 1) * 0.5f;
                x[i] = rndf() * s;
                if (rnd() % 97 == 0)
                    x[i] *= 8;
                if (rep == 3 && i < 256)
                    x[i] = 0;
            }
            CHECK(sw_quantize_row(type, x, q, n) == 0);
            /* decoded with the test's own decoder */
            for (int64_t i = 0; i < n; i++)
                y[i] = (float) ref_elem(type, q, i);
            double se = 0, sx = 0;
            for (int64_t i = 0; i < n; i++) {
                se += ((double) x[i] - y[i]) * ((double) x[i] - y[i]);
                sx += (double) x[i] * x[i];
            }
            double rel = sx > 0 ? sqrt(se / sx) : 0;
            if (rel > worst_rel)
                worst_rel = rel;
            if (bs > 1 && (type == SW_DTYPE_Q8_0 || type == SW_DTYPE_Q4_0 || type == SW_DTYPE_Q8_K)) {
                for (int64_t b = 0; b < n / bs; b++) {
                    double amax = 0;
                    for (int64_t j = 0; j < bs; j++)
                        amax = fmax(amax, fabs(x[b * bs + j]));
                    /* q8: half a step, plus the f16 rounding of d on 127 steps;
                       q4_0: d = max / -8, the far side clips at one step */
                    double bound = type == SW_DTYPE_Q4_0 ? amax / 8 * (1 + 1.0 / 512)
                                                         : amax * (1.0 / 254 + 1.0 / 2048);
                    for (int64_t j = 0; j < bs; j++)
                        if (fabs((double) x[b * bs + j] - y[b * bs + j]) > bound * 1.0001 + 1e-30)
                            bad_max++;
                }
            }
            if (rep == 3 && bs > 1)
                for (int64_t i = 0; i < bs; i++)
                    CHECK(y[i] == 0.0f);
        }
        CHECK_MSG(worst_rel <= rms_bound[ti], "%s: relative rms error %g > %g", sw_dtype_name(type), worst_rel,
                  rms_bound[ti]);
        CHECK_MSG(bad_max == 0, "%s: %d elements beyond the max-error bound", sw_dtype_name(type), bad_max);
        printf("%-5s quantize round trip: relative rms error %.5f\n", sw_dtype_name(type), worst_rel);
    }
    /* Q8_K block sums */
    for (int64_t i = 0; i < n; i++)
        x[i] = rndf();
    CHECK(sw_quantize_row(SW_DTYPE_Q8_K, x, q, n) == 0);
    int bad = 0;
    for (int64_t b = 0; b < n / 256; b++) {
        const sw_block_q8_K *blk = (const sw_block_q8_K *) q + b;
        for (int s = 0; s < 16; s++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += blk->qs[16 * s + j];
            if (sum != blk->bsums[s])
                bad++;
        }
    }
    CHECK(bad == 0);
    free(x);
    free(y);
    free(q);
}

int main(void)
{
    test_table();
    test_f16();
    test_bf16();
    test_dequant();
    test_quant_error();
    return sw_test_report("dtype");
}
