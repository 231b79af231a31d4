/*  sw_http.h: the gateway's OpenAI-compatible HTTP API.
 *
 *  Served by libmicrohttpd (one thread per connection) with JSON by jansson.
 *  Each request is turned into a call of the gateway's own RPC endpoint
 *  (gateway/sw_client), so the HTTP threads never touch the gateway's event
 *  loop. Endpoints (shapes of the OpenAI API reference):
 *    GET  /healthz               "ok"
 *    GET  /v1/models             the model, with "servable" and gaps
 *    POST /v1/completions        prompt -> text; "stream": true gives
 *                                server-sent events ending "data: [DONE]"
 *    POST /v1/chat/completions   messages -> text in the model's chat format
 *                                (core/sw_chat.h: recognized from the GGUF's
 *                                tokenizer.chat_template, else a default)
 *    GET  /api/swarm             the swarm as JSON for the dashboard: stages
 *                                with layers, load and latency, gaps,
 *                                counters and recent generations
 *                                (docs/protocol.md, "Dashboard JSON")
 *    GET  /metrics               Prometheus text format
 *    GET  /, /assets/...         the dashboard and chat page (static files
 *                                from web_dir, built from web/ by Vite)
 *  Errors use OpenAI's shape {"error": {"message", "type", "code"}} with the
 *  matching status: 400 bad JSON or fields, 404, 405, 413 body too large,
 *  429 rate limited (with Retry-After), 503 too many concurrent requests or
 *  no route, 504 time-out.
 *
 *  Fair use, per client IP: a token bucket on requests (rate_rps, burst
 *  2 x rate) and one on generated tokens (token_rate per second, burst 60 s
 *  worth and at least max_tokens; a generation may overdraw it, and the
 *  address then waits until it is positive again); a cap on concurrent
 *  generations. Over a limit: 429 with Retry-After in seconds.
 *
 *  Thread safety: the server runs its own threads; new/destroy from one
 *  thread.
 */
#ifndef SW_HTTP_H
#define SW_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *addr;        /* "127.0.0.1:8080" or ":8080" (all interfaces) */
    const char *rpc;         /* the gateway's RPC endpoint */
    const char *model_id;    /* reported by /v1/models and in responses */
    size_t max_body;         /* bytes, <= 0: 1 MiB */
    uint32_t max_tokens;     /* cap on max_tokens, 0: 2048 */
    int max_concurrent;      /* generations at once, <= 0: 16 */
    double rate_rps;         /* requests per second per client IP, <= 0: 5 */
    int timeout_ms;          /* per message from the gateway, <= 0: 60000 */
    double token_rate;       /* generated tokens per second per client IP, <= 0: 50 */
    const char *web_dir;     /* folder of the built dashboard (index.html, assets/), NULL: none */
    int chat_format;         /* sw_chat_format_t of the model (sw_chat_detect of its template) */
} sw_http_config_t;

typedef struct sw_http_t sw_http_t;

/*  Starts serving. Returns NULL with a reason (bad address, port in use). */
sw_http_t *sw_http_new(const sw_http_config_t *cfg, char *err, size_t errlen);
void sw_http_destroy(sw_http_t **self_p);
/*  The port actually bound (for ":0"). */
int sw_http_port(const sw_http_t *self);

#endif
