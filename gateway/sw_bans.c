/*  sw_bans.c: bans and drains of nodes in SQLite (see sw_bans.h). */
#include "sw_bans.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sw_bans_t {
    sqlite3 *db;
    char path[1024];
    pthread_mutex_t mu;
    /* under mu: */
    sw_bans_entry_t *e; /* (SW_BANS_MAX) */
    int n;
    atomic_uint_fast64_t version;
};

static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* Runs one statement with no result rows. */
static int s_exec(sw_bans_t *b, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(b->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        s_err(err, errlen, "state db %s: %s", b->path, msg ? msg : sqlite3_errmsg(b->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Reads PRAGMA user_version into *v. */
static int s_user_version(sw_bans_t *b, int *v, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(b->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        s_err(err, errlen, "state db %s: %s%s", b->path, sqlite3_errmsg(b->db),
              rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? " (corrupt, or not a swisd state database: move it away "
                                                            "or give another --state-db)" : "");
        sqlite3_finalize(st);
        return -1;
    }
    *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* Loads every row into memory, checking each against the limits. */
static int s_load(sw_bans_t *b, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(b->db, "SELECT id, banned, drained, reason, changed_unix_ms FROM nodes ORDER BY id", -1,
                           &st, NULL) != SQLITE_OK) {
        s_err(err, errlen, "state db %s: %s", b->path, sqlite3_errmsg(b->db));
        return -1;
    }
    int rc;
    b->n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0), *reason = sqlite3_column_text(st, 3);
        const int id_len = sqlite3_column_bytes(st, 0), reason_len = sqlite3_column_bytes(st, 3);
        if (b->n >= SW_BANS_MAX || !id || id_len < 1 || id_len > SW_BANS_ID_MAX || reason_len > SW_BANS_REASON_MAX) {
            s_err(err, errlen, "state db %s: %s", b->path,
                  b->n >= SW_BANS_MAX ? "more than 4096 nodes banned or drained" : "a row breaks the limits of ids or reasons");
            sqlite3_finalize(st);
            return -1;
        }
        sw_bans_entry_t *e = &b->e[b->n++];
        memset(e, 0, sizeof *e);
        memcpy(e->id, id, (size_t) id_len);
        if (reason)
            memcpy(e->reason, reason, (size_t) reason_len);
        e->banned = sqlite3_column_int(st, 1) != 0;
        e->drained = sqlite3_column_int(st, 2) != 0;
        e->changed_unix_ms = (uint64_t) sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s_err(err, errlen, "state db %s: %s", b->path, sqlite3_errmsg(b->db));
        return -1;
    }
    return 0;
}

sw_bans_t *sw_bans_open(const char *path, char *err, size_t errlen)
{
    if (!path || !path[0] || strlen(path) >= sizeof ((sw_bans_t *) 0)->path) {
        s_err(err, errlen, "state db: no path, or a path too long");
        return NULL;
    }
    sw_bans_t *b = calloc(1, sizeof *b);
    if (b)
        b->e = calloc(SW_BANS_MAX, sizeof *b->e);
    if (!b || !b->e) {
        if (b)
            free(b);
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(b->path, sizeof b->path, "%s", path);
    pthread_mutex_init(&b->mu, NULL);
    atomic_init(&b->version, 1);
    int v = 0;
    if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        s_err(err, errlen, "state db %s: cannot open: %s", path, b->db ? sqlite3_errmsg(b->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(b->db, 2000);
    if (s_user_version(b, &v, err, errlen) != 0)
        goto fail;
    if (v > SW_BANS_SCHEMA || v < 0) {
        s_err(err, errlen, "state db %s: schema version %d, this swisd knows %d (written by a newer swisd?)", path, v,
              SW_BANS_SCHEMA);
        goto fail;
    }
    if (s_exec(b, "PRAGMA journal_mode=WAL", err, errlen) != 0 || s_exec(b, "PRAGMA synchronous=FULL", err, errlen) != 0)
        goto fail;
    if (v == 0 && s_exec(b,
                         "BEGIN IMMEDIATE;"
                         "CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY NOT NULL, banned INTEGER NOT NULL,"
                         " drained INTEGER NOT NULL, reason TEXT NOT NULL, changed_unix_ms INTEGER NOT NULL);"
                         "PRAGMA user_version=1;"
                         "COMMIT;",
                         err, errlen) != 0)
        goto fail;
    if (s_load(b, err, errlen) != 0)
        goto fail;
    return b;
fail:
    sw_bans_destroy(&b);
    return NULL;
}

void sw_bans_destroy(sw_bans_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_bans_t *b = *self_p;
    if (b->db)
        sqlite3_close_v2(b->db);
    pthread_mutex_destroy(&b->mu);
    free(b->e);
    free(b);
    *self_p = NULL;
}

static int s_find(const sw_bans_t *b, const char *id)
{
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->e[i].id, id))
            return i;
    return -1;
}

/* Writes entry e (deleting it when no flag is set). */
static int s_write(sw_bans_t *b, const sw_bans_entry_t *e, char *err, size_t errlen)
{
    const bool keep = e->banned || e->drained;
    sqlite3_stmt *st = NULL;
    const char *sql = keep ? "INSERT INTO nodes (id, banned, drained, reason, changed_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)"
                             " ON CONFLICT(id) DO UPDATE SET banned = ?2, drained = ?3, reason = ?4, changed_unix_ms = ?5"
                           : "DELETE FROM nodes WHERE id = ?1";
    int rc = sqlite3_prepare_v2(b->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
        if (keep) {
            sqlite3_bind_int(st, 2, e->banned);
            sqlite3_bind_int(st, 3, e->drained);
            sqlite3_bind_text(st, 4, e->reason, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, (sqlite3_int64) e->changed_unix_ms);
        }
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s_err(err, errlen, "state db %s: cannot write: %s", b->path, sqlite3_errmsg(b->db));
        return -1;
    }
    return 0;
}

int sw_bans_set(sw_bans_t *self, const char *id, bool ban, bool on, const char *reason, char *err, size_t errlen)
{
    const size_t len = id ? strlen(id) : 0;
    if (len < 1 || len > SW_BANS_ID_MAX) {
        s_err(err, errlen, "a node id has 1 to %d bytes", SW_BANS_ID_MAX);
        return -1;
    }
    pthread_mutex_lock(&self->mu);
    const int i = s_find(self, id);
    sw_bans_entry_t e = {0};
    if (i >= 0)
        e = self->e[i];
    else
        memcpy(e.id, id, len);
    bool *flag = ban ? &e.banned : &e.drained;
    int rc = 0;
    if (*flag == on)
        goto out; /* already so */
    if (i < 0 && self->n >= SW_BANS_MAX) {
        s_err(err, errlen, "%d nodes are banned or drained already; lift some first", SW_BANS_MAX);
        rc = -1;
        goto out;
    }
    *flag = on;
    if (on)
        snprintf(e.reason, sizeof e.reason, "%.*s", SW_BANS_REASON_MAX, reason ? reason : "");
    e.changed_unix_ms = s_unix_ms();
    if (s_write(self, &e, err, errlen) != 0) {
        rc = -1;
        goto out;
    }
    if (!e.banned && !e.drained) { /* i >= 0: a flag was on */
        self->e[i] = self->e[--self->n];
    } else if (i >= 0) {
        self->e[i] = e;
    } else {
        self->e[self->n++] = e;
    }
    atomic_fetch_add(&self->version, 1);
    rc = 1;
out:
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static bool s_flag(sw_bans_t *self, const char *id, bool ban)
{
    if (!id)
        return false;
    pthread_mutex_lock(&self->mu);
    const int i = self->n ? s_find(self, id) : -1;
    const bool on = i >= 0 && (ban ? self->e[i].banned : self->e[i].drained);
    pthread_mutex_unlock(&self->mu);
    return on;
}

bool sw_bans_banned(sw_bans_t *self, const char *id) { return s_flag(self, id, true); }
bool sw_bans_drained(sw_bans_t *self, const char *id) { return s_flag(self, id, false); }

static int s_by_id(const void *a, const void *b)
{
    return strcmp(((const sw_bans_entry_t *) a)->id, ((const sw_bans_entry_t *) b)->id);
}

int sw_bans_list(sw_bans_t *self, sw_bans_entry_t *out, int max)
{
    pthread_mutex_lock(&self->mu);
    const int n = self->n;
    qsort(self->e, (size_t) n, sizeof *self->e, s_by_id);
    for (int i = 0; i < n && i < max; i++)
        out[i] = self->e[i];
    pthread_mutex_unlock(&self->mu);
    return n;
}

uint64_t sw_bans_version(const sw_bans_t *self) { return atomic_load(&((sw_bans_t *) self)->version); }
