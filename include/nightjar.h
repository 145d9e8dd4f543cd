/*
 * nightjar.h — public API of libnightjar.
 *
 * Conventions: functions return 0 (or a non-negative count) on success and a
 * negative error code on failure (a negated errno or an NJ_E* code, named by
 * nj_strerror(); nj_last_error() holds a sentence about the last failure on
 * this thread).  Constructors return NULL and set *err.  Handles are opaque;
 * the caller owns what it creates and frees it with the matching _free.
 *
 * Objects:
 *   nj_model    weights (borrowed from an mmap of the GGUF file), hparams,
 *               vocabulary and chat template.  Read-only after load; may be
 *               shared by many sessions and threads.
 *   nj_session  one sequence: its KV cache, position and scratch buffers.
 *               Used by one thread at a time.
 *   nj_sampler  sampling state (RNG, penalties history).
 *   nj_grammar  an output constraint (JSON schema or any JSON object) and
 *               its matcher state for one generation.  Used by one thread
 *               at a time; borrows the model.
 */
#ifndef NIGHTJAR_H
#define NIGHTJAR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nj_model   nj_model;
typedef struct nj_session nj_session;
typedef struct nj_sampler nj_sampler;
typedef struct nj_grammar nj_grammar;

/* Error codes: a negated errno value (-ENOENT, -ENOMEM, -EINVAL, ...) or one
 * of these, in a range no errno uses. */
enum {
    NJ_EFORMAT      = -10001, /* malformed input file or data          */
    NJ_EUNSUPPORTED = -10002, /* valid but not supported (arch, type)   */
    NJ_ETOOBIG      = -10003, /* exceeds a size limit or budget         */
    NJ_ECTX         = -10004, /* request does not fit the context       */
    NJ_ECHECKSUM    = -10005, /* checksum mismatch                      */
    NJ_ENET         = -10006, /* network / transfer failure             */
    NJ_ESTATE       = -10007, /* call not valid in the object's state   */
};

const char *nj_strerror(int code);
const char *nj_last_error(void);

/* ---- model ---- */

typedef struct nj_model_params {
    int  n_threads;     /* compute threads; 0 = 2 */
    bool vocab_only;    /* load tokenizer + metadata only (no tensors needed) */
} nj_model_params;

nj_model *nj_model_load(const char *path, const nj_model_params *p, int *err);
void      nj_model_free(nj_model *m);

typedef struct nj_model_desc {
    char     arch[32];          /* "llama", "qwen2", "qwen3", "gemma3" */
    char     name[128];         /* general.name or file basename */
    int      n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    uint64_t n_params;
    uint64_t file_bytes;        /* size of the GGUF file */
    uint64_t file_id;           /* hash of the file's header, metadata, tensor table and
                                   the first 4 KiB of every tensor (prefix cache files) */
    uint64_t weight_bytes;      /* bytes of tensor data mapped */
    int      bos, eos, eot;     /* special token ids, -1 if none */
    bool     chat_template;     /* the file names a chat template nightjar knows */
} nj_model_desc;

void nj_model_describe(const nj_model *m, nj_model_desc *out);

/* KV element type for sessions.  f16 keeps K and V rows as IEEE halves;
 * q8_0 and q4_0 store each row in ggml's 32-element blocks of that type
 * (34 and 18 bytes per block: 53% and 28% of f16), quantized when written,
 * and attention reads them as llama.cpp's CPU flash attention does (q
 * quantized to q8_0 for the K dot products, V widened to f32).  The
 * quantized types need head dimensions that are multiples of 32. */
enum nj_kv_type { NJ_KV_F16 = 0, NJ_KV_Q8_0 = 1, NJ_KV_Q4_0 = 2, NJ_KV_TYPE_COUNT };

/* "f16", "q8_0", "q4_0"; NULL for an unknown type. */
const char *nj_kv_type_name(int kv_type);
/* The type named (as nj_kv_type_name spells it, any case), or -1. */
int nj_kv_type_from_name(const char *name);

/* Bytes of tensor data in a model file, read from its header without
 * loading or mapping the weights: a caller with a memory budget can refuse
 * a model that cannot fit before touching its pages.  0 or < 0. */
int nj_model_file_weight_bytes(const char *path, uint64_t *bytes);

/* Estimated resident bytes for weights + KV(n_ctx, kv_type) + buffers. */
uint64_t nj_model_mem_estimate(const nj_model *m, int n_ctx, int kv_type);

/* ---- tokenizer ---- */

/* Encode text into ids.  add_special: prepend BOS / append EOS as the model's
 * add_bos/add_eos flags say.  parse_special: recognise control-token text
 * such as "<|im_start|>" (never set for untrusted text).  Returns the number
 * of ids (which may exceed max: call again with a larger buffer) or < 0. */
int nj_tokenize(const nj_model *m, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t *ids, int max);
/* Bytes of one token's text into buf (not NUL-terminated); returns length
 * (may exceed cap) or < 0.  Control tokens render as "" unless special. */
int nj_token_to_piece(const nj_model *m, int32_t id, bool special, char *buf, size_t cap);
bool nj_token_is_eog(const nj_model *m, int32_t id);  /* end of generation */

typedef struct nj_chat_msg { const char *role; const char *content; } nj_chat_msg;
/* Render messages with the model's chat template (or `tmpl_name` if not
 * NULL: "chatml", "llama3", "llama2", "gemma", "phi3").  Returns the length
 * of the prompt (may exceed cap; buf NUL-terminated when it fits) or < 0. */
int nj_chat_apply(const nj_model *m, const char *tmpl_name, const nj_chat_msg *msgs,
                  int n, bool add_assistant, char *buf, size_t cap);
/* Render messages as nj_chat_apply does and tokenize the prompt: BOS added
 * as the model asks, the template's own markers parsed as special tokens,
 * and every message content fenced so that no special token at all
 * (control or user-defined) can come out of it; "<|im_end|>" inside a
 * content stays plain text.  This is the only safe way to tokenize
 * untrusted chat content: nj_chat_apply + nj_tokenize(parse_special) lets
 * content forge turns.  Roles are not fenced: pass only known role names.
 * For content without special-token text the ids equal those of that
 * two-step path (and llama.cpp's).  Returns the number of ids (may exceed
 * max: call again with a larger buffer) or < 0. */
int nj_chat_tokenize(const nj_model *m, const char *tmpl_name, const nj_chat_msg *msgs,
                     int n, bool add_assistant, int32_t *ids, int max);

/* ---- session (one sequence) ---- */

typedef struct nj_session_params {
    int n_ctx;        /* 0 = 4096, clamped to the model's training context */
    int kv_type;      /* enum nj_kv_type */
    int n_batch;      /* prefill chunk size; 0 = 256 */
    int n_threads;    /* 0 = model default */
} nj_session_params;

nj_session *nj_session_new(nj_model *m, const nj_session_params *p, int *err);
void        nj_session_free(nj_session *s);
int         nj_session_n_ctx(const nj_session *s);
int         nj_session_pos(const nj_session *s);      /* tokens in the KV cache */
/* Drop KV entries from position `pos` on (keep a shared prefix). */
int         nj_session_truncate(nj_session *s, int pos);
/* Feed n tokens at the current position (prefill in chunks of n_batch);
 * afterwards nj_session_logits() holds the next-token logits of the last
 * token.  NJ_ECTX if pos + n exceeds n_ctx. */
int         nj_session_eval(nj_session *s, const int32_t *ids, int n);
/* Make the cache hold exactly ids[0..n) and leave the logits of the last:
 * the longest prefix the cache already holds is kept (its KV is reused),
 * the rest evaluated; the last token is always evaluated again.  The rest
 * is evaluated as the tail of one call of all n tokens (the same attention
 * paths and product orders), so the logits equal those of evaluating ids
 * from an empty cache whenever the kept prefix was computed on the paths
 * it takes there (always for q8_0 / q4_0 caches; for f16 when the calls
 * that computed it were >= 64 tokens, like this one, or all < 64).
 * *reused (may be NULL) gets the number of tokens kept.  On failure the
 * cache is emptied. */
int         nj_session_eval_reuse(nj_session *s, const int32_t *ids, int n, int *reused);
const float *nj_session_logits(const nj_session *s);  /* n_vocab floats */
/* Tokens the last nj_session_eval_reuse kept from the cache (0 if none,
 * or if it failed): the prefix two consecutive prompts shared. */
int         nj_session_last_reused(const nj_session *s);
/* The ids whose KV the cache holds, [0, nj_session_pos(s)); borrowed,
 * valid until the next call that changes the session. */
const int32_t *nj_session_tokens(const nj_session *s);

/* Prefix cache files (src/engine/kvfile.h gives the format).  Save the
 * first n tokens of the cache (1 <= n <= pos: ids and K/V rows) to path,
 * atomically (path.tmp, then renamed).  0 or < 0. */
int         nj_session_save_prefix(const nj_session *s, int n, const char *path);
/* Read a prefix file into the session, replacing what its cache held:
 * returns the number of tokens now cached (logits are not current:
 * nj_session_eval_reuse evaluates the last prompt token again).  A file
 * written for another model file (size or header hash), KV type, shape or
 * format version, one longer than the context, truncated, or whose
 * checksums fail is rejected: < 0 with nj_last_error() saying why
 * (NJ_EFORMAT, NJ_ECHECKSUM, NJ_EUNSUPPORTED, NJ_ESTATE, -ENOENT, ...),
 * and the session is left empty. */
int         nj_session_load_prefix(nj_session *s, const char *path);

/* ---- sampler ---- */

typedef struct nj_sampler_params {
    float    temp;            /* <= 0: greedy */
    int      top_k;           /* <= 0: off */
    float    top_p;           /* >= 1: off */
    float    min_p;           /* <= 0: off */
    float    repeat_penalty;  /* 1: off */
    int      repeat_last_n;   /* window for the penalty; 64 */
    uint64_t seed;
} nj_sampler_params;

void        nj_sampler_default_params(nj_sampler_params *p);
nj_sampler *nj_sampler_new(const nj_sampler_params *p, int *err);
void        nj_sampler_free(nj_sampler *s);
void        nj_sampler_accept(nj_sampler *s, int32_t id);  /* for penalties */
int32_t     nj_sampler_sample(nj_sampler *s, const float *logits, int n_vocab);
/* Constrain sampling to a grammar (borrowed; NULL removes it): tokens the
 * grammar's current state does not allow are removed before the chain.
 * The caller still feeds each chosen token to nj_grammar_accept.  Sampling
 * fails with NJ_ESTATE if the grammar allows no token. */
void        nj_sampler_set_grammar(nj_sampler *s, nj_grammar *g);

/* ---- grammar-bound decoding ---- */

/* A grammar for documents valid under a JSON schema (the subset and the
 * canonical layout are described in src/engine/json_schema.h: one space
 * after ':' and ',', no other whitespace).  NULL with *err: NJ_EFORMAT (not
 * JSON), NJ_EUNSUPPORTED (nj_last_error() names the keyword and its JSON
 * pointer), NJ_ETOOBIG, -ENOMEM.  The first grammar of a model builds the
 * model's token trie (tens of milliseconds for a 150k vocabulary); later
 * ones reuse it.  The model must outlive the grammar. */
nj_grammar *nj_grammar_from_schema(const nj_model *m, const char *schema_json, int *err);
/* Any JSON object (response_format json_object). */
nj_grammar *nj_grammar_json_object(const nj_model *m, int *err);
void        nj_grammar_free(nj_grammar *g);
/* Back to the start of a document. */
void        nj_grammar_reset(nj_grammar *g);
/* Set logits[id] = -INFINITY for every token the current state does not
 * allow (logits has n_vocab entries).  End-of-generation tokens are allowed
 * exactly when the document is complete; other control tokens never.
 * Returns the number of allowed tokens (>= 1) or < 0. */
int         nj_grammar_mask(nj_grammar *g, float *logits);
/* Advance over one token.  0, or -EINVAL if the grammar does not allow it
 * (the state is unchanged), NJ_ESTATE after end of generation was accepted. */
int         nj_grammar_accept(nj_grammar *g, int32_t id);
/* 0: the document is not complete; 1: complete, more may follow (the model
 * may end); 2: complete and nothing may follow (stop without sampling). */
int         nj_grammar_done(const nj_grammar *g);
/* Fast-forward: the tokens of the continuation the grammar forces from
 * here (up to max), tokenized as nj_tokenize would and each checked against
 * the grammar.  The last one is left out when a longer token starting with
 * it is also allowed, so the model keeps its own choice of boundary.  Does
 * not advance: feed the tokens to nj_grammar_accept and, all in one
 * nj_session_eval, to the model.  Returns the count (0 = sample). */
int         nj_grammar_forced(nj_grammar *g, int32_t *ids, int max);
/* Tokens of a shortest text that completes the document from here (for a
 * generation that ran out of budget).  Returns the count, which may exceed
 * max (then call again with more room), or < 0.  Does not advance. */
int         nj_grammar_close(nj_grammar *g, int32_t *ids, int max);

/* ---- label scoring ---- */

/* Probability of each label as the continuation of the text in the session
 * (whose logits must be current): each label is tokenized (no special
 * tokens; a label's probability is that of this tokenization) and its
 * log-probability summed over its tokens.  Single-token labels cost no
 * forward pass; for longer ones the tokens after the first are evaluated
 * in one batch per label, sharing evaluated prefixes between labels (labels
 * are visited in token order), then the session is truncated back and its
 * logits restored, so it is as before the call.  probs gets the softmax of
 * the log-probabilities over the label set; logprobs (may be NULL) the raw
 * log-probabilities.  Returns the number of nj_session_eval-style batches
 * run (0 when every label is one token), or < 0. */
int         nj_score_labels(nj_session *s, const char *const *labels, int n_labels, float *probs,
                            float *logprobs);

#ifdef __cplusplus
}
#endif
#endif
