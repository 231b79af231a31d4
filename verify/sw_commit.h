/*  sw_commit.h: a stage's commitment to what it computed in one forward
 *  step, sealed for the gateway (docs/security.md, "Verification").
 *
 *  Every keyed stage adds one to its HopTiming (HopTiming.commitment); the
 *  gateway opens them when the reply arrives. They serve two checks:
 *   - the chain: the digest of the activation a stage received must equal
 *     the digest of the one its predecessor says it sent (and the first
 *     stage's input the gateway's own frame, the last one's output the
 *     reply): a stage that sends one thing and commits to another, or a
 *     relay that swaps frames, is seen at once;
 *   - the audit: the sketches (verify/sw_sketch.h) of the rows a stage
 *     produced are compared, position by position, with the sketches an
 *     independent host produces for the same layers from the same tokens.
 *
 *  Plaintext layout (all integers little-endian):
 *      offset  bytes         field
 *      0       4             magic "SWC1"
 *      4       4             layer_begin: first layer computed
 *      8       4             layer_end: one past the last layer computed
 *      12      4             n_rows: rows (tokens) of the step (= ForwardRequest.n_tok)
 *      16      16            input digest: BLAKE2b-128 (crypto_generichash, 16-byte output, no key)
 *                            of the activation payload received, opened (the codec's encoded bytes)
 *      32      16            output digest: BLAKE2b-128 of the payload sent on, before sealing
 *      48      4 * K * n     sketches: (n_rows, SW_SKETCH_K) f32 of the rows leaving layer_end - 1
 *  Sealed with sw_seal (identity/sw_seal.h), direction SW_SEAL_COMMIT, from
 *  the stage's key to the request's origin_key, the nonce bound to the
 *  step's session id, request id, pos, n_rows and hop = the stage's index in
 *  the route (0 = first stage): a commitment moved to another step or hop,
 *  or forged by a relay or by another stage, does not open.
 *
 *  Thread safety: pure functions (the sw_seal_peers_t passed in is used by
 *  one thread at a time, see its header).
 */
#ifndef SW_COMMIT_H
#define SW_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "sw_seal_peers.h"
#include "sw_sketch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SW_COMMIT_DIGEST_BYTES 16
#define SW_COMMIT_HEADER_BYTES 48
#define SW_COMMIT_MAX_ROWS 4096 /* rows of one step (SW_WIRE_MAX_TOKENS) */

typedef struct {
    uint32_t layer_begin, layer_end;            /* layers [begin, end) computed */
    uint32_t n_rows;                            /* rows of the step, 1..SW_COMMIT_MAX_ROWS */
    uint8_t in_digest[SW_COMMIT_DIGEST_BYTES];  /* of the payload received */
    uint8_t out_digest[SW_COMMIT_DIGEST_BYTES]; /* of the payload sent on */
    float *sketch;                              /* (n_rows, SW_SKETCH_K) f32; owned when from sw_commit_open */
} sw_commit_t;

/*  BLAKE2b-128 of payload[0..len) into out. Returns 0, or -1 when libsodium
 *  cannot start. */
int sw_commit_digest(const void *payload, size_t len, uint8_t out[SW_COMMIT_DIGEST_BYTES]);

/*  Serialises c (sketch borrowed) and seals it for `gateway` (32-byte public
 *  key) as ctx (ctx->dir must be SW_SEAL_COMMIT). *out (malloc'd, caller
 *  frees) gets *out_len bytes. Returns 0, or -1 on bad input (n_rows out of
 *  range, wrong direction, bad key) or out of memory. */
int sw_commit_seal(sw_seal_peers_t *peers, const uint8_t gateway[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                   const sw_commit_t *c, uint8_t **out, size_t *out_len);

/*  Opens a sealed commitment from `stage` (32-byte public key) as ctx and
 *  parses it into *c (c->sketch malloc'd: free with sw_commit_free).
 *  expect_rows: the step's row count (the commitment must say the same).
 *  Returns 0, or -1 with the reason in err: does not open (another key,
 *  another step or hop, tampered), wrong magic, sizes that disagree, a
 *  layer range that is empty, a sketch with NaN or infinity. */
int sw_commit_open(sw_seal_peers_t *peers, const uint8_t stage[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                   const void *sealed, size_t len, uint32_t expect_rows, sw_commit_t *c, char *err, size_t errlen);

/*  Frees c->sketch (from sw_commit_open) and clears c; accepts NULL. */
void sw_commit_free(sw_commit_t *c);

#ifdef __cplusplus
}
#endif
#endif
