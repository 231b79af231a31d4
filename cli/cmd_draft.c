/*  cmd_draft.c: `swisd draft IN.gguf OUT.gguf [--layers K] [--type TYPE]`:
 *  a draft model for speculative decoding made from the target itself, so it
 *  shares the vocabulary by construction: the first K blocks (early exit)
 *  with the embeddings, final norm and output head, and/or every matrix
 *  re-encoded as TYPE (e.g. a q4_0 copy). Metadata is copied, with
 *  {arch}.block_count set to K.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_dtype.h"
#include "sw_gguf.h"
#include "sw_opt.h"
#include "sw_quant.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd draft IN.gguf OUT.gguf [--layers K] [--type TYPE]\n"
                 "  --layers K   keep the first K blocks (default: all)\n"
                 "  --type TYPE  re-encode matrices as q8_0, q4_0, q4_K, q6_K, f16, bf16 or f32 (default: keep)\n");
}

int swisd_cmd_draft(int argc, char **argv)
{
    int64_t keep = 0;
    const char *type_name = NULL;
    static const struct option opts[] = {
        {"layers", required_argument, 0, 'l'}, {"type", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': if (sw_opt_i64("--layers", optarg, 1, 100000, &keep)) return 2; break;
        case 't': type_name = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        s_usage(stderr);
        return 2;
    }
    sw_dtype_t target = SW_DTYPE_F32;
    if (type_name && (sw_dtype_from_name(type_name, &target) != 0 || target == SW_DTYPE_Q8_K)) {
        fprintf(stderr, "swisd draft: unknown type '%s'\n", type_name);
        return 2;
    }
    const char *in_path = argv[optind], *out_path = argv[optind + 1];
    char err[512], arch[32], key[96];
    sw_gguf_t *in = sw_gguf_open(in_path, err, sizeof err);
    if (!in) {
        fprintf(stderr, "swisd draft: %s: %s\n", in_path, err);
        return 1;
    }
    uint32_t n_layer = 0;
    int rc = 1;
    sw_gguf_writer_t *w = NULL;
    float *f32 = NULL;
    void *q = NULL;
    if (sw_gguf_get_str_buf(in, "general.architecture", arch, sizeof arch) != 0 ||
        (snprintf(key, sizeof key, "%s.block_count", arch), sw_gguf_get_u32(in, key, &n_layer)) != 0) {
        fprintf(stderr, "swisd draft: %s: no architecture or block count\n", in_path);
        goto done;
    }
    if (keep == 0 || keep > n_layer)
        keep = n_layer;
    if (!(w = sw_gguf_writer_new()) || sw_gguf_writer_copy_kv(w, in, "") != 0 ||
        sw_gguf_writer_set_u32(w, key, (uint32_t) keep) != 0 ||
        (type_name && sw_gguf_writer_set_u32(w, "general.file_type", sw_quant_file_type(target)) != 0))
        goto done;
    for (int64_t i = 0; i < sw_gguf_n_tensors(in); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(in, i);
        int blk = -1;
        if (sscanf(t->name, "blk.%d.", &blk) == 1 && blk >= keep)
            continue;
        const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        const sw_dtype_t type = type_name ? sw_quant_type_for(t->n_dims, t->ne[0], target) : t->type;
        if (type == t->type) {
            if (sw_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) != 0)
                goto done;
            continue;
        }
        free(f32);
        free(q);
        f32 = malloc(sizeof(float) * (size_t) (t->ne[0] * rows));
        q = malloc(sw_dtype_row_size(type, t->ne[0]) * (size_t) rows);
        if (!f32 || !q)
            goto done;
        const size_t rb = sw_dtype_row_size(t->type, t->ne[0]);
        for (int64_t r = 0; r < rows; r++)
            sw_dequantize_row(t->type, (const uint8_t *) t->data + (size_t) r * rb, f32 + r * t->ne[0], t->ne[0]);
        if (sw_quant_rows(type, f32, q, t->ne[0], rows) != 0 ||
            sw_gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne, q) != 0)
            goto done;
    }
    if (sw_gguf_writer_write(w, out_path, err, sizeof err) != 0) {
        fprintf(stderr, "swisd draft: %s: %s\n", out_path, err);
        goto done;
    }
    fprintf(stderr, "swisd draft: wrote %s (%d of %u blocks, %s)\n", out_path, (int) keep, n_layer,
            type_name ? type_name : "types kept");
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "swisd draft: failed to build the draft\n");
    free(f32);
    free(q);
    sw_gguf_writer_destroy(&w);
    sw_gguf_destroy(&in);
    return rc;
}
