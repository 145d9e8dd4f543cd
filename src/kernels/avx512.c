/*
 * avx512 — AVX-512 (F/BW/VL/DQ + VNNI) kernels for the hot types.
 * (work in progress: inherits every entry from avx2 for now)
 */
#include "kernels/kernels.h"

#include <immintrin.h>

void kern_avx512_fill(nj_kernels *k, uint32_t features) {
    (void)k; (void)features;
}
