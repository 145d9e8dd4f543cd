/*
 * test_parsers — every fixture in tests/data/events/<format>/ parsed and
 * compared with the expected canonical events beside it (X.expected.jsonl,
 * one compact event per line) and the expected error reports (X.errors,
 * "LINE: reason" per line; absent = no errors).  Options for a fixture come
 * from X.opts.json (the keys parse-dump reads).  Then targeted tests of the
 * corners: interleaved and bounded auditd serials, hex and split arguments,
 * both audit_token forms, sshd year inference, malformed lines, and
 * allocation failure at every point of every parser (clean -ENOMEM, no
 * leak, parser still usable).
 *
 * NJ_UPDATE_EXPECTED=1 rewrites the expected files from the current output
 * instead of comparing (review the diff before committing it).
 * NJ_EVENT_DATA overrides the fixture directory (default tests/data/events,
 * relative to the repository root where `make` runs the tests).
 */
#include "parse.h"
#include "event.h"
#include "util.h"
#include "testutil.h"

#include <jansson.h>

/* ---- collecting output ------------------------------------------------ */

typedef struct sink {
    char **ev;        /* dumped events */
    int nev, cap;
    char errs[16384]; /* "LINE: reason\n"... */
    size_t elen;
    int nerr;
    bool blank_time;  /* replace "time" (cmdline events carry "now") */
    int fail_emit_at; /* emit returns -EIO on this event (1-based), 0 = never */
} sink;

static int sink_emit(void *ctx, json_t *ev) {
    sink *s = ctx;
    int rc = 0;
    if (s->fail_emit_at && s->nev + 1 == s->fail_emit_at) rc = -EIO;
    if (s->blank_time) json_object_set_new(ev, "time", json_string("TIME"));
    char *d = s->blank_time ? json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER) : event_dump(ev, NULL);
    json_decref(ev);
    if (!d) return rc ? rc : -ENOMEM;
    if (s->nev == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->ev = realloc(s->ev, (size_t)s->cap * sizeof *s->ev);
    }
    s->ev[s->nev++] = strdup(d);
    nj_free(d);
    return rc;
}

static void sink_error(void *ctx, const char *src, long line, const char *reason) {
    (void)src;
    sink *s = ctx;
    s->nerr++;
    int k = snprintf(s->errs + s->elen, sizeof s->errs - s->elen, "%ld: %s\n", line, reason);
    if (k > 0 && s->elen + (size_t)k < sizeof s->errs) s->elen += (size_t)k;
}

static void sink_free(sink *s) {
    for (int i = 0; i < s->nev; i++) free(s->ev[i]);
    free(s->ev);
    memset(s, 0, sizeof *s);
}

/* ---- files ------------------------------------------------------------ */

static const char *data_dir(void) {
    const char *d = getenv("NJ_EVENT_DATA");
    return d ? d : "tests/data/events";
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); fclose(f); return NULL; }
    b[sz] = 0;
    fclose(f);
    if (n) *n = (size_t)sz;
    return b;
}

/* Reads the fixture's options sidecar into o (strings kept alive in *keep). */
static void load_opts(const char *fixture, parser_opts *o, json_t **keep) {
    char p[1100];
    snprintf(p, sizeof p, "%s.opts.json", fixture);
    *keep = NULL;
    char *t = slurp(p, NULL);
    if (!t) return;
    json_error_t je;
    json_t *j = json_loads(t, 0, &je);
    free(t);
    if (!j) fail_msg("%s: %s", p, je.text);
    const char *rt = json_string_value(json_object_get(j, "reference_time"));
    if (rt) { long us; assert_int_equal(event_time_parse(rt, strlen(rt), &o->reference_time, &us), 0); }
    o->tz_offset_min = (int)json_integer_value(json_object_get(j, "tz_offset_min"));
    o->agg_window = (int)json_integer_value(json_object_get(j, "agg_window"));
    o->agg_threshold = (int)json_integer_value(json_object_get(j, "agg_threshold"));
    o->reorder = (int)json_integer_value(json_object_get(j, "reorder"));
    o->max_pending = (int)json_integer_value(json_object_get(j, "max_pending"));
    o->mapping_file = json_string_value(json_object_get(j, "mapping_file"));
    o->host = json_string_value(json_object_get(j, "host"));
    o->no_raw = json_is_true(json_object_get(j, "no_raw"));
    *keep = j;
}

/* Feeds text line by line (the last line may lack its newline). */
static int feed_text(parser *p, const char *t, size_t n) {
    long ln = 0;
    size_t i = 0;
    int first = 0;
    while (i < n) {
        const char *e = memchr(t + i, '\n', n - i);
        size_t len = e ? (size_t)(e - (t + i)) + 1 : n - i;
        int rc = parser_feed(p, t + i, len, ++ln);
        if (rc && !first) first = rc;
        i += len;
    }
    int rc = parser_flush(p);
    return first ? first : rc;
}

/* Parses a fixture with its options; fills s.  Returns feed's result. */
static int run_fixture(const char *format, const char *path, sink *s, int *perr) {
    parser_opts o = {.emit = sink_emit, .on_error = sink_error, .ctx = s};
    const char *base = strrchr(path, '/');
    o.source_name = base ? base + 1 : path;
    json_t *keep;
    load_opts(path, &o, &keep);
    size_t n;
    char *t = slurp(path, &n);
    if (!t) fail_msg("cannot read %s", path);
    int err = 0;
    parser *p = parser_new(format, &o, &err);
    if (perr) *perr = err;
    int rc = err;
    if (p) rc = feed_text(p, t, n);
    parser_free(p);
    free(t);
    json_decref(keep);
    return rc;
}

/* ---- the fixture table ------------------------------------------------ */

typedef struct fixture { const char *format, *file; } fixture;

static const fixture k_fixtures[] = {
    {"auditd", "auditd/golibaudit-out-of-order.log"},
    {"auditd", "auditd/golibaudit-test3.log"},
    {"auditd", "auditd/golibaudit-ubuntu16.log"},
    {"auditd", "auditd/golibaudit-ubuntu-16.10-linux-4.8.0.log"},
    {"auditd", "auditd/golibaudit-ubuntu-24.04-linux-6.8.0.log"},
    {"auditd", "auditd/beats-audit-cent7-node.log"},
    {"auditd", "auditd/beats-execve-hex-arg.log"},
    {"auditd", "auditd/own-corners.log"},
    {"sshd", "sshd/beats-test.log"},
    {"sshd", "sshd/beats-timestamp.log"},
    {"sshd", "sshd/beats-secure-rhel7-head.log"},
    {"sshd", "sshd/own-forms.log"},
    {"sshd", "sshd/own-journal.jsonl"},
    {"sshd", "sshd/own-bruteforce.log"},
    {"eslogger", "eslogger/own-macos15-26.jsonl"},
    {"osquery", "osquery/docs-logging.jsonl"},
    {"osquery", "osquery/own-events.jsonl"},
    {"sysmon", "sysmon/own-syslog.log"},
    {"jsonl", "jsonl/edr-export.jsonl"},
    {"cmdline", "cmdline/commands.txt"},
};

static void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fwrite(text, 1, n, f);
    fclose(f);
}

static void test_fixtures(void **state) {
    (void)state;
    bool update = getenv("NJ_UPDATE_EXPECTED") != NULL;
    int failures = 0;
    for (size_t k = 0; k < NJ_ARRAY_LEN(k_fixtures); k++) {
        char path[1024], exp[1100], errp[1100];
        snprintf(path, sizeof path, "%s/%s", data_dir(), k_fixtures[k].file);
        snprintf(exp, sizeof exp, "%s.expected.jsonl", path);
        snprintf(errp, sizeof errp, "%s.errors", path);
        sink s = {.blank_time = !strcmp(k_fixtures[k].format, "cmdline")};
        int err = 0;
        int rc = run_fixture(k_fixtures[k].format, path, &s, &err);
        if (rc) fail_msg("%s: parser returned %d (%s)", path, rc, nj_last_error());
        /* every event is canonical: re-parse and validate the dump */
        for (int i = 0; i < s.nev && !s.blank_time; i++) {
            int e2 = 0;
            json_t *back = event_parse(s.ev[i], strlen(s.ev[i]), &e2);
            if (!back) fail_msg("%s: event %d does not validate: %s", path, i + 1, nj_last_error());
            json_decref(back);
        }
        if (update) {
            size_t tot = 0;
            for (int i = 0; i < s.nev; i++) tot += strlen(s.ev[i]) + 1;
            char *all = malloc(tot + 1);
            size_t o = 0;
            for (int i = 0; i < s.nev; i++) { size_t l = strlen(s.ev[i]); memcpy(all + o, s.ev[i], l); o += l; all[o++] = '\n'; }
            write_file(exp, all, o);
            free(all);
            if (s.elen) write_file(errp, s.errs, s.elen); else remove(errp);
            sink_free(&s);
            continue;
        }
        size_t en;
        char *want = slurp(exp, &en);
        if (!want) fail_msg("%s: missing (run with NJ_UPDATE_EXPECTED=1 and review)", exp);
        /* line-by-line comparison, naming the first difference */
        char *save = NULL;
        int i = 0;
        bool bad = false;
        for (char *line = strtok_r(want, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
            if (i >= s.nev) { print_error("%s: expected event %d missing:\n  %s\n", path, i + 1, line); bad = true; break; }
            if (strcmp(line, s.ev[i]) != 0) {
                print_error("%s: event %d differs\n  want %s\n  got  %s\n", path, i + 1, line, s.ev[i]);
                bad = true;
                break;
            }
        }
        if (!bad && s.nev > i) { print_error("%s: %d unexpected extra events, first:\n  %s\n", path, s.nev - i, s.ev[i]); bad = true; }
        failures += bad;
        free(want);
        char *werr = slurp(errp, NULL);
        const char *we = werr ? werr : "";
        if (strcmp(we, s.errs) != 0) {
            print_error("%s: error reports differ\n--- want\n%s--- got\n%s", path, we, s.errs);
            failures++;
        }
        free(werr);
        sink_free(&s);
    }
    assert_int_equal(failures, 0);
}

/* ---- targeted tests --------------------------------------------------- */

typedef struct run { sink s; parser *p; } run;

static void run_start(run *r, const char *fmt, parser_opts o) {
    memset(r, 0, sizeof *r);
    o.emit = sink_emit;
    o.on_error = sink_error;
    o.ctx = &r->s;
    int err = 0;
    r->p = parser_new(fmt, &o, &err);
    if (!r->p) fail_msg("parser_new(%s): %s", fmt, nj_last_error());
}
static void feed(run *r, const char *line, long ln) { assert_int_equal(parser_feed(r->p, line, strlen(line), ln), 0); }
static void run_end(run *r) { parser_free(r->p); sink_free(&r->s); }

static json_t *ev_at(run *r, int i) {
    assert_true(i < r->s.nev);
    json_t *j = json_loads(r->s.ev[i], 0, NULL);
    assert_non_null(j);
    return j;
}

/* Serials interleave; a serial is held until its EOE or until `reorder`
 * newer serials have started after it. */
static void test_auditd_interleaved(void **state) {
    (void)state;
    run r;
    run_start(&r, "auditd", (parser_opts){.reorder = 2});
    feed(&r, "type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=59 success=yes pid=10 ppid=1 uid=0 comm=\"a\" exe=\"/bin/a\"", 1);
    feed(&r, "type=SYSCALL msg=audit(100.001:2): arch=c000003e syscall=59 success=yes pid=11 ppid=10 uid=0 comm=\"b\" exe=\"/bin/b\"", 2);
    feed(&r, "type=EXECVE msg=audit(100.000:1): argc=2 a0=\"a\" a1=\"one\"", 3);
    feed(&r, "type=EXECVE msg=audit(100.001:2): argc=2 a0=\"b\" a1=\"two\"", 4);
    assert_int_equal(r.s.nev, 0);                    /* both still held */
    feed(&r, "type=SYSCALL msg=audit(100.002:3): arch=c000003e syscall=2 success=yes pid=12 ppid=1 uid=0", 5);
    assert_int_equal(r.s.nev, 1);                    /* serial 1 has seen two newer serials */
    feed(&r, "type=SYSCALL msg=audit(100.003:4): arch=c000003e syscall=2 success=yes pid=13 ppid=1 uid=0", 6);
    assert_int_equal(r.s.nev, 2);                    /* and now serial 2 */
    json_t *a = ev_at(&r, 0), *b = ev_at(&r, 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "process"), "cmdline")), "a one");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "process"), "cmdline")), "b two");
    /* the second exec's parent (pid 10) came from the process table */
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "parent"), "path")), "/bin/a");
    json_decref(a); json_decref(b);
    assert_int_equal(parser_flush(r.p), 0);
    assert_int_equal(r.s.nev, 4);
    run_end(&r);
    /* reorder 1: a serial completes as soon as a newer one starts */
    run_start(&r, "auditd", (parser_opts){.reorder = 1});
    feed(&r, "type=SYSCALL msg=audit(100.000:1): arch=c000003e syscall=59 success=yes pid=10 ppid=1 uid=0", 1);
    feed(&r, "type=SYSCALL msg=audit(100.001:2): arch=c000003e syscall=59 success=yes pid=11 ppid=1 uid=0", 2);
    assert_int_equal(r.s.nev, 1);
    run_end(&r);
}

/* At most max_pending serials are held, whatever the input. */
static void test_auditd_bound(void **state) {
    (void)state;
    run r;
    run_start(&r, "auditd", (parser_opts){.max_pending = 8, .reorder = 1000});
    char line[256];
    for (int i = 0; i < 1000; i++) {
        snprintf(line, sizeof line, "type=SYSCALL msg=audit(200.%03d:%d): arch=c000003e syscall=2 success=yes pid=%d ppid=1 uid=0", i % 1000, 1000 + i, 100 + i);
        feed(&r, line, i + 1);
        assert_true(r.s.nev >= i + 1 - 8);
    }
    assert_int_equal(r.s.nev, 1000 - 8);
    parser_flush(r.p);
    assert_int_equal(r.s.nev, 1000);
    run_end(&r);
}

/* Hex-encoded and split arguments, hex PROCTITLE with NUL separators. */
static void test_auditd_hex_split(void **state) {
    (void)state;
    run r;
    run_start(&r, "auditd", (parser_opts){0});
    /* "a b" hex; a1 split in two hex pieces "hello " + "world" */
    feed(&r, "type=EXECVE msg=audit(300.000:7): argc=3 a0=612062 a1_len=11 a1[0]=68656C6C6F20 a1[1]=776F726C64 a2=\"z\"", 1);
    feed(&r, "type=EOE msg=audit(300.000:7): ", 2);
    feed(&r, "type=SYSCALL msg=audit(300.001:8): arch=c000003e syscall=59 success=yes pid=5 ppid=1 uid=0 exe=\"/bin/x\"", 3);
    feed(&r, "type=PROCTITLE msg=audit(300.001:8): proctitle=2F62696E2F78002D2D666C61670061726720776974682073706163650A", 4);
    feed(&r, "type=EOE msg=audit(300.001:8): ", 5);
    assert_int_equal(r.s.nev, 2);
    json_t *a = ev_at(&r, 0), *b = ev_at(&r, 1);
    json_t *argv = json_object_get(json_object_get(a, "process"), "argv");
    assert_int_equal(json_array_size(argv), 3);
    assert_string_equal(json_string_value(json_array_get(argv, 0)), "a b");
    assert_string_equal(json_string_value(json_array_get(argv, 1)), "hello world");
    assert_string_equal(json_string_value(json_array_get(argv, 2)), "z");
    argv = json_object_get(json_object_get(b, "process"), "argv");
    assert_int_equal(json_array_size(argv), 3);
    assert_string_equal(json_string_value(json_array_get(argv, 2)), "arg with space\n");
    json_decref(a); json_decref(b);
    run_end(&r);
}

/* The audit token as an object (message version 9) and as eight integers
 * (version 10) give the same process and user. */
static void test_eslogger_tokens(void **state) {
    (void)state;
    const char *obj = "{\"event_type\":11,\"time\":\"2026-12-07T10:00:00Z\",\"version\":9,"
                      "\"process\":{\"audit_token\":{\"pid\":100,\"euid\":0,\"ruid\":501,\"auid\":501},\"executable\":{\"path\":\"\\/bin\\/zsh\"}},"
                      "\"event\":{\"fork\":{\"child\":{\"audit_token\":{\"auid\":501,\"ruid\":501,\"euid\":0,\"pid\":101},\"ppid\":100,"
                      "\"executable\":{\"path\":\"\\/bin\\/zsh\"}}}}}";
    const char *arr = "{\"version\":10,\"event\":{\"fork\":{\"child\":{\"ppid\":100,\"audit_token\":[501,0,20,501,20,101,100013,7],"
                      "\"executable\":{\"path\":\"/bin/zsh\"}}}},\"time\":\"2026-12-07T10:00:00Z\",\"event_type\":11,"
                      "\"process\":{\"audit_token\":[501,0,20,501,20,100,100013,6],\"executable\":{\"path\":\"/bin/zsh\"}}}";
    char *out[2];
    for (int k = 0; k < 2; k++) {
        run r;
        run_start(&r, "eslogger", (parser_opts){.no_raw = true});
        feed(&r, k ? arr : obj, 1);
        assert_int_equal(r.s.nev, 1);
        json_t *e = ev_at(&r, 0);
        json_t *pr = json_object_get(e, "process"), *us = json_object_get(e, "user");
        assert_int_equal(json_integer_value(json_object_get(pr, "pid")), 101);
        assert_int_equal(json_integer_value(json_object_get(pr, "ppid")), 100);
        assert_int_equal(json_integer_value(json_object_get(us, "uid")), 501);
        assert_int_equal(json_integer_value(json_object_get(us, "euid")), 0);
        assert_int_equal(json_integer_value(json_object_get(us, "auid")), 501);
        json_object_del(e, "id");
        out[k] = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(e);
        run_end(&r);
    }
    assert_string_equal(out[0], out[1]);
    nj_free(out[0]); nj_free(out[1]);
}

/* RFC 3164 has no year: the year is the latest one not after the reference
 * time + 1 day. */
static void test_sshd_year(void **state) {
    (void)state;
    int64_t ref; long us;
    assert_int_equal(event_time_parse("2027-01-02T00:00:00Z", 20, &ref, &us), 0);
    run r;
    run_start(&r, "sshd", (parser_opts){.reference_time = ref, .agg_threshold = -1, .no_raw = true});
    feed(&r, "Dec 31 23:59:59 h sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2", 1);
    feed(&r, "Jan  2 10:00:00 h sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2", 2);
    feed(&r, "Jan  3 10:00:00 h sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2", 3);
    assert_int_equal(r.s.nev, 3);
    const char *want[] = {"2026-12-31T23:59:59.000000Z", "2027-01-02T10:00:00.000000Z", "2026-01-03T10:00:00.000000Z"};
    for (int i = 0; i < 3; i++) {
        json_t *e = ev_at(&r, i);
        assert_string_equal(json_string_value(json_object_get(e, "time")), want[i]);
        json_decref(e);
    }
    run_end(&r);
    /* a zone offset for zone-less stamps */
    run_start(&r, "sshd", (parser_opts){.reference_time = ref, .tz_offset_min = 60, .agg_threshold = -1});
    feed(&r, "Jan  1 01:00:00 h sshd[1]: Invalid user x from 192.0.2.1", 1);
    json_t *e = ev_at(&r, 0);
    assert_string_equal(json_string_value(json_object_get(e, "time")), "2027-01-01T00:00:00.000000Z");
    json_decref(e);
    run_end(&r);
}

/* Malformed lines are reported with their number and skipped; parsing goes on. */
static void test_malformed_reported(void **state) {
    (void)state;
    static const struct { const char *fmt, *bad, *good, *reason; } k[] = {
        {"auditd", "garbage", "type=USER_AUTH msg=audit(1.000:1): pid=1 uid=0 msg='acct=\"a\" exe=\"/usr/sbin/sshd\" addr=192.0.2.1 res=failed'", "not an audit record"},
        {"eslogger", "{\"event\":", "{\"event_type\":15,\"time\":\"2026-01-01T00:00:00Z\",\"process\":{\"audit_token\":{\"pid\":5}},\"event\":{\"exit\":{\"stat\":0}}}", "invalid JSON"},
        {"osquery", "[]", "{\"name\":\"p\",\"unixTime\":1,\"action\":\"added\",\"columns\":{\"pid\":\"5\",\"path\":\"/bin/x\"}}", "osquery: expected a JSON object"},
        {"sysmon", "no xml here", "x sysmon: <Event><System><EventID>5</EventID><TimeCreated SystemTime=\"2026-01-01T00:00:00Z\"/></System><EventData><Data Name=\"ProcessId\">5</Data></EventData></Event>", "sysmon: no <Event>"},
        {"sshd", "???", "Jan  1 00:00:00 h sshd[1]: Invalid user x from 192.0.2.1", "no syslog header"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(k); i++) {
        run r;
        run_start(&r, k[i].fmt, (parser_opts){.agg_threshold = -1, .reference_time = 1796637600});
        feed(&r, k[i].good, 1);
        feed(&r, k[i].bad, 2);
        feed(&r, k[i].good, 3);
        parser_flush(r.p);
        if (r.s.nev != 2) fail_msg("%s: %d events, want 2 (errors: %s)", k[i].fmt, r.s.nev, r.s.errs);
        assert_int_equal(r.s.nerr, 1);
        char want[128];
        snprintf(want, sizeof want, "2: %s", k[i].reason);
        if (strncmp(r.s.errs, want, strlen(want)) != 0) fail_msg("%s: report '%s', want prefix '%s'", k[i].fmt, r.s.errs, want);
        parser_stats st;
        parser_get_stats(r.p, &st);
        assert_int_equal(st.lines, 3);
        assert_int_equal(st.events, 2);
        assert_int_equal(st.errors, 1);
        run_end(&r);
    }
}

static void test_parser_new_errors(void **state) {
    (void)state;
    int err = 0;
    parser_opts o = {.emit = sink_emit};
    assert_null(parser_new("evtx", &o, &err));
    assert_int_equal(err, -EINVAL);
    assert_non_null(strstr(nj_last_error(), "unknown format"));
    assert_null(parser_new("auditd", &(parser_opts){0}, &err));
    assert_int_equal(err, -EINVAL);
    assert_null(parser_new("jsonl", &o, &err));                   /* no mapping */
    assert_int_equal(err, -EINVAL);
    o.mapping_json = "{\"fields\":{\"process.colour\":\"c\"}}";
    assert_null(parser_new("jsonl", &o, &err));
    assert_non_null(strstr(nj_last_error(), "fields.process.colour: not a canonical field"));
    o.mapping_json = "{\"fields\":{\"process.pid\":\"pid\"}}";
    assert_null(parser_new("jsonl", &o, &err));
    assert_non_null(strstr(nj_last_error(), "\"kind\" and \"time\" must be mapped"));
    for (int i = 0; parser_formats[i]; i++) {
        parser_opts ok = {.emit = sink_emit, .mapping_json = "{\"fields\":{\"time\":\"t\"},\"defaults\":{\"kind\":\"other\"}}"};
        parser *p = parser_new(parser_formats[i], &ok, &err);
        assert_non_null(p);
        parser_free(p);
    }
}

/* An emit error stops nothing silently: it comes back from feed/flush. */
static void test_emit_error_propagates(void **state) {
    (void)state;
    sink s = {.fail_emit_at = 1};
    parser_opts o = {.emit = sink_emit, .ctx = &s, .agg_threshold = -1};
    parser *p = parser_new("sshd", &o, NULL);
    const char *l = "Jan  1 00:00:00 h sshd[1]: Invalid user x from 192.0.2.1";
    assert_int_equal(parser_feed(p, l, strlen(l), 1), -EIO);
    assert_int_equal(parser_feed(p, l, strlen(l), 2), 0);
    parser_free(p);
    sink_free(&s);
}

/* Allocation failure at every point of every parser on a fixture: each
 * call returns 0 or -ENOMEM, nothing leaks, and a later run is complete. */
static void fault_one(const char *format, const char *file, size_t max_lines) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", data_dir(), file);
    size_t n;
    char *t = slurp(path, &n);
    assert_non_null(t);
    /* keep the first max_lines lines */
    size_t cut = 0, lines = 0;
    while (cut < n && lines < max_lines) { if (t[cut++] == '\n') lines++; }
    n = cut;
    event_init();
    sink ref = {0};
    parser_opts o = {.emit = sink_emit, .on_error = sink_error, .ctx = &ref, .agg_threshold = 2,
                     .reference_time = 1796637600, .mapping_file = "tests/data/events/jsonl/edr-export.mapping.json"};
    parser *p = parser_new(format, &o, NULL);
    assert_non_null(p);
    assert_int_equal(feed_text(p, t, n), 0);
    parser_free(p);
    size_t before = nj_mem_in_use();
    bool completed = false;
    for (long k = 0; k < 100000 && !completed; k++) {
        sink s = {0};
        o.ctx = &s;
        nj_alloc_fail_after(k);
        int err = 0, rc = 0;
        p = parser_new(format, &o, &err);
        if (!p) {
            if (err != -ENOMEM) fail_msg("%s k=%ld: parser_new err %d (%s)", format, k, err, nj_last_error());
        } else {
            long ln = 0;
            size_t i = 0;
            while (i < n) {
                const char *e = memchr(t + i, '\n', n - i);
                size_t len = e ? (size_t)(e - (t + i)) + 1 : n - i;
                int r = parser_feed(p, t + i, len, ++ln);
                if (r && r != -ENOMEM) fail_msg("%s k=%ld line %ld: %d (%s)", format, k, ln, r, nj_last_error());
                if (r && !rc) rc = r;
                i += len;
            }
            int r = parser_flush(p);
            if (r && r != -ENOMEM) fail_msg("%s k=%ld flush: %d", format, k, r);
            if (r && !rc) rc = r;
            parser_free(p);
            /* a run that reports no failure must equal the reference: an
             * allocation failure may never pass as a malformed line or a
             * lost event */
            if (!rc) {
                if (s.nev != ref.nev || s.nerr != ref.nerr || strcmp(s.errs, ref.errs) != 0)
                    fail_msg("%s k=%ld: run without error differs from the reference (%d/%d events, %d/%d errors: %s)",
                             format, k, s.nev, ref.nev, s.nerr, ref.nerr, s.errs);
                for (int j = 0; j < s.nev; j++)
                    if (strcmp(s.ev[j], ref.ev[j]) != 0) fail_msg("%s k=%ld: event %d differs:\n%s\n%s", format, k, j, s.ev[j], ref.ev[j]);
                completed = true;
            }
        }
        nj_alloc_fail_after(-1);
        sink_free(&s);
        if (nj_mem_in_use() != before)
            fail_msg("%s k=%ld: %zu bytes leaked", format, k, nj_mem_in_use() - before);
    }
    sink_free(&ref);
    free(t);
    assert_true(completed);
}

static void test_alloc_failure(void **state) {
    (void)state;
    fault_one("auditd", "auditd/own-corners.log", 40);
    fault_one("auditd", "auditd/golibaudit-out-of-order.log", 40);
    fault_one("eslogger", "eslogger/own-macos15-26.jsonl", 8);
    fault_one("sshd", "sshd/own-bruteforce.log", 20);
    fault_one("sshd", "sshd/own-journal.jsonl", 20);
    fault_one("osquery", "osquery/own-events.jsonl", 20);
    fault_one("sysmon", "sysmon/own-syslog.log", 20);
    fault_one("jsonl", "jsonl/edr-export.jsonl", 20);
}

int main(void) {
    event_init();   /* jansson's allocator must be set before any JSON is built */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_auditd_interleaved),
        cmocka_unit_test(test_auditd_bound),
        cmocka_unit_test(test_auditd_hex_split),
        cmocka_unit_test(test_eslogger_tokens),
        cmocka_unit_test(test_sshd_year),
        cmocka_unit_test(test_malformed_reported),
        cmocka_unit_test(test_parser_new_errors),
        cmocka_unit_test(test_emit_error_propagates),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("parsers", tests, NULL, NULL);
}
