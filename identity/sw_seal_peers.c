/*  sw_seal_peers.c: per-peer sealing contexts and payload sealing (see sw_seal_peers.h). */
#include "sw_seal_peers.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t key[SW_SEAL_KEY_BYTES];
    sw_seal_t *seal;
} s_peer_t;

struct _sw_seal_peers_t {
    uint8_t secret[SW_SEAL_KEY_BYTES];
    s_peer_t peers[SW_SEAL_PEERS_MAX];
    int next;  /* slot replaced next */
};

sw_seal_peers_t *sw_seal_peers_new(const uint8_t my_secret[SW_SEAL_KEY_BYTES])
{
    if (!my_secret)
        return NULL;
    sw_seal_peers_t *self = calloc(1, sizeof *self);
    if (self)
        memcpy(self->secret, my_secret, SW_SEAL_KEY_BYTES);
    return self;
}

void sw_seal_peers_destroy(sw_seal_peers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_seal_peers_t *self = *self_p;
    for (int i = 0; i < SW_SEAL_PEERS_MAX; i++)
        sw_seal_destroy(&self->peers[i].seal);
    sodium_memzero(self->secret, sizeof self->secret);
    free(self);
    *self_p = NULL;
}

const sw_seal_t *sw_seal_peers_get(sw_seal_peers_t *self, const uint8_t peer[SW_SEAL_KEY_BYTES])
{
    if (!self || !peer)
        return NULL;
    for (int i = 0; i < SW_SEAL_PEERS_MAX; i++)
        if (self->peers[i].seal && !memcmp(self->peers[i].key, peer, SW_SEAL_KEY_BYTES))
            return self->peers[i].seal;
    sw_seal_t *s = sw_seal_new(self->secret, peer);
    if (!s)
        return NULL;
    s_peer_t *p = &self->peers[self->next];
    self->next = (self->next + 1) % SW_SEAL_PEERS_MAX;
    sw_seal_destroy(&p->seal);
    memcpy(p->key, peer, SW_SEAL_KEY_BYTES);
    p->seal = s;
    return s;
}

int sw_seal_peers_close(sw_seal_peers_t *self, const uint8_t peer[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                        const void *payload, size_t len, uint64_t checksum, uint8_t **out, size_t *out_len)
{
    const sw_seal_t *s = sw_seal_peers_get(self, peer);
    if (!s || !out || !out_len || len > SW_SEAL_MAX_PLAIN - 8 || (len && !payload))
        return -1;
    uint8_t *plain = malloc(len + 8), *sealed = malloc(len + 8 + SW_SEAL_MAC_BYTES);
    if (!plain || !sealed) {
        free(plain);
        free(sealed);
        return -1;
    }
    if (len)
        memcpy(plain, payload, len);
    for (int i = 0; i < 8; i++)
        plain[len + (size_t) i] = (uint8_t) (checksum >> (8 * i));
    size_t n = 0;
    const int rc = sw_seal_close(s, ctx, plain, len + 8, sealed, len + 8 + SW_SEAL_MAC_BYTES, &n);
    sodium_memzero(plain, len + 8);
    free(plain);
    if (rc != 0) {
        free(sealed);
        return -1;
    }
    *out = sealed;
    *out_len = n;
    return 0;
}

int sw_seal_peers_open(sw_seal_peers_t *self, const uint8_t peer[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                       const void *sealed, size_t len, uint8_t **out, size_t *out_len, uint64_t *checksum)
{
    const sw_seal_t *s = sw_seal_peers_get(self, peer);
    if (!s || !out || !out_len || !checksum || !sealed || len < SW_SEAL_MAC_BYTES + 8 ||
        len > SW_SEAL_MAX_PLAIN + SW_SEAL_MAC_BYTES)
        return -1;
    uint8_t *plain = malloc(len - SW_SEAL_MAC_BYTES);
    if (!plain)
        return -1;
    size_t n = 0;
    if (sw_seal_open(s, ctx, sealed, len, plain, len - SW_SEAL_MAC_BYTES, &n) != 0 || n < 8) {
        free(plain);
        return -1;
    }
    uint64_t c = 0;
    for (int i = 0; i < 8; i++)
        c |= (uint64_t) plain[n - 8 + (size_t) i] << (8 * i);
    *checksum = c;
    *out = plain;
    *out_len = n - 8;
    return 0;
}
