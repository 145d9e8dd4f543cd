/*
 * model — hyper-parameters per architecture and weight binding.  See
 * model.h for the network this describes and the ownership rules.
 *
 * Where the facts come from (read in llama.cpp, not copied):
 *  - keys "<arch>.block_count" ... "<arch>.rope.freq_base" and their
 *    defaults (rope base 10000, rms eps required, head dim n_embd/n_head);
 *  - RoPE flavour: llama rotates adjacent pairs ("NORM"); qwen2, qwen3 and
 *    gemma3 rotate element i with i + n_rot/2 ("NEOX");
 *  - rope scaling: type "none" | "linear" | "yarn", freq_scale = 1/factor;
 *    YaRN sets ext_factor 1 and attn_factor = mscale(factor) / (1 + 0.1 ln
 *    factor) (ggml multiplies the latter back in), times
 *    rope.scaling.attn_factor;
 *  - gemma3: sliding window on layers with il % pattern < pattern - 1
 *    (pattern 6 unless "sliding_window_pattern" says otherwise, which may
 *    also be a per-layer bool array); local layers use rope.freq_base_swa
 *    (default 10000) and no rope scaling; q is multiplied by
 *    1/sqrt(head_dim) (1/sqrt(n_embd/n_head) for the 62-layer 27B) before
 *    attention, which then uses scale 1; embeddings are multiplied by
 *    sqrt(n_embd); the FFN is GELU(tanh)-gated; the converter has already
 *    added 1 to the RMS norm weights, so they are used as stored;
 *  - gemma3 final_logit_softcapping if the key is present.
 */
#include "model.h"
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant.h"
#include "util.h"

static const char *arch_names[NJ_ARCH_COUNT] = {
    [NJ_ARCH_LLAMA] = "llama", [NJ_ARCH_QWEN2] = "qwen2",
    [NJ_ARCH_QWEN3] = "qwen3", [NJ_ARCH_GEMMA3] = "gemma3",
};

const char *model_supported_archs(void) { return "llama, qwen2, qwen3, gemma3"; }

int model_arch_from_name(const char *name, size_t len) {
    for (int a = 0; a < NJ_ARCH_COUNT; a++)
        if (strlen(arch_names[a]) == len && !memcmp(arch_names[a], name, len)) return a;
    return -1;
}

/* ---- hyper-parameters ---- */

/* "<arch>.<suffix>" into buf. */
static const char *akey(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

/* Integer key that may also be stored as a per-layer array whose entries
 * must then all be equal (we support uniform layers only). */
static int get_uniform_u32(const gguf_file *gf, const char *key, uint32_t *out, bool required) {
    int rc = gguf_get_u32(gf, key, out);
    if (rc == 0) return 0;
    if (rc == -ENOENT && !required) return -ENOENT;
    const gguf_kv *kv = gguf_find(gf, key);
    if (!kv) return nj_fail(NJ_EFORMAT, "missing key %s", key);
    if (kv->type == GGUF_T_ARRAY && kv->v.arr.n > 0 &&
        (kv->v.arr.type == GGUF_T_UINT32 || kv->v.arr.type == GGUF_T_INT32)) {
        const uint32_t *a = kv->v.arr.data;
        uint32_t first;
        memcpy(&first, a, 4);
        for (uint64_t i = 1; i < kv->v.arr.n; i++) {
            uint32_t v;
            memcpy(&v, a + i, 4);
            if (v != first)
                return nj_fail(NJ_EUNSUPPORTED, "%s varies per layer (not supported)", key);
        }
        *out = first;
        return 0;
    }
    return nj_fail(NJ_EFORMAT, "key %s has type %s, expected an integer", key,
                   gguf_vtype_name(kv->type));
}

static int get_f32_opt(const gguf_file *gf, const char *key, float *out) {
    int rc = gguf_get_f32(gf, key, out);
    if (rc == -ENOENT) return 0;
    if (rc) return nj_fail(NJ_EFORMAT, "key %s is not a float", key);
    return 0;
}

static int get_u32_opt(const gguf_file *gf, const char *key, uint32_t *out) {
    int rc = get_uniform_u32(gf, key, out, false);
    return rc == -ENOENT ? 0 : rc;
}

int model_load_hparams(const gguf_file *gf, nj_hparams *hp, char *arch_name, size_t cap) {
    memset(hp, 0, sizeof *hp);
    gguf_str as;
    if (gguf_get_str(gf, "general.architecture", &as))
        return nj_fail(NJ_EFORMAT, "general.architecture missing");
    if (arch_name && cap) {
        size_t n = as.len < cap - 1 ? (size_t)as.len : cap - 1;
        memcpy(arch_name, as.ptr, n);
        arch_name[n] = 0;
    }
    int arch = model_arch_from_name(as.ptr, as.len);
    if (arch < 0)
        return nj_fail(NJ_EUNSUPPORTED, "architecture '%.*s' is not supported (supported: %s)",
                       (int)(as.len > 64 ? 64 : as.len), as.ptr, model_supported_archs());
    hp->arch = arch;
    const char *A = arch_names[arch];
    char k[128];
    uint32_t u;
    int rc;

#define REQ_U32(suffix, field)                                                    \
    do {                                                                          \
        if ((rc = get_uniform_u32(gf, akey(k, sizeof k, A, suffix), &u, true))) \
            return rc;                                                            \
        if (u == 0 || u > (1u << 24))                                             \
            return nj_fail(NJ_EFORMAT, "%s = %u is out of range", k, u);          \
        hp->field = (int)u;                                                       \
    } while (0)

    REQ_U32("context_length", n_ctx_train);
    REQ_U32("embedding_length", n_embd);
    REQ_U32("block_count", n_layer);
    REQ_U32("feed_forward_length", n_ff);
    REQ_U32("attention.head_count", n_head);
#undef REQ_U32
    if (hp->n_layer > NJ_MAX_LAYERS)
        return nj_fail(NJ_EUNSUPPORTED, "%d layers (max %d)", hp->n_layer, NJ_MAX_LAYERS);

    hp->n_head_kv = hp->n_head;
    u = 0;
    if ((rc = get_u32_opt(gf, akey(k, sizeof k, A, "attention.head_count_kv"), &u))) return rc;
    if (u) hp->n_head_kv = (int)u;
    if (hp->n_head % hp->n_head_kv)
        return nj_fail(NJ_EFORMAT, "head_count %d is not a multiple of head_count_kv %d",
                       hp->n_head, hp->n_head_kv);

    u = (uint32_t)(hp->n_embd / hp->n_head);
    if ((rc = get_u32_opt(gf, akey(k, sizeof k, A, "attention.key_length"), &u))) return rc;
    hp->head_dim_k = (int)u;
    u = (uint32_t)(hp->n_embd / hp->n_head);
    if ((rc = get_u32_opt(gf, akey(k, sizeof k, A, "attention.value_length"), &u))) return rc;
    hp->head_dim_v = (int)u;
    u = (uint32_t)hp->head_dim_k;
    if ((rc = get_u32_opt(gf, akey(k, sizeof k, A, "rope.dimension_count"), &u))) return rc;
    hp->n_rot = (int)u;
    if (hp->head_dim_k <= 0 || hp->head_dim_v <= 0 || hp->head_dim_k > 1024 ||
        hp->head_dim_v > 1024 || hp->n_rot <= 0 || hp->n_rot > hp->head_dim_k || hp->n_rot % 2)
        return nj_fail(NJ_EFORMAT, "bad head dims: key %d value %d rope %d", hp->head_dim_k,
                       hp->head_dim_v, hp->n_rot);
    if (arch == NJ_ARCH_LLAMA && hp->n_rot != hp->head_dim_k)
        return nj_fail(NJ_EFORMAT, "llama: rope.dimension_count %d != head dim %d", hp->n_rot,
                       hp->head_dim_k);

    if (gguf_get_f32(gf, akey(k, sizeof k, A, "attention.layer_norm_rms_epsilon"), &hp->rms_eps))
        return nj_fail(NJ_EFORMAT, "missing %s", k);
    if (!(hp->rms_eps >= 0.0f && hp->rms_eps < 1.0f))
        return nj_fail(NJ_EFORMAT, "rms epsilon %g out of range", hp->rms_eps);

    /* RoPE. */
    hp->rope_neox = arch != NJ_ARCH_LLAMA;
    hp->rope_base = 10000.0f;
    if ((rc = get_f32_opt(gf, akey(k, sizeof k, A, "rope.freq_base"), &hp->rope_base))) return rc;
    float factor = 0.0f;
    if ((rc = get_f32_opt(gf, akey(k, sizeof k, A, "rope.scaling.factor"), &factor))) return rc;
    if (factor == 0.0f &&
        (rc = get_f32_opt(gf, akey(k, sizeof k, A, "rope.scale_linear"), &factor)))
        return rc;
    hp->rope_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    bool yarn = false;
    gguf_str st;
    if (gguf_get_str(gf, akey(k, sizeof k, A, "rope.scaling.type"), &st) == 0) {
        if (gguf_str_eq(st, "none")) hp->rope_scale = 1.0f;
        else if (gguf_str_eq(st, "yarn")) yarn = true;
        else if (!gguf_str_eq(st, "linear"))
            return nj_fail(NJ_EUNSUPPORTED, "rope scaling type '%.*s' is not supported",
                           (int)(st.len > 32 ? 32 : st.len), st.ptr);
    }
    hp->n_ctx_orig = hp->n_ctx_train;
    u = 0;
    if ((rc = get_u32_opt(gf, akey(k, sizeof k, A, "rope.scaling.original_context_length"), &u)))
        return rc;
    if (u) hp->n_ctx_orig = (int)u;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->yarn_ext_factor = 0.0f;
    hp->yarn_attn_factor = 1.0f;
    if (yarn) {
        float fac = 1.0f / hp->rope_scale;
        float log_mul = 0.0f;
        if ((rc = get_f32_opt(gf, akey(k, sizeof k, A, "rope.scaling.yarn_log_multiplier"),
                              &log_mul)))
            return rc;
        hp->yarn_ext_factor = 1.0f;
#define MSCALE(s, m) ((s) <= 1.0f ? 1.0f : (0.1f * (m) * logf(s) + 1.0f))
        if (log_mul != 0.0f) hp->yarn_attn_factor = MSCALE(fac, 1.0f) / MSCALE(fac, log_mul);
        else hp->yarn_attn_factor = MSCALE(fac, 1.0f);
#undef MSCALE
        hp->yarn_attn_factor *= 1.0f / (1.0f + 0.1f * logf(fac));
    }
    float rope_attn = 1.0f;
    if ((rc = get_f32_opt(gf, akey(k, sizeof k, A, "rope.scaling.attn_factor"), &rope_attn)))
        return rc;
    hp->yarn_attn_factor *= rope_attn;
    hp->rope_base_swa = hp->rope_base;
    hp->rope_scale_swa = hp->rope_scale;

    /* Block structure defaults. */
    hp->q_scale = 1.0f;
    hp->kq_scale = 1.0f / sqrtf((float)hp->head_dim_k);
    hp->act = NJ_ACT_SILU;
    hp->embd_scale = 1.0f;
    hp->n_vocab = 0;
    u = 0;
    if ((rc = get_u32_opt(gf, akey(k, sizeof k, A, "vocab_size"), &u))) return rc;
    hp->n_vocab = (int)u;   /* confirmed against token_embd when binding */

    switch (arch) {
    case NJ_ARCH_LLAMA:
    case NJ_ARCH_QWEN2:
        break;
    case NJ_ARCH_QWEN3:
        hp->qk_norm = true;
        break;
    case NJ_ARCH_GEMMA3: {
        hp->qk_norm = true;
        hp->post_norms = true;
        hp->act = NJ_ACT_GELU_TANH;
        hp->embd_scale = sqrtf((float)hp->n_embd);
        if ((rc = get_f32_opt(gf, akey(k, sizeof k, A, "final_logit_softcapping"),
                              &hp->final_softcap)))
            return rc;
        /* 27B (62 layers) scales by n_embd/n_head, the others by head dim. */
        hp->q_scale = hp->n_layer == 62 ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
                                        : 1.0f / sqrtf((float)hp->head_dim_k);
        hp->kq_scale = 1.0f;
        u = 0;
        if ((rc = get_u32_opt(gf, akey(k, sizeof k, A, "attention.sliding_window"), &u)))
            return rc;
        hp->n_swa = (int)u;
        if (hp->n_swa > 0) {
            hp->rope_base_swa = 10000.0f;
            if ((rc = get_f32_opt(gf, akey(k, sizeof k, A, "rope.freq_base_swa"),
                                  &hp->rope_base_swa)))
                return rc;
            hp->rope_scale_swa = 1.0f;
        }
        break;
    }
    default:
        break;
    }
    if (!(hp->rope_base > 0.0f) || !(hp->rope_base_swa > 0.0f) || !(hp->rope_scale > 0.0f))
        return nj_fail(NJ_EFORMAT, "bad rope parameters");
    return 0;
}

/* Which layers use the sliding window (gemma3).  Pattern key may be a u32
 * period or a per-layer bool array. */
static int load_swa_pattern(nj_model *m) {
    const nj_hparams *hp = &m->hp;
    for (int il = 0; il < hp->n_layer; il++) m->layers[il].swa = false;
    if (hp->n_swa <= 0) return 0;
    char k[128];
    akey(k, sizeof k, arch_names[hp->arch], "attention.sliding_window_pattern");
    const gguf_kv *kv = gguf_find(m->gf, k);
    if (kv && kv->type == GGUF_T_ARRAY) {
        if (kv->v.arr.type != GGUF_T_BOOL || kv->v.arr.n < (uint64_t)hp->n_layer)
            return nj_fail(NJ_EFORMAT, "%s: expected %d bools", k, hp->n_layer);
        const uint8_t *b = kv->v.arr.data;
        for (int il = 0; il < hp->n_layer; il++) m->layers[il].swa = b[il] != 0;
        return 0;
    }
    uint32_t pat = 6;
    int rc = get_u32_opt(m->gf, k, &pat);
    if (rc) return rc;
    for (int il = 0; il < hp->n_layer; il++)
        m->layers[il].swa = pat == 0 || (uint32_t)il % pat < pat - 1;
    return 0;
}

/* ---- tensors ---- */

static const gguf_tensor *find_t(const nj_model *m, const char *fmt, int il) {
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    return gguf_find_tensor(m->gf, name);
}

/* The tensor named fmt % il into *t: NULL if it is absent and optional,
 * an NJ_EFORMAT error naming it if it is absent and required. */
static int lookup_t(const nj_model *m, const char *fmt, int il, bool required, const gguf_tensor **t) {
    *t = find_t(m, fmt, il);
    if (*t || !required) return 0;
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    return nj_fail(NJ_EFORMAT, "tensor %s is missing", name);
}

static int bad_shape(const gguf_tensor *t, const char *want) {
    return nj_fail(NJ_EFORMAT, "tensor %.*s has shape [%lld, %lld, %lld], expected %s",
                   (int)t->name.len, t->name.ptr, (long long)t->ne[0], (long long)t->ne[1],
                   (long long)t->ne[2], want);
}

/* Bind a matrix W (rows, cols): GGUF stores ne = {cols, rows}. */
static int bind_mat(nj_model *m, nj_mat *out, const char *fmt, int il, int64_t rows,
                    int64_t cols, bool required) {
    memset(out, 0, sizeof *out);
    const gguf_tensor *t;
    int rc = lookup_t(m, fmt, il, required, &t);
    if (rc || !t) return rc;
    if (t->n_dims > 2 || t->ne[0] != cols || (rows >= 0 && t->ne[1] != rows)) {
        char want[64];
        snprintf(want, sizeof want, "[%lld, %lld]", (long long)cols, (long long)rows);
        return bad_shape(t, want);
    }
    const nj_type_traits *tr = kernels_traits((int)t->type);
    if (!tr)
        return nj_fail(NJ_EUNSUPPORTED, "tensor %.*s has unsupported type %u (%s)",
                       (int)t->name.len, t->name.ptr, t->type, quant_type_name((int)t->type));
    out->type = (int)t->type;
    out->rows = t->ne[1];
    out->cols = t->ne[0];
    out->row_bytes = quant_row_size((int)t->type, t->ne[0]);
    if (out->row_bytes == 0)
        return nj_fail(NJ_EFORMAT, "tensor %.*s: row of %lld is not a whole number of %s blocks",
                       (int)t->name.len, t->name.ptr, (long long)t->ne[0], tr->name);
    out->data = t->data;
    out->packed = NULL;
    return 0;
}

/* Bind a 1-D f32 vector of n elements: borrowed if stored as aligned F32,
 * else converted into m->f32_store. */
static int bind_vec(nj_model *m, const float **out, const char *fmt, int il, int64_t n,
                    bool required) {
    *out = NULL;
    const gguf_tensor *t;
    int rc = lookup_t(m, fmt, il, required, &t);
    if (rc || !t) return rc;
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1) {
        char want[32];
        snprintf(want, sizeof want, "[%lld]", (long long)n);
        return bad_shape(t, want);
    }
    if (t->type == NJ_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return 0;
    }
    const nj_type_traits *tr = kernels_traits((int)t->type);
    if (!tr || !tr->to_float || n % tr->blck)
        return nj_fail(NJ_EUNSUPPORTED, "1-D tensor %.*s of type %s cannot be converted",
                       (int)t->name.len, t->name.ptr, quant_type_name((int)t->type));
    if (m->f32_store_used + (size_t)n > m->f32_store_len)
        return nj_fail(NJ_EFORMAT, "internal: 1-D tensor store too small");
    float *dst = m->f32_store + m->f32_store_used;
    tr->to_float(t->data, dst, n);
    m->f32_store_used += (size_t)n;
    *out = dst;
    return 0;
}

int model_bind_tensors(nj_model *m) {
    nj_hparams *hp = &m->hp;
    int rc;

    /* Room for every 1-D tensor that is not already F32 (norms, biases). */
    size_t need = 0;
    m->n_params = 0;
    m->weight_bytes = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(m->gf); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->gf, i);
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) ne *= (uint64_t)t->ne[d];
        m->n_params += ne;
        m->weight_bytes += t->nbytes;
        if (t->n_dims == 1 && t->type != NJ_F32) need += (size_t)t->ne[0];
    }
    if (need) {
        m->f32_store = nj_calloc(need, sizeof(float));
        if (!m->f32_store) return nj_fail(-ENOMEM, "out of memory for 1-D weights");
        m->f32_store_len = need;
    }

    const int64_t E = hp->n_embd;
    if ((rc = bind_mat(m, &m->tok_embd, "token_embd.weight", 0, -1, E, true))) return rc;
    if (m->tok_embd.rows <= 0 || m->tok_embd.rows > (1 << 24))
        return nj_fail(NJ_EFORMAT, "token_embd has %lld rows", (long long)m->tok_embd.rows);
    if (hp->n_vocab && hp->n_vocab != m->tok_embd.rows)
        NJ_WARN("vocab_size %d differs from token_embd rows %lld; using the tensor", hp->n_vocab,
                (long long)m->tok_embd.rows);
    hp->n_vocab = (int)m->tok_embd.rows;
    {
        const nj_type_traits *tr = kernels_traits(m->tok_embd.type);
        if (!tr || !tr->to_float)
            return nj_fail(NJ_EUNSUPPORTED, "token_embd type %s cannot be dequantized",
                           quant_type_name(m->tok_embd.type));
    }
    if ((rc = bind_vec(m, &m->output_norm, "output_norm.weight", 0, E, true))) return rc;
    if ((rc = bind_mat(m, &m->output, "output.weight", 0, hp->n_vocab, E, false))) return rc;
    m->tied_output = m->output.data == NULL;
    if (m->tied_output) m->output = m->tok_embd;
    m->release_embd = !m->tied_output && gguf_is_mapped(m->gf);
    if ((rc = bind_vec(m, &m->output_bias, "output.bias", 0, hp->n_vocab, false))) return rc;
    if ((rc = bind_vec(m, &m->rope_freqs, "rope_freqs.weight", 0, hp->n_rot / 2, false)))
        return rc;

    m->layers = nj_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return nj_fail(-ENOMEM, "out of memory for layers");
    if ((rc = load_swa_pattern(m))) return rc;

    const int64_t nq = (int64_t)hp->n_head * hp->head_dim_k;
    const int64_t nk = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t nv = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int64_t no = (int64_t)hp->n_head * hp->head_dim_v;
    const int64_t F = hp->n_ff;
    for (int il = 0; il < hp->n_layer; il++) {
        nj_layer *L = &m->layers[il];
        if ((rc = bind_vec(m, &L->attn_norm, "blk.%d.attn_norm.weight", il, E, true))) return rc;
        if ((rc = bind_mat(m, &L->wqkv, "blk.%d.attn_qkv.weight", il, nq + nk + nv, E, false)))
            return rc;
        bool fused = L->wqkv.data != NULL;
        if ((rc = bind_mat(m, &L->wq, "blk.%d.attn_q.weight", il, nq, E, !fused))) return rc;
        if ((rc = bind_mat(m, &L->wk, "blk.%d.attn_k.weight", il, nk, E, !fused))) return rc;
        if ((rc = bind_mat(m, &L->wv, "blk.%d.attn_v.weight", il, nv, E, !fused))) return rc;
        if (fused && find_t(m, "blk.%d.attn_qkv.bias", il))
            return nj_fail(NJ_EUNSUPPORTED, "fused attn_qkv bias is not supported");
        if ((rc = bind_vec(m, &L->bq, "blk.%d.attn_q.bias", il, nq, false))) return rc;
        if ((rc = bind_vec(m, &L->bk, "blk.%d.attn_k.bias", il, nk, false))) return rc;
        if ((rc = bind_vec(m, &L->bv, "blk.%d.attn_v.bias", il, nv, false))) return rc;
        if ((rc = bind_mat(m, &L->wo, "blk.%d.attn_output.weight", il, E, no, true))) return rc;
        if ((rc = bind_vec(m, &L->bo, "blk.%d.attn_output.bias", il, E, false))) return rc;
        if ((rc = bind_vec(m, &L->q_norm, "blk.%d.attn_q_norm.weight", il, hp->head_dim_k,
                           hp->qk_norm)))
            return rc;
        if ((rc = bind_vec(m, &L->k_norm, "blk.%d.attn_k_norm.weight", il, hp->head_dim_k,
                           hp->qk_norm)))
            return rc;
        if ((rc = bind_vec(m, &L->post_attn_norm, "blk.%d.post_attention_norm.weight", il, E,
                           hp->post_norms)))
            return rc;
        if ((rc = bind_vec(m, &L->ffn_norm, "blk.%d.ffn_norm.weight", il, E, true))) return rc;
        if ((rc = bind_mat(m, &L->w_gate, "blk.%d.ffn_gate.weight", il, F, E, true))) return rc;
        if ((rc = bind_mat(m, &L->w_up, "blk.%d.ffn_up.weight", il, F, E, true))) return rc;
        if ((rc = bind_mat(m, &L->w_down, "blk.%d.ffn_down.weight", il, E, F, true))) return rc;
        if ((rc = bind_vec(m, &L->post_ffn_norm, "blk.%d.post_ffw_norm.weight", il, E,
                           hp->post_norms)))
            return rc;
        if (find_t(m, "blk.%d.ffn_gate_inp.weight", il))
            return nj_fail(NJ_EUNSUPPORTED, "mixture-of-experts layers are not supported");
        if (find_t(m, "blk.%d.ffn_up.bias", il) || find_t(m, "blk.%d.ffn_down.bias", il) ||
            find_t(m, "blk.%d.ffn_gate.bias", il))
            return nj_fail(NJ_EUNSUPPORTED, "FFN biases are not supported");
    }
    return 0;
}

/* ---- sizes ---- */

int model_kv_elem_type(int kv_type) {
    switch (kv_type) {
    case NJ_KV_F16:  return NJ_F16;
    case NJ_KV_Q8_0: return NJ_Q8_0;
    case NJ_KV_Q4_0: return NJ_Q4_0;
    default:         return -1;
    }
}

uint64_t model_kv_row_bytes(int kv_type, int64_t n) {
    const int t = model_kv_elem_type(kv_type);
    return t < 0 ? 0 : quant_row_size(t, n);
}

uint64_t model_kv_bytes(const nj_model *m, int n_ctx, int kv_type) {
    const nj_hparams *hp = &m->hp;
    const int64_t nk = (int64_t)hp->n_head_kv * hp->head_dim_k, nv = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const uint64_t per_pos = model_kv_row_bytes(kv_type, nk) + model_kv_row_bytes(kv_type, nv);
    return per_pos * (uint64_t)n_ctx * (uint64_t)hp->n_layer;
}
