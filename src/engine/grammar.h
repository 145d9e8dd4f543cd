/*
 * grammar — byte-level output constraints: a grammar builder, its compiled
 * automaton, and the token masks that bind a model's sampling to it.
 *
 * Pipeline.
 *
 *   gb_* builder (a small expression tree: byte sets, sequences,
 *   alternatives, bounded/unbounded repetition, references)
 *      |  gram_compile: continuation-passing translation to an NFA over
 *      v  bytes (one state per byte set, epsilon fan-outs), bounded repetition
 *   NFA   unrolled, references expanded to a bounded depth
 *      |  lazy subset construction, one transition per (state, byte class)
 *      v  computed on first use and cached
 *   DFA   a matcher state is one int32: clone = copy, snapshot = store
 *      |  gram_mask: walk the model's token trie from a DFA state
 *      v
 *   bitset of allowed token ids (cached per DFA state)
 *
 * Why a finite automaton and not a pushdown one.  Everything the JSON-schema
 * compiler emits is regular once recursion is bounded: nested objects and
 * arrays are expanded copies, $ref recursion and the free-form "any JSON
 * value" stop at a fixed depth (GRAM_REF_DEPTH, json_schema.h's free-form
 * depth).  That is a sound restriction (every document the automaton allows
 * is valid; some deep valid documents are not generated), and in exchange a
 * matcher state is an integer, advancing is one table lookup, masks are a
 * pure function of the state and so can be cached, and "can end" / "forced
 * continuation" / "shortest completion" are cheap questions about one state.
 * Expansion is capped at GRAM_MAX_STATES NFA states (NJ_ETOOBIG beyond).
 *
 * Invariants.  Every NFA state the compiler creates can reach the final
 * state (dead alternatives are dropped during construction), so a non-empty
 * DFA state can always be completed: masking never leads into a dead end.
 * Each byte set is interned; byte classes partition 0..255 so that bytes of
 * one class behave identically everywhere in the automaton.
 *
 * Ownership and threads.  A gb is owned by its builder code; gram_compile
 * reads it and the gb may be freed afterwards.  A gram owns its NFA, its DFA
 * cache and its mask cache; the DFA cache grows lazily, so a gram is used by
 * one thread at a time (an nj_grammar per request).  The token trie
 * (gram_trie) belongs to the model, is built once under a process-wide
 * mutex and is immutable afterwards: any number of grams on any threads
 * read it.
 */
#ifndef NJ_GRAMMAR_H
#define NJ_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nightjar.h"

#define GRAM_MAX_STATES  (2u << 20)   /* NFA states after expansion */
#define GRAM_REF_DEPTH   3            /* nested expansions of one reference */
#define GRAM_MAX_DFA     (1u << 16)   /* lazily built DFA states (hard cap) */
#define GRAM_DFA_SOFT    (3u << 14)   /* gram_compact_cache starts over beyond this */

/* ---- builder ---- */

typedef struct gb gb;

gb  *gb_new(void);
void gb_free(gb *b);
/* Sticky error: 0, or the first failure (-ENOMEM, NJ_ETOOBIG).  Every node
 * constructor returns a node id >= 0, or -1 once the builder has failed
 * (and a constructor given a -1 child returns -1), so code can build a
 * whole tree and check gb_error once. */
int  gb_error(const gb *b);

int gb_set(gb *b, const uint64_t set[4]);    /* one byte of the set */
int gb_byte(gb *b, uint8_t c);
int gb_range(gb *b, uint8_t lo, uint8_t hi);  /* one byte in [lo, hi] */
int gb_lit(gb *b, const char *s, size_t n);   /* exactly these bytes */
int gb_empty(gb *b);                          /* the empty string */
int gb_seq(gb *b, const int *kids, int n);
int gb_alt(gb *b, const int *kids, int n);    /* n == 0: the empty language */
int gb_seq2(gb *b, int x, int y);
int gb_alt2(gb *b, int x, int y);
/* x repeated min..max times; max < 0 = unbounded. */
int gb_rep(gb *b, int x, int min, int max);
int gb_opt(gb *b, int x);
/* A forward reference: a node whose body is given later by gb_ref_set
 * (cycles allowed; expanded at most GRAM_REF_DEPTH times inside itself). */
int gb_ref(gb *b);
int gb_ref_set(gb *b, int ref, int body);

/* ---- compiled grammar and matcher ---- */

typedef struct gram gram;

/* Compile the language of `root`.  NULL with *err: -ENOMEM; NJ_ETOOBIG
 * (more than GRAM_MAX_STATES states); NJ_EUNSUPPORTED (the language is
 * empty, e.g. a schema whose only documents are deeper than the recursion
 * bound).  The builder is not modified. */
gram *gram_compile(const gb *b, int root, int *err);
void  gram_free(gram *g);

/* Matcher states are int32 ids >= 0; GRAM_DEAD means "no document has this
 * prefix". */
#define GRAM_DEAD (-1)
int32_t gram_start(const gram *g);
/* Next state after byte c: a state id, GRAM_DEAD, or another negative
 * error (-ENOMEM, NJ_ETOOBIG when the DFA cache is full). */
int32_t gram_step(gram *g, int32_t st, uint8_t c);
/* Advance over n bytes; same returns. */
int32_t gram_advance(gram *g, int32_t st, const void *bytes, size_t n);
bool    gram_accepting(const gram *g, int32_t st);
/* True if no byte can follow (only ending is possible). */
bool    gram_final(gram *g, int32_t st);
/* The continuation forced from st: the bytes while exactly one byte is
 * possible and the state cannot end.  Writes up to cap bytes, returns the
 * count (or < 0 on error). */
int gram_forced_bytes(gram *g, int32_t st, char *buf, int cap);
/* A shortest byte string that takes st to an accepting state (letters and
 * digits preferred where there is a choice).  Returns the length, which
 * may exceed cap (nothing past cap written), or < 0. */
int gram_close_bytes(gram *g, int32_t st, char *buf, int cap);
/* Bound the DFA cache: if it holds more than GRAM_DFA_SOFT states, drop
 * every cached state, transition and mask and re-create *st (the one state
 * the caller holds; other ids become invalid).  Call between operations,
 * never while holding other state ids.  0 or -ENOMEM. */
int gram_compact_cache(gram *g, int32_t *st);
/* Test hook: the threshold of gram_compact_cache (default GRAM_DFA_SOFT). */
void gram_set_cache_limit(gram *g, unsigned n);
/* Whole-string test: does the language contain these bytes? */
bool gram_matches(gram *g, const void *bytes, size_t n);

/* Sizes, for tests and reports. */
typedef struct gram_stats {
    int n_nfa, n_dfa, n_classes, n_sets;
    int n_masks_built, n_mask_hits;
    double mask_build_us;    /* total time spent walking the trie */
    long   n_transitions;    /* DFA transitions computed */
    long   n_nodes_walked;   /* trie nodes stepped through (shortcuts excluded) */
} gram_stats;
void gram_get_stats(const gram *g, gram_stats *st);

/* ---- token trie and masks ---- */

typedef struct gram_trie gram_trie;

/* The model's token trie: built on first use (every token id whose text,
 * nj_token_to_piece(special = false), is non-empty and that is not a
 * control token), cached on the model and freed with it. */
const gram_trie *gram_trie_get(const nj_model *m, int *err);
void  gram_trie_free(gram_trie *t);
int   gram_trie_n_vocab(const gram_trie *t);
int   gram_trie_n_nodes(const gram_trie *t);
/* Token's bytes as the trie holds them (NULL and 0 for excluded ids). */
const char *gram_trie_piece(const gram_trie *t, int32_t id, int *len);
bool  gram_trie_is_eog(const gram_trie *t, int32_t id);

/* Allowed-token bitset for state st (bit id set = allowed): tokens whose
 * bytes take st to a live state, plus every end-of-generation token when
 * st is accepting.  The bitset (n_vocab bits) is owned by the gram's cache
 * and valid until the next gram_mask call; *n_allowed gets the count.
 * Returns 0 or < 0 (-ENOMEM, NJ_ETOOBIG). */
int gram_mask(gram *g, const gram_trie *t, int32_t st, const uint64_t **bits, int *n_allowed);
/* Forget every cached mask (benchmarks measure full walks with it). */
void gram_mask_flush(gram *g);

/* The longest token whose bytes begin `bytes` (n of them): its length,
 * and its id in *id; 0 when no token starts with bytes[0]. */
int gram_trie_longest(const gram_trie *t, const char *bytes, int n, int32_t *id);

/* Does some token strictly longer than `piece` (which it starts with) keep
 * the grammar live, given st_after = the state after `piece`?  (Used to
 * leave the last token of a forced run to the model when it could merge
 * with what follows.) */
bool gram_trie_extends(gram *g, const gram_trie *t, int32_t st_after, const char *piece, int len);

/* ---- nj_grammar internals shared with the sampler and the CLI ---- */

/* The allowed-token bitset of the grammar's current state (see gram_mask). */
int  grammar_allowed(nj_grammar *g, const uint64_t **bits, int *n_allowed);
/* Would the current state accept token id (end of generation: is the
 * document complete)?  Does not advance. */
bool grammar_token_ok(nj_grammar *g, int32_t id);
/* Counters since creation. */
typedef struct grammar_counters {
    long   n_accepted;       /* tokens accepted */
    long   n_forced;         /* of which returned by nj_grammar_forced */
    long   n_mask_calls;
    double mask_us;          /* time in grammar_allowed (cache hits included) */
    gram_stats g;
} grammar_counters;
void grammar_get_counters(const nj_grammar *g, grammar_counters *c);
gram *grammar_gram(nj_grammar *g);
int32_t grammar_state(const nj_grammar *g);

#endif
