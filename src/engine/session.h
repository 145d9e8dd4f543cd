/*
 * session — one sequence: its KV cache, scratch buffers and the forward pass.
 *
 * The public side is nj_session_* in nightjar.h; this header adds what the
 * CLI, the tests and the memory estimate need beyond it.  See session.c for
 * the design essay (buffers, threading, numerics).
 */
#ifndef NJ_SESSION_H
#define NJ_SESSION_H

#include <stdint.h>
#include "nightjar.h"

/* Like nj_session_eval, and if all_logits is not NULL also write the logits
 * of every one of the n positions there, row-major (n, n_vocab).  The
 * session's own logits buffer always ends up holding the last row. */
int session_eval_ex(nj_session *s, const int32_t *ids, int n, float *all_logits);

/* Make `row` (n_vocab floats, copied) the session's current logits, as if
 * the last token had just been evaluated: used to restore a session after
 * evaluating and truncating away a speculative branch (label scoring). */
void session_set_logits(nj_session *s, const float *row);

/* The model a session runs (borrowed). */
nj_model *session_model(const nj_session *s);

/* Bytes of scratch a session allocates for (n_batch, n_threads): the same
 * function sizes the allocation and the estimate. */
uint64_t session_scratch_bytes(const nj_model *m, int n_batch, int n_threads);

/* Piecewise evaluation, for a scheduler that interleaves sessions.
 * session_prefix_len: how many of ids[0..n) the cache already holds, from
 * position 0.  session_eval_part: evaluate ids[from, from + count) of what
 * would be one nj_session_eval(ids, n) call started at position pos - from,
 * with the same arithmetic as that call (pieces of any size, in order); the
 * logits are current once the piece reaching n has run.  A prompt whose
 * first k tokens the cache holds passes the whole prompt (ids, n) and
 * from = k: a token's float order depends on its place in the call, so
 * passing only the tail (ids + k, n - k, 0) computes other bits than the
 * prompt from scratch.  Same errors as
 * nj_session_eval.  session_n_batch: the most tokens one forward pass takes
 * (the scratch's rows). */
int session_prefix_len(const nj_session *s, const int32_t *ids, int n);
/* What nj_session_last_reused reports: set by a caller that reuses a
 * prefix itself (session_prefix_len, truncate, session_eval_part). */
void session_set_last_reused(nj_session *s, int keep);
int session_eval_part(nj_session *s, const int32_t *ids, int n, int from, int count);
int session_n_batch(const nj_session *s);

/* Continuous batching: evaluate one token for each of n distinct sessions
 * of one model (ids[t] for ss[t]) in one forward pass, the products over
 * all n rows at once in ss[0]'s scratch and pool, n <= session_n_batch(ss[0]).
 * Batch-invariant: every session ends bit for bit as after
 * nj_session_eval(ss[t], &ids[t], 1), whatever the other rows are.
 * logits: caller's scratch of (n, n_vocab) floats (each session's own
 * logits are set too).  On failure the sessions' logits are not valid and
 * their caches may hold a partial token past pos (pos is unchanged). */
int session_decode_batch(nj_session *const *ss, const int32_t *ids, int n, float *logits);

/* The cache's storage, for the prefix file (kvfile.c): layer il's K row of
 * position p is k + ((size_t)il * n_ctx + p) * k_rb (likewise V); hist
 * holds the ids of positions [0, pos).  Pointers borrowed from s. */
typedef struct session_kv {
    uint8_t *k, *v;
    size_t   k_rb, v_rb;
    int      n_ctx, n_layer, kv_type, pos;
    int32_t *hist;
} session_kv;
void session_kv_get(const nj_session *s, session_kv *out);
/* The cache now holds positions [0, pos) as written through
 * session_kv_get's pointers (pos <= n_ctx); no logits are current. */
void session_kv_set_pos(nj_session *s, int pos);

#endif
