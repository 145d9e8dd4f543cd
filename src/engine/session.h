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
