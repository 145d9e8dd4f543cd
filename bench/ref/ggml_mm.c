/*
 * ggml_mm — the peer's matrix multiplication, timed the way kbench -s times
 * nightjar's (benchmark only; links the peer's libggml, never part of
 * nightjar).
 *
 *   ggml_mm TYPE ROWS COLS NTOK [REPS]
 *
 * Y (NTOK, ROWS) = X (NTOK, COLS) @ W^T with W random (quantized by ggml
 * from uniform floats) through the CPU backend with one thread, W placed
 * the way llama.cpp places model weights: in the CPU "extra" (repack)
 * buffer type when ggml offers one for this type and shape, so Q4_0/Q4_K
 * etc. take the repacked GEMM/GEMV kernels as in llama-bench, else in a
 * plain CPU buffer.  Each rep computes the whole product, activation
 * quantization included.  Prints one line:
 *   ggml TYPE ROWSxCOLS ntok=N repack=0|1 GMAC/s=X   (process CPU time, best rep)
 */
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "peer_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: ggml_mm TYPE ROWS COLS NTOK [REPS]\n");
        return 2;
    }
    enum ggml_type type = GGML_TYPE_COUNT;
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *nm = ggml_type_name((enum ggml_type)t);
        if (nm && strcasecmp(nm, argv[1]) == 0) type = (enum ggml_type)t;
    }
    if (type == GGML_TYPE_COUNT) { fprintf(stderr, "ggml_mm: unknown type %s\n", argv[1]); return 2; }
    const int64_t rows = atoll(argv[2]), cols = atoll(argv[3]), ntok = atoll(argv[4]);
    const int reps = argc > 5 ? atoi(argv[5]) : 5;

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
    if (!wbuf || !xbuf) { fprintf(stderr, "ggml_mm: allocation failed\n"); return 1; }

    /* random weights, quantized by ggml; random activations */
    float *f = malloc(sizeof(float) * (size_t)(rows * cols));
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < rows * cols; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        f[i] = (float)((int)(s % 2001) - 1000) / 1000.0f;
    }
    size_t wbytes = ggml_nbytes(W);
    void *q = malloc(wbytes);
    ggml_quantize_init(type);
    if (type == GGML_TYPE_F32) memcpy(q, f, wbytes);
    else if (type == GGML_TYPE_F16) ggml_fp32_to_fp16_row(f, q, rows * cols);
    else if (type == GGML_TYPE_BF16) ggml_fp32_to_bf16_row(f, q, rows * cols);
    else ggml_quantize_chunk(type, f, q, 0, rows, cols, NULL);
    ggml_backend_tensor_set(W, q, 0, wbytes);
    ggml_backend_tensor_set(X, f, 0, ggml_nbytes(X) <= sizeof(float) * (size_t)(rows * cols) ? ggml_nbytes(X) : 0);

    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = cpu_now();
        ggml_backend_graph_compute(be, gf);
        double dt = cpu_now() - t0;
        if (r > 0 && dt < best) best = dt;   /* first run warms up */
    }
    printf("ggml %s %lldx%lld ntok=%lld repack=%d GMAC/s=%.1f\n", ggml_type_name(type), (long long)rows,
           (long long)cols, (long long)ntok, repack, (double)rows * cols * ntok / best / 1e9);
    ggml_backend_buffer_free(wbuf);
    ggml_backend_buffer_free(xbuf);
    ggml_free(wctx);
    ggml_free(ctx);
    ggml_backend_free(be);
    free(f);
    free(q);
    return 0;
}
