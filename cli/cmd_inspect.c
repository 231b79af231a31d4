/*  cmd_inspect.c: `swisd inspect MODEL.gguf [--all]`: prints the header,
 *  every metadata pair (arrays: element type, count and the first few
 *  elements, or all with --all), a table of tensors and byte totals per type.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sw_dtype.h"
#include "sw_gguf.h"
#include "swisd_cli.h"

#define S_ARRAY_PREVIEW 8     /* array elements shown without --all */
#define S_STRING_PREVIEW 120  /* string bytes shown without --all */

static void s_usage(FILE *out)
{
    fprintf(out, "usage: swisd inspect MODEL.gguf [--all]\n"
                 "  Prints the GGUF header, metadata and tensor table.\n"
                 "  --all   print every array element and whole strings\n");
}

static const char *s_vtype_name(sw_gguf_vtype_t t)
{
    static const char *names[] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                   "string", "array", "u64", "i64", "f64" };
    return (unsigned) t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/*  Prints string bytes quoted, escaping non-printable bytes. */
static void s_print_str(const char *s, size_t len, bool all)
{
    size_t n = (!all && len > S_STRING_PREVIEW) ? S_STRING_PREVIEW : len;
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c); /* UTF-8 bytes pass through */
    }
    putchar('"');
    if (n < len)
        printf("...(%zu bytes)", len);
}

/*  Prints one numeric element of type t at p (little-endian, maybe unaligned). */
static void s_print_num(sw_gguf_vtype_t t, const unsigned char *p)
{
    uint64_t u = 0;
    size_t n = (t == SW_GGUF_U8 || t == SW_GGUF_I8 || t == SW_GGUF_BOOL) ? 1
             : (t == SW_GGUF_U16 || t == SW_GGUF_I16) ? 2
             : (t == SW_GGUF_U32 || t == SW_GGUF_I32 || t == SW_GGUF_F32) ? 4 : 8;
    for (size_t i = 0; i < n; i++)
        u |= (uint64_t) p[i] << (8 * i);
    switch (t) {
    case SW_GGUF_U8: case SW_GGUF_U16: case SW_GGUF_U32: case SW_GGUF_U64:
        printf("%" PRIu64, u);
        break;
    case SW_GGUF_I8: printf("%d", (int8_t) u); break;
    case SW_GGUF_I16: printf("%d", (int16_t) u); break;
    case SW_GGUF_I32: printf("%" PRId32, (int32_t) u); break;
    case SW_GGUF_I64: printf("%" PRId64, (int64_t) u); break;
    case SW_GGUF_BOOL: fputs(u ? "true" : "false", stdout); break;
    case SW_GGUF_F32: {
        uint32_t b = (uint32_t) u;
        float f;
        memcpy(&f, &b, 4);
        printf("%.9g", f);
        break;
    }
    case SW_GGUF_F64: {
        double d;
        memcpy(&d, &u, 8);
        printf("%.17g", d);
        break;
    }
    default: fputs("?", stdout); break;
    }
}

static size_t s_num_size(sw_gguf_vtype_t t)
{
    switch (t) {
    case SW_GGUF_U8: case SW_GGUF_I8: case SW_GGUF_BOOL: return 1;
    case SW_GGUF_U16: case SW_GGUF_I16: return 2;
    case SW_GGUF_U32: case SW_GGUF_I32: case SW_GGUF_F32: return 4;
    case SW_GGUF_U64: case SW_GGUF_I64: case SW_GGUF_F64: return 8;
    default: return 0;
    }
}

/*  Scalar value of a key: the getters only expose some types, so scalars are
 *  printed from a one-element view built with the public API. */
static void s_print_scalar(const sw_gguf_t *g, const char *key, sw_gguf_vtype_t t)
{
    int64_t i64;
    float f;
    bool b;
    switch (t) {
    case SW_GGUF_BOOL:
        if (sw_gguf_get_bool(g, key, &b) == 0)
            fputs(b ? "true" : "false", stdout);
        return;
    case SW_GGUF_F32:
    case SW_GGUF_F64:
        if (sw_gguf_get_f32(g, key, &f) == 0)
            printf("%.9g", f);
        return;
    case SW_GGUF_U64: {
        uint32_t u32;
        if (sw_gguf_get_i64(g, key, &i64) == 0)
            printf("%" PRId64, i64);
        else if (sw_gguf_get_u32(g, key, &u32) == 0)
            printf("%" PRIu32, u32);
        else
            fputs("(> 2^63)", stdout);
        return;
    }
    default:
        if (sw_gguf_get_i64(g, key, &i64) == 0)
            printf("%" PRId64, i64);
        else
            fputs("?", stdout);
        return;
    }
}

static void s_print_kv(const sw_gguf_t *g, int64_t i, bool all)
{
    const char *key = sw_gguf_key(g, i);
    sw_gguf_vtype_t t = sw_gguf_kv_type(g, i);
    if (t == SW_GGUF_ARRAY) {
        sw_gguf_vtype_t et;
        uint64_t n;
        if (sw_gguf_get_arr_info(g, key, &et, &n) != 0)
            return;
        printf("  %-40s array[%s] n=%" PRIu64 " [", key, s_vtype_name(et), n);
        uint64_t show = (!all && n > S_ARRAY_PREVIEW) ? S_ARRAY_PREVIEW : n;
        const unsigned char *data = sw_gguf_get_arr_data(g, key);
        size_t es = s_num_size(et);
        for (uint64_t j = 0; j < show; j++) {
            if (j)
                fputs(", ", stdout);
            if (et == SW_GGUF_STRING) {
                const char *s;
                size_t len;
                if (sw_gguf_get_arr_str(g, key, j, &s, &len) == 0)
                    s_print_str(s, len, all);
            } else if (data && es) {
                s_print_num(et, data + j * es);
            }
        }
        if (show < n)
            printf(", ... %" PRIu64 " more", n - show);
        puts("]");
        return;
    }
    printf("  %-40s %-6s ", key, s_vtype_name(t));
    if (t == SW_GGUF_STRING) {
        const char *s;
        size_t len;
        if (sw_gguf_get_str(g, key, &s, &len) == 0)
            s_print_str(s, len, all);
    } else {
        s_print_scalar(g, key, t);
    }
    putchar('\n');
}

int swisd_cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        { "all", no_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool all = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
        switch (c) {
        case 'a': all = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    char err[512];
    sw_gguf_t *g = sw_gguf_open(path, err, sizeof err);
    if (!g) {
        fprintf(stderr, "swisd inspect: %s: %s\n", path, err);
        return 1;
    }

    printf("file:       %s\n", path);
    printf("version:    %u\n", sw_gguf_version(g));
    printf("alignment:  %u\n", sw_gguf_alignment(g));
    printf("file size:  %zu bytes\n", sw_gguf_file_size(g));
    printf("metadata:   %" PRId64 " keys\n", sw_gguf_n_kv(g));
    for (int64_t i = 0; i < sw_gguf_n_kv(g); i++)
        s_print_kv(g, i, all);

    int64_t nt = sw_gguf_n_tensors(g);
    printf("tensors:    %" PRId64 "\n", nt);
    if (nt > 0)
        printf("  %-5s %-36s %-5s %-28s %12s %12s\n", "#", "name", "type", "shape", "bytes", "offset");
    /* totals per type, indexed by the ggml type id (known ids are < 64) */
    enum { NTYPES = 64 };
    uint64_t count[NTYPES] = { 0 }, bytes[NTYPES] = { 0 }, elems[NTYPES] = { 0 };
    uint64_t total_bytes = 0, total_elems = 0;
    for (int64_t i = 0; i < nt; i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        char shape[64];
        int n = snprintf(shape, sizeof shape, "[");
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            n += snprintf(shape + n, sizeof shape - (size_t) n, "%s%" PRId64, d ? ", " : "", t->ne[d]);
            if (n >= (int) sizeof shape)
                n = (int) sizeof shape - 1;
        }
        for (int d = 0; d < 4; d++)
            ne *= (uint64_t) t->ne[d];
        snprintf(shape + n, sizeof shape - (size_t) n, "]");
        printf("  %-5" PRId64 " %-36s %-5s %-28s %12zu %12" PRIu64 "\n", i, t->name,
               sw_dtype_name(t->type), shape, t->nbytes, t->offset);
        unsigned ty = (unsigned) t->type < NTYPES ? (unsigned) t->type : NTYPES - 1;
        count[ty]++;
        bytes[ty] += t->nbytes;
        elems[ty] += ne;
        total_bytes += t->nbytes;
        total_elems += ne;
    }
    if (nt > 0) {
        printf("totals by type:\n");
        printf("  %-6s %8s %14s %16s\n", "type", "tensors", "elements", "bytes");
        for (unsigned ty = 0; ty < NTYPES; ty++) {
            if (!count[ty])
                continue;
            printf("  %-6s %8" PRIu64 " %14" PRIu64 " %16" PRIu64 "\n", sw_dtype_name((sw_dtype_t) ty),
                   count[ty], elems[ty], bytes[ty]);
        }
        printf("  %-6s %8" PRId64 " %14" PRIu64 " %16" PRIu64 "\n", "all", nt, total_elems, total_bytes);
    }
    sw_gguf_destroy(&g);
    return 0;
}
