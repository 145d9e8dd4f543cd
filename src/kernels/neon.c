/*
 * neon — ARMv8.2 NEON + dot-product kernels for every weight type but
 * Q2_K, which keeps the scalar level's.
 *
 * Same structure as avx2.c: one tile function per weight type, one weight
 * row against nt = 1..4 activation rows, weights unpacked once per block
 * and dotted with each token (vec_dot is nt = 1, gemm walks tokens in
 * groups of four).  Decode (nt = 1) takes several rows per tile where the
 * order allows it: four for the 32-element formats (dec4_b32, the rows'
 * scales as one vector), eight for Q4_0's repacked order (four rows'
 * chains are the lanes of one vector).  Prefill goes through the packed
 * 16-token GEMM (gemm16, below) for every quantized type but Q2_K.
 * sdot (vdotq_s32) multiplies signed bytes, so weights
 * are unpacked to their signed values (q - 8, q - 16, ...) and need no
 * activation-sum corrections, except the K-quant mins, which the format
 * defines through the activation's bsums, and Q6_K's -32 (below).
 *
 * Float order is the canonical one of scalar.c: exact int32 block sums,
 * then fused multiply-adds per token (32-element formats, Q6_K/Q5_K/Q3_K
 * and plain Q4_K: eight lane chains in two float32x4, one fma per 4-element
 * lane sum; repacked Q4_K and Q4_0: one chain per row; float types: sixteen
 * lanes in four float32x4 accumulators with the fixed reduction), so
 * results are bit-identical to the scalar level.  Q6_K is summed with q in
 * 0..63 and its -32 corrected per lane through the bsums, as llama.cpp's
 * x86 code does (the lane split must match).
 *
 * Activation quantizers follow llama.cpp's ARM path (scalar.c's *_arm
 * variants): d = amax/127, q = round-half-even(x * (1/d)).
 */
#include "kern_isa.h"

#include <arm_neon.h>
#include <math.h>

/* fp16 -> fp32 by the hardware (fcvt): exact for every half value, so the
 * same float as kern_fp16_to_fp32, without its branches */
KINLINE float h2f(nj_half h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

/* Prefetch the weight stream PF_AHEAD bytes ahead (see kern_isa.h: decode
 * must overlap DRAM reads with compute). */
KINLINE void prefetch_w(const void *p) { __builtin_prefetch((const char *)p + PF_AHEAD, 0, 3); }

/* 32 int8 products of a block as int32x4 partial sums. */
KINLINE int32x4_t dot32(int8x16_t w0, int8x16_t w1, const int8_t *x) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(x)), w1, vld1q_s8(x + 16));
}

/* ggml's hsum_float_8 over lanes lo = a0..a3, hi = a4..a7:
 * ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7)). */
KINLINE float hsum8_f32(float32x4_t lo, float32x4_t hi) {
    const float32x4_t t = vaddq_f32(lo, hi);
    const float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));
    return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}

/* Q5 high bits: byte j of *lo is 0xff where bit j of qh is set, byte j of
 * *hi where bit 16 + j is.  One table lookup spreads qh's bytes over the
 * lanes (byte j / 8, resp. 2 + j / 8) and a test picks bit j % 8: four
 * instructions, where building the vectors from scalars takes dozens. */
KINLINE void bits32(uint32_t qh, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t sel[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    static const uint8_t ilo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t ihi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    const uint8x16_t v = vreinterpretq_u8_u32(vdupq_n_u32(qh)), m = vld1q_u8(sel);
    *lo = vtstq_u8(vqtbl1q_u8(v, vld1q_u8(ilo)), m);
    *hi = vtstq_u8(vqtbl1q_u8(v, vld1q_u8(ihi)), m);
}

/* ---- 32-element formats ------------------------------------------------
 * The canonical order (scalar.c) keeps 8 lane chains per token, lane m of
 * a block being its elements 4m..4m+3: an sdot over the block's first 16
 * bytes leaves lanes 0..3 in its int32 lanes, one over the next 16 bytes
 * lanes 4..7, and each goes to float and into its accumulator (two
 * float32x4 per token) with one fma by d = dw * dx.  Q4_1/Q5_1 add the
 * scalar chain c = fma(m, s_x, c).  The chains are serial per block, so
 * decode (one token) runs two rows at a time. */

/* Weights of block b as two signed int8x16 (elements 0..15, 16..31). */
KINLINE void b32_unpack(const void *vb, const int kind, int8x16_t *w0, int8x16_t *w1) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    if (kind == B32_Q8_0) {
        const block_q8_0 *b = vb;
        *w0 = vld1q_s8(b->qs);
        *w1 = vld1q_s8(b->qs + 16);
        return;
    }
    const uint8_t *qs;
    uint32_t qh = 0;
    switch (kind) {
    case B32_Q4_0: qs = ((const block_q4_0 *)vb)->qs; break;
    case B32_Q4_1: qs = ((const block_q4_1 *)vb)->qs; break;
    case B32_Q5_0: qs = ((const block_q5_0 *)vb)->qs; memcpy(&qh, ((const block_q5_0 *)vb)->qh, 4); break;
    default:       qs = ((const block_q5_1 *)vb)->qs; memcpy(&qh, ((const block_q5_1 *)vb)->qh, 4); break;
    }
    const uint8x16_t raw = vld1q_u8(qs);
    uint8x16_t lo = vandq_u8(raw, m4), hi = vshrq_n_u8(raw, 4);
    if (kind == B32_Q5_0 || kind == B32_Q5_1) {
        const uint8x16_t h16 = vdupq_n_u8(16);
        uint8x16_t blo, bhi;
        bits32(qh, &blo, &bhi);
        lo = vorrq_u8(lo, vandq_u8(blo, h16));
        hi = vorrq_u8(hi, vandq_u8(bhi, h16));
    }
    const int off = kind == B32_Q4_0 ? 8 : kind == B32_Q5_0 ? 16 : 0;
    *w0 = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8((int8_t)off));
    *w1 = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8((int8_t)off));
}

/* d (and m) of block b, for the 32-element weight formats. */
KINLINE float b32_d(const void *vb) { nj_half h; memcpy(&h, vb, 2); return h2f(h); }
KINLINE float b32_m(const void *vb) { nj_half h; memcpy(&h, (const char *)vb + 2, 2); return h2f(h); }

#define B32_RMAX 2

/* R rows (stride ws) x nt tokens (stride xs): y[t*ldy + r]. */
KINLINE void tile_b32(int n, const void *restrict vw, size_t ws, const int R, const void *restrict vx,
                      size_t xs, const int nt, float *restrict y, size_t ldy, const int kind) {
    const int has_m = kind == B32_Q4_1 || kind == B32_Q5_1;
    const size_t bs = b32_size(kind), xbs = has_m ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const char *w[B32_RMAX], *x[NT_MAX];
    float32x4_t lo[B32_RMAX][NT_MAX], hi[B32_RMAX][NT_MAX];
    float c[B32_RMAX][NT_MAX];
    UNROLL
    for (int r = 0; r < R; r++) {
        w[r] = (const char *)vw + (size_t)r * ws;
        UNROLL
        for (int t = 0; t < nt; t++) { lo[r][t] = hi[r][t] = vdupq_n_f32(0.0f); c[r][t] = 0.0f; }
    }
    UNROLL
    for (int t = 0; t < nt; t++) x[t] = (const char *)vx + (size_t)t * xs;
    const int nb = n / 32;
    for (int i = 0; i < nb; i++) {
        int8x16_t w0[B32_RMAX], w1[B32_RMAX];
        float dw[B32_RMAX], mw[B32_RMAX];
        if ((i & 3) == 0)   /* one test per block, not per row */
            UNROLL
            for (int r = 0; r < R; r++) prefetch_w(w[r] + (size_t)i * bs);
        UNROLL
        for (int r = 0; r < R; r++) {
            const char *b = w[r] + (size_t)i * bs;
            b32_unpack(b, kind, &w0[r], &w1[r]);
            dw[r] = b32_d(b);
            mw[r] = has_m ? b32_m(b) : 0.0f;
        }
        UNROLL
        for (int t = 0; t < nt; t++) {
            const char *xb = x[t] + (size_t)i * xbs;
            const int8_t *qs = (const int8_t *)(xb + (has_m ? 4 : 2));
            const int8x16_t x0 = vld1q_s8(qs), x1 = vld1q_s8(qs + 16);
            const float dx = b32_d(xb), sx = has_m ? b32_m(xb) : 0.0f;
            UNROLL
            for (int r = 0; r < R; r++) {
                const float d = dw[r] * dx;
                lo[r][t] = vfmaq_n_f32(lo[r][t], vcvtq_f32_s32(vdotq_s32(vdupq_n_s32(0), w0[r], x0)), d);
                hi[r][t] = vfmaq_n_f32(hi[r][t], vcvtq_f32_s32(vdotq_s32(vdupq_n_s32(0), w1[r], x1)), d);
                if (has_m) c[r][t] = fmaf(mw[r], sx, c[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < nt; t++) {
            /* hsum8: (a_k + a_{k+4}), then ((t0 + t2) + (t1 + t3)) */
            const float32x4_t tk = vaddq_f32(lo[r][t], hi[r][t]);
            const float32x2_t u = vadd_f32(vget_low_f32(tk), vget_high_f32(tk));
            const float v = vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
            y[(size_t)t * ldy + r] = has_m ? v + c[r][t] : v;
        }
}

/* vld1_lane with a lane that is constant only after unrolling (clang
 * wants a literal) */
KINLINE uint16x4_t ld_lane_u16(const uint16_t *p, uint16x4_t v, const int lane) {
    switch (lane) {
    case 0:  return vld1_lane_u16(p, v, 0);
    case 1:  return vld1_lane_u16(p, v, 1);
    case 2:  return vld1_lane_u16(p, v, 2);
    default: return vld1_lane_u16(p, v, 3);
    }
}

/* acc + a * lane `lane` of v (fmla by element), the lane a literal after
 * unrolling */
KINLINE float32x4_t fma_lane(float32x4_t acc, float32x4_t a, float32x4_t v, const int lane) {
    switch (lane) {
    case 0:  return vfmaq_laneq_f32(acc, a, v, 0);
    case 1:  return vfmaq_laneq_f32(acc, a, v, 1);
    case 2:  return vfmaq_laneq_f32(acc, a, v, 2);
    default: return vfmaq_laneq_f32(acc, a, v, 3);
    }
}

/* Decode (one token) over four rows: tile_b32's chains, with the four rows'
 * d = dw * dx formed as one vector (the fp16 scales gathered by lane, one
 * convert and one multiply for the four) and taken by lane in the fmas;
 * Q4_1/Q5_1's c chains are the lanes of one vector.  Same floats as
 * tile_b32, fewer instructions per block. */
KINLINE void dec4_b32(int n, const void *restrict vw, size_t ws, const void *restrict vx,
                      float *restrict y, const int kind) {
    const int has_m = kind == B32_Q4_1 || kind == B32_Q5_1;
    const size_t bs = b32_size(kind), xbs = has_m ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const char *w[4];
    float32x4_t lo[4], hi[4], c = vdupq_n_f32(0.0f);
    UNROLL
    for (int r = 0; r < 4; r++) { w[r] = (const char *)vw + (size_t)r * ws; lo[r] = hi[r] = vdupq_n_f32(0.0f); }
    const int nb = n / 32;
    for (int i = 0; i < nb; i++) {
        if ((i & 3) == 0)
            UNROLL
            for (int r = 0; r < 4; r++) prefetch_w(w[r] + (size_t)i * bs);
        const char *xb = (const char *)vx + (size_t)i * xbs;
        const int8_t *qs = (const int8_t *)(xb + (has_m ? 4 : 2));
        const int8x16_t x0 = vld1q_s8(qs), x1 = vld1q_s8(qs + 16);
        uint16x4_t dh = vdup_n_u16(0), mh = vdup_n_u16(0);
        UNROLL
        for (int r = 0; r < 4; r++) {
            const uint16_t *h = (const uint16_t *)(const void *)(w[r] + (size_t)i * bs);
            dh = ld_lane_u16(h, dh, r);
            if (has_m) mh = ld_lane_u16(h + 1, mh, r);
        }
        const float32x4_t d = vmulq_n_f32(vcvt_f32_f16(vreinterpret_f16_u16(dh)), b32_d(xb));
        if (has_m) c = vfmaq_n_f32(c, vcvt_f32_f16(vreinterpret_f16_u16(mh)), b32_m(xb));
        UNROLL
        for (int r = 0; r < 4; r++) {
            int8x16_t w0, w1;
            b32_unpack(w[r] + (size_t)i * bs, kind, &w0, &w1);
            lo[r] = fma_lane(lo[r], vcvtq_f32_s32(vdotq_s32(vdupq_n_s32(0), w0, x0)), d, r);
            hi[r] = fma_lane(hi[r], vcvtq_f32_s32(vdotq_s32(vdupq_n_s32(0), w1, x1)), d, r);
        }
    }
    float cm[4];
    vst1q_f32(cm, c);
    UNROLL
    for (int r = 0; r < 4; r++) {
        const float v = hsum8_f32(lo[r], hi[r]);
        y[r] = has_m ? v + cm[r] : v;
    }
}

/* Tokens in groups of four (outer), rows inner; one or two leftover tokens
 * take rows in pairs (independent chains to hide the fma latency). */
#define DEFINE_B32(name, KIND)                                                          \
    static void vec_dot_##name(int n, float *restrict s, const void *restrict w,       \
                               const void *restrict x) {                               \
        tile_b32(n, w, 0, 1, x, 0, 1, s, 0, KIND);                                      \
    }                                                                                   \
    static void gemm_##name(int n, const void *restrict w, size_t ws, int nr,          \
                            const void *restrict x, size_t xs, int nt,                 \
                            float *restrict y, size_t ldy) {                           \
        const char *wb = w, *xb = x;                                                    \
        int t = 0;                                                                      \
        for (; t + NT_MAX <= nt; t += NT_MAX)                                           \
            for (int r = 0; r < nr; r++)                                                \
                tile_b32(n, wb + (size_t)r * ws, ws, 1, xb + (size_t)t * xs, xs, NT_MAX, \
                         y + (size_t)t * ldy + r, ldy, KIND);                           \
        const int rem = nt - t;                                                         \
        if (!rem) return;                                                               \
        const char *xt = xb + (size_t)t * xs;                                           \
        float *yt = y + (size_t)t * ldy;                                                \
        int r = 0;                                                                      \
        if (rem == 3) {                                                                 \
            for (; r < nr; r++) tile_b32(n, wb + (size_t)r * ws, ws, 1, xt, xs, 3, yt + r, ldy, KIND); \
        } else if (rem == 2) {                                                          \
            for (; r + 2 <= nr; r += 2) tile_b32(n, wb + (size_t)r * ws, ws, 2, xt, xs, 2, yt + r, ldy, KIND); \
            for (; r < nr; r++) tile_b32(n, wb + (size_t)r * ws, ws, 1, xt, xs, 2, yt + r, ldy, KIND); \
        } else {                                                                        \
            for (; r + 4 <= nr; r += 4) dec4_b32(n, wb + (size_t)r * ws, ws, xt, yt + r, KIND); \
            for (; r + 2 <= nr; r += 2) tile_b32(n, wb + (size_t)r * ws, ws, 2, xt, xs, 1, yt + r, ldy, KIND); \
            for (; r < nr; r++) tile_b32(n, wb + (size_t)r * ws, ws, 1, xt, xs, 1, yt + r, ldy, KIND); \
        }                                                                               \
    }

DEFINE_B32(q8_0, B32_Q8_0)
DEFINE_B32(q4_0, B32_Q4_0)
DEFINE_B32(q5_0, B32_Q5_0)
DEFINE_B32(q4_1, B32_Q4_1)
DEFINE_B32(q5_1, B32_Q5_1)

/* Q4_0, repacked layout (llama.cpp's q4_0 repacked tensors; scalar.c):
 * one chain per row and token over the blocks, acc = fma(I_i, dw*dx, acc)
 * with I_i the block's exact integer sum, the same for single-token and
 * batched products.  The chains of four rows are the four lanes of one
 * float32x4: each row's two sdots leave four partial sums, and two rounds
 * of pairwise adds give the four rows' I_i in one vector, so a block costs
 * one convert and one fma per four rows.  R = 8 (two vectors) or 4 rows,
 * nt = 1..4 tokens. */
KINLINE void tile_q4_0_r(int n, const void *restrict vw, size_t ws, const int R, const void *restrict vx,
                         size_t xs, const int nt, float *restrict y, size_t ldy) {
    const int G = R / 4;
    const char *w[8], *x[NT_MAX];
    float32x4_t acc[2][NT_MAX];
    UNROLL
    for (int r = 0; r < R; r++) w[r] = (const char *)vw + (size_t)r * ws;
    UNROLL
    for (int t = 0; t < nt; t++) x[t] = (const char *)vx + (size_t)t * xs;
    UNROLL
    for (int g = 0; g < G; g++)
        UNROLL
        for (int t = 0; t < nt; t++) acc[g][t] = vdupq_n_f32(0.0f);
    const int nb = n / 32;
    for (int i = 0; i < nb; i++) {
        int8x16_t xq[NT_MAX][2];
        float dx[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) {
            const block_q8_0 *xb = (const block_q8_0 *)x[t] + i;
            xq[t][0] = vld1q_s8(xb->qs);
            xq[t][1] = vld1q_s8(xb->qs + 16);
            dx[t] = h2f(xb->d);
        }
        if ((i & 3) == 0)   /* one test per block, not per row */
            UNROLL
            for (int r = 0; r < R; r++) prefetch_w((const block_q4_0 *)w[r] + i);
        UNROLL
        for (int g = 0; g < G; g++) {
            int8x16_t w0[4], w1[4];
            uint16x4_t dh = vdup_n_u16(0);
            UNROLL
            for (int r = 0; r < 4; r++) {
                /* nibble ^ 8, moved to the high half of a byte, is (q - 8) * 16
                 * as a signed byte: no subtraction, and the sums come out
                 * times 16 (undone exactly by the fixed-point convert) */
                const block_q4_0 *b = (const block_q4_0 *)w[4 * g + r] + i;
                const uint8x16_t v = veorq_u8(vld1q_u8(b->qs), vdupq_n_u8(0x88));
                w0[r] = vreinterpretq_s8_u8(vshlq_n_u8(v, 4));
                w1[r] = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0xf0)));
                dh = ld_lane_u16(&b->d, dh, r);
            }
            const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(dh));
            UNROLL
            for (int t = 0; t < nt; t++) {
                int32x4_t p[4];
                UNROLL
                for (int r = 0; r < 4; r++)
                    p[r] = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0[r], xq[t][0]), w1[r], xq[t][1]);
                const int32x4_t I16 = vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
                /* I16 / 16 = I exactly, then one rounding to float: (float)I */
                acc[g][t] = vfmaq_f32(acc[g][t], vcvtq_n_f32_s32(I16, 4), vmulq_n_f32(dw, dx[t]));
            }
        }
    }
    UNROLL
    for (int g = 0; g < G; g++)
        UNROLL
        for (int t = 0; t < nt; t++) vst1q_f32(y + (size_t)t * ldy + 4 * g, acc[g][t]);
}

/* one row, one token: the same chain with the block sum reduced in place */
static void vec_dot_q4_0_r(int n, float *restrict s, const void *restrict vw, const void *restrict vx) {
    const block_q4_0 *w = vw;
    const block_q8_0 *x = vx;
    float acc = 0.0f;
    for (int i = 0; i < n / 32; i++) {
        int8x16_t w0, w1;
        b32_unpack(&w[i], B32_Q4_0, &w0, &w1);
        const int I = vaddvq_s32(dot32(w0, w1, x[i].qs));
        acc = fmaf((float)I, h2f(w[i].d) * h2f(x[i].d), acc);
    }
    *s = acc;
}

/* Tokens in groups of up to four, rows in eights, then a four, then one
 * at a time (y is written row-contiguously per token, so a 4-row tile
 * stores a vector per token). */
static void gemm_q4_0_r(int n, const void *restrict w, size_t ws, int nr, const void *restrict x,
                        size_t xs, int nt, float *restrict y, size_t ldy) {
    const char *wb = w, *xb = x;
    for (int t = 0; t < nt; t += NT_MAX) {
        const int T = nt - t < NT_MAX ? nt - t : NT_MAX;
        const char *xt = xb + (size_t)t * xs;
        float *yt = y + (size_t)t * ldy;
        int r = 0;
#define Q40_TILE(R_)                                                                     \
    switch (T) {                                                                         \
    case 4: tile_q4_0_r(n, wb + (size_t)r * ws, ws, R_, xt, xs, 4, yt + r, ldy); break;  \
    case 3: tile_q4_0_r(n, wb + (size_t)r * ws, ws, R_, xt, xs, 3, yt + r, ldy); break;  \
    case 2: tile_q4_0_r(n, wb + (size_t)r * ws, ws, R_, xt, xs, 2, yt + r, ldy); break;  \
    default: tile_q4_0_r(n, wb + (size_t)r * ws, ws, R_, xt, xs, 1, yt + r, ldy); break; \
    }
        for (; r + 8 <= nr; r += 8) Q40_TILE(8)
        for (; r + 4 <= nr; r += 4) Q40_TILE(4)
#undef Q40_TILE
        for (; r < nr; r++)
            for (int u = 0; u < T; u++)
                vec_dot_q4_0_r(n, yt + (size_t)u * ldy + r, wb + (size_t)r * ws, xt + (size_t)u * xs);
    }
}

/* ---- K-quants ------------------------------------------------------------ */

KINLINE int k4_mins(const uint8_t mn[8], const int16_t *bsums) {
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    const int16x8_t pairs = vpaddq_s16(b0, b1);             /* 8 sums of 32 */
    const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    const int32x4_t p = vmlal_s16(vmull_s16(vget_low_s16(pairs), vget_low_s16(m)),
                                  vget_high_s16(pairs), vget_high_s16(m));
    return vaddvq_s32(p);
}

/* N_p = mn[2p] (bs[4p] + bs[4p+1]) + mn[2p+1] (bs[4p+2] + bs[4p+3]), p = 0..3 */
KINLINE int32x4_t k4_pair_mins(const uint8_t mn[8], const int16_t *bsums) {
    const int16x8_t pairs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    return vpaddq_s32(vmull_s16(vget_low_s16(pairs), vget_low_s16(m)), vmull_high_s16(pairs, m));
}


/* Q4_K, repacked layout (kernels.h): chains A (scales) and B (mins),
 * y = A - B; single-token order (batched = 0): one fma per chain and
 * super-block, batched order: one per 64-element pair (scalar.c).
 * The exact integers: each 32-element chunk c leaves four sdot partial
 * sums, two pairwise adds per pair of chunks and one more per four bring
 * the chunk sums S_0..S_7 into two vectors, which multiply the scales
 * lane by lane; a last pairwise add gives the pair sums I_p, and their
 * total is the single-token order's I. */
KINLINE void tile_q4_K_r(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                           float *restrict y, size_t ldy, const int nt, const int batched) {
    const block_q4_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float A[NT_MAX], B[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); A[t] = B[t] = 0.0f; }
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i]);
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        uint8_t sc[8], mn[8];
        quant_k4_scales(w[i].scales, sc, mn);
        const uint16x8_t sc16 = vmovl_u8(vld1_u8(sc));
        const int32x4_t sc03 = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(sc16)));
        const int32x4_t sc47 = vreinterpretq_s32_u32(vmovl_high_u16(sc16));
        int32x4_t Q[NT_MAX][4];
        UNROLL
        for (int j = 0; j < 4; j++) {
            const uint8x16_t b0 = vld1q_u8(w[i].qs + 32 * j), b1 = vld1q_u8(w[i].qs + 32 * j + 16);
            const int8x16_t l0 = vreinterpretq_s8_u8(vandq_u8(b0, m4)), l1 = vreinterpretq_s8_u8(vandq_u8(b1, m4));
            const int8x16_t u0 = vreinterpretq_s8_u8(vshrq_n_u8(b0, 4)), u1 = vreinterpretq_s8_u8(vshrq_n_u8(b1, 4));
            UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][i].qs + 64 * j;
                Q[t][j] = vpaddq_s32(dot32(l0, l1, q8), dot32(u0, u1, q8 + 32));
            }
        }
        UNROLL
        for (int t = 0; t < nt; t++) {
            const int32x4_t S03 = vpaddq_s32(Q[t][0], Q[t][1]), S47 = vpaddq_s32(Q[t][2], Q[t][3]);
            const int32x4_t Ip = vpaddq_s32(vmulq_s32(S03, sc03), vmulq_s32(S47, sc47));  /* I_0..I_3 */
            const float yd = x[t][i].d;
            if (!batched) {
                A[t] = fmaf((float)vaddvq_s32(Ip), dw * yd, A[t]);
                B[t] = fmaf((float)k4_mins(mn, x[t][i].bsums), mw * yd, B[t]);
            } else {
                int I[4], Nv[4];
                vst1q_s32(I, Ip);
                vst1q_s32(Nv, k4_pair_mins(mn, x[t][i].bsums));
                const float D = dw * yd, Dm = mw * yd;
                UNROLL
                for (int p = 0; p < 4; p++) {
                    A[t] = fmaf((float)I[p], D, A[t]);
                    B[t] = fmaf((float)Nv[p], Dm, B[t]);
                }
            }
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = A[t] - B[t];
}

KINLINE void tile_q4_K_rs(int n, const void *restrict w, const void *restrict x, size_t xs,
                          float *restrict y, size_t ldy, const int nt) {
    tile_q4_K_r(n, w, x, xs, y, ldy, nt, 0);
}
KINLINE void tile_q4_K_rb(int n, const void *restrict w, const void *restrict x, size_t xs,
                          float *restrict y, size_t ldy, const int nt) {
    tile_q4_K_r(n, w, x, xs, y, ldy, nt, 1);
}
DEFINE_KERNELS(q4_K_rs, tile_q4_K_rs)
DEFINE_KERNELS(q4_K_rb, tile_q4_K_rb)

/* The 8-lane K-quants (Q5_K, Q6_K, Q3_K): lane m of a 32-element chunk is
 * its elements 4m..4m+3, which are exactly lane m % 4 of the sdot of the
 * chunk's first (m < 4) or second 16 bytes, so each token keeps two int32x4
 * sums (lanes 0..3 and 4..7) and two float32x4 chains. */

/* Q4_K, plain layout: eight lane chains as Q5_K, the mins in four chains
 * (one per pair) reduced as (m0 + m2) + (m1 + m3). */
KINLINE void tile_q4_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q4_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float32x4_t alo[NT_MAX], ahi[NT_MAX], am[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) {
        x[t] = XROW(block_q8_K, vx, xs, t);
        alo[t] = ahi[t] = am[t] = vdupq_n_f32(0.0f);
    }
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i]);
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        uint8_t sc[8], mn[8];
        quant_k4_scales(w[i].scales, sc, mn);
        int32x4_t slo[NT_MAX], shi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) slo[t] = shi[t] = vdupq_n_s32(0);
        UNROLL
        for (int c = 0; c < 8; c++) {            /* chunk c: nibble half c & 1 of qs[32 (c/2) ..] */
            const uint8x16_t b0 = vld1q_u8(w[i].qs + 32 * (c / 2)), b1 = vld1q_u8(w[i].qs + 32 * (c / 2) + 16);
            const int8x16_t q0 = vreinterpretq_s8_u8(c & 1 ? vshrq_n_u8(b0, 4) : vandq_u8(b0, m4));
            const int8x16_t q1 = vreinterpretq_s8_u8(c & 1 ? vshrq_n_u8(b1, 4) : vandq_u8(b1, m4));
            UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][i].qs + 32 * c;
                slo[t] = vmlaq_n_s32(slo[t], vdotq_s32(vdupq_n_s32(0), q0, vld1q_s8(q8)), sc[c]);
                shi[t] = vmlaq_n_s32(shi[t], vdotq_s32(vdupq_n_s32(0), q1, vld1q_s8(q8 + 16)), sc[c]);
            }
        }
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float yd = x[t][i].d;
            alo[t] = vfmaq_n_f32(alo[t], vcvtq_f32_s32(slo[t]), yd * dw);
            ahi[t] = vfmaq_n_f32(ahi[t], vcvtq_f32_s32(shi[t]), yd * dw);
            am[t] = vfmaq_n_f32(am[t], vcvtq_f32_s32(k4_pair_mins(mn, x[t][i].bsums)), -yd * mw);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) {
        const float32x2_t u = vadd_f32(vget_low_f32(am[t]), vget_high_f32(am[t]));
        y[(size_t)t * ldy] = hsum8_f32(alo[t], ahi[t]) + (vget_lane_f32(u, 0) + vget_lane_f32(u, 1));
    }
}
DEFINE_KERNELS(q4_K, tile_q4_K)

/* Q5_K: unsigned 5-bit q, one scale per chunk, mins in their own chain. */
KINLINE void tile_q5_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q5_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float32x4_t alo[NT_MAX], ahi[NT_MAX];
    float sm[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) {
        x[t] = XROW(block_q8_K, vx, xs, t);
        alo[t] = ahi[t] = vdupq_n_f32(0.0f);
        sm[t] = 0.0f;
    }
    const uint8x16_t m4 = vdupq_n_u8(0x0f), h16 = vdupq_n_u8(16);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i]);
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        const uint8x16_t qh0 = vld1q_u8(w[i].qh), qh1 = vld1q_u8(w[i].qh + 16);
        uint8_t sc[8], mn[8];
        quant_k4_scales(w[i].scales, sc, mn);
        int32x4_t slo[NT_MAX], shi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) slo[t] = shi[t] = vdupq_n_s32(0);
        UNROLL
        for (int c = 0; c < 8; c++) {            /* chunk c: nibble half c & 1 of qs[32 (c/2) ..] */
            const uint8x16_t b0 = vld1q_u8(w[i].qs + 32 * (c / 2)), b1 = vld1q_u8(w[i].qs + 32 * (c / 2) + 16);
            const uint8x16_t sel = vdupq_n_u8((uint8_t)(1 << c));
            const uint8x16_t n0 = c & 1 ? vshrq_n_u8(b0, 4) : vandq_u8(b0, m4);
            const uint8x16_t n1 = c & 1 ? vshrq_n_u8(b1, 4) : vandq_u8(b1, m4);
            const int8x16_t q0 = vreinterpretq_s8_u8(vorrq_u8(n0, vandq_u8(vtstq_u8(qh0, sel), h16)));
            const int8x16_t q1 = vreinterpretq_s8_u8(vorrq_u8(n1, vandq_u8(vtstq_u8(qh1, sel), h16)));
            UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][i].qs + 32 * c;
                slo[t] = vmlaq_n_s32(slo[t], vdotq_s32(vdupq_n_s32(0), q0, vld1q_s8(q8)), sc[c]);
                shi[t] = vmlaq_n_s32(shi[t], vdotq_s32(vdupq_n_s32(0), q1, vld1q_s8(q8 + 16)), sc[c]);
            }
        }
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float yd = x[t][i].d;
            alo[t] = vfmaq_n_f32(alo[t], vcvtq_f32_s32(slo[t]), yd * dw);
            ahi[t] = vfmaq_n_f32(ahi[t], vcvtq_f32_s32(shi[t]), yd * dw);
            sm[t] = fmaf(-yd * mw, (float)k4_mins(mn, x[t][i].bsums), sm[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = hsum8_f32(alo[t], ahi[t]) + sm[t];
}
DEFINE_KERNELS(q5_K, tile_q5_K)

/* Q6_K: q = low nibble | 2 bits << 4, in 0..63 (unsigned, as llama.cpp
 * sums it); 16-element scales; lane m's -32 correction
 * 32 * (sc[2m] bsums[2m] + sc[2m+1] bsums[2m+1]). */
/* acc + p * lane `lane` of v, the lane a literal after unrolling */
KINLINE int32x4_t mla_lane(int32x4_t acc, int32x4_t p, int32x4_t v, const int lane) {
    switch (lane) {
    case 0:  return vmlaq_laneq_s32(acc, p, v, 0);
    case 1:  return vmlaq_laneq_s32(acc, p, v, 1);
    case 2:  return vmlaq_laneq_s32(acc, p, v, 2);
    default: return vmlaq_laneq_s32(acc, p, v, 3);
    }
}

/* 2-bit field g of each qh byte moved to bits 4..5 (q6 high bits) */
KINLINE uint8x16_t q6_high(uint8x16_t qh, const int g) {
    const uint8x16_t m = vdupq_n_u8(0x30);
    switch (g) {
    case 0:  return vandq_u8(vshlq_n_u8(qh, 4), m);
    case 1:  return vandq_u8(vshlq_n_u8(qh, 2), m);
    case 2:  return vandq_u8(qh, m);
    default: return vandq_u8(vshrq_n_u8(qh, 2), m);
    }
}

KINLINE void tile_q6_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q6_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float32x4_t alo[NT_MAX], ahi[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); alo[t] = ahi[t] = vdupq_n_f32(0.0f); }
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i]);
        const int8_t *sc = w[i].scales;
        /* the 16 scales as four int32x4 (scale k: lane k % 4 of scv[k / 4]) */
        const int16x8_t sc0 = vmovl_s8(vld1_s8(sc)), sc1 = vmovl_s8(vld1_s8(sc + 8));
        const int32x4_t scv[4] = {vmovl_s16(vget_low_s16(sc0)), vmovl_high_s16(sc0),
                                  vmovl_s16(vget_low_s16(sc1)), vmovl_high_s16(sc1)};
        int32x4_t slo[NT_MAX], shi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) slo[t] = shi[t] = vdupq_n_s32(0);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            const uint8x16_t qh0 = vld1q_u8(qh), qh1 = vld1q_u8(qh + 16);
            UNROLL
            for (int g = 0; g < 4; g++) {
                const uint8_t *lq = ql + (g & 1 ? 32 : 0);
                uint8x16_t n0 = vld1q_u8(lq), n1 = vld1q_u8(lq + 16);
                n0 = g < 2 ? vandq_u8(n0, m4) : vshrq_n_u8(n0, 4);
                n1 = g < 2 ? vandq_u8(n1, m4) : vshrq_n_u8(n1, 4);
                const int8x16_t q0 = vreinterpretq_s8_u8(vorrq_u8(n0, q6_high(qh0, g)));
                const int8x16_t q1 = vreinterpretq_s8_u8(vorrq_u8(n1, q6_high(qh1, g)));
                const int k = 8 * h + 2 * g;   /* scale of q0; q1's is k + 1 */
                UNROLL
                for (int t = 0; t < nt; t++) {
                    const int8_t *q8 = x[t][i].qs + 128 * h + 32 * g;
                    slo[t] = mla_lane(slo[t], vdotq_s32(vdupq_n_s32(0), q0, vld1q_s8(q8)), scv[k / 4], k % 4);
                    shi[t] = mla_lane(shi[t], vdotq_s32(vdupq_n_s32(0), q1, vld1q_s8(q8 + 16)),
                                      scv[(k + 1) / 4], (k + 1) % 4);
                }
            }
        }
        const float dw = h2f(w[i].d);
        UNROLL
        for (int t = 0; t < nt; t++) {
            const int16x8_t bs0 = vld1q_s16(x[t][i].bsums), bs1 = vld1q_s16(x[t][i].bsums + 8);
            const int32x4_t c0 = vpaddq_s32(vmull_s16(vget_low_s16(bs0), vget_low_s16(sc0)),
                                            vmull_high_s16(bs0, sc0));
            const int32x4_t c1 = vpaddq_s32(vmull_s16(vget_low_s16(bs1), vget_low_s16(sc1)),
                                            vmull_high_s16(bs1, sc1));
            const float D = x[t][i].d * dw;
            alo[t] = vfmaq_n_f32(alo[t], vcvtq_f32_s32(vsubq_s32(slo[t], vshlq_n_s32(c0, 5))), D);
            ahi[t] = vfmaq_n_f32(ahi[t], vcvtq_f32_s32(vsubq_s32(shi[t], vshlq_n_s32(c1, 5))), D);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = hsum8_f32(alo[t], ahi[t]);
}
DEFINE_KERNELS(q6_K, tile_q6_K)

/* Q3_K: q = 2 low bits - (hmask bit clear ? 4 : 0), signed 6-bit scales. */
KINLINE void tile_q3_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q3_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float32x4_t alo[NT_MAX], ahi[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); alo[t] = ahi[t] = vdupq_n_f32(0.0f); }
    const uint8x16_t m2 = vdupq_n_u8(0x03), four = vdupq_n_u8(4);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i]);
        int8_t sc[16];
        quant_k3_scales(w[i].scales, sc);
        const uint8x16_t hm0 = vld1q_u8(w[i].hmask), hm1 = vld1q_u8(w[i].hmask + 16);
        int32x4_t slo[NT_MAX], shi[NT_MAX];   /* lanes 0..3 and 4..7 (see tile_q5_K) */
        UNROLL
        for (int t = 0; t < nt; t++) slo[t] = shi[t] = vdupq_n_s32(0);
        UNROLL
        for (int h = 0; h < 2; h++) {
            const uint8x16_t b0 = vld1q_u8(w[i].qs + 32 * h), b1 = vld1q_u8(w[i].qs + 32 * h + 16);
            UNROLL
            for (int g = 0; g < 4; g++) {
                const uint8x16_t sel = vdupq_n_u8((uint8_t)(1 << (4 * h + g)));
                const uint8x16_t l0 = vandq_u8(vshlq_u8(b0, vdupq_n_s8((int8_t)(-2 * g))), m2);
                const uint8x16_t l1 = vandq_u8(vshlq_u8(b1, vdupq_n_s8((int8_t)(-2 * g))), m2);
                const int8x16_t q0 = vsubq_s8(vreinterpretq_s8_u8(l0),
                                              vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm0, sel))));
                const int8x16_t q1 = vsubq_s8(vreinterpretq_s8_u8(l1),
                                              vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm1, sel))));
                UNROLL
                for (int t = 0; t < nt; t++) {
                    const int8_t *q8 = x[t][i].qs + 128 * h + 32 * g;
                    slo[t] = vmlaq_n_s32(slo[t], vdotq_s32(vdupq_n_s32(0), q0, vld1q_s8(q8)), sc[8 * h + 2 * g]);
                    shi[t] = vmlaq_n_s32(shi[t], vdotq_s32(vdupq_n_s32(0), q1, vld1q_s8(q8 + 16)),
                                         sc[8 * h + 2 * g + 1]);
                }
            }
        }
        const float dw = h2f(w[i].d);
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float D = x[t][i].d * dw;
            alo[t] = vfmaq_n_f32(alo[t], vcvtq_f32_s32(slo[t]), D);
            ahi[t] = vfmaq_n_f32(ahi[t], vcvtq_f32_s32(shi[t]), D);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = hsum8_f32(alo[t], ahi[t]);
}
DEFINE_KERNELS(q3_K, tile_q3_K)

/* ---- F32 / F16 / BF16: sixteen lanes, canonical reduction --------------- */
KINLINE float32x4_t ld_f32(const void *p, int i) { return vld1q_f32((const float *)p + i); }
KINLINE float32x4_t ld_f16(const void *p, int i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p + i)));
}
KINLINE float el_f32(const void *p, int i) { return ((const float *)p)[i]; }
KINLINE float el_f16(const void *p, int i) { return h2f(((const uint16_t *)p)[i]); }

/* a0..a3 hold lanes 0-3, 4-7, 8-11, 12-15:
 *   b = a[k] + a[k+8];  c = b[k] + b[k+4];  (c0 + c2) + (c1 + c3) */
KINLINE float reduce16(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
    const float32x4_t c = vaddq_f32(vaddq_f32(a0, a2), vaddq_f32(a1, a3));
    const float32x4_t d = vaddq_f32(c, vextq_f32(c, c, 2));
    return vgetq_lane_f32(d, 0) + vgetq_lane_f32(d, 1);
}

#define DEFINE_FLOAT_TILE(name, LD, EL)                                                 \
    KINLINE void tile_##name(int n, const void *restrict w, const void *restrict vx,    \
                             size_t xs, float *restrict y, size_t ldy, const int nt) {  \
        const void *x[NT_MAX];                                                          \
        float32x4_t a[NT_MAX][4];                                                       \
        UNROLL                                                                          \
        for (int t = 0; t < nt; t++) {                                                  \
            x[t] = (const char *)vx + (size_t)t * xs;                                   \
            UNROLL                                                                      \
            for (int k = 0; k < 4; k++) a[t][k] = vdupq_n_f32(0.0f);                    \
        }                                                                               \
        int i = 0;                                                                      \
        for (; i + 16 <= n; i += 16) {                                                  \
            float32x4_t wv[4];                                                          \
            UNROLL                                                                      \
            for (int k = 0; k < 4; k++) wv[k] = LD(w, i + 4 * k);                       \
            UNROLL                                                                      \
            for (int t = 0; t < nt; t++)                                                \
                UNROLL                                                                  \
                for (int k = 0; k < 4; k++) a[t][k] = vfmaq_f32(a[t][k], wv[k], LD(x[t], i + 4 * k)); \
        }                                                                               \
        UNROLL                                                                          \
        for (int t = 0; t < nt; t++) {                                                  \
            float s = reduce16(a[t][0], a[t][1], a[t][2], a[t][3]);                     \
            for (int k = i; k < n; k++) s = fmaf(EL(w, k), EL(x[t], k), s);             \
            y[(size_t)t * ldy] = s;                                                     \
        }                                                                               \
    }                                                                                   \
    DEFINE_KERNELS(name, tile_##name)

DEFINE_FLOAT_TILE(f32, ld_f32, el_f32)
DEFINE_FLOAT_TILE(f16, ld_f16, el_f16)

/* ---- BF16: vdpbf16ps emulated (llama.cpp's x86 orders, scalar.c) -------
 *
 * As in avx2.c: a 32-element chunk is 16 lanes, lane j the pair (2j,
 * 2j+1); 8 bf16 in a q register are 4 dwords with the odd element in the
 * high half, so `and 0xffff0000` and `<< 16` give odd and even as f32.
 * Each step is acc = ftz(fma(odd_w, odd_x, acc)) then the even pair, with
 * DAZ inputs (a zero exponent keeps only the sign, on the 16-bit values):
 * scalar.c's kern_bf16_dp32.  The reductions and tails are scalar.c's
 * finishers. */
typedef struct { float32x4_t v[4]; } bf_acc;   /* lanes 4k..4k+3 in v[k] */

KINLINE void bf_load(const uint16_t *p, float32x4_t *odd, float32x4_t *even) {
    uint16x8_t v = vld1q_u16(p);
    v = vandq_u16(v, vorrq_u16(vtstq_u16(v, vdupq_n_u16(0x7f80)), vdupq_n_u16(0x8000)));
    const uint32x4_t d = vreinterpretq_u32_u16(v);
    *odd = vreinterpretq_f32_u32(vandq_u32(d, vdupq_n_u32(0xffff0000u)));
    *even = vreinterpretq_f32_u32(vshlq_n_u32(d, 16));
}

KINLINE float32x4_t bf_ftz(float32x4_t v) {
    const uint32x4_t tiny = vcaltq_f32(v, vdupq_n_f32(1.17549435e-38f));
    return vreinterpretq_f32_u32(
        vbicq_u32(vreinterpretq_u32_f32(v), vandq_u32(tiny, vdupq_n_u32(0x7fffffffu))));
}

KINLINE void bf_chunk(bf_acc c[4][2], const uint16_t *w, size_t ws, const int R,
                      const uint16_t *x, size_t xs, const int T, int i) {
    UNROLL
    for (int k = 0; k < 4; k++) {
        float32x4_t xo[2], xe[2];
        UNROLL
        for (int t = 0; t < T; t++) bf_load(x + (size_t)t * xs + i + 8 * k, &xo[t], &xe[t]);
        UNROLL
        for (int r = 0; r < R; r++) {
            float32x4_t wo, we;
            bf_load(w + (size_t)r * ws + i + 8 * k, &wo, &we);
            UNROLL
            for (int t = 0; t < T; t++) {
                float32x4_t a = bf_ftz(vfmaq_f32(c[r][t].v[k], wo, xo[t]));
                c[r][t].v[k] = bf_ftz(vfmaq_f32(a, we, xe[t]));
            }
        }
    }
}

KINLINE void bf_store(const bf_acc *a, float out[16]) {
    UNROLL
    for (int k = 0; k < 4; k++) vst1q_f32(out + 4 * k, a->v[k]);
}

KINLINE void bf_tile(int n, const uint16_t *w, size_t ws, const int R, const uint16_t *x,
                     size_t xs, const int T, float *y, size_t ldy, const int single) {
    bf_acc c1[4][2], c2[4][2];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++)
            UNROLL
            for (int k = 0; k < 4; k++) c1[r][t].v[k] = c2[r][t].v[k] = vdupq_n_f32(0.0f);
    int i = 0;
    if (single) {
        for (; i + 64 <= n; i += 64) {
            bf_chunk(c1, w, ws, R, x, xs, T, i);
            bf_chunk(c2, w, ws, R, x, xs, T, i + 32);
        }
    } else {
        for (; i + 32 <= n; i += 32) bf_chunk(c1, w, ws, R, x, xs, T, i);
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float a1[16], a2[16];
            const uint16_t *wr = w + (size_t)r * ws, *xt = x + (size_t)t * xs;
            bf_store(&c1[r][t], a1);
            if (single) {
                bf_store(&c2[r][t], a2);
                y[(size_t)t * ldy + r] = kern_bf16_finish_single(a1, a2, wr, xt, i, n);
            } else {
                y[(size_t)t * ldy + r] = kern_bf16_finish_batched(a1, wr, xt, i, n);
            }
        }
}

/* tiles of up to 2 rows x 2 tokens */
#define DEFINE_BF16_GEMM(name, SINGLE)                                                         \
    static void gemm_##name(int n, const void *restrict vw, size_t w_stride, int nr,           \
                            const void *restrict vx, size_t x_stride, int nt, float *restrict y, \
                            size_t ldy) {                                                      \
        const size_t ws = w_stride / 2, xs = x_stride / 2;                                     \
        for (int t = 0; t < nt; t += 2) {                                                      \
            const uint16_t *x = (const uint16_t *)vx + (size_t)t * xs;                         \
            for (int r = 0; r < nr; r += 2) {                                                  \
                const uint16_t *w = (const uint16_t *)vw + (size_t)r * ws;                     \
                float *yy = y + (size_t)t * ldy + r;                                           \
                const int R = nr - r < 2 ? nr - r : 2, T = nt - t < 2 ? nt - t : 2;            \
                if (R == 2 && T == 2) bf_tile(n, w, ws, 2, x, xs, 2, yy, ldy, SINGLE);        \
                else if (R == 2) bf_tile(n, w, ws, 2, x, xs, 1, yy, ldy, SINGLE);             \
                else if (T == 2) bf_tile(n, w, ws, 1, x, xs, 2, yy, ldy, SINGLE);             \
                else bf_tile(n, w, ws, 1, x, xs, 1, yy, ldy, SINGLE);                         \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void vec_dot_##name(int n, float *restrict s, const void *restrict w,               \
                               const void *restrict x) {                                       \
        bf_tile(n, w, 0, 1, x, 0, 1, s, 0, SINGLE);                                            \
    }
DEFINE_BF16_GEMM(bf16, 1)
DEFINE_BF16_GEMM(bf16_b, 0)

/* ---- packed GEMM: 16 tokens per group, 4 per vector ---------------------
 *
 * The packed layout of kernels.h puts bytes 4k..4k+3 of tokens 0..15 in 64
 * consecutive bytes, i.e. four int8x16 vectors of four tokens each.  The
 * lane-indexed sdot multiplies such a vector with one 32-bit lane of a
 * weight register, so four unpacked weight dwords in a register feed four
 * sdots per token vector without any broadcast.  Weights are unpacked to
 * their signed values, so the integer sums need no offset correction
 * (except the K-quant mins, which come from the packed block sums).  The
 * float chain per token is the canonical one, lane by lane.  R = 2 rows x
 * 16 tokens per pass: 8 int32 sums + 4 activation vectors + weights fit
 * the 32 registers. */
#define NR16 2

KINLINE int32x4_t sdot_lane(int32x4_t acc, int8x16_t a, int8x16_t w, const int lane) {
    switch (lane) {
    case 0:  return vdotq_laneq_s32(acc, a, w, 0);
    case 1:  return vdotq_laneq_s32(acc, a, w, 1);
    case 2:  return vdotq_laneq_s32(acc, a, w, 2);
    default: return vdotq_laneq_s32(acc, a, w, 3);
    }
}

/* D[r][v] += sum over dwords k0..k0+4*nq-1 of token vector v x weights
 * wq[r][q] (lane k % 4 of register k / 4). */
KINLINE void dot_dwords(int32x4_t D[NR16][4], const int R, const int8_t (*qs)[16][4], int k0,
                        int8x16_t wq[NR16][2], const int nq) {
    UNROLL
    for (int q = 0; q < nq; q++)
        UNROLL
        for (int l = 0; l < 4; l++) {
            const int8_t *a = &qs[k0 + 4 * q + l][0][0];
            const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16), a2 = vld1q_s8(a + 32),
                            a3 = vld1q_s8(a + 48);
            UNROLL
            for (int r = 0; r < R; r++) {
                D[r][0] = sdot_lane(D[r][0], a0, wq[r][q], l);
                D[r][1] = sdot_lane(D[r][1], a1, wq[r][q], l);
                D[r][2] = sdot_lane(D[r][2], a2, wq[r][q], l);
                D[r][3] = sdot_lane(D[r][3], a3, wq[r][q], l);
            }
        }
}

KINLINE void store16(const float32x4_t a[4], float *y, size_t ldy) {
    float tmp[16];
    UNROLL
    for (int v = 0; v < 4; v++) vst1q_f32(tmp + 4 * v, a[v]);
    for (int t = 0; t < 16; t++) y[(size_t)t * ldy] = tmp[t];
}

/* Q4_K: per 64-element pair j the exact sums S (scales) and N (mins)
 * feed the chains A and B (batched order, scalar.c), y = A - B. */
KINLINE void rows16_q4_K(int nb, const char *w, size_t ws, const int R, const kern_pk_q8_K *xp,
                         float *y, size_t ldy) {
    float32x4_t A[NR16][4], B[NR16][4];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int v = 0; v < 4; v++) A[r][v] = B[r][v] = vdupq_n_f32(0.0f);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    for (int i = 0; i < nb; i++) {
        const uint8_t *qs[NR16];
        uint8_t sc[NR16][8], mn[NR16][8];
        float dw[NR16], dm[NR16];
        UNROLL
        for (int r = 0; r < R; r++) {
            const block_q4_K *b = (const block_q4_K *)(w + (size_t)r * ws) + i;
            qs[r] = b->qs; dw[r] = h2f(b->d); dm[r] = h2f(b->dmin);
            quant_k4_scales(b->scales, sc[r], mn[r]);
        }
        const kern_pk_q8_K *p = &xp[i];
        UNROLL
        for (int j = 0; j < 4; j++) {
            int8x16_t lo[NR16][2], hi[NR16][2];
            UNROLL
            for (int r = 0; r < R; r++)
                UNROLL
                for (int q = 0; q < 2; q++) {
                    const uint8x16_t b = vld1q_u8(qs[r] + 32 * j + 16 * q);
                    lo[r][q] = vreinterpretq_s8_u8(vandq_u8(b, m4));
                    hi[r][q] = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
                }
            int32x4_t S[NR16][4], D[NR16][4];
            UNROLL
            for (int r = 0; r < R; r++)
                UNROLL
                for (int v = 0; v < 4; v++) S[r][v] = vdupq_n_s32(0);
            UNROLL
            for (int half = 0; half < 2; half++) {
                UNROLL
                for (int r = 0; r < R; r++)
                    UNROLL
                    for (int v = 0; v < 4; v++) D[r][v] = vdupq_n_s32(0);
                dot_dwords(D, R, p->qs, 16 * j + 8 * half, half ? hi : lo, 2);
                UNROLL
                for (int r = 0; r < R; r++)
                    UNROLL
                    for (int v = 0; v < 4; v++) S[r][v] = vmlaq_n_s32(S[r][v], D[r][v], sc[r][2 * j + half]);
            }
            UNROLL
            for (int r = 0; r < R; r++) {
                const int16_t mp[8] = {mn[r][2 * j], mn[r][2 * j + 1], mn[r][2 * j], mn[r][2 * j + 1],
                                       mn[r][2 * j], mn[r][2 * j + 1], mn[r][2 * j], mn[r][2 * j + 1]};
                const int16x8_t mv = vld1q_s16(mp);
                UNROLL
                for (int v = 0; v < 4; v++) {
                    const int16x8_t bs = vld1q_s16(&p->bs32[j][4 * v][0]);
                    const int32x4_t N = vpaddq_s32(vmull_s16(vget_low_s16(bs), vget_low_s16(mv)),
                                                   vmull_high_s16(bs, mv));
                    const float32x4_t dx = vld1q_f32(p->d + 4 * v);
                    A[r][v] = vfmaq_f32(A[r][v], vcvtq_f32_s32(S[r][v]), vmulq_n_f32(dx, dw[r]));
                    B[r][v] = vfmaq_f32(B[r][v], vcvtq_f32_s32(N), vmulq_n_f32(dx, dm[r]));
                }
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++) {
        float32x4_t out[4];
        UNROLL
        for (int v = 0; v < 4; v++) out[v] = vsubq_f32(A[r][v], B[r][v]);
        store16(out, y + r, ldy);
    }
}

/* The 8-lane K-quants (Q3_K, Q5_K, Q6_K), 16 tokens: lanes m outside,
 * chunks c inside, so one int32x4 per row and token vector holds L_m
 * (see avx512.c's rows_l8); the eight float chains per row and token
 * vector live in memory.  Weights are unpacked to int8 (Q6_K 0..63, Q5_K
 * 0..31, Q3_K signed -4..3) in element order. */
enum { L8_Q3_K, L8_Q5_K, L8_Q6_K };

KINLINE void rows16_l8(int nb, const char *w, size_t ws, const int R, const kern_pk_q8_K *xp,
                       float *y, size_t ldy, const int kind) {
    float32x4_t acc[NR16][8][4], sm[NR16][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 4; v++) {
            sm[r][v] = vdupq_n_f32(0.0f);
            for (int m = 0; m < 8; m++) acc[r][m][v] = vdupq_n_f32(0.0f);
        }
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(0x03), h16 = vdupq_n_u8(16), four = vdupq_n_u8(4);
    for (int i = 0; i < nb; i++) {
        int8_t wb[NR16][256] __attribute__((aligned(16)));
        int sc[NR16][16];               /* 16-element group scales */
        int16_t pr[NR16][8];            /* Q6_K: the scales as int16; Q5_K: the mins */
        float dw[NR16], dm[NR16];
        UNROLL
        for (int r = 0; r < R; r++) {
            const char *row = w + (size_t)r * ws;
            if (kind == L8_Q6_K) {
                const block_q6_K *b = (const block_q6_K *)row + i;
                for (int h = 0; h < 2; h++) {
                    const uint8x16_t qh0 = vld1q_u8(b->qh + 32 * h), qh1 = vld1q_u8(b->qh + 32 * h + 16);
                    for (int g = 0; g < 4; g++) {
                        const uint8_t *lq = b->ql + 64 * h + (g & 1 ? 32 : 0);
                        uint8x16_t n0 = vld1q_u8(lq), n1 = vld1q_u8(lq + 16);
                        n0 = g < 2 ? vandq_u8(n0, m4) : vshrq_n_u8(n0, 4);
                        n1 = g < 2 ? vandq_u8(n1, m4) : vshrq_n_u8(n1, 4);
                        const uint8x16_t h0 = vandq_u8(vshlq_u8(qh0, vdupq_n_s8((int8_t)(-2 * g))), m2);
                        const uint8x16_t h1 = vandq_u8(vshlq_u8(qh1, vdupq_n_s8((int8_t)(-2 * g))), m2);
                        vst1q_s8(wb[r] + 128 * h + 32 * g, vreinterpretq_s8_u8(vorrq_u8(n0, vshlq_n_u8(h0, 4))));
                        vst1q_s8(wb[r] + 128 * h + 32 * g + 16, vreinterpretq_s8_u8(vorrq_u8(n1, vshlq_n_u8(h1, 4))));
                    }
                }
                for (int k = 0; k < 16; k++) sc[r][k] = b->scales[k];
                dw[r] = h2f(b->d);
                dm[r] = 0.0f;
            } else if (kind == L8_Q5_K) {
                const block_q5_K *b = (const block_q5_K *)row + i;
                uint8_t s6[8], m6[8];
                quant_k4_scales(b->scales, s6, m6);
                const uint8x16_t qh0 = vld1q_u8(b->qh), qh1 = vld1q_u8(b->qh + 16);
                for (int c = 0; c < 8; c++) {
                    const uint8x16_t b0 = vld1q_u8(b->qs + 32 * (c / 2)), b1 = vld1q_u8(b->qs + 32 * (c / 2) + 16);
                    const uint8x16_t sel = vdupq_n_u8((uint8_t)(1 << c));
                    const uint8x16_t n0 = c & 1 ? vshrq_n_u8(b0, 4) : vandq_u8(b0, m4);
                    const uint8x16_t n1 = c & 1 ? vshrq_n_u8(b1, 4) : vandq_u8(b1, m4);
                    vst1q_s8(wb[r] + 32 * c, vreinterpretq_s8_u8(vorrq_u8(n0, vandq_u8(vtstq_u8(qh0, sel), h16))));
                    vst1q_s8(wb[r] + 32 * c + 16, vreinterpretq_s8_u8(vorrq_u8(n1, vandq_u8(vtstq_u8(qh1, sel), h16))));
                }
                for (int k = 0; k < 16; k++) sc[r][k] = s6[k / 2];
                for (int k = 0; k < 8; k++) pr[r][k] = m6[k];
                dw[r] = h2f(b->d);
                dm[r] = h2f(b->dmin);
            } else {
                const block_q3_K *b = (const block_q3_K *)row + i;
                int8_t s8[16];
                quant_k3_scales(b->scales, s8);
                const uint8x16_t hm0 = vld1q_u8(b->hmask), hm1 = vld1q_u8(b->hmask + 16);
                for (int h = 0; h < 2; h++) {
                    const uint8x16_t b0 = vld1q_u8(b->qs + 32 * h), b1 = vld1q_u8(b->qs + 32 * h + 16);
                    for (int g = 0; g < 4; g++) {
                        const uint8x16_t sel = vdupq_n_u8((uint8_t)(1 << (4 * h + g)));
                        const uint8x16_t l0 = vandq_u8(vshlq_u8(b0, vdupq_n_s8((int8_t)(-2 * g))), m2);
                        const uint8x16_t l1 = vandq_u8(vshlq_u8(b1, vdupq_n_s8((int8_t)(-2 * g))), m2);
                        vst1q_s8(wb[r] + 128 * h + 32 * g, vsubq_s8(vreinterpretq_s8_u8(l0),
                                 vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm0, sel)))));
                        vst1q_s8(wb[r] + 128 * h + 32 * g + 16, vsubq_s8(vreinterpretq_s8_u8(l1),
                                 vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm1, sel)))));
                    }
                }
                for (int k = 0; k < 16; k++) sc[r][k] = s8[k];
                dw[r] = h2f(b->d);
                dm[r] = 0.0f;
            }
        }
        const kern_pk_q8_K *p = &xp[i];
        for (int m = 0; m < 8; m++) {
            const int h = m >= 4;
            int32x4_t S[NR16][4];
            UNROLL
            for (int r = 0; r < R; r++) {
                UNROLL
                for (int v = 0; v < 4; v++) S[r][v] = vdupq_n_s32(0);
                if (kind == L8_Q6_K) {
                    /* -32 * (sc[2m] bsums[2m] + sc[2m+1] bsums[2m+1]) per token */
                    const int16_t a0 = (int16_t)(-32 * sc[r][2 * m]), a1 = (int16_t)(-32 * sc[r][2 * m + 1]);
                    const int16_t cp[8] = {a0, a1, a0, a1, a0, a1, a0, a1};
                    const int16x8_t cv = vld1q_s16(cp);
                    UNROLL
                    for (int v = 0; v < 4; v++) {
                        const int16x8_t bs = vld1q_s16(&p->bs16[m][4 * v][0]);
                        S[r][v] = vpaddq_s32(vmull_s16(vget_low_s16(bs), vget_low_s16(cv)),
                                             vmull_high_s16(bs, cv));
                    }
                }
            }
            UNROLL
            for (int c = 0; c < 8; c++) {
                const int8_t *a = &p->qs[8 * c + m][0][0];
                const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16), a2 = vld1q_s8(a + 32),
                                a3 = vld1q_s8(a + 48);
                UNROLL
                for (int r = 0; r < R; r++) {
                    int32_t wd;
                    memcpy(&wd, wb[r] + 32 * c + 4 * m, 4);
                    const int8x16_t wv = vreinterpretq_s8_s32(vdupq_n_s32(wd));
                    const int s = sc[r][2 * c + h];
                    S[r][0] = vmlaq_n_s32(S[r][0], vdotq_s32(vdupq_n_s32(0), a0, wv), s);
                    S[r][1] = vmlaq_n_s32(S[r][1], vdotq_s32(vdupq_n_s32(0), a1, wv), s);
                    S[r][2] = vmlaq_n_s32(S[r][2], vdotq_s32(vdupq_n_s32(0), a2, wv), s);
                    S[r][3] = vmlaq_n_s32(S[r][3], vdotq_s32(vdupq_n_s32(0), a3, wv), s);
                }
            }
            UNROLL
            for (int r = 0; r < R; r++)
                UNROLL
                for (int v = 0; v < 4; v++)
                    acc[r][m][v] = vfmaq_f32(acc[r][m][v], vcvtq_f32_s32(S[r][v]),
                                             vmulq_n_f32(vld1q_f32(p->d + 4 * v), dw[r]));
        }
        if (kind == L8_Q5_K) {
            UNROLL
            for (int r = 0; r < R; r++) {
                int32x4_t Mlo[4], Mhi[4];
                UNROLL
                for (int v = 0; v < 4; v++) Mlo[v] = Mhi[v] = vdupq_n_s32(0);
                UNROLL
                for (int q = 0; q < 4; q++) {
                    const int16_t mp[8] = {pr[r][2 * q], pr[r][2 * q + 1], pr[r][2 * q], pr[r][2 * q + 1],
                                           pr[r][2 * q], pr[r][2 * q + 1], pr[r][2 * q], pr[r][2 * q + 1]};
                    const int16x8_t mv = vld1q_s16(mp);
                    UNROLL
                    for (int v = 0; v < 4; v++) {
                        const int16x8_t B = vld1q_s16(&p->bs32[q][4 * v][0]);
                        Mlo[v] = vmlal_s16(Mlo[v], vget_low_s16(B), vget_low_s16(mv));
                        Mhi[v] = vmlal_high_s16(Mhi[v], B, mv);
                    }
                }
                UNROLL
                for (int v = 0; v < 4; v++) {
                    const float32x4_t dx = vld1q_f32(p->d + 4 * v);
                    sm[r][v] = vfmsq_f32(sm[r][v], vmulq_n_f32(dx, dm[r]), vcvtq_f32_s32(vpaddq_s32(Mlo[v], Mhi[v])));
                }
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++) {
        float32x4_t out[4];
        UNROLL
        for (int v = 0; v < 4; v++) {
            const float32x4_t t0 = vaddq_f32(acc[r][0][v], acc[r][4][v]), t1 = vaddq_f32(acc[r][1][v], acc[r][5][v]);
            const float32x4_t t2 = vaddq_f32(acc[r][2][v], acc[r][6][v]), t3 = vaddq_f32(acc[r][3][v], acc[r][7][v]);
            out[v] = vaddq_f32(vaddq_f32(t0, t2), vaddq_f32(t1, t3));
            if (kind == L8_Q5_K) out[v] = vaddq_f32(out[v], sm[r][v]);
        }
        store16(out, y + r, ldy);
    }
}

/* 32-element formats: 8 lane chains per token, i.e. per row 8 lanes x 4
 * token vectors of accumulators -- too many for the register file.  So,
 * as on AVX-512, blocks go in chunks: a chunk's weights are unpacked and
 * its d = dw * dx vectors formed first, then each lane m runs through the
 * chunk with only its R x 4 accumulators live: per block and token vector
 * one sdot by lane (dword m of the weights) gives the 4 tokens' L_m. */
#define B32_CHUNK16 8
KINLINE void rows16_b32(int nb, const char *w, size_t ws, const int R, const kern_pk_q8_0 *xp,
                        float *y, size_t ldy, const int kind) {
    const int has_m = kind == B32_Q4_1 || kind == B32_Q5_1;
    const size_t bs = b32_size(kind);
    float32x4_t acc[8][NR16][4], S[NR16][4];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int v = 0; v < 4; v++) {
            S[r][v] = vdupq_n_f32(0.0f);
            for (int m = 0; m < 8; m++) acc[m][r][v] = vdupq_n_f32(0.0f);
        }
    for (int i0 = 0; i0 < nb; i0 += B32_CHUNK16) {
        const int cnt = nb - i0 < B32_CHUNK16 ? nb - i0 : B32_CHUNK16;
        int8x16_t wq[B32_CHUNK16][NR16][2];
        float32x4_t dd[B32_CHUNK16][NR16][4];
        for (int k = 0; k < cnt; k++) {
            const kern_pk_q8_0 *p = &xp[i0 + k];
            UNROLL
            for (int r = 0; r < R; r++) {
                const char *blk = w + (size_t)r * ws + (size_t)(i0 + k) * bs;
                b32_unpack(blk, kind, &wq[k][r][0], &wq[k][r][1]);
                const float dw = b32_d(blk), mw = has_m ? b32_m(blk) : 0.0f;
                UNROLL
                for (int v = 0; v < 4; v++) {
                    dd[k][r][v] = vmulq_n_f32(vld1q_f32(p->d + 4 * v), dw);
                    if (has_m) S[r][v] = vfmaq_n_f32(S[r][v], vld1q_f32(p->s + 4 * v), mw);
                }
            }
        }
        UNROLL
        for (int m = 0; m < 8; m++) {
            float32x4_t a[NR16][4];
            UNROLL
            for (int r = 0; r < R; r++)
                UNROLL
                for (int v = 0; v < 4; v++) a[r][v] = acc[m][r][v];
            for (int k = 0; k < cnt; k++) {
                const int8_t *q = &xp[i0 + k].qs[m][0][0];
                UNROLL
                for (int v = 0; v < 4; v++) {
                    const int8x16_t xv = vld1q_s8(q + 16 * v);
                    UNROLL
                    for (int r = 0; r < R; r++) {
                        const int32x4_t L = sdot_lane(vdupq_n_s32(0), xv, wq[k][r][m >> 2], m & 3);
                        a[r][v] = vfmaq_f32(a[r][v], dd[k][r][v], vcvtq_f32_s32(L));
                    }
                }
            }
            UNROLL
            for (int r = 0; r < R; r++)
                UNROLL
                for (int v = 0; v < 4; v++) acc[m][r][v] = a[r][v];
        }
    }
    UNROLL
    for (int r = 0; r < R; r++) {
        float32x4_t out[4];
        UNROLL
        for (int v = 0; v < 4; v++) {
            const float32x4_t t0 = vaddq_f32(acc[0][r][v], acc[4][r][v]), t1 = vaddq_f32(acc[1][r][v], acc[5][r][v]);
            const float32x4_t t2 = vaddq_f32(acc[2][r][v], acc[6][r][v]), t3 = vaddq_f32(acc[3][r][v], acc[7][r][v]);
            out[v] = vaddq_f32(vaddq_f32(t0, t2), vaddq_f32(t1, t3));
            if (has_m) out[v] = vaddq_f32(out[v], S[r][v]);
        }
        store16(out, y + r, ldy);
    }
}

/* Q4_0, repacked order (tile_q4_0_r) on packed groups: per row and token
 * vector the block's eight dwords through the lane sdot give four tokens'
 * exact I_i at once, then acc = fma(I_i, dw*dx, acc) lane by lane. */
KINLINE void rows16_q4_0_r(int nb, const char *w, size_t ws, const int R, const kern_pk_q8_0 *xp,
                           float *y, size_t ldy) {
    float32x4_t acc[NR16][4];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int v = 0; v < 4; v++) acc[r][v] = vdupq_n_f32(0.0f);
    for (int i = 0; i < nb; i++) {
        const kern_pk_q8_0 *p = &xp[i];
        int8x16_t wq[NR16][2];
        float dw[NR16];
        int32x4_t D[NR16][4];
        UNROLL
        for (int r = 0; r < R; r++) {
            const char *blk = w + (size_t)r * ws + (size_t)i * sizeof(block_q4_0);
            if ((i & 3) == 0) prefetch_w(blk);
            b32_unpack(blk, B32_Q4_0, &wq[r][0], &wq[r][1]);
            dw[r] = b32_d(blk);
            UNROLL
            for (int v = 0; v < 4; v++) D[r][v] = vdupq_n_s32(0);
        }
        dot_dwords(D, R, p->qs, 0, wq, 2);
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int v = 0; v < 4; v++)
                acc[r][v] = vfmaq_f32(acc[r][v], vcvtq_f32_s32(D[r][v]), vmulq_n_f32(vld1q_f32(p->d + 4 * v), dw[r]));
    }
    UNROLL
    for (int r = 0; r < R; r++) store16(acc[r], y + r, ldy);
}

#define DEFINE_GEMM16(name, PK, CALL)                                                   \
    static void gemm16_##name(int n, const void *restrict w, size_t ws, int nr,         \
                              const void *restrict vxp, size_t gs, int ng,              \
                              float *restrict y, size_t ldy) {                          \
        for (int g = 0; g < ng; g++) {                                                  \
            const PK *xp = (const PK *)((const char *)vxp + (size_t)g * gs);            \
            float *yg = y + (size_t)16 * g * ldy;                                       \
            const char *wb = w;                                                         \
            int r = 0;                                                                  \
            for (; r + NR16 <= nr; r += NR16) CALL(NR16);                               \
            for (; r < nr; r++) CALL(1);                                                \
        }                                                                               \
    }
#define CALL16_Q4K(R_) rows16_q4_K(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy)
#define CALL16_Q5K(R_) rows16_l8(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy, L8_Q5_K)
#define CALL16_Q6K(R_) rows16_l8(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy, L8_Q6_K)
#define CALL16_Q3K(R_) rows16_l8(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy, L8_Q3_K)
#define CALL16_Q40(R_) rows16_q4_0_r(n / 32, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy)
#define CALL16_Q80(R_) rows16_b32(n / 32, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy, B32_Q8_0)
#define CALL16_Q50(R_) rows16_b32(n / 32, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy, B32_Q5_0)
#define CALL16_Q41(R_) rows16_b32(n / 32, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy, B32_Q4_1)
#define CALL16_Q51(R_) rows16_b32(n / 32, wb + (size_t)r * ws, ws, R_, xp, yg + r, ldy, B32_Q5_1)
DEFINE_GEMM16(q4_K, kern_pk_q8_K, CALL16_Q4K)
DEFINE_GEMM16(q5_K, kern_pk_q8_K, CALL16_Q5K)
DEFINE_GEMM16(q6_K, kern_pk_q8_K, CALL16_Q6K)
DEFINE_GEMM16(q3_K, kern_pk_q8_K, CALL16_Q3K)
DEFINE_GEMM16(q8_0, kern_pk_q8_0, CALL16_Q80)
DEFINE_GEMM16(q4_0, kern_pk_q8_0, CALL16_Q40)
DEFINE_GEMM16(q5_0, kern_pk_q8_0, CALL16_Q50)
DEFINE_GEMM16(q4_1, kern_pk_q8_0, CALL16_Q41)
DEFINE_GEMM16(q5_1, kern_pk_q8_0, CALL16_Q51)

/* ---- conversions and activation quantizers (ARM numerics) --------------- */
static void to_float_f16(const void *restrict vx, float *restrict y, int64_t n) {
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
    for (; i < n; i++) y[i] = h2f(x[i]);
}

static void from_float_f16(const float *restrict x, void *restrict vy, int64_t n) {
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) y[i] = kern_fp32_to_fp16(x[i]);
}

/* 32 floats * id, rounded half to even, narrowed to bytes (truncating, as
 * the reference's int8 store); returns the sum of the 32 integers. */
KINLINE int q8_32(const float *x, float id, int8_t *out) {
    int32x4_t acc = vdupq_n_s32(0);
    UNROLL
    for (int k = 0; k < 8; k += 2) {
        const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4 * k), id));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4 * k + 4), id));
        acc = vaddq_s32(acc, vaddq_s32(a, b));
        const int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
        vst1_s8(out + 4 * k, vmovn_s16(h));
    }
    return vaddvq_s32(acc);
}

KINLINE float amax32(const float *x) {
    float32x4_t m = vabsq_f32(vld1q_f32(x));
    UNROLL
    for (int k = 1; k < 8; k++) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + 4 * k)));
    return vmaxvq_f32(m);
}

static void quantize_q8_0(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        const float amax = amax32(x), d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_fp32_to_fp16(d);
        (void)q8_32(x, id, y[i].qs);
    }
}

static void quantize_q8_1(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        const float amax = amax32(x), d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = kern_fp32_to_fp16(d);
        const int sum = q8_32(x, id, y[i].qs);
        y[i].s = kern_fp32_to_fp16(d * (float)sum);
    }
}

static void quantize_q8_K(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int k = 0; k < QK_K; k += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + k)));
        const float amax = vmaxvq_f32(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = amax;
        for (int k = 0; k < QK_K; k++)
            if (fabsf(x[k]) == amax) { max = x[k]; break; }
        const float iscale = -127.0f / max;
        const int32x4_t cap = vdupq_n_s32(127);
        for (int g = 0; g < QK_K / 16; g++) {
            int32x4_t s = vdupq_n_s32(0);
            int16x8_t h[2];
            UNROLL
            for (int u = 0; u < 2; u++) {
                const int32x4_t a = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 8 * u), iscale)), cap);
                const int32x4_t b = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 8 * u + 4), iscale)), cap);
                s = vaddq_s32(s, vaddq_s32(a, b));
                h[u] = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
            }
            vst1q_s8(y[i].qs + 16 * g, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
            y[i].bsums[g] = (int16_t)vaddvq_s32(s);
        }
        y[i].d = 1.0f / iscale;
    }
}

void kern_neon_fill(nj_kernels *k, uint32_t features) {
    (void)features;
    KERN_SET(k, NJ_Q4_0, vec_dot_q4_0, gemm_q4_0);
    KERN_SET_ORDERS(k, NJ_Q4_0, vec_dot_q4_0_r, gemm_q4_0_r, vec_dot_q4_0_r, gemm_q4_0_r);
    KERN_SET(k, NJ_Q4_1, vec_dot_q4_1, gemm_q4_1);
    KERN_SET(k, NJ_Q5_0, vec_dot_q5_0, gemm_q5_0);
    KERN_SET(k, NJ_Q5_1, vec_dot_q5_1, gemm_q5_1);
    KERN_SET(k, NJ_Q8_0, vec_dot_q8_0, gemm_q8_0);
    /* Q2_K keeps the scalar level's kernels (all three orders): no NEON
     * tile here computes its canonical lane order yet. */
    KERN_SET(k, NJ_Q3_K, vec_dot_q3_K, gemm_q3_K);
    KERN_SET(k, NJ_Q4_K, vec_dot_q4_K, gemm_q4_K);
    KERN_SET_ORDERS(k, NJ_Q4_K, vec_dot_q4_K_rs, gemm_q4_K_rs, vec_dot_q4_K_rb, gemm_q4_K_rb);
    KERN_SET(k, NJ_Q5_K, vec_dot_q5_K, gemm_q5_K);
    KERN_SET(k, NJ_Q6_K, vec_dot_q6_K, gemm_q6_K);
    KERN_SET(k, NJ_F32, vec_dot_f32, gemm_f32);
    KERN_SET(k, NJ_F16, vec_dot_f16, gemm_f16);
    KERN_SET(k, NJ_BF16, vec_dot_bf16, gemm_bf16);
    KERN_SET_ORDERS(k, NJ_BF16, vec_dot_bf16, gemm_bf16, vec_dot_bf16_b, gemm_bf16_b);
    k->from_float[NJ_Q8_0] = quantize_q8_0;
    k->from_float[NJ_Q8_1] = quantize_q8_1;
    k->from_float[NJ_Q8_K] = quantize_q8_K;
    k->from_float[NJ_F16] = from_float_f16;
    k->to_float[NJ_F16] = to_float_f16;
    k->pack16[NJ_Q8_K] = kern_pack16_q8_K;
    k->pack16[NJ_Q8_0] = kern_pack16_q8_0;
    k->pack16[NJ_Q8_1] = kern_pack16_q8_1;
    k->gemm16[NJ_Q3_K] = gemm16_q3_K;
    k->gemm16[NJ_Q4_K] = gemm16_q4_K;
    k->gemm16[NJ_Q5_K] = gemm16_q5_K;
    k->gemm16[NJ_Q6_K] = gemm16_q6_K;
    k->gemm16[NJ_Q8_0] = gemm16_q8_0;
    /* Q4_0's computes its repacked order (vec_dot_rb); none for Q2_K, whose
     * must compute its repacked batched order, which no NEON kernel here
     * does yet */
    k->gemm16[NJ_Q4_0] = gemm16_q4_0;
    k->gemm16[NJ_Q5_0] = gemm16_q5_0;
    k->gemm16[NJ_Q4_1] = gemm16_q4_1;
    k->gemm16[NJ_Q5_1] = gemm16_q5_1;
}
