/*  sw_spec.c: speculative decoding verification and draft length. */
#include "sw_spec.h"

#include <math.h>
#include <stddef.h>

int sw_spec_verify(const float *p, const float *q, const int32_t *draft, int g, int32_t n_vocab, float *work,
                   sw_sampler_t *rng, int32_t *out)
{
    for (int i = 0; i < g; i++) {
        const float *pi = p + (size_t) i * n_vocab, *qi = q + (size_t) i * n_vocab;
        const int32_t d = draft[i];
        if (d < 0 || d >= n_vocab)
            return -1;
        const double pd = pi[d], qd = qi[d];
        /* accept with probability min(1, p/q); q(d) > 0 since d was drawn from q */
        if (qd > 0 && (pd >= qd || sw_sampler_uniform(rng) < pd / qd)) {
            out[i] = d;
            continue;
        }
        /* rejected: draw from the residual norm(max(0, p - q)) */
        double sum = 0;
        for (int32_t v = 0; v < n_vocab; v++) {
            float r = pi[v] - qi[v];
            work[v] = r > 0 ? r : 0;
            sum += work[v];
        }
        int32_t t = sum > 0 ? sw_sampler_draw(rng, work, n_vocab) : sw_sampler_draw(rng, pi, n_vocab);
        if (t < 0)
            return -1;
        out[i] = t;
        return i + 1;
    }
    int32_t t = sw_sampler_draw(rng, p + (size_t) g * n_vocab, n_vocab);
    if (t < 0)
        return -1;
    out[g] = t;
    return g + 1;
}

int sw_spec_choose_gamma(double accept, double round_ms, double draft_ms, int gamma_max)
{
    if (gamma_max < 1)
        return 1;
    if (!(accept >= 0))
        accept = 0;
    if (accept > 0.999)
        accept = 0.999;
    if (!(round_ms > 0))
        round_ms = 1e-3;
    if (!(draft_ms >= 0))
        draft_ms = 0;
    int best = 1;
    double best_rate = -1;
    for (int g = 1; g <= gamma_max; g++) {
        const double tokens = (1.0 - pow(accept, g + 1)) / (1.0 - accept);
        const double rate = tokens / (round_ms + g * draft_ms);
        if (rate > best_rate + 1e-12) {
            best_rate = rate;
            best = g;
        }
    }
    return best;
}
