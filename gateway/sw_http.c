/*  sw_http.c: OpenAI-compatible HTTP API over the gateway RPC (see sw_http.h). */
#include "sw_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.pb-c.h"
#include "sw_chat.h"
#include "sw_client.h"
#include "sw_common.h"
#include "sw_fairuse.h"

/* Fair-use meters of each client address (sw_fairuse). */
enum { S_METER_REQ, S_METER_GEN, S_METER_READ, S_N_METERS };
/* Calls the HTTP front makes to the gateway's RPC, counted for /metrics. */
enum { S_CALL_GENERATE, S_CALL_MODELS, S_CALL_SWARM, S_N_CALLS };
static const char *const s_call_names[S_N_CALLS] = {"generate", "models", "swarm"};

#define S_STOP_CHECK_MS 100     /* how often a waiting call asks whether its client left or the server stops */
#define S_SNAPSHOT_S 0.5        /* the swarm snapshot (/api/swarm, /metrics) is asked of the gateway at most this often */
#define S_PIPE_BYTES (1 << 20)  /* SSE text a streaming client may leave unread before its generation is stopped */
#define S_MAX_TOP_K (1 << 20)
#define S_MAX_STOP_BYTES 256

/* Time-to-first-token histogram bounds, seconds (Prometheus "le" labels). */
static const double s_ttft_le[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define S_TTFT_N (sizeof s_ttft_le / sizeof s_ttft_le[0])

struct sw_http_t {
    sw_http_config_t cfg;
    char rpc[256], model_id[129];
    char web_dir[1024];            /* "" when there is no dashboard */
    struct MHD_Daemon *d;
    int port;
    int keepalive_ms;              /* a stream with no token for this long gets an SSE comment (< the idle time-out) */
    atomic_bool stopping;          /* sw_http_destroy began: every waiting call ends */
    pthread_mutex_t mu;
    /* under mu: */
    sw_fairuse_t *fair;            /* per-address meters and generations in progress */
    int active;                    /* generations in progress */
    uint64_t requests, rate_limited, busy_rejected, failed, completions, tokens, abandoned, bad_framing;
    uint64_t calls[S_N_CALLS];     /* RPC calls to the gateway */
    uint64_t ttft_bucket[S_TTFT_N + 1]; /* last: +Inf */
    double ttft_sum, last_tps;
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
    char ip[64];              /* the client's address as text */
    sw_fairuse_addr_t addr;   /* the same, as the fair-use key */
} s_req_t;

static double s_now(void) { return sw_now_ns() / 1e9; }

/* ---- responses ---------------------------------------------------------------- */

static enum MHD_Result s_send(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                              const char *retry_after)
{
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

static enum MHD_Result s_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s_send(c, status, "application/json", text ? text : strdup("{}"), NULL);
}

/* OpenAI's error shape {"error": {"message", "type", "code"}}; code may be NULL. */
static char *s_error_text(const char *type, const char *msg, const char *code)
{
    json_t *j = json_pack("{s:{s:s, s:s, s:o}}", "error", "message", msg, "type", type, "code",
                          code ? json_string(code) : json_null());
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text ? text : strdup("{}");
}

static enum MHD_Result s_error(struct MHD_Connection *c, unsigned status, const char *type, const char *msg,
                               const char *retry_after)
{
    return s_send(c, status, "application/json", s_error_text(type, msg, NULL), retry_after);
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
                  s_error_text(i == (size_t) -1 ? "server_error" : s_statuses[i].type, msg, name),
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
        h->rate_limited++;
        tokens_short = kind == S_KIND_GENERATE && sw_fairuse_level(h->fair, &rq->addr, S_METER_REQ, now) >= 1;
    } else if (r != SW_FAIRUSE_OK) {
        h->busy_rejected++;
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
    sw_client_request_t req;
    char *prompt;
    sw_chat_prompt_t chat_prompt;         /* chat: the rendered prompt */
    sw_client_prompt_part_t *parts;       /* chat: its parts (texts owned) */
    size_t n_parts;
    char ip[64];
    sw_fairuse_addr_t addr;
    char *stops[5];
    bool chat, stream;
    char id[40];
    long created;
    int conn_fd;                          /* the client's socket (MHD's, borrowed), or -1 */
    atomic_bool gone;                     /* the client left (or its response was freed): stop the generation */
    uint32_t n_chunks;                    /* token chunks received (charged when the generation is cut short) */
    /* non-streaming: the text */
    char *text;
    size_t len, cap;
    /* streaming: a pipe from the producer thread (SSE text) to MHD's reader of the response */
    int fd_read, fd_write;
    bool wrote;                           /* the producer wrote to the pipe */
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
    free(g->prompt);
    for (size_t i = 0; i < g->n_parts; i++)
        free((char *) g->parts[i].text);
    free(g->parts);
    sw_chat_prompt_free(&g->chat_prompt);
    for (int i = 0; i < 5; i++)
        free(g->stops[i]);
    free(g->text);
    free(g);
}

static void s_append(s_gen_t *g, const char *t, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        size_t cap = (g->cap + n + 64) * 2;
        char *p = realloc(g->text, cap);
        if (!p)
            return;
        g->text = p;
        g->cap = cap;
    }
    memcpy(g->text + g->len, t, n);
    g->len += n;
    g->text[g->len] = 0;
}

static const char *s_finish_reason(const sw_client_summary_t *s)
{
    return !strcmp(s->stop_reason, "length") ? "length" : "stop";
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

/* One SSE event holding a chunk of text (or the final finish_reason). */
static int s_sse(s_gen_t *g, const char *text, size_t len, const char *finish)
{
    json_t *choice = g->chat
                         ? json_pack("{s:i, s:{s:s%}, s:o}", "index", 0, "delta", "content", text ? text : "", len,
                                     "finish_reason", finish ? json_string(finish) : json_null())
                         : json_pack("{s:i, s:s%, s:o}", "index", 0, "text", text ? text : "", len, "finish_reason",
                                     finish ? json_string(finish) : json_null());
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", g->id, "object",
                          g->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t) g->created,
                          "model", g->h->model_id, "choices", choice);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return 0; /* out of memory: the chunk is lost, the stream goes on */
    const size_t n = strlen(body);
    char *ev = malloc(n + 9);
    int rc = 0;
    if (ev) {
        memcpy(ev, "data: ", 6);
        memcpy(ev + 6, body, n);
        memcpy(ev + 6 + n, "\n\n", 3);
        rc = s_emit(g, ev, n + 8);
    }
    free(ev);
    free(body);
    return rc;
}

static int s_on_token_text(const char *text, size_t len, uint32_t token_id, void *user)
{
    (void) token_id;
    s_gen_t *g = user;
    g->n_chunks++;
    if (g->stream) {
        if (len && s_sse(g, text, len, NULL) != 0)
            return 1;
    } else {
        s_append(g, text, len);
    }
    return atomic_load(&g->gone);
}

/* The client library's stop callback: the client left, or the server stops. */
static int s_gen_stop(void *user)
{
    s_gen_t *g = user;
    if (atomic_load(&g->h->stopping) || atomic_load(&g->gone))
        return 1;
    if (!g->stream && s_hung_up(g->conn_fd)) { /* streaming: MHD's thread watches the socket */
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
    h->active--;
    if (rc == 0) {
        h->completions++;
        h->tokens += g->sum.completion_tokens;
        const double ttft = g->sum.time_to_first_token_ms / 1000.0;
        size_t b = 0;
        while (b < S_TTFT_N && ttft > s_ttft_le[b])
            b++;
        h->ttft_bucket[b]++;
        h->ttft_sum += ttft;
        if (g->sum.decode_tokens_per_s > 0)
            h->last_tps = g->sum.decode_tokens_per_s;
    } else if (left) {
        h->abandoned++;
    } else {
        h->failed++;
    }
    pthread_mutex_unlock(&h->mu);
    if (left)
        sw_log(SW_LOG_INFO, "http: client %s left; its generation was cancelled after %u tokens", g->ip, used);
}

static int s_run(s_gen_t *g)
{
    sw_http_t *h = g->h;
    int code = SW_CLIENT_LOCAL;
    sw_client_t *cl = sw_client_new(h->rpc, g->err, sizeof g->err);
    int rc = -1;
    if (cl) {
        sw_client_set_stop(cl, s_gen_stop, g, S_STOP_CHECK_MS);
        rc = sw_client_generate(cl, &g->req, s_on_token_text, g, &g->sum, h->cfg.timeout_ms, &code, g->err,
                                sizeof g->err);
    }
    sw_client_destroy(&cl);
    g->code = rc == 0 ? 0 : code;
    pthread_mutex_lock(&h->mu);
    h->calls[S_CALL_GENERATE]++;
    pthread_mutex_unlock(&h->mu);
    s_gen_end(g, rc, rc == 0 ? g->sum.completion_tokens : g->n_chunks);
    return rc;
}

/* The producer of a streaming response: runs the generation, writes SSE
 * events to the pipe, closes it. An error before any text is left to the
 * request's thread (which sends it with its status); after text, it is an
 * SSE error event naming the code. */
static void *s_stream_thread(void *arg)
{
    s_gen_t *g = arg;
    if (s_run(g) == 0) {
        if (s_sse(g, NULL, 0, s_finish_reason(&g->sum)) == 0)
            s_emit(g, "data: [DONE]\n\n", 14);
    } else if (g->wrote && !atomic_load(&g->gone)) {
        char name[32];
        s_code_name(g->code, name);
        const size_t i = s_status_of(g->code);
        char *e = s_error_text(i == (size_t) -1 ? "server_error" : s_statuses[i].type, g->err, name);
        if (e && s_emit(g, "data: ", 6) == 0 && s_emit(g, e, strlen(e)) == 0 && s_emit(g, "\n\n", 2) == 0)
            s_emit(g, "data: [DONE]\n\n", 14);
        free(e);
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

/* Parses the request fields shared by both endpoints. Returns NULL with a
 * message in why. */
static s_gen_t *s_parse(sw_http_t *h, json_t *j, bool chat, const char **why, char *why_buf, size_t why_len)
{
    s_gen_t *g = calloc(1, sizeof *g);
    if (!g) {
        *why = "out of memory";
        return NULL;
    }
    g->h = h;
    g->chat = chat;
    g->fd_read = g->fd_write = g->conn_fd = -1;
    if (chat) {
        json_t *msgs = json_object_get(j, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            *why = "'messages' must be a non-empty array";
            goto bad;
        }
        /* the model's chat format (core/sw_chat.h); contents as strings or arrays of text parts */
        const size_t nm = json_array_size(msgs);
        if (nm > 1024) {
            *why = "at most 1024 messages";
            goto bad;
        }
        sw_chat_msg_t *cm = calloc(nm, sizeof *cm);
        char **owned = calloc(nm, sizeof *owned);
        size_t total = 0;
        bool ok = cm && owned;
        for (size_t i = 0; ok && i < nm; i++) {
            json_t *m = json_array_get(msgs, i), *content = json_object_get(m, "content");
            cm[i].role = json_string_value(json_object_get(m, "role"));
            if (json_is_string(content)) {
                cm[i].content = json_string_value(content);
            } else if (json_is_array(content)) {
                size_t k, len = 0;
                json_t *part;
                json_array_foreach(content, k, part) {
                    const char *t = json_string_value(json_object_get(part, "text"));
                    if (!t || strcmp(json_string_value(json_object_get(part, "type")) ?: "", "text")) {
                        ok = false;
                        break;
                    }
                    len += strlen(t);
                }
                if (ok && len <= (1u << 20) && (owned[i] = malloc(len + 1))) {
                    owned[i][0] = 0;
                    size_t o = 0;
                    json_array_foreach(content, k, part) {
                        const char *t = json_string_value(json_object_get(part, "text"));
                        memcpy(owned[i] + o, t, strlen(t) + 1);
                        o += strlen(t);
                    }
                    cm[i].content = owned[i];
                } else {
                    ok = false;
                }
            }
            if (!cm[i].role || !cm[i].content)
                ok = false;
            else
                total += strlen(cm[i].content);
        }
        char cerr[160] = "each message needs a string 'role' and a 'content' string or array of text parts";
        if (ok && total > (1u << 20)) {
            ok = false;
            snprintf(cerr, sizeof cerr, "the messages are longer than 1 MiB");
        }
        if (ok && sw_chat_render((sw_chat_format_t) h->cfg.chat_format, cm, nm, &g->chat_prompt, cerr,
                                 sizeof cerr) != 0)
            ok = false;
        for (size_t i = 0; owned && i < nm; i++)
            free(owned[i]);
        free(owned);
        free(cm);
        if (!ok) {
            snprintf(g->err, sizeof g->err, "%s", cerr);
            *why = g->err;
            goto bad_keep_why;
        }
        g->parts = calloc(g->chat_prompt.n_parts, sizeof *g->parts);
        if (!g->parts) {
            *why = "out of memory";
            goto bad;
        }
        for (size_t i = 0; i < g->chat_prompt.n_parts; i++) {
            const sw_chat_part_t *cp = &g->chat_prompt.parts[i];
            g->parts[i].special = cp->special;
            if (!(g->parts[i].text = strndup(g->chat_prompt.text + cp->off, cp->len))) {
                *why = "out of memory";
                goto bad;
            }
            g->n_parts++;
        }
        g->req.parts = g->parts;
        g->req.n_parts = g->n_parts;
        g->prompt = strdup(g->chat_prompt.text ? g->chat_prompt.text : "");
    } else {
        json_t *p = json_object_get(j, "prompt");
        if (!json_is_string(p)) {
            *why = "'prompt' must be a string";
            goto bad;
        }
        g->prompt = strdup(json_string_value(p));
    }
    if (!g->prompt || strlen(g->prompt) > (1u << 20) - 4096) {
        *why = "the prompt is missing or longer than 1 MiB";
        goto bad;
    }
    g->req.prompt = g->prompt;
    json_t *v;
    g->req.max_tokens = 16;
    if ((v = json_object_get(j, "max_tokens")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > h->cfg.max_tokens) {
            *why = "'max_tokens' must be an integer from 1 to the server's limit";
            goto bad;
        }
        g->req.max_tokens = (uint32_t) json_integer_value(v);
    }
    g->req.temperature = 1.0f;
    if ((v = json_object_get(j, "temperature")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2) {
            *why = "'temperature' must be a number from 0 to 2";
            goto bad;
        }
        g->req.temperature = (float) json_number_value(v);
    }
    g->req.top_p = 1.0f;
    if ((v = json_object_get(j, "top_p")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 1) {
            *why = "'top_p' must be a number in (0, 1]";
            goto bad;
        }
        g->req.top_p = (float) json_number_value(v);
    }
    /* beyond OpenAI's fields, with vLLM's names: min_p, top_k, repetition_penalty, ignore_eos */
    g->req.min_p = 0;
    if ((v = json_object_get(j, "min_p")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
            *why = "'min_p' must be a number from 0 to 1";
            goto bad;
        }
        g->req.min_p = (float) json_number_value(v);
    }
    g->req.top_k = 0;
    if ((v = json_object_get(j, "top_k")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > S_MAX_TOP_K) {
            *why = "'top_k' must be an integer from 0 to 1048576 (0 or -1: off)";
            goto bad;
        }
        g->req.top_k = json_integer_value(v) < 0 ? 0 : (int32_t) json_integer_value(v);
    }
    g->req.repeat_penalty = 1.0f;
    if ((v = json_object_get(j, "repetition_penalty")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 10) {
            *why = "'repetition_penalty' must be a number in (0, 10] (1: off)";
            goto bad;
        }
        g->req.repeat_penalty = (float) json_number_value(v);
    }
    static const char *const unsupported[] = {"frequency_penalty", "presence_penalty"};
    for (size_t i = 0; i < 2; i++)
        if ((v = json_object_get(j, unsupported[i])) && !json_is_null(v)) {
            if (!json_is_number(v) || json_number_value(v) < -2 || json_number_value(v) > 2) {
                snprintf(g->err, sizeof g->err, "'%s' must be a number from -2 to 2", unsupported[i]);
                goto bad_keep_why;
            }
            if (json_number_value(v) != 0) {
                snprintf(g->err, sizeof g->err, "'%s' other than 0 is not supported; use 'repetition_penalty'",
                         unsupported[i]);
                goto bad_keep_why;
            }
        }
    if ((v = json_object_get(j, "ignore_eos")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            *why = "'ignore_eos' must be a boolean";
            goto bad;
        }
        g->req.ignore_eos = json_is_true(v);
    }
    if ((v = json_object_get(j, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            *why = "'seed' must be a non-negative integer";
            goto bad;
        }
        g->req.seed = (uint64_t) json_integer_value(v);
    }
    if ((v = json_object_get(j, "stop")) && !json_is_null(v)) {
        /* one string or up to 4, each at most S_MAX_STOP_BYTES: every form checked the same way */
        const bool one = json_is_string(v);
        const size_t n = one ? 1 : json_is_array(v) ? json_array_size(v) : 5;
        for (size_t i = 0; i < n && n <= 4; i++) {
            json_t *s = one ? v : json_array_get(v, i);
            if (!json_is_string(s) || json_string_length(s) > S_MAX_STOP_BYTES)
                break;
            if (!(g->stops[g->req.n_stop] = strdup(json_string_value(s)))) {
                *why = "out of memory";
                goto bad;
            }
            g->req.n_stop++;
        }
        if ((size_t) g->req.n_stop != n) {
            *why = "'stop' must be a string or an array of up to 4 strings, each at most 256 bytes";
            goto bad;
        }
        g->req.stop = (const char *const *) g->stops;
    }
    const char *fmt_stop = chat ? sw_chat_stop_string((sw_chat_format_t) h->cfg.chat_format) : NULL;
    if (fmt_stop && (g->stops[g->req.n_stop] = strdup(fmt_stop))) {
        g->req.n_stop++;
        g->req.stop = (const char *const *) g->stops;
    }
    if ((v = json_object_get(j, "stream")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            *why = "'stream' must be a boolean";
            goto bad;
        }
        g->stream = json_is_true(v);
    }
    g->created = (long) time(NULL);
    snprintf(g->id, sizeof g->id, "%s-%llx", chat ? "chatcmpl" : "cmpl", (unsigned long long) sw_now_ns());
    return g;
bad:
    s_gen_free(g);
    return NULL;
bad_keep_why: /* the reason is in g->err: copy it out before g goes */
    snprintf(why_buf, why_len, "%.200s", g->err);
    *why = why_buf;
    s_gen_free(g);
    return NULL;
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
    json_error_t jerr;
    json_t *j = rq->body ? json_loadb(rq->body, rq->len, 0, &jerr) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return s_error(c, 400, "invalid_request_error", "the body is not a JSON object", NULL);
    }
    const char *why = NULL;
    char why_buf[256];
    s_gen_t *g = s_parse(h, j, chat, &why, why_buf, sizeof why_buf);
    json_decref(j);
    if (!g)
        return s_error(c, 400, "invalid_request_error", why, NULL);
    snprintf(g->ip, sizeof g->ip, "%s", rq->ip);
    g->addr = rq->addr;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->conn_fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&h->mu);
    const bool full = h->active >= h->cfg.max_concurrent;
    const sw_fairuse_result_t fr =
        full ? SW_FAIRUSE_OK : sw_fairuse_take(h->fair, &g->addr, NULL, NULL, h->cfg.max_concurrent_per_addr, s_now(), NULL);
    if (!full && fr == SW_FAIRUSE_OK)
        h->active++;
    else if (full || fr != SW_FAIRUSE_BUSY)
        h->busy_rejected++;
    else
        h->rate_limited++;
    pthread_mutex_unlock(&h->mu);
    if (full || fr != SW_FAIRUSE_OK) {
        s_gen_free(g);
        if (fr == SW_FAIRUSE_BUSY)
            return s_error(c, 429, "rate_limit_exceeded", "too many generations in progress from this address", "1");
        return s_error(c, 503, "server_busy", "too many concurrent requests; try again shortly", "1");
    }
    if (g->stream)
        return s_generate_stream(c, g);
    const int rc = s_run(g);
    enum MHD_Result res;
    if (rc != 0 && atomic_load(&g->gone)) {
        res = MHD_NO; /* the client left: nobody to answer */
    } else if (rc != 0) {
        res = s_call_error(c, g->code, g->err);
    } else {
        json_t *choice = chat ? json_pack("{s:i, s:{s:s, s:s%}, s:s}", "index", 0, "message", "role", "assistant",
                                          "content", g->text ? g->text : "", g->len, "finish_reason",
                                          s_finish_reason(&g->sum))
                              : json_pack("{s:i, s:s%, s:s}", "index", 0, "text", g->text ? g->text : "", g->len,
                                          "finish_reason", s_finish_reason(&g->sum));
        json_t *out = json_pack("{s:s, s:s, s:i, s:s, s:[o], s:{s:i, s:i, s:i}}", "id", g->id, "object",
                                chat ? "chat.completion" : "text_completion", "created", (json_int_t) g->created,
                                "model", h->model_id, "choices", choice, "usage", "prompt_tokens",
                                (json_int_t) g->sum.prompt_tokens, "completion_tokens",
                                (json_int_t) g->sum.completion_tokens, "total_tokens",
                                (json_int_t) (g->sum.prompt_tokens + g->sum.completion_tokens));
        res = out ? s_json(c, 200, out) : s_error(c, 500, "server_error", "cannot build the response", NULL);
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
    h->calls[S_CALL_MODELS]++;
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        return s_call_error(c, code, err);
    json_t *m = json_pack("{s:s, s:s, s:i, s:s, s:b, s:s}", "id", id, "object", "model", "created", 0, "owned_by",
                          "swisd", "servable", servable, "missing_layers", gaps);
    return s_json(c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

/* ---- the swarm: /api/swarm and /metrics ------------------------------------------------ */

/* Appends printf-style text to a growing buffer. */
static void s_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void s_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*buf && *len + (size_t) n < *cap) {
            *len += (size_t) n;
            return;
        }
        size_t cap2 = (*cap + (size_t) n + 256) * 2;
        char *b = realloc(*buf, cap2);
        if (!b)
            return;
        *buf = b;
        *cap = cap2;
    }
}

typedef struct {
    char **buf;
    size_t *len, *cap;
} s_metrics_ctx_t;

static void s_metrics_swarm(const sw_client_swarm_t *w, void *user)
{
    s_metrics_ctx_t *m = user;
    char regions[32][65];
    int counts[32] = {0}, n_regions = 0;
    s_printf(m->buf, m->len, m->cap, "# HELP swisd_stage_rtt_milliseconds Round trip of each live stage to its broker.\n"
                                     "# TYPE swisd_stage_rtt_milliseconds gauge\n");
    for (int k = 0; k < w->n_stages; k++) {
        const sw_client_stage_t *st = &w->stages[k];
        int i = 0;
        while (i < n_regions && strcmp(regions[i], st->region))
            i++;
        if (i == n_regions && n_regions < 32)
            snprintf(regions[n_regions++], sizeof regions[0], "%s", st->region);
        if (i < 32)
            counts[i]++;
        s_printf(m->buf, m->len, m->cap,
                 "swisd_stage_rtt_milliseconds{node=\"%.64s\",region=\"%.64s\",layers=\"%u-%u\"} %.3f\n",
                 st->node_id, st->region, st->begin, st->end ? st->end - 1 : 0, st->rtt_ms);
    }
    s_printf(m->buf, m->len, m->cap, "# HELP swisd_stages Live stages by region.\n# TYPE swisd_stages gauge\n");
    for (int i = 0; i < n_regions; i++)
        s_printf(m->buf, m->len, m->cap, "swisd_stages{region=\"%s\"} %d\n", regions[i], counts[i]);
    s_printf(m->buf, m->len, m->cap, "# HELP swisd_active_sessions Sessions in the gateway (all clients).\n"
                                     "# TYPE swisd_active_sessions gauge\nswisd_active_sessions %d\n", w->n_sessions);
    s_printf(m->buf, m->len, m->cap, "# HELP swisd_layers_uncovered Layers of the model no live stage holds.\n"
                                     "# TYPE swisd_layers_uncovered gauge\n");
    uint32_t missing = 0;
    for (int i = 0; i < w->n_gaps; i++)
        missing += w->gaps[i][1] - w->gaps[i][0];
    s_printf(m->buf, m->len, m->cap, "swisd_layers_uncovered %u\n", missing);
}

static void s_swarm_json(const sw_client_swarm_t *w, void *user)
{
    json_t *o = user, *stages = json_array(), *sessions = json_array(), *gaps = json_array();
    for (int i = 0; i < w->n_stages; i++) {
        const sw_client_stage_t *st = &w->stages[i];
        json_array_append_new(
            stages, json_pack("{s:s, s:s, s:s, s:s, s:{s:i, s:i}, s:f, s:i, s:i, s:f, s:{s:i, s:i, s:I, s:f}}",
                              "node_id", st->node_id, "region", st->region, "broker_id", st->broker_id, "model_id",
                              st->model_id, "layers", "begin", (json_int_t) st->begin, "end", (json_int_t) st->end,
                              "rtt_ms", (double) st->rtt_ms, "age_ms", (json_int_t) st->age_ms, "threads",
                              (json_int_t) st->threads, "ms_per_layer", (double) st->ms_per_layer, "load",
                              "active_sessions", (json_int_t) st->active_sessions, "queued_requests",
                              (json_int_t) st->queued_requests, "kv_bytes", (json_int_t) st->kv_bytes, "busy",
                              (double) st->busy));
    }
    for (int i = 0; i < w->n_sessions; i++)
        json_array_append_new(sessions, json_pack("{s:s, s:i, s:f, s:f}", "session_id", w->sessions[i].session_id,
                                                  "tokens", (json_int_t) w->sessions[i].tokens, "tokens_per_s",
                                                  (double) w->sessions[i].tokens_per_s, "acceptance_rate",
                                                  (double) w->sessions[i].acceptance_rate));
    for (int i = 0; i < w->n_gaps; i++)
        json_array_append_new(gaps, json_pack("{s:i, s:i}", "begin", (json_int_t) w->gaps[i][0], "end",
                                              (json_int_t) w->gaps[i][1]));
    json_object_set_new(o, "gateway", json_pack("{s:s, s:s}", "id", w->gateway_id, "region", w->region));
    json_object_set_new(o, "model", json_pack("{s:s, s:i, s:i, s:i, s:s}", "id", w->model_id, "n_layer",
                                              (json_int_t) w->n_layer, "n_embd", (json_int_t) w->n_embd, "n_vocab",
                                              (json_int_t) w->n_vocab, "checksum", w->checksum));
    json_object_set_new(o, "servable", json_boolean(w->n_gaps == 0 && w->n_layer > 0));
    json_t *hist = json_array();
    for (int i = 0; i < w->n_recent; i++) {
        const sw_client_sample_t *x = &w->recent[i];
        json_array_append_new(hist, json_pack("{s:f, s:i, s:i, s:f, s:f, s:f}", "t_ms", x->end_unix_ms,
                                              "prompt_tokens", (json_int_t) x->prompt_tokens, "completion_tokens",
                                              (json_int_t) x->completion_tokens, "tokens_per_s",
                                              (double) x->decode_tokens_per_s, "ttft_ms", (double) x->ttft_ms,
                                              "acceptance_rate", (double) x->acceptance_rate));
    }
    json_object_set_new(o, "history", hist);
    json_object_set_new(o, "gateway_totals", json_pack("{s:I, s:I}", "completions", (json_int_t) w->generations_total,
                                                       "tokens", (json_int_t) w->tokens_generated_total));
    json_object_set_new(o, "gaps", gaps);
    json_object_set_new(o, "stages", stages);
    json_object_set_new(o, "sessions", sessions);
}

typedef struct {
    json_t *json;
    s_metrics_ctx_t metrics;
} s_snap_ctx_t;

static void s_snap_fill(const sw_client_swarm_t *w, void *user)
{
    s_snap_ctx_t *x = user;
    s_swarm_json(w, x->json);
    s_metrics_swarm(w, &x->metrics);
}

/* Copies of the swarm snapshot: the swarm part of /api/swarm (json, JSON
 * text) and of /metrics (metrics, Prometheus text); either may be NULL. The
 * gateway is asked at most every S_SNAPSHOT_S, by one thread at a time while
 * the others wait for its answer, so any number of viewers costs the gateway
 * at most 1 / S_SNAPSHOT_S calls per second (a failure is kept as long).
 * Returns 0, or -1 with *code and err. Caller frees the copies. */
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
        char *m_buf = NULL;
        size_t m_len = 0, m_cap = 0;
        s_snap_ctx_t x = {.json = json_object(), .metrics = {.buf = &m_buf, .len = &m_len, .cap = &m_cap}};
        int rc_code = SW_CLIENT_LOCAL;
        char why[256] = "out of memory";
        sw_client_t *cl = x.json ? sw_client_new(h->rpc, why, sizeof why) : NULL;
        if (cl)
            sw_client_set_stop(cl, s_server_stop, h, S_STOP_CHECK_MS);
        const int rc = cl ? sw_client_swarm(cl, s_snap_fill, &x, 3000, &rc_code, why, sizeof why) : -1;
        sw_client_destroy(&cl);
        char *text = rc == 0 ? json_dumps(x.json, JSON_COMPACT) : NULL;
        json_decref(x.json);
        pthread_mutex_lock(&h->mu);
        h->calls[S_CALL_SWARM]++;
        now = s_now();
        if (text) {
            free(h->snap_json);
            free(h->snap_metrics);
            h->snap_json = text;
            h->snap_metrics = m_buf ? m_buf : strdup("");
            h->snap_at = now;
        } else {
            free(m_buf);
            h->snap_failed_at = now;
            h->snap_code = rc == 0 ? SW_CLIENT_LOCAL : rc_code;
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
    } else {
        *code = h->snap_code;
        if (!fresh && failed_now)
            snprintf(err, errlen, "the gateway did not answer");
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* GET /metrics: Prometheus text exposition format, version 0.0.4. */
static enum MHD_Result s_metrics(sw_http_t *h, struct MHD_Connection *c)
{
    char *swarm = NULL, err[256];
    int code = 0;
    s_snapshot(h, NULL, &swarm, &code, err, sizeof err); /* without the gateway: the HTTP part alone */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    pthread_mutex_lock(&h->mu);
    s_printf(&buf, &len, &cap,
             "# HELP swisd_http_requests_total HTTP requests received.\n# TYPE swisd_http_requests_total counter\n"
             "swisd_http_requests_total %llu\n"
             "# HELP swisd_rate_limited_total Requests answered 429.\n# TYPE swisd_rate_limited_total counter\n"
             "swisd_rate_limited_total %llu\n"
             "# HELP swisd_busy_rejected_total Requests answered 503 for the concurrency cap or a full table of "
             "client addresses.\n"
             "# TYPE swisd_busy_rejected_total counter\nswisd_busy_rejected_total %llu\n"
             "# HELP swisd_generations_failed_total Generations that ended in an error.\n"
             "# TYPE swisd_generations_failed_total counter\nswisd_generations_failed_total %llu\n"
             "# HELP swisd_generations_abandoned_total Generations cancelled because their client left.\n"
             "# TYPE swisd_generations_abandoned_total counter\nswisd_generations_abandoned_total %llu\n"
             "# HELP swisd_http_bad_framing_total Requests refused for ambiguous framing (duplicate "
             "Content-Length, ...).\n"
             "# TYPE swisd_http_bad_framing_total counter\nswisd_http_bad_framing_total %llu\n"
             "# HELP swisd_tokens_generated_total Completion tokens generated.\n"
             "# TYPE swisd_tokens_generated_total counter\nswisd_tokens_generated_total %llu\n"
             "# HELP swisd_decode_tokens_per_second Decode speed of the last finished generation.\n"
             "# TYPE swisd_decode_tokens_per_second gauge\nswisd_decode_tokens_per_second %.3f\n"
             "# HELP swisd_active_generations Generations in progress over HTTP.\n"
             "# TYPE swisd_active_generations gauge\nswisd_active_generations %d\n"
             "# HELP swisd_http_clients_tracked Client addresses in the fair-use table.\n"
             "# TYPE swisd_http_clients_tracked gauge\nswisd_http_clients_tracked %zu\n"
             "# HELP swisd_http_gateway_calls_total Calls of the gateway's RPC made by the HTTP API.\n"
             "# TYPE swisd_http_gateway_calls_total counter\n",
             (unsigned long long) h->requests, (unsigned long long) h->rate_limited,
             (unsigned long long) h->busy_rejected, (unsigned long long) h->failed,
             (unsigned long long) h->abandoned, (unsigned long long) h->bad_framing,
             (unsigned long long) h->tokens, h->last_tps, h->active, sw_fairuse_size(h->fair));
    for (int k = 0; k < S_N_CALLS; k++)
        s_printf(&buf, &len, &cap, "swisd_http_gateway_calls_total{call=\"%s\"} %llu\n", s_call_names[k],
                 (unsigned long long) h->calls[k]);
    s_printf(&buf, &len, &cap, "# HELP swisd_time_to_first_token_seconds Time to first token.\n"
                               "# TYPE swisd_time_to_first_token_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b <= S_TTFT_N; b++) {
        cum += h->ttft_bucket[b];
        if (b < S_TTFT_N)
            s_printf(&buf, &len, &cap, "swisd_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", s_ttft_le[b],
                     (unsigned long long) cum);
        else
            s_printf(&buf, &len, &cap, "swisd_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\n",
                     (unsigned long long) cum);
    }
    s_printf(&buf, &len, &cap, "swisd_time_to_first_token_seconds_sum %.6f\nswisd_time_to_first_token_seconds_count %llu\n",
             h->ttft_sum, (unsigned long long) cum);
    pthread_mutex_unlock(&h->mu);
    if (swarm)
        s_printf(&buf, &len, &cap, "%s", swarm);
    free(swarm);
    return s_send(c, 200, "text/plain; version=0.0.4", buf ? buf : strdup(""), NULL);
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
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I}", "requests", (json_int_t) h->requests,
                                  "completions", completions, "tokens", tokens, "failed", (json_int_t) h->failed,
                                  "rate_limited", (json_int_t) h->rate_limited, "busy_rejected",
                                  (json_int_t) h->busy_rejected, "active_generations", (json_int_t) h->active,
                                  "abandoned", (json_int_t) h->abandoned));
    pthread_mutex_unlock(&h->mu);
    json_object_del(o, "gateway_totals");
    return s_json(c, 200, o);
}

/* ---- static files (the dashboard) ------------------------------------------------------ */

static const char *s_mime(const char *path)
{
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".ico", "image/x-icon"},
        {".json", "application/json"},         {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"}, {".map", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(dot, map[i][0]))
            return map[i][1];
    return "application/octet-stream";
}

/* GET of anything else: a file of web_dir. Paths are checked character by
 * character (letters, digits, '.', '_', '-', '/'; no "..", no "//"), so no
 * request can leave the folder; "/" and paths without a file extension
 * (client-side routes) give index.html. */
static enum MHD_Result s_static(sw_http_t *h, struct MHD_Connection *c, const char *url)
{
    if (!h->web_dir[0]) {
        if (strcmp(url, "/"))
            return s_error(c, 404, "invalid_request_error", "no such file", NULL);
        return s_send(c, 200, "text/html; charset=utf-8",
                      strdup("<!doctype html><title>swisd gateway</title><h1>swisd gateway</h1>"
                             "<p>The dashboard is not built: run <code>scripts/dev build</code> on a machine with "
                             "npm, or start the gateway with <code>--web web/dist</code>.</p>"
                             "<p>API: <a href=\"/v1/models\">/v1/models</a>, POST /v1/completions, "
                             "POST /v1/chat/completions, <a href=\"/api/swarm\">/api/swarm</a>, "
                             "<a href=\"/metrics\">/metrics</a>.</p>"),
                      NULL);
    }
    const size_t n = strlen(url);
    bool ok = n >= 1 && n < 256 && url[0] == '/' && !strstr(url, "..") && !strstr(url, "//");
    for (size_t i = 0; ok && i < n; i++) {
        const char ch = url[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
             ch == '_' || ch == '-' || ch == '/';
    }
    if (!ok)
        return s_error(c, 404, "invalid_request_error", "no such file", NULL);
    const char *base = strrchr(url, '/');
    const bool route = !strchr(base, '.'); /* "/", "/chat": the app */
    char path[1400];
    snprintf(path, sizeof path, "%s%s", h->web_dir, route ? "/index.html" : url);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        return s_error(c, 404, "invalid_request_error", "no such file", NULL);
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t) sb.st_size, fd); /* closes fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", s_mime(path));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    /* Vite names assets by content hash: they never change */
    MHD_add_response_header(r, "Cache-Control",
                            !strncmp(url, "/assets/", 8) ? "public, max-age=31536000, immutable" : "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
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
        h->bad_framing++;
        pthread_mutex_unlock(&h->mu);
        /* answered before the body: MHD reads no further request from this connection */
        char *text = s_error_text("invalid_request_error", bad, NULL);
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
            char *b = realloc(rq->body, rq->len + *upload_size + 1);
            if (b) {
                memcpy(b + rq->len, upload, *upload_size);
                rq->body = b;
                rq->len += *upload_size;
                rq->body[rq->len] = 0;
            }
        } else {
            rq->too_big = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&h->mu);
    h->requests++;
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
        struct stat sb;
        char index[1100];
        snprintf(index, sizeof index, "%s/index.html", cfg->web_dir);
        if (strlen(cfg->web_dir) >= sizeof h->web_dir || stat(index, &sb) != 0) {
            sw_err(err, errlen, "--web: %s has no index.html (build the dashboard: cd web && npm ci && npm run build)",
                   cfg->web_dir);
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
