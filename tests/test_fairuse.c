/*  test_fairuse.c: the per-address fair-use table (gateway/sw_fairuse).
 *
 *  - Two addresses that shared a bucket under the old table (djb2 of the
 *    address text mod 256 slots, overwritten on collision) each keep their
 *    own budget.
 *  - Refill, wait times, overdraft, the cap on generations in progress.
 *  - Bounded table: a full table refuses new addresses rather than drop a
 *    bucket that is still in use, and takes them once some bucket has
 *    refilled to fresh.
 *  - Random event orders against a reference written here (a plain array of
 *    every address ever seen, never evicted): every answer must equal the
 *    reference's, except FULL, which is allowed only while at least
 *    `capacity` addresses are in use in the reference.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sw_fairuse.h"
#include "sw_test.h"

static sw_fairuse_addr_t s_v4(const char *text)
{
    sw_fairuse_addr_t a = {.len = 4};
    inet_pton(AF_INET, text, a.bytes);
    return a;
}

/* The hash of the table this class replaced: djb2 of the text, 256 slots. */
static unsigned s_old_slot(const char *ip)
{
    unsigned hash = 5381;
    for (const char *p = ip; *p; p++)
        hash = hash * 33 + (unsigned char) *p;
    return hash % 256;
}

static void s_collision_pair(void)
{
    /* found by trying 127.0.0.x against 127.0.0.5 (the same slot, 138) */
    const char *a_ip = "127.0.0.5", *b_ip = "127.0.0.113";
    CHECK(s_old_slot(a_ip) == s_old_slot(b_ip));
    sw_fairuse_config_t cfg = {.capacity = 256, .n_meters = 1, .meters = {{.rate = 1, .burst = 2}}, .seed = 7};
    char err[128];
    sw_fairuse_t *f = sw_fairuse_new(&cfg, err, sizeof err);
    CHECK(f);
    const sw_fairuse_addr_t a = s_v4(a_ip), b = s_v4(b_ip);
    const double one = 1;
    int ok_a = 0, ok_b = 0;
    for (int i = 0; i < 50; i++) { /* alternating, all at t = 10: each gets its burst of 2, no more */
        ok_a += sw_fairuse_take(f, &a, &one, &one, 0, 10, NULL) == SW_FAIRUSE_OK;
        ok_b += sw_fairuse_take(f, &b, &one, &one, 0, 10, NULL) == SW_FAIRUSE_OK;
    }
    CHECK_MSG(ok_a == 2 && ok_b == 2, "a got %d, b got %d of 50", ok_a, ok_b);
    CHECK(sw_fairuse_size(f) == 2);
    sw_fairuse_destroy(&f);
    CHECK(f == NULL);
    sw_fairuse_destroy(&f); /* accepts NULL */
}

static void s_buckets(void)
{
    /* meter 0: requests, 2/s, burst 4; meter 1: generated tokens, 10/s, burst 100 */
    sw_fairuse_config_t cfg = {.capacity = 16, .n_meters = 2, .meters = {{2, 4}, {10, 100}}, .seed = 1};
    char err[128];
    sw_fairuse_t *f = sw_fairuse_new(&cfg, err, sizeof err);
    const sw_fairuse_addr_t a = s_v4("10.1.2.3");
    const double req_need[2] = {1, 0}, req_cost[2] = {1, 0}, gen_need[2] = {1, 1};
    double wait = -1;
    for (int i = 0; i < 4; i++)
        CHECK(sw_fairuse_take(f, &a, req_need, req_cost, 0, 0, &wait) == SW_FAIRUSE_OK && wait == 0);
    CHECK(sw_fairuse_take(f, &a, req_need, req_cost, 0, 0, &wait) == SW_FAIRUSE_WAIT);
    CHECK_NEAR(wait, 0.5, 1e-9); /* (1 - 0) / 2 */
    CHECK(sw_fairuse_take(f, &a, req_need, req_cost, 0, 0.25, &wait) == SW_FAIRUSE_WAIT);
    CHECK_NEAR(wait, 0.25, 1e-9);
    CHECK(sw_fairuse_take(f, &a, req_need, req_cost, 0, 0.5, &wait) == SW_FAIRUSE_OK);
    CHECK_NEAR(sw_fairuse_level(f, &a, 0, 0.5), 0, 1e-9);
    CHECK_NEAR(sw_fairuse_level(f, &a, 0, 100), 4, 1e-9); /* capped at the burst */
    /* generations: at most 2 at once; charged after, overdrawn */
    CHECK(sw_fairuse_take(f, &a, gen_need, req_cost, 2, 10, NULL) == SW_FAIRUSE_OK);
    CHECK(sw_fairuse_take(f, &a, gen_need, req_cost, 2, 10, NULL) == SW_FAIRUSE_OK);
    CHECK(sw_fairuse_take(f, &a, gen_need, req_cost, 2, 10, NULL) == SW_FAIRUSE_BUSY);
    CHECK_NEAR(sw_fairuse_level(f, &a, 0, 10), 2, 1e-9); /* BUSY took nothing */
    sw_fairuse_end(f, &a, 1, 150, 10);
    sw_fairuse_end(f, &a, 1, 50, 10);
    sw_fairuse_end(f, &a, 1, 50, 10); /* no generation left: ignored */
    CHECK_NEAR(sw_fairuse_level(f, &a, 1, 10), -100, 1e-9);
    CHECK(sw_fairuse_take(f, &a, gen_need, req_cost, 2, 10, &wait) == SW_FAIRUSE_WAIT);
    CHECK_NEAR(wait, 10.1, 1e-9); /* (1 - (-100)) / 10 */
    CHECK(sw_fairuse_take(f, &a, gen_need, req_cost, 2, 20.1, &wait) == SW_FAIRUSE_OK);
    /* IPv6 and IPv4 with equal leading bytes are different addresses */
    sw_fairuse_addr_t v6 = {.len = 16};
    memcpy(v6.bytes, a.bytes, 4);
    CHECK_NEAR(sw_fairuse_level(f, &v6, 0, 20.1), 4, 1e-9);
    /* a clock going backwards refills nothing */
    const double lvl = sw_fairuse_level(f, &a, 0, 20.1);
    CHECK(sw_fairuse_take(f, &a, NULL, NULL, 0, 5, NULL) == SW_FAIRUSE_OK);
    CHECK_NEAR(sw_fairuse_level(f, &a, 0, 20.1), lvl, 1e-9);
    sw_fairuse_destroy(&f);
    /* bad configurations */
    sw_fairuse_config_t bad = {.n_meters = 0};
    CHECK(sw_fairuse_new(&bad, err, sizeof err) == NULL);
    bad = (sw_fairuse_config_t){.n_meters = 1, .meters = {{0, 1}}};
    CHECK(sw_fairuse_new(&bad, err, sizeof err) == NULL);
    bad = (sw_fairuse_config_t){.n_meters = 1, .meters = {{1, 1}}, .capacity = SW_FAIRUSE_MAX_CAPACITY + 1u};
    CHECK(sw_fairuse_new(&bad, NULL, 0) == NULL);
}

static void s_bounded(void)
{
    sw_fairuse_config_t cfg = {.capacity = 4, .n_meters = 1, .meters = {{1, 2}}, .seed = 3, .sweep_every_s = 0.5};
    char err[128];
    sw_fairuse_t *f = sw_fairuse_new(&cfg, err, sizeof err);
    const double one = 1;
    sw_fairuse_addr_t a[6];
    char ip[32];
    for (int i = 0; i < 6; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%d", i + 1);
        a[i] = s_v4(ip);
    }
    for (int i = 0; i < 4; i++) /* four addresses with spent buckets fill the table */
        CHECK(sw_fairuse_take(f, &a[i], &one, &one, 0, 0, NULL) == SW_FAIRUSE_OK);
    CHECK(sw_fairuse_take(f, &a[3], &one, &one, 0, 0, NULL) == SW_FAIRUSE_OK); /* a[3] is empty now */
    CHECK(sw_fairuse_take(f, &a[4], &one, &one, 0, 0, NULL) == SW_FAIRUSE_FULL);
    CHECK(sw_fairuse_size(f) == 4);
    /* at 1.5 s a[0..2] are full again (1 + 1.5 > 2), a[3] is not (0 + 1.5) */
    CHECK(sw_fairuse_take(f, &a[4], &one, &one, 0, 1.5, NULL) == SW_FAIRUSE_OK);
    CHECK(sw_fairuse_size(f) == 2); /* a[3] and a[4] */
    CHECK(sw_fairuse_take(f, &a[3], &one, &one, 0, 1.5, NULL) == SW_FAIRUSE_OK);
    CHECK(sw_fairuse_take(f, &a[3], &one, &one, 0, 1.5, NULL) == SW_FAIRUSE_WAIT); /* kept its own state */
    /* a generation in progress pins its address even with a full bucket */
    CHECK(sw_fairuse_take(f, &a[5], NULL, NULL, 1, 2, NULL) == SW_FAIRUSE_OK);
    CHECK(sw_fairuse_take(f, &a[0], &one, &one, 0, 2, NULL) == SW_FAIRUSE_OK);
    CHECK(sw_fairuse_take(f, &a[1], &one, &one, 0, 2, NULL) == SW_FAIRUSE_FULL);
    CHECK(sw_fairuse_take(f, &a[1], &one, &one, 0, 1000, NULL) == SW_FAIRUSE_OK);  /* a[0], a[3], a[4] went */
    CHECK(sw_fairuse_take(f, &a[5], NULL, NULL, 1, 1000, NULL) == SW_FAIRUSE_BUSY); /* a[5] stayed */
    sw_fairuse_destroy(&f);
}

/* ---- random event orders against a reference ---------------------------------------- */

#define R_ADDRS 24
#define R_METERS 2

typedef struct {
    double level[R_METERS], last;
    int active;
    bool seen;
} s_ref_t;

static const sw_fairuse_meter_t s_rm[R_METERS] = {{3, 5}, {20, 60}};

static void s_ref_refill(s_ref_t *r, double now)
{
    for (int m = 0; m < R_METERS; m++) {
        double l = r->level[m] + (now - r->last) * s_rm[m].rate;
        r->level[m] = l < s_rm[m].burst ? l : s_rm[m].burst;
    }
    r->last = now;
}

static bool s_ref_in_use(s_ref_t *r, double now)
{
    if (!r->seen)
        return false;
    s_ref_refill(r, now);
    return r->active > 0 || r->level[0] < s_rm[0].burst || r->level[1] < s_rm[1].burst;
}

static void s_random(int capacity, uint64_t seed)
{
    sw_fairuse_config_t cfg = {.capacity = (size_t) capacity, .n_meters = R_METERS, .meters = {s_rm[0], s_rm[1]},
                               .seed = seed, .sweep_every_s = 1e-9};
    char err[128];
    sw_fairuse_t *f = sw_fairuse_new(&cfg, err, sizeof err);
    s_ref_t ref[R_ADDRS] = {0};
    sw_fairuse_addr_t addr[R_ADDRS];
    for (int i = 0; i < R_ADDRS; i++) {
        memset(&addr[i], 0, sizeof addr[i]);
        addr[i].len = i % 3 ? 4 : 16;
        addr[i].bytes[0] = (uint8_t) (i * 37);
        addr[i].bytes[addr[i].len - 1] = (uint8_t) i;
    }
    uint64_t rng = seed * 2654435761u + 1;
#define RND(n) ((int) (((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (uint64_t) (n)))
    double now = 0;
    int mismatches = 0, fulls = 0, bad_fulls = 0;
    for (int step = 0; step < 20000; step++) {
        now += RND(100) / 256.0; /* dyadic steps: every level stays exact */
        const int i = RND(R_ADDRS);
        s_ref_t *r = &ref[i];
        if (RND(4) == 0 && r->seen && r->active > 0) { /* end a generation */
            const double cost = RND(80);
            sw_fairuse_end(f, &addr[i], 1, cost, now);
            s_ref_refill(r, now);
            r->active--;
            r->level[1] -= cost;
            continue;
        }
        const bool gen = RND(2);
        const double need[R_METERS] = {1, gen ? 1 : 0}, cost[R_METERS] = {1, 0};
        double wait = 0;
        const sw_fairuse_result_t got = sw_fairuse_take(f, &addr[i], need, cost, gen ? 2 : 0, now, &wait);
        if (got == SW_FAIRUSE_FULL) { /* allowed only when `capacity` others are in use */
            int in_use = 0;
            for (int k = 0; k < R_ADDRS; k++)
                in_use += k != i && s_ref_in_use(&ref[k], now);
            fulls++;
            bad_fulls += in_use < capacity || s_ref_in_use(r, now);
            continue;
        }
        if (!r->seen) {
            *r = (s_ref_t){.level = {s_rm[0].burst, s_rm[1].burst}, .last = now, .seen = true};
        }
        s_ref_refill(r, now);
        sw_fairuse_result_t want = SW_FAIRUSE_OK;
        double want_wait = 0;
        for (int m = 0; m < R_METERS; m++)
            if (r->level[m] < need[m]) {
                double w = (need[m] - r->level[m]) / s_rm[m].rate;
                want_wait = w > want_wait ? w : want_wait;
                want = SW_FAIRUSE_WAIT;
            }
        if (want == SW_FAIRUSE_OK && gen && r->active >= 2)
            want = SW_FAIRUSE_BUSY;
        if (want == SW_FAIRUSE_OK) {
            r->level[0] -= 1;
            r->active += gen;
        }
        if (got != want || fabs(wait - want_wait) > 1e-6) {
            if (mismatches++ < 5)
                fprintf(stderr, "step %d addr %d: got %d wait %g, want %d wait %g\n", step, i, got, wait, want,
                        want_wait);
        }
    }
    CHECK_MSG(mismatches == 0, "capacity %d: %d answers differ from the reference", capacity, mismatches);
    CHECK_MSG(bad_fulls == 0, "capacity %d: %d of %d FULL answers while there was room", capacity, bad_fulls,
              fulls);
    CHECK(sw_fairuse_size(f) <= (size_t) capacity);
    if (capacity < R_ADDRS)
        CHECK_MSG(fulls > 0, "capacity %d: the table never filled; the test does not test eviction", capacity);
    sw_fairuse_destroy(&f);
}

/* sw_fairuse_set_meter: a new rate and burst apply at once; a full bucket is cut to the new burst. */
static void s_set_meter(void)
{
    sw_fairuse_config_t cfg = {.capacity = 16, .n_meters = 1, .meters = {{.rate = 100, .burst = 200}}, .seed = 3};
    char err[128];
    sw_fairuse_t *f = sw_fairuse_new(&cfg, err, sizeof err);
    CHECK(f);
    if (!f)
        return;
    const sw_fairuse_addr_t a = s_v4("10.0.0.1");
    const double one = 1;
    CHECK(sw_fairuse_take(f, &a, &one, &one, 0, 0, NULL) == SW_FAIRUSE_OK); /* level 199 */
    CHECK(sw_fairuse_set_meter(f, 0, (sw_fairuse_meter_t){1, 2}, err, sizeof err) == 0);
    CHECK(sw_fairuse_meter(f, 0).rate == 1 && sw_fairuse_meter(f, 0).burst == 2);
    int ok = 0;
    for (int i = 0; i < 10; i++) /* at the same time: the old level, cut to the new burst of 2 */
        ok += sw_fairuse_take(f, &a, &one, &one, 0, 0.5, NULL) == SW_FAIRUSE_OK;
    CHECK_MSG(ok == 2, "%d takes after lowering the burst to 2", ok);
    double wait = 0;
    CHECK(sw_fairuse_take(f, &a, &one, &one, 0, 0.5, &wait) == SW_FAIRUSE_WAIT && wait > 0.9 && wait <= 1.0);
    CHECK(sw_fairuse_set_meter(f, 0, (sw_fairuse_meter_t){0, 2}, err, sizeof err) == -1);
    CHECK(sw_fairuse_set_meter(f, 1, (sw_fairuse_meter_t){1, 2}, err, sizeof err) == -1);
    CHECK(sw_fairuse_meter(f, 0).rate == 1);
    sw_fairuse_destroy(&f);
}

int main(void)
{
    s_set_meter();
    s_collision_pair();
    s_buckets();
    s_bounded();
    s_random(64, 1);  /* never full */
    s_random(8, 2);   /* often full */
    s_random(1, 3);
    return sw_test_report("fairuse");
}
