/*  sw_manifest.h: a published model's manifest: which byte ranges of the
 *  GGUF hold which layer's tensors and their SHA-256, signed by the operator
 *  (issue 13; docs/volunteer.md, "Model shards and manifests").
 *
 *  JSON document (format_version 1; every integer a JSON integer, hashes
 *  lowercase hex):
 *    format           "swisd-manifest"
 *    format_version   1
 *    model_id         as stages announce it (sw_model_identity: general.name
 *                     with characters outside [A-Za-z0-9._-] as '_', or the
 *                     file name without .gguf)
 *    checksum         16 hex digits of sw_gguf_identity_hash (XXH3-64 of the
 *                     header), as stages announce it
 *    version          integer >= 0 the operator bumps for a new release
 *    url              where the GGUF is served (http:// or https://)
 *    file_name        the GGUF's file name (no '/'), e.g. "stories260K.gguf"
 *    file_size        bytes of the GGUF
 *    n_layers         blocks of the model (llama.block_count or equivalent)
 *    header           {"offset": 0, "size": bytes before the data section,
 *                      "sha256": SHA-256 of those bytes}
 *    tensors          [{"name", "part": "layer" | "embed" | "head" | "other",
 *                       "layer": block index or -1, "offset": from the file's
 *                       start, "size": bytes, "sha256"}], in file order
 *    layers           [{"layer": i, "bytes": sum of its tensors' sizes}]
 *    signer           Ed25519 public key, 64 hex digits
 *    signature        Ed25519 signature (RFC 8032, libsodium
 *                     crypto_sign_detached), 128 hex digits, of the signing
 *                     text below
 *
 *  Signing text (ASCII, one '\n' after each line; what is signed, so the JSON
 *  spelling does not matter):
 *    swisd-manifest 1
 *    model_id MODEL_ID
 *    checksum CHECKSUM
 *    version VERSION
 *    url URL
 *    file FILE_NAME FILE_SIZE
 *    n_layers N
 *    header SIZE SHA256
 *    tensor NAME PART LAYER OFFSET SIZE SHA256      (one per tensor, in order)
 *  Names, ids and the URL may hold no byte below 0x21 (space, newline),
 *  so the text parses one way only.
 *
 *  Signing key: the operator's node key is X25519 (CURVE), which cannot
 *  sign, so an Ed25519 keypair is derived from its secret key:
 *    seed = BLAKE2b-256(message = secret_key (32 bytes),
 *                       key = "swisd manifest signing key v1")   (crypto_generichash)
 *    (pk, sk) = crypto_sign_seed_keypair(seed)
 *  The same node key always gives the same signer; `swisd manifest --show-signer`
 *  prints it for pinning.
 *
 *  Limits (a manifest from the network is refused past them): 64 MiB of JSON,
 *  2^20 tensors, 65536 layers, names of 1..255 bytes, URL of 1..2047 bytes.
 *
 *  Thread safety: an sw_manifest_t is immutable after construction.
 */
#ifndef SW_MANIFEST_H
#define SW_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_MANIFEST_FORMAT_VERSION 1
#define SW_MANIFEST_MAX_JSON (64u << 20)   /* bytes of a manifest document */
#define SW_MANIFEST_MAX_TENSORS (1u << 20) /* tensors listed */
#define SW_MANIFEST_MAX_LAYERS 65536       /* layers */
#define SW_MANIFEST_MAX_NAME 255           /* bytes of a tensor name or model id */
#define SW_MANIFEST_MAX_URL 2047           /* bytes of the GGUF's URL */
#define SW_MANIFEST_SIGNER_HEX 64          /* hex digits of an Ed25519 public key */

typedef struct sw_manifest_t sw_manifest_t;

/*  Which part of the model a tensor belongs to. */
typedef enum {
    SW_MANIFEST_LAYER = 0,   /* blk.N.*: layer N */
    SW_MANIFEST_EMBED = 1,   /* token_embd.weight (gateway) */
    SW_MANIFEST_HEAD = 2,    /* output_norm.weight, output.weight (gateway) */
    SW_MANIFEST_OTHER = 3,   /* anything else (e.g. rope_freqs.weight): fetched with any layer */
} sw_manifest_part_t;

/*  One tensor of the manifest; pointers borrowed until the manifest is destroyed. */
typedef struct {
    const char *name;          /* tensor name, NUL-terminated */
    sw_manifest_part_t part;
    int32_t layer;             /* block index for SW_MANIFEST_LAYER, else -1 */
    uint64_t offset;           /* bytes from the file's start */
    uint64_t size;             /* bytes */
    uint8_t sha256[32];        /* SHA-256 of the bytes [offset, offset + size) */
} sw_manifest_tensor_t;

/*  Builds and signs a manifest for the GGUF at gguf_path: hashes the header
 *  and every tensor (reads the whole file once). node_secret_key: the
 *  operator's X25519 secret key (32 bytes, sw_identity_secret_key); the
 *  signing key is derived from it (top of file). url: where the file will be
 *  served; version: >= 0. Returns the manifest (caller destroys) or NULL with
 *  err (unreadable or invalid GGUF, unknown architecture, bad url). */
sw_manifest_t *sw_manifest_build(const char *gguf_path, const char *url, int64_t version,
                                 const uint8_t node_secret_key[32], char *err, size_t errlen);

/*  Writes the manifest as JSON (indented) to path, atomically (temp file +
 *  rename). Returns 0 or -1 with err. */
int sw_manifest_save(const sw_manifest_t *m, const char *path, char *err, size_t errlen);

/*  Parses a manifest document (len bytes, not NUL-terminated) and checks it:
 *  every field present with its type and limits, tensors inside the file,
 *  not overlapping, after the header; then its signature. pinned_signer_hex:
 *  the Ed25519 key (64 hex digits) the manifest must be signed by; NULL
 *  refuses every manifest ("no pinned manifest key"). Returns the manifest
 *  (caller destroys) or NULL with err. */
sw_manifest_t *sw_manifest_parse(const char *json, size_t len, const char *pinned_signer_hex, char *err,
                                 size_t errlen);

/*  Loads a manifest from a file path or an http(s):// URL (libcurl; at most
 *  SW_MANIFEST_MAX_JSON bytes, timeout_s for the whole transfer, <= 0 means
 *  30) and parses it as sw_manifest_parse. A relative "url" in the manifest
 *  is not allowed. Returns the manifest (caller destroys) or NULL with err. */
sw_manifest_t *sw_manifest_load(const char *url_or_path, const char *pinned_signer_hex, int timeout_s, char *err,
                                size_t errlen);

void sw_manifest_destroy(sw_manifest_t **self_p);

const char *sw_manifest_model_id(const sw_manifest_t *m);
/*  16 hex digits of the GGUF header's identity hash (as stages announce). */
const char *sw_manifest_checksum(const sw_manifest_t *m);
int sw_manifest_n_layers(const sw_manifest_t *m);
/*  Bytes of that layer's tensors; 0 for a layer out of range. */
uint64_t sw_manifest_layer_bytes(const sw_manifest_t *m, int layer);
int64_t sw_manifest_version(const sw_manifest_t *m);
const char *sw_manifest_url(const sw_manifest_t *m);
const char *sw_manifest_file_name(const sw_manifest_t *m);
uint64_t sw_manifest_file_size(const sw_manifest_t *m);
/*  Bytes before the data section, and their SHA-256 (32 bytes, borrowed). */
uint64_t sw_manifest_header_size(const sw_manifest_t *m);
const uint8_t *sw_manifest_header_sha256(const sw_manifest_t *m);
int64_t sw_manifest_n_tensors(const sw_manifest_t *m);
/*  Tensor i (0 <= i < n_tensors; NULL otherwise), borrowed. */
const sw_manifest_tensor_t *sw_manifest_tensor(const sw_manifest_t *m, int64_t i);
/*  The signer's Ed25519 public key as 64 lowercase hex digits, borrowed. */
const char *sw_manifest_signer(const sw_manifest_t *m);

/*  The Ed25519 signer key (64 hex digits + NUL into hex) derived from an
 *  operator's X25519 secret key (32 bytes). Returns 0, or -1 if libsodium
 *  fails to initialise. */
int sw_manifest_signer_of(const uint8_t node_secret_key[32], char hex[SW_MANIFEST_SIGNER_HEX + 1]);

#ifdef __cplusplus
}
#endif

#endif
