/*
 * benchreport — tables and SVG charts for `nightjar bench`.  See
 * benchreport.h.
 */
#include "benchreport.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

bool bench_row_in_budget(const bench_row *r) {
    return r->ok && r->rss_mb <= BENCH_BUDGET_RSS_MB && r->p95 <= BENCH_BUDGET_P95_MS &&
           r->idle_cpu < BENCH_BUDGET_IDLE;
}

int bench_best(const bench_row *rows, int n) {
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!bench_row_in_budget(&rows[i])) continue;
        if (best < 0 || rows[i].p95 < rows[best].p95 ||
            (rows[i].p95 == rows[best].p95 && rows[i].accuracy > rows[best].accuracy))
            best = i;
    }
    return best;
}

static const char *yes(bool b) { return b ? "yes" : "no"; }
static void short_name(const char *name, char *stem, size_t cap);

void bench_print_table(FILE *out, const bench_row *rows, int n, bool budget) {
    fprintf(out, "%-28s %-5s %3s %4s %5s %4s %8s %8s %8s %8s %8s %7s %6s %6s%s\n", "model", "mode", "thr", "nice",
            "ctx", "ev", "p50 ms", "p95 ms", "p99 ms", "tok/s", "RSS MB", "cpu/ev", "idle%", "acc",
            budget ? "  budget" : "");
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        char nm[128];
        short_name(r->name, nm, sizeof nm);
        if (!r->ok) {
            fprintf(out, "%-28.28s %-5s %3d %4d %5d  failed: %s\n", nm, r->mode, r->threads, r->nice, r->ctx,
                    r->error);
            continue;
        }
        fprintf(out, "%-28.28s %-5s %3d %4d %5d %4d %8.0f %8.0f %8.0f %8.1f %8.0f %7.2f %6.2f %6.3f%s%s\n", nm,
                r->mode, r->threads, r->nice, r->ctx, r->events, r->p50, r->p95, r->p99, r->prompt_tok_s, r->rss_mb,
                r->cpu_per_event, r->idle_cpu, r->accuracy, budget ? "  " : "",
                budget ? yes(bench_row_in_budget(r)) : "");
    }
    if (budget) {
        int b = bench_best(rows, n);
        if (b < 0) fprintf(out, "no configuration meets every budget (RSS <= 6 GB, p95 <= 2.5 s, idle CPU < 2%%)\n");
        else
            fprintf(out, "best within budget: %s, %s, %d threads, nice %d, context %d (p95 %.0f ms, accuracy %.3f)\n",
                    rows[b].name, rows[b].mode, rows[b].threads, rows[b].nice, rows[b].ctx, rows[b].p95,
                    rows[b].accuracy);
    }
}

/* ---- SVG ---- */

#define W 640
#define H 400
#define ML 70
#define MR 200
#define MT 40
#define MB 50

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

typedef struct axis { double lo, hi, step; } axis;

/* Round limits and a step of 1, 2 or 5 x 10^k giving about five ticks. */
static axis nice_axis(double lo, double hi, bool from_zero) {
    if (from_zero && lo > 0) lo = 0;
    if (!(hi > lo)) hi = lo + 1;
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    axis a = {floor(lo / step) * step, ceil(hi / step) * step, step};
    if (a.hi <= a.lo) a.hi = a.lo + step;
    return a;
}

static double px(const axis *a, double v) { return ML + (v - a->lo) / (a->hi - a->lo) * (W - ML - MR); }
static double py(const axis *a, double v) { return H - MB - (v - a->lo) / (a->hi - a->lo) * (H - MT - MB); }

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static void svg_head(FILE *f, const char *title, const char *xl, const char *yl, const axis *ax, const axis *ay) {
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            W, H, W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">", ML);
    xml_text(f, title);
    fputs("</text>\n", f);
    for (double v = ay->lo; v <= ay->hi + ay->step / 2; v += ay->step) {
        double y = py(ay, v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML, y, W - MR, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6, y + 4, v);
    }
    if (ax)
        for (double v = ax->lo; v <= ax->hi + ax->step / 2; v += ax->step) {
            double x = px(ax, v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, MT, x, H - MB);
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", x, H - MB + 16, v);
        }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", ML, MT,
            W - ML - MR, H - MT - MB);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (ML + W - MR) / 2, H - 12);
    xml_text(f, xl);
    fprintf(f, "</text>\n<text x=\"16\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">",
            (MT + H - MB) / 2, (MT + H - MB) / 2);
    xml_text(f, yl);
    fputs("</text>\n", f);
}

static void legend(FILE *f, int i, const char *name, const char *color) {
    int y = MT + 8 + 18 * i;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n<text x=\"%d\" y=\"%d\" font-size=\"11\">", W - MR + 10,
            y, color, W - MR + 28, y + 10);
    xml_text(f, name);
    fputs("</text>\n", f);
}

static void hline(FILE *f, const axis *ay, double v, const char *label) {
    if (v < ay->lo || v > ay->hi) return;
    double y = py(ay, v);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/>\n", ML, y,
            W - MR, y);
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" fill=\"#c00\" text-anchor=\"end\">", W - MR - 4, y - 4);
    xml_text(f, label);
    fputs("</text>\n", f);
}

static void vline(FILE *f, const axis *ax, double v, const char *label) {
    if (v < ax->lo || v > ax->hi) return;
    double x = px(ax, v);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/>\n", x, MT,
            x, H - MB);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" fill=\"#c00\">", x + 4, MT + 14);
    xml_text(f, label);
    fputs("</text>\n", f);
}

/* A file name short enough for a legend or a column: without ".gguf",
 * and head..tail when long (quant types sit at the end of file names). */
static void short_name(const char *name, char *stem, size_t cap) {
    snprintf(stem, cap, "%s", name);
    size_t n = strlen(stem);
    if (n > 5 && !strcmp(stem + n - 5, ".gguf")) stem[n -= 5] = 0;
    if (n > 20 && cap > 21) {
        memmove(stem + 9, "..", 2);
        memmove(stem + 11, stem + n - 9, 10);
    }
}

/* Series key of a row: the model and mode (one line per pair). */
static void series_name(const bench_row *r, char *buf, size_t cap) {
    char stem[128];
    short_name(r->name, stem, sizeof stem);
    snprintf(buf, cap, "%s %s", stem, r->mode);
}

/* Distinct series in first-seen order; idx[i] = series of row i. */
static int group_series(const bench_row *rows, int n, int *idx, char names[][160], int max) {
    int ns = 0;
    for (int i = 0; i < n; i++) {
        char k[160];
        series_name(&rows[i], k, sizeof k);
        int s = 0;
        while (s < ns && strcmp(names[s], k)) s++;
        if (s == ns && ns < max) snprintf(names[ns++], 160, "%s", k);
        idx[i] = s < max ? s : max - 1;
    }
    return ns;
}

#define MAX_SERIES 10

static FILE *open_in(const char *dir, const char *file) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f) nj_fail(-errno, "bench: cannot write %s", path);
    return f;
}

static int close_checked(FILE *f, const char *file) {
    bool bad = ferror(f);
    if (fclose(f) || bad) return nj_fail(-EIO, "bench: error writing %s", file);
    return 0;
}

/* p95 latency (s) against threads, one line per model and mode. */
static int chart_latency_threads(const char *dir, const bench_row *rows, int n, int *idx) {
    char names[MAX_SERIES][160];
    int ns = group_series(rows, n, idx, names, MAX_SERIES);
    double xmax = 1, ymax = BENCH_BUDGET_P95_MS / 1000;
    for (int i = 0; i < n; i++)
        if (rows[i].ok) { xmax = fmax(xmax, rows[i].threads); ymax = fmax(ymax, rows[i].p95 / 1000); }
    axis ax = nice_axis(0, xmax, true), ay = nice_axis(0, ymax * 1.05, true);
    if (ax.step < 1) { ax.step = 1; ax.hi = ceil(ax.hi); }   /* whole threads */
    FILE *f = open_in(dir, "latency-threads.svg");
    if (!f) return -errno;
    svg_head(f, "p95 latency per event vs threads", "threads", "p95 latency (s)", &ax, &ay);
    hline(f, &ay, BENCH_BUDGET_P95_MS / 1000, "budget 2.5 s");
    for (int s = 0; s < ns; s++) {
        const char *c = palette[s % NJ_ARRAY_LEN(palette)];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        /* rows of a series in thread order (insertion sort of indices) */
        int order[256], m = 0;
        for (int i = 0; i < n && m < 256; i++)
            if (idx[i] == s && rows[i].ok) {
                int k = m++;
                while (k > 0 && rows[order[k - 1]].threads > rows[i].threads) { order[k] = order[k - 1]; k--; }
                order[k] = i;
            }
        for (int k = 0; k < m; k++)
            fprintf(f, "%.1f,%.1f ", px(&ax, rows[order[k]].threads), py(&ay, rows[order[k]].p95 / 1000));
        fputs("\"/>\n", f);
        for (int k = 0; k < m; k++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", px(&ax, rows[order[k]].threads),
                    py(&ay, rows[order[k]].p95 / 1000), c);
        legend(f, s, names[s], c);
    }
    fputs("</svg>\n", f);
    return close_checked(f, "latency-threads.svg");
}

/* A scatter of (x, y) per row, colored by series, with optional budget
 * lines: quality vs memory, and the budget frontier (p95 vs RSS). */
static int chart_scatter(const char *dir, const char *file, const char *title, const char *xl, const char *yl,
                         const bench_row *rows, int n, int *idx, int which) {
    char names[MAX_SERIES][160];
    int ns = group_series(rows, n, idx, names, MAX_SERIES);
    double xmax = 1, ymax = which == 0 ? 1 : BENCH_BUDGET_P95_MS / 1000;
    for (int i = 0; i < n; i++) {
        if (!rows[i].ok) continue;
        xmax = fmax(xmax, rows[i].rss_mb / 1024);
        ymax = fmax(ymax, which == 0 ? rows[i].accuracy : rows[i].p95 / 1000);
    }
    if (which == 1) xmax = fmax(xmax, BENCH_BUDGET_RSS_MB / 1024);
    axis ax = nice_axis(0, xmax * 1.05, true), ay = nice_axis(0, ymax * 1.05, true);
    if (which == 0) ay = (axis){0, 1, 0.2};   /* accuracy */
    FILE *f = open_in(dir, file);
    if (!f) return -errno;
    svg_head(f, title, xl, yl, &ax, &ay);
    if (which == 1) {
        hline(f, &ay, BENCH_BUDGET_P95_MS / 1000, "p95 budget");
        vline(f, &ax, BENCH_BUDGET_RSS_MB / 1024, "6 GB");
    }
    for (int i = 0; i < n; i++) {
        if (!rows[i].ok) continue;
        const char *c = palette[idx[i] % (int)NJ_ARRAY_LEN(palette)];
        double x = px(&ax, rows[i].rss_mb / 1024), y = py(&ay, which == 0 ? rows[i].accuracy : rows[i].p95 / 1000);
        bool in = bench_row_in_budget(&rows[i]);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"%s\" stroke-width=\"2\"/>\n", x, y,
                in || which == 0 ? c : "white", c);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">t%d</text>\n", x + 7, y + 4, rows[i].threads);
    }
    for (int s = 0; s < ns; s++) legend(f, s, names[s], palette[s % NJ_ARRAY_LEN(palette)]);
    if (which == 1)
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">filled: within every budget</text>\n", W - MR + 10,
                MT + 18 * ns + 20);
    fputs("</svg>\n", f);
    return close_checked(f, file);
}

/* Latency distribution: per row a bar from p50 to p99 with a tick at p95. */
static int chart_dist(const char *dir, const bench_row *rows, int n, int *idx) {
    char names[MAX_SERIES][160];
    int ns = group_series(rows, n, idx, names, MAX_SERIES);
    double ymax = 0.1;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].ok) { ymax = fmax(ymax, rows[i].p99 / 1000); m++; }
    axis ay = nice_axis(0, ymax * 1.05, true);
    FILE *f = open_in(dir, "latency-dist.svg");
    if (!f) return -errno;
    svg_head(f, "event latency: p50 (bar start), p95 (tick), p99 (bar end)", "configuration (threads)",
             "latency (s)", NULL, &ay);
    double slot = (double)(W - ML - MR) / (m ? m : 1);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].ok) continue;
        const char *c = palette[idx[i] % (int)NJ_ARRAY_LEN(palette)];
        double x = ML + slot * (k + 0.5), y50 = py(&ay, rows[i].p50 / 1000), y95 = py(&ay, rows[i].p95 / 1000),
               y99 = py(&ay, rows[i].p99 / 1000), bw = fmin(24, slot * 0.6);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" opacity=\"0.7\"/>\n",
                x - bw / 2, y99, bw, fmax(1, y50 - y99), c);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\"/>\n",
                x - bw / 2 - 3, y95, x + bw / 2 + 3, y95);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">t%d</text>\n", x, H - MB + 14,
                rows[i].threads);
        k++;
    }
    hline(f, &ay, BENCH_BUDGET_P95_MS / 1000, "budget 2.5 s");
    for (int s = 0; s < ns; s++) legend(f, s, names[s], palette[s % NJ_ARRAY_LEN(palette)]);
    fputs("</svg>\n", f);
    return close_checked(f, "latency-dist.svg");
}

static void csv_field(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void json_field(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

int bench_write_report(const char *dir, const bench_row *rows, int n, bool budget, const char *title) {
    int idx[1024];
    if (n > 1024) return nj_fail(-EINVAL, "bench: at most 1024 configurations in one report");
    int rc;
    if ((rc = chart_latency_threads(dir, rows, n, idx)) ||
        (rc = chart_scatter(dir, "quality-memory.svg", "verdict accuracy vs peak memory", "peak RSS (GB)",
                            "accuracy", rows, n, idx, 0)) ||
        (rc = chart_scatter(dir, "frontier.svg", "budget frontier: p95 latency vs peak memory", "peak RSS (GB)",
                            "p95 latency (s)", rows, n, idx, 1)) ||
        (rc = chart_dist(dir, rows, n, idx)))
        return rc;

    FILE *f = open_in(dir, "results.csv");
    if (!f) return -errno;
    fputs("model,name,mode,threads,nice,ctx,events,p50_ms,p95_ms,p99_ms,mean_ms,prompt_tok_s,rss_mb,"
          "cpu_s_per_event,idle_cpu_pct,accuracy,load_s,ok,in_budget,error\n", f);
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        csv_field(f, r->model);
        fputc(',', f);
        csv_field(f, r->name);
        fprintf(f, ",%s,%d,%d,%d,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.1f,%.4f,%.3f,%.4f,%.3f,%d,%d,", r->mode, r->threads,
                r->nice, r->ctx, r->events, r->p50, r->p95, r->p99, r->mean, r->prompt_tok_s, r->rss_mb,
                r->cpu_per_event, r->idle_cpu, r->accuracy, r->load_s, r->ok, bench_row_in_budget(r));
        csv_field(f, r->error);
        fputc('\n', f);
    }
    if ((rc = close_checked(f, "results.csv"))) return rc;

    if (!(f = open_in(dir, "results.json"))) return -errno;
    int best = bench_best(rows, n);
    fputs("{\"title\":", f);
    json_field(f, title);
    fprintf(f, ",\"budgets\":{\"rss_mb\":%.0f,\"p95_ms\":%.0f,\"idle_cpu_pct\":%.1f},\"best\":%d,\"rows\":[",
            BENCH_BUDGET_RSS_MB, BENCH_BUDGET_P95_MS, BENCH_BUDGET_IDLE, best);
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        fputs(i ? ",\n{\"model\":" : "\n{\"model\":", f);
        json_field(f, r->model);
        fputs(",\"name\":", f);
        json_field(f, r->name);
        fprintf(f, ",\"mode\":\"%s\",\"threads\":%d,\"nice\":%d,\"ctx\":%d,\"events\":%d,\"p50_ms\":%.3f,"
                   "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"mean_ms\":%.3f,\"prompt_tok_s\":%.3f,\"rss_mb\":%.1f,"
                   "\"cpu_s_per_event\":%.4f,\"idle_cpu_pct\":%.3f,\"accuracy\":%.4f,\"load_s\":%.3f,\"ok\":%s,"
                   "\"in_budget\":%s,\"error\":",
                r->mode, r->threads, r->nice, r->ctx, r->events, r->p50, r->p95, r->p99, r->mean, r->prompt_tok_s,
                r->rss_mb, r->cpu_per_event, r->idle_cpu, r->accuracy, r->load_s, r->ok ? "true" : "false",
                bench_row_in_budget(r) ? "true" : "false");
        json_field(f, r->error);
        fputc('}', f);
    }
    fputs("\n]}\n", f);
    if ((rc = close_checked(f, "results.json"))) return rc;

    if (!(f = open_in(dir, "report.md"))) return -errno;
    fprintf(f, "# nightjar bench\n\n%s\n\n", title);
    fputs("Budgets: peak RSS <= 6 GB, p95 latency per event <= 2.5 s, idle CPU < 2 % of a core.\n\n", f);
    fputs("| model | mode | threads | nice | ctx | events | p50 ms | p95 ms | p99 ms | prompt tok/s | peak RSS MB "
          "| CPU s/event | idle CPU % | accuracy | in budget |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
          f);
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        if (!r->ok) {
            fprintf(f, "| %s | %s | %d | %d | %d | failed: %s | | | | | | | | | no |\n", r->name, r->mode, r->threads,
                    r->nice, r->ctx, r->error);
            continue;
        }
        fprintf(f, "| %s | %s | %d | %d | %d | %d | %.0f | %.0f | %.0f | %.1f | %.0f | %.2f | %.2f | %.3f | %s |\n",
                r->name, r->mode, r->threads, r->nice, r->ctx, r->events, r->p50, r->p95, r->p99, r->prompt_tok_s,
                r->rss_mb, r->cpu_per_event, r->idle_cpu, r->accuracy, yes(bench_row_in_budget(r)));
    }
    if (budget || best >= 0) {
        if (best < 0) fputs("\nNo configuration meets every budget.\n", f);
        else
            fprintf(f, "\n**Best within budget:** %s, %s, %d threads, nice %d, context %d: p95 %.0f ms, accuracy "
                       "%.3f, peak RSS %.0f MB.\n",
                    rows[best].name, rows[best].mode, rows[best].threads, rows[best].nice, rows[best].ctx,
                    rows[best].p95, rows[best].accuracy, rows[best].rss_mb);
    }
    fputs("\n![p95 latency vs threads](latency-threads.svg)\n\n![accuracy vs memory](quality-memory.svg)\n\n"
          "![latency distribution](latency-dist.svg)\n\n![budget frontier](frontier.svg)\n\n"
          "Raw numbers: results.csv, results.json.\n",
          f);
    return close_checked(f, "report.md");
}
