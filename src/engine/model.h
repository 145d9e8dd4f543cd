/*
 * model — architecture hyper-parameters and weight binding.
 *
 * Purpose.  Turn a GGUF file into an nj_model: read the hyper-parameters of
 * one of the supported architectures (llama, qwen2, qwen3, gemma3) into one
 * flat nj_hparams, and bind every weight tensor by name to a borrowed view
 * (nj_mat) into the file's mmap.  The forward pass itself lives in session.c;
 * this module only describes *what* the network is.
 *
 * Design.  The four architectures are one decoder-only transformer with
 * switches, so there is no per-architecture code path in the forward pass,
 * only flags in nj_hparams:
 *
 *   x = embd[tok] * embd_scale                       (gemma3: sqrt(n_embd))
 *   per layer:
 *     h  = rmsnorm(x) * attn_norm
 *     q,k,v = h @ Wq,Wk,Wv (+ bias: qwen2)            (or one fused Wqkv)
 *     q,k = rmsnorm_per_head(q,k) * q_norm,k_norm    (qwen3, gemma3)
 *     q,k = rope(q,k, pos)   NORM pairs (llama) | NEOX halves (others)
 *     a  = softmax(q k^T * scale + causal/sliding mask) v
 *     a  = a @ Wo
 *     a  = rmsnorm(a) * post_attn_norm               (gemma3 sandwich)
 *     x  = x + a
 *     h  = rmsnorm(x) * ffn_norm
 *     f  = (act(h @ Wgate) * (h @ Wup)) @ Wdown      act = SiLU | GELU-tanh
 *     f  = rmsnorm(f) * post_ffn_norm                (gemma3 sandwich)
 *     x  = x + f
 *   logits = rmsnorm(x) * output_norm @ Wout         (Wout = embd if absent)
 *   logits = cap * tanh(logits / cap)                (final softcap, if set)
 *
 * The facts (key names, defaults, which RoPE flavour each architecture
 * uses, gemma3's layer pattern and attention scale) are taken from reading
 * llama.cpp's llama-model.cpp and models/ sources; the code is our own.
 *
 * Ownership.  nj_model owns the gguf_file (and so the mapping), the layer
 * table, and a small block of f32 copies for 1-D tensors (norm weights,
 * biases) that are not stored as F32.  Weight matrices are never copied.
 * After load the model is read-only and may be shared by sessions on any
 * threads.
 */
#ifndef NJ_MODEL_H
#define NJ_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "matmul.h"
#include "nightjar.h"

enum nj_arch { NJ_ARCH_LLAMA = 0, NJ_ARCH_QWEN2, NJ_ARCH_QWEN3, NJ_ARCH_GEMMA3, NJ_ARCH_COUNT };
enum nj_act  { NJ_ACT_SILU = 0, NJ_ACT_GELU_TANH };

#define NJ_MAX_LAYERS 512

/* Everything the forward pass needs to know about the network's shape. */
typedef struct nj_hparams {
    int   arch;            /* enum nj_arch */
    int   n_vocab;
    int   n_ctx_train;
    int   n_embd;
    int   n_layer;
    int   n_head;          /* query heads */
    int   n_head_kv;       /* key/value heads (GQA: n_head % n_head_kv == 0) */
    int   head_dim_k;      /* attention.key_length (default n_embd / n_head) */
    int   head_dim_v;      /* attention.value_length */
    int   n_ff;
    int   n_rot;           /* rope.dimension_count (<= head_dim_k, even) */
    float rms_eps;

    /* RoPE.  Global layers use (rope_base, rope_scale); sliding-window
     * layers use (rope_base_swa, rope_scale_swa).  YaRN parameters as
     * ggml's rope_ext takes them (ext_factor 0 = plain linear scaling). */
    bool  rope_neox;       /* NEOX: rotate (i, i + n_rot/2); else (2i, 2i+1) */
    float rope_base, rope_scale;
    float rope_base_swa, rope_scale_swa;
    float yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
    int   n_ctx_orig;      /* rope.scaling.original_context_length */

    /* Attention. */
    int   n_swa;           /* sliding window (0 = none) */
    float q_scale;         /* multiply q by this before attention (gemma3), else 1 */
    float kq_scale;        /* multiply q.k by this inside attention */
    bool  qk_norm;         /* per-head RMS norm of q and k before RoPE */

    /* Block structure. */
    bool  post_norms;      /* gemma3 post_attention_norm / post_ffw_norm */
    int   act;             /* enum nj_act */
    float embd_scale;      /* multiply the token embedding (1 = none) */
    float final_softcap;   /* 0 = none */
} nj_hparams;

/* One transformer block.  1-D weights are f32 arrays of the stated length
 * (NULL when absent); matrices are borrowed views (data NULL when absent). */
typedef struct nj_layer {
    bool         swa;             /* sliding-window layer */
    const float *attn_norm;       /* (n_embd) */
    nj_mat       wq;              /* (n_head*head_dim_k, n_embd) */
    nj_mat       wk;              /* (n_head_kv*head_dim_k, n_embd) */
    nj_mat       wv;              /* (n_head_kv*head_dim_v, n_embd) */
    nj_mat       wqkv;            /* fused (q+k+v rows, n_embd), or data NULL */
    const float *bq, *bk, *bv;    /* biases (rows of wq, wk, wv) */
    const float *q_norm, *k_norm; /* (head_dim_k) */
    nj_mat       wo;              /* (n_embd, n_head*head_dim_v) */
    const float *bo;              /* (n_embd) */
    const float *post_attn_norm;  /* (n_embd) */
    const float *ffn_norm;        /* (n_embd) */
    nj_mat       w_gate;          /* (n_ff, n_embd) */
    nj_mat       w_up;            /* (n_ff, n_embd) */
    nj_mat       w_down;          /* (n_embd, n_ff) */
    const float *post_ffn_norm;   /* (n_embd) */
} nj_layer;

struct nj_model {
    gguf_file   *gf;
    nj_hparams   hp;
    nj_layer    *layers;          /* n_layer entries */
    nj_mat       tok_embd;        /* (n_vocab, n_embd), rows fetched by id */
    nj_mat       output;          /* (n_vocab, n_embd); = tok_embd when tied */
    const float *output_norm;     /* (n_embd) */
    const float *output_bias;     /* (n_vocab) or NULL */
    const float *rope_freqs;      /* (n_rot/2) llama3 frequency factors, or NULL */
    bool         tied_output;
    /* Untied token_embd in a file mapping: the session drops the pages of
     * the rows it read from the resident set after each lookup (the page
     * cache keeps them), so a huge table never becomes RSS.  The memory
     * estimate counts no embedding rows then. */
    bool         release_embd;

    float       *f32_store;       /* owned: converted 1-D weights */
    size_t       f32_store_len, f32_store_used;

    struct nj_tok *tok;           /* tokenizer (tokenizer.h), owned; NULL if it failed */
    int          tok_err;         /* why tok is NULL */
    char         tok_msg[160];
    int          chat_tmpl;       /* enum chat_tmpl of the file's template, or < 0 */
    char         chat_msg[160];   /* why chat_tmpl < 0 */
    int          n_threads;       /* default compute threads */
    bool         vocab_only;
    char         arch_name[32];
    char         name[128];
    uint64_t     n_params;
    uint64_t     weight_bytes;    /* tensor bytes in the file */
    uint64_t     file_bytes;
    uint64_t     file_id;         /* kvfile_hash of the bytes before the tensor data */
    /* Token trie for grammar masks (grammar.h): built on first use under
     * the grammar module's lock, immutable afterwards, owned. */
    struct gram_trie *gram_trie;
};

/* Names of the supported architectures, comma-separated (for messages). */
const char *model_supported_archs(void);
/* Architecture id for a general.architecture string, or -1. */
int model_arch_from_name(const char *name, size_t len);

/* Read hyper-parameters of `gf` into *hp.  0, or NJ_EUNSUPPORTED for an
 * architecture we do not run (message lists the supported ones), or
 * NJ_EFORMAT for missing/inconsistent keys. */
int model_load_hparams(const gguf_file *gf, nj_hparams *hp, char *arch_name, size_t cap);

/* Bind all tensors of m->gf into m (m->hp already filled).  Checks every
 * tensor's shape and type; 0 or NJ_EFORMAT / NJ_EUNSUPPORTED / -ENOMEM. */
int model_bind_tensors(nj_model *m);

/* The tensor type (NJ_F16, NJ_Q8_0, NJ_Q4_0) a KV type stores its rows
 * in, or -1 for an unknown KV type. */
int model_kv_elem_type(int kv_type);
/* Bytes of one cache row of n elements in a KV type (0 if unknown or n
 * is not a whole number of blocks). */
uint64_t model_kv_row_bytes(int kv_type, int64_t n);

/* Bytes of KV cache for n_ctx positions (used both by the session to
 * allocate and by the memory estimate, so the two cannot drift). */
uint64_t model_kv_bytes(const nj_model *m, int n_ctx, int kv_type);

#endif
