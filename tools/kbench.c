/*
 * kbench — kernel micro-benchmark: GEMV / GEMM speed per weight type on
 * Llama-2-7B shapes, and the machine's memory read bandwidth (the roofline
 * for decode, which must stream every weight once per token).
 *
 *   kbench [-t 1,2] [-T Q4_K,Q6_K,...] [-n 64] [-m MiB] [-r reps] [-l level] [-S qwen7b]
 *
 * A "layer" is the 7 matrices of one Llama-2-7B block: q, k, v, o
 * (4096 x 4096), gate, up (11008 x 4096), down (4096 x 11008), filled with
 * random blocks.  Enough layers are allocated to exceed -m MiB (default
 * 1024, well above the last-level cache) and the benchmark walks them in
 * order, so GEMV reads come from DRAM as in real decoding.
 *   GEMV: n_tok = 1; GB/s = weight bytes / time; "7B tok/s" = 1 / (32 x
 *         time per layer), i.e. the matmul part of a 7B decode step.
 *   GEMM: n_tok = -n (default 64, a prefill chunk); tok/s likewise for a
 *         7B prefill; GMAC/s = multiply-adds per second.
 *   BW:   sum of 64-bit words over a buffer of -m MiB, per thread slices.
 * Output is Markdown.  -l forces a kernel level (sets NIGHTJAR_CPU).
 *
 *   kbench -k [-T ...]
 *
 * Kernel mode: single-thread throughput of each kernel level's code on
 * cache-resident data (64 rows x 4096, timed in thread CPU time, best of
 * 20, so other processes on the machine disturb it little): vec_dot
 * (GEMV; the plain order), the small-batch tile (16 tokens; Q4_K's
 * repacked batched-order one) and the packed GEMM (32 tokens), in GMAC/s (multiply-adds per second).  -T none skips the
 * matmul tables (memory bandwidth only).
 *
 *   kbench -s TYPE,ROWS,COLS,NTOK [-r reps]
 *
 * Shape mode: one matmul() of that shape on a 1-thread pool, activation
 * quantization included, in process CPU time (best rep): the same
 * measurement bench/ref/ggml_mm makes of the peer, for bench/kernels.
 */
#include "kernels.h"
#include "matmul.h"
#include "pool.h"
#include "quant.h"
#include "util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static uint64_t rs = 88172645463325252ull;
static inline uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static uint16_t rand_half(void) {
    float v = ldexpf(1.0f + (float)(rnd() & 0xffff) / 65536.0f, -8 - (int)(rnd() % 4));
    return nj_fp32_to_fp16(v);
}

/* Random bytes, then finite fp16 scales at each block's d (and m/dmin). */
static void fill(int type, uint8_t *p, size_t rows, size_t row_bytes) {
    size_t total = rows * row_bytes;
    for (size_t i = 0; i + 8 <= total; i += 8) {
        uint64_t v = rnd();
        memcpy(p + i, &v, 8);
    }
    const nj_type_traits *t = quant_traits_ref(type);
    if (type == NJ_F32 || type == NJ_F16 || type == NJ_BF16) {
        for (size_t i = 0; i < total / t->size; i++) {
            float f = (float)((int)(rnd() & 0xffff) - 32768) / 32768.0f;
            if (type == NJ_F32) memcpy(p + 4 * i, &f, 4);
            else {
                uint16_t h = type == NJ_F16 ? nj_fp32_to_fp16(f) : nj_fp32_to_bf16(f);
                memcpy(p + 2 * i, &h, 2);
            }
        }
        return;
    }
    size_t off_d = 0, off_m = (size_t)-1;
    switch (type) {
    case NJ_Q4_1: case NJ_Q5_1: off_m = 2; break;
    case NJ_Q2_K: off_d = 80; off_m = 82; break;
    case NJ_Q3_K: off_d = 108; break;
    case NJ_Q4_K: case NJ_Q5_K: off_m = 2; break;
    case NJ_Q6_K: off_d = 208; break;
    default: break;
    }
    for (size_t b = 0; b < total / t->size; b++) {
        uint16_t h = rand_half();
        memcpy(p + b * t->size + off_d, &h, 2);
        if (off_m != (size_t)-1) {
            h = rand_half();
            memcpy(p + b * t->size + off_m, &h, 2);
        }
    }
}

struct shape { const char *name; int64_t rows, cols; };
/* -S llama7b (default): Llama-2-7B's block; -S qwen7b: Qwen2-7B's (GQA
 * k/v, wider FFN, 3584 columns: rows are not whole 64-byte lines). */
static const struct shape llama7b[] = {
    {"q", 4096, 4096}, {"k", 4096, 4096}, {"v", 4096, 4096}, {"o", 4096, 4096},
    {"gate", 11008, 4096}, {"up", 11008, 4096}, {"down", 4096, 11008},
};
static const struct shape qwen7b[] = {
    {"q", 3584, 3584}, {"k", 512, 3584}, {"v", 512, 3584}, {"o", 3584, 3584},
    {"gate", 18944, 3584}, {"up", 18944, 3584}, {"down", 3584, 18944},
};
static const struct shape *layer = llama7b;
#define NMAT 7

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- memory bandwidth ---------------------------------------------------- */
/* The read bandwidth is the best of several read patterns: each thread
 * sums its share as 1, 4 or 8 interleaved sequential streams (decode
 * kernels read 8 weight rows side by side, and DRAM serves several open
 * streams faster than one), with and without a software prefetch PF bytes
 * ahead into L2.  A roofline must be what the memory can deliver, not
 * what one loop happens to reach: one plain stream per thread measured a
 * fifth less than the GEMV kernels later achieved. */
struct bw_job { const uint64_t *buf; size_t n; size_t pf; int streams; uint64_t sum[64]; };

static void bw_task(void *ctx, int ith, int nth) {
    struct bw_job *j = ctx;
    const size_t a = j->n * (size_t)ith / (size_t)nth, b = j->n * (size_t)(ith + 1) / (size_t)nth;
    const int ns = j->streams;
    const size_t len = (b - a) / (size_t)ns & ~(size_t)7;   /* words per stream */
    const size_t pf = j->pf / 8;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t o = 0; o + 8 <= len; o += 8) {
        for (int k = 0; k < ns; k++) {
            const uint64_t *p = j->buf + a + (size_t)k * len + o;
            if (pf && o + pf < len) __builtin_prefetch(p + pf, 0, 2);
            s0 += p[0]; s1 += p[1]; s2 += p[2]; s3 += p[3];
            s4 += p[4]; s5 += p[5]; s6 += p[6]; s7 += p[7];
        }
    }
    j->sum[ith & 63] = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

static double bench_bw(nj_pool *pool, size_t bytes, int reps) {
    size_t n = bytes / 8;
    uint64_t *buf = nj_malloc_aligned(n * 8);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    static const size_t pfs[] = {0, 2048, 4096};
    static const int streams[] = {1, 4, 8};
    double best = 1e30;
    for (size_t si = 0; si < NJ_ARRAY_LEN(streams); si++)
        for (size_t k = 0; k < NJ_ARRAY_LEN(pfs); k++) {
            struct bw_job j = {.buf = buf, .n = n, .pf = pfs[k], .streams = streams[si]};
            /* bytes actually read: whole 64-byte steps of each stream */
            const size_t per = (n / (size_t)pool_size(pool) / (size_t)streams[si]) & ~(size_t)7;
            const double rd = (double)per * 8.0 * streams[si] * pool_size(pool);
            for (int r = 0; r < reps + 1; r++) {
                double t0 = nj_now();
                pool_run(pool, bw_task, &j);
                double dt = nj_now() - t0;
                if (r > 0 && dt * (double)bytes / rd < best) best = dt * (double)bytes / rd;
            }
        }
    nj_free_aligned(buf);
    return (double)bytes / best / 1e9;
}

/* ---- matmul over layers -------------------------------------------------- */
struct layers {
    int type, n_layers;
    uint8_t *mem;
    nj_mat m[64][NMAT];
    size_t layer_bytes;
};

static int make_layers(struct layers *L, int type, size_t min_bytes) {
    L->type = type;
    L->layer_bytes = 0;
    for (int i = 0; i < NMAT; i++) L->layer_bytes += quant_row_size(type, layer[i].cols) * (size_t)layer[i].rows;
    L->n_layers = (int)NJ_MIN((min_bytes + L->layer_bytes - 1) / L->layer_bytes, (size_t)32);
    if (L->n_layers < 1) L->n_layers = 1;
    L->mem = nj_malloc_aligned(L->layer_bytes * (size_t)L->n_layers);
    if (!L->mem) return -ENOMEM;
    uint8_t *p = L->mem;
    for (int l = 0; l < L->n_layers; l++) {
        for (int i = 0; i < NMAT; i++) {
            size_t rb = quant_row_size(type, layer[i].cols);
            L->m[l][i] = (nj_mat){.type = type, .rows = layer[i].rows, .cols = layer[i].cols,
                                  .row_bytes = rb, .data = p};
            fill(type, p, (size_t)layer[i].rows, rb);
            p += rb * (size_t)layer[i].rows;
        }
    }
    return 0;
}


/* Seconds per layer (best of reps) for n_tok tokens; *busy = CPU time /
 * (wall time x threads) of that run: below ~0.95 means other processes
 * took cores away and the number understates the kernels. */
static double bench_layers(nj_pool *pool, struct layers *L, int n_tok, int reps, int max_layers,
                           float *x, float *y, void *scratch, double *busy) {
    double best = 1e30;
    int nl = NJ_MIN(L->n_layers, max_layers);
    for (int r = 0; r < reps; r++) {
        double t0 = nj_now(), c0 = cpu_now();
        for (int l = 0; l < nl; l++)
            for (int i = 0; i < NMAT; i++)
                if (matmul(pool, &L->m[l][i], x, n_tok, y, scratch) != 0) return -1;
        double wall = nj_now() - t0, dt = wall / nl;
        if (dt < best) {
            best = dt;
            *busy = (cpu_now() - c0) / (wall * pool_size(pool));
        }
    }
    return best;
}

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best-of-20 seconds per call of fn over ctx (each timing runs it `inner`
 * times). */
#define TIME_BEST(out, inner, stmt)                                                     \
    do {                                                                                \
        double best_ = 1e30;                                                            \
        for (int rep_ = 0; rep_ < 20; rep_++) {                                         \
            double t0_ = thread_cpu();                                                  \
            for (int in_ = 0; in_ < (inner); in_++) { stmt; }                           \
            double dt_ = (thread_cpu() - t0_) / (inner);                                \
            if (dt_ < best_) best_ = dt_;                                               \
        }                                                                               \
        (out) = best_;                                                                  \
    } while (0)

static int kernel_mode(const int *types, int n_types) {
    const int n = 4096, nr = 64, ntok = 32;
    printf("| type | level | GEMV GMAC/s | tile GEMM (16 tok) GMAC/s | packed GEMM (32 tok) GMAC/s |\n");
    printf("|---|---|---|---|---|\n");
    for (int ti = 0; ti < n_types; ti++) {
        const int type = types[ti];
        const nj_type_traits *tt = quant_traits_ref(type);
        const int vdt = tt->vec_dot_type;
        const size_t ws = quant_row_size(type, n), xs = quant_row_size(vdt, n);
        uint8_t *w = nj_malloc_aligned(ws * nr), *xq = nj_malloc_aligned(xs * ntok);
        float *x = nj_malloc_aligned(sizeof(float) * (size_t)n * ntok);
        float *y = nj_malloc_aligned(sizeof(float) * (size_t)nr * ntok);
        const size_t gs = kernels_pack16_size(vdt, n);
        uint8_t *packed = gs ? nj_malloc_aligned(2 * gs) : NULL;
        if (!w || !xq || !x || !y || (gs && !packed)) return 1;
        fill(type, w, nr, ws);
        for (size_t i = 0; i < (size_t)n * ntok; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
        for (int l = 0; l < NJ_KL_COUNT; l++) {
            const nj_kernels *k = kernels_at(l);
            if (!k) continue;
            for (int t = 0; t < ntok; t++)
                k->traits[vdt].from_float(x + (size_t)t * n, xq + (size_t)t * xs, n);
            double tv, tg = 0, tp = 0;
            TIME_BEST(tv, 4, for (int r = 0; r < nr; r++) k->vec_dot[type](n, &y[r], w + (size_t)r * ws, xq));
            /* the tile prefill uses: for repacked types, the batched order's */
            nj_gemm_fn tile = k->vec_dot_rb[type] ? k->gemm_rb[type] : k->gemm[type];
            if (tile)
                TIME_BEST(tg, 2, tile(n, w, ws, nr, xq, xs, 16, y, nr));
            if (k->gemm16[type] && packed) {
                k->pack16[vdt](n, xq, xs, 16, packed);
                k->pack16[vdt](n, xq + 16 * xs, xs, 16, packed + gs);
                TIME_BEST(tp, 2, k->gemm16[type](n, w, ws, nr, packed, gs, 2, y, nr));
            }
            const double macs = (double)n * nr;
            char g[32] = "-", pk[32] = "-";
            if (tg > 0) snprintf(g, sizeof g, "%.1f", macs * 16 / tg / 1e9);
            if (tp > 0) snprintf(pk, sizeof pk, "%.1f", macs * 32 / tp / 1e9);
            printf("| %s | %s | %.1f | %s | %s |\n", tt->name, k->name, macs / tv / 1e9, g, pk);
            fflush(stdout);
        }
        nj_free_aligned(w); nj_free_aligned(xq); nj_free_aligned(x); nj_free_aligned(y);
        nj_free_aligned(packed);
    }
    return 0;
}

static int shape_mode(const char *spec, int reps) {
    char tname[16];
    long long rows, cols, ntok;
    if (sscanf(spec, "%15[^,],%lld,%lld,%lld", tname, &rows, &cols, &ntok) != 4 || rows < 1 ||
        cols < 1 || ntok < 1) {
        fprintf(stderr, "kbench: -s TYPE,ROWS,COLS,NTOK\n");
        return 2;
    }
    int type = -1;
    for (int t = 0; t < NJ_TYPE_COUNT; t++)
        if (!strcasecmp(quant_type_name(t), tname)) type = t;
    const size_t rb = type >= 0 ? quant_row_size(type, cols) : 0;
    if (!rb) { fprintf(stderr, "kbench: bad type or shape %s\n", spec); return 2; }
    uint8_t *w = nj_malloc_aligned(rb * (size_t)rows);
    float *x = nj_malloc_aligned(sizeof(float) * (size_t)(cols * ntok));
    float *y = nj_malloc_aligned(sizeof(float) * (size_t)(rows * ntok));
    size_t ss = matmul_scratch_size(type, cols, (int)ntok);
    void *scratch = ss ? nj_malloc_aligned(ss) : NULL;
    nj_pool *pool = pool_new(1, NULL);
    if (!w || !x || !y || (ss && !scratch) || !pool) return 1;
    fill(type, w, (size_t)rows, rb);
    for (long long i = 0; i < cols * ntok; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    nj_mat W = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = cpu_now();
        if (matmul(pool, &W, x, (int)ntok, y, scratch) != 0) return 1;
        double dt = cpu_now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    printf("nightjar %s %lldx%lld ntok=%lld level=%s GMAC/s=%.1f\n", quant_type_name(type), rows, cols,
           ntok, kernels_get()->name, (double)rows * cols * ntok / best / 1e9);
    pool_free(pool);
    nj_free_aligned(w); nj_free_aligned(x); nj_free_aligned(y); nj_free_aligned(scratch);
    return 0;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return n;
}

static int type_from_name(const char *s, size_t len) {
    for (int t = 0; t < NJ_TYPE_COUNT; t++) {
        const char *nm = quant_type_name(t);
        if (strlen(nm) == len && strncmp(nm, s, len) == 0) return t;
    }
    return -1;
}

int main(int argc, char **argv) {
    int threads[8] = {1, 2}, n_threads = 2, n_gemm = 64, reps = 3;
    size_t mib = 1024;
    int types[32] = {NJ_Q4_K, NJ_Q6_K, NJ_Q8_0, NJ_Q4_1, NJ_Q4_0, NJ_Q5_K, NJ_F16}, n_types = 7;
    bool kmode = false;
    const char *shape = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-k")) { kmode = true; continue; }
        if (!v) { fprintf(stderr, "kbench: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "-t")) n_threads = parse_list(v, threads, 8);
        else if (!strcmp(a, "-n")) n_gemm = atoi(v);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else if (!strcmp(a, "-m")) mib = (size_t)atol(v);
        else if (!strcmp(a, "-l")) setenv("NIGHTJAR_CPU", v, 1);
        else if (!strcmp(a, "-s")) shape = v;
        else if (!strcmp(a, "-S")) {
            if (!strcmp(v, "qwen7b")) layer = qwen7b;
            else if (strcmp(v, "llama7b") != 0) { fprintf(stderr, "kbench: -S llama7b|qwen7b\n"); return 2; }
        }
        else if (!strcmp(a, "-T")) {
            n_types = 0;
            for (const char *s = v; *s && n_types < 32 && strcmp(v, "none") != 0;) {
                const char *c = strchr(s, ',');
                size_t len = c ? (size_t)(c - s) : strlen(s);
                int t = type_from_name(s, len);
                if (t < 0) { fprintf(stderr, "kbench: unknown type %.*s\n", (int)len, s); return 2; }
                types[n_types++] = t;
                if (!c) break;
                s = c + 1;
            }
        } else {
            fprintf(stderr, "usage: kbench [-k] [-s TYPE,ROWS,COLS,NTOK] [-t 1,2] [-T Q4_K,...|none] [-n 64] [-m MiB] [-r reps] [-l level]\n");
            return 2;
        }
    }
    if (n_gemm < 1 || reps < 1 || n_threads < 1) { fprintf(stderr, "kbench: bad arguments\n"); return 2; }

    if (shape) return shape_mode(shape, reps);
    printf("kernels: %s\n\n", kernels_describe());
    if (kmode) return kernel_mode(types, n_types);
    nj_pool *pools[8];
    for (int i = 0; i < n_threads; i++) {
        pools[i] = pool_new(threads[i], NULL);
        if (!pools[i]) { fprintf(stderr, "kbench: pool_new(%d) failed\n", threads[i]); return 1; }
    }

    printf("| threads | memory read GB/s |\n|---|---|\n");
    for (int i = 0; i < n_threads; i++)
        printf("| %d | %.1f |\n", threads[i], bench_bw(pools[i], mib << 20, reps));
    printf("\n");

    size_t wide = 0;   /* the widest input or output row of a layer */
    for (int i = 0; i < NMAT; i++) wide = NJ_MAX(wide, (size_t)NJ_MAX(layer[i].rows, layer[i].cols));
    float *x = nj_malloc_aligned(sizeof(float) * wide * (size_t)n_gemm);
    float *y = nj_malloc_aligned(sizeof(float) * wide * (size_t)n_gemm);
    for (size_t i = 0; i < wide * (size_t)n_gemm; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    printf("| type | threads | GEMV ms/layer | GEMV GB/s | 7B decode tok/s (matmuls) | busy "
           "| GEMM n=%d ms/layer | GEMM GMAC/s | 7B prefill tok/s (matmuls) | busy |\n", n_gemm);
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int ti = 0; ti < n_types; ti++) {
        const int type = types[ti];
        struct layers L;
        size_t ss = 0;
        for (int i = 0; i < NMAT; i++) ss = NJ_MAX(ss, matmul_scratch_size(type, layer[i].cols, n_gemm));
        void *scratch = ss ? nj_malloc_aligned(ss) : NULL;
        if (make_layers(&L, type, mib << 20) != 0 || (ss && !scratch)) {
            fprintf(stderr, "kbench: out of memory for %s\n", quant_type_name(type));
            return 1;
        }
        double macs = 0;
        for (int i = 0; i < NMAT; i++) macs += (double)layer[i].rows * layer[i].cols;
        for (int pi = 0; pi < n_threads; pi++) {
            double bv = 0, bm = 0;
            double tv = bench_layers(pools[pi], &L, 1, reps, L.n_layers, x, y, scratch, &bv);
            double tm = bench_layers(pools[pi], &L, n_gemm, reps, 1, x, y, scratch, &bm);
            if (tv < 0 || tm < 0) { fprintf(stderr, "kbench: matmul failed: %s\n", nj_last_error()); return 1; }
            printf("| %s | %d | %.2f | %.1f | %.2f | %.2f | %.1f | %.1f | %.1f | %.2f |\n",
                   quant_type_name(type), threads[pi], tv * 1e3, (double)L.layer_bytes / tv / 1e9,
                   1.0 / (32 * tv), bv, tm * 1e3, macs * n_gemm / tm / 1e9, n_gemm / (32 * tm), bm);
            fflush(stdout);
        }
        nj_free_aligned(L.mem);
        nj_free_aligned(scratch);
    }
    nj_free_aligned(x);
    nj_free_aligned(y);
    for (int i = 0; i < n_threads; i++) pool_free(pools[i]);
    return 0;
}
