/*  sw_state_db.h: the gateway's state database file (--state-db): opening
 *  it and the schema versions of the classes that keep tables in it.
 *
 *  One SQLite file holds the state of several classes (sw_bans, which keeps
 *  its own version in PRAGMA user_version; sw_reputation; sw_api_token).
 *  Every other class records its schema version as a row of
 *    swisd_schema(component TEXT PRIMARY KEY, version INTEGER)
 *  so classes never share a version number: a component whose row is
 *  absent creates its tables, one whose row holds a newer version than this
 *  swisd knows is refused (a newer swisd wrote it).
 *
 *  Journal: WAL with synchronous=FULL (a committed change survives a power
 *  loss), and a 2 s busy time-out, so several connections (the classes of
 *  one gateway, or two gateways of one user) share the file.
 *
 *  Thread safety: a connection opened here is serialized by SQLite
 *  (SQLITE_OPEN_FULLMUTEX); a class that keeps prepared statements still
 *  serializes its own use of them.
 */
#ifndef SW_STATE_DB_H
#define SW_STATE_DB_H

#include <stddef.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

/*  Opens (creating when absent) the database at path, checks that it is an
 *  SQLite database and switches it to WAL. Returns the connection (caller
 *  closes it with sqlite3_close_v2), or NULL with a reason naming path in
 *  err: cannot be opened or created, corrupt or not an SQLite file ("move it
 *  away or give another --state-db"), locked for longer than 2 s. */
sqlite3 *sw_state_db_open(const char *path, char *err, size_t errlen);

/*  Makes sure component's tables exist at schema version: when swisd_schema
 *  has no row for component, runs create_sql (statements separated by ';')
 *  and records version, all in one transaction. Returns 0, or -1 with a
 *  reason in err: the file holds a version other than version (newer: written
 *  by a newer swisd), create_sql fails (a foreign table of the same name),
 *  a database error. path: for messages only. */
int sw_state_db_schema(sqlite3 *db, const char *path, const char *component, int version, const char *create_sql,
                       char *err, size_t errlen);

/*  Runs sql (no result rows). Returns 0, or -1 with "state db PATH: why" in err. */
int sw_state_db_exec(sqlite3 *db, const char *path, const char *sql, char *err, size_t errlen);

/*  Prepares sql. Returns the statement (caller finalizes), or NULL with
 *  "state db PATH: why" in err. */
sqlite3_stmt *sw_state_db_prepare(sqlite3 *db, const char *path, const char *sql, char *err, size_t errlen);

/*  Steps st (bound; NULL: a failed prepare, -1 at once) to its end, wanting
 *  no rows, and finalizes it. Returns 0, or -1 with "cannot write" in err. */
int sw_state_db_done(sqlite3 *db, const char *path, sqlite3_stmt *st, char *err, size_t errlen);

/*  Ends the transaction a caller began with "BEGIN IMMEDIATE": COMMIT when
 *  rc is 0, else ROLLBACK. Returns 0 when committed, else -1 (err set by the
 *  failed COMMIT, or left as the caller's failure set it). */
int sw_state_db_end(sqlite3 *db, const char *path, int rc, char *err, size_t errlen);

/*  Wall clock, seconds since 1970 (fractional). */
double sw_state_db_unix_s(void);

#endif
