/*  cmd_synth.c: `swisd synth SHAPE TYPE OUT.gguf`: a random-weight model with
 *  the exact tensor shapes of a published model, for speed work (speed
 *  depends on shapes, not on what the weights mean).
 *
 *  Shapes are the published configurations (each model's config.json):
 *  TinyLlama-1.1B (Zhang et al. 2024), Llama-3.2-1B/3B, SmolLM2-135M/360M,
 *  Qwen2.5-0.5B, Qwen3-0.6B/1.7B/4B/8B, Qwen3-30B-A3B (128 experts, 8 per
 *  token), Gemma-2-2B, Gemma-3-1B/4B (text), Phi-3-mini-4k, Mistral-7B v0.1,
 *  Mixtral-8x7B, and stories260K (Karpathy's tinyllamas). Each file carries
 *  the metadata and tensors its architecture needs (q/k norms, post-norms,
 *  fused phi3 tensors, experts, sliding windows, soft caps), with the
 *  published values. Llama 3's RoPE frequency factors are not reproduced:
 *  they change no shape and no cost.
 *
 *  The tokenizer is a SentencePiece-style vocabulary of the shape's size:
 *  <unk>, <s>, </s>, the 256 byte tokens, then filler pieces; with --vocab
 *  FILE the tokenizer.* metadata of FILE is copied instead (its size must
 *  match the shape's).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_dtype.h"
#include "sw_gguf.h"
#include "sw_opt.h"
#include "sw_quant.h"
#include "swisd_cli.h"

typedef struct {
    const char *name;       /* shape name on the command line */
    const char *arch;       /* general.architecture */
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_theta, rms_eps;
    bool tied;              /* output matrix shared with token_embd */
    int32_t head_dim;       /* attention.key_length; 0 = n_embd / n_head */
    int32_t n_expert, n_expert_used, n_ff_exp; /* MoE (0 = dense) */
    int32_t n_swa;          /* attention.sliding_window (0 = none) */
    float attn_softcap, final_softcap; /* Gemma 2 (0 = none) */
    float rope_theta_swa;   /* rope.freq_base_swa (Gemma 3; 0 = none) */
    float rope_linear;      /* rope.scaling.factor, linear (0 = none) */
} s_shape_t;

static const s_shape_t s_shapes[] = {
    {"tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f, false,
     .head_dim = 0},
    {"llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, 1e-5f, true,
     .head_dim = 0},
    {"llama-3.2-3b", "llama", 3072, 28, 24, 8, 8192, 128256, 131072, 500000.0f, 1e-5f, true,
     .head_dim = 0},
    {"smollm2-135m", "llama", 576, 30, 9, 3, 1536, 49152, 8192, 100000.0f, 1e-5f, true,
     .head_dim = 0},
    {"smollm2-360m", "llama", 960, 32, 15, 5, 2560, 49152, 8192, 100000.0f, 1e-5f, true,
     .head_dim = 0},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.0f, 1e-6f, true,
     .head_dim = 0},
    {"qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 3072, 151936, 40960, 1000000.0f, 1e-6f, true,
     .head_dim = 128},
    {"qwen3-1.7b", "qwen3", 2048, 28, 16, 8, 6144, 151936, 40960, 1000000.0f, 1e-6f, true,
     .head_dim = 128},
    {"qwen3-4b", "qwen3", 2560, 36, 32, 8, 9728, 151936, 40960, 1000000.0f, 1e-6f, true,
     .head_dim = 128},
    {"qwen3-8b", "qwen3", 4096, 36, 32, 8, 12288, 151936, 40960, 1000000.0f, 1e-6f, false,
     .head_dim = 128},
    {"qwen3-30b-a3b", "qwen3moe", 2048, 48, 32, 4, 6144, 151936, 40960, 1000000.0f, 1e-6f, false,
     .head_dim = 128, .n_expert = 128, .n_expert_used = 8, .n_ff_exp = 768},
    {"gemma-2-2b", "gemma2", 2304, 26, 8, 4, 9216, 256000, 8192, 10000.0f, 1e-6f, true,
     .head_dim = 256, .n_swa = 4096, .attn_softcap = 50.0f, .final_softcap = 30.0f},
    {"gemma-3-1b", "gemma3", 1152, 26, 4, 1, 6912, 262144, 32768, 1000000.0f, 1e-6f, true,
     .head_dim = 256, .n_swa = 512, .rope_theta_swa = 10000.0f},
    {"gemma-3-4b", "gemma3", 2560, 34, 8, 4, 10240, 262208, 131072, 1000000.0f, 1e-6f, true,
     .head_dim = 256, .n_swa = 1024, .rope_theta_swa = 10000.0f, .rope_linear = 8.0f},
    {"phi-3-mini", "phi3", 3072, 32, 32, 32, 8192, 32064, 4096, 10000.0f, 1e-5f, false,
     .n_swa = 2047},
    {"mistral-7b", "llama", 4096, 32, 32, 8, 14336, 32000, 32768, 10000.0f, 1e-5f, false,
     .n_swa = 4096},
    {"mixtral-8x7b", "llama", 4096, 32, 32, 8, 14336, 32000, 32768, 1000000.0f, 1e-5f, false,
     .n_expert = 8, .n_expert_used = 2, .n_ff_exp = 14336},
    {"stories260k", "llama", 64, 5, 8, 4, 172, 512, 512, 10000.0f, 1e-5f, true,
     .head_dim = 0},
};
#define N_SHAPES (sizeof s_shapes / sizeof s_shapes[0])

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd synth SHAPE TYPE OUT.gguf [--seed S] [--vocab VOCAB.gguf] [--layers N]\n"
                 "  SHAPE: ");
    for (size_t i = 0; i < N_SHAPES; i++)
        fprintf(out, "%s%s", s_shapes[i].name, i + 1 < N_SHAPES ? ", " : "\n");
    fprintf(out, "  TYPE: f32, f16, bf16, q8_0, q4_0, q4_K, q6_K (matrices; norms stay f32)\n"
                 "  --vocab FILE   copy the tokenizer from FILE (its vocabulary size must match)\n"
                 "  --layers N     keep only the first N blocks (smaller files for tests)\n");
}

/* splitmix64 (Steele et al. 2014): a fast, well-mixed 64-bit sequence */
static uint64_t s_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform values in [-a, a] with a = sqrt(3) * std, so the std is `std`. */
static void s_fill(float *x, int64_t n, float std, uint64_t *rng)
{
    const float a = sqrtf(3.0f) * std;
    for (int64_t i = 0; i < n; i++)
        x[i] = a * (2.0f * (float) ((s_next(rng) >> 40) * (1.0 / 16777216.0)) - 1.0f);
}

/* A tensor [ne0, ne1, ne2] (ne1 <= 0: a vector; ne2 <= 1: a matrix; ne2 > 1:
 * ne2 expert matrices, made one at a time so the f32 buffer stays one
 * matrix). */
static int s_add3(sw_gguf_writer_t *w, const char *name, sw_dtype_t target, int64_t ne0, int64_t ne1, int64_t ne2,
                  float std, float constant, uint64_t *rng)
{
    const uint32_t n_dims = ne1 <= 0 ? 1 : ne2 > 1 ? 3 : 2;
    const int64_t rows = ne1 > 0 ? ne1 : 1, n_mat = ne2 > 1 ? ne2 : 1;
    const sw_dtype_t type = sw_quant_type_for(n_dims, ne0, target);
    const size_t mat_bytes = sw_dtype_row_size(type, ne0) * (size_t) rows;
    float *f = malloc(sizeof(float) * (size_t) (ne0 * rows));
    uint8_t *q = malloc(mat_bytes * (size_t) n_mat);
    int rc = -1;
    if (f && q) {
        rc = 0;
        for (int64_t e = 0; e < n_mat && rc == 0; e++) {
            if (std > 0.0f)
                s_fill(f, ne0 * rows, std, rng);
            else
                for (int64_t i = 0; i < ne0 * rows; i++)
                    f[i] = constant;
            rc = sw_quant_rows(type, f, q + (size_t) e * mat_bytes, ne0, rows);
        }
        int64_t ne[3] = {ne0, rows, n_mat};
        rc = rc || sw_gguf_writer_add_tensor(w, name, type, n_dims, ne, q);
    }
    free(f);
    free(q);
    if (rc)
        fprintf(stderr, "swisd synth: cannot create tensor %s\n", name);
    return rc ? -1 : 0;
}

static int s_add(sw_gguf_writer_t *w, const char *name, sw_dtype_t target, int64_t ne0, int64_t ne1, float std,
                 float constant, uint64_t *rng)
{
    return s_add3(w, name, target, ne0, ne1, 1, std, constant, rng);
}

static int s_synth_vocab(sw_gguf_writer_t *w, int32_t n_vocab)
{
    char **toks = calloc((size_t) n_vocab, sizeof *toks);
    size_t *lens = calloc((size_t) n_vocab, sizeof *lens);
    float *scores = calloc((size_t) n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t) n_vocab, sizeof *types);
    int rc = -1;
    if (!toks || !lens || !scores || !types)
        goto done;
    for (int32_t i = 0; i < n_vocab; i++) {
        char buf[32];
        if (i == 0) snprintf(buf, sizeof buf, "<unk>"), types[i] = 2;
        else if (i == 1) snprintf(buf, sizeof buf, "<s>"), types[i] = 3;
        else if (i == 2) snprintf(buf, sizeof buf, "</s>"), types[i] = 3;
        else if (i < 259) snprintf(buf, sizeof buf, "<0x%02X>", i - 3), types[i] = 6;
        else snprintf(buf, sizeof buf, "\xe2\x96\x81w%d", (int) i), types[i] = 1; /* U+2581 "w<i>" */
        scores[i] = i < 259 ? 0.0f : -(float) i;
        lens[i] = strlen(buf);
        if (!(toks[i] = strdup(buf)))
            goto done;
    }
    int32_t ids[3] = {1, 2, 0};
    rc = sw_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5) ||
         sw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *) toks, lens, (uint64_t) n_vocab) ||
         sw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", SW_GGUF_F32, scores, (uint64_t) n_vocab) ||
         sw_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", SW_GGUF_I32, types, (uint64_t) n_vocab) ||
         sw_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t) ids[0]) ||
         sw_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t) ids[1]) ||
         sw_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t) ids[2]) ||
         sw_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true) ? -1 : 0;
done:
    if (toks)
        for (int32_t i = 0; i < n_vocab; i++)
            free(toks[i]);
    free(toks);
    free(lens);
    free(scores);
    free(types);
    return rc;
}

int swisd_cmd_synth(int argc, char **argv)
{
    uint64_t seed = 1;
    const char *vocab_path = NULL;
    int64_t n_layers_opt = 0;
    static const struct option opts[] = {
        {"seed", required_argument, 0, 's'}, {"vocab", required_argument, 0, 'v'},
        {"layers", required_argument, 0, 'l'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': if (sw_opt_u64("--seed", optarg, &seed)) return 2; break;
        case 'v': vocab_path = optarg; break;
        case 'l': if (sw_opt_i64("--layers", optarg, 1, 1024, &n_layers_opt)) return 2; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (argc - optind != 3) {
        s_usage(stderr);
        return 2;
    }
    const s_shape_t *sh = NULL;
    for (size_t i = 0; i < N_SHAPES; i++)
        if (!strcasecmp(argv[optind], s_shapes[i].name))
            sh = &s_shapes[i];
    sw_dtype_t target;
    if (!sh || sw_dtype_from_name(argv[optind + 1], &target) != 0 || target == SW_DTYPE_Q8_K) {
        fprintf(stderr, "swisd synth: unknown shape '%s' or type '%s'\n", argv[optind], argv[optind + 1]);
        s_usage(stderr);
        return 2;
    }
    const char *out = argv[optind + 2];
    const int32_t n_layer = n_layers_opt > 0 && n_layers_opt < sh->n_layer ? (int32_t) n_layers_opt : sh->n_layer;
    const int32_t hd = sh->head_dim > 0 ? sh->head_dim : sh->n_embd / sh->n_head;
    const int64_t q_dim = (int64_t) sh->n_head * hd, kv_dim = (int64_t) sh->n_head_kv * hd;
    char err[512], key[128], name[96];
    int rc = 1;
    sw_gguf_t *vocab = NULL;
    sw_gguf_writer_t *w = sw_gguf_writer_new();
    uint64_t rng = seed;
    if (!w)
        goto done;
    if (vocab_path) {
        if (!(vocab = sw_gguf_open(vocab_path, err, sizeof err))) {
            fprintf(stderr, "swisd synth: %s: %s\n", vocab_path, err);
            goto done;
        }
        sw_gguf_vtype_t et;
        uint64_t n = 0;
        if (sw_gguf_get_arr_info(vocab, "tokenizer.ggml.tokens", &et, &n) != 0 || n != (uint64_t) sh->n_vocab) {
            fprintf(stderr, "swisd synth: %s: vocabulary has %llu tokens, shape %s needs %d\n", vocab_path,
                    (unsigned long long) n, sh->name, sh->n_vocab);
            goto done;
        }
        if (sw_gguf_writer_copy_kv(w, vocab, "tokenizer.") != 0)
            goto done;
    } else if (s_synth_vocab(w, sh->n_vocab) != 0) {
        fprintf(stderr, "swisd synth: cannot build the vocabulary\n");
        goto done;
    }
    char gname[96];
    snprintf(gname, sizeof gname, "synthetic %s (random weights)", sh->name);
#define AKEY(suffix) (snprintf(key, sizeof key, "%s." suffix, sh->arch), key)
    if (sw_gguf_writer_set_str(w, "general.architecture", sh->arch, strlen(sh->arch)) ||
        sw_gguf_writer_set_str(w, "general.name", gname, strlen(gname)) ||
        sw_gguf_writer_set_u32(w, "general.file_type", sw_quant_file_type(target)) ||
        sw_gguf_writer_set_u32(w, AKEY("context_length"), (uint32_t) sh->n_ctx) ||
        sw_gguf_writer_set_u32(w, AKEY("embedding_length"), (uint32_t) sh->n_embd) ||
        sw_gguf_writer_set_u32(w, AKEY("block_count"), (uint32_t) n_layer) ||
        sw_gguf_writer_set_u32(w, AKEY("feed_forward_length"), (uint32_t) sh->n_ff) ||
        sw_gguf_writer_set_u32(w, AKEY("attention.head_count"), (uint32_t) sh->n_head) ||
        sw_gguf_writer_set_u32(w, AKEY("attention.head_count_kv"), (uint32_t) sh->n_head_kv) ||
        sw_gguf_writer_set_u32(w, AKEY("rope.dimension_count"), (uint32_t) hd) ||
        sw_gguf_writer_set_f32(w, AKEY("rope.freq_base"), sh->rope_theta) ||
        sw_gguf_writer_set_f32(w, AKEY("attention.layer_norm_rms_epsilon"), sh->rms_eps) ||
        (sh->head_dim > 0 && (sw_gguf_writer_set_u32(w, AKEY("attention.key_length"), (uint32_t) hd) ||
                              sw_gguf_writer_set_u32(w, AKEY("attention.value_length"), (uint32_t) hd))) ||
        (sh->n_expert > 0 && (sw_gguf_writer_set_u32(w, AKEY("expert_count"), (uint32_t) sh->n_expert) ||
                              sw_gguf_writer_set_u32(w, AKEY("expert_used_count"), (uint32_t) sh->n_expert_used) ||
                              sw_gguf_writer_set_u32(w, AKEY("expert_feed_forward_length"), (uint32_t) sh->n_ff_exp))) ||
        (sh->n_swa > 0 && sw_gguf_writer_set_u32(w, AKEY("attention.sliding_window"), (uint32_t) sh->n_swa)) ||
        (sh->attn_softcap > 0 && sw_gguf_writer_set_f32(w, AKEY("attn_logit_softcapping"), sh->attn_softcap)) ||
        (sh->final_softcap > 0 && sw_gguf_writer_set_f32(w, AKEY("final_logit_softcapping"), sh->final_softcap)) ||
        (sh->rope_theta_swa > 0 && sw_gguf_writer_set_f32(w, AKEY("rope.freq_base_swa"), sh->rope_theta_swa)) ||
        (sh->rope_linear > 0 && (sw_gguf_writer_set_str(w, AKEY("rope.scaling.type"), "linear", 6) ||
                                 sw_gguf_writer_set_f32(w, AKEY("rope.scaling.factor"), sh->rope_linear))))
        goto done;
#undef AKEY
    const bool qk_norm = !strcmp(sh->arch, "qwen3") || !strcmp(sh->arch, "qwen3moe") || !strcmp(sh->arch, "gemma3");
    const bool gemma = !strcmp(sh->arch, "gemma2") || !strcmp(sh->arch, "gemma3");
    const bool fused = !strcmp(sh->arch, "phi3");
    const float std = 0.02f;
    if (s_add(w, "token_embd.weight", target, sh->n_embd, sh->n_vocab, std, 0, &rng) ||
        s_add(w, "output_norm.weight", target, sh->n_embd, 0, 0, 1.0f, &rng) ||
        (!sh->tied && s_add(w, "output.weight", target, sh->n_embd, sh->n_vocab, std, 0, &rng)))
        goto done;
    for (int32_t il = 0; il < n_layer; il++) {
#define N(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, (int) il), name)
        /* tensors in the order (and so the random draws) of earlier versions */
        if (s_add(w, N("attn_norm.weight"), target, sh->n_embd, 0, 0, 1.0f, &rng))
            goto done;
        if (fused ? s_add(w, N("attn_qkv.weight"), target, sh->n_embd, q_dim + 2 * kv_dim, std, 0, &rng)
                  : s_add(w, N("attn_q.weight"), target, sh->n_embd, q_dim, std, 0, &rng) ||
                        s_add(w, N("attn_k.weight"), target, sh->n_embd, kv_dim, std, 0, &rng) ||
                        s_add(w, N("attn_v.weight"), target, sh->n_embd, kv_dim, std, 0, &rng))
            goto done;
        if (s_add(w, N("attn_output.weight"), target, q_dim, sh->n_embd, std, 0, &rng) ||
            s_add(w, N("ffn_norm.weight"), target, sh->n_embd, 0, 0, 1.0f, &rng))
            goto done;
        if (sh->n_expert > 0) {
            /* the router stays f32, as converters write it */
            if (s_add(w, N("ffn_gate_inp.weight"), SW_DTYPE_F32, sh->n_embd, sh->n_expert, std, 0, &rng) ||
                s_add3(w, N("ffn_gate_exps.weight"), target, sh->n_embd, sh->n_ff_exp, sh->n_expert, std, 0, &rng) ||
                s_add3(w, N("ffn_up_exps.weight"), target, sh->n_embd, sh->n_ff_exp, sh->n_expert, std, 0, &rng) ||
                s_add3(w, N("ffn_down_exps.weight"), target, sh->n_ff_exp, sh->n_embd, sh->n_expert, std, 0, &rng))
                goto done;
        } else if (fused) {
            if (s_add(w, N("ffn_up.weight"), target, sh->n_embd, 2 * (int64_t) sh->n_ff, std, 0, &rng) ||
                s_add(w, N("ffn_down.weight"), target, sh->n_ff, sh->n_embd, std, 0, &rng))
                goto done;
        } else if (s_add(w, N("ffn_gate.weight"), target, sh->n_embd, sh->n_ff, std, 0, &rng) ||
                   s_add(w, N("ffn_up.weight"), target, sh->n_embd, sh->n_ff, std, 0, &rng) ||
                   s_add(w, N("ffn_down.weight"), target, sh->n_ff, sh->n_embd, std, 0, &rng)) {
            goto done;
        }
        if (qk_norm && (s_add(w, N("attn_q_norm.weight"), target, hd, 0, 0, 1.0f, &rng) ||
                        s_add(w, N("attn_k_norm.weight"), target, hd, 0, 0, 1.0f, &rng)))
            goto done;
        if (gemma && (s_add(w, N("post_attention_norm.weight"), target, sh->n_embd, 0, 0, 1.0f, &rng) ||
                      s_add(w, N("post_ffw_norm.weight"), target, sh->n_embd, 0, 0, 1.0f, &rng)))
            goto done;
        if (!strcmp(sh->arch, "qwen2") &&
            (s_add(w, N("attn_q.bias"), target, q_dim, 0, std, 0, &rng) ||
             s_add(w, N("attn_k.bias"), target, kv_dim, 0, std, 0, &rng) ||
             s_add(w, N("attn_v.bias"), target, kv_dim, 0, std, 0, &rng)))
            goto done;
#undef N
    }
    if (sw_gguf_writer_write(w, out, err, sizeof err) != 0) {
        fprintf(stderr, "swisd synth: %s: %s\n", out, err);
        goto done;
    }
    fprintf(stderr, "swisd synth: wrote %s (%s, %d layers, %s, seed %llu)\n", out, sh->name, (int) n_layer,
            sw_dtype_name(target), (unsigned long long) seed);
    rc = 0;
done:
    sw_gguf_writer_destroy(&w);
    sw_gguf_destroy(&vocab);
    return rc;
}
