/*
 * gguf — read-only view of a GGUF v2/v3 model file.
 *
 * Design.  The file is mmap'd read-only and parsed once.  Every count, size,
 * offset, string length and tensor extent is validated against the mapping
 * before it is used, so a truncated or hostile file yields NJ_EFORMAT with a
 * sentence in nj_last_error() naming what is wrong — never a read outside the
 * mapping.  After gguf_open succeeds, all accessors are O(1) or O(log n) and
 * cannot fail on bounds.
 *
 * Ownership.  gguf_file owns the mapping and a small index (key/value table,
 * tensor table, string-array tables) allocated with nj_malloc.  Every pointer
 * handed out (strings, array data, tensor data) is a *borrowed view into the
 * mapping*, valid until gguf_close.  Strings are NOT NUL-terminated: use the
 * length.  gguf_open_mem parses a caller-owned buffer (for fuzzing and tests);
 * the caller keeps the buffer alive for the file's lifetime.
 *
 * Layout (little-endian):
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv  x { str key | u32 type | value }
 *   n_tensors x { str name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to `general.alignment` (default 32)
 *   tensor data; each tensor at data_start + offset, offset % alignment == 0
 * str = u64 len | bytes.  array = u32 elem_type | u64 n | elements.
 */
#ifndef NJ_GGUF_H
#define NJ_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum gguf_vtype {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12, GGUF_T_COUNT
};

#define GGUF_MAX_DIMS 4

typedef struct gguf_str { const char *ptr; uint64_t len; } gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;           /* enum gguf_vtype */
    union {
        uint64_t u64; int64_t i64; double f64; bool b;  /* scalar, widened */
        gguf_str str;
        struct {
            uint32_t type;   /* element type */
            uint64_t n;
            const void *data;      /* raw elements (not for strings) */
            const gguf_str *strs;  /* string arrays: n views, else NULL */
        } arr;
    } v;
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    int64_t  ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dim; unused = 1 */
    uint32_t type;              /* ggml type id (see quant.h) */
    uint64_t offset;            /* relative to data start */
    uint64_t nbytes;            /* validated size of the data */
    const void *data;           /* view into the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Open and validate.  NULL on failure with *err set (NJ_EFORMAT for a bad
 * file, -errno for I/O) and nj_last_error() describing it. */
gguf_file *gguf_open(const char *path, int *err);
gguf_file *gguf_open_mem(const void *buf, size_t len, int *err);
/* True when the data is our own read-only file mapping (gguf_open), whose
 * pages may be dropped from the resident set and re-read; false for
 * gguf_open_mem's caller-owned buffer. */
bool gguf_is_mapped(const gguf_file *f);
void       gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
size_t   gguf_file_size(const gguf_file *f);
const void *gguf_base(const gguf_file *f);      /* start of the mapping */
uint64_t gguf_data_offset(const gguf_file *f);   /* file offset of tensor data */

/* Key/value access. */
uint64_t       gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
const gguf_kv *gguf_find(const gguf_file *f, const char *key);

/* Typed getters: 0 on success, -ENOENT if missing, NJ_EFORMAT if the stored
 * type cannot represent the request (integers convert if in range). */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Array: element type, count, and either raw data or string views. */
int gguf_get_arr(const gguf_file *f, const char *key, uint32_t *type,
                 uint64_t *n, const void **data, const gguf_str **strs);

/* Tensors. */
uint64_t           gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* "general.architecture" etc. as a C string copied into buf (truncated). */
bool gguf_str_eq(gguf_str s, const char *c);

const char *gguf_vtype_name(uint32_t t);

/* Bytes of one scalar value of type t (GGUF_T_*); 0 for string, array
 * and unknown types, which have no fixed size. */
size_t gguf_vtype_size(uint32_t t);

#endif
