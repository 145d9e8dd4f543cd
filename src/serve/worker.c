/*
 * worker — see worker.h for threads, ownership and the idle design.
 *
 * Per request the engine thread: (1) loads the model if an idle unload freed
 * it; (2) renders the prompt (chat template) and tokenizes it, message
 * contents fenced so they cannot forge control tokens; (3) checks
 * prompt + max_tokens against the context; (4) reuses the longest prefix of
 * the previous request still in the KV cache (requests that share a system
 * prompt skip re-evaluating it); (5) samples token by token, appending text to
 * the request and holding back bytes that could be the start of a stop string
 * or an incomplete UTF-8 character, so what the HTTP side streams is final.
 */
#include "worker.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nightjar.h"
#include "platform.h"
#include "util.h"

#define GIB(x) ((double)(x) / (1024.0 * 1024.0 * 1024.0))

/* Shortest shared prefix worth a file: below this, computing it again
 * costs less than a second even on a 7B model. */
#define WORKER_PREFIX_MIN 32

struct nj_worker {
    worker_params   p;                 /* strings below are owned copies */
    char           *model_path, *chat_template;
    char            model_id[256];

    pthread_mutex_t mu;                /* queue, status, live settings */
    pthread_cond_t  cv;                /* queue changed / stop / settings */
    pthread_cond_t  idle_cv;           /* a request finished (drain waiters) */
    bool            monotonic;         /* condvars use CLOCK_MONOTONIC */
    worker_req     *head[WPRIO_COUNT], *tail[WPRIO_COUNT];
    int             n_queued[WPRIO_COUNT];
    worker_req     *current;           /* running request, or NULL */
    bool            stop, closed;
    double          last_activity;     /* nj_now() of the last finished request */
    worker_status   st;                /* snapshot fields for /health */
    uint64_t        base_rss;          /* process RSS with no model, at load */

    pthread_t       thread;
    bool            thread_started;

    /* engine thread only (and the creating thread before the thread starts) */
    nj_model       *model;
    nj_session     *sess;
    int             n_vocab, n_ctx;
    int32_t        *toks;              /* prompt tokens, n_ctx + 1 */
    char           *prefix_dir;        /* owned copy of p.prefix_dir, or NULL */
    char            prefix_path[4096]; /* this model's prefix file ("" until loaded) */
    int32_t        *saved_ids;         /* the prefix the file holds (saved_n ids) */
    int             saved_n;
    char           *piece;             /* one token's text */
    size_t          piece_cap;
    uint64_t        seed_ctr;
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
    pthread_cond_broadcast(&r->cv);
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
            pthread_cond_broadcast(&r->cv);
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
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- queue (worker.mu held) ---- */

static void update_queue_gauges(nj_worker *w) {
    if (!w->p.metrics) return;
    metrics_set(w->p.metrics, NJ_M_QUEUE_HIGH, w->n_queued[WPRIO_HIGH]);
    metrics_set(w->p.metrics, NJ_M_QUEUE_NORMAL, w->n_queued[WPRIO_NORMAL]);
    metrics_set(w->p.metrics, NJ_M_QUEUE_LOW, w->n_queued[WPRIO_LOW]);
    metrics_set(w->p.metrics, NJ_M_BUSY, w->current != NULL);
}

static worker_req *queue_pop(nj_worker *w) {
    for (int p = 0; p < WPRIO_COUNT; p++) {
        worker_req *r = w->head[p];
        if (!r) continue;
        w->head[p] = r->next;
        if (!w->head[p]) w->tail[p] = NULL;
        r->next = NULL;
        w->n_queued[p]--;
        return r;
    }
    return NULL;
}

int worker_submit(nj_worker *w, worker_req *r) {
    int p = r->in.priority;
    if (p < 0 || p >= WPRIO_COUNT) p = WPRIO_NORMAL;
    pthread_mutex_lock(&w->mu);
    if (w->closed) {
        pthread_mutex_unlock(&w->mu);
        return NJ_ESTATE;
    }
    int total = w->n_queued[0] + w->n_queued[1] + w->n_queued[2];
    if (total >= w->p.max_queue) {
        pthread_mutex_unlock(&w->mu);
        return -EAGAIN;
    }
    atomic_fetch_add(&r->refs, 1);
    r->t_submit = nj_now();
    r->next = NULL;
    if (w->tail[p]) w->tail[p]->next = r;
    else w->head[p] = r;
    w->tail[p] = r;
    w->n_queued[p]++;
    update_queue_gauges(w);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* ---- model life cycle (engine thread) ---- */

/* The whole process at context ctx: what it held with no model loaded
 * (code, libraries, the HTTP daemon; measured when load() starts), the
 * model's estimate (weights, KV, session buffers) and our token buffers. */
static uint64_t estimate(nj_worker *w, int ctx) {
    return w->base_rss + nj_model_mem_estimate(w->model, ctx, w->p.kv_type) +
           2 * ((uint64_t)ctx + 1) * sizeof(int32_t);
}

static void unload(nj_worker *w) {
    if (!w->model) return;
    nj_session_free(w->sess);
    nj_model_free(w->model);
    w->sess = NULL;
    w->model = NULL;
    nj_free(w->toks);
    w->toks = NULL;
    pthread_mutex_lock(&w->mu);
    w->st.loaded = false;
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
    int n = nj_session_load_prefix(w->sess, w->prefix_path);
    if (n > 0) {
        NJ_INFO("prefix cache: %d tokens read from %s in %.3f s", n, w->prefix_path, nj_now() - t0);
        prefix_remember(w, nj_session_tokens(w->sess), n);
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
static void prefix_maybe_save(nj_worker *w) {
    if (!w->sess || !w->prefix_path[0]) return;
    const int k = nj_session_last_reused(w->sess);
    if (k < WORKER_PREFIX_MIN || k > nj_session_pos(w->sess)) return;
    const int32_t *ids = nj_session_tokens(w->sess);
    if (k <= w->saved_n && !memcmp(ids, w->saved_ids, (size_t)k * sizeof *ids)) return;
    double t0 = nj_now();
    int rc = make_dirs(w->prefix_dir);
    if (rc == 0) rc = nj_session_save_prefix(w->sess, k, w->prefix_path);
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

    /* 3. The context: requested, clamped to training, shrunk to the budget. */
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
            return nj_fail(NJ_ETOOBIG, "model needs %.2f GiB even with a %d-token context (weights %.2f GiB), "
                           "over the memory budget of %.2f GiB (raise --mem-budget)",
                           GIB(est_lo), lo, GIB(weights), GIB(budget));
        }
        /* largest fitting context: lo fits, ctx does not; step 256 */
        int hi = ctx;
        while (hi - lo > 256) {
            int mid = lo + ((hi - lo) / 2 / 256) * 256;
            if (mid <= lo) mid = lo + 256;
            if (estimate(w, mid) <= budget) lo = mid;
            else hi = mid;
        }
        snprintf(note, sizeof note, "context shrunk from %d to %d tokens to fit the memory budget of %.2f GiB "
                 "(estimate at %d: %.2f GiB)", ctx, lo, GIB(budget), ctx, GIB(est));
        NJ_WARN("%s", note);
        ctx = lo;
        est = estimate(w, ctx);
        shrunk = true;
    }

    /* 4. The session and the buffers sized by it. */
    nj_session_params sp = {.n_ctx = ctx, .kv_type = w->p.kv_type, .n_batch = 0, .n_threads = w->p.threads};
    nj_session *s = nj_session_new(m, &sp, &err);
    if (!s) {
        snprintf(msg, sizeof msg, "%s", nj_last_error());
        nj_model_free(m);
        w->model = NULL;
        return nj_fail(err, "cannot create a session (context %d): %s (%s)", ctx, msg, nj_strerror(err));
    }
    w->sess = s;
    w->n_ctx = nj_session_n_ctx(s);
    w->n_vocab = desc.n_vocab;
    w->toks = nj_calloc((size_t)w->n_ctx + 1, sizeof *w->toks);
    if (!w->toks) {
        unload(w);
        return nj_fail(-ENOMEM, "out of memory for the token buffers");
    }
    prefix_read(w, &desc);

    double secs = nj_now() - t0;
    pthread_mutex_lock(&w->mu);
    w->st.loaded = true;
    w->st.n_ctx = w->n_ctx;
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
    NJ_INFO("model %s loaded in %.3f s: context %d, kv %s, estimate %.2f GiB of %.2f GiB budget",
            desc.name, secs, w->n_ctx, nj_kv_type_name(w->p.kv_type), GIB(est), GIB(budget));
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

/* A task job: the function runs here, on the engine thread, with the
 * model and the session; its result becomes the request's text. */
static void run_task(nj_worker *w, worker_req *r) {
    pthread_mutex_lock(&r->mu);
    r->state = WREQ_RUNNING;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    char *out = NULL;
    size_t len = 0;
    int rc = r->in.task(r->in.task_arg, w->model, w->sess, &out, &len);
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

static void run(nj_worker *w, worker_req *r) {
    const worker_job *in = &r->in;
    char msg[512];
    if (atomic_load(&r->cancel)) {
        req_fail(r, 503, "unavailable_error", "request cancelled");
        return;
    }
    if (!w->model) {
        NJ_INFO("loading the model again after an idle unload");
        int rc = load(w);
        if (rc) {
            NJ_ERR("%s", nj_last_error());
            req_fail(r, 503, "unavailable_error", "model could not be loaded: %s", nj_last_error());
            return;
        }
    }

    if (in->kind == WJOB_TASK) {
        run_task(w, r);
        return;
    }

    /* prompt -> tokens */
    bool tmpl_err;
    int n = tokenize_prompt(w, in, &tmpl_err);
    if (n < 0) {
        snprintf(msg, sizeof msg, "%s", nj_last_error());
        if (tmpl_err && n == -EINVAL)   /* the messages do not fit the template (e.g. roles) */
            req_fail(r, 400, "invalid_request_error", "cannot apply the chat template: %s", msg);
        else if (tmpl_err)
            req_fail(r, 500, "server_error", "cannot apply the chat template: %s (%s)", msg, nj_strerror(n));
        else
            req_fail(r, 500, "server_error", "tokenization failed: %s (%s)", msg, nj_strerror(n));
        return;
    }
    if (n == 0) {
        req_fail(r, 400, "invalid_request_error", "the prompt is empty");
        return;
    }
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
        req_fail(r, 400, "invalid_request_error",
                 "the prompt (%d tokens) plus max_tokens (%d) = %lld tokens exceeds the context size (%d tokens)",
                 n, max_tokens, (long long)n + max_tokens, w->n_ctx);
        return;
    }
    if (max_tokens < 0 && n >= w->n_ctx) {
        pthread_mutex_lock(&r->mu);
        r->ctx_numbers[0] = n;
        r->ctx_numbers[2] = w->n_ctx;
        pthread_mutex_unlock(&r->mu);
        req_fail(r, 400, "invalid_request_error",
                 "the prompt (%d tokens) leaves no room to generate in the context size (%d tokens)",
                 n, w->n_ctx);
        return;
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
                req_fail(r, 400, "invalid_request_error", "response_format: %s", msg);
            else
                req_fail(r, 500, "server_error", "response_format: %s (%s)", msg, nj_strerror(gerr));
            return;
        }
    }

    /* Accepted: from here on the answer is 200 (a stream may start).  The
     * state changes only now so that a streaming handler waiting for it
     * still gets the validation errors above as a plain error response. */
    pthread_mutex_lock(&r->mu);
    r->state = WREQ_RUNNING;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);

    /* reuse the cached prefix; at least one token must be evaluated for logits */
    int keep = 0;
    double t0 = nj_now();
    int rc = nj_session_eval_reuse(w->sess, w->toks, n, &keep);
    if (rc < 0) {
        snprintf(msg, sizeof msg, "%s", nj_last_error());
        nj_grammar_free(g);
        req_fail(r, 500, "server_error", "prompt evaluation failed: %s (%s)", msg, nj_strerror(rc));
        return;
    }
    double t1 = nj_now();
    pthread_mutex_lock(&r->mu);
    r->n_prompt = n;
    r->n_cached = keep;
    pthread_mutex_unlock(&r->mu);
    if (w->p.metrics) {
        metrics_add(w->p.metrics, NJ_M_PROMPT_TOKENS, n - keep);
        metrics_add(w->p.metrics, NJ_M_PROMPT_SECONDS, t1 - t0);
        if (keep > 0) {
            metrics_add(w->p.metrics, NJ_M_CACHE_HITS, 1);
            metrics_add(w->p.metrics, NJ_M_CACHE_HIT_TOKENS, keep);
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
        req_fail(r, 500, "server_error", "cannot create a sampler: %s", nj_strerror(err));
        return;
    }
    if (g) nj_sampler_set_grammar(smp, g);

    /* generate; under a grammar, the tokens it forces are appended without
     * sampling and evaluated together, as one batch */
    const char *finish = "length";
    int n_gen = 0, n_forced = 0;
    int32_t batch[64];
    for (;;) {
        if (atomic_load(&r->cancel)) {
            finish = NULL;
            break;
        }
        int nb = 0;
        if (g) {
            if (nj_grammar_done(g) == 2) {   /* complete, nothing may follow */
                finish = "stop";
                break;
            }
            nb = nj_grammar_forced(g, batch, NJ_MIN((int)NJ_ARRAY_LEN(batch), max_tokens - n_gen));
            if (nb < 0) {
                rc = nb;
                goto gen_fail;
            }
            n_forced += nb;
        }
        if (nb == 0) {
            int32_t id = nj_sampler_sample(smp, nj_session_logits(w->sess), w->n_vocab);
            if (id < 0) {
                rc = id;
                goto gen_fail;
            }
            if (nj_token_is_eog(w->model, id)) {   /* under a grammar: only when complete */
                finish = "stop";
                break;
            }
            batch[0] = id;
            nb = 1;
        }
        bool stopped = false;
        for (int i = 0; i < nb && !stopped; i++) {
            nj_sampler_accept(smp, batch[i]);
            if (g && (rc = nj_grammar_accept(g, batch[i])) < 0) goto gen_fail;
            n_gen++;
            int pl = token_piece(w, batch[i]);
            stopped = pl > 0 && req_append(r, w->piece, (size_t)pl);
        }
        if (stopped) {
            finish = "stop";
            break;
        }
        if (n_gen >= max_tokens) break;
        rc = nj_session_eval(w->sess, batch, nb);
        if (rc < 0) goto gen_fail;
    }
    nj_sampler_free(smp);
    nj_grammar_free(g);
    double t2 = nj_now();
    if (w->p.metrics) {
        metrics_add(w->p.metrics, NJ_M_GEN_TOKENS, n_gen);
        metrics_add(w->p.metrics, NJ_M_GEN_SECONDS, t2 - t1);
    }
    pthread_mutex_lock(&r->mu);
    r->n_gen = n_gen;
    pthread_mutex_unlock(&r->mu);
    NJ_DEBUG("request: %d prompt tokens (%d cached) in %.3f s, %d generated (%d forced by the grammar) in %.3f s, %s",
             n, keep, t1 - t0, n_gen, n_forced, t2 - t1, finish ? finish : "cancelled");
    if (finish) req_finish(r, finish);
    else req_fail(r, 503, "unavailable_error", "request cancelled");
    return;
gen_fail:
    snprintf(msg, sizeof msg, "%s", nj_last_error());
    nj_session_truncate(w->sess, 0);
    nj_sampler_free(smp);
    nj_grammar_free(g);
    req_fail(r, 500, "server_error", "generation failed: %s (%s)", msg, nj_strerror(rc));
}

/* ---- the engine thread ---- */

static void *engine_main(void *arg) {
    nj_worker *w = arg;
    if (w->p.qos >= 0) platform_set_thread_qos(w->p.qos);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        worker_req *r = queue_pop(w);
        if (!r) {
            if (w->stop) break;
            int idle = w->p.idle_unload;
            if (w->st.loaded && idle > 0) {
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
            continue;
        }
        w->current = r;
        update_queue_gauges(w);
        pthread_mutex_unlock(&w->mu);

        run(w, r);
        prefix_maybe_save(w);

        pthread_mutex_lock(&w->mu);
        w->current = NULL;
        w->last_activity = nj_now();
        update_queue_gauges(w);
        pthread_cond_broadcast(&w->idle_cv);
        worker_req_unref(r);
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
    while (w->current || w->n_queued[0] + w->n_queued[1] + w->n_queued[2] > 0) {
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
    while ((r = queue_pop(w))) {
        req_fail(r, 503, "unavailable_error", "the server is shutting down");
        worker_req_unref(r);
    }
    if (w->current) atomic_store(&w->current->cancel, true);
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

void worker_get_status(nj_worker *w, worker_status *out) {
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    out->busy = w->current != NULL;
    for (int p = 0; p < WPRIO_COUNT; p++) out->queued[p] = w->n_queued[p];
    out->idle_seconds = out->busy ? 0 : nj_now() - w->last_activity;
    out->idle_unload = w->p.idle_unload;
    pthread_mutex_unlock(&w->mu);
}

const char *worker_model_id(const nj_worker *w) { return w->model_id; }
