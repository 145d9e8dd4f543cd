/*
 * spool — the agent's durable store: events in, verdicts, deliveries out.
 *
 * Purpose.  Everything the agent promises ("an event we acknowledged is never
 * lost", "a verdict is written once and delivered at least once") rests on
 * this one SQLite file.  Sources put events (with the file offset they were
 * read up to), the analyst takes pending events and puts one verdict each,
 * the delivery loop (deliver.h) takes pending deliveries per sink and marks
 * them delivered or failed.  Events and verdicts are opaque JSON text here;
 * the spool only keeps the few columns it needs to order and index them.
 *
 * Schema (PRAGMA user_version = SPOOL_SCHEMA_VERSION; migrations in spool.c
 * run in order, each in its own transaction, on open):
 *   events     seq (AUTOINCREMENT: never reused, even after retention),
 *              source, event_id (UNIQUE per source), received_at,
 *              event_json, state pending|judged
 *   verdicts   seq (PRIMARY KEY = one verdict per event), verdict_json,
 *              judged_at
 *   deliveries (sink, seq) PRIMARY KEY, state pending|delivered|failed,
 *              attempts, next_attempt_at, last_error, delivered_at,
 *              inflight, redelivery
 *   sources    name -> dev, ino, off (where a watcher resumes)
 *   meta       persistent counters (rows dropped over the hard cap, ...)
 * Times are wall-clock milliseconds since the Unix epoch.  Deleting an
 * event cascades to its verdict and deliveries (foreign keys are on).
 *
 * Durability (WAL journal).  A transaction that acknowledges something runs
 * with synchronous=FULL, so its commit has fsync'd the WAL before the call
 * returns: spool_put_event(s) (events + source offset), spool_put_verdict
 * (verdict + its delivery rows) and the claim inside spool_next_delivery
 * (attempts+1, inflight=1).  Those survive a process kill, an OS crash and
 * power loss.  Bookkeeping after the fact (spool_mark_delivered/failed,
 * retention, the crash fix-up on open) runs with synchronous=NORMAL: WAL
 * commits are still atomic and survive a process kill (they are in the OS
 * page cache), and after power loss at worst the tail of NORMAL commits
 * since the last fsync is rolled back.  That is safe by construction: a lost
 * "delivered" mark leaves the row claimed (inflight=1, which was fsync'd),
 * so it is re-sent flagged as a redelivery; a lost "failed" mark likewise;
 * lost retention deletes are redone.  Because the WAL is one sequential
 * file, every FULL commit also makes all earlier NORMAL commits durable.
 *
 * At-least-once delivery and the redelivery flag.  spool_next_delivery
 * claims the rows it returns (attempts+1, inflight=1) and commits that
 * before the caller sends anything.  A row still inflight when the spool is
 * opened again was claimed by a process that died before marking it: it may
 * or may not have reached the sink, so it becomes pending with
 * redelivery=1.  spool_mark_failed(..., maybe_sent=true) (a timeout after
 * the request went out) sets the same flag.  A definite refusal (HTTP 503,
 * connection refused) does not: the receiver did not take the item.  Sinks
 * put "redelivery": true into what they send for flagged items, so a
 * receiver can de-duplicate.
 *
 * Retention (spool_retain).  An event is "done" when it has a verdict and
 * every delivery row of a configured sink is delivered.  Done events older
 * than max_age_ms (by judged_at) are deleted; then, while the database holds
 * more than max_bytes of used pages, the oldest done events are deleted.
 * Events that are not done are never deleted, except when the used size
 * exceeds hard_cap_bytes: then the oldest events of any state are deleted
 * until it fits, logged at error level and counted (persistently) in
 * spool_stats.dropped_undelivered.  Freed pages are returned to the file
 * system (auto_vacuum=INCREMENTAL).
 *
 * Errors.  SQLite results become negative codes with a sentence
 * (nj_last_error): SQLITE_FULL -> -ENOSPC, SQLITE_IOERR* -> -EIO (with the
 * OS errno, e.g. EFBIG under a file-size limit), SQLITE_CORRUPT/NOTADB ->
 * NJ_EFORMAT, BUSY/LOCKED -> -EBUSY, NOMEM -> -ENOMEM, a constraint ->
 * -EEXIST.  A failed write transaction is rolled back whole, so nothing
 * committed earlier is lost and the handle stays usable: when space
 * returns, the next call succeeds.
 *
 * Ownership and threads.  One process owns a spool file at a time
 * (spool_open takes an exclusive flock on PATH.lock and fails with -EBUSY
 * otherwise); that is what makes "inflight at open" mean "crashed".  The
 * handle is thread-safe: one mutex serializes every call.  Callbacks run
 * after the statement is finished and with the mutex released, so they may
 * call back into the spool; the row pointers they get are valid only for
 * the duration of the callback.  All SQL with values uses bound parameters
 * of prepared statements.
 */
#ifndef NJ_SPOOL_H
#define NJ_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_SCHEMA_VERSION 1

typedef struct spool spool;

typedef struct spool_opts {
    /* Names of the configured sinks (sink_name() of each); put_verdict
     * creates one pending delivery row per name.  Copied by spool_open. */
    const char *const *sinks;
    size_t n_sinks;
    /* Retry backoff: the delay after the n-th failed attempt is
     * d = min(backoff_cap_ms, backoff_base_ms * 2^(n-1)), then "equal
     * jitter": uniformly drawn from [d/2, d].  0 = defaults (1 s, 5 min). */
    int64_t backoff_base_ms;
    int64_t backoff_cap_ms;
    /* After this many attempts a transient failure becomes state failed
     * (0 = retry forever, the default: at-least-once). */
    int max_attempts;
    /* Retention (spool_retain); 0 = no limit of that kind.  hard_cap_bytes
     * 0 = 4 * max_bytes when max_bytes is set, else none. */
    int64_t max_age_ms;
    int64_t max_bytes;
    int64_t hard_cap_bytes;
    /* Seed for the backoff jitter (0 = from time and pid). */
    uint64_t seed;
    /* SQLite busy timeout in ms (0 = 5000). */
    int busy_timeout_ms;
} spool_opts;

/* Open (creating if needed) the spool at path.  Missing parent directories
 * are created with mode 0700, the file (and its -wal/-shm) with 0600; an
 * existing file readable by others is tightened to 0600 with a warning.
 * Runs schema migrations, turns rows left inflight by a crash into pending
 * redeliveries, and registers opts->sinks (NULL opts = defaults, no sinks).
 * NULL with *err (and nj_last_error) on failure: -EBUSY when another
 * process has it open, NJ_EUNSUPPORTED for a schema newer than this build,
 * NJ_EFORMAT for a file that is not a (sound) database. */
spool *spool_open(const char *path, const spool_opts *opts, int *err);
void   spool_close(spool *sp);

/* Wall-clock milliseconds since the epoch (the spool's time unit). */
int64_t spool_now_ms(void);

/* ---------------------------------------------------------------- events --- */

typedef struct spool_event_in {
    const char *id;      /* unique per source (EVENT.md "id"), non-empty */
    const char *source;  /* source name, e.g. "auditd:/var/log/audit/audit.log" */
    const char *json;    /* the canonical event, opaque */
} spool_event_in;

/* Where a file source has read up to: the file's identity and the byte
 * offset just past the last event committed with it. */
typedef struct spool_offset {
    const char *name;    /* source name (key) */
    uint64_t dev, ino;
    uint64_t off;
} spool_offset;

/* Store one event; returns its seq (> 0) or a negative code.  Idempotent:
 * an event whose (source, id) is already stored is not stored again and
 * its existing seq is returned, so re-reading a source after a crash does
 * not duplicate.  Durable (fsync'd) when it returns. */
int64_t spool_put_event(spool *sp, const char *id, const char *source, const char *json);

/* Store n events and, if off is not NULL, the source offset, in one
 * transaction: either all of it is committed or none.  seqs (may be NULL)
 * gets each event's seq (the existing one for duplicates).  Returns the
 * number of events newly stored (duplicates excluded) or a negative code. */
int spool_put_events(spool *sp, const spool_event_in *evs, size_t n,
                     const spool_offset *off, int64_t *seqs);

/* The stored offset of a source: 0, or -ENOENT if none.  The name pointer
 * in out is set to the argument. */
int spool_get_offset(spool *sp, const char *name, spool_offset *out);

typedef struct spool_event {
    int64_t seq;
    const char *id, *source, *json;
    int64_t received_at;
} spool_event;

/* Events without a verdict with seq > after_seq, in seq order, at most max:
 * cb(ev, ud) for each (a nonzero return stops early and is returned).
 * Returns the number of events passed to cb, or a negative code. */
int spool_next_pending(spool *sp, int64_t after_seq, size_t max,
                       int (*cb)(const spool_event *ev, void *ud), void *ud);

/* Fetch one event by seq: cb as above.  0, -ENOENT or a negative code. */
int spool_get_event(spool *sp, int64_t seq,
                    int (*cb)(const spool_event *ev, void *ud), void *ud);

/* --------------------------------------------------------------- verdicts --- */

/* Commit the verdict for event seq and one pending delivery row per
 * configured sink, in one durable transaction.  0; -ENOENT if there is no
 * such event; -EEXIST if it already has a verdict (exactly one per event). */
int spool_put_verdict(spool *sp, int64_t seq, const char *json);

/* ------------------------------------------------------------- deliveries --- */

typedef struct spool_delivery {
    int64_t seq;
    const char *sink;
    const char *event_id, *source;
    const char *verdict_json;
    int64_t judged_at;
    int attempts;        /* including this one */
    bool redelivery;     /* may have reached the sink before */
} spool_delivery;

/* Claim up to max deliveries for sink that are pending and due
 * (next_attempt_at <= now), in seq order: attempts+1 and inflight=1 are
 * committed durably, then cb(batch, n, ud) runs once with all of them (not
 * called when none are due).  Every claimed row must later be marked
 * (delivered or failed); rows left claimed by a crash come back at the next
 * open as redeliveries, and spool_release_inflight gives them back sooner.
 * Returns the number claimed, or a negative code (from the spool, or cb's
 * nonzero return). */
int spool_next_delivery(spool *sp, const char *sink, int64_t now, size_t max,
                        int (*cb)(const spool_delivery *batch, size_t n, void *ud), void *ud);

/* Give a sink's claimed rows back as pending redeliveries: for when
 * marking them failed (the disk was full, say) and they would otherwise
 * stay claimed until the next open.  Returns the number released. */
int spool_release_inflight(spool *sp, const char *sink);

/* The row was delivered.  0, -ENOENT if there is no such row. */
int spool_mark_delivered(spool *sp, const char *sink, int64_t seq);

/* Outcome of a failed attempt. */
typedef enum spool_fail {
    SPOOL_FAIL_RETRY = 0,  /* refused or not sent: retry after backoff */
    SPOOL_FAIL_MAYBE,      /* outcome unknown (e.g. timeout after sending):
                            * retry after backoff, flagged as redelivery */
    SPOOL_FAIL_PERMANENT,  /* will never succeed as is: state failed */
} spool_fail;

/* The attempt failed: state stays pending with next_attempt_at = now +
 * spool_backoff_ms(attempts), or becomes failed for PERMANENT or when
 * max_attempts is reached.  error is kept in last_error (truncated to 512
 * bytes).  0, -ENOENT, or a negative code. */
int spool_mark_failed(spool *sp, const char *sink, int64_t seq, int64_t now,
                      spool_fail how, const char *error);

/* Put a sink's failed rows back to pending, due now (after the operator
 * fixed the sink).  Returns the number of rows requeued. */
int spool_requeue_failed(spool *sp, const char *sink);

/* The backoff delay after `attempts` failed attempts (>= 1), jittered as
 * described in spool_opts.  Exposed for tests and the docs. */
int64_t spool_backoff_ms(spool *sp, int attempts);

/* Earliest next_attempt_at among a sink's pending, unclaimed rows, so the
 * delivery loop can sleep until then: 0 and *at set, or -ENOENT if none. */
int spool_next_due(spool *sp, const char *sink, int64_t *at);

/* -------------------------------------------------------------- retention --- */

/* Apply the retention limits of spool_opts at time now (see the essay).
 * Returns the number of events deleted or a negative code. */
int spool_retain(spool *sp, int64_t now);

/* ------------------------------------------------------------------ stats --- */

typedef struct spool_stats {
    int64_t events_pending, events_judged;
    int64_t deliveries_pending, deliveries_inflight;
    int64_t deliveries_delivered, deliveries_failed;
    int64_t redeliveries_pending;      /* pending rows flagged redelivery */
    int64_t dropped_undelivered;       /* persistent: deleted over hard cap */
    int64_t retained_deleted;          /* persistent: done events deleted */
    int64_t duplicates_ignored;        /* since open: idempotent re-puts */
    int64_t db_bytes;                  /* used pages * page size */
    int64_t file_bytes;                /* main file + WAL on disk */
} spool_stats;

int spool_stats_get(spool *sp, spool_stats *st);

/* Per-sink delivery counts: cb(sink, pending, delivered, failed, ud) for
 * each sink that has rows, in name order.  Unlike the other callbacks this
 * one runs under the spool's lock: it must not call into the spool. */
int spool_sink_stats(spool *sp,
                     void (*cb)(const char *sink, int64_t pending, int64_t delivered,
                                int64_t failed, void *ud),
                     void *ud);

/* PRAGMA integrity_check: 0 when "ok", NJ_EFORMAT with the first problem
 * in nj_last_error otherwise. */
int spool_check(spool *sp);

/* The path given to spool_open (owned by the spool). */
const char *spool_path(const spool *sp);

#endif
