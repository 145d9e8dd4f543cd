/*
 * test_proctable — the pid table behind parent.path/parent.cmdline: lookup,
 * pid reuse (a newer exec or fork replaces), exit grace in event time, LRU
 * eviction at capacity, string bounds, apply() on canonical events, and
 * allocation failure without leaks.
 */
#include "proctable.h"
#include "event.h"
#include "util.h"
#include "testutil.h"

static void test_exec_fork_lookup(void **state) {
    (void)state;
    proctable *t = proctable_new(16, 30, NULL);
    assert_non_null(t);
    assert_int_equal(proctable_exec(t, 100, 1, "/bin/bash", "bash -l", 1000), 0);
    assert_int_equal(proctable_fork(t, 101, 100, 1001), 0);
    proc_info pi;
    assert_true(proctable_get(t, 101, 1001, &pi));
    assert_string_equal(pi.path, "/bin/bash");              /* inherited image */
    assert_int_equal(pi.ppid, 100);
    assert_int_equal(proctable_exec(t, 101, -1, "/usr/bin/curl", "curl x", 1002), 0);
    assert_true(proctable_get(t, 101, 1002, &pi));
    assert_string_equal(pi.path, "/usr/bin/curl");
    assert_int_equal(pi.ppid, 100);                          /* kept across exec */
    assert_false(proctable_get(t, 999, 1002, &pi));
    proctable_free(t);
}

static void test_pid_reuse_and_exit_grace(void **state) {
    (void)state;
    proctable *t = proctable_new(16, 30, NULL);
    proc_info pi;
    proctable_exec(t, 200, 1, "/usr/sbin/old", NULL, 1000);
    proctable_exit(t, 200, 1100);
    assert_true(proctable_get(t, 200, 1120, &pi));           /* within grace */
    assert_string_equal(pi.path, "/usr/sbin/old");
    assert_false(proctable_get(t, 200, 1131, &pi));          /* grace over: gone */
    assert_int_equal(proctable_size(t), 0);
    proctable_exec(t, 200, 1, "/usr/sbin/old", NULL, 2000);
    proctable_exit(t, 200, 2001);
    proctable_exec(t, 200, 5, "/usr/bin/new", "new", 2002); /* pid reused */
    assert_true(proctable_get(t, 200, 5000, &pi));           /* running again: no expiry */
    assert_string_equal(pi.path, "/usr/bin/new");
    assert_int_equal(pi.ppid, 5);
    proctable_free(t);
}

static void test_lru_bound(void **state) {
    (void)state;
    proctable *t = proctable_new(4, 30, NULL);
    proc_info pi;
    for (long p = 1; p <= 4; p++) proctable_exec(t, p, 0, "/bin/x", NULL, 10);
    assert_true(proctable_get(t, 1, 10, &pi));               /* 1 is now most recent */
    proctable_exec(t, 5, 0, "/bin/y", NULL, 11);             /* evicts 2, the LRU */
    assert_int_equal(proctable_size(t), 4);
    assert_false(proctable_get(t, 2, 11, &pi));
    assert_true(proctable_get(t, 1, 11, &pi));
    assert_true(proctable_get(t, 5, 11, &pi));
    for (long p = 100; p < 10000; p++) proctable_exec(t, p, 0, "/bin/z", "z", 12);
    assert_int_equal(proctable_size(t), 4);
    /* long strings are cut at PT_STR_MAX on a character boundary */
    char big[3000];
    memset(big, 'a', sizeof big);
    big[PT_STR_MAX - 1] = (char)0xC3;  /* an 'é' straddling the limit */
    big[PT_STR_MAX] = (char)0xA9;
    big[sizeof big - 1] = 0;
    proctable_exec(t, 7, 0, big, big, 13);
    assert_true(proctable_get(t, 7, 13, &pi));
    assert_int_equal(strlen(pi.path), PT_STR_MAX - 1);
    proctable_free(t);
    int err = 0;
    assert_null(proctable_new(0, 1, &err));
    assert_int_equal(err, -EINVAL);
}

static json_t *mk(const char *kind, long pid, long ppid, const char *path, const char *cmd, long t) {
    char id[32];
    snprintf(id, sizeof id, "t:%ld:%ld", pid, t);
    json_t *ev = event_new(kind, id, NULL);
    event_set_time(ev, t, 0);
    if (pid >= 0) event_set_int(ev, EF_PROC_PID, pid);
    if (ppid >= 0) event_set_int(ev, EF_PROC_PPID, ppid);
    event_set_str(ev, EF_PROC_PATH, path, (size_t)-1);
    event_set_str(ev, EF_PROC_CMDLINE, cmd, (size_t)-1);
    return ev;
}

static void test_apply(void **state) {
    (void)state;
    proctable *t = proctable_new(64, 30, NULL);
    json_t *a = mk("exec", 10, 1, "/bin/bash", "bash", 100);
    assert_int_equal(proctable_apply(t, a), 0);
    assert_null(event_get(a, EF_PARENT));                    /* pid 1 unknown */
    json_t *b = mk("exec", 11, 10, "/usr/bin/curl", "curl x", 101);
    assert_int_equal(proctable_apply(t, b), 0);
    assert_string_equal(event_get_str(b, EF_PARENT_PATH), "/bin/bash");
    assert_string_equal(event_get_str(b, EF_PARENT_CMDLINE), "bash");
    long long pp;
    assert_int_equal(event_get_int(b, EF_PARENT_PID, &pp), 0);
    assert_int_equal(pp, 10);
    /* a parent given by the source is not overwritten */
    json_t *c = mk("exec", 12, 10, "/bin/ls", "ls", 102);
    event_set_str(c, EF_PARENT_PATH, "/from/source", (size_t)-1);
    assert_int_equal(proctable_apply(t, c), 0);
    assert_string_equal(event_get_str(c, EF_PARENT_PATH), "/from/source");
    /* exit of the parent, then a late child event inside and after the grace */
    json_t *x = mk("exit", 10, -1, NULL, NULL, 200);
    proctable_apply(t, x);
    json_t *d = mk("exec", 13, 10, "/bin/id", "id", 220);
    proctable_apply(t, d);
    assert_string_equal(event_get_str(d, EF_PARENT_PATH), "/bin/bash");
    json_t *e = mk("exec", 14, 10, "/bin/id", "id", 231);
    proctable_apply(t, e);
    assert_null(event_get_str(e, EF_PARENT_PATH));
    json_decref(a); json_decref(b); json_decref(c); json_decref(x); json_decref(d); json_decref(e);
    proctable_free(t);
}

static void test_alloc_failure(void **state) {
    (void)state;
    event_init();
    size_t before = nj_mem_in_use();
    bool done = false;
    for (long k = 0; k < 200 && !done; k++) {
        nj_alloc_fail_after(k);
        int err = 0;
        proctable *t = proctable_new(8, 30, &err);
        int rc = t ? 0 : err;
        for (long p = 1; t && p < 20 && !rc; p++) rc = proctable_exec(t, p, 0, "/bin/sh", "sh -c x", p);
        if (t && !rc) rc = proctable_fork(t, 100, 19, 30);
        nj_alloc_fail_after(-1);
        if (rc) assert_int_equal(rc, -ENOMEM);
        else done = true;
        proctable_free(t);
        assert_int_equal(nj_mem_in_use(), before);
    }
    assert_true(done);
}

int main(void) {
    event_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_fork_lookup),
        cmocka_unit_test(test_pid_reuse_and_exit_grace),
        cmocka_unit_test(test_lru_bound),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("proctable", tests, NULL, NULL);
}
