/*  sw_reputation.h: what the gateway knows of each stage key's honesty, and
 *  the credits it grants for their work (issue 12; docs/security.md,
 *  "Reputation and credits").
 *
 *  Keys are node ids: with keys, the 16-hex fingerprint of a node's public
 *  key (sw_identity.h), which the node cannot choose. Per key:
 *    verified      results an audit confirmed
 *    failed        audits the key failed
 *    consecutive   verified results since its last failure
 *    audit rate    the share of its requests the gateway audits (below)
 *    banned until  unix s: a failed audit bans the key for policy.ban_s
 *    credits       granted, pending, clawed back (below)
 *    display name  the one last seen in the directory (not trusted, not unique)
 *
 *  Audit rate, after BOINC's adaptive replication (a host's results are
 *  replicated until it has a run of valid ones, then spot-checked at a rate
 *  that falls as the run grows; any invalid result resets the run):
 *    rate = 1                                      while consecutive < n_trust
 *    rate = max(rate_floor, n_trust / consecutive)  after
 *  A key is trusted when consecutive >= n_trust and it is not banned. Any
 *  failure resets consecutive to 0. Trust changes only through
 *  sw_reputation_verified and sw_reputation_failed (the audit engine's
 *  calls), never for uptime or throughput.
 *
 *  Credits (granted by the gateway; a node never claims them): the gateway
 *  calls sw_reputation_credit_work for every hop of every completed forward
 *  step with
 *    units = layers x tokens x sw_reputation_model_factor(model)
 *  The credit is pending until its audit window closes (policy.
 *  audit_window_s after the work) and is then granted by sw_reputation_tick.
 *  A failed audit claws back the key's pending credit and the granted credit
 *  of its work done after its last verified result (kept per key as
 *  "unverified granted"; a verified result at time t makes every credit for
 *  work before t final).
 *
 *  Storage: tables of the --state-db file (sw_state_db.h; component
 *  "reputation", schema version SW_REPUTATION_SCHEMA):
 *    reputation(id TEXT PRIMARY KEY, display_name TEXT, verified INTEGER,
 *      failed INTEGER, consecutive INTEGER, banned_until REAL, first_seen REAL,
 *      last_seen REAL, verified_at REAL, granted REAL, unverified_granted REAL,
 *      clawed_back REAL, last_failure TEXT)          times: unix s
 *    credit_pending(node_id TEXT, session_id TEXT, units REAL, at REAL)
 *  Verified and failed are written (committed) before they return. Work is
 *  summed in memory per (key, session), and the keys seen in the directory
 *  are held in memory, both written by sw_reputation_tick at most once a
 *  second in one transaction (the gateway's loop must not wait for a disk
 *  per forward step or per directory): a crash loses at most the last
 *  second of pending credit, never a verdict. Reads (rate, row, list) go to the
 *  file, plus the work not yet written, so two gateways sharing a file see
 *  each other's verdicts.
 *
 *  Limits: ids 1..SW_REPUTATION_ID_MAX bytes; at most SW_REPUTATION_BUFFER
 *  (key, session) sums between two ticks (more: credit_work fails).
 *
 *  Thread safety: every function may be called from any thread (one mutex
 *  inside): the gateway's loop writes, the HTTP front's threads read.
 */
#ifndef SW_REPUTATION_H
#define SW_REPUTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SW_REPUTATION_SCHEMA 1      /* swisd_schema version of component "reputation" */
#define SW_REPUTATION_ID_MAX 64     /* bytes of a node id (= SW_WIRE_MAX_ID) */
#define SW_REPUTATION_NAME_MAX 32   /* bytes of a display name (= SW_WIRE_MAX_DISPLAY_NAME) */
#define SW_REPUTATION_REASON_MAX 200 /* bytes of a failure's reason kept */
#define SW_REPUTATION_BUFFER 4096   /* (key, session) work sums held between two ticks */

typedef struct sw_reputation_t sw_reputation_t;

typedef struct {
    int n_trust;           /* consecutive verified results before a key is trusted; <= 0: 20 */
    double rate_floor;     /* lowest audit rate, (0, 1]; <= 0: 0.05 */
    double ban_s;          /* seconds a failed audit bans a key; <= 0: 7 days (604800) */
    double audit_window_s; /* seconds after work before its credit is granted (--audit-window-s); <= 0: 120 */
} sw_reputation_policy_t;

/*  One key's record, as read. */
typedef struct {
    char id[SW_REPUTATION_ID_MAX + 1];           /* node id, NUL-terminated */
    char display_name[SW_REPUTATION_NAME_MAX + 1]; /* last seen, "" when none */
    uint64_t verified;         /* results an audit confirmed */
    uint64_t failed;           /* audits failed */
    uint64_t consecutive;      /* verified results since the last failure */
    double audit_rate;         /* share of its requests to audit now, (0, 1] */
    bool trusted;              /* consecutive >= n_trust and not banned at the time of the read */
    double banned_until;       /* unix s; 0: never banned */
    double first_seen, last_seen; /* unix s */
    double verified_at;        /* unix s of the last verified result; 0: none */
    double granted;            /* credit units granted (net of claw-backs) */
    double pending;            /* credit units whose audit window is open */
    double clawed_back;        /* credit units taken back by failed audits */
    char last_failure[SW_REPUTATION_REASON_MAX + 1]; /* the reason of the last failed audit, "" none */
} sw_reputation_row_t;

/*  Opens (creating its tables when absent) the reputation in the state
 *  database at path with policy (NULL: the defaults; copied). Returns NULL
 *  with a reason in err: the file cannot be opened, is corrupt or not
 *  SQLite, holds another schema version or a foreign table of the same
 *  name, a policy value out of range (rate_floor > 1, a NaN), out of memory.
 *  Caller destroys. */
sw_reputation_t *sw_reputation_open(const char *path, const sw_reputation_policy_t *policy, char *err,
                                    size_t errlen);
/*  Writes the work not yet written, closes; accepts NULL and *self_p ==
 *  NULL; sets *self_p = NULL. */
void sw_reputation_destroy(sw_reputation_t **self_p);

/*  The policy in force, with the defaults filled in. */
sw_reputation_policy_t sw_reputation_policy(const sw_reputation_t *self);

/*  The audit rate of key id now, (0, 1]: 1 for an unknown key (and on a
 *  database error: audit when in doubt). */
double sw_reputation_audit_rate(sw_reputation_t *self, const char *id);
/*  True when key id has n_trust consecutive verified results and is not
 *  banned now (false for an unknown key or on a database error). */
bool sw_reputation_trusted(sw_reputation_t *self, const char *id);
/*  True when a failed audit bans key id at now_s (unix s). */
bool sw_reputation_banned(sw_reputation_t *self, const char *id, double now_s);

/*  Records n_results (>= 1) results of key id that audits confirmed at now_s
 *  (unix s): verified and consecutive grow by n_results, and every credit of
 *  the key for work before now_s becomes final. Returns 0, or -1 with a
 *  reason in err (bad id, n_results < 1, database error: nothing changed). */
int sw_reputation_verified(sw_reputation_t *self, const char *id, uint64_t n_results, double now_s, char *err,
                           size_t errlen);
/*  Records a failed audit of key id at now_s: failed + 1, consecutive = 0,
 *  banned until now_s + ban_s (a longer ban already set is kept), its pending
 *  credit and its unverified granted credit clawed back, reason (NULL: "",
 *  cut to SW_REPUTATION_REASON_MAX bytes) kept. Returns 0, or -1 with a
 *  reason in err (bad id, database error: nothing changed). */
int sw_reputation_failed(sw_reputation_t *self, const char *id, double now_s, const char *reason, char *err,
                         size_t errlen);

/*  Records that key id was seen at now_s with display_name (NULL or "":
 *  keep the one known). Held in memory (a table of up to 4096 keys, the most
 *  a directory lists) and written by the next sw_reputation_tick that does
 *  its work: a key's row at most once a minute unless its name changed, so
 *  the gateway may call it for every stage of every directory. Returns 0,
 *  or -1 with a reason in err (bad id, a name longer than
 *  SW_REPUTATION_NAME_MAX). */
int sw_reputation_seen(sw_reputation_t *self, const char *id, const char *display_name, double now_s, char *err,
                       size_t errlen);

/*  Adds units (finite, >= 0; units = layers x tokens x model factor) of
 *  pending credit to key id for work in session session_id (NULL: "") done
 *  at now_s. Held in memory until the next sw_reputation_tick. Returns 0, or
 *  -1 with a reason in err (bad id or units, SW_REPUTATION_BUFFER sums
 *  held already: the credit is lost, and the caller should tick). */
int sw_reputation_credit_work(sw_reputation_t *self, const char *id, const char *session_id, double units,
                              double now_s, char *err, size_t errlen);

/*  Housekeeping, from the gateway's loop (call often; it does its work at
 *  most once a second, or at once when the work sums fill half the buffer):
 *  writes the work summed since the last time, and grants the pending
 *  credit whose window closed (at + audit_window_s <= now_s). Returns the
 *  number of pending rows granted (0 when it had nothing to do), or -1 with
 *  a reason in err (database error: the sums stay in memory for the next
 *  try). */
int sw_reputation_tick(sw_reputation_t *self, double now_s, char *err, size_t errlen);

/*  Key id's record into *out. Returns 1, 0 when the key is unknown (out
 *  zeroed, audit_rate 1), or -1 with a reason in err. */
int sw_reputation_row(sw_reputation_t *self, const char *id, sw_reputation_row_t *out, char *err, size_t errlen);

/*  Up to max records into out, sorted by granted credit (largest first),
 *  then id. Returns the number of keys known (may exceed max: then only
 *  max were copied), or -1 with a reason in err. */
int sw_reputation_list(sw_reputation_t *self, sw_reputation_row_t *out, int max, char *err, size_t errlen);

/*  The per-model factor of credits: the parameters of one transformer block
 *  in billions, from the shapes of a dense GQA block with a gated FFN
 *  (llama's GGUF tensors; head_dim = n_embd / n_head):
 *    attn_q, attn_output: n_embd x n_embd each
 *    attn_k, attn_v:      n_embd x (n_head_kv x head_dim) each
 *    ffn_gate, ffn_up, ffn_down: n_embd x n_ff each
 *    attn_norm, ffn_norm: n_embd each
 *  so one token through one block of a 7B llama (4096, 11008, 32, 32) earns
 *  0.202 units. Returns the factor, or -1 when a size is < 1 or n_head does
 *  not divide n_embd or n_head_kv does not divide n_head. */
double sw_reputation_model_factor(int64_t n_embd, int64_t n_ff, int64_t n_head, int64_t n_head_kv);

#endif
