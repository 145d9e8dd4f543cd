/*
 * tok_spm — SentencePiece ("llama" tokenizer model) merging of one raw
 * fragment, as llama.cpp's llm_tokenizer_spm does it.
 *
 * The fragment arrives with ' ' already replaced by U+2581 (and the leading
 * U+2581 of add_space_prefix, see tok_encode_ex).  It is cut into UTF-8
 * "characters" by lead byte only (no validation).  A binary heap holds
 * adjacent pairs whose joined text is a vocabulary entry, keyed by (score
 * desc, left index asc); popping merges the pair if both sides are
 * unchanged since it was pushed.  Symbols that are not tokens become byte
 * tokens <0xXX> (or the one-byte token, or <unk>).  llama.cpp's rev_merge
 * re-segmentation only ever applies to merged symbols, which are tokens by
 * construction, so plain byte fallback is equivalent.
 *
 * Speed.  When tok_load found the vocabulary fit (spm_cut_ok: every entry
 * is "\u2581"*X with no "\u2581" inside X), tok_spm_encode cuts the text
 * before each "\u2581" that follows a symbol that is not "\u2581" and
 * merges the segments independently; segments of long inputs go through
 * the word cache.  The result is the one a single heap over the fragment
 * gives (see tok_spm_encode).
 *
 * Threads: reads the nj_tok only; all state is the caller's scratch.
 */
#include <string.h>

#include "tokenizer_int.h"

/* Order: higher score first, then lower left index.  Map the float to an
 * unsigned that sorts ascending, then invert so the min-heap pops max. */
static inline uint64_t spm_key(float score, int32_t left) {
    uint32_t u;
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)(~u) << 32) | (uint32_t)left;
}

static int spm_try_pair(const nj_tok *t, scratch *s, const uint8_t *text, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    size_t n = (size_t)s->sym[l].n + s->sym[r].n;
    int32_t id = tok_find(t, (const char *)text + s->sym[l].start, n);
    if (id < 0) return 0;
    return heap_push(s, (struct hent){spm_key(t->score[id], l), l, r, (int32_t)n, 0});
}

/* One SPM segment: merge with a heap, then ids (with byte fallback). */
static int spm_segment(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    int rc;
    if (len == 0) return 0;
    if ((rc = sym_reserve(s, len))) return rc;
    int32_t nsym = 0;
    for (size_t off = 0; off < len;) {
        size_t k = NJ_MIN(utf8_len_lead(text[off]), len - off);
        s->sym[nsym] = (struct sym){0, (uint32_t)off, (uint32_t)k, nsym - 1, -1};
        off += k;
        if (off < len) s->sym[nsym].next = nsym + 1;
        nsym++;
    }
    s->heap_n = 0;
    for (int32_t i = 1; i < nsym; i++)
        if ((rc = spm_try_pair(t, s, text, i - 1, i))) return rc;
    while (s->heap_n) {
        struct hent e = heap_pop(s);
        struct sym *L = &s->sym[e.left], *R = &s->sym[e.right];
        if (L->n == 0 || R->n == 0 || (int32_t)(L->n + R->n) != e.a) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) s->sym[R->next].prev = e.left;
        if ((rc = spm_try_pair(t, s, text, L->prev, e.left))) return rc;
        if ((rc = spm_try_pair(t, s, text, e.left, L->next))) return rc;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const struct sym *y = &s->sym[i];
        int32_t id = tok_find(t, (const char *)text + y->start, y->n);
        if (id >= 0) { if ((rc = i32_push(&s->out, id))) return rc; continue; }
        for (uint32_t k = 0; k < y->n; k++) {
            int32_t b = t->spm_byte[text[y->start + k]];
            if (b < 0) b = t->unk;   /* llama.cpp would throw here */
            if (b >= 0 && (rc = i32_push(&s->out, b))) return rc;
        }
    }
    return 0;
}

static int spm_segment_cached(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    if (!s->wc || len > WC_MAXWORD) return spm_segment(t, s, text, len);
    uint64_t h = hash_bytes(text, len);
    if (wc_get(s, text, len, h)) return 0;
    size_t first = s->out.n;
    int rc = spm_segment(t, s, text, len);
    if (rc == 0) wc_put(s, text, len, h, first);
    return rc;
}

/* SPM over a whole fragment.  When the vocabulary allows (spm_cut_ok), the
 * text is cut before every "\u2581" symbol that follows a symbol that is not
 * "\u2581": no merge can cross such a cut, merges on the two sides never
 * interact, and the (score, left) order within a side is unchanged, so the
 * result is the same as one global heap, with word-sized heaps. */
int tok_spm_encode(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    if (!t->spm_cut_ok) return spm_segment(t, s, text, len);
    size_t seg = 0;
    bool prev_sp = false;
    for (size_t off = 0; off < len;) {
        size_t k = NJ_MIN(utf8_len_lead(text[off]), len - off);
        bool sp = k == 3 && memcmp(text + off, "\xE2\x96\x81", 3) == 0;
        if (sp && !prev_sp && off > seg) {
            int rc = spm_segment_cached(t, s, text + seg, off - seg);
            if (rc) return rc;
            seg = off;
        }
        prev_sp = sp;
        off += k;
    }
    return spm_segment_cached(t, s, text + seg, len - seg);
}
