/* guard-check — how often the prompt-injection guard (src/analyst/guard.h)
 * hides text in ordinary commands: reads JSON lines with a "cmd" field and
 * prints every command where instruction-like text was found, then counts.
 *
 *   build/tools/guard-check FILE.jsonl...
 *   build/tools/guard-check --pairs eval/injection.jsonl
 *
 * With --pairs: for each injection case (a base event and the same event
 * with injected text), did the guard find instruction-like text in the
 * injected event (it is flagged) or cut it as a shell comment (the cases
 * where neither are printed), and is
 * the model's view of it (the guard's copy, rendered as the prompt renders
 * it) the same as the base's?  (Often not even when the text was found:
 * an injected working directory or user name leaves a different value.)
 *
 * A false positive costs little (the model does not read a few words of a
 * command; rules still do), but it should be rare: this is how we know. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "guard.h"
#include "render.h"

static int view_of(const json_t *ev, rbuf *out, int *hidden) {
    int err = 0;
    json_t *v = guard_event(ev, hidden, &err);
    if (!v) return err;
    rbuf_reset(out);
    int rc = render_event(out, v, false);
    json_decref(v);
    return rc;
}

static int pairs(const char *path) {
    FILE *in = fopen(path, "r");
    if (!in) { perror(path); return 1; }
    event_init();
    char *line = NULL;
    size_t cap = 0;
    long n[2] = {0}, same[2] = {0}, flagged[2] = {0};
    rbuf a = {0}, b = {0};
    while (getline(&line, &cap, in) > 0) {
        json_t *row = json_loads(line, 0, NULL);
        const char *set = json_string_value(json_object_get(row, "set"));
        int k = set && !strcmp(set, "B");
        int ha = 0, hb = 0;
        if (!row || view_of(json_object_get(row, "base"), &a, &ha) || view_of(json_object_get(row, "injected"), &b, &hb)) {
            fprintf(stderr, "guard-check: %s: a case that does not render\n", path);
            return 1;
        }
        n[k]++;
        /* kept from the model: found as instruction-like text, or cut as
         * a shell comment */
        const char *where = json_string_value(json_object_get(row, "where"));
        bool kept = hb > 0 || (where && !strcmp(where, "cmdline comment"));
        flagged[k] += kept;
        if (a.len == b.len && !memcmp(a.s, b.s, a.len)) same[k]++;
        if (!kept)
            printf("case %lld (set %s, %s, %s): not found; the model reads\n%.*s\n",
                    json_integer_value(json_object_get(row, "case")), k ? "B" : "A",
                    json_string_value(json_object_get(row, "where")), json_string_value(json_object_get(row, "payload")),
                    (int)b.len, b.s);
        json_decref(row);
    }
    free(line);
    fclose(in);
    rbuf_free(&a);
    rbuf_free(&b);
    for (int k = 0; k < 2; k++)
        if (n[k])
            printf("set %c: %ld cases, the injected text kept from the model in %ld (%.1f%%); the model's view "
                   "equals the base's in %ld\n", "AB"[k], n[k], flagged[k], 100.0 * flagged[k] / n[k], same[k]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--pairs")) return pairs(argv[2]);
    if (argc < 2) {
        fprintf(stderr, "usage: guard-check FILE.jsonl...\n");
        return 2;
    }
    if (guard_init()) return 1;
    long n = 0, hit = 0, comments = 0;
    rbuf out = {0};
    for (int f = 1; f < argc; f++) {
        FILE *in = fopen(argv[f], "r");
        if (!in) { perror(argv[f]); return 1; }
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, in) > 0) {
            json_t *row = json_loads(line, 0, NULL);
            const char *cmd = json_string_value(json_object_get(row, "cmd"));
            if (cmd) {
                n++;
                guard_span sp[GUARD_MAX_SPANS];
                int ns = guard_scan(cmd, strlen(cmd), true, sp, GUARD_MAX_SPANS);
                int instr = 0, com = 0;
                for (int i = 0; i < ns; i++) sp[i].comment ? com++ : instr++;
                comments += com > 0;
                if (instr > 0) {
                    hit++;
                    rbuf_reset(&out);
                    guard_clean(&out, cmd, strlen(cmd), sp, ns);
                    printf("%s: %s\n  -> %.*s\n", argv[f], cmd, (int)out.len, out.s ? out.s : "");
                }
            }
            json_decref(row);
        }
        free(line);
        fclose(in);
    }
    rbuf_free(&out);
    printf("%ld commands: instruction-like text in %ld (%.2f%%), a shell comment in %ld\n", n, hit,
           n ? 100.0 * hit / n : 0.0, comments);
    return 0;
}
