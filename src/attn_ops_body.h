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

TGT static void SFX(kq_tile)(int hk, const float *restrict q, const float *restrict kt,
                             float *restrict kq) {
    float acc[ATTN_TILE];
    for (int j = 0; j < ATTN_TILE; j++) acc[j] = 0.0f;
    for (int d = 0; d < hk; d++) {
        const float qd = q[d];
        const float *k = kt + (size_t)d * ATTN_TILE;
        for (int j = 0; j < ATTN_TILE; j++) acc[j] = FMA(qd, k[j], acc[j]);
    }
    for (int j = 0; j < ATTN_TILE; j++) kq[j] = acc[j];
}

TGT static void SFX(pv_tile)(int hv, int nk, const float *restrict p, const float *restrict v,
                             float *restrict acc) {
    for (int k = 0; k < nk; k++) {
        const float w = p[k];
        if (w == 0.0f) continue;   /* fma(0, v, acc) == acc */
        const float *vr = v + (size_t)k * hv;
        int d = 0;
        for (; d + 16 <= hv; d += 16)
            for (int e = 0; e < 16; e++) acc[d + e] = FMA(w, vr[d + e], acc[d + e]);
        for (; d < hv; d++) acc[d] = FMA(w, vr[d], acc[d]);
    }
}

TGT static float SFX(softmax16)(float *x, float max) {
    for (int j = 0; j < 16; j++) x[j] = SFX(exp_ggml)(x[j] - max);
    return hsum16(x);
}

TGT static void SFX(v_mad_f16)(int hv, const float *restrict v, float s, float *restrict acc) {
    int d = 0;
    for (; d + 16 <= hv; d += 16)
        for (int e = 0; e < 16; e++) acc[d + e] = f16_round(FMA(v[d + e], s, acc[d + e]));
    for (; d < hv; d++) acc[d] = f16_round(FMA(v[d], s, acc[d]));
}

TGT static void SFX(swiglu)(int n, float *restrict g, const float *restrict u) {
    const int nv = n & ~15;
    for (int i = 0; i < nv; i += 16)
        for (int e = 0; e < 16; e++)
            g[i + e] = g[i + e] / (1.0f + SFX(exp_ggml)(0.0f - g[i + e])) * u[i + e];
    for (int i = nv; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
