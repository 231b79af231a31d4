/*  sw_gateway_internal.h: the gateway's state, shared by the files of the
 *  gateway class: sw_gateway.c (the event loop, sessions, RPC) and
 *  sw_gateway_audit.c (commitments and audits, docs/security.md
 *  "Verification"). Not part of the gateway's interface (sw_gateway.h).
 *
 *  Thread safety: the gateway's loop thread only.
 */
#ifndef SW_GATEWAY_INTERNAL_H
#define SW_GATEWAY_INTERNAL_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "sw_audit.h"
#include "sw_broker_auth.h"
#include "sw_broker_client.h"
#include "sw_codec.h"
#include "sw_commit.h"
#include "sw_gateway.h"
#include "sw_health.h"
#include "sw_keyset.h"
#include "sw_model.h"
#include "sw_planner.h"
#include "sw_recent.h"
#include "sw_seal_peers.h"
#include "sw_session.h"
#include "sw_tokenizer.h"
#include "sw_wire.h"

#define SW__VERIFIED_PENDING 64 /* keys whose verified results wait for the once-a-second flush */
#define SW__TRUST_CACHE 256     /* keys whose reputation is kept in memory (read again after a second) */

/* A key's reputation as last read from the state database. */
typedef struct {
    char id[SW_WIRE_MAX_ID + 1];   /* "" unused */
    bool known;                    /* the database has a record */
    uint64_t verified, consecutive, failed;
    double audit_rate;
    bool trusted;
    uint64_t read_ns;              /* when it was read (monotonic) */
} sw__trust_t;

/* A TEXT chunk held until an audit verified the rows it came from. */
typedef struct {
    uint32_t index;                /* completion token index */
    int32_t token;                 /* the token */
    int64_t need_row;              /* released once rows <= this are verified */
    char *text;                    /* its bytes (owned) */
    size_t len;
} sw__held_t;

/* How a session started, to start it again after an audit failed (the same
 * prompt, sampling and seed give the same text through honest stages). */
typedef struct {
    int32_t *prompt;               /* (n_prompt) token ids, owned */
    int64_t n_prompt;
    int32_t max_tokens;
    sw_sampler_params_t sampling;  /* with the seed */
    bool ignore_eos;
    char *stops[SW_SESSION_MAX_STOPS]; /* owned */
    int n_stops;
} sw__restart_t;

/* A session and the RPC client it answers. */
typedef struct sw__gw_session {
    struct sw__gw_session *next;
    sw_session_t *ss;              /* the state machine */
    zframe_t *client;              /* the client's routing id */
    uint64_t client_req;           /* the client's request id */
    /* verification (sw_gateway_audit.c) */
    sw__restart_t restart;         /* how it started */
    uint64_t sent_request;         /* request id of the step in flight */
    uint8_t sent_digest[SW_COMMIT_DIGEST_BYTES]; /* of the payload that step's first hop gets (opened) */
    int32_t sent_tokens[SW_SESSION_PREFILL_CHUNK]; /* the step's token ids, as sent */
    sw__held_t *held;              /* TEXT chunks waiting for an audit, in order */
    int n_held, cap_held;
    bool finish_held;              /* FINISH waits for the held chunks */
    char finish_reason[32];
    sw_commit_t commits[SW_PLAN_MAX_HOPS]; /* the last reply's commitments, opened (sketches owned) */
    struct { char node[SW_WIRE_MAX_ID + 1]; uint32_t begin, end; } step_hops[SW_PLAN_MAX_HOPS];
    int n_commits;                 /* hops of that step (0: none kept) */
    int64_t step_pos;              /* its first row */
    int32_t step_rows;             /* its rows */
    char *delivered;               /* text bytes sent to the client (owned) */
    size_t n_delivered, cap_delivered;
    size_t replay_off;             /* after a restart: bytes of the new text so far (the first n_delivered
                                      were delivered already: compared, not sent again) */
    bool replaying;                /* restarted: new text is checked against the delivered */
    int restarts;                  /* restarts after failed audits */
    int audit_failures;            /* audits of this session that could not run (no route, time-out) */
    bool paced;                    /* paced_step is held back (sw__audit_pace) and sent when the audit answers */
    sw_session_action_t paced_step;
} sw__gw_session_t;

/* One session's audit: its shadow on an independent route (the route keeps
 * the audit session's KV caches, so a later audit of the same session only
 * sends the rows added since). */
typedef struct sw__audit_job {
    struct sw__audit_job *next;
    char sid[SW_SESSION_ID_MAX + 1];   /* the audited session */
    char asid[48];                     /* "audit-<hex>": its session id on the auditors */
    int n_hops;
    struct {
        char node[SW_WIRE_MAX_ID + 1];
        uint32_t begin, end;
        uint8_t key[32];
        sw_codec_config_t codec;       /* the link into it: the audited route's, so inputs are quantized alike */
    } hops[SW_PLAN_MAX_HOPS];
    int64_t next_pos;                  /* rows [0, next_pos) are in the auditors' KV caches */
    int64_t target;                    /* audit up to this row (exclusive) */
    uint64_t request_id;               /* the chunk in flight (0: none) */
    int64_t pending_pos;
    int32_t pending_n;
    uint8_t sent_digest[SW_COMMIT_DIGEST_BYTES];
    uint64_t deadline_ns;
    bool tiebreak;                     /* a third host deciding a disagreement */
    char disputed_node[SW_WIRE_MAX_ID + 1], disputed_auditor[SW_WIRE_MAX_ID + 1];
    int64_t disputed_pos;
    uint32_t disputed_begin, disputed_end;
    bool done;                         /* finished: release its KV and free it */
} sw__audit_job_t;

struct sw_gateway_t {
    sw_gateway_config_t cfg;
    sw_recent_t *recent;           /* finished generations, for the swarm status */
    int chat_format;           /* sw_chat_format_t of tokenizer.chat_template */
    sw_model_t *model;
    const sw_hparams_t *hp;
    sw_tokenizer_t *tok;
    sw_exec_t *ex;
    char model_id[129], checksum[17];
    Swisd__V1__ModelRef ref;
    sw_broker_client_t *bc;
    zsock_t *rpc;
    sw_broker_auth_t *rpc_auth;    /* with keys: the RPC's ZAP handler (--rpc-allow: the allowlist; else open,
                                      tagging each connection with its key); NULL when insecure */
    sw_keyset_t *trusted;          /* --trusted-keys: who may hold layers [0, cfg.trusted_layers) */
    char rpc_ep[256];
    sw_codec_config_t codec_cfg;
    sw_codec_t *tx, *rx;
    sw_codec_config_t tx_cfg;      /* config g->tx was made with */
    Swisd__V1__Body *dir;          /* last DirectoryReply */
    uint64_t next_dir_ns;
    sw__gw_session_t *sessions;
    int n_sessions;
    float *hidden;                 /* (SW_SESSION_PREFILL_CHUNK, n_embd) f32: a step's rows, out or back */
    sw_model_t *draft;             /* speculative decoding; NULL when off */
    int gamma_max;
    sw_session_env_t *env;         /* what sessions share: model parts, scratch */
    sw_health_t *health;           /* admission, probation, back-off and measured speed of stages */
    uint64_t rng;                  /* request ids and probe nonces (unguessable: seeded by getrandom) */
    uint64_t tag_seed;             /* keys the public tags of session ids */
    float *probe_row;              /* (1, n_embd) f32: the BOS embedding that probes carry */
    sw_codec_t *probe_tx;          /* f32 codec for probes */
    sw_seal_peers_t *seal;         /* with a key: activations sealed end to end (docs/security.md); NULL: insecure */
    uint64_t unsealed_replies;     /* replies that did not open with the answering stage's key */
    struct { char id[SW_WIRE_MAX_ID + 1]; uint64_t n; } unsealed_by[16]; /* per node; the oldest slot reused */
    int unsealed_next;
    uint64_t unsealed_log_ns;      /* last log line about unsealed replies (at most one per 10 s) */
    uint64_t rpc_drops;            /* replies to RPC clients dropped (their queue was full) */
    uint64_t drop_log_ns;          /* last log line about drops */
    /* the route view (planner input) built from the directory and stage health */
    sw_plan_stage_t *v_usable, *v_live;   /* (SW_WIRE_MAX_STAGES) each */
    sw_codec_config_t *v_inbound;         /* (SW_WIRE_MAX_STAGES) codec into each usable stage */
    const Swisd__V1__StageInfo **v_infos; /* (SW_WIRE_MAX_STAGES) directory entry of each usable stage */
    uint64_t view_gen;                    /* views built so far (a loop holding one rebuilds it when this moved) */
    sw_session_actions_t acts;            /* actions of the event being handled */
    uint64_t bans_seen;                   /* sw_bans_version acted on */
    struct sw_ban_outbox_t *ban_out;      /* ban notices waiting for the broker link (sw_gateway_ban) */
    /* verification (sw_gateway_audit.c, docs/security.md "Verification"); all NULL / 0 when insecure */
    sw_audit_t *audit;                    /* the audit book */
    sw__audit_job_t *jobs;                /* audits, one per session at most */
    char (*audit_banned)[SW_WIRE_MAX_ID + 1]; /* nodes an audit caught (never planned again) */
    int n_audit_banned;
    uint64_t audits_started, audits_passed, audits_failed, chain_breaks, unverifiable, delivered_differs;
    uint64_t audit_log_ns;                /* last "cannot audit" log line */
    double audit_max_ok;                  /* the largest sketch distance of comparisons that agreed */
    struct { char id[SW_WIRE_MAX_ID + 1]; uint64_t n; } verified_pending[SW__VERIFIED_PENDING];
    int n_verified_pending;               /* verified results not yet in the reputation (flushed every second) */
    sw__trust_t trust_cache[SW__TRUST_CACHE]; /* the reputation of recent keys: the loop reads these per token,
                                             the database at most once a second per key */
    int trust_next;                       /* the slot replaced next when a key is not cached */
    uint64_t verified_flush_ns;
    /* reputation and credits (sw_reputation; cfg.reputation, NULL: none) */
    double credit_factor;                 /* credit units per layer per token (sw_reputation_model_factor) */
    uint64_t credit_log_ns;               /* last log line about a failure to record credit (one per 10 s) */
};

/* ---- shared by the gateway's files (sw_gateway.c) ---- */

uint64_t sw__gateway_rand(sw_gateway_t *g);
/* Carries out g->acts for c (s_drive), removing c once it ended. */
void sw__gateway_drive(sw_gateway_t *g, sw__gw_session_t *c);
/* Asks `node` to drop the KV cache of session_id (KvRelease, best effort). */
void sw__gateway_kv_release(sw_gateway_t *g, const char *node, const char *session_id);
/* Ends c's state machine (sw_session_abort) and sends the KvRelease of every
 * stage that holds its KV cache; nothing is said to the client. */
void sw__gateway_abort(sw_gateway_t *g, sw__gw_session_t *c);
/* Unlinks and frees c. */
void sw__gateway_remove(sw_gateway_t *g, sw__gw_session_t *c);
/* The planner's view of the swarm now (s_view). */
void sw__gateway_view(sw_gateway_t *g, sw_route_view_t *v);
/* s_send_forward: a ForwardRequest through route, sealed when keyed; the
 * digest of the payload the first hop opens goes to digest (NULL: not
 * needed). Returns 0, -1 (queue full), -3 (cannot seal). */
int sw__gateway_send_forward(sw_gateway_t *g, char *session_id, uint64_t request_id, Swisd__V1__Hop **route,
                             size_t n_route, uint32_t pos, uint32_t n_tok, Swisd__V1__Activation *act,
                             Swisd__V1__CodecConfig *reply_codec, uint8_t *digest);
const Swisd__V1__StageInfo *sw__gateway_stage_info(const sw_gateway_t *g, const char *id);
/* Stages of our model from the last directory as planner input (s_stages in
 * sw_gateway.c): with `usable`, those health lets us choose now; else every
 * live one, a draining one only while `cover` (n_cover; NULL: none) does not
 * hold its layers. Fills out[0..max) (and infos, when not NULL); returns the count. */
int sw__gateway_stages(sw_gateway_t *g, sw_plan_stage_t *out, const Swisd__V1__StageInfo **infos, int max,
                       bool usable, const sw_plan_stage_t *cover, int n_cover);
/* Sends body b to the RPC client `client` (a copy of its routing frame); false when it cannot be queued. */
bool sw__gateway_rpc_send(sw_gateway_t *g, zframe_t *client, const Swisd__V1__Body *b);
#define SW__GATEWAY_RECENT 240 /* finished generations kept for the swarm status */
/* sw_gateway_status.c: the RPC's ListModels, SwarmStatus and TokenRequest answers. */
void sw__gateway_on_list_models(sw_gateway_t *g, zframe_t *client);
void sw__gateway_on_status(sw_gateway_t *g, zframe_t *client);
void sw__gateway_on_token(sw_gateway_t *g, const sw_wire_msg_t *m);
/* Streams one TEXT chunk (bytes text[0..len)) to c's client; false when the
 * client is gone or its queue is full. */
bool sw__gateway_emit(sw_gateway_t *g, sw__gw_session_t *c, uint32_t index, int32_t token, const char *text,
                      size_t len);
/* Sends c's summary (the end of its answer). */
void sw__gateway_summary(sw_gateway_t *g, sw__gw_session_t *c, const char *reason);
/* Opens an activation sealed by stage src as hop `hop`: sw_gateway.c's s_open_reply. */
int sw__gateway_open_reply(sw_gateway_t *g, const char *src, const char *session_id, uint64_t request_id,
                           const Swisd__V1__Activation *a, uint32_t hop, uint32_t pos, uint32_t n_rows,
                           sw_codec_header_t *h, uint8_t **opened, size_t *len);

/* ---- verification (sw_gateway_audit.c) ---- */

/* Makes the audit book (keyed gateways). Returns 0 or -1 with err. */
int sw__audit_init(sw_gateway_t *g, char *err, size_t errlen);
void sw__audit_free(sw_gateway_t *g);
/* True when node must not be planned: an audit caught it. */
bool sw__audit_banned(const sw_gateway_t *g, const char *node);
/* Checks the commitments of a reply of session c (rep: the ForwardReply,
 * reply_plain: its opened payload, n_rows: the step's rows): each opens with
 * its hop's key, names the hop's layers, and the chain of digests holds
 * (what the gateway sent, what each hop received and sent, what came back).
 * Returns 0, or -1 with the reason in err (a bad reply). Keeps the sketches
 * for sw__audit_after_step. */
int sw__audit_check_reply(sw_gateway_t *g, sw__gw_session_t *c, const Swisd__V1__ForwardReply *rep, int64_t n_rows,
                          const void *reply_plain, size_t len, char *err, size_t errlen);
/* Records the step just accepted (after sw_session_on_reply) and starts or
 * extends the session's audit when the hops' audit rates say so. */
void sw__audit_after_step(sw_gateway_t *g, sw__gw_session_t *c);
/* True when c's TEXT chunks must wait for an audit (a hop of its route is
 * not yet trusted). */
bool sw__audit_must_hold(sw_gateway_t *g, sw__gw_session_t *c);
/* True when c's next step should wait: a hop of its route has a key with no
 * verified result yet (not the operator's) and an audit chunk of c is in
 * flight. A new key then computes one step of a session, not several, before
 * its first verdict: a stage that lies from its first request is caught
 * before it has served more. The tick sends the held step (c->paced_step)
 * once this turns false (the audit answered, failed or timed out). */
bool sw__audit_pace(sw_gateway_t *g, sw__gw_session_t *c);
/* Replies and errors of audit sessions ("audit-..."). */
void sw__audit_on_reply(sw_gateway_t *g, const char *src, const Swisd__V1__ForwardReply *rep);
void sw__audit_on_error(sw_gateway_t *g, const char *src, const Swisd__V1__Error *e);
/* Deadlines, releases, restarts: call every loop turn. */
void sw__audit_tick(sw_gateway_t *g);
/* The audit part of a SwarmStatusReply: r->audit, r->trust, r->unverified,
 * pointing into buf (free it with sw__audit_status_free after sending). */
typedef struct {
    Swisd__V1__AuditStatus audit;
    Swisd__V1__NodeTrust *trust, **trust_p;
    Swisd__V1__LayerRange unverified[64], *unverified_p[64];
    char *caught[64];
} sw__audit_status_t;
void sw__audit_status(sw_gateway_t *g, Swisd__V1__SwarmStatusReply *r, sw__audit_status_t *buf);
void sw__audit_status_free(sw__audit_status_t *buf);
/* c is about to be freed: drop its audit state (its job's KV released). */
void sw__audit_session_gone(sw_gateway_t *g, sw__gw_session_t *c);

#endif
