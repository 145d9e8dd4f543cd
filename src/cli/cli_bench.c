/*
 * cli_bench — `nightjar bench`: sweep configurations of the analyst over an
 * event workload and report what each costs and how well it judges.
 *
 *   nightjar bench -m MODEL [-m MODEL...] [-t 1,2,4] [--nice 0,10] [-c 4096]
 *                  [--mode label,full] [-w WORKLOAD.jsonl] [--stride N]
 *                  [--limit N] [--idle SECONDS] [--reduced] [-o DIR]
 *                  [--budget] [--fresh]
 *   nightjar bench --report DIR [--budget]      (the report again, no runs)
 *
 * Design.  Each configuration (model x threads x nice x context x mode)
 * runs in its own process (`nightjar bench --run-one ...`, started by the
 * sweep), so its peak RSS and CPU time are its own and a crash or an
 * out-of-memory kill costs one row, not the sweep.  The child loads the
 * model and the analyst (rules, retrieval, the model stage; the verdict
 * cache off, so every event reaches the stage that decides it), judges
 * every workload event, then sits idle for --idle seconds and measures
 * the CPU it used meanwhile, and prints one JSON line.  The sweep appends
 * that line to DIR/results.jsonl at once: a rerun skips the configurations
 * already there (resume after an interruption; --fresh starts over), and
 * the report is always made from the whole file.
 *
 * Measures per configuration: event latency p50/p95/p99 and mean (wall
 * time of one judgment), prompt tokens evaluated per second of judging
 * (the analyst's counters; generation is not counted separately), peak
 * RSS, CPU seconds per event (all threads), idle CPU (% of one core over
 * the idle window), accuracy against the workload's labels (the workload
 * is eval's format: {"cmd": ..., "label": ...} or {"event": {...},
 * "label": ...}; the default is the shipped eval/commands.jsonl), and the
 * model load time.  --reduced takes every 24th event and a 1 s idle window.
 *
 * The parent never starts a thread; each child is one `nightjar` process.
 */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "analyst.h"
#include "benchreport.h"
#include "cli.h"
#include "event.h"
#include "platform.h"
#include "util.h"

extern char **environ;

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar bench -m MODEL [-m MODEL...] [-t LIST] [--nice LIST] [-c LIST] [--mode LIST]\n"
        "                      [-w WORKLOAD.jsonl] [--stride N] [--limit N] [--idle S] [--reduced]\n"
        "                      [-o DIR] [--budget] [--fresh]\n"
        "       nightjar bench --report DIR [--budget]\n"
        "  -m       model name or file, repeatable (the quantization sweep: one file per type)\n"
        "  -t       threads, comma list (default 2);  --nice  nice levels (default 10)\n"
        "  -c       context sizes (default 4096);  --mode  label,full (default label)\n"
        "  -w       events with labels, eval's format (default eval/commands.jsonl)\n"
        "  --stride every Nth event;  --limit at most N events;  --idle idle window (s, default 5)\n"
        "  --reduced  --stride 24 --idle 1: the quick sweep\n"
        "  -o       output folder (default bench-out): results.jsonl (resumable), report.md,\n"
        "           results.csv, results.json, *.svg\n"
        "  --budget mark the configurations within every budget and name the best\n"
        "  --fresh  forget earlier results in the folder\n");
}

/* ---- one configuration (the child) ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p) {
    if (n <= 0) return 0;
    double r = p * (n - 1);
    int i = (int)r;
    r -= i;
    return i + 1 < n ? v[i] * (1 - r) + v[i + 1] * r : v[n - 1];
}

static int run_one(const char *model, int threads, int nice_level, int ctx, const char *mode,
                   const char *workload, long stride, long limit, double idle_s) {
    if (nice_level && platform_set_nice(nice_level))
        fprintf(stderr, "nightjar bench: cannot set nice %d (continuing)\n", nice_level);
    cli_judge j;
    cli_judge_defaults(&j);
    j.model_arg = model;
    j.threads = threads;
    j.ctx = ctx;
    j.opts.no_cache = true;
    if (!strcmp(mode, "full")) j.opts.full = true;
    else j.opts.label_only = true;
    FILE *in = fopen(workload, "r");
    if (!in) { fprintf(stderr, "nightjar bench: %s: %s\n", workload, strerror(errno)); return 1; }
    double t0 = nj_now();
    int rc = cli_judge_open(&j);
    if (rc) { fclose(in); return rc; }
    const double load_s = nj_now() - t0;

    int n = 0, cap = 256, correct = 0;
    double *lat = nj_malloc(sizeof(double) * (size_t)cap);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    analyst_stats st0, st1;
    analyst_get_stats(j.analyst, &st0);
    const double cpu0 = platform_cpu_seconds(), w0 = nj_now();
    double judge_s = 0;
    while (lat && (limit < 0 || n < limit) && (len = getline(&line, &lcap, in)) >= 0) {
        if (lineno++ % stride) continue;
        json_t *row = json_loadb(line, (size_t)len, 0, NULL);
        const char *lab = json_string_value(json_object_get(row, "label"));
        const char *cmd = json_string_value(json_object_get(row, "cmd"));
        json_t *evj = json_object_get(row, "event");
        int err = 0;
        json_t *ev = NULL;
        if (cmd) ev = event_from_cmdline(cmd, strlen(cmd), lineno, &err);
        else if (json_is_object(evj)) {
            char *t = json_dumps(evj, JSON_COMPACT);
            ev = t ? event_parse(t, strlen(t), &err) : NULL;
            nj_free(t);
        }
        if (!ev) {
            fprintf(stderr, "nightjar bench: %s:%ld: not an event with a label\n", workload, lineno);
            json_decref(row);
            continue;
        }
        json_t *v = NULL;
        double e0 = nj_now();
        rc = analyst_judge(j.analyst, j.model, j.session, ev, &v);
        double ms = (nj_now() - e0) * 1000;
        judge_s += ms / 1000;
        if (rc) {
            fprintf(stderr, "nightjar bench: %s:%ld: %s (%s)\n", workload, lineno, nj_last_error(), nj_strerror(rc));
        } else {
            const char *got = json_string_value(json_object_get(v, "verdict"));
            correct += lab && got && !strcmp(lab, got);
            if (n == cap) {
                double *nl = nj_realloc(lat, sizeof(double) * (size_t)cap * 2);
                if (!nl) { nj_free(lat); lat = NULL; }
                lat = nl;
                cap *= 2;
            }
            if (lat) lat[n++] = ms;
        }
        json_decref(v);
        json_decref(ev);
        json_decref(row);
    }
    free(line);
    fclose(in);
    const double cpu1 = platform_cpu_seconds();
    (void)w0;
    analyst_get_stats(j.analyst, &st1);
    /* idle: the model loaded, nothing to do */
    struct timespec ts = {(time_t)idle_s, (long)((idle_s - floor(idle_s)) * 1e9)};
    const double i0 = platform_cpu_seconds(), iw0 = nj_now();
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
    const double idle_cpu = 100 * (platform_cpu_seconds() - i0) / fmax(1e-3, nj_now() - iw0);
    if (!lat || n == 0) {
        fprintf(stderr, "nightjar bench: no event judged from %s\n", workload);
        nj_free(lat);
        cli_judge_close(&j);
        return 1;
    }
    double mean = 0;
    for (int i = 0; i < n; i++) mean += lat[i] / n;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    const double prompt = (double)(st1.prompt_tokens - st0.prompt_tokens) -
                          (double)(st1.prompt_tokens_reused - st0.prompt_tokens_reused);
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                          "model", model, "name", j.model_name, "mode", mode, "threads", threads, "nice", nice_level,
                          "ctx", ctx, "events", n, "p50_ms", pct(lat, n, 0.50), "p95_ms", pct(lat, n, 0.95),
                          "p99_ms", pct(lat, n, 0.99), "mean_ms", mean,
                          "prompt_tok_s", judge_s > 0 ? prompt / judge_s : 0.0,
                          "rss_mb", (double)platform_peak_rss_bytes() / (1 << 20),
                          "cpu_s_per_event", (cpu1 - cpu0) / n, "idle_cpu_pct", idle_cpu,
                          "accuracy", (double)correct / n, "load_s", load_s);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) : NULL;
    if (s) printf("%s\n", s);
    nj_free(s);   /* jansson allocates through nj_malloc (event_init) */
    json_decref(o);
    nj_free(lat);
    cli_judge_close(&j);
    return s ? 0 : 1;
}

/* ---- the sweep (the parent) ---- */

static int parse_list(const char *s, int *out, int max, int lo, int hi) {
    int n = 0;
    while (*s) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s || v < lo || v > hi || n == max) return -1;
        out[n++] = (int)v;
        if (*e == ',') e++;
        else if (*e) return -1;
        s = e;
    }
    return n;
}

static bool row_from_json(const json_t *o, bench_row *r) {
    memset(r, 0, sizeof *r);
    const char *m = json_string_value(json_object_get(o, "model"));
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *mode = json_string_value(json_object_get(o, "mode"));
    if (!m || !mode) return false;
    snprintf(r->model, sizeof r->model, "%s", m);
    snprintf(r->name, sizeof r->name, "%s", name ? name : m);
    snprintf(r->mode, sizeof r->mode, "%s", mode);
    r->threads = (int)json_integer_value(json_object_get(o, "threads"));
    r->nice = (int)json_integer_value(json_object_get(o, "nice"));
    r->ctx = (int)json_integer_value(json_object_get(o, "ctx"));
    const char *err = json_string_value(json_object_get(o, "error"));
    if (err) {
        snprintf(r->error, sizeof r->error, "%s", err);
        return true;
    }
    r->ok = true;
    r->events = (int)json_integer_value(json_object_get(o, "events"));
#define NUM(f, k) r->f = json_number_value(json_object_get(o, k))
    NUM(p50, "p50_ms"); NUM(p95, "p95_ms"); NUM(p99, "p99_ms"); NUM(mean, "mean_ms");
    NUM(prompt_tok_s, "prompt_tok_s"); NUM(rss_mb, "rss_mb"); NUM(cpu_per_event, "cpu_s_per_event");
    NUM(idle_cpu, "idle_cpu_pct"); NUM(accuracy, "accuracy"); NUM(load_s, "load_s");
#undef NUM
    return true;
}

/* All rows of dir/results.jsonl (n_out rows, nj_malloc'd), or NULL with
 * *n_out = 0 when there is no file yet. */
static bench_row *load_rows(const char *dir, int *n_out) {
    char path[1100];
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    *n_out = 0;
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    int n = 0, cap = 16;
    bench_row *rows = nj_malloc(sizeof *rows * (size_t)cap);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while (rows && (len = getline(&line, &lcap, f)) >= 0) {
        json_t *o = json_loadb(line, (size_t)len, 0, NULL);
        if (o && n == cap) {
            bench_row *nr = nj_realloc(rows, sizeof *rows * (size_t)cap * 2);
            if (!nr) { json_decref(o); break; }
            rows = nr;
            cap *= 2;
        }
        if (o && row_from_json(o, &rows[n])) n++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    *n_out = n;
    return rows;
}

static bool have_row(const bench_row *rows, int n, const char *model, const char *mode, int t, int nice_level,
                     int ctx) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].model, model) && !strcmp(rows[i].mode, mode) && rows[i].threads == t &&
            rows[i].nice == nice_level && rows[i].ctx == ctx)
            return true;
    return false;
}

/* Run one configuration as a child process; its JSON line (or an error
 * row) is appended to results. */
static int spawn_one(const char *exe, const char *model, int t, int nice_level, int ctx, const char *mode,
                     const char *workload, long stride, long limit, double idle_s, FILE *results) {
    char ts[16], ns[16], cs[16], ss[24], ls[24], is[32];
    snprintf(ts, sizeof ts, "%d", t);
    snprintf(ns, sizeof ns, "%d", nice_level);
    snprintf(cs, sizeof cs, "%d", ctx);
    snprintf(ss, sizeof ss, "%ld", stride);
    snprintf(ls, sizeof ls, "%ld", limit);
    snprintf(is, sizeof is, "%g", idle_s);
    char *args[] = {(char *)exe, "bench", "--run-one", "-m", (char *)model, "-t", ts, "--nice", ns, "-c", cs,
                    "--mode", (char *)mode, "-w", (char *)workload, "--stride", ss, "--limit", ls, "--idle", is,
                    NULL};
    int fds[2];
    if (pipe(fds)) return nj_fail(-errno, "bench: pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc) { close(fds[0]); return nj_fail(-rc, "bench: cannot start %s: %s", exe, strerror(rc)); }
    char out[8192];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], out + got, sizeof out - 1 - got)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0) got += (size_t)r;
    close(fds[0]);
    out[got] = 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    json_t *o = json_loadb(out, got, 0, NULL);
    if (!o || !WIFEXITED(status) || WEXITSTATUS(status)) {
        json_decref(o);
        char why[96];
        if (WIFSIGNALED(status)) snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
        else snprintf(why, sizeof why, "exit status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "model", model, "mode", mode, "threads", t, "nice",
                      nice_level, "ctx", ctx, "error", why);
    }
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) : NULL;
    if (s) {
        fprintf(results, "%s\n", s);
        fflush(results);
    }
    nj_free(s);
    json_decref(o);
    return s ? 0 : nj_fail(-ENOMEM, "bench: out of memory");
}

static int report(const char *dir, bool budget, const char *title) {
    int n = 0;
    bench_row *rows = load_rows(dir, &n);
    if (!n) {
        fprintf(stderr, "nightjar bench: no results in %s/results.jsonl\n", dir);
        nj_free(rows);
        return 1;
    }
    bench_print_table(stdout, rows, n, budget);
    int rc = bench_write_report(dir, rows, n, budget, title);
    nj_free(rows);
    if (rc) {
        fprintf(stderr, "nightjar bench: %s\n", nj_last_error());
        return 1;
    }
    fprintf(stderr, "nightjar bench: report in %s/report.md\n", dir);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *models[32], *out_dir = "bench-out", *workload = NULL, *report_dir = NULL;
    int n_models = 0, threads[8] = {2}, n_thr = 1, nices[4] = {10}, n_nice = 1, ctxs[4] = {4096}, n_ctx = 1;
    const char *modes[2] = {"label", NULL};
    int n_modes = 1;
    long stride = 1, limit = -1;
    double idle_s = 5;
    bool budget = false, fresh = false, one = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--budget")) { budget = true; continue; }
        if (!strcmp(a, "--fresh")) { fresh = true; continue; }
        if (!strcmp(a, "--run-one")) { one = true; continue; }
        if (!strcmp(a, "--reduced")) { stride = 24; idle_s = 1; continue; }
        if (!v) { fprintf(stderr, "nightjar bench: %s needs a value\n", a); return 2; }
        i++;
        int bad = 0;
        if (!strcmp(a, "-m")) { if (n_models == 32) bad = 1; else models[n_models++] = v; }
        else if (!strcmp(a, "-t")) bad = (n_thr = parse_list(v, threads, 8, 1, 512)) <= 0;
        else if (!strcmp(a, "--nice")) bad = (n_nice = parse_list(v, nices, 4, 0, 19)) <= 0;
        else if (!strcmp(a, "-c")) bad = (n_ctx = parse_list(v, ctxs, 4, 256, 1 << 20)) <= 0;
        else if (!strcmp(a, "--mode")) {
            n_modes = 0;
            if (strstr(v, "label")) modes[n_modes++] = "label";
            if (strstr(v, "full")) modes[n_modes++] = "full";
            bad = n_modes == 0;
        }
        else if (!strcmp(a, "-w")) workload = v;
        else if (!strcmp(a, "-o")) out_dir = v;
        else if (!strcmp(a, "--report")) report_dir = v;
        else if (!strcmp(a, "--stride")) bad = (stride = atol(v)) < 1;
        else if (!strcmp(a, "--limit")) bad = (limit = atol(v)) == 0 || limit < -1;
        else if (!strcmp(a, "--idle")) bad = !((idle_s = atof(v)) >= 0 && idle_s <= 3600);
        else { fprintf(stderr, "nightjar bench: unknown option %s\n", a); usage(stderr); return 2; }
        if (bad) { fprintf(stderr, "nightjar bench: bad value for %s: '%s'\n", a, v); return 2; }
    }
    event_init();   /* jansson allocates through nj_malloc from here on */
    char def_workload[1100];
    if (!workload) {
        snprintf(def_workload, sizeof def_workload, "%s/eval/commands.jsonl", analyst_data_dir());
        workload = def_workload;
    }
    char title[1400];
    snprintf(title, sizeof title, "Workload %s (stride %ld%s), %d CPUs.", workload, stride,
             limit > 0 ? ", limited" : "", platform_n_cpus());
    if (report_dir) {   /* the sweep's settings are not known here: name the source */
        snprintf(title, sizeof title, "Made again from %s/results.jsonl, %d CPUs.", report_dir, platform_n_cpus());
        return report(report_dir, budget, title);
    }
    if (!n_models) { usage(stderr); return 2; }
    if (one)
        return run_one(models[0], threads[0], nices[0], ctxs[0], modes[0], workload, stride, limit, idle_s);

    char exe[1024];
    if (platform_exe_path(exe, sizeof exe) < 0) {
        fprintf(stderr, "nightjar bench: cannot find my own executable\n");
        return 1;
    }
    if (mkdir(out_dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "nightjar bench: %s: %s\n", out_dir, strerror(errno));
        return 1;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/results.jsonl", out_dir);
    if (fresh) unlink(path);
    int n_done = 0;
    bench_row *done = load_rows(out_dir, &n_done);
    FILE *results = fopen(path, "a");
    if (!results) {
        fprintf(stderr, "nightjar bench: %s: %s\n", path, strerror(errno));
        nj_free(done);
        return 1;
    }
    const int total = n_models * n_thr * n_nice * n_ctx * n_modes;
    const bool tty = isatty(2) != 0;
    int k = 0, skipped = 0;
    double t0 = nj_now();
    for (int mi = 0; mi < n_models; mi++)
        for (int mo = 0; mo < n_modes; mo++)
            for (int ci = 0; ci < n_ctx; ci++)
                for (int ni = 0; ni < n_nice; ni++)
                    for (int ti = 0; ti < n_thr; ti++) {
                        k++;
                        if (have_row(done, n_done, models[mi], modes[mo], threads[ti], nices[ni], ctxs[ci])) {
                            skipped++;
                            continue;
                        }
                        if (tty)
                            fprintf(stderr, "\r\033[K[%d/%d] %s %s t=%d nice=%d ctx=%d  %.0f s", k, total,
                                    models[mi], modes[mo], threads[ti], nices[ni], ctxs[ci], nj_now() - t0);
                        int rc = spawn_one(exe, models[mi], threads[ti], nices[ni], ctxs[ci], modes[mo], workload,
                                           stride, limit, idle_s, results);
                        if (rc) {
                            fprintf(stderr, "\nnightjar bench: %s\n", nj_last_error());
                            fclose(results);
                            nj_free(done);
                            return 1;
                        }
                    }
    if (tty) fprintf(stderr, "\r\033[K");
    if (skipped) fprintf(stderr, "nightjar bench: %d of %d configurations were already measured (resumed)\n",
                         skipped, total);
    fclose(results);
    nj_free(done);
    return report(out_dir, budget, title);
}
