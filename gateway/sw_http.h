/*  sw_http.h: the gateway's OpenAI-compatible HTTP API.
 *
 *  Served by libmicrohttpd (one thread per connection) with JSON by jansson.
 *  Each request is turned into a call of the gateway's own RPC endpoint
 *  (gateway/sw_client), so the HTTP threads never touch the gateway's event
 *  loop. Endpoints (shapes of the OpenAI API reference):
 *    GET  /healthz               "ok"
 *    GET  /v1/models             the model, with "servable" and gaps
 *    POST /v1/completions        prompt -> text; "stream": true gives
 *                                server-sent events ending "data: [DONE]";
 *                                the sampler's seed comes back as "seed"
 *                                (streams: in the final chunk)
 *    POST /v1/chat/completions   messages -> text in the model's chat format
 *                                (core/sw_chat.h: recognized from the GGUF's
 *                                tokenizer.chat_template, else a default)
 *    GET  /api/swarm             the swarm as JSON for the dashboard: stages
 *                                with layers, load and latency, gaps,
 *                                counters and recent generations
 *                                (docs/protocol.md, "Dashboard JSON")
 *    GET  /api/credits           the contributors' leaderboard: reputation
 *                                and credits per key, by granted credit
 *                                (docs/protocol.md, "Credits JSON"; counts
 *                                as a read like /api/swarm)
 *    GET  /metrics               Prometheus text format
 *    GET  /models/manifest.json, /models/FILE.gguf   the published model
 *                                for volunteers, with byte ranges (only with
 *                                models; sw_http_models.h)
 *    GET  /, /assets/...         the dashboard and chat page (static files
 *                                from web_dir, built from web/ by Vite)
 *    GET  /admin/nodes, POST /admin/{ban,unban,drain,undrain},
 *    GET and POST /admin/limits  the operator's endpoints (sw_http_admin.c,
 *                                docs/protocol.md "Admin endpoints"), only
 *                                with an admin token, and each request must
 *                                carry it: "Authorization: Bearer TOKEN"
 *                                (missing or wrong: 401, and the attempt
 *                                costs the address 5 requests of its fair
 *                                use, so guessing is slow)
 *  HTTPS: with tls_cert_pem and tls_key_pem the one listener speaks TLS
 *  only (libmicrohttpd over GnuTLS); a plain HTTP request to it fails its
 *  handshake and is closed.
 *  Errors use OpenAI's shape {"error": {"message", "type", "code"}} with the
 *  matching status: 400 bad JSON or fields, 404, 405, 413 body too large,
 *  429 rate limited (with Retry-After), 503 too many concurrent requests.
 *  A failed call of the gateway gets its status from the call's result code
 *  (sw_client.h) through one table: BAD_REQUEST 400, OVERLOADED and NO_ROUTE
 *  503 with Retry-After, UNREACHABLE 502, a time-out 504, INTERNAL 500; the
 *  "code" field names it ("overloaded"). A stream sends no header before its
 *  first text, so an early error keeps its status; an error after text is an
 *  SSE event {"error": {..., "code"}} followed by "data: [DONE]".
 *
 *  Fair use, per client address (gateway/sw_fairuse; every address has its
 *  own buckets in a bounded table): a token bucket on requests (rate_rps,
 *  burst 2 x rate); one on generated tokens (token_rate per second, burst
 *  60 s worth and at least max_tokens; a generation may overdraw it, and the
 *  address then waits until it is positive again); one on reads of /metrics
 *  and /api/swarm (read_rate, burst 2 x rate); a cap on the address's
 *  generations in progress, and one on all. Over a limit: 429 with
 *  Retry-After in seconds. /metrics and /api/swarm share one snapshot of the
 *  swarm, asked of the gateway at most every 0.5 s whatever the traffic.
 *
 *  API tokens (--http-credit-boost; sw_api_token.h): a request of the API
 *  (/v1/, /api/, /metrics) whose "Authorization: Bearer" value is a swisd
 *  token's format (64 lowercase hex digits) is checked: a valid token is
 *  metered per key, in a table of its own with the same meters, each cost
 *  scaled by 1 / (1 + F x min(1, granted / credit_full)) (a bucket of rate r
 *  and burst b charged c / m per request serves m times the requests); an
 *  unknown or expired one is charged one request to the address (429 when
 *  the address is over its limit) and answered 401 with an
 *  authentication_error. Any other Bearer value (an OpenAI SDK's placeholder
 *  key) is ignored: the request is anonymous, per address. The admin
 *  endpoints take only the admin token.
 *
 *  Hostile clients: at most max_conn_per_addr connections per address (more
 *  are closed at once) and max_conn in all; a connection idle for
 *  idle_timeout_s (no byte either way) is closed, and a stream that pauses
 *  gets an SSE comment line well before that; a request with two
 *  Content-Length headers, or Content-Length and Transfer-Encoding, is
 *  answered 400 and its connection closed (no request smuggling); a client
 *  that disconnects (or stops reading a stream) cancels its generation in
 *  the gateway within a step, which releases the stages' KV caches.
 *
 *  Out of memory never shortens an answer: a body, a completion or a stream
 *  that cannot be stored or built fails the request (500, or an SSE error
 *  event with code "local" once text was sent).
 *
 *  One concern per file: gateway/sw_openai (request bodies checked, answers
 *  built), sw_http_metrics (/metrics), sw_http_swarm (the /api/swarm JSON),
 *  sw_http_static (the dashboard's files), sw_fairuse (the per-address
 *  limits), sw_http_generate.c (a generation, answered whole or streamed),
 *  sw_http_admin.c (the /admin/ endpoints; the token is sw_admin_token, the
 *  bans and drains sw_bans; HTTPS files are read by sw_tls);
 *  sw_http.c itself holds the server, routing, admission, the shared swarm
 *  snapshot and the one table of statuses (sw_http_internal.h: what the two
 *  share).
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
    const struct sw_http_models_t *models; /* the published model served under /models/ (sw_http_models.h);
                                              borrowed, outlives the server; NULL: /models/ is not served */
    int chat_format;         /* sw_chat_format_t of the model (sw_chat_detect of its template) */
    int max_concurrent_per_addr; /* generations at once per client address, <= 0: 4 */
    double read_rate;        /* requests of /metrics and /api/swarm per second per address, <= 0: 10 */
    int max_conn;            /* connections at once, <= 0: 256 */
    int max_conn_per_addr;   /* connections at once per client address, <= 0: 16 */
    int idle_timeout_s;      /* seconds a connection may stay without a byte either way, <= 0: 15 */
    size_t max_addrs;        /* client addresses the fair-use table tracks, 0: 65536 */
    const char *tls_cert_pem; /* HTTPS: PEM certificate chain (sw_tls_load); NULL: plain HTTP. Borrowed until
                                 sw_http_new returns (libmicrohttpd's GnuTLS copies it) */
    const char *tls_key_pem;  /* HTTPS: its PEM private key; borrowed likewise */
    const char *admin_token;  /* the /admin/ endpoints' bearer token (sw_admin_token); NULL: no admin endpoints
                                 (they answer 404). Copied */
    struct sw_bans_t *bans;   /* bans and drains the admin endpoints change; borrowed, must outlive the server;
                                 NULL: /admin/nodes and the ban and drain endpoints answer 404 */
    struct sw_reputation_t *reputation; /* per-key reputation and credits (borrowed, outlives the server): GET
                                           /api/credits, and the boost of a keyed request; NULL: /api/credits
                                           answers 404 */
    struct sw_api_token_t *tokens; /* API tokens (borrowed, outlives the server); NULL: a Bearer token on the
                                      API is ignored (every request is metered per address) */
    double credit_boost;      /* F of --http-credit-boost: a keyed request's rates are the base x (1 + F x
                                 min(1, granted / credit_full)); <= 0: no boost (keyed requests are still
                                 metered per key at the base rates) */
    double credit_full;       /* granted credit units that earn the whole boost, <= 0: 1000 */
    struct sw_ban_outbox_t *ban_outbox; /* where /admin/ban and /admin/unban queue the BanNotice for the
                                           brokers (sw_ban_outbox.h; the gateway's, sw_gateway_ban_outbox);
                                           borrowed, must outlive the server; NULL: the bans stay local */
    const struct _sw_identity_t *identity; /* the gateway's key (borrowed, outlives the server): the HTTP
                                              front dials the RPC as it (a gateway with --rpc-allow lets its
                                              own key in); NULL: a throw-away key, or plain when insecure */
} sw_http_config_t;

typedef struct sw_http_t sw_http_t;

/*  Starts serving. Returns NULL with a reason (bad address, port in use).
 *  The process must ignore SIGPIPE (a stream's pipe whose reader is gone). */
sw_http_t *sw_http_new(const sw_http_config_t *cfg, char *err, size_t errlen);
/*  Stops: every generation in progress is cancelled in the gateway, every
 *  connection closed; returns within about S_STOP_CHECK_MS (100 ms) plus the
 *  time the connections' threads take to notice their closed sockets. */
void sw_http_destroy(sw_http_t **self_p);
/*  The port actually bound (for ":0"). */
int sw_http_port(const sw_http_t *self);

#endif
