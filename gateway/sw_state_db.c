/*  sw_state_db.c: the gateway's state database file (see sw_state_db.h). */
#include "sw_state_db.h"

#include <sqlite3.h>
#include <stdio.h>
#include <time.h>

#include "sw_common.h"

int sw_state_db_exec(sqlite3 *db, const char *path, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sw_err(err, errlen, "state db %s: %s", path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

double sw_state_db_unix_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

sqlite3 *sw_state_db_open(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (!path || !path[0]) {
        sw_err(err, errlen, "state db: no path");
        return NULL;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        sw_err(err, errlen, "state db %s: cannot open: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close_v2(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 2000);
    /* the first read of the file: a file that is not SQLite (or a damaged one) fails here */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        const int ext = sqlite3_errcode(db);
        sw_err(err, errlen, "state db %s: %s%s", path, sqlite3_errmsg(db),
               ext == SQLITE_NOTADB || ext == SQLITE_CORRUPT ? " (corrupt, or not a swisd state database: move it "
                                                               "away or give another --state-db)" : "");
        sqlite3_finalize(st);
        sqlite3_close_v2(db);
        return NULL;
    }
    sqlite3_finalize(st);
    if (sw_state_db_exec(db, path, "PRAGMA journal_mode=WAL", err, errlen) != 0 ||
        sw_state_db_exec(db, path, "PRAGMA synchronous=FULL", err, errlen) != 0) {
        sqlite3_close_v2(db);
        return NULL;
    }
    return db;
}

int sw_state_db_schema(sqlite3 *db, const char *path, const char *component, int version, const char *create_sql,
                       char *err, size_t errlen)
{
    if (sw_state_db_exec(db, path,
                         "BEGIN IMMEDIATE;"
                         "CREATE TABLE IF NOT EXISTS swisd_schema (component TEXT PRIMARY KEY NOT NULL,"
                         " version INTEGER NOT NULL)",
                         err, errlen) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    int have = -1, rc = sqlite3_prepare_v2(db, "SELECT version FROM swisd_schema WHERE component = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            have = sqlite3_column_int(st, 0), rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        sw_err(err, errlen, "state db %s: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    if (have >= 0 && have != version) {
        sw_err(err, errlen, "state db %s: %s tables at schema version %d, this swisd knows %d%s", path, component, have,
               version, have > version ? " (written by a newer swisd?)" : "");
        goto fail;
    }
    if (have < 0) {
        char ins[160];
        snprintf(ins, sizeof ins, "INSERT INTO swisd_schema (component, version) VALUES ('%s', %d)", component,
                 version);
        if (sw_state_db_exec(db, path, create_sql, err, errlen) != 0 ||
            sw_state_db_exec(db, path, ins, err, errlen) != 0)
            goto fail;
    }
    return sw_state_db_exec(db, path, "COMMIT", err, errlen);
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

sqlite3_stmt *sw_state_db_prepare(sqlite3 *db, const char *path, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sw_err(err, errlen, "state db %s: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

int sw_state_db_done(sqlite3 *db, const char *path, sqlite3_stmt *st, char *err, size_t errlen)
{
    if (!st)
        return -1;
    const int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        sw_err(err, errlen, "state db %s: cannot write: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int sw_state_db_end(sqlite3 *db, const char *path, int rc, char *err, size_t errlen)
{
    if (rc == 0 && sw_state_db_exec(db, path, "COMMIT", err, errlen) == 0)
        return 0;
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}
