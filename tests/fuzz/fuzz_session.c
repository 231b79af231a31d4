/*  fuzz_session.c: fuzz target for the gateway session state machine
 *  (gateway/sw_session.h): random orders of the events a network and a
 *  client produce, checked against the class's invariants.
 *
 *  Input layout:
 *    byte 0: flags: bit 0 speculative (the model is its own draft), bits 1-2
 *            which stop strings, bits 3-7 max_tokens - 1 (1..32);
 *    byte 1: prompt choice (mod 4);
 *    then events of 2 bytes (op, arg), op mod 13:
 *      0 the reply to the step in flight, from the last hop (rows from arg:
 *        finite values; arg == 255: NaN rows)   1 a stale reply (an older id)
 *      2 the right id from another hop           3 the last reply again
 *      4 an Error from hop arg % 3 (code arg / 3 % 12) for the step in flight
 *      5 time passes: arg * 250 ms, then a tick  6 a new directory (arg picks
 *        which stages are live/usable)           7 cancel
 *      8 the send of the step failed (arg & 1: queue full)
 *      9 the reply did not decode                10 the client is gone (abort)
 *      11 a reply with a wrong row count         12 a tick without time passing
 *  Every event also advances the clock by 1 ms.
 *
 *  Invariants (abort on violation, so libFuzzer and the plain driver report
 *  a crash): every request ends exactly once (FINISH, FAIL or abort; the end
 *  is forced by a cancel after the input); no action at all after the end,
 *  in particular no text; text chunks are contiguous and inside the text; a
 *  STEP's position never runs ahead of the history nor of what the route's
 *  stages cache (0 after a RELEASE); request ids are odd; a reply counts
 *  only when it answers the step in flight (the harness's own record of the
 *  last STEP) under its id from the route's last hop.
 *  Build with libFuzzer (-Dfuzz=true, clang) or with fuzz_main.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sw_test_data.h"
#include "sw_model.h"
#include "sw_route.h"
#include "sw_session.h"
#include "sw_tokenizer.h"
#include "sw_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INV(cond)                                                                         \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz_session: invariant broken: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static sw_model_t *g_model;
static sw_tokenizer_t *g_tok;
static sw_exec_t *g_ex;
static sw_session_env_t *g_env, *g_spec_env;
static float *g_hidden;            /* (SW_SESSION_PREFILL_CHUNK + 1, n_embd) reply rows */

static void s_init(void)
{
    if (g_model)
        return;
    char path[1024], err[256];
    setenv("SWISD_LOG", "warn", 0); /* a failover per few inputs: keep the log to warnings */
    sw_test_src_path("models/stories260K.gguf", path, sizeof path);
    g_model = sw_model_load(path, NULL, err, sizeof err);
    if (!g_model) {
        fprintf(stderr, "fuzz_session: %s\n", err);
        abort();
    }
    g_tok = sw_tokenizer_from_gguf(sw_model_gguf(g_model), err, sizeof err);
    g_ex = sw_exec_new(1);
    sw_session_env_config_t ec = {.model = g_model, .tok = g_tok, .ex = g_ex, .timeout_ms = 30000,
                                  .route_wait_ms = 5000};
    g_env = sw_session_env_new(&ec, err, sizeof err);
    ec.draft = g_model;
    ec.gamma_max = 4;
    g_spec_env = sw_session_env_new(&ec, err, sizeof err);
    g_hidden = malloc(sizeof(float) * (SW_SESSION_PREFILL_CHUNK + 1) * (size_t) sw_model_hparams(g_model)->n_embd);
    if (!g_tok || !g_ex || !g_env || !g_spec_env || !g_hidden)
        abort();
}

typedef struct {
    sw_session_t *s;
    sw_route_view_t view;
    sw_plan_stage_t stages[3];
    uint64_t now;
    int64_t cached;                /* rows the route's stages hold for the session */
    bool have_step;                /* a STEP was asked and not yet answered */
    uint64_t req, old_req, last_req;
    int64_t pos;
    int32_t n;
    size_t emitted;                /* text bytes streamed */
    int ends;
} s_run_t;

static void s_set_view(s_run_t *r, uint8_t arg)
{
    const int32_t L = sw_model_hparams(g_model)->n_layer, half = L / 2;
    r->stages[0] = (sw_plan_stage_t){.node_id = "a1", .begin = 0, .end = half, .ms_per_layer = 1, .link_ms = 1};
    r->stages[1] = (sw_plan_stage_t){.node_id = "a2", .begin = half, .end = L, .ms_per_layer = 1, .link_ms = 1};
    r->stages[2] = (sw_plan_stage_t){.node_id = "b", .begin = 0, .end = L, .ms_per_layer = (float) (arg % 5),
                                     .link_ms = 1};
    const int first = arg % 3, n_live = 1 + (arg / 3) % 3; /* a window of the three, rotated */
    static sw_plan_stage_t live[3];
    for (int i = 0; i < n_live; i++)
        live[i] = r->stages[(first + i) % 3];
    r->view = (sw_route_view_t){.usable = live, .n_usable = (arg & 0x80) ? 0 : n_live, .live = live,
                                .n_live = n_live, .n_layer = L};
}

static void s_apply(s_run_t *r, sw_session_actions_t *acts, int rc)
{
    if (rc != 0) { /* ended before: nothing may come out */
        INV(acts->n == 0);
        return;
    }
    for (int round = 0; round < 4 && acts->n; round++) {
        bool replan = false;
        for (int i = 0; i < acts->n; i++) {
            const sw_session_action_t *a = &acts->a[i];
            INV(r->ends == 0 || a->kind == SW_SESSION_RELEASE);
            switch (a->kind) {
            case SW_SESSION_STEP:
                INV(a->pos >= 0 && a->pos <= sw_session_n_tokens(r->s) && a->pos <= r->cached);
                INV(a->n_tok >= 1 && a->n_tok <= SW_SESSION_PREFILL_CHUNK);
                INV(a->request_id & 1);
                r->old_req = r->req;
                r->have_step = true, r->req = a->request_id, r->pos = a->pos, r->n = a->n_tok;
                break;
            case SW_SESSION_TEXT: {
                size_t tl;
                sw_session_text(r->s, &tl);
                INV(a->text_off == r->emitted && a->text_off + a->text_len <= tl);
                r->emitted += a->text_len;
                break;
            }
            case SW_SESSION_FINISH:
            case SW_SESSION_FAIL:
                r->ends++;
                INV(a->reason != NULL);
                break;
            case SW_SESSION_RELEASE: /* the route is given up: its step too */
                r->cached = 0;
                r->have_step = false;
                break;
            case SW_SESSION_REPLAN:
                replan = true;
                break;
            default:
                INV(a->node[0] != 0);
                break;
            }
        }
        INV(r->ends <= 1);
        acts->n = 0;
        if (replan)
            INV(sw_session_on_tick(r->s, &r->view, r->now, acts) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    s_init();
    static const char *prompts[] = {"Once upon a time", "Lily", "The", "Tom and his dog went to the park"};
    static const char *stop_sets[4][2] = {{NULL, NULL}, {"Lily", NULL}, {",", "the"}, {" was a little#", "."}};
    const int n_stops = (data[0] >> 1) & 3 ? 2 : 0;
    int32_t toks[64];
    const char *prompt = prompts[data[1] % 4];
    const int64_t n = sw_tokenizer_encode(g_tok, prompt, strlen(prompt), sw_tokenizer_add_bos(g_tok), toks, 64);
    sw_sampler_params_t p = sw_sampler_default_params();
    p.seed = data[1];
    if (data[1] & 0x80)
        p.temperature = 0;
    sw_session_config_t cfg = {.id = "fuzz-session", .prompt = toks, .n_prompt = n,
                               .max_tokens = 1 + (data[0] >> 3), .sampling = p,
                               .stops = stop_sets[(data[0] >> 1) & 3], .n_stops = n_stops,
                               .rng_seed = size, .now_ns = 1000000000ull};
    int code;
    char err[256];
    s_run_t r = {.now = cfg.now_ns};
    r.s = sw_session_new((data[0] & 1) ? g_spec_env : g_env, &cfg, &code, err, sizeof err);
    INV(r.s != NULL);
    s_set_view(&r, 0);
    sw_session_actions_t acts = {0};
    s_apply(&r, &acts, sw_session_on_tick(r.s, &r.view, r.now, &acts));
    const int32_t E = sw_model_hparams(g_model)->n_embd;
    const int64_t cap = SW_SESSION_PREFILL_CHUNK + 1;
    int64_t last_rows = 0;
    for (size_t i = 2; i + 1 < size; i += 2) {
        const uint8_t op = data[i] % 13, arg = data[i + 1];
        r.now += 1000000ull;
        const sw_route_t *rt = sw_session_route(r.s);
        const int nh = sw_route_n_hops(rt);
        const char *last = nh ? sw_route_hop(rt, nh - 1)->id : "none";
        const char *first = nh ? sw_route_hop(rt, 0)->id : "none";
        int rc = 0;
        acts.n = 0;
        switch (op) {
        case 0: case 1: case 2: case 3: case 11: {
            int64_t rows = r.n;
            uint64_t id = r.req;
            const char *src = last;
            if (op == 1)
                id = r.old_req;
            else if (op == 2)
                src = first;
            else if (op == 3)
                id = r.last_req, rows = last_rows;
            else if (op == 11)
                rows = r.n + 1 + arg % 3;
            if (rows < 1 || rows > cap)
                rows = 1;
            for (int64_t k = 0; k < rows * E; k++)
                g_hidden[k] = arg == 255 ? NAN : (float) ((int) ((k * 2654435761u + arg) % 2001) - 1000) / 250.0f;
            const bool wanted = sw_session_wants(r.s, src, id, NULL);
            /* only the step in flight, under its exact id, from the last hop */
            INV(wanted == (r.have_step && id == r.req && nh > 0 && !strcmp(src, last)));
            if (wanted && op != 11) { /* the stages now hold the step's rows */
                r.cached = r.pos + r.n;
                r.have_step = false;
                r.last_req = id, last_rows = rows;
            }
            rc = sw_session_on_reply(r.s, src, id, g_hidden, rows, r.now, &acts);
            INV(wanted || acts.n == 0); /* stale, duplicate or forged: nothing happens */
            break;
        }
        case 4: {
            static const int codes[12] = {
                SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, SWISD__V1__ERROR_CODE__ERROR_KV_MISSING,
                SWISD__V1__ERROR_CODE__ERROR_INTERNAL, SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME,
                SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED,
                SWISD__V1__ERROR_CODE__ERROR_KV_MISSING, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                0, 999, -1, SWISD__V1__ERROR_CODE__ERROR_CANCELLED};
            const char *src = nh ? sw_route_hop(rt, arg % 3 < nh ? arg % 3 : nh - 1)->id : "a1";
            rc = sw_session_on_error(r.s, arg % 3 == 2 ? "b" : src, (arg & 0x80) ? r.old_req : r.req,
                                     codes[(arg / 3) % 12], "fuzz", r.now, &acts);
            break;
        }
        case 5:
            r.now += (uint64_t) arg * 250000000ull;
            rc = sw_session_on_tick(r.s, &r.view, r.now, &acts);
            break;
        case 6:
            s_set_view(&r, arg);
            rc = sw_session_on_directory(r.s, &r.view, r.now, &acts);
            break;
        case 7:
            rc = sw_session_cancel(r.s, &acts);
            break;
        case 8:
            rc = sw_session_on_send_failed(r.s, arg & 1, r.now, &acts);
            break;
        case 9:
            rc = sw_session_on_bad_reply(r.s, (arg & 1) ? first : last, r.req, "fuzz", r.now, &acts);
            break;
        case 10:
            rc = sw_session_abort(r.s, &acts);
            if (rc == 0)
                r.ends++;
            break;
        case 12:
            rc = sw_session_on_tick(r.s, &r.view, r.now, &acts);
            break;
        }
        s_apply(&r, &acts, rc);
        INV(sw_session_done(r.s) == (r.ends == 1));
    }
    /* the end is forced: exactly one end in all */
    acts.n = 0;
    const int rc = sw_session_cancel(r.s, &acts);
    s_apply(&r, &acts, rc);
    INV(r.ends == 1 && sw_session_done(r.s));
    acts.n = 0;
    INV(sw_session_on_tick(r.s, &r.view, r.now + 100000000000ull, &acts) == -1 && acts.n == 0);
    sw_session_destroy(&r.s);
    return 0;
}
