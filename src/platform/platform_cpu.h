/*
 * platform_cpu — internal to the platform module (platform_*.c only).
 */
#ifndef NJ_PLATFORM_CPU_H
#define NJ_PLATFORM_CPU_H

#include <stddef.h>
#include <stdint.h>

/* Feature mask allowed by a NIGHTJAR_CPU value (scalar|avx2|avx512|neon|
 * native); NULL or "" allows everything; an unknown value warns and allows
 * everything. */
uint32_t platform_cpu_env_mask(const char *v);

/* The directory part of path into dir ("/" for "/x", "." for "x"). */
void platform_dir_of(const char *path, char *dir, size_t cap);

#endif
