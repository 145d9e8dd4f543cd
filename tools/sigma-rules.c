/*
 * sigma-rules — load Sigma rule files or directories and say what loaded.
 *
 *   sigma-rules [-v] [-l] PATH...
 *
 * Prints, per PATH, rules loaded and skipped; then the skip reasons grouped
 * and counted (with -v, every skipped file and its reason; with -l, every
 * loaded rule as "level  techniques  title").  Exit status 0 when every path
 * could be read, 1 otherwise.  Independent of the nightjar binary: it links
 * only the library's sigma module, so it can check a SigmaHQ checkout before
 * pointing `--rules` at it.
 */
#include "sigma.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *reason; int n; } group;

static int cmp_group(const void *a, const void *b) {
    const group *x = a, *y = b;
    return y->n - x->n;
}

int main(int argc, char **argv) {
    int verbose = 0, list = 0, first = 1, status = 0;
    while (first < argc && argv[first][0] == '-' && argv[first][1]) {
        if (!strcmp(argv[first], "-v")) verbose = 1;
        else if (!strcmp(argv[first], "-l")) list = 1;
        else { fprintf(stderr, "usage: sigma-rules [-v] [-l] PATH...\n"); return 2; }
        first++;
    }
    if (first >= argc) { fprintf(stderr, "usage: sigma-rules [-v] [-l] PATH...\n"); return 2; }
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    if (!rs) { fprintf(stderr, "sigma-rules: %s\n", nj_strerror(err)); return 1; }
    int total_loaded = 0;
    for (int a = first; a < argc; a++) {
        int skips_before = sigma_skip_count(rs);
        int rc = sigma_load_path(rs, argv[a]);
        if (rc < 0 && rc != NJ_EFORMAT) {
            fprintf(stderr, "sigma-rules: %s: %s\n", nj_strerror(rc), nj_last_error());
            status = 1;
            continue;
        }
        int loaded = rc > 0 ? rc : 0;
        int skipped = sigma_skip_count(rs) - skips_before;
        total_loaded += loaded;
        printf("%-50s loaded %4d  skipped %3d  (%.1f%% loaded)\n", argv[a], loaded, skipped,
               loaded + skipped ? 100.0 * loaded / (loaded + skipped) : 0.0);
    }
    int ns = sigma_skip_count(rs);
    printf("total: loaded %d, skipped %d\n", total_loaded, ns);
    group *g = calloc((size_t)ns + 1, sizeof *g);
    int ng = 0;
    for (int i = 0; i < ns && g; i++) {
        const sigma_skip *s = sigma_skip_at(rs, i);
        if (verbose) printf("skip: %s: %s\n", s->file, s->reason);
        /* Group by the reason up to a quote, so names do not split groups. */
        int j;
        for (j = 0; j < ng; j++) if (!strcmp(g[j].reason, s->reason)) break;
        if (j == ng) g[ng++].reason = s->reason;
        g[j].n++;
    }
    if (g) {
        qsort(g, (size_t)ng, sizeof *g, cmp_group);
        for (int j = 0; j < ng; j++) printf("  %4d  %s\n", g[j].n, g[j].reason);
    }
    free(g);
    if (list)
        for (int i = 0; i < sigma_rule_count(rs); i++) {
            const sigma_rule_info *r = sigma_rule(rs, i);
            printf("%-13s %-22s %s\n", sigma_level_name(r->level),
                   r->n_techniques ? r->techniques[0] : "-", r->title);
        }
    sigma_rules_free(rs);
    return status;
}
