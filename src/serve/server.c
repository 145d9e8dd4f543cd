/*
 * server — see server.h for the threads, routes, shutdown and reload.
 *
 * Request flow.  libmicrohttpd calls on_access() several times per request:
 * once with the headers (we allocate a conn_ctx, match the route, check the
 * token and the declared body size), then with body pieces (copied into
 * conn_ctx, up to max_body), then once more with no data: the route handler
 * runs.  The generation handlers parse the body (oai.c), queue a worker_req
 * and then either wait for it to finish (plain JSON response) or wait for it
 * to start and hand MHD a content callback that turns released text into
 * server-sent events.  on_completed() frees the conn_ctx and counts the
 * request as finished for the shutdown drain.
 *
 * Invariants: every response goes through reply()/reply_stream(), which also
 * count it in /metrics under a bounded endpoint label (the route's path or
 * "other").  server.mu guards only the live settings (token, max_body...);
 * it is never held across a call into the worker or MHD.
 */
#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "analyst.h"
#include "event.h"
#include "metrics.h"
#include "oai.h"
#include "platform.h"
#include "servewatch.h"
#include "util.h"
#include "worker.h"

#define MAX_LISTENERS 2

typedef struct listener {
    struct MHD_Daemon *d;
    int  fd;
    bool is_unix;
    char desc[300];
} listener;

struct nj_server {
    pthread_mutex_t mu;             /* guards cfg's live fields */
    nj_config       cfg;
    int             argc;
    char          **argv;
    char *const    *envp;

    nj_metrics     *metrics;
    nj_worker      *worker;
    analyst        *analyst;         /* used on the engine thread only (tasks) */
    servewatch     *watch;           /* the configured event sources, or NULL */
    char            analyst_err[256];/* why there is none */
    listener        ls[MAX_LISTENERS];
    int             n_ls;
    char            sock_path[108];  /* Unix socket we created, "" if none */
    bool            tcp_public;      /* TCP bound to a non-loopback address */

    atomic_bool     stopping;
    pthread_mutex_t act_mu;          /* active request count for the drain */
    pthread_cond_t  act_cv;
    int             active;

    double          t_start;
    atomic_ullong   id_ctr;
};

typedef struct conn_ctx conn_ctx;
typedef enum MHD_Result (*route_fn)(nj_server *, conn_ctx *, struct MHD_Connection *);

typedef struct route {
    const char *method;
    const char *path;      /* also the metrics label */
    route_fn    fn;
    bool        has_body;
} route;

struct conn_ctx {
    const route *rt;
    const char  *endpoint;  /* metrics label, static */
    char        *body;
    size_t       len, cap;
    bool         too_big;
    bool         responded;
    int          status;
    double       t0;
    worker_req  *req;       /* our reference, released in on_completed */
    int          retry_after;   /* > 0: a Retry-After header on the response */
    long long    start_order;   /* > 0: an X-Start-Order header (the admission order) */
    char         method[8];
    char         url[96];
};

/* ---- responses ---- */

static void add_sched_headers(const conn_ctx *cc, struct MHD_Response *resp) {
    char v[32];
    if (cc->retry_after > 0) {
        snprintf(v, sizeof v, "%d", cc->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (cc->start_order > 0) {
        snprintf(v, sizeof v, "%lld", cc->start_order);
        MHD_add_response_header(resp, "X-Start-Order", v);
    }
}

static enum MHD_Result reply(nj_server *s, conn_ctx *cc, struct MHD_Connection *c, int status,
                             const char *ctype, const char *body, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    add_sched_headers(cc, resp);
    if (atomic_load(&s->stopping)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    cc->responded = true;
    cc->status = status;
    metrics_request(s->metrics, cc->endpoint, status);
    return ret;
}

static enum MHD_Result reply_json(nj_server *s, conn_ctx *cc, struct MHD_Connection *c, int status,
                                  char *json, size_t len) {
    if (!json) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"code\":500}}";
        return reply(s, cc, c, 500, "application/json", oom, sizeof oom - 1);
    }
    enum MHD_Result r = reply(s, cc, c, status, "application/json", json, len);
    nj_free(json);
    return r;
}

static enum MHD_Result reply_error(nj_server *s, conn_ctx *cc, struct MHD_Connection *c, int status,
                                   const char *type, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
static enum MHD_Result reply_error(nj_server *s, conn_ctx *cc, struct MHD_Connection *c, int status,
                                   const char *type, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = 0;
    char *j = oai_error_json(status, type, msg, NULL, NULL, 0, &len);
    return reply_json(s, cc, c, status, j, len);
}

/* Error of a finished worker request (context errors carry the numbers). */
static char *req_error_json(worker_req *r, size_t *len) {
    static const char *const names[] = {"n_prompt_tokens", "max_tokens", "n_ctx"};
    const char *nm[3];
    long long val[3];
    int k = 0;
    for (int i = 0; i < 3; i++)
        if (r->ctx_numbers[i] >= 0) {
            nm[k] = names[i];
            val[k++] = r->ctx_numbers[i];
        }
    return oai_error_json(r->status, r->err_type ? r->err_type : "server_error", r->err_msg, nm, val, k, len);
}

/* ---- waiting for the worker while watching the client ---- */

/* A handler waiting for its request also notices the client going away:
 * the worker writes a byte to a pipe at each signal (worker_req.notify_fd)
 * and the handler polls that pipe and the client's socket together, with
 * no timeout.  A client that closes its connection cancels its request
 * (the worker drops it before its next step and frees its slot). */
typedef struct req_watch {
    int pipe_rd, pipe_wr;   /* -1: no pipe, plain condvar waits */
    int client_fd;          /* -1: not watched */
} req_watch;

static void watch_open(req_watch *wt, worker_req *r, struct MHD_Connection *c) {
    wt->pipe_rd = wt->pipe_wr = wt->client_fd = -1;
    int p[2];
    if (pipe(p) != 0) return;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    }
    wt->pipe_rd = p[0];
    wt->pipe_wr = p[1];
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    wt->client_fd = ci ? (int)ci->connect_fd : -1;
    pthread_mutex_lock(&r->mu);
    r->notify_fd = wt->pipe_wr;
    pthread_mutex_unlock(&r->mu);
}

static void watch_close(req_watch *wt, worker_req *r) {
    if (wt->pipe_rd < 0) return;
    pthread_mutex_lock(&r->mu);
    r->notify_fd = -1;
    pthread_mutex_unlock(&r->mu);
    close(wt->pipe_rd);
    close(wt->pipe_wr);
    wt->pipe_rd = wt->pipe_wr = -1;
}

#ifdef POLLRDHUP
#define NJ_POLLRDHUP POLLRDHUP
#else
#define NJ_POLLRDHUP 0
#endif

/* true if the client closed its side (or the socket failed). */
static bool client_gone(int fd, short revents) {
    if (revents & (POLLHUP | POLLERR | NJ_POLLRDHUP)) return true;
    char b;
    ssize_t k = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

typedef bool (*req_ready_fn)(const worker_req *r, size_t arg);
static bool ready_started(const worker_req *r, size_t arg) { (void)arg; return r->state != WREQ_QUEUED; }
static bool ready_done(const worker_req *r, size_t arg) { (void)arg; return r->state == WREQ_DONE; }
static bool ready_text(const worker_req *r, size_t sent) { return r->released != sent || r->state == WREQ_DONE; }

/* Wait until ready(r, arg) holds (checked under r->mu, which is held on a
 * true return) or the client hangs up (false, r->mu not held, the request
 * cancelled). */
static bool watch_wait_locked(req_watch *wt, worker_req *r, req_ready_fn ready, size_t arg) {
    for (;;) {
        pthread_mutex_lock(&r->mu);
        if (ready(r, arg)) return true;
        if (wt->pipe_rd < 0) {
            while (!ready(r, arg)) pthread_cond_wait(&r->cv, &r->mu);
            return true;
        }
        pthread_mutex_unlock(&r->mu);
        struct pollfd pf[2] = {{.fd = wt->pipe_rd, .events = POLLIN},
                               {.fd = wt->client_fd, .events = POLLIN | NJ_POLLRDHUP}};
        if (poll(pf, wt->client_fd >= 0 ? 2 : 1, -1) < 0) continue;   /* EINTR */
        if (pf[0].revents) {
            char buf[64];
            while (read(wt->pipe_rd, buf, sizeof buf) > 0) {}
        }
        if (wt->client_fd >= 0 && pf[1].revents) {
            if (client_gone(wt->client_fd, pf[1].revents)) {
                atomic_store(&r->cancel, true);
                return false;
            }
            wt->client_fd = -1;   /* bytes of a pipelined request: stop watching */
        }
    }
}

/* ---- streaming ---- */

typedef struct stream_ctx {
    nj_server  *s;
    worker_req *r;
    int         kind;
    oai_ident   ident;
    size_t      sent;          /* bytes of r->text already sent as events */
    bool        role_sent, finished, include_usage;
    char       *pend;          /* events built but not yet handed to MHD */
    size_t      plen, poff;
    req_watch   wt;            /* the request's pipe and the client's socket */
} stream_ctx;

static bool pend_append(stream_ctx *sc, char *s, size_t n) {
    if (!s) return false;
    char *p = nj_realloc(sc->pend, sc->plen + n);
    if (!p) {
        nj_free(s);
        return false;
    }
    memcpy(p + sc->plen, s, n);
    sc->pend = p;
    sc->plen += n;
    nj_free(s);
    return true;
}

/* Wait for new text or the end, and turn it into events in sc->pend. */
static bool stream_fill(stream_ctx *sc) {
    worker_req *r = sc->r;
    if (!watch_wait_locked(&sc->wt, r, ready_text, sc->sent)) return false;
    size_t n = r->released - sc->sent;
    char *delta = nj_malloc(n + 1);
    if (delta && n) memcpy(delta, r->text + sc->sent, n);   /* no text yet: r->text may be NULL */
    sc->sent = r->released;
    bool done = r->state == WREQ_DONE;
    int status = r->status;
    const char *finish = r->finish;
    oai_usage u = {r->n_prompt, r->n_gen, r->n_cached};
    size_t elen = 0;
    char *err = done && status != 200 ? req_error_json(r, &elen) : NULL;
    pthread_mutex_unlock(&r->mu);
    if (!delta) {
        nj_free(err);
        return false;
    }

    bool ok = true;
    size_t len = 0;
    char *ev;
    bool chat = sc->kind == OAI_CHAT;
    if (n || (chat && !sc->role_sent)) {
        ev = oai_chunk_sse(sc->kind, &sc->ident, delta, n, chat && !sc->role_sent, NULL, NULL, &len);
        ok = pend_append(sc, ev, len);
        sc->role_sent = true;
    }
    nj_free(delta);
    if (ok && done) {
        if (status != 200) {
            /* an error after the stream started: one error event */
            size_t el = err ? elen : 2;
            ev = nj_malloc(el + 9);
            if (ev) {
                memcpy(ev, "data: ", 6);
                memcpy(ev + 6, err ? err : "{}", el);
                memcpy(ev + 6 + el, "\n\n", 2);
            }
            ok = pend_append(sc, ev, el + 8);
        } else {
            ev = oai_chunk_sse(sc->kind, &sc->ident, "", 0, false, finish, NULL, &len);
            ok = pend_append(sc, ev, len);
            if (ok && sc->include_usage) {
                ev = oai_chunk_sse(sc->kind, &sc->ident, NULL, 0, false, NULL, &u, &len);
                ok = pend_append(sc, ev, len);
            }
        }
        static const char done_ev[] = "data: [DONE]\n\n";
        ev = nj_strdup(done_ev);
        if (ok) ok = pend_append(sc, ev, sizeof done_ev - 1);
        else nj_free(ev);
        sc->finished = true;
    }
    nj_free(err);
    return ok;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    while (sc->poff == sc->plen) {
        if (sc->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        nj_free(sc->pend);
        sc->pend = NULL;
        sc->plen = sc->poff = 0;
        if (!stream_fill(sc)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = NJ_MIN(max, sc->plen - sc->poff);
    memcpy(buf, sc->pend + sc->poff, n);
    sc->poff += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream_ctx *sc = cls;
    atomic_store(&sc->r->cancel, true);    /* no-op if it already finished */
    watch_close(&sc->wt, sc->r);
    worker_req_unref(sc->r);
    nj_free(sc->pend);
    nj_free(sc);
}

/* ---- route handlers ---- */

static void make_ident(nj_server *s, int kind, oai_ident *id) {
    unsigned long long n = atomic_fetch_add(&s->id_ctr, 1);
    snprintf(id->id, sizeof id->id, "%s%016llx", kind == OAI_CHAT ? "chatcmpl-" : "cmpl-", n);
    id->created = (long long)time(NULL);
    id->model = worker_model_id(s->worker);
}

static void oai_owner_release(void *owner) {
    oai_request_free(owner);
    nj_free(owner);
}

/* The OpenAI request as a worker job: the job borrows the parsed request's
 * strings and owns the request (released with the job).  Takes *in. */
static int job_from_oai(oai_request *in, worker_job *job) {
    oai_request *own = nj_malloc(sizeof *own);
    if (!own) {
        oai_request_free(in);
        return -ENOMEM;
    }
    *own = *in;
    memset(in, 0, sizeof *in);
    memset(job, 0, sizeof *job);
    job->kind = own->kind == OAI_CHAT ? WJOB_CHAT : WJOB_COMPLETION;
    job->priority = own->priority;   /* OAI_PRIO_* numbers the WPRIO_* classes */
    job->deadline_ms = own->deadline_ms;
    job->msgs = own->msgs;
    job->n_msgs = own->n_msgs;
    job->prompt = own->prompt;
    job->prompt_len = own->prompt_len;
    job->max_tokens = own->max_tokens;
    job->has_temperature = own->has_temperature;
    job->has_top_p = own->has_top_p;
    job->has_top_k = own->has_top_k;
    job->has_min_p = own->has_min_p;
    job->has_repeat_penalty = own->has_repeat_penalty;
    job->has_seed = own->has_seed;
    job->temperature = own->temperature;
    job->top_p = own->top_p;
    job->top_k = own->top_k;
    job->min_p = own->min_p;
    job->repeat_penalty = own->repeat_penalty;
    job->seed = own->seed;
    for (int i = 0; i < own->n_stop && i < WORKER_MAX_STOP; i++) {
        job->stop[i] = own->stop[i];
        job->stop_len[i] = own->stop_len[i];
        job->n_stop = i + 1;
    }
    job->schema = own->schema;
    job->json_object = own->json_object;
    job->owner = own;
    job->release = oai_owner_release;
    return 0;
}

/* X-Priority and X-Deadline-Ms: the class and deadline for a client that
 * cannot put them in the body (the body's fields win).  -EINVAL with a
 * sentence in msg for a bad value. */
static int sched_headers(struct MHD_Connection *c, int *prio, bool has_prio, long long *deadline_ms,
                         char *msg, size_t cap) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Priority");
    if (h && !has_prio) {
        int k = oai_priority_parse(h);
        if (k < 0) {
            snprintf(msg, cap, "X-Priority must be critical, high, normal or bulk (or low)");
            return -EINVAL;
        }
        *prio = k;
    }
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Deadline-Ms");
    if (h && *deadline_ms <= 0) {
        char *end;
        errno = 0;
        long long v = strtoll(h, &end, 10);
        if (errno || end == h || *end || v < 1 || v > OAI_MAX_DEADLINE_MS) {
            snprintf(msg, cap, "X-Deadline-Ms must be an integer from 1 to %lld", OAI_MAX_DEADLINE_MS);
            return -EINVAL;
        }
        *deadline_ms = v;
    }
    return 0;
}

/* Queue r; on refusal the error response (503, with Retry-After when the
 * queue is full).  Returns true if queued. */
/* Hand a new request r (NULL: its allocation failed) to the worker,
 * watching the client's connection through wt while it runs.  True: r is
 * queued and wt open (the caller waits, then closes wt).  False: the
 * error reply is in *ret, wt is closed and r belongs to cc (freed with the
 * connection). */
static bool submit_watched(nj_server *s, conn_ctx *cc, struct MHD_Connection *c, worker_req *r,
                           req_watch *wt, enum MHD_Result *ret) {
    if (!r) {
        *ret = reply_error(s, cc, c, 500, "server_error", "out of memory");
        return false;
    }
    cc->req = r;
    watch_open(wt, r, c);
    int rc = worker_submit(s->worker, r);
    if (rc == 0) return true;
    watch_close(wt, r);
    if (rc == -EAGAIN) {
        cc->retry_after = worker_retry_after(s->worker);
        *ret = reply_error(s, cc, c, 503, "unavailable_error", "the request queue is full; retry after %d s",
                           cc->retry_after);
    } else {
        *ret = reply_error(s, cc, c, 503, "unavailable_error", "the server is shutting down");
    }
    return false;
}

static enum MHD_Result h_generate(nj_server *s, conn_ctx *cc, struct MHD_Connection *c, int kind) {
    oai_request in;
    char msg[512];
    int rc = oai_parse(kind, cc->body ? cc->body : "", cc->len, &in, msg, sizeof msg);
    if (rc == -ENOMEM) return reply_error(s, cc, c, 500, "server_error", "out of memory");
    if (rc) return reply_error(s, cc, c, 400, "invalid_request_error", "%s", msg);
    if ((rc = sched_headers(c, &in.priority, in.has_priority, &in.deadline_ms, msg, sizeof msg))) {
        oai_request_free(&in);
        return reply_error(s, cc, c, 400, "invalid_request_error", "%s", msg);
    }
    bool stream = in.stream;
    bool include_usage = in.include_usage;
    worker_job job;
    int err = job_from_oai(&in, &job);
    worker_req *r = err ? NULL : worker_req_new(&job, &err);
    req_watch wt;
    enum MHD_Result ret;
    if (!submit_watched(s, cc, c, r, &wt, &ret)) return ret;

    oai_ident ident;
    make_ident(s, kind, &ident);
    if (!stream) {
        if (!watch_wait_locked(&wt, r, ready_done, 0)) {
            watch_close(&wt, r);
            return reply_error(s, cc, c, 503, "unavailable_error", "the client closed the connection");
        }
        size_t len = 0;
        char *j;
        int status = r->status;
        cc->start_order = r->start_order;
        if (status == 200) {
            oai_usage u = {r->n_prompt, r->n_gen, r->n_cached};
            j = oai_response_json(kind, &ident, r->text ? r->text : "", r->len, r->finish, &u, &len);
        } else {
            j = req_error_json(r, &len);
        }
        pthread_mutex_unlock(&r->mu);
        watch_close(&wt, r);
        return reply_json(s, cc, c, status, j, len);
    }

    if (!watch_wait_locked(&wt, r, ready_started, 0)) {
        watch_close(&wt, r);
        return reply_error(s, cc, c, 503, "unavailable_error", "the client closed the connection");
    }
    cc->start_order = r->start_order;
    if (r->state == WREQ_DONE) {
        int status = r->status;
        size_t len = 0;
        char *j = status != 200 ? req_error_json(r, &len) : NULL;
        pthread_mutex_unlock(&r->mu);
        if (j) {
            watch_close(&wt, r);
            return reply_json(s, cc, c, status, j, len);
        }
    } else {
        pthread_mutex_unlock(&r->mu);
    }
    stream_ctx *sc = nj_calloc(1, sizeof *sc);
    if (!sc) {
        watch_close(&wt, r);
        return reply_error(s, cc, c, 500, "server_error", "out of memory");
    }
    sc->s = s;
    sc->r = r;
    sc->kind = kind;
    sc->include_usage = include_usage;
    sc->ident = ident;
    sc->wt = wt;                   /* the stream owns the watch from here */
    atomic_fetch_add(&r->refs, 1);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                  stream_read, sc, stream_free);
    if (!resp) {
        stream_free(sc);
        return reply_error(s, cc, c, 500, "server_error", "out of memory");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    add_sched_headers(cc, resp);
    ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    cc->responded = true;
    cc->status = 200;
    metrics_request(s->metrics, cc->endpoint, 200);
    return ret;
}

static enum MHD_Result h_chat(nj_server *s, conn_ctx *cc, struct MHD_Connection *c) {
    return h_generate(s, cc, c, OAI_CHAT);
}

static enum MHD_Result h_completions(nj_server *s, conn_ctx *cc, struct MHD_Connection *c) {
    return h_generate(s, cc, c, OAI_COMPLETION);
}

/* ---- /v1/analyze ---- */

typedef struct analyze_job {
    analyst    *a;
    json_t     *events;     /* array of validated canonical events */
    bool        single;     /* answer with the verdict object itself */
    nj_metrics *metrics;
} analyze_job;

static void analyze_release(void *p) {
    analyze_job *j = p;
    json_decref(j->events);
    nj_free(j);
}

/* Engine thread: judge every event in order. */
static int analyze_task(void *arg, nj_model *m, nj_session *sess, char **out, size_t *len) {
    analyze_job *j = arg;
    analyst_stats before, after;
    analyst_get_stats(j->a, &before);
    json_t *verdicts = json_array();
    if (!verdicts) return -ENOMEM;
    size_t i;
    json_t *ev;
    int rc = 0;
    json_array_foreach(j->events, i, ev) {
        json_t *v = NULL;
        rc = analyst_judge(j->a, m, sess, ev, &v);
        if (rc) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", nj_last_error());
            nj_set_error("events[%zu]: %s", i, msg);
            break;
        }
        json_array_append_new(verdicts, v);
    }
    analyst_get_stats(j->a, &after);
    if (j->metrics) {
        metrics_add(j->metrics, NJ_M_VERDICTS_RULE, (double)(after.by_rule - before.by_rule));
        metrics_add(j->metrics, NJ_M_VERDICTS_MODEL, (double)(after.by_model - before.by_model));
        metrics_add(j->metrics, NJ_M_VERDICTS_CACHE, (double)(after.by_cache - before.by_cache));
        metrics_add(j->metrics, NJ_M_VCACHE_LOOKUPS, (double)(after.cache_lookups - before.cache_lookups));
    }
    if (!rc) {
        json_t *doc = j->single ? json_incref(json_array_get(verdicts, 0)) : json_pack("{s:O}", "verdicts", verdicts);
        *out = doc ? event_json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
        json_decref(doc);
        if (!*out) rc = -ENOMEM;
        else *len = strlen(*out);
    }
    json_decref(verdicts);
    return rc;
}

/* POST /v1/analyze: one canonical event, or {"events": [...]}; the
 * verdict, or {"verdicts": [...]} in the same order.  Every event is
 * validated before any is judged: a bad one is a 400 naming it and its
 * field; more than analyze_batch events is a 413. */
static enum MHD_Result h_analyze(nj_server *s, conn_ctx *cc, struct MHD_Connection *c) {
    if (!s->analyst)
        return reply_error(s, cc, c, 503, "unavailable_error", "the analyst is not available: %s", s->analyst_err);
    json_error_t je;
    int perr = 0;
    json_t *body = event_json_parse(cc->body ? cc->body : "", cc->len, 0, &je, &perr);
    if (!body && perr == -ENOMEM) return reply_error(s, cc, c, 500, "server_error", "out of memory");
    if (!json_is_object(body)) {
        json_decref(body);
        return reply_error(s, cc, c, 400, "invalid_request_error",
                           "the body must be a JSON object: a canonical event or {\"events\": [...]}%s%s",
                           je.text[0] ? "; " : "", je.text);
    }
    json_t *events = json_object_get(body, "events");
    bool single = events == NULL;
    if (single) {
        events = json_pack("[O]", body);
    } else if (!json_is_array(events) || json_array_size(events) == 0) {
        json_decref(body);
        return reply_error(s, cc, c, 400, "invalid_request_error", "events: expected a non-empty array of canonical events");
    } else {
        json_incref(events);
    }
    json_decref(body);
    if (!events) return reply_error(s, cc, c, 500, "server_error", "out of memory");
    pthread_mutex_lock(&s->mu);
    size_t limit = (size_t)s->cfg.analyze_batch;
    pthread_mutex_unlock(&s->mu);
    size_t n = json_array_size(events);
    if (n > limit) {
        json_decref(events);
        return reply_error(s, cc, c, 413, "invalid_request_error",
                           "%zu events in one request; the limit is %zu (analyze_batch)", n, limit);
    }
    for (size_t i = 0; i < n; i++) {
        if (event_validate(json_array_get(events, i)) != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nj_last_error());
            json_decref(events);
            if (single) return reply_error(s, cc, c, 400, "invalid_request_error", "%s", msg);
            return reply_error(s, cc, c, 400, "invalid_request_error", "events[%zu]: %s", i, msg);
        }
    }
    analyze_job *aj = nj_calloc(1, sizeof *aj);
    if (!aj) {
        json_decref(events);
        return reply_error(s, cc, c, 500, "server_error", "out of memory");
    }
    aj->a = s->analyst;
    aj->events = events;
    aj->single = single;
    aj->metrics = s->metrics;
    worker_job job = {.kind = WJOB_TASK, .priority = single ? WPRIO_HIGH : WPRIO_NORMAL,
                      .task = analyze_task, .task_arg = aj, .owner = aj, .release = analyze_release};
    char msg[160];
    if (sched_headers(c, &job.priority, false, &job.deadline_ms, msg, sizeof msg)) {
        analyze_release(aj);
        return reply_error(s, cc, c, 400, "invalid_request_error", "%s", msg);
    }
    int err = 0;
    worker_req *r = worker_req_new(&job, &err);
    req_watch wt;
    enum MHD_Result ret;
    if (!submit_watched(s, cc, c, r, &wt, &ret)) return ret;
    if (!watch_wait_locked(&wt, r, ready_done, 0)) {
        watch_close(&wt, r);
        return reply_error(s, cc, c, 503, "unavailable_error", "the client closed the connection");
    }
    cc->start_order = r->start_order;
    int status = r->status;
    size_t len = 0;
    char *j = NULL;
    if (status == 200) {
        j = nj_malloc(r->len + 1);
        if (j) {
            if (r->len) memcpy(j, r->text, r->len);
            j[r->len] = 0;
            len = r->len;
        }
    } else {
        j = req_error_json(r, &len);
    }
    pthread_mutex_unlock(&r->mu);
    watch_close(&wt, r);
    return reply_json(s, cc, c, status, j, len);
}

static enum MHD_Result h_models(nj_server *s, conn_ctx *cc, struct MHD_Connection *c) {
    size_t len = 0;
    char *j = oai_models_json(worker_model_id(s->worker), (long long)time(NULL), &len);
    return reply_json(s, cc, c, 200, j, len);
}

static enum MHD_Result h_health(nj_server *s, conn_ctx *cc, struct MHD_Connection *c) {
    worker_status st;
    worker_get_status(s->worker, &st);
    pthread_mutex_lock(&s->mu);
    int threads = s->cfg.threads, nice_req = s->cfg.nice, qos = s->cfg.qos;
    pthread_mutex_unlock(&s->mu);
    static const char *const qos_names[] = {"none", "utility", "background"};
    json_t *notes = json_array();
    if (notes && st.note[0] && json_array_append_new(notes, json_string(st.note))) {
        json_decref(notes);
        notes = NULL;   /* json_pack below fails on it: a 500, not a note left out */
    }
    json_t *model = json_pack("{s:s,s:s,s:b,s:i,s:i,s:b,s:I,s:I,s:f}",
                              "id", worker_model_id(s->worker), "name", st.model_name,
                              "loaded", st.loaded, "n_ctx", st.n_ctx, "ctx_requested", st.ctx_requested,
                              "ctx_shrunk", st.ctx_shrunk, "mem_estimate_bytes", (json_int_t)st.mem_estimate,
                              "mem_budget_bytes", (json_int_t)st.mem_budget,
                              "last_load_seconds", st.last_load_seconds);
    json_t *queue = json_object();
    for (int p = 0; p < WPRIO_COUNT; p++) json_object_set_new(queue, oai_priority_name(p), json_integer(st.queued[p]));
    /* slots: what each session is doing (phase: free, prompt, generating, task) */
    static const char *const phases[] = {"free", "prompt", "generating", "task"};
    json_t *slots = json_array();
    for (int i = 0; i < st.n_slots && i < WORKER_MAX_SLOTS; i++) {
        const worker_slot_status *ss = &st.slot[i];
        json_array_append_new(slots, json_pack("{s:s,s:s?,s:i,s:i,s:i}", "phase", phases[ss->phase & 3],
                                               "priority", ss->busy ? oai_priority_name(ss->prio) : NULL,
                                               "prompt_tokens", ss->n_prompt, "prompt_done", ss->n_done,
                                               "generated", ss->n_gen));
    }
    json_t *sched = json_pack("{s:i,s:i,s:i,s:i,s:o}", "parallel", st.n_slots, "slots_busy", st.slots_busy,
                              "chunk", st.chunk, "aging_ms", st.aging_ms, "slots", slots);
    json_t *root = json_pack("{s:s,s:o,s:i,s:i,s:i,s:s,s:o,s:b,s:f,s:i,s:f,s:I,s:o,s:o}",
                             "status", atomic_load(&s->stopping) ? "stopping" : "ok",
                             "model", model, "threads", threads, "nice", platform_get_nice(),
                             "nice_requested", nice_req, "qos", qos_names[qos + 1],
                             "queue", queue, "busy", st.busy,
                             "idle_seconds", st.idle_seconds, "idle_unload_seconds", st.idle_unload,
                             "uptime_seconds", nj_now() - s->t_start,
                             "rss_bytes", (json_int_t)platform_rss_bytes(), "notes", notes, "scheduler", sched);
    char *j = root ? event_json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return reply_json(s, cc, c, 200, j, j ? strlen(j) : 0);
}

static enum MHD_Result h_metrics(nj_server *s, conn_ctx *cc, struct MHD_Connection *c) {
    metrics_set(s->metrics, NJ_M_RSS_BYTES, (double)platform_rss_bytes());
    size_t len = 0;
    char *t = metrics_render(s->metrics, &len);
    if (!t) return reply_error(s, cc, c, 500, "server_error", "out of memory");
    enum MHD_Result r = reply(s, cc, c, 200, "text/plain; version=0.0.4", t, len);
    nj_free(t);
    return r;
}

/* The route table. */
static const route routes[] = {
    {"POST", "/v1/analyze",          h_analyze,     true},
    {"POST", "/v1/chat/completions", h_chat,        true},
    {"POST", "/v1/completions",      h_completions, true},
    {"GET",  "/v1/models",           h_models,      false},
    {"GET",  "/health",              h_health,      false},
    {"GET",  "/metrics",             h_metrics,     false},
};

/* ---- access handler ---- */

/* Constant-time comparison of the Authorization header with the token. */
static bool authorized(nj_server *s, struct MHD_Connection *c) {
    bool ok = true;
    pthread_mutex_lock(&s->mu);
    const char *tok = s->cfg.token;
    if (tok) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncmp(h, "Bearer ", 7)) ok = false;
        else {
            const char *g = h + 7;
            size_t gl = strlen(g), tl = strlen(tok);
            unsigned char diff = gl != tl;
            for (size_t i = 0; i < tl; i++) diff |= (unsigned char)(tok[i] ^ g[i < gl ? i : 0]);
            ok = diff == 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* Whether the request came over TCP (the Unix socket's peers are the
 * user's own processes; TCP's may include a web page in a local browser). */
static bool over_tcp(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci && ci->client_addr && (ci->client_addr->sa_family == AF_INET || ci->client_addr->sa_family == AF_INET6);
}

/* Browser guards for TCP without a token.  A web page the user opens can
 * send requests to 127.0.0.1: (1) a cross-site "simple" POST carries a
 * form or text content type (application/json needs a CORS preflight,
 * which no route answers), so TCP bodies must be declared JSON; (2) DNS
 * rebinding makes a page's own origin resolve to 127.0.0.1, so the Host
 * header must name a loopback address (or the configured host).  With a
 * token, the token decides.  0, or the HTTP status to refuse with (msg
 * filled). */
static int browser_guard(nj_server *s, struct MHD_Connection *c, const route *rt, char *msg, size_t cap) {
    if (!over_tcp(c)) return 0;
    pthread_mutex_lock(&s->mu);
    bool token = s->cfg.token != NULL;
    char host_cfg[128];
    snprintf(host_cfg, sizeof host_cfg, "%s", s->cfg.host ? s->cfg.host : "127.0.0.1");
    pthread_mutex_unlock(&s->mu);
    if (token) return 0;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (h) {
        /* the name without a port: "[::1]:8080" -> "::1", "localhost:8080" -> "localhost" */
        char name[256];
        size_t n = strlen(h);
        if (h[0] == '[') {
            const char *e = strchr(h, ']');
            n = e ? (size_t)(e - h - 1) : 0;
            h++;
        } else {
            const char *colon = strchr(h, ':');
            if (colon && !strchr(colon + 1, ':')) n = (size_t)(colon - h);
        }
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, h, n);
        name[n] = 0;
        if (strcasecmp(name, "localhost") && !config_host_is_loopback(name) && strcasecmp(name, host_cfg)) {
            snprintf(msg, cap, "Host '%.200s' is not a loopback name; without a token only requests for "
                     "localhost, 127.0.0.1 or ::1 are served over TCP (a guard against DNS rebinding)", name);
            return 403;
        }
    }
    if (rt && rt->has_body) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        size_t jl = strlen("application/json");
        if (!ct || strncasecmp(ct, "application/json", jl) || (ct[jl] && ct[jl] != ';' && ct[jl] != ' ')) {
            snprintf(msg, cap, "over TCP a request body must be sent as Content-Type: application/json (got %.100s)",
                     ct ? ct : "none");
            return 415;
        }
    }
    return 0;
}

static uint64_t live_max_body(nj_server *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t m = s->cfg.max_body;
    pthread_mutex_unlock(&s->mu);
    return m;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    nj_server *s = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = nj_calloc(1, sizeof *cc);
        if (!cc) return MHD_NO;
        *con_cls = cc;
        cc->t0 = nj_now();
        snprintf(cc->method, sizeof cc->method, "%s", method);
        snprintf(cc->url, sizeof cc->url, "%s", url);
        pthread_mutex_lock(&s->act_mu);
        s->active++;
        pthread_mutex_unlock(&s->act_mu);

        const route *path_match = NULL;
        for (size_t i = 0; i < NJ_ARRAY_LEN(routes); i++)
            if (!strcmp(url, routes[i].path)) {
                path_match = &routes[i];
                if (!strcmp(method, routes[i].method)) cc->rt = &routes[i];
            }
        cc->endpoint = path_match ? path_match->path : "other";
        if (atomic_load(&s->stopping))
            return reply_error(s, cc, c, 503, "unavailable_error", "the server is shutting down");
        if (!authorized(s, c))
            return reply_error(s, cc, c, 401, "authentication_error",
                               "missing or wrong bearer token (send Authorization: Bearer TOKEN)");
        if (!path_match)
            return reply_error(s, cc, c, 404, "not_found_error", "no route for %s %s", method, url);
        if (!cc->rt)
            return reply_error(s, cc, c, 405, "invalid_request_error", "method %s is not allowed on %s (use %s)",
                               method, url, path_match->method);
        char gmsg[400];
        int g = browser_guard(s, c, cc->rt, gmsg, sizeof gmsg);
        if (g) return reply_error(s, cc, c, g, g == 403 ? "permission_error" : "invalid_request_error", "%s", gmsg);
        if (cc->rt->has_body) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            uint64_t maxb = live_max_body(s);
            if (cl && strtoull(cl, NULL, 10) > maxb)
                return reply_error(s, cc, c, 413, "invalid_request_error",
                                   "request body of %s bytes exceeds the limit of %llu bytes (--max-body)",
                                   cl, (unsigned long long)maxb);
        }
        return MHD_YES;
    }
    if (cc->responded) {               /* early error: discard the rest of the body */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cc->too_big) return MHD_YES;
        uint64_t maxb = live_max_body(s);
        if (cc->len + n > maxb) {
            cc->too_big = true;
            nj_free(cc->body);
            cc->body = NULL;
            cc->len = cc->cap = 0;
            return MHD_YES;
        }
        if (cc->len + n + 1 > cc->cap) {
            size_t cap = NJ_MAX(cc->cap * 2, cc->len + n + 1);
            char *b = nj_realloc(cc->body, cap);
            if (!b) return MHD_NO;
            cc->body = b;
            cc->cap = cap;
        }
        memcpy(cc->body + cc->len, upload, n);
        cc->len += n;
        cc->body[cc->len] = 0;
        return MHD_YES;
    }
    if (cc->too_big) {
        uint64_t maxb = live_max_body(s);
        return reply_error(s, cc, c, 413, "invalid_request_error",
                           "request body exceeds the limit of %llu bytes (--max-body)", (unsigned long long)maxb);
    }
    return cc->rt->fn(s, cc, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    nj_server *s = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) return;
    *con_cls = NULL;
    NJ_DEBUG("%s %s %d %.1f ms%s", cc->method, cc->url, cc->status, (nj_now() - cc->t0) * 1e3,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    if (cc->req) {
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) atomic_store(&cc->req->cancel, true);
        worker_req_unref(cc->req);
    }
    nj_free(cc->body);
    nj_free(cc);
    pthread_mutex_lock(&s->act_mu);
    s->active--;
    pthread_cond_broadcast(&s->act_cv);
    pthread_mutex_unlock(&s->act_mu);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n') buf[--n] = 0;
    NJ_DEBUG("http: %s", buf);
}

/* ---- listeners ---- */

static int make_dir(const char *path) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST) return 0;
    return -errno;
}

/* Create, bind (mode 0600) and listen on a Unix socket at path. */
static int open_unix(const char *path, int *out) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path)
        return nj_fail(-ENAMETOOLONG, "socket path %s is longer than %zu bytes", path, sizeof a.sun_path - 1);
    memcpy(a.sun_path, path, strlen(path) + 1);

    char dir[sizeof a.sun_path];
    memcpy(dir, a.sun_path, sizeof dir);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        int rc = make_dir(dir);
        if (rc) return nj_fail(rc, "cannot create the socket directory %s: %s", dir, strerror(-rc));
    }

    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) return nj_fail(-EEXIST, "%s exists and is not a socket", path);
        int probe = socket(AF_UNIX, SOCK_STREAM, 0);
        if (probe >= 0) {
            int live = connect(probe, (struct sockaddr *)&a, sizeof a) == 0;
            close(probe);
            if (live) return nj_fail(-EADDRINUSE, "another server is listening on %s", path);
        }
        unlink(path);    /* stale socket of a previous run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return nj_fail(-errno, "socket: %s", strerror(errno));
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    umask(old);
    if (rc < 0) {
        close(fd);
        return nj_fail(-e, "cannot bind %s: %s", path, strerror(e));
    }
    chmod(path, 0600);
    if (listen(fd, 64) < 0) {
        e = errno;
        close(fd);
        unlink(path);
        return nj_fail(-e, "listen on %s: %s", path, strerror(e));
    }
    *out = fd;
    return 0;
}

static int open_tcp(const char *host, int port, int *out) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (strcmp(host, "localhost") ? AI_NUMERICHOST : 0);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g) return nj_fail(-EINVAL, "bad address %s: %s", host, gai_strerror(g));
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return nj_fail(-errno, "socket: %s", strerror(errno));
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        return nj_fail(-e, "cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    freeaddrinfo(res);
    *out = fd;
    return 0;
}

static int start_listener(nj_server *s, int fd, bool is_unix, const char *desc) {
    /* Thread per connection + poll(): every MHD thread sleeps in poll()
     * without a timeout when there is nothing to do.  CONNECTION_TIMEOUT 0
     * keeps it that way for kept-alive connections (a timeout would make
     * their threads wake to check it). */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_END);
    if (!d) {
        close(fd);
        return nj_fail(-EIO, "cannot start the HTTP daemon on %s", desc);
    }
    listener *l = &s->ls[s->n_ls++];
    l->d = d;
    l->fd = fd;
    l->is_unix = is_unix;
    snprintf(l->desc, sizeof l->desc, "%s", desc);
    NJ_INFO("listening on %s", desc);
    return 0;
}

static int open_listeners(nj_server *s) {
    const nj_config *c = &s->cfg;
    int fd = -1, rc;
    char desc[300];
    if (!c->socket_path || strcmp(c->socket_path, "none")) {
        char path[256];
        if (c->socket_path) snprintf(path, sizeof path, "%s", c->socket_path);
        else {
            const char *dir = platform_runtime_dir();
            if (!dir || !*dir) return nj_fail(-ENOENT, "no runtime directory for the socket; give --socket PATH");
            rc = make_dir(dir);
            if (rc) return nj_fail(rc, "cannot create %s: %s", dir, strerror(-rc));
            snprintf(path, sizeof path, "%s/nightjar.sock", dir);
        }
        if ((rc = open_unix(path, &fd))) return rc;
        memcpy(s->sock_path, path, strlen(path) + 1);   /* open_unix checked the length */
        snprintf(desc, sizeof desc, "unix:%s", path);
        if ((rc = start_listener(s, fd, true, desc))) return rc;
    }
    if (c->port) {
        const char *host = c->host ? c->host : "127.0.0.1";
        if ((rc = open_tcp(host, c->port, &fd))) return rc;
        s->tcp_public = !config_host_is_loopback(host);
        snprintf(desc, sizeof desc, "http://%s%s%s:%d", strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", c->port);
        if ((rc = start_listener(s, fd, false, desc))) return rc;
    }
    return 0;
}

/* ---- life cycle ---- */

int server_block_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return rc ? -rc : 0;
}

nj_server *server_new(const nj_config *cfg, int argc, char **argv, char *const *envp, int *err) {
    int rc = server_block_signals();
    nj_server *s = NULL;
    if (rc) goto err;
    rc = -ENOMEM;
    s = nj_calloc(1, sizeof *s);
    if (!s) goto err;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->act_mu, NULL);
    pthread_cond_init(&s->act_cv, NULL);
    s->argc = argc;
    s->argv = argv;
    s->envp = envp;
    s->t_start = nj_now();
    atomic_init(&s->stopping, false);
    atomic_init(&s->id_ctr, ((unsigned long long)time(NULL) & 0xffffffffull) << 24);
    config_defaults(&s->cfg);
    for (int k = 0; k < NJ_CFG_NKEYS; k++)
        if ((rc = config_copy_key(&s->cfg, cfg, k))) goto err;
    oai_init();
    nj_log_set_level(s->cfg.log_level);

    /* The process will hold event text: no core file if it crashes. */
    rc = platform_no_core_dumps();
    if (rc) NJ_WARN("cannot turn core dumps off: %s", nj_strerror(rc));
    /* Scheduling first: threads created from here on inherit it. */
    rc = platform_set_nice(s->cfg.nice);
    if (rc) NJ_WARN("cannot set nice level %d: %s", s->cfg.nice, nj_strerror(rc));
    if (s->cfg.qos >= 0) {
        rc = platform_set_thread_qos(s->cfg.qos);
        if (rc == -ENOSYS) NJ_INFO("qos is a macOS setting; ignored on this system");
        else if (rc) NJ_WARN("cannot set the QoS class: %s", nj_strerror(rc));
    }

    if (!(s->metrics = metrics_new(&rc))) goto err;
    /* prefix cache directory: the setting, else <cache dir>/prefix; "off" or "": none */
    char prefix_dir[4096];
    const char *pc = s->cfg.prefix_cache;
    if (pc && (!*pc || !strcmp(pc, "off") || !strcmp(pc, "none"))) prefix_dir[0] = 0;
    else if (pc) snprintf(prefix_dir, sizeof prefix_dir, "%s", pc);
    else snprintf(prefix_dir, sizeof prefix_dir, "%s/prefix", platform_cache_dir());
    worker_params wp = {
        .model_path = s->cfg.model, .threads = s->cfg.threads, .ctx_size = s->cfg.ctx_size,
        .kv_type = s->cfg.kv_type, .mem_budget = s->cfg.mem_budget, .chat_template = s->cfg.chat_template,
        .idle_unload = s->cfg.idle_unload, .max_queue = s->cfg.max_queue,
        .default_max_tokens = s->cfg.max_tokens, .qos = s->cfg.qos, .parallel = s->cfg.parallel,
        .chunk = s->cfg.chunk, .aging_ms = s->cfg.aging_ms, .metrics = s->metrics,
        .prefix_dir = prefix_dir[0] ? prefix_dir : NULL,
    };
    if (!(s->worker = worker_new(&wp, &rc))) goto err;
    {
        const char *base = strrchr(s->cfg.model, '/');
        analyst_opts ao = {.model_name = base ? base + 1 : s->cfg.model, .rules_path = s->cfg.rules};
        int aerr = 0;
        s->analyst = analyst_new(&ao, &aerr);
        if (!s->analyst) {
            snprintf(s->analyst_err, sizeof s->analyst_err, "%s (%s)", nj_last_error(), nj_strerror(aerr));
            NJ_WARN("analyst not available, /v1/analyze answers 503: %s", s->analyst_err);
        } else {
            NJ_INFO("analyst: %d Sigma rules (%d skipped), prompt %s", analyst_rule_count(s->analyst),
                    analyst_rule_skips(s->analyst), analyst_prompt_version(s->analyst));
        }
    }
    if (s->cfg.watch && *s->cfg.watch) {
        if (!s->analyst) {
            rc = nj_fail(NJ_ESTATE, "watch is configured but the analyst is not available: %s", s->analyst_err);
            goto err;
        }
        servewatch_opts wo = {.sources = s->cfg.watch, .sinks = s->cfg.sink, .spool_path = s->cfg.spool_path,
                              .worker = s->worker, .analyst = s->analyst};
        if (!(s->watch = servewatch_start(&wo, &rc))) goto err;
    }
    if ((rc = open_listeners(s))) goto err;
    NJ_INFO("ready: %d threads, nice %d, context %d, idle unload %d s", s->cfg.threads, platform_get_nice(),
            s->cfg.ctx_size, s->cfg.idle_unload);
    if (err) *err = 0;
    return s;
err:
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nj_last_error());
        server_free(s);
        nj_set_error("%s", msg);
    }
    if (err) *err = rc;
    return NULL;
}

/* SIGHUP: rebuild the configuration and apply what may change live. */
static void reload(nj_server *s) {
    nj_config nc;
    int rc = config_load(&nc, s->argc, s->argv, s->envp);
    if (rc) {
        NJ_ERR("SIGHUP: configuration not reloaded: %s", nj_last_error());
        config_free(&nc);
        return;
    }
    int changed = 0;
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < NJ_CFG_NKEYS; k++) {
        if (!config_differs(&s->cfg, &nc, k)) continue;
        char v[128];
        if (!config_key_live(k)) {
            NJ_WARN("SIGHUP: %s changed to %s; it takes effect after a restart", config_key_name(k),
                    config_value_str(&nc, k, v, sizeof v));
            continue;
        }
        if (k == NJ_CFG_TOKEN && !nc.token && s->tcp_public) {
            NJ_ERR("SIGHUP: refusing to remove the token while listening on a non-loopback address");
            continue;
        }
        if (config_copy_key(&s->cfg, &nc, k) == 0) {
            NJ_INFO("SIGHUP: %s = %s", config_key_name(k), config_value_str(&s->cfg, k, v, sizeof v));
            changed++;
        }
    }
    int level = s->cfg.log_level, idle = s->cfg.idle_unload, mq = s->cfg.max_queue, mt = s->cfg.max_tokens;
    int aging = s->cfg.aging_ms;
    pthread_mutex_unlock(&s->mu);
    config_free(&nc);
    nj_log_set_level(level);
    worker_set_idle_unload(s->worker, idle);
    worker_set_limits(s->worker, mq, mt);
    worker_set_aging(s->worker, aging);
    NJ_INFO("SIGHUP: configuration reloaded (%d setting%s changed)", changed, changed == 1 ? "" : "s");
}

/* Wait until no request is active or the deadline passes. */
static bool wait_inactive(nj_server *s, double deadline) {
    pthread_mutex_lock(&s->act_mu);
    while (s->active > 0 && nj_now() < deadline) {
        pthread_mutex_unlock(&s->act_mu);
        /* act_cv uses the realtime clock; a short sleep-free timed wait */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double rel = NJ_MIN(deadline - nj_now(), 1.0);
        ts.tv_sec += (time_t)rel;
        ts.tv_nsec += (long)((rel - (double)(time_t)rel) * 1e9);
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_mutex_lock(&s->act_mu);
        if (s->active > 0) pthread_cond_timedwait(&s->act_cv, &s->act_mu, &ts);
    }
    bool idle = s->active == 0;
    pthread_mutex_unlock(&s->act_mu);
    return idle;
}

int server_run(nj_server *s) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig)) continue;
        if (sig == SIGHUP) {
            reload(s);
            continue;
        }
        break;
    }
    pthread_mutex_lock(&s->mu);
    double timeout = s->cfg.shutdown_timeout;
    pthread_mutex_unlock(&s->mu);
    NJ_INFO("%s: shutting down (finishing in-flight requests, up to %.0f s)",
            sig == SIGINT ? "SIGINT" : "SIGTERM", timeout);
    double t0 = nj_now(), deadline = t0 + timeout;

    /* 1. stop accepting */
    atomic_store(&s->stopping, true);
    for (int i = 0; i < s->n_ls; i++) {
        MHD_socket fd = MHD_quiesce_daemon(s->ls[i].d);
        if (fd != MHD_INVALID_SOCKET) close(fd);
        s->ls[i].fd = -1;
    }
    if (s->sock_path[0]) {
        unlink(s->sock_path);
        s->sock_path[0] = 0;
    }
    /* the watch loop submits to the worker: stop it first (a batch being
     * judged finishes; what was read is in the spool for the next start) */
    servewatch_stop(s->watch);
    s->watch = NULL;
    worker_close(s->worker);

    /* 2. finish what is queued and running, and send the responses */
    bool clean = worker_drain(s->worker, timeout) == 0 && wait_inactive(s, deadline);
    if (!clean) {
        NJ_WARN("shutdown timeout (%.0f s): cancelling the remaining requests", timeout);
        worker_abort(s->worker);
        wait_inactive(s, nj_now() + 2.0);
    }
    NJ_INFO("stopped after %.3f s%s", nj_now() - t0, clean ? "" : " (requests cancelled)");
    return 0;
}

void server_free(nj_server *s) {
    if (!s) return;
    servewatch_stop(s->watch);
    if (s->worker) {
        worker_close(s->worker);
        worker_abort(s->worker);
    }
    for (int i = 0; i < s->n_ls; i++) {
        if (s->ls[i].d) MHD_stop_daemon(s->ls[i].d);
        if (s->ls[i].fd >= 0 && !s->ls[i].d) close(s->ls[i].fd);
    }
    if (s->sock_path[0]) unlink(s->sock_path);
    worker_free(s->worker);
    analyst_free(s->analyst);   /* after the worker: tasks use it on the engine thread */
    metrics_free(s->metrics);
    config_free(&s->cfg);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->act_mu);
    pthread_cond_destroy(&s->act_cv);
    nj_free(s);
}

const char *server_socket_path(const nj_server *s) { return s->sock_path; }
