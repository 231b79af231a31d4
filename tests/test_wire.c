/*  test_wire.c: framing, version refusal and body validation (protos/sw_wire)
 *  over real ZeroMQ sockets (ROUTER <-> DEALER on inproc). */
#include <string.h>

#include "sw_test.h"
#include "sw_wire.h"

static Swisd__V1__Body s_forward_body(Swisd__V1__ForwardRequest *fr, Swisd__V1__Hop **route, Swisd__V1__Hop *hop,
                                      Swisd__V1__LayerRange *lr, Swisd__V1__Activation *act, uint8_t *payload)
{
    swisd__v1__layer_range__init(lr);
    lr->begin = 0;
    lr->end = 2;
    swisd__v1__hop__init(hop);
    hop->node_id = "stage-1";
    hop->layers = lr;
    route[0] = hop;
    swisd__v1__activation__init(act);
    act->n_tok = 2;
    act->n_embd = 64;
    act->raw_bytes = 512;
    act->payload.data = payload;
    act->payload.len = 512;
    swisd__v1__forward_request__init(fr);
    fr->session_id = "sess";
    fr->request_id = 42;
    fr->origin = "gw";
    fr->n_route = 1;
    fr->route = route;
    fr->n_tok = 2;
    fr->activation = act;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_FORWARD_REQUEST;
    b.forward_request = fr;
    return b;
}

static int s_recv(zsock_t *router, sw_wire_msg_t *m, int *code, char *err)
{
    zpoller_t *p = zpoller_new(router, NULL);
    void *r = zpoller_wait(p, 2000);
    zpoller_destroy(&p);
    if (!r) {
        memset(m, 0, sizeof *m);
        *code = -99;
        return -99;
    }
    return sw_wire_recv(router, true, m, code, err, 256);
}

int main(void)
{
    zsys_handler_set(NULL);
    zsock_t *router = zsock_new_router("inproc://wire-test");
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    sw_wire_socket_setup(router, 0, 100);
    sw_wire_socket_setup(dealer, 0, 100);
    zsock_set_identity(dealer, "peer-A");
    zsock_connect(dealer, "inproc://wire-test");
    char err[256];
    int code;
    sw_wire_msg_t m;

    /* a valid forward request arrives intact */
    Swisd__V1__ForwardRequest fr;
    Swisd__V1__Hop *route[1], hop;
    Swisd__V1__LayerRange lr;
    Swisd__V1__Activation act;
    uint8_t payload[512];
    for (int i = 0; i < 512; i++) payload[i] = (uint8_t) (i * 7);
    Swisd__V1__Body b = s_forward_body(&fr, route, &hop, &lr, &act, payload);
    CHECK(sw_wire_send(dealer, NULL, "gw", "stage-1", 0, &b) == 0);
    CHECK(s_recv(router, &m, &code, err) == 0);
    CHECK(m.identity && zframe_streq(m.identity, "peer-A"));
    CHECK(m.header && !strcmp(m.header->src, "gw") && !strcmp(m.header->dst, "stage-1"));
    const Swisd__V1__Body *got = sw_wire_body(&m, &code, err, sizeof err);
    CHECK_MSG(got && got->msg_case == SWISD__V1__BODY__MSG_FORWARD_REQUEST, "%s", err);
    if (got) {
        CHECK(got->forward_request->request_id == 42 && got->forward_request->activation->payload.len == 512);
        CHECK(memcmp(got->forward_request->activation->payload.data, payload, 512) == 0);
    }
    /* relay: the body frame goes on byte-identical behind a new header */
    zframe_t *orig = zframe_dup(m.body_frame);
    CHECK(sw_wire_relay(router, m.identity, "gw", "stage-1", 1, m.body_frame) == 0);
    sw_wire_msg_free(&m);
    zpoller_t *p = zpoller_new(dealer, NULL);
    CHECK(zpoller_wait(p, 2000) == dealer);
    zpoller_destroy(&p);
    CHECK(sw_wire_recv(dealer, false, &m, &code, err, sizeof err) == 0);
    CHECK(m.header && m.header->hops == 1);
    CHECK(zframe_eq(orig, m.body_frame));
    zframe_destroy(&orig);
    sw_wire_msg_free(&m);

    /* another major version is refused with a message, not dropped */
    Swisd__V1__Header h = SWISD__V1__HEADER__INIT;
    h.version_major = 2;
    h.src = "x";
    uint8_t hb[64];
    size_t hn = swisd__v1__header__pack(&h, hb);
    zmsg_t *raw = zmsg_new();
    zmsg_addmem(raw, hb, hn);
    zmsg_addmem(raw, "", 0);
    zmsg_send(&raw, dealer);
    CHECK(s_recv(router, &m, &code, err) == -1);
    CHECK(code == SWISD__V1__ERROR_CODE__ERROR_UNSUPPORTED_VERSION && strstr(err, "2.0"));
    CHECK(m.identity != NULL); /* the caller can answer */
    sw_wire_msg_free(&m);

    /* wrong frame counts and garbage headers */
    zstr_send(dealer, "just one frame");
    CHECK(s_recv(router, &m, &code, err) == -1 && code == SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME);
    sw_wire_msg_free(&m);
    zstr_sendx(dealer, "\xff\xff\xff\xff garbage", "body", NULL);
    CHECK(s_recv(router, &m, &code, err) == -1 && code == SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME);
    sw_wire_msg_free(&m);
    char big[2048];
    memset(big, 'a', sizeof big);
    raw = zmsg_new();
    zmsg_addmem(raw, big, sizeof big);
    zmsg_addmem(raw, "", 0);
    zmsg_send(&raw, dealer);
    CHECK(s_recv(router, &m, &code, err) == -1 && strstr(err, "header frame"));
    sw_wire_msg_free(&m);
    /* a valid header with a garbage body: header ok, body refused */
    raw = zmsg_new();
    h.version_major = 1;
    hn = swisd__v1__header__pack(&h, hb);
    zmsg_addmem(raw, hb, hn);
    zmsg_addmem(raw, "\x0a\xff\xff\xff\xff\x0f", 6);
    zmsg_send(&raw, dealer);
    CHECK(s_recv(router, &m, &code, err) == 0);
    CHECK(sw_wire_body(&m, &code, err, sizeof err) == NULL && code == SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME);
    sw_wire_msg_free(&m);

    /* field validation */
    CHECK(sw_wire_validate_body(&b, err, sizeof err) == 0);
    fr.n_route = 0;
    CHECK(sw_wire_validate_body(&b, err, sizeof err) == -1 && strstr(err, "route"));
    fr.n_route = 1;
    act.n_tok = 3;
    CHECK(sw_wire_validate_body(&b, err, sizeof err) == -1);
    act.n_tok = 2;
    char long_id[100];
    memset(long_id, 'x', 99);
    long_id[99] = 0;
    fr.session_id = long_id;
    CHECK(sw_wire_validate_body(&b, err, sizeof err) == -1 && strstr(err, "session id"));
    fr.session_id = "sess";
    lr.end = 0;
    CHECK(sw_wire_validate_body(&b, err, sizeof err) == -1 && strstr(err, "layer range"));
    lr.end = 2;
    fr.n_tok = 5000;
    act.n_tok = 5000;
    CHECK(sw_wire_validate_body(&b, err, sizeof err) == -1);
    fr.n_tok = 2;
    act.n_tok = 2;
    /* a route visits each stage once, over contiguous layers */
    {
        Swisd__V1__LayerRange lr2[64];
        Swisd__V1__Hop hops[64], *route64[64];
        char names[64][16];
        for (int i = 0; i < 64; i++) {
            swisd__v1__layer_range__init(&lr2[i]);
            lr2[i].begin = (uint32_t) i;
            lr2[i].end = (uint32_t) i + 1;
            swisd__v1__hop__init(&hops[i]);
            snprintf(names[i], sizeof names[i], "stage-%d", i);
            hops[i].node_id = names[i];
            hops[i].layers = &lr2[i];
            route64[i] = &hops[i];
        }
        Swisd__V1__Hop **saved = fr.route;
        fr.route = route64;
        fr.n_route = 64;
        CHECK_MSG(sw_wire_validate_body(&b, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < 64; i++) /* the attack: one stage named 64 times */
            hops[i].node_id = "stage-0";
        CHECK(sw_wire_validate_body(&b, err, sizeof err) == -1 && strstr(err, "twice"));
        hops[5].node_id = names[5]; /* twice is enough */
        for (int i = 0; i < 64; i++)
            hops[i].node_id = i == 9 ? "stage-3" : names[i];
        CHECK(sw_wire_validate_body(&b, err, sizeof err) == -1 && strstr(err, "twice"));
        hops[9].node_id = names[9];
        lr2[10].begin = 11; /* a hole between hops 9 and 10 */
        lr2[10].end = 12;
        CHECK_MSG(sw_wire_validate_body(&b, err, sizeof err) == -1 && strstr(err, "not where hop"), "%s", err);
        lr2[10].begin = 10;
        lr2[10].end = 11;
        fr.route = saved;
        fr.n_route = 1;
    }
    Swisd__V1__Body empty = SWISD__V1__BODY__INIT;
    CHECK(sw_wire_validate_body(&empty, err, sizeof err) == -1);

    /* ROUTER_MANDATORY: a send to a vanished peer fails instead of vanishing */
    zframe_t *ghost = zframe_from("nobody");
    CHECK(sw_wire_send_error(router, ghost, "broker", "nobody", SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, NULL, 0,
                             "test") == -1);
    zframe_destroy(&ghost);
    CHECK(!strcmp(sw_wire_error_name(SWISD__V1__ERROR_CODE__ERROR_KV_MISSING), "KV_MISSING"));
    char id[33];
    sw_wire_new_id(id, sizeof id);
    CHECK(strlen(id) == 32);

    zsock_destroy(&dealer);
    zsock_destroy(&router);
    return sw_test_report("wire");
}
