/*
 * attn_ops — the inner loops of attention and SwiGLU, with ggml's rounding.
 *
 * Purpose.  session.c reproduces llama.cpp's CPU numerics bit for bit (see
 * docs/numerics.md); several of its inner loops are chains of fused
 * multiply-adds.  Portable C has no fused multiply-add without compiling
 * for an FMA-capable CPU, and emulating it in double is several times
 * slower, so this module builds each loop twice from one body
 * (attn_ops_body.h): a portable version (fma in double: exact product,
 * rounded sum) and, on x86-64, a version compiled for AVX2+FMA+F16C through
 * the compiler's target attribute (the loops have fixed 16/64 trip counts
 * so the compiler vectorizes them; only the f16 conversions, which it
 * cannot infer from f16_round's bit arithmetic, use F16C intrinsics).  attn_ops_get() picks one
 * once from the CPU features.  Both produce the same bits except when the
 * double-emulated sum lands exactly on a float tie (about 1 in 2^29).
 *
 * Threads: the table is immutable after the first call; any thread may use
 * it.  Functions work on caller memory only.
 */
#ifndef NJ_ATTN_OPS_H
#define NJ_ATTN_OPS_H

#include <stdint.h>
#include <string.h>

#include "quant.h"

#define ATTN_TILE 64   /* ggml's flash-attention tile (queries and keys) */
#define ATTN_KQ_ROWS 4 /* query rows per kq_tile call, at most */

typedef struct attn_ops {
    const char *name;
    /* kq[r*64 + j] for r < nq (<= ATTN_KQ_ROWS), j < 64: fused
     * multiply-add chain over d < hk of q[r][d] * kt[d*64 + j] starting
     * from 0 (ggml's tile GEMM). */
    void  (*kq_tile)(int hk, int nq, const float *const *q, const float *kt, float *kq);
    /* acc[d] for d < hv: fused chains over k < nk of p[k] * v[k*hv + d]
     * (keys with p[k] == 0 leave acc unchanged). */
    void  (*pv_tile)(int hv, int nk, const float *p, const float *v, float *acc);
    /* x[j] = exp_ggml(x[j] - max) for j < 16; returns their 16-lane sum in
     * the order of a 512-bit reduce-add. */
    float (*softmax16)(float *x, float max);
    /* acc[d] = f16(fma(v[d], s, acc[d])) for d < hv; v (f16 values as
     * floats) and acc (likewise) model ggml's f16 V accumulator. */
    void  (*v_mad_f16)(int hv, const float *v, float s, float *acc);
    /* g[i] = gelu(g[i]) * u[i] as ggml's GeGLU: 0 at or below -10, g at or
     * above 10, else tab[f16 bits of g] (tab: gelu on every f16 value). */
    void  (*geglu)(int n, float *g, const float *u, const float *tab);
    /* f[i] = the f16 value h[i], for i < n. */
    void  (*widen_f16)(int n, const uint16_t *h, float *f);
    /* x.y for f16 values held as floats, in the order of ggml's AVX-512
     * f16 dot product (4 x 16 lanes, steps of 64, tail in double). */
    float (*dot_f16)(int n, const float *x, const float *y);
    /* g[i] = silu(g[i]) * u[i] over a row of n: 16-wide with ggml's
     * approximate exp, the tail with expf. */
    void  (*swiglu)(int n, float *g, const float *u);
    /* The vec attention path over keys [a, b) for gq query heads sharing
     * one kv head (session.c's attn_vec_range): K, V f16 rows of stride
     * k_stride, v_stride; qh (gq, hk) queries rounded to f16; running M, S
     * (gq) and f16 accumulators vkq (gq, hv) updated in place; kf (hk), vf
     * (hv) scratch. */
    void  (*vec_range)(int hk, int hv, int gq, const uint16_t *K, size_t k_stride, const uint16_t *V,
                       size_t v_stride, const float *qh, int a, int b, float scale, float *M,
                       float *S, float *vkq, float *kf, float *vf);
    /* The same path over a quantized cache (q8_0 / q4_0 rows), as ggml's
     * one_chunk kernel runs it for a K type other than f16: per key the
     * score kdot(K row, qq row of head g) * scale, with the query heads
     * pre-quantized to kdot's activation type (qq, row stride qq_stride
     * bytes); ggml's online softmax (libm expf); an f32 accumulator
     * rescaled by a plain multiply and updated by fused multiply-adds of
     * the V row widened with vdeq (once per key into vf (hv)).  K and V
     * are byte pointers to the head's first row, strides in bytes. */
    void  (*vec_range_q)(int hk, int hv, int gq, nj_vec_dot_fn kdot, nj_to_float_fn vdeq,
                         const uint8_t *K, size_t k_stride, const uint8_t *V, size_t v_stride,
                         const void *qq, size_t qq_stride, int a, int b, float scale, float *M,
                         float *S, float *vkq, float *vf);
} attn_ops;

const attn_ops *attn_ops_get(void);
/* The portable table (tests compare the two). */
const attn_ops *attn_ops_portable(void);

/* f16 bits -> f32 (table filled by attn_ops_get / attn_ops_portable). */
extern float attn_f16_tab[1 << 16];

/* a*b + c with one rounding, portably: the float product is exact in
 * double, the sum is rounded to double then float. */
static inline float fma_d(float a, float b, float c) { return (float)((double)a * b + c); }

/* Round an f32 to the nearest f16 value (ties to even), kept as f32, as
 * storing into ggml's f16 accumulator does.  Written with selects rather
 * than branches so loops over it vectorize. */
static inline float f16_round(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    const uint32_t a = b & 0x7fffffffu;
    /* normal f16 range: round the mantissa to 10 bits (carry may bump the
     * exponent, which is right) */
    const uint32_t nrm = (b + 0x0fffu + ((b >> 13) & 1u)) & ~0x1fffu;
    /* |x| >= 65520 rounds to infinity; NaN stays */
    const uint32_t inf = (b & 0x80000000u) | 0x7f800000u;
    /* f16 subnormals are multiples of 2^-24, the ulp of 0.75 */
    const float sub = (x + 0.75f) - 0.75f;
    uint32_t sb;
    memcpy(&sb, &sub, 4);
    const uint32_t out = a < 0x38800000u ? sb : a < 0x477ff000u ? nrm : a > 0x7f800000u ? b : inf;
    float r;
    memcpy(&r, &out, 4);
    return r;
}

/* Horizontal sum of 16 lanes in the order of a 512-bit reduce-add:
 * halves, quarters, then pairs. */
static inline float hsum16(const float *a) {
    float b[8], c[4];
    for (int i = 0; i < 8; i++) b[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++) c[i] = b[i + 4] + b[i];
    return (c[0] + c[2]) + (c[1] + c[3]);
}

#endif
