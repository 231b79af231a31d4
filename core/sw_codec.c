/*  sw_codec.c: activation codec (see sw_codec.h for the frame format). */
#include "sw_codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>
#include <zstd.h>

#include "sw_common.h"

struct sw_codec_t {
    sw_codec_config_t cfg;
    int32_t n_embd;      /* row length */
    int32_t max_tokens;  /* rows per frame at most */
    size_t cap;          /* bytes of the largest raw frame (f32 rows) */
    uint8_t *raw;        /* encode: rows; decode: rows after zstd/delta */
    uint8_t *packed;     /* encode: zstd output or delta work buffer */
    size_t packed_cap;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    uint64_t seq;        /* last sequence number sent */
    /* delta references: the last frame sent and the last frame received */
    uint8_t *tx_prev; size_t tx_prev_len; uint64_t tx_prev_seq; uint32_t tx_prev_dtype;
    uint8_t *rx_prev; size_t rx_prev_len; uint64_t rx_prev_seq;
};

static bool s_dtype_ok(uint32_t t)
{
    return t == SW_DTYPE_F32 || t == SW_DTYPE_F16 || t == SW_DTYPE_BF16 || t == SW_DTYPE_Q8_0 || t == SW_DTYPE_Q4_0;
}

int sw_codec_config_parse(const char *spec, sw_codec_config_t *out)
{
    if (!spec || !*spec)
        return -1;
    sw_codec_config_t c = {.dtype = SW_DTYPE_F32, .zstd_level = 0, .delta = false};
    char buf[64];
    if (strlen(spec) >= sizeof buf)
        return -1;
    strcpy(buf, spec);
    char *save = NULL;
    char *tok = strtok_r(buf, "+", &save);
    if (!tok || sw_dtype_from_name(tok, &c.dtype) != 0 || !s_dtype_ok(c.dtype))
        return -1;
    while ((tok = strtok_r(NULL, "+", &save))) {
        if (!strcasecmp(tok, "delta")) {
            c.delta = true;
        } else if (!strncasecmp(tok, "zstd", 4)) {
            char *end = NULL;
            long level = tok[4] ? strtol(tok + 4, &end, 10) : 3;
            if ((tok[4] && *end) || level == 0 || level < -7 || level > 19)
                return -1;
            c.zstd_level = (int) level;
        } else {
            return -1;
        }
    }
    *out = c;
    return 0;
}

sw_codec_t *sw_codec_new(const sw_codec_config_t *cfg, int32_t n_embd, int32_t max_tokens)
{
    if (!cfg || !s_dtype_ok(cfg->dtype) || n_embd <= 0 || n_embd > 65536 || max_tokens <= 0 ||
        max_tokens > 65536 || sw_dtype_row_size(cfg->dtype, n_embd) == 0)
        return NULL;
    sw_codec_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->n_embd = n_embd;
    c->max_tokens = max_tokens;
    c->cap = (size_t) n_embd * (size_t) max_tokens * sizeof(float);
    c->packed_cap = ZSTD_compressBound(c->cap);
    c->raw = malloc(c->cap);
    c->packed = malloc(c->packed_cap);
    c->cctx = ZSTD_createCCtx();
    c->dctx = ZSTD_createDCtx();
    if (!c->raw || !c->packed || !c->cctx || !c->dctx)
        sw_codec_destroy(&c);
    return c;
}

void sw_codec_destroy(sw_codec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_codec_t *c = *self_p;
    free(c->raw);
    free(c->packed);
    free(c->tx_prev);
    free(c->rx_prev);
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c);
    *self_p = NULL;
}

/* Keeps a copy of a frame's rows as a future delta reference. */
static int s_remember(uint8_t **buf, size_t *len, const uint8_t *src, size_t n)
{
    if (*len < n || !*buf) {
        uint8_t *b = realloc(*buf, n);
        if (!b)
            return -1;
        *buf = b;
    }
    memcpy(*buf, src, n);
    *len = n;
    return 0;
}

int sw_codec_encode(sw_codec_t *self, const float *x, int32_t n_tok, sw_codec_header_t *hdr, const void **payload,
                    size_t *payload_len, char *err, size_t errlen)
{
    if (n_tok <= 0 || n_tok > self->max_tokens)
        return sw_err(err, errlen, "%d rows do not fit this codec (1..%d)", (int) n_tok, (int) self->max_tokens);
    const size_t n = (size_t) n_tok * (size_t) self->n_embd;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return sw_err(err, errlen, "activation holds a non-finite value at row %zu", i / (size_t) self->n_embd);
    const sw_dtype_t dt = self->cfg.dtype;
    const size_t row = sw_dtype_row_size(dt, self->n_embd), raw_len = row * (size_t) n_tok;
    for (int32_t r = 0; r < n_tok; r++)
        if (sw_quantize_row(dt, x + (size_t) r * self->n_embd, self->raw + (size_t) r * row, self->n_embd) != 0)
            return sw_err(err, errlen, "cannot encode rows as %s", sw_dtype_name(dt));
    memset(hdr, 0, sizeof *hdr);
    hdr->dtype = dt;
    hdr->n_tok = (uint32_t) n_tok;
    hdr->n_embd = (uint32_t) self->n_embd;
    hdr->seq = ++self->seq;
    hdr->raw_bytes = raw_len;
    hdr->checksum = XXH3_64bits(self->raw, raw_len);
    const uint8_t *src = self->raw;
    uint8_t *work = NULL;
    if (self->cfg.delta && self->tx_prev && self->tx_prev_len == raw_len && self->tx_prev_dtype == dt) {
        /* XOR against the previous frame, written after the zstd area */
        work = malloc(raw_len);
        if (!work)
            return sw_err(err, errlen, "out of memory");
        for (size_t i = 0; i < raw_len; i++)
            work[i] = self->raw[i] ^ self->tx_prev[i];
        hdr->flags |= SW_CODEC_FLAG_DELTA;
        hdr->delta_ref = self->tx_prev_seq;
        src = work;
    }
    if (self->cfg.delta) {
        if (s_remember(&self->tx_prev, &self->tx_prev_len, self->raw, raw_len) != 0) {
            free(work);
            return sw_err(err, errlen, "out of memory");
        }
        self->tx_prev_seq = hdr->seq;
        self->tx_prev_dtype = dt;
    }
    *payload = src;
    *payload_len = raw_len;
    if (self->cfg.zstd_level != 0) {
        size_t z = ZSTD_compressCCtx(self->cctx, self->packed, self->packed_cap, src, raw_len, self->cfg.zstd_level);
        if (ZSTD_isError(z)) {
            free(work);
            return sw_err(err, errlen, "zstd: %s", ZSTD_getErrorName(z));
        }
        if (z < raw_len) { /* keep zstd only where it helps */
            hdr->flags |= SW_CODEC_FLAG_ZSTD;
            *payload = self->packed;
            *payload_len = z;
        }
    }
    if (work) {
        if (!(hdr->flags & SW_CODEC_FLAG_ZSTD)) {
            memcpy(self->packed, work, raw_len); /* the payload must outlive this call */
            *payload = self->packed;
        }
        free(work);
    }
    return 0;
}

int sw_codec_decode(sw_codec_t *self, const sw_codec_header_t *hdr, const void *payload, size_t payload_len,
                    float *out, char *err, size_t errlen)
{
    if (!s_dtype_ok(hdr->dtype))
        return sw_err(err, errlen, "unsupported activation dtype %u", hdr->dtype);
    if (hdr->n_embd != (uint32_t) self->n_embd)
        return sw_err(err, errlen, "activation rows have %u elements, this model has %d", hdr->n_embd,
                      (int) self->n_embd);
    if (hdr->n_tok == 0 || hdr->n_tok > (uint32_t) self->max_tokens)
        return sw_err(err, errlen, "activation has %u rows (1..%d)", hdr->n_tok, (int) self->max_tokens);
    if (hdr->flags & ~(SW_CODEC_FLAG_ZSTD | SW_CODEC_FLAG_DELTA))
        return sw_err(err, errlen, "unknown activation flags 0x%x", hdr->flags);
    const size_t row = sw_dtype_row_size((sw_dtype_t) hdr->dtype, self->n_embd);
    if (row == 0)
        return sw_err(err, errlen, "%s rows of %d elements are not possible", sw_dtype_name(hdr->dtype),
                      (int) self->n_embd);
    const size_t expected = row * hdr->n_tok; /* <= cap: row <= 4 * n_embd */
    if (hdr->raw_bytes != expected)
        return sw_err(err, errlen, "activation declares %llu bytes, its shape needs %zu",
                      (unsigned long long) hdr->raw_bytes, expected);
    const uint8_t *rows = payload;
    if (hdr->flags & SW_CODEC_FLAG_ZSTD) {
        unsigned long long declared = ZSTD_getFrameContentSize(payload, payload_len);
        if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN || declared != expected)
            return sw_err(err, errlen, "zstd frame content size is not the %zu bytes the shape needs", expected);
        size_t frame = ZSTD_findFrameCompressedSize(payload, payload_len);
        if (ZSTD_isError(frame) || frame != payload_len)
            return sw_err(err, errlen, "payload is not exactly one zstd frame");
        size_t got = ZSTD_decompressDCtx(self->dctx, self->raw, expected, payload, payload_len);
        if (ZSTD_isError(got) || got != expected)
            return sw_err(err, errlen, "zstd: %s", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
        rows = self->raw;
    } else if (payload_len != expected) {
        return sw_err(err, errlen, "payload has %zu bytes, the shape needs %zu", payload_len, expected);
    } else if ((uintptr_t) payload % sizeof(float) != 0) {
        /* the block layouts hold f16/f32 fields: read them from aligned memory */
        memcpy(self->raw, payload, expected);
        rows = self->raw;
    }
    if (hdr->flags & SW_CODEC_FLAG_DELTA) {
        if (!self->rx_prev || self->rx_prev_seq != hdr->delta_ref || self->rx_prev_len != expected)
            return sw_err(err, errlen, "delta frame refers to frame %llu, which this receiver does not hold",
                          (unsigned long long) hdr->delta_ref);
        if (rows != self->raw)
            memcpy(self->raw, rows, expected);
        for (size_t i = 0; i < expected; i++)
            self->raw[i] ^= self->rx_prev[i];
        rows = self->raw;
    }
    if (XXH3_64bits(rows, expected) != hdr->checksum)
        return sw_err(err, errlen, "activation checksum mismatch (corrupted frame)");
    for (uint32_t r = 0; r < hdr->n_tok; r++)
        sw_dequantize_row((sw_dtype_t) hdr->dtype, rows + (size_t) r * row, out + (size_t) r * self->n_embd,
                          self->n_embd);
    if (self->cfg.delta && s_remember(&self->rx_prev, &self->rx_prev_len, rows, expected) == 0)
        self->rx_prev_seq = hdr->seq;
    return 0;
}
