/*  test_quant.c: the quantization policy selftest (core/sw_quant.h).
 *
 *  Which type a tensor gets: 1-D tensors (norms, biases) stay F32 whatever
 *  the target; matrices whose rows hold a whole number of the target's blocks
 *  get the target (q8_0/q4_0: 32, q4_K/q6_K: 256, f16/bf16: 1); odd widths,
 *  empty rows and unknown targets stay F32. The file_type numbers are
 *  llama.cpp's LLAMA_FTYPE values. sw_quant_rows lays rows back to back, each
 *  equal to sw_quantize_row's encoding of that row alone, and decodes to
 *  within half a q8_0 step (plus the f16 scale's rounding) of the input; a
 *  width with a partial block fails.
 *
 *  The K_M recipes: hand-picked cases (which blocks get more bits, tied
 *  embeddings, the router, fallbacks for narrow rows), and, with
 *  $SWISD_TEST_DATA/refs/families, every tensor of every Q4_K_M / Q5_K_M /
 *  Q8_0 file there (made by the reference engine's quantizer, README.md
 *  there) must get from the recipe the type it has in that file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_gguf.h"
#include "sw_quant.h"
#include "sw_test.h"
#include "sw_test_data.h"

static void s_policy(void)
{
    /* norms and biases: 1-D, F32 whatever the target */
    CHECK(sw_quant_type_for(1, 64, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(1, 256, SW_DTYPE_Q4_K) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(1, 64, SW_DTYPE_F16) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(0, 64, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    /* matrices with whole blocks per row get the target */
    CHECK(sw_quant_type_for(2, 64, SW_DTYPE_Q8_0) == SW_DTYPE_Q8_0);
    CHECK(sw_quant_type_for(2, 288, SW_DTYPE_Q4_0) == SW_DTYPE_Q4_0);
    CHECK(sw_quant_type_for(3, 32, SW_DTYPE_Q8_0) == SW_DTYPE_Q8_0);
    CHECK(sw_quant_type_for(2, 512, SW_DTYPE_Q4_K) == SW_DTYPE_Q4_K);
    CHECK(sw_quant_type_for(2, 256, SW_DTYPE_Q6_K) == SW_DTYPE_Q6_K);
    CHECK(sw_quant_type_for(2, 65, SW_DTYPE_F16) == SW_DTYPE_F16);
    CHECK(sw_quant_type_for(2, 7, SW_DTYPE_BF16) == SW_DTYPE_BF16);
    /* odd widths: a partial block cannot be encoded */
    CHECK(sw_quant_type_for(2, 65, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 48, SW_DTYPE_Q4_0) == SW_DTYPE_F32);
    /* stories260K's width: 9 blocks of 32, not a whole block of 256 */
    CHECK(sw_quant_type_for(2, 288, SW_DTYPE_Q4_K) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 128, SW_DTYPE_Q6_K) == SW_DTYPE_F32);
    /* nonsense stays F32 instead of dividing by a zero block size */
    CHECK(sw_quant_type_for(2, 0, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, -32, SW_DTYPE_Q8_0) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 64, (sw_dtype_t) 99) == SW_DTYPE_F32);
    CHECK(sw_quant_type_for(2, 64, SW_DTYPE_F32) == SW_DTYPE_F32);
}

static void s_file_type(void)
{
    CHECK(sw_quant_file_type(SW_DTYPE_F32) == 0);
    CHECK(sw_quant_file_type(SW_DTYPE_F16) == 1);
    CHECK(sw_quant_file_type(SW_DTYPE_Q4_0) == 2);
    CHECK(sw_quant_file_type(SW_DTYPE_Q8_0) == 7);
    CHECK(sw_quant_file_type(SW_DTYPE_Q4_K) == 15);
    CHECK(sw_quant_file_type(SW_DTYPE_Q6_K) == 18);
    CHECK(sw_quant_file_type(SW_DTYPE_BF16) == 32);
    CHECK(sw_quant_file_type((sw_dtype_t) 99) == 0);
}

static void s_rows(void)
{
    enum { NE0 = 64, ROWS = 3 };
    float src[ROWS * NE0], back[NE0];
    for (int i = 0; i < ROWS * NE0; i++)
        src[i] = sinf(0.37f * (float) i) * (float) (1 + i % 5); /* varied scales per block */
    const size_t row = sw_dtype_row_size(SW_DTYPE_Q8_0, NE0);
    CHECK(row == 2 * sizeof(sw_block_q8_0));
    unsigned char *all = calloc(ROWS, row), *one = calloc(1, row);
    CHECK(all && one);
    if (!all || !one) {
        free(all);
        free(one);
        return;
    }
    CHECK(sw_quant_rows(SW_DTYPE_Q8_0, src, all, NE0, ROWS) == 0);
    for (int r = 0; r < ROWS; r++) {
        CHECK(sw_quantize_row(SW_DTYPE_Q8_0, src + r * NE0, one, NE0) == 0);
        CHECK_MSG(memcmp(all + (size_t) r * row, one, row) == 0, "row %d is not where it belongs", r);
        CHECK(sw_dequantize_row(SW_DTYPE_Q8_0, all + (size_t) r * row, back, NE0) == 0);
        for (int b = 0; b < NE0 / SW_QK8_0; b++) {
            float amax = 0;
            for (int i = 0; i < SW_QK8_0; i++)
                amax = fmaxf(amax, fabsf(src[r * NE0 + b * SW_QK8_0 + i]));
            /* half a step, plus the scale's rounding to f16 (relative 2^-11) times the largest code, 127 */
            const float half_step = amax / 127.0f / 2.0f + amax / 2048.0f + 1e-6f;
            for (int i = 0; i < SW_QK8_0; i++) {
                const int k = b * SW_QK8_0 + i;
                CHECK_MSG(fabsf(back[k] - src[r * NE0 + k]) <= half_step, "row %d elem %d: %g vs %g", r, k,
                          back[k], src[r * NE0 + k]);
            }
        }
    }
    CHECK(sw_quant_rows(SW_DTYPE_Q8_0, src, all, NE0 - 1, 1) == -1); /* partial block */
    CHECK(sw_quant_rows((sw_dtype_t) 99, src, all, NE0, 1) == -1);
    CHECK(sw_quant_rows(SW_DTYPE_Q8_0, src, all, NE0, 0) == 0);    /* nothing to do */
    free(all);
    free(one);
}

static void s_recipes(void)
{
    sw_quant_recipe_t r;
    CHECK(sw_quant_recipe_parse("Q4_K_M", &r) == 0 && r.k_m && r.base == SW_DTYPE_Q4_K);
    CHECK(sw_quant_recipe_file_type(&r) == 15);
    /* 32 blocks: more bits for 0..3, 28..31 and 4 + 3k + 2 */
    CHECK(sw_quant_recipe_type(&r, "blk.0.attn_v.weight", 2, 4096, 32, false) == SW_DTYPE_Q6_K);
    CHECK(sw_quant_recipe_type(&r, "blk.4.attn_v.weight", 2, 4096, 32, false) == SW_DTYPE_Q4_K);
    CHECK(sw_quant_recipe_type(&r, "blk.6.ffn_down.weight", 2, 4096, 32, false) == SW_DTYPE_Q6_K);
    CHECK(sw_quant_recipe_type(&r, "blk.7.ffn_down.weight", 2, 4096, 32, false) == SW_DTYPE_Q4_K);
    CHECK(sw_quant_recipe_type(&r, "blk.28.ffn_down_exps.weight", 3, 4096, 32, false) == SW_DTYPE_Q6_K);
    CHECK(sw_quant_recipe_type(&r, "blk.6.attn_q.weight", 2, 4096, 32, false) == SW_DTYPE_Q4_K);
    CHECK(sw_quant_recipe_type(&r, "blk.6.attn_norm.weight", 1, 4096, 32, false) == SW_DTYPE_F32);
    CHECK(sw_quant_recipe_type(&r, "blk.6.ffn_gate_inp.weight", 2, 4096, 32, false) == SW_DTYPE_F32);
    CHECK(sw_quant_recipe_type(&r, "output.weight", 2, 4096, 32, false) == SW_DTYPE_Q6_K);
    CHECK(sw_quant_recipe_type(&r, "token_embd.weight", 2, 4096, 32, false) == SW_DTYPE_Q4_K);
    CHECK(sw_quant_recipe_type(&r, "token_embd.weight", 2, 4096, 32, true) == SW_DTYPE_Q6_K);
    /* narrow rows fall back: Q4_K -> Q5_0, Q6_K -> Q8_0, then F32 */
    CHECK(sw_quant_recipe_type(&r, "blk.4.attn_q.weight", 2, 64, 5, false) == SW_DTYPE_Q5_0);
    CHECK(sw_quant_recipe_type(&r, "output.weight", 2, 64, 5, false) == SW_DTYPE_Q8_0);
    CHECK(sw_quant_recipe_type(&r, "blk.4.ffn_down.weight", 2, 172, 5, false) == SW_DTYPE_F32);
    CHECK(sw_quant_recipe_parse("q5_k_m", &r) == 0 && r.base == SW_DTYPE_Q5_K);
    CHECK(sw_quant_recipe_type(&r, "blk.1.attn_k.weight", 2, 64, 2, false) == SW_DTYPE_Q5_1);
    CHECK(sw_quant_recipe_file_type(&r) == 17);
    CHECK(sw_quant_recipe_parse("q6_K", &r) == 0 && !r.k_m && sw_quant_recipe_file_type(&r) == 18);
    CHECK(sw_quant_recipe_type(&r, "blk.1.attn_k.weight", 2, 256, 2, false) == SW_DTYPE_Q6_K);
    CHECK(sw_quant_recipe_parse("q8_K", &r) == -1);
    CHECK(sw_quant_recipe_parse("q4_K_S", &r) == -1);
    CHECK(sw_quant_recipe_parse(NULL, &r) == -1);
    CHECK(sw_quant_recipe_type(NULL, "output.weight", 2, 256, 2, false) == SW_DTYPE_F32);
    CHECK(sw_quant_recipe_parse("q6_K", &r) == 0);
    CHECK(sw_quant_recipe_type(&r, "blk.x.attn_k.weight", 2, 256, 2, false) == SW_DTYPE_Q6_K);
}

/*  Every tensor of the reference quantizer's files gets its type. */
static void s_recipes_refs(void)
{
    char readme[1024];
    int have = sw_test_data_path("refs/families/README.md", "the K_M policy against the reference quantizer", readme,
                                 sizeof readme);
    if (have < 0)
        CHECK_MSG(0, "reference folder missing under CI");
    if (have != 0)
        return;
    *strrchr(readme, '/') = '\0';
    const char *fams[] = {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "mixtral", "qwen3moe"};
    const char *recs[] = {"Q4_K_M", "Q5_K_M", "Q8_0"};
    int files = 0;
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        for (size_t k = 0; k < sizeof recs / sizeof recs[0]; k++) {
            char path[1200], err[256], key[96], arch[64];
            snprintf(path, sizeof path, "%s/%s-%s.gguf", readme, fams[f], recs[k]);
            sw_gguf_t *g = sw_gguf_open(path, err, sizeof err);
            CHECK_MSG(g != NULL, "%s: %s", path, err);
            if (!g)
                continue;
            sw_quant_recipe_t r;
            uint32_t n_layer = 0;
            CHECK(sw_quant_recipe_parse(recs[k], &r) == 0);
            CHECK(sw_gguf_get_str_buf(g, "general.architecture", arch, sizeof arch) == 0);
            snprintf(key, sizeof key, "%s.block_count", arch);
            CHECK(sw_gguf_get_u32(g, key, &n_layer) == 0);
            const bool tied = sw_gguf_find_tensor(g, "output.weight") == NULL;
            for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
                const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
                if (!strcmp(t->name, "rope_freqs.weight"))
                    continue; /* F32 data, not a matrix */
                sw_dtype_t want = t->type;
                sw_dtype_t got = sw_quant_recipe_type(&r, t->name, t->n_dims, t->ne[0], (int32_t) n_layer, tied);
                CHECK_MSG(got == want, "%s-%s %s: recipe gives %s, the file has %s", fams[f], recs[k], t->name,
                          sw_dtype_name(got), sw_dtype_name(want));
            }
            files++;
            sw_gguf_destroy(&g);
        }
    }
    printf("K_M / Q8_0 policy matches the reference quantizer on %d files\n", files);
}

/*  Weighted error of one encoded row against x under imp. */
static double s_werr(sw_dtype_t type, const void *q, const float *x, const float *imp, int64_t n)
{
    float *y = malloc(sizeof(float) * (size_t) n);
    double e = 0;
    if (y && sw_dequantize_row(type, q, y, n) == 0)
        for (int64_t i = 0; i < n; i++)
            e += (imp ? imp[i] : 1.0) * ((double) x[i] - y[i]) * ((double) x[i] - y[i]);
    else
        e = INFINITY;
    free(y);
    return e;
}

/*  sw_quant_rows_weighted: never worse than the plain rounding on the
 *  weighted error (beyond the f16 rounding of the refitted scales), clearly
 *  better with uneven importance, and the same bytes as sw_quant_rows for
 *  the types without a block scale. */
static void s_weighted(void)
{
    const sw_dtype_t types[] = {SW_DTYPE_Q8_0, SW_DTYPE_Q4_0, SW_DTYPE_Q4_1, SW_DTYPE_Q5_0, SW_DTYPE_Q5_1,
                                SW_DTYPE_IQ4_NL, SW_DTYPE_Q2_K, SW_DTYPE_Q3_K, SW_DTYPE_Q4_K, SW_DTYPE_Q5_K,
                                SW_DTYPE_Q6_K, SW_DTYPE_IQ4_XS};
    enum { N = 1024 };
    static float x[N], imp[N];
    static unsigned char a[N * 4], b[N * 4];
    unsigned seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = ((float) (seed >> 8) / 16777216.0f - 0.5f) * (1 + (i % 7 == 0) * 3);
        imp[i] = (i * 37) % 10 == 0 ? 50.0f : 1.0f; /* every tenth column or so matters 50x */
    }
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        CHECK(sw_quant_rows(types[t], x, a, N, 1) == 0);
        CHECK(sw_quant_rows_weighted(types[t], x, b, N, 1, imp) == 0);
        const double plain = s_werr(types[t], a, x, imp, N), weighted = s_werr(types[t], b, x, imp, N);
        printf("%-7s weighted error with importance: plain %.4g, weighted %.4g (%.0f%%)\n", sw_dtype_name(types[t]),
               plain, weighted, 100.0 * weighted / plain);
        CHECK_MSG(weighted <= plain * 0.99, "%s: weighted rounding gains under 1%% (%g vs %g)", sw_dtype_name(types[t]),
                  weighted, plain);
        CHECK(sw_quant_rows_weighted(types[t], x, b, N, 1, NULL) == 0);
        CHECK_MSG(s_werr(types[t], b, x, NULL, N) <= s_werr(types[t], a, x, NULL, N) * 1.001,
                  "%s: unit-weight search is worse", sw_dtype_name(types[t]));
    }
    /* hostile importance values (a file's): NaN, negative, Inf, an all-zero
     * block: still a sane encoding, the all-zero block as with weight 1 */
    static float bad[N];
    for (int i = 0; i < N; i++)
        bad[i] = i < 256 ? 0.0f : (i % 3 == 0 ? NAN : i % 3 == 1 ? -5.0f : INFINITY);
    bad[300] = 2.0f;
    CHECK(sw_quant_rows_weighted(SW_DTYPE_Q4_K, x, b, N, 1, bad) == 0);
    CHECK(sw_quant_rows_weighted(SW_DTYPE_Q4_K, x, a, N, 1, NULL) == 0);
    CHECK_MSG(memcmp(a, b, sizeof(sw_block_q4_K)) == 0, "an all-zero importance block is not weighted 1");
    CHECK(isfinite(s_werr(SW_DTYPE_Q4_K, b, x, NULL, N)));
    CHECK(sw_quantize_row_weighted(SW_DTYPE_Q4_K, x, b, 256, bad) == -1); /* raw weights must be > 0 */
    CHECK(sw_quantize_row_weighted(SW_DTYPE_Q4_K, x, b, 256, NULL) == 0);
    CHECK(sw_quant_rows_weighted(SW_DTYPE_F16, x, b, N, 1, imp) == 0);
    CHECK(sw_quant_rows(SW_DTYPE_F16, x, a, N, 1) == 0 && memcmp(a, b, 2 * N) == 0);
    CHECK(sw_quant_rows_weighted(SW_DTYPE_Q4_K, x, b, N - 32, 1, imp) == -1); /* partial block */
}

int main(void)
{
    s_policy();
    s_weighted();
    s_recipes();
    s_recipes_refs();
    s_file_type();
    s_rows();
    return sw_test_report("quant");
}
