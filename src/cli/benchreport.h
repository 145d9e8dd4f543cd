/*
 * benchreport — the report of `nightjar bench`: a terminal table, Markdown
 * with SVG charts, CSV and JSON, from the configurations' result rows.
 *
 * Design.  The sweep (cli_bench.c) keeps its results as JSON lines, one per
 * configuration, so an interrupted sweep resumes where it stopped; this
 * module only reads rows and writes files.  The charts are SVG written here
 * (no plotting library): axes with rounded ticks, one polyline or point set
 * per series, dashed budget lines, a legend.  Every number in a chart is
 * also in the tables and the CSV.
 *
 * Budgets (DESIGN.md): peak RSS <= 6 GB, p95 latency per event <= 2.5 s,
 * idle CPU < 2 %.  A row meets them all or not; the best row is the one
 * with the lowest p95 among those that do (ties: higher accuracy).
 *
 * Ownership: rows are the caller's; nothing here keeps state.
 * Single-threaded.
 */
#ifndef NJ_BENCHREPORT_H
#define NJ_BENCHREPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define BENCH_BUDGET_RSS_MB  (6.0 * 1024)
#define BENCH_BUDGET_P95_MS  2500.0
#define BENCH_BUDGET_IDLE    2.0

typedef struct bench_row {
    char   model[512];      /* the file */
    char   name[128];       /* short name for tables and legends */
    char   mode[8];         /* "label" | "full" */
    int    threads, nice, ctx;
    int    events;
    double p50, p95, p99, mean;   /* event latency, ms */
    double prompt_tok_s;    /* prompt tokens evaluated per second of judging */
    double rss_mb;          /* peak resident set of the configuration's process */
    double cpu_per_event;   /* CPU seconds per event (all threads) */
    double idle_cpu;        /* % of one core over the idle window */
    double accuracy;        /* verdicts equal to the workload's labels */
    double load_s;          /* model load and analyst set-up */
    bool   ok;              /* the configuration ran */
    char   error[160];
} bench_row;

/* Whether a row meets every budget. */
bool bench_row_in_budget(const bench_row *r);
/* Index of the best row within budget, or -1. */
int  bench_best(const bench_row *rows, int n);

/* The terminal table (to out), with an "in budget" column and the best
 * row named when budget is set. */
void bench_print_table(FILE *out, const bench_row *rows, int n, bool budget);

/* Write dir/report.md, dir/results.csv, dir/results.json and the charts
 * dir/latency-threads.svg, dir/quality-memory.svg, dir/latency-dist.svg,
 * dir/frontier.svg.  title: a line for the report's head (workload,
 * machine).  0 or -errno with a sentence. */
int bench_write_report(const char *dir, const bench_row *rows, int n, bool budget, const char *title);

#endif
