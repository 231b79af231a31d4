/*  sw_http.c: OpenAI-compatible HTTP API over the gateway RPC (see sw_http.h). */
#include "sw_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
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
#include "sw_chat.h"
#include "sw_client.h"
#include "sw_common.h"
#include "sw_fairuse.h"
#include "sw_http_metrics.h"
#include "sw_http_static.h"
#include "sw_http_swarm.h"
#include "sw_openai.h"

/* Fair-use meters of each client address (sw_fairuse). */
enum { S_METER_REQ, S_METER_GEN, S_METER_READ, S_N_METERS };

#define S_STOP_CHECK_MS 100     /* how often a waiting call asks whether its client left or the server stops */
#define S_SNAPSHOT_S 0.5        /* the swarm snapshot (/api/swarm, /metrics) is asked of the gateway at most this often */
#define S_PIPE_BYTES (1 << 20)  /* SSE text a streaming client may leave unread before its generation is stopped */

struct sw_http_t {
    sw_http_config_t cfg;
    char rpc[256], model_id[129];
    char web_dir[SW_HTTP_STATIC_MAX_DIR + 1]; /* "" when there is no dashboard */
    struct MHD_Daemon *d;
    int port;
    int keepalive_ms;              /* a stream with no token for this long gets an SSE comment (< the idle time-out) */
    atomic_bool stopping;          /* sw_http_destroy began: every waiting call ends */
    pthread_mutex_t mu;
    /* under mu: */
    sw_fairuse_t *fair;            /* per-address meters and generations in progress */
    sw_http_counters_t n;          /* counters for /metrics and /api/swarm; n.active: generations in progress */
    /* the swarm snapshot shared by /api/swarm and /metrics, under mu */
    char *snap_json;               /* the swarm part of /api/swarm, JSON text */
    char *snap_metrics;            /* the swarm part of /metrics, Prometheus text */
    double snap_at;                /* when it was made, s (monotonic); 0: never */
    double snap_failed_at;         /* when the last refresh failed, s */
    int snap_code;                 /* its result code */
    bool snap_busy;                /* a thread is asking the gateway; the others wait on snap_cv */
    pthread_cond_t snap_cv;
};

typedef struct {
    char *body;
    size_t len;
    bool too_big;
    bool oom;                 /* a piece of the body could not be stored */
    char ip[64];              /* the client's address as text */
    sw_fairuse_addr_t addr;   /* the same, as the fair-use key */
} s_req_t;

static double s_now(void) { return sw_now_ns() / 1e9; }

/* ---- responses ---------------------------------------------------------------- */

static enum MHD_Result s_send(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                              const char *retry_after)
{
    if (!text) /* out of memory: no answer, the connection is closed */
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* An error in OpenAI's shape {"error": {"message", "type", "code": null}}. */
static enum MHD_Result s_error(struct MHD_Connection *c, unsigned status, const char *type, const char *msg,
                               const char *retry_after)
{
    return s_send(c, status, "application/json", sw_openai_error_json(type, msg, NULL), retry_after);
}

static enum MHD_Result s_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) /* out of memory (or a string of the gateway's that is not UTF-8) */
        return s_error(c, 500, "server_error", "cannot build the response", NULL);
    return s_send(c, status, "application/json", text, NULL);
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

/* Answers a failed gateway call: status, type and Retry-After from code. */
static enum MHD_Result s_call_error(struct MHD_Connection *c, int code, const char *msg)
{
    const size_t i = s_status_of(code);
    char name[32];
    s_code_name(code, name);
    return s_send(c, i == (size_t) -1 ? 500 : s_statuses[i].status, "application/json",
                  sw_openai_error_json(i == (size_t) -1 ? "server_error" : s_statuses[i].type, msg, name),
                  i == (size_t) -1 ? NULL : s_statuses[i].retry_after);
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

/* Takes a request of `kind` from the client's meters. Returns true when it
 * may go on; otherwise queues the refusal (429 with Retry-After, or 503 when
 * the table of addresses is full) in *res. */
static bool s_admit(sw_http_t *h, struct MHD_Connection *c, const s_req_t *rq, s_kind_t kind, enum MHD_Result *res)
{
    static const double need[3][S_N_METERS] = {{1, 0, 0}, {1, 1, 0}, {0, 0, 1}};
    static const double cost[3][S_N_METERS] = {{1, 0, 0}, {1, 0, 0}, {0, 0, 1}};
    double wait = 0;
    bool tokens_short = false;
    pthread_mutex_lock(&h->mu);
    const double now = s_now();
    const sw_fairuse_result_t r = sw_fairuse_take(h->fair, &rq->addr, need[kind], cost[kind], 0, now, &wait);
    if (r == SW_FAIRUSE_WAIT) {
        h->n.rate_limited++;
        tokens_short = kind == S_KIND_GENERATE && sw_fairuse_level(h->fair, &rq->addr, S_METER_REQ, now) >= 1;
    } else if (r != SW_FAIRUSE_OK) {
        h->n.busy_rejected++;
    }
    pthread_mutex_unlock(&h->mu);
    if (r == SW_FAIRUSE_OK)
        return true;
    if (r == SW_FAIRUSE_FULL) {
        *res = s_error(c, 503, "server_busy", "this server tracks too many client addresses; try again shortly", "1");
        return false;
    }
    char ra[24];
    snprintf(ra, sizeof ra, "%.0f", wait < 1 ? 1 : wait + 0.999);
    *res = s_error(c, 429, "rate_limit_exceeded",
                   tokens_short ? "too many generated tokens from this address; wait for Retry-After"
                   : kind == S_KIND_READ ? "too many requests of /metrics and /api/swarm from this address"
                                         : "too many requests from this address",
                   ra);
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

/* ---- generation ------------------------------------------------------------------ */

typedef struct {
    sw_http_t *h;
    sw_openai_request_t *rq;              /* the checked request (owned) */
    char ip[64];
    sw_fairuse_addr_t addr;
    char id[40];
    long created;                         /* Unix seconds */
    int conn_fd;                          /* the client's socket (MHD's, borrowed), or -1 */
    atomic_bool gone;                     /* the client left (or its response was freed): stop the generation */
    bool oom;                             /* an allocation failed: the answer would be cut short, so it fails */
    uint32_t n_chunks;                    /* token chunks received (charged when the generation is cut short) */
    /* non-streaming: the text */
    char *text;
    size_t len, cap;
    /* streaming: a pipe from the producer thread (SSE text) to MHD's reader of the response */
    int fd_read, fd_write;
    bool wrote;                           /* the producer wrote to the pipe */
    char held[4];                         /* the start of a UTF-8 character a token split, sent with the next text */
    size_t n_held;                        /* bytes in held, <= 3 */
    pthread_t thread;
    bool thread_started;
    sw_client_summary_t sum;
    int code;                             /* result code of the generation (sw_client.h), 0: done */
    char err[1200];
} s_gen_t;

static void s_gen_free(s_gen_t *g)
{
    if (!g)
        return;
    if (g->fd_read >= 0)
        close(g->fd_read);
    if (g->fd_write >= 0)
        close(g->fd_write);
    sw_openai_request_destroy(&g->rq);
    free(g->text);
    free(g);
}

/* Appends a chunk to the non-streaming text. Returns 0, or -1 when out of
 * memory (the generation must then fail, not answer part of the text). */
static int s_append(s_gen_t *g, const char *t, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        const size_t cap = (g->cap + n + 64) * 2;
        char *p = realloc(g->text, cap);
        if (!p)
            return -1;
        g->text = p;
        g->cap = cap;
    }
    memcpy(g->text + g->len, t, n);
    g->len += n;
    g->text[g->len] = 0;
    return 0;
}

/* Whether the peer of socket fd hung up (or half-closed: a client that
 * shuts its sending side after the request counts as gone). */
static bool s_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Writes SSE text to the pipe. A closed response (EPIPE) or a client that
 * left S_PIPE_BYTES unread (EAGAIN) marks the client gone. Returns 0 or -1. */
static int s_emit(s_gen_t *g, const char *p, size_t n)
{
    while (n) {
        const ssize_t w = write(g->fd_write, p, n);
        if (w > 0) {
            p += w, n -= (size_t) w;
            g->wrote = true;
        } else if (!(w < 0 && errno == EINTR)) {
            atomic_store(&g->gone, true);
            return -1;
        }
    }
    return 0;
}

/* One SSE event "data: JSON\n\n" of a chunk of text (or the final
 * finish_reason with the seed). Returns 0, or -1 when the client is gone or
 * memory ran out (g->oom: the stream then ends with an error event). */
static int s_sse(s_gen_t *g, const char *text, size_t len, const char *finish)
{
    const uint64_t seed = g->sum.seed;
    char *body = sw_openai_chunk_json(g->rq->chat, g->id, g->created, g->h->model_id, text, len, finish,
                                      finish ? &seed : NULL);
    const size_t n = body ? strlen(body) : 0;
    char *ev = body ? malloc(n + 9) : NULL;
    int rc = -1;
    if (ev) {
        memcpy(ev, "data: ", 6);
        memcpy(ev + 6, body, n);
        memcpy(ev + 6 + n, "\n\n", 3);
        rc = s_emit(g, ev, n + 8);
    } else {
        g->oom = true;
    }
    free(ev);
    free(body);
    return rc;
}

/* Streams a chunk of text, holding back a UTF-8 character it ends in the
 * middle of until the next chunk completes it. Returns 0 or -1 (s_sse). */
static int s_sse_text(s_gen_t *g, const char *text, size_t len)
{
    if (len > SIZE_MAX - sizeof g->held) {
        g->oom = true;
        return -1;
    }
    char *buf = malloc(g->n_held + len + 1);
    if (!buf) {
        g->oom = true;
        return -1;
    }
    memcpy(buf, g->held, g->n_held);
    memcpy(buf + g->n_held, text, len);
    const size_t n = g->n_held + len, ready = sw_openai_utf8_ready(buf, n);
    g->n_held = n - ready; /* <= 3: an incomplete character */
    memcpy(g->held, buf + ready, g->n_held);
    const int rc = ready ? s_sse(g, buf, ready, NULL) : 0;
    free(buf);
    return rc;
}

static int s_on_token_text(const char *text, size_t len, uint32_t token_id, void *user)
{
    (void) token_id;
    s_gen_t *g = user;
    g->n_chunks++;
    if (g->rq->stream) {
        if (len && s_sse_text(g, text, len) != 0)
            return 1;
    } else if (s_append(g, text, len) != 0) {
        g->oom = true;
        return 1;
    }
    return atomic_load(&g->gone);
}

/* The client library's stop callback: the client left, or the server stops. */
static int s_gen_stop(void *user)
{
    s_gen_t *g = user;
    if (atomic_load(&g->h->stopping) || atomic_load(&g->gone))
        return 1;
    if (!g->rq->stream && s_hung_up(g->conn_fd)) { /* streaming: MHD's thread watches the socket */
        atomic_store(&g->gone, true);
        return 1;
    }
    return 0;
}

/* Ends the bookkeeping of a generation that was admitted: the concurrency
 * slots, the tokens charged to the client, the counters. */
static void s_gen_end(s_gen_t *g, int rc, uint32_t used)
{
    sw_http_t *h = g->h;
    const bool left = rc != 0 && atomic_load(&g->gone) && !atomic_load(&h->stopping);
    pthread_mutex_lock(&h->mu);
    sw_fairuse_end(h->fair, &g->addr, S_METER_GEN, used, s_now());
    h->n.active--;
    if (rc == 0) {
        h->n.completions++;
        h->n.tokens += g->sum.completion_tokens;
        sw_http_counters_observe_ttft(&h->n, g->sum.time_to_first_token_ms / 1000.0);
        if (g->sum.decode_tokens_per_s > 0)
            h->n.last_tps = g->sum.decode_tokens_per_s;
    } else if (left) {
        h->n.abandoned++;
    } else {
        h->n.failed++;
    }
    pthread_mutex_unlock(&h->mu);
    if (left)
        sw_log(SW_LOG_INFO, "http: client %s left; its generation was cancelled after %u tokens", g->ip, used);
}

/* Runs the generation in the gateway. Returns 0, or -1 with g->code and
 * g->err (SW_CLIENT_LOCAL when memory ran out: the answer is not sent cut). */
static int s_run(s_gen_t *g)
{
    sw_http_t *h = g->h;
    int code = SW_CLIENT_LOCAL;
    sw_client_t *cl = sw_client_new(h->rpc, g->err, sizeof g->err);
    int rc = -1;
    if (cl) {
        sw_client_set_stop(cl, s_gen_stop, g, S_STOP_CHECK_MS);
        rc = sw_client_generate(cl, &g->rq->req, s_on_token_text, g, &g->sum, h->cfg.timeout_ms, &code, g->err,
                                sizeof g->err);
    }
    sw_client_destroy(&cl);
    if (g->oom && !atomic_load(&g->gone)) {
        rc = -1;
        code = SW_CLIENT_LOCAL;
        snprintf(g->err, sizeof g->err, "out of memory in the HTTP server; the answer would be incomplete");
    }
    g->code = rc == 0 ? 0 : code;
    pthread_mutex_lock(&h->mu);
    h->n.calls[SW_HTTP_CALL_GENERATE]++;
    pthread_mutex_unlock(&h->mu);
    s_gen_end(g, rc, rc == 0 ? g->sum.completion_tokens : g->n_chunks);
    return rc;
}

/* An SSE error event naming the code, then the end of the stream. */
static void s_sse_error(s_gen_t *g)
{
    char name[32];
    s_code_name(g->code, name);
    const size_t i = s_status_of(g->code);
    char *e = sw_openai_error_json(i == (size_t) -1 ? "server_error" : s_statuses[i].type, g->err, name);
    if (e && s_emit(g, "data: ", 6) == 0 && s_emit(g, e, strlen(e)) == 0 && s_emit(g, "\n\n", 2) == 0)
        s_emit(g, "data: [DONE]\n\n", 14);
    free(e); /* out of memory here: the stream ends without [DONE], which a client reads as cut */
}

/* The producer of a streaming response: runs the generation, writes SSE
 * events to the pipe, closes it. An error before any text is left to the
 * request's thread (which sends it with its status); after text, it is an
 * SSE error event naming the code. */
static void *s_stream_thread(void *arg)
{
    s_gen_t *g = arg;
    if (s_run(g) == 0) {
        /* the last chunk: a held incomplete character (sent as U+FFFD), finish_reason and seed */
        if (s_sse(g, g->held, g->n_held, sw_openai_finish_reason(g->sum.stop_reason)) == 0)
            s_emit(g, "data: [DONE]\n\n", 14);
        else if (g->oom && !atomic_load(&g->gone)) {
            g->code = SW_CLIENT_LOCAL;
            snprintf(g->err, sizeof g->err, "out of memory in the HTTP server; the answer would be incomplete");
            if (g->wrote)
                s_sse_error(g);
        }
    } else if (g->wrote && !atomic_load(&g->gone)) {
        s_sse_error(g);
    }
    close(g->fd_write);
    g->fd_write = -1;
    return NULL;
}

/* MHD's reader of a streaming response (in the connection's thread): the
 * next SSE text; an SSE comment after keepalive_ms without any, which keeps
 * MHD's idle time-out (counted from the last byte sent) from cutting a
 * stream that pauses (a failover, a long prefill); the end when the producer
 * closed the pipe; an error when the client hung up. */
static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    s_gen_t *g = cls;
    struct pollfd p[2] = {{.fd = g->fd_read, .events = POLLIN}, {.fd = g->conn_fd, .events = POLLRDHUP}};
    for (;;) {
        const int n = poll(p, 2, g->h->keepalive_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (n == 0) {
            static const char ka[] = ": keep-alive\n\n";
            const size_t k = sizeof ka - 1 < max ? sizeof ka - 1 : max;
            memcpy(buf, ka, k);
            return (ssize_t) k;
        }
        if (p[0].revents) {
            const ssize_t r = read(g->fd_read, buf, max);
            if (r > 0)
                return r;
            if (r == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (p[1].revents) {
            atomic_store(&g->gone, true);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* MHD is done with a streaming response (sent, or the client left). */
static void s_stream_free(void *cls)
{
    s_gen_t *g = cls;
    atomic_store(&g->gone, true);
    close(g->fd_read); /* the producer's next write fails; its stop check ends the generation */
    g->fd_read = -1;
    if (g->thread_started)
        pthread_join(g->thread, NULL);
    s_gen_free(g);
}

/* Waits in the request's thread for the stream's first text or its end,
 * before any header is sent. Returns 1 when text is there, 0 when the
 * producer ended without writing (an error to answer with its status), -1
 * when the client left (the producer has then ended too). */
static int s_wait_first(s_gen_t *g)
{
    struct pollfd p[2] = {{.fd = g->fd_read, .events = POLLIN}, {.fd = g->conn_fd, .events = POLLRDHUP}};
    for (;;) {
        const int n = poll(p, 2, -1);
        if (n < 0 && errno != EINTR) { /* cannot watch: stop the generation, wait for the producer */
            atomic_store(&g->gone, true);
            p[1].fd = -1;
            char drain[4096];
            for (;;) { /* blocking reads until the producer closes the pipe */
                const ssize_t r = read(g->fd_read, drain, sizeof drain);
                if (r == 0 || (r < 0 && errno != EINTR))
                    return -1;
            }
        }
        if (n <= 0)
            continue;
        if (p[0].revents & POLLIN) {
            if (!atomic_load(&g->gone))
                return 1;
            char drain[4096]; /* gone: empty the pipe until the producer closes it */
            if (read(g->fd_read, drain, sizeof drain) == 0)
                return -1;
            continue;
        }
        if (p[0].revents)
            return atomic_load(&g->gone) ? -1 : 0;
        if (p[1].revents) {
            atomic_store(&g->gone, true); /* the producer stops within S_STOP_CHECK_MS */
            p[1].fd = -1;
        }
    }
}

/* A streaming response: starts the producer, waits for its first text (or
 * its early error, answered with the error's own status), then hands the
 * pipe to MHD. */
static enum MHD_Result s_generate_stream(struct MHD_Connection *c, s_gen_t *g)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        s_gen_end(g, -1, 0);
        s_gen_free(g);
        return s_error(c, 500, "server_error", "cannot stream", NULL);
    }
    g->fd_read = fds[0];
    g->fd_write = fds[1];
    fcntl(g->fd_write, F_SETFL, O_NONBLOCK);
    fcntl(g->fd_write, F_SETPIPE_SZ, S_PIPE_BYTES); /* best effort: the default is 64 KiB */
    if (pthread_create(&g->thread, NULL, s_stream_thread, g) != 0) {
        s_gen_end(g, -1, 0);
        s_gen_free(g);
        return s_error(c, 500, "server_error", "cannot stream", NULL);
    }
    g->thread_started = true;
    const int first = s_wait_first(g);
    if (first > 0) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, s_stream_read, g,
                                                                   s_stream_free);
        if (!r) {
            s_stream_free(g);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r); /* MHD keeps it until the stream ends, then calls s_stream_free */
        return rc;
    }
    pthread_join(g->thread, NULL);
    g->thread_started = false;
    enum MHD_Result res = first < 0 ? MHD_NO : s_call_error(c, g->code, g->err);
    s_gen_free(g);
    return res;
}

static enum MHD_Result s_generate(sw_http_t *h, struct MHD_Connection *c, const s_req_t *rq, bool chat)
{
    char why[256];
    bool oom = false;
    const sw_openai_limits_t lim = {.max_tokens = h->cfg.max_tokens, .chat_format = h->cfg.chat_format};
    sw_openai_request_t *req = sw_openai_request_parse(rq->body, rq->len, chat, &lim, &oom, why, sizeof why);
    if (!req)
        return oom ? s_error(c, 500, "server_error", why, NULL) : s_error(c, 400, "invalid_request_error", why, NULL);
    s_gen_t *g = calloc(1, sizeof *g);
    if (!g) {
        sw_openai_request_destroy(&req);
        return s_error(c, 500, "server_error", "out of memory", NULL);
    }
    g->h = h;
    g->rq = req;
    g->fd_read = g->fd_write = -1;
    atomic_init(&g->gone, false);
    g->created = (long) time(NULL);
    snprintf(g->id, sizeof g->id, "%s-%llx", chat ? "chatcmpl" : "cmpl", (unsigned long long) sw_now_ns());
    snprintf(g->ip, sizeof g->ip, "%s", rq->ip);
    g->addr = rq->addr;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->conn_fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&h->mu);
    const bool full = h->n.active >= h->cfg.max_concurrent;
    const sw_fairuse_result_t fr =
        full ? SW_FAIRUSE_OK : sw_fairuse_take(h->fair, &g->addr, NULL, NULL, h->cfg.max_concurrent_per_addr, s_now(), NULL);
    if (!full && fr == SW_FAIRUSE_OK)
        h->n.active++;
    else if (full || fr != SW_FAIRUSE_BUSY)
        h->n.busy_rejected++;
    else
        h->n.rate_limited++;
    pthread_mutex_unlock(&h->mu);
    if (full || fr != SW_FAIRUSE_OK) {
        s_gen_free(g);
        if (fr == SW_FAIRUSE_BUSY)
            return s_error(c, 429, "rate_limit_exceeded", "too many generations in progress from this address", "1");
        return s_error(c, 503, "server_busy", "too many concurrent requests; try again shortly", "1");
    }
    if (g->rq->stream)
        return s_generate_stream(c, g);
    const int rc = s_run(g);
    enum MHD_Result res;
    if (rc != 0 && atomic_load(&g->gone)) {
        res = MHD_NO; /* the client left: nobody to answer */
    } else if (rc != 0) {
        res = s_call_error(c, g->code, g->err);
    } else {
        char *out = sw_openai_completion_json(chat, g->id, g->created, h->model_id, g->text, g->len, &g->sum);
        res = out ? s_send(c, 200, "application/json", out, NULL)
                  : s_error(c, 500, "server_error", "out of memory in the HTTP server; the answer would be incomplete",
                            NULL);
    }
    s_gen_free(g);
    return res;
}

/* A gateway call's stop callback: the server stops. */
static int s_server_stop(void *user) { return atomic_load(&((sw_http_t *) user)->stopping); }

static enum MHD_Result s_models(sw_http_t *h, struct MHD_Connection *c)
{
    char err[512], id[129] = "", gaps[256] = "";
    bool servable = false;
    int code = SW_CLIENT_LOCAL;
    sw_client_t *cl = sw_client_new(h->rpc, err, sizeof err);
    if (cl)
        sw_client_set_stop(cl, s_server_stop, h, S_STOP_CHECK_MS);
    int rc = cl ? sw_client_list_models(cl, id, sizeof id, &servable, gaps, sizeof gaps, 5000, &code, err, sizeof err)
                : -1;
    sw_client_destroy(&cl);
    pthread_mutex_lock(&h->mu);
    h->n.calls[SW_HTTP_CALL_MODELS]++;
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        return s_call_error(c, code, err);
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
    double now = s_now();
    const bool fresh = h->snap_at > 0 && now - h->snap_at < S_SNAPSHOT_S;
    const bool failed_now = h->snap_failed_at > h->snap_at && now - h->snap_failed_at < S_SNAPSHOT_S;
    if (!fresh && !failed_now) {
        h->snap_busy = true;
        pthread_mutex_unlock(&h->mu);
        s_snap_ctx_t x = {0};
        int rc_code = SW_CLIENT_LOCAL;
        char why[256] = "out of memory";
        sw_client_t *cl = sw_client_new(h->rpc, why, sizeof why);
        if (cl)
            sw_client_set_stop(cl, s_server_stop, h, S_STOP_CHECK_MS);
        int rc = cl ? sw_client_swarm(cl, s_snap_fill, &x, 3000, &rc_code, why, sizeof why) : -1;
        sw_client_destroy(&cl);
        if (rc == 0 && (!x.json || !x.metrics)) {
            rc = -1;
            rc_code = SW_CLIENT_LOCAL;
            snprintf(why, sizeof why, "out of memory in the HTTP server");
        }
        pthread_mutex_lock(&h->mu);
        h->n.calls[SW_HTTP_CALL_SWARM]++;
        now = s_now();
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
        return s_error(c, 500, "server_error", "out of memory in the HTTP server", NULL);
    return s_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, NULL);
}

/* GET /api/swarm: the swarm part from the shared snapshot; counters and the
 * HTTP API's own numbers are current. */
static enum MHD_Result s_swarm(sw_http_t *h, struct MHD_Connection *c)
{
    char *text = NULL, err[256] = "";
    int code = 0;
    if (s_snapshot(h, &text, NULL, &code, err, sizeof err) != 0)
        return s_call_error(c, code, err[0] ? err : "the gateway did not answer");
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    if (!o)
        return s_error(c, 500, "server_error", "cannot build the response", NULL);
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
    return s_json(c, 200, o);
}

/* GET of anything else: a file of the dashboard (sw_http_static). */
static enum MHD_Result s_static(sw_http_t *h, struct MHD_Connection *c, const char *url)
{
    unsigned status = 404;
    struct MHD_Response *r = sw_http_static_response(h->web_dir, url, &status);
    if (!r)
        return status == 404 ? s_error(c, 404, "invalid_request_error", "no such file", NULL)
                             : s_error(c, 500, "server_error", "cannot open the file", NULL);
    const enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- the server ------------------------------------------------------------------ */

static enum MHD_Result s_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) version;
    sw_http_t *h = cls;
    s_req_t *rq = *con_cls;
    if (!rq) { /* the headers are in, the body is not */
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        *con_cls = rq;
        s_client_addr(c, rq->ip, &rq->addr);
        const char *bad = s_framing_error(c);
        if (!bad)
            return MHD_YES;
        pthread_mutex_lock(&h->mu);
        h->n.bad_framing++;
        pthread_mutex_unlock(&h->mu);
        /* answered before the body: MHD reads no further request from this connection */
        char *text = sw_openai_error_json("invalid_request_error", bad, NULL);
        if (!text)
            return MHD_NO;
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Connection", "close");
        enum MHD_Result res = MHD_queue_response(c, 400, r);
        MHD_destroy_response(r);
        return res;
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
        return s_send(c, 200, "text/plain", strdup("ok\n"), NULL);
    if (!strcmp(url, "/metrics") || !strcmp(url, "/api/swarm")) {
        if (!get)
            return s_error(c, 405, "invalid_request_error", "method not allowed", NULL);
        if (!s_admit(h, c, rq, S_KIND_READ, &res))
            return res;
        return url[1] == 'm' ? s_metrics(h, c) : s_swarm(h, c);
    }
    const bool completions = !strcmp(url, "/v1/completions"), chat = !strcmp(url, "/v1/chat/completions");
    const bool models = !strcmp(url, "/v1/models");
    if (!completions && !chat && !models) {
        if (!strncmp(url, "/v1/", 4) || !strncmp(url, "/api/", 5))
            return s_error(c, 404, "invalid_request_error", "no such endpoint", NULL);
        return get ? s_static(h, c, url) : s_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    }
    if ((completions || chat) ? !post : !get)
        return s_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    if (!s_admit(h, c, rq, completions || chat ? S_KIND_GENERATE : S_KIND_REQUEST, &res))
        return res;
    if (rq->too_big)
        return s_error(c, 413, "invalid_request_error", "the body is too large", NULL);
    if (rq->oom)
        return s_error(c, 500, "server_error", "out of memory in the HTTP server", NULL);
    if (models)
        return s_models(h, c);
    return s_generate(h, c, rq, chat);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void) cls, (void) c, (void) t;
    s_req_t *rq = *con_cls;
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
    sw_fairuse_config_t fc = {.capacity = h->cfg.max_addrs, .n_meters = S_N_METERS};
    fc.meters[S_METER_REQ] = (sw_fairuse_meter_t){h->cfg.rate_rps, 2 * h->cfg.rate_rps};
    fc.meters[S_METER_GEN] = (sw_fairuse_meter_t){h->cfg.token_rate, gen_burst};
    fc.meters[S_METER_READ] = (sw_fairuse_meter_t){h->cfg.read_rate, 2 * h->cfg.read_rate};
    if (getrandom(&fc.seed, sizeof fc.seed, 0) != (ssize_t) sizeof fc.seed)
        fc.seed = sw_now_ns() ^ ((uint64_t) getpid() << 32);
    if (!(h->fair = sw_fairuse_new(&fc, err, errlen))) {
        free(h);
        return NULL;
    }
    atomic_init(&h->stopping, false);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->snap_cv, NULL);
    /* thread per connection: a handler may block (a generation, the first token of a stream); the idle
     * time-out counts from a connection's last byte in either direction (libmicrohttpd's semantics) */
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                            s_handler, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, s_completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned) h->cfg.idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned) h->cfg.max_conn,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) h->cfg.max_conn_per_addr, MHD_OPTION_END);
    if (!h->d) {
        sw_err(err, errlen, "cannot serve HTTP on %s (address in use?)", cfg->addr);
        sw_fairuse_destroy(&h->fair);
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
    /* every waiting gateway call ends within S_STOP_CHECK_MS (and cancels its generation); MHD shuts every
     * connection's socket, which wakes the threads waiting on a client, then joins them */
    atomic_store(&h->stopping, true);
    MHD_stop_daemon(h->d);
    sw_fairuse_destroy(&h->fair);
    pthread_cond_destroy(&h->snap_cv);
    pthread_mutex_destroy(&h->mu);
    free(h->snap_json);
    free(h->snap_metrics);
    free(h);
    *self_p = NULL;
}

int sw_http_port(const sw_http_t *self) { return self->port; }
