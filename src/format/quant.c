/*
 * quant — scalar reference for every tensor type: fp16/bf16 conversion,
 * dequantize (to_float), quantize (from_float) and dot product (vec_dot),
 * plus the type-trait table that names them.
 *
 * Why bit-exactness matters.  nightjar must produce the same tokens as
 * llama.cpp on the same GGUF file.  Weights are only ever dequantized or
 * dotted, so to_float and vec_dot must read the blocks exactly as ggml does.
 * Activations, however, are *quantized at run time* (to Q8_0, Q8_1 or Q8_K,
 * the weight type's vec_dot_type) and a single rounding difference in one
 * activation byte changes a logit in the last bits, which can flip a greedy
 * token many steps later.  So the activation quantizers here reproduce the
 * bytes llama.cpp's CPU backend produces on x86-64, not merely "a good
 * quantization":
 *
 *   Q8_0, Q8_1  llama.cpp's x86 path (AVX/AVX2/AVX-512 builds all take it)
 *               computes amax = max|x|, d = amax / 127 (stored as fp16 with
 *               round-to-nearest-even), multiplies by id = 127 / amax (NOT by
 *               1/d: the two differ in the last bit for some amax), and
 *               rounds with the SIMD round-to-nearest-EVEN instruction.
 *               ggml's portable reference (quantize_row_q8_0_ref) instead
 *               uses id = 1/d and roundf (ties away from zero); that flavour
 *               is what llama-quantize writes into Q8_0 *model files*, and
 *               quant_file_quantizer() returns it.  Q8_1 additionally stores
 *               s = fp16(d * sum(q)).
 *   Q8_K        the x86 CPU backend uses the reference directly: the element
 *               x_max with the largest |x| (first one on ties) gives
 *               iscale = -127 / x_max, q = round-half-even(iscale * x)
 *               (the 1.5*2^23 magic-number trick), capped at 127, d = 1/iscale
 *               kept as f32, bsums = sums of 16 consecutive q.  (llama.cpp's
 *               repacked Q4_K/Q2_K GEMM path on AVX2 quantizes with a SIMD
 *               variant that is identical except when +x_max and -x_max both
 *               occur in a super-block: it then prefers the positive one.)
 *   F16, BF16   round-to-nearest-even; NaN stays NaN (quieted).
 *
 * Weight quantizers (Q4_0 ... Q6_K) follow ggml's reference quantizers
 * without importance matrix, i.e. what llama-quantize does with no imatrix;
 * tests/test_quant.c checks them byte for byte against golden vectors
 * produced by llama.cpp itself (tools/gen_quant_golden.py).  The floating-point
 * expressions keep ggml's operation order on purpose: reordering a sum
 * changes the chosen scales.  This file must not be built with -ffast-math
 * or with floating-point contraction into FMA (GCC in -std=c11 mode does not
 * contract; for clang a pragma below turns it off).  Weight quantizers expect
 * finite input (as ggml's do); the activation quantizers tolerate inf/NaN
 * without undefined behaviour (the bytes are then meaningless).
 *
 * Dot products accumulate integers per block (or per sub-block, scaled by the
 * sub-block's integer scale) and only then go to float, in the same order as
 * ggml's portable C code (*_generic); F32/F16/BF16 sum products in double as
 * ggml's scalar fallback does.  llama.cpp on x86 runs SIMD kernels that sum
 * floats in another order, so no reference can equal it bit for bit; the
 * golden test bounds the difference (and src/kernels/ is tested against
 * this reference the same way).
 *
 * No state, no allocation: every function here is pure and thread-safe.
 */
#include "quant.h"

#include <math.h>
#include <string.h>
#include <float.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define NJ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NJ_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float    bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ------------------------------------------------------------------ */
/* fp16 / bf16                                                          */
/* ------------------------------------------------------------------ */

/* IEEE binary16 -> binary32, exact.  Signalling NaNs come out quiet (as the
 * F16C instruction does); the payload is kept. */
float nj_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24, exact in f32 */
        float v = (float)m * 0x1p-24f;
        return bits_f32(sign | f32_bits(v));
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m ? (0x400000u | (m << 13)) : 0));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* binary32 -> binary16, round to nearest, ties to even; overflow -> inf;
 * results below half the smallest subnormal -> signed zero.  NaN -> quiet
 * NaN with the top payload bits (what F16C's vcvtps2ph does). */
uint16_t nj_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((x >> 13) & 0x3ffu);
    uint32_t E = x >> 23;                    /* biased f32 exponent */
    if (E >= 143) return sign | 0x7c00u;     /* >= 65536 (and inf) */
    if (E >= 113) {                          /* fp16 normal range */
        uint32_t q = ((E - 112) << 10) | ((x & 0x7fffffu) >> 13);
        uint32_t rem = x & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) q++;  /* carry may reach inf: correct */
        return sign | (uint16_t)q;
    }
    /* fp16 subnormal (or zero): value = m * 2^(E-150), unit 2^-24 */
    if (E < 102) return sign;                /* < 2^-25: rounds to zero */
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - E;                /* 14..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
}

float nj_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* Round to nearest even on the upper 16 bits; NaN forced quiet (bit 6 of the
 * bf16 mantissa) so it cannot round into infinity. */
uint16_t nj_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#define H2F(h) nj_fp16_to_fp32(h)
#define F2H(f) nj_fp32_to_fp16(f)

/* Round half to even for |v| < 2^22: adding 1.5*2^23 leaves the integer in
 * the low mantissa bits, rounded by the FPU's default mode.  This is the
 * rounding of ggml's nearest_int() and of SIMD round-to-nearest. */
static inline int round_even(float v) {
    float t = v + 12582912.f;
    return (int)(f32_bits(t) & 0x007fffffu) - 0x00400000;
}

/* ------------------------------------------------------------------ */
/* F32, F16, BF16                                                       */
/* ------------------------------------------------------------------ */

static void f32_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    memcpy(y, vx, (size_t)n * sizeof(float));
}
static void f32_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    memcpy(vy, x, (size_t)n * sizeof(float));
}
/* s = x . y, products in f32, sum in double (ggml's scalar path). */
static void f32_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const float *x = vx, *y = vy;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * y[i]);
    *s = (float)sum;
}

/* F16 and BF16 differ only in the element conversion, so one macro writes
 * the three reference functions of a 16-bit float type t from its
 * converters TO32 (bits -> f32) and FROM32 (f32 -> bits, round to even). */
#define HALF_FNS(t, TO32, FROM32)                                                                 \
    static void t##_to_float(const void *restrict vx, float *restrict y, int64_t n) {             \
        const uint16_t *x = vx;                                                                   \
        for (int64_t i = 0; i < n; i++) y[i] = TO32(x[i]);                                        \
    }                                                                                             \
    static void t##_from_float(const float *restrict x, void *restrict vy, int64_t n) {           \
        uint16_t *y = vy;                                                                         \
        for (int64_t i = 0; i < n; i++) y[i] = FROM32(x[i]);                                      \
    }                                                                                             \
    static void t##_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) { \
        const uint16_t *x = vx, *y = vy;                                                          \
        double sum = 0;                                                                           \
        for (int i = 0; i < n; i++) sum += (double)(TO32(x[i]) * TO32(y[i]));                     \
        *s = (float)sum;                                                                          \
    }
HALF_FNS(f16, nj_fp16_to_fp32, nj_fp32_to_fp16)
HALF_FNS(bf16, nj_bf16_to_fp32, nj_fp32_to_bf16)

/* ------------------------------------------------------------------ */
/* 32-element block formats                                             */
/* ------------------------------------------------------------------ */

/* Q4_0:  d:f16 | qs[16]
 *   qs[j] = | hi nibble: q[j+16] | lo nibble: q[j] |   x = d * (q - 8)
 * Quantize: the element with the largest |x| (first on ties), x_max, maps to
 * q = 0: d = x_max / -8; q = min(15, trunc(x/d + 8.5)). */
static void q4_0_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_0 *b = vx;
    for (int64_t i = 0; i < n / QK4_0; i++, y += QK4_0) {
        const float d = H2F(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j]              = ((b[i].qs[j] & 0x0f) - 8) * d;
            y[j + QK4_0 / 2]  = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}
static void q4_0_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_0 *b = vy;
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        float amax = 0, xmax = 0;
        for (int j = 0; j < QK4_0; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); xmax = x[j]; }
        const float d = xmax / -8, id = d ? 1.0f / d : 0.0f;
        b[i].d = F2H(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            /* (int8_t) truncates toward zero; x*id + 8.5 >= 0 by construction */
            uint8_t lo = (uint8_t)NJ_MIN(15, (int8_t)(x[j] * id + 8.5f));
            uint8_t hi = (uint8_t)NJ_MIN(15, (int8_t)(x[j + QK4_0 / 2] * id + 8.5f));
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}
static void q4_0_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK4_0; i++) {
        int si = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            si += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            si += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        sum += si * H2F(x[i].d) * H2F(y[i].d);
    }
    *s = sum;
}

/* Q4_1:  d:f16 | m:f16 | qs[16] (nibbles as Q4_0)   x = d * q + m
 * Quantize: m = min(x), d = (max - min) / 15, q = min(15, trunc((x-m)/d + .5)). */
static void q4_1_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_1 *b = vx;
    for (int64_t i = 0; i < n / QK4_1; i++, y += QK4_1) {
        const float d = H2F(b[i].d), m = H2F(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j]             = (b[i].qs[j] & 0x0f) * d + m;
            y[j + QK4_1 / 2] = (b[i].qs[j] >> 4) * d + m;
        }
    }
}
static void q4_1_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_1 *b = vy;
    for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
        float lo = FLT_MAX, hi = -FLT_MAX;
        for (int j = 0; j < QK4_1; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 15, id = d ? 1.0f / d : 0.0f;
        b[i].d = F2H(d);
        b[i].m = F2H(lo);
        for (int j = 0; j < QK4_1 / 2; j++) {
            uint8_t q0 = (uint8_t)NJ_MIN(15, (int8_t)((x[j] - lo) * id + 0.5f));
            uint8_t q1 = (uint8_t)NJ_MIN(15, (int8_t)((x[j + QK4_1 / 2] - lo) * id + 0.5f));
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}
static void q4_1_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK4_1; i++) {
        int si = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            si += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            si += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        }
        /* the min term uses the activation block's s = d_y * sum(q_y) */
        sum += (H2F(x[i].d) * H2F(y[i].d)) * si + H2F(x[i].m) * H2F(y[i].s);
    }
    *s = sum;
}

/* Q5_0:  d:f16 | qh[4] | qs[16]
 *   element j: low 4 bits as Q4_0, 5th bit = bit j of the little-endian u32 qh.
 *   x = d * (q - 16);  quantize like Q4_0 with d = x_max / -16, offset 16.5. */
static inline uint32_t load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static void q5_0_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_0 *b = vx;
    for (int64_t i = 0; i < n / QK5_0; i++, y += QK5_0) {
        const float d = H2F(b[i].d);
        const uint32_t qh = load_u32(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            int q0 = (b[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            int q1 = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            y[j]             = (q0 - 16) * d;
            y[j + QK5_0 / 2] = (q1 - 16) * d;
        }
    }
}
static void q5_0_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_0 *b = vy;
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        float amax = 0, xmax = 0;
        for (int j = 0; j < QK5_0; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); xmax = x[j]; }
        const float d = xmax / -16, id = d ? 1.0f / d : 0.0f;
        b[i].d = F2H(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            uint8_t q0 = (uint8_t)NJ_MIN(31, (int8_t)(x[j] * id + 16.5f));
            uint8_t q1 = (uint8_t)NJ_MIN(31, (int8_t)(x[j + QK5_0 / 2] * id + 16.5f));
            b[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK5_0 / 2);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}
static void q5_0_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK5_0; i++) {
        const uint32_t qh = load_u32(x[i].qh);
        int si = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            int q0 = ((x[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4)) - 16;
            int q1 = ((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) - 16;
            si += q0 * y[i].qs[j] + q1 * y[i].qs[j + QK5_0 / 2];
        }
        sum += (H2F(x[i].d) * H2F(y[i].d)) * si;
    }
    *s = sum;
}

/* Q5_1:  d:f16 | m:f16 | qh[4] | qs[16]   x = d * q + m  (q in 0..31) */
static void q5_1_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_1 *b = vx;
    for (int64_t i = 0; i < n / QK5_1; i++, y += QK5_1) {
        const float d = H2F(b[i].d), m = H2F(b[i].m);
        const uint32_t qh = load_u32(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            int q0 = (b[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            int q1 = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            y[j]             = q0 * d + m;
            y[j + QK5_1 / 2] = q1 * d + m;
        }
    }
}
static void q5_1_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_1 *b = vy;
    for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
        float lo = FLT_MAX, hi = -FLT_MAX;
        for (int j = 0; j < QK5_1; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 31, id = d ? 1.0f / d : 0.0f;
        b[i].d = F2H(d);
        b[i].m = F2H(lo);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            /* no clamp, as in ggml: (x-lo)*id <= 31 + rounding error < 31.5 */
            uint8_t q0 = (uint8_t)((x[j] - lo) * id + 0.5f);
            uint8_t q1 = (uint8_t)((x[j + QK5_1 / 2] - lo) * id + 0.5f);
            b[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1u) << j;
            qh |= (uint32_t)((q1 >> 4) & 1u) << (j + QK5_1 / 2);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}
static void q5_1_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK5_1; i++) {
        const uint32_t qh = load_u32(x[i].qh);
        int si = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            int q0 = (x[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            int q1 = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            si += q0 * y[i].qs[j] + q1 * y[i].qs[j + QK5_1 / 2];
        }
        sum += (H2F(x[i].d) * H2F(y[i].d)) * si + H2F(x[i].m) * H2F(y[i].s);
    }
    *s = sum;
}

/* Q8_0:  d:f16 | qs[32]: i8    x = d * q
 * Q8_1:  d:f16 | s:f16 | qs[32]: i8,  s = d * sum(q)
 *
 * Two quantizers, see the top of the file:
 *   q8_*_from_float     llama.cpp's x86 activation path: id = 127/amax,
 *                       round half to even.
 *   q8_*_from_float_file ggml's reference (model files): id = 1/d, roundf. */
static int q8_block_cpu(const float *x, int8_t *q, float *d_out) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = NJ_MAX(amax, fabsf(x[j]));
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int v = round_even(x[j] * id);
        q[j] = (int8_t)NJ_MAX(-128, NJ_MIN(127, v));   /* saturating, like packs */
        sum += q[j];
    }
    *d_out = d;
    return sum;
}
static int q8_block_file(const float *x, int8_t *q, float *d_out) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = NJ_MAX(amax, fabsf(x[j]));
    const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = (int8_t)roundf(x[j] * id);
        sum += q[j];
    }
    *d_out = d;
    return sum;
}

static void q8_0_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_0 *b = vx;
    for (int64_t i = 0; i < n / QK8_0; i++, y += QK8_0) {
        const float d = H2F(b[i].d);
        for (int j = 0; j < QK8_0; j++) y[j] = b[i].qs[j] * d;
    }
}
static void q8_0_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *b = vy;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d;
        q8_block_cpu(x + i * QK8_0, b[i].qs, &d);
        b[i].d = F2H(d);
    }
}
static void q8_0_from_float_file(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *b = vy;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d;
        q8_block_file(x + i * QK8_0, b[i].qs, &d);
        b[i].d = F2H(d);
    }
}
static void q8_0_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_0 *x = vx, *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK8_0; i++) {
        int si = 0;
        for (int j = 0; j < QK8_0; j++) si += x[i].qs[j] * y[i].qs[j];
        sum += si * (H2F(x[i].d) * H2F(y[i].d));
    }
    *s = sum;
}

static void q8_1_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_1 *b = vx;
    for (int64_t i = 0; i < n / QK8_1; i++, y += QK8_1) {
        const float d = H2F(b[i].d);
        for (int j = 0; j < QK8_1; j++) y[j] = b[i].qs[j] * d;
    }
}
static void q8_1_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *b = vy;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        float d;
        int sum = q8_block_cpu(x + i * QK8_1, b[i].qs, &d);
        b[i].d = F2H(d);
        b[i].s = F2H(d * (float)sum);
    }
}
static void q8_1_from_float_file(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *b = vy;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        float d;
        int sum = q8_block_file(x + i * QK8_1, b[i].qs, &d);
        b[i].d = F2H(d);
        b[i].s = F2H((float)sum * d);
    }
}
/* Q8_1 . Q8_1 is not used by any weight type; kept for completeness. */
static void q8_1_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_1 *x = vx, *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK8_1; i++) {
        int si = 0;
        for (int j = 0; j < QK8_1; j++) si += x[i].qs[j] * y[i].qs[j];
        sum += si * (H2F(x[i].d) * H2F(y[i].d));
    }
    *s = sum;
}

/* ------------------------------------------------------------------ */
/* K-quant helpers                                                      */
/* ------------------------------------------------------------------ */

#define GROUP_EPS 1e-15f   /* below this max |x| a group counts as all zero */

/* Symmetric n-level fit for each of G groups of n values with weights x^2
 * (group g at x + n*g, levels to L + n*g, scale[g]): L[i] in 0..2*nmax-1
 * (offset nmax), x ~ scale * (L - nmax).  Per group: start from
 * d = -x_max/nmax and try 18 nearby inverse scales, keeping the one that
 * maximises (sum w x l)^2 / sum w l^2.  (ggml's make_qx_quants with
 * rmse_type 1, no importance weights.)  The groups run in lockstep over
 * [element][group] arrays so they vectorize, each with exactly its own
 * arithmetic (as fit_affine_groups below).  G <= 16, n <= 16. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void fit_symmetric_groups(const int G, const int n, const int nmax, const float *restrict x,
                                        int8_t *restrict L, float *restrict scale) {
    float xt[16][16], xmax[16], best[16], sumlx[16], suml2[16], is[16];
    bool live[16];
    for (int g = 0; g < G; g++) {
        const float *xg = x + n * g;
        float amax = 0;
        xmax[g] = 0;
        for (int i = 0; i < n; i++) {
            xt[i][g] = xg[i];
            if (fabsf(xg[i]) > amax) { amax = fabsf(xg[i]); xmax[g] = xg[i]; }
        }
        live[g] = amax >= GROUP_EPS;
        scale[g] = 0;
        if (!live[g]) memset(L + n * g, 0, (size_t)n);
    }
    /* step 0 (the start) first, then -9..9: the same order as one group alone */
    for (int step = 0; step <= 18; step++) {
        const int st = step == 0 ? 0 : step <= 9 ? step - 10 : step - 9;
        for (int g = 0; g < G; g++) {
            is[g] = !live[g] ? 0.f : st == 0 ? -nmax / xmax[g] : -(nmax + 0.1f * st) / xmax[g];
            sumlx[g] = suml2[g] = 0;
        }
        for (int i = 0; i < n; i++)
            for (int g = 0; g < G; g++) {
                /* the clamp in float: exact for these small integers, and
                 * float min/max vectorize on every x86-64 */
                float l = (float)round_even(is[g] * xt[i][g]);
                l = l < (float)-nmax ? (float)-nmax : l;
                l = l > (float)(nmax - 1) ? (float)(nmax - 1) : l;
                float w = xt[i][g] * xt[i][g];
                sumlx[g] += w * xt[i][g] * l;
                suml2[g] += w * l * l;
            }
        for (int g = 0; g < G; g++) {
            if (!live[g]) continue;
            bool take;
            if (st == 0) {
                scale[g] = suml2[g] ? sumlx[g] / suml2[g] : 0.0f;
                best[g] = scale[g] * sumlx[g];
                take = true;
            } else {
                take = suml2[g] > 0 && sumlx[g] * sumlx[g] > best[g] * suml2[g];
                if (take) {
                    scale[g] = sumlx[g] / suml2[g];
                    best[g] = scale[g] * sumlx[g];
                }
            }
            if (take)
                for (int i = 0; i < n; i++) {
                    int l = NJ_MAX(-nmax, NJ_MIN(nmax - 1, round_even(is[g] * xt[i][g])));
                    L[n * g + i] = (int8_t)(l + nmax);
                }
        }
    }
}

/* Symmetric fit for Q3_K (levels -nmax..nmax-1, weights x^2) refined by
 * coordinate descent: each value in turn moves to the level that is optimal
 * for the current least-squares scale, if that improves the fit; up to 5
 * sweeps.  Returns the scale; L gets level + nmax.  (ggml's make_q3_quants
 * with do_rmse.) */
static float fit_q3(int n, int nmax, const float *restrict x, int8_t *restrict L) {
    float amax = 0, xmax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); xmax = x[i]; }
    if (amax < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / xmax;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = NJ_MAX(-nmax, NJ_MIN(nmax - 1, round_even(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = NJ_MAX(-nmax, NJ_MIN(nmax - 1, round_even(x[i] * sl2 / slx)));
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric fit x ~ scale * L - min_out with L in 0..nmax and min_out >= 0,
 * minimising sum w * err (err = |diff| if use_mad else diff^2), for each of
 * G groups of n values (group g at x + n*g, weights w + n*g, levels to
 * L + n*g, results scale[g], min_out[g]).  Per group: start from the
 * min/max range, then try nstep+1 inverse scales
 * (rmin + rdelta*k + nmax) / (max - min), solving the weighted least squares
 * for scale and min at each and keeping the best; a winner's min is the
 * range start of the later candidates.  (ggml's make_qkx2_quants.)
 *
 * Why G groups at once.  Each candidate's sums are sequential float chains
 * (their order fixes the result bit for bit) and each candidate depends on
 * the previous winner, so one group alone is a chain of dependent steps.
 * The groups of a block are independent: the candidate loop runs on all of
 * them in lockstep, over arrays laid out [element][group], so the compiler
 * can put groups in vector lanes.  Every group's arithmetic is exactly what
 * it would be alone (lanes are never summed together).  G is a constant at
 * each call (8 or 16, inlined), n <= 32. */
#define FIT_G 16
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void fit_affine_groups(const int G, const int n, const int nmax, const float *restrict x,
                                     const float *restrict w, uint8_t *restrict L,
                                     float *restrict scale, float *restrict min_out, const float rmin,
                                     const float rdelta, const int nstep, const bool use_mad) {
    float lo[FIT_G], hi[FIT_G], sum_w[FIT_G], sum_x[FIT_G], best_err[FIT_G], is[FIT_G];
    float xt[32][FIT_G], wt[32][FIT_G];
    int32_t la[32][FIT_G];
    bool live[FIT_G];
    int n_live = 0;
    for (int g = 0; g < G; g++) {
        const float *xg = x + n * g, *wg = w + n * g;
        uint8_t *Lg = L + n * g;
        for (int i = 0; i < n; i++) {
            xt[i][g] = xg[i];
            wt[i][g] = wg[i];
        }
        lo[g] = hi[g] = xg[0];
        sum_w[g] = wg[0];
        sum_x[g] = sum_w[g] * xg[0];
        for (int i = 1; i < n; i++) {
            if (xg[i] < lo[g]) lo[g] = xg[i];
            if (xg[i] > hi[g]) hi[g] = xg[i];
            sum_w[g] += wg[i];
            sum_x[g] += wg[i] * xg[i];
        }
        if (lo[g] > 0) lo[g] = 0;
        live[g] = hi[g] != lo[g];
        if (!live[g]) {
            memset(Lg, 0, (size_t)n);
            min_out[g] = -lo[g];
            scale[g] = 0.f;
            continue;
        }
        n_live++;
        float iscale = nmax / (hi[g] - lo[g]);
        scale[g] = 1 / iscale;
        best_err[g] = 0;
        for (int i = 0; i < n; i++) {
            int l = round_even(iscale * (xg[i] - lo[g]));
            Lg[i] = (uint8_t)NJ_MAX(0, NJ_MIN(nmax, l));
            float diff = scale[g] * Lg[i] + lo[g] - xg[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            best_err[g] += wg[i] * diff;
        }
    }
    if (nstep < 1 || !n_live) {
        for (int g = 0; g < G; g++) min_out[g] = -lo[g];
        return;
    }
    for (int k = 0; k <= nstep; k++) {
        float sum_l[FIT_G], sum_l2[FIT_G], sum_xl[FIT_G];
        /* a flat group's lane computes with iscale 0 and is never judged */
        for (int g = 0; g < G; g++) {
            is[g] = live[g] ? (rmin + rdelta * k + nmax) / (hi[g] - lo[g]) : 0.f;
            sum_l[g] = sum_l2[g] = sum_xl[g] = 0;
        }
        for (int i = 0; i < n; i++)
            for (int g = 0; g < G; g++) {
                int l = round_even(is[g] * (xt[i][g] - lo[g]));
                l = l < 0 ? 0 : l;
                l = l > nmax ? nmax : l;
                la[i][g] = l;
                sum_l[g]  += wt[i][g] * l;
                sum_l2[g] += wt[i][g] * l * l;
                sum_xl[g] += wt[i][g] * l * xt[i][g];
            }
        float tsc[FIT_G], tmn[FIT_G], err[FIT_G];
        bool judge[FIT_G];
        for (int g = 0; g < G; g++) {
            float D = sum_w[g] * sum_l2[g] - sum_l[g] * sum_l[g];
            judge[g] = live[g] && D > 0;
            tsc[g] = tmn[g] = err[g] = 0;
            if (!judge[g]) continue;
            tsc[g] = (sum_w[g] * sum_xl[g] - sum_x[g] * sum_l[g]) / D;
            tmn[g] = (sum_l2[g] * sum_x[g] - sum_l[g] * sum_xl[g]) / D;
            if (tmn[g] > 0) {
                tmn[g] = 0;
                tsc[g] = sum_xl[g] / sum_l2[g];
            }
        }
        for (int i = 0; i < n; i++)
            for (int g = 0; g < G; g++) {
                float diff = tsc[g] * (float)la[i][g] + tmn[g] - xt[i][g];
                diff = use_mad ? fabsf(diff) : diff * diff;
                err[g] += wt[i][g] * diff;
            }
        for (int g = 0; g < G; g++)
            if (judge[g] && err[g] < best_err[g]) {
                for (int i = 0; i < n; i++) L[n * g + i] = (uint8_t)la[i][g];
                best_err[g] = err[g];
                scale[g] = tsc[g];
                lo[g] = tmn[g];
            }
    }
    for (int g = 0; g < G; g++) min_out[g] = -lo[g];
}

/* Store scale sc and min mn of sub-block j into a zeroed Q4_K/Q5_K 12-byte
 * scale field (the inverse of quant_k4_scales; layout in quant.h). */
static inline void k4_put_scale_min(int j, uint8_t *restrict q, uint8_t sc, uint8_t mn) {
    if (j < 4) {
        q[j] = sc;
        q[j + 4] = mn;
    } else {
        q[j + 4] = (uint8_t)((sc & 0x0f) | ((mn & 0x0f) << 4));
        q[j - 4] |= (uint8_t)((sc >> 4) << 6);
        q[j]     |= (uint8_t)((mn >> 4) << 6);
    }
}

/* Pack 2-bit values L[256] into 64 bytes: within each 128-value half,
 * byte l holds L[l], L[l+32], L[l+64], L[l+96] at bits 0,2,4,6. */
static void pack_2bit(const uint8_t *restrict L, uint8_t *restrict qs) {
    for (int h = 0; h < QK_K; h += 128)
        for (int l = 0; l < 32; l++)
            qs[h / 4 + l] = (uint8_t)(L[h + l] | (L[h + l + 32] << 2) | (L[h + l + 64] << 4) | (L[h + l + 96] << 6));
}

/* ------------------------------------------------------------------ */
/* Q2_K                                                                 */
/* ------------------------------------------------------------------ */

/* Q2_K:  scales[16] | qs[64] | d:f16 | dmin:f16       256 values, 16 groups of 16
 *   scales[g] = | min code (4 bits) | scale code (4 bits) |
 *   value k = 128*h + 32*s + l (h half, s shift 0..3, l 0..31) is 2-bit field s
 *   of qs[32*h + l]; its group is g = k / 16.
 *   x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4) */
static void q2_K_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q2_K *b = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = H2F(b[i].d), dmin = H2F(b[i].dmin);
        const uint8_t *q = b[i].qs;
        int g = 0;
        for (int h = 0; h < QK_K; h += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++, g++) {
                    const uint8_t sc = b[i].scales[g];
                    const float dl = d * (sc & 0x0f), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[16 * part + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}
static void q2_K_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q2_K *b = vy;
    uint8_t L[QK_K];
    float w[QK_K], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int l = 0; l < QK_K; l++) w[l] = fabsf(x[l]);
        fit_affine_groups(QK_K / 16, 16, 3, x, w, L, scales, mins, -0.5f, 0.1f, 15, true);
        for (int g = 0; g < QK_K / 16; g++) {
            if (scales[g] > max_scale) max_scale = scales[g];
            if (mins[g] > max_min) max_min = mins[g];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int g = 0; g < QK_K / 16; g++) b[i].scales[g] = (uint8_t)round_even(iscale * scales[g]);
            b[i].d = F2H(max_scale / q4scale);
        } else {
            memset(b[i].scales, 0, sizeof b[i].scales);
            b[i].d = F2H(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int g = 0; g < QK_K / 16; g++) b[i].scales[g] |= (uint8_t)(round_even(iscale * mins[g]) << 4);
            b[i].dmin = F2H(max_min / q4scale);
        } else {
            b[i].dmin = F2H(0.f);
        }
        /* requantize against the rounded scales; groups with scale 0 keep
         * the levels of the first fit */
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = H2F(b[i].d) * (b[i].scales[g] & 0x0f);
            if (!d) continue;
            const float dm = H2F(b[i].dmin) * (b[i].scales[g] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (uint8_t)NJ_MAX(0, NJ_MIN(3, round_even((x[16 * g + l] + dm) / d)));
        }
        pack_2bit(L, b[i].qs);
    }
}
static void q2_K_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        const uint8_t *q2 = x[i].qs, *sc = x[i].scales;
        const int8_t *q8 = y[i].qs;
        int summs = 0;   /* sum over groups of min code * activation group sum */
        for (int g = 0; g < 16; g++) summs += y[i].bsums[g] * (sc[g] >> 4);
        const float dall = y[i].d * H2F(x[i].d);
        const float dmin = y[i].d * H2F(x[i].dmin);
        int isum = 0, g = 0;
        for (int h = 0; h < QK_K / 128; h++, q2 += 32) {
            for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
                for (int part = 0; part < 2; part++, g++) {
                    int acc = 0;
                    for (int l = 16 * part; l < 16 * part + 16; l++) acc += q8[l] * ((q2[l] >> shift) & 3);
                    isum += (sc[g] & 0x0f) * acc;
                }
            }
        }
        sum += dall * isum - dmin * summs;
    }
    *s = sum;
}

/* ------------------------------------------------------------------ */
/* Q3_K                                                                 */
/* ------------------------------------------------------------------ */

/* Q3_K:  hmask[32] | qs[64] | scales[12] | d:f16      256 values, 16 groups of 16
 *   low 2 bits as Q2_K's qs; high bit of value k = 32*m + l is bit m of
 *   hmask[l] (m = 0..7).  q = low2 - (high bit ? 0 : 4)  in -4..3.
 *   x = d * sc[k/16] * q, sc from the 12-byte field (see quant_k3_scales in quant.h) */
static void q3_K_decode(const block_q3_K *restrict b, int8_t *restrict q) {
    for (int k = 0; k < QK_K; k++) {
        int h = k / 128, s = (k % 128) / 32, l = k % 32;
        int low = (b->qs[32 * h + l] >> (2 * s)) & 3;
        int m = k / 32;   /* = 4*h + s */
        q[k] = (int8_t)(low - ((b->hmask[l] >> m) & 1 ? 0 : 4));
    }
}
static void q3_K_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q3_K *b = vx;
    int8_t sc[16], q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = H2F(b[i].d);
        quant_k3_scales(b[i].scales, sc);
        q3_K_decode(&b[i], q);
        for (int g = 0; g < 16; g++) {
            const float dl = d * sc[g];
            for (int l = 0; l < 16; l++) y[16 * g + l] = dl * q[16 * g + l];
        }
    }
}
static void q3_K_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q3_K *b = vy;
    int8_t L[QK_K], sc[16];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, amax = 0;
        for (int g = 0; g < QK_K / 16; g++) {
            scales[g] = fit_q3(16, 4, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > amax) { amax = fabsf(scales[g]); max_scale = scales[g]; }
        }
        memset(b[i].scales, 0, 12);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int g = 0; g < QK_K / 16; g++) {
                int8_t l = (int8_t)round_even(iscale * scales[g]);
                l = (int8_t)(NJ_MAX(-32, NJ_MIN(31, l)) + 32);
                if (g < 8) b[i].scales[g] = (uint8_t)(l & 0x0f);
                else       b[i].scales[g - 8] |= (uint8_t)((l & 0x0f) << 4);
                b[i].scales[8 + g % 4] |= (uint8_t)((l >> 4) << (2 * (g / 4)));
            }
            b[i].d = F2H(1 / iscale);
        } else {
            b[i].d = F2H(0.f);
        }
        quant_k3_scales(b[i].scales, sc);
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = H2F(b[i].d) * sc[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(NJ_MAX(-4, NJ_MIN(3, round_even(x[16 * g + l] / d))) + 4);
        }
        /* split 3-bit L (0..7) into hmask bit and the low 2 bits */
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        uint8_t low[QK_K];
        for (int k = 0; k < QK_K; k++) {
            int v = L[k];
            if (v > 3) { b[i].hmask[k % 32] |= (uint8_t)(1u << (k / 32)); v -= 4; }
            low[k] = (uint8_t)v;
        }
        pack_2bit(low, b[i].qs);
    }
}
static void q3_K_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    int8_t q[QK_K], sc[16];
    float lanes[8] = {0};   /* ggml's generic code sums in 8 lanes (k % 8) */
    for (int i = 0; i < n / QK_K; i++) {
        q3_K_decode(&x[i], q);
        quant_k3_scales(x[i].scales, sc);
        int32_t acc[8] = {0};
        for (int k = 0; k < QK_K; k++) acc[k % 8] += sc[k / 16] * (q[k] * y[i].qs[k]);
        const float d = H2F(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++) lanes[l] += d * acc[l];
    }
    float sum = 0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    *s = sum;
}

/* ------------------------------------------------------------------ */
/* Q4_K, Q5_K                                                           */
/* ------------------------------------------------------------------ */

/* Q4_K:  d:f16 | dmin:f16 | scales[12] | qs[128]      256 values, 8 groups of 32
 *   value k = 64*c + 32*hi + l is nibble hi of qs[32*c + l]; group g = k / 32.
 *   x = d * sc[g] * q - dmin * mn[g]     (sc, mn: 6-bit, see quant_k4_scales) */
static void q4_K_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_K *b = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = H2F(b[i].d), dmin = H2F(b[i].dmin);
        const uint8_t *q = b[i].qs;
        uint8_t sc[8], mn[8];
        quant_k4_scales(b[i].scales, sc, mn);
        for (int g = 0; g < 8; g += 2, q += 32) {
            const float d1 = d * sc[g], m1 = dmin * mn[g];
            const float d2 = d * sc[g + 1], m2 = dmin * mn[g + 1];
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fit every 32-group, encode
 * the 6-bit scales/mins and requantize against them.  L gets 0..nmax. */
static void k45_quantize(const float *restrict x, int nmax, float rmin, int nstep,
                         uint8_t *restrict scales12, nj_half *restrict d_out,
                         nj_half *restrict dmin_out, uint8_t *restrict L) {
    float w[QK_K], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int g = 0; g < 8; g++) {
        const float *xg = x + 32 * g;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xg[l] * xg[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[32 * g + l] = av_x + fabsf(xg[l]);
    }
    fit_affine_groups(8, 32, nmax, x, w, L, scales, mins, rmin, 0.1f, nstep, false);
    for (int g = 0; g < 8; g++) {
        if (scales[g] > max_scale) max_scale = scales[g];
        if (mins[g] > max_min) max_min = mins[g];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min   = max_min > 0 ? 63.f / max_min : 0.f;
    for (int g = 0; g < 8; g++) {
        uint8_t ls = (uint8_t)round_even(inv_scale * scales[g]);
        uint8_t lm = (uint8_t)round_even(inv_min * mins[g]);
        k4_put_scale_min(g, scales12, NJ_MIN(63, ls), NJ_MIN(63, lm));
    }
    *d_out = F2H(max_scale / 63.f);
    *dmin_out = F2H(max_min / 63.f);
    uint8_t sc[8], mn[8];
    quant_k4_scales(scales12, sc, mn);
    for (int g = 0; g < 8; g++) {
        const float d = H2F(*d_out) * sc[g];
        if (!d) continue;
        const float dm = H2F(*dmin_out) * mn[g];
        for (int l = 0; l < 32; l++)
            L[32 * g + l] = (uint8_t)NJ_MAX(0, NJ_MIN(nmax, round_even((x[32 * g + l] + dm) / d)));
    }
}

static void q4_K_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_K *b = vy;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(b[i].scales, 0, 12);
        k45_quantize(x, 15, -1.f, 20, b[i].scales, &b[i].d, &b[i].dmin, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + l + 32] << 4));
    }
}

/* One block of the Q4_K/Q5_K dots, shared by both: q[256] are the block's
 * unsigned levels, scales12 / d / dmin its scale fields.  Adds d * the
 * integer dot into lanes[8] and subtracts dmin * the mins' dot from *sum. */
static void k45_dot_block(const uint8_t *restrict scales12, nj_half d16, nj_half dmin16,
                          const uint8_t *restrict q, const block_q8_K *restrict y,
                          float lanes[8], float *restrict sum) {
    uint8_t sc[8], mn[8];
    quant_k4_scales(scales12, sc, mn);
    int summ = 0;
    for (int j = 0; j < 16; j++) summ += y->bsums[j] * mn[j / 2];
    int32_t acc[8] = {0};
    for (int k = 0; k < QK_K; k++) acc[k % 8] += sc[k / 32] * (q[k] * y->qs[k]);
    const float d = H2F(d16) * y->d;
    for (int l = 0; l < 8; l++) lanes[l] += d * acc[l];
    const float dmin = H2F(dmin16) * y->d;
    *sum -= dmin * summ;
}

static void q4_K_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    uint8_t q[QK_K];
    float lanes[8] = {0}, sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                q[64 * c + l]      = x[i].qs[32 * c + l] & 0x0f;
                q[64 * c + 32 + l] = x[i].qs[32 * c + l] >> 4;
            }
        k45_dot_block(x[i].scales, x[i].d, x[i].dmin, q, &y[i], lanes, &sum);
    }
    for (int l = 0; l < 8; l++) sum += lanes[l];
    *s = sum;
}

/* Q5_K:  d | dmin | scales[12] | qh[32] | qs[128]     as Q4_K plus a 5th bit:
 *   value k = 64*c + 32*hi + l has its 5th bit in bit (2*c + hi) of qh[l].
 *   x = d * sc[g] * q - dmin * mn[g],  q in 0..31 */
static void q5_K_decode(const block_q5_K *restrict b, uint8_t *restrict q) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l]      = (uint8_t)((b->qs[32 * c + l] & 0x0f) | (((b->qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = (uint8_t)((b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
        }
}
static void q5_K_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_K *b = vx;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = H2F(b[i].d), dmin = H2F(b[i].dmin);
        q5_K_decode(&b[i], q);
        uint8_t sc[8], mn[8];
        quant_k4_scales(b[i].scales, sc, mn);
        for (int g = 0; g < 8; g++) {
            const float dl = d * sc[g], ml = dmin * mn[g];
            for (int l = 0; l < 32; l++) y[32 * g + l] = dl * q[32 * g + l] - ml;
        }
    }
}
static void q5_K_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_K *b = vy;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(b[i].scales, 0, 12);
        k45_quantize(x, 31, -0.5f, 15, b[i].scales, &b[i].d, &b[i].dmin, L);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                if (lo > 15) { lo -= 16; b[i].qh[l] |= (uint8_t)(1u << (2 * c)); }
                if (hi > 15) { hi -= 16; b[i].qh[l] |= (uint8_t)(2u << (2 * c)); }
                b[i].qs[32 * c + l] = (uint8_t)(lo | (hi << 4));
            }
    }
}
static void q5_K_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    uint8_t q[QK_K];
    float lanes[8] = {0}, sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        q5_K_decode(&x[i], q);
        k45_dot_block(x[i].scales, x[i].d, x[i].dmin, q, &y[i], lanes, &sum);
    }
    for (int l = 0; l < 8; l++) sum += lanes[l];
    *s = sum;
}

/* ------------------------------------------------------------------ */
/* Q6_K                                                                 */
/* ------------------------------------------------------------------ */

/* Q6_K:  ql[128] | qh[64] | scales[16]: i8 | d:f16    256 values, 16 groups of 16
 *   In each 128-value half h (ql += 64h, qh += 32h), for l in 0..31:
 *     value 128h +  0 + l: low4 = ql[l]    & 15, high2 = qh[l] bits 0-1
 *     value 128h + 32 + l: low4 = ql[l+32] & 15, high2 = qh[l] bits 2-3
 *     value 128h + 64 + l: low4 = ql[l]    >> 4, high2 = qh[l] bits 4-5
 *     value 128h + 96 + l: low4 = ql[l+32] >> 4, high2 = qh[l] bits 6-7
 *   q = (low4 | high2 << 4) - 32;   x = d * scales[k/16] * q */
static void q6_K_decode(const block_q6_K *restrict b, int8_t *restrict q) {
    const uint8_t *ql = b->ql, *qh = b->qh;
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, q += 128)
        for (int l = 0; l < 32; l++) {
            q[l]      = (int8_t)(((ql[l] & 0x0f)      | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4)        | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4)   | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
}
static void q6_K_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q6_K *b = vx;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = H2F(b[i].d);
        q6_K_decode(&b[i], q);
        for (int k = 0; k < QK_K; k++) y[k] = d * b[i].scales[k / 16] * q[k];
    }
}
static void q6_K_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q6_K *b = vy;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_abs = 0;
        fit_symmetric_groups(QK_K / 16, 16, 32, x, L, scales);
        for (int g = 0; g < QK_K / 16; g++)
            if (fabsf(scales[g]) > max_abs) { max_abs = fabsf(scales[g]); max_scale = scales[g]; }
        if (max_abs < GROUP_EPS) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        b[i].d = F2H(1 / iscale);
        for (int g = 0; g < QK_K / 16; g++) b[i].scales[g] = (int8_t)NJ_MIN(127, round_even(iscale * scales[g]));
        for (int g = 0; g < QK_K / 16; g++) {
            const float d = H2F(b[i].d) * b[i].scales[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (int8_t)(NJ_MAX(-32, NJ_MIN(31, round_even(x[16 * g + l] / d))) + 32);
        }
        uint8_t *ql = b[i].ql, *qh = b[i].qh;
        for (int h = 0; h < QK_K; h += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const uint8_t v0 = (uint8_t)L[h + l], v1 = (uint8_t)L[h + l + 32];
                const uint8_t v2 = (uint8_t)L[h + l + 64], v3 = (uint8_t)L[h + l + 96];
                ql[l]      = (uint8_t)((v0 & 0x0f) | ((v2 & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((v1 & 0x0f) | ((v3 & 0x0f) << 4));
                qh[l] = (uint8_t)((v0 >> 4) | ((v1 >> 4) << 2) | ((v2 >> 4) << 4) | ((v3 >> 4) << 6));
            }
    }
}
static void q6_K_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    int8_t q[QK_K];
    float lanes[8] = {0};
    for (int i = 0; i < n / QK_K; i++) {
        q6_K_decode(&x[i], q);
        int32_t acc[8] = {0};
        for (int k = 0; k < QK_K; k++) acc[k % 8] += x[i].scales[k / 16] * (q[k] * y[i].qs[k]);
        const float d = H2F(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++) lanes[l] += d * acc[l];
    }
    float sum = 0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    *s = sum;
}

/* ------------------------------------------------------------------ */
/* Q8_K (activations for the K-quants)                                  */
/* ------------------------------------------------------------------ */

/* Q8_K:  d:f32 | qs[256]: i8 | bsums[16]: i16 = sum of qs[16g .. 16g+15]
 *   x = d * q.  See the top of the file for the rounding. */
static void q8_K_to_float(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_K *b = vx;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++) *y++ = b[i].d * b[i].qs[j];
}
static void q8_K_from_float(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *b = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0, xmax = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); xmax = x[j]; }
        if (!amax) {
            /* ggml leaves bsums untouched here; we zero them (they are 0) */
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.f / xmax;
        for (int j = 0; j < QK_K; j++) b[i].qs[j] = (int8_t)NJ_MIN(127, round_even(iscale * x[j]));
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += b[i].qs[16 * g + l];
            b[i].bsums[g] = (int16_t)sum;
        }
        b[i].d = 1 / iscale;
    }
}
/* Q8_K . Q8_K is not used by any weight type; kept for completeness. */
static void q8_K_vec_dot(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_K *x = vx, *y = vy;
    float sum = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int si = 0;
        for (int j = 0; j < QK_K; j++) si += x[i].qs[j] * y[i].qs[j];
        sum += (x[i].d * y[i].d) * si;
    }
    *s = sum;
}

/* ------------------------------------------------------------------ */
/* trait table                                                          */
/* ------------------------------------------------------------------ */

#define FNS(t) .to_float = t##_to_float, .from_float = t##_from_float, .vec_dot = t##_vec_dot

static const nj_type_traits ref_traits[NJ_TYPE_COUNT] = {
    [NJ_F32]  = {.name = "F32",  .blck = 1,    .size = 4,   .vec_dot_type = NJ_F32,  FNS(f32)},
    [NJ_F16]  = {.name = "F16",  .blck = 1,    .size = 2,   .vec_dot_type = NJ_F16,  FNS(f16)},
    [NJ_BF16] = {.name = "BF16", .blck = 1,    .size = 2,   .vec_dot_type = NJ_BF16, FNS(bf16)},
    [NJ_Q4_0] = {.name = "Q4_0", .blck = 32,   .size = 18,  .quantized = true, .vec_dot_type = NJ_Q8_0, FNS(q4_0)},
    [NJ_Q4_1] = {.name = "Q4_1", .blck = 32,   .size = 20,  .quantized = true, .vec_dot_type = NJ_Q8_1, FNS(q4_1)},
    [NJ_Q5_0] = {.name = "Q5_0", .blck = 32,   .size = 22,  .quantized = true, .vec_dot_type = NJ_Q8_0, FNS(q5_0)},
    [NJ_Q5_1] = {.name = "Q5_1", .blck = 32,   .size = 24,  .quantized = true, .vec_dot_type = NJ_Q8_1, FNS(q5_1)},
    [NJ_Q8_0] = {.name = "Q8_0", .blck = 32,   .size = 34,  .quantized = true, .vec_dot_type = NJ_Q8_0, FNS(q8_0)},
    [NJ_Q8_1] = {.name = "Q8_1", .blck = 32,   .size = 36,  .quantized = true, .vec_dot_type = NJ_Q8_1, FNS(q8_1)},
    [NJ_Q2_K] = {.name = "Q2_K", .blck = QK_K, .size = 84,  .quantized = true, .vec_dot_type = NJ_Q8_K, FNS(q2_K)},
    [NJ_Q3_K] = {.name = "Q3_K", .blck = QK_K, .size = 110, .quantized = true, .vec_dot_type = NJ_Q8_K, FNS(q3_K)},
    [NJ_Q4_K] = {.name = "Q4_K", .blck = QK_K, .size = 144, .quantized = true, .vec_dot_type = NJ_Q8_K, FNS(q4_K)},
    [NJ_Q5_K] = {.name = "Q5_K", .blck = QK_K, .size = 176, .quantized = true, .vec_dot_type = NJ_Q8_K, FNS(q5_K)},
    [NJ_Q6_K] = {.name = "Q6_K", .blck = QK_K, .size = 210, .quantized = true, .vec_dot_type = NJ_Q8_K, FNS(q6_K)},
    [NJ_Q8_K] = {.name = "Q8_K", .blck = QK_K, .size = 292, .quantized = true, .vec_dot_type = NJ_Q8_K, FNS(q8_K)},
};

const nj_type_traits *quant_traits_ref(int type) {
    if (type < 0 || type >= NJ_TYPE_COUNT || !ref_traits[type].name) return NULL;
    return &ref_traits[type];
}

nj_from_float_fn quant_file_quantizer(int type) {
    if (type == NJ_Q8_0) return q8_0_from_float_file;
    if (type == NJ_Q8_1) return q8_1_from_float_file;
    const nj_type_traits *t = quant_traits_ref(type);
    return t ? t->from_float : NULL;
}

const char *quant_type_name(int type) {
    const nj_type_traits *t = quant_traits_ref(type);
    return t ? t->name : "?";
}

size_t quant_row_size(int type, int64_t n) {
    const nj_type_traits *t = quant_traits_ref(type);
    if (!t || n < 0 || n % t->blck) return 0;
    return (size_t)(n / t->blck) * t->size;
}
