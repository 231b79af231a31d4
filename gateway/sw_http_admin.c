/*  sw_http_admin.c: the HTTP front's operator endpoints under /admin/ (see
 *  sw_http.h and docs/protocol.md, "Admin endpoints").
 *
 *  Bans and drains go to the shared sw_bans table (SQLite, written before
 *  they count), which the gateway's loop reads when it plans and checks for
 *  changes on every turn: a ban makes sessions on the node fail over there,
 *  on the loop's own thread. Nothing of this crosses the gateway's RPC
 *  socket, so no RPC client can reach it. Fair-use limits live in this
 *  server (sw_fairuse under h->mu) and change in place.
 */
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_admin_token.h"
#include "sw_ban_outbox.h"
#include "sw_bans.h"
#include "sw_common.h"
#include "sw_fairuse.h"
#include "sw_http_internal.h"
#include "sw_openai.h"

#define S_FAIL_COST 4        /* request units a refused token costs beyond the request itself */
#define S_LOG_EVERY_S 1.0    /* at most one log line about refused tokens per second */

static enum MHD_Result s_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return sw__http_error(c, 500, "server_error", "cannot build the response", NULL);
    return sw__http_send(c, status, "application/json", text, NULL);
}

static enum MHD_Result s_bad(struct MHD_Connection *c, const char *msg)
{
    return sw__http_error(c, 400, "invalid_request_error", msg, NULL);
}

/* A refused token: charged to the address's request meter, logged at most once per S_LOG_EVERY_S. */
static enum MHD_Result s_unauthorized(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, bool given)
{
    const double need[SW__HTTP_N_METERS] = {0}, cost[SW__HTTP_N_METERS] = {S_FAIL_COST, 0, 0};
    pthread_mutex_lock(&h->mu);
    const double now = sw__http_now();
    sw_fairuse_take(h->fair, &rq->addr, need, cost, 0, now, NULL); /* overdraws: the address then waits */
    h->n.admin_refused++;
    uint64_t quiet = 0;
    bool log = now - h->admin_log_at >= S_LOG_EVERY_S;
    if (log) {
        quiet = h->admin_log_quiet;
        h->admin_log_quiet = 0;
        h->admin_log_at = now;
    } else {
        h->admin_log_quiet++;
    }
    pthread_mutex_unlock(&h->mu);
    if (log)
        sw_log(SW_LOG_WARN, "http: refused an admin request from %s: %s token (%llu more refusals not logged)",
               rq->ip, given ? "a wrong" : "no", (unsigned long long) quiet);
    return sw__http_error_with(c, 401, "authentication_error",
                               given ? "the admin token is wrong" : "admin endpoints need Authorization: Bearer TOKEN",
                               "WWW-Authenticate", "Bearer realm=\"swisd-admin\"");
}

/* One node's entry as JSON. */
static json_t *s_entry_json(const sw_bans_entry_t *e)
{
    return json_pack("{s:s, s:b, s:b, s:s, s:I}", "node", e->id, "banned", e->banned, "drained", e->drained,
                     "reason", e->reason, "changed_unix_ms", (json_int_t) e->changed_unix_ms);
}

/* GET /admin/nodes: every banned or drained node. */
static enum MHD_Result s_nodes(sw_http_t *h, struct MHD_Connection *c)
{
    sw_bans_entry_t *e = malloc(SW_BANS_MAX * sizeof *e);
    if (!e)
        return sw__http_error(c, 500, "server_error", "out of memory in the HTTP server", NULL);
    const int n = sw_bans_list(h->cfg.bans, e, SW_BANS_MAX);
    json_t *a = json_array();
    for (int i = 0; a && i < n && i < SW_BANS_MAX; i++)
        if (json_array_append_new(a, s_entry_json(&e[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    free(e);
    return s_json(c, 200, a ? json_pack("{s:o}", "nodes", a) : NULL);
}

/* POST /admin/{ban,unban,drain,undrain} {"node": ID, "reason": TEXT}; /admin/ban also takes
 * "duration_s" (how long the brokers refuse the node: 1 s..400 days, default 30 days). A ban
 * and an unban also go to every broker (sw_ban_outbox_ban), when the server has the outbox. */
static enum MHD_Result s_flag(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, bool ban, bool on)
{
    json_error_t je;
    json_t *body = rq->body ? json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je) : NULL;
    const char *node = NULL, *reason = "";
    if (!body || !json_is_object(body) || !json_is_string(json_object_get(body, "node"))) {
        json_decref(body);
        return s_bad(c, "expected a JSON object {\"node\": \"ID\", \"reason\": \"...\"}");
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "node") && strcmp(key, "reason") && (strcmp(key, "duration_s") || !(ban && on))) {
            json_decref(body);
            return s_bad(c, ban && on ? "unknown field: only \"node\", \"reason\" and \"duration_s\""
                                      : "unknown field: only \"node\" and \"reason\"");
        }
    }
    node = json_string_value(json_object_get(body, "node"));
    json_t *r = json_object_get(body, "reason");
    if (r && !json_is_string(r)) {
        json_decref(body);
        return s_bad(c, "\"reason\" must be a string");
    }
    if (r)
        reason = json_string_value(r);
    json_t *d = json_object_get(body, "duration_s");
    const json_int_t duration = d && json_is_integer(d) ? json_integer_value(d) : SW_BAN_DEFAULT_S;
    if (d && (!json_is_integer(d) || duration < 1 || duration > (json_int_t) SW_BAN_MAX_S)) {
        json_decref(body);
        return s_bad(c, "\"duration_s\" must be an integer from 1 to 34560000 (400 days)");
    }
    if (strlen(reason) > SW_BANS_REASON_MAX) {
        json_decref(body);
        return s_bad(c, "\"reason\" is longer than 200 bytes");
    }
    char err[512] = "";
    const int rc = ban && h->cfg.ban_outbox
                       ? sw_ban_outbox_ban(h->cfg.ban_outbox, h->cfg.bans, node, on, (uint64_t) duration, reason, err,
                                           sizeof err)
                       : sw_bans_set(h->cfg.bans, node, ban, on, reason, err, sizeof err);
    if (rc < 0) {
        json_decref(body);
        const bool bad_id = strstr(err, "node id") != NULL;
        return sw__http_error(c, bad_id ? 400 : 500, bad_id ? "invalid_request_error" : "server_error", err, NULL);
    }
    sw_log(SW_LOG_INFO, "http: admin at %s: %s%s node %.64s%s%s%.200s", rq->ip, on ? "" : "un",
           ban ? "banned" : "drained", node, rc == 0 ? " (already so)" : "", on && reason[0] ? ": " : "",
           on ? reason : "");
    json_t *o = json_pack("{s:s, s:b, s:b, s:b}", "node", node, "banned", sw_bans_banned(h->cfg.bans, node),
                          "drained", sw_bans_drained(h->cfg.bans, node), "changed", rc == 1);
    json_decref(body);
    return s_json(c, 200, o);
}

/* The limits an operator may change, with the command line's ranges. */
static const struct {
    const char *name;
    double lo, hi;
} s_limits[] = {
    {"rate", 1, 100000},                   /* --http-rate: requests per second per address (burst 2x) */
    {"token_rate", 1, 10000000},           /* --http-token-rate: tokens per second per address */
    {"read_rate", 1, 100000},              /* --http-read-rate: /metrics and /api/swarm per second */
    {"max_concurrent", 1, 10000},          /* --http-max-concurrent */
    {"max_concurrent_per_addr", 1, 10000}, /* --http-max-concurrent-per-addr */
};
enum { S_N_LIMITS = sizeof s_limits / sizeof s_limits[0] };

/* The limits now, under mu. */
static json_t *s_limits_json(sw_http_t *h)
{
    return json_pack("{s:f, s:f, s:f, s:i, s:i}", "rate", h->cfg.rate_rps, "token_rate", h->cfg.token_rate,
                     "read_rate", h->cfg.read_rate, "max_concurrent", h->cfg.max_concurrent,
                     "max_concurrent_per_addr", h->cfg.max_concurrent_per_addr);
}

/* POST /admin/limits: any of s_limits; all checked before any applies. */
static enum MHD_Result s_set_limits(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq)
{
    json_error_t je;
    json_t *body = rq->body ? json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!body || !json_is_object(body) || json_object_size(body) == 0) {
        json_decref(body);
        return s_bad(c, "expected a JSON object of limits: rate, token_rate, read_rate, max_concurrent, "
                        "max_concurrent_per_addr");
    }
    double val[S_N_LIMITS];
    bool set[S_N_LIMITS] = {0};
    const char *key;
    json_t *v;
    char msg[256];
    json_object_foreach(body, key, v) {
        int i = 0;
        while (i < S_N_LIMITS && strcmp(key, s_limits[i].name))
            i++;
        if (i == S_N_LIMITS) {
            snprintf(msg, sizeof msg, "unknown limit \"%.64s\"", key);
            json_decref(body);
            return s_bad(c, msg);
        }
        const double x = json_is_number(v) ? json_number_value(v) : -1;
        const bool integral = i < 3 || (json_is_integer(v) || x == (double) (long long) x);
        if (!json_is_number(v) || !(x >= s_limits[i].lo && x <= s_limits[i].hi) || !integral) {
            snprintf(msg, sizeof msg, "%s must be a%s number from %g to %g", s_limits[i].name, i < 3 ? "" : "n integer",
                     s_limits[i].lo, s_limits[i].hi);
            json_decref(body);
            return s_bad(c, msg);
        }
        val[i] = x, set[i] = true;
    }
    json_decref(body);
    char err[256] = "";
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    const double rate = set[0] ? val[0] : h->cfg.rate_rps, token_rate = set[1] ? val[1] : h->cfg.token_rate;
    const double read_rate = set[2] ? val[2] : h->cfg.read_rate;
    const double gen_burst = 60 * token_rate > h->cfg.max_tokens ? 60 * token_rate : h->cfg.max_tokens;
    for (int k = 0; k < 2; k++) { /* per address and per key (a key's boost scales its costs, not the meters) */
        sw_fairuse_t *f = k ? h->fair_keys : h->fair;
        rc |= sw_fairuse_set_meter(f, SW__HTTP_METER_REQ, (sw_fairuse_meter_t){rate, 2 * rate}, err, sizeof err);
        rc |= sw_fairuse_set_meter(f, SW__HTTP_METER_GEN, (sw_fairuse_meter_t){token_rate, gen_burst}, err,
                                   sizeof err);
        rc |= sw_fairuse_set_meter(f, SW__HTTP_METER_READ, (sw_fairuse_meter_t){read_rate, 2 * read_rate}, err,
                                   sizeof err);
    }
    h->cfg.rate_rps = rate, h->cfg.token_rate = token_rate, h->cfg.read_rate = read_rate;
    if (set[3])
        h->cfg.max_concurrent = (int) val[3];
    if (set[4])
        h->cfg.max_concurrent_per_addr = (int) val[4];
    json_t *o = s_limits_json(h);
    pthread_mutex_unlock(&h->mu);
    if (rc != 0) { /* checked above: cannot happen */
        json_decref(o);
        return sw__http_error(c, 500, "server_error", err, NULL);
    }
    sw_log(SW_LOG_INFO, "http: admin at %s changed the fair-use limits", rq->ip);
    return s_json(c, 200, o);
}

enum MHD_Result sw__http_admin(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, const char *url,
                               const char *method)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!sw_admin_token_check(h->admin_token, auth))
        return s_unauthorized(h, c, rq, auth != NULL);
    const bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    static const struct {
        const char *url;
        bool ban, on;
    } flags[] = {{"/admin/ban", true, true}, {"/admin/unban", true, false},
                 {"/admin/drain", false, true}, {"/admin/undrain", false, false}};
    if (!strcmp(url, "/admin/limits")) {
        if (post)
            return s_set_limits(h, c, rq);
        if (!get)
            return sw__http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
        pthread_mutex_lock(&h->mu);
        json_t *o = s_limits_json(h);
        pthread_mutex_unlock(&h->mu);
        return s_json(c, 200, o);
    }
    if (!h->cfg.bans)
        return sw__http_error(c, 404, "invalid_request_error", "no such endpoint", NULL);
    if (!strcmp(url, "/admin/nodes"))
        return get ? s_nodes(h, c) : sw__http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strcmp(url, flags[i].url))
            return post ? s_flag(h, c, rq, flags[i].ban, flags[i].on)
                        : sw__http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    return sw__http_error(c, 404, "invalid_request_error", "no such endpoint", NULL);
}
