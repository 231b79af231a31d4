/*  sw_stage.h: a stage: serves forward requests for a contiguous range of a
 *  model's blocks, keeping a KV cache per session.
 *
 *  The stage connects outbound to its broker (sw_broker_client), registers
 *  its layer range (topic model/<id>/layers/<a>-<b>), and serves
 *  ForwardRequests: decode the activation, run its blocks (several sessions
 *  in one sw_model_forward call when they arrive together), encode with the
 *  next hop's codec and send the request on, or the ForwardReply to the
 *  gateway that originated it. Errors go to the origin with the session and
 *  request ids; the stage keeps serving. See docs/protocol.md.
 *
 *  Thread safety: one thread runs the stage (sw_stage_run); the compute pool
 *  inside uses `threads` threads.
 */
#ifndef SW_STAGE_H
#define SW_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sw_identity.h"

/*  TEST ONLY: one request's rows as the test hook sees them (the lying stage
 *  of tests/liar_stage.c; docs/security.md). Borrowed for the call. */
typedef struct {
    const char *session_id;   /* the gateway's session id ("probe-<hex>" for admission probes) */
    uint32_t pos;             /* position of the first row */
    int32_t n_tok, n_embd;    /* rows, row length */
    int32_t layer_a, layer_b; /* the blocks [a, b) that ran (the route's range for this stage) */
    const float *in;          /* (n_tok, n_embd) f32 row-major: the rows received */
    float *out;               /* (n_tok, n_embd) f32 row-major: the rows computed; the hook may overwrite them */
} sw_stage_test_rows_t;

typedef void (*sw_stage_test_hook_fn)(void *arg, const sw_stage_test_rows_t *rows);

typedef struct {
    const char *broker;       /* broker endpoint */
    const char *model_path;   /* GGUF file */
    int32_t layer_begin;      /* first block; -1 = choose automatically ("auto") */
    int32_t layer_end;        /* one past the last block */
    bool rebalance;           /* with a given range too: move to cover layers nobody holds, as --layers auto
                                 does (the model file must hold every layer: a whole GGUF) */
    const char *region;       /* NULL: "default" */
    const char *display_name; /* NULL: none; shown beside the id (sw_broker_client.h) */
    const char *id;           /* NULL: random */
    const sw_identity_t *identity; /* the node's key (borrowed for its life): CURVE link, id = fingerprint; NULL: insecure */
    int threads;              /* compute threads, >= 1 */
    size_t kv_mem_bytes;      /* cap on all KV caches */
    size_t mem_bytes;         /* memory offered for weights (auto sizing); 0 = physical memory */
    int max_sessions;         /* sessions held at once */
    int idle_ms;              /* a session idle this long is dropped */
    int heartbeat_ms;         /* <= 0: the broker's */
    int max_batch_tokens;     /* tokens computed in one batch, <= 0: 512 */
    const char *codec;        /* codec wanted for activations sent to this stage (its inbound
                                 link), e.g. "q8_0+zstd3"; NULL: the sender's choice */
    uint32_t upload_kbps;     /* cap on the activations it sends (ForwardRequests on, ForwardReplies), in
                                 kilobits/s, counted with their framing on the link (sw_stage_bytes_sent);
                                 a token bucket (sw_rate.h): replies are delayed, never dropped; 0 = none */
    int drain_ms;             /* on *stop (sw_stage_run): announce Load.draining and keep serving until no
                                 session is left or this many ms passed; <= 0: stop at once */
    bool audit;               /* an operator's audit stage: announced (Capabilities.audit), gateways give it
                                 audit work only (docs/security.md, "Verification") */
    /* TEST ONLY (tests/liar_stage.c): release daemons leave both NULL. When set, the stage keeps a copy
       of each request's input rows and calls test_hook(test_hook_arg, rows) on the stage's thread after
       the request's blocks ran, before the output rows are encoded (or committed to) and sent on */
    sw_stage_test_hook_fn test_hook;
    void *test_hook_arg;
} sw_stage_config_t;

typedef struct sw_stage_t sw_stage_t;

/*  Loads the layers (choosing them first when layer_begin < 0), measures the
 *  per-layer speed and registers. Returns NULL with a reason. */
sw_stage_t *sw_stage_new(const sw_stage_config_t *cfg, char *err, size_t errlen);
void sw_stage_destroy(sw_stage_t **self_p);

/*  Serves until *stop is set, then drains when cfg.drain_ms > 0: announces
 *  Load.draining at once (a heartbeat; gateways plan no new session through
 *  it and move the ones they run through it elsewhere, docs/protocol.md),
 *  keeps serving, and returns once every session was released (the
 *  gateways' KvRelease after moving them, or idle expiry) and nothing is
 *  queued, or after drain_ms. czmq's zsys_interrupted (a second signal,
 *  sw_daemon.h) ends it at once. Returns 0. */
int sw_stage_run(sw_stage_t *self, volatile int *stop);

/*  Bytes of activation messages sent (ForwardRequests on, ForwardReplies)
 *  since the start, as counted by the upload cap: header and body frames
 *  with their ZMTP/CURVE framing (heartbeats and errors are not counted). */
uint64_t sw_stage_bytes_sent(const sw_stage_t *self);

const char *sw_stage_id(const sw_stage_t *self);
/*  The blocks served, inclusive, e.g. "2-3" (borrowed). */
const char *sw_stage_layers(const sw_stage_t *self);

#endif
