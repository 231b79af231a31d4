/*  cmd_convert.c: `swisd convert MODEL.bin TOKENIZER.bin OUT.gguf`: imports a
 *  llama2.c checkpoint (Karpathy's llama2.c, legacy "version 0" export) and
 *  its tokenizer into an F32 GGUF file with llama.cpp's tensor names.
 *
 *  Checkpoint layout (llama2.c run.c, read_checkpoint), little-endian:
 *    1. header: 7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *       vocab_size (negative: the classifier is stored separately), seq_len
 *    2. f32 arrays: token_embedding[V][dim], rms_att[L][dim], wq[L][dim][dim],
 *       wk[L][kv_dim][dim], wv[L][kv_dim][dim], wo[L][dim][dim],
 *       rms_ffn[L][dim], w1[L][hidden][dim], w2[L][dim][hidden],
 *       w3[L][hidden][dim], rms_final[dim], freq_cis_real and freq_cis_imag
 *       [seq_len][head_size/2] (unused), then wcls[V][dim] if unshared.
 *  llama2.c rotates adjacent pairs, the "normal" RoPE layout, so Q and K need
 *  no permutation. w1 is the gate, w3 the up projection, w2 the down.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_dtype.h"
#include "sw_gguf.h"
#include "sw_llama2c.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd convert MODEL.bin TOKENIZER.bin OUT.gguf [--name NAME]\n"
                 "  Imports a llama2.c checkpoint and tokenizer as an f32 GGUF (quantize it afterwards\n"
                 "  with `swisd quantize`).\n");
}

/* Adds `count` consecutive matrices or vectors of shape [ne0, ne1] from the
 * checkpoint as blk.N.<suffix> (or `suffix` alone when per_layer is false). */
static int s_add(sw_gguf_writer_t *w, const float **cursor, const float *end, const char *suffix, bool per_layer,
                 int32_t n_layer, int64_t ne0, int64_t ne1, char *err, size_t errlen)
{
    const int32_t count = per_layer ? n_layer : 1;
    const int64_t n = ne0 * (ne1 > 0 ? ne1 : 1);
    for (int32_t il = 0; il < count; il++) {
        if (end - *cursor < n)
            return sw_err(err, errlen, "checkpoint is too short for %s", suffix);
        char name[96];
        if (per_layer)
            snprintf(name, sizeof name, "blk.%d.%s", (int) il, suffix);
        else
            snprintf(name, sizeof name, "%s", suffix);
        int64_t ne[2] = {ne0, ne1 > 0 ? ne1 : 1};
        if (sw_gguf_writer_add_tensor(w, name, SW_DTYPE_F32, ne1 > 0 ? 2 : 1, ne, *cursor) != 0)
            return sw_err(err, errlen, "cannot add tensor %s", name);
        *cursor += n;
    }
    return 0;
}

/* tokenizer.ggml.* metadata for a llama2.c vocabulary (SentencePiece style,
 * ids 1/2 = BOS/EOS, 0 = unknown, as llama2.c's exporter assigns them). */
static int s_vocab_to_gguf(const sw_llama2c_vocab_t *v, sw_gguf_writer_t *w)
{
    return sw_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5) ||
                   sw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *) v->tokens,
                                              v->token_lens, (uint64_t) v->n_vocab) ||
                   sw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", SW_GGUF_F32, v->scores, (uint64_t) v->n_vocab) ||
                   sw_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", SW_GGUF_I32, v->types,
                                          (uint64_t) v->n_vocab) ||
                   sw_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1) ||
                   sw_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2) ||
                   sw_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0) ||
                   sw_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true) ||
                   sw_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)
               ? -1
               : 0;
}

int swisd_cmd_convert(int argc, char **argv)
{
    const char *name = NULL;
    static const struct option opts[] = {
        {"name", required_argument, 0, 'n'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': name = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (argc - optind != 3) {
        s_usage(stderr);
        return 2;
    }
    const char *model_path = argv[optind], *tok_path = argv[optind + 1], *out = argv[optind + 2];
    char err[512] = "";
    int rc = 1, fd = -1;
    void *map = MAP_FAILED;
    size_t size = 0;
    sw_gguf_writer_t *w = NULL;
    sw_llama2c_vocab_t vocab = {0};
    bool vocab_loaded = false;

    if ((fd = open(model_path, O_RDONLY)) < 0) {
        fprintf(stderr, "swisd convert: %s: %s\n", model_path, strerror(errno));
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 28) {
        fprintf(stderr, "swisd convert: %s: not a llama2.c checkpoint (shorter than its 28-byte header)\n", model_path);
        goto done;
    }
    size = (size_t) st.st_size;
    if ((map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        fprintf(stderr, "swisd convert: %s: mmap: %s\n", model_path, strerror(errno));
        goto done;
    }
    int32_t h[7];
    memcpy(h, map, sizeof h);
    const int32_t dim = h[0], hidden = h[1], n_layer = h[2], n_head = h[3], n_kv = h[4], seq_len = h[6];
    const bool shared = h[5] > 0;
    const int32_t n_vocab = h[5] > 0 ? h[5] : -h[5];
    if (dim <= 0 || dim > 65536 || hidden <= 0 || hidden > 1048576 || n_layer <= 0 || n_layer > 1024 || n_head <= 0 ||
        n_head > dim || dim % n_head != 0 || n_kv <= 0 || n_kv > n_head || n_head % n_kv != 0 || n_vocab <= 0 ||
        n_vocab > (1 << 24) || seq_len <= 0 || seq_len > (1 << 24) || (dim / n_head) % 2 != 0) {
        fprintf(stderr, "swisd convert: %s: implausible header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, "
                        "seq_len %d)\n", model_path, dim, hidden, n_layer, n_head, n_kv, h[5], seq_len);
        goto done;
    }
    const int32_t head_size = dim / n_head, kv_dim = n_kv * head_size;
    if (sw_llama2c_vocab_load(tok_path, n_vocab, &vocab, err, sizeof err) != 0) {
        fprintf(stderr, "swisd convert: %s: %s\n", tok_path, err);
        goto done;
    }
    vocab_loaded = true;

    const float *cur = (const float *) ((const uint8_t *) map + 28);
    const float *end = (const float *) ((const uint8_t *) map + 28 + (size - 28) / 4 * 4);
    if (!(w = sw_gguf_writer_new()))
        goto done;
    if (s_add(w, &cur, end, "token_embd.weight", false, n_layer, dim, n_vocab, err, sizeof err) ||
        s_add(w, &cur, end, "attn_norm.weight", true, n_layer, dim, 0, err, sizeof err) ||
        s_add(w, &cur, end, "attn_q.weight", true, n_layer, dim, dim, err, sizeof err) ||
        s_add(w, &cur, end, "attn_k.weight", true, n_layer, dim, kv_dim, err, sizeof err) ||
        s_add(w, &cur, end, "attn_v.weight", true, n_layer, dim, kv_dim, err, sizeof err) ||
        s_add(w, &cur, end, "attn_output.weight", true, n_layer, dim, dim, err, sizeof err) ||
        s_add(w, &cur, end, "ffn_norm.weight", true, n_layer, dim, 0, err, sizeof err) ||
        s_add(w, &cur, end, "ffn_gate.weight", true, n_layer, dim, hidden, err, sizeof err) ||
        s_add(w, &cur, end, "ffn_down.weight", true, n_layer, hidden, dim, err, sizeof err) ||
        s_add(w, &cur, end, "ffn_up.weight", true, n_layer, dim, hidden, err, sizeof err) ||
        s_add(w, &cur, end, "output_norm.weight", false, n_layer, dim, 0, err, sizeof err)) {
        fprintf(stderr, "swisd convert: %s: %s\n", model_path, err);
        goto done;
    }
    const int64_t freq = (int64_t) seq_len * head_size; /* real + imag halves, both unused */
    if (end - cur < freq) {
        fprintf(stderr, "swisd convert: %s: checkpoint is too short for the RoPE tables\n", model_path);
        goto done;
    }
    cur += freq;
    if (!shared && s_add(w, &cur, end, "output.weight", false, n_layer, dim, n_vocab, err, sizeof err)) {
        fprintf(stderr, "swisd convert: %s: %s\n", model_path, err);
        goto done;
    }
    if (cur != end)
        sw_log(SW_LOG_WARN, "%s: %lld trailing bytes after the weights were ignored", model_path,
               (long long) ((const uint8_t *) end - (const uint8_t *) cur + (size - 28) % 4));

    const char *gname = name ? name : "llama2.c import";
    if (sw_gguf_writer_set_str(w, "general.architecture", "llama", 5) ||
        sw_gguf_writer_set_str(w, "general.name", gname, strlen(gname)) ||
        sw_gguf_writer_set_u32(w, "general.file_type", 0) ||
        sw_gguf_writer_set_u32(w, "llama.context_length", (uint32_t) seq_len) ||
        sw_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t) dim) ||
        sw_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t) hidden) ||
        sw_gguf_writer_set_u32(w, "llama.block_count", (uint32_t) n_layer) ||
        sw_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t) n_head) ||
        sw_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t) n_kv) ||
        sw_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t) head_size) ||
        sw_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f) ||
        sw_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f) ||
        sw_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t) n_vocab) ||
        s_vocab_to_gguf(&vocab, w) != 0) {
        fprintf(stderr, "swisd convert: cannot write metadata (out of memory)\n");
        goto done;
    }
    if (sw_gguf_writer_write(w, out, err, sizeof err) != 0) {
        fprintf(stderr, "swisd convert: %s: %s\n", out, err);
        goto done;
    }
    fprintf(stderr, "swisd convert: wrote %s (dim %d, %d layers, %d heads, %d kv heads, vocab %d, %s classifier)\n", out,
            dim, n_layer, n_head, n_kv, n_vocab, shared ? "tied" : "separate");
    rc = 0;
done:
    if (vocab_loaded)
        sw_llama2c_vocab_free(&vocab);
    sw_gguf_writer_destroy(&w);
    if (map != MAP_FAILED)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    return rc;
}
