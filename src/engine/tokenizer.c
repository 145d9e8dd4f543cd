/*
 * tokenizer — see tokenizer.h for the contract.  This comment is about how
 * the code reproduces llama.cpp's output, because that is the hard part.
 *
 * Pipeline of tok_encode:
 *
 *   text ──special-token partition──> [raw][<|im_end|>][raw] ...
 *   each raw fragment ──SPM or BPE──> ids,  special fragments ──> their id
 *
 * 1. Partition (this file).  llama.cpp walks its special-token list
 *    (control, user-defined and unknown tokens, longest text first) and,
 *    for each token in turn, cuts every still-raw fragment at each
 *    left-to-right non-overlapping occurrence.  Processing token by token
 *    (not a single leftmost-longest scan) decides overlapping cases, so we
 *    do the same.  To keep this cheap when the list is long (llama3: 256
 *    tokens, deepseek: 2400), a trie scan first finds which special tokens
 *    occur in the text at all; only those take part.  LSTRIP/RSTRIP
 *    attributes trim C-locale whitespace beside a match, as llama.cpp does
 *    for Phi-3.
 *
 * 2. SPM (tok_spm.c).  Spaces become U+2581 (here, with a leading one when
 *    add_space_prefix and the previous fragment was special or absent);
 *    adjacent symbols are merged highest vocabulary score first; symbols
 *    that are not tokens fall back to byte tokens <0xXX>.
 *
 * 3. BPE (tok_pretok.c, tok_bpe.c).  The fragment is decoded to code
 *    points, cut into words by the steps of its pre-tokenizer (hand-written
 *    splitters or PCRE2 regexes, as llama.cpp dispatches them), and each
 *    word's bytes are merged lowest merge rank first.
 *
 * 4. Speed.  Long inputs (>= 16 KB) get a bounded per-call cache from word
 *    bytes to ids (the scratch's word cache, set up here, used by SPM and
 *    BPE), and SPM text is cut into independent segments before each
 *    "\u2581" when the vocabulary makes that exact, so the merge heaps stay
 *    word-sized.  Neither changes any output.
 *
 * Decoding (tok_piece, tok_decode) reads the piece cache tok_load built and
 * applies llama_detokenize's leading-space rule and three clean-up passes.
 *
 * tok_load.c builds the nj_tok; tokenizer_int.h says what the files share
 * and the invariants of the object.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"

int32_t tok_find(const nj_tok *t, const char *text, size_t len) {
    int32_t id = strmap_get(t, text, len);
    return id >= 0 && id < t->n_vocab ? id : -1;
}

/* ------------------------------------------------------------------ */
/* per-call scratch                                                   */
/* ------------------------------------------------------------------ */

static int wc_init(scratch *s) {
    s->wc = nj_calloc(WC_SLOTS, sizeof *s->wc);
    s->wc_keys = nj_malloc(WC_KEYS);
    s->wc_ids = nj_malloc(WC_IDS * sizeof *s->wc_ids);
    if (!s->wc || !s->wc_keys || !s->wc_ids) return -ENOMEM;
    return 0;
}

static void scratch_free(scratch *s) {
    nj_free(s->out.v); nj_free(s->cps.v); nj_free(s->flags); nj_free(s->coll);
    nj_free(s->retext); nj_free(s->re_off.v); nj_free(s->words.v); nj_free(s->words2.v);
    nj_free(s->clean); nj_free(s->coff.v); nj_free(s->enc); nj_free(s->sym);
    nj_free(s->heap); nj_free(s->buf);
    nj_free(s->wc); nj_free(s->wc_keys); nj_free(s->wc_ids);
    for (int i = 0; i < MAX_STEPS; i++) pcre2_match_data_free(s->md[i]);
}

/* ---- special-token partition ---- */

typedef struct { int32_t tok; size_t off, len; } frag;
typedef struct { frag *v; size_t n, cap; } fragvec;

static int frag_push(fragvec *a, int32_t tok, size_t off, size_t len) {
    if (a->n == a->cap) {
        size_t c = a->cap ? a->cap * 2 : 16;
        void *p = nj_realloc(a->v, c * sizeof *a->v);
        if (!p) return -ENOMEM;
        a->v = p; a->cap = c;
    }
    a->v[a->n++] = (frag){tok, off, len};
    return 0;
}

static inline bool c_isspace(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Does [off, off+len) overlap any literal span?  `lit` is sorted by offset
 * and its spans do not overlap each other (tok_encode_ex normalises it), so
 * the ends are sorted too: binary-search the first span ending after off. */
static bool in_literal(const tok_span *lit, size_t n_lit, size_t off, size_t len) {
    size_t lo = 0, hi = n_lit;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lit[mid].off + lit[mid].len <= off) lo = mid + 1; else hi = mid;
    }
    return lo < n_lit && lit[lo].off < off + len;
}

/* Split `text` into raw and special fragments (see the top comment).  A
 * special-token match overlapping a literal span is not a match: the search
 * goes on from the next byte and the bytes stay in the raw fragment.
 * On success *out holds the fragments (caller frees out->v). */
static int partition(const nj_tok *t, const uint8_t *text, size_t len, bool parse_special,
                     const tok_span *lit, size_t n_lit, fragvec *out) {
    int rc = 0;
    fragvec a = {0}, b = {0};
    uint8_t *found = NULL;
    out->v = NULL; out->n = out->cap = 0;
    if (len == 0) return 0;
    if ((rc = frag_push(&a, -1, 0, len))) goto done;
    if (t->n_special == 0) goto done;

    /* which special tokens occur anywhere in the text */
    found = nj_calloc((size_t)t->n_special, 1);
    if (!found) { rc = -ENOMEM; goto done; }
    bool any = false;
    for (size_t i = 0; i < len; i++) {
        int32_t node = t->trie_root[text[i]];
        size_t j = i;
        while (node >= 0) {
            if (t->trie[node].special >= 0) { found[t->trie[node].special] = 1; any = true; }
            if (++j >= len) break;
            uint8_t c = text[j];
            int32_t ch = t->trie[node].child;
            while (ch >= 0 && t->trie[ch].byte != c) ch = t->trie[ch].sibling;
            node = ch;
        }
    }
    if (!any) goto done;

    for (int si = 0; si < t->n_special; si++) {
        if (!found[si]) continue;
        int32_t id = t->special[si];
        unsigned at = t->attr[id];
        if (!parse_special && (at & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        const uint8_t *st = (const uint8_t *)t->str[id].ptr;
        size_t sl = t->str[id].len;
        b.n = 0;
        for (size_t k = 0; k < a.n; k++) {
            frag fr = a.v[k];
            if (fr.tok >= 0) { if ((rc = frag_push(&b, fr.tok, 0, 0))) goto done; continue; }
            /* raw fragment [base, base+blen); search it from `pos` on */
            size_t base = fr.off, blen = fr.len, pos = base;
            for (;;) {
                size_t rest = base + blen - pos;
                const uint8_t *m = rest >= sl ? memmem(text + pos, rest, st, sl) : NULL;
                if (!m) {
                    if (blen > 0 && (rc = frag_push(&b, -1, base, blen))) goto done;
                    break;
                }
                size_t mo = (size_t)(m - text);
                if (n_lit && in_literal(lit, n_lit, mo, sl)) { pos = mo + 1; continue; }
                if (mo > base) {
                    size_t ll = mo - base;
                    if (at & TOK_ATTR_LSTRIP)
                        while (ll > 0 && c_isspace(text[base + ll - 1])) ll--;
                    if (ll > 0 && (rc = frag_push(&b, -1, base, ll))) goto done;
                }
                if ((rc = frag_push(&b, id, 0, 0))) goto done;
                if (mo + sl < base + blen) {
                    size_t ro = mo + sl, rl = blen - (mo - base) - sl;
                    if (at & TOK_ATTR_RSTRIP)
                        while (rl > 0 && c_isspace(text[ro])) { ro++; rl--; }
                    base = pos = ro; blen = rl;
                    if (rl == 0) break;
                } else break;
            }
        }
        fragvec tmp = a; a = b; b = tmp;
    }
done:
    nj_free(found);
    nj_free(b.v);
    if (rc) { nj_free(a.v); return rc; }
    *out = a;
    return 0;
}

static int span_cmp(const void *x, const void *y) {
    const tok_span *a = x, *b = y;
    return a->off < b->off ? -1 : a->off > b->off;
}

/* Copy the non-empty literal spans, clipped to the text, sorted and merged
 * into disjoint runs.  *out is NULL when there are none. */
static int literal_norm(const tok_span *lit, int n_lit, size_t len, tok_span **out, size_t *n_out) {
    *out = NULL; *n_out = 0;
    if (n_lit <= 0) return 0;
    tok_span *v = nj_malloc((size_t)n_lit * sizeof *v);
    if (!v) return -ENOMEM;
    size_t n = 0;
    for (int i = 0; i < n_lit; i++) {
        if (lit[i].off >= len || lit[i].len == 0) continue;
        v[n].off = lit[i].off;
        v[n].len = NJ_MIN(lit[i].len, len - lit[i].off);
        n++;
    }
    qsort(v, n, sizeof *v, span_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && v[i].off <= v[m - 1].off + v[m - 1].len) {
            size_t end = NJ_MAX(v[m - 1].off + v[m - 1].len, v[i].off + v[i].len);
            v[m - 1].len = end - v[m - 1].off;
        } else {
            v[m++] = v[i];
        }
    }
    if (m == 0) { nj_free(v); return 0; }
    *out = v; *n_out = m;
    return 0;
}

int tok_encode(const nj_tok *t, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t *ids, int max) {
    return tok_encode_ex(t, text, len, add_special, parse_special, NULL, 0, ids, max);
}

int tok_encode_ex(const nj_tok *t, const char *text, size_t len, bool add_special,
                  bool parse_special, const tok_span *literal, int n_literal,
                  int32_t *ids, int max) {
    scratch s = {0};
    fragvec fr = {0};
    tok_span *lit = NULL;
    size_t n_lit = 0;
    int rc;
    if (!t || (!text && len) || n_literal < 0 || (n_literal > 0 && !literal)) return -EINVAL;
    if (len > TOK_MAX_TEXT)   /* offsets inside are 32-bit; 4 bytes per code point */
        return nj_fail(NJ_ETOOBIG, "tokenizer: text of %zu bytes exceeds %u", len, (unsigned)TOK_MAX_TEXT);
    const uint8_t *u = (const uint8_t *)text;

    if (len >= WC_MIN_TEXT && (rc = wc_init(&s))) goto done;
    if (add_special && t->add_bos && (rc = i32_push(&s.out, t->bos))) goto done;
    if ((rc = literal_norm(literal, n_literal, len, &lit, &n_lit))) goto done;
    if ((rc = partition(t, u, len, parse_special, lit, n_lit, &fr))) goto done;

    if (t->type == TOK_TYPE_SPM) {
        bool prev_special = true;   /* the first fragment gets the space too */
        for (size_t k = 0; k < fr.n; k++) {
            if (fr.v[k].tok >= 0) {
                if ((rc = i32_push(&s.out, fr.v[k].tok))) goto done;
                prev_special = true;
                continue;
            }
            const uint8_t *p = u + fr.v[k].off;
            size_t n = fr.v[k].len, sp = 0;
            bool lead = t->add_space_prefix && prev_special;
            for (size_t i = 0; i < n; i++) sp += p[i] == ' ';
            if ((rc = grow_bytes(&s.buf, &s.buf_cap, n + 2 * sp + 4))) goto done;
            size_t m = 0;
            if (lead) { memcpy(s.buf, "\xE2\x96\x81", 3); m = 3; }
            for (size_t i = 0; i < n; i++) {
                if (p[i] == ' ') { memcpy(s.buf + m, "\xE2\x96\x81", 3); m += 3; }
                else s.buf[m++] = p[i];
            }
            /* tok_spm_encode reads s.buf; it does not touch it otherwise */
            if ((rc = tok_spm_encode(t, &s, s.buf, m))) goto done;
            prev_special = false;
        }
    } else {
        for (size_t k = 0; k < fr.n; k++) {
            if (fr.v[k].tok >= 0) { if ((rc = i32_push(&s.out, fr.v[k].tok))) goto done; continue; }
            if ((rc = tok_bpe_fragment(t, &s, u + fr.v[k].off, fr.v[k].len))) goto done;
        }
    }
    if (add_special && t->add_eos && (rc = i32_push(&s.out, t->eos))) goto done;

    if (s.out.n > (size_t)INT32_MAX) { rc = NJ_ETOOBIG; goto done; }
    rc = (int)s.out.n;
    if (ids && max > 0 && rc > 0) memcpy(ids, s.out.v, (size_t)NJ_MIN(rc, max) * sizeof *ids);
done:
    nj_free(lit);
    nj_free(fr.v);
    scratch_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ */
/* pieces and decoding                                                 */
/* ------------------------------------------------------------------ */

int tok_piece(const nj_tok *t, int32_t id, bool special, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab) return -EINVAL;
    if (!special && (t->attr[id] & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL))) return 0;
    size_t n = t->piece_off[id + 1] - t->piece_off[id];
    if (buf && cap) memcpy(buf, t->piece_buf + t->piece_off[id], NJ_MIN(n, cap));
    return (int)n;
}

int tok_decode(const nj_tok *t, const int32_t *ids, int n, unsigned flags, char *buf, size_t cap) {
    if (!t || n < 0 || (n && !ids)) return -EINVAL;
    bool special = flags & TOK_DECODE_SPECIAL;
    bool remove_space = t->add_space_prefix;
    if ((flags & TOK_DECODE_REMOVE_SPECIAL) && t->add_bos && n > 0 && ids[0] == t->bos) {
        remove_space = false;   /* sic: llama.cpp keeps the space after a BOS */
        ids++; n--;
    }
    if ((flags & TOK_DECODE_REMOVE_SPECIAL) && t->add_eos && n > 0 && ids[n - 1] == t->eos) n--;

    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int k = tok_piece(t, ids[i], special, NULL, 0);
        if (k < 0) return k;
        total += (size_t)k;
    }
    char *tmp = nj_malloc(total + 1);
    if (!tmp) return -ENOMEM;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int k = tok_piece(t, ids[i], special, tmp + len, total - len);
        const char *p = tmp + len;
        if (remove_space && k > 0 && p[0] == ' ') { memmove(tmp + len, p + 1, (size_t)k - 1); k--; }
        remove_space = false;
        len += (size_t)k;
    }

    if (t->clean_spaces && !(flags & TOK_DECODE_NO_CLEAN) && len > 0) {
        /* the three clean-up passes of llama_detokenize, in place */
        char *x = tmp;
        size_t n1 = len, o = 1;
        for (size_t i = 1; i < n1; i++) {         /* " ?" " !" " ." " ," */
            char c = x[i];
            if (x[i - 1] == ' ' && (c == '?' || c == '!' || c == '.' || c == ',')) o--;
            x[o++] = c;
        }
        size_t n2 = o; o = 1;
        for (size_t i = 1; i < n2; i++) {         /* " ' " -> "'" */
            char c = x[i];
            if (c == '\'' && i + 1 < n2 && x[i - 1] == ' ' && x[i + 1] == ' ') {
                o--;
                x[++i] = '\0';
            }
            x[o++] = c;
        }
        size_t n3 = o; o = 1;
        for (size_t i = 1; i < n3; i++) {         /* " 's" " 'm" " 're" " 've" */
            char c = x[i];
            if (x[i - 1] == ' ' && c == '\'' && i + 1 < n3) {
                char c1 = x[i + 1];
                if (c1 == 's' || c1 == 'm') o--;
                else if (i + 2 < n3 && ((c1 == 'r' && x[i + 2] == 'e') || (c1 == 'v' && x[i + 2] == 'e'))) o--;
            }
            x[o++] = c;
        }
        len = o;
    }
    if (buf && cap) {
        memcpy(buf, tmp, NJ_MIN(len, cap));
        if (len < cap) buf[len] = 0;
    }
    nj_free(tmp);
    return len > (size_t)INT32_MAX ? NJ_ETOOBIG : (int)len;
}

/* ------------------------------------------------------------------ */
/* accessors                                                           */
/* ------------------------------------------------------------------ */

int         tok_n_vocab(const nj_tok *t)  { return t->n_vocab; }
int         tok_type(const nj_tok *t)     { return t->type; }
const char *tok_pre_name(const nj_tok *t) { return t->pre_name; }
int32_t     tok_bos(const nj_tok *t)      { return t->bos; }
int32_t     tok_eos(const nj_tok *t)      { return t->eos; }
int32_t     tok_eot(const nj_tok *t)      { return t->eot; }
int32_t     tok_unk(const nj_tok *t)      { return t->unk; }
int32_t     tok_pad(const nj_tok *t)      { return t->pad; }
int32_t     tok_nl(const nj_tok *t)       { return t->nl; }
bool        tok_add_bos(const nj_tok *t)  { return t->add_bos; }
bool        tok_add_eos(const nj_tok *t)  { return t->add_eos; }

bool tok_is_eog(const nj_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}
bool tok_is_control(const nj_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_CONTROL);
}
unsigned tok_attr(const nj_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->attr[id] : 0;
}
const char *tok_text(const nj_tok *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->str[id].len;
    return t->str[id].ptr;
}
