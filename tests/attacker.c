/*  attacker.c: a hostile peer speaking the real swisd protocol, for
 *  tests/test_attacks.py. Each mode replays one attack of issue 19.
 *
 *  usage:
 *    attacker rpc-flood RPC N HOLD_S
 *        N SwarmStatus requests on a DEALER whose receive queue holds one
 *        message, never reading; keeps the socket open HOLD_S seconds.
 *    attacker forge-errors BROKER GATEWAY_ID N ID [ID...]
 *        registers as a client and sends the gateway N Error messages
 *        (codes INTERNAL, UNREACHABLE, DEADLINE_EXCEEDED) that name each ID
 *        as the failing node and as the session, with request ids 0 and 1.
 *    attacker blackhole BROKER MODEL.gguf A B MS_PER_LAYER SECONDS [answer-probes]
 *        registers as a stage of MODEL's identity announcing layers [A, B]
 *        (inclusive) at MS_PER_LAYER, and answers nothing (or, with
 *        answer-probes, only requests whose session id starts "probe-", with
 *        rows of zeros, swallowing every real session); prints
 *        "blackhole ID". Answers are sealed for the gateway with the
 *        attacker's own key (docs/security.md), as an honest stage would.
 *    attacker wrong-seal BROKER MODEL.gguf A B MS_PER_LAYER SECONDS
 *        the same stage, answering EVERY request (probes and sessions) with
 *        rows of zeros sealed under a fresh key, not the one it registered
 *        with: a reply forged under the stage's routing identity by someone
 *        without its key. Prints "wrong-seal ID", at the end "answered N".
 *    attacker bogus-forward BROKER STAGE_ID A B N
 *        N forward requests at position 0, each under a new session id, over
 *        layers [A, B] of the stage, with activations that do not decode;
 *        prints "errors K" (answers received within 5 s).
 *  Exit status 0 when the attack could be carried out, 2 on bad usage.
 */
#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_broker_client.h"
#include "sw_codec.h"
#include "sw_common.h"
#include "sw_model.h"
#include "sw_wire.h"
#include "sw_identity.h"
#include "sw_seal_peers.h"
#include "sw_endpoint.h"
#include "test_key.h"

static sw_broker_client_t *s_join(const char *broker, sw_broker_client_config_t *cfg)
{
    char err[256];
    cfg->endpoint = broker;
    cfg->identity = sw_test_key_for(broker);
    cfg->heartbeat_ms = 200;
    sw_broker_client_t *bc = sw_broker_client_new(cfg, err, sizeof err);
    if (!bc) {
        fprintf(stderr, "attacker: %s\n", err);
        return NULL;
    }
    sw_broker_client_wait_registered(bc, 5000);
    return bc;
}

static int s_rpc_flood(const char *rpc, long n, long hold_s)
{
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_rcvhwm(d, 1);
    zsock_set_sndhwm(d, (int) n + 16);
    zsock_set_linger(d, 0);
    char err[512];
    if (!d || sw_endpoint_connect(d, rpc, NULL, err, sizeof err) != 0)
        return 1;
    Swisd__V1__SwarmStatusRequest q = SWISD__V1__SWARM_STATUS_REQUEST__INIT;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_SWARM_STATUS_REQUEST;
    b.swarm_status_request = &q;
    long sent = 0;
    for (long i = 0; i < n; i++)
        sent += sw_wire_send(d, NULL, "attacker", "", 0, &b) == 0;
    printf("sent %ld\n", sent);
    fflush(stdout);
    zclock_sleep((int) hold_s * 1000);
    zsock_destroy(&d);
    return 0;
}

static int s_forge_errors(const char *broker, const char *gateway, long n, char **ids, int n_ids)
{
    sw_broker_client_config_t cfg = {.role = SWISD__V1__ROLE__ROLE_CLIENT};
    sw_broker_client_t *bc = s_join(broker, &cfg);
    if (!bc)
        return 1;
    const int codes[] = {SWISD__V1__ERROR_CODE__ERROR_INTERNAL, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE,
                         SWISD__V1__ERROR_CODE__ERROR_DEADLINE_EXCEEDED};
    long sent = 0;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < n_ids; k++) {
            Swisd__V1__Error e = SWISD__V1__ERROR__INIT;
            e.code = (Swisd__V1__ErrorCode) codes[i % 3];
            e.message = "forged";
            e.node_id = ids[k];
            e.session_id = ids[(k + (int) i) % n_ids];
            e.request_id = (uint64_t) (i & 1);
            Swisd__V1__Body b = SWISD__V1__BODY__INIT;
            b.msg_case = SWISD__V1__BODY__MSG_ERROR;
            b.error = &e;
            sent += sw_broker_client_send(bc, gateway, &b) == 0;
            if (sent % 50 == 0)
                zclock_sleep(2);
        }
    printf("sent %ld\n", sent);
    fflush(stdout);
    zclock_sleep(300);
    sw_broker_client_destroy(&bc);
    return 0;
}

/* Answers a probe with rows of zeros in the reply codec's f32, sealed for the
 * origin (when the request carries its key) with `seal` (the context of our
 * own secret key, or of a foreign one to forge). */
static void s_answer(sw_broker_client_t *bc, const Swisd__V1__ForwardRequest *fr, int32_t n_embd, sw_seal_peers_t *seal)
{
    sw_codec_config_t f32 = {.dtype = SW_DTYPE_F32};
    sw_codec_t *c = sw_codec_new(&f32, n_embd, (int32_t) fr->n_tok);
    float *rows = calloc((size_t) fr->n_tok * (size_t) n_embd, sizeof(float));
    sw_codec_header_t h;
    const void *pl;
    size_t len;
    char err[128];
    if (c && rows && sw_codec_encode(c, rows, (int32_t) fr->n_tok, &h, &pl, &len, err, sizeof err) == 0) {
        Swisd__V1__Activation act;
        uint8_t *sealed = NULL;
        size_t n = 0;
        if (seal && fr->origin_key.len == SW_SEAL_KEY_BYTES) {
            const sw_seal_ctx_t ctx = {.dir = SW_SEAL_TO_GATEWAY, .session_id = fr->session_id,
                                       .session_len = strlen(fr->session_id), .request_id = fr->request_id,
                                       .pos = fr->pos, .n_rows = fr->n_tok, .hop = (uint32_t) fr->n_timings};
            if (sw_seal_peers_close(seal, fr->origin_key.data, &ctx, pl, len, h.checksum, &sealed, &n) == 0) {
                pl = sealed;
                len = n;
                h.checksum = 0;
            }
        }
        sw_wire_activation_to_msg(&h, pl, len, &act);
        Swisd__V1__ForwardReply rep = SWISD__V1__FORWARD_REPLY__INIT;
        rep.session_id = fr->session_id;
        rep.request_id = fr->request_id;
        rep.activation = &act;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_FORWARD_REPLY;
        b.forward_reply = &rep;
        sw_broker_client_send(bc, fr->origin, &b);
        free(sealed);
    }
    free(rows);
    sw_codec_destroy(&c);
}

static int s_blackhole(const char *broker, const char *model_path, int a, int b, double ms, long seconds,
                       bool answer_probes, bool wrong_seal)
{
    char err[256], id[129], sum[17];
    sw_model_parts_t none = {0};
    sw_model_t *m = sw_model_load(model_path, &none, err, sizeof err);
    if (!m) {
        fprintf(stderr, "attacker: %s\n", err);
        return 1;
    }
    sw_model_identity(m, model_path, id, sizeof id, sum, sizeof sum);
    const sw_hparams_t *hp = sw_model_hparams(m);
    Swisd__V1__ModelRef ref = SWISD__V1__MODEL_REF__INIT;
    ref.id = id;
    ref.checksum = sum;
    ref.n_layer = (uint32_t) hp->n_layer;
    ref.n_embd = (uint32_t) hp->n_embd;
    ref.n_vocab = (uint32_t) hp->n_vocab;
    Swisd__V1__Capabilities caps = SWISD__V1__CAPABILITIES__INIT;
    caps.ms_per_layer = (float) ms;
    caps.threads = 64;
    caps.memory_bytes = 1ull << 40;
    sw_broker_client_config_t cfg = {.role = SWISD__V1__ROLE__ROLE_STAGE, .model = &ref,
                                     .layer_begin = (uint32_t) a, .layer_end = (uint32_t) b + 1, .caps = &caps};
    sw_broker_client_t *bc = s_join(broker, &cfg);
    if (!bc)
        return 1;
    sw_seal_peers_t *seal = NULL;
    if (cfg.identity && !wrong_seal)
        seal = sw_seal_peers_new(sw_identity_secret_key(cfg.identity));
    else if (cfg.identity) { /* a key of our own, not the one the broker knows for this id */
        uint8_t pk[32], sk[32];
        crypto_box_keypair(pk, sk);
        seal = sw_seal_peers_new(sk);
        answer_probes = true;
    }
    printf("%s %s\n", wrong_seal ? "wrong-seal" : "blackhole", sw_broker_client_id(bc));
    fflush(stdout);
    zpoller_t *p = zpoller_new(sw_broker_client_sock(bc), NULL);
    long swallowed = 0, answered = 0, probes = 0;
    const int64_t end = zclock_mono() + seconds * 1000;
    while (zclock_mono() < end && !zsys_interrupted) {
        if (zpoller_wait(p, 50)) {
            sw_wire_msg_t msg;
            if (sw_broker_client_recv(bc, &msg) == 1 && msg.body->msg_case == SWISD__V1__BODY__MSG_FORWARD_REQUEST) {
                const Swisd__V1__ForwardRequest *fr = msg.body->forward_request;
                const bool probe = !strncmp(fr->session_id, "probe-", 6);
                probes += probe;
                if ((answer_probes && probe) || wrong_seal) {
                    s_answer(bc, fr, hp->n_embd, seal);
                    answered++;
                } else if (!probe) {
                    swallowed++;
                }
            }
            sw_wire_msg_free(&msg);
        }
        sw_broker_client_tick(bc);
    }
    printf("sessions swallowed %ld, probes %ld, probes answered %ld\n", swallowed, probes, answered);
    if (wrong_seal)
        printf("answered %ld\n", answered);
    sw_seal_peers_destroy(&seal);
    zpoller_destroy(&p);
    sw_broker_client_destroy(&bc);
    sw_model_destroy(&m);
    return 0;
}

static int s_bogus_forward(const char *broker, const char *stage, int a, int b, long n)
{
    sw_broker_client_config_t cfg = {.role = SWISD__V1__ROLE__ROLE_CLIENT};
    sw_broker_client_t *bc = s_join(broker, &cfg);
    if (!bc)
        return 1;
    uint8_t junk[256];
    memset(junk, 0x7f, sizeof junk);
    for (long i = 0; i < n; i++) {
        Swisd__V1__LayerRange lr = SWISD__V1__LAYER_RANGE__INIT;
        lr.begin = (uint32_t) a;
        lr.end = (uint32_t) b + 1;
        Swisd__V1__Hop hop = SWISD__V1__HOP__INIT, *route[1] = {&hop};
        hop.node_id = (char *) stage;
        hop.layers = &lr;
        Swisd__V1__Activation act = SWISD__V1__ACTIVATION__INIT; /* f32, but its checksum is wrong */
        act.n_tok = 1;
        act.n_embd = 64;
        act.raw_bytes = sizeof junk;
        act.checksum = 12345;
        act.payload.data = junk;
        act.payload.len = sizeof junk;
        char sid[40];
        snprintf(sid, sizeof sid, "bogus-%ld", i);
        Swisd__V1__ForwardRequest fr = SWISD__V1__FORWARD_REQUEST__INIT;
        fr.session_id = sid;
        fr.request_id = (uint64_t) i + 1;
        fr.origin = (char *) sw_broker_client_id(bc);
        fr.route = route;
        fr.n_route = 1;
        fr.n_tok = 1;
        fr.activation = &act;
        Swisd__V1__Body body = SWISD__V1__BODY__INIT;
        body.msg_case = SWISD__V1__BODY__MSG_FORWARD_REQUEST;
        body.forward_request = &fr;
        sw_broker_client_send(bc, stage, &body);
    }
    long errors = 0;
    zpoller_t *p = zpoller_new(sw_broker_client_sock(bc), NULL);
    const int64_t end = zclock_mono() + 5000;
    while (errors < n && zclock_mono() < end) {
        if (zpoller_wait(p, 50)) {
            sw_wire_msg_t msg;
            if (sw_broker_client_recv(bc, &msg) == 1 && msg.body->msg_case == SWISD__V1__BODY__MSG_ERROR)
                errors++;
            sw_wire_msg_free(&msg);
        }
        sw_broker_client_tick(bc);
    }
    printf("errors %ld\n", errors);
    zpoller_destroy(&p);
    sw_broker_client_destroy(&bc);
    return 0;
}

int main(int argc, char **argv)
{
    zsys_init();
    if (argc == 5 && !strcmp(argv[1], "rpc-flood"))
        return s_rpc_flood(argv[2], atol(argv[3]), atol(argv[4]));
    if (argc >= 6 && !strcmp(argv[1], "forge-errors"))
        return s_forge_errors(argv[2], argv[3], atol(argv[4]), argv + 5, argc - 5);
    if ((argc == 8 || argc == 9) && !strcmp(argv[1], "blackhole"))
        return s_blackhole(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atof(argv[6]), atol(argv[7]),
                           argc == 9 && !strcmp(argv[8], "answer-probes"), false);
    if (argc == 8 && !strcmp(argv[1], "wrong-seal"))
        return s_blackhole(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atof(argv[6]), atol(argv[7]), true, true);
    if (argc == 7 && !strcmp(argv[1], "bogus-forward"))
        return s_bogus_forward(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atol(argv[6]));
    fprintf(stderr, "usage: see the top of tests/attacker.c\n");
    return 2;
}
