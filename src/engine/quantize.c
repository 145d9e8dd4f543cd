/*
 * quantize — see quantize.h for the recipes, the order and the threads.
 *
 * The recipe rules are llama.cpp's (llama-quant.cpp: tensor categories by
 * name, "use more bits" layers, fallbacks for row lengths that are not a
 * multiple of a type's block), written here for the recipes we offer; the
 * conversions are format/quant.c's reference (de)quantizers.
 */
#include "quantize.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gguf_write.h"
#include "pool.h"
#include "quant.h"
#include "util.h"

/* ---- recipes ---- */

static const struct { const char *name; int ftype, base; } recipes[] = {
    {"F32", QFT_F32, NJ_F32},       {"F16", QFT_F16, NJ_F16},       {"BF16", QFT_BF16, NJ_BF16},
    {"Q8_0", QFT_Q8_0, NJ_Q8_0},    {"Q6_K", QFT_Q6_K, NJ_Q6_K},    {"Q5_K_M", QFT_Q5_K_M, NJ_Q5_K},
    {"Q4_K_M", QFT_Q4_K_M, NJ_Q4_K}, {"Q4_0", QFT_Q4_0, NJ_Q4_0},
};

int quantize_ftype_parse(const char *name) {
    for (size_t i = 0; i < NJ_ARRAY_LEN(recipes); i++)
        if (!strcasecmp(name, recipes[i].name)) return recipes[i].ftype;
    return -1;
}

const char *quantize_ftype_name(int ftype) {
    for (size_t i = 0; i < NJ_ARRAY_LEN(recipes); i++)
        if (recipes[i].ftype == ftype) return recipes[i].name;
    return "?";
}

static int recipe_base(int ftype) {
    for (size_t i = 0; i < NJ_ARRAY_LEN(recipes); i++)
        if (recipes[i].ftype == ftype) return recipes[i].base;
    return -1;
}

static bool type_quantized(int type) {
    const nj_type_traits *t = quant_traits_ref(type);
    return t && t->quantized;
}

static int type_blck(int type) {
    const nj_type_traits *t = quant_traits_ref(type);
    return t ? t->blck : 1;
}

/* ---- tensor categories (by name, as llama.cpp files name them) ---- */

enum cat { C_OTHER, C_OUTPUT, C_TOKEN_EMBD, C_ATTN_QKV, C_ATTN_KV_B, C_ATTN_V, C_ATTN_K,
           C_ATTN_Q, C_ATTN_OUTPUT, C_FFN_UP, C_FFN_GATE, C_FFN_DOWN };

static enum cat category(const char *name) {
    if (!strcmp(name, "output.weight")) return C_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return C_TOKEN_EMBD;
    /* first match wins: "attn_qkv" before "attn_v", "attn_kv_b" before "attn_k" */
    static const struct { const char *sub; enum cat c; } subs[] = {
        {"attn_qkv.weight", C_ATTN_QKV}, {"attn_kv_b.weight", C_ATTN_KV_B},
        {"attn_v.weight", C_ATTN_V},     {"attn_k.weight", C_ATTN_K},
        {"attn_q.weight", C_ATTN_Q},     {"attn_output.weight", C_ATTN_OUTPUT},
        {"ffn_up", C_FFN_UP},            {"ffn_gate", C_FFN_GATE}, {"ffn_down", C_FFN_DOWN},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(subs); i++)
        if (strstr(name, subs[i].sub)) return subs[i].c;
    return C_OTHER;
}

/* The value projections (and the fused tensors that contain them) are the
 * most sensitive to quantization. */
static bool cat_is_attn_v(enum cat c) { return c == C_ATTN_V || c == C_ATTN_QKV || c == C_ATTN_KV_B; }

/* Dimensions as ggml counts them: trailing sizes of 1 do not count. */
static int n_dims_of(const gguf_tensor *t) {
    int n = 1;
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        if (t->ne[d] > 1) n = d + 1;
    return n;
}

/* Whether a recipe may change this tensor's type at all: 2+ dimensional
 * weights, except norms and tables that are small or must stay exact. */
static bool convertible(const char *name, int n_dims) {
    if (n_dims < 2) return false;
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 6, "weight")) return false;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight")) return false;
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
        "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight",
        "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
        "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
        ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(keep); i++)
        if (strstr(name, keep[i])) return false;
    return true;
}

/* Layers at the ends and every third one between get more bits. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* A row length the type's block does not divide: the nearest type whose
 * block does (F16 as the last resort). */
static int fallback(int type, int64_t ncols) {
    if (ncols % type_blck(type) == 0) return type;
    int f = type;
    switch (type) {
    case NJ_Q2_K: case NJ_Q3_K: f = NJ_Q4_0; break;
    case NJ_Q4_K: f = NJ_Q5_0; break;
    case NJ_Q5_K: f = NJ_Q5_1; break;
    case NJ_Q6_K: f = NJ_Q8_0; break;
    default: break;
    }
    return ncols % type_blck(f) == 0 ? f : NJ_F16;
}

typedef struct plan_state {
    int  ftype;
    bool falcon, is_70b, tied;
    int  n_layer, n_expert;
    int  n_attn_v, i_attn_v, i_ffn_down;
} plan_state;

/* The recipe's type for one tensor (called in visiting order: the counters
 * advance). */
static int plan_one(plan_state *st, const gguf_tensor *t, const char *name) {
    const int base = recipe_base(st->ftype);
    if (!convertible(name, n_dims_of(t))) return (int)t->type;
    if (!type_quantized(base)) return base;
    const int ft = st->ftype;
    const bool km = ft == QFT_Q4_K_M || ft == QFT_Q5_K_M;
    enum cat c = category(name);
    int nt = base;
    if (c == C_OUTPUT || (st->tied && c == C_TOKEN_EMBD)) {
        if (st->falcon || t->ne[0] % type_blck(base)) nt = NJ_Q8_0;
        else if (nt != NJ_Q8_0) nt = NJ_Q6_K;
    } else if (c == C_TOKEN_EMBD) {
        /* the base type, for these recipes */
    } else if (cat_is_attn_v(c)) {
        if (km && more_bits(st->i_attn_v, st->n_attn_v)) nt = NJ_Q6_K;
        if (st->is_70b && (nt == NJ_Q3_K || nt == NJ_Q4_K)) nt = NJ_Q5_K;
        if (st->n_expert == 8) nt = NJ_Q8_0;
        st->i_attn_v++;
    } else if (c == C_ATTN_K) {
        if (st->n_expert == 8) nt = NJ_Q8_0;
    } else if (c == C_FFN_DOWN) {
        int i_layer = st->i_ffn_down, n_layer = st->n_layer;
        if (st->n_expert > 1 && sscanf(name, "blk.%d.", &i_layer) != 1) i_layer = st->i_ffn_down;
        if (ft == QFT_Q4_K_M) {
            if (st->falcon)
                nt = i_layer < n_layer / 16 ? NJ_Q6_K : more_bits(i_layer, n_layer) ? NJ_Q5_K : NJ_Q4_K;
            else if (more_bits(i_layer, n_layer))
                nt = NJ_Q6_K;
        } else if (ft == QFT_Q5_K_M && more_bits(i_layer, n_layer)) {
            nt = NJ_Q6_K;
        }
        st->i_ffn_down++;
    } else if (c == C_ATTN_OUTPUT) {
        if (!st->falcon && st->n_expert == 8 && ft == QFT_Q4_K_M) nt = NJ_Q5_K;
    }
    return fallback(nt, t->ne[0]);
}

/* NUL-terminated copy of a tensor name (names longer than the writer
 * accepts are cut; the writer then refuses them). */
static void name_of(const gguf_tensor *t, char *buf, size_t cap) {
    size_t n = t->name.len < cap - 1 ? (size_t)t->name.len : cap - 1;
    memcpy(buf, t->name.ptr, n);
    buf[n] = 0;
}

/* llama.cpp's visiting order: by block number (none, -1, first), then by
 * name (bytes, shorter first on a common prefix). */
typedef struct tkey { int layer, idx; gguf_str name; } tkey;

static int cmp_tkeys(const void *a, const void *b) {
    const tkey *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    size_t n = NJ_MIN(x->name.len, y->name.len);
    int c = memcmp(x->name.ptr, y->name.ptr, n);
    if (c) return c;
    return x->name.len < y->name.len ? -1 : x->name.len > y->name.len;
}

static int arch_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_u32(f, key, out);
}

/* Fills order[] (visiting order) and types[] (by file index). */
static int plan_ordered(const gguf_file *f, int ftype, int *types, int *order) {
    if (recipe_base(ftype) < 0) return nj_fail(-EINVAL, "quantize: unknown file type %d", ftype);
    const int n = (int)gguf_n_tensors(f);
    tkey *keys = nj_malloc(sizeof *keys * (size_t)(n ? n : 1));
    if (!keys) return nj_fail(-ENOMEM, "quantize: out of memory");
    plan_state st = {.ftype = ftype, .tied = true};
    char arch[64] = "";
    gguf_str s;
    if (gguf_get_str(f, "general.architecture", &s) == 0 && s.len < sizeof arch) {
        memcpy(arch, s.ptr, s.len);
        arch[s.len] = 0;
    }
    uint32_t v = 0, nh = 0, nkv = 0;
    if (arch_u32(f, arch, "block_count", &v) == 0) st.n_layer = (int)v;
    if (arch_u32(f, arch, "expert_count", &v) == 0) st.n_expert = (int)v;
    if (arch_u32(f, arch, "attention.head_count", &nh) == 0 &&
        arch_u32(f, arch, "attention.head_count_kv", &nkv) != 0)
        nkv = nh;
    st.falcon = !strcmp(arch, "falcon");
    st.is_70b = st.n_layer == 80 && ((!strcmp(arch, "llama") && nh != nkv) || !strcmp(arch, "qwen2"));
    for (int i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, (uint64_t)i);
        char name[GGUF_WRITE_MAX_NAME + 2];
        name_of(t, name, sizeof name);
        if (cat_is_attn_v(category(name))) st.n_attn_v++;
        if (gguf_str_eq(t->name, "output.weight")) st.tied = false;
        keys[i] = (tkey){.layer = -1, .idx = i, .name = t->name};
        if (sscanf(name, "blk.%d.", &keys[i].layer) != 1) keys[i].layer = -1;
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_tkeys);
    for (int k = 0; k < n; k++) order[k] = keys[k].idx;
    nj_free(keys);
    for (int k = 0; k < n; k++) {
        const gguf_tensor *t = gguf_tensor_at(f, (uint64_t)order[k]);
        char name[GGUF_WRITE_MAX_NAME + 2];
        name_of(t, name, sizeof name);
        types[order[k]] = plan_one(&st, t, name);
    }
    return 0;
}

int quantize_plan(const gguf_file *f, int ftype, int *types) {
    int n = (int)gguf_n_tensors(f);
    int *order = nj_malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!order) return nj_fail(-ENOMEM, "quantize: out of memory");
    int rc = plan_ordered(f, ftype, types, order);
    nj_free(order);
    return rc;
}

/* ---- conversion ---- */

typedef struct job {
    const uint8_t   *src;        /* first source row of the slab */
    uint8_t         *dst;        /* slab output */
    size_t           src_row, dst_row;
    int64_t          ne0, nrows, chunk_rows;
    nj_to_float_fn   to_float;
    nj_from_float_fn from_float;
    float          **scratch;    /* per thread: chunk_rows * ne0 floats */
    atomic_llong     next;       /* next chunk */
} job;

static void convert_worker(void *ctx, int ith, int nth) {
    (void)nth;
    job *j = ctx;
    float *f = j->scratch[ith];
    const int64_t n_chunks = (j->nrows + j->chunk_rows - 1) / j->chunk_rows;
    for (;;) {
        int64_t c = atomic_fetch_add(&j->next, 1);
        if (c >= n_chunks) break;
        int64_t r0 = c * j->chunk_rows, nr = NJ_MIN(j->chunk_rows, j->nrows - r0);
        j->to_float(j->src + (size_t)r0 * j->src_row, f, nr * j->ne0);
        j->from_float(f, j->dst + (size_t)r0 * j->dst_row, nr * j->ne0);
    }
}

#define SLAB_BYTES ((size_t)64 << 20)
#define CHUNK_ELEMS 16384

/* The source types a recipe reads without being told to requantize. */
static bool plain_source(int type) {
    return type == NJ_F32 || type == NJ_F16 || type == NJ_BF16 || type == NJ_Q8_0;
}

int quantize_file(const char *in, const char *out, const quantize_params *p) {
    if (!in || !out || !p) return nj_fail(-EINVAL, "quantize: missing argument");
    const int base = recipe_base(p->ftype);
    if (base < 0) return nj_fail(-EINVAL, "quantize: unknown file type %d", p->ftype);
    if (!strcmp(in, out)) return nj_fail(-EINVAL, "quantize: the output must be another file than the input");
    const int nthr = p->n_threads > 0 ? p->n_threads : 2;

    int err = 0, rc = 0;
    gguf_file *f = gguf_open(in, &err);
    if (!f) return err;
    const int n = (int)gguf_n_tensors(f);
    int *types = nj_malloc(sizeof(int) * (size_t)(n ? n : 1));
    int *order = nj_malloc(sizeof(int) * (size_t)(n ? n : 1));
    float **scratch = nj_calloc((size_t)nthr, sizeof *scratch);
    uint8_t *slab = NULL;
    size_t slab_cap = 0;
    nj_pool *pool = NULL;
    gguf_writer *w = NULL;
    if (!types || !order || !scratch) { rc = nj_fail(-ENOMEM, "quantize: out of memory"); goto done; }
    if ((rc = plan_ordered(f, p->ftype, types, order))) goto done;

    /* Check every conversion before writing anything. */
    uint64_t total = 0;
    int64_t max_chunk = 1;
    for (int i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, (uint64_t)i);
        if ((int)t->type == types[i]) continue;
        const nj_type_traits *st = quant_traits_ref((int)t->type);
        if (!st || !st->to_float || t->type == NJ_Q8_1 || t->type == NJ_Q8_K) {
            rc = nj_fail(NJ_EUNSUPPORTED, "quantize: tensor '%.*s' has type %s, which cannot be converted",
                         (int)t->name.len, t->name.ptr, quant_type_name((int)t->type));
            goto done;
        }
        if (type_quantized(types[i]) && !plain_source((int)t->type) && !p->allow_requantize) {
            rc = nj_fail(-EINVAL, "quantize: tensor '%.*s' is already quantized (%s); a %s file is made from "
                         "F32, F16, BF16 or Q8_0 weights (dequantize to F16 first, or allow requantizing)",
                         (int)t->name.len, t->name.ptr, quant_type_name((int)t->type),
                         quantize_ftype_name(p->ftype));
            goto done;
        }
        if (!quant_file_quantizer(types[i])) {
            rc = nj_fail(NJ_EUNSUPPORTED, "quantize: no quantizer for %s", quant_type_name(types[i]));
            goto done;
        }
        uint64_t ne = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) ne *= (uint64_t)t->ne[d];
        total += ne;
        max_chunk = NJ_MAX(max_chunk, NJ_MAX(t->ne[0], (CHUNK_ELEMS / t->ne[0]) * t->ne[0]));
    }

    if (!(w = gguf_writer_new(&rc))) goto done;
    for (uint64_t i = 0; i < gguf_n_kv(f); i++)
        if ((rc = gguf_writer_set_kv(w, gguf_kv_at(f, i)))) goto done;
    if ((rc = gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (rc = gguf_writer_set_u32(w, "general.file_type", (uint32_t)p->ftype)))
        goto done;
    for (int k = 0; k < n; k++) {
        const gguf_tensor *t = gguf_tensor_at(f, (uint64_t)order[k]);
        char name[GGUF_WRITE_MAX_NAME + 2];
        name_of(t, name, sizeof name);
        if (t->name.len > GGUF_WRITE_MAX_NAME) {
            rc = nj_fail(-EINVAL, "quantize: tensor name '%.*s' is too long", (int)t->name.len, t->name.ptr);
            goto done;
        }
        rc = gguf_writer_add_tensor(w, name, t->n_dims, t->ne, (uint32_t)types[order[k]]);
        if (rc < 0) goto done;
    }
    rc = 0;
    for (int i = 0; i < nthr; i++)
        if (!(scratch[i] = nj_malloc(sizeof(float) * (size_t)max_chunk))) {
            rc = nj_fail(-ENOMEM, "quantize: out of memory");
            goto done;
        }
    if (!(pool = pool_new(nthr, &rc))) goto done;
    if ((rc = gguf_writer_open(w, out))) goto done;

    uint64_t done_elems = 0;
    for (int k = 0; k < n; k++) {
        const int i = order[k];
        const gguf_tensor *t = gguf_tensor_at(f, (uint64_t)i);
        const int to = types[i];
        char name[GGUF_WRITE_MAX_NAME + 2];
        name_of(t, name, sizeof name);
        if ((int)t->type == to) {   /* nothing to convert: copy the bytes */
            if ((rc = gguf_writer_write(w, t->data, (size_t)t->nbytes))) goto done;
            continue;
        }
        const int64_t ne0 = t->ne[0], nrows = t->ne[1] * t->ne[2] * t->ne[3];
        const size_t src_row = quant_row_size((int)t->type, ne0), dst_row = quant_row_size(to, ne0);
        int64_t slab_rows = NJ_MAX(1, (int64_t)(SLAB_BYTES / dst_row));
        slab_rows = NJ_MIN(slab_rows, nrows);
        if ((size_t)slab_rows * dst_row > slab_cap) {
            nj_free(slab);
            slab_cap = (size_t)slab_rows * dst_row;
            if (!(slab = nj_malloc(slab_cap))) { slab_cap = 0; rc = nj_fail(-ENOMEM, "quantize: out of memory"); goto done; }
        }
        job j = {
            .ne0 = ne0, .src_row = src_row, .dst_row = dst_row,
            .chunk_rows = NJ_MAX(1, CHUNK_ELEMS / ne0),
            .to_float = quant_traits_ref((int)t->type)->to_float,
            .from_float = quant_file_quantizer(to), .scratch = scratch, .dst = slab,
        };
        for (int64_t r = 0; r < nrows; r += slab_rows) {
            j.src = (const uint8_t *)t->data + (size_t)r * src_row;
            j.nrows = NJ_MIN(slab_rows, nrows - r);
            atomic_store(&j.next, 0);
            pool_run(pool, convert_worker, &j);
            if ((rc = gguf_writer_write(w, slab, (size_t)j.nrows * dst_row))) goto done;
            done_elems += (uint64_t)j.nrows * (uint64_t)ne0;
            if (p->progress) p->progress(p->progress_ctx, done_elems, total, k, n, name, to);
        }
    }
    rc = gguf_writer_finish(w);

done:
    gguf_writer_free(w);   /* removes an unfinished "<out>.part" */
    pool_free(pool);
    if (scratch)
        for (int i = 0; i < nthr; i++) nj_free(scratch[i]);
    nj_free(scratch);
    nj_free(slab);
    nj_free(order);
    nj_free(types);
    gguf_close(f);
    return rc;
}
