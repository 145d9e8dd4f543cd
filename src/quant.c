/*
 * quant — type-trait table.  (Scalar reference kernels: see the quant issue;
 * entries whose function pointers are NULL are not implemented yet.)
 */
#include "quant.h"

#include <string.h>

static const nj_type_traits ref_traits[NJ_TYPE_COUNT] = {
    [NJ_F32]  = {.name = "F32",  .blck = 1,    .size = 4,   .vec_dot_type = NJ_F32},
    [NJ_F16]  = {.name = "F16",  .blck = 1,    .size = 2,   .vec_dot_type = NJ_F16},
    [NJ_BF16] = {.name = "BF16", .blck = 1,    .size = 2,   .vec_dot_type = NJ_BF16},
    [NJ_Q4_0] = {.name = "Q4_0", .blck = 32,   .size = 18,  .quantized = true, .vec_dot_type = NJ_Q8_0},
    [NJ_Q4_1] = {.name = "Q4_1", .blck = 32,   .size = 20,  .quantized = true, .vec_dot_type = NJ_Q8_1},
    [NJ_Q5_0] = {.name = "Q5_0", .blck = 32,   .size = 22,  .quantized = true, .vec_dot_type = NJ_Q8_0},
    [NJ_Q5_1] = {.name = "Q5_1", .blck = 32,   .size = 24,  .quantized = true, .vec_dot_type = NJ_Q8_1},
    [NJ_Q8_0] = {.name = "Q8_0", .blck = 32,   .size = 34,  .quantized = true, .vec_dot_type = NJ_Q8_0},
    [NJ_Q8_1] = {.name = "Q8_1", .blck = 32,   .size = 36,  .quantized = true, .vec_dot_type = NJ_Q8_1},
    [NJ_Q2_K] = {.name = "Q2_K", .blck = QK_K, .size = 84,  .quantized = true, .vec_dot_type = NJ_Q8_K},
    [NJ_Q3_K] = {.name = "Q3_K", .blck = QK_K, .size = 110, .quantized = true, .vec_dot_type = NJ_Q8_K},
    [NJ_Q4_K] = {.name = "Q4_K", .blck = QK_K, .size = 144, .quantized = true, .vec_dot_type = NJ_Q8_K},
    [NJ_Q5_K] = {.name = "Q5_K", .blck = QK_K, .size = 176, .quantized = true, .vec_dot_type = NJ_Q8_K},
    [NJ_Q6_K] = {.name = "Q6_K", .blck = QK_K, .size = 210, .quantized = true, .vec_dot_type = NJ_Q8_K},
    [NJ_Q8_K] = {.name = "Q8_K", .blck = QK_K, .size = 292, .quantized = true, .vec_dot_type = NJ_Q8_K},
};

const nj_type_traits *quant_traits_ref(int type) {
    if (type < 0 || type >= NJ_TYPE_COUNT || !ref_traits[type].name) return NULL;
    return &ref_traits[type];
}

const nj_type_traits *quant_traits(int type) { return quant_traits_ref(type); }

const char *quant_type_name(int type) {
    const nj_type_traits *t = quant_traits_ref(type);
    return t ? t->name : "?";
}

size_t quant_row_size(int type, int64_t n) {
    const nj_type_traits *t = quant_traits_ref(type);
    if (!t || n < 0 || n % t->blck) return 0;
    return (size_t)(n / t->blck) * t->size;
}
