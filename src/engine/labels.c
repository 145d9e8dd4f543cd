/*
 * labels — nj_score_labels: the exact probability of each of a few label
 * strings as the continuation of what a session holds.
 *
 * For a label tokenized as t0 .. t(n-1):
 *   log p = log softmax(L0)[t0] + sum_k log softmax(L_k)[t_k],
 * where L0 are the session's current logits and L_k the logits after
 * feeding t0 .. t(k-1).  L0 is free.  Labels are visited in token order;
 * the tokens of the current label that are already in the cache (a prefix
 * shared with the previous label) are kept, the session is truncated to
 * the end of that shared prefix and the rest of the label but its last
 * token is evaluated in one batch with the logits of every position kept
 * (session_eval_ex).  Batches run = labels (in that order) whose tokens
 * past the shared prefix are not all in the cache yet, minus those that
 * are single-token.  Afterwards the cache is truncated to where it was and
 * L0 put back, so the caller can go on generating.
 *
 * Memory: one row of n_vocab floats per token position of the longest
 * label (labels are short), allocated per call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nightjar.h"
#include "session.h"
#include "util.h"

#define LABEL_MAX_TOKENS 64

typedef struct lab { int32_t *t; int n; int idx; } lab;

static int lab_cmp(const void *a, const void *b) {
    const lab *x = a, *y = b;
    int n = x->n < y->n ? x->n : y->n;
    for (int i = 0; i < n; i++)
        if (x->t[i] != y->t[i]) return x->t[i] < y->t[i] ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

/* log sum exp of a row, in double */
static double lse(const float *row, int V) {
    float mx = row[0];
    for (int i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)row[i] - mx);
    return mx + log(s);
}

int nj_score_labels(nj_session *s, const char *const *labels, int n_labels, float *probs,
                    float *logprobs) {
    if (!s || n_labels <= 0 || !labels || !probs) return nj_fail(-EINVAL, "no labels to score");
    const float *cur = nj_session_logits(s);
    if (!cur) return nj_fail(NJ_ESTATE, "the session has no current logits (evaluate the prompt first)");
    const nj_model *m = session_model(s);
    nj_model_desc d;
    nj_model_describe(m, &d);
    const int V = d.n_vocab;
    const int base = nj_session_pos(s);

    int rc = 0, n_batches = 0;
    lab *L = nj_calloc((size_t)n_labels, sizeof *L);
    int32_t *pool = nj_malloc(sizeof *pool * (size_t)n_labels * LABEL_MAX_TOKENS);
    float *L0 = nj_malloc(sizeof *L0 * (size_t)V);
    double *lp = nj_malloc(sizeof *lp * (size_t)n_labels);
    float *rows = NULL;
    double *rlse = NULL;
    if (!L || !pool || !L0 || !lp) { rc = nj_fail(-ENOMEM, "out of memory for label scoring"); goto out; }
    memcpy(L0, cur, sizeof *L0 * (size_t)V);
    int max_n = 0;
    for (int i = 0; i < n_labels; i++) {
        if (!labels[i]) { rc = nj_fail(-EINVAL, "label %d is NULL", i); goto out; }
        L[i].t = pool + (size_t)i * LABEL_MAX_TOKENS;
        L[i].idx = i;
        int n = nj_tokenize(m, labels[i], strlen(labels[i]), false, false, L[i].t, LABEL_MAX_TOKENS);
        if (n < 0) { rc = n; goto out; }
        if (n == 0) { rc = nj_fail(-EINVAL, "label %d is empty", i); goto out; }
        if (n > LABEL_MAX_TOKENS) {
            rc = nj_fail(NJ_ETOOBIG, "label %d is %d tokens (at most %d)", i, n, LABEL_MAX_TOKENS);
            goto out;
        }
        L[i].n = n;
        if (n > max_n) max_n = n;
    }
    qsort(L, (size_t)n_labels, sizeof *L, lab_cmp);
    if (max_n > 1) {
        rows = nj_malloc(sizeof *rows * (size_t)V * (size_t)(max_n - 1));
        rlse = nj_malloc(sizeof *rlse * (size_t)(max_n - 1));
        if (!rows || !rlse) { rc = nj_fail(-ENOMEM, "out of memory for label scoring"); goto out; }
    }
    const double lse0 = lse(L0, V);
    /* tokens currently in the cache past base: in[0 .. n_in), with rows[j]
     * holding the logits after in[0..j] */
    int32_t in[LABEL_MAX_TOKENS];
    int n_in = 0;
    for (int i = 0; i < n_labels; i++) {
        const lab *x = &L[i];
        const int need = x->n - 1;
        int common = 0;
        while (common < n_in && common < need && in[common] == x->t[common]) common++;
        if (need > common) {
            if (base + common < nj_session_pos(s) && (rc = nj_session_truncate(s, base + common))) goto out;
            rc = session_eval_ex(s, x->t + common, need - common, rows + (size_t)common * (size_t)V);
            if (rc) goto out;
            n_batches++;
            for (int j = common; j < need; j++) {
                in[j] = x->t[j];
                rlse[j] = lse(rows + (size_t)j * (size_t)V, V);
            }
            n_in = need;
        }
        double v = (double)L0[x->t[0]] - lse0;
        for (int k = 1; k < x->n; k++) v += (double)rows[(size_t)(k - 1) * (size_t)V + (size_t)x->t[k]] - rlse[k - 1];
        lp[x->idx] = v;
    }
    /* normalised over the set */
    double mx = lp[0];
    for (int i = 1; i < n_labels; i++) mx = lp[i] > mx ? lp[i] : mx;
    double sum = 0;
    for (int i = 0; i < n_labels; i++) sum += exp(lp[i] - mx);
    for (int i = 0; i < n_labels; i++) {
        probs[i] = (float)(exp(lp[i] - mx) / sum);
        if (logprobs) logprobs[i] = (float)lp[i];
    }
out:
    if (nj_session_pos(s) > base) {
        int trc = nj_session_truncate(s, base);
        if (!rc) rc = trc;
    }
    if (L0 && nj_session_pos(s) == base) session_set_logits(s, L0);
    nj_free(L);
    nj_free(pool);
    nj_free(L0);
    nj_free(lp);
    nj_free(rows);
    nj_free(rlse);
    return rc < 0 ? rc : n_batches;
}
