/*
 * batch-bench — decode throughput of the service's continuous batching:
 * n sequences advanced one token each, as n lone steps (nj_session_eval,
 * one after the other) and as one batched pass (session_decode_batch),
 * on a model file at a thread count.
 *
 *   batch-bench -m MODEL.gguf [-t 2] [-n 1,2,4,8] [-s 16] [-p 64]
 *
 * Each of the n sessions first evaluates its own -p token prompt
 * (untimed); then -s steps are timed both ways on copies of the same
 * state, and the batched logits are checked to equal the lone ones bit for
 * bit (the products are batch-invariant).  Prints one line per n:
 *   n=4 lone 3.21 tok/s  batched 9.87 tok/s  x3.07  identical
 */
#include "model.h"
#include "nightjar.h"
#include "session.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 16

static int32_t argmax(const float *lg, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (lg[i] > lg[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    const char *path = NULL, *ns = "1,2,4,8";
    int threads = 2, steps = 16, plen = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) ns = argv[++i];
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) plen = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: batch-bench -m MODEL.gguf [-t 2] [-n 1,2,4,8] [-s 16] [-p 64]\n");
            return 2;
        }
    }
    if (!path || threads < 1 || steps < 1 || plen < 1) {
        fprintf(stderr, "batch-bench: -m MODEL is required\n");
        return 2;
    }
    int err = 0;
    nj_model_params mp = {.n_threads = threads};
    nj_model *m = nj_model_load(path, &mp, &err);
    if (!m) {
        fprintf(stderr, "batch-bench: %s: %s\n", nj_strerror(err), nj_last_error());
        return 1;
    }
    const int V = m->hp.n_vocab;
    float *scratch = malloc(sizeof(float) * (size_t)V * MAXN);
    float *want = malloc(sizeof(float) * (size_t)V * MAXN);
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)plen);
    if (!scratch || !want || !prompt) return 1;
    int rc = 1;
    for (const char *p = ns; *p;) {
        int n = atoi(p);
        while (*p && *p != ',') p++;
        if (*p) p++;
        if (n < 1 || n > MAXN) continue;
        nj_session_params sp = {.n_ctx = plen + steps + 8, .n_threads = threads};
        nj_session *lone[MAXN], *bat[MAXN];
        int32_t tl[MAXN], tb[MAXN];
        for (int i = 0; i < n; i++) {
            lone[i] = nj_session_new(m, &sp, &err);
            bat[i] = nj_session_new(m, &sp, &err);
            if (!lone[i] || !bat[i]) {
                fprintf(stderr, "batch-bench: session: %s\n", nj_last_error());
                return 1;
            }
            for (int k = 0; k < plen; k++) prompt[k] = (int32_t)((k * 131 + i * 977 + 11) % V);
            if (nj_session_eval(lone[i], prompt, plen) || nj_session_eval(bat[i], prompt, plen)) {
                fprintf(stderr, "batch-bench: prompt: %s\n", nj_last_error());
                return 1;
            }
            tl[i] = tb[i] = argmax(nj_session_logits(lone[i]), V);
        }
        double t_lone = 0, t_bat = 0;
        bool same = true;
        for (int st = 0; st < steps; st++) {
            double t0 = nj_now();
            for (int i = 0; i < n; i++) {
                if (nj_session_eval(lone[i], &tl[i], 1)) return 1;
                memcpy(want + (size_t)i * V, nj_session_logits(lone[i]), sizeof(float) * (size_t)V);
            }
            double t1 = nj_now();
            if (session_decode_batch(bat, tb, n, scratch)) {
                fprintf(stderr, "batch-bench: batch: %s\n", nj_last_error());
                return 1;
            }
            double t2 = nj_now();
            t_lone += t1 - t0;
            t_bat += t2 - t1;
            same = same && !memcmp(want, scratch, sizeof(float) * (size_t)V * (size_t)n);
            for (int i = 0; i < n; i++) {
                tl[i] = argmax(want + (size_t)i * V, V);
                tb[i] = argmax(scratch + (size_t)i * V, V);
            }
        }
        double a = n * steps / t_lone, b = n * steps / t_bat;
        printf("n=%d lone %.2f tok/s  batched %.2f tok/s  x%.2f  %s\n", n, a, b, b / a,
               same ? "identical" : "DIFFERENT");
        fflush(stdout);
        rc = same ? 0 : 1;
        for (int i = 0; i < n; i++) {
            nj_session_free(lone[i]);
            nj_session_free(bat[i]);
        }
        if (!same) break;
    }
    free(scratch);
    free(want);
    free(prompt);
    nj_model_free(m);
    return rc;
}
