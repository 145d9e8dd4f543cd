/*
 * parse-dump — runs one parser over a file and prints the canonical events
 * (one compact JSON per line, stable key order) on stdout and the rejected
 * lines on stderr ("LINE: reason").  Used to inspect parser output and to
 * write the expected files beside the test fixtures.
 *
 *   parse-dump FORMAT FILE [OPTS.json]
 *
 * OPTS.json may set reference_time (RFC 3339), tz_offset_min, agg_window,
 * agg_threshold, reorder, max_pending, mapping_file, host, no_raw; the
 * same sidecar format the fixture tests read (tests/data/events/README.md).
 */
#include "parse.h"
#include "event.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int emit(void *ctx, json_t *ev) {
    (void)ctx;
    char *s = event_dump(ev, NULL);
    if (s) { puts(s); nj_free(s); }
    json_decref(ev);
    return 0;
}

static void on_error(void *ctx, const char *src, long line, const char *reason) {
    (void)ctx; (void)src;
    fprintf(stderr, "%ld: %s\n", line, reason);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: parse-dump FORMAT FILE [OPTS.json]\n");
        return 2;
    }
    event_init();
    const char *base = strrchr(argv[2], '/');
    parser_opts o = {.emit = emit, .on_error = on_error, .source_name = base ? base + 1 : argv[2]};
    json_t *oj = NULL;
    if (argc > 3) {
        json_error_t je;
        oj = json_load_file(argv[3], 0, &je);
        if (!oj) { fprintf(stderr, "parse-dump: %s: %s\n", argv[3], je.text); return 2; }
        const char *rt = json_string_value(json_object_get(oj, "reference_time"));
        if (rt) { long us; event_time_parse(rt, strlen(rt), &o.reference_time, &us); }
        o.tz_offset_min = (int)json_integer_value(json_object_get(oj, "tz_offset_min"));
        o.agg_window = (int)json_integer_value(json_object_get(oj, "agg_window"));
        o.agg_threshold = (int)json_integer_value(json_object_get(oj, "agg_threshold"));
        o.reorder = (int)json_integer_value(json_object_get(oj, "reorder"));
        o.max_pending = (int)json_integer_value(json_object_get(oj, "max_pending"));
        o.mapping_file = json_string_value(json_object_get(oj, "mapping_file"));
        o.host = json_string_value(json_object_get(oj, "host"));
        o.no_raw = json_is_true(json_object_get(oj, "no_raw"));
    }
    int err = 0;
    parser *p = parser_new(argv[1], &o, &err);
    if (!p) { fprintf(stderr, "parse-dump: %s\n", nj_last_error()); return 2; }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 2; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long ln = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (parser_feed(p, line, (size_t)n, ++ln)) fprintf(stderr, "parse-dump: %s\n", nj_last_error());
    }
    parser_flush(p);
    free(line);
    fclose(f);
    parser_free(p);
    json_decref(oj);
    return 0;
}
