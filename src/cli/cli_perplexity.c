/*
 * cli_perplexity — `nightjar perplexity`: perplexity of a model over a text
 * file, and with --kl-base the KL divergence and top-1 agreement against a
 * higher-precision model (engine/perplexity.h has the method, which is
 * llama-perplexity's).  On a terminal a progress line shows the windows
 * done and the running perplexity.  --json prints one object:
 *   {"model":..,"base":..,"text":..,"n_ctx":..,"chunks":..,"tokens":..,
 *    "scored":..,"ppl":..,"ppl_unc":..[,"ppl_base":..,"kl_mean":..,
 *    "kl_unc":..,"kl_median":..,"kl_p99":..,"kl_max":..,"top1":..],"seconds":..}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nightjar.h"
#include "perplexity.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar perplexity -m MODEL.gguf -f TEXT [-c CTX] [--kl-base BASE.gguf]\n"
        "                           [--chunks N] [-t THREADS] [-b ROWS] [--json]\n"
        "  -c          window of tokens (default 512); each window's second half is scored\n"
        "  --kl-base   also KL divergence and top-1 agreement against BASE (e.g. the F16 source)\n"
        "  --chunks    score only the first N windows (default: all)\n"
        "  -t          threads (default 2);  -b  logits rows per pass (default 64)\n");
}

static void on_progress(void *ctx, int done, int total, double ppl) {
    (void)ctx;
    fprintf(stderr, "\r\033[K[%d/%d] perplexity so far %.4f", done, total, ppl);
    fflush(stderr);
}

/* A whole file into memory (NUL-terminated); NULL with a message. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return NULL; }
    size_t cap = 1 << 16, n = 0;
    char *buf = nj_malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (cap - n - 1 == 0) {
            char *nb = nj_realloc(buf, cap * 2);
            if (!nb) { nj_free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "nightjar perplexity: cannot read %s\n", path);
        nj_free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *base_path = NULL, *text_path = NULL;
    ppl_params p = {.n_ctx = 512, .n_threads = 2};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = true; continue; }
        if (!v) { fprintf(stderr, "nightjar perplexity: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "-f")) text_path = v;
        else if (!strcmp(a, "--kl-base")) base_path = v;
        else if (!strcmp(a, "-c")) p.n_ctx = atoi(v);
        else if (!strcmp(a, "--chunks")) p.n_chunks = atoi(v);
        else if (!strcmp(a, "-t")) p.n_threads = atoi(v);
        else if (!strcmp(a, "-b")) p.n_batch = atoi(v);
        else { fprintf(stderr, "nightjar perplexity: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (!model || !text_path || p.n_ctx < 8 || p.n_ctx % 2 || p.n_threads < 1 || p.n_threads > 512 ||
        p.n_batch < 0 || p.n_chunks < 0) {
        usage(stderr);
        return 2;
    }
    size_t len = 0;
    char *text = slurp(text_path, &len);
    if (!text) return 1;
    int err = 0, ret = 1;
    nj_model_params mp = {.n_threads = p.n_threads};
    nj_model *m = NULL, *b = NULL;
    double t0 = nj_now();
    if (!(m = nj_model_load(model, &mp, &err))) {
        fprintf(stderr, "nightjar perplexity: %s: %s (%s)\n", model, nj_strerror(err), nj_last_error());
        goto done;
    }
    if (base_path && !(b = nj_model_load(base_path, &mp, &err))) {
        fprintf(stderr, "nightjar perplexity: %s: %s (%s)\n", base_path, nj_strerror(err), nj_last_error());
        goto done;
    }
    bool tty = isatty(2) != 0;
    if (tty) p.progress = on_progress;
    ppl_result r;
    int rc = ppl_run(m, b, text, len, &p, &r);
    if (tty) fprintf(stderr, "\r\033[K");
    if (rc) {
        fprintf(stderr, "nightjar perplexity: %s (%s)\n", nj_strerror(rc), nj_last_error());
        goto done;
    }
    double secs = nj_now() - t0;
    if (json) {
        printf("{\"model\":");
        json_str(model);
        if (base_path) { printf(",\"base\":"); json_str(base_path); }
        printf(",\"text\":");
        json_str(text_path);
        printf(",\"n_ctx\":%d,\"chunks\":%d,\"tokens\":%d,\"scored\":%ld,\"ppl\":%.6f,\"ppl_unc\":%.6f",
               r.n_ctx, r.n_chunks, r.n_tokens, r.count, r.ppl, r.ppl_unc);
        if (r.has_base)
            printf(",\"ppl_base\":%.6f,\"kl_mean\":%.8f,\"kl_unc\":%.8f,\"kl_median\":%.8f,\"kl_p99\":%.8f,"
                   "\"kl_max\":%.8f,\"top1\":%.6f",
                   r.ppl_base, r.kl_mean, r.kl_unc, r.kl_median, r.kl_p99, r.kl_max, r.top1);
        printf(",\"seconds\":%.2f}\n", secs);
    } else {
        printf("text         %s: %d tokens, %d windows of %d, %ld tokens scored\n", text_path, r.n_tokens,
               r.n_chunks, r.n_ctx, r.count);
        printf("perplexity   %.4f +/- %.4f\n", r.ppl, r.ppl_unc);
        if (r.has_base) {
            printf("base         %.4f +/- %.4f  (%s)\n", r.ppl_base, r.ppl_base_unc, base_path);
            printf("KL mean      %.6f +/- %.6f\n", r.kl_mean, r.kl_unc);
            printf("KL median    %.6f   99%%: %.6f   max: %.6f\n", r.kl_median, r.kl_p99, r.kl_max);
            printf("top-1 agree  %.3f %%\n", 100.0 * r.top1);
        }
        printf("time         %.1f s\n", secs);
    }
    ret = 0;
done:
    nj_model_free(b);
    nj_model_free(m);
    nj_free(text);
    return ret;
}
