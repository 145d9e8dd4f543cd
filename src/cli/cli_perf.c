/*
 * cli_perf — `nightjar perf`: prompt-processing and generation speed,
 * measured the way llama-bench measures it so the two can be compared line
 * for line by bench/compare.
 *
 *   ppN: from an empty KV cache, evaluate N random tokens as one prompt
 *        (chunked by the session's n_batch); tok/s = N / seconds.
 *   tgN: from an empty KV cache, evaluate N tokens one at a time (each
 *        step a full forward pass, as in generation); tok/s = N / seconds.
 *   -d D: before each run (untimed), D random tokens fill the KV cache, so
 *        the test runs at that depth (llama-bench's -d; "tg64@d1500").
 *
 * Each test runs one untimed warm-up, then -r repetitions; we report the mean
 * and the standard deviation of the per-repetition tok/s (as llama-bench
 * does).  Token ids are drawn from a fixed-seed generator over the vocabulary
 * so runs are repeatable.  With --json, one object per line:
 *   {"threads":..,"n_prompt":..,"n_gen":..,"n_depth":..,"tok_s":..,"stddev":..,
 *    "reps":..,"peak_rss":..,"load_s":..,"model":".."}
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nightjar.h"
#include "platform.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar perf -m MODEL.gguf [-t THREADS] [-p N,N,...] [-n N,...] [-r REPS]\n"
        "                     [-d DEPTH] [-b BATCH] [--kv f16|q8_0|q4_0] [--json]\n"
        "  -p   prompt sizes (default 32,128,512); 0 skips prompt tests\n"
        "  -d   tokens already in the KV cache when each test starts (default 0)\n"
        "  -n   generation lengths (default 64); 0 skips generation tests\n"
        "  -r   repetitions per test (default 5), after one warm-up run\n");
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 1000000) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng_next(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* One timed run; returns seconds or < 0 on error. */
static double run_once(nj_session *s, const nj_model_desc *d, int depth, int n_prompt, int n_gen,
                       int32_t *ids) {
    int rc = nj_session_truncate(s, 0);
    if (rc) return rc;
    if (depth) {   /* untimed: the cache the test starts from */
        for (int i = 0; i < depth; i++) ids[i] = (int32_t)(rng_next() % (uint32_t)d->n_vocab);
        if (d->bos >= 0) ids[0] = d->bos;
        rc = nj_session_eval(s, ids, depth);
        if (rc < 0) return rc;
    }
    int n = n_prompt ? n_prompt : n_gen;
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(rng_next() % (uint32_t)d->n_vocab);
    if (d->bos >= 0 && !depth) ids[0] = d->bos;
    double t0 = nj_now();
    if (n_prompt) {
        rc = nj_session_eval(s, ids, n_prompt);
        if (rc < 0) return rc;
    } else {
        for (int i = 0; i < n_gen; i++) {
            rc = nj_session_eval(s, &ids[i], 1);
            if (rc < 0) return rc;
        }
    }
    return nj_now() - t0;
}

int cmd_perf(int argc, char **argv) {
    const char *model = NULL, *kv = "f16";
    int threads = 2, reps = 5, batch = 512, json = 0, depth = 0;
    int pp[16] = {32, 128, 512}, n_pp = 3, tg[16] = {64}, n_tg = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!v) { fprintf(stderr, "nightjar perf: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "-t")) threads = atoi(v);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else if (!strcmp(a, "-b")) batch = atoi(v);
        else if (!strcmp(a, "-d")) depth = atoi(v);
        else if (!strcmp(a, "--kv")) kv = v;
        else if (!strcmp(a, "-p")) { if ((n_pp = parse_list(v, pp, 16)) < 0) { fprintf(stderr, "nightjar perf: bad -p '%s'\n", v); return 2; } }
        else if (!strcmp(a, "-n")) { if ((n_tg = parse_list(v, tg, 16)) < 0) { fprintf(stderr, "nightjar perf: bad -n '%s'\n", v); return 2; } }
        else { fprintf(stderr, "nightjar perf: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (!model || threads < 1 || reps < 1 || batch < 1 || depth < 0 || depth > 1000000) {
        usage(stderr);
        return 2;
    }
    int kv_type = nj_kv_type_from_name(kv);
    if (kv_type < 0) { fprintf(stderr, "nightjar perf: unknown KV type '%s' (supported: f16, q8_0, q4_0)\n", kv); return 2; }

    int max_tok = 1;
    for (int i = 0; i < n_pp; i++) max_tok = NJ_MAX(max_tok, pp[i]);
    for (int i = 0; i < n_tg; i++) max_tok = NJ_MAX(max_tok, tg[i]);
    max_tok = NJ_MAX(max_tok, depth);

    int err = 0;
    double t0 = nj_now();
    nj_model_params mp = {.n_threads = threads};
    nj_model *m = nj_model_load(model, &mp, &err);
    if (!m) { fprintf(stderr, "nightjar perf: %s: %s\n", model, *nj_last_error() ? nj_last_error() : nj_strerror(err)); return 1; }
    double load_s = nj_now() - t0;
    nj_model_desc d;
    nj_model_describe(m, &d);
    nj_session_params sp = {.n_ctx = max_tok + depth + 16, .kv_type = kv_type, .n_batch = batch, .n_threads = threads};
    nj_session *s = nj_session_new(m, &sp, &err);
    int32_t *ids = nj_malloc(sizeof(int32_t) * (size_t)max_tok);
    if (!s || !ids) {
        fprintf(stderr, "nightjar perf: session: %s\n", *nj_last_error() ? nj_last_error() : nj_strerror(err));
        nj_free(ids); nj_session_free(s); nj_model_free(m);
        return 1;
    }
    if (!json) {
        printf("| model | threads | test | t/s |\n| --- | ---: | ---: | ---: |\n");
    }
    int rc = 0;
    for (int phase = 0; phase < 2 && !rc; phase++) {
        int n_tests = phase ? n_tg : n_pp;
        for (int k = 0; k < n_tests && !rc; k++) {
            int np = phase ? 0 : pp[k], ng = phase ? tg[k] : 0;
            if (!np && !ng) continue;
            double w = run_once(s, &d, depth, np, ng, ids);   /* warm-up */
            if (w < 0) { rc = (int)w; break; }
            double sum = 0, sq = 0;
            for (int r = 0; r < reps; r++) {
                double t = run_once(s, &d, depth, np, ng, ids);
                if (t < 0) { rc = (int)t; break; }
                double ts = (np + ng) / t;
                sum += ts; sq += ts * ts;
            }
            if (rc) break;
            double mean = sum / reps;
            double sd = reps > 1 ? sqrt(fmax(0.0, (sq - reps * mean * mean) / (reps - 1))) : 0.0;
            if (json)
                printf("{\"threads\":%d,\"n_prompt\":%d,\"n_gen\":%d,\"n_depth\":%d,\"tok_s\":%.3f,"
                       "\"stddev\":%.3f,\"reps\":%d,\"peak_rss\":%llu,\"load_s\":%.3f,\"model\":\"%s\"}\n",
                       threads, np, ng, depth, mean, sd, reps,
                       (unsigned long long)platform_peak_rss_bytes(), load_s, d.name);
            else
            {
                char dep[24] = "";
                if (depth) snprintf(dep, sizeof dep, "@d%d", depth);
                printf("| %s | %d | %s%d%s | %.2f ± %.2f |\n", d.name, threads, np ? "pp" : "tg", np ? np : ng,
                       dep, mean, sd);
            }
            fflush(stdout);
        }
    }
    if (rc) fprintf(stderr, "nightjar perf: %s\n", *nj_last_error() ? nj_last_error() : nj_strerror(rc));
    nj_free(ids);
    nj_session_free(s);
    nj_model_free(m);
    return rc ? 1 : 0;
}
