/*
 * servewatch — the agent inside `nightjar serve`: the service follows the
 * event sources of its configuration (`watch`, `sink`, `spool_path`) with
 * the same loop as `nightjar watch` (watch.h), so one process both serves
 * the API and watches the machine, with one model in memory.
 *
 * Design.  One thread runs watch_run.  Its judge function does not touch
 * the model: it hands each batch of events to the worker as a task
 * (priority low, so interactive requests go first), waits for it, and
 * returns the verdicts; the analyst runs on the engine thread like
 * /v1/analyze's tasks.  The worker failing a task (the model cannot be
 * loaded, the queue is full, shutdown) makes the judge "unavailable", so
 * watch keeps the events in the spool and retries after a backoff.
 *
 * Stopping.  servewatch_stop sets the loop's stop flag and writes to a pipe
 * the loop waits on (besides the watched files), then joins the thread: a
 * batch being judged is finished first.  Call it before the worker is
 * closed.
 *
 * Ownership and threads.  A servewatch owns its thread, pipe and copies of
 * the lists; the worker and the analyst are borrowed and must outlive it.
 */
#ifndef NJ_SERVEWATCH_H
#define NJ_SERVEWATCH_H

#include "analyst.h"
#include "worker.h"

typedef struct servewatch servewatch;

typedef struct servewatch_opts {
    const char *sources;     /* "KIND:PATH;KIND:PATH" (blanks around items ignored) */
    const char *sinks;       /* sink specs separated by ';', or NULL */
    const char *spool_path;  /* NULL: <cache dir>/spool.db */
    nj_worker  *worker;
    analyst    *analyst;
} servewatch_opts;

/* Checks the lists (each source KIND:PATH of a known kind, each sink spec
 * valid) and starts the thread.  NULL with *err and nj_last_error(). */
servewatch *servewatch_start(const servewatch_opts *o, int *err);
/* Stops and joins the thread, frees everything.  NULL is fine. */
void        servewatch_stop(servewatch *w);

#endif
