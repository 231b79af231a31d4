/*  run_logits.h: `swisd run --dump-logits FILE`, what the run computed as
 *  JSON in the layout of the FAMILY-TYPE.json files of ../shared/refs/families (see its
 *  README, "The dumper, exactly"), so swisd can be compared with any other
 *  engine that writes the same layout:
 *
 *    { "model": file name, "numerics": "swisd", "kv_cache": "f32",
 *      "tokens": [ids evaluated as the prompt], "n_vocab": V,
 *      "probe_ids": [floor(k * V / 64) for k = 0..63],
 *      "positions": [ { "top": [[id, logit] x 40], "probe": [logit x 64],
 *                       "logits": [logit x V] (only with `full`) }
 *                     per prompt token: the logits after token i ],
 *      "greedy": { "ids": [...], "margins": [top-1 minus top-2 logit],
 *                  "top5": [[[id, logit] x 5] per step] },
 *      "generated": the same ids as greedy.ids }
 *
 *  `top` lists the 40 largest logits, largest first, ties to the lower id.
 *  Thread safety: one collector per thread.
 */
#ifndef RUN_LOGITS_H
#define RUN_LOGITS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct run_logits_t run_logits_t;

/*  A collector for a vocabulary of n_vocab (>= 1) tokens; full: also list
 *  every logit of every prompt position. NULL on allocation failure. Caller
 *  destroys result. */
run_logits_t *run_logits_new(int32_t n_vocab, bool full);
void run_logits_destroy(run_logits_t **self_p);

/*  Records the logits (n_vocab f32) after one prompt token. 0 or -1 (OOM). */
int run_logits_position(run_logits_t *self, const float *logits);

/*  Records one greedy step and returns its id: the argmax of logits (n_vocab
 *  f32; ties to the lower id), or -1 when no logit is finite or on OOM. */
int32_t run_logits_greedy(run_logits_t *self, const float *logits);

/*  Writes the JSON to the file path (stdout carries the text). model: the file name shown;
 *  tokens (n_tok): the prompt ids. 0, or -1 with the reason on stderr. */
int run_logits_write(const run_logits_t *self, const char *path, const char *model, const int32_t *tokens,
                     int64_t n_tok);

#endif
