/*  sw_shard_cache.c: a shard cache entry (sw_shard_cache.h). */
#include "sw_shard_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_gguf.h"

#define S_MAX_ENTRIES 4096   /* model folders looked at when evicting */

struct sw_shard_cache_t {
    char dir[PATH_MAX];        /* CACHE/MODEL_ID-CHECKSUM */
    char path[PATH_MAX];       /* the sparse GGUF */
    char state_path[PATH_MAX]; /* FILE.state */
    char cache_dir[PATH_MAX];  /* CACHE */
    int fd;                    /* sparse GGUF, O_RDWR */
    int lock_fd;               /* "lock", held exclusively */
    uint64_t file_size;        /* bytes */
    json_t *verified;          /* object NAME -> sha256 hex */
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_save_state(sw_shard_cache_t *c, char *err, size_t errlen)
{
    json_t *j = json_pack("{s:I, s:I, s:O}", "file_size", (json_int_t) c->file_size, "last_used_ms",
                          (json_int_t) s_now_ms(), "verified", c->verified);
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->state_path);
    int rc = j ? json_dump_file(j, tmp, JSON_COMPACT) : -1;
    json_decref(j);
    if (rc != 0 || rename(tmp, c->state_path) != 0) {
        int e = errno;
        unlink(tmp);
        return sw_err(err, errlen, "%s: cannot write: %s", c->state_path, strerror(e));
    }
    return 0;
}

/* The state file's last use time, or 0 when it has none. */
static int64_t s_last_used(const char *entry_dir)
{
    DIR *d = opendir(entry_dir);
    if (!d)
        return 0;
    int64_t t = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".state"))
            continue;
        char p[PATH_MAX];
        if ((size_t) snprintf(p, sizeof p, "%s/%s", entry_dir, e->d_name) >= sizeof p)
            continue;
        json_t *j = json_load_file(p, 0, NULL);
        json_t *v = json_object_get(j, "last_used_ms");
        if (json_is_integer(v) && json_integer_value(v) > t)
            t = json_integer_value(v);
        json_decref(j);
    }
    closedir(d);
    return t;
}

static int s_mkdir(const char *p, char *err, size_t errlen)
{
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return sw_err(err, errlen, "%s: cannot create: %s", p, strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return sw_err(err, errlen, "%s: not a folder", p);
    return 0;
}

static int s_entry_dir(char *out, size_t outlen, const char *cache_dir, const char *model_id, const char *checksum,
                       char *err, size_t errlen)
{
    if (strchr(model_id, '/') || strchr(checksum, '/') || model_id[0] == '.')
        return sw_err(err, errlen, "model id '%.64s': not usable as a folder name", model_id);
    if ((size_t) snprintf(out, outlen, "%s/%s-%s", cache_dir, model_id, checksum) >= outlen)
        return sw_err(err, errlen, "cache path too long");
    if (s_mkdir(cache_dir, err, errlen) || s_mkdir(out, err, errlen))
        return -1;
    return 0;
}

sw_shard_cache_t *sw_shard_cache_open(const char *cache_dir, const char *model_id, const char *checksum,
                                      const char *file_name, uint64_t file_size, char *err, size_t errlen)
{
    sw_shard_cache_t *c = calloc(1, sizeof *c);
    if (!c) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = c->lock_fd = -1;
    c->file_size = file_size;
    snprintf(c->cache_dir, sizeof c->cache_dir, "%s", cache_dir);
    char lock[PATH_MAX + 8];
    if (strchr(file_name, '/') || file_name[0] == '.' ||
        s_entry_dir(c->dir, sizeof c->dir, cache_dir, model_id, checksum, err, errlen) != 0)
        goto fail_named;
    if ((size_t) snprintf(c->path, sizeof c->path, "%s/%s", c->dir, file_name) >= sizeof c->path ||
        (size_t) snprintf(c->state_path, sizeof c->state_path, "%s.state", c->path) >= sizeof c->state_path) {
        sw_err(err, errlen, "cache path too long");
        goto fail;
    }
    snprintf(lock, sizeof lock, "%s/lock", c->dir);
    c->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lock_fd < 0 || flock(c->lock_fd, LOCK_EX) != 0) {
        sw_err(err, errlen, "%s: cannot lock: %s", lock, strerror(errno));
        goto fail;
    }
    c->fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (c->fd < 0 || fstat(c->fd, &st) != 0) {
        sw_err(err, errlen, "%s: %s", c->path, strerror(errno));
        goto fail;
    }
    json_t *state = json_load_file(c->state_path, 0, NULL);
    json_t *fs = json_object_get(state, "file_size"), *v = json_object_get(state, "verified");
    if ((uint64_t) st.st_size == file_size && json_is_integer(fs) && (uint64_t) json_integer_value(fs) == file_size &&
        json_is_object(v))
        c->verified = json_incref(v);
    json_decref(state);
    if (!c->verified) {
        /* new, or from another file: start empty */
        if (ftruncate(c->fd, 0) != 0 || ftruncate(c->fd, (off_t) file_size) != 0) {
            sw_err(err, errlen, "%s: cannot size to %llu bytes: %s", c->path, (unsigned long long) file_size,
                   strerror(errno));
            goto fail;
        }
        c->verified = json_object();
        if (!c->verified || s_save_state(c, err, errlen) != 0)
            goto fail;
    }
    return c;
fail_named:
    (void) 0;
fail:
    sw_shard_cache_destroy(&c);
    return NULL;
}

void sw_shard_cache_destroy(sw_shard_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_shard_cache_t *c = *self_p;
    if (c->verified && c->lock_fd >= 0)
        s_save_state(c, NULL, 0);
    if (c->fd >= 0)
        close(c->fd);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    json_decref(c->verified);
    free(c);
    *self_p = NULL;
}

const char *sw_shard_cache_path(const sw_shard_cache_t *self) { return self->path; }
int sw_shard_cache_fd(const sw_shard_cache_t *self) { return self->fd; }
const char *sw_shard_cache_dir(const sw_shard_cache_t *self) { return self->dir; }

bool sw_shard_cache_has(const sw_shard_cache_t *self, const char *name, const uint8_t sha256[32])
{
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, sha256, 32);
    json_t *v = json_object_get(self->verified, name);
    return json_is_string(v) && !strcmp(json_string_value(v), hex);
}

int sw_shard_cache_mark(sw_shard_cache_t *self, const char *name, const uint8_t sha256[32], char *err,
                        size_t errlen)
{
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, sha256, 32);
    if (fdatasync(self->fd) != 0)
        return sw_err(err, errlen, "%s: fdatasync: %s", self->path, strerror(errno));
    if (json_object_set_new(self->verified, name, json_string(hex)) != 0)
        return sw_err(err, errlen, "out of memory");
    return s_save_state(self, err, errlen);
}

int sw_shard_cache_drop(sw_shard_cache_t *self, const char *name, uint64_t offset, uint64_t size, char *err,
                        size_t errlen)
{
    json_object_del(self->verified, name);
    if (s_save_state(self, err, errlen) != 0)
        return -1;
    if (size && fallocate(self->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) offset, (off_t) size) != 0)
        return sw_err(err, errlen, "%s: cannot free [%llu, +%llu): %s", self->path, (unsigned long long) offset,
                      (unsigned long long) size, strerror(errno));
    return 0;
}

/* Allocated bytes of the files directly in folder p. */
static uint64_t s_dir_usage(const char *p)
{
    DIR *d = opendir(p);
    if (!d)
        return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            n += (uint64_t) st.st_blocks * 512;
    }
    closedir(d);
    return n;
}

uint64_t sw_shard_cache_usage(const char *cache_dir)
{
    DIR *d = opendir(cache_dir);
    if (!d)
        return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[PATH_MAX];
        if ((size_t) snprintf(p, sizeof p, "%s/%s", cache_dir, e->d_name) < sizeof p)
            n += s_dir_usage(p);
    }
    closedir(d);
    return n;
}

/* Whether a lock file in folder dir is held by someone (LOCK_EX | LOCK_NB fails). */
static bool s_locked(const char *dir, const char *name)
{
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool held = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd);
    return held;
}

bool sw_shard_cache_in_use(const sw_shard_cache_t *self) { return s_locked(self->dir, "inuse"); }

/* Deletes the files of an entry folder and the folder; returns bytes freed. */
static uint64_t s_remove_entry(const char *p)
{
    uint64_t freed = s_dir_usage(p);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(p);
    return freed;
}

typedef struct {
    char name[256];   /* folder name */
    int64_t last_ms;  /* last use */
} s_entry_t;

static int s_by_age(const void *a, const void *b)
{
    int64_t x = ((const s_entry_t *) a)->last_ms, y = ((const s_entry_t *) b)->last_ms;
    return x < y ? -1 : x > y;
}

int sw_shard_cache_evict_others(sw_shard_cache_t *self, uint64_t max_bytes, uint64_t need_bytes, uint64_t also_free,
                                uint64_t *freed)
{
    if (!max_bytes)
        return 0;
    uint64_t usage = sw_shard_cache_usage(self->cache_dir);
    if (usage + need_bytes <= max_bytes)
        return 0;
    DIR *d = opendir(self->cache_dir);
    if (!d)
        return -1;
    s_entry_t *list = calloc(S_MAX_ENTRIES, sizeof *list);
    int n = 0;
    const char *mine = strrchr(self->dir, '/') + 1;
    struct dirent *e;
    while (list && n < S_MAX_ENTRIES && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, mine) || strlen(e->d_name) >= sizeof list[n].name)
            continue;
        char p[PATH_MAX];
        struct stat st;
        if ((size_t) snprintf(p, sizeof p, "%s/%s", self->cache_dir, e->d_name) >= sizeof p || stat(p, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        snprintf(list[n].name, sizeof list[n].name, "%s", e->d_name);
        list[n].last_ms = s_last_used(p);
        n++;
    }
    closedir(d);
    if (!list)
        return -1;
    qsort(list, (size_t) n, sizeof *list, s_by_age);
    /* first whether it can be enough: evict nothing for a fetch that cannot fit */
    uint64_t evictable = also_free;
    for (int i = 0; i < n; i++) {
        char p[PATH_MAX];
        if ((size_t) snprintf(p, sizeof p, "%s/%s", self->cache_dir, list[i].name) >= sizeof p ||
            s_locked(p, "inuse") || s_locked(p, "lock")) {
            list[i].name[0] = 0; /* kept */
            continue;
        }
        evictable += s_dir_usage(p);
    }
    if (usage + need_bytes > max_bytes + evictable) {
        free(list);
        return -2;
    }
    for (int i = 0; i < n && usage + need_bytes > max_bytes; i++) {
        char p[PATH_MAX];
        if (!list[i].name[0] || (size_t) snprintf(p, sizeof p, "%s/%s", self->cache_dir, list[i].name) >= sizeof p)
            continue;
        uint64_t f = s_remove_entry(p);
        usage = usage > f ? usage - f : 0;
        *freed += f;
    }
    free(list);
    return usage + need_bytes <= max_bytes ? 0 : -1;
}

int sw_shard_cache_hold(const char *cache_dir, const char *model_id, const char *checksum, char *err,
                        size_t errlen)
{
    char dir[PATH_MAX], p[PATH_MAX + 8];
    if (s_entry_dir(dir, sizeof dir, cache_dir, model_id, checksum, err, errlen) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/inuse", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_SH) != 0) {
        sw_err(err, errlen, "%s: cannot lock: %s", p, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int sw_shard_cache_has_layers(const char *path, int first, int last, char *err, size_t errlen)
{
    char state_path[PATH_MAX];
    if ((size_t) snprintf(state_path, sizeof state_path, "%s.state", path) >= sizeof state_path)
        return sw_err(err, errlen, "%s: path too long", path);
    struct stat st;
    if (stat(state_path, &st) != 0)
        return errno == ENOENT ? 1 : sw_err(err, errlen, "%s: %s", state_path, strerror(errno));
    json_error_t je;
    json_t *j = json_load_file(state_path, 0, &je);
    json_t *v = json_object_get(j, "verified");
    if (!json_is_object(v)) {
        json_decref(j);
        return sw_err(err, errlen, "%s: not a shard cache state file", state_path);
    }
    int rc = 1;
    if (!json_object_get(v, "(header)")) {
        rc = 0;
        sw_err(err, errlen, "%s: the header is not verified", path);
    }
    char gerr[256];
    sw_gguf_t *g = rc == 1 ? sw_gguf_open(path, gerr, sizeof gerr) : NULL;
    if (rc == 1 && !g)
        rc = sw_err(err, errlen, "%s: %s", path, gerr);
    for (int64_t i = 0; g && rc == 1 && i < sw_gguf_n_tensors(g); i++) {
        const char *name = sw_gguf_tensor(g, i)->name;
        bool need;
        if (!strncmp(name, "blk.", 4)) {
            char *end = NULL;
            long l = strtol(name + 4, &end, 10);
            need = end != name + 4 && *end == '.' && l >= first && l <= last;
        } else {
            need = strcmp(name, "token_embd.weight") && strcmp(name, "output_norm.weight") &&
                   strcmp(name, "output.weight");
        }
        if (need && !json_object_get(v, name)) {
            rc = 0;
            sw_err(err, errlen, "%s: tensor '%s' of layers %d-%d was not fetched (a hole)", path, name, first, last);
        }
    }
    sw_gguf_destroy(&g);
    json_decref(j);
    return rc;
}
