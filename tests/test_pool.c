/*  test_pool.c: sw_pool selftest.
 *
 *  Checks that every job runs exactly once on every thread index with the
 *  right nth, that sw_pool_run returns only after all threads finished (the
 *  owner reads the workers' results right after), across the spin and the
 *  sleep paths, and that bad sizes are refused. Prints the per-job overhead.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sw_common.h"
#include "sw_pool.h"
#include "sw_test.h"

typedef struct {
    int nth_seen[256];
    int calls[256];
    _Atomic int total;
    int64_t partial[256];
    const int64_t *data;
    int64_t n;
} job_t;

static void s_job(void *arg, int ith, int nth)
{
    job_t *j = arg;
    j->calls[ith]++;
    j->nth_seen[ith] = nth;
    atomic_fetch_add(&j->total, 1);
    /* plain (non-atomic) writes that the owner must see after run returns */
    int64_t lo = j->n * ith / nth, hi = j->n * (ith + 1) / nth, s = 0;
    for (int64_t i = lo; i < hi; i++)
        s += j->data[i];
    j->partial[ith] = s;
}

static void s_noop(void *arg, int ith, int nth)
{
    (void) arg;
    (void) ith;
    (void) nth;
}

static void s_sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

static void s_check_pool(int n_threads, int iters, long gap_us)
{
    sw_pool_t *pool = sw_pool_new(n_threads);
    CHECK(pool != NULL);
    if (!pool)
        return;
    CHECK(sw_pool_n_threads(pool) == n_threads);
    const int64_t n = 10007;
    int64_t *data = malloc(sizeof(int64_t) * (size_t) n);
    int64_t want = 0;
    for (int64_t i = 0; i < n; i++) {
        data[i] = (i * 7919) % 1000 - 500;
        want += data[i];
    }
    job_t *j = calloc(1, sizeof(*j));
    j->data = data;
    j->n = n;
    int bad_sum = 0;
    for (int it = 0; it < iters; it++) {
        memset(j->partial, 0, sizeof(j->partial));
        if (gap_us)
            s_sleep_us(gap_us);
        sw_pool_run(pool, s_job, j);
        int64_t got = 0;
        for (int t = 0; t < n_threads; t++)
            got += j->partial[t];
        if (got != want)
            bad_sum++;
    }
    CHECK_MSG(bad_sum == 0, "threads=%d gap=%ld: %d of %d runs had a wrong sum", n_threads, gap_us, bad_sum, iters);
    CHECK(atomic_load(&j->total) == iters * n_threads);
    for (int t = 0; t < n_threads; t++) {
        CHECK(j->calls[t] == iters);
        CHECK(j->nth_seen[t] == n_threads);
    }
    sw_pool_destroy(&pool);
    CHECK(pool == NULL);
    free(j);
    free(data);
}

static void s_bench_overhead(int n_threads)
{
    sw_pool_t *pool = sw_pool_new(n_threads);
    if (!pool)
        return;
    const int iters = 20000;
    for (int i = 0; i < 1000; i++)
        sw_pool_run(pool, s_noop, NULL);
    uint64_t t0 = sw_now_ns();
    for (int i = 0; i < iters; i++)
        sw_pool_run(pool, s_noop, NULL);
    uint64_t t1 = sw_now_ns();
    printf("pool(%d): %.2f us per empty job (hot)\n", n_threads, (double) (t1 - t0) / iters / 1e3);
    sw_pool_destroy(&pool);
}

int main(void)
{
    CHECK(sw_pool_new(0) == NULL);
    CHECK(sw_pool_new(-3) == NULL);
    CHECK(sw_pool_new(257) == NULL);
    sw_pool_destroy(NULL);
    sw_pool_t *none = NULL;
    sw_pool_destroy(&none);
    CHECK(sw_pool_n_threads(NULL) == 1);

    /* NULL pool runs inline as thread 0 of 1 */
    job_t *j = calloc(1, sizeof(*j));
    int64_t d[3] = { 1, 2, 3 };
    j->data = d;
    j->n = 3;
    sw_pool_run(NULL, s_job, j);
    CHECK(j->calls[0] == 1 && j->nth_seen[0] == 1 && j->partial[0] == 6);
    free(j);

    s_check_pool(1, 100, 0);
    s_check_pool(2, 20000, 0);       /* hot: workers spinning */
    s_check_pool(3, 5000, 0);        /* more threads than cores */
    s_check_pool(2, 30, 1500);       /* gaps longer than the spin: futex path */
    s_check_pool(4, 30, 1500);
    s_check_pool(8, 2000, 0);

    /* creating and destroying repeatedly must not leak or hang */
    for (int i = 0; i < 50; i++) {
        sw_pool_t *p = sw_pool_new(1 + i % 4);
        CHECK(p != NULL);
        if (i % 2)
            sw_pool_run(p, s_noop, NULL);
        sw_pool_destroy(&p);
    }

    s_bench_overhead(2);
    s_bench_overhead(3);
    return sw_test_report("pool");
}
