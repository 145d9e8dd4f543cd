/*
 * fuzz/parse_common.h — the body shared by the fuzz/parse_<fmt>.c targets:
 * one parser of format FUZZ_FORMAT fed the input line by line.
 *
 * Properties checked on every input:
 *   - parser_feed/parser_flush return 0, -ENOMEM or nothing else (emit
 *     never fails here), and every malformed line is reported with a
 *     non-empty reason and a line number in range;
 *   - every emitted event validates against the canonical schema and
 *     serialises (event_dump) to JSON that event_parse accepts;
 *   - parser_free leaves nj_mem_in_use() where it started (no leak).
 * The first input byte picks options (auditd reorder window and pending
 * bound, sshd aggregation, tz offset) so small bounds get exercised too.
 */
#ifndef NJ_FUZZ_PARSE_COMMON_H
#define NJ_FUZZ_PARSE_COMMON_H

#include "parse.h"
#include "event.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long g_lines;

static int fz_emit(void *ctx, json_t *ev) {
    (void)ctx;
    if (event_validate(ev) != 0) abort();
    char *s = event_dump(ev, NULL);
    if (s) {
        int err = 0;
        json_t *back = event_parse(s, strlen(s), &err);
        if (!back && err != -ENOMEM) abort();
        json_decref(back);
        nj_free(s);
    }
    json_decref(ev);
    return 0;
}

static void fz_error(void *ctx, const char *src, long line, const char *reason) {
    (void)ctx; (void)src;
    if (!reason || !reason[0] || line < 1 || line > g_lines) abort();
}

#ifndef FUZZ_MAPPING
#define FUZZ_MAPPING NULL
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    event_init();
    uint8_t sel = data[0];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    size_t before = nj_mem_in_use();
    parser_opts o = {.emit = fz_emit, .on_error = fz_error, .source_name = "fuzz",
                     .reference_time = 1796637600, .tz_offset_min = (sel & 1) ? 90 : 0,
                     .reorder = 1 + (sel >> 1) % 4, .max_pending = 1 + (sel >> 3) % 8,
                     .agg_threshold = (sel & 0x40) ? -1 : 1 + (sel >> 3) % 3, .agg_window = 1 + (sel >> 5),
                     .proc_capacity = 1 + (sel >> 2) % 16, .mapping_json = FUZZ_MAPPING};
    int err = 0;
    parser *p = parser_new(FUZZ_FORMAT, &o, &err);
    if (!p) abort();
    g_lines = 0;
    for (size_t i = 0; i < n; i++) g_lines += text[i] == '\n';
    g_lines++;
    long ln = 0;
    size_t i = 0;
    while (i < n) {
        const char *e = memchr(text + i, '\n', n - i);
        size_t len = e ? (size_t)(e - (text + i)) + 1 : n - i;
        char *line = malloc(len ? len : 1);          /* exact size: overreads hit the redzone */
        if (!line) break;
        memcpy(line, text + i, len);
        int rc = parser_feed(p, line, len, ++ln);
        free(line);
        if (rc && rc != -ENOMEM) {
            fprintf(stderr, "feed line %ld: %d %s\n", ln, rc, nj_last_error());
            abort();
        }
        i += len;
    }
    int rc = parser_flush(p);
    if (rc && rc != -ENOMEM) abort();
    parser_free(p);
    if (nj_mem_in_use() != before) abort();
    return 0;
}

#endif
