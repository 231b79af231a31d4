/*  sw_http_generate.c: a generation over HTTP (see sw_http.h): the body
 *  checked (sw_openai), the concurrency caps taken, the gateway called
 *  (sw_client), the answer sent whole or streamed as server-sent events
 *  through a pipe from a producer thread to libmicrohttpd's reader. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_client.h"
#include "sw_common.h"
#include "sw_fairuse.h"
#include "sw_http_internal.h"
#include "sw_openai.h"

#define S_PIPE_BYTES (1 << 20) /* SSE text a streaming client may leave unread before its generation is stopped */

typedef struct {
    sw_http_t *h;
    sw_openai_request_t *rq;              /* the checked request (owned) */
    char ip[64];
    sw_fairuse_addr_t addr;               /* the fair-use key: the address, or the API token's key */
    sw_fairuse_t *fair;                   /* the table it is in (per address or per key; h's, under h->mu) */
    double scale;                         /* cost factor of its meters (1, or 1 / boost for a key) */
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
    } else if (sw_text_append(&g->text, &g->len, &g->cap, text, len) != 0) {
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
    sw_fairuse_end(g->fair, &g->addr, SW__HTTP_METER_GEN, used * g->scale, sw__http_now());
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
    sw_client_t *cl = sw_client_new_keyed(h->rpc, h->cfg.identity, g->err, sizeof g->err);
    int rc = -1;
    if (cl) {
        sw_client_set_stop(cl, s_gen_stop, g, SW__HTTP_STOP_CHECK_MS);
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
    char *e = sw__http_call_error_json(g->code, g->err);
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
            atomic_store(&g->gone, true); /* the producer stops within SW__HTTP_STOP_CHECK_MS */
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
        return sw__http_error(c, 500, "server_error", "cannot stream", NULL);
    }
    g->fd_read = fds[0];
    g->fd_write = fds[1];
    fcntl(g->fd_write, F_SETFL, O_NONBLOCK);
    fcntl(g->fd_write, F_SETPIPE_SZ, S_PIPE_BYTES); /* best effort: the default is 64 KiB */
    if (pthread_create(&g->thread, NULL, s_stream_thread, g) != 0) {
        s_gen_end(g, -1, 0);
        s_gen_free(g);
        return sw__http_error(c, 500, "server_error", "cannot stream", NULL);
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
    enum MHD_Result res = first < 0 ? MHD_NO : sw__http_call_error(c, g->code, g->err);
    s_gen_free(g);
    return res;
}

enum MHD_Result sw__http_generate(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, bool chat)
{
    char why[256];
    bool oom = false;
    const sw_openai_limits_t lim = {.max_tokens = h->cfg.max_tokens, .chat_format = h->cfg.chat_format};
    sw_openai_request_t *req = sw_openai_request_parse(rq->body, rq->len, chat, &lim, &oom, why, sizeof why);
    if (!req)
        return oom ? sw__http_error(c, 500, "server_error", why, NULL) : sw__http_error(c, 400, "invalid_request_error", why, NULL);
    s_gen_t *g = calloc(1, sizeof *g);
    if (!g) {
        sw_openai_request_destroy(&req);
        return sw__http_error(c, 500, "server_error", "out of memory", NULL);
    }
    g->h = h;
    g->rq = req;
    g->fd_read = g->fd_write = -1;
    atomic_init(&g->gone, false);
    g->created = (long) time(NULL);
    snprintf(g->id, sizeof g->id, "%s-%llx", chat ? "chatcmpl" : "cmpl", (unsigned long long) sw_now_ns());
    snprintf(g->ip, sizeof g->ip, "%s", rq->ip);
    g->addr = rq->meter_key;
    g->fair = sw__http_fair(h, rq);
    g->scale = rq->scale;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->conn_fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&h->mu);
    const bool full = h->n.active >= h->cfg.max_concurrent;
    const sw_fairuse_result_t fr =
        full ? SW_FAIRUSE_OK
             : sw_fairuse_take(g->fair, &g->addr, NULL, NULL, h->cfg.max_concurrent_per_addr, sw__http_now(), NULL);
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
            return sw__http_error(c, 429, "rate_limit_exceeded", "too many generations in progress from this address", "1");
        return sw__http_error(c, 503, "server_busy", "too many concurrent requests; try again shortly", "1");
    }
    if (g->rq->stream)
        return s_generate_stream(c, g);
    const int rc = s_run(g);
    enum MHD_Result res;
    if (rc != 0 && atomic_load(&g->gone)) {
        res = MHD_NO; /* the client left: nobody to answer */
    } else if (rc != 0) {
        res = sw__http_call_error(c, g->code, g->err);
    } else {
        char *out = sw_openai_completion_json(chat, g->id, g->created, h->model_id, g->text, g->len, &g->sum);
        res = out ? sw__http_send(c, 200, "application/json", out, NULL)
                  : sw__http_error(c, 500, "server_error", "out of memory in the HTTP server; the answer would be incomplete",
                            NULL);
    }
    s_gen_free(g);
    return res;
}
