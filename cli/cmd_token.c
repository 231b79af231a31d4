/*  cmd_token.c: `swisd token`: an API token of a gateway's HTTP API bound
 *  to a node key (docs/protocol.md, "API tokens").
 *
 *  The key is proved by the CURVE handshake with the gateway's RPC, so the
 *  token can only be had by the holder of the key's secret. stdout is the
 *  token alone (for scripts: TOKEN=$(swisd token ...)); what it is bound to
 *  and when it expires go to stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "sw_client.h"
#include "sw_identity.h"
#include "sw_opt.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd token --gateway 'tcp://HOST:PORT#KEY' [--key PATH] [--timeout-ms N]\n"
                 "  Asks the gateway for an API token bound to a node key that has worked for it (a stage's);\n"
                 "  requests with 'Authorization: Bearer TOKEN' are then metered per key, at a rate that grows\n"
                 "  with the key's granted credit (the gateway's --http-credit-boost). Prints the token.\n"
                 "  --gateway ENDPOINT   the gateway's RPC endpoint with its key (CURVE: #KEY is required)\n"
                 "  --key PATH           the node key to bind (default: stage.key in ~/.config/swisd, the\n"
                 "                       key a stage started without --key uses)\n"
                 "  --timeout-ms N       longest wait for the gateway (default 10000)\n");
}

int swisd_cmd_token(int argc, char **argv)
{
    const char *gateway = NULL, *key_path = NULL;
    int64_t timeout = 10000;
    enum { O_GW = 256, O_KEY, O_TO };
    static const struct option opts[] = {
        {"gateway", required_argument, 0, O_GW}, {"key", required_argument, 0, O_KEY},
        {"timeout-ms", required_argument, 0, O_TO}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_GW: gateway = optarg; break;
        case O_KEY: key_path = optarg; break;
        case O_TO: if (sw_opt_i64("--timeout-ms", optarg, 1, 3600000, &timeout)) return 2; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!gateway || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    if (!strchr(gateway, '#')) {
        fprintf(stderr, "swisd token: the gateway endpoint needs its key (tcp://HOST:PORT#KEY): a token is bound to "
                        "the key proved by the CURVE handshake\n");
        return 2;
    }
    char err[SW_IDENTITY_MAX_PATH + 256];
    sw_identity_t *identity = sw_identity_load_or_create("stage", key_path, err, sizeof err);
    if (!identity) {
        fprintf(stderr, "swisd token: %s\n", err);
        return 1;
    }
    sw_client_t *cl = sw_client_new_keyed(gateway, identity, err, sizeof err);
    sw_identity_destroy(&identity);
    if (!cl) {
        fprintf(stderr, "swisd token: %s\n", err);
        return 1;
    }
    char token[65], id[65];
    uint64_t expires = 0;
    int code = 0;
    const int rc = sw_client_token(cl, token, sizeof token, id, sizeof id, &expires, (int) timeout, &code, err,
                                   sizeof err);
    sw_client_destroy(&cl);
    if (rc != 0) {
        fprintf(stderr, "swisd token: %s\n", err);
        return 1;
    }
    printf("%s\n", token);
    fprintf(stderr, "swisd token: bound to key %s, expires at unix time %llu; send it as 'Authorization: Bearer "
                    "TOKEN'\n", id, (unsigned long long) expires);
    return 0;
}
