/* test_attn_ops — the attention/SwiGLU inner loops: the dispatched variant
 * (AVX2+FMA on such CPUs) gives the same bits as the portable one, f16
 * rounding equals a round trip through f16, and the approximate exp stays
 * within a few ulp of expf. */
#include "testutil.h"

#include <math.h>

#include "attn_ops.h"
#include "kernels.h"
#include "util.h"
#include "quant.h"

static uint32_t rng = 12345;
static float frand(float lo, float hi) {
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

static void test_variants_agree(void **st) {
    (void)st;
    const attn_ops *a = attn_ops_get(), *p = attn_ops_portable();
    enum { HK = 128, HV = 96, NK = 64 };
    static float q[HK], kt[HK * ATTN_TILE], v[NK * HV], pr[NK];
    for (int i = 0; i < HK; i++) q[i] = frand(-2, 2);
    for (int i = 0; i < HK * ATTN_TILE; i++) kt[i] = frand(-2, 2);
    for (int i = 0; i < NK * HV; i++) v[i] = frand(-3, 3);
    for (int i = 0; i < NK; i++) pr[i] = i % 7 ? frand(0, 1) : 0.0f;
    static float qm[ATTN_KQ_ROWS][HK];
    const float *qp[ATTN_KQ_ROWS];
    for (int r = 0; r < ATTN_KQ_ROWS; r++) {
        qp[r] = qm[r];
        for (int i = 0; i < HK; i++) qm[r][i] = r ? frand(-2, 2) : q[i];
    }
    float k1[ATTN_KQ_ROWS * ATTN_TILE], k2[ATTN_KQ_ROWS * ATTN_TILE];
    for (int nq = 1; nq <= ATTN_KQ_ROWS; nq++) {
        a->kq_tile(HK, nq, qp, kt, k1);
        p->kq_tile(HK, nq, qp, kt, k2);
        assert_memory_equal(k1, k2, sizeof(float) * ATTN_TILE * (size_t)nq);
    }
    float acc1[HV], acc2[HV];
    for (int d = 0; d < HV; d++) acc1[d] = acc2[d] = frand(-1, 1);
    a->pv_tile(HV, NK, pr, v, acc1);
    p->pv_tile(HV, NK, pr, v, acc2);
    assert_memory_equal(acc1, acc2, sizeof acc1);
    /* head sizes with a 128-column block and a remainder */
    static float v2[NK * 256], acc3[256], acc4[256];
    static const int hvs[] = {1, 62, 128, 184, 256};
    for (int i = 0; i < NK * 256; i++) v2[i] = frand(-3, 3);
    for (size_t hi = 0; hi < NJ_ARRAY_LEN(hvs); hi++) {
        const int hv = hvs[hi];
        for (int d = 0; d < hv; d++) acc3[d] = acc4[d] = frand(-1, 1);
        a->pv_tile(hv, NK - 5, pr, v2, acc3);
        p->pv_tile(hv, NK - 5, pr, v2, acc4);
        assert_memory_equal(acc3, acc4, sizeof(float) * (size_t)hv);
    }
    float x1[16], x2[16];
    for (int j = 0; j < 16; j++) x1[j] = x2[j] = j == 3 ? -INFINITY : frand(-30, 0);
    float s1 = a->softmax16(x1, 0.0f), s2 = p->softmax16(x2, 0.0f);
    assert_memory_equal(x1, x2, sizeof x1);
    assert_true(s1 == s2);
    assert_true(x1[3] == 0.0f);
    /* far tails: subnormal results, saturation past |n| > 192, -0 */
    for (int rep = 0; rep < 20; rep++) {
        for (int j = 0; j < 16; j++) x1[j] = x2[j] = frand(-1, 0) * ldexpf(1.0f, rep % 12);
        x1[5] = x2[5] = -0.0f;
        x1[7] = x2[7] = -140.0f;
        s1 = a->softmax16(x1, 0.0f);
        s2 = p->softmax16(x2, 0.0f);
        assert_memory_equal(x1, x2, sizeof x1);
        assert_true(s1 == s2);
    }
    float vh[HV];
    for (int d = 0; d < HV; d++) vh[d] = f16_round(frand(-4, 4));
    for (int d = 0; d < HV; d++) acc1[d] = acc2[d] = f16_round(frand(-1, 1));
    for (int it = 0; it < 50; it++) {
        float s = frand(0, 1);
        a->v_mad_f16(HV, vh, s, acc1);
        p->v_mad_f16(HV, vh, s, acc2);
    }
    assert_memory_equal(acc1, acc2, sizeof acc1);
    /* tiny scales drive the accumulator through f16 subnormals */
    for (int it = 0; it < 30; it++) {
        float s = ldexpf(frand(0, 1), -(int)frand(0, 30));
        a->v_mad_f16(HV - 3, vh, it % 2 ? s : -s, acc1);
        p->v_mad_f16(HV - 3, vh, it % 2 ? s : -s, acc2);
        for (int d = 0; d < HV; d++) { acc1[d] *= 0.25f; acc2[d] *= 0.25f; }
        assert_memory_equal(acc1, acc2, sizeof acc1);
    }
    /* widen_f16 over every f16 bit pattern but NaNs; dot_f16 on a length
     * with a 64-step body and a tail */
    static uint16_t hb[65536];
    static float w1[65536], w2[65536];
    int nh = 0;
    for (uint32_t b = 0; b < 65536; b++)
        if ((b & 0x7c00) != 0x7c00 || !(b & 0x3ff)) hb[nh++] = (uint16_t)b;
    a->widen_f16(nh, hb, w1);
    p->widen_f16(nh, hb, w2);
    assert_memory_equal(w1, w2, sizeof(float) * (size_t)nh);
    for (int i = 0; i < nh; i += 997) assert_true(w1[i] == nj_fp16_to_fp32(hb[i]) || isnan(w1[i]));
    enum { ND = 200 };
    float dx[ND], dy[ND];
    for (int i = 0; i < ND; i++) { dx[i] = f16_round(frand(-3, 3)); dy[i] = f16_round(frand(-3, 3)); }
    for (int n = 1; n <= ND; n += 13) {
        float d1 = a->dot_f16(n, dx, dy), d2 = p->dot_f16(n, dx, dy);
        assert_memory_equal(&d1, &d2, sizeof d1);
    }
    /* geglu: a table with distinct values per f16, inputs across the
     * clamps (+-10) and the f16 subnormal range */
    static float tab[65536];
    for (uint32_t b = 0; b < 65536; b++) tab[b] = (float)b * 0.5f - 7.0f;
    enum { NG = 203 };
    float ga[NG], gb[NG], gu[NG];
    for (int i = 0; i < NG; i++) {
        ga[i] = gb[i] = i % 5 == 0 ? frand(-12, 12) : frand(-1, 1) * ldexpf(1.0f, -(int)frand(0, 26));
        gu[i] = frand(-2, 2);
    }
    ga[0] = gb[0] = -10.0f; ga[1] = gb[1] = 10.0f;
    a->geglu(NG, ga, gu, tab);
    p->geglu(NG, gb, gu, tab);
    assert_memory_equal(ga, gb, sizeof ga);
    enum { N = 1000 };   /* not a multiple of 16: vector body and tail */
    static float g1[N], g2[N], u[N];
    for (int i = 0; i < N; i++) {
        g1[i] = g2[i] = i % 9 ? frand(-12, 12) : frand(-1, 1) * ldexpf(1.0f, i % 8);
        u[i] = frand(-2, 2);
    }
    a->swiglu(N, g1, u);
    p->swiglu(N, g2, u);
    assert_memory_equal(g1, g2, sizeof g1);
    /* vec_range: 3 heads sharing f16 K/V rows (strided, as in the cache),
     * head sizes 64 and 128, over two consecutive key ranges (running
     * state carried), with a rising score that forces rescales */
    enum { NKEY = 300, GQ = 3 };
    static const int hds[] = {64, 128};
    for (size_t hi = 0; hi < NJ_ARRAY_LEN(hds); hi++) {
        const int hd = hds[hi];
        const size_t stride = (size_t)hd * 2 + 16;
        static uint16_t kc[NKEY * 272], vc[NKEY * 272];
        for (int i = 0; i < NKEY; i++)
            for (int d = 0; d < hd; d++) {
                kc[(size_t)i * stride + d] = nj_fp32_to_fp16(frand(-1, 1) + (float)i * 0.002f);
                vc[(size_t)i * stride + d] = nj_fp32_to_fp16(frand(-2, 2));
            }
        static float qh[GQ * 128], kf[128], vf[128], vk1[GQ * 128], vk2[GQ * 128];
        float M1[GQ], S1[GQ], M2[GQ], S2[GQ];
        for (int i = 0; i < GQ * hd; i++) qh[i] = f16_round(frand(0, 1));
        for (int g = 0; g < GQ; g++) { M1[g] = M2[g] = -INFINITY; S1[g] = S2[g] = 0.0f; }
        memset(vk1, 0, sizeof vk1);
        memset(vk2, 0, sizeof vk2);
        for (int part = 0; part < 2; part++) {
            const int a0 = part ? 137 : 0, b0 = part ? NKEY : 137;
            a->vec_range(hd, hd, GQ, kc, stride, vc, stride, qh, a0, b0, 0.125f, M1, S1, vk1, kf, vf);
            p->vec_range(hd, hd, GQ, kc, stride, vc, stride, qh, a0, b0, 0.125f, M2, S2, vk2, kf, vf);
            assert_memory_equal(M1, M2, sizeof M1);
            assert_memory_equal(S1, S2, sizeof S1);
            assert_memory_equal(vk1, vk2, sizeof(float) * GQ * (size_t)hd);
        }
        assert_true(S1[0] > 1.0f);   /* the keys did accumulate */
    }
}

/* vec_range_q over q8_0 and q4_0 caches: every kernel level's dot and
 * widening with every attn_ops variant gives the scalar level's bits with
 * the portable variant, and the result is softmax(q.k) v of the
 * dequantized rows (q as quantized) within float rounding. */
static void test_vec_range_quant(void **st) {
    (void)st;
    enum { GQ = 2, NKV = 2, NK = 77 };
    static const int hds[] = {64, 128, 256};
    static const int types[] = {NJ_Q8_0, NJ_Q4_0};
    const attn_ops *vars[2] = {attn_ops_portable(), attn_ops_get()};
    const nj_kernels *ks = kernels_at(NJ_KL_SCALAR);
    for (size_t ti = 0; ti < NJ_ARRAY_LEN(types); ti++)
        for (size_t hi = 0; hi < NJ_ARRAY_LEN(hds); hi++) {
            const int type = types[ti], hd = hds[hi];
            const size_t head_b = quant_row_size(type, hd), row_b = NKV * head_b;
            const size_t qq_b = quant_row_size(NJ_Q8_0, hd);
            uint8_t *K = malloc(row_b * NK), *V = malloc(row_b * NK), *qq = malloc(qq_b * GQ);
            float *x = malloc(sizeof(float) * (size_t)hd * NKV), *q = malloc(sizeof(float) * (size_t)hd * GQ);
            float *kd = malloc(sizeof(float) * (size_t)hd * NK), *vd = malloc(sizeof(float) * (size_t)hd * NK);
            float *qd = malloc(sizeof(float) * (size_t)hd * GQ);
            assert_true(K && V && qq && x && q && kd && vd && qd);
            nj_from_float_fn store = type == NJ_Q8_0 ? ks->from_float[NJ_Q8_0] : quant_file_quantizer(type);
            for (int k = 0; k < NK; k++) {
                for (int i = 0; i < hd * NKV; i++) x[i] = frand(-2, 2) * (i % 17 == 0 ? 8.0f : 1.0f);
                store(x, K + (size_t)k * row_b, hd * NKV);
                for (int i = 0; i < hd * NKV; i++) x[i] = frand(-3, 3);
                store(x, V + (size_t)k * row_b, hd * NKV);
            }
            for (int i = 0; i < hd * GQ; i++) q[i] = frand(-1, 1);
            for (int g = 0; g < GQ; g++) ks->from_float[NJ_Q8_0](q + (size_t)g * hd, qq + (size_t)g * qq_b, hd);
            /* reference operands: kv head 1's rows and the quantized q, widened */
            for (int k = 0; k < NK; k++) {
                ks->to_float[type](K + (size_t)k * row_b + head_b, kd + (size_t)k * hd, hd);
                ks->to_float[type](V + (size_t)k * row_b + head_b, vd + (size_t)k * hd, hd);
            }
            for (int g = 0; g < GQ; g++) ks->to_float[NJ_Q8_0](qq + (size_t)g * qq_b, qd + (size_t)g * hd, hd);
            float base[GQ * (2 + 256)];
            int have_base = 0;
            for (int l = 0; l < NJ_KL_COUNT; l++) {
                const nj_kernels *kl = kernels_at(l);
                if (!kl) continue;
                for (int vi = 0; vi < 2; vi++) {
                    float M[GQ], S[GQ], acc[GQ * 256], vf[256];
                    for (int g = 0; g < GQ; g++) { M[g] = -INFINITY; S[g] = 0.0f; }
                    memset(acc, 0, sizeof acc);
                    /* two calls over [0, 30) and [30, NK): the running state carries over */
                    vars[vi]->vec_range_q(hd, hd, GQ, kl->vec_dot[type], kl->to_float[type], K + head_b, row_b,
                                          V + head_b, row_b, qq, qq_b, 0, 30, 0.125f, M, S, acc, vf);
                    vars[vi]->vec_range_q(hd, hd, GQ, kl->vec_dot[type], kl->to_float[type], K + head_b, row_b,
                                          V + head_b, row_b, qq, qq_b, 30, NK, 0.125f, M, S, acc, vf);
                    float got[GQ * (2 + 256)];
                    memcpy(got, M, sizeof M);
                    memcpy(got + GQ, S, sizeof S);
                    memcpy(got + 2 * GQ, acc, sizeof(float) * (size_t)GQ * hd);
                    const size_t nb = sizeof(float) * (size_t)GQ * (2 + hd);
                    if (!have_base) {
                        memcpy(base, got, nb);
                        have_base = 1;
                        /* against softmax(q.k * scale) v in double */
                        for (int g = 0; g < GQ; g++) {
                            double sc[NK], mx = -1e300, sum = 0;
                            for (int k = 0; k < NK; k++) {
                                double d = 0;
                                for (int i = 0; i < hd; i++) d += (double)qd[g * hd + i] * kd[(size_t)k * hd + i];
                                sc[k] = d * 0.125;
                                if (sc[k] > mx) mx = sc[k];
                            }
                            for (int k = 0; k < NK; k++) sum += exp(sc[k] - mx);
                            for (int i = 0; i < hd; i++) {
                                double o = 0;
                                for (int k = 0; k < NK; k++) o += exp(sc[k] - mx) / sum * vd[(size_t)k * hd + i];
                                const double ours = acc[g * hd + i] / S[g];
                                if (fabs(ours - o) > 1e-4 * (1 + fabs(o)))
                                    fail_msg("%s hd %d head %d dim %d: %g, reference %g", quant_type_name(type), hd, g,
                                             i, ours, o);
                            }
                        }
                    } else if (memcmp(got, base, nb)) {
                        fail_msg("%s hd %d: level %s with attn_ops %s differs from scalar + portable",
                                 quant_type_name(type), hd, kl->name, vars[vi]->name);
                    }
                }
            }
            free(K); free(V); free(qq); free(x); free(q); free(kd); free(vd); free(qd);
        }
}

static void test_f16_round(void **st) {
    (void)st;
    for (int i = 0; i < 200000; i++) {
        float x = frand(-1, 1) * ldexpf(1.0f, (int)frand(-30, 18));
        float want = nj_fp16_to_fp32(nj_fp32_to_fp16(x));
        float got = f16_round(x);
        if (memcmp(&want, &got, 4) && !(want == 0 && got == 0))
            fail_msg("f16_round(%a) = %a, want %a", x, got, want);
    }
    assert_true(isinf(f16_round(65520.0f)));
    assert_true(f16_round(65519.0f) == 65504.0f);
    assert_true(isnan(f16_round(NAN)));
}

/* ggml's approximate exp is within ~1.5 ulp of expf; softmax16 of x with
 * max 0 is exp(x). */
static void test_exp_accuracy(void **st) {
    (void)st;
    const attn_ops *p = attn_ops_portable();
    for (int it = 0; it < 2000; it++) {
        float x[16], y[16];
        for (int j = 0; j < 16; j++) x[j] = y[j] = frand(-80, 0);
        p->softmax16(x, 0.0f);
        for (int j = 0; j < 16; j++) {
            float e = expf(y[j]);
            assert_true(fabsf(x[j] - e) <= 4 * (nextafterf(e, INFINITY) - e));
        }
    }
    float big[16];
    for (int j = 0; j < 16; j++) big[j] = -200.0f;   /* saturates to 0 */
    assert_true(p->softmax16(big, 0.0f) == 0.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variants_agree),
        cmocka_unit_test(test_vec_range_quant),
        cmocka_unit_test(test_f16_round),
        cmocka_unit_test(test_exp_accuracy),
    };
    return cmocka_run_group_tests_name("attn_ops", tests, NULL, NULL);
}
