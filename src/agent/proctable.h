/*
 * proctable — pid -> (path, cmdline, start time) for sources that name only
 * a parent pid (auditd, eslogger, osquery), so events can carry
 * parent.path and parent.cmdline.
 *
 * Design.  A fixed-capacity table (chosen at creation) with a hash index on
 * pid and a least-recently-used list: when full, the entry touched longest
 * ago is evicted, so memory is bounded by capacity * (2 * PT_STR_MAX + a few
 * dozen bytes) whatever the input.  Strings longer than PT_STR_MAX bytes are
 * cut (at a UTF-8 boundary) — parent.cmdline is context, not evidence.
 *
 * Pid reuse.  A newer exec or fork of a pid replaces its entry (the kernel
 * reused the pid or the process exec'd again).  An exit marks the entry
 * with its exit time; it still answers lookups for `grace` seconds of event
 * time (children's events often arrive after the parent's exit) and is
 * dropped afterwards.  Times are event times (seconds since the epoch), not
 * the wall clock, so behaviour is deterministic for a given input.
 *
 * Threads: none; one owner.
 */
#ifndef NJ_PROCTABLE_H
#define NJ_PROCTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PT_STR_MAX 1024

typedef struct proctable proctable;

typedef struct proc_info {
    long pid, ppid;               /* ppid -1 if unknown */
    const char *path, *cmdline;   /* borrowed, may be NULL; valid until the next call */
    int64_t start;                /* event time of the exec/fork */
} proc_info;

/* capacity >= 1 entries; grace in seconds (>= 0).  NULL + *err on failure. */
proctable *proctable_new(size_t capacity, int64_t grace, int *err);
void       proctable_free(proctable *t);

/* Records that pid now runs path/cmdline (either may be NULL) from time t.
 * Replaces any entry of pid.  0 or -ENOMEM (table unchanged). */
int  proctable_exec(proctable *t, long pid, long ppid, const char *path, const char *cmdline, int64_t t_sec);
/* pid was forked from ppid at t: it inherits the parent's image if known. */
int  proctable_fork(proctable *t, long pid, long ppid, int64_t t_sec);
/* pid exited at t (kept for `grace` seconds). */
void proctable_exit(proctable *t, long pid, int64_t t_sec);
/* Entry of pid as of time t (exited more than grace ago: absent).  Fills
 * *out and returns true, or false. */
bool proctable_get(proctable *t, long pid, int64_t t_sec, proc_info *out);
size_t proctable_size(const proctable *t);

/* For a canonical event: fills parent.pid/path/cmdline from the table when
 * process.ppid is known and the event lacks them, then applies the event to
 * the table (exec: record; fork: inherit; exit: mark).  0 or -ENOMEM. */
int  proctable_apply(proctable *t, json_t *ev);

#endif
