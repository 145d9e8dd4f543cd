/*
 * grammar_api — the nj_grammar_* entry points of nightjar.h: an nj_grammar
 * is a compiled gram (grammar.h), the model's token trie and the matcher
 * state of one generation.
 *
 * Flow of a constrained generation (see cli_run.c for the reference loop):
 *
 *   forced = nj_grammar_forced()     n > 0: accept them, one batched eval
 *   done   = nj_grammar_done() == 2  stop without sampling
 *   mask   -> sample -> accept       one token, one eval
 *   budget exhausted                 nj_grammar_close() finishes the text
 *
 * Ownership: the nj_grammar owns its gram; the trie belongs to the model.
 * One thread at a time per nj_grammar (the gram's DFA cache grows lazily).
 */
#include <math.h>
#include <string.h>

#include "grammar.h"
#include "json_schema.h"
#include "model.h"
#include "nightjar.h"
#include "util.h"

#define FORCED_MAX_BYTES 512

struct nj_grammar {
    const nj_model  *m;
    const gram_trie *trie;
    gram            *g;
    int32_t          st;
    bool             ended;      /* an end-of-generation token was accepted */
    grammar_counters cnt;
    int32_t         *tmp;        /* tokenizer scratch, FORCED_MAX_BYTES + 1 ids */
};

static nj_grammar *wrap(const nj_model *m, gram *gr, int *err) {
    int rc = 0;
    nj_grammar *g = nj_calloc(1, sizeof *g);
    if (!g) { rc = -ENOMEM; goto err; }
    g->m = m;
    g->g = gr;
    g->trie = gram_trie_get(m, &rc);
    if (!g->trie) goto err;
    if (gram_trie_n_vocab(g->trie) != m->hp.n_vocab && m->hp.n_vocab > 0) {
        rc = nj_fail(NJ_EFORMAT, "vocabulary of %d tokens but the model has %d logits",
                     gram_trie_n_vocab(g->trie), m->hp.n_vocab);
        goto err;
    }
    g->tmp = nj_malloc(sizeof *g->tmp * (FORCED_MAX_BYTES + 1));
    if (!g->tmp) { rc = -ENOMEM; goto err; }
    g->st = gram_start(gr);
    if (err) *err = 0;
    return g;
err:
    if (g) g->g = NULL;
    nj_grammar_free(g);
    gram_free(gr);
    if (err) *err = rc ? rc : -ENOMEM;
    return NULL;
}

nj_grammar *nj_grammar_from_schema(const nj_model *m, const char *schema_json, int *err) {
    if (!m || !schema_json) {
        if (err) *err = nj_fail(-EINVAL, "no model or no schema");
        return NULL;
    }
    gram *gr = json_schema_compile(schema_json, strlen(schema_json), err);
    return gr ? wrap(m, gr, err) : NULL;
}

nj_grammar *nj_grammar_json_object(const nj_model *m, int *err) {
    if (!m) {
        if (err) *err = nj_fail(-EINVAL, "no model");
        return NULL;
    }
    gram *gr = json_object_grammar(err);
    return gr ? wrap(m, gr, err) : NULL;
}

void nj_grammar_free(nj_grammar *g) {
    if (!g) return;
    gram_free(g->g);
    nj_free(g->tmp);
    nj_free(g);
}

void nj_grammar_reset(nj_grammar *g) {
    g->st = gram_start(g->g);
    (void)gram_compact_cache(g->g, &g->st);   /* failure leaves a valid, larger cache */
    g->ended = false;
}

int grammar_allowed(nj_grammar *g, const uint64_t **bits, int *n_allowed) {
    if (g->ended) return nj_fail(NJ_ESTATE, "the document has ended");
    int crc = gram_compact_cache(g->g, &g->st);
    if (crc) return crc;
    uint64_t t0 = nj_now_ns();
    int rc = gram_mask(g->g, g->trie, g->st, bits, n_allowed);
    g->cnt.n_mask_calls++;
    g->cnt.mask_us += (double)(nj_now_ns() - t0) / 1e3;
    if (rc) return rc;
    if (*n_allowed <= 0) return nj_fail(NJ_ESTATE, "no token of the vocabulary continues the document");
    return 0;
}

int nj_grammar_mask(nj_grammar *g, float *logits) {
    const uint64_t *bits;
    int n;
    int rc = grammar_allowed(g, &bits, &n);
    if (rc) return rc;
    const int V = gram_trie_n_vocab(g->trie);
    for (int w = 0; w < (V + 63) / 64; w++) {
        uint64_t x = bits[w];
        if (x == ~(uint64_t)0) continue;
        const int hi = (w + 1) * 64 < V ? (w + 1) * 64 : V;
        if (x == 0) {
            for (int i = w * 64; i < hi; i++) logits[i] = -INFINITY;
            continue;
        }
        for (int i = w * 64; i < hi; i++)
            if (!((x >> (i & 63)) & 1)) logits[i] = -INFINITY;
    }
    return n;
}

int nj_grammar_accept(nj_grammar *g, int32_t id) {
    if (g->ended) return nj_fail(NJ_ESTATE, "the document has ended");
    if (gram_trie_is_eog(g->trie, id)) {
        if (!gram_accepting(g->g, g->st))
            return nj_fail(-EINVAL, "end of generation before the document is complete");
        g->ended = true;
        g->cnt.n_accepted++;
        return 0;
    }
    int len;
    const char *p = gram_trie_piece(g->trie, id, &len);
    if (!p) return nj_fail(-EINVAL, "token %d cannot appear in a constrained document", id);
    int32_t t = gram_advance(g->g, g->st, p, (size_t)len);
    if (t == GRAM_DEAD) return nj_fail(-EINVAL, "token %d ('%.*s') is not allowed here", id, len, p);
    if (t < 0) return t;
    g->st = t;
    int crc = gram_compact_cache(g->g, &g->st);
    if (crc) return crc;
    g->cnt.n_accepted++;
    return 0;
}

bool grammar_token_ok(nj_grammar *g, int32_t id) {
    if (g->ended) return false;
    if (gram_trie_is_eog(g->trie, id)) return gram_accepting(g->g, g->st);
    int len;
    const char *p = gram_trie_piece(g->trie, id, &len);
    return p && gram_advance(g->g, g->st, p, (size_t)len) >= 0;
}

int nj_grammar_done(const nj_grammar *g) {
    if (g->ended) return 2;
    if (!gram_accepting(g->g, g->st)) return 0;
    return gram_final(g->g, g->st) ? 2 : 1;
}

/* Tokenize text and keep the prefix of tokens (at most max) the grammar
 * accepts from the current state; *st_out gets the state after them,
 * *st_last the state before the last.  *n_all gets the number of tokens
 * of the whole text. */
static int tokens_for(nj_grammar *g, const char *text, int n, int32_t *ids, int max,
                      int32_t *st_out, int32_t *st_last, int *n_all) {
    int nt = nj_tokenize(g->m, text, (size_t)n, false, false, g->tmp, FORCED_MAX_BYTES + 1);
    if (nt < 0) return nt;
    /* The tokenizer need not give back the very bytes: text that starts
     * inside a UTF-8 sequence (a document cut after a byte token) comes
     * back as U+FFFD.  From the first token that differs, take the
     * longest token of the trie at each byte instead. */
    int off = 0, j = 0;
    for (; j < nt && j <= FORCED_MAX_BYTES; j++) {
        int len;
        const char *p = gram_trie_piece(g->trie, g->tmp[j], &len);
        if (!p || len > n - off || memcmp(p, text + off, (size_t)len) != 0) break;
        off += len;
    }
    if (j < nt || off < n) {
        nt = j;
        while (off < n && nt <= FORCED_MAX_BYTES) {
            int len = gram_trie_longest(g->trie, text + off, n - off, &g->tmp[nt]);
            if (len <= 0) break;
            off += len;
            nt++;
        }
    }
    *n_all = nt;
    if (nt > FORCED_MAX_BYTES + 1) nt = FORCED_MAX_BYTES + 1;
    int32_t st = g->st, prev = st;
    int k = 0;
    for (; k < nt && k < max; k++) {
        int len;
        const char *p = gram_trie_piece(g->trie, g->tmp[k], &len);
        if (!p) break;
        int32_t t = gram_advance(g->g, st, p, (size_t)len);
        if (t < GRAM_DEAD) return t;
        if (t < 0) break;
        ids[k] = g->tmp[k];
        prev = st;
        st = t;
    }
    *st_out = st;
    *st_last = prev;
    return k;
}

int nj_grammar_forced(nj_grammar *g, int32_t *ids, int max) {
    if (g->ended || max <= 0) return 0;
    char buf[FORCED_MAX_BYTES];
    int n = gram_forced_bytes(g->g, g->st, buf, FORCED_MAX_BYTES);
    if (n <= 0) return n;
    int32_t st, st_last;
    int n_all;
    int k = tokens_for(g, buf, n, ids, max, &st, &st_last, &n_all);
    if (k <= 0) return k;
    /* leave the last token to the model if a longer allowed token starts with it */
    int len;
    const char *p = gram_trie_piece(g->trie, ids[k - 1], &len);
    int32_t after = gram_advance(g->g, st_last, p, (size_t)len);
    if (gram_trie_extends(g->g, g->trie, after, p, len)) k--;
    g->cnt.n_forced += k;
    return k;
}

int nj_grammar_close(nj_grammar *g, int32_t *ids, int max) {
    if (g->ended) return 0;
    char buf[FORCED_MAX_BYTES];
    int n = gram_close_bytes(g->g, g->st, buf, FORCED_MAX_BYTES);
    if (n < 0) return n;
    if (n > FORCED_MAX_BYTES) return nj_fail(NJ_ETOOBIG, "completing the document needs %d bytes", n);
    int32_t st, st_last;
    int nt;
    int k = tokens_for(g, buf, n, ids, max, &st, &st_last, &nt);
    if (k < 0) return k;
    if (nt > max) return nt;   /* caller retries with room for all */
    if (k != nt || !gram_accepting(g->g, st))
        return nj_fail(NJ_ESTATE, "the completion's tokens are not accepted by the grammar");
    return nt;
}

void grammar_get_counters(const nj_grammar *g, grammar_counters *c) {
    *c = g->cnt;
    gram_get_stats(g->g, &c->g);
}

gram *grammar_gram(nj_grammar *g) { return g->g; }
int32_t grammar_state(const nj_grammar *g) { return g->st; }
