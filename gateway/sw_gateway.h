/*  sw_gateway.h: the gateway process's core: tokenizer, embeddings, final
 *  norm and output head of one model; plans chains of stages, runs prefill
 *  and decode through them for many sessions at once, samples, and streams
 *  tokens to RPC clients (docs/protocol.md, "Gateway RPC").
 *
 *  Structure (docs/design.md, "Gateway classes"): sw_gateway.c is the event
 *  loop and the RPC dispatch only. It turns socket events (ForwardReply,
 *  Error, DirectoryReply from the broker link; GenerateRequest, Cancel,
 *  status requests from the RPC socket; the clock) into events of one
 *  sw_session_t per request (gateway/sw_session.h, a pure state machine that
 *  never touches a socket or reads the clock) and carries out the actions it
 *  returns: send a step, stream text, finish, release KV caches, strike or
 *  suspect a stage in sw_health (gateway/sw_health.h), which also admits new
 *  stages by probe. Route choice and each session's avoid list are in
 *  gateway/sw_route.h; finished generations for the dashboard in
 *  gateway/sw_recent.h. Each session keeps its token history, so a failover
 *  replays it on another route.
 *
 *  Thread safety: one thread runs the gateway (sw_gateway_run); the HTTP
 *  front reaches it only through the RPC socket (client/sw_client.h).
 */
#ifndef SW_GATEWAY_H
#define SW_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_identity.h"

typedef struct {
    const char *broker;      /* broker endpoint */
    const char *model_path;  /* GGUF (embeddings, output norm and head are loaded) */
    const char *rpc;         /* RPC endpoint to bind, e.g. tcp://127.0.0.1:* */
    const char *region;      /* NULL: "default" */
    const char *display_name; /* NULL: none; shown beside the id (sw_broker_client.h) */
    const char *id;          /* NULL: random */
    const sw_identity_t *identity; /* the node's key (borrowed for its life): CURVE link, id = fingerprint; NULL: insecure */
    const char *rpc_allow_dir; /* NULL: the RPC serves any client key (the open API); else only the keys of the
                                  public certificate files in this folder, and the gateway's own (its HTTP
                                  front): a ZAP handler (sw_broker_auth.h) refuses the others' handshakes and
                                  logs them. Needs identity */
    int trusted_layers;      /* > 0: layers [0, trusted_layers) run only on stages whose keys are in
                                trusted_dir (0 with trusted_dir: the keys are trusted auditors only) (their inputs are the easiest to invert back to the prompt:
                                docs/security.md, "What a stage learns"); a stage whose range starts below
                                it with another key is never planned, and the dashboard shows those layers
                                as a gap until a trusted stage holds them. Needs identity and trusted_dir */
    const char *trusted_dir; /* folder of the operator's stage keys (sw_keyset.h): trusted for the first layers
                                (trusted_layers) and as auditors (their word decides an audit) */
    double audit_threshold;  /* relative sketch distance above which two hosts disagree; <= 0: 0.05
                                (verify/sw_audit.h; the measured noise in docs/security.md) */
    int audit_n_trust;       /* consecutive verified steps before a stage is trusted; <= 0: 20 */
    double audit_rate_floor; /* audit rate of a trusted stage; <= 0: 0.05 */
    bool audit_hold_all;     /* true (--audit-hold all): every session's text is held until an audit verified
                                it, whatever its stages' trust (only the operator's keys, trusted_dir, are
                                exempt): no text from a stage that lies after earning trust reaches a
                                client, at the cost of an audit of every step and of streaming (text comes
                                out as audits verify it). false: held only while a hop is untrusted */
    const char *codec;       /* activation codec spec for every link, NULL: "f32" */
    int threads;             /* compute threads for embed / head */
    int timeout_ms;          /* one step through the chain; <= 0: 30000 */
    int route_wait_ms;       /* how long a request waits for full coverage; <= 0: 5000 */
    int max_sessions;        /* concurrent sessions; <= 0: 64 */
    int heartbeat_ms;        /* <= 0: the broker's */
    const char *draft_path;  /* speculative decoding: a local draft model with the same
                                vocabulary (NULL: off) */
    int gamma_max;           /* most tokens proposed per round; <= 0: 8 (at most 16) */
    struct sw_bans_t *bans;  /* the operator's bans and drains (sw_bans; changed by the HTTP front's admin
                                endpoints from its threads); borrowed, outlives the gateway; NULL: none.
                                A banned node is never planned, probed or kept on a route (sessions on it
                                fail over within one loop turn, 100 ms); a drained stage gets no new
                                session, those on it finish */
    struct sw_reputation_t *reputation; /* per-key reputation and credits (sw_reputation; the HTTP front reads it
                                           from its threads); borrowed, outlives the gateway; NULL: none. The
                                           gateway credits every hop of every completed forward step (layers x
                                           tokens x the model's factor), records the display names it sees in
                                           the directory, and ticks it from its loop */
    struct sw_api_token_t *tokens; /* API tokens (sw_api_token) made for RPC clients that prove their key
                                      (TokenRequest); borrowed, outlives the gateway; NULL: TokenRequest is
                                      refused */
} sw_gateway_config_t;

typedef struct sw_gateway_t sw_gateway_t;

sw_gateway_t *sw_gateway_new(const sw_gateway_config_t *cfg, char *err, size_t errlen);
void sw_gateway_destroy(sw_gateway_t **self_p);
/*  The RPC endpoint actually bound. Borrowed. */
const char *sw_gateway_rpc_endpoint(const sw_gateway_t *self);
const char *sw_gateway_id(const sw_gateway_t *self);
/*  The served model's id (borrowed). */
const char *sw_gateway_model_id(const sw_gateway_t *self);
/*  The model's chat format (sw_chat_format_t, from tokenizer.chat_template
 *  by sw_chat_detect; SW_CHAT_DEFAULT when absent or not recognized). */
int sw_gateway_chat_format(const sw_gateway_t *self);
/*  Bans node id across the swarm (docs/security.md, "Bans that reach every
 *  broker"): the gateway stops planning it (cfg.bans, when set) and sends a
 *  BanNotice to its broker, with the node's public key from the directory
 *  when it lists the node; every broker then refuses its key for duration_s
 *  seconds (1..SW_BAN_MAX_S). on false lifts the ban (here and at the
 *  brokers). The notice leaves on the next turn of the loop (<= 100 ms), or
 *  once the gateway is registered. reason: NULL or <= 200 bytes. Returns
 *  1 changed, 0 already so, -1 with err set (sw_ban_outbox_ban). Any thread
 *  (the outbox and sw_bans lock). */
int sw_gateway_ban(sw_gateway_t *self, const char *id, bool on, uint64_t duration_s, const char *reason, char *err,
                   size_t errlen);
/*  The outbox sw_gateway_ban fills (borrowed while the gateway lives), for
 *  the HTTP front's /admin/ban. */
struct sw_ban_outbox_t *sw_gateway_ban_outbox(sw_gateway_t *self);
/*  Serves until *stop or SIGINT/SIGTERM. Returns 0. */
int sw_gateway_run(sw_gateway_t *self, volatile int *stop);

#endif
