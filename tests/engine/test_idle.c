/* test_idle — an idle engine costs no CPU: with the engine loaded (model mapped,
 * session with its KV cache, the 2-thread compute pool started and used)
 * and no request for 5 s, the process uses 0 CPU ticks (utime + stime from
 * /proc/self/stat, via platform_cpu_ticks).  A pool that spun, or any
 * periodic timer, would show ticks here. */
#include "testutil.h"
#include "nightjar.h"
#include "platform.h"

#include <time.h>

static void test_loaded_engine_is_idle(void **st) {
    (void)st;
    const char *path = nj_test_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!path) { skip(); return; }
    int err = 0;
    nj_model_params mp = {.n_threads = 2};
    nj_model *m = nj_model_load(path, &mp, &err);
    assert_non_null(m);
    nj_session_params sp = {.n_ctx = 512, .n_threads = 2};
    nj_session *s = nj_session_new(m, &sp, &err);
    assert_non_null(s);
    int32_t ids[64];
    int n = nj_tokenize(m, "The quick brown fox jumps over the lazy dog.", 44, true, false, ids, 64);
    assert_true(n > 0 && n < 64);
    assert_true(nj_session_eval(s, ids, n) >= 0);       /* pool threads exist and have run */
    assert_non_null(nj_session_logits(s));

    /* the pool's threads spin for at most 100 us after a run before they
     * park (pool.c): let that end, so a scheduler tick landing on it is
     * not counted as idle use */
    struct timespec settle = {0, 200 * 1000 * 1000};
    while (nanosleep(&settle, &settle) != 0) {}
    uint64_t before = platform_cpu_ticks();
    struct timespec ts = {5, 0};
    while (nanosleep(&ts, &ts) != 0) {}
    uint64_t used = platform_cpu_ticks() - before;
    print_message("idle 5 s with the engine loaded: %llu CPU ticks\n", (unsigned long long)used);
    assert_int_equal(used, 0);

    nj_session_free(s);
    nj_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaded_engine_is_idle),
    };
    return cmocka_run_group_tests_name("idle", tests, NULL, NULL);
}
