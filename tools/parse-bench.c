/*
 * parse-bench — single-thread throughput of each event parser over the
 * fixture data, repeated: lines/s, events/s and MB/s for parse + validate +
 * serialise (event_dump, as the spool will), one fresh parser per pass so
 * auditd serials and sshd windows start clean.
 *
 *   parse-bench [--data DIR] [--min-seconds S] [FORMAT...]
 *
 * DIR defaults to tests/data/events; every fixture of a format (not the
 * expected/errors/opts files) is concatenated into one in-memory input.
 * Each format runs for at least S seconds (default 1.0).  Both wall-clock
 * and CPU-time rates are printed: on a shared machine the CPU-time figure
 * is the parser's own speed.  Goal: >= 50,000 lines/s per source on one
 * laptop core.
 */
#include "parse.h"
#include "event.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long g_events;

static int emit(void *ctx, json_t *ev) {
    (void)ctx;
    char *s = event_dump(ev, NULL);
    nj_free(s);
    json_decref(ev);
    g_events++;
    return 0;
}

static bool skip(const char *name) {
    const char *suf[] = {".expected.jsonl", ".errors", ".opts.json", ".mapping.json", ".md"};
    size_t n = strlen(name);
    for (size_t i = 0; i < NJ_ARRAY_LEN(suf); i++) {
        size_t k = strlen(suf[i]);
        if (n >= k && !strcmp(name + n - k, suf[i])) return true;
    }
    return name[0] == '.';
}

/* Concatenates the fixtures of dir/format into one buffer. */
static char *load(const char *dir, const char *fmt, size_t *len, long *lines) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, fmt);
    DIR *d = opendir(path);
    if (!d) return NULL;
    char *buf = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (skip(e->d_name)) continue;
        char fp[2048];
        snprintf(fp, sizeof fp, "%s/%s", path, e->d_name);
        FILE *f = fopen(fp, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = realloc(buf, n + (size_t)sz + 2);
        if (fread(buf + n, 1, (size_t)sz, f) != (size_t)sz) { fclose(f); continue; }
        n += (size_t)sz;
        if (n && buf[n - 1] != '\n') buf[n++] = '\n';
        fclose(f);
    }
    closedir(d);
    *lines = 0;
    for (size_t i = 0; i < n; i++) *lines += buf[i] == '\n';
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    const char *dir = "tests/data/events";
    double min_s = 1.0;
    const char *fmts[16];
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--min-seconds") && i + 1 < argc) min_s = atof(argv[++i]);
        else if (nf < 16) fmts[nf++] = argv[i];
    }
    if (!nf) {
        static const char *all[] = {"auditd", "sshd", "eslogger", "osquery", "sysmon", "jsonl"};
        for (size_t i = 0; i < NJ_ARRAY_LEN(all); i++) fmts[nf++] = all[i];
    }
    event_init();
    char mapping[1100];
    snprintf(mapping, sizeof mapping, "%s/jsonl/edr-export.mapping.json", dir);
    printf("%-9s %6s %7s %10s %12s %12s %8s\n", "format", "lines", "passes", "lines/s", "lines/cpu-s", "events/cpu-s",
           "MB/cpu-s");
    int rc = 0;
    for (int f = 0; f < nf; f++) {
        size_t len;
        long lines;
        char *buf = load(dir, fmts[f], &len, &lines);
        if (!buf || !lines) { fprintf(stderr, "parse-bench: no data for %s in %s\n", fmts[f], dir); rc = 1; continue; }
        parser_opts o = {.emit = emit, .source_name = "bench", .reference_time = 1796637600,
                         .mapping_file = mapping};
        g_events = 0;
        long passes = 0, fed = 0;
        double t0 = nj_now(), t;
        clock_t c0 = clock();
        do {
            int err = 0;
            parser *p = parser_new(fmts[f], &o, &err);
            if (!p) { fprintf(stderr, "parse-bench: %s: %s\n", fmts[f], nj_last_error()); return 1; }
            size_t i = 0;
            long ln = 0;
            while (i < len) {
                const char *e = memchr(buf + i, '\n', len - i);
                size_t l = e ? (size_t)(e - (buf + i)) + 1 : len - i;
                parser_feed(p, buf + i, l, ++ln);
                i += l;
            }
            parser_flush(p);
            parser_free(p);
            fed += ln;
            passes++;
            t = nj_now() - t0;
        } while (t < min_s);
        double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
        if (cpu <= 0) cpu = t;
        printf("%-9s %6ld %7ld %10.0f %12.0f %12.0f %8.1f\n", fmts[f], lines, passes, fed / t, fed / cpu,
               g_events / cpu, (double)len * passes / cpu / 1e6);
        free(buf);
    }
    return rc;
}
