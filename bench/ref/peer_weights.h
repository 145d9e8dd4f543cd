/*
 * peer_weights.h — place a weight tensor where llama.cpp's loader puts
 * model weights (shared by ggml_mm.c and mmdump.c; bench/conformance only,
 * links the peer's libggml).
 *
 * The CPU backend's "extra" buffer types include ggml's repack buffer;
 * allocating a tensor there attaches the repacking traits (W->extra) when
 * ggml has a repacked layout for its type and shape, and llama.cpp then
 * uses the repacked GEMV/GEMM.  Otherwise the weights go into a plain CPU
 * buffer, as llama.cpp does.  Returns the buffer (NULL on failure) and sets
 * *repack to 1 when the repack buffer took the tensor.
 */
#ifndef NJ_PEER_WEIGHTS_H
#define NJ_PEER_WEIGHTS_H

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <string.h>

static ggml_backend_buffer_t peer_alloc_weights(struct ggml_context *wctx, struct ggml_tensor *W, int *repack) {
    ggml_backend_reg_t reg = ggml_backend_cpu_reg();
    ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);
    ggml_backend_dev_get_extra_bufts_t get_extra =
        (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_t wbuf = NULL;
    *repack = 0;
    if (get_extra) {
        for (ggml_backend_buffer_type_t *b = get_extra(dev); b && *b; b++) {
            if (!strstr(ggml_backend_buft_name(*b), "REPACK")) continue;
            wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, *b);
            if (wbuf && W->extra) { *repack = 1; break; }
            if (wbuf) ggml_backend_buffer_free(wbuf);
            wbuf = NULL;
            W->buffer = NULL;
            W->data = NULL;
        }
    }
    if (!wbuf) wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, ggml_backend_cpu_buffer_type());
    if (wbuf) ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    return wbuf;
}

#endif
