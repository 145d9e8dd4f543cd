/*
 * gguf-diff — compare the tensors of two GGUF files by name.
 *
 *   gguf-diff A.gguf B.gguf [-v]
 *
 * For each tensor of A: present in B?  same shape?  same type?  same bytes?
 * Where the types agree but the bytes differ, the largest absolute
 * difference of the dequantized values and the share of differing blocks
 * are printed.  -v prints every tensor, not only the differing ones.  The
 * last line is a summary:
 *   gguf-diff: N tensors, T type mismatches, D with different bytes, M missing
 * Exit 0 when types and bytes all agree, 1 otherwise, 2 on a usage or I/O
 * error.  Used to check `nightjar quantize` against llama-quantize.
 */
#include "gguf.h"
#include "quant.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest |a - b| over the dequantized values of one tensor and the number
 * of blocks whose bytes differ. */
static double max_diff(const gguf_tensor *a, const gguf_tensor *b, uint64_t *blocks_diff, uint64_t *blocks) {
    const nj_type_traits *t = quant_traits_ref((int)a->type);
    *blocks_diff = *blocks = 0;
    if (!t || !t->to_float) return NAN;
    const int64_t n = a->ne[0] * a->ne[1] * a->ne[2] * a->ne[3];
    const int64_t nb = n / t->blck;
    float *x = malloc(sizeof(float) * (size_t)t->blck), *y = malloc(sizeof(float) * (size_t)t->blck);
    double m = 0;
    for (int64_t i = 0; x && y && i < nb; i++) {
        const uint8_t *pa = (const uint8_t *)a->data + (size_t)i * t->size;
        const uint8_t *pb = (const uint8_t *)b->data + (size_t)i * t->size;
        if (!memcmp(pa, pb, t->size)) continue;
        (*blocks_diff)++;
        t->to_float(pa, x, t->blck);
        t->to_float(pb, y, t->blck);
        for (int j = 0; j < t->blck; j++) m = fmax(m, fabs((double)x[j] - (double)y[j]));
    }
    *blocks = (uint64_t)nb;
    free(x);
    free(y);
    return m;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: gguf-diff A.gguf B.gguf [-v]\n");
        return 2;
    }
    bool verbose = argc > 3 && !strcmp(argv[3], "-v");
    int err = 0;
    gguf_file *fa = gguf_open(argv[1], &err);
    if (!fa) { fprintf(stderr, "gguf-diff: %s: %s\n", argv[1], nj_last_error()); return 2; }
    gguf_file *fb = gguf_open(argv[2], &err);
    if (!fb) { fprintf(stderr, "gguf-diff: %s: %s\n", argv[2], nj_last_error()); gguf_close(fa); return 2; }
    uint64_t n = gguf_n_tensors(fa), n_type = 0, n_bytes = 0, n_missing = 0;
    for (uint64_t i = 0; i < n; i++) {
        const gguf_tensor *a = gguf_tensor_at(fa, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)a->name.len, a->name.ptr);
        const gguf_tensor *b = gguf_find_tensor(fb, name);
        if (!b) { n_missing++; printf("%-40s missing in B\n", name); continue; }
        if (memcmp(a->ne, b->ne, sizeof a->ne)) { n_missing++; printf("%-40s shapes differ\n", name); continue; }
        if (a->type != b->type) {
            n_type++;
            printf("%-40s type %s vs %s\n", name, quant_type_name((int)a->type), quant_type_name((int)b->type));
            continue;
        }
        if (a->nbytes == b->nbytes && !memcmp(a->data, b->data, (size_t)a->nbytes)) {
            if (verbose) printf("%-40s %-5s same bytes\n", name, quant_type_name((int)a->type));
            continue;
        }
        n_bytes++;
        uint64_t bd, nb;
        double m = max_diff(a, b, &bd, &nb);
        printf("%-40s %-5s bytes differ: %llu of %llu blocks, max |diff| %.3g\n", name,
               quant_type_name((int)a->type), (unsigned long long)bd, (unsigned long long)nb, m);
    }
    if (gguf_n_tensors(fb) != n) n_missing += gguf_n_tensors(fb) > n ? gguf_n_tensors(fb) - n : 0;
    printf("gguf-diff: %llu tensors, %llu type mismatches, %llu with different bytes, %llu missing\n",
           (unsigned long long)n, (unsigned long long)n_type, (unsigned long long)n_bytes,
           (unsigned long long)n_missing);
    gguf_close(fa);
    gguf_close(fb);
    return n_type || n_bytes || n_missing ? 1 : 0;
}
