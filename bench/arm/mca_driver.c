/*
 * mca_driver — runs one weight-matrix product once, for bench/arm-mca:
 * the script runs it under qemu-aarch64 with the insncount plugin tracing
 * the instructions executed between mca_begin() and mca_end(), and feeds
 * that stream to llvm-mca.  Measurement only, never part of the product.
 *
 *   mca_driver ours|ggml dec|pre TYPE NB
 *
 * TYPE is q4_0, q4_K, q5_0, q6_K or q8_0; NB the weight blocks per row (32
 * elements, 256 for the K-quants).  8 weight rows are multiplied with 1
 * token (dec: decode's GEMV) or 16 tokens (pre: a prefill GEMM group).
 *
 * ours: the NEON level's table (kernels_at), entered as src/engine/matmul.c
 * enters it for an 8-row tensor: a type with repacked orders takes them
 * (rows % 8 == 0), prefill takes gemm16 on packed activations where the
 * type has it, else the gemm tile, else a loop over the dot.
 * ggml: the function llama.cpp's CPU backend runs for such a tensor on a
 * CPU with dotprod and without i8mm (its repack.cpp picks the repacked
 * 4x4/8x4 layouts for Q4_0, Q4_K, Q6_K, Q8_0; Q5_0 is not repacked, so
 * its vec_dot runs per row and token), compiled from its ARM sources by
 * the same compiler with the same flags as ours.
 *
 * Buffers are zeroed: the hot loops have no data-dependent branches (the
 * fp16 conversions are instructions), and zeros keep every float finite.
 */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void gg_mv(int n, float *s, size_t bs, const void *vx, const void *vy, int nr, int nc);
typedef void gg_dot(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
gg_mv ggml_gemv_q4_0_4x4_q8_0, ggml_gemm_q4_0_4x4_q8_0, ggml_gemv_q4_K_8x4_q8_K, ggml_gemm_q4_K_8x4_q8_K,
      ggml_gemv_q6_K_8x4_q8_K, ggml_gemm_q6_K_8x4_q8_K, ggml_gemv_q8_0_4x4_q8_0, ggml_gemm_q8_0_4x4_q8_0;
gg_dot ggml_vec_dot_q5_0_q8_0;

/* The traced window: the plugin starts at mca_begin's first instruction
 * and stops at mca_end's. */
__attribute__((noinline)) void mca_begin(void) { __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) void mca_end(void) { __asm__ volatile("" ::: "memory"); }

enum { ROWS = 8, TOK = 16, BUF = 8 << 20 };

static int type_of(const char *s) {
    if (!strcmp(s, "q4_0")) return NJ_Q4_0;
    if (!strcmp(s, "q4_K")) return NJ_Q4_K;
    if (!strcmp(s, "q5_0")) return NJ_Q5_0;
    if (!strcmp(s, "q6_K")) return NJ_Q6_K;
    if (!strcmp(s, "q8_0")) return NJ_Q8_0;
    return -1;
}

/* matmul.c's path for one 8-row tile (see the file comment). */
static int run_ours(int T, int pre, int n, const void *w, size_t ws, void *x, float *y) {
    const nj_kernels *k = kernels_at(NJ_KL_NEON);
    if (!k) { fprintf(stderr, "mca_driver: no NEON level on this CPU\n"); return 1; }
    const int vdt = quant_traits_ref(T)->vec_dot_type;
    const size_t xs = quant_row_size(vdt, n);
    const int rp = k->vec_dot_rs[T] && k->vec_dot_rb[T] && kern_two_orders(T, ROWS, n);
    const nj_gemm_fn g = pre ? (rp ? k->gemm_rb[T] : k->gemm[T]) : (rp ? k->gemm_rs[T] : k->gemm[T]);
    const nj_vec_dot_fn d = pre ? (rp ? k->vec_dot_rb[T] : k->vec_dot[T]) : (rp ? k->vec_dot_rs[T] : k->vec_dot[T]);
    const int nt = pre ? TOK : 1;
    if (pre && k->gemm16[T] && k->pack16[vdt]) {
        k->pack16[vdt](n, x, xs, TOK, x + (size_t)TOK * xs);   /* packing is not timed */
        mca_begin();
        k->gemm16[T](n, w, ws, ROWS, (const char *)x + (size_t)TOK * xs, 0, 1, y, ROWS);
        mca_end();
        return 0;
    }
    mca_begin();
    if (g) g(n, w, ws, ROWS, x, xs, nt, y, ROWS);
    else
        for (int t = 0; t < nt; t++)
            for (int r = 0; r < ROWS; r++)
                d(n, y + (size_t)t * ROWS + r, (const char *)w + (size_t)r * ws, (const char *)x + (size_t)t * xs);
    mca_end();
    return 0;
}

static int run_ggml(int T, int pre, int n, const void *w, const void *x, float *y) {
    gg_mv *f = NULL;
    switch (T) {
    case NJ_Q4_0: f = pre ? ggml_gemm_q4_0_4x4_q8_0 : ggml_gemv_q4_0_4x4_q8_0; break;
    case NJ_Q4_K: f = pre ? ggml_gemm_q4_K_8x4_q8_K : ggml_gemv_q4_K_8x4_q8_K; break;
    case NJ_Q6_K: f = pre ? ggml_gemm_q6_K_8x4_q8_K : ggml_gemv_q6_K_8x4_q8_K; break;
    case NJ_Q8_0: f = pre ? ggml_gemm_q8_0_4x4_q8_0 : ggml_gemv_q8_0_4x4_q8_0; break;
    default: break;
    }
    mca_begin();
    if (f) f(n, y, ROWS, w, x, pre ? TOK : 1, ROWS);
    else {   /* Q5_0: not repacked, vec_dot per row and token */
        const size_t ws = quant_row_size(T, n), xs = quant_row_size(NJ_Q8_0, n);
        for (int t = 0; t < (pre ? TOK : 1); t++)
            for (int r = 0; r < ROWS; r++)
                ggml_vec_dot_q5_0_q8_0(n, y + t * ROWS + r, 0, (const char *)w + r * ws, 0,
                                       (const char *)x + t * xs, 0, 1);
    }
    mca_end();
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: mca_driver ours|ggml dec|pre TYPE NB\n"); return 2; }
    const int ours = !strcmp(argv[1], "ours"), pre = !strcmp(argv[2], "pre"), T = type_of(argv[3]);
    const int nb = atoi(argv[4]);
    if (T < 0 || nb <= 0 || nb > 64) { fprintf(stderr, "mca_driver: bad type or NB (1..64)\n"); return 2; }
    const int n = nb * (T == NJ_Q4_K || T == NJ_Q6_K ? 256 : 32);
    void *w = calloc(1, BUF), *x = calloc(1, BUF);
    float *y = calloc(1, BUF);
    if (!w || !x || !y) return 1;
    const size_t ws = quant_row_size(T, n);
    const int rc = ours ? run_ours(T, pre, n, w, ws, x, y) : run_ggml(T, pre, n, w, x, y);
    printf("%g\n", y[0]);
    return rc;
}
