/* test_config — the four configuration layers, their precedence, the value
 * parsers and the error messages for bad input. */
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "nightjar.h"
#include "util.h"

/* Write `text` into <tmpdir>/name; return the path (static buffer). */
static const char *write_file(const char *dir, const char *name, const char *text) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static void test_defaults(void **state) {
    (void)state;
    nj_config c;
    char *argv[] = {"serve", "-m", "x.gguf", NULL};
    char *envp[] = {NULL};
    assert_int_equal(config_load(&c, 3, argv, envp), 0);
    assert_int_equal(c.threads, 2);
    assert_int_equal(c.nice, 10);
    assert_int_equal(c.ctx_size, 4096);
    assert_int_equal(c.idle_unload, 300);
    assert_int_equal(c.shutdown_timeout, 30);
    assert_int_equal(c.max_body, 1 << 20);
    assert_true(c.mem_budget == 6ull << 30);
    assert_int_equal(c.port, 0);
    assert_null(c.token);
    assert_null(c.config_path);          /* no HOME/XDG: no default file */
    assert_string_equal(c.model, "x.gguf");
    assert_int_equal(c.source[NJ_CFG_MODEL], NJ_SRC_FLAG);
    assert_int_equal(c.source[NJ_CFG_THREADS], NJ_SRC_DEFAULT);
    config_free(&c);
}

/* Each of threads/nice/ctx_size set in file, env and flag in every
 * combination: the highest layer present must win. */
static void test_precedence(void **state) {
    (void)state;
    const char *dir = nj_test_tmpdir();
    assert_non_null(dir);
    const char *path = write_file(dir, "config",
        "# comment\n\n  threads = 3\nnice=5\nctx-size = \"1024\"\nmodel = file.gguf\n");
    char cfgarg[700];
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", path);

    for (int mask = 0; mask < 8; mask++) {   /* bit0 file, bit1 env, bit2 flag */
        char *argv[8] = {"serve"};
        int argc = 1;
        if (mask & 1) argv[argc++] = cfgarg;
        if (mask & 4) { argv[argc++] = "--threads"; argv[argc++] = "7"; }
        argv[argc++] = "-m";
        argv[argc++] = "flag.gguf";
        char *envp[3] = {NULL};
        if (mask & 2) { envp[0] = "THREADS=5"; envp[1] = "NIGHTJAR_MODEL=env.gguf"; }
        nj_config c;
        assert_int_equal(config_load(&c, argc, argv, envp), 0);
        int want = (mask & 4) ? 7 : (mask & 2) ? 5 : (mask & 1) ? 3 : 2;
        int src = (mask & 4) ? NJ_SRC_FLAG : (mask & 2) ? NJ_SRC_ENV : (mask & 1) ? NJ_SRC_FILE : NJ_SRC_DEFAULT;
        assert_int_equal(c.threads, want);
        assert_int_equal(c.source[NJ_CFG_THREADS], src);
        /* -m flag beats env and file */
        assert_string_equal(c.model, "flag.gguf");
        if (mask & 1) {
            assert_int_equal(c.nice, 5);
            assert_int_equal(c.ctx_size, 1024);
            assert_non_null(c.config_path);
        } else {
            assert_int_equal(c.nice, 10);
            assert_int_equal(c.ctx_size, 4096);
        }
        config_free(&c);
    }
    unlink(path);
    rmdir(dir);
}

/* Env names from the spec, and env beating the file for the model. */
static void test_env_names(void **state) {
    (void)state;
    char *argv[] = {"serve"};
    char *envp[] = {"THREADS=4", "NICE_LEVEL=15", "CTX_SIZE=2048", "NIGHTJAR_MODEL=m.gguf",
                    "NIGHTJAR_PORT=8181", "NIGHTJAR_TOKEN=s3cret", "NIGHTJAR_IDLE_UNLOAD=5m",
                    "NIGHTJAR_MEM_BUDGET=512M", "NIGHTJAR_MAX_BODY=64K", "NIGHTJAR_LOG=debug",
                    "NIGHTJAR_KV_TYPE=f16", "NIGHTJAR_QOS=background", NULL};
    nj_config c;
    assert_int_equal(config_load(&c, 1, argv, envp), 0);
    assert_int_equal(c.threads, 4);
    assert_int_equal(c.nice, 15);
    assert_int_equal(c.ctx_size, 2048);
    assert_int_equal(c.port, 8181);
    assert_string_equal(c.token, "s3cret");
    assert_int_equal(c.idle_unload, 300);
    assert_true(c.mem_budget == 512ull << 20);
    assert_int_equal(c.max_body, 64 << 10);
    assert_int_equal(c.log_level, NJ_LOG_DEBUG);
    assert_int_equal(c.kv_type, NJ_KV_F16);
    assert_int_equal(c.qos, 1);
    char buf[64];
    assert_string_equal(config_value_str(&c, NJ_CFG_TOKEN, buf, sizeof buf), "(set)");
    config_free(&c);
}

/* The default file location: $XDG_CONFIG_HOME/nightjar/config, else
 * $HOME/.config/nightjar/config; absent default file is not an error. */
static void test_default_file(void **state) {
    (void)state;
    const char *dir = nj_test_tmpdir();
    char sub[700], xdg[700], home[700];
    snprintf(sub, sizeof sub, "%s/nightjar", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    const char *path = write_file(sub, "config", "threads = 6\nmodel=a.gguf\n");
    char *argv[] = {"serve"};
    snprintf(xdg, sizeof xdg, "XDG_CONFIG_HOME=%s", dir);
    char *envp[] = {xdg, NULL};
    nj_config c;
    assert_int_equal(config_load(&c, 1, argv, envp), 0);
    assert_int_equal(c.threads, 6);
    assert_string_equal(c.config_path, path);
    config_free(&c);

    snprintf(home, sizeof home, "HOME=%s/nohome", dir);
    char *envp2[] = {home, NULL};
    char *argv2[] = {"serve", "-m", "b.gguf"};
    assert_int_equal(config_load(&c, 3, argv2, envp2), 0);
    assert_null(c.config_path);
    assert_int_equal(c.threads, 2);
    config_free(&c);

    /* an explicitly named file that is missing is an error */
    char *argv3[] = {"serve", "-m", "b.gguf", "--config", "/nonexistent/nightjar.conf"};
    assert_int_equal(config_load(&c, 5, argv3, envp2), -ENOENT);
    assert_true(contains(nj_last_error(), "/nonexistent/nightjar.conf"));
    config_free(&c);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

/* Bad values: each must fail with a message naming the setting and value. */
static void test_bad_values(void **state) {
    (void)state;
    static const struct { const char *key, *val, *expect; } cases[] = {
        {"threads", "abc", "threads: 'abc' is not an integer"},
        {"threads", "0", "threads: 0 is out of range (1..512)"},
        {"threads", "2x", "not an integer"},
        {"threads", "", "not an integer"},
        {"nice", "20", "out of range (-20..19)"},
        {"nice", "-21", "out of range"},
        {"ctx_size", "99999999999999999999", "not an integer"},
        {"port", "70000", "out of range (0..65535)"},
        {"mem_budget", "6Q", "not a size"},
        {"mem_budget", "-1G", "not a size"},
        {"mem_budget", "1K", "out of range"},
        {"max_body", "99999999999T", "not a size"},
        {"idle_unload", "5 days", "not a duration"},
        {"idle_unload", "-5", "not a duration"},
        {"log_level", "loud", "not one of: error, warn, info, debug"},
        {"kv_type", "q5_0", "not one of: f16, q8_0, q4_0"},
        {"bogus", "1", "unknown setting 'bogus'"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(cases); i++) {
        nj_config c;
        config_defaults(&c);
        int rc = config_set(&c, cases[i].key, cases[i].val, NJ_SRC_FLAG);
        if (rc != -EINVAL || !contains(nj_last_error(), cases[i].expect))
            fail_msg("%s=%s: rc %d, message '%s', expected '%s'", cases[i].key, cases[i].val, rc,
                     nj_last_error(), cases[i].expect);
        assert_int_equal(c.threads, 2);   /* failed set leaves defaults */
        config_free(&c);
    }
}

/* Every KV type the engine has is a kv_type value, stored as its enum. */
static void test_kv_types(void **state) {
    (void)state;
    for (int t = 0; t < NJ_KV_TYPE_COUNT; t++) {
        nj_config c;
        config_defaults(&c);
        assert_int_equal(config_set(&c, "kv_type", nj_kv_type_name(t), NJ_SRC_FLAG), 0);
        assert_int_equal(c.kv_type, t);
        config_free(&c);
    }
}

static void test_parsers(void **state) {
    (void)state;
    uint64_t u;
    assert_int_equal(config_parse_size("6G", &u), 0);     assert_true(u == 6ull << 30);
    assert_int_equal(config_parse_size("6 GiB", &u), 0);  assert_true(u == 6ull << 30);
    assert_int_equal(config_parse_size("512mb", &u), 0);  assert_true(u == 512ull << 20);
    assert_int_equal(config_parse_size("1048576", &u), 0); assert_true(u == 1048576);
    assert_int_equal(config_parse_size("10B", &u), 0);    assert_true(u == 10);
    assert_int_equal(config_parse_size("1T", &u), 0);     assert_true(u == 1ull << 40);
    assert_int_equal(config_parse_size("G", &u), -EINVAL);
    assert_int_equal(config_parse_size("1GG", &u), -EINVAL);
    assert_int_equal(config_parse_size("18446744073709551615K", &u), -ERANGE);
    long long v;
    assert_int_equal(config_parse_seconds("300", &v), 0);  assert_int_equal(v, 300);
    assert_int_equal(config_parse_seconds("5m", &v), 0);   assert_int_equal(v, 300);
    assert_int_equal(config_parse_seconds("2h", &v), 0);   assert_int_equal(v, 7200);
    assert_int_equal(config_parse_seconds("30 s", &v), 0); assert_int_equal(v, 30);
    assert_int_equal(config_parse_seconds("1d", &v), -EINVAL);
    assert_int_equal(config_parse_int(" 42 ", 0, 100, &v), 0); assert_int_equal(v, 42);
    assert_int_equal(config_parse_int("101", 0, 100, &v), -ERANGE);
}

/* File syntax errors name file:line. */
static void test_file_errors(void **state) {
    (void)state;
    const char *dir = nj_test_tmpdir();
    static const struct { const char *text, *expect; } cases[] = {
        {"threads = 2\nthis line has no equals\n", ":2: expected 'key = value'"},
        {"\n\n# x\nthreds = 2\n", ":4: unknown setting 'threds'"},
        {"ctx_size = big\n", ":1: ctx_size: 'big' is not an integer"},
        {"qos = fast\n", ":1: qos: 'fast' is not one of: none, utility, background"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(cases); i++) {
        const char *path = write_file(dir, "bad", cases[i].text);
        char arg[700];
        snprintf(arg, sizeof arg, "--config=%s", path);
        char *argv[] = {"serve", "-m", "m.gguf", arg};
        nj_config c;
        int rc = config_load(&c, 4, argv, NULL);
        if (rc != -EINVAL || !contains(nj_last_error(), cases[i].expect))
            fail_msg("case %zu: rc %d message '%s'", i, rc, nj_last_error());
        assert_true(contains(nj_last_error(), path));
        config_free(&c);
        unlink(path);
    }
    rmdir(dir);
}

static void test_flags(void **state) {
    (void)state;
    nj_config c;
    char *argv[] = {"serve", "--model=m.gguf", "-t", "3", "-c", "512", "--max-body", "2M",
                    "--idle-unload=10", "--socket", "/tmp/x.sock", "--port", "9000"};
    assert_int_equal(config_load(&c, (int)NJ_ARRAY_LEN(argv), argv, NULL), 0);
    assert_int_equal(c.threads, 3);
    assert_int_equal(c.ctx_size, 512);
    assert_int_equal(c.max_body, 2 << 20);
    assert_int_equal(c.idle_unload, 10);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.socket_path, "/tmp/x.sock");
    config_free(&c);

    char *help[] = {"serve", "--help"};
    assert_int_equal(config_load(&c, 2, help, NULL), 1);
    config_free(&c);
    char *unknown[] = {"serve", "-m", "m", "--frobnicate", "1"};
    assert_int_equal(config_load(&c, 5, unknown, NULL), -EINVAL);
    assert_true(contains(nj_last_error(), "unknown option '--frobnicate'"));
    config_free(&c);
    char *noval[] = {"serve", "-m", "m", "--port"};
    assert_int_equal(config_load(&c, 4, noval, NULL), -EINVAL);
    assert_true(contains(nj_last_error(), "'--port' needs a value"));
    config_free(&c);
    char *flagerr[] = {"serve", "-m", "m", "--threads", "many"};
    assert_int_equal(config_load(&c, 5, flagerr, NULL), -EINVAL);
    assert_true(contains(nj_last_error(), "option --threads: threads: 'many' is not an integer"));
    config_free(&c);
    char *envp[] = {"CTX_SIZE=huge", NULL};
    char *ok[] = {"serve", "-m", "m"};
    assert_int_equal(config_load(&c, 3, ok, envp), -EINVAL);
    assert_true(contains(nj_last_error(), "environment CTX_SIZE: ctx_size: 'huge'"));
    config_free(&c);
}

/* Cross-setting rules: model required, non-loopback needs a token. */
static void test_validate(void **state) {
    (void)state;
    nj_config c;
    char *nomodel[] = {"serve"};
    assert_int_equal(config_load(&c, 1, nomodel, NULL), -EINVAL);
    assert_true(contains(nj_last_error(), "no model"));
    config_free(&c);

    char *open[] = {"serve", "-m", "m", "--host", "0.0.0.0", "--port", "8080"};
    assert_int_equal(config_load(&c, 7, open, NULL), -EINVAL);
    assert_true(contains(nj_last_error(), "non-loopback address 0.0.0.0 without a token"));
    config_free(&c);

    char *tok[] = {"serve", "-m", "m", "--host", "0.0.0.0", "--port", "8080", "--token", "t"};
    assert_int_equal(config_load(&c, 9, tok, NULL), 0);
    config_free(&c);

    char *lo[] = {"serve", "-m", "m", "--host", "127.0.0.2", "--port", "8080"};
    assert_int_equal(config_load(&c, 7, lo, NULL), 0);
    config_free(&c);

    char *nolisten[] = {"serve", "-m", "m", "--socket", "none"};
    assert_int_equal(config_load(&c, 5, nolisten, NULL), -EINVAL);
    assert_true(contains(nj_last_error(), "no listener"));
    config_free(&c);

    assert_true(config_host_is_loopback("127.0.0.1"));
    assert_true(config_host_is_loopback("::1"));
    assert_true(config_host_is_loopback("localhost"));
    assert_false(config_host_is_loopback("192.168.1.1"));
    assert_false(config_host_is_loopback("::"));
    assert_false(config_host_is_loopback("example.com"));
}

/* Reload support: differs/copy for live keys. */
static void test_copy_differs(void **state) {
    (void)state;
    nj_config a, b;
    config_defaults(&a);
    config_defaults(&b);
    assert_false(config_differs(&a, &b, NJ_CFG_TOKEN));
    assert_int_equal(config_set(&b, "token", "abc", NJ_SRC_FILE), 0);
    assert_int_equal(config_set(&b, "idle_unload", "1m", NJ_SRC_FILE), 0);
    assert_true(config_differs(&a, &b, NJ_CFG_TOKEN));
    assert_true(config_differs(&a, &b, NJ_CFG_IDLE_UNLOAD));
    assert_false(config_differs(&a, &b, NJ_CFG_THREADS));
    assert_int_equal(config_copy_key(&a, &b, NJ_CFG_TOKEN), 0);
    assert_int_equal(config_copy_key(&a, &b, NJ_CFG_IDLE_UNLOAD), 0);
    assert_string_equal(a.token, "abc");
    assert_int_equal(a.idle_unload, 60);
    assert_int_equal(a.source[NJ_CFG_TOKEN], NJ_SRC_FILE);
    assert_true(config_key_live(NJ_CFG_TOKEN));
    assert_false(config_key_live(NJ_CFG_THREADS));
    /* "" unsets a string */
    assert_int_equal(config_set(&a, "token", "", NJ_SRC_FILE), 0);
    assert_null(a.token);
    config_free(&a);
    config_free(&b);
}

/* Out-of-memory while copying strings reports -ENOMEM, leaks nothing. */
static void test_oom(void **state) {
    (void)state;
    size_t before = nj_mem_in_use();
    nj_config c;
    config_defaults(&c);
    nj_alloc_fail_after(0);
    assert_int_equal(config_set(&c, "model", "m.gguf", NJ_SRC_FLAG), -ENOMEM);
    nj_alloc_fail_after(-1);
    assert_null(c.model);
    config_free(&c);
    assert_int_equal(nj_mem_in_use(), before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_default_file),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_kv_types),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_copy_differs),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
