/*
 * kv-quality — how much a quantized KV cache changes a model's next-token
 * distributions, measured the way llama-perplexity --kl-divergence does.
 *
 *   kv-quality MODEL TEXT [-c CTX] [--chunks N] [-t THREADS] [--kv q8_0,q4_0]
 *   kv-quality MODEL --greedy PROMPT [-n N] [--kv TYPE] [-t THREADS]
 *
 * The text is tokenized whole (with BOS as the model asks) and cut into
 * chunks of CTX tokens; each chunk is evaluated from an empty cache with
 * the first token replaced by BOS (when the model adds one), once with an
 * f16 cache and once per quantized type, all logits kept.  As llama.cpp,
 * only the second half of a chunk is scored: positions CTX/2 .. CTX-2,
 * i.e. CTX - 1 - CTX/2 per chunk.  Per type it prints the positions
 * scored, the mean KL divergence KL(p_f16 || p_type) with its standard
 * error, the 99th percentile and maximum, and the top-1 agreement (the
 * share of positions whose argmax is the f16 argmax).  With --greedy it
 * prints the greedy continuation of PROMPT (for a text comparison with
 * llama-completion -ctk/-ctv at temperature 0).
 *
 * Exit 0, or 2 on a usage, load or evaluation error.
 */
#include "nightjar.h"
#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr, "usage: kv-quality MODEL TEXT [-c CTX] [--chunks N] [-t THREADS] [--kv q8_0,q4_0]\n"
                    "       kv-quality MODEL --greedy PROMPT [-n N] [--kv TYPE] [-t THREADS]\n");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; *len = (size_t)n; }
    return b;
}

/* log-softmax of n logits into out (double for the sums). */
static void log_softmax(const float *x, int n, double *out) {
    float mx = x[0];
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    const double ls = log(s);
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - mx - ls;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int greedy(nj_model *m, const char *prompt, int n_gen, int kv, int threads) {
    int err = 0;
    nj_model_desc d;
    nj_model_describe(m, &d);
    int32_t ids[4096];
    int n = nj_tokenize(m, prompt, strlen(prompt), true, false, ids, 4096);
    if (n <= 0 || n > 4096 - n_gen) { fprintf(stderr, "kv-quality: cannot tokenize the prompt\n"); return 2; }
    nj_session_params sp = {.n_ctx = 4096, .kv_type = kv, .n_threads = threads};
    nj_session *s = nj_session_new(m, &sp, &err);
    if (!s) { fprintf(stderr, "kv-quality: %s\n", nj_last_error()); return 2; }
    if (nj_session_eval(s, ids, n)) { fprintf(stderr, "kv-quality: %s\n", nj_last_error()); return 2; }
    fputs(prompt, stdout);
    for (int i = 0; i < n_gen; i++) {
        int32_t id = argmax(nj_session_logits(s), d.n_vocab);
        char piece[256];
        int pl = nj_token_to_piece(m, id, false, piece, sizeof piece);
        if (pl > 0) fwrite(piece, 1, (size_t)(pl < 256 ? pl : 256), stdout);
        if (i + 1 < n_gen && nj_session_eval(s, &id, 1)) { fprintf(stderr, "kv-quality: %s\n", nj_last_error()); return 2; }
    }
    fputc('\n', stdout);
    nj_session_free(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { usage(); return 2; }
    const char *model = argv[1], *text = NULL, *prompt = NULL, *kvlist = "q8_0,q4_0";
    int ctx = 512, chunks = 0, threads = 2, n_gen = 16;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-c") && v) ctx = atoi(argv[++i]);
        else if (!strcmp(a, "--chunks") && v) chunks = atoi(argv[++i]);
        else if (!strcmp(a, "-t") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "-n") && v) n_gen = atoi(argv[++i]);
        else if (!strcmp(a, "--kv") && v) kvlist = argv[++i];
        else if (!strcmp(a, "--greedy") && v) prompt = argv[++i];
        else if (a[0] != '-' && !text) text = a;
        else { usage(); return 2; }
    }
    int types[NJ_KV_TYPE_COUNT], nt = 0;
    {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", kvlist);
        for (char *tok = strtok(buf, ","); tok && nt < NJ_KV_TYPE_COUNT; tok = strtok(NULL, ",")) {
            int t = nj_kv_type_from_name(tok);
            if (t < 0) { fprintf(stderr, "kv-quality: unknown KV type '%s'\n", tok); return 2; }
            types[nt++] = t;
        }
    }
    int err = 0;
    nj_model_params mp = {.n_threads = threads};
    nj_model *m = nj_model_load(model, &mp, &err);
    if (!m) { fprintf(stderr, "kv-quality: %s: %s\n", model, nj_last_error()); return 2; }
    if (prompt) {
        int rc = greedy(m, prompt, n_gen, nt ? types[0] : NJ_KV_F16, threads);
        nj_model_free(m);
        return rc;
    }
    if (!text || ctx < 8) { usage(); return 2; }
    size_t len = 0;
    char *txt = read_file(text, &len);
    if (!txt) { fprintf(stderr, "kv-quality: cannot read %s\n", text); return 2; }
    nj_model_desc d;
    nj_model_describe(m, &d);
    const int V = d.n_vocab;
    int cap = (int)len + 16;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    int n = ids ? nj_tokenize(m, txt, len, true, false, ids, cap) : -1;
    if (n < 0 || n > cap) { fprintf(stderr, "kv-quality: tokenization failed\n"); return 2; }
    const int avail = n / ctx;
    if (chunks <= 0 || chunks > avail) chunks = avail;
    if (chunks < 1) { fprintf(stderr, "kv-quality: %d tokens are fewer than one chunk of %d\n", n, ctx); return 2; }
    const int first = ctx / 2, per = ctx - 1 - first;
    float *base = malloc(sizeof(float) * (size_t)V * ctx), *lg = malloc(sizeof(float) * (size_t)V * ctx);
    double *lp = malloc(sizeof(double) * (size_t)V), *lq = malloc(sizeof(double) * (size_t)V);
    double *kls = malloc(sizeof(double) * (size_t)per * chunks * nt);
    long *same = calloc((size_t)nt, sizeof(long));
    if (!base || !lg || !lp || !lq || !kls || !same) { fprintf(stderr, "kv-quality: out of memory\n"); return 2; }
    nj_session_params sp = {.n_ctx = ctx, .kv_type = NJ_KV_F16, .n_threads = threads};
    nj_session *sb = nj_session_new(m, &sp, &err);
    nj_session *sq[NJ_KV_TYPE_COUNT] = {0};
    for (int k = 0; k < nt; k++) {
        sp.kv_type = types[k];
        sq[k] = nj_session_new(m, &sp, &err);
        if (!sq[k]) { fprintf(stderr, "kv-quality: %s\n", nj_last_error()); return 2; }
    }
    if (!sb) { fprintf(stderr, "kv-quality: %s\n", nj_last_error()); return 2; }
    fprintf(stderr, "kv-quality: %s, %d tokens, %d chunks of %d, %d positions scored per type\n", d.name, n, chunks,
            ctx, per * chunks);
    for (int c = 0; c < chunks; c++) {
        int32_t *cid = ids + (size_t)c * ctx;
        const int32_t save = cid[0];
        if (d.bos >= 0 && ids[0] == d.bos) cid[0] = d.bos;   /* as llama-perplexity */
        nj_session_truncate(sb, 0);
        if (session_eval_ex(sb, cid, ctx, base)) { fprintf(stderr, "kv-quality: %s\n", nj_last_error()); return 2; }
        for (int k = 0; k < nt; k++) {
            nj_session_truncate(sq[k], 0);
            if (session_eval_ex(sq[k], cid, ctx, lg)) { fprintf(stderr, "kv-quality: %s\n", nj_last_error()); return 2; }
            for (int i = first; i < ctx - 1; i++) {
                const float *pb = base + (size_t)i * V, *pq = lg + (size_t)i * V;
                log_softmax(pb, V, lp);
                log_softmax(pq, V, lq);
                double kl = 0;
                for (int j = 0; j < V; j++) kl += exp(lp[j]) * (lp[j] - lq[j]);
                kls[(size_t)k * per * chunks + (size_t)c * per + (i - first)] = kl;
                same[k] += argmax(pb, V) == argmax(pq, V);
            }
        }
        cid[0] = save;
        fprintf(stderr, "  chunk %d/%d done\n", c + 1, chunks);
    }
    const long np = (long)per * chunks;
    printf("%-6s %9s %12s %10s %12s %12s %9s\n", "kv", "positions", "mean KL", "+-", "KL p99", "KL max", "top-1");
    for (int k = 0; k < nt; k++) {
        double *a = kls + (size_t)k * np, s = 0, s2 = 0;
        for (long i = 0; i < np; i++) { s += a[i]; s2 += a[i] * a[i]; }
        const double mean = s / np, var = s2 / np - mean * mean;
        const double se = np > 1 && var > 0 ? sqrt(var / (np - 1)) : 0;
        qsort(a, (size_t)np, sizeof *a, cmp_dbl);
        printf("%-6s %9ld %12.6f %10.6f %12.6f %12.6f %8.3f%%\n", nj_kv_type_name(types[k]), np, mean, se,
               a[(long)(0.99 * (np - 1))], a[np - 1], 100.0 * same[k] / np);
    }
    for (int k = 0; k < nt; k++) nj_session_free(sq[k]);
    nj_session_free(sb);
    nj_model_free(m);
    free(base); free(lg); free(lp); free(lq); free(kls); free(same); free(ids); free(txt);
    return 0;
}
