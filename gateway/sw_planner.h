/*  sw_planner.h: choose the chain of stages that runs every layer of a model
 *  with the least expected latency.
 *
 *  Cost of running layers [i, j) on stage s (docs/design.md, "Latency of one
 *  decode step"):
 *      link_ms(s) + ms_per_layer(s) * (j - i) * (1 + busy(s) + queued(s) / 4)
 *  where link_ms is the stage's measured round trip (1 ms when unknown). The
 *  chain minimising the sum over hops is found by dynamic programming over
 *  layer boundaries: best[j] = min over stages s covering [i, j) of
 *  best[i] + cost(s, i, j). A stage may run a sub-range of what it holds, so
 *  overlapping stages combine freely. Ties go to fewer hops, then to the
 *  earlier stage in the input (deterministic).
 *
 *  Thread safety: pure functions.
 */
#ifndef SW_PLANNER_H
#define SW_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SW_PLAN_MAX_HOPS 64

/*  What the planner needs to know of one live stage. */
typedef struct {
    const char *node_id;   /* borrowed */
    int32_t begin, end;    /* layers held, [begin, end) */
    float ms_per_layer;    /* compute per layer per token, ms (<= 0: 1) */
    float link_ms;         /* measured round trip, ms (<= 0: 1) */
    float busy;            /* 0..1 */
    uint32_t queued;       /* requests waiting */
} sw_plan_stage_t;

typedef struct {
    int stage;             /* index into the input array */
    int32_t begin, end;    /* layers this hop runs */
} sw_plan_hop_t;

typedef struct {
    int n_hops;
    sw_plan_hop_t hops[SW_PLAN_MAX_HOPS];
    double cost_ms;        /* expected latency of one decode step */
    int32_t gap_begin;     /* with no plan: the first layer no chain reaches */
    int32_t gap_end;       /* ... and where coverage resumes (n_layer if never) */
} sw_plan_t;

/*  Plans a chain over layers [0, n_layer). Returns 0 and fills plan, or -1
 *  when some layer has no stage (plan->gap_* name the first gap) or the
 *  chain would need more than SW_PLAN_MAX_HOPS hops. */
int sw_plan(const sw_plan_stage_t *stages, int n_stages, int32_t n_layer, sw_plan_t *plan);

/*  True when every layer of [begin, end) is held by one of the stages (an
 *  empty range is covered). */
bool sw_plan_covers(const sw_plan_stage_t *stages, int n_stages, int32_t begin, int32_t end);

/*  Writes the ranges of layers no stage holds as "a-b, c-d" (inclusive) into
 *  buf; returns the number of gaps. */
int sw_plan_gaps(const sw_plan_stage_t *stages, int n_stages, int32_t n_layer, char *buf, size_t buflen);

#endif
