/*
 * platform_cpu — internal to the platform module (platform_*.c only): what
 * the per-OS files (platform_linux.c, platform_macos.c) provide to the
 * shared ones (platform_cpu.c, platform_posix.c) and the reverse.
 */
#ifndef NJ_PLATFORM_CPU_H
#define NJ_PLATFORM_CPU_H

#include <stddef.h>
#include <stdint.h>

/* Feature mask allowed by a NIGHTJAR_CPU value (scalar|avx2|avx512|neon|
 * native); NULL or "" allows everything; an unknown value warns and allows
 * everything. */
uint32_t platform_cpu_env_mask(const char *v);

/* Per OS: the CPU features the processor has and the OS lets user space
 * use (NJ_CPU_*), asked afresh on each call; platform_cpu_features caches
 * it. */
uint32_t platform_cpu_detect(void);

/* $HOME, else the password database's home directory, else "/tmp".  The
 * string is the environment's or a thread-local buffer's. */
const char *platform_home_dir(void);

/* The directory part of path into dir ("/" for "/x", "." for "x"). */
void platform_dir_of(const char *path, char *dir, size_t cap);

#endif
