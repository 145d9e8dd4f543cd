/*
 * sampler — turning logits into the next token (nj_sampler_* in nightjar.h).
 *
 * The chain, in llama.cpp's default order (common_params_sampling.samplers,
 * with the stages we support):
 *
 *   penalties -> top_k -> top_p -> min_p -> temperature -> dist
 *
 *   penalties    repeat penalty over the last repeat_last_n accepted tokens:
 *                logit /= r if logit > 0, else logit *= r (once per
 *                distinct token).
 *   top_k        keep the k largest logits (sorted descending).
 *   top_p        softmax over the candidates, sort, keep the shortest
 *                prefix whose cumulative probability reaches p.
 *   min_p        keep logits >= max + ln(p) (candidate order unchanged).
 *   temperature  logits /= temp; temp <= 0 keeps only the maximum (greedy).
 *   dist         softmax; draw u in [0,1) from mt19937 seeded like
 *                llama.cpp (std::generate_canonical<double> of two 32-bit
 *                draws); pick the first candidate whose running sum of
 *                probabilities reaches u * total.
 *
 * With the same seed, parameters and logits this picks the same token as
 * llama.cpp's common sampler (barring ties in the sort order).  The caller
 * feeds every token of the sequence (prompt included, as llama-completion
 * does) to nj_sampler_accept for the penalty window.
 *
 * Seed: (uint32_t)seed seeds mt19937; NJ_SEED_RANDOM (0xFFFFFFFF, the
 * default, as llama.cpp's LLAMA_DEFAULT_SEED) draws a seed from the clock.
 */
#ifndef NJ_SAMPLER_H
#define NJ_SAMPLER_H

#include <stdint.h>
#include "nightjar.h"

#define NJ_SEED_RANDOM 0xFFFFFFFFu

/* mt19937 exposed for tests: the first output for seed 5489 is 3499211612. */
typedef struct nj_mt19937 { uint32_t s[624]; int i; } nj_mt19937;
void     mt_seed(nj_mt19937 *mt, uint32_t seed);
uint32_t mt_next(nj_mt19937 *mt);
double   mt_canonical(nj_mt19937 *mt);   /* [0, 1), 53 bits from two draws */

/* Greedy helper: index of the largest value (first on ties). */
int32_t sampler_argmax(const float *logits, int n);

#endif
