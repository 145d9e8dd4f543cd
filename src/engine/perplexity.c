/*
 * perplexity — see perplexity.h for the method (llama-perplexity's) and
 * the memory bound.
 */
#include "perplexity.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "session.h"
#include "tokenizer.h"
#include "util.h"

/* Largest logit (first index on ties) and log(sum(exp(l - max))). */
static int lse(const float *l, int n, double *max_out, double *log_sum) {
    int im = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[im]) im = i;
    const double mx = l[im];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - mx);
    *max_out = mx;
    *log_sum = log(s);
    return im;
}

double ppl_nll(const float *logits, int n_vocab, int tok) {
    double mx, ls;
    lse(logits, n_vocab, &mx, &ls);
    return mx + ls - (double)logits[tok];
}

double ppl_kl(const float *base, const float *q, int n_vocab, bool *same_top) {
    double mb, lb, mq, lq;
    int ib = lse(base, n_vocab, &mb, &lb), iq = lse(q, n_vocab, &mq, &lq);
    double kl = 0;
    for (int i = 0; i < n_vocab; i++) {
        const double pb_log = (double)base[i] - mb - lb, q_log = (double)q[i] - mq - lq;
        kl += exp(pb_log) * (pb_log - q_log);
    }
    if (same_top) *same_top = ib == iq;
    return kl > 0 ? kl : 0;   /* rounding can leave -1e-17 for equal models */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Linear interpolation between order statistics (llama-perplexity's). */
static double percentile(const double *v, long n, double f) {
    if (n <= 0) return 0;
    double p = f * (double)(n - 1);
    long i = (long)p;
    p -= (double)i;
    return (1 - p) * v[i] + p * v[i + 1 < n ? i + 1 : n - 1];
}

/* mean and standard error of the mean from a sum and a sum of squares */
static void mean_unc(double sum, double sum2, long n, double *mean, double *unc) {
    *mean = n > 0 ? sum / (double)n : 0;
    double var = n > 0 ? sum2 / (double)n - *mean * *mean : 0;
    *unc = var > 0 && n > 1 ? sqrt(var / (double)(n - 1)) : 0;
}

int ppl_run(nj_model *m, nj_model *base, const char *text, size_t len, const ppl_params *pp,
            ppl_result *out) {
    if (!m || !text || !pp || !out) return nj_fail(-EINVAL, "perplexity: missing argument");
    memset(out, 0, sizeof *out);
    const int n_ctx = pp->n_ctx ? pp->n_ctx : 512;
    const int n_batch = pp->n_batch > 0 ? pp->n_batch : 64;
    const int V = m->hp.n_vocab;
    if (n_ctx < 8 || n_ctx % 2 || n_ctx > 1 << 20)
        return nj_fail(-EINVAL, "perplexity: the context must be an even number of tokens >= 8 (got %d)", n_ctx);
    if (n_ctx > m->hp.n_ctx_train || (base && n_ctx > base->hp.n_ctx_train))
        return nj_fail(NJ_ECTX, "perplexity: context %d exceeds the model's training context", n_ctx);
    if (base && base->hp.n_vocab != V)
        return nj_fail(-EINVAL, "perplexity: the base model has %d tokens, the model %d: not the same vocabulary",
                       base->hp.n_vocab, V);
    if (len > (size_t)INT32_MAX) return nj_fail(NJ_ETOOBIG, "perplexity: text too large");

    int rc = 0;
    int32_t *tok = NULL, *tok_b = NULL, *ids = NULL;
    float *rows = NULL, *rows_b = NULL;
    double *kls = NULL;
    nj_session *s = NULL, *sb = NULL;

    /* Tokenize once (BOS as the model adds it); a text of n bytes has at
     * most n + 2 tokens. */
    int cap = (int)len + 2;
    if (!(tok = nj_malloc(sizeof(int32_t) * (size_t)cap))) { rc = nj_fail(-ENOMEM, "perplexity: out of memory"); goto done; }
    int n_tok = nj_tokenize(m, text, len, true, false, tok, cap);
    if (n_tok < 0) { rc = n_tok; goto done; }
    if (n_tok > cap) { rc = nj_fail(-EINVAL, "perplexity: tokenizer returned more tokens than bytes"); goto done; }
    out->n_tokens = n_tok;
    if (base) {
        if (!(tok_b = nj_malloc(sizeof(int32_t) * (size_t)cap))) { rc = nj_fail(-ENOMEM, "perplexity: out of memory"); goto done; }
        int nb = nj_tokenize(base, text, len, true, false, tok_b, cap);
        if (nb < 0) { rc = nb; goto done; }
        if (nb != n_tok || memcmp(tok, tok_b, sizeof(int32_t) * (size_t)n_tok)) {
            rc = nj_fail(-EINVAL, "perplexity: the base model tokenizes the text differently");
            goto done;
        }
    }
    if (n_tok < 2 * n_ctx) {
        rc = nj_fail(NJ_ECTX, "perplexity: the text is %d tokens; a context of %d needs at least %d", n_tok, n_ctx,
                     2 * n_ctx);
        goto done;
    }
    int n_chunks = n_tok / n_ctx;
    if (pp->n_chunks > 0 && pp->n_chunks < n_chunks) n_chunks = pp->n_chunks;
    const int first = n_ctx / 2, per_chunk = n_ctx - 1 - first;
    const bool add_bos = tok_add_bos(m->tok) && tok_bos(m->tok) >= 0;

    nj_session_params sp = {.n_ctx = n_ctx, .n_batch = NJ_MIN(n_ctx, 512), .n_threads = pp->n_threads ? pp->n_threads : 2};
    int err = 0;
    if (!(s = nj_session_new(m, &sp, &err))) { rc = err; goto done; }
    if (base && !(sb = nj_session_new(base, &sp, &err))) { rc = err; goto done; }
    ids = nj_malloc(sizeof(int32_t) * (size_t)n_ctx);
    rows = nj_malloc(sizeof(float) * (size_t)n_batch * (size_t)V);
    if (base) {
        rows_b = nj_malloc(sizeof(float) * (size_t)n_batch * (size_t)V);
        kls = nj_malloc(sizeof(double) * (size_t)n_chunks * (size_t)per_chunk);
    }
    if (!ids || !rows || (base && (!rows_b || !kls))) { rc = nj_fail(-ENOMEM, "perplexity: out of memory"); goto done; }

    double nll = 0, nll2 = 0, nllb = 0, nllb2 = 0, kl = 0, kl2 = 0;
    long count = 0, same = 0;
    for (int c = 0; c < n_chunks; c++) {
        const int32_t *win = tok + (size_t)c * (size_t)n_ctx;
        memcpy(ids, win, sizeof(int32_t) * (size_t)n_ctx);
        if (add_bos) ids[0] = tok_bos(m->tok);
        nj_session *ss[2] = {s, sb};
        for (int k = 0; k < (base ? 2 : 1); k++) {
            if ((rc = nj_session_truncate(ss[k], 0))) goto done;
            if ((rc = session_eval_ex(ss[k], ids, first, NULL))) goto done;
        }
        /* inputs first .. n_ctx-2 predict tokens first+1 .. n_ctx-1 */
        for (int from = first; from < n_ctx - 1; from += n_batch) {
            const int cnt = NJ_MIN(n_batch, n_ctx - 1 - from);
            if ((rc = session_eval_ex(s, ids + from, cnt, rows))) goto done;
            if (base && (rc = session_eval_ex(sb, ids + from, cnt, rows_b))) goto done;
            for (int r = 0; r < cnt; r++) {
                const int target = win[from + r + 1];
                const float *lq = rows + (size_t)r * (size_t)V;
                const double v = ppl_nll(lq, V, target);
                nll += v;
                nll2 += v * v;
                if (base) {
                    const float *lb = rows_b + (size_t)r * (size_t)V;
                    const double vb = ppl_nll(lb, V, target);
                    nllb += vb;
                    nllb2 += vb * vb;
                    bool top;
                    const double d = ppl_kl(lb, lq, V, &top);
                    kls[count] = d;
                    kl += d;
                    kl2 += d * d;
                    same += top;
                }
                count++;
            }
        }
        if (pp->progress) pp->progress(pp->progress_ctx, c + 1, n_chunks, exp(nll / (double)count));
    }

    double mean;
    out->n_ctx = n_ctx;
    out->n_chunks = n_chunks;
    out->count = count;
    mean_unc(nll, nll2, count, &mean, &out->ppl_unc);
    out->ppl = exp(mean);
    out->ppl_unc *= out->ppl;
    if (base) {
        out->has_base = true;
        mean_unc(nllb, nllb2, count, &mean, &out->ppl_base_unc);
        out->ppl_base = exp(mean);
        out->ppl_base_unc *= out->ppl_base;
        mean_unc(kl, kl2, count, &out->kl_mean, &out->kl_unc);
        qsort(kls, (size_t)count, sizeof *kls, cmp_double);
        out->kl_median = percentile(kls, count, 0.5);
        out->kl_p99 = percentile(kls, count, 0.99);
        out->kl_max = kls[count - 1];
        out->top1 = (double)same / (double)count;
    }

done:
    nj_session_free(sb);
    nj_session_free(s);
    nj_free(kls);
    nj_free(rows_b);
    nj_free(rows);
    nj_free(ids);
    nj_free(tok_b);
    nj_free(tok);
    return rc;
}
