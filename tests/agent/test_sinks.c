/* test_sinks — sink specs, payloads, and each sink against a receiver the
 * test runs itself on 127.0.0.1 (or a Unix socket in a temporary
 * directory): JSONL rotation, RFC 5424 over UDP, TCP (octet counting) and a
 * Unix datagram socket, and webhooks through the delivery loop against the
 * scripted server of tests/support/fakehttp, which can refuse (503), stall,
 * or answer like Splunk HEC and Elastic _bulk.
 *
 * Backoff is tested without waiting: the test runs a delivery round at the
 * row's own next_attempt_at.  Where a thread must be waited for, the test
 * waits on a condition variable with a deadline, never a fixed sleep. */
#include "testutil.h"
#include "deliver.h"
#include "fakehttp.h"
#include "sink.h"
#include "sink_impl.h"
#include "spool.h"
#include "util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- specs --- */

static void test_spec_parse_valid(void **state) {
    (void)state;
    sink_spec s;
    assert_int_equal(sink_spec_parse("jsonl:/var/log/nightjar/v.jsonl", &s), 0);
    assert_int_equal(s.kind, SINK_JSONL);
    assert_string_equal(s.path, "/var/log/nightjar/v.jsonl");
    assert_string_equal(s.name, "jsonl:/var/log/nightjar/v.jsonl");
    assert_int_equal(s.max_bytes, 100ll << 20);
    assert_int_equal(s.keep, 5);
    sink_spec_free(&s);

    /* A comma inside the path is fine; options start at ",key=". */
    assert_int_equal(sink_spec_parse("jsonl:/tmp/a,b.jsonl,max_mb=7,keep=0", &s), 0);
    assert_string_equal(s.path, "/tmp/a,b.jsonl");
    assert_int_equal(s.max_bytes, 7ll << 20);
    assert_int_equal(s.keep, 0);
    assert_string_equal(s.name, "jsonl:/tmp/a,b.jsonl");
    sink_spec_free(&s);

    assert_int_equal(sink_spec_parse("syslog:unix:/dev/log", &s), 0);
    assert_int_equal(s.transport, SINK_UNIX);
    assert_string_equal(s.path, "/dev/log");
    assert_int_equal(s.facility, 16);
    assert_int_equal(s.severity, 5);
    assert_string_equal(s.app, "nightjar");
    assert_string_equal(s.sd_id, "nightjar@32473");
    sink_spec_free(&s);

    assert_int_equal(sink_spec_parse("syslog:udp:collector.example:514,facility=auth,severity=4,"
                                     "app=nj,sd_id=verdict@99999", &s), 0);
    assert_int_equal(s.transport, SINK_UDP);
    assert_string_equal(s.host, "collector.example");
    assert_int_equal(s.port, 514);
    assert_int_equal(s.facility, 4);
    assert_int_equal(s.severity, 4);
    assert_string_equal(s.app, "nj");
    assert_string_equal(s.sd_id, "verdict@99999");
    assert_string_equal(s.name, "syslog:udp:collector.example:514");
    sink_spec_free(&s);

    assert_int_equal(sink_spec_parse("syslog:tcp:[::1]:6514", &s), 0);
    assert_int_equal(s.transport, SINK_TCP);
    assert_string_equal(s.host, "::1");
    assert_int_equal(s.port, 6514);
    sink_spec_free(&s);

    assert_int_equal(sink_spec_parse("webhook:https://user:pw@siem.example:8088/services/collector/"
                                     "event?x=1,preset=splunk,token=abc-123,timeout_ms=2500", &s), 0);
    assert_int_equal(s.kind, SINK_WEBHOOK);
    assert_int_equal(s.preset, SINK_SPLUNK);
    assert_string_equal(s.token, "abc-123");
    assert_int_equal(s.timeout_ms, 2500);
    assert_string_equal(s.url, "https://user:pw@siem.example:8088/services/collector/event?x=1");
    /* The name carries neither options nor credentials. */
    assert_string_equal(s.name, "webhook:https://siem.example:8088/services/collector/event?x=1");
    sink_spec_free(&s);

    /* userinfo ends at the authority's last '@'. */
    assert_int_equal(sink_spec_parse("webhook:http://a:b@c@host:1/x@y", &s), 0);
    assert_string_equal(s.name, "webhook:http://host:1/x@y");
    sink_spec_free(&s);

    const char *d = nj_test_tmpdir();
    char tf[600], spec[700];
    snprintf(tf, sizeof tf, "%s/token", d);
    FILE *f = fopen(tf, "w");
    fputs("s3cret-key  \nsecond line\n", f);
    fclose(f);
    snprintf(spec, sizeof spec, "webhook:http://127.0.0.1:9200/v/_bulk,preset=elastic,token_file=%s", tf);
    assert_int_equal(sink_spec_parse(spec, &s), 0);
    assert_int_equal(s.preset, SINK_ELASTIC);
    assert_string_equal(s.token, "s3cret-key");
    sink_spec_free(&s);
}

static void test_spec_parse_errors(void **state) {
    (void)state;
    static const struct { const char *spec, *why; } bad[] = {
        {"", "expected jsonl:"},
        {"file:/x", "expected jsonl:"},
        {"jsonl:", "empty target"},
        {"jsonl:/x,max_mb=-1", "bad value"},
        {"jsonl:/x,max_mb=12abc", "bad value"},
        {"jsonl:/x,rotate=1", "no option \"rotate\""},
        {"syslog:/dev/log", "is not unix:PATH"},
        {"syslog:udp:host", "HOST:PORT"},
        {"syslog:udp:host:0", "bad port"},
        {"syslog:tcp:host:70000", "bad port"},
        {"syslog:tcp:::1:514", "brackets"},
        {"syslog:unix:/dev/log,facility=local9", "bad value"},
        {"syslog:unix:/dev/log,severity=8", "bad value"},
        {"syslog:unix:/dev/log,sd_id=nightjar", "NAME@PEN"},
        {"syslog:unix:/dev/log,sd_id=a b@1", "NAME@PEN"},
        {"webhook:ftp://x/y", "http:// or https://"},
        {"webhook:http://x/y z", "spaces"},
        {"webhook:http://x/y,preset=graylog", "not plain, splunk or elastic"},
        {"webhook:http://x/y,preset=splunk", "needs token"},
        {"webhook:http://x/y,timeout_ms=5", "bad value"},
        {"webhook:http://x/y,token_file=/nonexistent/t", "cannot read token_file"},
        {"webhook:http://x/y,token=", "bad value"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(bad); i++) {
        sink_spec s;
        int rc = sink_spec_parse(bad[i].spec, &s);
        if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", bad[i].spec, rc);
        if (!strstr(nj_last_error(), bad[i].why))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].spec, nj_last_error(), bad[i].why);
        assert_null(s.name);
    }
}

/* -------------------------------------------------------------- payload --- */

static char *payload_of(const char *verdict, bool redelivery) {
    spool_delivery d = {.seq = 1, .verdict_json = verdict, .redelivery = redelivery};
    char *out = NULL;
    size_t len = 0;
    int rc = sink_payload(&d, &out, &len);
    if (rc) return NULL;
    assert_int_equal(strlen(out), len);
    return out;
}

static void test_payload(void **state) {
    (void)state;
    char *p = payload_of("{\"verdict\":\"benign\"}", false);
    assert_string_equal(p, "{\"verdict\":\"benign\"}");
    nj_free(p);
    p = payload_of("{\"verdict\":\"benign\"}", true);
    assert_string_equal(p, "{\"redelivery\":true,\"verdict\":\"benign\"}");
    nj_free(p);
    p = payload_of(" { } \n", true);
    assert_string_equal(p, "{\"redelivery\":true }");
    nj_free(p);
    /* Pretty-printed JSON becomes one line and still parses the same. */
    p = payload_of("{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1,\n2]\n}\n", true);
    assert_null(strchr(p, '\n'));
    json_error_t je;
    json_t *j = json_loads(p, 0, &je);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "redelivery")));
    assert_string_equal(json_string_value(json_object_get(j, "a")), "x\ny");
    json_decref(j);
    nj_free(p);
    assert_null(payload_of("[1,2]", false));
    assert_non_null(strstr(nj_last_error(), "not a JSON object"));
    assert_null(payload_of("", true));
}

static void test_json_ascii(void **state) {
    (void)state;
    sbuf b = {0};
    const char *in = "{\"u\":\"caf\xc3\xa9 \xf0\x9f\x90\xa6 \xff!\"}";
    sbuf_json_ascii(&b, in, strlen(in));
    assert_string_equal(b.p, "{\"u\":\"caf\\u00e9 \\ud83d\\udc26 \\ufffd!\"}");
    json_t *j = json_loads(b.p, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "u")),
                        "caf\xc3\xa9 \xf0\x9f\x90\xa6 \xef\xbf\xbd!");
    json_decref(j);
    sbuf_free(&b);
    /* Overlong and surrogate encodings are invalid too. */
    sbuf_json_ascii(&b, "\xc0\xaf\xed\xa0\x80", 5);
    for (size_t i = 0; i < b.len; i++) assert_true((unsigned char)b.p[i] < 0x80);
    assert_non_null(strstr(b.p, "\\ufffd"));
    sbuf_free(&b);
}

/* ---------------------------------------------------------------- items --- */

static char g_verdicts[16][96];

static void make_items(spool_delivery *it, size_t n, int first) {
    for (size_t i = 0; i < n; i++) {
        snprintf(g_verdicts[i], sizeof g_verdicts[i],
                 "{\"id\":\"e-%d\",\"verdict\":\"suspicious\",\"score\":0.%d}", first + (int)i,
                 (first + (int)i) % 10);
        it[i] = (spool_delivery){.seq = first + (int64_t)i, .sink = "t", .event_id = "ev\"1]\\",
                                 .source = "auditd", .verdict_json = g_verdicts[i],
                                 .judged_at = 1765106553123 + (int64_t)i, .attempts = 1,
                                 .redelivery = (i == 1)};
    }
}

/* Allocation failures anywhere in parse, open and send: a clear -ENOMEM or
 * a retryable result, and nothing leaked. */
static void test_sink_alloc_faults(void **state) {
    (void)state;
    const char *d = nj_test_tmpdir();
    char specs[3][700];
    snprintf(specs[0], sizeof specs[0], "jsonl:%s/oom/v.jsonl,keep=1", d);
    snprintf(specs[1], sizeof specs[1], "syslog:unix:%s/nolog,app=x", d);
    snprintf(specs[2], sizeof specs[2], "webhook:http://u:p@127.0.0.1:1/x,preset=elastic,token=k");
    for (int k = 0; k < 3; k++) {
        size_t base = nj_mem_in_use();
        int done = 0;
        for (long n = 0; n < 300 && !done; n++) {
            nj_alloc_fail_after(n);
            sink_spec sp;
            int rc = sink_spec_parse(specs[k], &sp);
            if (rc == 0) {
                int err = 0;
                sink *s = sink_open(&sp, &err);
                if (s) {
                    spool_delivery it[3];
                    sink_result res[3];
                    make_items(it, 3, 0);
                    int ok = sink_send(s, it, 3, res);
                    assert_true(ok >= 0 && ok <= 3);
                    for (int i = 0; i < 3; i++)
                        assert_true(res[i].status >= SINK_OK && res[i].status <= SINK_PERMANENT);
                    sink_close(s);
                    done = 1;
                } else {
                    assert_int_equal(err, -ENOMEM);
                }
                sink_spec_free(&sp);
            } else {
                assert_int_equal(rc, -ENOMEM);
            }
            nj_alloc_fail_after(-1);
            if (nj_mem_in_use() != base)
                fail_msg("%s: fail_after %ld leaked %zd bytes", specs[k], n,
                         (ssize_t)(nj_mem_in_use() - base));
        }
        assert_true(done);
    }
}

/* ---------------------------------------------------------------- jsonl --- */

static void test_jsonl_rotation(void **state) {
    (void)state;
    const char *d = nj_test_tmpdir();
    char spec[800], path[700];
    snprintf(path, sizeof path, "%s/out/v.jsonl", d);
    snprintf(spec, sizeof spec, "jsonl:%s,keep=2", path);
    sink_spec sp;
    assert_int_equal(sink_spec_parse(spec, &sp), 0);
    sp.max_bytes = 1000;
    int err;
    sink *s = sink_open(&sp, &err);
    assert_non_null(s);
    /* 60 items of ~60 bytes in batches of 6: ~3.6 KB, several rotations. */
    int total = 0;
    for (int b = 0; b < 10; b++) {
        spool_delivery it[6];
        sink_result res[6];
        make_items(it, 6, b * 6);
        assert_int_equal(sink_send(s, it, 6, res), 6);
        for (int i = 0; i < 6; i++) assert_int_equal(res[i].status, SINK_OK);
        total += 6;
    }
    sink_close(s);
    sink_spec_free(&sp);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Oldest first: v.jsonl.2, v.jsonl.1, v.jsonl; no v.jsonl.3. */
    char name[720];
    snprintf(name, sizeof name, "%s.3", path);
    assert_int_equal(stat(name, &sb), -1);
    int expect_next = -1, lines = 0;
    for (int k = 2; k >= 0; k--) {
        if (k) snprintf(name, sizeof name, "%s.%d", path, k);
        else snprintf(name, sizeof name, "%s", path);
        FILE *f = fopen(name, "r");
        assert_non_null(f);
        assert_int_equal(fstat(fileno(f), &sb), 0);
        assert_true(sb.st_size <= 1000);
        char line[512];
        while (fgets(line, sizeof line, f)) {
            json_t *j = json_loads(line, 0, NULL);
            if (!j) fail_msg("%s: not JSON: %s", name, line);
            int id = -1;
            sscanf(json_string_value(json_object_get(j, "id")), "e-%d", &id);
            if (expect_next >= 0) assert_int_equal(id, expect_next);
            /* Item 1 of each batch was flagged. */
            assert_int_equal(json_is_true(json_object_get(j, "redelivery")), id % 6 == 1);
            expect_next = id + 1;
            lines++;
            json_decref(j);
        }
        fclose(f);
    }
    assert_int_equal(expect_next, total); /* the newest line is the last sent */
    assert_true(lines < total && lines > 20);
}

/* A file-size limit mid-batch: the partial line is cut, earlier lines are
 * delivered, the rest retried; after the limit is lifted, all is there. */
static void test_jsonl_partial_write(void **state) {
    (void)state;
    const char *d = nj_test_tmpdir();
    char path[700];
    snprintf(path, sizeof path, "%s/p.jsonl", d);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        char spec[720];
        snprintf(spec, sizeof spec, "jsonl:%s,max_mb=0", path);
        sink_spec sp;
        if (sink_spec_parse(spec, &sp)) _exit(10);
        sink *s = sink_open(&sp, NULL);
        if (!s) _exit(11);
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = 200; /* about three lines */
        setrlimit(RLIMIT_FSIZE, &rl);
        spool_delivery it[6];
        sink_result res[6];
        make_items(it, 6, 0);
        int ok = sink_send(s, it, 6, res);
        if (ok < 1 || ok >= 6) _exit(12);
        for (int i = 0; i < 6; i++)
            if ((i < ok) != (res[i].status == SINK_OK)) _exit(13);
        if (res[ok].status != SINK_RETRY || !strstr(res[ok].error, "too large")) _exit(14);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_FSIZE, &rl);
        if (sink_send(s, it + ok, (size_t)(6 - ok), res) != 6 - ok) _exit(15);
        sink_close(s);
        sink_spec_free(&sp);
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        assert_true(strlen(line) > 0 && line[strlen(line) - 1] == '\n');
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        char want[16];
        snprintf(want, sizeof want, "e-%d", n);
        assert_string_equal(json_string_value(json_object_get(j, "id")), want);
        json_decref(j);
        n++;
    }
    fclose(f);
    assert_int_equal(n, 6);
}

/* --------------------------------------------------------------- syslog --- */

/* Check one RFC 5424 message for item it; returns the MSG part parsed. */
static json_t *check_5424(const char *msg, size_t len, int pri, const spool_delivery *it) {
    static regex_t re;
    static int compiled;
    if (!compiled) {
        /* PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG */
        int rc = regcomp(&re,
                         "^<([0-9]{1,3})>1 "
                         "([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z) "
                         "([!-~]{1,255}) ([!-~]{1,48}) ([0-9]{1,128}) ([!-~]{1,32}) "
                         "(\\[[^]= \"]{1,32}( [^]= \"]{1,32}=\"([^\"\\\\]|\\\\.)*\")*\\]) "
                         "(\\{.*\\})$",
                         REG_EXTENDED);
        assert_int_equal(rc, 0);
        compiled = 1;
    }
    char *m = strndup(msg, len);
    regmatch_t g[11];
    if (regexec(&re, m, 11, g, 0) != 0) fail_msg("not RFC 5424: %s", m);
    assert_int_equal(atoi(m + g[1].rm_so), pri);
    /* judged_at 1765106553123 + i = 2025-12-07T11:22:33.123Z + i ms */
    char ts[32];
    snprintf(ts, sizeof ts, "%.*s", (int)(g[2].rm_eo - g[2].rm_so), m + g[2].rm_so);
    char want_ts[32];
    snprintf(want_ts, sizeof want_ts, "2025-12-07T11:22:33.%03dZ", 123 + (int)(it->judged_at - 1765106553123));
    assert_string_equal(ts, want_ts);
    assert_int_equal(strncmp(m + g[6].rm_so, "verdict ", 8), 0);
    char sd[512];
    snprintf(sd, sizeof sd, "%.*s", (int)(g[7].rm_eo - g[7].rm_so), m + g[7].rm_so);
    char want_sd[512];
    snprintf(want_sd, sizeof want_sd,
             "[nightjar@32473 seq=\"%lld\" event_id=\"ev\\\"1\\]\\\\\" source=\"auditd\" "
             "attempt=\"1\" redelivery=\"%s\"]", (long long)it->seq, it->redelivery ? "true" : "false");
    assert_string_equal(sd, want_sd);
    json_t *j = json_loads(m + g[10].rm_so, 0, NULL);
    if (!j) fail_msg("MSG is not JSON: %s", m + g[10].rm_so);
    assert_int_equal(json_is_true(json_object_get(j, "redelivery")), it->redelivery);
    free(m);
    return j;
}

static int wait_readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

static int bind_local(int type, int *port) {
    int fd = socket(AF_INET, type, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static sink *open_spec(const char *spec) {
    sink_spec sp;
    if (sink_spec_parse(spec, &sp) != 0) fail_msg("%s: %s", spec, nj_last_error());
    int err = 0;
    sink *s = sink_open(&sp, &err);
    if (!s) fail_msg("sink_open(%s): %s", spec, nj_last_error());
    sink_spec_free(&sp);
    return s;
}

static void test_syslog_udp(void **state) {
    (void)state;
    int port;
    int fd = bind_local(SOCK_DGRAM, &port);
    char spec[128];
    snprintf(spec, sizeof spec, "syslog:udp:127.0.0.1:%d,facility=auth,severity=warning", port);
    sink *s = open_spec(spec);
    spool_delivery it[3];
    sink_result res[3];
    make_items(it, 3, 10);
    assert_int_equal(sink_send(s, it, 3, res), 3);
    for (int i = 0; i < 3; i++) {
        assert_true(wait_readable(fd, 5000));
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        assert_true(n > 0);
        json_t *j = check_5424(buf, (size_t)n, 4 * 8 + 4, &it[i]);
        char want[16];
        snprintf(want, sizeof want, "e-%d", 10 + i);
        assert_string_equal(json_string_value(json_object_get(j, "id")), want);
        json_decref(j);
    }
    sink_close(s);
    close(fd);
}

static void test_syslog_tcp(void **state) {
    (void)state;
    int port;
    int lfd = bind_local(SOCK_STREAM, &port);
    assert_int_equal(listen(lfd, 4), 0);
    char spec[128];
    snprintf(spec, sizeof spec, "syslog:tcp:127.0.0.1:%d", port);
    sink *s = open_spec(spec);
    spool_delivery it[3];
    sink_result res[3];
    make_items(it, 3, 20);
    /* Non-ASCII in a verdict arrives as \u escapes. */
    snprintf(g_verdicts[2], sizeof g_verdicts[2], "{\"id\":\"e-22\",\"note\":\"caf\xc3\xa9\"}");
    assert_int_equal(sink_send(s, it, 3, res), 3);
    assert_true(wait_readable(lfd, 5000));
    int cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    /* Read until three octet-counted frames are complete. */
    char buf[16384];
    size_t have = 0, pos = 0;
    for (int frame = 0; frame < 3; frame++) {
        for (;;) {
            char *sp = memchr(buf + pos, ' ', have - pos);
            if (sp) {
                size_t len = strtoul(buf + pos, NULL, 10);
                size_t start = (size_t)(sp - buf) + 1;
                if (have >= start + len) {
                    json_t *j = check_5424(buf + start, len, 16 * 8 + 5, &it[frame]);
                    if (frame == 2) {
                        assert_string_equal(json_string_value(json_object_get(j, "note")), "caf\xc3\xa9");
                        assert_null(memchr(buf + start, 0xc3, len));
                    }
                    json_decref(j);
                    pos = start + len;
                    break;
                }
            }
            assert_true(wait_readable(cfd, 5000));
            ssize_t n = recv(cfd, buf + have, sizeof buf - have, 0);
            assert_true(n > 0);
            have += (size_t)n;
        }
    }
    assert_int_equal(pos, have);
    /* The collector goes away: the next batch is not delivered. */
    close(cfd);
    close(lfd);
    int ok = sink_send(s, it, 3, res);
    for (int tries = 0; ok == 3 && tries < 3; tries++) ok = sink_send(s, it, 3, res);
    assert_true(ok < 3);
    for (int i = 0; i < 3; i++)
        if (res[i].status != SINK_OK)
            assert_true(res[i].status == SINK_MAYBE || res[i].status == SINK_RETRY);
    /* Nobody listening now: refused outright. */
    assert_int_equal(sink_send(s, it, 3, res), 0);
    assert_int_equal(res[0].status, SINK_RETRY);
    assert_non_null(strstr(res[0].error, "refused"));
    sink_close(s);
}

static void test_syslog_unix(void **state) {
    (void)state;
    const char *d = nj_test_tmpdir();
    char path[100], spec[200];
    snprintf(path, sizeof path, "%.90s/log", d);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    snprintf(spec, sizeof spec, "syslog:unix:%s", path);
    sink *s = open_spec(spec);
    spool_delivery it[2];
    sink_result res[2];
    make_items(it, 2, 30);
    assert_int_equal(sink_send(s, it, 2, res), 2);
    for (int i = 0; i < 2; i++) {
        assert_true(wait_readable(fd, 5000));
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        json_decref(check_5424(buf, (size_t)n, 133, &it[i]));
    }
    close(fd);
    unlink(path);
    /* The log daemon is gone: retried later, not lost. */
    assert_int_equal(sink_send(s, it, 1, res), 0);
    assert_int_equal(res[0].status, SINK_RETRY);
    sink_close(s);
}

/* -------------------------------------------------------------- webhook --- */

/* What the webhook receiver answers besides 503s (read by answer() under
 * the server's lock). */
static struct {
    int bulk_status[8];     /* elastic: per-item statuses, 0 = 201 */
} srv;

static fakehttp *g_http;
static int g_port;

/* A collector: Splunk HEC's "Success", or for an Elastic _bulk request one
 * result per action line (every other line of the body). */
static char *answer(void *ud, const fakehttp_req *q, int *status) {
    (void)ud;
    (void)status;
    char body[1024] = "{\"text\":\"Success\",\"code\":0}";
    if (strstr(q->url, "_bulk")) {
        size_t lines = 0;
        for (size_t i = 0; i < q->len; i++) lines += q->body[i] == '\n';
        size_t items = lines / 2, off = 0;
        off += (size_t)snprintf(body + off, sizeof body - off, "{\"took\":1,\"errors\":false,\"items\":[");
        for (size_t i = 0; i < items && i < 8; i++) {
            int st = srv.bulk_status[i] ? srv.bulk_status[i] : 201;
            off += (size_t)snprintf(body + off, sizeof body - off,
                                    "%s{\"create\":{\"_index\":\"v\",\"status\":%d%s}}", i ? "," : "",
                                    st, st >= 400 && st != 409
                                            ? ",\"error\":{\"type\":\"mapper_parsing_exception\","
                                              "\"reason\":\"bad\"}" : "");
        }
        snprintf(body + off, sizeof body - off, "]}");
    }
    return strdup(body);
}

static void reset_server(void) {
    fakehttp_reset(g_http);
    fakehttp_lock(g_http);
    memset(srv.bulk_status, 0, sizeof srv.bulk_status);
    fakehttp_unlock(g_http);
}

/* The next n requests are answered 503 (busy). */
static void fail_next(int n) {
    fakehttp_fail_next(g_http, n, 503, "{\"text\":\"Server is busy\",\"code\":9}");
}

static int nreq(void) { return fakehttp_count(g_http, NULL); }

/* Recorded request i; the test fails if there is none. */
static const fakehttp_req *req(int i) {
    const fakehttp_req *q = fakehttp_get(g_http, i);
    if (!q) fail_msg("no request %d (%d recorded)", i, nreq());
    return q;
}

/* Wait (deadline 10 s) until the server has seen n requests. */
static void wait_requests(int n) {
    int got = fakehttp_wait(g_http, n, 10000);
    if (got < n) fail_msg("server saw %d requests, want %d", got, n);
}

static int server_up(void **state) {
    (void)state;
    g_http = fakehttp_start(answer, NULL, NULL);
    if (!g_http) return -1;
    g_port = fakehttp_port(g_http);
    return 0;
}

static int server_down(void **state) {
    (void)state;
    fakehttp_stop(g_http);   /* lifts a stall first */
    g_http = NULL;
    return 0;
}

/* A spool with one sink (by its spec), and n judged events. */
static spool *spool_with(const char *path, const char *sink_name, int n, int64_t *seqs) {
    const char *sinks[] = {sink_name};
    spool_opts o = {.sinks = sinks, .n_sinks = 1, .backoff_base_ms = 200, .backoff_cap_ms = 2000,
                    .seed = 3};
    int err;
    spool *sp = spool_open(path, &o, &err);
    if (!sp) fail_msg("%s", nj_last_error());
    for (int i = 0; i < n; i++) {
        char id[32], v[96];
        snprintf(id, sizeof id, "ev-%d", i);
        snprintf(v, sizeof v, "{\"event\":\"%s\",\"verdict\":\"malicious\"}", id);
        int64_t s = spool_put_event(sp, id, "auditd", "{}");
        assert_true(s > 0);
        int rc = spool_put_verdict(sp, s, v);
        assert_true(rc == 0 || rc == -EEXIST);
        if (seqs) seqs[i] = s;
    }
    return sp;
}

static int64_t raw_int(const char *path, const char *q) {
    sqlite3 *db = NULL;
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_webhook_retry_then_deliver(void **state) {
    (void)state;
    reset_server();
    char spec[128], path[600];
    snprintf(spec, sizeof spec, "webhook:http://127.0.0.1:%d/hook,token=t0k", g_port);
    snprintf(path, sizeof path, "%s/w.db", nj_test_tmpdir());
    sink *s = open_spec(spec);
    int64_t seq;
    spool *sp = spool_with(path, sink_name(s), 1, &seq);
    deliver *d = deliver_new(sp, &s, 1, NULL, NULL);
    assert_non_null(d);
    fail_next(2);
    int64_t now = spool_now_ms(), at = 0;
    int delivered = -1;
    /* Two refusals, each retried at its backoff, then accepted. */
    for (int attempt = 1; attempt <= 3; attempt++) {
        assert_int_equal(deliver_once(d, 0, now, &delivered), 1);
        int64_t after = NJ_MAX(now, spool_now_ms());
        assert_int_equal(delivered, attempt == 3);
        if (attempt < 3) {
            /* Not due again before the backoff (counted from the failure,
             * between `now` and `after`)... */
            assert_int_equal(deliver_once(d, 0, now, &delivered), 0);
            assert_int_equal(spool_next_due(sp, sink_name(s), &at), 0);
            int64_t base = 200 << (attempt - 1);
            if (at < now + base / 2 || at > after + base)
                fail_msg("attempt %d: due in %lld ms, want [%lld, %lld]", attempt,
                         (long long)(at - now), (long long)(base / 2), (long long)(after - now + base));
            now = at; /* ...and due at it */
        }
    }
    assert_int_equal(nreq(), 3);
    assert_int_equal(req(0)->status, 503);
    assert_int_equal(req(2)->status, 200);
    assert_string_equal(req(2)->url, "/hook");
    assert_string_equal(req(2)->auth, "Bearer t0k");
    assert_string_equal(req(2)->ctype, "application/json");
    /* A definite refusal is not a redelivery: the body is the verdict. */
    assert_string_equal(req(2)->body, "{\"event\":\"ev-0\",\"verdict\":\"malicious\"}");
    /* Marked once, never sent again. */
    assert_int_equal(deliver_once(d, 0, now + 3600000, &delivered), 0);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.deliveries_delivered, 1);
    assert_int_equal(st.deliveries_pending, 0);
    deliver_free(d);
    spool_close(sp);
    assert_int_equal(raw_int(path, "SELECT attempts FROM deliveries"), 3);
    assert_int_equal(raw_int(path, "SELECT redelivery FROM deliveries"), 0);
    sink_close(s);
}

static int claim_only(const spool_delivery *b, size_t n, void *ud) {
    (void)b; (void)n; (void)ud;
    return 0;
}

static void test_webhook_redelivery_after_crash(void **state) {
    (void)state;
    reset_server();
    char spec[128], path[600];
    snprintf(spec, sizeof spec, "webhook:http://127.0.0.1:%d/hook", g_port);
    snprintf(path, sizeof path, "%s/c.db", nj_test_tmpdir());
    sink *s = open_spec(spec);
    spool *sp = spool_with(path, sink_name(s), 2, NULL);
    /* Claimed (as if sent), then the process "dies" before marking. */
    assert_int_equal(spool_next_delivery(sp, sink_name(s), spool_now_ms(), 1, claim_only, NULL), 1);
    spool_close(sp);
    sp = spool_with(path, sink_name(s), 0, NULL);
    deliver *d = deliver_new(sp, &s, 1, NULL, NULL);
    int delivered;
    assert_int_equal(deliver_once(d, 0, spool_now_ms(), &delivered), 2);
    assert_int_equal(delivered, 2);
    assert_int_equal(nreq(), 2);
    json_t *a = json_loads(req(0)->body, 0, NULL), *b = json_loads(req(1)->body, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(json_is_true(json_object_get(a, "redelivery")));
    assert_string_equal(json_string_value(json_object_get(a, "event")), "ev-0");
    assert_null(json_object_get(b, "redelivery"));
    assert_int_equal(strncmp(req(0)->body, "{\"redelivery\":true,", 19), 0);
    json_decref(a);
    json_decref(b);
    deliver_free(d);
    spool_close(sp);
    sink_close(s);
}

static void test_webhook_timeout_is_maybe(void **state) {
    (void)state;
    reset_server();
    fakehttp_stall(g_http, "/stall", true);
    char spec[128], path[600];
    snprintf(spec, sizeof spec, "webhook:http://127.0.0.1:%d/stall,timeout_ms=300", g_port);
    snprintf(path, sizeof path, "%s/t.db", nj_test_tmpdir());
    sink *s = open_spec(spec);
    spool *sp = spool_with(path, sink_name(s), 1, NULL);
    deliver *d = deliver_new(sp, &s, 1, NULL, NULL);
    int delivered;
    assert_int_equal(deliver_once(d, 0, spool_now_ms(), &delivered), 1);
    assert_int_equal(delivered, 0);
    fakehttp_stall(g_http, "/stall", false);
    deliver_free(d);
    spool_close(sp);
    /* The request went out and no answer came: maybe delivered. */
    assert_int_equal(raw_int(path, "SELECT redelivery FROM deliveries"), 1);
    assert_int_equal(raw_int(path, "SELECT last_error LIKE '%timed out%' FROM deliveries"), 1);
    sink_close(s);

    /* Nothing listening: refused before sending, so not flagged. */
    int port;
    int fd = bind_local(SOCK_STREAM, &port);
    close(fd);
    snprintf(spec, sizeof spec, "webhook:http://127.0.0.1:%d/x", port);
    snprintf(path, sizeof path, "%s/r.db", nj_test_tmpdir());
    s = open_spec(spec);
    sp = spool_with(path, sink_name(s), 2, NULL);
    d = deliver_new(sp, &s, 1, NULL, NULL);
    assert_int_equal(deliver_once(d, 0, spool_now_ms(), &delivered), 2);
    assert_int_equal(delivered, 0);
    deliver_free(d);
    spool_close(sp);
    assert_int_equal(raw_int(path, "SELECT SUM(redelivery) FROM deliveries"), 0);
    assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'"), 2);
    sink_close(s);
}

static void test_webhook_splunk(void **state) {
    (void)state;
    reset_server();
    char spec[160];
    snprintf(spec, sizeof spec,
             "webhook:http://127.0.0.1:%d/services/collector/event,preset=splunk,token=HEC-1", g_port);
    sink *s = open_spec(spec);
    spool_delivery it[3];
    sink_result res[3];
    make_items(it, 3, 40);
    assert_int_equal(sink_send(s, it, 3, res), 3);
    assert_int_equal(nreq(), 1); /* one request for the batch */
    assert_string_equal(req(0)->auth, "Splunk HEC-1");
    /* The body: three HEC event objects back to back. */
    const char *p = req(0)->body;
    for (int i = 0; i < 3; i++) {
        json_error_t je;
        json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        if (!j) fail_msg("HEC event %d: %s", i, je.text);
        assert_string_equal(json_string_value(json_object_get(j, "sourcetype")), "nightjar:verdict");
        double t = json_number_value(json_object_get(j, "time"));
        assert_true(t > 1765106553.1 && t < 1765106553.2);
        json_t *ev = json_object_get(j, "event");
        assert_true(json_is_object(ev));
        char want[16];
        snprintf(want, sizeof want, "e-%d", 40 + i);
        assert_string_equal(json_string_value(json_object_get(ev, "id")), want);
        assert_int_equal(json_is_true(json_object_get(ev, "redelivery")), i == 1);
        p += je.position;
        json_decref(j);
    }
    while (*p == '\n' || *p == ' ') p++;
    assert_int_equal(*p, 0);
    /* Busy: the whole batch is retried. */
    fail_next(1);
    assert_int_equal(sink_send(s, it, 3, res), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(res[i].status, SINK_RETRY);
    assert_non_null(strstr(res[0].error, "HTTP 503"));
    sink_close(s);
}

static void test_webhook_elastic(void **state) {
    (void)state;
    reset_server();
    char spec[160];
    snprintf(spec, sizeof spec, "webhook:http://127.0.0.1:%d/verdicts/_bulk,preset=elastic,token=K",
             g_port);
    sink *s = open_spec(spec);
    spool_delivery it[3];
    sink_result res[3];
    make_items(it, 3, 50);
    it[2].event_id = "other";
    srv.bulk_status[1] = 409; /* already indexed: a redelivery */
    srv.bulk_status[2] = 400;
    assert_int_equal(sink_send(s, it, 3, res), 2);
    assert_int_equal(res[0].status, SINK_OK);
    assert_int_equal(res[1].status, SINK_OK);
    assert_int_equal(res[2].status, SINK_PERMANENT);
    assert_non_null(strstr(res[2].error, "mapper_parsing_exception"));
    assert_int_equal(nreq(), 1);
    assert_string_equal(req(0)->auth, "ApiKey K");
    assert_string_equal(req(0)->ctype, "application/x-ndjson");
    /* NDJSON: action, document, action, document... with stable ids. */
    char *body = strdup(req(0)->body), *save = NULL;   /* strtok_r writes; the record stays as sent */
    assert_non_null(body);
    char ids[3][80];
    int k = 0;
    for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save), k++) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        if (k % 2 == 0) {
            const char *id = json_string_value(json_object_get(json_object_get(j, "create"), "_id"));
            assert_non_null(id);
            assert_int_equal(strlen(id), 64);
            snprintf(ids[k / 2], sizeof ids[0], "%s", id);
        } else {
            assert_true(json_is_object(j));
        }
        json_decref(j);
    }
    free(body);
    assert_int_equal(k, 6);
    assert_string_equal(ids[0], ids[1]);      /* same source and event id */
    assert_string_not_equal(ids[0], ids[2]);
    /* A response that does not match the request: outcome unknown. */
    sink_result r2[2];
    webhook_parse_bulk("{\"items\":[]}", 12, 2, r2);
    assert_int_equal(r2[0].status, SINK_MAYBE);
    webhook_parse_bulk("not json", 8, 1, r2);
    assert_int_equal(r2[0].status, SINK_MAYBE);
    const char *mixed = "{\"items\":[{\"index\":{\"status\":429}},{\"create\":{\"status\":\"x\"}}]}";
    webhook_parse_bulk(mixed, strlen(mixed), 2, r2);
    assert_int_equal(r2[0].status, SINK_RETRY);
    assert_int_equal(r2[1].status, SINK_MAYBE);
    sink_close(s);
}

/* The threaded loop: idle until kicked, delivers, stops cleanly. */
static void test_deliver_threads(void **state) {
    (void)state;
    reset_server();
    char spec[128], jspec[700], path[600];
    const char *dir = nj_test_tmpdir();
    snprintf(spec, sizeof spec, "webhook:http://127.0.0.1:%d/hook", g_port);
    snprintf(jspec, sizeof jspec, "jsonl:%s/v.jsonl", dir);
    snprintf(path, sizeof path, "%s/th.db", dir);
    sink *sinks[2] = {open_spec(spec), open_spec(jspec)};
    const char *names[2] = {sink_name(sinks[0]), sink_name(sinks[1])};
    spool_opts o = {.sinks = names, .n_sinks = 2, .backoff_base_ms = 50, .backoff_cap_ms = 100};
    int err;
    spool *sp = spool_open(path, &o, &err);
    assert_non_null(sp);
    deliver *d = deliver_new(sp, sinks, 2, &(deliver_opts){.batch = 4}, &err);
    assert_non_null(d);
    fail_next(1); /* the first try is refused and retried after the backoff */
    assert_int_equal(deliver_start(d), 0);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", i);
        int64_t s = spool_put_event(sp, id, "x", "{}");
        assert_int_equal(spool_put_verdict(sp, s, "{\"v\":1}"), 0);
        deliver_kick(d);
    }
    wait_requests(11); /* 10 verdicts + the refused one */
    /* Wait for the marks to be committed as well. */
    spool_stats st = {0};
    for (int64_t deadline = spool_now_ms() + 10000; spool_now_ms() < deadline;) {
        assert_int_equal(spool_stats_get(sp, &st), 0);
        if (st.deliveries_delivered == 20) break;
        struct pollfd none;
        poll(&none, 0, 10); /* condition poll with a deadline */
    }
    assert_int_equal(st.deliveries_delivered, 20);
    deliver_free(d);
    spool_close(sp);
    sink_close(sinks[0]);
    sink_close(sinks[1]);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_spec_parse_valid),
        cmocka_unit_test(test_spec_parse_errors),
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_json_ascii),
        cmocka_unit_test(test_sink_alloc_faults),
        cmocka_unit_test(test_jsonl_rotation),
        cmocka_unit_test(test_jsonl_partial_write),
        cmocka_unit_test(test_syslog_udp),
        cmocka_unit_test(test_syslog_tcp),
        cmocka_unit_test(test_syslog_unix),
    };
    const struct CMUnitTest http[] = {
        cmocka_unit_test(test_webhook_retry_then_deliver),
        cmocka_unit_test(test_webhook_redelivery_after_crash),
        cmocka_unit_test(test_webhook_timeout_is_maybe),
        cmocka_unit_test(test_webhook_splunk),
        cmocka_unit_test(test_webhook_elastic),
        cmocka_unit_test(test_deliver_threads),
    };
    int fails = cmocka_run_group_tests_name("sinks", plain, NULL, NULL);
    fails += cmocka_run_group_tests_name("sinks_http", http, server_up, server_down);
    return fails;
}
