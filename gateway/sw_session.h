/*  sw_session.h: one generation request at the gateway, as a pure state
 *  machine.
 *
 *  A session holds the token history (prompt, then generated tokens), its
 *  sampler, stop strings, completion text, its route (sw_route.h) and its
 *  speculative-decoding state. It takes events and answers each with a short
 *  list of actions for the caller (the gateway's event loop) to carry out;
 *  it never touches a socket and never reads the clock (every event carries
 *  now_ns, a monotonic time in ns). It runs the gateway's share of the model
 *  itself (final norm + output head, sampling, and the local draft model),
 *  since core/ is pure compute; the caller only turns history rows into
 *  activations (embedding + codec) and replies back into hidden rows.
 *
 *  Events (each returns 0, or -1 when the session is already done; actions
 *  are appended to *out, which the caller clears between calls):
 *    sw_session_on_tick       time passed or stages became usable: starts a
 *                             waiting session (plans a route, sends the first
 *                             step), gives up when the route wait passed, and
 *                             fails over a step whose deadline passed.
 *    sw_session_on_directory  a new directory: a hop that left fails over;
 *                             then as on_tick.
 *    sw_session_on_reply      the hidden rows of the step in flight, from the
 *                             last hop, under the exact request id (anything
 *                             else is ignored: stale, duplicate, forged).
 *    sw_session_on_bad_reply  the last hop's reply to the step in flight did
 *                             not decode: fails with BAD_FRAME.
 *    sw_session_on_error      an Error from a hop of the route for the step in
 *                             flight: overload waits, a missing KV cache
 *                             replays, anything else strikes the hop and
 *                             fails over.
 *    sw_session_on_send_failed the caller could not send a STEP (full queue:
 *                             overload; else the step could not be encoded:
 *                             fails with INTERNAL).
 *    sw_session_cancel        the client cancelled: fails with CANCELLED.
 *    sw_session_abort         the client is gone: releases the caches, ends
 *                             without a message.
 *
 *  Actions (sw_session_action_t, in the order they must be carried out):
 *    STEP      send history rows [pos, pos + n_tok) (sw_session_tokens) through
 *              the route (sw_session_route) as ForwardRequest `request_id`.
 *    TEXT      stream completion bytes [text_off, text_off + text_len) of
 *              sw_session_text with token `token`, chunk index `index`.
 *    FINISH    the generation ended (`reason`: "eos", "stop", "length"); send
 *              the summary (sw_session_summary). Always the last but RELEASEs.
 *    FAIL      the request failed with error `code` (rpc.proto ErrorCode) and
 *              message `reason`.
 *    RELEASE   send KvRelease for this session to stage `node`.
 *    STRIKE    stage `node` raised a failure of its own: back it off.
 *    SUSPECT   stage `node` was on a route whose step passed its deadline:
 *              probation, and probe it.
 *    ALIVE     stage `node` completed a real step (health: it is alive).
 *    REPLAN    the session waits for a route: stage health changed in this
 *              call's actions, so call sw_session_on_tick again with a fresh
 *              view once they are carried out.
 *  Every session ends exactly once: with FINISH, FAIL, or sw_session_abort;
 *  after that every event returns -1 and adds nothing. No TEXT follows the
 *  end. A STEP's pos never exceeds the history length nor what the current
 *  route has cached (0 on a new route).
 *
 *  Kept from the gateway's behaviour before the split (docs/design.md,
 *  "Gateway classes"): adaptive step deadlines; give-up after 8 failovers
 *  that began at least 15 s ago (64 at most); overload waits of 250 ms
 *  doubling to 2 s with jitter, failing OVERLOADED once the route wait passed
 *  since the first; the avoid list; stop strings with partial-match
 *  hold-back; speculative rounds verified by sw_spec_verify (Leviathan et al.
 *  2023, "Fast Inference from Transformers via Speculative Decoding",
 *  Algorithm 1) with gamma from sw_spec_choose_gamma.
 *
 *  Out of memory never truncates an answer: the session fails with INTERNAL.
 *  Thread safety: a session and its env are used by one thread.
 */
#ifndef SW_SESSION_H
#define SW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_model.h"
#include "sw_route.h"
#include "sw_sampler.h"
#include "sw_tokenizer.h"

#define SW_SESSION_PREFILL_CHUNK 512   /* history rows per forward step at most */
#define SW_SESSION_GAMMA_LIMIT 16      /* draft tokens per speculative round at most */
#define SW_SESSION_MAX_STOPS 16        /* stop strings per request */
#define SW_SESSION_MAX_STOP_LEN 256    /* bytes of one stop string */
#define SW_SESSION_ID_MAX 32           /* bytes of a session id */
#define SW_SESSION_TEXT_MAX 1024       /* bytes of a FAIL message (= SW_WIRE_MAX_TEXT) */
#define SW_SESSION_MAX_RECOVERIES 8    /* failovers a session may go through ... */
#define SW_SESSION_RECOVERY_SPAN_MS 15000 /* ... unless they began less than this ago */
#define SW_SESSION_MAX_RECOVERIES_HARD 64 /* and never more than this */
#define SW_SESSION_PREFILL_FLOOR_MS 3000  /* least deadline of a first prefill step, ms */
#define SW_SESSION_OVERLOAD_WAIT_MS 250   /* first wait after "overloaded"; doubles, at most 2 s */
/* Most actions one event can produce: a failover's SUSPECT and RELEASE per
 * hop, or a reply's ALIVE per hop, a round's tokens, a finish and its
 * RELEASEs. */
#define SW_SESSION_MAX_ACTIONS (3 * SW_PLAN_MAX_HOPS + 2 * (SW_SESSION_GAMMA_LIMIT + 1) + 8)

/* ---- what the sessions of one gateway share -------------------------------- */

typedef struct {
    const sw_model_t *model;      /* the target, with parts.embed and parts.head; borrowed, outlives the env */
    const sw_tokenizer_t *tok;    /* its tokenizer; borrowed */
    sw_exec_t *ex;                /* compute threads for head and draft; borrowed */
    const sw_model_t *draft;      /* local draft model (all layers, same vocabulary), NULL: no speculation */
    int gamma_max;                /* most proposals per round, 1..SW_SESSION_GAMMA_LIMIT (ignored without draft) */
    int timeout_ms;               /* longest deadline of one step, ms, > 0 */
    int route_wait_ms;            /* how long a session waits for a route / through overload, ms, > 0 */
    /* Times the local draft's compute (ms per proposal feeds the choice of
     * gamma): a monotonic clock in ns, or NULL (draft time counts as 0). The
     * only clock a session reads, and only around its own computation. */
    uint64_t (*compute_clock_ns)(void);
} sw_session_env_config_t;

typedef struct sw_session_env_t sw_session_env_t;

/*  The shared part: configuration and scratch buffers (logits for
 *  SW_SESSION_GAMMA_LIMIT + 1 rows, draft hidden rows). Returns NULL (reason
 *  in err) on bad configuration or out of memory. Caller destroys, after
 *  every session made with it. */
sw_session_env_t *sw_session_env_new(const sw_session_env_config_t *cfg, char *err, size_t errlen);
void sw_session_env_destroy(sw_session_env_t **self_p);

/* ---- one session -------------------------------------------------------------- */

typedef struct {
    const char *id;               /* session id on every stage (<= SW_SESSION_ID_MAX bytes, copied);
                                     a capability: unguessable */
    const int32_t *prompt;        /* (n_prompt) token ids, copied */
    int64_t n_prompt;             /* >= 1; n_prompt + max_tokens <= the model's n_ctx_train */
    int32_t max_tokens;           /* tokens to generate at most, >= 1 */
    sw_sampler_params_t sampling; /* including the seed */
    bool ignore_eos;              /* keep going past end-of-generation tokens */
    const char *const *stops;     /* (n_stops) stop strings, copied; empty ones are ignored */
    int n_stops;                  /* <= SW_SESSION_MAX_STOPS */
    uint64_t rng_seed;            /* seeds request ids and back-off jitter: draw it from a secure source */
    uint64_t now_ns;              /* monotonic ns: the session's start */
} sw_session_config_t;

typedef struct sw_session_t sw_session_t;

/*  A new session, waiting for a route. Returns NULL with the reason in err
 *  and *code (rpc.proto ErrorCode: BAD_REQUEST for a request out of range,
 *  INTERNAL when out of memory). Caller destroys; env outlives it. */
sw_session_t *sw_session_new(sw_session_env_t *env, const sw_session_config_t *cfg, int *code, char *err,
                             size_t errlen);
/*  Frees; accepts NULL and *self_p == NULL; sets *self_p = NULL. Sends
 *  nothing: end the session first (sw_session_abort) to get its RELEASEs. */
void sw_session_destroy(sw_session_t **self_p);

typedef enum {
    SW_SESSION_STEP = 1,
    SW_SESSION_TEXT,
    SW_SESSION_FINISH,
    SW_SESSION_FAIL,
    SW_SESSION_RELEASE,
    SW_SESSION_STRIKE,
    SW_SESSION_SUSPECT,
    SW_SESSION_ALIVE,
    SW_SESSION_REPLAN,
} sw_session_action_kind_t;

typedef struct {
    sw_session_action_kind_t kind;
    char node[SW_ROUTE_ID_MAX + 1]; /* RELEASE, STRIKE, SUSPECT, ALIVE: the stage */
    uint64_t request_id;          /* STEP: ForwardRequest.request_id (odd, random) */
    int64_t pos;                  /* STEP: first history row (= KV position) */
    int32_t n_tok;                /* STEP: rows, 1..SW_SESSION_PREFILL_CHUNK */
    int32_t token;                /* TEXT: the token that produced the bytes */
    uint32_t index;               /* TEXT: completion token index (0-based) */
    size_t text_off, text_len;    /* TEXT: byte range of sw_session_text */
    int code;                     /* FAIL: rpc.proto ErrorCode */
    const char *reason;           /* FINISH: static string; FAIL: message, borrowed until destroy */
} sw_session_action_t;

typedef struct {
    int n;                                       /* actions in a */
    sw_session_action_t a[SW_SESSION_MAX_ACTIONS];
} sw_session_actions_t;

/*  Events: see the top of this file. now_ns: monotonic ns, never before the
 *  session's start. `src`: the sender's node id as the broker stamped it.
 *  hidden: (n_rows, n_embd) f32 row-major, the last hop's output for the
 *  step in flight; n_rows must equal the step's n_tok (else BAD_FRAME).
 *  view: borrowed for the call. Return 0, or -1 when the session has ended. */
int sw_session_on_tick(sw_session_t *self, const sw_route_view_t *view, uint64_t now_ns, sw_session_actions_t *out);
int sw_session_on_directory(sw_session_t *self, const sw_route_view_t *view, uint64_t now_ns,
                            sw_session_actions_t *out);
int sw_session_on_reply(sw_session_t *self, const char *src, uint64_t request_id, const float *hidden,
                        int64_t n_rows, uint64_t now_ns, sw_session_actions_t *out);
int sw_session_on_bad_reply(sw_session_t *self, const char *src, uint64_t request_id, const char *why,
                            uint64_t now_ns, sw_session_actions_t *out);
int sw_session_on_error(sw_session_t *self, const char *src, uint64_t request_id, int code, const char *message,
                        uint64_t now_ns, sw_session_actions_t *out);
int sw_session_on_send_failed(sw_session_t *self, bool queue_full, uint64_t now_ns, sw_session_actions_t *out);
int sw_session_cancel(sw_session_t *self, sw_session_actions_t *out);
int sw_session_abort(sw_session_t *self, sw_session_actions_t *out);

/*  True when a reply from `src` under `request_id` answers the step in
 *  flight (then *n_rows, may be NULL, gets the rows expected): the caller
 *  decodes only such replies. */
bool sw_session_wants(const sw_session_t *self, const char *src, uint64_t request_id, int64_t *n_rows);
/*  First history row (KV position) of the step last sent (0 before any):
 *  with sw_session_wants' rows, what a sealed reply's nonce binds. */
int64_t sw_session_pending_pos(const sw_session_t *self);

/* ---- read-only views ----------------------------------------------------------- */

const char *sw_session_id(const sw_session_t *self);
/*  True once the session has ended (FINISH, FAIL or abort). */
bool sw_session_done(const sw_session_t *self);
/*  True while a step is in flight. */
bool sw_session_in_flight(const sw_session_t *self);
/*  The history: prompt then generated tokens, then (during a speculative
 *  round) the round's proposals; (sw_session_n_tokens + proposals) ids,
 *  borrowed until the next event. */
const int32_t *sw_session_tokens(const sw_session_t *self);
/*  Accepted history length (prompt + generated), tokens. */
int64_t sw_session_n_tokens(const sw_session_t *self);
/*  The completion text so far (bytes, NUL-terminated), borrowed until the
 *  next event; *len (may be NULL) gets its length. */
const char *sw_session_text(const sw_session_t *self, size_t *len);
/*  The current route (borrowed for the session's life; empty while waiting). */
const sw_route_t *sw_session_route(const sw_session_t *self);
/*  Failovers so far. */
int sw_session_recoveries(const sw_session_t *self);

typedef struct {
    uint32_t prompt_tokens, completion_tokens;  /* tokens */
    float time_to_first_token_ms;  /* from start; 0 before the first token */
    float prefill_ms;              /* from start to the end of the first prefill; 0 before */
    float decode_tokens_per_s;     /* (completion - 1) / time since the first token; 0 below 2 tokens */
    float total_ms;                /* from start to now */
    float acceptance_rate;         /* accepted / evaluated proposals; 0 without rounds */
    float tokens_per_round_trip;   /* (accepted + rounds) / rounds; 1 without rounds */
    uint32_t gamma;                /* proposals planned for the next round */
    float speedup;                 /* expected speed-up of speculation; 0 without rounds */
    uint64_t seed;                 /* the sampler's seed (sw_session_config_t.sampling.seed) */
} sw_session_stats_t;

/*  Figures for the summary and the status at now_ns. */
void sw_session_stats(const sw_session_t *self, uint64_t now_ns, sw_session_stats_t *out);

#endif
