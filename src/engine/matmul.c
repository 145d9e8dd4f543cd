/*
 * matmul — Y (n_tok, rows) = X (n_tok, cols) @ W^T over the kernel tables.
 *
 * Two phases, each over the pool:
 *
 *  1. Quantize X to W's vec_dot_type into the scratch (F32 weights use X as
 *     is).  Small inputs (decode: one token) are quantized by the calling
 *     thread, which saves a pool round trip per matmul; large ones are split
 *     across threads by blocks.
 *     When the level has a packed GEMM for W's type (gemm16, AVX-512 VNNI)
 *     and there are at least 16 tokens, each full group of 16 quantized
 *     rows is also re-laid into the packed token-per-lane layout, by the
 *     thread that quantized it.
 *  2. Split the output into work items and let threads pull them from an
 *     atomic counter (dynamic, so a thread slowed by another process does
 *     not hold the others up).  An item is a block of RB weight rows times
 *     a chunk of TC tokens, handed to the level's gemm tile kernel.  Items
 *     are numbered token-chunk-major, so while the threads sweep the weight
 *     rows the current token chunk's activations stay in cache; each weight
 *     block is then read once per TC tokens (prefill is a GEMM), not once
 *     per token.
 *     For one token (decode, a bandwidth-bound GEMV) an item is RB rows and
 *     the items are dealt out differently: thread i owns the i-th of nth
 *     contiguous ranges of them and takes its own from the front, so it
 *     streams one long run of rows (the kernels prefetch past an item's
 *     end into the next rows, which are its own next item); a thread whose
 *     range is empty steals single items from the back of the fullest
 *     other range.  Items are small (about 32 per thread), so the threads
 *     finish within about one small item of each other -- with one shared
 *     counter and ~8 larger items per thread they finished 4-6% of a
 *     7B-shape GEMV apart -- and no thread waits on a slower one.
 *
 * Orders: when llama.cpp would repack W (its type has repacked orders and
 * W->rows % KERN_REPACK_ROWS == 0), or W is BF16 of a shape llama.cpp
 * hands to tinyBLAS (kern_two_orders), tokens [0, n_tok - n_single) take the
 * batched order (gemm_rb tiles, packed groups) and the last n_single the
 * single-token order (gemm_rs tiles); otherwise every token takes the
 * type's plain order (gemm tiles, and packed groups if the type has no
 * repacked orders).  Only batched tokens are packed.
 *
 * Determinism: every kernel level, tile shape and the packed GEMM follow
 * one canonical float order per output element and order (kernels.h,
 * scalar.c), so Y does not depend on the thread count, on how tokens are
 * grouped or chunked, or on the kernel level (tests check all three); a
 * token's row depends only on its inputs and on which order it takes.
 *
 * Threads: pool_run's caller owns all arguments for the call's duration;
 * workers write disjoint parts of the scratch and of Y.
 */
#include "matmul.h"
#include "kernels.h"
#include "quant.h"
#include "util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

/* Quantize on the calling thread below this many activation elements. */
#define MM_SERIAL_QUANT 32768
/* Target bytes of quantized activations per token chunk (stays in L2).
 * Each weight block is unpacked once per chunk, so bigger chunks amortize
 * the unpacking better: 1.5 MB (MM_TC_MAX = 64 tokens of rows up to
 * 24 KB, i.e. up to 21504 columns of Q8_K) ran 7B-shaped prefill products
 * 1.1-1.6x faster than 192 KB (16-32 tokens) on one thread (tools/kbench
 * -s, 4 MB L2 per core). */
#ifndef MM_CHUNK_BYTES
#define MM_CHUNK_BYTES  (1536 * 1024)
#endif
#define MM_TC_MAX       64
/* Weight rows per work item for n_tok > 1. */
#define MM_RB           16
/* Fewest tokens for which a zero-padded packed group beats the small-batch
 * tiles (packed GEMM is ~3.5x faster per token on AVX-512). */
#define MM_PAD_MIN      6

/* Scratch layout: n_tok quantized rows, then (64-aligned) ceil(n_tok / 16)
 * packed groups when the type has a packed layout. */
static bool scratch_layout(int type, int64_t cols, int n_tok, size_t *rows_bytes,
                           size_t *group_bytes, size_t *total) {
    const nj_type_traits *t = quant_traits_ref(type);
    if (!t || n_tok <= 0 || cols <= 0 || t->vec_dot_type == NJ_F32) return false;
    size_t row = quant_row_size(t->vec_dot_type, cols);
    uint64_t q, g, sum;
    if (!row || !nj_mul_ok(row, (uint64_t)n_tok, &q) || q > SIZE_MAX / 2) return false;
    q = (q + 63) & ~(uint64_t)63;
    size_t gb = kernels_pack16_size(t->vec_dot_type, cols);
    if (!nj_mul_ok(gb, (uint64_t)((n_tok + 15) / 16), &g) || !nj_add_ok(q, g, &sum) || sum > SIZE_MAX / 2)
        return false;
    *rows_bytes = (size_t)q;
    *group_bytes = gb;
    *total = (size_t)sum;
    return true;
}

size_t matmul_scratch_size(int type, int64_t cols, int n_tok) {
    size_t rb, gb, total;
    return scratch_layout(type, cols, n_tok, &rb, &gb, &total) ? total : 0;
}

struct quant_job {
    nj_from_float_fn from_float;
    const float     *x;
    char            *xq;
    int64_t          cols, blck, nb_row;   /* blocks per row */
    size_t           xq_stride;
    int64_t          nb_total;
    /* packed groups (n_groups == 0: none) */
    nj_pack16_fn     pack16;
    char            *packed;
    size_t           group_bytes;
    int              n_tok, n_groups;
    int              n_packed;             /* tokens [0, n_packed) go into groups */
};

/* Thread ith quantizes rows [16g, 16g + 16) for g = ith, ith+nth, ...
 * and packs the first n_packed of them into group g when g < n_groups.
 * The last packed group may be partial (zero-padded tokens). */
static void quant_pack_task(void *ctx, int ith, int nth) {
    const struct quant_job *j = ctx;
    const int units = (j->n_tok + 15) / 16;
    for (int g = ith; g < units; g += nth) {
        const int t0 = 16 * g, t1 = NJ_MIN(t0 + 16, j->n_tok);
        for (int t = t0; t < t1; t++)
            j->from_float(j->x + (size_t)t * j->cols, j->xq + (size_t)t * j->xq_stride, j->cols);
        if (g < j->n_groups)
            j->pack16((int)j->cols, j->xq + (size_t)t0 * j->xq_stride, j->xq_stride,
                      NJ_MIN(t0 + 16, j->n_packed) - t0, j->packed + (size_t)g * j->group_bytes);
    }
}

/* Thread ith quantizes blocks [nb_total*ith/nth, nb_total*(ith+1)/nth) of
 * the flattened (token, block) sequence, in row-bounded segments. */
static void quant_task(void *ctx, int ith, int nth) {
    const struct quant_job *j = ctx;
    int64_t b = j->nb_total * ith / nth, end = j->nb_total * (ith + 1) / nth;
    while (b < end) {
        int64_t t = b / j->nb_row, ib = b % j->nb_row;
        int64_t cnt = NJ_MIN(end - b, j->nb_row - ib);
        size_t bsize = j->xq_stride / (size_t)j->nb_row;
        j->from_float(j->x + t * j->cols + ib * j->blck,
                      j->xq + (size_t)t * j->xq_stride + (size_t)ib * bsize, cnt * j->blck);
        b += cnt;
    }
}

/* One product of a job: W's rows against the shared quantized X. */
struct mm_part {
    nj_gemm_fn        gemm;      /* single tokens' order; NULL: loop over dot */
    nj_vec_dot_fn     dot;
    nj_gemm_fn        gemm_b;    /* batched tokens' order; NULL: loop over dot_b */
    nj_vec_dot_fn     dot_b;
    nj_gemm16_fn      gemm16;    /* packed groups (batched order), NULL if none */
    const char       *w;
    size_t            w_stride;
    int64_t           rows;
    float            *y;
    int               rb, tc;    /* rows per item, tokens per item */
    int64_t           n_rb, n_items;
};

#define MM_PARTS_MAX 4
/* GEMV splits into per-thread ranges up to this many threads (beyond,
 * one shared counter). */
#define MM_RANGES_MAX 16

/* A thread's range of GEMV items, [front, back) packed as back << 32 |
 * front, in its own cache line (the owner takes the front, thieves the
 * back, both by compare-and-swap). */
struct mm_range {
    _Alignas(64) _Atomic uint64_t fb;
};

struct mm_job {
    /* tokens [0, n_batched): batched order; [n_batched, n_tok): single */
    int               n_batched;
    const char       *packed;
    size_t            group_bytes;
    int               n_groups;  /* batched tokens [0, 16*n_groups) are packed */
    int               n;         /* cols */
    const char       *x;
    size_t            x_stride;
    int               n_tok;
    int               n_parts;
    struct mm_part    part[MM_PARTS_MAX];
    int64_t           n_items;   /* over all parts, part-major */
    atomic_llong      next;      /* next item, when not ranged */
    bool              ranged;    /* GEMV: items dealt out in ranges */
    struct mm_range   range[MM_RANGES_MAX];
};

/* Claims the front item of range r, or -1 if it is empty. */
static long long range_front(struct mm_range *r) {
    uint64_t v = atomic_load_explicit(&r->fb, memory_order_relaxed);
    while ((uint32_t)v < (uint32_t)(v >> 32))
        if (atomic_compare_exchange_weak_explicit(&r->fb, &v, v + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return (long long)(uint32_t)v;
    return -1;
}

/* Claims the back item of the fullest range, or -1 if all are empty. */
static long long range_steal(struct mm_job *j, int nth) {
    for (;;) {
        int best = -1;
        uint32_t most = 0;
        for (int i = 0; i < nth; i++) {
            const uint64_t v = atomic_load_explicit(&j->range[i].fb, memory_order_relaxed);
            const uint32_t f = (uint32_t)v, b = (uint32_t)(v >> 32);
            if (b > f && b - f > most) { most = b - f; best = i; }
        }
        if (best < 0) return -1;
        struct mm_range *r = &j->range[best];
        uint64_t v = atomic_load_explicit(&r->fb, memory_order_relaxed);
        while ((uint32_t)v < (uint32_t)(v >> 32)) {
            const uint64_t b = (v >> 32) - 1;
            if (atomic_compare_exchange_weak_explicit(&r->fb, &v, b << 32 | (uint32_t)v,
                                                      memory_order_relaxed, memory_order_relaxed))
                return (long long)b;
        }
    }
}

/* The next item for thread ith, or -1 when there is none left. */
static long long take_item(struct mm_job *j, int ith, int nth) {
    if (!j->ranged) {
        const long long it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        return it < j->n_items ? it : -1;
    }
    const long long it = range_front(&j->range[ith]);
    return it >= 0 ? it : range_steal(j, nth);
}

/* Rows [r0, r0+nr) (weights at w) x tokens [t0, t0+nt) through a tile
 * kernel, or the generic loop over dot when there is none. */
static void tile(nj_gemm_fn gemm, nj_vec_dot_fn dot, const struct mm_job *j,
                 const struct mm_part *p, const char *w, int nr, int64_t t0, int nt, int64_t r0) {
    const char *x = j->x + (size_t)t0 * j->x_stride;
    float *y = p->y + (size_t)t0 * (size_t)p->rows + (size_t)r0;
    if (gemm)
        gemm(j->n, w, p->w_stride, nr, x, j->x_stride, nt, y, (size_t)p->rows);
    else
        kern_gemm_generic(dot, j->n, w, p->w_stride, nr, x, j->x_stride, nt, y, (size_t)p->rows);
}

static void mm_task(void *ctx, int ith, int nth) {
    struct mm_job *j = ctx;
    for (;;) {
        long long it = take_item(j, ith, nth);
        if (it < 0) break;
        const struct mm_part *p = j->part;
        while (it >= p->n_items) it -= (p++)->n_items;
        int64_t c = it / p->n_rb, b = it % p->n_rb;
        int64_t r0 = b * p->rb, t0 = c * p->tc;
        int nr = (int)NJ_MIN((int64_t)p->rb, p->rows - r0);
        int nt = (int)NJ_MIN((int64_t)p->tc, (int64_t)j->n_tok - t0);
        const char *w = p->w + (size_t)r0 * p->w_stride;
        float *y = p->y;
        const size_t ldy = (size_t)p->rows;
        /* batched tokens [t0, tb_end), then single ones [tb_end, t0 + nt) */
        const int64_t tb_end = NJ_MIN(t0 + nt, (int64_t)j->n_batched);
        int64_t tb = t0;
        /* full packed groups first (tb is a multiple of 16 then) */
        if (p->gemm16 && tb + 16 <= tb_end && tb / 16 < j->n_groups) {
            const int ng = (int)NJ_MIN((tb_end - tb) / 16, (int64_t)j->n_groups - tb / 16);
            p->gemm16(j->n, w, p->w_stride, nr, j->packed + (size_t)(tb / 16) * j->group_bytes,
                      j->group_bytes, ng, y + (size_t)tb * ldy + (size_t)r0, ldy);
            tb += 16 * ng;
        }
        /* a partial last group: gemm16 writes all 16 token rows, so into a
         * bounce buffer (nr <= MM_RB) */
        if (p->gemm16 && tb < tb_end && tb / 16 < j->n_groups) {
            float tmp[16 * MM_RB];
            p->gemm16(j->n, w, p->w_stride, nr, j->packed + (size_t)(tb / 16) * j->group_bytes,
                      j->group_bytes, 1, tmp, (size_t)nr);
            for (int64_t t = tb; t < tb_end; t++)
                memcpy(y + (size_t)t * ldy + (size_t)r0, tmp + (size_t)(t - tb) * nr,
                       sizeof(float) * (size_t)nr);
            tb = tb_end;
        }
        if (tb < tb_end)
            tile(p->gemm_b, p->dot_b, j, p, w, nr, tb, (int)(tb_end - tb), r0);
        const int64_t ts = NJ_MAX(t0, tb_end);
        if (ts < t0 + nt)
            tile(p->gemm, p->dot, j, p, w, nr, ts, (int)(t0 + nt - ts), r0);
    }
}

int matmul_single_count(int type, int u) {
    return u > 0 ? kern_single_count(type, u) : 0;
}

int matmul(nj_pool *pool, const nj_mat *W, const float *X, int n_tok, float *Y,
           void *scratch) {
    return matmul_ex(pool, W, X, n_tok, Y, scratch, W ? matmul_single_count(W->type, n_tok) : 0);
}

/* What matmul needs to know of one weight before running: its kernels and
 * whether llama.cpp would repack it (which decides its float orders). */
struct mm_plan {
    const nj_type_traits *tt, *xt;
    int    vdt;
    bool   repacked;
    size_t x_row;
};

static int plan_weight(const nj_kernels *k, const nj_mat *W, struct mm_plan *pl) {
    if (!W || W->rows <= 0 || W->cols <= 0 || !W->data)
        return nj_fail(-EINVAL, "matmul: bad arguments");
    pl->tt = kernels_traits(W->type);
    if (!pl->tt || !pl->tt->vec_dot)
        return nj_fail(NJ_EUNSUPPORTED, "matmul: no kernel for type %s",
                       quant_type_name(W->type));
    pl->vdt = pl->tt->vec_dot_type;
    pl->xt = kernels_traits(pl->vdt);
    size_t w_row = quant_row_size(W->type, W->cols);
    pl->x_row = pl->xt ? quant_row_size(pl->vdt, W->cols) : 0;
    if (!w_row || !pl->x_row || W->row_bytes < w_row || W->cols > INT32_MAX)
        return nj_fail(-EINVAL, "matmul: %lld columns do not fit %s blocks (or row_bytes %zu)",
                       (long long)W->cols, quant_type_name(W->type), W->row_bytes);
    /* llama.cpp's layout (or, for BF16, its choice of kernel) for W, which
     * decides whether it has two float orders */
    pl->repacked = k->vec_dot_rs[W->type] && k->vec_dot_rb[W->type] &&
                   kern_two_orders(W->type, W->rows, W->cols);
    return 0;
}

/* Whether W's batched tokens go through packed 16-token groups. */
static bool wants_pack(const nj_kernels *k, const nj_mat *W, const struct mm_plan *pl, int n_b) {
    return pl->vdt != NJ_F32 && k->gemm16[W->type] && k->pack16[pl->vdt] && n_b >= MM_PAD_MIN &&
           (pl->repacked || !k->vec_dot_rb[W->type]);
}

int matmul_multi(nj_pool *pool, const nj_mat *const *W, float *const *Y, int count,
                 const float *X, int n_tok, void *scratch, const int *n_single) {
    if (!W || !Y || !X || !n_single || n_tok <= 0 || count <= 0 || count > MM_PARTS_MAX)
        return nj_fail(-EINVAL, "matmul: bad arguments");
    const nj_kernels *k = kernels_get();
    struct mm_plan pl[MM_PARTS_MAX];
    const int n_b = n_tok - n_single[0];   /* only batched tokens are packed */
    int rc;
    for (int i = 0; i < count; i++) {
        if (!Y[i] || n_single[i] < 0 || n_single[i] > n_tok)
            return nj_fail(-EINVAL, "matmul: bad arguments");
        if ((rc = plan_weight(k, W[i], &pl[i]))) return rc;
    }
    /* One quantized X serves all only if they agree on its format. */
    for (int i = 1; i < count; i++) {
        if (W[i]->cols != W[0]->cols || pl[i].vdt != pl[0].vdt || n_single[i] != n_single[0] ||
            wants_pack(k, W[i], &pl[i], n_b) != wants_pack(k, W[0], &pl[0], n_b)) {
            for (int m = 0; m < count; m++)
                if ((rc = matmul_multi(pool, &W[m], &Y[m], 1, X, n_tok, scratch, &n_single[m])))
                    return rc;
            return 0;
        }
    }
    const int vdt = pl[0].vdt;
    const size_t x_row = pl[0].x_row;
    const char *xq;
    struct quant_job qj = {0};
    if (vdt == NJ_F32) {
        xq = (const char *)X;
    } else {
        size_t rows_bytes, group_bytes, total;
        if (!scratch || !pl[0].xt->from_float ||
            !scratch_layout(W[0]->type, W[0]->cols, n_tok, &rows_bytes, &group_bytes, &total))
            return nj_fail(scratch ? NJ_EUNSUPPORTED : -EINVAL,
                           "matmul: no scratch or no quantizer for %s", quant_type_name(vdt));
        qj = (struct quant_job){
            .from_float = pl[0].xt->from_float, .x = X, .xq = scratch, .cols = W[0]->cols,
            .blck = pl[0].xt->blck, .nb_row = W[0]->cols / pl[0].xt->blck, .xq_stride = x_row,
            .n_tok = n_tok,
        };
        qj.nb_total = qj.nb_row * n_tok;
        const bool serial = !pool || pool_size(pool) == 1 || (int64_t)n_tok * W[0]->cols < MM_SERIAL_QUANT;
        if (wants_pack(k, W[0], &pl[0], n_b) && group_bytes) {
            qj.pack16 = k->pack16[vdt];
            qj.packed = (char *)scratch + rows_bytes;
            qj.group_bytes = group_bytes;
            qj.n_packed = n_b;
            /* a partial group is worth padding from MM_PAD_MIN tokens on */
            qj.n_groups = n_b / 16 + (n_b % 16 >= MM_PAD_MIN);
            if (serial) quant_pack_task(&qj, 0, 1);
            else pool_run(pool, quant_pack_task, &qj);
        } else if (serial) {
            quant_task(&qj, 0, 1);
        } else {
            pool_run(pool, quant_task, &qj);
        }
        xq = scratch;
    }

    struct mm_job j = {
        .n_batched = n_b, .n = (int)W[0]->cols, .x = xq, .x_stride = x_row, .n_tok = n_tok,
        .packed = qj.packed, .group_bytes = qj.group_bytes, .n_groups = qj.n_groups,
        .n_parts = count,
    };
    const int nth = pool ? pool_size(pool) : 1;
    int64_t rows_all = 0;
    for (int i = 0; i < count; i++) rows_all += W[i]->rows;
    for (int i = 0; i < count; i++) {
        const nj_mat *w = W[i];
        const bool rp = pl[i].repacked;
        struct mm_part *p = &j.part[i];
        *p = (struct mm_part){
            .gemm = rp ? k->gemm_rs[w->type] : k->gemm[w->type],
            .dot = rp ? k->vec_dot_rs[w->type] : pl[i].tt->vec_dot,
            .gemm_b = rp ? k->gemm_rb[w->type] : k->gemm[w->type],
            .dot_b = rp ? k->vec_dot_rb[w->type] : pl[i].tt->vec_dot,
            .gemm16 = qj.n_groups ? k->gemm16[w->type] : NULL,
            .w = w->data, .w_stride = w->row_bytes, .rows = w->rows, .y = Y[i],
        };
        if (n_tok == 1) {
            /* GEMV: ~32 items per thread over all parts, at least 16 rows,
             * multiples of 16. */
            int64_t rb = (rows_all + nth * 32 - 1) / (nth * 32);
            rb = (rb + 15) & ~(int64_t)15;
            p->rb = (int)NJ_MIN(NJ_MAX(rb, (int64_t)16), (int64_t)4096);
            p->tc = 1;
        } else {
            int64_t tc = MM_CHUNK_BYTES / (int64_t)x_row;
            tc = NJ_MAX((int64_t)16, NJ_MIN(tc, (int64_t)MM_TC_MAX)) & ~(int64_t)15;
            p->tc = (int)NJ_MIN(tc, (int64_t)n_tok);
            p->rb = MM_RB;
        }
        p->n_rb = (w->rows + p->rb - 1) / p->rb;
        p->n_items = p->n_rb * ((n_tok + p->tc - 1) / p->tc);
        j.n_items += p->n_items;
    }
    atomic_init(&j.next, 0);
    const bool par = pool && nth > 1 && j.n_items > 1;
    j.ranged = par && n_tok == 1 && nth <= MM_RANGES_MAX && j.n_items < INT32_MAX;
    if (j.ranged)
        for (int i = 0; i < nth; i++) {
            const uint64_t f = (uint64_t)(j.n_items * i / nth), b = (uint64_t)(j.n_items * (i + 1) / nth);
            atomic_init(&j.range[i].fb, b << 32 | f);
        }
    if (par) pool_run(pool, mm_task, &j);
    else mm_task(&j, 0, 1);
    return 0;
}

int matmul_ex(nj_pool *pool, const nj_mat *W, const float *X, int n_tok, float *Y,
              void *scratch, int n_single) {
    return matmul_multi(pool, &W, &Y, 1, X, n_tok, scratch, &n_single);
}
