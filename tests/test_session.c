/*  test_session.c: the gateway session state machine (gateway/sw_session.h),
 *  its route and avoid list (sw_route.h) and the ring of recent generations
 *  (sw_recent.h), driven through the orderings a network produces.
 *
 *  The chain of stages is simulated in-process with the real model
 *  (models/stories260K.gguf): a STEP runs the model's blocks over the
 *  history rows with one KV cache, as stages would (a RELEASE empties it, so
 *  a step that asks for a position the cache does not hold fails the
 *  forward pass and the test). Expected texts come from
 *  tests/data/stories260K_greedy.tsv (the greedy texts of `swisd run`), never
 *  from the session itself; the rest are invariants: one end per request, no
 *  text after it, stale/duplicate/forged replies change nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "sw_test.h"

#include "sw_model.h"
#include "sw_recent.h"
#include "sw_route.h"
#include "sw_session.h"
#include "sw_tokenizer.h"
#include "sw_wire.h"

#define MS 1000000ull

static sw_model_t *g_model;
static sw_tokenizer_t *g_tok;
static sw_exec_t *g_ex;
static const sw_hparams_t *g_hp;

/* Reference rows: prompt and the completion after it (JSON unescaped). */
typedef struct {
    char prompt[128];
    char completion[4096];
} t_ref_t;
static t_ref_t g_refs[8];
static int g_n_refs;

static void t_load_refs(void)
{
    char path[1024];
    sw_test_src_path("tests/data/stories260K_greedy.tsv", path, sizeof path);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    char line[8192];
    while (g_n_refs < 8 && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || !strchr(line, '\t'))
            continue;
        char *tab = strchr(line, '\t');
        *tab = 0;
        t_ref_t *r = &g_refs[g_n_refs];
        snprintf(r->prompt, sizeof r->prompt, "%.127s", line);
        /* JSON string -> bytes (the file uses \n, \" and \\ only) */
        char full[8192];
        size_t n = 0;
        for (const char *p = tab + 2; *p && *p != '"' && n + 1 < sizeof full; p++) {
            if (*p == '\\' && p[1]) {
                p++;
                full[n++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
            } else
                full[n++] = *p;
        }
        full[n] = 0;
        /* the text is the prompt and its continuation; compared with white space stripped at both ends */
        const char *start = full;
        while (*start == ' ')
            start++;
        CHECK(!strncmp(start, r->prompt, strlen(r->prompt)));
        snprintf(r->completion, sizeof r->completion, "%s", start + strlen(r->prompt));
        size_t cl = strlen(r->completion);
        while (cl && (r->completion[cl - 1] == '\n' || r->completion[cl - 1] == ' '))
            r->completion[--cl] = 0;
        g_n_refs++;
    }
    fclose(f);
}

/* ---- the simulated swarm and client ------------------------------------------- */

typedef struct {
    sw_session_t *s;
    sw_route_view_t view;
    sw_plan_stage_t stages[4];
    sw_kv_t *kv;                   /* the chain's cache for this session */
    float *hidden;                 /* (SW_SESSION_PREFILL_CHUNK, n_embd) */
    uint64_t now;                  /* simulated monotonic ns */
    /* the step in flight, as the chain saw it */
    bool have_step;
    uint64_t req;
    int64_t pos;
    int32_t n;
    /* what the client and the stages received */
    char out[8192];
    size_t out_len;
    int n_end, n_finish, n_fail, n_text, n_release, n_strike, n_suspect, n_replan, n_step, n_alive;
    int fail_code;
    const char *finish_reason;
    char fail_text[1024];
    char last_strike[65];
    size_t max_held;               /* most completion bytes held back (stop-string prefixes) */
    bool bad;                      /* an invariant broke (details printed) */
} t_run_t;

static void t_stage(t_run_t *t, int i, const char *id, int32_t b, int32_t e)
{
    t->stages[i] = (sw_plan_stage_t){.node_id = id, .begin = b, .end = e, .ms_per_layer = 1, .link_ms = 1};
}

/* view over the first n of t->stages */
static void t_view(t_run_t *t, int n)
{
    t->view = (sw_route_view_t){.usable = t->stages, .n_usable = n, .live = t->stages, .n_live = n,
                                .n_layer = g_hp->n_layer, .codec = {.dtype = SW_DTYPE_F32}};
}

static void t_act(t_run_t *t, sw_session_actions_t *acts);

/* Carries out a list of actions as the gateway would (REPLAN: re-tick). */
static void t_act(t_run_t *t, sw_session_actions_t *acts)
{
    for (int round = 0; round < 4 && acts->n; round++) {
        bool replan = false;
        for (int i = 0; i < acts->n; i++) {
            const sw_session_action_t *a = &acts->a[i];
            switch (a->kind) {
            case SW_SESSION_STEP:
                CHECK_MSG(!t->n_end, "a step after the end");
                /* KV invariant: the step starts inside the history and inside what the chain holds */
                CHECK_MSG(a->pos <= sw_session_n_tokens(t->s) && a->pos <= sw_kv_n_past(t->kv),
                          "step at %lld, history %lld, cached %d", (long long) a->pos,
                          (long long) sw_session_n_tokens(t->s), (int) sw_kv_n_past(t->kv));
                CHECK(a->n_tok >= 1 && a->n_tok <= SW_SESSION_PREFILL_CHUNK && (a->request_id & 1));
                t->have_step = true, t->req = a->request_id, t->pos = a->pos, t->n = a->n_tok;
                t->n_step++;
                break;
            case SW_SESSION_TEXT: {
                CHECK_MSG(!t->n_end, "text after the end");
                size_t tl;
                const char *text = sw_session_text(t->s, &tl);
                CHECK(a->text_off == t->out_len && a->text_off + a->text_len <= tl);
                if (a->text_off + a->text_len <= tl && t->out_len + a->text_len < sizeof t->out) {
                    memcpy(t->out + t->out_len, text + a->text_off, a->text_len);
                    t->out_len += a->text_len;
                    t->out[t->out_len] = 0;
                }
                if (tl - t->out_len > t->max_held)
                    t->max_held = tl - t->out_len;
                t->n_text++;
                break;
            }
            case SW_SESSION_FINISH:
                t->n_end++, t->n_finish++;
                t->finish_reason = a->reason;
                break;
            case SW_SESSION_FAIL:
                t->n_end++, t->n_fail++;
                t->fail_code = a->code;
                snprintf(t->fail_text, sizeof t->fail_text, "%s", a->reason);
                break;
            case SW_SESSION_RELEASE:
                sw_kv_truncate(t->kv, 0); /* the stage drops the session's cache */
                t->n_release++;
                break;
            case SW_SESSION_STRIKE:
                t->n_strike++;
                snprintf(t->last_strike, sizeof t->last_strike, "%s", a->node);
                break;
            case SW_SESSION_SUSPECT:
                t->n_suspect++;
                break;
            case SW_SESSION_ALIVE:
                t->n_alive++;
                break;
            case SW_SESSION_REPLAN:
                t->n_replan++;
                replan = true;
                break;
            }
        }
        acts->n = 0;
        if (replan)
            sw_session_on_tick(t->s, &t->view, t->now, acts);
    }
}

static sw_session_t *t_new(t_run_t *t, sw_session_env_t *env, const char *prompt, int32_t max_tokens,
                           const char *const *stops, int n_stops)
{
    memset(t, 0, sizeof *t);
    t->kv = sw_kv_new(g_model, 0, g_hp->n_layer, g_hp->n_ctx_train);
    t->hidden = malloc(sizeof(float) * SW_SESSION_PREFILL_CHUNK * (size_t) g_hp->n_embd);
    t->now = 1000 * MS;
    const int32_t split = g_hp->n_layer / 2;
    t_stage(t, 0, "stage-a1", 0, split);
    t_stage(t, 1, "stage-a2", split, g_hp->n_layer);
    t_stage(t, 2, "stage-b", 0, g_hp->n_layer);
    t_view(t, 2); /* a two-hop route: a1 then a2 */
    int32_t toks[512];
    const int64_t n = sw_tokenizer_encode(g_tok, prompt, strlen(prompt), sw_tokenizer_add_bos(g_tok), toks, 512);
    sw_sampler_params_t p = sw_sampler_default_params();
    p.temperature = 0;
    p.top_k = 0, p.top_p = 1, p.min_p = 0, p.repeat_penalty = 1;
    p.seed = 12345;
    sw_session_config_t cfg = {.id = "0123456789abcdef0123456789abcdef", .prompt = toks, .n_prompt = n,
                               .max_tokens = max_tokens, .sampling = p, .stops = stops, .n_stops = n_stops,
                               .rng_seed = 42, .now_ns = t->now};
    int code = 0;
    char err[256];
    t->s = sw_session_new(env, &cfg, &code, err, sizeof err);
    CHECK_MSG(t->s != NULL, "%s", err);
    return t->s;
}

static void t_free(t_run_t *t)
{
    sw_session_destroy(&t->s);
    sw_kv_destroy(&t->kv);
    free(t->hidden);
}

static const char *t_last_hop(t_run_t *t)
{
    const sw_route_t *r = sw_session_route(t->s);
    return sw_route_n_hops(r) ? sw_route_hop(r, sw_route_n_hops(r) - 1)->id : "";
}

/* The chain runs the step in flight (embedding + every block over the cache). */
static bool t_compute(t_run_t *t)
{
    if (!t->have_step)
        return false;
    char err[256];
    const int32_t *toks = sw_session_tokens(t->s);
    sw_seq_t sq = {.kv = t->kv, .pos = (int32_t) t->pos, .n_tok = t->n, .hidden = t->hidden};
    const bool ok = sw_model_embed(g_model, toks + t->pos, t->n, t->hidden, err, sizeof err) == 0 &&
                    sw_model_forward(g_ex, g_model, 0, g_hp->n_layer, &sq, 1, err, sizeof err) == 0;
    CHECK_MSG(ok, "the chain cannot run the step: %s", err);
    t->have_step = false;
    return ok;
}

/* Delivers the step's reply; returns the number of actions it caused. */
static int t_reply(t_run_t *t, const char *src, uint64_t req, int32_t n)
{
    sw_session_actions_t acts = {0};
    t->now += 2 * MS;
    sw_session_on_reply(t->s, src, req, t->hidden, n, t->now, &acts);
    const int k = acts.n;
    t_act(t, &acts);
    return k;
}

/* Runs the chain and delivers its reply to the step in flight. */
static bool t_step(t_run_t *t)
{
    const uint64_t req = t->req;
    const int32_t n = t->n;
    if (!t_compute(t))
        return false;
    t_reply(t, t_last_hop(t), req, n);
    return true;
}

static void t_start(t_run_t *t)
{
    sw_session_actions_t acts = {0};
    sw_session_on_tick(t->s, &t->view, t->now, &acts);
    t_act(t, &acts);
}

static void t_run_to_end(t_run_t *t)
{
    for (int i = 0; i < 2000 && !t->n_end && t->have_step; i++)
        t_step(t);
}

static void t_check_text(t_run_t *t, const char *want, const char *what)
{
    size_t wl = strlen(want), gl = t->out_len;
    while (gl && (t->out[gl - 1] == '\n' || t->out[gl - 1] == ' '))
        gl--;
    CHECK_MSG(gl == wl && !memcmp(t->out, want, wl), "%s: got\n[%.*s]\nwant\n[%s]", what, (int) gl, t->out, want);
}

/* ---- scenarios ----------------------------------------------------------------- */

static void test_plain(sw_session_env_t *env)
{
    for (int r = 0; r < g_n_refs; r++) {
        t_run_t t;
        t_new(&t, env, g_refs[r].prompt, 100, NULL, 0);
        t_start(&t);
        CHECK(t.n_step == 1 && t.pos == 0 && sw_route_n_hops(sw_session_route(t.s)) == 2);
        t_run_to_end(&t);
        t_check_text(&t, g_refs[r].completion, "plain greedy");
        CHECK(t.n_end == 1 && t.n_finish == 1 && t.n_text == 100 && !strcmp(t.finish_reason, "length"));
        CHECK(t.n_release == 2); /* both hops free the cache at the end */
        sw_session_actions_t acts = {0};
        CHECK(sw_session_on_tick(t.s, &t.view, t.now + 60000 * MS, &acts) == -1 && acts.n == 0);
        sw_session_stats_t st;
        sw_session_stats(t.s, t.now, &st);
        CHECK(st.completion_tokens == 100 && st.prompt_tokens > 0 && st.decode_tokens_per_s > 0);
        CHECK(st.seed == 12345 && st.acceptance_rate == 0);
        t_free(&t);
    }
}

/* Every reply twice, stale replies of earlier steps re-delivered, forged
 * ones from the first hop and under wrong ids: none changes the text. */
static void test_disorder(sw_session_env_t *env)
{
    t_run_t t;
    t_new(&t, env, g_refs[0].prompt, 100, NULL, 0);
    t_start(&t);
    float *old = malloc(sizeof(float) * (size_t) g_hp->n_embd);
    uint64_t old_req = 0;
    int ignored_ok = 0;
    for (int i = 0; i < 2000 && !t.n_end && t.have_step; i++) {
        const uint64_t req = t.req;
        const int32_t n = t.n;
        if (!t_compute(&t))
            break;
        /* forged: right id from the first hop; wrong id from the last hop */
        ignored_ok += t_reply(&t, "stage-a1", req, n) == 0;
        ignored_ok += t_reply(&t, t_last_hop(&t), req ^ 2, n) == 0;
        /* late: the previous step's reply arrives again before this one */
        if (old_req && n == 1) {
            memcpy(t.hidden + g_hp->n_embd, t.hidden, sizeof(float) * (size_t) g_hp->n_embd);
            memcpy(t.hidden, old, sizeof(float) * (size_t) g_hp->n_embd);
            ignored_ok += t_reply(&t, t_last_hop(&t), old_req, 1) == 0;
            memcpy(t.hidden, t.hidden + g_hp->n_embd, sizeof(float) * (size_t) g_hp->n_embd);
        } else
            ignored_ok++;
        memcpy(old, t.hidden + (size_t) (n - 1) * g_hp->n_embd, sizeof(float) * (size_t) g_hp->n_embd);
        old_req = req;
        t_reply(&t, t_last_hop(&t), req, n);
        /* duplicate */
        ignored_ok += t_reply(&t, t_last_hop(&t), req, n) == 0;
    }
    CHECK_MSG(ignored_ok == 4 * t.n_step && t.n_step >= 100, "%d of %d", ignored_ok, 4 * t.n_step);
    t_check_text(&t, g_refs[0].completion, "disorder");
    CHECK(t.n_end == 1 && t.n_finish == 1);
    free(old);
    t_free(&t);
}

/* A hop raises an error mid-generation; the reply already computed arrives
 * after the session moved on; the replay gives the same greedy text. */
static void test_error_failover(sw_session_env_t *env)
{
    t_run_t t;
    t_new(&t, env, g_refs[1].prompt, 100, NULL, 0);
    t_start(&t);
    for (int i = 0; i < 20; i++)
        t_step(&t);
    const uint64_t req = t.req;
    const int32_t n = t.n;
    const int64_t hist = sw_session_n_tokens(t.s);
    t_compute(&t); /* the chain did the work, but its reply is late */
    /* an error from a node off the route, and one under a wrong id: ignored */
    sw_session_actions_t acts = {0};
    sw_session_on_error(t.s, "stage-b", req, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "x", t.now, &acts);
    CHECK(acts.n == 0);
    sw_session_on_error(t.s, "stage-a1", req + 2, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "x", t.now, &acts);
    CHECK(acts.n == 0);
    t_view(&t, 3); /* stage-b is there for the new route */
    t.stages[0].ms_per_layer = 100; /* and the struck stage would be slow anyway */
    sw_session_on_error(t.s, "stage-a1", req, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "boom", t.now, &acts);
    t_act(&t, &acts);
    CHECK(t.n_strike == 1 && !strcmp(t.last_strike, "stage-a1") && t.n_replan == 1 && t.n_release == 2);
    CHECK(sw_session_recoveries(t.s) == 1);
    /* the new route replays the whole history from position 0 */
    CHECK(t.have_step && t.pos == 0 && t.n == hist);
    CHECK(!strcmp(t_last_hop(&t), "stage-b"));
    /* the late reply of the old route: ignored (old id, and stage-a2 is off the route) */
    CHECK(t_reply(&t, "stage-a2", req, n) == 0);
    t_run_to_end(&t);
    t_check_text(&t, g_refs[1].completion, "after an error failover");
    CHECK(t.n_end == 1 && t.n_finish == 1);
    t_free(&t);
}

/* A step passes its deadline: every hop is suspected and avoided, the late
 * reply is ignored, the text is unchanged. */
static void test_deadline(sw_session_env_t *env)
{
    t_run_t t;
    t_new(&t, env, g_refs[2].prompt, 100, NULL, 0);
    t_start(&t);
    for (int i = 0; i < 30; i++)
        t_step(&t);
    const uint64_t req = t.req;
    const int32_t n = t.n;
    sw_session_actions_t acts = {0};
    sw_session_on_tick(t.s, &t.view, t.now + 500 * MS, &acts); /* steps take 2 ms: not yet */
    CHECK(acts.n == 0);
    t_compute(&t);
    t_view(&t, 3);
    t.now += 30001 * MS; /* past even the longest deadline */
    sw_session_on_tick(t.s, &t.view, t.now, &acts);
    t_act(&t, &acts);
    CHECK(t.n_suspect == 2 && t.n_strike == 0 && t.n_replan == 1);
    CHECK(!strcmp(t_last_hop(&t), "stage-b")); /* around the avoided hops */
    CHECK(t_reply(&t, "stage-a2", req, n) == 0);
    t_run_to_end(&t);
    t_check_text(&t, g_refs[2].completion, "after a deadline failover");
    CHECK(t.n_end == 1);
    t_free(&t);
}

/* Speculative decoding with a draft: the greedy text is the target's. An
 * error in the middle of a round (its reply lost) fails over and replays. */
static void test_speculative(sw_session_env_t *spec_env)
{
    t_run_t t;
    t_new(&t, spec_env, g_refs[0].prompt, 100, NULL, 0);
    t_start(&t);
    int rounds = 0, errors = 0;
    for (int i = 0; i < 2000 && !t.n_end && t.have_step; i++) {
        if (t.n > 1 && t.pos > 0)
            rounds++;
        if (t.n > 1 && t.pos > 0 && (rounds == 3 || rounds == 7)) { /* mid-round: the stage fails */
            const uint64_t req = t.req;
            const int32_t n = t.n;
            t_compute(&t);
            sw_session_actions_t acts = {0};
            sw_session_on_error(t.s, "stage-a2", req, SWISD__V1__ERROR_CODE__ERROR_KV_MISSING, "evicted", t.now,
                                &acts);
            t_act(&t, &acts);
            errors++;
            CHECK(t.pos == 0 && t.n == sw_session_n_tokens(t.s)); /* the accepted history only */
            CHECK(t_reply(&t, "stage-a2", req, n) == 0);
            continue;
        }
        t_step(&t);
    }
    CHECK(rounds > 5 && errors == 2 && t.n_strike == 0);
    t_check_text(&t, g_refs[0].completion, "speculative");
    sw_session_stats_t st;
    sw_session_stats(t.s, t.now, &st);
    CHECK_MSG(st.acceptance_rate > 0.9, "acceptance %.2f with the target as its own draft", st.acceptance_rate);
    CHECK(t.n_end == 1 && t.n_finish == 1);
    t_free(&t);
}

/* The client cancels while the history is being replayed: one FAIL, the
 * caches released, the replay's reply ignored, no text after. */
static void test_cancel_during_replay(sw_session_env_t *env)
{
    t_run_t t;
    t_new(&t, env, g_refs[0].prompt, 100, NULL, 0);
    t_start(&t);
    for (int i = 0; i < 10; i++)
        t_step(&t);
    const size_t emitted = t.out_len;
    sw_session_actions_t acts = {0};
    sw_session_on_error(t.s, "stage-a1", t.req, SWISD__V1__ERROR_CODE__ERROR_KV_MISSING, "restarted", t.now, &acts);
    t_act(&t, &acts);
    CHECK(t.pos == 0 && t.have_step);
    const uint64_t req = t.req;
    const int32_t n = t.n;
    t_compute(&t);
    const int rel = t.n_release;
    CHECK(sw_session_cancel(t.s, &acts) == 0);
    t_act(&t, &acts);
    CHECK(t.n_end == 1 && t.n_fail == 1 && t.fail_code == SWISD__V1__ERROR_CODE__ERROR_CANCELLED);
    CHECK(t.n_release == rel + 2);
    CHECK(sw_session_on_reply(t.s, t_last_hop(&t), req, t.hidden, n, t.now, &acts) == -1 && acts.n == 0);
    CHECK(sw_session_cancel(t.s, &acts) == -1 && sw_session_abort(t.s, &acts) == -1 && acts.n == 0);
    CHECK(t.out_len == emitted);
    t_free(&t);
}

/* "Overloaded" is no failure: no strike, a growing wait, then OVERLOADED
 * once the route wait (5 s here) passed since the first. */
static void test_overload(sw_session_env_t *env)
{
    t_run_t t;
    t_new(&t, env, g_refs[0].prompt, 100, NULL, 0);
    t_start(&t);
    const uint64_t t0 = t.now;
    int overloads = 0;
    for (int i = 0; i < 100 && !t.n_end; i++) {
        sw_session_actions_t acts = {0};
        if (t.have_step) {
            sw_session_on_error(t.s, "stage-a2", t.req, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "full", t.now,
                                &acts);
            t.have_step = false;
            overloads++;
            t_act(&t, &acts);
            CHECK(!t.have_step && t.n_strike == 0 && t.n_replan == 0);
            sw_session_on_tick(t.s, &t.view, t.now + 1 * MS, &acts); /* within the wait: nothing */
            CHECK(acts.n == 0);
        }
        t.now += 300 * MS;
        sw_session_on_tick(t.s, &t.view, t.now, &acts);
        t_act(&t, &acts);
    }
    CHECK(t.n_end == 1 && t.n_fail == 1 && t.fail_code == SWISD__V1__ERROR_CODE__ERROR_OVERLOADED);
    CHECK(t.now - t0 >= 5000 * MS && t.now - t0 <= 5000 * MS + 3000 * MS + 300 * MS);
    CHECK(overloads >= 2 && sw_session_recoveries(t.s) == 0);
    t_free(&t);
}

/* Give-up rules: 8 failovers are allowed however fast; the 9th fails when
 * the first was at least 15 s before; never more than 64. */
static void test_give_up(sw_session_env_t *env)
{
    for (int slow = 0; slow < 2; slow++) {
        t_run_t t;
        t_new(&t, env, g_refs[0].prompt, 100, NULL, 0);
        t_start(&t);
        int failovers = 0;
        for (int i = 0; i < 100 && !t.n_end && t.have_step; i++) {
            sw_session_actions_t acts = {0};
            t.now += slow ? 2000 * MS : 10 * MS;
            sw_session_on_error(t.s, "stage-a1", t.req, SWISD__V1__ERROR_CODE__ERROR_KV_MISSING, "gone", t.now,
                                &acts);
            t.have_step = false;
            t_act(&t, &acts);
            failovers++;
        }
        CHECK(t.n_end == 1 && t.n_fail == 1 && t.fail_code == SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE);
        CHECK(strstr(t.fail_text, "gave up after") != NULL);
        /* slow: 2 s apart, the 9th comes 16 s after the first; fast: only the hard limit stops it */
        CHECK_MSG(failovers == (slow ? 9 : SW_SESSION_MAX_RECOVERIES_HARD + 1), "%d failovers", failovers);
        t_free(&t);
    }
}

/* Stop strings: the text ends before the first match; a string that only
 * partly matches holds bytes back and then lets them go. */
static void test_stops(sw_session_env_t *env)
{
    const char *want = g_refs[0].completion;
    const char *stop1[] = {"Lily"};
    t_run_t t;
    t_new(&t, env, g_refs[0].prompt, 100, stop1, 1);
    t_start(&t);
    t_run_to_end(&t);
    const size_t cut = (size_t) (strstr(want, "Lily") - want);
    CHECK_MSG(t.out_len == cut && !memcmp(t.out, want, cut), "stop: got [%s]", t.out);
    CHECK(t.n_finish == 1 && !strcmp(t.finish_reason, "stop"));
    t_free(&t);
    /* a stop string that shares a long prefix with the text but never matches */
    char stop2[64];
    const char *at = strstr(want, " there was a little");
    CHECK(at != NULL);
    snprintf(stop2, sizeof stop2, "%.*s#", 19, at ? at : " there was a little");
    const char *stops[] = {stop2, ""};
    t_new(&t, env, g_refs[0].prompt, 100, stops, 2);
    t_start(&t);
    t_run_to_end(&t);
    t_check_text(&t, want, "partial stop");
    CHECK(t.max_held >= 10 && t.n_finish == 1 && !strcmp(t.finish_reason, "length"));
    t_free(&t);
}

/* No route: waits the route wait, then NO_ROUTE; when live stages exist
 * but none is usable yet: UNREACHABLE. A hop leaving the directory fails
 * over without a strike. A reply of the wrong size is a BAD_FRAME. */
static void test_routes(sw_session_env_t *env)
{
    t_run_t t;
    t_new(&t, env, g_refs[0].prompt, 10, NULL, 0);
    t_view(&t, 1); /* only layers [0, split) */
    t_start(&t);
    CHECK(t.n_step == 0 && t.n_end == 0);
    sw_session_actions_t acts = {0};
    t.now += 5000 * MS;
    sw_session_on_tick(t.s, &t.view, t.now, &acts);
    t_act(&t, &acts);
    CHECK(t.n_fail == 1 && t.fail_code == SWISD__V1__ERROR_CODE__ERROR_NO_ROUTE);
    t_free(&t);

    t_new(&t, env, g_refs[0].prompt, 10, NULL, 0);
    t.view.n_usable = 0; /* live, but none admitted */
    t.now += 5000 * MS;
    t_start(&t);
    CHECK(t.n_fail == 1 && t.fail_code == SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE);
    t_free(&t);

    t_new(&t, env, g_refs[0].prompt, 100, NULL, 0);
    t_start(&t);
    for (int i = 0; i < 5; i++)
        t_step(&t);
    t.stages[0] = t.stages[2]; /* stage-a1 left; stage-b came */
    t_view(&t, 2);
    sw_session_on_directory(t.s, &t.view, t.now, &acts);
    t_act(&t, &acts);
    CHECK(t.n_strike == 0 && t.n_replan == 1 && t.pos == 0 && !strcmp(t_last_hop(&t), "stage-b"));
    sw_session_on_directory(t.s, &t.view, t.now, &acts); /* all live: nothing */
    CHECK(acts.n == 0);
    t_compute(&t);
    t_reply(&t, t_last_hop(&t), t.req, t.n + 1);
    CHECK(t.n_fail == 1 && t.fail_code == SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME);
    t_free(&t);

    /* bad requests */
    int code = 0;
    char err[256];
    sw_session_config_t cfg = {.id = "x", .prompt = NULL, .n_prompt = 0, .max_tokens = 5,
                               .sampling = sw_sampler_default_params()};
    CHECK(!sw_session_new(env, &cfg, &code, err, sizeof err) && code == SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    int32_t one = 1;
    cfg.prompt = &one, cfg.n_prompt = 1, cfg.max_tokens = g_hp->n_ctx_train;
    CHECK(!sw_session_new(env, &cfg, &code, err, sizeof err) && strstr(err, "exceeds the model's context"));
}

static void test_route_class(void)
{
    sw_plan_stage_t st[3] = {
        {.node_id = "fast", .begin = 0, .end = 4, .ms_per_layer = 1, .link_ms = 1},
        {.node_id = "slow", .begin = 0, .end = 4, .ms_per_layer = 50, .link_ms = 1},
        {.node_id = "half", .begin = 0, .end = 2, .ms_per_layer = 1, .link_ms = 1},
    };
    sw_codec_config_t in[3] = {{.dtype = SW_DTYPE_F32}, {.dtype = SW_DTYPE_F16}, {.dtype = SW_DTYPE_F32}};
    sw_route_view_t v = {.usable = st, .inbound = in, .n_usable = 3, .live = st, .n_live = 3, .n_layer = 4};
    sw_route_t *r = sw_route_new();
    CHECK(sw_route_choose(r, &v) == 0 && sw_route_n_hops(r) == 1 && !strcmp(sw_route_hop(r, 0)->id, "fast"));
    sw_route_avoid_hops(r);
    CHECK(sw_route_avoids(r, "fast") && !sw_route_avoids(r, "slow"));
    /* without "fast": half [0, 2) then slow [2, 4) beats slow alone */
    CHECK(sw_route_choose(r, &v) == 0 && sw_route_n_hops(r) == 2 && !strcmp(sw_route_hop(r, 0)->id, "half"));
    CHECK(sw_route_hop(r, 1)->codec.dtype == SW_DTYPE_F16 && sw_route_hop(r, 0)->codec.dtype == SW_DTYPE_F32);
    CHECK(sw_route_find(r, "slow") == 1 && sw_route_find(r, "fast") == -1);
    sw_route_avoid_hops(r);
    CHECK(sw_route_choose(r, &v) == 0 && !strcmp(sw_route_hop(r, 0)->id, "fast")); /* all avoided: best again */
    CHECK(sw_route_n_hops(r) == 1);
    v.n_usable = 1;
    v.usable = &st[2];
    CHECK(sw_route_choose(r, &v) == -1 && sw_route_n_hops(r) == 0);
    for (int i = 0; i < SW_ROUTE_MAX_AVOID; i++) { /* the ring forgets the oldest */
        v.usable = &st[1];
        sw_route_choose(r, &v);
        sw_route_avoid_hops(r);
    }
    CHECK(!sw_route_avoids(r, "fast") && sw_route_avoids(r, "slow"));
    sw_route_destroy(&r);
    sw_route_destroy(&r);
    CHECK(r == NULL);
}

static void test_recent(void)
{
    sw_recent_t *r = sw_recent_new(3);
    CHECK(sw_recent_new(0) == NULL);
    for (uint32_t i = 1; i <= 5; i++) {
        sw_recent_sample_t x = {.end_unix_ms = i, .completion_tokens = i * 10};
        sw_recent_add(r, &x);
    }
    CHECK(sw_recent_count(r) == 3 && sw_recent_get(r, 0)->end_unix_ms == 3 && sw_recent_get(r, 2)->end_unix_ms == 5);
    CHECK(sw_recent_get(r, 3) == NULL);
    CHECK(sw_recent_generations_total(r) == 5 && sw_recent_tokens_total(r) == 150);
    sw_recent_destroy(&r);
    CHECK(r == NULL);
}

int main(void)
{
    char path[1024], err[256];
    setenv("SWISD_LOG", "warn", 0); /* the failovers below would log a line each */
    sw_test_src_path("models/stories260K.gguf", path, sizeof path);
    g_model = sw_model_load(path, NULL, err, sizeof err);
    CHECK_MSG(g_model != NULL, "%s", err);
    if (!g_model)
        return sw_test_report("session");
    g_hp = sw_model_hparams(g_model);
    g_tok = sw_tokenizer_from_gguf(sw_model_gguf(g_model), err, sizeof err);
    g_ex = sw_exec_new(1);
    CHECK(g_tok && g_ex && g_hp->n_layer >= 2);
    t_load_refs();
    CHECK(g_n_refs >= 3);
    sw_session_env_config_t ec = {.model = g_model, .tok = g_tok, .ex = g_ex, .timeout_ms = 30000,
                                  .route_wait_ms = 5000};
    sw_session_env_t *env = sw_session_env_new(&ec, err, sizeof err);
    ec.draft = g_model; /* the target as its own draft: every greedy proposal is right */
    ec.gamma_max = 8;
    sw_session_env_t *spec_env = sw_session_env_new(&ec, err, sizeof err);
    CHECK(env && spec_env);
    if (env && spec_env && g_n_refs >= 3) {
        test_plain(env);
        test_disorder(env);
        test_error_failover(env);
        test_deadline(env);
        test_speculative(spec_env);
        test_cancel_during_replay(env);
        test_overload(env);
        test_give_up(env);
        test_stops(env);
        test_routes(env);
    }
    test_route_class();
    test_recent();
    sw_session_env_destroy(&env);
    sw_session_env_destroy(&spec_env);
    sw_exec_destroy(&g_ex);
    sw_tokenizer_destroy(&g_tok);
    sw_model_destroy(&g_model);
    return sw_test_report("session");
}
