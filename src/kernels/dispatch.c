/*
 * dispatch — CPU feature detection and the one-time choice of kernel level.
 *
 * All tables are built in init() under pthread_once: scalar always, then
 * every SIMD level the CPU (and the OS, for the register state) supports.
 * They are never written again, so lookups need no locking.
 *
 * Features come from platform_cpu_features() (cpuid/xgetbv on x86, the
 * auxiliary vector or sysctl on ARM), which already applies NIGHTJAR_CPU
 * as a mask: NIGHTJAR_CPU=avx2 hides the AVX-512 bits, so the best level
 * left is avx2.  The features are read once, at the first kernels_* call;
 * a later platform_cpu_mask() does not change the chosen kernels.
 */
#include "kernels.h"
#include "platform.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static nj_kernels     tables[NJ_KL_COUNT];
static bool           avail[NJ_KL_COUNT];
static int            chosen = NJ_KL_SCALAR;
static uint32_t       features;
static char           describe[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char *const level_names[NJ_KL_COUNT] = {
    [NJ_KL_SCALAR] = "scalar", [NJ_KL_AVX2] = "avx2",
    [NJ_KL_AVX512] = "avx512", [NJ_KL_NEON] = "neon",
};

static bool level_supported(int level, uint32_t f) {
    switch (level) {
    case NJ_KL_SCALAR: return true;
#if defined(__x86_64__)
    case NJ_KL_AVX2:   return f & NJ_CPU_AVX2;
    /* avx512.c is compiled with VNNI enabled, so the compiler may use it
     * anywhere in that file: require it (Ice Lake and later have it). */
    case NJ_KL_AVX512: return (f & NJ_CPU_AVX512) && (f & NJ_CPU_AVX512VNNI);
#endif
#if defined(__aarch64__)
    case NJ_KL_NEON:   return (f & NJ_CPU_NEON) && (f & NJ_CPU_DOTPROD);
#endif
    default:           return false;
    }
}

/* Copy the reference traits and substitute this table's pointers. */
static void finish_traits(nj_kernels *k) {
    for (int t = 0; t < NJ_TYPE_COUNT; t++) {
        const nj_type_traits *ref = quant_traits_ref(t);
        if (!ref) continue;
        k->traits[t] = *ref;
        k->traits[t].vec_dot = k->vec_dot[t];
        k->traits[t].from_float = k->from_float[t];
        k->traits[t].to_float = k->to_float[t];
    }
}

static void build(int level) {
    nj_kernels *k = &tables[level];
    switch (level) {
    case NJ_KL_SCALAR:
        memset(k, 0, sizeof *k);
        kern_scalar_fill(k);
        break;
#if defined(__x86_64__)
    case NJ_KL_AVX2:
        *k = tables[NJ_KL_SCALAR];
        kern_avx2_fill(k, features);
        break;
    case NJ_KL_AVX512:
        *k = tables[NJ_KL_AVX2];
        kern_avx512_fill(k, features);
        break;
#endif
#if defined(__aarch64__)
    case NJ_KL_NEON:
        *k = tables[NJ_KL_SCALAR];
        kern_neon_fill(k, features);
        break;
#endif
    default:
        return;
    }
    k->level = level;
    k->name = level_names[level];
    finish_traits(k);
    avail[level] = true;
}

static void init(void) {
    features = platform_cpu_features();
    /* Build in order: each SIMD table starts from the one below it. */
    for (int l = 0; l < NJ_KL_COUNT; l++)
        if (level_supported(l, features)) build(l);
    for (int l = 0; l < NJ_KL_COUNT; l++)
        if (avail[l]) chosen = l;
    const char *env = getenv("NIGHTJAR_CPU");
    char note[64] = "";
    if (env && *env) snprintf(note, sizeof note, " (NIGHTJAR_CPU=%.32s)", env);

    char feat[256] = "";
    static const struct { uint32_t bit; const char *name; } names[] = {
        {NJ_CPU_AVX2, "avx2+fma+f16c"}, {NJ_CPU_AVX512, "avx512f/bw/vl/dq"},
        {NJ_CPU_AVX512VNNI, "avx512vnni"}, {NJ_CPU_AVX512BF16, "avx512bf16"},
        {NJ_CPU_NEON, "neon"}, {NJ_CPU_DOTPROD, "dotprod"}, {NJ_CPU_FP16, "fp16"},
        {NJ_CPU_I8MM, "i8mm"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(names); i++) {
        if (!(features & names[i].bit)) continue;
        size_t len = strlen(feat);
        snprintf(feat + len, sizeof feat - len, "%s%s", len ? " " : "", names[i].name);
    }
#if defined(__x86_64__)
    const char *arch = "x86-64";
#elif defined(__aarch64__)
    const char *arch = "aarch64";
#else
    const char *arch = "generic";
#endif
    snprintf(describe, sizeof describe, "%s: %s | kernels: %s%s", arch,
             *feat ? feat : "(no SIMD features used)", level_names[chosen], note);
    NJ_DEBUG("kernels: %s", describe);
}

const nj_kernels *kernels_get(void) {
    pthread_once(&once, init);
    return &tables[chosen];
}

const nj_kernels *kernels_at(int level) {
    pthread_once(&once, init);
    if (level < 0 || level >= NJ_KL_COUNT || !avail[level]) return NULL;
    return &tables[level];
}

const nj_type_traits *kernels_traits(int type) {
    if (type < 0 || type >= NJ_TYPE_COUNT) return NULL;
    const nj_kernels *k = kernels_get();
    return k->traits[type].name ? &k->traits[type] : NULL;
}

int kernels_level_from_name(const char *name) {
    for (int l = 0; l < NJ_KL_COUNT; l++)
        if (name && strcmp(name, level_names[l]) == 0) return l;
    return -1;
}

const char *kernels_level_name(int level) {
    return level >= 0 && level < NJ_KL_COUNT ? level_names[level] : "?";
}

const char *kernels_describe(void) {
    pthread_once(&once, init);
    return describe;
}

size_t kernels_pack16_size(int vdt, int64_t n) {
    if (n <= 0) return 0;
    if (vdt == NJ_Q8_K && n % QK_K == 0) return (size_t)(n / QK_K) * sizeof(kern_pk_q8_K);
    if ((vdt == NJ_Q8_0 || vdt == NJ_Q8_1) && n % 32 == 0) {
        int64_t nb = n / 32;
        nb = (nb + KERN_PK_B32_ROUND - 1) / KERN_PK_B32_ROUND * KERN_PK_B32_ROUND;
        return (size_t)nb * sizeof(kern_pk_q8_0);
    }
    return 0;
}

void kern_gemm_generic(nj_vec_dot_fn dot, int n, const void *restrict w, size_t w_stride,
                       int nr, const void *restrict x, size_t x_stride, int nt,
                       float *restrict y, size_t ldy) {
    const char *wb = w, *xb = x;
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++)
            dot(n, &y[(size_t)t * ldy + r], wb + (size_t)r * w_stride, xb + (size_t)t * x_stride);
}
