/*
 * test_aggregate — sshd failure aggregation driven by event time: threshold
 * reached -> one event with count and users; below it -> events released
 * as they were; sliding window expiry; the 5-window cap on a steady run;
 * success after failures flagged; uncounted (pam / Invalid user) lines;
 * flush; allocation failure without leaks.
 */
#include "aggregate.h"
#include "event.h"
#include "util.h"
#include "testutil.h"

typedef struct out { json_t *ev[256]; int n; } out;

static int collect(void *ctx, json_t *ev) {
    out *o = ctx;
    if (o->n < 256) o->ev[o->n++] = ev; else json_decref(ev);
    return 0;
}
static void out_free(out *o) { for (int i = 0; i < o->n; i++) json_decref(o->ev[i]); o->n = 0; }

static json_t *fail_ev(long t, const char *ip, const char *user, const char *method) {
    static int seq;
    char id[32];
    snprintf(id, sizeof id, "f:%d", ++seq);
    json_t *ev = event_new("auth", id, NULL);
    event_set_time(ev, t, 0);
    event_set_str(ev, EF_AUTH_RESULT, "failure", (size_t)-1);
    event_set_str(ev, EF_AUTH_SRC_IP, ip, (size_t)-1);
    event_set_str(ev, EF_AUTH_USER, user, (size_t)-1);
    event_set_str(ev, EF_AUTH_METHOD, method, (size_t)-1);
    event_set_int(ev, EF_AUTH_SRC_PORT, 40000);
    return ev;
}
static json_t *ok_ev(long t, const char *ip) {
    json_t *ev = fail_ev(t, ip, "root", "password");
    event_set_str(ev, EF_AUTH_RESULT, "success", (size_t)-1);
    return ev;
}
static long long ival(json_t *ev, ev_field f) { long long v = -1; event_get_int(ev, f, &v); return v; }

static void test_threshold_and_window(void **state) {
    (void)state;
    out o = {0};
    aggregate *a = aggregate_new(60, 3, collect, &o, NULL);
    assert_int_equal(aggregate_push(a, fail_ev(1000, "203.0.113.9", "root", "password")), 0);
    assert_int_equal(aggregate_push(a, fail_ev(1010, "203.0.113.9", "admin", "password")), 0);
    assert_int_equal(aggregate_push(a, fail_ev(1020, "203.0.113.9", "root", "password")), 0);
    assert_int_equal(aggregate_push(a, fail_ev(1030, "198.51.100.1", "bob", "password")), 0);
    assert_int_equal(o.n, 0);                                 /* all held */
    /* an unrelated event at t=1081 passes through and closes 203.0.113.9 (last 1020 + 60 < 1081) */
    json_t *other = event_new("exec", "x:1", NULL);
    event_set_time(other, 1081, 0);
    assert_int_equal(aggregate_push(a, other), 0);
    assert_int_equal(o.n, 2);
    json_t *agg = o.ev[0];
    assert_int_equal(ival(agg, EF_AUTH_COUNT), 3);
    json_t *users = event_get(agg, EF_AUTH_USERS);
    assert_int_equal(json_array_size(users), 2);
    assert_string_equal(json_string_value(json_array_get(users, 0)), "root");
    assert_string_equal(json_string_value(json_array_get(users, 1)), "admin");
    assert_null(event_get(agg, EF_AUTH_SRC_PORT));            /* per-connection facts dropped */
    assert_string_equal(event_get_str(agg, EF_TIME), "1970-01-01T00:16:40.000000Z");
    assert_int_equal(event_validate(agg), 0);
    assert_string_equal(event_get_str(o.ev[1], EF_KIND), "exec");
    /* 198.51.100.1 (one failure) closes at flush and comes out as it was */
    assert_int_equal(aggregate_flush(a), 0);
    assert_int_equal(o.n, 3);
    assert_int_equal(ival(o.ev[2], EF_AUTH_COUNT), -1);
    assert_string_equal(event_get_str(o.ev[2], EF_AUTH_USER), "bob");
    out_free(&o);
    aggregate_free(a);
}

static void test_sliding_and_cap(void **state) {
    (void)state;
    out o = {0};
    aggregate *a = aggregate_new(60, 2, collect, &o, NULL);
    /* one failure every 50 s: each extends the window; the 5-window cap
     * (300 s from the first) closes the bucket on the 7th */
    for (int i = 0; i < 7; i++) aggregate_push(a, fail_ev(1000 + 50 * i, "203.0.113.9", "root", "password"));
    assert_int_equal(o.n, 1);
    assert_int_equal(ival(o.ev[0], EF_AUTH_COUNT), 6);
    aggregate_flush(a);
    assert_int_equal(o.n, 2);                                 /* the 7th, alone in a new bucket */
    assert_int_equal(ival(o.ev[1], EF_AUTH_COUNT), -1);
    out_free(&o);
    aggregate_free(a);
}

static void test_success_after_failures(void **state) {
    (void)state;
    out o = {0};
    aggregate *a = aggregate_new(60, 5, collect, &o, NULL);
    aggregate_push(a, fail_ev(1000, "203.0.113.9", "root", NULL));          /* "Invalid user": uncounted */
    aggregate_push(a, fail_ev(1001, "203.0.113.9", "root", "pam"));         /* pam line: uncounted */
    aggregate_push(a, fail_ev(1002, "203.0.113.9", "root", "password"));
    aggregate_push(a, fail_ev(1003, "203.0.113.9", "root", "password"));
    aggregate_push(a, ok_ev(1004, "203.0.113.9"));
    /* below threshold: the four failures as they were, then the success */
    assert_int_equal(o.n, 5);
    assert_int_equal(ival(o.ev[4], EF_AUTH_AFTER_FAILURES), 2);
    assert_string_equal(event_get_str(o.ev[4], EF_AUTH_RESULT), "success");
    /* a success from an address without failures is not flagged */
    aggregate_push(a, ok_ev(1005, "192.0.2.1"));
    assert_int_equal(ival(o.ev[5], EF_AUTH_AFTER_FAILURES), -1);
    /* success after a flush still learns the count (closed bucket kept for the window) */
    aggregate_push(a, fail_ev(2000, "198.51.100.9", "a", "password"));
    aggregate_flush(a);
    aggregate_push(a, ok_ev(2030, "198.51.100.9"));
    assert_int_equal(ival(o.ev[o.n - 1], EF_AUTH_AFTER_FAILURES), 1);
    out_free(&o);
    aggregate_free(a);
}

static void test_alloc_failure(void **state) {
    (void)state;
    event_init();
    bool done = false;
    for (long k = 0; k < 2000 && !done; k++) {
        size_t before = nj_mem_in_use();
        json_t *evs[8];
        for (int i = 0; i < 6; i++) evs[i] = fail_ev(1000 + i, i % 2 ? "203.0.113.9" : "198.51.100.1", i % 3 ? "root" : "x", "password");
        evs[6] = ok_ev(1010, "203.0.113.9");
        evs[7] = ok_ev(1200, "192.0.2.2");
        out o = {0};
        nj_alloc_fail_after(k);
        int rc = 0, err = 0;
        aggregate *a = aggregate_new(60, 2, collect, &o, &err);
        if (!a) rc = err;
        for (int i = 0; i < 8; i++) {
            int r = a ? aggregate_push(a, evs[i]) : (json_decref(evs[i]), 0);
            if (r && !rc) rc = r;
        }
        if (a) { int r = aggregate_flush(a); if (r && !rc) rc = r; }
        nj_alloc_fail_after(-1);
        aggregate_free(a);
        if (rc) assert_int_equal(rc, -ENOMEM);
        else { done = true; assert_int_equal(o.n, 4); }
        out_free(&o);
        assert_int_equal(nj_mem_in_use(), before);
    }
    assert_true(done);
}

int main(void) {
    event_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_and_window),
        cmocka_unit_test(test_sliding_and_cap),
        cmocka_unit_test(test_success_after_failures),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("aggregate", tests, NULL, NULL);
}
