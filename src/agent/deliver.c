/*
 * deliver — implementation; the design and the threads are in deliver.h.
 */
#include "deliver.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define ERR_WAIT_MIN_MS 1000
#define ERR_WAIT_MAX_MS 60000

struct worker {
    deliver *d;
    size_t i;
    pthread_t tid;
    bool kicked;          /* under d->mu */
    bool need_release;    /* a mark failed: give claimed rows back first */
};

struct deliver {
    spool *sp;
    sink **sinks;
    size_t n;
    size_t batch;
    struct worker *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, running;
};

deliver *deliver_new(spool *sp, sink *const *sinks, size_t n, const deliver_opts *opts, int *err) {
    int rc = 0;
    deliver *d = NULL;
    if (!sp || (n && !sinks)) { rc = nj_fail(-EINVAL, "deliver_new: bad arguments"); goto err; }
    d = nj_calloc(1, sizeof *d);
    if (!d) { rc = nj_fail(-ENOMEM, "deliver: out of memory"); goto err; }
    d->sp = sp;
    d->n = n;
    d->batch = opts && opts->batch ? opts->batch : 64;
    d->sinks = nj_calloc(n ? n : 1, sizeof *d->sinks);
    d->w = nj_calloc(n ? n : 1, sizeof *d->w);
    if (!d->sinks || !d->w) { rc = nj_fail(-ENOMEM, "deliver: out of memory"); goto err; }
    for (size_t i = 0; i < n; i++) {
        d->sinks[i] = sinks[i];
        d->w[i] = (struct worker){.d = d, .i = i, .kicked = true};
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    return d;
err:
    if (err) *err = rc;
    if (d) { nj_free(d->sinks); nj_free(d->w); nj_free(d); }
    return NULL;
}

struct round { deliver *d; size_t i; int64_t now; int delivered; int mark_error; };

static int on_batch(const spool_delivery *b, size_t n, void *ud) {
    struct round *r = ud;
    deliver *d = r->d;
    sink *s = d->sinks[r->i];
    const char *name = sink_name(s);
    sink_result *res = nj_calloc(n, sizeof *res);
    if (!res) {
        /* Nothing sent: give the claim back as failed-retry. */
        for (size_t k = 0; k < n; k++)
            if (spool_mark_failed(d->sp, name, b[k].seq, r->now, SPOOL_FAIL_RETRY,
                                  "out of memory") != 0)
                r->mark_error = -ENOMEM;
        return 0;
    }
    sink_send(s, b, n, res);
    /* Backoff counts from the round's time (the caller's clock), so a
     * round run at a simulated time schedules consistently. */
    int64_t now = NJ_MAX(r->now, spool_now_ms());
    for (size_t k = 0; k < n; k++) {
        int rc;
        switch (res[k].status) {
        case SINK_OK:
            rc = spool_mark_delivered(d->sp, name, b[k].seq);
            if (rc == 0) r->delivered++;
            break;
        case SINK_RETRY:
            rc = spool_mark_failed(d->sp, name, b[k].seq, now, SPOOL_FAIL_RETRY, res[k].error);
            break;
        case SINK_MAYBE:
            rc = spool_mark_failed(d->sp, name, b[k].seq, now, SPOOL_FAIL_MAYBE, res[k].error);
            break;
        default:
            rc = spool_mark_failed(d->sp, name, b[k].seq, now, SPOOL_FAIL_PERMANENT, res[k].error);
            break;
        }
        if (rc != 0 && !r->mark_error) {
            r->mark_error = rc;
            NJ_ERR("deliver %s: cannot record the outcome of seq %lld: %s", name,
                   (long long)b[k].seq, nj_last_error());
        }
        if (res[k].status != SINK_OK)
            NJ_DEBUG("deliver %s: seq %lld attempt %d: %s", name, (long long)b[k].seq,
                     b[k].attempts, res[k].error);
    }
    nj_free(res);
    return 0;
}

int deliver_once(deliver *d, size_t i, int64_t now, int *delivered) {
    if (delivered) *delivered = 0;
    if (!d || i >= d->n) return nj_fail(-EINVAL, "deliver_once: bad arguments");
    struct worker *w = &d->w[i];
    const char *name = sink_name(d->sinks[i]);
    if (w->need_release) {
        int rc = spool_release_inflight(d->sp, name);
        if (rc < 0) return rc;
        w->need_release = false;
    }
    struct round r = {.d = d, .i = i, .now = now};
    int n = spool_next_delivery(d->sp, name, now, d->batch, on_batch, &r);
    if (r.mark_error) w->need_release = true;
    if (delivered) *delivered = r.delivered;
    return n;
}

static void abs_ms(struct timespec *ts, int64_t ms) {
    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    deliver *d = w->d;
    const char *name = sink_name(d->sinks[w->i]);
    int64_t err_wait = ERR_WAIT_MIN_MS;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        w->kicked = false; /* a kick from now on is seen after this round */
        pthread_mutex_unlock(&d->mu);
        int n = deliver_once(d, w->i, spool_now_ms(), NULL);
        int64_t wake = 0; /* 0: until kicked */
        if (n < 0) {
            NJ_WARN("deliver %s: %s; retrying in %lld ms", name, nj_last_error(), (long long)err_wait);
            wake = spool_now_ms() + err_wait;
            err_wait = NJ_MIN(err_wait * 2, ERR_WAIT_MAX_MS);
        } else {
            err_wait = ERR_WAIT_MIN_MS;
            int64_t at;
            if (n > 0) wake = -1; /* more may be due now */
            else if (spool_next_due(d->sp, name, &at) == 0) wake = at;
        }
        pthread_mutex_lock(&d->mu);
        if (wake == -1) continue;
        while (!d->stop && !w->kicked) {
            if (wake == 0) {
                pthread_cond_wait(&d->cv, &d->mu);
            } else {
                if (spool_now_ms() >= wake) break;
                struct timespec ts;
                abs_ms(&ts, wake);
                pthread_cond_timedwait(&d->cv, &d->mu, &ts);
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int deliver_start(deliver *d) {
    if (!d) return nj_fail(-EINVAL, "deliver_start: no handle");
    pthread_mutex_lock(&d->mu);
    if (d->running) { pthread_mutex_unlock(&d->mu); return nj_fail(NJ_ESTATE, "deliver: already running"); }
    d->stop = false;
    d->running = true;
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < d->n; i++) {
        int e = pthread_create(&d->w[i].tid, NULL, worker_main, &d->w[i]);
        if (e) {
            pthread_mutex_lock(&d->mu);
            d->stop = true;
            pthread_cond_broadcast(&d->cv);
            pthread_mutex_unlock(&d->mu);
            for (size_t k = 0; k < i; k++) pthread_join(d->w[k].tid, NULL);
            d->running = false;
            return nj_fail(-e, "deliver: cannot start a thread: %s", strerror(e));
        }
    }
    return 0;
}

void deliver_kick(deliver *d) {
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n; i++) d->w[i].kicked = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void deliver_stop(deliver *d) {
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    bool running = d->running;
    d->stop = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (!running) return;
    for (size_t i = 0; i < d->n; i++) pthread_join(d->w[i].tid, NULL);
    d->running = false;
}

void deliver_free(deliver *d) {
    if (!d) return;
    deliver_stop(d);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    nj_free(d->sinks);
    nj_free(d->w);
    nj_free(d);
}
