/*
 * test_kernels — every kernel level against the scalar reference.
 *
 * For each level this CPU can run (scalar, avx2, avx512 / neon):
 *   - vec_dot on random blocks (random bytes with sane fp16 scales, so every
 *     bit pattern of the quants occurs) equals quant_traits_ref's vec_dot on
 *     the same bytes within 2e-5 * sum|w_i x_i| (float summation order is
 *     the only allowed difference);
 *   - the gemm tile for 1..9 tokens equals vec_dot bit for bit (so results
 *     do not depend on tiling), gemm_rs/gemm_rb equal vec_dot_rs/vec_dot_rb
 *     (Q4_K's repacked orders) and packed gemm16 equals vec_dot_rb where
 *     the type has it, else vec_dot;
 *   - every level's vec_dot, vec_dot_rs and vec_dot_rb equal the scalar
 *     level's bit for bit, and the repacked types' orders (Q4_K, Q2_K,
 *     Q4_0) are different functions;
 *   - activation quantizers are byte-exact against the portable versions in
 *     scalar.c, and on x86 against quant.c's reference, on random data and
 *     on crafted ties, zero blocks and +/- maximum pairs.
 * Also: the kernels' fp16 helpers against quant.c's over all 65536 halves.
 */
#include "testutil.h"
#include "kernels.h"
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
static float rng_unit(void) { return (float)(rng_u32() & 0xffffff) / 16777216.0f; }
static float rng_normal(void) {
    float u = rng_unit() + 1e-7f, v = rng_unit();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static const int all_types[] = {NJ_F32, NJ_F16, NJ_BF16, NJ_Q4_0, NJ_Q4_1, NJ_Q5_0, NJ_Q5_1,
                                NJ_Q8_0, NJ_Q2_K, NJ_Q3_K, NJ_Q4_K, NJ_Q5_K, NJ_Q6_K};

/* A random fp16 of magnitude ~[2^-10, 2^-3], random sign if `signed_`. */
static uint16_t rand_half(int signed_) {
    float v = ldexpf(1.0f + rng_unit(), -3 - (int)(rng_u32() % 8));
    if (signed_ && (rng_u32() & 1)) v = -v;
    return nj_fp32_to_fp16(v);
}

/* Fill n elements of `type` with random bytes, then make the fp16 scale
 * fields finite and moderate. */
static void rand_weights(int type, void *buf, int64_t n) {
    const nj_type_traits *tt = quant_traits_ref(type);
    size_t bytes = quant_row_size(type, n);
    uint8_t *p = buf;
    for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)rng_u32();
    int64_t nb = n / tt->blck;
    for (int64_t i = 0; i < nb; i++) {
        void *b = p + (size_t)i * tt->size;
        switch (type) {
        case NJ_F32: { float v = rng_normal(); memcpy(b, &v, 4); break; }
        case NJ_F16: { uint16_t h = nj_fp32_to_fp16(rng_normal()); memcpy(b, &h, 2); break; }
        case NJ_BF16: { uint16_t h = nj_fp32_to_bf16(rng_normal()); memcpy(b, &h, 2); break; }
        case NJ_Q4_0: ((block_q4_0 *)b)->d = rand_half(1); break;
        case NJ_Q4_1: ((block_q4_1 *)b)->d = rand_half(0); ((block_q4_1 *)b)->m = rand_half(1); break;
        case NJ_Q5_0: ((block_q5_0 *)b)->d = rand_half(1); break;
        case NJ_Q5_1: ((block_q5_1 *)b)->d = rand_half(0); ((block_q5_1 *)b)->m = rand_half(1); break;
        case NJ_Q8_0: ((block_q8_0 *)b)->d = rand_half(1); break;
        case NJ_Q2_K: ((block_q2_K *)b)->d = rand_half(0); ((block_q2_K *)b)->dmin = rand_half(0); break;
        case NJ_Q3_K: ((block_q3_K *)b)->d = rand_half(1); break;
        case NJ_Q4_K: ((block_q4_K *)b)->d = rand_half(0); ((block_q4_K *)b)->dmin = rand_half(0); break;
        case NJ_Q5_K: ((block_q5_K *)b)->d = rand_half(0); ((block_q5_K *)b)->dmin = rand_half(0); break;
        case NJ_Q6_K: ((block_q6_K *)b)->d = rand_half(1); break;
        default: break;
        }
    }
}

static void rand_floats(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = rng_normal();
        if (rng_u32() % 97 == 0) x[i] *= 20.0f;   /* outliers, as activations have */
    }
}

/* sum |w_i x_i| from dequantized rows: the scale for the tolerance. */
static double abs_dot(int type, const void *w, const void *xq, int n) {
    const nj_type_traits *tw = quant_traits_ref(type), *tx = quant_traits_ref(tw->vec_dot_type);
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    tw->to_float(w, a, n);
    tx->to_float(xq, b, n);
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs((double)a[i] * b[i]);
    free(a);
    free(b);
    return s;
}

/* The type's dot in order o: 0 plain (vec_dot), 1 repacked single-token
 * (vec_dot_rs), 2 repacked batched (vec_dot_rb); NULL if it has no such
 * order. */
static nj_vec_dot_fn dot_of(const nj_kernels *k, int type, int o) {
    return o == 0 ? k->vec_dot[type] : o == 1 ? k->vec_dot_rs[type] : k->vec_dot_rb[type];
}
static nj_gemm_fn gemm_of(const nj_kernels *k, int type, int o) {
    return o == 0 ? k->gemm[type] : o == 1 ? k->gemm_rs[type] : k->gemm_rb[type];
}

static int sizes_for(int type, int *out) {
    const nj_type_traits *tt = quant_traits_ref(type);
    int k = 0;
    if (tt->blck == 1) {
        static const int s[] = {1, 7, 8, 15, 16, 17, 33, 100, 4096};
        for (size_t i = 0; i < NJ_ARRAY_LEN(s); i++) out[k++] = s[i];
    } else {
        int blocks[] = {1, 2, 3, 8, 17};
        for (size_t i = 0; i < NJ_ARRAY_LEN(blocks); i++) out[k++] = blocks[i] * tt->blck;
        if (tt->blck == 32) out[k++] = 4096;
    }
    return k;
}

static void test_vec_dot_vs_ref(void **state) {
    (void)state;
    int checked_levels = 0;
    for (int l = 0; l < NJ_KL_COUNT; l++) {
        const nj_kernels *k = kernels_at(l);
        if (!k) continue;
        checked_levels++;
        for (size_t ti = 0; ti < NJ_ARRAY_LEN(all_types); ti++) {
            const int type = all_types[ti];
            const nj_type_traits *ref = quant_traits_ref(type);
            const int vdt = ref->vec_dot_type;
            assert_non_null(k->vec_dot[type]);
            assert_non_null(ref->vec_dot);
            int sizes[16];
            int ns = sizes_for(type, sizes);
            for (int si = 0; si < ns; si++) {
                const int n = sizes[si];
                rng_seed((uint64_t)(type * 1000 + n));
                for (int rep = 0; rep < 4; rep++) {
                    void *w = malloc(quant_row_size(type, n));
                    void *xq = malloc(quant_row_size(vdt, n));
                    float *x = malloc(sizeof(float) * (size_t)n);
                    rand_weights(type, w, n);
                    rand_floats(x, n);
                    k->traits[vdt].from_float(x, xq, n);
                    float want = NAN;
                    ref->vec_dot(n, &want, w, xq);
                    double tol = 2e-5 * abs_dot(type, w, xq, n) + 1e-30;
                    for (int o = 0; o < 3; o++) {
                        nj_vec_dot_fn dot = dot_of(k, type, o);
                        if (!dot) continue;
                        float got = NAN;
                        dot(n, &got, w, xq);
                        if (!(fabs((double)got - want) <= tol)) {
                            print_error("level %s type %s order %d n %d rep %d: got %.9g want %.9g (tol %.3g)\n",
                                        k->name, ref->name, o, n, rep, got, want, tol);
                            fail();
                        }
                    }
                    free(w);
                    free(xq);
                    free(x);
                }
            }
        }
    }
    assert_true(checked_levels >= 1);
}

/* Every level's vec_dot equals the scalar level's bit for bit (the
 * canonical float order, see scalar.c), on the same activation bytes. */
static void test_levels_bit_identical(void **state) {
    (void)state;
    const nj_kernels *s = kernels_at(NJ_KL_SCALAR);
    int compared = 0;
    for (size_t ti = 0; ti < NJ_ARRAY_LEN(all_types); ti++) {
        const int type = all_types[ti];
        const nj_type_traits *ref = quant_traits_ref(type);
        const int vdt = ref->vec_dot_type;
        int sizes[16];
        int ns = sizes_for(type, sizes);
        for (int si = 0; si < ns; si++) {
            const int n = sizes[si];
            void *w = malloc(quant_row_size(type, n));
            void *xq = malloc(quant_row_size(vdt, n));
            float *x = malloc(sizeof(float) * (size_t)n);
            rng_seed((uint64_t)(type * 7919 + n));
            for (int rep = 0; rep < 4; rep++) {
                rand_weights(type, w, n);
                rand_floats(x, n);
                s->traits[vdt].from_float(x, xq, n);
                for (int o = 0; o < 3; o++) {
                    nj_vec_dot_fn sdot = dot_of(s, type, o);
                    if (!sdot) continue;
                    float want;
                    sdot(n, &want, w, xq);
                    for (int l = 1; l < NJ_KL_COUNT; l++) {
                        const nj_kernels *k = kernels_at(l);
                        if (!k) continue;
                        /* a level has the repacked orders exactly where scalar has them */
                        nj_vec_dot_fn dot = dot_of(k, type, o);
                        assert_non_null(dot);
                        float got;
                        dot(n, &got, w, xq);
                        if (memcmp(&got, &want, 4) != 0) {
                            print_error("level %s type %s order %d n %d: %.9g != scalar %.9g\n", k->name,
                                        ref->name, o, n, got, want);
                            fail();
                        }
                        compared++;
                    }
                }
                for (int l = 1; l < NJ_KL_COUNT; l++) {
                    const nj_kernels *k = kernels_at(l);
                    if (!k) continue;
                    assert_true(!k->vec_dot_rs[type] == !s->vec_dot_rs[type]);
                    assert_true(!k->vec_dot_rb[type] == !s->vec_dot_rb[type]);
                }
            }
            free(w);
            free(xq);
            free(x);
        }
    }
    print_message("%d SIMD results compared with the scalar level\n", compared);
}

/* gemm tiles of 1..9 tokens x 5 rows == vec_dot, bit for bit. */
static void test_gemm_equals_vec_dot(void **state) {
    (void)state;
    for (int l = 0; l < NJ_KL_COUNT; l++) {
        const nj_kernels *k = kernels_at(l);
        if (!k) continue;
        for (size_t ti = 0; ti < NJ_ARRAY_LEN(all_types); ti++) {
            const int type = all_types[ti];
            const nj_type_traits *ref = quant_traits_ref(type);
            if (!k->gemm[type] && !k->gemm_rs[type] && !k->gemm_rb[type])
                continue;   /* generic loop: vec_dot by construction */
            const int vdt = ref->vec_dot_type, n = ref->blck == 1 ? 72 : 2 * QK_K;
            const int nr = 13, ntmax = 9;   /* 8 + 4 + 1-row tiles */
            const size_t ws = quant_row_size(type, n) + 4;   /* padded strides */
            const size_t xs = quant_row_size(vdt, n) + 8;
            uint8_t *w = malloc(ws * nr), *xq = malloc(xs * ntmax);
            float *x = malloc(sizeof(float) * n);
            rng_seed((uint64_t)type + 77);
            for (int r = 0; r < nr; r++) rand_weights(type, w + r * ws, n);
            for (int t = 0; t < ntmax; t++) {
                rand_floats(x, n);
                k->traits[vdt].from_float(x, xq + t * xs, n);
            }
            /* gemm vs vec_dot, gemm_rs vs vec_dot_rs, gemm_rb vs vec_dot_rb */
            for (int order = 0; order < 3; order++) {
                nj_gemm_fn gemm = gemm_of(k, type, order);
                nj_vec_dot_fn dot = dot_of(k, type, order);
                if (!gemm) continue;
                assert_non_null(dot);
                for (int nt = 1; nt <= ntmax; nt++) {
                    const size_t ldy = nr + 2;
                    float y[9 * 15];   /* ntmax * (nr + 2) */
                    for (size_t i = 0; i < NJ_ARRAY_LEN(y); i++) y[i] = -12345.0f;
                    gemm(n, w, ws, nr, xq, xs, nt, y, ldy);
                    for (int t = 0; t < nt; t++) {
                        for (int r = 0; r < nr; r++) {
                            float want;
                            dot(n, &want, w + r * ws, xq + t * xs);
                            if (memcmp(&want, &y[t * ldy + r], 4) != 0) {
                                print_error("level %s type %s order %d nt %d t %d r %d: gemm %.9g vec_dot %.9g\n",
                                            k->name, ref->name, order, nt, t, r, y[t * ldy + r], want);
                                fail();
                            }
                        }
                        for (size_t r = nr; r < ldy; r++) assert_true(y[t * ldy + r] == -12345.0f);
                    }
                }
            }
            free(w);
            free(xq);
            free(x);
        }
    }
}

/* Packed GEMM over several groups at once (1..5 groups, so every group
 * tiling of a level is used) and row counts that leave every row tail,
 * == vec_dot_rb (types llama.cpp repacks) or vec_dot bit for bit. */
static void test_gemm16_groups(void **state) {
    (void)state;
    enum { NG = 5, NR = 13 };
    int checked = 0;
    for (int l = 0; l < NJ_KL_COUNT; l++) {
        const nj_kernels *k = kernels_at(l);
        if (!k) continue;
        for (size_t ti = 0; ti < NJ_ARRAY_LEN(all_types); ti++) {
            const int type = all_types[ti];
            const nj_type_traits *ref = quant_traits_ref(type);
            const int vdt = ref->vec_dot_type;
            if (!k->gemm16[type]) continue;
            const int n = ref->blck == 32 ? 17 * 32 : 2 * QK_K;
            const size_t ws = quant_row_size(type, n), xs = quant_row_size(vdt, n);
            const size_t ps = kernels_pack16_size(vdt, n), ldy = NR + 1;
            uint8_t *w = malloc(ws * NR), *xq = malloc(xs * 16 * NG);
            char *packed = nj_malloc_aligned(ps * NG);
            float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * 16 * NG * ldy);
            rng_seed((uint64_t)type * 57 + 3);
            for (int r = 0; r < NR; r++) rand_weights(type, w + r * ws, n);
            for (int t = 0; t < 16 * NG; t++) {
                rand_floats(x, n);
                k->traits[vdt].from_float(x, xq + t * xs, n);
            }
            for (int g = 0; g < NG; g++) k->pack16[vdt](n, xq + (size_t)16 * g * xs, xs, 16, packed + ps * g);
            for (int ng = 1; ng <= NG; ng++)
                for (int rows = ng; rows <= NR; rows += 3) {
                    for (size_t i = 0; i < 16 * NG * ldy; i++) y[i] = -1.0f;
                    k->gemm16[type](n, w, ws, rows, packed, ps, ng, y, ldy);
                    for (int t = 0; t < 16 * ng; t++)
                        for (int r = 0; r < rows; r++) {
                            float want;
                            (k->vec_dot_rb[type] ? k->vec_dot_rb[type] : k->vec_dot[type])(
                                n, &want, w + r * ws, xq + t * xs);
                            if (memcmp(&want, &y[t * ldy + r], 4) != 0) {
                                print_error("level %s %s ng %d rows %d: y[%d][%d] %.9g != vec_dot %.9g\n",
                                            k->name, ref->name, ng, rows, t, r, y[t * ldy + r], want);
                                fail();
                            }
                            checked++;
                        }
                    for (int t = 0; t < 16 * NG; t++)
                        for (int r = t < 16 * ng ? rows : 0; r < (int)ldy; r++) assert_true(y[t * ldy + r] == -1.0f);
                }
            free(w);
            free(xq);
            free(x);
            free(y);
            nj_free_aligned(packed);
        }
    }
    print_message("%d packed multi-group results compared with vec_dot\n", checked);
}

/* Packed 16-token GEMM == vec_dot_rb (types llama.cpp repacks) or vec_dot
 * bit for bit, for full and partial groups and several row counts. */
static void test_gemm16_equals_vec_dot(void **state) {
    (void)state;
    int checked = 0;
    for (int l = 0; l < NJ_KL_COUNT; l++) {
        const nj_kernels *k = kernels_at(l);
        if (!k) continue;
        for (size_t ti = 0; ti < NJ_ARRAY_LEN(all_types); ti++) {
            const int type = all_types[ti];
            const nj_type_traits *ref = quant_traits_ref(type);
            const int vdt = ref->vec_dot_type;
            if (!k->gemm16[type]) continue;
            assert_non_null(k->pack16[vdt]);
            nj_vec_dot_fn dot = k->vec_dot_rb[type] ? k->vec_dot_rb[type] : k->vec_dot[type];
            const int sizes[] = {ref->blck == 32 ? 96 : 256, ref->blck == 32 ? 544 : 1024};
            for (size_t si = 0; si < NJ_ARRAY_LEN(sizes); si++) {
                const int n = sizes[si], nr = 7;
                const size_t ws = quant_row_size(type, n), xs = quant_row_size(vdt, n);
                const size_t ps = kernels_pack16_size(vdt, n);
                assert_true(ps > 0 && ps % 64 == 0);
                uint8_t *w = malloc(ws * nr), *xq = malloc(xs * 16);
                void *packed = nj_malloc_aligned(ps);
                float *x = malloc(sizeof(float) * n), y[16 * 8];
                rng_seed((uint64_t)type * 31 + (uint64_t)n);
                for (int r = 0; r < nr; r++) rand_weights(type, w + r * ws, n);
                for (int t = 0; t < 16; t++) {
                    rand_floats(x, n);
                    k->traits[vdt].from_float(x, xq + t * xs, n);
                }
                for (int nt = 16; nt >= 1; nt -= 5) {
                    k->pack16[vdt](n, xq, xs, nt, packed);
                    for (int rows = 1; rows <= nr; rows += 2) {
                        for (size_t i = 0; i < NJ_ARRAY_LEN(y); i++) y[i] = -1.0f;
                        k->gemm16[type](n, w, ws, rows, packed, ps, 1, y, 8);
                        for (int t = 0; t < nt; t++)
                            for (int r = 0; r < rows; r++) {
                                float want;
                                dot(n, &want, w + r * ws, xq + t * xs);
                                if (memcmp(&want, &y[t * 8 + r], 4) != 0) {
                                    print_error("level %s %s n %d nt %d rows %d: y[%d][%d] %.9g != vec_dot %.9g\n",
                                                k->name, ref->name, n, nt, rows, t, r, y[t * 8 + r], want);
                                    fail();
                                }
                                checked++;
                            }
                        for (int t = 0; t < 16; t++) assert_true(y[t * 8 + 7] == -1.0f);
                    }
                }
                free(w);
                free(xq);
                free(x);
                nj_free_aligned(packed);
            }
        }
    }
    print_message("%d packed-GEMM results compared\n", checked);
}

/* The repacked types' orders are different float orders: on random rows
 * each pair that should differ disagrees in the last bits for some (else
 * the choice of order that matmul and the session make would go
 * untested).  Q4_0's repacked order is one function for both (rs == rb). */
static void orders_differ(int type, int vdt, int n, uint32_t seed) {
    const nj_kernels *s = kernels_at(NJ_KL_SCALAR);
    nj_vec_dot_fn dots[3] = {s->vec_dot[type], s->vec_dot_rs[type], s->vec_dot_rb[type]};
    for (int o = 0; o < 3; o++) assert_non_null(dots[o]);
    const bool same_r = dots[1] == dots[2];
    void *w = malloc(quant_row_size(type, n)), *xq = malloc(quant_row_size(vdt, n));
    float *x = malloc(sizeof(float) * n);
    int differ[3] = {0, 0, 0};   /* plain vs rs, plain vs rb, rs vs rb */
    rng_seed(seed);
    for (int rep = 0; rep < 50; rep++) {
        rand_weights(type, w, n);
        rand_floats(x, n);
        s->from_float[vdt](x, xq, n);
        float y[3];
        for (int o = 0; o < 3; o++) dots[o](n, &y[o], w, xq);
        differ[0] += memcmp(&y[0], &y[1], 4) != 0;
        differ[1] += memcmp(&y[0], &y[2], 4) != 0;
        differ[2] += memcmp(&y[1], &y[2], 4) != 0;
    }
    print_message("%s orders, rows of 50 that differ: plain/rs %d, plain/rb %d, rs/rb %d\n",
                  quant_type_name(type), differ[0], differ[1], differ[2]);
    assert_true(differ[0] > 0);
    assert_true(differ[1] > 0);
    if (same_r) assert_int_equal(differ[2], 0);
    else assert_true(differ[2] > 0);
    free(w);
    free(xq);
    free(x);
}

static void test_repacked_orders_differ(void **state) {
    (void)state;
    orders_differ(NJ_Q4_K, NJ_Q8_K, 8 * QK_K, 314);
    orders_differ(NJ_Q2_K, NJ_Q8_K, 8 * QK_K, 315);
    orders_differ(NJ_Q4_0, NJ_Q8_0, 8 * QK_K, 316);
    /* BF16's single-token order is its plain one (ggml_vec_dot_bf16); the
     * batched one (tinyBLAS) must differ from it */
    const nj_kernels *sc = kernels_at(NJ_KL_SCALAR);
    assert_true(sc->vec_dot[NJ_BF16] == sc->vec_dot_rs[NJ_BF16]);
    uint16_t w[1024], xq[1024];
    float x[1024];
    int differ = 0;
    rng_seed(317);
    for (int rep = 0; rep < 50; rep++) {
        rand_weights(NJ_BF16, w, 1024);
        rand_floats(x, 1024);
        sc->from_float[NJ_BF16](x, xq, 1024);
        float a, b;
        sc->vec_dot_rs[NJ_BF16](1024, &a, w, xq);
        sc->vec_dot_rb[NJ_BF16](1024, &b, w, xq);
        differ += memcmp(&a, &b, 4) != 0;
    }
    print_message("BF16 orders, rows of 50 that differ: rs/rb %d\n", differ);
    assert_true(differ > 0);
}

/* ---- BF16: the vdpbf16ps emulation on the values where it is subtle ----
 *
 * scalar.c emulates llama.cpp's _mm512_dpbf16_ps: per lane the odd pair's
 * product first, fused multiply-adds, subnormal inputs read as zero (DAZ)
 * and subnormal results flushed (FTZ).  Random normal data never meets the
 * flushing, so here rows mix subnormals, signed zeros and magnitudes whose
 * products and partial sums fall around FLT_MIN.  Every level (the avx512
 * one runs the real instruction on an AVX512_BF16 CPU) must equal the
 * scalar level bit for bit, and the data must be such that leaving the
 * flushing out changes results (else this test could not fail). */
static uint16_t bf16_edge(int mode) {
    const uint16_t sign = (uint16_t)((rng_u32() & 1) << 15), man = (uint16_t)(rng_u32() & 0x7f);
    switch (mode == 0 ? (int)(rng_u32() % 4) : 1 + (int)(rng_u32() % 3)) {
    case 0: return nj_fp32_to_bf16(rng_normal());                        /* ordinary */
    case 1: return (uint16_t)(sign | man);                               /* subnormal or zero */
    default: return (uint16_t)(sign | ((56 + rng_u32() % 16) << 7) | man);  /* products ~2^-140..2^-110 */
    }
}

/* the canonical order without DAZ/FTZ (batched order, n % 32 == 0) */
static float bf16_noflush_batched(int n, const uint16_t *w, const uint16_t *x) {
    float c[16] = {0};
    for (int i = 0; i < n; i += 32)
        for (int j = 0; j < 16; j++) {
            c[j] = fmaf(nj_bf16_to_fp32(w[i + 2 * j + 1]), nj_bf16_to_fp32(x[i + 2 * j + 1]), c[j]);
            c[j] = fmaf(nj_bf16_to_fp32(w[i + 2 * j]), nj_bf16_to_fp32(x[i + 2 * j]), c[j]);
        }
    float b[8], d[4];
    for (int k = 0; k < 8; k++) b[k] = c[k] + c[k + 8];
    for (int k = 0; k < 4; k++) d[k] = b[k] + b[k + 4];
    return (d[0] + d[2]) + (d[1] + d[3]);
}

static void check_bytes(const char *what, const char *lvl, const void *a, const void *b, size_t n);

static void test_bf16_flush_edges(void **state) {
    (void)state;
    enum { NR = 6, NT = 5, NMAX = 256 };
    static const int sizes[] = {32, 64, 96, 128, 200, 256};
    const nj_kernels *s = kernels_at(NJ_KL_SCALAR);
    uint16_t w[NR * NMAX], x[NT * NMAX];
    int compared = 0, flush_matters = 0;
    rng_seed(4242);
    for (size_t si = 0; si < NJ_ARRAY_LEN(sizes); si++) {
        const int n = sizes[si];
        for (int rep = 0; rep < 40; rep++) {
            const int mode = rep % 2;
            for (int i = 0; i < NR * n; i++) w[i] = bf16_edge(mode);
            for (int i = 0; i < NT * n; i++) x[i] = bf16_edge(mode);
            for (int o = 0; o < 3; o++) {
                nj_vec_dot_fn sdot = dot_of(s, NJ_BF16, o);
                float want[NT][NR];
                for (int t = 0; t < NT; t++)
                    for (int r = 0; r < NR; r++) {
                        sdot(n, &want[t][r], w + r * n, x + t * n);
                        if (o == 2 && n % 32 == 0) {
                            const float nf = bf16_noflush_batched(n, w + r * n, x + t * n);
                            flush_matters += memcmp(&nf, &want[t][r], 4) != 0;
                        }
                    }
                for (int l = 1; l < NJ_KL_COUNT; l++) {
                    const nj_kernels *k = kernels_at(l);
                    if (!k) continue;
                    nj_vec_dot_fn dot = dot_of(k, NJ_BF16, o);
                    nj_gemm_fn gemm = gemm_of(k, NJ_BF16, o);
                    float y[NT][NR];
                    if (gemm) {
                        gemm(n, w, 2 * (size_t)n, NR, x, 2 * (size_t)n, NT, &y[0][0], NR);
                    } else {
                        for (int t = 0; t < NT; t++)
                            for (int r = 0; r < NR; r++) dot(n, &y[t][r], w + r * n, x + t * n);
                    }
                    for (int t = 0; t < NT; t++)
                        for (int r = 0; r < NR; r++) {
                            float d;
                            dot(n, &d, w + r * n, x + t * n);
                            if (memcmp(&d, &want[t][r], 4) != 0 || memcmp(&y[t][r], &want[t][r], 4) != 0) {
                                print_error("level %s order %d n %d t %d r %d: dot %a gemm %a scalar %a\n",
                                            k->name, o, n, t, r, d, y[t][r], want[t][r]);
                                fail();
                            }
                            compared++;
                        }
                }
            }
        }
    }
    print_message("%d BF16 edge results compared with the scalar level; flushing changed %d\n",
                  compared, flush_matters);
    assert_true(flush_matters > 0);

    /* from_float on any bit pattern (NaN, Inf, subnormal, ties) == scalar */
    enum { NF = 1000 };
    float f[NF];
    uint16_t want[NF], got[NF];
    for (int i = 0; i < NF; i++) {
        uint32_t u = rng_u32() << 16 ^ rng_u32();
        if (i % 4 == 1) u = (u & 0xffff8000u) | (rng_u32() & 1 ? 0x8000u : 0x7fffu);  /* near ties */
        if (i % 4 == 2) u &= 0x807fffffu;                                               /* subnormal */
        if (i % 8 == 3) u |= 0x7f800000u;                                               /* Inf / NaN */
        memcpy(&f[i], &u, 4);
    }
    s->from_float[NJ_BF16](f, want, NF);
    for (int i = 0; i < NF; i++) assert_int_equal(want[i], nj_fp32_to_bf16(f[i]));
    for (int l = 1; l < NJ_KL_COUNT; l++) {
        const nj_kernels *k = kernels_at(l);
        if (!k) continue;
        for (int n = NF - 17; n <= NF; n += 17) {   /* tails */
            memset(got, 0, sizeof got);
            k->from_float[NJ_BF16](f, got, n);
            check_bytes("bf16 from_float", k->name, got, want, sizeof(uint16_t) * (size_t)n);
        }
    }
}

/* Activation rows that exercise the quantizers' corner cases. */
static void special_rows(float *x, int n, int which) {
    for (int i = 0; i < n; i++) x[i] = 0.0f;
    switch (which) {
    case 0: break;                                             /* all zero */
    case 1:                                                    /* exact .5 ties at id = 1 */
        for (int i = 0; i < n; i++) x[i] = (float)((i % 64) - 32) + 0.5f;
        for (int i = 0; i < n; i += 32) x[i] = 127.0f;
        break;
    case 2:                                                    /* +max and -max, - first */
        for (int i = 0; i < n; i++) x[i] = rng_normal();
        for (int i = 0; i < n; i += 32) { x[i + 3] = -9.0f; x[i + 20] = 9.0f; }
        break;
    case 3:                                                    /* tiny and huge magnitudes */
        for (int i = 0; i < n; i++) x[i] = rng_normal() * (i & 1 ? 1e-30f : 1e20f);
        break;
    case 4:                                                    /* one nonzero per block */
        for (int i = 0; i < n; i += 32) x[i + 7] = -rng_unit();
        break;
    default:
        rand_floats(x, n);
    }
}

static void check_bytes(const char *what, const char *lvl, const void *a, const void *b, size_t n) {
    if (memcmp(a, b, n) != 0) {
        size_t i = 0;
        while (((const uint8_t *)a)[i] == ((const uint8_t *)b)[i]) i++;
        print_error("%s (%s): first byte difference at %zu of %zu\n", what, lvl, i, n);
        fail();
    }
}

static void test_from_float_exact(void **state) {
    (void)state;
    const nj_kernels *s = kernels_at(NJ_KL_SCALAR);
    assert_non_null(s);
    const int n = 4 * QK_K;
    float x[4 * QK_K];
    static uint8_t a[4 * QK_K * 4], b[4 * QK_K * 4];
    const int qtypes[] = {NJ_Q8_0, NJ_Q8_1, NJ_Q8_K, NJ_F16, NJ_BF16};
    rng_seed(4242);
    for (int which = 0; which < 12; which++) {
        special_rows(x, n, which);
        for (size_t q = 0; q < NJ_ARRAY_LEN(qtypes); q++) {
            const int type = qtypes[q];
            const size_t bytes = quant_row_size(type, n);
            const nj_type_traits *ref = quant_traits_ref(type);
            /* scalar level: on x86 == the reference (both are llama.cpp's x86
             * numerics); on ARM Q8_0/Q8_1 differ on purpose (see scalar.c). */
            memset(a, 0xaa, sizeof a);
            memset(b, 0x55, sizeof b);
            s->from_float[type](x, a, n);
            ref->from_float(x, b, n);
#if defined(__aarch64__)
            if (type != NJ_Q8_0 && type != NJ_Q8_1)
#endif
                check_bytes(ref->name, "scalar vs quant ref", a, b, bytes);
            for (int l = 1; l < NJ_KL_COUNT; l++) {
                const nj_kernels *k = kernels_at(l);
                if (!k) continue;
                memset(b, 0x55, sizeof b);
                k->from_float[type](x, b, n);
                check_bytes(ref->name, k->name, a, b, bytes);
            }
        }
    }
}

/* The portable variants agree with each other except on the documented
 * rounding differences: never by more than one step, and x86 == ref. */
static void test_quantizer_variants(void **state) {
    (void)state;
    const int n = 1024;
    float x[1024];
    block_q8_0 a[32], b[32];
    long diff = 0;
    rng_seed(99);
    for (int rep = 0; rep < 200; rep++) {
        rand_floats(x, n);
        kern_quantize_q8_0_x86(x, a, n);
        kern_quantize_q8_0_arm(x, b, n);
        for (int i = 0; i < 32; i++) {
            assert_int_equal(a[i].d, b[i].d);
            for (int j = 0; j < 32; j++) {
                int dq = a[i].qs[j] - b[i].qs[j];
                assert_true(dq >= -1 && dq <= 1);
                diff += dq != 0;
            }
        }
    }
    /* Ties at id = 1 separate round-half-even from the reference file
     * quantizer's round-half-away. */
    special_rows(x, n, 1);
    kern_quantize_q8_0_x86(x, a, n);
    assert_int_equal(a[0].qs[1], -30);     /* -30.5 -> -30 (even) */
    assert_int_equal(a[0].qs[2], -30);     /* -29.5 -> -30 (even) */
    print_message("q8_0 x86 vs arm numerics: %ld of %d elements differ\n", diff, 200 * n);
}

static void test_fp16_helpers(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = kern_fp16_to_fp32((uint16_t)h), b = nj_fp16_to_fp32((uint16_t)h);
        if (isnan(b)) { assert_true(isnan(a)); continue; }
        assert_memory_equal(&a, &b, 4);
        assert_int_equal(kern_fp32_to_fp16(a), nj_fp32_to_fp16(a));
        assert_true(kern_bf16_to_fp32((uint16_t)h) == nj_bf16_to_fp32((uint16_t)h) ||
                    isnan(nj_bf16_to_fp32((uint16_t)h)));
    }
    rng_seed(5);
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = rng_u32() ^ (rng_u32() << 16);
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f)) continue;
        assert_int_equal(kern_fp32_to_fp16(f), nj_fp32_to_fp16(f));
    }
}

static void test_dispatch(void **state) {
    (void)state;
    const nj_kernels *k = kernels_get();
    assert_non_null(k);
    assert_non_null(kernels_at(NJ_KL_SCALAR));
    assert_non_null(kernels_describe());
    assert_true(strstr(kernels_describe(), "kernels: ") != NULL);
    assert_int_equal(kernels_level_from_name("avx2"), NJ_KL_AVX2);
    assert_int_equal(kernels_level_from_name("nope"), -1);
    assert_string_equal(kernels_level_name(NJ_KL_NEON), "neon");
    /* the dispatched traits keep the reference's metadata */
    for (size_t i = 0; i < NJ_ARRAY_LEN(all_types); i++) {
        const nj_type_traits *t = kernels_traits(all_types[i]), *r = quant_traits_ref(all_types[i]);
        assert_non_null(t);
        assert_int_equal(t->size, r->size);
        assert_int_equal(t->vec_dot_type, r->vec_dot_type);
        assert_ptr_equal(t->vec_dot, k->vec_dot[all_types[i]]);
    }
    assert_null(kernels_traits(4));
    assert_null(kernels_traits(-1));
    assert_null(kernels_traits(NJ_TYPE_COUNT));
    print_message("%s\n", kernels_describe());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_fp16_helpers),
        cmocka_unit_test(test_vec_dot_vs_ref),
        cmocka_unit_test(test_levels_bit_identical),
        cmocka_unit_test(test_gemm_equals_vec_dot),
        cmocka_unit_test(test_gemm16_equals_vec_dot),
        cmocka_unit_test(test_gemm16_groups),
        cmocka_unit_test(test_repacked_orders_differ),
        cmocka_unit_test(test_bf16_flush_edges),
        cmocka_unit_test(test_from_float_exact),
        cmocka_unit_test(test_quantizer_variants),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
