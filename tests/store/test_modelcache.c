/* test_modelcache — cache dir, name resolution, describing valid and invalid
 * GGUF files, listing.  Uses a tiny GGUF written here, plus the real SmolLM2
 * file when it is cached. */
#include "testutil.h"
#include "modelcache.h"
#include "util.h"

#include <sys/stat.h>
#include <unistd.h>

static char dir[512];

static int fresh(void **st) {
    (void)st;
    const char *t = nj_test_tmpdir();
    if (!t) return -1;
    snprintf(dir, sizeof dir, "%s", t);
    return 0;
}

static int cleanup(void **st) {
    (void)st;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(FILE *f, const void *p, size_t n) { assert_int_equal(fwrite(p, 1, n, f), n); }
static void put_u32(FILE *f, uint32_t v) { put(f, &v, 4); }
static void put_u64(FILE *f, uint64_t v) { put(f, &v, 8); }
static void put_str(FILE *f, const char *s) { put_u64(f, strlen(s)); put(f, s, strlen(s)); }

/* A valid GGUF v3: architecture "tiny", file_type Q8_0 (7) optional, one F32
 * tensor of 4x8 and one Q8_0 tensor of 32x2 = 96 parameters. */
static void write_tiny(const char *path, int with_ftype) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    put(f, "GGUF", 4);
    put_u32(f, 3);
    put_u64(f, 2);                  /* tensors */
    put_u64(f, with_ftype ? 3 : 2); /* kv */
    put_str(f, "general.architecture"); put_u32(f, 8); put_str(f, "tiny");
    put_str(f, "general.name"); put_u32(f, 8); put_str(f, "Tiny\ttest");
    if (with_ftype) { put_str(f, "general.file_type"); put_u32(f, 4); put_u32(f, 7); }
    put_str(f, "a"); put_u32(f, 2); put_u64(f, 4); put_u64(f, 8); put_u32(f, 0); put_u64(f, 0);
    put_str(f, "b"); put_u32(f, 2); put_u64(f, 32); put_u64(f, 2); put_u32(f, 8); put_u64(f, 128);
    long pos = ftell(f);
    while (pos % 32) { fputc(0, f); pos++; }
    uint8_t zero[128 + 68] = {0};
    put(f, zero, sizeof zero);
    fclose(f);
}

static void path_in(char *out, size_t cap, const char *file) { snprintf(out, cap, "%s/%s", dir, file); }

static void test_dir_and_builtins(void **st) {
    (void)st;
    setenv("NIGHTJAR_CACHE_DIR", "/x/nj", 1);
    assert_string_equal(modelcache_dir(), "/x/nj/models");
    unsetenv("NIGHTJAR_CACHE_DIR");
    const modelcache_builtin *b = modelcache_builtin_find(MODELCACHE_DEFAULT);
    assert_non_null(b);
    assert_int_equal(strlen(b->sha256), 64);
    assert_null(modelcache_builtin_find("nope"));
    assert_null(modelcache_builtin_find(NULL));

    char sub[600];
    snprintf(sub, sizeof sub, "%s/a/b/c", dir);
    assert_int_equal(modelcache_mkdirs(sub), 0);
    assert_int_equal(modelcache_mkdirs(sub), 0); /* idempotent */
    struct stat s;
    assert_int_equal(stat(sub, &s), 0);
    assert_true(S_ISDIR(s.st_mode));
    char file[600];
    path_in(file, sizeof file, "f");
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(sub, sizeof sub, "%s/f/x", dir);
    assert_true(modelcache_mkdirs(sub) < 0); /* a file in the way */
}

static void test_find(void **st) {
    (void)st;
    char p[1024], want[1024];
    assert_int_equal(modelcache_find(MODELCACHE_DEFAULT, dir, p, sizeof p), -ENOENT);
    assert_non_null(strstr(nj_last_error(), "nightjar pull smollm2"));
    path_in(want, sizeof want, "SmolLM2-135M-Instruct.Q4_1.gguf");
    write_tiny(want, 1);
    assert_int_equal(modelcache_find("smollm2", dir, p, sizeof p), 0);
    assert_string_equal(p, want);
    path_in(want, sizeof want, "my.gguf");
    write_tiny(want, 1);
    assert_int_equal(modelcache_find("my", dir, p, sizeof p), 0);       /* without .gguf */
    assert_string_equal(p, want);
    assert_int_equal(modelcache_find("my.gguf", dir, p, sizeof p), 0);
    assert_string_equal(p, want);
    assert_int_equal(modelcache_find(want, NULL, p, sizeof p), 0);      /* a path */
    assert_string_equal(p, want);
    assert_int_equal(modelcache_find("/no/such.gguf", dir, p, sizeof p), -ENOENT);
    assert_int_equal(modelcache_find("other", dir, p, sizeof p), -ENOENT);
    assert_int_equal(modelcache_find("", dir, p, sizeof p), -EINVAL);
    assert_int_equal(modelcache_find("my", dir, p, 8), -ENAMETOOLONG);
}

static void test_describe_and_list(void **st) {
    (void)st;
    char p[1024];
    path_in(p, sizeof p, "b-tiny.gguf");
    write_tiny(p, 1);
    path_in(p, sizeof p, "c-noftype.gguf");
    write_tiny(p, 0);
    path_in(p, sizeof p, "a-bad.gguf");
    FILE *f = fopen(p, "wb");
    put(f, "GGUF\3\0\0\0garbage", 15);
    fclose(f);
    path_in(p, sizeof p, "ignored.txt");
    f = fopen(p, "wb");
    fclose(f);
    path_in(p, sizeof p, "b-tiny.gguf.sha256");
    f = fopen(p, "w");
    fprintf(f, "%s  b-tiny.gguf\n", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    fclose(f);

    modelcache_entry *v;
    size_t n;
    assert_int_equal(modelcache_list(dir, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].file, "a-bad.gguf");
    assert_int_not_equal(v[0].status, 0);
    assert_true(strlen(v[0].error) > 0);
    assert_int_equal(v[0].size, 15);

    assert_string_equal(v[1].file, "b-tiny.gguf");
    assert_int_equal(v[1].status, 0);
    assert_string_equal(v[1].arch, "tiny");
    assert_string_equal(v[1].name, "Tiny?test"); /* control characters neutralised */
    assert_int_equal(v[1].n_params, 96);
    assert_int_equal(v[1].n_tensors, 2);
    assert_string_equal(v[1].quant, "Q8_0");
    assert_string_equal(v[1].sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");

    assert_string_equal(v[2].file, "c-noftype.gguf");
    assert_string_equal(v[2].quant, "Q8_0"); /* most elements: 64 in Q8_0, 32 in F32 */
    assert_string_equal(v[2].sha256, "");
    nj_free(v);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", dir);
    assert_int_equal(modelcache_list(missing, &v, &n), 0);
    assert_int_equal(n, 0);
}

static void test_real_model(void **st) {
    (void)st;
    const char *m = nj_test_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!m) skip();
    modelcache_entry e;
    assert_int_equal(modelcache_describe(m, &e), 0);
    assert_int_equal(e.status, 0);
    assert_string_equal(e.arch, "llama");
    assert_string_equal(e.quant, "Q4_1");
    /* SmolLM2-135M: ~134.5M parameters (embeddings tied). */
    assert_true(e.n_params > 130000000 && e.n_params < 140000000);
    char s[32];
    modelcache_fmt_params(e.n_params, s, sizeof s);
    assert_string_equal(s, "135M");
}

static void test_formatting(void **st) {
    (void)st;
    char s[32];
    modelcache_fmt_params(7241732096ull, s, sizeof s);
    assert_string_equal(s, "7.24B");
    modelcache_fmt_params(70553706496ull, s, sizeof s);
    assert_string_equal(s, "70.6B");
    modelcache_fmt_params(1500, s, sizeof s);
    assert_string_equal(s, "2K");
    modelcache_fmt_params(12, s, sizeof s);
    assert_string_equal(s, "12");
    assert_string_equal(modelcache_ftype_name(15), "Q4_K_M");
    assert_string_equal(modelcache_ftype_name(3), "Q4_1");
    assert_null(modelcache_ftype_name(4));
    assert_null(modelcache_ftype_name(1000));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dir_and_builtins, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_find, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_describe_and_list, fresh, cleanup),
        cmocka_unit_test(test_real_model),
        cmocka_unit_test(test_formatting),
    };
    return cmocka_run_group_tests_name("modelcache", tests, NULL, NULL);
}
