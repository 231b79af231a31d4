/*  sw_manifest.c: build, sign, save, load and verify a model's manifest
 *  (format in sw_manifest.h). JSON with jansson, hashes and signatures with
 *  libsodium, downloads through sw_fetch_text (libcurl). */
#include "sw_manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_fetch_text.h"
#include "sw_gguf.h"
#include "sw_model.h"

#define S_SIGN_CONTEXT "swisd manifest signing key v1"

struct sw_manifest_t {
    char model_id[SW_MANIFEST_MAX_NAME + 1];
    char checksum[17];                       /* 16 hex digits */
    int64_t version;
    char *url;
    char file_name[SW_MANIFEST_MAX_NAME + 1];
    uint64_t file_size;                      /* bytes */
    int32_t n_layers;
    uint64_t header_size;                    /* bytes before the data section */
    uint8_t header_sha256[32];
    int64_t n_tensors;
    sw_manifest_tensor_t *tensors;           /* (n_tensors) in file order; names owned */
    uint64_t *layer_bytes;                   /* (n_layers) bytes per layer */
    uint8_t signer[crypto_sign_PUBLICKEYBYTES];
    char signer_hex[SW_MANIFEST_SIGNER_HEX + 1];
    uint8_t signature[crypto_sign_BYTES];
};

static const char *s_part_names[] = {"layer", "embed", "head", "other"};

void sw_manifest_destroy(sw_manifest_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_manifest_t *m = *self_p;
    for (int64_t i = 0; i < m->n_tensors; i++)
        free((char *) m->tensors[i].name);
    free(m->tensors);
    free(m->layer_bytes);
    free(m->url);
    free(m);
    *self_p = NULL;
}

/* A name, id or URL: 1..max bytes, every byte printable ASCII above space
 * (the signing text is split on spaces and newlines). */
static bool s_token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f)
            return false;
    return true;
}

static bool s_url_ok(const char *url)
{
    return s_token_ok(url, SW_MANIFEST_MAX_URL) && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8));
}

/* The part and layer of a tensor from its name (GGUF naming: blk.N.*). */
static sw_manifest_part_t s_part_of(const char *name, int32_t n_layers, int32_t *layer)
{
    *layer = -1;
    if (!strncmp(name, "blk.", 4)) {
        char *end = NULL;
        errno = 0;
        long v = strtol(name + 4, &end, 10);
        if (!errno && end != name + 4 && *end == '.' && v >= 0 && v < n_layers) {
            *layer = (int32_t) v;
            return SW_MANIFEST_LAYER;
        }
        return SW_MANIFEST_OTHER;
    }
    if (!strcmp(name, "token_embd.weight"))
        return SW_MANIFEST_EMBED;
    if (!strcmp(name, "output_norm.weight") || !strcmp(name, "output.weight"))
        return SW_MANIFEST_HEAD;
    return SW_MANIFEST_OTHER;
}

static void s_hex(const uint8_t *b, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, b, n);
}

static int s_unhex(const char *hex, uint8_t *out, size_t n)
{
    size_t got = 0;
    if (!hex || strlen(hex) != 2 * n)
        return -1;
    if (sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, NULL) != 0 || got != n)
        return -1;
    return 0;
}

/* The signing text (sw_manifest.h), in a malloc'd buffer; NULL on no memory. */
static char *s_signing_text(const sw_manifest_t *m, size_t *len)
{
    /* exact bound, proportional to the document: a tensor line is its name
     * plus at most 134 bytes (part 5, layer 11, two 20-digit numbers, 64 hex,
     * "tensor", 6 separators and the newline) */
    size_t cap = 1024 + strlen(m->url) + strlen(m->model_id) + strlen(m->file_name);
    for (int64_t i = 0; i < m->n_tensors; i++)
        cap += strlen(m->tensors[i].name) + 140;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    char hh[65];
    s_hex(m->header_sha256, 32, hh);
    size_t n = (size_t) snprintf(t, cap,
                                 "swisd-manifest %d\nmodel_id %s\nchecksum %s\nversion %" PRId64 "\nurl %s\n"
                                 "file %s %" PRIu64 "\nn_layers %d\nheader %" PRIu64 " %s\n",
                                 SW_MANIFEST_FORMAT_VERSION, m->model_id, m->checksum, m->version, m->url,
                                 m->file_name, m->file_size, (int) m->n_layers, m->header_size, hh);
    for (int64_t i = 0; i < m->n_tensors && n < cap; i++) {
        const sw_manifest_tensor_t *x = &m->tensors[i];
        char th[65];
        s_hex(x->sha256, 32, th);
        n += (size_t) snprintf(t + n, cap - n, "tensor %s %s %d %" PRIu64 " %" PRIu64 " %s\n", x->name,
                               s_part_names[x->part], (int) x->layer, x->offset, x->size, th);
    }
    if (n >= cap) {
        free(t);
        return NULL;
    }
    *len = n;
    return t;
}

static int s_signing_keypair(const uint8_t node_secret_key[32], uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                             uint8_t sk[crypto_sign_SECRETKEYBYTES])
{
    if (sodium_init() < 0)
        return -1;
    uint8_t seed[crypto_sign_SEEDBYTES];
    crypto_generichash(seed, sizeof seed, node_secret_key, 32, (const uint8_t *) S_SIGN_CONTEXT,
                       strlen(S_SIGN_CONTEXT));
    int rc = crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

int sw_manifest_signer_of(const uint8_t node_secret_key[32], char hex[SW_MANIFEST_SIGNER_HEX + 1])
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    if (s_signing_keypair(node_secret_key, pk, sk) != 0)
        return -1;
    sodium_memzero(sk, sizeof sk);
    s_hex(pk, sizeof pk, hex);
    return 0;
}

/* SHA-256 of bytes [off, off + n) of fd into out. */
static int s_hash_range(int fd, uint64_t off, uint64_t n, uint8_t out[32], uint8_t *buf, size_t bufsize)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    while (n > 0) {
        size_t want = n < bufsize ? (size_t) n : bufsize;
        ssize_t got = pread(fd, buf, want, (off_t) off);
        if (got <= 0)
            return -1;
        crypto_hash_sha256_update(&st, buf, (size_t) got);
        off += (uint64_t) got;
        n -= (uint64_t) got;
    }
    crypto_hash_sha256_final(&st, out);
    return 0;
}

sw_manifest_t *sw_manifest_build(const char *gguf_path, const char *url, int64_t version,
                                 const uint8_t node_secret_key[32], char *err, size_t errlen)
{
    if (!url || !s_url_ok(url)) {
        sw_err(err, errlen, "url '%.200s': want http:// or https:// and no spaces, at most %d bytes",
               url ? url : "", SW_MANIFEST_MAX_URL);
        return NULL;
    }
    if (version < 0) {
        sw_err(err, errlen, "version %" PRId64 ": want >= 0", version);
        return NULL;
    }
    if (sodium_init() < 0) {
        sw_err(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    char gerr[256];
    sw_gguf_t *g = sw_gguf_open(gguf_path, gerr, sizeof gerr);
    if (!g) {
        sw_err(err, errlen, "%s: %s", gguf_path, gerr);
        return NULL;
    }
    sw_manifest_t *m = calloc(1, sizeof *m);
    uint8_t *buf = malloc(1 << 20);
    int fd = open(gguf_path, O_RDONLY | O_CLOEXEC);
    sw_hparams_t hp;
    if (!m || !buf || fd < 0) {
        sw_err(err, errlen, "%s: %s", gguf_path, fd < 0 ? strerror(errno) : "out of memory");
        goto fail;
    }
    if (sw_hparams_from_gguf(g, &hp, gerr, sizeof gerr) != 0) {
        sw_err(err, errlen, "%s: %s", gguf_path, gerr);
        goto fail;
    }
    const char *base = strrchr(gguf_path, '/') ? strrchr(gguf_path, '/') + 1 : gguf_path;
    if (!s_token_ok(base, SW_MANIFEST_MAX_NAME)) {
        sw_err(err, errlen, "%s: the file name must be 1..%d printable bytes without spaces", gguf_path,
               SW_MANIFEST_MAX_NAME);
        goto fail;
    }
    char id[129];
    sw_model_identity_of(g, gguf_path, id, sizeof id, m->checksum, sizeof m->checksum);
    snprintf(m->model_id, sizeof m->model_id, "%s", id);
    snprintf(m->file_name, sizeof m->file_name, "%s", base);
    m->url = strdup(url);
    m->version = version;
    m->file_size = sw_gguf_file_size(g);
    m->n_layers = hp.n_layer;
    m->header_size = sw_gguf_data_offset(g);
    m->n_tensors = sw_gguf_n_tensors(g);
    m->tensors = calloc((size_t) m->n_tensors + 1, sizeof *m->tensors);
    m->layer_bytes = calloc((size_t) m->n_layers + 1, sizeof *m->layer_bytes);
    if (!m->url || !m->tensors || !m->layer_bytes) {
        sw_err(err, errlen, "out of memory");
        goto fail;
    }
    if (s_hash_range(fd, 0, m->header_size, m->header_sha256, buf, 1 << 20) != 0) {
        sw_err(err, errlen, "%s: read error in the header", gguf_path);
        goto fail;
    }
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        sw_manifest_tensor_t *x = &m->tensors[i];
        if (!s_token_ok(t->name, SW_MANIFEST_MAX_NAME)) {
            sw_err(err, errlen, "tensor %" PRId64 ": name not printable ASCII without spaces", i);
            goto fail;
        }
        x->name = strdup(t->name);
        if (!x->name) {
            sw_err(err, errlen, "out of memory");
            goto fail;
        }
        x->part = s_part_of(t->name, m->n_layers, &x->layer);
        x->offset = m->header_size + t->offset;
        x->size = t->nbytes;
        if (s_hash_range(fd, x->offset, x->size, x->sha256, buf, 1 << 20) != 0) {
            sw_err(err, errlen, "%s: read error in tensor '%s'", gguf_path, t->name);
            goto fail;
        }
        if (x->part == SW_MANIFEST_LAYER)
            m->layer_bytes[x->layer] += x->size;
    }
    /* file order: sort by offset (GGUF lists tensors in any order) */
    for (int64_t i = 1; i < m->n_tensors; i++)
        for (int64_t j = i; j > 0 && m->tensors[j - 1].offset > m->tensors[j].offset; j--) {
            sw_manifest_tensor_t tmp = m->tensors[j];
            m->tensors[j] = m->tensors[j - 1];
            m->tensors[j - 1] = tmp;
        }
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    if (s_signing_keypair(node_secret_key, m->signer, sk) != 0) {
        sw_err(err, errlen, "signing key derivation failed");
        goto fail;
    }
    s_hex(m->signer, sizeof m->signer, m->signer_hex);
    size_t tlen = 0;
    char *text = s_signing_text(m, &tlen);
    if (!text) {
        sodium_memzero(sk, sizeof sk);
        sw_err(err, errlen, "out of memory");
        goto fail;
    }
    crypto_sign_detached(m->signature, NULL, (const uint8_t *) text, tlen, sk);
    sodium_memzero(sk, sizeof sk);
    free(text);
    close(fd);
    free(buf);
    sw_gguf_destroy(&g);
    return m;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    sw_gguf_destroy(&g);
    sw_manifest_destroy(&m);
    return NULL;
}

static json_t *s_to_json(const sw_manifest_t *m)
{
    char hh[65], sig[2 * crypto_sign_BYTES + 1];
    s_hex(m->header_sha256, 32, hh);
    s_hex(m->signature, sizeof m->signature, sig);
    json_t *tensors = json_array(), *layers = json_array();
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const sw_manifest_tensor_t *x = &m->tensors[i];
        char th[65];
        s_hex(x->sha256, 32, th);
        json_array_append_new(tensors, json_pack("{s:s, s:s, s:i, s:I, s:I, s:s}", "name", x->name, "part",
                                                 s_part_names[x->part], "layer", (int) x->layer, "offset",
                                                 (json_int_t) x->offset, "size", (json_int_t) x->size,
                                                 "sha256", th));
    }
    for (int32_t l = 0; l < m->n_layers; l++)
        json_array_append_new(layers, json_pack("{s:i, s:I}", "layer", (int) l, "bytes",
                                                (json_int_t) m->layer_bytes[l]));
    return json_pack("{s:s, s:i, s:s, s:s, s:I, s:s, s:s, s:I, s:i, s:{s:i, s:I, s:s}, s:o, s:o, s:s, s:s}",
                     "format", "swisd-manifest", "format_version", SW_MANIFEST_FORMAT_VERSION, "model_id",
                     m->model_id, "checksum", m->checksum, "version", (json_int_t) m->version, "url", m->url,
                     "file_name", m->file_name, "file_size", (json_int_t) m->file_size, "n_layers",
                     (int) m->n_layers, "header", "offset", 0, "size", (json_int_t) m->header_size, "sha256", hh,
                     "tensors", tensors, "layers", layers, "signer", m->signer_hex, "signature", sig);
}

int sw_manifest_save(const sw_manifest_t *m, const char *path, char *err, size_t errlen)
{
    json_t *j = s_to_json(m);
    if (!j)
        return sw_err(err, errlen, "out of memory");
    char tmp[4200];
    if ((size_t) snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int) getpid()) >= sizeof tmp) {
        json_decref(j);
        return sw_err(err, errlen, "%s: path too long", path);
    }
    int rc = json_dump_file(j, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sw_err(err, errlen, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

/* Reads a non-negative integer field. */
static int s_get_u64(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t) json_integer_value(v);
    return 0;
}

static const char *s_get_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

sw_manifest_t *sw_manifest_parse(const char *text, size_t len, const char *pinned_signer_hex, char *err,
                                 size_t errlen)
{
    if (!pinned_signer_hex) {
        sw_err(err, errlen, "no pinned manifest key: refusing an unsigned-for-us manifest (pass --manifest-key)");
        return NULL;
    }
    uint8_t pinned[crypto_sign_PUBLICKEYBYTES];
    if (sodium_init() < 0 || s_unhex(pinned_signer_hex, pinned, sizeof pinned) != 0) {
        sw_err(err, errlen, "pinned manifest key: want %d hex digits", SW_MANIFEST_SIGNER_HEX);
        return NULL;
    }
    if (len > SW_MANIFEST_MAX_JSON) {
        sw_err(err, errlen, "manifest of %zu bytes: larger than the limit of %u", len, SW_MANIFEST_MAX_JSON);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        sw_err(err, errlen, "manifest: not JSON (line %d: %s)", jerr.line, jerr.text);
        return NULL;
    }
    sw_manifest_t *m = calloc(1, sizeof *m);
    if (!m) {
        json_decref(j);
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    const char *what = NULL;
    uint64_t u = 0;
    json_t *hdr = json_object_get(j, "header"), *tensors = json_object_get(j, "tensors");
    const char *s;
#define S_FAIL(w)                                                                                                  \
    do {                                                                                                           \
        what = (w);                                                                                                \
        goto bad;                                                                                                  \
    } while (0)
    if (!json_is_object(j) || !(s = s_get_str(j, "format")) || strcmp(s, "swisd-manifest"))
        S_FAIL("format is not \"swisd-manifest\"");
    if (s_get_u64(j, "format_version", &u) || u != SW_MANIFEST_FORMAT_VERSION)
        S_FAIL("format_version is not 1");
    if (!(s = s_get_str(j, "model_id")) || !s_token_ok(s, SW_MANIFEST_MAX_NAME))
        S_FAIL("model_id");
    snprintf(m->model_id, sizeof m->model_id, "%s", s);
    if (!(s = s_get_str(j, "checksum")) || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16)
        S_FAIL("checksum (16 lowercase hex digits)");
    memcpy(m->checksum, s, 17);
    if (s_get_u64(j, "version", &u) || u > INT64_MAX)
        S_FAIL("version");
    m->version = (int64_t) u;
    if (!(s = s_get_str(j, "url")) || !s_url_ok(s))
        S_FAIL("url (http:// or https://, no spaces)");
    if (!(m->url = strdup(s)))
        S_FAIL("out of memory");
    if (!(s = s_get_str(j, "file_name")) || !s_token_ok(s, SW_MANIFEST_MAX_NAME) || strchr(s, '/') ||
        !strcmp(s, ".") || !strcmp(s, ".."))
        S_FAIL("file_name (no '/')");
    snprintf(m->file_name, sizeof m->file_name, "%s", s);
    if (s_get_u64(j, "file_size", &m->file_size) || m->file_size > ((uint64_t) 1 << 50))
        S_FAIL("file_size");
    if (s_get_u64(j, "n_layers", &u) || u == 0 || u > SW_MANIFEST_MAX_LAYERS)
        S_FAIL("n_layers");
    m->n_layers = (int32_t) u;
    if (!json_is_object(hdr) || s_get_u64(hdr, "offset", &u) || u != 0 ||
        s_get_u64(hdr, "size", &m->header_size) || m->header_size < 24 || m->header_size > m->file_size ||
        s_unhex(s_get_str(hdr, "sha256"), m->header_sha256, 32))
        S_FAIL("header {offset 0, size, sha256}");
    if (!json_is_array(tensors) || json_array_size(tensors) > SW_MANIFEST_MAX_TENSORS)
        S_FAIL("tensors");
    m->n_tensors = 0;
    m->tensors = calloc(json_array_size(tensors) + 1, sizeof *m->tensors);
    m->layer_bytes = calloc((size_t) m->n_layers, sizeof *m->layer_bytes);
    if (!m->tensors || !m->layer_bytes)
        S_FAIL("out of memory");
    uint64_t prev_end = m->header_size;
    for (size_t i = 0; i < json_array_size(tensors); i++) {
        json_t *t = json_array_get(tensors, i);
        sw_manifest_tensor_t *x = &m->tensors[i];
        json_t *lv = json_object_get(t, "layer");
        const char *part = s_get_str(t, "part");
        if (!json_is_object(t) || !(s = s_get_str(t, "name")) || !s_token_ok(s, SW_MANIFEST_MAX_NAME) || !part ||
            !json_is_integer(lv) || s_get_u64(t, "offset", &x->offset) || s_get_u64(t, "size", &x->size) ||
            s_unhex(s_get_str(t, "sha256"), x->sha256, 32))
            S_FAIL("a tensor lacks name, part, layer, offset, size or sha256");
        if (!(x->name = strdup(s)))
            S_FAIL("out of memory");
        m->n_tensors++;
        int p = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(part, s_part_names[k]))
                p = k;
        if (p < 0)
            S_FAIL("a tensor's part is not layer, embed, head or other");
        x->part = (sw_manifest_part_t) p;
        json_int_t layer = json_integer_value(lv);
        if (p == SW_MANIFEST_LAYER ? (layer < 0 || layer >= m->n_layers) : layer != -1)
            S_FAIL("a tensor's layer is out of range (or not -1 outside a layer)");
        x->layer = (int32_t) layer;
        if (x->offset < prev_end || x->size > m->file_size || x->offset > m->file_size - x->size)
            S_FAIL("tensors overlap, precede the header's end, are out of file order or run past the file");
        prev_end = x->offset + x->size;
        if (p == SW_MANIFEST_LAYER)
            m->layer_bytes[x->layer] += x->size;
    }
    if (s_unhex(s_get_str(j, "signer"), m->signer, sizeof m->signer) != 0)
        S_FAIL("signer (64 hex digits)");
    s_hex(m->signer, sizeof m->signer, m->signer_hex);
    if (s_unhex(s_get_str(j, "signature"), m->signature, sizeof m->signature) != 0)
        S_FAIL("signature (128 hex digits)");
#undef S_FAIL
    json_decref(j);
    if (sodium_memcmp(m->signer, pinned, sizeof pinned) != 0) {
        sw_err(err, errlen, "manifest signed by %.16s..., not by the pinned key %.16s...: refused", m->signer_hex,
               pinned_signer_hex);
        sw_manifest_destroy(&m);
        return NULL;
    }
    size_t tlen = 0;
    char *st = s_signing_text(m, &tlen);
    int bad_sig = !st || crypto_sign_verify_detached(m->signature, (const uint8_t *) st, tlen, m->signer) != 0;
    free(st);
    if (bad_sig) {
        sw_err(err, errlen, "manifest signature does not verify (altered after signing): refused");
        sw_manifest_destroy(&m);
        return NULL;
    }
    return m;
bad:
    json_decref(j);
    sw_manifest_destroy(&m);
    sw_err(err, errlen, "manifest: bad or missing field: %s", what);
    return NULL;
}

sw_manifest_t *sw_manifest_load(const char *url_or_path, const char *pinned_signer_hex, int timeout_s, char *err,
                                size_t errlen)
{
    size_t len = 0;
    char *text = sw_fetch_text(url_or_path, SW_MANIFEST_MAX_JSON, timeout_s, &len, err, errlen);
    if (!text)
        return NULL;
    char perr[400];
    sw_manifest_t *m = sw_manifest_parse(text, len, pinned_signer_hex, perr, sizeof perr);
    free(text);
    if (!m)
        sw_err(err, errlen, "%s: %s", url_or_path, perr);
    return m;
}

const char *sw_manifest_model_id(const sw_manifest_t *m) { return m->model_id; }
const char *sw_manifest_checksum(const sw_manifest_t *m) { return m->checksum; }
int sw_manifest_n_layers(const sw_manifest_t *m) { return m->n_layers; }
uint64_t sw_manifest_layer_bytes(const sw_manifest_t *m, int layer)
{
    return layer >= 0 && layer < m->n_layers ? m->layer_bytes[layer] : 0;
}
int64_t sw_manifest_version(const sw_manifest_t *m) { return m->version; }
const char *sw_manifest_url(const sw_manifest_t *m) { return m->url; }
const char *sw_manifest_file_name(const sw_manifest_t *m) { return m->file_name; }
uint64_t sw_manifest_file_size(const sw_manifest_t *m) { return m->file_size; }
uint64_t sw_manifest_header_size(const sw_manifest_t *m) { return m->header_size; }
const uint8_t *sw_manifest_header_sha256(const sw_manifest_t *m) { return m->header_sha256; }
int64_t sw_manifest_n_tensors(const sw_manifest_t *m) { return m->n_tensors; }
const sw_manifest_tensor_t *sw_manifest_tensor(const sw_manifest_t *m, int64_t i)
{
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}
const char *sw_manifest_signer(const sw_manifest_t *m) { return m->signer_hex; }
