/*
 * aggregate — turns bursts of failed authentications into one event.
 *
 * Purpose.  A password-guessing run writes hundreds of "Failed password"
 * lines; the analyst should see one event saying "37 failures from
 * 203.0.113.9 trying root, admin, oracle", and separately the success that
 * may follow ("accepted after 37 failures").
 *
 * Design.  Events pass through aggregate_push().  Failed auth events
 * (kind auth, auth.result failure) that carry auth.src_ip are held in one
 * bucket per address.  A bucket is sliding: each failure extends it, and it
 * closes when event time passes its last failure + window, when it has
 * spanned 5 windows (so a steady attack still reports), when a success
 * from the same address arrives, or at flush.  On close, a bucket with at
 * least `threshold` counted failures becomes ONE event: a copy of its first
 * failure with auth.count, auth.users (distinct, in order, at most 64) and
 * id "<first id>:agg<count>"; a smaller bucket releases its events as they
 * were.  Counted failures are those with an auth.method other than "pam"
 * (pam_unix lines and "Invalid user" lines duplicate sshd's own attempt
 * lines; they are held and absorbed but not counted).  A success from an
 * address with failures in its open (or within-window closed) bucket gets
 * auth.after_failures = N and is emitted right after the failures' event.
 * Other events pass through at once.
 *
 * Time is event time (max seen so far), never the wall clock, so the output
 * is a function of the input.  Memory: at most AGG_MAX_ADDRS buckets (the
 * oldest closes early when more are needed), each holding at most
 * threshold + AGG_EXTRA events (~ 5 KB each with their raw line): about
 * 45 MB in the pathological worst case at the default threshold 5 (1024
 * addresses each just below the threshold), typically a few KB.
 *
 * Ownership: push consumes the event; emit receives ownership as in parse.h.
 * Threads: none; one owner.
 */
#ifndef NJ_AGGREGATE_H
#define NJ_AGGREGATE_H

#include <stdint.h>

#include <jansson.h>

#define AGG_MAX_ADDRS 1024
#define AGG_EXTRA     4
#define AGG_MAX_USERS 64

typedef struct aggregate aggregate;
typedef int (*aggregate_emit_fn)(void *ctx, json_t *ev);

/* window in seconds (>= 1), threshold >= 1.  NULL + *err on failure. */
aggregate *aggregate_new(int window, int threshold, aggregate_emit_fn emit, void *ctx, int *err);
/* Consumes ev.  Returns 0, -ENOMEM, or emit's first error. */
int  aggregate_push(aggregate *a, json_t *ev);
/* Closes every bucket (in order of first failure). */
int  aggregate_flush(aggregate *a);
void aggregate_free(aggregate *a);

#endif
