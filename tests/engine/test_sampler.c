/* test_sampler — the sampling chain.
 *
 * Goldens: the token sequences below are what llama.cpp's own sampler
 * chain picks for the same synthetic logits, parameters and seed.  They
 * were produced with a small program against the peer's libllama:
 *   chain = penalties(n_vocab 1000, last_n 64, repeat R, 0, 0) -> top_k(K)
 *           -> top_p(P, 0) -> min_p(M, 0) -> temp_ext(T, 0, 1) -> dist(seed)
 *   accept 1, 4, 7, ..., 19 (history), then 12 times: logits[i] =
 *   4 sin(0.37 i + 0.11 step) + 0.001 i; apply; accept the selected id.
 * Equal sequences mean equal penalties, filtering, candidate order, RNG
 * (mt19937 + generate_canonical) and selection.
 */
#include "testutil.h"

#include <math.h>

#include "sampler.h"
#include "util.h"

enum { V = 1000, STEPS = 12 };

static void synth_logits(float *lg, int step) {
    for (int i = 0; i < V; i++) lg[i] = 4.0f * sinf(0.37f * i + 0.11f * step) + 0.001f * i;
}

static void run_chain(float temp, int k, float p, float minp, float rep, uint64_t seed,
                      int32_t *out) {
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);
    sp.temp = temp;
    sp.top_k = k;
    sp.top_p = p;
    sp.min_p = minp;
    sp.repeat_penalty = rep;
    sp.repeat_last_n = 64;
    sp.seed = seed;
    int err = 0;
    nj_sampler *s = nj_sampler_new(&sp, &err);
    assert_non_null(s);
    for (int i = 0; i < 7; i++) nj_sampler_accept(s, 3 * i + 1);
    float lg[V];
    for (int step = 0; step < STEPS; step++) {
        synth_logits(lg, step);
        out[step] = nj_sampler_sample(s, lg, V);
        assert_true(out[step] >= 0 && out[step] < V);
        nj_sampler_accept(s, out[step]);
    }
    nj_sampler_free(s);
}

static void test_llama_cpp_goldens(void **st) {
    (void)st;
    static const struct {
        float temp; int k; float p, minp, rep; uint64_t seed; int32_t want[STEPS];
    } g[] = {
        {0.8f, 40, 0.95f, 0.05f, 1.0f, 42, {734, 904, 683, 836, 750, 937, 852, 817, 919, 850, 969, 917}},
        {1.0f, 0, 1.0f, 0.0f, 1.0f, 7, {327, 430, 987, 579, 426, 374, 137, 543, 19, 645, 903, 443}},
        {0.7f, 0, 0.9f, 0.0f, 1.3f, 123, {736, 667, 512, 139, 513, 37, 630, 765, 783, 426, 988, 612}},
        {1.5f, 100, 1.0f, 0.1f, 1.1f, 99, {429, 733, 752, 411, 987, 394, 986, 918, 461, 765, 783, 918}},
        {0.0f, 40, 0.95f, 0.05f, 1.5f, 5, {989, 972, 955, 988, 971, 954, 987, 970, 953, 986, 969, 952}},
    };
    for (size_t c = 0; c < NJ_ARRAY_LEN(g); c++) {
        int32_t got[STEPS];
        run_chain(g[c].temp, g[c].k, g[c].p, g[c].minp, g[c].rep, g[c].seed, got);
        for (int i = 0; i < STEPS; i++)
            if (got[i] != g[c].want[i])
                fail_msg("case %zu step %d: got %d, llama.cpp %d", c, i, got[i], g[c].want[i]);
    }
}

static void test_mt19937(void **st) {
    (void)st;
    nj_mt19937 mt;
    mt_seed(&mt, 5489);
    assert_int_equal(mt_next(&mt), 3499211612u);
    for (int i = 1; i < 9999; i++) mt_next(&mt);
    assert_int_equal(mt_next(&mt), 4123659995u);   /* the C++ standard's check value */
    mt_seed(&mt, 1);
    for (int i = 0; i < 1000; i++) {
        double u = mt_canonical(&mt);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

static void test_greedy_and_penalty(void **st) {
    (void)st;
    float lg[5] = {1.0f, 3.0f, 2.9f, -1.0f, 0.5f};
    assert_int_equal(sampler_argmax(lg, 5), 1);
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);
    sp.temp = 0.0f;
    sp.repeat_penalty = 1.1f;
    nj_sampler *s = nj_sampler_new(&sp, NULL);
    assert_non_null(s);
    assert_int_equal(nj_sampler_sample(s, lg, 5), 1);
    nj_sampler_accept(s, 1);   /* 3.0 / 1.1 = 2.73 < 2.9 */
    assert_int_equal(nj_sampler_sample(s, lg, 5), 2);
    assert_true(lg[1] == 3.0f);   /* the caller's logits are not modified */
    nj_sampler_free(s);

    /* negative logits are multiplied: penalising makes them less likely */
    float neg[2] = {-1.0f, -1.05f};
    sp.repeat_penalty = 1.2f;
    s = nj_sampler_new(&sp, NULL);
    nj_sampler_accept(s, 0);
    assert_int_equal(nj_sampler_sample(s, neg, 2), 1);
    nj_sampler_free(s);
}

/* top_k = 1 is greedy at any temperature; tiny top_p too. */
static void test_filters(void **st) {
    (void)st;
    float lg[V];
    synth_logits(lg, 3);
    int32_t best = sampler_argmax(lg, V);
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);
    sp.temp = 5.0f;
    sp.min_p = 0.0f;
    sp.top_p = 1.0f;
    sp.top_k = 1;
    sp.seed = 3;
    nj_sampler *s = nj_sampler_new(&sp, NULL);
    for (int i = 0; i < 50; i++) assert_int_equal(nj_sampler_sample(s, lg, V), best);
    nj_sampler_free(s);
    sp.top_k = 0;
    sp.top_p = 1e-6f;
    s = nj_sampler_new(&sp, NULL);
    for (int i = 0; i < 50; i++) assert_int_equal(nj_sampler_sample(s, lg, V), best);
    nj_sampler_free(s);

    /* min_p keeps only tokens with p >= min_p * p_max */
    float two[4] = {0.0f, -0.5f, -3.0f, -10.0f};   /* p ratios 1, .61, .05, 4.5e-5 */
    sp.top_p = 1.0f;
    sp.temp = 1.0f;
    sp.min_p = 0.5f;
    s = nj_sampler_new(&sp, NULL);
    int seen[4] = {0};
    for (int i = 0; i < 2000; i++) seen[nj_sampler_sample(s, two, 4)]++;
    assert_true(seen[0] > 0 && seen[1] > 0);
    assert_int_equal(seen[2] + seen[3], 0);
    nj_sampler_free(s);
}

/* With temperature 1 and no filters, frequencies follow softmax. */
static void test_distribution(void **st) {
    (void)st;
    float lg[2] = {0.0f, logf(3.0f)};
    nj_sampler_params sp = {.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                            .repeat_penalty = 1.0f, .repeat_last_n = 0, .seed = 11};
    nj_sampler *s = nj_sampler_new(&sp, NULL);
    int n1 = 0, N = 20000;
    for (int i = 0; i < N; i++) n1 += nj_sampler_sample(s, lg, 2) == 1;
    double f = (double)n1 / N;
    assert_true(fabs(f - 0.75) < 0.015);   /* 5 sigma is ~0.015 */
    nj_sampler_free(s);
}

static void test_seeds(void **st) {
    (void)st;
    int32_t a[STEPS], b[STEPS], c[STEPS];
    run_chain(1.0f, 0, 1.0f, 0.0f, 1.0f, 1234, a);
    run_chain(1.0f, 0, 1.0f, 0.0f, 1.0f, 1234, b);
    run_chain(1.0f, 0, 1.0f, 0.0f, 1.0f, 1235, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

static void test_bad_params(void **st) {
    (void)st;
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);
    assert_int_equal(sp.seed, NJ_SEED_RANDOM);
    sp.repeat_penalty = 0.0f;
    int err = 0;
    assert_null(nj_sampler_new(&sp, &err));
    assert_int_equal(err, -EINVAL);
    nj_sampler_default_params(&sp);
    sp.repeat_last_n = -1;
    assert_null(nj_sampler_new(&sp, &err));
    nj_sampler *s = nj_sampler_new(NULL, &err);
    assert_non_null(s);
    assert_true(nj_sampler_sample(s, NULL, 10) < 0);
    nj_sampler_free(s);
    nj_sampler_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_cpp_goldens),
        cmocka_unit_test(test_mt19937),
        cmocka_unit_test(test_greedy_and_penalty),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
