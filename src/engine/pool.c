/*
 * pool — see pool.h for the contract.
 *
 * Threads and ownership.  The pool owns n-1 worker threads; the thread that
 * calls pool_run is worker 0 for the duration of the call.
 *
 * A forward pass calls pool_run a few hundred times per token (every matmul
 * and the attention), with microseconds of serial work between runs.  A
 * futex wake and a futex wait per run cost 10-40 us each way, which is a
 * large share of a small model's token time.  So both sides spin briefly
 * before they sleep:
 *
 *   caller:  fn/ctx = ...; pending = n-1; generation++ (release);
 *            if any worker is parked: lock; broadcast(go); unlock
 *            fn(ctx, 0, n)
 *            spin until pending == 0, at most SPIN_NS; then
 *            lock; caller_parked = 1; wait(done) until pending == 0; unlock
 *   worker:  spin until generation changes, at most SPIN_NS; then
 *            lock; parked++; wait(go) until generation changes or quit;
 *            parked--; unlock
 *            fn(ctx, i, n); if --pending == 0 and caller_parked: lock; signal(done)
 *
 * The spin is bounded (SPIN_NS, 100 us) and only follows a run, so it only
 * happens inside a burst of runs; between requests every worker is parked on
 * the condition variable and an idle pool uses no CPU at all (tests/test_idle
 * checks 0 ticks over 5 s).
 *
 * Memory ordering.  fn/ctx are plain fields written before the release
 * increment of `generation` and read after an acquire load that sees it.
 * The lost-wakeup cases are closed by sequentially consistent accesses:
 * the caller increments `generation` then reads `parked`; a worker
 * increments `parked` (under mu) then re-reads `generation` before waiting,
 * so either the caller sees the worker parked and broadcasts under mu, or
 * the worker sees the new generation and does not wait.  `pending` and
 * `caller_parked` pair up the same way for the done signal.
 *
 * Lock order: only `mu`.  fn runs without the lock held.
 */
#include "pool.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_NS 100000u   /* spin this long after a run before sleeping */

struct worker { nj_pool *pool; int ith; pthread_t tid; };

struct nj_pool {
    int              n;             /* total threads including the caller */
    pthread_mutex_t  mu;
    pthread_cond_t   go, done;
    _Atomic uint64_t generation;    /* bumped for each run */
    atomic_int       pending;       /* workers still running this generation */
    atomic_int       parked;        /* workers asleep on `go` */
    atomic_int       caller_parked; /* the caller sleeps on `done` */
    atomic_bool      quit;
    nj_pool_fn       fn;
    void            *ctx;
    struct worker   *workers;       /* n-1 entries */
    int              started;       /* workers successfully created */
};

/* Spin until *gen != seen or quit, for at most SPIN_NS.  True if it did. */
static bool spin_for_run(nj_pool *p, uint64_t seen) {
    uint64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen ||
            atomic_load_explicit(&p->quit, memory_order_relaxed))
            return true;
        CPU_RELAX();
        if ((i & 63) == 63) {
            uint64_t t = nj_now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return false;
        }
    }
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    nj_pool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_for_run(p, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->parked, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->go, &p->mu);
            atomic_fetch_sub(&p->parked, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        p->fn(p->ctx, w->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_parked)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

nj_pool *pool_new(int n_threads, int *err) {
    int rc = 0;
    if (n_threads < 1 || n_threads > 512) { rc = nj_fail(-EINVAL, "pool: %d threads (1..512)", n_threads); goto fail; }
    nj_pool *p = nj_calloc(1, sizeof *p);
    if (!p) { rc = -ENOMEM; goto fail; }
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->parked, 0);
    atomic_init(&p->caller_parked, 0);
    atomic_init(&p->quit, false);
    if (n_threads > 1) {
        p->workers = nj_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) { rc = -ENOMEM; goto err; }
        for (int i = 1; i < n_threads; i++) {
            struct worker *w = &p->workers[i - 1];
            w->pool = p;
            w->ith = i;
            int e = pthread_create(&w->tid, NULL, worker_main, w);
            if (e) { rc = nj_fail(-e, "pool: cannot start thread %d", i); goto err; }
            p->started++;
        }
    }
    if (err) *err = 0;
    return p;
err:
    pool_free(p);
fail:
    if (err) *err = rc;
    return NULL;
}

void pool_free(nj_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    nj_free(p->workers);
    nj_free(p);
}

int pool_size(const nj_pool *p) { return p->n; }

void pool_run(nj_pool *p, nj_pool_fn fn, void *ctx) {
    if (p->n == 1) { fn(ctx, 0, 1); return; }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->generation, 1);            /* seq_cst: publishes fn/ctx */
    if (atomic_load(&p->parked) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);

    uint64_t t0 = 0;
    for (unsigned i = 0; atomic_load(&p->pending) > 0; i++) {
        CPU_RELAX();
        if ((i & 63) == 63) {
            uint64_t t = nj_now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) break;
        }
    }
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_parked, 1);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_parked, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
