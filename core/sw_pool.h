/*  sw_pool.h: a fixed pool of worker threads for data-parallel loops.
 *
 *  The calling thread takes part as thread 0, so a pool of n threads starts
 *  n-1 workers. Workers wait on a spin-then-sleep barrier between jobs, so the
 *  per-job latency stays in the microseconds during decode.
 *
 *  Thread safety: one job at a time; sw_pool_run must be called from one
 *  thread at a time (the owner). Different pools are independent.
 */
#ifndef SW_POOL_H
#define SW_POOL_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sw_pool_t sw_pool_t;

/*  Job body: called once on every thread with ith in [0, nth). */
typedef void (sw_pool_fn)(void *arg, int ith, int nth);

/*  Creates a pool of n_threads (1..256; 1 = run inline, no workers).
 *  Returns NULL on failure. Caller destroys result. */
sw_pool_t *sw_pool_new(int n_threads);
/*  Stops and joins the workers; accepts NULL; sets *self_p = NULL. */
void sw_pool_destroy(sw_pool_t **self_p);
int sw_pool_n_threads(const sw_pool_t *self);
/*  Runs fn(arg, ith, nth) on every thread and returns when all have finished.
 *  self may be NULL: then fn(arg, 0, 1) runs inline. */
void sw_pool_run(sw_pool_t *self, sw_pool_fn *fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
