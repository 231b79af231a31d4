/*  broker_peer.c: a scriptable broker peer for tests/test_broker.py.
 *
 *  usage: broker_peer --broker EP [--role stage|gateway|broker|client|N] [--id ID] [--region R]
 *                     [--model M] [--checksum C] [--layers A-B] [--hb MS] [--echo] [--raw] [--key PATH]
 *
 *  Keys: an EP with "#KEY" is dialed with CURVE, as the node of --key PATH
 *  (sw_identity_load) or of a fresh key (tests/test_key.h); the id is the
 *  key's fingerprint unless --id says otherwise (a secure broker refuses
 *  that). --raw always connects plain (the "#KEY" is dropped): a client
 *  without a key.
 *
 *  Client mode (default) runs a sw_broker_client (registration, heartbeats,
 *  re-registration). --raw opens a bare DEALER instead (no Hello), to send
 *  hand-made frames. --echo sends every received non-error body back to its
 *  src unchanged. --role N announces the raw Role number N (e.g. 99, which no
 *  broker should accept).
 *
 *  It also plays the attacker of tests/test_broker_attacks.py: a peer that
 *  stops reading ("deaf"), floods a node with frames ("flood"), repeats a
 *  command many times ("rep") or opens a new connection ("reconnect", so the
 *  broker sees a new routing id).
 *
 *  Commands, one per line on stdin:
 *    query MODEL CHECKSUM   DirectoryQuery to the broker ("-" = empty)
 *    send DST HEX           a raw body frame (hex) to DST through the broker
 *    raw HEX [HEX...]       exactly these frames on the socket ("-" = empty frame)
 *    rawbig HEX N           frames: HEX, then N zero bytes (oversize tests)
 *    load N                 report N active sessions in heartbeats
 *    layers A B             re-announce layers [A, B)
 *    status                 print registration state
 *    deaf / hear            stop / resume reading the socket (heartbeats go on)
 *    reconnect              (raw mode) close the DEALER and open a new one
 *    rep N COMMAND...       run COMMAND N times (1..1000000); one "ok" line at the end
 *                           {"ev":"ok","cmd":"rep","n":N,"failed":K}
 *    flood DST SECONDS HEX  send the body HEX to DST as fast as the socket takes it
 *                           for SECONDS (0.1..60), reading (not printing) what comes
 *                           back; then {"ev":"flooded","sent":N,"blocked":N,
 *                           "seconds":S,"errors":{"CODE":N,...},"other":N}
 *                           (blocked: sends refused because the queue was full)
 *    quit                   Goodbye and exit (also on end of input)
 *  Events, one JSON object per line on stdout:
 *    {"ev":"ready","id":...}       once at start
 *    {"ev":"registered","n":K,"broker":...,"region":...}   each (re-)registration
 *    {"ev":"msg","src":...,"dst":...,"hops":N,"kind":...,"body":HEX, ...}
 *        errors add "code" and "text"; directory replies add "broker_id",
 *        "region" and "stages":[{node_id,region,model,checksum,begin,end,
 *        broker_id,age_ms,active_sessions,topic}]
 *    {"ev":"bad","text":...}       (raw mode) a frame that did not parse
 *    {"ev":"status",...}, {"ev":"ok","cmd":...}, {"ev":"fail","cmd":...,"text":...}
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_key.h"
#include "sw_broker_client.h"
#include "sw_common.h"
#include "sw_wire.h"

static void s_json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void s_hex(const uint8_t *d, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++)
        printf("%02x", d[i]);
    putchar('"');
}

static zframe_t *s_unhex(const char *h)
{
    if (!strcmp(h, "-"))
        return zframe_new_empty();
    size_t n = strlen(h);
    if (n % 2)
        return NULL;
    zframe_t *f = zframe_new(NULL, n / 2);
    uint8_t *d = zframe_data(f);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) {
            zframe_destroy(&f);
            return NULL;
        }
        d[i] = (uint8_t) v;
    }
    return f;
}

static void s_print_msg(const sw_wire_msg_t *m)
{
    const Swisd__V1__Header *h = m->header;
    printf("{\"ev\":\"msg\",\"src\":");
    s_json_str(h->src);
    printf(",\"dst\":");
    s_json_str(h->dst);
    printf(",\"hops\":%u,\"kind\":", h->hops);
    s_json_str(sw_wire_kind_name(m->body));
    printf(",\"body\":");
    s_hex(zframe_data(m->body_frame), zframe_size(m->body_frame));
    const Swisd__V1__Body *b = m->body;
    if (b && b->msg_case == SWISD__V1__BODY__MSG_ERROR) {
        printf(",\"code\":");
        s_json_str(sw_wire_error_name(b->error->code));
        printf(",\"text\":");
        s_json_str(b->error->message);
    }
    if (b && b->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPLY) {
        const Swisd__V1__DirectoryReply *r = b->directory_reply;
        printf(",\"broker_id\":");
        s_json_str(r->broker_id);
        printf(",\"region\":");
        s_json_str(r->region);
        printf(",\"stages\":[");
        for (size_t i = 0; i < r->n_stages; i++) {
            const Swisd__V1__StageInfo *s = r->stages[i];
            printf("%s{\"node_id\":", i ? "," : "");
            s_json_str(s->node_id);
            printf(",\"region\":");
            s_json_str(s->region);
            printf(",\"model\":");
            s_json_str(s->model ? s->model->id : "");
            printf(",\"checksum\":");
            s_json_str(s->model ? s->model->checksum : "");
            printf(",\"begin\":%u,\"end\":%u,\"broker_id\":", s->layers ? s->layers->begin : 0,
                   s->layers ? s->layers->end : 0);
            s_json_str(s->broker_id);
            printf(",\"age_ms\":%u,\"active_sessions\":%u,\"topic\":", s->age_ms,
                   s->load ? s->load->active_sessions : 0);
            s_json_str(s->topic);
            printf("}");
        }
        printf("]");
    }
    printf("}\n");
    fflush(stdout);
}

typedef struct {
    sw_broker_client_t *bc; /* client mode */
    zsock_t *raw;           /* raw mode */
    const char *endpoint;   /* the broker (raw mode reconnects to it) */
    bool echo;
    bool deaf;              /* not reading the socket */
    int quiet;              /* > 0 inside "rep": no ok/fail lines, failures counted */
    uint64_t quiet_failed;  /* failures while quiet */
    uint64_t regs;
    bool quit;
} s_peer_t;

static zsock_t *s_sock(s_peer_t *p)
{
    return p->bc ? sw_broker_client_sock(p->bc) : p->raw;
}

static void s_ok(s_peer_t *p, const char *cmd)
{
    if (p->quiet)
        return;
    printf("{\"ev\":\"ok\",\"cmd\":");
    s_json_str(cmd);
    printf("}\n");
    fflush(stdout);
}

static void s_fail(s_peer_t *p, const char *cmd, const char *text)
{
    if (p->quiet) {
        p->quiet_failed++;
        return;
    }
    printf("{\"ev\":\"fail\",\"cmd\":");
    s_json_str(cmd);
    printf(",\"text\":");
    s_json_str(text);
    printf("}\n");
    fflush(stdout);
}

/*  A bare DEALER connected to endpoint (raw mode), or NULL. */
static zsock_t *s_raw_socket(const char *endpoint)
{
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s)
        return NULL;
    sw_wire_socket_setup(s, 0, 1000);
    char addr[512];
    snprintf(addr, sizeof addr, "%s", endpoint);
    addr[strcspn(addr, "#")] = '\0'; /* plain: no CURVE */
    if (zsock_connect(s, "%s", addr) != 0)
        zsock_destroy(&s);
    return s;
}

/*  Reads what is queued on the client's socket without printing it; counts
 *  Errors by code (codes[0..15]) and everything else in *other. */
static void s_drain_count(s_peer_t *p, uint64_t *codes, uint64_t *other)
{
    for (int i = 0; i < 1000 && (zsock_events(s_sock(p)) & ZMQ_POLLIN); i++) {
        sw_wire_msg_t m;
        if (sw_broker_client_recv(p->bc, &m) != 1)
            continue;
        if (m.body->msg_case == SWISD__V1__BODY__MSG_ERROR && m.body->error->code >= 0 && m.body->error->code < 16)
            codes[m.body->error->code]++;
        else
            (*other)++;
        sw_wire_msg_free(&m);
    }
}

/*  Sends copies of f to dst as fast as the socket accepts them for `seconds`,
 *  draining (and counting) replies, then prints the "flooded" event. */
static void s_flood(s_peer_t *p, const char *dst, double seconds, zframe_t *f)
{
    uint64_t codes[16] = {0}, other = 0, sent = 0, blocked = 0;
    const uint64_t t0 = sw_now_ns(), end = t0 + (uint64_t) (seconds * 1e9);
    while (sw_now_ns() < end && !zsys_interrupted) {
        zframe_t *copy = zframe_dup(f);
        if (sw_broker_client_relay(p->bc, NULL, dst, 0, &copy) == 0) {
            sent++;
        } else {
            blocked++;
            zframe_destroy(&copy);
            zmq_pollitem_t it = {zsock_resolve(s_sock(p)), 0, ZMQ_POLLIN | ZMQ_POLLOUT, 0};
            zmq_poll(&it, 1, 5);
        }
        if ((sent + blocked) % 64 == 0) {
            s_drain_count(p, codes, &other);
            sw_broker_client_tick(p->bc);
        }
    }
    s_drain_count(p, codes, &other);
    printf("{\"ev\":\"flooded\",\"sent\":%llu,\"blocked\":%llu,\"seconds\":%.3f,\"errors\":{",
           (unsigned long long) sent, (unsigned long long) blocked, (double) (sw_now_ns() - t0) / 1e9);
    bool first = true;
    for (int c = 0; c < 16; c++) {
        if (!codes[c])
            continue;
        printf("%s", first ? "" : ",");
        s_json_str(sw_wire_error_name(c));
        printf(":%llu", (unsigned long long) codes[c]);
        first = false;
    }
    printf("},\"other\":%llu}\n", (unsigned long long) other);
    fflush(stdout);
}

static void s_command(s_peer_t *p, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r", &save);
    if (!cmd)
        return;
    if (!strcmp(cmd, "quit")) {
        p->quit = true;
    } else if (!strcmp(cmd, "query") && p->bc) {
        char *model = strtok_r(NULL, " \t\r", &save), *sum = strtok_r(NULL, " \t\r", &save);
        Swisd__V1__DirectoryQuery q = SWISD__V1__DIRECTORY_QUERY__INIT;
        q.model_id = model && strcmp(model, "-") ? model : "";
        q.checksum = sum && strcmp(sum, "-") ? sum : "";
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_QUERY;
        b.directory_query = &q;
        if (sw_broker_client_send(p->bc, "", &b) == 0)
            s_ok(p, cmd);
        else
            s_fail(p, cmd, "send failed");
    } else if (!strcmp(cmd, "send") && p->bc) {
        char *dst = strtok_r(NULL, " \t\r", &save), *hex = strtok_r(NULL, " \t\r", &save);
        zframe_t *f = dst && hex ? s_unhex(hex) : NULL;
        if (!f) {
            s_fail(p, cmd, "usage: send DST HEX");
            return;
        }
        if (sw_broker_client_relay(p->bc, NULL, dst, 0, &f) == 0)
            s_ok(p, cmd);
        else
            s_fail(p, cmd, "send failed");
        zframe_destroy(&f);
    } else if (!strcmp(cmd, "raw")) {
        zmsg_t *m = zmsg_new();
        for (char *h; (h = strtok_r(NULL, " \t\r", &save));) {
            zframe_t *f = s_unhex(h);
            if (!f) {
                zmsg_destroy(&m);
                s_fail(p, cmd, "bad hex");
                return;
            }
            zmsg_append(m, &f);
        }
        if (zmsg_send(&m, s_sock(p)) == 0)
            s_ok(p, cmd);
        else
            s_fail(p, cmd, "send failed");
        zmsg_destroy(&m);
    } else if (!strcmp(cmd, "rawbig")) {
        char *h = strtok_r(NULL, " \t\r", &save), *n = strtok_r(NULL, " \t\r", &save);
        zframe_t *hf = h ? s_unhex(h) : NULL;
        size_t size = n ? strtoull(n, NULL, 10) : 0;
        if (!hf || size == 0 || size > (1ull << 30)) {
            zframe_destroy(&hf);
            s_fail(p, cmd, "usage: rawbig HEX N");
            return;
        }
        zmsg_t *m = zmsg_new();
        zmsg_append(m, &hf);
        zframe_t *big = zframe_new(NULL, size);
        memset(zframe_data(big), 0, size);
        zmsg_append(m, &big);
        zsock_set_sndtimeo(s_sock(p), 5000);
        if (zmsg_send(&m, s_sock(p)) == 0)
            s_ok(p, cmd);
        else
            s_fail(p, cmd, "send failed");
        zmsg_destroy(&m);
    } else if (!strcmp(cmd, "load") && p->bc) {
        char *n = strtok_r(NULL, " \t\r", &save);
        Swisd__V1__Load l = SWISD__V1__LOAD__INIT;
        l.active_sessions = n ? (uint32_t) atoi(n) : 0;
        sw_broker_client_set_load(p->bc, &l);
        s_ok(p, cmd);
    } else if (!strcmp(cmd, "layers") && p->bc) {
        char *a = strtok_r(NULL, " \t\r", &save), *b = strtok_r(NULL, " \t\r", &save);
        sw_broker_client_set_layers(p->bc, a ? (uint32_t) atoi(a) : 0, b ? (uint32_t) atoi(b) : 0);
        s_ok(p, cmd);
    } else if (!strcmp(cmd, "status") && p->bc) {
        printf("{\"ev\":\"status\",\"registered\":%s,\"registrations\":%llu,\"rtt_ms\":%.3f,\"broker\":",
               sw_broker_client_registered(p->bc) ? "true" : "false",
               (unsigned long long) sw_broker_client_registrations(p->bc), sw_broker_client_rtt_ms(p->bc));
        s_json_str(sw_broker_client_broker_id(p->bc));
        printf("}\n");
        fflush(stdout);
    } else if (!strcmp(cmd, "deaf") || !strcmp(cmd, "hear")) {
        p->deaf = !strcmp(cmd, "deaf");
        s_ok(p, cmd);
    } else if (!strcmp(cmd, "reconnect") && p->raw) {
        zsock_set_linger(p->raw, 1000); /* what was queued still goes out */
        zsock_destroy(&p->raw);
        p->raw = s_raw_socket(p->endpoint);
        if (p->raw)
            s_ok(p, cmd);
        else
            s_fail(p, cmd, "cannot reconnect");
    } else if (!strcmp(cmd, "rep")) {
        char *n = strtok_r(NULL, " \t\r", &save);
        long times = n ? strtol(n, NULL, 10) : 0;
        if (times < 1 || times > 1000000 || !save || !*save) {
            s_fail(p, cmd, "usage: rep N COMMAND...");
            return;
        }
        char *copy = malloc(strlen(save) + 1);
        if (!copy) {
            s_fail(p, cmd, "out of memory");
            return;
        }
        const uint64_t failed0 = p->quiet_failed;
        p->quiet++;
        for (long i = 0; i < times && !p->quit; i++) {
            strcpy(copy, save);
            s_command(p, copy);
        }
        p->quiet--;
        free(copy);
        if (!p->quiet) {
            printf("{\"ev\":\"ok\",\"cmd\":\"rep\",\"n\":%ld,\"failed\":%llu}\n", times,
                   (unsigned long long) (p->quiet_failed - failed0));
            fflush(stdout);
        }
    } else if (!strcmp(cmd, "flood") && p->bc) {
        char *dst = strtok_r(NULL, " \t\r", &save), *secs = strtok_r(NULL, " \t\r", &save),
             *hex = strtok_r(NULL, " \t\r", &save);
        double seconds = secs ? strtod(secs, NULL) : 0;
        zframe_t *f = dst && hex ? s_unhex(hex) : NULL;
        if (!f || !(seconds >= 0.1 && seconds <= 60)) {
            zframe_destroy(&f);
            s_fail(p, cmd, "usage: flood DST SECONDS HEX");
            return;
        }
        s_flood(p, dst, seconds, f);
        zframe_destroy(&f);
    } else {
        s_fail(p, cmd, "unknown command (or not in this mode)");
    }
}

static void s_on_socket(s_peer_t *p)
{
    for (int i = 0; i < 1000 && (zsock_events(s_sock(p)) & ZMQ_POLLIN); i++) {
        sw_wire_msg_t m;
        if (p->bc) {
            if (sw_broker_client_recv(p->bc, &m) != 1)
                continue;
        } else {
            int code;
            char err[256];
            if (sw_wire_recv(p->raw, false, &m, &code, err, sizeof err) != 0 || !sw_wire_body(&m, &code, err, sizeof err)) {
                printf("{\"ev\":\"bad\",\"text\":");
                s_json_str(err);
                printf("}\n");
                fflush(stdout);
                sw_wire_msg_free(&m);
                continue;
            }
        }
        s_print_msg(&m);
        if (p->echo && p->bc && m.body->msg_case != SWISD__V1__BODY__MSG_ERROR && m.header->src[0])
            sw_broker_client_relay(p->bc, NULL, m.header->src, 0, &m.body_frame);
        sw_wire_msg_free(&m);
    }
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL, *role = "client", *model = NULL, *checksum = "", *layers = NULL;
    sw_broker_client_config_t cfg = {0};
    bool raw = false, echo = false;
    const char *key_path = NULL;
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"role", required_argument, 0, 'r'},
        {"id", required_argument, 0, 'i'},     {"region", required_argument, 0, 'g'},
        {"model", required_argument, 0, 'm'},  {"checksum", required_argument, 0, 'c'},
        {"layers", required_argument, 0, 'l'}, {"hb", required_argument, 0, 'H'},
        {"echo", no_argument, 0, 'e'},         {"raw", no_argument, 0, 'R'},
        {"key", required_argument, 0, 'k'},    {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b': endpoint = optarg; break;
        case 'r': role = optarg; break;
        case 'i': cfg.node_id = optarg; break;
        case 'g': cfg.region = optarg; break;
        case 'm': model = optarg; break;
        case 'c': checksum = optarg; break;
        case 'l': layers = optarg; break;
        case 'H': cfg.heartbeat_ms = atoi(optarg); break;
        case 'e': echo = true; break;
        case 'R': raw = true; break;
        case 'k': key_path = optarg; break;
        default: fprintf(stderr, "broker_peer: bad option\n"); return 2;
        }
    }
    if (!endpoint) {
        fprintf(stderr, "broker_peer: --broker is required\n");
        return 2;
    }
    s_peer_t p = {.echo = echo, .endpoint = endpoint};
    char err[256];
    if (raw) {
        p.raw = s_raw_socket(endpoint);
        if (!p.raw) {
            fprintf(stderr, "broker_peer: cannot connect to %s\n", endpoint);
            return 1;
        }
        printf("{\"ev\":\"ready\",\"id\":\"\"}\n");
    } else {
        cfg.endpoint = endpoint;
        if (key_path && strchr(endpoint, '#')) {
            char kerr[4200];
            if (!(cfg.identity = sw_identity_load(key_path, kerr, sizeof kerr))) {
                fprintf(stderr, "broker_peer: %s\n", kerr);
                return 1;
            }
        } else {
            cfg.identity = sw_test_key_for(endpoint);
        }
        cfg.role = !strcmp(role, "stage")     ? SWISD__V1__ROLE__ROLE_STAGE
                   : !strcmp(role, "gateway") ? SWISD__V1__ROLE__ROLE_GATEWAY
                   : !strcmp(role, "broker")  ? SWISD__V1__ROLE__ROLE_BROKER
                   : !strcmp(role, "client")  ? SWISD__V1__ROLE__ROLE_CLIENT
                                              : (Swisd__V1__Role) atoi(role);
        Swisd__V1__ModelRef mr = SWISD__V1__MODEL_REF__INIT;
        if (model) {
            mr.id = (char *) model;
            mr.checksum = (char *) checksum;
            mr.n_layer = 5;
            mr.n_embd = 64;
            cfg.model = &mr;
        }
        if (layers && sscanf(layers, "%u-%u", &cfg.layer_begin, &cfg.layer_end) != 2) {
            fprintf(stderr, "broker_peer: --layers A-B (half-open)\n");
            return 2;
        }
        Swisd__V1__Capabilities caps = SWISD__V1__CAPABILITIES__INIT;
        caps.threads = 1;
        caps.ms_per_layer = 0.5f;
        cfg.caps = &caps;
        p.bc = sw_broker_client_new(&cfg, err, sizeof err);
        if (!p.bc) {
            fprintf(stderr, "broker_peer: %s\n", err);
            return 1;
        }
        printf("{\"ev\":\"ready\",\"id\":");
        s_json_str(sw_broker_client_id(p.bc));
        printf("}\n");
    }
    fflush(stdout);

    char buf[1 << 20];
    size_t have = 0;
    bool eof = false;
    while (!p.quit && !eof && !zsys_interrupted) {
        /* a deaf peer leaves its socket out of the poll: its queues fill up */
        zmq_pollitem_t items[2] = {{zsock_resolve(s_sock(&p)), 0, p.deaf ? 0 : ZMQ_POLLIN, 0},
                                   {NULL, 0, ZMQ_POLLIN, 0}};
        int timeout = p.bc ? sw_broker_client_timeout_ms(p.bc) : 100;
        if (zmq_poll(items, 2, timeout) < 0 && zmq_errno() != EINTR)
            break;
        if (!p.deaf && (items[0].revents & ZMQ_POLLIN))
            s_on_socket(&p);
        if (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
            ssize_t n = read(0, buf + have, sizeof buf - 1 - have);
            if (n <= 0) {
                eof = true;
            } else {
                have += (size_t) n;
                char *nl;
                while ((nl = memchr(buf, '\n', have))) {
                    *nl = '\0';
                    s_command(&p, buf);
                    size_t used = (size_t) (nl + 1 - buf);
                    memmove(buf, nl + 1, have - used);
                    have -= used;
                }
                if (have == sizeof buf - 1)
                    have = 0; /* overlong line: drop */
            }
        }
        if (p.bc) {
            sw_broker_client_tick(p.bc);
            uint64_t regs = sw_broker_client_registrations(p.bc);
            if (regs != p.regs && sw_broker_client_registered(p.bc)) {
                p.regs = regs;
                printf("{\"ev\":\"registered\",\"n\":%llu,\"broker\":", (unsigned long long) regs);
                s_json_str(sw_broker_client_broker_id(p.bc));
                printf(",\"region\":");
                s_json_str(sw_broker_client_broker_region(p.bc));
                printf("}\n");
                fflush(stdout);
            }
        }
    }
    sw_broker_client_destroy(&p.bc);
    zsock_destroy(&p.raw);
    return 0;
}
