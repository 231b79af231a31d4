/*  sw_recent.h: the last finished generations of a gateway, for the swarm
 *  status (SwarmStatusReply.recent, drawn by the dashboard), with running
 *  totals.
 *
 *  A ring of fixed capacity: adding to a full ring drops the oldest entry.
 *  Pure state: the caller stamps each sample with its end time. Thread
 *  safety: one thread per object.
 */
#ifndef SW_RECENT_H
#define SW_RECENT_H

#include <stddef.h>
#include <stdint.h>

/*  One finished generation (fields as in rpc.proto GenerationSample). */
typedef struct {
    uint64_t end_unix_ms;          /* wall-clock end, ms since 1970 */
    uint32_t prompt_tokens;        /* tokens */
    uint32_t completion_tokens;    /* tokens */
    float decode_tokens_per_s;     /* tokens/s after the first token (0: one token or none) */
    float time_to_first_token_ms;  /* ms (0: no token) */
    float acceptance_rate;         /* speculative acceptance, 0..1 (0: no rounds) */
} sw_recent_sample_t;

typedef struct sw_recent_t sw_recent_t;

/*  An empty ring of `capacity` samples (>= 1). NULL when capacity is 0 or
 *  out of memory. Caller destroys. */
sw_recent_t *sw_recent_new(size_t capacity);
/*  Frees; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_recent_destroy(sw_recent_t **self_p);

/*  Adds a sample (copied), dropping the oldest when full; counts it in the
 *  totals. */
void sw_recent_add(sw_recent_t *self, const sw_recent_sample_t *sample);
/*  Samples held (<= capacity). */
size_t sw_recent_count(const sw_recent_t *self);
/*  Sample i, 0 = the oldest held; NULL when i >= count. Borrowed until the
 *  next sw_recent_add. */
const sw_recent_sample_t *sw_recent_get(const sw_recent_t *self, size_t i);
/*  Generations ever added. */
uint64_t sw_recent_generations_total(const sw_recent_t *self);
/*  Completion tokens of every generation ever added. */
uint64_t sw_recent_tokens_total(const sw_recent_t *self);

#endif
