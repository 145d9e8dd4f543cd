/*
 * platform — every OS-specific call nightjar makes, behind one small API.
 * platform_linux.c and platform_macos.c implement it; no other file includes
 * OS-specific headers (sys/sysctl.h, mach/..., sys/auxv.h, linux/...).
 */
#ifndef NJ_PLATFORM_H
#define NJ_PLATFORM_H

#include <stdint.h>
#include <stddef.h>

/* CPU features, detected once (thread-safe, cached). */
enum {
    NJ_CPU_AVX2      = 1u << 0,  /* with FMA and F16C */
    NJ_CPU_AVX512    = 1u << 1,  /* F, BW, VL, DQ */
    NJ_CPU_AVX512VNNI= 1u << 2,
    NJ_CPU_AVX512BF16= 1u << 3,
    NJ_CPU_NEON      = 1u << 8,
    NJ_CPU_DOTPROD   = 1u << 9,
    NJ_CPU_FP16      = 1u << 10,
    NJ_CPU_I8MM      = 1u << 11,
};
uint32_t platform_cpu_features(void);
/* Mask features out (for tests and NIGHTJAR_CPU=scalar|avx2|...). */
void     platform_cpu_mask(uint32_t allowed);
int      platform_n_cpus(void);

/* Process resource use. */
uint64_t platform_rss_bytes(void);         /* current resident set */
uint64_t platform_peak_rss_bytes(void);    /* high-water mark */
/* CPU time of this process in clock ticks (utime+stime, as /proc reports). */
uint64_t platform_cpu_ticks(void);
double   platform_cpu_seconds(void);

/* Scheduling: nice level of the process; QoS class on macOS (no-op on Linux). */
int platform_set_nice(int level);           /* 0 or -errno */
int platform_get_nice(void);
enum { NJ_QOS_UTILITY = 0, NJ_QOS_BACKGROUND = 1 };
int platform_set_thread_qos(int qos);       /* 0 or -errno (-ENOSYS on Linux) */

/* Directories (static buffers; created on demand by the caller). */
const char *platform_cache_dir(void);       /* $XDG_CACHE_HOME/nightjar | ~/Library/Caches/nightjar */
const char *platform_runtime_dir(void);     /* $XDG_RUNTIME_DIR/nightjar | $TMPDIR/nightjar-$UID */

/* Absolute path of the running executable into buf: its length, or -errno
 * (-ENAMETOOLONG when cap is too small). */
int platform_exe_path(char *buf, size_t cap);

/* Waiting for files to change, without polling (inotify on Linux, kqueue
 * on macOS): a quiet log costs no CPU.  platform_watch_file watches a path
 * (the file: writes, truncation, rename, delete; and its directory: a new
 * file of that name, as after a rotation); call it again after reopening a
 * rotated file.  platform_watch_fd adds a descriptor to wait on for input
 * (a pipe on stdin).  platform_watch_wait blocks until something changed
 * (1), the timeout passed (0; timeout_ms < 0 waits forever) or a signal
 * came (-EINTR); the events are consumed, the caller looks at its files
 * again.  One thread per watcher. */
typedef struct platform_watch platform_watch;
platform_watch *platform_watch_new(int *err);
int  platform_watch_file(platform_watch *w, const char *path);
int  platform_watch_fd(platform_watch *w, int fd);
int  platform_watch_wait(platform_watch *w, int timeout_ms);
void platform_watch_free(platform_watch *w);

/* Peer credentials of a connected Unix socket: 0 and *uid, or -errno. */
int platform_peer_uid(int fd, uint32_t *uid);

/* Memory (platform_posix.c).  The VM page size; and: release the whole
 * pages inside [addr, addr+len) from the resident set (file mappings re-read
 * them on access, anonymous memory loses its contents).  0 or -errno. */
size_t platform_page_size(void);
int    platform_release_pages(void *addr, size_t len);

/* No core files for this process (RLIMIT_CORE 0, soft and hard, so it
 * cannot be raised again): a service holding event text must not leave
 * it on disk when it crashes (platform_posix.c).  0 or -errno. */
int    platform_no_core_dumps(void);

#endif
