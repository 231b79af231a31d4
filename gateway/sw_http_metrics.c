/*  sw_http_metrics.c: /metrics in the Prometheus text format (see sw_http_metrics.h). */
#include "sw_http_metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Time-to-first-token histogram bounds, seconds (the "le" labels). */
static const double s_ttft_le[SW_HTTP_TTFT_N] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const char *const s_call_names[SW_HTTP_N_CALLS] = {"generate", "models", "swarm"};

/* A growing text; oom once any append failed (the text is then dropped). */
typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} s_text_t;

static void s_printf(s_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(s_text_t *t, const char *fmt, ...)
{
    while (!t->oom) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->buf && t->len + (size_t) n < t->cap) {
            t->len += (size_t) n;
            return;
        }
        const size_t cap = (t->cap + (size_t) n + 256) * 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->oom = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

/* The text, or NULL (freed) when an append failed. */
static char *s_take(s_text_t *t)
{
    if (t->oom || !t->buf) {
        free(t->buf);
        return t->oom ? NULL : strdup("");
    }
    return t->buf;
}

/* A label value as the format needs it: '\\', '"' and newline escaped,
 * other control and non-ASCII bytes as '?', at most 64 bytes of s. */
static void s_label(const char *s, char out[64 * 2 + 1])
{
    size_t o = 0;
    for (size_t i = 0; s && s[i] && i < 64; i++) {
        const unsigned char c = (unsigned char) s[i];
        if (c == '\\' || c == '"')
            out[o++] = '\\', out[o++] = (char) c;
        else if (c == '\n')
            out[o++] = '\\', out[o++] = 'n';
        else
            out[o++] = c < 0x20 || c >= 0x7f ? '?' : (char) c;
    }
    out[o] = 0;
}

void sw_http_counters_observe_ttft(sw_http_counters_t *c, double seconds)
{
    size_t b = 0;
    while (b < SW_HTTP_TTFT_N && !(seconds <= s_ttft_le[b]))
        b++;
    c->ttft_bucket[b]++;
    if (isfinite(seconds))
        c->ttft_sum += seconds;
}

char *sw_http_metrics_text(const sw_http_counters_t *c, const char *swarm)
{
    s_text_t t = {0};
    static const struct {
        const char *name, *type, *help;
        size_t off; /* of the uint64_t in sw_http_counters_t */
    } counters[] = {
        {"swisd_http_requests_total", "counter", "HTTP requests received.", offsetof(sw_http_counters_t, requests)},
        {"swisd_rate_limited_total", "counter", "Requests answered 429.", offsetof(sw_http_counters_t, rate_limited)},
        {"swisd_busy_rejected_total", "counter",
         "Requests answered 503 for the concurrency cap or a full table of client addresses.",
         offsetof(sw_http_counters_t, busy_rejected)},
        {"swisd_generations_failed_total", "counter", "Generations that ended in an error.",
         offsetof(sw_http_counters_t, failed)},
        {"swisd_generations_abandoned_total", "counter", "Generations cancelled because their client left.",
         offsetof(sw_http_counters_t, abandoned)},
        {"swisd_http_bad_framing_total", "counter",
         "Requests refused for ambiguous framing (duplicate Content-Length, ...).",
         offsetof(sw_http_counters_t, bad_framing)},
        {"swisd_http_admin_refused_total", "counter",
         "Admin requests refused (401) for a missing or wrong token.", offsetof(sw_http_counters_t, admin_refused)},
        {"swisd_http_api_token_refused_total", "counter",
         "API requests refused (401) for an unknown or expired API token.",
         offsetof(sw_http_counters_t, api_token_refused)},
        {"swisd_tokens_generated_total", "counter", "Completion tokens generated.",
         offsetof(sw_http_counters_t, tokens)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *) c + counters[i].off, sizeof v);
        s_printf(&t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", counters[i].name, counters[i].help, counters[i].name,
                 counters[i].type, counters[i].name, (unsigned long long) v);
    }
    s_printf(&t,
             "# HELP swisd_decode_tokens_per_second Decode speed of the last finished generation.\n"
             "# TYPE swisd_decode_tokens_per_second gauge\nswisd_decode_tokens_per_second %.3f\n"
             "# HELP swisd_active_generations Generations in progress over HTTP.\n"
             "# TYPE swisd_active_generations gauge\nswisd_active_generations %d\n"
             "# HELP swisd_http_clients_tracked Client addresses in the fair-use table.\n"
             "# TYPE swisd_http_clients_tracked gauge\nswisd_http_clients_tracked %zu\n"
             "# HELP swisd_http_gateway_calls_total Calls of the gateway's RPC made by the HTTP API.\n"
             "# TYPE swisd_http_gateway_calls_total counter\n",
             c->last_tps, c->active, c->clients_tracked);
    for (int k = 0; k < SW_HTTP_N_CALLS; k++)
        s_printf(&t, "swisd_http_gateway_calls_total{call=\"%s\"} %llu\n", s_call_names[k],
                 (unsigned long long) c->calls[k]);
    s_printf(&t, "# HELP swisd_time_to_first_token_seconds Time to first token.\n"
                 "# TYPE swisd_time_to_first_token_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b <= SW_HTTP_TTFT_N; b++) {
        cum += c->ttft_bucket[b];
        if (b < SW_HTTP_TTFT_N)
            s_printf(&t, "swisd_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", s_ttft_le[b],
                     (unsigned long long) cum);
        else
            s_printf(&t, "swisd_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long) cum);
    }
    s_printf(&t, "swisd_time_to_first_token_seconds_sum %.6f\nswisd_time_to_first_token_seconds_count %llu\n",
             c->ttft_sum, (unsigned long long) cum);
    if (swarm)
        s_printf(&t, "%s", swarm);
    return s_take(&t);
}

char *sw_http_metrics_swarm(const sw_client_swarm_t *w)
{
    s_text_t t = {0};
    enum { S_MAX_REGIONS = 32 };
    char regions[S_MAX_REGIONS][64 * 2 + 1];
    int counts[S_MAX_REGIONS] = {0}, n_regions = 0;
    s_printf(&t, "# HELP swisd_stage_rtt_seconds Round trip of each live stage to its broker.\n"
                 "# TYPE swisd_stage_rtt_seconds gauge\n");
    for (int k = 0; k < w->n_stages; k++) {
        const sw_client_stage_t *st = &w->stages[k];
        char node[64 * 2 + 1], region[64 * 2 + 1];
        s_label(st->node_id, node);
        s_label(st->region, region);
        int i = 0;
        while (i < n_regions && strcmp(regions[i], region))
            i++;
        if (i == n_regions && n_regions < S_MAX_REGIONS)
            memcpy(regions[n_regions++], region, sizeof region);
        if (i < S_MAX_REGIONS)
            counts[i]++;
        s_printf(&t, "swisd_stage_rtt_seconds{node=\"%s\",region=\"%s\",layers=\"%u-%u\"} %.6f\n", node, region,
                 st->begin, st->end ? st->end - 1 : 0, st->rtt_ms / 1000.0);
    }
    s_printf(&t, "# HELP swisd_stages Live stages by region.\n# TYPE swisd_stages gauge\n");
    for (int i = 0; i < n_regions; i++)
        s_printf(&t, "swisd_stages{region=\"%s\"} %d\n", regions[i], counts[i]);
    s_printf(&t, "# HELP swisd_active_sessions Sessions in the gateway (all clients).\n"
                 "# TYPE swisd_active_sessions gauge\nswisd_active_sessions %d\n", w->n_sessions);
    uint32_t missing = 0;
    for (int i = 0; i < w->n_gaps; i++)
        missing += w->gaps[i][1] > w->gaps[i][0] ? w->gaps[i][1] - w->gaps[i][0] : 0;
    s_printf(&t, "# HELP swisd_layers_uncovered Layers of the model no live stage holds.\n"
                 "# TYPE swisd_layers_uncovered gauge\nswisd_layers_uncovered %u\n", missing);
    s_printf(&t, "# HELP swisd_unsealed_replies_total Replies rejected because they did not open with the "
                 "answering stage's key.\n# TYPE swisd_unsealed_replies_total counter\nswisd_unsealed_replies_total %llu\n"
                 "# HELP swisd_unsealed_replies_by_node_total The same, per stage (the last 16 counted).\n"
                 "# TYPE swisd_unsealed_replies_by_node_total counter\n",
             (unsigned long long) w->unsealed_replies_total);
    for (int i = 0; i < w->n_unsealed; i++) {
        char node[64 * 2 + 1];
        s_label(w->unsealed_node[i], node);
        s_printf(&t, "swisd_unsealed_replies_by_node_total{node=\"%s\"} %llu\n", node,
                 (unsigned long long) w->unsealed_count[i]);
    }
    return s_take(&t);
}
