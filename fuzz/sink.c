/*
 * fuzz/sink — libFuzzer target for what the sinks parse or rewrite:
 *   0  sink_spec_parse (spec strings from the configuration),
 *   1  sink_payload + sbuf_json_ascii (verdict JSON rewritten for sending),
 *   2  webhook_parse_bulk (an Elastic _bulk response: from the network).
 * The first byte picks the parser (mod 3); for _bulk the second byte is
 * the number of items the request had (mod 9).
 *
 * Properties checked:
 *   - specs are accepted or refused with -EINVAL/-ENOMEM and a message;
 *     an accepted spec has a name with its kind's prefix and fields in
 *     range; parse + free leaks nothing;
 *   - a payload has no raw line breaks; if the input parsed as a JSON
 *     object, the payload and its ASCII form parse too (with "redelivery":
 *     true when asked), and the ASCII form is 7-bit clean;
 *   - every _bulk item gets a valid status and a terminated message.
 * Specs containing token_file= are skipped (it would read arbitrary files).
 * Built and run by scripts/fuzz; needs -ljansson -lcurl at link time.
 */
#include "sink.h"
#include "sink_impl.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_spec(const char *s) {
    if (strstr(s, "token_file")) return;
    size_t base = nj_mem_in_use();
    sink_spec sp;
    int rc = sink_spec_parse(s, &sp);
    if (rc == 0) {
        static const char *const prefix[] = {"", "jsonl:", "syslog:", "webhook:"};
        if (!sp.name || sp.kind < SINK_JSONL || sp.kind > SINK_WEBHOOK) abort();
        if (strncmp(sp.name, prefix[sp.kind], strlen(prefix[sp.kind]))) abort();
        if (sp.kind == SINK_SYSLOG && (sp.facility < 0 || sp.facility > 23 || sp.severity < 0 ||
                                       sp.severity > 7 || !sp.app || !sp.sd_id ||
                                       (sp.transport != SINK_UNIX && (sp.port < 1 || sp.port > 65535))))
            abort();
        if (sp.kind == SINK_WEBHOOK && (!sp.url || (sp.preset == SINK_SPLUNK && !sp.token)))
            abort();
        if (sp.name && strchr(sp.name, '@') && sp.kind == SINK_WEBHOOK && strstr(sp.name, "://")) {
            /* credentials never reach the name (an '@' may remain in a path) */
            const char *h = strstr(sp.name, "://") + 3;
            const char *at = strchr(h, '@');
            if (at && at < h + strcspn(h, "/?#")) abort();
        }
        sink_spec_free(&sp);
    } else if ((rc != -EINVAL && rc != -ENOMEM) || !nj_last_error()[0]) {
        abort();
    }
    if (nj_mem_in_use() != base) abort();
}

static void fuzz_payload(const char *s, size_t n, bool redelivery) {
    spool_delivery d = {.seq = 1, .verdict_json = s, .redelivery = redelivery};
    char *out = NULL;
    size_t len = 0;
    json_t *in = json_loadb(s, n, 0, NULL);
    if (sink_payload(&d, &out, &len) != 0) {
        if (json_is_object(in)) abort(); /* an object is always accepted */
        json_decref(in);
        return;
    }
    if (strlen(out) != len || memchr(out, '\n', len) || memchr(out, '\r', len)) abort();
    sbuf b = {0};
    sbuf_json_ascii(&b, out, len);
    for (size_t i = 0; !b.oom && i < b.len; i++)
        if ((unsigned char)b.p[i] >= 0x80) abort();
    if (json_is_object(in) && !memchr(s, 0, n)) {
        json_t *o = json_loadb(out, len, 0, NULL);
        json_t *a = b.oom ? NULL : json_loadb(b.p, b.len, 0, NULL);
        if (!o || (!b.oom && !a)) abort();
        if (redelivery && !strstr(s, "redelivery") && !json_is_true(json_object_get(o, "redelivery")))
            abort();
        json_decref(o);
        json_decref(a);
    }
    json_decref(in);
    sbuf_free(&b);
    nj_free(out);
}

static void fuzz_bulk(const char *s, size_t n, size_t items) {
    sink_result res[8];
    memset(res, 0x55, sizeof res);
    webhook_parse_bulk(s, n, items, res);
    for (size_t i = 0; i < items; i++) {
        if (res[i].status < SINK_OK || res[i].status > SINK_PERMANENT) abort();
        if (!memchr(res[i].error, 0, sizeof res[i].error)) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static int once;
    if (!once) { json_set_alloc_funcs(nj_malloc, nj_free); once = 1; }
    int which = data[0] % 3;
    size_t n = size - 2;
    char *copy = malloc(n + 1); /* exact size + NUL: overreads hit the redzone */
    if (!copy) return 0;
    memcpy(copy, data + 2, n);
    copy[n] = 0;
    if (which == 0) fuzz_spec(copy);
    else if (which == 1) fuzz_payload(copy, strlen(copy), data[1] & 1);
    else fuzz_bulk(copy, n, data[1] % 9);
    free(copy);
    return 0;
}
