/*  test_matmul.c: sw_matmul against a naive double-precision reference.
 *
 *  The reference dequantizes W with this file's own element-by-element
 *  decoder (written from the block layouts in sw_dtype.h, not from the
 *  library) and, for quantized W, uses the same quantized activations the
 *  library uses (sw_quantize_row to Q8_0 or Q8_K, decoded here). Weights are
 *  random bytes (every bit pattern of qs / scales), so extreme codes such as
 *  q8 = -128 and 6-bit scales 63 are exercised, with f16 block scales that are
 *  now and then extreme (65504 or subnormal).
 *
 *  Every dtype x odd shapes x n_tok {1,3,17,64} x threads {NULL,1,2,3}, with the best
 *  kernels and with sw_matmul_force_scalar(1). On an AVX-512 machine the test
 *  re-runs itself with SWISD_KERNELS=avx2 so the AVX2 set is checked too, and
 *  on x86 with SWISD_KQUANT_TILES=0 (Q4_K, Q5_K through the GGUF-layout rows
 *  kernels instead of the repacked tiles). The Q8_K activation quantizers of
 *  the kernel sets are checked byte for byte against sw_quantize_row.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_dtype.h"
#include "sw_kernels_impl.h"
#include "sw_matmul.h"
#include "sw_pool.h"
#include "sw_test.h"
#include "sw_test_quants.h"

/* ------------------------------------------------------------------------ */
/*  Independent reference decoders                                          */

static double ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v; /* no Inf/NaN in these tests */
}

static double ref_bf16(uint16_t h)
{
    uint32_t u = (uint32_t) h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}

/*  Element e of a row of `type` starting at p (block layouts of sw_dtype.h). */
static double ref_elem(sw_dtype_t type, const uint8_t *p, int64_t e)
{
    switch (type) {
    case SW_DTYPE_F32: {
        float f;
        memcpy(&f, p + 4 * e, 4);
        return f;
    }
    case SW_DTYPE_F16: return ref_f16(rd16(p + 2 * e));
    case SW_DTYPE_BF16: return ref_bf16(rd16(p + 2 * e));
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

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t) (s_rng >> 16);
}

static float rndf(void) /* uniform in [-1, 1) */
{
    return (float) ((double) rnd() / 2147483648.0 - 1.0);
}

/*  A scale as f16 bits, positive or negative: mostly in about [2^-10, 2^-6),
 *  one in 16 extreme (the largest finite f16, 65504, or a subnormal). */
static uint16_t rnd_scale(int allow_neg)
{
    uint16_t h = (uint16_t) (((5 + rnd() % 4) << 10) | (rnd() & 1023));
    if (rnd() % 16 == 0)
        h = (rnd() & 1) ? 0x7bff : (uint16_t) (1 + rnd() % 1023);
    if (allow_neg && (rnd() & 1))
        h |= 0x8000;
    return h;
}

/*  Random row data for `type`, n_in elements. */
static void fill_row(sw_dtype_t type, uint8_t *p, int64_t n_in)
{
    size_t rb = sw_dtype_row_size(type, n_in);
    for (size_t i = 0; i < rb; i++)
        p[i] = (uint8_t) rnd();
    int64_t nb = n_in / sw_dtype_block_size(type);
    for (int64_t b = 0; b < nb; b++) {
        switch (type) {
        case SW_DTYPE_F32:
            for (int64_t i = 0; i < n_in; i++) {
                float f = rndf();
                memcpy(p + 4 * i, &f, 4);
            }
            return;
        case SW_DTYPE_F16:
            for (int64_t i = 0; i < n_in; i++) {
                uint16_t h = sw_f32_to_f16(rndf());
                memcpy(p + 2 * i, &h, 2);
            }
            return;
        case SW_DTYPE_BF16:
            for (int64_t i = 0; i < n_in; i++) {
                uint16_t h = sw_f32_to_bf16(rndf());
                memcpy(p + 2 * i, &h, 2);
            }
            return;
        case SW_DTYPE_Q8_0: {
            uint16_t d = rnd_scale(1);
            memcpy(p + 34 * b, &d, 2);
            break;
        }
        case SW_DTYPE_Q4_0: {
            uint16_t d = rnd_scale(1);
            memcpy(p + 18 * b, &d, 2);
            break;
        }
        case SW_DTYPE_Q4_K: {
            uint16_t d = rnd_scale(0), dm = rnd_scale(0);
            memcpy(p + 144 * b, &d, 2);
            memcpy(p + 144 * b + 2, &dm, 2);
            break;
        }
        case SW_DTYPE_Q6_K: {
            uint16_t d = rnd_scale(1);
            memcpy(p + 210 * b + 208, &d, 2);
            break;
        }
        default: {
            /* K-quant mins and Q4_1/Q5_1 offsets positive, as files have them; d of either sign */
            int kmin = type == SW_DTYPE_Q2_K || type == SW_DTYPE_Q5_K;
            sw_tq_set_scales(type, p + sw_dtype_block_bytes(type) * (size_t) b, rnd_scale(!kmin), rnd_scale(!kmin));
            break;
        }
        }
    }
}

/*  Whether Q4_K weights (and, but for the AVX2 set, Q5_K) should get r16
 *  tiles. */
static int s_k_tiles_expected(void)
{
    const char *kt = getenv("SWISD_KQUANT_TILES");
    return strcmp(sw_matmul_kernel_name(), "scalar") != 0 && !(kt && strcmp(kt, "0") == 0);
}

typedef struct {
    int mismatches;
    double worst;   /* largest |err| / tol seen */
} stats_t;

static void run_case(sw_dtype_t type, int64_t n_in, int64_t n_out, int64_t n_tok, sw_pool_t *pool, stats_t *st)
{
    size_t rb = sw_dtype_row_size(type, n_in);
    uint8_t *W = malloc(rb * (size_t) n_out);
    float *x = malloc(sizeof(float) * (size_t) (n_in * n_tok));
    float *y = malloc(sizeof(float) * (size_t) (n_out * n_tok));
    double *wd = malloc(sizeof(double) * (size_t) (n_in * n_out));
    double *xd = malloc(sizeof(double) * (size_t) (n_in * n_tok));
    for (int64_t o = 0; o < n_out; o++)
        fill_row(type, W + (size_t) o * rb, n_in);
    for (int64_t i = 0; i < n_in * n_tok; i++)
        x[i] = rndf() * (i % 7 == 0 ? 4.0f : 1.0f);

    for (int64_t o = 0; o < n_out; o++)
        for (int64_t i = 0; i < n_in; i++)
            wd[o * n_in + i] = ref_elem(type, W + (size_t) o * rb, i);
    /* activations as the library sees them */
    sw_dtype_t at = SW_DTYPE_F32;
    if (sw_dtype_block_size(type) == 32)
        at = SW_DTYPE_Q8_0;
    else if (sw_dtype_block_size(type) == 256)
        at = SW_DTYPE_Q8_K;
    size_t arb = sw_dtype_row_size(at, n_in);
    uint8_t *xq = malloc(arb);
    for (int64_t t = 0; t < n_tok; t++) {
        CHECK(sw_quantize_row(at, x + t * n_in, xq, n_in) == 0);
        for (int64_t i = 0; i < n_in; i++)
            xd[t * n_in + i] = ref_elem(at, xq, i);
    }

    sw_weight_t w;
    int rc = sw_weight_init(&w, type, n_in, n_out, W);
    CHECK(rc == 0);
    if (rc == 0 && (type == SW_DTYPE_Q4_K || (type == SW_DTYPE_Q5_K && strcmp(sw_matmul_kernel_name(), "avx2") != 0)) &&
        s_k_tiles_expected())
        CHECK_MSG(w.priv != NULL, "%s: no repacked copy with kernels %s", sw_dtype_name(type), sw_matmul_kernel_name());
    if (rc == 0) {
        for (int mode = 0; mode < 2; mode++) {
            sw_matmul_force_scalar(mode);
            for (int64_t i = 0; i < n_out * n_tok; i++)
                y[i] = NAN;
            CHECK(sw_matmul(pool, &w, x, n_tok, y) == 0);
            for (int64_t t = 0; t < n_tok; t++) {
                for (int64_t o = 0; o < n_out; o++) {
                    double ref = 0, mag = 0;
                    for (int64_t i = 0; i < n_in; i++) {
                        double p = wd[o * n_in + i] * xd[t * n_in + i];
                        ref += p;
                        mag += fabs(p);
                    }
                    double tol = 1e-4 * mag + 1e-6;
                    double err = fabs((double) y[t * n_out + o] - ref);
                    if (!(err <= tol)) {
                        if (st->mismatches++ < 10)
                            fprintf(stderr, "%s n_in %lld n_out %lld n_tok %lld threads %d %s: y[%lld][%lld] = %g, ref %g\n",
                                    sw_dtype_name(type), (long long) n_in, (long long) n_out, (long long) n_tok,
                                    sw_pool_n_threads(pool), mode ? "scalar" : sw_matmul_kernel_name(), (long long) t,
                                    (long long) o, y[t * n_out + o], ref);
                    } else if (err / tol > st->worst) {
                        st->worst = err / tol;
                    }
                }
            }
        }
        sw_matmul_force_scalar(0);
        sw_weight_release(&w);
    }
    free(xq);
    free(W);
    free(x);
    free(y);
    free(wd);
    free(xd);
}

/*  The kernel sets' Q8_K quantizers write exactly what sw_quantize_row
 *  writes (the tiles and the reference both rely on it): random rows with
 *  outliers, a zero block, exact ties (x id = k + 0.5 with amax 127), the
 *  largest floats, NaN and infinity. */
static void s_quant_q8_K(void)
{
#if defined(__x86_64__)
    const char *name = sw_matmul_kernel_name();
    const sw__kernels_t *sets[2] = { NULL, NULL };
    if (strcmp(name, "avx512vnni") == 0) {
        sets[0] = &sw__kernels_avx512;
        sets[1] = &sw__kernels_avx2;
    } else if (strcmp(name, "avx2") == 0) {
        sets[0] = &sw__kernels_avx2;
    }
    const int64_t n = 9 * SW_QK_K;
    float *x = malloc(sizeof(float) * (size_t) n);
    const size_t rb = sw_dtype_row_size(SW_DTYPE_Q8_K, n);
    uint8_t *ref = malloc(rb), *got = malloc(rb);
    int checked = 0;
    for (int trial = 0; trial < 200; trial++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = rndf() * (rnd() % 13 == 0 ? 30.0f : 1.0f);
        for (int64_t i = SW_QK_K; i < 2 * SW_QK_K; i++) /* block 1: zeros */
            x[i] = 0.0f;
        for (int64_t i = 2 * SW_QK_K; i < 3 * SW_QK_K; i++) /* block 2: ties, amax 127 */
            x[i] = (float) ((int) (rnd() % 254) - 127) + (i % 2 ? 0.5f : 0.0f);
        x[2 * SW_QK_K] = 127.0f;
        x[3 * SW_QK_K + (rnd() % SW_QK_K)] = 3.4e38f;           /* block 3: huge */
        x[4 * SW_QK_K + (rnd() % SW_QK_K)] = NAN;               /* block 4: NaN */
        x[5 * SW_QK_K + (rnd() % SW_QK_K)] = -INFINITY;         /* block 5: inf */
        x[6 * SW_QK_K + (rnd() % SW_QK_K)] = 1e-30f;            /* block 6: tiny */
        for (int64_t i = 6 * SW_QK_K; i < 7 * SW_QK_K; i++)
            x[i] *= 1e-30f;
        CHECK(sw_quantize_row(SW_DTYPE_Q8_K, x, ref, n) == 0);
        for (int k = 0; k < 2; k++) {
            if (!sets[k] || !sets[k]->quant_q8_K)
                continue;
            memset(got, 0xa5, rb);
            sets[k]->quant_q8_K(x, (sw_block_q8_K *) got, n);
            CHECK_MSG(memcmp(ref, got, rb) == 0, "%s: Q8_K quantizer differs from sw_quantize_row (trial %d)",
                      sets[k]->name, trial);
            checked++;
        }
    }
    printf("q8_K quantizers: %d rows compared with sw_quantize_row\n", checked);
    free(x);
    free(ref);
    free(got);
#endif
}

static void s_errors(void)
{
    uint8_t buf[1024] = { 0 };
    sw_weight_t w;
    CHECK(sw_weight_init(&w, SW_DTYPE_Q8_K, 256, 2, buf) == -1);
    CHECK(sw_weight_init(&w, (sw_dtype_t) 99, 32, 2, buf) == -1);
    CHECK(sw_weight_init(&w, SW_DTYPE_Q8_0, 33, 2, buf) == -1);
    CHECK(sw_weight_init(&w, SW_DTYPE_Q8_0, 32, 0, buf) == -1);
    CHECK(sw_weight_init(&w, SW_DTYPE_Q8_0, 0, 2, buf) == -1);
    CHECK(sw_weight_init(&w, SW_DTYPE_Q8_0, 32, 2, NULL) == -1);
    CHECK(sw_weight_init(NULL, SW_DTYPE_Q8_0, 32, 2, buf) == -1);
    CHECK(sw_weight_init(&w, SW_DTYPE_Q4_K, 128, 2, buf) == -1);
    CHECK(sw_weight_init(&w, SW_DTYPE_F32, 5, 3, buf) == 0);
    float x[5] = { 1, 2, 3, 4, 5 }, y[3] = { 7, 7, 7 };
    CHECK(sw_matmul(NULL, &w, x, 0, y) == 0 && y[0] == 7); /* n_tok 0: nothing */
    CHECK(sw_matmul(NULL, &w, NULL, 1, y) == -1);
    CHECK(sw_matmul(NULL, NULL, x, 1, y) == -1);
    sw_weight_release(&w);
    sw_weight_release(NULL);
}

static int s_run_all(void)
{
    printf("kernels: %s\n", sw_matmul_kernel_name());
    sw_matmul_force_scalar(1);
    CHECK(strcmp(sw_matmul_kernel_name(), "scalar") == 0);
    sw_matmul_force_scalar(0);

    s_errors();
    s_quant_q8_K();

    sw_pool_t *pools[4] = { NULL, sw_pool_new(1), sw_pool_new(2), sw_pool_new(3) };
    const sw_dtype_t types[] = { SW_DTYPE_F32, SW_DTYPE_F16, SW_DTYPE_BF16, SW_DTYPE_Q8_0,
                                 SW_DTYPE_Q4_0, SW_DTYPE_Q4_K, SW_DTYPE_Q6_K, SW_DTYPE_Q4_1,
                                 SW_DTYPE_Q5_0, SW_DTYPE_Q5_1, SW_DTYPE_IQ4_NL, SW_DTYPE_Q2_K,
                                 SW_DTYPE_Q3_K, SW_DTYPE_Q5_K, SW_DTYPE_IQ4_XS };
    const int64_t n_toks[] = { 1, 3, 17, 64 };
    const int64_t n_outs[] = { 1, 19, 37 };
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        sw_dtype_t type = types[ti];
        int64_t bs = sw_dtype_block_size(type);
        int64_t n_ins[2];
        if (bs == 1) {
            n_ins[0] = 67;
            n_ins[1] = 96;
        } else {
            n_ins[0] = bs * 3;
            n_ins[1] = bs == 32 ? bs * 7 : bs;
        }
        stats_t st = { 0, 0 };
        int cases = 0;
        for (int a = 0; a < 2; a++)
            for (size_t b = 0; b < sizeof(n_outs) / sizeof(n_outs[0]); b++)
                for (size_t c = 0; c < sizeof(n_toks) / sizeof(n_toks[0]); c++)
                    for (int p = 0; p < 4; p++) {
                        run_case(type, n_ins[a], n_outs[b], n_toks[c], pools[p], &st);
                        cases++;
                    }
        /* one larger shape: several 16-row groups plus a ragged tail */
        run_case(type, bs == 1 ? 300 : bs * 5, 100, 9, pools[2], &st);
        /* an even block count too (the AVX-512 kernels take blocks in pairs) */
        run_case(type, bs == 1 ? 64 : bs * 4, 21, 5, pools[1], &st);
        CHECK_MSG(st.mismatches == 0, "%s: %d mismatches", sw_dtype_name(type), st.mismatches);
        printf("%-5s %3d cases, worst err/tol %.3g\n", sw_dtype_name(type), cases + 2, st.worst);
    }
    /* sw_matmul_multi gives exactly what separate products give, for every
     * type (tiled or not) and mixed shapes sharing n_in */
    const sw_dtype_t mtypes[] = {SW_DTYPE_Q8_0, SW_DTYPE_Q4_0, SW_DTYPE_F32, SW_DTYPE_Q6_K, SW_DTYPE_Q4_K, SW_DTYPE_Q5_K};
    for (size_t ti = 0; ti < sizeof mtypes / sizeof mtypes[0]; ti++) {
        const sw_dtype_t type = mtypes[ti];
        const int64_t n_in = sw_dtype_block_size(type) == 1 ? 64 : sw_dtype_block_size(type) * 2;
        const int64_t outs[3] = {37, 16, 70}, n_tok = 5;
        sw_weight_t w[3];
        void *data[3];
        float *ys[3], *yr[3];
        float *x = malloc(sizeof(float) * (size_t) (n_tok * n_in));
        for (int64_t i = 0; i < n_tok * n_in; i++)
            x[i] = (float) ((i * 7919) % 201 - 100) / 50.0f;
        for (int m = 0; m < 3; m++) {
            float *f = malloc(sizeof(float) * (size_t) (outs[m] * n_in));
            for (int64_t i = 0; i < outs[m] * n_in; i++)
                f[i] = (float) ((i * 104729 + m) % 97 - 48) / 40.0f;
            size_t rb = sw_dtype_row_size(type, n_in);
            data[m] = malloc(rb * (size_t) outs[m]);
            for (int64_t r = 0; r < outs[m]; r++)
                sw_quantize_row(type, f + r * n_in, (uint8_t *) data[m] + (size_t) r * rb, n_in);
            free(f);
            CHECK(sw_weight_init(&w[m], type, n_in, outs[m], data[m]) == 0);
            ys[m] = calloc((size_t) (n_tok * outs[m]), sizeof(float));
            yr[m] = calloc((size_t) (n_tok * outs[m]), sizeof(float));
            CHECK(sw_matmul(pools[2], &w[m], x, n_tok, yr[m]) == 0);
        }
        const sw_weight_t *wp[3] = {&w[0], &w[1], &w[2]};
        CHECK(sw_matmul_multi(pools[2], wp, 3, x, n_tok, ys) == 0);
        for (int m = 0; m < 3; m++) {
            CHECK_MSG(memcmp(ys[m], yr[m], sizeof(float) * (size_t) (n_tok * outs[m])) == 0,
                      "%s: sw_matmul_multi differs from sw_matmul for matrix %d", sw_dtype_name(type), m);
            sw_weight_release(&w[m]);
            free(data[m]);
            free(ys[m]);
            free(yr[m]);
        }
        free(x);
    }
    for (int p = 0; p < 4; p++)
        sw_pool_destroy(&pools[p]);
    return sw_test_report(getenv("SWISD_KERNELS") ? "matmul(SWISD_KERNELS)" : "matmul");
}

#if defined(__x86_64__) && defined(__linux__)
/*  Runs this test again with var=value in the environment; 0 if it passed. */
static int s_rerun(char **argv, const char *var, const char *value)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setenv(var, value, 1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int status = 0;
    int ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
        fprintf(stderr, "matmul: the %s=%s run failed (status %d)\n", var, value, status);
    return ok ? 0 : 1;
}
#endif

int main(int argc, char **argv)
{
    (void) argc;
    int rc = s_run_all();
#if defined(__x86_64__) && defined(__linux__)
    /* also check the AVX2 set when the best one is AVX-512, and the Q4_K /
     * Q5_K rows kernels (GGUF layout) that the tiles replaced */
    const int top = !getenv("SWISD_KERNELS") && !getenv("SWISD_KQUANT_TILES");
    if (top && strcmp(sw_matmul_kernel_name(), "avx512vnni") == 0)
        rc |= s_rerun(argv, "SWISD_KERNELS", "avx2");
    if (top && strcmp(sw_matmul_kernel_name(), "scalar") != 0)
        rc |= s_rerun(argv, "SWISD_KQUANT_TILES", "0");
#endif
    return rc;
}
