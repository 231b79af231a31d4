/*  bench_broker.c: what one broker hop costs.
 *
 *  usage: bench_broker [--keys] [ROUNDS [PAYLOAD_BYTES...]]   (default 20000 rounds, 64 4096 65536 bytes)
 *
 *  A broker runs in a forked child process (its own ZeroMQ context and I/O
 *  thread, as in deployment; tcp on loopback). Two sw_broker_clients A and B
 *  in the main thread play ping-pong through it (A -> broker -> B -> broker ->
 *  A, ForwardReply bodies packed and unpacked by the clients as in real use),
 *  and the same ping-pong runs over a direct DEALER-DEALER pair with the same
 *  sw_wire send/recv calls. Added latency of one broker hop = (median RTT via
 *  broker - median RTT direct) / 2, since a round trip crosses the broker
 *  twice. Then A streams messages to B through the broker (window 500) for
 *  the relay throughput. Prints numbers; never fails on a timing.
 *
 *  --keys: the same with keys, as a swarm runs by default (docs/security.md):
 *  the broker is a CURVE server with its ZAP handler, A and B dial it with
 *  their own keys (made in a temporary folder, listed as gateways), and the
 *  direct pair is CURVE too. Run it beside a plain run: the difference of the
 *  "via broker" medians is what CURVE adds to two broker hops (each hop is
 *  encrypted and decrypted twice: sender -> broker, broker -> receiver).
 */
#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sw_broker.h"
#include "sw_broker_client.h"
#include "sw_common.h"
#include "sw_identity.h"
#include "sw_wire.h"

static volatile int s_stop = 0;

static void s_on_term(int sig)
{
    (void) sig;
    s_stop = 1;
}

/*  Child process: runs a broker, writes its endpoint line to fd, serves until
 *  SIGTERM. Never returns. */
static void s_broker_child(int fd, const sw_identity_t *identity, const char *gateways_dir)
{
    zsys_handler_set(NULL);
    signal(SIGTERM, s_on_term);
    sw_broker_config_t cfg = {.bind = "tcp://127.0.0.1:*", .id = identity ? NULL : "bench-broker",
                              .identity = identity, .gateways_dir = gateways_dir};
    char err[256], line[300];
    sw_broker_t *b = sw_broker_new(&cfg, err, sizeof err);
    if (!b) {
        fprintf(stderr, "bench_broker: %s\n", err);
        _exit(1);
    }
    snprintf(line, sizeof line, "%s\n", sw_broker_endpoint(b));
    if (write(fd, line, strlen(line)) < 0)
        _exit(1);
    close(fd);
    sw_broker_run(b, &s_stop);
    sw_broker_destroy(&b);
    _exit(0);
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static void s_body(Swisd__V1__Body *b, Swisd__V1__ForwardReply *fr, Swisd__V1__Activation *act, uint8_t *payload,
                   size_t n)
{
    swisd__v1__activation__init(act);
    act->n_tok = 1;
    act->n_embd = 16;
    act->raw_bytes = n;
    act->payload.data = payload;
    act->payload.len = n;
    swisd__v1__forward_reply__init(fr);
    fr->session_id = "bench";
    fr->activation = act;
    swisd__v1__body__init(b);
    b->msg_case = SWISD__V1__BODY__MSG_FORWARD_REPLY;
    b->forward_reply = fr;
}

/*  Blocks until sock is readable (or 2 s). */
static bool s_wait(zsock_t *sock)
{
    zmq_pollitem_t it = {zsock_resolve(sock), 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, 2000) == 1;
}

/*  Receives one application message on a broker client (skipping
 *  registration traffic). Returns false on timeout. */
static bool s_client_recv(sw_broker_client_t *c)
{
    for (;;) {
        if (!(zsock_events(sw_broker_client_sock(c)) & ZMQ_POLLIN) && !s_wait(sw_broker_client_sock(c)))
            return false;
        sw_wire_msg_t m;
        int rc = sw_broker_client_recv(c, &m);
        sw_wire_msg_free(&m);
        if (rc == 1)
            return true;
    }
}

static bool s_direct_recv(zsock_t *s)
{
    if (!s_wait(s))
        return false;
    sw_wire_msg_t m;
    int code;
    char err[128];
    bool ok = sw_wire_recv(s, false, &m, &code, err, sizeof err) == 0 && sw_wire_body(&m, &code, err, sizeof err);
    sw_wire_msg_free(&m);
    return ok;
}

static void s_stats(const char *what, double *us, int n, double *median)
{
    qsort(us, (size_t) n, sizeof *us, s_cmp);
    *median = us[n / 2];
    printf("  %-22s median %7.1f us  p99 %7.1f us  min %7.1f us\n", what, us[n / 2], us[(int) (n * 0.99)], us[0]);
}

/*  Keys for --keys in a new temporary folder (dir, filled in): the broker's
 *  in dir, A's and B's in dir/gateways. Returns 0 or -1. */
static int s_make_keys(char *dir, sw_identity_t **broker, sw_identity_t **a, sw_identity_t **b)
{
    char err[600], path[512];
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/gateways", dir);
    if (mkdir(path, 0700) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/broker.key", dir);
    *broker = sw_identity_generate(path, false, err, sizeof err);
    snprintf(path, sizeof path, "%s/gateways/a.key", dir);
    *a = *broker ? sw_identity_generate(path, false, err, sizeof err) : NULL;
    snprintf(path, sizeof path, "%s/gateways/b.key", dir);
    *b = *a ? sw_identity_generate(path, false, err, sizeof err) : NULL;
    if (!*b)
        fprintf(stderr, "bench_broker: %s\n", err);
    return *b ? 0 : -1;
}

int main(int argc, char **argv)
{
    bool keys = argc > 1 && !strcmp(argv[1], "--keys");
    if (keys)
        argc--, argv++;
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    size_t sizes[8] = {64, 4096, 65536};
    int n_sizes = 3;
    if (argc > 2) {
        n_sizes = 0;
        for (int i = 2; i < argc && n_sizes < 8; i++)
            sizes[n_sizes++] = (size_t) strtoull(argv[i], NULL, 10);
    }
    char key_dir[256], gateways_dir[300];
    snprintf(key_dir, sizeof key_dir, "%s/bench-broker-keys-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(gateways_dir, sizeof gateways_dir, "%s/gateways", key_dir);
    sw_identity_t *kb = NULL, *ka = NULL, *kbb = NULL;
    if (keys && s_make_keys(key_dir, &kb, &ka, &kbb) != 0)
        return 1;
    if (keys)
        snprintf(gateways_dir, sizeof gateways_dir, "%s/gateways", key_dir);
    if (rounds < 100)
        rounds = 100;
    setenv("SWISD_LOG", "warn", 0);
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    pid_t child = fork(); /* before any ZeroMQ context exists in this process */
    if (child == 0) {
        close(fds[0]);
        s_broker_child(fds[1], kb, keys ? gateways_dir : NULL);
    }
    close(fds[1]);
    struct {
        char endpoint[300];
    } bt = {{0}};
    ssize_t got_ep = read(fds[0], bt.endpoint, sizeof bt.endpoint - 1);
    close(fds[0]);
    if (child < 0 || got_ep <= 0)
        return 1;
    bt.endpoint[strcspn(bt.endpoint, "\n")] = '\0';
    char err[256];
    sw_broker_client_config_t ca = {.endpoint = bt.endpoint, .role = SWISD__V1__ROLE__ROLE_GATEWAY,
                                    .node_id = keys ? NULL : "A", .identity = ka};
    sw_broker_client_config_t cb = {.endpoint = bt.endpoint, .role = SWISD__V1__ROLE__ROLE_GATEWAY,
                                    .node_id = keys ? NULL : "B", .identity = kbb};
    const char *id_a = keys ? sw_identity_id(ka) : "A", *id_b = keys ? sw_identity_id(kbb) : "B";
    sw_broker_client_t *a = sw_broker_client_new(&ca, err, sizeof err);
    sw_broker_client_t *b = sw_broker_client_new(&cb, err, sizeof err);
    if (!a || !b) {
        fprintf(stderr, "bench_broker: %s\n", err);
        return 1;
    }
    for (int i = 0; i < 300 && !(sw_broker_client_registered(a) && sw_broker_client_registered(b)); i++) {
        sw_wire_msg_t m;
        sw_broker_client_recv(a, &m);
        sw_wire_msg_free(&m);
        sw_broker_client_recv(b, &m);
        sw_wire_msg_free(&m);
        zclock_sleep(5);
    }
    /* direct pair */
    zsock_t *da = zsock_new(ZMQ_DEALER), *db = zsock_new(ZMQ_DEALER);
    sw_wire_socket_setup(da, 0, 1000);
    sw_wire_socket_setup(db, 0, 1000);
    if (keys) { /* the direct pair is CURVE too: A a client of B's key */
        zcert_apply(sw_identity_cert(kbb), db);
        zsock_set_curve_server(db, 1);
        zcert_apply(sw_identity_cert(ka), da);
        zsock_set_curve_serverkey(da, sw_identity_public_txt(kbb));
    }
    int port = zsock_bind(db, "tcp://127.0.0.1:*");
    zsock_connect(da, "tcp://127.0.0.1:%d", port);

    double *us = malloc(sizeof(double) * (size_t) rounds);
    printf("bench_broker: %d round trips per size, %s, broker %s\n", rounds,
           keys ? "keys (CURVE on every link)" : "plain TCP", bt.endpoint);
    for (int si = 0; si < n_sizes; si++) {
        size_t n = sizes[si];
        uint8_t *payload = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            payload[i] = (uint8_t) (i * 131u);
        Swisd__V1__Body body;
        Swisd__V1__ForwardReply fr;
        Swisd__V1__Activation act;
        s_body(&body, &fr, &act, payload, n);
        printf("payload %zu bytes:\n", n);
        double med_direct = 0, med_broker = 0;
        /* direct */
        int ok = 0;
        for (int r = -100; r < rounds; r++) {
            uint64_t t0 = sw_now_ns();
            sw_wire_send(da, NULL, "A", "B", 0, &body);
            if (!s_direct_recv(db))
                break;
            sw_wire_send(db, NULL, "B", "A", 0, &body);
            if (!s_direct_recv(da))
                break;
            if (r >= 0)
                us[ok++] = (double) (sw_now_ns() - t0) / 1e3;
        }
        if (ok == rounds)
            s_stats("direct round trip", us, ok, &med_direct);
        /* through the broker */
        ok = 0;
        for (int r = -100; r < rounds; r++) {
            uint64_t t0 = sw_now_ns();
            if ((r & 255) == 0) {
                sw_broker_client_tick(a);
                sw_broker_client_tick(b);
            }
            if (sw_broker_client_send(a, id_b, &body) != 0 || !s_client_recv(b))
                break;
            if (sw_broker_client_send(b, id_a, &body) != 0 || !s_client_recv(a))
                break;
            if (r >= 0)
                us[ok++] = (double) (sw_now_ns() - t0) / 1e3;
        }
        if (ok == rounds) {
            s_stats("via broker round trip", us, ok, &med_broker);
            printf("  added latency per broker hop: %.1f us (median)\n", (med_broker - med_direct) / 2);
        } else {
            printf("  via broker: failed after %d rounds\n", ok);
        }
        /* relay throughput A -> B */
        int total = rounds * 5, sent = 0, got = 0, window = 500, errors = 0;
        uint64_t t0 = sw_now_ns();
        while (got < total) {
            sw_broker_client_tick(a); /* B only receives here: keep it alive */
            sw_broker_client_tick(b);
            while (zsock_events(sw_broker_client_sock(a)) & ZMQ_POLLIN) {
                sw_wire_msg_t m;
                if (sw_broker_client_recv(a, &m) == 1 && m.body->msg_case == SWISD__V1__BODY__MSG_ERROR)
                    errors++;
                sw_wire_msg_free(&m);
            }
            while (sent < total && sent - got < window && sw_broker_client_send(a, id_b, &body) == 0)
                sent++;
            zsock_t *sb = sw_broker_client_sock(b);
            if (!(zsock_events(sb) & ZMQ_POLLIN) && !s_wait(sb))
                break;
            while (zsock_events(sb) & ZMQ_POLLIN) {
                sw_wire_msg_t m;
                if (sw_broker_client_recv(b, &m) == 1)
                    got++;
                sw_wire_msg_free(&m);
            }
        }
        double secs = (double) (sw_now_ns() - t0) / 1e9;
        printf("  relay throughput: %.0f msgs/s (%.1f MB/s of bodies, %d of %d arrived, %d errors)\n", got / secs,
               got * (double) n / secs / 1e6, got, total, errors);
        /* keep registrations alive between sizes */
        sw_broker_client_tick(a);
        sw_broker_client_tick(b);
        free(payload);
    }
    free(us);
    zsock_destroy(&da);
    zsock_destroy(&db);
    sw_broker_client_destroy(&a);
    sw_broker_client_destroy(&b);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    sw_identity_destroy(&ka);
    sw_identity_destroy(&kbb);
    sw_identity_destroy(&kb);
    if (keys) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", key_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_broker: could not remove %s\n", key_dir);
    }
    return 0;
}
