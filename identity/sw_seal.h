/*  sw_seal.h: end-to-end sealing of forward bodies between a gateway and a
 *  stage (brokers relay only ciphertext).
 *
 *  Scheme: libsodium crypto_box (X25519 key agreement, XSalsa20 stream,
 *  Poly1305 MAC: NaCl's "box"). The shared key of a (my secret, peer public)
 *  pair is computed once (crypto_box_beforenm) and kept in an sw_seal_t; each
 *  message is crypto_box_easy_afternm / crypto_box_open_easy_afternm.
 *  A sealed body is  MAC (16 bytes) || ciphertext (as many bytes as the plaintext).
 *
 *  Nonce (24 bytes), never sent: both sides compute it from what the message is
 *  meant to be, so a frame moved anywhere else fails to open:
 *      nonce = BLAKE2b-192(                 (crypto_generichash, 24-byte output, no key)
 *          "swisd-seal-v1"                  13 bytes, domain separation
 *          dir                              1 byte: 1 gateway->stage, 2 stage->gateway,
 *                                           3 a stage's commitment to the gateway
 *          len(session_id)                  1 byte, 0..SW_SEAL_MAX_SESSION
 *          session_id                       len bytes
 *          request_id                       8 bytes, little-endian
 *          pos                              4 bytes LE: position of the first KV row
 *          n_rows                           4 bytes LE: rows (tokens) in the frame
 *          hop                              4 bytes LE: index of the receiving stage in the route)
 *  What this gives:
 *   - a replayed frame (an old request's body sent again for a new request id),
 *     a reply presented as a request (direction), a frame of another session,
 *     position, row count or hop: the receiver computes another nonce, the MAC
 *     fails, the frame is rejected (sw_seal_open returns -1);
 *   - a frame sealed by any key other than the expected peer's fails the MAC
 *     (the shared key differs), so a reply not sealed by the stage that was
 *     asked is rejected; the caller counts failures against that peer key.
 *  Nonce reuse (which would leak the XOR of two plaintexts) cannot happen as
 *  long as a (request_id, direction, hop) is sealed once per peer pair: the
 *  gateway draws request ids at random (64 bits) per step and never seals two
 *  bodies for one request and direction to the same hop; a retry after failover
 *  gets a new request id. Identical nonce inputs only arise from re-sealing the
 *  same message, which callers must not do with different plaintexts.
 *  Both directions use the same shared key (X25519 is symmetric): dir keeps the
 *  two nonce spaces apart.
 *
 *  Thread safety: an sw_seal_t is read-only after sw_seal_new; seal/open may be
 *  called from several threads at once on one sw_seal_t.
 */
#ifndef SW_SEAL_H
#define SW_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_SEAL_KEY_BYTES 32                 /* X25519 public or secret key */
#define SW_SEAL_NONCE_BYTES 24               /* = crypto_box_NONCEBYTES */
#define SW_SEAL_MAC_BYTES 16                 /* = crypto_box_MACBYTES: sealed = plain + 16 */
#define SW_SEAL_MAX_PLAIN (64u << 20)        /* bytes of one plaintext (SW_WIRE_MAX_FRAME) */
#define SW_SEAL_MAX_SESSION 64               /* bytes of a session id (SW_WIRE_MAX_ID) */

typedef enum {
    SW_SEAL_TO_STAGE = 1,                    /* gateway -> stage (ForwardRequest body) */
    SW_SEAL_TO_GATEWAY = 2,                  /* stage -> gateway (ForwardReply body) */
    SW_SEAL_COMMIT = 3,                      /* stage -> gateway: its commitment (verify/sw_commit.h) */
} sw_seal_dir_t;

/*  What a frame is: the fields the nonce binds. */
typedef struct {
    sw_seal_dir_t dir;                       /* direction */
    const char *session_id;                  /* session id bytes (need not be NUL-terminated) */
    size_t session_len;                      /* bytes of session_id, 0..SW_SEAL_MAX_SESSION */
    uint64_t request_id;                     /* the step's request id */
    uint32_t pos;                            /* position of the first KV row */
    uint32_t n_rows;                         /* rows (tokens) in the frame */
    uint32_t hop;                            /* index of the receiving stage in the route (0: first) */
} sw_seal_ctx_t;

typedef struct _sw_seal_t sw_seal_t;

/*  The sealing context of one peer pair: precomputes the shared key from my
 *  secret key and the peer's public key (32 raw bytes each, borrowed for the
 *  call only). Returns NULL when libsodium fails to initialise, on allocation
 *  failure, or when the peer key is a low-order point (the shared secret would
 *  be all zeros). Caller destroys. */
sw_seal_t *sw_seal_new(const uint8_t my_secret[SW_SEAL_KEY_BYTES], const uint8_t peer_public[SW_SEAL_KEY_BYTES]);

/*  Wipes the shared key and frees; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_seal_destroy(sw_seal_t **self_p);

/*  Writes the 24-byte nonce of ctx (layout above). Returns 0, or -1 when
 *  ctx is NULL, dir is not one of sw_seal_dir_t, or the session id is longer
 *  than SW_SEAL_MAX_SESSION (or NULL with a non-zero length). */
int sw_seal_nonce(const sw_seal_ctx_t *ctx, uint8_t nonce[SW_SEAL_NONCE_BYTES]);

/*  Seals plain[0..plain_len) (plain_len <= SW_SEAL_MAX_PLAIN; 0 allowed) for
 *  the peer as ctx into out[0..out_cap), which must hold plain_len +
 *  SW_SEAL_MAC_BYTES bytes and must not overlap plain. Sets *out_len.
 *  Returns 0, or -1 (nothing useful in out) on a bad ctx, a too long
 *  plaintext or a too small out. */
int sw_seal_close(const sw_seal_t *self, const sw_seal_ctx_t *ctx, const uint8_t *plain, size_t plain_len,
                  uint8_t *out, size_t out_cap, size_t *out_len);

/*  Opens sealed[0..sealed_len) expected as ctx from the peer into
 *  out[0..out_cap) (at least sealed_len - SW_SEAL_MAC_BYTES bytes, not
 *  overlapping sealed). Sets *out_len. Returns 0, or -1 when sealed_len <
 *  SW_SEAL_MAC_BYTES or > SW_SEAL_MAX_PLAIN + SW_SEAL_MAC_BYTES, ctx is bad,
 *  out is too small, or the MAC does not verify (tampered, replayed,
 *  reordered, redirected, or sealed by another key); out is then zeroed up
 *  to what would have been written. Constant-time MAC check. */
int sw_seal_open(const sw_seal_t *self, const sw_seal_ctx_t *ctx, const uint8_t *sealed, size_t sealed_len,
                 uint8_t *out, size_t out_cap, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
