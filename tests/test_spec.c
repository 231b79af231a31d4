/*  test_spec.c: speculative decoding's verification keeps the target's
 *  distribution (a statistical test), reduces to argmax matching when greedy,
 *  and the draft-length choice behaves as its formula says.
 *
 *  Statistical test: a "target" whose next-token distribution P is the same
 *  at every position and a "draft" with a different Q. Rounds of: draw g
 *  proposals from Q, verify against P. The emitted stream must be i.i.d. P:
 *  chi-square on single tokens and on consecutive pairs, at a 1e-4
 *  significance level (critical values for the degrees of freedom used). */
#include <math.h>
#include <string.h>

#include "sw_sampler.h"
#include "sw_spec.h"
#include "sw_test.h"

#define V 5

static double s_chi2(const long *obs, const double *p, int n, long total)
{
    double x = 0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * total;
        if (e > 0)
            x += (obs[i] - e) * (obs[i] - e) / e;
    }
    return x;
}

static void s_stream(const float *P, const float *Q, int g, uint64_t seed, double *accept_rate)
{
    sw_sampler_params_t sp = sw_sampler_default_params();
    sp.seed = seed;
    sw_sampler_t *rng = sw_sampler_new(&sp, V);
    float p[9 * V], q[8 * V], work[V];
    for (int i = 0; i <= g; i++)
        memcpy(p + i * V, P, sizeof(float) * V);
    for (int i = 0; i < g; i++)
        memcpy(q + i * V, Q, sizeof(float) * V);
    const long N = 400000;
    long single[V] = {0}, pairs[V * V] = {0}, proposed = 0, accepted = 0;
    int32_t prev = -1;
    long n = 0;
    while (n < N) {
        int32_t draft[8], out[9];
        for (int i = 0; i < g; i++)
            draft[i] = sw_sampler_draw(rng, Q, V);
        int k = sw_spec_verify(p, q, draft, g, V, work, rng, out);
        if (k < 1 || k > g + 1) {
            CHECK(k >= 1 && k <= g + 1);
            break;
        }
        proposed += (k - 1) + (k <= g ? 1 : 0); /* proposals evaluated this round */
        accepted += k - 1;
        for (int i = 0; i < k && n < N; i++, n++) {
            single[out[i]]++;
            if (prev >= 0)
                pairs[prev * V + out[i]]++;
            prev = out[i];
        }
    }
    double pp[V], pj[V * V];
    for (int a = 0; a < V; a++) {
        pp[a] = P[a];
        for (int b = 0; b < V; b++)
            pj[a * V + b] = (double) P[a] * P[b];
    }
    /* chi-square critical values at p = 1e-4: df 4 -> 23.5, df 24 -> 59.7 */
    double x1 = s_chi2(single, pp, V, N), x2 = s_chi2(pairs, pj, V * V, N - 1);
    CHECK_MSG(x1 < 23.5, "g=%d: single-token chi-square %.1f", g, x1);
    CHECK_MSG(x2 < 59.7, "g=%d: pair chi-square %.1f", g, x2);
    *accept_rate = (double) accepted / (double) proposed;
    sw_sampler_destroy(&rng);
}

int main(void)
{
    const float P[V] = {0.5f, 0.2f, 0.15f, 0.1f, 0.05f};
    const float Q[V] = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f};
    const float Q2[V] = {0.05f, 0.05f, 0.1f, 0.3f, 0.5f};
    double acc;
    for (int g = 1; g <= 4; g++)
        s_stream(P, Q, g, 100 + g, &acc);
    /* expected acceptance = sum min(p, q) (Leviathan et al., Theorem 3.5) */
    double want = 0;
    for (int i = 0; i < V; i++)
        want += fmin(P[i], Q[i]);
    s_stream(P, Q, 3, 7, &acc);
    CHECK_NEAR(acc, want, 0.01);
    s_stream(P, Q2, 2, 9, &acc);
    s_stream(P, P, 4, 11, &acc);
    CHECK_NEAR(acc, 1.0, 1e-9); /* identical draft: everything accepted */
    /* a sanity check that the test can fail: a "verifier" that always accepts
     * emits Q's distribution, which the chi-square rejects */
    {
        long single[V] = {0};
        sw_sampler_params_t sp = sw_sampler_default_params();
        sw_sampler_t *rng = sw_sampler_new(&sp, V);
        for (long n = 0; n < 100000; n++)
            single[sw_sampler_draw(rng, Q, V)]++;
        double pp[V];
        for (int a = 0; a < V; a++) pp[a] = P[a];
        CHECK(s_chi2(single, pp, V, 100000) > 23.5);
        sw_sampler_destroy(&rng);
    }
    /* greedy: one-hot p and q */
    {
        sw_sampler_params_t sp = sw_sampler_default_params();
        sw_sampler_t *rng = sw_sampler_new(&sp, V);
        float p[4 * V] = {0}, q[3 * V] = {0}, work[V];
        int32_t target[4] = {2, 0, 4, 1}, draft[3] = {2, 0, 3}, out[4];
        for (int i = 0; i < 4; i++) p[i * V + target[i]] = 1;
        for (int i = 0; i < 3; i++) q[i * V + draft[i]] = 1;
        int k = sw_spec_verify(p, q, draft, 3, V, work, rng, out);
        CHECK(k == 3 && out[0] == 2 && out[1] == 0 && out[2] == 4);
        int32_t all[3] = {2, 0, 4};
        for (int i = 0; i < 3; i++) { memset(q + i * V, 0, sizeof(float) * V); q[i * V + all[i]] = 1; }
        k = sw_spec_verify(p, q, all, 3, V, work, rng, out);
        CHECK(k == 4 && out[3] == 1); /* all accepted plus the bonus token */
        sw_sampler_destroy(&rng);
    }
    /* draft length */
    CHECK(sw_spec_choose_gamma(0.0, 10, 1, 8) == 1);
    CHECK(sw_spec_choose_gamma(0.95, 100, 0.5, 8) == 8);
    CHECK(sw_spec_choose_gamma(0.8, 50, 0.2, 8) >= sw_spec_choose_gamma(0.8, 5, 0.2, 8));
    CHECK(sw_spec_choose_gamma(0.9, 50, 0.2, 8) >= sw_spec_choose_gamma(0.5, 50, 0.2, 8));
    return sw_test_report("spec");
}
