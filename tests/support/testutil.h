/*
 * testutil — shared helpers for the cmocka unit tests.
 *
 * Each tests/test_<module>.c is its own binary with a cmocka group.  Tests
 * that need a real model look in $NIGHTJAR_TEST_MODEL_DIR (default
 * ~/.cache/nightjar/models) and call skip() when it is absent, so `make test`
 * never needs the network; scripts/get-models fills the cache.
 */
#ifndef NJ_TESTUTIL_H
#define NJ_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Path of a cached test model (e.g. "SmolLM2-135M-Instruct.Q4_1.gguf") or
 * NULL if it is not there.  Returns a static buffer. */
static inline const char *nj_test_model(const char *file) {
    static char path[1024];
    const char *dir = getenv("NIGHTJAR_TEST_MODEL_DIR");
    char def[900];
    if (!dir) {
        const char *home = getenv("HOME");
        snprintf(def, sizeof def, "%s/.cache/nightjar/models", home ? home : ".");
        dir = def;
    }
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    return path;
}

/* A fresh temporary directory (mkdtemp under $TMPDIR). Static buffer. */
static inline const char *nj_test_tmpdir(void) {
    static char dir[512];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/nj-test-XXXXXX", t ? t : "/tmp");
    return mkdtemp(dir);
}

#endif
