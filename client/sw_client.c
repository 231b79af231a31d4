/*  sw_client.c: gateway RPC client (see sw_client.h). */
#include "sw_endpoint.h"
#include "sw_client.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "sw_common.h"
#include "sw_identity.h"
#include "sw_wire.h"

struct sw_client_t {
    zsock_t *sock;
    char server_txt[41];  /* the gateway's Z85 key from the endpoint, "" when plain */
    uint64_t next_id;
    sw_client_stop_fn *stop;    /* the caller's stop callback, or NULL */
    void *stop_user;
    int stop_every_ms;          /* how often stop is asked while waiting, ms */
};

/* The socket's linger, ms: long enough for a Cancel to leave after the
 * client is destroyed, short enough not to hold a process's exit. */
#define S_LINGER_MS 250

const char *sw_client_code_name(int code)
{
    switch (code) {
    case 0: return "OK";
    case SW_CLIENT_TIMEOUT: return "TIMEOUT";
    case SW_CLIENT_STOPPED: return "STOPPED";
    case SW_CLIENT_LOCAL: return "LOCAL";
    case SW_CLIENT_BAD_REPLY: return "BAD_REPLY";
    default: return code > 0 && code < 100 ? sw_wire_error_name(code) : "UNKNOWN";
    }
}

sw_client_t *sw_client_new(const char *endpoint, char *err, size_t errlen)
{
    return sw_client_new_keyed(endpoint, NULL, err, errlen);
}

sw_client_t *sw_client_new_keyed(const char *endpoint, const sw_identity_t *identity, char *err, size_t errlen)
{
    sw_client_t *c = calloc(1, sizeof *c);
    if (!c || !(c->sock = zsock_new(ZMQ_DEALER))) {
        free(c);
        sw_err(err, errlen, "cannot create a socket");
        return NULL;
    }
    sw_wire_socket_setup(c->sock, S_LINGER_MS, 1000);
    /* "tcp://HOST:PORT#KEY": CURVE to the gateway (as identity, or an anonymous client key) */
    if (sw_endpoint_connect(c->sock, endpoint, identity, err, errlen) != 0) {
        zsock_destroy(&c->sock);
        free(c);
        return NULL;
    }
    const char *hash = strchr(endpoint, '#'); /* the first '#' (Z85 keys may hold '#') */
    if (hash && strlen(hash + 1) < sizeof c->server_txt)
        snprintf(c->server_txt, sizeof c->server_txt, "%s", hash + 1);
    c->next_id = (uint64_t) sw_now_ns();
    return c;
}

void sw_client_destroy(sw_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zsock_destroy(&(*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

void sw_client_set_stop(sw_client_t *self, sw_client_stop_fn *fn, void *user, int every_ms)
{
    self->stop = fn;
    self->stop_user = user;
    self->stop_every_ms = every_ms < 10 ? 10 : every_ms > 60000 ? 60000 : every_ms;
}

/* Sets *code (when asked) and err; returns -1. */
static int s_fail(int *code, int value, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int s_fail(int *code, int value, char *err, size_t errlen, const char *fmt, ...)
{
    if (code)
        *code = value;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Whether the caller (or a signal) asks to stop; checked no more often than
 * every stop_every_ms. last_ns: when it was last asked, updated. */
static bool s_stopping(sw_client_t *c, uint64_t *last_ns, bool force)
{
    if (zsys_interrupted)
        return true;
    if (!c->stop)
        return false;
    const uint64_t now = sw_now_ns();
    if (!force && now - *last_ns < (uint64_t) c->stop_every_ms * 1000000u)
        return false;
    *last_ns = now;
    return c->stop(c->stop_user) != 0;
}

/* Waits for the next valid message answering request_id (an Error with
 * another non-zero request_id is a stale answer and is skipped); returns its
 * body (owned by m) or NULL with *code and err. */
static const Swisd__V1__Body *s_next(sw_client_t *c, sw_wire_msg_t *m, uint64_t request_id, int timeout_ms,
                                     int *code, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    uint64_t last = sw_now_ns();
    const uint64_t deadline = last + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    for (;;) {
        if (s_stopping(c, &last, false)) {
            s_fail(code, SW_CLIENT_STOPPED, err, errlen, "stopped by the caller");
            return NULL;
        }
        const uint64_t now = sw_now_ns();
        if (now >= deadline) {
            s_fail(code, SW_CLIENT_TIMEOUT, err, errlen, "no answer from the gateway in %d ms%s", timeout_ms,
                   c->server_txt[0] ? " (a wrong gateway key, or a gateway that serves only the keys it allows "
                                      "(--rpc-allow), completes no handshake)" : "");
            return NULL;
        }
        long wait_ms = (long) ((deadline - now + 999999u) / 1000000u);
        if (c->stop && wait_ms > c->stop_every_ms)
            wait_ms = c->stop_every_ms;
        zmq_pollitem_t it = {.socket = zsock_resolve(c->sock), .events = ZMQ_POLLIN};
        const int rc = zmq_poll(&it, 1, wait_ms);
        if (rc < 0 && errno != EINTR) {
            s_fail(code, SW_CLIENT_LOCAL, err, errlen, "poll: %s", zmq_strerror(errno));
            return NULL;
        }
        if (rc <= 0 || !(it.revents & ZMQ_POLLIN))
            continue;
        int wcode;
        char why[512];
        if (sw_wire_recv(c->sock, false, m, &wcode, why, sizeof why) != 0) {
            s_fail(code, SW_CLIENT_BAD_REPLY, err, errlen, "bad reply from the gateway: %s", why);
            return NULL;
        }
        const Swisd__V1__Body *b = sw_wire_body(m, &wcode, why, sizeof why);
        if (!b) {
            s_fail(code, SW_CLIENT_BAD_REPLY, err, errlen, "bad reply from the gateway: %s", why);
            return NULL;
        }
        if (b->msg_case == SWISD__V1__BODY__MSG_ERROR) {
            const Swisd__V1__Error *e = b->error;
            if (e->request_id && request_id && e->request_id != request_id) {
                sw_wire_msg_free(m); /* an earlier call's answer */
                continue;
            }
            const int ec = e->code > 0 && e->code < 100 ? (int) e->code : SWISD__V1__ERROR_CODE__ERROR_INTERNAL;
            s_fail(code, ec, err, errlen, "%s: %s", sw_wire_error_name(ec), e->message ? e->message : "");
            return NULL;
        }
        return b;
    }
}

/* Tells the gateway to end request_id (best effort: the socket lingers). */
static void s_cancel(sw_client_t *c, uint64_t request_id)
{
    Swisd__V1__Cancel x = SWISD__V1__CANCEL__INIT;
    x.request_id = request_id;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_CANCEL;
    b.cancel = &x;
    sw_wire_send(c->sock, NULL, "client", "", 0, &b);
}

int sw_client_generate(sw_client_t *self, const sw_client_request_t *req, sw_client_token_fn *on_token, void *user,
                       sw_client_summary_t *summary, int timeout_ms, int *code, char *err, size_t errlen)
{
    memset(summary, 0, sizeof *summary);
    if (code)
        *code = 0;
    Swisd__V1__SamplingParams sp = SWISD__V1__SAMPLING_PARAMS__INIT;
    sp.temperature = req->temperature;
    sp.top_k = req->top_k;
    sp.top_p = req->top_p;
    sp.min_p = req->min_p;
    sp.repeat_penalty = req->repeat_penalty;
    if (req->has_seed) {
        sp.optional_seed_case = SWISD__V1__SAMPLING_PARAMS__OPTIONAL_SEED_SEED;
        sp.seed = req->seed;
    }
    sp.ignore_eos = req->ignore_eos;
    Swisd__V1__GenerateRequest g = SWISD__V1__GENERATE_REQUEST__INIT;
    g.request_id = ++self->next_id;
    g.prompt = (char *) (req->prompt ? req->prompt : "");
    g.max_tokens = req->max_tokens;
    g.sampling = &sp;
    g.stop = (char **) req->stop;
    g.n_stop = req->stop ? (size_t) req->n_stop : 0;
    Swisd__V1__PromptPart *pp = NULL, **ppp = NULL;
    if (req->n_parts > 0) {
        pp = calloc(req->n_parts, sizeof *pp);
        ppp = calloc(req->n_parts, sizeof *ppp);
        if (!pp || !ppp) {
            free(pp), free(ppp);
            return s_fail(code, SW_CLIENT_LOCAL, err, errlen, "out of memory");
        }
        for (size_t i = 0; i < req->n_parts; i++) {
            swisd__v1__prompt_part__init(&pp[i]);
            pp[i].text = (char *) (req->parts[i].text ? req->parts[i].text : "");
            pp[i].special = req->parts[i].special;
            ppp[i] = &pp[i];
        }
        g.prompt_parts = ppp;
        g.n_prompt_parts = req->n_parts;
    }
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_GENERATE_REQUEST;
    b.generate_request = &g;
    const int sent = sw_wire_send(self->sock, NULL, "client", "", 0, &b);
    free(pp), free(ppp);
    if (sent != 0)
        return s_fail(code, SW_CLIENT_LOCAL, err, errlen, "cannot send the request");
    uint64_t last_stop = sw_now_ns();
    for (;;) {
        sw_wire_msg_t m;
        int rc_code = 0;
        const Swisd__V1__Body *r = s_next(self, &m, g.request_id, timeout_ms, &rc_code, err, errlen);
        if (!r) {
            sw_wire_msg_free(&m);
            if (rc_code == SW_CLIENT_STOPPED || rc_code == SW_CLIENT_TIMEOUT)
                s_cancel(self, g.request_id); /* the session must not run on for nobody */
            if (code)
                *code = rc_code;
            return -1;
        }
        if (r->msg_case != SWISD__V1__BODY__MSG_GENERATE_REPLY || r->generate_reply->request_id != g.request_id) {
            sw_wire_msg_free(&m); /* a stale reply of an earlier call */
            continue;
        }
        const Swisd__V1__GenerateReply *gr = r->generate_reply;
        if (gr->part_case == SWISD__V1__GENERATE_REPLY__PART_TOKEN) {
            const bool stop = (on_token && on_token((const char *) gr->token->text.data, gr->token->text.len,
                                                    gr->token->token_id, user) != 0) ||
                              s_stopping(self, &last_stop, false);
            sw_wire_msg_free(&m);
            if (stop) {
                s_cancel(self, g.request_id);
                return s_fail(code, SW_CLIENT_STOPPED, err, errlen, "stopped by the caller");
            }
            continue;
        }
        if (gr->part_case == SWISD__V1__GENERATE_REPLY__PART_SUMMARY) {
            const Swisd__V1__GenerateSummary *s = gr->summary;
            summary->prompt_tokens = s->prompt_tokens;
            summary->completion_tokens = s->completion_tokens;
            snprintf(summary->stop_reason, sizeof summary->stop_reason, "%s", s->stop_reason ? s->stop_reason : "");
            summary->time_to_first_token_ms = s->time_to_first_token_ms;
            summary->prefill_ms = s->prefill_ms;
            summary->decode_tokens_per_s = s->decode_tokens_per_s;
            summary->total_ms = s->total_ms;
            summary->n_route = (int) s->n_route;
            summary->acceptance_rate = s->acceptance_rate;
            summary->seed = s->seed;
            sw_wire_msg_free(&m);
            return 0;
        }
        sw_wire_msg_free(&m);
    }
}

/* Sends b and waits for a reply of kind want; NULL with *code and err. */
static const Swisd__V1__Body *s_call(sw_client_t *c, Swisd__V1__Body *b, int want, sw_wire_msg_t *m, int timeout_ms,
                                     int *code, char *err, size_t errlen)
{
    if (code)
        *code = 0;
    if (sw_wire_send(c->sock, NULL, "client", "", 0, b) != 0) {
        s_fail(code, SW_CLIENT_LOCAL, err, errlen, "cannot send the request");
        memset(m, 0, sizeof *m);
        return NULL;
    }
    for (;;) {
        const Swisd__V1__Body *r = s_next(c, m, 0, timeout_ms, code, err, errlen);
        if (!r || (int) r->msg_case == want)
            return r;
        sw_wire_msg_free(m);
    }
}

int sw_client_list_models(sw_client_t *self, char *model_id, size_t id_len, bool *servable, char *gaps,
                          size_t gaps_len, int timeout_ms, int *code, char *err, size_t errlen)
{
    Swisd__V1__ListModelsRequest q = SWISD__V1__LIST_MODELS_REQUEST__INIT;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_LIST_MODELS_REQUEST;
    b.list_models_request = &q;
    sw_wire_msg_t m;
    const Swisd__V1__Body *r = s_call(self, &b, SWISD__V1__BODY__MSG_LIST_MODELS_REPLY, &m, timeout_ms, code, err,
                                        errlen);
    int rc = -1;
    if (r && r->list_models_reply->n_models > 0) {
        const Swisd__V1__ModelInfo *mi = r->list_models_reply->models[0];
        if (model_id)
            snprintf(model_id, id_len, "%s", mi->model && mi->model->id ? mi->model->id : "");
        if (servable)
            *servable = mi->servable;
        if (gaps && gaps_len) {
            size_t used = 0;
            gaps[0] = 0;
            for (size_t i = 0; i < mi->n_gaps && used < gaps_len; i++) {
                int w = snprintf(gaps + used, gaps_len - used, "%s%u-%u", i ? ", " : "", mi->gaps[i]->begin,
                                 mi->gaps[i]->end - 1);
                used += w > 0 ? (size_t) w : 0;
            }
        }
        rc = 0;
    } else if (r) {
        s_fail(code, SW_CLIENT_BAD_REPLY, err, errlen, "the gateway lists no model");
    }
    sw_wire_msg_free(&m);
    return rc;
}

static const char *s_str(const char *s) { return s ? s : ""; }

int sw_client_swarm(sw_client_t *self, sw_client_swarm_fn *on_swarm, void *user, int timeout_ms, int *code,
                    char *err, size_t errlen)
{
    Swisd__V1__SwarmStatusRequest q = SWISD__V1__SWARM_STATUS_REQUEST__INIT;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_SWARM_STATUS_REQUEST;
    b.swarm_status_request = &q;
    sw_wire_msg_t m;
    const Swisd__V1__Body *r = s_call(self, &b, SWISD__V1__BODY__MSG_SWARM_STATUS_REPLY, &m, timeout_ms, code, err,
                                        errlen);
    if (!r) {
        sw_wire_msg_free(&m);
        return -1;
    }
    enum { MAX_ST = 256, MAX_SS = 256, MAX_GAPS = 64 };
    sw_client_stage_t *st = calloc(MAX_ST, sizeof *st);
    sw_client_session_t *ss = calloc(MAX_SS, sizeof *ss);
    uint32_t(*gaps)[2] = calloc(MAX_GAPS, sizeof *gaps);
    const size_t n_recent = r->swarm_status_reply->n_recent;
    sw_client_sample_t *rec = calloc(n_recent ? n_recent : 1, sizeof *rec);
    if (!st || !ss || !gaps || !rec) {
        free(st), free(ss), free(gaps), free(rec);
        sw_wire_msg_free(&m);
        return s_fail(code, SW_CLIENT_LOCAL, err, errlen, "out of memory");
    }
    const Swisd__V1__SwarmStatusReply *sr = r->swarm_status_reply;
    sw_client_swarm_t w = {.gateway_id = s_str(sr->gateway_id), .region = s_str(sr->region),
                           .gateway_key = self->server_txt,
                           .model_id = sr->model ? s_str(sr->model->id) : "",
                           .checksum = sr->model ? s_str(sr->model->checksum) : "",
                           .n_layer = sr->model ? sr->model->n_layer : 0, .n_embd = sr->model ? sr->model->n_embd : 0,
                           .n_vocab = sr->model ? sr->model->n_vocab : 0, .stages = st, .sessions = ss,
                           .gaps = (const uint32_t(*)[2]) gaps};
    for (size_t i = 0; i < sr->n_stages && w.n_stages < MAX_ST; i++) {
        const Swisd__V1__StageInfo *x = sr->stages[i];
        st[w.n_stages++] = (sw_client_stage_t){
            .node_id = s_str(x->node_id), .display_name = s_str(x->display_name), .region = s_str(x->region), .broker_id = s_str(x->broker_id),
            .model_id = x->model ? s_str(x->model->id) : "", .begin = x->layers ? x->layers->begin : 0,
            .end = x->layers ? x->layers->end : 0, .rtt_ms = x->rtt_ms, .age_ms = x->age_ms,
            .threads = x->caps ? x->caps->threads : 0, .ms_per_layer = x->caps ? x->caps->ms_per_layer : 0,
            .active_sessions = x->load ? x->load->active_sessions : 0,
            .queued_requests = x->load ? x->load->queued_requests : 0, .kv_bytes = x->load ? x->load->kv_bytes : 0,
            .busy = x->load ? x->load->busy : 0, .audit_stage = x->caps && x->caps->audit,
        };
        for (size_t k = 0; k < sr->n_trust; k++) { /* its trust, when the gateway audits */
            const Swisd__V1__NodeTrust *t = sr->trust[k];
            if (!t || !t->node_id || !x->node_id || strcmp(t->node_id, x->node_id))
                continue;
            sw_client_stage_t *y = &st[w.n_stages - 1];
            y->has_trust = true;
            y->verified = t->verified;
            y->failed = t->failed;
            y->audit_rate = t->audit_rate;
            y->trusted = t->trusted;
            break;
        }
    }
    for (size_t i = 0; i < sr->n_sessions && w.n_sessions < MAX_SS; i++) {
        const Swisd__V1__SessionStatus *x = sr->sessions[i];
        ss[w.n_sessions++] = (sw_client_session_t){.session_id = s_str(x->session_id), .tokens = x->tokens,
                                                   .tokens_per_s = x->tokens_per_s,
                                                   .acceptance_rate = x->acceptance_rate};
    }
    for (size_t i = 0; i < sr->n_gaps && w.n_gaps < MAX_GAPS; i++) {
        gaps[w.n_gaps][0] = sr->gaps[i]->begin;
        gaps[w.n_gaps][1] = sr->gaps[i]->end;
        w.n_gaps++;
    }
    for (size_t i = 0; i < n_recent; i++) {
        const Swisd__V1__GenerationSample *x = sr->recent[i];
        rec[i] = (sw_client_sample_t){.end_unix_ms = (double) x->end_unix_ms, .prompt_tokens = x->prompt_tokens,
                                      .completion_tokens = x->completion_tokens,
                                      .decode_tokens_per_s = x->decode_tokens_per_s,
                                      .ttft_ms = x->time_to_first_token_ms, .acceptance_rate = x->acceptance_rate};
    }
    w.recent = rec;
    w.n_recent = (int) n_recent;
    w.generations_total = sr->generations_total;
    w.tokens_generated_total = sr->tokens_generated_total;
    w.unsealed_replies_total = sr->unsealed_replies_total;
    for (size_t i = 0; i < sr->n_unsealed_replies && w.n_unsealed < 16; i++) {
        if (!sr->unsealed_replies[i] || !sr->unsealed_replies[i]->node_id)
            continue;
        w.unsealed_node[w.n_unsealed] = sr->unsealed_replies[i]->node_id;
        w.unsealed_count[w.n_unsealed++] = sr->unsealed_replies[i]->count;
    }
    uint32_t unverified[64][2];
    if (sr->audit) {
        const Swisd__V1__AuditStatus *a = sr->audit;
        w.has_audit = true;
        w.audits_started = a->started;
        w.audits_passed = a->passed;
        w.audits_failed = a->failed;
        w.chain_breaks = a->chain_breaks;
        w.unverifiable = a->unverifiable;
        w.delivered_differs = a->delivered_differs;
        w.max_agreeing_distance = a->max_agreeing_distance;
        w.audit_threshold = a->threshold;
        w.caught = (const char *const *) a->caught;
        w.n_caught = (int) (a->n_caught < 64 ? a->n_caught : 64);
    }
    for (size_t i = 0; i < sr->n_unverified && w.n_unverified < 64; i++) {
        unverified[w.n_unverified][0] = sr->unverified[i]->begin;
        unverified[w.n_unverified][1] = sr->unverified[i]->end;
        w.n_unverified++;
    }
    w.unverified = (const uint32_t(*)[2]) unverified;
    on_swarm(&w, user);
    free(st), free(ss), free(gaps), free(rec);
    sw_wire_msg_free(&m);
    return 0;
}
