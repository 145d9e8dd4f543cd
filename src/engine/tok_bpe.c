/*
 * tok_bpe — byte-level BPE ("gpt2" and "gemma4" tokenizer models) of one
 * raw fragment, as llama.cpp's llm_tokenizer_bpe does it.
 *
 * tok_bpe_fragment decodes the fragment to code points with llama.cpp's
 * lenient decoder (bad sequences become U+FFFD one byte at a time), builds
 * what the pre-tokenizer steps read (class flags, the collapsed class
 * string, the UTF-8 re-text; see tok_pretok.c), runs the steps, re-encodes
 * the code points to UTF-8 and merges each word.
 *
 * Merging a word: symbols start as single bytes mapped through the GPT-2
 * byte alphabet (or as UTF-8 characters for raw-UTF-8 BPE), and a min-heap
 * keyed by (merge rank, left index) applies merges.  Strings are interned:
 * every vocabulary entry and every string a merge can produce has an
 * integer id, and the merge table maps (left id, right id) to (rank,
 * result id), so the merge loop never hashes strings.  A symbol left that
 * is not a token falls back byte by byte, as llama.cpp's does.  Words of
 * long inputs go through the word cache.
 *
 * Threads: tok_b2c/tok_c2b are filled once (from tok_load, under
 * pthread_once) and read-only after; everything else read here is the
 * nj_tok (read-only) or the caller's scratch.
 */
#include <string.h>

#include "tokenizer_int.h"

/* GPT-2 byte alphabet: bytes that are printable Latin-1 map to themselves,
 * the other 68 to U+0100.. in byte order.  Both directions are built once
 * (from tok_load, under pthread_once). */
uint32_t tok_b2c[256];
int16_t  tok_c2b[0x144];

void tok_alphabet_init(void) {
    uint32_t n = 0;
    for (int i = 0; i < 0x144; i++) tok_c2b[i] = -1;
    for (int c = 0; c < 256; c++) {
        bool keep = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        tok_b2c[c] = keep ? (uint32_t)c : 256 + n++;
        tok_c2b[tok_b2c[c]] = (int16_t)c;
    }
}

static bool all_newlines(const uint8_t *w, size_t n) {
    for (size_t i = 0; i < n; i++) if (w[i] != '\n') return false;
    return true;
}

static int bpe_add_pair(const nj_tok *t, scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    int32_t a = s->sym[l].id, b = s->sym[r].id;
    if (a < 0 || b < 0) return 0;
    const merge_ent *m = merge_find(t, a, b);
    if (!m) return 0;
    return heap_push(s, (struct hent){((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)l, l, r, a, b});
}

/* Merge one word: bytes [wb, we) of s->clean. */
static int bpe_word(const nj_tok *t, scratch *s, size_t wb, size_t we) {
    const uint8_t *w = s->clean + wb;
    size_t wl = we - wb;
    int rc;
    if (wl == 0) return 0;

    if (t->ignore_merges || (t->gemma4 && all_newlines(w, wl))) {
        /* whole word as one token if it is one */
        int32_t id;
        if (t->byte_encode) {
            if ((rc = grow_bytes(&s->enc, &s->enc_cap, wl * 2))) return rc;
            size_t n = 0;
            for (size_t i = 0; i < wl; i++) n += (size_t)utf8_put(byte_to_cp(w[i]), s->enc + n);
            id = tok_find(t, (const char *)s->enc, n);
        } else {
            id = tok_find(t, (const char *)w, wl);
        }
        if (id >= 0) return i32_push(&s->out, id);
    }

    if ((rc = sym_reserve(s, wl))) return rc;
    int32_t nsym = 0;
    if (t->byte_encode) {
        for (size_t i = 0; i < wl; i++) {
            s->sym[nsym] = (struct sym){t->byte_sym[w[i]], (uint32_t)i, 1, nsym - 1, nsym + 1};
            nsym++;
        }
    } else {
        for (size_t i = 0; i < wl;) {
            size_t k = NJ_MIN(utf8_len_lead(w[i]), wl - i);
            s->sym[nsym] = (struct sym){strmap_get(t, w + i, k), (uint32_t)i, (uint32_t)k, nsym - 1, nsym + 1};
            nsym++;
            i += k;
        }
    }
    s->sym[nsym - 1].next = -1;

    s->heap_n = 0;
    for (int32_t i = 1; i < nsym; i++)
        if ((rc = bpe_add_pair(t, s, i - 1, i))) return rc;
    while (s->heap_n) {
        struct hent e = heap_pop(s);
        struct sym *L = &s->sym[e.left], *R = &s->sym[e.right];
        if (L->n == 0 || R->n == 0 || L->id != e.a || R->id != e.b) continue;
        const merge_ent *m = merge_find(t, e.a, e.b);
        L->n += R->n;
        L->id = m->result;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) s->sym[R->next].prev = e.left;
        if ((rc = bpe_add_pair(t, s, L->prev, e.left))) return rc;
        if ((rc = bpe_add_pair(t, s, e.left, L->next))) return rc;
    }

    for (int32_t i = 0; i < nsym; i++) {
        const struct sym *y = &s->sym[i];
        if (y->n == 0) continue;
        if (y->id >= 0 && y->id < t->n_vocab) {
            if ((rc = i32_push(&s->out, y->id))) return rc;
            continue;
        }
        /* Not a token: llama.cpp looks up each byte of the symbol's
         * (alphabet-encoded) text as a one-byte string, or <0xXX> for
         * raw-UTF-8 BPE, and drops what it does not find. */
        for (uint32_t k = 0; k < y->n; k++) {
            uint8_t byte = w[y->start + k];
            if (!t->byte_encode) {
                if (t->byte_hex[byte] >= 0 && (rc = i32_push(&s->out, t->byte_hex[byte]))) return rc;
                continue;
            }
            uint8_t u[4];
            int m = utf8_put(byte_to_cp(byte), u);
            for (int j = 0; j < m; j++)
                if (t->byte_tok1[u[j]] >= 0 && (rc = i32_push(&s->out, t->byte_tok1[u[j]]))) return rc;
        }
    }
    return 0;
}

/* Tokenize one raw fragment with BPE: decode, pre-tokenize, merge words. */
int tok_bpe_fragment(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    int rc;
    if (t->escape_ws) {   /* ' ' -> U+2581 before anything else */
        size_t sp = 0;
        for (size_t i = 0; i < len; i++) sp += text[i] == ' ';
        if ((rc = grow_bytes(&s->buf, &s->buf_cap, len + 2 * sp + 1))) return rc;
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') { memcpy(s->buf + n, "\xE2\x96\x81", 3); n += 3; }
            else s->buf[n++] = text[i];
        }
        text = s->buf;
        len = n;
    }

    /* code points, llama.cpp's lenient decoding */
    s->cps.n = 0;
    if ((rc = u32_reserve(&s->cps, len + 1))) return rc;
    for (size_t i = 0; i < len;) s->cps.v[s->cps.n++] = utf8_next(text, len, &i);
    const size_t N = s->cps.n;
    const uint32_t *cp = s->cps.v;
    if (N == 0) return 0;

    if (t->need_flags) {
        if (N > s->flags_cap) {
            void *p = nj_realloc(s->flags, N * sizeof *s->flags);
            if (!p) return -ENOMEM;
            s->flags = p; s->flags_cap = N;
        }
        for (size_t i = 0; i < N; i++) s->flags[i] = cp_flags(cp[i]);
    }
    if (t->need_collapsed) {
        if ((rc = grow_bytes(&s->coll, &s->coll_cap, N))) return rc;
        for (size_t i = 0; i < N; i++) {
            uint32_t c = cp[i];
            uint16_t f = s->flags[i];
            uint8_t o;
            if (c < 128) o = (uint8_t)c;
            else if (f & F_WS) o = 0x0B;
            else if (f & F_NUMBER) o = 0xD1;
            else if (f & F_LETTER) o = 0xD2;
            else if (f & F_PUNCT) o = 0xD3;
            else if (f & F_MARK) o = 0xD4;
            else if (f & F_SYMBOL) o = 0xD5;
            else o = 0xD0;
            s->coll[i] = o;
        }
    }
    if (t->need_retext) {
        /* the code points as llama.cpp's wide-string regex sees them:
         * non-ASCII whitespace as 0x0B; surrogates (which PCRE2 cannot take
         * in UTF mode) as U+FFFF, which no pattern of ours matches either */
        if ((rc = grow_bytes(&s->retext, &s->retext_cap, N * 4 + 1))) return rc;
        s->re_off.n = 0;
        if ((rc = u32_reserve(&s->re_off, N + 1))) return rc;
        size_t n = 0;
        for (size_t i = 0; i < N; i++) {
            uint32_t c = cp[i];
            if (c > 0x7F && cp_is_ws(c)) c = 0x0B;
            else if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFF;
            s->re_off.v[i] = (uint32_t)n;
            n += (size_t)utf8_put(c, s->retext + n);
        }
        s->re_off.v[N] = (uint32_t)n;
        s->re_off.n = N + 1;
    }

    /* pre-tokenizer steps: each cuts every current piece */
    s->words.n = 0;
    if ((rc = u32_push(&s->words, (uint32_t)N))) return rc;
    for (int st = 0; st < t->n_steps; st++) {
        int kind = t->step_kind[st];
        if ((kind == ST_RE_BYTE || kind == ST_RE_UTF) && !s->md[st]) {
            s->md[st] = pcre2_match_data_create_from_pattern(t->step_re[st], t->gctx);
            if (!s->md[st]) return -ENOMEM;
        }
        s->words2.n = 0;
        size_t pos = 0;
        for (size_t w = 0; w < s->words.n; w++) {
            size_t b = pos, e = pos + s->words.v[w];
            pos = e;
            switch (kind) {
            case ST_GPT2:     rc = tok_split_gpt2(cp, s->flags, b, e, &s->words2); break;
            case ST_LLAMA3:   rc = tok_split_llama3(cp, s->flags, b, e, &s->words2, 3, false); break;
            case ST_QWEN2:    rc = tok_split_llama3(cp, s->flags, b, e, &s->words2, 1, false); break;
            case ST_QWEN35:   rc = tok_split_llama3(cp, s->flags, b, e, &s->words2, 1, true); break;
            case ST_NEWLINES: rc = tok_split_newlines(cp, b, e, &s->words2); break;
            default:          rc = tok_split_regex(t, s, st, b, e, &s->words2); break;
            }
            if (rc) return rc;
        }
        u32vec tmp = s->words; s->words = s->words2; s->words2 = tmp;
    }

    /* re-encode to UTF-8 (invalid input is now U+FFFD), then merge words */
    if ((rc = grow_bytes(&s->clean, &s->clean_cap, N * 4 + 1))) return rc;
    if ((rc = u32_reserve(&s->coff, N + 1))) return rc;
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        s->coff.v[i] = (uint32_t)n;
        n += (size_t)utf8_put(cp[i], s->clean + n);
    }
    s->coff.v[N] = (uint32_t)n;
    size_t pos = 0;
    for (size_t w = 0; w < s->words.n; w++) {
        size_t b = pos, e = pos + s->words.v[w];
        pos = e;
        size_t wb = s->coff.v[b], we = s->coff.v[e];
        if (s->wc && we - wb <= WC_MAXWORD) {
            uint64_t h = hash_bytes(s->clean + wb, we - wb);
            if (wc_get(s, s->clean + wb, we - wb, h)) continue;
            size_t first = s->out.n;
            if ((rc = bpe_word(t, s, wb, we))) return rc;
            wc_put(s, s->clean + wb, we - wb, h, first);
        } else if ((rc = bpe_word(t, s, wb, we))) return rc;
    }
    return 0;
}
