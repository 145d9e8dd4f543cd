/*
 * platform_posix — the parts of the platform layer that are the same on
 * Linux and macOS (plain POSIX), kept once here instead of in both
 * platform_linux.c and platform_macos.c.
 *
 * Memory.  platform_release_pages drops whole pages of a mapping from the
 * process's resident set with madvise(MADV_DONTNEED).  For a file mapping
 * the pages are re-read from the file (page cache) on the next access; for
 * anonymous private memory they come back zero-filled on Linux and may or
 * may not survive on macOS (where the advice only marks them first to be
 * reclaimed), so callers use it only on memory whose contents are
 * disposable or re-readable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdint.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "platform.h"
#include "platform_cpu.h"

size_t platform_page_size(void) {
    static size_t page;
    if (!page) {
        long v = sysconf(_SC_PAGESIZE);
        page = v > 0 ? (size_t)v : 4096;
    }
    return page;
}

/* Contract: only whole pages inside [addr, addr+len) are released (the range
 * is rounded inwards), so bytes outside the range are never touched.
 * Returns 0 or -errno. */
int platform_release_pages(void *addr, size_t len) {
    const uintptr_t page = (uintptr_t)platform_page_size();
    uintptr_t a = (uintptr_t)addr, end = a + len;
    if (end < a) return -EINVAL;
    uintptr_t lo = (a + page - 1) & ~(page - 1), hi = end & ~(page - 1);
    if (hi <= lo) return 0;
    if (madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) return -errno;
    return 0;
}

void platform_dir_of(const char *path, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, cap, ".");
}

int platform_no_core_dumps(void) {
    struct rlimit rl = {0, 0};
    return setrlimit(RLIMIT_CORE, &rl) == 0 ? 0 : -errno;
}

double platform_cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int platform_get_nice(void) {
    errno = 0;
    int v = getpriority(PRIO_PROCESS, 0);
    return (v == -1 && errno) ? 0 : v;
}

const char *platform_home_dir(void) {
    const char *h = getenv("HOME");
    if (h && *h) return h;
    struct passwd pw, *res = NULL;
    static _Thread_local char pwbuf[1024];
    if (getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res && res->pw_dir)
        return res->pw_dir;
    return "/tmp";
}
