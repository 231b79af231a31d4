/*  swisd_broker.c: the `swisd-broker` process (a thin main over sw_broker). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "sw_broker.h"
#include "sw_common.h"
#include "sw_daemon.h"
#include "sw_daemon_keys.h"
#include "sw_opt.h"

static volatile int s_stop = 0; /* set by SIGINT or SIGTERM (sw_daemon_setup) */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: swisd-broker --bind ENDPOINT [--parent ENDPOINT#KEY] [--region NAME] [--key PATH]\n"
            "                    [--auth open | --allow DIR] [--deny FILE] [--gateways DIR] [--brokers DIR]\n"
            "                    [--ban-state FILE] [--heartbeat-ms N] [--expiry-ms N] [--max-nodes N] [--hwm N]\n"
            "                    [--insecure [--id ID]]\n"
            "  --bind ENDPOINT     ZeroMQ endpoint to listen on, e.g. tcp://0.0.0.0:5555\n"
            "                      (tcp://127.0.0.1:* picks a free port)\n"
            "  --parent ENDPOINT   register with this (root) broker as the broker of --region;\n"
            "                      tcp://HOST:PORT#KEY as the parent prints it (its key listed in its --brokers)\n"
            "  --region NAME       region of this broker (default \"default\")\n"
            "  --id ID             --insecure only: node id of this broker (default: random 128-bit hex);\n"
            "                      with a key the id is the key's fingerprint\n"
            SW_DAEMON_KEY_USAGE
            "  --auth open         any key may join as a stage or client (the default)\n"
            "  --allow DIR         only the keys in DIR (public certificate files) may connect\n"
            "  --deny FILE         keys refused (Z85 keys or node ids, one per line); re-read when it changes\n"
            "  --gateways DIR      keys that may register as gateways (none without it)\n"
            "  --brokers DIR       keys that may register as child brokers (none without it)\n"
            "  --ban-state FILE    where the bans gateways send are kept across restarts (default:\n"
            "                      broker-bans-ID.txt in the per-user config folder; --insecure: memory only)\n"
            "  --heartbeat-ms N    how often nodes must send a heartbeat (default 1000)\n"
            "  --expiry-ms N       silence after which a node is forgotten (default 3500)\n"
            "  --max-nodes N       registry bound (default 10000)\n"
            "  --hwm N             send/receive high-water mark in messages (default 10000)\n"
            "Prints \"swisd-broker: listening on ENDPOINT#KEY\" (what nodes dial) and \"swisd-broker: id ID region NAME\" on\n"
            "stdout once bound; logs go to stderr (SWISD_LOG=error|warn|info|debug).\n"
            "Exits cleanly with status 0 on SIGINT or SIGTERM.\n");
}

int main(int argc, char **argv)
{
    if (sw_daemon_setup("broker", &s_stop) != 0) {
        perror("swisd-broker: signal set-up");
        return 1;
    }
    sw_broker_config_t cfg = {0};
    static const struct option opts[] = {
        {"bind", required_argument, 0, 'b'},         {"parent", required_argument, 0, 'p'},
        {"region", required_argument, 0, 'r'},       {"id", required_argument, 0, 'i'},
        {"heartbeat-ms", required_argument, 0, 'H'}, {"expiry-ms", required_argument, 0, 'E'},
        {"max-nodes", required_argument, 0, 'M'},    {"hwm", required_argument, 0, 'W'},
        {"auth", required_argument, 0, 'A'},         {"allow", required_argument, 0, 'a'},
        {"deny", required_argument, 0, 'D'},         {"gateways", required_argument, 0, 'G'},
        {"brokers", required_argument, 0, 'B'},      {"ban-state", required_argument, 0, 'S'},
        SW_DAEMON_KEY_OPTIONS,
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0},
    };
    int c, bad = 0;
    sw_daemon_keys_t keys = {0};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (sw_daemon_keys_option(&keys, c, optarg))
            continue;
        switch (c) {
        case 'A':
            if (strcmp(optarg, "open") != 0) {
                fprintf(stderr, "swisd-broker: --auth: only 'open' (use --allow DIR for an allowlist)\n");
                bad = 1;
            }
            break;
        case 'a': cfg.allow_dir = optarg; break;
        case 'D': cfg.deny_file = optarg; break;
        case 'G': cfg.gateways_dir = optarg; break;
        case 'B': cfg.brokers_dir = optarg; break;
        case 'S': cfg.ban_state = optarg; break;
        case 'b': cfg.bind = optarg; break;
        case 'p': cfg.parent = optarg; break;
        case 'r': cfg.region = optarg; break;
        case 'i': cfg.id = optarg; break;
        case 'H': bad |= sw_opt_int("--heartbeat-ms", optarg, 10, 600000, &cfg.heartbeat_ms); break;
        case 'E': bad |= sw_opt_int("--expiry-ms", optarg, 20, 3600000, &cfg.expiry_ms); break;
        case 'M': bad |= sw_opt_int("--max-nodes", optarg, 1, 1000000, &cfg.max_nodes); break;
        case 'W': bad |= sw_opt_int("--hwm", optarg, 1, 10000000, &cfg.hwm); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (bad)
        return 2;
    bool failed = false;
    cfg.parent = sw_daemon_keys_brokers(&keys, cfg.parent, &failed);
    if (failed)
        return 2;
    if (keys.insecure && (cfg.allow_dir || cfg.deny_file || cfg.gateways_dir || cfg.brokers_dir)) {
        fprintf(stderr, "swisd-broker: --allow, --deny, --gateways and --brokers need keys (not --insecure)\n");
        return 2;
    }
    cfg.display_name = keys.name;
    if (sw_daemon_keys_check_id(&keys, cfg.id))
        return 2;
    sw_identity_t *identity = sw_daemon_keys_load(&keys, "broker", &failed);
    if (failed)
        return 1;
    cfg.identity = identity;
    char ban_state[4096];
    if (identity && !cfg.ban_state) { /* one file per broker key: brokers on one machine keep theirs apart */
        char dir[4000], err[512];
        if (sw_identity_make_config_dir(dir, sizeof dir, err, sizeof err) != 0) {
            fprintf(stderr, "swisd-broker: no folder for the ban state (give --ban-state FILE): %s\n", err);
            sw_identity_destroy(&identity);
            return 1;
        }
        snprintf(ban_state, sizeof ban_state, "%s/broker-bans-%s.txt", dir, sw_identity_id(identity));
        cfg.ban_state = ban_state;
    }
    sw_log_set_node(cfg.id); /* a chosen id is known now; a random one once the node exists */
    if (!cfg.bind || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    if (cfg.heartbeat_ms > 0 && cfg.expiry_ms > 0 && cfg.expiry_ms <= cfg.heartbeat_ms) {
        fprintf(stderr, "swisd-broker: --expiry-ms must be longer than --heartbeat-ms\n");
        return 2;
    }
    char err[512];
    sw_broker_t *b = sw_broker_new(&cfg, err, sizeof err);
    if (!b) {
        fprintf(stderr, "swisd-broker: %s\n", err);
        sw_identity_destroy(&identity);
        return 1;
    }
    sw_log_set_node(sw_broker_id(b));
    printf("swisd-broker: listening on %s\n", sw_broker_endpoint(b));
    printf("swisd-broker: id %s region %s\n", sw_broker_id(b), cfg.region ? cfg.region : "default");
    if (cfg.ban_state)
        printf("swisd-broker: ban state in %s\n", cfg.ban_state);
    fflush(stdout);
    sw_log(SW_LOG_INFO, "broker %s (region %s) on %s%s%s", sw_broker_id(b), cfg.region ? cfg.region : "default",
           sw_broker_endpoint(b), cfg.parent ? ", parent " : "", cfg.parent ? cfg.parent : "");
    sw_broker_run(b, &s_stop);
    sw_broker_stats_t st;
    sw_broker_stats(b, &st);
    sw_log(SW_LOG_INFO,
           "broker %s: shutting down (%zu nodes registered; since start: %llu frames dropped, queue full; %llu "
           "OVERLOADED sent; %llu Hellos refused; %llu ids claimed by child brokers refused; %llu bad frames; %llu "
           "requests over the rate; %llu nodes dropped for not reading)",
           sw_broker_id(b), sw_broker_node_count(b), (unsigned long long) st.dropped_full,
           (unsigned long long) st.overloaded_sent, (unsigned long long) st.hello_refused,
           (unsigned long long) st.claims_refused, (unsigned long long) st.bad_frames,
           (unsigned long long) st.requests_limited, (unsigned long long) st.evicted_full);
    sw_broker_destroy(&b);
    sw_identity_destroy(&identity);
    return 0;
}
