/* test_gguf_write — the GGUF writer, checked by reading back with gguf.h:
 * every value type, string arrays, key replacement, tensor layout and
 * alignment, streamed data in odd chunk sizes, misuse errors, allocation
 * failures, and a byte-exact rewrite of a real model when one is cached. */
#include "testutil.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "util.h"

#include <unistd.h>

static void fill(uint8_t *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; p[i] = (uint8_t)(seed >> 24); }
}

/* Describe a file with one key of every type and three tensors. */
static gguf_writer *describe(uint32_t align) {
    int err = 1;
    gguf_writer *w = gguf_writer_new(&err);
    assert_non_null(w);
    assert_int_equal(err, 0);
    if (align) assert_int_equal(gguf_writer_set_u32(w, "general.alignment", align), 0);
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_set_u8(w, "k.u8", 200), 0);
    assert_int_equal(gguf_writer_set_i8(w, "k.i8", -100), 0);
    assert_int_equal(gguf_writer_set_u16(w, "k.u16", 60000), 0);
    assert_int_equal(gguf_writer_set_i16(w, "k.i16", -30000), 0);
    assert_int_equal(gguf_writer_set_u32(w, "k.u32", 4000000000u), 0);
    assert_int_equal(gguf_writer_set_i32(w, "k.i32", -2000000000), 0);
    assert_int_equal(gguf_writer_set_f32(w, "k.f32", 0.25f), 0);
    assert_int_equal(gguf_writer_set_bool(w, "k.bool", true), 0);
    assert_int_equal(gguf_writer_set_u64(w, "k.u64", UINT64_MAX - 5), 0);
    assert_int_equal(gguf_writer_set_i64(w, "k.i64", INT64_MIN + 7), 0);
    assert_int_equal(gguf_writer_set_f64(w, "k.f64", -1.5e300), 0);
    assert_int_equal(gguf_writer_set_strn(w, "k.empty", "", 0), 0);
    const char *strs[] = {"a", "", "h\xc3\xa9llo", "<|im_start|>"};
    assert_int_equal(gguf_writer_set_arr_cstr(w, "k.strs", strs, 4), 0);
    int32_t ia[5] = {1, -2, 3, -4, 5};
    assert_int_equal(gguf_writer_set_arr(w, "k.i32s", GGUF_T_INT32, ia, 5), 0);
    float fa[3] = {1.0f, -2.5f, 1e-7f};
    assert_int_equal(gguf_writer_set_arr(w, "k.f32s", GGUF_T_FLOAT32, fa, 3), 0);
    uint8_t ba[3] = {1, 0, 1};
    assert_int_equal(gguf_writer_set_arr(w, "k.bools", GGUF_T_BOOL, ba, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "k.none", GGUF_T_UINT64, NULL, 0), 0);
    assert_int_equal(gguf_writer_set_arr_cstr(w, "k.nostrs", NULL, 0), 0);
    /* replacement keeps the slot and changes the type */
    assert_int_equal(gguf_writer_set_str(w, "k.replace", "first"), 0);
    assert_int_equal(gguf_writer_set_u32(w, "k.replace", 7), 0);
    int64_t ne1[1] = {13}, ne2[2] = {64, 3}, ne3[3] = {256, 2, 2};
    assert_int_equal(gguf_writer_add_tensor(w, "a.f32", 1, ne1, NJ_F32), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "b.q4_0", 2, ne2, NJ_Q4_0), 1);
    assert_int_equal(gguf_writer_add_tensor(w, "c.q4_k", 3, ne3, NJ_Q4_K), 2);
    return w;
}

static void check_read(const gguf_file *f, uint32_t align, uint8_t *const *data) {
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), align ? align : 32);
    assert_int_equal(gguf_n_kv(f), align ? 21 : 20);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s), 0);
    assert_true(gguf_str_eq(s, "llama"));
    const gguf_kv *kv;
    assert_non_null(kv = gguf_find(f, "k.u8"));  assert_int_equal(kv->type, GGUF_T_UINT8);  assert_int_equal(kv->v.u64, 200);
    assert_non_null(kv = gguf_find(f, "k.i8"));  assert_int_equal(kv->type, GGUF_T_INT8);   assert_int_equal(kv->v.i64, -100);
    assert_non_null(kv = gguf_find(f, "k.u16")); assert_int_equal(kv->type, GGUF_T_UINT16); assert_int_equal(kv->v.u64, 60000);
    assert_non_null(kv = gguf_find(f, "k.i16")); assert_int_equal(kv->type, GGUF_T_INT16);  assert_int_equal(kv->v.i64, -30000);
    assert_non_null(kv = gguf_find(f, "k.u32")); assert_int_equal(kv->type, GGUF_T_UINT32); assert_int_equal(kv->v.u64, 4000000000u);
    assert_non_null(kv = gguf_find(f, "k.i32")); assert_int_equal(kv->type, GGUF_T_INT32);  assert_int_equal(kv->v.i64, -2000000000);
    assert_non_null(kv = gguf_find(f, "k.f32")); assert_int_equal(kv->type, GGUF_T_FLOAT32); assert_true(kv->v.f64 == 0.25);
    assert_non_null(kv = gguf_find(f, "k.bool")); assert_int_equal(kv->type, GGUF_T_BOOL); assert_true(kv->v.b);
    assert_non_null(kv = gguf_find(f, "k.u64")); assert_int_equal(kv->type, GGUF_T_UINT64); assert_true(kv->v.u64 == UINT64_MAX - 5);
    assert_non_null(kv = gguf_find(f, "k.i64")); assert_int_equal(kv->type, GGUF_T_INT64);  assert_true(kv->v.i64 == INT64_MIN + 7);
    assert_non_null(kv = gguf_find(f, "k.f64")); assert_int_equal(kv->type, GGUF_T_FLOAT64); assert_true(kv->v.f64 == -1.5e300);
    assert_int_equal(gguf_get_str(f, "k.empty", &s), 0); assert_int_equal(s.len, 0);
    uint32_t et; uint64_t n; const void *d; const gguf_str *ss;
    assert_int_equal(gguf_get_arr(f, "k.strs", &et, &n, &d, &ss), 0);
    assert_int_equal(et, GGUF_T_STRING); assert_int_equal(n, 4);
    assert_true(gguf_str_eq(ss[0], "a")); assert_int_equal(ss[1].len, 0);
    assert_true(gguf_str_eq(ss[2], "h\xc3\xa9llo")); assert_true(gguf_str_eq(ss[3], "<|im_start|>"));
    assert_int_equal(gguf_get_arr(f, "k.i32s", &et, &n, &d, NULL), 0);
    assert_int_equal(et, GGUF_T_INT32); assert_int_equal(n, 5);
    int32_t ia[5]; memcpy(ia, d, sizeof ia); assert_int_equal(ia[3], -4);
    assert_int_equal(gguf_get_arr(f, "k.f32s", &et, &n, &d, NULL), 0);
    float fa[3]; memcpy(fa, d, sizeof fa); assert_true(fa[1] == -2.5f && fa[2] == 1e-7f);
    assert_int_equal(gguf_get_arr(f, "k.bools", &et, &n, &d, NULL), 0);
    assert_int_equal(et, GGUF_T_BOOL); assert_int_equal(((const uint8_t *)d)[1], 0);
    assert_int_equal(gguf_get_arr(f, "k.none", &et, &n, &d, NULL), 0); assert_int_equal(n, 0);
    assert_int_equal(gguf_get_arr(f, "k.nostrs", &et, &n, &d, &ss), 0); assert_int_equal(n, 0);
    uint32_t u; assert_int_equal(gguf_get_u32(f, "k.replace", &u), 0); assert_int_equal(u, 7);
    /* key order: first-set order, replacement in place */
    assert_true(gguf_str_eq(gguf_kv_at(f, align ? 1 : 0)->key, "general.architecture"));
    assert_true(gguf_str_eq(gguf_kv_at(f, gguf_n_kv(f) - 1)->key, "k.replace"));

    assert_int_equal(gguf_n_tensors(f), 3);
    const char *names[3] = {"a.f32", "b.q4_0", "c.q4_k"};
    uint64_t sizes[3] = {13 * 4, 2 * 3 * 18, 4 * 144};
    uint64_t a = align ? align : 32;
    assert_int_equal(gguf_data_offset(f) % a, 0);
    for (int i = 0; i < 3; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, (uint64_t)i);
        assert_true(gguf_str_eq(t->name, names[i]));
        assert_int_equal(t->nbytes, sizes[i]);
        assert_int_equal(t->offset % a, 0);
        assert_int_equal(((uintptr_t)t->data - (uintptr_t)gguf_base(f)) % a, 0);
        assert_memory_equal(t->data, data[i], sizes[i]);
    }
    const gguf_tensor *t = gguf_find_tensor(f, "c.q4_k");
    assert_int_equal(t->n_dims, 3); assert_int_equal(t->ne[0], 256); assert_int_equal(t->ne[2], 2);
    assert_int_equal(t->type, NJ_Q4_K);
    /* file ends padded to the alignment, ggml style */
    assert_int_equal(gguf_file_size(f) % a, 0);
}

static uint8_t **make_data(void) {
    uint64_t sizes[3] = {13 * 4, 2 * 3 * 18, 4 * 144};
    uint8_t **d = calloc(3, sizeof *d);
    for (int i = 0; i < 3; i++) { d[i] = malloc(sizes[i]); fill(d[i], sizes[i], (uint32_t)i + 1); }
    /* the F32 tensor holds real floats */
    for (int i = 0; i < 13; i++) { float x = (float)i * 0.5f; memcpy(d[0] + 4 * i, &x, 4); }
    return d;
}
static void free_data(uint8_t **d) { for (int i = 0; i < 3; i++) free(d[i]); free(d); }

static void test_roundtrip_mem(void **st) {
    (void)st;
    uint32_t aligns[3] = {0, 64, 1};
    for (int k = 0; k < 3; k++) {
        uint8_t **data = make_data();
        gguf_writer *w = describe(aligns[k]);
        void *buf; size_t len;
        assert_int_equal(gguf_writer_to_mem(w, (const void *const *)data, &buf, &len), 0);
        int err;
        gguf_file *f = gguf_open_mem(buf, len, &err);
        if (!f) fail_msg("reopen: %s", nj_last_error());
        check_read(f, aligns[k], data);
        gguf_close(f);
        nj_free(buf);
        gguf_writer_free(w);
        free_data(data);
    }
}

/* Streaming to a file in chunks that straddle tensor boundaries. */
static void test_stream_file(void **st) {
    (void)st;
    const char *dir = nj_test_tmpdir();
    assert_non_null(dir);
    char path[600], part[620];
    snprintf(path, sizeof path, "%s/w.gguf", dir);
    snprintf(part, sizeof part, "%s.part", path);
    uint8_t **data = make_data();
    uint64_t sizes[3] = {13 * 4, 2 * 3 * 18, 4 * 144};
    size_t total = (size_t)(sizes[0] + sizes[1] + sizes[2]);
    uint8_t *cat = malloc(total);
    memcpy(cat, data[0], sizes[0]);
    memcpy(cat + sizes[0], data[1], sizes[1]);
    memcpy(cat + sizes[0] + sizes[1], data[2], sizes[2]);
    gguf_writer *w = describe(64);
    assert_int_equal(gguf_writer_open(w, path), 0);
    assert_int_equal(access(part, F_OK), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    size_t off = 0, step = 1;
    while (off < total) {
        size_t k = NJ_MIN(step, total - off);
        assert_int_equal(gguf_writer_write(w, cat + off, k), 0);
        off += k;
        step = step * 3 + 1;
    }
    assert_int_equal(gguf_writer_cur_tensor(w), 3);
    assert_int_equal(gguf_writer_write(w, cat, 1), -EINVAL);   /* past the end */
    assert_int_equal(gguf_writer_finish(w), 0);
    gguf_writer_free(w);
    assert_int_not_equal(access(part, F_OK), 0);
    int err;
    gguf_file *f = gguf_open(path, &err);
    if (!f) fail_msg("open: %s", nj_last_error());
    check_read(f, 64, data);
    gguf_close(f);
    unlink(path);
    rmdir(dir);
    free(cat);
    free_data(data);
}

static void test_misuse(void **st) {
    (void)st;
    int err;
    gguf_writer *w = gguf_writer_new(&err);
    int64_t ne[2] = {33, 2}, ok[2] = {32, 2};
    assert_int_equal(gguf_writer_add_tensor(w, "x", 2, ne, NJ_Q8_0), -EINVAL);      /* not a block multiple */
    assert_true(strlen(nj_last_error()) > 0);
    assert_int_equal(gguf_writer_add_tensor(w, "x", 0, ok, NJ_F32), -EINVAL);       /* 0 dims */
    assert_int_equal(gguf_writer_add_tensor(w, "x", 2, ok, 4), -EINVAL);            /* removed type id */
    assert_int_equal(gguf_writer_add_tensor(w, "", 2, ok, NJ_F32), -EINVAL);
    char longname[80]; memset(longname, 'n', 79); longname[79] = 0;
    assert_int_equal(gguf_writer_add_tensor(w, longname, 2, ok, NJ_F32), -EINVAL);
    int64_t zero[2] = {32, 0};
    assert_int_equal(gguf_writer_add_tensor(w, "z", 2, zero, NJ_F32), -EINVAL);
    assert_int_equal(gguf_writer_add_tensor(w, "x", 2, ok, NJ_Q8_0), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "x", 2, ok, NJ_Q8_0), -EINVAL);      /* duplicate */
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 48), -EINVAL);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 0), -EINVAL);
    assert_int_equal(gguf_writer_set_arr(w, "bad", GGUF_T_STRING, NULL, 0), -EINVAL);
    uint8_t b2[2] = {0, 2};
    assert_int_equal(gguf_writer_set_arr(w, "badbool", GGUF_T_BOOL, b2, 2), -EINVAL);
    assert_int_equal(gguf_writer_write(w, "x", 1), NJ_ESTATE);                       /* not open */
    char *mp = NULL; size_t ml = 0;
    FILE *fp = open_memstream(&mp, &ml);
    assert_int_equal(gguf_writer_open_fp(w, fp), 0);
    assert_int_equal(gguf_writer_set_u32(w, "late", 1), NJ_ESTATE);
    assert_int_equal(gguf_writer_add_tensor(w, "late", 2, ok, NJ_F32), NJ_ESTATE);
    uint8_t blk[34] = {0};
    assert_int_equal(gguf_writer_write(w, blk, 34), 0);
    assert_int_equal(gguf_writer_finish(w), -EINVAL);                                /* short by a block */
    assert_true(strstr(nj_last_error(), "'x'") != NULL);
    assert_int_equal(gguf_writer_write(w, blk, 34), 0);
    assert_int_equal(gguf_writer_finish(w), 0);
    assert_int_equal(gguf_writer_finish(w), NJ_ESTATE);
    gguf_writer_free(w);
    fclose(fp);
    gguf_file *f = gguf_open_mem(mp, ml, &err);
    assert_non_null(f);
    assert_int_equal(gguf_n_tensors(f), 1);
    gguf_close(f);
    free(mp);
    /* unset, and a writer freed while open removes its partial file */
    w = gguf_writer_new(&err);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 128), 0);
    assert_int_equal(gguf_writer_set_u32(w, "a", 1), 0);
    assert_int_equal(gguf_writer_unset(w, "general.alignment"), 0);
    assert_int_equal(gguf_writer_unset(w, "nope"), 0);
    assert_int_equal(gguf_writer_n_kv(w), 1);
    const char *dir = nj_test_tmpdir();
    char path[600], part[620];
    snprintf(path, sizeof path, "%s/p.gguf", dir);
    snprintf(part, sizeof part, "%s.part", path);
    assert_int_equal(gguf_writer_add_tensor(w, "x", 2, ok, NJ_F32), 0);
    assert_int_equal(gguf_writer_open(w, path), 0);
    assert_int_equal(access(part, F_OK), 0);
    gguf_writer_free(w);
    assert_int_not_equal(access(part, F_OK), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    rmdir(dir);
    /* an unwritable path */
    w = gguf_writer_new(&err);
    assert_true(gguf_writer_open(w, "/nonexistent-dir/x.gguf") < 0);
    assert_true(strlen(nj_last_error()) > 0);
    gguf_writer_free(w);
}

/* Every allocation failing in turn: clean errors, no leaks (ASan). */
static void test_alloc_failures(void **st) {
    (void)st;
    size_t base = nj_mem_in_use();
    int failures = 0;
    for (long k = 0; k < 200; k++) {
        nj_alloc_fail_after(k);
        int err = 0;
        gguf_writer *w = gguf_writer_new(&err);
        int rc = w ? 0 : err;
        const char *strs[] = {"x", "yy"};
        int64_t ne[2] = {32, 2};
        if (!rc) rc = gguf_writer_set_str(w, "a", "b");
        if (!rc) rc = gguf_writer_set_arr_cstr(w, "s", strs, 2);
        if (!rc) rc = gguf_writer_set_u32(w, "c", 3);
        if (!rc) rc = gguf_writer_add_tensor(w, "t", 2, ne, NJ_F32) < 0 ? -ENOMEM : 0;
        float data[64] = {0};
        const void *d[1] = {data};
        void *buf = NULL; size_t len;
        if (!rc) rc = gguf_writer_to_mem(w, d, &buf, &len);
        nj_alloc_fail_after(-1);
        if (rc) { assert_int_equal(rc, -ENOMEM); failures++; }
        else {
            gguf_file *f = gguf_open_mem(buf, len, &err);
            assert_non_null(f);
            gguf_close(f);
        }
        nj_free(buf);
        gguf_writer_free(w);
        assert_int_equal(nj_mem_in_use(), base);
        if (!rc) break;
    }
    assert_true(failures > 3);
}

/* Rewriting a real model (all keys copied, tensors in file order) must
 * give the same bytes: the layout rules match the file's writer. */
static void test_rewrite_real_model(void **st) {
    (void)st;
    const char *p = nj_test_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!p) skip();
    int err;
    gguf_file *f = gguf_open(p, &err);
    assert_non_null(f);
    gguf_writer *w = gguf_writer_new(&err);
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) assert_int_equal(gguf_writer_set_kv(w, gguf_kv_at(f, i)), 0);
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        assert_int_equal(gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type), (int)i);
    }
    char *mp = NULL; size_t ml = 0;
    FILE *fp = open_memstream(&mp, &ml);
    assert_int_equal(gguf_writer_open_fp(w, fp), 0);
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        assert_int_equal(gguf_writer_write(w, t->data, (size_t)t->nbytes), 0);
    }
    assert_int_equal(gguf_writer_finish(w), 0);
    fclose(fp);
    assert_int_equal(ml, gguf_file_size(f));
    assert_memory_equal(mp, gguf_base(f), ml);
    free(mp);
    gguf_writer_free(w);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_mem),
        cmocka_unit_test(test_stream_file),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_rewrite_real_model),
    };
    return cmocka_run_group_tests_name("gguf_write", tests, NULL, NULL);
}
