/*
 * json_schema — the schema walker, the pattern compiler and the number
 * automata behind json_schema.h (which lists what is supported).
 *
 * Design.  One recursive walk over the parsed schema (jansson) builds
 * grammar nodes (grammar.h's gb_*).  The walk carries the JSON pointer of
 * the schema it is in, so every refusal names the keyword and where it is.
 * Nodes that recur are built once and shared: one string character, the
 * free-form values of each depth, one node per $ref target (a gb_ref, so
 * recursive definitions become cycles that the compiler expands to a
 * bounded depth).
 *
 * Text is emitted in the canonical layout of json_schema.h; enum and const
 * values are serialised by our own writer in that same layout, so that
 * what the grammar allows and what the values look like never disagree.
 *
 * Patterns are parsed by recursive descent straight into grammar nodes
 * over the JSON-encoded bytes of each character: a character class becomes
 * the raw bytes of its printable ASCII members, the escape sequences of
 * '"', '\\' and control characters, and the UTF-8 sequences of its
 * non-ASCII members.
 *
 * Integer ranges use the classic digit-string decomposition: split [a, b]
 * by number of digits, then on the first differing digit into a low edge,
 * a free middle and a high edge.  It is exact.
 */
#include "json_schema.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define INT_LIMIT 999999999999999LL   /* 10^15 - 1 */

typedef struct refent { char *ptr; int node; } refent;

typedef struct jsc {
    gb     *b;
    json_t *root;
    char    path[512];
    refent *refs; int n_refs, cap_refs;
    int     rc;            /* first refusal / error code */
    int     n_char, n_str, n_num, n_utf8;
    int     any[JS_ANY_DEPTH + 1];
    int     depth;
} jsc;

/* ---- small helpers ---- */

static int refuse(jsc *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int refuse(jsc *c, int code, const char *fmt, ...) {
    if (!c->rc) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        c->rc = nj_fail(code, "%s", msg);
    }
    return -1;
}

static int unsupported(jsc *c, const char *kw) {
    return refuse(c, NJ_EUNSUPPORTED, "unsupported JSON-schema keyword '%s' at %s", kw,
                  c->path[0] ? c->path : "/");
}

static int bad(jsc *c, const char *what) {
    return refuse(c, NJ_EFORMAT, "invalid JSON schema at %s: %s", c->path[0] ? c->path : "/", what);
}

/* Push "/seg" (escaped as a JSON pointer) onto the path; returns the old length. */
static size_t path_push(jsc *c, const char *seg) {
    size_t n = strlen(c->path), o = n;
    if (n + 1 < sizeof c->path) c->path[n++] = '/';
    for (const char *p = seg; *p && n + 2 < sizeof c->path; p++) {
        if (*p == '~') { c->path[n++] = '~'; c->path[n++] = '0'; }
        else if (*p == '/') { c->path[n++] = '~'; c->path[n++] = '1'; }
        else c->path[n++] = *p;
    }
    c->path[n] = 0;
    return o;
}
static size_t path_push_i(jsc *c, size_t i) {
    char s[24];
    snprintf(s, sizeof s, "%zu", i);
    return path_push(c, s);
}
static void path_pop(jsc *c, size_t o) { c->path[o] = 0; }

/* growable text */
typedef struct sbuf { char *p; size_t n, cap; int err; } sbuf;
static void sb_put(sbuf *s, const char *x, size_t n) {
    if (s->err) return;
    if (s->n + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        while (nc < s->n + n + 1) nc *= 2;
        char *q = nj_realloc(s->p, nc);
        if (!q) { s->err = -ENOMEM; return; }
        s->p = q;
        s->cap = nc;
    }
    memcpy(s->p + s->n, x, n);
    s->n += n;
    s->p[s->n] = 0;
}
static void sb_str(sbuf *s, const char *x) { sb_put(s, x, strlen(x)); }

/* ---- canonical text ---- */

/* JSON encoding of one code point (canonical form) appended to s. */
static void enc_cp(sbuf *s, uint32_t cp) {
    char t[8];
    if (cp == '"') sb_str(s, "\\\"");
    else if (cp == '\\') sb_str(s, "\\\\");
    else if (cp < 0x20) {
        const char *e = cp == '\b' ? "\\b" : cp == '\f' ? "\\f" : cp == '\n' ? "\\n" :
                        cp == '\r' ? "\\r" : cp == '\t' ? "\\t" : NULL;
        if (e) sb_str(s, e);
        else { snprintf(t, sizeof t, "\\u%04x", (unsigned)cp); sb_str(s, t); }
    } else if (cp < 0x80) { t[0] = (char)cp; sb_put(s, t, 1); }
    else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6)); t[1] = (char)(0x80 | (cp & 63));
        sb_put(s, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12)); t[1] = (char)(0x80 | ((cp >> 6) & 63));
        t[2] = (char)(0x80 | (cp & 63));
        sb_put(s, t, 3);
    } else {
        t[0] = (char)(0xF0 | (cp >> 18)); t[1] = (char)(0x80 | ((cp >> 12) & 63));
        t[2] = (char)(0x80 | ((cp >> 6) & 63)); t[3] = (char)(0x80 | (cp & 63));
        sb_put(s, t, 4);
    }
}

/* Decode one UTF-8 code point; returns its length or 0 if invalid. */
static int utf8_dec(const unsigned char *p, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = p[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t v = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 63);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static void enc_string(sbuf *s, const char *str, size_t n) {
    sb_put(s, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_dec((const unsigned char *)str + i, n - i, &cp);
        if (!l) { cp = 0xFFFD; l = 1; }
        enc_cp(s, cp);
        i += (size_t)l;
    }
    sb_put(s, "\"", 1);
}

static void enc_number(sbuf *s, double v) {
    char t[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v) break;
    }
    sb_str(s, t);
}

/* Canonical serialisation of a JSON value (layout of json_schema.h). */
static void enc_value(sbuf *s, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL: sb_str(s, "null"); break;
    case JSON_TRUE: sb_str(s, "true"); break;
    case JSON_FALSE: sb_str(s, "false"); break;
    case JSON_INTEGER: {
        char t[32];
        snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_str(s, t);
        break;
    }
    case JSON_REAL: enc_number(s, json_real_value(v)); break;
    case JSON_STRING: enc_string(s, json_string_value(v), json_string_length(v)); break;
    case JSON_ARRAY: {
        sb_str(s, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) sb_str(s, ", ");
            enc_value(s, json_array_get(v, i));
        }
        sb_str(s, "]");
        break;
    }
    case JSON_OBJECT: {
        sb_str(s, "{");
        const char *k;
        json_t *x;
        int i = 0;
        json_object_foreach((json_t *)v, k, x) {
            if (i++) sb_str(s, ", ");
            enc_string(s, k, strlen(k));
            sb_str(s, ": ");
            enc_value(s, x);
        }
        sb_str(s, "}");
        break;
    }
    }
}

/* ---- shared nodes ---- */

static int lit(jsc *c, const char *s) { return gb_lit(c->b, s, strlen(s)); }

/* Any valid UTF-8 sequence of 2..4 bytes (one non-ASCII code point). */
static int utf8_multi(jsc *c) {
    if (c->n_utf8) return c->n_utf8;
    gb *b = c->b;
    int cont = gb_range(b, 0x80, 0xBF);
    int alts[7] = {
        gb_seq2(b, gb_range(b, 0xC2, 0xDF), cont),
        gb_seq(b, (int[]){gb_byte(b, 0xE0), gb_range(b, 0xA0, 0xBF), cont}, 3),
        gb_seq(b, (int[]){gb_range(b, 0xE1, 0xEC), cont, cont}, 3),
        gb_seq(b, (int[]){gb_byte(b, 0xED), gb_range(b, 0x80, 0x9F), cont}, 3),
        gb_seq(b, (int[]){gb_range(b, 0xEE, 0xEF), cont, cont}, 3),
        gb_seq(b, (int[]){gb_byte(b, 0xF0), gb_range(b, 0x90, 0xBF), cont, cont}, 4),
        gb_seq(b, (int[]){gb_range(b, 0xF1, 0xF4), cont, cont, cont}, 4),
    };
    /* F4 must be followed by 80..8F: split the last alternative */
    alts[6] = gb_alt2(b, gb_seq(b, (int[]){gb_range(b, 0xF1, 0xF3), cont, cont, cont}, 4),
                      gb_seq(b, (int[]){gb_byte(b, 0xF4), gb_range(b, 0x80, 0x8F), cont, cont}, 4));
    c->n_utf8 = gb_alt(b, alts, 7);
    return c->n_utf8;
}

/* One character of free string content. */
static int str_char(jsc *c) {
    if (c->n_char) return c->n_char;
    gb *b = c->b;
    uint64_t raw[4] = {0, 0, 0, 0};
    for (unsigned x = 0x20; x < 0x80; x++)
        if (x != '"' && x != '\\') raw[x >> 6] |= (uint64_t)1 << (x & 63);
    uint64_t simple[4] = {0, 0, 0, 0};
    for (const char *p = "\"\\/bfnrt"; *p; p++) simple[(unsigned)*p >> 6] |= (uint64_t)1 << (*p & 63);
    int hex = gb_alt(b, (int[]){gb_range(b, '0', '9'), gb_range(b, 'a', 'f'), gb_range(b, 'A', 'F')}, 3);
    /* \uXXXX without surrogates (D800-DFFF) */
    int h3 = gb_rep(b, hex, 3, 3);
    int nonsur = gb_alt(b, (int[]){
        gb_seq2(b, gb_alt(b, (int[]){gb_range(b, '0', '9'), gb_range(b, 'a', 'c'), gb_range(b, 'A', 'C'),
                                     gb_range(b, 'e', 'f'), gb_range(b, 'E', 'F')}, 5), h3),
        gb_seq(b, (int[]){gb_alt2(b, gb_byte(b, 'd'), gb_byte(b, 'D')), gb_range(b, '0', '7'),
                          gb_rep(b, hex, 2, 2)}, 3)}, 2);
    int esc = gb_seq2(b, gb_byte(b, '\\'), gb_alt2(b, gb_set(b, simple), gb_seq2(b, gb_byte(b, 'u'), nonsur)));
    c->n_char = gb_alt(b, (int[]){gb_set(b, raw), esc, utf8_multi(c)}, 3);
    return c->n_char;
}

static int str_node(jsc *c, int min, int max) {
    int q = gb_byte(c->b, '"');
    return gb_seq(c->b, (int[]){q, gb_rep(c->b, str_char(c), min, max), q}, 3);
}

/* ---- integer and number ranges ---- */

static int digits(jsc *c, int n) { return gb_rep(c->b, gb_range(c->b, '0', '9'), n, n); }

/* Decimal strings lo..hi of equal length n (no sign, leading digit as given). */
static int range_eq(jsc *c, const char *lo, const char *hi, int n) {
    gb *b = c->b;
    if (n == 0) return gb_empty(b);
    if (lo[0] == hi[0]) return gb_seq2(b, gb_byte(b, (uint8_t)lo[0]), range_eq(c, lo + 1, hi + 1, n - 1));
    bool lo0 = true, hi9 = true;
    for (int i = 1; i < n; i++) { lo0 &= lo[i] == '0'; hi9 &= hi[i] == '9'; }
    if (lo0 && hi9) return gb_seq2(b, gb_range(b, (uint8_t)lo[0], (uint8_t)hi[0]), digits(c, n - 1));
    char nines[24], zeros[24];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    int alts[3], m = 0;
    alts[m++] = gb_seq2(b, gb_byte(b, (uint8_t)lo[0]), range_eq(c, lo + 1, nines, n - 1));
    if (lo[0] + 1 <= hi[0] - 1)
        alts[m++] = gb_seq2(b, gb_range(b, (uint8_t)(lo[0] + 1), (uint8_t)(hi[0] - 1)), digits(c, n - 1));
    alts[m++] = gb_seq2(b, gb_byte(b, (uint8_t)hi[0]), range_eq(c, zeros, hi + 1, n - 1));
    return gb_alt(b, alts, m);
}

/* Canonical decimal strings of the integers in [a, b], 0 <= a; empty if a > b. */
static int range_nonneg(jsc *c, long long a, long long bnd) {
    if (a > bnd) return gb_alt(c->b, NULL, 0);
    int alts[20], m = 0;
    long long p = 1;
    for (int len = 1; len <= 16; len++, p *= 10) {
        long long lo = len == 1 ? 0 : p, hi = p * 10 - 1;
        if (hi < a || lo > bnd) continue;
        if (lo < a) lo = a;
        if (hi > bnd) hi = bnd;
        char ls[24], hs[24];
        snprintf(ls, sizeof ls, "%lld", lo);
        snprintf(hs, sizeof hs, "%lld", hi);
        alts[m++] = range_eq(c, ls, hs, len);
    }
    return gb_alt(c->b, alts, m);
}

static int int_range(jsc *c, long long lo, long long hi) {
    int alts[2], m = 0;
    if (hi >= 0) alts[m++] = range_nonneg(c, lo > 0 ? lo : 0, hi);
    if (lo < 0) alts[m++] = gb_seq2(c->b, gb_byte(c->b, '-'), range_nonneg(c, hi < 0 ? -hi : 1, -lo));
    if (lo > hi) return gb_alt(c->b, NULL, 0);
    return gb_alt(c->b, alts, m);
}

/* ".d{0,5}[1-9]": a fraction strictly between 0 and 1 */
static int fraction(jsc *c) {
    return gb_seq(c->b, (int[]){gb_byte(c->b, '.'), gb_rep(c->b, gb_range(c->b, '0', '9'), 0, 5),
                                gb_range(c->b, '1', '9')}, 3);
}

static double clampd(double v) {
    return v < -(double)INT_LIMIT ? -(double)INT_LIMIT : v > (double)INT_LIMIT ? (double)INT_LIMIT : v;
}

/* Magnitudes m with ma <= m <= mb (strict where asked), as "I" or "I.F". */
static int magnitudes(jsc *c, double ma, bool ma_x, double mb, bool mb_x, bool positive_only) {
    long long e_lo = (long long)ceil(ma), e_hi = (long long)floor(mb);
    if (ma_x && (double)e_lo == ma) e_lo++;
    if (mb_x && (double)e_hi == mb) e_hi--;
    if (positive_only && e_lo < 1) e_lo = 1;
    long long f_lo = (long long)ceil(ma), f_hi = (long long)floor(mb) - 1;
    int alts[2], m = 0;
    if (e_lo <= e_hi) alts[m++] = range_nonneg(c, e_lo, e_hi);
    if (f_lo <= f_hi) alts[m++] = gb_seq2(c->b, range_nonneg(c, f_lo, f_hi), fraction(c));
    return gb_alt(c->b, alts, m);
}

static int num_range(jsc *c, double lo, bool lo_x, double hi, bool hi_x) {
    lo = clampd(lo);
    hi = clampd(hi);
    int alts[2], m = 0;
    if (hi >= 0) alts[m++] = magnitudes(c, lo > 0 ? lo : 0, lo >= 0 && lo_x, hi, hi_x, false);
    if (lo < 0) {
        int neg = magnitudes(c, hi < 0 ? -hi : 0, hi <= 0 && hi_x, -lo, lo_x, true);
        alts[m++] = gb_seq2(c->b, gb_byte(c->b, '-'), neg);
    }
    return gb_alt(c->b, alts, m);
}

/* ---- patterns ---- */

typedef struct rx {
    jsc        *c;
    const char *p, *end, *src;
    int         depth;
} rx;

typedef struct ccls {
    uint64_t ascii[2];       /* members 0..127 */
    bool     nonascii;       /* every non-ASCII code point */
    uint32_t cps[32];        /* explicit non-ASCII members */
    int      n_cps;
} ccls;

static void cc_add(ccls *k, unsigned c) { k->ascii[c >> 6] |= (uint64_t)1 << (c & 63); }

static int rx_refuse(rx *r, const char *what) {
    return refuse(r->c, NJ_EUNSUPPORTED, "unsupported regex construct %s in pattern '%s' at %s",
                  what, r->src, r->c->path[0] ? r->c->path : "/");
}

/* Grammar node for "one character of class k", JSON-encoded. */
static int cc_node(rx *r, const ccls *k) {
    jsc *c = r->c;
    gb *b = c->b;
    uint64_t raw[4] = {0, 0, 0, 0};
    int alts[64], m = 0;
    for (unsigned x = 0; x < 128; x++) {
        if (!((k->ascii[x >> 6] >> (x & 63)) & 1)) continue;
        if (x >= 0x20 && x != '"' && x != '\\') raw[x >> 6] |= (uint64_t)1 << (x & 63);
        else if (m < 40) {
            sbuf s = {0};
            enc_cp(&s, x);
            if (s.err) return refuse(c, -ENOMEM, "out of memory");
            alts[m++] = gb_lit(b, s.p, s.n);
            nj_free(s.p);
        }
    }
    if (raw[0] | raw[1]) alts[m++] = gb_set(b, raw);
    if (k->nonascii) alts[m++] = utf8_multi(c);
    else
        for (int i = 0; i < k->n_cps && m < 64; i++) {
            sbuf s = {0};
            enc_cp(&s, k->cps[i]);
            if (s.err) return refuse(c, -ENOMEM, "out of memory");
            alts[m++] = gb_lit(b, s.p, s.n);
            nj_free(s.p);
        }
    return gb_alt(b, alts, m);
}

static void cc_shorthand(ccls *k, char e, bool *neg_short) {
    ccls t = {{0, 0}, false, {0}, 0};
    if (e == 'd' || e == 'D') for (unsigned x = '0'; x <= '9'; x++) cc_add(&t, x);
    if (e == 'w' || e == 'W') {
        for (unsigned x = '0'; x <= '9'; x++) cc_add(&t, x);
        for (unsigned x = 'a'; x <= 'z'; x++) cc_add(&t, x);
        for (unsigned x = 'A'; x <= 'Z'; x++) cc_add(&t, x);
        cc_add(&t, '_');
    }
    if (e == 's' || e == 'S') for (const char *p = " \t\n\r\f\v"; *p; p++) cc_add(&t, (unsigned char)*p);
    if (e >= 'A' && e <= 'Z') { t.ascii[0] = ~t.ascii[0]; t.ascii[1] = ~t.ascii[1]; }
    k->ascii[0] |= t.ascii[0];
    k->ascii[1] |= t.ascii[1];
    if (neg_short) *neg_short = true;
}

/* Parse an escape after '\' (r->p at the char after '\').  Sets *cp to a
 * single code point or returns 1 with the class filled for shorthands;
 * -1 on refusal. */
static int rx_escape(rx *r, uint32_t *cp, ccls *k, bool *shorthand) {
    if (r->p >= r->end) return rx_refuse(r, "'\\' at the end");
    char e = *r->p++;
    switch (e) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        cc_shorthand(k, e, shorthand);
        return 1;
    case 'n': *cp = '\n'; return 0;
    case 't': *cp = '\t'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case 'x': case 'u': {
        int nd = e == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (int i = 0; i < nd; i++) {
            if (r->p >= r->end) return rx_refuse(r, "truncated hex escape");
            char h = *r->p++;
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 :
                    h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) return rx_refuse(r, "bad hex escape");
            v = v * 16 + (uint32_t)d;
        }
        if (v >= 0xD800 && v <= 0xDFFF) return rx_refuse(r, "surrogate escape");
        *cp = v;
        return 0;
    }
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
            char w[8];
            snprintf(w, sizeof w, "'\\%c'", e);
            return rx_refuse(r, w);
        }
        *cp = (unsigned char)e;
        return 0;
    }
}

/* Next literal code point of the pattern text (UTF-8). */
static int rx_cp(rx *r, uint32_t *cp) {
    int l = utf8_dec((const unsigned char *)r->p, (size_t)(r->end - r->p), cp);
    if (!l) return rx_refuse(r, "(invalid UTF-8)");
    r->p += l;
    return 0;
}

static void cc_add_cp(rx *r, ccls *k, uint32_t cp) {
    if (cp < 128) cc_add(k, cp);
    else if (k->n_cps < 32) k->cps[k->n_cps++] = cp;
    else rx_refuse(r, "(class with more than 32 non-ASCII characters)");
}

static int rx_class(rx *r) {
    /* r->p after '[' */
    ccls k = {{0, 0}, false, {0}, 0};
    bool neg = false, shorthand = false;
    if (r->p < r->end && *r->p == '^') { neg = true; r->p++; }
    bool first = true;
    while (r->p < r->end && (*r->p != ']' || first)) {
        first = false;
        uint32_t a;
        if (*r->p == '[' && r->p + 1 < r->end && r->p[1] == ':') return rx_refuse(r, "'[:' (POSIX class)");
        if (*r->p == '\\') {
            r->p++;
            int e = rx_escape(r, &a, &k, &shorthand);
            if (e < 0) return -1;
            if (e == 1) continue;
        } else if (rx_cp(r, &a)) return -1;
        if (r->p + 1 < r->end && *r->p == '-' && r->p[1] != ']') {
            r->p++;
            uint32_t z;
            if (*r->p == '\\') {
                r->p++;
                int e = rx_escape(r, &z, &k, &shorthand);
                if (e < 0) return -1;
                if (e == 1) return rx_refuse(r, "(range ending in a shorthand class)");
            } else if (rx_cp(r, &z)) return -1;
            if (z < a) return rx_refuse(r, "(reversed range)");
            if (z >= 128) return rx_refuse(r, "(non-ASCII range)");
            for (uint32_t x = a; x <= z; x++) cc_add(&k, x);
        } else {
            cc_add_cp(r, &k, a);
        }
    }
    if (r->p >= r->end) return rx_refuse(r, "(unterminated class)");
    r->p++;
    if (neg) {
        if (k.n_cps) return rx_refuse(r, "(negated class with non-ASCII members)");
        k.ascii[0] = ~k.ascii[0];
        k.ascii[1] = ~k.ascii[1];
        k.nonascii = !shorthand;
    }
    return cc_node(r, &k);
}

static int rx_alt(rx *r, bool top);

static int rx_atom(rx *r) {
    jsc *c = r->c;
    char ch = *r->p;
    if (ch == '(') {
        r->p++;
        if (r->p < r->end && *r->p == '?') {
            if (r->p + 1 < r->end && r->p[1] == ':') r->p += 2;
            else if (r->p + 2 < r->end && r->p[1] == 'P' && r->p[2] == '<') {
                const char *q = memchr(r->p, '>', (size_t)(r->end - r->p));
                if (!q) return rx_refuse(r, "(unterminated group name)");
                r->p = q + 1;
            } else return rx_refuse(r, "'(?' (lookaround or inline flags)");
        }
        if (++r->depth > 64) return rx_refuse(r, "(groups nested more than 64 deep)");
        int n = rx_alt(r, false);
        r->depth--;
        if (n < 0) return -1;
        if (r->p >= r->end || *r->p != ')') return rx_refuse(r, "(unbalanced parenthesis)");
        r->p++;
        return n;
    }
    if (ch == '[') { r->p++; return rx_class(r); }
    ccls k = {{0, 0}, false, {0}, 0};
    if (ch == '.') {
        r->p++;
        k.ascii[0] = ~(uint64_t)0 & ~((uint64_t)1 << '\n');
        k.ascii[1] = ~(uint64_t)0;
        k.nonascii = true;
        return cc_node(r, &k);
    }
    uint32_t cp;
    if (ch == '\\') {
        r->p++;
        int e = rx_escape(r, &cp, &k, NULL);
        if (e < 0) return -1;
        if (e == 1) return cc_node(r, &k);
    } else if (rx_cp(r, &cp)) return -1;
    cc_add_cp(r, &k, cp);
    (void)c;
    return cc_node(r, &k);
}

/* {m}, {m,}, {m,n} at r->p ('{'); returns 1 if parsed, 0 if not a quantifier. */
static int rx_braces(rx *r, int *min, int *max) {
    const char *q = r->p + 1;
    long a = 0, bnd;
    if (q >= r->end || *q < '0' || *q > '9') return 0;
    while (q < r->end && *q >= '0' && *q <= '9') { a = a * 10 + (*q - '0'); q++; if (a > 100000) return 0; }
    bnd = a;
    if (q < r->end && *q == ',') {
        q++;
        if (q < r->end && *q == '}') bnd = -1;
        else {
            bnd = 0;
            if (q >= r->end || *q < '0' || *q > '9') return 0;
            while (q < r->end && *q >= '0' && *q <= '9') { bnd = bnd * 10 + (*q - '0'); q++; if (bnd > 100000) return 0; }
        }
    }
    if (q >= r->end || *q != '}') return 0;
    r->p = q + 1;
    *min = (int)a;
    *max = (int)bnd;
    return 1;
}

static int rx_seq(rx *r, bool top) {
    jsc *c = r->c;
    int items[256], n = 0;
    bool anch_start = false, anch_end = false;
    if (top && r->p < r->end && *r->p == '^') { anch_start = true; r->p++; }
    while (r->p < r->end && *r->p != '|' && *r->p != ')') {
        char ch = *r->p;
        if (ch == '$') {
            if (top && (r->p + 1 == r->end || r->p[1] == '|')) { anch_end = true; r->p++; break; }
            return rx_refuse(r, "'$' (not at the end of the pattern)");
        }
        if (ch == '^') return rx_refuse(r, "'^' (not at the start of the pattern)");
        if (ch == '*' || ch == '+' || ch == '?') return rx_refuse(r, "(quantifier without an operand)");
        int a = rx_atom(r);
        if (a < 0 || c->rc) return -1;
        for (;;) {
            int min = -2, max = -2;
            if (r->p < r->end && *r->p == '*') { min = 0; max = -1; r->p++; }
            else if (r->p < r->end && *r->p == '+') { min = 1; max = -1; r->p++; }
            else if (r->p < r->end && *r->p == '?') { min = 0; max = 1; r->p++; }
            else if (r->p < r->end && *r->p == '{' && rx_braces(r, &min, &max)) {}
            else break;
            if (max >= 0 && max < min) return rx_refuse(r, "(bad {m,n})");
            if (min > JS_MAX_REPEAT || max > JS_MAX_REPEAT) return rx_refuse(r, "(repeat count too large)");
            if (r->p < r->end && *r->p == '?') r->p++;           /* lazy: same language */
            else if (r->p < r->end && *r->p == '+') return rx_refuse(r, "(possessive quantifier)");
            a = gb_rep(c->b, a, min, max);
        }
        if (n == 256) { items[0] = gb_seq(c->b, items, n); n = 1; }
        items[n++] = a;
    }
    int body = n ? gb_seq(c->b, items, n) : gb_empty(c->b);
    if (top) {
        /* an unanchored side matches any text there (re.search) */
        int any = gb_rep(c->b, str_char(c), 0, -1);
        if (!anch_start) body = gb_seq2(c->b, any, body);
        if (!anch_end) body = gb_seq2(c->b, body, any);
    }
    return body;
}

static int rx_alt(rx *r, bool top) {
    int alts[64], n = 0;
    for (;;) {
        int s = rx_seq(r, top);
        if (s < 0) return -1;
        if (n == 64) { alts[0] = gb_alt(r->c->b, alts, n); n = 1; }
        alts[n++] = s;
        if (r->p < r->end && *r->p == '|') { r->p++; continue; }
        break;
    }
    return gb_alt(r->c->b, alts, n);
}

/* The JSON string (with quotes) whose value matches pattern. */
static int pattern_node(jsc *c, const char *pat) {
    rx r = {c, pat, pat + strlen(pat), pat, 0};
    int n = rx_alt(&r, true);
    if (n < 0 || c->rc) return -1;
    if (r.p != r.end) return rx_refuse(&r, "(unbalanced parenthesis)");
    int q = gb_byte(c->b, '"');
    return gb_seq(c->b, (int[]){q, n, q}, 3);
}

static const char RX_DATE[] =
    "[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))";
static const char RX_TIME[] =
    "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
static const char RX_UUID[] = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
static const char RX_IPV4[] =
    "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

static int format_node(jsc *c, const char *fmt) {
    char pat[512];
    if (!strcmp(fmt, "date")) snprintf(pat, sizeof pat, "^%s$", RX_DATE);
    else if (!strcmp(fmt, "time")) snprintf(pat, sizeof pat, "^%s$", RX_TIME);
    else if (!strcmp(fmt, "date-time")) snprintf(pat, sizeof pat, "^%sT%s$", RX_DATE, RX_TIME);
    else if (!strcmp(fmt, "uuid")) snprintf(pat, sizeof pat, "^%s$", RX_UUID);
    else if (!strcmp(fmt, "ipv4")) snprintf(pat, sizeof pat, "^%s$", RX_IPV4);
    else return refuse(c, NJ_EUNSUPPORTED, "unsupported JSON-schema keyword 'format' value '%s' at %s",
                       fmt, c->path[0] ? c->path : "/");
    return pattern_node(c, pat);
}

/* ---- free-form values ---- */

static int any_number(jsc *c) {
    if (c->n_num) return c->n_num;
    gb *b = c->b;
    int intpart = gb_alt2(b, gb_byte(b, '0'),
                          gb_seq2(b, gb_range(b, '1', '9'), gb_rep(b, gb_range(b, '0', '9'), 0, 14)));
    int frac = gb_seq2(b, gb_byte(b, '.'), gb_rep(b, gb_range(b, '0', '9'), 1, 6));
    c->n_num = gb_seq(b, (int[]){gb_opt(b, gb_byte(b, '-')), intpart, gb_opt(b, frac)}, 3);
    return c->n_num;
}

static int any_string(jsc *c) {
    if (!c->n_str) c->n_str = str_node(c, 0, -1);
    return c->n_str;
}

static int obj_of(jsc *c, int key, int val) {
    gb *b = c->b;
    int kv = gb_seq(b, (int[]){key, lit(c, ": "), val}, 3);
    int more = gb_rep(b, gb_seq2(b, lit(c, ", "), kv), 0, -1);
    return gb_seq(b, (int[]){gb_byte(b, '{'), gb_opt(b, gb_seq2(b, kv, more)), gb_byte(b, '}')}, 3);
}

static int arr_of(jsc *c, int item, int min, int max) {
    gb *b = c->b;
    if (max == 0) return lit(c, "[]");
    int rest = gb_rep(b, gb_seq2(b, lit(c, ", "), item), min > 0 ? min - 1 : 0, max < 0 ? -1 : max - 1);
    int body = gb_seq2(b, item, rest);
    if (min == 0) body = gb_opt(b, body);
    return gb_seq(b, (int[]){gb_byte(b, '['), body, gb_byte(b, ']')}, 3);
}

static int scalars(jsc *c) {
    return gb_alt(c->b, (int[]){any_string(c), any_number(c), lit(c, "true"), lit(c, "false"), lit(c, "null")}, 5);
}

/* Any JSON value nested at most d levels. */
static int any_value(jsc *c, int d) {
    if (d < 0) d = 0;
    if (d > JS_ANY_DEPTH) d = JS_ANY_DEPTH;
    if (c->any[d]) return c->any[d];
    int v = scalars(c);
    if (d > 0) {
        int inner = any_value(c, d - 1);
        v = gb_alt(c->b, (int[]){obj_of(c, any_string(c), inner), arr_of(c, inner, 0, -1), v}, 3);
    }
    c->any[d] = v;
    return v;
}

/* ---- schema walker ---- */

enum { T_NULL = 1, T_BOOL = 2, T_OBJ = 4, T_ARR = 8, T_STR = 16, T_INT = 32, T_FRAC = 64,
       T_NUM = T_INT | T_FRAC, T_ALL = 127 };

static int type_bit(const char *s) {
    return !strcmp(s, "null") ? T_NULL : !strcmp(s, "boolean") ? T_BOOL : !strcmp(s, "object") ? T_OBJ :
           !strcmp(s, "array") ? T_ARR : !strcmp(s, "string") ? T_STR : !strcmp(s, "integer") ? T_INT :
           !strcmp(s, "number") ? T_NUM : 0;
}

static int value_type(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL: return T_NULL;
    case JSON_TRUE: case JSON_FALSE: return T_BOOL;
    case JSON_OBJECT: return T_OBJ;
    case JSON_ARRAY: return T_ARR;
    case JSON_STRING: return T_STR;
    case JSON_INTEGER: return T_INT;
    case JSON_REAL: {
        double d = json_real_value(v);
        return d == floor(d) && fabs(d) < 9e15 ? T_INT : T_FRAC;
    }
    }
    return 0;
}

static const char *const ANNOTATIONS[] = {
    "title", "description", "$schema", "$id", "id", "$comment", "examples", "default",
    "deprecated", "readOnly", "writeOnly", "$defs", "definitions", NULL};
static const char *const KNOWN[] = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf",
    "$ref", "prefixItems", NULL};

static bool in_list(const char *k, const char *const *l) {
    for (; *l; l++)
        if (!strcmp(k, *l)) return true;
    return false;
}

static int schema_node(jsc *c, json_t *s);

/* Resolve a local JSON pointer "#/a/b" in the root document. */
static json_t *resolve(jsc *c, const char *ref) {
    if (ref[0] != '#') return NULL;
    json_t *cur = c->root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        char seg[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof seg) {
            if (p[0] == '~' && p[1] == '0') { seg[n++] = '~'; p += 2; }
            else if (p[0] == '~' && p[1] == '1') { seg[n++] = '/'; p += 2; }
            else seg[n++] = *p++;
        }
        seg[n] = 0;
        if (json_is_object(cur)) cur = json_object_get(cur, seg);
        else if (json_is_array(cur)) {
            char *e;
            long i = strtol(seg, &e, 10);
            cur = *e || i < 0 ? NULL : json_array_get(cur, (size_t)i);
        } else cur = NULL;
        if (!cur) return NULL;
    }
    return *p ? NULL : cur;
}

static int ref_node(jsc *c, const char *ref) {
    for (int i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i].ptr, ref)) return c->refs[i].node;
    if (ref[0] != '#')
        return refuse(c, NJ_EUNSUPPORTED, "unsupported JSON-schema keyword '$ref' (external reference "
                      "'%s') at %s", ref, c->path[0] ? c->path : "/");
    json_t *target = resolve(c, ref);
    if (!target) return bad(c, "$ref does not resolve in this document");
    if (c->n_refs == c->cap_refs) {
        int nc = c->cap_refs ? c->cap_refs * 2 : 8;
        refent *r = nj_realloc(c->refs, sizeof *r * (size_t)nc);
        if (!r) return refuse(c, -ENOMEM, "out of memory");
        c->refs = r;
        c->cap_refs = nc;
    }
    int node = gb_ref(c->b);
    char *dup = nj_strdup(ref);
    if (node < 0 || !dup) { nj_free(dup); return refuse(c, -ENOMEM, "out of memory"); }
    c->refs[c->n_refs++] = (refent){dup, node};
    char saved[sizeof c->path];
    memcpy(saved, c->path, sizeof saved);
    snprintf(c->path, sizeof c->path, "%s", ref + 1);
    int body = schema_node(c, target);
    memcpy(c->path, saved, sizeof saved);
    if (body < 0) return -1;
    return gb_ref_set(c->b, node, body);
}

/* Types a schema can produce (for oneOf disjointness). */
static int schema_types(jsc *c, json_t *s, int guard) {
    if (json_is_true(s) || !json_is_object(s)) return T_ALL;
    if (guard > 8) return T_ALL;
    json_t *t = json_object_get(s, "type"), *x;
    if ((x = json_object_get(s, "const"))) return value_type(x);
    if ((x = json_object_get(s, "enum")) && json_is_array(x)) {
        int m = 0;
        size_t i;
        json_t *v;
        json_array_foreach(x, i, v) m |= value_type(v);
        return m;
    }
    if ((x = json_object_get(s, "$ref")) && json_is_string(x)) {
        json_t *tg = resolve(c, json_string_value(x));
        return tg ? schema_types(c, tg, guard + 1) : T_ALL;
    }
    if (json_is_string(t)) return type_bit(json_string_value(t));
    if (json_is_array(t)) {
        int m = 0;
        size_t i;
        json_t *v;
        json_array_foreach(t, i, v) if (json_is_string(v)) m |= type_bit(json_string_value(v));
        return m;
    }
    const char *kw;
    json_t *v;
    int m = 0;
    json_object_foreach(s, kw, v) {
        if (!strcmp(kw, "properties") || !strcmp(kw, "required") || !strcmp(kw, "additionalProperties")) m |= T_OBJ;
        if (!strcmp(kw, "items") || !strcmp(kw, "minItems") || !strcmp(kw, "maxItems") || !strcmp(kw, "prefixItems")) m |= T_ARR;
        if (!strcmp(kw, "minLength") || !strcmp(kw, "maxLength") || !strcmp(kw, "pattern") || !strcmp(kw, "format")) m |= T_STR;
        if (!strcmp(kw, "minimum") || !strcmp(kw, "maximum") || !strncmp(kw, "exclusive", 9)) m |= T_NUM;
    }
    return m ? m : T_ALL;
}

/* The const/enum values a schema allows, as an array (borrowed), or NULL. */
static json_t *schema_values(jsc *c, json_t *s, json_t *tmp) {
    if (!json_is_object(s)) return NULL;
    json_t *x;
    if ((x = json_object_get(s, "$ref")) && json_is_string(x)) {
        json_t *tg = resolve(c, json_string_value(x));
        return tg && tg != s ? schema_values(c, tg, tmp) : NULL;
    }
    if ((x = json_object_get(s, "enum")) && json_is_array(x)) return x;
    if ((x = json_object_get(s, "const"))) {
        json_array_clear(tmp);
        json_array_append(tmp, x);
        return tmp;
    }
    return NULL;
}

static bool values_disjoint(json_t *a, json_t *b) {
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(a, i, x) json_array_foreach(b, j, y) if (json_equal(x, y)) return false;
    return true;
}

/* oneOf branches provably disjoint? */
static bool one_of_disjoint(jsc *c, json_t *arr) {
    size_t n = json_array_size(arr);
    bool types_ok = true, values_ok = true;
    json_t *ta = json_array(), *tb = json_array();
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            json_t *a = json_array_get(arr, i), *b = json_array_get(arr, j);
            if (schema_types(c, a, 0) & schema_types(c, b, 0)) types_ok = false;
            json_t *va = schema_values(c, a, ta), *vb;
            json_t *keep = va ? json_deep_copy(va) : NULL;
            vb = schema_values(c, b, tb);
            if (!keep || !vb || !values_disjoint(keep, vb)) values_ok = false;
            json_decref(keep);
        }
    bool ok = types_ok || values_ok;
    if (!ok) {
        /* discriminator: a property required in every branch with disjoint values */
        json_t *first = json_array_get(arr, 0);
        json_t *props0 = json_object_get(first, "properties");
        const char *key;
        json_t *v0;
        if (json_is_object(props0)) json_object_foreach(props0, key, v0) {
            bool all = true;
            json_t *vals[64];
            if (n > 64) break;
            for (size_t i = 0; i < n && all; i++) {
                json_t *br = json_array_get(arr, i);
                json_t *req = json_object_get(br, "required"), *pr = json_object_get(br, "properties");
                bool isreq = false;
                size_t k;
                json_t *r;
                json_array_foreach(req, k, r) if (json_is_string(r) && !strcmp(json_string_value(r), key)) isreq = true;
                json_t *ps = json_is_object(pr) ? json_object_get(pr, key) : NULL;
                json_t *tmp = json_array();
                json_t *vv = ps ? schema_values(c, ps, tmp) : NULL;
                vals[i] = vv ? json_deep_copy(vv) : NULL;
                json_decref(tmp);
                if (!isreq || !vals[i]) all = false;
                if (!all) { for (size_t k2 = 0; k2 <= i; k2++) json_decref(vals[k2]); }
            }
            if (all) {
                bool dis = true;
                for (size_t i = 0; i < n; i++)
                    for (size_t j = i + 1; j < n; j++) dis &= values_disjoint(vals[i], vals[j]);
                for (size_t i = 0; i < n; i++) json_decref(vals[i]);
                if (dis) { ok = true; break; }
            }
        }
    }
    json_decref(ta);
    json_decref(tb);
    return ok;
}

static int get_count(jsc *c, json_t *s, const char *kw, int dflt, int *out) {
    json_t *v = json_object_get(s, kw);
    *out = dflt;
    if (!v) return 0;
    if (!json_is_integer(v) && !(json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))
        return bad(c, "count keyword is not an integer");
    double d = json_number_value(v);
    if (d < 0) return bad(c, "negative count");
    if (d > JS_MAX_REPEAT) {
        if (!strncmp(kw, "max", 3)) { *out = -1; return 0; }   /* a huge maximum is no bound in practice */
        char m[96];
        snprintf(m, sizeof m, "%s above %d is not supported", kw, JS_MAX_REPEAT);
        return refuse(c, NJ_ETOOBIG, "%s at %s", m, c->path[0] ? c->path : "/");
    }
    *out = (int)d;
    return 0;
}

static int string_node(jsc *c, json_t *s) {
    json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    int min, max;
    if (get_count(c, s, "minLength", 0, &min) || get_count(c, s, "maxLength", -1, &max)) return -1;
    bool lens = json_object_get(s, "minLength") || json_object_get(s, "maxLength");
    if (pat && fmt) return unsupported(c, "pattern' together with 'format");
    if (fmt && lens && json_is_string(fmt)) {
        /* formats have fixed length ranges: fine if the bounds contain them */
        static const struct { const char *f; int lo, hi; } fl[] = {
            {"date", 10, 10}, {"time", 9, 21}, {"date-time", 20, 32}, {"uuid", 36, 36}, {"ipv4", 7, 15}};
        for (size_t i = 0; i < NJ_ARRAY_LEN(fl); i++)
            if (!strcmp(json_string_value(fmt), fl[i].f) && min <= fl[i].lo && (max < 0 || max >= fl[i].hi))
                lens = false;
    }
    if ((pat || fmt) && lens)
        return unsupported(c, json_object_get(s, "minLength") ? "minLength" : "maxLength");
    if (pat) {
        if (!json_is_string(pat)) return bad(c, "pattern is not a string");
        size_t o = path_push(c, "pattern");
        int n = pattern_node(c, json_string_value(pat));
        path_pop(c, o);
        return n;
    }
    if (fmt) {
        if (!json_is_string(fmt)) return bad(c, "format is not a string");
        size_t o = path_push(c, "format");
        int n = format_node(c, json_string_value(fmt));
        path_pop(c, o);
        return n;
    }
    if (max >= 0 && max < min) return gb_alt(c->b, NULL, 0);
    return min == 0 && max < 0 ? any_string(c) : str_node(c, min, max);
}

/* Numeric bound: value and exclusivity (draft 4 booleans or draft 6 numbers). */
static int bounds(jsc *c, json_t *s, double *lo, bool *lo_x, double *hi, bool *hi_x) {
    *lo = -INFINITY; *hi = INFINITY; *lo_x = *hi_x = false;
    json_t *v;
    if ((v = json_object_get(s, "minimum"))) {
        if (!json_is_number(v)) return bad(c, "minimum is not a number");
        *lo = json_number_value(v);
    }
    if ((v = json_object_get(s, "maximum"))) {
        if (!json_is_number(v)) return bad(c, "maximum is not a number");
        *hi = json_number_value(v);
    }
    if ((v = json_object_get(s, "exclusiveMinimum"))) {
        if (json_is_boolean(v)) *lo_x = json_is_true(v);
        else if (json_is_number(v)) {
            double e = json_number_value(v);
            if (e >= *lo) { *lo = e; *lo_x = true; }
        } else return bad(c, "exclusiveMinimum is not a number");
    }
    if ((v = json_object_get(s, "exclusiveMaximum"))) {
        if (json_is_boolean(v)) *hi_x = json_is_true(v);
        else if (json_is_number(v)) {
            double e = json_number_value(v);
            if (e <= *hi) { *hi = e; *hi_x = true; }
        } else return bad(c, "exclusiveMaximum is not a number");
    }
    return 0;
}

static int integer_node(jsc *c, json_t *s) {
    double lo, hi;
    bool lx, hx;
    if (bounds(c, s, &lo, &lx, &hi, &hx)) return -1;
    lo = clampd(lo);
    hi = clampd(hi);
    long long a = (long long)ceil(lo), b = (long long)floor(hi);
    if (lx && (double)a == lo) a++;
    if (hx && (double)b == hi) b--;
    return int_range(c, a, b);
}

static int number_node(jsc *c, json_t *s) {
    double lo, hi;
    bool lx, hx;
    if (bounds(c, s, &lo, &lx, &hi, &hx)) return -1;
    return num_range(c, lo, lx, hi, hx);
}

static int array_node(jsc *c, json_t *s) {
    int min, max;
    if (get_count(c, s, "minItems", 0, &min) || get_count(c, s, "maxItems", -1, &max)) return -1;
    json_t *u = json_object_get(s, "uniqueItems");
    if (u && !json_is_false(u)) return unsupported(c, "uniqueItems");
    json_t *items = json_object_get(s, "items");
    int item;
    if (!items || json_is_true(items)) item = any_value(c, JS_ANY_DEPTH - 1);
    else if (json_is_false(items)) item = gb_alt(c->b, NULL, 0);
    else if (json_is_array(items)) return unsupported(c, "items' (array form");
    else {
        size_t o = path_push(c, "items");
        item = schema_node(c, items);
        path_pop(c, o);
    }
    if (item < 0) return -1;
    if (max >= 0 && max < min) return gb_alt(c->b, NULL, 0);
    json_t *prefix = json_object_get(s, "prefixItems");
    if (!prefix) return arr_of(c, item, min, max);
    if (!json_is_array(prefix)) return bad(c, "prefixItems is not an array");
    /* tuple: element k follows prefixItems[k], later ones follow items.
     * T[k] = what may follow k elements: (", " e_k+1 T[k+1]), optional
     * once k >= minItems; T[n] = the items tail. */
    gb *b = c->b;
    const int n = (int)json_array_size(prefix);
    if (n > JS_MAX_REPEAT) return refuse(c, NJ_ETOOBIG, "prefixItems longer than %d at %s", JS_MAX_REPEAT, c->path);
    int *el = nj_malloc(sizeof *el * (size_t)(n ? n : 1));
    if (!el) return refuse(c, -ENOMEM, "out of memory");
    size_t o = path_push(c, "prefixItems");
    for (int k = 0; k < n; k++) {
        size_t o2 = path_push_i(c, (size_t)k);
        el[k] = schema_node(c, json_array_get(prefix, (size_t)k));
        path_pop(c, o2);
        if (el[k] < 0) { path_pop(c, o); nj_free(el); return -1; }
    }
    path_pop(c, o);
    int more_min = min > n ? min - n : 0, more_max = max < 0 ? -1 : max > n ? max - n : 0;
    int t = gb_rep(b, gb_seq2(b, lit(c, ", "), item), more_min, more_max);
    for (int k = n - 1; k >= 0; k--) {
        if (max >= 0 && k >= max) { t = gb_empty(b); continue; }   /* no room for element k+1 */
        int step = gb_seq(b, (int[]){k ? lit(c, ", ") : gb_empty(b), el[k], t}, 3);
        t = k >= min ? gb_opt(b, step) : step;
    }
    if (n == 0) t = arr_of(c, item, min, max);
    else t = gb_seq(b, (int[]){gb_byte(b, '['), t, gb_byte(b, ']')}, 3);
    nj_free(el);
    return t;
}

static int object_node(jsc *c, json_t *s) {
    gb *b = c->b;
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return bad(c, "properties is not an object");
    if (req && !json_is_array(req)) return bad(c, "required is not an array");
    size_t n = props ? json_object_size(props) : 0;
    /* required names must be listed properties */
    size_t i;
    json_t *r;
    json_array_foreach(req, i, r) {
        if (!json_is_string(r)) return bad(c, "required holds a non-string");
        if (!props || !json_object_get(props, json_string_value(r))) {
            size_t o = path_push(c, "required");
            int rc = refuse(c, NJ_EUNSUPPORTED, "unsupported JSON-schema keyword 'required' naming '%s', "
                            "which is not in properties, at %s", json_string_value(r), c->path);
            path_pop(c, o);
            return rc;
        }
    }
    if (n == 0) {
        if (json_is_false(addl)) return lit(c, "{}");
        int val;
        if (!addl || json_is_true(addl)) val = any_value(c, JS_ANY_DEPTH - 1);
        else {
            size_t o = path_push(c, "additionalProperties");
            val = schema_node(c, addl);
            path_pop(c, o);
        }
        return val < 0 ? -1 : obj_of(c, any_string(c), val);
    }
    if (addl && !json_is_boolean(addl) && !json_is_object(addl))
        return bad(c, "additionalProperties is not a schema");
    /* additionalProperties true / schema / absent: extra keys are allowed,
     * never required; we generate only the listed properties */
    int *kv = nj_malloc(sizeof *kv * n);
    bool *isreq = nj_malloc(sizeof *isreq * n);
    int (*T)[2] = nj_malloc(sizeof *T * (n + 1));
    int out = -1;
    if (!kv || !isreq || !T) { refuse(c, -ENOMEM, "out of memory"); goto done; }
    const char *key;
    json_t *ps;
    size_t k = 0;
    size_t o = path_push(c, "properties");
    json_object_foreach(props, key, ps) {
        isreq[k] = false;
        json_array_foreach(req, i, r) if (!strcmp(json_string_value(r), key)) isreq[k] = true;
        sbuf ks = {0};
        enc_string(&ks, key, strlen(key));
        sb_str(&ks, ": ");
        if (ks.err) { refuse(c, -ENOMEM, "out of memory"); path_pop(c, o); goto done; }
        size_t o2 = path_push(c, key);
        int v = schema_node(c, ps);
        path_pop(c, o2);
        kv[k] = gb_seq2(b, gb_lit(b, ks.p, ks.n), v);
        nj_free(ks.p);
        if (v < 0) { path_pop(c, o); goto done; }
        k++;
    }
    path_pop(c, o);
    /* T[i][e]: properties i.. given that e says whether one was written */
    T[n][0] = T[n][1] = gb_empty(b);
    for (size_t j = n; j-- > 0;) {
        int KV = gb_seq2(b, kv[j], T[j + 1][1]);
        for (int e = 0; e < 2; e++) {
            int w = e ? gb_seq2(b, lit(c, ", "), KV) : KV;
            T[j][e] = isreq[j] ? w : gb_alt2(b, w, T[j + 1][e]);
        }
    }
    out = gb_seq(b, (int[]){gb_byte(b, '{'), T[0][0], gb_byte(b, '}')}, 3);
done:
    nj_free(kv);
    nj_free(isreq);
    nj_free(T);
    return out;
}

static int enum_node(jsc *c, json_t *vals, int types) {
    int m = 0, cap = (int)json_array_size(vals);
    int *alts = nj_malloc(sizeof *alts * (size_t)(cap ? cap : 1));
    if (!alts) return refuse(c, -ENOMEM, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(vals, i, v) {
        if (!(value_type(v) & types)) continue;
        sbuf s = {0};
        enc_value(&s, v);
        if (s.err) { nj_free(alts); return refuse(c, -ENOMEM, "out of memory"); }
        alts[m++] = gb_lit(c->b, s.p, s.n);
        nj_free(s.p);
    }
    int n = gb_alt(c->b, alts, m);
    nj_free(alts);
    return n;
}

static int schema_node(jsc *c, json_t *s) {
    if (c->rc) return -1;
    if (json_is_true(s)) return any_value(c, JS_ANY_DEPTH);
    if (json_is_false(s)) return gb_alt(c->b, NULL, 0);
    if (!json_is_object(s)) return bad(c, "a schema must be an object or a boolean");
    if (++c->depth > 64) return refuse(c, NJ_ETOOBIG, "schema nested more than 64 levels at %s", c->path);
    int out = -1;
    const char *kw;
    json_t *v;
    json_object_foreach(s, kw, v) {
        if (!in_list(kw, KNOWN) && !in_list(kw, ANNOTATIONS)) { unsupported(c, kw); goto done; }
    }
    /* types asked for */
    int types = 0;
    json_t *t = json_object_get(s, "type");
    if (json_is_string(t)) {
        types = type_bit(json_string_value(t));
        if (!types) { bad(c, "unknown type name"); goto done; }
    } else if (json_is_array(t)) {
        size_t i;
        json_array_foreach(t, i, v) {
            int tb = json_is_string(v) ? type_bit(json_string_value(v)) : 0;
            if (!tb) { bad(c, "unknown type name"); goto done; }
            types |= tb;
        }
    } else if (t) { bad(c, "type must be a string or an array"); goto done; }

    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
    json_t *all = json_object_get(s, "allOf"), *ref = json_object_get(s, "$ref");
    if (en || cn) {
        json_object_foreach(s, kw, v) {
            if (strcmp(kw, "enum") && strcmp(kw, "const") && strcmp(kw, "type") && !in_list(kw, ANNOTATIONS)) {
                char m[80];
                snprintf(m, sizeof m, "%s' beside '%s", kw, en ? "enum" : "const");
                unsupported(c, m);
                goto done;
            }
        }
        if (en && !json_is_array(en)) { bad(c, "enum is not an array"); goto done; }
        json_t *vals = en ? en : json_pack("[O]", cn);
        if (!vals) { refuse(c, -ENOMEM, "out of memory"); goto done; }
        if (en && cn) {
            /* both: the const if the enum holds it */
            json_t *both = json_array();
            size_t i;
            json_array_foreach(en, i, v) if (json_equal(v, cn)) json_array_append(both, v);
            vals = both;
        }
        out = enum_node(c, vals, types ? types : T_ALL);
        if (vals != en) json_decref(vals);
        goto done;
    }
    if (any || one || all || ref) {
        const char *which = ref ? "$ref" : any ? "anyOf" : one ? "oneOf" : "allOf";
        int n_comb = !!any + !!one + !!all + !!ref;
        json_object_foreach(s, kw, v) {
            if (strcmp(kw, which) && !in_list(kw, ANNOTATIONS)) {
                char m[80];
                snprintf(m, sizeof m, "%s' beside '%s", n_comb > 1 && in_list(kw, KNOWN) ? kw : kw, which);
                unsupported(c, m);
                goto done;
            }
        }
        if (ref) {
            if (!json_is_string(ref)) { bad(c, "$ref is not a string"); goto done; }
            out = ref_node(c, json_string_value(ref));
            goto done;
        }
        json_t *arr = any ? any : one ? one : all;
        if (!json_is_array(arr) || !json_array_size(arr)) { bad(c, "anyOf/oneOf/allOf needs a non-empty array"); goto done; }
        size_t o = path_push(c, which);
        if (all && json_array_size(all) > 1) {
            path_pop(c, o);
            unsupported(c, "allOf' with more than one schema");
            goto done;
        }
        if (one && !one_of_disjoint(c, one)) {
            refuse(c, NJ_EUNSUPPORTED, "unsupported JSON-schema keyword 'oneOf' at %s: branches may "
                   "overlap (supported: disjoint types, disjoint enum/const values, or a required "
                   "discriminator property)", c->path);
            path_pop(c, o);
            goto done;
        }
        size_t n = json_array_size(arr);
        int *alts = nj_malloc(sizeof *alts * n);
        if (!alts) { refuse(c, -ENOMEM, "out of memory"); path_pop(c, o); goto done; }
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            size_t o2 = path_push_i(c, i);
            alts[i] = schema_node(c, json_array_get(arr, i));
            path_pop(c, o2);
            ok = alts[i] >= 0;
        }
        path_pop(c, o);
        out = ok ? gb_alt(c->b, alts, (int)n) : -1;
        nj_free(alts);
        goto done;
    }
    if (!types) {
        /* infer from the keywords present; none: any value */
        json_object_foreach(s, kw, v) {
            if (!strcmp(kw, "properties") || !strcmp(kw, "required") || !strcmp(kw, "additionalProperties")) types |= T_OBJ;
            if (!strcmp(kw, "items") || !strcmp(kw, "minItems") || !strcmp(kw, "maxItems") || !strcmp(kw, "uniqueItems") ||
                !strcmp(kw, "prefixItems")) types |= T_ARR;
            if (!strcmp(kw, "minLength") || !strcmp(kw, "maxLength") || !strcmp(kw, "pattern") || !strcmp(kw, "format")) types |= T_STR;
            if (!strcmp(kw, "minimum") || !strcmp(kw, "maximum") || !strncmp(kw, "exclusive", 9)) types |= T_NUM;
        }
        if (!types) { out = any_value(c, JS_ANY_DEPTH); goto done; }
    }
    int alts[7], m = 0;
    if (types & T_NULL) alts[m++] = lit(c, "null");
    if (types & T_BOOL) alts[m++] = gb_alt2(c->b, lit(c, "true"), lit(c, "false"));
    if (types & T_OBJ) alts[m++] = object_node(c, s);
    if (types & T_ARR) alts[m++] = array_node(c, s);
    if (types & T_STR) alts[m++] = string_node(c, s);
    if ((types & T_NUM) == T_NUM) alts[m++] = number_node(c, s);
    else if (types & T_INT) alts[m++] = integer_node(c, s);
    for (int i = 0; i < m; i++)
        if (alts[i] < 0) goto done;
    out = gb_alt(c->b, alts, m);
done:
    c->depth--;
    return c->rc ? -1 : out;
}

/* ---- entry points ---- */

static void jsc_free(jsc *c) {
    for (int i = 0; i < c->n_refs; i++) nj_free(c->refs[i].ptr);
    nj_free(c->refs);
    gb_free(c->b);
}

static gram *finish(jsc *c, int root, int *err) {
    int rc = c->rc;
    gram *g = NULL;
    if (!rc && (root < 0 || gb_error(c->b))) rc = gb_error(c->b) ? gb_error(c->b) : -ENOMEM;
    if (!rc) g = gram_compile(c->b, root, &rc);
    jsc_free(c);
    if (err) *err = g ? 0 : rc;
    return g;
}

gram *json_schema_compile(const char *text, size_t len, int *err) {
    jsc c = {0};
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        int rc = nj_fail(NJ_EFORMAT, "schema is not JSON: %s (line %d column %d)", je.text, je.line, je.column);
        if (err) *err = rc;
        return NULL;
    }
    c.b = gb_new();
    c.root = root;
    if (!c.b) {
        json_decref(root);
        if (err) *err = -ENOMEM;
        return NULL;
    }
    int n = schema_node(&c, root);
    gram *g = finish(&c, n, err);
    json_decref(root);
    return g;
}

gram *json_object_grammar(int *err) {
    jsc c = {0};
    c.b = gb_new();
    if (!c.b) { if (err) *err = -ENOMEM; return NULL; }
    int n = obj_of(&c, any_string(&c), any_value(&c, JS_ANY_DEPTH - 1));
    return finish(&c, n, err);
}

gram *json_pattern_grammar(const char *pattern, int *err) {
    jsc c = {0};
    c.b = gb_new();
    if (!c.b) { if (err) *err = -ENOMEM; return NULL; }
    int n = pattern_node(&c, pattern);
    return finish(&c, n, err);
}
