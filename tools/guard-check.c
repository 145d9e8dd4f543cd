/* guard-check — how often the prompt-injection guard (src/analyst/guard.h)
 * hides text in ordinary commands: reads JSON lines with a "cmd" field and
 * prints every command where instruction-like text was found, then counts.
 *
 *   build/tools/guard-check FILE.jsonl...
 *
 * A false positive costs little (the model does not read a few words of a
 * command; rules still do), but it should be rare: this is how we know. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "render.h"

int main(int argc, char **argv) {
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
