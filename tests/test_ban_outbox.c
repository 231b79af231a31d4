/*  test_ban_outbox.c: the gateway's outbox of ban notices
 *  (gateway/sw_ban_outbox.h) with a real sw_bans database: a ban sets the
 *  local flag and queues a notice ending duration_s from now, an unban
 *  clears it and queues a lift (until 0), notices leave in order and only
 *  when popped, a long reason is cut, bad ids and durations are refused with nothing
 *  queued or changed, the bound holds, and four threads queueing at once
 *  lose nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_ban_outbox.h"
#include "sw_bans.h"
#include "sw_test.h"

static char s_err[512];

/* Seconds of CLOCK_REALTIME, the clock sw_ban_outbox reads: time() may read
 * a coarser clock a tick behind it, so at a second's boundary a bound taken
 * with time() after the call can be a second before the call's own reading. */
static uint64_t s_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec;
}

static void test_order_and_flags(sw_bans_t *bans)
{
    sw_ban_outbox_t *o = sw_ban_outbox_new();
    CHECK(o && sw_ban_outbox_size(o) == 0);
    sw_ban_notice_t n;
    CHECK(!sw_ban_outbox_front(o, &n));
    const uint64_t t0 = s_now_s();
    CHECK(sw_ban_outbox_ban(o, bans, "1a42edfd0ecc38e6", true, 3600, "noise", s_err, sizeof s_err) == 1);
    CHECK(sw_bans_banned(bans, "1a42edfd0ecc38e6"));
    CHECK(sw_ban_outbox_ban(o, bans, "1a42edfd0ecc38e6", true, 3600, "noise", s_err, sizeof s_err) == 0);
    CHECK(sw_ban_outbox_size(o) == 2); /* queued again: brokers drop what they hold */
    CHECK(sw_ban_outbox_ban(o, bans, "1a42edfd0ecc38e6", false, 0, NULL, s_err, sizeof s_err) == 1);
    CHECK(!sw_bans_banned(bans, "1a42edfd0ecc38e6"));
    CHECK(sw_ban_outbox_ban(o, NULL, "free-id", true, 1, NULL, s_err, sizeof s_err) == 1); /* no local table */
    CHECK(sw_ban_outbox_size(o) == 4);
    const uint64_t t1 = s_now_s();
    CHECK(sw_ban_outbox_front(o, &n) && !strcmp(n.id, "1a42edfd0ecc38e6") && !strcmp(n.reason, "noise"));
    CHECK_MSG(n.until_unix_s >= t0 + 3600 && n.until_unix_s <= t1 + 3600, "until %llu",
              (unsigned long long) n.until_unix_s);
    CHECK(sw_ban_outbox_front(o, &n) && sw_ban_outbox_size(o) == 4); /* front does not remove */
    sw_ban_outbox_pop(o);
    sw_ban_outbox_pop(o);
    CHECK(sw_ban_outbox_front(o, &n) && n.until_unix_s == 0 && !n.reason[0]); /* the lift */
    sw_ban_outbox_pop(o);
    CHECK(sw_ban_outbox_front(o, &n) && !strcmp(n.id, "free-id") && n.until_unix_s >= t0 + 1);
    sw_ban_outbox_pop(o);
    sw_ban_outbox_pop(o); /* empty: nothing happens */
    CHECK(sw_ban_outbox_size(o) == 0 && !sw_ban_outbox_front(o, &n));

    /* refused: nothing queued, nothing changed */
    char long_id[SW_BANS_ID_MAX + 2], long_reason[SW_BANS_REASON_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1), long_id[sizeof long_id - 1] = '\0';
    memset(long_reason, 'r', sizeof long_reason - 1), long_reason[sizeof long_reason - 1] = '\0';
    CHECK(sw_ban_outbox_ban(o, bans, "", true, 60, NULL, s_err, sizeof s_err) < 0 && strstr(s_err, "node id"));
    CHECK(sw_ban_outbox_ban(o, bans, NULL, true, 60, NULL, s_err, sizeof s_err) < 0);
    CHECK(sw_ban_outbox_ban(o, bans, long_id, true, 60, NULL, s_err, sizeof s_err) < 0);
    CHECK(sw_ban_outbox_ban(o, bans, "x", true, 0, NULL, s_err, sizeof s_err) < 0);
    CHECK(sw_ban_outbox_ban(o, bans, "x", true, SW_BAN_MAX_S + 1, NULL, s_err, sizeof s_err) < 0);
    CHECK(sw_ban_outbox_ban(o, bans, "x", true, SW_BAN_MAX_S, NULL, s_err, sizeof s_err) == 1);
    CHECK(sw_ban_outbox_size(o) == 1 && sw_bans_banned(bans, "x"));
    sw_ban_outbox_pop(o);
    CHECK(sw_ban_outbox_ban(o, bans, "x", true, 60, long_reason, s_err, sizeof s_err) == 0); /* cut, not refused */
    CHECK(sw_ban_outbox_front(o, &n) && strlen(n.reason) == SW_BANS_REASON_MAX);
    sw_ban_outbox_ban(o, bans, "x", false, 0, NULL, s_err, sizeof s_err);

    /* the bound */
    sw_ban_outbox_t *full = sw_ban_outbox_new();
    int refused = 0;
    for (int i = 0; i < SW_BAN_OUTBOX_MAX + 3; i++)
        refused += sw_ban_outbox_ban(full, NULL, "y", true, 60, NULL, s_err, sizeof s_err) < 0;
    CHECK(refused == 3 && sw_ban_outbox_size(full) == SW_BAN_OUTBOX_MAX);
    CHECK(sw_ban_outbox_ban(full, bans, "z", true, 60, NULL, s_err, sizeof s_err) < 0 && !sw_bans_banned(bans, "z"));
    sw_ban_outbox_destroy(&full);
    sw_ban_outbox_destroy(&o);
    sw_ban_outbox_destroy(&o); /* NULL is fine */
    CHECK(o == NULL);
}

typedef struct {
    sw_ban_outbox_t *o;
    int who;
} s_arg_t;

static void *s_writer(void *p)
{
    s_arg_t *a = p;
    char id[32], err[128];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "t%d-%d", a->who, i);
        sw_ban_outbox_ban(a->o, NULL, id, true, 60, NULL, err, sizeof err);
    }
    return NULL;
}

static void test_threads(void)
{
    sw_ban_outbox_t *o = sw_ban_outbox_new();
    pthread_t t[4];
    s_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (s_arg_t){o, i};
        pthread_create(&t[i], NULL, s_writer, &a[i]);
    }
    int next[4] = {0}, seen = 0, out_of_order = 0;
    sw_ban_notice_t n;
    while (seen < 800) { /* read while they write: each writer's notices arrive in its order */
        if (!sw_ban_outbox_front(o, &n)) {
            usleep(100);
            continue;
        }
        int w, i;
        if (sscanf(n.id, "t%d-%d", &w, &i) == 2 && w >= 0 && w < 4) {
            out_of_order += i != next[w];
            next[w] = i + 1;
        }
        sw_ban_outbox_pop(o);
        seen++;
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(seen == 800 && out_of_order == 0 && sw_ban_outbox_size(o) == 0);
    sw_ban_outbox_destroy(&o);
}

int main(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/swisd-test-ban-outbox-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char db[300];
    snprintf(db, sizeof db, "%s/state.db", dir);
    sw_bans_t *bans = sw_bans_open(db, s_err, sizeof s_err);
    CHECK_MSG(bans != NULL, "%s", s_err);
    if (bans)
        test_order_and_flags(bans);
    sw_bans_destroy(&bans);
    test_threads();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return sw_test_report("ban_outbox");
}
