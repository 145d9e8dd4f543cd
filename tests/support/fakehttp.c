/*
 * fakehttp — the scripted loopback HTTP server of the unit tests; the
 * design, invariants and threads are described in fakehttp.h.
 *
 * A request arrives in libmicrohttpd's three calls of the access handler
 * on its connection thread: the first with no upload (we allocate the
 * connection's buffer), then one per chunk of the body (appended), then
 * one with no more data, where it is recorded and answered.  The buffer
 * moves into the record; a request past FAKEHTTP_MAX_REQ frees it.
 */
#include "fakehttp.h"

#include "util.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { STALL_MS = 10000 };

struct fakehttp {
    struct MHD_Daemon *mhd;
    int port;
    fakehttp_answer_fn answer;
    void *ud;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* a request recorded, or the stall lifted */
    fakehttp_req req[FAKEHTTP_MAX_REQ];
    int n;
    int fail_left;               /* scripted failures still to give */
    int fail_status;
    char *fail_body;
    bool stall;
    char stall_url[128];
};

struct upload { char *p; size_t len; };

static void copy_header(struct MHD_Connection *c, const char *name, char *out, size_t cap) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, cap, "%s", v ? v : "");
}

/* abs CLOCK_MONOTONIC time ms from now (the condition variable's clock). */
static struct timespec deadline_in(int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static enum MHD_Result send_answer(struct MHD_Connection *c, int status, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *data_size, void **con_cls) {
    (void)version;
    fakehttp *s = cls;
    struct upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u) return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*data_size) {
        char *p = realloc(u->p, u->len + *data_size + 1);
        if (!p) {
            free(u->p);
            free(u);
            *con_cls = NULL;
            return MHD_NO;
        }
        u->p = p;
        memcpy(u->p + u->len, data, *data_size);
        u->len += *data_size;
        u->p[u->len] = 0;
        *data_size = 0;
        return MHD_YES;
    }
    *con_cls = NULL;
    fakehttp_req q = {.len = u->len, .status = 200};
    snprintf(q.method, sizeof q.method, "%s", method);
    snprintf(q.url, sizeof q.url, "%s", url);
    copy_header(c, "Authorization", q.auth, sizeof q.auth);
    copy_header(c, "Content-Type", q.ctype, sizeof q.ctype);
    q.body = u->p ? u->p : strdup("");
    free(u);
    if (!q.body) return MHD_NO;

    pthread_mutex_lock(&s->mu);
    char *out = NULL;
    if (s->fail_left > 0) {
        s->fail_left--;
        q.status = s->fail_status;
        out = strdup(s->fail_body ? s->fail_body : "");
    } else {
        out = s->answer(s->ud, &q, &q.status);
    }
    if (s->n < FAKEHTTP_MAX_REQ) s->req[s->n++] = q;
    else free(q.body);
    pthread_cond_broadcast(&s->cv);
    if (s->stall && !strcmp(url, s->stall_url)) {
        struct timespec ts = deadline_in(STALL_MS);
        while (s->stall && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0) {}
    }
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result r = send_answer(c, q.status, out ? out : "");
    free(out);
    return r;
}

/* Start: the daemon on 127.0.0.1:0, its port read back. */
fakehttp *fakehttp_start(fakehttp_answer_fn answer, void *ud, int *err) {
    fakehttp *s = calloc(1, sizeof *s);
    if (!s) {
        if (err) *err = nj_fail(-ENOMEM, "fakehttp: out of memory");
        return NULL;
    }
    s->answer = answer;
    s->ud = ud;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                              handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = s->mhd ? MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info) {
        int rc = nj_fail(NJ_ENET, "fakehttp: cannot listen on 127.0.0.1");
        fakehttp_stop(s);
        if (err) *err = rc;
        return NULL;
    }
    s->port = info->port;
    return s;
}

void fakehttp_stop(fakehttp *s) {
    if (!s) return;
    fakehttp_stall(s, "", false);   /* a held answer would keep MHD_stop_daemon waiting */
    if (s->mhd) MHD_stop_daemon(s->mhd);
    fakehttp_reset(s);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int fakehttp_port(const fakehttp *s) { return s->port; }

void fakehttp_reset(fakehttp *s) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++) free(s->req[i].body);
    s->n = 0;
    s->fail_left = s->fail_status = 0;
    free(s->fail_body);
    s->fail_body = NULL;
    s->stall = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void fakehttp_fail_next(fakehttp *s, int n, int status, const char *body) {
    pthread_mutex_lock(&s->mu);
    free(s->fail_body);
    s->fail_body = body ? strdup(body) : NULL;
    s->fail_left = n;
    s->fail_status = status;
    pthread_mutex_unlock(&s->mu);
}

void fakehttp_stall(fakehttp *s, const char *url, bool on) {
    pthread_mutex_lock(&s->mu);
    s->stall = on;
    if (on) snprintf(s->stall_url, sizeof s->stall_url, "%s", url);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int fakehttp_count(fakehttp *s, const char *url) {
    pthread_mutex_lock(&s->mu);
    int k = 0;
    for (int i = 0; i < s->n; i++) k += !url || !strcmp(s->req[i].url, url);
    pthread_mutex_unlock(&s->mu);
    return k;
}

const fakehttp_req *fakehttp_get(fakehttp *s, int i) {
    pthread_mutex_lock(&s->mu);
    if (i < 0) i += s->n;
    const fakehttp_req *q = i >= 0 && i < s->n ? &s->req[i] : NULL;
    pthread_mutex_unlock(&s->mu);
    return q;
}

int fakehttp_wait(fakehttp *s, int n, int timeout_ms) {
    struct timespec ts = deadline_in(timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->n < n)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) break;
    int got = s->n;
    pthread_mutex_unlock(&s->mu);
    return got;
}

void fakehttp_lock(fakehttp *s) { pthread_mutex_lock(&s->mu); }
void fakehttp_unlock(fakehttp *s) { pthread_mutex_unlock(&s->mu); }
