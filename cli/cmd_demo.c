/*  cmd_demo.c: `swisd demo`: a whole swarm on this machine, one prompt
 *  through it, then a clean shutdown.
 *
 *  Starts a root broker, two regional brokers (regions "eu" and "us") under
 *  it, three stages splitting the model's layers (stages 1 and 3 in eu,
 *  stage 2 in us, so activations cross regions), and a gateway in eu; waits
 *  until the gateway reports the model servable; runs `swisd generate`
 *  through the gateway (its stdout is the demo's); stops everything with
 *  SIGTERM. The processes' logs go to a folder that is printed.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_data_dir.h"
#include "sw_gguf.h"
#include "sw_endpoint.h"
#include "sw_identity.h"
#include "sw_model.h"
#include "sw_opt.h"
#include "sw_proc.h"
#include "sw_wire.h"
#include "swisd_cli.h"

#define N_PROCS 12

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd demo [--model FILE.gguf] [-p PROMPT] [-n N] [--temp T] [--seed S] [--threads N]\n"
                 "                  [--log-dir DIR] [--link-delay MS] [--draft DRAFT.gguf] [--http ADDR:PORT]\n"
                 "  Starts a root broker, two regional brokers, three stages and a gateway on this machine,\n"
                 "  generates from the prompt through them, and shuts everything down.\n"
                 "  --link-delay MS   put every stage and the gateway behind swisd-link adding MS of one-way\n"
                 "                    delay on its link to the broker (stages \"far apart\")\n"
                 "  --draft FILE      speculative decoding in the gateway with this draft model\n"
                 "  --http ADDR:PORT  also serve the OpenAI-compatible API, the dashboard and the chat page\n"
                 "                    there (e.g. 127.0.0.1:8080), and keep the swarm running after the\n"
                 "                    prompt until Ctrl-C\n"
                 "  Default model: stories260K.gguf from $SWISD_MODELS when set, else models/stories260K.gguf\n"
                 "  of the source tree or of the installed data folder (models/README.md).\n");
}

/* The default model, used when no --model is given (models/README.md).
 *  1. $SWISD_MODELS when it is set: stories260K.gguf in that folder (the
 *     layout of the repository's models/), else
 *     stories260K/stories260K.f32.gguf there; nothing else is tried then.
 *  2. models/stories260K.gguf in the data folder (sw_data_dir.h: the
 *     installed one, /usr/share/swisd in the package, or the source tree this
 *     program was built in), then under the working directory.
 * Writes the path into out[outlen] and returns 0; returns -1 when none is
 * readable, after printing what was tried. */
static int s_default_model(char *out, size_t outlen)
{
    const char *env = getenv("SWISD_MODELS");
    if (env && *env) {
        static const char *const in_env[] = {"stories260K.gguf", "stories260K/stories260K.f32.gguf"};
        for (size_t i = 0; i < sizeof in_env / sizeof in_env[0]; i++) {
            snprintf(out, outlen, "%s/%s", env, in_env[i]);
            if (access(out, R_OK) == 0)
                return 0;
        }
        fprintf(stderr, "swisd demo: $SWISD_MODELS is %s, but it holds neither stories260K.gguf nor "
                        "stories260K/stories260K.f32.gguf; pass --model FILE.gguf or unset it\n", env);
        return -1;
    }
    static const char rel[] = "models/stories260K.gguf";
    if (sw_data_find(rel, out, outlen) == 0)
        return 0;
    if (access(rel, R_OK) == 0 && strlen(rel) < outlen) {
        memcpy(out, rel, sizeof rel);
        return 0;
    }
    char roots[2048];
    sw_data_dir_describe(roots, sizeof roots);
    fprintf(stderr, "swisd demo: no default model: %s is in none of the data folders (%s) nor under the "
                    "working directory; pass --model FILE.gguf or set $SWISD_MODELS to a folder holding "
                    "stories260K.gguf\n", rel, roots);
    return -1;
}

/* A free TCP port on 127.0.0.1 (bound and released; a tiny race is possible). */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *) &a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *) &a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Asks the gateway's RPC endpoint whether its model is servable (every layer
 * has a live stage). Returns 1 yes, 0 no, -1 no answer in timeout_ms. */
static int s_servable(const char *endpoint, int timeout_ms)
{
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s)
        return -1;
    sw_wire_socket_setup(s, 0, 100);
    int result = -1;
    char cerr[512];
    if (sw_endpoint_connect(s, endpoint, NULL, cerr, sizeof cerr) == 0) { /* CURVE with "#KEY" */
        Swisd__V1__ListModelsRequest req = SWISD__V1__LIST_MODELS_REQUEST__INIT;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_LIST_MODELS_REQUEST;
        b.list_models_request = &req;
        zpoller_t *p = zpoller_new(s, NULL);
        if (sw_wire_send(s, NULL, "demo", "", 0, &b) == 0 && zpoller_wait(p, timeout_ms) == s) {
            sw_wire_msg_t m;
            int code;
            char err[256];
            if (sw_wire_recv(s, false, &m, &code, err, sizeof err) == 0) {
                const Swisd__V1__Body *r = sw_wire_body(&m, &code, err, sizeof err);
                if (r && r->msg_case == SWISD__V1__BODY__MSG_LIST_MODELS_REPLY)
                    result = r->list_models_reply->n_models > 0 && r->list_models_reply->models[0]->servable;
                else
                    result = 0;
            }
            sw_wire_msg_free(&m);
        }
        zpoller_destroy(&p);
    }
    zsock_destroy(&s);
    return result;
}

int swisd_cmd_demo(int argc, char **argv)
{
    const char *model = NULL, *prompt = "Once upon a time", *log_dir_opt = NULL, *temp = "0", *seed = "0";
    int64_t n = 100, threads = 1;
    float link_delay = 0;
    const char *draft = NULL, *http = NULL;
    static const struct option opts[] = {
        {"http", required_argument, 0, 'H'},
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"n-predict", required_argument, 0, 'n'}, {"temp", required_argument, 0, 'T'},
        {"seed", required_argument, 0, 'S'}, {"threads", required_argument, 0, 't'},
        {"log-dir", required_argument, 0, 'L'}, {"link-delay", required_argument, 0, 'D'},
        {"draft", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (sw_opt_i64("-n", optarg, 1, 65536, &n)) return 2; break;
        case 'T': temp = optarg; break;
        case 'S': seed = optarg; break;
        case 't': if (sw_opt_i64("--threads", optarg, 1, 256, &threads)) return 2; break;
        case 'L': log_dir_opt = optarg; break;
        case 'r': draft = optarg; break;
        case 'H': http = optarg; break;
        case 'D': if (sw_opt_f32("--link-delay", optarg, 0.0f, 10000.0f, &link_delay)) return 2; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        s_usage(stderr);
        return 2;
    }
    char model_buf[PATH_MAX];
    if (!model) {
        if (s_default_model(model_buf, sizeof model_buf) != 0)
            return 1;
        model = model_buf;
    }
    /* layer split: three stages, as even as the model allows */
    char err[512];
    sw_gguf_t *g = sw_gguf_open(model, err, sizeof err);
    sw_hparams_t hp;
    if (!g || sw_hparams_from_gguf(g, &hp, err, sizeof err) != 0) {
        fprintf(stderr, "swisd demo: %s: %s\n", model, err);
        sw_gguf_destroy(&g);
        return 1;
    }
    sw_gguf_destroy(&g);
    if (hp.n_layer < 3) {
        fprintf(stderr, "swisd demo: %s has %d layers; the demo splits the model over three stages\n", model,
                hp.n_layer);
        return 1;
    }
    const int L = hp.n_layer, b1 = (L + 2) / 3, b2 = b1 + (L - b1 + 1) / 2;
    char ranges[3][32];
    snprintf(ranges[0], sizeof ranges[0], "0-%d", b1 - 1);
    snprintf(ranges[1], sizeof ranges[1], "%d-%d", b1, b2 - 1);
    snprintf(ranges[2], sizeof ranges[2], "%d-%d", b2, L - 1);

    char self[PATH_MAX], broker[PATH_MAX], stage[PATH_MAX], gateway[PATH_MAX], linkx[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    if (sw_proc_find_tool(self, "swisd-broker", broker, sizeof broker) ||
        sw_proc_find_tool(self, "swisd-stage", stage, sizeof stage) ||
        sw_proc_find_tool(self, "swisd-gateway", gateway, sizeof gateway)) {
        fprintf(stderr, "swisd demo: cannot find swisd-broker, swisd-stage and swisd-gateway next to %s or on PATH\n",
                self);
        return 1;
    }
    if (link_delay > 0 && sw_proc_find_tool(self, "swisd-link", linkx, sizeof linkx)) {
        fprintf(stderr, "swisd demo: --link-delay needs swisd-link next to %s or on PATH\n", self);
        return 1;
    }
    char log_dir[PATH_MAX];
    if (log_dir_opt) {
        snprintf(log_dir, sizeof log_dir, "%s", log_dir_opt);
        mkdir(log_dir, 0755);
    } else {
        snprintf(log_dir, sizeof log_dir, "/tmp/swisd-demo-XXXXXX");
        if (!mkdtemp(log_dir)) {
            perror("swisd demo: mkdtemp");
            return 1;
        }
    }
    fprintf(stderr, "swisd demo: model %s (%d layers): stages %s (eu), %s (us), %s (eu); logs in %s\n", model, L,
            ranges[0], ranges[1], ranges[2], log_dir);

    sw_proc_t procs[N_PROCS];
    memset(procs, 0, sizeof procs);
    int n_procs = 0, rc = 1;
    char root_ep[256], eu_ep[256], us_ep[256], rpc_ep[256], logp[PATH_MAX + 64], th[16];
    char via[4][300]; /* the endpoint each stage / the gateway dials: the broker, or a swisd-link in front */
    char delay_s[32], listen_s[64], connect_s[300];
    snprintf(delay_s, sizeof delay_s, "%g", link_delay);
    snprintf(th, sizeof th, "%d", (int) threads);
#define START(label, ...)                                                                                 \
    do {                                                                                                  \
        char *av[] = {__VA_ARGS__, NULL};                                                                 \
        snprintf(logp, sizeof logp, "%s/%s.log", log_dir, label);                                         \
        if (sw_proc_start(&procs[n_procs], label, av, logp) != 0)                                         \
            goto stop;                                                                                    \
        n_procs++;                                                                                        \
    } while (0)
#define READ(label, prefix, out)                                                                          \
    do {                                                                                                  \
        if (sw_proc_read_value(&procs[n_procs - 1], prefix, out, sizeof out, 10000) != 0) {               \
            fprintf(stderr, "swisd demo: %s did not start (see %s/%s.log)\n", label, log_dir, label);     \
            goto stop;                                                                                    \
        }                                                                                                 \
    } while (0)
    /* every process its own key (docs/security.md): the gateway's and the
     * regional brokers' in keys/trusted, the folder the brokers accept for
     * those roles */
    char keys[7][PATH_MAX + 64], trusted[PATH_MAX + 16];
    static const char *const key_names[] = {"broker-root", "broker-eu", "broker-us", "stage-1",
                                            "stage-2",     "stage-3",   "gateway"};
    snprintf(trusted, sizeof trusted, "%s/keys", log_dir);
    mkdir(trusted, 0700);
    snprintf(trusted, sizeof trusted, "%s/keys/trusted", log_dir);
    mkdir(trusted, 0700);
    for (int i = 0; i < 7; i++) {
        const bool is_trusted = i == 1 || i == 2 || i == 6;
        snprintf(keys[i], sizeof keys[i], "%s/keys/%s%s.key", log_dir, is_trusted ? "trusted/" : "", key_names[i]);
        char kerr[PATH_MAX + 256];
        sw_identity_t *k = sw_identity_generate(keys[i], true, kerr, sizeof kerr);
        if (!k) {
            fprintf(stderr, "swisd demo: %s\n", kerr);
            return 1;
        }
        sw_identity_destroy(&k);
    }
#define KEYS(i) "--key", keys[i]
#define LISTS "--gateways", trusted, "--brokers", trusted
    START("broker-root", broker, "--bind", "tcp://127.0.0.1:*", "--region", "root", KEYS(0), LISTS);
    READ("broker-root", "swisd-broker: listening on", root_ep);
    START("broker-eu", broker, "--bind", "tcp://127.0.0.1:*", "--parent", root_ep, "--region", "eu", KEYS(1), LISTS);
    READ("broker-eu", "swisd-broker: listening on", eu_ep);
    START("broker-us", broker, "--bind", "tcp://127.0.0.1:*", "--parent", root_ep, "--region", "us", KEYS(2), LISTS);
    READ("broker-us", "swisd-broker: listening on", us_ep);
    const char *targets[4] = {eu_ep, us_ep, eu_ep, eu_ep};
    for (int i = 0; i < 4; i++) {
        snprintf(via[i], sizeof via[i], "%s", targets[i]);
        if (link_delay <= 0)
            continue;
        int port = s_free_port();
        /* "tcp://HOST:PORT#KEY": the port ends at the first '#' (Z85 keys may hold ':' and '#') */
        char addr[300];
        snprintf(addr, sizeof addr, "%s", targets[i]);
        char *hash = strchr(addr, '#');
        if (hash)
            *hash = '\0';
        const char *colon = strrchr(addr, ':');
        if (port < 0 || !colon)
            goto stop;
        snprintf(listen_s, sizeof listen_s, "127.0.0.1:%d", port);
        snprintf(connect_s, sizeof connect_s, "127.0.0.1:%s", colon + 1);
        char label[32];
        snprintf(label, sizeof label, "link-%d", i + 1);
        START(label, linkx, "--listen", listen_s, "--connect", connect_s, "--delay", delay_s);
        /* CURVE passes through the proxy unchanged: dial it with the broker's key */
        snprintf(via[i], sizeof via[i], "tcp://%s%s%s", listen_s, hash ? "#" : "", hash ? hash + 1 : "");
    }
    if (link_delay > 0)
        usleep(300 * 1000); /* let the proxies bind */
    START("stage-1", stage, "--broker", via[0], "--model", (char *) model, "--layers", ranges[0], "--region", "eu",
          "--threads", th, KEYS(3));
    START("stage-2", stage, "--broker", via[1], "--model", (char *) model, "--layers", ranges[1], "--region", "us",
          "--threads", th, KEYS(4));
    START("stage-3", stage, "--broker", via[2], "--model", (char *) model, "--layers", ranges[2], "--region", "eu",
          "--threads", th, KEYS(5));
    {
        char *av[20] = {gateway, "--broker", via[3], "--model", (char *) model, "--rpc", "tcp://127.0.0.1:*",
                        "--region", "eu", "--threads", th, KEYS(6)};
        int ac = 13;
        if (draft)
            av[ac++] = "--draft", av[ac++] = (char *) draft;
        if (http)
            av[ac++] = "--http", av[ac++] = (char *) http;
        av[ac] = NULL;
        snprintf(logp, sizeof logp, "%s/gateway.log", log_dir);
        if (sw_proc_start(&procs[n_procs], "gateway", av, logp) != 0)
            goto stop;
        n_procs++;
    }
    READ("gateway", "swisd-gateway: rpc on", rpc_ep);
    fprintf(stderr, "swisd demo: brokers root %s, eu %s, us %s; gateway rpc %s\n", root_ep, eu_ep, us_ep, rpc_ep);

    /* wait until every layer has a live stage */
    const uint64_t deadline = sw_now_ns() + 30ull * 1000000000ull;
    int ok = 0;
    while (!(ok = s_servable(rpc_ep, 1000) == 1) && (int64_t) (deadline - sw_now_ns()) > 0) {
        for (int i = 0; i < n_procs; i++)
            if (!sw_proc_alive(&procs[i])) {
                fprintf(stderr, "swisd demo: %s exited (see %s)\n", procs[i].name, procs[i].log_path);
                goto stop;
            }
        usleep(200 * 1000);
    }
    if (!ok) {
        fprintf(stderr, "swisd demo: the swarm did not cover the model's layers within 30 s (logs in %s)\n", log_dir);
        goto stop;
    }
    char nbuf[16];
    snprintf(nbuf, sizeof nbuf, "%d", (int) n);
    pid_t pid = fork();
    if (pid == 0) {
        char *av[] = {self, "generate", "--gateway", rpc_ep, "-p", (char *) prompt, "-n", nbuf, "--temp",
                      (char *) temp, "--seed", (char *) seed, NULL};
        execv(self, av);
        _exit(127);
    }
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = 0;
    fputc('\n', stdout);
    fflush(stdout);
    if (http && rc == 0) {
        char port[32];
        if (sw_proc_read_value(&procs[n_procs - 1], "swisd-gateway: http on port", port, sizeof port, 10000) != 0) {
            fprintf(stderr, "swisd demo: the gateway's HTTP server did not start (see %s/gateway.log)\n", log_dir);
            rc = 1;
            goto stop;
        }
        fprintf(stderr, "swisd demo: serving: dashboard http://127.0.0.1:%s/ , chat http://127.0.0.1:%s/#/chat ,\n"
                        "            API http://127.0.0.1:%s/v1 ; Ctrl-C stops the swarm\n", port, port, port);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        int sig;
        sigwait(&set, &sig);
    }
stop:
    for (int i = n_procs - 1; i >= 0; i--)
        sw_proc_stop(&procs[i], 5000);
    fprintf(stderr, "swisd demo: %s; all %d processes stopped\n", rc == 0 ? "done" : "failed", n_procs);
#undef START
#undef READ
    return rc;
}
