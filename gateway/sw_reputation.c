/*  sw_reputation.c: per-key reputation and credits in SQLite (see
 *  sw_reputation.h). */
#include "sw_reputation.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_state_db.h"

#define S_FLUSH_EVERY_S 1.0  /* work sums are written at most this often (or when half the buffer is used) */
#define S_SEEN_EVERY_S 60.0  /* a key's last_seen is written at most this often (unless its name changed) */
#define S_SEEN_SLOTS 8192    /* open-addressing table of keys seen (a power of two) */
#define S_SEEN_MAX 4096      /* keys it holds (a directory's most stages); past it, it starts again empty */

static const char *S_CREATE =
    "CREATE TABLE reputation (id TEXT PRIMARY KEY NOT NULL, display_name TEXT NOT NULL DEFAULT '',"
    " verified INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
    " consecutive INTEGER NOT NULL DEFAULT 0, banned_until REAL NOT NULL DEFAULT 0,"
    " first_seen REAL NOT NULL, last_seen REAL NOT NULL, verified_at REAL NOT NULL DEFAULT 0,"
    " granted REAL NOT NULL DEFAULT 0, unverified_granted REAL NOT NULL DEFAULT 0,"
    " clawed_back REAL NOT NULL DEFAULT 0, last_failure TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE credit_pending (node_id TEXT NOT NULL, session_id TEXT NOT NULL, units REAL NOT NULL,"
    " at REAL NOT NULL);"
    "CREATE INDEX credit_pending_node ON credit_pending (node_id);"
    "CREATE INDEX credit_pending_at ON credit_pending (at)";

/* The columns a row read selects, in sw_reputation_row_t's order, with the pending sum last. */
#define S_COLS                                                                                                  \
    "id, display_name, verified, failed, consecutive, banned_until, first_seen, last_seen, verified_at, "     \
    "granted, clawed_back, last_failure, "                                                                    \
    "(SELECT COALESCE(SUM(units), 0) FROM credit_pending p WHERE p.node_id = reputation.id)"

typedef struct {
    char id[SW_REPUTATION_ID_MAX + 1];
    char session[SW_REPUTATION_ID_MAX + 1];
    double units; /* summed since the last flush */
    double at;    /* unix s of the latest work in the sum: the window closes after it */
} s_work_t;

typedef struct {
    char id[SW_REPUTATION_ID_MAX + 1];     /* "" : a free slot */
    char name[SW_REPUTATION_NAME_MAX + 1]; /* the display name last seen ("" none) */
    double at;                             /* unix s it was last seen */
    double written_at;                     /* unix s its row was last written; 0 never */
    bool dirty;                            /* to write at the next tick */
} s_seen_t;

struct sw_reputation_t {
    sqlite3 *db;
    char path[1024];
    sw_reputation_policy_t pol;
    pthread_mutex_t mu;
    /* under mu: */
    s_work_t *work;     /* (SW_REPUTATION_BUFFER) sums not yet written */
    int n_work;
    double flushed_at;  /* unix s of the last write of sums */
    s_seen_t *seen;     /* (S_SEEN_SLOTS) keys seen in the directory, written by the tick */
    int n_seen;         /* slots in use */
    int n_dirty;        /* of them, waiting to be written */
};

static bool s_id_ok(const char *id) { return id && id[0] && strlen(id) <= SW_REPUTATION_ID_MAX; }

sw_reputation_policy_t sw_reputation_policy(const sw_reputation_t *self) { return self->pol; }

/* The audit rate for a run of `consecutive` verified results. */
static double s_rate(const sw_reputation_policy_t *p, uint64_t consecutive)
{
    if (consecutive < (uint64_t) p->n_trust)
        return 1.0;
    const double r = (double) p->n_trust / (double) consecutive;
    return r > p->rate_floor ? r : p->rate_floor;
}

sw_reputation_t *sw_reputation_open(const char *path, const sw_reputation_policy_t *policy, char *err,
                                    size_t errlen)
{
    sw_reputation_policy_t p = policy ? *policy : (sw_reputation_policy_t){0};
    if (p.n_trust <= 0) p.n_trust = 20;
    if (p.rate_floor <= 0) p.rate_floor = 0.05;
    if (p.ban_s <= 0) p.ban_s = 7 * 86400.0;
    if (p.audit_window_s <= 0) p.audit_window_s = 120;
    if (!(p.rate_floor <= 1) || !isfinite(p.ban_s) || !isfinite(p.audit_window_s)) {
        sw_err(err, errlen, "reputation policy: rate_floor must be in (0, 1], ban_s and audit_window_s finite");
        return NULL;
    }
    if (!path || strlen(path) >= sizeof ((sw_reputation_t *) 0)->path) {
        sw_err(err, errlen, "state db: no path, or a path too long");
        return NULL;
    }
    sw_reputation_t *r = calloc(1, sizeof *r);
    if (r) {
        r->work = calloc(SW_REPUTATION_BUFFER, sizeof *r->work);
        r->seen = calloc(S_SEEN_SLOTS, sizeof *r->seen);
    }
    if (!r || !r->work || !r->seen) {
        if (r)
            free(r->work), free(r->seen), free(r);
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    r->pol = p;
    pthread_mutex_init(&r->mu, NULL);
    if (!(r->db = sw_state_db_open(path, err, errlen)) ||
        sw_state_db_schema(r->db, path, "reputation", SW_REPUTATION_SCHEMA, S_CREATE, err, errlen) != 0)
        goto fail;
    /* a table of the right name with other columns (a foreign file) fails here, not at the first verdict */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db, "SELECT " S_COLS ", unverified_granted FROM reputation LIMIT 1", -1, &st, NULL) !=
        SQLITE_OK) {
        sw_err(err, errlen, "state db %s: the reputation table is not swisd's: %s", path, sqlite3_errmsg(r->db));
        goto fail;
    }
    sqlite3_finalize(st);
    return r;
fail:
    sw_reputation_destroy(&r);
    return NULL;
}

/* ---- statements ------------------------------------------------------------------ */

static sqlite3_stmt *s_prep(sw_reputation_t *r, const char *sql, char *err, size_t errlen)
{
    return sw_state_db_prepare(r->db, r->path, sql, err, errlen);
}

static int s_done(sw_reputation_t *r, sqlite3_stmt *st, char *err, size_t errlen)
{
    return sw_state_db_done(r->db, r->path, st, err, errlen);
}

static int s_exec(sw_reputation_t *r, const char *sql, char *err, size_t errlen)
{
    return sw_state_db_exec(r->db, r->path, sql, err, errlen);
}

/* Makes key id's row when absent (first and last seen now). */
static int s_ensure(sw_reputation_t *r, const char *id, double now, char *err, size_t errlen)
{
    sqlite3_stmt *st = s_prep(r, "INSERT OR IGNORE INTO reputation (id, first_seen, last_seen) VALUES (?1, ?2, ?2)",
                              err, errlen);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 2, now);
    }
    return s_done(r, st, err, errlen);
}

/* Writes the work sums (under mu, inside the caller's transaction). */
static int s_write_work(sw_reputation_t *r, char *err, size_t errlen)
{
    if (!r->n_work)
        return 0;
    /* two statements prepared once and re-bound per sum: a flush of hundreds of sums stays a few ms */
    sqlite3_stmt *ens = s_prep(r, "INSERT OR IGNORE INTO reputation (id, first_seen, last_seen) VALUES (?1, ?2, ?2)",
                               err, errlen);
    sqlite3_stmt *ins = ens ? s_prep(r, "INSERT INTO credit_pending (node_id, session_id, units, at) VALUES (?1, ?2,"
                                        " ?3, ?4)", err, errlen) : NULL;
    int rc = ins ? 0 : -1;
    for (int i = 0; rc == 0 && i < r->n_work; i++) {
        const s_work_t *w = &r->work[i];
        sqlite3_reset(ens);
        sqlite3_bind_text(ens, 1, w->id, -1, SQLITE_STATIC);
        sqlite3_bind_double(ens, 2, w->at);
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, w->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, w->session, -1, SQLITE_STATIC);
        sqlite3_bind_double(ins, 3, w->units);
        sqlite3_bind_double(ins, 4, w->at);
        if (sqlite3_step(ens) != SQLITE_DONE || sqlite3_step(ins) != SQLITE_DONE)
            rc = sw_err(err, errlen, "state db %s: cannot write: %s", r->path, sqlite3_errmsg(r->db));
    }
    sqlite3_finalize(ens);
    sqlite3_finalize(ins);
    return rc;
}

/* Writes the keys seen since their row was last written (under mu, inside the caller's transaction). */
static int s_write_seen(sw_reputation_t *r, char *err, size_t errlen)
{
    if (!r->n_dirty)
        return 0;
    sqlite3_stmt *st = s_prep(r,
                              "INSERT INTO reputation (id, display_name, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)"
                              " ON CONFLICT(id) DO UPDATE SET last_seen = MAX(last_seen, ?3),"
                              " display_name = CASE WHEN ?2 = '' THEN display_name ELSE ?2 END",
                              err, errlen);
    int rc = st ? 0 : -1;
    for (int i = 0; rc == 0 && i < S_SEEN_SLOTS; i++) {
        s_seen_t *e = &r->seen[i];
        if (!e->id[0] || !e->dirty)
            continue;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e->name, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 3, e->at);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sw_err(err, errlen, "state db %s: cannot write: %s", r->path, sqlite3_errmsg(r->db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* Marks the seen keys written (after a commit), at now. */
static void s_seen_written(sw_reputation_t *r, double now)
{
    for (int i = 0; r->n_dirty && i < S_SEEN_SLOTS; i++)
        if (r->seen[i].id[0] && r->seen[i].dirty)
            r->seen[i].dirty = false, r->seen[i].written_at = now;
    r->n_dirty = 0;
}

/* Flushes the work sums in their own transaction (under mu). */
static int s_flush(sw_reputation_t *r, double now, char *err, size_t errlen)
{
    r->flushed_at = now;
    if (!r->n_work && !r->n_dirty)
        return 0;
    if (s_exec(r, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    int rc = s_write_work(r, err, errlen);
    if (rc == 0)
        rc = s_write_seen(r, err, errlen);
    if (sw_state_db_end(r->db, r->path, rc, err, errlen) != 0)
        return -1;
    r->n_work = 0;
    s_seen_written(r, now);
    return 0;
}

void sw_reputation_destroy(sw_reputation_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_reputation_t *r = *self_p;
    if (r->db) {
        char err[256];
        if (s_flush(r, sw_state_db_unix_s(), err, sizeof err) != 0)
            sw_log(SW_LOG_WARN, "reputation: %s (the last second of pending credit is lost)", err);
        sqlite3_close_v2(r->db);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->work);
    free(r->seen);
    free(r);
    *self_p = NULL;
}

/* ---- reading ---------------------------------------------------------------------- */

static void s_text(char *out, size_t cap, const unsigned char *s, int len)
{
    const size_t n = s && len > 0 ? ((size_t) len < cap - 1 ? (size_t) len : cap - 1) : 0;
    if (n)
        memcpy(out, s, n);
    out[n] = 0;
}

/* A row from a statement selecting S_COLS, plus the unwritten work (under mu). */
static void s_read_row(sw_reputation_t *r, sqlite3_stmt *st, double now, sw_reputation_row_t *o)
{
    memset(o, 0, sizeof *o);
    s_text(o->id, sizeof o->id, sqlite3_column_text(st, 0), sqlite3_column_bytes(st, 0));
    s_text(o->display_name, sizeof o->display_name, sqlite3_column_text(st, 1), sqlite3_column_bytes(st, 1));
    const sqlite3_int64 v = sqlite3_column_int64(st, 2), f = sqlite3_column_int64(st, 3),
                        c = sqlite3_column_int64(st, 4);
    o->verified = v > 0 ? (uint64_t) v : 0;
    o->failed = f > 0 ? (uint64_t) f : 0;
    o->consecutive = c > 0 ? (uint64_t) c : 0;
    o->banned_until = sqlite3_column_double(st, 5);
    o->first_seen = sqlite3_column_double(st, 6);
    o->last_seen = sqlite3_column_double(st, 7);
    o->verified_at = sqlite3_column_double(st, 8);
    o->granted = sqlite3_column_double(st, 9);
    o->clawed_back = sqlite3_column_double(st, 10);
    s_text(o->last_failure, sizeof o->last_failure, sqlite3_column_text(st, 11), sqlite3_column_bytes(st, 11));
    o->pending = sqlite3_column_double(st, 12);
    for (int i = 0; i < r->n_work; i++)
        if (!strcmp(r->work[i].id, o->id))
            o->pending += r->work[i].units;
    o->audit_rate = s_rate(&r->pol, o->consecutive);
    o->trusted = o->consecutive >= (uint64_t) r->pol.n_trust && !(o->banned_until > now);
}

int sw_reputation_row(sw_reputation_t *self, const char *id, sw_reputation_row_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->audit_rate = 1.0;
    if (!s_id_ok(id))
        return sw_err(err, errlen, "a node id has 1 to %d bytes", SW_REPUTATION_ID_MAX);
    pthread_mutex_lock(&self->mu);
    int rc = -1;
    sqlite3_stmt *st = s_prep(self, "SELECT " S_COLS " FROM reputation WHERE id = ?1", err, errlen);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        const int s = sqlite3_step(st);
        if (s == SQLITE_ROW) {
            s_read_row(self, st, sw_state_db_unix_s(), out);
            rc = 1;
        } else if (s == SQLITE_DONE) {
            rc = 0;
            for (int i = 0; i < self->n_work; i++) /* work not yet written of a key not yet written */
                if (!strcmp(self->work[i].id, id))
                    out->pending += self->work[i].units;
            if (out->pending > 0) {
                snprintf(out->id, sizeof out->id, "%s", id);
                rc = 1;
            }
        } else {
            sw_err(err, errlen, "state db %s: %s", self->path, sqlite3_errmsg(self->db));
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

double sw_reputation_audit_rate(sw_reputation_t *self, const char *id)
{
    sw_reputation_row_t row;
    return sw_reputation_row(self, id, &row, NULL, 0) == 1 ? row.audit_rate : 1.0;
}

bool sw_reputation_trusted(sw_reputation_t *self, const char *id)
{
    sw_reputation_row_t row;
    return sw_reputation_row(self, id, &row, NULL, 0) == 1 && row.trusted;
}

bool sw_reputation_banned(sw_reputation_t *self, const char *id, double now_s)
{
    sw_reputation_row_t row;
    return sw_reputation_row(self, id, &row, NULL, 0) == 1 && row.banned_until > now_s;
}

int sw_reputation_list(sw_reputation_t *self, sw_reputation_row_t *out, int max, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->mu);
    int n = -1;
    sqlite3_stmt *cnt = s_prep(self, "SELECT count(*) FROM reputation", err, errlen);
    if (cnt && sqlite3_step(cnt) == SQLITE_ROW)
        n = sqlite3_column_int(cnt, 0);
    else if (cnt)
        sw_err(err, errlen, "state db %s: %s", self->path, sqlite3_errmsg(self->db));
    sqlite3_finalize(cnt);
    sqlite3_stmt *st = n >= 0 ? s_prep(self, "SELECT " S_COLS " FROM reputation ORDER BY granted DESC, id LIMIT ?1",
                                       err, errlen) : NULL;
    if (st) {
        sqlite3_bind_int(st, 1, max > 0 ? max : 0);
        const double now = sw_state_db_unix_s();
        int i = 0, s;
        while (i < max && (s = sqlite3_step(st)) == SQLITE_ROW)
            s_read_row(self, st, now, &out[i++]);
        sqlite3_finalize(st);
    } else {
        n = -1;
    }
    pthread_mutex_unlock(&self->mu);
    return n;
}

/* ---- verdicts ------------------------------------------------------------------- */

int sw_reputation_verified(sw_reputation_t *self, const char *id, uint64_t n_results, double now_s, char *err,
                           size_t errlen)
{
    if (!s_id_ok(id))
        return sw_err(err, errlen, "a node id has 1 to %d bytes", SW_REPUTATION_ID_MAX);
    if (n_results < 1 || n_results > (uint64_t) INT32_MAX)
        return sw_err(err, errlen, "n_results must be from 1 to %d", INT32_MAX);
    pthread_mutex_lock(&self->mu);
    int rc = s_exec(self, "BEGIN IMMEDIATE", err, errlen);
    if (rc == 0)
        rc = s_ensure(self, id, now_s, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *st = s_prep(self,
                                  "UPDATE reputation SET verified = verified + ?2, consecutive = consecutive + ?2,"
                                  " verified_at = MAX(verified_at, ?3), unverified_granted = 0,"
                                  " last_seen = MAX(last_seen, ?3) WHERE id = ?1",
                                  err, errlen);
        if (st) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64) n_results);
            sqlite3_bind_double(st, 3, now_s);
        }
        rc = s_done(self, st, err, errlen);
    }
    rc = sw_state_db_end(self->db, self->path, rc, err, errlen);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int sw_reputation_failed(sw_reputation_t *self, const char *id, double now_s, const char *reason, char *err,
                         size_t errlen)
{
    if (!s_id_ok(id))
        return sw_err(err, errlen, "a node id has 1 to %d bytes", SW_REPUTATION_ID_MAX);
    char why[SW_REPUTATION_REASON_MAX + 1];
    snprintf(why, sizeof why, "%s", reason ? reason : "");
    pthread_mutex_lock(&self->mu);
    double held = 0; /* the key's work not yet written: clawed back with the rest */
    for (int i = 0; i < self->n_work; i++)
        if (!strcmp(self->work[i].id, id))
            held += self->work[i].units;
    int rc = s_exec(self, "BEGIN IMMEDIATE", err, errlen);
    if (rc == 0)
        rc = s_ensure(self, id, now_s, err, errlen);
    if (rc == 0) {
        sqlite3_stmt *st = s_prep(
            self,
            "UPDATE reputation SET failed = failed + 1, consecutive = 0, banned_until = MAX(banned_until, ?2),"
            " clawed_back = clawed_back + unverified_granted + ?3 + (SELECT COALESCE(SUM(units), 0) FROM"
            " credit_pending p WHERE p.node_id = ?1), granted = granted - unverified_granted,"
            " unverified_granted = 0, last_failure = ?4, last_seen = MAX(last_seen, ?5) WHERE id = ?1",
            err, errlen);
        if (st) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 2, now_s + self->pol.ban_s);
            sqlite3_bind_double(st, 3, held);
            sqlite3_bind_text(st, 4, why, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 5, now_s);
        }
        rc = s_done(self, st, err, errlen);
    }
    if (rc == 0) {
        sqlite3_stmt *st = s_prep(self, "DELETE FROM credit_pending WHERE node_id = ?1", err, errlen);
        if (st)
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = s_done(self, st, err, errlen);
    }
    rc = sw_state_db_end(self->db, self->path, rc, err, errlen);
    for (int i = 0; rc == 0 && i < self->n_work;) { /* the sums held for it are clawed back now */
        if (!strcmp(self->work[i].id, id))
            self->work[i] = self->work[--self->n_work];
        else
            i++;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

/* ---- seen and work ------------------------------------------------------------------ */

/* FNV-1a of id: the first slot of its probe sequence. */
static uint32_t s_slot(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *) id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h & (S_SEEN_SLOTS - 1);
}

int sw_reputation_seen(sw_reputation_t *self, const char *id, const char *display_name, double now_s, char *err,
                       size_t errlen)
{
    if (!s_id_ok(id))
        return sw_err(err, errlen, "a node id has 1 to %d bytes", SW_REPUTATION_ID_MAX);
    const char *name = display_name ? display_name : "";
    if (strlen(name) > SW_REPUTATION_NAME_MAX)
        return sw_err(err, errlen, "a display name has at most %d bytes", SW_REPUTATION_NAME_MAX);
    pthread_mutex_lock(&self->mu);
    uint32_t i = s_slot(id);
    while (self->seen[i].id[0] && strcmp(self->seen[i].id, id))
        i = (i + 1) & (S_SEEN_SLOTS - 1);
    s_seen_t *e = &self->seen[i];
    if (!e->id[0]) {
        if (self->n_seen >= S_SEEN_MAX) { /* more keys than a directory holds: start again empty (a key whose
                                             name was not written yet is marked again when it is next seen) */
            memset(self->seen, 0, S_SEEN_SLOTS * sizeof *self->seen);
            self->n_seen = self->n_dirty = 0;
            e = &self->seen[s_slot(id)];
        }
        snprintf(e->id, sizeof e->id, "%s", id);
        self->n_seen++;
    }
    e->at = now_s;
    const bool renamed = name[0] && strcmp(e->name, name);
    if (renamed)
        snprintf(e->name, sizeof e->name, "%s", name);
    if (!e->dirty && (renamed || now_s - e->written_at >= S_SEEN_EVERY_S)) {
        e->dirty = true;
        self->n_dirty++;
    }
    pthread_mutex_unlock(&self->mu);
    return 0;
}

int sw_reputation_credit_work(sw_reputation_t *self, const char *id, const char *session_id, double units,
                              double now_s, char *err, size_t errlen)
{
    const char *sid = session_id ? session_id : "";
    if (!s_id_ok(id) || strlen(sid) > SW_REPUTATION_ID_MAX)
        return sw_err(err, errlen, "a node id has 1 to %d bytes, a session id at most %d", SW_REPUTATION_ID_MAX,
                      SW_REPUTATION_ID_MAX);
    if (!isfinite(units) || units < 0)
        return sw_err(err, errlen, "credit units must be finite and >= 0 (got %g)", units);
    pthread_mutex_lock(&self->mu);
    int i = 0;
    while (i < self->n_work && (strcmp(self->work[i].id, id) || strcmp(self->work[i].session, sid)))
        i++;
    int rc = 0;
    if (i == self->n_work) {
        if (self->n_work >= SW_REPUTATION_BUFFER) {
            rc = sw_err(err, errlen, "%d unwritten work sums already (the state db is not written: tick)",
                        SW_REPUTATION_BUFFER);
            goto out;
        }
        s_work_t *w = &self->work[self->n_work++];
        memset(w, 0, sizeof *w);
        snprintf(w->id, sizeof w->id, "%s", id);
        snprintf(w->session, sizeof w->session, "%s", sid);
    }
    self->work[i].units += units;
    if (now_s > self->work[i].at)
        self->work[i].at = now_s;
out:
    pthread_mutex_unlock(&self->mu);
    return rc;
}

int sw_reputation_tick(sw_reputation_t *self, double now_s, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->mu);
    int rc = 0;
    if (now_s - self->flushed_at < S_FLUSH_EVERY_S && self->n_work < SW_REPUTATION_BUFFER / 2 &&
        now_s >= self->flushed_at)
        goto out;
    self->flushed_at = now_s;
    if ((rc = s_exec(self, "BEGIN IMMEDIATE", err, errlen)) != 0)
        goto out;
    rc = s_write_work(self, err, errlen);
    if (rc == 0)
        rc = s_write_seen(self, err, errlen);
    /* grant what closed its window: the sum per key, and the part of it for work after the key's last verified
     * result (clawed back if the key fails before its next verified result) */
    sqlite3_stmt *st = rc == 0 ? s_prep(self,
        "UPDATE reputation SET"
        " granted = granted + (SELECT COALESCE(SUM(units), 0) FROM credit_pending p"
        "  WHERE p.node_id = reputation.id AND p.at <= ?1),"
        " unverified_granted = unverified_granted + (SELECT COALESCE(SUM(units), 0) FROM credit_pending p"
        "  WHERE p.node_id = reputation.id AND p.at <= ?1 AND p.at > reputation.verified_at)"
        " WHERE id IN (SELECT node_id FROM credit_pending WHERE at <= ?1)", err, errlen) : NULL;
    if (st)
        sqlite3_bind_double(st, 1, now_s - self->pol.audit_window_s);
    if (rc == 0)
        rc = s_done(self, st, err, errlen);
    int granted = 0;
    if (rc == 0 && (st = s_prep(self, "DELETE FROM credit_pending WHERE at <= ?1", err, errlen))) {
        sqlite3_bind_double(st, 1, now_s - self->pol.audit_window_s);
        rc = s_done(self, st, err, errlen);
        granted = sqlite3_changes(self->db);
    } else if (rc == 0) {
        rc = -1;
    }
    if (sw_state_db_end(self->db, self->path, rc, err, errlen) == 0) {
        self->n_work = 0;
        s_seen_written(self, now_s);
        rc = granted;
    } else {
        rc = -1;
    }
out:
    pthread_mutex_unlock(&self->mu);
    return rc;
}

/* ---- the factor -------------------------------------------------------------------- */

double sw_reputation_model_factor(int64_t n_embd, int64_t n_ff, int64_t n_head, int64_t n_head_kv)
{
    if (n_embd < 1 || n_ff < 1 || n_head < 1 || n_head_kv < 1 || n_embd % n_head || n_head % n_head_kv)
        return -1;
    const double e = (double) n_embd, kv = (double) (n_head_kv * (n_embd / n_head));
    return (2 * e * e + 2 * e * kv + 3 * e * (double) n_ff + 2 * e) / 1e9;
}
