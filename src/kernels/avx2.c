/*
 * avx2 — AVX2 + FMA + F16C kernels for every weight type.
 *
 * Structure.  Each weight type has one *tile* function: one weight row
 * against nt (1..4, a compile-time constant after inlining) activation
 * rows.  The weight block is loaded and unpacked once and multiplied with
 * each token's activations; each token has its own accumulators and
 * follows the canonical float order of scalar.c (exact int32 block sums
 * reduced to one integer per block -- per 32-bit lane for the 8-lane
 * K-quants, per 64-element pair for Q4_K's batched order -- then the fixed
 * fma chains), so results equal the scalar level's bit for bit whatever
 * nt is (vec_dot is the nt = 1 case).  Q4_K has two more tiles for its
 * repacked orders (vec_dot_rs/rb, gemm_rs/rb, kernels.h), and its
 * single-token GEMV takes eight rows per tile (rows8_q4_K_rs).  So does
 * the single-token GEMV of the 32-element formats Q4_0 (plain order),
 * Q4_1, Q5_0, Q5_1 and Q8_0 (rows8_b32: one accumulator per row, the
 * eight rows' block headers in one gather, the activation block loaded
 * once for all eight); their batches and the rows % 8 left over go
 * through x86_tiles.h's tiles.  The weight stream is prefetched ahead
 * (the tiles: 1.5 KB, to L1; the eight-row tiles: 24 super-blocks or
 * 3 KB per row ahead in tile order, to L2) so decode (a GEMV from DRAM)
 * overlaps memory and compute.
 *
 * Integer core.  Weights are made non-negative bytes (nibbles, 5/6-bit
 * values, or |w| with the sign moved onto the activation), activations are
 * int8 in [-127, 127]; vpmaddubsw multiplies pairs into int16 (no
 * saturation is possible: the unsigned weights are at most 6-bit,
 * 2 * 63 * 127 < 32768, and the |w|*x of Q8_0 is bounded by
 * 2 * 128 * 127 = 32512; w + 128 as unsigned bytes would not be safe
 * without VNNI), vpmaddwd applies a per-sub-block scale (or 1) and widens
 * to int32.  Offsets (Q4_0's -8, Q5_0's -16 in the GEMV, Q6_K's -32,
 * K-quant mins) are folded in through the activation block sums (the
 * format's, or computed once per block for all rows).
 *
 * Activation quantizers reproduce scalar.c's x86 variants byte for byte.
 *
 * BF16 is not an integer format: its section emulates llama.cpp's
 * vdpbf16ps steps with fma and explicit subnormal flushing (scalar.c).
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define X86_AVX512 0
#include "x86_tiles.h"

/* ---- 32-element formats, GEMV: eight rows at a time ---------------------
 * The canonical order (x86_tiles.h, scalar.c): per row eight lane chains,
 * acc_m = fma(dw*dx, L_m, acc_m) per block, L_m the exact int32 dot product
 * of the block's elements 4m..4m+3; Q4_1/Q5_1 add a scalar chain
 * c = fma(m, s_x, c); y = hsum8(acc) + c.  x86_tiles.h's tiles take four
 * rows, a gather per row and eight blocks for the scales and a sign trick
 * per block and row, and stream about half of what memory delivers.  Here
 * a tile is eight rows, one ymm accumulator each, walked block by block:
 * the activation block is loaded once for all eight rows, the eight rows'
 * block headers come in with one gather (d, and m for Q4_1/Q5_1, in each
 * 32-bit lane), so one multiply by dx gives every row's dw*dx and one fma
 * by s_x runs the eight m chains in the lanes of one vector.  The 4- and
 * 5-bit weights go in as unsigned bytes (0..15 or 0..31: vpmaddubsw's int16
 * pair sums cannot saturate) and the format's offset comes off the int32
 * sums, computed once per block for all rows:
 *
 *   Q4_0: L = dot(nibbles, x) - 8 * S        S_m = sum of x[4m..4m+3]
 *   Q5_0: L = dot(nibbles | 16 * bit, x) - 16 * S
 *   Q4_1, Q5_1: L = dot(q, x)                (unsigned already)
 *   Q8_0: L = dot(|w|, sign(x, w))           (the sign trick: w + 128 as
 *                                             unsigned could saturate)
 *
 * all exact in int32.  The weight stream is prefetched into L2 B32V_PF
 * bytes ahead per row, in the order the tiles read it (past a row's end,
 * into the same row of the next tile).  Batches, and the rows % 8 left
 * over, go through x86_tiles.h's tiles (same order, same results).
 * Q4_0 here is the plain order only: its repacked order has its own
 * kernels (gemm_q4_0_r). */

/* One block's integer sums L (int32 lane m: elements 4m..4m+3) against
 * the activation bytes X; B = bias * S (Q4_0, Q5_0), else unused. */
KINLINE __m256i b32v_dot(const char *b, __m256i X, __m256i B, const int f) {
    if (f == B32V_Q8_0) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(b + 2));
        return dot_u8s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(X, q));
    }
    __m256i q = nibbles32((const uint8_t *)b + B32V_QS(f));
    if (f == B32V_Q5_0 || f == B32V_Q5_1)
        q = _mm256_or_si256(q, _mm256_and_si256(bits32((const uint8_t *)b + B32V_QH(f)),
                                                _mm256_set1_epi8(0x10)));
    const __m256i L = dot_u8s8(q, X);
    return f == B32V_Q4_0 || f == B32V_Q5_0 ? _mm256_sub_epi32(L, B) : L;
}

/* Rows w[0..7] (nb blocks each) times one activation row x: y[0..7].
 * off[r] = w[r] - w[0] (the gather's indices); next = the distance from a
 * row to the same row of the next tile (prefetch only). */
KINLINE void rows8_b32(int nb, const char *const w[8], __m256i off, size_t next, const char *x,
                       float *y, const int f) {
    const int bs = B32V_BS(f), xbs = B32V_XBS(f);
    __m256 acc[8], C = _mm256_setzero_ps();
    UNROLL
    for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
    b32v_pf pf = b32v_pf_init(nb, bs);
    for (int i = 0; i < nb; i++) {
        const size_t o = (size_t)i * (size_t)bs;
        b32v_pf_step(&pf, w, next, nb, bs);
        const char *xb = x + (size_t)i * (size_t)xbs;
        const __m256i X = _mm256_loadu_si256((const __m256i *)(xb + B32V_XQS(f)));
        __m256i B = _mm256_setzero_si256();
        if (f == B32V_Q4_0 || f == B32V_Q5_0) {
            const __m256i S = dot_u8s8(_mm256_set1_epi8(1), X);
            B = f == B32V_Q4_0 ? _mm256_slli_epi32(S, 3) : _mm256_slli_epi32(S, 4);
        }
        nj_half xh[2];
        memcpy(xh, xb, sizeof(xh));
        const __m256i wh = _mm256_i32gather_epi32((const int *)(w[0] + o), off, 1);
        float dd[8] __attribute__((aligned(32)));
        _mm256_store_ps(dd, _mm256_mul_ps(half_lanes(wh, 0), _mm256_set1_ps(h2f(xh[0]))));
        if (B32V_HAS_M(f)) C = _mm256_fmadd_ps(half_lanes(wh, 1), _mm256_set1_ps(h2f(xh[1])), C);
        /* read dd back with broadcast loads, not lane shuffles */
        __asm__ volatile("" ::: "memory");
        UNROLL
        for (int r = 0; r < 8; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dd[r]),
                                     _mm256_cvtepi32_ps(b32v_dot(w[r] + o, X, B, f)), acc[r]);
    }
    float c[8];
    if (B32V_HAS_M(f)) _mm256_storeu_ps(c, C);
    UNROLL
    for (int r = 0; r < 8; r++) y[r] = B32V_HAS_M(f) ? hsum8(acc[r]) + c[r] : hsum8(acc[r]);
}

DEFINE_B32V(q4_0, B32V_Q4_0)
DEFINE_B32V(q4_1, B32V_Q4_1)
DEFINE_B32V(q5_0, B32V_Q5_0)
DEFINE_B32V(q5_1, B32V_Q5_1)
DEFINE_B32V(q8_0, B32V_Q8_0)

/* ---- K-quant helpers --------------------------------------------------- */

/* Q4_K / Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins (the words
 * of quant_k4_scale_words), returned in registers: scales as 8 int16 in
 * both 128-bit halves (for lane broadcasts), mins as 8 int16.  (Going
 * through a byte array would cost a store-forwarding stall per
 * super-block.) */
KINLINE void k4_scales(const uint8_t *b, __m256i *scales, __m128i *mins) {
    uint32_t u[4];
    quant_k4_scale_words(b, u);
    const __m128i v = _mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]);
    *scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
    *mins = _mm_cvtepu8_epi16(_mm_srli_si128(v, 8));
}

/* int16 lane k of each 128-bit half, broadcast. */
KINLINE __m256i lane16(__m256i v, const int k) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)((2 * k) | ((2 * k + 1) << 8))));
}

/* sum_k mn[k] * (bsums[2k] + bsums[2k+1]): the K-quant min correction. */
KINLINE int k4_mins_dot(const int16_t *bsums, __m128i mins16) {
    const __m256i bs = _mm256_loadu_si256((const __m256i *)bsums);
    const __m128i b8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    return hsum_i32_4(_mm_madd_epi16(mins16, b8));
}

/* ---- Q4_K x Q8_K ------------------------------------------------------- */
/* Repacked layout (kernels.h): two chains A (scales) and B (mins),
 * y = A - B.  Single-token order (BATCHED = 0): one fma per chain and
 * super-block on the super-block's integer sums.  Batched order: one fma
 * per 64-element pair, so
 * the four pair sums I_p are kept apart (a hadd tree per super-block) and
 * the chains of the nt tokens run in the lanes of one xmm (4x4 transposes
 * turn per-token pair vectors into per-pair token vectors). */
KINLINE void tile_q4_K_r(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                         float *restrict y, size_t ldy, const int nt, const int BATCHED) {
    const block_q4_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float A[NT_MAX], B[NT_MAX];
    __m128 Av = _mm_setzero_ps(), Bv = _mm_setzero_ps();
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); A[t] = B[t] = 0.0f; }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i], (int)sizeof w[i]);
        __m256i scales;
        __m128i mins16;
        k4_scales(w[i].scales, &scales, &mins16);
        __m256i sumi[NT_MAX], part[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) sumi[t] = part[t] = _mm256_setzero_si256();
        UNROLL
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            const __m256i sl = lane16(scales, 2 * j), sh = lane16(scales, 2 * j + 1);
            UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][i].qs + 64 * j;
                const __m256i pl = _mm256_madd_epi16(sl,
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8)));
                const __m256i ph = _mm256_madd_epi16(sh,
                    _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32))));
                const __m256i pj = _mm256_add_epi32(pl, ph);
                if (!BATCHED) {
                    sumi[t] = _mm256_add_epi32(sumi[t], pj);
                } else if (j & 1) {
                    /* pairs (j-1, j) -> 4 partial sums each, per 128-bit half */
                    const __m256i h = _mm256_hadd_epi32(part[t], pj);
                    sumi[t] = j == 1 ? h : _mm256_hadd_epi32(sumi[t], h);
                } else {
                    part[t] = pj;
                }
            }
        }
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        if (!BATCHED) {
            UNROLL
            for (int t = 0; t < nt; t++) {
                const float yd = x[t][i].d;
                const int S = hsum_i32_8(sumi[t]), M = k4_mins_dot(x[t][i].bsums, mins16);
                A[t] = fmaf((float)S, dw * yd, A[t]);
                B[t] = fmaf((float)M, mw * yd, B[t]);
            }
        } else {
            /* If[t] = (I_0..I_3) of token t, Nf[t] = (N_0..N_3) */
            __m128 If[4], Nf[4];
            float dx[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            UNROLL
            for (int t = 0; t < 4; t++) {
                if (t < nt) {
                    const __m128i I = _mm_add_epi32(_mm256_castsi256_si128(sumi[t]),
                                                    _mm256_extracti128_si256(sumi[t], 1));
                    const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
                    const __m128i b8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs),
                                                      _mm256_extracti128_si256(bs, 1));
                    If[t] = _mm_cvtepi32_ps(I);
                    Nf[t] = _mm_cvtepi32_ps(_mm_madd_epi16(mins16, b8));
                    dx[t] = x[t][i].d;
                } else {
                    If[t] = Nf[t] = _mm_setzero_ps();
                }
            }
            _MM_TRANSPOSE4_PS(If[0], If[1], If[2], If[3]);
            _MM_TRANSPOSE4_PS(Nf[0], Nf[1], Nf[2], Nf[3]);
            const __m128 dxv = _mm_loadu_ps(dx);
            const __m128 D = _mm_mul_ps(_mm_set1_ps(dw), dxv), Dm = _mm_mul_ps(_mm_set1_ps(mw), dxv);
            UNROLL
            for (int p = 0; p < 4; p++) {
                Av = _mm_fmadd_ps(If[p], D, Av);
                Bv = _mm_fmadd_ps(Nf[p], Dm, Bv);
            }
        }
    }
    if (!BATCHED) {
        UNROLL
        for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = A[t] - B[t];
    } else {
        float r[4];
        _mm_storeu_ps(r, _mm_sub_ps(Av, Bv));
        UNROLL
        for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = r[t];
    }
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

/* Single-token repacked order, eight rows per tile (decode): the same
 * float chains as tile_q4_K_rs, with the eight rows' A and B in the lanes
 * of one ymm each.  Per row and super-block, eight 32-element chunks of
 * vpmaddubsw + vpmaddwd by the chunk's scale; the block header (d, dmin,
 * 12 scale bytes) is one 16-byte load, unpacked in an xmm; the eight rows'
 * integer sums meet in one hadd tree.  Activations are loaded once per
 * super-block for all eight rows. */
KINLINE __m128i q4k_hdr_scales(__m128i h) {
    /* dwords [d|dmin, u0, u1, u2] -> bytes [sc0..3, sc4..7, mn0..3, mn4..7] */
    const __m128i p = _mm_shuffle_epi32(h, _MM_SHUFFLE(3, 2, 3, 1));   /* u0 u2 u1 u2 */
    const __m128i q = _mm_srlv_epi32(p, _mm_setr_epi32(0, 0, 0, 4));
    const __m128i lo = _mm_and_si128(q, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m128i r = _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 2, 1, 1));   /* u0 u0 u1 u1 */
    const __m128i hi = _mm_and_si128(_mm_srli_epi32(r, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    return _mm_or_si128(lo, hi);
}

#define Q4KR8_PF 24
static void rows8_q4_K_rs(int nb, const char *w, size_t ws, const block_q8_K *x, float *y) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 A = _mm256_setzero_ps(), B = _mm256_setzero_ps();
    /* prefetch (to L2) Q4KR8_PF super-blocks ahead in the order the tiles
     * read them: past a row's end, in the same row of the next tile */
    size_t pft = Q4KR8_PF / nb;
    int pfb = Q4KR8_PF % nb;
    for (int i = 0; i < nb; i++) {
        const size_t off = (size_t)i * sizeof(block_q4_K);
        const size_t pfo = pft * 8 * ws + (size_t)pfb * sizeof(block_q4_K);
        if (++pfb == nb) { pfb = 0; pft++; }
        __m256i X[8];
        UNROLL
        for (int k = 0; k < 8; k++) X[k] = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k));
        const __m128i b8 = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x[i].bsums),
                                          _mm_loadu_si128((const __m128i *)(x[i].bsums + 8)));
        __m256i S[8];
        __m128i M[8];
        UNROLL
        for (int r = 0; r < 8; r++) {
            const block_q4_K *b = (const block_q4_K *)(w + (size_t)r * ws + off);
            const char *pf = w + (size_t)r * ws + pfo;
            _mm_prefetch(pf, _MM_HINT_T1);
            _mm_prefetch(pf + 64, _MM_HINT_T1);
            _mm_prefetch(pf + 128, _MM_HINT_T1);
            const __m128i dec = q4k_hdr_scales(_mm_loadu_si128((const __m128i *)b));
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(dec));
            M[r] = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_srli_si128(dec, 8)), b8);
            __m256i s = _mm256_setzero_si256();
            UNROLL
            for (int p = 0; p < 4; p++) {
                const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * p));
                const __m256i lo = _mm256_and_si256(bits, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                s = _mm256_add_epi32(s, _mm256_madd_epi16(lane16(sc, 2 * p), _mm256_maddubs_epi16(lo, X[2 * p])));
                s = _mm256_add_epi32(s, _mm256_madd_epi16(lane16(sc, 2 * p + 1), _mm256_maddubs_epi16(hi, X[2 * p + 1])));
            }
            S[r] = s;
        }
        const __m256i Si = hsum8x8_i32(S);
        /* mins: pairs of rows, then a hadd tree -> rows 0 2 4 6 | 1 3 5 7 */
        const __m256i m01 = _mm256_setr_m128i(M[0], M[1]), m23 = _mm256_setr_m128i(M[2], M[3]);
        const __m256i m45 = _mm256_setr_m128i(M[4], M[5]), m67 = _mm256_setr_m128i(M[6], M[7]);
        const __m256i mh = _mm256_hadd_epi32(_mm256_hadd_epi32(m01, m23), _mm256_hadd_epi32(m45, m67));
        const __m256i Mi = _mm256_permutevar8x32_epi32(mh, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        const block_q4_K *b0 = (const block_q4_K *)(w + off);
#define HD(r) (short)((const block_q4_K *)((const char *)b0 + (size_t)(r) * ws))->d
#define HM(r) (short)((const block_q4_K *)((const char *)b0 + (size_t)(r) * ws))->dmin
        const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(HD(0), HD(1), HD(2), HD(3), HD(4), HD(5), HD(6), HD(7)));
        const __m256 dm = _mm256_cvtph_ps(_mm_setr_epi16(HM(0), HM(1), HM(2), HM(3), HM(4), HM(5), HM(6), HM(7)));
#undef HD
#undef HM
        const __m256 xd = _mm256_set1_ps(x[i].d);
        A = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Si), _mm256_mul_ps(dw, xd), A);
        B = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Mi), _mm256_mul_ps(dm, xd), B);
    }
    _mm256_storeu_ps(y, _mm256_sub_ps(A, B));
}

/* gemm_rs: one token (decode), rows eight at a time, the rest one by one;
 * two or three tokens (a prefill's tail) through the multi-token tile */
static void gemm_q4_K_rs8(int n, const void *restrict vw, size_t ws, int nr, const void *restrict vx,
                          size_t xs, int nt, float *restrict y, size_t ldy) {
    if (nt > 1) {
        gemm_q4_K_rs(n, vw, ws, nr, vx, xs, nt, y, ldy);
        return;
    }
    for (int t = 0; t < nt; t++) {
        const block_q8_K *x = XROW(block_q8_K, vx, xs, t);
        float *yt = y + (size_t)t * ldy;
        int r = 0;
        for (; r + 8 <= nr; r += 8) rows8_q4_K_rs(n / QK_K, (const char *)vw + (size_t)r * ws, ws, x, yt + r);
        for (; r < nr; r++) tile_q4_K_rs(n, (const char *)vw + (size_t)r * ws, x, 0, yt + r, 0, 1);
    }
}

/* Plain layout: the scales' lanes in eight float chains (as Q5_K), the
 * mins' four pair sums in the four lanes of an xmm chain. */
KINLINE void tile_q4_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q4_K *w = vw;
    const block_q8_K *x[NT_MAX];
    __m256 acc[NT_MAX];
    __m128 am[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) {
        x[t] = XROW(block_q8_K, vx, xs, t);
        acc[t] = _mm256_setzero_ps();
        am[t] = _mm_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i], (int)sizeof w[i]);
        __m256i scales;
        __m128i mins16;
        k4_scales(w[i].scales, &scales, &mins16);
        __m256i sumi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            const __m256i sl = lane16(scales, 2 * j), sh = lane16(scales, 2 * j + 1);
            UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][i].qs + 64 * j;
                const __m256i pl = _mm256_madd_epi16(sl,
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8)));
                const __m256i ph = _mm256_madd_epi16(sh,
                    _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32))));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
            }
        }
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float yd = x[t][i].d;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
            const __m128i b8 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(yd * dw), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            am[t] = _mm_fmadd_ps(_mm_set1_ps(-yd * mw), _mm_cvtepi32_ps(_mm_madd_epi16(mins16, b8)), am[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) {
        __m128 m = _mm_add_ps(am[t], _mm_movehl_ps(am[t], am[t]));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        y[(size_t)t * ldy] = hsum8(acc[t]) + _mm_cvtss_f32(m);
    }
}
DEFINE_KERNELS(q4_K, tile_q4_K)

/* ---- Q5_K x Q8_K:  Q4_K plus a fifth bit from qh ------------------------ */
KINLINE __m256i bit_to_16(__m256i hb, int bit) {
    const __m256i sel = _mm256_set1_epi8((char)(1 << bit));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, sel), sel),
                            _mm256_set1_epi8(16));
}

KINLINE void tile_q5_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q5_K *w = vw;
    const block_q8_K *x[NT_MAX];
    __m256 acc[NT_MAX];
    float sm[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) {
        x[t] = XROW(block_q8_K, vx, xs, t);
        acc[t] = _mm256_setzero_ps();
        sm[t] = 0.0f;
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i], (int)sizeof w[i]);
        __m256i scales;
        __m128i mins16;
        k4_scales(w[i].scales, &scales, &mins16);
        const __m256i hb = _mm256_loadu_si256((const __m256i *)w[i].qh);
        __m256i sumi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL
        for (int j = 0; j < QK_K / 64; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * j));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), bit_to_16(hb, 2 * j));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                               bit_to_16(hb, 2 * j + 1));
            const __m256i sl = lane16(scales, 2 * j), sh = lane16(scales, 2 * j + 1);
            UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][i].qs + 64 * j;
                const __m256i pl = _mm256_madd_epi16(sl,
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8)));
                const __m256i ph = _mm256_madd_epi16(sh,
                    _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32))));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
            }
        }
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float yd = x[t][i].d;
            const int M = k4_mins_dot(x[t][i].bsums, mins16);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(yd * dw), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            sm[t] = fmaf(-yd * mw, (float)M, sm[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = hsum8(acc[t]) + sm[t];
}
DEFINE_KERNELS(q5_K, tile_q5_K)

/* ---- Q6_K x Q8_K:  q = (ql nibble | 2 bits of qh << 4) - 32 -------------- */
KINLINE void tile_q6_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q6_K *w = vw;
    const block_q8_K *x[NT_MAX];
    __m256 acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = _mm256_setzero_ps(); }
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i], (int)sizeof w[i]);
        const int8_t *sc = w[i].scales;
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)sc);
        __m256i sumi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w[i].ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(w[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w[i].qh + 32 * h));
            UNROLL
            for (int g = 0; g < 4; g++) {
                /* group g: elements 128h + 32g .. +31 */
                const __m256i lq = g & 1 ? l1 : l0;
                const __m256i nib = g < 2 ? _mm256_and_si256(lq, m4)
                                          : _mm256_and_si256(_mm256_srli_epi16(lq, 4), m4);
                const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), m2);
                const __m256i q = _mm256_or_si256(nib, _mm256_slli_epi16(h2, 4));
                const __m256i s = scale_pair(sc8, 8 * h + 2 * g);
                UNROLL
                for (int t = 0; t < nt; t++) {
                    const __m256i qx = _mm256_loadu_si256(
                        (const __m256i *)(x[t][i].qs + 128 * h + 32 * g));
                    sumi[t] = _mm256_add_epi32(sumi[t],
                        _mm256_madd_epi16(s, _mm256_maddubs_epi16(q, qx)));
                }
            }
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const float dw = h2f(w[i].d);
        UNROLL
        for (int t = 0; t < nt; t++) {
            /* the -32 offset, lane m: 32 * (sc[2m] bsums[2m] + sc[2m+1] bsums[2m+1]) */
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
            const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(x[t][i].d * dw),
                                     _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[t], corr)), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = hsum8(acc[t]);
}
DEFINE_KERNELS(q6_K, tile_q6_K)

/* ---- Q2_K x Q8_K:  x = d sc q - dmin m, q 2-bit ------------------------ */
/* Repacked layout (kernels.h): chains A (scales) and B (mins), y = A - B;
 * the two 128-element halves' sums are kept apart, single-token order
 * (BATCHED = 0) adds them before its one fma per super-block, batched
 * order takes one fma per half. */
KINLINE void tile_q2_K_r(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                         float *restrict y, size_t ldy, const int nt, const int BATCHED) {
    const block_q2_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float A[NT_MAX], B[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); A[t] = B[t] = 0.0f; }
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i], (int)sizeof w[i]);
        const __m128i sraw = _mm_loadu_si128((const __m128i *)w[i].scales);
        const __m128i sc4 = _mm_and_si128(sraw, _mm_set1_epi8(0x0f));
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sraw, 4),
                                                                  _mm_set1_epi8(0x0f)));
        __m256i sumi[2][NT_MAX];
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            UNROLL
            for (int t = 0; t < nt; t++) sumi[h][t] = _mm256_setzero_si256();
            UNROLL
            for (int g = 0; g < 4; g++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m2);
                const __m256i s = scale_pair(sc4, 8 * h + 2 * g);
                UNROLL
                for (int t = 0; t < nt; t++) {
                    const __m256i qx = _mm256_loadu_si256(
                        (const __m256i *)(x[t][i].qs + 128 * h + 32 * g));
                    sumi[h][t] = _mm256_add_epi32(sumi[h][t],
                        _mm256_madd_epi16(s, _mm256_maddubs_epi16(q, qx)));
                }
            }
        }
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float yd = x[t][i].d, D = dw * yd, Dm = mw * yd;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
            const __m256i mm = _mm256_madd_epi16(mins16, bs);   /* lanes 0..3: half 0 */
            const int I0 = hsum_i32_8(sumi[0][t]), I1 = hsum_i32_8(sumi[1][t]);
            const int N0 = hsum_i32_4(_mm256_castsi256_si128(mm)), N1 = hsum_i32_4(_mm256_extracti128_si256(mm, 1));
            if (!BATCHED) {
                A[t] = fmaf((float)(I0 + I1), D, A[t]);
                B[t] = fmaf((float)(N0 + N1), Dm, B[t]);
            } else {
                A[t] = fmaf((float)I0, D, A[t]);
                B[t] = fmaf((float)N0, Dm, B[t]);
                A[t] = fmaf((float)I1, D, A[t]);
                B[t] = fmaf((float)N1, Dm, B[t]);
            }
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = A[t] - B[t];
}
KINLINE void tile_q2_K_rs(int n, const void *restrict w, const void *restrict x, size_t xs,
                          float *restrict y, size_t ldy, const int nt) {
    tile_q2_K_r(n, w, x, xs, y, ldy, nt, 0);
}
KINLINE void tile_q2_K_rb(int n, const void *restrict w, const void *restrict x, size_t xs,
                          float *restrict y, size_t ldy, const int nt) {
    tile_q2_K_r(n, w, x, xs, y, ldy, nt, 1);
}

/* Plain layout (llama.cpp's AVX2 vec_dot, scalar.c): eight lane chains,
 * mins term first, then the scaled lane sums. */
KINLINE void tile_q2_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q2_K *w = vw;
    const block_q8_K *x[NT_MAX];
    __m256 acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = _mm256_setzero_ps(); }
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i], (int)sizeof w[i]);
        const uint8_t *sc = w[i].scales;
        const __m128i sraw = _mm_loadu_si128((const __m128i *)sc);
        const __m128i sc4 = _mm_and_si128(sraw, _mm_set1_epi8(0x0f));
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sraw, 4),
                                                                  _mm_set1_epi8(0x0f)));
        __m256i sumi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            UNROLL
            for (int g = 0; g < 4; g++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m2);
                const __m256i s = scale_pair(sc4, 8 * h + 2 * g);
                UNROLL
                for (int t = 0; t < nt; t++) {
                    const __m256i qx = _mm256_loadu_si256(
                        (const __m256i *)(x[t][i].qs + 128 * h + 32 * g));
                    sumi[t] = _mm256_add_epi32(sumi[t],
                        _mm256_madd_epi16(s, _mm256_maddubs_epi16(q, qx)));
                }
            }
        }
        const float dw = h2f(w[i].d), mw = h2f(w[i].dmin);
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float yd = x[t][i].d;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(-yd * mw),
                                     _mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, bs)), acc[t]);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(yd * dw), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = hsum8(acc[t]);
}
DEFINE_KERNELS(q2_K, tile_q2_K)
DEFINE_KERNELS(q2_K_rs, tile_q2_K_rs)
DEFINE_KERNELS(q2_K_rb, tile_q2_K_rb)

/* ---- Q3_K x Q8_K:  q = 2 low bits - (hmask bit clear ? 4 : 0) ----------- */

/* 12 bytes -> 16 six-bit scales minus 32, as 16 int8 in a register (the
 * words of quant_k3_scale_words). */
KINLINE __m128i k3_scales(const uint8_t *b) {
    uint32_t s[4];
    quant_k3_scale_words(b, s);
    return _mm_sub_epi8(_mm_set_epi32((int)s[3], (int)s[2], (int)s[1], (int)s[0]), _mm_set1_epi8(32));
}

KINLINE void tile_q3_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q3_K *w = vw;
    const block_q8_K *x[NT_MAX];
    __m256 acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = _mm256_setzero_ps(); }
    const __m256i m2 = _mm256_set1_epi8(0x03), four = _mm256_set1_epi8(4);
    const int nb = n / QK_K;
    for (int i = 0; i < nb; i++) {
        prefetch_w(&w[i], (int)sizeof w[i]);
        const __m128i sc8 = k3_scales(w[i].scales);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)w[i].hmask);
        __m256i sumi[NT_MAX];
        UNROLL
        for (int t = 0; t < nt; t++) sumi[t] = _mm256_setzero_si256();
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * h));
            UNROLL
            for (int g = 0; g < 4; g++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m2);
                const __m256i sel = _mm256_set1_epi8((char)(1 << (4 * h + g)));
                const __m256i neg4 = _mm256_andnot_si256(
                    _mm256_cmpeq_epi8(_mm256_and_si256(hm, sel), sel), four);
                const __m256i s = scale_pair(sc8, 8 * h + 2 * g);
                UNROLL
                for (int t = 0; t < nt; t++) {
                    const __m256i qx = _mm256_loadu_si256(
                        (const __m256i *)(x[t][i].qs + 128 * h + 32 * g));
                    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, qx),
                                                       _mm256_maddubs_epi16(neg4, qx));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(s, p));
                }
            }
        }
        const float dw = h2f(w[i].d);
        UNROLL
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(x[t][i].d * dw), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = hsum8(acc[t]);
}
DEFINE_KERNELS(q3_K, tile_q3_K)

/* ---- F32 / F16 (activations in the same type) ---------------------------- */
KINLINE __m256 ld_f32(const void *p, int i) { return _mm256_loadu_ps((const float *)p + i); }
KINLINE __m256 ld_f16(const void *p, int i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
KINLINE float el_f32(const void *p, int i) { return ((const float *)p)[i]; }
KINLINE float el_f16(const void *p, int i) { return h2f(((const uint16_t *)p)[i]); }

/* Two accumulators per token (16 elements per step), 8-wide then scalar
 * tails; the element loaders make this one template for F32 and F16. */
#define DEFINE_FLOAT_TILE(name, LD, EL)                                                 \
    KINLINE void tile_##name(int n, const void *restrict w, const void *restrict vx,    \
                             size_t xs, float *restrict y, size_t ldy, const int nt) {  \
        const void *x[NT_MAX];                                                          \
        __m256 a0[NT_MAX], a1[NT_MAX];                                                  \
        for (int t = 0; t < nt; t++) {                                                  \
            x[t] = (const char *)vx + (size_t)t * xs;                                   \
            a0[t] = _mm256_setzero_ps();                                                \
            a1[t] = _mm256_setzero_ps();                                                \
        }                                                                               \
        int i = 0;                                                                      \
        for (; i + 16 <= n; i += 16) {                                                  \
            const __m256 w0 = LD(w, i), w1 = LD(w, i + 8);                              \
            for (int t = 0; t < nt; t++) {                                              \
                a0[t] = _mm256_fmadd_ps(w0, LD(x[t], i), a0[t]);                        \
                a1[t] = _mm256_fmadd_ps(w1, LD(x[t], i + 8), a1[t]);                    \
            }                                                                           \
        }                                                                               \
        for (int t = 0; t < nt; t++) {                                                  \
            float s = hsum8(_mm256_add_ps(a0[t], a1[t]));                               \
            for (int k = i; k < n; k++) s = fmaf(EL(w, k), EL(x[t], k), s);             \
            y[(size_t)t * ldy] = s;                                                     \
        }                                                                               \
    }                                                                                   \
    DEFINE_KERNELS(name, tile_##name)

DEFINE_FLOAT_TILE(f32, ld_f32, el_f32)
DEFINE_FLOAT_TILE(f16, ld_f16, el_f16)

/* ---- BF16: vdpbf16ps emulated (llama.cpp's two orders, scalar.c) -------
 *
 * A 32-element chunk is 16 lanes, lane j the pair (2j, 2j+1): 16 bf16 in a
 * ymm are 8 dwords whose high halves are the odd elements and low halves
 * the even ones, so `and 0xffff0000` and `<< 16` give them as f32.  Each
 * step is acc = ftz(fma(odd_w, odd_x, acc)), then the even pair, inputs
 * DAZ (done on the 16-bit values: a zero exponent keeps only the sign),
 * exactly as scalar.c's kern_bf16_dp32.  Lanes 0-7 live in lo, 8-15 in hi;
 * the reductions and tails are scalar.c's finishers. */
typedef struct { __m256 lo, hi; } bf_acc;

/* 16 bf16 from p, subnormals flushed to signed zeros, split into odd and
 * even elements as f32. */
KINLINE void bf_load(const uint16_t *p, __m256 *odd, __m256 *even) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    const __m256i tiny = _mm256_cmpeq_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7f80)),
                                            _mm256_setzero_si256());
    v = _mm256_andnot_si256(_mm256_and_si256(tiny, _mm256_set1_epi16(0x7fff)), v);
    *odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
    *even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* FTZ: |v| < FLT_MIN (NaN excluded) -> zero of v's sign */
KINLINE __m256 bf_ftz(__m256 v) {
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 tiny = _mm256_cmp_ps(_mm256_and_ps(v, abs), _mm256_set1_ps(1.17549435e-38f), _CMP_LT_OQ);
    return _mm256_andnot_ps(_mm256_and_ps(tiny, abs), v);
}

KINLINE __m256 bf_step(__m256 acc, __m256 wo, __m256 we, __m256 xo, __m256 xe) {
    acc = bf_ftz(_mm256_fmadd_ps(wo, xo, acc));
    return bf_ftz(_mm256_fmadd_ps(we, xe, acc));
}

/* The chunk at offset i of R weight rows times T tokens into c[r][t]. */
KINLINE void bf_chunk(bf_acc c[4][4], const uint16_t *w, size_t ws, const int R,
                      const uint16_t *x, size_t xs, const int T, int i) {
    UNROLL
    for (int h = 0; h < 2; h++) {
        __m256 xo[4], xe[4];
        UNROLL
        for (int t = 0; t < T; t++) bf_load(x + (size_t)t * xs + i + 16 * h, &xo[t], &xe[t]);
        UNROLL
        for (int r = 0; r < R; r++) {
            __m256 wo, we;
            bf_load(w + (size_t)r * ws + i + 16 * h, &wo, &we);
            UNROLL
            for (int t = 0; t < T; t++) {
                if (h == 0) c[r][t].lo = bf_step(c[r][t].lo, wo, we, xo[t], xe[t]);
                else c[r][t].hi = bf_step(c[r][t].hi, wo, we, xo[t], xe[t]);
            }
        }
    }
}

KINLINE void bf_store(bf_acc a, float out[16]) {
    _mm256_storeu_ps(out, a.lo);
    _mm256_storeu_ps(out + 8, a.hi);
}

/* R rows (stride ws elements) x T tokens (stride xs), batched or single
 * order; y[t*ldy + r]. */
KINLINE void bf_tile(int n, const uint16_t *w, size_t ws, const int R, const uint16_t *x,
                     size_t xs, const int T, float *y, size_t ldy, const int single) {
    bf_acc c1[4][4], c2[4][4];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) {
            c1[r][t].lo = c1[r][t].hi = _mm256_setzero_ps();
            c2[r][t] = c1[r][t];
        }
    int i = 0;
    if (single) {
        for (; i + 64 <= n; i += 64) {
            bf_chunk(c1, w, ws, R, x, xs, T, i);
            bf_chunk(c2, w, ws, R, x, xs, T, i + 32);
        }
    } else {
        for (; i + 32 <= n; i += 32) bf_chunk(c1, w, ws, R, x, xs, T, i);
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) {
            float a1[16], a2[16];
            const uint16_t *wr = w + (size_t)r * ws, *xt = x + (size_t)t * xs;
            bf_store(c1[r][t], a1);
            if (single) {
                bf_store(c2[r][t], a2);
                y[(size_t)t * ldy + r] = kern_bf16_finish_single(a1, a2, wr, xt, i, n);
            } else {
                y[(size_t)t * ldy + r] = kern_bf16_finish_batched(a1, wr, xt, i, n);
            }
        }
}

/* Tiles of BF_R rows x BF_T tokens, remainders with smaller constants. */
#define BF_R 2
#define BF_T 2
#define DEFINE_BF16_GEMM(name, SINGLE)                                                         \
    static void gemm_##name(int n, const void *restrict vw, size_t w_stride, int nr,           \
                            const void *restrict vx, size_t x_stride, int nt, float *restrict y, \
                            size_t ldy) {                                                      \
        const size_t ws = w_stride / 2, xs = x_stride / 2;                                     \
        for (int t = 0; t < nt; t += BF_T) {                                                   \
            const uint16_t *x = (const uint16_t *)vx + (size_t)t * xs;                         \
            for (int r = 0; r < nr; r += BF_R) {                                               \
                const uint16_t *w = (const uint16_t *)vw + (size_t)r * ws;                     \
                float *yy = y + (size_t)t * ldy + r;                                           \
                const int R = nr - r < BF_R ? nr - r : BF_R, T = nt - t < BF_T ? nt - t : BF_T; \
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

/* ---- conversions ------------------------------------------------------- */

/* f32 -> bf16 as ggml's from_float (quant.c's nj_fp32_to_bf16): round to
 * nearest even on the upper half, NaN kept quiet (| 0x40), subnormals kept;
 * 8 at a time in 32-bit lanes. */
KINLINE __m256i bf16_round8(__m256 f) {
    const __m256i u = _mm256_castps_si256(f);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    return _mm256_blendv_epi8(r, q, nan);
}

static void from_float_bf16(const float *restrict x, void *restrict vy, int64_t n) {
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = bf16_round8(_mm256_loadu_ps(x + i)), b = bf16_round8(_mm256_loadu_ps(x + i + 8));
        /* packus interleaves 128-bit halves: a0 b0 a1 b1 -> a0 a1 b0 b1 */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++) y[i] = nj_fp32_to_bf16(x[i]);
}
static void to_float_f16(const void *restrict vx, float *restrict y, int64_t n) {
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = h2f(x[i]);
}

static void from_float_f16(const float *restrict x, void *restrict vy, int64_t n) {
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = kern_fp32_to_fp16(x[i]);
}

/* ---- activation quantizers (x86 numerics, see scalar.c) ----------------- */

/* Round half even, convert, pack 4 x 8 int32 to 32 int8 in order (the
 * packs work per 128-bit lane; the permute restores element order). */
KINLINE __m256i pack_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i a = _mm256_packs_epi32(i0, i1), b = _mm256_packs_epi32(i2, i3);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b),
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

KINLINE __m256i rne_epi32(__m256 v) {
    return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

KINLINE float amax32(const __m256 v[4]) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, v[0]);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[1]));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[2]));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[3]));
    __m128 r = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static void quantize_q8_0(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m256 v[4];
        UNROLL
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        const float amax = amax32(v);
        const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = kern_fp32_to_fp16(d);
        const __m256 mul = _mm256_set1_ps(id);
        __m256i q[4];
        UNROLL
        for (int k = 0; k < 4; k++) q[k] = rne_epi32(_mm256_mul_ps(v[k], mul));
        _mm256_storeu_si256((__m256i *)y[i].qs, pack_i8(q[0], q[1], q[2], q[3]));
    }
}

static void quantize_q8_1(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        __m256 v[4];
        UNROLL
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        const float amax = amax32(v);
        const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = kern_fp32_to_fp16(d);
        const __m256 mul = _mm256_set1_ps(id);
        __m256i q[4];
        UNROLL
        for (int k = 0; k < 4; k++) q[k] = rne_epi32(_mm256_mul_ps(v[k], mul));
        const int sum = hsum_i32_8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
                                                    _mm256_add_epi32(q[2], q[3])));
        y[i].s = kern_fp32_to_fp16(d * (float)sum);
        _mm256_storeu_si256((__m256i *)y[i].qs, pack_i8(q[0], q[1], q[2], q[3]));
    }
}

static void quantize_q8_K(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        __m128 r = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        r = _mm_max_ps(r, _mm_movehl_ps(r, r));
        r = _mm_max_ss(r, _mm_movehdup_ps(r));
        const float amax = _mm_cvtss_f32(r);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the first element whose |x| is the maximum sets the sign */
        const __m256 vmax = _mm256_set1_ps(amax);
        float max = amax;
        for (int k = 0; k < QK_K; k += 8) {
            const int hit = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), vmax, _CMP_EQ_OQ));
            if (hit) { max = x[k + __builtin_ctz((unsigned)hit)]; break; }
        }
        const float iscale = -127.0f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q[4];
            UNROLL
            for (int u = 0; u < 4; u++) q[u] = rne_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * u), mul));
            y[i].bsums[k / 16] = (int16_t)hsum_i32_8(_mm256_add_epi32(q[0], q[1]));
            y[i].bsums[k / 16 + 1] = (int16_t)hsum_i32_8(_mm256_add_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(y[i].qs + k), pack_i8(q[0], q[1], q[2], q[3]));
        }
        y[i].d = 1.0f / iscale;
    }
}

void kern_avx2_fill(nj_kernels *k, uint32_t features) {
    (void)features;
    KERN_SET(k, NJ_Q4_0, vec_dot_q4_0, gemmv_q4_0);
    KERN_SET(k, NJ_Q4_1, vec_dot_q4_1, gemmv_q4_1);
    KERN_SET(k, NJ_Q5_0, vec_dot_q5_0, gemmv_q5_0);
    KERN_SET(k, NJ_Q5_1, vec_dot_q5_1, gemmv_q5_1);
    KERN_SET(k, NJ_Q8_0, vec_dot_q8_0, gemmv_q8_0);
    KERN_SET(k, NJ_Q2_K, vec_dot_q2_K, gemm_q2_K);
    KERN_SET_ORDERS(k, NJ_Q2_K, vec_dot_q2_K_rs, gemm_q2_K_rs, vec_dot_q2_K_rb, gemm_q2_K_rb);
    KERN_SET_ORDERS(k, NJ_Q4_0, vec_dot_q4_0_r, gemm_q4_0_r, vec_dot_q4_0_r, gemm_q4_0_r);
    KERN_SET(k, NJ_Q3_K, vec_dot_q3_K, gemm_q3_K);
    KERN_SET(k, NJ_Q4_K, vec_dot_q4_K, gemm_q4_K);
    KERN_SET_ORDERS(k, NJ_Q4_K, vec_dot_q4_K_rs, gemm_q4_K_rs8, vec_dot_q4_K_rb, gemm_q4_K_rb);
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
    k->from_float[NJ_BF16] = from_float_bf16;
    k->to_float[NJ_F16] = to_float_f16;
}
