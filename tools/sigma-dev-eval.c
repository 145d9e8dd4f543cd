/*
 * sigma-dev-eval — how precise are Sigma rules on labelled command lines?
 *
 *   sigma-dev-eval [-v] [-m] [-s] FILE.jsonl RULES_PATH...
 *
 * FILE.jsonl holds one object per line with "cmd" (a command line) and
 * "label" (benign | suspicious | malicious).  Each cmd becomes a canonical
 * exec event of contract v1 (source.format "cmdline": no OS, no service;
 * process.cmdline = cmd, argv = cmd split on whitespace, process.path =
 * argv[0]) and is matched through sigma_view_from_event, exactly as
 * `nightjar analyze` would see a bare command line.
 *
 * Prints, per rule that hit anything, its hits by label; then the precision
 * and recall of the claim "some rule hit => not benign", and the same for
 * rules of level high/critical only.  -v also prints each benign line that a
 * rule hit (to the terminal only: the labelled file is development data and
 * its lines are never to be copied anywhere); -m prints each malicious line
 * no rule hit (same caveat).  -s prints a summary only.
 */
#include "event.h"
#include "sigma.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BENIGN, SUSPICIOUS, MALICIOUS, NLABEL };

static int label_of(const char *s) {
    if (!strcmp(s, "benign")) return BENIGN;
    if (!strcmp(s, "suspicious")) return SUSPICIOUS;
    if (!strcmp(s, "malicious")) return MALICIOUS;
    return -1;
}

static json_t *event_of(const char *cmd, long n) {
    char id[48];
    snprintf(id, sizeof id, "cmdline:%ld", n);
    json_t *ev = json_pack("{s:i, s:s, s:s, s:s, s:{s:s}, s:{s:s}}", "v", 1, "id", id, "kind", "exec",
                           "time", "2026-01-01T00:00:00Z", "source", "format", "cmdline", "process", "cmdline", cmd);
    /* argv as the analyst splits a bare command line, path its first word */
    if (ev) event_finish(ev);
    json_t *proc = json_object_get(ev, "process"), *argv = json_object_get(proc, "argv");
    if (json_array_size(argv)) json_object_set(proc, "path", json_array_get(argv, 0));
    return ev;
}

int main(int argc, char **argv) {
    int verbose = 0, summary = 0, misses = 0, a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "-v")) verbose = 1;
        else if (!strcmp(argv[a], "-s")) summary = 1;
        else if (!strcmp(argv[a], "-m")) misses = 1;
        else break;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: sigma-dev-eval [-v] [-m] [-s] FILE.jsonl RULES_PATH...\n");
        return 2;
    }
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    if (!rs) return 1;
    for (int i = a + 1; i < argc; i++) {
        int rc = sigma_load_path(rs, argv[i]);
        if (rc < 0) fprintf(stderr, "sigma-dev-eval: %s: %s\n", argv[i], nj_last_error());
    }
    for (int i = 0; i < sigma_skip_count(rs); i++)
        fprintf(stderr, "skipped %s: %s\n", sigma_skip_at(rs, i)->file, sigma_skip_at(rs, i)->reason);
    int nr = sigma_rule_count(rs);
    long (*per)[NLABEL] = calloc((size_t)nr + 1, sizeof *per);
    long total[NLABEL] = {0}, hit_any[NLABEL] = {0}, hit_high[NLABEL] = {0};
    FILE *f = fopen(argv[a], "r");
    if (!f || !per) { fprintf(stderr, "sigma-dev-eval: cannot open %s\n", argv[a]); return 1; }
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    double t_match = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        const char *cmd = json_string_value(json_object_get(j, "cmd"));
        const char *lab = json_string_value(json_object_get(j, "label"));
        int l = lab ? label_of(lab) : -1;
        if (!cmd || l < 0) { json_decref(j); continue; }
        n++;
        total[l]++;
        json_t *ev = event_of(cmd, n);
        sigma_json_ctx ctx;
        sigma_event_view v;
        sigma_view_from_event(&v, &ctx, ev);
        sigma_hit h[32];
        double t0 = nj_now();
        int k = sigma_match(rs, &v, h, 32);
        t_match += nj_now() - t0;
        int high = 0;
        for (int i = 0; i < k && i < 32; i++) {
            per[h[i].rule][l]++;
            if (h[i].level >= SIGMA_HIGH) high = 1;
            if (verbose && l == BENIGN)
                printf("BENIGN HIT [%s]: %s\n", h[i].title, cmd);
        }
        if (k) hit_any[l]++;
        if (misses && !k && l == MALICIOUS) {
            const char *t = json_string_value(json_object_get(j, "technique"));
            printf("MISSED [%s]: %s\n", t ? t : "-", cmd);
        }
        if (high) hit_high[l]++;
        json_decref(ev);
        json_decref(j);
    }
    free(line);
    fclose(f);
    if (!summary) {
        printf("%-64s %7s %7s %7s\n", "rule", "benign", "susp", "malic");
        for (int r = 0; r < nr; r++) {
            if (!per[r][0] && !per[r][1] && !per[r][2]) continue;
            printf("%-64.64s %7ld %7ld %7ld\n", sigma_rule(rs, r)->title, per[r][0], per[r][1], per[r][2]);
        }
    }
    long bad = total[SUSPICIOUS] + total[MALICIOUS];
    long tp = hit_any[SUSPICIOUS] + hit_any[MALICIOUS], fp = hit_any[BENIGN];
    long tph = hit_high[SUSPICIOUS] + hit_high[MALICIOUS], fph = hit_high[BENIGN];
    printf("lines %ld (benign %ld, suspicious %ld, malicious %ld); rules %d\n", n, total[0], total[1], total[2], nr);
    printf("any rule hit => not benign:   precision %.4f (%ld/%ld)  recall %.4f (%ld/%ld)  [malicious hit %ld/%ld]\n",
           tp + fp ? (double)tp / (double)(tp + fp) : 0.0, tp, tp + fp, bad ? (double)tp / (double)bad : 0.0, tp, bad,
           hit_any[MALICIOUS], total[MALICIOUS]);
    printf("high/critical hit => not benign: precision %.4f (%ld/%ld)  recall %.4f (%ld/%ld)\n",
           tph + fph ? (double)tph / (double)(tph + fph) : 0.0, tph, tph + fph, bad ? (double)tph / (double)bad : 0.0, tph, bad);
    printf("match time %.1f us/event\n", n ? 1e6 * t_match / (double)n : 0.0);
    free(per);
    sigma_rules_free(rs);
    return 0;
}
