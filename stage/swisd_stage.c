/*  swisd_stage.c: the `swisd-stage` process. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "sw_common.h"
#include "sw_daemon.h"
#include "sw_daemon_keys.h"
#include "sw_opt.h"
#include "sw_stage.h"

static volatile int s_stop = 0; /* set by SIGINT or SIGTERM (sw_daemon_setup_drain): drain, then exit */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: swisd-stage --broker ENDPOINT[,ENDPOINT...] --model MODEL.gguf --layers A-B|auto [--region NAME]\n"
            "                   [--threads N] [--kv-mem MiB] [--mem MiB] [--max-sessions N] [--idle-s S]\n"
            "                   [--key PATH | --insecure [--id ID]] [--bootstrap FILE] [--heartbeat-ms N]\n"
            "  --broker LIST    the region's brokers; the next is used when the current one falls silent\n"
            "  --layers A-B     blocks to serve, counted from 0, both ends inclusive (0-1 = the first two)\n"
            "  --layers auto    ask the broker which layers are least covered and take as many as fit in --mem\n"
            "  --rebalance      with --layers A-B: move to layers nobody holds as --layers auto does\n"
            "  --kv-mem SIZE    memory for all sessions' KV caches (MiB, or K/M/G suffix; default 1024);\n"
            "                   least recently used\n"
            "                   sessions are evicted past it\n"
            "  --mem SIZE       memory offered for weights when choosing layers automatically (default: all)\n"
            "  --max-sessions N sessions held at once (default 256)\n"
            SW_DAEMON_KEY_USAGE
            "  --idle-s S       drop a session's KV cache after S idle seconds (default 300)\n"
            "  --codec SPEC     codec for activations sent to this stage, chosen for its link: f32, f16,\n"
            "                   bf16, q8_0, q4_0, optionally +zstd[N] (default: the sender's)\n"
            "  --audit          an operator's audit stage: gateways give it audit work only (list its key\n"
            "                   in the gateways' --trusted-keys so that its word decides an audit)\n"
            "  --upload-kbps N  cap on the activations it sends, kilobits/s (replies are delayed, never\n"
            "                   dropped; default 0 = none)\n"
            "  --drain-s S      on SIGINT/SIGTERM: announce that it drains, keep serving while the gateways\n"
            "                   move its sessions elsewhere, exit once none is left or after S seconds\n"
            "                   (default 30; 0 = exit at once). Another signal 1 s or more later exits\n"
            "                   at once (within 1 s it counts as the same request).\n"
            "On exit prints \"swisd-stage: sent N activation bytes\".\n");
}

int main(int argc, char **argv)
{
    if (sw_daemon_setup_drain("stage", &s_stop) != 0) {
        perror("swisd-stage: signal set-up");
        return 1;
    }
    sw_stage_config_t cfg = {.layer_begin = -2, .threads = sw_opt_default_threads(), .kv_mem_bytes = 1024ull << 20,
                             .max_sessions = 256, .idle_ms = 300000, .drain_ms = 30000};
    int drain_s = 30, upload_kbps = 0;
    int idle_s = 0;
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"model", required_argument, 0, 'm'},
        {"layers", required_argument, 0, 'l'}, {"region", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'}, {"kv-mem", required_argument, 0, 'k'},
        {"mem", required_argument, 0, 'M'}, {"max-sessions", required_argument, 0, 's'},
        {"idle-s", required_argument, 0, 'I'}, {"id", required_argument, 0, 'i'},
        {"heartbeat-ms", required_argument, 0, 'H'}, {"codec", required_argument, 0, 'c'},
        {"audit", no_argument, 0, 'A'}, {"upload-kbps", required_argument, 0, 'U'},
        {"drain-s", required_argument, 0, 'D'}, {"rebalance", no_argument, 0, 'B'},
        SW_DAEMON_KEY_OPTIONS, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c, bad = 0;
    sw_daemon_keys_t keys = {0};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (sw_daemon_keys_option(&keys, c, optarg))
            continue;
        switch (c) {
        case 'b': cfg.broker = optarg; break;
        case 'm': cfg.model_path = optarg; break;
        case 'A': cfg.audit = true; break;
        case 'B': cfg.rebalance = true; break;
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
        case 't': bad |= sw_opt_int("--threads", optarg, 1, 256, &cfg.threads); break;
        case 'k': bad |= sw_opt_size("--kv-mem", optarg, &cfg.kv_mem_bytes); break;
        case 'M': bad |= sw_opt_size("--mem", optarg, &cfg.mem_bytes); break;
        case 's': bad |= sw_opt_int("--max-sessions", optarg, 1, 100000, &cfg.max_sessions); break;
        case 'I':
            if (sw_opt_int("--idle-s", optarg, 1, 86400, &idle_s) == 0)
                cfg.idle_ms = idle_s * 1000;
            else
                bad = 1;
            break;
        case 'i': cfg.id = optarg; break;
        case 'H': bad |= sw_opt_int("--heartbeat-ms", optarg, 10, 60000, &cfg.heartbeat_ms); break;
        case 'c': cfg.codec = optarg; break;
        case 'U':
            bad |= sw_opt_int("--upload-kbps", optarg, 0, 10000000, &upload_kbps);
            cfg.upload_kbps = (uint32_t) upload_kbps;
            break;
        case 'D':
            bad |= sw_opt_int("--drain-s", optarg, 0, 3600, &drain_s);
            cfg.drain_ms = drain_s * 1000;
            break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (bad)
        return 2;
    bool failed = false;
    cfg.broker = sw_daemon_keys_brokers(&keys, cfg.broker, &failed);
    if (failed)
        return 2;
    cfg.display_name = keys.name;
    if (sw_daemon_keys_check_id(&keys, cfg.id))
        return 2;
    sw_log_set_node(cfg.id); /* a chosen id is known now; a random one once the node exists */
    if (!cfg.broker || !cfg.model_path || cfg.layer_begin == -2 || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    sw_identity_t *identity = sw_daemon_keys_load(&keys, "stage", &failed);
    if (failed)
        return 1;
    cfg.identity = identity;
    char err[512];
    sw_stage_t *st = sw_stage_new(&cfg, err, sizeof err);
    if (!st) {
        fprintf(stderr, "swisd-stage: %s\n", err);
        sw_identity_destroy(&identity);
        return 1;
    }
    sw_log_set_node(sw_stage_id(st));
    printf("swisd-stage: %s serving layers %s\n", sw_stage_id(st), sw_stage_layers(st));
    fflush(stdout);
    sw_stage_run(st, &s_stop);
    sw_log(SW_LOG_INFO, "stage %s: shutting down", sw_stage_id(st));
    printf("swisd-stage: sent %llu activation bytes\n", (unsigned long long) sw_stage_bytes_sent(st));
    fflush(stdout);
    sw_stage_destroy(&st);
    sw_identity_destroy(&identity);
    return 0;
}
