/*  sw_session.c: one generation request as a pure state machine (see
 *  sw_session.h). */
#include "sw_session.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_spec.h"
#include "sw_wire.h"

struct sw_session_env_t {
    sw_session_env_config_t cfg;
    const sw_hparams_t *hp;       /* the target's */
    int32_t draft_embd;           /* the draft's n_embd (0 without draft) */
    float *logits;                /* (SW_SESSION_GAMMA_LIMIT + 1, n_vocab) scratch */
    float *p;                     /* (SW_SESSION_GAMMA_LIMIT + 1, n_vocab) target probabilities of a round */
    float *work;                  /* (n_vocab) scratch of sw_spec_verify */
    float *dh;                    /* (SW_SESSION_PREFILL_CHUNK, draft n_embd) draft hidden rows */
};

typedef enum { S_WAIT_ROUTE, S_WAIT_REPLY, S_DONE } s_state_t;

struct sw_session_t {
    sw_session_env_t *env;
    char id[SW_SESSION_ID_MAX + 1];
    s_state_t state;
    sw_route_t *route;
    uint64_t rng;                  /* splitmix64 state: request ids, jitter */
    uint64_t seed;                 /* the sampler's seed, for the summary */
    uint64_t req_id;               /* forward request in flight (0: none) */
    int32_t *tokens;               /* (cap_tokens) history: prompt, generated, then a round's proposals */
    int64_t n_tokens, n_prompt;
    int64_t n_sent;                /* history rows sent through the current route */
    int32_t last_n;                /* rows of the step in flight */
    int32_t max_tokens, n_gen;
    bool ignore_eos;
    sw_sampler_t *sampler;
    char *stops[SW_SESSION_MAX_STOPS];
    int n_stops;
    char *text;                    /* completion text, NUL-terminated */
    size_t text_len, text_cap, text_sent;
    uint64_t t_start, t_first, t_prefill, t_step, route_deadline; /* monotonic ns */
    /* speculative decoding */
    sw_kv_t *draft_kv;             /* the draft's cache; positions < draft_n match tokens */
    int32_t draft_n;
    int gamma;                     /* proposals of the round in flight (0: plain step) */
    int gamma_next;                /* proposals for the next round */
    float *q;                      /* (SW_SESSION_GAMMA_LIMIT, n_vocab) draft probabilities of the round */
    double accept_ema, round_ms_ema, draft_ms_ema; /* fraction, ms, ms per proposal */
    uint64_t proposed, accepted, rounds;
    /* failover */
    int64_t prefill_to;            /* rows to (re)send before sampling: the prompt, or the history on replay */
    int recoveries;                /* failovers so far */
    uint64_t first_recovery_ns;    /* when the first one happened */
    double step_ms_ema;            /* decode step time, ms, for the step deadline */
    uint64_t not_before_ns;        /* do not plan before (after an overload answer) */
    int overloads;                 /* "overloaded" answers in a row (the wait doubles) */
    double route_ms;               /* the planner's expected decode step time of the route, ms */
    char fail_text[SW_SESSION_TEXT_MAX]; /* the FAIL message */
    sw_session_actions_t *out;     /* actions of the event being handled */
};

/* ---- env ---------------------------------------------------------------------- */

sw_session_env_t *sw_session_env_new(const sw_session_env_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->model || !cfg->tok || !cfg->ex || cfg->timeout_ms <= 0 || cfg->route_wait_ms <= 0) {
        sw_err(err, errlen, "%s: model, tokenizer, exec and positive time-outs are required", __func__);
        return NULL;
    }
    sw_session_env_t *e = calloc(1, sizeof *e);
    if (!e) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    e->hp = sw_model_hparams(cfg->model);
    const size_t V = (size_t) e->hp->n_vocab;
    e->logits = malloc(sizeof(float) * (SW_SESSION_GAMMA_LIMIT + 1) * V);
    bool ok = e->logits != NULL;
    if (cfg->draft) {
        if (cfg->gamma_max < 1 || cfg->gamma_max > SW_SESSION_GAMMA_LIMIT ||
            sw_model_hparams(cfg->draft)->n_vocab != e->hp->n_vocab) {
            sw_err(err, errlen, "%s: gamma_max must be 1..%d and the draft must share the vocabulary", __func__,
                   SW_SESSION_GAMMA_LIMIT);
            sw_session_env_destroy(&e);
            return NULL;
        }
        e->draft_embd = sw_model_hparams(cfg->draft)->n_embd;
        e->p = malloc(sizeof(float) * (SW_SESSION_GAMMA_LIMIT + 1) * V);
        e->work = malloc(sizeof(float) * V);
        e->dh = malloc(sizeof(float) * SW_SESSION_PREFILL_CHUNK * (size_t) e->draft_embd);
        ok = ok && e->p && e->work && e->dh;
    }
    if (!ok) {
        sw_err(err, errlen, "out of memory");
        sw_session_env_destroy(&e);
    }
    return e;
}

void sw_session_env_destroy(sw_session_env_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_session_env_t *e = *self_p;
    free(e->logits);
    free(e->p);
    free(e->work);
    free(e->dh);
    free(e);
    *self_p = NULL;
}

/* ---- life ----------------------------------------------------------------------- */

sw_session_t *sw_session_new(sw_session_env_t *env, const sw_session_config_t *cfg, int *code, char *err,
                             size_t errlen)
{
    *code = SWISD__V1__ERROR_CODE__ERROR_INTERNAL;
    sw_session_t *s = calloc(1, sizeof *s);
    if (!s) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    s->env = env;
    snprintf(s->id, sizeof s->id, "%s", cfg->id ? cfg->id : "");
    s->max_tokens = cfg->max_tokens;
    s->ignore_eos = cfg->ignore_eos;
    s->rng = cfg->rng_seed;
    s->seed = cfg->sampling.seed;
    s->route = sw_route_new();
    const int32_t n_vocab = env->hp->n_vocab;
    s->sampler = sw_sampler_new(&cfg->sampling, n_vocab);
    const int64_t n = cfg->n_prompt;
    if (!s->route) {
        sw_err(err, errlen, "out of memory");
        goto fail;
    }
    if (!s->sampler) {
        *code = SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST;
        sw_err(err, errlen, "cannot accept the request (bad sampling parameters or out of memory)");
        goto fail;
    }
    *code = SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    if (n < 1) {
        sw_err(err, errlen, "the prompt is empty and the model adds no BOS token");
        goto fail;
    }
    if (cfg->max_tokens < 1) {
        sw_err(err, errlen, "max_tokens must be at least 1");
        goto fail;
    }
    if (n + cfg->max_tokens > env->hp->n_ctx_train) {
        sw_err(err, errlen, "prompt (%lld tokens) + max_tokens (%d) exceeds the model's context of %d",
               (long long) n, (int) cfg->max_tokens, (int) env->hp->n_ctx_train);
        goto fail;
    }
    if (cfg->n_stops < 0 || cfg->n_stops > SW_SESSION_MAX_STOPS) {
        sw_err(err, errlen, "at most %d stop strings", SW_SESSION_MAX_STOPS);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++)
        if (cfg->prompt[i] < 0 || cfg->prompt[i] >= n_vocab) {
            sw_err(err, errlen, "prompt token %lld is out of the vocabulary", (long long) i);
            goto fail;
        }
    *code = SWISD__V1__ERROR_CODE__ERROR_INTERNAL;
    /* sized only after the checks above: at most n_ctx_train + a round's proposals */
    s->tokens = malloc(sizeof(int32_t) * (size_t) (n + cfg->max_tokens + SW_SESSION_GAMMA_LIMIT + 2));
    if (!s->tokens) {
        sw_err(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < cfg->n_stops; i++) {
        if (!cfg->stops[i] || !cfg->stops[i][0])
            continue;
        if (strlen(cfg->stops[i]) > SW_SESSION_MAX_STOP_LEN) {
            *code = SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST;
            sw_err(err, errlen, "a stop string is longer than %d bytes", SW_SESSION_MAX_STOP_LEN);
            goto fail;
        }
        if (!(s->stops[s->n_stops++] = strdup(cfg->stops[i]))) { /* a dropped stop string would change the answer */
            sw_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    memcpy(s->tokens, cfg->prompt, sizeof(int32_t) * (size_t) n);
    s->n_tokens = s->n_prompt = s->prefill_to = n;
    s->t_start = cfg->now_ns;
    s->route_deadline = s->t_start + (uint64_t) env->cfg.route_wait_ms * 1000000ull;
    s->state = S_WAIT_ROUTE;
    s->gamma_next = env->cfg.draft ? (env->cfg.gamma_max < 4 ? env->cfg.gamma_max : 4) : 0;
    s->accept_ema = 0.6; /* prior until rounds are measured */
    return s;
fail:
    sw_session_destroy(&s);
    return NULL;
}

void sw_session_destroy(sw_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_session_t *s = *self_p;
    sw_route_destroy(&s->route);
    sw_sampler_destroy(&s->sampler);
    sw_kv_destroy(&s->draft_kv);
    for (int i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    free(s->q);
    free(s->tokens);
    free(s->text);
    free(s);
    *self_p = NULL;
}

/* ---- actions -------------------------------------------------------------------- */

/* A 64-bit random number (splitmix64). */
static uint64_t s_rand(sw_session_t *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static sw_session_action_t *s_act(sw_session_t *s, sw_session_action_kind_t kind)
{
    sw_session_actions_t *out = s->out;
    assert(out->n < SW_SESSION_MAX_ACTIONS); /* bounded by construction (SW_SESSION_MAX_ACTIONS) */
    sw_session_action_t *a = &out->a[out->n++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    return a;
}

static void s_act_node(sw_session_t *s, sw_session_action_kind_t kind, const char *node)
{
    snprintf(s_act(s, kind)->node, SW_ROUTE_ID_MAX + 1, "%s", node);
}

static void s_release(sw_session_t *s)
{
    for (int i = 0; i < sw_route_n_hops(s->route); i++)
        s_act_node(s, SW_SESSION_RELEASE, sw_route_hop(s->route, i)->id);
}

/* Ends the session with an error; the route's caches are released. */
static void s_fail(sw_session_t *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fail(sw_session_t *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_text, sizeof s->fail_text, fmt, ap);
    va_end(ap);
    sw_log(SW_LOG_INFO, "gateway: session %.8s failed: %s %s", s->id, sw_wire_error_name(code), s->fail_text);
    sw_session_action_t *a = s_act(s, SW_SESSION_FAIL);
    a->code = code;
    a->reason = s->fail_text;
    s_release(s);
    s->state = S_DONE;
}

static void s_finish(sw_session_t *s, const char *reason)
{
    s_act(s, SW_SESSION_FINISH)->reason = reason;
    s_release(s);
    s->state = S_DONE;
}

/* Streams text[text_sent, upto) with the token that produced it. */
static void s_emit(sw_session_t *s, int32_t token, size_t upto)
{
    sw_session_action_t *a = s_act(s, SW_SESSION_TEXT);
    a->index = (uint32_t) (s->n_gen - 1);
    a->token = token;
    a->text_off = s->text_sent;
    a->text_len = upto > s->text_sent ? upto - s->text_sent : 0;
    s->text_sent = upto > s->text_sent ? upto : s->text_sent;
}

/* Asks for history rows [from, from + n) to go through the route. */
static void s_step(sw_session_t *s, uint64_t now, int64_t from, int32_t n)
{
    s->req_id = s_rand(s) | 1; /* unguessable: a reply or an error must echo it to count */
    sw_session_action_t *a = s_act(s, SW_SESSION_STEP);
    a->request_id = s->req_id;
    a->pos = from;
    a->n_tok = n;
    s->state = S_WAIT_REPLY;
    s->t_step = now;
    s->n_sent = from + n;
    s->last_n = n;
}

/* ---- route ---------------------------------------------------------------------- */

/* Puts the session back to waiting for a route: releases its caches on the
 * stages and arranges for the whole history to be replayed as a prefill. */
static void s_reset_route(sw_session_t *s)
{
    s_release(s);
    sw_route_clear(s->route);
    s->req_id = 0;                 /* replies still in flight are now stale */
    s->gamma = 0;
    s->prefill_to = s->n_tokens;   /* the accepted history; its last row gives the next token */
    s->n_sent = 0;
    s->state = S_WAIT_ROUTE;
}

/* Plans the route and sends the first chunk; keeps waiting while the swarm
 * does not cover every layer, until the route deadline. */
static void s_try_start(sw_session_t *s, const sw_route_view_t *view, uint64_t now)
{
    if (now < s->not_before_ns) {
        if (now >= s->route_deadline && s->overloads > 0)
            s_fail(s, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "%s", "the stages are at capacity; retry shortly");
        return;
    }
    const int rc = sw_route_choose(s->route, view);
    if (rc == -2)
        return s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "out of memory");
    if (rc != 0) {
        if (now < s->route_deadline)
            return;
        char gaps[256], live_gaps[256];
        if (sw_plan_gaps(view->usable, view->n_usable, view->n_layer, gaps, sizeof gaps) == 0)
            snprintf(gaps, sizeof gaps, "none (the chain would be too long)");
        if (s->overloads > 0)
            s_fail(s, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "%s", "the stages are at capacity; retry shortly");
        else if (sw_plan_gaps(view->live, view->n_live, view->n_layer, live_gaps, sizeof live_gaps) == 0 &&
                 view->n_live > view->n_usable)
            s_fail(s, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE,
                   "the live stages for layers %s are backed off after failures or have not answered a probe "
                   "yet; retry shortly", gaps);
        else
            s_fail(s, SWISD__V1__ERROR_CODE__ERROR_NO_ROUTE, "no live stages for layers %s", gaps);
        return;
    }
    s->route_ms = sw_route_cost_ms(s->route);
    s->gamma = 0;
    const int32_t chunk =
        s->prefill_to < SW_SESSION_PREFILL_CHUNK ? (int32_t) s->prefill_to : SW_SESSION_PREFILL_CHUNK;
    s_step(s, now, 0, chunk);
}

/* A step failed (a stage error, a deadline, or a stage of the route left the
 * directory): `culprit` (a hop that raised the failure itself, or NULL) gets
 * a strike; with `suspect_route` (a deadline passed: which hop swallowed the
 * step is unknown) every hop goes on probation (and is probed) and on the
 * avoid list. Then the session waits for a new route, on which it replays
 * the whole history as a prefill: the client only sees a pause, and greedy
 * output is unchanged because the replayed positions give the same states. */
static void s_recover(sw_session_t *s, uint64_t now, const char *culprit, bool suspect_route, const char *why)
{
    if (s->recoveries == 0)
        s->first_recovery_ns = now;
    if ((s->recoveries >= SW_SESSION_MAX_RECOVERIES &&
         now - s->first_recovery_ns >= (uint64_t) SW_SESSION_RECOVERY_SPAN_MS * 1000000ull) ||
        s->recoveries >= SW_SESSION_MAX_RECOVERIES_HARD)
        return s_fail(s, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "gave up after %d failovers; last: %s",
                      s->recoveries, why);
    s->recoveries++;
    if (culprit && culprit[0])
        s_act_node(s, SW_SESSION_STRIKE, culprit);
    sw_log(SW_LOG_INFO, "gateway: session %.8s: %s; replaying %lld tokens on a new route (failover %d)", s->id, why,
           (long long) s->n_tokens, s->recoveries);
    if (suspect_route) {
        for (int i = 0; i < sw_route_n_hops(s->route); i++)
            s_act_node(s, SW_SESSION_SUSPECT, sw_route_hop(s->route, i)->id);
        sw_route_avoid_hops(s->route);
    }
    s_reset_route(s);
    s->route_deadline = now + (uint64_t) s->env->cfg.route_wait_ms * 1000000ull;
    s->not_before_ns = 0;
    s_act(s, SW_SESSION_REPLAN);
}

/* A stage answered "overloaded" (no KV cache room, queue full) or the send
 * to the broker found its queue full. Overload is not failure: nobody is
 * backed off and no failover is counted; the session waits (250 ms, doubling
 * up to 2 s, with jitter) and plans again, and fails with OVERLOADED once the
 * route wait has passed since the first such answer. */
static void s_overloaded(sw_session_t *s, uint64_t now, const char *why)
{
    if (s->overloads++ == 0)
        s->route_deadline = now + (uint64_t) s->env->cfg.route_wait_ms * 1000000ull;
    uint64_t wait_ms = (uint64_t) SW_SESSION_OVERLOAD_WAIT_MS << (s->overloads < 4 ? s->overloads - 1 : 3);
    if (wait_ms > 2000)
        wait_ms = 2000;
    wait_ms += s_rand(s) % (wait_ms / 2 + 1);
    sw_log(SW_LOG_DEBUG, "gateway: session %.8s: %s; waiting %llu ms", s->id, why, (unsigned long long) wait_ms);
    s_reset_route(s);
    s->not_before_ns = now + wait_ms * 1000000ull;
}

/* The step deadline, at most timeout_ms: for decode steps (and replays) a
 * multiple of the measured step time plus 1 s, for the first prefill a
 * multiple of the planner's expected step time plus 3 s; so a frozen or
 * silent stage is noticed in seconds, not after the whole time-out. */
static uint64_t s_deadline_ns(const sw_session_t *s)
{
    double ms = s->env->cfg.timeout_ms, adaptive;
    if (s->t_prefill && s->step_ms_ema > 0) /* decode steps, and replays after the first prefill */
        adaptive = 10.0 * s->step_ms_ema * (1.0 + s->last_n / 8.0) + 1000.0;
    else /* the first prefill: from the route's expected step time (measured speeds, links) */
        adaptive = 10.0 * s->route_ms * (1.0 + s->last_n / 8.0) + SW_SESSION_PREFILL_FLOOR_MS;
    if (adaptive < ms)
        ms = adaptive;
    return (uint64_t) (ms * 1e6);
}

/* ---- tokens --------------------------------------------------------------------- */

/* Longest k < len(stop) such that text ends with stop[0..k). */
static size_t s_partial_stop(const char *text, size_t len, const char *stop)
{
    size_t sl = strlen(stop), best = 0;
    for (size_t k = 1; k < sl && k <= len; k++)
        if (!memcmp(text + len - k, stop, k))
            best = k;
    return best;
}

/* A token the target chose: stream it. Returns 0 to go on, 1 when the
 * session ended. */
static int s_accept_token(sw_session_t *s, int32_t token)
{
    const sw_tokenizer_t *tok = s->env->cfg.tok;
    if (!s->ignore_eos && sw_tokenizer_is_eog(tok, token)) {
        s_finish(s, "eos");
        return 1;
    }
    const int32_t prev = s->tokens[s->n_tokens - 1];
    s->tokens[s->n_tokens++] = token;
    s->n_gen++;
    char piece[256], *pp = piece;
    int pl = sw_tokenizer_decode_token(tok, prev, token, piece, sizeof piece);
    if (pl > (int) sizeof piece) { /* a long piece: decode it whole, never cut */
        if (!(pp = malloc((size_t) pl))) {
            s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "out of memory");
            return 1;
        }
        pl = sw_tokenizer_decode_token(tok, prev, token, pp, (size_t) pl);
    }
    const int rc = sw_text_append(&s->text, &s->text_len, &s->text_cap, pp, pl > 0 ? (size_t) pl : 0);
    if (pp != piece)
        free(pp);
    if (rc != 0) {
        s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "out of memory");
        return 1;
    }
    size_t safe = s->text_len;
    for (int i = 0; i < s->n_stops; i++) {
        const char *hit = strstr(s->text + (s->text_sent > 256 ? s->text_sent - 256 : 0), s->stops[i]);
        if (hit) {
            s_emit(s, token, (size_t) (hit - s->text));
            s_finish(s, "stop");
            return 1;
        }
        const size_t hold = s_partial_stop(s->text, s->text_len, s->stops[i]);
        if (s->text_len - hold < safe)
            safe = s->text_len - hold;
    }
    const bool last = s->n_gen >= s->max_tokens;
    s_emit(s, token, last ? s->text_len : safe);
    if (last) {
        s_finish(s, "length");
        return 1;
    }
    return 0;
}

/* The sampling distribution for the position after history[0..n). */
static int s_probs(sw_session_t *s, const float *logits, int64_t n, float *probs)
{
    return sw_sampler_probs(s->sampler, logits, s->tokens, n, probs);
}

/* Runs the draft over tokens [draft_n, upto) and leaves the logits of the
 * last one in out. Returns 0 or -1. */
static int s_draft_feed(sw_session_t *s, int64_t upto, float *out)
{
    const sw_session_env_t *e = s->env;
    char err[256];
    if (s->draft_n >= upto) { /* e.g. after a failover mid-round: recompute the last position */
        s->draft_n = (int32_t) upto - 1;
        sw_kv_truncate(s->draft_kv, s->draft_n);
    }
    while (s->draft_n < upto) {
        const int32_t n = (int32_t) (upto - s->draft_n < SW_SESSION_PREFILL_CHUNK ? upto - s->draft_n
                                                                                  : SW_SESSION_PREFILL_CHUNK);
        sw_seq_t sq = {.kv = s->draft_kv, .pos = s->draft_n, .n_tok = n, .hidden = e->dh};
        if (sw_model_embed(e->cfg.draft, s->tokens + s->draft_n, n, e->dh, err, sizeof err) ||
            sw_model_forward(e->cfg.ex, e->cfg.draft, 0, sw_model_hparams(e->cfg.draft)->n_layer, &sq, 1, err,
                             sizeof err))
            return -1;
        s->draft_n += n;
        if (s->draft_n == upto &&
            sw_model_head(e->cfg.ex, e->cfg.draft, e->dh + (size_t) (n - 1) * (size_t) e->draft_embd, 1, out, err,
                          sizeof err))
            return -1;
    }
    return 0;
}

static uint64_t s_compute_clock(const sw_session_env_t *e)
{
    return e->cfg.compute_clock_ns ? e->cfg.compute_clock_ns() : 0;
}

/* Sends the next decode step: plain (one token), or a speculative round of
 * gamma draft proposals verified in one pass. */
static void s_next_step(sw_session_t *s, uint64_t now)
{
    const sw_session_env_t *e = s->env;
    const int32_t V = e->hp->n_vocab;
    s->gamma = 0;
    const int64_t room = (int64_t) e->hp->n_ctx_train - s->n_tokens;
    int gamma = s->gamma_next;
    if (gamma > s->max_tokens - s->n_gen - 1)
        gamma = s->max_tokens - s->n_gen - 1;
    if (gamma > room - 1)
        gamma = (int) (room - 1);
    if (e->cfg.draft && gamma > 0) {
        if (!s->draft_kv) {
            s->draft_kv = sw_kv_new(e->cfg.draft, 0, sw_model_hparams(e->cfg.draft)->n_layer, e->hp->n_ctx_train);
            s->q = malloc(sizeof(float) * SW_SESSION_GAMMA_LIMIT * (size_t) V);
        }
        const uint64_t t0 = s_compute_clock(e);
        float *dl = e->logits; /* the draft's logits, one row */
        int ok = s->draft_kv && s->q && s_draft_feed(s, s->n_tokens, dl) == 0;
        for (int i = 0; ok && i < gamma; i++) {
            float *qi = s->q + (size_t) i * (size_t) V;
            int32_t d = -1;
            ok = s_probs(s, dl, s->n_tokens + i, qi) == 0 && (d = sw_sampler_draw(s->sampler, qi, V)) >= 0;
            if (ok) {
                s->tokens[s->n_tokens + i] = d; /* proposals sit after the history */
                if (i + 1 < gamma)
                    ok = s_draft_feed(s, s->n_tokens + i + 1, dl) == 0;
            }
        }
        if (ok) {
            const double ms = (double) (s_compute_clock(e) - t0) / 1e6 / gamma;
            s->draft_ms_ema = s->rounds ? 0.8 * s->draft_ms_ema + 0.2 * ms : ms;
            s->gamma = gamma;
            s_step(s, now, s->n_tokens - 1, gamma + 1);
            return;
        }
        /* the output stays correct without the draft (only slower) */
        sw_log(SW_LOG_WARN, "gateway: session %.8s: the draft failed; continuing without it", s->id);
        s->gamma_next = 0;
    }
    s_step(s, now, s->n_tokens - 1, 1);
}

/* Verifies a speculative round whose target hidden states (gamma + 1 rows)
 * are in hidden, streams the tokens it yields and adapts gamma. */
static void s_on_round(sw_session_t *s, const float *hidden, uint64_t now)
{
    const sw_session_env_t *e = s->env;
    char err[256];
    const int gamma = s->gamma;
    const int32_t V = e->hp->n_vocab;
    const int64_t n0 = s->n_tokens;
    if (sw_model_head(e->cfg.ex, e->cfg.model, hidden, gamma + 1, e->logits, err, sizeof err) != 0)
        return s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "head: %s", err);
    for (int i = 0; i <= gamma; i++)
        if (s_probs(s, e->logits + (size_t) i * (size_t) V, n0 + i, e->p + (size_t) i * (size_t) V) != 0)
            return s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "the logits hold no finite value");
    int32_t out[SW_SESSION_GAMMA_LIMIT + 1];
    const int k = sw_spec_verify(e->p, s->q, s->tokens + n0, gamma, V, e->work, s->sampler, out);
    if (k < 1)
        return s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "speculative verification failed");
    const int accepted = k - 1, evaluated = accepted + (k <= gamma ? 1 : 0);
    s->proposed += (uint64_t) evaluated;
    s->accepted += (uint64_t) accepted;
    s->rounds++;
    const double round_ms = (double) (now - s->t_step) / 1e6;
    s->round_ms_ema = s->rounds > 1 ? 0.8 * s->round_ms_ema + 0.2 * round_ms : round_ms;
    s->accept_ema = 0.8 * s->accept_ema + 0.2 * (double) accepted / (double) evaluated;
    s->gamma_next = sw_spec_choose_gamma(s->accept_ema, s->round_ms_ema, s->draft_ms_ema, e->cfg.gamma_max);
    /* the draft holds t_{n-1} and proposals 1..gamma-1; keep what was accepted */
    const int32_t keep = (int32_t) n0 + (accepted < gamma - 1 ? accepted : gamma - 1);
    if (s->draft_n > keep) {
        sw_kv_truncate(s->draft_kv, keep);
        s->draft_n = keep;
    }
    for (int i = 0; i < k; i++)
        if (s_accept_token(s, out[i]) != 0)
            return;
    s_next_step(s, now);
}

/* ---- events --------------------------------------------------------------------- */

static int s_enter(sw_session_t *s, sw_session_actions_t *out)
{
    s->out = out;
    return s->state == S_DONE ? -1 : 0;
}

int sw_session_on_tick(sw_session_t *self, const sw_route_view_t *view, uint64_t now_ns, sw_session_actions_t *out)
{
    if (s_enter(self, out) != 0)
        return -1;
    if (self->state == S_WAIT_REPLY && now_ns > self->t_step && now_ns - self->t_step > s_deadline_ns(self))
        /* which hop is to blame is unknown: every hop goes on probation until it
         * answers a probe; re-plan and replay */
        s_recover(self, now_ns, NULL, true, "no answer from the chain of stages in time");
    else if (self->state == S_WAIT_ROUTE)
        s_try_start(self, view, now_ns);
    return 0;
}

int sw_session_on_directory(sw_session_t *self, const sw_route_view_t *view, uint64_t now_ns,
                            sw_session_actions_t *out)
{
    if (s_enter(self, out) != 0)
        return -1;
    if (self->state == S_WAIT_ROUTE) {
        s_try_start(self, view, now_ns);
        return 0;
    }
    int gone = -1;
    if (!sw_route_all_live(self->route, view, &gone)) {
        char why[128];
        snprintf(why, sizeof why, "stage %.8s left the swarm", sw_route_hop(self->route, gone)->id);
        s_recover(self, now_ns, NULL, false, why);
    }
    return 0;
}

bool sw_session_wants(const sw_session_t *self, const char *src, uint64_t request_id, int64_t *n_rows)
{
    const int n_hops = sw_route_n_hops(self->route);
    /* the reply must answer the step in flight and come from the route's last hop (the
     * broker stamps src: no other node can pass for it) */
    if (self->state != S_WAIT_REPLY || request_id != self->req_id || n_hops < 1 || !src ||
        strcmp(src, sw_route_hop(self->route, n_hops - 1)->id))
        return false;
    if (n_rows)
        *n_rows = self->last_n;
    return true;
}

int64_t sw_session_pending_pos(const sw_session_t *self)
{
    return self ? (int64_t) self->n_sent - (int64_t) self->last_n : 0;
}

int sw_session_on_bad_reply(sw_session_t *self, const char *src, uint64_t request_id, const char *why,
                            uint64_t now_ns, sw_session_actions_t *out)
{
    (void) now_ns;
    if (s_enter(self, out) != 0)
        return -1;
    if (sw_session_wants(self, src, request_id, NULL))
        s_fail(self, SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME, "bad activation from the last stage: %s",
               why ? why : "");
    return 0;
}

int sw_session_on_reply(sw_session_t *self, const char *src, uint64_t request_id, const float *hidden,
                        int64_t n_rows, uint64_t now_ns, sw_session_actions_t *out)
{
    sw_session_t *s = self;
    if (s_enter(s, out) != 0)
        return -1;
    if (!sw_session_wants(s, src, request_id, NULL))
        return 0; /* stale, duplicate, cancelled or forged: ignore */
    if (!hidden || n_rows != s->last_n) {
        s_fail(s, SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME, "bad activation from the last stage: %lld rows, %d expected",
               (long long) n_rows, (int) s->last_n);
        return 0;
    }
    for (int i = 0; i < sw_route_n_hops(s->route); i++)
        s_act_node(s, SW_SESSION_ALIVE, sw_route_hop(s->route, i)->id);
    s->overloads = 0;
    if (s->n_sent < s->prefill_to) { /* more prompt (or history, on replay) to send */
        const int64_t left = s->prefill_to - s->n_sent;
        s_step(s, now_ns, s->n_sent, (int32_t) (left < SW_SESSION_PREFILL_CHUNK ? left : SW_SESSION_PREFILL_CHUNK));
        return 0;
    }
    if (s->t_prefill && s->last_n == 1) {
        const double ms = (double) (now_ns - s->t_step) / 1e6;
        s->step_ms_ema = s->step_ms_ema > 0 ? 0.8 * s->step_ms_ema + 0.2 * ms : ms;
    }
    if (s->gamma > 0) {
        s_on_round(s, hidden, now_ns);
        return 0;
    }
    const sw_session_env_t *e = s->env;
    char err[256];
    if (sw_model_head(e->cfg.ex, e->cfg.model, hidden + (size_t) (n_rows - 1) * (size_t) e->hp->n_embd, 1,
                      e->logits, err, sizeof err) != 0) {
        s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "head: %s", err);
        return 0;
    }
    if (!s->t_prefill)
        s->t_prefill = now_ns;
    const int32_t token = sw_sampler_sample(s->sampler, e->logits, s->tokens, s->n_tokens);
    if (token < 0) {
        s_fail(s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "the logits hold no finite value");
        return 0;
    }
    if (!s->t_first)
        s->t_first = now_ns;
    if (s_accept_token(s, token) == 0)
        s_next_step(s, now_ns);
    return 0;
}

int sw_session_on_error(sw_session_t *self, const char *src, uint64_t request_id, int code, const char *message,
                        uint64_t now_ns, sw_session_actions_t *out)
{
    if (s_enter(self, out) != 0)
        return -1;
    /* it counts only when it answers the step in flight (same request id, which
     * is random) and comes from a hop of the route; the culprit is that hop */
    const int hop = sw_route_find(self->route, src);
    if (self->state != S_WAIT_REPLY || request_id != self->req_id || hop < 0) {
        sw_log(SW_LOG_DEBUG, "gateway: ignored an error from %.8s (%s): not from a hop of a step in flight",
               src ? src : "?", sw_wire_error_name(code));
        return 0;
    }
    char text[SW_SESSION_TEXT_MAX];
    snprintf(text, sizeof text, "stage %.8s: %s: %s", src, sw_wire_error_name(code), message ? message : "");
    switch (code) {
    case SWISD__V1__ERROR_CODE__ERROR_OVERLOADED:
        s_overloaded(self, now_ns, text);
        break;
    case SWISD__V1__ERROR_CODE__ERROR_KV_MISSING: /* evicted or restarted: replay, blame nobody */
        s_recover(self, now_ns, NULL, false, text);
        break;
    default: /* its own failure (or it disagrees with what it announced): strike it and fail over */
        s_recover(self, now_ns, src, false, text);
        break;
    }
    return 0;
}

int sw_session_on_send_failed(sw_session_t *self, bool queue_full, uint64_t now_ns, sw_session_actions_t *out)
{
    if (s_enter(self, out) != 0)
        return -1;
    if (self->state != S_WAIT_REPLY)
        return 0;
    if (queue_full)
        s_overloaded(self, now_ns, "the queue to the broker is full");
    else
        s_fail(self, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "cannot encode the step");
    return 0;
}

int sw_session_cancel(sw_session_t *self, sw_session_actions_t *out)
{
    if (s_enter(self, out) != 0)
        return -1;
    s_fail(self, SWISD__V1__ERROR_CODE__ERROR_CANCELLED, "%s", "cancelled by the client");
    return 0;
}

int sw_session_abort(sw_session_t *self, sw_session_actions_t *out)
{
    if (s_enter(self, out) != 0)
        return -1;
    s_release(self);
    self->state = S_DONE;
    return 0;
}

/* ---- views ---------------------------------------------------------------------- */

const char *sw_session_id(const sw_session_t *self) { return self->id; }
bool sw_session_done(const sw_session_t *self) { return self->state == S_DONE; }
bool sw_session_in_flight(const sw_session_t *self) { return self->state == S_WAIT_REPLY; }
const int32_t *sw_session_tokens(const sw_session_t *self) { return self->tokens; }
int64_t sw_session_n_tokens(const sw_session_t *self) { return self->n_tokens; }
const sw_route_t *sw_session_route(const sw_session_t *self) { return self->route; }
int sw_session_recoveries(const sw_session_t *self) { return self->recoveries; }

const char *sw_session_text(const sw_session_t *self, size_t *len)
{
    if (len)
        *len = self->text_len;
    return self->text ? self->text : "";
}

void sw_session_stats(const sw_session_t *self, uint64_t now_ns, sw_session_stats_t *out)
{
    const sw_session_t *s = self;
    memset(out, 0, sizeof *out);
    out->prompt_tokens = (uint32_t) s->n_prompt;
    out->completion_tokens = (uint32_t) s->n_gen;
    out->time_to_first_token_ms = s->t_first ? (float) ((double) (s->t_first - s->t_start) / 1e6) : 0;
    out->prefill_ms = s->t_prefill ? (float) ((double) (s->t_prefill - s->t_start) / 1e6) : 0;
    if (s->n_gen > 1 && s->t_first && now_ns > s->t_first)
        out->decode_tokens_per_s = (float) ((s->n_gen - 1) / ((double) (now_ns - s->t_first) / 1e9));
    out->total_ms = now_ns > s->t_start ? (float) ((double) (now_ns - s->t_start) / 1e6) : 0;
    out->acceptance_rate = s->proposed ? (float) ((double) s->accepted / (double) s->proposed) : 0;
    out->tokens_per_round_trip = s->rounds ? (float) ((double) (s->accepted + s->rounds) / (double) s->rounds) : 1;
    out->gamma = (uint32_t) s->gamma_next;
    out->seed = s->seed;
    if (s->rounds && s->round_ms_ema > 0)
        out->speedup = (float) (out->tokens_per_round_trip * s->round_ms_ema /
                                (s->round_ms_ema + s->gamma_next * s->draft_ms_ema));
}
