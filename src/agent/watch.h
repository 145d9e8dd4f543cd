/*
 * watch — the agent's loop: event sources in, verdicts out, nothing lost.
 *
 * Purpose.  `nightjar watch --source KIND:PATH ...` follows log files (or
 * stdin) in a source's own format, turns each line into canonical events
 * (parse.h), keeps every event in the durable spool (spool.h) before it is
 * judged, judges it through a caller's function (the analyst, with the
 * model in this process), commits the verdict, and lets the delivery
 * threads (deliver.h) send it to the sinks at least once.
 *
 * The durable order, and why nothing is lost on a crash:
 *   1. Lines are read from a file at the offset the spool stored for it
 *      (with the file's device and inode: a rotated or replaced file starts
 *      again at 0, a truncated one too).
 *   2. The events of a chunk of complete lines are committed in ONE
 *      transaction with the offset just past those lines
 *      (spool_put_events).  A crash before the commit re-reads the lines; a
 *      crash after it skips them; events are idempotent per (source, id), so
 *      a re-read never duplicates (the source names the file's device and
 *      inode too: a rotated file's line-numbered ids are new ids).  The parser is flushed at the end of
 *      every chunk, before the commit, so no line behind the committed
 *      offset is still held in a parser's memory (an auditd serial waiting
 *      for records, an sshd failure window).  The price: state does not
 *      span chunks, so an auditd serial split across two writes of the log
 *      becomes two events, and sshd failures are aggregated within a read
 *      burst, not across bursts (a chunk is everything readable at once).
 *   3. Events without a verdict are judged in spool order, a batch at a
 *      time; each verdict is committed with its delivery rows
 *      (spool_put_verdict): exactly one verdict per event, and a crash
 *      while judging judges again.  An event the judge could not judge
 *      stays pending; when the judge is unavailable (a remote backend
 *      down) the loop waits a backoff and tries again, so the only timer
 *      ever armed is this retry, and only while events wait for it.
 *   4. Sinks get every verdict at least once (deliver.h); a verdict sent
 *      again after a crash says "redelivery": true.
 *
 * Idle.  Between changes the loop sleeps in platform_watch_wait (inotify,
 * kqueue): a quiet log costs no CPU and no timer fires.  With once, the
 * loop stops at the end of every input after judging and delivering (and
 * fails, naming how many events wait, if the judge was unavailable).
 *
 * Threads.  watch_run runs on the caller's thread; the spool handle is
 * shared with the delivery threads (it is thread-safe).  The judge function
 * runs on the caller's thread only.
 */
#ifndef NJ_WATCH_H
#define NJ_WATCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Judge n canonical events, in order: out[i] is a nj_malloc'd verdict JSON
 * object (text) for events[i], or NULL when that event was not judged (it
 * stays pending).  Returns 0 when every event was judged, else the first
 * failure's code with nj_last_error(); NJ_ENET means the judge is
 * unavailable for now (a remote backend that is down): watch stops judging
 * and tries again after a backoff (1 s doubling to 60 s), the events
 * waiting in the spool meanwhile. */
typedef int (*watch_judge_fn)(void *ctx, const json_t *const *events, size_t n, char **out);

typedef struct watch_opts {
    const char         *spool_path;
    const char *const  *sources;     /* "KIND:PATH", PATH "-" = stdin */
    int                 n_sources;
    const char *const  *sinks;       /* sink specs (sink.h) */
    int                 n_sinks;
    watch_judge_fn      judge;
    void               *judge_ctx;
    int                 judge_batch; /* events per judge call (1..64); 0: 1.  Each call's
                                        verdicts are committed after it returns, so a slow
                                        local model wants 1, a remote backend a batch */
    bool                once;        /* stop at the end of the inputs */
    volatile sig_atomic_t *stop;     /* set (by a signal handler) to stop */
    bool                quiet;       /* no per-line error reports on stderr */
    int                 wake_fd;     /* > 0: also wait for this descriptor to become readable,
                                        so another thread can make the loop see *stop */
} watch_opts;

/* Runs until *stop is set (or, with once, until every input is read,
 * judged and delivered).  0, or a negative code with nj_last_error(). */
int watch_run(const watch_opts *o);

#endif
