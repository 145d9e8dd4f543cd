/* test_sha256 — FIPS 180-4 / NIST example vectors, every padding boundary
 * against coreutils sha256sum, streaming in random pieces, hex parsing. */
#include "testutil.h"
#include "sha256.h"
#include "util.h"

#include <unistd.h>

static void check(const void *msg, size_t n, const char *want) {
    uint8_t d[32];
    char hex[65];
    sha256(msg, n, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, want);
}

static void test_vectors(void **st) {
    (void)st;
    check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check(four, strlen(four), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* One million 'a', fed in uneven pieces. */
    sha256_ctx c;
    sha256_init(&c);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t left = 1000000, k = 1;
    while (left) {
        size_t n = NJ_MIN(left, (k * 37) % 1000 + 1);
        sha256_update(&c, a, n);
        left -= n; k++;
    }
    uint8_t d[32];
    char hex[65];
    sha256_final(&c, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the 55/56/64-byte padding edges, checked against an
 * independent implementation (coreutils) and against piecewise hashing. */
static void test_padding_edges_vs_sha256sum(void **st) {
    (void)st;
    if (access("/usr/bin/sha256sum", X_OK) != 0) skip();
    const char *dir = nj_test_tmpdir();
    assert_non_null(dir);
    char path[600], cmd[700];
    snprintf(path, sizeof path, "%s/m", dir);
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 131 + 7);
    static const size_t lens[] = {1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 300};
    for (size_t li = 0; li < NJ_ARRAY_LEN(lens); li++) {
        size_t n = lens[li];
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(msg, 1, n, f), n);
        fclose(f);
        snprintf(cmd, sizeof cmd, "/usr/bin/sha256sum '%s'", path);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char want[65] = {0};
        assert_int_equal(fread(want, 1, 64, p), 64);
        pclose(p);
        check(msg, n, want);
        /* Byte at a time must agree too. */
        sha256_ctx c;
        sha256_init(&c);
        for (size_t i = 0; i < n; i++) sha256_update(&c, msg + i, 1);
        uint8_t d[32];
        char hex[65];
        sha256_final(&c, d);
        sha256_hex(d, hex);
        assert_string_equal(hex, want);
        /* And the file helper. */
        assert_int_equal(sha256_file(path, d), 0);
        sha256_hex(d, hex);
        assert_string_equal(hex, want);
    }
    unlink(path);
    rmdir(dir);
    uint8_t d[32];
    assert_int_equal(sha256_file("/nonexistent/nj", d), -ENOENT);
}

static void test_parse_hex(void **st) {
    (void)st;
    uint8_t d[32], e[32];
    char hex[65];
    sha256("abc", 3, d);
    sha256_hex(d, hex);
    assert_int_equal(sha256_parse_hex(hex, e), 0);
    assert_memory_equal(d, e, 32);
    for (int i = 0; i < 64; i++) if (hex[i] >= 'a') hex[i] -= 32; /* upper case ok */
    assert_int_equal(sha256_parse_hex(hex, e), 0);
    assert_memory_equal(d, e, 32);
    hex[10] = 'g';
    assert_int_equal(sha256_parse_hex(hex, e), -EINVAL);
    assert_int_equal(sha256_parse_hex("abcd", e), -EINVAL);
    assert_int_equal(sha256_parse_hex(NULL, e), -EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_padding_edges_vs_sha256sum),
        cmocka_unit_test(test_parse_hex),
    };
    return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
