/*  test_health.c: the gateway's stage health (gateway/sw_health.h), driven
 *  with an explicit clock through the orderings the swarm produces: a new
 *  stage waits for its probe; a burst of failures from one incident counts
 *  one strike; back-off doubles per strike, is capped at 64 s and decays;
 *  a timed-out route goes on probation and leaves it when a probe, even a
 *  late one, answers; a stage claiming to be faster than measured is planned
 *  with the measured figure; probes are not re-sent before the retry time;
 *  the table stays bounded. Expected values are worked out by hand from the
 *  rules in sw_health.h. */
#include <stdio.h>
#include <string.h>

#include "sw_health.h"
#include "sw_test.h"

#define SEC 1000000000ull
#define MS 1000000ull

int main(void)
{
    sw_health_t *h = sw_health_new();
    CHECK(h != NULL);
    uint64_t t = 1000 * SEC;
    sw_health_probe_t p, p2;

    /* admission: unknown and unprobed stages are not usable */
    CHECK(!sw_health_usable(h, "A", t));
    CHECK(!strcmp(sw_health_why_not(h, "A", t), "unprobed"));
    CHECK(sw_health_probe_due(h, "A", t, 0x1234, &p));
    CHECK(!strcmp(p.probe_id, "probe-0000000000001234"));
    CHECK(!sw_health_probe_due(h, "A", t + 500 * MS, 7, &p2)); /* outstanding, younger than the retry */
    CHECK(!strcmp(sw_health_probe_stage(h, p.probe_id), "A"));
    CHECK(sw_health_probe_stage(h, "probe-ffff") == NULL && sw_health_probe_stage(h, "nope") == NULL);
    /* answered after 22 ms over 2 layers with a 2 ms link: 10 ms per layer */
    CHECK(!strcmp(sw_health_probe_answered(h, p.probe_id, 2, 2.0, t + 22 * MS), "A"));
    CHECK(sw_health_usable(h, "A", t + 22 * MS));
    CHECK_NEAR(sw_health_ms_per_layer(h, "A", 3.0f, NULL), 10.0, 1e-6);
    bool lied = false;
    CHECK_NEAR(sw_health_ms_per_layer(h, "A", 0.01f, &lied), 10.0, 1e-6); /* a liar is planned as measured */
    CHECK(lied);
    CHECK_NEAR(sw_health_ms_per_layer(h, "A", 25.0f, &lied), 25.0, 1e-6); /* slower than measured: as said */
    CHECK(!lied);
    CHECK(sw_health_probe_answered(h, p.probe_id, 2, 2.0, t + 30 * MS) == NULL); /* a duplicate answer */
    CHECK_NEAR(sw_health_ms_per_layer(h, "Z", 4.0f, NULL), 4.0, 1e-6);     /* unknown: as advertised */
    /* no new probe until the refresh period (30 s) has passed */
    CHECK(!sw_health_probe_due(h, "A", t + 10 * SEC, 9, &p2));
    CHECK(sw_health_probe_due(h, "A", t + 31 * SEC, 9, &p2));
    /* the link is subtracted, but at least a tenth of the round trip stays the stage's */
    CHECK(sw_health_probe_answered(h, p2.probe_id, 1, 100.0, t + 31 * SEC + 10 * MS));
    CHECK_NEAR(sw_health_ms_per_layer(h, "A", 0, NULL), 0.5 * 10.0 + 0.5 * 1.0, 1e-6);

    /* strikes: one per 2 s window; back-off 1, 2, 4 ... 64 s */
    t = 2000 * SEC;
    CHECK(sw_health_probe_due(h, "B", t, 0xb, &p));
    sw_health_probe_answered(h, p.probe_id, 1, 0, t + MS);
    CHECK(sw_health_strike(h, "B", t) == 1);
    for (int i = 0; i < 40; i++) /* one incident seen by 40 sessions */
        sw_health_strike(h, "B", t + (uint64_t) i * 10 * MS);
    CHECK(sw_health_strikes(h, "B") == 1);
    CHECK(!sw_health_usable(h, "B", t + 500 * MS) && !strcmp(sw_health_why_not(h, "B", t + 500 * MS), "backed off"));
    CHECK(sw_health_usable(h, "B", t + 1001 * MS));
    int expect[] = {2, 4, 8, 16, 32, 64, 64, 64};
    uint64_t when = t;
    for (int k = 0; k < 8; k++) {
        when += 3 * SEC;
        CHECK_MSG(sw_health_strike(h, "B", when) == expect[k], "strike %d: %d s", k + 2,
                  sw_health_strike(h, "B", when));
    }
    CHECK(sw_health_strikes(h, "B") == 7);
    CHECK(!sw_health_usable(h, "B", when + 63 * SEC) && sw_health_usable(h, "B", when + 65 * SEC));
    /* a quiet minute forgets a strike: 3 minutes later 7 - 3 = 4 strikes, next back-off 16 s */
    when += 3 * 60 * SEC + SEC;
    CHECK(sw_health_strike(h, "B", when) == 16 && sw_health_strikes(h, "B") == 5);

    /* probation: a timed-out route; the silent hop stays out, the honest one is back after its probe */
    t = 5000 * SEC;
    sw_health_probe_t pc, pd;
    CHECK(sw_health_probe_due(h, "C", t, 0xc, &pc) && sw_health_probe_due(h, "D", t, 0xd, &pd));
    sw_health_probe_answered(h, pc.probe_id, 1, 0, t + MS);
    sw_health_probe_answered(h, pd.probe_id, 1, 0, t + MS);
    t += SEC;
    sw_health_suspect(h, "C", t);
    sw_health_suspect(h, "D", t);
    CHECK(!sw_health_usable(h, "C", t) && !strcmp(sw_health_why_not(h, "C", t), "on probation"));
    CHECK(sw_health_probe_due(h, "C", t, 0xc1, &pc) && sw_health_probe_due(h, "D", t, 0xd1, &pd));
    sw_health_probe_answered(h, pc.probe_id, 1, 0, t + 5 * MS); /* C answers, D is frozen */
    CHECK(sw_health_usable(h, "C", t + 5 * MS) && !sw_health_usable(h, "D", t + 5 * MS));
    CHECK(!sw_health_probe_due(h, "D", t + 900 * MS, 1, &p2)); /* retry after 1 s, not before */
    CHECK(sw_health_probe_due(h, "D", t + 1000 * MS, 0xd2, &p2));
    /* D resumes (SIGCONT) and answers the older probe it had queued: that counts (untimed) */
    CHECK(!strcmp(sw_health_probe_answered(h, pd.probe_id, 1, 0, t + 10 * SEC), "D"));
    CHECK(sw_health_usable(h, "D", t + 10 * SEC));
    CHECK(sw_health_strikes(h, "D") == 0); /* probation is not a strike */
    /* a real step through a stage on probation clears it too */
    sw_health_alive(h, "C", t + 11 * SEC);
    CHECK(!sw_health_suspect(h, "C", t + 11 * SEC)); /* a first time-out since a completed step: no strike */
    sw_health_alive(h, "C", t + 11 * SEC + MS);
    CHECK(sw_health_usable(h, "C", t + 11 * SEC + MS));
    /* a stage that answers probes but swallows real steps: the second time-out is a strike */
    CHECK(sw_health_suspect(h, "C", t + 12 * SEC) == false);
    CHECK(sw_health_probe_due(h, "C", t + 12 * SEC, 0xc3, &pc));
    sw_health_probe_answered(h, pc.probe_id, 1, 0, t + 12 * SEC + MS);
    CHECK(sw_health_usable(h, "C", t + 12 * SEC + MS));
    CHECK(sw_health_suspect(h, "C", t + 15 * SEC) == true && sw_health_strikes(h, "C") == 1);
    CHECK(!strcmp(sw_health_why_not(h, "C", t + 15 * SEC), "backed off"));

    /* bounded: 3000 stages fit in a table of SW_HEALTH_MAX; the least recently seen go */
    char id[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "n%04d", i);
        sw_health_strike(h, id, t + 20 * SEC + (uint64_t) i);
    }
    CHECK(!strcmp(sw_health_why_not(h, "n2999", t + 21 * SEC), "unprobed"));
    /* the newest SW_HEALTH_MAX are found through the hash index after 2,000 reuses, the older are gone */
    int found = 0, gone = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "n%04d", i);
        if (i >= 3000 - SW_HEALTH_MAX)
            found += sw_health_strikes(h, id) == 1;
        else
            gone += sw_health_strikes(h, id) == 0;
    }
    CHECK_MSG(found == SW_HEALTH_MAX && gone == 3000 - SW_HEALTH_MAX, "found %d, gone %d", found, gone);
    /* reuse in the middle of buckets: keep the even ids fresh, let 512 new ids take the odd ones' slots */
    sw_health_t *h2 = sw_health_new();
    for (int i = 0; i < SW_HEALTH_MAX; i++) {
        snprintf(id, sizeof id, "m%04d", i);
        sw_health_strike(h2, id, t + (uint64_t) i);
    }
    for (int i = 0; i < SW_HEALTH_MAX; i += 2) {
        snprintf(id, sizeof id, "m%04d", i);
        sw_health_strike(h2, id, t + SEC + (uint64_t) i); /* seen again (within the window: no new strike) */
    }
    for (int i = 0; i < SW_HEALTH_MAX / 2; i++) {
        snprintf(id, sizeof id, "x%04d", i);
        sw_health_strike(h2, id, t + 2 * SEC + (uint64_t) i);
    }
    found = gone = 0;
    for (int i = 0; i < SW_HEALTH_MAX; i++) {
        snprintf(id, sizeof id, "m%04d", i);
        found += i % 2 == 0 && sw_health_strikes(h2, id) == 1;
        gone += i % 2 == 1 && sw_health_strikes(h2, id) == 0;
    }
    CHECK_MSG(found == SW_HEALTH_MAX / 2 && gone == SW_HEALTH_MAX / 2, "kept %d of %d, dropped %d", found,
              SW_HEALTH_MAX / 2, gone);
    sw_health_destroy(&h2);
    CHECK(sw_health_strikes(h, "B") == 0); /* forgotten (reused), not corrupted */
    /* empty ids are ignored */
    CHECK(sw_health_strike(h, "", t) == 0 && !sw_health_probe_due(h, "", t, 1, &p2));
    sw_health_destroy(&h);
    CHECK(h == NULL);
    sw_health_destroy(&h);
    return sw_test_report("health");
}
