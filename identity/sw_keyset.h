/*  sw_keyset.h: a set of node ids read from a folder of public key files or
 *  from a key list file, kept up to date while a process runs.
 *
 *  Two sources (docs/security.md, "Running a swarm with keys"):
 *    folder  every regular file in it that is a public certificate
 *            (sw_identity.h); files ending in "_secret" and dot files are
 *            skipped, an unreadable one is logged (rate-limited) and skipped.
 *            The folder must exist when the set is made.
 *    list    one entry per line: a Z85 public key (40 characters) or a node
 *            id (16 lowercase hex characters); '#' starts a comment line; an
 *            entry that is neither is logged and ignored. A missing file is
 *            an empty set (it may appear later); at most SW_KEYSET_MAX_FILE
 *            bytes are read.
 *  Either holds at most SW_KEYSET_MAX_KEYS ids; the rest are ignored with a
 *  warning. Entries are node ids: fingerprints of public keys
 *  (sw_identity_fingerprint).
 *
 *  Freshness: sw_keyset_refresh re-reads the source when its mtime or size
 *  changed (looked at most once per SW_KEYSET_RESCAN_MS); a failed re-read
 *  keeps the previous set and is logged. sw_keyset_contains also refreshes
 *  on a miss, so a key added to a folder is found within a second.
 *
 *  Thread safety: one thread per set.
 */
#ifndef SW_KEYSET_H
#define SW_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_KEYSET_MAX_KEYS 100000       /* ids in one set */
#define SW_KEYSET_MAX_FILE (16u << 20)  /* bytes of a list file read */
#define SW_KEYSET_RESCAN_MS 1000        /* a source is looked at again at most this often */

typedef struct sw_keyset_t sw_keyset_t;

/*  Reads path (a folder when is_dir, else a list file). log_name prefixes
 *  log lines (copied). Returns NULL with err set when a folder cannot be
 *  read or a list file exists but cannot be read. Caller destroys. */
sw_keyset_t *sw_keyset_new(const char *path, bool is_dir, const char *log_name, char *err, size_t errlen);
/*  Frees; accepts NULL; sets *self_p = NULL. */
void sw_keyset_destroy(sw_keyset_t **self_p);

/*  Re-reads the source when it changed (force: look now, whatever the last
 *  look). Returns true when the set was re-read. */
bool sw_keyset_refresh(sw_keyset_t *self, bool force);
/*  True when id (a node id, 16 hex) is in the set; on a miss the source is
 *  refreshed (at most once per SW_KEYSET_RESCAN_MS) and looked at again. */
bool sw_keyset_contains(sw_keyset_t *self, const char *id);
/*  The same for a public key (32 bytes). */
bool sw_keyset_contains_key(sw_keyset_t *self, const uint8_t key[32]);
/*  Entries in the set now. */
size_t sw_keyset_size(const sw_keyset_t *self);
/*  The path it reads (borrowed). */
const char *sw_keyset_path(const sw_keyset_t *self);

#ifdef __cplusplus
}
#endif
#endif
