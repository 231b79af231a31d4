/*  cmd_fetch.c: `swisd fetch MANIFEST_URL_OR_FILE --layers A-B --cache DIR
 *  --manifest-key HEX [--max-disk BYTES] [--download-kbps N] [--trim]` fetches the
 *  tensors of layers A..B (inclusive) into the cache, verified against the
 *  signed manifest, and prints the sparse GGUF's path (fetch/sw_shard_fetch.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_shard_fetch.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd fetch MANIFEST_URL_OR_FILE --layers A-B --cache DIR --manifest-key HEX\n"
                 "                   [--max-disk BYTES] [--download-kbps N] [--embed] [--head] [--timeout S]\n"
                 "  Downloads (HTTP range requests) only the GGUF header and the tensors of\n"
                 "  layers A..B (inclusive, from 0), checks each against the manifest's\n"
                 "  SHA-256, and prints the path of the sparse GGUF a stage can load.\n"
                 "  --layers A-B        layers to fetch (\"none\": only --embed/--head)\n"
                 "  --cache DIR         cache folder\n"
                 "  --manifest-key HEX  the operator's signer key (swisd manifest --show-signer)\n"
                 "  --max-disk BYTES    cap on the cache (least recently used models evicted)\n"
                 "  --download-kbps N   cap on the download rate, kB/s\n"
                 "  --embed, --head     also fetch the gateway's parts\n"
                 "  --timeout S         connect and stall time-out, seconds (default 30)\n"
                 "  --trim              then free the cached tensors of other layers (after the\n"
                 "                      stage that served them has stopped)\n");
}

static int s_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !*s || *end || *s == '-')
        return -1;
    *out = v;
    return 0;
}

int swisd_cmd_fetch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layers", required_argument, NULL, 'l'},   {"cache", required_argument, NULL, 'c'},
        {"manifest-key", required_argument, NULL, 'k'}, {"max-disk", required_argument, NULL, 'm'},
        {"download-kbps", required_argument, NULL, 'r'}, {"timeout", required_argument, NULL, 't'},
        {"embed", no_argument, NULL, 'e'},          {"head", no_argument, NULL, 'H'},
        {"trim", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *layers = NULL, *key = NULL;
    sw_shard_fetch_opts_t o = {0};
    sw_shard_fetch_stats_t stats = {0};
    o.stats = &stats;
    uint64_t v;
    int c;
    optind = 1;
    bool trim = false;
    while ((c = getopt_long(argc, argv, "l:c:k:m:r:t:eHTh", opts, NULL)) != -1) {
        switch (c) {
        case 'l': layers = optarg; break;
        case 'c': o.cache_dir = optarg; break;
        case 'k': key = optarg; break;
        case 'm':
            if (s_u64(optarg, &o.max_disk_bytes)) {
                fprintf(stderr, "swisd fetch: --max-disk '%s': want bytes\n", optarg);
                return 2;
            }
            break;
        case 'r':
            if (s_u64(optarg, &v) || v > UINT32_MAX) {
                fprintf(stderr, "swisd fetch: --download-kbps '%s': want kB/s\n", optarg);
                return 2;
            }
            o.download_kbps = (uint32_t) v;
            break;
        case 't':
            if (s_u64(optarg, &v) || v == 0 || v > 86400) {
                fprintf(stderr, "swisd fetch: --timeout '%s': want 1..86400 seconds\n", optarg);
                return 2;
            }
            o.timeout_s = (int) v;
            break;
        case 'e': o.embed = true; break;
        case 'H': o.head = true; break;
        case 'T': trim = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    int first = -1, last = -1;
    if (optind != argc - 1 || !layers || !o.cache_dir) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(layers, "none")) {
        char tail = 0;
        int n = sscanf(layers, "%d-%d%c", &first, &last, &tail);
        if (n == 1 && sscanf(layers, "%d%c", &first, &tail) == 1)
            last = first;
        else if (n != 2) {
            fprintf(stderr, "swisd fetch: --layers '%s': want A-B, A or none\n", layers);
            return 2;
        }
    }
    char err[1024], path[4096];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sw_manifest_t *m = sw_manifest_load(argv[optind], key, o.timeout_s, err, sizeof err);
    if (!m) {
        fprintf(stderr, "swisd fetch: %s\n", err);
        return 1;
    }
    int rc = sw_shards_fetch(m, first, last, &o, path, sizeof path, err, sizeof err);
    int64_t trimmed = 0;
    if (rc == 0 && trim && (trimmed = sw_shards_trim(m, first, last, &o, err, sizeof err)) < 0)
        rc = -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t want = 0;
    for (int l = first; l >= 0 && l <= last; l++)
        want += sw_manifest_layer_bytes(m, l);
    fprintf(stderr,
            "swisd fetch: %s layers %d-%d (%" PRIu64 " bytes of layer tensors): received %" PRIu64
            " bytes in %" PRIu64 " ranges, %" PRIu64 " hash failures, %" PRIu64 " resumes, %" PRIu64
            " bytes evicted, %" PRId64 " bytes trimmed, %.3f s\n",
            sw_manifest_model_id(m), first, last, want, stats.bytes_received, stats.ranges, stats.hash_failures,
            stats.resumes, stats.evicted_bytes, trimmed, secs);
    sw_manifest_destroy(&m);
    if (rc != 0) {
        fprintf(stderr, "swisd fetch: %s\n", err);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}
