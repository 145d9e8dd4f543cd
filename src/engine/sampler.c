/*
 * sampler — see sampler.h for the chain and its order.
 *
 * State: the parameters, the mt19937 generator, a ring of the last
 * repeat_last_n accepted tokens, and a candidate array reused between calls
 * (grown on the first call for a vocabulary; later calls do not allocate).
 * A sampler is used by one thread at a time.
 *
 * Grammar.  With nj_sampler_set_grammar, the tokens the grammar's current
 * state does not allow are dropped from the candidates before the chain
 * (after the penalties, which need the candidates in vocabulary order and
 * only rescale logits, so the order does not change what survives).  The
 * grammar is borrowed; accepting the chosen token is the caller's job.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"
#include "util.h"

typedef struct cand { int32_t id; float logit; float p; } cand;

struct nj_sampler {
    nj_sampler_params p;
    nj_mt19937 mt;
    int32_t   *ring;      /* last accepted tokens */
    int        ring_cap, ring_n, ring_head;
    cand      *c;         /* candidates */
    int        c_cap;
    int32_t   *seen;      /* scratch for de-duplicating the ring */
    nj_grammar *grammar;  /* borrowed, or NULL */
};

/* ---- mt19937 (the standard 32-bit Mersenne Twister) ---- */

void mt_seed(nj_mt19937 *mt, uint32_t seed) {
    mt->s[0] = seed;
    for (int i = 1; i < 624; i++)
        mt->s[i] = 1812433253u * (mt->s[i - 1] ^ (mt->s[i - 1] >> 30)) + (uint32_t)i;
    mt->i = 624;
}

uint32_t mt_next(nj_mt19937 *mt) {
    if (mt->i >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (mt->s[k] & 0x80000000u) | (mt->s[(k + 1) % 624] & 0x7fffffffu);
            uint32_t v = mt->s[(k + 397) % 624] ^ (y >> 1);
            if (y & 1u) v ^= 0x9908b0dfu;
            mt->s[k] = v;
        }
        mt->i = 0;
    }
    uint32_t y = mt->s[mt->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* As libstdc++'s generate_canonical<double, 53> over a 32-bit engine:
 * (a + b * 2^32) / 2^64 in double, clamped below 1. */
double mt_canonical(nj_mt19937 *mt) {
    double sum = 0.0, tmp = 1.0;
    for (int k = 0; k < 2; k++) {
        sum += (double)mt_next(mt) * tmp;
        tmp *= 4294967296.0;
    }
    double r = sum / tmp;
    if (r >= 1.0) r = nextafter(1.0, 0.0);
    return r;
}

int32_t sampler_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

/* ---- lifecycle ---- */

void nj_sampler_default_params(nj_sampler_params *p) {
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = NJ_SEED_RANDOM;
}

nj_sampler *nj_sampler_new(const nj_sampler_params *p, int *err) {
    nj_sampler *s = nj_calloc(1, sizeof *s);
    int rc = -ENOMEM;
    if (!s) goto err;
    if (p) s->p = *p;
    else nj_sampler_default_params(&s->p);
    if (s->p.repeat_last_n < 0 || s->p.repeat_last_n > 1 << 20) {
        rc = nj_fail(-EINVAL, "repeat_last_n %d out of range", s->p.repeat_last_n);
        goto err;
    }
    if (!(s->p.repeat_penalty > 0.0f)) {
        rc = nj_fail(-EINVAL, "repeat_penalty must be > 0");
        goto err;
    }
    s->ring_cap = s->p.repeat_last_n;
    if (s->ring_cap) {
        s->ring = nj_calloc((size_t)s->ring_cap, sizeof *s->ring);
        s->seen = nj_calloc((size_t)s->ring_cap, sizeof *s->seen);
        if (!s->ring || !s->seen) goto err;
    }
    uint32_t seed = (uint32_t)s->p.seed;
    if (s->p.seed == NJ_SEED_RANDOM || s->p.seed == UINT64_MAX)
        seed = (uint32_t)(nj_now_ns() ^ (nj_now_ns() >> 32) ^ (uintptr_t)s);
    mt_seed(&s->mt, seed);
    if (err) *err = 0;
    return s;
err:
    nj_sampler_free(s);
    if (err) *err = rc;
    return NULL;
}

void nj_sampler_free(nj_sampler *s) {
    if (!s) return;
    nj_free(s->ring);
    nj_free(s->seen);
    nj_free(s->c);
    nj_free(s);
}

void nj_sampler_accept(nj_sampler *s, int32_t id) {
    if (!s->ring_cap) return;
    s->ring[s->ring_head] = id;
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
    if (s->ring_n < s->ring_cap) s->ring_n++;
}

void nj_sampler_set_grammar(nj_sampler *s, nj_grammar *g) { s->grammar = g; }

/* ---- chain stages ---- */

static int cmp_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Move the k largest candidates to the front, sorted descending. */
static void partial_sort_desc(cand *c, int n, int k) {
    if (k >= n) { qsort(c, (size_t)n, sizeof *c, cmp_desc); return; }
    /* quickselect: afterwards c[0..k) holds the k largest (unordered) */
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        cand piv = c[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp_desc(&c[i], &piv) < 0) i++;
            while (cmp_desc(&c[j], &piv) > 0) j--;
            if (i <= j) { cand t = c[i]; c[i] = c[j]; c[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
}

static void penalties(nj_sampler *s, cand *c, int n) {
    if (s->ring_n == 0 || s->p.repeat_penalty == 1.0f) return;
    /* distinct tokens of the window, each penalised once */
    memcpy(s->seen, s->ring, sizeof(int32_t) * (size_t)s->ring_n);
    qsort(s->seen, (size_t)s->ring_n, sizeof(int32_t), cmp_i32);
    const float r = s->p.repeat_penalty;
    for (int i = 0; i < s->ring_n; i++) {
        int32_t id = s->seen[i];
        if (i > 0 && id == s->seen[i - 1]) continue;
        if (id < 0 || id >= n) continue;
        /* candidates are still in vocabulary order here: c[id].id == id */
        if (c[id].logit <= 0) c[id].logit *= r;
        else c[id].logit /= r;
    }
}

/* p = softmax(logit) over the candidates, in float as llama.cpp does. */
static void softmax(cand *c, int n) {
    float mx = c[0].logit;
    for (int i = 1; i < n; i++) mx = fmaxf(mx, c[i].logit);
    float sum = 0.0f;
    for (int i = 0; i < n; i++) { c[i].p = expf(c[i].logit - mx); sum += c[i].p; }
    for (int i = 0; i < n; i++) c[i].p /= sum;
}

/* Candidates = the logits in vocabulary order, penalised. */
static void fill(nj_sampler *s, const float *logits, int n_vocab) {
    cand *c = s->c;
    for (int i = 0; i < n_vocab; i++) { c[i].id = i; c[i].logit = logits[i]; c[i].p = 0.0f; }
    penalties(s, c, n_vocab);
}

static int32_t chain(nj_sampler *s, int n, bool sorted, bool topk_done);

/* Keep only the candidates the grammar allows (the full mask). */
static int grammar_compact(nj_sampler *s, int n) {
    const uint64_t *bits;
    int n_ok;
    int rc = grammar_allowed(s->grammar, &bits, &n_ok);
    if (rc) return rc;
    cand *c = s->c;
    int w = 0;
    for (int i = 0; i < n; i++)
        if ((bits[c[i].id >> 6] >> (c[i].id & 63)) & 1) c[w++] = c[i];
    if (w == 0) return nj_fail(NJ_ESTATE, "the grammar allows no token of this vocabulary");
    return w;
}

/* Sampling under a grammar gives the distribution of "mask, then chain".
 * Computing the mask means a walk over the whole token trie, so three
 * shortcuts avoid it when they cannot change the result:
 *   greedy        the overall argmax, if the grammar allows it, is the
 *                 argmax of the masked logits;
 *   top-k         among the 4k+64 largest candidates, the first k allowed
 *                 ones are exactly the masked top k (every allowed token
 *                 outside that set has a smaller logit); top-p and min-p
 *                 then act on those k as they would after the mask;
 *   no truncation (temperature only) rejection sampling: draw from the
 *                 unmasked distribution and keep the draw if allowed; if
 *                 not, draw again from the masked one.  The result is
 *                 distributed as p(t)/Z over the allowed tokens (the draw
 *                 sequence differs from the masked path's).
 * Otherwise (top-p or min-p without top-k) the mask is computed. */
int32_t nj_sampler_sample(nj_sampler *s, const float *logits, int n_vocab) {
    if (!logits || n_vocab <= 0) return nj_fail(-EINVAL, "no logits to sample from");
    if (n_vocab > s->c_cap) {
        cand *c = nj_realloc(s->c, sizeof *c * (size_t)n_vocab);
        if (!c) return nj_fail(-ENOMEM, "out of memory for %d candidates", n_vocab);
        s->c = c;
        s->c_cap = n_vocab;
    }
    cand *c = s->c;
    fill(s, logits, n_vocab);
    int n = n_vocab;
    if (!s->grammar) return chain(s, n, false, false);

    nj_grammar *g = s->grammar;
    if (s->p.temp <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        if (grammar_token_ok(g, c[best].id)) return c[best].id;
    } else if (s->p.top_k > 0) {
        const int k = s->p.top_k < n ? s->p.top_k : n;
        const int kk = 4 * k + 64 < n ? 4 * k + 64 : n;
        partial_sort_desc(c, n, kk);
        int w = 0;
        for (int i = 0; i < kk && w < k; i++)
            if (grammar_token_ok(g, c[i].id)) c[w++] = c[i];
        if (w == k || (kk == n && w > 0)) return chain(s, w, true, true);
        fill(s, logits, n_vocab);
    } else if (s->p.top_p >= 1.0f && s->p.min_p <= 0.0f) {
        int32_t id = chain(s, n, false, false);
        if (id < 0 || grammar_token_ok(g, id)) return id;
        fill(s, logits, n_vocab);
    }
    n = grammar_compact(s, n);
    if (n < 0) return n;
    return chain(s, n, false, false);
}

/* The chain from greedy/top-k on, over the first n candidates (sorted:
 * they are in descending order; topk_done: top-k has been applied). */
static int32_t chain(nj_sampler *s, int n, bool sorted, bool topk_done) {
    cand *c = s->c;
    if (s->p.temp <= 0.0f) {          /* greedy on the penalised logits */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }

    if (s->p.top_k > 0 && !topk_done) {
        int k = s->p.top_k < n ? s->p.top_k : n;
        partial_sort_desc(c, n, k);
        n = k;
        sorted = true;
    }

    if (s->p.top_p < 1.0f) {
        softmax(c, n);
        if (!sorted) {
            /* most of the mass is usually in the first few hundred */
            int k = n > 1024 ? 256 : n;
            partial_sort_desc(c, n, k);
            float cum = 0.0f;
            int last = -1;
            for (int i = 0; i < k; i++) {
                cum += c[i].p;
                if (cum >= s->p.top_p) { last = i + 1; break; }
            }
            if (last < 0 && k < n) {
                partial_sort_desc(c, n, n);
                cum = 0.0f;
                for (int i = 0; i < n; i++) {
                    cum += c[i].p;
                    if (cum >= s->p.top_p) { last = i + 1; break; }
                }
            }
            n = last > 0 ? last : n;
            sorted = true;
        } else {
            float cum = 0.0f;
            for (int i = 0; i < n; i++) {
                cum += c[i].p;
                if (cum >= s->p.top_p) { n = i + 1; break; }
            }
        }
    }

    if (s->p.min_p > 0.0f && n > 0) {
        if (!sorted) {
            float mx = c[0].logit;
            for (int i = 1; i < n; i++) mx = fmaxf(mx, c[i].logit);
            const float min_logit = mx + logf(s->p.min_p);
            int w = 0;
            for (int i = 0; i < n; i++)
                if (c[i].logit >= min_logit) c[w++] = c[i];
            n = w;
        } else {
            const float min_logit = c[0].logit + logf(s->p.min_p);
            int i = 1;
            while (i < n && c[i].logit >= min_logit) i++;
            n = i;
        }
    }

    for (int i = 0; i < n; i++) c[i].logit /= s->p.temp;

    /* dist */
    const double u = mt_canonical(&s->mt);
    if (n == 1) return c[0].id;
    float mx = c[0].logit;
    for (int i = 1; i < n; i++) mx = fmaxf(mx, c[i].logit);
    double total = 0.0;
    for (int i = 0; i < n; i++) { c[i].p = expf(c[i].logit - mx); total += c[i].p; }
    const double target = total * u;
    double run = 0.0;
    for (int i = 0; i < n; i++) {
        run += c[i].p;
        if (run >= target) return c[i].id;
    }
    return c[n - 1].id;
}
