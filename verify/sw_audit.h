/*  sw_audit.h: the gateway's audit book: what every hop of every step of a
 *  session committed to, compared with what an independent route computes
 *  for the same tokens (docs/security.md, "Verification").
 *
 *  The gateway records each accepted step (sw_audit_record): its first
 *  position, its rows' token ids, and for every hop of its route the node id,
 *  the layer range and the row sketches from the hop's commitment
 *  (verify/sw_commit.h). An audit re-runs the session's tokens as a prefill
 *  through another route whose hops have the same layer ranges on other
 *  hosts; each chunk's commitments are compared here (sw_audit_compare)
 *  with every recorded row at the same position and layer boundary.
 *
 *  Which rows can be compared: a recorded row at position p is the output
 *  for tokens [0, p] as the step saw them; it is compared only when the
 *  step's tokens up to p equal the session's history (a rejected draft
 *  token's row is not). Which hop lied: rows are taken in position order
 *  and, within a row, hops in route order; the first disagreement (sketch
 *  distance above the threshold) names the hop: every earlier position
 *  matched at every boundary (so its KV cache was fed honest inputs) and its
 *  own input at this position matched (the previous boundary, or the
 *  gateway's embedding at hop 0). Disagreements after the first are
 *  consequences (a downstream KV cache fed a lie) and are not reported.
 *
 *  Trust (BOINC's adaptive replication, Anderson 2004; docs/security.md):
 *  per node, the consecutive steps verified; audit rate 1 while that count is
 *  below n_trust, then max(rate_floor, n_trust / count); a failure resets it.
 *  Trust changes only here, never for uptime or speed.
 *
 *  Memory: at most cfg.max_rows recorded rows per session (the oldest
 *  unverified steps are dropped past it and counted); fully verified steps
 *  are dropped.
 *
 *  Thread safety: one thread (the gateway's loop).
 */
#ifndef SW_AUDIT_H
#define SW_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_sketch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SW_AUDIT_ID_MAX 64   /* bytes of a node id */
#define SW_AUDIT_MAX_HOPS 64 /* hops of one route */

typedef struct {
    double threshold;  /* relative sketch distance above which two hosts disagree; <= 0: 0.05 */
    int n_trust;       /* consecutive verified steps before a node is trusted; <= 0: 20 */
    double rate_floor; /* audit rate of a trusted node; <= 0: 0.05 */
    int max_rows;      /* recorded rows kept per session; <= 0: 16384 */
} sw_audit_config_t;

/*  One hop of a step as committed. */
typedef struct {
    const char *node_id; /* <= SW_AUDIT_ID_MAX bytes */
    uint32_t begin, end; /* layers [begin, end) */
    const float *sketch; /* (n_rows, SW_SKETCH_K) f32, borrowed for the call */
} sw_audit_hop_t;

/*  What a comparison found. */
typedef struct {
    int64_t compared_end;          /* rows < this have been compared (the audit's progress) */
    int n_compared;                /* row-and-hop comparisons made by this call */
    int n_skipped;                 /* recorded rows not comparable (rejected draft tokens, other ranges) */
    bool mismatch;                 /* a disagreement was found (the first one, below) */
    int64_t pos;                   /* its position */
    uint32_t begin, end;           /* the layers of the two hops that disagree */
    char node[SW_AUDIT_ID_MAX + 1];    /* the recorded hop's node */
    char auditor[SW_AUDIT_ID_MAX + 1]; /* the audit route's hop */
    double distance;               /* their sketches' relative distance */
    double max_ok_distance;        /* the largest distance among the rows that agreed (noise seen) */
} sw_audit_result_t;

typedef struct sw_audit_t sw_audit_t;

/*  A new book with cfg (NULL: defaults). Returns NULL when out of memory. */
sw_audit_t *sw_audit_new(const sw_audit_config_t *cfg);
/*  Frees; accepts NULL; sets *self_p = NULL. */
void sw_audit_destroy(sw_audit_t **self_p);

/*  Records an accepted step of session sid: rows [pos, pos + n_rows) for
 *  tokens (n_rows) int32 ids, through hops[0..n_hops) in route order.
 *  Everything is copied. Returns 0, or -1 on bad arguments or out of memory
 *  (nothing recorded). */
int sw_audit_record(sw_audit_t *self, const char *sid, int64_t pos, int32_t n_rows, const int32_t *tokens,
                    const sw_audit_hop_t *hops, int n_hops);

/*  Compares an audit chunk of session sid: rows [pos, pos + n_rows) as the
 *  audit route computed them (hops with their sketches, in route order),
 *  the session's history (n_history) int32 ids. Every recorded step whose
 *  rows are all compared without a disagreement is a verified result of each
 *  of its hops that an independent host checked (an audit hop on the same
 *  node, or no audit hop with the same layers, checks nothing) and is
 *  dropped. A disagreement does not
 *  change trust: which of the two hosts lied is the caller's decision (a
 *  trusted auditor, or a third host), recorded with sw_audit_fail. Fills
 *  *out. Returns 0, or -1 on bad arguments. */
int sw_audit_compare(sw_audit_t *self, const char *sid, const int32_t *history, int64_t n_history, int64_t pos,
                     int32_t n_rows, const sw_audit_hop_t *hops, int n_hops, sw_audit_result_t *out);

/*  Rows of sid not yet compared start here (0 for an unknown session). */
int64_t sw_audit_compared_end(const sw_audit_t *self, const char *sid);
/*  Rows recorded for sid and not yet verified (0 when none). */
int64_t sw_audit_pending_rows(const sw_audit_t *self, const char *sid);
/*  True when sid has a recorded step through node not yet verified. */
bool sw_audit_unverified_through(const sw_audit_t *self, const char *sid, const char *node);
/*  Forgets sid (its session ended). */
void sw_audit_forget(sw_audit_t *self, const char *sid);

/*  The audit rate of node, 0..1 (an unknown node: 1). */
double sw_audit_rate(const sw_audit_t *self, const char *node);
/*  True when node has at least n_trust consecutive verified steps. */
bool sw_audit_trusted(const sw_audit_t *self, const char *node);
/*  Counts for node: verified steps, consecutive verified, failures. */
void sw_audit_counts(const sw_audit_t *self, const char *node, uint64_t *verified, uint64_t *consecutive,
                     uint64_t *failed);
/*  Records a failure of node found elsewhere (a tie-break), resetting it. */
void sw_audit_fail(sw_audit_t *self, const char *node);

#ifdef __cplusplus
}
#endif
#endif
