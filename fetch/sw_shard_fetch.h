/*  sw_shard_fetch.h: a model's tensors fetched by URL, layer by layer,
 *  checked against a signed manifest (issue 13; docs/volunteer.md, "Model
 *  shards and manifests").
 *
 *  A volunteer that will host layers [first, last] of a published model:
 *    1. loads the operator's manifest (sw_manifest_load, fetch/sw_manifest.h)
 *       and refuses it unless its Ed25519 signer key is the pinned one;
 *    2. calls sw_shards_fetch, which downloads with HTTP range requests
 *       (libcurl; any HTTP(S) server that honours `Range: bytes=a-b`) only the
 *       GGUF header and the tensors of those layers, checks each against its
 *       SHA-256 in the manifest, and writes it into a sparse copy of the GGUF
 *       at its original offset (the other tensors are holes);
 *    3. starts a stage on the returned path: the loader maps the sparse file
 *       and touches only the tensors of its layers.
 *
 *  Guarantees: a tensor is written into the sparse file only after its
 *  SHA-256 matched the manifest's (a byte that failed its hash is never in
 *  the file); an interrupted range is resumed from the byte where it stopped
 *  (its partial download is kept beside the file as NAME.part, rehashed on
 *  resume); the cache folder holds at most max_disk_bytes (allocated blocks
 *  of all its files), evicting whole other models least recently used first
 *  (last fetch), then this model's tensors outside [first, last] (holes
 *  punched); a model in use (sw_shards_hold) or being fetched elsewhere is
 *  never evicted, and a fetch that cannot fit evicts nothing.
 *
 *  Cache layout (one folder per model and header checksum):
 *    CACHE/MODEL_ID-CHECKSUM/FILE.gguf          the sparse GGUF (original size)
 *    CACHE/MODEL_ID-CHECKSUM/FILE.gguf.state    JSON: verified tensors, last use
 *    CACHE/MODEL_ID-CHECKSUM/FILE.gguf.part.OFFSET  a partial download of the
 *                                               tensor at OFFSET (kept for resume)
 *    CACHE/MODEL_ID-CHECKSUM/lock               flock: exclusive while a fetch writes
 *    CACHE/MODEL_ID-CHECKSUM/inuse              flock: shared while a stage serves
 *                                               from the file (sw_shards_hold)
 *  FILE is the manifest's file name, so a model without general.name keeps
 *  the same model id (sw_model_identity derives it from the file name).
 *
 *  Thread safety: an sw_manifest_t is immutable after load and may be read
 *  from any thread. sw_shards_fetch may run in several threads or processes
 *  over one cache folder: it takes the model folder's lock exclusively while
 *  it writes (another fetch of the same model waits for it).
 */
#ifndef SW_SHARD_FETCH_H
#define SW_SHARD_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  Counters of fetches (for tests, benchmarks and logs). */
typedef struct {
    uint64_t bytes_received;   /* HTTP body bytes received */
    uint64_t ranges;           /* range requests sent */
    uint64_t hash_failures;    /* ranges rejected: SHA-256 did not match the manifest */
    uint64_t resumes;          /* requests that resumed a cut range from the byte it stopped at */
    uint64_t evicted_bytes;    /* allocated bytes freed to stay under max_disk_bytes */
} sw_shard_fetch_stats_t;

/*  What sw_shards_fetch may do. Zero-initialise, then set. */
typedef struct {
    const char *cache_dir;     /* cache folder (created 0700 when missing); borrowed */
    uint64_t max_disk_bytes;   /* cap on the cache's allocated bytes (all models); 0 = no cap */
    uint32_t download_kbps;    /* cap on the download rate, kilobytes (1000 B) per second; 0 = none */
    int timeout_s;             /* connect time-out, and a range that sends no byte for this long
                                  is abandoned and retried; <= 0 means 30 */
    bool embed;                /* also fetch token_embd (the gateway's part); added, not in the brief */
    bool head;                 /* also fetch output_norm and output (the gateway's head) */
    sw_shard_fetch_stats_t *stats; /* when not NULL, this call's counters are added to it */
} sw_shard_fetch_opts_t;

/*  Fetches (or finds in the cache) the header and the tensors of layers
 *  [first, last] (inclusive, 0-based, first <= last < sw_manifest_n_layers;
 *  first = last = -1 fetches no layer, e.g. only the embed/head parts), plus
 *  the tensors the manifest files under no layer nor gateway part (e.g.
 *  rope_freqs), each verified against the manifest's SHA-256. Writes the
 *  sparse GGUF's path (NUL-terminated) to path.
 *  Retries: a failed or corrupt range is fetched again up to 5 times with
 *  back-off (0.2 s, doubling, at most 3 s); a cut range resumes from the cut.
 *  Returns 0 on success; -1 with one line in err naming the tensor, the URL
 *  and the reason (HTTP status, curl error, hash mismatch, disk full, cache
 *  cap too small for the layers asked). m: borrowed. */
int sw_shards_fetch(const sw_manifest_t *m, int first, int last, const sw_shard_fetch_opts_t *o, char *path,
                    size_t pathlen, char *err, size_t errlen);

/*  Frees the cached tensors of m outside layers [first, last] (first = last
 *  = -1: every layer), and the gateway's parts unless o->embed / o->head,
 *  keeping the header and the tensors under no layer: punches holes and
 *  forgets them in the state file. For a volunteer whose layers changed:
 *  call it after the stage on the old layers has stopped (a stage still
 *  mapping them would read zeros; sw_shard_cache_has_layers keeps a new
 *  stage from loading them). Only o->cache_dir, o->embed and o->head are
 *  read. Returns the allocated bytes freed (>= 0), or -1 with err. Added,
 *  not in the brief. */
int64_t sw_shards_trim(const sw_manifest_t *m, int first, int last, const sw_shard_fetch_opts_t *o, char *err,
                       size_t errlen);

/*  Marks the model's cached copy in use (a shared flock on
 *  CACHE/MODEL_ID-CHECKSUM/inuse) so that no fetch, in this or another
 *  process, evicts any of its tensors while a stage serves from it. Hold it
 *  from before the stage starts until after it stops; close the returned fd
 *  to release. Returns the fd (>= 0), or -1 with err. Added, not in the brief. */
int sw_shards_hold(const sw_manifest_t *m, const char *cache_dir, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
