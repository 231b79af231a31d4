/*  sw_seal.c: crypto_box sealing of forward bodies with context-bound nonces
 *  (scheme in sw_seal.h). */
#include "sw_seal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(SW_SEAL_NONCE_BYTES == crypto_box_NONCEBYTES, "nonce size");
_Static_assert(SW_SEAL_MAC_BYTES == crypto_box_MACBYTES, "MAC size");
_Static_assert(SW_SEAL_KEY_BYTES == crypto_box_PUBLICKEYBYTES, "key size");

struct _sw_seal_t {
    uint8_t shared[crypto_box_BEFORENMBYTES];  /* precomputed box key (wiped on destroy) */
};

static const char s_domain[] = "swisd-seal-v1";  /* 13 bytes, no NUL hashed */

sw_seal_t *sw_seal_new(const uint8_t my_secret[SW_SEAL_KEY_BYTES], const uint8_t peer_public[SW_SEAL_KEY_BYTES])
{
    if (!my_secret || !peer_public || sodium_init() < 0)
        return NULL;
    sw_seal_t *self = sodium_malloc(sizeof *self); /* guarded pages, wiped by sodium_free */
    if (!self)
        return NULL;
    /* crypto_box_beforenm fails (-1) when the X25519 result is all zeros (a
     * low-order peer key) */
    if (crypto_box_beforenm(self->shared, peer_public, my_secret) != 0) {
        sodium_free(self);
        return NULL;
    }
    return self;
}

void sw_seal_destroy(sw_seal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sodium_free(*self_p); /* zeroes the memory */
    *self_p = NULL;
}

static void s_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

int sw_seal_nonce(const sw_seal_ctx_t *ctx, uint8_t nonce[SW_SEAL_NONCE_BYTES])
{
    if (!ctx || (ctx->dir != SW_SEAL_TO_STAGE && ctx->dir != SW_SEAL_TO_GATEWAY && ctx->dir != SW_SEAL_COMMIT)
        || ctx->session_len > SW_SEAL_MAX_SESSION || (!ctx->session_id && ctx->session_len > 0))
        return -1;
    uint8_t buf[sizeof s_domain - 1 + 1 + 1 + SW_SEAL_MAX_SESSION + 8 + 4 + 4 + 4];
    size_t n = 0;
    memcpy(buf + n, s_domain, sizeof s_domain - 1);
    n += sizeof s_domain - 1;
    buf[n++] = (uint8_t) ctx->dir;
    buf[n++] = (uint8_t) ctx->session_len;
    if (ctx->session_len)
        memcpy(buf + n, ctx->session_id, ctx->session_len);
    n += ctx->session_len;
    s_le32(buf + n, (uint32_t) ctx->request_id);
    s_le32(buf + n + 4, (uint32_t) (ctx->request_id >> 32));
    n += 8;
    s_le32(buf + n, ctx->pos);
    n += 4;
    s_le32(buf + n, ctx->n_rows);
    n += 4;
    s_le32(buf + n, ctx->hop);
    n += 4;
    crypto_generichash(nonce, SW_SEAL_NONCE_BYTES, buf, n, NULL, 0);
    return 0;
}

int sw_seal_close(const sw_seal_t *self, const sw_seal_ctx_t *ctx, const uint8_t *plain, size_t plain_len,
                  uint8_t *out, size_t out_cap, size_t *out_len)
{
    uint8_t nonce[SW_SEAL_NONCE_BYTES];
    if (!self || !out || !out_len || (!plain && plain_len) || plain_len > SW_SEAL_MAX_PLAIN
        || out_cap < plain_len + SW_SEAL_MAC_BYTES || sw_seal_nonce(ctx, nonce) != 0)
        return -1;
    static const uint8_t s_empty[1] = {0};
    if (crypto_box_easy_afternm(out, plain ? plain : s_empty, plain_len, nonce, self->shared) != 0)
        return -1;
    *out_len = plain_len + SW_SEAL_MAC_BYTES;
    return 0;
}

int sw_seal_open(const sw_seal_t *self, const sw_seal_ctx_t *ctx, const uint8_t *sealed, size_t sealed_len,
                 uint8_t *out, size_t out_cap, size_t *out_len)
{
    uint8_t nonce[SW_SEAL_NONCE_BYTES];
    if (!self || !sealed || !out || !out_len || sealed_len < SW_SEAL_MAC_BYTES
        || sealed_len > SW_SEAL_MAX_PLAIN + SW_SEAL_MAC_BYTES || out_cap < sealed_len - SW_SEAL_MAC_BYTES
        || sw_seal_nonce(ctx, nonce) != 0)
        return -1;
    size_t n = sealed_len - SW_SEAL_MAC_BYTES;
    if (crypto_box_open_easy_afternm(out, sealed, sealed_len, nonce, self->shared) != 0) {
        if (n)
            sodium_memzero(out, n);
        return -1;
    }
    *out_len = n;
    return 0;
}
