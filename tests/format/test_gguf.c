/* test_gguf — the GGUF reader on hand-built buffers: a valid file, and
 * malformed ones that must fail with NJ_EFORMAT and a message. */
#include "testutil.h"
#include "gguf.h"
#include "util.h"

typedef struct { uint8_t *p; size_t n, cap; } buf;
static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) { b->cap = (b->n + n) * 2 + 64; b->p = realloc(b->p, b->cap); }
    memcpy(b->p + b->n, d, n); b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }

/* A tiny valid file: 3 kvs (u32, string, string array) and one F32 tensor 4x2. */
static buf make_valid(void) {
    buf b = {0};
    put(&b, "GGUF", 4); put_u32(&b, 3); put_u64(&b, 1); put_u64(&b, 3);
    put_str(&b, "llama.block_count"); put_u32(&b, GGUF_T_UINT32); put_u32(&b, 7);
    put_str(&b, "general.architecture"); put_u32(&b, GGUF_T_STRING); put_str(&b, "llama");
    put_str(&b, "tokenizer.ggml.tokens"); put_u32(&b, GGUF_T_ARRAY); put_u32(&b, GGUF_T_STRING);
    put_u64(&b, 2); put_str(&b, "a"); put_str(&b, "bc");
    put_str(&b, "w"); put_u32(&b, 2); put_u64(&b, 4); put_u64(&b, 2); put_u32(&b, 0); put_u64(&b, 0);
    while (b.n % 32) { uint8_t z = 0; put(&b, &z, 1); }
    for (int i = 0; i < 8; i++) { float f = (float)i; put(&b, &f, 4); }
    return b;
}

static void test_valid(void **st) {
    (void)st;
    buf b = make_valid();
    int err = 1;
    gguf_file *f = gguf_open_mem(b.p, b.n, &err);
    assert_non_null(f);
    assert_int_equal(err, 0);
    uint32_t n; assert_int_equal(gguf_get_u32(f, "llama.block_count", &n), 0); assert_int_equal(n, 7);
    gguf_str s; assert_int_equal(gguf_get_str(f, "general.architecture", &s), 0);
    assert_true(gguf_str_eq(s, "llama"));
    uint32_t et; uint64_t cnt; const gguf_str *strs;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &cnt, NULL, &strs), 0);
    assert_int_equal(cnt, 2); assert_true(gguf_str_eq(strs[1], "bc"));
    assert_int_equal(gguf_get_u32(f, "missing", &n), -ENOENT);
    assert_int_equal(gguf_get_str(f, "llama.block_count", &s), NJ_EFORMAT);
    const gguf_tensor *t = gguf_find_tensor(f, "w");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 4); assert_int_equal(t->ne[1], 2); assert_int_equal(t->nbytes, 32);
    assert_true(((const float *)t->data)[7] == 7.0f);
    gguf_close(f);
    free(b.p);
}

/* Every proper prefix of a valid file must be rejected cleanly. */
static void test_truncated_everywhere(void **st) {
    (void)st;
    buf b = make_valid();
    for (size_t len = 0; len < b.n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, b.p, len);
        int err = 0;
        gguf_file *f = gguf_open_mem(copy, len, &err);
        assert_null(f);
        assert_true(err == NJ_EFORMAT);
        assert_true(strlen(nj_last_error()) > 0);
        free(copy);
    }
    free(b.p);
}

static void test_hostile_counts(void **st) {
    (void)st;
    buf b = {0};
    put(&b, "GGUF", 4); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, UINT64_MAX / 2);
    int err = 0;
    assert_null(gguf_open_mem(b.p, b.n, &err));
    assert_int_equal(err, NJ_EFORMAT);
    free(b.p);
    b = (buf){0};
    put(&b, "GGUF", 4); put_u32(&b, 99); put_u64(&b, 0); put_u64(&b, 0);
    assert_null(gguf_open_mem(b.p, b.n, &err));
    assert_int_equal(err, NJ_EUNSUPPORTED);
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_hostile_counts),
    };
    return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
