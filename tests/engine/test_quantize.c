/* test_quantize — `nightjar quantize` (engine/quantize) on random-weight
 * models (modelgen):
 *
 *  - every recipe from an F32 source: the file loads and runs, each tensor
 *    has the recipe's type (checked against modelgen's own Q4_K_M mix, an
 *    independent writing of the same rules, and against hand-worked layers),
 *    the bytes equal the reference quantizer applied row by row (so slabs,
 *    chunks and threads change nothing; 1 and 3 threads give one file), and
 *    the dequantized values are within the type's error bound;
 *  - dequantize (Q4_K_M -> F16): the values of the source, to f16 rounding;
 *  - F16, BF16 and Q8_0 sources: within the bound of the source's values;
 *  - bad input: unknown recipe, same path, missing or non-GGUF input, an
 *    already quantized source without permission; no file is left behind;
 *  - out of memory at every allocation: an error, no leak, no file.
 */
#include "testutil.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "modelgen.h"
#include "nightjar.h"
#include "quant.h"
#include "quantize.h"
#include "util.h"

static char dir[512];

/* dir/file in one of 8 rotating buffers (callers keep at most a few). */
static const char *path_in(const char *file) {
    static char p[8][700];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, file);
    return p[k];
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A random-weight llama of 8 layers (so the "more bits" layers differ from
 * the others), row length n_embd. */
static modelgen_params tiny(int type, int n_embd) {
    modelgen_params p;
    assert_int_equal(modelgen_preset("tiny-llama", &p), 0);
    p.n_layer = 8;
    p.n_embd = n_embd;
    p.n_ff = 2 * n_embd;
    p.type = type;
    return p;
}

static const char *write_model(const modelgen_params *p, const char *file) {
    const char *path = path_in(file);
    int rc = modelgen_write(p, path);
    if (rc) fail_msg("modelgen_write: %s %s", nj_strerror(rc), nj_last_error());
    return path;
}

static int find_type(const gguf_file *f, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) fail_msg("no tensor %s", name);
    return (int)t->type;
}

/* RMS error of the dequantized tensor relative to the RMS of the source. */
static double rel_rms(const gguf_tensor *src, const gguf_tensor *dst) {
    const int64_t ne0 = src->ne[0], rows = src->ne[1] * src->ne[2] * src->ne[3];
    float *a = nj_malloc(sizeof(float) * (size_t)ne0), *b = nj_malloc(sizeof(float) * (size_t)ne0);
    assert_non_null(a);
    assert_non_null(b);
    double se = 0, sx = 0;
    const size_t rs = quant_row_size((int)src->type, ne0), rd = quant_row_size((int)dst->type, ne0);
    for (int64_t r = 0; r < rows; r++) {
        quant_traits_ref((int)src->type)->to_float((const uint8_t *)src->data + r * rs, a, ne0);
        quant_traits_ref((int)dst->type)->to_float((const uint8_t *)dst->data + r * rd, b, ne0);
        for (int64_t i = 0; i < ne0; i++) {
            se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            sx += (double)a[i] * a[i];
        }
    }
    nj_free(a);
    nj_free(b);
    return sx > 0 ? sqrt(se / sx) : 0;
}

static double bound(int type) {
    switch (type) {
    case NJ_F16: return 1e-3;
    case NJ_Q8_0: return 0.01;
    case NJ_Q6_K: return 0.04;
    case NJ_Q5_K: case NJ_Q5_0: case NJ_Q5_1: return 0.08;
    case NJ_Q4_K: case NJ_Q4_0: return 0.15;
    default: return 0;
    }
}

static void run_quantize(const char *in, const char *out, int ftype, int threads) {
    quantize_params qp = {.ftype = ftype, .n_threads = threads};
    int rc = quantize_file(in, out, &qp);
    if (rc) fail_msg("quantize %s: %s %s", quantize_ftype_name(ftype), nj_strerror(rc), nj_last_error());
}

/* The file loads in the engine and a forward pass gives finite logits. */
static void check_runs(const char *path) {
    int err = 0;
    nj_model *m = nj_model_load(path, NULL, &err);
    if (!m) fail_msg("load %s: %s %s", path, nj_strerror(err), nj_last_error());
    nj_session_params sp = {.n_ctx = 32};
    nj_session *s = nj_session_new(m, &sp, &err);
    assert_non_null(s);
    int32_t ids[4] = {1, 40, 41, 42};
    assert_int_equal(nj_session_eval(s, ids, 4), 0);
    const float *lg = nj_session_logits(s);
    nj_model_desc d;
    nj_model_describe(m, &d);
    for (int i = 0; i < d.n_vocab; i++)
        if (!isfinite(lg[i])) fail_msg("%s: logit %d is %g", path, i, lg[i]);
    nj_session_free(s);
    nj_model_free(m);
}

/* A source model and what quantize_file made of it: the paths (dir/...)
 * and, while open, both files. */
typedef struct qpair {
    char src_path[700], out_path[700];
    gguf_file *src, *out;
} qpair;

static gguf_file *open_gguf(const char *path) {
    int err = 0;
    gguf_file *f = gguf_open(path, &err);
    if (!f) fail_msg("open %s: %s %s", path, nj_strerror(err), nj_last_error());
    return f;
}

/* Write the model mp to dir/src_file and open it; the output will be
 * dir/out_file. */
static void qpair_source(qpair *p, const modelgen_params *mp, const char *src_file, const char *out_file) {
    snprintf(p->src_path, sizeof p->src_path, "%s", write_model(mp, src_file));
    snprintf(p->out_path, sizeof p->out_path, "%s", path_in(out_file));
    p->src = open_gguf(p->src_path);
    p->out = NULL;
}

/* Quantize the source with recipe ftype on threads and open the output. */
static void qpair_quantize(qpair *p, int ftype, int threads) {
    run_quantize(p->src_path, p->out_path, ftype, threads);
    p->out = open_gguf(p->out_path);
}

/* Close and delete the output (the source stays). */
static void qpair_drop_out(qpair *p) {
    if (p->out) gguf_close(p->out);
    p->out = NULL;
    unlink(p->out_path);
}

/* Close and delete both. */
static void qpair_done(qpair *p) {
    qpair_drop_out(p);
    gguf_close(p->src);
    p->src = NULL;
    unlink(p->src_path);
}

/* Tensor i of the source, its name in name[128], and in *dst the output's
 * tensor of that name (the test fails if the output lacks it). */
static const gguf_tensor *qpair_at(const qpair *p, uint64_t i, char name[128], const gguf_tensor **dst) {
    const gguf_tensor *a = gguf_tensor_at(p->src, i);
    snprintf(name, 128, "%.*s", (int)a->name.len, a->name.ptr);
    *dst = gguf_find_tensor(p->out, name);
    if (!*dst) fail_msg("%s: no tensor %s in the output", p->out_path, name);
    return a;
}

/* The two files hold the same bytes (`what` names them in a failure). */
static void same_bytes(const char *pa, const char *pb, const char *what) {
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    assert_non_null(fa);
    assert_non_null(fb);
    int ca, cb;
    long pos = 0;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        if (ca != cb) fail_msg("%s differ at byte %ld", what, pos);
        pos++;
    } while (ca != EOF);
    fclose(fa);
    fclose(fb);
}

static void test_recipes(void **state) {
    (void)state;
    static const int recipes[] = {QFT_Q8_0, QFT_Q6_K, QFT_Q5_K_M, QFT_Q4_K_M, QFT_Q4_0, QFT_F16};
    static const int widths[] = {256, 320};   /* 320: K-quant rows fall back */
    for (size_t w = 0; w < NJ_ARRAY_LEN(widths); w++) {
        modelgen_params mp = tiny(NJ_F32, widths[w]);
        qpair p;
        qpair_source(&p, &mp, "src.gguf", "out.gguf");
        char out1[700];
        snprintf(out1, sizeof out1, "%s", path_in("out1.gguf"));
        for (size_t r = 0; r < NJ_ARRAY_LEN(recipes); r++) {
            const int ft = recipes[r];
            qpair_quantize(&p, ft, 3);
            assert_int_equal(gguf_n_tensors(p.out), gguf_n_tensors(p.src));
            uint32_t ftv = 0;
            assert_int_equal(gguf_get_u32(p.out, "general.file_type", &ftv), 0);
            assert_int_equal((int)ftv, ft);
            int *plan = nj_malloc(sizeof(int) * gguf_n_tensors(p.src));
            assert_non_null(plan);
            assert_int_equal(quantize_plan(p.src, ft, plan), 0);
            for (uint64_t i = 0; i < gguf_n_tensors(p.src); i++) {
                char name[128];
                const gguf_tensor *b, *a = qpair_at(&p, i, name, &b);
                assert_int_equal((int)b->type, plan[i]);
                int n_dims = a->ne[1] > 1 ? 2 : 1;
                if (ft == QFT_Q4_K_M) {
                    int want = modelgen_tensor_type(&(modelgen_params){.type = MODELGEN_Q4_K_M,
                                                                        .n_layer = mp.n_layer,
                                                                        .tied_embd = mp.tied_embd},
                                                    name, n_dims, a->ne[0]);
                    if ((int)b->type != want)
                        fail_msg("Q4_K_M %s: %s, modelgen's mix says %s", name, quant_type_name((int)b->type),
                                 quant_type_name(want));
                }
                if (n_dims == 1) {   /* 1-D tensors are copied */
                    assert_int_equal(b->type, a->type);
                    assert_memory_equal(a->data, b->data, (size_t)a->nbytes);
                    continue;
                }
                /* the bytes of the reference quantizer, row by row */
                const int64_t ne0 = a->ne[0], rows = a->ne[1];
                const size_t rd = quant_row_size((int)b->type, ne0);
                uint8_t *ref = nj_malloc(rd);
                assert_non_null(ref);
                for (int64_t row = 0; row < rows; row += 7) {
                    quant_file_quantizer((int)b->type)((const float *)a->data + row * ne0, ref, ne0);
                    if (memcmp(ref, (const uint8_t *)b->data + row * rd, rd))
                        fail_msg("%s %s row %lld: bytes differ from the reference quantizer",
                                 quantize_ftype_name(ft), name, (long long)row);
                }
                nj_free(ref);
                double e = rel_rms(a, b);
                if (e > bound((int)b->type))
                    fail_msg("%s %s (%s): relative rms error %.4f > %.4f", quantize_ftype_name(ft), name,
                             quant_type_name((int)b->type), e, bound((int)b->type));
            }
            nj_free(plan);
            gguf_close(p.out);
            p.out = NULL;
            check_runs(p.out_path);
            /* one thread writes the same file */
            run_quantize(p.src_path, out1, ft, 1);
            char what[64];
            snprintf(what, sizeof what, "%s: 1 and 3 threads", quantize_ftype_name(ft));
            same_bytes(p.out_path, out1, what);
            qpair_drop_out(&p);
            unlink(out1);
        }
        qpair_done(&p);
    }
}

/* The recipe's rules, worked by hand for 8 layers: the "more bits" layers
 * are 0, 3, 6 and 7 (i < 1, i >= 7, (i - 1) % 3 == 2). */
static void test_recipe_layers(void **state) {
    (void)state;
    modelgen_params mp = tiny(NJ_F32, 256);
    mp.tied_embd = false;
    const char *src_path = write_model(&mp, "layers.gguf");
    int err = 0;
    gguf_file *f = gguf_open(src_path, &err);
    assert_non_null(f);
    int *plan = nj_malloc(sizeof(int) * gguf_n_tensors(f));
    assert_non_null(plan);
    static const struct { int ft, more, other, out, embd; } c[] = {
        {QFT_Q4_K_M, NJ_Q6_K, NJ_Q4_K, NJ_Q6_K, NJ_Q4_K},
        {QFT_Q5_K_M, NJ_Q6_K, NJ_Q5_K, NJ_Q6_K, NJ_Q5_K},
        {QFT_Q6_K, NJ_Q6_K, NJ_Q6_K, NJ_Q6_K, NJ_Q6_K},
        {QFT_Q4_0, NJ_Q4_0, NJ_Q4_0, NJ_Q6_K, NJ_Q4_0},
        {QFT_Q8_0, NJ_Q8_0, NJ_Q8_0, NJ_Q8_0, NJ_Q8_0},
    };
    for (size_t k = 0; k < NJ_ARRAY_LEN(c); k++) {
        assert_int_equal(quantize_plan(f, c[k].ft, plan), 0);
        for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            char name[128];
            int layer = -1;
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            sscanf(name, "blk.%d.", &layer);
            int want = t->ne[1] > 1 ? c[k].other : NJ_F32;
            bool more = layer == 0 || layer == 3 || layer == 6 || layer == 7;
            if (strstr(name, "attn_v.weight") || strstr(name, "ffn_down.weight")) want = more ? c[k].more : c[k].other;
            if (!strcmp(name, "output.weight")) want = c[k].out;
            if (!strcmp(name, "token_embd.weight")) want = c[k].embd;
            if (plan[i] != want)
                fail_msg("%s %s: %s, want %s", quantize_ftype_name(c[k].ft), name, quant_type_name(plan[i]),
                         quant_type_name(want));
        }
    }
    assert_int_equal(quantize_plan(f, 99, plan), -EINVAL);
    nj_free(plan);
    gguf_close(f);
    unlink(src_path);
}

static void test_dequantize(void **state) {
    (void)state;
    modelgen_params mp = tiny(MODELGEN_Q4_K_M, 256);
    qpair p;
    qpair_source(&p, &mp, "q.gguf", "deq.gguf");
    /* a quantized recipe refuses a K-quant source unless allowed ... */
    quantize_params qp = {.ftype = QFT_Q8_0, .n_threads = 2};
    assert_int_equal(quantize_file(p.src_path, p.out_path, &qp), -EINVAL);
    assert_non_null(strstr(nj_last_error(), "already quantized"));
    assert_false(exists(p.out_path));
    qp.allow_requantize = true;
    assert_int_equal(quantize_file(p.src_path, p.out_path, &qp), 0);
    unlink(p.out_path);
    /* ... an unquantized one reads it */
    qpair_quantize(&p, QFT_F16, 2);
    for (uint64_t i = 0; i < gguf_n_tensors(p.src); i++) {
        char name[128];
        const gguf_tensor *tb, *ta = qpair_at(&p, i, name, &tb);
        if (ta->ne[1] == 1) { assert_int_equal(tb->type, NJ_F32); continue; }
        assert_int_equal(tb->type, NJ_F16);
        const int64_t n = ta->ne[0] * ta->ne[1];
        float *x = nj_malloc(sizeof(float) * (size_t)n), *y = nj_malloc(sizeof(float) * (size_t)n);
        assert_non_null(x);
        assert_non_null(y);
        quant_traits_ref((int)ta->type)->to_float(ta->data, x, n);
        quant_traits_ref(NJ_F16)->to_float(tb->data, y, n);
        for (int64_t j = 0; j < n; j++)
            if (fabsf(x[j] - y[j]) > fabsf(x[j]) * 0x1p-11f + 0x1p-24f)
                fail_msg("%s[%lld]: %g dequantized to %g", name, (long long)j, x[j], y[j]);
        nj_free(x);
        nj_free(y);
    }
    assert_int_equal(find_type(p.out, "output.weight"), NJ_F16);
    check_runs(p.out_path);
    qpair_done(&p);
}

/* Every source type a recipe reads without permission: F16, BF16 and
 * Q8_0 models quantize to Q4_K_M, each tensor within its bound of the
 * source's own values. */
static void test_sources(void **state) {
    (void)state;
    static const int types[] = {NJ_F16, NJ_BF16, NJ_Q8_0};
    for (size_t k = 0; k < NJ_ARRAY_LEN(types); k++) {
        modelgen_params mp = tiny(types[k], 256);
        mp.n_layer = 2;
        qpair p;
        qpair_source(&p, &mp, "srct.gguf", "srct-out.gguf");
        qpair_quantize(&p, QFT_Q4_K_M, 2);
        for (uint64_t i = 0; i < gguf_n_tensors(p.src); i++) {
            char name[128];
            const gguf_tensor *tb, *ta = qpair_at(&p, i, name, &tb);
            if (ta->ne[1] == 1) continue;
            assert_true(tb->type == NJ_Q4_K || tb->type == NJ_Q6_K);
            double e = rel_rms(ta, tb);
            if (e > bound((int)tb->type))
                fail_msg("%s source, %s: relative rms error %.4f", quant_type_name(types[k]), name, e);
        }
        qpair_done(&p);
    }
}

static void test_bad_input(void **state) {
    (void)state;
    modelgen_params mp = tiny(NJ_F16, 256);
    const char *src_path = write_model(&mp, "bad-src.gguf");
    const char *out = path_in("bad-out.gguf");
    quantize_params qp = {.ftype = QFT_Q4_K_M};
    assert_int_equal(quantize_file(src_path, src_path, &qp), -EINVAL);
    qp.ftype = 3;   /* a llama.cpp file type we do not offer */
    assert_int_equal(quantize_file(src_path, out, &qp), -EINVAL);
    assert_int_equal(quantize_ftype_parse("Q3_K_M"), -1);
    assert_int_equal(quantize_ftype_parse("q4_k_m"), QFT_Q4_K_M);
    qp.ftype = QFT_Q4_0;
    assert_int_equal(quantize_file(path_in("missing.gguf"), out, &qp), -ENOENT);
    const char *junk = path_in("junk.gguf");
    FILE *f = fopen(junk, "wb");
    assert_non_null(f);
    fputs("not a model file: no GGUF magic here", f);
    fclose(f);
    assert_int_equal(quantize_file(junk, out, &qp), NJ_EFORMAT);
    assert_false(exists(out));
    /* an output directory that does not exist: an I/O error, nothing left */
    char nodir[700];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.gguf", dir);
    assert_true(quantize_file(src_path, nodir, &qp) < 0);
    unlink(junk);
    unlink(src_path);
}

static void test_out_of_memory(void **state) {
    (void)state;
    modelgen_params mp = tiny(NJ_F16, 256);
    mp.n_layer = 2;
    const char *src_path = write_model(&mp, "oom.gguf");
    const char *out = path_in("oom-out.gguf");
    quantize_params qp = {.ftype = QFT_Q4_K_M, .n_threads = 2};
    const size_t base = nj_mem_in_use();
    int failures = 0;
    for (long n = 0; n < 10000; n++) {
        nj_alloc_fail_after(n);
        int rc = quantize_file(src_path, out, &qp);
        long left = nj_alloc_fail_after(-1);
        assert_int_equal(nj_mem_in_use(), base);
        if (left >= 0) {   /* the injected failure never came: done */
            assert_int_equal(rc, 0);
            break;
        }
        if (rc == 0) fail_msg("allocation %ld failed but quantize_file returned 0", n);
        assert_false(exists(out));
        failures++;
    }
    assert_true(failures > 3);
    assert_true(exists(out));
    unlink(out);
    unlink(src_path);
}

int main(void) {
    const char *d = nj_test_tmpdir();
    if (!d) return 1;
    snprintf(dir, sizeof dir, "%s", d);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipes),
        cmocka_unit_test(test_recipe_layers),
        cmocka_unit_test(test_dequantize),
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_out_of_memory),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
