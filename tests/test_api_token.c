/*  test_api_token.c: API tokens bound to node keys (gateway/sw_api_token)
 *  on a real SQLite file: issue and check, expiry, unknown tokens and
 *  strings not of a token's format, the bound on live tokens per key, only
 *  the BLAKE2b hash kept in the file (checked against libsodium's
 *  crypto_generichash of the token, computed here), persistence, a corrupt
 *  file. */
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_api_token.h"
#include "sw_test.h"

/* Rows of the table whose hash column equals BLAKE2b-256(token), and rows in all. */
static int s_rows_with_hash(const char *path, const char *token, int *all)
{
    uint8_t h[32];
    crypto_generichash(h, 32, (const unsigned char *) token, strlen(token), NULL, 0);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*), (SELECT count(*) FROM api_tokens) FROM api_tokens WHERE hash = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0), *all = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

int main(void)
{
    char dir[] = "/tmp/swisd-tok-XXXXXX", path[256], err[512], id[SW_API_TOKEN_ID_MAX + 1];
    CHECK(mkdtemp(dir) != NULL && sodium_init() >= 0);
    snprintf(path, sizeof path, "%s/state.db", dir);
    sw_api_token_t *t = sw_api_token_open(path, 100, err, sizeof err);
    CHECK_MSG(t != NULL, "%s", err);
    if (!t)
        return sw_test_report("api_token");

    /* issue, then check: the key it is bound to */
    char tok[SW_API_TOKEN_HEX + 1], tok2[SW_API_TOKEN_HEX + 1];
    double expires = 0;
    CHECK(sw_api_token_issue(t, "a1b2c3d4e5f60718", 1000, tok, &expires, err, sizeof err) == 0);
    CHECK(expires == 1100 && strlen(tok) == 64 && sw_api_token_format_ok(tok));
    CHECK(sw_api_token_check(t, tok, 1050, id, err, sizeof err) == SW_API_TOKEN_VALID &&
          !strcmp(id, "a1b2c3d4e5f60718"));
    CHECK(sw_api_token_check(t, tok, 1100, id, err, sizeof err) == SW_API_TOKEN_EXPIRED && id[0] == 0);
    CHECK(sw_api_token_issue(t, "a1b2c3d4e5f60718", 1000.5, tok2, NULL, err, sizeof err) == -2); /* too soon */
    CHECK(tok2[0] == 0 && strstr(err, "less than") != NULL);
    CHECK(sw_api_token_issue(t, "a1b2c3d4e5f60718", 1001, tok2, NULL, err, sizeof err) == 0 && strcmp(tok, tok2));

    /* unknown tokens, and strings that are not a token's format */
    char other[SW_API_TOKEN_HEX + 1];
    snprintf(other, sizeof other, "%s", tok);
    other[10] = other[10] == '0' ? '1' : '0';
    CHECK(sw_api_token_check(t, other, 1050, id, err, sizeof err) == SW_API_TOKEN_UNKNOWN);
    char upper[SW_API_TOKEN_HEX + 1];
    snprintf(upper, sizeof upper, "%s", tok);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char) (*p - 'a' + 'A');
    const char *bad[] = {"", "sk-no-key-required", "abc", upper};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!sw_api_token_format_ok(bad[i]) &&
                  sw_api_token_check(t, bad[i], 1050, id, err, sizeof err) == SW_API_TOKEN_UNKNOWN, "bad %zu", i);
    char longer[80];
    snprintf(longer, sizeof longer, "%s00", tok);
    CHECK(!sw_api_token_format_ok(longer) && !sw_api_token_format_ok(NULL));
    CHECK(sw_api_token_issue(t, "", 1000, tok2, NULL, err, sizeof err) == -1);

    /* the file holds the hash, not the token */
    int all = 0;
    CHECK(s_rows_with_hash(path, tok, &all) == 1 && all == 2);
    bool leaked = false, read_some = false;
    for (int k = 0; k < 2; k++) { /* the database and its WAL (where recent writes are until a checkpoint) */
        char p[300];
        snprintf(p, sizeof p, "%s%s", path, k ? "-wal" : "");
        FILE *wf = fopen(p, "rb");
        static char buf[1 << 20];
        const size_t n = wf ? fread(buf, 1, sizeof buf, wf) : 0;
        read_some |= n > 0;
        for (size_t i = 0; i + 64 <= n && !leaked; i++)
            leaked = !memcmp(buf + i, tok, 64);
        if (wf)
            fclose(wf);
    }
    CHECK(read_some && !leaked);

    /* at most SW_API_TOKEN_PER_KEY live tokens per key: the oldest go */
    char first[SW_API_TOKEN_HEX + 1], last[SW_API_TOKEN_HEX + 1];
    for (int i = 0; i < SW_API_TOKEN_PER_KEY + 4; i++) {
        CHECK(sw_api_token_issue(t, "ffff000011112222", 2000 + 2 * i, last, NULL, err, sizeof err) == 0);
        if (i == 0)
            memcpy(first, last, sizeof first);
    }
    CHECK(sw_api_token_check(t, first, 2050, id, err, sizeof err) == SW_API_TOKEN_UNKNOWN);
    CHECK(sw_api_token_check(t, last, 2050, id, err, sizeof err) == SW_API_TOKEN_VALID);
    CHECK(s_rows_with_hash(path, last, &all) == 1 && all == 2 + SW_API_TOKEN_PER_KEY);

    /* persistence */
    sw_api_token_destroy(&t);
    CHECK(t == NULL);
    sw_api_token_destroy(&t);
    t = sw_api_token_open(path, 0, err, sizeof err);
    CHECK(t != NULL);
    if (t)
        CHECK(sw_api_token_check(t, last, 2050, id, err, sizeof err) == SW_API_TOKEN_VALID &&
              !strcmp(id, "ffff000011112222"));
    sw_api_token_destroy(&t);

    /* a corrupt file */
    CHECK(sw_test_corrupt_db(path));
    t = sw_api_token_open(path, 0, err, sizeof err);
    CHECK(t == NULL);
    CHECK_MSG(strstr(err, "corrupt") != NULL, "%s", err);
    sw_test_rm_db(path);
    rmdir(dir);
    return sw_test_report("api_token");
}
