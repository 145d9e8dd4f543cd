/*
 * fuzz/remote — libFuzzer target for what a remote backend answers (from
 * the network): analyst_remote_answer over a nightjar /v1/analyze verdict
 * or an OpenAI chat completion (content and logprobs).  The first byte
 * picks the backend kind (bit 0) and the rules' floor (bits 1-2, mod 3);
 * the rest is the answer.
 *
 * Properties checked: an answer is refused (NJ_EFORMAT / -ENOMEM) or makes
 * a verdict whose label is one of the three and never below the floor,
 * whose confidence (and scores, when given) lie in [0, 1], whose
 * techniques are ATT&CK-shaped (at most 8), whose summary is at most 400
 * bytes, whose source is "remote"; nothing leaks.
 * Built and run by scripts/fuzz (run from the repository root: the
 * analyst loads prompts/ from the data folder).
 */
#include "analyst.h"
#include "event.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static analyst *g_a[2];

static analyst *get(int kind) {
    if (!g_a[kind]) {
        analyst_opts o = {.backend = kind ? "openai+http://127.0.0.1:9" : "nightjar+http://127.0.0.1:9",
                          .backend_model = "m", .no_retrieval = true, .no_rules = true};
        int err = 0;
        g_a[kind] = analyst_new(&o, &err);
        if (!g_a[kind]) abort();   /* run from the repository root */
    }
    return g_a[kind];
}

static bool in01(const json_t *x) {
    return json_is_number(x) && json_number_value(x) >= 0 && json_number_value(x) <= 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int kind = data[0] & 1, floor = ((data[0] >> 1) & 3) % 3;
    analyst *a = get(kind);
    size_t base = nj_mem_in_use();
    json_t *v = NULL;
    int rc = analyst_remote_answer(a, (const char *)data + 1, size - 1, floor, &v);
    if (rc == 0) {
        if (!v) abort();
        const char *lab = json_string_value(json_object_get(v, "verdict"));
        int l = -1;
        for (int k = 0; k < AV_NLABELS; k++)
            if (lab && !strcmp(lab, analyst_label_names[k])) l = k;
        if (l < floor) abort();
        if (!in01(json_object_get(v, "confidence"))) abort();
        json_t *sc = json_object_get(v, "scores");
        if (sc)
            for (int k = 0; k < AV_NLABELS; k++)
                if (!in01(json_object_get(sc, analyst_label_names[k]))) abort();
        json_t *t = json_object_get(v, "techniques");
        if (!json_is_array(t) || json_array_size(t) > 8) abort();
        size_t i;
        json_t *x;
        json_array_foreach(t, i, x) {
            const char *s = json_string_value(x);
            if (!s || s[0] != 'T' || (strlen(s) != 5 && strlen(s) != 9)) abort();
        }
        const char *sum = json_string_value(json_object_get(v, "summary"));
        if (!sum || strlen(sum) > 400) abort();
        if (strcmp(json_string_value(json_object_get(v, "source")), "remote")) abort();
        json_decref(v);
    } else if (v || (rc != NJ_EFORMAT && rc != -ENOMEM)) {
        abort();
    }
    if (nj_mem_in_use() != base) abort();
    return 0;
}
