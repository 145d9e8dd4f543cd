/*
 * perplexity — how well a model predicts a text, and how far a quantized
 * model's predictions are from a higher-precision one's
 * (`nightjar perplexity`).
 *
 * Purpose.  Choosing a quantization is a trade of memory and speed against
 * quality; perplexity and the KL divergence from the source model are the
 * cheap, label-free measures of what a quantization costs, and they are the
 * numbers llama.cpp users compare.  So they are computed as
 * llama-perplexity computes them, and the two tools agree on the same file,
 * text and context.
 *
 * Method (llama-perplexity's, read for the facts).  The whole text is
 * tokenized once (BOS first if the model adds one; special-token text stays
 * plain text).  It is cut into n = tokens / n_ctx non-overlapping windows of
 * n_ctx tokens (the tail is dropped; at least two windows are needed).  Each
 * window is evaluated from an empty cache, its first token replaced by BOS
 * when the model adds one, and only its second half is scored: the logits at
 * positions n_ctx/2 .. n_ctx-2 predict the tokens after them, so every
 * scored token has at least n_ctx/2 tokens of context.  Perplexity is
 * exp(mean negative log-likelihood) over the n * (n_ctx - 1 - n_ctx/2)
 * scored tokens; its uncertainty is ppl * the standard error of the mean
 * nll.
 *
 * Against a base model (same vocabulary and tokenization), each scored
 * position also gets KL(P_base || P_model) over the whole vocabulary, and
 * whether the two argmaxes agree (top-1 agreement).  llama-perplexity keeps
 * the base's log-probabilities as 16-bit values and skips base
 * probabilities below e^-16; here both distributions are exact (double
 * sums), which changes the KL only in its last digits.
 *
 * Threads and memory.  One session per model, evaluated on the calling
 * thread (the sessions' compute pools do the work).  The scored half of a
 * window is evaluated in pieces of n_batch rows, so the logits buffer is
 * n_batch x n_vocab floats per model, not n_ctx x n_vocab.
 */
#ifndef NJ_PERPLEXITY_H
#define NJ_PERPLEXITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nightjar.h"

typedef struct ppl_params {
    int n_ctx;       /* window, >= 8 and even; 0 = 512 */
    int n_chunks;    /* windows to score; <= 0 = all */
    int n_batch;     /* logits rows per pass in the scored half; 0 = 64 */
    int n_threads;   /* 0 = 2 */
    /* After each window: windows done, windows total, perplexity so far. */
    void (*progress)(void *ctx, int done, int total, double ppl);
    void *progress_ctx;
} ppl_params;

typedef struct ppl_result {
    int    n_tokens;           /* tokens in the text */
    int    n_ctx, n_chunks;    /* windows scored */
    long   count;              /* tokens scored */
    double ppl, ppl_unc;
    bool   has_base;
    double ppl_base, ppl_base_unc;
    double kl_mean, kl_unc, kl_median, kl_p99, kl_max;
    double top1;               /* share of positions whose argmaxes agree */
} ppl_result;

/* Score `text` (len bytes) with model m, and against `base` if not NULL.
 * 0 or: NJ_ECTX (the text has fewer than 2 * n_ctx tokens, or n_ctx exceeds
 * a model's training context), -EINVAL (bad parameters, or the models'
 * vocabularies or tokenizations differ), -ENOMEM, or an engine error; a
 * sentence in nj_last_error(). */
int ppl_run(nj_model *m, nj_model *base, const char *text, size_t len, const ppl_params *p,
            ppl_result *out);

/* -log P(tok) under softmax(logits): log-sum-exp in double. */
double ppl_nll(const float *logits, int n_vocab, int tok);
/* KL(softmax(base) || softmax(q)) in nats, in double; *same_top (may be
 * NULL) = whether the first largest logits of both are the same token. */
double ppl_kl(const float *base, const float *q, int n_vocab, bool *same_top);

#endif
