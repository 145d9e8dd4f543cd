/*
 * fakehttp — a scripted HTTP server on 127.0.0.1 for the unit tests.
 *
 * Purpose.  Tests of code that talks HTTP (the analyst's remote backend,
 * the webhook sinks) need a peer they control: one that records what it
 * was sent, answers what the test says, refuses on demand (503 and the
 * like) and can hold an answer back.  fakehttp is that peer, once, on
 * libmicrohttpd; each test supplies only its answers.
 *
 * Design.  fakehttp_start() binds an ephemeral loopback port and runs
 * libmicrohttpd with a thread per connection.  Every complete request is
 * recorded (method, URL, Authorization, Content-Type, body, the status it
 * got), up to FAKEHTTP_MAX_REQ; later ones are answered but not kept.  A
 * request is answered, in this order, by:
 *   1. a scripted failure (fakehttp_fail_next: the next n requests get a
 *      given status and body);
 *   2. the test's answer function, called with the request.
 * Then, if the URL is the one fakehttp_stall() named, the answer is held
 * until the stall is lifted (or 10 s pass, so a test that forgets cannot
 * hang).  Answers are sent as application/json.
 *
 * Invariants.  A recorded request is complete before it is counted and is
 * never changed until fakehttp_reset() or fakehttp_stop(), so the pointer
 * fakehttp_get() returns stays valid until then.  Counting and waiting
 * (fakehttp_count, fakehttp_wait) see a request before its answer is sent.
 *
 * Ownership and memory.  The server owns its records and frees them.  It
 * allocates with plain malloc, not nj_malloc: the tests that use it count
 * nj_mem_in_use() and inject allocation failures (nj_alloc_fail_after),
 * and the fake peer's own memory must be in neither.  The answer function
 * returns a malloc'd body (or NULL for an empty one), which fakehttp frees.
 *
 * Threads.  One mutex guards the records and the script.  The answer
 * function runs on a connection thread with that mutex held, so it may
 * read the test's scripted state; a test that changes such state while a
 * request may be in flight takes the same mutex (fakehttp_lock).
 */
#ifndef NJ_FAKEHTTP_H
#define NJ_FAKEHTTP_H

#include <stdbool.h>
#include <stddef.h>

#define FAKEHTTP_MAX_REQ 64

typedef struct fakehttp_req {
    char   method[16];
    char   url[128];
    char   auth[160];    /* the Authorization header, "" if none */
    char   ctype[64];    /* the Content-Type header, "" if none */
    char  *body;         /* NUL-terminated, "" if none */
    size_t len;          /* body length in bytes */
    int    status;       /* the status it was answered with */
} fakehttp_req;

/* The test's answer to one request: set *status (preset to 200) and
 * return the body in malloc'd memory (NULL: empty).  Called with the
 * server's mutex held. */
typedef char *(*fakehttp_answer_fn)(void *ud, const fakehttp_req *req, int *status);

typedef struct fakehttp fakehttp;

/* Start a server on an ephemeral 127.0.0.1 port answering through answer
 * (with ud).  NULL on failure, *err set (-ENOMEM, NJ_ENET). */
fakehttp *fakehttp_start(fakehttp_answer_fn answer, void *ud, int *err);

/* Lift any stall, stop the server (joins its threads), free everything.
 * NULL is a no-op. */
void fakehttp_stop(fakehttp *s);

/* The port it listens on. */
int fakehttp_port(const fakehttp *s);

/* Forget every recorded request, scripted failure and stall. */
void fakehttp_reset(fakehttp *s);

/* Answer the next n requests with status and body (a JSON text, copied),
 * without calling the answer function. */
void fakehttp_fail_next(fakehttp *s, int n, int status, const char *body);

/* on: hold the answers to requests for url until called again with
 * false (at most 10 s each).  One URL at a time. */
void fakehttp_stall(fakehttp *s, const char *url, bool on);

/* How many requests were recorded (for url; NULL: all). */
int fakehttp_count(fakehttp *s, const char *url);

/* Recorded request i (0 = the first; -1 = the latest), or NULL. */
const fakehttp_req *fakehttp_get(fakehttp *s, int i);

/* Wait until at least n requests are recorded or timeout_ms pass; returns
 * how many there are. */
int fakehttp_wait(fakehttp *s, int n, int timeout_ms);

/* The server's mutex, for a test changing what its answer function reads. */
void fakehttp_lock(fakehttp *s);
void fakehttp_unlock(fakehttp *s);

#endif
