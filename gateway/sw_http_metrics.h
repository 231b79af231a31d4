/*  sw_http_metrics.h: the HTTP front's /metrics, in the Prometheus text
 *  exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats)
 *  following Prometheus's naming conventions (prometheus.io/docs/practices/
 *  naming: base units, seconds; counters end in _total), as `promtool check
 *  metrics` checks (tests/test_http.py runs it on a live gateway's answer).
 *
 *  Two parts: the HTTP front's own counters (sw_http_counters_t, kept by
 *  sw_http under its lock), and the swarm as the gateway sees it (rendered
 *  from a sw_client_swarm_t when the shared snapshot is refreshed).
 *  Metric names are listed in docs/protocol.md, "Metrics".
 *
 *  Thread safety: pure functions over their arguments; the caller locks the
 *  counters it passes.
 */
#ifndef SW_HTTP_METRICS_H
#define SW_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "sw_client.h"

/* Calls the HTTP front makes to the gateway's RPC (label "call"). */
enum { SW_HTTP_CALL_GENERATE, SW_HTTP_CALL_MODELS, SW_HTTP_CALL_SWARM, SW_HTTP_N_CALLS };

#define SW_HTTP_TTFT_N 8 /* finite buckets of the time-to-first-token histogram */

/*  The HTTP front's counters (all since the server started). */
typedef struct {
    uint64_t requests;           /* HTTP requests received */
    uint64_t rate_limited;       /* answered 429 */
    uint64_t busy_rejected;      /* answered 503: concurrency cap, or the table of addresses full */
    uint64_t failed;             /* generations that ended in an error */
    uint64_t completions;        /* generations finished */
    uint64_t tokens;             /* completion tokens of the finished generations */
    uint64_t abandoned;          /* generations cancelled because their client left */
    uint64_t bad_framing;        /* requests refused for ambiguous framing */
    uint64_t admin_refused;      /* admin requests refused for a missing or wrong token (401) */
    uint64_t api_token_refused;  /* API requests refused for an unknown or expired API token (401) */
    uint64_t calls[SW_HTTP_N_CALLS];           /* gateway RPC calls, by kind */
    uint64_t ttft_bucket[SW_HTTP_TTFT_N + 1];  /* time-to-first-token counts per bucket (not cumulative); last: +Inf */
    double ttft_sum;             /* seconds, sum of every observed time to first token */
    double last_tps;             /* tokens per second of the last finished generation's decode */
    int active;                  /* generations in progress */
    size_t clients_tracked;      /* addresses in the fair-use table (set by the caller before rendering) */
} sw_http_counters_t;

/*  Counts one time to first token (seconds, >= 0; NaN counts in +Inf). */
void sw_http_counters_observe_ttft(sw_http_counters_t *c, double seconds);

/*  /metrics: the counters c, then swarm (the swarm part from
 *  sw_http_metrics_swarm, or NULL when the gateway did not answer).
 *  Returns NUL-terminated text (caller frees), or NULL when out of memory. */
char *sw_http_metrics_text(const sw_http_counters_t *c, const char *swarm);

/*  The swarm part of /metrics: stages by region, each stage's round trip to
 *  its broker (swisd_stage_rtt_seconds), sessions, uncovered layers. Label
 *  values are escaped (backslash, double quote, newline) as the format
 *  requires, and cut to 64 bytes. Returns text (caller frees), or NULL when
 *  out of memory. */
char *sw_http_metrics_swarm(const sw_client_swarm_t *w);

#endif
