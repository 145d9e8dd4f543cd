/*
 * cli_eval — `nightjar eval`: verdict quality on a labelled set.
 *
 * Input: JSON lines, each {"cmd", "label", "technique"} (a command line)
 * or {"event", "label"} (a canonical event).  Every line is judged through
 * the same analyst as `nightjar analyze`; the output is per-class
 * precision, recall and F1, the confusion matrix, schema validity (every
 * verdict checked against the verdict contract), accuracy, macro-F1 and
 * latency percentiles, as a table or (--json) one object.  Techniques are
 * scored on the lines labelled with one that are neither labelled nor
 * judged benign: the share whose verdict lists the labelled id, the share
 * listing its parent technique (T1059 for T1059.004; either side may be a
 * sub-technique), and the share listing none.  Ids ATT&CK v19 renumbered
 * are compared under their new numbers.
 *
 * --limit N and --stride K take every K-th line up to N lines, so a quick
 * run samples the whole file instead of its first lines.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyst.h"
#include "cli.h"
#include "event.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar eval [-m MODEL | --no-model] --data FILE.jsonl [options]\n"
        "  --json             one JSON object instead of tables\n"
        "  --no-rules --no-retrieval --no-guard --label-only --full --rules PATH --prompt DIR\n"
        "  --examples N --scoring first-token|exact (as for analyze)\n"
        "  --compare-scoring  with --dump: explain also has the labels scored the other way\n"
        "  --limit N          judge at most N lines\n"
        "  --stride K         take every K-th line (default 1)\n"
        "  --errors FILE      write the misjudged lines (with their verdicts) as JSON lines\n"
        "  --dump FILE        write every line with its verdict (calibration, analysis)\n"
        "  -t THREADS -c CTX\n");
}

/* Does v keep the verdict contract (analyst.h)?  A sentence in why if not. */
static bool verdict_valid(const json_t *v, char *why, size_t cap) {
    const char *lab = json_string_value(json_object_get(v, "verdict"));
    bool ok_lab = false;
    for (int l = 0; l < AV_NLABELS; l++) ok_lab |= lab && !strcmp(lab, analyst_label_names[l]);
    if (!ok_lab) { snprintf(why, cap, "verdict"); return false; }
    json_t *c = json_object_get(v, "confidence");
    if (!json_is_number(c) || json_number_value(c) < 0 || json_number_value(c) > 1) { snprintf(why, cap, "confidence"); return false; }
    json_t *t = json_object_get(v, "techniques");
    if (!json_is_array(t)) { snprintf(why, cap, "techniques"); return false; }
    size_t i;
    json_t *x;
    json_array_foreach(t, i, x) {
        const char *s = json_string_value(x);
        size_t n = s ? strlen(s) : 0;
        bool ok = s && (n == 5 || n == 9) && s[0] == 'T';
        for (size_t k = 1; ok && k < n; k++) ok = k == 5 ? s[k] == '.' : (s[k] >= '0' && s[k] <= '9');
        if (!ok) { snprintf(why, cap, "techniques[%zu]", i); return false; }
    }
    const char *sum = json_string_value(json_object_get(v, "summary"));
    if (!sum || strlen(sum) > 400) { snprintf(why, cap, "summary"); return false; }
    const char *src = json_string_value(json_object_get(v, "source"));
    if (!src || (strcmp(src, "rule") && strcmp(src, "model") && strcmp(src, "cache"))) { snprintf(why, cap, "source"); return false; }
    if (!json_is_array(json_object_get(v, "rule_ids")) || !json_is_string(json_object_get(v, "event_id")) ||
        !json_is_number(json_object_get(v, "latency_ms"))) { snprintf(why, cap, "event_id/rule_ids/latency_ms"); return false; }
    return true;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p) {
    if (!n) return 0;
    size_t k = (size_t)ceil(p * (double)n) - 1;
    return v[k < n ? k : n - 1];
}

int cmd_eval(int argc, char **argv) {
    cli_judge j;
    cli_judge_defaults(&j);
    const char *data = NULL, *errors_path = NULL;
    bool as_json = false, dump_all = false;
    long limit = -1, stride = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = cli_judge_option(&j, argc, argv, &i);
        if (k < 0) { fprintf(stderr, "nightjar eval: bad value for %s\n", a); return 2; }
        if (k > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(a, "--json")) as_json = true;
        else if (!strcmp(a, "--limit") && i + 1 < argc) limit = atol(argv[++i]);
        else if (!strcmp(a, "--stride") && i + 1 < argc) stride = atol(argv[++i]);
        else if (!strcmp(a, "--errors") && i + 1 < argc) errors_path = argv[++i];
        else if (!strcmp(a, "--dump") && i + 1 < argc) {
            errors_path = argv[++i];
            dump_all = true;
            j.opts.explain = true;
        }
        else { fprintf(stderr, "nightjar eval: unknown option '%s'\n", a); usage(stderr); return 2; }
    }
    if (!data || stride < 1) { usage(stderr); return 2; }
    FILE *in = fopen(data, "r");
    if (!in) { fprintf(stderr, "nightjar eval: %s: %s\n", data, strerror(errno)); return 1; }
    FILE *errs = errors_path ? fopen(errors_path, "w") : NULL;
    if (errors_path && !errs) { fprintf(stderr, "nightjar eval: %s: %s\n", errors_path, strerror(errno)); fclose(in); return 1; }
    event_init();
    int rc = cli_judge_open(&j);
    if (rc) { fclose(in); if (errs) fclose(errs); return rc; }

    long conf[AV_NLABELS][AV_NLABELS] = {{0}};   /* [truth][verdict] */
    /* techniques, over the lines labelled with one and judged not benign */
    long tech_n = 0, tech_exact = 0, tech_parent = 0, tech_none = 0;
    long n = 0, valid = 0, bad_lines = 0;
    size_t lat_cap = 1024;
    double *lat = nj_malloc(lat_cap * sizeof *lat);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    while (lat && (limit < 0 || n < limit) && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if ((lineno - 1) % stride) continue;
        json_error_t je;
        json_t *row = json_loadb(line, (size_t)len, 0, &je);
        const char *lab = json_string_value(json_object_get(row, "label"));
        int truth = -1;
        for (int l = 0; l < AV_NLABELS; l++)
            if (lab && !strcmp(lab, analyst_label_names[l])) truth = l;
        const char *cmd = json_string_value(json_object_get(row, "cmd"));
        json_t *evj = json_object_get(row, "event");
        int err = 0;
        json_t *ev = NULL;
        if (truth >= 0 && cmd) ev = event_from_cmdline(cmd, strlen(cmd), lineno, &err);
        else if (truth >= 0 && json_is_object(evj)) {
            char *t = json_dumps(evj, JSON_COMPACT);
            ev = t ? event_parse(t, strlen(t), &err) : NULL;
            nj_free(t);
        }
        if (!ev) {
            fprintf(stderr, "nightjar eval: %s:%ld: %s\n", data, lineno,
                    !row ? je.text : truth < 0 ? "label must be benign, suspicious or malicious"
                                   : err ? nj_last_error() : "needs \"cmd\" or \"event\"");
            bad_lines++;
            json_decref(row);
            continue;
        }
        json_t *v = NULL;
        rc = analyst_judge(j.analyst, j.model, j.session, ev, &v);
        if (rc) {
            fprintf(stderr, "nightjar eval: %s:%ld: %s (%s)\n", data, lineno, nj_last_error(), nj_strerror(rc));
            json_decref(ev);
            json_decref(row);
            bad_lines++;
            rc = 0;
            continue;
        }
        char why[64] = "";
        bool ok = verdict_valid(v, why, sizeof why);
        valid += ok;
        if (!ok) fprintf(stderr, "nightjar eval: %s:%ld: verdict breaks the contract at %s\n", data, lineno, why);
        int got = AV_BENIGN;
        const char *vl = json_string_value(json_object_get(v, "verdict"));
        for (int l = 0; l < AV_NLABELS; l++)
            if (vl && !strcmp(vl, analyst_label_names[l])) got = l;
        conf[truth][got]++;
        const char *want = analyst_technique_id(json_string_value(json_object_get(row, "technique")));
        if (want && *want && truth != AV_BENIGN && got != AV_BENIGN) {
            json_t *tv = json_object_get(v, "techniques");
            size_t wp = strcspn(want, "."), ti;
            bool ex = false, par = false;
            json_t *t;
            json_array_foreach(tv, ti, t) {
                const char *ts = json_string_value(t);
                if (!ts) continue;
                ex |= !strcmp(ts, want);
                par |= strcspn(ts, ".") == wp && !strncmp(ts, want, wp);
            }
            tech_n++;
            tech_exact += ex;
            tech_parent += par;
            tech_none += json_array_size(tv) == 0;
        }
        if (errs && (dump_all || got != truth)) {
            json_t *e = json_pack("{s:O, s:O}", "row", row, "verdict", v);
            char *s = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
            if (s) fprintf(errs, "%s\n", s);
            fflush(errs);
            nj_free(s);   /* jansson allocates through nj_malloc (event_init) */
            json_decref(e);
        }
        if ((size_t)n == lat_cap) {
            double *nl = nj_realloc(lat, lat_cap * 2 * sizeof *lat);
            if (!nl) { json_decref(v); json_decref(ev); json_decref(row); break; }
            lat = nl;
            lat_cap *= 2;
        }
        lat[n++] = json_number_value(json_object_get(v, "latency_ms"));
        json_decref(v);
        json_decref(ev);
        json_decref(row);
        if (!as_json && isatty(2) && n % 10 == 0) fprintf(stderr, "\r%ld judged", n);
    }
    if (!as_json && isatty(2)) fprintf(stderr, "\r");
    free(line);
    fclose(in);
    if (errs) fclose(errs);

    double p[AV_NLABELS], r[AV_NLABELS], f[AV_NLABELS], macro = 0;
    long support[AV_NLABELS], correct = 0;
    for (int l = 0; l < AV_NLABELS; l++) {
        long tp = conf[l][l], pred = 0;
        support[l] = 0;
        for (int k = 0; k < AV_NLABELS; k++) {
            pred += conf[k][l];
            support[l] += conf[l][k];
        }
        correct += tp;
        p[l] = pred ? (double)tp / (double)pred : 0;
        r[l] = support[l] ? (double)tp / (double)support[l] : 0;
        f[l] = p[l] + r[l] > 0 ? 2 * p[l] * r[l] / (p[l] + r[l]) : 0;
        macro += f[l] / AV_NLABELS;
    }
    if (lat) qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double p50 = lat ? pct(lat, (size_t)n, 0.50) : 0, p95 = lat ? pct(lat, (size_t)n, 0.95) : 0;
    analyst_stats st;
    analyst_get_stats(j.analyst, &st);
    const char *model = j.no_model ? "none" : j.model_name;
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:{}, s:[], s:I, s:{s:I, s:I, s:I}}",
                              "data", data, "model", model, "prompt", analyst_prompt_version(j.analyst),
                              "n", (json_int_t)n, "schema_valid", n ? (double)valid / (double)n : 0.0,
                              "accuracy", n ? (double)correct / (double)n : 0.0, "macro_f1", macro,
                              "latency_ms_p50", p50, "latency_ms_p95", p95, "per_class", "confusion",
                              "bad_lines", (json_int_t)bad_lines, "sources", "rule", (json_int_t)st.by_rule,
                              "model", (json_int_t)st.by_model, "cache", (json_int_t)st.by_cache);
        if (o) {
            double tn = tech_n ? (double)tech_n : 1.0;
            json_object_set_new(o, "techniques", json_pack("{s:I, s:f, s:f, s:f}", "n", (json_int_t)tech_n,
                                                           "exact", (double)tech_exact / tn, "parent",
                                                           (double)tech_parent / tn, "none", (double)tech_none / tn));
            json_object_set_new(o, "settings", json_pack("{s:b, s:b, s:b, s:b}", "rules", !j.opts.no_rules,
                                                         "retrieval", !j.opts.no_retrieval, "model", !j.no_model,
                                                         "label_only", j.opts.label_only));
            for (int l = 0; l < AV_NLABELS; l++) {
                json_object_set_new(json_object_get(o, "per_class"), analyst_label_names[l],
                                    json_pack("{s:f, s:f, s:f, s:I}", "precision", p[l], "recall", r[l], "f1", f[l],
                                              "support", (json_int_t)support[l]));
                json_array_append_new(json_object_get(o, "confusion"),
                                      json_pack("[I, I, I]", (json_int_t)conf[l][0], (json_int_t)conf[l][1], (json_int_t)conf[l][2]));
            }
            char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
            if (s) printf("%s\n", s);
            nj_free(s);   /* jansson allocates through nj_malloc (event_init) */
            json_decref(o);
        }
    } else {
        printf("data %s, model %s, prompt %s, rules %s, retrieval %s%s\n\n", data, model,
               analyst_prompt_version(j.analyst), j.opts.no_rules ? "off" : "on",
               j.opts.no_retrieval ? "off" : "on", j.opts.label_only ? ", label only" : "");
        printf("| class | precision | recall | F1 | support |\n| --- | ---: | ---: | ---: | ---: |\n");
        for (int l = 0; l < AV_NLABELS; l++)
            printf("| %s | %.3f | %.3f | %.3f | %ld |\n", analyst_label_names[l], p[l], r[l], f[l], support[l]);
        printf("\nconfusion (rows: truth, columns: verdict)\n\n| | benign | suspicious | malicious |\n| --- | ---: | ---: | ---: |\n");
        for (int l = 0; l < AV_NLABELS; l++)
            printf("| %s | %ld | %ld | %ld |\n", analyst_label_names[l], conf[l][0], conf[l][1], conf[l][2]);
        printf("\nn %ld, accuracy %.3f, macro-F1 %.3f, schema valid %.1f%%, latency p50 %.0f ms, p95 %.0f ms; "
               "decided by rules %llu, model %llu, cache %llu; %ld bad lines\n",
               n, n ? (double)correct / (double)n : 0.0, macro, n ? 100.0 * (double)valid / (double)n : 0.0,
               p50, p95, st.by_rule, st.by_model, st.by_cache, bad_lines);
        if (tech_n)
            printf("techniques, on the %ld lines labelled with one and judged suspicious or malicious: "
                   "the labelled id %.1f%%, its parent technique %.1f%%, none given %.1f%%\n", tech_n,
                   100.0 * (double)tech_exact / (double)tech_n, 100.0 * (double)tech_parent / (double)tech_n,
                   100.0 * (double)tech_none / (double)tech_n);
    }
    nj_free(lat);
    cli_judge_close(&j);
    return 0;
}
