/*  sw_commit.c: sealed per-hop commitments (layout in sw_commit.h). */
#include "sw_commit.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"

static void s_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static uint32_t s_rd32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

int sw_commit_digest(const void *payload, size_t len, uint8_t out[SW_COMMIT_DIGEST_BYTES])
{
    if (sodium_init() < 0)
        return -1;
    return crypto_generichash(out, SW_COMMIT_DIGEST_BYTES, payload, len, NULL, 0) == 0 ? 0 : -1;
}

int sw_commit_seal(sw_seal_peers_t *peers, const uint8_t gateway[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                   const sw_commit_t *c, uint8_t **out, size_t *out_len)
{
    if (!c || !ctx || ctx->dir != SW_SEAL_COMMIT || c->n_rows < 1 || c->n_rows > SW_COMMIT_MAX_ROWS ||
        c->layer_begin >= c->layer_end || !c->sketch)
        return -1;
    const size_t n_sketch = (size_t) c->n_rows * SW_SKETCH_K;
    const size_t len = SW_COMMIT_HEADER_BYTES + 4 * n_sketch;
    uint8_t *plain = malloc(len);
    if (!plain)
        return -1;
    memcpy(plain, "SWC1", 4);
    s_le32(plain + 4, c->layer_begin);
    s_le32(plain + 8, c->layer_end);
    s_le32(plain + 12, c->n_rows);
    memcpy(plain + 16, c->in_digest, SW_COMMIT_DIGEST_BYTES);
    memcpy(plain + 32, c->out_digest, SW_COMMIT_DIGEST_BYTES);
    for (size_t i = 0; i < n_sketch; i++) {
        uint32_t bits;
        memcpy(&bits, &c->sketch[i], 4);
        s_le32(plain + SW_COMMIT_HEADER_BYTES + 4 * i, bits);
    }
    int rc = sw_seal_peers_close(peers, gateway, ctx, plain, len, 0, out, out_len);
    free(plain);
    return rc;
}

int sw_commit_open(sw_seal_peers_t *peers, const uint8_t stage[SW_SEAL_KEY_BYTES], const sw_seal_ctx_t *ctx,
                   const void *sealed, size_t len, uint32_t expect_rows, sw_commit_t *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (!ctx || ctx->dir != SW_SEAL_COMMIT)
        return sw_err(err, errlen, "not a commitment context");
    if (expect_rows < 1 || expect_rows > SW_COMMIT_MAX_ROWS)
        return sw_err(err, errlen, "a step of %u rows", expect_rows);
    /* the size is known before opening: a frame of any other size is refused unopened */
    const size_t want = SW_COMMIT_HEADER_BYTES + 4 * (size_t) expect_rows * SW_SKETCH_K;
    if (len != want + 8 + SW_SEAL_MAC_BYTES)
        return sw_err(err, errlen, "a commitment of %zu bytes (a step of %u rows needs %zu)", len, expect_rows,
                      want + 8 + SW_SEAL_MAC_BYTES);
    uint8_t *plain = NULL;
    size_t n = 0;
    uint64_t checksum = 0;
    if (sw_seal_peers_open(peers, stage, ctx, sealed, len, &plain, &n, &checksum) != 0)
        return sw_err(err, errlen, "the commitment does not open with the stage's key for this step and hop");
    int rc = -1;
    if (n != want || memcmp(plain, "SWC1", 4) != 0) {
        sw_err(err, errlen, "not a commitment (magic or size)");
        goto done;
    }
    c->layer_begin = s_rd32(plain + 4);
    c->layer_end = s_rd32(plain + 8);
    c->n_rows = s_rd32(plain + 12);
    if (c->n_rows != expect_rows || c->layer_begin >= c->layer_end) {
        sw_err(err, errlen, "a commitment for %u rows of layers [%u, %u) in a step of %u rows", c->n_rows,
               c->layer_begin, c->layer_end, expect_rows);
        goto done;
    }
    memcpy(c->in_digest, plain + 16, SW_COMMIT_DIGEST_BYTES);
    memcpy(c->out_digest, plain + 32, SW_COMMIT_DIGEST_BYTES);
    const size_t n_sketch = (size_t) c->n_rows * SW_SKETCH_K;
    if (!(c->sketch = malloc(4 * n_sketch))) {
        sw_err(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_sketch; i++) {
        uint32_t bits = s_rd32(plain + SW_COMMIT_HEADER_BYTES + 4 * i);
        memcpy(&c->sketch[i], &bits, 4);
        if (!isfinite(c->sketch[i])) {
            sw_err(err, errlen, "a sketch that is not finite");
            goto done;
        }
    }
    rc = 0;
done:
    free(plain);
    if (rc != 0)
        sw_commit_free(c);
    return rc;
}

void sw_commit_free(sw_commit_t *c)
{
    if (!c)
        return;
    free(c->sketch);
    memset(c, 0, sizeof *c);
}
