/* test_platform — CPU feature detection and masks, resource counters, nice,
 * directories, peer credentials and page release.
 *
 * NIGHTJAR_CPU is read once per process, so its test re-executes this binary
 * with the variable set and `--print-features`, and compares the output. */
#include "testutil.h"
#include "platform.h"
#include "util.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *argv0; /* this binary, re-executed by test_env_levels */

static const uint32_t X86_ALL = NJ_CPU_AVX2 | NJ_CPU_AVX512 | NJ_CPU_AVX512VNNI | NJ_CPU_AVX512BF16;
static const uint32_t ARM_ALL = NJ_CPU_NEON | NJ_CPU_DOTPROD | NJ_CPU_FP16 | NJ_CPU_I8MM;

static void test_features_consistent(void **st) {
    (void)st;
    uint32_t f = platform_cpu_features();
    assert_int_equal(f, platform_cpu_features()); /* cached, stable */
#if defined(__x86_64__)
    assert_int_equal(f & ARM_ALL, 0);
    /* AVX-512 extensions only ever come with the base set, base only with AVX2. */
    if (f & (NJ_CPU_AVX512VNNI | NJ_CPU_AVX512BF16)) assert_true(f & NJ_CPU_AVX512);
    if (f & NJ_CPU_AVX512) assert_true(f & NJ_CPU_AVX2);
    /* Cross-check against the compiler's own runtime detection. */
    __builtin_cpu_init();
    assert_int_equal(!!(f & NJ_CPU_AVX2),
                     __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                     __builtin_cpu_supports("f16c"));
    assert_int_equal(!!(f & NJ_CPU_AVX512),
                     __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"));
    if (f & NJ_CPU_AVX512)
        assert_int_equal(!!(f & NJ_CPU_AVX512VNNI), !!__builtin_cpu_supports("avx512vnni"));
#elif defined(__aarch64__)
    assert_int_equal(f & X86_ALL, 0);
    assert_true(f & NJ_CPU_NEON); /* ASIMD is mandatory on AArch64 Linux */
    if (f & (NJ_CPU_DOTPROD | NJ_CPU_FP16 | NJ_CPU_I8MM)) assert_true(f & NJ_CPU_NEON);
#endif
}

static void test_mask(void **st) {
    (void)st;
    uint32_t f = platform_cpu_features();
    platform_cpu_mask(0);
    assert_int_equal(platform_cpu_features(), 0);
    platform_cpu_mask(NJ_CPU_AVX2 | NJ_CPU_NEON);
    assert_int_equal(platform_cpu_features(), f & (NJ_CPU_AVX2 | NJ_CPU_NEON));
    platform_cpu_mask(~0u);
    assert_int_equal(platform_cpu_features(), f);
}

/* Run ourselves with NIGHTJAR_CPU=level and return the features printed. */
static uint32_t features_with_env(const char *level) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        setenv("NIGHTJAR_CPU", level, 1);
        setenv("NIGHTJAR_LOG", "error", 1);
        execl(argv0, argv0, "--print-features", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[64] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(n > 0);
    return (uint32_t)strtoul(buf, NULL, 16);
}

static void test_env_levels(void **st) {
    (void)st;
    uint32_t f = platform_cpu_features();
    assert_int_equal(features_with_env("scalar"), 0);
    assert_int_equal(features_with_env("avx2"), f & NJ_CPU_AVX2);
    assert_int_equal(features_with_env("avx512"), f & X86_ALL);
    assert_int_equal(features_with_env("neon"), f & ARM_ALL);
    assert_int_equal(features_with_env("native"), f);
    assert_int_equal(features_with_env("bogus"), f); /* ignored with a warning */
}

static void test_n_cpus(void **st) {
    (void)st;
    int n = platform_n_cpus();
    assert_true(n >= 1);
    assert_true(n <= sysconf(_SC_NPROCESSORS_CONF) || sysconf(_SC_NPROCESSORS_CONF) < 1);
}

static void test_rss_and_release(void **st) {
    (void)st;
    const size_t len = 64u << 20;
    uint64_t before = platform_rss_bytes();
    assert_true(before > 0);
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    memset(m, 1, len);
    uint64_t touched = platform_rss_bytes();
    assert_true(touched >= before + len - (8u << 20));
    assert_true(platform_peak_rss_bytes() >= touched);
    /* Unaligned range: whole pages inside it are released, the bytes at the
     * unaligned edges are kept. */
    assert_int_equal(platform_release_pages(m + 1, len - 2), 0);
    assert_int_equal(m[0], 1);
    assert_int_equal(m[len - 1], 1);
#if defined(__linux__)
    /* Linux drops them at once and refills anonymous pages with zeros (macOS
     * only marks them reclaimable). */
    uint64_t released = platform_rss_bytes();
    assert_true(released + len - (8u << 20) <= touched);
    assert_int_equal(m[len / 2], 0);
#endif
    /* The high-water mark stays up; VmHWM and statm are separately batched
     * kernel counters that may differ by a few pages, hence the slack. */
    assert_true(platform_peak_rss_bytes() + (1u << 20) >= touched);
    assert_int_equal(platform_release_pages(m + 1, 10), 0); /* no whole page: no-op */
    munmap(m, len);
}

static void test_cpu_time(void **st) {
    (void)st;
    uint64_t t0 = platform_cpu_ticks();
    double s0 = platform_cpu_seconds();
    long hz = sysconf(_SC_CLK_TCK);
    volatile uint64_t x = 1;
    double start = nj_now();
    while (platform_cpu_ticks() < t0 + 5 && nj_now() - start < 5)
        for (int i = 0; i < 1000000; i++) x = x * 6364136223846793005ull + 1;
    uint64_t t1 = platform_cpu_ticks();
    double s1 = platform_cpu_seconds();
    assert_true(t1 >= t0 + 5);
    /* Both clocks saw the same work (ticks are coarse: allow 3 ticks). */
    double dt = (double)(t1 - t0) / hz, ds = s1 - s0;
    assert_true(ds > dt - 3.0 / hz && ds < dt + 3.0 / hz);
}

static void test_nice(void **st) {
    (void)st;
    int n0 = platform_get_nice();
    int target = n0 < 19 ? n0 + 1 : n0;
    assert_int_equal(platform_set_nice(target), 0);
    assert_int_equal(platform_get_nice(), target);
    assert_int_equal(platform_set_nice(42), -EINVAL);
    /* Going back down needs privilege; either it works or says why. */
    int rc = platform_set_nice(n0);
    assert_true(rc == 0 || rc == -EACCES || rc == -EPERM);
    if (rc == 0) assert_int_equal(platform_get_nice(), n0);
#if defined(__linux__)
    assert_int_equal(platform_set_thread_qos(NJ_QOS_BACKGROUND), -ENOSYS);
#endif
}

static void test_dirs(void **st) {
    (void)st;
#if !defined(__linux__)
    skip(); /* XDG rules are the Linux implementation's */
#endif
    char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    char *old_rt = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    unsetenv("NIGHTJAR_CACHE_DIR");

    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    assert_string_equal(platform_cache_dir(), "/x/cache/nightjar");
    setenv("XDG_CACHE_HOME", "relative", 1); /* ignored per the XDG spec */
    setenv("HOME", "/home/h", 1);
    assert_string_equal(platform_cache_dir(), "/home/h/.cache/nightjar");
    unsetenv("XDG_CACHE_HOME");
    assert_string_equal(platform_cache_dir(), "/home/h/.cache/nightjar");
    setenv("NIGHTJAR_CACHE_DIR", "/o", 1);
    assert_string_equal(platform_cache_dir(), "/o");
    unsetenv("NIGHTJAR_CACHE_DIR");

    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    assert_string_equal(platform_runtime_dir(), "/run/user/7/nightjar");
    unsetenv("XDG_RUNTIME_DIR");
    char want[256];
    const char *t = getenv("TMPDIR");
    snprintf(want, sizeof want, "%s/nightjar-%u", t && t[0] == '/' ? t : "/tmp", (unsigned)getuid());
    assert_string_equal(platform_runtime_dir(), want);

    if (old_xdg) setenv("XDG_CACHE_HOME", old_xdg, 1);
    if (old_rt) setenv("XDG_RUNTIME_DIR", old_rt, 1);
    if (old_home) setenv("HOME", old_home, 1); else unsetenv("HOME");
    free(old_xdg); free(old_rt); free(old_home);
}

static void test_peer_uid(void **st) {
    (void)st;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    uint32_t uid = 12345;
    assert_int_equal(platform_peer_uid(sv[0], &uid), 0);
    assert_int_equal(uid, getuid());
    close(sv[0]); close(sv[1]);
    assert_true(platform_peer_uid(-1, &uid) < 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(platform_peer_uid(p[0], &uid), -ENOTSOCK);
    close(p[0]); close(p[1]);
}

int main(int argc, char **argv) {
    argv0 = argv[0];
    if (argc > 1 && !strcmp(argv[1], "--print-features")) {
        printf("%x\n", (unsigned)platform_cpu_features());
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_consistent),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_env_levels),
        cmocka_unit_test(test_n_cpus),
        cmocka_unit_test(test_rss_and_release),
        cmocka_unit_test(test_cpu_time),
        cmocka_unit_test(test_nice),
        cmocka_unit_test(test_dirs),
        cmocka_unit_test(test_peer_uid),
    };
    return cmocka_run_group_tests_name("platform", tests, NULL, NULL);
}
