/* test_batch — the engine pieces of the service's scheduler, on random
 * models of every architecture (modelgen):
 *
 *  - session_eval_part: a prompt evaluated piece by piece (pieces of any
 *    size), with other sessions' work in between, leaves logits and cache
 *    bit for bit as one
 *    nj_session_eval of the whole prompt (preemption at chunk boundaries
 *    costs no recomputation and changes no result);
 *  - reuse of a cached prefix computed by another prompt, then the rest
 *    of the prompt as pieces of one evaluation of the whole prompt: the
 *    same bits as the prompt from scratch, for every KV type;
 *  - session_decode_batch: one decode step for several sessions in one
 *    pass gives every session the logits of its own lone step, bit for bit,
 *    whatever the other rows are (batch-invariant), including rows whose
 *    attention takes the split-KV path (>= 512 cells) next to rows whose
 *    does not, and weights with two float orders (Q4_K repacked) or one
 *    (Q8_0);
 *  - the error paths.
 */
#include "testutil.h"

#include <math.h>

#include "model.h"
#include "modelgen.h"
#include "nightjar.h"
#include "quant.h"
#include "session.h"
#include "util.h"

static const char *tmp_model(const char *preset, int type, const char *file) {
    static char path[600];
    const char *dir = nj_test_tmpdir();
    assert_non_null(dir);
    modelgen_params p;
    assert_int_equal(modelgen_preset(preset, &p), 0);
    p.type = type;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = modelgen_write(&p, path);
    if (rc) fail_msg("modelgen_write %s: %s %s", preset, nj_strerror(rc), nj_last_error());
    return path;
}

static int32_t argmax(const float *lg, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (lg[i] > lg[b]) b = i;
    return b;
}

static const struct { const char *preset; int type; } cases[] = {
    {"tiny-llama", NJ_Q8_0}, {"tiny-llama", NJ_Q4_K}, {"tiny-qwen2", MODELGEN_Q4_K_M},
    {"tiny-qwen3", NJ_Q8_0}, {"tiny-gemma3", NJ_Q4_K},
};

#define NS 5
#define STEPS 5

static void test_eval_part(void **state) {
    (void)state;
    for (size_t c = 0; c < NJ_ARRAY_LEN(cases); c++) {
        const char *path = tmp_model(cases[c].preset, cases[c].type, "part.gguf");
        int err = 0;
        nj_model *m = nj_model_load(path, NULL, &err);
        if (!m) fail_msg("%s: %s %s", cases[c].preset, nj_strerror(err), nj_last_error());
        const int V = m->hp.n_vocab, N = 23;
        int32_t ids[23];
        for (int i = 0; i < N; i++) ids[i] = 3 + (i * 53) % 300;
        nj_session_params sp = {.n_ctx = 64, .n_batch = 4};
        nj_session *whole = nj_session_new(m, &sp, &err), *part = nj_session_new(m, &sp, &err);
        nj_session *other = nj_session_new(m, &sp, &err);
        assert_non_null(whole);
        assert_non_null(part);
        assert_non_null(other);
        /* both start from a 3-token cached prefix, as a reused prompt does */
        assert_int_equal(nj_session_eval(whole, ids, 3), 0);
        assert_int_equal(nj_session_eval(part, ids, 3), 0);
        assert_int_equal(session_prefix_len(part, ids, N), 3);
        assert_int_equal(nj_session_eval(whole, ids + 3, N - 3), 0);
        /* pieces of 3, 5 (two passes of 4 rows), 1, 4, then the rest */
        static const int sizes[] = {3, 5, 1, 4, 100};
        for (int from = 0, k = 0; from < N - 3; k++) {
            int cnt = NJ_MIN(sizes[k], N - 3 - from);
            assert_int_equal(session_eval_part(part, ids + 3, N - 3, from, cnt), 0);
            from += cnt;
            if (from < N - 3) assert_null(nj_session_logits(part));
            /* someone else's work between the pieces */
            assert_int_equal(nj_session_eval(other, &ids[from % N], 1), 0);
        }
        assert_int_equal(nj_session_pos(part), N);
        if (memcmp(nj_session_logits(part), nj_session_logits(whole), sizeof(float) * (size_t)V))
            fail_msg("%s: logits of the piecewise prompt differ from one evaluation", cases[c].preset);
        /* the caches agree too: the next step gives the same logits */
        int32_t next = argmax(nj_session_logits(whole), V);
        assert_int_equal(nj_session_eval(whole, &next, 1), 0);
        assert_int_equal(nj_session_eval(part, &next, 1), 0);
        assert_memory_equal(nj_session_logits(part), nj_session_logits(whole), sizeof(float) * (size_t)V);
        /* bad pieces */
        assert_int_equal(session_eval_part(part, ids, 8, 4, 5), -EINVAL);   /* past n */
        assert_int_equal(session_eval_part(part, ids, 8, -1, 2), -EINVAL);
        assert_int_equal(session_eval_part(part, ids, 100, 0, 4), NJ_ECTX);
        nj_session_free(whole);
        nj_session_free(part);
        nj_session_free(other);
        nj_model_free(m);
    }
}

static void test_decode_batch(void **state) {
    (void)state;
    /* prompts of different lengths; session 0's is long enough that its
     * decode attention splits the keys (>= 512 cells), the others' not */
    static const int plen[NS] = {530, 9, 14, 3, 21};
    for (size_t c = 0; c < NJ_ARRAY_LEN(cases); c++) {
        const char *path = tmp_model(cases[c].preset, cases[c].type, "batch.gguf");
        int err = 0;
        nj_model *m = nj_model_load(path, NULL, &err);
        if (!m) fail_msg("%s: %s %s", cases[c].preset, nj_strerror(err), nj_last_error());
        const int V = m->hp.n_vocab;
        nj_session_params sp = {.n_ctx = 1024, .n_batch = 16, .n_threads = 2};
        nj_session *ref[NS], *bat[NS];
        int32_t *prompt = malloc(sizeof(int32_t) * 600);
        float *scratch = malloc(sizeof(float) * (size_t)V * NS);
        assert_non_null(prompt);
        assert_non_null(scratch);
        int32_t tok[NS];
        for (int i = 0; i < NS; i++) {
            ref[i] = nj_session_new(m, &sp, &err);
            bat[i] = nj_session_new(m, &sp, &err);
            assert_non_null(ref[i]);
            assert_non_null(bat[i]);
            for (int k = 0; k < plen[i]; k++) prompt[k] = 3 + (k * 31 + i * 7) % 300;
            assert_int_equal(nj_session_eval(ref[i], prompt, plen[i]), 0);
            assert_int_equal(nj_session_eval(bat[i], prompt, plen[i]), 0);
            tok[i] = argmax(nj_session_logits(ref[i]), V);
        }
        /* each step a different grouping and order of the rows */
        static const int groups[STEPS][NS + 1] = {
            {5, 0, 1, 2, 3, 4}, {4, 3, 2, 0, 1}, {2, 1, 4}, {3, 4, 0, 2}, {1, 3},
        };
        for (int st = 0; st < STEPS; st++) {
            const int n = groups[st][0];
            nj_session *ss[NS];
            int32_t ids[NS];
            for (int r = 0; r < n; r++) {
                int i = groups[st][1 + r];
                ss[r] = bat[i];
                ids[r] = tok[i];
            }
            assert_int_equal(session_decode_batch(ss, ids, n, scratch), 0);
            for (int r = 0; r < n; r++) {
                int i = groups[st][1 + r];
                assert_int_equal(nj_session_eval(ref[i], &tok[i], 1), 0);
                const float *want = nj_session_logits(ref[i]);
                if (memcmp(nj_session_logits(bat[i]), want, sizeof(float) * (size_t)V) ||
                    memcmp(scratch + (size_t)r * V, want, sizeof(float) * (size_t)V))
                    fail_msg("%s type %d: step %d, session %d (row %d of %d): batched logits differ from its "
                             "lone step", cases[c].preset, cases[c].type, st, i, r, n);
                assert_int_equal(nj_session_pos(bat[i]), nj_session_pos(ref[i]));
                tok[i] = argmax(want, V);
            }
        }
        /* errors: a session twice, too many rows, a bad id */
        nj_session *dup[2] = {bat[0], bat[0]};
        int32_t two[2] = {1, 2};
        assert_int_equal(session_decode_batch(dup, two, 2, scratch), -EINVAL);
        int32_t bad[1] = {V};
        assert_int_equal(session_decode_batch(bat, bad, 1, scratch), -EINVAL);
        assert_int_equal(session_decode_batch(bat, two, 17, scratch), -EINVAL);
        for (int i = 0; i < NS; i++) {
            nj_session_free(ref[i]);
            nj_session_free(bat[i]);
        }
        free(prompt);
        free(scratch);
        nj_model_free(m);
    }
}

/* The service's reuse of a cached prefix: prompt B is evaluated (one call),
 * the cache cut back to the k tokens B shares with prompt A, and A's tail
 * evaluated as pieces of one evaluation of the whole of A
 * (session_eval_part(A, na, k + done, c)).  Logits and cache must equal
 * one nj_session_eval of A from scratch, bit for bit, for every KV type:
 * what makes greedy output with a prefix from memory or from the prefix
 * file equal to output computed from scratch.  The tail evaluated as a call
 * of its own (ids A + k, na - k) takes other float orders; the check that
 * the case below is not vacuous is that this differs for some case. */
static void test_reuse_prefix(void **state) {
    (void)state;
    /* {k, na, nb}: B shorter and longer than A, several passes of
     * n_batch each */
    static const int lens[][3] = {{40, 100, 130}, {70, 90, 75}, {33, 150, 66}, {20, 100, 40}};
    int tail_alone_differs = 0;
    for (size_t c = 0; c < NJ_ARRAY_LEN(cases); c++) {
        const char *path = tmp_model(cases[c].preset, cases[c].type, "reuse.gguf");
        int err = 0;
        nj_model *m = nj_model_load(path, NULL, &err);
        if (!m) fail_msg("%s: %s %s", cases[c].preset, nj_strerror(err), nj_last_error());
        const int V = m->hp.n_vocab;
        for (int kv = 0; kv < NJ_KV_TYPE_COUNT; kv++) {
            for (size_t l = 0; l < NJ_ARRAY_LEN(lens); l++) {
                const int k = lens[l][0], na = lens[l][1], nb = lens[l][2];
                /* An f16 cache's attention takes ggml's tiled path for a
                 * call of 64 tokens or more and the vec path below, so a
                 * prefix computed in a shorter call holds other bits than
                 * one computed in a longer one (llama.cpp's own prompt
                 * cache has the same property); quantized caches always
                 * take the vec path. */
                if (kv == NJ_KV_F16 && (nb < 64) != (na < 64)) continue;
                int32_t a[160], b[160];
                for (int i = 0; i < 160; i++) {
                    a[i] = 3 + (i * 53 + 11) % 300;
                    b[i] = i < k ? a[i] : 5 + (i * 29 + 7) % 300;
                }
                nj_session_params sp = {.n_ctx = 192, .n_batch = 32, .kv_type = kv};
                nj_session *ref = nj_session_new(m, &sp, &err), *re = nj_session_new(m, &sp, &err);
                nj_session *alone = nj_session_new(m, &sp, &err);
                assert_non_null(ref);
                assert_non_null(re);
                assert_non_null(alone);
                assert_int_equal(nj_session_eval(ref, a, na), 0);
                assert_int_equal(nj_session_eval(re, b, nb), 0);
                assert_int_equal(nj_session_eval(alone, b, nb), 0);
                assert_int_equal(session_prefix_len(re, a, na), k);
                assert_int_equal(nj_session_truncate(re, k), 0);
                assert_int_equal(nj_session_truncate(alone, k), 0);
                /* pieces of 20 (the service's chunk) */
                for (int done = 0; done < na - k; done += 20)
                    assert_int_equal(session_eval_part(re, a, na, k + done, NJ_MIN(20, na - k - done)), 0);
                assert_int_equal(session_eval_part(alone, a + k, na - k, 0, na - k), 0);
                if (memcmp(nj_session_logits(re), nj_session_logits(ref), sizeof(float) * (size_t)V))
                    fail_msg("%s type %d kv %s, prefix %d of %d from a %d-token call: logits differ from scratch",
                             cases[c].preset, cases[c].type, nj_kv_type_name(kv), k, na, nb);
                tail_alone_differs +=
                    memcmp(nj_session_logits(alone), nj_session_logits(ref), sizeof(float) * (size_t)V) != 0;
                /* the caches agree too: the next step gives the same logits */
                int32_t next = argmax(nj_session_logits(ref), V);
                assert_int_equal(nj_session_eval(ref, &next, 1), 0);
                assert_int_equal(nj_session_eval(re, &next, 1), 0);
                assert_memory_equal(nj_session_logits(re), nj_session_logits(ref), sizeof(float) * (size_t)V);
                nj_session_free(ref);
                nj_session_free(re);
                nj_session_free(alone);
            }
        }
        nj_model_free(m);
    }
    assert_true(tail_alone_differs > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_part),
        cmocka_unit_test(test_decode_batch),
        cmocka_unit_test(test_reuse_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
