/*
 * worker — see worker.h for the scheduling, threads, ownership and the idle
 * design.
 *
 * Per request the engine thread: (1) loads the model if an idle unload freed
 * it; (2) admits the request: renders the prompt (chat template) and
 * tokenizes it, message contents fenced so they cannot forge control tokens,
 * checks prompt + max_tokens against the context and picks the free slot
 * whose KV cache holds the longest prefix of the prompt (requests that share
 * a system prompt skip re-evaluating it); (3) steps it, interleaved with
 * other slots' steps by urgency: prompt chunks, then one sampled token per
 * step, appending text to the request and holding back bytes that could be
 * the start of a stop string or an incomplete UTF-8 character, so what the
 * HTTP side streams is final.
 *
 * Slots and memory.  Every slot has the same context (the requested one,
 * shrunk until weights + parallel x (KV + buffers) fit the budget); slot 0
 * is the session the memory estimate of a single-session server counts, the
 * others add their KV cache, scratch and pool stacks.
 */
#include "worker.h"

#include <math.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "nightjar.h"
#include "platform.h"
#include "session.h"
#include "util.h"

#define GIB(x) ((double)(x) / (1024.0 * 1024.0 * 1024.0))

enum { SLOT_FREE = 0, SLOT_PROMPT = 1, SLOT_GEN = 2, SLOT_TASK = 3 };

/* Shortest shared prefix worth a file: below this, computing it again
 * costs less than a second even on a 7B model. */
#define WORKER_PREFIX_MIN 32

/* One session and the generation running in it.  Engine thread only, but
 * for `r`, which changes under worker.mu. */
typedef struct slot {
    nj_session *sess;
    int32_t    *toks;          /* (n_ctx + 1) the running request's prompt */
    worker_req *r;             /* the request in the slot, or NULL */
    int         phase;         /* SLOT_* */
    bool        task_prefix;   /* the last task ran here: its prefix is in the cache */
    /* the generation */
    int         n_prompt, keep, done;  /* prompt tokens; reused prefix; evaluated of the rest */
    int         max_tokens, n_gen, n_forced, nb;
    int32_t     batch[64];     /* tokens appended but not yet evaluated */
    nj_sampler *smp;
    nj_grammar *g;
    double      t_admit, t0, t1;
} slot;

struct nj_worker {
    worker_params   p;                 /* strings below are owned copies */
    char           *model_path, *chat_template;
    char            model_id[256];

    pthread_mutex_t mu;                /* queue, slot requests, status, live settings */
    pthread_cond_t  cv;                /* queue changed / stop / settings */
    pthread_cond_t  idle_cv;           /* a request finished (drain waiters) */
    bool            monotonic;         /* condvars use CLOCK_MONOTONIC */
    worker_req     *queue;             /* submitted, not admitted; unordered */
    int             n_queued[WPRIO_COUNT];
    worker_req     *admitting;         /* popped, being admitted into a slot */
    int             n_active;          /* admitting + in slots */
    unsigned long long seq;            /* submissions so far */
    long long       n_started;         /* admissions so far */
    double          mean_service;      /* seconds, running mean of admitted requests */
    bool            stop, closed;
    double          last_activity;     /* nj_now() of the last finished request */
    worker_status   st;                /* snapshot fields for /health */
    uint64_t        base_rss;          /* process RSS with no model, at load */

    pthread_t       thread;
    bool            thread_started;

    /* engine thread only (and the creating thread before the thread starts) */
    nj_model       *model;
    slot            slots[WORKER_MAX_SLOTS];
    int             n_slots;
    int             n_vocab, n_ctx;
    int32_t        *toks;              /* tokenizer output, n_ctx + 1 */
    char           *prefix_dir;        /* owned copy of p.prefix_dir, or NULL */
    char            prefix_path[4096]; /* this model's prefix file ("" until loaded) */
    int32_t        *saved_ids;         /* the prefix the file holds (saved_n ids) */
    int             saved_n;
    char           *piece;             /* one token's text */
    size_t          piece_cap;
    uint64_t        seed_ctr;
    slot           *last_stepped;      /* for counting preemptions */
    float          *batch_logits;      /* (parallel, n_vocab) for batched decode */
};

/* ---- time ---- */

/* Absolute deadline `t` (nj_now() seconds) as a timespec on the condvar's clock. */
static struct timespec deadline_ts(const nj_worker *w, double t) {
    struct timespec ts;
    double rel = t - nj_now();
    if (rel < 0) rel = 0;
    if (w->monotonic) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
    }
    double s = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + rel;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    return ts;
}

static bool init_cond(pthread_cond_t *c) {
#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION > 0
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    bool mono = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0;
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return mono;
#else
    pthread_cond_init(c, NULL);
    return false;
#endif
}

/* ---- requests ---- */

/* Wake the request's waiters (r->mu held): its condvar, and its notify
 * pipe for a waiter that also watches the client's socket. */
static void req_signal(worker_req *r) {
    pthread_cond_broadcast(&r->cv);
    if (r->notify_fd >= 0) {
        char b = 1;
        ssize_t n = write(r->notify_fd, &b, 1);   /* a full pipe is awake already */
        (void)n;
    }
}

static void job_release(worker_job *j) {
    if (j->release) j->release(j->owner);
    memset(j, 0, sizeof *j);
}

worker_req *worker_req_new(worker_job *in, int *err) {
    worker_req *r = nj_calloc(1, sizeof *r);
    if (!r) {
        job_release(in);
        if (err) *err = -ENOMEM;
        return NULL;
    }
    r->in = *in;
    memset(in, 0, sizeof *in);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->state = WREQ_QUEUED;
    r->status = 0;
    r->notify_fd = -1;
    r->ctx_numbers[0] = r->ctx_numbers[1] = r->ctx_numbers[2] = -1;
    atomic_init(&r->cancel, false);
    atomic_init(&r->refs, 1);
    if (err) *err = 0;
    return r;
}

void worker_req_unref(worker_req *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    job_release(&r->in);
    nj_free(r->text);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    nj_free(r);
}

int worker_req_wait_started(worker_req *r) {
    pthread_mutex_lock(&r->mu);
    while (r->state == WREQ_QUEUED) pthread_cond_wait(&r->cv, &r->mu);
    int s = r->state;
    pthread_mutex_unlock(&r->mu);
    return s;
}

void worker_req_wait_done(worker_req *r) {
    pthread_mutex_lock(&r->mu);
    while (r->state != WREQ_DONE) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* Finish with an error (any state).  Releases all text produced so far. */
static void req_fail(worker_req *r, int status, const char *type, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void req_fail(worker_req *r, int status, const char *type, const char *fmt, ...) {
    pthread_mutex_lock(&r->mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
    r->status = status;
    r->err_type = type;
    r->released = r->len;
    r->state = WREQ_DONE;
    req_signal(r);
    pthread_mutex_unlock(&r->mu);
}

/* Append generated bytes, cut at a stop string, and advance `released` to
 * what can no longer change.  Returns true if a stop string was hit. */
static bool req_append(worker_req *r, const char *s, size_t n) {
    bool stopped = false;
    pthread_mutex_lock(&r->mu);
    if (r->len + n + 1 > r->cap) {
        size_t cap = (r->cap ? r->cap * 2 : 256) + n;
        char *t = nj_realloc(r->text, cap);
        if (!t) {            /* keep what we have; the request ends as "length" */
            pthread_mutex_unlock(&r->mu);
            return true;
        }
        r->text = t;
        r->cap = cap;
    }
    size_t old = r->len;
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;

    const worker_job *in = &r->in;
    size_t hit = SIZE_MAX;
    for (int i = 0; i < in->n_stop; i++) {
        size_t sl = in->stop_len[i];
        size_t from = old >= sl - 1 ? old - (sl - 1) : 0;
        for (size_t p = from; p + sl <= r->len && p < hit; p++)
            if (!memcmp(r->text + p, in->stop[i], sl)) { hit = p; break; }
    }
    if (hit != SIZE_MAX) {
        r->len = hit;
        r->text[hit] = 0;
        stopped = true;
    } else {
        size_t hold = 0;
        for (int i = 0; i < in->n_stop; i++) {
            size_t sl = in->stop_len[i];
            for (size_t k = NJ_MIN(sl - 1, r->len); k > hold; k--)
                if (!memcmp(r->text + r->len - k, in->stop[i], k)) { hold = k; break; }
        }
        size_t safe = nj_utf8_complete(r->text, r->len - hold);
        if (safe > r->released) {
            r->released = safe;
            req_signal(r);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return stopped;
}

static void req_finish(worker_req *r, const char *finish) {
    pthread_mutex_lock(&r->mu);
    r->finish = finish;
    r->status = 200;
    r->released = r->len;
    r->state = WREQ_DONE;
    req_signal(r);
    pthread_mutex_unlock(&r->mu);
}

/* ---- queue and urgency (worker.mu held) ---- */

static void update_queue_gauges(nj_worker *w) {
    if (!w->p.metrics) return;
    metrics_set(w->p.metrics, NJ_M_QUEUE_CRITICAL, w->n_queued[WPRIO_CRITICAL]);
    metrics_set(w->p.metrics, NJ_M_QUEUE_HIGH, w->n_queued[WPRIO_HIGH]);
    metrics_set(w->p.metrics, NJ_M_QUEUE_NORMAL, w->n_queued[WPRIO_NORMAL]);
    metrics_set(w->p.metrics, NJ_M_QUEUE_BULK, w->n_queued[WPRIO_BULK]);
    metrics_set(w->p.metrics, NJ_M_BUSY, w->n_active > 0);
    metrics_set(w->p.metrics, NJ_M_SLOTS_BUSY, w->n_active);
}

static int queued_total(const nj_worker *w) {
    int t = 0;
    for (int p = 0; p < WPRIO_COUNT; p++) t += w->n_queued[p];
    return t;
}

/* Fail and drop the queued requests whose clients went away, so they
 * neither hold a place in a full queue nor wait for a slot. */
static void queue_purge_cancelled(nj_worker *w) {
    for (worker_req **pp = &w->queue; *pp;) {
        worker_req *r = *pp;
        if (!atomic_load(&r->cancel)) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->next = NULL;
        w->n_queued[r->sk.prio]--;
        req_fail(r, 503, "unavailable_error", "request cancelled");
        worker_req_unref(r);
        update_queue_gauges(w);
    }
}

/* The most urgent queued request if it may take a free slot now, else
 * NULL.  Classes below high leave the last free slot to urgent work. */
static worker_req *queue_pick(nj_worker *w, double now) {
    queue_purge_cancelled(w);
    worker_req *best = NULL;
    for (worker_req *r = w->queue; r; r = r->next)
        if (!best || urgency_before(&r->sk, &best->sk, now, w->p.aging_ms)) best = r;
    if (!best) return NULL;
    int eff = urgency_class(&best->sk, now, w->p.aging_ms);
    return urgency_may_admit(eff, w->n_slots - w->n_active, w->n_slots) ? best : NULL;
}

static void queue_remove(nj_worker *w, worker_req *r) {
    for (worker_req **pp = &w->queue; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            r->next = NULL;
            w->n_queued[r->sk.prio]--;
            return;
        }
}

static worker_req *queue_pop_any(nj_worker *w) {
    worker_req *r = w->queue;
    if (r) queue_remove(w, r);
    return r;
}

int worker_submit(nj_worker *w, worker_req *r) {
    int p = r->in.priority;
    if (p < 0 || p >= WPRIO_COUNT) p = WPRIO_NORMAL;
    pthread_mutex_lock(&w->mu);
    if (w->closed) {
        pthread_mutex_unlock(&w->mu);
        return NJ_ESTATE;
    }
    if (queued_total(w) >= w->p.max_queue) queue_purge_cancelled(w);
    if (queued_total(w) >= w->p.max_queue) {
        pthread_mutex_unlock(&w->mu);
        return -EAGAIN;
    }
    atomic_fetch_add(&r->refs, 1);
    r->t_submit = nj_now();
    r->sk.prio = p;
    r->sk.deadline = r->in.deadline_ms > 0 ? r->t_submit + (double)r->in.deadline_ms / 1000.0 : INFINITY;
    r->sk.last_served = r->t_submit;
    r->sk.seq = ++w->seq;
    r->next = w->queue;
    w->queue = r;
    w->n_queued[p]++;
    update_queue_gauges(w);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int worker_retry_after(nj_worker *w) {
    pthread_mutex_lock(&w->mu);
    double per = w->mean_service > 0 ? w->mean_service : 1.0;
    int slots = w->n_slots > 0 ? w->n_slots : 1;
    double t = per * (double)(queued_total(w) + w->n_active) / slots;
    pthread_mutex_unlock(&w->mu);
    return t < 1 ? 1 : t > 600 ? 600 : (int)ceil(t);
}

/* ---- model life cycle (engine thread) ---- */

/* Rows of one forward pass (a session's n_batch): 256, the engine's
 * default, or more for a larger chunk or more slots than that (a batched
 * decode takes one row per slot). */
static int pass_rows(const nj_worker *w) { return NJ_MAX(256, NJ_MAX(w->p.chunk, w->p.parallel)); }

/* What one more slot costs at context ctx: its KV cache, scratch for a
 * pass and its pool's worker stacks. */
static uint64_t slot_bytes(const nj_worker *w, int ctx) {
    return model_kv_bytes(w->model, ctx, w->p.kv_type) +
           session_scratch_bytes(w->model, NJ_MIN(pass_rows(w), ctx), w->p.threads) +
           (uint64_t)w->p.threads * (256u << 10);
}

/* The whole process at context ctx: what it held with no model loaded
 * (code, libraries, the HTTP daemon; measured when load() starts), the
 * model's estimate for one session (weights, KV, buffers; its scratch for
 * the default 256-token pass replaced by ours), the other slots, the
 * batched decode's logits and our token buffers. */
static uint64_t estimate(nj_worker *w, int ctx) {
    int n = w->p.parallel;
    uint64_t e = w->base_rss + nj_model_mem_estimate(w->model, ctx, w->p.kv_type);
    e -= session_scratch_bytes(w->model, NJ_MIN(256, ctx), w->p.threads);
    e += session_scratch_bytes(w->model, NJ_MIN(pass_rows(w), ctx), w->p.threads);
    e += (uint64_t)(n - 1) * slot_bytes(w, ctx);
    nj_model_desc d;
    nj_model_describe(w->model, &d);
    e += (uint64_t)n * (uint64_t)d.n_vocab * sizeof(float);   /* batched decode's logits */
    return e + (uint64_t)(n + 1) * ((uint64_t)ctx + 1) * sizeof(int32_t);
}

static void slot_clear_gen(slot *sl) {
    nj_sampler_free(sl->smp);
    nj_grammar_free(sl->g);
    sl->smp = NULL;
    sl->g = NULL;
    sl->phase = SLOT_FREE;
    sl->nb = 0;
}

static void unload(nj_worker *w) {
    if (!w->model) return;
    for (int i = 0; i < w->n_slots; i++) {
        slot *sl = &w->slots[i];
        slot_clear_gen(sl);
        nj_session_free(sl->sess);
        nj_free(sl->toks);
        memset(sl, 0, sizeof *sl);
    }
    w->n_slots = 0;
    w->last_stepped = NULL;
    nj_model_free(w->model);
    w->model = NULL;
    nj_free(w->toks);
    w->toks = NULL;
    nj_free(w->batch_logits);
    w->batch_logits = NULL;
    pthread_mutex_lock(&w->mu);
    w->st.loaded = false;
    w->st.n_slots = 0;
    pthread_mutex_unlock(&w->mu);
    if (w->p.metrics) {
        metrics_set(w->p.metrics, NJ_M_MODEL_LOADED, 0);
    }
}

/* ---- prefix cache file (engine thread) ---- */

/* mkdir -p dir (mode 0700); 0 or -errno. */
static int make_dirs(const char *dir) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return -ENAMETOOLONG;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c) continue;
        const char save = *c;
        *c = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) return -errno;
        *c = save;
        if (!save) return 0;
    }
}

/* Remember that the file holds ids[0, n). */
static void prefix_remember(nj_worker *w, const int32_t *ids, int n) {
    nj_free(w->saved_ids);
    w->saved_ids = nj_malloc((size_t)n * sizeof *ids);
    w->saved_n = w->saved_ids ? n : 0;
    if (w->saved_ids) memcpy(w->saved_ids, ids, (size_t)n * sizeof *ids);
}

/* After a load: the file's prefix into the new session, if there is one
 * and it matches; anything else is logged and left to be replaced. */
static void prefix_read(nj_worker *w, const nj_model_desc *d) {
    w->prefix_path[0] = 0;
    if (!w->prefix_dir) return;
    if (snprintf(w->prefix_path, sizeof w->prefix_path, "%s/%016llx-%s.njkv", w->prefix_dir,
                 (unsigned long long)d->file_id, nj_kv_type_name(w->p.kv_type)) >= (int)sizeof w->prefix_path) {
        NJ_WARN("prefix cache directory name too long; the prefix is not kept on disk");
        w->prefix_path[0] = 0;
        return;
    }
    double t0 = nj_now();
    int n = nj_session_load_prefix(w->slots[0].sess, w->prefix_path);
    if (n > 0) {
        /* every slot starts from it: the next request may land in any */
        for (int i = 1; i < w->n_slots; i++)
            if (nj_session_load_prefix(w->slots[i].sess, w->prefix_path) != n)
                NJ_WARN("prefix cache: slot %d did not take the prefix: %s", i, nj_last_error());
        NJ_INFO("prefix cache: %d tokens read from %s in %.3f s", n, w->prefix_path, nj_now() - t0);
        prefix_remember(w, nj_session_tokens(w->slots[0].sess), n);
        if (w->p.metrics) metrics_add(w->p.metrics, NJ_M_PREFIX_READS, 1);
    } else if (n == -ENOENT) {
        NJ_DEBUG("prefix cache: no file %s yet", w->prefix_path);
        w->saved_n = 0;
    } else {
        NJ_WARN("prefix cache %s not used, the prefix will be computed and the file replaced: %s",
                w->prefix_path, nj_last_error());
        w->saved_n = 0;
        if (w->p.metrics) metrics_add(w->p.metrics, NJ_M_PREFIX_REJECTS, 1);
    }
}

/* After a request: write the prefix it shared with the one before, when
 * it is long enough and the file does not hold it (or a longer one that
 * starts with it) already. */
static void prefix_maybe_save(nj_worker *w, nj_session *sess) {
    if (!sess || !w->prefix_path[0]) return;
    const int k = nj_session_last_reused(sess);
    if (k < WORKER_PREFIX_MIN || k > nj_session_pos(sess)) return;
    const int32_t *ids = nj_session_tokens(sess);
    if (k <= w->saved_n && !memcmp(ids, w->saved_ids, (size_t)k * sizeof *ids)) return;
    double t0 = nj_now();
    int rc = make_dirs(w->prefix_dir);
    if (rc == 0) rc = nj_session_save_prefix(sess, k, w->prefix_path);
    else nj_fail(rc, "cannot create %s", w->prefix_dir);
    if (rc) {
        NJ_WARN("prefix cache: %s", nj_last_error());
        return;
    }
    NJ_INFO("prefix cache: %d tokens written to %s in %.3f s", k, w->prefix_path, nj_now() - t0);
    prefix_remember(w, ids, k);
    if (w->p.metrics) metrics_add(w->p.metrics, NJ_M_PREFIX_WRITES, 1);
}

/* Load the model under the memory budget.  0 or < 0 with nj_last_error(). */
static int load(nj_worker *w) {
    double t0 = nj_now();
    int err = 0;
    uint64_t budget = w->p.mem_budget;
    char msg[512];
    w->base_rss = platform_rss_bytes();

    /* 1. Weights from the GGUF header, before mapping the model for real:
     *    a model that cannot fit is refused without touching its pages. */
    uint64_t weights = 0;
    err = nj_model_file_weight_bytes(w->model_path, &weights);
    if (err) {
        snprintf(msg, sizeof msg, "%s", nj_last_error());
        return nj_fail(err, "cannot open model %s: %s", w->model_path, msg);
    }
    if (weights > budget)
        return nj_fail(NJ_ETOOBIG, "model weights need %.2f GiB, over the memory budget of %.2f GiB "
                       "(raise --mem-budget or use a smaller model)", GIB(weights), GIB(budget));

    /* 2. The model itself. */
    nj_model_params mp = {.n_threads = w->p.threads, .vocab_only = false};
    nj_model *m = nj_model_load(w->model_path, &mp, &err);
    if (!m) {
        snprintf(msg, sizeof msg, "%s", nj_last_error());
        return nj_fail(err, "cannot load model %s: %s (%s)", w->model_path, msg, nj_strerror(err));
    }
    w->model = m;
    nj_model_desc desc;
    nj_model_describe(m, &desc);

    /* 3. The context: requested, clamped to training, shrunk to the budget
     *    (every slot gets the same). */
    int want = w->p.ctx_size, ctx = want;
    char note[256] = "";
    if (desc.n_ctx_train > 0 && ctx > desc.n_ctx_train) {
        ctx = desc.n_ctx_train;
        snprintf(note, sizeof note, "context clamped from %d to the model's training context %d", want, ctx);
    }
    uint64_t est = estimate(w, ctx);
    bool shrunk = false;
    if (est > budget) {
        int lo = NJ_MIN(256, ctx);
        uint64_t est_lo = estimate(w, lo);
        if (est_lo > budget) {
            nj_model_free(m);
            w->model = NULL;
            return nj_fail(NJ_ETOOBIG, "model needs %.2f GiB even with a %d-token context in %d slot%s "
                           "(weights %.2f GiB), over the memory budget of %.2f GiB (raise --mem-budget%s)",
                           GIB(est_lo), lo, w->p.parallel, w->p.parallel == 1 ? "" : "s", GIB(weights),
                           GIB(budget), w->p.parallel > 1 ? " or lower --parallel" : "");
        }
        /* largest fitting context: lo fits, ctx does not; step 256 */
        int hi = ctx;
        while (hi - lo > 256) {
            int mid = lo + ((hi - lo) / 2 / 256) * 256;
            if (mid <= lo) mid = lo + 256;
            if (estimate(w, mid) <= budget) lo = mid;
            else hi = mid;
        }
        snprintf(note, sizeof note, "context shrunk from %d to %d tokens to fit %d slot%s in the memory budget "
                 "of %.2f GiB (estimate at %d: %.2f GiB)", ctx, lo, w->p.parallel, w->p.parallel == 1 ? "" : "s",
                 GIB(budget), ctx, GIB(est));
        NJ_WARN("%s", note);
        ctx = lo;
        est = estimate(w, ctx);
        shrunk = true;
    }

    /* 4. The slots and the buffers sized by them. */
    for (int i = 0; i < w->p.parallel; i++) {
        nj_session_params sp = {.n_ctx = ctx, .kv_type = w->p.kv_type, .n_batch = pass_rows(w),
                                .n_threads = w->p.threads};
        slot *sl = &w->slots[i];
        sl->sess = nj_session_new(m, &sp, &err);
        if (!sl->sess) {
            snprintf(msg, sizeof msg, "%s", nj_last_error());
            unload(w);
            return nj_fail(err, "cannot create session %d (context %d): %s (%s)", i, ctx, msg, nj_strerror(err));
        }
        w->n_slots = i + 1;
        sl->toks = nj_calloc((size_t)nj_session_n_ctx(sl->sess) + 1, sizeof *sl->toks);
        if (!sl->toks) {
            unload(w);
            return nj_fail(-ENOMEM, "out of memory for the token buffers");
        }
    }
    w->n_ctx = nj_session_n_ctx(w->slots[0].sess);
    w->n_vocab = desc.n_vocab;
    w->toks = nj_calloc((size_t)w->n_ctx + 1, sizeof *w->toks);
    w->batch_logits = nj_calloc((size_t)w->n_slots * (size_t)w->n_vocab, sizeof *w->batch_logits);
    if (!w->toks || !w->batch_logits) {
        unload(w);
        return nj_fail(-ENOMEM, "out of memory for the token buffers");
    }
    prefix_read(w, &desc);

    double secs = nj_now() - t0;
    pthread_mutex_lock(&w->mu);
    w->st.loaded = true;
    w->st.n_ctx = w->n_ctx;
    w->st.n_slots = w->n_slots;
    w->st.ctx_requested = want;
    w->st.ctx_shrunk = shrunk;
    w->st.mem_estimate = est;
    w->st.mem_budget = budget;
    w->st.last_load_seconds = secs;
    snprintf(w->st.note, sizeof w->st.note, "%s", note);
    snprintf(w->st.model_name, sizeof w->st.model_name, "%s", desc.name);
    pthread_mutex_unlock(&w->mu);
    if (w->p.metrics) {
        metrics_add(w->p.metrics, NJ_M_MODEL_LOADS, 1);
        metrics_set(w->p.metrics, NJ_M_MODEL_LOADED, 1);
        metrics_set(w->p.metrics, NJ_M_LAST_LOAD_SECONDS, secs);
        metrics_set(w->p.metrics, NJ_M_CTX_SIZE, w->n_ctx);
    }
    NJ_INFO("model %s loaded in %.3f s: %d slot%s of context %d (chunk %d), kv %s, estimate %.2f GiB of %.2f GiB budget",
            desc.name, secs, w->n_slots, w->n_slots == 1 ? "" : "s", w->n_ctx, w->p.chunk,
            nj_kv_type_name(w->p.kv_type), GIB(est), GIB(budget));
    return 0;
}

/* ---- one request (engine thread) ---- */

/* Prompt -> w->toks (room for n_ctx + 1).  A completion prompt is the
 * caller's own text, template markers and all, so it is parsed for special
 * tokens.  A chat prompt goes through nj_chat_tokenize: the template's
 * markers become control tokens, the message contents (event fields,
 * attacker-controlled) never do.  Returns the count (may exceed n_ctx + 1)
 * or < 0; *tmpl_err tells a template error (bad messages) from others. */
static int tokenize_prompt(nj_worker *w, const worker_job *in, bool *tmpl_err) {
    *tmpl_err = false;
    if (in->kind == WJOB_COMPLETION)
        return nj_tokenize(w->model, in->prompt, in->prompt_len, true, true, w->toks, w->n_ctx + 1);
    int n = nj_chat_tokenize(w->model, w->chat_template, in->msgs, in->n_msgs, true, w->toks,
                             w->n_ctx + 1);
    *tmpl_err = n < 0;
    return n;
}

/* Text of one token into w->piece; returns its length or < 0. */
static int token_piece(nj_worker *w, int32_t id) {
    for (int attempt = 0; attempt < 2; attempt++) {
        int n = nj_token_to_piece(w->model, id, false, w->piece, w->piece_cap);
        if (n < 0 || (size_t)n <= w->piece_cap) return n;
        char *b = nj_realloc(w->piece, (size_t)n);
        if (!b) return -ENOMEM;
        w->piece = b;
        w->piece_cap = (size_t)n;
    }
    return NJ_ESTATE;
}

static void set_running(worker_req *r) {
    pthread_mutex_lock(&r->mu);
    r->state = WREQ_RUNNING;
    req_signal(r);
    pthread_mutex_unlock(&r->mu);
}

/* Publish a slot's progress in the status snapshot (worker.mu taken here). */
static void slot_publish(nj_worker *w, slot *sl) {
    int i = (int)(sl - w->slots);
    pthread_mutex_lock(&w->mu);
    worker_slot_status *ss = &w->st.slot[i];
    ss->busy = sl->r != NULL;
    ss->prio = sl->r ? sl->r->sk.prio : 0;
    ss->phase = sl->phase;
    ss->n_prompt = sl->n_prompt - sl->keep;
    ss->n_done = sl->done;
    ss->n_gen = sl->n_gen;
    pthread_mutex_unlock(&w->mu);
}

/* The request leaves its slot (done, failed or cancelled): the slot is
 * free for the next admission and the engine's reference is dropped. */
static void slot_release(nj_worker *w, slot *sl) {
    worker_req *r = sl->r;
    slot_clear_gen(sl);
    prefix_maybe_save(w, sl->sess);
    if (w->last_stepped == sl) w->last_stepped = NULL;
    double now = nj_now();
    pthread_mutex_lock(&w->mu);
    sl->r = NULL;
    w->n_active--;
    w->last_activity = now;
    if (r) {
        double t = now - r->t_submit;
        w->mean_service = w->mean_service > 0 ? 0.8 * w->mean_service + 0.2 * t : t;
    }
    w->st.slot[sl - w->slots] = (worker_slot_status){0};
    update_queue_gauges(w);
    pthread_cond_broadcast(&w->idle_cv);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (r && w->p.metrics && isfinite(r->sk.deadline) && now > r->sk.deadline)
        metrics_add(w->p.metrics, NJ_M_DEADLINES_MISSED, 1);
    worker_req_unref(r);
}

/* A task job: the function runs here, on the engine thread, with the
 * model and the slot's session; its result becomes the request's text. */
static void run_task(nj_worker *w, slot *sl, worker_req *r) {
    sl->phase = SLOT_TASK;
    slot_publish(w, sl);
    set_running(r);
    char *out = NULL;
    size_t len = 0;
    int rc = r->in.task(r->in.task_arg, w->model, sl->sess, &out, &len);
    for (int i = 0; i < w->n_slots; i++) w->slots[i].task_prefix = false;
    sl->task_prefix = true;
    if (rc < 0) {
        nj_free(out);
        if (rc == -EINVAL || rc == NJ_EFORMAT)
            req_fail(r, 400, "invalid_request_error", "%s", nj_last_error());
        else
            req_fail(r, 500, "server_error", "%s (%s)", nj_last_error(), nj_strerror(rc));
        return;
    }
    pthread_mutex_lock(&r->mu);
    nj_free(r->text);
    r->text = out;
    r->len = r->cap = len;
    pthread_mutex_unlock(&r->mu);
    req_finish(r, "stop");
}

/* The free slot for a prompt of n tokens in w->toks: the one whose cache
 * holds the longest prefix of it; on a tie one the analyst's tasks did not
 * use last, so their prefix survives. */
static slot *pick_slot(nj_worker *w, int n) {
    slot *best = NULL;
    int best_len = -1;
    for (int i = 0; i < w->n_slots; i++) {
        slot *sl = &w->slots[i];
        if (sl->r) continue;
        int len = n > 0 ? session_prefix_len(sl->sess, w->toks, n) : 0;
        if (len > best_len || (len == best_len && best->task_prefix && !sl->task_prefix)) {
            best = sl;
            best_len = len;
        }
    }
    return best;
}

static slot *pick_task_slot(nj_worker *w) {
    slot *best = NULL;
    for (int i = 0; i < w->n_slots; i++) {
        slot *sl = &w->slots[i];
        if (sl->r) continue;
        if (!best || (sl->task_prefix && !best->task_prefix)) best = sl;
    }
    return best;
}

/* Put r into a slot (worker.mu held by the caller: never fails). */
static void slot_take(nj_worker *w, slot *sl, worker_req *r) {
    sl->r = r;
    w->admitting = NULL;
    r->start_order = ++w->n_started;
}

/* Admit a popped request: validate it and put it in a free slot, ready for
 * its first step, or finish it with an error (which also frees its place).
 * A task runs whole here. */
static void admit(nj_worker *w, worker_req *r) {
    const worker_job *in = &r->in;
    char msg[512];
    slot *sl;
#define FAIL(...) do { req_fail(r, __VA_ARGS__); goto fail; } while (0)
    if (atomic_load(&r->cancel)) FAIL(503, "unavailable_error", "request cancelled");
    if (in->kind == WJOB_TASK) {
        sl = pick_task_slot(w);
        pthread_mutex_lock(&w->mu);
        slot_take(w, sl, r);
        pthread_mutex_unlock(&w->mu);
        sl->t_admit = nj_now();
        run_task(w, sl, r);
        slot_release(w, sl);
        return;
    }

    /* prompt -> tokens */
    bool tmpl_err;
    int n = tokenize_prompt(w, in, &tmpl_err);
    if (n < 0) {
        snprintf(msg, sizeof msg, "%s", nj_last_error());
        if (tmpl_err && n == -EINVAL)   /* the messages do not fit the template (e.g. roles) */
            FAIL(400, "invalid_request_error", "cannot apply the chat template: %s", msg);
        else if (tmpl_err)
            FAIL(500, "server_error", "cannot apply the chat template: %s (%s)", msg, nj_strerror(n));
        else
            FAIL(500, "server_error", "tokenization failed: %s (%s)", msg, nj_strerror(n));
    }
    if (n == 0) FAIL(400, "invalid_request_error", "the prompt is empty");
    pthread_mutex_lock(&w->mu);
    int default_max = w->p.default_max_tokens;
    pthread_mutex_unlock(&w->mu);
    int max_tokens = in->max_tokens;
    if (max_tokens >= 0 && (long long)n + max_tokens > w->n_ctx) {
        pthread_mutex_lock(&r->mu);
        r->ctx_numbers[0] = n;
        r->ctx_numbers[1] = max_tokens;
        r->ctx_numbers[2] = w->n_ctx;
        pthread_mutex_unlock(&r->mu);
        FAIL(400, "invalid_request_error",
             "the prompt (%d tokens) plus max_tokens (%d) = %lld tokens exceeds the context size (%d tokens)",
             n, max_tokens, (long long)n + max_tokens, w->n_ctx);
    }
    if (max_tokens < 0 && n >= w->n_ctx) {
        pthread_mutex_lock(&r->mu);
        r->ctx_numbers[0] = n;
        r->ctx_numbers[2] = w->n_ctx;
        pthread_mutex_unlock(&r->mu);
        FAIL(400, "invalid_request_error",
             "the prompt (%d tokens) leaves no room to generate in the context size (%d tokens)", n, w->n_ctx);
    }
    if (max_tokens < 0) max_tokens = NJ_MIN(default_max, w->n_ctx - n);

    /* An output constraint compiles before the request is accepted: a
     * schema the engine cannot honour is a 400 naming the keyword. */
    nj_grammar *g = NULL;
    if (in->schema || in->json_object) {
        int gerr = 0;
        g = in->schema ? nj_grammar_from_schema(w->model, in->schema, &gerr)
                       : nj_grammar_json_object(w->model, &gerr);
        if (!g) {
            snprintf(msg, sizeof msg, "%s", nj_last_error());
            if (gerr == NJ_EUNSUPPORTED || gerr == NJ_EFORMAT || gerr == -EINVAL || gerr == NJ_ETOOBIG)
                FAIL(400, "invalid_request_error", "response_format: %s", msg);
            else
                FAIL(500, "server_error", "response_format: %s (%s)", msg, nj_strerror(gerr));
        }
    }

    /* sampler */
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);
    if (in->has_temperature) sp.temp = in->temperature;
    if (in->has_top_p) sp.top_p = in->top_p;
    if (in->has_top_k) sp.top_k = in->top_k;
    if (in->has_min_p) sp.min_p = in->min_p;
    if (in->has_repeat_penalty) sp.repeat_penalty = in->repeat_penalty;
    sp.seed = in->has_seed ? in->seed : nj_now_ns() ^ (++w->seed_ctr * 0x9E3779B97F4A7C15ull);
    int err = 0;
    nj_sampler *smp = nj_sampler_new(&sp, &err);
    if (!smp) {
        nj_grammar_free(g);
        FAIL(500, "server_error", "cannot create a sampler: %s", nj_strerror(err));
    }
    if (g) nj_sampler_set_grammar(smp, g);

    /* The slot whose cache holds the longest prefix; at least the last
     * prompt token is evaluated again, for its logits. */
    sl = pick_slot(w, n);
    int keep = session_prefix_len(sl->sess, w->toks, n);
    if (keep == n) keep = n - 1;
    nj_session_truncate(sl->sess, keep);
    session_set_last_reused(sl->sess, keep);   /* the prefix cache's measure of sharing */
    memcpy(sl->toks, w->toks, (size_t)n * sizeof *w->toks);
    sl->n_prompt = n;
    sl->keep = keep;
    sl->done = 0;
    sl->max_tokens = max_tokens;
    sl->n_gen = sl->n_forced = sl->nb = 0;
    sl->smp = smp;
    sl->g = g;
    sl->phase = SLOT_PROMPT;
    sl->t_admit = sl->t0 = nj_now();
    if (sl->task_prefix && keep < n - 1) sl->task_prefix = false;
    pthread_mutex_lock(&w->mu);
    slot_take(w, sl, r);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_lock(&r->mu);
    r->n_prompt = n;
    r->n_cached = keep;
    pthread_mutex_unlock(&r->mu);

    /* Accepted: from here on the answer is 200 (a stream may start).  The
     * state changes only now so that a streaming handler waiting for it
     * still gets the validation errors above as a plain error response. */
    set_running(r);
    slot_publish(w, sl);
    return;
fail:
#undef FAIL
    pthread_mutex_lock(&w->mu);
    w->admitting = NULL;
    w->n_active--;
    w->last_activity = nj_now();
    update_queue_gauges(w);
    pthread_cond_broadcast(&w->idle_cv);
    pthread_mutex_unlock(&w->mu);
    worker_req_unref(r);
}

/* The end of a generation: metrics, the final state, the slot freed.
 * finish NULL: cancelled. */
static void gen_end(nj_worker *w, slot *sl, const char *finish) {
    worker_req *r = sl->r;
    double t2 = nj_now();
    if (w->p.metrics) {
        metrics_add(w->p.metrics, NJ_M_GEN_TOKENS, sl->n_gen);
        if (sl->phase == SLOT_GEN) metrics_add(w->p.metrics, NJ_M_GEN_SECONDS, t2 - sl->t1);
        if (!finish) metrics_add(w->p.metrics, NJ_M_CANCELLED, 1);
    }
    pthread_mutex_lock(&r->mu);
    r->n_gen = sl->n_gen;
    pthread_mutex_unlock(&r->mu);
    NJ_DEBUG("request #%lld: %d prompt tokens (%d cached), %d generated (%d forced by the grammar), "
             "%.3f s in a slot, preempted %d times, %s",
             r->start_order, sl->n_prompt, sl->keep, sl->n_gen, sl->n_forced, t2 - sl->t_admit, r->n_preempted,
             finish ? finish : "cancelled");
    if (finish) req_finish(r, finish);
    else req_fail(r, 503, "unavailable_error", "request cancelled");
    slot_release(w, sl);
}

static void gen_fail(nj_worker *w, slot *sl, const char *what, int rc) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", nj_last_error());
    nj_session_truncate(sl->sess, 0);   /* a failed chunk leaves no half-written prefix behind */
    req_fail(sl->r, 500, "server_error", "%s failed: %s (%s)", what, msg, nj_strerror(rc));
    slot_release(w, sl);
}

/* One prompt step: `chunk` tokens, the preemption point of everything
 * below critical; a critical request (which only another critical one could
 * preempt) takes as many as one forward pass holds.  The pieces are those
 * of one evaluation of the whole prompt, reused prefix included (tokens
 * [keep + done, +c) of n_prompt): a token's float order depends on its
 * place in the evaluation call, so only then does a prompt whose first
 * `keep` tokens come from the cache (the last request's, or the prefix
 * file's) compute what it would compute from scratch. */
static void step_prompt(nj_worker *w, slot *sl) {
    const int n = sl->n_prompt - sl->keep;
    const int step = sl->r->sk.prio == WPRIO_CRITICAL ? session_n_batch(sl->sess) : w->p.chunk;
    const int c = NJ_MIN(step, n - sl->done);
    int rc = session_eval_part(sl->sess, sl->toks, sl->n_prompt, sl->keep + sl->done, c);
    if (rc < 0) {
        gen_fail(w, sl, "prompt evaluation", rc);
        return;
    }
    sl->done += c;
    if (sl->done < n) return;
    sl->t1 = nj_now();
    sl->phase = SLOT_GEN;
    if (w->p.metrics) {
        metrics_add(w->p.metrics, NJ_M_PROMPT_TOKENS, n);
        metrics_add(w->p.metrics, NJ_M_PROMPT_SECONDS, sl->t1 - sl->t0);
        if (sl->keep > 0) {
            metrics_add(w->p.metrics, NJ_M_CACHE_HITS, 1);
            metrics_add(w->p.metrics, NJ_M_CACHE_HIT_TOKENS, sl->keep);
        }
    }
}

/* The next tokens of a generating slot: the ones a grammar forces, or one
 * sampled, appended to the text.  Returns true with sl->batch[0..nb) to be
 * evaluated, or false when the request ended here (slot released). */
static bool gen_next(nj_worker *w, slot *sl) {
    worker_req *r = sl->r;
    int rc;
    nj_grammar *g = sl->g;
    int nb = 0;
    sl->nb = 0;
    bool closing = false;
    if (g) {
        if (nj_grammar_done(g) == 2) {   /* complete, nothing may follow */
            gen_end(w, sl, "stop");
            return false;
        }
        /* Near the end of the budget, close the document the shortest way
         * while it still fits, so a schema-bound answer cut by max_tokens
         * still parses (finish_reason stays "length").  One token more would
         * leave too little room: the closing text can grow by one or two
         * tokens per token sampled. */
        int rem = sl->max_tokens - sl->n_gen;
        if (rem <= (int)NJ_ARRAY_LEN(sl->batch)) {
            int nc = nj_grammar_close(g, sl->batch, (int)NJ_ARRAY_LEN(sl->batch));
            if (nc < 0) {
                gen_fail(w, sl, "generation", nc);
                return false;
            }
            if (nc > 0 && nc <= rem && nc + 2 > rem) {
                nb = nc;
                closing = true;
            }
        }
    }
    if (g && !closing) {
        nb = nj_grammar_forced(g, sl->batch, NJ_MIN((int)NJ_ARRAY_LEN(sl->batch), sl->max_tokens - sl->n_gen));
        if (nb < 0) {
            gen_fail(w, sl, "generation", nb);
            return false;
        }
        sl->n_forced += nb;
    }
    if (nb == 0) {
        int32_t id = nj_sampler_sample(sl->smp, nj_session_logits(sl->sess), w->n_vocab);
        if (id < 0) {
            gen_fail(w, sl, "generation", id);
            return false;
        }
        if (nj_token_is_eog(w->model, id)) {   /* under a grammar: only when complete */
            gen_end(w, sl, "stop");
            return false;
        }
        sl->batch[0] = id;
        nb = 1;
    }
    bool stopped = false;
    for (int i = 0; i < nb && !stopped; i++) {
        nj_sampler_accept(sl->smp, sl->batch[i]);
        if (g && (rc = nj_grammar_accept(g, sl->batch[i])) < 0) {
            gen_fail(w, sl, "generation", rc);
            return false;
        }
        sl->n_gen++;
        int pl = token_piece(w, sl->batch[i]);
        stopped = pl > 0 && req_append(r, w->piece, (size_t)pl);
    }
    if (stopped) {
        gen_end(w, sl, "stop");
        return false;
    }
    if (closing || sl->n_gen >= sl->max_tokens) {
        gen_end(w, sl, "length");
        return false;
    }
    sl->nb = nb;
    return true;
}

/* One generation step of every generating slot (continuous batching): each
 * picks its next tokens; the single tokens are evaluated together in one
 * batched pass (session_decode_batch: each row's arithmetic is that of its
 * lone step, so a verdict does not depend on what else was running), a
 * grammar's forced runs on their own.  Slots that finish leave here. */
static void step_gen_all(nj_worker *w) {
    nj_session *ss[WORKER_MAX_SLOTS];
    int32_t ids[WORKER_MAX_SLOTS];
    slot *rows[WORKER_MAX_SLOTS];
    int n = 0;
    for (int i = 0; i < w->n_slots; i++) {
        slot *sl = &w->slots[i];
        if (!sl->r || sl->phase != SLOT_GEN || !gen_next(w, sl)) continue;
        if (sl->nb == 1) {      /* pass_rows >= parallel: every slot fits one pass */
            rows[n] = sl;
            ss[n] = sl->sess;
            ids[n++] = sl->batch[0];
            continue;
        }
        int rc = nj_session_eval(sl->sess, sl->batch, sl->nb);
        if (rc < 0) gen_fail(w, sl, "generation", rc);
    }
    if (n == 1) {
        int rc = nj_session_eval(ss[0], ids, 1);
        if (rc < 0) gen_fail(w, rows[0], "generation", rc);
    } else if (n > 1) {
        int rc = session_decode_batch(ss, ids, n, w->batch_logits);
        if (rc < 0) {
            for (int k = 0; k < n; k++) gen_fail(w, rows[k], "batched generation", rc);
        } else if (w->p.metrics) {
            metrics_add(w->p.metrics, NJ_M_BATCHED_STEPS, 1);
            metrics_add(w->p.metrics, NJ_M_BATCHED_TOKENS, n);
        }
    }
}

/* Drop every admitted request whose client is gone; then run one step of
 * the most urgent admitted request.  Returns false if none is admitted. */
static bool step(nj_worker *w) {
    for (int i = 0; i < w->n_slots; i++) {
        slot *sl = &w->slots[i];
        if (sl->r && atomic_load(&sl->r->cancel)) gen_end(w, sl, NULL);
    }
    pthread_mutex_lock(&w->mu);
    int aging = w->p.aging_ms;
    pthread_mutex_unlock(&w->mu);
    double now = nj_now();
    slot *best = NULL;
    for (int i = 0; i < w->n_slots; i++) {
        slot *sl = &w->slots[i];
        if (sl->r && (!best || urgency_before(&sl->r->sk, &best->r->sk, now, aging))) best = sl;
    }
    if (!best) return false;
    /* Within a class, prompts go first: a request whose prompt is done then
     * decodes in the same batched passes as the ones already generating,
     * instead of waiting for them to finish. */
    if (best->phase == SLOT_GEN) {
        const int cls = urgency_class(&best->r->sk, now, aging);
        slot *pre = NULL;
        for (int i = 0; i < w->n_slots; i++) {
            slot *sl = &w->slots[i];
            if (sl->r && sl->phase == SLOT_PROMPT && urgency_class(&sl->r->sk, now, aging) <= cls &&
                (!pre || urgency_before(&sl->r->sk, &pre->r->sk, now, aging)))
                pre = sl;
        }
        if (pre) best = pre;
    }
    slot *prev = w->last_stepped;
    /* preempted: the previous step's request is mid-way and does not run
     * now (generating slots all run in a generation step) */
    if (prev && prev != best && prev->r && !(prev->phase == SLOT_GEN && best->phase == SLOT_GEN)) {
        prev->r->n_preempted++;
        if (w->p.metrics) metrics_add(w->p.metrics, NJ_M_PREEMPTIONS, 1);
    }
    w->last_stepped = best;
    if (best->phase == SLOT_PROMPT) {
        worker_req *r = best->r;
        step_prompt(w, best);
        if (best->r == r) {      /* still running (a failed one is freed) */
            r->sk.last_served = nj_now();
            slot_publish(w, best);
        }
        return true;
    }
    /* a generation step carries every generating slot along */
    worker_req *was[WORKER_MAX_SLOTS];
    for (int i = 0; i < w->n_slots; i++) was[i] = w->slots[i].phase == SLOT_GEN ? w->slots[i].r : NULL;
    step_gen_all(w);
    double t = nj_now();
    for (int i = 0; i < w->n_slots; i++)
        if (was[i] && w->slots[i].r == was[i]) {
            was[i]->sk.last_served = t;
            slot_publish(w, &w->slots[i]);
        }
    return true;
}

/* ---- the engine thread ---- */

static void *engine_main(void *arg) {
    nj_worker *w = arg;
    if (w->p.qos >= 0) platform_set_thread_qos(w->p.qos);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        /* the model, if an idle unload freed it and work waits */
        if (!w->model && w->queue) {
            pthread_mutex_unlock(&w->mu);
            NJ_INFO("loading the model again after an idle unload");
            int rc = load(w);
            pthread_mutex_lock(&w->mu);
            if (rc) {
                NJ_ERR("%s", nj_last_error());
                char msg[512];
                snprintf(msg, sizeof msg, "%s", nj_last_error());
                worker_req *r = queue_pick(w, nj_now());
                if (!r) r = w->queue;
                queue_remove(w, r);
                update_queue_gauges(w);
                pthread_mutex_unlock(&w->mu);
                req_fail(r, 503, "unavailable_error", "model could not be loaded: %s", msg);
                worker_req_unref(r);
                pthread_mutex_lock(&w->mu);
                continue;
            }
        }
        /* admissions first: the most urgent waiting request into a free slot */
        worker_req *r = w->model ? queue_pick(w, nj_now()) : NULL;
        if (r) {
            queue_remove(w, r);
            w->admitting = r;
            w->n_active++;
            update_queue_gauges(w);
            pthread_mutex_unlock(&w->mu);
            admit(w, r);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (w->n_active > 0) {
            pthread_mutex_unlock(&w->mu);
            step(w);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (w->stop) break;
        int idle = w->p.idle_unload;
        if (w->st.loaded && idle > 0 && !w->queue) {
            double deadline = w->last_activity + idle;
            if (nj_now() >= deadline) {
                pthread_mutex_unlock(&w->mu);
                NJ_INFO("idle for %d s: unloading the model", idle);
                unload(w);
                if (w->p.metrics) metrics_add(w->p.metrics, NJ_M_MODEL_UNLOADS, 1);
                pthread_mutex_lock(&w->mu);
                continue;
            }
            struct timespec ts = deadline_ts(w, deadline);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        } else {
            pthread_cond_wait(&w->cv, &w->mu);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- public ---- */

nj_worker *worker_new(const worker_params *p, int *err) {
    int rc = -ENOMEM;
    nj_worker *w = nj_calloc(1, sizeof *w);
    if (!w) goto err;
    w->p = *p;
    if (w->p.parallel <= 0) w->p.parallel = 2;
    if (w->p.parallel > WORKER_MAX_SLOTS) w->p.parallel = WORKER_MAX_SLOTS;
    if (w->p.chunk <= 0) w->p.chunk = 64;
    if (w->p.aging_ms < 0) w->p.aging_ms = 0;
    w->model_path = nj_strdup(p->model_path);
    w->chat_template = p->chat_template ? nj_strdup(p->chat_template) : NULL;
    w->prefix_dir = p->prefix_dir ? nj_strdup(p->prefix_dir) : NULL;
    if (p->prefix_dir && !w->prefix_dir) goto err;
    w->p.prefix_dir = w->prefix_dir;
    w->piece_cap = 64;
    w->piece = nj_malloc(w->piece_cap);
    if (!w->model_path || (p->chat_template && !w->chat_template) || !w->piece) goto err;
    w->p.model_path = w->model_path;
    w->p.chat_template = w->chat_template;
    const char *base = strrchr(w->model_path, '/');
    snprintf(w->model_id, sizeof w->model_id, "%s", base ? base + 1 : w->model_path);
    pthread_mutex_init(&w->mu, NULL);
    w->monotonic = init_cond(&w->cv);
    init_cond(&w->idle_cv);
    w->st.idle_unload = p->idle_unload;
    w->st.mem_budget = p->mem_budget;

    if ((rc = load(w))) goto err_sync;
    w->last_activity = nj_now();
    if ((rc = pthread_create(&w->thread, NULL, engine_main, w))) {
        rc = nj_fail(-rc, "cannot start the engine thread");
        unload(w);
        goto err_sync;
    }
    w->thread_started = true;
    if (err) *err = 0;
    return w;

err_sync:
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
err:
    if (w) {
        nj_free(w->model_path);
        nj_free(w->chat_template);
        nj_free(w->prefix_dir);
        nj_free(w->piece);
        nj_free(w);
    }
    if (err) *err = rc;
    return NULL;
}

void worker_close(nj_worker *w) {
    pthread_mutex_lock(&w->mu);
    w->closed = true;
    pthread_mutex_unlock(&w->mu);
}

int worker_drain(nj_worker *w, double timeout) {
    double deadline = nj_now() + timeout;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    while (w->n_active > 0 || w->queue) {
        if (nj_now() >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        struct timespec ts = deadline_ts(w, deadline);
        pthread_cond_timedwait(&w->idle_cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void worker_abort(nj_worker *w) {
    pthread_mutex_lock(&w->mu);
    worker_req *r;
    while ((r = queue_pop_any(w))) {
        req_fail(r, 503, "unavailable_error", "the server is shutting down");
        worker_req_unref(r);
    }
    if (w->admitting) atomic_store(&w->admitting->cancel, true);
    for (int i = 0; i < w->n_slots; i++)
        if (w->slots[i].r) atomic_store(&w->slots[i].r->cancel, true);
    update_queue_gauges(w);
    pthread_mutex_unlock(&w->mu);
}

void worker_free(nj_worker *w) {
    if (!w) return;
    worker_close(w);
    worker_abort(w);
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->thread_started) pthread_join(w->thread, NULL);
    unload(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
    nj_free(w->model_path);
    nj_free(w->chat_template);
    nj_free(w->prefix_dir);
    nj_free(w->saved_ids);
    nj_free(w->piece);
    nj_free(w);
}

void worker_set_idle_unload(nj_worker *w, int seconds) {
    pthread_mutex_lock(&w->mu);
    w->p.idle_unload = seconds;
    w->st.idle_unload = seconds;
    pthread_cond_broadcast(&w->cv);   /* recompute the idle deadline */
    pthread_mutex_unlock(&w->mu);
}

void worker_set_limits(nj_worker *w, int max_queue, int default_max_tokens) {
    pthread_mutex_lock(&w->mu);
    w->p.max_queue = max_queue;
    w->p.default_max_tokens = default_max_tokens;
    pthread_mutex_unlock(&w->mu);
}

void worker_set_aging(nj_worker *w, int aging_ms) {
    pthread_mutex_lock(&w->mu);
    w->p.aging_ms = aging_ms > 0 ? aging_ms : 0;
    pthread_mutex_unlock(&w->mu);
}

void worker_get_status(nj_worker *w, worker_status *out) {
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    out->busy = w->n_active > 0;
    out->slots_busy = w->n_active;
    for (int p = 0; p < WPRIO_COUNT; p++) out->queued[p] = w->n_queued[p];
    out->idle_seconds = out->busy ? 0 : nj_now() - w->last_activity;
    out->idle_unload = w->p.idle_unload;
    out->chunk = w->p.chunk;
    out->aging_ms = w->p.aging_ms;
    pthread_mutex_unlock(&w->mu);
}

const char *worker_model_id(const nj_worker *w) { return w->model_id; }
