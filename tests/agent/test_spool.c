/* test_spool — the durable spool: idempotent puts, ordering, one verdict per
 * event, the delivery state machine and its backoff, retention, source
 * offsets, schema versions; then crash safety (a child SIGKILLed at random
 * points while it writes, 20 seeds) and I/O faults (a full tmpfs when
 * mounting is permitted, a file-size rlimit always), and allocation faults.
 *
 * Children report what the spool acknowledged through a pipe before going
 * on; the parent checks every acknowledged row after reopening.  Waits are
 * poll() with deadlines, never fixed sleeps. */
#include "testutil.h"
#include "spool.h"
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_path[600];
static char big_json[2100];
static void fill_big(void);

static const char *fresh_path(const char *name) {
    const char *d = nj_test_tmpdir();
    assert_non_null(d);
    snprintf(g_path, sizeof g_path, "%s/%s", d, name);
    return g_path;
}

static spool *open_sinks(const char *path, const char *const *sinks, size_t n) {
    spool_opts o = {.sinks = sinks, .n_sinks = n, .seed = 42};
    int err = 0;
    spool *sp = spool_open(path, &o, &err);
    if (!sp) fail_msg("spool_open(%s): %s: %s", path, nj_strerror(err), nj_last_error());
    return sp;
}

/* Single-value query on the raw file (a second connection: WAL readers do
 * not block the spool). */
static int64_t raw_int(const char *path, const char *q) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* --------------------------------------------------------- basics --- */

static void test_open_modes_and_lock(void **state) {
    (void)state;
    const char *d = nj_test_tmpdir();
    char path[700];
    snprintf(path, sizeof path, "%s/a/b/spool.db", d);
    spool *sp = open_sinks(path, NULL, 0);
    struct stat sb;
    char dir[700];
    snprintf(dir, sizeof dir, "%s/a/b", d);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_true(spool_put_event(sp, "e1", "src", "{\"v\":1}") > 0);
    char wal[720];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* A second owner is refused while the first holds it. */
    int err = 0;
    assert_null(spool_open(path, NULL, &err));
    assert_int_equal(err, -EBUSY);
    assert_non_null(strstr(nj_last_error(), "in use"));
    spool_close(sp);
    /* A loosened file is tightened on open. */
    assert_int_equal(chmod(path, 0644), 0);
    sp = open_sinks(path, NULL, 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(raw_int(path, "PRAGMA journal_mode = WAL") >= 0, 1);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), SPOOL_SCHEMA_VERSION);
    assert_int_equal(raw_int(path, "PRAGMA auto_vacuum"), 2);
    spool_close(sp);
}

static void test_schema_version_and_garbage(void **state) {
    (void)state;
    const char *path = fresh_path("new.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    int err = 0;
    assert_null(spool_open(path, NULL, &err));
    assert_int_equal(err, NJ_EUNSUPPORTED);
    assert_non_null(strstr(nj_last_error(), "newer"));

    path = fresh_path("junk.db");
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 3);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    assert_null(spool_open(path, NULL, &err));
    assert_int_equal(err, NJ_EFORMAT);
    assert_non_null(strstr(nj_last_error(), "corrupt"));
}

static void test_idempotent_put(void **state) {
    (void)state;
    spool *sp = open_sinks(fresh_path("idem.db"), NULL, 0);
    int64_t a = spool_put_event(sp, "id-1", "auditd", "{\"id\":\"id-1\"}");
    int64_t b = spool_put_event(sp, "id-2", "auditd", "{\"id\":\"id-2\"}");
    assert_true(a > 0 && b > a);
    /* Same id, same source: the existing seq, nothing new stored. */
    assert_int_equal(spool_put_event(sp, "id-1", "auditd", "{\"changed\":1}"), a);
    /* Same id from another source is another event. */
    int64_t c = spool_put_event(sp, "id-1", "sshd", "{}");
    assert_true(c > b);
    /* A batch with a duplicate of a stored event and one inside itself. */
    spool_event_in evs[] = {
        {"id-3", "auditd", "{}"}, {"id-1", "auditd", "{}"}, {"id-3", "auditd", "{}"},
    };
    int64_t seqs[3];
    assert_int_equal(spool_put_events(sp, evs, 3, NULL, seqs), 1);
    assert_int_equal(seqs[1], a);
    assert_int_equal(seqs[0], seqs[2]);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.events_pending, 4);
    assert_int_equal(st.duplicates_ignored, 3);
    /* Bad input gets a clear error, not a crash. */
    assert_int_equal(spool_put_event(sp, "", "auditd", "{}"), -EINVAL);
    assert_int_equal(spool_put_event(sp, "x", "auditd", NULL), -EINVAL);
    assert_int_equal(spool_put_event(sp, "x", NULL, "{}"), -EINVAL);
    spool_close(sp);
}

struct collect { int64_t seq[64]; char id[64][32]; int n; int stop_at; };

static int collect_ev(const spool_event *ev, void *ud) {
    struct collect *c = ud;
    c->seq[c->n] = ev->seq;
    snprintf(c->id[c->n], sizeof c->id[0], "%s", ev->id);
    c->n++;
    return c->stop_at && c->n == c->stop_at ? 7 : 0;
}

static void test_pending_order_and_one_verdict(void **state) {
    (void)state;
    static const char *const sinks[] = {"jsonl:/x"};
    spool *sp = open_sinks(fresh_path("order.db"), sinks, 1);
    int64_t seq[10];
    for (int i = 0; i < 10; i++) {
        char id[16], js[64];
        snprintf(id, sizeof id, "e%d", i);
        snprintf(js, sizeof js, "{\"n\":%d}", i);
        seq[i] = spool_put_event(sp, id, "s", js);
        assert_true(seq[i] > 0);
        if (i) assert_true(seq[i] > seq[i - 1]);
    }
    struct collect c = {0};
    assert_int_equal(spool_next_pending(sp, 0, 4, collect_ev, &c), 4);
    for (int i = 0; i < 4; i++) assert_int_equal(c.seq[i], seq[i]);
    assert_string_equal(c.id[3], "e3");
    memset(&c, 0, sizeof c);
    assert_int_equal(spool_next_pending(sp, seq[6], 100, collect_ev, &c), 3);
    assert_int_equal(c.seq[0], seq[7]);
    /* A callback's nonzero return stops and is returned. */
    memset(&c, 0, sizeof c);
    c.stop_at = 2;
    assert_int_equal(spool_next_pending(sp, 0, 100, collect_ev, &c), 7);
    assert_int_equal(c.n, 2);

    assert_int_equal(spool_put_verdict(sp, seq[2], "{\"verdict\":\"benign\"}"), 0);
    assert_int_equal(spool_put_verdict(sp, seq[2], "{\"verdict\":\"malicious\"}"), -EEXIST);
    assert_non_null(strstr(nj_last_error(), "already has a verdict"));
    assert_int_equal(spool_put_verdict(sp, 99999, "{}"), -ENOENT);
    memset(&c, 0, sizeof c);
    assert_int_equal(spool_next_pending(sp, 0, 100, collect_ev, &c), 9);
    for (int i = 0; i < c.n; i++) assert_true(c.seq[i] != seq[2]);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.events_judged, 1);
    assert_int_equal(st.deliveries_pending, 1);
    spool_close(sp);
    assert_int_equal(raw_int(g_path, "SELECT COUNT(*) FROM verdicts"), 1);
    assert_int_equal(raw_int(g_path, "SELECT COUNT(*) FROM verdicts WHERE verdict_json LIKE '%benign%'"), 1);
}

/* Damaged pages are reported as corruption, never crash or pass silently. */
static void test_corrupt_pages(void **state) {
    (void)state;
    fill_big();
    const char *path = fresh_path("corrupt.db");
    spool *sp = open_sinks(path, NULL, 0);
    for (int i = 0; i < 64; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        assert_true(spool_put_event(sp, id, "s", big_json) > 0);
    }
    assert_int_equal(spool_check(sp), 0);
    spool_close(sp); /* checkpoints the WAL into the main file */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size >= 16 * 4096);
    /* Scribble over pages 3..12 (B-tree pages of the tables and indexes). */
    int fd = open(path, O_WRONLY);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(0xa5 ^ (i * 31));
    for (int pg = 2; pg < 12; pg++)
        assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)pg * 4096), (ssize_t)sizeof junk);
    close(fd);
    int err = 0;
    sp = spool_open(path, NULL, &err);
    if (!sp) {
        assert_int_equal(err, NJ_EFORMAT);
    } else {
        int rc = spool_check(sp);
        struct collect c = {0};
        int n = spool_next_pending(sp, 0, 64, collect_ev, &c);
        assert_true(rc == NJ_EFORMAT);
        assert_true(n == 64 || n == NJ_EFORMAT);
        spool_close(sp);
    }
    fprintf(stderr, "reported: %s\n", nj_last_error());
    assert_true(strstr(nj_last_error(), "corrupt") || strstr(nj_last_error(), "integrity"));
}

/* ----------------------------------------------------- deliveries --- */

struct dcollect { int n; int64_t seq[64]; int attempts[64]; bool redel[64]; char verdict[64][64]; };

static int collect_dl(const spool_delivery *b, size_t n, void *ud) {
    struct dcollect *c = ud;
    for (size_t i = 0; i < n; i++) {
        const spool_delivery *d = &b[i];
        c->seq[c->n] = d->seq;
        c->attempts[c->n] = d->attempts;
        c->redel[c->n] = d->redelivery;
        snprintf(c->verdict[c->n], sizeof c->verdict[0], "%s", d->verdict_json);
        c->n++;
    }
    return 0;
}

static int next_dl(spool *sp, const char *sink, int64_t now, struct dcollect *c) {
    memset(c, 0, sizeof *c);
    return spool_next_delivery(sp, sink, now, 64, collect_dl, c);
}

static void test_delivery_state_machine(void **state) {
    (void)state;
    static const char *const sinks[] = {"a", "b"};
    spool *sp = open_sinks(fresh_path("dl.db"), sinks, 2);
    int64_t s1 = spool_put_event(sp, "1", "s", "{}");
    int64_t s2 = spool_put_event(sp, "2", "s", "{}");
    assert_int_equal(spool_put_verdict(sp, s1, "{\"v\":1}"), 0);
    assert_int_equal(spool_put_verdict(sp, s2, "{\"v\":2}"), 0);
    int64_t now = spool_now_ms();
    struct dcollect c;
    /* Both due for a, in order, first attempt, no redelivery. */
    assert_int_equal(next_dl(sp, "a", now, &c), 2);
    assert_int_equal(c.seq[0], s1);
    assert_int_equal(c.seq[1], s2);
    assert_int_equal(c.attempts[0], 1);
    assert_false(c.redel[0]);
    assert_string_equal(c.verdict[1], "{\"v\":2}");
    /* Claimed rows are not handed out twice. */
    assert_int_equal(next_dl(sp, "a", now, &c), 0);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.deliveries_inflight, 2);
    assert_int_equal(st.deliveries_pending, 4);

    assert_int_equal(spool_mark_delivered(sp, "a", s1), 0);
    /* A definite refusal: retried after the backoff, not a redelivery. */
    assert_int_equal(spool_mark_failed(sp, "a", s2, now, SPOOL_FAIL_RETRY, "HTTP 503"), 0);
    assert_int_equal(next_dl(sp, "a", now, &c), 0);
    int64_t at = 0;
    assert_int_equal(spool_next_due(sp, "a", &at), 0);
    assert_true(at >= now + 500 && at <= now + 1000); /* attempt 1: [base/2, base] */
    assert_int_equal(next_dl(sp, "a", at, &c), 1);
    assert_int_equal(c.seq[0], s2);
    assert_int_equal(c.attempts[0], 2);
    assert_false(c.redel[0]);
    /* Outcome unknown: the retry is flagged. */
    assert_int_equal(spool_mark_failed(sp, "a", s2, at, SPOOL_FAIL_MAYBE, "timeout"), 0);
    assert_int_equal(next_dl(sp, "a", at + 3600 * 1000, &c), 1);
    assert_true(c.redel[0]);
    assert_int_equal(c.attempts[0], 3);
    /* Permanent: failed, not handed out, requeue brings it back. */
    assert_int_equal(spool_mark_failed(sp, "a", s2, at, SPOOL_FAIL_PERMANENT, "HTTP 400"), 0);
    assert_int_equal(next_dl(sp, "a", INT64_MAX / 2, &c), 0);
    assert_int_equal(spool_next_due(sp, "a", &at), -ENOENT);
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.deliveries_failed, 1);
    assert_int_equal(st.deliveries_delivered, 1);
    assert_int_equal(spool_requeue_failed(sp, "a"), 1);
    assert_int_equal(next_dl(sp, "a", now, &c), 1);
    assert_true(c.redel[0]); /* the earlier unknown outcome still counts */
    assert_int_equal(spool_mark_delivered(sp, "a", s2), 0);
    /* Sink b is independent; claims given back early are redeliveries. */
    assert_int_equal(next_dl(sp, "b", now, &c), 2);
    assert_int_equal(spool_release_inflight(sp, "b"), 2);
    assert_int_equal(next_dl(sp, "b", now, &c), 2);
    assert_true(c.redel[0] && c.redel[1]);
    assert_int_equal(c.attempts[0], 2);
    assert_int_equal(spool_mark_delivered(sp, "b", 4242), -ENOENT);
    assert_int_equal(spool_mark_failed(sp, "zz", s1, now, SPOOL_FAIL_RETRY, "x"), -ENOENT);
    spool_close(sp);
}

static void test_max_attempts(void **state) {
    (void)state;
    static const char *const sinks[] = {"a"};
    spool_opts o = {.sinks = sinks, .n_sinks = 1, .max_attempts = 2, .seed = 1};
    int err;
    spool *sp = spool_open(fresh_path("max.db"), &o, &err);
    assert_non_null(sp);
    int64_t s = spool_put_event(sp, "1", "s", "{}");
    assert_int_equal(spool_put_verdict(sp, s, "{}"), 0);
    struct dcollect c;
    int64_t t = spool_now_ms();
    assert_int_equal(next_dl(sp, "a", t, &c), 1);
    assert_int_equal(spool_mark_failed(sp, "a", s, t, SPOOL_FAIL_RETRY, "no"), 0);
    assert_int_equal(next_dl(sp, "a", t + 10000000, &c), 1);
    assert_int_equal(spool_mark_failed(sp, "a", s, t, SPOOL_FAIL_RETRY, "no"), 0);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.deliveries_failed, 1);
    spool_close(sp);
}

static void test_backoff_bounds(void **state) {
    (void)state;
    spool_opts o = {.backoff_base_ms = 100, .backoff_cap_ms = 10000, .seed = 7};
    int err;
    spool *sp = spool_open(fresh_path("bo.db"), &o, &err);
    assert_non_null(sp);
    for (int n = 1; n <= 16; n++) {
        int64_t d = 100;
        for (int i = 1; i < n && d < 10000; i++) d *= 2;
        if (d > 10000) d = 10000;
        int64_t lo = INT64_MAX, hi = 0;
        for (int k = 0; k < 200; k++) {
            int64_t b = spool_backoff_ms(sp, n);
            if (b < d / 2 || b > d) fail_msg("attempt %d: %lld outside [%lld, %lld]", n,
                                             (long long)b, (long long)(d / 2), (long long)d);
            lo = NJ_MIN(lo, b);
            hi = NJ_MAX(hi, b);
        }
        assert_true(hi > lo); /* jittered, not a constant */
    }
    spool_close(sp);
}

static void test_inflight_becomes_redelivery(void **state) {
    (void)state;
    static const char *const sinks[] = {"a"};
    const char *path = fresh_path("crash1.db");
    spool *sp = open_sinks(path, sinks, 1);
    int64_t s = spool_put_event(sp, "1", "s", "{}");
    assert_int_equal(spool_put_verdict(sp, s, "{}"), 0);
    struct dcollect c;
    assert_int_equal(next_dl(sp, "a", spool_now_ms(), &c), 1);
    assert_false(c.redel[0]);
    spool_close(sp); /* "crash": claimed, never marked */
    sp = open_sinks(path, sinks, 1);
    assert_int_equal(next_dl(sp, "a", spool_now_ms(), &c), 1);
    assert_true(c.redel[0]);
    assert_int_equal(c.attempts[0], 2);
    assert_int_equal(spool_mark_delivered(sp, "a", s), 0);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.deliveries_delivered, 1);
    assert_int_equal(st.redeliveries_pending, 0);
    spool_close(sp);
}

/* ------------------------------------------------------ retention --- */

static void fill_big(void) {
    memset(big_json, 'x', sizeof big_json - 1);
    memcpy(big_json, "{\"raw\":\"", 8);
    memcpy(big_json + sizeof big_json - 3, "\"}", 3);
}

static void test_retention_age(void **state) {
    (void)state;
    static const char *const sinks[] = {"a"};
    spool_opts o = {.sinks = sinks, .n_sinks = 1, .max_age_ms = 3600 * 1000};
    int err;
    spool *sp = spool_open(fresh_path("age.db"), &o, &err);
    assert_non_null(sp);
    int64_t s[6];
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        s[i] = spool_put_event(sp, id, "s", "{}");
    }
    for (int i = 0; i < 4; i++) assert_int_equal(spool_put_verdict(sp, s[i], "{}"), 0);
    struct dcollect c;
    assert_int_equal(next_dl(sp, "a", spool_now_ms(), &c), 4);
    assert_int_equal(spool_mark_delivered(sp, "a", s[0]), 0);
    assert_int_equal(spool_mark_delivered(sp, "a", s[1]), 0);
    assert_int_equal(spool_mark_failed(sp, "a", s[2], spool_now_ms(), SPOOL_FAIL_PERMANENT, "x"), 0);
    /* Now: nothing is old enough. */
    assert_int_equal(spool_retain(sp, spool_now_ms()), 0);
    /* Two hours later: only the two delivered ones go. */
    assert_int_equal(spool_retain(sp, spool_now_ms() + 2 * 3600 * 1000), 2);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.events_pending, 2);
    assert_int_equal(st.events_judged, 2);
    assert_int_equal(st.retained_deleted, 2);
    assert_int_equal(st.dropped_undelivered, 0);
    assert_int_equal(spool_get_event(sp, s[0], collect_ev,
                                     &(struct collect){0}), -ENOENT);
    /* Seqs are never reused after deletion. */
    spool_close(sp);
    sp = spool_open(g_path, &o, &err);
    assert_true(spool_put_event(sp, "new", "s", "{}") > s[5]);
    spool_close(sp);
}

static void test_retention_size_and_hard_cap(void **state) {
    (void)state;
    fill_big();
    static const char *const sinks[] = {"a"};
    spool_opts o = {.sinks = sinks, .n_sinks = 1, .max_bytes = 256 * 1024,
                    .hard_cap_bytes = 512 * 1024};
    int err;
    spool *sp = spool_open(fresh_path("size.db"), &o, &err);
    assert_non_null(sp);
    /* 400 events of ~2 KB: ~1 MB.  The first 300 judged and delivered. */
    int64_t seqs[400];
    for (int i = 0; i < 400; i++) {
        char id[16];
        snprintf(id, sizeof id, "e%d", i);
        seqs[i] = spool_put_event(sp, id, "s", big_json);
        assert_true(seqs[i] > 0);
    }
    for (int i = 0; i < 300; i++) {
        assert_int_equal(spool_put_verdict(sp, seqs[i], "{}"), 0);
    }
    for (;;) {
        struct dcollect c;
        int n = next_dl(sp, "a", spool_now_ms(), &c);
        assert_true(n >= 0);
        if (n == 0) break;
        for (int i = 0; i < n; i++) assert_int_equal(spool_mark_delivered(sp, "a", c.seq[i]), 0);
    }
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    int64_t before = st.db_bytes;
    assert_true(before > 512 * 1024);
    int deleted = spool_retain(sp, spool_now_ms());
    assert_true(deleted > 0);
    assert_int_equal(spool_stats_get(sp, &st), 0);
    /* The 100 undelivered (~200 KB) are all kept; done ones went until
     * the size fit (or none were left). */
    assert_int_equal(st.events_pending, 100);
    assert_int_equal(st.dropped_undelivered, 0);
    assert_true(st.db_bytes <= 256 * 1024 || st.events_judged == 0);
    assert_true(st.file_bytes < before); /* pages returned to the file system */
    struct collect c = {0};
    assert_int_equal(spool_next_pending(sp, 0, 1, collect_ev, &c), 1);
    assert_int_equal(c.seq[0], seqs[300]);
    spool_close(sp);

    /* Hard cap below what the undelivered need: oldest dropped, counted. */
    o.max_bytes = 64 * 1024;
    o.hard_cap_bytes = 128 * 1024;
    sp = spool_open(g_path, &o, &err);
    assert_non_null(sp);
    assert_true(spool_retain(sp, spool_now_ms()) > 0);
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_true(st.db_bytes <= 128 * 1024);
    assert_true(st.dropped_undelivered > 0);
    assert_int_equal(st.events_pending + st.dropped_undelivered, 100);
    assert_true(st.db_bytes > 112 * 1024); /* stopped a few events below the cap */
    /* The newest survive. */
    assert_int_equal(spool_get_event(sp, seqs[399], collect_ev,
                                     &(struct collect){0}), 0);
    spool_close(sp);
}

/* --------------------------------------------------- source offsets --- */

static void test_source_offsets(void **state) {
    (void)state;
    const char *path = fresh_path("off.db");
    spool *sp = open_sinks(path, NULL, 0);
    spool_offset off;
    assert_int_equal(spool_get_offset(sp, "auditd", &off), -ENOENT);
    spool_event_in evs[] = {{"a", "auditd", "{}"}, {"b", "auditd", "{}"}};
    spool_offset o1 = {"auditd", 2049, 123456, 4096};
    assert_int_equal(spool_put_events(sp, evs, 2, &o1, NULL), 2);
    /* A batch that fails part-way commits neither its events nor its offset. */
    spool_event_in bad[] = {{"c", "auditd", "{}"}, {"", "auditd", "{}"}};
    spool_offset o2 = {"auditd", 2049, 123456, 8192};
    assert_int_equal(spool_put_events(sp, bad, 2, &o2, NULL), -EINVAL);
    spool_close(sp);
    sp = open_sinks(path, NULL, 0);
    assert_int_equal(spool_get_offset(sp, "auditd", &off), 0);
    assert_int_equal(off.dev, 2049);
    assert_int_equal(off.ino, 123456);
    assert_int_equal(off.off, 4096);
    spool_stats st;
    assert_int_equal(spool_stats_get(sp, &st), 0);
    assert_int_equal(st.events_pending, 2);
    /* Rotation: a new identity replaces the old. */
    spool_offset o3 = {"auditd", 2049, 777, 10};
    assert_int_equal(spool_put_events(sp, NULL, 0, &o3, NULL), 0);
    assert_int_equal(spool_get_offset(sp, "auditd", &off), 0);
    assert_int_equal(off.ino, 777);
    assert_int_equal(off.off, 10);
    spool_close(sp);
}

/* ----------------------------------------------------- crash safety --- */

struct ack { char kind; int64_t seq; }; /* 'E' event, 'V' verdict */

static void report(int fd, char kind, int64_t seq) {
    struct ack a = {kind, seq};
    if (write(fd, &a, sizeof a) != (ssize_t)sizeof a) _exit(3);
}

/* The child: resume from the stored offset (re-reading the last few events
 * as a restarted watcher would), then put batches, judge and deliver in a
 * loop, reporting every acknowledged seq before going on. */
static void crash_child(const char *path, int fd, uint64_t seed) {
    static const char *const sinks[] = {"s"};
    spool_opts o = {.sinks = sinks, .n_sinks = 1, .seed = seed};
    int err;
    spool *sp = spool_open(path, &o, &err);
    if (!sp) _exit(4);
    spool_offset off = {0};
    uint64_t next = spool_get_offset(sp, "file", &off) == 0 ? off.off : 0;
    uint64_t rng = seed;
    /* Re-read up to 3 events before the offset: they must dedupe. */
    uint64_t from = next >= 3 ? next - 3 : 0;
    for (;;) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = 1 + (rng >> 33) % 8;
        spool_event_in evs[8];
        char ids[8][32], js[8][64];
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "ev-%llu", (unsigned long long)(from + i));
            snprintf(js[i], sizeof js[i], "{\"n\":%llu}", (unsigned long long)(from + i));
            evs[i] = (spool_event_in){ids[i], "file", js[i]};
        }
        spool_offset no = {"file", 1, 2, NJ_MAX(next, from + n)};
        int64_t seqs[8];
        if (spool_put_events(sp, evs, n, &no, seqs) < 0) _exit(5);
        for (size_t i = 0; i < n; i++) report(fd, 'E', seqs[i]);
        from += n;
        /* Judge what is pending, deliver some. */
        struct collect c = {0};
        if (spool_next_pending(sp, 0, 8, collect_ev, &c) < 0) _exit(6);
        for (int i = 0; i < c.n; i++) {
            if (spool_put_verdict(sp, c.seq[i], "{\"verdict\":\"benign\"}") != 0) _exit(7);
            report(fd, 'V', c.seq[i]);
        }
        struct dcollect d;
        if (next_dl(sp, "s", spool_now_ms(), &d) < 0) _exit(8);
        for (int i = 0; i < d.n; i++)
            if ((rng >> 40) & 1) spool_mark_delivered(sp, "s", d.seq[i]);
    }
}

/* Read one ack with a deadline; 1 read, 0 EOF, -1 timeout. */
static int read_ack(int fd, struct ack *a, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) return -1;
    ssize_t n = read(fd, a, sizeof *a);
    if (n == 0) return 0;
    if (n != (ssize_t)sizeof *a) return -1;
    return 1;
}

static void test_crash_sigkill(void **state) {
    (void)state;
    const char *path = fresh_path("crash.db");
    size_t cap = 1 << 16, n_ev = 0, n_vd = 0;
    int64_t *ev = calloc(cap, sizeof *ev), *vd = calloc(cap, sizeof *vd);
    assert_non_null(ev);
    assert_non_null(vd);
    for (int round = 0; round < 20; round++) {
        uint64_t seed = 0x5eed0000u + (uint64_t)round * 7919;
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(path, p[1], seed);
            _exit(0);
        }
        close(p[1]);
        /* Kill after a seed-chosen number of acknowledgements. */
        int want = 1 + (int)((seed * 2654435761u) % 400);
        struct ack a;
        int got = 0, r;
        while (got < want && (r = read_ack(p[0], &a, 30000)) == 1) {
            if (a.kind == 'E' && n_ev < cap) ev[n_ev++] = a.seq;
            if (a.kind == 'V' && n_vd < cap) vd[n_vd++] = a.seq;
            got++;
        }
        if (got < want) fail_msg("round %d: child stopped after %d acks (want %d)", round, got, want);
        kill(pid, SIGKILL);
        /* Acks written before death count too. */
        while ((r = read_ack(p[0], &a, 30000)) == 1) {
            if (a.kind == 'E' && n_ev < cap) ev[n_ev++] = a.seq;
            if (a.kind == 'V' && n_vd < cap) vd[n_vd++] = a.seq;
        }
        close(p[0]);
        int ws;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);

        static const char *const sinks[] = {"s"};
        spool *sp = open_sinks(path, sinks, 1);
        if (spool_check(sp) != 0) fail_msg("round %d: %s", round, nj_last_error());
        for (size_t i = 0; i < n_ev; i++) {
            struct collect c = {0};
            if (spool_get_event(sp, ev[i], collect_ev, &c) != 0)
                fail_msg("round %d: acknowledged event seq %lld missing", round, (long long)ev[i]);
        }
        spool_offset off;
        assert_int_equal(spool_get_offset(sp, "file", &off), 0);
        spool_close(sp);
        /* Every id up to the offset exactly once, nothing beyond it. */
        assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM events"), (int64_t)off.off);
        assert_int_equal(raw_int(path, "SELECT COUNT(DISTINCT event_id) FROM events"),
                         (int64_t)off.off);
        for (size_t i = 0; i < n_vd; i++) {
            char q[128];
            snprintf(q, sizeof q, "SELECT COUNT(*) FROM verdicts WHERE seq = %lld", (long long)vd[i]);
            if (raw_int(path, q) != 1)
                fail_msg("round %d: acknowledged verdict for seq %lld missing", round,
                         (long long)vd[i]);
        }
        assert_int_equal(raw_int(path, "SELECT COUNT(*) - COUNT(DISTINCT seq) FROM verdicts"), 0);
        /* Every verdict has its delivery row; every judged event a verdict. */
        assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM verdicts v WHERE NOT EXISTS"
                                       " (SELECT 1 FROM deliveries d WHERE d.seq = v.seq)"), 0);
        assert_int_equal(raw_int(path, "SELECT COUNT(*) FROM events e WHERE state = 'judged'"
                                       " AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.seq = e.seq)"), 0);
    }
    assert_true(n_ev > 20);
    assert_true(n_vd > 0);
    free(ev);
    free(vd);
}

/* ------------------------------------------------------- I/O faults --- */

/* Put ~4 KB events until the store refuses; returns the number acknowledged
 * and the failing code in *code.  Seqs of acknowledged events go to seqs. */
static int fill_until_error(spool *sp, const char *prefix, int64_t *seqs, int cap, int *code) {
    static char js[4200];
    memset(js, 'y', sizeof js - 1);
    memcpy(js, "{\"raw\":\"", 8);
    memcpy(js + sizeof js - 3, "\"}", 3);
    for (int i = 0; i < cap; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        int64_t s = spool_put_event(sp, id, "f", js);
        if (s < 0) { *code = (int)s; return i; }
        seqs[i] = s;
    }
    *code = 0;
    return cap;
}

static int count_cb(const spool_event *ev, void *ud) { (void)ev; (*(int *)ud)++; return 0; }

/* Checks shared by both fault tests, run in the child: 0 or a line number. */
static int check_fault_cycle(const char *path, void (*make_room)(void)) {
    int err;
    spool *sp = spool_open(path, NULL, &err);
    if (!sp) { fprintf(stderr, "open: %s\n", nj_last_error()); return __LINE__; }
    static int64_t seqs[4096];
    int code = 0;
    int n = fill_until_error(sp, "a", seqs, 4096, &code);
    if (code == 0 || n == 0) { fprintf(stderr, "never failed (n=%d)\n", n); return __LINE__; }
    if (code != -ENOSPC && code != -EIO) { fprintf(stderr, "code %d\n", code); return __LINE__; }
    const char *msg = nj_last_error();
    if (!strstr(msg, "rolled back") || !strstr(msg, path)) { fprintf(stderr, "msg: %s\n", msg); return __LINE__; }
    fprintf(stderr, "fault after %d events: %s (%s)\n", n, nj_strerror(code), msg);
    /* Still failing while there is no room, and nothing committed is lost. */
    for (int i = 0; i < n; i++) {
        struct collect c = {0};
        if (spool_get_event(sp, seqs[i], collect_ev, &c) != 0) return __LINE__;
    }
    make_room();
    /* The same handle recovers. */
    int64_t more[8];
    int code2 = 0;
    if (fill_until_error(sp, "b", more, 8, &code2) != 8) {
        fprintf(stderr, "after room: %s\n", nj_last_error());
        return __LINE__;
    }
    spool_close(sp);
    sp = spool_open(path, NULL, &err);
    if (!sp) return __LINE__;
    if (spool_check(sp) != 0) { fprintf(stderr, "%s\n", nj_last_error()); return __LINE__; }
    int count = 0;
    if (spool_next_pending(sp, 0, 100000, count_cb, &count) < 0) return __LINE__;
    if (count != n + 8) { fprintf(stderr, "count %d want %d\n", count, n + 8); return __LINE__; }
    spool_close(sp);
    return 0;
}

static void raise_fsize(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_FSIZE, &rl);
}

static void test_efbig_rlimit(void **state) {
    (void)state;
    const char *path = fresh_path("fsize.db");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        int err;
        spool *sp = spool_open(path, NULL, &err); /* create before limiting */
        if (!sp) _exit(90);
        spool_close(sp);
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = 384 * 1024;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(91);
        _exit(check_fault_cycle(path, raise_fsize) ? 1 : 0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

static char g_filler[700];
static void remove_filler(void) { unlink(g_filler); }

static void test_enospc_tmpfs(void **state) {
    (void)state;
    const char *d = nj_test_tmpdir();
    char mnt[600];
    snprintf(mnt, sizeof mnt, "%s/mnt", d);
    assert_int_equal(mkdir(mnt, 0700), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A private mount namespace (as root, else inside a user namespace);
         * the mount disappears with the child. */
        if (unshare(CLONE_NEWNS) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) _exit(77);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) _exit(77);
        if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700") != 0) _exit(77);
        char path[700];
        snprintf(path, sizeof path, "%s/spool/s.db", mnt);
        snprintf(g_filler, sizeof g_filler, "%s/filler", mnt);
        int fd = open(g_filler, O_WRONLY | O_CREAT, 0600);
        static char blk[4096];
        for (int i = 0; i < 128; i++)
            if (write(fd, blk, sizeof blk) != (ssize_t)sizeof blk) _exit(92);
        close(fd);
        _exit(check_fault_cycle(path, remove_filler) ? 1 : 0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    if (WEXITSTATUS(ws) == 77) skip();
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* ------------------------------------------------- allocation faults --- */

static int cycle(const char *path) {
    static const char *const sinks[] = {"a"};
    spool_opts o = {.sinks = sinks, .n_sinks = 1};
    int err = 0, rc;
    spool *sp = spool_open(path, &o, &err);
    if (!sp) return err;
    int64_t s = spool_put_event(sp, "x", "s", "{}");
    if (s < 0) { spool_close(sp); return (int)s; }
    rc = spool_put_verdict(sp, s, "{}");
    if (rc == -EEXIST) rc = 0;
    struct collect c = {0};
    if (rc == 0) rc = spool_next_pending(sp, 0, 10, collect_ev, &c) < 0 ? -ENOMEM : 0;
    struct dcollect d;
    if (rc == 0) {
        int n = next_dl(sp, "a", INT64_MAX / 2, &d);
        if (n < 0) rc = n;
        for (int i = 0; i < n; i++) spool_mark_failed(sp, "a", d.seq[i], 0, SPOOL_FAIL_RETRY, "x");
    }
    spool_close(sp);
    return rc;
}

static void test_alloc_faults(void **state) {
    (void)state;
    const char *path = fresh_path("oom.db");
    size_t base = nj_mem_in_use();
    int ok = 0;
    for (long n = 0; n < 200 && !ok; n++) {
        nj_alloc_fail_after(n);
        int rc = cycle(path);
        nj_alloc_fail_after(-1);
        if (rc == 0) ok = 1;
        else if (rc != -ENOMEM) fail_msg("fail_after %ld: %s: %s", n, nj_strerror(rc), nj_last_error());
        assert_int_equal(nj_mem_in_use(), base);
    }
    assert_true(ok);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_modes_and_lock),
        cmocka_unit_test(test_schema_version_and_garbage),
        cmocka_unit_test(test_corrupt_pages),
        cmocka_unit_test(test_idempotent_put),
        cmocka_unit_test(test_pending_order_and_one_verdict),
        cmocka_unit_test(test_delivery_state_machine),
        cmocka_unit_test(test_max_attempts),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_inflight_becomes_redelivery),
        cmocka_unit_test(test_retention_age),
        cmocka_unit_test(test_retention_size_and_hard_cap),
        cmocka_unit_test(test_source_offsets),
        cmocka_unit_test(test_crash_sigkill),
        cmocka_unit_test(test_efbig_rlimit),
        cmocka_unit_test(test_enospc_tmpfs),
        cmocka_unit_test(test_alloc_faults),
    };
    return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
