/*  sw_broker.c: registry, directory, relay and tiers (see sw_broker.h). */
#include "sw_broker.h"

#include <math.h>

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "sw_broker_auth.h"
#include "sw_broker_bans.h"
#include "sw_broker_client.h"
#include "sw_endpoint.h"
#include "sw_common.h"
#include "sw_wire.h"

#define S_MAX_NODES 10000        /* default registry bound */
#define S_HWM 10000              /* default ROUTER high-water marks, messages */
#define S_BATCH 1000             /* messages handled per socket per step */
#define S_MAX_ROUTES 200000      /* entries in the below-routes table */
#define S_MAX_LEARNED 4096       /* learned routes one child broker may hold */
#define S_LEARNED_TTL_MS 60000   /* learned routes unused this long are dropped */
#define S_KEY_MAX (2 * 255 + 1)  /* hex of a ZeroMQ routing id (<= 255 bytes) */
#define S_MAX_OWN_BODY (64u << 10)    /* bytes of a body addressed to the broker (Hello, Heartbeat, query...) */
#define S_MAX_REPORT_BODY (8u << 20)  /* bytes of a DirectoryReport body (4096 stages + 4096 ids) */
#define S_PROBE_MS 100           /* liveness probes of one id's holder at most this often */
#define S_OVERLOADED_EVERY_MS 1000 /* OVERLOADED errors to one sender at most this often */
#define S_REQ_PER_S 200          /* directory queries/reports one node may make per second (burst the same) */
#define S_SUMMARY_MS 5000        /* period of the drop/refusal summary line (when anything happened) */

/*  Log lines that a peer can make repeat: each goes through its own gate
 *  (sw_log_limited), at most one line per second, or S_LOG_REGISTRY's burst. */
enum {
    S_LOG_BAD_FRAME,    /* malformed frame or body */
    S_LOG_HELLO,        /* Hello refused */
    S_LOG_CLAIM,        /* a child broker claimed an id held elsewhere */
    S_LOG_FULL,         /* a peer's queue is full: frames dropped */
    S_LOG_NOT_SENT,     /* a reply of the broker's own not sent */
    S_LOG_REGISTRY,     /* registered / left / expired */
    S_LOG_LIMITED,      /* request rate limit hit */
    S_LOG_PARENT,       /* errors and oddities from the parent side */
    S_LOG_DEBUG,        /* per-frame debug lines */
    S_LOG_BAN,          /* a BanNotice refused */
    S_LOG_N
};

/* "%s%s%s" arguments: ` "name"` after a node id when it has a display name
 * (validated printable ASCII, sw_wire_display_name_ok), else nothing */
#define S_NAME_FMT(name) ((name) && (name)[0] ? " \"" : ""), ((name) ? (name) : ""), ((name) && (name)[0] ? "\"" : "")

/*  One registered peer of the ROUTER. */
typedef struct {
    char id[SW_WIRE_MAX_ID + 1];          /* node id from its Hello */
    char key[S_KEY_MAX];                  /* hex routing id (by_key index) */
    zframe_t *identity;                   /* routing id frame, owned */
    Swisd__V1__Role role;                 /* from Hello */
    char region[SW_WIRE_MAX_NAME + 1];    /* from Hello ("" -> the broker's) */
    Swisd__V1__Body *hello;               /* its last Hello (owned unpacked body) */
    Swisd__V1__Load load;                 /* from the last Heartbeat */
    float rtt_ms;                         /* the node's round trip to us, from its Heartbeat */
    int64_t last_ms;                      /* last valid frame heard, monotonic ms */
    int64_t since_ms;                     /* when it registered, monotonic ms */
    Swisd__V1__Body *report;              /* child brokers: last DirectoryReport (owned) */
    int64_t report_ms;                    /* when it arrived */
    uint32_t n_learned;                   /* child brokers: learned routes below it (recounted every second) */
    int64_t probe_ms;                     /* last liveness probe of its connection (0: none) */
    int64_t full_since_ms;                /* first failed send (queue full) since the last success; 0: not full */
    uint64_t dropped;                     /* frames to it dropped because its queue was full */
    uint64_t dropped_told;                /* `dropped` at the last summary line */
    int64_t overloaded_ms;                /* last OVERLOADED error sent to it (0: none) */
    double tokens;                        /* request budget (queries, reports), S_REQ_PER_S per second */
    int64_t tokens_ms;                    /* when tokens was last refilled */
    bool has_key;                         /* secure broker: the CURVE key of its connection is known */
    uint8_t pubkey[32];                   /* that key */
} s_node_t;

/*  A node that lives below a child broker. */
typedef struct {
    char child[SW_WIRE_MAX_ID + 1];       /* node id of the child broker */
    int64_t seen_ms;                      /* last report or frame that confirmed it */
    bool learned;                         /* from a frame's src (else from a report) */
} s_route_t;

struct sw_broker_t {
    sw_broker_config_t cfg;               /* resolved defaults; strings not kept */
    char id[SW_WIRE_MAX_ID + 1];
    char region[SW_WIRE_MAX_NAME + 1];
    char endpoint[320];                   /* resolved bound endpoint, with "#KEY" when secure */
    sw_broker_auth_t *auth;               /* ZAP handler and key lists; NULL: insecure */
    sw_broker_bans_t *bans;               /* bans gateways sent (sw_broker_bans.h) */
    int64_t next_bans_ms;                 /* next look for ended bans */
    uint64_t keys_refused;                /* Hellos refused for their key (no key, denied, id, role) */
    zsock_t *router;
    zhashx_t *by_id;                      /* node id -> s_node_t (owns) */
    zhashx_t *by_key;                     /* hex routing id -> s_node_t (borrowed) */
    zhashx_t *below;                      /* node id -> s_route_t (owns) */
    sw_broker_client_t *parent;           /* link to the parent; NULL at the root */
    Swisd__V1__Body *above;               /* parent's last DirectoryReply (owned) */
    zhashx_t *above_ids;                  /* stage id in `above` -> its region (borrowed from above) */
    int64_t above_ms;
    uint64_t parent_regs;                 /* parent registrations seen (report at once on change) */
    int64_t parent_overloaded_ms;         /* last OVERLOADED error sent up through the parent */
    int64_t next_expiry_ms, next_report_ms, next_gc_ms, next_summary_ms;
    sw_broker_stats_t stats;              /* totals since start */
    sw_broker_stats_t told;               /* totals at the last summary line */
    sw_log_gate_t gates[S_LOG_N];         /* per kind of repeatable log line */
};

static int64_t s_now_ms(void)
{
    return (int64_t) (sw_now_ns() / 1000000);
}

static const char *s_role_name(Swisd__V1__Role r)
{
    switch (r) {
    case SWISD__V1__ROLE__ROLE_STAGE: return "stage";
    case SWISD__V1__ROLE__ROLE_GATEWAY: return "gateway";
    case SWISD__V1__ROLE__ROLE_BROKER: return "broker";
    case SWISD__V1__ROLE__ROLE_CLIENT: return "client";
    default: return "node";
    }
}

static void s_key(const zframe_t *identity, char *key)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *d = zframe_data((zframe_t *) identity);
    size_t n = zframe_size((zframe_t *) identity);
    if (n > 255)
        n = 255;
    for (size_t i = 0; i < n; i++) {
        key[2 * i] = hex[d[i] >> 4];
        key[2 * i + 1] = hex[d[i] & 15];
    }
    key[2 * n] = '\0';
}

static void s_node_free(void **item)
{
    s_node_t *n = *item;
    if (!n)
        return;
    zframe_destroy(&n->identity);
    if (n->hello)
        swisd__v1__body__free_unpacked(n->hello, NULL);
    if (n->report)
        swisd__v1__body__free_unpacked(n->report, NULL);
    free(n);
    *item = NULL;
}

static void s_route_free(void **item)
{
    free(*item);
    *item = NULL;
}

/* ---- construction ---------------------------------------------------------- */

sw_broker_t *sw_broker_new(const sw_broker_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->bind || !cfg->bind[0]) {
        sw_err(err, errlen, "no bind endpoint");
        return NULL;
    }
    if (cfg->identity && cfg->id) {
        sw_err(err, errlen, "a secure broker's id is its key's fingerprint: no chosen id");
        return NULL;
    }
    if (cfg->id && (!cfg->id[0] || strlen(cfg->id) > SW_WIRE_MAX_ID)) {
        sw_err(err, errlen, "broker id must be 1..%d bytes", SW_WIRE_MAX_ID);
        return NULL;
    }
    if (cfg->region && strlen(cfg->region) > SW_WIRE_MAX_NAME) {
        sw_err(err, errlen, "region longer than %d bytes", SW_WIRE_MAX_NAME);
        return NULL;
    }
    sw_broker_t *self = calloc(1, sizeof *self);
    if (!self) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    if (self->cfg.heartbeat_ms <= 0)
        self->cfg.heartbeat_ms = SW_BROKER_HEARTBEAT_MS;
    if (self->cfg.expiry_ms <= 0)
        self->cfg.expiry_ms = SW_BROKER_EXPIRY_MS;
    if (self->cfg.max_nodes <= 0)
        self->cfg.max_nodes = S_MAX_NODES;
    if (self->cfg.hwm <= 0)
        self->cfg.hwm = S_HWM;
    self->cfg.bind = self->cfg.parent = self->cfg.region = self->cfg.id = self->cfg.display_name = NULL;
    self->cfg.allow_dir = self->cfg.deny_file = self->cfg.gateways_dir = self->cfg.brokers_dir = NULL;
    self->cfg.ban_state = NULL;
    if (cfg->identity)
        snprintf(self->id, sizeof self->id, "%s", sw_identity_id(cfg->identity));
    else if (cfg->id)
        snprintf(self->id, sizeof self->id, "%s", cfg->id);
    else
        sw_wire_new_id(self->id, sizeof self->id);
    snprintf(self->region, sizeof self->region, "%s", cfg->region && cfg->region[0] ? cfg->region : "default");

    for (int i = 0; i < S_LOG_N; i++)
        self->gates[i] = SW_LOG_GATE(1000, i == S_LOG_REGISTRY ? 20 : 1);
    self->by_id = zhashx_new();
    self->by_key = zhashx_new();
    self->below = zhashx_new();
    self->above_ids = zhashx_new();
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->by_id || !self->by_key || !self->below || !self->above_ids || !self->router) {
        sw_err(err, errlen, "out of memory or sockets");
        sw_broker_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->by_id, s_node_free);
    zhashx_set_destructor(self->below, s_route_free);
    sw_wire_socket_setup(self->router, 0, self->cfg.hwm);
    zsock_set_sndtimeo(self->router, 0); /* one slow peer never stalls the loop */
    char name[64];
    snprintf(name, sizeof name, "broker %.8s", self->id);
    if (!(self->bans = sw_broker_bans_new(cfg->ban_state, cfg->identity != NULL, (uint64_t) time(NULL), name, err,
                                          errlen))) {
        sw_broker_destroy(&self);
        return NULL;
    }
    if (cfg->identity) {
        sw_broker_auth_config_t ac = {.allow_dir = cfg->allow_dir,
                                      .bans = self->bans,
                                      .deny_file = cfg->deny_file,
                                      .gateways_dir = cfg->gateways_dir,
                                      .brokers_dir = cfg->brokers_dir,
                                      .log_name = name};
        if (!(self->auth = sw_broker_auth_new(&ac, err, errlen))) {
            sw_broker_destroy(&self);
            return NULL;
        }
        /* a CURVE server: every connection authenticates through our ZAP handler */
        zcert_apply(sw_identity_cert(cfg->identity), self->router);
        zsock_set_curve_server(self->router, 1);
        zsock_set_zap_domain(self->router, "swisd");
        if (sw_broker_auth_watch(self->auth, self->router, err, errlen) != 0) {
            sw_broker_destroy(&self);
            return NULL;
        }
    }
    if (zsock_bind(self->router, "%s", cfg->bind) < 0) {
        sw_err(err, errlen, "cannot bind %s: %s", cfg->bind, zmq_strerror(zmq_errno()));
        sw_broker_destroy(&self);
        return NULL;
    }
    char *ep = zsock_last_endpoint(self->router);
    if (cfg->identity)
        snprintf(self->endpoint, sizeof self->endpoint, "%s#%s", ep ? ep : cfg->bind,
                 sw_identity_public_txt(cfg->identity));
    else
        snprintf(self->endpoint, sizeof self->endpoint, "%s", ep ? ep : cfg->bind);
    zstr_free(&ep);
    if (cfg->parent && cfg->parent[0]) {
        sw_broker_client_config_t pc = {.endpoint = cfg->parent,
                                        .identity = cfg->identity,
                                        .role = SWISD__V1__ROLE__ROLE_BROKER,
                                        .node_id = self->id,
                                        .region = self->region,
                                        .display_name = cfg->display_name,
                                        .heartbeat_ms = self->cfg.heartbeat_ms};
        self->parent = sw_broker_client_new(&pc, err, errlen);
        if (!self->parent) {
            sw_broker_destroy(&self);
            return NULL;
        }
        sw_broker_client_set_relay_mode(self->parent, true);
    }
    return self;
}

void sw_broker_destroy(sw_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_broker_t *self = *self_p;
    sw_broker_client_destroy(&self->parent);
    zhashx_destroy(&self->by_key);
    zhashx_destroy(&self->below);
    zhashx_destroy(&self->by_id);
    zhashx_destroy(&self->above_ids);
    if (self->above)
        swisd__v1__body__free_unpacked(self->above, NULL);
    zsock_destroy(&self->router);
    sw_broker_auth_destroy(&self->auth);
    sw_broker_bans_destroy(&self->bans);
    free(self);
    *self_p = NULL;
}

const char *sw_broker_endpoint(const sw_broker_t *self)
{
    return self->endpoint;
}

const char *sw_broker_id(const sw_broker_t *self)
{
    return self->id;
}

size_t sw_broker_node_count(const sw_broker_t *self)
{
    return zhashx_size(self->by_id);
}

void sw_broker_stats(const sw_broker_t *self, sw_broker_stats_t *out)
{
    *out = self->stats;
}

/* ---- sending ----------------------------------------------------------------- */

/*  Books the outcome of a send to `to` (rc 0 or -1 with errno): a success
 *  clears its full mark; EAGAIN counts a dropped frame and marks when its
 *  queue became full (s_expire drops a peer that stays full). */
static void s_sent(sw_broker_t *self, s_node_t *to, int rc)
{
    if (rc == 0) {
        to->full_since_ms = 0;
        return;
    }
    if (errno != EAGAIN)
        return;
    const int e = errno;
    to->dropped++;
    self->stats.dropped_full++;
    if (!to->full_since_ms)
        to->full_since_ms = s_now_ms();
    sw_log_limited(&self->gates[S_LOG_FULL], SW_LOG_WARN,
                   "broker %.8s: queue to %s %s is full; frames to it are dropped (%llu so far)", self->id,
                   s_role_name(to->role), to->id, (unsigned long long) to->dropped);
    errno = e;
}

/*  Moves body into a message {to's routing id, header, body} on the ROUTER.
 *  Returns 0 (then *body is NULL) or -1 with errno (EHOSTUNREACH: peer gone;
 *  EAGAIN: its queue is full, counted by s_sent) and *body still owned by the
 *  caller. */
static int s_relay(sw_broker_t *self, s_node_t *to, const char *src, const char *dst, uint32_t hops,
                   zframe_t **body)
{
    zframe_t *hf = sw_wire_header_frame(src, dst, hops);
    if (!hf) {
        errno = EMSGSIZE;
        return -1;
    }
    if (zframe_send(&to->identity, self->router, ZFRAME_MORE | ZFRAME_REUSE | ZFRAME_DONTWAIT) != 0) {
        int e = errno;
        zframe_destroy(&hf);
        errno = e;
        s_sent(self, to, -1);
        return -1;
    }
    /* once the first part is queued, ZeroMQ accepts the rest of the message */
    if (zframe_send(&hf, self->router, ZFRAME_MORE) != 0 || zframe_send(body, self->router, 0) != 0) {
        int e = errno;
        sw_log_limited(&self->gates[S_LOG_NOT_SENT], SW_LOG_ERROR, "broker %.8s: partial send to %s: %s", self->id,
                       to->id, zmq_strerror(e));
        zframe_destroy(&hf);
        errno = e;
        return -1;
    }
    s_sent(self, to, 0);
    return 0;
}

/*  Sends an Error about a frame back towards its src: through the peer it
 *  came from (from, a ROUTER peer) or through the parent (from == NULL). */
static void s_error_back(sw_broker_t *self, s_node_t *from, const char *src, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void s_error_back(sw_broker_t *self, s_node_t *from, const char *src, int code, const char *fmt, ...)
{
    char text[SW_WIRE_MAX_TEXT + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sw_log_limited(&self->gates[S_LOG_DEBUG], SW_LOG_DEBUG, "broker %.8s: error %s to %s: %s", self->id,
                   sw_wire_error_name(code), src, text);
    if (from)
        sw_wire_send_error(self->router, from->identity, self->id, src, code, NULL, 0, "%s", text);
    else if (self->parent)
        sw_broker_client_send_error(self->parent, src, code, NULL, 0, "%s", text);
}

/*  Error OVERLOADED to src through `from` (or the parent when NULL), at most
 *  once per S_OVERLOADED_EVERY_MS per sender: a flooder learns that it is
 *  dropped without the broker answering every frame. */
static void s_overloaded_back(sw_broker_t *self, s_node_t *from, const char *src, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void s_overloaded_back(sw_broker_t *self, s_node_t *from, const char *src, const char *fmt, ...)
{
    const int64_t now = s_now_ms();
    int64_t *last = from ? &from->overloaded_ms : &self->parent_overloaded_ms;
    if (*last && now - *last < S_OVERLOADED_EVERY_MS)
        return;
    *last = now;
    char text[SW_WIRE_MAX_TEXT + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    self->stats.overloaded_sent++;
    s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "%s (told at most once per %d ms)", text,
                 S_OVERLOADED_EVERY_MS);
}

/*  A body from the broker itself (hops 0) to node `to`. Returns 0 or -1. */
static int s_send_body(sw_broker_t *self, s_node_t *to, const char *dst, const Swisd__V1__Body *body)
{
    int rc = sw_wire_send(self->router, to->identity, self->id, dst, 0, body);
    s_sent(self, to, rc);
    return rc;
}

/* ---- registry ---------------------------------------------------------------- */

/*  Drops every below-route of child (learned ones too when all is true). */
static void s_routes_drop(sw_broker_t *self, const char *child, bool all)
{
    zlist_t *gone = zlist_new();
    if (!gone)
        return;
    for (s_route_t *r = zhashx_first(self->below); r; r = zhashx_next(self->below))
        if (!strcmp(r->child, child) && (all || !r->learned))
            zlist_append(gone, (void *) zhashx_cursor(self->below));
    for (const char *k = zlist_first(gone); k; k = zlist_next(gone))
        zhashx_delete(self->below, k); /* k is the table's key: delete it last */
    zlist_destroy(&gone);
}

static void s_node_remove(sw_broker_t *self, s_node_t *n, const char *why)
{
    if (n->dropped)
        sw_log_limited(&self->gates[S_LOG_REGISTRY], SW_LOG_INFO, "broker %.8s: %s %s %s (%llu frames to it dropped, "
                       "queue full)", self->id, s_role_name(n->role), n->id, why, (unsigned long long) n->dropped);
    else
        sw_log_limited(&self->gates[S_LOG_REGISTRY], SW_LOG_INFO, "broker %.8s: %s %s %s", self->id,
                       s_role_name(n->role), n->id, why);
    if (zhashx_lookup(self->by_key, n->key) == n)
        zhashx_delete(self->by_key, n->key);
    if (n->role == SWISD__V1__ROLE__ROLE_BROKER)
        s_routes_drop(self, n->id, true);
    zhashx_delete(self->by_id, n->id);
}

/*  Whether the connection that holds n is still open. ROUTER_MANDATORY makes
 *  a send to a routing id whose connection closed fail with EHOSTUNREACH, so
 *  the probe is an empty HeartbeatAck (seq 0, echo 0: nodes take it as a
 *  sign of life of the broker and measure nothing from it). At most one probe
 *  per S_PROBE_MS per node; in between the holder counts as alive. A full
 *  queue (EAGAIN) counts as alive: the connection is there. */
static bool s_holder_alive(sw_broker_t *self, s_node_t *n, int64_t now)
{
    if (n->probe_ms && now - n->probe_ms < S_PROBE_MS)
        return true;
    n->probe_ms = now;
    Swisd__V1__HeartbeatAck ack = SWISD__V1__HEARTBEAT_ACK__INIT;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_HEARTBEAT_ACK;
    b.heartbeat_ack = &ack;
    return s_send_body(self, n, n->id, &b) == 0 || errno != EHOSTUNREACH;
}

/*  Whether id belongs to someone other than the child broker `child` (NULL:
 *  a node registering here): this broker, the parent, a node registered
 *  here, a node another registered child broker reported (learned routes,
 *  from frames only, do not hold an id) -- unless the connection of that
 *  node or broker is gone (s_holder_alive): then the id is free (a dead node
 *  is dropped here; a dead child broker keeps its other routes until it
 *  expires; so the nodes of a regional broker that was killed move to its
 *  sibling at once) -- or, for a child's claim, a stage the
 *  parent's directory lists (it lives outside our subtree; once its old
 *  holder lets it go, the parent stops listing it). A node's own Hello is not
 *  checked against the parent's directory: a stage that fails over from a
 *  sibling broker of the region is still listed there for up to an expiry,
 *  and it must not wait for that. Fills why (who holds it) when true. */
static bool s_held_elsewhere(sw_broker_t *self, const char *id, const s_node_t *child, char *why, size_t whylen)
{
    if (!strcmp(id, self->id)) {
        snprintf(why, whylen, "this broker's id");
        return true;
    }
    if (self->parent && !strcmp(id, sw_broker_client_broker_id(self->parent))) {
        snprintf(why, whylen, "the parent broker's id");
        return true;
    }
    const int64_t now = s_now_ms();
    s_node_t *n = zhashx_lookup(self->by_id, id);
    if (n && n != child) {
        if (s_holder_alive(self, n, now)) {
            snprintf(why, whylen, "registered here by a %s", s_role_name(n->role));
            return true;
        }
        s_node_remove(self, n, "lost its connection; dropped");
    }
    const s_route_t *r = zhashx_lookup(self->below, id);
    s_node_t *holder = r && !r->learned && (!child || strcmp(r->child, child->id) != 0)
                           ? zhashx_lookup(self->by_id, r->child)
                           : NULL;
    if (holder && s_holder_alive(self, holder, now)) {
        snprintf(why, whylen, "reported by broker %.16s", holder->id);
        return true;
    } /* a dead child keeps its other routes until it expires, as it always did */
    const char *region = child ? zhashx_lookup(self->above_ids, id) : NULL;
    if (region) {
        snprintf(why, whylen, "a stage of region %.64s outside this broker", region);
        return true;
    }
    return false;
}

/*  Notes that node lives below child (a frame from child carried src node,
 *  already checked by s_held_elsewhere). */
static void s_learn(sw_broker_t *self, const char *node, s_node_t *child, int64_t now)
{
    s_route_t *r = zhashx_lookup(self->below, node);
    if (r) {
        if (r->learned && strcmp(r->child, child->id) != 0)
            snprintf(r->child, sizeof r->child, "%s", child->id);
        if (!strcmp(r->child, child->id))
            r->seen_ms = now;
        return;
    }
    if (zhashx_size(self->below) >= S_MAX_ROUTES || child->n_learned >= S_MAX_LEARNED)
        return; /* still relayed; replies to it go up, or come back UNREACHABLE */
    r = calloc(1, sizeof *r);
    if (!r)
        return;
    snprintf(r->child, sizeof r->child, "%s", child->id);
    r->seen_ms = now;
    r->learned = true;
    zhashx_insert(self->below, node, r);
    child->n_learned++;
}

static void s_routes_from_report(sw_broker_t *self, const s_node_t *child, int64_t now)
{
    s_routes_drop(self, child->id, false);
    const Swisd__V1__DirectoryReport *rep = child->report->directory_report;
    size_t refused = 0;
    const char *example = NULL;
    char why[160], example_why[160] = "";
    for (size_t i = 0; i < rep->n_stages + rep->n_nodes; i++) {
        const char *id = i < rep->n_stages ? rep->stages[i]->node_id : rep->nodes[i - rep->n_stages];
        if (!id || !id[0] || !strcmp(id, child->id) || zhashx_lookup(self->by_id, id))
            continue; /* a local node wins silently (it may just have moved here) */
        if (s_held_elsewhere(self, id, child, why, sizeof why)) {
            if (!refused++) {
                example = id;
                snprintf(example_why, sizeof example_why, "%s", why);
            }
            continue;
        }
        s_route_t *r = zhashx_lookup(self->below, id);
        if (!r) {
            if (zhashx_size(self->below) >= S_MAX_ROUTES)
                break;
            if (!(r = calloc(1, sizeof *r)))
                break;
            zhashx_insert(self->below, id, r);
        }
        snprintf(r->child, sizeof r->child, "%s", child->id);
        r->seen_ms = now;
        r->learned = false;
    }
    if (refused) {
        self->stats.claims_refused += refused;
        sw_log_limited(&self->gates[S_LOG_CLAIM], SW_LOG_WARN,
                       "broker %.8s: broker %s reported %zu ids held elsewhere, ignored them (e.g. %s: %s)", self->id,
                       child->id, refused, example, example_why);
    }
}

/* ---- directory --------------------------------------------------------------- */

static bool s_matches(const Swisd__V1__ModelRef *m, const char *model_id, const char *checksum)
{
    if (model_id && model_id[0] && (!m || !m->id || strcmp(m->id, model_id) != 0))
        return false;
    if (checksum && checksum[0] && (!m || !m->checksum || strcmp(m->checksum, checksum) != 0))
        return false;
    return true;
}

static uint32_t s_age(uint32_t reported, int64_t since_ms)
{
    int64_t a = (int64_t) reported + (since_ms > 0 ? since_ms : 0);
    return a > UINT32_MAX ? UINT32_MAX : (uint32_t) a;
}

/*  Whether frames to id go to the child broker `child` (its report's claim
 *  on id was accepted). */
static bool s_routed_to(const sw_broker_t *self, const char *id, const s_node_t *child)
{
    const s_route_t *r = id ? zhashx_lookup(self->below, id) : NULL;
    return r && !strcmp(r->child, child->id);
}

/*  A directory: shallow StageInfo copies (strings and sub-messages borrowed
 *  from the registry, valid until the registry changes) and their pointers. */
typedef struct {
    Swisd__V1__StageInfo *infos;
    Swisd__V1__StageInfo **ptrs;
    size_t n, cap;
} s_dir_t;

static Swisd__V1__StageInfo *s_dir_add(s_dir_t *d, const Swisd__V1__StageInfo *s)
{
    if (d->n >= d->cap)
        return NULL;
    d->infos[d->n] = *s;
    d->ptrs[d->n] = &d->infos[d->n];
    return &d->infos[d->n++];
}

/*  Collects live stages: local first, then those below child brokers (except
 *  `except`), then (with above) other regions' from the parent. */
static int s_dir_build(sw_broker_t *self, s_dir_t *d, const char *model_id, const char *checksum,
                       const s_node_t *except, bool above)
{
    memset(d, 0, sizeof *d);
    const int64_t now = s_now_ms();
    size_t total = 0;
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id)) {
        total += n->role == SWISD__V1__ROLE__ROLE_STAGE;
        if (n->report && n != except)
            total += n->report->directory_report->n_stages;
    }
    if (above && self->above)
        total += self->above->directory_reply->n_stages;
    d->cap = total < SW_WIRE_MAX_STAGES ? total : SW_WIRE_MAX_STAGES;
    d->infos = calloc(d->cap + 1, sizeof *d->infos);
    d->ptrs = calloc(d->cap + 1, sizeof *d->ptrs);
    if (!d->infos || !d->ptrs)
        return -1;
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id)) {
        if (n->role != SWISD__V1__ROLE__ROLE_STAGE || !n->hello)
            continue;
        const Swisd__V1__Hello *h = n->hello->hello;
        if (!h->layers || !s_matches(h->model, model_id, checksum))
            continue;
        Swisd__V1__StageInfo s = SWISD__V1__STAGE_INFO__INIT;
        s.node_id = n->id;
        s.region = n->region;
        s.model = h->model;
        s.layers = h->layers;
        s.caps = h->caps;
        s.load = &n->load;
        s.topic = h->topic;
        s.display_name = h->display_name;
        s.age_ms = s_age(0, now - n->last_ms);
        s.rtt_ms = n->rtt_ms;
        s.broker_id = self->id;
        if (n->has_key) { /* the key its connection authenticated with (sealing to it) */
            s.public_key.len = sizeof n->pubkey;
            s.public_key.data = n->pubkey;
        }
        s_dir_add(d, &s);
    }
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id)) {
        if (!n->report || n == except)
            continue;
        const Swisd__V1__DirectoryReport *r = n->report->directory_report;
        for (size_t i = 0; i < r->n_stages; i++) {
            if (!s_matches(r->stages[i]->model, model_id, checksum) || !s_routed_to(self, r->stages[i]->node_id, n))
                continue; /* ids held elsewhere that n claimed are not listed */
            Swisd__V1__StageInfo *s = s_dir_add(d, r->stages[i]);
            if (s) {
                s->age_ms = s_age(r->stages[i]->age_ms, now - n->report_ms);
                s->rtt_ms += n->rtt_ms; /* plus the child broker's link to us */
            }
        }
    }
    if (above && self->above) {
        const Swisd__V1__DirectoryReply *r = self->above->directory_reply;
        for (size_t i = 0; i < r->n_stages; i++) {
            if (!s_matches(r->stages[i]->model, model_id, checksum) || zhashx_lookup(self->by_id, r->stages[i]->node_id))
                continue;
            Swisd__V1__StageInfo *s = s_dir_add(d, r->stages[i]);
            if (s) {
                s->age_ms = s_age(r->stages[i]->age_ms, now - self->above_ms);
                s->rtt_ms += (float) sw_broker_client_rtt_ms(self->parent); /* plus our link to the parent */
            }
        }
    }
    return 0;
}

static void s_dir_free(s_dir_t *d)
{
    free(d->infos);
    free(d->ptrs);
    memset(d, 0, sizeof *d);
}

static void s_send_directory(sw_broker_t *self, s_node_t *to, const char *dst, const char *model_id,
                             const char *checksum, const s_node_t *except)
{
    s_dir_t d;
    if (s_dir_build(self, &d, model_id, checksum, except, true) == 0) {
        Swisd__V1__DirectoryReply r = SWISD__V1__DIRECTORY_REPLY__INIT;
        r.stages = d.ptrs;
        r.n_stages = d.n;
        r.broker_id = self->id;
        r.region = self->region;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_REPLY;
        b.directory_reply = &r;
        if (s_send_body(self, to, dst, &b) != 0)
            sw_log_limited(&self->gates[S_LOG_NOT_SENT], SW_LOG_WARN, "broker %.8s: directory reply to %s not sent: %s",
                           self->id, to->id, zmq_strerror(zmq_errno()));
    }
    s_dir_free(&d);
}

static void s_report_up(sw_broker_t *self)
{
    s_dir_t d;
    if (s_dir_build(self, &d, NULL, NULL, NULL, false) == 0) {
        Swisd__V1__DirectoryReport r = SWISD__V1__DIRECTORY_REPORT__INIT;
        r.region = self->region;
        r.stages = d.ptrs;
        r.n_stages = d.n;
        /* every other node below us too (gateways, clients, child brokers and the
         * nodes they reported), so the parent routes replies to them and accepts
         * them as src of what we relay up; at most SW_WIRE_MAX_STAGES (a longer
         * report would be refused whole) */
        char **nodes = calloc(SW_WIRE_MAX_STAGES, sizeof *nodes);
        size_t n_nodes = 0;
        for (s_node_t *n = zhashx_first(self->by_id); n && nodes && n_nodes < SW_WIRE_MAX_STAGES;
             n = zhashx_next(self->by_id))
            if (n->role != SWISD__V1__ROLE__ROLE_STAGE)
                nodes[n_nodes++] = n->id;
        for (s_node_t *n = zhashx_first(self->by_id); n && nodes; n = zhashx_next(self->by_id))
            if (n->report)
                for (size_t i = 0; i < n->report->directory_report->n_nodes && n_nodes < SW_WIRE_MAX_STAGES; i++)
                    if (s_routed_to(self, n->report->directory_report->nodes[i], n))
                        nodes[n_nodes++] = n->report->directory_report->nodes[i];
        r.nodes = nodes;
        r.n_nodes = n_nodes;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_REPORT;
        b.directory_report = &r;
        if (sw_broker_client_send(self->parent, "", &b) != 0)
            sw_log_limited(&self->gates[S_LOG_NOT_SENT], SW_LOG_WARN,
                           "broker %.8s: directory report not sent (link to the parent full)", self->id);
        free(nodes);
    }
    s_dir_free(&d);
}

/* ---- routing ------------------------------------------------------------------ */

/*  Delivers the body frame of m to dst. from: the ROUTER peer it came from,
 *  or NULL when it came down from the parent. */
static void s_route(sw_broker_t *self, s_node_t *from, const char *src, const char *dst, uint32_t hops,
                    sw_wire_msg_t *m)
{
    const uint32_t nh = hops + 1;
    if (nh > SW_WIRE_MAX_HOPS) {
        s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE,
                     "message to %s dropped after crossing %u brokers", dst, hops);
        return;
    }
    s_node_t *to = zhashx_lookup(self->by_id, dst);
    if (!to) {
        s_route_t *r = zhashx_lookup(self->below, dst);
        if (r) {
            to = zhashx_lookup(self->by_id, r->child);
            if (!to) {
                zhashx_delete(self->below, dst);
            } else if (to == from) {
                /* the child it came from does not know it either: never bounce */
                s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "unknown destination %s",
                             dst);
                return;
            }
        }
    }
    if (to) {
        if (s_relay(self, to, src, dst, nh, &m->body_frame) == 0)
            return;
        if (errno == EHOSTUNREACH) {
            s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "node %s is unreachable", dst);
            s_node_remove(self, to, "is unreachable; dropped");
        } else if (errno == EAGAIN) {
            s_overloaded_back(self, from, src, "queue to node %s is full; frames to it are dropped", dst);
        } else {
            s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "relay to %s failed: %s", dst,
                         zmq_strerror(errno));
        }
        return;
    }
    if (self->parent && from) {
        if (sw_broker_client_relay(self->parent, src, dst, nh, &m->body_frame) != 0) {
            self->stats.dropped_full++;
            sw_log_limited(&self->gates[S_LOG_FULL], SW_LOG_WARN,
                           "broker %.8s: link to the parent broker is full; frames up are dropped", self->id);
            s_overloaded_back(self, from, src, "link to the parent broker is full; %s not reached", dst);
        }
        return;
    }
    s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "unknown destination %s", dst);
}

/* ---- messages to the broker itself ------------------------------------------------ */

static bool s_role_known(Swisd__V1__Role r)
{
    return r == SWISD__V1__ROLE__ROLE_STAGE || r == SWISD__V1__ROLE__ROLE_GATEWAY ||
           r == SWISD__V1__ROLE__ROLE_BROKER || r == SWISD__V1__ROLE__ROLE_CLIENT;
}

/*  Refuses a Hello: Error `code` to the peer of m, counted, and logged
 *  through the S_LOG_HELLO gate. */
static void s_refuse_hello(sw_broker_t *self, sw_wire_msg_t *m, const char *node_id, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void s_refuse_hello(sw_broker_t *self, sw_wire_msg_t *m, const char *node_id, int code, const char *fmt, ...)
{
    char text[SW_WIRE_MAX_TEXT + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    self->stats.hello_refused++;
    sw_log_limited(&self->gates[S_LOG_HELLO], SW_LOG_WARN, "broker %.8s: refused a Hello (%s): %s", self->id,
                   sw_wire_error_name(code), text);
    sw_wire_send_error(self->router, m->identity, self->id, node_id, code, NULL, 0, "%s", text);
}

/*  Secure broker: the Hello's connection key into pk, checked against the
 *  denylist, the id claimed and the role's list. False after refusing it. */
static bool s_key_allowed(sw_broker_t *self, sw_wire_msg_t *m, const Swisd__V1__Hello *h, uint8_t pk[32])
{
    const int code = SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED;
    if (sw_broker_auth_peer_key(m->body_frame, pk) != 0) {
        self->keys_refused++;
        s_refuse_hello(self, m, h->node_id, code, "node %s: its connection has no CURVE key", h->node_id);
        return false;
    }
    char fp[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(pk, fp);
    const char *why = NULL;
    if (sw_broker_auth_denied(self->auth, pk))
        why = "the key is on the denylist";
    else if (!sw_identity_id_matches(h->node_id, pk))
        why = "the id claimed is not the key's fingerprint";
    else if (h->role == SWISD__V1__ROLE__ROLE_GATEWAY && !sw_broker_auth_may_gateway(self->auth, pk))
        why = "the key is not on the gateway list";
    else if (h->role == SWISD__V1__ROLE__ROLE_BROKER && !sw_broker_auth_may_broker(self->auth, pk))
        why = "the key is not on the child broker list";
    if (!why)
        return true;
    self->keys_refused++;
    s_refuse_hello(self, m, h->node_id, code, "key %s (as %s, claiming id %.64s): %s", fp, s_role_name(h->role),
                   h->node_id, why);
    return false;
}

/*  Secure broker, denylist changed: registered nodes whose keys it now
 *  holds are told UNAUTHORIZED and dropped. */
static void s_drop_denied(sw_broker_t *self)
{
    zlist_t *gone = zlist_new();
    if (!gone)
        return;
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id))
        if (n->has_key && sw_broker_auth_denied(self->auth, n->pubkey))
            zlist_append(gone, n);
    for (s_node_t *n = zlist_first(gone); n; n = zlist_next(gone)) {
        sw_wire_send_error(self->router, n->identity, self->id, n->id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED, NULL,
                           0, "your key was put on the denylist");
        s_node_remove(self, n, "its key was put on the denylist");
    }
    zlist_destroy(&gone);
}

static void s_sync_bans(sw_broker_t *self, s_node_t *to);

/*  Hello from the connection `key` (from: the node it registered, or NULL). */
static void s_on_hello(sw_broker_t *self, s_node_t *from, sw_wire_msg_t *m, const char *key)
{
    const Swisd__V1__Hello *h = m->body->hello;
    const int64_t now = s_now_ms();
    uint8_t pk[32];
    if (self->auth && !s_key_allowed(self, m, h, pk))
        return;
    const sw_broker_ban_t *ban = sw_broker_bans_find(self->bans, h->node_id, (uint64_t) time(NULL));
    if (ban) { /* with a key, the id is its fingerprint (s_key_allowed) */
        char text[SW_WIRE_MAX_BAN_REASON + 128];
        s_refuse_hello(self, m, h->node_id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED, "node %s is banned %s",
                       h->node_id, sw_broker_ban_describe(ban, text, sizeof text));
        return;
    }
    if (!s_role_known(h->role)) {
        s_refuse_hello(self, m, h->node_id, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                       "node %s: unknown role %d (stage 1, gateway 2, broker 3 or client 4)", h->node_id,
                       (int) h->role);
        return;
    }
    s_node_t *same = zhashx_lookup(self->by_id, h->node_id);
    if (same && same != from) { /* the id is registered from another connection */
        if (s_holder_alive(self, same, now)) {
            s_refuse_hello(self, m, h->node_id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED,
                           "node id %s is registered by another connection (a %s, %lld ms ago); it is freed when "
                           "that node leaves or is silent for %d ms",
                           h->node_id, s_role_name(same->role), (long long) (now - same->since_ms),
                           self->cfg.expiry_ms);
            return;
        }
        s_node_remove(self, same, "lost its connection; its id goes to a new one");
        same = NULL;
    }
    char why[160];
    if (!same && s_held_elsewhere(self, h->node_id, NULL, why, sizeof why)) {
        s_refuse_hello(self, m, h->node_id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED, "node id %s is %s", h->node_id,
                       why);
        return;
    }
    if (!same && (int) zhashx_size(self->by_id) >= self->cfg.max_nodes) {
        s_refuse_hello(self, m, h->node_id, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "broker is full (%d nodes)",
                       self->cfg.max_nodes);
        return;
    }
    if (from && from != same) /* this connection registers under a new id */
        s_node_remove(self, from, "re-registered under a new id; old entry dropped");
    const bool fresh = !same;
    s_node_t *n = same; /* NULL, or the node this very connection registered */
    if (!n) {
        if (!(n = calloc(1, sizeof *n)))
            return;
        snprintf(n->id, sizeof n->id, "%s", h->node_id);
        swisd__v1__load__init(&n->load);
        n->identity = zframe_dup(m->identity);
        snprintf(n->key, sizeof n->key, "%s", key);
        n->since_ms = now;
        if (self->auth) {
            memcpy(n->pubkey, pk, sizeof pk);
            n->has_key = true;
        }
        n->tokens = S_REQ_PER_S;
        n->tokens_ms = now;
        zhashx_insert(self->by_id, n->id, n);
        zhashx_update(self->by_key, n->key, n);
    }
    if (n->role == SWISD__V1__ROLE__ROLE_BROKER && h->role != SWISD__V1__ROLE__ROLE_BROKER) {
        s_routes_drop(self, n->id, true);
        if (n->report)
            swisd__v1__body__free_unpacked(n->report, NULL);
        n->report = NULL;
    }
    n->role = h->role;
    snprintf(n->region, sizeof n->region, "%s", h->region && h->region[0] ? h->region : self->region);
    if (n->hello)
        swisd__v1__body__free_unpacked(n->hello, NULL);
    n->hello = m->body; /* keep the unpacked Hello (its size was capped before unpacking) */
    m->body = NULL;
    n->last_ms = now;
    if (fresh) {
        const Swisd__V1__Hello *hh = n->hello->hello;
        if (hh->role == SWISD__V1__ROLE__ROLE_STAGE)
            sw_log_limited(&self->gates[S_LOG_REGISTRY], SW_LOG_INFO,
                           "broker %.8s: stage %s%s%s%s registered (region %s, model %s, layers [%u, %u)%s%s)",
                           self->id, n->id, S_NAME_FMT(hh->display_name), n->region,
                           hh->model && hh->model->id ? hh->model->id : "?", hh->layers->begin, hh->layers->end,
                           hh->topic && hh->topic[0] ? ", topic " : "", hh->topic ? hh->topic : "");
        else
            sw_log_limited(&self->gates[S_LOG_REGISTRY], SW_LOG_INFO, "broker %.8s: %s %s%s%s%s registered (region %s)",
                           self->id, s_role_name(hh->role), n->id, S_NAME_FMT(hh->display_name), n->region);
    }
    Swisd__V1__HelloAck ack = SWISD__V1__HELLO_ACK__INIT;
    ack.broker_id = self->id;
    ack.region = self->region;
    ack.heartbeat_ms = (uint32_t) self->cfg.heartbeat_ms;
    ack.expiry_ms = (uint32_t) self->cfg.expiry_ms;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_HELLO_ACK;
    b.hello_ack = &ack;
    if (s_send_body(self, n, n->id, &b) != 0)
        sw_log_limited(&self->gates[S_LOG_NOT_SENT], SW_LOG_WARN, "broker %.8s: HelloAck to %s not sent: %s", self->id,
                       n->id, zmq_strerror(zmq_errno()));
    else if (fresh && n->role == SWISD__V1__ROLE__ROLE_BROKER)
        s_sync_bans(self, n);
}

/*  Sends every ban held (ended ones not yet forgotten skipped) to the child
 *  broker `to`, or to the parent (to NULL): a broker that (re)joins the tree
 *  learns the bans decided while it was away; the receiver keeps what is new
 *  to it and passes only that on. */
static void s_sync_bans(sw_broker_t *self, s_node_t *to)
{
    const uint64_t now_s = (uint64_t) time(NULL);
    size_t n = 0, failed = 0;
    for (const sw_broker_ban_t *ban = sw_broker_bans_first(self->bans); ban; ban = sw_broker_bans_next(self->bans)) {
        if (ban->until_unix_s <= now_s)
            continue;
        Swisd__V1__BanNotice out;
        sw_broker_ban_to_notice(ban, &out);
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_BAN_NOTICE;
        b.ban_notice = &out;
        failed += (to ? s_send_body(self, to, to->id, &b) : sw_broker_client_send(self->parent, "", &b)) != 0;
        n++;
    }
    if (n)
        sw_log(SW_LOG_INFO, "broker %.8s: sent the %zu bans held to %s %s%s", self->id, n, to ? "child broker" : "the",
               to ? to->id : "parent", failed ? " (some not sent: link full)" : "");
}

/*  A BanNotice (docs/security.md, "Bans that reach every broker") from the
 *  registered node `from`, or from the parent (from NULL). Accepted from a
 *  gateway registered here (origin: its id) and from the own frames (hops 0)
 *  of a child broker or of the parent (origin kept); refused from anyone
 *  else. A checked notice that changes the bans drops the node when it is
 *  registered here and goes on to the parent and every child broker but the
 *  one it came from. */
static void s_on_ban_notice(sw_broker_t *self, s_node_t *from, const Swisd__V1__Header *h,
                            const Swisd__V1__BanNotice *bn)
{
    const char *src = h->src ? h->src : "";
    const bool gateway = from && from->role == SWISD__V1__ROLE__ROLE_GATEWAY;
    const bool broker = h->hops == 0 && (from ? from->role == SWISD__V1__ROLE__ROLE_BROKER && !strcmp(src, from->id)
                                              : !strcmp(src, sw_broker_client_broker_id(self->parent)));
    const char *who = from ? s_role_name(from->role) : "node";
    if (!gateway && !broker) {
        sw_log_limited(&self->gates[S_LOG_BAN], SW_LOG_WARN,
                       "broker %.8s: refused a ban notice from %s %.64s (hops %u): only gateways and brokers may "
                       "ban", self->id, from ? who : "the parent side, sent by", src, h->hops);
        s_error_back(self, from, from ? from->id : src, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED,
                     "only a gateway (its key on the broker's gateway list) or a broker may send a ban notice");
        return;
    }
    sw_broker_ban_t ban;
    sw_broker_ban_from_notice(bn, &ban);
    if (gateway)
        snprintf(ban.origin, sizeof ban.origin, "%s", from->id);
    char err[256], text[SW_WIRE_MAX_BAN_REASON + 128];
    const uint64_t now_s = (uint64_t) time(NULL);
    if (sw_broker_ban_check(&ban, self->auth != NULL, now_s, err, sizeof err) != 0) {
        sw_log_limited(&self->gates[S_LOG_BAN], SW_LOG_WARN, "broker %.8s: refused a ban notice from %s %.64s: %s",
                       self->id, from ? who : "the parent", src, err);
        s_error_back(self, from, from ? from->id : src, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, "ban notice: %s",
                     err);
        return;
    }
    const int rc = sw_broker_bans_apply(self->bans, &ban, now_s, err, sizeof err);
    if (rc <= 0) {
        if (rc < 0)
            sw_log_limited(&self->gates[S_LOG_BAN], SW_LOG_WARN, "broker %.8s: ban of %s not kept: %s", self->id,
                           ban.id, err);
        return; /* held already (or a lift of nothing): not relayed again */
    }
    if (ban.until_unix_s)
        sw_log(SW_LOG_INFO, "broker %.8s: node %s banned %s (from %s %.16s)", self->id, ban.id,
               sw_broker_ban_describe(&ban, text, sizeof text), from ? who : "the parent", src);
    else
        sw_log(SW_LOG_INFO, "broker %.8s: ban of node %s lifted (from %s %.16s)", self->id, ban.id,
               from ? who : "the parent", src);
    s_node_t *n = ban.until_unix_s ? zhashx_lookup(self->by_id, ban.id) : NULL;
    if (n && n != from) {
        sw_wire_send_error(self->router, n->identity, self->id, n->id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED,
                           NULL, 0, "you are banned %s", text);
        s_node_remove(self, n, "is banned; dropped");
    }
    Swisd__V1__BanNotice out;
    sw_broker_ban_to_notice(&ban, &out);
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_BAN_NOTICE;
    b.ban_notice = &out;
    if (self->parent && from && sw_broker_client_send(self->parent, "", &b) != 0)
        sw_log(SW_LOG_WARN, "broker %.8s: ban of %s not passed to the parent (link full)", self->id, ban.id);
    for (s_node_t *c = zhashx_first(self->by_id); c; c = zhashx_next(self->by_id))
        if (c->role == SWISD__V1__ROLE__ROLE_BROKER && c != from && s_send_body(self, c, c->id, &b) != 0)
            sw_log(SW_LOG_WARN, "broker %.8s: ban of %s not passed to broker %s", self->id, ban.id, c->id);
}

/*  Takes one token of n's request budget (directory queries and reports);
 *  false when it is spent. */
static bool s_take_token(s_node_t *n, int64_t now)
{
    n->tokens += (double) (now - n->tokens_ms) * S_REQ_PER_S / 1000.0;
    n->tokens_ms = now;
    if (n->tokens > S_REQ_PER_S)
        n->tokens = S_REQ_PER_S;
    if (n->tokens < 1)
        return false;
    n->tokens -= 1;
    return true;
}

/*  The body of m unpacked and validated, or NULL after answering the sender
 *  (to: its node id, or the header's src when unregistered) with the error.
 *  A body for the broker itself is refused before unpacking past `limit`
 *  bytes (protobuf-c allocates in proportion to its input, and a Hello is
 *  kept for as long as its node lives). */
static const Swisd__V1__Body *s_own_body(sw_broker_t *self, sw_wire_msg_t *m, const char *to, size_t limit)
{
    int code = SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME;
    char err[256];
    const size_t size = m->body_frame ? zframe_size(m->body_frame) : 0;
    const Swisd__V1__Body *body = NULL;
    if (size > limit) {
        snprintf(err, sizeof err, "a message to the broker of %zu bytes (limit %zu)", size, limit);
    } else if ((body = sw_wire_body(m, &code, err, sizeof err)) && body->msg_case == SWISD__V1__BODY__MSG_HELLO &&
               size > S_MAX_OWN_BODY) {
        snprintf(err, sizeof err, "a Hello of %zu bytes (limit %u)", size, S_MAX_OWN_BODY);
        body = NULL;
    }
    if (body)
        return body;
    self->stats.bad_frames++;
    sw_log_limited(&self->gates[S_LOG_BAD_FRAME], SW_LOG_WARN, "broker %.8s: bad body from %s: %s", self->id,
                   to[0] ? to : "an unregistered peer", err);
    sw_wire_send_error(self->router, m->identity, self->id, to, code, NULL, 0, "%s", err);
    return NULL;
}

static void s_on_own(sw_broker_t *self, s_node_t *n, sw_wire_msg_t *m, const char *key)
{
    const bool is_broker = n->role == SWISD__V1__ROLE__ROLE_BROKER;
    const Swisd__V1__Body *body = s_own_body(self, m, n->id, is_broker ? S_MAX_REPORT_BODY : S_MAX_OWN_BODY);
    if (!body)
        return;
    Swisd__V1__Body reply = SWISD__V1__BODY__INIT;
    const int64_t now = s_now_ms();
    if ((body->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_QUERY ||
         (body->msg_case == SWISD__V1__BODY__MSG_BAN_NOTICE && !is_broker)) && /* a child syncs all its bans */
        !s_take_token(n, now)) {
        self->stats.requests_limited++;
        sw_log_limited(&self->gates[S_LOG_LIMITED], SW_LOG_WARN,
                       "broker %.8s: %s %s sends more than %d directory queries/reports/bans per second; refused", self->id,
                       s_role_name(n->role), n->id, S_REQ_PER_S);
        s_overloaded_back(self, n, n->id, "more than %d directory queries/reports/bans per second", S_REQ_PER_S);
        return;
    }
    switch (body->msg_case) {
    case SWISD__V1__BODY__MSG_HELLO:
        s_on_hello(self, n, m, key);
        break;
    case SWISD__V1__BODY__MSG_HEARTBEAT: {
        const Swisd__V1__Heartbeat *hb = body->heartbeat;
        if (isfinite(hb->rtt_ms) && hb->rtt_ms >= 0 && hb->rtt_ms < 600000)
            n->rtt_ms = hb->rtt_ms;
        if (hb->load) {
            n->load.active_sessions = hb->load->active_sessions;
            n->load.queued_requests = hb->load->queued_requests;
            n->load.kv_bytes = hb->load->kv_bytes;
            n->load.busy = hb->load->busy;
            n->load.draining = hb->load->draining;
        }
        Swisd__V1__HeartbeatAck ack = SWISD__V1__HEARTBEAT_ACK__INIT;
        ack.seq = hb->seq;
        ack.echo_sent_us = hb->sent_us;
        reply.msg_case = SWISD__V1__BODY__MSG_HEARTBEAT_ACK;
        reply.heartbeat_ack = &ack;
        s_send_body(self, n, n->id, &reply);
        break;
    }
    case SWISD__V1__BODY__MSG_GOODBYE: {
        char why[SW_WIRE_MAX_TEXT + 32];
        snprintf(why, sizeof why, "left (%s)", body->goodbye->reason ? body->goodbye->reason : "");
        s_node_remove(self, n, why);
        break;
    }
    case SWISD__V1__BODY__MSG_DIRECTORY_QUERY:
        s_send_directory(self, n, n->id, body->directory_query->model_id, body->directory_query->checksum, NULL);
        break;
    case SWISD__V1__BODY__MSG_DIRECTORY_REPORT:
        if (!is_broker) {
            sw_wire_send_error(self->router, m->identity, self->id, n->id, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                               NULL, 0, "only brokers send directory reports (you registered as %s)",
                               s_role_name(n->role));
            break;
        }
        if (n->report)
            swisd__v1__body__free_unpacked(n->report, NULL);
        n->report = m->body; /* keep it */
        m->body = NULL;
        n->report_ms = now;
        s_routes_from_report(self, n, n->report_ms);
        s_send_directory(self, n, n->id, NULL, NULL, n); /* every region but the child's own */
        break;
    case SWISD__V1__BODY__MSG_BAN_NOTICE:
        s_on_ban_notice(self, n, m->header, body->ban_notice);
        break;
    case SWISD__V1__BODY__MSG_ERROR:
        sw_log_limited(&self->gates[S_LOG_DEBUG], SW_LOG_DEBUG, "broker %.8s: error from %s: %s: %s", self->id, n->id,
                       sw_wire_error_name(body->error->code), body->error->message ? body->error->message : "");
        break;
    default:
        sw_wire_send_error(self->router, m->identity, self->id, n->id, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL,
                           0, "a broker does not serve %s", sw_wire_kind_name(body));
        break;
    }
}

/* ---- socket handlers ---------------------------------------------------------- */

/*  A frame from the child broker `from` claims src: allowed for its own id
 *  and for ids nobody else holds (then learned as below it). Otherwise the
 *  frame is refused: Error UNAUTHORIZED to the child, counted, logged. */
static bool s_src_allowed(sw_broker_t *self, s_node_t *from, const char *src, int64_t now)
{
    if (!strcmp(src, from->id))
        return true;
    char why[160];
    if (!s_held_elsewhere(self, src, from, why, sizeof why)) {
        s_learn(self, src, from, now);
        return true;
    }
    self->stats.claims_refused++;
    sw_log_limited(&self->gates[S_LOG_CLAIM], SW_LOG_WARN,
                   "broker %.8s: refused a frame from broker %s with src %s (%s)", self->id, from->id, src, why);
    sw_wire_send_error(self->router, from->identity, self->id, from->id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED,
                       NULL, 0, "src %s is %s; a broker relays only for nodes below it", src, why);
    return false;
}

static void s_on_router(sw_broker_t *self)
{
    sw_wire_msg_t m;
    int code = 0;
    char err[256];
    int rc = sw_wire_recv(self->router, true, &m, &code, err, sizeof err);
    if (!m.identity) {
        sw_wire_msg_free(&m);
        return;
    }
    char key[S_KEY_MAX];
    s_key(m.identity, key);
    s_node_t *from = zhashx_lookup(self->by_key, key);
    if (rc != 0) {
        /* answer to the header's src only when it is a valid id */
        const char *src = m.header && m.header->src && strnlen(m.header->src, SW_WIRE_MAX_ID + 1) <= SW_WIRE_MAX_ID
                              ? m.header->src
                              : "";
        self->stats.bad_frames++;
        sw_log_limited(&self->gates[S_LOG_BAD_FRAME], SW_LOG_WARN, "broker %.8s: bad frame from %s: %s", self->id,
                       from ? from->id : "an unregistered peer", err);
        sw_wire_send_error(self->router, m.identity, self->id, from ? from->id : src, code, NULL, 0, "%s", err);
        sw_wire_msg_free(&m);
        return;
    }
    const Swisd__V1__Header *h = m.header;
    const char *dst = h->dst ? h->dst : "";
    const bool for_me = !dst[0] || !strcmp(dst, self->id);
    if (!from) {
        const Swisd__V1__Body *body = s_own_body(self, &m, h->src ? h->src : "", S_MAX_OWN_BODY);
        if (!body) {
            /* answered by s_own_body */
        } else if (body->msg_case == SWISD__V1__BODY__MSG_HELLO && for_me) {
            s_on_hello(self, NULL, &m, key);
        } else if (body->msg_case != SWISD__V1__BODY__MSG_ERROR) { /* never answer an Error with an Error */
            sw_wire_send_error(self->router, m.identity, self->id, h->src, SWISD__V1__ERROR_CODE__ERROR_UNKNOWN_NODE,
                               NULL, 0, "node '%s' is not registered with broker %s: send Hello", h->src, self->id);
        }
        sw_wire_msg_free(&m);
        return;
    }
    from->last_ms = s_now_ms();
    if (for_me) {
        s_on_own(self, from, &m, key);
    } else {
        /* a stage/gateway/client's frames carry its registered id, whatever its header said */
        const bool is_broker = from->role == SWISD__V1__ROLE__ROLE_BROKER;
        const char *src = is_broker && h->src && h->src[0] ? h->src : from->id;
        if (!is_broker || s_src_allowed(self, from, src, from->last_ms))
            s_route(self, from, src, dst, h->hops, &m);
    }
    sw_wire_msg_free(&m);
}

/*  The parent's DirectoryReply becomes `above`, indexed by stage id. */
static void s_set_above(sw_broker_t *self, Swisd__V1__Body *reply)
{
    zhashx_purge(self->above_ids);
    if (self->above)
        swisd__v1__body__free_unpacked(self->above, NULL);
    self->above = reply;
    if (!reply)
        return;
    self->above_ms = s_now_ms();
    const Swisd__V1__DirectoryReply *r = reply->directory_reply;
    for (size_t i = 0; i < r->n_stages; i++)
        if (r->stages[i]->node_id && r->stages[i]->node_id[0])
            zhashx_update(self->above_ids, r->stages[i]->node_id, r->stages[i]->region ? r->stages[i]->region : "");
}

static void s_on_parent(sw_broker_t *self)
{
    sw_wire_msg_t m;
    if (sw_broker_client_recv(self->parent, &m) != 1)
        return;
    const Swisd__V1__Header *h = m.header;
    const char *dst = h->dst ? h->dst : "";
    if (!dst[0] || !strcmp(dst, self->id)) {
        const Swisd__V1__Body *b = m.body;
        if (b && b->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPLY) {
            s_set_above(self, m.body);
            m.body = NULL;
        } else if (b && b->msg_case == SWISD__V1__BODY__MSG_BAN_NOTICE) {
            s_on_ban_notice(self, NULL, h, b->ban_notice);
        } else if (b && b->msg_case == SWISD__V1__BODY__MSG_ERROR) {
            sw_log_limited(&self->gates[S_LOG_PARENT], SW_LOG_INFO,
                           "broker %.8s: error from the parent side (%s): %s: %s", self->id, h->src ? h->src : "",
                           sw_wire_error_name(b->error->code), b->error->message ? b->error->message : "");
        } else {
            sw_log_limited(&self->gates[S_LOG_DEBUG], SW_LOG_DEBUG, "broker %.8s: ignored %s from the parent", self->id,
                           sw_wire_kind_name(b));
        }
    } else {
        s_route(self, NULL, h->src ? h->src : "", dst, h->hops, &m);
    }
    sw_wire_msg_free(&m);
}

/* ---- timers ----------------------------------------------------------------------- */

/*  Forgets nodes silent for expiry_ms, and nodes whose queue stayed full for
 *  expiry_ms (they do not read: a last probe still finds the queue full). */
static void s_expire(sw_broker_t *self, int64_t now)
{
    zlist_t *gone = zlist_new(), *deaf = zlist_new();
    if (!gone || !deaf) {
        zlist_destroy(&gone);
        zlist_destroy(&deaf);
        return;
    }
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id)) {
        if (now - n->last_ms > self->cfg.expiry_ms)
            zlist_append(gone, n);
        else if (n->full_since_ms && now - n->full_since_ms > self->cfg.expiry_ms)
            zlist_append(deaf, n);
    }
    char why[96];
    snprintf(why, sizeof why, "expired (silent for more than %d ms)", self->cfg.expiry_ms);
    for (s_node_t *n = zlist_first(gone); n; n = zlist_next(gone))
        s_node_remove(self, n, why);
    snprintf(why, sizeof why, "is not reading (queue full for more than %d ms); dropped", self->cfg.expiry_ms);
    for (s_node_t *n = zlist_first(deaf); n; n = zlist_next(deaf)) {
        Swisd__V1__HeartbeatAck ack = SWISD__V1__HEARTBEAT_ACK__INIT;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_HEARTBEAT_ACK;
        b.heartbeat_ack = &ack;
        if (s_send_body(self, n, n->id, &b) == 0)
            continue; /* it drained its queue in the meantime */
        self->stats.evicted_full++;
        s_node_remove(self, n, why);
    }
    zlist_destroy(&gone);
    zlist_destroy(&deaf);
    if (self->above && (now - self->above_ms > self->cfg.expiry_ms || !sw_broker_client_registered(self->parent))) {
        sw_log(SW_LOG_INFO, "broker %.8s: other regions' directory is stale; dropped", self->id);
        s_set_above(self, NULL);
    }
}

/*  Drops learned routes unused for S_LEARNED_TTL_MS and routes of child
 *  brokers that left; recounts each child's learned routes. */
static void s_gc_routes(sw_broker_t *self, int64_t now)
{
    zlist_t *gone = zlist_new();
    if (!gone)
        return;
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id))
        n->n_learned = 0;
    for (s_route_t *r = zhashx_first(self->below); r; r = zhashx_next(self->below)) {
        s_node_t *child = zhashx_lookup(self->by_id, r->child);
        if ((r->learned && now - r->seen_ms > S_LEARNED_TTL_MS) || !child)
            zlist_append(gone, (void *) zhashx_cursor(self->below));
        else if (r->learned)
            child->n_learned++;
    }
    for (const char *k = zlist_first(gone); k; k = zlist_next(gone))
        zhashx_delete(self->below, k);
    zlist_destroy(&gone);
}

/*  One INFO line about what happened since the last one (drops, refusals),
 *  when anything did: the peers that lost the most frames are named. */
static void s_summary(sw_broker_t *self)
{
    const sw_broker_stats_t *a = &self->stats, *b = &self->told;
    if (!memcmp(a, b, sizeof *a))
        return;
    char top[3 * (SW_WIRE_MAX_ID + 32)] = "";
    const s_node_t *best[3] = {NULL, NULL, NULL};
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id)) {
        const uint64_t d = n->dropped - n->dropped_told;
        for (int i = 0; i < 3 && d; i++)
            if (!best[i] || d > best[i]->dropped - best[i]->dropped_told) {
                for (int j = 2; j > i; j--)
                    best[j] = best[j - 1];
                best[i] = n;
                break;
            }
    }
    size_t used = 0;
    for (int i = 0; i < 3 && best[i]; i++)
        used += (size_t) snprintf(top + used, sizeof top - used, "%s%s %llu", i ? ", " : " (to ", best[i]->id,
                                  (unsigned long long) (best[i]->dropped - best[i]->dropped_told));
    if (best[0])
        snprintf(top + used, sizeof top - used, ")");
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id))
        n->dropped_told = n->dropped;
    sw_log(SW_LOG_INFO,
           "broker %.8s: last %d s: %llu frames dropped, queue full%s; %llu OVERLOADED sent; %llu Hellos refused; "
           "%llu ids claimed by child brokers refused; %llu bad frames; %llu requests over the rate; %llu nodes "
           "dropped for not reading",
           self->id, S_SUMMARY_MS / 1000, (unsigned long long) (a->dropped_full - b->dropped_full), top,
           (unsigned long long) (a->overloaded_sent - b->overloaded_sent),
           (unsigned long long) (a->hello_refused - b->hello_refused),
           (unsigned long long) (a->claims_refused - b->claims_refused),
           (unsigned long long) (a->bad_frames - b->bad_frames),
           (unsigned long long) (a->requests_limited - b->requests_limited),
           (unsigned long long) (a->evicted_full - b->evicted_full));
    self->told = *a;
}

static void s_timers(sw_broker_t *self)
{
    const int64_t now = s_now_ms();
    if (now >= self->next_expiry_ms) {
        s_expire(self, now);
        int every = self->cfg.heartbeat_ms < self->cfg.expiry_ms / 4 ? self->cfg.heartbeat_ms : self->cfg.expiry_ms / 4;
        self->next_expiry_ms = now + (every > 10 ? every : 10);
    }
    if (now >= self->next_bans_ms) {
        sw_broker_bans_expire(self->bans, (uint64_t) time(NULL));
        self->next_bans_ms = now + 1000;
    }
    if (now >= self->next_gc_ms) {
        s_gc_routes(self, now);
        self->next_gc_ms = now + 1000;
    }
    if (now >= self->next_summary_ms) {
        if (self->next_summary_ms)
            s_summary(self);
        self->next_summary_ms = now + S_SUMMARY_MS;
    }
    if (self->parent) {
        sw_broker_client_tick(self->parent);
        uint64_t regs = sw_broker_client_registrations(self->parent);
        if (sw_broker_client_registered(self->parent) && (now >= self->next_report_ms || regs != self->parent_regs)) {
            if (regs != self->parent_regs)
                s_sync_bans(self, NULL); /* (re)joined the tree */
            s_report_up(self);
            self->parent_regs = regs;
            self->next_report_ms = now + self->cfg.heartbeat_ms;
        }
    }
}

static int s_next_timer_ms(const sw_broker_t *self)
{
    const int64_t now = s_now_ms();
    int64_t due = self->next_expiry_ms < self->next_gc_ms ? self->next_expiry_ms : self->next_gc_ms;
    if (self->next_summary_ms < due)
        due = self->next_summary_ms;
    if (self->parent) {
        if (self->next_report_ms < due)
            due = self->next_report_ms;
        int64_t c = now + sw_broker_client_timeout_ms(self->parent);
        if (c < due)
            due = c;
    }
    return due <= now ? 0 : (int) (due - now);
}

int sw_broker_step(sw_broker_t *self, int max_wait_ms)
{
    int timeout = s_next_timer_ms(self);
    if (max_wait_ms >= 0 && max_wait_ms < timeout)
        timeout = max_wait_ms;
    if (self->auth && timeout > 1000)
        timeout = 1000; /* the denylist is looked at every second */
    zmq_pollitem_t items[4] = {{zsock_resolve(self->router), 0, ZMQ_POLLIN, 0}};
    int n_items = 1, i_parent = -1, i_auth = -1, i_mon = -1;
    if (self->parent) {
        i_parent = n_items++;
        items[i_parent] = (zmq_pollitem_t){zsock_resolve(sw_broker_client_sock(self->parent)), 0, ZMQ_POLLIN, 0};
    }
    if (self->auth) { /* ZAP requests: handshakes wait for our answers */
        i_auth = n_items++;
        items[i_auth] = (zmq_pollitem_t){zsock_resolve(sw_broker_auth_sock(self->auth)), 0, ZMQ_POLLIN, 0};
        i_mon = n_items++;
        items[i_mon] = (zmq_pollitem_t){zsock_resolve(sw_broker_auth_monitor_sock(self->auth)), 0, ZMQ_POLLIN, 0};
    }
    int rc = zmq_poll(items, n_items, timeout);
    if (rc < 0 && zmq_errno() == ETERM)
        return -1;
    if (rc > 0) {
        if (items[0].revents & ZMQ_POLLIN)
            for (int i = 0; i < S_BATCH && (zsock_events(self->router) & ZMQ_POLLIN); i++)
                s_on_router(self);
        if (i_auth >= 0 && (items[i_auth].revents & ZMQ_POLLIN))
            sw_broker_auth_handle(self->auth);
        if (i_mon >= 0 && (items[i_mon].revents & ZMQ_POLLIN))
            sw_broker_auth_handle_monitor(self->auth);
        if (i_parent >= 0 && (items[i_parent].revents & ZMQ_POLLIN)) {
            zsock_t *ps = sw_broker_client_sock(self->parent);
            for (int i = 0; i < S_BATCH && (zsock_events(ps) & ZMQ_POLLIN); i++)
                s_on_parent(self);
        }
    }
    if (self->auth && sw_broker_auth_tick(self->auth))
        s_drop_denied(self);
    s_timers(self);
    return 0;
}

int sw_broker_run(sw_broker_t *self, volatile int *stop)
{
    while (!(stop && *stop) && !zsys_interrupted)
        if (sw_broker_step(self, 1000) != 0)
            break;
    return 0;
}
