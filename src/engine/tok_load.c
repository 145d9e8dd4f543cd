/*
 * tok_load — building an nj_tok from a GGUF file's tokenizer.ggml.* keys.
 *
 * Steps, in tok_load's order: the tokenizer model ("llama" -> SPM, "gpt2"
 * and "gemma4" -> BPE) and, for BPE, the pre-tokenizer entry, whose flags
 * set defaults the way llama.cpp's vocabulary loader does; the vocabulary,
 * interned into a string map (a later duplicate text wins, like
 * token_to_id), scores and token types; for BPE the merge table (each
 * "left right" rule interned as (left id, right id) -> (rank, result id);
 * the lowest rank of a pair wins) and the compiled pre-tokenizer steps; the
 * special-token ids from the keys, then the attribute fix-ups llama.cpp
 * applies by token text (detect_specials); the byte tables; the special
 * tokens in partition order and a trie over their text; the Phi-3 RSTRIP
 * rule; the piece cache (each token's text as tok_piece returns it); the
 * SPM segmentation check; the newline token.
 *
 * Ownership.  Token texts are views into the GGUF mapping (the gguf_file
 * must outlive the nj_tok); strings that exist only as merge results or as
 * placeholders for empty tokens are copied into an arena.  Every table is
 * allocated here with nj_malloc and freed by tok_free; nothing grows after
 * tok_load returns.
 *
 * Errors.  Bad or missing keys give NJ_EFORMAT, an unknown model or
 * pre-tokenizer NJ_EUNSUPPORTED, with a sentence through nj_fail; a
 * half-built nj_tok is freed through one err: label.
 *
 * Threads: tok_load may run in several threads at once; the shared
 * Unicode and byte-alphabet tables are built by the first call, under
 * pthread_once.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* Strings built at load time live in an arena (arena_blk, tokenizer_int.h). */
static char *arena_alloc(arena_blk **head, size_t n) {
    arena_blk *b = *head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        arena_blk *nb = nj_malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b; nb->used = 0; nb->cap = cap;
        *head = b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}
static void arena_free(arena_blk *b) {
    while (b) { arena_blk *n = b->next; nj_free(b); b = n; }
}

/* Tables shared by every tokenizer (Unicode flags of ASCII, the GPT-2 byte
 * alphabet), built once by the first tok_load. */
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;
static void tables_init(void) { tok_ascii_flags_init(); tok_alphabet_init(); }

/* ------------------------------------------------------------------ */
/* interned strings                                                   */
/* ------------------------------------------------------------------ */

static int strmap_init(strmap *m, size_t n) {
    size_t cap = pow2_at_least(n * 2 + 16);
    m->slot = nj_malloc(cap * sizeof *m->slot);
    m->hash = nj_malloc(cap * sizeof *m->hash);
    if (!m->slot || !m->hash) return -ENOMEM;
    memset(m->slot, 0xFF, cap * sizeof *m->slot);
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static int strmap_grow(nj_tok *t);

/* Map string -> id; if present, overwrite (last wins, like token_to_id). */
static int strmap_put(nj_tok *t, const void *s, size_t n, int32_t id) {
    if ((t->map.count + 1) * 2 > t->map.mask + 1) {
        int rc = strmap_grow(t);
        if (rc) return rc;
    }
    uint64_t h = hash_bytes(s, n);
    size_t i = h & t->map.mask;
    for (;;) {
        int32_t cur = t->map.slot[i];
        if (cur < 0) break;
        if (t->map.hash[i] == (uint32_t)h && t->str[cur].len == n &&
            memcmp(t->str[cur].ptr, s, n) == 0) {
            t->map.slot[i] = id;
            return 0;
        }
        i = (i + 1) & t->map.mask;
    }
    t->map.slot[i] = id;
    t->map.hash[i] = (uint32_t)h;
    t->map.count++;
    return 0;
}

static int strmap_grow(nj_tok *t) {
    strmap old = t->map;
    int rc = strmap_init(&t->map, (old.mask + 1));
    if (rc) { nj_free(t->map.slot); nj_free(t->map.hash); t->map = old; return rc; }
    for (size_t i = 0; i <= old.mask; i++) {
        int32_t id = old.slot[i];
        if (id < 0) continue;
        /* only the low 32 bits are stored: recompute the full hash */
        uint64_t h = hash_bytes(t->str[id].ptr, t->str[id].len);
        size_t j = h & t->map.mask;
        while (t->map.slot[j] >= 0) j = (j + 1) & t->map.mask;
        t->map.slot[j] = id;
        t->map.hash[j] = (uint32_t)h;
        t->map.count++;
    }
    nj_free(old.slot);
    nj_free(old.hash);
    return 0;
}

/* Intern a string that is not a vocabulary entry (bytes must stay valid). */
static int32_t intern(nj_tok *t, const char *s, size_t n, bool copy) {
    int32_t id = strmap_get(t, s, n);
    if (id >= 0) return id;
    if (t->n_str == t->cap_str) {
        size_t cap = t->cap_str * 2 + 1024;
        strv *p = nj_realloc(t->str, cap * sizeof *p);
        if (!p) return -ENOMEM;
        t->str = p; t->cap_str = cap;
    }
    if (copy) {
        char *c = arena_alloc(&t->arena, n ? n : 1);
        if (!c) return -ENOMEM;
        memcpy(c, s, n);
        s = c;
    }
    id = (int32_t)t->n_str;
    t->str[t->n_str++] = (strv){s, (uint32_t)n};
    int rc = strmap_put(t, s, n, id);
    return rc ? rc : id;
}

/* ------------------------------------------------------------------ */
/* vocabulary attributes, special tokens, pieces                      */
/* ------------------------------------------------------------------ */

static int32_t find_c(const nj_tok *t, const char *c) { return tok_find(t, c, strlen(c)); }

static void set_attr_bits(nj_tok *t, int32_t id, unsigned bits, bool on) {
    if (id < 0 || id >= t->n_vocab) return;
    if (on) t->attr[id] |= (uint16_t)bits; else t->attr[id] &= (uint16_t)~bits;
}

/* First token of `names` present in the vocabulary (priority = list order;
 * llama.cpp picks by hash-map iteration order, which only matters if a
 * vocabulary holds several of them). */
static int32_t find_first(const nj_tok *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = find_c(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* Special tokens in partition order: longer text first, then lower id
 * (llama.cpp's std::sort leaves equal lengths unordered; the order only
 * matters for two same-length tokens overlapping in a text). */
static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int trie_add(nj_tok *t, const strv *s, int32_t special_index) {
    if (s->len == 0) return 0;
    int32_t node = -1;
    for (uint32_t k = 0; k < s->len; k++) {
        uint8_t b = (uint8_t)s->ptr[k];
        int32_t *link = node < 0 ? &t->trie_root[b] : &t->trie[node].child;
        int32_t c = *link;
        if (node >= 0) {
            while (c >= 0 && t->trie[c].byte != b) c = t->trie[c].sibling;
        }
        if (c < 0) {
            if (t->n_trie == t->cap_trie) {
                size_t cap = t->cap_trie * 2 + 256;
                trie_node *p = nj_realloc(t->trie, cap * sizeof *p);
                if (!p) return -ENOMEM;
                t->trie = p; t->cap_trie = cap;
                link = node < 0 ? &t->trie_root[b] : &t->trie[node].child;
            }
            c = (int32_t)t->n_trie++;
            t->trie[c] = (trie_node){.child = -1, .sibling = node < 0 ? -1 : *link,
                                     .special = -1, .byte = b};
            *link = c;
        }
        node = c;
    }
    if (t->trie[node].special < 0) t->trie[node].special = special_index;
    return 0;
}

/* Piece text of token id with special = true, appended to out (as
 * llama_token_to_piece fills llama.cpp's piece cache). */
static int render_piece(const nj_tok *t, int32_t id, char **buf, size_t *len, size_t *cap) {
    const strv *s = &t->str[id];
    unsigned a = t->attr[id];
    char tmp[64];
    const char *src = NULL;
    size_t n = 0;
    char *dyn = NULL;

    if (a & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        src = s->ptr; n = s->len;
    } else if (a & TOK_ATTR_NORMAL) {
        if (t->type == TOK_TYPE_SPM || t->escape_ws) {
            /* U+2581 -> ' ' */
            dyn = nj_malloc(s->len + 1);
            if (!dyn) return -ENOMEM;
            for (uint32_t i = 0; i < s->len;) {
                if (i + 3 <= s->len && memcmp(s->ptr + i, "\xE2\x96\x81", 3) == 0) {
                    dyn[n++] = ' '; i += 3;
                } else dyn[n++] = s->ptr[i++];
            }
            src = dyn;
        } else {
            /* GPT-2 alphabet -> bytes; unmapped code points render as
             * "[UNK_BYTE_0x<hex>" + whole token text + "]" like llama.cpp
             * (sized in a first pass: a hostile file must not make this
             * quadratic in memory) */
            const uint8_t *p = (const uint8_t *)s->ptr;
            size_t i = 0, need = 1;
            while (i < s->len) {
                uint32_t c = utf8_next(p, s->len, &i);
                uint8_t u[4];
                need += cp_to_byte(c) >= 0 ? 1 : 13 + 2 * (size_t)utf8_put(c, u) + s->len + 1;
            }
            if (need > (16u << 20))
                return nj_fail(NJ_EFORMAT, "tokenizer: token %d renders to %zu bytes", (int)id, need);
            dyn = nj_malloc(need);
            if (!dyn) return -ENOMEM;
            i = 0;
            while (i < s->len) {
                uint32_t c = utf8_next(p, s->len, &i);
                int b = cp_to_byte(c);
                if (b >= 0) dyn[n++] = (char)b;
                else {
                    uint8_t u[4]; int m = utf8_put(c, u);
                    n += (size_t)sprintf(dyn + n, "[UNK_BYTE_0x");
                    for (int k = 0; k < m; k++) n += (size_t)sprintf(dyn + n, "%02x", u[k]);
                    memcpy(dyn + n, s->ptr, s->len); n += s->len;
                    dyn[n++] = ']';
                }
            }
            src = dyn;
        }
    } else if (a & TOK_ATTR_BYTE) {
        char hex[3] = {0, 0, 0};
        if (s->len > 3) hex[0] = s->ptr[3];
        if (s->len > 4) hex[1] = s->ptr[4];
        tmp[0] = (char)strtol(hex, NULL, 16);
        src = tmp; n = 1;
    }
    if (*len + n > *cap) {
        size_t c = *cap * 2 + n + 4096;
        char *p = nj_realloc(*buf, c);
        if (!p) { nj_free(dyn); return -ENOMEM; }
        *buf = p; *cap = c;
    }
    if (n) memcpy(*buf + *len, src, n);
    *len += n;
    nj_free(dyn);
    return 0;
}

static int load_ids(nj_tok *t, const gguf_file *f) {
    static const struct { const char *key; size_t off; } keys[] = {
        {"tokenizer.ggml.bos_token_id",      offsetof(nj_tok, bos)},
        {"tokenizer.ggml.eos_token_id",      offsetof(nj_tok, eos)},
        {"tokenizer.ggml.eot_token_id",      offsetof(nj_tok, eot)},
        {"tokenizer.ggml.eom_token_id",      offsetof(nj_tok, eom)},
        {"tokenizer.ggml.unknown_token_id",  offsetof(nj_tok, unk)},
        {"tokenizer.ggml.seperator_token_id",offsetof(nj_tok, sep)},
        {"tokenizer.ggml.padding_token_id",  offsetof(nj_tok, pad)},
        {"tokenizer.ggml.mask_token_id",     offsetof(nj_tok, mask_id)},
        {"tokenizer.ggml.fim_pre_token_id",  offsetof(nj_tok, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id",  offsetof(nj_tok, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id",  offsetof(nj_tok, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id",  offsetof(nj_tok, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id",  offsetof(nj_tok, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id",  offsetof(nj_tok, fim_sep)},
        {"tokenizer.ggml.prefix_token_id",   offsetof(nj_tok, fim_pre)},
        {"tokenizer.ggml.suffix_token_id",   offsetof(nj_tok, fim_suf)},
        {"tokenizer.ggml.middle_token_id",   offsetof(nj_tok, fim_mid)},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(keys); i++) {
        int32_t *id = (int32_t *)((char *)t + keys[i].off);
        if (*id >= t->n_vocab) *id = -1;   /* default out of range: disable */
        uint32_t v;
        int rc = gguf_get_u32(f, keys[i].key, &v);
        if (rc == -ENOENT) continue;
        if (rc) return nj_fail(NJ_EFORMAT, "tokenizer: %s has a bad type", keys[i].key);
        if (v < (uint32_t)t->n_vocab) *id = (int32_t)v;
        else NJ_WARN("tokenizer: %s = %u is out of range, keeping default", keys[i].key, v);
    }
    return 0;
}

/* Attribute fix-ups llama.cpp applies by token text (EOT/EOM/FIM detection,
 * "unused" control tokens, the EOG set and its model-specific exceptions). */
static void detect_specials(nj_tok *t) {
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
        "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "<end_of_utterance>", NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    static const char *const pre_names[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>", "\xE2\x96\x81<PRE>",
        "<|code_prefix|>", "<|prefix|>", NULL};
    static const char *const suf_names[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>", "<SUF>", "\xE2\x96\x81<SUF>",
        "<|code_suffix|>", "<|suffix|>", NULL};
    static const char *const mid_names[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>", "\xE2\x96\x81<MID>",
        "<|code_middle|>", "<|middle|>", NULL};
    static const char *const pad_names[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
    static const char *const rep_names[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
        "<reponame>", NULL};
    static const char *const sep_names[] = {"<|file_sep|>", NULL};
    static const char *const eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>",
        "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
        "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "[e~[", NULL};

    struct { int32_t *id; const char *const *names; } det[] = {
        {&t->eot, eot_names}, {&t->eom, eom_names}, {&t->fim_pre, pre_names},
        {&t->fim_suf, suf_names}, {&t->fim_mid, mid_names}, {&t->fim_pad, pad_names},
        {&t->fim_rep, rep_names}, {&t->fim_sep, sep_names},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(det); i++) {
        if (*det[i].id >= 0) continue;
        int32_t id = find_first(t, det[i].names);
        if (id >= 0) { *det[i].id = id; set_attr_bits(t, id, TOK_ATTR_CONTROL, true); }
    }

    /* control tokens named "...unused..." are unused */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & TOK_ATTR_CONTROL)) continue;
        const strv *s = &t->str[id];
        for (uint32_t k = 0; k + 6 <= s->len; k++)
            if (memcmp(s->ptr + k, "unused", 6) == 0) { t->attr[id] |= TOK_ATTR_UNUSED; break; }
    }

    /* end-of-generation set */
    if (t->fim_pad >= 0) t->eog[t->fim_pad] = 1;
    if (t->fim_rep >= 0) t->eog[t->fim_rep] = 1;
    if (t->fim_sep >= 0) t->eog[t->fim_sep] = 1;
    for (const char *const *n = eog_names; *n; n++) {
        int32_t id = find_c(t, *n);
        if (id >= 0) { t->eog[id] = 1; set_attr_bits(t, id, TOK_ATTR_CONTROL, true); }
    }
    /* gpt-oss: these always render */
    static const char *const ud_names[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
    for (const char *const *n = ud_names; *n; n++) {
        int32_t id = find_c(t, *n);
        if (id >= 0) t->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;
    /* o200k_harmony / solar-open: "<|end|>" is not end of generation */
    {
        int32_t ret = find_c(t, "<|return|>"), call = find_c(t, "<|call|>"),
                calls = find_c(t, "<|calls|>"), flush = find_c(t, "<|flush|>"),
                end = find_c(t, "<|end|>");
        bool has_ret = ret >= 0 && t->eog[ret], has_end = end >= 0 && t->eog[end];
        bool has_call = (call >= 0 && t->eog[call]) || (calls >= 0 && t->eog[calls]);
        bool has_flush = flush >= 0 && t->eog[flush];
        if ((has_ret && has_call && has_end) || (has_call && has_flush && has_end)) {
            t->eog[end] = 0;
            t->attr[end] = TOK_ATTR_USER_DEFINED;
        }
    }
    /* gemma4: "</s>" is not end of generation when "<|tool_response>" is */
    {
        int32_t tr = find_c(t, "<|tool_response>"), s = find_c(t, "</s>");
        if (tr >= 0 && t->eog[tr] && s >= 0 && t->eog[s]) {
            t->eog[s] = 0;
            t->attr[s] = TOK_ATTR_NORMAL;
        }
    }
}

static int build_merges(nj_tok *t, const gguf_str *merges, uint64_t n_merges) {
    size_t cap = pow2_at_least((size_t)n_merges * 2 + 16);
    t->merge = nj_malloc(cap * sizeof *t->merge);
    if (!t->merge) return -ENOMEM;
    for (size_t i = 0; i < cap; i++) t->merge[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;

    char *cat = NULL;
    size_t cat_cap = 0;
    for (uint64_t r = 0; r < n_merges; r++) {
        const char *w = merges[r].ptr;
        size_t n = (size_t)merges[r].len;
        /* split at the first space after position 0 */
        const char *sp = n > 1 ? memchr(w + 1, ' ', n - 1) : NULL;
        if (!sp) continue;   /* llama.cpp files it under ("", "") : never matches */
        size_t la = (size_t)(sp - w), lb = n - la - 1;
        if (n > UINT32_MAX / 4) { nj_free(cat); return nj_fail(NJ_EFORMAT, "tokenizer: merge %llu too long", (unsigned long long)r); }
        int32_t a = intern(t, w, la, false);
        int32_t b = intern(t, sp + 1, lb, false);
        if (a < 0 || b < 0) { nj_free(cat); return -ENOMEM; }
        if (la + lb > cat_cap) {
            cat_cap = (la + lb) * 2 + 64;
            char *p = nj_realloc(cat, cat_cap);
            if (!p) { nj_free(cat); return -ENOMEM; }
            cat = p;
        }
        memcpy(cat, w, la);
        memcpy(cat + la, sp + 1, lb);
        int32_t res = intern(t, cat, la + lb, true);
        if (res < 0) { nj_free(cat); return -ENOMEM; }
        uint64_t k = merge_key(a, b);
        size_t i = hash_u64(k) & t->merge_mask;
        while (t->merge[i].key != UINT64_MAX && t->merge[i].key != k) i = (i + 1) & t->merge_mask;
        if (t->merge[i].key == k) continue;   /* first (lowest) rank wins */
        t->merge[i] = (merge_ent){k, (int32_t)r, res};
    }
    nj_free(cat);
    return 0;
}

/* ------------------------------------------------------------------ */
/* tok_load                                                           */
/* ------------------------------------------------------------------ */

nj_tok *tok_load(const gguf_file *f, int *err) {
    int rc = 0;
    nj_tok *t = NULL;
    char *pbuf = NULL;
    pthread_once(&g_tables_once, tables_init);

    gguf_str model, pre = {"", 0};
    if (gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.model missing or not a string");
        goto err;
    }
    int has_pre = gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0;

    t = nj_calloc(1, sizeof *t);
    if (!t) { rc = -ENOMEM; goto err; }
    t->f = f;
    memset(t->trie_root, 0xFF, sizeof t->trie_root);
    t->byte_encode = true;
    t->nl = -1;
    t->eot = t->eom = t->sep = t->pad = t->mask_id = -1;
    t->fim_pre = t->fim_suf = t->fim_mid = t->fim_pad = t->fim_rep = t->fim_sep = -1;

    unsigned pflags = 0;
    const struct pre_def *pdef = NULL;
    if (gguf_str_eq(model, "llama")) {
        t->type = TOK_TYPE_SPM;
        t->bos = 1; t->eos = 2; t->unk = 0;
        t->add_space_prefix = true; t->add_bos = true;
    } else if (gguf_str_eq(model, "gpt2") || gguf_str_eq(model, "gemma4")) {
        t->type = TOK_TYPE_BPE;
        bool g4 = gguf_str_eq(model, "gemma4");
        if (g4) { pre.ptr = "gemma4"; pre.len = 6; has_pre = 1; t->bos = t->eos = t->unk = -1; }
        else { t->bos = 11; t->eos = 11; t->unk = -1; }
        t->clean_spaces = true;
        if (!has_pre || pre.len == 0) {
            NJ_WARN("tokenizer: no tokenizer.ggml.pre, using 'default' (quality may suffer)");
            pre.ptr = "default"; pre.len = 7;
        }
        pdef = tok_pre_find(pre, t->pre_name, sizeof t->pre_name);
        if (!pdef) {
            rc = nj_fail(NJ_EUNSUPPORTED, "tokenizer: pre-tokenizer '%.*s' is not supported",
                         (int)NJ_MIN(pre.len, 64), pre.ptr);
            goto err;
        }
        pflags = pdef->flags;
        if (pflags & PF_NO_CLEAN) t->clean_spaces = false;
        if (pflags & PF_IGNORE_MERGES) t->ignore_merges = true;
        if (pflags & PF_ADD_BOS) t->add_bos = true;
        if (pflags & PF_NO_BOS_ID) t->bos = -1;
        if (pflags & PF_RAW_UTF8) { t->escape_ws = true; t->byte_encode = false; }
        if (pflags & PF_GEMMA4) t->gemma4 = true;
    } else {
        rc = nj_fail(NJ_EUNSUPPORTED, "tokenizer: model type '%.*s' is not supported (only llama/SPM, gpt2/BPE, gemma4)",
                     (int)NJ_MIN(model.len, 64), model.ptr);
        goto err;
    }
    {
        bool b;
        if (gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &b) == 0) t->add_space_prefix = b;
    }

    /* vocabulary */
    uint32_t et;
    uint64_t n;
    const gguf_str *toks;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n, NULL, &toks) || et != GGUF_T_STRING) {
        rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.tokens missing or not a string array");
        goto err;
    }
    if (n == 0 || n > (1u << 30)) { rc = nj_fail(NJ_EFORMAT, "tokenizer: bad vocabulary size %llu", (unsigned long long)n); goto err; }
    t->n_vocab = (int)n;
    t->cap_str = n + 1024;
    t->str = nj_malloc(t->cap_str * sizeof *t->str);
    t->score = nj_calloc(n, sizeof *t->score);
    t->attr = nj_calloc(n, sizeof *t->attr);
    t->eog = nj_calloc(n, 1);
    if (!t->str || !t->score || !t->attr || !t->eog || strmap_init(&t->map, n)) { rc = -ENOMEM; goto err; }
    for (uint64_t i = 0; i < n; i++) {
        if (toks[i].len == 0) {
            char tmp[32];
            int m = snprintf(tmp, sizeof tmp, "[EMPTY_%llu]", (unsigned long long)i);
            char *c = arena_alloc(&t->arena, (size_t)m);
            if (!c) { rc = -ENOMEM; goto err; }
            memcpy(c, tmp, (size_t)m);
            t->str[i] = (strv){c, (uint32_t)m};
        } else {
            if (toks[i].len > UINT32_MAX / 2) { rc = nj_fail(NJ_EFORMAT, "tokenizer: token %llu too long", (unsigned long long)i); goto err; }
            t->str[i] = (strv){toks[i].ptr, (uint32_t)toks[i].len};
        }
        t->attr[i] = TOK_ATTR_NORMAL;
    }
    t->n_str = n;
    for (uint64_t i = 0; i < n; i++)
        if ((rc = strmap_put(t, t->str[i].ptr, t->str[i].len, (int32_t)i))) goto err;

    {
        const void *data;
        uint64_t m;
        int r = gguf_get_arr(f, "tokenizer.ggml.scores", &et, &m, &data, NULL);
        if (r == 0) {
            if ((et != GGUF_T_FLOAT32 && et != GGUF_T_INT32) || m < n) {
                rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.scores has a bad type or size");
                goto err;
            }
            for (uint64_t i = 0; i < n; i++) {
                if (et == GGUF_T_FLOAT32) memcpy(&t->score[i], (const char *)data + 4 * i, 4);
                else { int32_t v; memcpy(&v, (const char *)data + 4 * i, 4); t->score[i] = (float)v; }
                if (t->score[i] == 0.0f) t->score[i] = 0.0f;   /* -0 == +0 in llama.cpp's compare */
            }
        }
        r = gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &m, &data, NULL);
        if (r == 0) {
            if (et != GGUF_T_INT32 || m < n) {
                rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.token_type has a bad type or size");
                goto err;
            }
            for (uint64_t i = 0; i < n; i++) {
                int32_t v; memcpy(&v, (const char *)data + 4 * i, 4);
                static const uint16_t map[] = {TOK_ATTR_UNDEFINED, TOK_ATTR_NORMAL, TOK_ATTR_UNKNOWN,
                    TOK_ATTR_CONTROL, TOK_ATTR_USER_DEFINED, TOK_ATTR_UNUSED, TOK_ATTR_BYTE};
                t->attr[i] = (v >= 0 && v <= 6) ? map[v] : TOK_ATTR_UNDEFINED;
            }
        }
    }

    if (t->type == TOK_TYPE_BPE) {
        const gguf_str *ms;
        uint64_t m;
        if (gguf_get_arr(f, "tokenizer.ggml.merges", &et, &m, NULL, &ms) || et != GGUF_T_STRING) {
            rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.merges missing or not a string array");
            goto err;
        }
        if ((rc = build_merges(t, ms, m))) goto err;
        if ((rc = tok_compile_steps(t, pdef->re))) goto err;
    }

    if ((rc = load_ids(t, f))) goto err;
    {
        bool b;
        if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) == 0) t->add_bos = b;
        if (gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b) == 0) t->add_eos = b;
        if (t->gemma4) t->add_bos = true;   /* as llama.cpp does for Gemma 4 */
    }
    if (t->add_bos && t->bos < 0) { rc = nj_fail(NJ_EFORMAT, "tokenizer: add_bos set but no BOS token"); goto err; }
    if (t->add_eos && t->eos < 0) { rc = nj_fail(NJ_EFORMAT, "tokenizer: add_eos set but no EOS token"); goto err; }

    detect_specials(t);

    /* byte tables */
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int m = utf8_put(byte_to_cp((uint8_t)b), u);
        t->byte_sym[b] = strmap_get(t, u, (size_t)m);
        char one = (char)b;
        t->byte_tok1[b] = tok_find(t, &one, 1);
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_hex[b] = tok_find(t, hex, 6);
        t->spm_byte[b] = t->byte_hex[b] >= 0 ? t->byte_hex[b] : t->byte_tok1[b];
    }

    /* special tokens in partition order, and the trie over their text */
    {
        int cnt = 0;
        for (int32_t i = 0; i < t->n_vocab; i++)
            if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) cnt++;
        t->special = nj_malloc((size_t)(cnt ? cnt : 1) * sizeof *t->special);
        uint64_t *keys = nj_malloc((size_t)(cnt ? cnt : 1) * sizeof *keys);
        if (!t->special || !keys) { nj_free(keys); rc = -ENOMEM; goto err; }
        for (int32_t i = 0; i < t->n_vocab; i++)
            if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
                keys[t->n_special++] = ((uint64_t)(UINT32_MAX - t->str[i].len) << 32) | (uint32_t)i;
        qsort(keys, (size_t)t->n_special, sizeof *keys, u64_cmp);
        for (int i = 0; i < t->n_special; i++) t->special[i] = (int32_t)(keys[i] & 0xFFFFFFFFu);
        nj_free(keys);
        for (int i = 0; i < t->n_special; i++)
            if ((rc = trie_add(t, &t->str[t->special[i]], i))) goto err;
    }

    /* Phi-3 models: special tokens swallow the whitespace after them */
    {
        gguf_str name;
        if (gguf_get_str(f, "general.name", &name) == 0) {
            char low[256];
            size_t m = NJ_MIN((size_t)name.len, sizeof low - 1);
            for (size_t i = 0; i < m; i++) low[i] = (char)tolower((unsigned char)name.ptr[i]);
            low[m] = 0;
            if (strstr(low, "phi-3") || strstr(low, "phi3")) {
                for (int i = 0; i < t->n_special; i++) t->attr[t->special[i]] |= TOK_ATTR_RSTRIP;
                set_attr_bits(t, find_c(t, "</s>"), TOK_ATTR_RSTRIP, true);
                set_attr_bits(t, find_c(t, "<unk>"), TOK_ATTR_RSTRIP, false);
                set_attr_bits(t, find_c(t, "<s>"), TOK_ATTR_RSTRIP, false);
                set_attr_bits(t, find_c(t, "<|endoftext|>"), TOK_ATTR_RSTRIP, false);
            }
        }
    }

    /* piece cache */
    {
        size_t len = 0, cap = 0;
        t->piece_off = nj_malloc(((size_t)t->n_vocab + 1) * sizeof *t->piece_off);
        if (!t->piece_off) { rc = -ENOMEM; goto err; }
        for (int32_t i = 0; i < t->n_vocab; i++) {
            t->piece_off[i] = (uint32_t)len;
            if ((rc = render_piece(t, i, &pbuf, &len, &cap))) goto err;
            if (len > UINT32_MAX / 2) { rc = nj_fail(NJ_EFORMAT, "tokenizer: vocabulary text too large"); goto err; }
        }
        t->piece_off[t->n_vocab] = (uint32_t)len;
        t->piece_buf = pbuf;
        pbuf = NULL;
    }

    /* SPM segmentation is exact when every vocabulary entry is "\u2581"*X
     * with no "\u2581" inside X: then no merge can join a symbol that is not
     * "\u2581" to a following "\u2581" (merged symbols are always entries). */
    if (t->type == TOK_TYPE_SPM) {
        t->spm_cut_ok = true;
        for (int32_t i = 0; i < t->n_vocab && t->spm_cut_ok; i++) {
            const uint8_t *p = (const uint8_t *)t->str[i].ptr;
            size_t n = t->str[i].len, k = 0;
            while (k + 3 <= n && memcmp(p + k, "\xE2\x96\x81", 3) == 0) k += 3;
            for (; k + 3 <= n; k++)
                if (memcmp(p + k, "\xE2\x96\x81", 3) == 0) { t->spm_cut_ok = false; break; }
        }
    }

    /* newline token */
    if (t->type == TOK_TYPE_SPM) {
        t->nl = t->spm_byte['\n'] >= 0 ? t->spm_byte['\n'] : t->pad;
    } else {
        int32_t ids[8];
        int k = tok_encode(t, "\n", 1, false, false, ids, 8);
        t->nl = k > 0 ? ids[0] : t->pad;
    }

    if (err) *err = 0;
    return t;
err:
    nj_free(pbuf);
    tok_free(t);
    if (err) *err = rc ? rc : NJ_EFORMAT;
    return NULL;
}

void tok_free(nj_tok *t) {
    if (!t) return;
    for (int i = 0; i < MAX_STEPS; i++) pcre2_code_free(t->step_re[i]);
    pcre2_general_context_free(t->gctx);
    nj_free(t->str);
    nj_free(t->map.slot);
    nj_free(t->map.hash);
    arena_free(t->arena);
    nj_free(t->score);
    nj_free(t->attr);
    nj_free(t->merge);
    nj_free(t->special);
    nj_free(t->trie);
    nj_free(t->piece_buf);
    nj_free(t->piece_off);
    nj_free(t->eog);
    nj_free(t);
}
