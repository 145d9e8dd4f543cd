/*
 * platform_cpu — the OS-independent part of CPU feature selection, shared by
 * platform_linux.c and platform_macos.c: what the NIGHTJAR_CPU environment
 * variable allows.  Detection itself is per OS (cpuid/hwcaps vs sysctl).
 */
#include <string.h>

#include "platform.h"
#include "platform_cpu.h"
#include "util.h"

/* NIGHTJAR_CPU=LEVEL -> the features that level may use.  Unknown values are
 * reported once and ignored (a typo must not silently drop to scalar). */
uint32_t platform_cpu_env_mask(const char *v) {
    static const struct { const char *name; uint32_t mask; } levels[] = {
        {"scalar", 0},
        {"avx2",   NJ_CPU_AVX2},
        {"avx512", NJ_CPU_AVX2 | NJ_CPU_AVX512 | NJ_CPU_AVX512VNNI | NJ_CPU_AVX512BF16},
        {"neon",   NJ_CPU_NEON | NJ_CPU_DOTPROD | NJ_CPU_FP16 | NJ_CPU_I8MM},
        {"native", ~0u},
    };
    if (!v || !*v) return ~0u;
    for (size_t i = 0; i < NJ_ARRAY_LEN(levels); i++)
        if (!strcmp(v, levels[i].name)) return levels[i].mask;
    NJ_WARN("NIGHTJAR_CPU=%s not understood (scalar|avx2|avx512|neon|native); ignored", v);
    return ~0u;
}
