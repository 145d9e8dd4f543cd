/*
 * grammar-bench — cost of grammar masks against the forward pass.
 *
 *   grammar-bench -m MODEL.gguf [-s SCHEMA.json] [-d DOC] [-t THREADS] [-r REPS]
 *
 * Reports: the token trie (nodes, build time, once per model), schema
 * compile time, the mask cost per token while the canonical document DOC
 * (default: a verdict document) is fed token by token: "first" is the
 * first mask of each state (trie walk plus building the DFA transitions it
 * needs), "walk" the best of 5 further walks with the mask cache flushed
 * (DFA warm; the steady state of a reused grammar), min / median / max
 * over the document's tokens; and the time of a one-token forward pass
 * (median of REPS after a short prompt).  On a loaded machine compare the
 * ratio, not the absolute figures.  Output is a Markdown table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"
#include "nightjar.h"
#include "util.h"

static const char *VERDICT =
    "{\"type\": \"object\", \"properties\": {"
    "\"verdict\": {\"type\": \"string\", \"enum\": [\"benign\", \"suspicious\", \"malicious\"]},"
    "\"techniques\": {\"type\": \"array\", \"items\": {\"type\": \"string\", "
    "\"pattern\": \"^T[0-9]{4}(\\\\.[0-9]{3})?$\"}, \"maxItems\": 4},"
    "\"summary\": {\"type\": \"string\", \"maxLength\": 200}},"
    "\"required\": [\"verdict\", \"techniques\", \"summary\"], \"additionalProperties\": false}";
static const char *DOC =
    "{\"verdict\": \"malicious\", \"techniques\": [\"T1059.001\", \"T1105\"], \"summary\": \"PowerShell "
    "with an encoded command downloads a second stage from a paste site and starts it hidden; the parent "
    "is a macro-enabled Word document opened from the Downloads folder.\"}";

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

int main(int argc, char **argv) {
    const char *mp = NULL, *sp = NULL, *doc = DOC;
    int threads = 2, reps = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m")) mp = argv[i + 1];
        else if (!strcmp(argv[i], "-s")) sp = argv[i + 1];
        else if (!strcmp(argv[i], "-d")) doc = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
    }
    if (!mp) { fprintf(stderr, "usage: grammar-bench -m MODEL [-s SCHEMA] [-d DOC] [-t N] [-r REPS]\n"); return 2; }
    char *schema = sp ? slurp(sp) : NULL;
    if (sp && !schema) { fprintf(stderr, "cannot read %s\n", sp); return 1; }
    int err = 0;
    nj_model_params mpar = {.n_threads = threads};
    nj_model *m = nj_model_load(mp, &mpar, &err);
    if (!m) { fprintf(stderr, "load: %s\n", nj_last_error()); return 1; }
    nj_model_desc d;
    nj_model_describe(m, &d);
    double t0 = nj_now();
    const gram_trie *tr = gram_trie_get(m, &err);
    double t_trie = nj_now() - t0;
    if (!tr) { fprintf(stderr, "trie: %s\n", nj_last_error()); return 1; }
    t0 = nj_now();
    nj_grammar *g = nj_grammar_from_schema(m, schema ? schema : VERDICT, &err);
    double t_comp = nj_now() - t0;
    if (!g) { fprintf(stderr, "schema: %s\n", nj_last_error()); return 1; }
    int32_t ids[1024];
    int n = nj_tokenize(m, doc, strlen(doc), false, false, ids, 1024);
    if (n <= 0 || n > 1024) { fprintf(stderr, "tokenize failed\n"); return 1; }
    float *lg = malloc(sizeof *lg * (size_t)d.n_vocab);
    double *cold = malloc(sizeof *cold * (size_t)n), *warm = malloc(sizeof *warm * (size_t)n);
    nj_grammar_reset(g);
    for (int i = 0; i < n; i++) {
        for (int rep = 0; rep < 6; rep++) {
            if (rep) gram_mask_flush(grammar_gram(g));
            memset(lg, 0, sizeof *lg * (size_t)d.n_vocab);
            uint64_t a = nj_now_ns();
            int k = nj_grammar_mask(g, lg);
            double us = (double)(nj_now_ns() - a) / 1e3;
            if (k <= 0) { fprintf(stderr, "no token allowed at %d\n", i); return 1; }
            if (rep == 0) cold[i] = us;
            else if (rep == 1 || us < warm[i]) warm[i] = us;
        }
        if (nj_grammar_accept(g, ids[i])) {
            fprintf(stderr, "document rejected at token %d: %s\n", i, nj_last_error());
            return 1;
        }
    }
    qsort(cold, (size_t)n, sizeof *cold, cmp_d);
    qsort(warm, (size_t)n, sizeof *warm, cmp_d);
    /* forward pass: one token after a short prompt */
    nj_session_params ps = {.n_ctx = 512, .n_threads = threads};
    nj_session *s = nj_session_new(m, &ps, &err);
    if (!s) { fprintf(stderr, "session: %s\n", nj_last_error()); return 1; }
    nj_session_eval(s, ids, n < 32 ? n : 32);
    double *fw = malloc(sizeof *fw * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        int32_t id = ids[r % n];
        uint64_t a = nj_now_ns();
        nj_session_eval(s, &id, 1);
        fw[r] = (double)(nj_now_ns() - a) / 1e3;
    }
    qsort(fw, (size_t)reps, sizeof *fw, cmp_d);
    printf("| model | vocab | trie nodes | trie build ms | compile ms | doc tokens | first mask us min/median/max | walk us min/median/max | forward pass us (median) | forward / median walk |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    printf("| %s | %d | %d | %.1f | %.2f | %d | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f | %.0f | %.0fx |\n", d.name,
           d.n_vocab, gram_trie_n_nodes(tr), t_trie * 1e3, t_comp * 1e3, n, cold[0], cold[n / 2], cold[n - 1],
           warm[0], warm[n / 2], warm[n - 1], fw[reps / 2], fw[reps / 2] / warm[n / 2]);
    nj_session_free(s);
    nj_grammar_free(g);
    nj_model_free(m);
    free(lg); free(cold); free(warm); free(fw); free(schema);
    return 0;
}
