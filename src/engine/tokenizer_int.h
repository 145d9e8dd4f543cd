/*
 * tokenizer_int — what the tokenizer's files share.  Private to
 * src/engine/tokenizer.c and src/engine/tok_*.c; everything else uses
 * tokenizer.h.
 *
 * The tokenizer is one module in five files (tokenizer.c's top comment
 * describes the pipeline they make up):
 *
 *   tok_load.c    tok_load/tok_free: reads the tokenizer.ggml.* keys,
 *                 interns the strings, builds the merge table, fixes up the
 *                 token attributes, builds the special-token trie and the
 *                 piece cache;
 *   tok_pretok.c  pre-tokenizers: Unicode classes, the pattern list of each
 *                 tokenizer.ggml.pre, compiling the patterns, and the
 *                 splitters that cut a fragment's code points into words;
 *   tok_spm.c     SentencePiece merging of one raw fragment;
 *   tok_bpe.c     byte-level BPE of one raw fragment: the GPT-2 byte
 *                 alphabet, pre-tokenizing, merging each word;
 *   tokenizer.c   the special-token partition, tok_encode/tok_decode, the
 *                 accessors.
 *
 * This header holds the nj_tok struct, the per-call scratch, and the small
 * helpers several of those files call in their inner loops (hashing,
 * growable arrays, UTF-8, the merge heap, the word cache).  Those are
 * static inline, so the per-code-point and per-merge loops inline them as
 * they would within one file.  Functions called across files carry the
 * tok_ prefix like the public ones but are declared only here.
 *
 * Invariants.  After tok_load an nj_tok is read-only and any thread may use
 * it.  All ids stored in its tables are < n_vocab; "interned" ids >= n_vocab
 * name strings that occur only inside merges.  A scratch belongs to one
 * tok_encode call, which frees it before returning.
 */
#ifndef NJ_TOKENIZER_INT_H
#define NJ_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                      */
/* ------------------------------------------------------------------ */

static inline uint64_t hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
        h ^= h >> 31;
        p += 8; n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ w) * 0x165667B19E3779F9ull;
    h ^= h >> 29;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33; x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33; x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

/* Growable arrays used as per-call scratch: SCRATCH_VEC(vec, p, T) makes the
 * type vec {T *v; n, cap} with p_reserve (room for need elements, doubling
 * from 64) and p_push; both return 0 or -ENOMEM and leave the array as it
 * was on failure. */
#define SCRATCH_VEC(vec, p, T)                                          \
    typedef struct { T *v; size_t n, cap; } vec;                        \
    static inline int p##_reserve(vec *a, size_t need) {                \
        if (need <= a->cap) return 0;                                   \
        size_t cap = a->cap ? a->cap : 64;                              \
        while (cap < need) cap *= 2;                                    \
        void *q = nj_realloc(a->v, cap * sizeof *a->v);                 \
        if (!q) return -ENOMEM;                                         \
        a->v = q; a->cap = cap;                                         \
        return 0;                                                       \
    }                                                                   \
    static inline int p##_push(vec *a, T x) {                           \
        if (a->n == a->cap && p##_reserve(a, a->n + 1)) return -ENOMEM; \
        a->v[a->n++] = x;                                               \
        return 0;                                                       \
    }
SCRATCH_VEC(i32vec, i32, int32_t)
SCRATCH_VEC(u32vec, u32, uint32_t)

/* Chunked arena for strings built at load time (pointers never move). */
typedef struct arena_blk { struct arena_blk *next; size_t used, cap; char data[]; } arena_blk;

/* ------------------------------------------------------------------ */
/* Unicode (tok_pretok.c) and the byte alphabet (tok_bpe.c)           */
/* ------------------------------------------------------------------ */

/* Code point class bits (the flags llama.cpp derives from UnicodeData). */
enum {
    F_UNDEF = 1 << 0, F_NUMBER = 1 << 1, F_LETTER = 1 << 2, F_SEP = 1 << 3,
    F_MARK = 1 << 4, F_PUNCT = 1 << 5, F_SYMBOL = 1 << 6, F_CONTROL = 1 << 7,
    F_WS = 1 << 8,
};
#define OOR 0xFFFFFFFFu   /* "outside the piece" code point */

/* White_Space code points (PropList.txt), the set llama.cpp uses for \s. */
static inline bool cp_is_ws(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Class flags of code point c (tok_pretok.c); below 128 from a table that
 * tok_ascii_flags_init fills once (tok_load, under pthread_once). */
uint16_t tok_cp_flags_slow(uint32_t c);
extern uint16_t tok_ascii_flags[128];
void tok_ascii_flags_init(void);

static inline uint16_t cp_flags(uint32_t c) {
    return c < 128 ? tok_ascii_flags[c] : tok_cp_flags_slow(c);
}

/* One code point from UTF-8 the way llama.cpp's unicode_cpt_from_utf8 +
 * unicode_cpts_from_utf8 do it: continuation bytes are checked, overlong
 * forms and surrogates are not; an invalid or truncated sequence yields
 * U+FFFD and consumes one byte.  (Values above U+10FFFF, which llama.cpp
 * would later abort on, also become U+FFFD.) */
static inline uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
    size_t k = *i;
    uint8_t b = s[k];
    if (!(b & 0x80)) { *i = k + 1; return b; }
    if (!(b & 0x40)) goto bad;
    if (!(b & 0x20)) {
        if (k + 1 >= n || (s[k + 1] & 0xC0) != 0x80) goto bad;
        *i = k + 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[k + 1] & 0x3F);
    }
    if (!(b & 0x10)) {
        if (k + 2 >= n || (s[k + 1] & 0xC0) != 0x80 || (s[k + 2] & 0xC0) != 0x80) goto bad;
        *i = k + 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[k + 1] & 0x3F) << 6) | (s[k + 2] & 0x3F);
    }
    if (!(b & 0x08)) {
        if (k + 3 >= n || (s[k + 1] & 0xC0) != 0x80 || (s[k + 2] & 0xC0) != 0x80 ||
            (s[k + 3] & 0xC0) != 0x80) goto bad;
        *i = k + 4;
        uint32_t c = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[k + 1] & 0x3F) << 12) |
                     ((uint32_t)(s[k + 2] & 0x3F) << 6) | (s[k + 3] & 0x3F);
        return c > 0x10FFFF ? 0xFFFD : c;
    }
bad:
    *i = k + 1;
    return 0xFFFD;
}

/* Encode (any value <= 0x10FFFF, surrogates included, like llama.cpp). */
static inline int utf8_put(uint32_t c, uint8_t *o) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12)); o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F)); return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18)); o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Length of a UTF-8 sequence from its lead byte only (unicode_len_utf8). */
static inline size_t utf8_len_lead(uint8_t b) {
    static const uint8_t t[16] = {1,1,1,1,1,1,1,1,1,1,1,1,2,2,3,4};
    return t[b >> 4];
}

/* GPT-2 byte alphabet: bytes that are printable Latin-1 map to themselves,
 * the other 68 to U+0100.. in byte order.  Both directions are built once
 * (tok_alphabet_init, from tok_load under pthread_once). */
extern uint32_t tok_b2c[256];
extern int16_t  tok_c2b[0x144];
void tok_alphabet_init(void);
static inline uint32_t byte_to_cp(uint8_t b) { return tok_b2c[b]; }
static inline int cp_to_byte(uint32_t c) { return c < 0x144 ? tok_c2b[c] : -1; }

/* ------------------------------------------------------------------ */
/* pre-tokenizers (tok_pretok.c)                                      */
/* ------------------------------------------------------------------ */

/* How one pattern of a pre-tokenizer runs. */
enum step_kind { ST_NONE = 0, ST_GPT2, ST_LLAMA3, ST_QWEN2, ST_QWEN35, ST_NEWLINES,
                 ST_RE_BYTE /* regex over the collapsed class string */,
                 ST_RE_UTF  /* regex over the code points */ };

#define MAX_STEPS 6

/* Flags of a tokenizer.ggml.pre entry (tok_pretok.c's table). */
enum { PF_NO_CLEAN = 1, PF_IGNORE_MERGES = 2, PF_ADD_BOS = 4, PF_NO_BOS_ID = 8,
       PF_RAW_UTF8 = 16 /* no byte alphabet: U+2581 for spaces, <0xXX> fallback */,
       PF_GEMMA4 = 32   /* newline-only words may be one token; BOS forced */ };

/* One entry of the pre-tokenizer table: the '|'-separated names llama.cpp
 * maps to it, its NULL-terminated pattern list, PF_* flags. */
struct pre_def { const char *names; const char *const *re; unsigned flags; };

/* The entry for tokenizer.ggml.pre `name`, NULL if unsupported; copies the
 * matching name (canonical spelling) to canon. */
const struct pre_def *tok_pre_find(gguf_str name, char *canon, size_t cap);

/* Prepare the steps of a pre-tokenizer: known patterns go to the
 * hand-written splitters, the rest are compiled with PCRE2 (collapsed when
 * they use \p{..}, else in UTF mode), as llama.cpp dispatches them. */
int tok_compile_steps(nj_tok *t, const char *const *re);

/* Splitters: each cuts the piece [b, e) of the fragment's code points cp
 * (class flags fl) into words and appends their lengths, in code points, to
 * out.  Returns 0 or -ENOMEM (tok_split_regex: or a match error). */
int tok_split_gpt2(const uint32_t *cp, const uint16_t *fl, size_t b, size_t e, u32vec *out);
int tok_split_llama3(const uint32_t *cp, const uint16_t *fl, size_t b, size_t e, u32vec *out,
                     int digits, bool marks);
int tok_split_newlines(const uint32_t *cp, size_t b, size_t e, u32vec *out);

/* ------------------------------------------------------------------ */
/* the tokenizer object                                               */
/* ------------------------------------------------------------------ */

typedef struct { const char *ptr; uint32_t len; } strv;

/* string -> interned id; open addressing, linear probing */
typedef struct {
    int32_t  *slot;   /* -1 empty, else interned id */
    uint32_t *hash;   /* low 32 bits of the hash, for quick rejects */
    size_t    mask;
    size_t    count;
} strmap;

/* (left id, right id) -> (rank, result id) */
typedef struct { uint64_t key; int32_t rank; int32_t result; } merge_ent;

typedef struct trie_node { int32_t child, sibling, special; uint8_t byte; } trie_node;

struct nj_tok {
    const gguf_file *f;
    int      type;           /* TOK_TYPE_* */
    char     pre_name[32];
    int      n_vocab;

    /* interned strings: [0, n_vocab) are the vocabulary, then merge-only */
    strv    *str;
    size_t   n_str, cap_str;
    strmap   map;
    arena_blk *arena;

    float    *score;
    uint16_t *attr;

    /* merges */
    merge_ent *merge;
    size_t     merge_mask;
    int32_t    byte_sym[256];   /* interned id of the byte-alphabet char */
    int32_t    byte_tok1[256];  /* token of the 1-byte string, -1 */
    int32_t    byte_hex[256];   /* token "<0xXX>", -1 */
    int32_t    spm_byte[256];   /* SPM byte_to_token, -1 */

    /* pre-tokenizer steps */
    int          n_steps;
    int          step_kind[MAX_STEPS];
    pcre2_code  *step_re[MAX_STEPS];
    bool         need_flags, need_collapsed, need_retext;
    pcre2_general_context *gctx;

    /* special tokens, partition order (text length desc, id asc) */
    int32_t  *special;
    int       n_special;
    trie_node *trie;
    int32_t   trie_root[256];   /* first-level child per byte, -1 */
    size_t    n_trie, cap_trie;

    /* piece cache (special = true rendering) */
    char     *piece_buf;
    uint32_t *piece_off;        /* n_vocab + 1 */

    uint8_t  *eog;              /* n_vocab flags */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask_id, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces,
         escape_ws, byte_encode;
    bool spm_cut_ok;     /* SPM text may be cut before "\u2581" (see spm_encode) */
    bool gemma4;         /* gemma4 rules: newline-only words, forced BOS */
};

static inline int32_t strmap_get(const nj_tok *t, const void *s, size_t n) {
    uint64_t h = hash_bytes(s, n);
    size_t i = h & t->map.mask;
    for (;;) {
        int32_t id = t->map.slot[i];
        if (id < 0) return -1;
        if (t->map.hash[i] == (uint32_t)h && t->str[id].len == n &&
            memcmp(t->str[id].ptr, s, n) == 0)
            return id;
        i = (i + 1) & t->map.mask;
    }
}

static inline uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline const merge_ent *merge_find(const nj_tok *t, int32_t a, int32_t b) {
    uint64_t k = merge_key(a, b);
    size_t i = hash_u64(k) & t->merge_mask;
    for (;;) {
        const merge_ent *e = &t->merge[i];
        if (e->key == k) return e;
        if (e->key == UINT64_MAX) return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

/* ------------------------------------------------------------------ */
/* per-call scratch (tokenizer.c owns it; SPM and BPE use it)         */
/* ------------------------------------------------------------------ */

/* Per-call scratch, freed at the end of tok_encode. */
typedef struct {
    i32vec out;
    /* BPE */
    u32vec cps;          /* code points of the fragment */
    uint16_t *flags; size_t flags_cap;
    uint8_t *coll; size_t coll_cap;     /* collapsed class string */
    uint8_t *retext; size_t retext_cap; /* UTF-8 for ST_RE_UTF */
    u32vec re_off;       /* byte offset of each code point in retext */
    u32vec words, words2;/* piece lengths in code points */
    uint8_t *clean; size_t clean_cap;   /* re-encoded UTF-8 */
    u32vec coff;         /* byte offset of each code point in clean */
    uint8_t *enc; size_t enc_cap;       /* byte-alphabet text of one word */
    /* merge state (BPE and SPM) */
    struct sym { int32_t id; uint32_t start, n; int32_t prev, next; } *sym;
    size_t sym_cap;
    struct hent { uint64_t key; int32_t left, right, a, b; } *heap;
    size_t heap_n, heap_cap;
    uint8_t *buf; size_t buf_cap;       /* SPM text / misc */
    pcre2_match_data *md[MAX_STEPS];
    /* word cache for long inputs: word bytes -> ids, bounded, this call only */
    struct wc_slot { uint64_t h; uint32_t key_off, ids_off; uint16_t key_len, n_ids; } *wc;
    uint8_t *wc_keys;
    int32_t *wc_ids;
    size_t wc_keys_used, wc_ids_used;
} scratch;

#define WC_SLOTS   16384          /* power of two */
#define WC_KEYS    (256u << 10)  /* bytes of cached word text */
#define WC_IDS     (64u << 10)   /* cached ids */
#define WC_MAXWORD 64
#define WC_MIN_TEXT (16u << 10)  /* inputs shorter than this are not cached */

/* Cached ids of word w (appended to s->out) or false. */
static inline bool wc_get(scratch *s, const uint8_t *w, size_t n, uint64_t h) {
    const struct wc_slot *e = &s->wc[h & (WC_SLOTS - 1)];
    if (e->h != h || e->key_len != n || memcmp(s->wc_keys + e->key_off, w, n) != 0) return false;
    if (i32_reserve(&s->out, s->out.n + e->n_ids)) return false;   /* recompute instead */
    memcpy(s->out.v + s->out.n, s->wc_ids + e->ids_off, e->n_ids * sizeof *s->wc_ids);
    s->out.n += e->n_ids;
    return true;
}

/* Remember the ids out[first..] produced for word w; when a pool is full
 * the whole cache starts over (memory stays bounded). */
static inline void wc_put(scratch *s, const uint8_t *w, size_t n, uint64_t h, size_t first) {
    size_t k = s->out.n - first;
    if (k > 0xFFFF || k > WC_IDS) return;
    if (s->wc_keys_used + n > WC_KEYS || s->wc_ids_used + k > WC_IDS) {
        memset(s->wc, 0, WC_SLOTS * sizeof *s->wc);
        s->wc_keys_used = s->wc_ids_used = 0;
    }
    struct wc_slot *e = &s->wc[h & (WC_SLOTS - 1)];
    memcpy(s->wc_keys + s->wc_keys_used, w, n);
    memcpy(s->wc_ids + s->wc_ids_used, s->out.v + first, k * sizeof *s->wc_ids);
    *e = (struct wc_slot){h, (uint32_t)s->wc_keys_used, (uint32_t)s->wc_ids_used, (uint16_t)n, (uint16_t)k};
    s->wc_keys_used += n;
    s->wc_ids_used += k;
}

static inline int grow_bytes(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = nj_realloc(*p, c);
    if (!q) return -ENOMEM;
    *p = q; *cap = c;
    return 0;
}

/* ---- binary min-heap on 64-bit keys ---- */

static inline int heap_push(scratch *s, struct hent e) {
    if (s->heap_n == s->heap_cap) {
        size_t c = s->heap_cap ? s->heap_cap * 2 : 256;
        void *p = nj_realloc(s->heap, c * sizeof *s->heap);
        if (!p) return -ENOMEM;
        s->heap = p; s->heap_cap = c;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p].key <= e.key) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
    return 0;
}

static inline struct hent heap_pop(scratch *s) {
    struct hent top = s->heap[0];
    struct hent last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1].key < s->heap[c].key) c++;
        if (last.key <= s->heap[c].key) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static inline int sym_reserve(scratch *s, size_t n) {
    if (n <= s->sym_cap) return 0;
    size_t c = s->sym_cap ? s->sym_cap : 256;
    while (c < n) c *= 2;
    void *p = nj_realloc(s->sym, c * sizeof *s->sym);
    if (!p) return -ENOMEM;
    s->sym = p; s->sym_cap = c;
    return 0;
}

/* Regex step over one piece [b, e) of code points.  The subject is either
 * the collapsed string (one byte per code point) or the UTF-8 re-text
 * (byte offsets mapped back through re_off).  Matches and the gaps between
 * them become pieces, as in llama.cpp's unicode_regex_split_stl. */
int tok_split_regex(const nj_tok *t, scratch *s, int step, size_t b, size_t e, u32vec *out);

/* One raw fragment (no special tokens in it) of tok_encode, tokenized with
 * SPM (text already has U+2581 for spaces) or BPE; ids are appended to
 * s->out.  Return 0 or a negative code. */
int tok_spm_encode(const nj_tok *t, scratch *s, const uint8_t *text, size_t len);
int tok_bpe_fragment(const nj_tok *t, scratch *s, const uint8_t *text, size_t len);

#endif
