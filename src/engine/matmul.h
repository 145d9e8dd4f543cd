/*
 * matmul — the engine's only entry to weight x activation products.
 *
 *   Y (n_tok, rows) = X (n_tok, cols) @ W^T,   W (rows, cols) of any nj_type
 *
 * X is f32, row-major with n_tok rows of `cols` floats; Y is f32 row-major
 * with n_tok rows of `rows` floats.  The implementation quantizes X once to
 * W's vec_dot_type into caller-provided scratch, then splits W's rows across
 * the pool's threads; for n_tok > 1 it works in blocks so each weight block
 * is loaded once per chunk of tokens (prefill is a GEMM, not n GEMVs).
 *
 * nj_mat is a borrowed view of a weight tensor (data in the model's mmap).
 * `packed` is reserved for a load-time repacked layout (NULL = use data).
 * The scratch must hold matmul_scratch_size(type, cols, n_tok) bytes and be
 * 64-byte aligned; the engine allocates it once for its largest call.
 */
#ifndef NJ_MATMUL_H
#define NJ_MATMUL_H

#include <stddef.h>
#include <stdint.h>
#include "pool.h"

typedef struct nj_mat {
    int         type;       /* enum nj_type */
    int64_t     rows, cols;
    size_t      row_bytes;  /* quant_row_size(type, cols) */
    const void *data;
    const void *packed;     /* optional repacked copy, NULL if none */
} nj_mat;

size_t matmul_scratch_size(int type, int64_t cols, int n_tok);

/* Y = X @ W^T with the last n_single tokens (0 <= n_single <= n_tok) in
 * the single-token float order and the others in the batched order.  This
 * only matters for a W that llama.cpp multiplies in two orders (kernels.h,
 * "Repacked orders": Q4_0/Q2_K/Q4_K with rows % 8 == 0, and BF16 with
 * rows % 4 == 0 and cols % 32 == 0); any other W has one order.  To
 * reproduce llama.cpp, give each token the order llama.cpp gives it: in a
 * product of u tokens, the last matmul_single_count(W->type, u).
 * Returns 0, -EINVAL on bad arguments, NJ_EUNSUPPORTED if W's type has no
 * kernel. */
int matmul_ex(nj_pool *pool, const nj_mat *W, const float *X, int n_tok, float *Y,
              void *scratch, int n_single);
/* Y[i] = X @ W[i]^T for i < count (<= 4), as count matmul_ex calls with
 * n_single[i] would compute them, bit for bit, but in one pool run: X is
 * quantized once and the threads flow from one product to the next
 * without waiting for each other in between (decode runs hundreds of small
 * products per token, e.g. Q, K, V and gate, up).  The W[i] must have the
 * same cols; if their activation formats or n_single differ it falls back
 * to separate calls.  The scratch must hold the largest
 * matmul_scratch_size of the W[i].  Returns as matmul_ex. */
int matmul_multi(nj_pool *pool, const nj_mat *const *W, float *const *Y, int count,
                 const float *X, int n_tok, void *scratch, const int *n_single);
/* How many of the last tokens of a u-token product llama.cpp computes in
 * the single-token order, for a weight of `type` with two orders: u % 4
 * for the repacked types (its GEMM takes 4 tokens at a time), for BF16 u
 * when u == 1 and 0 otherwise (tinyBLAS takes every product of >= 2
 * tokens).  0 when u <= 0. */
int matmul_single_count(int type, int u);
/* matmul_ex(..., matmul_single_count(W->type, n_tok)): the product as
 * llama.cpp computes it for one micro-batch of n_tok tokens (so one token
 * takes the single-token order). */
int matmul(nj_pool *pool, const nj_mat *W, const float *X, int n_tok, float *Y,
           void *scratch);

#endif
