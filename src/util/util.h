/*
 * util — errors, logging and the one counting allocator.
 *
 * Errors.  Every fallible function in nightjar returns 0 (or a count) on
 * success and a negative code on failure: a negated errno value (-ENOMEM,
 * -EINVAL, -ENOENT, ...) or one of the NJ_E* codes below, which live in a
 * range no errno uses.  nj_strerror() names any of them.  Because a code alone
 * cannot say *which* tensor was truncated, the failing function may also leave
 * a human sentence in a per-thread buffer with nj_set_error(); callers print
 * nj_last_error() next to the code.  Constructors return NULL and report the
 * code through an `int *err` out-parameter (may be NULL).
 *
 * Memory.  All heap allocation in the library goes through nj_malloc and
 * friends.  They keep a running total of live bytes (atomically, so any thread
 * may allocate) so the service can report and enforce its memory budget, and
 * they carry a fault-injection hook for tests: nj_alloc_fail_after(n) makes
 * the (n+1)-th allocation from now fail.  The mmap'd model file is accounted
 * separately by the model loader, not here.
 *
 * Invariant: nj_free(p) must get exactly what nj_malloc/nj_calloc/nj_realloc
 * returned (we store the size in a 16-byte header to count frees).
 */
#ifndef NJ_UTIL_H
#define NJ_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* The NJ_E* codes and nj_strerror() are public: include/nightjar.h. */
#include "nightjar.h"

/* Per-thread detail for the last failure; "" if none was set. */
void        nj_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *nj_last_error(void);
void        nj_clear_error(void);

/* Convenience: set the detail and return code, for `return nj_fail(...)`. */
int nj_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Logging to stderr.  Level from NIGHTJAR_LOG (error|warn|info|debug). */
enum { NJ_LOG_ERROR = 0, NJ_LOG_WARN, NJ_LOG_INFO, NJ_LOG_DEBUG };
void nj_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Override the level (e.g. from the service's config; SIGHUP may change it). */
void nj_log_set_level(int level);
#define NJ_ERR(...)   nj_log(NJ_LOG_ERROR, __VA_ARGS__)
#define NJ_WARN(...)  nj_log(NJ_LOG_WARN,  __VA_ARGS__)
#define NJ_INFO(...)  nj_log(NJ_LOG_INFO,  __VA_ARGS__)
#define NJ_DEBUG(...) nj_log(NJ_LOG_DEBUG, __VA_ARGS__)

/* Counting allocator.  Return NULL on failure (never abort). */
void  *nj_malloc(size_t n);
void  *nj_calloc(size_t count, size_t size);  /* overflow-checked */
void  *nj_realloc(void *p, size_t n);
void   nj_free(void *p);
char  *nj_strdup(const char *s);
char  *nj_strndup(const char *s, size_t n);
/* 64-byte aligned, for kernel buffers; free with nj_free_aligned. */
void  *nj_malloc_aligned(size_t n);
void   nj_free_aligned(void *p);
size_t nj_mem_in_use(void);   /* live bytes through this allocator */
size_t nj_mem_peak(void);
/* Test hook: allocation number n+1 from now fails (-1 disables).  Returns
 * the countdown it replaces: >= 0 when the previous armed failure has not
 * happened yet (so nj_alloc_fail_after(-1) after a run says whether the
 * run reached its injected failure), -1 otherwise. */
long   nj_alloc_fail_after(long n);

/* Overflow-checked arithmetic for sizes from untrusted files. */
static inline bool nj_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool nj_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* UTF-8.  nj_utf8_seq: length of the valid sequence at s (n bytes
 * available): > 0 valid, 0 incomplete but valid so far, -1 invalid.
 * nj_utf8_complete: length of the longest prefix of s[0..n) that does not
 * end inside an incomplete (but so far valid) sequence.  nj_utf8_sanitize:
 * copies s[0..n) to out (room for 3n bytes; out may not overlap s) with
 * every invalid byte replaced by U+FFFD; returns the bytes written. */
int    nj_utf8_seq(const unsigned char *s, size_t n);
size_t nj_utf8_complete(const char *s, size_t n);
size_t nj_utf8_sanitize(const char *s, size_t n, char *out);

/* Monotonic clock in seconds / nanoseconds. */
double   nj_now(void);
uint64_t nj_now_ns(void);

#define NJ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NJ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NJ_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
