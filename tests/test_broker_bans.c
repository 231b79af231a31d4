/*  test_broker_bans.c: a broker's runtime bans (broker/sw_broker_bans.h) on
 *  real files in a temporary folder: checks of a ban (ids of both kinds, a
 *  key that is not the id's, times out of range, unprintable reasons),
 *  merging (new, the same again, later, earlier, lifts: what stops a notice
 *  from looping), expiry, the file read back by a new set (a restarted
 *  broker), and hostile files (wrong first line, bad fields, long lines, too
 *  large, a folder) refused with FILE:LINE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_broker_bans.h"
#include "sw_identity.h"
#include "sw_test.h"

#define NOW 1800000000ull /* a fixed wall clock: 2027-01-15 */

static char s_dir[256];
static char s_err[512];

static const char *s_path(const char *name)
{
    return sw_test_path(s_dir, name);
}

static sw_broker_ban_t s_ban(const char *id, uint64_t until, const char *reason)
{
    sw_broker_ban_t b;
    memset(&b, 0, sizeof b);
    snprintf(b.id, sizeof b.id, "%s", id);
    snprintf(b.reason, sizeof b.reason, "%s", reason);
    b.until_unix_s = until;
    return b;
}

static void test_check(void)
{
    uint8_t key[32], other[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t) (i * 7 + 1), other[i] = (uint8_t) (i * 5 + 3);
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(key, id);

    sw_broker_ban_t b = s_ban(id, NOW + 60, "lied\x01 in\x7f audits");
    CHECK(sw_broker_ban_check(&b, true, NOW, s_err, sizeof s_err) == 0);
    CHECK_MSG(!strcmp(b.reason, "lied? in? audits"), "reason %s", b.reason); /* unprintable bytes replaced */
    b.has_key = true;
    memcpy(b.key, key, 32);
    CHECK(sw_broker_ban_check(&b, true, NOW, s_err, sizeof s_err) == 0);
    memcpy(b.key, other, 32); /* a key whose fingerprint is another id */
    CHECK(sw_broker_ban_check(&b, true, NOW, s_err, sizeof s_err) != 0 && strstr(s_err, "fingerprint"));
    b.has_key = false;
    /* ids: secure needs 16 lowercase hex; insecure takes a free id of [A-Za-z0-9._:-] */
    const char *bad_secure[] = {"", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "stage-1",
                                "0123456789abcdeg"};
    for (size_t i = 0; i < sizeof bad_secure / sizeof bad_secure[0]; i++) {
        sw_broker_ban_t x = s_ban(bad_secure[i], NOW + 60, "");
        CHECK_MSG(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) != 0, "secure id '%s'", bad_secure[i]);
    }
    sw_broker_ban_t x = s_ban("stage-1.eu:a_B", NOW + 60, "");
    CHECK(sw_broker_ban_check(&x, false, NOW, s_err, sizeof s_err) == 0);
    x = s_ban("stage 1", NOW + 60, "");
    CHECK(sw_broker_ban_check(&x, false, NOW, s_err, sizeof s_err) != 0);
    x = s_ban("stage\n1", NOW + 60, "");
    CHECK(sw_broker_ban_check(&x, false, NOW, s_err, sizeof s_err) != 0);
    x = s_ban("", NOW + 60, "");
    CHECK(sw_broker_ban_check(&x, false, NOW, s_err, sizeof s_err) != 0);
    /* times: ended, too far, a lift */
    x = s_ban(id, NOW, "");
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) != 0 && strstr(s_err, "ended"));
    x = s_ban(id, NOW + SW_BROKER_BANS_MAX_S, "");
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) == 0);
    x = s_ban(id, NOW + SW_BROKER_BANS_MAX_S + 1, "");
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) != 0);
    x = s_ban(id, UINT64_MAX, "");
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) != 0);
    x = s_ban(id, 0, "");
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) == 0);
    /* the decision's time: 0 is now; more than the skew ahead is refused */
    x = s_ban(id, NOW + 60, "");
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) == 0 && x.issued_unix_ms == NOW * 1000);
    x.issued_unix_ms = (NOW + SW_BROKER_BANS_SKEW_S) * 1000;
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) == 0);
    x.issued_unix_ms = (NOW + SW_BROKER_BANS_SKEW_S + 1) * 1000;
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) != 0 && strstr(s_err, "dated"));
    /* origin: an id's characters only (it goes into the file between spaces) */
    x = s_ban(id, NOW + 60, "");
    snprintf(x.origin, sizeof x.origin, "gw 1");
    CHECK(sw_broker_ban_check(&x, true, NOW, s_err, sizeof s_err) != 0);

    /* a notice and back */
    Swisd__V1__BanNotice n;
    b = s_ban(id, NOW + 5, "r");
    b.has_key = true;
    memcpy(b.key, key, 32);
    snprintf(b.origin, sizeof b.origin, "00112233aabbccdd");
    sw_broker_ban_to_notice(&b, &n);
    sw_broker_ban_t back;
    sw_broker_ban_from_notice(&n, &back);
    CHECK(!memcmp(&back, &b, sizeof b));
    n.public_key.len = 31; /* not a key: dropped */
    sw_broker_ban_from_notice(&n, &back);
    CHECK(!back.has_key);
}

static void test_merge_and_file(void)
{
    const char *file = s_path("bans.txt");
    sw_broker_bans_t *bs = sw_broker_bans_new(file, true, NOW, "test", s_err, sizeof s_err);
    CHECK_MSG(bs != NULL, "%s", s_err);
    if (!bs)
        return;
    CHECK(sw_broker_bans_count(bs) == 0);
    CHECK(access(file, F_OK) != 0); /* nothing written before a change */
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t) (200 - i);
    char id[SW_IDENTITY_ID_LEN + 1];
    sw_identity_fingerprint(key, id);
    const uint64_t T = NOW * 1000; /* decision times, ms */
    sw_broker_ban_t a = s_ban(id, NOW + 100, "noise on every request");
    a.has_key = true;
    memcpy(a.key, key, 32);
    a.issued_unix_ms = T;
    snprintf(a.origin, sizeof a.origin, "0a0b0c0d0e0f0102");
    CHECK(sw_broker_bans_apply(bs, &a, NOW, s_err, sizeof s_err) == 1);
    CHECK(sw_broker_bans_apply(bs, &a, NOW, s_err, sizeof s_err) == 0); /* the same again: no change, not relayed */
    sw_broker_ban_t older = a; /* an older decision, whatever its end: ignored */
    older.issued_unix_ms = T - 1;
    older.until_unix_s = NOW + 300;
    CHECK(sw_broker_bans_apply(bs, &older, NOW, s_err, sizeof s_err) == 0);
    const sw_broker_ban_t *f = sw_broker_bans_find(bs, id, NOW);
    CHECK(f && f->until_unix_s == NOW + 100 && f->has_key && !memcmp(f->key, key, 32));
    sw_broker_ban_t newer = a; /* a later decision wins, even a shorter one */
    newer.issued_unix_ms = T + 5;
    newer.until_unix_s = NOW + 50;
    CHECK(sw_broker_bans_apply(bs, &newer, NOW, s_err, sizeof s_err) == 1);
    CHECK(sw_broker_bans_find(bs, id, NOW)->until_unix_s == NOW + 50);
    newer.issued_unix_ms = T + 6;
    newer.until_unix_s = NOW + 200;
    CHECK(sw_broker_bans_apply(bs, &newer, NOW, s_err, sizeof s_err) == 1);
    CHECK(sw_broker_bans_find(bs, id, NOW + 199) != NULL);
    CHECK(sw_broker_bans_find(bs, id, NOW + 200) == NULL); /* ends at until */
    CHECK(sw_broker_bans_find(bs, "ffffffffffffffff", NOW) == NULL);
    CHECK(sw_broker_bans_find(NULL, id, NOW) == NULL);
    sw_broker_ban_t b2 = s_ban("1111222233334444", NOW + 10, "");
    b2.issued_unix_ms = T;
    CHECK(sw_broker_bans_apply(bs, &b2, NOW, s_err, sizeof s_err) == 1);
    CHECK(sw_broker_bans_count(bs) == 2);
    int walked = 0, found = 0; /* the walk a broker syncs a new neighbour with */
    for (const sw_broker_ban_t *w = sw_broker_bans_first(bs); w; w = sw_broker_bans_next(bs), walked++)
        found += !strcmp(w->id, id) || !strcmp(w->id, "1111222233334444");
    CHECK(walked == 2 && found == 2);

    /* a restarted broker reads both back, key, origin, reason and decision time included */
    sw_broker_bans_t *again = sw_broker_bans_new(file, true, NOW, "test", s_err, sizeof s_err);
    CHECK_MSG(again != NULL, "%s", s_err);
    if (again) {
        CHECK(sw_broker_bans_count(again) == 2);
        const sw_broker_ban_t *g = sw_broker_bans_find(again, id, NOW);
        CHECK(g && g->until_unix_s == NOW + 200 && g->has_key && !memcmp(g->key, key, 32) &&
              g->issued_unix_ms == T + 6);
        CHECK(g && !strcmp(g->origin, "0a0b0c0d0e0f0102") && !strcmp(g->reason, "noise on every request"));
        const sw_broker_ban_t *h = sw_broker_bans_find(again, "1111222233334444", NOW);
        CHECK(h && !h->has_key && !h->origin[0] && !h->reason[0]);
        sw_broker_bans_destroy(&again);
    }
    /* read back later: the ended ban is dropped */
    again = sw_broker_bans_new(file, true, NOW + 50, "test", s_err, sizeof s_err);
    CHECK(again && sw_broker_bans_count(again) == 1);
    sw_broker_bans_destroy(&again);

    /* expiry forgets and rewrites */
    CHECK(sw_broker_bans_expire(bs, NOW + 5) == 0);
    CHECK(sw_broker_bans_expire(bs, NOW + 10) == 1);
    CHECK(sw_broker_bans_count(bs) == 1);

    /* a lift leaves a tombstone: an older ban (a broker back from an outage) cannot come back */
    sw_broker_ban_t lift = s_ban(id, 0, "");
    lift.issued_unix_ms = T + 10;
    CHECK(sw_broker_bans_apply(bs, &lift, NOW, s_err, sizeof s_err) == 1);
    CHECK(sw_broker_bans_apply(bs, &lift, NOW, s_err, sizeof s_err) == 0);
    CHECK(sw_broker_bans_find(bs, id, NOW) == NULL && sw_broker_bans_count(bs) == 1);
    CHECK(sw_broker_bans_apply(bs, &newer, NOW, s_err, sizeof s_err) == 0); /* the stale ban: ignored */
    CHECK(sw_broker_bans_find(bs, id, NOW) == NULL);
    const sw_broker_ban_t *w = sw_broker_bans_first(bs); /* synced as a lift */
    Swisd__V1__BanNotice n;
    sw_broker_ban_to_notice(w, &n);
    CHECK(w && w->lifted && n.until_unix_s == 0 && n.issued_unix_ms == T + 10);
    again = sw_broker_bans_new(file, true, NOW, "test", s_err, sizeof s_err); /* the tombstone is kept */
    CHECK(again && sw_broker_bans_count(again) == 1 && !sw_broker_bans_find(again, id, NOW));
    if (again)
        CHECK(sw_broker_bans_apply(again, &newer, NOW, s_err, sizeof s_err) == 0);
    sw_broker_bans_destroy(&again);
    sw_broker_ban_t reban = a; /* a later decision bans again */
    reban.issued_unix_ms = T + 20;
    reban.until_unix_s = NOW + 30;
    CHECK(sw_broker_bans_apply(bs, &reban, NOW, s_err, sizeof s_err) == 1);
    CHECK(sw_broker_bans_find(bs, id, NOW) != NULL);
    /* a lift of an id never held is kept too, as long as any ban of it could last */
    sw_broker_ban_t unknown = s_ban("9999888877776666", 0, "");
    unknown.issued_unix_ms = T;
    CHECK(sw_broker_bans_apply(bs, &unknown, NOW, s_err, sizeof s_err) == 1);
    sw_broker_ban_t late = s_ban("9999888877776666", NOW + 60, "");
    late.issued_unix_ms = T - 1000;
    CHECK(sw_broker_bans_apply(bs, &late, NOW, s_err, sizeof s_err) == 0);
    CHECK(sw_broker_bans_expire(bs, NOW + SW_BROKER_BANS_MAX_S - 1) == 1); /* the re-ban ended; the tombstone stays */
    CHECK(sw_broker_bans_expire(bs, NOW + SW_BROKER_BANS_MAX_S) == 1);
    CHECK(sw_broker_bans_count(bs) == 0);

    /* the bound: SW_BROKER_BANS_MAX, then refused (memory only: fast) */
    sw_broker_bans_t *mem = sw_broker_bans_new(NULL, false, NOW, "test", s_err, sizeof s_err);
    int refused = 0;
    for (int i = 0; i <= SW_BROKER_BANS_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "node-%d", i);
        sw_broker_ban_t x = s_ban(name, NOW + 10, "");
        x.issued_unix_ms = T;
        refused += sw_broker_bans_apply(mem, &x, NOW, s_err, sizeof s_err) < 0;
    }
    CHECK(refused == 1 && sw_broker_bans_count(mem) == SW_BROKER_BANS_MAX);
    sw_broker_bans_destroy(&mem);
    sw_broker_bans_destroy(&bs);
    sw_broker_bans_destroy(&bs); /* NULL is fine */
}

/* A file with `text` must be refused with `want` in the error. */
static void s_refused(const char *text, bool secure, const char *want)
{
    const char *file = s_path("hostile.txt");
    sw_test_write(file, text);
    sw_broker_bans_t *bs = sw_broker_bans_new(file, secure, NOW, "test", s_err, sizeof s_err);
    CHECK_MSG(bs == NULL && strstr(s_err, want) && strstr(s_err, file), "want '%s', got '%s'", want,
              bs ? "accepted" : s_err);
    sw_broker_bans_destroy(&bs);
}

static void test_hostile(void)
{
    s_refused("# something else\n", true, ":1: not a swisd ban-state file");
    s_refused("# swisd broker bans v1\n0123456789abcdef\n", true, ":2: expected");
    s_refused("# swisd broker bans v1\n0123456789abcdef 1900000000 1 ban - -\n", true, ":2: expected");
    s_refused("# swisd broker bans v1\n0123456789abcdef x1 1 ban - - r\n", true, ":2: the end time");
    s_refused("# swisd broker bans v1\n0123456789abcdef -5 1 ban - - r\n", true, ":2: the end time");
    s_refused("# swisd broker bans v1\n0123456789abcdef 99999999999999999999999 1 ban - - r\n", true,
              ":2: the end time");
    s_refused("# swisd broker bans v1\n0123456789abcdef 1800000100 0 ban - - r\n", true, ":2: the decision time");
    s_refused("# swisd broker bans v1\n0123456789abcdef 1800000100 1 maybe - - r\n", true, ":2: the state");
    s_refused("# swisd broker bans v1\n0123456789abcdef 1800000100 1 ban notakey - r\n", true, ":2: the key");
    s_refused("# swisd broker bans v1\nSTAGE 1800000100 1 ban - - r\n", true, ":2: the node id");
    s_refused("# swisd broker bans v1\n0123456789abcdef 1800000100 1 ban - - r\n"
              "0123456789abcdef 9800000100 2 ban - - r\n", true, ":3: the ban ends more than");
    s_refused("# swisd broker bans v1\n0123456789abcdef 1800000100 9800000000000 ban - - r\n", true,
              ":2: the decision is dated");
    s_refused("# swisd broker bans v1\n0123456789abcdef 1800000100 1 ban - - no end of line", true,
              ":2: a line longer");
    char big[2048];
    memset(big, 'a', sizeof big);
    big[sizeof big - 1] = '\0';
    char text[4096];
    snprintf(text, sizeof text, "# swisd broker bans v1\n%s\n", big);
    s_refused(text, true, ":2: a line longer");
    /* an insecure broker's free ids read back; a secure one refuses them */
    sw_test_write(s_path("free.txt"), "# swisd broker bans v1\nstage-1 1800000100 1 ban - gw-1 lied\n");
    sw_broker_bans_t *bs = sw_broker_bans_new(s_path("free.txt"), false, NOW, "test", s_err, sizeof s_err);
    CHECK_MSG(bs && sw_broker_bans_find(bs, "stage-1", NOW), "%s", bs ? "missing" : s_err);
    sw_broker_bans_destroy(&bs);
    CHECK(sw_broker_bans_new(s_path("free.txt"), true, NOW, "test", s_err, sizeof s_err) == NULL);
    /* too large, a folder, a missing file (= none yet) */
    FILE *f = fopen(s_path("huge.txt"), "w");
    fputs("# swisd broker bans v1\n", f);
    fseek(f, SW_BROKER_BANS_MAX_FILE + 1, SEEK_SET);
    fputc('\n', f);
    fclose(f);
    CHECK(sw_broker_bans_new(s_path("huge.txt"), true, NOW, "test", s_err, sizeof s_err) == NULL &&
          strstr(s_err, "at most"));
    mkdir(s_path("folder"), 0700);
    CHECK(sw_broker_bans_new(s_path("folder"), true, NOW, "test", s_err, sizeof s_err) == NULL);
    bs = sw_broker_bans_new(s_path("none/yet.txt"), true, NOW, "test", s_err, sizeof s_err);
    CHECK(bs && sw_broker_bans_count(bs) == 0);
    sw_broker_bans_destroy(&bs);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/swisd-test-broker-bans-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_check();
    test_merge_and_file();
    test_hostile();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_dir);
    return sw_test_report("broker_bans");
}
