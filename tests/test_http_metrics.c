/*  test_http_metrics.c: /metrics text (gateway/sw_http_metrics).
 *
 *  - Counters and the time-to-first-token histogram: cumulative buckets,
 *    +Inf equal to _count, _sum in seconds, NaN counted in +Inf only.
 *  - The swarm part: round trips in seconds (swisd_stage_rtt_seconds), stages
 *    by region, uncovered layers; hostile label values from peers (quotes,
 *    backslashes, newlines, control and non-ASCII bytes, 200-byte ids) are
 *    escaped or replaced so every sample stays on one line.
 *  - `promtool check metrics` (Debian package prometheus) accepts the whole
 *    text, hostile labels included: SKIP when promtool is missing, FAIL under
 *    CI=true (as tests/harness.py's test_data). tests/test_http.py also runs
 *    it on a live gateway's /metrics.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sw_http_metrics.h"
#include "sw_test.h"

/* The value of the sample line that starts with `name ` (exact series), or NAN. */
static double s_value(const char *text, const char *series)
{
    const size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return NAN;
}

static bool s_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && (!strcmp(ci, "true") || !strcmp(ci, "1"));
}

/* Runs promtool check metrics on text: 1 accepted, 0 refused, -1 no promtool. */
static int s_promtool(const char *text, char *out, size_t outlen)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        return -1;
    char path[] = "/tmp/swisd-metrics-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, outlen - 1, p) : 0;
    out[n] = 0;
    const int st = p ? pclose(p) : -1;
    remove(path);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && n == 0;
}

int main(void)
{
    sw_http_counters_t c = {.requests = 10, .rate_limited = 2, .tokens = 300, .active = 1, .clients_tracked = 3};
    c.calls[SW_HTTP_CALL_GENERATE] = 4;
    sw_http_counters_observe_ttft(&c, 0.01);
    sw_http_counters_observe_ttft(&c, 0.3);
    sw_http_counters_observe_ttft(&c, 99);
    sw_http_counters_observe_ttft(&c, NAN);

    sw_client_stage_t st[3] = {
        {.node_id = "n1", .region = "eu", .begin = 0, .end = 3, .rtt_ms = 1.5f},
        {.node_id = "evil\"} 1\nswisd_fake 9\\", .region = "eu", .begin = 3, .end = 5, .rtt_ms = 250},
        {.node_id = "\x01\xff\xc3\xa9", .region = "us\n", .begin = 0, .end = 5, .rtt_ms = 0},
    };
    char long_id[201];
    memset(long_id, 'x', 200);
    long_id[200] = 0;
    st[0].node_id = long_id;
    const uint32_t gaps[1][2] = {{5, 7}};
    sw_client_swarm_t w = {.stages = st, .n_stages = 3, .n_sessions = 2, .gaps = gaps, .n_gaps = 1};
    char *swarm = sw_http_metrics_swarm(&w);
    CHECK(swarm != NULL);
    char *text = sw_http_metrics_text(&c, swarm);
    CHECK(text != NULL);
    if (!text || !swarm)
        return sw_test_report("http_metrics");

    CHECK(s_value(text, "swisd_http_requests_total") == 10 && s_value(text, "swisd_rate_limited_total") == 2);
    CHECK(s_value(text, "swisd_tokens_generated_total") == 300 && s_value(text, "swisd_active_generations") == 1);
    CHECK(s_value(text, "swisd_http_clients_tracked") == 3);
    CHECK(s_value(text, "swisd_http_gateway_calls_total{call=\"generate\"}") == 4);
    CHECK(s_value(text, "swisd_time_to_first_token_seconds_bucket{le=\"0.05\"}") == 1);
    CHECK(s_value(text, "swisd_time_to_first_token_seconds_bucket{le=\"0.5\"}") == 2);
    CHECK(s_value(text, "swisd_time_to_first_token_seconds_bucket{le=\"10\"}") == 2);
    CHECK(s_value(text, "swisd_time_to_first_token_seconds_bucket{le=\"+Inf\"}") == 4);
    CHECK(s_value(text, "swisd_time_to_first_token_seconds_count") == 4);
    CHECK_NEAR(s_value(text, "swisd_time_to_first_token_seconds_sum"), 99.31, 1e-6);
    /* the swarm part: seconds, regions, gaps, escaped labels */
    char series[512];
    snprintf(series, sizeof series, "swisd_stage_rtt_seconds{node=\"%.64s\",region=\"eu\",layers=\"0-2\"}", long_id);
    CHECK_NEAR(s_value(text, series), 0.0015, 1e-9);
    CHECK_NEAR(s_value(text, "swisd_stage_rtt_seconds{node=\"evil\\\"} 1\\nswisd_fake 9\\\\\",region=\"eu\","
                             "layers=\"3-4\"}"),
               0.25, 1e-9);
    CHECK(s_value(text, "swisd_stage_rtt_seconds{node=\"????\",region=\"us\\n\",layers=\"0-4\"}") == 0);
    CHECK(!strstr(text, "milliseconds") && !strstr(text, "\nswisd_fake"));
    CHECK(s_value(text, "swisd_stages{region=\"eu\"}") == 2 && s_value(text, "swisd_stages{region=\"us\\n\"}") == 1);
    CHECK(s_value(text, "swisd_active_sessions") == 2 && s_value(text, "swisd_layers_uncovered") == 2);
    /* without the swarm: the counters alone */
    char *alone = sw_http_metrics_text(&c, NULL);
    CHECK(alone && !strstr(alone, "swisd_stages") && strstr(alone, "swisd_http_requests_total 10\n"));

    char out[4096];
    const int pt = s_promtool(text, out, sizeof out);
    if (pt < 0) {
        printf("%s: promtool is missing (Debian package prometheus; scripts/dev build installs it); the check of "
               "/metrics against Prometheus's conventions %s\n",
               s_in_ci() ? "FAIL" : "SKIP", s_in_ci() ? "fails under CI=true" : "was skipped");
        CHECK(!s_in_ci());
    } else {
        CHECK_MSG(pt == 1, "promtool check metrics: %s\n%s", out, text);
        const int pa = s_promtool(alone ? alone : "", out, sizeof out);
        CHECK_MSG(pa == 1, "promtool check metrics (counters alone): %s", out);
        /* the check can fail: the old name is refused */
        CHECK(s_promtool("# HELP swisd_stage_rtt_milliseconds x\n# TYPE swisd_stage_rtt_milliseconds gauge\n"
                         "swisd_stage_rtt_milliseconds 1\n",
                         out, sizeof out) == 0);
    }
    free(alone);
    free(text);
    free(swarm);
    return sw_test_report("http_metrics");
}
