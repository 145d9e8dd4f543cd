/*
 * avx512 — AVX-512 VNNI packed GEMM for prefill (tokens in lanes), and
 * zmm GEMV for the two types that carry most of a K-quant model's decode.
 *
 * GEMV (one token) is memory-bound, but for Q4_K and Q6_K the AVX2 tiles
 * spent about as long computing a super-block as DRAM took to deliver it,
 * so the two overlapped badly.  This level replaces Q4_K's single-token
 * repacked order (gemm_rs: eight rows per tile, the rows' chains in the
 * lanes of one ymm, as llama.cpp's q4_K_8x8 GEMV) and Q6_K's plain order
 * (gemm and vec_dot: two rows per tile sharing a zmm accumulator, up to
 * four tokens) with zmm kernels about twice (Q4_K) and 1.5 times (Q6_K)
 * as fast from cache; see their sections.  Both prefetch the weight
 * stream into L2 a fixed number of super-blocks ahead in the order the
 * tiles read it (past a row's end, into the same row of the next tile).
 * Every other type inherits vec_dot and the small-batch tiles from avx2.
 *
 * For prefill it adds gemm16: a block of weight rows times a packed group
 * of 16 tokens (kernels.h), one token per 32-bit lane of a zmm register.
 *
 * Inner loop, per 4 weight bytes k of R rows (R = 4):
 *
 *     a    = 64 bytes: bytes 4k..4k+3 of tokens 0..15     (one load)
 *     D[r] = vpdpbusd(D[r], broadcast(w_r[4k..4k+3]), a)   (R ops)
 *
 * so one activation load feeds R vpdpbusd and every vpdpbusd does 64
 * multiply-adds for 16 tokens at once.  Weights are first unpacked to
 * unsigned bytes in element order (a 256-byte stack buffer per row, hot in
 * L1), which makes every format the same loop; signed or offset formats
 * are corrected through the activation sums (Q6_K's -32, Q3_K's -4).  (The
 * 32-element formats run the loop the other way round, signed weights times
 * biased activations, and convert every vpdpbusd result: see their
 * section.)  Per-sub-block scales multiply the exact int32 partial sums
 * with vpdpwssd and a (scale, 0) pair (the partial sums fit int16),
 * K-quant mins and the Q6_K offset go
 * through vpdpwssd on the packed 16-bit block sums.  The float part is the
 * canonical per-token order (scalar.c), lane by lane, so results are
 * bit-identical to every other level: for Q6_K/Q5_K/Q3_K that means eight
 * integer lane sums per token (rows_l8), for Q4_K the batched order (one
 * fma per 64-element pair, rows_q4_K; gemm16 only ever sees batched
 * tokens), for Q2_K its batched order (one fma per 128-element half), for
 * Q4_0 its repacked one (one fma per block, rows_q4_0_r).
 *
 * BF16 weights have their own section: llama.cpp's vdpbf16ps kernels, used
 * when the CPU has AVX512_BF16 (else avx2's emulation stays).
 */
#include "kernels.h"
#include "platform.h"

#include <immintrin.h>

/* The 32-element-format small-batch tiles and GEMV, VNNI flavour. */
#define X86_AVX512 1
#include "x86_tiles.h"
#define RMAX 6
#define RMAX2 3
#define GMAX 2
#ifndef K_R1
#define K_R1 4
#define K_R2 3
#endif
/* Q4_K keeps two float chains per row and group: 3 x 2 tiles spill */
#ifndef Q4K_R1
#define Q4K_R1 4
#define Q4K_R2 2
#endif

KINLINE __m512i bcast32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

KINLINE void store_lanes(__m512 v, float *y, size_t ldy) {
    float tmp[16];
    _mm512_storeu_ps(tmp, v);
    UNROLL
    for (int t = 0; t < 16; t++) y[(size_t)t * ldy] = tmp[t];
}

/* ---- weight unpackers: one block (or super-block) -> bytes ------------- */

KINLINE void unpack_nibbles_256(const uint8_t *qs, uint8_t out[256]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    UNROLL
    for (int j = 0; j < 4; j++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
        _mm256_storeu_si256((__m256i *)(out + 64 * j), _mm256_and_si256(bits, m4));
        _mm256_storeu_si256((__m256i *)(out + 64 * j + 32),
                            _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4));
    }
}

KINLINE void unpack_q5_K(const block_q5_K *b, uint8_t out[256]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), sixteen = _mm256_set1_epi8(16);
    const __m256i hb = _mm256_loadu_si256((const __m256i *)b->qh);
    UNROLL
    for (int j = 0; j < 4; j++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * j));
        const __m256i s0 = _mm256_set1_epi8((char)(1 << (2 * j))), s1 = _mm256_set1_epi8((char)(2 << (2 * j)));
        const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, s0), s0), sixteen);
        const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, s1), s1), sixteen);
        _mm256_storeu_si256((__m256i *)(out + 64 * j), _mm256_or_si256(_mm256_and_si256(bits, m4), h0));
        _mm256_storeu_si256((__m256i *)(out + 64 * j + 32),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h1));
    }
}

KINLINE void unpack_q6_K(const block_q6_K *b, uint8_t out[256]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
    UNROLL
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
        UNROLL
        for (int g = 0; g < 4; g++) {
            const __m256i lq = g & 1 ? l1 : l0;
            const __m256i nib = g < 2 ? _mm256_and_si256(lq, m4)
                                      : _mm256_and_si256(_mm256_srli_epi16(lq, 4), m4);
            const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), m2);
            _mm256_storeu_si256((__m256i *)(out + 128 * h + 32 * g),
                                _mm256_or_si256(nib, _mm256_slli_epi16(h2, 4)));
        }
    }
}

KINLINE int32_t pair16(int a, int b) {
    return (int32_t)(((uint32_t)(uint16_t)(int16_t)a) | ((uint32_t)(uint16_t)(int16_t)b << 16));
}

/* ---- Q4_K: two chains, one fma each per 64-element pair -------------------
 * R weight rows x G packed groups (G * 16 tokens): each unpacked weight
 * and each broadcast is used for G groups, each activation load for R
 * rows.  A 16-element partial sum fits int16 (|D| <= 16*15*127), so
 * vpdpwssd with (scale, 0) pairs applies the scale and accumulates in one
 * instruction; the pair's exact sum I_p then feeds chain A and its mins
 * term N_p (vpdpwssd on the packed 32-element block sums) chain B. */
KINLINE void rows_q4_K(int nb, const char *w, size_t ws, const int R, const char *xg, size_t gs,
                       const int G, float *y, size_t ldy) {
    __m512 A[RMAX][GMAX], B[RMAX][GMAX];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) A[r][g] = B[r][g] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        uint8_t wb[RMAX][256] __attribute__((aligned(64)));
        uint8_t sc[RMAX][8], mn[RMAX][8];
        float dw[RMAX], dm[RMAX];
        UNROLL
        for (int r = 0; r < R; r++) {
            const block_q4_K *b = (const block_q4_K *)(w + (size_t)r * ws) + i;
            unpack_nibbles_256(b->qs, wb[r]);
            quant_k4_scales(b->scales, sc[r], mn[r]);
            dw[r] = h2f(b->d);
            dm[r] = h2f(b->dmin);
        }
        const kern_pk_q8_K *p[GMAX];
        UNROLL
        for (int g = 0; g < G; g++) p[g] = (const kern_pk_q8_K *)(xg + (size_t)g * gs) + i;
        UNROLL
        for (int q = 0; q < 4; q++) {            /* pair q: elements 64q .. 64q+63 */
            __m512i S[RMAX][GMAX];
            UNROLL
            for (int r = 0; r < R; r++)
                UNROLL
                for (int g = 0; g < G; g++) S[r][g] = _mm512_setzero_si512();
            UNROLL
            for (int sub = 4 * q; sub < 4 * q + 4; sub++) {
                const int e0 = 16 * sub;         /* first element */
                __m512i D[RMAX][GMAX];
                UNROLL
                for (int r = 0; r < R; r++)
                    UNROLL
                    for (int g = 0; g < G; g++) D[r][g] = _mm512_setzero_si512();
                UNROLL
                for (int k = 0; k < 4; k++) {
                    __m512i a[GMAX];
                    UNROLL
                    for (int g = 0; g < G; g++) a[g] = _mm512_load_si512((const void *)p[g]->qs[e0 / 4 + k]);
                    UNROLL
                    for (int r = 0; r < R; r++) {
                        const __m512i b = bcast32(wb[r] + e0 + 4 * k);
                        UNROLL
                        for (int g = 0; g < G; g++) D[r][g] = _mm512_dpbusd_epi32(D[r][g], b, a[g]);
                    }
                }
                UNROLL
                for (int r = 0; r < R; r++) {
                    const __m512i scv = _mm512_set1_epi32(sc[r][e0 / 32]);
                    UNROLL
                    for (int g = 0; g < G; g++) S[r][g] = _mm512_dpwssd_epi32(S[r][g], D[r][g], scv);
                }
            }
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m512i bs = _mm512_load_si512((const void *)p[g]->bs32[q]);
                const __m512 dx = _mm512_load_ps(p[g]->d);
                UNROLL
                for (int r = 0; r < R; r++) {
                    const __m512i N = _mm512_dpwssd_epi32(_mm512_setzero_si512(), bs,
                                                          _mm512_set1_epi32(pair16(mn[r][2 * q], mn[r][2 * q + 1])));
                    A[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S[r][g]),
                                              _mm512_mul_ps(_mm512_set1_ps(dw[r]), dx), A[r][g]);
                    B[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(N),
                                              _mm512_mul_ps(_mm512_set1_ps(dm[r]), dx), B[r][g]);
                }
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++)
            store_lanes(_mm512_sub_ps(A[r][g], B[r][g]), y + (size_t)16 * g * ldy + r, ldy);
}

/* ---- Q2_K: 16-element groups, small quants --------------------------------
 * Unpacked to unsigned bytes q in 0..3 (Q3_K: u = q + 4 in 0..7, used by
 * rows_l8 below).  A group's partial sum fits int16 (|D| <= 16 * 3 * 127),
 * so vpdpwssd with (scale, 0) pairs scales and accumulates in one
 * instruction. */
KINLINE void unpack_q2_K(const block_q2_K *b, uint8_t out[256]) {
    const __m256i m2 = _mm256_set1_epi8(0x03);
    UNROLL
    for (int h = 0; h < 2; h++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
        UNROLL
        for (int g = 0; g < 4; g++)
            _mm256_storeu_si256((__m256i *)(out + 128 * h + 32 * g),
                                _mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m2));
    }
}

KINLINE void unpack_q3_K(const block_q3_K *b, uint8_t out[256]) {
    const __m256i m2 = _mm256_set1_epi8(0x03), four = _mm256_set1_epi8(4);
    const __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
    UNROLL
    for (int h = 0; h < 2; h++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
        UNROLL
        for (int g = 0; g < 4; g++) {
            const __m256i sel = _mm256_set1_epi8((char)(1 << (4 * h + g)));
            const __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, sel), sel), four);
            _mm256_storeu_si256((__m256i *)(out + 128 * h + 32 * g),
                                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m2), hi));
        }
    }
}

/* Q2_K's batched repacked order (kernels.h): chains A (scales) and B
 * (mins), one fma each per 128-element half h on its exact sums I_h
 * (groups 8h .. 8h+7) and N_h; y = A - B. */
KINLINE void rows_q2_K(int nb, const char *w, size_t ws, const int R, const char *xg, size_t gs,
                       const int G, float *y, size_t ldy) {
    __m512 A[RMAX][GMAX], Bc[RMAX][GMAX];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) A[r][g] = Bc[r][g] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        uint8_t wb[RMAX][256] __attribute__((aligned(64)));
        int sc[RMAX][16], mn[RMAX][16];
        float dw[RMAX], dm[RMAX];
        UNROLL
        for (int r = 0; r < R; r++) {
            const block_q2_K *b = (const block_q2_K *)(w + (size_t)r * ws) + i;
            unpack_q2_K(b, wb[r]);
            for (int k = 0; k < 16; k++) { sc[r][k] = b->scales[k] & 15; mn[r][k] = b->scales[k] >> 4; }
            dw[r] = h2f(b->d);
            dm[r] = h2f(b->dmin);
        }
        const kern_pk_q8_K *p[GMAX];
        UNROLL
        for (int g = 0; g < G; g++) p[g] = (const kern_pk_q8_K *)(xg + (size_t)g * gs) + i;
        UNROLL
        for (int h = 0; h < 2; h++) {
            /* S: the half's scaled group sums; M: sum_g m_g * bsums_g */
            __m512i S[RMAX][GMAX], M[RMAX][GMAX];
            UNROLL
            for (int r = 0; r < R; r++)
                UNROLL
                for (int g = 0; g < G; g++) { S[r][g] = _mm512_setzero_si512(); M[r][g] = _mm512_setzero_si512(); }
            UNROLL
            for (int m = 4 * h; m < 4 * h + 4; m++) {
                UNROLL
                for (int r = 0; r < R; r++) {
                    const __m512i mp = _mm512_set1_epi32(pair16(mn[r][2 * m], mn[r][2 * m + 1]));
                    UNROLL
                    for (int g = 0; g < G; g++) {
                        const __m512i B = _mm512_load_si512((const void *)p[g]->bs16[m]);
                        M[r][g] = _mm512_dpwssd_epi32(M[r][g], B, mp);
                    }
                }
            }
            UNROLL
            for (int q = 8 * h; q < 8 * h + 8; q++) {
                __m512i D[RMAX][GMAX];
                UNROLL
                for (int r = 0; r < R; r++)
                    UNROLL
                    for (int g = 0; g < G; g++) D[r][g] = _mm512_setzero_si512();
                UNROLL
                for (int k = 0; k < 4; k++) {
                    __m512i a[GMAX];
                    UNROLL
                    for (int g = 0; g < G; g++) a[g] = _mm512_load_si512((const void *)p[g]->qs[4 * q + k]);
                    UNROLL
                    for (int r = 0; r < R; r++) {
                        const __m512i b = bcast32(wb[r] + 16 * q + 4 * k);
                        UNROLL
                        for (int g = 0; g < G; g++) D[r][g] = _mm512_dpbusd_epi32(D[r][g], b, a[g]);
                    }
                }
                UNROLL
                for (int r = 0; r < R; r++) {
                    const __m512i s = _mm512_set1_epi32(sc[r][q] & 0xffff);
                    UNROLL
                    for (int g = 0; g < G; g++) S[r][g] = _mm512_dpwssd_epi32(S[r][g], D[r][g], s);
                }
            }
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m512 dx = _mm512_load_ps(p[g]->d);
                UNROLL
                for (int r = 0; r < R; r++) {
                    A[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S[r][g]),
                                              _mm512_mul_ps(_mm512_set1_ps(dw[r]), dx), A[r][g]);
                    Bc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(M[r][g]),
                                               _mm512_mul_ps(_mm512_set1_ps(dm[r]), dx), Bc[r][g]);
                }
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++)
            store_lanes(_mm512_sub_ps(A[r][g], Bc[r][g]), y + (size_t)16 * g * ldy + r, ldy);
}

/* ---- the 8-lane K-quants: Q3_K, Q5_K, Q6_K ---------------------------------
 * Canonical order: per super-block and lane m (elements 4m..4m+3 of each
 * 32-element chunk) an exact L_m, then acc_m = fma(D, L_m, acc_m); the
 * eight chains are reduced at the end (scalar.c).  So the loop runs over
 * lanes m outside and chunks c inside: dword (c, m) is one vpdpbusd (at
 * most 4*63*128 in magnitude, so it fits int16) scaled and accumulated by
 * one vpdpwssd with its 16-element group's (scale, 0); after the eight
 * chunks S is L_m for 16 tokens.  Q6_K's q is 0..63 with llama.cpp's
 * lane-wise -32 correction (-32 * (sc[2m] bsums[2m] + sc[2m+1] bsums[2m+1]))
 * as S's start value; Q3_K's q = u - 4 with u = q + 4 unpacked unsigned:
 * the dword starts from -4 * (its four activations) (one vpdpbusd per
 * group, shared by the R rows); Q5_K's q is unsigned, its mins go into a
 * separate chain per super-block.  The acc_m live in memory (8 per row and
 * group do not fit the registers); they are touched once per lane and
 * super-block. */
enum { L8_Q3_K, L8_Q5_K, L8_Q6_K };

KINLINE void rows_l8(int nb, const char *w, size_t ws, const int R, const char *xg, size_t gs,
                     const int G, float *y, size_t ldy, const int kind) {
    __m512 acc[RMAX][GMAX][8], sm[RMAX][GMAX];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) {
            sm[r][g] = _mm512_setzero_ps();
            for (int m = 0; m < 8; m++) acc[r][g][m] = _mm512_setzero_ps();
        }
    for (int i = 0; i < nb; i++) {
        uint8_t wb[RMAX][256] __attribute__((aligned(64)));
        int32_t scv[RMAX][16];        /* 16-element group's scale as an int16 (sc, 0) pair */
        int32_t pairs[RMAX][8];       /* Q6_K: -32 * scale pairs; Q5_K: mins pairs */
        float dw[RMAX], dm[RMAX];
        UNROLL
        for (int r = 0; r < R; r++) {
            const char *row = w + (size_t)r * ws;
            if (kind == L8_Q6_K) {
                const block_q6_K *b = (const block_q6_K *)row + i;
                unpack_q6_K(b, wb[r]);
                for (int k = 0; k < 16; k++) scv[r][k] = pair16(b->scales[k], 0);
                for (int m = 0; m < 8; m++)
                    pairs[r][m] = pair16(-32 * b->scales[2 * m], -32 * b->scales[2 * m + 1]);
                dw[r] = h2f(b->d);
                dm[r] = 0.0f;
            } else if (kind == L8_Q5_K) {
                const block_q5_K *b = (const block_q5_K *)row + i;
                uint8_t sc[8], mn[8];
                unpack_q5_K(b, wb[r]);
                quant_k4_scales(b->scales, sc, mn);
                for (int k = 0; k < 16; k++) scv[r][k] = sc[k / 2];
                for (int m = 0; m < 4; m++) pairs[r][m] = pair16(mn[2 * m], mn[2 * m + 1]);
                dw[r] = h2f(b->d);
                dm[r] = h2f(b->dmin);
            } else {
                const block_q3_K *b = (const block_q3_K *)row + i;
                int8_t s8[16];
                unpack_q3_K(b, wb[r]);
                quant_k3_scales(b->scales, s8);
                for (int k = 0; k < 16; k++) scv[r][k] = pair16(s8[k], 0);
                dw[r] = h2f(b->d);
                dm[r] = 0.0f;
            }
        }
        const kern_pk_q8_K *p[GMAX];
        UNROLL
        for (int g = 0; g < G; g++) p[g] = (const kern_pk_q8_K *)(xg + (size_t)g * gs) + i;
        for (int m = 0; m < 8; m++) {
            const int h = m >= 4;               /* lane m's 16-element half */
            __m512i S[RMAX][GMAX];
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m512i bs = kind == L8_Q6_K ? _mm512_load_si512((const void *)p[g]->bs16[m])
                                                   : _mm512_setzero_si512();
                UNROLL
                for (int r = 0; r < R; r++)
                    S[r][g] = kind == L8_Q6_K
                                  ? _mm512_dpwssd_epi32(_mm512_setzero_si512(), bs, _mm512_set1_epi32(pairs[r][m]))
                                  : _mm512_setzero_si512();
            }
            UNROLL
            for (int c = 0; c < 8; c++) {
                __m512i a[GMAX], d0[GMAX];
                UNROLL
                for (int g = 0; g < G; g++) {
                    a[g] = _mm512_load_si512((const void *)p[g]->qs[8 * c + m]);
                    d0[g] = kind == L8_Q3_K
                                ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                                   _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                                       _mm512_set1_epi8(4), a[g]))
                                : _mm512_setzero_si512();
                }
                UNROLL
                for (int r = 0; r < R; r++) {
                    const __m512i b = bcast32(wb[r] + 32 * c + 4 * m);
                    const __m512i sv = _mm512_set1_epi32(scv[r][2 * c + h]);
                    UNROLL
                    for (int g = 0; g < G; g++)
                        S[r][g] = _mm512_dpwssd_epi32(S[r][g], _mm512_dpbusd_epi32(d0[g], b, a[g]), sv);
                }
            }
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m512 dx = _mm512_load_ps(p[g]->d);
                UNROLL
                for (int r = 0; r < R; r++)
                    acc[r][g][m] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dw[r]), dx),
                                                   _mm512_cvtepi32_ps(S[r][g]), acc[r][g][m]);
            }
        }
        if (kind == L8_Q5_K) {
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m512 dx = _mm512_load_ps(p[g]->d);
                UNROLL
                for (int r = 0; r < R; r++) {
                    __m512i M = _mm512_setzero_si512();
                    UNROLL
                    for (int q = 0; q < 4; q++)
                        M = _mm512_dpwssd_epi32(M, _mm512_load_si512((const void *)p[g]->bs32[q]),
                                                _mm512_set1_epi32(pairs[r][q]));
                    sm[r][g] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dm[r]), dx),
                                                _mm512_cvtepi32_ps(M), sm[r][g]);
                }
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) {
            const __m512 *a = acc[r][g];
            const __m512 t0 = _mm512_add_ps(a[0], a[4]), t1 = _mm512_add_ps(a[1], a[5]);
            const __m512 t2 = _mm512_add_ps(a[2], a[6]), t3 = _mm512_add_ps(a[3], a[7]);
            __m512 v = _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3));
            if (kind == L8_Q5_K) v = _mm512_add_ps(v, sm[r][g]);
            store_lanes(v, y + (size_t)16 * g * ldy + r, ldy);
        }
}

/* ---- 32-element formats ---------------------------------------------------
 *
 * Canonical order (scalar.c): per token 8 lane chains, lane m of a block
 * taking fma(dw*dx, L_m, .) with L_m the exact dot product of its elements
 * 4m..4m+3 -- and the packed layout gives exactly that: one vpdpbusd of a
 * broadcast weight dword m against a group's activation vector m leaves the
 * 16 tokens' L_m in its lanes.  So every vpdpbusd result needs its own
 * conversion and fma (an order summing whole blocks in int32 would not):
 * three vector ops per 64 multiply-adds, and keeping the rest off the two
 * vector ports is the design:
 *
 *  - Weights are the signed vpdpbusd operand (q - 8, q - 16, q, as int8),
 *    broadcast straight from the unpacked block by a load, and the
 *    activations the unsigned one: the x86 packer stores x + 128
 *    (kern_pack16_q8_0_x86).  The extra 128 * sum(w over the lane) is
 *    removed through the accumulator's seed, computed once per row and
 *    block for all 8 lanes (one vpdpbusd) and shared by all groups.
 *  - The int32 -> float conversion is folded into the seed as well: seeded
 *    with the bit pattern of 1.5 * 2^23, the integer sum L_m (|L_m| <=
 *    2^16) lands in the mantissa, and subtracting 1.5 * 2^23 as a float
 *    gives L_m exactly -- a vsubps, which runs on either vector port, where
 *    vcvtdq2ps would compete with vpdpbusd for port 0.
 *  - Lanes are the outer loop within a chunk of B32_CHUNK blocks, LP lanes
 *    per pass: only LP x R x G accumulators are live (the rest wait in
 *    memory), so a tile can be R = 4..8 rows x G = 1..4 groups wide, where
 *    all 8 R G accumulators would not fit the 32 registers.  Each d =
 *    dw * dx is formed once per chunk and read back per lane.
 * Q4_1/Q5_1's m * s chain runs per (row, group) in block order. */
#define B32_CHUNK 8
#define B32_RMAX 8
#define B32_GMAX 4
#define B32_LPMAX 4

/* Block b's 32 weights as int8 in element order (x86_tiles.h's unpackers),
 * returned and stored to out; *d, *m: its scale and min (0 if none). */
KINLINE __m256i b32_weights(const void *vb, const int kind, int8_t out[32], float *d, float *m) {
    nj_half h[2];
    memcpy(h, vb, 4);
    *d = h2f(h[0]);
    *m = kind == B32_Q4_1 || kind == B32_Q5_1 ? h2f(h[1]) : 0.0f;
    __m256i q;
    switch (kind) {
    case B32_Q8_0: q = unpack_q8_0(vb); break;
    case B32_Q4_0: q = unpack_q4_0(vb); break;
    case B32_Q5_0: q = unpack_q5_0(vb); break;
    case B32_Q4_1: q = unpack_q4_1(vb); break;
    default:       q = unpack_q5_1(vb); break;
    }
    _mm256_store_si256((__m256i *)out, q);
    return q;
}

/* R rows x G packed groups: y[(16g + t)*ldy + r]. */
KINLINE void rows_b32(int nb, const char *w, size_t ws, const int R, const char *xg, size_t gs,
                      const int G, const int LP, float *y, size_t ldy, const int kind) {
    const int has_m = kind == B32_Q4_1 || kind == B32_Q5_1;
    const size_t bs = b32_size(kind);
    const __m256i magic8 = _mm256_set1_epi32(0x4b400000), c128 = _mm256_set1_epi8((char)0x80);
    const __m512 fmagic = _mm512_set1_ps(12582912.0f);
    __m512 acc[8][B32_RMAX][B32_GMAX], S[B32_RMAX][B32_GMAX];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) {
            S[r][g] = _mm512_setzero_ps();
            for (int m = 0; m < 8; m++) acc[m][r][g] = _mm512_setzero_ps();
        }
    for (int i0 = 0; i0 < nb; i0 += B32_CHUNK) {
        const int cnt = nb - i0 < B32_CHUNK ? nb - i0 : B32_CHUNK;
        int8_t wq[B32_CHUNK][B32_RMAX][32] __attribute__((aligned(32)));
        int32_t seed[B32_CHUNK][B32_RMAX][8] __attribute__((aligned(32)));
        float dw[B32_CHUNK][B32_RMAX], mw[B32_CHUNK][B32_RMAX];
        __m512 dd[B32_CHUNK][B32_RMAX][B32_GMAX];
        const kern_pk_q8_0 *p[B32_GMAX];
        UNROLL
        for (int g = 0; g < G; g++) p[g] = (const kern_pk_q8_0 *)(xg + (size_t)g * gs) + i0;
        for (int k = 0; k < cnt; k++)
            UNROLL
            for (int r = 0; r < R; r++) {
                const __m256i q = b32_weights(w + (size_t)r * ws + (size_t)(i0 + k) * bs, kind, wq[k][r],
                                              &dw[k][r], &mw[k][r]);
                /* seed_m = magic - 128 * (sum of the lane's 4 weights) */
                const __m256i lw = _mm256_dpbusd_epi32(_mm256_setzero_si256(), c128, q);
                _mm256_store_si256((__m256i *)seed[k][r], _mm256_sub_epi32(magic8, lw));
            }
        /* (a separate pass, so that dw and mw come back from memory as
         * embedded broadcasts rather than register shuffles) */
        for (int k = 0; k < cnt; k++)
            UNROLL
            for (int g = 0; g < G; g++) {
                const __m512 dx = _mm512_load_ps(p[g][k].d);
                UNROLL
                for (int r = 0; r < R; r++) {
                    dd[k][r][g] = _mm512_mul_ps(dx, _mm512_set1_ps(dw[k][r]));
                    if (has_m) S[r][g] = _mm512_fmadd_ps(_mm512_set1_ps(mw[k][r]), _mm512_load_ps(p[g][k].s), S[r][g]);
                }
            }
        for (int m0 = 0; m0 < 8; m0 += LP) {
            __m512 a[B32_LPMAX][B32_RMAX][B32_GMAX];
            UNROLL
            for (int l = 0; l < LP; l++)
                UNROLL
                for (int r = 0; r < R; r++)
                    UNROLL
                    for (int g = 0; g < G; g++) a[l][r][g] = acc[m0 + l][r][g];
            for (int k = 0; k < cnt; k++) {
                __m512i x[B32_LPMAX][B32_GMAX];
                UNROLL
                for (int l = 0; l < LP; l++)
                    UNROLL
                    for (int g = 0; g < G; g++) x[l][g] = _mm512_load_si512((const void *)p[g][k].qs[m0 + l]);
                UNROLL
                for (int r = 0; r < R; r++) {
                    __m512 d[B32_GMAX];
                    UNROLL
                    for (int g = 0; g < G; g++) d[g] = dd[k][r][g];
                    UNROLL
                    for (int l = 0; l < LP; l++) {
                        int32_t wd;
                        memcpy(&wd, wq[k][r] + 4 * (m0 + l), 4);
                        const __m512i sd = _mm512_set1_epi32(seed[k][r][m0 + l]), b = _mm512_set1_epi32(wd);
                        UNROLL
                        for (int g = 0; g < G; g++) {
                            const __m512i L = _mm512_dpbusd_epi32(sd, x[l][g], b);
                            a[l][r][g] = _mm512_fmadd_ps(d[g], _mm512_sub_ps(_mm512_castsi512_ps(L), fmagic),
                                                         a[l][r][g]);
                        }
                    }
                }
            }
            UNROLL
            for (int l = 0; l < LP; l++)
                UNROLL
                for (int r = 0; r < R; r++)
                    UNROLL
                    for (int g = 0; g < G; g++) acc[m0 + l][r][g] = a[l][r][g];
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) {
            __m512 t[4];
            UNROLL
            for (int m = 0; m < 4; m++) t[m] = _mm512_add_ps(acc[m][r][g], acc[m + 4][r][g]);
            __m512 out = _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3]));
            if (has_m) out = _mm512_add_ps(out, S[r][g]);
            store_lanes(out, y + (size_t)16 * g * ldy + r, ldy);
        }
}

/* Groups four at a time (then 3, 2, 1): the more groups share a weight
 * broadcast and the per-row work of a chunk, the better; rows in blocks
 * of B32_RG<G> (R x G accumulators + G activation vectors fit 32 zmm). */
#ifndef B32_RG4
#define B32_RG4 4
#define B32_LP4 1
#define B32_RG3 4
#define B32_LP3 1
#define B32_RG2 4
#define B32_LP2 1
#define B32_RG1 8
#define B32_LP1 2
#endif
#define B32_ROWS(R_, G_, LP_, CALL)                                                     \
    do {                                                                                \
        for (; r + (R_) <= nr; r += (R_)) CALL(R_, G_, LP_);                            \
        for (; r + 2 <= nr; r += 2) CALL(2, G_, LP_);                                   \
        for (; r < nr; r++) CALL(1, G_, LP_);                                           \
    } while (0)
#define DEFINE_GEMM16_B32(name, KIND)                                                   \
    static void gemm16_##name(int n, const void *restrict w, size_t ws, int nr,         \
                              const void *restrict vxp, size_t gs, int ng,              \
                              float *restrict y, size_t ldy) {                          \
        const char *wb = w, *xg = vxp;                                                  \
        const int kind = KIND;                                                          \
        for (int g0 = 0; g0 < ng;) {                                                    \
            const int G = ng - g0 < 4 ? ng - g0 : 4;                                    \
            float *yg = y + (size_t)16 * g0 * ldy;                                      \
            const char *xp = xg + (size_t)g0 * gs;                                      \
            int r = 0;                                                                  \
            if (G == 4) B32_ROWS(B32_RG4, 4, B32_LP4, CALL_B32);                        \
            else if (G == 3) B32_ROWS(B32_RG3, 3, B32_LP3, CALL_B32);                   \
            else if (G == 2) B32_ROWS(B32_RG2, 2, B32_LP2, CALL_B32);                   \
            else B32_ROWS(B32_RG1, 1, B32_LP1, CALL_B32);                               \
            g0 += G;                                                                    \
        }                                                                               \
    }
#define CALL_B32(R_, G_, LP_) rows_b32(n / 32, wb + (size_t)r * ws, ws, R_, xp, gs, G_, LP_, yg + r, ldy, kind)

/* ---- Q4_0, repacked order: one chain per token ----------------------------
 * acc = fma((float)I_i, dw*dx, acc) with I_i the whole block's exact sum
 * (kernels.h), so the eight dword products of a block accumulate into one
 * vpdpbusd chain, seeded with -128 * (sum of the block's weights) to remove
 * the packer's +128 bias. */
KINLINE void rows_q4_0_r(int nb, const char *w, size_t ws, const int R, const char *xg, size_t gs,
                         const int G, float *y, size_t ldy) {
    const __m256i c128 = _mm256_set1_epi8((char)0x80);
    __m512 acc[RMAX][GMAX];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) acc[r][g] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        int8_t wq[RMAX][32] __attribute__((aligned(32)));
        int32_t seed[RMAX];
        float dw[RMAX];
        UNROLL
        for (int r = 0; r < R; r++) {
            const block_q4_0 *b = (const block_q4_0 *)(w + (size_t)r * ws) + i;
            const __m256i q = unpack_q4_0(b);
            _mm256_store_si256((__m256i *)wq[r], q);
            seed[r] = -hsum_i32_8(_mm256_dpbusd_epi32(_mm256_setzero_si256(), c128, q));
            dw[r] = h2f(b->d);
        }
        const kern_pk_q8_0 *p[GMAX];
        UNROLL
        for (int g = 0; g < G; g++) p[g] = (const kern_pk_q8_0 *)(xg + (size_t)g * gs) + i;
        __m512i S[RMAX][GMAX];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int g = 0; g < G; g++) S[r][g] = _mm512_set1_epi32(seed[r]);
        UNROLL
        for (int m = 0; m < 8; m++) {
            __m512i a[GMAX];
            UNROLL
            for (int g = 0; g < G; g++) a[g] = _mm512_load_si512((const void *)p[g]->qs[m]);
            UNROLL
            for (int r = 0; r < R; r++) {
                int32_t wd;
                memcpy(&wd, wq[r] + 4 * m, 4);
                const __m512i b = _mm512_set1_epi32(wd);
                UNROLL
                for (int g = 0; g < G; g++) S[r][g] = _mm512_dpbusd_epi32(S[r][g], a[g], b);
            }
        }
        UNROLL
        for (int g = 0; g < G; g++) {
            const __m512 dx = _mm512_load_ps(p[g]->d);
            UNROLL
            for (int r = 0; r < R; r++)
                acc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S[r][g]),
                                            _mm512_mul_ps(_mm512_set1_ps(dw[r]), dx), acc[r][g]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int g = 0; g < G; g++) store_lanes(acc[r][g], y + (size_t)16 * g * ldy + r, ldy);
}

/* ---- Q4_K GEMV, repacked single-token order: eight rows at a time ---------
 * The order (kernels.h, scalar.c): per row two chains over super-blocks,
 * A = fma(S, dw*dx, A) and B = fma(M, dmin*dx, B), y = A - B, with S the
 * super-block's exact scaled sum and M its exact mins term.  Here the
 * chains of eight rows run in the lanes of two ymm registers (as in
 * llama.cpp's q4_K_8x8 GEMV), and the integer work per row and
 * super-block is four zmm steps of 64 elements:
 *
 *   qs bytes 0..63:   low nibbles = elements 0..31 | 64..95     (chunks 0, 2)
 *                     high nibbles = elements 32..63 | 96..127  (chunks 1, 3)
 *   qs bytes 64..127: likewise chunks 4, 6 and 5, 7
 *   S += vpdpwssd(vpmaddubsw(nibbles, x in that order), scales per half)
 *
 * the activations being put in that order once per super-block for all
 * eight rows.  The 16-byte block headers (d, dmin, 12 scale bytes) of
 * four rows share one zmm, where the 6-bit scales and mins are unpacked
 * for four rows at once.  The eight S accumulators and the mins terms are
 * reduced together into one lane per row (a transpose-and-add tree).  All
 * integer sums are exact, so the float operations per row are the
 * canonical ones. */
#ifndef Q4KV_PF
#define Q4KV_PF 24                   /* prefetch distance, super-blocks */
#endif
#ifndef Q4KV_HINT
#define Q4KV_HINT _MM_HINT_T1
#endif

/* int16 lanes: byte c, then zero (a vpshufb mask); quarters 0-1 take c0,
 * quarters 2-3 c1 */
KINLINE __m512i q4kv_mask(int c0, int c1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(0x8000 | c0))),
                              _mm256_set1_epi16((short)(0x8000 | c1)), 1);
}

/* Four 16-byte block headers [d|dmin, u0, u1, u2] (one per 128-bit
 * quarter) -> [sc0..3, sc4..7, mn0..3, mn4..7] bytes per quarter:
 *   sc0..3 = u0 & 0x3f.., sc4..7 = (u2 & 0x0f..) | ((u0 >> 2) & 0x30..)
 *   mn0..3 = u1 & 0x3f.., mn4..7 = ((u2 >> 4) & 0x0f..) | ((u1 >> 2) & 0x30..) */
KINLINE __m512i q4kv_scales(__m512i h) {
    const __m512i p = _mm512_shuffle_epi32(h, (_MM_PERM_ENUM)_MM_SHUFFLE(3, 2, 3, 1));   /* u0 u2 u1 u2 */
    const __m512i q = _mm512_srlv_epi32(p, _mm512_set4_epi32(4, 0, 0, 0));
    const __m512i lo = _mm512_and_si512(q, _mm512_set4_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
    const __m512i r = _mm512_shuffle_epi32(h, (_MM_PERM_ENUM)_MM_SHUFFLE(2, 2, 1, 1));   /* u0 u0 u1 u1 */
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(r, 2),
                                        _mm512_set4_epi32(0x30303030, 0, 0x30303030, 0));
    return _mm512_or_si512(lo, hi);
}

KINLINE __m512i q4kv_hdr4(const char *const *w, size_t off) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(w[0] + off)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w[1] + off)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w[2] + off)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w[3] + off)), 3);
}

/* quarter k of v in all four (k a constant once unrolled; the switch
 * keeps the shuffle's immediate an immediate without optimization) */
KINLINE __m512i q4kv_quarter(__m512i v, const int k) {
    switch (k) {
    case 0: return _mm512_shuffle_i32x4(v, v, 0x00);
    case 1: return _mm512_shuffle_i32x4(v, v, 0x55);
    case 2: return _mm512_shuffle_i32x4(v, v, 0xaa);
    default: return _mm512_shuffle_i32x4(v, v, 0xff);
    }
}

/* [a.q0+a.q2, a.q1+a.q3, b.q0+b.q2, b.q1+b.q3] */
KINLINE __m512i q4kv_fold(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
/* quarter k: a.q(2k)+a.q(2k+1) for k < 2, b's for k >= 2 */
KINLINE __m512i q4kv_fold2(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Rows w[0..7] (super-blocks nb) times one Q8_K row x: y[r] = A_r - B_r. */
static void rows8_q4_K_rs(int nb, const char *const w[8], size_t next, const block_q8_K *x, float *y) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i mk0 = q4kv_mask(0, 2), mk1 = q4kv_mask(1, 3), mk2 = q4kv_mask(4, 6), mk3 = q4kv_mask(5, 7);
    const __m512i mkm = _mm512_broadcast_i32x4(_mm_setr_epi16((short)0x8008, (short)0x8009, (short)0x800a,
                                                              (short)0x800b, (short)0x800c, (short)0x800d,
                                                              (short)0x800e, (short)0x800f));
    __m256 A = _mm256_setzero_ps(), B = _mm256_setzero_ps();
    /* prefetch Q4KV_PF super-blocks ahead in the order the tiles read them:
     * past a row's end, in the same row of the next tile(s) */
    size_t pft = Q4KV_PF / nb;
    int pfb = Q4KV_PF % nb;
    for (int i = 0; i < nb; i++) {
        const size_t off = (size_t)i * sizeof(block_q4_K);
        const size_t pfo = pft * next + (size_t)pfb * sizeof(block_q4_K);
        if (++pfb == nb) { pfb = 0; pft++; }
        UNROLL
        for (int r = 0; r < 8; r++) {
            const char *pf = w[r] + pfo;
            _mm_prefetch(pf, Q4KV_HINT);
            _mm_prefetch(pf + 64, Q4KV_HINT);
            _mm_prefetch(pf + 128, Q4KV_HINT);
        }
        const int8_t *xq = x[i].qs;
#define LD2(a, b) _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(xq + (a)))), \
                                     _mm256_loadu_si256((const __m256i *)(xq + (b))), 1)
        const __m512i X0 = LD2(0, 64), X1 = LD2(32, 96), X2 = LD2(128, 192), X3 = LD2(160, 224);
#undef LD2
        const __m128i b8 = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x[i].bsums),
                                          _mm_loadu_si128((const __m128i *)(x[i].bsums + 8)));
        const __m512i B8 = _mm512_broadcast_i32x4(b8);
        const __m512i H0 = q4kv_hdr4(w, off), H1 = q4kv_hdr4(w + 4, off);
        const __m512i SC0 = q4kv_scales(H0), SC1 = q4kv_scales(H1);
        __m512i S[8];
        UNROLL
        for (int r = 0; r < 8; r++) {
            const __m512i sc = r < 4 ? SC0 : SC1;
            const __m512i bq = q4kv_quarter(sc, r & 3);
            const block_q4_K *b = (const block_q4_K *)(w[r] + off);
            const __m512i W0 = _mm512_loadu_si512((const void *)b->qs);
            const __m512i W1 = _mm512_loadu_si512((const void *)(b->qs + 64));
            __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(),
                                            _mm512_maddubs_epi16(_mm512_and_si512(W0, m4), X0),
                                            _mm512_shuffle_epi8(bq, mk0));
            s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(W0, 4), m4), X1),
                                    _mm512_shuffle_epi8(bq, mk1));
            s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(_mm512_and_si512(W1, m4), X2),
                                    _mm512_shuffle_epi8(bq, mk2));
            S[r] = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(W1, 4), m4), X3),
                                       _mm512_shuffle_epi8(bq, mk3));
        }
        /* mins: quarter k = row k's four pair terms */
        const __m512i M0 = _mm512_madd_epi16(_mm512_shuffle_epi8(SC0, mkm), B8);
        const __m512i M1 = _mm512_madd_epi16(_mm512_shuffle_epi8(SC1, mkm), B8);
        /* quarter k of V0 (V1): row k's (k+4's) four partial sums */
        const __m512i V0 = q4kv_fold2(q4kv_fold(S[0], S[1]), q4kv_fold(S[2], S[3]));
        const __m512i V1 = q4kv_fold2(q4kv_fold(S[4], S[5]), q4kv_fold(S[6], S[7]));
        const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi32(V0, V1), _mm512_unpackhi_epi32(V0, V1));
        const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi32(M0, M1), _mm512_unpackhi_epi32(M0, M1));
        /* quarter k: [S_k, S_k+4, M_k, M_k+4] */
        const __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi64(u0, u1), _mm512_unpackhi_epi64(u0, u1));
        const __m256i Si = _mm512_castsi512_si256(_mm512_permutexvar_epi32(
            _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0), t));
        const __m256i Mi = _mm512_castsi512_si256(_mm512_permutexvar_epi32(
            _mm512_setr_epi32(2, 6, 10, 14, 3, 7, 11, 15, 0, 0, 0, 0, 0, 0, 0, 0), t));
        /* d | dmin of the eight rows */
        const __m256i h8 = _mm512_castsi512_si256(_mm512_permutex2var_epi32(
            H0, _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0), H1));
        const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(h8));
        const __m256 dm = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(h8, 16)));
        const __m256 xd = _mm256_set1_ps(x[i].d);
        A = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Si), _mm256_mul_ps(dw, xd), A);
        B = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Mi), _mm256_mul_ps(dm, xd), B);
    }
    _mm256_storeu_ps(y, _mm256_sub_ps(A, B));
}

/* gemm_rs for Q4_K: every token on its own (single-token order is per
 * token anyway), rows eight at a time; a short last group repeats its
 * last row in the unused slots. */
static void gemm_q4_K_rs(int n, const void *restrict vw, size_t ws, int nr, const void *restrict vx,
                         size_t xs, int nt, float *restrict y, size_t ldy) {
    const int nb = n / QK_K;
    for (int t = 0; t < nt; t++) {
        const block_q8_K *x = XROW(block_q8_K, vx, xs, t);
        float *yt = y + (size_t)t * ldy;
        for (int r0 = 0; r0 < nr; r0 += 8) {
            const char *w[8];
            const int R = nr - r0 < 8 ? nr - r0 : 8;
            for (int r = 0; r < 8; r++) w[r] = (const char *)vw + (size_t)(r0 + (r < R ? r : R - 1)) * ws;
            if (R == 8) {
                rows8_q4_K_rs(nb, w, 8 * ws, x, yt + r0);
            } else {
                float tmp[8];
                rows8_q4_K_rs(nb, w, 8 * ws, x, tmp);
                memcpy(yt + r0, tmp, sizeof(float) * (size_t)R);
            }
        }
    }
}
static void vec_dot_q4_K_rs(int n, float *restrict s, const void *restrict w, const void *restrict x) {
    gemm_q4_K_rs(n, w, 0, 1, x, 0, 1, s, 0);
}

/* ---- Q6_K GEMV and small batches: two rows per tile, zmm ---------------
 * The canonical order (scalar.c): per row eight lane chains, lane m of a
 * 32-element chunk being its elements 4m..4m+3, L_m the exact sum over
 * the super-block's chunks of (scale) * (lane m's dot) minus 32 * (sc[2m]
 * bsums[2m] + sc[2m+1] bsums[2m+1]), acc_m = fma(dx*dw, L_m, acc_m).
 * Here a zmm holds two chunks (64 elements, activations in natural order):
 *
 *   chunks 0,1: ql[0..63] & 15   | ((qh[0..31] << 4, << 2) & 0x30)
 *   chunks 2,3: ql[0..63] >> 4   | ((qh[0..31] >> 0, >> 2) & 0x30)
 *   chunks 4..7 likewise from ql[64..127], qh[32..63]
 *
 * and 128-bit quarter k of the zmm for chunks 2j, 2j+1 has scale
 * sc[4j + k] (a vpermw of the 16 scales), so vpmaddubsw + vpdpwssd leave
 * L_m's parts in int32 lanes m and m + 8; the -32 offset is two more
 * vpdpwssd of (-16 * bsums) by the scales into lanes 0..7.  Two rows'
 * eight lanes share one zmm float accumulator (lanes 0..7 and 8..15), so
 * per super-block and pair of rows: one conversion and one fma. */
#ifndef Q6KV_PF
#define Q6KV_PF 12                   /* prefetch distance, super-blocks */
#endif
#ifndef Q6KV_HINT
#define Q6KV_HINT _MM_HINT_T1
#endif

KINLINE __m512i q6kv_idx(int j) {
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_setr_m128i(_mm_set1_epi16((short)(4 * j)), _mm_set1_epi16((short)(4 * j + 1)))),
        _mm256_setr_m128i(_mm_set1_epi16((short)(4 * j + 2)), _mm_set1_epi16((short)(4 * j + 3))), 1);
}

/* R (1 or 2) rows w0, w1 x NT tokens: y[t*ldy + r]. */
KINLINE void rows2_q6_K(int nb, const block_q6_K *w0, const block_q6_K *w1, size_t next, const void *vx,
                        size_t xs, const int NT, float *y, size_t ldy, const int R) {
    const block_q8_K *x[NT_MAX];
    __m512 acc[NT_MAX];
    UNROLL
    for (int t = 0; t < NT; t++) { x[t] = XROW(block_q8_K, vx, xs, t); acc[t] = _mm512_setzero_ps(); }
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i sixteen = _mm512_set1_epi16(16);
    __m512i ix[4];
    UNROLL
    for (int j = 0; j < 4; j++) ix[j] = q6kv_idx(j);
    /* prefetch Q6KV_PF super-blocks ahead in the order the tiles read them:
     * past a row's end, in the same row of the next pair(s) */
    size_t pft = Q6KV_PF / nb;
    int pfb = Q6KV_PF % nb;
    for (int i = 0; i < nb; i++) {
        const block_q6_K *b[2] = {w0 + i, w1 + i};
        const char *pfo = (const char *)w0 + pft * next + (size_t)pfb * sizeof(block_q6_K);
        if (++pfb == nb) { pfb = 0; pft++; }
        /* both rows' 16 scales as int16: row r's at lanes 16r .. 16r+15 */
        const __m512i sc = _mm512_cvtepi8_epi16(_mm256_setr_m128i(
            _mm_loadu_si128((const __m128i *)b[0]->scales),
            _mm_loadu_si128((const __m128i *)b[R - 1]->scales)));
        __m512i L[2][NT_MAX];
        UNROLL
        for (int r = 0; r < R; r++) {
            const char *pf = pfo + (r ? (const char *)w1 - (const char *)w0 : 0);
            _mm_prefetch(pf, Q6KV_HINT);
            _mm_prefetch(pf + 64, Q6KV_HINT);
            _mm_prefetch(pf + 128, Q6KV_HINT);
            _mm_prefetch(pf + 192, Q6KV_HINT);
            const __m512i Q0 = _mm512_loadu_si512((const void *)b[r]->ql);
            const __m512i Q1 = _mm512_loadu_si512((const void *)(b[r]->ql + 64));
            const __m512i T0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b[r]->qh));
            const __m512i T1 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b[r]->qh + 32)));
            /* f(A,B,C) = A | (B & C) */
            const __m512i q0 = _mm512_ternarylogic_epi32(_mm512_and_si512(Q0, m4), _mm512_sllv_epi16(T0, shl), m30, 0xf8);
            const __m512i q1 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(Q0, 4), m4),
                                                         _mm512_srlv_epi16(T0, shr), m30, 0xf8);
            const __m512i q2 = _mm512_ternarylogic_epi32(_mm512_and_si512(Q1, m4), _mm512_sllv_epi16(T1, shl), m30, 0xf8);
            const __m512i q3 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(Q1, 4), m4),
                                                         _mm512_srlv_epi16(T1, shr), m30, 0xf8);
            __m512i s[4];
            UNROLL
            for (int j = 0; j < 4; j++)
                s[j] = _mm512_permutexvar_epi16(r ? _mm512_add_epi16(ix[j], sixteen) : ix[j], sc);
            UNROLL
            for (int t = 0; t < NT; t++) {
                const int8_t *xq = x[t][i].qs;
                __m512i a = _mm512_dpwssd_epi32(_mm512_setzero_si512(),
                                                _mm512_maddubs_epi16(q0, _mm512_loadu_si512((const void *)xq)), s[0]);
                a = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(q1, _mm512_loadu_si512((const void *)(xq + 64))), s[1]);
                a = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(q2, _mm512_loadu_si512((const void *)(xq + 128))), s[2]);
                L[r][t] = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(q3, _mm512_loadu_si512((const void *)(xq + 192))), s[3]);
            }
        }
        /* [d0 x 8 | d1 x 8] as floats */
        const __m512 dw = _mm512_cvtph_ps(_mm256_setr_m128i(_mm_set1_epi16((short)b[0]->d),
                                                            _mm_set1_epi16((short)b[R - 1]->d)));
        UNROLL
        for (int t = 0; t < NT; t++) {
            /* lanes 0..7: row 0's L_m, lanes 8..15: row 1's (a copy of row
             * 0's when R == 1) */
            const __m512i l1 = R == 2 ? L[1][t] : L[0][t];
            __m512i l = _mm512_add_epi32(_mm512_mask_blend_epi64(0xf0, L[0][t], l1),
                                         _mm512_shuffle_i64x2(L[0][t], l1, 0x4e));
            /* the -32 offset: twice (-16 * bsums) . scales, int16 lanes 0..15
             * of each row's half (|16 * 2032| < 32768) */
            const __m256i bs = _mm256_sub_epi16(_mm256_setzero_si256(),
                _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)x[t][i].bsums), 4));
            const __m512i bs2 = _mm512_broadcast_i64x4(bs);
            l = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(l, bs2, sc), bs2, sc);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(x[t][i].d), dw), _mm512_cvtepi32_ps(l), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < NT; t++) {
        y[(size_t)t * ldy] = hsum8(_mm512_castps512_ps256(acc[t]));
        if (R == 2) y[(size_t)t * ldy + 1] = hsum8(_mm512_extractf32x8_ps(acc[t], 1));
    }
}

/* Tokens in groups of four (outer), rows in pairs (inner). */
static void gemm_q6_K(int n, const void *restrict w, size_t ws, int nr, const void *restrict x,
                      size_t xs, int nt, float *restrict y, size_t ldy) {
    const int nb = n / QK_K;
    const char *wb = w, *xb = x;
    for (int t = 0; t < nt; t += NT_MAX) {
        const int k = nt - t < NT_MAX ? nt - t : NT_MAX;
        const char *xt = xb + (size_t)t * xs;
        float *yt = y + (size_t)t * ldy;
        for (int r = 0; r < nr; r += 2) {
            const block_q6_K *w0 = (const block_q6_K *)(wb + (size_t)r * ws);
            if (r + 1 < nr) {
                const block_q6_K *w1 = (const block_q6_K *)(wb + (size_t)(r + 1) * ws);
                switch (k) {
                case 4: rows2_q6_K(nb, w0, w1, 2 * ws, xt, xs, 4, yt + r, ldy, 2); break;
                case 3: rows2_q6_K(nb, w0, w1, 2 * ws, xt, xs, 3, yt + r, ldy, 2); break;
                case 2: rows2_q6_K(nb, w0, w1, 2 * ws, xt, xs, 2, yt + r, ldy, 2); break;
                default: rows2_q6_K(nb, w0, w1, 2 * ws, xt, xs, 1, yt + r, ldy, 2); break;
                }
            } else {
                switch (k) {
                case 4: rows2_q6_K(nb, w0, w0, 2 * ws, xt, xs, 4, yt + r, ldy, 1); break;
                case 3: rows2_q6_K(nb, w0, w0, 2 * ws, xt, xs, 3, yt + r, ldy, 1); break;
                case 2: rows2_q6_K(nb, w0, w0, 2 * ws, xt, xs, 2, yt + r, ldy, 1); break;
                default: rows2_q6_K(nb, w0, w0, 2 * ws, xt, xs, 1, yt + r, ldy, 1); break;
                }
            }
        }
    }
}
static void vec_dot_q6_K(int n, float *restrict s, const void *restrict w, const void *restrict x) {
    gemm_q6_K(n, w, 0, 1, x, 0, 1, s, 0);
}

/* ---- entry points ---------------------------------------------------------
 * Groups go in pairs (G = 2) with a single one left over; rows in blocks of
 * RMAX rows for single groups and RMAX2 for pairs (register budget: the
 * accumulators of R x G tiles must fit the 32 zmm registers), tails with a
 * constant smaller R. */
#define DEFINE_GEMM16(name, CALL, R1, R2)                                               \
    static void gemm16_##name(int n, const void *restrict w, size_t ws, int nr,         \
                              const void *restrict vxp, size_t gs, int ng,              \
                              float *restrict y, size_t ldy) {                          \
        const char *wb = w, *xg = vxp;                                                  \
        for (int g0 = 0; g0 < ng; g0 += (R2) ? 2 : 1) {                                 \
            float *yg = y + (size_t)16 * g0 * ldy;                                      \
            const char *xp = xg + (size_t)g0 * gs;                                      \
            int r = 0;                                                                  \
            if ((R2) && ng - g0 >= 2) {                                                 \
                for (; r + (R2) <= nr; r += (R2)) CALL((R2) ? (R2) : 1, 2);             \
                for (; r < nr; r++) CALL(1, 2);                                         \
            } else {                                                                    \
                for (; r + (R1) <= nr; r += (R1)) CALL(R1, 1);                          \
                for (; r + 2 <= nr; r += 2) CALL(2, 1);                                 \
                for (; r < nr; r++) CALL(1, 1);                                         \
            }                                                                           \
        }                                                                               \
    }

#define CALL_Q4K(R_, G_) rows_q4_K(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, gs, G_, yg + r, ldy)
#define CALL_Q5K(R_, G_) rows_l8(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, gs, G_, yg + r, ldy, L8_Q5_K)
#define CALL_Q6K(R_, G_) rows_l8(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, gs, G_, yg + r, ldy, L8_Q6_K)
DEFINE_GEMM16(q4_K, CALL_Q4K, Q4K_R1, Q4K_R2)
DEFINE_GEMM16(q5_K, CALL_Q5K, K_R1, K_R2)
DEFINE_GEMM16(q6_K, CALL_Q6K, K_R1, K_R2)
#define CALL_Q2K(R_, G_) rows_q2_K(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, gs, G_, yg + r, ldy)
#define CALL_Q3K(R_, G_) rows_l8(n / QK_K, wb + (size_t)r * ws, ws, R_, xp, gs, G_, yg + r, ldy, L8_Q3_K)
DEFINE_GEMM16(q2_K, CALL_Q2K, K_R1, K_R2)
DEFINE_GEMM16(q3_K, CALL_Q3K, K_R1, K_R2)

DEFINE_GEMM16_B32(q8_0, B32_Q8_0)
#define CALL_Q40R(R_, G_) rows_q4_0_r(n / 32, wb + (size_t)r * ws, ws, R_, xp, gs, G_, yg + r, ldy)
DEFINE_GEMM16(q4_0_r, CALL_Q40R, RMAX, RMAX2)
DEFINE_GEMM16_B32(q5_0, B32_Q5_0)
DEFINE_GEMM16_B32(q4_1, B32_Q4_1)
DEFINE_GEMM16_B32(q5_1, B32_Q5_1)

/* ---- 32-element formats, GEMV: eight rows at a time, two per zmm -------
 * The canonical order (x86_tiles.h, scalar.c): per row eight lane chains,
 * acc_m = fma(dw*dx, L_m, acc_m) per block, L_m the exact int32 dot product
 * of the block's elements 4m..4m+3; Q4_1/Q5_1 add a scalar chain
 * c = fma(m, s_x, c); y = hsum8(acc) + c.  The ymm tiles spend one gather
 * per row and eight blocks on the scales and a sign trick per block, and
 * stream only about half of what memory delivers.  Here two rows share a
 * zmm (row A's block in the low 256 bits, row B's in the high), so one
 * vpdpbusd, conversion and fma serve both, and the weights go in as
 * unsigned bytes with the format's offset folded into the accumulator's
 * start value, computed once per block for all eight rows:
 *
 *   Q4_0: L = vpdpbusd(-8 * S, nibbles, x)     S_m = sum of x[4m..4m+3]
 *   Q5_0: L = vpdpbusd(-16 * S, nibbles | 16 * bit, x)
 *   Q8_0: L = vpdpbusd(-128 * S, w ^ 0x80, x)  (w + 128 as unsigned)
 *   Q4_1, Q5_1: L = vpdpbusd(0, q, x)          (unsigned already)
 *
 * all exact in int32.  The eight rows' block headers come in with one
 * gather per block: as 16 halves they convert to [d_0, m_0, d_1, m_1, ...]
 * (m only meaningful for Q4_1/Q5_1), so one multiply by dx gives every
 * row's dw*dx (a vpermps hands rows 2p, 2p+1 theirs) and one fma by s_x
 * runs the eight m chains in the odd lanes.  The weight stream is
 * prefetched into L2 B32V_PF bytes ahead per row, in the order the tiles
 * read it (past a row's end, into the same row of the next tile). */
/* Blocks a (row A) and b (row B) as unsigned bytes in element order:
 * bytes 0..31 row A's elements, 32..63 row B's. */
KINLINE __m512i b32v_w(const char *a, const char *b, const int f) {
    if (f == B32V_Q8_0) {
        const __m512i v = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(a + 2))),
            _mm256_loadu_si256((const __m256i *)(b + 2)), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    /* [A.qs | A.qs | B.qs | B.qs]: low nibbles in quarters 0, 2, high in 1, 3 */
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(a + B32V_QS(f))));
    v = _mm512_mask_broadcast_i32x4(v, 0xff00, _mm_loadu_si128((const __m128i *)(b + B32V_QS(f))));
    v = _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)),
                         _mm512_set1_epi8(0x0f));
    if (f == B32V_Q5_0 || f == B32V_Q5_1) {
        uint32_t ha, hb;
        memcpy(&ha, a + B32V_QH(f), 4);
        memcpy(&hb, b + B32V_QH(f), 4);
        const __mmask64 k = _cvtu64_mask64((uint64_t)ha | (uint64_t)hb << 32);
        v = _mm512_mask_add_epi8(v, k, v, _mm512_set1_epi8(16));
    }
    return v;
}

/* Rows w[0..7] (nb blocks each) times one activation row x: y[0..7].
 * off[r] = w[r] - w[0] (the gather's indices); next = the distance from a
 * row to the same row of the next tile (prefetch only). */
KINLINE void rows8_b32(int nb, const char *const w[8], __m256i off, size_t next, const char *x,
                       float *y, const int f) {
    const int bs = B32V_BS(f), xbs = B32V_XBS(f);
    __m512 acc[4], C = _mm512_setzero_ps();
    UNROLL
    for (int p = 0; p < 4; p++) acc[p] = _mm512_setzero_ps();
    __m512i pidx[4];
    UNROLL
    for (int p = 0; p < 4; p++)
        pidx[p] = _mm512_inserti64x4(_mm512_set1_epi32(4 * p), _mm256_set1_epi32(4 * p + 2), 1);
    const int bias = f == B32V_Q4_0 ? 8 : f == B32V_Q5_0 ? 16 : f == B32V_Q8_0 ? 128 : 0;
    b32v_pf pf = b32v_pf_init(nb, bs);
    for (int i = 0; i < nb; i++) {
        const size_t o = (size_t)i * (size_t)bs;
        b32v_pf_step(&pf, w, next, nb, bs);
        const char *xb = x + (size_t)i * (size_t)xbs;
        const __m512i X = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(xb + B32V_XQS(f))));
        __m512i L0 = _mm512_setzero_si512();
        if (bias)
            L0 = _mm512_sub_epi32(L0, _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                          _mm512_set1_epi8((char)bias), X));
        nj_half xh[2];
        memcpy(xh, xb, sizeof(xh));
        const __m512 F = _mm512_cvtph_ps(_mm256_i32gather_epi32((const int *)(w[0] + o), off, 1));
        const __m512 DX = _mm512_mul_ps(F, _mm512_set1_ps(h2f(xh[0])));
        if (B32V_HAS_M(f)) C = _mm512_fmadd_ps(F, _mm512_set1_ps(h2f(xh[1])), C);
        UNROLL
        for (int p = 0; p < 4; p++) {
            const __m512i L = _mm512_dpbusd_epi32(L0, b32v_w(w[2 * p] + o, w[2 * p + 1] + o, f), X);
            acc[p] = _mm512_fmadd_ps(_mm512_permutexvar_ps(pidx[p], DX), _mm512_cvtepi32_ps(L), acc[p]);
        }
    }
    float c[16];
    if (B32V_HAS_M(f)) _mm512_storeu_ps(c, C);
    UNROLL
    for (int p = 0; p < 4; p++) {
        const float a = hsum8(_mm512_castps512_ps256(acc[p]));
        const float b = hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p]), 1)));
        y[2 * p] = B32V_HAS_M(f) ? a + c[4 * p + 1] : a;
        y[2 * p + 1] = B32V_HAS_M(f) ? b + c[4 * p + 3] : b;
    }
}

DEFINE_B32V(q4_0, B32V_Q4_0)
DEFINE_B32V(q4_1, B32V_Q4_1)
DEFINE_B32V(q5_0, B32V_Q5_0)
DEFINE_B32V(q5_1, B32V_Q5_1)
DEFINE_B32V(q8_0, B32V_Q8_0)

/* ---- BF16: vdpbf16ps, llama.cpp's own instruction (AVX512_BF16 only) ---
 *
 * One _mm512_dpbf16_ps is one step of scalar.c's kern_bf16_dp32 on all 16
 * lanes (the instruction's order and flushing are what that function
 * reproduces; tests/test_kernels.c checks them against each other on
 * subnormals and underflowing products).  The single-token order keeps two
 * accumulators (the even and odd 32-element chunks of every 64), the
 * batched order one; the reductions and tails are scalar.c's finishers.
 * Tiles of up to 4 rows x 6 tokens (batched, as tinyBLAS) or 4 x 2
 * (single) reuse each load across the tile. */
KINLINE __m512bh bf_ld(const uint16_t *p) { return (__m512bh)_mm512_loadu_si512(p); }
static const uint16_t zero32[32];

KINLINE void bf_tile(int n, const uint16_t *w, size_t ws, const int R, const uint16_t *x,
                     size_t xs, const int T, float *y, size_t ldy, const int single) {
    __m512 c1[4][6], c2[4][6];
    UNROLL
    for (int r = 0; r < 4; r++)
        UNROLL
        for (int t = 0; t < 6; t++) c1[r][t] = c2[r][t] = _mm512_setzero_ps();
    int i = 0;
    const int step = single ? 64 : 32;
    __m512bh xv[6], xv2[6];   /* zeroed: only T of them are loaded */
    UNROLL
    for (int t = 0; t < 6; t++) xv[t] = xv2[t] = bf_ld(zero32);
    for (; i + step <= n; i += step) {
        UNROLL
        for (int t = 0; t < T; t++) {
            xv[t] = bf_ld(x + (size_t)t * xs + i);
            if (single) xv2[t] = bf_ld(x + (size_t)t * xs + i + 32);
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            if (single) prefetch_w(w + (size_t)r * ws + i, 128);   /* decode streams W */
            const __m512bh wv = bf_ld(w + (size_t)r * ws + i);
            UNROLL
            for (int t = 0; t < T; t++) c1[r][t] = _mm512_dpbf16_ps(c1[r][t], wv, xv[t]);
            if (single) {
                const __m512bh wv2 = bf_ld(w + (size_t)r * ws + i + 32);
                UNROLL
                for (int t = 0; t < T; t++) c2[r][t] = _mm512_dpbf16_ps(c2[r][t], wv2, xv2[t]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int t = 0; t < T; t++) {
            float a1[16], a2[16];
            const uint16_t *wr = w + (size_t)r * ws, *xt = x + (size_t)t * xs;
            _mm512_storeu_ps(a1, c1[r][t]);
            if (single) {
                _mm512_storeu_ps(a2, c2[r][t]);
                y[(size_t)t * ldy + r] = kern_bf16_finish_single(a1, a2, wr, xt, i, n);
            } else {
                y[(size_t)t * ldy + r] = kern_bf16_finish_batched(a1, wr, xt, i, n);
            }
        }
}

/* R rows x T tokens, R <= 4 and T <= 6 constant after inlining */
#define BF_TILE_CASE(R_, T_, SINGLE)                                                           \
    if (R == R_ && T == T_) { bf_tile(n, w, ws, R_, x, xs, T_, yy, ldy, SINGLE); continue; }
#define DEFINE_BF16_GEMM(name, SINGLE, TMAX)                                                   \
    static void gemm_##name(int n, const void *restrict vw, size_t w_stride, int nr,           \
                            const void *restrict vx, size_t x_stride, int nt, float *restrict y, \
                            size_t ldy) {                                                      \
        const size_t ws = w_stride / 2, xs = x_stride / 2;                                     \
        for (int t = 0; t < nt; t += TMAX) {                                                   \
            const uint16_t *x = (const uint16_t *)vx + (size_t)t * xs;                         \
            for (int r = 0; r < nr; r += 4) {                                                  \
                const uint16_t *w = (const uint16_t *)vw + (size_t)r * ws;                     \
                float *yy = y + (size_t)t * ldy + r;                                           \
                const int R = nr - r < 4 ? nr - r : 4, T = nt - t < TMAX ? nt - t : TMAX;      \
                BF_TILE_CASE(4, TMAX, SINGLE) BF_TILE_CASE(4, 1, SINGLE)                       \
                BF_TILE_CASE(1, 1, SINGLE) BF_TILE_CASE(4, 2, SINGLE)                          \
                BF_TILE_CASE(4, 3, SINGLE) BF_TILE_CASE(4, 4, SINGLE)                          \
                bf_tile(n, w, ws, R, x, xs, T, yy, ldy, SINGLE);                               \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void vec_dot_##name(int n, float *restrict s, const void *restrict w,               \
                               const void *restrict x) {                                       \
        bf_tile(n, w, 0, 1, x, 0, 1, s, 0, SINGLE);                                            \
    }
DEFINE_BF16_GEMM(bf16, 1, 2)
DEFINE_BF16_GEMM(bf16_b, 0, 6)

void kern_avx512_fill(nj_kernels *k, uint32_t features) {
    KERN_SET(k, NJ_Q4_0, vec_dot_q4_0, gemmv_q4_0);
    KERN_SET(k, NJ_Q4_1, vec_dot_q4_1, gemmv_q4_1);
    KERN_SET(k, NJ_Q5_0, vec_dot_q5_0, gemmv_q5_0);
    KERN_SET(k, NJ_Q5_1, vec_dot_q5_1, gemmv_q5_1);
    KERN_SET(k, NJ_Q8_0, vec_dot_q8_0, gemmv_q8_0);
    KERN_SET_ORDERS(k, NJ_Q4_0, vec_dot_q4_0_r, gemm_q4_0_r, vec_dot_q4_0_r, gemm_q4_0_r);
    k->vec_dot_rs[NJ_Q4_K] = vec_dot_q4_K_rs;   /* batched order: avx2's stays */
    k->gemm_rs[NJ_Q4_K] = gemm_q4_K_rs;
    KERN_SET(k, NJ_Q6_K, vec_dot_q6_K, gemm_q6_K);
    k->pack16[NJ_Q8_K] = kern_pack16_q8_K;
    k->pack16[NJ_Q8_0] = kern_pack16_q8_0_x86;
    k->pack16[NJ_Q8_1] = kern_pack16_q8_1_x86;
    k->gemm16[NJ_Q2_K] = gemm16_q2_K;
    k->gemm16[NJ_Q3_K] = gemm16_q3_K;
    k->gemm16[NJ_Q4_K] = gemm16_q4_K;
    k->gemm16[NJ_Q5_K] = gemm16_q5_K;
    k->gemm16[NJ_Q6_K] = gemm16_q6_K;
    k->gemm16[NJ_Q8_0] = gemm16_q8_0;
    k->gemm16[NJ_Q4_0] = gemm16_q4_0_r;   /* repacked order (vec_dot_rb) */
    k->gemm16[NJ_Q5_0] = gemm16_q5_0;
    k->gemm16[NJ_Q4_1] = gemm16_q4_1;
    k->gemm16[NJ_Q5_1] = gemm16_q5_1;
    if (features & NJ_CPU_AVX512BF16) {   /* else avx2's emulation stays */
        KERN_SET(k, NJ_BF16, vec_dot_bf16, gemm_bf16);
        KERN_SET_ORDERS(k, NJ_BF16, vec_dot_bf16, gemm_bf16, vec_dot_bf16_b, gemm_bf16_b);
    }
}
