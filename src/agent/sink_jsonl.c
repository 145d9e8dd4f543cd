/*
 * sink_jsonl — verdicts appended to a file, one JSON object per line.
 *
 * Durability: a batch is written with write(2) (the file is O_APPEND) and
 * then fsync'd once; the items are reported delivered only after the fsync
 * succeeded.  A write that fails part-way (ENOSPC, EFBIG) is cut back with
 * ftruncate to the last whole line, so the file never holds a partial line
 * that the next append would glue to; the lines before it are still
 * fsync'd and reported delivered, the rest are retried.  If the fsync
 * itself fails the outcome of the whole batch is unknown (SINK_MAYBE).
 *
 * Rotation: before a line would take the file past max_bytes (and the file
 * is not empty), PATH.keep is removed, PATH.i is renamed to PATH.i+1, PATH
 * to PATH.1, and a new PATH is created (0600); with keep = 0 the old file
 * is simply removed.  The directory is fsync'd after the renames, so a
 * crash leaves either the old or the new arrangement.  A single line larger
 * than max_bytes still goes into a file of its own.
 *
 * Threads: one thread at a time (sink.h).
 */
#include "sink_impl.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct jsonl {
    sink base;
    int fd;
    int64_t size;
} jsonl;

static int open_file(jsonl *j) {
    const char *path = j->base.spec.path;
    j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (j->fd < 0) return nj_fail(-errno, "jsonl sink: cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(j->fd, &sb) != 0) return nj_fail(-errno, "jsonl sink: stat %s: %s", path, strerror(errno));
    j->size = (int64_t)sb.st_size;
    return 0;
}

static void fsync_dir_of(const char *path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
}

static int rotate(jsonl *j) {
    const char *path = j->base.spec.path;
    int keep = j->base.spec.keep;
    char from[PATH_MAX], to[PATH_MAX];
    if (fsync(j->fd) != 0)
        return nj_fail(-errno, "jsonl sink: fsync %s before rotation: %s", path, strerror(errno));
    close(j->fd);
    j->fd = -1;
    if (keep == 0) {
        unlink(path);
    } else {
        snprintf(to, sizeof to, "%s.%d", path, keep);
        unlink(to);
        for (int i = keep - 1; i >= 1; i--) {
            snprintf(from, sizeof from, "%s.%d", path, i);
            snprintf(to, sizeof to, "%s.%d", path, i + 1);
            if (rename(from, to) != 0 && errno != ENOENT)
                NJ_WARN("jsonl sink: rename %s -> %s: %s", from, to, strerror(errno));
        }
        snprintf(to, sizeof to, "%s.1", path);
        if (rename(path, to) != 0)
            NJ_WARN("jsonl sink: rename %s -> %s: %s", path, to, strerror(errno));
    }
    int rc = open_file(j);
    fsync_dir_of(path);
    return rc;
}

/* write() all of p, or cut the file back to `start` and return -errno. */
static int write_line(jsonl *j, const char *p, size_t n) {
    int64_t start = j->size;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(j->fd, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            if (done > 0 && ftruncate(j->fd, start) != 0)
                NJ_ERR("jsonl sink: %s: cannot cut a partial line: %s", j->base.spec.path,
                       strerror(errno));
            return -e;
        }
        done += (size_t)w;
    }
    j->size = start + (int64_t)n;
    return 0;
}

static int jsonl_send(sink *s, const spool_delivery *items, size_t n, sink_result *res) {
    jsonl *j = (jsonl *)s;
    const char *path = s->spec.path;
    size_t written = 0;
    if (j->fd < 0 && open_file(j) != 0) {
        for (size_t i = 0; i < n; i++) sink_set(&res[i], SINK_RETRY, "%s", nj_last_error());
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char *line = NULL;
        size_t len = 0;
        int rc = sink_payload(&items[i], &line, &len);
        if (rc == NJ_EFORMAT) { sink_set(&res[i], SINK_PERMANENT, "%s", nj_last_error()); continue; }
        if (rc) { sink_set(&res[i], SINK_RETRY, "out of memory"); break; }
        line[len] = '\n'; /* the payload's NUL; the buffer has room for it */
        if (s->spec.max_bytes > 0 && j->size > 0 && j->size + (int64_t)len + 1 > s->spec.max_bytes &&
            rotate(j) != 0) {
            sink_set(&res[i], SINK_RETRY, "%s", nj_last_error());
            nj_free(line);
            break;
        }
        rc = write_line(j, line, len + 1);
        nj_free(line);
        if (rc) {
            sink_set(&res[i], SINK_RETRY, "write %s: %s", path, strerror(-rc));
            break;
        }
        res[i].status = SINK_OK; /* provisional: confirmed by the fsync */
        written++;
    }
    if (written && fsync(j->fd) != 0) {
        int e = errno;
        for (size_t i = 0; i < n; i++)
            if (res[i].status == SINK_OK) sink_set(&res[i], SINK_MAYBE, "fsync %s: %s", path, strerror(e));
    }
    for (size_t i = 0; i < n; i++)
        if (res[i].status == SINK_OK) res[i].error[0] = 0;
    return 0;
}

static void jsonl_close(sink *s) {
    jsonl *j = (jsonl *)s;
    if (j->fd >= 0) close(j->fd);
    sink_base_free(s);
}

static const struct sink_ops jsonl_ops = {.send = jsonl_send, .close = jsonl_close};

sink *sink_jsonl_open(const sink_spec *spec, int *err) {
    int rc = 0;
    jsonl *j = nj_calloc(1, sizeof *j);
    if (!j) { rc = nj_fail(-ENOMEM, "jsonl sink: out of memory"); goto err; }
    j->fd = -1;
    if ((rc = sink_base_init(&j->base, &jsonl_ops, spec))) { nj_free(j); j = NULL; goto err; }
    if (!spec->path || !*spec->path) { rc = nj_fail(-EINVAL, "jsonl sink: no path"); goto err; }
    /* Parent directories 0700, as for the spool. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", spec->path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            rc = nj_fail(-errno, "jsonl sink: cannot create %s: %s", dir, strerror(errno));
            goto err;
        }
        *p = '/';
    }
    if ((rc = open_file(j))) goto err;
    fsync_dir_of(spec->path); /* a newly created file's name is durable too */
    return &j->base;
err:
    if (err) *err = rc;
    if (j) jsonl_close(&j->base);
    return NULL;
}
