/*  fuzz_frame.c: fuzz target for everything that decodes a peer's frame:
 *  the activation codec (sw_codec_decode) and the wire protocol's header and
 *  body parsing with validation (protobuf-c unpack + sw_wire_validate_body).
 *
 *  Input layout: byte 0 selects the decoder (mod 3).
 *    0: activation: bytes 1..48 are the header fields (8 x u32/u64 little-
 *       endian: dtype, n_tok, n_embd, flags, delta_ref, seq, checksum,
 *       raw_bytes as u32,u32,u32,u32,u64,u64,u64,u64), the rest the payload;
 *       decoded by codecs for n_embd 64 and 96, max 64 rows, with and without
 *       delta state.
 *    1: a swisd.v1.Body frame; 2: a swisd.v1.Header frame.
 *  Build with libFuzzer (-Dfuzz=true, clang) or with fuzz_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_codec.h"
#include "sw_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t s_u(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t) p[i] << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[256];
    switch (data[0] % 3) {
    case 0: {
        if (size < 49)
            return 0;
        const uint8_t *p = data + 1;
        sw_codec_header_t h = {
            .dtype = (uint32_t) s_u(p, 4), .n_tok = (uint32_t) s_u(p + 4, 4), .n_embd = (uint32_t) s_u(p + 8, 4),
            .flags = (uint32_t) s_u(p + 12, 4), .delta_ref = s_u(p + 16, 8), .seq = s_u(p + 24, 8),
            .checksum = s_u(p + 32, 8), .raw_bytes = s_u(p + 40, 8),
        };
        static float out[64 * 96];
        const int embds[2] = {64, 96};
        for (int e = 0; e < 2; e++)
            for (int d = 0; d <= 1; d++) {
                sw_codec_config_t cfg = {.dtype = SW_DTYPE_F32, .zstd_level = 0, .delta = d};
                sw_codec_t *c = sw_codec_new(&cfg, embds[e], 64);
                if (!c)
                    __builtin_trap();
                if (sw_codec_decode(c, &h, data + 49, size - 49, out, err, sizeof err) == 0 &&
                    (h.n_embd != (uint32_t) embds[e] || h.n_tok == 0 || h.n_tok > 64))
                    __builtin_trap(); /* accepted a shape it must refuse */
                sw_codec_destroy(&c);
            }
        return 0;
    }
    case 1: {
        Swisd__V1__Body *b = swisd__v1__body__unpack(NULL, size - 1, data + 1);
        if (b) {
            (void) sw_wire_validate_body(b, err, sizeof err);
            (void) sw_wire_kind_name(b);
            swisd__v1__body__free_unpacked(b, NULL);
        }
        return 0;
    }
    default: {
        Swisd__V1__Header *h = swisd__v1__header__unpack(NULL, size - 1, data + 1);
        if (h)
            swisd__v1__header__free_unpacked(h, NULL);
        return 0;
    }
    }
}
