/*  gen_frame_seeds.c: writes valid inputs for fuzz_frame into a folder:
 *  activation frames of every codec (f32, f16, bf16, q8_0, q4_0, with and
 *  without zstd) for n_embd 64, and packed Body / Header messages of several
 *  kinds. usage: gen_frame_seeds DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_codec.h"
#include "sw_wire.h"

static int s_write(const char *dir, const char *name, const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fwrite(a, 1, na, f);
    if (b)
        fwrite(b, 1, nb, f);
    return fclose(f);
}

static void s_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *specs[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "f32+zstd3", "q8_0+zstd3", "f16+delta"};
    float x[3 * 64];
    for (int i = 0; i < 3 * 64; i++)
        x[i] = (float) ((i * 37) % 19) / 7.0f - 1.0f;
    char err[256];
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        sw_codec_config_t cfg;
        if (sw_codec_config_parse(specs[s], &cfg) != 0)
            return 1;
        sw_codec_t *c = sw_codec_new(&cfg, 64, 64);
        sw_codec_header_t h;
        const void *p;
        size_t len;
        if (!c || sw_codec_encode(c, x, 3, &h, &p, &len, err, sizeof err) != 0)
            return 1;
        uint8_t hdr[49] = {0};
        s_le(hdr + 1, h.dtype, 4); s_le(hdr + 5, h.n_tok, 4); s_le(hdr + 9, h.n_embd, 4); s_le(hdr + 13, h.flags, 4);
        s_le(hdr + 17, h.delta_ref, 8); s_le(hdr + 25, h.seq, 8); s_le(hdr + 33, h.checksum, 8);
        s_le(hdr + 41, h.raw_bytes, 8);
        char name[64];
        snprintf(name, sizeof name, "act_%zu.bin", s);
        if (s_write(argv[1], name, hdr, sizeof hdr, p, len) != 0)
            return 1;
        sw_codec_destroy(&c);
    }
    /* a forward request body and a header */
    Swisd__V1__LayerRange lr = SWISD__V1__LAYER_RANGE__INIT;
    lr.begin = 0; lr.end = 2;
    Swisd__V1__Hop hop = SWISD__V1__HOP__INIT;
    hop.node_id = "abc"; hop.layers = &lr;
    Swisd__V1__Hop *route[1] = {&hop};
    Swisd__V1__Activation act = SWISD__V1__ACTIVATION__INIT;
    act.n_tok = 1; act.n_embd = 64; act.raw_bytes = 256;
    uint8_t payload[256] = {0};
    act.payload.data = payload; act.payload.len = sizeof payload;
    Swisd__V1__ForwardRequest fr = SWISD__V1__FORWARD_REQUEST__INIT;
    fr.session_id = "s1"; fr.request_id = 7; fr.origin = "gw"; fr.n_route = 1; fr.route = route;
    fr.n_tok = 1; fr.activation = &act;
    Swisd__V1__Body body = SWISD__V1__BODY__INIT;
    body.msg_case = SWISD__V1__BODY__MSG_FORWARD_REQUEST;
    body.forward_request = &fr;
    uint8_t buf[4096];
    buf[0] = 1;
    size_t n = swisd__v1__body__pack(&body, buf + 1);
    if (s_write(argv[1], "body_forward.bin", buf, n + 1, NULL, 0) != 0)
        return 1;
    Swisd__V1__Hello hello = SWISD__V1__HELLO__INIT;
    hello.node_id = "n1"; hello.region = "eu"; hello.layers = &lr;
    body.msg_case = SWISD__V1__BODY__MSG_HELLO;
    body.hello = &hello;
    n = swisd__v1__body__pack(&body, buf + 1);
    if (s_write(argv[1], "body_hello.bin", buf, n + 1, NULL, 0) != 0)
        return 1;
    Swisd__V1__Header h = SWISD__V1__HEADER__INIT;
    h.version_major = 1; h.src = "a"; h.dst = "b"; h.hops = 1;
    buf[0] = 2;
    n = swisd__v1__header__pack(&h, buf + 1);
    return s_write(argv[1], "header.bin", buf, n + 1, NULL, 0) == 0 ? 0 : 1;
}
