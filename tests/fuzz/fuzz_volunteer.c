/*  fuzz_volunteer.c: fuzz target for what `swisd volunteer` reads from
 *  outside: the bootstrap list (a file or URL body: volunteer/sw_bootstrap),
 *  /proc/meminfo text (sw_host_probe), a --schedule value (sw_caps) and the
 *  directory's host ranges as given to the layer choice (sw_layer_choice).
 *
 *  Input layout: byte 0 selects the decoder (mod 4: 0 bootstrap, 1 meminfo,
 *  2 schedule, 3 layer choice); the rest is its input. For the layer choice:
 *  byte 1 = n_layer - 1 (1..256), bytes 2..3 the memory cap in KiB (little
 *  endian), then 9-byte hosts (begin i32 LE, end i32 LE, busy byte / 255).
 *  Each layer weighs 1 KiB plus its index. The target traps when a result
 *  breaks its documented bounds: an accepted bootstrap with 0 or more than 32
 *  brokers or a string not terminated in its field; a schedule with minutes
 *  outside 0..1440; a pick outside [0, n_layer), empty, or over the cap.
 *  Plain driver: fuzz_main.c over tests/fuzz/volunteer_seeds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_bootstrap.h"
#include "sw_caps.h"
#include "sw_host_probe.h"
#include "sw_layer_choice.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_bootstrap(const uint8_t *p, size_t n)
{
    char err[256];
    sw_bootstrap_t *b = sw_bootstrap_parse("fuzz", (const char *) p, n, err, sizeof err);
    if (!b)
        return;
    const size_t nb = sw_bootstrap_n_brokers(b);
    if (nb < 1 || nb > SW_BOOTSTRAP_MAX_BROKERS || sw_bootstrap_n_models(b) > SW_BOOTSTRAP_MAX_MODELS)
        __builtin_trap();
    for (size_t i = 0; i < nb; i++) {
        const sw_bootstrap_broker_t *x = sw_bootstrap_broker(b, i);
        if (!memchr(x->endpoint, 0, sizeof x->endpoint) || !memchr(x->region, 0, sizeof x->region))
            __builtin_trap();
    }
    for (size_t i = 0; i < sw_bootstrap_n_models(b); i++) {
        const sw_bootstrap_model_t *m = sw_bootstrap_model(b, i);
        if (!memchr(m->id, 0, sizeof m->id) || !memchr(m->manifest, 0, sizeof m->manifest) ||
            !memchr(m->signer, 0, sizeof m->signer))
            __builtin_trap();
    }
    sw_bootstrap_destroy(&b);
}

static void s_meminfo(const uint8_t *p, size_t n)
{
    char *text = malloc(n + 1);
    if (!text)
        return;
    memcpy(text, p, n);
    text[n] = 0;
    uint64_t av, tot;
    sw_host_parse_meminfo(text, &av, &tot);
    free(text);
}

static void s_schedule(const uint8_t *p, size_t n)
{
    char text[64];
    if (n >= sizeof text)
        n = sizeof text - 1;
    memcpy(text, p, n);
    text[n] = 0;
    sw_schedule_t s;
    char err[128];
    if (sw_schedule_parse(text, &s, err, sizeof err) != 0)
        return;
    if (s.start_min < 0 || s.start_min > 1439 || s.end_min < 0 || s.end_min > 1440)
        __builtin_trap();
    for (int m = -1440; m < 2 * 1440; m += 7) {
        sw_schedule_contains(&s, m);
        const int w = sw_schedule_wait_min(&s, m);
        if (w < 0 || w >= 1440)
            __builtin_trap();
    }
}

static void s_layers(const uint8_t *p, size_t n)
{
    if (n < 3)
        return;
    const int32_t n_layer = (int32_t) p[0] + 1;
    const uint64_t cap = ((uint64_t) p[1] | (uint64_t) p[2] << 8) << 10;
    uint64_t bytes[256];
    for (int32_t l = 0; l < n_layer; l++)
        bytes[l] = 1024 + (uint64_t) l;
    size_t n_hosts = (n - 3) / 9;
    sw_layer_host_t *hosts = calloc(n_hosts + 1, sizeof *hosts);
    if (!hosts)
        return;
    for (size_t i = 0; i < n_hosts; i++) {
        const uint8_t *h = p + 3 + 9 * i;
        uint32_t a, b;
        memcpy(&a, h, 4);
        memcpy(&b, h + 4, 4);
        hosts[i] = (sw_layer_host_t){.begin = (int32_t) a, .end = (int32_t) b, .busy = (float) h[8] / 255.f};
    }
    sw_layer_pick_t pick;
    if (sw_layer_choose(n_layer, bytes, hosts, n_hosts, cap, &pick) == 0) {
        uint64_t used = 0;
        if (pick.begin < 0 || pick.end > n_layer || pick.begin >= pick.end || pick.uncovered > pick.end - pick.begin)
            __builtin_trap();
        for (int32_t l = pick.begin; l < pick.end; l++)
            used += bytes[l];
        if (used > cap)
            __builtin_trap();
    }
    free(hosts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 0: s_bootstrap(data + 1, size - 1); break;
    case 1: s_meminfo(data + 1, size - 1); break;
    case 2: s_schedule(data + 1, size - 1); break;
    default: s_layers(data + 1, size - 1); break;
    }
    return 0;
}
