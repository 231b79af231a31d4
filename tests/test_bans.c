/*  test_bans.c: the gateway's ban and drain store (gateway/sw_bans) on a
 *  real SQLite file: create, change, reopen, schema version, corrupt file. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_bans.h"
#include "sw_test.h"

int main(void)
{
    char dir[] = "/tmp/swisd-bans-XXXXXX", path[256], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/state.db", dir);

    /* create, ban, drain, and the answers of set */
    sw_bans_t *b = sw_bans_open(path, err, sizeof err);
    CHECK_MSG(b != NULL, "%s", err);
    if (!b)
        return sw_test_report("bans");
    const uint64_t v0 = sw_bans_version(b);
    CHECK(!sw_bans_banned(b, "stage-a"));
    CHECK(sw_bans_set(b, "stage-a", true, true, "sent garbage", err, sizeof err) == 1);
    CHECK(sw_bans_set(b, "stage-a", true, true, "again", err, sizeof err) == 0); /* already so */
    CHECK(sw_bans_set(b, "stage-b", false, true, NULL, err, sizeof err) == 1);
    CHECK(sw_bans_set(b, "stage-c", true, true, NULL, err, sizeof err) == 1);
    CHECK(sw_bans_set(b, "stage-c", true, false, NULL, err, sizeof err) == 1); /* unban: the row goes */
    CHECK(sw_bans_version(b) == v0 + 4);
    CHECK(sw_bans_banned(b, "stage-a") && !sw_bans_drained(b, "stage-a"));
    CHECK(sw_bans_drained(b, "stage-b") && !sw_bans_banned(b, "stage-b"));
    CHECK(!sw_bans_banned(b, "stage-c") && !sw_bans_drained(b, "stage-c"));
    CHECK(sw_bans_set(b, "", true, true, NULL, err, sizeof err) == -1);
    char long_id[100];
    memset(long_id, 'x', sizeof long_id - 1), long_id[sizeof long_id - 1] = 0;
    CHECK(sw_bans_set(b, long_id, true, true, NULL, err, sizeof err) == -1);
    sw_bans_destroy(&b);
    CHECK(b == NULL);
    sw_bans_destroy(&b); /* NULL is fine */

    /* reopen: the same table */
    b = sw_bans_open(path, err, sizeof err);
    CHECK_MSG(b != NULL, "%s", err);
    if (b) {
        sw_bans_entry_t e[4];
        CHECK(sw_bans_list(b, e, 4) == 2);
        CHECK(!strcmp(e[0].id, "stage-a") && e[0].banned && !strcmp(e[0].reason, "sent garbage") &&
              e[0].changed_unix_ms > 0);
        CHECK(!strcmp(e[1].id, "stage-b") && e[1].drained && !e[1].banned);
        CHECK(sw_bans_list(b, e, 1) == 2); /* the count, whatever fits */
        CHECK(sw_bans_set(b, "stage-b", false, false, NULL, err, sizeof err) == 1);
        sw_bans_destroy(&b);
    }

    /* a schema version from the future: a clear error */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "PRAGMA user_version=7", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    b = sw_bans_open(path, err, sizeof err);
    CHECK(b == NULL);
    CHECK_MSG(strstr(err, "schema version 7") != NULL, "%s", err);
    sw_bans_destroy(&b);

    /* a corrupt file: a clear error, no crash */
    CHECK(sw_test_corrupt_db(path));
    b = sw_bans_open(path, err, sizeof err);
    CHECK(b == NULL);
    CHECK_MSG(strstr(err, "corrupt") != NULL || strstr(err, "not a database") != NULL, "%s", err);

    /* a folder that does not exist */
    b = sw_bans_open("/nonexistent-swisd/state.db", err, sizeof err);
    CHECK(b == NULL);
    CHECK_MSG(strstr(err, "cannot open") != NULL, "%s", err);

    sw_test_rm_db(path);
    rmdir(dir);
    return sw_test_report("bans");
}
