/* test_kvfile — prefix cache files (engine/kvfile.h).
 *
 * A cached prefix, whether kept in memory (nj_session_eval_reuse) or read
 * back from a file into a fresh session (nj_session_load_prefix), gives the
 * same greedy continuation, and the same logits bit for bit, as the whole
 * prompt computed from scratch, for f16, q8_0 and q4_0 caches and every
 * architecture.  Files written for another model file (same shapes, other
 * weights), another KV type or shape, another format version, truncated,
 * padded, or with any flipped bit are rejected with a sentence, and leave
 * the session empty.  Allocation failures never matter (the reader
 * allocates nothing).
 */
#include "testutil.h"

#include <stdio.h>

#include "kvfile.h"
#include "model.h"
#include "modelgen.h"
#include "nightjar.h"
#include "quant.h"
#include "session.h"
#include "util.h"

enum { NPRE = 80, NSUF = 9, NGEN = 10 };

static const char *tmp_model(const char *preset, uint64_t seed, const char *file) {
    static char path[4][600];
    static int slot;
    modelgen_params p;
    assert_int_equal(modelgen_preset(preset, &p), 0);
    p.type = NJ_Q8_0;
    p.seed = seed;
    if (!strcmp(preset, "tiny-gemma3")) p.sliding_window = 6;
    char *out = path[slot++ % 4];
    snprintf(out, 600, "%s/%s", nj_test_tmpdir(), file);
    int rc = modelgen_write(&p, out);
    if (rc) fail_msg("modelgen_write %s: %s %s", preset, nj_strerror(rc), nj_last_error());
    return out;
}

static const char *tmp_path(const char *name) {
    static char path[8][600];
    static int slot;
    char *out = path[slot++ % 8];
    snprintf(out, 600, "%s/%s", nj_test_tmpdir(), name);
    return out;
}

static int32_t argmax(const float *lg, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (lg[i] > lg[b]) b = i;
    return b;
}

/* Prompt: a shared prefix of NPRE ids, then a suffix chosen by `which`. */
static void prompt(int32_t *ids, int which) {
    for (int i = 0; i < NPRE; i++) ids[i] = 5 + (i * 31) % 300;
    for (int i = 0; i < NSUF; i++) ids[NPRE + i] = 7 + (i * 13 + which * 101) % 300;
}

/* Greedy continuation of the session's current logits: NGEN ids, and the
 * first logits row (V floats) into first. */
static void greedy(nj_session *s, int V, int32_t *out, float *first) {
    memcpy(first, nj_session_logits(s), sizeof(float) * (size_t)V);
    for (int i = 0; i < NGEN; i++) {
        out[i] = argmax(nj_session_logits(s), V);
        if (i + 1 < NGEN) assert_int_equal(nj_session_eval(s, &out[i], 1), 0);
    }
}

static void test_prefix_roundtrip(void **st) {
    (void)st;
    static const char *archs[] = {"tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3"};
    for (size_t a = 0; a < NJ_ARRAY_LEN(archs); a++) {
        char file[64];
        snprintf(file, sizeof file, "kvf-%s.gguf", archs[a]);
        int err = 0;
        nj_model *m = nj_model_load(tmp_model(archs[a], 1, file), NULL, &err);
        assert_non_null(m);
        const int V = m->hp.n_vocab;
        for (int kv = 0; kv < NJ_KV_TYPE_COUNT; kv++) {
            int32_t p1[NPRE + NSUF], p2[NPRE + NSUF], ref[NGEN], mem[NGEN], disk[NGEN];
            prompt(p1, 1);
            prompt(p2, 2);
            float *lr = malloc(sizeof(float) * (size_t)V), *lm = malloc(sizeof(float) * (size_t)V);
            float *ld = malloc(sizeof(float) * (size_t)V);
            assert_true(lr && lm && ld);
            /* from scratch */
            nj_session_params sp = {.n_ctx = 128, .kv_type = kv};
            nj_session *s = nj_session_new(m, &sp, &err);
            assert_non_null(s);
            assert_int_equal(nj_session_eval(s, p2, NPRE + NSUF), 0);
            greedy(s, V, ref, lr);
            /* in memory: prompt 1, then prompt 2 reuses the shared prefix */
            int reused = -1;
            assert_int_equal(nj_session_eval_reuse(s, p1, NPRE + NSUF, &reused), 0);
            assert_int_equal(reused, NPRE);   /* the cache held p2 + generated ids */
            assert_int_equal(nj_session_eval_reuse(s, p2, NPRE + NSUF, &reused), 0);
            assert_int_equal(reused, NPRE);
            assert_int_equal(nj_session_last_reused(s), NPRE);
            greedy(s, V, mem, lm);
            /* on disk: saved from s, read into a fresh session of another size */
            const char *path = tmp_path("prefix.njkv");
            assert_int_equal(nj_session_save_prefix(s, NPRE, path), 0);
            nj_session_params sp2 = {.n_ctx = 160, .kv_type = kv};
            nj_session *t = nj_session_new(m, &sp2, &err);
            assert_non_null(t);
            assert_int_equal(nj_session_load_prefix(t, path), NPRE);
            assert_int_equal(nj_session_pos(t), NPRE);
            assert_null(nj_session_logits(t));
            assert_memory_equal(nj_session_tokens(t), p2, sizeof(int32_t) * NPRE);
            assert_int_equal(nj_session_eval_reuse(t, p2, NPRE + NSUF, &reused), 0);
            assert_int_equal(reused, NPRE);
            greedy(t, V, disk, ld);
            for (int i = 0; i < NGEN; i++)
                if (mem[i] != ref[i] || disk[i] != ref[i])
                    fail_msg("%s kv %s: token %d from scratch %d, memory %d, disk %d", archs[a],
                             nj_kv_type_name(kv), i, ref[i], mem[i], disk[i]);
            if (memcmp(lr, lm, sizeof(float) * (size_t)V) || memcmp(lr, ld, sizeof(float) * (size_t)V))
                fail_msg("%s kv %s: logits with a cached prefix differ from scratch", archs[a],
                         nj_kv_type_name(kv));
            /* bad arguments */
            assert_int_equal(nj_session_save_prefix(s, 0, path), -EINVAL);
            assert_int_equal(nj_session_save_prefix(s, nj_session_pos(s) + 1, path), -EINVAL);
            remove(path);
            assert_true(nj_session_load_prefix(t, path) < 0);   /* gone */
            assert_int_equal(nj_session_pos(t), 0);
            nj_session_free(t);
            nj_session_free(s);
            free(lr);
            free(lm);
            free(ld);
        }
        nj_model_free(m);
    }
}

/* Bytes of a file. */
static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spill(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* load must fail with `code`, say `words`, and leave the session empty and
 * usable (its next prompt reuses nothing). */
static void expect_reject(nj_session *s, const char *path, int code, const char *words, const char *what) {
    int32_t p[NPRE + NSUF];
    prompt(p, 2);
    int rc = nj_session_load_prefix(s, path);
    if (rc != code || !strstr(nj_last_error(), words))
        fail_msg("%s: rc %d (%s), message '%s'; expected %d and '%s'", what, rc, nj_strerror(rc), nj_last_error(),
                 code, words);
    assert_int_equal(nj_session_pos(s), 0);
    int reused = -1;
    const int n = NJ_MIN(NPRE + NSUF, nj_session_n_ctx(s));
    assert_int_equal(nj_session_eval_reuse(s, p, n, &reused), 0);
    assert_int_equal(reused, 0);
    assert_int_equal(nj_session_truncate(s, 0), 0);
}

static void test_prefix_rejects(void **st) {
    (void)st;
    int err = 0;
    nj_model *m = nj_model_load(tmp_model("tiny-llama", 1, "rej-a.gguf"), NULL, &err);
    /* same preset, other weights: same size, same metadata and shapes */
    nj_model *o = nj_model_load(tmp_model("tiny-llama", 2, "rej-b.gguf"), NULL, &err);
    assert_non_null(m);
    assert_non_null(o);
    nj_model_desc dm, dmo;
    nj_model_describe(m, &dm);
    nj_model_describe(o, &dmo);
    assert_true(dm.file_bytes == dmo.file_bytes);
    assert_true(dm.file_id != dmo.file_id);

    int32_t p[NPRE + NSUF];
    prompt(p, 2);
    nj_session_params sp = {.n_ctx = 128, .kv_type = NJ_KV_Q8_0};
    nj_session *s = nj_session_new(m, &sp, &err);
    assert_non_null(s);
    assert_int_equal(nj_session_eval(s, p, NPRE + NSUF), 0);
    const char *good = tmp_path("good.njkv"), *bad = tmp_path("bad.njkv");
    assert_int_equal(nj_session_save_prefix(s, NPRE, good), 0);
    size_t len = 0;
    uint8_t *b = slurp(good, &len);
    assert_true(len > KVFILE_HEADER);

    nj_session *t = nj_session_new(m, &sp, &err);
    assert_non_null(t);
    assert_int_equal(nj_session_load_prefix(t, good), NPRE);   /* the control */

    /* another model file */
    nj_session *so = nj_session_new(o, &sp, &err);
    assert_non_null(so);
    expect_reject(so, good, NJ_ESTATE, "another model file", "other weights");
    /* another KV type, both ways */
    nj_session_params sf = {.n_ctx = 128, .kv_type = NJ_KV_F16};
    nj_session *sf16 = nj_session_new(m, &sf, &err);
    assert_non_null(sf16);
    expect_reject(sf16, good, NJ_ESTATE, "q8_0 KV cache, the session's is f16", "kv type");
    /* a context too small for the prefix */
    nj_session_params ss = {.n_ctx = NPRE - 1, .kv_type = NJ_KV_Q8_0};
    nj_session *small = nj_session_new(m, &ss, &err);
    assert_non_null(small);
    expect_reject(small, good, NJ_ESTATE, "does not fit", "small context");
    /* another version (the header checksum is not even looked at) */
    memcpy(b + 8, &(uint32_t){KVFILE_VERSION + 1}, 4);
    spill(bad, b, len);
    expect_reject(t, bad, NJ_EUNSUPPORTED, "version", "version");
    memcpy(b + 8, &(uint32_t){KVFILE_VERSION}, 4);
    /* not a prefix file at all; an empty file */
    spill(bad, (const uint8_t *)"GGUF\3\0\0\0", 8);
    expect_reject(t, bad, NJ_EFORMAT, "not a prefix cache", "magic");
    spill(bad, b, 0);
    expect_reject(t, bad, NJ_EFORMAT, "not a prefix cache", "empty");
    /* truncated: inside the header, inside the payload, one byte short */
    static const size_t cuts[] = {40, KVFILE_HEADER, KVFILE_HEADER + 10, 0};
    for (size_t i = 0; i < NJ_ARRAY_LEN(cuts); i++) {
        const size_t n = cuts[i] ? cuts[i] : len - 1;
        spill(bad, b, n);
        expect_reject(t, bad, NJ_EFORMAT, n < KVFILE_HEADER ? "header" : "truncated", "truncated");
    }
    /* padded */
    b[len] = 0;
    spill(bad, b, len + 1);
    expect_reject(t, bad, NJ_EFORMAT, "longer", "padded");
    /* every bit of the header, and bits spread over the payload */
    for (size_t bit = 0; bit < len * 8; bit += bit < KVFILE_HEADER * 8 ? 1 : 997) {
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        spill(bad, b, len);
        int rc = nj_session_load_prefix(t, bad);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (rc >= 0) fail_msg("flipped bit %zu (byte %zu) was accepted", bit, bit / 8);
        assert_int_equal(nj_session_pos(t), 0);
    }
    /* the good file is still good, and the reader left nothing allocated */
    size_t base = nj_mem_in_use();
    assert_int_equal(nj_session_load_prefix(t, good), NPRE);
    assert_true(nj_mem_in_use() == base);

    free(b);
    remove(good);
    remove(bad);
    nj_session_free(t);
    nj_session_free(s);
    nj_session_free(so);
    nj_session_free(sf16);
    nj_session_free(small);
    nj_model_free(m);
    nj_model_free(o);
}

/* The hash changes with any bit and with the seed. */
static void test_hash(void **st) {
    (void)st;
    uint8_t buf[200];
    for (int i = 0; i < 200; i++) buf[i] = (uint8_t)(i * 7);
    for (size_t n = 0; n <= 200; n += 13) {
        const uint64_t h = kvfile_hash(buf, n, 0);
        assert_true(h != kvfile_hash(buf, n, 1));
        for (size_t bit = 0; bit < n * 8; bit++) {
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            if (kvfile_hash(buf, n, 0) == h) fail_msg("n %zu: bit %zu does not change the hash", n, bit);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_prefix_roundtrip),
        cmocka_unit_test(test_prefix_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
