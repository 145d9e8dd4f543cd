/*
 * watch — see watch.h for the durable order.  One source = one parser, one
 * open file (or stdin), the offset of the first byte not yet committed and
 * the partial line after it.
 */
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver.h"
#include "event.h"
#include "parse.h"
#include "platform.h"
#include "sink.h"
#include "spool.h"
#include "util.h"

#define CHUNK       (256u << 10)   /* bytes read per step */
#define MAX_BATCH   4096           /* events committed together */
#define JUDGE_BATCH 64

typedef struct source {
    char     name[1100];   /* spool key of the offset: "kind:path" */
    char     evsrc[1200];  /* events' source: name + "#dev:ino" of the open file, so line-numbered
                              ids of a rotated file never collide with the old file's */
    char     kind[32];
    char     path[1024];
    bool     is_stdin, eof_stdin;
    int      fd;
    uint64_t dev, ino;
    uint64_t off;          /* file offset of buf[0] */
    char    *buf;          /* bytes read, not yet committed */
    size_t   len;
    long     lineno;
    parser  *p;
} source;

typedef struct batch {
    spool_event_in ev[MAX_BATCH];
    char          *json[MAX_BATCH];
    size_t         n;
    const source  *src;
    bool           quiet;
} batch;

/* The events of the chunk being parsed: every parser emits into it (one
 * thread runs the loop; too large for the stack). */
static batch chunk;

/* Frees the batch's texts and ids (the spool has copied what it keeps). */
static void batch_clear(batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        nj_free(b->json[i]);
        nj_free((char *)b->ev[i].id);
    }
    b->n = 0;
}

static int emit_cb(void *ctx, json_t *ev) {
    batch *b = ctx;
    int rc = 0;
    if (b->n == MAX_BATCH) {
        rc = nj_fail(NJ_ETOOBIG, "%s: more than %d events in one chunk", b->src->name, MAX_BATCH);
    } else {
        char *s = event_dump(ev, NULL);
        const char *id = event_get_str(ev, EF_ID);
        if (!s || !id) {
            nj_free(s);
            rc = -ENOMEM;
        } else {
            b->json[b->n] = s;
            b->ev[b->n] = (spool_event_in){.id = NULL, .source = b->src->evsrc, .json = s};
            /* the id lives in the JSON text; keep a copy beside it */
            b->ev[b->n].id = nj_strdup(id);
            if (!b->ev[b->n].id) {
                nj_free(s);
                rc = -ENOMEM;
            } else {
                b->n++;
            }
        }
    }
    json_decref(ev);
    return rc;
}

static void error_cb(void *ctx, const char *src, long lineno, const char *reason) {
    batch *b = ctx;
    if (!b->quiet) fprintf(stderr, "nightjar watch: %s:%ld: %s\n", src, lineno, reason);
}

/* (Re)open a file source at the stored offset, or at 0 when the file is
 * not the one the offset belongs to (rotated, replaced) or shorter than it
 * (truncated).  A missing file is not an error: it may appear later. */
static int source_open(spool *sp, source *s) {
    if (s->is_stdin) return 0;
    if (s->fd >= 0) close(s->fd);
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    s->len = 0;
    if (s->fd < 0) return errno == ENOENT ? 0 : nj_fail(-errno, "%s: %s", s->path, strerror(errno));
    struct stat st;
    if (fstat(s->fd, &st) != 0) return nj_fail(-errno, "%s: %s", s->path, strerror(errno));
    s->dev = (uint64_t)st.st_dev;
    s->ino = (uint64_t)st.st_ino;
    snprintf(s->evsrc, sizeof s->evsrc, "%s#%llu:%llu", s->name, (unsigned long long)s->dev,
             (unsigned long long)s->ino);
    s->off = 0;
    spool_offset so;
    if (spool_get_offset(sp, s->name, &so) == 0 && so.dev == s->dev && so.ino == s->ino &&
        so.off <= (uint64_t)st.st_size)
        s->off = so.off;
    /* Line numbers are part of some sources' event ids (sshd): count the
     * lines before the offset so a resumed run numbers them as the first. */
    s->lineno = 0;
    char tmp[65536];
    for (uint64_t done = 0; done < s->off;) {
        size_t want = (size_t)NJ_MIN((uint64_t)sizeof tmp, s->off - done);
        ssize_t n = read(s->fd, tmp, want);
        if (n <= 0) return nj_fail(n < 0 ? -errno : -EIO, "%s: cannot read up to the stored offset", s->path);
        for (ssize_t i = 0; i < n; i++) s->lineno += tmp[i] == '\n';
        done += (uint64_t)n;
    }
    if (lseek(s->fd, (off_t)s->off, SEEK_SET) < 0) return nj_fail(-errno, "%s: seek: %s", s->path, strerror(errno));
    return 0;
}

/* Has the path moved on from our descriptor (rotation) or shrunk below our
 * offset (truncation)?  Then reopen. */
static int source_check_rotation(spool *sp, source *s, bool *reopened) {
    *reopened = false;
    if (s->is_stdin) return 0;
    struct stat st;
    if (stat(s->path, &st) != 0) return 0;   /* gone for now */
    bool other = s->fd < 0 || (uint64_t)st.st_ino != s->ino || (uint64_t)st.st_dev != s->dev;
    bool shrunk = !other && (uint64_t)st.st_size < s->off + s->len;
    if (!other && !shrunk) return 0;
    *reopened = true;
    if (shrunk) {
        /* start again from the beginning of the same file */
        spool_offset so = {.name = s->name, .dev = s->dev, .ino = s->ino, .off = 0};
        int rc = spool_put_events(sp, NULL, 0, &so, NULL);
        if (rc < 0) return rc;
    }
    return source_open(sp, s);
}

/* Read what is there, parse the complete lines, commit their events with
 * the offset past them.  *got: bytes read. */
static int source_step(spool *sp, source *s, bool quiet, size_t *got) {
    *got = 0;
    int fd = s->is_stdin ? 0 : s->fd;
    if (fd < 0 || (s->eof_stdin && s->len == 0)) return 0;
    /* complete lines left over from a chunk that hit the batch bound go
     * first; read only when there are none */
    bool buffered = s->len > 0 && memchr(s->buf, '\n', s->len) != NULL;
    char *nb = nj_realloc(s->buf, s->len + CHUNK + 1);
    if (!nb) return -ENOMEM;
    s->buf = nb;
    ssize_t n = buffered || s->eof_stdin ? 0 : read(fd, s->buf + s->len, CHUNK);
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : nj_fail(-errno, "%s: read: %s", s->name, strerror(errno));
    if (n == 0 && !buffered) {
        if (!s->is_stdin || s->eof_stdin) return 0;
        s->eof_stdin = true;
        if (s->len == 0) return 0;
        s->buf[s->len++] = '\n';   /* the last line without its newline */
    }
    *got = buffered ? 1 : (size_t)n;
    s->len += (size_t)n;
    /* complete lines only */
    size_t end = s->len;
    while (end > 0 && s->buf[end - 1] != '\n') end--;
    if (end == 0) return 0;
    batch *b = &chunk;
    b->n = 0;
    b->src = s;
    b->quiet = quiet;
    int rc = 0;
    size_t ls = 0;
    long lineno = s->lineno;
    /* a chunk commits at most MAX_BATCH / 2 events' worth of lines (a line
     * and the flush may emit a few more); the rest is the next chunk */
    for (size_t i = 0; i < end && !rc && b->n < MAX_BATCH / 2; i++) {
        if (s->buf[i] != '\n') continue;
        lineno++;
        rc = parser_feed(s->p, s->buf + ls, i - ls, lineno);
        ls = i + 1;
    }
    end = ls;
    if (!rc) rc = parser_flush(s->p);
    if (!rc) {
        spool_offset so = {.name = s->name, .dev = s->dev, .ino = s->ino, .off = s->off + end};
        rc = spool_put_events(sp, b->ev, b->n, s->is_stdin ? NULL : &so, NULL);
        if (rc >= 0) rc = 0;
    }
    batch_clear(b);
    if (rc) return rc;   /* nothing committed: the same lines are read again */
    s->lineno = lineno;
    memmove(s->buf, s->buf + end, s->len - end);
    s->len -= end;
    s->off += end;
    return 0;
}

typedef struct judge_ctx {
    int64_t  last;
    size_t   n;
    int64_t  seq[JUDGE_BATCH];
    char    *id[JUDGE_BATCH];
    json_t  *ev[JUDGE_BATCH];
} judge_ctx;

static int collect_one(const spool_event *e, void *ud) {
    judge_ctx *j = ud;
    j->last = e->seq;
    int err = 0;
    json_t *ev = event_parse(e->json, strlen(e->json), &err);
    if (!ev) {
        fprintf(stderr, "nightjar watch: event %s: not judged: %s\n", e->id, nj_last_error());
        return 0;   /* stays pending */
    }
    char *id = nj_strdup(e->id);
    if (!id) {
        json_decref(ev);
        return -ENOMEM;
    }
    j->seq[j->n] = e->seq;
    j->id[j->n] = id;
    j->ev[j->n++] = ev;
    return 0;
}

static void judge_clear(judge_ctx *j) {
    for (size_t i = 0; i < j->n; i++) {
        json_decref(j->ev[i]);
        nj_free(j->id[i]);
    }
    j->n = 0;
}

/* Judge every pending event, a batch at a time; returns how many were
 * judged or < 0.  *down: the judge said it is unavailable (NJ_ENET); the
 * round stopped there. */
static int judge_pending(const watch_opts *o, spool *sp, deliver *d, bool *down) {
    judge_ctx j = {0};
    int judged = 0, rc = 0;
    *down = false;
    for (;;) {
        size_t per = o->judge_batch > 0 ? (size_t)NJ_MIN(o->judge_batch, JUDGE_BATCH) : 1;
        int n = spool_next_pending(sp, j.last, per, collect_one, &j);
        if (n < 0) { rc = n; break; }
        if (n == 0) break;
        char *out[JUDGE_BATCH] = {0};
        int jr = j.n ? o->judge(o->judge_ctx, (const json_t *const *)j.ev, j.n, out) : 0;
        char why[400] = "";
        if (jr) snprintf(why, sizeof why, "%s", nj_last_error());   /* before the spool writes below */
        for (size_t i = 0; i < j.n && rc == 0; i++) {
            if (!out[i]) {
                if (jr != NJ_ENET) fprintf(stderr, "nightjar watch: event %s: not judged: %s\n", j.id[i], why);
                continue;   /* stays pending; judged again in a later round */
            }
            int pr = spool_put_verdict(sp, j.seq[i], out[i]);
            if (pr == 0) judged++;
            else if (pr != -EEXIST) rc = pr;
        }
        for (size_t i = 0; i < j.n; i++) nj_free(out[i]);
        judge_clear(&j);
        if (d && judged) deliver_kick(d);
        if (rc) break;
        if (jr == NJ_ENET) {
            fprintf(stderr, "nightjar watch: %s; the events wait in the spool\n", why);
            *down = true;
            break;
        }
        if (o->stop && *o->stop) break;
    }
    judge_clear(&j);
    return rc ? rc : judged;
}

int watch_run(const watch_opts *o) {
    int rc = 0;
    source *src = nj_calloc((size_t)(o->n_sources ? o->n_sources : 1), sizeof *src);
    sink **sinks = nj_calloc((size_t)(o->n_sinks ? o->n_sinks : 1), sizeof *sinks);
    const char **names = nj_calloc((size_t)(o->n_sinks ? o->n_sinks : 1), sizeof *names);
    spool *sp = NULL;
    deliver *d = NULL;
    platform_watch *pw = NULL;
    if (!src || !sinks || !names) { rc = -ENOMEM; goto out; }
    event_init();
    for (int i = 0; i < o->n_sinks; i++) {
        sink_spec spec;
        if ((rc = sink_spec_parse(o->sinks[i], &spec))) goto out;
        sinks[i] = sink_open(&spec, &rc);
        sink_spec_free(&spec);
        if (!sinks[i]) goto out;
        names[i] = sink_name(sinks[i]);
    }
    spool_opts so = {.sinks = names, .n_sinks = (size_t)o->n_sinks};
    if (!(sp = spool_open(o->spool_path, &so, &rc))) goto out;
    if (o->n_sinks > 0) {
        if (!(d = deliver_new(sp, sinks, (size_t)o->n_sinks, NULL, &rc))) goto out;
        if ((rc = deliver_start(d))) goto out;
    }
    if (!o->once && !(pw = platform_watch_new(&rc))) goto out;
    if (pw && o->wake_fd > 0 && (rc = platform_watch_fd(pw, o->wake_fd))) goto out;
    for (int i = 0; i < o->n_sources; i++) {
        source *s = &src[i];
        s->fd = -1;
        const char *colon = strchr(o->sources[i], ':');
        if (!colon || colon == o->sources[i] || (size_t)(colon - o->sources[i]) >= sizeof s->kind || !colon[1]) {
            rc = nj_fail(-EINVAL, "source '%s': expected KIND:PATH", o->sources[i]);
            goto out;
        }
        snprintf(s->kind, sizeof s->kind, "%.*s", (int)(colon - o->sources[i]), o->sources[i]);
        snprintf(s->path, sizeof s->path, "%s", colon + 1);
        snprintf(s->name, sizeof s->name, "%s:%s", s->kind, s->path);
        snprintf(s->evsrc, sizeof s->evsrc, "%s", s->name);
        s->is_stdin = !strcmp(s->path, "-");
        parser_opts po = {.emit = emit_cb, .on_error = error_cb, .ctx = &chunk, .source_name = s->path};
        if (!(s->p = parser_new(s->kind, &po, &rc))) goto out;
        if ((rc = source_open(sp, s))) goto out;
        if (pw) {
            if (s->is_stdin) rc = platform_watch_fd(pw, 0);
            else rc = platform_watch_file(pw, s->path);
            if (rc) goto out;
        }
    }
    /* events left pending by an earlier run first */
    bool down = false;
    int retry_ms = 0;   /* > 0 while the judge is unavailable: wait this long, then try again */
    if ((rc = judge_pending(o, sp, d, &down)) < 0) goto out;
    rc = 0;
    while (!(o->stop && *o->stop)) {
        bool progress = false;
        for (int i = 0; i < o->n_sources; i++) {
            bool reopened = false;
            if ((rc = source_check_rotation(sp, &src[i], &reopened))) goto out;
            if (reopened && pw) platform_watch_file(pw, src[i].path);
            size_t got;
            do {
                if ((rc = source_step(sp, &src[i], o->quiet, &got))) goto out;
                progress |= got > 0;
            } while (got > 0 && !(o->stop && *o->stop));
        }
        if ((rc = judge_pending(o, sp, d, &down)) < 0) goto out;
        rc = 0;
        retry_ms = !down ? 0 : retry_ms ? NJ_MIN(retry_ms * 2, 60000) : 1000;
        if (progress) continue;
        if (o->once) break;
        int w = platform_watch_wait(pw, retry_ms ? retry_ms : -1);
        if (w < 0 && w != -EINTR) { rc = nj_fail(w, "waiting for changes: %s", nj_strerror(w)); goto out; }
    }
    if (o->once && d) {
        /* deliver what is due before leaving (retries wait for the next run) */
        deliver_stop(d);
        for (int i = 0; i < o->n_sinks; i++) {
            int n;
            do {
                n = deliver_once(d, (size_t)i, spool_now_ms(), NULL);
            } while (n > 0);
        }
    }
    if (!rc && o->once && down) {
        spool_stats st;
        int64_t waiting = spool_stats_get(sp, &st) == 0 ? st.events_pending : -1;
        rc = nj_fail(NJ_ENET, "%lld events are not judged (the judge is unavailable); they stay in the spool "
                     "for the next run", (long long)waiting);
    }
out:
    deliver_free(d);
    platform_watch_free(pw);
    for (int i = 0; src && i < o->n_sources; i++) {
        parser_free(src[i].p);
        if (src[i].fd >= 0) close(src[i].fd);
        nj_free(src[i].buf);
    }
    spool_close(sp);
    for (int i = 0; sinks && i < o->n_sinks; i++) sink_close(sinks[i]);
    nj_free(sinks);
    nj_free(names);
    nj_free(src);
    return rc;
}
