/*  sw_codec.h: activation codec: hidden states <-> compact, checked bytes.
 *
 *  A frame carries a tensor x (n_tok, n_embd) f32 row-major as:
 *    1. rows of `dtype` (sw_dtype.h layouts): F32, F16, BF16, Q8_0 or Q4_0;
 *       each row is sw_dtype_row_size(dtype, n_embd) bytes (Q8_0 and Q4_0
 *       need n_embd % 32 == 0);
 *    2. optionally delta-encoded: each byte XOR the byte at the same offset
 *       of the reference frame (same session and direction, same n_tok and
 *       dtype, identified by its sequence number);
 *    3. optionally zstd-compressed (one zstd frame, RFC 8878);
 *  plus a header (sw_codec_header_t, carried as the swisd.v1.Activation
 *  message fields) with the XXH3-64 checksum of the payload before zstd.
 *
 *  Decoding validates the header against the receiver's own n_embd and
 *  max_tokens, computes the expected size from them, and refuses any frame
 *  whose declared or actual sizes differ, whose zstd content size is not the
 *  expected one, or whose checksum does not match, before writing output.
 *
 *  Delta frames need matching state on both ends: the sender's codec and
 *  the receiver's codec are both created with delta = true for one session
 *  and direction; the receiver keeps the last frame it decoded. A delta
 *  frame that reaches a receiver without its reference is refused (clear
 *  error, no silent garbage); the sender then starts again without delta.
 *
 *  Thread safety: a sw_codec_t holds zstd contexts and delta state; one
 *  thread at a time. Use one codec per link direction (and per session when
 *  delta is on).
 */
#ifndef SW_CODEC_H
#define SW_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SW_CODEC_FLAG_ZSTD 1u   /* payload is one zstd frame */
#define SW_CODEC_FLAG_DELTA 2u  /* payload is XOR-delta against frame delta_ref */

/*  Per-link settings. */
typedef struct {
    sw_dtype_t dtype;  /* F32, F16, BF16, Q8_0 or Q4_0 */
    int zstd_level;    /* 0 = no compression; 1..19 zstd levels (negative = fast modes) */
    bool delta;        /* XOR-delta against the previous frame when shapes match */
} sw_codec_config_t;

/*  Frame header (the swisd.v1.Activation fields). */
typedef struct {
    uint32_t dtype;      /* sw_dtype_t of the rows */
    uint32_t n_tok;      /* rows */
    uint32_t n_embd;     /* row length */
    uint32_t flags;      /* SW_CODEC_FLAG_* */
    uint64_t delta_ref;  /* with FLAG_DELTA: seq of the reference frame */
    uint64_t seq;        /* this frame's sequence number (per codec, from 1) */
    uint64_t checksum;   /* XXH3-64 of the rows (before delta and zstd) */
    uint64_t raw_bytes;  /* n_tok * row bytes */
} sw_codec_header_t;

typedef struct sw_codec_t sw_codec_t;

/*  Parses "f32", "f16", "bf16", "q8_0", "q4_0" with an optional "+zstd" or
 *  "+zstdN" suffix and "+delta" (e.g. "q8_0+zstd3"). Returns 0 or -1. */
int sw_codec_config_parse(const char *spec, sw_codec_config_t *out);

/*  A codec for rows of n_embd, at most max_tokens rows per frame.
 *  Returns NULL on a bad config (unsupported dtype, Q8_0/Q4_0 with n_embd not
 *  a multiple of 32) or allocation failure. Caller destroys result. */
sw_codec_t *sw_codec_new(const sw_codec_config_t *cfg, int32_t n_embd, int32_t max_tokens);
void sw_codec_destroy(sw_codec_t **self_p);

/*  Encodes x (n_tok, n_embd) f32. On success fills *hdr and sets *payload /
 *  *payload_len to bytes owned by the codec, valid until its next call.
 *  Returns 0, or -1 (n_tok out of range, non-finite input, zstd failure). */
int sw_codec_encode(sw_codec_t *self, const float *x, int32_t n_tok, sw_codec_header_t *hdr,
                    const void **payload, size_t *payload_len, char *err, size_t errlen);

/*  Decodes one frame into out (hdr->n_tok, n_embd) f32, which must hold
 *  max_tokens rows. Any dtype/flags combination is accepted regardless of
 *  this codec's own config (the sender chooses). Returns 0, or -1 with a
 *  reason (bad dtype, shape, sizes, checksum, zstd error, missing delta
 *  reference); on error out is unspecified and the delta state unchanged. */
int sw_codec_decode(sw_codec_t *self, const sw_codec_header_t *hdr, const void *payload, size_t payload_len,
                    float *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
