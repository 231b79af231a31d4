/*  test_manifest.c: fetch/sw_manifest and fetch/sw_shard_cache without the
 *  network: build + save + load a signed manifest of models/stories260K.gguf,
 *  the refusals (altered text, other signer, no pinned key, malformed fields),
 *  and the cache's least-recently-used eviction that skips an entry in use.
 *  (Range downloads over real HTTP: tests/test_shards.py.) */
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "sw_test.h"
#include "sw_manifest.h"
#include "sw_shard_cache.h"

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 22);
    *len = buf ? fread(buf, 1, (1 << 22) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[*len] = 0;
    return buf;
}

/* Replaces the first occurrence of `from` in the text by `to` (same length). */
static bool s_patch(char *text, const char *from, const char *to)
{
    char *p = strstr(text, from);
    if (!p || strlen(from) != strlen(to))
        return false;
    memcpy(p, to, strlen(to));
    return true;
}

static void s_manifest(const char *dir)
{
    const char *model = SWISD_SOURCE_DIR "/models/stories260K.gguf";
    uint8_t key[32], key2[32];
    memset(key, 7, sizeof key);
    memset(key2, 8, sizeof key2);
    char err[512], signer[65], signer2[65], again[65];
    CHECK(sw_manifest_signer_of(key, signer) == 0 && sw_manifest_signer_of(key, again) == 0);
    CHECK(sw_manifest_signer_of(key2, signer2) == 0);
    CHECK_MSG(!strcmp(signer, again) && strcmp(signer, signer2) && strlen(signer) == 64,
              "the signer is a function of the node key (%s, %s)", signer, signer2);

    CHECK(!sw_manifest_build(model, "ftp://x/y.gguf", 1, key, err, sizeof err));
    CHECK(!sw_manifest_build(model, "http://x/a b.gguf", 1, key, err, sizeof err));
    CHECK(!sw_manifest_build(model, "http://x/y.gguf", -1, key, err, sizeof err));
    sw_manifest_t *m = sw_manifest_build(model, "http://127.0.0.1:9/stories260K.gguf", 3, key, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    const char *path = sw_test_path(dir, "m.json");
    CHECK_MSG(sw_manifest_save(m, path, err, sizeof err) == 0, "%s", err);
    struct stat st;
    CHECK(stat(model, &st) == 0);
    /* every byte of the file is the header or exactly one tensor (stories260K: no padding between them) */
    uint64_t sum = sw_manifest_header_size(m);
    for (int64_t i = 0; i < sw_manifest_n_tensors(m); i++)
        sum += sw_manifest_tensor(m, i)->size;
    CHECK_MSG(sum == (uint64_t) st.st_size && sw_manifest_file_size(m) == (uint64_t) st.st_size,
              "header + tensors = %" PRIu64 ", file %lld", sum, (long long) st.st_size);
    /* stories260K: 5 layers of dim 64, hidden 172, 8 heads of 8, 4 kv heads (f32):
     * 2 norms of 64 + q, o (64x64) + k, v (64x32) + 3 ffn (64x172), times 4 bytes */
    uint64_t per_layer = 4u * (2 * 64 + 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 172);
    CHECK_MSG(sw_manifest_n_layers(m) == 5 && sw_manifest_layer_bytes(m, 0) == per_layer &&
                  sw_manifest_layer_bytes(m, 4) == per_layer && sw_manifest_layer_bytes(m, 5) == 0,
              "layer bytes %" PRIu64 ", want %" PRIu64, sw_manifest_layer_bytes(m, 0), per_layer);
    CHECK(!strcmp(sw_manifest_model_id(m), "stories260K") && sw_manifest_version(m) == 3 &&
          !strcmp(sw_manifest_signer(m), signer));

    sw_manifest_t *l = sw_manifest_load(path, signer, 5, err, sizeof err);
    CHECK_MSG(l != NULL, "%s", err);
    if (l) {
        CHECK(sw_manifest_n_tensors(l) == sw_manifest_n_tensors(m) &&
              !strcmp(sw_manifest_checksum(l), sw_manifest_checksum(m)) &&
              !memcmp(sw_manifest_header_sha256(l), sw_manifest_header_sha256(m), 32));
        for (int64_t i = 0; i < sw_manifest_n_tensors(l); i++) {
            const sw_manifest_tensor_t *a = sw_manifest_tensor(l, i), *b = sw_manifest_tensor(m, i);
            CHECK(!strcmp(a->name, b->name) && a->offset == b->offset && a->size == b->size &&
                  !memcmp(a->sha256, b->sha256, 32) && a->layer == b->layer && a->part == b->part);
        }
    }
    sw_manifest_destroy(&l);
    CHECK(!sw_manifest_load(path, NULL, 5, err, sizeof err) && strstr(err, "no pinned manifest key"));
    CHECK(!sw_manifest_load(path, signer2, 5, err, sizeof err) && strstr(err, "not by the pinned key"));
    CHECK(!sw_manifest_load(path, "zz", 5, err, sizeof err));

    size_t len = 0;
    char *text = s_read(path, &len);
    CHECK(text != NULL);
    struct {
        const char *from, *to, *want; /* edit of the saved JSON, and the error it must give */
    } edits[] = {
        {"\"version\": 3", "\"version\": 4", "signature does not verify"},
        {"127.0.0.1:9", "127.0.0.2:9", "signature does not verify"},
        {"\"n_layers\": 5", "\"n_layers\": 0", "n_layers"},
        {"\"format_version\": 1", "\"format_version\": 2", "format_version"},
        {"\"part\": \"embed\"", "\"part\": \"ebmed\"", "part"},
        {"\"file_name\": \"stories260K.gguf\"", "\"file_name\": \"stories260K/gguf\"", "file_name"},
        {"\"offset\": 145280", "\"offset\": 145279", "overlap"},
        {"\"layer\": 0,", "\"layer\": 9,", "layer is out of range"},
        {"\"format\": \"swisd-manifest\"", "\"format\": \"swisd-manifesT\"", "format"},
    };
    for (size_t i = 0; text && i < sizeof edits / sizeof edits[0]; i++) {
        char *t = strdup(text);
        CHECK_MSG(s_patch(t, edits[i].from, edits[i].to), "edit %zu applies", i);
        sw_manifest_t *x = sw_manifest_parse(t, len, signer, err, sizeof err);
        CHECK_MSG(!x && strstr(err, edits[i].want), "edit %zu (%s): refused with '%s', got '%s'", i, edits[i].to,
                  edits[i].want, x ? "accepted" : err);
        sw_manifest_destroy(&x);
        free(t);
    }
    if (text) { /* one hex digit of the second tensor's SHA-256 changed */
        char *t = strdup(text), *p = strstr(t, "\"tensors\"");
        p = p ? strstr(p, "\"sha256\": \"") : NULL;
        p = p ? strstr(p + 1, "\"sha256\": \"") : NULL;
        CHECK(p != NULL);
        if (p) {
            p += strlen("\"sha256\": \"");
            *p = *p == '0' ? '1' : '0';
            sw_manifest_t *x = sw_manifest_parse(t, len, signer, err, sizeof err);
            CHECK_MSG(!x && strstr(err, "signature does not verify"), "a changed tensor hash: %s", x ? "accepted" : err);
            sw_manifest_destroy(&x);
        }
        free(t);
    }
    for (size_t cut = 0; text && cut < len; cut += len / 50 + 1) /* every truncation is an error, no crash */
        CHECK(!sw_manifest_parse(text, cut, signer, err, sizeof err));
    free(text);
    sw_manifest_destroy(&m);
}

/* One cache entry of `bytes` written at offset 0, last used now. */
static void s_entry(const char *cache, const char *id, uint64_t bytes)
{
    char err[256];
    sw_shard_cache_t *c = sw_shard_cache_open(cache, id, "0123456789abcdef", "m.gguf", 1 << 20, err, sizeof err);
    CHECK_MSG(c != NULL, "%s", err);
    if (!c)
        return;
    char *buf = calloc(1, bytes);
    memset(buf, 1, bytes);
    CHECK(pwrite(sw_shard_cache_fd(c), buf, bytes, 0) == (ssize_t) bytes);
    uint8_t sha[32] = {1};
    CHECK(sw_shard_cache_mark(c, "t", sha, err, sizeof err) == 0 && sw_shard_cache_has(c, "t", sha));
    uint8_t other[32] = {2};
    CHECK(!sw_shard_cache_has(c, "t", other) && !sw_shard_cache_has(c, "u", sha));
    free(buf);
    sw_shard_cache_destroy(&c);
    usleep(20000); /* distinct last-use times */
}

static bool s_exists(const char *cache, const char *id)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s-0123456789abcdef", cache, id);
    return stat(p, &st) == 0;
}

static void s_cache(const char *dir)
{
    char err[256];
    const char *cache = sw_test_path(dir, "cache");
    s_entry(cache, "a", 200000);
    s_entry(cache, "b", 200000);
    s_entry(cache, "c", 200000);
    uint64_t usage = sw_shard_cache_usage(cache);
    CHECK_MSG(usage >= 600000 && usage < 700000, "usage %" PRIu64, usage);
    int hold = sw_shard_cache_hold(cache, "a", "0123456789abcdef", err, sizeof err); /* a: oldest, but in use */
    CHECK_MSG(hold >= 0, "%s", err);
    sw_shard_cache_t *d = sw_shard_cache_open(cache, "d", "0123456789abcdef", "m.gguf", 1 << 20, err, sizeof err);
    CHECK(d != NULL);
    if (!d)
        return;
    uint64_t freed = 0;
    /* room for 200000 more under 700000: one entry must go: b (a is held) */
    CHECK(sw_shard_cache_evict_others(d, 700000, 200000, 0, &freed) == 0);
    CHECK(s_exists(cache, "a") && !s_exists(cache, "b") && s_exists(cache, "c") && freed >= 200000);
    /* a cap nothing can meet: -2 and nothing deleted */
    freed = 0;
    CHECK(sw_shard_cache_evict_others(d, 300000, 250000, 0, &freed) == -2 && freed == 0 && s_exists(cache, "c"));
    close(hold);
    CHECK(sw_shard_cache_evict_others(d, 300000, 250000, 0, &freed) == 0 && !s_exists(cache, "a") &&
          !s_exists(cache, "c"));
    /* drop frees the blocks */
    CHECK(sw_shard_cache_drop(d, "t", 0, 1 << 20, err, sizeof err) == 0);
    sw_shard_cache_destroy(&d);
    /* hostile names */
    CHECK(!sw_shard_cache_open(cache, "../x", "0123456789abcdef", "m.gguf", 10, err, sizeof err));
    CHECK(!sw_shard_cache_open(cache, "x", "0123456789abcdef", "../m.gguf", 10, err, sizeof err));
}

int main(void)
{
    char dir[] = "/tmp/swisd-test-manifest-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    s_manifest(dir);
    s_cache(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return sw_test_report("manifest");
}
