/* test_util — error codes, the counting allocator and its fault injection. */
#include "testutil.h"
#include "util.h"

static void test_strerror(void **st) {
    (void)st;
    assert_string_equal(nj_strerror(0), "success");
    assert_string_equal(nj_strerror(NJ_EFORMAT), "malformed input");
    assert_string_equal(nj_strerror(-ENOENT), "No such file or directory");
    assert_int_equal(nj_fail(NJ_ECTX, "need %d have %d", 5, 4), NJ_ECTX);
    assert_string_equal(nj_last_error(), "need 5 have 4");
}

static void test_alloc_counts(void **st) {
    (void)st;
    size_t base = nj_mem_in_use();
    char *p = nj_malloc(1000);
    assert_non_null(p);
    assert_int_equal(nj_mem_in_use(), base + 1000);
    p = nj_realloc(p, 3000);
    assert_non_null(p);
    assert_int_equal(nj_mem_in_use(), base + 3000);
    nj_free(p);
    assert_int_equal(nj_mem_in_use(), base);
    void *a = nj_malloc_aligned(100);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 64, 0);
    nj_free_aligned(a);
    assert_int_equal(nj_mem_in_use(), base);
    assert_null(nj_calloc(SIZE_MAX / 2, 4)); /* overflow refused */
}

static void test_fault_injection(void **st) {
    (void)st;
    nj_alloc_fail_after(1);
    void *a = nj_malloc(8);
    void *b = nj_malloc(8);
    void *c = nj_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    nj_free(a); nj_free(c);
    nj_alloc_fail_after(-1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_alloc_counts),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
