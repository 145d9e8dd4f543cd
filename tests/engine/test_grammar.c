/* test_grammar — schema compilation, the matcher, token masks, fast-forward
 * and label scoring.
 *
 * Without a model: schemas that compile and schemas refused with the
 * keyword named; documents accepted and rejected; integer ranges checked
 * exhaustively against arithmetic; number ranges and patterns checked by
 * random walks through the automaton (every generated string is parsed with
 * strtod / matched with PCRE2); forced and closing continuations;
 * allocation-failure injection with a no-leak check.
 *
 * With SmolLM2 (NIGHTJAR_TEST_MODEL_DIR or ~/.cache/nightjar/models;
 * skipped when absent): the trie-walk mask equals a brute-force mask (every
 * token's bytes advanced through a copy of the matcher) at every step of
 * constrained generations; forced tokens are accepted and reproduce the
 * forced text; label probabilities equal a softmax computed by hand for
 * single-token labels and sequential evaluation for multi-token ones.
 */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "grammar.h"
#include "json_schema.h"
#include "nightjar.h"
#include "util.h"

static const char *VERDICT =
    "{\"type\": \"object\", \"properties\": {"
    "\"verdict\": {\"type\": \"string\", \"enum\": [\"benign\", \"suspicious\", \"malicious\"]},"
    "\"techniques\": {\"type\": \"array\", \"items\": {\"type\": \"string\", "
    "\"pattern\": \"^T[0-9]{4}(\\\\.[0-9]{3})?$\"}, \"maxItems\": 4},"
    "\"summary\": {\"type\": \"string\", \"maxLength\": 200}},"
    "\"required\": [\"verdict\", \"techniques\", \"summary\"], \"additionalProperties\": false}";

static gram *compile_ok(const char *schema) {
    int err = 0;
    gram *g = json_schema_compile(schema, strlen(schema), &err);
    if (!g) print_error("schema %s: %s: %s\n", schema, nj_strerror(err), nj_last_error());
    assert_non_null(g);
    return g;
}

static bool accepts(gram *g, const char *doc) { return gram_matches(g, doc, strlen(doc)); }

/* ---- compile and refuse ---- */

static void test_refusals(void **st) {
    (void)st;
    static const struct { const char *schema, *kw; } r[] = {
        {"{\"type\":\"object\",\"patternProperties\":{\"^a\":{}}}", "'patternProperties' at /"},
        {"{\"if\":{\"type\":\"string\"},\"then\":{}}", "'if'"},
        {"{\"type\":\"array\",\"uniqueItems\":true}", "'uniqueItems'"},
        {"{\"not\":{\"type\":\"string\"}}", "'not'"},
        {"{\"type\":\"object\",\"dependentRequired\":{}}", "'dependentRequired'"},
        {"{\"type\":\"object\",\"minProperties\":1}", "'minProperties'"},
        {"{\"type\":\"integer\",\"multipleOf\":3}", "'multipleOf'"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "'$ref'"},
        {"{\"type\":\"string\",\"format\":\"email\"}", "'format' value 'email'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"contains\":{}}}}",
         "'contains' at /properties/a"},
        {"{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"string\",\"maxLength\":3}]}", "'oneOf'"},
        {"{\"type\":\"string\",\"pattern\":\"a(?=b)\"}", "'(?'"},
        {"{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", "'\\1'"},
        {"{\"type\":\"string\",\"pattern\":\"\\\\bword\"}", "'\\b'"},
        {"{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":3}]}", "'allOf"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "naming 'b'"},
        {"{\"type\":\"string\",\"enum\":[\"a\"],\"maxLength\":3}", "'maxLength' beside 'enum'"},
        {"{\"type\":\"string\",\"format\":\"date\",\"maxLength\":8}", "'maxLength'"},
        {"{\"type\":\"string\",\"pattern\":\"^a+$\",\"minLength\":2}", "'minLength'"},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}", "'items' (array form"},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(r); i++) {
        int err = 0;
        gram *g = json_schema_compile(r[i].schema, strlen(r[i].schema), &err);
        if (g || err != NJ_EUNSUPPORTED || !strstr(nj_last_error(), r[i].kw))
            print_error("schema %s: err %d message '%s' (want '%s')\n", r[i].schema, err,
                        nj_last_error(), r[i].kw);
        assert_null(g);
        assert_int_equal(err, NJ_EUNSUPPORTED);
        assert_non_null(strstr(nj_last_error(), r[i].kw));
        assert_non_null(strstr(nj_last_error(), "unsupported"));
    }
    /* empty languages are refused, not compiled (fuzzer regression) */
    int err = 0;
    const char *empty_lang = "{\"type\":\"number\",\"minimum\":2,\"maximum\":1}";
    assert_null(json_schema_compile(empty_lang, strlen(empty_lang), &err));
    assert_int_equal(err, NJ_EUNSUPPORTED);
    assert_non_null(strstr(nj_last_error(), "admits no document"));
    /* not JSON */
    assert_null(json_schema_compile("{\"type\":", 8, &err));
    assert_int_equal(err, NJ_EFORMAT);
    assert_null(json_schema_compile("{\"type\":\"strung\"}", 17, &err));
    assert_int_equal(err, NJ_EFORMAT);
}

/* (schema, document, accepted?) */
static void test_documents(void **st) {
    (void)st;
    static const struct { const char *schema, *doc; bool ok; } t[] = {
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [], \"summary\": \"ok\"}", true},
        {NULL, "{\"verdict\": \"malicious\", \"techniques\": [\"T1059\", \"T1059.001\"], \"summary\": \"\"}", true},
        {NULL, "{\"verdict\": \"evil\", \"techniques\": [], \"summary\": \"ok\"}", false},
        {NULL, "{\"verdict\":\"benign\", \"techniques\": [], \"summary\": \"ok\"}", false},      /* layout */
        {NULL, "{\"verdict\": \"benign\",  \"techniques\": [], \"summary\": \"ok\"}", false},    /* two spaces */
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [\"T105\"], \"summary\": \"ok\"}", false},
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [\"T1059.01\"], \"summary\": \"ok\"}", false},
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [\"T1\", \"T2\", \"T3\", \"T4\", \"T5\"], \"summary\": \"\"}", false},
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [\"T0001\", \"T0002\", \"T0003\", \"T0004\"], \"summary\": \"\"}", true},
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [\"T0001\", \"T0002\", \"T0003\", \"T0004\", \"T0005\"], \"summary\": \"\"}", false},
        {NULL, "{\"verdict\": \"benign\", \"summary\": \"ok\"}", false},                         /* required */
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [], \"summary\": \"a\\nb \\u00e9 \\\" \xc3\xa9\"}", true},
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [], \"summary\": \"a\nb\"}", false},   /* raw newline */
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [], \"summary\": \"\\ud800\"}", false},
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [], \"summary\": \"\xc3\"}", false},   /* bad UTF-8 */
        {NULL, "{\"verdict\": \"benign\", \"techniques\": [], \"summary\": \"\xed\xa0\x80\"}", false},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"boolean\"},"
         "\"c\":{\"type\":\"null\"}}}", "{}", true},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"boolean\"},"
         "\"c\":{\"type\":\"null\"}}}", "{\"b\": true, \"c\": null}", true},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"boolean\"},"
         "\"c\":{\"type\":\"null\"}}}", "{\"c\": null, \"b\": true}", false},                    /* order */
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"boolean\"},"
         "\"c\":{\"type\":\"null\"}}}", "{, \"b\": true}", false},
        {"{\"type\":[\"string\",\"null\"]}", "null", true},
        {"{\"type\":[\"string\",\"null\"]}", "\"x\"", true},
        {"{\"type\":[\"string\",\"null\"]}", "1", false},
        {"{\"enum\":[1, \"a\", null, {\"k\": [true, 2.5]}]}", "{\"k\": [true, 2.5]}", true},
        {"{\"enum\":[1, \"a\", null, {\"k\": [true, 2.5]}]}", "2", false},
        {"{\"const\":\"x\\\"y\"}", "\"x\\\"y\"", true},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"ab\"", true},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"", true},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"abcd\"", false},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"a\"", false},
        {"{\"type\":\"string\",\"format\":\"date\"}", "\"2024-02-28\"", true},
        {"{\"type\":\"string\",\"format\":\"uuid\",\"maxLength\":36}", "\"123e4567-e89b-12d3-a456-426614174000\"", true},
        {"{\"type\":\"string\",\"format\":\"date\"}", "\"2024-02-30\"", false},
        {"{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-12-31T23:59:59.123Z\"", true},
        {"{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-12-31T24:00:00Z\"", false},
        {"{\"type\":\"string\",\"format\":\"time\"}", "\"08:30:00+02:00\"", true},
        {"{\"type\":\"string\",\"format\":\"uuid\"}", "\"123e4567-e89b-12d3-a456-426614174000\"", true},
        {"{\"type\":\"string\",\"format\":\"uuid\"}", "\"123e4567-e89b-12d3-a456-42661417400\"", false},
        {"{\"type\":\"string\",\"format\":\"ipv4\"}", "\"192.168.0.255\"", true},
        {"{\"type\":\"string\",\"format\":\"ipv4\"}", "\"192.168.0.256\"", false},
        {"{\"type\":\"string\",\"format\":\"ipv4\"}", "\"01.2.3.4\"", false},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", "[1, 2]", true},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", "[1]", false},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}", "[1, 2, 3, 4]", false},
        {"{\"type\":\"array\"}", "[1, \"a\", [null, {\"x\": false}]]", true},
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}]}", "\"a\"", true},
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}]}", "-12", true},
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}]}", "1.5", false},
        {"{\"$defs\":{\"p\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}},"
         "\"required\":[\"x\"],\"additionalProperties\":false}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/p\"}}",
         "[{\"x\": 1}, {\"x\": 2}]", true},
        {"{\"definitions\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
         "\"next\":{\"$ref\":\"#/definitions/n\"}},\"required\":[\"v\"]}},\"$ref\":\"#/definitions/n\"}",
         "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\": 3}}}", true},
        {"{\"definitions\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
         "\"next\":{\"$ref\":\"#/definitions/n\"}},\"required\":[\"v\"]}},\"$ref\":\"#/definitions/n\"}",
         "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\": 3, \"next\": {\"v\": 4}}}}", false}, /* depth bound */
        {"{\"type\":\"number\",\"minimum\":-1.5,\"maximum\":2.5}", "-1", true},
        {"{\"type\":\"number\",\"minimum\":-1.5,\"maximum\":2.5}", "1.25", true},
        {"{\"type\":\"number\",\"minimum\":-1.5,\"maximum\":2.5}", "3", false},
        {"{\"type\":\"number\",\"minimum\":-1.5,\"maximum\":2.5}", "-0", false},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":0,\"maximum\":10}", "0", false},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":0,\"maximum\":10}", "10", true},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":0,\"maximum\":10}", "010", false},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\": 1, \"b\": 2}", true},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\": \"x\"}", false},
        {"{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"},\"x\":{\"type\":\"integer\"}},"
         "\"required\":[\"k\"]},{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"b\"}},\"required\":[\"k\"]}]}",
         "{\"k\": \"a\", \"x\": 3}", true},
        {"true", "[1, {\"a\": null}]", true},
        {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[1, \"a\"]", true},
        {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[1]", true},
        {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[1, \"a\", 2]", false},
        {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}],\"items\":false}", "[\"a\"]", false},
        {"{\"prefixItems\":[{\"type\":\"integer\"}],\"items\":{\"type\":\"null\"},\"minItems\":3}", "[1, null, null]", true},
        {"{\"prefixItems\":[{\"type\":\"integer\"}],\"items\":{\"type\":\"null\"},\"minItems\":3}", "[1, null]", false},
        {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"integer\"}],\"maxItems\":1}", "[1, 2]", false},
        {"{\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"integer\"}],\"maxItems\":1}", "[]", true},
        {"{\"type\":\"boolean\"}", "true", true},
        {"{\"type\":\"boolean\"}", "True", false},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(t); i++) {
        gram *g = compile_ok(t[i].schema ? t[i].schema : VERDICT);
        bool got = accepts(g, t[i].doc);
        if (got != t[i].ok)
            print_error("case %zu: schema %s doc %s: got %d want %d\n", i, t[i].schema ? t[i].schema : "verdict",
                        t[i].doc, got, t[i].ok);
        assert_int_equal(got, t[i].ok);
        gram_free(g);
    }
}

/* Integer bounds are exact: every value in a window is accepted iff in range. */
static void test_integer_ranges(void **st) {
    (void)st;
    static const long long r[][2] = {{0, 0}, {-5, 5}, {7, 123}, {-300, -17}, {99, 1000}, {1, 9},
                                     {10, 10}, {-1, 0}, {-1000, 999}, {250, 255}, {19, 20}};
    for (size_t i = 0; i < NJ_ARRAY_LEN(r); i++) {
        char schema[128];
        snprintf(schema, sizeof schema, "{\"type\":\"integer\",\"minimum\":%lld,\"maximum\":%lld}", r[i][0], r[i][1]);
        gram *g = compile_ok(schema);
        for (long long v = -1200; v <= 1200; v++) {
            char d[32];
            snprintf(d, sizeof d, "%lld", v);
            bool want = v >= r[i][0] && v <= r[i][1];
            if (accepts(g, d) != want) print_error("[%lld, %lld] value %lld\n", r[i][0], r[i][1], v);
            assert_int_equal(accepts(g, d), want);
        }
        assert_false(accepts(g, "-0"));
        assert_false(accepts(g, "00"));
        gram_free(g);
    }
    /* large bounds, one side open */
    gram *g = compile_ok("{\"type\":\"integer\",\"minimum\":123456789012}");
    assert_true(accepts(g, "123456789012"));
    assert_false(accepts(g, "123456789011"));
    assert_true(accepts(g, "999999999999999"));
    assert_false(accepts(g, "1000000000000000"));   /* beyond the documented magnitude */
    gram_free(g);
}

/* Random document from the automaton: random live bytes, stopping at an
 * accepting state with probability 1/4 (or when nothing else is possible). */
static int random_doc(gram *g, unsigned *seed, char *out, int cap) {
    int32_t s = gram_start(g);
    int n = 0;
    while (n < cap - 1) {
        if (gram_accepting(g, s) && (rand_r(seed) % 4 == 0 || gram_final(g, s))) break;
        int live[256], m = 0;
        for (int b = 0; b < 256; b++)
            if (gram_step(g, s, (uint8_t)b) >= 0) live[m++] = b;
        if (!m) break;
        /* prefer closing when the text grows long */
        int b = live[rand_r(seed) % m];
        if (n > cap / 2) {
            char tmp[4096];
            int k = gram_close_bytes(g, s, tmp, sizeof tmp);
            if (k >= 0 && n + k < cap - 1) { memcpy(out + n, tmp, (size_t)k); n += k; s = gram_advance(g, s, tmp, (size_t)k); break; }
        }
        out[n++] = (char)b;
        s = gram_step(g, s, (uint8_t)b);
        assert_true(s >= 0);
    }
    assert_true(gram_accepting(g, s));
    out[n] = 0;
    return n;
}

static void test_number_ranges(void **st) {
    (void)st;
    static const struct { double lo, hi; bool lx, hx; } r[] = {
        {-1.5, 2.5, false, false}, {0, 1, true, true}, {-10, -2, false, true}, {0.25, 7.75, false, false},
        {-1000, 1000, false, false}, {3, 3, false, false},
    };
    unsigned seed = 12345;
    for (size_t i = 0; i < NJ_ARRAY_LEN(r); i++) {
        char schema[256];
        snprintf(schema, sizeof schema, "{\"type\":\"number\",\"%s\":%g,\"%s\":%g}",
                 r[i].lx ? "exclusiveMinimum" : "minimum", r[i].lo, r[i].hx ? "exclusiveMaximum" : "maximum", r[i].hi);
        int err = 0;
        gram *g = json_schema_compile(schema, strlen(schema), &err);
        assert_non_null(g);
        for (int k = 0; k < 300; k++) {
            char d[128];
            random_doc(g, &seed, d, sizeof d);
            json_error_t je;
            json_t *j = json_loads(d, JSON_DECODE_ANY, &je);
            if (!j) print_error("not JSON: %s\n", d);
            assert_non_null(j);
            double v = json_number_value(j);
            json_decref(j);
            bool ok = (r[i].lx ? v > r[i].lo : v >= r[i].lo) && (r[i].hx ? v < r[i].hi : v <= r[i].hi);
            if (!ok) print_error("%s generated %s\n", schema, d);
            assert_true(ok);
        }
        gram_free(g);
    }
}

/* Strings generated from a pattern match it under PCRE2 (re.search semantics). */
static void test_patterns_vs_pcre2(void **st) {
    (void)st;
    static const char *pats[] = {
        "^T[0-9]{4}(\\.[0-9]{3})?$", "^[a-z]+@[a-z]+\\.(com|org)$", "^\\d{3}-\\d{2}-\\d{4}$",
        "^[^\\s]{2,5}$", "^(ab|cd)*x?$", "abc", "^[A-Fa-f0-9]{1,8}$", "^.{0,3}$", "^\\w+(-\\w+)*$",
        "^[\\\\\"/]+$", "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$", "^caf\xc3\xa9$", "^[^a-z]$", "x$", "^a|b$",
    };
    unsigned seed = 777;
    for (size_t i = 0; i < NJ_ARRAY_LEN(pats); i++) {
        int err = 0;
        gram *g = json_pattern_grammar(pats[i], &err);
        if (!g) print_error("pattern %s: %s\n", pats[i], nj_last_error());
        assert_non_null(g);
        int perr;
        PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pats[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF, &perr, &eoff, NULL);
        assert_non_null(re);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        for (int k = 0; k < 200; k++) {
            char d[512];
            random_doc(g, &seed, d, sizeof d);
            json_error_t je;
            json_t *j = json_loads(d, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (!j || !json_is_string(j)) print_error("pattern %s generated non-string %s\n", pats[i], d);
            assert_true(j && json_is_string(j));
            int rc = pcre2_match(re, (PCRE2_SPTR)json_string_value(j), json_string_length(j), 0, 0, md, NULL);
            if (rc < 0) print_error("pattern %s generated %s which does not match\n", pats[i], d);
            assert_true(rc >= 0);
            json_decref(j);
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        gram_free(g);
    }
}

/* Random documents of the verdict schema and the free-form object grammar
 * are JSON (jansson parses them) and keep the layout. */
static void test_random_documents(void **st) {
    (void)st;
    unsigned seed = 99;
    gram *g = compile_ok(VERDICT);
    int err = 0;
    gram *o = json_object_grammar(&err);
    assert_non_null(o);
    for (int k = 0; k < 300; k++) {
        char d[2048];
        random_doc(k & 1 ? o : g, &seed, d, sizeof d);
        json_error_t je;
        json_t *j = json_loads(d, 0, &je);
        if (!j) print_error("not JSON: %s (%s)\n", d, je.text);
        assert_non_null(j);
        assert_true(json_is_object(j));
        if (!(k & 1)) {
            const char *v = json_string_value(json_object_get(j, "verdict"));
            assert_non_null(v);
            assert_true(!strcmp(v, "benign") || !strcmp(v, "suspicious") || !strcmp(v, "malicious"));
            assert_true(json_array_size(json_object_get(j, "techniques")) <= 4);
            assert_true(json_string_length(json_object_get(j, "summary")) <= 200 * 4);
        }
        assert_null(strchr(d, '\n'));
        json_decref(j);
    }
    gram_free(o);
    gram_free(g);
}

static void test_forced_and_close(void **st) {
    (void)st;
    gram *g = compile_ok(VERDICT);
    char buf[256];
    int n = gram_forced_bytes(g, gram_start(g), buf, sizeof buf);
    assert_int_equal(n, (int)strlen("{\"verdict\": \""));
    assert_memory_equal(buf, "{\"verdict\": \"", (size_t)n);
    int32_t s = gram_advance(g, gram_start(g), "{\"verdict\": \"sus", 16);
    n = gram_forced_bytes(g, s, buf, sizeof buf);
    buf[n] = 0;
    assert_string_equal(buf, "picious\", \"techniques\": [");
    /* closing from the middle of a string */
    const char *part = "{\"verdict\": \"benign\", \"techniques\": [\"T10";
    s = gram_advance(g, gram_start(g), part, strlen(part));
    assert_true(s >= 0);
    n = gram_close_bytes(g, s, buf, sizeof buf);
    assert_true(n > 0 && n < (int)sizeof buf);
    char doc[512];
    snprintf(doc, sizeof doc, "%s%.*s", part, n, buf);
    assert_true(accepts(g, doc));
    json_error_t je;
    json_t *j = json_loads(doc, 0, &je);
    assert_non_null(j);
    json_decref(j);
    assert_true(gram_final(g, gram_advance(g, gram_start(g), doc, strlen(doc))));
    gram_free(g);
}

/* The DFA cache starts over past its limit and the held state survives. */
static void test_cache_compaction(void **st) {
    (void)st;
    gram *g = compile_ok(VERDICT);
    gram_set_cache_limit(g, 8);
    const char *doc = "{\"verdict\": \"benign\", \"techniques\": [\"T1234\"], \"summary\": \"all fine here\"}";
    int32_t s = gram_start(g);
    gram_stats a, b;
    int resets = 0;
    for (size_t i = 0; doc[i]; i++) {
        s = gram_step(g, s, (uint8_t)doc[i]);
        assert_true(s >= 0);
        gram_get_stats(g, &a);
        assert_int_equal(gram_compact_cache(g, &s), 0);
        gram_get_stats(g, &b);
        resets += b.n_dfa < a.n_dfa;
        assert_true(b.n_dfa <= 9 || b.n_dfa == a.n_dfa);
    }
    assert_true(resets > 0);
    assert_true(gram_accepting(g, s));
    assert_true(gram_matches(g, doc, strlen(doc)));   /* the start state is still valid */
    gram_free(g);
}

static void test_alloc_failures(void **st) {
    (void)st;
    size_t base = nj_mem_in_use();
    int ok = 0;
    for (long i = 0; i < 20000 && !ok; i++) {
        nj_alloc_fail_after(i);
        int err = 0;
        gram *g = json_schema_compile(VERDICT, strlen(VERDICT), &err);
        const char *doc = "{\"verdict\": \"benign\", \"techniques\": [], \"summary\": \"\"}";
        bool m = g && gram_matches(g, doc, strlen(doc));
        nj_alloc_fail_after(-1);
        if (g && m) ok = 1;
        else if (!g) assert_true(err < 0);
        gram_free(g);
        assert_int_equal(nj_mem_in_use(), base);
    }
    assert_true(ok);
}

/* ---- with the model ---- */

static nj_model *g_model;

static int model_setup(void **st) {
    (void)st;
    const char *p = nj_test_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (p) g_model = nj_model_load(p, NULL, NULL);
    return 0;
}

static int model_teardown(void **st) {
    (void)st;
    nj_model_free(g_model);
    return 0;
}

/* Brute force: every token's bytes through a copy of the state. */
static void check_mask(nj_grammar *gr, int V) {
    float *lg = calloc((size_t)V, sizeof *lg);
    assert_non_null(lg);
    int n = nj_grammar_mask(gr, lg);
    assert_true(n > 0);
    gram *g = grammar_gram(gr);
    int32_t s = grammar_state(gr);
    int count = 0;
    for (int id = 0; id < V; id++) {
        char piece[512];
        bool want;
        if (nj_token_is_eog(g_model, id)) want = gram_accepting(g, s);
        else {
            int len = nj_token_to_piece(g_model, id, false, piece, sizeof piece);
            /* tokens longer than 255 bytes are left out of the trie */
            want = len > 0 && len <= 255 && gram_advance(g, s, piece, (size_t)len) >= 0;
        }
        bool got = !isinf(lg[id]);
        if (got != want) print_error("token %d: mask %d brute force %d\n", id, got, want);
        assert_int_equal(got, want);
        count += want;
    }
    assert_int_equal(count, n);
    free(lg);
}

static void test_mask_brute_force(void **st) {
    (void)st;
    if (!g_model) skip();
    nj_model_desc d;
    nj_model_describe(g_model, &d);
    int err = 0;
    nj_grammar *gr = nj_grammar_from_schema(g_model, VERDICT, &err);
    assert_non_null(gr);
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);
    sp.temp = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    float *lg = malloc(sizeof *lg * (size_t)d.n_vocab);
    assert_non_null(lg);
    for (int run = 0; run < 3; run++) {
        sp.seed = 100 + (uint64_t)run;
        nj_sampler *smp = nj_sampler_new(&sp, &err);
        assert_non_null(smp);
        nj_sampler_set_grammar(smp, gr);
        nj_grammar_reset(gr);
        /* random logits: the sampler walks the grammar through varied states */
        unsigned seed = (unsigned)run;
        for (int step = 0; step < 40 && nj_grammar_done(gr) < 2; step++) {
            check_mask(gr, d.n_vocab);
            for (int i = 0; i < d.n_vocab; i++) lg[i] = (float)(rand_r(&seed) % 1000) / 100.0f;
            int32_t id = nj_sampler_sample(smp, lg, d.n_vocab);
            assert_true(id >= 0);
            assert_int_equal(nj_grammar_accept(gr, id), 0);
        }
        nj_sampler_free(smp);
    }
    /* a token the grammar forbids is refused and leaves the state alone */
    nj_grammar_reset(gr);
    int32_t bad[8];
    int nb = nj_tokenize(g_model, "hello", 5, false, false, bad, 8);
    assert_true(nb > 0);
    assert_int_equal(nj_grammar_accept(gr, bad[0]), -EINVAL);
    check_mask(gr, d.n_vocab);
    free(lg);
    nj_grammar_free(gr);

    /* the free-form object grammar too */
    gr = nj_grammar_json_object(g_model, &err);
    assert_non_null(gr);
    check_mask(gr, d.n_vocab);
    int32_t ids[16];
    int n = nj_tokenize(g_model, "{\"a\": [1, ", 10, false, false, ids, 16);
    for (int i = 0; i < n; i++) assert_int_equal(nj_grammar_accept(gr, ids[i]), 0);
    check_mask(gr, d.n_vocab);
    nj_grammar_free(gr);
}

/* The sampler's shortcuts (greedy: allowed argmax; top-k: first k allowed
 * of the largest candidates) pick exactly what "mask the logits, then run
 * the chain" picks, draw for draw. */
static void test_sampler_equivalence(void **st) {
    (void)st;
    if (!g_model) skip();
    nj_model_desc d;
    nj_model_describe(g_model, &d);
    const int V = d.n_vocab;
    static const struct { float temp; int k; float p, minp, rep; } cfg[] = {
        {0.0f, 40, 0.95f, 0.05f, 1.0f}, {0.8f, 40, 0.95f, 0.05f, 1.1f}, {1.0f, 5, 1.0f, 0.0f, 1.0f},
        {1.0f, 0, 0.9f, 0.0f, 1.0f}, {1.5f, 300, 1.0f, 0.2f, 1.0f},
    };
    float *lg = malloc(sizeof *lg * (size_t)V), *ml = malloc(sizeof *ml * (size_t)V);
    assert_true(lg && ml);
    for (size_t ci = 0; ci < NJ_ARRAY_LEN(cfg); ci++) {
        nj_sampler_params sp;
        nj_sampler_default_params(&sp);
        sp.temp = cfg[ci].temp;
        sp.top_k = cfg[ci].k;
        sp.top_p = cfg[ci].p;
        sp.min_p = cfg[ci].minp;
        sp.repeat_penalty = cfg[ci].rep;
        sp.seed = 42 + ci;
        int err = 0;
        nj_grammar *gr = nj_grammar_from_schema(g_model, VERDICT, &err);
        nj_sampler *a = nj_sampler_new(&sp, &err), *b = nj_sampler_new(&sp, &err);
        assert_true(gr && a && b);
        nj_sampler_set_grammar(a, gr);
        unsigned seed = 1000 + (unsigned)ci;
        for (int step = 0; step < 60 && nj_grammar_done(gr) < 2; step++) {
            /* peaked random logits: a few large values, as a model's */
            for (int i = 0; i < V; i++) lg[i] = (float)(rand_r(&seed) % 1000) / 250.0f;
            for (int j = 0; j < 50; j++) lg[rand_r(&seed) % (unsigned)V] += 8.0f;
            memcpy(ml, lg, sizeof *ml * (size_t)V);
            assert_true(nj_grammar_mask(gr, ml) > 0);
            int32_t ia = nj_sampler_sample(a, lg, V), ib = nj_sampler_sample(b, ml, V);
            if (ia != ib) print_error("config %zu step %d: shortcut %d, masked chain %d\n", ci, step, ia, ib);
            assert_int_equal(ia, ib);
            nj_sampler_accept(a, ia);
            nj_sampler_accept(b, ib);
            if (nj_token_is_eog(g_model, ia)) break;
            assert_int_equal(nj_grammar_accept(gr, ia), 0);
        }
        nj_sampler_free(a);
        nj_sampler_free(b);
        nj_grammar_free(gr);
    }
    free(lg);
    free(ml);
}

/* The temperature-only shortcut (rejection sampling) draws from the masked
 * distribution: frequencies over many draws from one state match
 * softmax(logits over the allowed tokens) within 4 standard errors. */
static void test_rejection_sampling_distribution(void **st) {
    (void)st;
    if (!g_model) skip();
    nj_model_desc d;
    nj_model_describe(g_model, &d);
    const int V = d.n_vocab, N = 3000;
    int err = 0;
    nj_grammar *gr = nj_grammar_from_schema(g_model, VERDICT, &err);
    assert_non_null(gr);
    int32_t ids[16];
    int n = nj_tokenize(g_model, "{\"verdict\": \"", 13, false, false, ids, 16);
    for (int i = 0; i < n; i++) assert_int_equal(nj_grammar_accept(gr, ids[i]), 0);
    float *lg = malloc(sizeof *lg * (size_t)V), *ml = malloc(sizeof *ml * (size_t)V);
    unsigned seed = 5;
    for (int i = 0; i < V; i++) lg[i] = (float)(rand_r(&seed) % 1000) / 200.0f;
    memcpy(ml, lg, sizeof *ml * (size_t)V);
    int n_ok = nj_grammar_mask(gr, ml);
    assert_true(n_ok >= 2);
    /* raise the allowed tokens so that rejections and acceptances both happen */
    double z = 0;
    for (int i = 0; i < V; i++)
        if (!isinf(ml[i])) { lg[i] += 6.0f; ml[i] = lg[i]; z += exp((double)ml[i]); }
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);
    sp.temp = 1.0f; sp.top_k = 0; sp.top_p = 1.0f; sp.min_p = 0.0f; sp.seed = 77;
    nj_sampler *a = nj_sampler_new(&sp, &err);
    nj_sampler_set_grammar(a, gr);
    int *cnt = calloc((size_t)V, sizeof *cnt);
    for (int k = 0; k < N; k++) {
        int32_t id = nj_sampler_sample(a, lg, V);
        assert_true(id >= 0 && !isinf(ml[id]));
        cnt[id]++;
    }
    for (int i = 0; i < V; i++) {
        if (isinf(ml[i])) continue;
        double p = exp((double)ml[i]) / z, f = (double)cnt[i] / N;
        double tol = 4.0 * sqrt(p * (1 - p) / N) + 1e-3;
        if (fabs(f - p) > tol) print_error("token %d: frequency %.4f, probability %.4f\n", i, f, p);
        assert_true(fabs(f - p) <= tol);
    }
    free(cnt);
    free(lg);
    free(ml);
    nj_sampler_free(a);
    nj_grammar_free(gr);
}

static void test_forced_tokens(void **st) {
    (void)st;
    if (!g_model) skip();
    int err = 0;
    nj_grammar *gr = nj_grammar_from_schema(g_model, VERDICT, &err);
    assert_non_null(gr);
    int32_t ids[64];
    int n = nj_grammar_forced(gr, ids, 64);
    assert_true(n > 0);
    char text[256];
    int len = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(nj_grammar_accept(gr, ids[i]), 0);
        len += nj_token_to_piece(g_model, ids[i], false, text + len, sizeof text - (size_t)len);
    }
    text[len] = 0;
    /* a prefix of the forced text */
    assert_true(len <= (int)strlen("{\"verdict\": \""));
    assert_memory_equal(text, "{\"verdict\": \"", (size_t)len);
    /* complete a verdict, then the rest up to the array is forced */
    int32_t t[16];
    const char *rest = "{\"verdict\": \"suspicious";
    int k = nj_tokenize(g_model, rest + len, strlen(rest) - (size_t)len, false, false, t, 16);
    for (int i = 0; i < k; i++) assert_int_equal(nj_grammar_accept(gr, t[i]), 0);
    n = nj_grammar_forced(gr, ids, 64);
    assert_true(n >= 3);
    for (int i = 0; i < n; i++) assert_int_equal(nj_grammar_accept(gr, ids[i]), 0);
    /* close the document: shortest completion, accepted, complete; a too
     * small buffer gets the count needed */
    int need = nj_grammar_close(gr, ids, 1);
    assert_true(need >= 1);
    int nc = nj_grammar_close(gr, ids, 64);
    assert_int_equal(nc, need);
    assert_true(nc > 0 && nc <= 64);
    for (int i = 0; i < nc; i++) assert_int_equal(nj_grammar_accept(gr, ids[i]), 0);
    assert_int_equal(nj_grammar_done(gr), 2);
    nj_grammar_free(gr);
}

/* A document cut inside a UTF-8 sequence (the model sampled a lead byte
 * as its own token) closes with the continuation bytes, which the
 * tokenizer alone would turn into U+FFFD: the closer must give back
 * tokens with exactly the bytes the grammar needs. */
static void test_close_inside_utf8(void **st) {
    (void)st;
    if (!g_model) skip();
    nj_model_desc d;
    nj_model_describe(g_model, &d);
    int32_t lead = -1;
    char piece[16];
    for (int32_t id = 0; id < d.n_vocab && lead < 0; id++)
        if (nj_token_to_piece(g_model, id, false, piece, sizeof piece) == 1 && (unsigned char)piece[0] == 0xC3)
            lead = id;
    if (lead < 0) skip();   /* a vocabulary without the byte as a token */
    int err = 0;
    nj_grammar *gr = nj_grammar_json_object(g_model, &err);
    assert_non_null(gr);
    int32_t t[16];
    int k = nj_tokenize(g_model, "{\"a\": \"", 7, false, false, t, 16);
    assert_true(k > 0);
    for (int i = 0; i < k; i++) assert_int_equal(nj_grammar_accept(gr, t[i]), 0);
    assert_int_equal(nj_grammar_accept(gr, lead), 0);
    int32_t ids[64];
    int nc = nj_grammar_close(gr, ids, 64);
    assert_true(nc > 0);
    char text[64];
    int len = 0;
    for (int i = 0; i < nc; i++) {
        assert_int_equal(nj_grammar_accept(gr, ids[i]), 0);
        len += nj_token_to_piece(g_model, ids[i], false, text + len, sizeof text - (size_t)len);
    }
    assert_int_equal(nj_grammar_done(gr), 2);
    assert_true(len >= 3);
    assert_int_equal((unsigned char)text[0] & 0xC0, 0x80);   /* a continuation byte first */
    assert_memory_equal(text + len - 2, "\"}", 2);
    nj_grammar_free(gr);
}

static double logsumexp(const float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

static void test_label_scoring(void **st) {
    (void)st;
    if (!g_model) skip();
    nj_model_desc d;
    nj_model_describe(g_model, &d);
    const int V = d.n_vocab;
    int err = 0;
    nj_session *s = nj_session_new(g_model, NULL, &err);
    assert_non_null(s);
    const char *prompt = "The event is a shell spawning curl to a paste site. Verdict:";
    int32_t ids[128];
    int n = nj_tokenize(g_model, prompt, strlen(prompt), true, false, ids, 128);
    assert_true(n > 0 && n < 128);
    assert_int_equal(nj_session_eval(s, ids, n), 0);
    float *l0 = malloc(sizeof *l0 * (size_t)V);
    memcpy(l0, nj_session_logits(s), sizeof *l0 * (size_t)V);

    /* single-token labels: zero passes, softmax by hand */
    const char *one[] = {" benign", " malicious", " suspicious", " unknown"};
    int32_t tk[4];
    bool single = true;
    for (int i = 0; i < 4; i++) single &= nj_tokenize(g_model, one[i], strlen(one[i]), false, false, &tk[i], 1) == 1;
    float p[8], lp[8];
    if (single) {
        int rc = nj_score_labels(s, one, 4, p, lp);
        assert_int_equal(rc, 0);
        double z = logsumexp(l0, V), tot = 0;
        for (int i = 0; i < 4; i++) tot += exp((double)l0[tk[i]] - z);
        for (int i = 0; i < 4; i++) {
            double want = (double)l0[tk[i]] - z;
            assert_true(fabs(lp[i] - want) < 1e-4);
            assert_true(fabs(p[i] - exp(want) / tot) < 1e-5);
        }
    }
    assert_int_equal(nj_session_pos(s), n);

    /* multi-token labels with shared prefixes vs sequential evaluation */
    const char *multi[] = {" credential dumping", " credential access", " benign activity", " c2 beacon", " benign"};
    const int NL = 5;
    int rc = nj_score_labels(s, multi, NL, p, lp);
    assert_true(rc >= 1);
    print_message("label scoring: %d batches for %d labels\n", rc, NL);
    assert_int_equal(nj_session_pos(s), n);
    assert_memory_equal(nj_session_logits(s), l0, sizeof *l0 * (size_t)V);   /* restored */
    /* bad input (the session keeps its logits) */
    const char *empty[] = {""};
    assert_int_equal(nj_score_labels(s, empty, 1, p, NULL), -EINVAL);
    assert_memory_equal(nj_session_logits(s), l0, sizeof *l0 * (size_t)V);
    double want_lp[5], tot = 0, worst = 0;
    for (int i = 0; i < NL; i++) {
        int32_t t[16];
        int k = nj_tokenize(g_model, multi[i], strlen(multi[i]), false, false, t, 16);
        assert_true(k >= 1);
        double v = (double)l0[t[0]] - logsumexp(l0, V);
        for (int j = 1; j < k; j++) {
            assert_int_equal(nj_session_eval(s, &t[j - 1], 1), 0);
            const float *row = nj_session_logits(s);
            v += (double)row[t[j]] - logsumexp(row, V);
        }
        assert_int_equal(nj_session_truncate(s, n), 0);
        want_lp[i] = v;
        tot += exp(v);
    }
    for (int i = 0; i < NL; i++) worst = fmax(worst, fabs(lp[i] - want_lp[i]));
    print_message("label scoring: largest |batched - sequential| log-prob difference %.2e\n", worst);
    for (int i = 0; i < NL; i++) {
        if (fabs(lp[i] - want_lp[i]) > 1e-4 * fmax(1.0, fabs(want_lp[i])))
            print_error("label %s: batched %f sequential %f\n", multi[i], lp[i], want_lp[i]);
        assert_true(fabs(lp[i] - want_lp[i]) <= 1e-4 * fmax(1.0, fabs(want_lp[i])));
        assert_true(fabs(p[i] - exp(want_lp[i]) / tot) < 1e-4);
    }
    free(l0);
    nj_session_free(s);
}

/* Allocation failures in grammar creation, masking and label scoring:
 * clean errors, no leaks, the session left as it was. */
static void test_model_alloc_failures(void **st) {
    (void)st;
    if (!g_model) skip();
    int err = 0;
    nj_session_params ps = {.n_ctx = 256};
    nj_session *s = nj_session_new(g_model, &ps, &err);
    assert_non_null(s);
    int32_t ids[32];
    int n = nj_tokenize(g_model, "Verdict:", 8, true, false, ids, 32);
    assert_int_equal(nj_session_eval(s, ids, n), 0);
    nj_model_desc d;
    nj_model_describe(g_model, &d);
    float *lg = malloc(sizeof *lg * (size_t)d.n_vocab);
    const char *labels[] = {" benign", " very suspicious", " very malicious"};
    float p[3];
    assert_non_null(gram_trie_get(g_model, &err));   /* the model's cache, built once */
    size_t base = nj_mem_in_use();
    int ok = 0;
    for (long i = 0; i < 3000 && !ok; i++) {
        nj_alloc_fail_after(i);
        nj_grammar *g = nj_grammar_from_schema(g_model, VERDICT, &err);
        int rm = g ? nj_grammar_mask(g, lg) : -1;
        int rl = nj_score_labels(s, labels, 3, p, NULL);
        nj_alloc_fail_after(-1);
        if (!g) assert_true(err < 0);
        assert_int_equal(nj_session_pos(s), n);
        assert_non_null(nj_session_logits(s));
        if (g && rm > 0 && rl >= 0) ok = 1;
        nj_grammar_free(g);
        assert_int_equal(nj_mem_in_use(), base);
    }
    assert_true(ok);
    free(lg);
    nj_session_free(s);
}

/* Mask cost against a forward pass (printed; asserts only that it is below). */
static void test_mask_speed(void **st) {
    (void)st;
    if (!g_model) skip();
    int err = 0;
    nj_grammar *gr = nj_grammar_from_schema(g_model, VERDICT, &err);
    assert_non_null(gr);
    nj_model_desc d;
    nj_model_describe(g_model, &d);
    float *lg = calloc((size_t)d.n_vocab, sizeof *lg);
    const char *doc = "{\"verdict\": \"malicious\", \"techniques\": [\"T1059.001\", \"T1105\"], \"summary\": "
                      "\"PowerShell downloads a payload from a remote host and runs it\"}";
    int32_t ids[256];
    int n = nj_tokenize(g_model, doc, strlen(doc), false, false, ids, 256);
    double t0 = nj_now();
    for (int i = 0; i < n; i++) {
        assert_true(nj_grammar_mask(gr, lg) > 0);
        assert_int_equal(nj_grammar_accept(gr, ids[i]), 0);
    }
    double per = (nj_now() - t0) / n * 1e6;
    grammar_counters c;
    grammar_get_counters(gr, &c);
    print_message("mask+accept: %.1f us per token over %d tokens (%d masks built, %d cache hits, "
                  "%.1f us walking)\n", per, n, c.g.n_masks_built, c.g.n_mask_hits, c.g.mask_build_us);
    assert_int_equal(nj_grammar_done(gr), 2);
    free(lg);
    nj_grammar_free(gr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_number_ranges),
        cmocka_unit_test(test_patterns_vs_pcre2),
        cmocka_unit_test(test_random_documents),
        cmocka_unit_test(test_forced_and_close),
        cmocka_unit_test(test_cache_compaction),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_mask_brute_force),
        cmocka_unit_test(test_sampler_equivalence),
        cmocka_unit_test(test_rejection_sampling_distribution),
        cmocka_unit_test(test_forced_tokens),
        cmocka_unit_test(test_close_inside_utf8),
        cmocka_unit_test(test_label_scoring),
        cmocka_unit_test(test_model_alloc_failures),
        cmocka_unit_test(test_mask_speed),
    };
    return cmocka_run_group_tests_name("grammar", tests, model_setup, model_teardown);
}
