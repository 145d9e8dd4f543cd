/*
 * attn_ops — see attn_ops.h.  Two instantiations of attn_ops_body.h: the
 * portable one (fma emulated in double) and, on x86-64 with GCC or Clang,
 * one compiled for AVX2+FMA+F16C and one for AVX-512 (512-bit vectors) via
 * the target attribute, chosen at run time from platform_cpu_features()
 * (AVX-512, else AVX2, which implies FMA and F16C, else portable).
 */
#include "attn_ops.h"

#include <math.h>
#include <pthread.h>

#include "platform.h"
#include "quant.h"

float attn_f16_tab[1 << 16];

#define FMA(a, b, c) fma_d(a, b, c)
#define SFX(name) name##_portable
#define TGT
#include "attn_ops_body.h"
#undef FMA
#undef SFX
#undef TGT

static const attn_ops ops_portable = {
    .name = "portable", .kq_tile = kq_tile_portable, .pv_tile = pv_tile_portable,
    .softmax16 = softmax16_portable, .v_mad_f16 = v_mad_f16_portable, .swiglu = swiglu_portable,
    .widen_f16 = widen_f16_portable, .geglu = geglu_portable, .dot_f16 = dot_f16_portable,
    .vec_range = vec_range_portable, .vec_range_q = vec_range_q_portable,
};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_FMA_VARIANT 1
#define ATTN_F16C 1
#define FMA(a, b, c) fmaf(a, b, c)
#define SFX(name) name##_fma
#define TGT __attribute__((target("avx2,fma,f16c")))
#include "attn_ops_body.h"
#undef ATTN_F16C
#undef FMA
#undef SFX
#undef TGT

static const attn_ops ops_fma = {
    .name = "avx2+fma", .kq_tile = kq_tile_fma, .pv_tile = pv_tile_fma,
    .softmax16 = softmax16_fma, .v_mad_f16 = v_mad_f16_fma, .swiglu = swiglu_fma,
    .widen_f16 = widen_f16_fma, .geglu = geglu_fma, .dot_f16 = dot_f16_fma,
    .vec_range = vec_range_fma, .vec_range_q = vec_range_q_fma,
};

/* The same loops at 512 bits (the compiler otherwise keeps to 256-bit
 * vectors); lane-parallel only, so the bits are the same. */
#define ATTN_F16C 1
#define ATTN_AVX512 1
#define FMA(a, b, c) fmaf(a, b, c)
#define SFX(name) name##_avx512
#ifdef __clang__   /* has no prefer-vector-width target option */
#define TGT __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#else
#define TGT __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c,prefer-vector-width=512")))
#endif
#include "attn_ops_body.h"
#undef ATTN_F16C
#undef ATTN_AVX512
#undef FMA
#undef SFX
#undef TGT

static const attn_ops ops_avx512 = {
    .name = "avx512", .kq_tile = kq_tile_avx512, .pv_tile = pv_tile_avx512,
    .softmax16 = softmax16_avx512, .v_mad_f16 = v_mad_f16_avx512, .swiglu = swiglu_avx512,
    .widen_f16 = widen_f16_avx512, .geglu = geglu_avx512, .dot_f16 = dot_f16_avx512,
    .vec_range = vec_range_avx512, .vec_range_q = vec_range_q_avx512,
};
#endif

static const attn_ops *chosen = &ops_portable;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) attn_f16_tab[i] = nj_fp16_to_fp32((uint16_t)i);
#ifdef HAVE_FMA_VARIANT
    const unsigned f = platform_cpu_features();
    if (f & NJ_CPU_AVX512) chosen = &ops_avx512;
    else if (f & NJ_CPU_AVX2) chosen = &ops_fma;
#endif
}

const attn_ops *attn_ops_get(void) {
    pthread_once(&once, init);
    return chosen;
}

const attn_ops *attn_ops_portable(void) {
    pthread_once(&once, init);
    return &ops_portable;
}
