/*  sw_identity.h: a node's long-term keypair (CURVE25519, czmq zcert files)
 *  and the node id derived from its public key.
 *
 *  Files (czmq's zcert text format, ZPL; the keys as 40-character Z85, ZMQ RFC 32):
 *    PATH         the public certificate:  curve { public-key = "<Z85>" }
 *    PATH_secret  the secret certificate:  curve { public-key = ..., secret-key = "<Z85>" }
 *  The secret file is created with mode 0600 and is refused when it is readable
 *  or writable by group or others, or owned by another user (as ssh refuses a
 *  private key with loose permissions). Each file is at most SW_IDENTITY_MAX_FILE bytes.
 *
 *  Node id (fingerprint): the first 8 bytes of BLAKE2b-256 (libsodium
 *  crypto_generichash, 32-byte output, no key; RFC 7693) of the 32 raw public
 *  key bytes, as 16 lowercase hex characters. Python:
 *      hashlib.blake2b(public_key_32_bytes, digest_size=32).digest()[:8].hex()
 *  It fits the wire's node id limit (SW_WIRE_MAX_ID, 64 bytes). 64 bits make an
 *  accidental collision negligible for any swarm size; an id is a name, not a
 *  proof: whoever holds a key proves it with CURVE, and the broker binds the id
 *  a node claims to the key it authenticated with (sw_identity_id_matches).
 *
 *  Default location (sw_identity_load_or_create without an explicit path):
 *    $XDG_CONFIG_HOME/swisd/ROLE.key (or ~/.config/swisd/ROLE.key when
 *    XDG_CONFIG_HOME is unset or empty), the folder created with mode 0700.
 *
 *  Errors: functions that can fail take err/errlen and write one line there
 *  (no trailing newline) naming the file and the reason.
 *  Thread safety: an sw_identity_t is immutable after construction and may be
 *  read from any thread; the functions are reentrant except that creating
 *  files is not atomic against another process creating the same files.
 */
#ifndef SW_IDENTITY_H
#define SW_IDENTITY_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_IDENTITY_KEY_BYTES 32           /* raw CURVE25519 public or secret key */
#define SW_IDENTITY_Z85_LEN 40             /* characters of a key in Z85 (no NUL) */
#define SW_IDENTITY_ID_LEN 16              /* characters of a node id (no NUL) */
#define SW_IDENTITY_MAX_FILE 16384         /* bytes of one certificate file */
#define SW_IDENTITY_MAX_PATH 4096          /* bytes of a key file path, NUL included */
#define SW_IDENTITY_MAX_ROLE 32            /* characters of a role name */

typedef struct _sw_identity_t sw_identity_t;

/*  Generates a new keypair and saves it as path (public) and path_secret
 *  (secret, mode 0600). Refuses (NULL, err set) when either file exists unless
 *  force is true, then both are replaced. path: a file name of at most
 *  SW_IDENTITY_MAX_PATH - 8 bytes in an existing folder, not ending in
 *  "_secret" (functions that take a key path take the public file's).
 *  Returns the identity (caller destroys) or NULL with err set. */
sw_identity_t *sw_identity_generate(const char *path, bool force, char *err, size_t errlen);

/*  Reads the public certificate at path alone (another node's key, or one's
 *  own without the secret) into public_key (32 raw bytes). Fails when the file
 *  is missing, unreadable, too large, malformed, or also holds a secret key.
 *  Returns 0 or -1 with err set. */
int sw_identity_read_public(const char *path, uint8_t public_key[SW_IDENTITY_KEY_BYTES], char *err, size_t errlen);

/*  Loads the keypair saved at path and path_secret. Fails (NULL, err set) when
 *  either file is missing, unreadable, larger than SW_IDENTITY_MAX_FILE, not a
 *  certificate, has a key that is not 40 valid Z85 characters, when the secret
 *  file is accessible to group/others or owned by another user, or when the
 *  public file's key is not the one of the secret file's secret key (the public
 *  key is recomputed from the secret key with crypto_scalarmult_base).
 *  Returns the identity (caller destroys) or NULL. */
sw_identity_t *sw_identity_load(const char *path, char *err, size_t errlen);

/*  The identity of a process of the given role: loads key_path when it is not
 *  NULL (sw_identity_load; never creates it), otherwise loads ROLE.key from the
 *  per-user config folder, creating the folder (0700) and the key when they do
 *  not exist and then printing "swisd-ROLE: created a new key at PATH
 *  (fingerprint ID)" on stderr. role: 1..SW_IDENTITY_MAX_ROLE characters of
 *  [a-z0-9_-] (e.g. "stage", "broker", "gateway", "client").
 *  Returns the identity (caller destroys) or NULL with err set. */
sw_identity_t *sw_identity_load_or_create(const char *role, const char *key_path, char *err, size_t errlen);

/*  Destroys the identity (the secret key is wiped from memory first); accepts
 *  NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_identity_destroy(sw_identity_t **self_p);

/*  The public key: 32 raw bytes, borrowed until the identity is destroyed. */
const uint8_t *sw_identity_public_key(const sw_identity_t *self);
/*  The secret key: 32 raw bytes, borrowed until the identity is destroyed. */
const uint8_t *sw_identity_secret_key(const sw_identity_t *self);
/*  The public key as 40 Z85 characters (NUL-terminated), borrowed. */
const char *sw_identity_public_txt(const sw_identity_t *self);
/*  The node id: 16 lowercase hex characters (NUL-terminated), borrowed. */
const char *sw_identity_id(const sw_identity_t *self);
/*  The underlying czmq certificate (for zcert_apply on a socket), borrowed. */
zcert_t *sw_identity_cert(const sw_identity_t *self);
/*  The path of the public certificate file it was loaded from or saved to, borrowed. */
const char *sw_identity_path(const sw_identity_t *self);

/*  Writes the node id of a 32-byte public key (16 lowercase hex characters
 *  and a NUL) into out[SW_IDENTITY_ID_LEN + 1]. Never fails. */
void sw_identity_fingerprint(const uint8_t public_key[SW_IDENTITY_KEY_BYTES], char out[SW_IDENTITY_ID_LEN + 1]);

/*  True when id (NUL-terminated; any length, any bytes) is exactly the node id
 *  of public_key: 16 lowercase hex characters, compared in constant time. */
bool sw_identity_id_matches(const char *id, const uint8_t public_key[SW_IDENTITY_KEY_BYTES]);

/*  Decodes a Z85 key: txt must be exactly 40 characters of the Z85 alphabet
 *  (ZMQ RFC 32) followed by its NUL. Writes 32 bytes to key. Returns 0, or -1
 *  when txt is NULL, of another length or has a character outside the alphabet. */
int sw_identity_z85_decode(const char *txt, uint8_t key[SW_IDENTITY_KEY_BYTES]);

/*  The per-user config folder ($XDG_CONFIG_HOME/swisd or $HOME/.config/swisd,
 *  without trailing slash) into out[len]. Does not create it. Returns 0, or -1
 *  with err set when neither variable is set (non-empty, absolute) or the path
 *  does not fit. */
int sw_identity_config_dir(char *out, size_t len, char *err, size_t errlen);
/*  The same, and creates the folder (and missing parents) with mode 0700
 *  when absent; fails as well when it exists but others may write to it. */
int sw_identity_config_dir_make(char *out, size_t len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
