/*
 * kern_isa.h — what the SIMD kernel files (avx2.c and avx512.c through
 * x86_tiles.h, neon.c) share: the inlining and unrolling macros, the tile
 * glue that turns a tile function into a vec_dot and a gemm, and the
 * macros their kern_*_fill functions install kernels with.  Nothing here
 * uses an intrinsic; per-ISA helpers (h2f, prefetch_w, the horizontal
 * sums) stay in the ISA files.  Included only by files in src/kernels/.
 */
#ifndef NJ_KERN_ISA_H
#define NJ_KERN_ISA_H

#include "kernels.h"

#define KINLINE static inline __attribute__((always_inline))
/* Small constant-trip loops (rows, tokens, sub-blocks) must be unrolled
 * so their accumulators live in registers; -O2 alone does not.  clang
 * (Apple's compiler, so the build that runs on a Mac) takes "GCC unroll"
 * but applies it before inlining makes the trip counts constant, and then
 * leaves the loops rolled with the accumulators in stack memory; its own
 * "unroll(full)" is applied once the count is known.  Only for the ARM
 * build: x86_tiles.h marks some loops whose count stays a run-time value,
 * which clang would report as not unrolled. */
#if defined(__clang__) && defined(__aarch64__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif
/* Tokens per tile: gemm walks activation rows in groups of this many. */
#define NT_MAX 4

/* Activation row t of type T at vx with row stride xs (bytes). */
#define XROW(T, vx, xs, t) ((const T *)((const char *)(vx) + (size_t)(t) * (xs)))

/* Software prefetch of the weight stream this many bytes ahead of the
 * block being read (rows are contiguous, so near a row's end this fetches
 * the next row).  Decode reads every weight once from DRAM; without it the
 * kernels wait for memory between blocks instead of overlapping, and a
 * GEMV reaches about half the machine's read bandwidth.  Each ISA file
 * defines its prefetch_w with it. */
#define PF_AHEAD 1536

/* Tile glue: vec_dot is the one-token tile; gemm walks tokens in groups of
 * four (outer, so their activations stay in L1) and rows (inner).  `tile`
 * is tile(n, w, x, xs, y, ldy, nt) with nt a constant 1..NT_MAX. */
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

/* The 32-element weight formats as a compile-time kind for the tiles that
 * take all five through one body (neon.c, avx512.c's packed GEMM), and the
 * bytes of one block of each. */
enum { B32_Q8_0, B32_Q4_0, B32_Q5_0, B32_Q4_1, B32_Q5_1 };
KINLINE size_t b32_size(const int kind) {
    switch (kind) {
    case B32_Q8_0: return sizeof(block_q8_0);
    case B32_Q4_0: return sizeof(block_q4_0);
    case B32_Q5_0: return sizeof(block_q5_0);
    case B32_Q4_1: return sizeof(block_q4_1);
    default:       return sizeof(block_q5_1);
    }
}

/* Installing kernels in a level's table (kern_*_fill): a type's plain
 * order, and the repacked single-token (_rs) and batched (_rb) orders of a
 * type that has them (kernels.h, "Repacked orders"). */
#define KERN_SET(k, T, dot, gemm_fn) ((k)->vec_dot[T] = (dot), (k)->gemm[T] = (gemm_fn))
#define KERN_SET_ORDERS(k, T, dot_rs, gemm_rs_fn, dot_rb, gemm_rb_fn)                    \
    ((k)->vec_dot_rs[T] = (dot_rs), (k)->gemm_rs[T] = (gemm_rs_fn),                     \
     (k)->vec_dot_rb[T] = (dot_rb), (k)->gemm_rb[T] = (gemm_rb_fn))

#endif
