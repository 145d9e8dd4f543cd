/* test_perplexity — engine/perplexity on random-weight models (modelgen):
 *
 *  - ppl_nll and ppl_kl against closed forms (uniform and two-point
 *    distributions, shifted logits, ties for the top-1 check);
 *  - ppl_run's perplexity equals one computed here the slow way: each
 *    window evaluated whole in one call, every scored position's
 *    log-softmax summed by hand (so the window cutting, the BOS
 *    substitution, the half-window scoring and the piecewise evaluation
 *    are all checked), for several piece sizes;
 *  - a model against itself: KL 0, top-1 100 %, the same perplexity; a
 *    Q4_0 copy against its F32 source: KL > 0, perplexities differ;
 *  - errors: a text too short for two windows, an odd context, models
 *    with different vocabularies.
 */
#include "testutil.h"

#include <math.h>
#include <unistd.h>

#include "model.h"
#include "modelgen.h"
#include "nightjar.h"
#include "perplexity.h"
#include "quant.h"
#include "session.h"
#include "tokenizer.h"
#include "util.h"

static char dir[512];

static const char *write_model(const char *preset, int type, int vocab, const char *file) {
    static char path[2][700];
    static int k;
    k ^= 1;
    modelgen_params p;
    assert_int_equal(modelgen_preset(preset, &p), 0);
    p.type = type;
    if (vocab) p.synth_vocab = vocab;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, file);
    int rc = modelgen_write(&p, path[k]);
    if (rc) fail_msg("modelgen_write: %s %s", nj_strerror(rc), nj_last_error());
    return path[k];
}

/* A few hundred words of letters the synthetic vocabulary covers. */
static char *make_text(int words) {
    char *t = nj_malloc((size_t)words * 10 + 1);
    assert_non_null(t);
    uint64_t x = 0x1234567;
    size_t n = 0;
    for (int w = 0; w < words; w++) {
        int len = 2 + (int)(x % 6);
        for (int i = 0; i < len; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            t[n++] = (char)('a' + (x >> 33) % 26);
        }
        t[n++] = ' ';
    }
    t[n] = 0;
    return t;
}

static void test_math(void **state) {
    (void)state;
    float u[8] = {3, 3, 3, 3, 3, 3, 3, 3};
    assert_float_equal(ppl_nll(u, 8, 5), log(8.0), 1e-9);
    float two[2] = {0, (float)log(3.0)};   /* p = 1/4, 3/4 */
    assert_float_equal(ppl_nll(two, 2, 0), log(4.0), 1e-6);
    assert_float_equal(ppl_nll(two, 2, 1), log(4.0 / 3.0), 1e-6);
    float shifted[2] = {1000, 1000 + (float)log(3.0)};   /* no overflow, same distribution */
    assert_float_equal(ppl_nll(shifted, 2, 1), log(4.0 / 3.0), 1e-4);
    bool top = false;
    assert_float_equal(ppl_kl(two, two, 2, &top), 0, 1e-12);
    assert_true(top);
    float half[2] = {0, 0};
    /* KL((1/4,3/4) || (1/2,1/2)) = 1/4 ln(1/2) + 3/4 ln(3/2) */
    double want = 0.25 * log(0.5) + 0.75 * log(1.5);
    assert_float_equal(ppl_kl(two, half, 2, &top), want, 1e-6);
    assert_false(top);   /* ties take the first index: 0 vs 1 */
    assert_float_equal(ppl_kl(half, two, 2, NULL), 0.5 * log(0.5 / 0.25) + 0.5 * log(0.5 / 0.75), 1e-6);
}

/* Perplexity of the first n_chunks windows, computed without ppl_run. */
static double slow_ppl(nj_model *m, const char *text, int n_ctx, int n_chunks) {
    int cap = (int)strlen(text) + 2;
    int32_t *tok = nj_malloc(sizeof(int32_t) * (size_t)cap);
    assert_non_null(tok);
    int n = nj_tokenize(m, text, strlen(text), true, false, tok, cap);
    assert_true(n >= 2 * n_ctx);
    const int V = m->hp.n_vocab;
    float *rows = nj_malloc(sizeof(float) * (size_t)n_ctx * (size_t)V);
    int32_t *ids = nj_malloc(sizeof(int32_t) * (size_t)n_ctx);
    assert_non_null(rows);
    assert_non_null(ids);
    int err = 0;
    nj_session_params sp = {.n_ctx = n_ctx, .n_batch = n_ctx};
    nj_session *s = nj_session_new(m, &sp, &err);
    assert_non_null(s);
    double nll = 0;
    long count = 0;
    for (int c = 0; c < n_chunks; c++) {
        memcpy(ids, tok + c * n_ctx, sizeof(int32_t) * (size_t)n_ctx);
        if (tok_add_bos(m->tok)) ids[0] = tok_bos(m->tok);
        assert_int_equal(nj_session_truncate(s, 0), 0);
        assert_int_equal(session_eval_ex(s, ids, n_ctx, rows), 0);
        for (int j = n_ctx / 2; j < n_ctx - 1; j++) {
            const float *l = rows + (size_t)j * V;
            double mx = l[0], sum = 0;
            for (int i = 1; i < V; i++) mx = fmax(mx, l[i]);
            for (int i = 0; i < V; i++) sum += exp(l[i] - mx);
            nll += -(l[tok[c * n_ctx + j + 1]] - mx - log(sum));
            count++;
        }
    }
    nj_session_free(s);
    nj_free(ids);
    nj_free(rows);
    nj_free(tok);
    return exp(nll / (double)count);
}

static void test_run(void **state) {
    (void)state;
    const char *f32 = write_model("tiny-llama", NJ_F32, 0, "f32.gguf");
    char f32_path[700];
    snprintf(f32_path, sizeof f32_path, "%s", f32);
    const char *q4 = write_model("tiny-llama", NJ_Q4_0, 0, "q4.gguf");
    int err = 0;
    nj_model *m = nj_model_load(f32_path, NULL, &err), *q = nj_model_load(q4, NULL, &err);
    assert_non_null(m);
    assert_non_null(q);
    char *text = make_text(400);
    const int n_ctx = 32;
    const double want = slow_ppl(m, text, n_ctx, 3);
    static const int pieces[] = {1, 5, 64};
    for (size_t k = 0; k < NJ_ARRAY_LEN(pieces); k++) {
        ppl_params p = {.n_ctx = n_ctx, .n_chunks = 3, .n_batch = pieces[k], .n_threads = 2};
        ppl_result r;
        int rc = ppl_run(m, NULL, text, strlen(text), &p, &r);
        if (rc) fail_msg("ppl_run: %s %s", nj_strerror(rc), nj_last_error());
        assert_int_equal(r.n_chunks, 3);
        assert_int_equal(r.count, 3 * (n_ctx - 1 - n_ctx / 2));
        assert_false(r.has_base);
        if (fabs(r.ppl - want) > 1e-4 * want)
            fail_msg("pieces of %d: perplexity %.6f, computed by hand %.6f", pieces[k], r.ppl, want);
        assert_true(r.ppl_unc > 0);
    }
    /* all windows when n_chunks is 0 */
    ppl_params all = {.n_ctx = n_ctx};
    ppl_result r;
    assert_int_equal(ppl_run(m, NULL, text, strlen(text), &all, &r), 0);
    assert_int_equal(r.n_chunks, r.n_tokens / n_ctx);

    /* against itself */
    ppl_params p = {.n_ctx = n_ctx, .n_chunks = 3};
    assert_int_equal(ppl_run(m, m, text, strlen(text), &p, &r), 0);
    assert_true(r.has_base);
    assert_float_equal(r.kl_mean, 0, 1e-9);
    assert_float_equal(r.kl_max, 0, 1e-9);
    assert_float_equal(r.top1, 1.0, 0);
    assert_float_equal(r.ppl, r.ppl_base, 1e-9 * r.ppl);
    /* a Q4_0 copy against its F32 source */
    assert_int_equal(ppl_run(q, m, text, strlen(text), &p, &r), 0);
    assert_true(r.kl_mean > 0);
    assert_true(r.kl_max >= r.kl_p99 && r.kl_p99 >= r.kl_median && r.kl_median >= 0);
    assert_true(r.top1 > 0 && r.top1 <= 1);
    assert_float_equal(r.ppl_base, want, 1e-4 * want);
    assert_true(r.ppl != r.ppl_base);

    /* errors */
    assert_int_equal(ppl_run(m, NULL, "too short", 9, &p, &r), NJ_ECTX);
    ppl_params odd = {.n_ctx = 31};
    assert_int_equal(ppl_run(m, NULL, text, strlen(text), &odd, &r), -EINVAL);
    const char *other = write_model("tiny-llama", NJ_F32, 600, "v600.gguf");
    nj_model *o = nj_model_load(other, NULL, &err);
    assert_non_null(o);
    assert_int_equal(ppl_run(m, o, text, strlen(text), &p, &r), -EINVAL);
    assert_non_null(strstr(nj_last_error(), "vocabulary"));
    nj_model_free(o);
    unlink(other);

    nj_free(text);
    nj_model_free(q);
    nj_model_free(m);
    unlink(f32_path);
    unlink(q4);
}

int main(void) {
    const char *d = nj_test_tmpdir();
    if (!d) return 1;
    snprintf(dir, sizeof dir, "%s", d);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_math),
        cmocka_unit_test(test_run),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
