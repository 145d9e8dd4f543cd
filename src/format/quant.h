/*
 * quant — tensor element types: block layouts, scalar reference
 * quantize / dequantize / dot product, and the type-trait table.
 *
 * Type ids are ggml's, because they are what GGUF files store.  Each
 * quantized type is a packed block struct (static_assert'ed to its on-disk
 * size, with a bit-layout comment) and a scalar reference implementation
 * that is the ground truth every SIMD kernel in src/kernels/ is tested
 * against.
 *
 * Dot products follow the formats' intent (and llama.cpp's numerics): the
 * activation row is first quantized to the weight type's `vec_dot_type`
 * (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F16
 * for F16, BF16 for BF16, F32 for F32), then vec_dot(n, &s, w_row, act_row)
 * computes the float result.
 *
 * quant_traits_ref() returns the scalar reference entry; the best kernels
 * for this CPU come from the layer above (kernels.h: kernels_traits()).
 */
#ifndef NJ_QUANT_H
#define NJ_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

enum nj_type {
    NJ_F32 = 0, NJ_F16 = 1, NJ_Q4_0 = 2, NJ_Q4_1 = 3,
    NJ_Q5_0 = 6, NJ_Q5_1 = 7, NJ_Q8_0 = 8, NJ_Q8_1 = 9,
    NJ_Q2_K = 10, NJ_Q3_K = 11, NJ_Q4_K = 12, NJ_Q5_K = 13, NJ_Q6_K = 14,
    NJ_Q8_K = 15, NJ_BF16 = 30,
    NJ_TYPE_COUNT = 40
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256


/* ---- block layouts (on-disk, little-endian; ggml's formats) ----
 * d, m, dmin: fp16 scale/min.  "nibble" = 4 bits, low nibble first.
 *
 * Q4_0  | d:f16 | qs[16]: 32 x u4 |         x = d * (q - 8)
 *        element j<16 is low nibble of qs[j], j>=16 high nibble of qs[j-16]
 * Q4_1  | d:f16 | m:f16 | qs[16] |          x = d * q + m
 * Q5_0  | d:f16 | qh[4]: bit 4 of each q | qs[16] |  x = d * (q - 16)
 * Q5_1  | d:f16 | m:f16 | qh[4] | qs[16] |  x = d * q + m
 * Q8_0  | d:f16 | qs[32]: i8 |              x = d * q
 * Q8_1  | d:f16 | s:f16 = d * sum(qs) | qs[32]: i8 |   (activations only)
 * K-quants: 256-element super-blocks of 16 or 8 sub-blocks.
 * Q2_K  | scales[16]: lo4 scale, hi4 min | qs[64]: 2-bit | d | dmin |
 * Q3_K  | hmask[32]: high bit | qs[64]: low 2 bits | scales[12]: 16 x 6-bit | d |
 * Q4_K  | d | dmin | scales[12]: 8 x (6-bit scale, 6-bit min) | qs[128]: u4 |
 * Q5_K  | d | dmin | scales[12] | qh[32]: 5th bit | qs[128] |
 * Q6_K  | ql[128]: low 4 bits | qh[64]: high 2 bits | scales[16]: i8 | d |
 * Q8_K  | d:f32 | qs[256]: i8 | bsums[16]: i16 sums of 16-groups |  (activations only)
 */
typedef uint16_t nj_half;

typedef struct { nj_half d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { nj_half d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { nj_half d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { nj_half d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { nj_half d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { nj_half d, s; int8_t qs[QK8_1]; } block_q8_1;
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; nj_half d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; nj_half d; } block_q3_K;
typedef struct { nj_half d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { nj_half d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; nj_half d; } block_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 size");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 size");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1 size");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K size");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K size");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K size");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K size");

/* ---- K-quant scale fields ----
 * One unpacker per 12-byte field, used by the reference code here and by
 * every kernel level (kernels may include this header; SIMD code that
 * unpacks several blocks' fields in vector registers has its own).  Each
 * works four scales at a time in 32-bit words; every step stays inside its
 * byte lane (shift, then mask to bits the shift brought down from the same
 * byte), so the result does not depend on the machine's byte order.
 *
 * Q4_K/Q5_K: 8 sub-blocks x (6-bit scale sc, 6-bit min mn).
 *   byte j    (j=0..3):  | sc[j+4] bits 4-5 | sc[j] (6 bits)                 |
 *   byte j+4  (j=0..3):  | mn[j+4] bits 4-5 | mn[j] (6 bits)                 |
 *   byte j+8  (j=0..3):  | mn[j+4] bits 0-3 (hi nibble) | sc[j+4] bits 0-3 |
 * w[0] = sc[0..3], w[1] = sc[4..7], w[2] = mn[0..3], w[3] = mn[4..7], as
 * bytes in memory order. */
static inline void quant_k4_scale_words(const uint8_t *restrict q, uint32_t w[4]) {
    uint32_t u[3];
    memcpy(u, q, 12);
    w[0] = u[0] & 0x3f3f3f3fu;
    w[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    w[2] = u[1] & 0x3f3f3f3fu;
    w[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
}
static inline void quant_k4_scales(const uint8_t *restrict q, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t w[4];
    quant_k4_scale_words(q, w);
    memcpy(sc, w, 8);
    memcpy(mn, w + 2, 8);
}

/* Q3_K: 16 six-bit signed scales, stored + 32.
 *   bytes 0..7 : low nibble = low 4 bits of scale j, high nibble = of scale j+8
 *   bytes 8..11: byte 8+(j%4), bits 2*(j/4)..+1 = top 2 bits of scale j
 * w[k] = stored scales 4k..4k+3 (0..63, not yet minus 32), bytes in memory
 * order. */
static inline void quant_k3_scale_words(const uint8_t *restrict q, uint32_t w[4]) {
    uint32_t a[3];
    memcpy(a, q, 12);
    const uint32_t m1 = 0x03030303u, m2 = 0x0f0f0f0fu, tmp = a[2];
    w[0] = (a[0] & m2) | (((tmp >> 0) & m1) << 4);
    w[1] = (a[1] & m2) | (((tmp >> 2) & m1) << 4);
    w[2] = ((a[0] >> 4) & m2) | (((tmp >> 4) & m1) << 4);
    w[3] = ((a[1] >> 4) & m2) | (((tmp >> 6) & m1) << 4);
}
static inline void quant_k3_scales(const uint8_t *restrict q, int8_t sc[16]) {
    uint32_t w[4];
    uint8_t u[16];
    quant_k3_scale_words(q, w);
    memcpy(u, w, 16);
    for (int k = 0; k < 16; k++) sc[k] = (int8_t)(u[k] - 32);
}

typedef void (*nj_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
typedef void (*nj_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);
/* s = dot(x, y) over n elements; x is the weight row (this type), y the
 * activation row in vec_dot_type. n is a multiple of the block size. */
typedef void (*nj_vec_dot_fn)(int n, float *restrict s, const void *restrict x,
                              const void *restrict y);

typedef struct nj_type_traits {
    const char      *name;
    int              blck;          /* elements per block */
    size_t           size;          /* bytes per block */
    bool             quantized;
    int              vec_dot_type;  /* activation type for vec_dot */
    nj_to_float_fn   to_float;      /* dequantize n elements */
    nj_from_float_fn from_float;    /* quantize n elements (n % blck == 0); for
                                       Q8_0/Q8_1/Q8_K/F16/BF16 bit-exact with
                                       llama.cpp's x86 activation path */
    nj_vec_dot_fn    vec_dot;
} nj_type_traits;

/* NULL for an id that is not a supported type. */
const nj_type_traits *quant_traits_ref(int type);
/* The quantizer llama-quantize uses when it writes a model file of `type`
 * (ggml's reference quantizers, no importance matrix); NULL if unknown.
 * Equal to quant_traits_ref(type)->from_float except for Q8_0 and Q8_1,
 * whose from_float reproduces llama.cpp's x86 *activation* quantizer instead
 * (round half to even, id = 127/amax; see quant.c). */
nj_from_float_fn quant_file_quantizer(int type);
const char *quant_type_name(int type);   /* "?" if unknown */
/* Bytes for a row of n elements; 0 if n is not a multiple of the block. */
size_t quant_row_size(int type, int64_t n);

/* fp16 / bf16 scalar conversions (IEEE round-to-nearest-even). */
float    nj_fp16_to_fp32(uint16_t h);
uint16_t nj_fp32_to_fp16(float f);
float    nj_bf16_to_fp32(uint16_t h);
uint16_t nj_fp32_to_bf16(float f);

#endif
