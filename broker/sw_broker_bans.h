/*  sw_broker_bans.h: a broker's runtime bans: nodes refused because a
 *  gateway banned them (a BanNotice, protos/node.proto), kept in a file so a
 *  restarted broker keeps them, and forgotten when they expire.
 *
 *  Beside the operator's --deny FILE (sw_broker_auth.h), which the broker
 *  only reads, these are the bans the swarm itself decides (docs/security.md,
 *  "Bans that reach every broker"). The broker refuses a banned node's key at
 *  ZAP and its id at Hello, drops it when it is registered, and relays each
 *  notice that changed this set to its parent and child brokers.
 *
 *  A ban, as checked by sw_broker_ban_check (on every notice received and on
 *  every line read back):
 *    id      16 lowercase hex characters (a key's fingerprint, sw_identity.h)
 *            on a secure broker; on an --insecure one 1..SW_WIRE_MAX_ID bytes
 *            of [A-Za-z0-9._:-] (ids are free strings there)
 *    key     none, or 32 bytes whose fingerprint is id
 *    until   wall-clock end in s since 1970, later than now and at most
 *            SW_BROKER_BANS_MAX_S ahead; 0 in a notice lifts the id's ban
 *    issued  when the gateway decided it, wall-clock ms since 1970, at most
 *            SW_BROKER_BANS_SKEW_S ahead of now (0 in a notice: now)
 *    reason  <= SW_WIRE_MAX_BAN_REASON bytes; bytes outside printable ASCII
 *            are replaced by '?' (it goes into logs and the file as is)
 *    origin  the gateway that decided it (a node id, may be empty)
 *
 *  Merging (last decision wins; what makes relaying terminate): a notice
 *  changes the set only when it was issued later than what the set holds for
 *  its id; then a ban replaces it, and a lift turns it into a tombstone
 *  ("lifted", kept until the lifted ban would have ended, or
 *  SW_BROKER_BANS_MAX_S for an id the set did not hold) so that an older
 *  ban that a broker back from an outage still holds cannot come back. The
 *  same notice again, or an older one, changes nothing. Only changes are
 *  written and relayed; tombstones are relayed as lifts when a neighbour
 *  (re)joins, like bans.
 *
 *  File (one line per ban, LF-terminated, rewritten whole through a
 *  temporary file and rename on every change):
 *      # swisd broker bans v1                            first line, exactly
 *      ID UNTIL_UNIX_S ISSUED_UNIX_MS STATE KEY ORIGIN REASON
 *          STATE: "ban" or "lifted" (a tombstone); KEY: Z85 (40 chars) or "-";
 *          ORIGIN: id or "-"; REASON: rest of the line, may be empty
 *  At most SW_BROKER_BANS_MAX lines and SW_BROKER_BANS_MAX_FILE bytes. A
 *  line that breaks these rules makes sw_broker_bans_new fail with
 *  "FILE:LINE: reason" (never the line's bytes): a broker that cannot read
 *  its bans does not start without them. Expired lines are dropped.
 *
 *  Thread safety: one thread (the broker's).
 */
#ifndef SW_BROKER_BANS_H
#define SW_BROKER_BANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SW_BROKER_BANS_MAX 10000             /* bans held at once */
#define SW_BROKER_BANS_MAX_S (400u * 86400u) /* a ban ends at most this many s after now */
#define SW_BROKER_BANS_MAX_FILE (4u << 20)   /* bytes of a ban-state file read */
#define SW_BROKER_BANS_SKEW_S 600            /* how far ahead of our clock a decision's time may be */

/*  One ban. */
typedef struct {
    char id[SW_WIRE_MAX_ID + 1];                 /* banned node id */
    bool has_key;                                /* key is known */
    uint8_t key[32];                             /* its CURVE public key (fingerprint = id) */
    uint64_t until_unix_s;                       /* end, s since 1970; 0: a lift (notices only) */
    uint64_t issued_unix_ms;                     /* when it was decided, ms since 1970 */
    bool lifted;                                 /* a tombstone: the ban on id was lifted (set only) */
    char origin[SW_WIRE_MAX_ID + 1];             /* gateway that decided it ("" unknown) */
    char reason[SW_WIRE_MAX_BAN_REASON + 1];     /* printable ASCII */
} sw_broker_ban_t;

typedef struct sw_broker_bans_t sw_broker_bans_t;

/*  Checks a ban (see above) for a secure broker (secure) or an --insecure
 *  one, at wall-clock now_s; replaces unprintable bytes of its reason by '?'.
 *  A lift (until 0) passes. Returns 0, or -1 with the reason in err. Pure
 *  (no clock, no I/O). */
int sw_broker_ban_check(sw_broker_ban_t *ban, bool secure, uint64_t now_s, char *err, size_t errlen);

/*  Fills *out from a received notice (strings cut to their fields, the key
 *  copied when 32 bytes). origin is taken from the notice; the caller sets
 *  it for a gateway's own notice. Check it with sw_broker_ban_check. */
void sw_broker_ban_from_notice(const Swisd__V1__BanNotice *n, sw_broker_ban_t *out);
/*  Points a BanNotice's fields at ban's (borrowed while ban lives). */
void sw_broker_ban_to_notice(const sw_broker_ban_t *ban, Swisd__V1__BanNotice *n);

/*  Reads path (NULL: bans kept in memory only; a missing file: none yet)
 *  with the rules of a secure broker or an insecure one at now_s. log_name
 *  prefixes log lines (copied). Returns NULL with err set ("FILE:LINE:
 *  reason", a file too large or unreadable). Caller destroys. */
sw_broker_bans_t *sw_broker_bans_new(const char *path, bool secure, uint64_t now_s, const char *log_name, char *err,
                                     size_t errlen);
/*  Frees; accepts NULL; sets *self_p = NULL. */
void sw_broker_bans_destroy(sw_broker_bans_t **self_p);

/*  Merges a checked ban or lift at wall-clock now_s (see "Merging").
 *  Returns 1 when the set changed (the file is then rewritten: a failed
 *  write is logged and the ban still holds in memory), 0 when nothing
 *  changed, -1 with err set when the set is full (SW_BROKER_BANS_MAX). */
int sw_broker_bans_apply(sw_broker_bans_t *self, const sw_broker_ban_t *ban, uint64_t now_s, char *err,
                         size_t errlen);

/*  The ban on id in force at now_s (borrowed until the next change), or
 *  NULL (also when self is NULL, and for a lifted ban). */
const sw_broker_ban_t *sw_broker_bans_find(const sw_broker_bans_t *self, const char *id, uint64_t now_s);

/*  Forgets bans and tombstones that ended by now_s (bans logged; the file
 *  rewritten when any did). Returns how many. */
int sw_broker_bans_expire(sw_broker_bans_t *self, uint64_t now_s);

/*  Iterates over the bans and tombstones held, in no order: the first, then
 *  the next ones, NULL at the end (borrowed; any change of the set ends the
 *  walk). */
const sw_broker_ban_t *sw_broker_bans_first(sw_broker_bans_t *self);
const sw_broker_ban_t *sw_broker_bans_next(sw_broker_bans_t *self);

/*  Bans and tombstones held (ended ones not yet forgotten included). */
size_t sw_broker_bans_count(const sw_broker_bans_t *self);

/*  Formats a ban for a log line or an error: "until 2026-12-03T19:00:00Z (by
 *  gateway ID): REASON" into out. Returns out. */
const char *sw_broker_ban_describe(const sw_broker_ban_t *ban, char *out, size_t len);

#ifdef __cplusplus
}
#endif
#endif
