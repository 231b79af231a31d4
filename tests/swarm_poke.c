/*  swarm_poke.c: sends malformed and unservable frames to a running swarm and
 *  prints one line per probe: "probe NAME: error CODE" when the process
 *  answered with an Error, "probe NAME: no answer" otherwise.
 *    swarm_poke rpc ENDPOINT            probes the gateway's RPC socket
 *    swarm_poke stage BROKER STAGE_ID BEGIN END [N_EMBD [STAGE_KEY_FILE]]
 *        probes a stage (holding [BEGIN, END), rows of N_EMBD, default 64) via
 *        its broker; with the stage's key file (its public half is read) the
 *        valid activations are sealed for it as a gateway would (docs/security.md),
 *        and two more probes run: "stage-sealed-pos0" (a sealed one-token
 *        step at position 0: answered with a reply, "probe NAME: reply") and
 *        "stage-replay" (that same sealed body again under a new request id:
 *        must be refused, BAD_SEAL)
 *  Used by test_swarm.py, which then checks the processes still serve. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_endpoint.h"
#include "test_key.h"
#include "sw_broker_client.h"
#include "sw_codec.h"
#include "sw_identity.h"
#include "sw_seal_peers.h"
#include "sw_wire.h"

static void s_report(const char *name, zsock_t *s, bool dealer_of_broker, sw_broker_client_t *bc)
{
    zpoller_t *p = zpoller_new(s, NULL);
    const char *res = "no answer";
    char code[64] = "";
    for (int tries = 0; tries < 20; tries++) {
        if (zpoller_wait(p, 200) != s)
            continue;
        sw_wire_msg_t m;
        int c;
        char err[256];
        if (bc) {
            if (sw_broker_client_recv(bc, &m) != 1)
                continue;
        } else if (sw_wire_recv(s, false, &m, &c, err, sizeof err) != 0) {
            sw_wire_msg_free(&m);
            continue;
        }
        const Swisd__V1__Body *b = m.body ? m.body : sw_wire_body(&m, &c, err, sizeof err);
        if (b && b->msg_case == SWISD__V1__BODY__MSG_FORWARD_REPLY) {
            res = "reply";
            sw_wire_msg_free(&m);
            break;
        }
        if (b && b->msg_case == SWISD__V1__BODY__MSG_ERROR) {
            snprintf(code, sizeof code, "error %s", sw_wire_error_name(b->error->code));
            res = code;
            sw_wire_msg_free(&m);
            break;
        }
        sw_wire_msg_free(&m);
    }
    (void) dealer_of_broker;
    printf("probe %s: %s\n", name, res);
    fflush(stdout);
    zpoller_destroy(&p);
}

int main(int argc, char **argv)
{
    zsys_handler_set(NULL);
    if (argc == 3 && !strcmp(argv[1], "rpc")) {
        zsock_t *s = zsock_new(ZMQ_DEALER);
        sw_wire_socket_setup(s, 0, 100);
        char cerr[512];
        if (sw_endpoint_connect(s, argv[2], NULL, cerr, sizeof cerr) != 0) {
            fprintf(stderr, "swarm_poke: %s\n", cerr);
            return 1;
        }
        zstr_send(s, "one frame only");
        s_report("one-frame", s, false, NULL);
        zstr_sendx(s, "\x0a\xff\xff\xff", "body", NULL);
        s_report("garbage-header", s, false, NULL);
        Swisd__V1__Header h = SWISD__V1__HEADER__INIT;
        h.version_major = 1;
        uint8_t hb[64];
        size_t hn = swisd__v1__header__pack(&h, hb);
        zmsg_t *m = zmsg_new();
        zmsg_addmem(m, hb, hn);
        zmsg_addmem(m, "\x52\xff\xff\xff\xff\xff", 6);
        zmsg_send(&m, s);
        s_report("garbage-body", s, false, NULL);
        h.version_major = 9;
        hn = swisd__v1__header__pack(&h, hb);
        m = zmsg_new();
        zmsg_addmem(m, hb, hn);
        zmsg_addmem(m, "", 0);
        zmsg_send(&m, s);
        s_report("version-9", s, false, NULL);
        Swisd__V1__GenerateRequest g = SWISD__V1__GENERATE_REQUEST__INIT;
        g.prompt = "hello";
        g.max_tokens = 0;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_GENERATE_REQUEST;
        b.generate_request = &g;
        sw_wire_send(s, NULL, "poke", "", 0, &b);
        s_report("max-tokens-0", s, false, NULL);
        g.max_tokens = 100000;
        sw_wire_send(s, NULL, "poke", "", 0, &b);
        s_report("max-tokens-100000", s, false, NULL);
        zsock_destroy(&s);
        return 0;
    }
    if (argc >= 6 && argc <= 8 && !strcmp(argv[1], "stage")) {
        char err[256];
        sw_broker_client_config_t cfg = {.endpoint = argv[2], .role = SWISD__V1__ROLE__ROLE_CLIENT,
                                         .identity = sw_test_key_for(argv[2])};
        sw_broker_client_t *bc = sw_broker_client_new(&cfg, err, sizeof err);
        if (!bc) {
            fprintf(stderr, "swarm_poke: %s\n", err);
            return 1;
        }
        sw_broker_client_wait_registered(bc, 5000);
        zframe_t *junk = zframe_new("\x52\xff\xff\xff\xff\xff", 6);
        sw_broker_client_relay(bc, NULL, argv[3], 0, &junk);
        zframe_destroy(&junk);
        s_report("stage-garbage-body", sw_broker_client_sock(bc), true, bc);
        /* a well-formed forward request whose route does not start at this stage */
        Swisd__V1__LayerRange lr = SWISD__V1__LAYER_RANGE__INIT;
        lr.begin = 0;
        lr.end = 1;
        Swisd__V1__Hop hop = SWISD__V1__HOP__INIT;
        hop.node_id = "someone-else";
        hop.layers = &lr;
        Swisd__V1__Hop *route[1] = {&hop};
        uint8_t payload[4] = {0};
        Swisd__V1__Activation act = SWISD__V1__ACTIVATION__INIT;
        act.n_tok = 1;
        act.n_embd = 1;
        act.raw_bytes = 4;
        act.payload.data = payload;
        act.payload.len = 4;
        Swisd__V1__ForwardRequest fr = SWISD__V1__FORWARD_REQUEST__INIT;
        fr.session_id = "poke";
        fr.request_id = 1;
        fr.origin = (char *) sw_broker_client_id(bc);
        fr.route = route;
        fr.n_route = 1;
        fr.n_tok = 1;
        fr.activation = &act;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_FORWARD_REQUEST;
        b.forward_request = &fr;
        sw_broker_client_send(bc, argv[3], &b);
        s_report("stage-wrong-route", sw_broker_client_sock(bc), true, bc);
        hop.node_id = argv[3];
        lr.begin = (uint32_t) atoi(argv[4]); /* the stage's own layers */
        lr.end = (uint32_t) atoi(argv[5]);
        fr.pos = 7;
        sw_broker_client_send(bc, argv[3], &b); /* rows of 1 value: refused before any KV cache is made */
        s_report("stage-bad-activation", sw_broker_client_sock(bc), true, bc);
        /* a valid activation (n_embd from argv[6]) at position 7 of a session the stage does not hold */
        const int n_embd = argc > 6 ? atoi(argv[6]) : 64;
        sw_codec_config_t f32 = {.dtype = SW_DTYPE_F32};
        sw_codec_t *codec = sw_codec_new(&f32, n_embd, 1);
        float *row = calloc((size_t) n_embd, sizeof(float));
        sw_codec_header_t h;
        const void *pl;
        size_t len;
        char cerr[128];
        uint8_t stage_pub[SW_IDENTITY_KEY_BYTES];
        const sw_identity_t *me = cfg.identity;
        sw_seal_peers_t *seal = NULL;
        if (argc > 7) {
            if (!me || sw_identity_read_public(argv[7], stage_pub, cerr, sizeof cerr) != 0 ||
                !(seal = sw_seal_peers_new(sw_identity_secret_key(me)))) {
                fprintf(stderr, "swarm_poke: cannot seal for the stage: %s\n", me ? cerr : "no key (plain TCP)");
                return 1;
            }
            hop.public_key.data = stage_pub;
            hop.public_key.len = SW_IDENTITY_KEY_BYTES;
            fr.origin_key.data = (uint8_t *) sw_identity_public_key(me);
            fr.origin_key.len = SW_IDENTITY_KEY_BYTES;
        }
        /* seals `pl` for the stage as frame fr (nothing when unsealed); the caller frees *sealed */
        uint8_t *sealed = NULL;
        size_t sealed_len = 0;
        #define S_SEAL()                                                                                       \
            do {                                                                                               \
                free(sealed);                                                                                  \
                sealed = NULL;                                                                                 \
                sw_wire_activation_to_msg(&h, pl, len, &act);                                                  \
                if (seal) {                                                                                    \
                    const sw_seal_ctx_t ctx = {.dir = SW_SEAL_TO_STAGE, .session_id = fr.session_id,         \
                                               .session_len = strlen(fr.session_id), .request_id = fr.request_id, \
                                               .pos = fr.pos, .n_rows = fr.n_tok, .hop = 0};                    \
                    if (sw_seal_peers_close(seal, stage_pub, &ctx, pl, len, h.checksum, &sealed, &sealed_len) == 0) { \
                        act.payload.data = sealed;                                                             \
                        act.payload.len = sealed_len;                                                          \
                        act.checksum = 0;                                                                      \
                    }                                                                                          \
                }                                                                                              \
            } while (0)
        const bool encoded = codec && row && sw_codec_encode(codec, row, 1, &h, &pl, &len, cerr, sizeof cerr) == 0;
        if (encoded) {
            S_SEAL();
            sw_broker_client_send(bc, argv[3], &b); /* the stage holds nothing for session "poke" */
        }
        s_report("stage-kv-missing", sw_broker_client_sock(bc), true, bc);
        if (seal && encoded) {
            /* a valid sealed step at position 0 of a session of our own: the stage answers it */
            char sid[32];
            snprintf(sid, sizeof sid, "poke-%08x", (unsigned) (zclock_mono() & 0xffffffff));
            fr.session_id = sid;
            fr.pos = 0;
            fr.request_id = 1001;
            S_SEAL();
            sw_broker_client_send(bc, argv[3], &b);
            s_report("stage-sealed-pos0", sw_broker_client_sock(bc), true, bc);
            /* the same sealed body replayed under another request id (as a relay could): its
             * nonce differs, it must not open */
            fr.request_id = 1003;
            sw_broker_client_send(bc, argv[3], &b);
            s_report("stage-replay", sw_broker_client_sock(bc), true, bc);
        }
        free(sealed);
        sw_seal_peers_destroy(&seal);
        free(row);
        sw_codec_destroy(&codec);
        sw_broker_client_destroy(&bc);
        return 0;
    }
    fprintf(stderr, "usage: swarm_poke rpc ENDPOINT | swarm_poke stage BROKER STAGE_ID BEGIN END\n");
    return 2;
}
