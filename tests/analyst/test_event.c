/*
 * test_event — the canonical event v1: setters, UTF-8 sanitising, raw
 * truncation, argv/cmdline completion, validation messages that name the
 * field path, stable serialisation, event_from_cmdline, and allocation
 * failure at every point of building and parsing an event (no leak).
 */
#include "event.h"
#include "util.h"
#include "testutil.h"

static void test_build_and_dump(void **state) {
    (void)state;
    int err = 0;
    json_t *ev = event_new("exec", "t:1", &err);
    assert_non_null(ev);
    /* set in an order unlike the schema's: the dump must not care */
    assert_int_equal(event_set_str(ev, EF_PROC_PATH, "/usr/bin/curl", (size_t)-1), 0);
    assert_int_equal(event_set_int(ev, EF_PROC_PID, 4242), 0);
    assert_int_equal(event_set_str(ev, EF_HOST, "laptop-1", (size_t)-1), 0);
    assert_int_equal(event_set_time(ev, 1796556153, 123456), 0);
    assert_int_equal(event_push_str(ev, EF_PROC_ARGV, "curl", (size_t)-1), 0);
    assert_int_equal(event_push_str(ev, EF_PROC_ARGV, "-s", (size_t)-1), 0);
    assert_int_equal(event_push_str(ev, EF_PROC_ARGV, "http://x/y.sh", (size_t)-1), 0);
    assert_int_equal(event_set_str(ev, EF_USER_NAME, "", 0), 0);        /* empty: omitted */
    assert_int_equal(event_set_bool(ev, EF_PROC_PLATFORM_BINARY, true), 0);
    assert_int_equal(event_finish(ev), 0);
    assert_int_equal(event_validate(ev), 0);
    size_t n;
    char *s = event_dump(ev, &n);
    assert_non_null(s);
    assert_string_equal(s,
        "{\"v\":1,\"id\":\"t:1\",\"kind\":\"exec\",\"time\":\"2026-12-06T11:22:33.123456Z\","
        "\"host\":\"laptop-1\",\"process\":{\"pid\":4242,\"path\":\"/usr/bin/curl\","
        "\"argv\":[\"curl\",\"-s\",\"http://x/y.sh\"],\"cmdline\":\"curl -s http://x/y.sh\","
        "\"platform_binary\":true}}");
    assert_int_equal(n, strlen(s));
    /* round trip: parse the dump, dump again, same bytes */
    json_t *back = event_parse(s, n, &err);
    assert_non_null(back);
    char *s2 = event_dump(back, NULL);
    assert_string_equal(s, s2);
    nj_free(s); nj_free(s2);
    json_decref(back);
    json_decref(ev);
}

static void test_utf8_and_raw(void **state) {
    (void)state;
    json_t *ev = event_new("other", "t:2", NULL);
    assert_non_null(ev);
    /* invalid byte, overlong, surrogate, NUL -> U+FFFD each */
    const char bad[] = "a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\0e";
    assert_int_equal(event_set_str(ev, EF_PROC_CMDLINE, bad, sizeof bad - 1), 0);
    const char *got = event_get_str(ev, EF_PROC_CMDLINE);
    assert_string_equal(got, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                             "d\xEF\xBF\xBD" "e");
    assert_true(event_utf8_valid(got, strlen(got)));
    /* raw: cut at 4096 bytes, never inside a character */
    char big[5000];
    for (size_t i = 0; i < sizeof big; i += 2) { big[i] = (char)0xC3; big[i + 1] = (char)0xA9; }  /* é */
    big[0] = 'x';   /* shift by one so 4096 falls inside a pair */
    big[1] = 'y';
    big[2] = 'z';
    assert_int_equal(event_set_raw(ev, big, sizeof big), 0);
    const char *raw = event_get_str(ev, EF_RAW);
    size_t rl = strlen(raw);
    assert_true(rl <= EV_RAW_MAX && rl >= EV_RAW_MAX - 3);
    assert_true(event_utf8_valid(raw, rl));
    json_decref(ev);
}

static void expect_invalid(const char *json, const char *prefix) {
    int err = 0;
    json_t *ev = event_parse(json, strlen(json), &err);
    if (ev) fail_msg("accepted: %s", json);
    const char *m = nj_last_error();
    if (strncmp(m, prefix, strlen(prefix)) != 0)
        fail_msg("for %s\n  expected message starting '%s'\n  got '%s'", json, prefix, m);
}

#define BASE "\"v\":1,\"id\":\"a\",\"kind\":\"exec\",\"time\":\"2026-01-02T03:04:05Z\""

static void test_validation_messages(void **state) {
    (void)state;
    expect_invalid("{" BASE ",\"process\":{\"pid\":\"12\"}}", "process.pid: expected integer");
    expect_invalid("{" BASE ",\"process\":{\"pid\":-1}}", "process.pid: -1 out of range");
    expect_invalid("{" BASE ",\"process\":{\"argv\":[\"a\",3]}}", "process.argv[1]: expected string");
    expect_invalid("{" BASE ",\"process\":{\"colour\":1}}", "process.colour: unknown field");
    expect_invalid("{" BASE ",\"extra\":1}", "extra: unknown field");
    expect_invalid("{" BASE ",\"user\":{}}", "user: empty object");
    expect_invalid("{" BASE ",\"host\":\"\"}", "host: empty string");
    expect_invalid("{" BASE ",\"network\":{\"dst_port\":70000}}", "network.dst_port: 70000 out of range");
    expect_invalid("{" BASE ",\"auth\":{\"result\":\"maybe\"}}", "auth.result: 'maybe' is not an allowed value");
    expect_invalid("{\"v\":2,\"id\":\"a\",\"kind\":\"exec\",\"time\":\"2026-01-02T03:04:05Z\"}", "v: unsupported version 2");
    expect_invalid("{\"v\":1,\"kind\":\"exec\",\"time\":\"2026-01-02T03:04:05Z\"}", "id: required field missing");
    expect_invalid("{\"v\":1,\"id\":\"a\",\"kind\":\"exec\",\"time\":\"yesterday\"}", "time: not an RFC 3339 time");
    expect_invalid("{\"v\":1,\"id\":\"a\",\"kind\":\"boom\",\"time\":\"2026-01-02T03:04:05Z\"}", "kind: 'boom'");
    expect_invalid("[1]", "event: expected a JSON object");
    expect_invalid("{\"v\":1,", "event: invalid JSON");
    expect_invalid("{" BASE ",\"host\":\"a\",\"host\":\"b\"}", "event: invalid JSON");
}

static void test_time(void **state) {
    (void)state;
    int64_t s; long us;
    assert_int_equal(event_time_parse("1970-01-01T00:00:00Z", 20, &s, &us), 0);
    assert_int_equal(s, 0);
    const char *t = "2024-02-29T23:59:59.1234567+01:30";
    assert_int_equal(event_time_parse(t, strlen(t), &s, &us), 0);
    char buf[32];
    event_time_format(s, us, buf);
    assert_string_equal(buf, "2024-02-29T22:29:59.123456Z");
    assert_int_not_equal(event_time_parse("2023-02-29T00:00:00Z", 20, &s, &us), 0);
    /* offsets are normalised to UTC by event_parse */
    const char *j = "{\"v\":1,\"id\":\"a\",\"kind\":\"exec\",\"time\":\"2026-01-02T03:04:05-02:00\"}";
    json_t *ev = event_parse(j, strlen(j), NULL);
    assert_non_null(ev);
    assert_string_equal(event_get_str(ev, EF_TIME), "2026-01-02T05:04:05.000000Z");
    json_decref(ev);
}

static void test_from_cmdline(void **state) {
    (void)state;
    int err = 0;
    const char *line = "  curl  -s\thttp://x/y.sh | sh \n";
    json_t *ev = event_from_cmdline(line, strlen(line), 7, &err);
    assert_non_null(ev);
    assert_int_equal(event_validate(ev), 0);
    assert_string_equal(event_get_str(ev, EF_ID), "cmdline:7");
    assert_string_equal(event_get_str(ev, EF_PROC_CMDLINE), "curl  -s\thttp://x/y.sh | sh");
    json_t *argv = event_get(ev, EF_PROC_ARGV);
    assert_int_equal(json_array_size(argv), 5);
    assert_string_equal(json_string_value(json_array_get(argv, 2)), "http://x/y.sh");
    assert_string_equal(event_get_str(ev, EF_SOURCE_FORMAT), "cmdline");
    json_decref(ev);
    assert_null(event_from_cmdline(" \n", 2, 8, &err));
    assert_int_equal(err, -EINVAL);
}

/* Lists are bounded in elements and in bytes. */
static void test_list_bounds(void **state) {
    (void)state;
    json_t *ev = event_new("exec", "b:1", NULL);
    char big[40000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 3; i++) assert_int_equal(event_push_str(ev, EF_PROC_ARGV, big, sizeof big), 0);
    json_t *argv = event_get(ev, EF_PROC_ARGV);
    assert_int_equal(json_array_size(argv), 2);                     /* third dropped */
    assert_int_equal(json_string_length(json_array_get(argv, 0)) + json_string_length(json_array_get(argv, 1)), EV_STR_MAX);
    for (int i = 0; i < EV_ARGV_MAX + 10; i++) event_push_str(ev, EF_AUTH_USERS, "u", 1);
    assert_int_equal(json_array_size(event_get(ev, EF_AUTH_USERS)), EV_ARGV_MAX);
    event_set_time(ev, 0, 0);
    assert_int_equal(event_validate(ev), 0);
    json_array_append_new(argv, json_string("y"));                   /* past the byte bound */
    assert_int_equal(event_validate(ev), -EINVAL);
    assert_non_null(strstr(nj_last_error(), "process.argv: more than 65536 bytes in all"));
    json_decref(ev);
}

static void test_field_lookup(void **state) {
    (void)state;
    for (int f = 0; f < EF_COUNT; f++) {
        assert_non_null(event_field_path(f));
        assert_int_equal(event_field_lookup(event_field_path(f)), f);
    }
    assert_int_equal(event_field_lookup("process.nope"), -1);
    json_t *ev = event_new("exec", "x", NULL);
    assert_int_equal(event_set_int(ev, EF_PROC_PATH, 1), -EINVAL);   /* wrong setter */
    assert_int_equal(event_set_int(ev, EF_NET_DST_PORT, 65536), -EINVAL);
    event_set_int(ev, EF_PROC_PID, 1);
    event_unset(ev, EF_PROC_PID);
    assert_null(json_object_get(ev, "process"));                      /* emptied object gone */
    json_decref(ev);
}

/* Every allocation of build + finish + dump + parse may fail: the code is
 * -ENOMEM (or the build completes) and nothing leaks. */
static void test_alloc_failure(void **state) {
    (void)state;
    event_init();
    size_t before = nj_mem_in_use();
    int completed = 0;
    for (long k = 0; k < 400 && !completed; k++) {
        nj_alloc_fail_after(k);
        int err = 0, rc = 0;
        json_t *ev = event_new("exec", "oom:1", &err);
        char *s = NULL;
        json_t *back = NULL;
        if (!ev) { assert_int_equal(err, -ENOMEM); goto done; }
        if ((rc = event_set_time(ev, 1, 2)) || (rc = event_set_str(ev, EF_PROC_PATH, "/bin/\xffsh", 8)) ||
            (rc = event_push_str(ev, EF_PROC_ARGV, "sh", 2)) || (rc = event_push_str(ev, EF_PROC_ARGV, "-c", 2)) ||
            (rc = event_finish(ev))) {
            assert_int_equal(rc, -ENOMEM);
            goto done;
        }
        s = event_dump(ev, NULL);
        if (!s) goto done;
        back = event_parse(s, strlen(s), &err);
        if (!back) { assert_int_equal(err, -ENOMEM); goto done; }
        completed = 1;
    done:
        nj_alloc_fail_after(-1);
        nj_free(s);
        json_decref(back);
        json_decref(ev);
        assert_int_equal(nj_mem_in_use(), before);
    }
    assert_true(completed);
}

/* Scratch documents: loaded into the arena, read, released; one too large
 * for the arena is finished on the heap and freed at release, the arena
 * grows, and nothing is left once the scratch is freed.  The ASCII fast
 * path of the UTF-8 check agrees with the byte-wise one at every offset. */
static void test_scratch(void **state) {
    (void)state;
    event_init();
    size_t before = nj_mem_in_use();
    int err = 0;
    event_scratch *s = event_scratch_new(&err);
    assert_non_null(s);
    json_error_t je;
    const char *small = "{\"a\": {\"b\": [1, 2, \"x\\/y\"]}, \"c\": \"d\"}";
    for (int round = 0; round < 3; round++) {
        json_t *j = event_json_load_scratch(s, small, strlen(small), 0, &je, &err);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(j, "a"), "b"), 2)), "x/y");
        event_scratch_release(s, j);
    }
    /* 20,000 members: far more nodes than the first arena holds */
    size_t cap = 20000 * 24 + 16, n = 0;
    char *big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "{");
    for (int i = 0; i < 20000; i++) n += (size_t)snprintf(big + n, cap - n, "%s\"k%d\": [%d]", i ? ", " : "", i, i);
    n += (size_t)snprintf(big + n, cap - n, "}");
    json_t *j = event_json_load_scratch(s, big, n, 0, &je, &err);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 20000);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "k19999"), 0)), 19999);
    event_scratch_release(s, j);
    /* bad input: NULL, NJ_EFORMAT, the arena still usable */
    assert_null(event_json_load_scratch(s, "{\"a\": [1,", 9, 0, &je, &err));
    assert_int_equal(err, NJ_EFORMAT);
    j = event_json_load_scratch(s, small, strlen(small), 0, &je, &err);
    assert_non_null(j);
    event_scratch_release(s, j);
    free(big);
    event_scratch_free(s);
    assert_int_equal(nj_mem_in_use(), before);

    char t[40];
    for (size_t off = 0; off < 24; off++) {
        memset(t, 'a', sizeof t);
        t[off] = (char)0xc3;   /* a lead byte with no continuation */
        assert_false(event_utf8_valid(t, sizeof t));
        t[off] = 0;            /* NUL is refused too */
        assert_false(event_utf8_valid(t, sizeof t));
        t[off] = 'b';
        assert_true(event_utf8_valid(t, sizeof t));
    }
    assert_true(event_utf8_valid("caf\xc3\xa9 au lait, tr\xc3\xa8s bien", 25));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_dump),
        cmocka_unit_test(test_utf8_and_raw),
        cmocka_unit_test(test_validation_messages),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_from_cmdline),
        cmocka_unit_test(test_list_bounds),
        cmocka_unit_test(test_field_lookup),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_scratch),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
