/* test_corrupt — malformed GGUF files are refused, never crash the reader.
 *
 * tools/corrupt-gguf writes a valid small file and >= 40 malformed variants
 * of it; each must be refused by gguf_open (and gguf_open_mem on an exact
 * size heap copy, so ASan sees any overread) with NJ_EFORMAT or
 * NJ_EUNSUPPORTED and a message, and `nightjar info FILE` must exit 1 with a
 * message (skipped while `info` is a placeholder).  Then every prefix and
 * every single-byte mutation of the valid file must open or fail cleanly. */
#include "testutil.h"
#include "gguf.h"
#include "util.h"

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[512];
static char **files;
static int n_files;

static const char *build_dir(void) { const char *o = getenv("O"); return o ? o : "build"; }

static int setup(void **st) {
    (void)st;
    const char *d = nj_test_tmpdir();
    if (!d) return -1;
    snprintf(dir, sizeof dir, "%s", d);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/tools/corrupt-gguf %s 2>/dev/null", build_dir(), dir);
    if (system(cmd) != 0) { fprintf(stderr, "test_corrupt: cannot run %s\n", cmd); return -1; }
    DIR *dp = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!strstr(e->d_name, ".gguf") || !strcmp(e->d_name, "valid.gguf")) continue;
        files = realloc(files, sizeof *files * (size_t)(n_files + 1));
        files[n_files] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        sprintf(files[n_files], "%s/%s", dir, e->d_name);
        n_files++;
    }
    closedir(dp);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    for (int i = 0; i < n_files; i++) free(files[i]);
    free(files);
    return 0;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len ? (size_t)len : 1);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void test_valid_opens(void **st) {
    (void)st;
    char path[600];
    snprintf(path, sizeof path, "%s/valid.gguf", dir);
    int err = 1;
    gguf_file *f = gguf_open(path, &err);
    if (!f) fail_msg("valid.gguf refused: %s", nj_last_error());
    assert_int_equal(gguf_n_tensors(f), 3);
    gguf_close(f);
}

static void test_each_malformed_file(void **st) {
    (void)st;
    assert_true(n_files >= 20);
    for (int i = 0; i < n_files; i++) {
        nj_clear_error();
        int err = 0;
        gguf_file *f = gguf_open(files[i], &err);
        if (f) { gguf_close(f); fail_msg("%s was accepted", files[i]); }
        if (err != NJ_EFORMAT && err != NJ_EUNSUPPORTED)
            fail_msg("%s: error %d (%s), expected a format error", files[i], err, nj_strerror(err));
        if (!nj_last_error()[0]) fail_msg("%s: no message", files[i]);
        size_t n;
        uint8_t *p = slurp(files[i], &n);
        nj_clear_error();
        f = gguf_open_mem(p, n, &err);
        if (f) { gguf_close(f); fail_msg("%s was accepted from memory", files[i]); }
        assert_true(err == NJ_EFORMAT || err == NJ_EUNSUPPORTED);
        assert_true(nj_last_error()[0] != 0);
        free(p);
    }
}

/* Run `nightjar info FILE`: exit status, and whether stderr+stdout said anything. */
static int run_info(const char *bin, const char *file, char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s info '%s' 2>&1", bin, file);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_cli_info(void **st) {
    (void)st;
    const char *bin = getenv("NJ_BIN");
    char def[512];
    if (!bin) { snprintf(def, sizeof def, "%s/nightjar", build_dir()); bin = def; }
    if (access(bin, X_OK)) skip();
    char out[8192];
    run_info(bin, files[0], out, sizeof out);
    if (strstr(out, "not implemented")) skip();
    for (int i = 0; i < n_files; i++) {
        int rc = run_info(bin, files[i], out, sizeof out);
        if (rc != 1) fail_msg("nightjar info %s exited %d (want 1):\n%s", files[i], rc, out);
        if (strlen(out) < 5) fail_msg("nightjar info %s: no message", files[i]);
    }
}

/* Every prefix, and every byte set to a few hostile values: open or fail
 * cleanly (ASan/UBSan make "cleanly" meaningful). */
static void test_mutations(void **st) {
    (void)st;
    char path[600];
    snprintf(path, sizeof path, "%s/valid.gguf", dir);
    size_t n;
    uint8_t *v = slurp(path, &n);
    int err;
    for (size_t len = 0; len < n; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, v, len);
        gguf_file *f = gguf_open_mem(p, len, &err);
        /* dropping trailing padding after the last tensor is fine; anything
         * shorter than the data must fail */
        if (f) gguf_close(f);
        else assert_true((err == NJ_EFORMAT || err == NJ_EUNSUPPORTED) && nj_last_error()[0]);
        free(p);
    }
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    int accepted = 0, refused = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof vals; k++) {
            if (v[i] == vals[k]) continue;
            uint8_t *p = malloc(n);
            memcpy(p, v, n);
            p[i] = vals[k];
            gguf_file *f = gguf_open_mem(p, n, &err);
            if (f) {
                /* accepted: every view must lie inside the buffer */
                for (uint64_t t = 0; t < gguf_n_tensors(f); t++) {
                    const gguf_tensor *tt = gguf_tensor_at(f, t);
                    assert_true((const uint8_t *)tt->data >= p);
                    assert_true((const uint8_t *)tt->data + tt->nbytes <= p + n);
                }
                gguf_close(f);
                accepted++;
            } else {
                assert_true(err == NJ_EFORMAT || err == NJ_EUNSUPPORTED);
                assert_true(nj_last_error()[0] != 0);
                refused++;
            }
            free(p);
        }
    assert_true(refused > 0 && accepted > 0);
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_opens),
        cmocka_unit_test(test_each_malformed_file),
        cmocka_unit_test(test_cli_info),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests_name("corrupt", tests, setup, teardown);
}
