/*  sw_volunteer.h: `swisd volunteer`: donate a machine's spare compute to a
 *  swarm with one command (docs/volunteer.md).
 *
 *  The volunteer is a supervisor over one `swisd-stage` child process:
 *    1. broker: the one given, or the bootstrap list's broker with the lowest
 *       round trip (sw_bootstrap.h);
 *    2. host: cores, memory available, free disk, memory bandwidth
 *       (sw_host_probe.h); caps from them unless given;
 *    3. layers: asks the broker's directory which layers of the model have
 *       the fewest hosts (DirectoryQuery by the model's checksum) and takes
 *       as many as fit its memory cap (sw_layer_choice.h);
 *    4. weights: a local whole GGUF with --model; otherwise by URL: the
 *       signed manifest (--manifest/--manifest-key, or the bootstrap list's
 *       model entry: sw_bootstrap.h) gives the model id, checksum, layer count
 *       and per-layer bytes (for steps 3 and the memory cap), and
 *       sw_shards_fetch downloads only those layers' tensors and the header
 *       (HTTP ranges, each checked against its SHA-256, resumed when cut)
 *       into a sparse GGUF in cache_dir under max_disk (LRU across models),
 *       which sw_shards_hold keeps from eviction while the stage serves;
 *  4b. moves (fetched shards only): every recheck_s seconds while serving
 *       it reads the manifest again and asks the directory (its own stage
 *       not counted). On a new manifest version, or when layers lack a host
 *       while the other hosts cover every layer it serves, it fetches the
 *       new range (the old stage serving meanwhile), starts a stage on it,
 *       and 3 s later has the old stage drain (gateways move its sessions);
 *       once that one exited it releases its hold and, same version,
 *       frees the old layers' tensors (sw_shards_trim);
 *    5. serves: starts swisd-stage for those layers on that broker with the
 *       node's key, its thread cap, nice level and upload cap; with a whole
 *       local model the stage also moves, keeping its size, to cover layers
 *       that lose their last host (swisd-stage --rebalance);
 *    6. watches: the schedule and the owner's load (sw_caps.h). Outside the
 *       schedule, or while other processes' load stays above pause_load for
 *       pause_after_s, it drains the stage (SIGTERM: the stage announces
 *       Load.draining, gateways move its sessions elsewhere, it exits once
 *       none is left) and pauses; when the schedule opens and the load stayed
 *       below half the threshold for resume_after_s it starts again at 1. A
 *       stage that exits on its own is started again after 5 s.
 *  *stop (SIGTERM/SIGINT in the main) drains the same way, then returns.
 *
 *  Thread safety: one thread.
 */
#ifndef SW_VOLUNTEER_H
#define SW_VOLUNTEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_caps.h"

/*  Gives the path of a GGUF file holding (at least) layers [first, last]
 *  (inclusive) of model_id, fetching them first when needed. Returns 0 with
 *  path set, or -1 with a reason in err. */
typedef int (*sw_volunteer_fetch_fn)(void *arg, const char *model_id, int32_t first, int32_t last, char *path,
                                     size_t pathlen, char *err, size_t errlen);

typedef struct {
    const char *broker;          /* broker endpoint(s) to use; NULL: pick from bootstrap */
    const char *bootstrap;       /* bootstrap file or URL (sw_bootstrap.h); needed when broker is NULL */
    const char *model_path;      /* a local GGUF with the whole model (its header gives the layer sizes and
                                    the checksum the directory is asked for); NULL: by URL (below) */
    const char *manifest;        /* URL or path of a signed manifest (fetch/sw_manifest.h); NULL: of the
                                    bootstrap list's models with "manifest" and "signer", the one the swarm
                                    needs most at each start (the most chosen layers without a host) */
    const char *manifest_key;    /* the pinned signer, 64 hex digits; NULL: the bootstrap entry's */
    sw_volunteer_fetch_fn fetch; /* NULL: the local file model_path serves every layer */
    void *fetch_arg;
    const char *stage_exe;       /* path of swisd-stage */
    const char *key_path;        /* the node's key file for the stage (--key); NULL: --insecure */
    const struct _sw_identity_t *identity; /* the same key loaded (borrowed): for the volunteer's own
                                    client link (round trips, directory); NULL: --insecure */
    const char *region;          /* NULL: the bootstrap entry's, else the broker's default */
    const char *name;            /* display name, or NULL */
    const char *cache_dir;       /* where fetched shards go (free disk is measured there) */
    int threads;                 /* compute threads of the stage (>= 1) */
    int nice;                    /* nice level of the stage process (0..19) */
    uint64_t max_mem;            /* bytes of memory for weights + KV caches */
    uint64_t max_disk;           /* bytes of disk for shards */
    uint32_t upload_kbps;        /* cap on the stage's outgoing activations, kbit/s; 0 = none */
    uint32_t download_kbps;      /* cap on shard downloads, kbit/s; 0 = none */
    sw_schedule_t schedule;      /* hours it may serve */
    double pause_load;           /* other processes' load (cores) above which it pauses; <= 0: never */
    int pause_after_s;           /* the load must stay above for this long (seconds) */
    int resume_after_s;          /* ... and below half of it this long before it resumes */
    int drain_s;                 /* the stage's drain time-out, seconds */
    int heartbeat_ms;            /* the stage's heartbeat (<= 0: the broker's) */
    int sample_ms;               /* how often load and schedule are checked, ms (<= 0: 1000) */
    int recheck_s;               /* with fetched shards: how often the manifest and the swarm's needs are
                                    looked at again while serving, seconds (<= 0: 300) */
} sw_volunteer_config_t;

typedef struct sw_volunteer_t sw_volunteer_t;

/*  Checks the configuration and reads the model's header (--model) or its
 *  signed manifest (refused when not signed by the pinned key, or naming
 *  another model than the bootstrap entry). Returns NULL with a reason. Caller destroys. The config's strings are borrowed for the
 *  volunteer's life. */
sw_volunteer_t *sw_volunteer_new(const sw_volunteer_config_t *cfg, char *err, size_t errlen);
/*  Stops the stage if it runs (SIGTERM, then SIGKILL after the drain time-out). */
void sw_volunteer_destroy(sw_volunteer_t **self_p);

/*  Runs until *stop, then drains the stage and returns 0. A start that fails
 *  (no broker answered, no directory, nothing fits, the fetch failed) is
 *  said on stderr and tried again after 10 s. */
int sw_volunteer_run(sw_volunteer_t *self, volatile int *stop);

#endif
