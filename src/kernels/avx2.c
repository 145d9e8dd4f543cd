/*
 * avx2 — AVX2 + FMA + F16C kernels for every weight type.
 *
 * Structure.  Each weight type has one *tile* function: one weight row
 * against nt (1..4, a compile-time constant after inlining) activation
 * rows.  The weight block is loaded and unpacked once and multiplied with
 * each token's activations; each token has its own accumulators and
 * follows the canonical float order of scalar.c (exact int32 block sums
 * reduced to one integer per block, then the fixed fma chains), so results
 * equal the scalar level's bit for bit whatever nt is (vec_dot is the
 * nt = 1 case).  The weight stream is prefetched 1.5 KB ahead so decode
 * (a GEMV from DRAM) overlaps memory and compute.
 *
 * Integer core.  Weights are made non-negative bytes (nibbles, 5/6-bit
 * values, or |w| with the sign moved onto the activation), activations are
 * int8 in [-127, 127]; vpmaddubsw multiplies pairs into int16 (no
 * saturation is possible: |2 * 255 * 127| < 32768 for every format here
 * except the |w|*x of Q8_0, bounded by 2 * 128 * 127 = 32512), vpmaddwd
 * applies a per-sub-block scale (or 1) and widens to int32.  Offsets (Q4_0's
 * -8, Q6_K's -32, K-quant mins) are folded in through the activation block
 * sums where the format provides them.
 *
 * Activation quantizers reproduce scalar.c's x86 variants byte for byte.
 */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <math.h>

#define KINLINE static inline __attribute__((always_inline))
/* Small constant-trip loops (rows, tokens, sub-blocks) must be unrolled
 * so their accumulators live in registers; -O2 alone does not. */
#define UNROLL _Pragma("GCC unroll 16")
#define NT_MAX 4

KINLINE float h2f(nj_half h) { return _cvtsh_ss(h); }

KINLINE float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

KINLINE int hsum_i32_8(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(1, 0, 3, 2)));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(r);
}

KINLINE int hsum_i32_4(__m128i r) {
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(1, 0, 3, 2)));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(r);
}

/* int16 pairs -> int32 -> float. */
KINLINE __m256 i16pairs_f(__m256i v) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(v, _mm256_set1_epi16(1)));
}

/* 32 nibbles: element j < 16 is the low nibble of q[j], j >= 16 the high
 * nibble of q[j-16]. */
KINLINE __m256i nibbles32(const uint8_t *q) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw),
                            _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, 0xff where the bit is set (bit j -> byte j). */
KINLINE __m256i bits32(const uint8_t *p) {
    uint32_t b;
    memcpy(&b, p, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
}

/* Scale vector for 32 elements split in two 16-element halves with scales
 * sc8[k] (elements 0..15) and sc8[k+1] (16..31), from 16 int8 scales in a
 * register, as int16 for vpmaddwd after vpmaddubsw (int16 lane m holds
 * elements 2m, 2m+1; lanes 0..7 sit in the low 128 bits): one byte shuffle
 * and one sign extension. */
KINLINE __m256i scale_pair(__m128i sc8, const int k) {
    const __m128i sel = _mm_setr_epi8((char)k, (char)k, (char)k, (char)k, (char)k, (char)k, (char)k, (char)k,
                                      (char)(k + 1), (char)(k + 1), (char)(k + 1), (char)(k + 1),
                                      (char)(k + 1), (char)(k + 1), (char)(k + 1), (char)(k + 1));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, sel));
}

/* Tile glue: vec_dot is the one-token tile; gemm walks tokens in groups of
 * four (outer, so their activations stay in L1) and rows (inner). */
#define DEFINE_KERNELS(name, tile)                                                      \
    static void vec_dot_##name(int n, float *restrict s, const void *restrict w,       \
                               const void *restrict x) {                               \
        tile(n, w, x, 0, s, 0, 1);                                                      \
    }                                                                                   \
    static void gemm_##name(int n, const void *restrict w, size_t ws, int nr,          \
                            const void *restrict x, size_t xs, int nt,                 \
                            float *restrict y, size_t ldy) {                           \
        const char *wb = w, *xb = x;                                                    \
        int t = 0;                                                                      \
        for (; t + NT_MAX <= nt; t += NT_MAX)                                           \
            for (int r = 0; r < nr; r++)                                                \
                tile(n, wb + (size_t)r * ws, xb + (size_t)t * xs, xs,                   \
                     y + (size_t)t * ldy + r, ldy, NT_MAX);                             \
        const int rem = nt - t;                                                         \
        for (int r = 0; r < nr && rem; r++) {                                           \
            const char *wr = wb + (size_t)r * ws, *xt = xb + (size_t)t * xs;            \
            float *yt = y + (size_t)t * ldy + r;                                        \
            if (rem == 3) tile(n, wr, xt, xs, yt, ldy, 3);                              \
            else if (rem == 2) tile(n, wr, xt, xs, yt, ldy, 2);                         \
            else tile(n, wr, xt, xs, yt, ldy, 1);                                       \
        }                                                                               \
    }

#define XROW(T, vx, xs, t) ((const T *)((const char *)(vx) + (size_t)(t) * (xs)))

/* Software prefetch of the weight stream PF_AHEAD bytes ahead of the block
 * being read (rows are contiguous, so near a row's end this fetches the
 * next row).  Decode reads every weight once from DRAM; without it the
 * kernels wait for memory between blocks instead of overlapping, and a
 * GEMV reaches about half the machine's read bandwidth. */
#define PF_AHEAD 1536
KINLINE void prefetch_w(const void *p, const int bytes) {
    const char *c = (const char *)p + PF_AHEAD;
    for (int o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

/* ---- 32-element formats ------------------------------------------------
 *
 * Blocks are taken eight at a time.  Each block's exact int32 dot product
 * (8 lanes) is reduced to one integer S by a hadd tree, the eight S values
 * go to float in one vector, and the four canonical chains (block i ->
 * chain i % 4) live in the four lanes of an xmm accumulator:  lanes 0..3 of
 * a group are blocks 8j..8j+3, lanes 4..7 blocks 8j+4..8j+7, both mapping
 * onto chains 0..3 in order.  A short last group is zero-padded (a zero
 * block adds fma(0, 0, c) = c). */

/* S[k] = sum of the 8 int32 lanes of p[k], k = 0..7. */
KINLINE __m256i reduce8(const __m256i p[8]) {
    const __m256i a01 = _mm256_hadd_epi32(p[0], p[1]), a23 = _mm256_hadd_epi32(p[2], p[3]);
    const __m256i a45 = _mm256_hadd_epi32(p[4], p[5]), a67 = _mm256_hadd_epi32(p[6], p[7]);
    const __m256i b0 = _mm256_hadd_epi32(a01, a23), b1 = _mm256_hadd_epi32(a45, a67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20),
                            _mm256_permute2x128_si256(b0, b1, 0x31));
}

/* The first 32-bit word of 8 consecutive blocks of `size` bytes: every
 * format here starts with its fp16 d, and Q4_1/Q5_1/Q8_1 follow it with m
 * or s, so one gather fetches both.  (Assembling them with scalar stores
 * and a vector reload would stall on store forwarding.) */
KINLINE __m256i head8(const void *blocks, int size) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32(size));
    return _mm256_i32gather_epi32((const int *)blocks, idx, 1);
}

/* fp16 in the low (hi = 0) or high (hi = 1) half of each 32-bit lane -> f32 */
KINLINE __m256 half_lanes(__m256i v, const int hi) {
    v = hi ? _mm256_srli_epi32(v, 16) : _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(p));
}

KINLINE float chains4_finish(__m128 c) {
    const __m128 t = _mm_add_ps(c, _mm_shuffle_ps(c, c, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehl_ps(t, t)));
}

/* Unpackers: 32 weights of one block as bytes (signed or unsigned). */
KINLINE __m256i unpack_q8_0(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }
KINLINE __m256i unpack_q4_0(const block_q4_0 *b) {
    return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
}
KINLINE __m256i unpack_q5_0(const block_q5_0 *b) {
    /* where bit 4 is clear, q - 16 == q | 0xf0 as int8 */
    const __m256i hi = _mm256_andnot_si256(bits32(b->qh), _mm256_set1_epi8((char)0xf0));
    return _mm256_or_si256(nibbles32(b->qs), hi);
}
KINLINE __m256i unpack_q4_1(const block_q4_1 *b) { return nibbles32(b->qs); }
KINLINE __m256i unpack_q5_1(const block_q5_1 *b) {
    return _mm256_or_si256(nibbles32(b->qs), _mm256_and_si256(bits32(b->qh), _mm256_set1_epi8(0x10)));
}


/* SIGNED: weights are signed bytes (|w| x sign-moved activations);
 * otherwise unsigned.  HAS_M: Q4_1/Q5_1's "+ m * s" term. */
#define DEFINE_B32(name, WT, XT, SIGNED, HAS_M)                                         \
    KINLINE void group8_##name(const WT *w, const XT *const *x, int xoff, __m128 *acc,  \
                               const int nt) {                                          \
        __m256i wq[8], wa[8];                                                           \
        UNROLL                                                                          \
        for (int k = 0; k < 8; k++) {                                                   \
            wq[k] = unpack_##name(&w[k]);                                               \
            if (SIGNED) wa[k] = _mm256_sign_epi8(wq[k], wq[k]);                         \
        }                                                                               \
        const __m256i wh = head8(w, (int)sizeof(WT));                                   \
        const __m256 dw = half_lanes(wh, 0);                                            \
        const __m256 mw = HAS_M ? half_lanes(wh, 1) : _mm256_setzero_ps();              \
        const __m256i ones = _mm256_set1_epi16(1);                                      \
        UNROLL                                                                          \
        for (int t = 0; t < nt; t++) {                                                  \
            const XT *xb = x[t] + xoff;                                                 \
            __m256i p[8];                                                               \
            UNROLL                                                                      \
            for (int k = 0; k < 8; k++) {                                               \
                const __m256i qx = _mm256_loadu_si256((const __m256i *)xb[k].qs);      \
                const __m256i pr = SIGNED ? _mm256_maddubs_epi16(wa[k], _mm256_sign_epi8(qx, wq[k])) \
                                          : _mm256_maddubs_epi16(wq[k], qx);            \
                p[k] = _mm256_madd_epi16(pr, ones);                                     \
            }                                                                           \
            const __m256i xh = head8(xb, (int)sizeof(XT));                              \
            const __m256 S = _mm256_cvtepi32_ps(reduce8(p));                            \
            const __m256 d = _mm256_mul_ps(dw, half_lanes(xh, 0));                      \
            __m128 a = acc[t];                                                          \
            if (HAS_M) {                                                                \
                const __m256 xs = half_lanes(xh, 1);                                    \
                a = _mm_fmadd_ps(_mm256_castps256_ps128(d), _mm256_castps256_ps128(S), a); \
                a = _mm_fmadd_ps(_mm256_castps256_ps128(mw), _mm256_castps256_ps128(xs), a); \
                a = _mm_fmadd_ps(_mm256_extractf128_ps(d, 1), _mm256_extractf128_ps(S, 1), a); \
                a = _mm_fmadd_ps(_mm256_extractf128_ps(mw, 1), _mm256_extractf128_ps(xs, 1), a); \
            } else {                                                                    \
                a = _mm_fmadd_ps(_mm256_castps256_ps128(d), _mm256_castps256_ps128(S), a); \
                a = _mm_fmadd_ps(_mm256_extractf128_ps(d, 1), _mm256_extractf128_ps(S, 1), a); \
            }                                                                           \
            acc[t] = a;                                                                 \
        }                                                                               \
    }                                                                                   \
    KINLINE void tile_##name(int n, const void *restrict vw, const void *restrict vx,   \
                             size_t xs, float *restrict y, size_t ldy, const int nt) {  \
        const WT *w = vw;                                                               \
        const XT *x[NT_MAX];                                                            \
        __m128 acc[NT_MAX];                                                             \
        for (int t = 0; t < nt; t++) { x[t] = XROW(XT, vx, xs, t); acc[t] = _mm_setzero_ps(); } \
        const int nb = n / 32, nfull = nb & ~7;                                         \
        for (int i = 0; i < nfull; i += 8) {                                            \
            prefetch_w(w + i, (int)sizeof(WT) * 8);                                     \
            group8_##name(w + i, x, i, acc, nt);                                        \
        }                                                                               \
        if (nb > nfull) {                                                               \
            WT wpad[8];                                                                 \
            XT xpad[NT_MAX][8];                                                         \
            const XT *xp[NT_MAX];                                                       \
            memset(wpad, 0, sizeof wpad);                                               \
            memcpy(wpad, w + nfull, sizeof(WT) * (size_t)(nb - nfull));                 \
            for (int t = 0; t < nt; t++) {                                              \
                memset(xpad[t], 0, sizeof xpad[t]);                                     \
                memcpy(xpad[t], x[t] + nfull, sizeof(XT) * (size_t)(nb - nfull));       \
                xp[t] = xpad[t];                                                        \
            }                                                                           \
            group8_##name(wpad, xp, 0, acc, nt);                                        \
        }                                                                               \
        for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = chains4_finish(acc[t]);       \
    }                                                                                   \
    DEFINE_KERNELS(name, tile_##name)

DEFINE_B32(q8_0, block_q8_0, block_q8_0, 1, 0)
DEFINE_B32(q4_0, block_q4_0, block_q8_0, 1, 0)
DEFINE_B32(q5_0, block_q5_0, block_q8_0, 1, 0)
DEFINE_B32(q4_1, block_q4_1, block_q8_1, 0, 1)
DEFINE_B32(q5_1, block_q5_1, block_q8_1, 0, 1)

/* ---- K-quant helpers --------------------------------------------------- */

/* Q4_K / Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins.
 *   j < 4:  sc = b[j] & 63,                    mn = b[j+4] & 63
 *   j >= 4: sc = (b[j+4] & 15) | (b[j-4] >> 6) << 4,
 *           mn = (b[j+4] >> 4) | (b[j] >> 6) << 4
 * done four at a time in 32-bit words, and returned in registers: scales
 * as 8 int16 in both 128-bit halves (for lane broadcasts), mins as 8 int16.
 * (Going through a byte array would cost a store-forwarding stall per
 * super-block.) */
KINLINE void k4_scales(const uint8_t *b, __m256i *scales, __m128i *mins) {
    uint32_t u[3];
    memcpy(u, b, 12);
    const uint32_t s0 = u[0] & 0x3f3f3f3fu;
    const uint32_t s1 = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t m0 = u[1] & 0x3f3f3f3fu;
    const uint32_t m1 = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    const __m128i v = _mm_set_epi32((int)m1, (int)m0, (int)s1, (int)s0);
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
KINLINE void tile_q4_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q4_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = 0.0f; }
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
            const int S = hsum_i32_8(sumi[t]), M = k4_mins_dot(x[t][i].bsums, mins16);
            acc[t] = fmaf(dw * yd, (float)S, acc[t]);
            acc[t] = fmaf(-(mw * yd), (float)M, acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = acc[t];
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
    float acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = 0.0f; }
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
            const int S = hsum_i32_8(sumi[t]), M = k4_mins_dot(x[t][i].bsums, mins16);
            acc[t] = fmaf(dw * yd, (float)S, acc[t]);
            acc[t] = fmaf(-(mw * yd), (float)M, acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = acc[t];
}
DEFINE_KERNELS(q5_K, tile_q5_K)

/* ---- Q6_K x Q8_K:  q = (ql nibble | 2 bits of qh << 4) - 32 -------------- */
KINLINE void tile_q6_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q6_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = 0.0f; }
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
            /* the -32 offset: 32 * sum_g sc[g] * bsums[g] */
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
            const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
            const int S = hsum_i32_8(_mm256_sub_epi32(sumi[t], corr));
            acc[t] = fmaf(dw * x[t][i].d, (float)S, acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = acc[t];
}
DEFINE_KERNELS(q6_K, tile_q6_K)

/* ---- Q2_K x Q8_K:  x = d sc q - dmin m, q 2-bit ------------------------ */
KINLINE void tile_q2_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q2_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = 0.0f; }
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
            const int S = hsum_i32_8(sumi[t]), M = hsum_i32_8(_mm256_madd_epi16(mins16, bs));
            acc[t] = fmaf(dw * yd, (float)S, acc[t]);
            acc[t] = fmaf(-(mw * yd), (float)M, acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = acc[t];
}
DEFINE_KERNELS(q2_K, tile_q2_K)

/* ---- Q3_K x Q8_K:  q = 2 low bits - (hmask bit clear ? 4 : 0) ----------- */

/* 12 bytes -> 16 six-bit scales minus 32, as 16 int8 in a register. */
KINLINE __m128i k3_scales(const uint8_t *b) {
    uint32_t a[3];
    memcpy(a, b, 12);
    const uint32_t m1 = 0x03030303u, m2 = 0x0f0f0f0fu, tmp = a[2];
    const uint32_t s2 = ((a[0] >> 4) & m2) | (((tmp >> 4) & m1) << 4);
    const uint32_t s3 = ((a[1] >> 4) & m2) | (((tmp >> 6) & m1) << 4);
    const uint32_t s0 = (a[0] & m2) | (((tmp >> 0) & m1) << 4);
    const uint32_t s1 = (a[1] & m2) | (((tmp >> 2) & m1) << 4);
    return _mm_sub_epi8(_mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0), _mm_set1_epi8(32));
}

KINLINE void tile_q3_K(int n, const void *restrict vw, const void *restrict vx, size_t xs,
                       float *restrict y, size_t ldy, const int nt) {
    const block_q3_K *w = vw;
    const block_q8_K *x[NT_MAX];
    float acc[NT_MAX];
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = 0.0f; }
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
            acc[t] = fmaf(dw * x[t][i].d, (float)hsum_i32_8(sumi[t]), acc[t]);
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[(size_t)t * ldy] = acc[t];
}
DEFINE_KERNELS(q3_K, tile_q3_K)

/* ---- F32 / F16 / BF16 (activations in the same type) ------------------- */
KINLINE __m256 ld_f32(const void *p, int i) { return _mm256_loadu_ps((const float *)p + i); }
KINLINE __m256 ld_f16(const void *p, int i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
KINLINE __m256 ld_bf16(const void *p, int i) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
KINLINE float el_f32(const void *p, int i) { return ((const float *)p)[i]; }
KINLINE float el_f16(const void *p, int i) { return h2f(((const uint16_t *)p)[i]); }
KINLINE float el_bf16(const void *p, int i) { return kern_bf16_to_fp32(((const uint16_t *)p)[i]); }

/* Two accumulators per token (16 elements per step), 8-wide then scalar
 * tails; the element loaders make this one template for three types. */
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
DEFINE_FLOAT_TILE(bf16, ld_bf16, el_bf16)

/* ---- conversions ------------------------------------------------------- */
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
#define SET(T, name) (k->vec_dot[T] = vec_dot_##name, k->gemm[T] = gemm_##name)
    SET(NJ_Q4_0, q4_0);
    SET(NJ_Q4_1, q4_1);
    SET(NJ_Q5_0, q5_0);
    SET(NJ_Q5_1, q5_1);
    SET(NJ_Q8_0, q8_0);
    SET(NJ_Q2_K, q2_K);
    SET(NJ_Q3_K, q3_K);
    SET(NJ_Q4_K, q4_K);
    SET(NJ_Q5_K, q5_K);
    SET(NJ_Q6_K, q6_K);
    SET(NJ_F32, f32);
    SET(NJ_F16, f16);
    SET(NJ_BF16, bf16);
#undef SET
    k->from_float[NJ_Q8_0] = quantize_q8_0;
    k->from_float[NJ_Q8_1] = quantize_q8_1;
    k->from_float[NJ_Q8_K] = quantize_q8_K;
    k->from_float[NJ_F16] = from_float_f16;
    k->to_float[NJ_F16] = to_float_f16;
}
