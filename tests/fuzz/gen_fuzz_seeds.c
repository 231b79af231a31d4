/*  gen_fuzz_seeds.c: writes a small seed corpus for fuzz_gguf into DIR:
 *  small GGUF files made with the writer (every value type, several tensor
 *  types, alignments 32 and 64, no tensors) so libFuzzer starts from inputs
 *  a few hundred bytes long instead of megabyte model files.
 *  usage: gen_fuzz_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_gguf.h"

static int s_write(sw_gguf_writer_t *w, const char *dir, const char *name)
{
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (sw_gguf_writer_write(w, path, err, sizeof err) != 0) {
        fprintf(stderr, "gen_fuzz_seeds: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_fuzz_seeds DIR\n");
        return 1;
    }
    int rc = 0;
    uint8_t blob[4096];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t) (i * 37 + 11);

    /* 1: every value type and four tensor types */
    sw_gguf_writer_t *w = sw_gguf_writer_new();
    int16_t a16[3] = { 1, -2, 3 };
    double a64[2] = { 0.5, -3.0 };
    uint8_t abool[2] = { 1, 0 };
    const char *strs[3] = { "<unk>", "a", "\xe2\x96\x81the" };
    size_t lens[3] = { 5, 1, 6 };
    sw_gguf_writer_set_str(w, "general.architecture", "llama", 5);
    sw_gguf_writer_set_u32(w, "llama.block_count", 1);
    sw_gguf_writer_set_i32(w, "k.i32", -5);
    sw_gguf_writer_set_u64(w, "k.u64", 1ull << 40);
    sw_gguf_writer_set_f32(w, "k.f32", 1e-5f);
    sw_gguf_writer_set_bool(w, "k.bool", true);
    sw_gguf_writer_set_arr(w, "k.a16", SW_GGUF_I16, a16, 3);
    sw_gguf_writer_set_arr(w, "k.a64", SW_GGUF_F64, a64, 2);
    sw_gguf_writer_set_arr(w, "k.abool", SW_GGUF_BOOL, abool, 2);
    sw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, 3);
    int64_t ne_f32[2] = { 4, 2 }, ne_q8[1] = { 32 }, ne_q4k[1] = { 256 }, ne_f16[3] = { 2, 2, 2 };
    sw_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", SW_DTYPE_F32, 2, ne_f32, blob);
    sw_gguf_writer_add_tensor(w, "q8", SW_DTYPE_Q8_0, 1, ne_q8, blob);
    sw_gguf_writer_add_tensor(w, "q4k", SW_DTYPE_Q4_K, 1, ne_q4k, blob);
    sw_gguf_writer_add_tensor(w, "f16", SW_DTYPE_F16, 3, ne_f16, blob);
    rc |= s_write(w, argv[1], "seed_all_types.gguf");
    /* 2: same with alignment 64 */
    sw_gguf_writer_set_u32(w, "general.alignment", 64);
    rc |= s_write(w, argv[1], "seed_align64.gguf");
    sw_gguf_writer_destroy(&w);
    /* 3: metadata only */
    w = sw_gguf_writer_new();
    sw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, 3);
    sw_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    rc |= s_write(w, argv[1], "seed_vocab_only.gguf");
    sw_gguf_writer_destroy(&w);
    /* 4: one tensor, no metadata */
    w = sw_gguf_writer_new();
    int64_t ne1[1] = { 8 };
    sw_gguf_writer_add_tensor(w, "t", SW_DTYPE_F32, 1, ne1, blob);
    rc |= s_write(w, argv[1], "seed_one_tensor.gguf");
    sw_gguf_writer_destroy(&w);
    return rc ? 1 : 0;
}
