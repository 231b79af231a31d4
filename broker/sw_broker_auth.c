/*  sw_broker_auth.c: the broker's ZAP handler and key lists (see sw_broker_auth.h). */
#include "sw_broker_auth.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "sw_common.h"
#include "sw_identity.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_BATCH 256          /* ZAP requests answered per call */
#define S_RESCAN_MS 1000     /* a list is looked at again at most this often */
#define S_DENY_MAX_FILE (16u << 20) /* bytes of a denylist */

/*  A set of node ids (fingerprints) read from a folder of certificates or a
 *  denylist file, with what it was read from. */
typedef struct {
    const char *path;        /* folder or file; NULL: no list */
    bool is_dir;
    zhashx_t *ids;           /* node id -> "" */
    struct timespec mtime;   /* of the folder or file when read */
    off_t size;              /* of the file when read */
    bool present;            /* the file existed when read */
    int64_t checked_ms;      /* last stat */
} s_list_t;

struct sw_broker_auth_t {
    zsock_t *zap;            /* REP bound at S_ZAP_ENDPOINT */
    zsock_t *monitor;        /* PAIR receiving the server socket's handshake failure events */
    char name[96];           /* log prefix */
    s_list_t allow, deny, gateways, brokers;
    uint64_t refused, accepted;
    sw_log_gate_t gate_refused, gate_list;
};

static int64_t s_now_ms(void)
{
    return (int64_t) (sw_now_ns() / 1000000);
}

static bool s_is_hex_id(const char *s, size_t n)
{
    if (n != SW_IDENTITY_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/*  Reads the list into a new set (NULL on a failure to read, err set). */
static zhashx_t *s_read_dir(sw_broker_auth_t *self, const char *path, char *err, size_t errlen)
{
    DIR *d = opendir(path);
    if (!d) {
        sw_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    zhashx_t *ids = zhashx_new();
    struct dirent *e;
    while (ids && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || (n >= 7 && !strcmp(e->d_name + n - 7, "_secret")))
            continue;
        char file[SW_IDENTITY_MAX_PATH];
        if (snprintf(file, sizeof file, "%s/%s", path, e->d_name) >= (int) sizeof file)
            continue;
        struct stat st;
        if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        uint8_t key[SW_IDENTITY_KEY_BYTES];
        char why[512];
        if (sw_identity_read_public(file, key, why, sizeof why) != 0) {
            sw_log_limited(&self->gate_list, SW_LOG_WARN, "%s: skipped a key file: %s", self->name, why);
            continue;
        }
        if (zhashx_size(ids) >= SW_BROKER_AUTH_MAX_KEYS) {
            sw_log_limited(&self->gate_list, SW_LOG_WARN, "%s: %s holds more than %d keys; the rest are ignored",
                           self->name, path, SW_BROKER_AUTH_MAX_KEYS);
            break;
        }
        char id[SW_IDENTITY_ID_LEN + 1];
        sw_identity_fingerprint(key, id);
        zhashx_update(ids, id, "");
    }
    closedir(d);
    if (!ids)
        sw_err(err, errlen, "out of memory");
    return ids;
}

/*  Parses a denylist (Z85 keys or node ids, one per line) into a new set. */
static zhashx_t *s_read_deny(sw_broker_auth_t *self, const char *path, bool *present, char *err, size_t errlen)
{
    zhashx_t *ids = zhashx_new();
    if (!ids) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    *present = false;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return ids; /* no file: nobody denied */
        sw_err(err, errlen, "%s: %s", path, strerror(errno));
        zhashx_destroy(&ids);
        return NULL;
    }
    *present = true;
    char line[512];
    size_t total = 0;
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        total += strlen(line);
        if (total > S_DENY_MAX_FILE || zhashx_size(ids) >= SW_BROKER_AUTH_MAX_KEYS) {
            sw_log_limited(&self->gate_list, SW_LOG_WARN, "%s: %s is longer than its limits; the rest is ignored",
                           self->name, path);
            break;
        }
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strcspn(s, " \t\r\n");
        if (n == 0 || *s == '#')
            continue;
        s[n] = '\0';
        uint8_t key[SW_IDENTITY_KEY_BYTES];
        char id[SW_IDENTITY_ID_LEN + 1];
        if (s_is_hex_id(s, n)) {
            zhashx_update(ids, s, "");
        } else if (sw_identity_z85_decode(s, key) == 0) {
            sw_identity_fingerprint(key, id);
            zhashx_update(ids, id, "");
        } else {
            sw_log_limited(&self->gate_list, SW_LOG_WARN,
                           "%s: %s:%d: neither a Z85 key (40 characters) nor a node id (16 hex): ignored", self->name,
                           path, lineno);
        }
    }
    fclose(f);
    return ids;
}

/*  Re-reads l when its file or folder changed (looked at most once per
 *  S_RESCAN_MS unless force). Returns true when it was re-read. */
static bool s_refresh(sw_broker_auth_t *self, s_list_t *l, bool force)
{
    if (!l->path)
        return false;
    int64_t now = s_now_ms();
    if (!force && now - l->checked_ms < S_RESCAN_MS)
        return false;
    l->checked_ms = now;
    struct stat st;
    bool exists = stat(l->path, &st) == 0;
    if (!force && l->ids) {
        if (!exists && !l->present)
            return false;
        if (exists && l->present && st.st_mtim.tv_sec == l->mtime.tv_sec && st.st_mtim.tv_nsec == l->mtime.tv_nsec &&
            st.st_size == l->size)
            return false;
    }
    char err[600];
    bool present = exists;
    zhashx_t *ids = l->is_dir ? s_read_dir(self, l->path, err, sizeof err)
                              : s_read_deny(self, l->path, &present, err, sizeof err);
    if (!ids) {
        sw_log_limited(&self->gate_list, SW_LOG_WARN, "%s: cannot read %s (the previous list stays): %s", self->name,
                       l->path, err);
        return false;
    }
    zhashx_destroy(&l->ids);
    l->ids = ids;
    l->present = present;
    if (exists) {
        l->mtime = st.st_mtim;
        l->size = st.st_size;
    }
    sw_log(SW_LOG_INFO, "%s: read %zu key(s) from %s", self->name, zhashx_size(ids), l->path);
    return true;
}

/*  True when the key's id is in l (re-scanning a folder that changed). */
static bool s_listed(sw_broker_auth_t *self, s_list_t *l, const char *id)
{
    if (!l->path || !l->ids)
        return false;
    if (zhashx_lookup(l->ids, id))
        return true;
    return s_refresh(self, l, false) && zhashx_lookup(l->ids, id);
}

sw_broker_auth_t *sw_broker_auth_new(const sw_broker_auth_config_t *cfg, char *err, size_t errlen)
{
    sw_broker_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(self->name, sizeof self->name, "%s", cfg && cfg->log_name ? cfg->log_name : "broker");
    self->gate_refused = SW_LOG_GATE(1000, 5);
    self->gate_list = SW_LOG_GATE(1000, 5);
    self->allow = (s_list_t){.path = cfg ? cfg->allow_dir : NULL, .is_dir = true};
    self->gateways = (s_list_t){.path = cfg ? cfg->gateways_dir : NULL, .is_dir = true};
    self->brokers = (s_list_t){.path = cfg ? cfg->brokers_dir : NULL, .is_dir = true};
    self->deny = (s_list_t){.path = cfg ? cfg->deny_file : NULL, .is_dir = false};
    s_list_t *lists[] = {&self->allow, &self->gateways, &self->brokers, &self->deny};
    for (int i = 0; i < 4; i++) {
        s_list_t *l = lists[i];
        if (!l->path)
            continue;
        char why[600];
        bool present = false;
        l->ids = l->is_dir ? s_read_dir(self, l->path, why, sizeof why)
                           : s_read_deny(self, l->path, &present, why, sizeof why);
        if (!l->ids) {
            sw_err(err, errlen, "%s", why);
            sw_broker_auth_destroy(&self);
            return NULL;
        }
        struct stat st;
        if (stat(l->path, &st) == 0) {
            l->mtime = st.st_mtim;
            l->size = st.st_size;
        }
        l->present = l->is_dir || present;
        l->checked_ms = s_now_ms();
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
    zhashx_destroy(&self->allow.ids);
    zhashx_destroy(&self->deny.ids);
    zhashx_destroy(&self->gateways.ids);
    zhashx_destroy(&self->brokers.ids);
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

/*  Decides one request: the reason of a refusal into why, or NULL to accept. */
static const char *s_decide(sw_broker_auth_t *self, const char *mech, zframe_t *cred, const char *id)
{
    if (strcmp(mech, "CURVE") != 0 || !cred || zframe_size(cred) != SW_IDENTITY_KEY_BYTES)
        return "not a CURVE handshake";
    if (self->deny.ids && zhashx_lookup(self->deny.ids, id))
        return "key is on the denylist";
    if (self->allow.path && !s_listed(self, &self->allow, id) && !s_listed(self, &self->gateways, id) &&
        !s_listed(self, &self->brokers, id))
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
        const char *why = s_decide(self, mech, f[6], id);
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
    return s_refresh(self, &self->deny, false);
}

bool sw_broker_auth_denied(sw_broker_auth_t *self, const uint8_t key[32])
{
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(key, id);
    return self->deny.ids && zhashx_lookup(self->deny.ids, id);
}

bool sw_broker_auth_may_gateway(sw_broker_auth_t *self, const uint8_t key[32])
{
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(key, id);
    return s_listed(self, &self->gateways, id);
}

bool sw_broker_auth_may_broker(sw_broker_auth_t *self, const uint8_t key[32])
{
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(key, id);
    return s_listed(self, &self->brokers, id);
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
