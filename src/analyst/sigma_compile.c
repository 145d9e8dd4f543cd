/*
 * sigma_compile — one YAML document to one compiled rule (sigma_int.h).
 *
 * The document is walked once.  Metadata (title, id, level, tags, logsource)
 * is copied into the rule's arena; each selection of `detection` becomes an
 * OR of AND-maps of items; each value becomes a matcher, decided here once so
 * the matcher never re-reads the rule:
 *   - plain values and contains/startswith/endswith become a wildcard glob:
 *     literal segments split at unescaped '*', lower-cased (ASCII) unless
 *     `cased`, with start/end anchors.  Matching a glob is a prefix check, a
 *     suffix check and memmem of each middle segment, leftmost first (which
 *     is exact for patterns whose only wildcard is '*');
 *   - a glob with '?' or a `windash` value is rare: it becomes a PCRE2
 *     program instead (caseless, dot-all), so the glob path stays simple;
 *   - `re` compiles with PCRE2 (UTF, invalid UTF tolerated) and JIT;
 *   - base64 / base64offset are encoded here and matched case-sensitively.
 * Last, set_pre derives the rule's prefilter (sj_pre): the cheapest test
 * every match must pass, so the matcher can drop most rules without walking
 * them; and set_lits the literals every match needs (groups of (field,
 * literal), see sigma_int.h), with re_need giving a regex's literal set.
 * Unsupported features skip the rule with a one-sentence reason; nothing
 * here fails except on out-of-memory.
 *
 * Untrusted input: a rule file may come from anywhere.  YAML aliases may make
 * a small document expand into a huge tree, so the walk counts values and
 * gives up past a budget; condition nesting is bounded too.
 */
#include "sigma_int.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_VALUES    20000      /* values compiled per rule (alias bombs) */
#define MAX_COND_DEPTH 64
#define MAX_COND_LEN  4096

/* ---- arena ------------------------------------------------------------- */

struct sj_block {
    sj_block *next;
    size_t used, cap;
    union { max_align_t a; unsigned char b[1]; } data[];
};

void *sj_alloc(sj_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    sj_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4000 ? n : 4000;
        b = nj_malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *sj_strndup(sj_arena *a, const char *s, size_t n) {
    char *p = sj_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void sj_arena_free(sj_arena *a) {
    sj_block *b = a->head;
    while (b) {
        sj_block *n = b->next;
        nj_free(b);
        b = n;
    }
    a->head = NULL;
}

/* ---- compile state ------------------------------------------------------ */

typedef struct cstate {
    sigma_rules *rs;
    sj_rule *r;
    yaml_document_t *doc;
    char *why;
    size_t whylen;
    int oom;
    int skipped;
    long values;
} cstate;

/* Record the first reason a rule is skipped; returns 1 for `return skip(...)`. */
static int skip(cstate *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int skip(cstate *c, const char *fmt, ...) {
    if (!c->skipped) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, c->whylen, fmt, ap);
        va_end(ap);
        c->skipped = 1;
    }
    return 1;
}

static int oom(cstate *c) { c->oom = 1; return -ENOMEM; }

static yaml_node_t *node(cstate *c, int id) { return yaml_document_get_node(c->doc, id); }

static int is_scalar(yaml_node_t *n) { return n && n->type == YAML_SCALAR_NODE; }

static const char *sval(yaml_node_t *n) { return (const char *)n->data.scalar.value; }
static size_t slen(yaml_node_t *n) { return n->data.scalar.length; }

/* YAML null: a plain scalar null/Null/NULL/~ or empty (unless tagged !!str). */
static int is_null(yaml_node_t *n) {
    if (!is_scalar(n) || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = sval(n);
    return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static yaml_node_t *map_get(cstate *c, yaml_node_t *m, const char *key) {
    if (!m || m->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        if (is_scalar(k) && !strcmp(sval(k), key)) return node(c, p->value);
    }
    return NULL;
}

/* Arena copy of a scalar's text ("" for absent or non-scalar). */
static const char *str_of(cstate *c, yaml_node_t *n, int lower) {
    if (!is_scalar(n)) return "";
    char *s = sj_strndup(&c->r->arena, sval(n), slen(n));
    if (!s) { oom(c); return ""; }
    if (lower)
        for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    return s;
}

/* ---- metadata ------------------------------------------------------------ */

static int parse_level(const char *s) {
    static const char *names[] = {"informational", "low", "medium", "high", "critical"};
    for (int i = 0; i < 5; i++)
        if (!strcasecmp(s, names[i])) return i;
    return -1;
}

/* attack.t1059.004 -> "T1059.004"; attack.execution -> tactic "execution";
 * group and software ids (attack.g0032, attack.s0154) are dropped. */
static int parse_tags(cstate *c, yaml_node_t *tags) {
    if (!tags || tags->type != YAML_SEQUENCE_NODE) return 0;
    int n = (int)(tags->data.sequence.items.top - tags->data.sequence.items.start);
    const char **tech = sj_alloc(&c->r->arena, sizeof(char *) * (size_t)(n + 1));
    const char **tac = sj_alloc(&c->r->arena, sizeof(char *) * (size_t)(n + 1));
    if (!tech || !tac) return oom(c);
    int nt = 0, na = 0;
    for (yaml_node_item_t *it = tags->data.sequence.items.start; it < tags->data.sequence.items.top; it++) {
        yaml_node_t *t = node(c, *it);
        if (!is_scalar(t)) continue;
        const char *s = sval(t);
        if (strncasecmp(s, "attack.", 7)) continue;
        s += 7;
        int tech_like = (s[0] == 't' || s[0] == 'T') && isdigit((unsigned char)s[1]);
        /* attack.g0032 (group), attack.s0154 (software): neither */
        if (strchr("gGsS", s[0]) && s[0] && isdigit((unsigned char)s[1])) continue;
        char *v = sj_strndup(&c->r->arena, s, strlen(s));
        if (!v) return oom(c);
        if (tech_like) {
            for (char *p = v; *p; p++) *p = (char)toupper((unsigned char)*p);
            tech[nt++] = v;
        } else {
            for (char *p = v; *p; p++) *p = (char)tolower((unsigned char)*p);
            tac[na++] = v;
        }
    }
    c->r->info.techniques = tech;
    c->r->info.n_techniques = nt;
    c->r->info.tactics = tac;
    c->r->info.n_tactics = na;
    return 0;
}

static const char *const known_products[] = {"linux", "macos", NULL};
static const char *const known_categories[] = {"process_creation", "network_connection", "file_event", NULL};
static const char *const known_services[] = {"auditd", "sshd", "syslog", "cron", "sudo", "auth", NULL};

static int known(const char *const *list, const char *s) {
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

/* ---- values ---------------------------------------------------------------- */

/* Modifier flags. */
enum {
    MD_CONTAINS = 1 << 0, MD_STARTS = 1 << 1, MD_ENDS = 1 << 2, MD_ALL = 1 << 3,
    MD_RE = 1 << 4, MD_RE_I = 1 << 5, MD_RE_M = 1 << 6, MD_RE_S = 1 << 7,
    MD_EXISTS = 1 << 8, MD_CIDR = 1 << 9, MD_WINDASH = 1 << 10, MD_B64 = 1 << 11,
    MD_B64OFF = 1 << 12, MD_GT = 1 << 13, MD_GTE = 1 << 14, MD_LT = 1 << 15,
    MD_LTE = 1 << 16, MD_FIELDREF = 1 << 17, MD_CASED = 1 << 18,
};

static const struct { const char *name; int flag; } modifiers[] = {
    {"contains", MD_CONTAINS}, {"startswith", MD_STARTS}, {"endswith", MD_ENDS},
    {"all", MD_ALL}, {"re", MD_RE}, {"i", MD_RE_I}, {"m", MD_RE_M}, {"s", MD_RE_S},
    {"exists", MD_EXISTS}, {"cidr", MD_CIDR}, {"windash", MD_WINDASH},
    {"base64", MD_B64}, {"base64offset", MD_B64OFF}, {"gt", MD_GT}, {"gte", MD_GTE},
    {"lt", MD_LT}, {"lte", MD_LTE}, {"fieldref", MD_FIELDREF}, {"cased", MD_CASED},
};

/* The longest literal run (lower-cased, at least 3 bytes) that every match
 * of the regex P must contain, or 0 when none can be told safely.  Only the
 * top level is read: groups and classes end a run and are skipped whole; a
 * quantified character ends the run before it ('+' after it); a top-level
 * '|', \\Q or extended mode gives up.  Matching then checks this literal with
 * memmem on the folded value before running the regex: a necessary
 * condition whatever the regex's case flags, since folding keeps it. */
static size_t re_literal(const char *p, size_t n, uint32_t opts, char *best, size_t cap) {
    if (opts & PCRE2_EXTENDED) return 0;
    char run[256];
    size_t rn = 0, bn = 0;
#define END_RUN() do { if (rn > bn && rn < cap) { memcpy(best, run, rn); bn = rn; } rn = 0; } while (0)
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        int lit = -1;               /* literal byte at p[i], if any */
        size_t w = 1;               /* width of this atom */
        if (ch == '\\') {
            if (i + 1 >= n) return 0;
            unsigned char e = (unsigned char)p[i + 1];
            if (e == 'Q' || e == 'E') return 0;
            if (!isalnum(e) && e < 0x80) lit = e;   /* escaped punctuation is itself */
            w = 2;
            if (e == 'x' || e == 'o' || e == 'p' || e == 'P' || e == 'N' || e == 'g' || e == 'k' || e == 'c') {
                END_RUN();                      /* complex escapes: stop reading */
                return bn >= 3 ? bn : 0;
            }
        } else if (ch == '(') {
            if (i + 2 < n && p[i + 1] == '?' && p[i + 2] == 'x') return 0;
            int depth = 0;
            size_t j = i;
            for (; j < n; j++) {
                if (p[j] == '\\') { j++; continue; }
                if (p[j] == '[') {               /* skip a class inside the group */
                    j++;
                    if (j < n && p[j] == '^') j++;
                    if (j < n && p[j] == ']') j++;
                    while (j < n && p[j] != ']') { if (p[j] == '\\') j++; j++; }
                    continue;
                }
                if (p[j] == '(') depth++;
                else if (p[j] == ')' && --depth == 0) break;
            }
            if (j >= n) return 0;
            w = j - i + 1;
        } else if (ch == '[') {
            size_t j = i + 1;
            if (j < n && p[j] == '^') j++;
            if (j < n && p[j] == ']') j++;
            while (j < n && p[j] != ']') { if (p[j] == '\\') j++; j++; }
            if (j >= n) return 0;
            w = j - i + 1;
        } else if (ch == '|') {
            return 0;
        } else if (ch >= 0x80) {
            END_RUN();                          /* non-ASCII: caseless matching goes beyond ASCII folding */
        } else if (!strchr(".^$*+?{)", ch)) {
            lit = ch;
        }
        size_t k = i + w;
        int quant = k < n && strchr("*+?{", p[k]);
        int plus = quant && p[k] == '+';
        if (lit >= 0 && (!quant || plus)) {
            if (rn + 1 < sizeof run) run[rn++] = (char)tolower(lit);
            if (plus) END_RUN();
        } else {
            END_RUN();
        }
        i = k;
        if (quant) {                            /* skip the quantifier itself */
            if (p[i] == '{') { while (i < n && p[i] != '}') i++; i++; }
            else i++;
            if (i < n && (p[i] == '?' || p[i] == '+')) i++;
        }
    }
    END_RUN();
#undef END_RUN
    return bn >= 3 ? bn : 0;
}

/* ---- literal sets of a regex ---------------------------------------------
 *
 * re_need finds a set of literals of which every match of a regex contains
 * one (ASCII lower-cased, for a search in the folded value): for
 * 'cp\s|(?:tee|mv)\s' that is {cp, tee, mv}.  It walks the pattern once and
 * keeps, for each piece, the set of strings the piece matches exactly (when
 * that set is small: "a", "[ab]", "(?:x|yz)") and the best set of which
 * every match of the piece contains one.  A concatenation multiplies the
 * exact sets of neighbours while they stay small; an alternation unites the
 * sets of its branches; a piece repeated at least once keeps its needed set;
 * an optional piece, '.', a large class, a lookaround and anything
 * non-ASCII break the run.  Anything it does not understand (backreferences,
 * \x, \p, \Q, (?x), verbs, recursion, ...) gives up on the whole pattern:
 * the answer is then "no literal", which only costs speed.  Every step keeps
 * the set necessary, so the prefilter never hides a match. */

/* How likely a literal of length N occurs by chance (smaller is rarer). */
static int lit_weight(uint32_t n) { return n >= 4 ? 1 : n == 3 ? 4 : n == 2 ? 16 : 64; }

#define RS_MAX 32        /* strings in a set */
#define RS_LEN 24        /* bytes kept per string (a needed literal is cut) */
#define RS_DEPTH 12      /* group nesting analysed */

typedef struct rset { int n; uint8_t len[RS_MAX]; char s[RS_MAX][RS_LEN]; } rset;
typedef struct rinfo { int exact_ok, need_ok; rset exact, need; } rinfo;
typedef struct rparse { const char *p; size_t n, i; int bad; } rparse;

static int rs_score(const rset *r) {
    int sc = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->len[i] == 0) return 1 << 30;           /* "" is always there */
        sc += lit_weight(r->len[i]);
    }
    return sc;
}

static void rs_one(rset *r, const char *s, size_t n) {
    r->n = 1;
    r->len[0] = (uint8_t)n;
    if (n) memcpy(r->s[0], s, n);
}

/* Add S to R unless there; 0 when R is full. */
static int rs_add(rset *r, const char *s, size_t n) {
    if (n > RS_LEN) n = RS_LEN;
    for (int i = 0; i < r->n; i++) if (r->len[i] == n && !memcmp(r->s[i], s, n)) return 1;
    if (r->n >= RS_MAX) return 0;
    r->len[r->n] = (uint8_t)n;
    memcpy(r->s[r->n++], s, n);
    return 1;
}

static void ri_unknown(rinfo *r) { r->exact_ok = r->need_ok = 0; r->exact.n = r->need.n = 0; }
static void ri_exact(rinfo *r, const char *s, size_t n) {
    ri_unknown(r);
    r->exact_ok = 1;
    rs_one(&r->exact, s, n);
}

/* The best needed set of R into OUT (its exact set counts as one); 0 if none. */
static int ri_need(const rinfo *r, rset *out) {
    int se = r->exact_ok ? rs_score(&r->exact) : 1 << 30;
    int sn = r->need_ok ? rs_score(&r->need) : 1 << 30;
    if (se >= 1 << 30 && sn >= 1 << 30) return 0;
    *out = se <= sn ? r->exact : r->need;
    return 1;
}

static int fold_ch(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static void re_alt(rparse *rp, rinfo *out, int depth);

/* Skip a UTF-8 sequence's continuation bytes after its lead byte. */
static void skip_cont(rparse *rp) {
    while (rp->i < rp->n && ((unsigned char)rp->p[rp->i] & 0xC0) == 0x80) rp->i++;
}

/* A bracket class starting at '[' into OUT: an exact set of up to 4 ASCII
 * characters, or unknown. */
static void re_class(rparse *rp, rinfo *out) {
    rp->i++;
    int neg = 0, big = 0;
    char ch[8];
    int nch = 0;
    if (rp->i < rp->n && rp->p[rp->i] == '^') { neg = 1; rp->i++; }
    int first = 1;
    while (rp->i < rp->n && (first || rp->p[rp->i] != ']')) {
        first = 0;
        unsigned char c = (unsigned char)rp->p[rp->i];
        int lit = -1;
        if (c == '[' && rp->i + 1 < rp->n && (rp->p[rp->i + 1] == ':' || rp->p[rp->i + 1] == '.' || rp->p[rp->i + 1] == '=')) {
            const char *e = NULL;
            for (size_t j = rp->i + 2; j + 1 < rp->n; j++)
                if (rp->p[j] == rp->p[rp->i + 1] && rp->p[j + 1] == ']') { e = rp->p + j; break; }
            if (!e) { rp->bad = 1; return; }
            rp->i = (size_t)(e - rp->p) + 2;
            big = 1;
            continue;
        }
        if (c == '\\') {
            if (rp->i + 1 >= rp->n) { rp->bad = 1; return; }
            unsigned char e = (unsigned char)rp->p[rp->i + 1];
            rp->i += 2;
            if (e >= 0x80) { rp->bad = 1; return; }
            if (!isalnum(e)) lit = e;
            else if (strchr("dDwWsShHvVR", e)) big = 1;
            else if (e == 't') lit = '\t';
            else if (e == 'n') lit = '\n';
            else if (e == 'r') lit = '\r';
            else if (e == 'f') lit = '\f';
            else if (e == 'e') lit = 27;
            else if (e == 'a') lit = 7;
            else if (e == 'b') lit = 8;
            else { rp->bad = 1; return; }
        } else if (c >= 0x80) {
            rp->i++;
            skip_cont(rp);
            big = 1;
            continue;
        } else {
            lit = c;
            rp->i++;
        }
        if (lit < 0) continue;
        /* A range lit-hi (a '-' before the closing ']' is itself). */
        if (rp->i + 1 < rp->n && rp->p[rp->i] == '-' && rp->p[rp->i + 1] != ']') {
            unsigned char h = (unsigned char)rp->p[rp->i + 1];
            if (h == '\\' || h == '[' || h >= 0x80) { rp->bad = 1; return; }
            rp->i += 2;
            if (h < lit) { rp->bad = 1; return; }
            if (h - lit >= 4) { big = 1; continue; }
            for (int x = lit; x <= h && !big; x++) {
                if (nch >= 4) big = 1;
                else ch[nch++] = (char)fold_ch(x);
            }
            continue;
        }
        if (nch >= 4) big = 1;
        else ch[nch++] = (char)fold_ch(lit);
    }
    if (rp->i >= rp->n) { rp->bad = 1; return; }
    rp->i++;                                  /* ']' */
    ri_unknown(out);
    if (neg || big || nch == 0) return;
    out->exact_ok = 1;
    for (int k = 0; k < nch; k++) rs_add(&out->exact, &ch[k], 1);
}

/* One atom (without its quantifier) into OUT.  Returns 0 at the end of a
 * branch ('|', ')' or the end), 1 otherwise. */
static int re_atom(rparse *rp, rinfo *out, int depth) {
    if (rp->i >= rp->n) return 0;
    unsigned char c = (unsigned char)rp->p[rp->i];
    if (c == '|' || c == ')') return 0;
    if (c == '*' || c == '+' || c == '?') { rp->bad = 1; return 0; }
    if (c == '.') { rp->i++; ri_unknown(out); return 1; }
    if (c == '^' || c == '$') { rp->i++; ri_exact(out, "", 0); return 1; }
    if (c == '[') { re_class(rp, out); return !rp->bad; }
    if (c >= 0x80) { rp->i++; skip_cont(rp); ri_unknown(out); return 1; }
    if (c == '\\') {
        if (rp->i + 1 >= rp->n) { rp->bad = 1; return 0; }
        unsigned char e = (unsigned char)rp->p[rp->i + 1];
        rp->i += 2;
        char lit;
        if (e >= 0x80) { skip_cont(rp); ri_unknown(out); return 1; }
        if (!isalnum(e)) lit = (char)e;
        else if (e == 'N' && rp->i < rp->n && rp->p[rp->i] == '{') { rp->bad = 1; return 0; }
        else if (strchr("dDwWsShHvVRNX", e)) { ri_unknown(out); return 1; }
        else if (strchr("bBAzZGK", e)) { ri_exact(out, "", 0); return 1; }
        else if (e == 't') lit = '\t';
        else if (e == 'n') lit = '\n';
        else if (e == 'r') lit = '\r';
        else if (e == 'f') lit = '\f';
        else if (e == 'e') lit = 27;
        else if (e == 'a') lit = 7;
        else { rp->bad = 1; return 0; }
        char f = (char)fold_ch((unsigned char)lit);
        ri_exact(out, &f, 1);
        return 1;
    }
    if (c == '(') {
        rp->i++;
        int look = 0;
        if (rp->i < rp->n && rp->p[rp->i] == '*') { rp->bad = 1; return 0; }
        if (rp->i < rp->n && rp->p[rp->i] == '?') {
            rp->i++;
            if (rp->i >= rp->n) { rp->bad = 1; return 0; }
            char q = rp->p[rp->i];
            if (q == '#') {
                while (rp->i < rp->n && rp->p[rp->i] != ')') rp->i++;
                if (rp->i >= rp->n) { rp->bad = 1; return 0; }
                rp->i++;
                ri_exact(out, "", 0);
                return 1;
            }
            if (q == ':' || q == '>' || q == '|') rp->i++;
            else if (q == '=' || q == '!') { rp->i++; look = 1; }
            else if (q == '<' && rp->i + 1 < rp->n && (rp->p[rp->i + 1] == '=' || rp->p[rp->i + 1] == '!')) { rp->i += 2; look = 1; }
            else if (q == '<' || q == '\'' || (q == 'P' && rp->i + 1 < rp->n && rp->p[rp->i + 1] == '<')) {
                char close = q == '\'' ? '\'' : '>';
                while (rp->i < rp->n && rp->p[rp->i] != close) rp->i++;
                if (rp->i >= rp->n) { rp->bad = 1; return 0; }
                rp->i++;
            } else {
                /* Option letters, then ')' (a setting) or ':' (a group). */
                size_t j = rp->i;
                while (j < rp->n && strchr("imnsJU-", rp->p[j])) j++;
                if (j >= rp->n || (rp->p[j] != ')' && rp->p[j] != ':')) { rp->bad = 1; return 0; }
                rp->i = j + 1;
                if (rp->p[j] == ')') { ri_exact(out, "", 0); return 1; }
            }
        }
        if (depth >= RS_DEPTH) { rp->bad = 1; return 0; }
        re_alt(rp, out, depth + 1);
        if (rp->bad || rp->i >= rp->n || rp->p[rp->i] != ')') { rp->bad = 1; return 0; }
        rp->i++;
        if (look) ri_exact(out, "", 0);
        return 1;
    }
    rp->i++;
    char f = (char)fold_ch(c);
    ri_exact(out, &f, 1);
    return 1;
}

/* A quantifier after an atom: sets *MIN (0 or 1: at least once) and *ONE
 * (exactly once: {1} or {1,1}).  Returns 0 when none follows. */
static int re_quant(rparse *rp, int *min, int *one) {
    if (rp->i >= rp->n) return 0;
    char c = rp->p[rp->i];
    *one = 0;
    if (c == '*' || c == '?') *min = 0;
    else if (c == '+') *min = 1;
    else if (c == '{') {
        size_t j = rp->i + 1;
        unsigned long lo = 0, hi = 0;
        int dlo = 0, dhi = 0, comma = 0;
        while (j < rp->n && isdigit((unsigned char)rp->p[j])) { if (lo < 100000) lo = lo * 10 + (unsigned long)(rp->p[j] - '0'); j++; dlo = 1; }
        if (j < rp->n && rp->p[j] == ',') {
            comma = 1;
            j++;
            while (j < rp->n && isdigit((unsigned char)rp->p[j])) { if (hi < 100000) hi = hi * 10 + (unsigned long)(rp->p[j] - '0'); j++; dhi = 1; }
        }
        if (j < rp->n && rp->p[j] == '}' && dlo) {
            rp->i = j + 1;
            *min = lo >= 1;
            *one = lo == 1 && (!comma || (dhi && hi == 1));
            if (rp->i < rp->n && (rp->p[rp->i] == '?' || rp->p[rp->i] == '+')) rp->i++;
            return 1;
        }
        /* Not the classic form: a literal '{', unless it is one of the
         * newer forms ({,n}, spaces) that some PCRE2 versions read as a
         * quantifier: then give up. */
        for (size_t k = rp->i + 1; k < rp->n && rp->p[k] != '}'; k++)
            if (!isdigit((unsigned char)rp->p[k]) && rp->p[k] != ',' && rp->p[k] != ' ') return 0;
        if (!dlo || comma) rp->bad = 1;
        return 0;
    } else {
        return 0;
    }
    rp->i++;
    if (rp->i < rp->n && (rp->p[rp->i] == '?' || rp->p[rp->i] == '+')) rp->i++;
    return 1;
}

/* R = R followed by X (exact sets multiplied); 0 when it would not fit. */
static int rs_cross(rset *r, const rset *x) {
    if (r->n * x->n > RS_MAX) return 0;
    rset o = {0};
    for (int a = 0; a < r->n; a++)
        for (int b = 0; b < x->n; b++) {
            if (r->len[a] + x->len[b] > RS_LEN) return 0;
            char buf[RS_LEN];
            memcpy(buf, r->s[a], r->len[a]);
            memcpy(buf + r->len[a], x->s[b], x->len[b]);
            rs_add(&o, buf, (size_t)(r->len[a] + x->len[b]));
        }
    *r = o;
    return 1;
}

static void keep_best(rinfo *out, const rset *cand) {
    if (rs_score(cand) >= 1 << 30) return;
    if (!out->need_ok || rs_score(cand) < rs_score(&out->need)) { out->need = *cand; out->need_ok = 1; }
}

/* One branch: a sequence of quantified atoms. */
static void re_seq(rparse *rp, rinfo *out, int depth) {
    rset run;                       /* exact strings of the current run */
    rs_one(&run, "", 0);
    int all_exact = 1;
    ri_unknown(out);
    rinfo a;
    while (!rp->bad && re_atom(rp, &a, depth)) {
        int min = 1, one = 1;
        if (re_quant(rp, &min, &one)) {
            if (!min) ri_unknown(&a);
            else if (!one) a.exact_ok = 0, a.need_ok = ri_need(&a, &a.need);
        }
        if (rp->bad) return;
        if (a.exact_ok && rs_cross(&run, &a.exact)) continue;
        all_exact = 0;
        keep_best(out, &run);
        rset nd;
        if (ri_need(&a, &nd)) keep_best(out, &nd);
        if (a.exact_ok) run = a.exact;
        else rs_one(&run, "", 0);
    }
    keep_best(out, &run);
    if (all_exact) { out->exact_ok = 1; out->exact = run; }
}

/* Branches separated by '|', up to ')' or the end. */
static void re_alt(rparse *rp, rinfo *out, int depth) {
    rinfo b;
    re_seq(rp, out, depth);
    while (!rp->bad && rp->i < rp->n && rp->p[rp->i] == '|') {
        rp->i++;
        re_seq(rp, &b, depth);
        if (rp->bad) return;
        rset na, nb;
        int ha = ri_need(out, &na), hb = ri_need(&b, &nb);
        int ex = out->exact_ok && b.exact_ok;
        for (int k = 0; ex && k < b.exact.n; k++) ex = rs_add(&out->exact, b.exact.s[k], b.exact.len[k]);
        out->exact_ok = ex;
        out->need_ok = 0;
        if (ha && hb) {
            int ok = 1;
            for (int k = 0; ok && k < nb.n; k++) ok = rs_add(&na, nb.s[k], nb.len[k]);
            if (ok) { out->need = na; out->need_ok = 1; }
        }
    }
}

/* The needed literal set of pattern P (N bytes, options OPTS) into V's
 * need/nneed, in the rule's arena.  0, or -ENOMEM. */
static int re_need(cstate *c, sj_val *v, const char *p, size_t n, uint32_t opts) {
    if (opts & PCRE2_EXTENDED) return 0;
    rparse rp = {p, n, 0, 0};
    rinfo *r = nj_malloc(sizeof *r);
    if (!r) return oom(c);
    re_alt(&rp, r, 0);
    rset nd;
    int have = !rp.bad && rp.i == n && ri_need(r, &nd);
    nj_free(r);
    if (!have) return 0;
    v->need = sj_alloc(&c->r->arena, sizeof(sj_seg) * (size_t)nd.n);
    if (!v->need) return oom(c);
    for (int k = 0; k < nd.n; k++) {
        char *s = sj_strndup(&c->r->arena, nd.s[k], nd.len[k]);
        if (!s) return oom(c);
        v->need[k].s = s;
        v->need[k].n = nd.len[k];
    }
    v->nneed = (uint32_t)nd.n;
    return 0;
}

/* Add a PCRE2 program to V.  Pattern P (length N); flags are PCRE2 options. */
static int compile_re(cstate *c, sj_val *v, const char *p, size_t n, uint32_t opts) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_compile_context *cc = NULL;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, n, opts | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                                   &ec, &eo, cc);
    if (!re) {
        if (ec == PCRE2_ERROR_NOMEMORY || ec == PCRE2_ERROR_HEAPLIMIT) return oom(c);
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return skip(c, "regular expression does not compile at offset %zu: %s", (size_t)eo, (char *)msg);
    }
    v->re = re;
    v->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    v->kind = V_RE;
    v->next_re = c->r->res;         /* chained first: the rule frees the program */
    c->r->res = v;
    if (re_need(c, v, p, n, opts)) return -ENOMEM;
    char lit[128];
    size_t ln = re_literal(p, n, opts, lit, sizeof lit);
    if (ln) {
        sj_seg *seg = sj_alloc(&c->r->arena, sizeof *seg);
        char *s = sj_strndup(&c->r->arena, lit, ln);
        if (!seg || !s) return oom(c);
        seg->s = s;
        seg->n = (uint32_t)ln;
        seg->bg[0] = sj_bigram((unsigned char)s[0], (unsigned char)s[1]);
        seg->bg[1] = sj_bigram((unsigned char)s[ln - 2], (unsigned char)s[ln - 1]);
        v->seg = seg;
        v->nseg = 1;
    }
    return 0;
}

/* Is position I of S (length N) a dash/slash that windash expands?  A '-' or
 * '/' that does not follow a word character and is followed by one. */
static int windash_at(const char *s, size_t n, size_t i) {
    if (s[i] != '-' && s[i] != '/') return 0;
    if (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_')) return 0;
    return i + 1 < n && (isalnum((unsigned char)s[i + 1]) || s[i + 1] == '_');
}

/* Append C to a growing regex text buffer. */
typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;
static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 64);
        while (cap < b->n + n + 1) cap *= 2;
        char *q = nj_realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_lit(sbuf *b, char ch) {
    if (strchr("\\^$.|?*+()[]{}", ch) && ch) sb_put(b, "\\", 1);
    sb_put(b, &ch, 1);
}

/* A Sigma string value (S, N) with wildcard semantics into V.
 * contains/startswith/endswith say which ends are open; cased keeps case;
 * windash expands dashes.  Escapes: \* \? \\ are the literal characters;
 * any other backslash is itself. */
static int compile_glob(cstate *c, sj_val *v, const char *s, size_t n, int mods, int keyword) {
    int open_start = (mods & (MD_CONTAINS | MD_ENDS)) || keyword;
    int open_end = (mods & (MD_CONTAINS | MD_STARTS)) || keyword;
    int cased = !!(mods & MD_CASED);
    int need_re = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && strchr("*?\\", s[i + 1])) { i++; continue; }
        if (s[i] == '?') need_re = 1;
        if ((mods & MD_WINDASH) && windash_at(s, n, i)) need_re = 1;
    }
    v->cased = (uint8_t)cased;
    if (need_re) {
        sbuf b = {0};
        sb_put(&b, "(?s)", 4);
        if (!cased) sb_put(&b, "(?i)", 4);
        if (!open_start) sb_put(&b, "^", 1);
        for (size_t i = 0; i < n; i++) {
            char ch = s[i];
            if (ch == '\\' && i + 1 < n && strchr("*?\\", s[i + 1])) sb_lit(&b, s[++i]);
            else if (ch == '*') sb_put(&b, ".*", 2);
            else if (ch == '?') sb_put(&b, ".", 1);
            else if ((mods & MD_WINDASH) && windash_at(s, n, i)) {
                static const char dashes[] = "(?:-|/|\xe2\x80\x93|\xe2\x80\x94|\xe2\x80\x95)";
                sb_put(&b, dashes, sizeof dashes - 1);
            }
            else sb_lit(&b, ch);
        }
        if (!open_end) sb_put(&b, "\\z", 2);      /* not $: it also matches before a final newline */
        if (b.oom) { nj_free(b.p); return oom(c); }
        int rc = compile_re(c, v, b.p, b.n, 0);
        nj_free(b.p);
        return rc;
    }
    /* Split into literal segments at unescaped '*'. */
    char *lit = sj_alloc(&c->r->arena, n + 1);
    uint32_t maxseg = 1;
    for (size_t i = 0; i < n; i++) if (s[i] == '*') maxseg++;
    sj_seg *seg = sj_alloc(&c->r->arena, sizeof *seg * maxseg);
    if (!lit || !seg) return oom(c);
    v->kind = V_GLOB;
    v->anch_start = (uint8_t)!open_start;
    v->anch_end = (uint8_t)!open_end;
    size_t w = 0, segstart = 0;
    uint32_t ns = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '*') {
            if (i < n && i == 0) v->anch_start = 0;
            if (i < n && i == n - 1) v->anch_end = 0;
            if (w > segstart) {
                seg[ns].s = lit + segstart;
                seg[ns].n = (uint32_t)(w - segstart);
                if (seg[ns].n >= 2 && !cased) {
                    const unsigned char *q = (const unsigned char *)seg[ns].s;
                    uint32_t m = seg[ns].n;
                    seg[ns].bg[0] = sj_bigram(q[0], q[1]);
                    seg[ns].bg[1] = sj_bigram(q[m - 2], q[m - 1]);
                }
                ns++;
            }
            lit[w++] = 0;
            segstart = w;
            continue;
        }
        char ch = s[i];
        if (ch == '\\' && i + 1 < n && strchr("*?\\", s[i + 1])) ch = s[++i];
        lit[w++] = cased ? ch : (char)tolower((unsigned char)ch);
    }
    v->seg = seg;
    v->nseg = ns;
    return 0;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of IN (N bytes) into OUT, without '=' padding; returns its length. */
static size_t b64(const unsigned char *in, size_t n, char *out) {
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[w++] = b64chars[(v >> 18) & 63];
        out[w++] = b64chars[(v >> 12) & 63];
        if (i + 1 < n) out[w++] = b64chars[(v >> 6) & 63];
        if (i + 2 < n) out[w++] = b64chars[v & 63];
    }
    return w;
}

/* Literal glob value (no wildcard processing) into V. */
static int literal_val(cstate *c, sj_val *v, const char *s, size_t n, int open_start, int open_end) {
    sj_seg *seg = sj_alloc(&c->r->arena, sizeof *seg);
    char *lit = sj_strndup(&c->r->arena, s, n);
    if (!seg || !lit) return oom(c);
    v->kind = V_GLOB;
    v->cased = 1;
    v->anch_start = (uint8_t)!open_start;
    v->anch_end = (uint8_t)!open_end;
    seg->s = lit;
    seg->n = (uint32_t)n;
    v->seg = seg;
    v->nseg = n ? 1 : 0;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes")) { *out = 1; return 0; }
    if (!strcasecmp(s, "false") || !strcasecmp(s, "no")) { *out = 0; return 0; }
    return -1;
}

/* Compile one value node for an item with modifiers MODS.  May append more
 * than one sj_val (base64offset gives three alternatives) to VALS/NV. */
static int compile_value(cstate *c, yaml_node_t *n, int mods, int keyword,
                         sj_val *vals, int *nv, int cap) {
    if (++c->values > MAX_VALUES) return skip(c, "rule has more than %d values", MAX_VALUES);
    if (*nv + 3 > cap) return skip(c, "too many values");
    sj_val *v = &vals[(*nv)++];
    if (!is_scalar(n)) return skip(c, "a value is a %s, not a string or number",
                                   n && n->type == YAML_MAPPING_NODE ? "map" : "list");
    const char *s = sval(n);
    size_t len = slen(n);
    if (is_null(n) && !(mods & MD_EXISTS)) {
        if (mods & ~(MD_ALL)) return skip(c, "null value with a modifier");
        v->kind = V_NULL;
        return 0;
    }
    if (mods & MD_EXISTS) {
        int b;
        if (parse_bool(s, &b)) return skip(c, "exists needs true or false, not '%.40s'", s);
        v->kind = V_EXISTS;
        v->op = (uint8_t)b;
        return 0;
    }
    if (mods & MD_FIELDREF) {
        int f = sj_field(c->rs, s, len);
        if (f < 0) return oom(c);
        v->kind = V_FIELDREF;
        v->ref = f;
        return 0;
    }
    if (mods & (MD_GT | MD_GTE | MD_LT | MD_LTE)) {
        char *end;
        double d = strtod(s, &end);
        if (end == s || *end) return skip(c, "numeric comparison with a non-number '%.40s'", s);
        v->kind = V_NUM;
        v->num = d;
        v->op = (mods & MD_GT) ? NUM_GT : (mods & MD_GTE) ? NUM_GTE : (mods & MD_LT) ? NUM_LT : NUM_LTE;
        return 0;
    }
    if (mods & MD_CIDR) {
        char buf[64];
        const char *slash = memchr(s, '/', len);
        size_t alen = slash ? (size_t)(slash - s) : len;
        if (alen >= sizeof buf) return skip(c, "bad cidr '%.60s'", s);
        memcpy(buf, s, alen);
        buf[alen] = 0;
        int v6 = strchr(buf, ':') != NULL;
        if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, v->addr) != 1)
            return skip(c, "bad cidr '%.60s'", s);
        long bits = v6 ? 128 : 32;
        if (slash) {
            char *end;
            bits = strtol(slash + 1, &end, 10);
            if (end == slash + 1 || *end || bits < 0 || bits > (v6 ? 128 : 32))
                return skip(c, "bad cidr prefix in '%.60s'", s);
        }
        v->kind = V_CIDR;
        v->v6 = (uint8_t)v6;
        v->bits = (uint16_t)bits;
        return 0;
    }
    if (mods & MD_RE) {
        uint32_t o = 0;
        if (mods & MD_RE_I) o |= PCRE2_CASELESS;
        if (mods & MD_RE_M) o |= PCRE2_MULTILINE;
        if (mods & MD_RE_S) o |= PCRE2_DOTALL;
        return compile_re(c, v, s, len, o);
    }
    if (mods & (MD_B64 | MD_B64OFF)) {
        for (size_t i = 0; i < len; i++)
            if (s[i] == '*' || s[i] == '?') return skip(c, "wildcards inside a base64 value");
        int open = !!(mods & MD_CONTAINS);
        char *tmp = nj_malloc(len + 3);
        char *out = nj_malloc((len + 3) / 3 * 4 + 8);
        if (!tmp || !out) { nj_free(tmp); nj_free(out); return oom(c); }
        int rc = 0;
        if (mods & MD_B64) {
            size_t w = b64((const unsigned char *)s, len, out);
            while (!open && w % 4) out[w++] = '=';
            rc = literal_val(c, v, out, w, open, open);
        } else {
            /* Three encodings for the three alignments of the value inside a
             * longer base64 stream; trim the characters that depend on the
             * unknown neighbouring bytes. */
            static const int drop_start[3] = {0, 2, 3};
            (*nv)--;
            for (int off = 0; off < 3 && !rc; off++) {
                memset(tmp, 0, (size_t)off);
                memcpy(tmp + off, s, len);
                size_t total = len + (size_t)off;
                size_t w = b64((const unsigned char *)tmp, total, out);
                size_t drop_end = total % 3 ? 1 : 0;   /* last char mixes in the next byte */
                size_t a = (size_t)drop_start[off];
                if (w < a + drop_end || w - a - drop_end == 0) continue;
                rc = literal_val(c, &vals[(*nv)++], out + a, w - a - drop_end, 1, 1);
            }
        }
        nj_free(tmp);
        nj_free(out);
        return rc;
    }
    return compile_glob(c, v, s, len, mods, keyword);
}

static int val_cost(const sj_val *v) {
    switch (v->kind) {
    case V_NULL: case V_EXISTS: case V_NUM: case V_CIDR: case V_FIELDREF: return 1;
    case V_GLOB: return (v->anch_start || v->anch_end) ? 1 : 3;
    default: return 20;
    }
}

/* One "Field|mods: value(s)" entry (KEY may be NULL for keyword lists). */
static int compile_item(cstate *c, sj_item *it, const char *key, size_t keylen, yaml_node_t *val) {
    const char *bar = key ? memchr(key, '|', keylen) : NULL;
    size_t flen = key ? (bar ? (size_t)(bar - key) : keylen) : 0;
    int mods = 0;
    while (bar) {
        const char *m = bar + 1;
        const char *next = memchr(m, '|', keylen - (size_t)(m - key));
        size_t mlen = next ? (size_t)(next - m) : keylen - (size_t)(m - key);
        int found = 0;
        for (size_t i = 0; i < NJ_ARRAY_LEN(modifiers); i++)
            if (strlen(modifiers[i].name) == mlen && !strncmp(modifiers[i].name, m, mlen)) {
                mods |= modifiers[i].flag;
                found = 1;
            }
        if (!found) return skip(c, "unsupported modifier '%.*s'", (int)(mlen > 40 ? 40 : mlen), m);
        bar = next;
    }
    if ((mods & (MD_RE_I | MD_RE_M | MD_RE_S)) && !(mods & MD_RE))
        return skip(c, "modifier i/m/s without re");
    int kinds = !!(mods & MD_RE) + !!(mods & MD_CIDR) + !!(mods & MD_EXISTS) +
                !!(mods & (MD_GT | MD_GTE | MD_LT | MD_LTE)) + !!(mods & MD_FIELDREF) +
                !!(mods & (MD_B64 | MD_B64OFF));
    int pos = !!(mods & MD_CONTAINS) + !!(mods & MD_STARTS) + !!(mods & MD_ENDS);
    if (kinds > 1 || pos > 1 || (kinds && pos && !(mods & (MD_B64 | MD_B64OFF))))
        return skip(c, "unsupported combination of modifiers in '%.*s'", (int)(keylen > 60 ? 60 : keylen), key);
    if ((mods & MD_B64OFF) && !(mods & MD_CONTAINS))
        return skip(c, "base64offset without contains");
    if ((mods & MD_B64) && (mods & MD_B64OFF))
        return skip(c, "base64 together with base64offset");
    int f = key ? sj_field(c->rs, key, flen) : 0;
    if (f < 0) return oom(c);
    if (key && flen == 0) f = 0;                 /* '|all': keyword list with modifiers */
    int keyword = (f == 0) && !(mods & (MD_CONTAINS | MD_STARTS | MD_ENDS)) &&
                  !(mods & (MD_RE | MD_CIDR | MD_EXISTS | MD_FIELDREF | MD_GT | MD_GTE | MD_LT | MD_LTE));
    it->field = f;
    it->all = !!(mods & MD_ALL);
    int count = 1;
    if (val && val->type == YAML_SEQUENCE_NODE) {
        count = (int)(val->data.sequence.items.top - val->data.sequence.items.start);
        if (count == 0) return skip(c, "empty value list for '%.*s'", (int)(flen > 60 ? 60 : flen), key ? key : "");
        if (count > MAX_VALUES) return skip(c, "rule has more than %d values", MAX_VALUES);
    } else if (val && val->type == YAML_MAPPING_NODE) {
        return skip(c, "a field's value is a map");
    }
    int cap = count * 3;
    it->val = sj_alloc(&c->r->arena, sizeof(sj_val) * (size_t)cap);
    if (!it->val) return oom(c);
    int nv = 0, rc = 0;
    int b64off = !!(mods & MD_B64OFF);
    if (!val) return skip(c, "missing value");
    if (val->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *p = val->data.sequence.items.start; p < val->data.sequence.items.top && !rc; p++) {
            int before = nv;
            rc = compile_value(c, node(c, *p), mods, keyword, it->val, &nv, cap);
            /* With |all and base64offset, the three alternatives of one value
             * must be ORed; keep that simple by refusing the combination. */
            if (!rc && it->all && b64off && nv - before > 1)
                return skip(c, "base64offset with all");
        }
    } else {
        rc = compile_value(c, val, mods, keyword, it->val, &nv, cap);
        if (b64off && nv > 1 && it->all) return skip(c, "base64offset with all");
    }
    if (rc) return rc;
    it->nval = nv;
    int fs = nv > 0, ls = nv > 0;
    for (int i = 0; i < nv; i++) {
        const sj_val *v = &it->val[i];
        if (v->kind != V_GLOB || v->cased || v->nseg == 0) { fs = ls = 0; break; }
        if (!v->anch_start) fs = 0;
        if (!v->anch_end) ls = 0;
    }
    /* Width 2 (byte pairs) when every end piece has two bytes. */
    for (int i = 0; i < nv && (fs || ls); i++) {
        const sj_val *v = &it->val[i];
        if (fs == 2 || (fs && i == 0)) fs = v->seg[0].n >= 2 ? 2 : 1;
        if (fs == 2 && v->seg[0].n < 2) fs = 1;
        if (ls && i == 0) ls = v->seg[v->nseg - 1].n >= 2 ? 2 : 1;
        if (ls == 2 && v->seg[v->nseg - 1].n < 2) ls = 1;
    }
    for (int i = 0; i < nv && (fs || ls); i++) {
        const sj_val *v = &it->val[i];
        const unsigned char *a = (const unsigned char *)v->seg[0].s;
        const sj_seg *zs = &v->seg[v->nseg - 1];
        const unsigned char *z = (const unsigned char *)zs->s + zs->n - 1;
        if (fs) {
            unsigned k = sj_end_key(a[0], fs == 2 ? a[1] : 0, fs);
            it->first[k >> 6] |= (uint64_t)1 << (k & 63);
        }
        if (ls) {
            unsigned k = sj_end_key(ls == 2 ? z[-1] : z[0], z[0], ls);
            it->last[k >> 6] |= (uint64_t)1 << (k & 63);
        }
    }
    it->has_first = (uint8_t)fs;
    it->has_last = (uint8_t)ls;
    int cost = 0;
    for (int i = 0; i < nv; i++) cost += val_cost(&it->val[i]);
    it->cost = cost;
    return 0;
}

static int cmp_item(const void *a, const void *b) {
    const sj_item *x = a, *y = b;
    return (x->cost > y->cost) - (x->cost < y->cost);
}

static int compile_map(cstate *c, sj_map *m, yaml_node_t *n) {
    int cnt = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (cnt == 0) return skip(c, "empty selection map");
    m->item = sj_alloc(&c->r->arena, sizeof(sj_item) * (size_t)cnt);
    if (!m->item) return oom(c);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        if (!is_scalar(k)) return skip(c, "a field name is not a string");
        int rc = compile_item(c, &m->item[m->nitem], sval(k), slen(k), node(c, p->value));
        if (rc) return rc;
        m->nitem++;
    }
    /* Cheap checks first: an AND stops at the first miss.  Stable enough:
     * order among equal costs does not change the result. */
    qsort(m->item, (size_t)m->nitem, sizeof *m->item, cmp_item);
    return 0;
}

static int compile_sel(cstate *c, sj_sel *s, yaml_node_t *n) {
    if (!n) return skip(c, "selection '%s' is empty", s->name);
    if (n->type == YAML_MAPPING_NODE) {
        s->map = sj_alloc(&c->r->arena, sizeof(sj_map));
        if (!s->map) return oom(c);
        s->nmap = 1;
        return compile_map(c, s->map, n);
    }
    if (n->type == YAML_SCALAR_NODE) {
        if (is_null(n)) return skip(c, "selection '%s' is empty", s->name);
        s->map = sj_alloc(&c->r->arena, sizeof(sj_map));
        if (!s->map) return oom(c);
        s->map->item = sj_alloc(&c->r->arena, sizeof(sj_item));
        if (!s->map->item) return oom(c);
        s->nmap = s->map->nitem = 1;
        return compile_item(c, s->map->item, NULL, 0, n);
    }
    /* A list: maps are ORed; plain strings together form one keyword item. */
    int cnt = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return skip(c, "selection '%s' is an empty list", s->name);
    s->map = sj_alloc(&c->r->arena, sizeof(sj_map) * (size_t)(cnt + 1));
    if (!s->map) return oom(c);
    int nkw = 0;
    for (yaml_node_item_t *p = n->data.sequence.items.start; p < n->data.sequence.items.top; p++) {
        yaml_node_t *e = node(c, *p);
        if (!e) return skip(c, "selection '%s' has a broken element", s->name);
        if (e->type == YAML_MAPPING_NODE) {
            int rc = compile_map(c, &s->map[s->nmap++], e);
            if (rc) return rc;
        } else if (e->type == YAML_SCALAR_NODE) {
            nkw++;
        } else {
            return skip(c, "selection '%s' nests a list in a list", s->name);
        }
    }
    if (nkw) {
        sj_map *m = &s->map[s->nmap++];
        m->item = sj_alloc(&c->r->arena, sizeof(sj_item));
        if (!m->item) return oom(c);
        m->nitem = 1;
        sj_item *it = m->item;
        it->field = 0;
        it->val = sj_alloc(&c->r->arena, sizeof(sj_val) * (size_t)nkw);
        if (!it->val) return oom(c);
        for (yaml_node_item_t *p = n->data.sequence.items.start; p < n->data.sequence.items.top; p++) {
            yaml_node_t *e = node(c, *p);
            if (e->type != YAML_SCALAR_NODE) continue;
            if (++c->values > MAX_VALUES) return skip(c, "rule has more than %d values", MAX_VALUES);
            if (is_null(e)) return skip(c, "null keyword");
            int rc = compile_glob(c, &it->val[it->nval], sval(e), slen(e), 0, 1);
            if (rc) return rc;
            it->nval++;
        }
    }
    return 0;
}

/* ---- condition ------------------------------------------------------------- */

typedef struct cparse {
    cstate *c;
    const char *s;
    size_t pos, len;
    int depth;
} cparse;

typedef struct tok { int kind; const char *s; size_t n; } tok;
enum { T_END, T_ID, T_LP, T_RP, T_BAR, T_BAD };

static tok peek(cparse *p) {
    while (p->pos < p->len && isspace((unsigned char)p->s[p->pos])) p->pos++;
    tok t = {T_END, p->s + p->pos, 0};
    if (p->pos >= p->len) return t;
    char ch = p->s[p->pos];
    if (ch == '(') { t.kind = T_LP; t.n = 1; return t; }
    if (ch == ')') { t.kind = T_RP; t.n = 1; return t; }
    if (ch == '|') { t.kind = T_BAR; t.n = 1; return t; }
    size_t i = p->pos;
    while (i < p->len && (isalnum((unsigned char)p->s[i]) || strchr("_-.*", p->s[i]))) i++;
    if (i == p->pos) { t.kind = T_BAD; t.n = 1; return t; }
    t.kind = T_ID;
    t.n = i - p->pos;
    return t;
}
static void advance(cparse *p, tok t) { p->pos = (size_t)(t.s - p->s) + t.n; }
static int tok_is(tok t, const char *w) { return t.kind == T_ID && strlen(w) == t.n && !strncasecmp(t.s, w, t.n); }

static sj_cond *new_cond(cparse *p, int op, int nkid) {
    sj_cond *k = sj_alloc(&p->c->r->arena, sizeof *k);
    if (!k) { oom(p->c); return NULL; }
    k->op = op;
    k->nkid = nkid;
    if (nkid) {
        k->kid = sj_alloc(&p->c->r->arena, sizeof(sj_cond *) * (size_t)nkid);
        if (!k->kid) { oom(p->c); return NULL; }
    }
    return k;
}

/* Simple glob on selection names: '*' only. */
static int name_match(const char *pat, size_t pn, const char *name) {
    if (pn == 0) return !*name;
    if (*pat == '*') {
        for (const char *q = name;; q++) {
            if (name_match(pat + 1, pn - 1, q)) return 1;
            if (!*q) return 0;
        }
    }
    if (!*name || *pat != *name) return 0;
    return name_match(pat + 1, pn - 1, name + 1);
}

static sj_cond *parse_or(cparse *p);

static sj_cond *parse_factor(cparse *p) {
    cstate *c = p->c;
    if (++p->depth > MAX_COND_DEPTH) { skip(c, "condition nests too deeply"); return NULL; }
    tok t = peek(p);
    sj_cond *res = NULL;
    if (t.kind == T_BAR) { skip(c, "condition uses '|' aggregation"); goto out; }
    if (t.kind == T_LP) {
        advance(p, t);
        res = parse_or(p);
        if (!res) goto out;
        t = peek(p);
        if (t.kind != T_RP) { res = NULL; skip(c, t.kind == T_BAR ? "condition uses '|' aggregation" : "condition: missing ')'"); goto out; }
        advance(p, t);
        goto out;
    }
    if (t.kind != T_ID) { skip(c, "condition: unexpected %s", t.kind == T_END ? "end" : t.kind == T_RP ? "')'" : "character"); goto out; }
    if (tok_is(t, "not")) {
        advance(p, t);
        sj_cond *k = parse_factor(p);
        if (!k) goto out;
        res = new_cond(p, C_NOT, 1);
        if (res) res->kid[0] = k;
        goto out;
    }
    /* N of X / all of X / any of X */
    int n = -1;
    int is_all = tok_is(t, "all");
    int is_num = 1;
    for (size_t i = 0; i < t.n; i++) if (!isdigit((unsigned char)t.s[i])) is_num = 0;
    if (is_all || is_num || tok_is(t, "any")) {
        cparse save = *p;
        advance(p, t);
        tok of = peek(p);
        if (tok_is(of, "of")) {
            advance(p, of);
            tok pat = peek(p);
            if (pat.kind != T_ID) { skip(c, "condition: 'of' needs a name pattern or 'them'"); goto out; }
            advance(p, pat);
            int them = tok_is(pat, "them");
            int cnt = 0;
            for (int i = 0; i < c->r->nsel; i++) {
                const char *nm = c->r->sel[i].name;
                if (them ? nm[0] != '_' : name_match(pat.s, pat.n, nm)) cnt++;
            }
            if (cnt == 0) { skip(c, "condition: '%.*s' matches no selection", (int)(pat.n > 60 ? 60 : pat.n), pat.s); goto out; }
            if (is_num) {
                n = (t.n > 6) ? 1000000 : atoi(t.s);
                if (n < 1) { skip(c, "condition: '0 of' is not meaningful"); goto out; }
            }
            res = new_cond(p, C_NOF, cnt);
            if (!res) goto out;
            res->n = is_all ? cnt : n < 0 ? 1 : n;
            int k = 0;
            for (int i = 0; i < c->r->nsel; i++) {
                const char *nm = c->r->sel[i].name;
                if (!(them ? nm[0] != '_' : name_match(pat.s, pat.n, nm))) continue;
                sj_cond *leaf = new_cond(p, C_SEL, 0);
                if (!leaf) { res = NULL; goto out; }
                leaf->sel = i;
                res->kid[k++] = leaf;
            }
            goto out;
        }
        *p = save;
    }
    if (tok_is(t, "and") || tok_is(t, "or") || tok_is(t, "of")) {
        skip(c, "condition: unexpected '%.*s'", (int)t.n, t.s);
        goto out;
    }
    advance(p, t);
    for (int i = 0; i < c->r->nsel; i++)
        if (strlen(c->r->sel[i].name) == t.n && !strncmp(c->r->sel[i].name, t.s, t.n)) {
            res = new_cond(p, C_SEL, 0);
            if (res) res->sel = i;
            goto out;
        }
    skip(c, "condition names unknown selection '%.*s'", (int)(t.n > 60 ? 60 : t.n), t.s);
out:
    p->depth--;
    return res;
}

/* Left-assoc chain of OP-separated SUB expressions. */
static sj_cond *parse_chain(cparse *p, const char *word, int op, sj_cond *(*sub)(cparse *)) {
    sj_cond *first = sub(p);
    if (!first) return NULL;
    sj_cond *kids[256];
    int n = 0;
    kids[n++] = first;
    for (;;) {
        tok t = peek(p);
        if (!tok_is(t, word)) break;
        advance(p, t);
        sj_cond *k = sub(p);
        if (!k) return NULL;
        if (n == (int)NJ_ARRAY_LEN(kids)) { skip(p->c, "condition too long"); return NULL; }
        kids[n++] = k;
    }
    if (n == 1) return first;
    sj_cond *r = new_cond(p, op, n);
    if (!r) return NULL;
    memcpy(r->kid, kids, sizeof(sj_cond *) * (size_t)n);
    return r;
}
static sj_cond *parse_and(cparse *p) { return parse_chain(p, "and", C_AND, parse_factor); }
static sj_cond *parse_or(cparse *p) { return parse_chain(p, "or", C_OR, parse_and); }

static sj_cond *parse_condition(cstate *c, const char *s, size_t n) {
    if (n > MAX_COND_LEN) { skip(c, "condition longer than %d characters", MAX_COND_LEN); return NULL; }
    if (memchr(s, '|', n)) { skip(c, "condition uses '|' aggregation"); return NULL; }
    cparse p = {c, s, 0, n, 0};
    sj_cond *r = parse_or(&p);
    if (!r) return NULL;
    tok t = peek(&p);
    if (t.kind != T_END) {
        skip(c, "condition: unexpected '%.*s' after the expression", (int)(t.n > 40 ? 40 : t.n), t.s);
        return NULL;
    }
    return r;
}

/* ---- prefilter ------------------------------------------------------------------ */

/* Find an item that every match of condition C must satisfy and that has a
 * first/last byte set; keep the one with the fewest allowed bytes in *BEST.
 * Only AND, 'all of' and single-map selections pass necessity down. */
/* The literal piece of V whose bigrams are the best filter (the longest),
 * or NULL when V has none usable (cased, regex without literal, ...). */
static const sj_seg *bg_seg(const sj_val *v) {
    if ((v->kind != V_GLOB && v->kind != V_RE) || v->cased) return NULL;
    const sj_seg *best = NULL;
    for (uint32_t i = 0; i < v->nseg; i++)
        if (v->seg[i].n >= 2 && (!best || v->seg[i].n > best->n)) best = &v->seg[i];
    return best;
}

/* An item that every match of condition C must satisfy and that has
 * first/last byte sets, with the fewest allowed bytes.  Only AND, 'all of'
 * and single-map selections pass necessity down. */
static void find_mask(const sj_rule *r, const sj_cond *c, const sj_item **best, int *score) {
    switch (c->op) {
    case C_SEL: {
        const sj_sel *s = &r->sel[c->sel];
        if (s->nmap != 1) return;
        for (int i = 0; i < s->map->nitem; i++) {
            const sj_item *it = &s->map->item[i];
            if (!(it->has_first | it->has_last)) continue;
            int bits = 0;
            for (int k = 0; k < 4; k++)
                bits += __builtin_popcountll(it->has_last ? it->last[k] : it->first[k]);
            if (bits < *score) { *score = bits; *best = it; }
        }
        return;
    }
    case C_AND:
        for (int i = 0; i < c->nkid; i++) find_mask(r, c->kid[i], best, score);
        return;
    case C_NOF:
        if (c->n == c->nkid)
            for (int i = 0; i < c->nkid; i++) find_mask(r, c->kid[i], best, score);
        return;
    default:
        return;
    }
}

/* Alternatives (field, literal bigrams) of which every match of C needs at
 * least one; returns how many (<= SJ_ALT_MAX) or -1 when none can be said.
 * An item gives one per value (one in all with |all); a map its item with
 * the fewest; an OR (or 'N of') the union of its children's; an AND (or
 * 'all of') its child with the fewest; NOT gives up. */
typedef struct alts { int n; int field[SJ_ALT_MAX]; const sj_seg *seg[SJ_ALT_MAX]; } alts;

static int item_alts(const sj_item *it, alts *out) {
    int n = it->all ? 1 : it->nval;
    if (n <= 0 || n > SJ_ALT_MAX) return -1;
    for (int k = 0; k < n; k++) {
        const sj_seg *g = bg_seg(&it->val[k]);
        if (!g) return -1;
        out->field[k] = it->field;
        out->seg[k] = g;
    }
    out->n = n;
    return n;
}

static int cond_alts(const sj_rule *r, const sj_cond *c, alts *out) {
    out->n = 0;
    switch (c->op) {
    case C_SEL: {
        const sj_sel *s = &r->sel[c->sel];
        for (int m = 0; m < s->nmap; m++) {
            alts best = {-1, {0}, {0}}, cur;
            for (int i = 0; i < s->map[m].nitem; i++)
                if (item_alts(&s->map[m].item[i], &cur) > 0 && (best.n < 0 || cur.n < best.n)) best = cur;
            if (best.n < 0 || out->n + best.n > SJ_ALT_MAX) return -1;
            for (int k = 0; k < best.n; k++) {
                out->field[out->n] = best.field[k];
                out->seg[out->n++] = best.seg[k];
            }
        }
        return out->n;
    }
    case C_AND: case C_NOF: {
        int all = c->op == C_AND || c->n == c->nkid;
        alts cur;
        int got = -1;
        for (int i = 0; i < c->nkid; i++) {
            int k = cond_alts(r, c->kid[i], &cur);
            if (all) {
                if (k > 0 && (got < 0 || k < got)) { *out = cur; got = k; }
            } else {
                if (k < 0 || out->n + k > SJ_ALT_MAX) return -1;
                for (int j = 0; j < k; j++) {
                    out->field[out->n] = cur.field[j];
                    out->seg[out->n++] = cur.seg[j];
                }
                got = out->n;
            }
        }
        return got;
    }
    case C_OR: {
        alts cur;
        for (int i = 0; i < c->nkid; i++) {
            int k = cond_alts(r, c->kid[i], &cur);
            if (k < 0 || out->n + k > SJ_ALT_MAX) return -1;
            for (int j = 0; j < k; j++) {
                out->field[out->n] = cur.field[j];
                out->seg[out->n++] = cur.seg[j];
            }
        }
        return out->n;
    }
    default:
        return -1;
    }
}

/* ---- the literal prefilter (sigma_int.h) --------------------------------
 *
 * A condition is turned into a conjunction (CNF) of at most LG_MAX groups,
 * each an OR of literals: every event the condition matches has, in each
 * group, a literal that occurs in its field (case folded).  Keeping fewer
 * groups, or a group with more literals, only weakens the filter, so every
 * step may drop groups.  An item gives one group (the literal of each of its
 * values, or nothing if one value has none: null, exists, numbers, cidr,
 * fieldref, "*", a regex without a literal); with |all, one group per value.
 * AND concatenates; OR distributes ((a & b) | c = (a | c) & (b | c)); NOT
 * and "0 of" give nothing.  The work happens in a scratch arena; the result
 * is copied into the rule's. */

#define LG_MAX  4        /* groups kept per condition */
#define LG_LITS 4096     /* literals per group (a bigger group is dropped) */

typedef struct lgrp { int n; int score; sj_lit *l; } lgrp;
typedef struct lcnf { int n; lgrp g[LG_MAX]; } lcnf;
typedef struct lstate { sj_arena tmp; int oom; } lstate;


/* Lower-cased copy of (S, N) into the scratch arena as literal OUT. */
static int put_lit(lstate *ls, int field, const char *s, uint32_t n, sj_lit *out) {
    char *d = sj_alloc(&ls->tmp, n);
    if (!d) { ls->oom = 1; return 0; }
    for (uint32_t i = 0; i < n; i++) d[i] = (char)fold_ch((unsigned char)s[i]);
    out->field = field;
    out->n = n;
    out->s = d;
    return 1;
}

/* The literals of value V of which its matches need one in FIELD, into OUT
 * (room for val_nlits(V)); returns how many, 0 when V has none (null,
 * exists, numbers, cidr, fieldref, "*", a regex without a literal).  A glob
 * gives its longest piece; a regex the better of its literal set and its
 * single literal. */
static int val_nlits(const sj_val *v) {
    if (v->kind == V_RE && v->nneed) return (int)v->nneed;
    return 1;
}

static int val_lits(lstate *ls, const sj_val *v, int field, sj_lit *out) {
    if (v->kind != V_GLOB && v->kind != V_RE) return 0;
    const sj_seg *best = NULL;
    for (uint32_t i = 0; i < v->nseg; i++) if (!best || v->seg[i].n > best->n) best = &v->seg[i];
    if (best && best->n == 0) best = NULL;
    if (v->kind == V_RE && v->nneed) {
        int sc = 0;
        for (uint32_t i = 0; i < v->nneed; i++) sc += lit_weight(v->need[i].n);
        if (!best || sc < lit_weight(best->n)) {
            for (uint32_t i = 0; i < v->nneed; i++)
                if (!put_lit(ls, field, v->need[i].s, v->need[i].n, &out[i])) return 0;
            return (int)v->nneed;
        }
    }
    if (!best) return 0;
    return put_lit(ls, field, best->s, best->n, out);
}

/* Add group G to C, keeping the LG_MAX rarest. */
static void cnf_add(lcnf *c, const lgrp *g) {
    if (g->n <= 0 || g->n > LG_LITS) return;
    if (c->n < LG_MAX) { c->g[c->n++] = *g; return; }
    int worst = 0;
    for (int i = 1; i < c->n; i++) if (c->g[i].score > c->g[worst].score) worst = i;
    if (g->score < c->g[worst].score) c->g[worst] = *g;
}

static void cnf_and(lcnf *c, const lcnf *d) {
    for (int i = 0; i < d->n; i++) cnf_add(c, &d->g[i]);
}

/* C = C | D. */
static void cnf_or(lstate *ls, lcnf *c, const lcnf *d) {
    lcnf r = {0};
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < d->n; j++) {
            const lgrp *a = &c->g[i], *b = &d->g[j];
            if (a->n + b->n > LG_LITS) continue;
            lgrp u = {a->n + b->n, a->score + b->score, sj_alloc(&ls->tmp, sizeof(sj_lit) * (size_t)(a->n + b->n))};
            if (!u.l) { ls->oom = 1; continue; }
            memcpy(u.l, a->l, sizeof(sj_lit) * (size_t)a->n);
            memcpy(u.l + a->n, b->l, sizeof(sj_lit) * (size_t)b->n);
            cnf_add(&r, &u);
        }
    *c = r;
}

static void item_cnf(lstate *ls, const sj_item *it, lcnf *out) {
    out->n = 0;
    if (it->nval <= 0) return;
    int cap = 0;
    for (int i = 0; i < it->nval; i++) cap += val_nlits(&it->val[i]);
    if (cap > LG_LITS) return;
    lgrp g = {0, 0, sj_alloc(&ls->tmp, sizeof(sj_lit) * (size_t)cap)};
    if (!g.l) { ls->oom = 1; return; }
    for (int i = 0; i < it->nval; i++) {
        sj_lit *l = &g.l[g.n];
        int k = val_lits(ls, &it->val[i], it->field, l);
        if (!k) {
            if (it->all) continue;          /* the other values are needed all the same */
            return;
        }
        int sc = 0;
        for (int j = 0; j < k; j++) sc += lit_weight(l[j].n);
        if (it->all) {
            lgrp one = {k, sc, l};
            cnf_add(out, &one);
        } else {
            g.score += sc;
        }
        g.n += k;
    }
    if (!it->all) cnf_add(out, &g);
}

static void sel_cnf(lstate *ls, const sj_sel *s, lcnf *out) {
    out->n = 0;
    for (int m = 0; m < s->nmap; m++) {
        lcnf mc = {0}, ic;
        for (int i = 0; i < s->map[m].nitem; i++) {
            item_cnf(ls, &s->map[m].item[i], &ic);
            cnf_and(&mc, &ic);
        }
        if (m == 0) *out = mc;
        else cnf_or(ls, out, &mc);
        if (out->n == 0) return;
    }
}

static void cond_cnf(lstate *ls, const sj_rule *r, const sj_cond *c, lcnf *out, int depth) {
    out->n = 0;
    if (depth > MAX_COND_DEPTH) return;
    lcnf k;
    switch (c->op) {
    case C_SEL:
        sel_cnf(ls, &r->sel[c->sel], out);
        return;
    case C_AND: case C_NOF:
        if (c->op == C_NOF && c->n <= 0) return;
        if (c->op == C_AND || c->n >= c->nkid) {      /* all of them */
            for (int i = 0; i < c->nkid; i++) {
                cond_cnf(ls, r, c->kid[i], &k, depth + 1);
                cnf_and(out, &k);
            }
            return;
        }
        /* some of them: at least one, as for OR */
        /* fall through */
    case C_OR:
        for (int i = 0; i < c->nkid; i++) {
            cond_cnf(ls, r, c->kid[i], &k, depth + 1);
            if (i == 0) *out = k;
            else cnf_or(ls, out, &k);
            if (out->n == 0) return;
        }
        return;
    default:
        return;
    }
}

static int cmp_grp(const void *a, const void *b) {
    const lgrp *x = a, *y = b;
    return (x->score > y->score) - (x->score < y->score);
}

/* Derive R's literal prefilter (r->nlgroup, lgn, lit).  -ENOMEM or 0. */
static int set_lits(sj_rule *r) {
    lstate ls = {{NULL}, 0};
    lcnf c;
    cond_cnf(&ls, r, r->cond, &c, 0);
    int rc = 0;
    if (ls.oom) { rc = -ENOMEM; goto out; }
    qsort(c.g, (size_t)c.n, sizeof c.g[0], cmp_grp);      /* rarest group first */
    int total = 0;
    for (int i = 0; i < c.n; i++) total += c.g[i].n;
    r->nlgroup = 0;
    if (c.n == 0) goto out;
    r->lgn = sj_alloc(&r->arena, sizeof(int) * (size_t)c.n);
    r->lit = sj_alloc(&r->arena, sizeof(sj_lit) * (size_t)total);
    if (!r->lgn || !r->lit) { rc = -ENOMEM; goto out; }
    int w = 0;
    for (int i = 0; i < c.n; i++) {
        r->lgn[i] = c.g[i].n;
        for (int j = 0; j < c.g[i].n; j++) {
            const sj_lit *l = &c.g[i].l[j];
            char *s = sj_strndup(&r->arena, l->s, l->n);
            if (!s) { rc = -ENOMEM; goto out; }
            r->lit[w].field = l->field;
            r->lit[w].n = l->n;
            r->lit[w++].s = s;
        }
    }
    r->nlgroup = c.n;
out:
    sj_arena_free(&ls.tmp);
    return rc;
}

static void set_pre(sj_rule *r) {
    const sj_item *best = NULL;
    int score = 1 << 30;
    memset(&r->pre, 0, sizeof r->pre);
    r->pre.field = -1;
    find_mask(r, r->cond, &best, &score);
    if (best) {
        r->pre.field = best->field;
        r->pre.has_first = best->has_first;
        r->pre.has_last = best->has_last;
        memcpy(r->pre.first, best->first, sizeof r->pre.first);
        memcpy(r->pre.last, best->last, sizeof r->pre.last);
        return;
    }
    alts a;
    int n = cond_alts(r, r->cond, &a);
    if (n <= 0) return;
    for (int k = 0; k < n; k++) {
        r->pre.alt_field[k] = a.field[k];
        r->pre.alt_bg[k][0] = a.seg[k]->bg[0];
        r->pre.alt_bg[k][1] = a.seg[k]->bg[1];
    }
    r->pre.nalt = (uint8_t)n;
}

/* ---- the document ------------------------------------------------------------ */

int sj_compile(sigma_rules *rs, sj_rule *r, void *docp, char *why, size_t whylen) {
    cstate cs = {rs, r, docp, why, whylen, 0, 0, 0};
    cstate *c = &cs;
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root || root->type != YAML_MAPPING_NODE) { skip(c, "document is not a map"); return 1; }
    yaml_node_t *action = map_get(c, root, "action");
    if (is_scalar(action)) { skip(c, "rule collection (action: %.20s) not supported", sval(action)); return 1; }
    if (map_get(c, root, "correlation")) { skip(c, "correlation rules not supported"); return 1; }
    if (map_get(c, root, "filter") && !map_get(c, root, "detection")) { skip(c, "filter rules not supported"); return 1; }

    sigma_rule_info *in = &r->info;
    in->title = str_of(c, map_get(c, root, "title"), 0);
    in->id = str_of(c, map_get(c, root, "id"), 0);
    in->status = str_of(c, map_get(c, root, "status"), 1);
    if (c->oom) return -ENOMEM;
    if (!in->title[0]) { skip(c, "no title"); return 1; }
    yaml_node_t *lvl = map_get(c, root, "level");
    in->level = SIGMA_MEDIUM;
    if (is_scalar(lvl)) {
        in->level = parse_level(sval(lvl));
        if (in->level < 0) { skip(c, "unknown level '%.30s'", sval(lvl)); return 1; }
    }
    if (parse_tags(c, map_get(c, root, "tags")) < 0) return -ENOMEM;

    yaml_node_t *ls = map_get(c, root, "logsource");
    if (!ls || ls->type != YAML_MAPPING_NODE) { skip(c, "no logsource"); return 1; }
    in->product = str_of(c, map_get(c, ls, "product"), 1);
    in->category = str_of(c, map_get(c, ls, "category"), 1);
    in->service = str_of(c, map_get(c, ls, "service"), 1);
    if (c->oom) return -ENOMEM;
    if (in->product[0] && !known(known_products, in->product)) {
        skip(c, "unknown logsource product '%.30s'", in->product); return 1;
    }
    if (in->category[0] && !known(known_categories, in->category)) {
        skip(c, "unknown logsource category '%.40s'", in->category); return 1;
    }
    if (in->service[0] && !known(known_services, in->service)) {
        skip(c, "unknown logsource service '%.30s'", in->service); return 1;
    }
    if (!in->product[0] && !in->category[0] && !in->service[0]) {
        skip(c, "logsource names no product, category or service"); return 1;
    }

    yaml_node_t *det = map_get(c, root, "detection");
    if (!det || det->type != YAML_MAPPING_NODE) { skip(c, "no detection"); return 1; }
    yaml_node_t *cond = map_get(c, det, "condition");
    if (!cond) { skip(c, "detection has no condition"); return 1; }
    if (map_get(c, det, "timeframe")) { skip(c, "timeframe (aggregation) not supported"); return 1; }

    int cnt = (int)(det->data.mapping.pairs.top - det->data.mapping.pairs.start);
    r->sel = sj_alloc(&r->arena, sizeof(sj_sel) * (size_t)(cnt ? cnt : 1));
    if (!r->sel) return -ENOMEM;
    for (yaml_node_pair_t *p = det->data.mapping.pairs.start; p < det->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        if (!is_scalar(k)) { skip(c, "a selection name is not a string"); return 1; }
        if (!strcmp(sval(k), "condition")) continue;
        sj_sel *s = &r->sel[r->nsel++];
        s->name = str_of(c, k, 0);
        if (c->oom) return -ENOMEM;
        int rc = compile_sel(c, s, node(c, p->value));
        if (rc < 0) return rc;
        if (c->skipped) return 1;
    }
    if (r->nsel == 0) { skip(c, "detection has no selections"); return 1; }

    if (cond->type == YAML_SCALAR_NODE) {
        r->cond = parse_condition(c, sval(cond), slen(cond));
    } else if (cond->type == YAML_SEQUENCE_NODE) {
        int n = (int)(cond->data.sequence.items.top - cond->data.sequence.items.start);
        if (n == 0) { skip(c, "empty condition list"); return 1; }
        cparse p = {c, "", 0, 0, 0};
        sj_cond *orr = new_cond(&p, C_OR, n);
        if (!orr) return -ENOMEM;
        int i = 0;
        for (yaml_node_item_t *it = cond->data.sequence.items.start; it < cond->data.sequence.items.top; it++) {
            yaml_node_t *e = node(c, *it);
            if (!is_scalar(e)) { skip(c, "condition list holds a non-string"); return 1; }
            orr->kid[i] = parse_condition(c, sval(e), slen(e));
            if (!orr->kid[i]) break;
            i++;
        }
        r->cond = i == n ? orr : NULL;
    } else {
        skip(c, "condition is not a string or list");
    }
    if (c->oom) return -ENOMEM;
    if (!r->cond || c->skipped) { if (!c->skipped) skip(c, "bad condition"); return 1; }
    set_pre(r);
    return set_lits(r);
}
