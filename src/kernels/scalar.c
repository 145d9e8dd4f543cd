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
#include "kernels/kernels.h"

#include <math.h>

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

void kern_scalar_fill(nj_kernels *k) {
    for (int t = 0; t < NJ_TYPE_COUNT; t++) {
        const nj_type_traits *ref = quant_traits_ref(t);
        if (!ref) continue;
        k->vec_dot[t] = ref->vec_dot;
        k->from_float[t] = ref->from_float;
        k->to_float[t] = ref->to_float;
        k->gemm[t] = NULL;     /* matmul falls back to kern_gemm_generic */
    }
#if defined(__x86_64__) || defined(__i386__)
    k->from_float[NJ_Q8_0] = kern_quantize_q8_0_x86;
    k->from_float[NJ_Q8_1] = kern_quantize_q8_1_x86;
#elif defined(__aarch64__) || defined(__arm__)
    k->from_float[NJ_Q8_0] = kern_quantize_q8_0_arm;
    k->from_float[NJ_Q8_1] = kern_quantize_q8_1_arm;
#endif
    k->from_float[NJ_Q8_K] = kern_quantize_q8_K;
}
