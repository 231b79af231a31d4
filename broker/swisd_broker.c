/*  swisd_broker.c: the `swisd-broker` process. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "sw_broker.h"
#include "sw_common.h"

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd-broker --bind ENDPOINT [--parent ENDPOINT] [--region NAME] [--id ID]\n"
                 "                    [--heartbeat-ms N] [--expiry-ms N] [--max-nodes N]\n"
                 "  --bind ENDPOINT     ZeroMQ endpoint to listen on, e.g. tcp://0.0.0.0:5555\n"
                 "                      (tcp://127.0.0.1:* picks a free port; the bound endpoint is printed)\n"
                 "  --parent ENDPOINT   register with this (root) broker as a regional broker\n"
                 "  --region NAME       region of this broker (default \"default\")\n"
                 "  --heartbeat-ms N    how often nodes must beat (default 1000)\n"
                 "  --expiry-ms N       silence after which a node is forgotten (default 3500)\n"
                 "Prints \"swisd-broker: listening on ENDPOINT\" on stdout once bound; logs go to stderr.\n"
                 "Exits cleanly on SIGINT or SIGTERM.\n");
}

static int s_int(const char *opt, const char *v, int lo, int hi)
{
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "swisd-broker: %s: expected an integer in [%d, %d], got '%s'\n", opt, lo, hi, v);
        exit(2);
    }
    return (int) x;
}

int main(int argc, char **argv)
{
    sw_broker_config_t cfg = {0};
    static const struct option opts[] = {
        {"bind", required_argument, 0, 'b'}, {"parent", required_argument, 0, 'p'},
        {"region", required_argument, 0, 'r'}, {"id", required_argument, 0, 'i'},
        {"heartbeat-ms", required_argument, 0, 'H'}, {"expiry-ms", required_argument, 0, 'E'},
        {"max-nodes", required_argument, 0, 'M'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': cfg.bind = optarg; break;
        case 'p': cfg.parent = optarg; break;
        case 'r': cfg.region = optarg; break;
        case 'i': cfg.id = optarg; break;
        case 'H': cfg.heartbeat_ms = s_int("--heartbeat-ms", optarg, 10, 60000); break;
        case 'E': cfg.expiry_ms = s_int("--expiry-ms", optarg, 20, 600000); break;
        case 'M': cfg.max_nodes = s_int("--max-nodes", optarg, 1, 1000000); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!cfg.bind || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    char err[512];
    sw_broker_t *b = sw_broker_new(&cfg, err, sizeof err);
    if (!b) {
        fprintf(stderr, "swisd-broker: %s\n", err);
        return 1;
    }
    printf("swisd-broker: listening on %s\n", sw_broker_endpoint(b));
    fflush(stdout);
    sw_log(SW_LOG_INFO, "broker %s (region %s) on %s%s%s", sw_broker_id(b), cfg.region ? cfg.region : "default",
           sw_broker_endpoint(b), cfg.parent ? ", parent " : "", cfg.parent ? cfg.parent : "");
    sw_broker_run(b, NULL);
    sw_log(SW_LOG_INFO, "broker %s: shutting down", sw_broker_id(b));
    sw_broker_destroy(&b);
    return 0;
}
