/*
 * api — the nj_model_* entry points of nightjar.h: open the GGUF, read the
 * hyper-parameters, bind the weights, load the tokenizer; describe the model
 * and estimate its memory.  The forward pass is in session.c, the sampler in
 * sampler.c, tokenizer and chat templates in their own modules; the
 * nj_tokenize / nj_chat_apply / nj_chat_tokenize wrappers here only forward
 * to them.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "gguf.h"
#include "grammar.h"
#include "kvfile.h"
#include "model.h"
#include "platform.h"
#include "session.h"
#include "tokenizer.h"
#include "util.h"

static int get_tok_id(const gguf_file *gf, const char *key) {
    uint32_t v;
    return gguf_get_u32(gf, key, &v) == 0 && v < (1u << 24) ? (int)v : -1;
}

nj_model *nj_model_load(const char *path, const nj_model_params *p, int *err) {
    int rc = 0;
    nj_model *m = nj_calloc(1, sizeof *m);
    if (!m) { rc = nj_fail(-ENOMEM, "out of memory"); goto err; }
    m->n_threads = p && p->n_threads > 0 ? p->n_threads : 2;
    m->vocab_only = p && p->vocab_only;
    m->gf = gguf_open(path, &rc);
    if (!m->gf) goto err;
    m->file_bytes = gguf_file_size(m->gf);
    /* The identity prefix cache files are tied to: everything before the
     * tensor data (a few MB at most, read by the tokenizer anyway), then
     * the first 4 KiB of every tensor, so that two files with the same
     * metadata and shapes but other weights (a fine-tune, another
     * quantization run) differ too.  One page per tensor, which the first
     * forward pass touches anyway. */
    {
        uint64_t off = gguf_data_offset(m->gf);
        if (off > m->file_bytes) off = m->file_bytes;
        uint64_t id = kvfile_hash(gguf_base(m->gf), (size_t)off, m->file_bytes);
        for (uint64_t i = 0; i < gguf_n_tensors(m->gf); i++) {
            const gguf_tensor *t = gguf_tensor_at(m->gf, i);
            id = kvfile_hash(t->data, t->nbytes < 4096 ? (size_t)t->nbytes : 4096, id);
        }
        m->file_id = id;
    }

    gguf_str nm;
    if (gguf_get_str(m->gf, "general.name", &nm) == 0 && nm.len) {
        size_t n = nm.len < sizeof m->name - 1 ? (size_t)nm.len : sizeof m->name - 1;
        memcpy(m->name, nm.ptr, n);
    } else {
        const char *b = strrchr(path, '/');
        snprintf(m->name, sizeof m->name, "%s", b ? b + 1 : path);
    }

    if ((rc = model_load_hparams(m->gf, &m->hp, m->arch_name, sizeof m->arch_name))) {
        if (!(m->vocab_only && rc == NJ_EUNSUPPORTED)) goto err;
        rc = 0;   /* a tokenizer-only load does not need a runnable arch */
    }
    if (!m->vocab_only && (rc = model_bind_tensors(m))) goto err;

    /* Tokenizer and chat template.  A model whose tokenizer we cannot load
     * still runs on token ids (--prompt-ids, conformance); the text entry
     * points then return the load error. */
    int terr = 0;
    m->tok = tok_load(m->gf, &terr);
    if (!m->tok) {
        if (terr == -ENOMEM) { rc = terr; goto err; }
        m->tok_err = terr ? terr : NJ_EFORMAT;
        snprintf(m->tok_msg, sizeof m->tok_msg, "%s", nj_last_error());
        NJ_WARN("%s: tokenizer not loaded: %s", path, m->tok_msg);
    }
    gguf_str tmpl;
    m->chat_tmpl = -1;
    if (gguf_get_str(m->gf, "tokenizer.chat_template", &tmpl) == 0) {
        m->chat_tmpl = chat_detect(tmpl.ptr, (size_t)tmpl.len);
        if (m->chat_tmpl < 0) snprintf(m->chat_msg, sizeof m->chat_msg, "%s", nj_last_error());
    } else {
        snprintf(m->chat_msg, sizeof m->chat_msg, "the model has no chat template");
    }
    nj_clear_error();
    if (err) *err = 0;
    return m;
err:
    nj_model_free(m);
    if (err) *err = rc ? rc : -ENOMEM;
    return NULL;
}

void nj_model_free(nj_model *m) {
    if (!m) return;
    gram_trie_free(m->gram_trie);
    tok_free(m->tok);
    nj_free(m->layers);
    nj_free(m->f32_store);
    if (m->gf) gguf_close(m->gf);
    nj_free(m);
}

void nj_model_describe(const nj_model *m, nj_model_desc *d) {
    memset(d, 0, sizeof *d);
    snprintf(d->arch, sizeof d->arch, "%s", m->arch_name);
    snprintf(d->name, sizeof d->name, "%s", m->name);
    const nj_hparams *hp = &m->hp;
    d->n_vocab = hp->n_vocab;
    d->n_ctx_train = hp->n_ctx_train;
    d->n_embd = hp->n_embd;
    d->n_layer = hp->n_layer;
    d->n_head = hp->n_head;
    d->n_head_kv = hp->n_head_kv;
    d->head_dim = hp->head_dim_k;
    d->n_ff = hp->n_ff;
    d->n_params = m->n_params;
    d->file_bytes = m->file_bytes;
    d->file_id = m->file_id;
    d->weight_bytes = m->weight_bytes;
    d->chat_template = m->chat_tmpl >= 0;
    if (m->tok) {
        d->bos = tok_bos(m->tok);
        d->eos = tok_eos(m->tok);
        d->eot = tok_eot(m->tok);
    } else {
        d->bos = get_tok_id(m->gf, "tokenizer.ggml.bos_token_id");
        d->eos = get_tok_id(m->gf, "tokenizer.ggml.eos_token_id");
        d->eot = get_tok_id(m->gf, "tokenizer.ggml.eot_token_id");
    }
}

static const char *const kv_names[NJ_KV_TYPE_COUNT] = {
    [NJ_KV_F16] = "f16", [NJ_KV_Q8_0] = "q8_0", [NJ_KV_Q4_0] = "q4_0",
};

const char *nj_kv_type_name(int kv_type) {
    return kv_type >= 0 && kv_type < NJ_KV_TYPE_COUNT ? kv_names[kv_type] : NULL;
}

int nj_kv_type_from_name(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < NJ_KV_TYPE_COUNT; t++) {
        const char *a = kv_names[t], *b = name;
        while (*a && tolower((unsigned char)*b) == *a) a++, b++;   /* names are lower case */
        if (!*a && !*b) return t;
    }
    return -1;
}

/* Resident bytes once a session of n_ctx runs: the mapped file (tensor
 * data is touched by every token; metadata by the tokenizer) except an
 * untied embedding table, the KV cache
 * and the session's scratch exactly as nj_session_new sizes them (default
 * n_batch and threads), the model's own tables, and an allowance for the
 * tokenizer's tables and thread stacks. */
uint64_t nj_model_mem_estimate(const nj_model *m, int n_ctx, int kv_type) {
    if (n_ctx <= 0) n_ctx = 4096;
    if (m->hp.n_ctx_train && n_ctx > m->hp.n_ctx_train) n_ctx = m->hp.n_ctx_train;
    int n_batch = n_ctx < 256 ? n_ctx : 256;
    uint64_t b = m->file_bytes;
    if (m->vocab_only || !m->layers) return b;
    /* An untied embedding table is read a row at a time and its pages are
     * released after each lookup (nj_model.release_embd): count only the
     * pages one batch of lookups can hold at once. */
    if (m->release_embd) {
        uint64_t tbl = (uint64_t)m->tok_embd.rows * m->tok_embd.row_bytes;
        uint64_t held = (uint64_t)n_batch * (m->tok_embd.row_bytes + 2 * platform_page_size());
        b -= tbl - (held < tbl ? held : tbl);
    }
    b += model_kv_bytes(m, n_ctx, kv_type);
    b += session_scratch_bytes(m, n_batch, m->n_threads);
    b += (uint64_t)m->hp.n_layer * sizeof(nj_layer) + m->f32_store_len * sizeof(float);
    b += (uint64_t)m->hp.n_vocab * 64;             /* tokenizer tables */
    b += (uint64_t)m->n_threads * (256u << 10);    /* worker stacks in use */
    return b;
}

int nj_model_file_weight_bytes(const char *path, uint64_t *bytes) {
    int err = 0;
    *bytes = 0;
    gguf_file *g = gguf_open(path, &err);
    if (!g) return err;
    uint64_t w = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) w += gguf_tensor_at(g, i)->nbytes;
    gguf_close(g);
    *bytes = w;
    return 0;
}

/* ---- tokenizer and chat: forwarded to their modules ---- */

static int no_tok(const nj_model *m) {
    return nj_fail(m->tok_err ? m->tok_err : NJ_EUNSUPPORTED, "no tokenizer: %s", m->tok_msg);
}

int nj_tokenize(const nj_model *m, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t *ids, int max) {
    if (!m->tok) return no_tok(m);
    if (!text && len) return nj_fail(-EINVAL, "NULL text");
    return tok_encode(m->tok, text ? text : "", len, add_special, parse_special, ids, max);
}

int nj_token_to_piece(const nj_model *m, int32_t id, bool special, char *buf, size_t cap) {
    if (!m->tok) return no_tok(m);
    return tok_piece(m->tok, id, special, buf, cap);
}

bool nj_token_is_eog(const nj_model *m, int32_t id) {
    if (m->tok) return tok_is_eog(m->tok, id);
    return id == get_tok_id(m->gf, "tokenizer.ggml.eos_token_id") ||
           id == get_tok_id(m->gf, "tokenizer.ggml.eot_token_id");
}

/* Chat family to use: `tmpl_name` if given, else the model's own. */
static int pick_tmpl(const nj_model *m, const char *tmpl_name) {
    if (tmpl_name) return chat_from_name(tmpl_name);
    if (m->chat_tmpl < 0)
        return nj_fail(NJ_EUNSUPPORTED, "%s; name a template (known: %s)", m->chat_msg,
                       chat_known_names());
    return m->chat_tmpl;
}

int nj_chat_apply(const nj_model *m, const char *tmpl_name, const nj_chat_msg *msgs, int n,
                  bool add_assistant, char *buf, size_t cap) {
    int t = pick_tmpl(m, tmpl_name);
    if (t < 0) return t;
    if (n < 0 || (n > 0 && !msgs)) return nj_fail(-EINVAL, "bad message array");
    return chat_apply(t, msgs, n, add_assistant, buf, cap);
}

/* Render once to measure, once to fill (with the content spans), then
 * tokenize with the markers parsed and the contents fenced. */
int nj_chat_tokenize(const nj_model *m, const char *tmpl_name, const nj_chat_msg *msgs, int n,
                     bool add_assistant, int32_t *ids, int max) {
    if (!m->tok) return no_tok(m);
    int t = pick_tmpl(m, tmpl_name);
    if (t < 0) return t;
    if (n < 0 || (n > 0 && !msgs)) return nj_fail(-EINVAL, "bad message array");
    if (max < 0 || (max > 0 && !ids)) return nj_fail(-EINVAL, "bad id buffer");
    int len = chat_apply(t, msgs, n, add_assistant, NULL, 0);
    if (len < 0) return len;
    char *text = nj_malloc((size_t)len + 1);
    tok_span *spans = nj_malloc((size_t)(n ? n : 1) * sizeof *spans);
    int rc, n_spans = 0;
    if (!text || !spans) { rc = nj_fail(-ENOMEM, "out of memory for the chat prompt"); goto done; }
    rc = chat_apply_spans(t, msgs, n, add_assistant, text, (size_t)len + 1, spans, &n_spans);
    if (rc < 0) goto done;
    if (rc != len) { rc = nj_fail(NJ_ESTATE, "chat template length changed between calls"); goto done; }
    rc = tok_encode_ex(m->tok, text, (size_t)len, true, true, spans, n_spans, ids, max);
done:
    nj_free(spans);
    nj_free(text);
    return rc;
}
