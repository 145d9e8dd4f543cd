/*
 * pool — the one compute thread pool.
 *
 * pool_run(p, fn, ctx) runs fn(ctx, ith, nth) for ith = 0..nth-1, one call
 * per thread, the calling thread taking ith = 0, and returns when all calls
 * have returned (a barrier).  Work is split by the callee from (ith, nth):
 * the pool imposes no chunking.  After a run, workers (and the caller,
 * waiting for them) spin for at most 100 us for the next one, then sleep on
 * a condition variable: an idle pool uses no CPU (no timers, no spinning
 * beyond that bound after the last run of a burst).
 *
 * Threads: pool_run must be called from one thread at a time (the engine's
 * compute thread); fn must not call pool_run.  The pool owns its workers;
 * pool_free joins them.
 */
#ifndef NJ_POOL_H
#define NJ_POOL_H

typedef struct nj_pool nj_pool;
typedef void (*nj_pool_fn)(void *ctx, int ith, int nth);

nj_pool *pool_new(int n_threads, int *err);   /* n_threads >= 1 */
void     pool_free(nj_pool *p);
int      pool_size(const nj_pool *p);
void     pool_run(nj_pool *p, nj_pool_fn fn, void *ctx);

#endif
