/*  sw_wire.c: framing, limits and validation of swisd.v1 messages. */
#include "sw_wire.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>

#include "sw_common.h"

void sw_wire_socket_setup(zsock_t *sock, int linger_ms, int hwm)
{
    zsock_set_linger(sock, linger_ms);
    zsock_set_maxmsgsize(sock, (int) SW_WIRE_MAX_FRAME);
    zsock_set_sndhwm(sock, hwm);
    zsock_set_rcvhwm(sock, hwm);
    zsock_set_sndtimeo(sock, 0); /* a full peer queue is a failed send (EAGAIN), never a blocked loop */
    if (zsock_type(sock) == ZMQ_ROUTER)
        zsock_set_router_mandatory(sock, 1);
}

static bool s_str_ok(const char *s, size_t max)
{
    return s == NULL || strnlen(s, max + 1) <= max;
}

bool sw_wire_display_name_ok(const char *s)
{
    if (!s)
        return true;
    size_t n = strnlen(s, SW_WIRE_MAX_DISPLAY_NAME + 1);
    if (n > SW_WIRE_MAX_DISPLAY_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
            return false;
    return true;
}

void sw_wire_msg_free(sw_wire_msg_t *msg)
{
    if (!msg)
        return;
    zframe_destroy(&msg->identity);
    zframe_destroy(&msg->body_frame);
    if (msg->header)
        swisd__v1__header__free_unpacked(msg->header, NULL);
    if (msg->body)
        swisd__v1__body__free_unpacked(msg->body, NULL);
    memset(msg, 0, sizeof *msg);
}

int sw_wire_recv(zsock_t *sock, bool router, sw_wire_msg_t *msg, int *code, char *err, size_t errlen)
{
    memset(msg, 0, sizeof *msg);
    *code = SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME;
    zmsg_t *m = zmsg_recv(sock);
    if (!m)
        return sw_err(err, errlen, "receive interrupted");
    size_t want = router ? 3 : 2;
    size_t n = zmsg_size(m);
    if (router)
        msg->identity = zmsg_pop(m);
    if (n != want) {
        zmsg_destroy(&m);
        return sw_err(err, errlen, "expected %zu frames (header, body), got %zu", want - (router ? 1 : 0),
                      n - (router ? 1 : 0));
    }
    zframe_t *hf = zmsg_pop(m);
    msg->body_frame = zmsg_pop(m);
    zmsg_destroy(&m);
    size_t hsize = zframe_size(hf);
    if (hsize == 0 || hsize > SW_WIRE_MAX_HEADER) {
        zframe_destroy(&hf);
        return sw_err(err, errlen, "header frame of %zu bytes (limit %d)", hsize, SW_WIRE_MAX_HEADER);
    }
    msg->header = swisd__v1__header__unpack(NULL, hsize, zframe_data(hf));
    zframe_destroy(&hf);
    if (!msg->header)
        return sw_err(err, errlen, "header frame is not a swisd.v1.Header");
    const Swisd__V1__Header *h = msg->header;
    if (h->version_major != SW_WIRE_VERSION_MAJOR) {
        *code = SWISD__V1__ERROR_CODE__ERROR_UNSUPPORTED_VERSION;
        return sw_err(err, errlen, "protocol version %u.%u is not supported (this node speaks %d.%d)",
                      h->version_major, h->version_minor, SW_WIRE_VERSION_MAJOR, SW_WIRE_VERSION_MINOR);
    }
    if (!s_str_ok(h->src, SW_WIRE_MAX_ID) || !s_str_ok(h->dst, SW_WIRE_MAX_ID))
        return sw_err(err, errlen, "node id longer than %d bytes", SW_WIRE_MAX_ID);
    if (h->hops > SW_WIRE_MAX_HOPS)
        return sw_err(err, errlen, "message crossed %u brokers (limit %d)", h->hops, SW_WIRE_MAX_HOPS);
    if (zframe_size(msg->body_frame) > SW_WIRE_MAX_FRAME)
        return sw_err(err, errlen, "body frame of %zu bytes (limit %u)", zframe_size(msg->body_frame),
                      SW_WIRE_MAX_FRAME);
    *code = 0;
    return 0;
}

const Swisd__V1__Body *sw_wire_body(sw_wire_msg_t *msg, int *code, char *err, size_t errlen)
{
    if (msg->body)
        return msg->body;
    *code = SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME;
    if (!msg->body_frame) {
        sw_err(err, errlen, "no body frame");
        return NULL;
    }
    msg->body = swisd__v1__body__unpack(NULL, zframe_size(msg->body_frame), zframe_data(msg->body_frame));
    if (!msg->body) {
        sw_err(err, errlen, "body frame is not a swisd.v1.Body");
        return NULL;
    }
    if (sw_wire_validate_body(msg->body, err, errlen) != 0) {
        swisd__v1__body__free_unpacked(msg->body, NULL);
        msg->body = NULL;
        return NULL;
    }
    *code = 0;
    return msg->body;
}

/* ---- validation ---------------------------------------------------------- */

#define CHECK_STR(s, max, what)                                                               \
    do {                                                                                      \
        if (!s_str_ok((s), (max)))                                                            \
            return sw_err(err, errlen, "%s is longer than %d bytes", (what), (int) (max));    \
    } while (0)

static int s_model(const Swisd__V1__ModelRef *m, char *err, size_t errlen)
{
    if (!m)
        return 0;
    CHECK_STR(m->id, SW_WIRE_MAX_NAME, "model id");
    CHECK_STR(m->checksum, SW_WIRE_MAX_NAME, "model checksum");
    if (m->n_layer > 100000 || m->n_embd > 1000000)
        return sw_err(err, errlen, "model shape out of range (n_layer %u, n_embd %u)", m->n_layer, m->n_embd);
    return 0;
}

static int s_range(const Swisd__V1__LayerRange *r, bool required, char *err, size_t errlen)
{
    if (!r)
        return required ? sw_err(err, errlen, "layer range missing") : 0;
    if (r->begin >= r->end || r->end > 100000)
        return sw_err(err, errlen, "layer range [%u, %u) is empty or out of range", r->begin, r->end);
    return 0;
}

static int s_stage(const Swisd__V1__StageInfo *s, char *err, size_t errlen)
{
    if (!s)
        return sw_err(err, errlen, "empty stage entry");
    CHECK_STR(s->node_id, SW_WIRE_MAX_ID, "stage node id");
    CHECK_STR(s->region, SW_WIRE_MAX_NAME, "region");
    CHECK_STR(s->topic, SW_WIRE_MAX_NAME, "topic");
    CHECK_STR(s->broker_id, SW_WIRE_MAX_ID, "broker id");
    if (!sw_wire_display_name_ok(s->display_name))
        return sw_err(err, errlen, "a display name that is not 0..%d bytes of printable ASCII", SW_WIRE_MAX_DISPLAY_NAME);
    if (s->caps && s->caps->n_codecs > 32)
        return sw_err(err, errlen, "too many codecs");
    if (s->public_key.len != 0 && s->public_key.len != 32)
        return sw_err(err, errlen, "a stage public key of %zu bytes (32 or none)", s->public_key.len);
    return s_model(s->model, err, errlen) || s_range(s->layers, true, err, errlen) ? -1 : 0;
}

/* Hop timings: at most SW_WIRE_MAX_ROUTE, each with a bounded commitment */
static int s_timings(Swisd__V1__HopTiming *const *t, size_t n, char *err, size_t errlen)
{
    if (n > SW_WIRE_MAX_ROUTE)
        return sw_err(err, errlen, "too many hop timings");
    for (size_t i = 0; i < n; i++) {
        if (!t[i])
            return sw_err(err, errlen, "empty hop timing");
        CHECK_STR(t[i]->node_id, SW_WIRE_MAX_ID, "hop timing node id");
        if (t[i]->commitment.len > SW_WIRE_MAX_COMMITMENT)
            return sw_err(err, errlen, "a commitment of %zu bytes (at most %u)", t[i]->commitment.len,
                          SW_WIRE_MAX_COMMITMENT);
    }
    return 0;
}

static int s_activation(const Swisd__V1__Activation *a, char *err, size_t errlen)
{
    if (!a)
        return sw_err(err, errlen, "activation missing");
    if (a->n_tok == 0 || a->n_tok > SW_WIRE_MAX_TOKENS)
        return sw_err(err, errlen, "activation has %u tokens (1..%d)", a->n_tok, SW_WIRE_MAX_TOKENS);
    if (a->n_embd == 0 || a->n_embd > 65536)
        return sw_err(err, errlen, "activation row length %u is out of range", a->n_embd);
    if (a->raw_bytes > SW_WIRE_MAX_FRAME || a->payload.len > SW_WIRE_MAX_FRAME)
        return sw_err(err, errlen, "activation payload too large");
    return 0;
}

int sw_wire_validate_body(const Swisd__V1__Body *b, char *err, size_t errlen)
{
    switch (b->msg_case) {
    case SWISD__V1__BODY__MSG_ERROR:
        CHECK_STR(b->error->message, SW_WIRE_MAX_TEXT, "error message");
        CHECK_STR(b->error->session_id, SW_WIRE_MAX_ID, "session id");
        CHECK_STR(b->error->node_id, SW_WIRE_MAX_ID, "node id");
        return 0;
    case SWISD__V1__BODY__MSG_HELLO: {
        const Swisd__V1__Hello *h = b->hello;
        CHECK_STR(h->node_id, SW_WIRE_MAX_ID, "node id");
        CHECK_STR(h->region, SW_WIRE_MAX_NAME, "region");
        CHECK_STR(h->topic, SW_WIRE_MAX_NAME, "topic");
        if (!h->node_id || !h->node_id[0])
            return sw_err(err, errlen, "hello without a node id");
        if (!sw_wire_display_name_ok(h->display_name))
            return sw_err(err, errlen, "a display name that is not 0..%d bytes of printable ASCII",
                          SW_WIRE_MAX_DISPLAY_NAME);
        if (h->role == SWISD__V1__ROLE__ROLE_STAGE && (!h->model || s_range(h->layers, true, err, errlen)))
            return h->model ? -1 : sw_err(err, errlen, "stage hello without a model");
        if (h->caps && h->caps->n_codecs > 32)
            return sw_err(err, errlen, "too many codecs");
        return s_model(h->model, err, errlen);
    }
    case SWISD__V1__BODY__MSG_HELLO_ACK:
        CHECK_STR(b->hello_ack->broker_id, SW_WIRE_MAX_ID, "broker id");
        CHECK_STR(b->hello_ack->region, SW_WIRE_MAX_NAME, "region");
        return 0;
    case SWISD__V1__BODY__MSG_GOODBYE:
        CHECK_STR(b->goodbye->reason, SW_WIRE_MAX_TEXT, "reason");
        return 0;
    case SWISD__V1__BODY__MSG_DIRECTORY_QUERY:
        CHECK_STR(b->directory_query->model_id, SW_WIRE_MAX_NAME, "model id");
        CHECK_STR(b->directory_query->checksum, SW_WIRE_MAX_NAME, "checksum");
        return 0;
    case SWISD__V1__BODY__MSG_DIRECTORY_REPLY:
    case SWISD__V1__BODY__MSG_DIRECTORY_REPORT: {
        size_t n = b->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPLY ? b->directory_reply->n_stages
                                                                      : b->directory_report->n_stages;
        Swisd__V1__StageInfo **st = b->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPLY
                                        ? b->directory_reply->stages
                                        : b->directory_report->stages;
        if (n > SW_WIRE_MAX_STAGES)
            return sw_err(err, errlen, "directory of %zu stages (limit %d)", n, SW_WIRE_MAX_STAGES);
        if (b->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPORT) {
            if (b->directory_report->n_nodes > SW_WIRE_MAX_STAGES)
                return sw_err(err, errlen, "report of %zu nodes (limit %d)", b->directory_report->n_nodes,
                              SW_WIRE_MAX_STAGES);
            for (size_t i = 0; i < b->directory_report->n_nodes; i++)
                CHECK_STR(b->directory_report->nodes[i], SW_WIRE_MAX_ID, "node id");
        }
        for (size_t i = 0; i < n; i++)
            if (s_stage(st[i], err, errlen))
                return -1;
        return 0;
    }
    case SWISD__V1__BODY__MSG_FORWARD_REQUEST: {
        const Swisd__V1__ForwardRequest *f = b->forward_request;
        CHECK_STR(f->session_id, SW_WIRE_MAX_ID, "session id");
        CHECK_STR(f->origin, SW_WIRE_MAX_ID, "origin");
        if (!f->session_id || !f->session_id[0] || !f->origin || !f->origin[0])
            return sw_err(err, errlen, "forward request without session id or origin");
        if (f->n_route == 0 || f->n_route > SW_WIRE_MAX_ROUTE)
            return sw_err(err, errlen, "route of %zu hops (1..%d)", f->n_route, SW_WIRE_MAX_ROUTE);
        for (size_t i = 0; i < f->n_route; i++) {
            if (!f->route[i] || !f->route[i]->node_id || !f->route[i]->node_id[0])
                return sw_err(err, errlen, "route hop %zu has no node id", i);
            CHECK_STR(f->route[i]->node_id, SW_WIRE_MAX_ID, "route node id");
            if (s_range(f->route[i]->layers, true, err, errlen))
                return -1;
            /* a chain visits each node once and runs the blocks in order: a route
             * naming one stage many times would make it compute many times */
            if (i > 0 && f->route[i]->layers->begin != f->route[i - 1]->layers->end)
                return sw_err(err, errlen, "route hop %zu starts at block %u, not where hop %zu ends (%u)", i,
                              f->route[i]->layers->begin, i - 1, f->route[i - 1]->layers->end);
            for (size_t k = 0; k < i; k++)
                if (!strcmp(f->route[k]->node_id, f->route[i]->node_id))
                    return sw_err(err, errlen, "route names node %.64s twice", f->route[i]->node_id);
        }
        if (f->n_tok == 0 || f->n_tok > SW_WIRE_MAX_TOKENS)
            return sw_err(err, errlen, "forward request of %u tokens (1..%d)", f->n_tok, SW_WIRE_MAX_TOKENS);
        if (f->pos > (1u << 24))
            return sw_err(err, errlen, "position %u out of range", f->pos);
        if (s_activation(f->activation, err, errlen))
            return -1;
        if (s_timings(f->timings, f->n_timings, err, errlen))
            return -1;
        if (f->activation->n_tok != f->n_tok)
            return sw_err(err, errlen, "activation holds %u tokens, request says %u", f->activation->n_tok, f->n_tok);
        return 0;
    }
    case SWISD__V1__BODY__MSG_FORWARD_REPLY:
        CHECK_STR(b->forward_reply->session_id, SW_WIRE_MAX_ID, "session id");
        if (s_timings(b->forward_reply->timings, b->forward_reply->n_timings, err, errlen))
            return -1;
        return s_activation(b->forward_reply->activation, err, errlen);
    case SWISD__V1__BODY__MSG_KV_RELEASE:
        CHECK_STR(b->kv_release->session_id, SW_WIRE_MAX_ID, "session id");
        return 0;
    case SWISD__V1__BODY__MSG_KV_TRUNCATE:
        CHECK_STR(b->kv_truncate->session_id, SW_WIRE_MAX_ID, "session id");
        return 0;
    case SWISD__V1__BODY__MSG_GENERATE_REQUEST: {
        const Swisd__V1__GenerateRequest *g = b->generate_request;
        CHECK_STR(g->model, SW_WIRE_MAX_NAME, "model");
        CHECK_STR(g->prompt, SW_WIRE_MAX_PROMPT, "prompt");
        if (g->max_tokens > SW_WIRE_MAX_GEN_TOKENS)
            return sw_err(err, errlen, "max_tokens %u exceeds %d", g->max_tokens, SW_WIRE_MAX_GEN_TOKENS);
        if (g->n_stop > 16)
            return sw_err(err, errlen, "more than 16 stop strings");
        for (size_t i = 0; i < g->n_stop; i++)
            CHECK_STR(g->stop[i], 256, "stop string");
        if (g->n_prompt_parts > SW_WIRE_MAX_PROMPT_PARTS)
            return sw_err(err, errlen, "more than %d prompt parts", SW_WIRE_MAX_PROMPT_PARTS);
        size_t total = 0;
        for (size_t i = 0; i < g->n_prompt_parts; i++) {
            CHECK_STR(g->prompt_parts[i]->text, SW_WIRE_MAX_PROMPT, "prompt part");
            total += strlen(g->prompt_parts[i]->text);
        }
        if (total > SW_WIRE_MAX_PROMPT)
            return sw_err(err, errlen, "prompt parts total %zu bytes, over %u", total, SW_WIRE_MAX_PROMPT);
        return 0;
    }
    case SWISD__V1__BODY__MSG_GENERATE_REPLY:
        if (b->generate_reply->part_case == SWISD__V1__GENERATE_REPLY__PART_SUMMARY &&
            b->generate_reply->summary->n_route > SW_WIRE_MAX_ROUTE)
            return sw_err(err, errlen, "summary route too long");
        return 0;
    case SWISD__V1__BODY__MSG_SWARM_STATUS_REPLY:
        if (b->swarm_status_reply->n_stages > SW_WIRE_MAX_STAGES)
            return sw_err(err, errlen, "status of too many stages");
        if (b->swarm_status_reply->n_recent > 1024)
            return sw_err(err, errlen, "status with too many recent generations");
        for (size_t i = 0; i < b->swarm_status_reply->n_stages; i++)
            if (s_stage(b->swarm_status_reply->stages[i], err, errlen))
                return -1;
        return 0;
    case SWISD__V1__BODY__MSG_TOKEN_REPLY:
        CHECK_STR(b->token_reply->token, 64, "token");
        CHECK_STR(b->token_reply->node_id, SW_WIRE_MAX_ID, "node id");
        return 0;
    case SWISD__V1__BODY__MSG_BAN_NOTICE: /* the id's format and the time range: sw_broker_ban_check */
        CHECK_STR(b->ban_notice->node_id, SW_WIRE_MAX_ID, "node id");
        CHECK_STR(b->ban_notice->reason, SW_WIRE_MAX_BAN_REASON, "ban reason");
        CHECK_STR(b->ban_notice->origin, SW_WIRE_MAX_ID, "ban origin");
        if (!b->ban_notice->node_id || !b->ban_notice->node_id[0])
            return sw_err(err, errlen, "a ban notice without a node id");
        if (b->ban_notice->public_key.len != 0 && b->ban_notice->public_key.len != 32)
            return sw_err(err, errlen, "a ban notice's public key of %zu bytes (32 or none)",
                          b->ban_notice->public_key.len);
        return 0;
    case SWISD__V1__BODY__MSG_HEARTBEAT:
    case SWISD__V1__BODY__MSG_HEARTBEAT_ACK:
    case SWISD__V1__BODY__MSG_CANCEL:
    case SWISD__V1__BODY__MSG_TOKEN_REQUEST:
    case SWISD__V1__BODY__MSG_LIST_MODELS_REQUEST:
    case SWISD__V1__BODY__MSG_LIST_MODELS_REPLY:
    case SWISD__V1__BODY__MSG_SWARM_STATUS_REQUEST:
        return 0;
    case SWISD__V1__BODY__MSG__NOT_SET:
    default:
        return sw_err(err, errlen, "body holds no known message");
    }
}

/* ---- sending --------------------------------------------------------------- */

zframe_t *sw_wire_header_frame(const char *src, const char *dst, uint32_t hops)
{
    Swisd__V1__Header h = SWISD__V1__HEADER__INIT;
    h.version_major = SW_WIRE_VERSION_MAJOR;
    h.version_minor = SW_WIRE_VERSION_MINOR;
    h.src = (char *) (src ? src : "");
    h.dst = (char *) (dst ? dst : "");
    h.hops = hops;
    size_t n = swisd__v1__header__get_packed_size(&h);
    if (n > SW_WIRE_MAX_HEADER)
        return NULL;
    zframe_t *f = zframe_new(NULL, n);
    if (f)
        swisd__v1__header__pack(&h, zframe_data(f));
    return f;
}

static int s_send_frames(zsock_t *sock, zframe_t *identity, zframe_t *hf, zframe_t *bf)
{
    if (!hf || !bf) {
        zframe_destroy(&hf);
        zframe_destroy(&bf);
        return -1;
    }
    zmsg_t *m = zmsg_new();
    if (identity)
        zmsg_append(m, &(zframe_t *){zframe_dup(identity)});
    zmsg_append(m, &hf);
    zmsg_append(m, &bf);
    int rc = zmsg_send(&m, sock);
    if (rc != 0) {
        const int e = errno; /* callers tell a full queue (EAGAIN) from a gone peer (EHOSTUNREACH) */
        zmsg_destroy(&m);
        errno = e;
    }
    return rc == 0 ? 0 : -1;
}

int sw_wire_send(zsock_t *sock, zframe_t *identity, const char *src, const char *dst, uint32_t hops,
                 const Swisd__V1__Body *body)
{
    size_t n = swisd__v1__body__get_packed_size(body);
    if (n > SW_WIRE_MAX_FRAME) {
        sw_log(SW_LOG_WARN, "%s: %s message of %zu bytes exceeds the frame limit", __func__,
               sw_wire_kind_name(body), n);
        return -1;
    }
    zframe_t *bf = zframe_new(NULL, n);
    if (bf)
        swisd__v1__body__pack(body, zframe_data(bf));
    return s_send_frames(sock, identity, sw_wire_header_frame(src, dst, hops), bf);
}

int sw_wire_relay(zsock_t *sock, zframe_t *identity, const char *src, const char *dst, uint32_t hops,
                  zframe_t *body_frame)
{
    return s_send_frames(sock, identity, sw_wire_header_frame(src, dst, hops), zframe_dup(body_frame));
}

int sw_wire_send_error(zsock_t *sock, zframe_t *identity, const char *src, const char *dst, int code,
                       const char *session_id, uint64_t request_id, const char *fmt, ...)
{
    char text[SW_WIRE_MAX_TEXT + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    Swisd__V1__Error e = SWISD__V1__ERROR__INIT;
    e.code = (Swisd__V1__ErrorCode) code;
    e.message = text;
    e.session_id = (char *) (session_id ? session_id : "");
    e.request_id = request_id;
    e.node_id = (char *) (src ? src : "");
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_ERROR;
    b.error = &e;
    return sw_wire_send(sock, identity, src, dst, 0, &b);
}

void sw_wire_activation_to_msg(const sw_codec_header_t *hdr, const void *payload, size_t len,
                               Swisd__V1__Activation *msg)
{
    swisd__v1__activation__init(msg);
    msg->dtype = hdr->dtype;
    msg->n_tok = hdr->n_tok;
    msg->n_embd = hdr->n_embd;
    msg->flags = hdr->flags;
    msg->delta_ref = hdr->delta_ref;
    msg->seq = hdr->seq;
    msg->checksum = hdr->checksum;
    msg->raw_bytes = hdr->raw_bytes;
    msg->payload.data = (uint8_t *) payload;
    msg->payload.len = len;
}

void sw_wire_activation_from_msg(const Swisd__V1__Activation *msg, sw_codec_header_t *hdr)
{
    *hdr = (sw_codec_header_t){.dtype = msg->dtype, .n_tok = msg->n_tok, .n_embd = msg->n_embd, .flags = msg->flags,
                               .delta_ref = msg->delta_ref, .seq = msg->seq, .checksum = msg->checksum,
                               .raw_bytes = msg->raw_bytes};
}

const char *sw_wire_kind_name(const Swisd__V1__Body *body)
{
    if (!body)
        return "none";
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&swisd__v1__body__descriptor, (unsigned) body->msg_case);
    return f ? f->name : "none";
}

const char *sw_wire_error_name(int code)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&swisd__v1__error_code__descriptor, code);
    return v ? v->name + 6 /* skip "ERROR_" */ : "UNKNOWN";
}

void sw_wire_new_id(char *id, size_t len)
{
    uint8_t r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t) sizeof r) {
        uint64_t t = sw_now_ns() ^ (uint64_t) getpid() << 32;
        memcpy(r, &t, 8);
        memcpy(r + 8, &t, 8);
    }
    for (size_t i = 0; i < 16 && 2 * i + 2 < len; i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
}
