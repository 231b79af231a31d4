/*  test_sampler.c: selftest of sw_sampler against a naive reference.
 *
 *  The reference chain below is written the slow, obvious way (full sorts,
 *  doubles): penalty -> top-k on logits -> softmax(l / T) over the kept set ->
 *  top-p prefix in (p desc, id asc) order -> min-p -> renormalise. The
 *  library must keep exactly the same set with the same probabilities; its
 *  draws must follow them (chi-square over 200k draws); seeds reproduce.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_sampler.h"
#include "sw_test.h"

static uint64_t g_rng = 88172645463325252ULL;
static double s_unif(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double) (g_rng >> 11) * 0x1.0p-53;
}

static void s_random_logits(float *l, int n, double scale)
{
    for (int i = 0; i < n; i++)
        l[i] = (float) ((s_unif() * 2 - 1) * scale);
}

/* ---- naive reference -------------------------------------------------------- */

static const double *g_key;
static int s_cmp_desc(const void *a, const void *b)
{
    int x = *(const int *) a, y = *(const int *) b;
    if (g_key[x] != g_key[y])
        return g_key[x] > g_key[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/*  Writes the reference distribution into p (n doubles). Returns 0, 1 when
 *  the top-p boundary is too close to call (caller skips), -1 if no finite. */
static int s_naive(const sw_sampler_params_t *P, const float *logits, int n, const int32_t *hist, int nh,
                   double *p)
{
    double *l = malloc(sizeof(double) * (size_t) n);
    int *idx = malloc(sizeof(int) * (size_t) n);
    int *alive = calloc((size_t) n, sizeof(int));
    int nc = 0, ret = 0;
    for (int i = 0; i < n; i++) {
        l[i] = logits[i];
        if (isfinite(logits[i])) alive[i] = 1, nc++;
    }
    if (nc == 0) { ret = -1; goto out; }
    if (P->repeat_penalty != 1.0f && P->repeat_last_n > 0) {
        int from = nh > P->repeat_last_n ? nh - P->repeat_last_n : 0;
        for (int t = 0; t < n; t++) {
            int in = 0;
            for (int h = from; h < nh; h++) in |= hist[h] == t;
            if (in && alive[t]) {
                float v = logits[t];
                l[t] = v > 0 ? (double) (v / P->repeat_penalty) : (double) (v * P->repeat_penalty);
            }
        }
    }
    for (int i = 0; i < n; i++) p[i] = 0;
    if (P->temperature <= 0) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (alive[i] && (best < 0 || l[i] > l[best])) best = i;
        p[best] = 1;
        goto out;
    }
    int m = 0;
    for (int i = 0; i < n; i++) if (alive[i]) idx[m++] = i;
    g_key = l;
    qsort(idx, (size_t) m, sizeof(int), s_cmp_desc);
    if (P->top_k > 0 && P->top_k < m) m = P->top_k;
    double mx = l[idx[0]], sum = 0;
    for (int i = 0; i < m; i++) { p[idx[i]] = exp((l[idx[i]] - mx) / P->temperature); sum += p[idx[i]]; }
    for (int i = 0; i < m; i++) p[idx[i]] /= sum;
    if (P->top_p < 1.0f) {
        g_key = p;
        qsort(idx, (size_t) m, sizeof(int), s_cmp_desc);
        double cum = 0;
        int keep = m;
        for (int i = 0; i < m; i++) {
            cum += p[idx[i]];
            if (fabs(cum - P->top_p) < 1e-5) ret = 1;
            if (cum >= P->top_p) { keep = i + 1; break; }
        }
        for (int i = keep; i < m; i++) p[idx[i]] = 0;
        m = keep;
    }
    if (P->min_p > 0) {
        double pmax = 0;
        for (int i = 0; i < m; i++) if (p[idx[i]] > pmax) pmax = p[idx[i]];
        for (int i = 0; i < m; i++) {
            double thr = P->min_p * pmax;
            if (fabs(p[idx[i]] - thr) < 1e-6 * pmax) ret = 1;
            if (p[idx[i]] < thr) p[idx[i]] = 0;
        }
    }
    sum = 0;
    for (int i = 0; i < n; i++) sum += p[i];
    for (int i = 0; i < n; i++) p[i] /= sum;
out:
    free(l);
    free(idx);
    free(alive);
    return ret;
}

/* ---- tests -------------------------------------------------------------------- */

static sw_sampler_params_t s_params(float t, int k, float tp, float mp, float rp, int rn, uint64_t seed)
{
    sw_sampler_params_t p = sw_sampler_default_params();
    p.temperature = t; p.top_k = k; p.top_p = tp; p.min_p = mp;
    p.repeat_penalty = rp; p.repeat_last_n = rn; p.seed = seed;
    return p;
}

static void s_test_greedy(void)
{
    enum { N = 1000 };
    float l[N];
    for (int trial = 0; trial < 50; trial++) {
        s_random_logits(l, N, 5);
        if (trial % 5 == 0) { /* ties: the lowest id wins */
            l[700] = 10; l[300] = 10; l[900] = 10;
        }
        int am = 0;
        for (int i = 1; i < N; i++) if (l[i] > l[am]) am = i;
        sw_sampler_params_t p = s_params(0, 40, 0.9f, 0.05f, 1, 64, (uint64_t) trial);
        sw_sampler_t *s = sw_sampler_new(&p, N);
        CHECK(s != NULL);
        if (!s) return;
        CHECK(sw_sampler_sample(s, l, NULL, 0) == am);
        sw_sampler_destroy(&s);
        CHECK(s == NULL);
        /* top-k = 1 at temperature 1 is greedy too, whatever the seed */
        p = s_params(1.0f, 1, 1.0f, 0, 1, 64, (uint64_t) trial * 7 + 1);
        s = sw_sampler_new(&p, N);
        for (int r = 0; r < 5; r++) CHECK(sw_sampler_sample(s, l, NULL, 0) == am);
        float probs[N];
        CHECK(sw_sampler_probs(s, l, NULL, 0, probs) == 0);
        CHECK(probs[am] == 1.0f);
        sw_sampler_destroy(&s);
    }
    /* repetition penalty moves the argmax: positive logits divided */
    float m[8] = { 1, 2, 3, 4, 5, 3.5f, -1, -2 };
    int32_t hist[3] = { 4, 4, 6 };
    sw_sampler_params_t p = s_params(0, 0, 1, 0, 2.0f, 64, 1);
    sw_sampler_t *s = sw_sampler_new(&p, 8);
    CHECK(sw_sampler_sample(s, m, hist, 3) == 3);   /* 5/2 = 2.5 < 4 */
    CHECK(sw_sampler_sample(s, m, NULL, 0) == 4);
    sw_sampler_destroy(&s);
    /* window: only the last repeat_last_n tokens count */
    p = s_params(0, 0, 1, 0, 2.0f, 1, 1);
    s = sw_sampler_new(&p, 8);
    CHECK(sw_sampler_sample(s, m, hist, 3) == 4);   /* window holds only token 6 */
    sw_sampler_destroy(&s);
    /* negative logits are multiplied: -0.5 * 3 = -1.5 < -1 */
    float q[3] = { -1, -0.5f, -3 };
    int32_t h2[1] = { 1 };
    p = s_params(0, 0, 1, 0, 3.0f, 64, 1);
    s = sw_sampler_new(&p, 3);
    CHECK(sw_sampler_sample(s, q, h2, 1) == 0);
    sw_sampler_destroy(&s);
}

static void s_test_nonfinite(void)
{
    float l[4] = { NAN, NAN, NAN, NAN };
    sw_sampler_params_t p = s_params(1, 0, 1, 0, 1, 64, 3);
    sw_sampler_t *s = sw_sampler_new(&p, 4);
    float probs[4];
    CHECK(sw_sampler_sample(s, l, NULL, 0) == -1);
    CHECK(sw_sampler_probs(s, l, NULL, 0, probs) == -1);
    l[2] = 0.5f;
    l[3] = -INFINITY;
    for (int r = 0; r < 20; r++) CHECK(sw_sampler_sample(s, l, NULL, 0) == 2);
    float z[3] = { 0, 0, 0 };
    CHECK(sw_sampler_draw(s, z, 3) == -1);
    z[1] = 2;
    CHECK(sw_sampler_draw(s, z, 3) == 1);
    sw_sampler_destroy(&s);
    /* bad parameters */
    p = s_params(1, 0, 1, 0, 0, 64, 3);
    CHECK(sw_sampler_new(&p, 4) == NULL);
    p = s_params(NAN, 0, 1, 0, 1, 64, 3);
    CHECK(sw_sampler_new(&p, 4) == NULL);
    p = s_params(1, 0, 1, 0, 1, 64, 3);
    CHECK(sw_sampler_new(&p, 0) == NULL);
    CHECK(sw_sampler_new(NULL, 4) == NULL);
    sw_sampler_destroy(NULL);
}

static void s_test_seeds(void)
{
    enum { N = 5000 };
    float *l = malloc(sizeof(float) * N);
    s_random_logits(l, N, 3);
    sw_sampler_params_t p = s_params(1.0f, 0, 1.0f, 0, 1, 64, 12345);
    sw_sampler_t *a = sw_sampler_new(&p, N), *b = sw_sampler_new(&p, N);
    p.seed = 12346;
    sw_sampler_t *c = sw_sampler_new(&p, N);
    int same = 1, diff = 0;
    for (int i = 0; i < 1000; i++) {
        int32_t x = sw_sampler_sample(a, l, NULL, 0), y = sw_sampler_sample(b, l, NULL, 0);
        int32_t z = sw_sampler_sample(c, l, NULL, 0);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same);
    CHECK(diff > 900);
    double u = sw_sampler_uniform(a);
    CHECK(u >= 0 && u < 1);
    sw_sampler_destroy(&a);
    sw_sampler_destroy(&b);
    sw_sampler_destroy(&c);
    free(l);
}

/*  Chi-square of counts against probabilities (cells with p > 0); cells with
 *  p == 0 must have no count. Returns the statistic, *dof the degrees. */
static double s_chi2(const long *cnt, const double *p, int n, long total, int *dof, int *bad_zero)
{
    double x = 0;
    int k = 0;
    *bad_zero = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0) { if (cnt[i]) (*bad_zero)++; continue; }
        double e = p[i] * (double) total;
        x += (cnt[i] - e) * (cnt[i] - e) / e;
        k++;
    }
    *dof = k - 1;
    return x;
}

/* chi-square critical value at p = 1e-4 (Wilson-Hilferty approximation) */
static double s_chi2_crit(int dof)
{
    double z = 3.719; /* one-sided normal quantile for 1e-4 */
    double a = 2.0 / (9.0 * dof);
    double t = 1 - a + z * sqrt(a);
    return dof * t * t * t;
}

static void s_test_distribution(void)
{
    enum { N = 24, DRAWS = 200000 };
    float l[N];
    double ref[N];
    long cnt[N];
    const struct { float t; int k; float tp, mp; } cfg[] = {
        { 1.0f, 0, 1.0f, 0 }, { 0.7f, 0, 1.0f, 0 }, { 1.3f, 10, 1.0f, 0 }, { 1.0f, 0, 0.8f, 0 },
        { 1.0f, 0, 1.0f, 0.1f }, { 0.9f, 12, 0.9f, 0.05f },
    };
    for (size_t c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
        s_random_logits(l, N, 2.5);
        sw_sampler_params_t p = s_params(cfg[c].t, cfg[c].k, cfg[c].tp, cfg[c].mp, 1, 64, 99 + c);
        if (s_naive(&p, l, N, NULL, 0, ref) != 0) { c--; continue; } /* boundary too close: redraw */
        sw_sampler_t *s = sw_sampler_new(&p, N);
        memset(cnt, 0, sizeof(cnt));
        for (int d = 0; d < DRAWS; d++) {
            int32_t t = sw_sampler_sample(s, l, NULL, 0);
            if (t >= 0 && t < N) cnt[t]++;
        }
        int dof, bz;
        double x = s_chi2(cnt, ref, N, DRAWS, &dof, &bz);
        CHECK_MSG(bz == 0, "config %zu: draws outside the kept set", c);
        CHECK_MSG(dof < 1 || x < s_chi2_crit(dof), "config %zu: chi2 %.1f with %d dof (crit %.1f)", c, x, dof,
                  s_chi2_crit(dof));
        printf("distribution config %zu: chi2 %.1f, %d dof, critical %.1f\n", c, x, dof, dof > 0 ? s_chi2_crit(dof) : 0.0);
        /* draw() from the reference vector follows it too */
        float pf[N];
        for (int i = 0; i < N; i++) pf[i] = (float) (ref[i] * 3.0); /* any positive sum */
        memset(cnt, 0, sizeof(cnt));
        for (int d = 0; d < DRAWS; d++) {
            int32_t t = sw_sampler_draw(s, pf, N);
            if (t >= 0 && t < N) cnt[t]++;
        }
        x = s_chi2(cnt, ref, N, DRAWS, &dof, &bz);
        CHECK(bz == 0);
        CHECK_MSG(dof < 1 || x < s_chi2_crit(dof), "draw config %zu: chi2 %.1f with %d dof", c, x, dof);
        sw_sampler_destroy(&s);
    }
}

/*  probs() must equal the naive chain's distribution: same kept set, same
 *  probabilities, on small and on 150k vocabularies, random parameters. */
static void s_test_sets(void)
{
    const int sizes[] = { 7, 100, 3000, 151936 };
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int n = sizes[si];
        float *l = malloc(sizeof(float) * (size_t) n), *pr = malloc(sizeof(float) * (size_t) n);
        double *ref = malloc(sizeof(double) * (size_t) n);
        int trials = n > 10000 ? 12 : 200, bad_set = 0, bad_p = 0, done = 0;
        for (int tr = 0; tr < trials; tr++) {
            s_random_logits(l, n, 1 + 10 * s_unif());
            if (tr % 4 == 1) /* heavy ties */
                for (int i = 0; i < n; i++) l[i] = (float) floor(l[i]);
            int32_t hist[80];
            int nh = (int) (s_unif() * 80);
            for (int h = 0; h < nh; h++) hist[h] = (int32_t) (s_unif() * n);
            float t = (float) (0.2 + 1.5 * s_unif());
            int k = s_unif() < 0.3 ? 0 : 1 + (int) (s_unif() * (s_unif() < 0.5 ? 50 : n));
            float tp = s_unif() < 0.3 ? 1.0f : (float) (0.05 + 0.94 * s_unif());
            float mp = s_unif() < 0.4 ? 0 : (float) (0.3 * s_unif());
            float rp = s_unif() < 0.5 ? 1.0f : (float) (0.5 + 1.5 * s_unif());
            sw_sampler_params_t p = s_params(t, k, tp, mp, rp, 1 + (int) (s_unif() * 64), (uint64_t) tr);
            if (s_naive(&p, l, n, hist, nh, ref) != 0)
                continue;
            sw_sampler_t *s = sw_sampler_new(&p, n);
            CHECK(sw_sampler_probs(s, l, hist, nh, pr) == 0);
            double sum = 0;
            for (int i = 0; i < n; i++) {
                sum += pr[i];
                if ((pr[i] > 0) != (ref[i] > 0)) bad_set++;
                else if (fabs(pr[i] - ref[i]) > 1e-5 + 1e-4 * ref[i]) bad_p++;
            }
            CHECK_NEAR(sum, 1.0, 1e-4);
            /* sample() draws inside the kept set */
            for (int r = 0; r < 20; r++) {
                int32_t x = sw_sampler_sample(s, l, hist, nh);
                CHECK(x >= 0 && x < n && ref[x] > 0);
            }
            sw_sampler_destroy(&s);
            done++;
        }
        CHECK_MSG(bad_set == 0 && bad_p == 0, "n=%d: %d set and %d probability mismatches", n, bad_set, bad_p);
        CHECK(done > trials / 2);
        free(l);
        free(pr);
        free(ref);
    }
}

static void s_bench(void)
{
    enum { N = 151936 };
    float *l = malloc(sizeof(float) * N);
    s_random_logits(l, N, 8);
    sw_sampler_params_t p = sw_sampler_default_params();
    p.top_k = 0; /* worst case: top-p over the whole vocabulary */
    p.min_p = 0;
    sw_sampler_t *s = sw_sampler_new(&p, N);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int reps = 50;
    long acc = 0;
    for (int r = 0; r < reps; r++) acc += sw_sampler_sample(s, l, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double) (b.tv_sec - a.tv_sec) * 1e9 + (double) (b.tv_nsec - a.tv_nsec)) / 1e3 / reps;
    printf("sample, vocab %d, T 0.8, top_k off, top_p 0.95, min_p off: %.0f us/token (%ld)\n", N, us, acc % 2);
    sw_sampler_destroy(&s);
    p = sw_sampler_default_params();
    s = sw_sampler_new(&p, N);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int r = 0; r < reps; r++) acc += sw_sampler_sample(s, l, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    us = ((double) (b.tv_sec - a.tv_sec) * 1e9 + (double) (b.tv_nsec - a.tv_nsec)) / 1e3 / reps;
    printf("sample, vocab %d, defaults (top_k 40): %.0f us/token\n", N, us);
    sw_sampler_destroy(&s);
    free(l);
}

int main(void)
{
    s_test_greedy();
    s_test_nonfinite();
    s_test_seeds();
    s_test_distribution();
    s_test_sets();
    s_bench();
    return sw_test_report("sampler");
}
