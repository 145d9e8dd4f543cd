/*
 * kv-mem — the memory estimate of a model at a context size and KV type
 * against the peak resident set of a process that runs it with that
 * context full.
 *
 *   kv-mem MODEL.gguf CTX KV [-t THREADS]
 *
 * Loads the model, creates a session of CTX positions with KV type KV
 * (f16, q8_0, q4_0), evaluates a short prompt (every weight page is read
 * once, as in any request), then writes every row of the KV cache, as a
 * context filled to CTX would (without spending minutes evaluating CTX
 * tokens on a 7B model), and reads the peak RSS (VmHWM).  Prints one line:
 *   ctx CTX kv KV estimate_bytes E peak_rss_bytes P base_rss_bytes B
 * where B is the process's RSS before the model was loaded (code and
 * libraries: the service's worker adds it to the estimate too).
 * Exit 0, or 2 on an error.
 */
#include "model.h"
#include "nightjar.h"
#include "platform.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: kv-mem MODEL.gguf CTX f16|q8_0|q4_0 [-t THREADS]\n");
        return 2;
    }
    const int ctx = atoi(argv[2]), kv = nj_kv_type_from_name(argv[3]);
    const int threads = argc > 5 && !strcmp(argv[4], "-t") ? atoi(argv[5]) : 2;
    if (ctx < 16 || kv < 0) {
        fprintf(stderr, "kv-mem: bad context or KV type\n");
        return 2;
    }
    const uint64_t base = platform_rss_bytes();
    int err = 0;
    nj_model_params mp = {.n_threads = threads};
    nj_model *m = nj_model_load(argv[1], &mp, &err);
    if (!m) { fprintf(stderr, "kv-mem: %s\n", nj_last_error()); return 2; }
    const uint64_t est = nj_model_mem_estimate(m, ctx, kv);
    nj_session_params sp = {.n_ctx = ctx, .kv_type = kv, .n_threads = threads};
    nj_session *s = nj_session_new(m, &sp, &err);
    if (!s) { fprintf(stderr, "kv-mem: %s\n", nj_last_error()); return 2; }
    int32_t ids[8];
    for (int i = 0; i < 8; i++) ids[i] = 100 + 37 * i;
    if (nj_session_eval(s, ids, 8)) { fprintf(stderr, "kv-mem: %s\n", nj_last_error()); return 2; }
    session_kv v;
    session_kv_get(s, &v);
    const size_t rows = (size_t)v.n_layer * (size_t)v.n_ctx;
    memset(v.k, 0x11, rows * v.k_rb);
    memset(v.v, 0x11, rows * v.v_rb);
    const uint64_t peak = platform_peak_rss_bytes();
    printf("ctx %d kv %s estimate_bytes %llu peak_rss_bytes %llu base_rss_bytes %llu\n", ctx, argv[3],
           (unsigned long long)est, (unsigned long long)peak, (unsigned long long)base);
    nj_session_free(s);
    nj_model_free(m);
    return 0;
}
