/*
 * x86_tiles.h — the x86 32-element-format kernels and their helpers,
 * shared by avx2.c and avx512.c (included, not compiled on its own).
 *
 * Each includer defines X86_AVX512 (0 or 1) first.  With 1 the same code
 * uses AVX-512 VL/BW/VNNI forms of two primitives (vpdpbusd for the byte
 * dot product, vpmovm2b for the Q5 high-bit expansion); everything else,
 * and the results bit for bit, are the same.  See avx2.c for the design.
 */
#ifndef NJ_X86_TILES_H
#define NJ_X86_TILES_H

#include "kern_isa.h"

#include <immintrin.h>
#include <math.h>

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
 * nibble of q[j-16].  (The 16 bytes are broadcast to both halves by the
 * load, and only the high half shifted: no lane insert.) */
KINLINE __m256i nibbles32(const uint8_t *q) {
    const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
    return _mm256_and_si256(_mm256_srlv_epi32(raw, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, 0xff where the bit is set (bit j -> byte j). */
KINLINE __m256i bits32(const uint8_t *p) {
    uint32_t b;
    memcpy(&b, p, 4);
#if X86_AVX512
    return _mm256_movm_epi8((__mmask32)b);
#else
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
#endif
}

/* Sums of 4 products of unsigned bytes a and signed bytes b, per int32
 * lane: vpdpbusd with VNNI, else vpmaddubsw + vpmaddwd (equal results:
 * the int16 pair sums cannot saturate for the operands used here). */
KINLINE __m256i dot_u8s8(__m256i a, __m256i b) {
#if X86_AVX512
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
#endif
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

/* Prefetch (to L1) the weight stream PF_AHEAD bytes ahead, one line per
 * 64 bytes of the block being read. */
KINLINE void prefetch_w(const void *p, const int bytes) {
    const char *c = (const char *)p + PF_AHEAD;
    for (int o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

/* ---- 32-element formats ------------------------------------------------
 *
 * The canonical order (scalar.c) is llama.cpp's: per token, an 8-lane
 * float accumulator whose lane m takes fma(dw*dx, L_m, .) per block, L_m
 * being the exact int32 dot product of the block's elements 4m..4m+3 --
 * which is what one vpdpbusd (or vpmaddubsw + vpmaddwd) over the block's 32
 * bytes leaves in int32 lane m.  So a block costs one conversion and one
 * fma per token; Q4_1/Q5_1 also carry a scalar chain c = fma(m, s_x, c).
 *
 * The lane chains are serial per block (fma latency), so a tile interleaves
 * R weight rows x NT tokens of independent chains: one token runs
 * B32_TRMAX = 4 rows at a time.  (Decode over eight rows or more takes the
 * includers' eight-row GEMV, rows8_b32 in avx2.c and avx512.c, in the same
 * order; these tiles serve batches, the rows % 8 left over and vec_dot.)  Blocks go in groups of eight so that their
 * scales come in with one gather per row and token (head8); d = dw*dx is
 * formed for the eight blocks in one multiply and broadcast from memory.  A
 * short last group of nk < 8 blocks gathers only those heads (head8n) and
 * runs its block loop nk times, in place: no copy of weights or
 * activations (for 640-wide rows, a fifth of all blocks are such a tail). */

/* The first 32-bit word of 8 consecutive blocks of `size` bytes: every
 * format here starts with its fp16 d, and Q4_1/Q5_1/Q8_1 follow it with m
 * or s, so one gather fetches both.  (Assembling them with scalar stores
 * and a vector reload would stall on store forwarding.) */
KINLINE __m256i head8(const void *blocks, int size) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32(size));
    return _mm256_i32gather_epi32((const int *)blocks, idx, 1);
}

/* head8 of the first nk (1..8) blocks only; lanes nk..7 are 0 and nothing
 * past block nk - 1 is read (the row's last group may end the mapping). */
KINLINE __m256i head8n(const void *blocks, int size, const int nk) {
    if (nk == 8) return head8(blocks, size);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32(size));
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nk), lane);
    return _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)blocks, idx, m, 1);
}

/* fp16 in the low (hi = 0) or high (hi = 1) half of each 32-bit lane -> f32 */
KINLINE __m256 half_lanes(__m256i v, const int hi) {
    v = hi ? _mm256_srli_epi32(v, 16) : _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(p));
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

#ifndef B32_TRMAX
#define B32_TRMAX 4
#endif

/* SIGNED: weights are signed bytes (|w| x sign-moved activations);
 * otherwise unsigned.  HAS_M: Q4_1/Q5_1's "+ m * s" chain.
 * group8: blocks off..off+7 of R rows w[r] and nt token rows x[t]. */
#define DEFINE_B32(name, WT, XT, SIGNED, HAS_M)                                         \
    KINLINE void group8_##name(const WT *const *w, const XT *const *x, int off,         \
                               __m256 acc[B32_TRMAX][NT_MAX], float c[B32_TRMAX][NT_MAX], \
                               const int R, const int nt, const int nk) {               \
        float dd[B32_TRMAX][NT_MAX][8] __attribute__((aligned(32)));                    \
        float mw[B32_TRMAX][8] __attribute__((aligned(32)));                            \
        float sx[NT_MAX][8] __attribute__((aligned(32)));                               \
        __m256 dw[B32_TRMAX];                                                           \
        UNROLL                                                                          \
        for (int r = 0; r < R; r++) {                                                   \
            const __m256i wh = head8n(w[r] + off, (int)sizeof(WT), nk);                 \
            dw[r] = half_lanes(wh, 0);                                                  \
            if (HAS_M) _mm256_store_ps(mw[r], half_lanes(wh, 1));                       \
        }                                                                               \
        UNROLL                                                                          \
        for (int t = 0; t < nt; t++) {                                                  \
            const __m256i xh = head8n(x[t] + off, (int)sizeof(XT), nk);                 \
            const __m256 dx = half_lanes(xh, 0);                                        \
            UNROLL                                                                      \
            for (int r = 0; r < R; r++) _mm256_store_ps(dd[r][t], _mm256_mul_ps(dw[r], dx)); \
            if (HAS_M) _mm256_store_ps(sx[t], half_lanes(xh, 1));                       \
        }                                                                               \
        /* read dd, mw, sx back from memory (broadcast and scalar loads), not \
         * through lane shuffles the compiler would otherwise make of them */ \
        __asm__ volatile("" ::: "memory");                                              \
        UNROLL                                                                          \
        for (int k = 0; k < nk; k++) {                                                  \
            __m256i wq[B32_TRMAX], wa[B32_TRMAX];                                       \
            UNROLL                                                                      \
            for (int r = 0; r < R; r++) {                                               \
                wq[r] = unpack_##name(&w[r][off + k]);                                  \
                if (SIGNED) wa[r] = _mm256_sign_epi8(wq[r], wq[r]);                     \
            }                                                                           \
            UNROLL                                                                      \
            for (int t = 0; t < nt; t++) {                                              \
                const __m256i qx = _mm256_loadu_si256((const __m256i *)x[t][off + k].qs); \
                UNROLL                                                                  \
                for (int r = 0; r < R; r++) {                                           \
                    const __m256i p = SIGNED ? dot_u8s8(wa[r], _mm256_sign_epi8(qx, wq[r])) \
                                             : dot_u8s8(wq[r], qx);                     \
                    acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dd[r][t][k]),            \
                                                _mm256_cvtepi32_ps(p), acc[r][t]);      \
                    if (HAS_M) c[r][t] = fmaf(mw[r][k], sx[t][k], c[r][t]);             \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    /* R rows (stride ws) x nt tokens (stride xs): y[t*ldy + r]. */                     \
    KINLINE void tile_##name(int n, const void *restrict vw, size_t ws, const int R,    \
                             const void *restrict vx, size_t xs, const int nt,          \
                             float *restrict y, size_t ldy) {                           \
        const WT *w[B32_TRMAX];                                                         \
        const XT *x[NT_MAX];                                                            \
        __m256 acc[B32_TRMAX][NT_MAX];                                                  \
        float c[B32_TRMAX][NT_MAX];                                                     \
        UNROLL                                                                          \
        for (int r = 0; r < R; r++) {                                                   \
            w[r] = (const WT *)((const char *)vw + (size_t)r * ws);                     \
            UNROLL                                                                      \
            for (int t = 0; t < nt; t++) { acc[r][t] = _mm256_setzero_ps(); c[r][t] = 0.0f; } \
        }                                                                               \
        UNROLL                                                                          \
        for (int t = 0; t < nt; t++) x[t] = XROW(XT, vx, xs, t);                        \
        const int nb = n / 32, nfull = nb & ~7;                                         \
        for (int i = 0; i < nfull; i += 8) {                                            \
            UNROLL                                                                      \
            for (int r = 0; r < R; r++) prefetch_w(w[r] + i, (int)sizeof(WT) * 8);      \
            group8_##name(w, x, i, acc, c, R, nt, 8);                                   \
        }                                                                               \
        if (nb > nfull) group8_##name(w, x, nfull, acc, c, R, nt, nb - nfull);          \
        UNROLL                                                                          \
        for (int r = 0; r < R; r++)                                                     \
            UNROLL                                                                      \
            for (int t = 0; t < nt; t++)                                                \
                y[(size_t)t * ldy + r] = HAS_M ? hsum8(acc[r][t]) + c[r][t] : hsum8(acc[r][t]); \
    }                                                                                   \
    static void vec_dot_##name(int n, float *restrict s, const void *restrict w,       \
                               const void *restrict x) {                               \
        tile_##name(n, w, 0, 1, x, 0, 1, s, 0);                                         \
    }                                                                                   \
    /* Tokens in groups of four (outer, so their activations stay in L1),     \
     * rows inner; one or two leftover tokens take rows in pairs. */                   \
    static void gemm_##name(int n, const void *restrict w, size_t ws, int nr,          \
                            const void *restrict x, size_t xs, int nt,                 \
                            float *restrict y, size_t ldy) {                           \
        const char *wb = w, *xb = x;                                                    \
        int t = 0;                                                                      \
        for (; t + NT_MAX <= nt; t += NT_MAX)                                           \
            for (int r = 0; r < nr; r++)                                                \
                tile_##name(n, wb + (size_t)r * ws, ws, 1, xb + (size_t)t * xs, xs,    \
                            NT_MAX, y + (size_t)t * ldy + r, ldy);                      \
        const int rem = nt - t;                                                         \
        if (!rem) return;                                                               \
        const char *xt = xb + (size_t)t * xs;                                           \
        float *yt = y + (size_t)t * ldy;                                                \
        int r = 0;                                                                      \
        if (rem == 3) {                                                                 \
            for (; r < nr; r++) tile_##name(n, wb + (size_t)r * ws, ws, 1, xt, xs, 3, yt + r, ldy); \
        } else if (rem == 2) {                                                          \
            for (; r + 2 <= nr; r += 2) tile_##name(n, wb + (size_t)r * ws, ws, 2, xt, xs, 2, yt + r, ldy); \
            for (; r < nr; r++) tile_##name(n, wb + (size_t)r * ws, ws, 1, xt, xs, 2, yt + r, ldy); \
        } else {                                                                        \
            for (; r + B32_TRMAX <= nr; r += B32_TRMAX)                                 \
                tile_##name(n, wb + (size_t)r * ws, ws, B32_TRMAX, xt, xs, 1, yt + r, ldy); \
            for (; r + 2 <= nr; r += 2) tile_##name(n, wb + (size_t)r * ws, ws, 2, xt, xs, 1, yt + r, ldy); \
            for (; r < nr; r++) tile_##name(n, wb + (size_t)r * ws, ws, 1, xt, xs, 1, yt + r, ldy); \
        }                                                                               \
    }

DEFINE_B32(q8_0, block_q8_0, block_q8_0, 1, 0)
DEFINE_B32(q4_0, block_q4_0, block_q8_0, 1, 0)
DEFINE_B32(q5_0, block_q5_0, block_q8_0, 1, 0)
DEFINE_B32(q4_1, block_q4_1, block_q8_1, 0, 1)
DEFINE_B32(q5_1, block_q5_1, block_q8_1, 0, 1)

/* ---- Q4_0, repacked order (kernels.h): one chain per output ------------
 * acc = fma((float)I_i, dw*dx, acc) over blocks i, I_i the block's exact
 * integer dot product; single-token and batched orders are the same.
 * Eight blocks' sums are reduced together (a hadd tree leaves block k's
 * sum in lane k), then the chain runs through them in order. */
KINLINE __m256i hsum8x8_i32(const __m256i p[8]) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    /* a: lanes 0..3 low halves of p0..p3, lanes 4..7 their high halves */
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* R (<= 4) rows (stride ws) x nt tokens: y[t*ldy + r].  The R * nt
 * chains are independent, which hides the fma latency in GEMV. */
KINLINE void tile_q4_0_r(int n, const void *restrict vw, size_t ws, const int R,
                         const void *restrict vx, size_t xs, const int nt,
                         float *restrict y, size_t ldy) {
    const block_q4_0 *w[4];
    const block_q8_0 *x[NT_MAX];
    float acc[4][NT_MAX];
    UNROLL
    for (int r = 0; r < R; r++) {
        w[r] = (const block_q4_0 *)((const char *)vw + (size_t)r * ws);
        UNROLL
        for (int t = 0; t < nt; t++) acc[r][t] = 0.0f;
    }
    UNROLL
    for (int t = 0; t < nt; t++) x[t] = XROW(block_q8_0, vx, xs, t);
    const int nb = n / 32, nfull = nb & ~7;
    int i = 0;
    for (; i < nfull; i += 8) {
        float dx[NT_MAX][8];
        UNROLL
        for (int t = 0; t < nt; t++)
            UNROLL
            for (int k = 0; k < 8; k++) dx[t][k] = h2f(x[t][i + k].d);
        UNROLL
        for (int r = 0; r < R; r++) {
            prefetch_w(w[r] + i, (int)sizeof(block_q4_0) * 8);
            __m256i wq[8];
            float dw[8];
            UNROLL
            for (int k = 0; k < 8; k++) { wq[k] = unpack_q4_0(&w[r][i + k]); dw[k] = h2f(w[r][i + k].d); }
            UNROLL
            for (int t = 0; t < nt; t++) {
                __m256i p[8];
                UNROLL
                for (int k = 0; k < 8; k++) {
                    const __m256i qx = _mm256_loadu_si256((const __m256i *)x[t][i + k].qs);
                    p[k] = dot_u8s8(_mm256_sign_epi8(wq[k], wq[k]), _mm256_sign_epi8(qx, wq[k]));
                }
                float If[8];
                _mm256_storeu_ps(If, _mm256_cvtepi32_ps(hsum8x8_i32(p)));
                UNROLL
                for (int k = 0; k < 8; k++) acc[r][t] = fmaf(If[k], dw[k] * dx[t][k], acc[r][t]);
            }
        }
    }
    for (; i < nb; i++) {
        UNROLL
        for (int r = 0; r < R; r++) {
            const __m256i wq = unpack_q4_0(&w[r][i]), wa = _mm256_sign_epi8(wq, wq);
            const float dw = h2f(w[r][i].d);
            UNROLL
            for (int t = 0; t < nt; t++) {
                const __m256i qx = _mm256_loadu_si256((const __m256i *)x[t][i].qs);
                const int I = hsum_i32_8(dot_u8s8(wa, _mm256_sign_epi8(qx, wq)));
                acc[r][t] = fmaf((float)I, dw * h2f(x[t][i].d), acc[r][t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < nt; t++) y[(size_t)t * ldy + r] = acc[r][t];
}
/* 8 rows x nt tokens with the chains of the 8 rows in the lanes of one
 * vector per token (as llama.cpp's 8-row interleaved GEMV): per block the
 * hadd tree turns the 8 rows' products into their 8 exact sums. */
KINLINE void tile_q4_0_r8(int n, const void *restrict vw, size_t ws,
                          const void *restrict vx, size_t xs, const int nt,
                          float *restrict y, size_t ldy) {
    const block_q4_0 *w[8];
    const block_q8_0 *x[NT_MAX];
    __m256 acc[NT_MAX];
    UNROLL
    for (int r = 0; r < 8; r++) w[r] = (const block_q4_0 *)((const char *)vw + (size_t)r * ws);
    UNROLL
    for (int t = 0; t < nt; t++) { x[t] = XROW(block_q8_0, vx, xs, t); acc[t] = _mm256_setzero_ps(); }
    const int nb = n / 32;
    for (int i = 0; i < nb; i++) {
        __m256i wq[8];
        UNROLL
        for (int r = 0; r < 8; r++) {
            if ((i & 7) == 0) prefetch_w(w[r] + i, (int)sizeof(block_q4_0) * 8);
            wq[r] = unpack_q4_0(&w[r][i]);
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(
            (short)w[0][i].d, (short)w[1][i].d, (short)w[2][i].d, (short)w[3][i].d,
            (short)w[4][i].d, (short)w[5][i].d, (short)w[6][i].d, (short)w[7][i].d));
        UNROLL
        for (int t = 0; t < nt; t++) {
            const __m256i qx = _mm256_loadu_si256((const __m256i *)x[t][i].qs);
            __m256i p[8];
            UNROLL
            for (int r = 0; r < 8; r++)
                p[r] = dot_u8s8(_mm256_sign_epi8(wq[r], wq[r]), _mm256_sign_epi8(qx, wq[r]));
            const __m256 D = _mm256_mul_ps(dw, _mm256_set1_ps(h2f(x[t][i].d)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8x8_i32(p)), D, acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) {
        float o[8];
        _mm256_storeu_ps(o, acc[t]);
        UNROLL
        for (int r = 0; r < 8; r++) y[(size_t)t * ldy + r] = o[r];
    }
}
static void vec_dot_q4_0_r(int n, float *restrict s, const void *restrict w, const void *restrict x) {
    tile_q4_0_r(n, w, 0, 1, x, 0, 1, s, 0);
}
/* Tokens in groups of four, one row at a time; leftover tokens take rows
 * eight (then four) at a time. */
static void gemm_q4_0_r(int n, const void *restrict w, size_t ws, int nr, const void *restrict x,
                        size_t xs, int nt, float *restrict y, size_t ldy) {
    const char *wb = w, *xb = x;
    int t = 0;
    for (; t + NT_MAX <= nt; t += NT_MAX)
        for (int r = 0; r < nr; r++)
            tile_q4_0_r(n, wb + (size_t)r * ws, ws, 1, xb + (size_t)t * xs, xs, NT_MAX,
                        y + (size_t)t * ldy + r, ldy);
    const int rem = nt - t;
    if (!rem) return;
    const char *xt = xb + (size_t)t * xs;
    float *yt = y + (size_t)t * ldy;
    int r = 0;
#define Q40R_ROWS(NT_)                                                                  \
    do {                                                                                \
        for (; r + 8 <= nr; r += 8) tile_q4_0_r8(n, wb + (size_t)r * ws, ws, xt, xs, NT_, yt + r, ldy); \
        for (; r + 4 <= nr; r += 4) tile_q4_0_r(n, wb + (size_t)r * ws, ws, 4, xt, xs, NT_, yt + r, ldy); \
        for (; r < nr; r++) tile_q4_0_r(n, wb + (size_t)r * ws, ws, 1, xt, xs, NT_, yt + r, ldy); \
    } while (0)
    if (rem == 3) Q40R_ROWS(3);
    else if (rem == 2) Q40R_ROWS(2);
    else Q40R_ROWS(1);
#undef Q40R_ROWS
}


/* ---- 32-element formats, GEMV glue shared by avx2.c and avx512.c -------
 * Both levels have an eight-row one-token tile, rows8_b32 (see their
 * sections); these are its block layouts, prefetch settings and the gemm
 * wrapper around it. */
#ifndef B32V_PF
#define B32V_PF 3072                 /* prefetch distance per row, bytes */
#endif
#ifndef B32V_HINT
#define B32V_HINT _MM_HINT_T1
#endif

enum { B32V_Q4_0, B32V_Q4_1, B32V_Q5_0, B32V_Q5_1, B32V_Q8_0 };

/* block layout per format: size, offset of qs, of qh (5-bit), activation
 * block size (Q8_0 or Q8_1) and its qs offset */
#define B32V_BS(f) ((f) == B32V_Q4_0 ? 18 : (f) == B32V_Q4_1 ? 20 : (f) == B32V_Q5_0 ? 22 : (f) == B32V_Q5_1 ? 24 : 34)
#define B32V_QS(f) ((f) == B32V_Q4_0 ? 2 : (f) == B32V_Q4_1 ? 4 : (f) == B32V_Q5_0 ? 6 : (f) == B32V_Q5_1 ? 8 : 2)
#define B32V_QH(f) ((f) == B32V_Q5_0 ? 2 : 4)
#define B32V_HAS_M(f) ((f) == B32V_Q4_1 || (f) == B32V_Q5_1)
#define B32V_XBS(f) (B32V_HAS_M(f) ? (int)sizeof(block_q8_1) : (int)sizeof(block_q8_0))
#define B32V_XQS(f) (B32V_HAS_M(f) ? 4 : 2)

/* The tiles' prefetch cursor: B32V_PF bytes (whole blocks) ahead of the
 * block being read, in the order the tiles read rows -- past a row's end
 * into the same row of the next tile (`next` bytes on). */
typedef struct { size_t tile; int blk; } b32v_pf;
KINLINE b32v_pf b32v_pf_init(int nb, int bs) {
    const int d = B32V_PF / bs;
    return (b32v_pf){(size_t)(d / nb), d % nb};
}
/* Prefetches the cursor's block of the eight rows w, then advances it. */
KINLINE void b32v_pf_step(b32v_pf *c, const char *const w[8], size_t next, int nb, int bs) {
    const size_t o = c->tile * next + (size_t)c->blk * (size_t)bs;
    if (++c->blk == nb) { c->blk = 0; c->tile++; }
    UNROLL
    for (int r = 0; r < 8; r++) _mm_prefetch(w[r] + o, B32V_HINT);
}

/* gemm for one token: rows eight at a time through the includer's
 * rows8_b32 (defined before DEFINE_B32V is used); the rows % 8 left over,
 * rows shorter than a block, and batches through the tiles above (same
 * order, same results). */
#define DEFINE_B32V(name, F)                                                                  \
    static void gemmv_##name(int n, const void *restrict vw, size_t ws, int nr,                 \
                             const void *restrict vx, size_t xs, int nt, float *restrict y,    \
                             size_t ldy) {                                                      \
        if (nt != 1 || nr < 8 || n < 32 || ws > (size_t)INT32_MAX / 8) {                        \
            gemm_##name(n, vw, ws, nr, vx, xs, nt, y, ldy);                                     \
            return;                                                                             \
        }                                                                                       \
        const __m256i off = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),       \
                                               _mm256_set1_epi32((int)ws));                     \
        int r0 = 0;                                                                             \
        for (; r0 + 8 <= nr; r0 += 8) {                                                         \
            const char *w[8];                                                                   \
            UNROLL                                                                              \
            for (int r = 0; r < 8; r++) w[r] = (const char *)vw + (size_t)(r0 + r) * ws;        \
            rows8_b32(n / 32, w, off, 8 * ws, vx, y + r0, F);                                   \
        }                                                                                       \
        if (r0 < nr)                                                                            \
            gemm_##name(n, (const char *)vw + (size_t)r0 * ws, ws, nr - r0, vx, xs, 1, y + r0, ldy); \
    }

#endif
