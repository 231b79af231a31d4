/*  broker_peer.c: a scriptable broker peer for tests/test_broker.py.
 *
 *  usage: broker_peer --broker EP [--role stage|gateway|broker|client] [--id ID] [--region R]
 *                     [--model M] [--checksum C] [--layers A-B] [--hb MS] [--echo] [--raw]
 *
 *  Client mode (default) runs a sw_broker_client (registration, heartbeats,
 *  re-registration). --raw opens a bare DEALER instead (no Hello), to send
 *  hand-made frames. --echo sends every received non-error body back to its
 *  src unchanged.
 *
 *  Commands, one per line on stdin:
 *    query MODEL CHECKSUM   DirectoryQuery to the broker ("-" = empty)
 *    send DST HEX           a raw body frame (hex) to DST through the broker
 *    raw HEX [HEX...]       exactly these frames on the socket ("-" = empty frame)
 *    rawbig HEX N           frames: HEX, then N zero bytes (oversize tests)
 *    load N                 report N active sessions in heartbeats
 *    layers A B             re-announce layers [A, B)
 *    status                 print registration state
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
    bool echo;
    uint64_t regs;
    bool quit;
} s_peer_t;

static zsock_t *s_sock(s_peer_t *p)
{
    return p->bc ? sw_broker_client_sock(p->bc) : p->raw;
}

static void s_ok(const char *cmd)
{
    printf("{\"ev\":\"ok\",\"cmd\":");
    s_json_str(cmd);
    printf("}\n");
    fflush(stdout);
}

static void s_fail(const char *cmd, const char *text)
{
    printf("{\"ev\":\"fail\",\"cmd\":");
    s_json_str(cmd);
    printf(",\"text\":");
    s_json_str(text);
    printf("}\n");
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
            s_ok(cmd);
        else
            s_fail(cmd, "send failed");
    } else if (!strcmp(cmd, "send") && p->bc) {
        char *dst = strtok_r(NULL, " \t\r", &save), *hex = strtok_r(NULL, " \t\r", &save);
        zframe_t *f = dst && hex ? s_unhex(hex) : NULL;
        if (!f) {
            s_fail(cmd, "usage: send DST HEX");
            return;
        }
        if (sw_broker_client_relay(p->bc, NULL, dst, 0, &f) == 0)
            s_ok(cmd);
        else
            s_fail(cmd, "send failed");
        zframe_destroy(&f);
    } else if (!strcmp(cmd, "raw")) {
        zmsg_t *m = zmsg_new();
        for (char *h; (h = strtok_r(NULL, " \t\r", &save));) {
            zframe_t *f = s_unhex(h);
            if (!f) {
                zmsg_destroy(&m);
                s_fail(cmd, "bad hex");
                return;
            }
            zmsg_append(m, &f);
        }
        if (zmsg_send(&m, s_sock(p)) == 0)
            s_ok(cmd);
        else
            s_fail(cmd, "send failed");
        zmsg_destroy(&m);
    } else if (!strcmp(cmd, "rawbig")) {
        char *h = strtok_r(NULL, " \t\r", &save), *n = strtok_r(NULL, " \t\r", &save);
        zframe_t *hf = h ? s_unhex(h) : NULL;
        size_t size = n ? strtoull(n, NULL, 10) : 0;
        if (!hf || size == 0 || size > (1ull << 30)) {
            zframe_destroy(&hf);
            s_fail(cmd, "usage: rawbig HEX N");
            return;
        }
        zmsg_t *m = zmsg_new();
        zmsg_append(m, &hf);
        zframe_t *big = zframe_new(NULL, size);
        memset(zframe_data(big), 0, size);
        zmsg_append(m, &big);
        zsock_set_sndtimeo(s_sock(p), 5000);
        if (zmsg_send(&m, s_sock(p)) == 0)
            s_ok(cmd);
        else
            s_fail(cmd, "send failed");
        zmsg_destroy(&m);
    } else if (!strcmp(cmd, "load") && p->bc) {
        char *n = strtok_r(NULL, " \t\r", &save);
        Swisd__V1__Load l = SWISD__V1__LOAD__INIT;
        l.active_sessions = n ? (uint32_t) atoi(n) : 0;
        sw_broker_client_set_load(p->bc, &l);
        s_ok(cmd);
    } else if (!strcmp(cmd, "layers") && p->bc) {
        char *a = strtok_r(NULL, " \t\r", &save), *b = strtok_r(NULL, " \t\r", &save);
        sw_broker_client_set_layers(p->bc, a ? (uint32_t) atoi(a) : 0, b ? (uint32_t) atoi(b) : 0);
        s_ok(cmd);
    } else if (!strcmp(cmd, "status") && p->bc) {
        printf("{\"ev\":\"status\",\"registered\":%s,\"registrations\":%llu,\"rtt_ms\":%.3f,\"broker\":",
               sw_broker_client_registered(p->bc) ? "true" : "false",
               (unsigned long long) sw_broker_client_registrations(p->bc), sw_broker_client_rtt_ms(p->bc));
        s_json_str(sw_broker_client_broker_id(p->bc));
        printf("}\n");
        fflush(stdout);
    } else {
        s_fail(cmd, "unknown command (or not in this mode)");
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
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"role", required_argument, 0, 'r'},
        {"id", required_argument, 0, 'i'},     {"region", required_argument, 0, 'g'},
        {"model", required_argument, 0, 'm'},  {"checksum", required_argument, 0, 'c'},
        {"layers", required_argument, 0, 'l'}, {"hb", required_argument, 0, 'H'},
        {"echo", no_argument, 0, 'e'},         {"raw", no_argument, 0, 'R'},
        {0, 0, 0, 0},
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
        default: fprintf(stderr, "broker_peer: bad option\n"); return 2;
        }
    }
    if (!endpoint) {
        fprintf(stderr, "broker_peer: --broker is required\n");
        return 2;
    }
    s_peer_t p = {.echo = echo};
    char err[256];
    if (raw) {
        p.raw = zsock_new(ZMQ_DEALER);
        sw_wire_socket_setup(p.raw, 0, 1000);
        if (zsock_connect(p.raw, "%s", endpoint) != 0) {
            fprintf(stderr, "broker_peer: cannot connect to %s\n", endpoint);
            return 1;
        }
        printf("{\"ev\":\"ready\",\"id\":\"\"}\n");
    } else {
        cfg.endpoint = endpoint;
        cfg.role = !strcmp(role, "stage")     ? SWISD__V1__ROLE__ROLE_STAGE
                   : !strcmp(role, "gateway") ? SWISD__V1__ROLE__ROLE_GATEWAY
                   : !strcmp(role, "broker")  ? SWISD__V1__ROLE__ROLE_BROKER
                                              : SWISD__V1__ROLE__ROLE_CLIENT;
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
    while (!p.quit && !eof) {
        zmq_pollitem_t items[2] = {{zsock_resolve(s_sock(&p)), 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0}};
        int timeout = p.bc ? sw_broker_client_timeout_ms(p.bc) : 100;
        if (zmq_poll(items, 2, timeout) < 0 && zmq_errno() != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
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
