/*  sw_http_internal.h: what the files of the HTTP front share (sw_http.c:
 *  the server, routing, admission, statuses; sw_http_generate.c: a
 *  generation). Not an interface for anything else; see sw_http.h.
 *
 *  Thread safety: the fields of sw_http_t marked "under mu" are read and
 *  written with mu held; the functions below are called from the server's
 *  connection threads and are reentrant.
 */
#ifndef SW_HTTP_INTERNAL_H
#define SW_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "sw_fairuse.h"
#include "sw_http.h"
#include "sw_http_metrics.h"
#include "sw_http_static.h"

/* Fair-use meters of each client address (sw_fairuse). */
enum { SW__HTTP_METER_REQ, SW__HTTP_METER_GEN, SW__HTTP_METER_READ, SW__HTTP_N_METERS };

#define SW__HTTP_STOP_CHECK_MS 100 /* how often a waiting call asks whether its client left or the server stops */

struct sw_http_t {
    sw_http_config_t cfg;          /* with the defaults filled in */
    char rpc[256], model_id[129];
    char web_dir[SW_HTTP_STATIC_MAX_DIR + 1]; /* "" when there is no dashboard */
    struct MHD_Daemon *d;
    int port;
    int keepalive_ms;              /* a stream with no token for this long gets an SSE comment (< the idle time-out) */
    atomic_bool stopping;          /* sw_http_destroy began: every waiting call ends */
    pthread_mutex_t mu;
    /* under mu: */
    sw_fairuse_t *fair;            /* per-address meters and generations in progress */
    sw_fairuse_t *fair_keys;       /* the same per key, for requests with a valid API token */
    sw_http_counters_t n;          /* counters for /metrics and /api/swarm; n.active: generations in progress */
    /* the swarm snapshot shared by /api/swarm and /metrics, under mu */
    char *snap_json;               /* the swarm part of /api/swarm, JSON text */
    char *snap_metrics;            /* the swarm part of /metrics, Prometheus text */
    double snap_at;                /* when it was made, s (monotonic); 0: never */
    double snap_failed_at;         /* when the last refresh failed, s */
    int snap_code;                 /* its result code */
    bool snap_busy;                /* a thread is asking the gateway; the others wait on snap_cv */
    pthread_cond_t snap_cv;
    char admin_token[257];         /* "" when there are no admin endpoints */
    double admin_log_at;           /* under mu: last log line about a refused admin request, s */
    uint64_t admin_log_quiet;      /* under mu: refusals not logged since */
};

/* A request as it arrives (one per connection's request, freed when it completes). */
typedef struct {
    char *body;               /* len bytes and a NUL, or NULL */
    size_t len;               /* bytes, <= cfg.max_body */
    bool too_big;             /* the body passed cfg.max_body (answered 413) */
    bool oom;                 /* a piece of the body could not be stored (answered 500) */
    char ip[64];              /* the client's address as text */
    sw_fairuse_addr_t addr;   /* the same, as the fair-use key */
    bool keyed;               /* a valid API token: metered in fair_keys under meter_key */
    sw_fairuse_addr_t meter_key; /* the fair-use key: addr, or the token's node key */
    double scale;             /* every fair-use cost is multiplied by this: 1, or 1 / boost when keyed */
    char key_id[65];          /* the token's node id ("" when anonymous) */
} sw__http_req_t;

/*  The fair-use table of rq: per key when it carries a valid API token, else per address. */
static inline sw_fairuse_t *sw__http_fair(sw_http_t *h, const sw__http_req_t *rq)
{
    return rq->keyed ? h->fair_keys : h->fair;
}

/*  Monotonic clock, seconds. */
double sw__http_now(void);

/*  Queues a response of text (NUL-terminated, taken: freed by MHD; NULL:
 *  out of memory, MHD_NO closes the connection) with Content-Type type and
 *  one optional extra header (name and value, or NULL). */
enum MHD_Result sw__http_send_with(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                                   const char *header, const char *value);

/*  sw__http_send_with with an optional Retry-After (seconds, text). */
enum MHD_Result sw__http_send(struct MHD_Connection *c, unsigned status, const char *type, char *text,
                              const char *retry_after);

/*  An error in OpenAI's shape with the given status and type, "code": null. */
enum MHD_Result sw__http_error(struct MHD_Connection *c, unsigned status, const char *type, const char *msg,
                               const char *retry_after);

/*  The same with one extra header (name and value): "Connection: close",
 *  "WWW-Authenticate: ...". */
enum MHD_Result sw__http_error_with(struct MHD_Connection *c, unsigned status, const char *type, const char *msg,
                                    const char *header, const char *value);

/*  Answers a failed gateway call: status, type, "code" and Retry-After from
 *  the result code (sw_client.h) through sw_http.c's one table. */
enum MHD_Result sw__http_call_error(struct MHD_Connection *c, int code, const char *msg);

/*  The error body of a failed gateway call (type and "code" from the same
 *  table), for an SSE error event. Caller frees; NULL when out of memory. */
char *sw__http_call_error_json(int code, const char *msg);

/*  POST /v1/completions (chat false) or /v1/chat/completions (chat true)
 *  of an admitted request rq (its body complete): checks the body, takes
 *  the concurrency caps, runs the generation and answers (sw_http_generate.c). */
enum MHD_Result sw__http_generate(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, bool chat);

/*  The API token of a request of the API (sw_http_credits.c): none, or
 *  not a token's format: true, anonymous. A valid one: true, rq keyed (its
 *  node id, fair-use key and scale set). An unknown or expired one: false
 *  with the refusal queued in *res (401, or 429 when the address is over
 *  its request limit, which the refusal is charged to). */
bool sw__http_bearer(sw_http_t *h, struct MHD_Connection *c, sw__http_req_t *rq, enum MHD_Result *res);

/*  GET /api/credits (sw_http_credits.c): the leaderboard as JSON. */
enum MHD_Result sw__http_credits(sw_http_t *h, struct MHD_Connection *c);

/*  Takes one request from rq's meters (per key or per address) as
 *  sw_http.c's admission does: kind 0 a request, 1 a generation, 2 a read.
 *  Returns true when it may go on, else queues the refusal in *res. */
bool sw__http_admit(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, int kind, enum MHD_Result *res);

/*  A request under /admin/ (its body complete; the server has an admin
 *  token): checks the token (401 and a fair-use charge when it is missing or
 *  wrong), then serves it (sw_http_admin.c). */
enum MHD_Result sw__http_admin(sw_http_t *h, struct MHD_Connection *c, const sw__http_req_t *rq, const char *url,
                               const char *method);

#endif
