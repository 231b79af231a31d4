/*  cmd_generate.c: `swisd generate`: generation through a gateway.
 *
 *  stdout is exactly the prompt followed by the generated text, as with
 *  `swisd run`; the summary (tokens/s, time to first token, route length)
 *  goes to stderr.
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
    fprintf(out, "usage: swisd generate --gateway ENDPOINT -p PROMPT [-n N] [options]\n"
                 "  --gateway ENDPOINT   the gateway's RPC endpoint with its key as the gateway prints it,\n"
                 "                       e.g. 'tcp://127.0.0.1:6000#KEY' (CURVE); without #KEY: plain TCP\n"
                 "  --key PATH           dial as this key (public certificate; PATH_secret holds the secret):\n"
                 "                       a gateway started with --rpc-allow serves only the keys it lists.\n"
                 "                       Default with #KEY: client.key in ~/.config/swisd, made on first use\n"
                 "  -p, --prompt TEXT    prompt (stdout starts with it)\n"
                 "  -n, --n-predict N    tokens to generate (default 128)\n"
                 "      --temp T         temperature, 0 = greedy (default 0.8)\n"
                 "      --top-k K, --top-p P, --min-p P, --repeat-penalty R\n"
                 "      --seed S         sampling seed (default: the gateway draws one; stderr shows it)\n"
                 "      --stop TEXT      stop string (repeatable, up to 16)\n"
                 "      --ignore-eos     generate exactly N tokens\n"
                 "      --timeout-ms N   longest wait for any message from the gateway (default 60000)\n");
}

static int s_on_token(const char *text, size_t len, uint32_t token_id, void *user)
{
    (void) token_id;
    (void) user;
    if (len) /* a token whose text is held back (a possible stop string) comes with none */
        fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int swisd_cmd_generate(int argc, char **argv)
{
    const char *gateway = NULL;
    const char *stops[16];
    int n_stops = 0;
    int64_t n = 128, iv, timeout = 60000;
    sw_client_request_t req = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                               .repeat_penalty = 1.0f};
    const char *key_path = NULL;
    enum { O_GW = 256, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REP, O_SEED, O_STOP, O_IGN, O_TO, O_KEY };
    static const struct option opts[] = {
        {"gateway", required_argument, 0, O_GW}, {"prompt", required_argument, 0, 'p'},
        {"n-predict", required_argument, 0, 'n'}, {"temp", required_argument, 0, O_TEMP},
        {"top-k", required_argument, 0, O_TOPK}, {"top-p", required_argument, 0, O_TOPP},
        {"min-p", required_argument, 0, O_MINP}, {"repeat-penalty", required_argument, 0, O_REP},
        {"seed", required_argument, 0, O_SEED}, {"stop", required_argument, 0, O_STOP},
        {"ignore-eos", no_argument, 0, O_IGN}, {"timeout-ms", required_argument, 0, O_TO},
        {"key", required_argument, 0, O_KEY},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case O_GW: gateway = optarg; break;
        case 'p': req.prompt = optarg; break;
        case 'n': if (sw_opt_i64("-n", optarg, 1, 65536, &n)) return 2; break;
        case O_TEMP: if (sw_opt_f32("--temp", optarg, 0.0f, 100.0f, &req.temperature)) return 2; break;
        case O_TOPK: if (sw_opt_i64("--top-k", optarg, 0, 1 << 24, &iv)) return 2; req.top_k = (int32_t) iv; break;
        case O_TOPP: if (sw_opt_f32("--top-p", optarg, 0.0f, 1.0f, &req.top_p)) return 2; break;
        case O_MINP: if (sw_opt_f32("--min-p", optarg, 0.0f, 1.0f, &req.min_p)) return 2; break;
        case O_REP: if (sw_opt_f32("--repeat-penalty", optarg, 0.01f, 100.0f, &req.repeat_penalty)) return 2; break;
        case O_SEED: if (sw_opt_u64("--seed", optarg, &req.seed)) return 2; req.has_seed = true; break;
        case O_STOP:
            if (n_stops == 16) {
                fprintf(stderr, "swisd generate: at most 16 --stop strings\n");
                return 2;
            }
            stops[n_stops++] = optarg;
            break;
        case O_IGN: req.ignore_eos = true; break;
        case O_KEY: key_path = optarg; break;
        case O_TO: if (sw_opt_i64("--timeout-ms", optarg, 1, 3600000, &timeout)) return 2; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!gateway || !req.prompt || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    req.max_tokens = (uint32_t) n;
    req.stop = n_stops ? stops : NULL;
    req.n_stop = n_stops;
    char err[SW_IDENTITY_MAX_PATH + 256];
    /* our key: only for a CURVE gateway (an endpoint with #KEY) */
    sw_identity_t *identity = NULL;
    if (strchr(gateway, '#') && !(identity = sw_identity_load_or_create("client", key_path, err, sizeof err))) {
        fprintf(stderr, "swisd generate: %s\n", err);
        return 1;
    }
    if (key_path && !identity) {
        fprintf(stderr, "swisd generate: --key needs a CURVE gateway endpoint (tcp://HOST:PORT#KEY)\n");
        return 2;
    }
    sw_client_t *cl = sw_client_new_keyed(gateway, identity, err, sizeof err);
    sw_identity_destroy(&identity); /* applied to the socket; not needed after */
    if (!cl) {
        fprintf(stderr, "swisd generate: %s\n", err);
        return 1;
    }
    fwrite(req.prompt, 1, strlen(req.prompt), stdout);
    fflush(stdout);
    sw_client_summary_t sum;
    int code = 0;
    int rc = sw_client_generate(cl, &req, s_on_token, NULL, &sum, (int) timeout, &code, err, sizeof err);
    sw_client_destroy(&cl);
    if (rc != 0) {
        fprintf(stderr, "\nswisd generate: %s\n", err);
        (void) code; /* SW_CLIENT_STOPPED on SIGINT/SIGTERM: the generation was cancelled in the gateway */
        return 1;
    }
    fprintf(stderr, "[swisd generate] %u prompt + %u generated tokens (%s) | time to first token %.1f ms | decode "
                    "%.2f tokens/s | %d stages in the chain | total %.1f ms | seed %llu",
            sum.prompt_tokens, sum.completion_tokens, sum.stop_reason, sum.time_to_first_token_ms,
            sum.decode_tokens_per_s, sum.n_route, sum.total_ms, (unsigned long long) sum.seed);
    if (sum.acceptance_rate > 0)
        fprintf(stderr, " | draft acceptance %.1f%%", 100.0 * sum.acceptance_rate);
    fputc('\n', stderr);
    return 0;
}
