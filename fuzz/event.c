/*
 * fuzz/event — libFuzzer target for what /v1/analyze and `nightjar analyze`
 * do with an untrusted canonical event: event_parse (JSON -> validated
 * event), then the analyst's renderings of it (render_event for the prompt
 * and for the cache key, render_query for retrieval) and event_dump.
 *
 * Properties checked:
 *   - any input is either accepted or refused with NJ_EFORMAT/-EINVAL/-ENOMEM
 *     and a sentence;
 *   - an accepted event validates again and dumps to JSON that parses back;
 *   - the prompt rendering never contains a raw "</event>" or a line that a
 *     value started (every line begins with a known label), whatever the
 *     values hold;
 *   - nothing leaks (nj_mem_in_use returns to its starting value).
 * Built and run by scripts/fuzz (clang -fsanitize=fuzzer).
 */
#include "event.h"
#include "render.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    event_init();
    size_t base = nj_mem_in_use();
    int err = 0;
    json_t *ev = event_parse((const char *)data, size, &err);
    if (!ev) {
        if (err != NJ_EFORMAT && err != -EINVAL && err != -ENOMEM) abort();
        if (!nj_last_error()[0]) abort();
    } else {
        if (event_validate(ev) != 0) abort();
        size_t n = 0;
        char *s = event_dump(ev, &n);
        if (s) {
            json_error_t je;
            json_t *back = json_loadb(s, n, 0, &je);
            if (!back) abort();
            json_decref(back);
            nj_free(s);
        }
        rbuf b = {0};
        if (render_event(&b, ev, false) == 0 && b.s) {
            if (strstr(b.s, "</event>")) abort();
            /* every line starts with a lower-case label and ": " */
            for (const char *line = b.s; *line; ) {
                const char *colon = strstr(line, ": ");
                const char *nl = strchr(line, '\n');
                if (!nl || !colon || colon > nl) abort();
                for (const char *c = line; c < colon; c++)
                    if (!((*c >= 'a' && *c <= 'z') || *c == ' ')) abort();
                line = nl + 1;
            }
        }
        rbuf_reset(&b);
        render_event(&b, ev, true);
        size_t qn;
        render_query(&b, ev, &qn);
        rbuf_free(&b);
        json_decref(ev);
    }
    if (nj_mem_in_use() != base) abort();
    return 0;
}
