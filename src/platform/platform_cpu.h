/*
 * platform_cpu — internal to the platform module (platform_*.c only).
 */
#ifndef NJ_PLATFORM_CPU_H
#define NJ_PLATFORM_CPU_H

#include <stdint.h>

/* Feature mask allowed by a NIGHTJAR_CPU value (scalar|avx2|avx512|neon|
 * native); NULL or "" allows everything; an unknown value warns and allows
 * everything. */
uint32_t platform_cpu_env_mask(const char *v);

#endif
