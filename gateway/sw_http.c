/*  sw_http.c: OpenAI-compatible HTTP API over the gateway RPC (see sw_http.h). */
#include "sw_http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common.pb-c.h"
#include "sw_bans.h"
#include "sw_chat.h"
#include "sw_client.h"
#include "sw_common.h"
#include "sw_fairuse.h"
#include "sw_http_internal.h"
#include "sw_http_metrics.h"
#include "sw_http_static.h"
#include "sw_http_models.h"
#include "sw_http_swarm.h"
#include "sw_openai.h"

#define S_KEYS 4096      /* keys with an API token the fair-use table of keys tracks at once */
#define S_SNAPSHOT_S 0.5 /* the swarm snapshot (/api/swarm, /metrics) is asked of the gateway at most this often */

double sw__http_now(void) { return sw_now_ns() / 1e9; }

/* ---- responses ---------------------------------------------------------------- */

enum MHD_Result sw__http_send_with(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                                   const char *header, const char *value)
{
    if (!text) /* out of memory: no answer, the connection is closed */
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (header && value)
        MHD_add_response_header(r, header, value);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result sw__http_send(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                              const char *retry_after)
{
    return sw__http_send_with(c, status, type, text, "Retry-After", retry_after);
}

/* An error in OpenAI's shape {"error": {"message", "type", "code": null}}. */
enum MHD_Result sw__http_error(struct MHD_Connection *c, unsigned status, const char *type, const char *msg,
                               const char *retry_after)
{
    return sw__http_send(c, status, "application/json", sw_openai_error_json(type, msg, NULL), retry_after);
}

enum MHD_Result sw__http_error_with(struct MHD_Connection *c, unsigned status, const char *type, const char *msg,
                                    const char *header, const char *value)
{
    return sw__http_send_with(c, status, "application/json", sw_openai_error_json(type, msg, NULL), header, value);
}

static enum MHD_Result s_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) /* out of memory (or a string of the gateway's that is not UTF-8) */
        return sw__http_error(c, 500, "server_error", "cannot build the response", NULL);
    return sw__http_send(c, status, "application/json", text, NULL);
}

/* The status of a failed call to the gateway, by its result code (sw_client.h:
 * a swisd.v1.ErrorCode or a client-side code). The one place that picks it. */
static const struct {
    int code;
    unsigned status;
    const char *type;        /* OpenAI's error type */
    const char *retry_after; /* seconds, or NULL */
} s_statuses[] = {
    {SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, 400, "invalid_request_error", NULL},
    {SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED, 403, "permission_error", NULL},
    {SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, 503, "server_busy", "1"},
    {SWISD__V1__ERROR_CODE__ERROR_NO_ROUTE, 503, "server_error", "5"},
    {SWISD__V1__ERROR_CODE__ERROR_CANCELLED, 503, "server_error", "1"},
    {SW_CLIENT_STOPPED, 503, "server_error", "1"}, /* the server is stopping */
    {SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, 502, "server_error", NULL},
    {SW_CLIENT_BAD_REPLY, 502, "server_error", NULL},
    {SWISD__V1__ERROR_CODE__ERROR_BAD_SEAL, 502, "server_error", NULL}, /* a stage's activation did not open */
    {SWISD__V1__ERROR_CODE__ERROR_DEADLINE_EXCEEDED, 504, "server_error", NULL},
    {SW_CLIENT_TIMEOUT, 504, "server_error", NULL},
    /* anything else (INTERNAL, BAD_FRAME, KV_MISSING, LOCAL, ...): 500 server_error */
};

static size_t s_status_of(int code)
{
    for (size_t i = 0; i < sizeof s_statuses / sizeof s_statuses[0]; i++)
        if (s_statuses[i].code == code)
            return i;
    return (size_t) -1;
}

/* The code's name for the error's "code" field: "no_route", "timeout". */
static void s_code_name(int code, char out[32])
{
    snprintf(out, 32, "%s", sw_client_code_name(code));
    for (char *p = out; *p; p++)
        *p = (char) (*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
}

char *sw__http_call_error_json(int code, const char *msg)
{
    const size_t i = s_status_of(code);
    char name[32];
    s_code_name(code, name);
    return sw_openai_error_json(i == (size_t) -1 ? "server_error" : s_statuses[i].type, msg, name);
}

/* Answers a failed gateway call: status, type and Retry-After from code. */
enum MHD_Result sw__http_call_error(struct MHD_Connection *c, int code, const char *msg)
{
    const size_t i = s_status_of(code);
    return sw__http_send(c, i == (size_t) -1 ? 500 : s_statuses[i].status, "application/json",
                         sw__http_call_error_json(code, msg), i == (size_t) -1 ? NULL : s_statuses[i].retry_after);
}

/* ---- the client's address and fair use ------------------------------------------------ */

/* The client's address as text ("?" if unknown) and as a fair-use key. */
static void s_client_addr(struct MHD_Connection *c, char ip[64], sw_fairuse_addr_t *key)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(ip, 64, "?");
    memset(key, 0, sizeof *key);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct in_addr *a = &((const struct sockaddr_in *) sa)->sin_addr;
        inet_ntop(AF_INET, a, ip, 64);
        memcpy(key->bytes, a, 4);
        key->len = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;
        inet_ntop(AF_INET6, a, ip, 64);
        memcpy(key->bytes, a, 16);
        key->len = 16;
    }
}

typedef enum { S_KIND_REQUEST, S_KIND_GENERATE, S_KIND_READ } s_kind_t;

/* Takes a request of `kind` from the client's meters (its key's, scaled by
 * its boost, or its address's). Returns true when it may go on; otherwise
 * queues the refusal (429 with Retry-After, or 503 when the table of
 * addresses is full) in *res. */
bool sw__http_admit(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, int kind, enum MHD_Result *res)
{
    static const double need1[3][SW__HTTP_N_METERS] = {{1, 0, 0}, {1, 1, 0}, {0, 0, 1}};
    static const double cost1[3][SW__HTTP_N_METERS] = {{1, 0, 0}, {1, 0, 0}, {0, 0, 1}};
    double need[SW__HTTP_N_METERS], cost[SW__HTTP_N_METERS];
    for (int m = 0; m < SW__HTTP_N_METERS; m++)
        need[m] = need1[kind][m] * rq->scale, cost[m] = cost1[kind][m] * rq->scale;
    double wait = 0;
    bool tokens_short = false;
    sw_fairuse_t *fair = sw__http_fair(h, rq);
    pthread_mutex_lock(&h->mu);
    const double now = sw__http_now();
    const sw_fairuse_result_t r = sw_fairuse_take(fair, &rq->meter_key, need, cost, 0, now, &wait);
    if (r == SW_FAIRUSE_WAIT) {
        h->n.rate_limited++;
        tokens_short = kind == S_KIND_GENERATE &&
                       sw_fairuse_level(fair, &rq->meter_key, SW__HTTP_METER_REQ, now) >= need[0];
    } else if (r != SW_FAIRUSE_OK) {
        h->n.busy_rejected++;
    }
    pthread_mutex_unlock(&h->mu);
    if (r == SW_FAIRUSE_OK)
        return true;
    if (r == SW_FAIRUSE_FULL) {
        *res = sw__http_error(c, 503, "server_busy", "this server tracks too many client addresses; try again shortly", "1");
        return false;
    }
    char ra[24];
    snprintf(ra, sizeof ra, "%.0f", wait < 1 ? 1 : wait + 0.999);
    const char *who = rq->keyed ? "this key" : "this address";
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s%s", tokens_short ? "too many generated tokens from"
                                         : kind == S_KIND_READ ? "too many requests of /metrics and /api/ from"
                                                               : "too many requests from",
             who, tokens_short ? "; wait for Retry-After" : "");
    *res = sw__http_error(c, 429, "rate_limit_exceeded", msg, ra);
    return false;
}

/* ---- request framing ------------------------------------------------------------------ */

typedef struct {
    int n_length, n_encoding; /* Content-Length and Transfer-Encoding headers */
    const char *encoding;     /* the (last) Transfer-Encoding value */
} s_framing_t;

static enum MHD_Result s_count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    s_framing_t *f = cls;
    if (key && !strcasecmp(key, "Content-Length"))
        f->n_length++;
    else if (key && !strcasecmp(key, "Transfer-Encoding"))
        f->n_encoding++, f->encoding = value;
    return MHD_YES;
}

/* Why the request's body framing is ambiguous (RFC 9112 section 6.3), or
 * NULL. libmicrohttpd 0.9.75 takes the first of several Content-Length
 * headers and reads the rest of the body as the next request: behind a proxy
 * that takes another one, that smuggles a request past it. */
static const char *s_framing_error(struct MHD_Connection *c)
{
    s_framing_t f = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, s_count_header, &f);
    if (f.n_length > 1)
        return "more than one Content-Length header";
    if (f.n_encoding > 1)
        return "more than one Transfer-Encoding header";
    if (f.n_encoding && f.n_length)
        return "both Content-Length and Transfer-Encoding";
    if (f.n_encoding && strcasecmp(f.encoding ? f.encoding : "", "chunked"))
        return "the only Transfer-Encoding accepted is chunked";
    return NULL;
}

/* A gateway call's stop callback: the server stops. */
static int s_server_stop(void *user) { return atomic_load(&((sw_http_t *) user)->stopping); }

static enum MHD_Result s_models(sw_http_t *h, struct MHD_Connection *c)
{
    char err[512], id[129] = "", gaps[256] = "";
    bool servable = false;
    int code = SW_CLIENT_LOCAL;
    sw_client_t *cl = sw_client_new_keyed(h->rpc, h->cfg.identity, err, sizeof err);
    if (cl)
        sw_client_set_stop(cl, s_server_stop, h, SW__HTTP_STOP_CHECK_MS);
    int rc = cl ? sw_client_list_models(cl, id, sizeof id, &servable, gaps, sizeof gaps, 5000, &code, err, sizeof err)
                : -1;
    sw_client_destroy(&cl);
    pthread_mutex_lock(&h->mu);
    h->n.calls[SW_HTTP_CALL_MODELS]++;
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        return sw__http_call_error(c, code, err);
    json_t *m = json_pack("{s:s, s:s, s:i, s:s, s:b, s:s}", "id", id, "object", "model", "created", 0, "owned_by",
                          "swisd", "servable", servable, "missing_layers", gaps);
    return s_json(c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

/* ---- the swarm: /api/swarm and /metrics ------------------------------------------------ */

/* The swarm snapshot as text: the dashboard's JSON and the /metrics part. */
typedef struct {
    char *json, *metrics; /* NULL when out of memory */
} s_snap_ctx_t;

static void s_snap_fill(const sw_client_swarm_t *w, void *user)
{
    s_snap_ctx_t *x = user;
    x->json = sw_http_swarm_json(w);
    x->metrics = sw_http_metrics_swarm(w);
}

/* Copies of the swarm snapshot: the swarm part of /api/swarm (json, JSON
 * text) and of /metrics (metrics, Prometheus text); either may be NULL. The
 * gateway is asked at most every S_SNAPSHOT_S, by one thread at a time while
 * the others wait for its answer, so any number of viewers costs the gateway
 * at most 1 / S_SNAPSHOT_S calls per second (a failure is kept as long).
 * Returns 0, or -1 with *code and err (SW_CLIENT_LOCAL: out of memory).
 * Caller frees the copies. */
static int s_snapshot(sw_http_t *h, char **json, char **metrics, int *code, char *err, size_t errlen)
{
    if (json)
        *json = NULL;
    if (metrics)
        *metrics = NULL;
    pthread_mutex_lock(&h->mu);
    while (h->snap_busy)
        pthread_cond_wait(&h->snap_cv, &h->mu);
    double now = sw__http_now();
    const bool fresh = h->snap_at > 0 && now - h->snap_at < S_SNAPSHOT_S;
    const bool failed_now = h->snap_failed_at > h->snap_at && now - h->snap_failed_at < S_SNAPSHOT_S;
    if (!fresh && !failed_now) {
        h->snap_busy = true;
        pthread_mutex_unlock(&h->mu);
        s_snap_ctx_t x = {0};
        int rc_code = SW_CLIENT_LOCAL;
        char why[256] = "out of memory";
        sw_client_t *cl = sw_client_new_keyed(h->rpc, h->cfg.identity, why, sizeof why);
        if (cl)
            sw_client_set_stop(cl, s_server_stop, h, SW__HTTP_STOP_CHECK_MS);
        int rc = cl ? sw_client_swarm(cl, s_snap_fill, &x, 3000, &rc_code, why, sizeof why) : -1;
        sw_client_destroy(&cl);
        if (rc == 0 && (!x.json || !x.metrics)) {
            rc = -1;
            rc_code = SW_CLIENT_LOCAL;
            snprintf(why, sizeof why, "out of memory in the HTTP server");
        }
        pthread_mutex_lock(&h->mu);
        h->n.calls[SW_HTTP_CALL_SWARM]++;
        now = sw__http_now();
        if (rc == 0) {
            free(h->snap_json);
            free(h->snap_metrics);
            h->snap_json = x.json;
            h->snap_metrics = x.metrics;
            h->snap_at = now;
        } else {
            free(x.json);
            free(x.metrics);
            h->snap_failed_at = now;
            h->snap_code = rc_code;
            snprintf(err, errlen, "%s", why);
        }
        h->snap_busy = false;
        pthread_cond_broadcast(&h->snap_cv);
    }
    int rc = -1;
    if (h->snap_at > 0 && h->snap_at >= h->snap_failed_at) {
        if (json)
            *json = strdup(h->snap_json);
        if (metrics)
            *metrics = strdup(h->snap_metrics);
        rc = 0;
        if ((json && !*json) || (metrics && !*metrics)) {
            if (json)
                free(*json), *json = NULL;
            if (metrics)
                free(*metrics), *metrics = NULL;
            *code = SW_CLIENT_LOCAL;
            snprintf(err, errlen, "out of memory in the HTTP server");
            rc = -1;
        }
    } else {
        *code = h->snap_code;
        if (!fresh && failed_now)
            snprintf(err, errlen, "the gateway did not answer");
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* GET /metrics: Prometheus text exposition format, version 0.0.4: the HTTP
 * front's counters, then the swarm part (left out while the gateway does not
 * answer; the counters are still worth scraping). */
static enum MHD_Result s_metrics(sw_http_t *h, struct MHD_Connection *c)
{
    char *swarm = NULL, err[256];
    int code = 0;
    s_snapshot(h, NULL, &swarm, &code, err, sizeof err);
    pthread_mutex_lock(&h->mu);
    h->n.clients_tracked = sw_fairuse_size(h->fair);
    const sw_http_counters_t n = h->n;
    pthread_mutex_unlock(&h->mu);
    char *text = sw_http_metrics_text(&n, swarm);
    free(swarm);
    if (!text)
        return sw__http_error(c, 500, "server_error", "out of memory in the HTTP server", NULL);
    return sw__http_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, NULL);
}

/* GET /api/swarm: the swarm part from the shared snapshot; counters and the
 * HTTP API's own numbers are current. */
static enum MHD_Result s_swarm(sw_http_t *h, struct MHD_Connection *c)
{
    char *text = NULL, err[256] = "";
    int code = 0;
    if (s_snapshot(h, &text, NULL, &code, err, sizeof err) != 0)
        return sw__http_call_error(c, code, err[0] ? err : "the gateway did not answer");
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    if (!o)
        return sw__http_error(c, 500, "server_error", "cannot build the response", NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_object_set_new(o, "time_ms", json_real(ts.tv_sec * 1e3 + ts.tv_nsec / 1e6));
    json_object_set_new(o, "chat_format", json_string(sw_chat_format_name((sw_chat_format_t) h->cfg.chat_format)));
    /* counters: completions and tokens of every client of the gateway; the rest of HTTP */
    json_t *tot = json_object_get(o, "gateway_totals");
    const json_int_t completions = json_integer_value(json_object_get(tot, "completions"));
    const json_int_t tokens = json_integer_value(json_object_get(tot, "tokens"));
    pthread_mutex_lock(&h->mu);
    json_object_set_new(o, "counters",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "requests", (json_int_t) h->n.requests,
                                  "completions", completions, "tokens", tokens, "failed", (json_int_t) h->n.failed,
                                  "rate_limited", (json_int_t) h->n.rate_limited, "busy_rejected",
                                  (json_int_t) h->n.busy_rejected, "active_generations", (json_int_t) h->n.active,
                                  "abandoned", (json_int_t) h->n.abandoned));
    pthread_mutex_unlock(&h->mu);
    json_object_del(o, "gateway_totals");
    if (h->cfg.bans) { /* the operator's word on each stage, for the dashboard */
        size_t i;
        json_t *st;
        json_array_foreach(json_object_get(o, "stages"), i, st) {
            const char *id = json_string_value(json_object_get(st, "node_id"));
            json_object_set_new(st, "banned", json_boolean(sw_bans_banned(h->cfg.bans, id)));
            json_object_set_new(st, "drained", json_boolean(sw_bans_drained(h->cfg.bans, id)));
        }
    }
    return s_json(c, 200, o);
}

/* Queues a file's response r (NULL: none, with status 404 for a missing file,
 * anything else for one that would not open) with its status; frees r. */
static enum MHD_Result s_queue_file(struct MHD_Connection *c, struct MHD_Response *r, unsigned status)
{
    if (!r)
        return status == 404 ? sw__http_error(c, 404, "invalid_request_error", "no such file", NULL)
                             : sw__http_error(c, 500, "server_error", "cannot open the file", NULL);
    const enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* GET of anything else: a file of the dashboard (sw_http_static). */
static enum MHD_Result s_static(sw_http_t *h, struct MHD_Connection *c, const char *url)
{
    unsigned status = 404;
    struct MHD_Response *r = sw_http_static_response(h->web_dir, url, &status); /* sets status first */
    return s_queue_file(c, r, status);
}

/* GET or HEAD under /models/: the manifest and the GGUF with byte ranges (sw_http_models). */
static enum MHD_Result s_models_file(sw_http_t *h, struct MHD_Connection *c, const char *url, bool get)
{
    if (!get)
        return sw__http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    unsigned status = 404;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    struct MHD_Response *r = sw_http_models_response(h->cfg.models, url, range, &status);
    return s_queue_file(c, r, status);
}

/* ---- the server ------------------------------------------------------------------ */

static enum MHD_Result s_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) version;
    sw_http_t *h = cls;
    sw__http_req_t *rq = *con_cls;
    if (!rq) { /* the headers are in, the body is not */
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        *con_cls = rq;
        s_client_addr(c, rq->ip, &rq->addr);
        rq->meter_key = rq->addr; /* anonymous until a valid API token says otherwise */
        rq->scale = 1;
        const char *bad = s_framing_error(c);
        if (!bad)
            return MHD_YES;
        pthread_mutex_lock(&h->mu);
        h->n.bad_framing++;
        pthread_mutex_unlock(&h->mu);
        /* answered before the body: MHD reads no further request from this connection */
        return sw__http_error_with(c, 400, "invalid_request_error", bad, "Connection", "close");
    }
    if (*upload_size) {
        if (!rq->too_big && rq->len + *upload_size <= h->cfg.max_body) {
            char *b = rq->oom ? NULL : realloc(rq->body, rq->len + *upload_size + 1);
            if (b) {
                memcpy(b + rq->len, upload, *upload_size);
                rq->body = b;
                rq->len += *upload_size;
                rq->body[rq->len] = 0;
            } else {
                rq->oom = true; /* answered 500 below: never a body with a piece missing */
            }
        } else {
            rq->too_big = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&h->mu);
    h->n.requests++;
    pthread_mutex_unlock(&h->mu);
    const bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    enum MHD_Result res;
    if (!strcmp(url, "/healthz"))
        return sw__http_send(c, 200, "text/plain", strdup("ok\n"), NULL);
    if (!strncmp(url, "/models/", 8) && h->cfg.models) /* the published model (sw_http_models.h) */
        return s_models_file(h, c, url, get);
    const bool api = !strncmp(url, "/v1/", 4) || !strncmp(url, "/api/", 5) || !strcmp(url, "/metrics");
    if (api && !sw__http_bearer(h, c, rq, &res)) /* an API token: per key; a bad one: 401 */
        return res;
    const bool credits = !strcmp(url, "/api/credits") && h->cfg.reputation;
    if (!strcmp(url, "/metrics") || !strcmp(url, "/api/swarm") || credits) {
        if (!get)
            return sw__http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
        if (!sw__http_admit(h, c, rq, S_KIND_READ, &res))
            return res;
        return url[1] == 'm' ? s_metrics(h, c) : credits ? sw__http_credits(h, c) : s_swarm(h, c);
    }
    if (!strcmp(url, "/admin") || !strncmp(url, "/admin/", 7)) {
        if (!h->admin_token[0]) /* no token configured: there are no admin endpoints, as for any unknown path */
            return sw__http_error(c, 404, "invalid_request_error", "no such endpoint", NULL);
        if (!sw__http_admit(h, c, rq, S_KIND_REQUEST, &res))
            return res;
        if (rq->too_big)
            return sw__http_error(c, 413, "invalid_request_error", "the body is too large", NULL);
        if (rq->oom)
            return sw__http_error(c, 500, "server_error", "out of memory in the HTTP server", NULL);
        return sw__http_admin(h, c, rq, url, method);
    }
    const bool completions = !strcmp(url, "/v1/completions"), chat = !strcmp(url, "/v1/chat/completions");
    const bool models = !strcmp(url, "/v1/models");
    if (!completions && !chat && !models) {
        if (!strncmp(url, "/v1/", 4) || !strncmp(url, "/api/", 5))
            return sw__http_error(c, 404, "invalid_request_error", "no such endpoint", NULL);
        return get ? s_static(h, c, url) : sw__http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    }
    if ((completions || chat) ? !post : !get)
        return sw__http_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    if (!sw__http_admit(h, c, rq, completions || chat ? S_KIND_GENERATE : S_KIND_REQUEST, &res))
        return res;
    if (rq->too_big)
        return sw__http_error(c, 413, "invalid_request_error", "the body is too large", NULL);
    if (rq->oom)
        return sw__http_error(c, 500, "server_error", "out of memory in the HTTP server", NULL);
    if (models)
        return s_models(h, c);
    return sw__http_generate(h, c, rq, chat);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void) cls, (void) c, (void) t;
    sw__http_req_t *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

sw_http_t *sw_http_new(const sw_http_config_t *cfg, char *err, size_t errlen)
{
    const char *colon = cfg->addr ? strrchr(cfg->addr, ':') : NULL;
    char host[64] = "";
    long port = colon ? strtol(colon + 1, NULL, 10) : -1;
    if (!colon || port < 0 || port > 65535 || (size_t) (colon - cfg->addr) >= sizeof host) {
        sw_err(err, errlen, "--http: expected ADDR:PORT, got '%s'", cfg->addr ? cfg->addr : "");
        return NULL;
    }
    memcpy(host, cfg->addr, (size_t) (colon - cfg->addr));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (host[0] && inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        sw_err(err, errlen, "--http: '%s' is not an IPv4 address", host);
        return NULL;
    }
    sw_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = *cfg;
    h->cfg.tls_cert_pem = h->cfg.tls_key_pem = h->cfg.admin_token = NULL; /* not kept */
    if (cfg->admin_token && strlen(cfg->admin_token) >= sizeof h->admin_token) {
        sw_err(err, errlen, "the admin token is too long");
        free(h);
        return NULL;
    }
    snprintf(h->admin_token, sizeof h->admin_token, "%s", cfg->admin_token ? cfg->admin_token : "");
    snprintf(h->rpc, sizeof h->rpc, "%s", cfg->rpc);
    snprintf(h->model_id, sizeof h->model_id, "%s", cfg->model_id ? cfg->model_id : "");
    if (h->cfg.max_body == 0) h->cfg.max_body = 1u << 20;
    if (h->cfg.max_tokens == 0) h->cfg.max_tokens = 2048;
    if (h->cfg.max_concurrent <= 0) h->cfg.max_concurrent = 16;
    if (h->cfg.max_concurrent_per_addr <= 0) h->cfg.max_concurrent_per_addr = 4;
    if (h->cfg.rate_rps <= 0) h->cfg.rate_rps = 5;
    if (h->cfg.read_rate <= 0) h->cfg.read_rate = 10;
    if (h->cfg.timeout_ms <= 0) h->cfg.timeout_ms = 60000;
    if (h->cfg.token_rate <= 0) h->cfg.token_rate = 50;
    if (h->cfg.max_conn <= 0) h->cfg.max_conn = 256;
    if (h->cfg.max_conn_per_addr <= 0) h->cfg.max_conn_per_addr = 16;
    if (h->cfg.idle_timeout_s <= 0) h->cfg.idle_timeout_s = 15;
    if (h->cfg.max_addrs == 0) h->cfg.max_addrs = 65536;
    if (!(h->cfg.credit_boost > 0)) h->cfg.credit_boost = 0;
    if (!(h->cfg.credit_full > 0)) h->cfg.credit_full = 1000;
    h->keepalive_ms = h->cfg.idle_timeout_s * 1000 / 3;
    if (cfg->web_dir && cfg->web_dir[0]) {
        if (sw_http_static_check(cfg->web_dir, err, errlen) != 0) {
            free(h);
            return NULL;
        }
        snprintf(h->web_dir, sizeof h->web_dir, "%s", cfg->web_dir);
    }
    /* fair use: requests (burst 2 s worth), generated tokens (burst 60 s worth and at least max_tokens), reads
     * of /metrics and /api/swarm (burst 2 s worth) */
    const double gen_burst = 60 * h->cfg.token_rate > h->cfg.max_tokens ? 60 * h->cfg.token_rate : h->cfg.max_tokens;
    sw_fairuse_config_t fc = {.capacity = h->cfg.max_addrs, .n_meters = SW__HTTP_N_METERS};
    fc.meters[SW__HTTP_METER_REQ] = (sw_fairuse_meter_t){h->cfg.rate_rps, 2 * h->cfg.rate_rps};
    fc.meters[SW__HTTP_METER_GEN] = (sw_fairuse_meter_t){h->cfg.token_rate, gen_burst};
    fc.meters[SW__HTTP_METER_READ] = (sw_fairuse_meter_t){h->cfg.read_rate, 2 * h->cfg.read_rate};
    if (getrandom(&fc.seed, sizeof fc.seed, 0) != (ssize_t) sizeof fc.seed)
        fc.seed = sw_now_ns() ^ ((uint64_t) getpid() << 32);
    if (!(h->fair = sw_fairuse_new(&fc, err, errlen))) {
        free(h);
        return NULL;
    }
    fc.capacity = S_KEYS; /* keys with a token: the same meters, each cost scaled by the key's boost */
    fc.seed ^= 0x9e3779b97f4a7c15ull;
    if (!(h->fair_keys = sw_fairuse_new(&fc, err, errlen))) {
        sw_fairuse_destroy(&h->fair);
        sw_fairuse_destroy(&h->fair_keys);
        free(h);
        return NULL;
    }
    atomic_init(&h->stopping, false);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->snap_cv, NULL);
    /* thread per connection: a handler may block (a generation, the first token of a stream); the idle
     * time-out counts from a connection's last byte in either direction (libmicrohttpd's semantics) */
    const bool tls = cfg->tls_cert_pem && cfg->tls_key_pem;
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        sw_err(err, errlen, "HTTPS: this libmicrohttpd was built without TLS");
        sw_fairuse_destroy(&h->fair);
        sw_fairuse_destroy(&h->fair_keys);
        pthread_cond_destroy(&h->snap_cv);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    /* TLS: the PEM texts, or no options (MHD_OPTION_ARRAY with an empty list) */
    struct MHD_OptionItem tls_opts[] = {
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *) cfg->tls_cert_pem},
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *) cfg->tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | (tls ? MHD_USE_TLS : 0),
                            0, NULL, NULL, s_handler, h, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, s_completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned) h->cfg.idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned) h->cfg.max_conn,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) h->cfg.max_conn_per_addr, MHD_OPTION_END);
    if (!h->d) {
        sw_err(err, errlen, "cannot serve %s on %s (address in use?)", tls ? "HTTPS" : "HTTP", cfg->addr);
        sw_fairuse_destroy(&h->fair);
        sw_fairuse_destroy(&h->fair_keys);
        pthread_cond_destroy(&h->snap_cv);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (int) port;
    return h;
}

void sw_http_destroy(sw_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_http_t *h = *self_p;
    /* every waiting gateway call ends within SW__HTTP_STOP_CHECK_MS (and cancels its generation); MHD shuts every
     * connection's socket, which wakes the threads waiting on a client, then joins them */
    atomic_store(&h->stopping, true);
    MHD_stop_daemon(h->d);
    sw_fairuse_destroy(&h->fair);
    sw_fairuse_destroy(&h->fair_keys);
    pthread_cond_destroy(&h->snap_cv);
    pthread_mutex_destroy(&h->mu);
    free(h->snap_json);
    free(h->snap_metrics);
    explicit_bzero(h->admin_token, sizeof h->admin_token);
    free(h);
    *self_p = NULL;
}

int sw_http_port(const sw_http_t *self) { return self->port; }
