/*  sw_api_token.c: API tokens bound to node keys (see sw_api_token.h). */
#include "sw_api_token.h"

#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sw_common.h"
#include "sw_state_db.h"

static const char *S_CREATE =
    "CREATE TABLE api_tokens (hash BLOB PRIMARY KEY NOT NULL, node_id TEXT NOT NULL, created REAL NOT NULL,"
    " expires REAL NOT NULL);"
    "CREATE INDEX api_tokens_node ON api_tokens (node_id)";

struct sw_api_token_t {
    sqlite3 *db;
    char path[1024];
    double ttl_s;
    pthread_mutex_t mu; /* serializes the statements of one connection */
};

sw_api_token_t *sw_api_token_open(const char *path, double ttl_s, char *err, size_t errlen)
{
    if (!path || strlen(path) >= sizeof ((sw_api_token_t *) 0)->path) {
        sw_err(err, errlen, "state db: no path, or a path too long");
        return NULL;
    }
    if (sodium_init() < 0) {
        sw_err(err, errlen, "libsodium cannot start");
        return NULL;
    }
    sw_api_token_t *t = calloc(1, sizeof *t);
    if (!t) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(t->path, sizeof t->path, "%s", path);
    t->ttl_s = ttl_s > 0 ? ttl_s : SW_API_TOKEN_TTL_S;
    pthread_mutex_init(&t->mu, NULL);
    sqlite3_stmt *st = NULL;
    if (!(t->db = sw_state_db_open(path, err, errlen)) ||
        sw_state_db_schema(t->db, path, "api_tokens", SW_API_TOKEN_SCHEMA, S_CREATE, err, errlen) != 0)
        goto fail;
    if (sqlite3_prepare_v2(t->db, "SELECT hash, node_id, created, expires FROM api_tokens LIMIT 1", -1, &st, NULL) !=
        SQLITE_OK) {
        sw_err(err, errlen, "state db %s: the api_tokens table is not swisd's: %s", path, sqlite3_errmsg(t->db));
        goto fail;
    }
    sqlite3_finalize(st);
    return t;
fail:
    sw_api_token_destroy(&t);
    return NULL;
}

void sw_api_token_destroy(sw_api_token_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_api_token_t *t = *self_p;
    sqlite3_close_v2(t->db);
    pthread_mutex_destroy(&t->mu);
    free(t);
    *self_p = NULL;
}

bool sw_api_token_format_ok(const char *s)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= SW_API_TOKEN_HEX || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == SW_API_TOKEN_HEX;
}

/* BLAKE2b-256 of the token's characters. */
static void s_hash(const char *token, uint8_t h[32])
{
    crypto_generichash(h, 32, (const unsigned char *) token, SW_API_TOKEN_HEX, NULL, 0);
}

static sqlite3_stmt *s_prep(sw_api_token_t *t, const char *sql, char *err, size_t errlen)
{
    return sw_state_db_prepare(t->db, t->path, sql, err, errlen);
}

static int s_done(sw_api_token_t *t, sqlite3_stmt *st, char *err, size_t errlen)
{
    return sw_state_db_done(t->db, t->path, st, err, errlen);
}

int sw_api_token_issue(sw_api_token_t *self, const char *node_id, double now_s, char token[SW_API_TOKEN_HEX + 1],
                       double *expires_s, char *err, size_t errlen)
{
    token[0] = 0;
    if (!node_id || !node_id[0] || strlen(node_id) > SW_API_TOKEN_ID_MAX)
        return sw_err(err, errlen, "a node id has 1 to %d bytes", SW_API_TOKEN_ID_MAX);
    uint8_t raw[32], h[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t) sizeof raw)
        return sw_err(err, errlen, "no randomness from the kernel for a token");
    for (int i = 0; i < 32; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    sodium_memzero(raw, sizeof raw);
    s_hash(token, h);
    const double expires = now_s + self->ttl_s;
    pthread_mutex_lock(&self->mu);
    sqlite3_stmt *st = s_prep(self, "SELECT MAX(created) FROM api_tokens WHERE node_id = ?1", err, errlen);
    int rc = st ? 0 : -1;
    if (st) {
        sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL &&
            now_s - sqlite3_column_double(st, 0) < SW_API_TOKEN_EVERY_S && now_s >= sqlite3_column_double(st, 0))
            rc = -2;
        sqlite3_finalize(st);
    }
    if (rc != 0) {
        pthread_mutex_unlock(&self->mu);
        sodium_memzero(token, SW_API_TOKEN_HEX + 1);
        if (rc == -2)
            sw_err(err, errlen, "key %s got a token less than %.0f s ago", node_id, SW_API_TOKEN_EVERY_S);
        return rc;
    }
    rc = sw_state_db_exec(self->db, self->path, "BEGIN IMMEDIATE", err, errlen);
    /* the key's expired tokens go, and all but its newest SW_API_TOKEN_PER_KEY - 1 live ones */
    if (rc == 0 && (st = s_prep(self,
                               "DELETE FROM api_tokens WHERE node_id = ?1 AND (expires <= ?2 OR hash NOT IN"
                               " (SELECT hash FROM api_tokens WHERE node_id = ?1 ORDER BY created DESC LIMIT ?3))",
                               err, errlen))) {
        sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 2, now_s);
        sqlite3_bind_int(st, 3, SW_API_TOKEN_PER_KEY - 1);
        rc = s_done(self, st, err, errlen);
    } else if (rc == 0) {
        rc = -1;
    }
    if (rc == 0 && (st = s_prep(self, "INSERT INTO api_tokens (hash, node_id, created, expires)"
                                      " VALUES (?1, ?2, ?3, ?4)", err, errlen))) {
        sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, node_id, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 3, now_s);
        sqlite3_bind_double(st, 4, expires);
        rc = s_done(self, st, err, errlen);
    } else if (rc == 0) {
        rc = -1;
    }
    rc = sw_state_db_end(self->db, self->path, rc, err, errlen);
    pthread_mutex_unlock(&self->mu);
    if (rc != 0) {
        sodium_memzero(token, SW_API_TOKEN_HEX + 1);
        return -1;
    }
    if (expires_s)
        *expires_s = expires;
    return 0;
}

sw_api_token_result_t sw_api_token_check(sw_api_token_t *self, const char *token, double now_s,
                                         char node_id[SW_API_TOKEN_ID_MAX + 1], char *err, size_t errlen)
{
    node_id[0] = 0;
    if (!sw_api_token_format_ok(token))
        return SW_API_TOKEN_UNKNOWN;
    uint8_t h[32];
    s_hash(token, h);
    pthread_mutex_lock(&self->mu);
    sw_api_token_result_t res = SW_API_TOKEN_ERROR;
    sqlite3_stmt *st = s_prep(self, "SELECT node_id, expires FROM api_tokens WHERE hash = ?1", err, errlen);
    if (st) {
        sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
        const int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *id = sqlite3_column_text(st, 0);
            const int len = sqlite3_column_bytes(st, 0);
            if (!id || len < 1 || len > SW_API_TOKEN_ID_MAX) {
                sw_err(err, errlen, "state db %s: a token row with a bad node id", self->path);
            } else if (sqlite3_column_double(st, 1) <= now_s) {
                res = SW_API_TOKEN_EXPIRED;
            } else {
                memcpy(node_id, id, (size_t) len);
                node_id[len] = 0;
                res = SW_API_TOKEN_VALID;
            }
        } else if (rc == SQLITE_DONE) {
            res = SW_API_TOKEN_UNKNOWN;
        } else {
            sw_err(err, errlen, "state db %s: %s", self->path, sqlite3_errmsg(self->db));
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&self->mu);
    return res;
}
