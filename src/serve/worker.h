/*
 * worker — the engine thread of `nightjar serve`: a scheduler over a few
 * sessions ("slots"), one thread that runs requests through the model, and
 * the model's life cycle (memory-budget check, load, idle unload,
 * transparent reload).
 *
 * Requests.  The queue takes jobs of its own type, worker_job: a generation
 * (chat messages or a raw prompt, with sampling settings, stop strings and
 * max_tokens) or a task (a function run on the engine thread with the loaded
 * model and a session, e.g. the analyst judging events).  Front ends
 * translate into it: the OpenAI layer (oai.c, via server.c) for
 * /v1/chat/completions and /v1/completions, the analyst's /v1/analyze for its
 * tasks.  A job's strings are borrowed from storage the job owns (`owner`,
 * released with `release` when the request is freed), so the worker knows no
 * wire format.
 *
 * Scheduling.  A request has a class (critical > high > normal > bulk) and
 * an optional deadline.  The worker holds `parallel` slots, each a session
 * with its own KV cache, sized together within the memory budget.  A
 * generation runs as steps: its prompt is evaluated in pieces of `chunk`
 * tokens (one step each; a critical request's in full forward passes, as
 * only another critical one could preempt it), then one step per generated
 * token (or per batch of tokens a grammar forces).  Between any two steps
 * the engine thread admits waiting requests into free slots and runs a
 * step of the most urgent admitted request, so a critical event waits at
 * most one step of bulk work; the paused request keeps its slot and KV
 * cache and resumes where it stopped, with the same arithmetic as an
 * uninterrupted run (session_eval_part).  A generation step carries every
 * slot that is generating: their next tokens go through one batched
 * forward pass (continuous batching, session_decode_batch), in which each
 * row's arithmetic is that of its lone step, so an output never depends on
 * what else was running.  "Most urgent" is, in order: the effective class,
 * the earlier deadline (none = last), the earlier submission.  The
 * effective class is the class minus one for every `aging` milliseconds
 * the request has waited since it last ran a step (or since it was
 * submitted), without a floor: a request of class c waits at most about
 * (c + 1) x aging for its next step, whatever arrives (bounded starvation).
 * Within one effective class prompt steps come before generation steps, so
 * a new request joins the batched decode of those already generating
 * instead of waiting for them to end.
 * Requests of class normal and bulk may not take the last free slot (with
 * more than one slot), so an urgent request always finds one unless urgent
 * work fills them all.  A task runs whole, as one step, on a free slot
 * (preferably the one its previous task used, whose KV cache still holds
 * the analyst's prompt prefix).  A full queue refuses new work (-EAGAIN;
 * worker_retry_after says when to come back); a cancelled request (client
 * gone) is dropped before the next step and its slot freed.
 *
 * Threads and ownership.
 *   - HTTP threads create a worker_req (owning its job), submit it, then
 *     wait on the request's own mutex/condvar for output.
 *   - The engine thread admits, steps and finishes requests, appending the
 *     released text to a request under the request's mutex and signalling
 *     its condvar (and its notify_fd, if set) per token.
 *   - The model, the slots (sessions, samplers, grammars, token buffers)
 *     belong to the engine thread alone (after worker_new returns); other
 *     threads see only slot->r and the status snapshot, under worker.mu.
 *   - worker.mu protects the queue, the slots' request pointers, the status
 *     snapshot read by /health and the live settings.  The engine thread
 *     never holds it while evaluating, so /health never waits for inference.
 *   Lock order: worker.mu before worker_req.mu (the engine takes them one at
 *   a time; only worker_abort nests them in that order).
 *   - worker_req is reference counted (submitter + engine); the last unref
 *     frees it.
 *
 * Prefix cache on disk.  After each request the engine thread looks at the
 * prefix the request's prompt shared with the one before it
 * (nj_session_last_reused): when it is at least WORKER_PREFIX_MIN tokens
 * and not already on disk, it is written (nj_session_save_prefix) to
 * <prefix_dir>/<model file id>-<kv type>.njkv -- for the analyst that is
 * its system prompt and rules text.  Every load (start, and reload after
 * an idle unload) reads that file back into the new session, so the
 * first request after either reuses the prefix instead of computing it.
 * A file that does not match (another model file, KV type or version,
 * truncated, corrupt) is logged, ignored, and replaced by the next write.
 * One file per model file and KV type: the total size is bounded by the
 * models served.
 *
 * Idle.  With no request queued or admitted the engine thread sleeps on the
 * queue condvar.  When a model is loaded and idle_unload > 0 the sleep is a
 * timed wait until last_activity + idle_unload: one wakeup per idle period,
 * then (if still idle) the slots and model are freed and the thread sleeps
 * untimed.  No periodic timers anywhere.  The next request loads the model
 * again.
 */
#ifndef NJ_WORKER_H
#define NJ_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "urgency.h"
#include "nightjar.h"

typedef struct nj_worker nj_worker;

/* Priority classes, most urgent first; earliest deadline first within a
 * class, then FIFO.  WPRIO_LOW is the old name of bulk. */
enum { WPRIO_CRITICAL = URG_CRITICAL, WPRIO_HIGH = URG_HIGH, WPRIO_NORMAL = URG_NORMAL,
       WPRIO_BULK = URG_BULK, WPRIO_COUNT = URG_NCLASS };
#define WPRIO_LOW WPRIO_BULK
#define WORKER_MAX_SLOTS 16
enum { WJOB_CHAT = 0, WJOB_COMPLETION = 1, WJOB_TASK = 2 };
#define WORKER_MAX_STOP 8

/* A task: runs on the engine thread with the model loaded and the session
 * free for its use (its KV content is the task's to change; the worker
 * forgets its cached prefix afterwards unless the task reports keep).
 * Writes a nj_malloc'd result into *out (the request's text) and returns 0,
 * or returns < 0 with nj_last_error() set (the request fails with 500, or
 * 400 for -EINVAL / NJ_EFORMAT). */
typedef int (*worker_task_fn)(void *arg, nj_model *m, nj_session *s, char **out, size_t *out_len);

typedef struct worker_job {
    int          kind;            /* WJOB_* */
    int          priority;        /* WPRIO_* */
    long long    deadline_ms;     /* answer wanted within this many ms of submission; <= 0: none */
    /* WJOB_CHAT: messages; WJOB_COMPLETION: raw prompt (template markers in
     * it are parsed as special tokens: the caller's own text) */
    const nj_chat_msg *msgs;
    int          n_msgs;
    const char  *prompt;
    size_t       prompt_len;
    int          max_tokens;      /* -1: the worker's default */
    /* sampling: has_* says whether the field was given */
    bool  has_temperature, has_top_p, has_top_k, has_min_p, has_repeat_penalty, has_seed;
    float temperature, top_p, min_p, repeat_penalty;
    int   top_k;
    uint64_t seed;
    const char *stop[WORKER_MAX_STOP];
    size_t      stop_len[WORKER_MAX_STOP];
    int         n_stop;
    /* output constraint: a JSON schema (text), or any JSON object */
    const char *schema;
    bool        json_object;
    /* WJOB_TASK */
    worker_task_fn task;
    void          *task_arg;
    /* storage the strings above live in; release(owner) when the request is freed */
    void  *owner;
    void (*release)(void *owner);
} worker_job;

/* QUEUED covers waiting, (re)loading the model and validating the prompt;
 * RUNNING starts once the request is known to fit (its answer will be 200). */
enum { WREQ_QUEUED = 0, WREQ_RUNNING, WREQ_DONE };

typedef struct worker_req {
    /* set before submit, read-only afterwards */
    worker_job  in;
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
    int         notify_fd;         /* -1, or a pipe the worker writes a byte to at each signal */
    long long   start_order;       /* 1, 2, ... in the order requests were admitted; 0 while queued */
    int         n_preempted;       /* times another request's step ran while this one was mid-way */

    /* scheduling (urgency.h): set by worker_submit under worker.mu; then
     * last_served is the engine's (read under worker.mu while queued) */
    urgency_key   sk;

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
    int         parallel;          /* slots (sessions); 0 = 2 */
    int         chunk;             /* prompt tokens per step below critical; 0 = 64 */
    int         aging_ms;          /* class rises one step per this wait; 0 = no aging */

    const char *prefix_dir;        /* directory for the prefix cache file; NULL: none */
    nj_metrics *metrics;           /* borrowed, outlives the worker */
} worker_params;

/* One slot in the status snapshot. */
typedef struct worker_slot_status {
    bool busy;
    int  prio;                     /* WPRIO_* of the request in it */
    int  phase;                    /* 0 free, 1 prompt, 2 generating, 3 task */
    int  n_prompt, n_done;         /* prompt tokens to evaluate (after the cached prefix), done */
    int  n_gen;
} worker_slot_status;

/* Status snapshot for /health. */
typedef struct worker_status {
    bool     loaded;
    bool     busy;                 /* a request is admitted */
    int      queued[WPRIO_COUNT];
    int      n_slots, slots_busy;
    worker_slot_status slot[WORKER_MAX_SLOTS];
    int      chunk, aging_ms;
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

/* A request ready to submit: takes ownership of *job (zeroed afterwards;
 * its owner is released with the request, also on failure here).  One
 * reference, held by the caller. */
worker_req *worker_req_new(worker_job *job, int *err);
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
void worker_set_aging(nj_worker *w, int aging_ms);

/* Seconds a client refused with -EAGAIN should wait before retrying: the
 * queued work over the slots at the recent mean service time, 1..600. */
int  worker_retry_after(nj_worker *w);

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
