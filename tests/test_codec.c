/*  test_codec.c: activation codec round trips, error bounds and hostile frames.
 *  Error bounds come from the formats: f16 keeps 11 significant bits (relative
 *  error <= 2^-11), bf16 8 bits (<= 2^-8), q8_0 rounds to d = absmax/127 per
 *  block of 32 (error <= d/2), q4_0 to d = max/-8 (error <= |d|/2, plus the
 *  clamp of the largest value at 7*d... bounded by |d|). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "sw_codec.h"
#include "sw_test.h"

static uint64_t s_rng = 88172645463325252ull;
static float s_rand(void)
{
    s_rng ^= s_rng << 13; s_rng ^= s_rng >> 7; s_rng ^= s_rng << 17;
    return (float) ((s_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* largest per-element error a dtype may make on block-of-32 data x */
static double s_bound(sw_dtype_t t, const float *x, int i)
{
    double amax = 0;
    int b = i / 32 * 32;
    for (int j = b; j < b + 32; j++) amax = fmax(amax, fabs(x[j]));
    switch (t) {
    case SW_DTYPE_F32: return 0;
    case SW_DTYPE_F16: return fabs(x[i]) * (1.0 / 2048) + 1e-7;
    case SW_DTYPE_BF16: return fabs(x[i]) * (1.0 / 256) + 1e-30;
    case SW_DTYPE_Q8_0: return amax / 127 * 0.5 * 1.01 + amax * 1e-3;   /* f16 scale rounding */
    case SW_DTYPE_Q4_0: return amax / 8 * 1.01 + amax * 1e-3;
    default: return 0;
    }
}

static void test_roundtrips(void)
{
    const sw_dtype_t types[] = {SW_DTYPE_F32, SW_DTYPE_F16, SW_DTYPE_BF16, SW_DTYPE_Q8_0, SW_DTYPE_Q4_0};
    const int embds[] = {64, 96, 2048};
    const int toks[] = {1, 3, 17};
    for (size_t ti = 0; ti < 5; ti++)
        for (int z = 0; z <= 1; z++)
            for (int d = 0; d <= 1; d++)
                for (size_t ei = 0; ei < 3; ei++) {
                    const int E = embds[ei];
                    sw_codec_config_t cfg = {.dtype = types[ti], .zstd_level = z ? 3 : 0, .delta = d};
                    sw_codec_t *tx = sw_codec_new(&cfg, E, 32), *rx = sw_codec_new(&cfg, E, 32);
                    CHECK(tx && rx);
                    if (!tx || !rx) continue;
                    for (size_t ni = 0; ni < 3; ni++)
                        for (int rep = 0; rep < 2; rep++) { /* rep 1 can be a delta frame */
                            const int N = toks[ni];
                            float *x = malloc(sizeof(float) * N * E), *y = malloc(sizeof(float) * N * E);
                            for (int i = 0; i < N * E; i++) x[i] = s_rand() * (1 + (i % 7)) * (rep ? 1.01f : 1.0f);
                            sw_codec_header_t h;
                            const void *p;
                            size_t len;
                            char err[256] = "";
                            CHECK_MSG(sw_codec_encode(tx, x, N, &h, &p, &len, err, sizeof err) == 0, "%s", err);
                            CHECK(h.n_tok == (uint32_t) N && h.n_embd == (uint32_t) E && h.dtype == types[ti]);
                            CHECK(!!(h.flags & SW_CODEC_FLAG_DELTA) == (d && rep == 1));
                            int rc = sw_codec_decode(rx, &h, p, len, y, err, sizeof err);
                            CHECK_MSG(rc == 0, "%s %s: %s", sw_dtype_name(types[ti]), z ? "zstd" : "", err);
                            int bad = 0;
                            for (int i = 0; i < N * E && rc == 0; i++)
                                if (fabs((double) y[i] - x[i]) > s_bound(types[ti], x, i)) bad++;
                            CHECK_MSG(bad == 0, "%s E=%d N=%d: %d elements over the bound", sw_dtype_name(types[ti]), E,
                                      N, bad);
                            free(x); free(y);
                        }
                    sw_codec_destroy(&tx);
                    sw_codec_destroy(&rx);
                }
}

static void test_hostile(void)
{
    const int E = 64, N = 4;
    sw_codec_config_t cfg = {.dtype = SW_DTYPE_Q8_0, .zstd_level = 3, .delta = false};
    sw_codec_t *c = sw_codec_new(&cfg, E, 8);
    float x[N * 64], y[8 * 64];
    for (int i = 0; i < N * E; i++) x[i] = (float) ((i % 8) - 4) / 4; /* compressible */
    sw_codec_header_t h, g;
    const void *p;
    size_t len;
    char err[256];
    CHECK(sw_codec_encode(c, x, N, &h, &p, &len, err, sizeof err) == 0);
    uint8_t *copy = malloc(len);
    memcpy(copy, p, len);
    CHECK(h.flags & SW_CODEC_FLAG_ZSTD);
    CHECK(sw_codec_decode(c, &h, copy, len, y, err, sizeof err) == 0);
    g = h; g.dtype = 12;              CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    g = h; g.n_embd = 128;            CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    g = h; g.n_tok = 9;               CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    g = h; g.n_tok = 0;               CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    g = h; g.raw_bytes += 1;          CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    g = h; g.checksum ^= 1;           CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1 && strstr(err, "checksum"));
    g = h; g.flags |= 8;              CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    g = h; g.flags |= SW_CODEC_FLAG_DELTA; CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    CHECK(sw_codec_decode(c, &h, copy, len - 1, y, err, sizeof err) == -1);  /* truncated */
    /* n_tok claims fewer rows than the zstd frame holds (content size lies) */
    g = h; g.n_tok = 2; g.raw_bytes = 2 * 34 * 2; CHECK(sw_codec_decode(c, &g, copy, len, y, err, sizeof err) == -1);
    /* a zstd bomb: small frame declaring a huge content */
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    size_t cap = ZSTD_compressBound(big);
    uint8_t *bomb = malloc(cap);
    size_t blen = ZSTD_compress(bomb, cap, zeros, big, 1);
    g = h; CHECK(sw_codec_decode(c, &g, bomb, blen, y, err, sizeof err) == -1);
    /* garbage payloads of every length up to 300 never crash */
    uint8_t junk[300];
    for (size_t n = 0; n < sizeof junk; n++) {
        for (size_t i = 0; i < n; i++) junk[i] = (uint8_t) (s_rand() * 255);
        g = h; CHECK(sw_codec_decode(c, &g, junk, n, y, err, sizeof err) == -1);
        g.flags = 0; CHECK(sw_codec_decode(c, &g, junk, n, y, err, sizeof err) == -1);
    }
    /* non-finite input is refused */
    x[5] = NAN;
    CHECK(sw_codec_encode(c, x, N, &h, &p, &len, err, sizeof err) == -1);
    CHECK(sw_codec_encode(c, x, 9, &h, &p, &len, err, sizeof err) == -1);
    free(zeros); free(bomb); free(copy);
    sw_codec_destroy(&c);
    /* config parsing and invalid configs */
    sw_codec_config_t pc;
    CHECK(sw_codec_config_parse("q8_0+zstd3", &pc) == 0 && pc.dtype == SW_DTYPE_Q8_0 && pc.zstd_level == 3);
    CHECK(sw_codec_config_parse("f16+delta+zstd", &pc) == 0 && pc.delta && pc.zstd_level == 3);
    CHECK(sw_codec_config_parse("q4_K", &pc) == -1);
    CHECK(sw_codec_config_parse("f32+gzip", &pc) == -1);
    sw_codec_config_t q = {.dtype = SW_DTYPE_Q8_0};
    CHECK(sw_codec_new(&q, 50, 4) == NULL);
}

/* A delta frame whose reference was lost is refused, not decoded wrongly. */
static void test_lost_reference(void)
{
    const int E = 64;
    sw_codec_config_t cfg = {.dtype = SW_DTYPE_F16, .zstd_level = 0, .delta = true};
    sw_codec_t *tx = sw_codec_new(&cfg, E, 4), *rx = sw_codec_new(&cfg, E, 4);
    float x[64], y[4 * 64];
    for (int i = 0; i < E; i++) x[i] = s_rand();
    sw_codec_header_t h;
    const void *p;
    size_t len;
    char err[256];
    CHECK(sw_codec_encode(tx, x, 1, &h, &p, &len, err, sizeof err) == 0); /* frame 1: lost */
    x[0] += 1;
    CHECK(sw_codec_encode(tx, x, 1, &h, &p, &len, err, sizeof err) == 0);
    CHECK(h.flags & SW_CODEC_FLAG_DELTA);
    CHECK(sw_codec_decode(rx, &h, p, len, y, err, sizeof err) == -1 && strstr(err, "does not hold"));
    sw_codec_destroy(&tx);
    sw_codec_destroy(&rx);
}

int main(void)
{
    test_roundtrips();
    test_hostile();
    test_lost_reference();
    return sw_test_report("codec");
}
