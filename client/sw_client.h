/*  sw_client.h: client library for the gateway's RPC (docs/protocol.md,
 *  "Gateway RPC"): generate with streamed tokens, list models, swarm status.
 *
 *  One DEALER socket to the gateway's RPC endpoint. Calls are synchronous and
 *  bounded by a timeout; while a generation streams, the callback gets each
 *  chunk of text as it arrives. A caller can end a call early: the token
 *  callback returns non-zero, or the stop callback (sw_client_set_stop) does;
 *  a generation is then cancelled in the gateway (a Cancel message, which
 *  ends the session and releases its KV caches on the stages).
 *
 *  Results are codes first, text second: every call returns 0 or -1, and on
 *  -1 sets *code to one of
 *    1..99   a swisd.v1.ErrorCode the gateway answered (protos/common.proto:
 *            BAD_REQUEST, OVERLOADED, NO_ROUTE, UNREACHABLE, CANCELLED, ...;
 *            an Error with ERROR_UNSPECIFIED is reported as INTERNAL)
 *    SW_CLIENT_TIMEOUT ... below: failures seen by the client itself
 *  and writes a one-line reason in err ("OVERLOADED: too many concurrent
 *  sessions"). Pick behaviour from the code, never from the text.
 *
 *  Thread safety: one thread per client.
 */
#ifndef SW_CLIENT_H
#define SW_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct _sw_identity_t; /* sw_identity.h */

/* Client-side result codes (values past swisd.v1.ErrorCode's). */
enum {
    SW_CLIENT_TIMEOUT = 100,   /* no message from the gateway within timeout_ms */
    SW_CLIENT_STOPPED = 101,   /* the caller stopped the call (callback), or SIGINT/SIGTERM (czmq's zsys_interrupted) */
    SW_CLIENT_LOCAL = 102,     /* a local failure: out of memory, cannot send */
    SW_CLIENT_BAD_REPLY = 103, /* the gateway's reply was malformed or not the one asked for */
};

/*  Short name of a result code: "OK", a swisd.v1.ErrorCode name without
 *  "ERROR_" ("OVERLOADED"), or "TIMEOUT", "STOPPED", "LOCAL", "BAD_REPLY";
 *  "UNKNOWN" otherwise. Static string. */
const char *sw_client_code_name(int code);

typedef struct sw_client_t sw_client_t;

/*  A piece of a templated prompt (see PromptPart in protos/rpc.proto). */
typedef struct {
    const char *text;            /* UTF-8, NUL-terminated, borrowed */
    bool special;                /* special tokens' pieces in it become those tokens */
} sw_client_prompt_part_t;

typedef struct {
    const char *prompt;          /* UTF-8 plain text; ignored when n_parts > 0 */
    const sw_client_prompt_part_t *parts; /* n_parts pieces of a templated prompt, or NULL */
    size_t n_parts;              /* <= 4096 */
    uint32_t max_tokens;         /* 1..65536 */
    float temperature;           /* <= 0: greedy */
    int32_t top_k;               /* <= 0: off */
    float top_p;                 /* 0 or >= 1: off */
    float min_p;                 /* <= 0: off */
    float repeat_penalty;        /* 0 or 1: off */
    bool has_seed;               /* false: the gateway draws a random seed (reported in the summary) */
    uint64_t seed;               /* the sampler's seed when has_seed */
    bool ignore_eos;
    const char *const *stop;     /* stop strings, may be NULL */
    int n_stop;
} sw_client_request_t;

typedef struct {
    uint32_t prompt_tokens, completion_tokens;
    char stop_reason[16];        /* "length", "eos", "stop" */
    float time_to_first_token_ms, prefill_ms, decode_tokens_per_s, total_ms;
    int n_route;                 /* hops of the chain used */
    float acceptance_rate;       /* speculative decoding: draft tokens accepted / evaluated; 0 when off */
    uint64_t seed;               /* the sampler's seed: the request's, or the one the gateway drew */
} sw_client_summary_t;

/*  Called for every streamed chunk: text bytes (not NUL-terminated; may split
 *  a UTF-8 character; len may be 0 while a stop string may still match), the
 *  token id, and the caller's pointer. Returns 0 to go on, non-zero to stop
 *  the generation (the call then cancels it and returns SW_CLIENT_STOPPED). */
typedef int (sw_client_token_fn)(const char *text, size_t len, uint32_t token_id, void *user);

/*  Asked while a call waits for the gateway (at least every every_ms, and
 *  after a message when every_ms passed since the last time). Returns 0 to go
 *  on, non-zero to end the call with SW_CLIENT_STOPPED (a generation is
 *  cancelled in the gateway). */
typedef int (sw_client_stop_fn)(void *user);

/*  Connects (asynchronously; errors show at the first call). Returns NULL
 *  only on a bad endpoint or resource failure. Caller destroys result.
 *  With "#KEY" in the endpoint the link is CURVE, as a throw-away client key
 *  (the open API: a gateway without --rpc-allow accepts any key). */
sw_client_t *sw_client_new(const char *endpoint, char *err, size_t errlen);
/*  The same as `identity` (borrowed; only read, during this call): a gateway
 *  started with --rpc-allow DIR serves only the keys in DIR (and its own),
 *  and a refused key sees no answer (ZeroMQ retries the handshake
 *  silently): calls then end with SW_CLIENT_TIMEOUT, whose message says so.
 *  identity NULL: as sw_client_new. Thread safety: several threads may
 *  pass the same identity. */
sw_client_t *sw_client_new_keyed(const char *endpoint, const struct _sw_identity_t *identity, char *err,
                                 size_t errlen);
void sw_client_destroy(sw_client_t **self_p);

/*  Installs (fn non-NULL) or removes (fn NULL) the stop callback of every
 *  later call; user is passed to it; every_ms: 10..60000 (clamped). */
void sw_client_set_stop(sw_client_t *self, sw_client_stop_fn *fn, void *user, int every_ms);

/*  Generates; streams chunks to on_token (may be NULL) and fills summary.
 *  timeout_ms bounds the wait for each message from the gateway.
 *  Returns 0, or -1 with *code (see the top; code may be NULL) and the reason
 *  in err ("NO_ROUTE: no live stages for layers 2-3"). When the caller stops
 *  it (on_token or the stop callback), a Cancel goes to the gateway before
 *  the call returns SW_CLIENT_STOPPED; the Cancel is delivered even if the
 *  client is destroyed right after (the socket lingers up to 250 ms). */
int sw_client_generate(sw_client_t *self, const sw_client_request_t *req, sw_client_token_fn *on_token, void *user,
                       sw_client_summary_t *summary, int timeout_ms, int *code, char *err, size_t errlen);

/*  The gateway's model: id, whether every layer has a live stage, and the
 *  gaps as text ("2-3"). Returns 0, or -1 with *code (may be NULL) and err. */
int sw_client_list_models(sw_client_t *self, char *model_id, size_t id_len, bool *servable, char *gaps,
                          size_t gaps_len, int timeout_ms, int *code, char *err, size_t errlen);

/*  One live stage as the gateway's directory lists it. Strings borrowed
 *  for the duration of the callback. */
typedef struct {
    const char *node_id, *region, *broker_id, *model_id;
    const char *display_name;     /* the stage's own (printable ASCII, not unique, not trusted); "" none */
    uint32_t begin, end;          /* layers [begin, end) */
    float rtt_ms;                 /* broker <-> stage round trip from heartbeats, ms */
    uint32_t age_ms;              /* since the stage's last heartbeat, ms */
    uint32_t threads;             /* compute threads the stage offers */
    float ms_per_layer;           /* measured decode compute per block, ms */
    uint32_t active_sessions;     /* sessions with a KV cache on the stage */
    uint32_t queued_requests;     /* forward requests waiting */
    uint64_t kv_bytes;            /* bytes held by KV caches */
    float busy;                   /* fraction of the last second computing, 0..1 */
    bool audit_stage;             /* an operator's audit stage (takes audit work only) */
    bool has_trust;               /* the gateway audits (keys): the next four are set */
    uint64_t verified;            /* its steps verified by an independent host */
    uint64_t failed;              /* audits it failed */
    float audit_rate;             /* share of its steps audited now */
    bool trusted;                 /* an operator's key, or enough consecutive verified steps */
} sw_client_stage_t;

/*  One session in progress in the gateway. */
typedef struct {
    const char *session_id;
    uint32_t tokens;              /* generated so far */
    float tokens_per_s;           /* decode speed so far */
    float acceptance_rate;        /* speculative decoding, 0 when off */
} sw_client_session_t;

/*  One finished generation (all the gateway's clients, not only HTTP). */
typedef struct {
    double end_unix_ms;           /* wall clock at the end, ms since the epoch */
    uint32_t prompt_tokens, completion_tokens;
    float decode_tokens_per_s;
    float ttft_ms;                /* time to first token */
    float acceptance_rate;        /* speculative decoding, 0 when off */
} sw_client_sample_t;

/*  The swarm as the gateway sees it (SwarmStatusReply, docs/protocol.md).
 *  Everything is borrowed for the duration of the callback. */
typedef struct {
    const char *gateway_id, *region;
    const char *gateway_key;                /* the gateway's CURVE public key (Z85, 40 characters) this client
                                               dialed, "" on a plain connection */
    const char *model_id, *checksum;        /* the gateway's model */
    uint32_t n_layer, n_embd, n_vocab;
    const sw_client_stage_t *stages;        /* n_stages */
    int n_stages;
    const sw_client_session_t *sessions;    /* n_sessions */
    int n_sessions;
    const uint32_t (*gaps)[2];              /* n_gaps half-open layer ranges no live stage holds */
    int n_gaps;
    const sw_client_sample_t *recent;       /* n_recent finished generations, oldest first */
    int n_recent;
    uint64_t generations_total;             /* finished generations since the gateway started */
    uint64_t tokens_generated_total;        /* completion tokens since the gateway started */
    uint64_t unsealed_replies_total;        /* replies rejected for not opening with the stage's key */
    const char *unsealed_node[16];          /* n_unsealed node ids (borrowed) with their counts */
    uint64_t unsealed_count[16];
    int n_unsealed;
    bool has_audit;                         /* the gateway audits (keys): the audit counters are set */
    uint64_t audits_started, audits_passed, audits_failed, chain_breaks, unverifiable, delivered_differs;
    float max_agreeing_distance, audit_threshold;
    const char *const *caught;              /* n_caught node ids caught by audits (borrowed) */
    int n_caught;
    const uint32_t (*unverified)[2];        /* n_unverified half-open layer ranges with one host only */
    int n_unverified;
} sw_client_swarm_t;

typedef void (sw_client_swarm_fn)(const sw_client_swarm_t *swarm, void *user);

/*  Asks the gateway for its view of the swarm and calls on_swarm once with
 *  it (at most 256 stages, 256 sessions, 64 gaps are passed on).
 *  Returns 0, or -1 with *code (may be NULL) and a reason in err. */
int sw_client_swarm(sw_client_t *self, sw_client_swarm_fn *on_swarm, void *user, int timeout_ms, int *code,
                    char *err, size_t errlen);

#endif
