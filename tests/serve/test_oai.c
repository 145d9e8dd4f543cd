/* test_oai — request validation and response building of the OpenAI wire
 * format, UTF-8 handling, and the Prometheus rendering of metrics. */
#include "testutil.h"

#include <jansson.h>

#include "metrics.h"
#include "oai.h"
#include "util.h"

static int parse(int kind, const char *body, oai_request *r, char *msg) {
    return oai_parse(kind, body, strlen(body), r, msg, 256);
}

static void test_chat_ok(void **state) {
    (void)state;
    oai_request r;
    char msg[256];
    const char *body = "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"he\"},{\"type\":\"text\",\"text\":\"llo\"}]},"
                       "{\"role\":\"developer\",\"content\":null}],"
                       "\"max_tokens\":12,\"temperature\":0,\"top_k\":5,\"seed\":7,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"stop\":[\"\\n\\n\",\"END\"],\"priority\":\"high\","
                       "\"unknown_field\":{\"ignored\":true}}";
    assert_int_equal(parse(OAI_CHAT, body, &r, msg), 0);
    assert_int_equal(r.n_msgs, 3);
    assert_string_equal(r.msgs[0].role, "system");
    assert_string_equal(r.msgs[0].content, "be brief");
    assert_string_equal(r.msgs[1].content, "hello");
    assert_string_equal(r.msgs[2].role, "system");     /* developer -> system */
    assert_string_equal(r.msgs[2].content, "");
    assert_int_equal(r.max_tokens, 12);
    assert_true(r.has_temperature);
    assert_true(r.temperature == 0.0f);
    assert_true(r.has_top_k);
    assert_int_equal(r.top_k, 5);
    assert_false(r.has_top_p);
    assert_true(r.has_seed);
    assert_int_equal(r.seed, 7);
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_int_equal(r.n_stop, 2);
    assert_int_equal(r.stop_len[0], 2);
    assert_int_equal(r.priority, OAI_PRIO_HIGH);
    assert_string_equal(r.model, "x");
    oai_request_free(&r);
}

static void test_completion_ok(void **state) {
    (void)state;
    oai_request r;
    char msg[256];
    assert_int_equal(parse(OAI_COMPLETION, "{\"prompt\":\"Once upon\"}", &r, msg), 0);
    assert_int_equal(r.prompt_len, 9);
    assert_string_equal(r.prompt, "Once upon");
    assert_int_equal(r.max_tokens, -1);
    assert_false(r.stream);
    assert_int_equal(r.priority, OAI_PRIO_NORMAL);
    oai_request_free(&r);
    assert_int_equal(parse(OAI_COMPLETION, "{\"prompt\":[\"one\"],\"max_completion_tokens\":3}", &r, msg), 0);
    assert_string_equal(r.prompt, "one");
    assert_int_equal(r.max_tokens, 3);
    oai_request_free(&r);
}

/* Every bad request gets a specific message; malformed JSON is NJ_EFORMAT. */
static void test_bad_requests(void **state) {
    (void)state;
    static const struct { int kind; const char *body; int rc; const char *expect; } cases[] = {
        {OAI_CHAT, "", NJ_EFORMAT, "malformed JSON body"},
        {OAI_CHAT, "{\"messages\":[", NJ_EFORMAT, "malformed JSON body"},
        {OAI_CHAT, "[1,2]", NJ_EFORMAT, "must be a JSON object"},
        {OAI_CHAT, "{\"a\":1,\"a\":2}", NJ_EFORMAT, "duplicate"},
        {OAI_CHAT, "{}", -EINVAL, "'messages' is required"},
        {OAI_CHAT, "{\"messages\":{}}", -EINVAL, "'messages' must be an array"},
        {OAI_CHAT, "{\"messages\":[]}", -EINVAL, "must not be empty"},
        {OAI_CHAT, "{\"messages\":[1]}", -EINVAL, "'messages[0]' must be an object"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"king\",\"content\":\"x\"}]}", -EINVAL, "'messages[0].role' must be one of"},
        {OAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", -EINVAL, "'messages[0].role' must be a string"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", -EINVAL, "'messages[0].content' must be a string"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", NJ_EFORMAT, "is not allowed"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", -EINVAL, "only {\"type\":\"text\""},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", -EINVAL, "'max_tokens' must be between 1"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", -EINVAL, "'max_tokens' must be an integer"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", -EINVAL, "'temperature' must be a number"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":2}", -EINVAL, "'top_p' must be between 0 and 1"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3}", -EINVAL, "'n' must be 1"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", -EINVAL, "'stream' must be true or false"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"\"]}", -EINVAL, "must not be empty"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", -EINVAL, "'stop' must be a string"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}", -EINVAL, "max 8"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"priority\":\"urgent\"}", -EINVAL, "'priority' must be"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"priority\":3}", -EINVAL, "'priority' must be"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"deadline_ms\":0}", -EINVAL, "'deadline_ms' must be"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"deadline_ms\":1.5}", -EINVAL, "'deadline_ms' must be"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"deadline_ms\":\"5\"}", -EINVAL, "'deadline_ms' must be"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"deadline_ms\":86400001}", -EINVAL, "'deadline_ms' must be"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", -EINVAL, "'logprobs' is not supported"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{}]}", -EINVAL, "'tools' are not supported"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":\"1\"}", -EINVAL, "'seed' must be an integer"},
        {OAI_COMPLETION, "{\"prompt\":5}", -EINVAL, "'prompt' must be a string"},
        {OAI_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", -EINVAL, "exactly one string"},
        {OAI_COMPLETION, "{\"messages\":[]}", -EINVAL, "'prompt' is required"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(cases); i++) {
        oai_request r;
        char msg[256] = "";
        int rc = parse(cases[i].kind, cases[i].body, &r, msg);
        if (rc != cases[i].rc || !strstr(msg, cases[i].expect))
            fail_msg("case %zu (%s): rc %d msg '%s', expected %d '%s'", i, cases[i].body, rc, msg, cases[i].rc,
                     cases[i].expect);
        assert_null(r.root);
        oai_request_free(&r);
    }
}

static void test_utf8_complete(void **state) {
    (void)state;
    assert_int_equal(nj_utf8_complete("abc", 3), 3);
    assert_int_equal(nj_utf8_complete("ab\xc3", 3), 2);              /* half of é */
    assert_int_equal(nj_utf8_complete("ab\xc3\xa9", 4), 4);
    assert_int_equal(nj_utf8_complete("\xe2\x82", 2), 0);            /* 2/3 of € */
    assert_int_equal(nj_utf8_complete("x\xf0\x9f\x98", 4), 1);       /* 3/4 of an emoji */
    assert_int_equal(nj_utf8_complete("x\xf0\x9f\x98\x80", 5), 5);
    assert_int_equal(nj_utf8_complete("a\xff", 2), 2);               /* invalid: not held back */
}

static json_t *load(const char *s, size_t n) {
    json_error_t e;
    json_t *j = json_loadb(s, n, 0, &e);
    if (!j) fail_msg("invalid JSON produced: %s: %.*s", e.text, (int)n, s);
    return j;
}

static void test_builders(void **state) {
    (void)state;
    oai_init();
    oai_ident id = {"chatcmpl-1", 1700000000, "m.gguf"};
    oai_usage u = {10, 3, 4};
    size_t len;
    /* invalid UTF-8 in model output must still give valid JSON (U+FFFD) */
    char *s = oai_response_json(OAI_CHAT, &id, "hi\xff!", 4, "stop", &u, &len);
    assert_non_null(s);
    json_t *j = load(s, len);
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "hi\xef\xbf\xbd!");
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")), 13);
    json_decref(j);
    nj_free(s);

    s = oai_chunk_sse(OAI_CHAT, &id, "tok", 3, true, NULL, NULL, &len);
    assert_non_null(s);
    assert_memory_equal(s, "data: {", 7);
    assert_memory_equal(s + len - 2, "\n\n", 2);
    j = load(s + 6, len - 8);
    json_t *delta = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
    assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(delta, "content")), "tok");
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "finish_reason")));
    json_decref(j);
    nj_free(s);

    s = oai_chunk_sse(OAI_COMPLETION, &id, NULL, 0, false, NULL, &u, &len);
    j = load(s + 6, len - 8);
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")), 10);
    json_decref(j);
    nj_free(s);

    const char *names[] = {"n_ctx"};
    long long vals[] = {4096};
    s = oai_error_json(400, "invalid_request_error", "too \"long\"", names, vals, 1, &len);
    j = load(s, len);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "too \"long\"");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_int_equal(json_integer_value(json_object_get(e, "n_ctx")), 4096);
    json_decref(j);
    nj_free(s);

    s = oai_models_json("m.gguf", 1, &len);
    j = load(s, len);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), "m.gguf");
    json_decref(j);
    nj_free(s);
}

/* Parsing under allocation failure: every failure point returns an error
 * and leaks nothing. */
static void test_parse_oom(void **state) {
    (void)state;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}],\"stop\":\"x\"}";
    size_t before = nj_mem_in_use();
    int failures = 0;
    for (long n = 0; n < 200; n++) {
        oai_request r;
        char msg[256];
        nj_alloc_fail_after(n);
        int rc = parse(OAI_CHAT, body, &r, msg);
        nj_alloc_fail_after(-1);
        oai_request_free(&r);
        assert_int_equal(nj_mem_in_use(), before);
        if (rc == 0) break;
        failures++;
    }
    assert_true(failures > 0);
}

/* Classes by name (the wire's and X-Priority's), "low" as the old name of
 * bulk, and the deadline carried through. */
static void test_priorities(void **state) {
    (void)state;
    static const struct { const char *name; int prio; } cases[] = {
        {"critical", OAI_PRIO_CRITICAL}, {"high", OAI_PRIO_HIGH}, {"normal", OAI_PRIO_NORMAL},
        {"bulk", OAI_PRIO_BULK}, {"low", OAI_PRIO_BULK},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(cases); i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"priority\":\"%s\","
                 "\"deadline_ms\":%zu}", cases[i].name, 100 + i);
        oai_request r;
        char msg[256] = "";
        assert_int_equal(parse(OAI_CHAT, body, &r, msg), 0);
        assert_int_equal(r.priority, cases[i].prio);
        assert_true(r.has_priority);
        assert_int_equal(r.deadline_ms, 100 + (long long)i);
        oai_request_free(&r);
        assert_int_equal(oai_priority_parse(cases[i].name), cases[i].prio);
    }
    assert_int_equal(oai_priority_parse("CRITICAL"), OAI_PRIO_CRITICAL);
    assert_int_equal(oai_priority_parse("urgent"), -1);
    assert_int_equal(oai_priority_parse(""), -1);
    assert_int_equal(oai_priority_parse(NULL), -1);
    oai_request r;
    char msg[256] = "";
    assert_int_equal(parse(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r, msg), 0);
    assert_int_equal(r.priority, OAI_PRIO_NORMAL);
    assert_false(r.has_priority);
    assert_int_equal(r.deadline_ms, 0);
    oai_request_free(&r);
}

static void test_metrics_render(void **state) {
    (void)state;
    nj_metrics *m = metrics_new(NULL);
    assert_non_null(m);
    metrics_request(m, "/health", 200);
    metrics_request(m, "/health", 200);
    metrics_request(m, "other", 404);
    metrics_add(m, NJ_M_GEN_TOKENS, 5);
    metrics_set(m, NJ_M_QUEUE_BULK, 2);
    metrics_set(m, NJ_M_MODEL_LOADED, 1);
    size_t len;
    char *t = metrics_render(m, &len);
    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    assert_non_null(strstr(t, "nightjar_requests_total{endpoint=\"/health\",code=\"200\"} 2\n"));
    assert_non_null(strstr(t, "nightjar_requests_total{endpoint=\"other\",code=\"404\"} 1\n"));
    assert_non_null(strstr(t, "nightjar_generated_tokens_total 5\n"));
    assert_non_null(strstr(t, "nightjar_queue_depth{priority=\"bulk\"} 2\n"));
    assert_non_null(strstr(t, "nightjar_queue_depth{priority=\"critical\"} 0\n"));
    assert_non_null(strstr(t, "nightjar_model_loaded 1\n"));
    /* every non-comment line is "name{labels} value" */
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        char *end;
        strtod(sp + 1, &end);
        assert_true(*end == 0);
    }
    nj_free(t);
    metrics_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_ok),
        cmocka_unit_test(test_completion_ok),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_utf8_complete),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_parse_oom),
        cmocka_unit_test(test_priorities),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests_name("oai", tests, NULL, NULL);
}
