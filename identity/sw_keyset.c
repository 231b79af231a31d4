/*  sw_keyset.c: node id sets from key folders and list files (see sw_keyset.h). */
#include "sw_keyset.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "sw_common.h"
#include "sw_identity.h"

struct sw_keyset_t {
    char *path;              /* folder or file (owned) */
    bool is_dir;
    char name[96];           /* log prefix */
    zhashx_t *ids;           /* node id -> "" */
    struct timespec mtime;   /* of the folder or file when read */
    off_t size;              /* of the file when read */
    bool present;            /* the file existed when read */
    int64_t checked_ms;      /* last stat */
    sw_log_gate_t gate;      /* skipped entries, failed re-reads */
};

static int64_t s_now_ms(void)
{
    return (int64_t) (sw_now_ns() / 1000000);
}

static bool s_is_hex_id(const char *s, size_t n)
{
    if (n != SW_IDENTITY_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/*  Adds id unless the set is full (then warns once per read). */
static void s_add(sw_keyset_t *self, zhashx_t *ids, const char *id, bool *full)
{
    if (zhashx_size(ids) >= SW_KEYSET_MAX_KEYS) {
        if (!*full)
            sw_log_limited(&self->gate, SW_LOG_WARN, "%s: %s holds more than %d keys; the rest are ignored",
                           self->name, self->path, SW_KEYSET_MAX_KEYS);
        *full = true;
        return;
    }
    zhashx_update(ids, id, "");
}

/*  Reads a folder of public certificates into a new set (NULL, err set, when
 *  the folder cannot be opened). */
static zhashx_t *s_read_dir(sw_keyset_t *self, char *err, size_t errlen)
{
    DIR *d = opendir(self->path);
    if (!d) {
        sw_err(err, errlen, "%s: %s", self->path, strerror(errno));
        return NULL;
    }
    zhashx_t *ids = zhashx_new();
    struct dirent *e;
    bool full = false;
    while (ids && !full && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || (n >= 7 && !strcmp(e->d_name + n - 7, "_secret")))
            continue;
        char file[SW_IDENTITY_MAX_PATH];
        if (snprintf(file, sizeof file, "%s/%s", self->path, e->d_name) >= (int) sizeof file)
            continue;
        struct stat st;
        if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        uint8_t key[SW_IDENTITY_KEY_BYTES];
        char why[512];
        if (sw_identity_read_public(file, key, why, sizeof why) != 0) {
            sw_log_limited(&self->gate, SW_LOG_WARN, "%s: skipped a key file: %s", self->name, why);
            continue;
        }
        char id[SW_IDENTITY_ID_LEN + 1];
        sw_identity_fingerprint(key, id);
        s_add(self, ids, id, &full);
    }
    closedir(d);
    if (!ids)
        sw_err(err, errlen, "out of memory");
    return ids;
}

/*  Parses a list file (Z85 keys or node ids, one per line) into a new set;
 *  *present tells whether the file exists. */
static zhashx_t *s_read_list(sw_keyset_t *self, bool *present, char *err, size_t errlen)
{
    zhashx_t *ids = zhashx_new();
    if (!ids) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    *present = false;
    FILE *f = fopen(self->path, "r");
    if (!f) {
        if (errno == ENOENT)
            return ids; /* no file: an empty set */
        sw_err(err, errlen, "%s: %s", self->path, strerror(errno));
        zhashx_destroy(&ids);
        return NULL;
    }
    *present = true;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        sw_err(err, errlen, "%s: not a regular file", self->path);
        fclose(f);
        zhashx_destroy(&ids);
        return NULL;
    }
    char line[512];
    size_t total = 0;
    int lineno = 0;
    bool full = false;
    while (!full && fgets(line, sizeof line, f)) {
        lineno++;
        total += strlen(line);
        if (total > SW_KEYSET_MAX_FILE) {
            sw_log_limited(&self->gate, SW_LOG_WARN, "%s: %s is longer than %u bytes; the rest is ignored",
                           self->name, self->path, SW_KEYSET_MAX_FILE);
            break;
        }
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strcspn(s, " \t\r\n");
        if (n == 0 || *s == '#')
            continue;
        s[n] = '\0';
        uint8_t key[SW_IDENTITY_KEY_BYTES];
        char id[SW_IDENTITY_ID_LEN + 1];
        if (s_is_hex_id(s, n)) {
            s_add(self, ids, s, &full);
        } else if (sw_identity_z85_decode(s, key) == 0) {
            sw_identity_fingerprint(key, id);
            s_add(self, ids, id, &full);
        } else {
            sw_log_limited(&self->gate, SW_LOG_WARN,
                           "%s: %s:%d: neither a Z85 key (40 characters) nor a node id (16 hex): ignored", self->name,
                           self->path, lineno);
        }
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        sw_err(err, errlen, "%s: read error", self->path);
        zhashx_destroy(&ids);
    }
    return ids;
}

/*  Reads the source now. Returns 0, or -1 with err set (the set unchanged). */
static int s_read(sw_keyset_t *self, char *err, size_t errlen)
{
    struct stat st;
    bool exists = stat(self->path, &st) == 0;
    bool present = exists;
    zhashx_t *ids = self->is_dir ? s_read_dir(self, err, errlen) : s_read_list(self, &present, err, errlen);
    if (!ids)
        return -1;
    zhashx_destroy(&self->ids);
    self->ids = ids;
    self->present = self->is_dir || present;
    if (exists) {
        self->mtime = st.st_mtim;
        self->size = st.st_size;
    }
    self->checked_ms = s_now_ms();
    return 0;
}

sw_keyset_t *sw_keyset_new(const char *path, bool is_dir, const char *log_name, char *err, size_t errlen)
{
    if (!path || !path[0]) {
        sw_err(err, errlen, "no key %s given", is_dir ? "folder" : "list");
        return NULL;
    }
    sw_keyset_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    self->is_dir = is_dir;
    snprintf(self->name, sizeof self->name, "%s", log_name ? log_name : "keys");
    self->gate = SW_LOG_GATE(1000, 5);
    if (s_read(self, err, errlen) != 0) {
        sw_keyset_destroy(&self);
        return NULL;
    }
    return self;
}

void sw_keyset_destroy(sw_keyset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->ids);
    free((*self_p)->path);
    free(*self_p);
    *self_p = NULL;
}

bool sw_keyset_refresh(sw_keyset_t *self, bool force)
{
    int64_t now = s_now_ms();
    if (!force && now - self->checked_ms < SW_KEYSET_RESCAN_MS)
        return false;
    self->checked_ms = now;
    struct stat st;
    bool exists = stat(self->path, &st) == 0;
    if (!force) {
        if (!exists && !self->present)
            return false;
        if (exists && self->present && st.st_mtim.tv_sec == self->mtime.tv_sec &&
            st.st_mtim.tv_nsec == self->mtime.tv_nsec && st.st_size == self->size)
            return false;
    }
    char err[600];
    if (s_read(self, err, sizeof err) != 0) {
        sw_log_limited(&self->gate, SW_LOG_WARN, "%s: cannot read %s (the previous list stays): %s", self->name,
                       self->path, err);
        return false;
    }
    sw_log(SW_LOG_INFO, "%s: read %zu key(s) from %s", self->name, zhashx_size(self->ids), self->path);
    return true;
}

bool sw_keyset_contains(sw_keyset_t *self, const char *id)
{
    if (!self || !id)
        return false;
    if (zhashx_lookup(self->ids, id))
        return true;
    return sw_keyset_refresh(self, false) && zhashx_lookup(self->ids, id);
}

bool sw_keyset_contains_key(sw_keyset_t *self, const uint8_t key[32])
{
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(key, id);
    return sw_keyset_contains(self, id);
}

size_t sw_keyset_size(const sw_keyset_t *self)
{
    return self && self->ids ? zhashx_size(self->ids) : 0;
}

const char *sw_keyset_path(const sw_keyset_t *self)
{
    return self ? self->path : NULL;
}
