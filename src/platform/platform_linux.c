/*
 * platform_linux — the Linux implementation of platform.h.
 *
 * CPU features (platform_cpu_detect).  On x86-64 we ask CPUID what the processor can do and XGETBV (XCR0) what the OS saves on
 * a context switch: AVX state needs XCR0 bits 1-2 (SSE, YMM), AVX-512 state
 * also bits 5-7 (opmask, ZMM_Hi256, Hi16_ZMM).  A CPU feature the kernel does
 * not save is reported absent, because using it would corrupt registers
 * across preemption.  On aarch64 the kernel already folds that in: the
 * auxiliary vector (AT_HWCAP, AT_HWCAP2) lists what user space may use.
 *
 * platform_cpu.c calls it once, caches the result and narrows it by
 * NIGHTJAR_CPU and platform_cpu_mask(), the same on every OS.
 *
 * Resources come from /proc/self (statm, status, stat) with getrusage as the
 * fallback.  Directory getters return thread-local buffers recomputed on each
 * call, so a changed environment (tests) is honoured and two threads never
 * write the same buffer.
 *
 * Linux nice is per thread (setpriority(PRIO_PROCESS, 0) changes only the
 * calling thread), so platform_set_nice walks /proc/self/task and renices
 * every thread; threads created afterwards inherit the caller's value.
 */
#include "platform.h"
#include "platform_cpu.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

/* ---------------------------------------------------------------- CPU --- */


#if defined(__x86_64__) || defined(__i386__)
/* XCR0 via the raw opcode so this file needs no -mxsave.  Only valid when
 * CPUID.1:ECX.OSXSAVE is set (the caller checks). */
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect_x86(void) {
    unsigned a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1;
    const int avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    const uint64_t xcr0 = read_xcr0();
    const int os_avx = (xcr0 & 0x6) == 0x6;             /* XMM | YMM */
    const int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; /* opmask|ZMM_Hi256|Hi16_ZMM */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    const int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    const int vnni = (c >> 11) & 1;
    const unsigned max_sub7 = a;
    int bf16 = 0;
    if (max_sub7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        bf16 = (a >> 5) & 1;
    }
    if (os_avx && avx2 && fma && f16c) f |= NJ_CPU_AVX2;
    /* AVX-512 kernels also use AVX2/FMA code paths: require both. */
    if ((f & NJ_CPU_AVX2) && os_avx512 && avx512f && avx512dq && avx512bw && avx512vl) {
        f |= NJ_CPU_AVX512;
        if (vnni) f |= NJ_CPU_AVX512VNNI;
        if (bf16) f |= NJ_CPU_AVX512BF16;
    }
    return f;
}
#endif

#if defined(__aarch64__)
/* Bit values from the Linux arm64 ABI (arch/arm64/include/uapi/asm/hwcap.h),
 * spelled out for old libc headers. */
#define NJ_HWCAP_FPHP     (1ul << 9)
#define NJ_HWCAP_ASIMD    (1ul << 1)
#define NJ_HWCAP_ASIMDHP  (1ul << 10)
#define NJ_HWCAP_ASIMDDP  (1ul << 20)
#define NJ_HWCAP2_I8MM    (1ul << 13)
#ifndef AT_HWCAP2
#define AT_HWCAP2 26
#endif
static uint32_t detect_arm(void) {
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    uint32_t f = 0;
    if (!(hw & NJ_HWCAP_ASIMD)) return 0;
    f |= NJ_CPU_NEON;
    if (hw & NJ_HWCAP_ASIMDDP) f |= NJ_CPU_DOTPROD;
    if ((hw & NJ_HWCAP_FPHP) && (hw & NJ_HWCAP_ASIMDHP)) f |= NJ_CPU_FP16;
    if (hw2 & NJ_HWCAP2_I8MM) f |= NJ_CPU_I8MM;
    return f;
}
#endif


uint32_t platform_cpu_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    return detect_x86();
#elif defined(__aarch64__)
    return detect_arm();
#else
    return 0;
#endif
}

int platform_n_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ----------------------------------------------------------- resources --- */

/* Value in kB of "Key:" in /proc/self/status, or 0. */
static uint64_t status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return 0;
    char line[256];
    size_t kl = strlen(key);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

uint64_t platform_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        unsigned long long size, resident;
        int n = fscanf(f, "%llu %llu", &size, &resident);
        fclose(f);
        if (n == 2) return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    }
    return status_kb("VmRSS") * 1024;
}

/* VmHWM and statm come from differently batched kernel counters and can
 * disagree by a few pages; a peak below the current value would be absurd,
 * so report the larger of the two. */
uint64_t platform_peak_rss_bytes(void) {
    uint64_t peak = status_kb("VmHWM") * 1024;
    if (!peak) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) peak = (uint64_t)ru.ru_maxrss * 1024; /* kB on Linux */
    }
    return NJ_MAX(peak, platform_rss_bytes());
}

uint64_t platform_cpu_ticks(void) {
    /* /proc/self/stat: "pid (comm) state ppid ..."; comm may contain spaces
     * and parentheses, so parse from the last ')'.  utime and stime are
     * fields 14 and 15, i.e. the 12th and 13th after the state. */
    FILE *f = fopen("/proc/self/stat", "re");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (p) {
            unsigned long long ut, st;
            if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                       &ut, &st) == 2)
                return ut + st;
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    double s = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return (uint64_t)(s * sysconf(_SC_CLK_TCK));
}

/* ---------------------------------------------------------- scheduling --- */

int platform_set_nice(int level) {
    if (level < -20 || level > 19) return -EINVAL;
    if (setpriority(PRIO_PROCESS, 0, level) != 0) return -errno;
    /* Other threads that already exist: each is its own task. */
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (*end || tid <= 0) continue;
        if (setpriority(PRIO_PROCESS, (id_t)tid, level) != 0 && errno != ESRCH)
            rc = -errno;
    }
    closedir(d);
    return rc;
}

int platform_set_thread_qos(int qos) {
    (void)qos;
    return -ENOSYS;
}

/* --------------------------------------------------------- directories --- */

static _Thread_local char cache_buf[1024];
static _Thread_local char runtime_buf[1024];

/* ---- file watching: inotify ---- */

#define WATCH_MAX_FDS 16

struct platform_watch {
    int ino;                    /* inotify descriptor */
    int fds[WATCH_MAX_FDS];     /* extra input descriptors */
    int n_fds;
};

platform_watch *platform_watch_new(int *err) {
    platform_watch *w = nj_calloc(1, sizeof *w);
    if (!w) {
        if (err) *err = -ENOMEM;
        return NULL;
    }
    w->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (w->ino < 0) {
        int e = -errno;
        nj_free(w);
        if (err) *err = nj_fail(e, "inotify_init1: %s", strerror(-e));
        return NULL;
    }
    if (err) *err = 0;
    return w;
}

int platform_watch_file(platform_watch *w, const char *path) {
    /* the file (it may not exist yet: then only its directory) */
    inotify_add_watch(w->ino, path, IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF | IN_CLOSE_WRITE);
    char dir[4096];
    platform_dir_of(path, dir, sizeof dir);
    if (inotify_add_watch(w->ino, dir, IN_CREATE | IN_MOVED_TO | IN_DELETE) < 0)
        return nj_fail(-errno, "cannot watch %s: %s", dir, strerror(errno));
    return 0;
}

int platform_watch_fd(platform_watch *w, int fd) {
    if (w->n_fds >= WATCH_MAX_FDS) return nj_fail(NJ_ETOOBIG, "too many descriptors to watch");
    w->fds[w->n_fds++] = fd;
    return 0;
}

int platform_watch_wait(platform_watch *w, int timeout_ms) {
    struct pollfd p[WATCH_MAX_FDS + 1];
    p[0].fd = w->ino;
    p[0].events = POLLIN;
    for (int i = 0; i < w->n_fds; i++) {
        p[i + 1].fd = w->fds[i];
        p[i + 1].events = POLLIN;
    }
    int n = poll(p, (nfds_t)w->n_fds + 1, timeout_ms);
    if (n < 0) return -errno;
    if (n == 0) return 0;
    if (p[0].revents & POLLIN) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        while (read(w->ino, buf, sizeof buf) > 0) {
        }
    }
    return 1;
}

void platform_watch_free(platform_watch *w) {
    if (!w) return;
    close(w->ino);
    nj_free(w);
}

int platform_exe_path(char *buf, size_t cap) {
    if (cap < 2) return -ENAMETOOLONG;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n < 0) return -errno;
    if ((size_t)n >= cap - 1) return -ENAMETOOLONG;
    buf[n] = 0;
    return (int)n;
}

/* NIGHTJAR_CACHE_DIR overrides everything (tests, packaging); then the XDG
 * base-directory rule: only absolute XDG paths count. */
const char *platform_cache_dir(void) {
    const char *o = getenv("NIGHTJAR_CACHE_DIR");
    if (o && *o) {
        snprintf(cache_buf, sizeof cache_buf, "%s", o);
        return cache_buf;
    }
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && x[0] == '/')
        snprintf(cache_buf, sizeof cache_buf, "%s/nightjar", x);
    else
        snprintf(cache_buf, sizeof cache_buf, "%s/.cache/nightjar", platform_home_dir());
    return cache_buf;
}

const char *platform_runtime_dir(void) {
    const char *x = getenv("XDG_RUNTIME_DIR");
    if (x && x[0] == '/') {
        snprintf(runtime_buf, sizeof runtime_buf, "%s/nightjar", x);
    } else {
        const char *t = getenv("TMPDIR");
        if (!t || t[0] != '/') t = "/tmp";
        snprintf(runtime_buf, sizeof runtime_buf, "%s/nightjar-%u", t, (unsigned)getuid());
    }
    return runtime_buf;
}

/* ------------------------------------------------------------- sockets --- */

int platform_peer_uid(int fd, uint32_t *uid) {
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return -errno;
    if (len != sizeof cr) return -EINVAL;
    *uid = (uint32_t)cr.uid;
    return 0;
}
