/*  sw_broker_client.c: a node's link to its broker (registration, liveness,
 *  sending and receiving through the broker). See sw_broker_client.h. */
#include "sw_broker_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_endpoint.h"

struct sw_broker_client_t {
    zsock_t *sock;                            /* DEALER connected to the broker */
    char id[SW_WIRE_MAX_ID + 1];              /* our node id */
    char region[SW_WIRE_MAX_NAME + 1];        /* announced region */
    Swisd__V1__Role role;                     /* announced role */
    Swisd__V1__ModelRef *model;               /* owned deep copy or NULL */
    Swisd__V1__Capabilities *caps;            /* owned deep copy or NULL */
    uint32_t layer_begin, layer_end;          /* stages: [begin, end) */
    char topic[SW_WIRE_MAX_NAME + 1];         /* stages: model/<id>/layers/<a>-<b-1>; "" if none */
    Swisd__V1__Load load;                     /* reported in heartbeats */
    int cfg_heartbeat_ms;                     /* asked by the owner */
    int heartbeat_ms;                         /* in force (the broker's HelloAck wins) */
    int expiry_ms;                            /* broker silence after which we re-register */
    bool registered;                          /* HelloAck seen, no UNKNOWN_NODE since */
    bool relay_mode;                          /* hand back foreign messages without parsing bodies */
    uint64_t hb_seq;                          /* heartbeat sequence number */
    int64_t next_hello_us;                    /* when to (re)send Hello while unregistered */
    int64_t next_hb_us;                       /* when to send the next Heartbeat */
    int64_t last_heard_us;                    /* last sign of life of the broker (see s_from_broker) */
    char endpoints[8][SW_ENDPOINT_MAX_ADDR];                   /* brokers of the region, tried in turn ("tcp://HOST:PORT") */
    uint8_t server_keys[8][32];               /* their CURVE keys (secure) */
    const sw_identity_t *identity;            /* our key, borrowed; NULL: insecure */
    int64_t dialed_us;                        /* when the current broker was dialed */
    int64_t answered_us;                      /* last refusal of our Hello by the broker (0: none) */
    sw_log_gate_t gate_hs;                    /* "no handshake" hints */
    int n_endpoints, current;                 /* how many; the one connected */
    double rtt_ms;                            /* last HeartbeatAck round trip */
    uint64_t registrations;                   /* HelloAcks that (re)registered us */
    char broker_id[SW_WIRE_MAX_ID + 1];       /* from HelloAck */
    char broker_region[SW_WIRE_MAX_NAME + 1]; /* from HelloAck */
    char display_name[SW_WIRE_MAX_DISPLAY_NAME + 1]; /* ours, in Hello ("" none) */
    sw_log_gate_t gate_bad;                   /* malformed messages (one log line per second) */
    sw_log_gate_t gate_reg;                   /* refused Hellos, forged registration traffic */
};

static int64_t s_now_us(void)
{
    return (int64_t) (sw_now_ns() / 1000);
}

static void s_copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/*  Deep copy of a protobuf-c message through pack + unpack (messages here are
 *  small: a ModelRef or Capabilities). Returns NULL on allocation failure. */
static void *s_copy_msg(const ProtobufCMessage *m, const ProtobufCMessageDescriptor *d)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(m, buf);
    void *copy = protobuf_c_message_unpack(d, NULL, n, buf);
    free(buf);
    return copy;
}

static void s_make_topic(sw_broker_client_t *self)
{
    self->topic[0] = '\0';
    if (self->role != SWISD__V1__ROLE__ROLE_STAGE || !self->model || !self->model->id)
        return;
    char t[2 * SW_WIRE_MAX_NAME + 64];
    snprintf(t, sizeof t, "model/%s/layers/%u-%u", self->model->id, self->layer_begin, self->layer_end - 1);
    if (strlen(t) <= SW_WIRE_MAX_NAME)
        s_copy_str(self->topic, sizeof self->topic, t);
}

static void s_send_hello(sw_broker_client_t *self)
{
    Swisd__V1__Hello h = SWISD__V1__HELLO__INIT;
    Swisd__V1__LayerRange r = SWISD__V1__LAYER_RANGE__INIT;
    h.role = self->role;
    h.node_id = self->id;
    h.region = self->region;
    h.display_name = self->display_name;
    h.model = self->model;
    if (self->layer_end > self->layer_begin) {
        r.begin = self->layer_begin;
        r.end = self->layer_end;
        h.layers = &r;
    }
    h.caps = self->caps;
    h.topic = self->topic;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_HELLO;
    b.hello = &h;
    if (sw_wire_send(self->sock, NULL, self->id, "", 0, &b) != 0)
        sw_log(SW_LOG_DEBUG, "%s: hello not sent (queue full?)", __func__);
    int retry = self->cfg_heartbeat_ms < SW_BROKER_HELLO_RETRY_MS ? self->cfg_heartbeat_ms : SW_BROKER_HELLO_RETRY_MS;
    self->next_hello_us = s_now_us() + (int64_t) retry * 1000;
}

static void s_send_heartbeat(sw_broker_client_t *self)
{
    Swisd__V1__Heartbeat hb = SWISD__V1__HEARTBEAT__INIT;
    hb.load = &self->load;
    hb.rtt_ms = (float) self->rtt_ms;
    hb.seq = ++self->hb_seq;
    hb.sent_us = (uint64_t) s_now_us();
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_HEARTBEAT;
    b.heartbeat = &hb;
    if (sw_wire_send(self->sock, NULL, self->id, "", 0, &b) != 0)
        sw_log(SW_LOG_DEBUG, "%s: heartbeat not sent (queue full?)", __func__);
}

sw_broker_client_t *sw_broker_client_new(const sw_broker_client_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->endpoint || !cfg->endpoint[0]) {
        sw_err(err, errlen, "no broker endpoint");
        return NULL;
    }
    if (cfg->node_id && (!cfg->node_id[0] || strlen(cfg->node_id) > SW_WIRE_MAX_ID)) {
        sw_err(err, errlen, "node id must be 1..%d bytes", SW_WIRE_MAX_ID);
        return NULL;
    }
    if (cfg->region && strlen(cfg->region) > SW_WIRE_MAX_NAME) {
        sw_err(err, errlen, "region longer than %d bytes", SW_WIRE_MAX_NAME);
        return NULL;
    }
    if (!sw_wire_display_name_ok(cfg->display_name)) {
        sw_err(err, errlen, "display name must be 0..%d bytes of printable ASCII", SW_WIRE_MAX_DISPLAY_NAME);
        return NULL;
    }
    if (cfg->role == SWISD__V1__ROLE__ROLE_STAGE && (!cfg->model || cfg->layer_begin >= cfg->layer_end)) {
        sw_err(err, errlen, "a stage needs a model and a non-empty layer range (got [%u, %u))", cfg->layer_begin,
               cfg->layer_end);
        return NULL;
    }
    sw_broker_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    self->identity = cfg->identity;
    if (cfg->node_id)
        s_copy_str(self->id, sizeof self->id, cfg->node_id);
    else if (cfg->identity)
        s_copy_str(self->id, sizeof self->id, sw_identity_id(cfg->identity));
    else
        sw_wire_new_id(self->id, sizeof self->id);
    s_copy_str(self->region, sizeof self->region, cfg->region ? cfg->region : "default");
    s_copy_str(self->display_name, sizeof self->display_name, cfg->display_name ? cfg->display_name : "");
    self->role = cfg->role;
    self->layer_begin = cfg->layer_begin;
    self->layer_end = cfg->layer_end;
    if (cfg->model)
        self->model = s_copy_msg(&cfg->model->base, &swisd__v1__model_ref__descriptor);
    if (cfg->caps)
        self->caps = s_copy_msg(&cfg->caps->base, &swisd__v1__capabilities__descriptor);
    if ((cfg->model && !self->model) || (cfg->caps && !self->caps)) {
        sw_err(err, errlen, "out of memory");
        sw_broker_client_destroy(&self);
        return NULL;
    }
    swisd__v1__load__init(&self->load);
    self->gate_bad = SW_LOG_GATE(1000, 1);
    self->gate_reg = SW_LOG_GATE(1000, 1);
    self->gate_hs = SW_LOG_GATE(10000, 1);
    self->cfg_heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : SW_BROKER_HEARTBEAT_MS;
    self->heartbeat_ms = self->cfg_heartbeat_ms;
    self->expiry_ms = SW_BROKER_EXPIRY_MS;
    s_make_topic(self);

    self->sock = zsock_new(ZMQ_DEALER);
    if (!self->sock) {
        sw_err(err, errlen, "cannot create a DEALER socket");
        sw_broker_client_destroy(&self);
        return NULL;
    }
    sw_wire_socket_setup(self->sock, 0, SW_BROKER_HWM);
    zsock_set_sndtimeo(self->sock, 0); /* a full queue fails the send instead of blocking */
    /* "tcp://a:1,tcp://b:2": several brokers of the region; the first is used
     * until it falls silent, then the next (failover) */
    char list[2048];
    s_copy_str(list, sizeof list, cfg->endpoint);
    char *save = NULL;
    for (char *e = strtok_r(list, ",", &save); e && self->n_endpoints < 8; e = strtok_r(NULL, ",", &save)) {
        if (!*e)
            continue;
        sw_endpoint_t ep;
        char why[512];
        if (sw_endpoint_parse(e, cfg->identity != NULL, &ep, why, sizeof why) != 0) {
            sw_err(err, errlen, "%s%s", why,
                   cfg->identity ? " (a secure node needs the broker's key: tcp://HOST:PORT#KEY, as the broker "
                                   "prints it; or --insecure on both ends)"
                                 : "");
            sw_broker_client_destroy(&self);
            return NULL;
        }
        memcpy(self->server_keys[self->n_endpoints], ep.server_key, 32);
        s_copy_str(self->endpoints[self->n_endpoints++], sizeof self->endpoints[0], ep.addr);
    }
    if (cfg->identity) {
        zcert_apply(sw_identity_cert(cfg->identity), self->sock);
        zsock_set_handshake_ivl(self->sock, SW_BROKER_HANDSHAKE_IVL_MS);
        if (self->n_endpoints > 0)
            zsock_set_curve_serverkey_bin(self->sock, self->server_keys[0]);
    }
    self->dialed_us = s_now_us();
    if (self->n_endpoints == 0 || zsock_connect(self->sock, "%s", self->endpoints[0]) != 0) {
        sw_err(err, errlen, "cannot connect to %s: %s", cfg->endpoint, zmq_strerror(zmq_errno()));
        sw_broker_client_destroy(&self);
        return NULL;
    }
    self->last_heard_us = s_now_us();
    s_send_hello(self);
    return self;
}

void sw_broker_client_destroy(sw_broker_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_broker_client_t *self = *self_p;
    if (self->sock) {
        if (self->registered) {
            Swisd__V1__Goodbye g = SWISD__V1__GOODBYE__INIT;
            g.reason = "shutdown";
            Swisd__V1__Body b = SWISD__V1__BODY__INIT;
            b.msg_case = SWISD__V1__BODY__MSG_GOODBYE;
            b.goodbye = &g;
            if (sw_wire_send(self->sock, NULL, self->id, "", 0, &b) == 0)
                zsock_set_linger(self->sock, SW_BROKER_GOODBYE_LINGER_MS);
        }
        zsock_destroy(&self->sock);
    }
    if (self->model)
        swisd__v1__model_ref__free_unpacked(self->model, NULL);
    if (self->caps)
        swisd__v1__capabilities__free_unpacked(self->caps, NULL);
    free(self);
    *self_p = NULL;
}

zsock_t *sw_broker_client_sock(sw_broker_client_t *self)
{
    return self->sock;
}

const char *sw_broker_client_id(const sw_broker_client_t *self)
{
    return self->id;
}

bool sw_broker_client_registered(const sw_broker_client_t *self)
{
    return self->registered;
}

bool sw_broker_client_wait_registered(sw_broker_client_t *self, int timeout_ms)
{
    zpoller_t *p = zpoller_new(self->sock, NULL);
    const int64_t end = zclock_mono() + timeout_ms;
    while (p && !self->registered && zclock_mono() < end && !zsys_interrupted) {
        if (zpoller_wait(p, 50)) {
            sw_wire_msg_t m;
            if (sw_broker_client_recv(self, &m) == 1)
                sw_wire_msg_free(&m);
        }
        sw_broker_client_tick(self);
    }
    zpoller_destroy(&p);
    return self->registered;
}

double sw_broker_client_rtt_ms(const sw_broker_client_t *self)
{
    return self->rtt_ms;
}

const char *sw_broker_client_broker_id(const sw_broker_client_t *self)
{
    return self->broker_id;
}

const char *sw_broker_client_broker_region(const sw_broker_client_t *self)
{
    return self->broker_region;
}

uint64_t sw_broker_client_registrations(const sw_broker_client_t *self)
{
    return self->registrations;
}

void sw_broker_client_set_relay_mode(sw_broker_client_t *self, bool on)
{
    self->relay_mode = on;
}

void sw_broker_client_set_load(sw_broker_client_t *self, const Swisd__V1__Load *load)
{
    if (!load)
        return;
    self->load.active_sessions = load->active_sessions;
    self->load.queued_requests = load->queued_requests;
    self->load.kv_bytes = load->kv_bytes;
    self->load.busy = load->busy;
    self->load.draining = load->draining;
}

void sw_broker_client_heartbeat_now(sw_broker_client_t *self)
{
    if (self && self->registered)
        s_send_heartbeat(self);
}

void sw_broker_client_set_layers(sw_broker_client_t *self, uint32_t begin, uint32_t end)
{
    if (begin >= end) {
        sw_log(SW_LOG_WARN, "%s: ignoring empty layer range [%u, %u)", __func__, begin, end);
        return;
    }
    self->layer_begin = begin;
    self->layer_end = end;
    s_make_topic(self);
    self->registered = false;
    s_send_hello(self);
}

/*  Handles registration traffic. Returns true when the message was consumed.
 *  It counts only from the broker itself: the broker's own messages have
 *  hops 0, while whatever a node sends through it arrives with hops >= 1
 *  (every broker counts its relays), so no node can forge a HelloAck (with a
 *  10-minute heartbeat, say), a HeartbeatAck or an UNKNOWN_NODE to us; such
 *  forgeries are dropped. */
static bool s_registration(sw_broker_client_t *self, const Swisd__V1__Header *h, const Swisd__V1__Body *b)
{
    const bool reg_kind = b->msg_case == SWISD__V1__BODY__MSG_HELLO_ACK ||
                          b->msg_case == SWISD__V1__BODY__MSG_HEARTBEAT_ACK ||
                          (b->msg_case == SWISD__V1__BODY__MSG_ERROR &&
                           b->error->code == SWISD__V1__ERROR_CODE__ERROR_UNKNOWN_NODE);
    if (h->hops != 0) {
        if (reg_kind)
            sw_log_limited(&self->gate_reg, SW_LOG_WARN, "node %s: dropped a %s that node '%s' sent through the broker",
                           self->id, sw_wire_kind_name(b), h->src ? h->src : "");
        return reg_kind;
    }
    switch (b->msg_case) {
    case SWISD__V1__BODY__MSG_HELLO_ACK: {
        const Swisd__V1__HelloAck *a = b->hello_ack;
        bool was = self->registered;
        self->registered = true;
        self->last_heard_us = s_now_us(); /* a (new) broker's id: s_from_broker may not have counted it */
        s_copy_str(self->broker_id, sizeof self->broker_id, a->broker_id);
        s_copy_str(self->broker_region, sizeof self->broker_region, a->region);
        if (a->heartbeat_ms >= 10 && a->heartbeat_ms <= 600000)
            self->heartbeat_ms = (int) a->heartbeat_ms;
        if (a->expiry_ms >= 20 && a->expiry_ms <= 3600000)
            self->expiry_ms = (int) a->expiry_ms;
        if (!was) {
            self->registrations++;
            self->next_hb_us = s_now_us() + (int64_t) self->heartbeat_ms * 1000;
            sw_log(SW_LOG_INFO, "node %s: registered with broker %s (region %s, heartbeat %d ms, expiry %d ms)",
                   self->id, self->broker_id, self->broker_region, self->heartbeat_ms, self->expiry_ms);
        }
        return true;
    }
    case SWISD__V1__BODY__MSG_HEARTBEAT_ACK: {
        int64_t now = s_now_us();
        uint64_t sent = b->heartbeat_ack->echo_sent_us;
        if (sent > 0 && sent <= (uint64_t) now)
            self->rtt_ms = (double) ((uint64_t) now - sent) / 1000.0;
        return true;
    }
    case SWISD__V1__BODY__MSG_ERROR:
        if (b->error->code == SWISD__V1__ERROR_CODE__ERROR_UNKNOWN_NODE) {
            /* one per frame we sent while unknown: Hello at once the first time,
             * then every retry period (sw_broker_client_tick), not per frame */
            if (self->registered) {
                sw_log(SW_LOG_INFO, "node %s: broker does not know us (%s); registering again", self->id,
                       b->error->message ? b->error->message : "");
                self->registered = false;
                s_send_hello(self);
            } else {
                sw_log_limited(&self->gate_reg, SW_LOG_INFO, "node %s: broker does not know us (%s); Hello sent",
                               self->id, b->error->message ? b->error->message : "");
            }
            return true;
        }
        if (b->error->code == SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED && !self->registered) {
            /* our Hello was refused (e.g. our id is still held by our previous
             * connection): the Hello is re-sent every retry period until the
             * broker frees the id */
            self->answered_us = s_now_us(); /* the handshake worked: no hint about keys */
            sw_log_limited(&self->gate_reg, SW_LOG_WARN, "node %s: broker refused our Hello (%s); retrying", self->id,
                           b->error->message ? b->error->message : "");
            return true;
        }
        return false;
    default:
        return false;
    }
}

/*  Whether a message shows that our broker is alive: something it relayed
 *  (hops >= 1), or its own message (hops 0) signed with the id of its
 *  HelloAck. Not any answer from the endpoint: when a broker dies, its port
 *  may be taken by another process that answers (say, some gateway's RPC
 *  socket replying errors), and we must still move to the next broker. */
static bool s_from_broker(const sw_broker_client_t *self, const Swisd__V1__Header *h)
{
    return h->hops > 0 || (self->broker_id[0] && h->src && !strcmp(h->src, self->broker_id));
}

int sw_broker_client_recv(sw_broker_client_t *self, sw_wire_msg_t *msg)
{
    memset(msg, 0, sizeof *msg);
    if (!(zsock_events(self->sock) & ZMQ_POLLIN))
        return 0;
    int code = 0;
    char err[256];
    errno = 0;
    int rc = sw_wire_recv(self->sock, false, msg, &code, err, sizeof err);
    int e = errno;
    if (rc != 0) {
        if (!msg->header && !msg->body_frame && (e == EINTR || e == ETERM)) {
            sw_wire_msg_free(msg);
            return -1;
        }
        sw_log_limited(&self->gate_bad, SW_LOG_WARN, "node %s: dropped a malformed message: %s", self->id, err);
        if (msg->header && msg->header->src && msg->header->src[0])
            sw_wire_send_error(self->sock, NULL, self->id, msg->header->src, code, NULL, 0, "%s", err);
        sw_wire_msg_free(msg);
        return 0;
    }
    if (s_from_broker(self, msg->header))
        self->last_heard_us = s_now_us();
    const char *dst = msg->header->dst ? msg->header->dst : "";
    if (self->relay_mode && dst[0] && strcmp(dst, self->id) != 0)
        return 1; /* to be relayed: the body stays a raw frame */
    const Swisd__V1__Body *b = sw_wire_body(msg, &code, err, sizeof err);
    if (!b) {
        sw_log_limited(&self->gate_bad, SW_LOG_WARN, "node %s: dropped a malformed body from '%s': %s", self->id,
                       msg->header->src ? msg->header->src : "", err);
        if (msg->header->src && msg->header->src[0])
            sw_wire_send_error(self->sock, NULL, self->id, msg->header->src, code, NULL, 0, "%s", err);
        sw_wire_msg_free(msg);
        return 0;
    }
    if (s_registration(self, msg->header, b)) {
        sw_wire_msg_free(msg);
        return 0;
    }
    return 1;
}

/* Moves to the next broker of the list (no-op with one broker). */
static void s_next_broker(sw_broker_client_t *self)
{
    if (self->n_endpoints < 2)
        return;
    zsock_disconnect(self->sock, "%s", self->endpoints[self->current]);
    self->current = (self->current + 1) % self->n_endpoints;
    if (self->identity) /* the key in force when connecting is the one the new connection uses */
        zsock_set_curve_serverkey_bin(self->sock, self->server_keys[self->current]);
    self->dialed_us = s_now_us();
    zsock_connect(self->sock, "%s", self->endpoints[self->current]);
    sw_log(SW_LOG_WARN, "node %s: moving to broker %s", self->id, self->endpoints[self->current]);
}

void sw_broker_client_tick(sw_broker_client_t *self)
{
    int64_t now = s_now_us();
    if (now - self->last_heard_us > (int64_t) self->expiry_ms * 1000) {
        if (self->registered || self->n_endpoints > 1)
            sw_log(SW_LOG_WARN, "node %s: broker silent for %lld ms; registering again", self->id,
                   (long long) ((now - self->last_heard_us) / 1000));
        self->registered = false;
        self->last_heard_us = now;
        s_next_broker(self);
        s_send_hello(self);
        return;
    }
    if (!self->registered) {
        if (self->identity && self->registrations == 0 && self->answered_us < self->dialed_us &&
            now - self->dialed_us > SW_BROKER_HANDSHAKE_MS * 1000LL)
            sw_log_limited(&self->gate_hs, SW_LOG_WARN,
                           "node %s: the broker at %s did not complete the CURVE handshake or did not answer our "
                           "Hello in %d ms: wrong broker key, or our key not allowed there?",
                           self->id, self->endpoints[self->current], SW_BROKER_HANDSHAKE_MS);
        if (now >= self->next_hello_us)
            s_send_hello(self);
        return;
    }
    if (now >= self->next_hb_us) {
        s_send_heartbeat(self);
        self->next_hb_us += (int64_t) self->heartbeat_ms * 1000;
        if (self->next_hb_us <= now) /* fell behind (process stopped): do not burst */
            self->next_hb_us = now + (int64_t) self->heartbeat_ms * 1000;
    }
}

int sw_broker_client_timeout_ms(const sw_broker_client_t *self)
{
    int64_t now = s_now_us();
    int64_t due = self->registered ? self->next_hb_us : self->next_hello_us;
    if (self->registered) {
        int64_t silent = self->last_heard_us + (int64_t) self->expiry_ms * 1000;
        if (silent < due)
            due = silent;
    }
    int64_t ms = (due - now + 999) / 1000;
    return ms < 0 ? 0 : ms > 60000 ? 60000 : (int) ms;
}

int sw_broker_client_send(sw_broker_client_t *self, const char *dst, const Swisd__V1__Body *body)
{
    return sw_wire_send(self->sock, NULL, self->id, dst ? dst : "", 0, body);
}

int sw_broker_client_send_error(sw_broker_client_t *self, const char *dst, int code, const char *session_id,
                                uint64_t request_id, const char *fmt, ...)
{
    char text[SW_WIRE_MAX_TEXT + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return sw_wire_send_error(self->sock, NULL, self->id, dst, code, session_id, request_id, "%s", text);
}

int sw_broker_client_relay(sw_broker_client_t *self, const char *src, const char *dst, uint32_t hops,
                           zframe_t **body_frame)
{
    if (!body_frame || !*body_frame)
        return -1;
    zframe_t *hf = sw_wire_header_frame(src ? src : self->id, dst, hops);
    if (!hf)
        return -1;
    if (zframe_send(&hf, self->sock, ZFRAME_MORE | ZFRAME_DONTWAIT) != 0) {
        int e = errno;
        zframe_destroy(&hf);
        errno = e;
        return -1;
    }
    /* zmq queues the remaining parts of a message once the first was accepted */
    if (zframe_send(body_frame, self->sock, 0) != 0)
        return -1;
    return 0;
}
