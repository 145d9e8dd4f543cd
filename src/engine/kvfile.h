/*
 * kvfile — a session's cached prefix (token ids and their K/V rows) as a
 * file, so that a service can read its fixed system prefix back after a
 * restart or an idle unload instead of evaluating it again.
 *
 * Format (version 1, little-endian, fixed 96-byte header, then payload):
 *
 *   off  size  field
 *     0     8  magic "NJKVPFX\0"
 *     8     4  version (1)
 *    12     4  header bytes (96)
 *    16     8  model file size in bytes
 *    24     8  model identity (nj_model_desc.file_id): kvfile_hash of the
 *              GGUF file's bytes before the tensor data (header, metadata,
 *              tensor table), chained with the first 4 KiB of every tensor
 *    32     4  KV type (enum nj_kv_type)
 *    36     4  n_layer
 *    40     4  n_head_kv
 *    44     4  head_dim_k
 *    48     4  head_dim_v
 *    52     4  bytes of one K row (all kv heads of one position)
 *    56     4  bytes of one V row
 *    60     4  n: tokens in the prefix (>= 1)
 *    64     8  payload bytes = 4n + n_layer * n * (K row + V row bytes)
 *    72     8  payload checksum (see below)
 *    80     8  reserved (0)
 *    88     8  header checksum: kvfile_hash of bytes [0, 88)
 *    96        payload: int32 ids[n]; then per layer K rows [n] and V rows [n]
 *
 * The layout does not depend on the context size of the session that
 * wrote it: only positions [0, n) are stored, and any session of the same
 * model file and KV type with n_ctx >= n can read it.  The payload
 * checksum chains kvfile_hash over the sections in file order (ids, then
 * each layer's K and V block), each seeded with the previous value.
 *
 * Trust.  A prefix file is a cache: anything that does not match (magic,
 * version, model identity, KV type, shapes, sizes, either checksum, the
 * file's length) makes kvfile_load fail with a sentence saying what, and
 * the session is left empty, never holding rows from a rejected file.
 * Writes go to PATH.tmp, then rename(2) over PATH, so a reader sees the
 * old file or the new one; a write cut short by a crash leaves a file
 * whose checksum fails.
 *
 * Threads: the functions use only the session (one thread at a time, as
 * every session call) and the file.
 */
#ifndef NJ_KVFILE_H
#define NJ_KVFILE_H

#include <stddef.h>
#include <stdint.h>

#include "nightjar.h"

#define KVFILE_VERSION 1
#define KVFILE_HEADER  96

/* A 64-bit non-cryptographic hash of n bytes (4 lanes of multiply-rotate
 * rounds over 8-byte words, then a finalizer), several GB/s; any single
 * changed bit changes it.  Used for the model identity and checksums. */
uint64_t kvfile_hash(const void *data, size_t n, uint64_t seed);

/* What a file must match to be read into a session. */
typedef struct kvfile_expect {
    uint64_t model_bytes, model_id;
    int      kv_type, n_layer, n_head_kv, head_dim_k, head_dim_v;
    uint32_t k_rb, v_rb;
    int      max_tokens;    /* the reading session's n_ctx */
} kvfile_expect;

/* Check a header (len bytes; KVFILE_HEADER needed) against e.  Returns
 * the token count n (>= 1) and the payload bytes in *payload, or
 * NJ_EFORMAT (not a prefix file, truncated header, bad sizes),
 * NJ_ECHECKSUM (header checksum), NJ_EUNSUPPORTED (another version),
 * NJ_ESTATE (written for another model file, KV type or shape, or too
 * long for the session), each with a sentence.  Pure: no I/O. */
int kvfile_check_header(const uint8_t *hdr, size_t len, const kvfile_expect *e, uint64_t *payload);

#endif
