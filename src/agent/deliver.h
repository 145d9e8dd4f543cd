/*
 * deliver — the loop that moves verdicts from the spool to the sinks.
 *
 * One round for a sink (deliver_once): claim up to `batch` due deliveries
 * (spool_next_delivery, durable before anything is sent), hand them to the
 * sink in one sink_send, then mark each: SINK_OK -> delivered; SINK_RETRY ->
 * failed-retry (backoff); SINK_MAYBE -> failed-retry flagged as redelivery;
 * SINK_PERMANENT -> failed for good.  If a mark cannot be written (disk
 * full) the sink's claimed rows are given back as redeliveries at the start
 * of its next round (spool_release_inflight), so nothing stays claimed.
 *
 * At-least-once: an item is marked delivered only after its sink said so;
 * a crash anywhere between the claim and the mark leaves the row claimed,
 * and the next spool_open turns it into a redelivery ("redelivery": true in
 * what the sinks send).
 *
 * Threads (deliver_start): one thread per sink, so a slow or unreachable
 * webhook never holds up the JSONL file.  Each thread runs rounds while
 * work is due, then sleeps on the shared condition variable until the
 * earliest next_attempt_at of its sink (a timed wait on the wall clock the
 * spool's times use), or without a timeout when nothing is pending: no
 * polling while idle.  deliver_kick() wakes every sink thread; call it after
 * spool_put_verdict.  A spool error (disk full) makes the thread wait with
 * its own backoff (1 s doubling to 60 s) before trying again.  Retry times
 * are wall-clock (they are stored in the spool across restarts): a clock
 * stepped back delays due retries by the step, a kick still wakes them.
 * Lock order: deliver.mu, then the spool's own lock (taken inside spool_*
 * calls, never while deliver.mu is held).  The spool and the sinks are
 * borrowed: they must outlive the deliver handle.
 */
#ifndef NJ_DELIVER_H
#define NJ_DELIVER_H

#include "sink.h"
#include "spool.h"

typedef struct deliver deliver;

typedef struct deliver_opts {
    size_t batch;    /* items per sink_send (default 64) */
} deliver_opts;

/* A loop over n sinks (borrowed); opts may be NULL.  NULL with *err. */
deliver *deliver_new(spool *sp, sink *const *sinks, size_t n, const deliver_opts *opts, int *err);

/* One round for sink i at time now (wall-clock ms): returns the number of
 * deliveries claimed and sent (0 when none was due), or a negative spool
 * error.  *delivered (may be NULL) gets how many the sink accepted.  Not to
 * be called for a sink whose thread is running. */
int deliver_once(deliver *d, size_t i, int64_t now, int *delivered);

/* Start one thread per sink; 0 or a negative code. */
int  deliver_start(deliver *d);
/* Wake the sink threads (new verdicts were committed). */
void deliver_kick(deliver *d);
/* Stop and join the threads (a round in progress finishes first). */
void deliver_stop(deliver *d);
/* Stop if running, then free the handle (not the spool or the sinks). */
void deliver_free(deliver *d);

#endif
