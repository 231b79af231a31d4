/*  test_volunteer_units.c: the pure parts of `swisd volunteer`: layer choice
 *  (volunteer/sw_layer_choice.h), schedule and owner's load (sw_caps.h),
 *  the token bucket of the upload cap (core/sw_rate.h), /proc/meminfo and
 *  bootstrap parsing (sw_host_probe.h, sw_bootstrap.h). Expected values are
 *  worked out by hand in the comments, not by the code under test.
 */
#include "sw_bootstrap.h"
#include "sw_caps.h"
#include "sw_host_probe.h"
#include "sw_layer_choice.h"
#include "sw_rate.h"
#include "sw_test.h"

#define MIB (1ull << 20)

static void test_layer_choice(void)
{
    const uint64_t ten[10] = {MIB, MIB, MIB, MIB, MIB, MIB, MIB, MIB, MIB, MIB};
    sw_layer_pick_t p;
    /* the test swarm of tests/test_volunteer.py: 5 layers, hosts 0-1 and 4: the gap is 2-3 exactly,
       though all 5 fit */
    sw_layer_host_t h1[] = {{0, 2, 0.f}, {4, 5, 0.f}};
    CHECK(sw_layer_choose(5, ten, h1, 2, 100 * MIB, &p) == 0);
    CHECK(p.begin == 2 && p.end == 4 && p.uncovered == 2);
    /* the gap cut to what fits: 2.5 MiB holds two of 2-3... one layer of a 1-layer cap */
    CHECK(sw_layer_choose(5, ten, h1, 2, MIB + MIB / 2, &p) == 0);
    CHECK(p.begin == 2 && p.end == 3 && p.uncovered == 1);
    /* the longest gap first: 10 layers, hosts 0-1, 3-5, 9: gaps 2 (1 layer) and 6-8 (3): 6-8 */
    sw_layer_host_t h2[] = {{0, 2, 0}, {3, 6, 0}, {9, 10, 0}};
    CHECK(sw_layer_choose(10, ten, h2, 3, 100 * MIB, &p) == 0);
    CHECK(p.begin == 6 && p.end == 9 && p.uncovered == 3);
    /* equal gaps: the first (1 and 3, each one layer) */
    sw_layer_host_t h3[] = {{0, 1, 0}, {2, 3, 0}, {4, 10, 0}};
    CHECK(sw_layer_choose(10, ten, h3, 3, 100 * MIB, &p) == 0);
    CHECK(p.begin == 1 && p.end == 2);
    /* nobody at all: the whole model when it fits, else the start */
    CHECK(sw_layer_choose(10, ten, NULL, 0, 100 * MIB, &p) == 0);
    CHECK(p.begin == 0 && p.end == 10 && p.uncovered == 10);
    CHECK(sw_layer_choose(10, ten, NULL, 0, 4 * MIB, &p) == 0);
    CHECK(p.begin == 0 && p.end == 4);
    /* full coverage, 3 layers fit: spare capacity per layer (1 - busy per host): idle hosts 0-9 and 0-4:
       layers 0-4 have 2, 5-9 have 1: the window of 3 with the least starts at 5 */
    sw_layer_host_t h4[] = {{0, 10, 0.f}, {0, 5, 0.f}};
    CHECK(sw_layer_choose(10, ten, h4, 2, 3 * MIB, &p) == 0);
    CHECK(p.begin == 5 && p.end == 8 && p.uncovered == 0);
    /* one host each, 0-4 busy 0.9 (spare 0.1), 5-9 busy 0.1 (spare 0.9): the busy half, from 0 */
    sw_layer_host_t h4b[] = {{0, 5, 0.9f}, {5, 10, 0.1f}};
    CHECK(sw_layer_choose(10, ten, h4b, 2, 3 * MIB, &p) == 0);
    CHECK(p.begin == 0 && p.end == 3);
    /* busier on the right: 0-4 busy 0.2 (spare 0.8 each), 5-9 busy 1.0 (spare 0): windows 5-7, 6-8
       and 7-9 all have 0, the earliest wins; a straddling one (4-6: 0.8) loses */
    sw_layer_host_t h4c[] = {{0, 5, 0.2f}, {5, 10, 1.0f}};
    CHECK(sw_layer_choose(10, ten, h4c, 2, 3 * MIB, &p) == 0);
    CHECK(p.begin == 5 && p.end == 8);
    /* uneven layer sizes: layer 2 is 3 MiB; with a gap at 2-4 and 3 MiB, only layer 2 fits */
    const uint64_t uneven[5] = {MIB, MIB, 3 * MIB, MIB, MIB};
    sw_layer_host_t h5[] = {{0, 2, 0}};
    CHECK(sw_layer_choose(5, uneven, h5, 1, 3 * MIB, &p) == 0);
    CHECK(p.begin == 2 && p.end == 3);
    /* nothing fits; hostile input: ranges outside the model, NaN busy, no layers */
    CHECK(sw_layer_choose(5, uneven, h5, 1, MIB / 2, &p) == -1);
    sw_layer_host_t h6[] = {{-5, 3, NAN}, {3, 1000, 0.5f}};  /* spare: layers 0-2 1 (NaN as idle), 3-4 0.5 */
    CHECK(sw_layer_choose(5, ten, h6, 2, 2 * MIB, &p) == 0);
    CHECK(p.uncovered == 0 && p.begin == 3 && p.end == 5);
    CHECK(sw_layer_choose(0, ten, NULL, 0, MIB, &p) == -1);
    CHECK(sw_layer_choose(SW_LAYER_CHOICE_MAX_LAYERS + 1, ten, NULL, 0, MIB, &p) == -1);
}

static void test_schedule(void)
{
    sw_schedule_t s;
    char err[128];
    CHECK(sw_schedule_parse("22:00-07:00", &s, err, sizeof err) == 0);
    CHECK(!s.always && s.start_min == 22 * 60 && s.end_min == 7 * 60);
    CHECK(sw_schedule_contains(&s, 22 * 60));           /* start inclusive */
    CHECK(sw_schedule_contains(&s, 23 * 60 + 59));
    CHECK(sw_schedule_contains(&s, 0));                  /* past midnight */
    CHECK(sw_schedule_contains(&s, 6 * 60 + 59));
    CHECK(!sw_schedule_contains(&s, 7 * 60));            /* end exclusive */
    CHECK(!sw_schedule_contains(&s, 12 * 60));
    CHECK(!sw_schedule_contains(&s, 21 * 60 + 59));
    CHECK(sw_schedule_wait_min(&s, 12 * 60) == 10 * 60); /* noon: 10 h to wait */
    CHECK(sw_schedule_wait_min(&s, 23 * 60) == 0);
    CHECK(sw_schedule_parse("09:30-17:00", &s, err, sizeof err) == 0);
    CHECK(sw_schedule_contains(&s, 9 * 60 + 30) && !sw_schedule_contains(&s, 9 * 60 + 29));
    CHECK(!sw_schedule_contains(&s, 17 * 60) && !sw_schedule_contains(&s, 2 * 60));
    CHECK(sw_schedule_wait_min(&s, 18 * 60) == 15 * 60 + 30); /* 18:00 -> 09:30 next day */
    CHECK(sw_schedule_parse("00:00-24:00", &s, err, sizeof err) == 0 && s.always);
    CHECK(sw_schedule_parse(NULL, &s, err, sizeof err) == 0 && s.always && sw_schedule_contains(&s, 123));
    const char *bad[] = {"22-07", "22:00-7:00", "25:00-07:00", "22:60-07:00", "24:00-07:00", "22:00_07:00",
                         "22:00-07:00x", "aa:bb-cc:dd", "-1:00-07:00", ""};
    for (size_t i = 0; i + 1 < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(sw_schedule_parse(bad[i], &s, err, sizeof err) == -1, "'%s' accepted", bad[i]);
}

static void test_owner_load(void)
{
    /* 100 ticks/s; 2 s apart: the machine used 600 ticks (3 cores), we used 200 (1 core): 2 cores others */
    sw_cpu_snapshot_t a = {.machine_busy = 1000, .ours = 100, .at_ns = 1000000000ull};
    sw_cpu_snapshot_t b = {.machine_busy = 1600, .ours = 300, .at_ns = 3000000000ull};
    CHECK_NEAR(sw_owner_load_between(&a, &b, 100), 2.0, 1e-9);
    /* our counter ran ahead (a vanished child's ticks): never negative */
    b.ours = 2000;
    CHECK_NEAR(sw_owner_load_between(&a, &b, 100), 0.0, 1e-9);
    CHECK(sw_owner_load_between(&b, &a, 100) < 0); /* not after */
    sw_cpu_snapshot_t real;
    CHECK(sw_cpu_snapshot(NULL, 0, &real) == 0 && real.machine_busy >= real.ours);
}

static void test_rate(void)
{
    sw_rate_t r;
    /* 100 kbit/s = 12500 B/s; burst 1/8 s = 1562.5 B */
    sw_rate_init(&r, 100, 0);
    CHECK(sw_rate_enabled(&r));
    CHECK_NEAR(r.rate_Bps, 12500.0, 1e-9);
    CHECK(sw_rate_wait_ns(&r, 0) == 0);
    sw_rate_spend(&r, 14062, 0);                      /* 1562.5 - 14062 = -12499.5: ~1 s of debt */
    CHECK_NEAR((double) sw_rate_wait_ns(&r, 0), 0.99996e9, 1e3);
    CHECK_NEAR((double) sw_rate_wait_ns(&r, 500000000ull), 0.49996e9, 1e3); /* half paid at 0.5 s */
    CHECK(sw_rate_wait_ns(&r, 1000000000ull) == 0);
    /* a long pause refills only up to the burst */
    CHECK(sw_rate_wait_ns(&r, 100000000000ull) == 0);
    CHECK_NEAR(r.tokens, 1562.5, 1e-6);
    /* simulated sender of 500-byte messages sending whenever allowed for 20 s: 12500 B/s + burst + one message */
    sw_rate_init(&r, 100, 0);
    uint64_t t = 0, sent = 0;
    while (t < 20000000000ull) {
        uint64_t w = sw_rate_wait_ns(&r, t);
        if (w) {
            t += w;
            continue;
        }
        sw_rate_spend(&r, 500, t);
        sent += 500;
    }
    CHECK_MSG(sent <= 12500ull * 20 + 1563 + 500 && sent >= 12500ull * 20 - 500, "sent %llu", (unsigned long long) sent);
    sw_rate_init(&r, 0, 0); /* no cap */
    sw_rate_spend(&r, 1u << 30, 0);
    CHECK(!sw_rate_enabled(&r) && sw_rate_wait_ns(&r, 0) == 0);
}

static void test_meminfo(void)
{
    uint64_t av = 0, tot = 0;
    CHECK(sw_host_parse_meminfo("MemTotal:        8000000 kB\nMemFree:  10 kB\nMemAvailable:    4000000 kB\n", &av,
                                &tot) == 0);
    CHECK(av == 4000000ull * 1024 && tot == 8000000ull * 1024);
    CHECK(sw_host_parse_meminfo("MemTotal: 1 kB\n", &av, &tot) == -1);              /* a 3.13 kernel */
    CHECK(sw_host_parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n", &av, &tot) == -1);
    CHECK(sw_host_parse_meminfo("MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n", &av, &tot) == -1);
    sw_host_t h;
    char err[128];
    CHECK(sw_host_probe("/nonexistent/deeper/still", 0, &h, err, sizeof err) == 0);
    CHECK(h.cores >= 1 && h.mem_available > 0 && h.mem_total >= h.mem_available && h.disk_free > 0);
}

static void test_bootstrap(void)
{
    char err[256];
    const char *ok = "{\"brokers\": [{\"endpoint\": \"tcp://127.0.0.1:5555\", \"region\": \"eu\"},"
                     " {\"endpoint\": \"tcp://10.0.0.1:1\"}],"
                     " \"models\": [{\"id\": \"stories260K\", \"manifest\": \"https://x/m.json\", \"signer\": \"ab\"}],"
                     " \"later\": 1}";
    sw_bootstrap_t *b = sw_bootstrap_parse("t", ok, strlen(ok), err, sizeof err);
    CHECK_MSG(b != NULL, "%s", err);
    if (b) {
        CHECK(sw_bootstrap_n_brokers(b) == 2 && sw_bootstrap_n_models(b) == 1);
        CHECK(!strcmp(sw_bootstrap_broker(b, 0)->region, "eu") && !sw_bootstrap_broker(b, 1)->region[0]);
        CHECK(!strcmp(sw_bootstrap_model(b, 0)->id, "stories260K") && sw_bootstrap_broker(b, 2) == NULL);
        sw_bootstrap_destroy(&b);
        CHECK(b == NULL);
    }
    const char *bad[] = {
        "[]", "{}", "{\"brokers\": []}", "{\"brokers\": [1]}", "{\"brokers\": [{}]}",
        "{\"brokers\": [{\"endpoint\": 5}]}", "{\"brokers\": [{\"endpoint\": \"not an endpoint\"}]}",
        "{\"brokers\": [{\"endpoint\": \"tcp://127.0.0.1:1\"}], \"models\": {}}",
        "{\"brokers\": [{\"endpoint\": \"tcp://127.0.0.1:1\"}], \"models\": [{\"manifest\": \"x\"}]}",
        "{\"brokers\": [{\"endpoint\": \"tcp://127.0.0.1:1\", \"region\": \"0123456789012345678901234567890123\"}]}",
        "{\"brokers\": [{\"endpoint\": \"tcp://127.0.0.1:1\"}], \"brokers\": []}", "{\"brokers\": [",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sw_bootstrap_t *x = sw_bootstrap_parse("t", bad[i], strlen(bad[i]), err, sizeof err);
        CHECK_MSG(x == NULL, "accepted %s", bad[i]);
        sw_bootstrap_destroy(&x);
    }
    /* more than 32 brokers */
    char big[8192] = "{\"brokers\": [";
    for (int i = 0; i < 33; i++)
        strcat(big, i ? ", {\"endpoint\": \"tcp://127.0.0.1:1\"}" : "{\"endpoint\": \"tcp://127.0.0.1:1\"}");
    strcat(big, "]}");
    sw_bootstrap_t *x = sw_bootstrap_parse("t", big, strlen(big), err, sizeof err);
    CHECK(x == NULL);
    CHECK(sw_bootstrap_load("/nonexistent/bootstrap.json", 1, err, sizeof err) == NULL);
    /* the daemons' line format (packaging/etc/bootstrap.txt) */
    const char *lines = "# brokers\n\n  tcp://127.0.0.1:5555 \r\n# tcp://10.0.0.9:1\ntcp://10.0.0.1:1\n";
    x = sw_bootstrap_parse("t", lines, strlen(lines), err, sizeof err);
    CHECK_MSG(x != NULL, "%s", err);
    if (x) {
        CHECK(sw_bootstrap_n_brokers(x) == 2 && sw_bootstrap_n_models(x) == 0);
        CHECK(!strcmp(sw_bootstrap_broker(x, 0)->endpoint, "tcp://127.0.0.1:5555") &&
              !strcmp(sw_bootstrap_broker(x, 1)->endpoint, "tcp://10.0.0.1:1"));
        sw_bootstrap_destroy(&x);
    }
    const char *bad_lines[] = {"# only a comment\n", "tcp://127.0.0.1:1\nnot an endpoint\n", "\n\n"};
    for (size_t i = 0; i < sizeof bad_lines / sizeof bad_lines[0]; i++) {
        x = sw_bootstrap_parse("t", bad_lines[i], strlen(bad_lines[i]), err, sizeof err);
        CHECK_MSG(x == NULL, "accepted %s", bad_lines[i]);
        sw_bootstrap_destroy(&x);
    }
}

int main(void)
{
    test_layer_choice();
    test_schedule();
    test_owner_load();
    test_rate();
    test_meminfo();
    test_bootstrap();
    return sw_test_report("volunteer_units");
}
