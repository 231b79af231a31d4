/*  sw_broker_bans.c: a broker's runtime bans and their file (see sw_broker_bans.h). */
#include "sw_broker_bans.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_identity.h"

#define S_MAGIC "# swisd broker bans v1"

struct sw_broker_bans_t {
    char *path;              /* NULL: memory only */
    bool secure;             /* id rules of a secure broker */
    char name[96];           /* log prefix */
    zhashx_t *bans;          /* id -> sw_broker_ban_t (owned) */
};

static bool s_id_char(char c, bool secure)
{
    if (secure)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
           c == ':' || c == '-';
}

int sw_broker_ban_check(sw_broker_ban_t *ban, bool secure, uint64_t now_s, char *err, size_t errlen)
{
    const size_t n = strnlen(ban->id, sizeof ban->id);
    if (n == 0 || n > SW_WIRE_MAX_ID || (secure && n != SW_IDENTITY_ID_LEN))
        return sw_err(err, errlen, "the node id is not %s", secure ? "16 lowercase hex characters (a key's "
                                                                     "fingerprint)" : "1..64 bytes");
    for (size_t i = 0; i < n; i++)
        if (!s_id_char(ban->id[i], secure))
            return sw_err(err, errlen, "the node id holds a byte outside %s", secure ? "[0-9a-f]" : "[A-Za-z0-9._:-]");
    if (ban->has_key && !sw_identity_id_matches(ban->id, ban->key))
        return sw_err(err, errlen, "the node id is not the fingerprint of the key given");
    if (ban->until_unix_s != 0 && ban->until_unix_s <= now_s)
        return sw_err(err, errlen, "the ban ended already (until %llu, now %llu)",
                      (unsigned long long) ban->until_unix_s, (unsigned long long) now_s);
    if (ban->until_unix_s > now_s + SW_BROKER_BANS_MAX_S)
        return sw_err(err, errlen, "the ban ends more than %u days from now", SW_BROKER_BANS_MAX_S / 86400u);
    if (!ban->issued_unix_ms)
        ban->issued_unix_ms = now_s * 1000;
    if (ban->issued_unix_ms / 1000 > now_s + SW_BROKER_BANS_SKEW_S)
        return sw_err(err, errlen, "the decision is dated more than %d s ahead of this broker's clock",
                      SW_BROKER_BANS_SKEW_S);
    const size_t o = strnlen(ban->origin, sizeof ban->origin);
    for (size_t i = 0; i < o; i++)
        if (!s_id_char(ban->origin[i], false))
            return sw_err(err, errlen, "the origin holds a byte outside [A-Za-z0-9._:-]");
    for (char *p = ban->reason; *p; p++)
        if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
            *p = '?';
    return 0;
}

void sw_broker_ban_from_notice(const Swisd__V1__BanNotice *n, sw_broker_ban_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", n->node_id ? n->node_id : "");
    snprintf(out->origin, sizeof out->origin, "%s", n->origin ? n->origin : "");
    snprintf(out->reason, sizeof out->reason, "%s", n->reason ? n->reason : "");
    if (n->public_key.len == sizeof out->key) {
        memcpy(out->key, n->public_key.data, sizeof out->key);
        out->has_key = true;
    }
    out->until_unix_s = n->until_unix_s;
    out->issued_unix_ms = n->issued_unix_ms;
}

void sw_broker_ban_to_notice(const sw_broker_ban_t *ban, Swisd__V1__BanNotice *n)
{
    swisd__v1__ban_notice__init(n);
    n->node_id = (char *) ban->id;
    n->origin = (char *) ban->origin;
    n->reason = (char *) ban->reason;
    n->until_unix_s = ban->lifted ? 0 : ban->until_unix_s;
    n->issued_unix_ms = ban->issued_unix_ms;
    if (ban->has_key) {
        n->public_key.data = (uint8_t *) ban->key;
        n->public_key.len = sizeof ban->key;
    }
}

const char *sw_broker_ban_describe(const sw_broker_ban_t *ban, char *out, size_t len)
{
    char when[32] = "?";
    const time_t t = (time_t) ban->until_unix_s;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(out, len, "until %s%s%s%s: %s", when, ban->origin[0] ? " (by gateway " : "", ban->origin,
             ban->origin[0] ? ")" : "", ban->reason[0] ? ban->reason : "no reason given");
    return out;
}

static void s_free(void **item)
{
    free(*item);
    *item = NULL;
}

/* ---- the file ---------------------------------------------------------------- */

/*  Writes every ban to path.tmp, then renames it over path. */
static int s_save(sw_broker_bans_t *self)
{
    if (!self->path)
        return 0;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", self->path) >= (int) sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        sw_log(SW_LOG_ERROR, "%s: cannot write the ban state %s: %s (bans hold until this broker stops)", self->name,
               tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "%s\n", S_MAGIC);
    for (const sw_broker_ban_t *b = zhashx_first(self->bans); b; b = zhashx_next(self->bans)) {
        char z85[SW_IDENTITY_Z85_LEN + 1] = "-";
        if (b->has_key)
            zmq_z85_encode(z85, b->key, sizeof b->key);
        fprintf(f, "%s %llu %llu %s %s %s %s\n", b->id, (unsigned long long) b->until_unix_s,
                (unsigned long long) b->issued_unix_ms, b->lifted ? "lifted" : "ban", z85, b->origin[0] ? b->origin : "-",
                b->reason);
    }
    const bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, self->path) != 0) {
        sw_log(SW_LOG_ERROR, "%s: cannot write the ban state %s: %s (bans hold until this broker stops)", self->name,
               self->path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/*  Parses one line (NUL-terminated, no LF) into *b. Returns 0 or -1 with err. */
static int s_parse_line(char *line, sw_broker_ban_t *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    char *f[6]; /* ID UNTIL ISSUED STATE KEY ORIGIN, then p: REASON */
    char *p = line;
    for (int i = 0; i < 6; i++) {
        f[i] = p;
        p = strchr(p, ' ');
        if (!p)
            return sw_err(err, errlen, "expected ID UNTIL ISSUED STATE KEY ORIGIN REASON");
        *p++ = '\0';
    }
    if (strlen(f[0]) > SW_WIRE_MAX_ID || strlen(p) > SW_WIRE_MAX_BAN_REASON || strlen(f[5]) > SW_WIRE_MAX_ID)
        return sw_err(err, errlen, "a field is too long");
    snprintf(b->id, sizeof b->id, "%s", f[0]);
    uint64_t n[2];
    for (int i = 0; i < 2; i++) {
        char *end = NULL;
        errno = 0;
        n[i] = strtoull(f[1 + i], &end, 10);
        if (errno || !f[1 + i][0] || *end || f[1 + i][0] < '0' || f[1 + i][0] > '9' || n[i] == 0)
            return sw_err(err, errlen, "the %s is not a positive number", i ? "decision time" : "end time");
    }
    b->until_unix_s = n[0];
    b->issued_unix_ms = n[1];
    if (strcmp(f[3], "ban") != 0 && strcmp(f[3], "lifted") != 0)
        return sw_err(err, errlen, "the state is neither \"ban\" nor \"lifted\"");
    b->lifted = f[3][0] == 'l';
    if (strcmp(f[4], "-") != 0) {
        if (sw_identity_z85_decode(f[4], b->key) != 0)
            return sw_err(err, errlen, "the key is neither \"-\" nor a Z85 key");
        b->has_key = true;
    }
    if (strcmp(f[5], "-") != 0)
        snprintf(b->origin, sizeof b->origin, "%s", f[5]);
    snprintf(b->reason, sizeof b->reason, "%s", p);
    return 0;
}

/*  Merges without saving (see "Merging" in the header). A ban read back
 *  from the file may be a tombstone (lifted) already. */
static int s_merge(sw_broker_bans_t *self, const sw_broker_ban_t *ban, uint64_t now_s, char *err, size_t errlen)
{
    sw_broker_ban_t *held = zhashx_lookup(self->bans, ban->id);
    if (held && ban->issued_unix_ms <= held->issued_unix_ms)
        return 0; /* the same decision again, or an older one */
    sw_broker_ban_t next = *ban;
    if (!ban->until_unix_s) { /* a lift: a tombstone outliving any older ban of the id */
        if (held && held->lifted)
            return 0; /* lifted already: nothing to keep or pass on */
        next = held ? *held : *ban;
        next.lifted = true;
        next.issued_unix_ms = ban->issued_unix_ms;
        next.until_unix_s = held ? held->until_unix_s : now_s + SW_BROKER_BANS_MAX_S;
    }
    if (held) {
        *held = next;
        return 1;
    }
    if (zhashx_size(self->bans) >= SW_BROKER_BANS_MAX)
        return sw_err(err, errlen, "this broker holds %d bans already", SW_BROKER_BANS_MAX);
    sw_broker_ban_t *b = malloc(sizeof *b);
    if (!b)
        return sw_err(err, errlen, "out of memory");
    *b = next;
    zhashx_insert(self->bans, b->id, b);
    return 1;
}

/*  Reads the file into self (expired bans skipped). */
static int s_load(sw_broker_bans_t *self, uint64_t now_s, char *err, size_t errlen)
{
    FILE *f = fopen(self->path, "r");
    if (!f)
        return errno == ENOENT ? 0 : sw_err(err, errlen, "%s: cannot read: %s", self->path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size > SW_BROKER_BANS_MAX_FILE) {
        fclose(f);
        return sw_err(err, errlen, "%s: not a regular file of at most %u bytes", self->path, SW_BROKER_BANS_MAX_FILE);
    }
    char line[512], why[160];
    int rc = 0;
    size_t n_line = 0, dropped = 0;
    while (fgets(line, sizeof line, f)) {
        n_line++;
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            rc = sw_err(err, errlen, "%s:%zu: a line longer than %zu bytes or without its end", self->path, n_line,
                        sizeof line - 2);
            break;
        }
        line[len - 1] = '\0';
        if (n_line == 1) {
            if (strcmp(line, S_MAGIC) != 0) {
                rc = sw_err(err, errlen, "%s:1: not a swisd ban-state file (expected \"%s\")", self->path, S_MAGIC);
                break;
            }
            continue;
        }
        sw_broker_ban_t b;
        if (s_parse_line(line, &b, why, sizeof why) != 0 ||
            (b.until_unix_s > now_s && sw_broker_ban_check(&b, self->secure, now_s, why, sizeof why) != 0)) {
            rc = sw_err(err, errlen, "%s:%zu: %s", self->path, n_line, why);
            break;
        }
        if (b.until_unix_s <= now_s) {
            dropped++;
            continue;
        }
        if (zhashx_size(self->bans) >= SW_BROKER_BANS_MAX) {
            rc = sw_err(err, errlen, "%s:%zu: more than %d bans", self->path, n_line, SW_BROKER_BANS_MAX);
            break;
        }
        if (s_merge(self, &b, now_s, why, sizeof why) < 0) { /* no rewrite while reading */
            rc = sw_err(err, errlen, "%s:%zu: %s", self->path, n_line, why);
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = sw_err(err, errlen, "%s: read error", self->path);
    fclose(f);
    if (rc == 0)
        sw_log(SW_LOG_INFO, "%s: %zu bans read back from %s (%zu expired ones dropped)", self->name,
               zhashx_size(self->bans), self->path, dropped);
    return rc;
}

/* ---- the set ------------------------------------------------------------------ */

sw_broker_bans_t *sw_broker_bans_new(const char *path, bool secure, uint64_t now_s, const char *log_name, char *err,
                                     size_t errlen)
{
    sw_broker_bans_t *self = calloc(1, sizeof *self);
    if (!self || !(self->bans = zhashx_new()) || (path && !(self->path = strdup(path)))) {
        sw_err(err, errlen, "out of memory");
        sw_broker_bans_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->bans, s_free);
    self->secure = secure;
    snprintf(self->name, sizeof self->name, "%s", log_name ? log_name : "broker");
    if (path) {
        if (s_load(self, now_s, err, errlen) != 0) {
            sw_broker_bans_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void sw_broker_bans_destroy(sw_broker_bans_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_broker_bans_t *self = *self_p;
    zhashx_destroy(&self->bans);
    free(self->path);
    free(self);
    *self_p = NULL;
}

int sw_broker_bans_apply(sw_broker_bans_t *self, const sw_broker_ban_t *ban, uint64_t now_s, char *err,
                         size_t errlen)
{
    const int rc = s_merge(self, ban, now_s, err, errlen);
    if (rc == 1)
        s_save(self);
    return rc;
}

const sw_broker_ban_t *sw_broker_bans_find(const sw_broker_bans_t *self, const char *id, uint64_t now_s)
{
    const sw_broker_ban_t *b = self && id ? zhashx_lookup(self->bans, id) : NULL;
    return b && !b->lifted && b->until_unix_s > now_s ? b : NULL;
}

int sw_broker_bans_expire(sw_broker_bans_t *self, uint64_t now_s)
{
    zlist_t *gone = zlist_new();
    if (!gone)
        return 0;
    for (sw_broker_ban_t *b = zhashx_first(self->bans); b; b = zhashx_next(self->bans))
        if (b->until_unix_s <= now_s)
            zlist_append(gone, b);
    int n = 0;
    char text[SW_WIRE_MAX_BAN_REASON + 128];
    for (sw_broker_ban_t *b = zlist_first(gone); b; b = zlist_next(gone), n++) {
        char id[SW_WIRE_MAX_ID + 1];
        snprintf(id, sizeof id, "%s", b->id);
        if (!b->lifted)
            sw_log(SW_LOG_INFO, "%s: the ban of node %s ended (%s)", self->name, id,
                   sw_broker_ban_describe(b, text, sizeof text));
        zhashx_delete(self->bans, id); /* frees b */
    }
    zlist_destroy(&gone);
    if (n)
        s_save(self);
    return n;
}

const sw_broker_ban_t *sw_broker_bans_first(sw_broker_bans_t *self)
{
    return zhashx_first(self->bans);
}

const sw_broker_ban_t *sw_broker_bans_next(sw_broker_bans_t *self)
{
    return zhashx_next(self->bans);
}

size_t sw_broker_bans_count(const sw_broker_bans_t *self)
{
    return zhashx_size(self->bans);
}
