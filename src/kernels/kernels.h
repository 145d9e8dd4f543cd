/*
 * kernels — per-ISA dot products, activation quantizers and GEMM tiles,
 * chosen once from the CPU's features.
 *
 * Design.  A kernel *level* is one instruction-set tier: scalar (portable
 * C), avx2 (AVX2+FMA+F16C), avx512 (F/BW/VL/DQ + VNNI; vdpbf16ps for BF16
 * weights when the CPU has AVX512_BF16, else avx2's emulation), neon (ARMv8 NEON with the dot-product extension).  Each level
 * is a table `nj_kernels` indexed by nj_type.  A table is built by copying
 * the level below it and letting the ISA file overwrite the entries it has
 * a faster version of (avx512 starts from avx2, avx2 and neon from scalar),
 * so a type without a hand-written kernel still works at every level.
 *
 * The chosen table is the best level the CPU supports, lowered (never
 * raised) by NIGHTJAR_CPU=scalar|avx2|avx512|neon.  Selection happens once,
 * under pthread_once, on the first call to any kernels_* function; after
 * that every table is immutable, so any thread may use them.
 *
 * Numerics.  Every level computes each output element with the same float
 * operations in the same order (the canonical order defined in scalar.c:
 * exact integer block or lane sums, then fixed chains of fused
 * multiply-adds and a fixed reduction; for Q4_0..Q8_0 it is llama.cpp's
 * x86 order), so
 * all levels, tile widths, packed/unpacked paths, thread counts and batch
 * compositions give bit-identical results (for Q4_K, Q2_K and Q4_0: given
 * which of their orders a product takes, see "Repacked orders"); they
 * agree with quant.c's reference (ggml's generic C order) up to float
 * summation order, ~1e-6 relative.  For the K-quants too the canonical
 * orders are llama.cpp's x86 orders (Q2_K's repacked ones as on an
 * AVX-512 machine), so every quantized product matches it bit for bit.
 * Activation quantizers (from_float for Q8_0/Q8_1/Q8_K) are *byte-exact* across levels of one
 * architecture and reproduce what llama.cpp's CPU backend produces on that
 * architecture, because the quantized activations decide which tokens come
 * out:  on x86 Q8_0/Q8_1 use id = 127/amax and round-half-even (the
 * `vroundps` path), on ARM id = 1/(amax/127) and round-half-even
 * (`fcvtns`), elsewhere the reference's round-half-away.  Q8_K is the
 * reference algorithm everywhere (first element of largest |x| sets the
 * sign, round-half-even).  See scalar.c for the portable versions every
 * SIMD quantizer is tested against.
 *
 * Repacked orders.  llama.cpp repacks some weight types at load time on
 * x86 (Q4_K and Q4_0 with AVX2, Q2_K with AVX-512; into 8-row interleaved
 * blocks: every matrix it multiplies
 * whose row count is a multiple of KERN_REPACK_ROWS, a tied output matrix
 * included, since it loads a separate copy of token_embd for that) and
 * multiplies repacked tensors with other kernels, in other float orders,
 * which also depend on the batch: within
 * a micro-batch of u tokens the first u - u % 4 go four at a time through
 * its GEMM ("batched order") and the last u % 4 one at a time through its
 * GEMV ("single-token order"; all of them when u <= 3, so decoding is
 * single-token order).  So a type it repacks has three orders here:
 *   vec_dot, gemm          plain tensors (llama.cpp's vec_dot), any batch;
 *   vec_dot_rs, gemm_rs    repacked tensors, single-token order;
 *   vec_dot_rb, gemm_rb    repacked tensors, batched order;
 * (Q4_0's single-token and batched orders are one and the same function);
 * the _rs/_rb entries are NULL for types llama.cpp does not repack (their
 * vec_dot order holds for every tensor and batch), except BF16: llama.cpp
 * does not repack it but multiplies it by two kernels, ggml_vec_dot_bf16
 * for a product of one token and llamafile's tinyBLAS for products of
 * u >= 2 tokens (all u of them) when rows % 4 == 0 and cols % 32 == 0;
 * so BF16's vec_dot_rs is its vec_dot (single-token order) and its
 * vec_dot_rb the tinyBLAS order, and kern_two_orders/kern_single_count
 * below give each type's rule.  gemm16 computes the
 * batched order: vec_dot_rb's where the type has one (so it serves only
 * repacked tensors), else vec_dot's.  matmul decides which tensors count
 * as repacked (by type and row count) and matmul_ex() which tokens take
 * the single-token order.
 *
 * GEMM tiles.  gemm[type] computes a block of nr weight rows x nt
 * activation rows; SIMD levels load each weight block once per group of up
 * to 4 tokens (prefill); nt == 1 is the GEMV of decode, where tiles take
 * several rows at once (AVX-512's Q4_K gemm_rs: eight rows, one token at a
 * time, since that order sees at most three tokens of a micro-batch).
 *
 * Packed GEMM (prefill).  A level may also provide pack16[vec_dot_type] and
 * gemm16[type]: pack16 re-lays 16 quantized activation rows so that each
 * 64-byte vector holds 4 consecutive bytes of each of the 16 tokens, and
 * gemm16 multiplies weight rows against such a group with one token per
 * 32-bit lane (weights broadcast 4 bytes at a time, vpdpbusd).  The integer
 * block sums are the same exact integers and the float chain per token is
 * the canonical one, so gemm16 results are bit-identical to vec_dot (or
 * vec_dot_rb, above) too.
 *
 * Only files in src/kernels/ contain intrinsics; everything else calls
 * through these tables (or kernels_traits(), which returns kernels_traits()).
 */
#ifndef NJ_KERNELS_H
#define NJ_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "quant.h"

enum nj_kernel_level {
    NJ_KL_SCALAR = 0,
    NJ_KL_AVX2   = 1,
    NJ_KL_AVX512 = 2,
    NJ_KL_NEON   = 3,
    NJ_KL_COUNT
};

/* Tile product.  For r in [0,nr), t in [0,nt):
 *   y[t*ldy + r] = dot over n elements of (W row r, X row t)
 * W row r starts at (char *)w + r*w_stride (weight type), X row t at
 * (char *)x + t*x_stride (the weight type's vec_dot_type).  n is a multiple
 * of both types' block sizes. */
typedef void (*nj_gemm_fn)(int n, const void *restrict w, size_t w_stride, int nr,
                           const void *restrict x, size_t x_stride, int nt,
                           float *restrict y, size_t ldy);

/* Pack nt <= 16 rows of vec_dot_type activations (row t at x + t*x_stride)
 * into one 16-token group at dst (64-byte aligned, pack16_size bytes);
 * tokens nt..15 are zero. */
typedef void (*nj_pack16_fn)(int n, const void *restrict x, size_t x_stride, int nt,
                             void *restrict dst);
/* ng packed groups, group g at xp + g*group_bytes:
 *   y[(16g + t)*ldy + r] = dot(W row r, token t of group g), t < 16, r < nr. */
typedef void (*nj_gemm16_fn)(int n, const void *restrict w, size_t w_stride, int nr,
                             const void *restrict xp, size_t group_bytes, int ng,
                             float *restrict y, size_t ldy);

typedef struct nj_kernels {
    int              level;                    /* enum nj_kernel_level */
    const char      *name;                     /* "scalar", "avx2", ... */
    nj_vec_dot_fn    vec_dot[NJ_TYPE_COUNT];
    nj_from_float_fn from_float[NJ_TYPE_COUNT];
    nj_to_float_fn   to_float[NJ_TYPE_COUNT];
    nj_gemm_fn       gemm[NJ_TYPE_COUNT];      /* NULL: loop over vec_dot */
    /* Types llama.cpp repacks (see "Repacked orders"; NULL otherwise): its
     * GEMV (single-token) and GEMM (batched) orders; gemm_rs/gemm_rb NULL:
     * loop over the dot. */
    nj_vec_dot_fn    vec_dot_rs[NJ_TYPE_COUNT];
    nj_gemm_fn       gemm_rs[NJ_TYPE_COUNT];
    nj_vec_dot_fn    vec_dot_rb[NJ_TYPE_COUNT];
    nj_gemm_fn       gemm_rb[NJ_TYPE_COUNT];
    nj_pack16_fn     pack16[NJ_TYPE_COUNT];    /* by activation type */
    nj_gemm16_fn     gemm16[NJ_TYPE_COUNT];    /* by weight type; vec_dot_rb's order if any */
    /* quant_traits_ref() entries with the pointers above substituted. */
    nj_type_traits   traits[NJ_TYPE_COUNT];
} nj_kernels;

/* llama.cpp repacks a tensor of a type with repacked orders only when its
 * row count is a multiple of this (its 8-row interleaved blocks). */
#define KERN_REPACK_ROWS 8

/* BF16 has two orders too, without any repacking (see "BF16" below):
 * llamafile's tinyBLAS takes a product of u >= 2 tokens when the weight's
 * rows are a multiple of 4 and its columns of 32; everything else goes
 * through ggml_vec_dot_bf16. */
#define KERN_BF16_TB_ROWS 4
#define KERN_BF16_TB_COLS 32

/* Whether llama.cpp multiplies a (rows, cols) weight of `type` in two
 * orders (single-token and batched; the _rs/_rb entries), given that the
 * type has them. */
static inline int kern_two_orders(int type, int64_t rows, int64_t cols) {
    if (type == NJ_BF16) return rows % KERN_BF16_TB_ROWS == 0 && cols % KERN_BF16_TB_COLS == 0;
    return rows % KERN_REPACK_ROWS == 0;
}

/* How many of the last tokens of a product of u tokens (one llama.cpp
 * micro-batch, u >= 1) llama.cpp computes in the single-token order, for a
 * weight with two orders: repacked types u % 4 (its GEMM takes groups of
 * 4), BF16 all of them when u == 1 (tinyBLAS takes any u >= 2) else none. */
static inline int kern_single_count(int type, int u) {
    if (type == NJ_BF16) return u == 1;
    return u % 4;
}

/* The dispatched table (best supported level, NIGHTJAR_CPU applied). */
const nj_kernels *kernels_get(void);
/* A specific level's table, or NULL if this CPU/build cannot run it
 * (for tests and benchmarks). */
const nj_kernels *kernels_at(int level);
/* Dispatched traits for a type, NULL if unknown.  kernels_traits() returns
 * this. */
const nj_type_traits *kernels_traits(int type);
/* Level from a name ("scalar", "avx2", "avx512", "neon"), -1 if unknown. */
int         kernels_level_from_name(const char *name);
const char *kernels_level_name(int level);
/* One line for `nightjar info --cpu`: detected features and chosen level,
 * e.g. "x86-64: avx2 fma f16c avx512f ... | kernels: avx512".  Static. */
const char *kernels_describe(void);

/* Bytes of one packed 16-token group of n elements of activation type vdt
 * (a multiple of 64; 0 if the type has no packed layout). */
size_t kernels_pack16_size(int vdt, int64_t n);

/* ---- internal to src/kernels/ ---------------------------------------- */

/* Each ISA file overwrites the entries it implements. `features` are the
 * NJ_CPU_* bits (so a file can install e.g. BF16 kernels only when the CPU
 * has them). */
void kern_scalar_fill(nj_kernels *k);
void kern_avx2_fill(nj_kernels *k, uint32_t features);
void kern_avx512_fill(nj_kernels *k, uint32_t features);
void kern_neon_fill(nj_kernels *k, uint32_t features);

/* Scalar activation quantizers with this architecture's llama.cpp numerics
 * (see top).  `kern_*_x86` / `kern_*_arm` exist on every architecture so
 * the tests can pin both variants down. */
void kern_quantize_q8_0_x86(const float *restrict x, void *restrict y, int64_t n);
void kern_quantize_q8_1_x86(const float *restrict x, void *restrict y, int64_t n);
void kern_quantize_q8_0_arm(const float *restrict x, void *restrict y, int64_t n);
void kern_quantize_q8_1_arm(const float *restrict x, void *restrict y, int64_t n);
void kern_quantize_q8_K(const float *restrict x, void *restrict y, int64_t n);

/* Packed 16-token activation groups (see "Packed GEMM" above), one struct
 * per activation block; [k][t][4] holds bytes 4k..4k+3 of token t. */
typedef struct {
    float   d[16];            /* token t's d */
    int16_t bs32[4][16][2];   /* sums of 32-element sub-blocks 2m, 2m+1 */
    int16_t bs16[8][16][2];   /* the block's bsums 2m, 2m+1 */
    int8_t  qs[64][16][4];
} kern_pk_q8_K;
typedef struct {
    float   d[16];            /* fp16 d as f32 */
    float   s[16];            /* Q8_1: fp16 s as f32; Q8_0: 0 */
    int8_t  qs[8][16][4];     /* the *_x86 packers store q + 128 (as uint8) */
} kern_pk_q8_0;
_Static_assert(sizeof(kern_pk_q8_K) % 64 == 0, "packed q8_K keeps 64-byte alignment");
_Static_assert(sizeof(kern_pk_q8_0) % 64 == 0, "packed q8_0 keeps 64-byte alignment");
/* Q8_0/Q8_1 groups are padded to a multiple of 8 blocks (zero blocks). */
#define KERN_PK_B32_ROUND 8

void kern_pack16_q8_K(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst);
void kern_pack16_q8_0(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst);
void kern_pack16_q8_1(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst);
/* The same with every quant stored + 128 (unsigned bytes, for vpdpbusd's
 * unsigned operand); tokens nt..15 are zero blocks as stored (q = 0). */
void kern_pack16_q8_0_x86(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst);
void kern_pack16_q8_1_x86(int n, const void *restrict x, size_t x_stride, int nt, void *restrict dst);

/* BF16 (scalar.c): llama.cpp's two orders are built from vdpbf16ps steps
 * (one 32-element chunk into 16 lane accumulators, see scalar.c); a SIMD
 * level computes the lane accumulators and hands them to these finishers,
 * which apply the canonical reductions and tails, so every level shares
 * them bit for bit:
 *   single   (ggml_vec_dot_bf16): c1 over the even 32-element chunks of
 *            each 64, c2 over the odd ones, i = 64*(n/64) elements done;
 *   batched  (tinyBLAS): c over every 32-element chunk, i = 32*(n/32). */
float kern_bf16_finish_single(const float c1[16], const float c2[16], const uint16_t *w,
                              const uint16_t *x, int i, int n);
float kern_bf16_finish_batched(const float c[16], const uint16_t *w, const uint16_t *x, int i,
                               int n);
/* One vdpbf16ps chunk in portable C (scalar.c's reference step). */
void kern_bf16_dp32(float c[16], const uint16_t *w, const uint16_t *x);

/* Generic tile product: loops vec_dot (the fallback gemm for every type). */
void kern_gemm_generic(nj_vec_dot_fn dot, int n, const void *restrict w, size_t w_stride,
                       int nr, const void *restrict x, size_t x_stride, int nt,
                       float *restrict y, size_t ldy);

/* IEEE binary16 <-> binary32, round-to-nearest-even; inlinable copies for
 * the kernels (quant.c has the library's public nj_fp16_* versions). */
static inline float kern_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {                          /* subnormal: renormalise */
        exp = 113;
        while (!(man & 0x400)) { man <<= 1; exp--; }
        bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t kern_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));  /* NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  /* rounds to inf */
    if (ax < 0x38800000u) {           /* result subnormal or zero */
        if (ax < 0x33000000u) return (uint16_t)sign;         /* < half the min subnormal */
        uint32_t man = (ax & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(ax >> 23);                   /* 14..24 */
        uint32_t r = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ax - 0x38000000u;   /* rebias exponent 127 -> 15 */
    uint32_t rem = r & 0x1fff;
    r >>= 13;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

static inline float kern_bf16_to_fp32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* vdpbf16ps's input rule: a subnormal bf16 is read as a zero of its sign
 * (DAZ). */
static inline float kern_bf16_daz(uint16_t h) {
    return kern_bf16_to_fp32((h & 0x7f80) ? h : (uint16_t)(h & 0x8000));
}

/* vdpbf16ps's output rule: a result that is subnormal after rounding
 * becomes a zero of its sign (FTZ); NaN passes. */
static inline float kern_f32_ftz(float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    if ((b & 0x7f800000u) == 0) b &= 0x80000000u;
    memcpy(&v, &b, 4);
    return v;
}

#endif
