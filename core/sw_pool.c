/*  sw_pool.c: fixed worker pool with a spin-then-sleep start/finish barrier.
 *
 *  Protocol. The owner publishes (fn, arg), then bumps `gen`. Workers spin on
 *  `gen` for a short while and then sleep on it (futex on Linux, a condition
 *  variable elsewhere). Each worker runs fn and increments `n_done`; the owner
 *  runs fn as thread 0 and then waits (spin, then sleep) for n_done == n - 1.
 *
 *  Sleep/wake races are closed Dekker-style with sequentially consistent
 *  atomics: a sleeper first announces itself (sleepers++ / owner_sleeping = 1)
 *  and then sleeps only if the watched word still has the old value; a waker
 *  first changes the word and then checks the announcement.
 */
#include "sw_pool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "sw_common.h"
#include "sw_kernels_impl.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define SW_POOL_FUTEX 1
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define s_cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define s_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define s_cpu_relax() ((void) 0)
#endif

/*  How long a waiting thread spins before it sleeps. Decode runs a job every
 *  few tens of microseconds, so the workers should still be spinning when the
 *  next one arrives; idle pools fall asleep quickly. */
#define SW_POOL_SPIN_NS 200000ull

typedef struct {
    sw_pool_t *pool;
    int ith;
} s_worker_arg_t;

struct sw_pool_t {
    int n_threads;                  /* including the owner (thread 0) */
    pthread_t *threads;             /* n_threads - 1 workers */
    s_worker_arg_t *args;           /* one per worker */

    /* job slot, written by the owner before gen is bumped */
    sw_pool_fn *fn;
    void *job_arg;
    int stop;                       /* 1: workers exit on the next gen */

    _Alignas(64) _Atomic uint32_t gen;        /* job generation (futex word) */
    _Atomic int sleepers;                     /* workers asleep on gen */
    _Alignas(64) _Atomic uint32_t n_done;     /* workers done with this gen (futex word) */
    _Atomic int owner_sleeping;               /* owner asleep on n_done */

    void *scratch;                  /* sw__pool_scratch buffer, 64-byte aligned */
    size_t scratch_size;            /* bytes in scratch */

#if !defined(SW_POOL_FUTEX)
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

/* ------------------------------------------------------------------------ */

static void s_wait(sw_pool_t *p, _Atomic uint32_t *word, uint32_t old)
{
#if defined(SW_POOL_FUTEX)
    (void) p;
    syscall(SYS_futex, (uint32_t *) word, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
#else
    pthread_mutex_lock(&p->mu);
    while (atomic_load(word) == old)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
#endif
}

static void s_wake(sw_pool_t *p, _Atomic uint32_t *word)
{
#if defined(SW_POOL_FUTEX)
    (void) p;
    syscall(SYS_futex, (uint32_t *) word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void) word;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
#endif
}

static uint64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/*  Spins until *word != old or the spin budget runs out; returns the last
 *  value seen. */
static uint32_t s_spin(_Atomic uint32_t *word, uint32_t old)
{
    uint32_t v = atomic_load_explicit(word, memory_order_acquire);
    if (v != old)
        return v;
    uint64_t t0 = s_now();
    for (;;) {
        for (int i = 0; i < 128; i++) {
            s_cpu_relax();
            v = atomic_load_explicit(word, memory_order_acquire);
            if (v != old)
                return v;
        }
        if (s_now() - t0 > SW_POOL_SPIN_NS)
            return v;
        /* lets the thread we wait for run when cores are oversubscribed */
        sched_yield();
    }
}

static void *s_worker(void *varg)
{
    s_worker_arg_t *wa = varg;
    sw_pool_t *p = wa->pool;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = s_spin(&p->gen, seen);
        while (g == seen) {
            atomic_fetch_add(&p->sleepers, 1);
            s_wait(p, &p->gen, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            g = atomic_load(&p->gen);
        }
        seen = g;
        if (p->stop)
            break;
        p->fn(p->job_arg, wa->ith, p->n_threads);
        uint32_t done = atomic_fetch_add(&p->n_done, 1) + 1;
        if (done == (uint32_t) (p->n_threads - 1) && atomic_load(&p->owner_sleeping))
            s_wake(p, &p->n_done);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */

sw_pool_t *sw_pool_new(int n_threads)
{
    if (n_threads < 1 || n_threads > 256) {
        sw_log(SW_LOG_ERROR, "%s: n_threads %d not in 1..256", __func__, n_threads);
        return NULL;
    }
    sw_pool_t *p = sw_alloc_aligned(sizeof(*p));
    if (!p)
        return NULL;
    *p = (sw_pool_t) { .n_threads = n_threads };
    atomic_init(&p->gen, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->owner_sleeping, 0);
#if !defined(SW_POOL_FUTEX)
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
#endif
    if (n_threads == 1)
        return p;
    p->threads = calloc((size_t) n_threads - 1, sizeof(pthread_t));
    p->args = calloc((size_t) n_threads - 1, sizeof(s_worker_arg_t));
    if (!p->threads || !p->args) {
        free(p->threads);
        free(p->args);
        sw_free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        p->args[i - 1] = (s_worker_arg_t) { p, i };
        if (pthread_create(&p->threads[i - 1], NULL, s_worker, &p->args[i - 1]) != 0) {
            sw_log(SW_LOG_ERROR, "%s: pthread_create failed for worker %d", __func__, i);
            p->n_threads = i; /* workers 1..i-1 exist */
            sw_pool_destroy(&p);
            return NULL;
        }
    }
    return p;
}

void sw_pool_destroy(sw_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_pool_t *p = *self_p;
    if (p->n_threads > 1) {
        p->stop = 1;
        atomic_fetch_add(&p->gen, 1);
        s_wake(p, &p->gen);
        for (int i = 1; i < p->n_threads; i++)
            pthread_join(p->threads[i - 1], NULL);
    }
#if !defined(SW_POOL_FUTEX)
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
#endif
    free(p->threads);
    free(p->args);
    sw_free(p->scratch);
    sw_free(p);
    *self_p = NULL;
}

int sw_pool_n_threads(const sw_pool_t *self)
{
    return self ? self->n_threads : 1;
}

void sw_pool_run(sw_pool_t *self, sw_pool_fn *fn, void *arg)
{
    if (!self || self->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    sw_pool_t *p = self;
    const uint32_t n_workers = (uint32_t) (p->n_threads - 1);
    p->fn = fn;
    p->job_arg = arg;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    /* seq_cst: publishes the job and orders against the sleepers check */
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0)
        s_wake(p, &p->gen);

    fn(arg, 0, p->n_threads);

    uint32_t done = s_spin(&p->n_done, 0);
    while (done != n_workers) {
        done = s_spin(&p->n_done, done);
        if (done == n_workers)
            break;
        atomic_store(&p->owner_sleeping, 1);
        done = atomic_load(&p->n_done);
        if (done != n_workers)
            s_wait(p, &p->n_done, done);
        atomic_store(&p->owner_sleeping, 0);
        done = atomic_load(&p->n_done);
    }
    /* acquire: the workers' writes are visible to the caller */
    atomic_thread_fence(memory_order_acquire);
}

void *sw__pool_scratch(sw_pool_t *self, size_t size)
{
    if (!self || size == 0)
        return NULL;
    if (size > self->scratch_size) {
        size_t want = size + size / 4;
        void *mem = sw_alloc_aligned(want);
        if (!mem)
            return NULL;
        sw_free(self->scratch);
        self->scratch = mem;
        self->scratch_size = want;
    }
    return self->scratch;
}
