/*
 * platform_macos — the macOS implementation of platform.h.
 *
 * Not compiled on the Linux build machines (the Makefile picks one platform
 * file by `uname -s`), so it is kept small and uses only documented APIs.
 *
 * CPU features come from sysctl hw.optional.*, the kernel's own statement of
 * what user space may use.  That matters on Intel Macs: macOS enables AVX-512
 * register state lazily, per thread, on first use, so XCR0 read by a thread
 * that has not used AVX-512 yet says "no" although the OS supports it; the
 * sysctl (hw.optional.avx512f ...) is the right question.  Darwin before 21.3
 * (macOS 12.2) could corrupt AVX-512 mask registers on signal return, so
 * AVX-512 is only reported from 21.3 on.  xnu has no sysctl for AVX512_VNNI
 * or AVX512_BF16, so those two come from CPUID leaf 7 once the sysctl has
 * vouched for AVX-512 state.  On Apple Silicon, AdvSIMD is architecturally
 * present; dot product, FP16 arithmetic and I8MM come from
 * hw.optional.arm.FEAT_*.
 *
 * NIGHTJAR_CPU and platform_cpu_mask() narrow the detected set exactly as on
 * Linux (platform_cpu.c, shared by both).
 *
 * Resources: mach task_info(MACH_TASK_BASIC_INFO) for resident size and its
 * high-water mark, getrusage for CPU time (reported in the same clock ticks
 * as Linux, sysconf(_SC_CLK_TCK), so callers compare like with like).
 * Scheduling: nice is process-wide here (setpriority), and threads also get a
 * QoS class, which is what actually steers them to efficiency cores.
 */
/* Full Darwin API (getpeereid, QoS, MADV_*) even under -std=c11. */
#define _DARWIN_C_SOURCE 1
#include "platform.h"
#include "platform_cpu.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/event.h>
#include <mach-o/dyld.h>
#include <mach/mach.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysctl.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* ---------------------------------------------------------------- CPU --- */

/* 1 if the integer sysctl `name` exists and is non-zero. */
static int sysctl_on(const char *name) {
    int v = 0;
    size_t len = sizeof v;
    if (sysctlbyname(name, &v, &len, NULL, 0) != 0) return 0;
    return v != 0;
}

#if defined(__x86_64__)
/* kern.osrelease "21.3.0" -> is it at least major.minor? */
static int darwin_at_least(int major, int minor) {
    char rel[64] = {0};
    size_t len = sizeof rel - 1;
    if (sysctlbyname("kern.osrelease", rel, &len, NULL, 0) != 0) return 0;
    int ma = 0, mi = 0;
    if (sscanf(rel, "%d.%d", &ma, &mi) < 1) return 0;
    return ma > major || (ma == major && mi >= minor);
}

static uint32_t detect_x86(void) {
    uint32_t f = 0;
    if (sysctl_on("hw.optional.avx2_0") && sysctl_on("hw.optional.fma") &&
        sysctl_on("hw.optional.f16c"))
        f |= NJ_CPU_AVX2;
    if ((f & NJ_CPU_AVX2) && darwin_at_least(21, 3) &&
        sysctl_on("hw.optional.avx512f") && sysctl_on("hw.optional.avx512dq") &&
        sysctl_on("hw.optional.avx512bw") && sysctl_on("hw.optional.avx512vl")) {
        f |= NJ_CPU_AVX512;
        unsigned a, b, c, d;
        if (__get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            if ((c >> 11) & 1) f |= NJ_CPU_AVX512VNNI;
            if (a >= 1) {
                __cpuid_count(7, 1, a, b, c, d);
                if ((a >> 5) & 1) f |= NJ_CPU_AVX512BF16;
            }
        }
    }
    return f;
}
#endif

#if defined(__aarch64__) || defined(__arm64__)
static uint32_t detect_arm(void) {
    uint32_t f = NJ_CPU_NEON; /* AdvSIMD is mandatory on arm64 */
    if (sysctl_on("hw.optional.arm.FEAT_DotProd")) f |= NJ_CPU_DOTPROD;
    if (sysctl_on("hw.optional.arm.FEAT_FP16"))    f |= NJ_CPU_FP16;
    if (sysctl_on("hw.optional.arm.FEAT_I8MM"))    f |= NJ_CPU_I8MM;
    return f;
}
#endif


uint32_t platform_cpu_detect(void) {
#if defined(__x86_64__)
    return detect_x86();
#elif defined(__aarch64__) || defined(__arm64__)
    return detect_arm();
#else
    return 0;
#endif
}

int platform_n_cpus(void) {
    int n = 0;
    size_t len = sizeof n;
    if (sysctlbyname("hw.activecpu", &n, &len, NULL, 0) == 0 && n > 0) return n;
    long s = sysconf(_SC_NPROCESSORS_ONLN);
    return s > 0 ? (int)s : 1;
}

/* ----------------------------------------------------------- resources --- */

static int task_basic(struct mach_task_basic_info *info) {
    mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
    return task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t)info, &count) ==
           KERN_SUCCESS;
}

uint64_t platform_rss_bytes(void) {
    struct mach_task_basic_info info;
    return task_basic(&info) ? (uint64_t)info.resident_size : 0;
}

uint64_t platform_peak_rss_bytes(void) {
    struct mach_task_basic_info info;
    if (task_basic(&info)) return (uint64_t)info.resident_size_max;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return (uint64_t)ru.ru_maxrss; /* bytes on macOS */
    return 0;
}

uint64_t platform_cpu_ticks(void) {
    long hz = sysconf(_SC_CLK_TCK);
    return (uint64_t)(platform_cpu_seconds() * (double)(hz > 0 ? hz : 100));
}

/* ---------------------------------------------------------- scheduling --- */

int platform_set_nice(int level) {
    if (level < -20 || level > 19) return -EINVAL;
    if (setpriority(PRIO_PROCESS, 0, level) != 0) return -errno;
    return 0;
}

/* QoS of the calling thread.  UTILITY keeps it on performance cores when
 * the system is otherwise idle; BACKGROUND confines it to efficiency cores
 * and throttles its I/O. */
int platform_set_thread_qos(int qos) {
    qos_class_t cls;
    switch (qos) {
    case NJ_QOS_UTILITY:    cls = QOS_CLASS_UTILITY; break;
    case NJ_QOS_BACKGROUND: cls = QOS_CLASS_BACKGROUND; break;
    default: return -EINVAL;
    }
    int rc = pthread_set_qos_class_self_np(cls, 0);
    return rc ? -rc : 0;
}

/* --------------------------------------------------------- directories --- */

static _Thread_local char cache_buf[1024];
static _Thread_local char runtime_buf[1024];

/* ---- file watching: kqueue ---- */

#define WATCH_MAX 32

struct platform_watch {
    int kq;
    int owned[WATCH_MAX];       /* descriptors opened for EVFILT_VNODE */
    int n_owned;
};

platform_watch *platform_watch_new(int *err) {
    platform_watch *w = nj_calloc(1, sizeof *w);
    if (!w) {
        if (err) *err = -ENOMEM;
        return NULL;
    }
    w->kq = kqueue();
    if (w->kq < 0) {
        int e = -errno;
        nj_free(w);
        if (err) *err = nj_fail(e, "kqueue: %s", strerror(-e));
        return NULL;
    }
    if (err) *err = 0;
    return w;
}

static int watch_vnode(platform_watch *w, const char *path) {
    if (w->n_owned >= WATCH_MAX) return nj_fail(NJ_ETOOBIG, "too many files to watch");
    int fd = open(path, O_EVTONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct kevent ev;
    EV_SET(&ev, fd, EVFILT_VNODE, EV_ADD | EV_CLEAR,
           NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_RENAME | NOTE_DELETE, 0, NULL);
    if (kevent(w->kq, &ev, 1, NULL, 0, NULL) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    w->owned[w->n_owned++] = fd;
    return 0;
}

int platform_watch_file(platform_watch *w, const char *path) {
    watch_vnode(w, path);   /* may not exist yet: then only its directory */
    char dir[PATH_MAX];
    platform_dir_of(path, dir, sizeof dir);
    int rc = watch_vnode(w, dir);
    return rc ? nj_fail(rc, "cannot watch %s: %s", dir, strerror(-rc)) : 0;
}

int platform_watch_fd(platform_watch *w, int fd) {
    struct kevent ev;
    EV_SET(&ev, fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
    return kevent(w->kq, &ev, 1, NULL, 0, NULL) < 0 ? -errno : 0;
}

int platform_watch_wait(platform_watch *w, int timeout_ms) {
    struct kevent out[16];
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    int n = kevent(w->kq, NULL, 0, out, 16, timeout_ms < 0 ? NULL : &ts);
    if (n < 0) return -errno;
    return n > 0;
}

void platform_watch_free(platform_watch *w) {
    if (!w) return;
    for (int i = 0; i < w->n_owned; i++) close(w->owned[i]);
    close(w->kq);
    nj_free(w);
}

int platform_exe_path(char *buf, size_t cap) {
    uint32_t size = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
    if (_NSGetExecutablePath(buf, &size) != 0) return -ENAMETOOLONG;
    char real[PATH_MAX];
    if (!realpath(buf, real)) return -errno;
    size_t n = strlen(real);
    if (n + 1 > cap) return -ENAMETOOLONG;
    memcpy(buf, real, n + 1);
    return (int)n;
}

const char *platform_cache_dir(void) {
    const char *o = getenv("NIGHTJAR_CACHE_DIR");
    if (o && *o)
        snprintf(cache_buf, sizeof cache_buf, "%s", o);
    else
        snprintf(cache_buf, sizeof cache_buf, "%s/Library/Caches/nightjar", platform_home_dir());
    return cache_buf;
}

/* $TMPDIR on macOS is already per-user (/var/folders/...); the uid suffix
 * keeps the name the same shape as on Linux.  Trailing '/' is stripped. */
const char *platform_runtime_dir(void) {
    const char *t = getenv("TMPDIR");
    if (!t || t[0] != '/') t = "/tmp";
    size_t n = strlen(t);
    while (n > 1 && t[n - 1] == '/') n--;
    snprintf(runtime_buf, sizeof runtime_buf, "%.*s/nightjar-%u", (int)n, t, (unsigned)getuid());
    return runtime_buf;
}

/* ------------------------------------------------------------- sockets --- */

int platform_peer_uid(int fd, uint32_t *uid) {
    uid_t u;
    gid_t g;
    if (getpeereid(fd, &u, &g) != 0) return -errno;
    *uid = (uint32_t)u;
    return 0;
}
