/*
 * parse — the format-independent half of the parsers: construction by
 * name, the emit path every event takes, error reporting, text helpers, and
 * the trivial `cmdline` format (one command line per line).
 */
#include "parse_internal.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *const parser_formats[] = {"eslogger", "auditd", "osquery", "sysmon", "sshd",
                                      "jsonl", "cmdline", NULL};

#define PT_DEFAULT_CAP   4096
#define PT_GRACE_SEC     30

/* ---- text helpers ---------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool nj_is_hex(const char *s, size_t n) {
    if (n == 0 || n % 2) return false;
    for (size_t i = 0; i < n; i++)
        if (hexval(s[i]) < 0) return false;
    return true;
}

long nj_hex_decode(const char *s, size_t n, char *out) {
    if (!nj_is_hex(s, n)) return -1;
    for (size_t i = 0; i < n / 2; i++) out[i] = (char)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    out[n / 2] = 0;
    return (long)(n / 2);
}

bool nj_parse_ll(const char *s, size_t n, long long *out) {
    if (n == 0 || n > 20) return false;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') { neg = true; i = 1; if (n == 1) return false; }
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned long long d = (unsigned long long)(s[i] - '0');
        if (v > (9223372036854775807ull - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? -(long long)v : (long long)v;
    return true;
}

size_t nj_chomp(const char *s, size_t n) {
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    return n;
}

const char *nj_memmem(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (hn < nn) return NULL;
    const char *end = h + hn - nn;
    for (const char *p = h; p <= end; p++) {
        p = memchr(p, nd[0], (size_t)(end - p) + 1);
        if (!p) return NULL;
        if (memcmp(p, nd, nn) == 0) return p;
    }
    return NULL;
}

/* ---- reporting and emitting ------------------------------------------ */

int parser_json_line(parser *p, const char *name, const char *line, size_t len, long lineno, json_t **out) {
    return parser_json_line_scratch(p, name, line, len, lineno, NULL, out);
}

int parser_json_line_scratch(parser *p, const char *name, const char *line, size_t len, long lineno,
                             event_scratch *scratch, json_t **out) {
    *out = NULL;
    len = nj_chomp(line, len);
    if (len == 0) return 0;
    json_error_t je;
    int rc;
    *out = scratch ? event_json_load_scratch(scratch, line, len, 0, &je, &rc) : event_json_load(line, len, 0, &je, &rc);
    if (*out) return 0;
    if (rc == -ENOMEM) return nj_fail(rc, "%s: out of memory", name);
    parser_bad(p, lineno, "invalid JSON at column %d: %s", je.column, je.text);
    return 0;
}

void parser_bad(parser *p, long lineno, const char *fmt, ...) {
    p->st.errors++;
    if (!p->o.on_error) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->o.on_error(p->o.ctx, p->source_name ? p->source_name : "-", lineno, msg);
}

json_t *parser_event(parser *p, const char *kind, const char *id, long lineno, int *err) {
    int rc = 0;
    json_t *ev = event_new(kind, id, &rc);
    if (!ev) goto err;
    if ((rc = event_set_str(ev, EF_SOURCE_FORMAT, p->vt->format, (size_t)-1)) ||
        (rc = event_set_str(ev, EF_SOURCE_NAME, p->source_name, (size_t)-1)) ||
        (lineno > 0 && (rc = event_set_int(ev, EF_SOURCE_LINE, lineno))))
        goto err;
    return ev;
err:
    return event_discard(ev, rc, err);
}

static int final_emit(void *ctx, json_t *ev) {
    parser *p = ctx;
    p->st.events++;
    int rc = p->o.emit(p->o.ctx, ev);
    if (rc) p->emit_failed = true;
    return rc;
}

int parser_emit(parser *p, json_t *ev, long lineno, const char *raw, size_t raw_len) {
    int rc;
    if (!event_get_str(ev, EF_HOST) && p->host && (rc = event_set_str(ev, EF_HOST, p->host, (size_t)-1)))
        goto fail;
    if (raw && !p->o.no_raw && (rc = event_set_raw(ev, raw, nj_chomp(raw, raw_len)))) goto fail;
    if ((rc = event_finish(ev))) goto fail;
    if (p->pt && (rc = proctable_apply(p->pt, ev))) goto fail;
    if ((rc = event_validate(ev))) {
        parser_bad(p, lineno, "event rejected by the schema: %s", nj_last_error());
        json_decref(ev);
        return 0;
    }
    if (p->agg) return aggregate_push(p->agg, ev);
    return final_emit(p, ev);
fail:
    json_decref(ev);
    return rc;
}

/* ---- the cmdline format ---------------------------------------------- */

typedef struct cmdline_parser { parser base; } cmdline_parser;

static int cmdline_feed(parser *p, const char *line, size_t len, long lineno) {
    size_t n = nj_chomp(line, len);
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == n) return 0;                               /* blank lines are not events */
    int rc;
    json_t *ev = event_from_cmdline(line, n, lineno, &rc);
    if (!ev) {
        if (rc == -ENOMEM) return rc;
        parser_bad(p, lineno, "%s", nj_last_error());
        return 0;
    }
    if ((rc = event_set_str(ev, EF_SOURCE_NAME, p->source_name, (size_t)-1)) ||
        (rc = event_set_int(ev, EF_SOURCE_LINE, lineno))) {
        json_decref(ev);
        return rc;
    }
    return parser_emit(p, ev, lineno, NULL, 0);
}
static int cmdline_flush(parser *p) { (void)p; return 0; }
static void cmdline_destroy(parser *p) { (void)p; }
static const parser_vt cmdline_vt = {"cmdline", cmdline_feed, cmdline_flush, cmdline_destroy};

parser *parse_cmdline_new(int *err) {
    cmdline_parser *c = nj_calloc(1, sizeof *c);
    if (!c) { if (err) *err = nj_fail(-ENOMEM, "parser: out of memory"); return NULL; }
    c->base.vt = &cmdline_vt;
    return &c->base;
}

/* ---- construction ---------------------------------------------------- */

parser *parser_new(const char *format, const parser_opts *o, int *err) {
    event_init();
    int rc = -EINVAL;
    parser *p = NULL;
    if (!o || !o->emit) { nj_fail(rc, "parser: options with an emit callback are required"); goto err; }
    if (!format) format = "";
    bool wants_pt = false, wants_agg = false;
    if (strcmp(format, "auditd") == 0) { p = parse_auditd_new(&rc); wants_pt = true; }
    else if (strcmp(format, "eslogger") == 0) { p = parse_eslogger_new(&rc); wants_pt = true; }
    else if (strcmp(format, "osquery") == 0) { p = parse_osquery_new(&rc); wants_pt = true; }
    else if (strcmp(format, "sysmon") == 0) p = parse_sysmon_new(&rc);
    else if (strcmp(format, "sshd") == 0) { p = parse_sshd_new(&rc); wants_agg = true; }
    else if (strcmp(format, "jsonl") == 0) p = parse_jsonl_new(o, &rc);
    else if (strcmp(format, "cmdline") == 0) p = parse_cmdline_new(&rc);
    else {
        nj_fail(rc, "parser: unknown format '%.64s' (eslogger|auditd|osquery|sysmon|sshd|jsonl|cmdline)", format);
        goto err;
    }
    if (!p) goto err;
    p->o = *o;
    p->o.source_name = p->o.host = p->o.mapping_json = p->o.mapping_file = NULL;
    rc = -ENOMEM;
    if ((o->source_name && !(p->source_name = nj_strdup(o->source_name))) ||
        (o->host && !(p->host = nj_strdup(o->host)))) {
        nj_fail(rc, "parser: out of memory");
        goto err;
    }
    p->o.source_name = p->source_name;
    p->o.host = p->host;
    p->ref_time = o->reference_time;
    if (!p->ref_time) p->ref_time = (int64_t)time(NULL);
    if (wants_pt) {
        if (o->procs) {
            p->pt = o->procs;
        } else if (o->proc_capacity >= 0) {
            p->pt = proctable_new(o->proc_capacity ? (size_t)o->proc_capacity : PT_DEFAULT_CAP, PT_GRACE_SEC, &rc);
            if (!p->pt) goto err;
            p->own_pt = true;
        }
    }
    if (wants_agg && o->agg_threshold >= 0) {
        p->agg = aggregate_new(o->agg_window > 0 ? o->agg_window : 60,
                               o->agg_threshold > 0 ? o->agg_threshold : 5, final_emit, p, &rc);
        if (!p->agg) goto err;
    }
    return p;
err:
    parser_free(p);
    if (err) *err = rc;
    return NULL;
}

int parser_feed(parser *p, const char *line, size_t len, long lineno) {
    if (!p || (!line && len)) return nj_fail(-EINVAL, "parser_feed: no parser or line");
    p->st.lines++;
    p->emit_failed = false;
    int rc = p->vt->feed(p, line ? line : "", len, lineno);
    /* safety net: a value the schema refuses (-EINVAL from a setter) that a
     * module did not catch is a bad line, not a failure of the caller's */
    if (rc == -EINVAL && !p->emit_failed) {
        parser_bad(p, lineno, "%s", nj_last_error());
        rc = 0;
    }
    return rc;
}

int parser_flush(parser *p) {
    if (!p) return 0;
    int rc = p->vt->flush(p);
    if (p->agg) {
        int r = aggregate_flush(p->agg);
        if (!rc) rc = r;
    }
    return rc;
}

void parser_free(parser *p) {
    if (!p) return;
    p->vt->destroy(p);
    aggregate_free(p->agg);
    if (p->own_pt) proctable_free(p->pt);
    nj_free(p->source_name);
    nj_free(p->host);
    nj_free(p);
}

void parser_get_stats(const parser *p, parser_stats *out) {
    if (p) *out = p->st; else memset(out, 0, sizeof *out);
}
