/*
 * test_matmul — matmul() against a naive loop over the scalar reference.
 *
 * For every weight type, odd row counts and n_tok = 1..17, on 1 and 2
 * threads: Y equals, within 2e-5 * sum|w x|, the reference computed as
 * quant_traits_ref(type)->vec_dot over activations quantized by the
 * dispatched from_float (the same bytes matmul uses), and equals bit for
 * bit the scalar kernel level's dot in the order the product takes (for
 * a W llama.cpp multiplies in two orders -- e.g. Q4_K with rows % 8 == 0,
 * BF16 with rows % 4 == 0 and cols % 32 == 0 -- vec_dot_rs for the last
 * matmul_single_count(type, n_tok) tokens of matmul() and vec_dot_rb for
 * the others; vec_dot for any other W).  Y is also
 * checked to be bit-identical across thread counts and across token
 * chunkings (a token's row of Y computed alone, in the same order, equals
 * the one computed in a batch), and matmul_ex's n_single split is checked
 * token by token for every n_single; matmul_multi is checked against
 * separate calls.  The binary re-runs itself once per
 * other kernel level the CPU supports (NIGHTJAR_CPU=...), so matmul is
 * exercised on every level.
 */
#include "testutil.h"
#include "matmul.h"
#include "kernels.h"
#include "pool.h"
#include "quant.h"
#include "util.h"

#include <math.h>

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rng_sym(void) { return (float)(rng_u32() & 0xffffff) / 8388608.0f - 1.0f; }

static const int all_types[] = {NJ_F32, NJ_F16, NJ_BF16, NJ_Q4_0, NJ_Q4_1, NJ_Q5_0, NJ_Q5_1,
                                NJ_Q8_0, NJ_Q2_K, NJ_Q3_K, NJ_Q4_K, NJ_Q5_K, NJ_Q6_K};

/* Random weights: quantize random floats with the reference quantizer, so
 * the blocks look like real ones. */
static void *make_weights(int type, int64_t rows, int64_t cols, size_t *row_bytes) {
    const nj_type_traits *t = quant_traits_ref(type);
    *row_bytes = quant_row_size(type, cols);
    uint8_t *w = malloc(*row_bytes * (size_t)rows);
    float *f = malloc(sizeof(float) * (size_t)cols);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) f[c] = rng_sym() * 0.1f;
        t->from_float(f, w + (size_t)r * *row_bytes, cols);
    }
    free(f);
    return w;
}

/* The scalar level's dot for W (type, rows, cols) and a token in the
 * single-token (single = 1) or batched order (kernels.h, "Repacked
 * orders"). */
static nj_vec_dot_fn ref_dot(int type, int64_t rows, int64_t cols, int single) {
    const nj_kernels *sk = kernels_at(NJ_KL_SCALAR);
    if (!sk->vec_dot_rs[type] || !kern_two_orders(type, rows, cols)) return sk->vec_dot[type];
    return single ? sk->vec_dot_rs[type] : sk->vec_dot_rb[type];
}

/* Y_ref (n_tok, rows) and the tolerance per element; ycan, ycan_b: the
 * scalar level's canonical results in the single-token and the batched
 * order. */
static void naive(int type, const void *w, size_t row_bytes, int64_t rows, int64_t cols,
                  const float *x, int n_tok, float *y, double *tol, float *ycan, float *ycan_b) {
    const nj_type_traits *t = quant_traits_ref(type);
    const nj_type_traits *xt = quant_traits_ref(t->vec_dot_type);
    const nj_type_traits *xd = kernels_traits(t->vec_dot_type);
    size_t xrow = quant_row_size(t->vec_dot_type, cols);
    uint8_t *xq = malloc(xrow);
    float *wf = malloc(sizeof(float) * (size_t)cols), *xf = malloc(sizeof(float) * (size_t)cols);
    for (int tok = 0; tok < n_tok; tok++) {
        xd->from_float(x + (size_t)tok * cols, xq, cols);
        xt->to_float(xq, xf, cols);
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *wr = (const uint8_t *)w + (size_t)r * row_bytes;
            t->vec_dot((int)cols, &y[(size_t)tok * rows + r], wr, xq);
            ref_dot(type, rows, cols, 1)((int)cols, &ycan[(size_t)tok * rows + r], wr, xq);
            ref_dot(type, rows, cols, 0)((int)cols, &ycan_b[(size_t)tok * rows + r], wr, xq);
            t->to_float(wr, wf, cols);
            double s = 0;
            for (int64_t c = 0; c < cols; c++) s += fabs((double)wf[c] * xf[c]);
            tol[(size_t)tok * rows + r] = 2e-5 * s + 1e-30;
        }
    }
    free(xq);
    free(wf);
    free(xf);
}

static void run_case_list(nj_pool *p1, nj_pool *p2, int type, int64_t rows, int64_t cols,
                          const int *toks, int n_toks);

static void run_case(nj_pool *p1, nj_pool *p2, int type, int64_t rows, int64_t cols, int max_tok) {
    int toks[64];
    for (int i = 0; i < max_tok && i < 64; i++) toks[i] = i + 1;
    run_case_list(p1, p2, type, rows, cols, toks, max_tok < 64 ? max_tok : 64);
}

static void run_case_list(nj_pool *p1, nj_pool *p2, int type, int64_t rows, int64_t cols,
                          const int *toks, int n_toks) {
    int max_tok = 0;
    for (int i = 0; i < n_toks; i++) max_tok = toks[i] > max_tok ? toks[i] : max_tok;
    assert_int_equal(toks[n_toks - 1], max_tok);   /* y1 ends up holding max_tok tokens */
    size_t rb;
    void *w = make_weights(type, rows, cols, &rb);
    nj_mat W = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
    float *x = malloc(sizeof(float) * (size_t)cols * max_tok);
    for (int64_t i = 0; i < cols * max_tok; i++) x[i] = rng_sym();
    float *yref = malloc(sizeof(float) * (size_t)rows * max_tok);
    double *tol = malloc(sizeof(double) * (size_t)rows * max_tok);
    float *ycan = malloc(sizeof(float) * (size_t)rows * max_tok);
    float *ycan_b = malloc(sizeof(float) * (size_t)rows * max_tok);
    naive(type, w, rb, rows, cols, x, max_tok, yref, tol, ycan, ycan_b);

    size_t ss = matmul_scratch_size(type, cols, max_tok);
    void *scratch = ss ? nj_malloc_aligned(ss) : NULL;
    float *y1 = malloc(sizeof(float) * (size_t)rows * max_tok);
    float *y2 = malloc(sizeof(float) * (size_t)rows * max_tok);
    float *single = malloc(sizeof(float) * (size_t)rows);
    for (int ti = 0; ti < n_toks; ti++) {
        const int n_tok = toks[ti];
        assert_true(matmul_scratch_size(type, cols, n_tok) <= ss);
        assert_int_equal(matmul(p1, &W, x, n_tok, y1, scratch), 0);
        assert_int_equal(matmul(p2, &W, x, n_tok, y2, scratch), 0);
        for (int tok = 0; tok < n_tok; tok++) {
            for (int64_t r = 0; r < rows; r++) {
                size_t i = (size_t)tok * rows + r;
                if (!(fabs((double)y1[i] - yref[i]) <= tol[i])) {
                    print_error("%s rows %lld cols %lld n_tok %d: Y[%d][%lld] = %.9g, ref %.9g\n",
                                quant_type_name(type), (long long)rows, (long long)cols, n_tok,
                                tok, (long long)r, y1[i], yref[i]);
                    fail();
                }
            }
        }
        /* the canonical order: bit-identical to the scalar level, the last
         * matmul_single_count tokens in the single-token order */
        const int n_single = matmul_single_count(type, n_tok);
        for (int tok = 0; tok < n_tok; tok++) {
            const float *want = (tok >= n_tok - n_single ? ycan : ycan_b) + (size_t)tok * rows;
            if (memcmp(y1 + (size_t)tok * rows, want, sizeof(float) * (size_t)rows) != 0) {
                print_error("%s n_tok %d token %d: not bit-identical to the scalar level (%s)\n",
                            quant_type_name(type), n_tok, tok, kernels_get()->name);
                fail();
            }
        }
        /* bit-identical across thread counts */
        assert_memory_equal(y1, y2, sizeof(float) * (size_t)rows * n_tok);
    }
    /* a token alone, in the order it has in the batch of max_tok, gives the
     * same row as inside the batch (y1 holds the last n_tok = max_tok) */
    for (int tok = 0; tok < max_tok; tok += 5) {
        const int is_single = tok >= max_tok - matmul_single_count(type, max_tok);
        assert_int_equal(matmul_ex(p2, &W, x + (size_t)tok * cols, 1, single, scratch, is_single), 0);
        assert_memory_equal(single, y1 + (size_t)tok * rows, sizeof(float) * (size_t)rows);
    }
    free(w); free(x); free(yref); free(tol); free(ycan); free(ycan_b); free(y1); free(y2);
    free(single);
    nj_free_aligned(scratch);
}

static nj_pool *pool1, *pool2;

static int setup(void **state) {
    (void)state;
    pool1 = pool_new(1, NULL);
    pool2 = pool_new(2, NULL);
    return pool1 && pool2 ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    pool_free(pool1);
    pool_free(pool2);
    return 0;
}

static void test_all_types_small(void **state) {
    (void)state;
    const int64_t rows_list[] = {1, 7, 16, 33};
    for (size_t ti = 0; ti < NJ_ARRAY_LEN(all_types); ti++) {
        const int type = all_types[ti];
        const nj_type_traits *t = quant_traits_ref(type);
        const int64_t cols = t->blck == 1 ? 72 : (t->blck == 32 ? 96 : 512);
        for (size_t ri = 0; ri < NJ_ARRAY_LEN(rows_list); ri++) {
            rng_seed((uint64_t)type * 131 + (uint64_t)rows_list[ri]);
            run_case(pool1, pool2, type, rows_list[ri], cols, 17);
        }
    }
}

/* Bigger shapes: several work items per thread, token chunks, several
 * packed 16-token groups plus a remainder, and the parallel activation
 * quantization path (n_tok * cols >= 32768). */
static void test_larger(void **state) {
    (void)state;
    const int types[] = {NJ_Q4_K, NJ_Q6_K, NJ_Q8_0, NJ_Q4_1, NJ_Q5_K, NJ_F16, NJ_BF16};
    const int toks[] = {1, 2, 5, 16, 17, 33, 70};
    for (size_t i = 0; i < NJ_ARRAY_LEN(types); i++) {
        rng_seed(1000 + i);
        run_case_list(pool1, pool2, types[i], 301, 2048, toks, (int)NJ_ARRAY_LEN(toks));
    }
    /* a row count llama.cpp repacks Q4_K at: its two repacked orders */
    rng_seed(999);
    run_case_list(pool1, pool2, NJ_Q4_K, 304, 2048, toks, (int)NJ_ARRAY_LEN(toks));
    /* a BF16 shape llama.cpp gives to tinyBLAS for >= 2 tokens */
    rng_seed(998);
    run_case_list(pool1, pool2, NJ_BF16, 304, 1024, toks, (int)NJ_ARRAY_LEN(toks));
}

/* matmul_ex: the last n_single tokens take the single-token order, the
 * others the batched one, for every split, on small and packed batches;
 * e.g. matmul of 5 tokens = 4 batched-order dots + 1 single-order one for
 * Q4_K, 5 batched-order ones for BF16 (scalar level).  For a type or shape
 * llama.cpp multiplies in one order (Q6_K; Q4_K with 37 rows; BF16 with
 * 37 rows) n_single changes nothing. */
static void test_single_split(void **state) {
    (void)state;
    const int64_t cols = 512;
    const int toks[] = {1, 2, 3, 4, 5, 9, 21, 40};
    const int max_tok = 40;
    const struct { int type; int64_t rows; } cases[] = {
        {NJ_Q4_K, 40}, {NJ_Q4_K, 37}, {NJ_Q6_K, 40}, {NJ_BF16, 40}, {NJ_BF16, 37}};
    for (size_t ti = 0; ti < NJ_ARRAY_LEN(cases); ti++) {
        const int type = cases[ti].type;
        const int64_t rows = cases[ti].rows;
        rng_seed(77 + ti);
        size_t rb;
        void *w = make_weights(type, rows, cols, &rb);
        nj_mat W = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
        float *x = malloc(sizeof(float) * (size_t)cols * max_tok);
        for (int64_t i = 0; i < cols * max_tok; i++) x[i] = rng_sym();
        /* scalar-level references in both orders */
        const nj_type_traits *tt = quant_traits_ref(type);
        const size_t xrow = quant_row_size(tt->vec_dot_type, cols);
        uint8_t *xq = malloc(xrow);
        float *ys = malloc(sizeof(float) * rows * max_tok), *yb = malloc(sizeof(float) * rows * max_tok);
        for (int t = 0; t < max_tok; t++) {
            kernels_traits(tt->vec_dot_type)->from_float(x + (size_t)t * cols, xq, cols);
            for (int64_t r = 0; r < rows; r++) {
                const uint8_t *wr = (const uint8_t *)w + (size_t)r * rb;
                ref_dot(type, rows, cols, 1)((int)cols, &ys[t * rows + r], wr, xq);
                ref_dot(type, rows, cols, 0)((int)cols, &yb[t * rows + r], wr, xq);
            }
        }
        /* two orders (repacked Q4_K, tinyBLAS-shaped BF16): they must
         * differ somewhere, or this tests nothing */
        if (kernels_at(NJ_KL_SCALAR)->vec_dot_rs[type] && kern_two_orders(type, rows, cols))
            assert_true(memcmp(ys, yb, sizeof(float) * rows * max_tok) != 0);
        else
            assert_memory_equal(ys, yb, sizeof(float) * rows * max_tok);
        void *scratch = nj_malloc_aligned(matmul_scratch_size(type, cols, max_tok));
        float *y = malloc(sizeof(float) * rows * max_tok);
        for (size_t k = 0; k < NJ_ARRAY_LEN(toks); k++) {
            const int n_tok = toks[k];
            for (int ns = 0; ns <= n_tok; ns++) {
                if (n_tok > 9 && ns > 4 && ns != n_tok - 16 && ns != n_tok) continue;
                assert_int_equal(matmul_ex(pool2, &W, x, n_tok, y, scratch, ns), 0);
                for (int t = 0; t < n_tok; t++) {
                    const float *want = (t >= n_tok - ns ? ys : yb) + (size_t)t * rows;
                    if (memcmp(y + (size_t)t * rows, want, sizeof(float) * rows) != 0) {
                        print_error("%s n_tok %d n_single %d: token %d not in its order (%s)\n",
                                    quant_type_name(type), n_tok, ns, t, kernels_get()->name);
                        fail();
                    }
                }
            }
        }
        /* matmul() is one micro-batch: 5 tokens = 4 batched + 1 single
         * (Q4_K), 5 batched (BF16); 1 token = 1 single */
        const int nb5 = 5 - matmul_single_count(type, 5);
        assert_int_equal(nb5, type == NJ_BF16 ? 5 : 4);
        assert_int_equal(matmul(pool1, &W, x, 5, y, scratch), 0);
        assert_memory_equal(y, yb, sizeof(float) * rows * nb5);
        assert_memory_equal(y + nb5 * rows, ys + nb5 * rows, sizeof(float) * rows * (5 - nb5));
        assert_int_equal(matmul(pool1, &W, x, 1, y, scratch), 0);
        assert_memory_equal(y, ys, sizeof(float) * rows);
        assert_int_equal(matmul_ex(pool1, &W, x, 5, y, scratch, -1), -EINVAL);
        assert_int_equal(matmul_ex(pool1, &W, x, 5, y, scratch, 6), -EINVAL);
        nj_free_aligned(scratch);
        free(w); free(x); free(xq); free(ys); free(yb); free(y);
    }
}

static void test_no_pool_and_errors(void **state) {
    (void)state;
    rng_seed(3);
    size_t rb;
    void *w = make_weights(NJ_Q8_0, 9, 64, &rb);
    nj_mat W = {.type = NJ_Q8_0, .rows = 9, .cols = 64, .row_bytes = rb, .data = w};
    float x[64 * 2], y[9 * 2], y2[9 * 2];
    for (int i = 0; i < 128; i++) x[i] = rng_sym();
    void *scratch = nj_malloc_aligned(matmul_scratch_size(NJ_Q8_0, 64, 2));
    /* pool may be NULL: runs on the calling thread */
    assert_int_equal(matmul(NULL, &W, x, 2, y, scratch), 0);
    assert_int_equal(matmul(pool2, &W, x, 2, y2, scratch), 0);
    assert_memory_equal(y, y2, sizeof y);

    assert_int_equal(matmul(pool1, &W, x, 2, y, NULL), -EINVAL);        /* scratch needed */
    assert_int_equal(matmul(pool1, &W, x, 0, y, scratch), -EINVAL);
    nj_mat bad = W;
    bad.cols = 60;                                                       /* not whole blocks */
    assert_int_equal(matmul(pool1, &bad, x, 1, y, scratch), -EINVAL);
    bad = W;
    bad.row_bytes = rb - 1;
    assert_int_equal(matmul(pool1, &bad, x, 1, y, scratch), -EINVAL);
    bad = W;
    bad.type = 4;                                                        /* no such type */
    assert_int_equal(matmul(pool1, &bad, x, 1, y, scratch), NJ_EUNSUPPORTED);
    assert_int_equal(matmul_scratch_size(4, 64, 1), 0);
    assert_int_equal(matmul_scratch_size(NJ_F32, 64, 4), 0);             /* X used directly */
    assert_int_equal(matmul_scratch_size(NJ_Q4_K, 512, 3) % 64, 0);
    assert_true(matmul_scratch_size(NJ_Q4_K, 512, 3) >= 3 * 2 * sizeof(block_q8_K));
    nj_free_aligned(scratch);
    free(w);
}

/* A padded row stride (row_bytes > minimum) is honoured. */
static void test_row_stride(void **state) {
    (void)state;
    rng_seed(11);
    const int64_t rows = 5, cols = 256;
    size_t rb;
    uint8_t *w = make_weights(NJ_Q4_K, rows, cols, &rb);
    const size_t pad = rb + 40;
    uint8_t *wp = calloc(rows, pad);
    for (int r = 0; r < rows; r++) memcpy(wp + r * pad, w + r * rb, rb);
    nj_mat W = {.type = NJ_Q4_K, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
    nj_mat P = W;
    P.row_bytes = pad;
    P.data = wp;
    float x[256 * 3], y[5 * 3], yp[5 * 3];
    for (int i = 0; i < 256 * 3; i++) x[i] = rng_sym();
    void *scratch = nj_malloc_aligned(matmul_scratch_size(NJ_Q4_K, cols, 3));
    assert_int_equal(matmul(pool2, &W, x, 3, y, scratch), 0);
    assert_int_equal(matmul(pool2, &P, x, 3, yp, scratch), 0);
    assert_memory_equal(y, yp, sizeof y);
    nj_free_aligned(scratch);
    free(w);
    free(wp);
}

/* matmul_multi equals separate matmul_ex calls bit for bit: products
 * that share the activation format (one quantization, one pool run), and
 * mixed formats (the fallback), over decode, small batches and packed
 * groups, with rows that are and are not multiples of 8 (repacked orders). */
static void test_multi(void **state) {
    (void)state;
    rng_seed(21);
    static const int sets[][3] = {
        {NJ_Q4_K, NJ_Q6_K, NJ_Q4_K},    /* one format (Q8_K) */
        {NJ_Q5_0, NJ_Q8_0, NJ_Q4_0},    /* one format (Q8_0) */
        {NJ_Q8_0, NJ_Q4_K, NJ_F32},     /* three formats: fallback */
    };
    static const int64_t rows[3] = {40, 19, 64};
    static const int ntoks[] = {1, 3, 6, 21};
    const int64_t cols = 512;
    for (size_t si = 0; si < NJ_ARRAY_LEN(sets); si++) {
        nj_mat W[3];
        const nj_mat *Wp[3];
        void *wd[3];
        size_t scratch_bytes = 0;
        for (int i = 0; i < 3; i++) {
            size_t rb;
            wd[i] = make_weights(sets[si][i], rows[i], cols, &rb);
            W[i] = (nj_mat){.type = sets[si][i], .rows = rows[i], .cols = cols, .row_bytes = rb,
                            .data = wd[i]};
            Wp[i] = &W[i];
            scratch_bytes = NJ_MAX(scratch_bytes, matmul_scratch_size(sets[si][i], cols, 21));
        }
        void *scratch = nj_malloc_aligned(scratch_bytes);
        float *x = malloc(sizeof(float) * cols * 21);
        for (int i = 0; i < cols * 21; i++) x[i] = rng_sym();
        for (size_t ni = 0; ni < NJ_ARRAY_LEN(ntoks); ni++) {
            const int n = ntoks[ni];
            for (int ns = 0; ns <= n; ns += n > 3 ? 3 : 1) {
                float *ym[3], *ys[3];
                for (int i = 0; i < 3; i++) {
                    ym[i] = malloc(sizeof(float) * (size_t)(rows[i] * n));
                    ys[i] = malloc(sizeof(float) * (size_t)(rows[i] * n));
                    assert_int_equal(matmul_ex(pool1, &W[i], x, n, ys[i], scratch, ns), 0);
                }
                /* equal n_single (one pool run when the formats agree),
                 * and a different one for the last product (fallback) */
                const int nsa[3] = {ns, ns, ns};
                assert_int_equal(matmul_multi(pool2, Wp, ym, 3, x, n, scratch, nsa), 0);
                for (int i = 0; i < 3; i++)
                    assert_memory_equal(ym[i], ys[i], sizeof(float) * (size_t)(rows[i] * n));
                const int nsb[3] = {ns, ns, n - ns};
                assert_int_equal(matmul_ex(pool1, &W[2], x, n, ys[2], scratch, n - ns), 0);
                assert_int_equal(matmul_multi(pool2, Wp, ym, 3, x, n, scratch, nsb), 0);
                for (int i = 0; i < 3; i++) {
                    assert_memory_equal(ym[i], ys[i], sizeof(float) * (size_t)(rows[i] * n));
                    free(ym[i]);
                    free(ys[i]);
                }
            }
        }
        float *y1[5] = {0};
        const int zero[5] = {0}, bad[3] = {0, 2, 0};
        assert_int_equal(matmul_multi(pool2, Wp, y1, 0, x, 1, scratch, zero), -EINVAL);
        assert_int_equal(matmul_multi(pool2, Wp, y1, 5, x, 1, scratch, zero), -EINVAL);
        assert_int_equal(matmul_multi(pool2, Wp, y1, 3, x, 1, scratch, NULL), -EINVAL);
        float *y3[3] = {x, x, x};
        assert_int_equal(matmul_multi(pool2, Wp, y3, 3, x, 1, scratch, bad), -EINVAL);
        nj_free_aligned(scratch);
        free(x);
        for (int i = 0; i < 3; i++) free(wd[i]);
    }
}

static const char *self_path;

/* Re-run this binary with NIGHTJAR_CPU set to every other supported level. */
/* The GEMV split (one token: per-thread item ranges, stealing from the
 * back) computes every row exactly once for any thread count, within and
 * beyond the ranged limit, over the parts of a matmul_multi: outputs
 * start as NaN and must equal the one-thread result bit for bit. */
static void test_gemv_ranges(void **state) {
    (void)state;
    const int type = NJ_Q8_0;
    const int64_t cols = 256, rows[3] = {1000, 72, 520};
    size_t rb;
    void *w[3];
    nj_mat W[3];
    for (int i = 0; i < 3; i++) {
        rng_seed(900 + (uint64_t)i);
        w[i] = make_weights(type, rows[i], cols, &rb);
        W[i] = (nj_mat){.type = type, .rows = rows[i], .cols = cols, .row_bytes = rb, .data = w[i]};
    }
    float x[256];
    for (int i = 0; i < 256; i++) x[i] = rng_sym();
    void *scratch = nj_malloc_aligned(matmul_scratch_size(type, cols, 1));
    float *ref[3], *y[3];
    for (int i = 0; i < 3; i++) {
        ref[i] = malloc(sizeof(float) * (size_t)rows[i]);
        y[i] = malloc(sizeof(float) * (size_t)rows[i]);
        assert_int_equal(matmul_ex(pool1, &W[i], x, 1, ref[i], scratch, 0), 0);
    }
    const int threads[] = {2, 3, 5, 17};
    for (size_t ti = 0; ti < NJ_ARRAY_LEN(threads); ti++) {
        nj_pool *p = pool_new(threads[ti], NULL);
        assert_non_null(p);
        for (int rep = 0; rep < 20; rep++) {
            for (int i = 0; i < 3; i++)
                for (int64_t r = 0; r < rows[i]; r++) y[i][r] = NAN;
            const nj_mat *Wp[3] = {&W[0], &W[1], &W[2]};
            const int ns[3] = {0, 0, 0};
            assert_int_equal(matmul_multi(p, Wp, y, 3, x, 1, scratch, ns), 0);
            for (int i = 0; i < 3; i++)
                assert_memory_equal(y[i], ref[i], sizeof(float) * (size_t)rows[i]);
        }
        pool_free(p);
    }
    for (int i = 0; i < 3; i++) { free(w[i]); free(ref[i]); free(y[i]); }
    nj_free_aligned(scratch);
}

static void test_other_levels(void **state) {
    (void)state;
    if (getenv("NIGHTJAR_CPU")) skip();          /* we are the child */
    const nj_kernels *cur = kernels_get();
    int runs = 0;
    for (int l = 0; l < NJ_KL_COUNT; l++) {
        if (l == cur->level || !kernels_at(l)) continue;
        /* NJ_TEST_EXEC_PREFIX: e.g. "qemu-aarch64" when cross-testing */
        const char *prefix = getenv("NJ_TEST_EXEC_PREFIX");
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "NIGHTJAR_CPU=%s %s '%s' > /dev/null 2>&1", kernels_level_name(l),
                 prefix ? prefix : "", self_path);
        int rc = system(cmd);
        if (rc != 0) {
            print_error("matmul tests fail with NIGHTJAR_CPU=%s (rerun it to see)\n",
                        kernels_level_name(l));
            fail();
        }
        runs++;
    }
    print_message("re-ran under %d other kernel level(s)\n", runs);
}

int main(int argc, char **argv) {
    (void)argc;
    self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types_small),
        cmocka_unit_test(test_larger),
        cmocka_unit_test(test_single_split),
        cmocka_unit_test(test_no_pool_and_errors),
        cmocka_unit_test(test_row_stride),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_gemv_ranges),
        cmocka_unit_test(test_other_levels),
    };
    return cmocka_run_group_tests_name("matmul", tests, setup, teardown);
}
