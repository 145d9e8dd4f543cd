/*
 * A minimal stand-in for cmocka, for cross-built test runs (scripts/test-arm)
 * where the target's libcmocka is not installed.  It implements only what
 * the kernel, matmul, quant, pool and util tests use: unit tests with
 * optional group setup/teardown, the assert_* macros (file:line and both
 * values on failure), fail/fail_msg/skip and print_message/print_error.
 * A failing assertion longjmps out of the test, as cmocka does; the summary
 * lines have cmocka's format, so scripts/run-tests can count them.
 *
 * Include it instead of <cmocka.h> by putting tests/shim first on the
 * include path.  Single-threaded tests only.
 */
#ifndef NJ_CMOCKA_SHIM_H
#define NJ_CMOCKA_SHIM_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*CMUnitTestFunction)(void **state);
typedef int (*CMFixtureFunction)(void **state);
struct CMUnitTest { const char *name; CMUnitTestFunction test_func; };

static jmp_buf shim_jmp;
static int shim_status;   /* 0 ok, 1 failed, 2 skipped */

static inline void print_message(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}
static inline void print_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}
static inline void shim_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: error: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    shim_status = 1;
    longjmp(shim_jmp, 1);
}

#define fail() shim_fail(__FILE__, __LINE__, "Failure!")
#define fail_msg(...) shim_fail(__FILE__, __LINE__, __VA_ARGS__)
#define skip() do { shim_status = 2; longjmp(shim_jmp, 1); } while (0)
#define assert_true(c) do { if (!(c)) shim_fail(__FILE__, __LINE__, "%s is not true", #c); } while (0)
#define assert_false(c) do { if (c) shim_fail(__FILE__, __LINE__, "%s is not false", #c); } while (0)
#define assert_int_equal(a, b) do { intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b); \
    if (a_ != b_) shim_fail(__FILE__, __LINE__, "%jd != %jd", a_, b_); } while (0)
#define assert_int_not_equal(a, b) do { intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b); \
    if (a_ == b_) shim_fail(__FILE__, __LINE__, "%jd == %jd", a_, b_); } while (0)
#define assert_non_null(p) do { if ((p) == NULL) shim_fail(__FILE__, __LINE__, "%s is NULL", #p); } while (0)
#define assert_null(p) do { if ((p) != NULL) shim_fail(__FILE__, __LINE__, "%s is not NULL", #p); } while (0)
#define assert_ptr_equal(a, b) do { uintptr_t a_ = (uintptr_t)(a), b_ = (uintptr_t)(b); \
    if (a_ != b_) shim_fail(__FILE__, __LINE__, "%#jx != %#jx", (uintmax_t)a_, (uintmax_t)b_); } while (0)
#define assert_string_equal(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (strcmp(a_, b_) != 0) shim_fail(__FILE__, __LINE__, "\"%s\" != \"%s\"", a_, b_); } while (0)
#define assert_memory_equal(a, b, n) do { if (memcmp((a), (b), (n)) != 0) \
    shim_fail(__FILE__, __LINE__, "%zu bytes at %s differ from %s", (size_t)(n), #a, #b); } while (0)

#define cmocka_unit_test(f) { #f, f }

static inline int shim_run(const char *group, const struct CMUnitTest *t, size_t n,
                           CMFixtureFunction setup, CMFixtureFunction teardown) {
    void *state = NULL;
    volatile size_t passed = 0, failed = 0, skipped = 0;   /* live across longjmp */
    printf("[==========] %s: Running %zu test(s).\n", group, n);
    if (setup && setup(&state) != 0) {
        printf("[  ERROR   ] %s: group setup failed\n", group);
        return (int)n;
    }
    for (volatile size_t i = 0; i < n; i++) {
        printf("[ RUN      ] %s\n", t[i].name);
        fflush(stdout);
        shim_status = 0;
        if (setjmp(shim_jmp) == 0) t[i].test_func(&state);
        if (shim_status == 0) { passed++; printf("[       OK ] %s\n", t[i].name); }
        else if (shim_status == 2) { skipped++; printf("[  SKIPPED ] %s\n", t[i].name); }
        else { failed++; printf("[  FAILED  ] %s\n", t[i].name); }
        fflush(stdout);
    }
    if (teardown) teardown(&state);
    printf("[==========] %s: %zu test(s) run.\n", group, n);
    printf("[  PASSED  ] %zu test(s).\n", (size_t)passed);
    if (skipped) printf("[  SKIPPED ] %zu test(s).\n", (size_t)skipped);
    if (failed) printf("[  FAILED  ] %zu test(s).\n", (size_t)failed);
    return (int)failed;
}
#define cmocka_run_group_tests_name(name, tests, setup, teardown) \
    shim_run(name, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)
#define cmocka_run_group_tests(tests, setup, teardown) \
    shim_run(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

#endif
