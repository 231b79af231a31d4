/*  sw_broker_client.c: a node's link to its broker (see the header). */
#include "sw_broker_client.h"

#include <stdarg.h>
#include <string.h>

#include "sw_common.h"

#define S_HELLO_RETRY_MS 1000

struct sw_broker_client_t {
    zsock_t *sock;
    char id[SW_WIRE_MAX_ID + 1];
    char region[SW_WIRE_MAX_NAME + 1];
    char broker_id[SW_WIRE_MAX_ID + 1];
    Swisd__V1__Role role;
    /* owned copies of what Hello announces */
    Swisd__V1__ModelRef model;
    bool has_model;
    char model_id[SW_WIRE_MAX_NAME + 1], model_sum[SW_WIRE_MAX_NAME + 1];
    Swisd__V1__Capabilities caps;
    bool has_caps;
    uint32_t codecs[32];
    uint32_t layer_begin, layer_end;
    char topic[SW_WIRE_MAX_NAME + 64];
    Swisd__V1__Load load;
    int heartbeat_ms;
    bool registered;
    uint64_t next_hello_ns, next_beat_ns;
    uint64_t beat_seq;
    double rtt_ms;
};

static void s_set_topic(sw_broker_client_t *c)
{
    c->topic[0] = 0;
    if (c->has_model && c->layer_end > c->layer_begin)
        snprintf(c->topic, sizeof c->topic, "model/%s/layers/%u-%u", c->model_id, c->layer_begin, c->layer_end - 1);
    c->topic[SW_WIRE_MAX_NAME] = 0; /* the protocol's limit */
}

sw_broker_client_t *sw_broker_client_new(const sw_broker_client_config_t *cfg, char *err, size_t errlen)
{
    sw_broker_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg->node_id && cfg->node_id[0])
        snprintf(c->id, sizeof c->id, "%s", cfg->node_id);
    else
        sw_wire_new_id(c->id, sizeof c->id);
    snprintf(c->region, sizeof c->region, "%s", cfg->region && cfg->region[0] ? cfg->region : "default");
    c->role = cfg->role;
    c->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 1000;
    swisd__v1__load__init(&c->load);
    if (cfg->model) {
        c->model = *cfg->model;
        snprintf(c->model_id, sizeof c->model_id, "%s", cfg->model->id ? cfg->model->id : "");
        snprintf(c->model_sum, sizeof c->model_sum, "%s", cfg->model->checksum ? cfg->model->checksum : "");
        c->model.id = c->model_id;
        c->model.checksum = c->model_sum;
        c->has_model = true;
    }
    if (cfg->caps) {
        c->caps = *cfg->caps;
        c->caps.n_codecs = cfg->caps->n_codecs < 32 ? cfg->caps->n_codecs : 32;
        memcpy(c->codecs, cfg->caps->codecs, sizeof(uint32_t) * c->caps.n_codecs);
        c->caps.codecs = c->codecs;
        c->has_caps = true;
    }
    c->layer_begin = cfg->layer_begin;
    c->layer_end = cfg->layer_end;
    s_set_topic(c);
    c->sock = zsock_new(ZMQ_DEALER);
    if (!c->sock) {
        sw_err(err, errlen, "cannot create a socket");
        free(c);
        return NULL;
    }
    sw_wire_socket_setup(c->sock, 0, 1000);
    zsock_set_identity(c->sock, c->id);
    if (zsock_connect(c->sock, "%s", cfg->endpoint) != 0) {
        sw_err(err, errlen, "cannot connect to broker '%s'", cfg->endpoint);
        zsock_destroy(&c->sock);
        free(c);
        return NULL;
    }
    sw_broker_client_tick(c);
    return c;
}

void sw_broker_client_destroy(sw_broker_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_broker_client_t *c = *self_p;
    if (c->registered) {
        Swisd__V1__Goodbye g = SWISD__V1__GOODBYE__INIT;
        g.reason = "shutdown";
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_GOODBYE;
        b.goodbye = &g;
        zsock_set_sndtimeo(c->sock, 100);
        zsock_set_linger(c->sock, 200);
        sw_wire_send(c->sock, NULL, c->id, "", 0, &b);
    }
    zsock_destroy(&c->sock);
    free(c);
    *self_p = NULL;
}

zsock_t *sw_broker_client_sock(sw_broker_client_t *self) { return self->sock; }
const char *sw_broker_client_id(const sw_broker_client_t *self) { return self->id; }
bool sw_broker_client_registered(const sw_broker_client_t *self) { return self->registered; }
double sw_broker_client_rtt_ms(const sw_broker_client_t *self) { return self->rtt_ms; }
const char *sw_broker_client_broker_id(const sw_broker_client_t *self) { return self->broker_id; }

void sw_broker_client_set_load(sw_broker_client_t *self, const Swisd__V1__Load *load)
{
    self->load.active_sessions = load->active_sessions;
    self->load.queued_requests = load->queued_requests;
    self->load.kv_bytes = load->kv_bytes;
    self->load.busy = load->busy;
}

static void s_send_hello(sw_broker_client_t *c)
{
    Swisd__V1__Hello h = SWISD__V1__HELLO__INIT;
    h.role = c->role;
    h.node_id = c->id;
    h.region = c->region;
    Swisd__V1__LayerRange lr = SWISD__V1__LAYER_RANGE__INIT;
    if (c->has_model)
        h.model = &c->model;
    if (c->layer_end > c->layer_begin) {
        lr.begin = c->layer_begin;
        lr.end = c->layer_end;
        h.layers = &lr;
    }
    if (c->has_caps)
        h.caps = &c->caps;
    h.topic = c->topic;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_HELLO;
    b.hello = &h;
    sw_wire_send(c->sock, NULL, c->id, "", 0, &b);
    c->next_hello_ns = sw_now_ns() + (uint64_t) S_HELLO_RETRY_MS * 1000000ull;
}

void sw_broker_client_set_layers(sw_broker_client_t *self, uint32_t begin, uint32_t end)
{
    self->layer_begin = begin;
    self->layer_end = end;
    s_set_topic(self);
    self->registered = false;
    s_send_hello(self);
}

void sw_broker_client_tick(sw_broker_client_t *self)
{
    const uint64_t now = sw_now_ns();
    if (!self->registered) {
        if (now >= self->next_hello_ns)
            s_send_hello(self);
        return;
    }
    if (now >= self->next_beat_ns) {
        Swisd__V1__Heartbeat hb = SWISD__V1__HEARTBEAT__INIT;
        hb.load = &self->load;
        hb.seq = ++self->beat_seq;
        hb.sent_us = now / 1000;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_HEARTBEAT;
        b.heartbeat = &hb;
        sw_wire_send(self->sock, NULL, self->id, "", 0, &b);
        self->next_beat_ns = now + (uint64_t) self->heartbeat_ms * 1000000ull;
    }
}

int sw_broker_client_timeout_ms(const sw_broker_client_t *self)
{
    const uint64_t now = sw_now_ns();
    const uint64_t next = self->registered ? self->next_beat_ns : self->next_hello_ns;
    if (next <= now)
        return 0;
    uint64_t ms = (next - now) / 1000000ull + 1;
    return ms > 60000 ? 60000 : (int) ms;
}

int sw_broker_client_recv(sw_broker_client_t *self, sw_wire_msg_t *msg)
{
    int code;
    char err[256];
    if (sw_wire_recv(self->sock, false, msg, &code, err, sizeof err) != 0) {
        if (!msg->header && !msg->body_frame && strstr(err, "interrupted")) {
            sw_wire_msg_free(msg);
            return -1;
        }
        sw_log(SW_LOG_WARN, "node %.8s: dropped a malformed frame from the broker: %s", self->id, err);
        sw_wire_msg_free(msg);
        return 0;
    }
    const Swisd__V1__Body *b = sw_wire_body(msg, &code, err, sizeof err);
    if (!b) {
        sw_log(SW_LOG_WARN, "node %.8s: malformed body from %s: %s", self->id, msg->header->src, err);
        if (msg->header->src[0])
            sw_broker_client_send_error(self, msg->header->src, code, NULL, 0, "%s", err);
        sw_wire_msg_free(msg);
        return 0;
    }
    const bool from_broker = msg->header->dst[0] == 0 || !strcmp(msg->header->src, self->broker_id) ||
                             b->msg_case == SWISD__V1__BODY__MSG_HELLO_ACK;
    switch (b->msg_case) {
    case SWISD__V1__BODY__MSG_HELLO_ACK:
        snprintf(self->broker_id, sizeof self->broker_id, "%s", b->hello_ack->broker_id);
        if (b->hello_ack->heartbeat_ms >= 10 && b->hello_ack->heartbeat_ms <= 60000)
            self->heartbeat_ms = (int) b->hello_ack->heartbeat_ms;
        if (!self->registered)
            sw_log(SW_LOG_INFO, "node %.8s: registered with broker %.8s (%s)", self->id, self->broker_id,
                   b->hello_ack->region);
        self->registered = true;
        self->next_beat_ns = sw_now_ns();
        sw_wire_msg_free(msg);
        return 0;
    case SWISD__V1__BODY__MSG_HEARTBEAT_ACK: {
        uint64_t now_us = sw_now_ns() / 1000;
        if (b->heartbeat_ack->echo_sent_us > 0 && b->heartbeat_ack->echo_sent_us <= now_us)
            self->rtt_ms = (double) (now_us - b->heartbeat_ack->echo_sent_us) / 1000.0;
        sw_wire_msg_free(msg);
        return 0;
    }
    case SWISD__V1__BODY__MSG_ERROR:
        if (from_broker && b->error->code == SWISD__V1__ERROR_CODE__ERROR_UNKNOWN_NODE) {
            sw_log(SW_LOG_INFO, "node %.8s: the broker does not know us (restart or expiry); registering again",
                   self->id);
            self->registered = false;
            s_send_hello(self);
            sw_wire_msg_free(msg);
            return 0;
        }
        return 1;
    default:
        return 1;
    }
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
