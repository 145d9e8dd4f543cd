/*
 * mmcmp — nightjar's matmul on the bytes bench/ref/mmdump wrote, compared
 * bit for bit with the peer's result.
 *
 *   mmcmp TYPE ROWS COLS NTOK DIR [-t THREADS]
 *
 * Reads DIR/w.bin (ROWS rows of TYPE), DIR/x.bin (NTOK x COLS f32) and
 * DIR/y.bin (the peer's NTOK x ROWS f32), computes Y = X @ W^T with
 * matmul() as one llama.cpp micro-batch of NTOK tokens (the last
 * matmul_single_count(TYPE, NTOK) in the single-token order), and prints
 *   mmcmp TYPE ROWSxCOLS ntok=N level=L: M of T differ (max rel R)
 * Exit 0 when every float is bit-identical, 1 when any differs, 2 on a
 * usage or I/O error.  Used by scripts/conformance-kernels.
 */
#include "kernels.h"
#include "matmul.h"
#include "pool.h"
#include "quant.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *load(const char *dir, const char *name, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "mmcmp: cannot open %s\n", path); return NULL; }
    void *p = nj_malloc_aligned(n ? n : 1);
    size_t got = p ? fread(p, 1, n, f) : 0;
    int extra = fgetc(f);
    fclose(f);
    if (!p || got != n || extra != EOF) {
        fprintf(stderr, "mmcmp: %s is not %zu bytes\n", path, n);
        nj_free_aligned(p);
        return NULL;
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 8) {
        fprintf(stderr, "usage: mmcmp TYPE ROWS COLS NTOK DIR [-t THREADS]\n");
        return 2;
    }
    int type = -1;
    for (int t = 0; t < NJ_TYPE_COUNT; t++)
        if (!strcasecmp(quant_type_name(t), argv[1])) type = t;
    const long long rows = atoll(argv[2]), cols = atoll(argv[3]), ntok = atoll(argv[4]);
    const char *dir = argv[5];
    const int threads = argc == 8 ? atoi(argv[7]) : 1;
    const size_t rb = type >= 0 && cols > 0 ? quant_row_size(type, cols) : 0;
    if (!rb || rows < 1 || ntok < 1 || threads < 1) {
        fprintf(stderr, "mmcmp: bad type or shape\n");
        return 2;
    }
    const size_t ny = (size_t)(rows * ntok);
    void *w = load(dir, "w.bin", rb * (size_t)rows);
    float *x = load(dir, "x.bin", sizeof(float) * (size_t)(cols * ntok));
    float *want = load(dir, "y.bin", sizeof(float) * ny);
    float *y = nj_malloc_aligned(sizeof(float) * ny);
    size_t ss = matmul_scratch_size(type, cols, (int)ntok);
    void *scratch = ss ? nj_malloc_aligned(ss) : NULL;
    nj_pool *pool = pool_new(threads, NULL);
    if (!w || !x || !want || !y || (ss && !scratch) || !pool) return 2;

    nj_mat W = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
    /* one micro-batch: the last matmul_single_count(type, ntok) tokens in
     * the single-token order */
    if (matmul(pool, &W, x, (int)ntok, y, scratch) != 0) {
        fprintf(stderr, "mmcmp: matmul: %s\n", nj_last_error());
        return 2;
    }
    size_t bad = 0;
    double maxrel = 0.0;
    for (size_t i = 0; i < ny; i++) {
        if (memcmp(&y[i], &want[i], sizeof(float)) == 0) continue;
        bad++;
        double rel = fabs((double)y[i] - want[i]) / fmax(fabs((double)want[i]), 1e-30);
        if (rel > maxrel) maxrel = rel;
    }
    printf("mmcmp %s %lldx%lld ntok=%lld level=%s: %zu of %zu differ (max rel %.2g)\n",
           quant_type_name(type), rows, cols, ntok, kernels_get()->name, bad, ny, maxrel);
    pool_free(pool);
    nj_free_aligned(w);
    nj_free_aligned(x);
    nj_free_aligned(want);
    nj_free_aligned(y);
    nj_free_aligned(scratch);
    return bad ? 1 : 0;
}
