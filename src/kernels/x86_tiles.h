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
        UNROLL                                                                          \
        for (int t = 0; t < nt; t++) {                                                  \
            const XT *xb = x[t] + xoff;                                                 \
            __m256i p[8];                                                               \
            UNROLL                                                                      \
            for (int k = 0; k < 8; k++) {                                               \
                const __m256i qx = _mm256_loadu_si256((const __m256i *)xb[k].qs);      \
                p[k] = SIGNED ? dot_u8s8(wa[k], _mm256_sign_epi8(qx, wq[k]))            \
                              : dot_u8s8(wq[k], qx);                                    \
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


#endif
