/*
 * mca_ggml_stubs.c — the few symbols ggml's ARM kernel files refer to but
 * that bench/arm-mca does not build (the generic fallbacks of kernels it
 * never calls, a reference quantizer, a table).  Calling one is a bug in
 * the driver, so each aborts.  Measurement only, never part of the product.
 */
#include <stdio.h>
#include <stdlib.h>

static void never(const char *name) {
    fprintf(stderr, "mca: %s is not built for this measurement\n", name);
    abort();
}
#define STUB(name) void name(void); void name(void) { never(#name); }
STUB(ggml_gemm_q1_0_4x8_q8_0_generic)
STUB(ggml_gemm_q4_0_4x8_q8_0_generic)
STUB(ggml_gemm_q4_0_8x8_q8_0_generic)
STUB(ggml_gemm_q4_K_8x8_q8_K_generic)
STUB(ggml_gemm_q5_K_8x8_q8_K_generic)
STUB(ggml_gemm_q6_K_8x8_q8_K_generic)
STUB(ggml_gemm_q8_0_4x8_q8_0_generic)
STUB(ggml_gemv_q4_0_8x8_q8_0_generic)
STUB(quantize_row_q8_K_ref)
float ggml_table_f32_ue4m3[256];
