/*
 * worker — the engine thread of `nightjar serve`: a request queue, one thread
 * that runs requests through the model one at a time, and the model's life
 * cycle (memory-budget check, load, idle unload, transparent reload).
 *
 * Threads and ownership.
 *   - HTTP threads create a worker_req (owning its parsed oai_request),
 *     submit it, then wait on the request's own mutex/condvar for output.
 *   - The engine thread pops the highest-priority request (FIFO within a
 *     priority), evaluates it and appends the released text to the request
 *     under the request's mutex, signalling its condvar per token.
 *   - The model, session, sampler and KV-prefix record belong to the engine
 *     thread alone (after worker_new returns).  Nothing else touches them.
 *   - worker.mu protects the queue, the status snapshot read by /health and
 *     the live settings.  The engine thread never holds it while evaluating,
 *     so /health never waits for inference.
 *   Lock order: worker.mu before worker_req.mu (the engine takes them one at
 *   a time; only worker_abort nests them in that order).
 *   - worker_req is reference counted (submitter + engine); the last unref
 *     frees it.
 *
 * Idle.  With an empty queue the engine thread sleeps on the queue condvar.
 * When a model is loaded and idle_unload > 0 the sleep is a timed wait until
 * last_activity + idle_unload: one wakeup per idle period, then (if still
 * idle) the session and model are freed and the thread sleeps untimed.  No
 * periodic timers anywhere.  The next request loads the model again.
 */
#ifndef NJ_WORKER_H
#define NJ_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "oai.h"

typedef struct nj_worker nj_worker;

/* QUEUED covers waiting, (re)loading the model and validating the prompt;
 * RUNNING starts once the request is known to fit (its answer will be 200). */
enum { WREQ_QUEUED = 0, WREQ_RUNNING, WREQ_DONE };

typedef struct worker_req {
    /* set before submit, read-only afterwards */
    oai_request in;
    double      t_submit;

    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int         state;             /* WREQ_* */
    char       *text;              /* generated text, `released` bytes final */
    size_t      len, cap, released;
    const char *finish;            /* "stop" / "length" once done */
    int         status;            /* HTTP status when done: 200 or an error */
    const char *err_type;          /* OpenAI error type when status != 200 */
    char        err_msg[512];
    /* numbers for a context error: n_prompt, max_tokens, n_ctx (-1: unset) */
    long long   ctx_numbers[3];
    int         n_prompt, n_gen, n_cached;

    atomic_bool cancel;            /* client gone or shutdown: stop early */
    atomic_int  refs;
    struct worker_req *next;       /* queue link, under worker.mu */
} worker_req;

typedef struct worker_params {
    const char *model_path;
    int         threads;
    int         ctx_size;
    int         kv_type;
    uint64_t    mem_budget;
    const char *chat_template;     /* NULL: the model's */
    int         idle_unload;       /* seconds, 0 = never */
    int         max_queue;
    int         default_max_tokens;
    int         qos;               /* NJ_QOS_* or -1 */
    nj_metrics *metrics;           /* borrowed, outlives the worker */
} worker_params;

/* Status snapshot for /health. */
typedef struct worker_status {
    bool     loaded;
    bool     busy;
    int      queued[OAI_NPRIO];
    int      n_ctx;                /* context of the loaded session (or last) */
    int      ctx_requested;
    bool     ctx_shrunk;           /* the memory budget made the context smaller */
    uint64_t mem_estimate;         /* bytes, for the chosen context */
    uint64_t mem_budget;
    double   last_load_seconds;
    double   idle_seconds;         /* since the last request finished */
    int      idle_unload;
    char     note[256];            /* e.g. why the context was shrunk */
    char     model_name[128];
} worker_status;

/* Load the model (checking the memory budget) and start the engine thread.
 * NULL with *err and nj_last_error() on failure (e.g. NJ_ETOOBIG with the
 * numbers when the model cannot fit the budget). */
nj_worker *worker_new(const worker_params *p, int *err);
/* Stop the thread (queued requests are failed with 503) and free all. */
void       worker_free(nj_worker *w);

/* A request ready to submit: takes ownership of *in (zeroed afterwards).
 * One reference, held by the caller. */
worker_req *worker_req_new(oai_request *in, int *err);
void        worker_req_unref(worker_req *r);

/* Queue a request (the worker takes its own reference).  -EAGAIN when the
 * queue is full, NJ_ESTATE when shutting down. */
int  worker_submit(nj_worker *w, worker_req *r);

/* Block until the request was validated against the model (tokenized, fits
 * the context) and started (RUNNING), or finished (DONE, maybe an error). */
int  worker_req_wait_started(worker_req *r);
/* Block until the request is done. */
void worker_req_wait_done(worker_req *r);

/* Live settings. */
void worker_set_idle_unload(nj_worker *w, int seconds);
void worker_set_limits(nj_worker *w, int max_queue, int default_max_tokens);

void worker_get_status(nj_worker *w, worker_status *out);
/* Model id for /v1/models (file name of the model), static for the worker's life. */
const char *worker_model_id(const nj_worker *w);

/* Shutdown helpers: wait until the queue is empty and the engine idle, up to
 * timeout seconds (0 or -ETIMEDOUT); stop accepting new submissions; cancel
 * everything queued or running. */
void worker_close(nj_worker *w);
int  worker_drain(nj_worker *w, double timeout);
void worker_abort(nj_worker *w);

#endif
