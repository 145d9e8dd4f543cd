/*
 * session — the forward pass over one sequence.
 *
 * Buffers.  nj_session_new allocates everything once: the KV cache
 * (n_layer x n_ctx x n_head_kv x head_dim, K and V apart; f16, or q8_0 /
 * q4_0 blocks of 32 along head_dim) and one 64-byte
 * aligned scratch block carved into the activations of a chunk of n_batch
 * tokens (shapes below), the RoPE tables, the per-thread attention
 * workspaces and the matmul scratch sized for the largest product.  The
 * evaluation path never allocates; weights are borrowed views into the
 * model's mmap.
 *
 * Flow.  nj_session_eval splits the tokens into chunks of n_batch and runs
 * each chunk through all layers at once: every projection is one matmul()
 * with n_tok = chunk length (a GEMM), attention is threaded over
 * (token, head) rows with the session's pool, element-wise work (norms,
 * RoPE, activations) runs on the calling thread.  In the last layer only
 * the rows whose logits are wanted go through the output projection and
 * the FFN.
 *
 * Numerics (chosen to reproduce llama.cpp's CPU backend as configured by
 * default, which is flash attention ON and an f16 KV cache):
 *  - RMSNorm: sum of squares in double of f32 products, scale =
 *    1/sqrtf(mean + eps), y = (x * scale) * w, all f32.
 *  - Matmuls quantize the activations to the weight's vec_dot_type (inside
 *    matmul()).  Products with weights llama.cpp repacks (Q4_K with
 *    rows % 8 == 0, ...) or multiplies with tinyBLAS (BF16 of suitable
 *    shape) are summed in one of two orders (kernels.h, "Repacked
 *    orders"): its single-token order for the last
 *    matmul_single_count(type, u) tokens of a product of u tokens (u % 4
 *    for the repacked types; for BF16 the one token of a 1-token product),
 *    its batched order for the others; we pass each matmul how many of
 *    its trailing rows take the single-token order (single_rows).  In the last
 *    layer llama.cpp still multiplies Wo over the whole micro-batch but the
 *    FFN and output only over the rows whose logits are wanted (one row:
 *    GEMV order).
 *  - RoPE: ggml's rope_ext: theta = pos * base^(-2i/n_rot) computed by
 *    repeated f32 multiplication, optional frequency factors, YaRN ramp.
 *  - K and V are rounded to f16 when written to the cache (or quantized
 *    to q8_0 / q4_0 as llama.cpp's CPU backend writes such a cache).
 *  - A quantized cache (q8_0 / q4_0): llama.cpp rotates q, k and v by a
 *    Walsh-Hadamard transform in blocks (fwht_rows) before the cache is
 *    written and rotates the attention output back; ggml neither tiles
 *    nor splits such a cache,
 *    so every query takes the vec path below, with q quantized to q8_0,
 *    q.k as that type's integer dot product, and the V accumulator in
 *    f32 (V rows widened, fused multiply-adds).
 *  - Attention follows ggml's flash_attn_ext, whose path depends on the
 *    shape of llama.cpp's micro-batch (n_ubatch 512) a query falls in:
 *      * micro-batch of >= 64 queries ("tiled"): q in f32, K and V widened
 *        to f32, scores and the V sum in f32, online softmax per 64-key
 *        tile;
 *      * smaller micro-batches, and decoding ("vec"): q rounded to f16,
 *        q.k as an f16 dot product, online softmax one key at a time with
 *        the V accumulator itself held in f16 (rounded after every update);
 *        when one token is decoded against a padded KV length >= 512 the
 *        keys are split into n_threads chunks whose partial results are
 *        combined in f32, as ggml's split-KV path does.  The chunks of
 *        all kv heads are the work units of one pool run (each partial
 *        to its own slot of attn_part); the caller then combines them in
 *        chunk order, so the result is the same for any assignment of
 *        units to threads, and a model with fewer kv heads than threads
 *        (gemma-3-270m has one) still keeps every thread busy.
 *    We emulate the micro-batch split from the position of each token in
 *    the nj_session_eval call, so a prompt passed in one call takes the
 *    same paths as in llama-completion even though our chunks are smaller.
 *  - SwiGLU: silu(g) * u in f32; GeGLU: ggml's f16 table of gelu-tanh
 *    (x rounded to f16, looked up, result widened) times u.
 *  - Final logit softcap: cap * tanh(x * (1/cap)).
 *
 * Threads.  A session is driven by one thread at a time (its caller); the
 * caller's thread is worker 0 of the session's own pool, whose workers only
 * run inside pool_run.  The model is shared read-only.
 */
#include "session.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "attn_ops.h"
#include "kernels.h"
#include "matmul.h"
#include "model.h"
#include "platform.h"
#include "pool.h"
#include "quant.h"
#include "util.h"

#define FA_TILE      64    /* ggml's flash-attention tile, queries and keys */
#define LLAMA_UBATCH 512   /* llama.cpp's default micro-batch */
#define KV_PAD       256   /* llama.cpp pads the KV length it attends over */
#define SPLIT_KV_MIN 512   /* ggml splits decode attention from this length */

struct nj_session {
    nj_model  *m;
    nj_pool   *pool;
    int        n_ctx, n_batch, n_threads, kv_type;
    int        pos;            /* tokens in the cache */
    bool       have_logits;
    int32_t   *hist;           /* (n_ctx) the ids whose KV the cache holds, [0, pos) */
    int        last_reused;    /* tokens the last nj_session_eval_reuse kept */

    /* KV cache.  Layer il, position p: k_cache + (il*n_ctx + p)*k_rb bytes,
     * a row of k_row elements (all kv heads, head after head) in the KV
     * type: f16, or q8_0 / q4_0 blocks of 32 (a head is a whole number of
     * blocks).  Likewise V. */
    uint8_t   *k_cache, *v_cache;
    size_t     k_row, v_row;   /* n_head_kv*head_dim_k, n_head_kv*head_dim_v */
    size_t     k_rb, v_rb;     /* bytes of one row */
    size_t     k_hb, v_hb;     /* bytes of one head's slice of a row */
    bool       kv_quant;       /* q8_0 / q4_0 rather than f16 */
    nj_from_float_fn kv_store; /* f32 row -> cache row */
    nj_from_float_fn q_quant;  /* quantized cache: q -> the K dot's activation type */
    nj_vec_dot_fn    k_dot;    /* quantized cache: K row . quantized q */
    nj_to_float_fn   v_widen;  /* quantized cache: V row -> f32 */
    size_t     qq_rb;          /* bytes of one head's quantized q */
    int        rot_k, rot_v;   /* Hadamard rotation sizes (0: none), see fwht_rows */

    /* Scratch (one block).  B = n_batch, E = n_embd. */
    void      *block;
    float     *x;      /* (B, E) residual stream */
    float     *xn;     /* (B, E) normed input of a projection */
    float     *q;      /* (B, n_head*head_dim_k) */
    float     *k;      /* (B, n_head_kv*head_dim_k) */
    float     *v;      /* (B, n_head_kv*head_dim_v) */
    float     *qkv;    /* (B, q+k+v) fused projection output, or NULL */
    float     *att;    /* (B, n_head*head_dim_v) attention output */
    float     *tmp;    /* (B, E) projection back to the residual width */
    float     *gate;   /* (B, n_ff) */
    float     *up;     /* (B, n_ff) */
    float     *rope_g; /* (B, n_rot) cos/sin pairs, global layers */
    float     *rope_l; /* (B, n_rot) cos/sin pairs, sliding-window layers */
    float     *logits; /* (n_vocab) */
    float     *attn_ws;   /* n_threads x ws_stride floats */
    float     *attn_part; /* split-KV partials: n_threads x n_head x (hv + 2) */
    size_t     ws_stride;
    void      *mm_scratch;
};

/* ---- tables ---- */

static float gelu_tab[1 << 16];
static const attn_ops *ops;   /* set once with the tables */
#define f16_tab attn_f16_tab
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* ggml evaluates gelu through a table indexed by the f16 bits of x. */
static void tables_init(void) {
    const float c = 0.79788456080286535587989211986876f, a = 0.044715f;
    ops = attn_ops_get();   /* also fills attn_f16_tab */
    for (uint32_t i = 0; i < (1u << 16); i++) {
        float x = f16_tab[i];
        float g = 0.5f * x * (1.0f + tanhf(c * x * fma_d(a * x, x, 1.0f)));
        gelu_tab[i] = f16_tab[nj_fp32_to_fp16(g)];
    }
}


/* ---- sizes and layout ---- */

typedef struct layout {
    size_t x, xn, q, k, v, qkv, att, tmp, gate, up, rope_g, rope_l, logits, ws, part, mm;
    size_t ws_stride;   /* floats per thread */
    size_t total;
} layout;

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

static size_t attn_ws_floats(const nj_hparams *hp) {
    size_t hk = (size_t)hp->head_dim_k, hv = (size_t)hp->head_dim_v;
    size_t gq = (size_t)(hp->n_head / hp->n_head_kv);
    /* vec path: per head q, vkq, acc, 4 scalars; one widened K and V row */
    size_t vec = gq * (hk + 2 * hv + 4) + hk + hv;
    /* tiled path: per query row M, S, vkq; K and V tile in f32; scores */
    size_t tiled = FA_TILE * gq * (2 + hv) + FA_TILE * (hk + hv) + FA_TILE * ATTN_KQ_ROWS;
    return (vec + tiled + 15) & ~(size_t)15;
}

static size_t mm_scratch_max(const nj_model *m, int n_tok) {
    size_t mx = 0;
#define MM(W)                                                                     \
    do {                                                                          \
        if ((W).data) {                                                           \
            size_t z = matmul_scratch_size((W).type, (W).cols, n_tok);            \
            if (z > mx) mx = z;                                                   \
        }                                                                         \
    } while (0)
    MM(m->output);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const nj_layer *L = &m->layers[il];
        MM(L->wq); MM(L->wk); MM(L->wv); MM(L->wqkv); MM(L->wo);
        MM(L->w_gate); MM(L->w_up); MM(L->w_down);
    }
#undef MM
    return mx;
}

static bool any_fused(const nj_model *m) {
    for (int il = 0; il < m->hp.n_layer; il++)
        if (m->layers[il].wqkv.data) return true;
    return false;
}

static void make_layout(const nj_model *m, int B, int n_threads, layout *L) {
    const nj_hparams *hp = &m->hp;
    size_t b = (size_t)B, off = 0;
    size_t nq = (size_t)hp->n_head * hp->head_dim_k, nk = (size_t)hp->n_head_kv * hp->head_dim_k;
    size_t nv = (size_t)hp->n_head_kv * hp->head_dim_v, no = (size_t)hp->n_head * hp->head_dim_v;
    size_t E = (size_t)hp->n_embd, F = (size_t)hp->n_ff, R = (size_t)hp->n_rot;
#define PUT(field, bytes) do { L->field = off; off += al64(bytes); } while (0)
    PUT(x, b * E * 4);
    PUT(xn, b * E * 4);
    PUT(q, b * nq * 4);
    PUT(k, b * nk * 4);
    PUT(v, b * nv * 4);
    PUT(qkv, any_fused(m) ? b * (nq + nk + nv) * 4 : 0);
    PUT(att, b * no * 4);
    PUT(tmp, b * E * 4);
    PUT(gate, b * F * 4);
    PUT(up, b * F * 4);
    PUT(rope_g, b * R * 4);
    PUT(rope_l, b * R * 4);
    PUT(logits, (size_t)hp->n_vocab * 4);
    L->ws_stride = attn_ws_floats(hp);
    PUT(ws, (size_t)n_threads * L->ws_stride * 4);
    PUT(part, (size_t)n_threads * (size_t)hp->n_head * (size_t)(hp->head_dim_v + 2) * 4);
    PUT(mm, mm_scratch_max(m, B));
#undef PUT
    L->total = off;
}

uint64_t session_scratch_bytes(const nj_model *m, int n_batch, int n_threads) {
    layout L;
    make_layout(m, n_batch, n_threads, &L);
    return L.total;
}

/* ---- lifecycle ---- */

nj_session *nj_session_new(nj_model *m, const nj_session_params *p, int *err) {
    int rc = 0;
    nj_session *s = NULL;
    if (!m || m->vocab_only || !m->layers) {
        rc = nj_fail(NJ_ESTATE, "model was loaded without weights");
        goto err;
    }
    nj_session_params d = {0};
    if (p) d = *p;
    const int kv_elem = model_kv_elem_type(d.kv_type);
    if (kv_elem < 0) {
        rc = nj_fail(NJ_EUNSUPPORTED, "unknown KV cache type %d (f16, q8_0 and q4_0 are supported)",
                     d.kv_type);
        goto err;
    }
    if (kv_elem != NJ_F16 && (m->hp.head_dim_k % 32 || m->hp.head_dim_v % 32)) {
        rc = nj_fail(NJ_EUNSUPPORTED, "a %s KV cache needs head dimensions that are multiples of 32 "
                     "(this model's are %d and %d); use f16", nj_kv_type_name(d.kv_type),
                     m->hp.head_dim_k, m->hp.head_dim_v);
        goto err;
    }
    if (d.n_ctx < 0 || d.n_batch < 0 || d.n_threads < 0) {
        rc = nj_fail(-EINVAL, "negative session parameter");
        goto err;
    }
    s = nj_calloc(1, sizeof *s);
    if (!s) { rc = -ENOMEM; goto err; }
    s->m = m;
    s->kv_type = d.kv_type;
    s->n_ctx = d.n_ctx ? d.n_ctx : 4096;
    if (s->n_ctx > m->hp.n_ctx_train) s->n_ctx = m->hp.n_ctx_train;
    s->n_batch = d.n_batch ? d.n_batch : 256;
    if (s->n_batch > s->n_ctx) s->n_batch = s->n_ctx;
    s->n_threads = d.n_threads ? d.n_threads : (m->n_threads ? m->n_threads : 2);

    const nj_hparams *hp = &m->hp;
    s->k_row = (size_t)hp->n_head_kv * hp->head_dim_k;
    s->v_row = (size_t)hp->n_head_kv * hp->head_dim_v;
    s->k_rb = (size_t)model_kv_row_bytes(s->kv_type, (int64_t)s->k_row);
    s->v_rb = (size_t)model_kv_row_bytes(s->kv_type, (int64_t)s->v_row);
    s->k_hb = s->k_rb / (size_t)hp->n_head_kv;
    s->v_hb = s->v_rb / (size_t)hp->n_head_kv;
    s->kv_quant = kv_elem != NJ_F16;
    /* Rows are written as llama.cpp's CPU backend writes its cache: f16
     * by rounding, q8_0 with its x86 quantizer (the activation one,
     * kernels' from_float), q4_0 with ggml's reference quantizer. */
    s->kv_store = kv_elem == NJ_Q4_0 ? quant_file_quantizer(NJ_Q4_0) : kernels_traits(kv_elem)->from_float;
    if (s->kv_quant) {
        const nj_type_traits *kt = kernels_traits(kv_elem);
        s->k_dot = kt->vec_dot;
        s->v_widen = kt->to_float;
        s->q_quant = kernels_traits(kt->vec_dot_type)->from_float;
        s->qq_rb = quant_row_size(kt->vec_dot_type, hp->head_dim_k);
    }
    /* llama.cpp rotates q and k (and v and the attention output) of a
     * quantized cache by a Walsh-Hadamard transform: k in blocks of the
     * largest power of two >= 64 dividing head_dim_k, v in blocks of 64. */
    if (s->kv_quant && hp->head_dim_k % 64 == 0) {
        s->rot_k = 64;
        while (hp->head_dim_k % (2 * s->rot_k) == 0) s->rot_k *= 2;
    }
    if (s->kv_quant && hp->head_dim_v % 64 == 0) s->rot_v = 64;
    size_t kv_rows = (size_t)hp->n_layer * (size_t)s->n_ctx;
    s->k_cache = nj_malloc_aligned(kv_rows * s->k_rb);
    s->v_cache = nj_malloc_aligned(kv_rows * s->v_rb);
    s->hist = nj_malloc((size_t)s->n_ctx * sizeof *s->hist);
    if (!s->k_cache || !s->v_cache || !s->hist) {
        rc = nj_fail(-ENOMEM, "out of memory for a %d-token KV cache", s->n_ctx);
        goto err;
    }

    layout L;
    make_layout(m, s->n_batch, s->n_threads, &L);
    s->block = nj_malloc_aligned(L.total);
    if (!s->block) { rc = nj_fail(-ENOMEM, "out of memory for session buffers"); goto err; }
    memset(s->block, 0, L.total);
    char *B = s->block;
    s->x = (float *)(B + L.x);
    s->xn = (float *)(B + L.xn);
    s->q = (float *)(B + L.q);
    s->k = (float *)(B + L.k);
    s->v = (float *)(B + L.v);
    s->qkv = any_fused(m) ? (float *)(B + L.qkv) : NULL;
    s->att = (float *)(B + L.att);
    s->tmp = (float *)(B + L.tmp);
    s->gate = (float *)(B + L.gate);
    s->up = (float *)(B + L.up);
    s->rope_g = (float *)(B + L.rope_g);
    s->rope_l = (float *)(B + L.rope_l);
    s->logits = (float *)(B + L.logits);
    s->attn_ws = (float *)(B + L.ws);
    s->ws_stride = L.ws_stride;
    s->attn_part = (float *)(B + L.part);
    s->mm_scratch = B + L.mm;

    s->pool = pool_new(s->n_threads, &rc);
    if (!s->pool) goto err;
    pthread_once(&tables_once, tables_init);
    if (err) *err = 0;
    return s;
err:
    nj_session_free(s);
    if (err) *err = rc ? rc : -ENOMEM;
    return NULL;
}

void nj_session_free(nj_session *s) {
    if (!s) return;
    if (s->pool) pool_free(s->pool);
    nj_free_aligned(s->block);
    nj_free_aligned(s->k_cache);
    nj_free_aligned(s->v_cache);
    nj_free(s->hist);
    nj_free(s);
}

int nj_session_n_ctx(const nj_session *s) { return s->n_ctx; }
int nj_session_pos(const nj_session *s) { return s->pos; }

int nj_session_truncate(nj_session *s, int pos) {
    if (pos < 0 || pos > s->pos)
        return nj_fail(-EINVAL, "truncate to %d but the cache holds %d tokens", pos, s->pos);
    if (pos < s->pos) s->have_logits = false;
    s->pos = pos;
    return 0;
}

nj_model *session_model(const nj_session *s) { return s->m; }

void session_kv_get(const nj_session *s, session_kv *out) {
    out->k = s->k_cache;
    out->v = s->v_cache;
    out->k_rb = s->k_rb;
    out->v_rb = s->v_rb;
    out->n_ctx = s->n_ctx;
    out->n_layer = s->m->hp.n_layer;
    out->kv_type = s->kv_type;
    out->pos = s->pos;
    out->hist = s->hist;
}

void session_kv_set_pos(nj_session *s, int pos) {
    assert(pos >= 0 && pos <= s->n_ctx);
    s->pos = pos;
    s->have_logits = false;
    s->last_reused = 0;
}

int nj_session_last_reused(const nj_session *s) { return s->last_reused; }

const int32_t *nj_session_tokens(const nj_session *s) { return s->hist; }

void session_set_logits(nj_session *s, const float *row) {
    memcpy(s->logits, row, sizeof(float) * (size_t)s->m->hp.n_vocab);
    s->have_logits = true;
}

const float *nj_session_logits(const nj_session *s) {
    return s->have_logits ? s->logits : NULL;
}

/* ---- element-wise pieces ---- */

/* y = x / rms(x) * w   over rows of n; w may be NULL (no weight). */
static void rmsnorm_rows(float *y, const float *x, const float *w, int rows, int n, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / n);
        const float scale = 1.0f / sqrtf(mean + eps);
        if (w) for (int i = 0; i < n; i++) yr[i] = xr[i] * scale * w[i];
        else   for (int i = 0; i < n; i++) yr[i] = xr[i] * scale;
    }
}

static void add_bias(float *y, const float *b, int rows, int n) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++) y[(size_t)r * n + i] += b[i];
}

static void add_rows(float *y, const float *x, int rows, int n) {
    size_t N = (size_t)rows * n;
    for (size_t i = 0; i < N; i++) y[i] += x[i];
}

static void scale_rows(float *y, float s, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] *= s;
}

/* x (rows, n) = x H_n / sqrt(n) row by row: the orthonormal Walsh-Hadamard
 * transform (Sylvester order, H_n H_n = n I) by which llama.cpp rotates q,
 * k and v when the cache is quantized, so that an outlier dimension is
 * spread over the block before quantization, and rotates the attention
 * output back.  q.k is unchanged in exact arithmetic.  ggml's order: each
 * element scaled first, then butterflies u + v, u - v of span 1, 2, 4, ...
 * (its vector passes compute u - v as fma(v, -1, u), the same value). */
static void fwht_rows(float *x, size_t rows, int n) {
    const float scale = 1.0f / sqrtf((float)n);
    for (size_t r = 0; r < rows; r++) {
        float *y = x + r * (size_t)n;
        for (int j = 0; j < n; j++) y[j] *= scale;
        for (int len = 1; len < n; len <<= 1)
            for (int i = 0; i < n; i += 2 * len)
                for (int j = 0; j < len; j++) {
                    const float u = y[i + j], v = y[i + len + j];
                    y[i + j] = u + v;
                    y[i + len + j] = u - v;
                }
    }
}

/* ---- RoPE ---- */

static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * logf(n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * logf(base));
}

/* cache (n_rot): cos, sin of every rotated pair for position p, as ggml's
 * rope cache: theta_i = p * base^(-2i/n_rot) by repeated multiplication,
 * divided by the frequency factor, YaRN-interpolated. */
static void rope_cache(const nj_hparams *hp, const float *freq_factors, float base, float scale,
                       int p, float *cache) {
    const int nd = hp->n_rot;
    const float theta_scale = powf(base, -2.0f / nd);
    float corr[2];
    {
        float start = floorf(yarn_corr_dim(nd, hp->n_ctx_orig, hp->yarn_beta_fast, base));
        float end = ceilf(yarn_corr_dim(nd, hp->n_ctx_orig, hp->yarn_beta_slow, base));
        corr[0] = start > 0 ? start : 0;
        corr[1] = end < nd - 1 ? end : (float)(nd - 1);
    }
    const float ext = hp->yarn_ext_factor;
    float theta = (float)p;
    for (int i0 = 0; i0 < nd; i0 += 2) {
        const float ff = freq_factors ? freq_factors[i0 / 2] : 1.0f;
        const float theta_extrap = theta / ff;
        const float theta_interp = scale * theta_extrap;
        float th = theta_interp, mscale = hp->yarn_attn_factor;
        if (ext != 0.0f) {
            float y = (i0 / 2 - corr[0]) / fmaxf(0.001f, corr[1] - corr[0]);
            float ramp = 1 - fminf(1, fmaxf(0, y));
            float mix = ramp * ext;
            th = theta_interp * (1 - mix) + theta_extrap * mix;
            mscale *= 1.0f + 0.1f * logf(1.0f / scale);
        }
        cache[i0 + 0] = cosf(th) * mscale;
        cache[i0 + 1] = sinf(th) * mscale;
        theta *= theta_scale;
    }
}

/* Rotate the first n_rot dims of each of n_heads heads (stride hd) in x.
 * x0*c - x1*s is evaluated with the first product fused, as ggml's build
 * contracts it. */
static void rope_apply(float *x, int n_heads, int hd, int n_rot, bool neox, const float *cache) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hd;
        if (neox) {
            const int half = n_rot / 2;
            for (int i0 = 0; i0 < n_rot; i0 += 2) {
                const int ic = i0 / 2;
                const float c = cache[i0], s = cache[i0 + 1];
                const float x0 = v[ic], x1 = v[ic + half];
                v[ic] = fma_d(x0, c, -(x1 * s));
                v[ic + half] = fma_d(x0, s, x1 * c);
            }
        } else {
            for (int i0 = 0; i0 < n_rot; i0 += 2) {
                const float c = cache[i0], s = cache[i0 + 1];
                const float x0 = v[i0], x1 = v[i0 + 1];
                v[i0] = fma_d(x0, c, -(x1 * s));
                v[i0 + 1] = fma_d(x0, s, x1 * c);
            }
        }
    }
}

/* ---- attention ---- */

typedef struct attn_job {
    nj_session *s;
    int         il;
    int         n;        /* tokens in the chunk */
    int         p0;       /* position of the chunk's first token */
    bool        split_ok; /* vec tokens form a single-token micro-batch */
    int         n_tiled;  /* tokens [0, n_tiled) take the tiled path */
    int         n_vec;    /* tokens [n_tiled, n) take the vec path */
    int         nch;      /* > 1: the one vec token's keys split in nch chunks */
    atomic_int  next;     /* next work unit (attn_worker) */
} attn_job;

/* The padded number of cells llama.cpp attends over when the cache holds
 * `used` positions.  Sliding-window layers too: the reference harness runs
 * llama.cpp with llama_context_default_params, whose swa_full gives them a
 * full-size cache, so every layer's cell i holds position i.  (llama-cli
 * and llama-server default to a ring of n_swa + n_ubatch cells instead,
 * whose cell order and chunks differ once a sequence passes it; --swa-full
 * makes them match.) */
static int kv_cells_attended(const nj_session *s, int used) {
    const int size = (s->n_ctx + KV_PAD - 1) / KV_PAD * KV_PAD;
    int padded = (used + KV_PAD - 1) / KV_PAD * KV_PAD;
    if (padded < KV_PAD) padded = KV_PAD;
    return padded < size ? padded : size;
}

/* Vec path over keys [a, b) for the gq query heads sharing kv head kvh:
 * per head an online softmax with the V accumulator in f16 precision, as
 * ggml's one_chunk kernel (which runs each head on its own; the results are
 * per head, so sharing the widened K and V rows changes nothing).
 * qh (gq, hk): queries rounded to f16; M, S (gq); vkq (gq, hv). */
static void attn_vec_range(const nj_session *s, int il, int kvh, int gq, const float *qh, int a,
                           int b, float scale, float *M, float *S, float *vkq, float *kf,
                           float *vf) {
    const nj_hparams *hp = &s->m->hp;
    const int hk = hp->head_dim_k, hv = hp->head_dim_v;
    const uint8_t *K = s->k_cache + ((size_t)il * s->n_ctx * s->k_rb + (size_t)kvh * s->k_hb);
    const uint8_t *V = s->v_cache + ((size_t)il * s->n_ctx * s->v_rb + (size_t)kvh * s->v_hb);
    if (s->kv_quant) {
        /* qh holds the gq heads quantized (rows of qq_rb bytes) */
        ops->vec_range_q(hk, hv, gq, s->k_dot, s->v_widen, K, s->k_rb, V, s->v_rb, qh, s->qq_rb, a,
                         b, scale, M, S, vkq, vf);
        return;
    }
    ops->vec_range(hk, hv, gq, (const uint16_t *)(const void *)K, s->k_row,
                   (const uint16_t *)(const void *)V, s->v_row, qh, a, b, scale, M, S, vkq, kf, vf);
}

/* Chunk c of nch (nch == 1: all keys) of token t's keys, for the gq query
 * heads of kv head kvh on the vec path: the partial M, S (gq) and vkq
 * (gq, hv), S = 0 when the chunk holds no key.  ws: the thread's
 * workspace.  ggml splits the padded cell count into nch equal chunks. */
static void attn_vec_chunk(const attn_job *j, int t, int kvh, int c, int nch, float *ws, float *M,
                           float *S, float *vkq) {
    nj_session *s = j->s;
    const nj_hparams *hp = &s->m->hp;
    const nj_layer *L = &s->m->layers[j->il];
    const int hk = hp->head_dim_k, hv = hp->head_dim_v;
    const int gq = hp->n_head / hp->n_head_kv;
    const int p = j->p0 + t;
    const int lo = (L->swa && hp->n_swa > 0 && p - hp->n_swa + 1 > 0) ? p - hp->n_swa + 1 : 0;
    const int hi = p + 1;   /* keys [lo, hi) */
    float *qh = ws, *kf = qh + (size_t)gq * hk, *vf = kf + hk;
    /* ggml converts q to the K cache's type (f16) for the dot product,
     * or for a quantized cache to that type's activation type (q8_0) */
    const float *q = s->q + (size_t)t * hp->n_head * hk + (size_t)kvh * gq * hk;
    if (s->kv_quant)
        for (int g = 0; g < gq; g++)
            s->q_quant(q + (size_t)g * hk, (uint8_t *)(void *)qh + (size_t)g * s->qq_rb, hk);
    else
        for (int i = 0; i < gq * hk; i++) qh[i] = f16_round(q[i]);
    /* ggml splits the padded cell count into nch equal chunks */
    int a = 0, b = hi;
    if (nch > 1) {
        const int n_kv = kv_cells_attended(s, p + 1);
        const int cs = (n_kv + nch - 1) / nch;
        a = c * cs;
        b = a + cs < n_kv ? a + cs : n_kv;
    }
    if (a < lo) a = lo;
    if (b > hi) b = hi;
    for (int g = 0; g < gq; g++) { M[g] = -INFINITY; S[g] = 0.0f; }
    memset(vkq, 0, sizeof(float) * (size_t)gq * hv);
    if (a < b) attn_vec_range(s, j->il, kvh, gq, qh, a, b, hp->kq_scale, M, S, vkq, kf, vf);
}

/* Token t's output for the heads of kv head kvh from nch chunk partials
 * (part: nch slots of [M (gq) | S (gq) | vkq (gq, hv)]): one chunk is the
 * result; several are combined in f32 in chunk order (empty ones skipped),
 * as ggml's split-KV reduction.  acc (gq, hv), Mf, Sf (gq): scratch. */
static void attn_vec_finish(const attn_job *j, int t, int kvh, int nch, const float *part,
                            float *acc, float *Mf, float *Sf) {
    nj_session *s = j->s;
    const nj_hparams *hp = &s->m->hp;
    const int hv = hp->head_dim_v, gq = hp->n_head / hp->n_head_kv;
    const size_t slot = (size_t)gq * (size_t)(hv + 2);
    if (nch == 1) {   /* single chunk: the result is the chunk */
        memcpy(Sf, part + gq, sizeof(float) * (size_t)gq);
        memcpy(acc, part + 2 * gq, sizeof(float) * (size_t)gq * hv);
    } else {
        for (int g = 0; g < gq; g++) { Mf[g] = -INFINITY; Sf[g] = 0.0f; }
        memset(acc, 0, sizeof(float) * (size_t)gq * hv);
        for (int c = 0; c < nch; c++) {
            const float *M = part + (size_t)c * slot, *S = M + gq, *vkq = S + gq;
            for (int g = 0; g < gq; g++) {
                if (S[g] == 0.0f) continue;
                float *ag = acc + (size_t)g * hv;
                const float *vg = vkq + (size_t)g * hv;
                const float Mn = fmaxf(Mf[g], M[g]);
                const float so = expf(Mf[g] - Mn), sn = expf(M[g] - Mn);
                for (int d = 0; d < hv; d++) ag[d] = fma_d(ag[d], so, vg[d] * sn);
                Sf[g] = fma_d(Sf[g], so, S[g] * sn);
                Mf[g] = Mn;
            }
        }
    }
    for (int g = 0; g < gq; g++) {
        const int h = kvh * gq + g;
        float *out = s->att + (size_t)t * hp->n_head * hv + (size_t)h * hv;
        const float inv = Sf[g] == 0.0f ? 0.0f : 1.0f / Sf[g];
        for (int d = 0; d < hv; d++) out[d] = acc[(size_t)g * hv + d] * inv;
    }
}

/* Token t of the chunk, all query heads of kv head kvh, on the vec path,
 * unsplit: one chunk computed and finished by the same thread. */
static void attn_group_vec(const attn_job *j, int t, int kvh, float *ws) {
    const nj_hparams *hp = &j->s->m->hp;
    const int hk = hp->head_dim_k, hv = hp->head_dim_v;
    const int gq = hp->n_head / hp->n_head_kv;
    /* ws: [M S vkq] slot, then acc, Mf, Sf, then attn_vec_chunk's own */
    float *part = ws, *acc = part + (size_t)gq * (hv + 2), *Mf = acc + (size_t)gq * hv, *Sf = Mf + gq;
    float *cw = Sf + gq;
    (void)hk;
    attn_vec_chunk(j, t, kvh, 0, 1, cw, part, part + gq, part + 2 * gq);
    attn_vec_finish(j, t, kvh, 1, part, acc, Mf, Sf);
}

/* Tiled path for up to FA_TILE consecutive tiled tokens starting at chunk
 * index t0 and all query heads of kv head kvh.  Each key tile is widened to
 * f32 once and used by every query row of the group. */
static void attn_block_tiled(const attn_job *j, int kvh, int t0, int nt, float *ws) {
    nj_session *s = j->s;
    const nj_hparams *hp = &s->m->hp;
    const nj_layer *L = &s->m->layers[j->il];
    const int hk = hp->head_dim_k, hv = hp->head_dim_v;
    const int gq = hp->n_head / hp->n_head_kv;
    const int nr = nt * gq;                    /* query rows in the group */
    const float scale = hp->kq_scale;

    float *ws_t = ws + (size_t)gq * (hk + 2 * hv + 4) + hk + hv;  /* after the vec area */
    float *Ms = ws_t, *Ss = Ms + FA_TILE * gq, *vkq = Ss + FA_TILE * gq;
    float *K32 = vkq + (size_t)FA_TILE * gq * hv, *V32 = K32 + (size_t)FA_TILE * hk;
    float *kq4 = V32 + (size_t)FA_TILE * hv;   /* (ATTN_KQ_ROWS, 64) scores */

    for (int r = 0; r < nr; r++) { Ms[r] = -INFINITY; Ss[r] = 0.0f; }
    memset(vkq, 0, sizeof(float) * (size_t)nr * hv);

    /* (the tiled path runs on an f16 cache only) */
    const uint16_t *K = (const uint16_t *)(const void *)s->k_cache + (size_t)j->il * s->n_ctx * s->k_row + (size_t)kvh * hk;
    const uint16_t *V = (const uint16_t *)(const void *)s->v_cache + (size_t)j->il * s->n_ctx * s->v_row + (size_t)kvh * hv;
    const int p_first = j->p0 + t0, p_last = j->p0 + t0 + nt - 1;
    int k_lo = 0;
    if (L->swa && hp->n_swa > 0 && p_first - hp->n_swa + 1 > 0) k_lo = p_first - hp->n_swa + 1;
    for (int ic = k_lo / FA_TILE * FA_TILE; ic <= p_last; ic += FA_TILE) {
        const int kt = ic + FA_TILE <= p_last + 1 ? FA_TILE : p_last + 1 - ic;
        /* K tile transposed (hk, 64) so the score chains of 64 keys run
         * side by side; V tile (64, hv).  Keys past the tile are zero. */
        for (int tk = 0; tk < FA_TILE; tk++) {
            if (tk < kt) {
                const uint16_t *kr = K + (size_t)(ic + tk) * s->k_row;
                const uint16_t *vr = V + (size_t)(ic + tk) * s->v_row;
                for (int d = 0; d < hk; d++) K32[(size_t)d * FA_TILE + tk] = f16_tab[kr[d]];
                ops->widen_f16(hv, vr, V32 + (size_t)tk * hv);
            } else {
                for (int d = 0; d < hk; d++) K32[(size_t)d * FA_TILE + tk] = 0.0f;
            }
        }
        int r0q = 0, nqg = 0;   /* rows [r0q, r0q + nqg) have scores in kq4 */
        for (int r = 0; r < nr; r++) {
            const int t = t0 + r / gq;
            const int p = j->p0 + t;
            int lo = 0;
            if (L->swa && hp->n_swa > 0 && p - hp->n_swa + 1 > 0) lo = p - hp->n_swa + 1;
            if (ic + kt - 1 < lo || ic > p) continue;      /* tile fully masked */
            /* ggml's tile GEMM: per key one fused multiply-add chain over
             * d; up to ATTN_KQ_ROWS rows share each K load (scores of rows
             * whose tile turns out fully masked are simply not used) */
            if (r >= r0q + nqg) {
                const float *qs[ATTN_KQ_ROWS];
                nqg = nr - r < ATTN_KQ_ROWS ? nr - r : ATTN_KQ_ROWS;
                for (int i = 0; i < nqg; i++) {
                    const int ti = t0 + (r + i) / gq, hi = kvh * gq + (r + i) % gq;
                    qs[i] = s->q + (size_t)ti * hp->n_head * hk + (size_t)hi * hk;
                }
                ops->kq_tile(hk, nqg, qs, K32, kq4);
                r0q = r;
            }
            float *kq = kq4 + (size_t)(r - r0q) * FA_TILE;
            float tmax = -INFINITY;
            for (int tk = 0; tk < FA_TILE; tk++) {
                const int key = ic + tk;
                if (tk >= kt || key < lo || key > p) kq[tk] = -INFINITY;
                else kq[tk] *= scale;
                if (kq[tk] > tmax) tmax = kq[tk];
            }
            float *acc = vkq + (size_t)r * hv;
            const float Mold = Ms[r], Mnew = fmaxf(Mold, tmax);
            if (Mnew > Mold) {
                const float ms = expf(Mold - Mnew);
                for (int d = 0; d < hv; d++) acc[d] *= ms;
                Ss[r] *= ms;
            }
            Ms[r] = Mnew;
            /* softmax over the tile in 16-lane chunks, as ggml's
             * vectorised soft_max: approximate exp, lane-ordered sums */
            double sum = 0.0;
            for (int c0 = 0; c0 < FA_TILE; c0 += 16) sum += ops->softmax16(kq + c0, Mnew);
            Ss[r] = (float)(Ss[r] + sum);
            /* acc += p . V, one fused chain per output element over keys */
            ops->pv_tile(hv, kt, kq, V32, acc);
        }
    }
    for (int r = 0; r < nr; r++) {
        const int t = t0 + r / gq, h = kvh * gq + r % gq;
        float *out = s->att + (size_t)t * hp->n_head * hv + (size_t)h * hv;
        const float inv = Ss[r] == 0.0f ? 0.0f : 1.0f / Ss[r];
        for (int d = 0; d < hv; d++) out[d] = vkq[(size_t)r * hv + d] * inv;
    }
}

/* Work units: tiled blocks first (n_kv_head x ceil(n_tiled/64)), then vec
 * groups (n_vec x n_head_kv), or with a split (nch > 1, one vec token) its
 * n_head_kv x nch chunks, whose partials the caller combines after the
 * run (attn_vec_finish).  Tiled tokens are the first n_tiled of the chunk
 * (the micro-batch emulation guarantees they precede the vec tokens).
 * Threads take units from a shared counter, largest first where sizes are
 * known (causal blocks: the last attends the most keys; split chunks: the
 * last may be short), so a thread that finishes early takes more instead
 * of waiting at the run's end -- a unit can take hundreds of
 * microseconds at long contexts.  Units write disjoint outputs, so the
 * assignment does not change any result. */
static void attn_worker(void *ctx, int ith, int nth) {
    attn_job *j = ctx;
    nj_session *s = j->s;
    const nj_hparams *hp = &s->m->hp;
    float *ws = s->attn_ws + (size_t)ith * s->ws_stride;
    const int n_blocks = (j->n_tiled + FA_TILE - 1) / FA_TILE;
    const int n_tiled_units = n_blocks * hp->n_head_kv;
    const int n_units = n_tiled_units + j->n_vec * hp->n_head_kv * j->nch;
    (void)nth;
    for (;;) {
        const int u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= n_units) break;
        if (u < n_tiled_units) {
            const int blk = n_blocks - 1 - u / hp->n_head_kv, kvh = u % hp->n_head_kv;
            const int t0 = blk * FA_TILE;
            const int nt = j->n_tiled - t0 < FA_TILE ? j->n_tiled - t0 : FA_TILE;
            attn_block_tiled(j, kvh, t0, nt, ws);
        } else if (j->nch > 1) {
            const int r = u - n_tiled_units, c = r / hp->n_head_kv, kvh = r % hp->n_head_kv;
            const int gq = hp->n_head / hp->n_head_kv, hv = hp->head_dim_v;
            float *M = s->attn_part + (size_t)(kvh * j->nch + c) * (size_t)gq * (size_t)(hv + 2);
            attn_vec_chunk(j, j->n_tiled, kvh, c, j->nch, ws, M, M + gq, M + 2 * gq);
        } else {
            const int r = u - n_tiled_units;
            attn_group_vec(j, j->n_tiled + r / hp->n_head_kv, r % hp->n_head_kv, ws);
        }
    }
}

/* After the q, k, v projections of n rows (s->q, s->k, s->v): biases,
 * per-head RMS norm (qwen3, gemma3: heads are rows of head_dim), RoPE at
 * the rows' positions (s->rope_g / rope_l, filled by the caller) and the
 * query scale.  Row by row, so a batch of sessions gets what each alone
 * would. */
static void qkv_finish(nj_session *s, const nj_layer *L, int n) {
    const nj_hparams *hp = &s->m->hp;
    const int hk = hp->head_dim_k, R = hp->n_rot;
    const int nq = hp->n_head * hk, nk = hp->n_head_kv * hk, nv = hp->n_head_kv * hp->head_dim_v;
    if (L->bq) add_bias(s->q, L->bq, n, nq);
    if (L->bk) add_bias(s->k, L->bk, n, nk);
    if (L->bv) add_bias(s->v, L->bv, n, nv);
    if (hp->qk_norm) {
        rmsnorm_rows(s->q, s->q, L->q_norm, n * hp->n_head, hk, hp->rms_eps);
        rmsnorm_rows(s->k, s->k, L->k_norm, n * hp->n_head_kv, hk, hp->rms_eps);
    }
    const float *rc_tab = L->swa ? s->rope_l : s->rope_g;
    for (int t = 0; t < n; t++) {
        const float *c = rc_tab + (size_t)t * R;
        rope_apply(s->q + (size_t)t * nq, hp->n_head, hk, R, hp->rope_neox, c);
        rope_apply(s->k + (size_t)t * nk, hp->n_head_kv, hk, R, hp->rope_neox, c);
    }
    if (hp->q_scale != 1.0f) scale_rows(s->q, hp->q_scale, (size_t)n * nq);
}

/* Write the job's n rows of k and v (s->k, s->v) into the cache at
 * positions p0.. of layer il, then att (n, n_head*hv) = softmax(q k^T *
 * scale + mask) v for its queries (s->q), on `pool` (the session's own, or
 * the pool of a batch's first session: attn_worker takes the session from
 * the job).  job->s, n, p0, n_tiled, n_vec and split_ok are the caller's. */
static void attend(nj_session *s, nj_pool *pool, attn_job *job, int il) {
    const nj_hparams *hp = &s->m->hp;
    const int nk = hp->n_head_kv * hp->head_dim_k, nv = hp->n_head_kv * hp->head_dim_v;
    const int hv = hp->head_dim_v;
    /* cache[il][p0+t] = kv_type(k), kv_type(v) */
    for (int t = 0; t < job->n; t++) {
        size_t row = (size_t)il * s->n_ctx + (size_t)(job->p0 + t);
        s->kv_store(s->k + (size_t)t * nk, s->k_cache + row * s->k_rb, nk);
        s->kv_store(s->v + (size_t)t * nv, s->v_cache + row * s->v_rb, nv);
    }

    /* att (n, n_head*hv) = softmax(q k^T * scale + mask) v */
    job->il = il;
    job->nch = 1;
    /* a split needs a single-token last micro-batch, so <= 1 vec token */
    assert(!job->split_ok || job->n_vec <= 1);
    if (job->split_ok && job->n_vec == 1 &&
        kv_cells_attended(s, job->p0 + job->n_tiled + 1) >= SPLIT_KV_MIN)
        job->nch = s->n_threads;
    atomic_init(&job->next, 0);
    pool_run(pool, attn_worker, job);
    if (job->nch > 1) {
        const int gq = hp->n_head / hp->n_head_kv;
        float *acc = s->attn_ws, *Mf = acc + (size_t)gq * hv, *Sf = Mf + gq;
        for (int kvh = 0; kvh < hp->n_head_kv; kvh++)
            attn_vec_finish(job, job->n_tiled, kvh, job->nch,
                            s->attn_part + (size_t)kvh * job->nch * gq * (size_t)(hv + 2), acc, Mf, Sf);
    }
}

/* ---- forward ---- */

/* Which llama.cpp product a matmul's n rows belong to, for its float
 * order: rows [first, first + n) of an eval call of n_eval tokens that
 * llama.cpp multiplies over their whole micro-batches, or (own) a product
 * of just these n rows (the last layer's wanted rows), or (batch) rows of
 * a batched decode, each a one-token evaluation of its own session. */
typedef struct {
    int  first, n_eval;
    bool own, batch;
} mm_rows;

_Static_assert(LLAMA_UBATCH % 4 == 0, "single-order tokens are the tail of the call");

/* How many of the product's rows llama.cpp multiplies by W in the
 * single-token order (matmul_single_count of the product llama.cpp runs).
 * Over whole micro-batches only the call's last micro-batch, of u tokens,
 * can have single-order tokens (LLAMA_UBATCH is a multiple of 4 and > 1):
 * its last matmul_single_count(u), i.e. the call's last ones. */
static int single_rows(const nj_mat *W, mm_rows r, int n) {
    /* a batch row takes the single-token order when a lone token would */
    if (r.batch) return matmul_single_count(W->type, 1) ? n : 0;
    if (r.own) return matmul_single_count(W->type, n);
    const int u = r.n_eval - (r.n_eval - 1) / LLAMA_UBATCH * LLAMA_UBATCH;
    const int s0 = r.n_eval - matmul_single_count(W->type, u);
    const int k = r.first + n - (r.first > s0 ? r.first : s0);
    return k < 0 ? 0 : k > n ? n : k;
}

/* Y (n, rows) = X (n, cols) @ W^T, each row in llama.cpp's float order for
 * it (matmul_ex). */
static int mm(nj_session *s, const nj_mat *W, const float *X, int n, float *Y, mm_rows r) {
    int rc = matmul_ex(s->pool, W, X, n, Y, s->mm_scratch, single_rows(W, r, n));
    if (rc) return nj_fail(rc, "matmul failed for a %s weight (%lld x %lld)",
                           quant_type_name(W->type), (long long)W->rows, (long long)W->cols);
    return 0;
}

/* Y[i] (n, W[i].rows) = X @ W[i]^T for products sharing X, in one pool
 * run, each row in llama.cpp's float order for it. */
static int mm_multi(nj_session *s, const nj_mat *const *W, float *const *Y, int count,
                    const float *X, int n, mm_rows r) {
    int ns[4];
    for (int i = 0; i < count && i < 4; i++) ns[i] = single_rows(W[i], r, n);
    int rc = matmul_multi(s->pool, W, Y, count, X, n, s->mm_scratch, ns);
    if (rc) return nj_fail(rc, "matmul failed for %d %s-first weights (%lld columns)", count,
                           quant_type_name(W[0]->type), (long long)W[0]->cols);
    return 0;
}

/* q (n, nq), k (n, nk), v (n, nv) = xn (n, E) @ Wq^T, Wk^T, Wv^T from the
 * fused or the separate weights, products in the order r, then qkv_finish
 * (biases, norms, RoPE, query scale).  Returns 0 or the matmul's error. */
static int qkv_project(nj_session *s, const nj_layer *L, int n, mm_rows r) {
    const nj_hparams *hp = &s->m->hp;
    const int nq = hp->n_head * hp->head_dim_k, nk = hp->n_head_kv * hp->head_dim_k;
    const int nv = hp->n_head_kv * hp->head_dim_v;
    int rc;
    if (L->wqkv.data) {
        if ((rc = mm(s, &L->wqkv, s->xn, n, s->qkv, r))) return rc;
        for (int t = 0; t < n; t++) {
            const float *row = s->qkv + (size_t)t * (nq + nk + nv);
            memcpy(s->q + (size_t)t * nq, row, sizeof(float) * nq);
            memcpy(s->k + (size_t)t * nk, row + nq, sizeof(float) * nk);
            memcpy(s->v + (size_t)t * nv, row + nq + nk, sizeof(float) * nv);
        }
    } else {
        const nj_mat *W[3] = {&L->wq, &L->wk, &L->wv};
        float *const Y[3] = {s->q, s->k, s->v};
        if ((rc = mm_multi(s, W, Y, 3, s->xn, n, r))) return rc;
    }
    qkv_finish(s, L, n);
    return 0;
}

/* Drop the pages holding one row of a file-mapped table from the resident
 * set (see nj_model.release_embd).  The range is widened to whole pages but
 * kept inside the table's own pages; a page shared with a neighbouring
 * tensor is simply re-read from the page cache when that tensor is used. */
static void release_row(const nj_mat *t, const uint8_t *row) {
    const uintptr_t pg = (uintptr_t)platform_page_size();
    uintptr_t lo = (uintptr_t)row & ~(pg - 1), hi = ((uintptr_t)row + t->row_bytes + pg - 1) & ~(pg - 1);
    const uintptr_t tlo = (uintptr_t)t->data & ~(pg - 1);
    const uintptr_t thi = ((uintptr_t)t->data + (uintptr_t)t->rows * t->row_bytes + pg - 1) & ~(pg - 1);
    if (lo < tlo) lo = tlo;
    if (hi > thi) hi = thi;
    if (hi > lo) (void)platform_release_pages((void *)lo, hi - lo);
}

/* Run n tokens (n <= n_batch) at positions pos..pos+n-1.  ev0 is the index
 * of ids[0] within the whole eval call of n_eval tokens (for the
 * micro-batch emulation).  out_rows: NULL = logits of the last row only
 * into s->logits; else all n rows into out_rows (n, n_vocab) as well. */
static int forward_chunk(nj_session *s, const int32_t *ids, int n, int ev0, int n_eval,
                         float *out_rows, bool want_logits) {
    const nj_model *m = s->m;
    const nj_hparams *hp = &m->hp;
    const int E = hp->n_embd, F = hp->n_ff;
    const int hk = hp->head_dim_k, hv = hp->head_dim_v, R = hp->n_rot;
    const int nq = hp->n_head * hk, nk = hp->n_head_kv * hk, nv = hp->n_head_kv * hv;
    const int no = hp->n_head * hv;
    const int p0 = s->pos;
    const nj_type_traits *emb = kernels_traits(m->tok_embd.type);
    int rc;

    /* x (n, E) = embd[ids] * embd_scale */
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)ids[t] * m->tok_embd.row_bytes;
        emb->to_float(row, s->x + (size_t)t * E, E);
        if (m->release_embd) release_row(&m->tok_embd, row);
    }
    if (hp->embd_scale != 1.0f) scale_rows(s->x, hp->embd_scale, (size_t)n * E);

    /* RoPE tables (n, n_rot) for global and sliding-window layers. */
    bool any_swa = hp->n_swa > 0;
    for (int t = 0; t < n; t++) {
        rope_cache(hp, m->rope_freqs, hp->rope_base, hp->rope_scale, p0 + t, s->rope_g + (size_t)t * R);
        if (any_swa)
            rope_cache(hp, m->rope_freqs, hp->rope_base_swa, hp->rope_scale_swa, p0 + t,
                       s->rope_l + (size_t)t * R);
    }

    /* The chunk's rows in llama.cpp's products (for the matmul orders). */
    const mm_rows ns = {.first = ev0, .n_eval = n_eval, .own = false};

    /* Attention path per token, from llama.cpp's micro-batch it falls in. */
    attn_job job = {.s = s, .n = n, .p0 = p0};
    {
        int n_tiled = 0;
        /* ggml tiles and splits only f16 caches; a quantized one takes
         * the vec path for every query */
        for (int t = 0; t < n && !s->kv_quant; t++) {
            const int i = ev0 + t;
            const int ub_start = i / LLAMA_UBATCH * LLAMA_UBATCH;
            const int ub_size = n_eval - ub_start < LLAMA_UBATCH ? n_eval - ub_start : LLAMA_UBATCH;
            n_tiled += ub_size >= FA_TILE;
        }
        job.n_tiled = n_tiled;
        job.n_vec = n - n_tiled;
        /* Vec tokens all sit in the call's last micro-batch. */
        job.split_ok = n_eval % LLAMA_UBATCH == 1 && !s->kv_quant;
    }

    for (int il = 0; il < hp->n_layer; il++) {
        const nj_layer *L = &m->layers[il];
        const bool last = il == hp->n_layer - 1;

        /* xn (n, E) = rmsnorm(x) * attn_norm */
        rmsnorm_rows(s->xn, s->x, L->attn_norm, n, E, hp->rms_eps);

        /* q (n, nq), k (n, nk), v (n, nv) = xn @ Wq^T, Wk^T, Wv^T (+ bias) */
        if ((rc = qkv_project(s, L, n, ns))) return rc;
        /* quantized cache: q, k (n, ..) and v rotated in blocks */
        if (s->rot_k) {
            fwht_rows(s->q, (size_t)n * nq / s->rot_k, s->rot_k);
            fwht_rows(s->k, (size_t)n * nk / s->rot_k, s->rot_k);
        }
        if (s->rot_v) fwht_rows(s->v, (size_t)n * nv / s->rot_v, s->rot_v);

        /* cache[il][p0..p0+n) = k, v;  att (n, n_head*hv) = attention */
        attend(s, s->pool, &job, il);

        /* In the last layer only the rows whose logits are wanted go on. */
        int r0 = 0, nr = n;
        if (last) {
            if (!want_logits) return 0;
            if (!out_rows) { r0 = n - 1; nr = 1; }
        }
        float *x = s->x + (size_t)r0 * E;
        /* Wo runs over the whole micro-batch in llama.cpp; the FFN and the
         * output over the wanted rows only (one row when only the last
         * logits are wanted). */
        const mm_rows ns_o = {.first = ev0 + r0, .n_eval = n_eval, .own = false};
        const mm_rows ns_f = {.first = ev0 + r0, .n_eval = n_eval, .own = last && !out_rows};

        /* rotated v: rotate the output rows back (H H = I) */
        if (s->rot_v) fwht_rows(s->att + (size_t)r0 * no, (size_t)nr * no / s->rot_v, s->rot_v);
        /* tmp (nr, E) = att @ Wo^T (+ bo);  gemma3: rmsnorm * post_attn_norm */
        if ((rc = mm(s, &L->wo, s->att + (size_t)r0 * no, nr, s->tmp, ns_o))) return rc;
        if (L->bo) add_bias(s->tmp, L->bo, nr, E);
        if (L->post_attn_norm) rmsnorm_rows(s->tmp, s->tmp, L->post_attn_norm, nr, E, hp->rms_eps);
        add_rows(x, s->tmp, nr, E);

        /* FFN: xn = rmsnorm(x) * ffn_norm; gate, up (nr, F); tmp (nr, E) */
        rmsnorm_rows(s->xn, x, L->ffn_norm, nr, E, hp->rms_eps);
        {
            const nj_mat *W[2] = {&L->w_gate, &L->w_up};
            float *const Y[2] = {s->gate, s->up};
            if ((rc = mm_multi(s, W, Y, 2, s->xn, nr, ns_f))) return rc;
        }
        const size_t nf = (size_t)nr * F;
        if (hp->act == NJ_ACT_SILU) {
            /* silu(g) * u; ggml evaluates each row in 16-wide vectors with
             * its approximate exp and the tail with expf */
            for (int r = 0; r < nr; r++)
                ops->swiglu(F, s->gate + (size_t)r * F, s->up + (size_t)r * F);
        } else {
            ops->geglu((int)nf, s->gate, s->up, gelu_tab);
        }
        if ((rc = mm(s, &L->w_down, s->gate, nr, s->tmp, ns_f))) return rc;
        if (L->post_ffn_norm) rmsnorm_rows(s->tmp, s->tmp, L->post_ffn_norm, nr, E, hp->rms_eps);
        add_rows(x, s->tmp, nr, E);
        if (last) {
            /* logits (nr, n_vocab) = rmsnorm(x) * output_norm @ Wout^T */
            rmsnorm_rows(s->xn, x, m->output_norm, nr, E, hp->rms_eps);
            float *dst = out_rows ? out_rows : s->logits;
            if ((rc = mm(s, &m->output, s->xn, nr, dst, ns_f))) return rc;
            const int V = hp->n_vocab;
            if (m->output_bias) add_bias(dst, m->output_bias, nr, V);
            if (hp->final_softcap > 0.0f) {
                const float cap = hp->final_softcap, inv = 1.0f / cap;
                for (size_t i = 0; i < (size_t)nr * V; i++) dst[i] = tanhf(dst[i] * inv) * cap;
            }
            if (out_rows) memcpy(s->logits, out_rows + (size_t)(nr - 1) * V, sizeof(float) * V);
        }
    }
    return 0;
}

/* session_eval_ex for ids that are the tail of a prompt of n_total tokens
 * whose first n_total - n are already in the cache: every token takes the
 * paths (micro-batch emulation, matmul orders) it would take if the whole
 * prompt were evaluated in one call, so a reused prefix gives the same
 * bits as computing everything from scratch (when the prefix itself was
 * computed on the same paths). */
static int eval_tail(nj_session *s, const int32_t *ids, int n, int n_total, float *all_logits) {
    if (n < 0 || (n > 0 && !ids)) return nj_fail(-EINVAL, "bad token array");
    if (n == 0) return 0;
    if (n > s->n_ctx - s->pos)
        return nj_fail(NJ_ECTX, "%d tokens at position %d exceed the context of %d", n, s->pos,
                       s->n_ctx);
    const int V = s->m->hp.n_vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return nj_fail(-EINVAL, "token id %d out of range [0, %d)", ids[i], V);
    s->have_logits = false;
    for (int i = 0; i < n; i += s->n_batch) {
        const int c = n - i < s->n_batch ? n - i : s->n_batch;
        const bool final = i + c == n;
        float *rows = all_logits ? all_logits + (size_t)i * V : NULL;
        int rc = forward_chunk(s, ids + i, c, n_total - n + i, n_total, rows, final || rows);
        if (rc) return rc;
        memcpy(s->hist + s->pos, ids + i, (size_t)c * sizeof *ids);
        s->pos += c;
    }
    s->have_logits = true;
    return 0;
}

int session_eval_ex(nj_session *s, const int32_t *ids, int n, float *all_logits) {
    return eval_tail(s, ids, n, n, all_logits);
}

int nj_session_eval(nj_session *s, const int32_t *ids, int n) {
    return eval_tail(s, ids, n, n, NULL);
}

int nj_session_eval_reuse(nj_session *s, const int32_t *ids, int n, int *reused) {
    if (reused) *reused = 0;
    if (n <= 0 || !ids) return nj_fail(-EINVAL, "eval_reuse needs at least one token");
    int keep = 0;
    while (keep < n && keep < s->pos && s->hist[keep] == ids[keep]) keep++;
    if (keep == n) keep = n - 1;   /* the last token is evaluated again for its logits */
    int rc = nj_session_truncate(s, keep);
    /* the tail takes the paths it would take in a call of all n tokens */
    if (rc == 0) rc = eval_tail(s, ids + keep, n - keep, n, NULL);
    if (rc < 0) {
        nj_session_truncate(s, 0);   /* a failed chunk leaves no half-written prefix behind */
        s->last_reused = 0;
        return rc;
    }
    if (reused) *reused = keep;
    s->last_reused = keep;
    return 0;
}

/* ---- piecewise evaluation (the service's chunked prefill) ---- */

void session_set_last_reused(nj_session *s, int keep) { s->last_reused = keep; }

int session_prefix_len(const nj_session *s, const int32_t *ids, int n) {
    int k = 0;
    while (k < n && k < s->pos && s->hist[k] == ids[k]) k++;
    return k;
}

/* Tokens [from, from + count) of one nj_session_eval(ids, n) started at
 * position pos - from, in chunks of at most n_batch, with the float order
 * of that call: forward_chunk is told each chunk's index in the whole call,
 * so the micro-batch emulation does not see the cuts (nor does anything
 * else: how a call is cut into chunks never changes a result).  A caller
 * that walks the pieces in order, of any sizes, with other sessions' work
 * in between, leaves the cache exactly as the single call would. */
int session_eval_part(nj_session *s, const int32_t *ids, int n, int from, int count) {
    if (n <= 0 || !ids || from < 0 || count <= 0 || from + count > n)
        return nj_fail(-EINVAL, "bad piece [%d, +%d) of a %d-token evaluation", from, count, n);
    if (n - from > s->n_ctx - s->pos)
        return nj_fail(NJ_ECTX, "%d tokens at position %d exceed the context of %d", n - from, s->pos, s->n_ctx);
    const int V = s->m->hp.n_vocab;
    for (int i = from; i < from + count; i++)
        if (ids[i] < 0 || ids[i] >= V) return nj_fail(-EINVAL, "token id %d out of range [0, %d)", ids[i], V);
    s->have_logits = false;
    for (int i = from; i < from + count; i += s->n_batch) {
        const int c = from + count - i < s->n_batch ? from + count - i : s->n_batch;
        int rc = forward_chunk(s, ids + i, c, i, n, NULL, i + c == n);
        if (rc) return rc;
        memcpy(s->hist + s->pos, ids + i, (size_t)c * sizeof *ids);
        s->pos += c;
    }
    s->have_logits = from + count == n;
    return 0;
}

int session_n_batch(const nj_session *s) { return s->n_batch; }

/* ---- batched decode (the service's continuous batching) ---- */

/* One token for each of n sessions in one pass.  The layout follows
 * forward_chunk for n = 1, row t standing for session ss[t]: the products
 * run over the n rows together in ss[0]'s scratch and pool (weights read
 * once for all rows), each row in the float order of a lone decode step;
 * attention runs per session over its own cache (the row's q, k, v moved
 * to that session's row 0 and its output moved back).  Row-wise steps
 * (norms, RoPE at the row's own position, activations) never mix rows, so
 * every session ends exactly as after nj_session_eval(ss[t], &ids[t], 1). */
int session_decode_batch(nj_session *const *ss, const int32_t *ids, int n, float *logits) {
    if (n <= 0 || !ss || !ids || !logits) return nj_fail(-EINVAL, "bad batch");
    nj_session *s = ss[0];
    const nj_model *m = s->m;
    const nj_hparams *hp = &m->hp;
    if (n > s->n_batch) return nj_fail(-EINVAL, "a batch of %d rows exceeds the chunk of %d", n, s->n_batch);
    for (int t = 0; t < n; t++) {
        const nj_session *u = ss[t];
        if (u->m != m || u->n_threads != s->n_threads)
            return nj_fail(-EINVAL, "batched sessions must share the model and the thread count");
        for (int k = 0; k < t; k++)
            if (ss[k] == u) return nj_fail(-EINVAL, "a session appears twice in one batch");
        if (u->pos >= u->n_ctx)
            return nj_fail(NJ_ECTX, "1 token at position %d exceeds the context of %d", u->pos, u->n_ctx);
        if (ids[t] < 0 || ids[t] >= hp->n_vocab)
            return nj_fail(-EINVAL, "token id %d out of range [0, %d)", ids[t], hp->n_vocab);
    }
    /* A quantized KV cache rotates q, k, v (fwht_rows) in forward_chunk,
     * which this path does not: such sessions step one by one (still
     * batch-invariant, only not faster). */
    bool rotated = false;
    for (int t = 0; t < n; t++) rotated |= ss[t]->rot_k || ss[t]->rot_v;
    if (rotated) {
        for (int t = 0; t < n; t++) {
            int rc1 = nj_session_eval(ss[t], &ids[t], 1);
            if (rc1) return rc1;
            memcpy(logits + (size_t)t * hp->n_vocab, ss[t]->logits, sizeof(float) * (size_t)hp->n_vocab);
        }
        return 0;
    }
    const int E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    const int hk = hp->head_dim_k, hv = hp->head_dim_v, R = hp->n_rot;
    const int nq = hp->n_head * hk, nk = hp->n_head_kv * hk, nv = hp->n_head_kv * hv;
    const int no = hp->n_head * hv;
    const nj_type_traits *emb = kernels_traits(m->tok_embd.type);
    const mm_rows bs = {.batch = true};
    int rc;
    for (int t = 0; t < n; t++) ss[t]->have_logits = false;

    /* x (n, E) = embd[ids] * embd_scale;  RoPE tables (n, n_rot) at each row's position */
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)ids[t] * m->tok_embd.row_bytes;
        emb->to_float(row, s->x + (size_t)t * E, E);
        if (m->release_embd) release_row(&m->tok_embd, row);
        rope_cache(hp, m->rope_freqs, hp->rope_base, hp->rope_scale, ss[t]->pos, s->rope_g + (size_t)t * R);
        if (hp->n_swa > 0)
            rope_cache(hp, m->rope_freqs, hp->rope_base_swa, hp->rope_scale_swa, ss[t]->pos,
                       s->rope_l + (size_t)t * R);
    }
    if (hp->embd_scale != 1.0f) scale_rows(s->x, hp->embd_scale, (size_t)n * E);

    for (int il = 0; il < hp->n_layer; il++) {
        const nj_layer *L = &m->layers[il];

        /* xn (n, E) = rmsnorm(x) * attn_norm;  q (n, nq), k (n, nk), v (n, nv) */
        rmsnorm_rows(s->xn, s->x, L->attn_norm, n, E, hp->rms_eps);
        if ((rc = qkv_project(s, L, n, bs))) return rc;

        /* per session: its cache gets row t's k, v; its row-0 query attends */
        for (int t = 0; t < n; t++) {
            nj_session *u = ss[t];
            if (t > 0) {
                memcpy(u->q, s->q + (size_t)t * nq, sizeof(float) * nq);
                memcpy(u->k, s->k + (size_t)t * nk, sizeof(float) * nk);
                memcpy(u->v, s->v + (size_t)t * nv, sizeof(float) * nv);
            }
            attn_job job = {.s = u, .n = 1, .p0 = u->pos, .split_ok = true, .n_tiled = 0, .n_vec = 1};
            attend(u, s->pool, &job, il);
            if (t > 0) memcpy(s->att + (size_t)t * no, u->att, sizeof(float) * no);
        }

        /* tmp (n, E) = att @ Wo^T (+ bo), then the FFN, as forward_chunk */
        if ((rc = mm(s, &L->wo, s->att, n, s->tmp, bs))) return rc;
        if (L->bo) add_bias(s->tmp, L->bo, n, E);
        if (L->post_attn_norm) rmsnorm_rows(s->tmp, s->tmp, L->post_attn_norm, n, E, hp->rms_eps);
        add_rows(s->x, s->tmp, n, E);
        rmsnorm_rows(s->xn, s->x, L->ffn_norm, n, E, hp->rms_eps);
        {
            const nj_mat *W[2] = {&L->w_gate, &L->w_up};
            float *const Y[2] = {s->gate, s->up};
            if ((rc = mm_multi(s, W, Y, 2, s->xn, n, bs))) return rc;
        }
        if (hp->act == NJ_ACT_SILU) {
            for (int r = 0; r < n; r++) ops->swiglu(F, s->gate + (size_t)r * F, s->up + (size_t)r * F);
        } else {
            /* GeGLU by table is element-wise: rows cannot mix */
            ops->geglu((int)((size_t)n * F), s->gate, s->up, gelu_tab);
        }
        if ((rc = mm(s, &L->w_down, s->gate, n, s->tmp, bs))) return rc;
        if (L->post_ffn_norm) rmsnorm_rows(s->tmp, s->tmp, L->post_ffn_norm, n, E, hp->rms_eps);
        add_rows(s->x, s->tmp, n, E);
    }

    /* logits (n, V) = rmsnorm(x) * output_norm @ Wout^T */
    rmsnorm_rows(s->xn, s->x, m->output_norm, n, E, hp->rms_eps);
    if ((rc = mm(s, &m->output, s->xn, n, logits, bs))) return rc;
    if (m->output_bias) add_bias(logits, m->output_bias, n, V);
    if (hp->final_softcap > 0.0f) {
        const float cap = hp->final_softcap, inv = 1.0f / cap;
        for (size_t i = 0; i < (size_t)n * V; i++) logits[i] = tanhf(logits[i] * inv) * cap;
    }
    for (int t = 0; t < n; t++) {
        nj_session *u = ss[t];
        memcpy(u->logits, logits + (size_t)t * V, sizeof(float) * V);
        u->hist[u->pos++] = ids[t];
        u->have_logits = true;
    }
    return 0;
}
