/*  swisd_gateway.c: the `swisd-gateway` process. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_admin_token.h"
#include "sw_api_token.h"
#include "sw_bans.h"
#include "sw_common.h"
#include "sw_data_dir.h"
#include "sw_daemon.h"
#include "sw_daemon_keys.h"
#include "sw_gateway.h"
#include "sw_http.h"
#include "sw_http_models.h"
#include "sw_identity.h"
#include "sw_opt.h"
#include "sw_reputation.h"
#include "sw_tls.h"

static volatile int s_stop = 0; /* set by SIGINT or SIGTERM (sw_daemon_setup) */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: swisd-gateway --broker ENDPOINT[,ENDPOINT...] --model MODEL.gguf --rpc ENDPOINT [--http ADDR:PORT]\n"
            "                     [--threads N] [--codec SPEC] [--region NAME] [--id ID] [--timeout-ms N]\n"
            "                     [--route-wait-ms N] [--max-sessions N] [--heartbeat-ms N]\n"
            "                     [--draft DRAFT.gguf [--gamma-max N]]\n"
            SW_DAEMON_KEY_USAGE
            "  --rpc ENDPOINT    where clients connect (tcp://127.0.0.1:* picks a free port; printed on stdout)\n"
            "  --codec SPEC      activation codec on every link: f32 (default), f16, bf16, q8_0, q4_0,\n"
            "                    optionally +zstd or +zstdN (e.g. q8_0+zstd3)\n"
            "  --timeout-ms N    time one step through the chain may take (default 30000)\n"
            "  --route-wait-ms N how long a request waits for every layer to have a stage (default 5000)\n"
            "  --draft FILE      speculative decoding with this local draft model (same vocabulary):\n"
            "                    it proposes tokens, the swarm verifies several in one round trip\n"
            "  --gamma-max N     most tokens proposed per round (default 8; the gateway adapts the\n"
            "                    number to the measured acceptance rate and round-trip time)\n"
            "  --http ADDR:PORT  OpenAI-compatible HTTP API: /v1/models, /v1/completions, /v1/chat/completions\n"
            "                    (stream: true as server-sent events), /healthz (:0 picks a free port)\n"
            "  --http-rate N     requests per second per client address (burst 2N; default 5)\n"
            "  --http-token-rate N  generated tokens per second per client address (burst 60 s worth;\n"
            "                    default 50)\n"
            "  --web DIR         serve the dashboard and chat page from DIR (default: web/dist of the\n"
            "                    source tree when built, or of the installed data folder; none: --web '')\n"
            "  --http-max-tokens N  largest max_tokens a request may ask for (default 2048)\n"
            "  --http-max-concurrent N  generations at once over HTTP (default 16; more get 503)\n"
            "  --http-max-concurrent-per-addr N  generations at once per client address (default 4;\n"
            "                    more get 429)\n"
            "  --http-read-rate N  requests of /metrics and /api/swarm per second per client address\n"
            "                    (burst 2N; default 10)\n"
            "  --http-max-conn N connections at once (default 256)\n"
            "  --http-max-conn-per-addr N  connections at once per client address (default 16; more\n"
            "                    are closed at once)\n"
            "  --http-idle-timeout S  seconds a connection may stay without a byte either way (default 15;\n"
            "                    streams send a comment line when tokens pause)\n"
            "  --http-max-addrs N  client addresses the fair-use table tracks (default 65536; when all\n"
            "                    are in use, new addresses get 503)\n"
            /* HTTPS and the operator's endpoints (issue 11, HTTP) */
            "  --https-cert FILE --https-key FILE  serve --http over TLS only (PEM certificate chain and\n"
            "                    its private key)\n"
            "  --admin-token-file FILE  enable /admin/ (drain, ban, limits) with the bearer token in FILE\n"
            "                    (mode 0600, ours); made and printed when FILE does not exist\n"
            "  --state-db FILE   SQLite file of bans and drains, reputation, credits and API tokens, kept\n"
            "                    across restarts (default with keys or --admin-token-file:\n"
            "                    gateway-state.db in the per-user config folder)\n"
            "  --audit-window-s S  seconds after a stage's work before its pending credit is granted,\n"
            "                    unless an audit of its key fails first (default 120)\n"
            "  --http-credit-boost F  a request with an API token (`swisd token`) is metered per key at\n"
            "                    the base rates x (1 + F x min(1, granted credit / --http-credit-full));\n"
            "                    default 0: per key at the base rates\n"
            "  --http-credit-full C  granted credit units that earn the whole boost (default 1000)\n"
            "  --serve-model MANIFEST.json  serve the published model for volunteers (with --http):\n"
            "                    /models/manifest.json and /models/FILE.gguf (the GGUF beside the\n"
            "                    manifest) with byte ranges; `swisd manifest` writes it\n"
            "  --rpc-allow DIR   serve the RPC only to the client keys in DIR (public key files) and the\n"
            "                    gateway's own HTTP front; default: any key (the open API)\n"
            "  --trusted-keys DIR  the operator's stage keys: their word decides an audit; with\n"
            "  --trusted-layers N  layers 0..N-1 run only on them (the first layers' inputs give the prompt\n"
            "                    away: docs/security.md)\n"
            "  --audit-threshold D  relative sketch distance at which two hosts disagree (default 0.05)\n"
            "  --audit-trust N   consecutive verified steps before a stage is trusted (default 20): until\n"
            "                    then every step is audited and its text held until verified\n"
            "  --audit-floor F   audit rate of a trusted stage (default 0.05)\n"
            "  --audit-hold all|untrusted  hold text until an audit verified it: for every session\n"
            "                    (all: no text of a stage that lies after earning trust reaches a\n"
            "                    client; costs an audit of every step and streaming), or only while a\n"
            "                    hop is untrusted (untrusted, the default)\n"
            "Exits cleanly on SIGINT or SIGTERM.\n");
}

/* HTTPS and the operator's endpoints: reads and checks the certificate and
 * key (*cert, *key: caller frees), loads or makes the admin token, opens
 * the state database (with a token, or when --state-db is given: bans
 * outlast restarts). Returns 0, or -1 with a reason in err. */
static int s_admin_setup(const char *cert_path, const char *key_path, const char *token_file, const char *state_db,
                         bool keyed, const sw_reputation_policy_t *policy, char **cert, char **key, char *token,
                         size_t token_cap, sw_bans_t **bans, sw_reputation_t **rep, sw_api_token_t **tokens,
                         char *err, size_t errlen)
{
    const bool bans_wanted = token_file || state_db;
    *cert = *key = NULL;
    if ((cert_path || key_path) && sw_tls_load(cert_path, key_path, cert, key, err, errlen) != 0)
        return -1;
    bool created = false;
    if (token_file) {
        if (sw_admin_token_load(token_file, token, token_cap, &created, err, errlen) != 0)
            goto fail;
        printf("swisd-gateway: admin token %s %s\n", created ? "made in" : "read from", token_file);
    }
    char path[1024];
    if (!state_db && (token_file || keyed)) { /* the default: the per-user config folder, made 0700 when absent */
        char dir[960], why[600];
        if (sw_identity_make_config_dir(dir, sizeof dir, why, sizeof why) != 0) {
            snprintf(err, errlen, "no folder for the state database: %.400s (or give --state-db)", why);
            goto fail;
        }
        snprintf(path, sizeof path, "%s/gateway-state.db", dir);
        state_db = path;
    }
    if (state_db && bans_wanted) {
        if (!(*bans = sw_bans_open(state_db, err, errlen)))
            goto fail;
        printf("swisd-gateway: bans and drains in %s\n", state_db);
    }
    if (state_db && keyed) { /* reputation, credits and API tokens are per key: only with keys */
        if (!(*rep = sw_reputation_open(state_db, policy, err, errlen)) ||
            !(*tokens = sw_api_token_open(state_db, 0, err, errlen))) {
            sw_reputation_destroy(rep);
            sw_bans_destroy(bans);
            goto fail;
        }
        printf("swisd-gateway: reputation, credits and API tokens in %s\n", state_db);
    }
    return 0;
fail:
    sw_tls_free_key(key);
    free(*cert);
    *cert = NULL;
    return -1;
}

int main(int argc, char **argv)
{
    if (sw_daemon_setup("gateway", &s_stop) != 0) {
        perror("swisd-gateway: signal set-up");
        return 1;
    }
    sw_gateway_config_t cfg = {.threads = 1};
    const char *http = NULL;
    const char *web_dir = NULL;
    char web_found[PATH_MAX]; /* the default dashboard folder, when found */
    const char *serve_model = NULL; /* --serve-model MANIFEST.json */
    bool web_set = false;
    /* HTTP options, 0: sw_http's default */
    int http_rate = 0, token_rate = 0, http_read_rate = 0, http_max_tokens = 0, http_max_addrs = 0;
    int http_conc = 0, http_conc_addr = 0, http_max_conn = 0, http_conn_addr = 0, http_idle = 0;
    /* HTTPS and the operator's endpoints */
    const char *https_cert = NULL, *https_key = NULL, *admin_token_file = NULL, *state_db = NULL;
    /* reputation and credits (issue 12) */
    sw_reputation_policy_t policy = {0};
    float credit_boost = 0, credit_full = 0, audit_window_s = 0;
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"model", required_argument, 0, 'm'},
        {"rpc", required_argument, 0, 'r'}, {"http", required_argument, 0, 'H'},
        {"threads", required_argument, 0, 't'}, {"codec", required_argument, 0, 'c'},
        {"region", required_argument, 0, 'R'}, {"id", required_argument, 0, 'i'},
        {"timeout-ms", required_argument, 0, 'T'}, {"route-wait-ms", required_argument, 0, 'W'},
        {"max-sessions", required_argument, 0, 'S'}, {"heartbeat-ms", required_argument, 0, 'B'},
        {"draft", required_argument, 0, 'd'}, {"gamma-max", required_argument, 0, 'g'},
        {"http-rate", required_argument, 0, 'q'}, {"http-max-concurrent", required_argument, 0, 'C'},
        {"http-token-rate", required_argument, 0, 'k'}, {"web", required_argument, 0, 'w'},
        {"http-max-tokens", required_argument, 0, 'M'},
        {"http-max-concurrent-per-addr", required_argument, 0, 'P'}, {"http-read-rate", required_argument, 0, 'Q'},
        {"http-max-conn", required_argument, 0, 'N'}, {"http-max-conn-per-addr", required_argument, 0, 'A'},
        {"http-idle-timeout", required_argument, 0, 'I'}, {"http-max-addrs", required_argument, 0, 'X'},
        /* HTTPS and the operator's endpoints */
        {"https-cert", required_argument, 0, 0x100}, {"https-key", required_argument, 0, 0x101},
        {"admin-token-file", required_argument, 0, 0x102}, {"state-db", required_argument, 0, 0x103},
        {"rpc-allow", required_argument, 0, 0x104}, {"trusted-keys", required_argument, 0, 0x105},
        {"trusted-layers", required_argument, 0, 0x106}, {"audit-threshold", required_argument, 0, 0x107},
        {"audit-trust", required_argument, 0, 0x108}, {"audit-floor", required_argument, 0, 0x109},
        {"audit-window-s", required_argument, 0, 0x10a}, {"http-credit-boost", required_argument, 0, 0x10b},
        {"http-credit-full", required_argument, 0, 0x10c}, {"serve-model", required_argument, 0, 0x10d},
        {"audit-hold", required_argument, 0, 0x10e},
        SW_DAEMON_KEY_OPTIONS, /* keys (issue 11): --key, --insecure, --bootstrap */
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c, bad = 0;
    sw_daemon_keys_t keys = {0};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (sw_daemon_keys_option(&keys, c, optarg))
            continue;
        switch (c) {
        case 'b': cfg.broker = optarg; break;
        case 'm': cfg.model_path = optarg; break;
        case 'r': cfg.rpc = optarg; break;
        case 'H': http = optarg; break;
        case 't': bad |= sw_opt_int("--threads", optarg, 1, 256, &cfg.threads); break;
        case 'c': cfg.codec = optarg; break;
        case 'R': cfg.region = optarg; break;
        case 'i': cfg.id = optarg; break;
        case 'T': bad |= sw_opt_int("--timeout-ms", optarg, 10, 3600000, &cfg.timeout_ms); break;
        case 'W': bad |= sw_opt_int("--route-wait-ms", optarg, 1, 3600000, &cfg.route_wait_ms); break;
        case 'S': bad |= sw_opt_int("--max-sessions", optarg, 1, 100000, &cfg.max_sessions); break;
        case 'B': bad |= sw_opt_int("--heartbeat-ms", optarg, 10, 60000, &cfg.heartbeat_ms); break;
        case 'd': cfg.draft_path = optarg; break;
        case 'q': bad |= sw_opt_int("--http-rate", optarg, 1, 100000, &http_rate); break;
        case 'C': bad |= sw_opt_int("--http-max-concurrent", optarg, 1, 10000, &http_conc); break;
        case 'k': bad |= sw_opt_int("--http-token-rate", optarg, 1, 10000000, &token_rate); break;
        case 'M': bad |= sw_opt_int("--http-max-tokens", optarg, 1, 65536, &http_max_tokens); break;
        case 'P': bad |= sw_opt_int("--http-max-concurrent-per-addr", optarg, 1, 10000, &http_conc_addr); break;
        case 'Q': bad |= sw_opt_int("--http-read-rate", optarg, 1, 100000, &http_read_rate); break;
        case 'N': bad |= sw_opt_int("--http-max-conn", optarg, 1, 100000, &http_max_conn); break;
        case 'A': bad |= sw_opt_int("--http-max-conn-per-addr", optarg, 1, 100000, &http_conn_addr); break;
        case 'I': bad |= sw_opt_int("--http-idle-timeout", optarg, 1, 3600, &http_idle); break;
        case 'X': bad |= sw_opt_int("--http-max-addrs", optarg, 1, 1 << 24, &http_max_addrs); break;
        case 'w': web_dir = optarg, web_set = true; break;
        case 'g': bad |= sw_opt_int("--gamma-max", optarg, 1, 16, &cfg.gamma_max); break;
        case 0x100: https_cert = optarg; break;
        case 0x101: https_key = optarg; break;
        case 0x102: admin_token_file = optarg; break;
        case 0x103: state_db = optarg; break;
        case 0x104: cfg.rpc_allow_dir = optarg; break;
        case 0x105: cfg.trusted_dir = optarg; break;
        case 0x106: bad |= sw_opt_int("--trusted-layers", optarg, 1, 100000, &cfg.trusted_layers); break;
        case 0x107: {
            float v;
            bad |= sw_opt_f32("--audit-threshold", optarg, 1e-6f, 10.0f, &v);
            cfg.audit_threshold = v;
            break;
        }
        case 0x108: bad |= sw_opt_int("--audit-trust", optarg, 1, 1000000, &cfg.audit_n_trust); break;
        case 0x109: {
            float v;
            bad |= sw_opt_f32("--audit-floor", optarg, 1e-6f, 1.0f, &v);
            cfg.audit_rate_floor = v;
            break;
        }
        case 0x10a: bad |= sw_opt_f32("--audit-window-s", optarg, 0.001f, 30 * 86400.0f, &audit_window_s); break;
        case 0x10b: bad |= sw_opt_f32("--http-credit-boost", optarg, 0, 1000, &credit_boost); break;
        case 0x10c: bad |= sw_opt_f32("--http-credit-full", optarg, 1e-9f, 1e15f, &credit_full); break;
        case 0x10d: serve_model = optarg; break;
        case 0x10e:
            if (!strcmp(optarg, "all") || !strcmp(optarg, "untrusted")) {
                cfg.audit_hold_all = !strcmp(optarg, "all");
            } else {
                fprintf(stderr, "swisd-gateway: --audit-hold takes all or untrusted, not '%s'\n", optarg);
                bad = 1;
            }
            break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (bad)
        return 2;
    /* the reputation's trust rule is the audit engine's: the same N and floor */
    policy = (sw_reputation_policy_t){.n_trust = cfg.audit_n_trust, .rate_floor = cfg.audit_rate_floor,
                                      .audit_window_s = audit_window_s};
    /* keys (issue 11): broker list from --bootstrap, the key; --id only when insecure */
    bool failed = false;
    cfg.broker = sw_daemon_keys_brokers(&keys, cfg.broker, &failed);
    if (failed)
        return 2;
    cfg.display_name = keys.name;
    if (sw_daemon_keys_check_id(&keys, cfg.id))
        return 2;
    sw_identity_t *identity = NULL;
    if (cfg.broker && cfg.model_path && cfg.rpc && optind == argc) {
        if (!(identity = sw_daemon_keys_load(&keys, "gateway", &failed)) && failed)
            return 1;
        cfg.identity = identity;
    }
    sw_log_set_node(cfg.id); /* a chosen id is known now; a random one once the node exists */
    if (!cfg.broker || !cfg.model_path || !cfg.rpc || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    if ((https_cert || https_key || admin_token_file || serve_model) && !http) {
        fprintf(stderr, "swisd-gateway: --https-cert, --https-key, --admin-token-file and --serve-model need --http\n");
        return 2;
    }
    char err[512];
    sw_http_models_t *models = NULL;
    if (serve_model && !(models = sw_http_models_new(serve_model, err, sizeof err))) {
        fprintf(stderr, "swisd-gateway: %s\n", err);
        return 1;
    }
    /* HTTPS and the operator's endpoints: files checked before anything starts */
    char *tls_cert = NULL, *tls_key = NULL, admin_token[SW_ADMIN_TOKEN_MAX + 1] = "";
    sw_bans_t *bans = NULL;
    sw_reputation_t *rep = NULL;
    sw_api_token_t *tokens = NULL;
    if (s_admin_setup(https_cert, https_key, admin_token_file, state_db, identity != NULL, &policy, &tls_cert,
                      &tls_key, admin_token, sizeof admin_token, &bans, &rep, &tokens, err, sizeof err) != 0) {
        fprintf(stderr, "swisd-gateway: %s\n", err);
        sw_http_models_destroy(&models);
        return 1;
    }
    cfg.bans = bans;
    cfg.reputation = rep;
    cfg.tokens = tokens;
    sw_gateway_t *g = sw_gateway_new(&cfg, err, sizeof err);
    if (!g) {
        fprintf(stderr, "swisd-gateway: %s\n", err);
        sw_tls_free_key(&tls_key);
        free(tls_cert);
        sw_bans_destroy(&bans);
        sw_reputation_destroy(&rep);
        sw_api_token_destroy(&tokens);
        sw_http_models_destroy(&models);
        return 1;
    }
    sw_log_set_node(sw_gateway_id(g));
    printf("swisd-gateway: rpc on %s\n", sw_gateway_rpc_endpoint(g));
    sw_http_t *web = NULL;
    if (http) {
        /* the default dashboard folder only when it was built (sw_data_dir.h: the source tree's or the
         * installed one); an explicit --web must exist */
        if (!web_set && sw_data_find("web/dist/index.html", web_found, sizeof web_found) == 0) {
            *strrchr(web_found, '/') = 0; /* the folder: a found path is absolute, so it has a '/' */
            web_dir = web_found;
        }
        sw_http_config_t hc = {.addr = http, .rpc = sw_gateway_rpc_endpoint(g), .model_id = sw_gateway_model_id(g),
                               .rate_rps = http_rate, .max_concurrent = http_conc, .token_rate = token_rate,
                               .max_tokens = (uint32_t) http_max_tokens, .web_dir = web_dir,
                               .chat_format = sw_gateway_chat_format(g), .max_concurrent_per_addr = http_conc_addr,
                               .read_rate = http_read_rate, .max_conn = http_max_conn,
                               .max_conn_per_addr = http_conn_addr, .idle_timeout_s = http_idle,
                               .max_addrs = (size_t) http_max_addrs, .tls_cert_pem = tls_cert,
                               .tls_key_pem = tls_key, .admin_token = admin_token[0] ? admin_token : NULL,
                               .bans = bans, .reputation = rep, .tokens = tokens, .credit_boost = credit_boost,
                               .credit_full = credit_full, .identity = identity,
                               .ban_outbox = sw_gateway_ban_outbox(g), .models = models};
        web = sw_http_new(&hc, err, sizeof err);
        sw_tls_free_key(&tls_key);
        free(tls_cert);
        explicit_bzero(admin_token, sizeof admin_token);
        if (!web) {
            fprintf(stderr, "swisd-gateway: %s\n", err);
            sw_gateway_destroy(&g);
            sw_bans_destroy(&bans);
            sw_reputation_destroy(&rep);
            sw_api_token_destroy(&tokens);
            sw_http_models_destroy(&models);
            return 1;
        }
        const char *scheme = https_cert ? "https" : "http";
        printf("swisd-gateway: %s on port %d\n", scheme, sw_http_port(web));
        if (web_dir && web_dir[0])
            printf("swisd-gateway: dashboard at %s://127.0.0.1:%d/ (chat: /#/chat)\n", scheme, sw_http_port(web));
    }
    fflush(stdout);
    sw_gateway_run(g, &s_stop);
    sw_http_destroy(&web);
    sw_http_models_destroy(&models);
    sw_log(SW_LOG_INFO, "gateway %s: shutting down", sw_gateway_id(g));
    sw_gateway_destroy(&g);
    sw_bans_destroy(&bans);
    sw_reputation_destroy(&rep);
    sw_api_token_destroy(&tokens);
    sw_identity_destroy(&identity);
    return 0;
}
