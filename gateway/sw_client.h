/*  sw_client.h: client library for the gateway's RPC (docs/protocol.md,
 *  "Gateway RPC"): generate with streamed tokens, list models, swarm status.
 *
 *  One DEALER socket to the gateway's RPC endpoint. Calls are synchronous and
 *  bounded by a timeout; while a generation streams, the callback gets each
 *  chunk of text as it arrives.
 *
 *  Thread safety: one thread per client.
 */
#ifndef SW_CLIENT_H
#define SW_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sw_client_t sw_client_t;

typedef struct {
    const char *prompt;          /* UTF-8 */
    uint32_t max_tokens;         /* 1..65536 */
    float temperature;           /* <= 0: greedy */
    int32_t top_k;               /* <= 0: off */
    float top_p;                 /* 0 or >= 1: off */
    float min_p;                 /* <= 0: off */
    float repeat_penalty;        /* 0 or 1: off */
    uint64_t seed;
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
} sw_client_summary_t;

/*  Called for every streamed chunk: text bytes (not NUL-terminated; may split
 *  a UTF-8 character), the token id, and the caller's pointer. */
typedef void (sw_client_token_fn)(const char *text, size_t len, uint32_t token_id, void *user);

/*  Connects (asynchronously; errors show at the first call). Returns NULL
 *  only on a bad endpoint or resource failure. Caller destroys result. */
sw_client_t *sw_client_new(const char *endpoint, char *err, size_t errlen);
void sw_client_destroy(sw_client_t **self_p);

/*  Generates; streams chunks to on_token (may be NULL) and fills summary.
 *  timeout_ms bounds the wait for each message from the gateway.
 *  Returns 0, or -1 with the gateway's error ("NO_ROUTE: no live stages for
 *  layers 2-3") or a time-out in err. */
int sw_client_generate(sw_client_t *self, const sw_client_request_t *req, sw_client_token_fn *on_token, void *user,
                       sw_client_summary_t *summary, int timeout_ms, char *err, size_t errlen);

/*  The gateway's model: id, whether every layer has a live stage, and the
 *  gaps as text ("2-3"). Returns 0 or -1. */
int sw_client_list_models(sw_client_t *self, char *model_id, size_t id_len, bool *servable, char *gaps,
                          size_t gaps_len, int timeout_ms, char *err, size_t errlen);

/*  Number of live stages the gateway sees and its active sessions.
 *  Returns 0 or -1. */
int sw_client_swarm_status(sw_client_t *self, int *n_stages, int *n_sessions, int timeout_ms, char *err,
                           size_t errlen);

/*  Calls on_stage for every live stage the gateway sees: node id, region,
 *  layers [begin, end), round trip to its broker in ms. Returns 0 or -1. */
typedef void (sw_client_stage_fn)(const char *node_id, const char *region, uint32_t begin, uint32_t end,
                                  float rtt_ms, void *user);
int sw_client_swarm_stages(sw_client_t *self, sw_client_stage_fn *on_stage, void *user, int timeout_ms, char *err,
                           size_t errlen);

#endif
