/*
 * servewatch — see servewatch.h.  The judge function runs on the watch
 * thread and blocks on a worker task; the task runs the analyst on the
 * engine thread.
 */
#include "servewatch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "parse.h"
#include "platform.h"
#include "sink.h"
#include "util.h"
#include "watch.h"

#define MAX_ITEMS 32

struct servewatch {
    pthread_t   thread;
    bool        started;
    int         pipe[2];
    volatile sig_atomic_t stop;
    char       *lists;                 /* the copied lists, cut into items in place */
    const char *sources[MAX_ITEMS], *sinks[MAX_ITEMS];
    int         n_sources, n_sinks;
    char        spool_path[1200];
    nj_worker  *worker;
    analyst    *analyst;
};

/* ---- the judge: a worker task per batch ---- */

typedef struct wjob {
    analyst *a;
    json_t **evs;
    char   **out;
    size_t   n;
    int      rc;
    char     why[400];
} wjob;

static void wjob_free(void *p) {
    wjob *j = p;
    if (!j) return;
    for (size_t i = 0; i < j->n; i++) {
        if (j->evs) json_decref(j->evs[i]);
        if (j->out) nj_free(j->out[i]);
    }
    nj_free(j->evs);
    nj_free(j->out);
    nj_free(j);
}

/* Engine thread: judge the batch; verdict texts (with their event) into j->out. */
static int wtask(void *arg, nj_model *m, nj_session *s, char **out, size_t *len) {
    wjob *j = arg;
    json_t **v = nj_calloc(j->n, sizeof *v);
    if (!v) return -ENOMEM;
    j->rc = analyst_judge_batch(j->a, m, s, (const json_t *const *)j->evs, j->n, v);
    if (j->rc) snprintf(j->why, sizeof j->why, "%s", nj_last_error());
    for (size_t i = 0; i < j->n; i++) {
        if (!v[i]) continue;
        json_object_set(v[i], "event", j->evs[i]);
        j->out[i] = event_json_dumps(v[i], JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        json_decref(v[i]);
    }
    nj_free(v);
    *out = nj_strdup("");
    *len = 0;
    return *out ? 0 : -ENOMEM;
}

static int judge(void *ctx, const json_t *const *evs, size_t n, char **out) {
    servewatch *w = ctx;
    for (size_t i = 0; i < n; i++) out[i] = NULL;
    wjob *j = nj_calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->a = w->analyst;
    j->n = n;
    j->evs = nj_calloc(n, sizeof *j->evs);
    j->out = nj_calloc(n, sizeof *j->out);
    if (!j->evs || !j->out) {
        wjob_free(j);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) j->evs[i] = json_incref((json_t *)evs[i]);
    worker_job job = {.kind = WJOB_TASK, .priority = WPRIO_LOW, .task = wtask, .task_arg = j, .owner = j,
                      .release = wjob_free};
    int err = 0;
    worker_req *r = worker_req_new(&job, &err);   /* owns j from here */
    if (!r) return err ? err : -ENOMEM;
    int rc = worker_submit(w->worker, r);
    if (rc) {
        worker_req_unref(r);
        return nj_fail(NJ_ENET, "the service cannot take the batch now (%s)",
                       rc == -EAGAIN ? "its queue is full" : "it is shutting down");
    }
    worker_req_wait_done(r);
    pthread_mutex_lock(&r->mu);
    int status = r->status;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", r->err_msg);
    pthread_mutex_unlock(&r->mu);
    if (status != 200) {
        /* the model could not be loaded, the queue was cancelled...: later */
        rc = nj_fail(status >= 500 ? NJ_ENET : -EINVAL, "the service's engine failed the batch: HTTP %d: %s",
                     status, msg);
    } else {
        for (size_t i = 0; i < n; i++) {
            out[i] = j->out[i];
            j->out[i] = NULL;
        }
        rc = j->rc;
        if (rc) nj_set_error("%s", j->why);
    }
    worker_req_unref(r);   /* frees j */
    return rc;
}

/* ---- the thread ---- */

static void *run(void *arg) {
    servewatch *w = arg;
    watch_opts o = {.spool_path = w->spool_path, .sources = w->sources, .n_sources = w->n_sources,
                    .sinks = w->sinks, .n_sinks = w->n_sinks, .judge = judge, .judge_ctx = w,
                    .judge_batch = 1, .stop = &w->stop, .quiet = false, .wake_fd = w->pipe[0]};
    NJ_INFO("watch: %d source%s, %d sink%s, spool %s", w->n_sources, w->n_sources == 1 ? "" : "s", w->n_sinks,
            w->n_sinks == 1 ? "" : "s", w->spool_path);
    int rc = watch_run(&o);
    if (rc) NJ_ERR("watch stopped: %s (%s); the service goes on without it", nj_last_error(), nj_strerror(rc));
    return NULL;
}

/* Cuts s at ';' into trimmed, non-empty items. */
static int split(char *s, const char **items, int *n, const char *what) {
    *n = 0;
    for (char *p = s; p && *p;) {
        char *semi = strchr(p, ';');
        if (semi) *semi = 0;
        while (*p == ' ' || *p == '\t') p++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (*p) {
            if (*n == MAX_ITEMS) return nj_fail(-EINVAL, "%s: more than %d items", what, MAX_ITEMS);
            items[(*n)++] = p;
        }
        p = semi ? semi + 1 : NULL;
    }
    return 0;
}

servewatch *servewatch_start(const servewatch_opts *o, int *err) {
    int rc = 0;
    servewatch *w = nj_calloc(1, sizeof *w);
    if (!w) { rc = -ENOMEM; goto fail; }
    w->pipe[0] = w->pipe[1] = -1;
    w->worker = o->worker;
    w->analyst = o->analyst;
    size_t ls = strlen(o->sources), lk = o->sinks ? strlen(o->sinks) : 0;
    if (!(w->lists = nj_malloc(ls + lk + 2))) { rc = -ENOMEM; goto fail; }
    memcpy(w->lists, o->sources, ls + 1);
    memcpy(w->lists + ls + 1, o->sinks ? o->sinks : "", lk + 1);
    if ((rc = split(w->lists, w->sources, &w->n_sources, "watch")) ||
        (rc = split(w->lists + ls + 1, w->sinks, &w->n_sinks, "sink")))
        goto fail;
    if (w->n_sources == 0) { rc = nj_fail(-EINVAL, "watch: no source (expected KIND:PATH[;KIND:PATH...])"); goto fail; }
    for (int i = 0; i < w->n_sources; i++) {
        const char *c = strchr(w->sources[i], ':');
        bool known = false;
        for (int k = 0; c && parser_formats[k]; k++)
            known |= strlen(parser_formats[k]) == (size_t)(c - w->sources[i]) &&
                     !strncmp(parser_formats[k], w->sources[i], (size_t)(c - w->sources[i]));
        if (!c || !c[1] || !known) {
            rc = nj_fail(-EINVAL, "watch: '%s': expected KIND:PATH with KIND one of the source formats "
                         "(docs/agent.md)", w->sources[i]);
            goto fail;
        }
    }
    for (int i = 0; i < w->n_sinks; i++) {
        sink_spec spec;
        if ((rc = sink_spec_parse(w->sinks[i], &spec))) goto fail;
        sink_spec_free(&spec);
    }
    if (o->spool_path && *o->spool_path) snprintf(w->spool_path, sizeof w->spool_path, "%s", o->spool_path);
    else snprintf(w->spool_path, sizeof w->spool_path, "%s/spool.db", platform_cache_dir());
    if (pipe(w->pipe) != 0) { rc = nj_fail(-errno, "watch: pipe: %s", strerror(errno)); goto fail; }
    fcntl(w->pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(w->pipe[1], F_SETFD, FD_CLOEXEC);
    fcntl(w->pipe[0], F_SETFL, O_NONBLOCK);
    if ((rc = -pthread_create(&w->thread, NULL, run, w))) {
        nj_fail(rc, "watch: cannot start its thread");
        goto fail;
    }
    w->started = true;
    if (err) *err = 0;
    return w;
fail:
    servewatch_stop(w);
    if (err) *err = rc ? rc : -ENOMEM;
    return NULL;
}

void servewatch_stop(servewatch *w) {
    if (!w) return;
    if (w->started) {
        w->stop = 1;
        ssize_t k = write(w->pipe[1], "x", 1);
        (void)k;
        pthread_join(w->thread, NULL);
    }
    if (w->pipe[0] >= 0) close(w->pipe[0]);
    if (w->pipe[1] >= 0) close(w->pipe[1]);
    nj_free(w->lists);
    nj_free(w);
}
