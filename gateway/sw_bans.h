/*  sw_bans.h: the gateway's bans and drains of nodes, kept in SQLite.
 *
 *  An operator (through the HTTP front's admin endpoints) bans a node, so
 *  the gateway never routes through it again and sessions on it fail over,
 *  or drains a stage, so no new session is planned through it while the
 *  sessions already on it finish. Both are keyed by node id (the id the
 *  broker's directory gives: today a free string, with keys a fingerprint
 *  of the node's public key) and both outlast a restart of the gateway.
 *
 *  Storage: one SQLite database file (WAL journal), schema version in
 *  PRAGMA user_version (SW_BANS_SCHEMA). Table
 *    nodes(id TEXT PRIMARY KEY, banned INTEGER, drained INTEGER,
 *          reason TEXT, changed_unix_ms INTEGER)
 *  A row with neither flag is deleted. Every change is written (and
 *  committed) before it is visible in memory, so what the gateway acts on is
 *  what a restart reads back. The whole table is also held in memory for
 *  the planner's look-ups (at most SW_BANS_MAX nodes; a linear scan, which
 *  the planner makes per stage per plan: cheap at this size, and free when
 *  the table is empty).
 *
 *  Thread safety: every function may be called from any thread (one mutex
 *  inside): the HTTP front's threads change the table, the gateway's loop
 *  reads it. sw_bans_version lets the loop notice a change without a lock.
 */
#ifndef SW_BANS_H
#define SW_BANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SW_BANS_SCHEMA 1          /* PRAGMA user_version this code writes and reads */
#define SW_BANS_MAX 4096          /* nodes banned or drained at once */
#define SW_BANS_ID_MAX 64         /* bytes of a node id (= SW_WIRE_MAX_ID) */
#define SW_BANS_REASON_MAX 200    /* bytes of a reason kept */

typedef struct sw_bans_t sw_bans_t;

/*  One node's entry, as listed. */
typedef struct {
    char id[SW_BANS_ID_MAX + 1];           /* node id, NUL-terminated */
    bool banned;                           /* never routed through; sessions on it fail over */
    bool drained;                          /* no new sessions through it */
    char reason[SW_BANS_REASON_MAX + 1];   /* the operator's words ("" when none) */
    uint64_t changed_unix_ms;              /* wall clock of the last change, ms since 1970 */
} sw_bans_entry_t;

/*  Opens (creating when absent) the database at path and loads it.
 *  Returns NULL with a reason in err: the file cannot be opened or created,
 *  is not an SQLite database (corrupt), has a schema version this code does
 *  not know (a newer swisd wrote it), holds more than SW_BANS_MAX rows or a
 *  row that breaks the limits above, or out of memory. Caller destroys. */
sw_bans_t *sw_bans_open(const char *path, char *err, size_t errlen);
/*  Closes the database; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_bans_destroy(sw_bans_t **self_p);

/*  Sets or clears one flag of node id: ban (true) or drain (false), on or
 *  off, with reason (NULL: "", cut to SW_BANS_REASON_MAX bytes; kept when a
 *  flag is set, the last one given wins). Writes through to the database.
 *  Returns 1 when it changed something, 0 when it was already so, -1 with a
 *  reason in err (empty or too long id, table full, database error: then
 *  memory is unchanged). */
int sw_bans_set(sw_bans_t *self, const char *id, bool ban, bool on, const char *reason, char *err, size_t errlen);

/*  True when node id is banned / drained now. */
bool sw_bans_banned(sw_bans_t *self, const char *id);
bool sw_bans_drained(sw_bans_t *self, const char *id);

/*  Copies up to max entries to out (sorted by id). Returns the number of
 *  entries in the table (may exceed max: then only max were copied). */
int sw_bans_list(sw_bans_t *self, sw_bans_entry_t *out, int max);

/*  A number that changes on every change of the table (starts at 1). */
uint64_t sw_bans_version(const sw_bans_t *self);

#endif
