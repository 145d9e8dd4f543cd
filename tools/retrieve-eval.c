/*
 * retrieve-eval — the example base measured on its own: k-NN classification,
 * query speed, and a look at single queries.
 *
 *   retrieve-eval [opts] eval FILE...    k-NN vote over the top k for every
 *                                        labelled line of each JSON-lines FILE
 *                                        ({"cmd", "label", ...}); prints
 *                                        accuracy and macro-F1 per k
 *   retrieve-eval [opts] bench FILE      queries/s on one thread, the commands
 *                                        of FILE as queries, over a base grown
 *                                        to --entries N by repeating the kb
 *   retrieve-eval [opts] query CMD       the top k with scores
 *   retrieve-eval tokens CMD             the tokens of CMD
 *
 * opts: --kb FILE (default kb/examples.jsonl), --k LIST (default
 * 1,3,5,7,10,15), --diversity F, --balanced, --k1 X, --b X, --entries N
 * (bench, default 1000), --seconds S (bench, default 2).
 *
 * The vote: each of the top k hits adds its score to its label (times
 * N / (3 * N_label) with --balanced); the label with the largest sum wins;
 * no hit at all predicts benign.  Exit 0, or 2 on
 * a usage or I/O error.
 */
#include "retrieve.h"
#include "util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXK 64

typedef struct { char **cmd; int *label; size_t n, cap; } lines;

static int read_lines(const char *path, lines *L) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "retrieve-eval: %s: cannot open\n", path); return -1; }
    char *buf = NULL;
    size_t cap = 0, no = 0;
    ssize_t got;
    while ((got = getline(&buf, &cap, f)) >= 0) {
        no++;
        json_error_t je;
        json_t *o = json_loadb(buf, (size_t)got, 0, &je);
        if (!o) continue;
        json_t *c = json_object_get(o, "cmd"), *l = json_object_get(o, "label");
        int lab = json_is_string(l) ? kb_label_parse(json_string_value(l)) : -1;
        if (json_is_string(c) && lab >= 0) {
            if (L->n == L->cap) {
                L->cap = L->cap ? L->cap * 2 : 256;
                L->cmd = realloc(L->cmd, L->cap * sizeof *L->cmd);
                L->label = realloc(L->label, L->cap * sizeof *L->label);
                if (!L->cmd || !L->label) { fprintf(stderr, "retrieve-eval: out of memory\n"); exit(2); }
            }
            L->cmd[L->n] = strdup(json_string_value(c));
            L->label[L->n++] = lab;
        } else {
            fprintf(stderr, "retrieve-eval: %s:%zu: skipped (no cmd or label)\n", path, no);
        }
        json_decref(o);
    }
    free(buf);
    fclose(f);
    return 0;
}

/* Per-label weight of a vote: 1, or with --balanced the inverse of the
 * label's share of the base (so the larger classes do not win by size). */
static double label_weight[KB_NLABELS] = {1, 1, 1};

static int vote(const nj_kb *kb, const kb_hit *h, int n) {
    double sum[KB_NLABELS] = {0};
    for (int i = 0; i < n; i++) {
        int l = kb_entry_at(kb, h[i].index)->label;
        sum[l] += h[i].score * label_weight[l];
    }
    int best = KB_BENIGN;
    for (int l = 0; l < KB_NLABELS; l++) if (sum[l] > sum[best]) best = l;
    return best;
}

static void eval_file(const nj_kb *kb, nj_kb_searcher *s, const char *path, const int *ks, int nk,
                      const kb_query_opts *qo) {
    lines L = {0};
    if (read_lines(path, &L) < 0) exit(2);
    static long conf[MAXK + 1][KB_NLABELS][KB_NLABELS];
    memset(conf, 0, sizeof conf);
    long nohit = 0;
    kb_hit h[MAXK];
    for (size_t i = 0; i < L.n; i++) {
        /* one query per k, so the diversity option acts on each top k */
        for (int j = 0; j < nk; j++) {
            int n = kb_query(s, L.cmd[i], strlen(L.cmd[i]), ks[j], qo, h);
            if (n < 0) { fprintf(stderr, "retrieve-eval: %s\n", nj_last_error()); exit(2); }
            if (n == 0 && j == 0) nohit++;
            conf[ks[j]][L.label[i]][vote(kb, h, n)]++;
        }
    }
    long cnt[KB_NLABELS] = {0};
    for (size_t i = 0; i < L.n; i++) cnt[L.label[i]]++;
    printf("\n%s: %zu lines (benign %ld, suspicious %ld, malicious %ld), %ld with no shared token\n\n",
           path, L.n, cnt[0], cnt[1], cnt[2], nohit);
    printf("| k | accuracy | macro-F1 | F1 benign | F1 suspicious | F1 malicious | malicious recall | benign FP rate |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int j = 0; j < nk; j++) {
        long (*c)[KB_NLABELS] = conf[ks[j]];
        long ok = 0, tot = 0;
        double f1[KB_NLABELS], macro = 0;
        for (int a = 0; a < KB_NLABELS; a++) {
            long tp = c[a][a], fp = 0, fn = 0;
            for (int b = 0; b < KB_NLABELS; b++) {
                tot += c[a][b];
                if (b != a) { fp += c[b][a]; fn += c[a][b]; }
            }
            ok += tp;
            double p = tp + fp ? (double)tp / (double)(tp + fp) : 0, r = tp + fn ? (double)tp / (double)(tp + fn) : 0;
            f1[a] = p + r > 0 ? 2 * p * r / (p + r) : 0;
            macro += f1[a] / KB_NLABELS;
        }
        long ben = c[0][0] + c[0][1] + c[0][2];
        double mrec = cnt[2] ? (double)c[2][2] / (double)cnt[2] : 0;
        double fpr = ben ? (double)(c[0][1] + c[0][2]) / (double)ben : 0;
        printf("| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", ks[j], tot ? (double)ok / (double)tot : 0,
               macro, f1[0], f1[1], f1[2], mrec, fpr);
    }
    for (size_t i = 0; i < L.n; i++) free(L.cmd[i]);
    free(L.cmd);
    free(L.label);
}

/* Base of `want` entries: the kb's lines repeated, each copy with a distinct
 * trailing token so no two entries are identical.  Longer postings than the
 * real base would have: a conservative speed measurement. */
static nj_kb *grown_base(const char *kbpath, size_t want, const kb_params *pp) {
    FILE *f = fopen(kbpath, "r");
    if (!f) { fprintf(stderr, "retrieve-eval: %s: cannot open\n", kbpath); exit(2); }
    char *line = NULL, *text = NULL;
    size_t cap = 0, tlen = 0, tcap = 0, n = 0;
    char **src = NULL;
    size_t ns = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        src = realloc(src, (ns + 1) * sizeof *src);
        src[ns++] = strdup(line);
    }
    fclose(f);
    free(line);
    for (size_t copy = 0; n < want && ns; copy++)
        for (size_t i = 0; i < ns && n < want; i++, n++) {
            json_t *o = json_loads(src[i], 0, NULL);
            if (!o) continue;
            if (copy) {
                char buf[8192];
                snprintf(buf, sizeof buf, "%s #v%zu", json_string_value(json_object_get(o, "cmd")), copy);
                json_object_set_new(o, "cmd", json_string(buf));
            }
            char *js = json_dumps(o, JSON_COMPACT);
            size_t l = strlen(js);
            if (tlen + l + 2 > tcap) { tcap = (tlen + l + 2) * 2; text = realloc(text, tcap); }
            memcpy(text + tlen, js, l);
            tlen += l;
            text[tlen++] = '\n';
            free(js);
            json_decref(o);
        }
    for (size_t i = 0; i < ns; i++) free(src[i]);
    free(src);
    int err = 0;
    nj_kb *kb = kb_load_mem(text, tlen, "grown base", pp, &err);
    free(text);
    if (!kb) { fprintf(stderr, "retrieve-eval: %s\n", nj_last_error()); exit(2); }
    return kb;
}

int main(int argc, char **argv) {
    const char *kbpath = "kb/examples.jsonl";
    int ks[16] = {1, 3, 5, 7, 10, 15}, nk = 6;
    kb_query_opts qo = {0};
    kb_params pp = {0, -1};
    size_t entries = 1000;
    double seconds = 2;
    int i = 1;
    bool balanced = false;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--balanced")) { balanced = true; continue; }
        if (!v) break;
        if (!strcmp(a, "--kb")) kbpath = v;
        else if (!strcmp(a, "--diversity")) qo.diversity = atof(v);
        else if (!strcmp(a, "--k1")) pp.k1 = atof(v);
        else if (!strcmp(a, "--b")) pp.b = atof(v);
        else if (!strcmp(a, "--entries")) entries = (size_t)atol(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--k")) {
            nk = 0;
            for (char *p = (char *)v; *p && nk < 16;) {
                int k = (int)strtol(p, &p, 10);
                if (k < 1 || k > MAXK) { fprintf(stderr, "retrieve-eval: k must be 1..%d\n", MAXK); return 2; }
                ks[nk++] = k;
                if (*p == ',') p++;
                else break;
            }
        } else break;
        i++;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: retrieve-eval [--kb F] [--k LIST] [--diversity F] [--k1 X] [--b X] "
                        "[--entries N] [--seconds S] eval FILE... | bench FILE | query CMD | tokens CMD\n");
        return 2;
    }
    const char *mode = argv[i++];
    if (!strcmp(mode, "tokens") && i < argc) {
        char out[8192];
        int n = kb_tokenize(argv[i], strlen(argv[i]), out, sizeof out);
        printf("%d: %s\n", n, out);
        return 0;
    }
    int err = 0;
    nj_kb *kb = !strcmp(mode, "bench") ? grown_base(kbpath, entries, &pp) : kb_load(kbpath, &pp, &err);
    if (!kb) { fprintf(stderr, "retrieve-eval: %s\n", nj_last_error()); return 2; }
    nj_kb_searcher *s = kb_searcher_new(kb, &err);
    if (!s) { fprintf(stderr, "retrieve-eval: %s\n", nj_last_error()); return 2; }
    if (balanced && kb_size(kb)) {
        size_t cnt[KB_NLABELS] = {0};
        for (size_t j = 0; j < kb_size(kb); j++) cnt[kb_entry_at(kb, j)->label]++;
        for (int l = 0; l < KB_NLABELS; l++)
            label_weight[l] = cnt[l] ? (double)kb_size(kb) / (KB_NLABELS * (double)cnt[l]) : 1;
    }
    if (!strcmp(mode, "eval")) {
        printf("base %s: %zu entries, %zu terms; diversity %.2f; vote %s\n", kbpath, kb_size(kb), kb_nterms(kb),
               qo.diversity, balanced ? "balanced by label share" : "score sum");
        for (; i < argc; i++) eval_file(kb, s, argv[i], ks, nk, &qo);
    } else if (!strcmp(mode, "query") && i < argc) {
        kb_hit h[MAXK];
        int n = kb_query(s, argv[i], strlen(argv[i]), ks[nk - 1] < MAXK ? ks[nk - 1] : MAXK, &qo, h);
        for (int j = 0; j < n; j++) {
            const kb_entry *e = kb_entry_at(kb, h[j].index);
            printf("%7.3f  %-10s %-10s %s\n", h[j].score, kb_label_name(e->label), e->technique ? e->technique : "-",
                   e->cmd);
        }
    } else if (!strcmp(mode, "bench") && i < argc) {
        lines L = {0};
        if (read_lines(argv[i], &L) < 0 || !L.n) return 2;
        size_t *len = malloc(L.n * sizeof *len);
        for (size_t j = 0; j < L.n; j++) len[j] = strlen(L.cmd[j]);
        kb_hit h[MAXK];
        int k = ks[nk > 2 ? 2 : nk - 1];
        long q = 0, sink = 0;
        double t0 = nj_now(), t;
        do {
            for (size_t j = 0; j < L.n; j++, q++) sink += kb_query(s, L.cmd[j], len[j], k, &qo, h);
            t = nj_now() - t0;
        } while (t < seconds);
        printf("bench: %zu entries, %zu terms, %zu distinct queries, k=%d, diversity %.2f: %ld queries in %.2f s = "
               "%.0f queries/s (%.2f us/query, %ld hits)\n",
               kb_size(kb), kb_nterms(kb), L.n, k, qo.diversity, q, t, (double)q / t, 1e6 * t / (double)q, sink);
        free(len);
        for (size_t j = 0; j < L.n; j++) free(L.cmd[j]);
        free(L.cmd);
        free(L.label);
    } else {
        fprintf(stderr, "retrieve-eval: unknown mode %s\n", mode);
        return 2;
    }
    kb_searcher_free(s);
    kb_free(kb);
    return 0;
}
