/*
 * util — see util.h for the error and allocation conventions.
 *
 * The allocator prefixes each block with a 16-byte header holding its size so
 * that nj_free can keep nj_mem_in_use() exact.  Counters are C11 atomics;
 * nothing here takes a lock.
 */
#include "util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char g_errbuf[512];

const char *nj_strerror(int code) {
    switch (code) {
    case 0:               return "success";
    case NJ_EFORMAT:      return "malformed input";
    case NJ_EUNSUPPORTED: return "not supported";
    case NJ_ETOOBIG:      return "too large";
    case NJ_ECTX:         return "does not fit the context";
    case NJ_ECHECKSUM:    return "checksum mismatch";
    case NJ_ENET:         return "network transfer failed";
    case NJ_ESTATE:       return "invalid state for this call";
    default: break;
    }
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
}

void nj_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errbuf, sizeof g_errbuf, fmt, ap);
    va_end(ap);
}

int nj_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errbuf, sizeof g_errbuf, fmt, ap);
    va_end(ap);
    return code;
}

const char *nj_last_error(void) { return g_errbuf; }
void nj_clear_error(void) { g_errbuf[0] = 0; }

static atomic_int g_log_level = -1;

static int log_level(void) {
    int level = atomic_load_explicit(&g_log_level, memory_order_relaxed);
    if (level < 0) {
        const char *e = getenv("NIGHTJAR_LOG");
        level = NJ_LOG_WARN;
        if (e) {
            if (!strcmp(e, "error")) level = NJ_LOG_ERROR;
            else if (!strcmp(e, "info")) level = NJ_LOG_INFO;
            else if (!strcmp(e, "debug")) level = NJ_LOG_DEBUG;
        }
        int unset = -1;
        atomic_compare_exchange_strong(&g_log_level, &unset, level);
    }
    return level;
}

void nj_log_set_level(int level) {
    if (level >= NJ_LOG_ERROR && level <= NJ_LOG_DEBUG) atomic_store(&g_log_level, level);
}

void nj_log(int level, const char *fmt, ...) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level > log_level()) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nightjar: %s: %s\n", names[level], buf);
}

/* ---- counting allocator ---- */

#define HDR 16
static atomic_size_t g_in_use;
static atomic_size_t g_peak;
static atomic_long   g_fail_after = -1;

static bool inject_failure(void) {
    long n = atomic_load_explicit(&g_fail_after, memory_order_relaxed);
    if (n < 0) return false;
    /* decrement; fail when it reaches -1 from 0 */
    n = atomic_fetch_sub(&g_fail_after, 1);
    if (n == 0) return true;
    if (n < 0) atomic_store(&g_fail_after, -1);
    return false;
}

static void account(ptrdiff_t delta) {
    size_t now = atomic_fetch_add(&g_in_use, (size_t)delta) + (size_t)delta;
    size_t peak = atomic_load(&g_peak);
    while (now > peak && !atomic_compare_exchange_weak(&g_peak, &peak, now)) {}
}

void *nj_malloc(size_t n) {
    if (inject_failure() || n > SIZE_MAX - HDR) return NULL;
    unsigned char *p = malloc(n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    account((ptrdiff_t)n);
    return p + HDR;
}

void *nj_calloc(size_t count, size_t size) {
    uint64_t n;
    if (!nj_mul_ok(count, size, &n) || n > SIZE_MAX - HDR) return NULL;
    void *p = nj_malloc((size_t)n);
    if (p) memset(p, 0, (size_t)n);
    return p;
}

void *nj_realloc(void *q, size_t n) {
    if (!q) return nj_malloc(n);
    if (inject_failure() || n > SIZE_MAX - HDR) return NULL;
    unsigned char *base = (unsigned char *)q - HDR;
    size_t old;
    memcpy(&old, base, sizeof old);
    unsigned char *p = realloc(base, n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    account((ptrdiff_t)n - (ptrdiff_t)old);
    return p + HDR;
}

void nj_free(void *q) {
    if (!q) return;
    unsigned char *base = (unsigned char *)q - HDR;
    size_t old;
    memcpy(&old, base, sizeof old);
    account(-(ptrdiff_t)old);
    free(base);
}

char *nj_strndup(const char *s, size_t n) {
    char *d = nj_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *nj_strdup(const char *s) { return nj_strndup(s, strlen(s)); }

void *nj_malloc_aligned(size_t n) {
    if (inject_failure()) return NULL;
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n || posix_memalign(&p, 64, rounded + 64)) return NULL;
    /* size lives in the first 64 bytes; the user block starts at +64 */
    memcpy(p, &rounded, sizeof rounded);
    account((ptrdiff_t)rounded);
    return (unsigned char *)p + 64;
}

void nj_free_aligned(void *q) {
    if (!q) return;
    unsigned char *base = (unsigned char *)q - 64;
    size_t n;
    memcpy(&n, base, sizeof n);
    account(-(ptrdiff_t)n);
    free(base);
}

size_t nj_mem_in_use(void) { return atomic_load(&g_in_use); }
size_t nj_mem_peak(void) { return atomic_load(&g_peak); }
long nj_alloc_fail_after(long n) {
    long prev = atomic_exchange(&g_fail_after, n);
    return prev < 0 ? -1 : prev;
}

double nj_now(void) { return (double)nj_now_ns() * 1e-9; }

uint64_t nj_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- UTF-8 ---- */

int nj_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return -1;
    unsigned cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) {
            /* incomplete: the bytes so far must still be able to form a valid code point;
             * check the second byte's range for E0/ED/F0/F4 */
            return 0;
        }
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
        if (i == 1) {
            if (c == 0xE0 && s[1] < 0xA0) return -1;
            if (c == 0xED && s[1] > 0x9F) return -1;   /* surrogates */
            if (c == 0xF0 && s[1] < 0x90) return -1;
            if (c == 0xF4 && s[1] > 0x8F) return -1;
        }
    }
    if (cp < min || cp > 0x10FFFF) return -1;
    return len;
}

size_t nj_utf8_complete(const char *s, size_t n) {
    /* only the last <= 3 bytes can start an incomplete sequence */
    size_t start = n > 3 ? n - 3 : 0;
    for (size_t i = start; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0xC0 && nj_utf8_seq((const unsigned char *)s + i, n - i) == 0) return i;
    }
    return n;
}

size_t nj_utf8_sanitize(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int k = nj_utf8_seq((const unsigned char *)s + i, n - i);
        if (k > 0) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    return o;
}
