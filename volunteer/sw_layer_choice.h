/*  sw_layer_choice.h: which contiguous layers a volunteer should serve, from
 *  what the swarm holds now and what fits in the volunteer's memory cap.
 *
 *  Rule (docs/volunteer.md, "What it serves"):
 *   1. fit = the longest run of layers whose weights fit in the memory cap
 *      (the cap minus nothing else: KV caches have their own cap), counted
 *      from the window's own layer sizes;
 *   2. when some layers have no host, the window covers the first of the
 *      longest uncovered runs, starting at its start, and is that run cut to
 *      what fits (a volunteer that can hold more does not take covered layers
 *      around it: a gap is filled by as many volunteers as it takes);
 *   3. otherwise the window of `fit` layers (at most the whole model) with
 *      the least spare capacity: the sum over its layers of (1 - busy) over
 *      each layer's hosts. Every token crosses every layer, so each layer
 *      carries the same work; the layers whose hosts are fewest and busiest
 *      gain the most from one more. Ties go to the earlier window.
 *  Pure function of its inputs (unit-tested in tests/test_layer_choice.c).
 *
 *  Thread safety: pure.
 */
#ifndef SW_LAYER_CHOICE_H
#define SW_LAYER_CHOICE_H

#include <stddef.h>
#include <stdint.h>

#define SW_LAYER_CHOICE_MAX_LAYERS 4096 /* refused above: no model has more blocks */

/*  One live host of the model, as the directory shows it. */
typedef struct {
    int32_t begin, end;  /* layers held, [begin, end) */
    float busy;          /* 0..1, fraction of the last second computing (Load.busy); clamped */
} sw_layer_host_t;

typedef struct {
    int32_t begin, end;  /* chosen layers, [begin, end) */
    int32_t uncovered;   /* layers of the window no host held (0: the window adds redundancy) */
} sw_layer_pick_t;

/*  Chooses the window. n_layer: blocks of the model (1..SW_LAYER_CHOICE_MAX_LAYERS);
 *  layer_bytes: (n_layer,) bytes of each block's tensors; hosts: (n_hosts,)
 *  the live hosts (ranges outside [0, n_layer) are clipped, empty ones
 *  ignored); mem_cap_bytes: memory for weights. Returns 0 with *pick, or -1
 *  when the arguments are invalid or not even one layer fits (no window
 *  fits: the cap is below the smallest layer). */
int sw_layer_choose(int32_t n_layer, const uint64_t *layer_bytes, const sw_layer_host_t *hosts, size_t n_hosts,
                    uint64_t mem_cap_bytes, sw_layer_pick_t *pick);

#endif
