/*  sw_shard_fetch.c: fetch a model's layers by HTTP range requests into a
 *  verified sparse GGUF (sw_shard_fetch.h). */
#include "sw_shard_fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_gguf.h"
#include "sw_shard_cache.h"

#define S_ATTEMPTS 6             /* tries of one range (first + 5 retries) */
#define S_BACKOFF_MS 200         /* first back-off, doubled per retry */
#define S_BACKOFF_MAX_MS 3000    /* longest back-off */
#define S_COPY_CHUNK (1u << 20)  /* bytes per read/write when moving a verified range */

/* The download rate cap across one sw_shards_fetch (all its ranges): the
 * write callback sleeps while the bytes so far are ahead of kbps; the
 * sleeping receiver lets TCP's flow control slow the sender. (libcurl's
 * CURLOPT_MAX_RECV_SPEED_LARGE works per transfer and lets the bytes already
 * in the socket buffer through at each range's start: measured 43 MB/s
 * against a 20 MB/s cap over 4.7 MB ranges.) */
typedef struct {
    uint32_t kbps;        /* kilobytes (1000 B) per second; 0 = no cap */
    double t0;            /* when the first byte came, s (monotonic); 0 before */
    uint64_t bytes;       /* bytes received since t0 */
} s_pace_t;

static double s_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void s_pace(s_pace_t *p, size_t n)
{
    if (!p->kbps)
        return;
    double now = s_now_s();
    if (p->t0 == 0)
        p->t0 = now;
    p->bytes += n;
    double due = p->t0 + (double) p->bytes / ((double) p->kbps * 1000.0);
    if (due > now) {
        double wait = due - now;
        if (wait > 1.0) /* a large first read: spread, never one long silence (the stall time-out) */
            wait = 1.0;
        struct timespec ts = {(time_t) wait, (long) ((wait - (double) (time_t) wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* One range being received into its .part file. */
typedef struct {
    int part_fd;                       /* FILE.part.OFFSET */
    uint64_t want;                     /* bytes of the whole range */
    uint64_t have;                     /* bytes in the part file */
    crypto_hash_sha256_state sha;      /* over the part file's bytes */
    uint64_t expect_start;             /* first byte this request asked for (file offset) */
    long status;                       /* HTTP status of this response */
    bool range_ok;                     /* Content-Range starts at expect_start */
    bool io_error;                     /* a write to the part file failed */
    bool too_long;                     /* the server sent more than asked */
    sw_shard_fetch_stats_t *stats;
    s_pace_t *pace;                    /* the rate cap */
} s_recv_t;

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static size_t s_on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    s_recv_t *r = ud;
    size_t n = size * nmemb;
    if (n > 9 && !strncmp(p, "HTTP/", 5)) {
        r->range_ok = false; /* a new response (e.g. after a redirect) */
        r->status = 0;
        const char *sp = memchr(p, ' ', n);
        if (sp && sp + 4 <= p + n)
            r->status = strtol(sp + 1, NULL, 10);
    } else if (n > 20 && !strncasecmp(p, "content-range:", 14)) {
        char buf[128];
        size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
        memcpy(buf, p, k);
        buf[k] = 0;
        unsigned long long a = 0;
        const char *b = strstr(buf, "bytes ");
        r->range_ok = b && sscanf(b + 6, "%llu-", &a) == 1 && a == r->expect_start;
    }
    return n;
}

static size_t s_on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    s_recv_t *r = ud;
    size_t n = size * nmemb;
    if (r->status != 206 || !r->range_ok)
        return 0; /* not the range asked for: abort (checked after perform) */
    if (n > r->want - r->have) {
        r->too_long = true;
        return 0;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(r->part_fd, p + done, n - done, (off_t) (r->have + done));
        if (w <= 0) {
            r->io_error = true;
            return 0;
        }
        done += (size_t) w;
    }
    crypto_hash_sha256_update(&r->sha, (const uint8_t *) p, n);
    r->have += n;
    r->stats->bytes_received += n;
    s_pace(r->pace, n);
    return n;
}

/* Rehashes the first r->have bytes of the part file (a resume after a restart). */
static int s_rehash_part(s_recv_t *r, uint8_t *buf)
{
    crypto_hash_sha256_init(&r->sha);
    uint64_t off = 0;
    while (off < r->have) {
        size_t want = r->have - off < S_COPY_CHUNK ? (size_t) (r->have - off) : S_COPY_CHUNK;
        ssize_t got = pread(r->part_fd, buf, want, (off_t) off);
        if (got <= 0)
            return -1;
        crypto_hash_sha256_update(&r->sha, buf, (size_t) got);
        off += (uint64_t) got;
    }
    return 0;
}

/* Copies the verified part file into the sparse file at offset. */
static int s_move_in(int part_fd, int fd, uint64_t offset, uint64_t size, uint8_t *buf)
{
    uint64_t done = 0;
    while (done < size) {
        size_t want = size - done < S_COPY_CHUNK ? (size_t) (size - done) : S_COPY_CHUNK;
        ssize_t got = pread(part_fd, buf, want, (off_t) done);
        if (got <= 0)
            return -1;
        for (ssize_t w = 0; w < got;) {
            ssize_t k = pwrite(fd, buf + w, (size_t) (got - w), (off_t) (offset + done + (uint64_t) w));
            if (k <= 0)
                return -1;
            w += k;
        }
        done += (uint64_t) got;
    }
    return 0;
}

/* Fetches bytes [offset, offset + size) of the URL, checks their SHA-256,
 * writes them into the sparse file at offset and records NAME as verified. */
static int s_fetch_range(CURL *curl, sw_shard_cache_t *c, const char *url, const char *name, uint64_t offset,
                         uint64_t size, const uint8_t sha256[32], sw_shard_fetch_stats_t *stats, s_pace_t *pace,
                         uint8_t *buf, char *err, size_t errlen)
{
    char part[PATH_MAX + 32];
    snprintf(part, sizeof part, "%s.part.%" PRIu64, sw_shard_cache_path(c), offset);
    s_recv_t r = {.want = size, .stats = stats, .pace = pace};
    r.part_fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (r.part_fd < 0 || fstat(r.part_fd, &st) != 0) {
        sw_err(err, errlen, "%s: %s", part, strerror(errno));
        goto fail;
    }
    r.have = (uint64_t) st.st_size <= size ? (uint64_t) st.st_size : 0;
    if (ftruncate(r.part_fd, (off_t) r.have) != 0 || s_rehash_part(&r, buf) != 0) {
        sw_err(err, errlen, "%s: cannot reuse the partial download: %s", part, strerror(errno));
        goto fail;
    }
    char last[256] = "no attempt";
    int backoff = S_BACKOFF_MS;
    bool resumed_before = r.have > 0;
    for (int attempt = 0; attempt < S_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            s_sleep_ms(backoff);
            backoff = backoff * 2 < S_BACKOFF_MAX_MS ? backoff * 2 : S_BACKOFF_MAX_MS;
        }
        if (r.have < size) {
            char range[64];
            r.expect_start = offset + r.have;
            snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, offset + r.have, offset + size - 1);
            if (r.have > 0 || resumed_before)
                stats->resumes++;
            resumed_before = false;
            stats->ranges++;
            r.status = 0;
            r.range_ok = r.io_error = r.too_long = false;
            curl_easy_setopt(curl, CURLOPT_RANGE, range);
            curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_on_header);
            curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
            curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_body);
            curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
            CURLcode rc = curl_easy_perform(curl);
            if (r.io_error) {
                sw_err(err, errlen, "%s: write error: %s", part, strerror(errno));
                goto fail;
            }
            if (rc != CURLE_OK || r.have < size) {
                if (r.status && r.status != 206)
                    snprintf(last, sizeof last, "HTTP status %ld (want 206 Partial Content)", r.status);
                else if (r.status == 206 && !r.range_ok)
                    snprintf(last, sizeof last, "Content-Range does not start at byte %" PRIu64, r.expect_start);
                else if (r.too_long)
                    snprintf(last, sizeof last, "server sent more bytes than asked");
                else
                    snprintf(last, sizeof last, "%s after %" PRIu64 " of %" PRIu64 " bytes",
                             rc != CURLE_OK ? curl_easy_strerror(rc) : "short response", r.have, size);
                if (r.status == 200 || (r.status >= 400 && r.status < 500 && r.status != 408 && r.status != 429))
                    break; /* the server will not have it (200: it does not serve ranges) */
                continue;
            }
        }
        uint8_t got[32];
        crypto_hash_sha256_state fin = r.sha;
        crypto_hash_sha256_final(&fin, got);
        if (sodium_memcmp(got, sha256, 32) != 0) {
            stats->hash_failures++;
            snprintf(last, sizeof last, "SHA-256 mismatch (the range is corrupt; refetched)");
            r.have = 0;
            crypto_hash_sha256_init(&r.sha);
            if (ftruncate(r.part_fd, 0) != 0) {
                sw_err(err, errlen, "%s: %s", part, strerror(errno));
                goto fail;
            }
            continue;
        }
        if (s_move_in(r.part_fd, sw_shard_cache_fd(c), offset, size, buf) != 0) {
            sw_err(err, errlen, "%s: cannot write tensor '%s': %s", sw_shard_cache_path(c), name, strerror(errno));
            goto fail;
        }
        if (sw_shard_cache_mark(c, name, sha256, err, errlen) != 0)
            goto fail;
        close(r.part_fd);
        unlink(part);
        return 0;
    }
    sw_err(err, errlen, "tensor '%s' [%" PRIu64 ", +%" PRIu64 ") from %s: %s", name, offset, size, url, last);
fail:
    if (r.part_fd >= 0)
        close(r.part_fd);
    return -1;
}

/* The verified header must describe the manifest's tensors: same data
 * section start, same names at the same offsets and sizes (a manifest built
 * from another file, or by a buggy tool, would otherwise place verified bytes
 * where the loader reads other tensors). */
static int s_check_header(const sw_manifest_t *m, const char *path, char *err, size_t errlen)
{
    char gerr[256];
    sw_gguf_t *g = sw_gguf_open(path, gerr, sizeof gerr);
    if (!g)
        return sw_err(err, errlen, "%s: the verified header does not open: %s", path, gerr);
    int rc = 0;
    if (sw_gguf_data_offset(g) != sw_manifest_header_size(m) || sw_gguf_n_tensors(g) != sw_manifest_n_tensors(m))
        rc = sw_err(err, errlen, "manifest does not match the GGUF header: data at %zu and %lld tensors, manifest "
                    "says %llu and %lld", sw_gguf_data_offset(g), (long long) sw_gguf_n_tensors(g),
                    (unsigned long long) sw_manifest_header_size(m), (long long) sw_manifest_n_tensors(m));
    for (int64_t i = 0; rc == 0 && i < sw_manifest_n_tensors(m); i++) {
        const sw_manifest_tensor_t *t = sw_manifest_tensor(m, i);
        const sw_gguf_tensor_t *x = sw_gguf_find_tensor(g, t->name);
        if (!x || sw_gguf_data_offset(g) + x->offset != t->offset || x->nbytes != t->size)
            rc = sw_err(err, errlen, "manifest does not match the GGUF header: tensor '%s'", t->name);
    }
    sw_gguf_destroy(&g);
    return rc;
}

static bool s_wanted(const sw_manifest_tensor_t *t, int first, int last, const sw_shard_fetch_opts_t *o)
{
    switch (t->part) {
    case SW_MANIFEST_LAYER: return first >= 0 && t->layer >= first && t->layer <= last;
    case SW_MANIFEST_EMBED: return o->embed;
    case SW_MANIFEST_HEAD: return o->head;
    default: return true;
    }
}

int sw_shards_fetch(const sw_manifest_t *m, int first, int last, const sw_shard_fetch_opts_t *o, char *path,
                    size_t pathlen, char *err, size_t errlen)
{
    if (!m || !o || !o->cache_dir || !path || pathlen == 0)
        return sw_err(err, errlen, "sw_shards_fetch: missing argument");
    if (!(first == -1 && last == -1) && (first < 0 || last < first || last >= sw_manifest_n_layers(m)))
        return sw_err(err, errlen, "layers %d-%d: out of range for a model of %d layers", first, last,
                      sw_manifest_n_layers(m));
    if (sodium_init() < 0)
        return sw_err(err, errlen, "libsodium failed to initialise");
    sw_shard_fetch_stats_t local = {0}, *stats = o->stats ? o->stats : &local;
    int timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
    sw_shard_cache_t *c = sw_shard_cache_open(o->cache_dir, sw_manifest_model_id(m), sw_manifest_checksum(m),
                                              sw_manifest_file_name(m), sw_manifest_file_size(m), err, errlen);
    if (!c)
        return -1;
    int rc = -1;
    CURL *curl = NULL;
    s_pace_t pace = {.kbps = o->download_kbps};
    uint8_t *buf = malloc(S_COPY_CHUNK);
    if (!buf) {
        sw_err(err, errlen, "out of memory");
        goto done;
    }
    /* what is missing */
    uint64_t need = 0;
    bool need_header = !sw_shard_cache_has(c, "(header)", sw_manifest_header_sha256(m));
    if (need_header)
        need += sw_manifest_header_size(m);
    for (int64_t i = 0; i < sw_manifest_n_tensors(m); i++) {
        const sw_manifest_tensor_t *t = sw_manifest_tensor(m, i);
        if (s_wanted(t, first, last, o) && !sw_shard_cache_has(c, t->name, t->sha256))
            need += t->size;
    }
    /* room under the cap: other models first (least recently used), then our
     * tensors not asked for; nothing is evicted when even that cannot make room */
    if (o->max_disk_bytes && need > 0) {
        bool own_free = !sw_shard_cache_in_use(c);
        uint64_t droppable = 0;
        for (int64_t i = 0; own_free && i < sw_manifest_n_tensors(m); i++) {
            const sw_manifest_tensor_t *t = sw_manifest_tensor(m, i);
            if (!s_wanted(t, first, last, o) && sw_shard_cache_has(c, t->name, t->sha256))
                droppable += t->size;
        }
        int ev = sw_shard_cache_evict_others(c, o->max_disk_bytes, need, droppable, &stats->evicted_bytes);
        for (int64_t i = 0; ev == -1 && own_free && i < sw_manifest_n_tensors(m); i++) {
            const sw_manifest_tensor_t *t = sw_manifest_tensor(m, i);
            if (s_wanted(t, first, last, o) || !sw_shard_cache_has(c, t->name, t->sha256))
                continue;
            uint64_t before = sw_shard_cache_usage(o->cache_dir);
            if (sw_shard_cache_drop(c, t->name, t->offset, t->size, err, errlen) != 0)
                goto done;
            uint64_t after = sw_shard_cache_usage(o->cache_dir);
            stats->evicted_bytes += before > after ? before - after : 0;
            if (after + need <= o->max_disk_bytes)
                break;
        }
        uint64_t usage = sw_shard_cache_usage(o->cache_dir);
        if (usage + need > o->max_disk_bytes) {
            sw_err(err, errlen,
                   "cache %s: %" PRIu64 " bytes in use (models in use are kept) + %" PRIu64
                   " to fetch exceed the cap of %" PRIu64 " bytes%s",
                   o->cache_dir, usage, need, o->max_disk_bytes, ev == -2 ? "; nothing was evicted" : "");
            goto done;
        }
    }
    if (need > 0) {
        curl = curl_easy_init();
        if (!curl) {
            sw_err(err, errlen, "libcurl failed to initialise");
            goto done;
        }
        curl_easy_setopt(curl, CURLOPT_URL, sw_manifest_url(m));
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long) timeout_s);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long) timeout_s);
        curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024); /* fewer, larger writes to the part file */
    }
    if (need_header && s_fetch_range(curl, c, sw_manifest_url(m), "(header)", 0, sw_manifest_header_size(m),
                                     sw_manifest_header_sha256(m), stats, &pace, buf, err, errlen) != 0)
        goto done;
    if (s_check_header(m, sw_shard_cache_path(c), err, errlen) != 0)
        goto done;
    for (int64_t i = 0; i < sw_manifest_n_tensors(m); i++) {
        const sw_manifest_tensor_t *t = sw_manifest_tensor(m, i);
        if (!s_wanted(t, first, last, o) || sw_shard_cache_has(c, t->name, t->sha256))
            continue;
        if (s_fetch_range(curl, c, sw_manifest_url(m), t->name, t->offset, t->size, t->sha256, stats, &pace, buf,
                          err, errlen) != 0)
            goto done;
    }
    if ((size_t) snprintf(path, pathlen, "%s", sw_shard_cache_path(c)) >= pathlen) {
        sw_err(err, errlen, "path buffer of %zu bytes too small", pathlen);
        goto done;
    }
    rc = 0;
done:
    if (curl)
        curl_easy_cleanup(curl);
    free(buf);
    sw_shard_cache_destroy(&c);
    return rc;
}

int sw_shards_hold(const sw_manifest_t *m, const char *cache_dir, char *err, size_t errlen)
{
    return sw_shard_cache_hold(cache_dir, sw_manifest_model_id(m), sw_manifest_checksum(m), err, errlen);
}

int64_t sw_shards_trim(const sw_manifest_t *m, int first, int last, const sw_shard_fetch_opts_t *o, char *err,
                       size_t errlen)
{
    if (!m || !o || !o->cache_dir)
        return sw_err(err, errlen, "sw_shards_trim: missing argument");
    sw_shard_cache_t *c = sw_shard_cache_open(o->cache_dir, sw_manifest_model_id(m), sw_manifest_checksum(m),
                                              sw_manifest_file_name(m), sw_manifest_file_size(m), err, errlen);
    if (!c)
        return -1;
    uint64_t before = sw_shard_cache_usage(o->cache_dir);
    int rc = 0;
    for (int64_t i = 0; rc == 0 && i < sw_manifest_n_tensors(m); i++) {
        const sw_manifest_tensor_t *t = sw_manifest_tensor(m, i);
        if (!s_wanted(t, first, last, o) && sw_shard_cache_has(c, t->name, t->sha256))
            rc = sw_shard_cache_drop(c, t->name, t->offset, t->size, err, errlen);
    }
    uint64_t after = sw_shard_cache_usage(o->cache_dir);
    sw_shard_cache_destroy(&c);
    return rc != 0 ? -1 : (int64_t) (before > after ? before - after : 0);
}
