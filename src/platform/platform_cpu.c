/*
 * platform_cpu — the OS-independent part of CPU feature selection, shared by
 * platform_linux.c and platform_macos.c.  Detection itself is per OS
 * (platform_cpu_detect: cpuid/hwcaps vs sysctl); here it runs once, under
 * pthread_once, and its result is narrowed by two masks: the NIGHTJAR_CPU
 * environment variable (read once, at detection; scalar|avx2|avx512|neon|
 * native) and platform_cpu_mask() (tests, `nightjar info --cpu`
 * comparisons).  The user mask is an atomic so any thread may read features
 * while a test changes it; the kernels dispatcher reads features once at
 * start, so changing the mask later only affects code that asks again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
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

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static uint32_t cpu_detected;          /* written once under cpu_once */
static uint32_t cpu_env_mask = ~0u;    /* from NIGHTJAR_CPU, same */
static _Atomic uint32_t cpu_user_mask = ~0u;

static void cpu_detect_once(void) {
    cpu_detected = platform_cpu_detect();
    cpu_env_mask = platform_cpu_env_mask(getenv("NIGHTJAR_CPU"));
}

uint32_t platform_cpu_features(void) {
    pthread_once(&cpu_once, cpu_detect_once);
    return cpu_detected & cpu_env_mask & atomic_load(&cpu_user_mask);
}

void platform_cpu_mask(uint32_t allowed) {
    atomic_store(&cpu_user_mask, allowed);
}
