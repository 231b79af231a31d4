/*  test_gguf.c: GGUF reader and writer.
 *
 *  References are independent of the code under test:
 *   - the repository's models/stories260K.gguf against the facts in
 *     models/README.md and, when $SWISD_TEST_DATA holds it, every tensor's
 *     bytes against the llama2.c stories260K.bin it was made from;
 *   - ggml-vocab-llama-spm.gguf against llama2.c's tokenizer.bin (all 32000
 *     pieces and scores), when $SWISD_TEST_DATA holds them
 *     (tests/data/README.md);
 *   - a byte-level GGUF builder written here (not the writer) for every scalar
 *     type and for targeted corruptions with the expected error keyword;
 *   - truncations and byte flips of the real files (must fail cleanly or
 *     succeed, never crash; run under ASan for memory errors).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_gguf.h"
#include "sw_test.h"

/* ---- helpers ----------------------------------------------------------- */

static uint8_t *s_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t) n : 1);
    if (buf && fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t) n;
    return buf;
}

/*  Reads every kv and tensor through the public API (what a fuzzer does);
 *  returns a checksum so the compiler cannot drop the reads. */
static uint64_t s_touch_all(const sw_gguf_t *g)
{
    uint64_t acc = sw_gguf_version(g) + sw_gguf_alignment(g) + sw_gguf_file_size(g);
    for (int64_t i = 0; i < sw_gguf_n_kv(g); i++) {
        const char *key = sw_gguf_key(g, i);
        acc += strlen(key) + (uint64_t) sw_gguf_kv_type(g, i);
        acc += (uint64_t) (sw_gguf_find_key(g, key) == i);
        uint32_t u;
        int64_t v;
        float f;
        bool b;
        const char *s;
        size_t len;
        char buf[16];
        if (!sw_gguf_get_u32(g, key, &u)) acc += u;
        if (!sw_gguf_get_i64(g, key, &v)) acc += (uint64_t) v;
        if (!sw_gguf_get_f32(g, key, &f)) acc += (uint64_t) (f == f);
        if (!sw_gguf_get_bool(g, key, &b)) acc += b;
        if (!sw_gguf_get_str(g, key, &s, &len) && len) acc += (uint8_t) s[0] + (uint8_t) s[len - 1];
        if (!sw_gguf_get_str_buf(g, key, buf, sizeof buf)) acc += strlen(buf);
        sw_gguf_vtype_t et;
        uint64_t n;
        if (!sw_gguf_get_arr_info(g, key, &et, &n)) {
            const uint8_t *d = sw_gguf_get_arr_data(g, key);
            if (d && n)
                acc += d[0];
            for (uint64_t j = 0; j < n; j++)
                if (!sw_gguf_get_arr_str(g, key, j, &s, &len) && len)
                    acc += (uint8_t) s[0] + (uint8_t) s[len - 1];
        }
    }
    for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        acc += (uint64_t) (sw_gguf_find_tensor(g, t->name) == t);
        const uint8_t *d = t->data;
        acc += d[0] + d[t->nbytes - 1];
    }
    return acc;
}

/*  True when a and b hold the same pairs (same order, types and value bytes,
 *  except the key `skip`) and the same tensors (names, types, shapes, data). */
static bool s_same_content(const sw_gguf_t *a, const sw_gguf_t *b, const char *skip)
{
    if (sw_gguf_n_kv(a) != sw_gguf_n_kv(b) || sw_gguf_n_tensors(a) != sw_gguf_n_tensors(b))
        return false;
    for (int64_t i = 0; i < sw_gguf_n_kv(a); i++) {
        const char *k = sw_gguf_key(a, i);
        if (strcmp(k, sw_gguf_key(b, i)) || sw_gguf_kv_type(a, i) != sw_gguf_kv_type(b, i))
            return false;
        if (!strcmp(k, skip))
            continue;
        int64_t x1 = 0, x2 = 0;
        float f1 = 0, f2 = 0;
        const char *s1 = "", *s2 = "";
        size_t l1 = 0, l2 = 0;
        if (sw_gguf_get_i64(a, k, &x1) != sw_gguf_get_i64(b, k, &x2) || x1 != x2)
            return false;
        if (sw_gguf_get_f32(a, k, &f1) != sw_gguf_get_f32(b, k, &f2) || memcmp(&f1, &f2, 4))
            return false;
        if (sw_gguf_get_str(a, k, &s1, &l1) != sw_gguf_get_str(b, k, &s2, &l2) || l1 != l2 || memcmp(s1, s2, l1))
            return false;
        sw_gguf_vtype_t e1, e2;
        uint64_t n1, n2;
        if (sw_gguf_get_arr_info(a, k, &e1, &n1) == 0) {
            if (sw_gguf_get_arr_info(b, k, &e2, &n2) || e1 != e2 || n1 != n2)
                return false;
            for (uint64_t j = 0; j < n1 && e1 == SW_GGUF_STRING; j++) {
                if (sw_gguf_get_arr_str(a, k, j, &s1, &l1) || sw_gguf_get_arr_str(b, k, j, &s2, &l2)
                    || l1 != l2 || memcmp(s1, s2, l1))
                    return false;
            }
            const void *d1 = sw_gguf_get_arr_data(a, k), *d2 = sw_gguf_get_arr_data(b, k);
            if ((d1 == NULL) != (d2 == NULL))
                return false;
            if (d1 && n1) {
                size_t es = e1 == SW_GGUF_U8 || e1 == SW_GGUF_I8 || e1 == SW_GGUF_BOOL ? 1
                          : e1 == SW_GGUF_U16 || e1 == SW_GGUF_I16 ? 2
                          : e1 == SW_GGUF_U32 || e1 == SW_GGUF_I32 || e1 == SW_GGUF_F32 ? 4 : 8;
                if (memcmp(d1, d2, es * n1))
                    return false;
            }
        }
    }
    for (int64_t i = 0; i < sw_gguf_n_tensors(a); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(a, i), *u = sw_gguf_tensor(b, i);
        if (strcmp(t->name, u->name) || t->type != u->type || t->n_dims != u->n_dims
            || memcmp(t->ne, u->ne, sizeof t->ne) || t->nbytes != u->nbytes || memcmp(t->data, u->data, t->nbytes))
            return false;
    }
    return true;
}

/*  Minimal GGUF byte builder, independent of sw_gguf_writer.c. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void s_u8(s_buf_t *b, uint8_t v) { s_put(b, &v, 1); }
static void s_u16(s_buf_t *b, uint16_t v) { s_put(b, &v, 2); } /* host is little-endian (x86) */
static void s_u32(s_buf_t *b, uint32_t v) { s_put(b, &v, 4); }
static void s_u64(s_buf_t *b, uint64_t v) { s_put(b, &v, 8); }
static void s_str(s_buf_t *b, const char *s) { s_u64(b, strlen(s)); s_put(b, s, strlen(s)); }
static void s_pad(s_buf_t *b, size_t a) { while (b->n % a) s_u8(b, 0); }

/*  Corruption variants of the hand-built file. */
enum {
    V_OK, V_MAGIC, V_V1, V_V9, V_NKV_HUGE, V_NT_HUGE, V_KEYLEN, V_STRLEN, V_NESTED, V_ARR_TYPE,
    V_ARR_COUNT, V_STRARR_COUNT, V_VTYPE, V_BOOL2, V_KEY_NUL, V_KEY_EMPTY, V_DUP_KEY, V_ALIGN_48,
    V_ALIGN_U64, V_NDIMS0, V_NDIMS5, V_NE0, V_NE_OVF, V_TYPE99, V_BLOCK, V_OFF_MISALIGN,
    V_OFF_PAST, V_OFF_OVF, V_DUP_TENSOR, V_TRUNC_DATA, V_COUNT
};

static const struct { int v; const char *keyword; } s_expect[] = {
    { V_MAGIC, "magic" }, { V_V1, "version 1" }, { V_V9, "unknown GGUF version 9" },
    { V_NKV_HUGE, "exceeds" }, { V_NT_HUGE, "cannot fit" }, { V_KEYLEN, "runs past end" },
    { V_STRLEN, "string length" }, { V_NESTED, "nested" }, { V_ARR_TYPE, "element type 13" },
    { V_ARR_COUNT, "array of" }, { V_STRARR_COUNT, "string array" }, { V_VTYPE, "unknown value type 77" },
    { V_BOOL2, "not 0/1" }, { V_KEY_NUL, "NUL" }, { V_KEY_EMPTY, "empty key" },
    { V_DUP_KEY, "duplicate key" }, { V_ALIGN_48, "power of two" }, { V_ALIGN_U64, "expected u32" },
    { V_NDIMS0, "n_dims 0" }, { V_NDIMS5, "n_dims 5" }, { V_NE0, "dimension 1 is 0" },
    { V_NE_OVF, "overflow" }, { V_TYPE99, "unsupported tensor type 99 (unknown)" },
    { V_BLOCK, "multiple of the q8_0 block size" }, { V_OFF_MISALIGN, "not a multiple of the alignment" },
    { V_OFF_PAST, "runs past end of file" }, { V_OFF_OVF, "runs past end of file" },
    { V_DUP_TENSOR, "duplicate tensor" }, { V_TRUNC_DATA, "'w2'" },
};

/*  A file with one kv of every type and two tensors:
 *    w1 f32 [4, 3] (offset 0), w2 q8_0 [64, 2] (offset 64). */
static s_buf_t s_build(int v)
{
    s_buf_t b = { 0 };
    s_put(&b, v == V_MAGIC ? "GGUG" : "GGUF", 4);
    s_u32(&b, v == V_V1 ? 1 : v == V_V9 ? 9 : 3);
    s_u64(&b, v == V_NT_HUGE ? 100000 : 2);                     /* n_tensors */
    int n_kv = 16 + (v == V_DUP_KEY);
    s_u64(&b, v == V_NKV_HUGE ? (1ull << 40) : (uint64_t) n_kv);
    /* kvs */
    s_str(&b, "t.u8"); s_u32(&b, SW_GGUF_U8); s_u8(&b, 200);
    s_str(&b, "t.i8"); s_u32(&b, SW_GGUF_I8); s_u8(&b, (uint8_t) -100);
    s_str(&b, "t.u16"); s_u32(&b, SW_GGUF_U16); s_u16(&b, 60000);
    s_str(&b, "t.i16"); s_u32(&b, SW_GGUF_I16); s_u16(&b, (uint16_t) -30000);
    s_str(&b, "t.u32"); s_u32(&b, SW_GGUF_U32); s_u32(&b, 4000000000u);
    s_str(&b, "t.i32"); s_u32(&b, v == V_VTYPE ? 77 : SW_GGUF_I32); s_u32(&b, (uint32_t) -2000000000);
    float f = 1.5f;
    s_str(&b, "t.f32"); s_u32(&b, SW_GGUF_F32); s_put(&b, &f, 4);
    s_str(&b, "t.bool"); s_u32(&b, SW_GGUF_BOOL); s_u8(&b, v == V_BOOL2 ? 2 : 1);
    if (v == V_KEYLEN) {
        s_u64(&b, 1u << 30); /* key length past end of file */
    } else if (v == V_KEY_NUL) {
        s_u64(&b, 5); s_put(&b, "t.s\0r", 5);
    } else if (v == V_KEY_EMPTY) {
        s_u64(&b, 0);
    } else {
        s_str(&b, "t.str");
    }
    s_u32(&b, SW_GGUF_STRING);
    if (v == V_STRLEN) s_u64(&b, 1ull << 62), s_put(&b, "x", 1);
    else s_str(&b, "héllo");
    s_str(&b, "t.u64"); s_u32(&b, SW_GGUF_U64); s_u64(&b, 18000000000000000000ull);
    s_str(&b, "t.i64"); s_u32(&b, SW_GGUF_I64); s_u64(&b, (uint64_t) -9000000000000000000ll);
    double d = -2.25e300;
    s_str(&b, "t.f64"); s_u32(&b, SW_GGUF_F64); s_put(&b, &d, 8);
    s_str(&b, "t.arr_i16"); s_u32(&b, SW_GGUF_ARRAY);
    s_u32(&b, v == V_NESTED ? SW_GGUF_ARRAY : v == V_ARR_TYPE ? 13 : SW_GGUF_I16);
    s_u64(&b, v == V_ARR_COUNT ? (1ull << 61) : 3);
    s_u16(&b, 1); s_u16(&b, (uint16_t) -2); s_u16(&b, 3);
    s_str(&b, "t.arr_str"); s_u32(&b, SW_GGUF_ARRAY); s_u32(&b, SW_GGUF_STRING);
    s_u64(&b, v == V_STRARR_COUNT ? (1ull << 59) : 3);
    s_str(&b, "a"); s_str(&b, ""); s_str(&b, "ccc");
    s_str(&b, "t.arr_empty"); s_u32(&b, SW_GGUF_ARRAY); s_u32(&b, SW_GGUF_F64); s_u64(&b, 0);
    s_str(&b, "general.alignment");
    if (v == V_ALIGN_U64) s_u32(&b, SW_GGUF_U64), s_u64(&b, 64);
    else s_u32(&b, SW_GGUF_U32), s_u32(&b, v == V_ALIGN_48 ? 48 : 64);
    if (v == V_DUP_KEY)
        s_str(&b, "t.u8"), s_u32(&b, SW_GGUF_U8), s_u8(&b, 1);
    /* tensors */
    s_str(&b, "w1");
    s_u32(&b, v == V_NDIMS0 ? 0 : v == V_NDIMS5 ? 5 : 2);
    s_u64(&b, 4); s_u64(&b, v == V_NE0 ? 0 : v == V_NE_OVF ? (1ull << 62) : 3);
    if (v == V_NDIMS5) s_u64(&b, 1), s_u64(&b, 1), s_u64(&b, 1);
    s_u32(&b, v == V_TYPE99 ? 99 : SW_DTYPE_F32);
    s_u64(&b, 0);
    s_str(&b, v == V_DUP_TENSOR ? "w1" : "w2");
    s_u32(&b, 2); s_u64(&b, v == V_BLOCK ? 48 : 64); s_u64(&b, v == V_NE_OVF ? (1ull << 62) : 2);
    s_u32(&b, SW_DTYPE_Q8_0);
    s_u64(&b, v == V_OFF_MISALIGN ? 65 : v == V_OFF_PAST ? 64 * 100 : v == V_OFF_OVF ? UINT64_MAX - 63 : 64);
    s_pad(&b, 64);
    for (int i = 0; i < 12; i++) {
        float x = (float) i * 0.25f;
        s_put(&b, &x, 4);
    }
    s_pad(&b, 64);
    for (int r = 0; r < 2 * 2; r++) { /* 2 rows x 2 blocks of q8_0 */
        s_u16(&b, 0x3c00);
        for (int j = 0; j < 32; j++)
            s_u8(&b, (uint8_t) (r * 32 + j));
    }
    if (v == V_TRUNC_DATA)
        b.n -= 1;
    return b;
}

/* ---- hand-built file: every scalar type, getters, corruption keywords --- */

static void test_handbuilt(void)
{
    s_buf_t b = s_build(V_OK);
    char err[256] = "";
    sw_gguf_t *g = sw_gguf_open_memory(b.p, b.n, err, sizeof err);
    CHECK_MSG(g != NULL, "%s", err);
    if (g) {
        uint32_t u;
        int64_t i64;
        float f;
        bool bo;
        CHECK(sw_gguf_n_kv(g) == 16 && sw_gguf_n_tensors(g) == 2 && sw_gguf_alignment(g) == 64);
        CHECK(sw_gguf_get_u32(g, "t.u8", &u) == 0 && u == 200);
        CHECK(sw_gguf_get_i64(g, "t.i8", &i64) == 0 && i64 == -100);
        CHECK(sw_gguf_get_u32(g, "t.i8", &u) == -1);              /* negative does not fit u32 */
        CHECK(sw_gguf_get_u32(g, "t.u16", &u) == 0 && u == 60000);
        CHECK(sw_gguf_get_i64(g, "t.i16", &i64) == 0 && i64 == -30000);
        CHECK(sw_gguf_get_u32(g, "t.u32", &u) == 0 && u == 4000000000u);
        CHECK(sw_gguf_get_i64(g, "t.i32", &i64) == 0 && i64 == -2000000000);
        CHECK(sw_gguf_get_f32(g, "t.f32", &f) == 0 && f == 1.5f);
        CHECK(sw_gguf_get_f32(g, "t.u32", &f) == -1);             /* no int->float */
        CHECK(sw_gguf_get_bool(g, "t.bool", &bo) == 0 && bo);
        CHECK(sw_gguf_get_u32(g, "t.bool", &u) == 0 && u == 1);
        u = 7;
        CHECK(sw_gguf_get_u32(g, "t.u64", &u) == -1 && u == 7);   /* too big, out untouched */
        CHECK(sw_gguf_get_i64(g, "t.u64", &i64) == -1);           /* > INT64_MAX */
        CHECK(sw_gguf_get_i64(g, "t.i64", &i64) == 0 && i64 == -9000000000000000000ll);
        CHECK(sw_gguf_get_f32(g, "t.f64", &f) == -1);             /* beyond float range */
        CHECK(sw_gguf_get_u32(g, "missing", &u) == -1);
        const char *s;
        size_t len;
        char buf[4];
        CHECK(sw_gguf_get_str(g, "t.str", &s, &len) == 0 && len == 6 && !memcmp(s, "héllo", 6));
        CHECK(sw_gguf_get_str_buf(g, "t.str", buf, sizeof buf) == 0 && !strcmp(buf, "hé"));
        CHECK(sw_gguf_get_str(g, "t.u8", &s, &len) == -1);
        sw_gguf_vtype_t et;
        uint64_t n;
        CHECK(sw_gguf_get_arr_info(g, "t.arr_i16", &et, &n) == 0 && et == SW_GGUF_I16 && n == 3);
        const uint8_t *ad = sw_gguf_get_arr_data(g, "t.arr_i16");
        int16_t e1;
        CHECK(ad != NULL);
        if (ad) {
            memcpy(&e1, ad + 2, 2);
            CHECK(e1 == -2);
        }
        CHECK(sw_gguf_get_arr_data(g, "t.arr_str") == NULL);
        CHECK(sw_gguf_get_arr_str(g, "t.arr_str", 2, &s, &len) == 0 && len == 3 && !memcmp(s, "ccc", 3));
        CHECK(sw_gguf_get_arr_str(g, "t.arr_str", 1, &s, &len) == 0 && len == 0);
        CHECK(sw_gguf_get_arr_str(g, "t.arr_str", 3, &s, &len) == -1);
        CHECK(sw_gguf_get_arr_info(g, "t.arr_empty", &et, &n) == 0 && et == SW_GGUF_F64 && n == 0);
        CHECK(sw_gguf_kv_type(g, sw_gguf_find_key(g, "t.f64")) == SW_GGUF_F64);
        CHECK(sw_gguf_find_key(g, "t.f6") == -1 && sw_gguf_find_key(g, "t.f640") == -1);
        const sw_gguf_tensor_t *w1 = sw_gguf_find_tensor(g, "w1"), *w2 = sw_gguf_find_tensor(g, "w2");
        CHECK(w1 && w2 && sw_gguf_find_tensor(g, "w3") == NULL);
        if (w1 && w2) {
            CHECK(w1->type == SW_DTYPE_F32 && w1->n_dims == 2 && w1->ne[0] == 4 && w1->ne[1] == 3
                  && w1->ne[2] == 1 && w1->ne[3] == 1 && w1->nbytes == 48 && w1->offset == 0);
            CHECK(((const uint8_t *) w1->data - b.p) % 64 == 0);
            float x;
            memcpy(&x, (const uint8_t *) w1->data + 4 * 5, 4);
            CHECK(x == 1.25f);
            CHECK(w2->type == SW_DTYPE_Q8_0 && w2->nbytes == 4 * 34 && w2->offset == 64);
            CHECK((const uint8_t *) w2->data == b.p + b.n - 4 * 34);
            CHECK(((const uint8_t *) w2->data)[2 + 34 * 3 + 31] == 127);
        }
        sw_gguf_destroy(&g);
        CHECK(g == NULL);
    }
    sw_gguf_destroy(&g); /* NULL is fine */
    sw_gguf_destroy(NULL);
    free(b.p);

    for (size_t k = 0; k < sizeof s_expect / sizeof s_expect[0]; k++) {
        s_buf_t c = s_build(s_expect[k].v);
        err[0] = 0;
        g = sw_gguf_open_memory(c.p, c.n, err, sizeof err);
        CHECK_MSG(g == NULL, "variant %d opened", s_expect[k].v);
        CHECK_MSG(strstr(err, s_expect[k].keyword) != NULL, "variant %d: expected '%s' in '%s'",
                  s_expect[k].v, s_expect[k].keyword, err);
        sw_gguf_destroy(&g);
        free(c.p);
    }
    /* the specific message format promised by the header */
    s_buf_t c = s_build(V_OFF_PAST);
    g = sw_gguf_open_memory(c.p, c.n, err, sizeof err);
    CHECK_MSG(g == NULL && strstr(err, "tensor 'w2': data [offset 6400, 136 bytes] runs past end of file"),
              "%s", err);
    free(c.p);
    g = sw_gguf_open_memory(NULL, 0, err, sizeof err);
    CHECK(g == NULL && strstr(err, "magic"));
    g = sw_gguf_open("/nonexistent/x.gguf", err, sizeof err);
    CHECK(g == NULL && strstr(err, "No such file"));
}

/* ---- stories260K ------------------------------------------------------- */

static void test_stories(void)
{
    char path[600], binpath[600], err[256] = "";
    sw_test_src_path("models/stories260K.gguf", path, sizeof path);
    sw_gguf_t *g = sw_gguf_open(path, err, sizeof err);
    CHECK_MSG(g != NULL, "%s: %s", path, err);
    if (!g)
        return;
    CHECK(sw_gguf_version(g) == 3 && sw_gguf_alignment(g) == 32 && sw_gguf_file_size(g) == 1054336);
    uint32_t u;
    float f;
    char arch[32];
    CHECK(sw_gguf_get_str_buf(g, "general.architecture", arch, sizeof arch) == 0 && !strcmp(arch, "llama"));
    CHECK(sw_gguf_get_str_buf(g, "general.name", arch, sizeof arch) == 0 && !strcmp(arch, "stories260K"));
    CHECK(sw_gguf_get_u32(g, "llama.embedding_length", &u) == 0 && u == 64);
    CHECK(sw_gguf_get_u32(g, "llama.block_count", &u) == 0 && u == 5);
    CHECK(sw_gguf_get_u32(g, "llama.attention.head_count", &u) == 0 && u == 8);
    CHECK(sw_gguf_get_u32(g, "llama.attention.head_count_kv", &u) == 0 && u == 4);
    CHECK(sw_gguf_get_u32(g, "llama.feed_forward_length", &u) == 0 && u == 172);
    CHECK(sw_gguf_get_u32(g, "llama.context_length", &u) == 0 && u == 512);
    CHECK(sw_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f) == 0 && f == 1e-5f);
    CHECK(sw_gguf_get_f32(g, "llama.rope.freq_base", &f) == 0 && f == 10000.0f);
    sw_gguf_vtype_t et;
    uint64_t n;
    CHECK(sw_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n) == 0 && et == SW_GGUF_STRING && n == 512);
    CHECK(sw_gguf_n_tensors(g) == 2 + 5 * 9);

    /* every tensor against the llama2.c .bin it was converted from */
    size_t bsize = 0;
    uint8_t *bin = NULL;
    if (sw_test_optional("models/stories260K/stories260K.bin", "the tensor-by-tensor comparison with the llama2.c "
                         "checkpoint", binpath, sizeof binpath)) {
        bin = s_read_file(binpath, &bsize);
        CHECK_MSG(bin != NULL && bsize == 1056540, "%s", binpath);
    }
    if (bin && bsize == 1056540) {
        const int D = 64, H = 172, L = 5, V = 512, KV = 32;
        int32_t hdr[7];
        memcpy(hdr, bin, sizeof hdr);
        CHECK(hdr[0] == D && hdr[1] == H && hdr[2] == L && hdr[3] == 8 && hdr[4] == 4 && hdr[5] == V);
        size_t off = 28;
        struct { const char *name; int64_t ne0, ne1; int per_layer; } order[] = {
            { "token_embd", D, V, 0 }, { "attn_norm", D, 1, 1 }, { "attn_q", D, D, 1 },
            { "attn_k", D, KV, 1 }, { "attn_v", D, KV, 1 }, { "attn_output", D, D, 1 },
            { "ffn_norm", D, 1, 1 }, { "ffn_gate", D, H, 1 }, { "ffn_down", H, D, 1 },
            { "ffn_up", D, H, 1 }, { "output_norm", D, 1, 0 },
        };
        int matched = 0;
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
            size_t bytes = (size_t) (order[k].ne0 * order[k].ne1) * 4;
            for (int l = 0; l < (order[k].per_layer ? L : 1); l++) {
                char name[64];
                if (order[k].per_layer)
                    snprintf(name, sizeof name, "blk.%d.%s.weight", l, order[k].name);
                else
                    snprintf(name, sizeof name, "%s.weight", order[k].name);
                const sw_gguf_tensor_t *t = sw_gguf_find_tensor(g, name);
                CHECK_MSG(t != NULL, "missing %s", name);
                if (!t) {
                    off += bytes;
                    continue;
                }
                CHECK_MSG(t->type == SW_DTYPE_F32 && t->ne[0] == order[k].ne0 && t->ne[1] == order[k].ne1
                          && t->n_dims == (order[k].ne1 > 1 ? 2u : 1u) && t->nbytes == bytes,
                          "%s shape", name);
                CHECK_MSG(t->offset % 32 == 0 && (uintptr_t) t->data % 32 == 0, "%s alignment", name);
                if (t->nbytes == bytes && off + bytes <= bsize && !memcmp(t->data, bin + off, bytes))
                    matched++;
                else
                    CHECK_MSG(0, "%s bytes differ from stories260K.bin", name);
                off += bytes;
            }
        }
        CHECK(matched == 47);
    }
    free(bin);
    CHECK(s_touch_all(g) != 0);
    sw_gguf_destroy(&g);
}

/* ---- Llama-2 vocabulary ------------------------------------------------ */

static void test_vocab(void)
{
    char path[600], binpath[600], err[256] = "";
    static const char what[] = "the 32000-token vocabulary GGUF checks";
    const bool have_gguf = sw_test_optional("models/llama2-tokenizer/ggml-vocab-llama-spm.gguf", what, path,
                                            sizeof path);
    const bool have_bin = sw_test_optional("models/llama2-tokenizer/tokenizer.bin", what, binpath, sizeof binpath);
    if (!have_gguf || !have_bin)
        return;
    uint64_t t0 = sw_now_ns();
    sw_gguf_t *g = sw_gguf_open(path, err, sizeof err);
    uint64_t t1 = sw_now_ns();
    CHECK_MSG(g != NULL, "%s: %s", path, err);
    if (!g)
        return;
    printf("open ggml-vocab-llama-spm.gguf (32000 tokens): %.3f ms\n", (double) (t1 - t0) / 1e6);
    CHECK(sw_gguf_n_kv(g) == 22 && sw_gguf_n_tensors(g) == 0);
    sw_gguf_vtype_t et;
    uint64_t n;
    CHECK(sw_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &n) == 0 && et == SW_GGUF_STRING && n == 32000);
    CHECK(sw_gguf_get_arr_info(g, "tokenizer.ggml.scores", &et, &n) == 0 && et == SW_GGUF_F32 && n == 32000);
    const uint8_t *scores = sw_gguf_get_arr_data(g, "tokenizer.ggml.scores");
    size_t bsize;
    uint8_t *bin = s_read_file(binpath, &bsize);
    CHECK(bin != NULL && scores != NULL);
    if (bin && scores) {
        size_t pos = 4;
        int piece_ok = 0, score_ok = 0;
        for (int i = 0; i < 32000 && pos + 8 <= bsize; i++) {
            float sc, gs;
            int32_t len;
            memcpy(&sc, bin + pos, 4);
            memcpy(&len, bin + pos + 4, 4);
            pos += 8;
            if (len < 0 || (size_t) len > bsize - pos)
                break;
            const char *s;
            size_t slen;
            if (sw_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t) i, &s, &slen) == 0) {
                /* GGUF writes SentencePiece's U+2581 where llama2.c has a space;
                   llama2.c wraps BOS/EOS in newlines */
                char conv[128];
                size_t cn = 0;
                for (size_t j = 0; j < slen && cn < sizeof conv - 2; j++) {
                    if (j + 2 < slen + 0 && (uint8_t) s[j] == 0xe2 && (uint8_t) s[j + 1] == 0x96
                        && (uint8_t) s[j + 2] == 0x81) {
                        conv[cn++] = ' ';
                        j += 2;
                    } else {
                        conv[cn++] = s[j];
                    }
                }
                conv[cn] = 0;
                char ref[128];
                snprintf(ref, sizeof ref, "%.*s", len, (const char *) bin + pos);
                if (i == 1 || i == 2) {
                    char wrapped[64];
                    snprintf(wrapped, sizeof wrapped, "\n%.60s\n", conv);
                    piece_ok += (size_t) len == strlen(wrapped) && !memcmp(wrapped, bin + pos, (size_t) len);
                } else {
                    piece_ok += cn == (size_t) len && !memcmp(conv, bin + pos, (size_t) len);
                }
            }
            memcpy(&gs, scores + 4 * i, 4);
            score_ok += gs == sc;
            pos += (size_t) len;
        }
        CHECK_MSG(piece_ok == 32000, "%d pieces match", piece_ok);
        CHECK_MSG(score_ok == 32000, "%d scores match", score_ok);
        const char *s;
        size_t slen;
        CHECK(sw_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 31999, &s, &slen) == 0);
        CHECK(sw_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 32000, &s, &slen) == -1);
    }
    free(bin);
    sw_gguf_destroy(&g);
}

/* ---- writer round trip ------------------------------------------------- */

static void test_writer(void)
{
    char dir[] = "/tmp/swisd_test_gguf_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], path2[128], err[256] = "";
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    snprintf(path2, sizeof path2, "%s/b.gguf", dir);

    /* source of the scalar types without setters: the hand-built file */
    s_buf_t hb = s_build(V_OK);
    sw_gguf_t *src = sw_gguf_open_memory(hb.p, hb.n, err, sizeof err);
    CHECK(src != NULL);

    sw_gguf_writer_t *w = sw_gguf_writer_new();
    CHECK(w != NULL);
    CHECK(sw_gguf_writer_set_u32(w, "w.u32", 123) == 0);
    CHECK(sw_gguf_writer_set_u32(w, "w.u32", 4000000001u) == 0);     /* replaces */
    CHECK(sw_gguf_writer_set_i32(w, "w.i32", -7) == 0);
    CHECK(sw_gguf_writer_set_u64(w, "w.u64", 1ull << 40) == 0);
    CHECK(sw_gguf_writer_set_f32(w, "w.f32", -0.125f) == 0);
    CHECK(sw_gguf_writer_set_bool(w, "w.bool", false) == 0);
    CHECK(sw_gguf_writer_set_str(w, "w.str", "abc\0def", 7) == 0);
    CHECK(sw_gguf_writer_set_str(w, "w.empty", NULL, 0) == 0);
    CHECK(sw_gguf_writer_set_u32(w, "", 1) == -1);
    CHECK(sw_gguf_writer_set_u32(w, NULL, 1) == -1);
    int32_t ai[5] = { 1, -2, 3, -4, 5 };
    double ad[2] = { 0.5, -1e100 };
    uint8_t ab[3] = { 1, 0, 1 };
    CHECK(sw_gguf_writer_set_arr(w, "w.arr_i32", SW_GGUF_I32, ai, 5) == 0);
    CHECK(sw_gguf_writer_set_arr(w, "w.arr_f64", SW_GGUF_F64, ad, 2) == 0);
    CHECK(sw_gguf_writer_set_arr(w, "w.arr_bool", SW_GGUF_BOOL, ab, 3) == 0);
    CHECK(sw_gguf_writer_set_arr(w, "w.bad", SW_GGUF_STRING, ai, 1) == -1);
    const char *strs[3] = { "x", "", "zz" };
    size_t lens[3] = { 1, 0, 2 };
    CHECK(sw_gguf_writer_set_arr_str(w, "w.arr_str", strs, lens, 3) == 0);
    CHECK(src && sw_gguf_writer_copy_kv(w, src, "t.") == 0);
    CHECK(sw_gguf_writer_set_u32(w, "general.alignment", 64) == 0);

    /* tensors: f32 [8,3], f16 [16], q8_0 [64,2,2], q4_K [256,1,1,2], bf16 [2,3,4,5] */
    struct { const char *name; sw_dtype_t type; uint32_t nd; int64_t ne[4]; } ts[] = {
        { "a.f32", SW_DTYPE_F32, 2, { 8, 3 } }, { "b.f16", SW_DTYPE_F16, 1, { 16 } },
        { "c.q8_0", SW_DTYPE_Q8_0, 3, { 64, 2, 2 } }, { "d.q4_K", SW_DTYPE_Q4_K, 4, { 256, 1, 1, 2 } },
        { "e.bf16", SW_DTYPE_BF16, 4, { 2, 3, 4, 5 } },
    };
    enum { NT = sizeof ts / sizeof ts[0] };
    uint8_t *tdata[NT];
    size_t tbytes[NT];
    for (int i = 0; i < NT; i++) {
        int64_t rows = 1;
        for (uint32_t d = 1; d < ts[i].nd; d++)
            rows *= ts[i].ne[d];
        tbytes[i] = sw_dtype_row_size(ts[i].type, ts[i].ne[0]) * (size_t) rows;
        tdata[i] = malloc(tbytes[i]);
        for (size_t j = 0; j < tbytes[i]; j++)
            tdata[i][j] = (uint8_t) (j * 31 + (size_t) i * 7 + 1);
        CHECK(sw_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne, tdata[i]) == 0);
    }
    int64_t bad_ne[2] = { 33, 1 };
    CHECK(sw_gguf_writer_add_tensor(w, "a.f32", SW_DTYPE_F32, 1, bad_ne, tdata[0]) == -1);    /* dup */
    CHECK(sw_gguf_writer_add_tensor(w, "bad", SW_DTYPE_Q8_0, 1, bad_ne, tdata[0]) == -1);     /* block */
    CHECK(sw_gguf_writer_add_tensor(w, "bad", SW_DTYPE_F32, 5, bad_ne, tdata[0]) == -1);      /* dims */
    CHECK(sw_gguf_writer_add_tensor(w, "bad", (sw_dtype_t) 99, 1, bad_ne, tdata[0]) == -1);   /* type */
    CHECK(sw_gguf_writer_write(w, path, err, sizeof err) == 0);
    CHECK(access(path, F_OK) == 0);
    char tmp[140];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);

    sw_gguf_t *g = sw_gguf_open(path, err, sizeof err);
    CHECK_MSG(g != NULL, "%s", err);
    if (g) {
        uint32_t u;
        int64_t i64;
        float f;
        bool b;
        const char *s;
        size_t len;
        CHECK(sw_gguf_version(g) == 3 && sw_gguf_alignment(g) == 64);
        CHECK(sw_gguf_n_kv(g) == 27); /* 11 w.* (w.u32 once) + 15 t.* + general.alignment */
        CHECK(sw_gguf_get_u32(g, "w.u32", &u) == 0 && u == 4000000001u);
        CHECK(sw_gguf_get_i64(g, "w.i32", &i64) == 0 && i64 == -7);
        CHECK(sw_gguf_get_i64(g, "w.u64", &i64) == 0 && i64 == (1ll << 40));
        CHECK(sw_gguf_kv_type(g, sw_gguf_find_key(g, "w.u64")) == SW_GGUF_U64);
        CHECK(sw_gguf_get_f32(g, "w.f32", &f) == 0 && f == -0.125f);
        CHECK(sw_gguf_get_bool(g, "w.bool", &b) == 0 && !b);
        CHECK(sw_gguf_get_str(g, "w.str", &s, &len) == 0 && len == 7 && !memcmp(s, "abc\0def", 7));
        CHECK(sw_gguf_get_str(g, "w.empty", &s, &len) == 0 && len == 0);
        sw_gguf_vtype_t et;
        uint64_t n;
        CHECK(sw_gguf_get_arr_info(g, "w.arr_i32", &et, &n) == 0 && et == SW_GGUF_I32 && n == 5);
        const void *p = sw_gguf_get_arr_data(g, "w.arr_i32");
        CHECK(p && !memcmp(p, ai, sizeof ai));
        p = sw_gguf_get_arr_data(g, "w.arr_f64");
        CHECK(p && !memcmp(p, ad, sizeof ad));
        p = sw_gguf_get_arr_data(g, "w.arr_bool");
        CHECK(p && !memcmp(p, ab, sizeof ab));
        CHECK(sw_gguf_get_arr_str(g, "w.arr_str", 0, &s, &len) == 0 && len == 1 && s[0] == 'x');
        CHECK(sw_gguf_get_arr_str(g, "w.arr_str", 1, &s, &len) == 0 && len == 0);
        CHECK(sw_gguf_get_arr_str(g, "w.arr_str", 2, &s, &len) == 0 && len == 2 && !memcmp(s, "zz", 2));
        /* copied kvs: every t.* pair identical in type and value */
        int same = 0;
        for (int64_t i = 0; src && i < sw_gguf_n_kv(src); i++) {
            const char *key = sw_gguf_key(src, i);
            if (strncmp(key, "t.", 2))
                continue;
            int64_t j = sw_gguf_find_key(g, key);
            if (j < 0 || sw_gguf_kv_type(g, j) != sw_gguf_kv_type(src, i))
                continue;
            int64_t a1 = 0, a2 = 0;
            float f1 = 0, f2 = 0;
            const char *s1 = "", *s2 = "";
            size_t l1 = 0, l2 = 0;
            uint64_t n1 = 0, n2 = 0;
            int r1 = sw_gguf_get_i64(src, key, &a1), r2 = sw_gguf_get_i64(g, key, &a2);
            sw_gguf_get_f32(src, key, &f1);
            sw_gguf_get_f32(g, key, &f2);
            sw_gguf_get_str(src, key, &s1, &l1);
            sw_gguf_get_str(g, key, &s2, &l2);
            sw_gguf_get_arr_info(src, key, &et, &n1);
            sw_gguf_get_arr_info(g, key, &et, &n2);
            same += r1 == r2 && a1 == a2 && f1 == f2 && l1 == l2 && !memcmp(s1, s2, l1) && n1 == n2;
        }
        CHECK_MSG(same == 15, "%d t.* pairs identical", same);
        p = sw_gguf_get_arr_data(g, "t.arr_i16");
        CHECK(p && !memcmp(p, sw_gguf_get_arr_data(src, "t.arr_i16"), 6));
        CHECK(sw_gguf_get_u32(g, "t.u8", &u) == 0 && u == 200);
        CHECK(sw_gguf_get_arr_str(g, "t.arr_str", 2, &s, &len) == 0 && len == 3 && !memcmp(s, "ccc", 3));
        int64_t iu = sw_gguf_find_key(g, "t.u64");
        CHECK(iu >= 0 && sw_gguf_kv_type(g, iu) == SW_GGUF_U64);
        /* tensors: order, shapes, alignment, bytes */
        CHECK(sw_gguf_n_tensors(g) == NT);
        for (int i = 0; i < NT && i < sw_gguf_n_tensors(g); i++) {
            const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
            CHECK_MSG(!strcmp(t->name, ts[i].name) && t->type == ts[i].type && t->n_dims == ts[i].nd,
                      "tensor %d", i);
            for (uint32_t d = 0; d < 4; d++)
                CHECK(t->ne[d] == (d < ts[i].nd ? ts[i].ne[d] : 1));
            CHECK(t->nbytes == tbytes[i] && !memcmp(t->data, tdata[i], tbytes[i]));
            CHECK(t->offset % 64 == 0 && (uintptr_t) t->data % 64 == 0);
            CHECK(sw_gguf_find_tensor(g, ts[i].name) == t);
        }
        CHECK(sw_gguf_tensor(g, NT) == NULL && sw_gguf_tensor(g, -1) == NULL);

        /* v2: identical layout, version field patched */
        size_t fsz;
        uint8_t *bytes = s_read_file(path, &fsz);
        if (bytes) {
            bytes[4] = 2;
            sw_gguf_t *g2 = sw_gguf_open_memory(bytes, fsz, err, sizeof err);
            CHECK_MSG(g2 != NULL, "%s", err);
            if (g2) {
                CHECK(sw_gguf_version(g2) == 2 && sw_gguf_n_tensors(g2) == NT);
                CHECK(s_touch_all(g2) == s_touch_all(g) - 1); /* only the version differs */
            }
            sw_gguf_destroy(&g2);
            bytes[4] = 1;
            g2 = sw_gguf_open_memory(bytes, fsz, err, sizeof err);
            CHECK(g2 == NULL && strstr(err, "version 1"));
            free(bytes);
        }

        /* copy everything into a second writer (default alignment), rewrite, compare */
        sw_gguf_writer_t *w2 = sw_gguf_writer_new();
        CHECK(sw_gguf_writer_copy_kv(w2, g, "") == 0);
        CHECK(sw_gguf_writer_set_u32(w2, "general.alignment", 32) == 0);
        for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
            const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
            CHECK(sw_gguf_writer_add_tensor(w2, t->name, t->type, t->n_dims, t->ne, t->data) == 0);
        }
        CHECK(sw_gguf_writer_write(w2, path2, err, sizeof err) == 0);
        sw_gguf_writer_destroy(&w2);
        CHECK(w2 == NULL);
        sw_gguf_t *g3 = sw_gguf_open(path2, err, sizeof err);
        CHECK(g3 != NULL);
        if (g3) {
            CHECK(sw_gguf_alignment(g3) == 32 && sw_gguf_n_kv(g3) == sw_gguf_n_kv(g));
            CHECK(s_same_content(g, g3, "general.alignment"));
        }
        sw_gguf_destroy(&g3);
    }
    sw_gguf_destroy(&g);

    /* invalid alignment is refused at write time; failed writes leave no file */
    CHECK(sw_gguf_writer_set_u32(w, "general.alignment", 24) == 0);
    char path3[140];
    snprintf(path3, sizeof path3, "%s/c.gguf", dir);
    CHECK(sw_gguf_writer_write(w, path3, err, sizeof err) == -1 && strstr(err, "power of two"));
    CHECK(access(path3, F_OK) != 0);
    CHECK(sw_gguf_writer_write(w, "/nonexistent/dir/x.gguf", err, sizeof err) == -1);
    sw_gguf_writer_destroy(&w);
    sw_gguf_writer_destroy(&w);
    sw_gguf_destroy(&src);
    free(hb.p);
    for (int i = 0; i < NT; i++)
        free(tdata[i]);
    unlink(path);
    unlink(path2);
    rmdir(dir);
}

/* ---- corruption of the real files -------------------------------------- */

/*  Opens bytes[0..n) (the caller's buffer ends exactly there when testing
 *  flips of a whole file; truncations use a private copy of exactly n bytes,
 *  so a sanitizer sees any over-read). Returns 1 if the open succeeded, or
 *  failed with a non-empty message; 0 if it failed without one. */
static int s_try_in_place(const uint8_t *bytes, size_t n, int *opened)
{
    char err[256];
    err[0] = 0;
    sw_gguf_t *g = sw_gguf_open_memory(bytes, n, err, sizeof err);
    int ok = 1;
    if (g) {
        (void) s_touch_all(g);
        *opened += 1;
    } else {
        ok = err[0] != 0;
    }
    sw_gguf_destroy(&g);
    return ok;
}

static int s_try(const uint8_t *bytes, size_t n, int *opened)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, bytes, n);
    int ok = s_try_in_place(copy, n, opened);
    free(copy);
    return ok;
}

static void test_corruption(void)
{
    char path[600];
    sw_test_src_path("models/stories260K.gguf", path, sizeof path);
    size_t size;
    uint8_t *file = s_read_file(path, &size);
    CHECK(file != NULL);
    if (!file)
        return;
    char err[256];
    sw_gguf_t *g = sw_gguf_open_memory(file, size, err, sizeof err);
    CHECK(g != NULL);
    if (!g) {
        free(file);
        return;
    }
    const sw_gguf_tensor_t *t0 = sw_gguf_tensor(g, 0);
    size_t header = (size_t) ((const uint8_t *) t0->data - file - t0->offset);
    sw_gguf_destroy(&g);

    /* truncation: every length in the header, every 997th in the data */
    int bad_msg = 0, opened = 0, tried = 0;
    for (size_t n = 0; n < size; n += (n < header + 64 ? 1 : 997)) {
        bad_msg += !s_try(file, n, &opened);
        tried++;
    }
    CHECK_MSG(opened == 0, "%d truncated files opened", opened);
    CHECK(bad_msg == 0);
    printf("truncation: %d lengths (header %zu bytes), all refused with a message\n", tried, header);

    /* byte flips: every header byte with two patterns, and a sample in the data */
    int flips = 0;
    opened = 0;
    static const uint8_t pats[] = { 0xff, 0x80, 0x01 };
    for (size_t pos = 0; pos < header; pos++) {
        for (size_t k = 0; k < sizeof pats; k++) {
            if (k == 2 && pos % 3)
                continue;
            uint8_t save = file[pos];
            file[pos] ^= pats[k];
            bad_msg += !s_try_in_place(file, size, &opened);
            file[pos] = save;
            flips++;
        }
    }
    CHECK(bad_msg == 0);
    printf("byte flips: %d in the header, %d still valid files (touched through the API)\n", flips, opened);

    /* a few specific corruptions of the real file */
    uint8_t save = file[4];
    file[4] = 1;
    g = sw_gguf_open_memory(file, size, err, sizeof err);
    CHECK(g == NULL && strstr(err, "version 1"));
    file[4] = save;
    g = sw_gguf_open_memory(file, size - 1, err, sizeof err);
    CHECK_MSG(g == NULL && strstr(err, "tensor 'output_norm.weight': data [offset 1039872, 256 bytes] "
                                      "runs past end of file"), "%s", err);
    free(file);

    /* the vocabulary file: truncations and flips over its (large) header */
    if (!sw_test_optional("models/llama2-tokenizer/ggml-vocab-llama-spm.gguf", "truncations and flips of the "
                          "32000-token vocabulary GGUF", path, sizeof path))
        return;
    file = s_read_file(path, &size);
    CHECK(file != NULL);
    if (!file)
        return;
    opened = 0;
    tried = 0;
    for (size_t n = 0; n < size; n += (n < 4096 ? 1 : 4093)) {
        bad_msg += !s_try(file, n, &opened);
        tried++;
    }
    CHECK(opened == 0 && bad_msg == 0);
    srand(12345);
    int vflips = 0, vopen = 0;
    for (int i = 0; i < 300; i++) {
        size_t pos = (size_t) rand() % (i < 150 ? 2048 : size);
        uint8_t s = file[pos];
        file[pos] ^= (uint8_t) (1u << (rand() % 8));
        bad_msg += !s_try_in_place(file, size, &vopen);
        file[pos] = s;
        vflips++;
    }
    CHECK(bad_msg == 0);
    printf("vocab: %d truncations refused, %d flips (%d still valid)\n", tried, vflips, vopen);
    free(file);
}

/* Type names as the GGUF format's ggml_type enumeration lists them. */
static void test_type_names(void)
{
    CHECK(!strcmp(sw_gguf_type_name(0), "F32"));
    CHECK(!strcmp(sw_gguf_type_name(3), "Q4_1"));
    CHECK(!strcmp(sw_gguf_type_name(13), "Q5_K"));
    CHECK(!strcmp(sw_gguf_type_name(20), "IQ4_NL"));
    CHECK(!strcmp(sw_gguf_type_name(23), "IQ4_XS"));
    CHECK(!strcmp(sw_gguf_type_name(30), "BF16"));
    CHECK(!strcmp(sw_gguf_type_name(4), "unknown"));
    CHECK(!strcmp(sw_gguf_type_name(99), "unknown"));
    CHECK(!strcmp(sw_gguf_type_name(UINT32_MAX), "unknown"));
}

int main(void)
{
    test_type_names();
    test_handbuilt();
    test_stories();
    test_vocab();
    test_writer();
    test_corruption();
    return sw_test_report("gguf");
}
