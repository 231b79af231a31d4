/*  sw_gguf.c: GGUF v2/v3 reader (mmap or caller buffer), fully validated.
 *
 *  Format: the GGUF specification in the ggml repository (docs/gguf.md); the
 *  byte layout is summarised at the top of sw_gguf.h.
 *
 *  Parsing is a single forward pass over the header with a bounds-checked
 *  cursor. Every count read from the file is checked against the bytes left
 *  before anything is allocated for it, so allocations are bounded by a small
 *  multiple of the file size (and by the hard limits below). Keys and tensor
 *  names are copied into a chunked string pool so they can be NUL-terminated;
 *  string values stay inside the mapping.
 */
#include "sw_gguf.h"

#include <xxhash.h>

#include "sw_common.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*  Hard limits, far above anything a real model uses (llama.cpp files have
 *  ~20-60 keys and at most a few thousand tensors). They bound the memory a
 *  hostile header can make us allocate. */
#define S_MAX_KV       (1u << 20)
#define S_MAX_TENSORS  (1u << 20)
#define S_MAX_NAME_LEN 65535u    /* keys and tensor names (spec: keys <= 65535) */
#define S_DEFAULT_ALIGNMENT 32u

/*  One metadata pair. Value bytes stay in the mapping. */
typedef struct {
    const char *key;          /* NUL-terminated copy in the string pool */
    sw_gguf_vtype_t type;     /* value type */
    const uint8_t *val;       /* scalar: the value bytes; string: the bytes of the string;
                                 array: the first element */
    uint64_t len;             /* string: byte length; array: element count */
    sw_gguf_vtype_t arr_type; /* array element type */
    uint64_t *str_off;        /* string array: offset (from file start) of each element's
                                 uint64 length field; owned */
    size_t raw_off, raw_len;  /* value bytes as stored (after the type field), for copy_kv */
} s_kv_t;

/*  String pool chunk: names never move once copied. */
typedef struct s_chunk_t {
    struct s_chunk_t *next;
    size_t used, cap;        /* bytes */
    char data[];
} s_chunk_t;

#define S_CHUNK_BYTES (64u * 1024u)

/*  Open-addressing hash table of indices (into kvs or tensors) by name. */
typedef struct {
    int64_t *slot;   /* capacity entries, -1 = empty */
    size_t mask;     /* capacity - 1 (capacity a power of two >= 2 * n) */
} s_index_t;

struct sw_gguf_t {
    const uint8_t *base;     /* file bytes */
    size_t size;             /* bytes */
    bool mapped;             /* base is our mmap (munmap on destroy) */
    uint32_t version;
    uint32_t alignment;      /* bytes, power of two */
    size_t data_off;         /* start of the data section, bytes from file start */
    int64_t n_kv;
    s_kv_t *kvs;
    int64_t n_tensors;
    sw_gguf_tensor_t *tensors;
    struct s_chunk_t *pool;  /* NUL-terminated keys and tensor names (chunk list) */
    s_index_t kv_index;
    s_index_t tensor_index;
};

/* ---- little helpers ---------------------------------------------------- */

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t s_le64(const uint8_t *p)
{
    return (uint64_t) s_le32(p) | (uint64_t) s_le32(p + 4) << 32;
}

static uint64_t s_fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t) *s;
        h *= 1099511628211ull;
    }
    return h;
}

/*  Writes a printable, length-limited rendering of name bytes into out
 *  (for error messages: names from a corrupt file may hold anything). */
static const char *s_printable(const uint8_t *s, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < outlen; i++)
        out[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char) s[i] : '?';
    if (len > 0 && n < len && n + 3 < outlen) {
        out[n++] = '.';
        out[n++] = '.';
        out[n++] = '.';
    }
    out[n] = 0;
    return out;
}

static size_t s_vtype_size(uint32_t t)
{
    switch (t) {
    case SW_GGUF_U8: case SW_GGUF_I8: case SW_GGUF_BOOL: return 1;
    case SW_GGUF_U16: case SW_GGUF_I16: return 2;
    case SW_GGUF_U32: case SW_GGUF_I32: case SW_GGUF_F32: return 4;
    case SW_GGUF_U64: case SW_GGUF_I64: case SW_GGUF_F64: return 8;
    default: return 0; /* string, array, unknown */
    }
}

static const char *s_vtype_name(uint32_t t)
{
    static const char *names[] = { "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                   "string", "array", "u64", "i64", "f64" };
    return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* ---- hash index -------------------------------------------------------- */

typedef const char *(*s_name_fn)(const sw_gguf_t *g, int64_t i);

static const char *s_kv_name(const sw_gguf_t *g, int64_t i) { return g->kvs[i].key; }
static const char *s_tensor_name(const sw_gguf_t *g, int64_t i) { return g->tensors[i].name; }

static int s_index_init(s_index_t *ix, int64_t n)
{
    size_t cap = 8;
    while (cap < (size_t) n * 2)
        cap <<= 1;
    ix->slot = malloc(cap * sizeof(int64_t));
    if (!ix->slot)
        return -1;
    for (size_t i = 0; i < cap; i++)
        ix->slot[i] = -1;
    ix->mask = cap - 1;
    return 0;
}

/*  Returns the index holding `name`, or -1; *slot_out gets the slot where it
 *  is or would go. */
static int64_t s_index_find(const sw_gguf_t *g, const s_index_t *ix, s_name_fn name_of,
                            const char *name, size_t *slot_out)
{
    if (!ix->slot)
        return -1;
    size_t s = (size_t) s_fnv1a(name) & ix->mask;
    for (;;) {
        int64_t v = ix->slot[s];
        if (v < 0) {
            if (slot_out)
                *slot_out = s;
            return -1;
        }
        if (strcmp(name_of(g, v), name) == 0) {
            if (slot_out)
                *slot_out = s;
            return v;
        }
        s = (s + 1) & ix->mask;
    }
}

/* ---- cursor ------------------------------------------------------------ */

typedef struct {
    const uint8_t *base;
    size_t size;
    size_t pos;
    char *err;
    size_t errlen;
} s_cur_t;

static size_t s_left(const s_cur_t *c) { return c->size - c->pos; }

static int s_need(s_cur_t *c, size_t n, const char *what, const char *ctx)
{
    if (n > s_left(c))
        return sw_err(c->err, c->errlen, "%s%s: needs %zu bytes at offset %zu, file size %zu",
                      ctx, what, n, c->pos, c->size);
    return 0;
}

static int s_rd_u32(s_cur_t *c, uint32_t *v, const char *what, const char *ctx)
{
    if (s_need(c, 4, what, ctx))
        return -1;
    *v = s_le32(c->base + c->pos);
    c->pos += 4;
    return 0;
}

static int s_rd_u64(s_cur_t *c, uint64_t *v, const char *what, const char *ctx)
{
    if (s_need(c, 8, what, ctx))
        return -1;
    *v = s_le64(c->base + c->pos);
    c->pos += 8;
    return 0;
}

/*  Reads a gguf string; *s points into the buffer. */
static int s_rd_str(s_cur_t *c, const uint8_t **s, uint64_t *len, const char *what, const char *ctx)
{
    uint64_t n;
    size_t at = c->pos;
    if (s_rd_u64(c, &n, what, ctx))
        return -1;
    if (n > s_left(c))
        return sw_err(c->err, c->errlen,
                      "%s%s: string length %llu at offset %zu runs past end of file (size %zu)",
                      ctx, what, (unsigned long long) n, at, c->size);
    *s = c->base + c->pos;
    *len = n;
    c->pos += (size_t) n;
    return 0;
}

/*  Copies a name into the pool (NUL-terminated). Names must be non-empty,
 *  at most S_MAX_NAME_LEN bytes and free of NUL bytes. */
static int s_pool_name(s_cur_t *c, s_chunk_t **pool, const uint8_t *s, uint64_t len,
                       const char *what, const char *ctx, const char **out)
{
    if (len == 0)
        return sw_err(c->err, c->errlen, "%sempty %s", ctx, what);
    if (len > S_MAX_NAME_LEN)
        return sw_err(c->err, c->errlen, "%s%s length %llu exceeds the limit %u", ctx, what,
                      (unsigned long long) len, S_MAX_NAME_LEN);
    if (memchr(s, 0, (size_t) len)) {
        char pb[80];
        return sw_err(c->err, c->errlen, "%s%s '%s' contains a NUL byte", ctx, what,
                      s_printable(s, (size_t) len, pb, sizeof pb));
    }
    size_t need = (size_t) len + 1;
    s_chunk_t *ch = *pool;
    if (!ch || ch->cap - ch->used < need) {
        size_t cap = need > S_CHUNK_BYTES ? need : S_CHUNK_BYTES;
        ch = malloc(sizeof *ch + cap);
        if (!ch)
            return sw_err(c->err, c->errlen, "%sout of memory", ctx);
        ch->next = *pool;
        ch->used = 0;
        ch->cap = cap;
        *pool = ch;
    }
    char *dst = ch->data + ch->used;
    memcpy(dst, s, (size_t) len);
    dst[len] = 0;
    ch->used += need;
    *out = dst;
    return 0;
}

/* ---- parsing ----------------------------------------------------------- */

/*  Parses the value of kv (type already read) at the cursor. */
static int s_parse_value(s_cur_t *c, s_kv_t *kv, const char *ctx)
{
    size_t start = c->pos;
    if (kv->type == SW_GGUF_STRING) {
        if (s_rd_str(c, &kv->val, &kv->len, "string value", ctx))
            return -1;
    } else if (kv->type == SW_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (s_rd_u32(c, &et, "array element type", ctx) || s_rd_u64(c, &n, "array count", ctx))
            return -1;
        kv->arr_type = (sw_gguf_vtype_t) et;
        kv->len = n;
        kv->val = c->base + c->pos;
        if (et == SW_GGUF_ARRAY)
            return sw_err(c->err, c->errlen, "%snested arrays are not supported", ctx);
        if (et == SW_GGUF_STRING) {
            /* each element needs at least its 8-byte length */
            if (n > s_left(c) / 8)
                return sw_err(c->err, c->errlen,
                              "%sstring array of %llu elements at offset %zu cannot fit in the "
                              "file (size %zu)", ctx, (unsigned long long) n, c->pos, c->size);
            kv->str_off = malloc((n ? (size_t) n : 1) * sizeof(uint64_t));
            if (!kv->str_off)
                return sw_err(c->err, c->errlen, "%sout of memory for %llu strings", ctx,
                              (unsigned long long) n);
            for (uint64_t i = 0; i < n; i++) {
                const uint8_t *s;
                uint64_t len;
                kv->str_off[i] = c->pos;
                if (s_rd_str(c, &s, &len, "array string", ctx))
                    return sw_err(c->err, c->errlen,
                                  "%sstring array element %llu at offset %llu runs past end of "
                                  "file (size %zu)", ctx, (unsigned long long) i,
                                  (unsigned long long) kv->str_off[i], c->size);
            }
        } else {
            size_t es = s_vtype_size(et);
            if (es == 0)
                return sw_err(c->err, c->errlen, "%sunknown array element type %u", ctx, et);
            if (n > s_left(c) / es)
                return sw_err(c->err, c->errlen,
                              "%sarray of %llu %s at offset %zu runs past end of file (size %zu)",
                              ctx, (unsigned long long) n, s_vtype_name(et), c->pos, c->size);
            if (et == SW_GGUF_BOOL) {
                for (uint64_t i = 0; i < n; i++)
                    if (c->base[c->pos + i] > 1)
                        return sw_err(c->err, c->errlen, "%sbool array element %llu is %u, not 0/1",
                                      ctx, (unsigned long long) i, c->base[c->pos + i]);
            }
            c->pos += (size_t) n * es;
        }
    } else {
        size_t es = s_vtype_size(kv->type);
        if (es == 0)
            return sw_err(c->err, c->errlen, "%sunknown value type %u", ctx, (unsigned) kv->type);
        if (s_need(c, es, s_vtype_name(kv->type), ctx))
            return -1;
        kv->val = c->base + c->pos;
        if (kv->type == SW_GGUF_BOOL && kv->val[0] > 1)
            return sw_err(c->err, c->errlen, "%sbool value is %u, not 0/1", ctx, kv->val[0]);
        c->pos += es;
    }
    kv->raw_off = start;
    kv->raw_len = c->pos - start;
    return 0;
}

static int s_parse_tensor(s_cur_t *c, sw_gguf_t *g, int64_t idx)
{
    char ctx[160], pb[80];
    snprintf(ctx, sizeof ctx, "tensor %lld: ", (long long) idx);
    sw_gguf_tensor_t *t = &g->tensors[idx];
    const uint8_t *s;
    uint64_t len;
    if (s_rd_str(c, &s, &len, "name", ctx) || s_pool_name(c, &g->pool, s, len, "tensor name", ctx, &t->name))
        return -1;
    snprintf(ctx, sizeof ctx, "tensor '%s': ", s_printable(s, (size_t) len, pb, sizeof pb));

    size_t slot = 0;
    if (s_index_find(g, &g->tensor_index, s_tensor_name, t->name, &slot) >= 0)
        return sw_err(c->err, c->errlen, "%sduplicate tensor name", ctx);

    uint32_t n_dims;
    if (s_rd_u32(c, &n_dims, "n_dims", ctx))
        return -1;
    if (n_dims < 1 || n_dims > 4)
        return sw_err(c->err, c->errlen, "%sn_dims %u is not in 1..4", ctx, n_dims);
    t->n_dims = n_dims;
    int64_t nelem = 1;
    for (int d = 0; d < 4; d++) {
        uint64_t ne = 1;
        if ((uint32_t) d < n_dims && s_rd_u64(c, &ne, "dimension", ctx))
            return -1;
        if (ne == 0 || ne > (uint64_t) INT64_MAX)
            return sw_err(c->err, c->errlen, "%sdimension %d is %llu (must be 1..2^63-1)", ctx,
                          d, (unsigned long long) ne);
        if ((uint64_t) nelem > (uint64_t) INT64_MAX / ne)
            return sw_err(c->err, c->errlen, "%selement count overflows int64", ctx);
        nelem *= (int64_t) ne;
        t->ne[d] = (int64_t) ne;
    }
    uint32_t type;
    if (s_rd_u32(c, &type, "type", ctx))
        return -1;
    if (!sw_dtype_is_known(type))
        return sw_err(c->err, c->errlen, "%sunsupported tensor type %u (%s)", ctx, type, sw_gguf_type_name(type));
    t->type = (sw_dtype_t) type;
    int64_t bs = sw_dtype_block_size(t->type);
    if (bs <= 0 || t->ne[0] % bs != 0)
        return sw_err(c->err, c->errlen, "%srow length %lld is not a multiple of the %s block size %lld",
                      ctx, (long long) t->ne[0], sw_dtype_name(t->type), (long long) bs);
    size_t row = sw_dtype_row_size(t->type, t->ne[0]);
    if (row == 0)
        return sw_err(c->err, c->errlen, "%srow of %lld elements is too large", ctx, (long long) t->ne[0]);
    uint64_t rows = (uint64_t) (nelem / t->ne[0]);
    if (rows > SIZE_MAX / row)
        return sw_err(c->err, c->errlen, "%sbyte size overflows", ctx);
    t->nbytes = row * (size_t) rows;
    if (s_rd_u64(c, &t->offset, "offset", ctx))
        return -1;
    g->tensor_index.slot[slot] = idx;
    return 0;
}

/*  Second stage for tensors, once alignment and the data start are known. */
static int s_check_tensor_data(sw_gguf_t *g, int64_t idx, char *err, size_t errlen)
{
    sw_gguf_tensor_t *t = &g->tensors[idx];
    if (t->offset % g->alignment != 0)
        return sw_err(err, errlen, "tensor '%.64s': offset %llu is not a multiple of the alignment %u",
                      t->name, (unsigned long long) t->offset, g->alignment);
    size_t avail = g->size - g->data_off;
    if (t->offset > avail || t->nbytes > avail - t->offset)
        return sw_err(err, errlen,
                      "tensor '%.64s': data [offset %llu, %zu bytes] runs past end of file "
                      "(size %zu, data section at %zu)",
                      t->name, (unsigned long long) t->offset, t->nbytes, g->size, g->data_off);
    t->data = g->base + g->data_off + t->offset;
    return 0;
}

static int s_parse(sw_gguf_t *g, char *err, size_t errlen)
{
    s_cur_t c = { g->base, g->size, 0, err, errlen };
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
        return sw_err(err, errlen, "not a GGUF file (bad magic)");
    if (g->size < 24)
        return sw_err(err, errlen, "truncated GGUF header: file size %zu < 24", g->size);
    c.pos = 4;
    uint32_t version = s_le32(g->base + 4);
    if (version == 1)
        return sw_err(err, errlen, "GGUF version 1 is not supported (re-convert the file to v3)");
    if (version != 2 && version != 3)
        return sw_err(err, errlen, "unknown GGUF version %u (supported: 2, 3)", version);
    g->version = version;
    uint64_t n_tensors = s_le64(g->base + 8), n_kv = s_le64(g->base + 16);
    c.pos = 24;
    if (n_kv > S_MAX_KV)
        return sw_err(err, errlen, "n_kv %llu exceeds the limit %u", (unsigned long long) n_kv, S_MAX_KV);
    if (n_tensors > S_MAX_TENSORS)
        return sw_err(err, errlen, "n_tensors %llu exceeds the limit %u",
                      (unsigned long long) n_tensors, S_MAX_TENSORS);
    /* minimum bytes: kv = key len 8 + key >=1 + type 4 + value >=1;
       tensor = name len 8 + name >=1 + n_dims 4 + ne 8 + type 4 + offset 8 */
    if (n_kv * 14 + n_tensors * 33 > s_left(&c))
        return sw_err(err, errlen,
                      "%llu key/value pairs and %llu tensors cannot fit in a file of %zu bytes",
                      (unsigned long long) n_kv, (unsigned long long) n_tensors, g->size);

    g->kvs = calloc(n_kv ? (size_t) n_kv : 1, sizeof(s_kv_t));
    g->tensors = calloc(n_tensors ? (size_t) n_tensors : 1, sizeof(sw_gguf_tensor_t));
    if (!g->kvs || !g->tensors || s_index_init(&g->kv_index, (int64_t) n_kv)
        || s_index_init(&g->tensor_index, (int64_t) n_tensors))
        return sw_err(err, errlen, "out of memory");

    g->alignment = S_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        char ctx[160], pb[80];
        snprintf(ctx, sizeof ctx, "kv %llu: ", (unsigned long long) i);
        s_kv_t *kv = &g->kvs[i];
        g->n_kv = (int64_t) i + 1; /* so destroy frees str_off of a half-parsed kv */
        const uint8_t *s;
        uint64_t len;
        if (s_rd_str(&c, &s, &len, "key", ctx) || s_pool_name(&c, &g->pool, s, len, "key", ctx, &kv->key))
            return -1;
        snprintf(ctx, sizeof ctx, "key '%s': ", s_printable(s, (size_t) len, pb, sizeof pb));
        size_t slot = 0;
        if (s_index_find(g, &g->kv_index, s_kv_name, kv->key, &slot) >= 0)
            return sw_err(err, errlen, "%sduplicate key", ctx);
        uint32_t type;
        if (s_rd_u32(&c, &type, "value type", ctx))
            return -1;
        kv->type = (sw_gguf_vtype_t) type;
        if (s_parse_value(&c, kv, ctx))
            return -1;
        g->kv_index.slot[slot] = (int64_t) i;
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->type != SW_GGUF_U32)
                return sw_err(err, errlen, "general.alignment has type %s, expected u32",
                              s_vtype_name(kv->type));
            uint32_t a = s_le32(kv->val);
            if (a == 0 || (a & (a - 1)) != 0)
                return sw_err(err, errlen, "general.alignment %u is not a power of two", a);
            g->alignment = a;
        }
    }
    g->n_kv = (int64_t) n_kv;

    for (uint64_t i = 0; i < n_tensors; i++) {
        if (s_parse_tensor(&c, g, (int64_t) i))
            return -1;
    }
    g->n_tensors = (int64_t) n_tensors;

    /* data section: header end rounded up to the alignment */
    size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    if (pad > s_left(&c)) {
        if (n_tensors > 0)
            return sw_err(err, errlen,
                          "data section start (header end %zu aligned to %u) is past end of file "
                          "(size %zu)", c.pos, g->alignment, g->size);
        g->data_off = g->size; /* no tensors: nothing to place */
    } else {
        g->data_off = c.pos + pad;
    }
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (s_check_tensor_data(g, i, err, errlen))
            return -1;
    return 0;
}

/* ---- open / close ------------------------------------------------------ */

static sw_gguf_t *s_open_common(sw_gguf_t *g, char *err, size_t errlen)
{
    if (s_parse(g, err, errlen) != 0) {
        sw_gguf_destroy(&g);
        return NULL;
    }
    return g;
}

sw_gguf_t *sw_gguf_open_memory(const void *data, size_t size, char *err, size_t errlen)
{
    if (!data && size > 0) {
        sw_err(err, errlen, "NULL buffer");
        return NULL;
    }
    sw_gguf_t *g = calloc(1, sizeof *g);
    if (!g) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    g->base = data ? data : (const uint8_t *) "";
    g->size = size;
    return s_open_common(g, err, errlen);
}

sw_gguf_t *sw_gguf_open(const char *path, char *err, size_t errlen)
{
    if (!path) {
        sw_err(err, errlen, "NULL path");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sw_err(err, errlen, "open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sw_err(err, errlen, "fstat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        sw_err(err, errlen, "not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_size < 24) {
        sw_err(err, errlen, "file size %lld is too small for a GGUF header",
               (long long) st.st_size);
        close(fd);
        return NULL;
    }
    if ((uint64_t) st.st_size > SIZE_MAX) {
        sw_err(err, errlen, "file too large to map");
        close(fd);
        return NULL;
    }
    size_t size = (size_t) st.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int mmap_errno = errno;
    close(fd);
    if (m == MAP_FAILED) {
        sw_err(err, errlen, "mmap: %s", strerror(mmap_errno));
        return NULL;
    }
    sw_gguf_t *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(m, size);
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    g->base = m;
    g->size = size;
    g->mapped = true;
    return s_open_common(g, err, errlen);
}

void sw_gguf_destroy(sw_gguf_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_gguf_t *g = *self_p;
    if (g->kvs)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kvs[i].str_off);
    free(g->kvs);
    free(g->tensors);
    while (g->pool) {
        s_chunk_t *next = g->pool->next;
        free(g->pool);
        g->pool = next;
    }
    free(g->kv_index.slot);
    free(g->tensor_index.slot);
    if (g->mapped)
        munmap((void *) g->base, g->size);
    free(g);
    *self_p = NULL;
}

uint32_t sw_gguf_version(const sw_gguf_t *self) { return self->version; }
uint32_t sw_gguf_alignment(const sw_gguf_t *self) { return self->alignment; }
size_t sw_gguf_file_size(const sw_gguf_t *self) { return self->size; }

size_t sw_gguf_data_offset(const sw_gguf_t *self) { return self->data_off; }

uint64_t sw_gguf_identity_hash(const sw_gguf_t *self)
{
    return XXH3_64bits(self->base, self->data_off);
}

/* ---- metadata ---------------------------------------------------------- */

int64_t sw_gguf_n_kv(const sw_gguf_t *self) { return self->n_kv; }

int64_t sw_gguf_find_key(const sw_gguf_t *self, const char *key)
{
    if (!self || !key)
        return -1;
    return s_index_find(self, &self->kv_index, s_kv_name, key, NULL);
}

const char *sw_gguf_key(const sw_gguf_t *self, int64_t i)
{
    return (i >= 0 && i < self->n_kv) ? self->kvs[i].key : NULL;
}

sw_gguf_vtype_t sw_gguf_kv_type(const sw_gguf_t *self, int64_t i)
{
    return (i >= 0 && i < self->n_kv) ? self->kvs[i].type : (sw_gguf_vtype_t) -1;
}

static const s_kv_t *s_kv(const sw_gguf_t *self, const char *key)
{
    int64_t i = sw_gguf_find_key(self, key);
    return i < 0 ? NULL : &self->kvs[i];
}

/*  Integer value of kv as (negative flag, magnitude-or-value). Returns 0 if
 *  kv holds an integer or bool. */
static int s_int_value(const s_kv_t *kv, bool *neg, uint64_t *u, int64_t *s)
{
    const uint8_t *p = kv->val;
    int64_t sv = 0;
    uint64_t uv = 0;
    bool is_signed = false;
    switch (kv->type) {
    case SW_GGUF_U8: case SW_GGUF_BOOL: uv = p[0]; break;
    case SW_GGUF_I8: sv = (int8_t) p[0]; is_signed = true; break;
    case SW_GGUF_U16: uv = (uint16_t) (p[0] | p[1] << 8); break;
    case SW_GGUF_I16: sv = (int16_t) (uint16_t) (p[0] | p[1] << 8); is_signed = true; break;
    case SW_GGUF_U32: uv = s_le32(p); break;
    case SW_GGUF_I32: sv = (int32_t) s_le32(p); is_signed = true; break;
    case SW_GGUF_U64: uv = s_le64(p); break;
    case SW_GGUF_I64: sv = (int64_t) s_le64(p); is_signed = true; break;
    default: return -1;
    }
    if (is_signed) {
        *neg = sv < 0;
        *s = sv;
        *u = sv < 0 ? 0 : (uint64_t) sv;
    } else {
        *neg = false;
        *u = uv;
        *s = uv > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) uv;
    }
    return 0;
}

int sw_gguf_get_u32(const sw_gguf_t *self, const char *key, uint32_t *out)
{
    const s_kv_t *kv = s_kv(self, key);
    bool neg;
    uint64_t u;
    int64_t s;
    if (!kv || s_int_value(kv, &neg, &u, &s) || neg || u > UINT32_MAX)
        return -1;
    if (out)
        *out = (uint32_t) u;
    return 0;
}

int sw_gguf_get_i64(const sw_gguf_t *self, const char *key, int64_t *out)
{
    const s_kv_t *kv = s_kv(self, key);
    bool neg;
    uint64_t u;
    int64_t s;
    if (!kv || s_int_value(kv, &neg, &u, &s) || (!neg && u > (uint64_t) INT64_MAX))
        return -1;
    if (out)
        *out = s;
    return 0;
}

int sw_gguf_get_f32(const sw_gguf_t *self, const char *key, float *out)
{
    const s_kv_t *kv = s_kv(self, key);
    if (!kv)
        return -1;
    if (kv->type == SW_GGUF_F32) {
        uint32_t b = s_le32(kv->val);
        float f;
        memcpy(&f, &b, 4);
        if (out)
            *out = f;
        return 0;
    }
    if (kv->type == SW_GGUF_F64) {
        uint64_t b = s_le64(kv->val);
        double d;
        memcpy(&d, &b, 8);
        if (isfinite(d) && (d > FLT_MAX || d < -FLT_MAX))
            return -1; /* finite but beyond float range */
        if (out)
            *out = (float) d;
        return 0;
    }
    return -1;
}

int sw_gguf_get_bool(const sw_gguf_t *self, const char *key, bool *out)
{
    const s_kv_t *kv = s_kv(self, key);
    bool neg;
    uint64_t u;
    int64_t s;
    if (!kv || s_int_value(kv, &neg, &u, &s) || neg || u > 1)
        return -1;
    if (out)
        *out = u == 1;
    return 0;
}

int sw_gguf_get_str(const sw_gguf_t *self, const char *key, const char **s, size_t *len)
{
    const s_kv_t *kv = s_kv(self, key);
    if (!kv || kv->type != SW_GGUF_STRING)
        return -1;
    if (s)
        *s = (const char *) kv->val;
    if (len)
        *len = (size_t) kv->len;
    return 0;
}

int sw_gguf_get_str_buf(const sw_gguf_t *self, const char *key, char *buf, size_t buflen)
{
    const char *s;
    size_t len;
    if (!buf || buflen == 0 || sw_gguf_get_str(self, key, &s, &len))
        return -1;
    if (len > buflen - 1)
        len = buflen - 1;
    memcpy(buf, s, len);
    buf[len] = 0;
    return 0;
}

int sw_gguf_get_arr_info(const sw_gguf_t *self, const char *key, sw_gguf_vtype_t *elem_type, uint64_t *n)
{
    const s_kv_t *kv = s_kv(self, key);
    if (!kv || kv->type != SW_GGUF_ARRAY)
        return -1;
    if (elem_type)
        *elem_type = kv->arr_type;
    if (n)
        *n = kv->len;
    return 0;
}

const void *sw_gguf_get_arr_data(const sw_gguf_t *self, const char *key)
{
    const s_kv_t *kv = s_kv(self, key);
    if (!kv || kv->type != SW_GGUF_ARRAY || s_vtype_size(kv->arr_type) == 0)
        return NULL;
    return kv->val;
}

int sw_gguf_get_arr_str(const sw_gguf_t *self, const char *key, uint64_t i, const char **s, size_t *len)
{
    const s_kv_t *kv = s_kv(self, key);
    if (!kv || kv->type != SW_GGUF_ARRAY || kv->arr_type != SW_GGUF_STRING || i >= kv->len)
        return -1;
    const uint8_t *p = self->base + kv->str_off[i];
    if (s)
        *s = (const char *) p + 8;
    if (len)
        *len = (size_t) s_le64(p);
    return 0;
}

/*  Internal (for sw_gguf_writer.c): the value bytes of pair i exactly as
 *  stored after its type field. Returns 0 or -1 when i is out of range. */
int sw__gguf_kv_raw(const sw_gguf_t *self, int64_t i, const void **p, size_t *n);
int sw__gguf_kv_raw(const sw_gguf_t *self, int64_t i, const void **p, size_t *n)
{
    if (!self || i < 0 || i >= self->n_kv)
        return -1;
    *p = self->base + self->kvs[i].raw_off;
    *n = self->kvs[i].raw_len;
    return 0;
}

/* ---- tensors ----------------------------------------------------------- */

const char *sw_gguf_type_name(uint32_t type)
{
    /* ids of the ggml_type enumeration; 4, 5 and 31..33 are retired */
    static const char *const names[] = {
        "F32",     "F16",    "Q4_0",   "Q4_1",  NULL,     NULL,    "Q5_0",  "Q5_1",  "Q8_0",   "Q8_1",
        "Q2_K",    "Q3_K",   "Q4_K",   "Q5_K",  "Q6_K",   "Q8_K",  "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
        "IQ4_NL",  "IQ3_S",  "IQ2_S",  "IQ4_XS", "I8",    "I16",   "I32",   "I64",   "F64",    "IQ1_M",
        "BF16",    NULL,     NULL,     NULL,    "TQ1_0",  "TQ2_0", NULL,    NULL,    NULL,     "MXFP4",
    };
    return type < sizeof names / sizeof names[0] && names[type] ? names[type] : "unknown";
}

int64_t sw_gguf_n_tensors(const sw_gguf_t *self) { return self->n_tensors; }

const sw_gguf_tensor_t *sw_gguf_tensor(const sw_gguf_t *self, int64_t i)
{
    return (self && i >= 0 && i < self->n_tensors) ? &self->tensors[i] : NULL;
}

const sw_gguf_tensor_t *sw_gguf_find_tensor(const sw_gguf_t *self, const char *name)
{
    if (!self || !name)
        return NULL;
    int64_t i = s_index_find(self, &self->tensor_index, s_tensor_name, name, NULL);
    return i < 0 ? NULL : &self->tensors[i];
}
