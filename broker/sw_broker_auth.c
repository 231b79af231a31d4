/*  sw_broker_auth.c: the broker's ZAP handler and key lists (see sw_broker_auth.h). */
#include "sw_broker_auth.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "sw_broker_bans.h"
#include "sw_common.h"
#include "sw_identity.h"
#include "sw_keyset.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_BATCH 256          /* ZAP requests answered per call */

struct sw_broker_auth_t {
    zsock_t *zap;            /* REP bound at S_ZAP_ENDPOINT */
    zsock_t *monitor;        /* PAIR receiving the server socket's handshake failure events */
    char name[96];           /* log prefix */
    sw_keyset_t *allow, *deny, *gateways, *brokers; /* NULL: no such list */
    const sw_broker_bans_t *bans;           /* runtime bans (borrowed); NULL: none */
    bool has_also;                          /* also_allow given */
    uint8_t also_allow[SW_IDENTITY_KEY_BYTES];
    uint64_t refused, accepted;
    sw_log_gate_t gate_refused;
};

sw_broker_auth_t *sw_broker_auth_new(const sw_broker_auth_config_t *cfg, char *err, size_t errlen)
{
    sw_broker_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(self->name, sizeof self->name, "%s", cfg && cfg->log_name ? cfg->log_name : "broker");
    self->gate_refused = SW_LOG_GATE(1000, 5);
    self->bans = cfg ? cfg->bans : NULL;
    if (cfg && cfg->also_allow) {
        self->has_also = true;
        memcpy(self->also_allow, cfg->also_allow, sizeof self->also_allow);
    }
    struct { const char *path; bool is_dir; sw_keyset_t **set; } lists[] = {
        {cfg ? cfg->allow_dir : NULL, true, &self->allow},
        {cfg ? cfg->gateways_dir : NULL, true, &self->gateways},
        {cfg ? cfg->brokers_dir : NULL, true, &self->brokers},
        {cfg ? cfg->deny_file : NULL, false, &self->deny},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        if (lists[i].path && !(*lists[i].set = sw_keyset_new(lists[i].path, lists[i].is_dir, self->name, err, errlen))) {
            sw_broker_auth_destroy(&self);
            return NULL;
        }
    }
    self->zap = zsock_new(ZMQ_REP);
    if (!self->zap || zsock_bind(self->zap, S_ZAP_ENDPOINT) != 0) {
        sw_err(err, errlen, "cannot bind the ZAP handler at %s: %s", S_ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        sw_broker_auth_destroy(&self);
        return NULL;
    }
    zsock_set_linger(self->zap, 0);
    return self;
}

void sw_broker_auth_destroy(sw_broker_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_broker_auth_t *self = *self_p;
    zsock_destroy(&self->monitor);
    zsock_destroy(&self->zap);
    sw_keyset_destroy(&self->allow);
    sw_keyset_destroy(&self->deny);
    sw_keyset_destroy(&self->gateways);
    sw_keyset_destroy(&self->brokers);
    free(self);
    *self_p = NULL;
}

zsock_t *sw_broker_auth_sock(sw_broker_auth_t *self)
{
    return self->zap;
}

static void s_reply(sw_broker_auth_t *self, zframe_t *seq, const char *code, const char *text, const char *user)
{
    zsock_t *z = self->zap;
    zstr_sendm(z, "1.0");
    zframe_send(&seq, z, ZFRAME_MORE | ZFRAME_REUSE);
    zstr_sendm(z, code);
    zstr_sendm(z, text);
    zstr_sendm(z, user);
    zframe_t *meta = zframe_new_empty();
    zframe_send(&meta, z, 0);
}

/*  Decides one request: the reason of a refusal (in why[whylen] or a
 *  constant), or NULL to accept. */
static const char *s_decide(sw_broker_auth_t *self, const char *mech, zframe_t *cred, const char *id, char *why,
                            size_t whylen)
{
    if (strcmp(mech, "CURVE") != 0 || !cred || zframe_size(cred) != SW_IDENTITY_KEY_BYTES)
        return "not a CURVE handshake";
    if (self->deny && sw_keyset_contains(self->deny, id))
        return "key is on the denylist";
    const sw_broker_ban_t *ban = sw_broker_bans_find(self->bans, id, (uint64_t) time(NULL));
    if (ban) {
        char text[SW_WIRE_MAX_BAN_REASON + 128];
        snprintf(why, whylen, "key is banned %s", sw_broker_ban_describe(ban, text, sizeof text));
        return why;
    }
    if (self->has_also && !memcmp(zframe_data(cred), self->also_allow, sizeof self->also_allow))
        return NULL;
    if (self->allow && !sw_keyset_contains(self->allow, id) && !sw_keyset_contains(self->gateways, id) &&
        !sw_keyset_contains(self->brokers, id))
        return "key is not on the allowlist";
    return NULL;
}

void sw_broker_auth_handle(sw_broker_auth_t *self)
{
    for (int i = 0; i < S_BATCH; i++) {
        zmsg_t *req = zmsg_recv_nowait(self->zap);
        if (!req)
            return;
        /* RFC 27: version, request id, domain, address, identity, mechanism, credentials... */
        zframe_t *f[7] = {0};
        for (int k = 0; k < 7; k++)
            f[k] = zmsg_pop(req);
        zmsg_destroy(&req);
        if (!f[0] || !f[1]) {
            for (int k = 0; k < 7; k++)
                zframe_destroy(&f[k]);
            /* a REP must answer something or it jams: a malformed request gets a refusal */
            zframe_t *seq = zframe_new_empty();
            s_reply(self, seq, "500", "malformed ZAP request", "");
            zframe_destroy(&seq);
            continue;
        }
        char mech[16] = "";
        if (f[5] && zframe_size(f[5]) < sizeof mech)
            memcpy(mech, zframe_data(f[5]), zframe_size(f[5]));
        char addr[64] = "?";
        if (f[3] && zframe_size(f[3]) < sizeof addr) {
            memcpy(addr, zframe_data(f[3]), zframe_size(f[3]));
            addr[zframe_size(f[3])] = '\0';
        }
        char id[SW_IDENTITY_ID_LEN + 1] = "-";
        char z85[SW_IDENTITY_Z85_LEN + 1] = "";
        if (f[6] && zframe_size(f[6]) == SW_IDENTITY_KEY_BYTES) {
            sw_identity_fingerprint(zframe_data(f[6]), id);
            zmq_z85_encode(z85, zframe_data(f[6]), SW_IDENTITY_KEY_BYTES);
        }
        char buf[SW_WIRE_MAX_BAN_REASON + 160];
        const char *why = s_decide(self, mech, f[6], id, buf, sizeof buf);
        if (why) {
            self->refused++;
            sw_log_limited(&self->gate_refused, SW_LOG_WARN, "%s: refused a connection from %s (key %s): %s",
                           self->name, addr, id, why);
            s_reply(self, f[1], "400", why, "");
        } else {
            self->accepted++;
            s_reply(self, f[1], "200", "OK", z85);
        }
        for (int k = 0; k < 7; k++)
            zframe_destroy(&f[k]);
    }
}

int sw_broker_auth_watch(sw_broker_auth_t *self, zsock_t *server, char *err, size_t errlen)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://swisd-auth-monitor-%p", (void *) self);
    const int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
    if (zmq_socket_monitor(zsock_resolve(server), ep, events) != 0)
        return sw_err(err, errlen, "cannot monitor the broker socket: %s", zmq_strerror(zmq_errno()));
    self->monitor = zsock_new(ZMQ_PAIR);
    if (!self->monitor || zsock_connect(self->monitor, "%s", ep) != 0)
        return sw_err(err, errlen, "cannot connect the monitor: %s", zmq_strerror(zmq_errno()));
    return 0;
}

zsock_t *sw_broker_auth_monitor_sock(sw_broker_auth_t *self)
{
    return self->monitor;
}

/*  What a ZMQ_PROTOCOL_ERROR_* value means for an operator. */
static const char *s_protocol_reason(uint32_t v)
{
    if (v == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        return "the client's handshake did not decrypt (it dialed with a wrong broker key?)";
    if (v == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return "the client did not use CURVE (no key: a plain client, or --insecure)";
    if (v >= ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND && v < ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED)
        return "malformed handshake";
    if (v >= ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED && v < ZMQ_PROTOCOL_ERROR_WS_UNSPECIFIED)
        return "our ZAP handler misbehaved";
    return "protocol error";
}

void sw_broker_auth_handle_monitor(sw_broker_auth_t *self)
{
    for (int i = 0; self->monitor && i < S_BATCH; i++) {
        zmsg_t *ev = zmsg_recv_nowait(self->monitor);
        if (!ev)
            return;
        zframe_t *f = zmsg_first(ev);
        if (f && zframe_size(f) == 6) {
            const uint8_t *d = zframe_data(f);
            uint16_t event;
            uint32_t value;
            memcpy(&event, d, 2);
            memcpy(&value, d + 2, 4);
            self->refused++;
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
                sw_log_limited(&self->gate_refused, SW_LOG_WARN,
                               "%s: refused a connection: handshake failed: %s (ZMTP error 0x%x)", self->name,
                               s_protocol_reason(value), (unsigned) value);
            else
                sw_log_limited(&self->gate_refused, SW_LOG_WARN,
                               "%s: refused a connection: handshake failed (%s: not ZMTP, a plain client, or cut short)",
                               self->name,
                               zmq_strerror((int) value));
        }
        zmsg_destroy(&ev);
    }
}

bool sw_broker_auth_tick(sw_broker_auth_t *self)
{
    return self->deny && sw_keyset_refresh(self->deny, false);
}

bool sw_broker_auth_denied(sw_broker_auth_t *self, const uint8_t key[32])
{
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(key, id);
    return self->deny && sw_keyset_contains(self->deny, id);
}

bool sw_broker_auth_may_gateway(sw_broker_auth_t *self, const uint8_t key[32])
{
    return sw_keyset_contains_key(self->gateways, key);
}

bool sw_broker_auth_may_broker(sw_broker_auth_t *self, const uint8_t key[32])
{
    return sw_keyset_contains_key(self->brokers, key);
}

int sw_broker_auth_peer_key(zframe_t *frame, uint8_t key[32])
{
    if (!frame)
        return -1;
    const char *user = zframe_meta(frame, "User-Id");
    if (!user)
        return -1;
    return sw_identity_z85_decode(user, key);
}

void sw_broker_auth_counts(const sw_broker_auth_t *self, uint64_t *refused, uint64_t *accepted)
{
    if (refused)
        *refused = self->refused;
    if (accepted)
        *accepted = self->accepted;
}
