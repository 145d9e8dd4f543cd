/*
 * test_urgency — the scheduler's urgency rules (src/serve/urgency.h) on a
 * simulated clock: order by class, then deadline, then submission; aging
 * that bounds how long any request waits for its next step however much
 * urgent work keeps arriving; the slot kept free for urgent work.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "urgency.h"
#include "util.h"

static urgency_key key(int prio, double deadline, double submitted, unsigned long long seq) {
    return (urgency_key){.prio = prio, .deadline = deadline, .last_served = submitted, .seq = seq};
}

/* The class decides first, whatever the deadlines and submission order. */
static void test_class_order(void **state) {
    (void)state;
    urgency_key crit = key(URG_CRITICAL, INFINITY, 0, 9), high = key(URG_HIGH, 1.0, 0, 2);
    urgency_key norm = key(URG_NORMAL, 0.5, 0, 1), bulk = key(URG_BULK, 0.1, 0, 0);
    const urgency_key *order[] = {&crit, &high, &norm, &bulk};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            bool want = i < j;
            if (urgency_before(order[i], order[j], 0.1, 0) != want)
                fail_msg("class %d before class %d: expected %d", order[i]->prio, order[j]->prio, want);
        }
}

/* Within a class: earliest deadline first, no deadline last, then FIFO. */
static void test_deadline_order(void **state) {
    (void)state;
    urgency_key late = key(URG_HIGH, 50.0, 0, 1), early = key(URG_HIGH, 10.0, 0, 2);
    urgency_key none_old = key(URG_HIGH, INFINITY, 0, 0), none_new = key(URG_HIGH, INFINITY, 0, 3);
    assert_true(urgency_before(&early, &late, 1, 0));
    assert_false(urgency_before(&late, &early, 1, 0));
    assert_true(urgency_before(&late, &none_old, 1, 0));
    assert_true(urgency_before(&none_old, &none_new, 1, 0));
    assert_false(urgency_before(&none_new, &none_old, 1, 0));
    assert_false(urgency_before(&early, &early, 1, 0));   /* strict: not before itself */
}

/* The effective class drops one step per aging period waited, without a
 * floor, and aging 0 leaves it alone. */
static void test_aging(void **state) {
    (void)state;
    urgency_key b = key(URG_BULK, INFINITY, 100.0, 0);
    assert_int_equal(urgency_class(&b, 100.0, 1000), URG_BULK);
    assert_int_equal(urgency_class(&b, 100.999, 1000), URG_BULK);
    assert_int_equal(urgency_class(&b, 101.0, 1000), URG_NORMAL);
    assert_int_equal(urgency_class(&b, 103.5, 1000), URG_CRITICAL);
    assert_int_equal(urgency_class(&b, 105.0, 1000), -2);
    assert_int_equal(urgency_class(&b, 1e9, 0), URG_BULK);
    assert_int_equal(urgency_class(&b, 99.0, 1000), URG_BULK);   /* clock before last step */
    assert_true(urgency_class(&b, 1e12, 1) < -1000);               /* huge waits do not overflow */
}

/* Bounded starvation on a simulated engine: one slot's worth of steps of
 * 0.1 s, a fresh critical request (with a tight deadline) arriving before
 * every step, and one bulk request submitted first.  With aging the bulk
 * request gets a step within (class + 1) x aging + one step, every time;
 * without aging it never runs. */
static int bulk_steps_run(int aging_ms, double horizon, double *max_gap) {
    const double step = 0.1;
    urgency_key bulk = key(URG_BULK, INFINITY, 0.0, 0);
    unsigned long long seq = 1;
    double last = 0.0;
    int runs = 0;
    *max_gap = 0;
    for (double now = 0.0; now < horizon; now += step) {
        urgency_key crit = key(URG_CRITICAL, now + 0.05, now, seq++);
        if (urgency_before(&bulk, &crit, now, aging_ms)) {
            runs++;
            if (now - last > *max_gap) *max_gap = now - last;
            bulk.last_served = now + step;
            last = now + step;
        }
    }
    return runs;
}

static void test_bounded_starvation(void **state) {
    (void)state;
    double gap;
    int runs = bulk_steps_run(1000, 60.0, &gap);
    assert_true(runs >= 60.0 / (4 * 1.0 + 0.1) - 1);
    if (gap > 4 * 1.0 + 0.1 + 1e-9) fail_msg("bulk waited %.2f s for a step; bound %.2f s", gap, 4.1);
    runs = bulk_steps_run(0, 60.0, &gap);
    assert_int_equal(runs, 0);   /* strict classes: starved (the control) */
}

/* With several slots, normal and bulk leave the last free one; critical
 * and high may take it; one slot reserves nothing. */
static void test_admission_reserve(void **state) {
    (void)state;
    assert_true(urgency_may_admit(URG_BULK, 2, 2));
    assert_false(urgency_may_admit(URG_BULK, 1, 2));
    assert_false(urgency_may_admit(URG_NORMAL, 1, 4));
    assert_true(urgency_may_admit(URG_HIGH, 1, 2));
    assert_true(urgency_may_admit(URG_CRITICAL, 1, 2));
    assert_true(urgency_may_admit(-3, 1, 2));        /* aged past critical */
    assert_true(urgency_may_admit(URG_BULK, 1, 1));
    assert_false(urgency_may_admit(URG_CRITICAL, 0, 2));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_order),
        cmocka_unit_test(test_deadline_order),
        cmocka_unit_test(test_aging),
        cmocka_unit_test(test_bounded_starvation),
        cmocka_unit_test(test_admission_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
