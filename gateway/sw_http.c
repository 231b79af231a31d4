/*  sw_http.c: OpenAI-compatible HTTP API over the gateway RPC (see sw_http.h). */
#include "sw_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sw_chat.h"
#include "sw_client.h"
#include "sw_common.h"

#define S_BUCKETS 256

typedef struct {
    char ip[64];
    double tokens;   /* requests that may still be made now */
    double gen;      /* generated tokens that may still be asked for now (may be negative: overdrawn) */
    double last;     /* seconds, monotonic */
} s_bucket_t;


/* Time-to-first-token histogram bounds, seconds (Prometheus "le" labels). */
static const double s_ttft_le[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define S_TTFT_N (sizeof s_ttft_le / sizeof s_ttft_le[0])

struct sw_http_t {
    sw_http_config_t cfg;
    /* metrics, under mu */
    uint64_t requests, rate_limited, busy_rejected, failed, completions, tokens;
    uint64_t ttft_bucket[S_TTFT_N + 1]; /* last: +Inf */
    double ttft_sum, last_tps;
    char rpc[256], model_id[129];
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    int active;                    /* generations in progress */
    s_bucket_t buckets[S_BUCKETS]; /* per-IP token buckets (hashed, overwrite on collision) */
    char *swarm_json;              /* cached /api/swarm answer (swarm part), and when it was made */
    double swarm_json_at;
    char web_dir[1024];            /* "" when there is no dashboard */
};

typedef struct {
    char *body;
    size_t len;
    bool too_big;
    char ip[64];
} s_req_t;

static double s_now(void) { return sw_now_ns() / 1e9; }

/* ---- responses ---------------------------------------------------------------- */

static enum MHD_Result s_send(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                              const char *retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
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

static enum MHD_Result s_error(struct MHD_Connection *c, unsigned status, const char *type, const char *msg,
                               const char *retry_after)
{
    json_t *j = json_pack("{s:{s:s, s:s, s:n}}", "error", "message", msg, "type", type, "code");
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s_send(c, status, "application/json", text ? text : strdup("{}"), retry_after);
}

/* ---- fair use ---------------------------------------------------------------- */

/* The client's address as text ("?" if unknown). */
static void s_client_ip(struct MHD_Connection *c, char ip[64])
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(ip, 64, "?");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, ip, 64);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, ip, 64);
    }
}

static double s_gen_burst(const sw_http_t *h)
{
    const double b = 60 * h->cfg.token_rate;
    return b > h->cfg.max_tokens ? b : h->cfg.max_tokens;
}

/* The client's bucket, refilled to now. Call with mu held. */
static s_bucket_t *s_bucket(sw_http_t *h, const char *ip)
{
    unsigned hash = 5381;
    for (const char *p = ip; *p; p++)
        hash = hash * 33 + (unsigned char) *p;
    const double now = s_now(), burst = 2 * h->cfg.rate_rps, gen_burst = s_gen_burst(h);
    s_bucket_t *b = &h->buckets[hash % S_BUCKETS];
    if (strcmp(b->ip, ip)) {
        snprintf(b->ip, sizeof b->ip, "%s", ip);
        b->tokens = burst;
        b->gen = gen_burst;
        b->last = now;
    }
    b->tokens += (now - b->last) * h->cfg.rate_rps;
    if (b->tokens > burst)
        b->tokens = burst;
    b->gen += (now - b->last) * h->cfg.token_rate;
    if (b->gen > gen_burst)
        b->gen = gen_burst;
    b->last = now;
    return b;
}

/* Takes one request from the client's bucket; with generate, also needs
 * generated-token credit. Returns 0, or the seconds to wait. */
static int s_rate(sw_http_t *h, const char *ip, bool generate)
{
    pthread_mutex_lock(&h->mu);
    s_bucket_t *b = s_bucket(h, ip);
    int wait = 0;
    if (b->tokens < 1)
        wait = (int) ((1 - b->tokens) / h->cfg.rate_rps) + 1;
    else if (generate && b->gen < 1)
        wait = (int) ((1 - b->gen) / h->cfg.token_rate) + 1;
    else
        b->tokens -= 1;
    pthread_mutex_unlock(&h->mu);
    return wait;
}

/* Charges generated tokens to the client's bucket. */
static void s_charge(sw_http_t *h, const char *ip, uint32_t n)
{
    pthread_mutex_lock(&h->mu);
    s_bucket(h, ip)->gen -= n;
    pthread_mutex_unlock(&h->mu);
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
    char *stops[5];
    bool chat, stream;
    char id[40];
    long created;
    /* non-streaming: the text; streaming: the pipe to the response */
    char *text;
    size_t len, cap;
    int fd_read, fd_write;
    pthread_t thread;
    bool thread_started;
    sw_client_summary_t sum;
    int rc;
    char err[1200];
} s_gen_t;

static void s_gen_free(s_gen_t *g)
{
    if (!g)
        return;
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

/* One SSE event holding a chunk of text (or the final finish_reason). */
static void s_sse(s_gen_t *g, const char *text, size_t len, const char *finish)
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
    if (body) {
        dprintf(g->fd_write, "data: %s\n\n", body);
        free(body);
    }
}

static int s_on_token_text(const char *text, size_t len, uint32_t token_id, void *user)
{
    (void) token_id;
    s_gen_t *g = user;
    if (g->stream) {
        if (len)
            s_sse(g, text, len, NULL);
    } else {
        s_append(g, text, len);
    }
    return 0;
}

static int s_run(s_gen_t *g)
{
    sw_client_t *cl = sw_client_new(g->h->rpc, g->err, sizeof g->err);
    int code = 0;
    int rc = cl ? sw_client_generate(cl, &g->req, s_on_token_text, g, &g->sum, g->h->cfg.timeout_ms, &code, g->err,
                                     sizeof g->err)
                : -1;
    sw_client_destroy(&cl);
    sw_http_t *h = g->h;
    s_charge(h, g->ip, g->sum.completion_tokens);
    pthread_mutex_lock(&h->mu);
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
    } else {
        h->failed++;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void *s_stream_thread(void *arg)
{
    s_gen_t *g = arg;
    g->rc = s_run(g);
    if (g->rc == 0)
        s_sse(g, NULL, 0, s_finish_reason(&g->sum));
    else
        dprintf(g->fd_write, "data: {\"error\":{\"message\":\"%s\",\"type\":\"server_error\"}}\n\n",
                strstr(g->err, "NO_ROUTE") ? "no route: some layers have no live stage" : "generation failed");
    dprintf(g->fd_write, "data: [DONE]\n\n");
    close(g->fd_write);
    g->fd_write = -1;
    pthread_mutex_lock(&g->h->mu);
    g->h->active--;
    pthread_mutex_unlock(&g->h->mu);
    return NULL;
}

static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    s_gen_t *g = cls;
    ssize_t n = read(g->fd_read, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void s_stream_free(void *cls)
{
    s_gen_t *g = cls;
    close(g->fd_read); /* a vanished client: the producer's writes fail, it finishes, we join */
    if (g->thread_started)
        pthread_join(g->thread, NULL);
    if (g->fd_write >= 0)
        close(g->fd_write);
    s_gen_free(g);
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
    g->fd_read = g->fd_write = -1;
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
    if ((v = json_object_get(j, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            *why = "'seed' must be a non-negative integer";
            goto bad;
        }
        g->req.seed = (uint64_t) json_integer_value(v);
    }
    if ((v = json_object_get(j, "stop")) && !json_is_null(v)) {
        if (json_is_string(v)) {
            g->stops[0] = strdup(json_string_value(v));
            g->req.n_stop = 1;
        } else if (json_is_array(v) && json_array_size(v) <= 4) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                if (!json_is_string(json_array_get(v, i)) || strlen(json_string_value(json_array_get(v, i))) > 256) {
                    *why = "'stop' must be a string or up to 4 strings";
                    goto bad;
                }
                g->stops[g->req.n_stop++] = strdup(json_string_value(json_array_get(v, i)));
            }
        } else {
            *why = "'stop' must be a string or up to 4 strings";
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
    g->req.top_k = 0;
    g->req.min_p = 0;
    g->req.repeat_penalty = 1.0f;
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
    pthread_mutex_lock(&h->mu);
    bool full = h->active >= h->cfg.max_concurrent;
    if (!full)
        h->active++;
    pthread_mutex_unlock(&h->mu);
    if (full) {
        pthread_mutex_lock(&h->mu);
        h->busy_rejected++;
        pthread_mutex_unlock(&h->mu);
        s_gen_free(g);
        return s_error(c, 503, "server_busy", "too many concurrent requests; try again shortly", "1");
    }
    if (g->stream) {
        int fds[2];
        if (pipe(fds) != 0) {
            pthread_mutex_lock(&h->mu);
            h->active--;
            pthread_mutex_unlock(&h->mu);
            s_gen_free(g);
            return s_error(c, 500, "server_error", "cannot stream", NULL);
        }
        g->fd_read = fds[0];
        g->fd_write = fds[1];
        g->thread_started = pthread_create(&g->thread, NULL, s_stream_thread, g) == 0;
        if (!g->thread_started) {
            close(g->fd_write);
            g->fd_write = -1;
        }
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, s_stream_read, g,
                                                                   s_stream_free);
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    int rc = s_run(g);
    pthread_mutex_lock(&h->mu);
    h->active--;
    pthread_mutex_unlock(&h->mu);
    enum MHD_Result res;
    if (rc != 0) {
        unsigned status = strstr(g->err, "NO_ROUTE") ? 503 : strstr(g->err, "BAD_REQUEST") ? 400
                          : strstr(g->err, "no answer") ? 504 : 500;
        res = s_error(c, status, status == 400 ? "invalid_request_error" : "server_error", g->err, NULL);
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

static enum MHD_Result s_models(sw_http_t *h, struct MHD_Connection *c)
{
    char err[512], id[129] = "", gaps[256] = "";
    bool servable = false;
    sw_client_t *cl = sw_client_new(h->rpc, err, sizeof err);
    int rc = cl ? sw_client_list_models(cl, id, sizeof id, &servable, gaps, sizeof gaps, 5000, NULL, err, sizeof err) : -1;
    sw_client_destroy(&cl);
    if (rc != 0)
        return s_error(c, 503, "server_error", "the gateway did not answer", NULL);
    json_t *m = json_pack("{s:s, s:s, s:i, s:s, s:b, s:s}", "id", id, "object", "model", "created", 0, "owned_by",
                          "swisd", "servable", servable, "missing_layers", gaps);
    return s_json(c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

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

/* GET /metrics: Prometheus text exposition format, version 0.0.4. */
static enum MHD_Result s_metrics(sw_http_t *h, struct MHD_Connection *c)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    pthread_mutex_lock(&h->mu);
    s_printf(&buf, &len, &cap,
             "# HELP swisd_http_requests_total HTTP requests received.\n# TYPE swisd_http_requests_total counter\n"
             "swisd_http_requests_total %llu\n"
             "# HELP swisd_rate_limited_total Requests answered 429.\n# TYPE swisd_rate_limited_total counter\n"
             "swisd_rate_limited_total %llu\n"
             "# HELP swisd_busy_rejected_total Requests answered 503 for the concurrency cap.\n"
             "# TYPE swisd_busy_rejected_total counter\nswisd_busy_rejected_total %llu\n"
             "# HELP swisd_generations_failed_total Generations that ended in an error.\n"
             "# TYPE swisd_generations_failed_total counter\nswisd_generations_failed_total %llu\n"
             "# HELP swisd_tokens_generated_total Completion tokens generated.\n"
             "# TYPE swisd_tokens_generated_total counter\nswisd_tokens_generated_total %llu\n"
             "# HELP swisd_decode_tokens_per_second Decode speed of the last finished generation.\n"
             "# TYPE swisd_decode_tokens_per_second gauge\nswisd_decode_tokens_per_second %.3f\n"
             "# HELP swisd_active_generations Generations in progress over HTTP.\n"
             "# TYPE swisd_active_generations gauge\nswisd_active_generations %d\n"
             "# HELP swisd_time_to_first_token_seconds Time to first token.\n"
             "# TYPE swisd_time_to_first_token_seconds histogram\n",
             (unsigned long long) h->requests, (unsigned long long) h->rate_limited,
             (unsigned long long) h->busy_rejected, (unsigned long long) h->failed, (unsigned long long) h->tokens,
             h->last_tps, h->active);
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
    /* the swarm as the gateway sees it */
    s_metrics_ctx_t m = {.buf = &buf, .len = &len, .cap = &cap};
    char err[256];
    sw_client_t *cl = sw_client_new(h->rpc, err, sizeof err);
    if (cl)
        sw_client_swarm(cl, s_metrics_swarm, &m, 3000, NULL, err, sizeof err);
    sw_client_destroy(&cl);
    return s_send(c, 200, "text/plain; version=0.0.4", buf ? buf : strdup(""), NULL);
}

/* ---- the dashboard's JSON ------------------------------------------------------------ */

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

/* GET /api/swarm: the swarm part is asked of the gateway at most every
 * 500 ms (shared by every viewer); counters and history are current. */
static enum MHD_Result s_swarm(sw_http_t *h, struct MHD_Connection *c)
{
    json_t *o = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->swarm_json && s_now() - h->swarm_json_at < 0.5)
        o = json_loads(h->swarm_json, 0, NULL);
    pthread_mutex_unlock(&h->mu);
    if (!o) {
        char err[256];
        o = json_object();
        sw_client_t *cl = sw_client_new(h->rpc, err, sizeof err);
        const int rc = cl ? sw_client_swarm(cl, s_swarm_json, o, 3000, NULL, err, sizeof err) : -1;
        sw_client_destroy(&cl);
        if (rc != 0) {
            json_decref(o);
            return s_error(c, 503, "server_error", "the gateway did not answer", NULL);
        }
        char *text = json_dumps(o, JSON_COMPACT);
        pthread_mutex_lock(&h->mu);
        free(h->swarm_json);
        h->swarm_json = text;
        h->swarm_json_at = s_now();
        pthread_mutex_unlock(&h->mu);
    }
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
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "requests", (json_int_t) h->requests,
                                  "completions", completions, "tokens", tokens, "failed", (json_int_t) h->failed,
                                  "rate_limited", (json_int_t) h->rate_limited, "busy_rejected",
                                  (json_int_t) h->busy_rejected, "active_generations", (json_int_t) h->active));
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
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
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
    if (!strcmp(url, "/healthz"))
        return s_send(c, 200, "text/plain", strdup("ok\n"), NULL);
    if (!strcmp(url, "/metrics"))
        return s_metrics(h, c);
    if (!strcmp(url, "/api/swarm"))
        return get ? s_swarm(h, c) : s_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    const bool completions = !strcmp(url, "/v1/completions"), chat = !strcmp(url, "/v1/chat/completions");
    const bool models = !strcmp(url, "/v1/models");
    if (!completions && !chat && !models) {
        if (!strncmp(url, "/v1/", 4) || !strncmp(url, "/api/", 5))
            return s_error(c, 404, "invalid_request_error", "no such endpoint", NULL);
        return get ? s_static(h, c, url) : s_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    }
    if ((completions || chat) ? !post : !get)
        return s_error(c, 405, "invalid_request_error", "method not allowed", NULL);
    s_client_ip(c, rq->ip);
    int wait = s_rate(h, rq->ip, completions || chat);
    if (wait > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", wait);
        pthread_mutex_lock(&h->mu);
        h->rate_limited++;
        pthread_mutex_unlock(&h->mu);
        return s_error(c, 429, "rate_limit_exceeded", "too many requests or generated tokens from this address", ra);
    }
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
    if (h->cfg.rate_rps <= 0) h->cfg.rate_rps = 5;
    if (h->cfg.timeout_ms <= 0) h->cfg.timeout_ms = 60000;
    if (h->cfg.token_rate <= 0) h->cfg.token_rate = 50;
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
    pthread_mutex_init(&h->mu, NULL);
    signal(SIGPIPE, SIG_IGN); /* a streaming client that vanishes must not kill the gateway */
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                            s_handler, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, s_completed, h, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned) 300, MHD_OPTION_CONNECTION_LIMIT, (unsigned) 256, MHD_OPTION_END);
    if (!h->d) {
        sw_err(err, errlen, "cannot serve HTTP on %s (address in use?)", cfg->addr);
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
    MHD_stop_daemon((*self_p)->d);
    pthread_mutex_destroy(&(*self_p)->mu);
    free((*self_p)->swarm_json);
    free(*self_p);
    *self_p = NULL;
}

int sw_http_port(const sw_http_t *self) { return self->port; }
