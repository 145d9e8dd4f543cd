/*
 * spool-bench — what the spool's durability costs on this disk.
 *
 *   spool-bench DIR [N]     N events (default 2000) of ~1 KB each
 *
 * Measures, in a fresh spool under DIR: single-event puts (one fsync'd
 * commit each), batched puts (100 events + a source offset per commit),
 * verdicts (commit + one delivery row per sink, two sinks), a delivery
 * round trip (claim 64, mark each delivered), and retention of everything
 * delivered.  Prints events/s and the median and p99 latency per commit.
 */
#include "spool.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *lat, int n, int per) {
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += lat[i];
    printf("%-34s %8.0f items/s   commit p50 %6.2f ms  p99 %6.2f ms\n", what,
           (double)n * per / sum, lat[n / 2] * 1e3, lat[(n * 99) / 100] * 1e3);
}

struct ctx { spool *sp; int64_t seqs[64]; int n; };

static int collect(const spool_delivery *b, size_t n, void *ud) {
    struct ctx *c = ud;
    for (size_t i = 0; i < n; i++) c->seqs[i] = b[i].seq;
    c->n = (int)n;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: spool-bench DIR [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    if (n < 200) n = 200;
    n -= n % 100;
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-%ld.db", argv[1], (long)nj_now_ns());
    static const char *const sinks[] = {"a", "b"};
    spool_opts o = {.sinks = sinks, .n_sinks = 2, .max_age_ms = 1};
    int err;
    spool *sp = spool_open(path, &o, &err);
    if (!sp) {
        fprintf(stderr, "spool-bench: %s\n", nj_last_error());
        return 1;
    }
    char json[1100];
    memset(json, 'x', sizeof json);
    memcpy(json, "{\"raw\":\"", 8);
    memcpy(json + sizeof json - 3, "\"}", 3);
    double *lat = calloc((size_t)n, sizeof *lat);
    int64_t *seqs = calloc((size_t)n * 2, sizeof *seqs);
    char id[32];

    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "single-%d", i);
        double t = nj_now();
        seqs[i] = spool_put_event(sp, id, "bench", json);
        lat[i] = nj_now() - t;
        if (seqs[i] < 0) { fprintf(stderr, "%s\n", nj_last_error()); return 1; }
    }
    report("put_event (1 per commit)", lat, n, 1);

    spool_event_in evs[100];
    char ids[100][32];
    for (int b = 0; b < n / 100; b++) {
        for (int i = 0; i < 100; i++) {
            snprintf(ids[i], sizeof ids[i], "batch-%d", b * 100 + i);
            evs[i] = (spool_event_in){ids[i], "bench", json};
        }
        spool_offset off = {"bench", 1, 2, (uint64_t)(b + 1) * 100 * sizeof json};
        double t = nj_now();
        if (spool_put_events(sp, evs, 100, &off, seqs + n + b * 100) < 0) {
            fprintf(stderr, "%s\n", nj_last_error());
            return 1;
        }
        lat[b] = nj_now() - t;
    }
    report("put_events (100 + offset per commit)", lat, n / 100, 100);

    for (int i = 0; i < n; i++) {
        double t = nj_now();
        if (spool_put_verdict(sp, seqs[i], "{\"verdict\":\"benign\",\"score\":0.1}") != 0) {
            fprintf(stderr, "%s\n", nj_last_error());
            return 1;
        }
        lat[i] = nj_now() - t;
    }
    report("put_verdict (+2 delivery rows)", lat, n, 1);

    int rounds = 0;
    for (;;) {
        struct ctx c = {.sp = sp};
        double t = nj_now();
        int k = spool_next_delivery(sp, "a", spool_now_ms(), 64, collect, &c);
        if (k <= 0) break;
        for (int i = 0; i < c.n; i++) spool_mark_delivered(sp, "a", c.seqs[i]);
        lat[rounds++] = nj_now() - t;
    }
    report("deliver round (claim 64 + 64 marks)", lat, rounds, 64);

    spool_stats st;
    spool_stats_get(sp, &st);
    printf("file %.1f MB (db pages %.1f MB) for %lld events\n", st.file_bytes / 1e6,
           st.db_bytes / 1e6, (long long)(st.events_pending + st.events_judged));
    double t = nj_now();
    int del = spool_retain(sp, spool_now_ms() + 1000);
    (void)del;
    /* Sink b never delivered: nothing may go. */
    printf("retain with one sink undelivered: %d deleted in %.1f ms\n", del, (nj_now() - t) * 1e3);
    for (;;) {
        struct ctx c = {.sp = sp};
        if (spool_next_delivery(sp, "b", spool_now_ms(), 64, collect, &c) <= 0) break;
        for (int i = 0; i < c.n; i++) spool_mark_delivered(sp, "b", c.seqs[i]);
    }
    t = nj_now();
    del = spool_retain(sp, spool_now_ms() + 1000);
    spool_stats_get(sp, &st);
    printf("retain after all delivered: %d deleted in %.1f ms, file now %.2f MB\n", del,
           (nj_now() - t) * 1e3, st.file_bytes / 1e6);
    spool_close(sp);
    free(lat);
    free(seqs);
    return 0;
}
