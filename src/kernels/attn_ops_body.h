/*
 * attn_ops_body — the loops of attn_ops, instantiated by attn_ops.c once
 * per variant.  Expects FMA(a, b, c) (one-rounding a*b + c), SFX(name) (the
 * variant's suffix) and TGT (a function attribute or nothing).  No include
 * guard on purpose.
 */

/* ggml's vectorised expf (ggml_v_expf, after ARM's optimized-routines):
 * 2^n * p(b) with n = round(x / ln2) and a degree-5 polynomial. */
TGT static inline float SFX(exp_ggml)(float x) {
    const float r = 0x1.8p23f;
    const float z = FMA(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = FMA(-n, 0x1.7f7d1cp-20f, FMA(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = FMA(FMA(FMA(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                            FMA(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                        u, FMA(0x1.ffffecp-1f, b, 1.0f));
    /* j * 2^n as two exact power-of-two scalings (each factor is a normal
     * float for |n| <= 192), so the one rounding happens in the last
     * multiply, subnormal results included, as _mm512_scalef_ps rounds;
     * |n| > 192 saturates to 0 or inf as ggml's blend does.  Branch-free
     * so the callers' loops vectorize. */
    const float nc = fminf(fmaxf(n, -192.0f), 192.0f);
    const int ni = (int)nc, h1 = ni / 2, h2 = ni - h1;
    const uint32_t b1 = (uint32_t)(h1 + 127) << 23, b2 = (uint32_t)(h2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    const float res = (j * s1) * s2;
    const float sat = n <= 0.0f ? 0.0f : INFINITY;
    return fabsf(n) > 192.0f ? sat : res;
}

#ifdef ATTN_F16C
/* exp_ggml on 8 lanes, the same operations in the same order (the
 * compiler does not vectorize the scalar version's int/float punning). */
TGT static inline __m256 SFX(exp8)(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 nn = _mm256_xor_ps(n, _mm256_set1_ps(-0.0f));
    const __m256 b = _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                     _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256 nc = _mm256_min_ps(_mm256_max_ps(n, _mm256_set1_ps(-192.0f)), _mm256_set1_ps(192.0f));
    const __m256i ni = _mm256_cvttps_epi32(nc);
    /* h1 = ni / 2 rounded toward zero, as C's division */
    const __m256i h1 = _mm256_srai_epi32(_mm256_sub_epi32(ni, _mm256_srai_epi32(ni, 31)), 1);
    const __m256i h2 = _mm256_sub_epi32(ni, h1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h2, bias), 23));
    const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, s1), s2);
    const __m256 sat = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ),
                                     _mm256_set1_ps(INFINITY));
    const __m256 absn = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    return _mm256_blendv_ps(res, sat, _mm256_cmp_ps(absn, _mm256_set1_ps(192.0f), _CMP_GT_OQ));
}
#endif

TGT static void SFX(kq_tile)(int hk, int nq, const float *const *q, const float *restrict kt,
                             float *restrict kq) {
    int r = 0;
#if defined(ATTN_AVX512)
    /* 4 rows x 64 keys: 16 independent chains in zmm registers, each K
     * vector loaded once for the 4 rows */
    for (; r + 4 <= nq; r += 4) {
        __m512 a[4][4];
        for (int i = 0; i < 4; i++)
            for (int c = 0; c < 4; c++) a[i][c] = _mm512_setzero_ps();
        for (int d = 0; d < hk; d++) {
            const float *k = kt + (size_t)d * ATTN_TILE;
            const __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16);
            const __m512 k2 = _mm512_loadu_ps(k + 32), k3 = _mm512_loadu_ps(k + 48);
            for (int i = 0; i < 4; i++) {
                const __m512 qd = _mm512_set1_ps(q[r + i][d]);
                a[i][0] = _mm512_fmadd_ps(qd, k0, a[i][0]);
                a[i][1] = _mm512_fmadd_ps(qd, k1, a[i][1]);
                a[i][2] = _mm512_fmadd_ps(qd, k2, a[i][2]);
                a[i][3] = _mm512_fmadd_ps(qd, k3, a[i][3]);
            }
        }
        for (int i = 0; i < 4; i++)
            for (int c = 0; c < 4; c++) _mm512_storeu_ps(kq + (size_t)(r + i) * ATTN_TILE + 16 * c, a[i][c]);
    }
#endif
#if defined(ATTN_F16C)
    /* one row x 64 keys: 8 independent chains in ymm registers */
    for (; r < nq; r++) {
        __m256 a[8];
        for (int c = 0; c < 8; c++) a[c] = _mm256_setzero_ps();
        const float *qr = q[r];
        for (int d = 0; d < hk; d++) {
            const float *k = kt + (size_t)d * ATTN_TILE;
            const __m256 qd = _mm256_set1_ps(qr[d]);
            for (int c = 0; c < 8; c++) a[c] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 8 * c), a[c]);
        }
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(kq + (size_t)r * ATTN_TILE + 8 * c, a[c]);
    }
#endif
    for (; r < nq; r++) {
        float acc[ATTN_TILE];
        for (int j = 0; j < ATTN_TILE; j++) acc[j] = 0.0f;
        for (int d = 0; d < hk; d++) {
            const float qd = q[r][d];
            const float *k = kt + (size_t)d * ATTN_TILE;
            for (int j = 0; j < ATTN_TILE; j++) acc[j] = FMA(qd, k[j], acc[j]);
        }
        for (int j = 0; j < ATTN_TILE; j++) kq[(size_t)r * ATTN_TILE + j] = acc[j];
    }
}

TGT static void SFX(pv_tile)(int hv, int nk, const float *restrict p, const float *restrict v,
                             float *restrict acc) {
    int d0 = 0;
#if defined(ATTN_AVX512) || defined(ATTN_F16C)
    /* the accumulator in registers, 128 columns at a time (16 chains) */
#if defined(ATTN_AVX512)
    enum { W = 16 };
#define VT __m512
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VSET1 _mm512_set1_ps
#define VFMA _mm512_fmadd_ps
#else
    enum { W = 8 };
#define VT __m256
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#endif
    enum { C = (W == 16 ? 8 : 16) };   /* vectors per column block */
    for (; d0 + C * W <= hv; d0 += C * W) {
        VT a[C];
        for (int c = 0; c < C; c++) a[c] = VLOAD(acc + d0 + W * c);
        for (int k = 0; k < nk; k++) {
            const float w = p[k];
            if (w == 0.0f) continue;   /* fma(0, v, acc) == acc */
            const VT wv = VSET1(w);
            const float *vr = v + (size_t)k * hv + d0;
            for (int c = 0; c < C; c++) a[c] = VFMA(wv, VLOAD(vr + W * c), a[c]);
        }
        for (int c = 0; c < C; c++) VSTORE(acc + d0 + W * c, a[c]);
    }
#undef VT
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VFMA
#endif
    for (int k = 0; k < nk; k++) {
        const float w = p[k];
        if (w == 0.0f) continue;   /* fma(0, v, acc) == acc */
        const float *vr = v + (size_t)k * hv;
        int d = d0;
        for (; d + 16 <= hv; d += 16)
            for (int e = 0; e < 16; e++) acc[d + e] = FMA(w, vr[d + e], acc[d + e]);
        for (; d < hv; d++) acc[d] = FMA(w, vr[d], acc[d]);
    }
}

TGT static float SFX(softmax16)(float *x, float max) {
#ifdef ATTN_F16C
    const __m256 m = _mm256_set1_ps(max);
    _mm256_storeu_ps(x, SFX(exp8)(_mm256_sub_ps(_mm256_loadu_ps(x), m)));
    _mm256_storeu_ps(x + 8, SFX(exp8)(_mm256_sub_ps(_mm256_loadu_ps(x + 8), m)));
#else
    for (int j = 0; j < 16; j++) x[j] = SFX(exp_ggml)(x[j] - max);
#endif
    return hsum16(x);
}

TGT static void SFX(v_mad_f16)(int hv, const float *restrict v, float s, float *restrict acc) {
    int d = 0;
#ifdef ATTN_F16C
    /* the f16 round trip in hardware (round to nearest even, as f16_round) */
    const __m256 vs = _mm256_set1_ps(s);
    for (; d + 8 <= hv; d += 8) {
        const __m256 r = _mm256_fmadd_ps(_mm256_loadu_ps(v + d), vs, _mm256_loadu_ps(acc + d));
        _mm256_storeu_ps(acc + d, _mm256_cvtph_ps(_mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT)));
    }
#else
    for (; d + 16 <= hv; d += 16)
        for (int e = 0; e < 16; e++) acc[d + e] = f16_round(FMA(v[d + e], s, acc[d + e]));
#endif
    for (; d < hv; d++) acc[d] = f16_round(FMA(v[d], s, acc[d]));
}

TGT static void SFX(widen_f16)(int n, const uint16_t *restrict h, float *restrict f) {
    int i = 0;
#ifdef ATTN_F16C
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
#endif
    for (; i < n; i++) f[i] = attn_f16_tab[h[i]];
}

TGT static void SFX(geglu)(int n, float *restrict g, const float *restrict u,
                           const float *restrict tab) {
    int i = 0;
#ifdef ATTN_F16C
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256i h = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
        __m256 a = _mm256_i32gather_ps(tab, h, 4);
        a = _mm256_blendv_ps(a, x, _mm256_cmp_ps(x, hi, _CMP_GE_OQ));
        a = _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LE_OQ), a);
        _mm256_storeu_ps(g + i, _mm256_mul_ps(a, _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n; i++) {
        const float x = g[i];
        const float a = x <= -10.0f ? 0.0f : x >= 10.0f ? x : tab[nj_fp32_to_fp16(x)];
        g[i] = a * u[i];
    }
}

/* ggml's AVX-512 f16 dot product order on f16 values held as floats (so
 * every product is exact and fused or not gives the same sum): 4
 * accumulators of 16 lanes over steps of 64, folded pairwise, reduced
 * across lanes, the tail in double. */
TGT static float SFX(dot_f16)(int n, const float *restrict x, const float *restrict y) {
    float acc[4][16];
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 16; l++) acc[j][l] = 0.0f;
    const int np = n & ~63;
    for (int i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++)
                acc[j][l] = FMA(x[i + 16 * j + l], y[i + 16 * j + l], acc[j][l]);
    for (int l = 0; l < 16; l++) {
        acc[0][l] += acc[2][l];
        acc[1][l] += acc[3][l];
        acc[0][l] += acc[1][l];
    }
    double sum = hsum16(acc[0]);
    for (int i = np; i < n; i++) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

TGT static void SFX(swiglu)(int n, float *restrict g, const float *restrict u) {
    const int nv = n & ~15;
#ifdef ATTN_F16C
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < nv; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = SFX(exp8)(_mm256_sub_ps(_mm256_setzero_ps(), x));   /* 0.0f - g */
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)),
                                              _mm256_loadu_ps(u + i)));
    }
#else
    for (int i = 0; i < nv; i += 16)
        for (int e = 0; e < 16; e++)
            g[i + e] = g[i + e] / (1.0f + SFX(exp_ggml)(0.0f - g[i + e])) * u[i + e];
#endif
    for (int i = nv; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

#if defined(ATTN_AVX512) || defined(ATTN_F16C)
/* One head's online-softmax chain over a block's scores sc[0..nk), in key
 * order, as the one-key loop (SFX(vec_range) below) runs it: the running
 * max *M and sum *S, and per key whether the V accumulator is rescaled
 * first (resc, by ms) and the weight vs of its V row. */
TGT static inline void SFX(vec_chain)(int nk, const float *sc, float *M, float *S, float *ms,
                                      float *vs, int *resc) {
    float Mg = *M, Sg = *S;
    for (int k = 0; k < nk; k++) {
        ms[k] = 1.0f;
        vs[k] = 1.0f;
        resc[k] = sc[k] > Mg;
        if (resc[k]) {
            ms[k] = expf(Mg - sc[k]);
            Mg = sc[k];
        } else {
            vs[k] = expf(sc[k] - Mg);
        }
        Sg = fma_d(Sg, ms[k], vs[k]);
    }
    *M = Mg;
    *S = Sg;
}

/* The last steps of hsum16's tree on its four quarter sums r:
 * (r0 + r2) + (r1 + r3). */
TGT static inline float SFX(pairs4)(__m128 r) {
    const __m128 p = _mm_add_ps(r, _mm_movehl_ps(r, r));
    return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
}
#endif

#if defined(ATTN_AVX512)
#define VEC_KB 16   /* keys per block of the blocked vec path */
/* dot_f16's order for n % 64 == 0 straight from the f16 K row: four
 * 16-lane fma chains over steps of 64, folded (0+2, 1+3, then the two),
 * then hsum16's tree (halves, quarters, pairs). */
TGT static inline float SFX(dot_k16)(int n, const uint16_t *k, const float *q) {
    __m512 c[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int i = 0; i < n; i += 64)
        for (int j = 0; j < 4; j++)
            c[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + i + 16 * j))),
                                   _mm512_loadu_ps(q + i + 16 * j), c[j]);
    const __m512 f = _mm512_add_ps(_mm512_add_ps(c[0], c[2]), _mm512_add_ps(c[1], c[3]));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(f), _mm512_extractf32x8_ps(f, 1));
    const __m128 r = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    return SFX(pairs4)(r);
}

/* acc (n16 x 16 lanes, f16 values as floats) = f16(v * s + acc) or, with
 * resc, first f16(acc * ms): one key of the V chain, in registers. */
#define VEC_F16(x) _mm512_cvtph_ps(_mm512_cvtps_ph((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))

/* The vec path for hk % 64 == 0, hv % 16 == 0, hv <= 256, in blocks of
 * VEC_KB keys: first every score of the block (independent dot products),
 * then per head the softmax chain (scalar, libm expf, in key order), then
 * per head the V accumulator chain over the block's keys held in zmm
 * registers.  Each head's operations and their order are the one-key
 * loop's (SFX(vec_range) below); only independent work is regrouped. */
TGT static void SFX(vec_range_blk)(int hk, int hv, int gq, const uint16_t *K, size_t k_stride,
                                   const uint16_t *V, size_t v_stride, const float *qh, int a,
                                   int b, float scale, float *M, float *S, float *vkq) {
    float sc[VEC_KB], ms[VEC_KB], vs[VEC_KB];
    int resc[VEC_KB];
    const int n16 = hv / 16;
    for (int k0 = a; k0 < b; k0 += VEC_KB) {
        const int nk = b - k0 < VEC_KB ? b - k0 : VEC_KB;
        for (int g = 0; g < gq; g++) {
            const float *q = qh + (size_t)g * hk;
            for (int k = 0; k < nk; k++)
                sc[k] = SFX(dot_k16)(hk, K + (size_t)(k0 + k) * k_stride, q) * scale;
            SFX(vec_chain)(nk, sc, &M[g], &S[g], ms, vs, resc);
            float *accp = vkq + (size_t)g * hv;
            __m512 acc[16];
            for (int j = 0; j < n16; j++) acc[j] = _mm512_loadu_ps(accp + 16 * j);
            for (int k = 0; k < nk; k++) {
                const uint16_t *vr = V + (size_t)(k0 + k) * v_stride;
                if (resc[k]) {
                    const __m512 m = _mm512_set1_ps(ms[k]);
                    for (int j = 0; j < n16; j++) acc[j] = VEC_F16(_mm512_mul_ps(acc[j], m));
                }
                const __m512 w = _mm512_set1_ps(vs[k]);
                for (int j = 0; j < n16; j++)
                    acc[j] = VEC_F16(_mm512_fmadd_ps(
                        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vr + 16 * j))), w, acc[j]));
            }
            for (int j = 0; j < n16; j++) _mm512_storeu_ps(accp + 16 * j, acc[j]);
        }
    }
}
#undef VEC_F16
#elif defined(ATTN_F16C)
#define VEC_KB 16
/* AVX2 twins of the above: ggml's 16-lane dot order in pairs of ymm; the
 * V chain in chunks of 64 dimensions (8 ymm), each chunk over all the
 * block's keys (dimensions are independent chains). */
TGT static inline float SFX(dot_k16)(int n, const uint16_t *k, const float *q) {
    __m256 c[8];
    for (int j = 0; j < 8; j++) c[j] = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 64)
        for (int j = 0; j < 8; j++)
            c[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i + 8 * j))),
                                   _mm256_loadu_ps(q + i + 8 * j), c[j]);
    /* 16-lane accumulator j is (c[2j], c[2j+1]) */
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(c[0], c[4]), _mm256_add_ps(c[2], c[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(c[1], c[5]), _mm256_add_ps(c[3], c[7]));
    const __m256 h = _mm256_add_ps(lo, hi);
    const __m128 r = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    return SFX(pairs4)(r);
}

#define VEC_F16(x) _mm256_cvtph_ps(_mm256_cvtps_ph((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
TGT static void SFX(vec_range_blk)(int hk, int hv, int gq, const uint16_t *K, size_t k_stride,
                                   const uint16_t *V, size_t v_stride, const float *qh, int a,
                                   int b, float scale, float *M, float *S, float *vkq) {
    float sc[VEC_KB], ms[VEC_KB], vs[VEC_KB];
    int resc[VEC_KB];
    for (int k0 = a; k0 < b; k0 += VEC_KB) {
        const int nk = b - k0 < VEC_KB ? b - k0 : VEC_KB;
        for (int g = 0; g < gq; g++) {
            const float *q = qh + (size_t)g * hk;
            for (int k = 0; k < nk; k++)
                sc[k] = SFX(dot_k16)(hk, K + (size_t)(k0 + k) * k_stride, q) * scale;
            SFX(vec_chain)(nk, sc, &M[g], &S[g], ms, vs, resc);
            for (int d0 = 0; d0 < hv; d0 += 64) {
                const int n8 = hv - d0 < 64 ? (hv - d0) / 8 : 8;
                float *accp = vkq + (size_t)g * hv + d0;
                __m256 acc[8];
                for (int j = 0; j < n8; j++) acc[j] = _mm256_loadu_ps(accp + 8 * j);
                for (int k = 0; k < nk; k++) {
                    const uint16_t *vr = V + (size_t)(k0 + k) * v_stride + d0;
                    if (resc[k]) {
                        const __m256 m = _mm256_set1_ps(ms[k]);
                        for (int j = 0; j < n8; j++) acc[j] = VEC_F16(_mm256_mul_ps(acc[j], m));
                    }
                    const __m256 w = _mm256_set1_ps(vs[k]);
                    for (int j = 0; j < n8; j++)
                        acc[j] = VEC_F16(_mm256_fmadd_ps(
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vr + 8 * j))), w, acc[j]));
                }
                for (int j = 0; j < n8; j++) _mm256_storeu_ps(accp + 8 * j, acc[j]);
            }
        }
    }
}
#undef VEC_F16
#endif

/* The vec (one_chunk) path over keys [a, b) for gq query heads sharing a
 * kv head: per key, the K and V rows widened once; per head the f16 dot
 * product, ggml's online softmax (libm expf) and the f16 V accumulator.
 * Here rather than in session.c so the per-key helpers inline into one
 * loop instead of five indirect calls per key and head. */
TGT static void SFX(vec_range)(int hk, int hv, int gq, const uint16_t *K, size_t k_stride,
                               const uint16_t *V, size_t v_stride, const float *qh, int a, int b,
                               float scale, float *M, float *S, float *vkq, float *kf, float *vf) {
#if defined(ATTN_AVX512)
    if (hk % 64 == 0 && hv % 16 == 0 && hv <= 256) {
        SFX(vec_range_blk)(hk, hv, gq, K, k_stride, V, v_stride, qh, a, b, scale, M, S, vkq);
        return;
    }
#elif defined(ATTN_F16C)
    if (hk % 64 == 0 && hv % 8 == 0) {
        SFX(vec_range_blk)(hk, hv, gq, K, k_stride, V, v_stride, qh, a, b, scale, M, S, vkq);
        return;
    }
#endif
    for (int ic = a; ic < b; ic++) {
        SFX(widen_f16)(hk, K + (size_t)ic * k_stride, kf);
        SFX(widen_f16)(hv, V + (size_t)ic * v_stride, vf);
        for (int g = 0; g < gq; g++) {
            float *acc = vkq + (size_t)g * hv;
            const float sc = SFX(dot_f16)(hk, kf, qh + (size_t)g * hk) * scale;
            const float Mold = M[g];
            float ms = 1.0f, vs = 1.0f;
            if (sc > Mold) {
                M[g] = sc;
                ms = expf(Mold - sc);
                for (int d = 0; d < hv; d++) acc[d] = f16_round(acc[d] * ms);
            } else {
                vs = expf(sc - Mold);
            }
            SFX(v_mad_f16)(hv, vf, vs, acc);
            S[g] = fma_d(S[g], ms, vs);
        }
    }
}

/* The vec path over a quantized cache (attn_ops.vec_range_q): the K dot
 * products and the V widening are the kernel level's own functions
 * (passed in, so every level's are exercised); the softmax and the f32
 * accumulator are here.  acc *= ms is a plain multiply and acc += v * vs
 * one fused multiply-add per element, as ggml_vec_scale_f32 and
 * ggml_vec_mad_f32; both are element-wise, so any vector width gives the
 * same bits. */
TGT static void SFX(vec_range_q)(int hk, int hv, int gq, nj_vec_dot_fn kdot, nj_to_float_fn vdeq,
                                 const uint8_t *K, size_t k_stride, const uint8_t *V,
                                 size_t v_stride, const void *qq, size_t qq_stride, int a, int b,
                                 float scale, float *M, float *S, float *vkq, float *vf) {
    for (int ic = a; ic < b; ic++) {
        const uint8_t *kr = K + (size_t)ic * k_stride;
        vdeq(V + (size_t)ic * v_stride, vf, hv);
        for (int g = 0; g < gq; g++) {
            float *restrict acc = vkq + (size_t)g * hv;
            float sc;
            kdot(hk, &sc, kr, (const uint8_t *)qq + (size_t)g * qq_stride);
            sc *= scale;
            const float Mold = M[g];
            float ms = 1.0f, vs = 1.0f;
            if (sc > Mold) {
                M[g] = sc;
                ms = expf(Mold - sc);
                for (int d = 0; d < hv; d++) acc[d] *= ms;
            } else {
                vs = expf(sc - Mold);
            }
            for (int d = 0; d < hv; d++) acc[d] = FMA(vf[d], vs, acc[d]);
            S[g] = fma_d(S[g], ms, vs);
        }
    }
}
