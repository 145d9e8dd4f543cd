/*
 * linkcheck — a program that uses libnightjar.a the way an outside program
 * would: through include/nightjar.h only, linked with the engine's own
 * libraries (-lm -lpthread, PCRE2, utf8proc) and nothing of the product (no
 * HTTP server, JSON, SQLite or curl).  If a product module slips into the
 * engine library, or the engine starts to call one, this fails to link.
 *
 * With the SmolLM2 test model present ($NIGHTJAR_TEST_MODEL_DIR or
 * ~/.cache/nightjar/models) it also loads the model, tokenizes a prompt,
 * runs it and takes 8 greedy tokens, checking each step's contract.  Prints
 * the cmocka-style summary line scripts/run-tests counts.
 */
#include "nightjar.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed, passed;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "linkcheck: %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
            failed++;                                                     \
            return;                                                       \
        }                                                                 \
    } while (0)

static void check_errors(void) {
    CHECK(strcmp(nj_strerror(NJ_EFORMAT), "") != 0, "nj_strerror(NJ_EFORMAT) is empty");
    CHECK(strcmp(nj_strerror(NJ_EFORMAT), nj_strerror(NJ_ECTX)) != 0, "two codes share a name");
    int err = 0;
    nj_model *m = nj_model_load("/nonexistent/model.gguf", NULL, &err);
    CHECK(m == NULL && err < 0, "loading a missing file did not fail (err %d)", err);
    CHECK(nj_last_error()[0] != '\0', "no error sentence after a failed load");
    passed++;
}

static void check_generate(const char *path) {
    int err = 0;
    nj_model *m = nj_model_load(path, NULL, &err);
    CHECK(m, "load %s: %s (%s)", path, nj_strerror(err), nj_last_error());
    nj_session_params sp = {.n_ctx = 256};
    nj_session *s = nj_session_new(m, &sp, &err);
    if (!s) nj_model_free(m);
    CHECK(s, "session: %s", nj_strerror(err));
    int32_t ids[64];
    const char *text = "The capital of France is";
    int n = nj_tokenize(m, text, strlen(text), true, false, ids, 64);
    int ok = n > 0 && n < 64 && nj_session_eval(s, ids, n) == 0;
    nj_model_desc d;
    nj_model_describe(m, &d);
    for (int i = 0; ok && i < 8; i++) {
        const float *lg = nj_session_logits(s);
        int32_t best = 0;
        for (int v = 1; v < d.n_vocab; v++)
            if (lg[v] > lg[best]) best = v;
        ok = isfinite(lg[best]) && nj_session_eval(s, &best, 1) == 0;
    }
    int pos = nj_session_pos(s);
    nj_session_free(s);
    nj_model_free(m);
    CHECK(ok, "tokenize/eval/greedy failed: %s", nj_last_error());
    CHECK(pos == n + 8, "session position %d, expected %d", pos, n + 8);
    passed++;
}

int main(void) {
    check_errors();
    const char *dir = getenv("NIGHTJAR_TEST_MODEL_DIR");
    char path[4096];
    if (dir)
        snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
    else
        snprintf(path, sizeof path, "%s/.cache/nightjar/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 getenv("HOME") ? getenv("HOME") : ".");
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        check_generate(path);
    } else {
        printf("linkcheck: %s absent, generation check skipped\n", path);
    }
    if (failed) printf("[  FAILED  ] %d test(s).\n", failed);
    printf("[  PASSED  ] %d test(s).\n", passed);
    return failed ? 1 : 0;
}
