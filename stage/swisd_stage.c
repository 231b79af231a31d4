/*  swisd_stage.c: the `swisd-stage` process. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli_util.h"
#include <string.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_stage.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: swisd-stage --broker ENDPOINT[,ENDPOINT...] --model MODEL.gguf --layers A-B|auto [--region NAME]\n"
            "                   [--threads N] [--kv-mem MiB] [--mem MiB] [--max-sessions N] [--idle-s S]\n"
            "                   [--id ID] [--heartbeat-ms N]\n"
            "  --broker LIST    the region's brokers; the next is used when the current one falls silent\n"
            "  --layers A-B     blocks to serve, counted from 0, both ends inclusive (0-1 = the first two)\n"
            "  --layers auto    ask the broker which layers are least covered and take as many as fit in --mem\n"
            "  --kv-mem SIZE    memory for all sessions' KV caches (MiB, or K/M/G suffix; default 1024);\n"
            "                   least recently used\n"
            "                   sessions are evicted past it\n"
            "  --mem SIZE       memory offered for weights when choosing layers automatically (default: all)\n"
            "  --max-sessions N sessions held at once (default 256)\n"
            "  --idle-s S       drop a session's KV cache after S idle seconds (default 300)\n"
            "  --codec SPEC     codec for activations sent to this stage, chosen for its link: f32, f16,\n"
            "                   bf16, q8_0, q4_0, optionally +zstd[N] (default: the sender's)\n"
            "Exits cleanly on SIGINT or SIGTERM.\n");
}

/* An integer option in [lo, hi]; exits with status 2 on a bad value. */
static long s_num(const char *opt, const char *v, long lo, long hi)
{
    int64_t x;
    if (cli_parse_i64(opt, v, lo, hi, &x) != 0)
        exit(2);
    return (long) x;
}

/* A size in MiB, or with a K, M or G suffix (KiB, MiB, GiB). */
static size_t s_size(const char *opt, const char *v)
{
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    size_t unit = 1u << 20;
    if (*end == 'K' || *end == 'k') unit = 1u << 10, end++;
    else if (*end == 'M' || *end == 'm') unit = 1u << 20, end++;
    else if (*end == 'G' || *end == 'g') unit = 1u << 30, end++;
    if (!*v || *end || x == 0 || x > (1ull << 40) / unit) {
        fprintf(stderr, "swisd-stage: %s: expected a size like 512, 400K, 2G (MiB without a suffix), got '%s'\n",
                opt, v);
        exit(2);
    }
    return (size_t) x * unit;
}

int main(int argc, char **argv)
{
    sw_stage_config_t cfg = {.layer_begin = -2, .threads = 1, .kv_mem_bytes = 1024ull << 20, .max_sessions = 256,
                             .idle_ms = 300000};
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.threads = n > 0 ? (int) n : 1;
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"model", required_argument, 0, 'm'},
        {"layers", required_argument, 0, 'l'}, {"region", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'}, {"kv-mem", required_argument, 0, 'k'},
        {"mem", required_argument, 0, 'M'}, {"max-sessions", required_argument, 0, 's'},
        {"idle-s", required_argument, 0, 'I'}, {"id", required_argument, 0, 'i'},
        {"heartbeat-ms", required_argument, 0, 'H'}, {"codec", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': cfg.broker = optarg; break;
        case 'm': cfg.model_path = optarg; break;
        case 'l':
            if (!strcmp(optarg, "auto")) {
                cfg.layer_begin = -1;
            } else {
                long a, b;
                char tail;
                if (sscanf(optarg, "%ld-%ld%c", &a, &b, &tail) != 2 || a < 0 || b < a || b > 100000) {
                    fprintf(stderr, "swisd-stage: --layers: expected A-B (inclusive, A <= B) or auto, got '%s'\n",
                            optarg);
                    return 2;
                }
                cfg.layer_begin = (int32_t) a;
                cfg.layer_end = (int32_t) b + 1;
            }
            break;
        case 'r': cfg.region = optarg; break;
        case 't': cfg.threads = (int) s_num("--threads", optarg, 1, 256); break;
        case 'k': cfg.kv_mem_bytes = s_size("--kv-mem", optarg); break;
        case 'M': cfg.mem_bytes = s_size("--mem", optarg); break;
        case 's': cfg.max_sessions = (int) s_num("--max-sessions", optarg, 1, 100000); break;
        case 'I': cfg.idle_ms = (int) s_num("--idle-s", optarg, 1, 86400) * 1000; break;
        case 'i': cfg.id = optarg; break;
        case 'H': cfg.heartbeat_ms = (int) s_num("--heartbeat-ms", optarg, 10, 60000); break;
        case 'c': cfg.codec = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!cfg.broker || !cfg.model_path || cfg.layer_begin == -2 || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    char err[512];
    sw_stage_t *st = sw_stage_new(&cfg, err, sizeof err);
    if (!st) {
        fprintf(stderr, "swisd-stage: %s\n", err);
        return 1;
    }
    printf("swisd-stage: %s serving layers %s\n", sw_stage_id(st), sw_stage_layers(st));
    fflush(stdout);
    sw_stage_run(st, NULL);
    sw_log(SW_LOG_INFO, "stage %s: shutting down", sw_stage_id(st));
    sw_stage_destroy(&st);
    return 0;
}
