/*
 * corrupt-gguf — write a set of malformed GGUF files for the loader tests.
 *
 *   corrupt-gguf DIR            writes DIR/valid.gguf and DIR/NN-what.gguf
 *   corrupt-gguf --list         names only
 *
 * Starts from a small valid file written with gguf_write (string, bool,
 * u32, f32, string-array and u32-array keys; F32, Q4_0 and Q8_0 tensors),
 * finds every field's file offset by reading that file back with gguf.h,
 * and derives each malformed variant by patching or cutting bytes: a file
 * truncated inside every section, hostile counts and lengths, overflowing
 * shapes, bad type ids, bad alignment, offsets past the end, nested arrays,
 * a bool that is neither 0 nor 1, duplicate names.  Every variant must be
 * refused by gguf_open with NJ_EFORMAT or NJ_EUNSUPPORTED and a message
 * (tests/test_corrupt.c), never crash or read out of bounds.
 * The files also seed the fuzzer's corpus (scripts/fuzz).
 */
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct { uint8_t *p; size_t n; } blob;

static blob valid;
/* Offsets in the valid file, found by reading it back. */
static size_t off_kv0, off_kv_str_val, off_kv_bool_val, off_kv_align_val, off_kv_arr, off_kv_arr_u32,
              off_t0, off_t1, off_t2, off_data, off_kv_u32_type;

static void die(const char *m) { fprintf(stderr, "corrupt-gguf: %s: %s\n", m, nj_last_error()); exit(1); }

static size_t at(const void *p) { return (size_t)((const uint8_t *)p - valid.p); }

static void build_valid(void) {
    int err;
    gguf_writer *w = gguf_writer_new(&err);
    if (!w) die("writer");
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_writer_set_u32(w, "general.alignment", 32);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", "b"};
    gguf_writer_set_arr_cstr(w, "tokenizer.ggml.tokens", toks, 5);
    uint32_t types[5] = {2, 3, 3, 1, 1};
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_UINT32, types, 5);
    int64_t ne_a[2] = {8, 2}, ne_b[2] = {64, 2}, ne_c[1] = {32};
    if (gguf_writer_add_tensor(w, "a.weight", 2, ne_a, NJ_F32) < 0 ||
        gguf_writer_add_tensor(w, "b.weight", 2, ne_b, NJ_Q4_0) < 0 ||
        gguf_writer_add_tensor(w, "c.weight", 1, ne_c, NJ_Q8_0) < 0) die("add_tensor");
    size_t sz[3] = {8 * 2 * 4, 2 * 2 * 18, 34};
    uint8_t *d[3];
    for (int i = 0; i < 3; i++) { d[i] = calloc(1, sz[i]); for (size_t j = 0; j < sz[i]; j++) d[i][j] = (uint8_t)(j * 7 + i); }
    /* a.weight holds finite floats; the Q blocks have finite scales */
    for (int i = 0; i < 16; i++) { float x = (float)i; memcpy(d[0] + 4 * i, &x, 4); }
    for (int b = 0; b < 4; b++) { uint16_t h = 0x3c00; memcpy(d[1] + 18 * b, &h, 2); }
    { uint16_t h = 0x3c00; memcpy(d[2], &h, 2); }
    void *buf; size_t len;
    if (gguf_writer_to_mem(w, (const void *const *)d, &buf, &len)) die("to_mem");
    valid.p = malloc(len);
    memcpy(valid.p, buf, len);
    valid.n = len;
    nj_free(buf);
    gguf_writer_free(w);
    for (int i = 0; i < 3; i++) free(d[i]);

    gguf_file *f = gguf_open_mem(valid.p, valid.n, &err);
    if (!f) die("reading back the valid file");
    off_kv0 = at(gguf_kv_at(f, 0)->key.ptr) - 8;
    const gguf_kv *kv = gguf_find(f, "general.architecture");
    off_kv_str_val = at(kv->v.str.ptr) - 8;                       /* u64 length */
    kv = gguf_find(f, "tokenizer.ggml.add_bos_token");
    off_kv_bool_val = at(kv->key.ptr) + kv->key.len + 4;
    kv = gguf_find(f, "general.alignment");
    off_kv_align_val = at(kv->key.ptr) + kv->key.len + 4;
    kv = gguf_find(f, "llama.block_count");
    off_kv_u32_type = at(kv->key.ptr) + kv->key.len;
    kv = gguf_find(f, "tokenizer.ggml.tokens");
    off_kv_arr = at(kv->key.ptr) + kv->key.len + 4;               /* u32 elem type | u64 n */
    kv = gguf_find(f, "tokenizer.ggml.token_type");
    off_kv_arr_u32 = at(kv->key.ptr) + kv->key.len + 4;
    off_t0 = at(gguf_tensor_at(f, 0)->name.ptr) - 8;
    off_t1 = at(gguf_tensor_at(f, 1)->name.ptr) - 8;
    off_t2 = at(gguf_tensor_at(f, 2)->name.ptr) - 8;
    off_data = (size_t)gguf_data_offset(f);
    gguf_close(f);
}

/* Tensor-info field offsets: name len | name | n_dims | ne[n] | type | offset */
static size_t t_ndims(size_t t) { uint64_t l; memcpy(&l, valid.p + t, 8); return t + 8 + (size_t)l; }
static size_t t_ne(size_t t, int d) { return t_ndims(t) + 4 + 8 * (size_t)d; }
static size_t t_type(size_t t) { uint32_t nd; memcpy(&nd, valid.p + t_ndims(t), 4); return t_ndims(t) + 4 + 8 * nd; }
static size_t t_off(size_t t) { return t_type(t) + 4; }

static blob copy(void) { blob b = {malloc(valid.n), valid.n}; memcpy(b.p, valid.p, valid.n); return b; }
static blob cut(size_t n) { blob b = copy(); b.n = n; return b; }
static blob put32(blob b, size_t off, uint32_t v) { memcpy(b.p + off, &v, 4); return b; }
static blob put64(blob b, size_t off, uint64_t v) { memcpy(b.p + off, &v, 8); return b; }
static blob put8(blob b, size_t off, uint8_t v) { b.p[off] = v; return b; }

/* Rename tensor 1 to tensor 0's name (same length by construction). */
static blob dup_tensor_name(void) {
    blob b = copy();
    memcpy(b.p + off_t1 + 8, valid.p + off_t0 + 8, 8);   /* "a.weight" over "b.weight" */
    return b;
}
static blob dup_key(void) {
    /* "llama.block_count" -> same length key as... make kv1's key equal kv0's
     * is not length-safe, so instead rename the f32 key "llama.rope.freq_base"
     * (20 bytes) to "general.architecture" (20 bytes). */
    blob b = copy();
    int err;
    gguf_file *f = gguf_open_mem(valid.p, valid.n, &err);
    const gguf_kv *kv = gguf_find(f, "llama.rope.freq_base");
    memcpy(b.p + at(kv->key.ptr), "general.architecture", 20);
    gguf_close(f);
    return b;
}

typedef struct variant { const char *name; blob (*make)(void); } variant;

#define V(nm, expr) static blob mk_##nm(void) { return expr; }
V(empty, cut(0))
V(bad_magic, put32(copy(), 0, 0x47475546u))                       /* "FUGG" */
V(version_1, put32(copy(), 4, 1))
V(version_huge, put32(copy(), 4, 0xffffffffu))
V(trunc_header, cut(20))
V(trunc_in_key, cut(off_kv0 + 8 + 3))
V(trunc_in_string_value, cut(off_kv_str_val + 8 + 2))
V(trunc_in_string_array, cut(off_kv_arr + 12 + 9))
V(trunc_in_u32_array, cut(off_kv_arr_u32 + 12 + 6))
V(trunc_in_tensor_info, cut(off_t1 + 10))
V(trunc_in_tensor_shape, cut(t_ne(off_t2, 0) + 3))
V(trunc_before_data, cut(off_data - 1))
V(trunc_in_data, cut(valid.n - 33))
V(n_kv_huge, put64(copy(), 16, 0x7fffffffffffffffull))
V(n_tensors_huge, put64(copy(), 8, 0x4000000000000000ull))
V(n_kv_too_many, put64(copy(), 16, 1000))
V(key_len_huge, put64(copy(), off_kv0, 0xffffffffffffff00ull))
V(string_len_past_end, put64(copy(), off_kv_str_val, valid.n))
V(string_len_huge, put64(copy(), off_kv_str_val, 0x8000000000000000ull))
V(array_str_count_huge, put64(copy(), off_kv_arr + 4, 0x1000000000000000ull))
V(array_str_elem_len_huge, put64(copy(), off_kv_arr + 12, 0xfffffffffffffff0ull))
V(array_u32_count_overflow, put64(copy(), off_kv_arr_u32 + 4, 0x4000000000000001ull))
V(nested_array, put32(copy(), off_kv_arr_u32, GGUF_T_ARRAY))
V(array_elem_type_bad, put32(copy(), off_kv_arr_u32, 77))
V(kv_type_bad, put32(copy(), off_kv_u32_type, 13))
V(kv_type_huge, put32(copy(), off_kv_u32_type, 0xffffffffu))
V(bool_not_0_1, put8(copy(), off_kv_bool_val, 2))
V(alignment_zero, put32(copy(), off_kv_align_val, 0))
V(alignment_not_pow2, put32(copy(), off_kv_align_val, 48))
V(alignment_huge, put32(copy(), off_kv_align_val, 0x80000000u))
V(tensor_name_len_huge, put64(copy(), off_t0, 0x7fffffffffffffffull))
V(tensor_ndims_zero, put32(copy(), t_ndims(off_t0), 0))
V(tensor_ndims_five, put32(copy(), t_ndims(off_t0), 5))
V(tensor_ndims_huge, put32(copy(), t_ndims(off_t0), 0xffffffffu))
V(tensor_dim_zero, put64(copy(), t_ne(off_t0, 1), 0))
V(tensor_dim_huge, put64(copy(), t_ne(off_t0, 1), 0x8000000000000000ull))
V(tensor_dims_overflow, put64(put64(copy(), t_ne(off_t0, 0), 1ull << 32), t_ne(off_t0, 1), 1ull << 33))
V(tensor_type_removed, put32(copy(), t_type(off_t1), 4))           /* Q4_2, gone from ggml */
V(tensor_type_huge, put32(copy(), t_type(off_t1), 0xfffffff0u))
V(tensor_row_not_block_multiple, put64(copy(), t_ne(off_t1, 0), 48))
V(tensor_offset_unaligned, put64(copy(), t_off(off_t1), 0 + 16))
V(tensor_offset_past_end, put64(copy(), t_off(off_t2), 1ull << 40))
V(tensor_offset_wraps, put64(copy(), t_off(off_t2), 0xffffffffffffffe0ull))
V(tensor_data_past_end, put64(copy(), t_ne(off_t2, 0), 32 * 64))
V(tensor_duplicate_name, dup_tensor_name())
V(key_duplicate, dup_key())
#undef V

#define E(nm) {#nm, mk_##nm}
static const variant variants[] = {
    E(empty), E(bad_magic), E(version_1), E(version_huge), E(trunc_header), E(trunc_in_key),
    E(trunc_in_string_value), E(trunc_in_string_array), E(trunc_in_u32_array), E(trunc_in_tensor_info),
    E(trunc_in_tensor_shape), E(trunc_before_data), E(trunc_in_data), E(n_kv_huge), E(n_tensors_huge),
    E(n_kv_too_many), E(key_len_huge), E(string_len_past_end), E(string_len_huge), E(array_str_count_huge),
    E(array_str_elem_len_huge), E(array_u32_count_overflow), E(nested_array), E(array_elem_type_bad),
    E(kv_type_bad), E(kv_type_huge), E(bool_not_0_1), E(alignment_zero), E(alignment_not_pow2),
    E(alignment_huge), E(tensor_name_len_huge), E(tensor_ndims_zero), E(tensor_ndims_five),
    E(tensor_ndims_huge), E(tensor_dim_zero), E(tensor_dim_huge), E(tensor_dims_overflow),
    E(tensor_type_removed), E(tensor_type_huge), E(tensor_row_not_block_multiple),
    E(tensor_offset_unaligned), E(tensor_offset_past_end), E(tensor_offset_wraps),
    E(tensor_data_past_end), E(tensor_duplicate_name), E(key_duplicate),
};
#undef E

static void write_file(const char *dir, const char *name, blob b) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (b.n && fwrite(b.p, 1, b.n, f) != b.n) || fclose(f)) {
        fprintf(stderr, "corrupt-gguf: cannot write %s\n", path);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: corrupt-gguf DIR | --list\n");
        return 2;
    }
    bool list = strcmp(argv[1], "--list") == 0;
    build_valid();
    if (!list) {
        mkdir(argv[1], 0755);
        write_file(argv[1], "valid.gguf", valid);
    }
    for (size_t i = 0; i < NJ_ARRAY_LEN(variants); i++) {
        char name[128];
        snprintf(name, sizeof name, "%02zu-%s.gguf", i + 1, variants[i].name);
        if (list) { puts(name); continue; }
        blob b = variants[i].make();
        write_file(argv[1], name, b);
        free(b.p);
    }
    if (!list) fprintf(stderr, "corrupt-gguf: wrote valid.gguf and %zu malformed files to %s\n",
                       NJ_ARRAY_LEN(variants), argv[1]);
    free(valid.p);
    return 0;
}
