/*  sw_shard_cache.h: one model's entry in a shard cache folder: the sparse
 *  GGUF, the record of which tensors in it are verified, and the eviction of
 *  least recently used entries under a byte cap (layout in sw_shard_fetch.h).
 *
 *  State file FILE.gguf.state (JSON, rewritten atomically by temp + rename):
 *    {"file_size": bytes, "last_used_ms": Unix time in ms of the last fetch or
 *     hold, "verified": {NAME: SHA256_HEX, ...}}
 *  NAME is a tensor name or "(header)"; a tensor counts as present only when
 *  its recorded SHA-256 is the one the current manifest asks for (a new
 *  release with the same header but new weights refetches it).
 *
 *  Locks (flock, released when the process dies): "lock" exclusive while an
 *  entry is open (one writer at a time), "inuse" shared while a stage serves
 *  from it (sw_shards_hold); an entry whose "inuse" is held is never evicted.
 *
 *  Thread safety: an sw_shard_cache_t belongs to one thread.
 */
#ifndef SW_SHARD_CACHE_H
#define SW_SHARD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sw_shard_cache_t sw_shard_cache_t;

/*  Opens (creating folders 0700 and a sparse file of file_size bytes when
 *  missing) the entry CACHE_DIR/MODEL_ID-CHECKSUM for file_name, waiting for
 *  its exclusive lock. A sparse file of another size is emptied and its state
 *  forgotten. model_id, checksum, file_name: printable, no '/'. Returns the
 *  entry (caller destroys) or NULL with err. */
sw_shard_cache_t *sw_shard_cache_open(const char *cache_dir, const char *model_id, const char *checksum,
                                      const char *file_name, uint64_t file_size, char *err, size_t errlen);
/*  Records the last use time, releases the lock and frees. Accepts NULL. */
void sw_shard_cache_destroy(sw_shard_cache_t **self_p);

/*  Path of the sparse GGUF (borrowed), its fd (O_RDWR, borrowed), and the
 *  folder of the entry (borrowed). */
const char *sw_shard_cache_path(const sw_shard_cache_t *self);
int sw_shard_cache_fd(const sw_shard_cache_t *self);
const char *sw_shard_cache_dir(const sw_shard_cache_t *self);

/*  True when NAME is recorded as verified with this SHA-256 (32 bytes). */
bool sw_shard_cache_has(const sw_shard_cache_t *self, const char *name, const uint8_t sha256[32]);
/*  Records NAME as verified with this SHA-256 and saves the state file
 *  (after fdatasync of the sparse file). Returns 0 or -1 with err. */
int sw_shard_cache_mark(sw_shard_cache_t *self, const char *name, const uint8_t sha256[32], char *err,
                        size_t errlen);
/*  Forgets NAME and frees its bytes [offset, offset + size) (punches a hole).
 *  Returns 0 or -1 with err. */
int sw_shard_cache_drop(sw_shard_cache_t *self, const char *name, uint64_t offset, uint64_t size, char *err,
                        size_t errlen);

/*  Allocated bytes (st_blocks * 512) of every file in every entry of the cache. */
uint64_t sw_shard_cache_usage(const char *cache_dir);

/*  Frees room for need_bytes more under max_bytes by deleting whole entries
 *  of other models, least recently used first, skipping entries in use or
 *  locked. also_free: bytes the caller can free itself afterwards (its own
 *  tensors not asked for). Adds the bytes freed to *freed. Returns 0 when
 *  usage + need_bytes <= max_bytes afterwards; -1 when not (the caller then
 *  drops its own tensors); -2, deleting nothing, when even evicting every
 *  other entry and also_free could not make room. */
int sw_shard_cache_evict_others(sw_shard_cache_t *self, uint64_t max_bytes, uint64_t need_bytes, uint64_t also_free,
                                uint64_t *freed);

/*  Whether another holder has this entry in use (its "inuse" lock is held). */
bool sw_shard_cache_in_use(const sw_shard_cache_t *self);

/*  Takes a shared lock on the entry's "inuse" file (creating the folder when
 *  missing); close the fd to release. Returns the fd or -1 with err. */
int sw_shard_cache_hold(const char *cache_dir, const char *model_id, const char *checksum, char *err,
                        size_t errlen);

/*  Whether the GGUF at path holds the tensors of blocks [first, last]
 *  (inclusive) when it is a sparse copy made by sw_shards_fetch: its state
 *  file (path + ".state") must record the header and every tensor of those
 *  blocks, and every tensor outside any block and the gateway's parts
 *  (e.g. rope_freqs), as verified. A stage calls it before loading or moving
 *  to a layer range: a hole reads as zeros, which would give wrong text
 *  without an error.
 *  Returns 1 when they are all there or path has no state file (a whole
 *  file, not a shard cache's); 0 with err naming the first missing tensor;
 *  -1 with err when the state file or the header cannot be read. */
int sw_shard_cache_has_layers(const char *path, int first, int last, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
