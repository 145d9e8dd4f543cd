/*
 * sigma-hits — which rules hit which event, one line per event, for
 * comparing two builds of the matcher (or two rule sets) with diff.
 *
 *   sigma-hits [-r RULES_PATH]... FILE...
 *
 * Each FILE is JSON lines.  A line with "cmd" (a labelled command line, as in
 * eval/commands.jsonl) is matched three times, as a bare command line, as an
 * auditd exec event and as an eslogger exec event, so that rules of every
 * exec logsource see it; any other object is taken as a canonical event
 * (contract v1) and matched once with sigma_match_event.  Output:
 *
 *   FILE:LINE[:VARIANT] N id id ...
 *
 * where N is the number of rules that hit and the ids are the rule ids (or
 * titles when a rule has no id) in rule order.  Lines that are not JSON
 * objects print "FILE:LINE -".  Without -r: rules/nightjar.
 */
#include "event.h"
#include "sigma.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAXHIT = 256 };

/* A canonical exec event for command line CMD seen through FORMAT
 * ("cmdline", "auditd" or "eslogger"). */
static json_t *event_of(const char *cmd, const char *format) {
    json_t *ev = json_pack("{s:i, s:s, s:s, s:s, s:{s:s}, s:{s:s, s:i, s:i}, s:{s:s, s:i}, s:{s:s}}", "v", 1,
                           "id", "x", "kind", "exec", "time", "2026-01-01T00:00:00Z", "source", "format", format,
                           "process", "cmdline", cmd, "pid", 4242, "ppid", 4241, "user", "name", "alice", "uid",
                           1000, "parent", "path", "/bin/bash");
    /* argv as the analyst splits a bare command line, path its first word */
    if (ev) event_finish(ev);
    json_t *proc = json_object_get(ev, "process"), *argv = json_object_get(proc, "argv");
    if (json_array_size(argv)) json_object_set(proc, "path", json_array_get(argv, 0));
    if (ev && !strcmp(format, "auditd")) {
        /* An EXECVE record as the raw text, as the auditd reader keeps it. */
        size_t cap = strlen(cmd) * 2 + 256, w = 0;
        char *raw = malloc(cap);
        if (raw) {
            w += (size_t)snprintf(raw + w, cap - w, "type=EXECVE msg=audit(1.1:1): argc=%zu", json_array_size(argv));
            for (size_t i = 0; i < json_array_size(argv) && w < cap; i++)
                w += (size_t)snprintf(raw + w, cap - w, " a%zu=\"%s\"", i, json_string_value(json_array_get(argv, i)));
            json_object_set_new(ev, "raw", json_string(raw));
            free(raw);
        }
    }
    return ev;
}

static void print_hits(const sigma_rules *rs, const char *tag, const sigma_hit *h, int n) {
    printf("%s %d", tag, n);
    for (int i = 0; i < n && i < 64; i++) {     /* sigma_match_event keeps 64 */
        const sigma_rule_info *r = sigma_rule(rs, h[i].rule);
        printf(" %s", r->id[0] ? r->id : r->title);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    if (!rs) return 1;
    int a = 1, loaded = 0;
    for (; a + 1 < argc && !strcmp(argv[a], "-r"); a += 2, loaded++)
        if (sigma_load_path(rs, argv[a + 1]) < 0) {
            fprintf(stderr, "sigma-hits: %s\n", nj_last_error());
            return 1;
        }
    if (!loaded && sigma_load_path(rs, "rules/nightjar") < 0) {
        fprintf(stderr, "sigma-hits: %s\n", nj_last_error());
        return 1;
    }
    if (a >= argc) {
        fprintf(stderr, "usage: sigma-hits [-r RULES_PATH]... FILE...\n");
        return 2;
    }
    static sigma_hit h[MAXHIT];
    for (; a < argc; a++) {
        FILE *f = fopen(argv[a], "r");
        if (!f) { fprintf(stderr, "sigma-hits: cannot open %s\n", argv[a]); return 1; }
        char *line = NULL;
        size_t cap = 0;
        long ln = 0;
        char tag[1200];
        while (getline(&line, &cap, f) > 0) {
            ln++;
            json_error_t je;
            json_t *j = json_loads(line, 0, &je);
            if (!json_is_object(j)) {
                printf("%s:%ld -\n", argv[a], ln);
                json_decref(j);
                continue;
            }
            const char *cmd = json_string_value(json_object_get(j, "cmd"));
            if (cmd) {
                static const char *const formats[] = {"cmdline", "auditd", "eslogger"};
                for (size_t k = 0; k < NJ_ARRAY_LEN(formats); k++) {
                    json_t *ev = event_of(cmd, formats[k]);
                    if (!ev) return 1;
                    snprintf(tag, sizeof tag, "%s:%ld:%s", argv[a], ln, formats[k]);
                    print_hits(rs, tag, h, sigma_match_event(rs, ev, h, MAXHIT));
                    json_decref(ev);
                }
            } else {
                snprintf(tag, sizeof tag, "%s:%ld", argv[a], ln);
                print_hits(rs, tag, h, sigma_match_event(rs, j, h, MAXHIT));
            }
            json_decref(j);
        }
        free(line);
        fclose(f);
    }
    sigma_rules_free(rs);
    return 0;
}
