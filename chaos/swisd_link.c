/*  swisd-link: WAN link emulator (TCP proxy with delay, jitter, rate cap and
 *  connection drops). Thin main over sw_link_t; see sw_link.h for the model
 *  and docs/link-emulator.md for usage.
 */
#include "sw_link.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*  The signal handlers need the link; this is the only global, set once
 *  before the handlers are installed. */
static sw_link_t *s_link;

static void s_on_stop(int sig)
{
    (void) sig;
    sw_link_request(s_link, SW_LINK_REQ_STOP);
}

static void s_on_stats(int sig)
{
    (void) sig;
    sw_link_request(s_link, SW_LINK_REQ_STATS);
}

static void s_usage(FILE *out)
{
    fprintf(out,
"usage: swisd-link --listen ADDR:PORT --connect ADDR:PORT [options]\n"
"\n"
"TCP proxy that emulates a wide-area link. Accepts any number of connections on\n"
"--listen, connects each to --connect and relays bytes both ways. Each byte is\n"
"delivered no earlier than its arrival + serialisation at --rate + one-way delay\n"
"(+ jitter), never reordered. \"up\" = client->server, \"down\" = server->client.\n"
"\n"
"  --listen ADDR:PORT     where clients connect (port 0: pick one; the chosen\n"
"                         port is printed as 'listening on ADDR:PORT')\n"
"  --connect ADDR:PORT    the real server\n"
"  --delay MS             one-way delay, both directions (fractional ok) [0]\n"
"  --jitter MS            uniform jitter +-MS per chunk, both directions [0];\n"
"                         ordering is kept, so jitter only ever adds delay\n"
"  --rate RATE            wire rate, both directions [0 = unlimited]: bytes/s,\n"
"                         or with a unit: kB MB GB (x1000) KiB MiB GiB,\n"
"                         bit kbit mbit gbit (bits/s), kbps mbps gbps (bytes/s)\n"
"  --up-delay, --down-delay, --up-jitter, --down-jitter, --up-rate, --down-rate\n"
"                         the same for one direction; they win over the\n"
"                         two-direction options regardless of order\n"
"  --drop-after BYTES     reset (RST) both sides once BYTES have been delivered\n"
"                         in both directions together [0 = never]\n"
"  --drop-prob P          per-second probability that a connection is reset\n"
"                         (exponential lifetime), in [0, 1) [0 = never]\n"
"  --seed S               seed for jitter and random drops [time-based, logged]\n"
"  --buffer BYTES         max bytes buffered per direction per connection;\n"
"                         reading from the source stops when full [16MiB]\n"
"  --queue MS             with a rate cap: max wire backlog before reading\n"
"                         pauses (the bottleneck queue) [10]\n"
"  --control PATH         Unix stream socket for run-time commands, one per\n"
"                         line, each answered with one line:\n"
"                           KEY VALUE   set delay|jitter|rate (also up-/down-),\n"
"                                       drop-after, drop-prob, queue, buffer\n"
"                                       (drops apply to new connections) -> ok\n"
"                           get         current per-direction parameters\n"
"                           stats       the counters\n"
"                           reset-all   reset every open connection -> ok N\n"
"  -h, --help             this text\n"
"\n"
"Signals: SIGINT/SIGTERM exit cleanly; SIGUSR1 prints stats to stderr (also\n"
"printed at exit). Log level from SWISD_LOG=error|warn|info|debug.\n"
"Example: swisd-link --listen 127.0.0.1:7001 --connect 127.0.0.1:6001 \\\n"
"           --delay 25 --jitter 2 --rate 10mbit   # ~50 ms RTT, 10 Mbit/s\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 0},     {"connect", required_argument, NULL, 0},
        {"delay", required_argument, NULL, 0},      {"jitter", required_argument, NULL, 0},
        {"rate", required_argument, NULL, 0},       {"up-delay", required_argument, NULL, 0},
        {"down-delay", required_argument, NULL, 0}, {"up-jitter", required_argument, NULL, 0},
        {"down-jitter", required_argument, NULL, 0}, {"up-rate", required_argument, NULL, 0},
        {"down-rate", required_argument, NULL, 0},  {"drop-after", required_argument, NULL, 0},
        {"drop-prob", required_argument, NULL, 0},  {"seed", required_argument, NULL, 0},
        {"buffer", required_argument, NULL, 0},     {"queue", required_argument, NULL, 0},
        {"control", required_argument, NULL, 0},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    enum { MAX_ARGS = 64 };
    const char *keys[MAX_ARGS], *vals[MAX_ARGS];
    int nargs = 0, seeded = 0;
    int idx = 0, ch;
    while ((ch = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        if (ch == 'h') {
            s_usage(stdout);
            return 0;
        }
        if (ch != 0) {
            s_usage(stderr);
            return 2;
        }
        if (nargs == MAX_ARGS) {
            fprintf(stderr, "swisd-link: too many options\n");
            return 2;
        }
        keys[nargs] = opts[idx].name;
        vals[nargs++] = optarg;
        seeded |= strcmp(opts[idx].name, "seed") == 0;
    }
    if (optind < argc) {
        fprintf(stderr, "swisd-link: unexpected argument '%s'\n", argv[optind]);
        s_usage(stderr);
        return 2;
    }
    sw_link_conf_t conf;
    sw_link_conf_defaults(&conf);
    if (!seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        conf.seed = (uint64_t) ts.tv_sec * 1000000007ull ^ (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid() << 32);
    }
    char err[256];
    /* two passes: per-direction options override the two-direction ones */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nargs; i++) {
            int directional = !strncmp(keys[i], "up-", 3) || !strncmp(keys[i], "down-", 5);
            if (directional != pass)
                continue;
            if (sw_link_conf_set(&conf, keys[i], vals[i], err, sizeof err) != 0) {
                fprintf(stderr, "swisd-link: %s\n", err);
                return 2;
            }
        }
    if (!conf.listen[0] || !conf.connect[0]) {
        fprintf(stderr, "swisd-link: --listen and --connect are required (see --help)\n");
        return 2;
    }
    sw_link_t *link = sw_link_new(&conf, err, sizeof err);
    if (!link) {
        fprintf(stderr, "swisd-link: %s\n", err);
        return 1;
    }
    s_link = link;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = s_on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = s_on_stats;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* the listen address as given, with the real port (port 0 picks one) */
    const char *colon = strrchr(conf.listen, ':');
    fprintf(stderr,
            "[swisd-link INFO] listening on %.*s:%d -> %s; up: delay %g ms jitter %g ms rate %.0f B/s; "
            "down: delay %g ms jitter %g ms rate %.0f B/s; drop-after %llu B, drop-prob %g/s; seed %llu\n",
            (int) (colon - conf.listen), conf.listen, sw_link_port(link), conf.connect,
            conf.dir[0].delay_ms, conf.dir[0].jitter_ms, conf.dir[0].rate_Bps, conf.dir[1].delay_ms,
            conf.dir[1].jitter_ms, conf.dir[1].rate_Bps, (unsigned long long) conf.drop_after, conf.drop_prob,
            (unsigned long long) conf.seed);
    fflush(stderr);
    int rc = sw_link_run(link);
    sw_link_stats_t st;
    sw_link_stats(link, &st);
    char buf[512];
    fprintf(stderr, "[swisd-link STATS] %s\n", sw_link_stats_format(&st, buf, sizeof buf));
    s_link = NULL;
    sw_link_destroy(&link);
    return rc == 0 ? 0 : 1;
}
