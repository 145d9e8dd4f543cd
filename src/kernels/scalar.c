/*
 * scalar — the portable kernel level, and the activation quantizers every
 * SIMD quantizer must reproduce byte for byte.
 *
 * The scalar level's dot products are quant.c's reference ones.  Its
 * activation quantizers are not: quant.c's Q8_0/Q8_1 quantizers follow the
 * file-format reference (multiply by 1/d, round half away from zero), while
 * llama.cpp's CPU backend quantizes *activations* differently per
 * architecture, and the activations decide the tokens:
 *
 *   x86 (AVX path)   d = amax/127,  q = rne(x * (127/amax))
 *   ARM (NEON path)  d = amax/127,  q = rne(x * (1/d))
 *   reference        d = amax/127,  q = round_half_away(x * (1/d))
 *
 * (rne = round to nearest, ties to even).  127/amax and 1/(amax/127) differ
 * in the last bit for some amax, and the rounding rule differs on exact
 * ties, so the three can disagree by one step on an element.  d is stored
 * as fp16 of the f32 value in all three; Q8_1's s = fp16(d * sum(q)).
 *
 * Q8_K has one algorithm everywhere: the first element with the largest
 * |x| (its sign included) sets iscale = -127/max, q = min(127, rne(iscale
 * * x)), d = 1/iscale, bsums = sums of 16 consecutive q.  An all-zero block
 * gets d = 0, q = 0 and bsums = 0.
 */
#include "kernels.h"

#include <math.h>
#include <stdbool.h>

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves
 * the integer in the low mantissa bits (default rounding mode). */
static inline int rne_int(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* cvtps2dq + packs semantics: saturate to int8, NaN -> -128. */
static inline int8_t rne_i8(float v) {
    if (!(v > -128.5f)) return -128;
    if (v >= 127.5f) return 127;
    return (int8_t)rne_int(v);
}

static float block_amax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

void kern_quantize_q8_0_x86(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = block_amax(x, QK8_0);
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = kern_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = rne_i8(x[j] * id);
    }
}

void kern_quantize_q8_1_x86(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        float amax = block_amax(x, QK8_1);
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        y[i].d = kern_fp32_to_fp16(d);
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = rne_i8(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = kern_fp32_to_fp16(d * (float)sum);
    }
}

void kern_quantize_q8_0_arm(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = block_amax(x, QK8_0);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)rne_int(x[j] * id);
    }
}

void kern_quantize_q8_1_arm(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        float amax = block_amax(x, QK8_1);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        y[i].d = kern_fp32_to_fp16(d);
        for (int j = 0; j < QK8_1; j++) {
            int q = rne_int(x[j] * id);
            y[i].qs[j] = (int8_t)q;
            sum += q;
        }
        y[i].s = kern_fp32_to_fp16(d * (float)sum);
    }
}

void kern_quantize_q8_K(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            float a = fabsf(x[j]);
            if (a > amax) { amax = a; max = x[j]; }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int q = rne_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(q < 127 ? q : 127);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[i].qs[g * 16 + j];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- canonical dot products ---------------------------------------------
 *
 * Every level computes, per (weight row, activation row), the same float
 * operations in the same order, so all levels and all tile shapes give
 * bit-identical results (see kernels.h).  The integer part of each block
 * (S, and M for the formats with mins) is exact, however a SIMD kernel
 * arranges it; the float part is fixed here:
 *
 *   32-element formats (llama.cpp's x86 order): eight lane chains, lane m
 *   of a block being its elements 4m..4m+3 in logical element order:
 *       L_m  = exact integer dot product of lane m
 *       a[m] = fma(dw*dx, L_m, a[m])           for m = 0..7, blocks in order
 *       (Q4_1/Q5_1 also: c = fma(m, s_x, c), a separate chain)
 *       y = hsum8(a)  (+ c),   hsum8(a) = ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7))
 *   K-quants: llama.cpp's x86 orders (its AVX2 vec_dots and, for Q4_K,
 *       its repacked q4_K_8x8 GEMV/GEMM), so greedy output matches it:
 *     Q6_K, Q3_K, Q5_K: eight lanes.  Lane m of a 32-element chunk is its
 *       elements 4m..4m+3; per super-block, L_m = sum over the 8 chunks of
 *       (the chunk's scale for lane m) * (lane m's integer dot), Q6_K minus
 *       32 * (sc[2m] * bsums[2m] + sc[2m+1] * bsums[2m+1]) (q taken 0..63);
 *       then acc_m = fma(dx*dw, L_m, acc_m), and at the end
 *       y = hsum8(acc) = ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7)).
 *       Q5_K adds a separate mins chain S = fma(-dx*dmin, M_i, S) and
 *       y = hsum8(acc) + S.
 *     Q4_K, plain layout (vec_dot): eight lanes as Q5_K; the mins in four
 *       chains am_p = fma(-dx*dmin, N_p, am_p), one per 64-element pair p,
 *       y = hsum8(acc) + ((am_0 + am_2) + (am_1 + am_3)).
 *     Q4_K, repacked layout: two chains, y = A - B, over the four pairs p
 *       of a super-block with exact I_p (scaled sums) and N_p (mins . bsums):
 *         single-token order  A = fma(I_0+..+I_3, dw*dx, A),   (vec_dot_rs)
 *                             B = fma(N_0+..+N_3, dmin*dx, B) per super-block;
 *         batched order       A = fma(I_p, dw*dx, A),          (vec_dot_rb)
 *                             B = fma(N_p, dmin*dx, B) per pair.
 *       (kernels.h, "Repacked orders", says which products take which.)
 *     Q2_K, plain layout (vec_dot): eight lanes as Q3_K (scale of lane m
 *       of chunk c: sc[2c + (m >= 4)]), each super-block first doing
 *       acc_m = fma(-dx*dmin, mn[2m]*bsums[2m] + mn[2m+1]*bsums[2m+1], acc_m)
 *       then acc_m = fma(dx*dw, L_m, acc_m);  y = hsum8(acc).
 *     Q2_K, repacked layout (q2_K_8x8, llama.cpp on AVX-512 machines): as
 *       Q4_K's with the two 128-element halves h in place of the pairs:
 *         single-token  A = fma(I_0+I_1, dw*dx, A), B = fma(N_0+N_1, dmin*dx, B)
 *         batched       A = fma(I_h, dw*dx, A),     B = fma(N_h, dmin*dx, B)
 *     Q4_0, repacked layout (q4_0_8x8, any batch): one chain over blocks,
 *       acc = fma(I_i, dw*dx, acc), I_i the block's exact integer sum.
 *   F32/F16: sixteen lanes, element k feeding lane k % 16 for the
 *       whole 16-element steps, reduced as
 *       b[k] = a[k] + a[k+8];  c[k] = b[k] + b[k+4];  y = (c0 + c2) + (c1 + c3)
 *       (reduce16) then the tail elements fma'ed into y in order.
 *   BF16 (activations rounded to bf16, RNE, NaN quieted, subnormals kept,
 *       as ggml's from_float): llama.cpp's AVX512_BF16 kernels, built on
 *       vdpbf16ps.  One vdpbf16ps step over a 32-element chunk updates 16
 *       lanes, lane j taking the pair (2j, 2j+1):
 *           c_j = ftz(fma(w[2j+1], x[2j+1], c_j));  c_j = ftz(fma(w[2j], x[2j], c_j))
 *       (odd product first; a bf16 product is exact in f32, so each add is
 *       an fma; inputs DAZ: a subnormal bf16 reads as a zero of its sign;
 *       ftz: a result subnormal after rounding becomes a zero of its sign
 *       -- Intel's text, and checked against the instruction on 32M random
 *       and edge lanes, as tests/test_kernels.c keeps doing).  Two orders:
 *         single-token (ggml_vec_dot_bf16, vec_dot and vec_dot_rs): c1 over
 *           the first and c2 over the second 32 elements of every full 64;
 *           y = f32(((0 + (double)reduce16(c1)) + (double)reduce16(c2))
 *                   + sum of (double)(w_i * x_i) over the tail i >= 64*(n/64)),
 *           the tail products plain f32 (no DAZ), the sums in double;
 *         batched (llamafile tinyBLAS, vec_dot_rb): one c over every
 *           32-element chunk, y = reduce16(c) (llama.cpp only takes it when
 *           n % 32 == 0; a tail would be fma'ed into y in order).
 *       kernels.h ("Repacked orders", kern_two_orders) says which products
 *       take which.  The reductions and tails are the shared finishers
 *       kern_bf16_finish_*, the steps kern_bf16_dp32 (or the instruction).
 *
 * S_i and M_i are converted to float with round-to-nearest (exact below
 * 2^24, which real data never leaves).  The Q6_K -32 offset and the
 * K-quant mins use the activation's bsums, as llama.cpp does; since the
 * lane split matters for Q6_K/Q3_K/Q5_K, a SIMD kernel must keep the eight
 * lane sums apart (only the sums inside one lane may be rearranged).
 */
static inline float h2f(nj_half h) { return kern_fp16_to_fp32(h); }

/* ggml's hsum_float_8: high half + low half, then the two 64-bit halves,
 * then the two remaining lanes. */
static inline float hsum8(const float a[8]) {
    const float t0 = a[0] + a[4], t1 = a[1] + a[5], t2 = a[2] + a[6], t3 = a[3] + a[7];
    return (t0 + t2) + (t1 + t3);
}

/* One 32-element block into the eight lane chains: a[m] = fma(d, L_m, a[m])
 * with L_m = sum_{j=4m}^{4m+3} w[j] * x[j]. */
static inline void lanes8_fma(float a[8], float d, const int8_t *w, const int8_t *x) {
    for (int m = 0; m < 8; m++) {
        int l = 0;
        for (int j = 4 * m; j < 4 * m + 4; j++) l += w[j] * x[j];
        a[m] = fmaf(d, (float)l, a[m]);
    }
}

/* 32 nibbles as in Q4_0/Q4_1: element j < 16 low nibble of q[j], else high
 * nibble of q[j-16]; plus bit j of qh << 4 when qh != NULL. */
static void unpack32(const uint8_t *q, const uint8_t *qh, int offset, int8_t out[32]) {
    uint32_t h = 0;
    if (qh) memcpy(&h, qh, 4);
    for (int j = 0; j < 16; j++) {
        out[j] = (int8_t)((q[j] & 15) + (int)(((h >> j) & 1) << 4) - offset);
        out[j + 16] = (int8_t)((q[j] >> 4) + (int)(((h >> (j + 16)) & 1) << 4) - offset);
    }
}

static void dot_q8_0(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q8_0 *w = vw, *x = vx;
    float a[8] = {0};
    for (int i = 0; i < n / 32; i++) lanes8_fma(a, h2f(w[i].d) * h2f(x[i].d), w[i].qs, x[i].qs);
    *s = hsum8(a);
}

static void dot_q4_0(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q4_0 *w = vw;
    const block_q8_0 *x = vx;
    float a[8] = {0};
    int8_t q[32];
    for (int i = 0; i < n / 32; i++) {
        unpack32(w[i].qs, NULL, 8, q);
        lanes8_fma(a, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    *s = hsum8(a);
}

/* repacked layout (q4_0_8x8), single-token and batched alike: one chain
 * over blocks on the block's exact integer sum, no lanes */
static void dot_q4_0_r(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q4_0 *w = vw;
    const block_q8_0 *x = vx;
    float acc = 0.0f;
    int8_t q[32];
    for (int i = 0; i < n / 32; i++) {
        unpack32(w[i].qs, NULL, 8, q);
        int I = 0;
        for (int j = 0; j < 32; j++) I += q[j] * x[i].qs[j];
        acc = fmaf((float)I, h2f(w[i].d) * h2f(x[i].d), acc);
    }
    *s = acc;
}

static void dot_q5_0(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q5_0 *w = vw;
    const block_q8_0 *x = vx;
    float a[8] = {0};
    int8_t q[32];
    for (int i = 0; i < n / 32; i++) {
        unpack32(w[i].qs, w[i].qh, 16, q);
        lanes8_fma(a, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
    }
    *s = hsum8(a);
}

static void dot_q4_1(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q4_1 *w = vw;
    const block_q8_1 *x = vx;
    float a[8] = {0}, c = 0.0f;
    int8_t q[32];
    for (int i = 0; i < n / 32; i++) {
        unpack32(w[i].qs, NULL, 0, q);
        lanes8_fma(a, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
        c = fmaf(h2f(w[i].m), h2f(x[i].s), c);
    }
    *s = hsum8(a) + c;
}

static void dot_q5_1(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q5_1 *w = vw;
    const block_q8_1 *x = vx;
    float a[8] = {0}, c = 0.0f;
    int8_t q[32];
    for (int i = 0; i < n / 32; i++) {
        unpack32(w[i].qs, w[i].qh, 0, q);
        lanes8_fma(a, h2f(w[i].d) * h2f(x[i].d), q, x[i].qs);
        c = fmaf(h2f(w[i].m), h2f(x[i].s), c);
    }
    *s = hsum8(a) + c;
}

/* sum_k mn[k] * (bsums[2k] + bsums[2k+1]) */
static int k4_mins(const uint8_t mn[8], const int16_t *bsums) {
    int m = 0;
    for (int k = 0; k < 8; k++) m += mn[k] * (bsums[2 * k] + bsums[2 * k + 1]);
    return m;
}

/* Q4_K: per pair p of 32-element chunks (elements 64p .. 64p+63) the
 * scaled sum I_p and the mins term N_p (see the top of this section). */
static void q4_K_pairs(const block_q4_K *w, const block_q8_K *x, int I[4], int N[4]) {
    uint8_t sc[8], mn[8];
    quant_k4_scales(w->scales, sc, mn);
    for (int p = 0; p < 4; p++) {
        int lo = 0, hi = 0;
        for (int l = 0; l < 32; l++) {
            lo += (w->qs[32 * p + l] & 15) * x->qs[64 * p + l];
            hi += (w->qs[32 * p + l] >> 4) * x->qs[64 * p + 32 + l];
        }
        I[p] = sc[2 * p] * lo + sc[2 * p + 1] * hi;
        N[p] = mn[2 * p] * (x->bsums[4 * p] + x->bsums[4 * p + 1]) +
               mn[2 * p + 1] * (x->bsums[4 * p + 2] + x->bsums[4 * p + 3]);
    }
}

/* repacked, single-token order: one fma per super-block and chain */
static void dot_q4_K_rs(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q4_K *w = vw;
    const block_q8_K *x = vx;
    float A = 0.0f, B = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int I[4], N[4];
        q4_K_pairs(&w[i], &x[i], I, N);
        const float D = h2f(w[i].d) * x[i].d, Dm = h2f(w[i].dmin) * x[i].d;
        A = fmaf((float)(I[0] + I[1] + I[2] + I[3]), D, A);
        B = fmaf((float)(N[0] + N[1] + N[2] + N[3]), Dm, B);
    }
    *s = A - B;
}

/* repacked, batched order: one fma per pair and chain */
static void dot_q4_K_rb(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q4_K *w = vw;
    const block_q8_K *x = vx;
    float A = 0.0f, B = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int I[4], N[4];
        q4_K_pairs(&w[i], &x[i], I, N);
        const float D = h2f(w[i].d) * x[i].d, Dm = h2f(w[i].dmin) * x[i].d;
        for (int p = 0; p < 4; p++) {
            A = fmaf((float)I[p], D, A);
            B = fmaf((float)N[p], Dm, B);
        }
    }
    *s = A - B;
}

/* The 8-lane K-quants: lane m of a 32-element chunk is its elements
 * 4m .. 4m+3; part[m] += q_j * x_j over the chunk's elements j. */
static inline void lane_parts(const int8_t q[32], const int8_t *x, int part[8]) {
    for (int m = 0; m < 8; m++) part[m] = 0;
    for (int l = 0; l < 32; l++) part[l >> 2] += q[l] * x[l];
}

/* plain layout: eight lane chains like Q5_K, the mins in four chains, one
 * per pair (llama.cpp's AVX2 vec_dot) */
static void dot_q4_K(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q4_K *w = vw;
    const block_q8_K *x = vx;
    float acc[8] = {0}, am[4] = {0};
    for (int i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], mn[8];
        int L[8] = {0}, part[8], I[4], N[4];
        quant_k4_scales(w[i].scales, sc, mn);
        for (int c = 0; c < 8; c++) {            /* chunk c: nibble half c & 1 of qs[32 (c/2) ..] */
            int8_t q[32];
            for (int l = 0; l < 32; l++) {
                const uint8_t b = w[i].qs[32 * (c / 2) + l];
                q[l] = (int8_t)(c & 1 ? b >> 4 : b & 15);
            }
            lane_parts(q, x[i].qs + 32 * c, part);
            for (int m = 0; m < 8; m++) L[m] += sc[c] * part[m];
        }
        q4_K_pairs(&w[i], &x[i], I, N);
        const float D = x[i].d * h2f(w[i].d), Dm = -x[i].d * h2f(w[i].dmin);
        for (int m = 0; m < 8; m++) acc[m] = fmaf(D, (float)L[m], acc[m]);
        for (int p = 0; p < 4; p++) am[p] = fmaf(Dm, (float)N[p], am[p]);
    }
    *s = hsum8(acc) + ((am[0] + am[2]) + (am[1] + am[3]));
}

static void dot_q5_K(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q5_K *w = vw;
    const block_q8_K *x = vx;
    float acc[8] = {0}, S = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], mn[8];
        int L[8] = {0}, part[8];
        quant_k4_scales(w[i].scales, sc, mn);
        for (int c = 0; c < 8; c++) {            /* chunk c: nibble half c & 1 of qs[32 (c/2) ..] */
            int8_t q[32];
            for (int l = 0; l < 32; l++) {
                const int nib = c & 1 ? w[i].qs[32 * (c / 2) + l] >> 4 : w[i].qs[32 * (c / 2) + l] & 15;
                q[l] = (int8_t)(nib | (((w[i].qh[l] >> c) & 1) << 4));
            }
            lane_parts(q, x[i].qs + 32 * c, part);
            for (int m = 0; m < 8; m++) L[m] += sc[c] * part[m];
        }
        const int M = k4_mins(mn, x[i].bsums);
        const float D = x[i].d * h2f(w[i].d), Dm = -x[i].d * h2f(w[i].dmin);
        for (int m = 0; m < 8; m++) acc[m] = fmaf(D, (float)L[m], acc[m]);
        S = fmaf(Dm, (float)M, S);
    }
    *s = hsum8(acc) + S;
}

static void dot_q6_K(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q6_K *w = vw;
    const block_q8_K *x = vx;
    float acc[8] = {0};
    for (int i = 0; i < n / QK_K; i++) {
        const int8_t *sc = w[i].scales;
        int L[8] = {0}, part[8];
        for (int c = 0; c < 8; c++) {            /* chunk c = 4h + g: elements 128h + 32g + l */
            const int h = c / 4, g = c % 4;
            const uint8_t *ql = w[i].ql + 64 * h + (g & 1 ? 32 : 0), *qh = w[i].qh + 32 * h;
            int8_t q[32];
            for (int l = 0; l < 32; l++)
                q[l] = (int8_t)((g < 2 ? ql[l] & 15 : ql[l] >> 4) | (((qh[l] >> (2 * g)) & 3) << 4));
            lane_parts(q, x[i].qs + 32 * c, part);
            for (int m = 0; m < 8; m++) L[m] += sc[2 * c + (m >= 4)] * part[m];
        }
        for (int m = 0; m < 8; m++)
            L[m] -= 32 * (sc[2 * m] * x[i].bsums[2 * m] + sc[2 * m + 1] * x[i].bsums[2 * m + 1]);
        const float D = x[i].d * h2f(w[i].d);
        for (int m = 0; m < 8; m++) acc[m] = fmaf(D, (float)L[m], acc[m]);
    }
    *s = hsum8(acc);
}

/* plain layout: llama.cpp's AVX2 vec_dot -- eight lane chains like Q3_K,
 * each super-block first adding its mins term for lane m (groups 2m, 2m+1)
 * and then its scaled lane sum */
static void dot_q2_K(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q2_K *w = vw;
    const block_q8_K *x = vx;
    float acc[8] = {0};
    for (int i = 0; i < n / QK_K; i++) {
        const uint8_t *sc = w[i].scales;
        int L[8] = {0}, part[8];
        for (int c = 0; c < 8; c++) {            /* chunk c = 4h + g: elements 128h + 32g + l */
            const int h = c / 4, g = c % 4;
            int8_t q[32];
            for (int l = 0; l < 32; l++) q[l] = (int8_t)((w[i].qs[32 * h + l] >> (2 * g)) & 3);
            lane_parts(q, x[i].qs + 32 * c, part);
            for (int m = 0; m < 8; m++) L[m] += (sc[2 * c + (m >= 4)] & 15) * part[m];
        }
        const float D = x[i].d * h2f(w[i].d), Dm = -x[i].d * h2f(w[i].dmin);
        for (int m = 0; m < 8; m++) {
            const int P = (sc[2 * m] >> 4) * x[i].bsums[2 * m] + (sc[2 * m + 1] >> 4) * x[i].bsums[2 * m + 1];
            acc[m] = fmaf(Dm, (float)P, acc[m]);
        }
        for (int m = 0; m < 8; m++) acc[m] = fmaf(D, (float)L[m], acc[m]);
    }
    *s = hsum8(acc);
}

/* Q2_K, repacked layout: per half h (elements 128h .. 128h+127, groups
 * 8h .. 8h+7) the scaled sum I_h and the mins term N_h. */
static void q2_K_halves(const block_q2_K *w, const block_q8_K *x, int I[2], int N[2]) {
    for (int h = 0; h < 2; h++) {
        I[h] = N[h] = 0;
        for (int g = 8 * h; g < 8 * h + 8; g++) {
            const int c = g / 2 - 4 * h, sh = 2 * c;  /* 32-element column c of half h */
            int dot = 0;
            for (int l = 0; l < 16; l++) {
                const int e = 16 * (g & 1) + l;
                dot += ((w->qs[32 * h + e] >> sh) & 3) * x->qs[16 * g + l];
            }
            I[h] += (w->scales[g] & 15) * dot;
            N[h] += (w->scales[g] >> 4) * x->bsums[g];
        }
    }
}

/* repacked, single-token order: one fma per super-block and chain */
static void dot_q2_K_rs(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q2_K *w = vw;
    const block_q8_K *x = vx;
    float A = 0.0f, B = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int I[2], N[2];
        q2_K_halves(&w[i], &x[i], I, N);
        const float D = h2f(w[i].d) * x[i].d, Dm = h2f(w[i].dmin) * x[i].d;
        A = fmaf((float)(I[0] + I[1]), D, A);
        B = fmaf((float)(N[0] + N[1]), Dm, B);
    }
    *s = A - B;
}

/* repacked, batched order: one fma per half and chain */
static void dot_q2_K_rb(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q2_K *w = vw;
    const block_q8_K *x = vx;
    float A = 0.0f, B = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int I[2], N[2];
        q2_K_halves(&w[i], &x[i], I, N);
        const float D = h2f(w[i].d) * x[i].d, Dm = h2f(w[i].dmin) * x[i].d;
        for (int h = 0; h < 2; h++) {
            A = fmaf((float)I[h], D, A);
            B = fmaf((float)N[h], Dm, B);
        }
    }
    *s = A - B;
}

static void dot_q3_K(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q3_K *w = vw;
    const block_q8_K *x = vx;
    float acc[8] = {0};
    for (int i = 0; i < n / QK_K; i++) {
        int8_t sc[16];
        int L[8] = {0}, part[8];
        quant_k3_scales(w[i].scales, sc);
        for (int c = 0; c < 8; c++) {            /* chunk c = 4h + g: elements 128h + 32g + l */
            const int h = c / 4, g = c % 4;
            int8_t q[32];
            for (int l = 0; l < 32; l++)
                q[l] = (int8_t)(((w[i].qs[32 * h + l] >> (2 * g)) & 3) -
                                ((w[i].hmask[l] >> c) & 1 ? 0 : 4));
            lane_parts(q, x[i].qs + 32 * c, part);
            for (int m = 0; m < 8; m++) L[m] += sc[2 * c + (m >= 4)] * part[m];
        }
        const float D = x[i].d * h2f(w[i].d);
        for (int m = 0; m < 8; m++) acc[m] = fmaf(D, (float)L[m], acc[m]);
    }
    *s = hsum8(acc);
}

/* Float formats: 16 lanes, fixed reduction, tail chain (see top). */
static float lanes16_reduce(const float a[16]) {
    float b[8], c[4];
    for (int k = 0; k < 8; k++) b[k] = a[k] + a[k + 8];
    for (int k = 0; k < 4; k++) c[k] = b[k] + b[k + 4];
    return (c[0] + c[2]) + (c[1] + c[3]);
}

#define DEFINE_FLOAT_DOT(name, T, CONV)                                                 \
    static void dot_##name(int n, float *restrict s, const void *restrict vw,          \
                           const void *restrict vx) {                                  \
        const T *w = vw, *x = vx;                                                       \
        float a[16] = {0};                                                              \
        int i = 0;                                                                      \
        for (; i + 16 <= n; i += 16)                                                    \
            for (int k = 0; k < 16; k++) a[k] = fmaf(CONV(w[i + k]), CONV(x[i + k]), a[k]); \
        float r = lanes16_reduce(a);                                                    \
        for (; i < n; i++) r = fmaf(CONV(w[i]), CONV(x[i]), r);                         \
        *s = r;                                                                         \
    }
#define CONV_F32(v) (v)
DEFINE_FLOAT_DOT(f32, float, CONV_F32)
DEFINE_FLOAT_DOT(f16, uint16_t, kern_fp16_to_fp32)

/* BF16 (see the top): one vdpbf16ps step over a 32-element chunk.  Lane j
 * takes the pair (2j, 2j+1): the odd product first, then the even one,
 * each a fused multiply-add (bf16 products are exact in f32) with DAZ
 * inputs and an FTZ result.  c is always flushed already, so it needs no
 * DAZ of its own. */
void kern_bf16_dp32(float c[16], const uint16_t *w, const uint16_t *x) {
    for (int j = 0; j < 16; j++) {
        float a = kern_f32_ftz(fmaf(kern_bf16_daz(w[2 * j + 1]), kern_bf16_daz(x[2 * j + 1]), c[j]));
        c[j] = kern_f32_ftz(fmaf(kern_bf16_daz(w[2 * j]), kern_bf16_daz(x[2 * j]), a));
    }
}

/* ggml_vec_dot_bf16: the two lane sets reduced and added in double, then
 * the tail's plain f32 products (no DAZ) in double, rounded to f32 once. */
float kern_bf16_finish_single(const float c1[16], const float c2[16], const uint16_t *w,
                              const uint16_t *x, int i, int n) {
    double s = 0.0;
    s += (double)lanes16_reduce(c1);
    s += (double)lanes16_reduce(c2);
    for (; i < n; i++) {
        const float p = kern_bf16_to_fp32(w[i]) * kern_bf16_to_fp32(x[i]);
        s += (double)p;
    }
    return (float)s;
}

/* tinyBLAS: one reduction.  llama.cpp never takes this order when n % 32
 * != 0; for such n the tail is defined as an fma chain on the sum. */
float kern_bf16_finish_batched(const float c[16], const uint16_t *w, const uint16_t *x, int i,
                               int n) {
    float r = lanes16_reduce(c);
    for (; i < n; i++) r = fmaf(kern_bf16_to_fp32(w[i]), kern_bf16_to_fp32(x[i]), r);
    return r;
}

static void dot_bf16(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const uint16_t *w = vw, *x = vx;
    float c1[16] = {0}, c2[16] = {0};
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        kern_bf16_dp32(c1, w + i, x + i);
        kern_bf16_dp32(c2, w + i + 32, x + i + 32);
    }
    *s = kern_bf16_finish_single(c1, c2, w, x, i, n);
}

static void dot_bf16_b(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const uint16_t *w = vw, *x = vx;
    float c[16] = {0};
    int i = 0;
    for (; i + 32 <= n; i += 32) kern_bf16_dp32(c, w + i, x + i);
    *s = kern_bf16_finish_batched(c, w, x, i, n);
}

/* ---- packed 16-token groups (portable; used by the SIMD gemm16s) ------- */

void kern_pack16_q8_K(int n, const void *restrict vx, size_t x_stride, int nt, void *restrict dst) {
    kern_pk_q8_K *p = dst;
    const int nb = n / QK_K;
    memset(p, 0, sizeof *p * (size_t)nb);
    for (int t = 0; t < nt; t++) {
        const block_q8_K *x = (const block_q8_K *)((const char *)vx + (size_t)t * x_stride);
        for (int i = 0; i < nb; i++) {
            p[i].d[t] = x[i].d;
            for (int m = 0; m < 4; m++) {
                p[i].bs32[m][t][0] = (int16_t)(x[i].bsums[4 * m] + x[i].bsums[4 * m + 1]);
                p[i].bs32[m][t][1] = (int16_t)(x[i].bsums[4 * m + 2] + x[i].bsums[4 * m + 3]);
            }
            for (int m = 0; m < 8; m++) {
                p[i].bs16[m][t][0] = x[i].bsums[2 * m];
                p[i].bs16[m][t][1] = x[i].bsums[2 * m + 1];
            }
            for (int k = 0; k < 64; k++) memcpy(p[i].qs[k][t], x[i].qs + 4 * k, 4);
        }
    }
}

/* bias: 0, or 128 to store every quant + 128 (as the x86 gemm16 wants). */
static void pack16_b32(int n, const void *restrict vx, size_t x_stride, int nt, void *restrict dst,
                       bool has_s, int bias) {
    kern_pk_q8_0 *p = dst;
    const int nb = n / 32, nbp = (nb + KERN_PK_B32_ROUND - 1) / KERN_PK_B32_ROUND * KERN_PK_B32_ROUND;
    memset(p, 0, sizeof *p * (size_t)nbp);
    for (int t = 0; t < 16; t++) {
        const char *row = (const char *)vx + (size_t)t * x_stride;
        for (int i = 0; i < nbp; i++) {
            const int8_t *qs = NULL;
            if (t >= nt || i >= nb) {
                /* zero block */
            } else if (has_s) {
                const block_q8_1 *b = (const block_q8_1 *)row + i;
                p[i].d[t] = h2f(b->d);
                p[i].s[t] = h2f(b->s);
                qs = b->qs;
            } else {
                const block_q8_0 *b = (const block_q8_0 *)row + i;
                p[i].d[t] = h2f(b->d);
                qs = b->qs;
            }
            for (int k = 0; k < 8; k++)
                for (int j = 0; j < 4; j++)
                    p[i].qs[k][t][j] = (int8_t)(uint8_t)((qs ? (uint8_t)qs[4 * k + j] : 0) + bias);
        }
    }
}

void kern_pack16_q8_0(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst) {
    pack16_b32(n, x, x_stride, nt, dst, false, 0);
}
void kern_pack16_q8_1(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst) {
    pack16_b32(n, x, x_stride, nt, dst, true, 0);
}
void kern_pack16_q8_0_x86(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst) {
    pack16_b32(n, x, x_stride, nt, dst, false, 128);
}
void kern_pack16_q8_1_x86(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst) {
    pack16_b32(n, x, x_stride, nt, dst, true, 128);
}

void kern_scalar_fill(nj_kernels *k) {
    for (int t = 0; t < NJ_TYPE_COUNT; t++) {
        const nj_type_traits *ref = quant_traits_ref(t);
        if (!ref) continue;
        k->vec_dot[t] = ref->vec_dot;
        k->from_float[t] = ref->from_float;
        k->to_float[t] = ref->to_float;
        k->gemm[t] = NULL;     /* matmul falls back to kern_gemm_generic */
    }
    k->vec_dot[NJ_F32] = dot_f32;
    k->vec_dot[NJ_F16] = dot_f16;
    k->vec_dot[NJ_BF16] = dot_bf16;
    k->vec_dot_rs[NJ_BF16] = dot_bf16;
    k->vec_dot_rb[NJ_BF16] = dot_bf16_b;
    k->vec_dot[NJ_Q4_0] = dot_q4_0;
    k->vec_dot[NJ_Q4_1] = dot_q4_1;
    k->vec_dot[NJ_Q5_0] = dot_q5_0;
    k->vec_dot[NJ_Q5_1] = dot_q5_1;
    k->vec_dot[NJ_Q8_0] = dot_q8_0;
    k->vec_dot_rs[NJ_Q4_0] = dot_q4_0_r;
    k->vec_dot_rb[NJ_Q4_0] = dot_q4_0_r;
    k->vec_dot[NJ_Q2_K] = dot_q2_K;
    k->vec_dot_rs[NJ_Q2_K] = dot_q2_K_rs;
    k->vec_dot_rb[NJ_Q2_K] = dot_q2_K_rb;
    k->vec_dot[NJ_Q3_K] = dot_q3_K;
    k->vec_dot[NJ_Q4_K] = dot_q4_K;
    k->vec_dot_rs[NJ_Q4_K] = dot_q4_K_rs;
    k->vec_dot_rb[NJ_Q4_K] = dot_q4_K_rb;
    k->vec_dot[NJ_Q5_K] = dot_q5_K;
    k->vec_dot[NJ_Q6_K] = dot_q6_K;
#if defined(__x86_64__) || defined(__i386__)
    k->from_float[NJ_Q8_0] = kern_quantize_q8_0_x86;
    k->from_float[NJ_Q8_1] = kern_quantize_q8_1_x86;
#elif defined(__aarch64__) || defined(__arm__)
    k->from_float[NJ_Q8_0] = kern_quantize_q8_0_arm;
    k->from_float[NJ_Q8_1] = kern_quantize_q8_1_arm;
#endif
    k->from_float[NJ_Q8_K] = kern_quantize_q8_K;
}
