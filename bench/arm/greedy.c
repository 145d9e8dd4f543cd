/*
 * greedy — nightjar's side of the ARM measurements under qemu-aarch64
 * (bench/arm-insn, scripts/arm-greedy); measurement only, never part of
 * the product.  Uses the engine library through include/nightjar.h, like
 * bench/ref/refharness does llama.cpp's library, so the two runs do the
 * same work:
 *
 *   greedy MODEL "ID ID ..." N [THREADS]
 *
 * evaluates the prompt ids in one batch (the prefill), then generates N
 * tokens greedily (argmax, ties to the lowest id), one evaluation per
 * token (the decode), and prints "ids <id> <id> ..." on one line.
 * THREADS defaults to 1 (instruction counts are per thread of work).
 *
 *   greedy MODEL --tokenize "TEXT"
 *
 * prints the ids of TEXT (BOS as the model asks), the prompts both sides
 * are then given.
 */
#include "nightjar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: greedy MODEL \"ID ID ...\" N [THREADS] | greedy MODEL --tokenize TEXT\n");
        return 2;
    }
    if (!strcmp(argv[2], "--tokenize")) {
        int err = 0;
        nj_model_params vp = {.vocab_only = true};
        nj_model *m = nj_model_load(argv[1], &vp, &err);
        if (!m) { fprintf(stderr, "greedy: %s (%s)\n", nj_strerror(err), nj_last_error()); return 1; }
        int32_t ids[512];
        const int n = nj_tokenize(m, argv[3], strlen(argv[3]), true, false, ids, 512);
        for (int i = 0; i < n && i < 512; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        nj_model_free(m);
        return n < 0;
    }
    const int n_gen = atoi(argv[3]), threads = argc > 4 ? atoi(argv[4]) : 1;
    int32_t ids[512];
    int n = 0;
    for (char *p = argv[2], *end; *p && n < 512; p = end) {
        const long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)v;
    }
    if (n == 0 || n_gen < 0 || n + n_gen > 512) {
        fprintf(stderr, "greedy: need 1..512 prompt ids and prompt + N <= 512\n");
        return 2;
    }
    int err = 0;
    nj_model_params mp = {.n_threads = threads};
    nj_model *m = nj_model_load(argv[1], &mp, &err);
    if (!m) { fprintf(stderr, "greedy: %s (%s)\n", nj_strerror(err), nj_last_error()); return 1; }
    nj_session_params sp = {.n_ctx = 512, .n_batch = 512, .n_threads = threads};
    nj_session *s = nj_session_new(m, &sp, &err);
    if (!s) { fprintf(stderr, "greedy: session: %s\n", nj_strerror(err)); nj_model_free(m); return 1; }
    nj_model_desc d;
    nj_model_describe(m, &d);
    int rc = nj_session_eval(s, ids, n);
    printf("ids");
    for (int i = 0; rc == 0 && i < n_gen; i++) {
        const float *lg = nj_session_logits(s);
        int32_t best = 0;
        for (int v = 1; v < d.n_vocab; v++)
            if (lg[v] > lg[best]) best = v;
        printf(" %d", best);
        if (i + 1 < n_gen) rc = nj_session_eval(s, &best, 1);
    }
    printf("\n");
    if (rc) fprintf(stderr, "greedy: eval: %s (%s)\n", nj_strerror(rc), nj_last_error());
    nj_session_free(s);
    nj_model_free(m);
    return rc ? 1 : 0;
}
