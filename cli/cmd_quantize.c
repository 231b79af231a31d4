/*  cmd_quantize.c: `swisd quantize IN.gguf OUT.gguf TYPE`: re-encodes the
 *  matrices of a model as TYPE: a recipe q4_K_M or q5_K_M (per-tensor mix,
 *  sw_quant.h), or one type for every matrix (q8_0, q6_K, q5_K, q4_K, q3_K,
 *  q2_K, q5_1, q5_0, q4_1, q4_0, iq4_nl, iq4_xs, f16, bf16, f32). Rows that
 *  do not fit a type's blocks fall back as sw_quant.h says; vectors and the
 *  MoE router stay F32. Metadata is copied; general.file_type is set.
 *  --imatrix FILE (from swisd imatrix) or --refine: sw_quant_rows_weighted
 *  with the file's per-column importance (or weight 1) instead of the plain
 *  rounding. Without an importance matrix, matrices are weighted 1
 *  (--refine) or rounded plainly.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_dtype.h"
#include "sw_gguf.h"
#include "sw_pool.h"
#include "sw_quant.h"
#include "swisd_cli.h"

/*  sw_quant_rows_weighted over the pool: each thread its share of rows. */
typedef struct {
    sw_dtype_t type;
    const float *src;   /* (rows, ne0) f32 */
    uint8_t *dst;       /* rows of sw_dtype_row_size(type, ne0) bytes */
    int64_t ne0, rows;
    const float *imp;   /* (ne0) or NULL */
    int rc[64];         /* per thread: 0 or -1 */
} s_wjob_t;

static void s_wjob(void *arg, int ith, int nth)
{
    s_wjob_t *j = arg;
    const int64_t r0 = j->rows * ith / nth, r1 = j->rows * (ith + 1) / nth;
    const size_t row = sw_dtype_row_size(j->type, j->ne0);
    j->rc[ith % 64] |= sw_quant_rows_weighted(j->type, j->src + r0 * j->ne0, j->dst + (size_t) r0 * row, j->ne0,
                                              r1 - r0, j->imp);
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd quantize IN.gguf OUT.gguf TYPE [--imatrix FILE | --refine] [-t THREADS]\n"
                 "                      [--chat-template FILE]\n"
                 "  TYPE: q4_K_M or q5_K_M (K-quants with q6_K for the output matrix and for attn_v and\n"
                 "  ffn_down of some blocks, as common K_M files; docs/models.md), or one type for every\n"
                 "  matrix: q8_0, q6_K, q5_K, q4_K, q3_K, q2_K, q5_1, q5_0, q4_1, q4_0, iq4_nl, iq4_xs,\n"
                 "  f16, bf16, f32. Rows that do not fit a type's blocks (32, or 256 for the K types and\n"
                 "  iq4_xs) fall back (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, else f32); vectors stay f32.\n"
                 "  --imatrix FILE        round each block to minimise the error weighted by FILE's\n"
                 "                        activation statistics (swisd imatrix); matrices it lacks: weight 1\n"
                 "  --refine              the same search with every weight 1\n"
                 "  -t THREADS            threads for that search (default 2)\n"
                 "  --chat-template FILE  set tokenizer.chat_template to FILE's text (a Jinja chat\n"
                 "                        template; the gateway recognizes its format, see docs)\n");
}

int swisd_cmd_quantize(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        s_usage(stdout);
        return 0;
    }
    char *chat_template = NULL;
    const char *imatrix_path = NULL;
    bool refine = false;
    long threads = 2;
    if (argc < 4) {
        s_usage(stderr);
        return 2;
    }
    for (int a = 4; a < argc; a++) {
        if (!strcmp(argv[a], "--imatrix") && a + 1 < argc) {
            imatrix_path = argv[++a];
        } else if (!strcmp(argv[a], "--refine")) {
            refine = true;
        } else if (!strcmp(argv[a], "-t") && a + 1 < argc) {
            threads = strtol(argv[++a], NULL, 10);
            if (threads < 1 || threads > 64) {
                s_usage(stderr);
                free(chat_template);
                return 2;
            }
        } else if (!strcmp(argv[a], "--chat-template") && a + 1 < argc && !chat_template) {
            const char *tp = argv[++a];
            FILE *f = fopen(tp, "rb");
            long n = -1;
            if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) && fseek(f, 0, SEEK_SET) == 0 &&
                (chat_template = calloc(1, (size_t) n + 1)) && fread(chat_template, 1, (size_t) n, f) == (size_t) n) {
                fclose(f);
            } else {
                fprintf(stderr, "swisd quantize: cannot read the chat template %s (or it is over 1 MiB)\n", tp);
                if (f)
                    fclose(f);
                free(chat_template);
                return 1;
            }
        } else {
            s_usage(stderr);
            free(chat_template);
            return 2;
        }
    }
    sw_quant_recipe_t recipe;
    if (sw_quant_recipe_parse(argv[3], &recipe) != 0) {
        free(chat_template);
        fprintf(stderr, "swisd quantize: unknown or unsupported type '%s'\n", argv[3]);
        return 2;
    }
    char err[512];
    sw_gguf_t *in = sw_gguf_open(argv[1], err, sizeof err);
    sw_gguf_t *imx = imatrix_path && in ? sw_gguf_open(imatrix_path, err, sizeof err) : NULL;
    if (!in || (imatrix_path && !imx)) {
        fprintf(stderr, "swisd quantize: %s: %s\n", in ? imatrix_path : argv[1], err);
        sw_gguf_destroy(&in);
        free(chat_template);
        return 1;
    }
    int rc = 1;
    sw_gguf_writer_t *w = sw_gguf_writer_new();
    float *f32 = NULL;
    void *q = NULL;
    size_t bytes_in = 0, bytes_out = 0;
    sw_pool_t *pool = NULL; /* threads for the weighted rounding */
    if (!w || sw_gguf_writer_copy_kv(w, in, "") != 0 ||
        sw_gguf_writer_set_u32(w, "general.file_type", sw_quant_recipe_file_type(&recipe)) != 0 ||
        (chat_template && sw_gguf_writer_set_str(w, "tokenizer.chat_template", chat_template, strlen(chat_template)) != 0)) {
        fprintf(stderr, "swisd quantize: out of memory\n");
        goto done;
    }
    /* block count for the K_M mix: <arch>.block_count */
    char arch[64] = "", key[96];
    uint32_t n_layer = 0;
    if (sw_gguf_get_str_buf(in, "general.architecture", arch, sizeof arch) == 0) {
        snprintf(key, sizeof key, "%s.block_count", arch);
        sw_gguf_get_u32(in, key, &n_layer);
    }
    if (recipe.k_m && (n_layer == 0 || n_layer > (1u << 20))) {
        fprintf(stderr, "swisd quantize: %s: %s needs %s.block_count (missing or %u)\n", argv[1], recipe.name,
                arch[0] ? arch : "<arch>", n_layer);
        goto done;
    }
    const bool tied = sw_gguf_find_tensor(in, "output.weight") == NULL;
    for (int64_t i = 0; i < sw_gguf_n_tensors(in); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(in, i);
        const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        const sw_dtype_t type = sw_quant_recipe_type(&recipe, t->name, t->n_dims, t->ne[0], (int32_t) n_layer, tied);
        const size_t out_bytes = sw_dtype_row_size(type, t->ne[0]) * (size_t) rows;
        free(f32);
        free(q);
        f32 = malloc(sizeof(float) * (size_t) t->ne[0] * (size_t) rows);
        q = malloc(out_bytes);
        if (!f32 || !q) {
            fprintf(stderr, "swisd quantize: out of memory for tensor %s\n", t->name);
            goto done;
        }
        const size_t in_row = sw_dtype_row_size(t->type, t->ne[0]);
        for (int64_t r = 0; r < rows; r++)
            if (sw_dequantize_row(t->type, (const uint8_t *) t->data + (size_t) r * in_row, f32 + r * t->ne[0], t->ne[0])) {
                fprintf(stderr, "swisd quantize: tensor %s: cannot read type %s\n", t->name, sw_dtype_name(t->type));
                goto done;
            }
        /* importance of this matrix's input columns: its imatrix entry */
        const float *imp = NULL;
        const sw_gguf_tensor_t *it = imx ? sw_gguf_find_tensor(imx, t->name) : NULL;
        if (it && (it->type != SW_DTYPE_F32 || it->n_dims != 1 || it->ne[0] != t->ne[0])) {
            fprintf(stderr, "swisd quantize: %s: entry %s is not f32 [%lld]\n", imatrix_path, t->name,
                    (long long) t->ne[0]);
            goto done;
        }
        if (it)
            imp = it->data;
        int enc;
        if (imp || refine) {
            s_wjob_t job = {.type = type, .src = f32, .dst = q, .ne0 = t->ne[0], .rows = rows, .imp = imp};
            if (!pool && !(pool = sw_pool_new((int) threads))) {
                fprintf(stderr, "swisd quantize: cannot start %ld threads\n", threads);
                goto done;
            }
            sw_pool_run(pool, s_wjob, &job);
            enc = 0;
            for (int k = 0; k < 64; k++)
                enc |= job.rc[k];
        } else {
            enc = sw_quant_rows(type, f32, q, t->ne[0], rows);
        }
        if (enc != 0 ||
            sw_gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne, q) != 0) {
            fprintf(stderr, "swisd quantize: tensor %s: cannot encode as %s\n", t->name, sw_dtype_name(type));
            goto done;
        }
        bytes_in += t->nbytes;
        bytes_out += out_bytes;
    }
    if (sw_gguf_writer_write(w, argv[2], err, sizeof err) != 0) {
        fprintf(stderr, "swisd quantize: %s: %s\n", argv[2], err);
        goto done;
    }
    fprintf(stderr, "swisd quantize: %s -> %s (%s): tensor data %.2f MiB -> %.2f MiB\n", argv[1], argv[2],
            recipe.name, bytes_in / 1048576.0, bytes_out / 1048576.0);
    rc = 0;
done:
    free(chat_template);
    free(f32);
    free(q);
    sw_gguf_writer_destroy(&w);
    sw_pool_destroy(&pool);
    sw_gguf_destroy(&imx);
    sw_gguf_destroy(&in);
    return rc;
}
