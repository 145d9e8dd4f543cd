/*
 * mmdump — one matrix product computed by the peer's CPU backend, written
 * to files so nightjar's matmul can be compared with it bit for bit
 * (conformance only; links the peer's libggml, never part of nightjar).
 *
 *   mmdump TYPE ROWS COLS NTOK SEED DIR
 *
 * Writes DIR/w.bin  ROWS rows of TYPE, the bytes as a GGUF file holds them
 *                   (random uniform weights quantized by ggml),
 *       DIR/x.bin   NTOK x COLS f32 activations (random, with outliers as
 *                   real hidden states have),
 *       DIR/y.bin   NTOK x ROWS f32, Y = X @ W^T from ggml_mul_mat on one
 *                   thread.
 * W sits where llama.cpp puts model weights: in the CPU "extra" (repack)
 * buffer when ggml has a repacked layout for the type and shape (Q4_0,
 * Q4_K, ... take the repacked GEMV/GEMM), otherwise in a plain CPU buffer
 * (vec_dot, or llamafile's tinyBLAS for NTOK >= 2).  One mul_mat of NTOK
 * rows is what llama.cpp runs for one micro-batch of NTOK tokens.
 * Prints "mmdump TYPE ROWSxCOLS ntok=N repack=0|1".
 */
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "peer_weights.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static uint64_t rs;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static float unif(void) { return (float)((int)(rnd() % 20001) - 10000) / 10000.0f; }

static int save(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "mmdump: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: mmdump TYPE ROWS COLS NTOK SEED DIR\n");
        return 2;
    }
    enum ggml_type type = GGML_TYPE_COUNT;
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *nm = ggml_type_name((enum ggml_type)t);
        if (nm && strcasecmp(nm, argv[1]) == 0) type = (enum ggml_type)t;
    }
    if (type == GGML_TYPE_COUNT) { fprintf(stderr, "mmdump: unknown type %s\n", argv[1]); return 2; }
    const int64_t rows = atoll(argv[2]), cols = atoll(argv[3]), ntok = atoll(argv[4]);
    rs = 0x9E3779B97F4A7C15ull ^ (uint64_t)atoll(argv[5]);
    const char *dir = argv[6];
    if (rows <= 0 || cols <= 0 || ntok <= 0 || cols % ggml_blck_size(type)) {
        fprintf(stderr, "mmdump: bad shape\n");
        return 2;
    }

    ggml_backend_t be = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(be, 1);

    struct ggml_init_params wp = {.mem_size = ggml_tensor_overhead() * 4, .no_alloc = true};
    struct ggml_context *wctx = ggml_init(wp);
    struct ggml_tensor *W = ggml_new_tensor_2d(wctx, type, cols, rows);
    struct ggml_init_params xp = {.mem_size = ggml_tensor_overhead() * 8 + ggml_graph_overhead(), .no_alloc = true};
    struct ggml_context *ctx = ggml_init(xp);
    struct ggml_tensor *X = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, cols, ntok);
    struct ggml_tensor *Y = ggml_mul_mat(ctx, W, X);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, Y);

    /* W where llama.cpp puts weights (repack buffer if ggml has a layout) */
    int repack = 0;
    ggml_backend_buffer_t wbuf = peer_alloc_weights(wctx, W, &repack);
    ggml_backend_buffer_t xbuf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_cpu_buffer_type());
    if (!wbuf || !xbuf) { fprintf(stderr, "mmdump: allocation failed\n"); return 1; }

    float *f = malloc(sizeof(float) * (size_t)(rows * cols));
    float *x = malloc(sizeof(float) * (size_t)(ntok * cols));
    float *y = malloc(sizeof(float) * (size_t)(ntok * rows));
    size_t wbytes = ggml_nbytes(W);
    void *q = malloc(wbytes);
    if (!f || !x || !y || !q) { fprintf(stderr, "mmdump: out of memory\n"); return 1; }
    for (int64_t i = 0; i < rows * cols; i++) f[i] = unif();
    for (int64_t i = 0; i < ntok * cols; i++) {
        x[i] = unif();
        if (rnd() % 97 == 0) x[i] *= 20.0f;
    }
    ggml_quantize_init(type);
    if (type == GGML_TYPE_F32) memcpy(q, f, wbytes);
    else if (type == GGML_TYPE_F16) ggml_fp32_to_fp16_row(f, q, rows * cols);
    else if (type == GGML_TYPE_BF16) ggml_fp32_to_bf16_row(f, q, rows * cols);
    else ggml_quantize_chunk(type, f, q, 0, rows, cols, NULL);
    ggml_backend_tensor_set(W, q, 0, wbytes);
    ggml_backend_tensor_set(X, x, 0, ggml_nbytes(X));
    if (ggml_backend_graph_compute(be, gf) != GGML_STATUS_SUCCESS) {
        fprintf(stderr, "mmdump: compute failed\n");
        return 1;
    }
    ggml_backend_tensor_get(Y, y, 0, ggml_nbytes(Y));

    int rc = save(dir, "w.bin", q, wbytes) || save(dir, "x.bin", x, sizeof(float) * (size_t)(ntok * cols)) ||
             save(dir, "y.bin", y, sizeof(float) * (size_t)(ntok * rows));
    if (!rc)
        printf("mmdump %s %lldx%lld ntok=%lld repack=%d\n", ggml_type_name(type), (long long)rows,
               (long long)cols, (long long)ntok, repack);
    ggml_backend_buffer_free(wbuf);
    ggml_backend_buffer_free(xbuf);
    ggml_free(wctx);
    ggml_free(ctx);
    ggml_backend_free(be);
    free(f);
    free(x);
    free(y);
    free(q);
    return rc ? 1 : 0;
}
