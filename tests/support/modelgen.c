/*
 * modelgen — random-weight GGUF model writer.  See modelgen.h.
 *
 * The tensor set and metadata keys per architecture mirror what llama.cpp's
 * loader reads (src/models/<arch>.cpp there; facts only):
 *   all    token_embd, output_norm, [output], blk.N.{attn_norm, attn_q,
 *          attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}
 *   qwen2  + blk.N.attn_{q,k,v}.bias
 *   qwen3  + blk.N.attn_{q,k}_norm            (head_dim long)
 *   gemma3 + blk.N.attn_{q,k}_norm, post_attention_norm, post_ffw_norm;
 *          attention.sliding_window (every 6th layer global, llama.cpp's
 *          default pattern), tied embeddings
 *   llama  optional rope_freqs (llama3 rope scaling factors)
 * Shapes are GGUF's: ne[0] is the input (row) length, W (ne0, ne1) maps
 * ne0 -> ne1.
 *
 * Q4_K_M mix (llama.cpp's llama_tensor_get_type rules for that file type,
 * dense models): weights Q4_K; output (and a tied token_embd) Q6_K;
 * attn_v and ffn_down Q6_K in "more bits" layers (the first and last eighth
 * and every third layer between); rows not a multiple of 256 fall back
 * Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->Q4_0, and to F16 when even
 * that does not fit.  1-D tensors (norms, biases, rope factors) stay F32.
 */
#include "modelgen.h"
#include "gguf_write.h"
#include "quant.h"
#include "util.h"

#include <ctype.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- deterministic RNG: splitmix64 seeding, xoshiro256**, Box-Muller ---- */

typedef struct rng { uint64_t s[4]; bool has; double spare; } rng;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_u64(rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}
static double rng_unit(rng *r) { return (double)((rng_u64(r) >> 11) + 1) * 0x1.0p-53; } /* (0, 1] */
static float rng_normal(rng *r) {
    if (r->has) { r->has = false; return (float)r->spare; }
    double u = rng_unit(r), v = rng_unit(r);
    double m = sqrt(-2.0 * log(u));
    r->spare = m * sin(2.0 * M_PI * v);
    r->has = true;
    return (float)(m * cos(2.0 * M_PI * v));
}
static void rng_seed(rng *r, uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;       /* FNV-1a of the name */
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&x);
    r->has = false;
    r->spare = 0;
}

/* ---- presets ---- */

typedef struct preset { const char *name; modelgen_params p; } preset;

#define P(...) {__VA_ARGS__, .type = NJ_F32, .seed = 1, .synth_vocab = 512}
static const preset presets[] = {
    {"tiny-llama",   P(.arch = "llama",  .name = "tiny llama",  .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                       .n_ff = 512, .n_ctx_train = 4096, .rope_theta = 10000.0f, .rms_eps = 1e-5f)},
    {"tiny-qwen2",   P(.arch = "qwen2",  .name = "tiny qwen2",  .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                       .n_ff = 512, .n_ctx_train = 4096, .rope_theta = 1000000.0f, .rms_eps = 1e-6f, .qkv_bias = true)},
    {"tiny-qwen3",   P(.arch = "qwen3",  .name = "tiny qwen3",  .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                       .head_dim = 128, .n_ff = 512, .n_ctx_train = 4096, .rope_theta = 1000000.0f, .rms_eps = 1e-6f,
                       .qk_norm = true, .tied_embd = true)},
    {"tiny-gemma3",  P(.arch = "gemma3", .name = "tiny gemma3", .n_embd = 256, .n_layer = 7, .n_head = 4, .n_head_kv = 1,
                       .head_dim = 64, .n_ff = 512, .n_ctx_train = 4096, .rope_theta = 1000000.0f, .rms_eps = 1e-6f,
                       .qk_norm = true, .tied_embd = true, .sliding_window = 8)},
    {"smollm2-135m", P(.arch = "llama",  .name = "SmolLM2-135M shape", .n_embd = 576, .n_layer = 30, .n_head = 9, .n_head_kv = 3,
                       .n_ff = 1536, .n_ctx_train = 8192, .rope_theta = 100000.0f, .rms_eps = 1e-5f, .tied_embd = true)},
    {"llama3-1b",    P(.arch = "llama",  .name = "Llama-3.2-1B shape", .n_embd = 2048, .n_layer = 16, .n_head = 32, .n_head_kv = 8,
                       .n_ff = 8192, .n_ctx_train = 131072, .rope_theta = 500000.0f, .rms_eps = 1e-5f, .tied_embd = true,
                       .rope_freqs_llama3 = true)},
    {"qwen2-0.5b",   P(.arch = "qwen2",  .name = "Qwen2.5-0.5B shape", .n_embd = 896, .n_layer = 24, .n_head = 14, .n_head_kv = 2,
                       .n_ff = 4864, .n_ctx_train = 32768, .rope_theta = 1000000.0f, .rms_eps = 1e-6f, .qkv_bias = true,
                       .tied_embd = true)},
    {"qwen2-7b",     P(.arch = "qwen2",  .name = "Qwen2.5-7B shape", .n_embd = 3584, .n_layer = 28, .n_head = 28, .n_head_kv = 4,
                       .n_ff = 18944, .n_ctx_train = 32768, .rope_theta = 1000000.0f, .rms_eps = 1e-6f, .qkv_bias = true,
                       .n_vocab = 152064)},
    {"qwen3-0.6b",   P(.arch = "qwen3",  .name = "Qwen3-0.6B shape", .n_embd = 1024, .n_layer = 28, .n_head = 16, .n_head_kv = 8,
                       .head_dim = 128, .n_ff = 3072, .n_ctx_train = 40960, .rope_theta = 1000000.0f, .rms_eps = 1e-6f,
                       .qk_norm = true, .tied_embd = true)},
    {"gemma3-270m",  P(.arch = "gemma3", .name = "Gemma-3-270M shape", .n_embd = 640, .n_layer = 18, .n_head = 4, .n_head_kv = 1,
                       .head_dim = 256, .n_ff = 2048, .n_ctx_train = 32768, .rope_theta = 1000000.0f, .rms_eps = 1e-6f,
                       .qk_norm = true, .tied_embd = true, .sliding_window = 512)},
};
#undef P

int modelgen_preset(const char *name, modelgen_params *p) {
    for (size_t i = 0; i < NJ_ARRAY_LEN(presets); i++)
        if (strcmp(presets[i].name, name) == 0) { *p = presets[i].p; return 0; }
    return nj_fail(-EINVAL, "modelgen: unknown preset '%s' (have %s)", name, modelgen_preset_names());
}

const char *modelgen_preset_names(void) {
    return "tiny-llama, tiny-qwen2, tiny-qwen3, tiny-gemma3, smollm2-135m, llama3-1b, "
           "qwen2-0.5b, qwen2-7b, qwen3-0.6b, gemma3-270m";
}

int modelgen_parse_type(const char *s) {
    if (strcasecmp(s, "Q4_K_M") == 0) return MODELGEN_Q4_K_M;
    static const int ids[] = {NJ_F32, NJ_F16, NJ_BF16, NJ_Q4_0, NJ_Q4_1, NJ_Q5_0, NJ_Q5_1, NJ_Q8_0,
                              NJ_Q2_K, NJ_Q3_K, NJ_Q4_K, NJ_Q5_K, NJ_Q6_K};
    for (size_t i = 0; i < NJ_ARRAY_LEN(ids); i++)
        if (strcasecmp(s, quant_type_name(ids[i])) == 0) return ids[i];
    return -1;
}

/* ---- tensor types ---- */

static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int fallback(int type, int64_t ne0) {
    const nj_type_traits *tt = quant_traits_ref(type);
    if (tt && ne0 % tt->blck == 0) return type;
    int f;
    switch (type) {
    case NJ_Q4_K: f = NJ_Q5_0; break;
    case NJ_Q5_K: f = NJ_Q5_1; break;
    case NJ_Q6_K: f = NJ_Q8_0; break;
    case NJ_Q2_K: case NJ_Q3_K: f = NJ_Q4_0; break;
    default: f = NJ_F16; break;
    }
    tt = quant_traits_ref(f);
    return ne0 % tt->blck == 0 ? f : NJ_F16;
}

int modelgen_tensor_type(const modelgen_params *p, const char *name, int n_dims, int64_t ne0) {
    if (n_dims < 2) return NJ_F32;
    if (p->type != MODELGEN_Q4_K_M) return fallback(p->type, ne0);
    bool is_out = strcmp(name, "output.weight") == 0 ||
                  (p->tied_embd && strcmp(name, "token_embd.weight") == 0);
    int t = NJ_Q4_K, layer = -1;
    if (is_out) {
        if (ne0 % QK_K) return NJ_Q8_0;
        return NJ_Q6_K;
    }
    if (sscanf(name, "blk.%d.", &layer) == 1 &&
        (strstr(name, ".attn_v.") || strstr(name, ".ffn_down.")) && more_bits(layer, p->n_layer))
        t = NJ_Q6_K;
    return fallback(t, ne0);
}

static int ftype_of(int type) {
    switch (type) {
    case NJ_F32: return 0;  case NJ_F16: return 1;  case NJ_Q4_0: return 2; case NJ_Q4_1: return 3;
    case NJ_Q8_0: return 7; case NJ_Q5_0: return 8; case NJ_Q5_1: return 9; case NJ_Q2_K: return 10;
    case NJ_Q3_K: return 11; case NJ_Q4_K: return 14; case NJ_Q5_K: return 16; case NJ_Q6_K: return 18;
    case NJ_BF16: return 32; case MODELGEN_Q4_K_M: return 15;
    default: return 0;
    }
}

/* ---- tensor list ---- */

enum tkind { K_MAT, K_EMB, K_OUT, K_NORM, K_BIAS, K_ROPEF };

typedef struct gtensor {
    char     name[GGUF_WRITE_MAX_NAME + 1];
    int      n_dims;
    int64_t  ne[2];
    int      kind;
    int      type;
} gtensor;

typedef struct tlist { gtensor *t; int n, cap; } tlist;

static int tl_add(tlist *l, const modelgen_params *p, int kind, int64_t ne0, int64_t ne1, const char *fmt, int layer) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        gtensor *t = nj_realloc(l->t, (size_t)cap * sizeof *t);
        if (!t) return nj_fail(-ENOMEM, "modelgen: out of memory");
        l->t = t; l->cap = cap;
    }
    gtensor *g = &l->t[l->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, fmt, layer);
    g->n_dims = ne1 > 0 ? 2 : 1;
    g->ne[0] = ne0;
    g->ne[1] = ne1 > 0 ? ne1 : 1;
    g->kind = kind;
    g->type = modelgen_tensor_type(p, g->name, g->n_dims, ne0);
    return 0;
}

static int build_tensors(const modelgen_params *p, int n_vocab, tlist *l) {
    const int E = p->n_embd, hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    const int Q = p->n_head * hd, KV = p->n_head_kv * hd;
    const bool gemma = strcmp(p->arch, "gemma3") == 0;
    int rc = 0;
#define ADD(kind, a, b, fmt) do { if (!rc) rc = tl_add(l, p, kind, a, b, fmt, i); } while (0)
    int i = 0;
    if (p->rope_freqs_llama3) ADD(K_ROPEF, hd / 2, 0, "rope_freqs.weight");
    ADD(p->tied_embd ? K_OUT : K_EMB, E, n_vocab, "token_embd.weight");
    for (i = 0; i < p->n_layer; i++) {
        ADD(K_NORM, E, 0, "blk.%d.attn_norm.weight");
        ADD(K_MAT, E, Q, "blk.%d.attn_q.weight");
        ADD(K_MAT, E, KV, "blk.%d.attn_k.weight");
        ADD(K_MAT, E, KV, "blk.%d.attn_v.weight");
        if (p->qkv_bias) {
            ADD(K_BIAS, Q, 0, "blk.%d.attn_q.bias");
            ADD(K_BIAS, KV, 0, "blk.%d.attn_k.bias");
            ADD(K_BIAS, KV, 0, "blk.%d.attn_v.bias");
        }
        if (p->qk_norm) {
            ADD(K_NORM, hd, 0, "blk.%d.attn_q_norm.weight");
            ADD(K_NORM, hd, 0, "blk.%d.attn_k_norm.weight");
        }
        ADD(K_MAT, Q, E, "blk.%d.attn_output.weight");
        if (gemma) ADD(K_NORM, E, 0, "blk.%d.post_attention_norm.weight");
        ADD(K_NORM, E, 0, "blk.%d.ffn_norm.weight");
        ADD(K_MAT, E, p->n_ff, "blk.%d.ffn_gate.weight");
        ADD(K_MAT, E, p->n_ff, "blk.%d.ffn_up.weight");
        ADD(K_MAT, p->n_ff, E, "blk.%d.ffn_down.weight");
        if (gemma) ADD(K_NORM, E, 0, "blk.%d.post_ffw_norm.weight");
    }
    ADD(K_NORM, E, 0, "output_norm.weight");
    if (!p->tied_embd) ADD(K_OUT, E, n_vocab, "output.weight");
#undef ADD
    return rc;
}

/* ---- tokenizer ---- */

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* Synthetic SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then
 * pieces "▁", letters, "▁"+letter, letter pairs, "▁"+pair ... until n. */
static int synth_tokenizer(gguf_writer *w, int n) {
    if (n < 300) return nj_fail(-EINVAL, "modelgen: synthetic vocabulary needs >= 300 tokens (got %d)", n);
    char **toks = nj_calloc((size_t)n, sizeof *toks);
    float *scores = nj_calloc((size_t)n, sizeof *scores);
    int32_t *types = nj_calloc((size_t)n, sizeof *types);
    int rc = 0, k = 0;
    if (!toks || !scores || !types) { rc = nj_fail(-ENOMEM, "modelgen: out of memory"); goto out; }
    char buf[32];
#define TOK(str, sc, ty) do { if (k < n) { toks[k] = nj_strdup(str); scores[k] = (sc); types[k] = (ty); \
        if (!toks[k]) { rc = -ENOMEM; goto out; } k++; } } while (0)
    TOK("<unk>", 0.0f, TT_UNKNOWN);
    TOK("<s>", 0.0f, TT_CONTROL);
    TOK("</s>", 0.0f, TT_CONTROL);
    for (int b = 0; b < 256; b++) { snprintf(buf, sizeof buf, "<0x%02X>", b); TOK(buf, 0.0f, TT_BYTE); }
    static const char letters[] = "etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,!?'-:;()";
    const size_t nl = sizeof letters - 1;
    float score = -1.0f;
    TOK("\xe2\x96\x81", score, TT_NORMAL);            /* "▁" */
    for (size_t a = 0; a < nl && k < n; a++) { buf[0] = letters[a]; buf[1] = 0; score -= 1; TOK(buf, score, TT_NORMAL); }
    for (size_t a = 0; a < nl && k < n; a++) {
        snprintf(buf, sizeof buf, "\xe2\x96\x81%c", letters[a]); score -= 1; TOK(buf, score, TT_NORMAL);
    }
    for (size_t a = 0; a < 26 && k < n; a++)
        for (size_t b = 0; b < 26 && k < n; b++) {
            snprintf(buf, sizeof buf, "%c%c", letters[a], letters[b]); score -= 1; TOK(buf, score, TT_NORMAL);
            snprintf(buf, sizeof buf, "\xe2\x96\x81%c%c", letters[a], letters[b]); score -= 1; TOK(buf, score, TT_NORMAL);
        }
    for (int j = 0; k < n; j++) { snprintf(buf, sizeof buf, "[PAD%d]", k); TOK(buf, 0.0f, TT_UNUSED); (void)j; }
#undef TOK
    rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
    if (!rc) rc = gguf_writer_set_arr_cstr(w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)n);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_T_FLOAT32, scores, (uint64_t)n);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, (uint64_t)n);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
out:
    if (toks) for (int i = 0; i < n; i++) nj_free(toks[i]);
    nj_free(toks); nj_free(scores); nj_free(types);
    return rc;
}

/* Open-addressing set of string views (for the merges filter). */
typedef struct sset { gguf_str *slot; uint64_t cap; } sset;
static uint64_t str_hash(const char *p, uint64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h;
}
static bool sset_has(const sset *s, const char *p, uint64_t n) {
    for (uint64_t i = str_hash(p, n) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i].ptr) return false;
        if (s->slot[i].len == n && memcmp(s->slot[i].ptr, p, n) == 0) return true;
    }
}
static void sset_add(sset *s, gguf_str v) {
    uint64_t i = str_hash(v.ptr, v.len) & (s->cap - 1);
    while (s->slot[i].ptr) {
        if (s->slot[i].len == v.len && memcmp(s->slot[i].ptr, v.ptr, v.len) == 0) return;
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = v;
}

/* Copy tokenizer.* from src, resized to n tokens (0 = as is). */
static int copy_tokenizer(gguf_writer *w, const gguf_file *src, int n, int *n_out) {
    uint32_t et; uint64_t n_src; const gguf_str *toks;
    int rc = gguf_get_arr(src, "tokenizer.ggml.tokens", &et, &n_src, NULL, &toks);
    if (rc || et != GGUF_T_STRING)
        return nj_fail(NJ_EFORMAT, "modelgen: tokenizer source has no tokenizer.ggml.tokens string array");
    uint64_t N = n > 0 ? (uint64_t)n : n_src;
    *n_out = (int)N;
    gguf_str *nt = NULL;
    char (*pads)[32] = NULL;
    void *arrbuf = NULL;
    gguf_str *merges = NULL;
    sset set = {0};
    for (uint64_t i = 0; i < gguf_n_kv(src) && !rc; i++) {
        const gguf_kv *kv = gguf_kv_at(src, i);
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0) continue;
        bool special_id = kv->type != GGUF_T_ARRAY && kv->type != GGUF_T_STRING &&
                          kv->key.len > 9 && memcmp(kv->key.ptr + kv->key.len - 9, "_token_id", 9) == 0;
        if (N == n_src || (kv->type != GGUF_T_ARRAY && !special_id)) { rc = gguf_writer_set_kv(w, kv); continue; }
        if (special_id) {                 /* drop special ids that no longer exist */
            if (kv->v.u64 < N) rc = gguf_writer_set_kv(w, kv);
            continue;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)NJ_MIN(kv->key.len, 120), kv->key.ptr);
        if (gguf_str_eq(kv->key, "tokenizer.ggml.merges") && N < n_src) {
            /* keep merges whose left, right and result are all kept tokens */
            set.cap = 1;
            while (set.cap < 2 * N + 2) set.cap <<= 1;
            set.slot = nj_calloc(set.cap, sizeof *set.slot);
            merges = nj_calloc(kv->v.arr.n ? kv->v.arr.n : 1, sizeof *merges);
            char *cat = nj_malloc(4096);
            if (!set.slot || !merges || !cat) { nj_free(cat); rc = nj_fail(-ENOMEM, "modelgen: out of memory"); break; }
            for (uint64_t j = 0; j < N; j++) sset_add(&set, toks[j]);
            uint64_t m = 0;
            for (uint64_t j = 0; j < kv->v.arr.n; j++) {
                gguf_str s = kv->v.arr.strs[j];
                const char *sp = memchr(s.ptr, ' ', s.len);
                if (!sp || s.len > 4096) continue;
                uint64_t la = (uint64_t)(sp - s.ptr), lb = s.len - la - 1;
                memcpy(cat, s.ptr, la); memcpy(cat + la, sp + 1, lb);
                if (sset_has(&set, s.ptr, la) && sset_has(&set, sp + 1, lb) && sset_has(&set, cat, la + lb))
                    merges[m++] = s;
            }
            nj_free(cat);
            rc = gguf_writer_set_arr_str(w, key, merges, m);
            nj_free(merges); merges = NULL;
            nj_free(set.slot); set.slot = NULL;
            continue;
        }
        if (kv->v.arr.n != n_src) { rc = gguf_writer_set_kv(w, kv); continue; }   /* not per-token */
        if (kv->v.arr.type == GGUF_T_STRING) {
            nt = nj_calloc(N, sizeof *nt);
            pads = N > n_src ? nj_calloc(N - n_src, sizeof *pads) : NULL;
            if (!nt || (N > n_src && !pads)) { rc = nj_fail(-ENOMEM, "modelgen: out of memory"); break; }
            for (uint64_t j = 0; j < N; j++) {
                if (j < n_src) nt[j] = kv->v.arr.strs[j];
                else {
                    snprintf(pads[j - n_src], sizeof pads[0], "[PAD%llu]", (unsigned long long)(j & 0xffffffffffull));
                    nt[j] = (gguf_str){pads[j - n_src], strlen(pads[j - n_src])};
                }
            }
            rc = gguf_writer_set_arr_str(w, key, nt, N);
            nj_free(nt); nt = NULL; nj_free(pads); pads = NULL;
        } else {
            uint32_t at = kv->v.arr.type;
            size_t es = at == GGUF_T_FLOAT32 || at == GGUF_T_INT32 || at == GGUF_T_UINT32 ? 4 : 0;
            if (!es) { rc = gguf_writer_set_kv(w, kv); continue; }
            arrbuf = nj_calloc(N, es);
            if (!arrbuf) { rc = nj_fail(-ENOMEM, "modelgen: out of memory"); break; }
            memcpy(arrbuf, kv->v.arr.data, (size_t)(NJ_MIN(N, n_src) * es));
            if (N > n_src && gguf_str_eq(kv->key, "tokenizer.ggml.token_type"))
                for (uint64_t j = n_src; j < N; j++) ((int32_t *)arrbuf)[j] = TT_UNUSED;
            rc = gguf_writer_set_arr(w, key, at, arrbuf, N);
            nj_free(arrbuf); arrbuf = NULL;
        }
    }
    nj_free(nt); nj_free(pads); nj_free(arrbuf); nj_free(merges); nj_free(set.slot);
    return rc;
}

/* ---- metadata ---- */

static int write_meta(gguf_writer *w, const modelgen_params *p, int n_vocab) {
    char k[96];
    const char *a = p->arch;
    const int hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    int rc = 0;
#define KEY(fmt) (snprintf(k, sizeof k, fmt, a), k)
    rc = rc ? rc : gguf_writer_set_str(w, "general.architecture", a);
    rc = rc ? rc : gguf_writer_set_str(w, "general.type", "model");
    rc = rc ? rc : gguf_writer_set_str(w, "general.name", p->name[0] ? p->name : "nightjar random model");
    rc = rc ? rc : gguf_writer_set_str(w, "general.description", "random weights for conformance tests (nightjar modelgen)");
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.block_count"), (uint32_t)p->n_layer);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.context_length"), (uint32_t)p->n_ctx_train);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.embedding_length"), (uint32_t)p->n_embd);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.feed_forward_length"), (uint32_t)p->n_ff);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.attention.head_count"), (uint32_t)p->n_head);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.attention.head_count_kv"), (uint32_t)p->n_head_kv);
    rc = rc ? rc : gguf_writer_set_f32(w, KEY("%s.rope.freq_base"), p->rope_theta);
    rc = rc ? rc : gguf_writer_set_f32(w, KEY("%s.attention.layer_norm_rms_epsilon"), p->rms_eps);
    if (hd * p->n_head != p->n_embd || strcmp(a, "gemma3") == 0 || strcmp(a, "qwen3") == 0) {
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.attention.key_length"), (uint32_t)hd);
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.attention.value_length"), (uint32_t)hd);
    }
    if (strcmp(a, "llama") == 0) {
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.vocab_size"), (uint32_t)n_vocab);
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.rope.dimension_count"), (uint32_t)hd);
    }
    if (p->sliding_window > 0)
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("%s.attention.sliding_window"), (uint32_t)p->sliding_window);
    rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype_of(p->type));
    if (p->type != NJ_F32 && p->type != NJ_F16 && p->type != NJ_BF16)
        rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", 2);
#undef KEY
    return rc;
}

/* ---- values ---- */

static void f32_copy_row(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

/* The quantizer that writes a model file of this type (llama-quantize's:
 * ggml's reference quantizers, so files match what llama.cpp would make). */
static nj_from_float_fn quantizer(int type) {
    if (type == NJ_F32) return f32_copy_row;
    return quant_file_quantizer(type);
}

/* llama3 rope scaling factors (factor 32, low 1, high 4, original 8192),
 * one per frequency pair: rope_freqs (hd/2,). */
static void llama3_rope_factors(const modelgen_params *p, float *out, int n) {
    const int hd = 2 * n;
    const double factor = 32, lo = 1, hi = 4, old = 8192;
    const double lo_wl = old / lo, hi_wl = old / hi;
    for (int i = 0; i < n; i++) {
        double freq = 1.0 / pow(p->rope_theta, (2.0 * i) / hd);
        double wl = 2 * M_PI / freq;
        if (wl < hi_wl) out[i] = 1.0f;
        else if (wl > lo_wl) out[i] = (float)factor;
        else {
            double smooth = (old / wl - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

/* Rows [r0, r1) of one slab: generate and quantize.  Each row has its own
 * generator seeded with (seed, tensor name, row), so the bytes do not depend
 * on the slab size or the number of threads. */
typedef struct slab_job {
    const modelgen_params *p;
    const gtensor *t;
    nj_from_float_fn q;
    float  mean, std;
    size_t row_bytes;
    int64_t base, r0, r1;     /* base: first row of the slab */
    float *fbuf;
    void  *qbuf;
} slab_job;

static void *slab_run(void *arg) {
    const slab_job *j = arg;
    const int64_t ne0 = j->t->ne[0];
    for (int64_t r = j->r0; r < j->r1; r++) {
        rng g;
        char key[GGUF_WRITE_MAX_NAME + 24];
        snprintf(key, sizeof key, "%s#%lld", j->t->name, (long long)r);
        rng_seed(&g, j->p->seed, key);
        float *x = j->fbuf + (r - j->base) * ne0;
        for (int64_t i = 0; i < ne0; i++) x[i] = j->mean + j->std * rng_normal(&g);
        j->q(x, (char *)j->qbuf + (size_t)(r - j->base) * j->row_bytes, ne0);
    }
    return NULL;
}

static int write_tensor(gguf_writer *w, const modelgen_params *p, const gtensor *t,
                        float *fbuf, void *qbuf, int64_t slab_elems) {
    const int64_t ne0 = t->ne[0], rows = t->ne[1];
    nj_from_float_fn q = quantizer(t->type);
    if (!q) return nj_fail(NJ_EUNSUPPORTED, "modelgen: no quantizer for %s (tensor %s)", quant_type_name(t->type), t->name);
    if (t->kind == K_ROPEF) {
        llama3_rope_factors(p, fbuf, (int)ne0);
        q(fbuf, qbuf, ne0);
        return gguf_writer_write(w, qbuf, quant_row_size(t->type, ne0));
    }
    /* Matrices gain 1 (N(0, 1/sqrt(row))): every layer adds O(1) to the
     * residual stream at any shape.  An untied embedding is small next to
     * that, so the last input token does not dominate the logits; the LM
     * head gives logits of standard deviation ~2. */
    float std = 1.0f / sqrtf((float)ne0), mean = 0.0f;
    if (t->kind == K_MAT && (strstr(t->name, "attn_output") || strstr(t->name, "ffn_down"))) std *= 2;
    if (t->kind == K_EMB) std = 0.1f;
    if (t->kind == K_OUT) std = 2.0f / sqrtf((float)p->n_embd);
    if (t->kind == K_NORM) { std = 0.1f; mean = 1.0f; }
    /* gemma3 scales the embedding by sqrt(n_embd) and normalizes each layer's
     * output: larger post-norm weights keep the layers from being drowned
     * by the (tied, so large) embedding. */
    if (t->kind == K_NORM && strstr(t->name, ".post_")) { std = 0.4f; mean = 4.0f; }
    if (t->kind == K_BIAS) std = 0.05f;
    int64_t slab_rows = NJ_MAX(1, slab_elems / ne0);
    size_t row_bytes = quant_row_size(t->type, ne0);
    int nt = p->n_threads > 1 ? NJ_MIN(p->n_threads, 16) : 1;
    for (int64_t r0 = 0; r0 < rows; r0 += slab_rows) {
        int64_t nr = NJ_MIN(slab_rows, rows - r0);
        int use = (int)NJ_MIN((int64_t)nt, nr);
        slab_job jobs[16];
        pthread_t th[16];
        bool started[16] = {false};
        for (int k = 0; k < use; k++) {
            jobs[k] = (slab_job){.p = p, .t = t, .q = q, .mean = mean, .std = std, .row_bytes = row_bytes,
                                 .base = r0, .r0 = r0 + nr * k / use, .r1 = r0 + nr * (k + 1) / use,
                                 .fbuf = fbuf, .qbuf = qbuf};
            /* thread 0's share runs here; others on threads (inline if one cannot start) */
            if (k > 0 && pthread_create(&th[k], NULL, slab_run, &jobs[k]) == 0) started[k] = true;
        }
        slab_run(&jobs[0]);
        for (int k = 1; k < use; k++) {
            if (started[k]) pthread_join(th[k], NULL);
            else slab_run(&jobs[k]);
        }
        int rc = gguf_writer_write(w, qbuf, (size_t)nr * row_bytes);
        if (rc) return rc;
    }
    return 0;
}

static int check_params(const modelgen_params *p) {
    static const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3"};
    bool ok = false;
    for (size_t i = 0; i < NJ_ARRAY_LEN(archs); i++) ok |= strcmp(p->arch, archs[i]) == 0;
    if (!ok) return nj_fail(-EINVAL, "modelgen: unknown architecture '%s'", p->arch);
    if (p->n_embd <= 0 || p->n_layer <= 0 || p->n_head <= 0 || p->n_head_kv <= 0 || p->n_ff <= 0 ||
        p->n_head % p->n_head_kv || p->n_ctx_train <= 0)
        return nj_fail(-EINVAL, "modelgen: bad shape (n_embd %d, n_layer %d, n_head %d, n_head_kv %d, n_ff %d)",
                       p->n_embd, p->n_layer, p->n_head, p->n_head_kv, p->n_ff);
    int hd = p->head_dim ? p->head_dim : p->n_embd / p->n_head;
    if (hd <= 0 || hd % 2 || (!p->head_dim && p->n_embd % p->n_head))
        return nj_fail(-EINVAL, "modelgen: head dimension %d must be even and divide n_embd", hd);
    if (p->type != MODELGEN_Q4_K_M && !quant_traits_ref(p->type))
        return nj_fail(-EINVAL, "modelgen: unknown tensor type %d", p->type);
    return 0;
}

int modelgen_write(const modelgen_params *p, const char *path) {
    int rc = check_params(p);
    if (rc) return rc;
    int err = 0;
    gguf_writer *w = gguf_writer_new(&err);
    if (!w) return err;
    tlist l = {0};
    float *fbuf = NULL;
    void *qbuf = NULL;
    int n_vocab = 0;
    rc = write_meta(w, p, 0);
    if (!rc) {
        if (p->tok_src) rc = copy_tokenizer(w, p->tok_src, p->n_vocab, &n_vocab);
        else { n_vocab = p->n_vocab > 0 ? p->n_vocab : (p->synth_vocab > 0 ? p->synth_vocab : 512); rc = synth_tokenizer(w, n_vocab); }
    }
    if (!rc && strcmp(p->arch, "llama") == 0) rc = gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_vocab);
    if (!rc) rc = build_tensors(p, n_vocab, &l);
    int64_t max_row = 0;
    for (int i = 0; i < l.n && !rc; i++) {
        rc = gguf_writer_add_tensor(w, l.t[i].name, (uint32_t)l.t[i].n_dims, l.t[i].ne, (uint32_t)l.t[i].type);
        rc = rc < 0 ? rc : 0;
        max_row = NJ_MAX(max_row, l.t[i].ne[0]);
        if (!rc && !quantizer(l.t[i].type))
            rc = nj_fail(NJ_EUNSUPPORTED, "modelgen: no quantizer for %s yet", quant_type_name(l.t[i].type));
    }
    /* One slab of ~1M floats (at least one row) for generation and output. */
    int64_t slab = NJ_MAX(max_row, (int64_t)1 << 20);
    if (!rc) {
        fbuf = nj_malloc((size_t)slab * sizeof(float));
        qbuf = nj_malloc((size_t)slab * sizeof(float));
        if (!fbuf || !qbuf) rc = nj_fail(-ENOMEM, "modelgen: out of memory");
    }
    if (!rc) rc = gguf_writer_open(w, path);
    for (int i = 0; i < l.n && !rc; i++) rc = write_tensor(w, p, &l.t[i], fbuf, qbuf, slab);
    if (!rc) rc = gguf_writer_finish(w);
    gguf_writer_free(w);
    nj_free(fbuf);
    nj_free(qbuf);
    nj_free(l.t);
    return rc;
}
