/*  test_reputation.c: per-key reputation and credits (gateway/sw_reputation)
 *  on a real SQLite file: audit rates and trust as adaptive replication
 *  prescribes, a failure's reset, ban and claw-back, the audit window,
 *  persistence across a reopen, sharing the file with sw_bans, and bad
 *  files (a newer schema, a foreign table, a corrupt file). Expected values
 *  are worked out by hand here from the rules in sw_reputation.h. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_bans.h"
#include "sw_reputation.h"
#include "sw_test.h"

static sw_reputation_row_t s_row(sw_reputation_t *r, const char *id)
{
    sw_reputation_row_t x;
    char err[256];
    CHECK_MSG(sw_reputation_row(r, id, &x, err, sizeof err) == 1, "row %s: %s", id, err);
    return x;
}


/* ---- random event orders against a naive model ------------------------------------- */

/* One piece of work in the model: each credit_work call with its own session id. */
typedef struct {
    int key;
    double at, units;
    enum { W_PENDING, W_GRANTED, W_CLAWED } state;
} s_item_t;

static uint64_t s_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Random orders of work, ticks, verified results and failures for 3 keys,
 * checked after every event against a model that keeps every piece of work
 * and applies the rules of sw_reputation.h literally: a piece is granted
 * by the first tick at least window seconds after it; a failure claws back
 * every piece not yet granted and every granted piece done after the key's
 * last verified result. */
static void s_random_orders(const char *path, uint64_t seed)
{
    enum { N_KEYS = 3, N_EVENTS = 1500 };
    static s_item_t items[N_EVENTS];
    const char *ids[N_KEYS] = {"k0", "k1", "k2"};
    double verified_at[N_KEYS] = {0}, clawed[N_KEYS] = {0};
    uint64_t consecutive[N_KEYS] = {0}, failed[N_KEYS] = {0};
    int n = 0, bad = 0;
    const uint64_t seed0 = seed;
    char err[256], sid[32];
    sw_test_rm_db(path);
    const sw_reputation_policy_t pol = {.n_trust = 3, .rate_floor = 0.1, .ban_s = 50, .audit_window_s = 5};
    sw_reputation_t *r = sw_reputation_open(path, &pol, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (!r)
        return;
    double now = 1000;
    for (int e = 0; e < N_EVENTS && !bad; e++) {
        const uint64_t x = s_next(&seed);
        const int key = (int) (x % N_KEYS), what = (int) ((x >> 8) % 10);
        now += (double) ((x >> 16) % 3000) / 1000.0; /* 0 to 3 s later */
        if (what < 5) { /* work */
            items[n] = (s_item_t){.key = key, .at = now, .units = (double) ((x >> 32) % 1000) / 8.0};
            snprintf(sid, sizeof sid, "s%d", n);
            bad |= sw_reputation_credit_work(r, ids[key], sid, items[n].units, now, err, sizeof err) != 0;
            n++;
        } else if (what < 8) { /* a tick, at least a second after the last (it works at most once a second) */
            now += 1.0;
            bad |= sw_reputation_tick(r, now, err, sizeof err) < 0;
            for (int i = 0; i < n; i++)
                if (items[i].state == W_PENDING && items[i].at <= now - pol.audit_window_s)
                    items[i].state = W_GRANTED;
        } else if (what < 9) {
            bad |= sw_reputation_verified(r, ids[key], 1, now, err, sizeof err) != 0;
            verified_at[key] = now;
            consecutive[key]++;
        } else {
            bad |= sw_reputation_failed(r, ids[key], now, "random", err, sizeof err) != 0;
            failed[key]++;
            consecutive[key] = 0;
            for (int i = 0; i < n; i++)
                if (items[i].key == key && (items[i].state == W_PENDING ||
                                            (items[i].state == W_GRANTED && items[i].at > verified_at[key]))) {
                    clawed[key] += items[i].units;
                    items[i].state = W_CLAWED;
                }
        }
        for (int k = 0; k < N_KEYS && !bad; k++) {
            double granted = 0, pending = 0;
            for (int i = 0; i < n; i++)
                if (items[i].key == k)
                    granted += items[i].state == W_GRANTED ? items[i].units : 0,
                    pending += items[i].state == W_PENDING ? items[i].units : 0;
            sw_reputation_row_t row;
            const int rc = sw_reputation_row(r, ids[k], &row, err, sizeof err);
            const double rate = consecutive[k] < 3 ? 1.0 : fmax(0.1, 3.0 / (double) consecutive[k]);
            if (rc < 0 || (rc == 1 && (fabs(row.granted - granted) > 1e-6 || fabs(row.pending - pending) > 1e-6 ||
                                       fabs(row.clawed_back - clawed[k]) > 1e-6 || row.failed != failed[k] ||
                                       row.consecutive != consecutive[k] || fabs(row.audit_rate - rate) > 1e-12)) ||
                (rc == 0 && (granted || pending || clawed[k]))) {
                CHECK_MSG(false, "seed %llu event %d key %d: granted %g/%g pending %g/%g clawed %g/%g run %llu/%llu",
                          (unsigned long long) seed0, e, k, row.granted, granted, row.pending, pending,
                          row.clawed_back, clawed[k], (unsigned long long) row.consecutive,
                          (unsigned long long) consecutive[k]);
                bad = 1;
            }
        }
    }
    CHECK_MSG(!bad, "random orders: %s", err);
    sw_reputation_destroy(&r);
}

int main(void)
{
    char dir[] = "/tmp/swisd-rep-XXXXXX", path[256], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/state.db", dir);
    const sw_reputation_policy_t pol = {.n_trust = 4, .rate_floor = 0.25, .ban_s = 1000, .audit_window_s = 10};
    sw_reputation_t *r = sw_reputation_open(path, &pol, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (!r)
        return sw_test_report("reputation");

    /* an unknown key: audited always, not trusted, not banned */
    sw_reputation_row_t x;
    CHECK(sw_reputation_row(r, "nobody", &x, err, sizeof err) == 0 && x.audit_rate == 1.0);
    CHECK(sw_reputation_audit_rate(r, "nobody") == 1.0);
    CHECK(!sw_reputation_trusted(r, "nobody") && !sw_reputation_banned(r, "nobody", 0));

    /* adaptive replication with n_trust 4, floor 0.25: rate 1 below 4 in a row, then 4 / run down to 0.25 */
    const struct { int run; double rate; bool trusted; } steps[] = {
        {1, 1.0, false}, {3, 1.0, false}, {4, 1.0, true}, {5, 0.8, true}, {8, 0.5, true}, {16, 0.25, true},
        {40, 0.25, true}};
    int run = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        CHECK(sw_reputation_verified(r, "aaaa", (uint64_t) (steps[i].run - run), 50, err, sizeof err) == 0);
        run = steps[i].run;
        CHECK_NEAR(sw_reputation_audit_rate(r, "aaaa"), steps[i].rate, 1e-12);
        CHECK_MSG(sw_reputation_trusted(r, "aaaa") == steps[i].trusted, "run %d", run);
    }
    x = s_row(r, "aaaa");
    CHECK(x.verified == 40 && x.consecutive == 40 && x.failed == 0 && x.verified_at == 50);

    /* a failure resets the run, bans for ban_s, and trust is gone */
    CHECK(sw_reputation_failed(r, "aaaa", 60, "top-k commitment differs at layer 3", err, sizeof err) == 0);
    x = s_row(r, "aaaa");
    CHECK(x.verified == 40 && x.consecutive == 0 && x.failed == 1 && x.audit_rate == 1.0);
    CHECK(x.banned_until == 1060 && !strcmp(x.last_failure, "top-k commitment differs at layer 3"));
    CHECK(sw_reputation_banned(r, "aaaa", 1059.5) && !sw_reputation_banned(r, "aaaa", 1060.5));
    CHECK(!sw_reputation_trusted(r, "aaaa"));
    /* trust comes back only through verified results: 4 more (still banned now: not trusted until it ends) */
    CHECK(sw_reputation_verified(r, "aaaa", 4, 70, err, sizeof err) == 0);
    x = s_row(r, "aaaa");
    CHECK(x.consecutive == 4 && x.verified == 44 && x.audit_rate == 1.0);

    /* credits: pending until the window (10 s) after the work closes */
    CHECK(sw_reputation_credit_work(r, "cccc", "s1", 2.5, 100, err, sizeof err) == 0);
    CHECK(sw_reputation_credit_work(r, "cccc", "s2", 1.0, 101, err, sizeof err) == 0);
    CHECK(sw_reputation_credit_work(r, "cccc", "s2", 0.5, 101, err, sizeof err) == 0);
    x = s_row(r, "cccc"); /* not written yet: counted from memory */
    CHECK(x.pending == 4.0 && x.granted == 0);
    CHECK(sw_reputation_tick(r, 102, err, sizeof err) == 0); /* written, nothing due */
    x = s_row(r, "cccc");
    CHECK(x.pending == 4.0 && x.granted == 0);
    CHECK(sw_reputation_tick(r, 102.5, err, sizeof err) == 0); /* within a second of the last: nothing done */
    CHECK(sw_reputation_tick(r, 110.5, err, sizeof err) == 1); /* s1's window (100 + 10) closed, s2's not */
    x = s_row(r, "cccc");
    CHECK(x.pending == 1.5 && x.granted == 2.5);
    CHECK(sw_reputation_tick(r, 111.5, err, sizeof err) == 1);
    x = s_row(r, "cccc");
    CHECK(x.pending == 0 && x.granted == 4.0 && x.clawed_back == 0);

    /* claw-back: pending credit (written or not) and granted credit of work after the last verified result */
    CHECK(sw_reputation_verified(r, "bbbb", 1, 200, err, sizeof err) == 0);
    CHECK(sw_reputation_credit_work(r, "bbbb", "s3", 3.0, 195, err, sizeof err) == 0); /* before 200: final */
    CHECK(sw_reputation_credit_work(r, "bbbb", "s4", 5.0, 205, err, sizeof err) == 0); /* after: unverified */
    CHECK(sw_reputation_tick(r, 216, err, sizeof err) == 2);
    x = s_row(r, "bbbb");
    CHECK(x.granted == 8.0 && x.pending == 0);
    CHECK(sw_reputation_credit_work(r, "bbbb", "s4", 2.0, 217, err, sizeof err) == 0);
    CHECK(sw_reputation_tick(r, 218, err, sizeof err) == 0); /* written, pending */
    CHECK(sw_reputation_credit_work(r, "bbbb", "s4", 1.0, 218.5, err, sizeof err) == 0); /* in memory */
    CHECK(sw_reputation_credit_work(r, "cccc", "s5", 0.25, 218.5, err, sizeof err) == 0); /* another key's */
    x = s_row(r, "bbbb");
    CHECK(x.pending == 3.0);
    CHECK(sw_reputation_failed(r, "bbbb", 219, "noise", err, sizeof err) == 0);
    x = s_row(r, "bbbb");
    CHECK_MSG(x.granted == 3.0 && x.pending == 0 && x.clawed_back == 8.0, "granted %g pending %g clawed %g",
              x.granted, x.pending, x.clawed_back);
    CHECK(sw_reputation_tick(r, 240, err, sizeof err) == 1); /* only cccc's 0.25 is left to grant */
    x = s_row(r, "bbbb");
    CHECK(x.granted == 3.0 && x.pending == 0);
    x = s_row(r, "cccc");
    CHECK(x.granted == 4.25);
    /* a verified result makes earlier granted credit final: a later failure claws back none of it */
    CHECK(sw_reputation_verified(r, "cccc", 1, 241, err, sizeof err) == 0);
    CHECK(sw_reputation_failed(r, "cccc", 242, NULL, err, sizeof err) == 0);
    x = s_row(r, "cccc");
    CHECK(x.granted == 4.25 && x.clawed_back == 0 && x.failed == 1);

    /* display names, the leaderboard order (granted, then id) */
    CHECK(sw_reputation_seen(r, "cccc", "carol's box", 243, err, sizeof err) == 0);
    CHECK(sw_reputation_seen(r, "dddd", "", 243, err, sizeof err) == 0);
    CHECK(sw_reputation_seen(r, "cccc", NULL, 244, err, sizeof err) == 0); /* keeps the name */
    CHECK(sw_reputation_row(r, "dddd", &x, err, sizeof err) == 0);         /* held until the tick */
    CHECK(sw_reputation_tick(r, 245, err, sizeof err) == 0);
    sw_reputation_row_t list[8];
    CHECK(sw_reputation_list(r, list, 8, err, sizeof err) == 4);
    CHECK(!strcmp(list[0].id, "cccc") && !strcmp(list[1].id, "bbbb") && !strcmp(list[2].id, "aaaa") &&
          !strcmp(list[3].id, "dddd"));
    CHECK(!strcmp(list[0].display_name, "carol's box") && list[3].first_seen == 243);
    CHECK(sw_reputation_list(r, list, 1, err, sizeof err) == 4 && !strcmp(list[0].id, "cccc"));
    CHECK(sw_reputation_seen(r, "cccc", "carol renamed", 246, err, sizeof err) == 0); /* a new name: written */
    CHECK(sw_reputation_tick(r, 247, err, sizeof err) == 0);
    x = s_row(r, "cccc");
    CHECK(!strcmp(x.display_name, "carol renamed") && x.last_seen == 246 && x.first_seen < 243);
    char many[32];
    int bad_seen = 0;
    for (int i = 0; i < 5000; i++) { /* past the table's 4096 keys: it starts again, nothing fails */
        snprintf(many, sizeof many, "key-%d", i);
        bad_seen += sw_reputation_seen(r, many, "", 248, err, sizeof err) != 0;
    }
    CHECK(bad_seen == 0 && sw_reputation_tick(r, 249, err, sizeof err) == 0);
    const int n_many = sw_reputation_list(r, list, 0, err, sizeof err);
    CHECK_MSG(n_many > 4 + 5000 - 4096 && n_many <= 4 + 5000, "%d keys", n_many);

    /* outside values refused */
    char long_id[100];
    memset(long_id, 'x', sizeof long_id - 1), long_id[sizeof long_id - 1] = 0;
    CHECK(sw_reputation_verified(r, "", 1, 1, err, sizeof err) == -1);
    CHECK(sw_reputation_failed(r, long_id, 1, NULL, err, sizeof err) == -1);
    CHECK(sw_reputation_verified(r, "aaaa", 0, 1, err, sizeof err) == -1);
    CHECK(sw_reputation_credit_work(r, "aaaa", "s", -1, 1, err, sizeof err) == -1);
    CHECK(sw_reputation_credit_work(r, "aaaa", "s", NAN, 1, err, sizeof err) == -1);
    CHECK(sw_reputation_credit_work(r, "aaaa", "s", INFINITY, 1, err, sizeof err) == -1);
    CHECK(sw_reputation_seen(r, "aaaa", "a name far longer than thirty-two bytes", 1, err, sizeof err) == -1);

    /* persistence: the same records after a reopen */
    sw_reputation_row_t before[8], after[8];
    const int n_before = sw_reputation_list(r, before, 8, err, sizeof err);
    sw_reputation_destroy(&r);
    CHECK(r == NULL);
    sw_reputation_destroy(&r); /* NULL is fine */
    r = sw_reputation_open(path, &pol, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (r) {
        CHECK(sw_reputation_list(r, after, 8, err, sizeof err) == n_before && n_before == n_many);
        for (int i = 0; i < n_before && i < 8; i++)
            CHECK_MSG(!strcmp(before[i].id, after[i].id) && before[i].granted == after[i].granted &&
                      before[i].pending == after[i].pending && before[i].clawed_back == after[i].clawed_back &&
                      before[i].verified == after[i].verified && before[i].failed == after[i].failed &&
                      before[i].consecutive == after[i].consecutive &&
                      before[i].banned_until == after[i].banned_until &&
                      !strcmp(before[i].display_name, after[i].display_name), "row %d", i);
        /* work held in memory is written when the handle closes */
        CHECK(sw_reputation_credit_work(r, "eeee", "s6", 7.0, 300, err, sizeof err) == 0);
        sw_reputation_destroy(&r);
        r = sw_reputation_open(path, &pol, err, sizeof err);
        CHECK(r != NULL);
        if (r) {
            x = s_row(r, "eeee");
            CHECK(x.pending == 7.0);
        }
    }

    /* the buffer of work sums is bounded */
    if (r) {
        char sid[32];
        int refused = 0;
        for (int i = 0; i <= SW_REPUTATION_BUFFER; i++) {
            snprintf(sid, sizeof sid, "session-%d", i);
            refused += sw_reputation_credit_work(r, "ffff", sid, 1, 400, err, sizeof err) != 0;
        }
        CHECK(refused == 1);
        CHECK(sw_reputation_tick(r, 401, err, sizeof err) == 1); /* eeee's work at 300 is due, ffff's is not */
        x = s_row(r, "ffff");
        CHECK(x.pending == SW_REPUTATION_BUFFER && x.granted == 0);
        x = s_row(r, "eeee");
        CHECK(x.pending == 0 && x.granted == 7.0);
    }

    /* the same file holds sw_bans's table: both open and keep their data */
    sw_bans_t *b = sw_bans_open(path, err, sizeof err);
    CHECK_MSG(b != NULL, "%s", err);
    if (b) {
        CHECK(sw_bans_set(b, "aaaa", true, true, "operator", err, sizeof err) == 1);
        sw_bans_destroy(&b);
    }
    sw_reputation_destroy(&r);
    r = sw_reputation_open(path, &pol, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    b = sw_bans_open(path, err, sizeof err);
    CHECK(b != NULL && sw_bans_banned(b, "aaaa"));
    sw_bans_destroy(&b);
    sw_reputation_destroy(&r);

    /* a schema version from the future: a clear error */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE swisd_schema SET version = 9 WHERE component = 'reputation'", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(db);
    r = sw_reputation_open(path, &pol, err, sizeof err);
    CHECK(r == NULL);
    CHECK_MSG(strstr(err, "schema version 9") != NULL, "%s", err);

    /* a foreign database with a table of the same name */
    sw_test_rm_db(path);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "CREATE TABLE reputation (who TEXT, score INTEGER)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    r = sw_reputation_open(path, &pol, err, sizeof err);
    CHECK(r == NULL);
    CHECK_MSG(strstr(err, "reputation") != NULL && strstr(err, path) != NULL, "%s", err);

    /* a corrupt file: a clear error, no crash */
    CHECK(sw_test_corrupt_db(path));
    r = sw_reputation_open(path, &pol, err, sizeof err);
    CHECK(r == NULL);
    CHECK_MSG(strstr(err, "corrupt") != NULL, "%s", err);
    r = sw_reputation_open("/nonexistent-swisd/state.db", &pol, err, sizeof err);
    CHECK(r == NULL && strstr(err, "cannot open") != NULL);
    const sw_reputation_policy_t bad = {.rate_floor = 2};
    CHECK(sw_reputation_open(path, &bad, err, sizeof err) == NULL);

    /* random orders of events against the naive model, a few seeds */
    for (uint64_t seed = 1; seed <= 4; seed++)
        s_random_orders(path, seed);

    /* the per-model factor: parameters of one block in billions */
    CHECK_NEAR(sw_reputation_model_factor(4096, 11008, 32, 32), 0.20238336, 1e-12); /* llama 7B */
    CHECK_NEAR(sw_reputation_model_factor(64, 172, 8, 4), 45440e-9, 1e-15);          /* stories260K */
    CHECK(sw_reputation_model_factor(64, 172, 0, 4) == -1 && sw_reputation_model_factor(64, 172, 7, 7) == -1 &&
          sw_reputation_model_factor(64, 172, 8, 3) == -1 && sw_reputation_model_factor(0, 172, 8, 4) == -1);

    sw_test_rm_db(path);
    rmdir(dir);
    return sw_test_report("reputation");
}
