/*  cmd_volunteer.c: `swisd volunteer`: donate this machine's spare compute to
 *  a swarm (volunteer/sw_volunteer.h; docs/volunteer.md). A thin main: options,
 *  defaults from the machine (sw_host_probe), signals, the node's key.
 */
#include <czmq.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_daemon.h"
#include "sw_host_probe.h"
#include "sw_identity.h"
#include "sw_opt.h"
#include "sw_proc.h"
#include "sw_volunteer.h"
#include "swisd_cli.h"

static volatile int s_stop = 0; /* the first SIGINT/SIGTERM: drain, then exit (sw_daemon_setup_drain) */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: swisd volunteer [BOOTSTRAP] [options]\n"
            "  Serves the layers of a model the swarm needs most, within the caps below, until stopped;\n"
            "  fetches only those layers' tensors by URL, checked against the model's signed manifest.\n"
            "  BOOTSTRAP         file or URL (http, https) listing the swarm's brokers and models\n"
            "                    (docs/volunteer.md); the broker with the lowest round trip is used, and\n"
            "                    the first model with a \"manifest\" and a \"signer\" is served\n"
            "  --bootstrap SRC   the same, as a flag\n"
            "  --broker EP       a broker endpoint (tcp://HOST:PORT#KEY) instead of a bootstrap list\n"
            "  --manifest SRC    the model's signed manifest (URL or file) instead of the bootstrap's\n"
            "  --manifest-key HEX  the signer it must be signed by (swisd manifest --show-signer)\n"
            "  --model FILE      the model as a local whole GGUF file (nothing is fetched)\n"
            "  --max-threads N   compute threads (default: cores - 1, at least 1)\n"
            "  --nice N          nice level of the serving process, 0..19 (default 10)\n"
            "  --max-mem SIZE    memory for weights and KV caches (MiB, or K/M/G; default: half of the\n"
            "                    memory available now)\n"
            "  --max-disk SIZE   disk for downloaded model shards (default: half of the free disk of the cache)\n"
            "  --upload-kbps N   cap on outgoing activations, kilobits/s (default 0 = none)\n"
            "  --download-kbps N cap on shard downloads, kilobits/s (default 0 = none)\n"
            "  --schedule HH:MM-HH:MM  serve only then, local time (e.g. 22:00-07:00; default always)\n"
            "  --pause-load F    pause while other processes keep more than F cores busy (CPU time, so at\n"
            "                    most the number of cores) for --pause-after-s (default half the cores;\n"
            "                    0 = never); resume once below F/2 for --resume-after-s\n"
            "  --pause-after-s S, --resume-after-s S   (defaults 10 and 30)\n"
            "  --drain-s S       time the stage may take to hand its sessions over (default 30)\n"
            "  --cache DIR       shard cache (default $XDG_CACHE_HOME/swisd or ~/.cache/swisd)\n"
            "  --recheck-s S     with fetched shards: look at the manifest and the swarm's needs again every\n"
            "                    S seconds while serving, and move to a new version or to layers that lack\n"
            "                    a host (default 300)\n"
            "  --key PATH        this node's key (default: volunteer.key in ~/.config/swisd, made on first run)\n"
            "  --insecure        no key (only with brokers that run --insecure)\n"
            "  --region NAME     region to announce (default: the bootstrap entry's)\n"
            "  --name NAME       display name beside this node's id\n"
            "  --heartbeat-ms N  the stage's heartbeat (default: the broker's)\n"
            "SIGINT or SIGTERM drains (no client sees an error) and exits; a second one exits at once.\n");
}

int swisd_cmd_volunteer(int argc, char **argv)
{
    /* SIGINT/SIGTERM: the first drains, then exits; another one 1 s or more later stops at once (within 1 s
     * it is the same request twice, e.g. from systemd stopping the unit's processes) */
    if (sw_daemon_setup_drain("volunteer", &s_stop) != 0) {
        perror("swisd volunteer: signals");
        return 1;
    }
    sw_volunteer_config_t cfg = {.nice = 10, .drain_s = 30, .pause_after_s = 10, .resume_after_s = 30};
    int threads = 0, nice_level = 10, up = 0, down = 0, drain_s = 30, hb = 0;
    size_t max_mem = 0, max_disk = 0;
    const char *schedule = NULL, *key_path = NULL, *pause_text = NULL;
    bool insecure = false, bad = false;
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"model", required_argument, 0, 'm'},
        {"bootstrap", required_argument, 0, 'B'}, {"manifest", required_argument, 0, 'F'},
        {"manifest-key", required_argument, 0, 'K'}, {"recheck-s", required_argument, 0, 'C'},
        {"max-threads", required_argument, 0, 't'}, {"nice", required_argument, 0, 'n'},
        {"max-mem", required_argument, 0, 'M'}, {"max-disk", required_argument, 0, 'D'},
        {"upload-kbps", required_argument, 0, 'u'}, {"download-kbps", required_argument, 0, 'd'},
        {"schedule", required_argument, 0, 's'}, {"pause-load", required_argument, 0, 'p'},
        {"drain-s", required_argument, 0, 'r'}, {"cache", required_argument, 0, 'c'},
        {"key", required_argument, 0, 'k'}, {"insecure", no_argument, 0, 'i'},
        {"region", required_argument, 0, 'R'}, {"name", required_argument, 0, 'N'},
        {"heartbeat-ms", required_argument, 0, 'H'}, {"pause-after-s", required_argument, 0, 'P'},
        {"resume-after-s", required_argument, 0, 'S'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': cfg.broker = optarg; break;
        case 'm': cfg.model_path = optarg; break;
        case 'B': cfg.bootstrap = optarg; break;
        case 'F': cfg.manifest = optarg; break;
        case 'K': cfg.manifest_key = optarg; break;
        case 'C': bad |= sw_opt_int("--recheck-s", optarg, 1, 86400, &cfg.recheck_s); break;
        case 't': bad |= sw_opt_int("--max-threads", optarg, 1, 256, &threads); break;
        case 'n': bad |= sw_opt_int("--nice", optarg, 0, 19, &nice_level); break;
        case 'M': bad |= sw_opt_size("--max-mem", optarg, &max_mem); break;
        case 'D': bad |= sw_opt_size("--max-disk", optarg, &max_disk); break;
        case 'u': bad |= sw_opt_int("--upload-kbps", optarg, 0, 10000000, &up); break;
        case 'd': bad |= sw_opt_int("--download-kbps", optarg, 0, 10000000, &down); break;
        case 's': schedule = optarg; break;
        case 'p': pause_text = optarg; break;
        case 'r': bad |= sw_opt_int("--drain-s", optarg, 0, 3600, &drain_s); break;
        case 'c': cfg.cache_dir = optarg; break;
        case 'k': key_path = optarg; break;
        case 'i': insecure = true; break;
        case 'R': cfg.region = optarg; break;
        case 'N': cfg.name = optarg; break;
        case 'H': bad |= sw_opt_int("--heartbeat-ms", optarg, 10, 60000, &hb); break;
        case 'P': bad |= sw_opt_int("--pause-after-s", optarg, 1, 86400, &cfg.pause_after_s); break;
        case 'S': bad |= sw_opt_int("--resume-after-s", optarg, 1, 86400, &cfg.resume_after_s); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc && !cfg.bootstrap)
        cfg.bootstrap = argv[optind++];
    if (bad || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    char err[512];
    if (sw_schedule_parse(schedule, &cfg.schedule, err, sizeof err) != 0) {
        fprintf(stderr, "swisd volunteer: --schedule: %s\n", err);
        return 2;
    }
    if (insecure && key_path) {
        fprintf(stderr, "swisd volunteer: --key and --insecure exclude each other\n");
        return 2;
    }
    /* the machine, for the defaults */
    char cache[PATH_MAX];
    if (!cfg.cache_dir) {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        snprintf(cache, sizeof cache, "%s%s/swisd", xdg && xdg[0] ? xdg : home ? home : ".",
                 xdg && xdg[0] ? "" : "/.cache");
        cfg.cache_dir = cache;
    }
    sw_host_t host;
    if (sw_host_probe(cfg.cache_dir, 1, &host, err, sizeof err) != 0) {
        fprintf(stderr, "swisd volunteer: %s\n", err);
        return 1;
    }
    cfg.threads = threads ? threads : (host.cores > 1 ? host.cores - 1 : 1);
    cfg.nice = nice_level;
    cfg.max_mem = max_mem ? max_mem : host.mem_available / 2;
    cfg.max_disk = max_disk ? max_disk : host.disk_free / 2;
    cfg.upload_kbps = (uint32_t) up;
    cfg.download_kbps = (uint32_t) down;
    cfg.drain_s = drain_s;
    cfg.heartbeat_ms = hb;
    cfg.pause_load = 0.5 * host.cores;
    if (pause_text) {
        char *end;
        double f = strtod(pause_text, &end);
        if (end == pause_text || *end || !(f >= 0 && f <= 4096)) {
            fprintf(stderr, "swisd volunteer: --pause-load: expected a number of cores, 0..4096, got '%s'\n",
                    pause_text);
            return 2;
        }
        cfg.pause_load = f;
    }
    printf("swisd volunteer: %d cores, %llu MiB memory available, %llu MiB free disk at %s, memory bandwidth "
           "%.1f GB/s; caps: %d threads, %.1f MiB memory, %llu MiB disk\n",
           host.cores, (unsigned long long) (host.mem_available >> 20), (unsigned long long) (host.disk_free >> 20),
           cfg.cache_dir, host.mem_bandwidth_Bps / 1e9, cfg.threads, (double) cfg.max_mem / (1 << 20),
           (unsigned long long) (cfg.max_disk >> 20));
    fflush(stdout);
    char self[PATH_MAX], stage[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    if (sw_proc_find_tool(self, "swisd-stage", stage, sizeof stage) != 0) {
        fprintf(stderr, "swisd volunteer: cannot find swisd-stage next to %s or on PATH\n", self);
        return 1;
    }
    cfg.stage_exe = stage;
    sw_identity_t *identity = NULL;
    if (!insecure) {
        if (!(identity = sw_identity_load_or_create("volunteer", key_path, err, sizeof err))) {
            fprintf(stderr, "swisd volunteer: %s\n", err);
            return 1;
        }
        cfg.identity = identity;
        cfg.key_path = sw_identity_path(identity);
    }
    sw_volunteer_t *v = sw_volunteer_new(&cfg, err, sizeof err);
    if (!v) {
        fprintf(stderr, "swisd volunteer: %s\n", err);
        sw_identity_destroy(&identity);
        return 1;
    }
    int rc = sw_volunteer_run(v, &s_stop);
    sw_volunteer_destroy(&v);
    sw_identity_destroy(&identity);
    return rc == 0 ? 0 : 1;
}
