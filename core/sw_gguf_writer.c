/*  sw_gguf_writer.c: builds GGUF v3 files (layout in sw_gguf.h).
 *
 *  Each metadata value is kept serialised exactly as it will appear in the
 *  file after its type field, so writing is a straight copy and copy_kv can
 *  take the bytes of a source file unchanged. Tensor data is copied at add
 *  time. The file is written to "<path>.tmp", fsync'ed and renamed over path.
 */
#include "sw_gguf.h"

#include "sw_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*  Defined in sw_gguf.c: raw value bytes of pair i of an open file. */
int sw__gguf_kv_raw(const sw_gguf_t *self, int64_t i, const void **p, size_t *n);

#define S_MAX_NAME_LEN 65535u

typedef struct {
    char *key;          /* owned, NUL-terminated */
    uint32_t type;      /* sw_gguf_vtype_t */
    uint8_t *val;       /* owned: value bytes as written after the type field */
    size_t val_len;     /* bytes */
} s_wkv_t;

typedef struct {
    char *name;         /* owned */
    sw_dtype_t type;
    uint32_t n_dims;
    int64_t ne[4];      /* unused dims = 1 */
    void *data;         /* owned copy */
    size_t nbytes;
} s_wtensor_t;

struct sw_gguf_writer_t {
    s_wkv_t *kvs;
    size_t n_kv, cap_kv;
    s_wtensor_t *tensors;
    size_t n_tensors, cap_tensors;
};

static void s_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static void s_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static size_t s_vtype_size(uint32_t t)
{
    switch (t) {
    case SW_GGUF_U8: case SW_GGUF_I8: case SW_GGUF_BOOL: return 1;
    case SW_GGUF_U16: case SW_GGUF_I16: return 2;
    case SW_GGUF_U32: case SW_GGUF_I32: case SW_GGUF_F32: return 4;
    case SW_GGUF_U64: case SW_GGUF_I64: case SW_GGUF_F64: return 8;
    default: return 0;
    }
}

sw_gguf_writer_t *sw_gguf_writer_new(void)
{
    return calloc(1, sizeof(sw_gguf_writer_t));
}

void sw_gguf_writer_destroy(sw_gguf_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_gguf_writer_t *w = *self_p;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->kvs);
    free(w->tensors);
    free(w);
    *self_p = NULL;
}

static bool s_valid_name(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    return n > 0 && n <= S_MAX_NAME_LEN;
}

/*  Stores (key, type, val[0..len)) taking ownership of val (freed on error). */
static int s_set(sw_gguf_writer_t *w, const char *key, uint32_t type, uint8_t *val, size_t len)
{
    if (!w || !s_valid_name(key)) {
        free(val);
        return -1;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(w->kvs[i].val);
            w->kvs[i].type = type;
            w->kvs[i].val = val;
            w->kvs[i].val_len = len;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        s_wkv_t *k = realloc(w->kvs, cap * sizeof *k);
        if (!k) {
            free(val);
            return -1;
        }
        w->kvs = k;
        w->cap_kv = cap;
    }
    char *kcopy = strdup(key);
    if (!kcopy) {
        free(val);
        return -1;
    }
    w->kvs[w->n_kv++] = (s_wkv_t) { kcopy, type, val, len };
    return 0;
}

static int s_set_scalar(sw_gguf_writer_t *w, const char *key, uint32_t type, uint64_t bits)
{
    size_t n = s_vtype_size(type);
    uint8_t *v = malloc(n);
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++)
        v[i] = (uint8_t) (bits >> (8 * i));
    return s_set(w, key, type, v, n);
}

int sw_gguf_writer_set_u32(sw_gguf_writer_t *self, const char *key, uint32_t v)
{
    return s_set_scalar(self, key, SW_GGUF_U32, v);
}

int sw_gguf_writer_set_i32(sw_gguf_writer_t *self, const char *key, int32_t v)
{
    return s_set_scalar(self, key, SW_GGUF_I32, (uint32_t) v);
}

int sw_gguf_writer_set_u64(sw_gguf_writer_t *self, const char *key, uint64_t v)
{
    return s_set_scalar(self, key, SW_GGUF_U64, v);
}

int sw_gguf_writer_set_f32(sw_gguf_writer_t *self, const char *key, float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return s_set_scalar(self, key, SW_GGUF_F32, b);
}

int sw_gguf_writer_set_bool(sw_gguf_writer_t *self, const char *key, bool v)
{
    return s_set_scalar(self, key, SW_GGUF_BOOL, v ? 1 : 0);
}

int sw_gguf_writer_set_str(sw_gguf_writer_t *self, const char *key, const char *s, size_t len)
{
    if (!s && len > 0)
        return -1;
    if (len > SIZE_MAX - 8)
        return -1;
    uint8_t *v = malloc(8 + len);
    if (!v)
        return -1;
    s_put_u64(v, len);
    if (len)
        memcpy(v + 8, s, len);
    return s_set(self, key, SW_GGUF_STRING, v, 8 + len);
}

int sw_gguf_writer_set_arr(sw_gguf_writer_t *self, const char *key, sw_gguf_vtype_t elem_type,
                           const void *data, uint64_t n)
{
    size_t es = s_vtype_size(elem_type);
    if (es == 0 || (!data && n > 0) || n > (SIZE_MAX - 12) / es)
        return -1;
    size_t bytes = (size_t) n * es;
    uint8_t *v = malloc(12 + bytes);
    if (!v)
        return -1;
    s_put_u32(v, elem_type);
    s_put_u64(v + 4, n);
    if (bytes)
        memcpy(v + 12, data, bytes);
    return s_set(self, key, SW_GGUF_ARRAY, v, 12 + bytes);
}

int sw_gguf_writer_set_arr_str(sw_gguf_writer_t *self, const char *key, const char *const *strs,
                               const size_t *lens, uint64_t n)
{
    if (n > 0 && (!strs || !lens))
        return -1;
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i] && lens[i] > 0)
            return -1;
        if (lens[i] > SIZE_MAX - 8 - total)
            return -1;
        total += 8 + lens[i];
    }
    uint8_t *v = malloc(total);
    if (!v)
        return -1;
    s_put_u32(v, SW_GGUF_STRING);
    s_put_u64(v + 4, n);
    size_t pos = 12;
    for (uint64_t i = 0; i < n; i++) {
        s_put_u64(v + pos, lens[i]);
        if (lens[i])
            memcpy(v + pos + 8, strs[i], lens[i]);
        pos += 8 + lens[i];
    }
    return s_set(self, key, SW_GGUF_ARRAY, v, total);
}

int sw_gguf_writer_copy_kv(sw_gguf_writer_t *self, const sw_gguf_t *src, const char *prefix)
{
    if (!self || !src)
        return -1;
    if (!prefix)
        prefix = "";
    size_t plen = strlen(prefix);
    for (int64_t i = 0; i < sw_gguf_n_kv(src); i++) {
        const char *key = sw_gguf_key(src, i);
        if (strncmp(key, prefix, plen) != 0)
            continue;
        const void *p;
        size_t n;
        if (sw__gguf_kv_raw(src, i, &p, &n))
            return -1;
        uint8_t *v = malloc(n ? n : 1);
        if (!v)
            return -1;
        memcpy(v, p, n);
        if (s_set(self, key, (uint32_t) sw_gguf_kv_type(src, i), v, n))
            return -1;
    }
    return 0;
}

int sw_gguf_writer_add_tensor(sw_gguf_writer_t *self, const char *name, sw_dtype_t type,
                              uint32_t n_dims, const int64_t *ne, const void *data)
{
    if (!self || !s_valid_name(name) || n_dims < 1 || n_dims > 4 || !ne || !data)
        return -1;
    if (!sw_dtype_is_known((uint32_t) type))
        return -1;
    int64_t dims[4] = { 1, 1, 1, 1 };
    int64_t nelem = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || nelem > INT64_MAX / ne[d])
            return -1;
        dims[d] = ne[d];
        nelem *= ne[d];
    }
    size_t row = sw_dtype_row_size(type, dims[0]);
    if (row == 0)
        return -1;
    uint64_t rows = (uint64_t) (nelem / dims[0]);
    if (rows > SIZE_MAX / row)
        return -1;
    size_t nbytes = row * (size_t) rows;
    for (size_t i = 0; i < self->n_tensors; i++)
        if (strcmp(self->tensors[i].name, name) == 0)
            return -1;
    if (self->n_tensors == self->cap_tensors) {
        size_t cap = self->cap_tensors ? self->cap_tensors * 2 : 16;
        s_wtensor_t *t = realloc(self->tensors, cap * sizeof *t);
        if (!t)
            return -1;
        self->tensors = t;
        self->cap_tensors = cap;
    }
    char *ncopy = strdup(name);
    void *dcopy = malloc(nbytes);
    if (!ncopy || !dcopy) {
        free(ncopy);
        free(dcopy);
        return -1;
    }
    memcpy(dcopy, data, nbytes);
    s_wtensor_t *t = &self->tensors[self->n_tensors++];
    t->name = ncopy;
    t->type = type;
    t->n_dims = n_dims;
    memcpy(t->ne, dims, sizeof dims);
    t->data = dcopy;
    t->nbytes = nbytes;
    return 0;
}

static int s_write_all(FILE *f, const void *p, size_t n)
{
    return (n == 0 || fwrite(p, 1, n, f) == n) ? 0 : -1;
}

static int s_write_u32(FILE *f, uint32_t v)
{
    uint8_t b[4];
    s_put_u32(b, v);
    return s_write_all(f, b, 4);
}

static int s_write_u64(FILE *f, uint64_t v)
{
    uint8_t b[8];
    s_put_u64(b, v);
    return s_write_all(f, b, 8);
}

static int s_write_str(FILE *f, const char *s)
{
    size_t n = strlen(s);
    return (s_write_u64(f, n) || s_write_all(f, s, n)) ? -1 : 0;
}

static int s_write_pad(FILE *f, uint64_t *pos, uint32_t alignment)
{
    static const uint8_t zeros[64];
    uint64_t pad = (alignment - *pos % alignment) % alignment;
    *pos += pad;
    while (pad > 0) {
        size_t n = pad > sizeof zeros ? sizeof zeros : (size_t) pad;
        if (s_write_all(f, zeros, n))
            return -1;
        pad -= n;
    }
    return 0;
}

/*  Output alignment: general.alignment when set (must be a u32 power of two). */
static int s_alignment(const sw_gguf_writer_t *w, uint32_t *out, char *err, size_t errlen)
{
    *out = 32;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0)
            continue;
        if (w->kvs[i].type != SW_GGUF_U32 || w->kvs[i].val_len != 4)
            return sw_err(err, errlen, "general.alignment must be a u32");
        const uint8_t *p = w->kvs[i].val;
        uint32_t a = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
        if (a == 0 || (a & (a - 1)) != 0)
            return sw_err(err, errlen, "general.alignment %u is not a power of two", a);
        *out = a;
    }
    return 0;
}

int sw_gguf_writer_write(sw_gguf_writer_t *self, const char *path, char *err, size_t errlen)
{
    if (!self || !path)
        return sw_err(err, errlen, "NULL writer or path");
    uint32_t align;
    if (s_alignment(self, &align, err, errlen))
        return -1;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp)
        return sw_err(err, errlen, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        sw_err(err, errlen, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int rc = 0;
    uint64_t pos = 0;
    rc |= s_write_all(f, "GGUF", 4);
    rc |= s_write_u32(f, 3);
    rc |= s_write_u64(f, self->n_tensors);
    rc |= s_write_u64(f, self->n_kv);
    pos = 24;
    for (size_t i = 0; i < self->n_kv && rc == 0; i++) {
        const s_wkv_t *kv = &self->kvs[i];
        rc |= s_write_str(f, kv->key);
        rc |= s_write_u32(f, kv->type);
        rc |= s_write_all(f, kv->val, kv->val_len);
        pos += 8 + strlen(kv->key) + 4 + kv->val_len;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < self->n_tensors && rc == 0; i++) {
        const s_wtensor_t *t = &self->tensors[i];
        rc |= s_write_str(f, t->name);
        rc |= s_write_u32(f, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            rc |= s_write_u64(f, (uint64_t) t->ne[d]);
        rc |= s_write_u32(f, (uint32_t) t->type);
        rc |= s_write_u64(f, off);
        pos += 8 + strlen(t->name) + 4 + 8 * (uint64_t) t->n_dims + 4 + 8;
        off += t->nbytes;
        off += (align - off % align) % align;
    }
    if (rc == 0 && self->n_tensors > 0)
        rc |= s_write_pad(f, &pos, align);
    for (size_t i = 0; i < self->n_tensors && rc == 0; i++) {
        const s_wtensor_t *t = &self->tensors[i];
        rc |= s_write_all(f, t->data, t->nbytes);
        pos += t->nbytes;
        if (i + 1 < self->n_tensors)
            rc |= s_write_pad(f, &pos, align);
    }
    int saved = errno;
    if (rc == 0 && fflush(f) != 0)
        rc = -1, saved = errno;
    if (rc == 0 && fsync(fileno(f)) != 0)
        rc = -1, saved = errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -1, saved = errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1, saved = errno;
    if (rc != 0) {
        sw_err(err, errlen, "writing %s: %s", path, strerror(saved));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}
