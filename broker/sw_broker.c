/*  sw_broker.c: registry, directory, relay and tiers (see sw_broker.h). */
#include "sw_broker.h"

#include <math.h>

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "sw_broker_client.h"
#include "sw_common.h"
#include "sw_wire.h"

#define S_MAX_NODES 10000        /* default registry bound */
#define S_HWM 10000              /* default ROUTER high-water marks, messages */
#define S_BATCH 1000             /* messages handled per socket per step */
#define S_MAX_ROUTES 200000      /* entries in the below-routes table */
#define S_LEARNED_TTL_MS 60000   /* learned routes unused this long are dropped */
#define S_KEY_MAX (2 * 255 + 1)  /* hex of a ZeroMQ routing id (<= 255 bytes) */

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
    Swisd__V1__Body *report;              /* child brokers: last DirectoryReport (owned) */
    int64_t report_ms;                    /* when it arrived */
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
    char endpoint[256];                   /* resolved bound endpoint */
    zsock_t *router;
    zhashx_t *by_id;                      /* node id -> s_node_t (owns) */
    zhashx_t *by_key;                     /* hex routing id -> s_node_t (borrowed) */
    zhashx_t *below;                      /* node id -> s_route_t (owns) */
    sw_broker_client_t *parent;           /* link to the parent; NULL at the root */
    Swisd__V1__Body *above;               /* parent's last DirectoryReply (owned) */
    int64_t above_ms;
    uint64_t parent_regs;                 /* parent registrations seen (report at once on change) */
    int64_t next_expiry_ms, next_report_ms, next_gc_ms;
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
    self->cfg.bind = self->cfg.parent = self->cfg.region = self->cfg.id = NULL;
    if (cfg->id)
        snprintf(self->id, sizeof self->id, "%s", cfg->id);
    else
        sw_wire_new_id(self->id, sizeof self->id);
    snprintf(self->region, sizeof self->region, "%s", cfg->region && cfg->region[0] ? cfg->region : "default");

    self->by_id = zhashx_new();
    self->by_key = zhashx_new();
    self->below = zhashx_new();
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->by_id || !self->by_key || !self->below || !self->router) {
        sw_err(err, errlen, "out of memory or sockets");
        sw_broker_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->by_id, s_node_free);
    zhashx_set_destructor(self->below, s_route_free);
    sw_wire_socket_setup(self->router, 0, self->cfg.hwm);
    zsock_set_sndtimeo(self->router, 0); /* one slow peer never stalls the loop */
    if (zsock_bind(self->router, "%s", cfg->bind) < 0) {
        sw_err(err, errlen, "cannot bind %s: %s", cfg->bind, zmq_strerror(zmq_errno()));
        sw_broker_destroy(&self);
        return NULL;
    }
    char *ep = zsock_last_endpoint(self->router);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", ep ? ep : cfg->bind);
    zstr_free(&ep);
    if (cfg->parent && cfg->parent[0]) {
        sw_broker_client_config_t pc = {.endpoint = cfg->parent,
                                        .role = SWISD__V1__ROLE__ROLE_BROKER,
                                        .node_id = self->id,
                                        .region = self->region,
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
    if (self->above)
        swisd__v1__body__free_unpacked(self->above, NULL);
    zsock_destroy(&self->router);
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
    sw_log(SW_LOG_INFO, "broker %.8s: %s %s %s", self->id, s_role_name(n->role), n->id, why);
    if (zhashx_lookup(self->by_key, n->key) == n)
        zhashx_delete(self->by_key, n->key);
    if (n->role == SWISD__V1__ROLE__ROLE_BROKER)
        s_routes_drop(self, n->id, true);
    zhashx_delete(self->by_id, n->id);
}

static void s_learn(sw_broker_t *self, const char *node, const s_node_t *child, int64_t now)
{
    if (zhashx_lookup(self->by_id, node))
        return; /* a local node (should not come from a child) */
    s_route_t *r = zhashx_lookup(self->below, node);
    if (r) {
        if (r->learned && strcmp(r->child, child->id) != 0)
            snprintf(r->child, sizeof r->child, "%s", child->id);
        if (!strcmp(r->child, child->id))
            r->seen_ms = now;
        return;
    }
    if (zhashx_size(self->below) >= S_MAX_ROUTES)
        return;
    r = calloc(1, sizeof *r);
    if (!r)
        return;
    snprintf(r->child, sizeof r->child, "%s", child->id);
    r->seen_ms = now;
    r->learned = true;
    zhashx_insert(self->below, node, r);
}

static void s_routes_from_report(sw_broker_t *self, const s_node_t *child, int64_t now)
{
    s_routes_drop(self, child->id, false);
    const Swisd__V1__DirectoryReport *rep = child->report->directory_report;
    for (size_t i = 0; i < rep->n_stages + rep->n_nodes; i++) {
        const char *id = i < rep->n_stages ? rep->stages[i]->node_id : rep->nodes[i - rep->n_stages];
        if (!id || !id[0] || zhashx_lookup(self->by_id, id))
            continue;
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
}

/* ---- sending ----------------------------------------------------------------- */

/*  Moves body into a message {to's routing id, header, body} on the ROUTER.
 *  Returns 0 (then *body is NULL) or -1 with errno (EHOSTUNREACH: peer gone;
 *  EAGAIN: its queue is full) and *body still owned by the caller. */
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
        return -1;
    }
    /* once the first part is queued, ZeroMQ accepts the rest of the message */
    if (zframe_send(&hf, self->router, ZFRAME_MORE) != 0 || zframe_send(body, self->router, 0) != 0) {
        sw_log(SW_LOG_ERROR, "broker %.8s: partial send to %s: %s", self->id, to->id, zmq_strerror(zmq_errno()));
        zframe_destroy(&hf);
        return -1;
    }
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
    sw_log(SW_LOG_DEBUG, "broker %.8s: error %s to %s: %s", self->id, sw_wire_error_name(code), src, text);
    if (from)
        sw_wire_send_error(self->router, from->identity, self->id, src, code, NULL, 0, "%s", text);
    else if (self->parent)
        sw_broker_client_send_error(self->parent, src, code, NULL, 0, "%s", text);
}

static int s_send_body(sw_broker_t *self, s_node_t *to, const char *dst, const Swisd__V1__Body *body)
{
    return sw_wire_send(self->router, to->identity, self->id, dst, 0, body);
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
        s.age_ms = s_age(0, now - n->last_ms);
        s.rtt_ms = n->rtt_ms;
        s.broker_id = self->id;
        s_dir_add(d, &s);
    }
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id)) {
        if (!n->report || n == except)
            continue;
        const Swisd__V1__DirectoryReport *r = n->report->directory_report;
        for (size_t i = 0; i < r->n_stages; i++) {
            if (!s_matches(r->stages[i]->model, model_id, checksum))
                continue;
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
            sw_log(SW_LOG_WARN, "broker %.8s: directory reply to %s not sent: %s", self->id, to->id,
                   zmq_strerror(zmq_errno()));
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
        /* gateways and clients too, so the parent can route replies to them */
        char **nodes = calloc(zhashx_size(self->by_id) + 1, sizeof *nodes);
        size_t n_nodes = 0;
        for (s_node_t *n = zhashx_first(self->by_id); n && nodes; n = zhashx_next(self->by_id))
            if (n->role == SWISD__V1__ROLE__ROLE_GATEWAY || n->role == SWISD__V1__ROLE__ROLE_CLIENT)
                nodes[n_nodes++] = n->id;
        r.nodes = nodes;
        r.n_nodes = n_nodes;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_REPORT;
        b.directory_report = &r;
        if (sw_broker_client_send(self->parent, "", &b) != 0)
            sw_log(SW_LOG_DEBUG, "broker %.8s: directory report not sent (parent queue full)", self->id);
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
            s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "queue to node %s is full", dst);
        } else {
            s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "relay to %s failed: %s", dst,
                         zmq_strerror(errno));
        }
        return;
    }
    if (self->parent && from) {
        if (sw_broker_client_relay(self->parent, src, dst, nh, &m->body_frame) != 0)
            s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED,
                         "link to the parent broker is full; %s not reached", dst);
        return;
    }
    s_error_back(self, from, src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "unknown destination %s", dst);
}

/* ---- messages to the broker itself ------------------------------------------------ */

static void s_on_hello(sw_broker_t *self, s_node_t *from, sw_wire_msg_t *m, const char *key)
{
    const Swisd__V1__Hello *h = m->body->hello;
    const int64_t now = s_now_ms();
    s_node_t *same = zhashx_lookup(self->by_id, h->node_id);
    if (from && from != same) /* this connection registers under a new id */
        s_node_remove(self, from, "re-registered under a new id; old entry dropped");
    if (!same && (int) zhashx_size(self->by_id) >= self->cfg.max_nodes) {
        sw_log(SW_LOG_WARN, "broker %.8s: registry full (%d nodes); refused %s", self->id, self->cfg.max_nodes,
               h->node_id);
        sw_wire_send_error(self->router, m->identity, self->id, h->node_id, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED,
                           NULL, 0, "broker is full (%d nodes)", self->cfg.max_nodes);
        return;
    }
    const bool fresh = !same;
    s_node_t *n = same;
    if (!n) {
        if (!(n = calloc(1, sizeof *n)))
            return;
        snprintf(n->id, sizeof n->id, "%s", h->node_id);
        swisd__v1__load__init(&n->load);
        zhashx_insert(self->by_id, n->id, n);
    }
    if (!n->identity || strcmp(n->key, key) != 0) {
        if (n->identity && zhashx_lookup(self->by_key, n->key) == n)
            zhashx_delete(self->by_key, n->key);
        zframe_destroy(&n->identity);
        n->identity = zframe_dup(m->identity);
        snprintf(n->key, sizeof n->key, "%s", key);
        zhashx_update(self->by_key, n->key, n);
        if (!fresh)
            sw_log(SW_LOG_INFO, "broker %.8s: %s %s re-registered from a new connection", self->id,
                   s_role_name(h->role), n->id);
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
    n->hello = m->body; /* keep the unpacked Hello */
    m->body = NULL;
    n->last_ms = now;
    if (fresh) {
        const Swisd__V1__Hello *hh = n->hello->hello;
        if (hh->role == SWISD__V1__ROLE__ROLE_STAGE)
            sw_log(SW_LOG_INFO, "broker %.8s: stage %s registered (region %s, model %s, layers [%u, %u)%s%s)",
                   self->id, n->id, n->region, hh->model && hh->model->id ? hh->model->id : "?", hh->layers->begin,
                   hh->layers->end, hh->topic && hh->topic[0] ? ", topic " : "", hh->topic ? hh->topic : "");
        else
            sw_log(SW_LOG_INFO, "broker %.8s: %s %s registered (region %s)", self->id, s_role_name(hh->role), n->id,
                   n->region);
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
        sw_log(SW_LOG_WARN, "broker %.8s: HelloAck to %s not sent: %s", self->id, n->id, zmq_strerror(zmq_errno()));
}

static void s_on_own(sw_broker_t *self, s_node_t *n, sw_wire_msg_t *m, const char *key)
{
    int code = 0;
    char err[256];
    const Swisd__V1__Body *body = sw_wire_body(m, &code, err, sizeof err);
    if (!body) {
        sw_log(SW_LOG_WARN, "broker %.8s: bad body from %s: %s", self->id, n->id, err);
        sw_wire_send_error(self->router, m->identity, self->id, n->id, code, NULL, 0, "%s", err);
        return;
    }
    Swisd__V1__Body reply = SWISD__V1__BODY__INIT;
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
        if (n->role != SWISD__V1__ROLE__ROLE_BROKER) {
            sw_wire_send_error(self->router, m->identity, self->id, n->id, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                               NULL, 0, "only brokers send directory reports (you registered as %s)",
                               s_role_name(n->role));
            break;
        }
        if (n->report)
            swisd__v1__body__free_unpacked(n->report, NULL);
        n->report = m->body; /* keep it */
        m->body = NULL;
        n->report_ms = s_now_ms();
        s_routes_from_report(self, n, n->report_ms);
        s_send_directory(self, n, n->id, NULL, NULL, n); /* every region but the child's own */
        break;
    case SWISD__V1__BODY__MSG_ERROR:
        sw_log(SW_LOG_DEBUG, "broker %.8s: error from %s: %s: %s", self->id, n->id, sw_wire_error_name(body->error->code),
               body->error->message ? body->error->message : "");
        break;
    default:
        sw_wire_send_error(self->router, m->identity, self->id, n->id, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL,
                           0, "a broker does not serve %s", sw_wire_kind_name(body));
        break;
    }
}

/* ---- socket handlers ---------------------------------------------------------- */

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
        sw_log(SW_LOG_WARN, "broker %.8s: bad frame from %s: %s", self->id, from ? from->id : "an unregistered peer",
               err);
        sw_wire_send_error(self->router, m.identity, self->id, from ? from->id : src, code, NULL, 0, "%s", err);
        sw_wire_msg_free(&m);
        return;
    }
    const Swisd__V1__Header *h = m.header;
    const char *dst = h->dst ? h->dst : "";
    const bool for_me = !dst[0] || !strcmp(dst, self->id);
    if (!from) {
        const Swisd__V1__Body *body = sw_wire_body(&m, &code, err, sizeof err);
        if (!body) {
            sw_log(SW_LOG_WARN, "broker %.8s: bad body from an unregistered peer: %s", self->id, err);
            sw_wire_send_error(self->router, m.identity, self->id, h->src, code, NULL, 0, "%s", err);
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
        const bool is_broker = from->role == SWISD__V1__ROLE__ROLE_BROKER;
        const char *src = is_broker && h->src && h->src[0] ? h->src : from->id;
        if (is_broker && strcmp(src, from->id) != 0)
            s_learn(self, src, from, from->last_ms);
        s_route(self, from, src, dst, h->hops, &m);
    }
    sw_wire_msg_free(&m);
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
            if (self->above)
                swisd__v1__body__free_unpacked(self->above, NULL);
            self->above = m.body;
            m.body = NULL;
            self->above_ms = s_now_ms();
        } else if (b && b->msg_case == SWISD__V1__BODY__MSG_ERROR) {
            sw_log(SW_LOG_INFO, "broker %.8s: error from the parent side (%s): %s: %s", self->id, h->src ? h->src : "",
                   sw_wire_error_name(b->error->code), b->error->message ? b->error->message : "");
        } else {
            sw_log(SW_LOG_DEBUG, "broker %.8s: ignored %s from the parent", self->id, sw_wire_kind_name(b));
        }
    } else {
        s_route(self, NULL, h->src ? h->src : "", dst, h->hops, &m);
    }
    sw_wire_msg_free(&m);
}

/* ---- timers ----------------------------------------------------------------------- */

static void s_expire(sw_broker_t *self, int64_t now)
{
    zlist_t *gone = zlist_new();
    if (!gone)
        return;
    for (s_node_t *n = zhashx_first(self->by_id); n; n = zhashx_next(self->by_id))
        if (now - n->last_ms > self->cfg.expiry_ms)
            zlist_append(gone, n);
    char why[64];
    snprintf(why, sizeof why, "expired (silent for more than %d ms)", self->cfg.expiry_ms);
    for (s_node_t *n = zlist_first(gone); n; n = zlist_next(gone))
        s_node_remove(self, n, why);
    zlist_destroy(&gone);
    if (self->above && (now - self->above_ms > self->cfg.expiry_ms || !sw_broker_client_registered(self->parent))) {
        sw_log(SW_LOG_INFO, "broker %.8s: other regions' directory is stale; dropped", self->id);
        swisd__v1__body__free_unpacked(self->above, NULL);
        self->above = NULL;
    }
}

static void s_gc_routes(sw_broker_t *self, int64_t now)
{
    zlist_t *gone = zlist_new();
    if (!gone)
        return;
    for (s_route_t *r = zhashx_first(self->below); r; r = zhashx_next(self->below))
        if ((r->learned && now - r->seen_ms > S_LEARNED_TTL_MS) || !zhashx_lookup(self->by_id, r->child))
            zlist_append(gone, (void *) zhashx_cursor(self->below));
    for (const char *k = zlist_first(gone); k; k = zlist_next(gone))
        zhashx_delete(self->below, k);
    zlist_destroy(&gone);
}

static void s_timers(sw_broker_t *self)
{
    const int64_t now = s_now_ms();
    if (now >= self->next_expiry_ms) {
        s_expire(self, now);
        int every = self->cfg.heartbeat_ms < self->cfg.expiry_ms / 4 ? self->cfg.heartbeat_ms : self->cfg.expiry_ms / 4;
        self->next_expiry_ms = now + (every > 10 ? every : 10);
    }
    if (now >= self->next_gc_ms) {
        s_gc_routes(self, now);
        self->next_gc_ms = now + 1000;
    }
    if (self->parent) {
        sw_broker_client_tick(self->parent);
        uint64_t regs = sw_broker_client_registrations(self->parent);
        if (sw_broker_client_registered(self->parent) && (now >= self->next_report_ms || regs != self->parent_regs)) {
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
    zmq_pollitem_t items[2] = {{zsock_resolve(self->router), 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0}};
    int n_items = 1;
    if (self->parent) {
        items[1].socket = zsock_resolve(sw_broker_client_sock(self->parent));
        n_items = 2;
    }
    int rc = zmq_poll(items, n_items, timeout);
    if (rc < 0 && zmq_errno() == ETERM)
        return -1;
    if (rc > 0) {
        if (items[0].revents & ZMQ_POLLIN)
            for (int i = 0; i < S_BATCH && (zsock_events(self->router) & ZMQ_POLLIN); i++)
                s_on_router(self);
        if (n_items > 1 && (items[1].revents & ZMQ_POLLIN)) {
            zsock_t *ps = sw_broker_client_sock(self->parent);
            for (int i = 0; i < S_BATCH && (zsock_events(ps) & ZMQ_POLLIN); i++)
                s_on_parent(self);
        }
    }
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
