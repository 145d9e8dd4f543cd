/*
 * gguf_write — write GGUF v3 files (the reader is gguf.h).
 *
 * Purpose.  `nightjar quantize`, the random-weight model generator
 * (modelgen.h) and the malformed-file generator all need to produce GGUF
 * files that llama.cpp loads too.  This module writes the container; it
 * knows nothing about architectures.
 *
 * Design.  Two phases.  First the caller describes the file: key/values
 * (every GGUF value type, including arrays of strings) and tensor infos
 * (name, shape, type).  Then gguf_writer_open() writes header, key/values,
 * tensor infos and padding, and the caller streams tensor *data* in the
 * order the tensors were added with gguf_writer_write() — in pieces of any
 * size, so a 4 GB model is written with a buffer of one row.  The writer
 * inserts the alignment padding between tensors itself and checks that each
 * tensor gets exactly its size.  gguf_writer_finish() flushes, fsyncs and
 * renames "<path>.part" to <path>, so a crash never leaves a file that looks
 * complete.
 *
 * Layout written (little-endian, as gguf.h describes): "GGUF", version 3,
 * n_tensors, n_kv, the kvs in the order first set, the tensor infos in add
 * order with offsets laid out back to back (each rounded up to the
 * alignment), zero padding to the alignment, then the data; every tensor,
 * the last included, is followed by zero padding to the alignment (as ggml
 * writes it).  The alignment is 32 unless the key "general.alignment" (u32,
 * power of two) is set.
 *
 * Ownership.  The writer copies every key, value and name it is given; the
 * caller's buffers may be freed right after each call.  Values are kept
 * serialized (the exact bytes that go to the file), so memory is the size
 * of the metadata (a 150k-token vocabulary is a few MB).
 *
 * Errors.  Functions return 0 or a negative code (-EINVAL for a bad
 * argument such as a duplicate tensor name or a type the reader would
 * reject, -ENOMEM, -errno on I/O, NJ_ESTATE for a call out of order) and
 * leave a sentence in nj_last_error().  Setting an existing key replaces its
 * value in place.  Not thread-safe: one writer, one thread.
 */
#ifndef NJ_GGUF_WRITE_H
#define NJ_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

#define GGUF_WRITE_MAX_NAME 63   /* ggml's GGML_MAX_NAME - 1 */

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(int *err);
/* Frees everything; a started but unfinished file is removed. */
void gguf_writer_free(gguf_writer *w);

/* ---- metadata (before gguf_writer_open) ---- */
int gguf_writer_set_u8  (gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_set_i8  (gguf_writer *w, const char *key, int8_t v);
int gguf_writer_set_u16 (gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_set_i16 (gguf_writer *w, const char *key, int16_t v);
int gguf_writer_set_u32 (gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32 (gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_f32 (gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_set_u64 (gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_i64 (gguf_writer *w, const char *key, int64_t v);
int gguf_writer_set_f64 (gguf_writer *w, const char *key, double v);
int gguf_writer_set_str (gguf_writer *w, const char *key, const char *s);
int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len);
/* Array of a fixed-size element type (not STRING/ARRAY): n elements at data
 * in file layout (bool = one byte 0/1). */
int gguf_writer_set_arr (gguf_writer *w, const char *key, uint32_t elem_type,
                         const void *data, uint64_t n);
/* Array of strings given as views (gguf_str, e.g. from a reader). */
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n);
/* Array of NUL-terminated C strings. */
int gguf_writer_set_arr_cstr(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Copy one key/value read by gguf.h (any type), under its own key. */
int gguf_writer_set_kv(gguf_writer *w, const gguf_kv *kv);
/* Remove a key if present (0 either way). */
int gguf_writer_unset(gguf_writer *w, const char *key);
uint64_t gguf_writer_n_kv(const gguf_writer *w);

/* ---- tensors (before gguf_writer_open) ----
 * ne[0] is the contiguous dimension; it must be a multiple of the type's
 * block size.  n_dims 1..4.  Returns the tensor's index or < 0. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims,
                           const int64_t *ne, uint32_t type);
uint64_t gguf_writer_n_tensors(const gguf_writer *w);
/* Data bytes of tensor i (rows * row size), 0 if i is out of range. */
uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, uint64_t i);

/* ---- output ---- */
/* Write to path (through "<path>.part", renamed by finish). */
int gguf_writer_open(gguf_writer *w, const char *path);
/* Write to a caller's stream (not closed; finish only flushes). */
int gguf_writer_open_fp(gguf_writer *w, FILE *fp);
/* Append n bytes of tensor data, continuing the current tensor and moving
 * to the next one when it is full.  -EINVAL if more data than tensors. */
int gguf_writer_write(gguf_writer *w, const void *data, size_t n);
/* Index of the tensor the next gguf_writer_write goes to (== n_tensors when
 * all data is written). */
uint64_t gguf_writer_cur_tensor(const gguf_writer *w);
/* Check all data was written, flush, fsync, rename.  After finish the writer
 * may only be freed. */
int gguf_writer_finish(gguf_writer *w);

/* Convenience: write a whole file to memory (metadata and tensor data given
 * up front: data[i] holds tensor i).  *out is nj_malloc'd; nj_free it. */
int gguf_writer_to_mem(gguf_writer *w, const void *const *data, void **out, size_t *len);

#endif
