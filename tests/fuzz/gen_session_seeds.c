/*  gen_session_seeds.c: writes event sequences for fuzz_session into a
 *  folder (layout in fuzz_session.c): a plain run, one with failovers, a
 *  deadline, a speculative run with an error mid-round, a cancel during
 *  replay, overload waits, and duplicated/stale/forged replies.
 *  usage: gen_session_seeds DIR */
#include <stdint.h>
#include <stdio.h>

static int s_write(const char *dir, const char *name, const uint8_t *b, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fwrite(b, 1, n, f);
    return fclose(f);
}

/* Appends k events (op, arg). */
static size_t s_ev(uint8_t *b, size_t n, int k, uint8_t op, uint8_t arg)
{
    for (int i = 0; i < k && n + 2 <= 1024; i++) {
        b[n++] = op;
        b[n++] = arg;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_session_seeds DIR\n");
        return 1;
    }
    const char *dir = argv[1];
    uint8_t b[1024];
    size_t n;
    int rc = 0;
    /* plain, greedy, 32 tokens */
    b[0] = 31 << 3, b[1] = 0x80, n = s_ev(b, 2, 40, 0, 7);
    rc |= s_write(dir, "plain.bin", b, n);
    /* errors from hops between replies, then a hop leaves */
    b[0] = (20 << 3) | 2, b[1] = 0x81, n = s_ev(b, 2, 5, 0, 3);
    n = s_ev(b, n, 1, 4, 6); /* INTERNAL from hop 0 */
    n = s_ev(b, n, 5, 0, 9);
    n = s_ev(b, n, 1, 4, 3); /* KV_MISSING */
    n = s_ev(b, n, 3, 0, 1);
    n = s_ev(b, n, 1, 6, 2);
    n = s_ev(b, n, 20, 0, 5);
    rc |= s_write(dir, "failover.bin", b, n);
    /* a deadline passes, the late reply comes */
    b[0] = 16 << 3, b[1] = 0x82, n = s_ev(b, 2, 4, 0, 2);
    n = s_ev(b, n, 1, 5, 200);
    n = s_ev(b, n, 1, 1, 0);
    n = s_ev(b, n, 20, 0, 4);
    rc |= s_write(dir, "deadline.bin", b, n);
    /* speculative, an error mid-round, stale and duplicate replies */
    b[0] = (31 << 3) | 1, b[1] = 0x80, n = s_ev(b, 2, 4, 0, 1);
    n = s_ev(b, n, 1, 4, 5); /* INTERNAL from hop 2 -> "b": off the route */
    n = s_ev(b, n, 1, 4, 3);
    n = s_ev(b, n, 1, 3, 0);
    n = s_ev(b, n, 30, 0, 8);
    rc |= s_write(dir, "speculative.bin", b, n);
    /* cancel during a replay */
    b[0] = 31 << 3, b[1] = 0x83, n = s_ev(b, 2, 6, 0, 2);
    n = s_ev(b, n, 1, 4, 3);
    n = s_ev(b, n, 1, 7, 0);
    n = s_ev(b, n, 3, 0, 2);
    rc |= s_write(dir, "cancel.bin", b, n);
    /* overload answers and waits, a full queue, then success */
    b[0] = 8 << 3, b[1] = 0x80, n = s_ev(b, 2, 1, 4, 0);
    n = s_ev(b, n, 2, 5, 2);
    n = s_ev(b, n, 1, 8, 1);
    n = s_ev(b, n, 2, 5, 4);
    n = s_ev(b, n, 12, 0, 6);
    rc |= s_write(dir, "overload.bin", b, n);
    /* forged, wrong sizes, bad frames, NaN rows */
    b[0] = (12 << 3) | 4, b[1] = 2, n = s_ev(b, 2, 2, 0, 3);
    n = s_ev(b, n, 1, 2, 0);
    n = s_ev(b, n, 1, 11, 1);
    n = s_ev(b, n, 1, 0, 255);
    rc |= s_write(dir, "hostile.bin", b, n);
    return rc ? 1 : 0;
}
