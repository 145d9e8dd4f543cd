/*
 * fuzz/guard — libFuzzer target for the prompt-injection guard: guard_scan
 * and guard_clean on arbitrary bytes (every event string reaches them), with
 * and without shell-comment handling, and guard_event on the bytes wrapped as
 * a canonical event's command line and user name.
 *
 * Properties: spans are sorted, disjoint, non-empty and inside the value;
 * the same scan twice gives the same spans; the cleaned text is never longer
 * than the input, and cleaning with no spans gives the input back;
 * guard_event either returns a view or fails with -ENOMEM.
 */
#include "guard.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool shell = data[0] & 1;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    guard_span a[GUARD_MAX_SPANS], b[GUARD_MAX_SPANS];
    int na = guard_scan(s, n, shell, a, GUARD_MAX_SPANS);
    if (na < 0) abort();
    int nb = guard_scan(s, n, shell, b, GUARD_MAX_SPANS);
    if (nb != na) abort();
    for (int i = 0; i < na; i++)   /* field by field: the struct has padding */
        if (a[i].start != b[i].start || a[i].end != b[i].end || a[i].comment != b[i].comment) abort();
    for (int i = 0; i < na; i++) {
        if (a[i].start >= a[i].end || a[i].end > n) abort();
        if (i && a[i - 1].end >= a[i].start) abort();
    }
    rbuf r = {0};
    guard_clean(&r, s, n, a, na);
    if (!r.oom && r.len > n) abort();
    rbuf_reset(&r);
    guard_clean(&r, s, n, a, 0);
    if (!r.oom && (r.len != n || (n && memcmp(r.s, s, n)))) abort();
    rbuf_free(&r);

    json_t *ev = json_pack("{s:i, s:s, s:s, s:{s:s%}, s:{s:s%}}", "v", 1, "id", "f", "kind", "exec", "user", "name",
                           s, n, "process", "cmdline", s, n);
    if (ev) {   /* NULL when the bytes are not UTF-8: jansson refuses them */
        int hidden = 0, err = 0;
        json_t *v = guard_event(ev, &hidden, &err);
        if (!v && err != -ENOMEM) abort();
        json_decref(v);
        json_decref(ev);
    }
    return 0;
}
