/*
 * retrieve — see retrieve.h for the tokens, the scoring, the ownership and
 * the threads.
 *
 * Layout of a loaded base (all arrays owned by nj_kb, one allocation each):
 *
 *   entries[n]          cmd / technique / why point into `arena`
 *   slots[tcap]         open-addressing table, term id + 1 (0 = empty),
 *                       keyed by the 64-bit FNV-1a hash of the token
 *   thash[t], toff[t], tlen[t]   per term: hash and its bytes in `tstr`
 *   idf[t]              BM25 idf
 *   poff[t..t+1)        range of term t's postings in pdoc / pw (CSR)
 *   pdoc[p], pw[p]      entry index and precomputed tf factor
 *
 * Building goes entry by entry: parse the line (jansson), copy the strings
 * into the arena, tokenize the command into term ids (inserting new terms),
 * count term frequencies and append (term, entry, tf) triples; at the end the
 * triples are bucketed by term into the CSR arrays and the weights computed
 * from the final average length.  Every allocation goes through nj_malloc &
 * co., jansson's included (a failure inside jansson is noted and retried, see
 * json_alloc), so the fault-injection tests reach every path; a failure
 * anywhere frees the half-built base through kb_free().
 *
 * Query: distinct query terms (a per-term stamp array dedups them), scores
 * accumulated per entry in `acc` with the touched entries listed, then a
 * bounded min-heap keeps the best k and a heap sort orders them; cost is
 * O(query bytes + postings walked + touched * log k).
 */
#include "retrieve.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "event.h"
#include "util.h"

/* ------------------------------------------------------------------ labels */

static const char *const label_names[KB_NLABELS] = {"benign", "suspicious", "malicious"};

const char *kb_label_name(int label) {
    return label >= 0 && label < KB_NLABELS ? label_names[label] : "?";
}

int kb_label_parse(const char *name) {
    for (int i = 0; name && i < KB_NLABELS; i++)
        if (strcmp(name, label_names[i]) == 0) return i;
    return -1;
}

/* --------------------------------------------------------------- tokenizer */

typedef struct {
    void (*emit)(void *ud, const char *tok, size_t n);
    void *ud;
} sink;

static void emit_lit(const sink *k, const char *s) { k->emit(k->ud, s, strlen(s)); }

static bool is_split(unsigned char c) {
    switch (c) {
    case ' ': case '\t': case '\n': case '\r': case '\v': case '\f':
    case ';': case '|': case '&': case '>': case '<': case '(': case ')':
    case '`': case '$': case '\'': case '"': case '=': case ',':
        return true;
    default:
        return false;
    }
}

static int lc(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(int c) { return is_digit(c) || is_alpha(c); }
static bool is_hex(int c) { return is_digit(c) || (lc(c) >= 'a' && lc(c) <= 'f'); }

/* Case-insensitive "does p[0..n) start with the lowercase string s". */
static bool has_prefix(const char *p, size_t n, const char *s) {
    size_t m = strlen(s);
    if (n < m) return false;
    for (size_t i = 0; i < m; i++)
        if (lc((unsigned char)p[i]) != s[i]) return false;
    return true;
}

static bool eq_ci(const char *p, size_t n, const char *s) { return n == strlen(s) && has_prefix(p, n, s); }

/* Dotted-quad IPv4, each group 1..3 digits, optionally followed by /prefix. */
static bool is_ipv4(const char *p, size_t n) {
    size_t i = 0;
    for (int g = 0; g < 4; g++) {
        size_t d = 0;
        while (i < n && is_digit((unsigned char)p[i]) && d < 4) i++, d++;
        if (d == 0 || d > 3) return false;
        if (g < 3) {
            if (i >= n || p[i] != '.') return false;
            i++;
        }
    }
    if (i < n && p[i] == '/') {
        size_t d = 0;
        for (i++; i < n && is_digit((unsigned char)p[i]); i++) d++;
        if (d == 0 || d > 2) return false;
    }
    return i == n;
}

static bool all_digits(const char *p, size_t n) {
    if (!n) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)p[i])) return false;
    return true;
}

/* A long run of hex digits (payloads written with xxd -p and the like). */
static bool is_hex_blob(const char *p, size_t n) {
    if (n < 12) return false;
    bool dig = false, let = false;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (!is_hex(c)) return false;
        if (is_digit(c)) dig = true; else let = true;
    }
    return dig && let;
}

/* A long base64-looking word: only the base64 (and base64url) alphabet, with
 * digits, upper and lower case letters all present. */
static bool is_b64_blob(const char *p, size_t n) {
    if (n < 24) return false;
    bool dig = false, up = false, low = false;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (is_digit(c)) dig = true;
        else if (c >= 'A' && c <= 'Z') up = true;
        else if (c >= 'a' && c <= 'z') low = true;
        else if (c != '+' && c != '/' && c != '=' && c != '-' && c != '_') return false;
    }
    return dig && up && low;
}

/* Emit p[0..n) as a plain token: IPv4 -> <ip>, a number -> <num>, blobs ->
 * <hex>/<b64>, else lowercased with digit runs masked to one '0', cut at
 * KB_MAX_TOKEN bytes, with `suffix` (0 = none) appended; dropped when it has
 * no letter or digit (except the lone "-", which means stdin). */
static void plain(const char *p, size_t n, char suffix, const sink *k) {
    while (n && (p[0] == '{' || p[0] == '[')) p++, n--;
    while (n && (p[n - 1] == '}' || p[n - 1] == ']')) n--;
    if (!n) return;
    if (is_ipv4(p, n)) { emit_lit(k, "<ip>"); return; }
    if (all_digits(p, n)) { emit_lit(k, "<num>"); return; }
    if (is_hex_blob(p, n)) { emit_lit(k, "<hex>"); return; }
    if (is_b64_blob(p, n)) { emit_lit(k, "<b64>"); return; }
    char t[KB_MAX_TOKEN + 2];
    size_t m = 0;
    bool alnum = false;
    for (size_t i = 0; i < n && m < KB_MAX_TOKEN; i++) {
        int c = (unsigned char)p[i];
        if (is_digit(c)) {
            alnum = true;
            if (m && t[m - 1] == '0' && i && is_digit((unsigned char)p[i - 1])) continue;
            t[m++] = '0';
        } else {
            if (is_alpha(c)) alnum = true;
            t[m++] = (char)lc(c);
        }
    }
    if (!alnum && !(m == 1 && t[0] == '-')) return;
    if (suffix) t[m++] = suffix;
    k->emit(k->ud, t, m);
}

/* A filesystem path: <tmpdir> for the world-writable staging places,
 * <hidden> for a dot-name in them (or under /Users/Shared and /dev), then the
 * basename as a plain token ("/" for the root itself). */
static void path(const char *p, size_t n, const sink *k) {
    static const char *const tmpdirs[] = {"/tmp/", "/var/tmp/", "/dev/shm/", "/private/tmp/",
                                          "/private/var/tmp/"};
    bool tmp = eq_ci(p, n, "/tmp") || eq_ci(p, n, "/dev/shm") || eq_ci(p, n, "/var/tmp");
    for (size_t i = 0; !tmp && i < NJ_ARRAY_LEN(tmpdirs); i++) tmp = has_prefix(p, n, tmpdirs[i]);
    if (tmp) emit_lit(k, "<tmpdir>");
    if (tmp || has_prefix(p, n, "/users/shared/") || has_prefix(p, n, "/dev/")) {
        for (size_t i = 0; i + 1 < n; i++)
            if (p[i] == '/' && p[i + 1] == '.' && i + 2 < n && p[i + 2] != '.' && p[i + 2] != '/') {
                emit_lit(k, "<hidden>");
                break;
            }
    }
    while (n > 1 && p[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && p[s - 1] != '/') s--;
    if (s == n) { emit_lit(k, "/"); return; }   /* "/" itself */
    plain(p + s, n - s, 0, k);
}

/* A word without ':' splitting left to do. */
static void part(const char *p, size_t n, const sink *k) {
    if (!n) return;
    if (is_ipv4(p, n)) { emit_lit(k, "<ip>"); return; }
    if (memchr(p, '/', n) && !is_b64_blob(p, n)) path(p, n, k);
    else plain(p, n, 0, k);
}

/* Host kind of a URL host or user@host host (port and brackets allowed). */
static const char *host_kind(const char *h, size_t n, const char *ip, const char *name, const char *local) {
    if (n && h[0] == '[') {   /* IPv6 literal */
        return has_prefix(h, n, "[::1]") ? local : ip;
    }
    const char *c = memchr(h, ':', n);
    if (c) n = (size_t)(c - h);
    if (!n) return NULL;
    if (eq_ci(h, n, "localhost") || (is_ipv4(h, n) && has_prefix(h, n, "127."))) return local;
    return is_ipv4(h, n) ? ip : name;
}

/* Length of a URL scheme ("https" in https://...) or 0. */
static size_t url_scheme(const char *w, size_t n) {
    size_t i = 0;
    if (!n || !is_alpha((unsigned char)w[0])) return 0;
    while (i < n && (is_alnum((unsigned char)w[i]) || w[i] == '+' || w[i] == '-' || w[i] == '.')) i++;
    if (i < 2 || i + 3 > n || memcmp(w + i, "://", 3) != 0) return 0;
    return i;
}

static void url(const char *w, size_t n, size_t sch, const sink *k) {
    plain(w, sch, ':', k);
    const char *h = w + sch + 3, *end = w + n;
    const char *he = h;
    while (he < end && *he != '/' && *he != '?' && *he != '#') he++;
    const char *at = NULL;
    for (const char *q = h; q < he; q++) if (*q == '@') at = q;
    if (at) h = at + 1;
    const char *kind = host_kind(h, (size_t)(he - h), "<url-ip>", "<url-name>", "<url-local>");
    if (kind) emit_lit(k, kind);
    if (eq_ci(w, sch, "file") && he < end) path(he, (size_t)(end - he), k);
}

static void word(const char *w, size_t n, const sink *k);

/* user@host[:rest] (ssh, scp, git).  "root" is kept because it matters. */
static void userhost(const char *w, size_t n, const char *at, const sink *k) {
    if (eq_ci(w, (size_t)(at - w), "root")) emit_lit(k, "root");
    const char *h = at + 1, *end = w + n;
    const char *c = h;
    while (c < end && *c != ':') c++;
    const char *kind = host_kind(h, (size_t)(c - h), "<user@ip>", "<user@name>", "<user@local>");
    if (kind) emit_lit(k, kind);
    if (c < end) word(c + 1, (size_t)(end - c - 1), k);
}

/* One whitespace/punctuation-delimited word. */
static void word(const char *w, size_t n, const sink *k) {
    for (;;) {
        while (n && (w[0] == '{' || w[0] == '[' || w[0] == '\\' || w[0] == ':')) w++, n--;
        while (n && (w[n - 1] == '}' || w[n - 1] == ']' || w[n - 1] == '\\' || w[n - 1] == '.')) n--;
        if (n && w[0] == '!') { emit_lit(k, "!"); w++, n--; continue; }
        if (n > 1 && w[0] == '@') { emit_lit(k, "@file"); w++, n--; continue; }
        break;
    }
    if (!n) return;
    if (is_b64_blob(w, n)) { emit_lit(k, "<b64>"); return; }
    size_t sch = url_scheme(w, n);
    if (sch) { url(w, n, sch, k); return; }
    const char *at = memchr(w, '@', n);
    if (at && at > w && !memchr(w, '/', (size_t)(at - w)) && !memchr(w, ':', (size_t)(at - w))) {
        userhost(w, n, at, k);
        return;
    }
    static const char *const sockets[] = {"/dev/tcp/", "/dev/udp/", "/inet/tcp/", "/inet/udp/"};
    for (size_t i = 0; i < NJ_ARRAY_LEN(sockets); i++) {
        size_t m = strlen(sockets[i]);
        if (has_prefix(w, n, sockets[i])) {
            k->emit(k->ud, sockets[i], m - 1);
            size_t s = m;
            for (size_t j = m; j <= n; j++)
                if (j == n || w[j] == '/' || w[j] == ':') { part(w + s, j - s, k); s = j + 1; }
            return;
        }
    }
    const char *c = memchr(w, ':', n);
    if (!c || is_ipv4(w, n)) { part(w, n, k); return; }
    /* socat-style "exec:..." / "tcp:host:port": the leading word keeps its
     * colon; the rest is split on ':' */
    size_t f = (size_t)(c - w);
    if (f && is_alpha((unsigned char)w[0]) && !memchr(w, '/', f) && !memchr(w, '.', f)) plain(w, f, ':', k);
    else part(w, f, k);
    size_t s = f + 1;
    for (size_t j = s; j <= n; j++)
        if (j == n || w[j] == ':') { part(w + s, j - s, k); s = j + 1; }
}

static void tokenize(const char *s, size_t n, const sink *k) {
    size_t i = 0;
    while (i < n) {
        while (i < n && is_split((unsigned char)s[i])) i++;
        size_t j = i;
        while (j < n && !is_split((unsigned char)s[j])) j++;
        if (j > i) word(s + i, j - i, k);
        i = j;
    }
}

typedef struct { char *out; size_t cap, used; int count; bool full; } tokbuf;

static void tokbuf_emit(void *ud, const char *t, size_t n) {
    tokbuf *b = ud;
    b->count++;
    if (b->full || !b->cap) return;
    size_t need = n + (b->used ? 1 : 0);
    if (b->used + need + 1 > b->cap) { b->full = true; return; }
    if (b->used) b->out[b->used++] = ' ';
    memcpy(b->out + b->used, t, n);
    b->used += n;
    b->out[b->used] = '\0';
}

int kb_tokenize(const char *cmd, size_t len, char *out, size_t cap) {
    tokbuf b = {out, cap, 0, 0, false};
    if (out && cap) out[0] = '\0';
    else b.cap = 0;
    if (!cmd) return 0;
    sink k = {tokbuf_emit, &b};
    tokenize(cmd, len, &k);
    return b.count;
}

/* ------------------------------------------------------------------- index */

struct nj_kb {
    kb_entry *entries;
    size_t    n;
    char     *arena;
    /* terms */
    size_t    nterms, tcap;        /* tcap: slots, a power of two >= 2 * nterms */
    uint32_t *slots;
    uint64_t *thash;
    uint32_t *toff;
    uint16_t *tlen;
    char     *tstr;
    float    *idf;
    /* postings (CSR) */
    uint32_t *poff;
    uint32_t *pdoc;
    float    *pw;
    double    k1, b, avgdl;
};

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

/* Term id of s[0..n) or -1. */
static long term_find(const nj_kb *kb, const char *s, size_t n, uint64_t h) {
    if (!kb->tcap) return -1;
    size_t mask = kb->tcap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t v = kb->slots[i];
        if (!v) return -1;
        uint32_t t = v - 1;
        if (kb->thash[t] == h && kb->tlen[t] == n && memcmp(kb->tstr + kb->toff[t], s, n) == 0) return t;
    }
}

/* Grow *p (elements of `size`) so that at least `need` fit; 0 or -ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    uint64_t bytes;
    if (!nj_mul_ok(c, size, &bytes)) return -ENOMEM;
    void *q = nj_realloc(*p, (size_t)bytes);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

typedef struct { uint32_t term, doc, tf; } triple;

/* Everything the build needs besides the base itself. */
typedef struct {
    nj_kb    *kb;
    size_t    ecap, acap, alen, tcap_arr, tscap, tslen;
    uint32_t *dt;        /* term ids of the current document */
    size_t    dtn, dtcap;
    triple   *tr;
    size_t    trn, trcap;
    uint32_t *df;        /* per term */
    uint32_t *dlen;      /* per document */
    size_t    dlcap;
    int       err;       /* first failure inside the tokenizer callback */
} builder;

static int rehash(nj_kb *kb, size_t cap) {
    uint32_t *s = nj_calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t t = 0; t < kb->nterms; t++) {
        size_t i = (size_t)kb->thash[t] & (cap - 1);
        while (s[i]) i = (i + 1) & (cap - 1);
        s[i] = (uint32_t)t + 1;
    }
    nj_free(kb->slots);
    kb->slots = s;
    kb->tcap = cap;
    return 0;
}

/* Id of token s[0..n), inserting it when new; -ENOMEM. */
static long term_intern(builder *bd, const char *s, size_t n) {
    nj_kb *kb = bd->kb;
    uint64_t h = fnv1a(s, n);
    long t = term_find(kb, s, n, h);
    if (t >= 0) return t;
    if ((kb->nterms + 1) * 2 > kb->tcap && rehash(kb, kb->tcap ? kb->tcap * 2 : 256) < 0) return -ENOMEM;
    size_t nt = kb->nterms, c = bd->tcap_arr;
    if (nt + 1 > c) {
        size_t c2 = c;   /* the four per-term arrays share one capacity */
        if (grow((void **)&kb->thash, &c2, nt + 1, sizeof *kb->thash) < 0) return -ENOMEM;
        c2 = c;
        if (grow((void **)&kb->toff, &c2, nt + 1, sizeof *kb->toff) < 0) return -ENOMEM;
        c2 = c;
        if (grow((void **)&kb->tlen, &c2, nt + 1, sizeof *kb->tlen) < 0) return -ENOMEM;
        c2 = c;
        if (grow((void **)&bd->df, &c2, nt + 1, sizeof *bd->df) < 0) return -ENOMEM;
        bd->tcap_arr = c2;
    }
    if (grow((void **)&kb->tstr, &bd->tscap, bd->tslen + n, 1) < 0) return -ENOMEM;
    memcpy(kb->tstr + bd->tslen, s, n);
    kb->thash[nt] = h;
    kb->toff[nt] = (uint32_t)bd->tslen;
    kb->tlen[nt] = (uint16_t)n;
    bd->df[nt] = 0;
    bd->tslen += n;
    size_t i = (size_t)h & (kb->tcap - 1);
    while (kb->slots[i]) i = (i + 1) & (kb->tcap - 1);
    kb->slots[i] = (uint32_t)nt + 1;
    kb->nterms++;
    return (long)nt;
}

static void build_emit(void *ud, const char *tok, size_t n) {
    builder *bd = ud;
    if (bd->err) return;
    long t = term_intern(bd, tok, n);
    if (t < 0 || grow((void **)&bd->dt, &bd->dtcap, bd->dtn + 1, sizeof *bd->dt) < 0) {
        bd->err = -ENOMEM;
        return;
    }
    bd->dt[bd->dtn++] = (uint32_t)t;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Append s[0..n) and a NUL to the arena; its offset through *off. */
static int arena_put(builder *bd, const char *s, size_t n, size_t *off) {
    if (grow((void **)&bd->kb->arena, &bd->acap, bd->alen + n + 1, 1) < 0) return -ENOMEM;
    memcpy(bd->kb->arena + bd->alen, s, n);
    bd->kb->arena[bd->alen + n] = '\0';
    *off = bd->alen;
    bd->alen += n + 1;
    return 0;
}


/* A JSON string member as (pointer, length); NJ_EFORMAT with a sentence when
 * it is missing, not a string or contains NUL. */
static int get_str(json_t *o, const char *key, bool allow_null, const char **s, size_t *n,
                   const char *name, size_t line) {
    json_t *v = json_object_get(o, key);
    if (allow_null && v && json_is_null(v)) { *s = NULL; *n = 0; return 0; }
    if (!v || !json_is_string(v))
        return nj_fail(NJ_EFORMAT, "%s:%zu: \"%s\" must be a string%s", name, line, key,
                       allow_null ? " or null" : "");
    *s = json_string_value(v);
    *n = json_string_length(v);
    if (strlen(*s) != *n) return nj_fail(NJ_EFORMAT, "%s:%zu: \"%s\" contains a NUL character", name, line, key);
    return 0;
}

/* Parse one non-blank line into entry bd->kb->n (strings as arena offsets,
 * stashed in the pointer fields until the arena stops moving), tokenize its
 * command and record its postings. */
static int add_line(builder *bd, const char *s, size_t n, const char *name, size_t line) {
    nj_kb *kb = bd->kb;
    json_error_t je;
    int perr = 0;
    /* event_json_parse: jansson's lexer is not safe when an allocation
     * fails, and it reports one as a syntax error; this tells them apart */
    json_t *o = event_json_parse(s, n, JSON_REJECT_DUPLICATES, &je, &perr);
    if (!o) {
        if (perr == -ENOMEM) return nj_fail(-ENOMEM, "%s:%zu: out of memory", name, line);
        return nj_fail(NJ_EFORMAT, "%s:%zu: not valid JSON (%s at column %d)", name, line, je.text, je.column);
    }
    int rc = 0;
    const char *cmd, *tech, *why, *lab;
    size_t ncmd, ntech, nwhy, nlab;
    if (!json_is_object(o)) { rc = nj_fail(NJ_EFORMAT, "%s:%zu: not a JSON object", name, line); goto out; }
    if ((rc = get_str(o, "cmd", false, &cmd, &ncmd, name, line)) < 0) goto out;
    if (!ncmd) { rc = nj_fail(NJ_EFORMAT, "%s:%zu: \"cmd\" is empty", name, line); goto out; }
    if ((rc = get_str(o, "label", false, &lab, &nlab, name, line)) < 0) goto out;
    int label = kb_label_parse(lab);
    if (label < 0) {
        rc = nj_fail(NJ_EFORMAT, "%s:%zu: label must be benign, suspicious or malicious", name, line);
        goto out;
    }
    if ((rc = get_str(o, "technique", true, &tech, &ntech, name, line)) < 0) goto out;
    if ((rc = get_str(o, "why", false, &why, &nwhy, name, line)) < 0) goto out;
    if (kb->n >= KB_MAX_ENTRIES) {
        rc = nj_fail(NJ_ETOOBIG, "%s:%zu: more than %u entries", name, line, KB_MAX_ENTRIES);
        goto out;
    }
    if (grow((void **)&kb->entries, &bd->ecap, kb->n + 1, sizeof *kb->entries) < 0 ||
        grow((void **)&bd->dlen, &bd->dlcap, kb->n + 1, sizeof *bd->dlen) < 0) {
        rc = nj_fail(-ENOMEM, "%s:%zu: out of memory", name, line);
        goto out;
    }
    size_t oc, ot = 0, ow;
    if (arena_put(bd, cmd, ncmd, &oc) < 0 || (tech && arena_put(bd, tech, ntech, &ot) < 0) ||
        arena_put(bd, why, nwhy, &ow) < 0) {
        rc = nj_fail(-ENOMEM, "%s:%zu: out of memory", name, line);
        goto out;
    }
    kb_entry *e = &kb->entries[kb->n];
    e->cmd = (const char *)(uintptr_t)(oc + 1);   /* offset + 1; 0 = NULL */
    e->technique = tech ? (const char *)(uintptr_t)(ot + 1) : NULL;
    e->why = (const char *)(uintptr_t)(ow + 1);
    e->label = (kb_label)label;

    bd->dtn = 0;
    sink k = {build_emit, bd};
    tokenize(cmd, ncmd, &k);
    if (bd->err) { rc = nj_fail(bd->err, "%s:%zu: out of memory", name, line); goto out; }
    bd->dlen[kb->n] = (uint32_t)bd->dtn;
    if (bd->dtn > 1) qsort(bd->dt, bd->dtn, sizeof *bd->dt, cmp_u32);
    for (size_t i = 0; i < bd->dtn;) {
        size_t j = i;
        while (j < bd->dtn && bd->dt[j] == bd->dt[i]) j++;
        if (grow((void **)&bd->tr, &bd->trcap, bd->trn + 1, sizeof *bd->tr) < 0) {
            rc = nj_fail(-ENOMEM, "%s:%zu: out of memory", name, line);
            goto out;
        }
        bd->tr[bd->trn++] = (triple){bd->dt[i], (uint32_t)kb->n, (uint32_t)(j - i)};
        bd->df[bd->dt[i]]++;
        i = j;
    }
    kb->n++;
out:
    json_decref(o);
    return rc;
}

/* Turn the triples into CSR postings with BM25 weights. */
static int finish(builder *bd) {
    nj_kb *kb = bd->kb;
    size_t nt = kb->nterms, np = bd->trn;
    double total = 0;
    for (size_t d = 0; d < kb->n; d++) total += bd->dlen[d];
    kb->avgdl = kb->n ? total / (double)kb->n : 0;
    kb->poff = nj_calloc(nt + 1, sizeof *kb->poff);
    kb->idf = nj_calloc(nt ? nt : 1, sizeof *kb->idf);
    kb->pdoc = nj_calloc(np ? np : 1, sizeof *kb->pdoc);
    kb->pw = nj_calloc(np ? np : 1, sizeof *kb->pw);
    uint32_t *fill = nj_calloc(nt ? nt : 1, sizeof *fill);
    if (!kb->poff || !kb->idf || !kb->pdoc || !kb->pw || !fill) {
        nj_free(fill);
        return nj_fail(-ENOMEM, "example base: out of memory building the index");
    }
    for (size_t t = 0; t < nt; t++) kb->poff[t + 1] = kb->poff[t] + bd->df[t];
    double N = (double)kb->n;
    for (size_t t = 0; t < nt; t++) {
        double df = bd->df[t];
        kb->idf[t] = (float)log(1.0 + (N - df + 0.5) / (df + 0.5));
    }
    /* triples are in document order, so each term's postings end up sorted
     * by document: the accumulation order at query time is fixed */
    for (size_t p = 0; p < np; p++) {
        triple tr = bd->tr[p];
        uint32_t at = kb->poff[tr.term] + fill[tr.term]++;
        double tf = tr.tf, dl = bd->dlen[tr.doc];
        double norm = kb->avgdl > 0 ? 1.0 - kb->b + kb->b * dl / kb->avgdl : 1.0;
        kb->pdoc[at] = tr.doc;
        kb->pw[at] = (float)(tf * (kb->k1 + 1.0) / (tf + kb->k1 * norm));
    }
    nj_free(fill);
    /* arena offsets -> pointers now that the arena no longer moves */
    for (size_t d = 0; d < kb->n; d++) {
        kb_entry *e = &kb->entries[d];
        e->cmd = kb->arena + ((uintptr_t)e->cmd - 1);
        e->why = kb->arena + ((uintptr_t)e->why - 1);
        if (e->technique) e->technique = kb->arena + ((uintptr_t)e->technique - 1);
    }
    return 0;
}


nj_kb *kb_load_mem(const char *text, size_t len, const char *name, const kb_params *params, int *err) {
    int rc = 0;
    nj_kb *kb = NULL;
    builder bd = {0};
    if (!name) name = "example base";
    if (!text && len) { rc = nj_fail(-EINVAL, "%s: no text", name); goto fail; }
    if (len > KB_MAX_FILE) { rc = nj_fail(NJ_ETOOBIG, "%s: larger than %u bytes", name, KB_MAX_FILE); goto fail; }
    double k1 = params && params->k1 > 0 ? params->k1 : 1.2;
    double b = params && params->b >= 0 ? params->b : 0.75;
    if (!isfinite(k1) || !isfinite(b) || b > 1.0) { rc = nj_fail(-EINVAL, "%s: BM25 b must be in [0,1]", name); goto fail; }
    event_init();
    kb = nj_calloc(1, sizeof *kb);
    if (!kb) { rc = nj_fail(-ENOMEM, "%s: out of memory", name); goto fail; }
    kb->k1 = k1;
    kb->b = b;
    bd.kb = kb;
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        line++;
        bool blank = true;
        for (size_t j = i; j < e && blank; j++)
            blank = text[j] == ' ' || text[j] == '\t' || text[j] == '\r';
        if (!blank && (rc = add_line(&bd, text + i, e - i, name, line)) < 0) goto fail;
        i = e + 1;
    }
    if ((rc = finish(&bd)) < 0) goto fail;
    nj_free(bd.dt);
    nj_free(bd.tr);
    nj_free(bd.df);
    nj_free(bd.dlen);
    return kb;
fail:
    if (kb) {
        /* pointer fields still hold arena offsets: clear them before kb_free */
        kb->n = 0;
        kb_free(kb);
    }
    nj_free(bd.dt);
    nj_free(bd.tr);
    nj_free(bd.df);
    nj_free(bd.dlen);
    if (err) *err = rc;
    return NULL;
}

nj_kb *kb_load(const char *path_, const kb_params *params, int *err) {
    int rc;
    char *buf = NULL;
    FILE *f = fopen(path_, "rb");
    if (!f) {
        int e = errno;
        rc = nj_fail(-e, "%s: cannot open: %s", path_, strerror(e));
        goto fail;
    }
    size_t cap = 0, len = 0;
    for (;;) {
        if (len > KB_MAX_FILE) {
            rc = nj_fail(NJ_ETOOBIG, "%s: larger than %u bytes", path_, KB_MAX_FILE);
            goto fail;
        }
        if (grow((void **)&buf, &cap, len + 65536, 1) < 0) { rc = nj_fail(-ENOMEM, "%s: out of memory", path_); goto fail; }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) { rc = nj_fail(-EIO, "%s: read error", path_); goto fail; }
    if (len > KB_MAX_FILE) { rc = nj_fail(NJ_ETOOBIG, "%s: larger than %u bytes", path_, KB_MAX_FILE); goto fail; }
    fclose(f);
    f = NULL;
    nj_kb *kb = kb_load_mem(buf, len, path_, params, err);
    nj_free(buf);
    return kb;
fail:
    if (f) fclose(f);
    nj_free(buf);
    if (err) *err = rc;
    return NULL;
}

void kb_free(nj_kb *kb) {
    if (!kb) return;
    nj_free(kb->entries);
    nj_free(kb->arena);
    nj_free(kb->slots);
    nj_free(kb->thash);
    nj_free(kb->toff);
    nj_free(kb->tlen);
    nj_free(kb->tstr);
    nj_free(kb->idf);
    nj_free(kb->poff);
    nj_free(kb->pdoc);
    nj_free(kb->pw);
    nj_free(kb);
}

size_t kb_size(const nj_kb *kb) { return kb ? kb->n : 0; }
size_t kb_nterms(const nj_kb *kb) { return kb ? kb->nterms : 0; }

const kb_entry *kb_entry_at(const nj_kb *kb, size_t i) {
    return kb && i < kb->n ? &kb->entries[i] : NULL;
}

/* ------------------------------------------------------------------- query */

/* Distinct query terms considered per query; the rest of a longer query is
 * ignored (bounds the work an attacker-sized command line can cause). */
#define KB_QMAX 1024

struct nj_kb_searcher {
    const nj_kb *kb;
    float       *acc;       /* per entry; 0 = not touched by this query */
    uint32_t    *touched;   /* entries with acc > 0 */
    uint32_t    *stamp;     /* per term: query number that last used it */
    uint32_t     qno;
    uint32_t     q[KB_QMAX];
    size_t       nq;
};

nj_kb_searcher *kb_searcher_new(const nj_kb *kb, int *err) {
    if (!kb) {
        int rc = nj_fail(-EINVAL, "kb_searcher_new: no base");
        if (err) *err = rc;
        return NULL;
    }
    nj_kb_searcher *s = nj_calloc(1, sizeof *s);
    if (s) {
        s->kb = kb;
        s->acc = nj_calloc(kb->n ? kb->n : 1, sizeof *s->acc);
        s->touched = nj_calloc(kb->n ? kb->n : 1, sizeof *s->touched);
        s->stamp = nj_calloc(kb->nterms ? kb->nterms : 1, sizeof *s->stamp);
    }
    if (!s || !s->acc || !s->touched || !s->stamp) {
        kb_searcher_free(s);
        int rc = nj_fail(-ENOMEM, "kb_searcher_new: out of memory");
        if (err) *err = rc;
        return NULL;
    }
    return s;
}

void kb_searcher_free(nj_kb_searcher *s) {
    if (!s) return;
    nj_free(s->acc);
    nj_free(s->touched);
    nj_free(s->stamp);
    nj_free(s);
}

static void query_emit(void *ud, const char *tok, size_t n) {
    nj_kb_searcher *s = ud;
    if (s->nq >= KB_QMAX) return;
    long t = term_find(s->kb, tok, n, fnv1a(tok, n));
    if (t < 0 || s->stamp[t] == s->qno) return;
    s->stamp[t] = s->qno;
    s->q[s->nq++] = (uint32_t)t;
}

/* a ranks before b: higher score, then lower index */
static bool better(kb_hit a, kb_hit b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
}

/* Min-heap on `better` (root = worst kept hit). */
static void sift_down(kb_hit *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(h[w], h[l])) w = l;
        if (r < n && better(h[w], h[r])) w = r;
        if (w == i) return;
        kb_hit t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}

/* Heap (as built by sift_down) -> array ordered best first, O(n log n). */
static void heap_sort(kb_hit *h, size_t n) {
    for (size_t i = n; i-- > 1;) {
        kb_hit t = h[0]; h[0] = h[i]; h[i] = t;   /* worst to the end */
        sift_down(h, i, 0);
    }
}

/* Insertion sort: used after a diversity swap, when the array is sorted but
 * for one element, so it costs O(n). */
static void sort_hits(kb_hit *h, size_t n) {
    for (size_t i = 1; i < n; i++) {
        kb_hit x = h[i];
        size_t j = i;
        while (j > 0 && better(x, h[j - 1])) { h[j] = h[j - 1]; j--; }
        h[j] = x;
    }
}

int kb_query(nj_kb_searcher *s, const char *cmd, size_t len, int k, const kb_query_opts *opts, kb_hit *hits) {
    if (!s || k < 0 || (!cmd && len) || (!hits && k > 0)) return nj_fail(-EINVAL, "kb_query: bad arguments");
    if (k == 0 || !len) return 0;
    const nj_kb *kb = s->kb;
    if (++s->qno == 0) {   /* stamp wrap-around: start afresh */
        memset(s->stamp, 0, (kb->nterms ? kb->nterms : 1) * sizeof *s->stamp);
        s->qno = 1;
    }
    s->nq = 0;
    sink sk = {query_emit, s};
    tokenize(cmd, len, &sk);

    size_t nt = 0;
    for (size_t i = 0; i < s->nq; i++) {
        uint32_t t = s->q[i];
        float idf = kb->idf[t];
        for (uint32_t p = kb->poff[t]; p < kb->poff[t + 1]; p++) {
            uint32_t d = kb->pdoc[p];
            if (s->acc[d] == 0.0f) s->touched[nt++] = d;
            s->acc[d] += idf * kb->pw[p];
        }
    }

    size_t m = 0, kk = (size_t)k;
    kb_hit best[KB_NLABELS];
    bool have[KB_NLABELS] = {false};
    for (size_t i = 0; i < nt; i++) {
        uint32_t d = s->touched[i];
        kb_hit x = {d, s->acc[d]};
        s->acc[d] = 0.0f;
        int l = kb->entries[d].label;
        if (!have[l] || better(x, best[l])) { best[l] = x; have[l] = true; }
        if (m < kk) {
            hits[m++] = x;
            if (m == kk)   /* heapify once full */
                for (size_t j = kk / 2 + 1; j-- > 0;) sift_down(hits, m, j);
        } else if (better(x, hits[0])) {
            hits[0] = x;
            sift_down(hits, m, 0);
        }
    }
    if (m < kk)   /* never filled: not a heap yet */
        for (size_t j = m / 2 + 1; j-- > 0;) sift_down(hits, m, j);
    heap_sort(hits, m);

    if (opts && opts->diversity > 0 && m > 0) {
        double f = opts->diversity > 1 ? 1 : opts->diversity;
        int count[KB_NLABELS] = {0};
        for (size_t i = 0; i < m; i++) count[kb->entries[hits[i].index].label]++;
        for (;;) {   /* best missing label first */
            int add = -1;
            for (int l = 0; l < KB_NLABELS; l++)
                if (!count[l] && have[l] && best[l].score >= f * hits[0].score &&
                    (add < 0 || better(best[l], best[add])))
                    add = l;
            if (add < 0) break;
            size_t j = m;
            while (j-- > 0 && count[kb->entries[hits[j].index].label] < 2) {}
            if (j == (size_t)-1) break;   /* nothing can give way */
            count[kb->entries[hits[j].index].label]--;
            hits[j] = best[add];
            count[add]++;
            sort_hits(hits, m);
        }
    }
    return (int)m;
}
