/*
 * mca_ours.c — measurement wrappers over nightjar's NEON tiles, for
 * bench/arm-mca only (never part of the product build).
 *
 * neon.c's tiles are static and inlined into the level's vec_dot/gemm
 * entry points, where several tile shapes share one function.  This file
 * includes neon.c and gives each tile shape that a real product runs its
 * own non-inlined function, so that the block loop of exactly one shape
 * can be cut out of the object code and fed to llvm-mca.  The shapes are
 * the ones matmul.c reaches on a model: decode (one token) through the
 * single-token tiles, prefill through the packed 16-token GEMM (gemm16)
 * where the type has one.
 */
#include "../../src/kernels/neon.c"

#define MCA __attribute__((noinline, used))

/* decode, 32-element formats: gemm with nt = 1 takes rows in pairs */
MCA void mca_ours_dec_q4_0(int n, const void *w, size_t ws, const void *x, float *y) {
    tile_b32(n, w, ws, 2, x, 0, 1, y, 0, B32_Q4_0);
}
MCA void mca_ours_dec_q5_0(int n, const void *w, size_t ws, const void *x, float *y) {
    tile_b32(n, w, ws, 2, x, 0, 1, y, 0, B32_Q5_0);
}
MCA void mca_ours_dec_q8_0(int n, const void *w, size_t ws, const void *x, float *y) {
    tile_b32(n, w, ws, 2, x, 0, 1, y, 0, B32_Q8_0);
}
/* decode, K-quants: one row, one token (Q4_K: the repacked tensors'
 * single-token order, which every Q4_K matrix with rows % 8 == 0 takes) */
MCA void mca_ours_dec_q4_K(int n, const void *w, const void *x, float *y) {
    tile_q4_K_rs(n, w, x, 0, y, 0, 1);
}
MCA void mca_ours_dec_q6_K(int n, const void *w, const void *x, float *y) {
    tile_q6_K(n, w, x, 0, y, 0, 1);
}
/* prefill: the packed GEMM, NR16 rows x 16 tokens per pass */
MCA void mca_ours_pre_q4_K(int n, const void *w, size_t ws, const void *xp, float *y, size_t ldy) {
    rows16_q4_K(n / QK_K, w, ws, NR16, xp, y, ldy);
}
MCA void mca_ours_pre_q6_K(int n, const void *w, size_t ws, const void *xp, float *y, size_t ldy) {
    rows16_l8(n / QK_K, w, ws, NR16, xp, y, ldy, L8_Q6_K);
}
MCA void mca_ours_pre_q5_0(int n, const void *w, size_t ws, const void *xp, float *y, size_t ldy) {
    rows16_b32(n / 32, w, ws, NR16, xp, y, ldy, B32_Q5_0);
}
MCA void mca_ours_pre_q8_0(int n, const void *w, size_t ws, const void *xp, float *y, size_t ldy) {
    rows16_b32(n / 32, w, ws, NR16, xp, y, ldy, B32_Q8_0);
}
