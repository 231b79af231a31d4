/*  sw_spec.h: speculative decoding: verifying a draft model's proposals
 *  against the target's distributions, and choosing how many to propose.
 *
 *  Verification (Leviathan et al. 2023, "Fast Inference from Transformers via
 *  Speculative Decoding", Algorithm 1; Chen et al. 2023): proposals d_1..d_g
 *  were drawn from draft distributions q_1..q_g; the target gave p_1..p_{g+1}
 *  (p_i for the position of d_i, p_{g+1} for the one after d_g). For i = 1..g:
 *  accept d_i with probability min(1, p_i(d_i) / q_i(d_i)); at the first
 *  rejection emit a token drawn from norm(max(0, p_i - q_i)) and stop; if all
 *  g are accepted emit a bonus token drawn from p_{g+1}. The emitted sequence
 *  has exactly the target's distribution. With one-hot p and q (greedy) this
 *  reduces to: accept while d_i == argmax p_i, then emit argmax p_i.
 *
 *  Draft length (gamma): with per-token acceptance rate a, a round yields
 *  E(g) = (1 - a^(g+1)) / (1 - a) tokens in expectation (Leviathan et al.,
 *  eq. 1) and costs T(g) = round_ms + g * draft_ms; sw_spec_choose_gamma
 *  picks the g in [1, gamma_max] with the most tokens per millisecond.
 *
 *  Thread safety: pure functions (randomness comes from the caller's
 *  sampler).
 */
#ifndef SW_SPEC_H
#define SW_SPEC_H

#include <stdint.h>

#include "sw_sampler.h"

/*  Verifies g proposals. p: (g + 1, n_vocab) target probabilities, q: (g,
 *  n_vocab) draft probabilities, draft: the g proposed ids. work: n_vocab
 *  floats of scratch. Draws with rng. Writes the emitted ids to out (at most
 *  g + 1) and returns how many there are (accepted proposals + 1), or -1 if
 *  a distribution is degenerate (sums to 0). */
int sw_spec_verify(const float *p, const float *q, const int32_t *draft, int g, int32_t n_vocab, float *work,
                   sw_sampler_t *rng, int32_t *out);

/*  The draft length with the most expected tokens per millisecond, for
 *  acceptance rate accept (0..1), a round trip of the target chain round_ms
 *  and draft_ms per proposed token. */
int sw_spec_choose_gamma(double accept, double round_ms, double draft_ms, int gamma_max);

#endif
