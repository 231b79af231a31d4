/*  sw_sampler.h: choose the next token from logits.
 *
 *  Order of operations (the common one, as in llama.cpp's default chain):
 *  repetition penalty (CTRL, Keskar et al. 2019: positive logits divided,
 *  negative multiplied by the penalty, for tokens in the last repeat_last_n
 *  of history) -> temperature -> top-k -> top-p (nucleus, Holtzman et al.
 *  2020) -> min-p (keep p >= min_p * p_max) -> renormalise -> draw.
 *  temperature <= 0 means greedy (argmax after the penalty; ties go to the
 *  lowest id). The random source is a seeded xoshiro256** generator
 *  (Blackman & Vigna 2018), so a seed reproduces a sequence exactly.
 *
 *  Thread safety: a sampler holds RNG state; one thread at a time.
 */
#ifndef SW_SAMPLER_H
#define SW_SAMPLER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float temperature;      /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off */
    int32_t repeat_last_n;  /* tokens of history the penalty looks at */
    uint64_t seed;
} sw_sampler_params_t;

/*  Defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 *  repeat_penalty 1.0, repeat_last_n 64, seed 0. */
sw_sampler_params_t sw_sampler_default_params(void);

typedef struct sw_sampler_t sw_sampler_t;

/*  Returns NULL on bad parameters or allocation failure; n_vocab > 0. */
sw_sampler_t *sw_sampler_new(const sw_sampler_params_t *params, int32_t n_vocab);
void sw_sampler_destroy(sw_sampler_t **self_p);

/*  Draws a token from logits (n_vocab f32, not modified). history holds the
 *  n_hist previous token ids (for the repetition penalty; may be NULL).
 *  Returns the token id, or -1 if logits hold no finite value. */
int32_t sw_sampler_sample(sw_sampler_t *self, const float *logits, const int32_t *history, int64_t n_hist);

/*  The distribution sw_sampler_sample draws from, written to probs
 *  (n_vocab f32, summing to 1; zero outside the kept set). For greedy, a
 *  one-hot vector. Used by speculative decoding's rejection rule.
 *  Returns 0, or -1 if logits hold no finite value. */
int sw_sampler_probs(sw_sampler_t *self, const float *logits, const int32_t *history, int64_t n_hist,
                     float *probs);

/*  Draws an index from a probability vector (n f32, non-negative, any sum > 0)
 *  with this sampler's RNG. Returns the index, or -1 if the sum is not > 0. */
int32_t sw_sampler_draw(sw_sampler_t *self, const float *probs, int32_t n);

/*  Uniform double in [0, 1) from this sampler's RNG. */
double sw_sampler_uniform(sw_sampler_t *self);

#ifdef __cplusplus
}
#endif
#endif
