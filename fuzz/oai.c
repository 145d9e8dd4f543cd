/*
 * fuzz/oai — libFuzzer target for the request-body parser of `nightjar serve`
 * (oai_parse) and for the response builders fed with arbitrary bytes.
 *
 * Properties checked:
 *   - any body is either accepted or refused with NJ_EFORMAT/-EINVAL/-ENOMEM
 *     and a non-empty message; accepted requests have consistent fields
 *     (messages with role and content, stop strings non-empty and bounded);
 *   - oai_parse/oai_request_free leak nothing (nj_mem_in_use returns to its
 *     starting value);
 *   - the builders turn arbitrary bytes (invalid UTF-8 included) into JSON
 *     that jansson parses back, and nj_utf8_complete never grows the text.
 * Built and run by scripts/fuzz (clang -fsanitize=fuzzer); the first byte
 * picks the endpoint (chat or completion).  Needs -ljansson at link time.
 */
#include "oai.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_json(const char *s, size_t n, size_t skip) {
    if (!s) return;                     /* out of memory is allowed */
    json_error_t e;
    json_t *j = json_loadb(s + skip, n - skip - (skip ? 2 : 0), JSON_ALLOW_NUL, &e);
    if (!j) abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    oai_init();
    int kind = data[0] & 1 ? OAI_COMPLETION : OAI_CHAT;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char *copy = malloc(len ? len : 1);          /* exact size: overreads hit the redzone */
    if (!copy) return 0;
    memcpy(copy, body, len);

    size_t before = nj_mem_in_use();
    oai_request r;
    char msg[512] = "";
    int rc = oai_parse(kind, copy, len, &r, msg, sizeof msg);
    if (rc) {
        if (rc != NJ_EFORMAT && rc != -EINVAL && rc != -ENOMEM) abort();
        if (!msg[0]) abort();
    } else {
        if (kind == OAI_CHAT) {
            if (r.n_msgs < 1) abort();
            for (int i = 0; i < r.n_msgs; i++)
                if (!r.msgs[i].role || !r.msgs[i].content) abort();
        } else if (!r.prompt) {
            abort();
        }
        for (int i = 0; i < r.n_stop; i++)
            if (r.stop_len[i] == 0 || r.stop_len[i] > OAI_MAX_STOP_LEN || strlen(r.stop[i]) != r.stop_len[i]) abort();
        if (r.priority < 0 || r.priority >= OAI_NPRIO) abort();
    }
    oai_request_free(&r);
    if (nj_mem_in_use() != before) abort();

    /* builders on raw bytes */
    if (nj_utf8_complete(copy, len) > len) abort();
    oai_ident id = {"chatcmpl-0", 0, "m"};
    oai_usage u = {1, 2, 0};
    size_t n = 0;
    char *s = oai_response_json(kind, &id, copy, len, "stop", &u, &n);
    check_json(s, n, 0);
    nj_free(s);
    s = oai_chunk_sse(kind, &id, copy, len, true, NULL, NULL, &n);
    check_json(s, n, 6);
    nj_free(s);
    free(copy);
    return 0;
}
