/*  sw_api_token.h: API tokens of the public HTTP API, each bound to a node
 *  key that proved itself to the gateway (issue 12, `--http-credit-boost`;
 *  docs/security.md, "Reputation and credits").
 *
 *  A contributor dials the gateway's RPC over CURVE with its node key and
 *  sends a TokenRequest; the gateway learns the key from the connection
 *  (its ZAP handler's User-Id, broker/sw_broker_auth.h), so the key is proved
 *  by the handshake, never claimed in a message. The token it gets back is
 *  32 random bytes from the kernel as 64 lowercase hex digits; an HTTP
 *  request carrying it as "Authorization: Bearer <token>" is metered per
 *  key, at a rate that grows with the key's granted credit (sw_http.h).
 *
 *  Storage: a table of the --state-db file (sw_state_db.h; component
 *  "api_tokens", schema version SW_API_TOKEN_SCHEMA):
 *    api_tokens(hash BLOB PRIMARY KEY, node_id TEXT, created REAL,
 *               expires REAL)                               times: unix s
 *  hash = BLAKE2b-256 of the token's 64 characters (libsodium's
 *  crypto_generichash, RFC 7693), so the file never holds a usable token.
 *  A look-up hashes the token and finds the row by its hash: nothing is
 *  compared byte by byte against a secret, so timing tells nothing.
 *  Bounded: issuing drops the key's expired tokens and keeps at most
 *  SW_API_TOKEN_PER_KEY live ones (the oldest go).
 *
 *  Thread safety: every function may be called from any thread (one mutex
 *  inside): the gateway's loop issues, the HTTP front's threads check.
 */
#ifndef SW_API_TOKEN_H
#define SW_API_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define SW_API_TOKEN_SCHEMA 1        /* swisd_schema version of component "api_tokens" */
#define SW_API_TOKEN_HEX 64          /* characters of a token */
#define SW_API_TOKEN_TTL_S (30 * 86400.0) /* default life of a token: 30 days */
#define SW_API_TOKEN_PER_KEY 16      /* live tokens kept per key */
#define SW_API_TOKEN_ID_MAX 64       /* bytes of a node id */
#define SW_API_TOKEN_EVERY_S 1.0     /* least seconds between two tokens of one key (each costs a disk write) */

typedef struct sw_api_token_t sw_api_token_t;

/*  What a check found. */
typedef enum {
    SW_API_TOKEN_UNKNOWN = 0, /* no such token (or not a token's format) */
    SW_API_TOKEN_VALID = 1,   /* *node_id set */
    SW_API_TOKEN_EXPIRED = 2, /* it was issued, and its time is up */
    SW_API_TOKEN_ERROR = -1,  /* database error (err says why) */
} sw_api_token_result_t;

/*  Opens (creating its table when absent) the tokens in the state database
 *  at path; tokens issued live ttl_s seconds (<= 0: SW_API_TOKEN_TTL_S).
 *  Returns NULL with a reason in err (as sw_state_db_open, or another schema
 *  version, a foreign table of the same name). Caller destroys. */
sw_api_token_t *sw_api_token_open(const char *path, double ttl_s, char *err, size_t errlen);
/*  Closes; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_api_token_destroy(sw_api_token_t **self_p);

/*  True when s is a token's format: exactly 64 lowercase hex digits. */
bool sw_api_token_format_ok(const char *s);

/*  Makes a token for node_id (1..SW_API_TOKEN_ID_MAX bytes) at now_s (unix
 *  s) into token (65 bytes, NUL-terminated) and its expiry into *expires_s
 *  (unix s; may be NULL). Returns 0; -2 when the key got a token less than
 *  SW_API_TOKEN_EVERY_S ago (nothing written: a client asking in a loop
 *  costs no disk writes); or -1 with a reason in err (bad id, no randomness,
 *  database error). */
int sw_api_token_issue(sw_api_token_t *self, const char *node_id, double now_s, char token[SW_API_TOKEN_HEX + 1],
                       double *expires_s, char *err, size_t errlen);

/*  Looks token up at now_s. On SW_API_TOKEN_VALID copies the key's node id
 *  into node_id (SW_API_TOKEN_ID_MAX + 1 bytes). A string that is not a
 *  token's format is UNKNOWN without touching the database. */
sw_api_token_result_t sw_api_token_check(sw_api_token_t *self, const char *token, double now_s,
                                         char node_id[SW_API_TOKEN_ID_MAX + 1], char *err, size_t errlen);

#endif
