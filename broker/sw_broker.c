/*  sw_broker.c: registry, directory, relay and tiers (see sw_broker.h). */
#include "sw_broker.h"

#include <czmq.h>
#include <string.h>

#include "sw_broker_client.h"
#include "sw_common.h"
#include "sw_wire.h"

typedef struct {
    char id[SW_WIRE_MAX_ID + 1];      /* node id (= its routing id) */
    zframe_t *identity;               /* ROUTER routing id */
    Swisd__V1__Body *hello;           /* its Hello (owned unpacked body) */
    Swisd__V1__Load load;             /* from the last heartbeat */
    uint64_t last_ns;                 /* last frame heard */
    Swisd__V1__Body *report;          /* child brokers: their last DirectoryReport */
} s_node_t;

struct sw_broker_t {
    sw_broker_config_t cfg;
    char id[SW_WIRE_MAX_ID + 1];
    char region[SW_WIRE_MAX_NAME + 1];
    char endpoint[256];
    zsock_t *router;
    zhashx_t *nodes;                  /* node id -> s_node_t */
    sw_broker_client_t *parent;       /* NULL at the root */
    Swisd__V1__Body *remote;          /* parent's last DirectoryReply (other regions) */
    uint64_t next_report_ns, next_expiry_ns;
};

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

sw_broker_t *sw_broker_new(const sw_broker_config_t *cfg, char *err, size_t errlen)
{
    sw_broker_t *b = calloc(1, sizeof *b);
    if (!b) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    b->cfg = *cfg;
    if (b->cfg.heartbeat_ms <= 0)
        b->cfg.heartbeat_ms = 1000;
    if (b->cfg.expiry_ms <= 0)
        b->cfg.expiry_ms = 3500;
    if (b->cfg.max_nodes <= 0)
        b->cfg.max_nodes = 10000;
    if (cfg->id && cfg->id[0])
        snprintf(b->id, sizeof b->id, "%s", cfg->id);
    else
        sw_wire_new_id(b->id, sizeof b->id);
    snprintf(b->region, sizeof b->region, "%s", cfg->region && cfg->region[0] ? cfg->region : "default");
    b->nodes = zhashx_new();
    zhashx_set_destructor(b->nodes, s_node_free);
    b->router = zsock_new(ZMQ_ROUTER);
    if (!b->nodes || !b->router) {
        sw_err(err, errlen, "cannot create sockets");
        sw_broker_destroy(&b);
        return NULL;
    }
    sw_wire_socket_setup(b->router, 0, 10000);
    if (zsock_bind(b->router, "%s", cfg->bind) < 0) {
        sw_err(err, errlen, "cannot bind '%s': %s", cfg->bind, zmq_strerror(zmq_errno()));
        sw_broker_destroy(&b);
        return NULL;
    }
    snprintf(b->endpoint, sizeof b->endpoint, "%s", zsock_endpoint(b->router));
    if (cfg->parent && cfg->parent[0]) {
        sw_broker_client_config_t pc = {.endpoint = cfg->parent, .role = SWISD__V1__ROLE__ROLE_BROKER,
                                        .node_id = b->id, .region = b->region, .heartbeat_ms = b->cfg.heartbeat_ms};
        if (!(b->parent = sw_broker_client_new(&pc, err, errlen))) {
            sw_broker_destroy(&b);
            return NULL;
        }
    }
    return b;
}

void sw_broker_destroy(sw_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_broker_t *b = *self_p;
    sw_broker_client_destroy(&b->parent);
    zhashx_destroy(&b->nodes);
    if (b->remote)
        swisd__v1__body__free_unpacked(b->remote, NULL);
    zsock_destroy(&b->router);
    free(b);
    *self_p = NULL;
}

const char *sw_broker_endpoint(const sw_broker_t *self) { return self->endpoint; }
const char *sw_broker_id(const sw_broker_t *self) { return self->id; }

/* ---- directory ------------------------------------------------------------ */

static bool s_is_stage(const s_node_t *n)
{
    return n->hello && n->hello->hello->role == SWISD__V1__ROLE__ROLE_STAGE;
}

typedef struct {
    Swisd__V1__StageInfo **items; /* pointers into owned or borrowed structs */
    Swisd__V1__StageInfo *local;  /* owned array for local stages */
    size_t n, cap;
    size_t n_local;
} s_list_t;

static bool s_matches(const Swisd__V1__ModelRef *m, const char *model_id, const char *checksum)
{
    if (model_id && model_id[0] && (!m || !m->id || strcmp(m->id, model_id)))
        return false;
    if (checksum && checksum[0] && (!m || !m->checksum || strcmp(m->checksum, checksum)))
        return false;
    return true;
}

static void s_list_add(s_list_t *l, Swisd__V1__StageInfo *s)
{
    if (l->n < l->cap)
        l->items[l->n++] = s;
}

/* Local stages first (built from their Hello and heartbeat), then those of
 * child regions (root) and, from the parent, of other regions. Filters by
 * model id / checksum when given; skips the child `except`. */
static int s_collect(sw_broker_t *b, s_list_t *l, const char *model_id, const char *checksum, const s_node_t *except,
                     bool include_remote)
{
    size_t cap = zhashx_size(b->nodes);
    for (s_node_t *n = zhashx_first(b->nodes); n; n = zhashx_next(b->nodes))
        if (n->report)
            cap += n->report->directory_report->n_stages;
    if (include_remote && b->remote)
        cap += b->remote->directory_reply->n_stages;
    if (cap > SW_WIRE_MAX_STAGES)
        cap = SW_WIRE_MAX_STAGES;
    l->items = calloc(cap + 1, sizeof *l->items);
    l->local = calloc(zhashx_size(b->nodes) + 1, sizeof *l->local);
    l->cap = cap;
    if (!l->items || !l->local)
        return -1;
    const uint64_t now = sw_now_ns();
    for (s_node_t *n = zhashx_first(b->nodes); n; n = zhashx_next(b->nodes)) {
        if (!s_is_stage(n) || !s_matches(n->hello->hello->model, model_id, checksum))
            continue;
        Swisd__V1__StageInfo *s = &l->local[l->n_local++];
        swisd__v1__stage_info__init(s);
        const Swisd__V1__Hello *h = n->hello->hello;
        s->node_id = n->id;
        s->region = h->region;
        s->model = h->model;
        s->layers = h->layers;
        s->caps = h->caps;
        s->load = &n->load;
        s->topic = h->topic;
        s->age_ms = (uint32_t) ((now - n->last_ns) / 1000000ull);
        s->broker_id = b->id;
        s_list_add(l, s);
    }
    for (s_node_t *n = zhashx_first(b->nodes); n; n = zhashx_next(b->nodes)) {
        if (!n->report || n == except)
            continue;
        const Swisd__V1__DirectoryReport *r = n->report->directory_report;
        for (size_t i = 0; i < r->n_stages; i++)
            if (s_matches(r->stages[i]->model, model_id, checksum))
                s_list_add(l, r->stages[i]);
    }
    if (include_remote && b->remote) {
        const Swisd__V1__DirectoryReply *r = b->remote->directory_reply;
        for (size_t i = 0; i < r->n_stages; i++)
            if (s_matches(r->stages[i]->model, model_id, checksum))
                s_list_add(l, r->stages[i]);
    }
    return 0;
}

static void s_list_free(s_list_t *l)
{
    free(l->items);
    free(l->local);
    memset(l, 0, sizeof *l);
}

static void s_send_directory(sw_broker_t *b, zframe_t *identity, const char *dst, const char *model_id,
                             const char *checksum, const s_node_t *except, bool include_remote)
{
    s_list_t l = {0};
    if (s_collect(b, &l, model_id, checksum, except, include_remote) == 0) {
        Swisd__V1__DirectoryReply r = SWISD__V1__DIRECTORY_REPLY__INIT;
        r.stages = l.items;
        r.n_stages = l.n;
        r.broker_id = b->id;
        r.region = b->region;
        Swisd__V1__Body body = SWISD__V1__BODY__INIT;
        body.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_REPLY;
        body.directory_reply = &r;
        sw_wire_send(b->router, identity, b->id, dst, 0, &body);
    }
    s_list_free(&l);
}

/* Which child broker (root) or which remote region holds node `id`. */
static s_node_t *s_child_holding(sw_broker_t *b, const char *id)
{
    for (s_node_t *n = zhashx_first(b->nodes); n; n = zhashx_next(b->nodes)) {
        if (!n->report)
            continue;
        const Swisd__V1__DirectoryReport *r = n->report->directory_report;
        for (size_t i = 0; i < r->n_stages; i++)
            if (!strcmp(r->stages[i]->node_id, id))
                return n;
    }
    return NULL;
}

/* ---- messages from nodes -------------------------------------------------- */

static void s_error_to(sw_broker_t *b, zframe_t *identity, const char *dst, int code, const char *fmt, const char *a)
{
    if (identity)
        sw_wire_send_error(b->router, identity, b->id, dst, code, NULL, 0, fmt, a);
    else if (b->parent)
        sw_broker_client_send_error(b->parent, dst, code, NULL, 0, fmt, a);
}

/* Delivers a frame for node dst: local, child region, parent, or error. */
static void s_route(sw_broker_t *b, sw_wire_msg_t *m, bool from_parent)
{
    const Swisd__V1__Header *h = m->header;
    const uint32_t hops = h->hops + 1;
    s_node_t *n = zhashx_lookup(b->nodes, h->dst);
    zframe_t *src_identity = from_parent ? NULL : m->identity;
    if (hops > SW_WIRE_MAX_HOPS) {
        s_error_to(b, src_identity, h->src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE,
                   "message to %s crossed too many brokers", h->dst);
        return;
    }
    if (!n)
        n = s_child_holding(b, h->dst);
    if (n) {
        if (sw_wire_relay(b->router, n->identity, h->src, h->dst, hops, m->body_frame) != 0) {
            sw_log(SW_LOG_WARN, "broker %.8s: node %.8s is unreachable; forgetting it", b->id, n->id);
            s_error_to(b, src_identity, h->src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "node %s is unreachable",
                       h->dst);
            zhashx_delete(b->nodes, n->id);
        }
        return;
    }
    if (b->parent && !from_parent) {
        if (sw_wire_relay(sw_broker_client_sock(b->parent), NULL, h->src, h->dst, hops, m->body_frame) != 0)
            s_error_to(b, src_identity, h->src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE,
                       "parent broker unreachable for %s", h->dst);
        return;
    }
    s_error_to(b, src_identity, h->src, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "unknown destination %s", h->dst);
}

static void s_on_hello(sw_broker_t *b, sw_wire_msg_t *m)
{
    const Swisd__V1__Hello *h = m->body->hello;
    s_node_t *old = zhashx_lookup(b->nodes, h->node_id);
    if (!old && (int) zhashx_size(b->nodes) >= b->cfg.max_nodes) {
        sw_wire_send_error(b->router, m->identity, b->id, h->node_id, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, NULL,
                           0, "broker is full (%d nodes)", b->cfg.max_nodes);
        return;
    }
    if (!zframe_streq(m->identity, h->node_id)) {
        sw_wire_send_error(b->router, m->identity, b->id, h->node_id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED,
                           NULL, 0, "node id %s does not match the connection's routing id", h->node_id);
        return;
    }
    s_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return;
    snprintf(n->id, sizeof n->id, "%s", h->node_id);
    n->identity = zframe_dup(m->identity);
    n->hello = m->body;
    m->body = NULL; /* keep the unpacked Hello */
    swisd__v1__load__init(&n->load);
    n->last_ns = sw_now_ns();
    const Swisd__V1__Hello *hh = n->hello->hello;
    if (!old)
        sw_log(SW_LOG_INFO, "broker %.8s: %s %.8s joined (region %s%s%s)", b->id,
               hh->role == SWISD__V1__ROLE__ROLE_STAGE     ? "stage"
               : hh->role == SWISD__V1__ROLE__ROLE_GATEWAY ? "gateway"
               : hh->role == SWISD__V1__ROLE__ROLE_BROKER  ? "broker"
                                                           : "node",
               n->id, hh->region, hh->topic && hh->topic[0] ? ", " : "", hh->topic ? hh->topic : "");
    zhashx_update(b->nodes, n->id, n); /* replaces (and frees) an old record */
    Swisd__V1__HelloAck ack = SWISD__V1__HELLO_ACK__INIT;
    ack.broker_id = b->id;
    ack.region = b->region;
    ack.heartbeat_ms = (uint32_t) b->cfg.heartbeat_ms;
    ack.expiry_ms = (uint32_t) b->cfg.expiry_ms;
    Swisd__V1__Body body = SWISD__V1__BODY__INIT;
    body.msg_case = SWISD__V1__BODY__MSG_HELLO_ACK;
    body.hello_ack = &ack;
    sw_wire_send(b->router, m->identity, b->id, n->id, 0, &body);
}

static void s_on_router(sw_broker_t *b)
{
    sw_wire_msg_t m;
    int code;
    char err[256];
    if (sw_wire_recv(b->router, true, &m, &code, err, sizeof err) != 0) {
        if (m.identity)
            sw_wire_send_error(b->router, m.identity, b->id, m.header ? m.header->src : "", code, NULL, 0, "%s", err);
        sw_wire_msg_free(&m);
        return;
    }
    /* who is it? */
    char ident[SW_WIRE_MAX_ID + 1];
    size_t il = zframe_size(m.identity) < SW_WIRE_MAX_ID ? zframe_size(m.identity) : SW_WIRE_MAX_ID;
    memcpy(ident, zframe_data(m.identity), il);
    ident[il] = 0;
    s_node_t *n = zhashx_lookup(b->nodes, ident);
    if (n && !zframe_eq(n->identity, m.identity))
        n = NULL;
    const bool for_me = m.header->dst[0] == 0 || !strcmp(m.header->dst, b->id);
    if (for_me || !n) {
        const Swisd__V1__Body *body = sw_wire_body(&m, &code, err, sizeof err);
        if (!body) {
            sw_wire_send_error(b->router, m.identity, b->id, m.header->src, code, NULL, 0, "%s", err);
            sw_wire_msg_free(&m);
            return;
        }
        if (body->msg_case == SWISD__V1__BODY__MSG_HELLO) {
            s_on_hello(b, &m);
            sw_wire_msg_free(&m);
            return;
        }
        if (!n) {
            sw_wire_send_error(b->router, m.identity, b->id, m.header->src, SWISD__V1__ERROR_CODE__ERROR_UNKNOWN_NODE,
                               NULL, 0, "unknown node: send Hello first");
            sw_wire_msg_free(&m);
            return;
        }
    }
    if (strcmp(m.header->src, n->id) != 0) {
        sw_wire_send_error(b->router, m.identity, b->id, n->id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED, NULL, 0,
                           "header src %s is not this connection's node id", m.header->src);
        sw_wire_msg_free(&m);
        return;
    }
    n->last_ns = sw_now_ns();
    if (!for_me) {
        s_route(b, &m, false);
        sw_wire_msg_free(&m);
        return;
    }
    const Swisd__V1__Body *body = m.body;
    Swisd__V1__Body reply = SWISD__V1__BODY__INIT;
    switch (body->msg_case) {
    case SWISD__V1__BODY__MSG_HEARTBEAT: {
        if (body->heartbeat->load) {
            n->load.active_sessions = body->heartbeat->load->active_sessions;
            n->load.queued_requests = body->heartbeat->load->queued_requests;
            n->load.kv_bytes = body->heartbeat->load->kv_bytes;
            n->load.busy = body->heartbeat->load->busy;
        }
        Swisd__V1__HeartbeatAck ack = SWISD__V1__HEARTBEAT_ACK__INIT;
        ack.seq = body->heartbeat->seq;
        ack.echo_sent_us = body->heartbeat->sent_us;
        reply.msg_case = SWISD__V1__BODY__MSG_HEARTBEAT_ACK;
        reply.heartbeat_ack = &ack;
        sw_wire_send(b->router, m.identity, b->id, n->id, 0, &reply);
        break;
    }
    case SWISD__V1__BODY__MSG_GOODBYE:
        sw_log(SW_LOG_INFO, "broker %.8s: node %.8s left (%s)", b->id, n->id, body->goodbye->reason);
        zhashx_delete(b->nodes, n->id);
        break;
    case SWISD__V1__BODY__MSG_DIRECTORY_QUERY:
        s_send_directory(b, m.identity, n->id, body->directory_query->model_id, body->directory_query->checksum, NULL,
                         true);
        break;
    case SWISD__V1__BODY__MSG_DIRECTORY_REPORT:
        if (n->hello->hello->role != SWISD__V1__ROLE__ROLE_BROKER) {
            sw_wire_send_error(b->router, m.identity, b->id, n->id, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED, NULL,
                               0, "only brokers report directories");
            break;
        }
        if (n->report)
            swisd__v1__body__free_unpacked(n->report, NULL);
        n->report = m.body;
        m.body = NULL;
        /* answer with every region but the child's own */
        s_send_directory(b, m.identity, n->id, NULL, NULL, n, true);
        break;
    case SWISD__V1__BODY__MSG_ERROR:
        sw_log(SW_LOG_DEBUG, "broker %.8s: error from %.8s: %s", b->id, n->id, body->error->message);
        break;
    default:
        sw_wire_send_error(b->router, m.identity, b->id, n->id, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL, 0,
                           "a broker does not serve %s", sw_wire_kind_name(body));
        break;
    }
    sw_wire_msg_free(&m);
}

/* Frames from the parent broker: directory replies for us, or frames to
 * relay down to a local node. */
static void s_on_parent(sw_broker_t *b)
{
    sw_wire_msg_t m;
    if (sw_broker_client_recv(b->parent, &m) != 1)
        return;
    const bool for_me = m.header->dst[0] == 0 || !strcmp(m.header->dst, b->id);
    if (for_me && m.body && m.body->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPLY) {
        if (b->remote)
            swisd__v1__body__free_unpacked(b->remote, NULL);
        b->remote = m.body;
        m.body = NULL;
    } else if (!for_me) {
        s_route(b, &m, true);
    }
    sw_wire_msg_free(&m);
}

static void s_expire(sw_broker_t *b)
{
    const uint64_t now = sw_now_ns(), limit = (uint64_t) b->cfg.expiry_ms * 1000000ull;
    zlist_t *gone = zlist_new();
    for (s_node_t *n = zhashx_first(b->nodes); n; n = zhashx_next(b->nodes))
        if (now - n->last_ns > limit)
            zlist_append(gone, n->id);
    for (char *id = zlist_first(gone); id; id = zlist_next(gone)) {
        sw_log(SW_LOG_INFO, "broker %.8s: node %.8s expired (silent for more than %d ms)", b->id, id, b->cfg.expiry_ms);
        zhashx_delete(b->nodes, id);
    }
    zlist_destroy(&gone);
    if (b->parent && !sw_broker_client_registered(b->parent) && b->remote) {
        swisd__v1__body__free_unpacked(b->remote, NULL);
        b->remote = NULL;
    }
}

static void s_report_up(sw_broker_t *b)
{
    if (!b->parent || !sw_broker_client_registered(b->parent))
        return;
    s_list_t l = {0};
    if (s_collect(b, &l, NULL, NULL, NULL, false) == 0) {
        Swisd__V1__DirectoryReport r = SWISD__V1__DIRECTORY_REPORT__INIT;
        r.region = b->region;
        r.stages = l.items;
        r.n_stages = l.n;
        Swisd__V1__Body body = SWISD__V1__BODY__INIT;
        body.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_REPORT;
        body.directory_report = &r;
        sw_broker_client_send(b->parent, "", &body);
    }
    s_list_free(&l);
}

int sw_broker_run(sw_broker_t *self, volatile int *stop)
{
    zpoller_t *poller = zpoller_new(self->router, NULL);
    if (self->parent)
        zpoller_add(poller, sw_broker_client_sock(self->parent));
    while (!(stop && *stop) && !zsys_interrupted) {
        int timeout = self->cfg.heartbeat_ms / 4 > 0 ? self->cfg.heartbeat_ms / 4 : 1;
        if (self->parent) {
            int t = sw_broker_client_timeout_ms(self->parent);
            timeout = t < timeout ? t : timeout;
        }
        void *which = zpoller_wait(poller, timeout);
        if (which == self->router) {
            for (int i = 0; i < 1000 && (zsock_events(self->router) & ZMQ_POLLIN); i++)
                s_on_router(self);
        } else if (self->parent && which == sw_broker_client_sock(self->parent)) {
            for (int i = 0; i < 1000 && (zsock_events(which) & ZMQ_POLLIN); i++)
                s_on_parent(self);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        const uint64_t now = sw_now_ns();
        if (self->parent) {
            sw_broker_client_tick(self->parent);
            if (now >= self->next_report_ns) {
                s_report_up(self);
                self->next_report_ns = now + (uint64_t) self->cfg.heartbeat_ms * 1000000ull;
            }
        }
        if (now >= self->next_expiry_ns) {
            s_expire(self);
            self->next_expiry_ns = now + (uint64_t) (self->cfg.heartbeat_ms / 4 + 1) * 1000000ull;
        }
    }
    zpoller_destroy(&poller);
    return 0;
}
