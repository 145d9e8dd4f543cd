/*
 * retrieve — nearest labelled examples of a command line (BM25 over
 * security tokens).
 *
 * Purpose.  The analyst shows the model a few labelled command lines that
 * look like the one under judgement (kb/examples.jsonl: cmd, label,
 * technique, why).  This module loads that example base, indexes it and
 * answers "which k examples are closest to this command line?" fast enough
 * to run on every event.  The same top-k also works as a k-nearest-neighbour
 * classifier (tools/retrieve-eval.c measures it).
 *
 * Tokens.  Command lines are split lexically for security, not for language:
 * on whitespace and the shell's punctuation ; | & > < ( ) ` $ ' " = , and
 * every piece is normalized (see kb_tokenize): lowercase; paths reduced to
 * their basename (so /usr/bin/nc and nc match) plus a <tmpdir> marker for
 * /tmp, /var/tmp, /dev/shm and /private/tmp; /dev/tcp and /dev/udp kept
 * whole; URLs reduced to their scheme and host kind (<url-ip> or
 * <url-name>); IPv4 literals become <ip>, whole numbers <num>, digit runs
 * inside words 0 (python3 -> python0); long base64 or hex blobs <b64> and
 * <hex>; user@host becomes <user@ip> or <user@name>; @file (curl) adds @file.
 * Pure punctuation is dropped.
 *
 * Scoring.  Okapi BM25 with k1 = 1.2 and b = 0.75 by default:
 *   score(q,d) = sum over distinct query terms t of
 *                idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
 *   idf(t)     = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))      (never negative)
 * k1 bounds how much a repeated token adds (commands rarely repeat tokens, so
 * the usual 1.2 is fine); b = 0.75 normalizes for length so that a long
 * one-liner does not win just by containing more tokens.  The per-posting
 * factor tf*(k1+1)/(...) and idf are computed once at load; a query only adds
 * idf * weight along the postings of its distinct terms.
 *
 * Ties and determinism.  Hits are ordered by score descending, then by entry
 * index ascending; scores are accumulated in query-term order, so the same
 * base and query always give the same hits, bit for bit.
 *
 * Diversity.  With kb_query_opts.diversity = f in (0, 1], when a label is
 * missing from the top k but its best example scores at least f times the top
 * score, that example replaces the lowest hit whose label is represented
 * more than once.  The model then always sees the counter-example when one is
 * nearly as close.
 *
 * Ownership and threads.  kb_load* returns an immutable nj_kb that owns all
 * entry strings; kb_entry() returns views valid until kb_free().  Any number
 * of threads may query one nj_kb, each through its own nj_kb_searcher (the
 * per-query scratch: score accumulators sized to the base, allocated once, so
 * a query never allocates).  A searcher must not outlive its base.
 *
 * Errors.  Constructors return NULL and report through *err: NJ_EFORMAT for a
 * malformed line (the message names the file and line), -ENOENT/-EIO for I/O,
 * NJ_ETOOBIG past the size limits, -ENOMEM; nj_last_error() has the sentence.
 */
#ifndef NJ_RETRIEVE_H
#define NJ_RETRIEVE_H

#include <stddef.h>

typedef enum {
    KB_BENIGN = 0,
    KB_SUSPICIOUS,
    KB_MALICIOUS,
    KB_NLABELS
} kb_label;

/* Name of a label ("benign", ...), "?" when out of range. */
const char *kb_label_name(int label);
/* Label of a name, or -1. */
int         kb_label_parse(const char *name);

typedef struct nj_kb nj_kb;
typedef struct nj_kb_searcher nj_kb_searcher;

/* One example; the strings are owned by the base. technique may be NULL. */
typedef struct {
    const char *cmd;
    const char *technique;
    const char *why;
    kb_label    label;
} kb_entry;

typedef struct {
    double k1;   /* term-frequency saturation; <= 0 means 1.2 */
    double b;    /* length normalization in [0,1]; < 0 means 0.75 */
} kb_params;

typedef struct {
    size_t index;   /* entry index in the base */
    float  score;   /* BM25 score, > 0 */
} kb_hit;

typedef struct {
    double diversity;   /* 0 = off; else in (0,1], see the top comment */
} kb_query_opts;

/* Limits on what kb_load accepts (NJ_ETOOBIG beyond). */
#define KB_MAX_FILE    (64u << 20)
#define KB_MAX_ENTRIES (1u << 20)
/* Normalized tokens longer than this are cut (bytes). */
#define KB_MAX_TOKEN   64

/* Load a JSON-lines example base from `path`.  Blank lines are skipped;
 * every other line must be an object with a non-empty string "cmd", a
 * "label" (benign | suspicious | malicious), a "technique" (string or null)
 * and a string "why"; other keys are ignored.  `params` may be NULL for the
 * defaults.  Returns NULL on error with *err set (see the top comment). */
nj_kb *kb_load(const char *path, const kb_params *params, int *err);

/* The same from memory; `name` is used in error messages.  The text is
 * copied; the caller keeps ownership of `text`. */
nj_kb *kb_load_mem(const char *text, size_t len, const char *name,
                   const kb_params *params, int *err);

void            kb_free(nj_kb *kb);
size_t          kb_size(const nj_kb *kb);
size_t          kb_nterms(const nj_kb *kb);
/* Entry i (i < kb_size), or NULL. Views owned by the base. */
const kb_entry *kb_entry_at(const nj_kb *kb, size_t i);

/* Per-thread scratch for queries over `kb`. NULL + *err on -ENOMEM. */
nj_kb_searcher *kb_searcher_new(const nj_kb *kb, int *err);
void            kb_searcher_free(nj_kb_searcher *s);

/* The (at most) k best examples for the command line cmd[0..len), written
 * to hits[0..] in order (score descending, index ascending).  Only entries
 * sharing at least one token with the query are returned.  `opts` may be
 * NULL.  Returns the number of hits (0..k), or -EINVAL for k < 0, a NULL
 * cmd with len > 0, or a NULL hits with k > 0.  Never allocates. */
int kb_query(nj_kb_searcher *s, const char *cmd, size_t len, int k,
             const kb_query_opts *opts, kb_hit *hits);

/* Tokenize cmd[0..len) as the index does and write the tokens to out,
 * separated by single spaces and NUL-terminated (truncated at a token
 * boundary to fit cap).  Returns the total number of tokens (even those
 * that did not fit).  For tests, tools and debugging. */
int kb_tokenize(const char *cmd, size_t len, char *out, size_t cap);

#endif
