/*  sw_seal_peers.h: the sealing contexts (sw_seal.h) of one node towards its
 *  recent peers, and sealing/opening of one activation payload with its
 *  checksum.
 *
 *  A node keeps the precomputed shared key of the last SW_SEAL_PEERS_MAX peer
 *  public keys it talked to (replaced round-robin), so the X25519 agreement
 *  runs once per peer and not once per frame.
 *
 *  Sealed payload layout (docs/security.md, "Sealed activations"):
 *      sealed = MAC (16) || box(payload || checksum (8 bytes, little-endian))
 *  where payload is the codec's encoded bytes (sw_codec.h) and checksum the
 *  XXH3-64 of the uncompressed rows. The checksum travels inside the box: in
 *  clear it would let a relay confirm a guessed token (a one-token step at
 *  hop 0 is the token's embedding row). The Activation message's own
 *  checksum field is 0 on a sealed frame.
 *
 *  Thread safety: one thread per object.
 */
#ifndef SW_SEAL_PEERS_H
#define SW_SEAL_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "sw_seal.h"

#define SW_SEAL_PEERS_MAX 16   /* peers whose shared key is kept */

typedef struct _sw_seal_peers_t sw_seal_peers_t;

/*  A set for the node whose secret key is my_secret (32 raw bytes, copied).
 *  NULL when out of memory. Caller destroys. */
sw_seal_peers_t *sw_seal_peers_new(const uint8_t my_secret[SW_SEAL_KEY_BYTES]);
/*  Wipes every key and frees; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_seal_peers_destroy(sw_seal_peers_t **self_p);

/*  The context towards `peer` (32 raw bytes), made on first use; borrowed
 *  until SW_SEAL_PEERS_MAX other peers have been asked for. NULL when peer
 *  is NULL or a low-order point, or out of memory. */
const sw_seal_t *sw_seal_peers_get(sw_seal_peers_t *self, const uint8_t peer[SW_SEAL_KEY_BYTES]);

/*  Seals payload[0..len) and checksum for `peer` as ctx. *out (malloc'd,
 *  caller frees) gets len + 8 + SW_SEAL_MAC_BYTES bytes (*out_len). Returns
 *  0, or -1 (nothing allocated) on a bad peer key or ctx, too long a payload,
 *  or out of memory. */
int sw_seal_peers_close(sw_seal_peers_t *self, const uint8_t peer[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                        const void *payload, size_t len, uint64_t checksum, uint8_t **out, size_t *out_len);

/*  Opens sealed[0..len) from `peer` as ctx. On success *out (malloc'd, caller
 *  frees) holds the payload (*out_len bytes) and *checksum the checksum;
 *  returns 0. Returns -1 (nothing allocated) when the frame does not open:
 *  too short, sealed by another key, tampered, replayed or moved to another
 *  context; or on a bad peer key or out of memory. */
int sw_seal_peers_open(sw_seal_peers_t *self, const uint8_t peer[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                       const void *sealed, size_t len, uint8_t **out, size_t *out_len, uint64_t *checksum);

#endif
