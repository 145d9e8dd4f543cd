/*
 * sink — spec strings, the payload every sink sends, dispatch to the
 * implementations, and small shared helpers (byte buffer, ASCII-only JSON).
 *
 * The spec parser is strict: an unknown kind, option or value is an error
 * with a sentence, never a silent default, because a typo in a sink spec
 * would otherwise lose verdicts quietly.  Specs come from the operator's
 * configuration, but the parser still treats them as arbitrary bytes.
 */
#include "sink_impl.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- buffer --- */

void sbuf_add(sbuf *b, const void *data, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = nj_realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sbuf_str(sbuf *b, const char *s) { sbuf_add(b, s, strlen(s)); }

void sbuf_fmt(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { sbuf_add(b, tmp, (size_t)n); return; }
    char *big = nj_malloc((size_t)n + 1);
    if (!big) { b->oom = true; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sbuf_add(b, big, (size_t)n);
    nj_free(big);
}

void sbuf_free(sbuf *b) {
    nj_free(b->p);
    memset(b, 0, sizeof *b);
}

/* Decode one UTF-8 sequence at s (n bytes left): code point, or -1 for an
 * invalid sequence (then *used = 1). */
static long utf8_next(const unsigned char *s, size_t n, size_t *used) {
    unsigned c = s[0];
    size_t len;
    long cp;
    if (c < 0x80) { *used = 1; return c; }
    else if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else { *used = 1; return -1; }
    if (len > n) { *used = 1; return -1; }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) { *used = 1; return -1; }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const long min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) { *used = 1; return -1; }
    *used = len;
    return cp;
}

void sbuf_json_ascii(sbuf *b, const char *json, size_t n) {
    const unsigned char *s = (const unsigned char *)json;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && s[run] < 0x80) run++;
        sbuf_add(b, s + i, run - i);
        i = run;
        if (i >= n) break;
        size_t used;
        long cp = utf8_next(s + i, n - i, &used);
        if (cp < 0) cp = 0xfffd;
        if (cp >= 0x10000) {
            long v = cp - 0x10000;
            sbuf_fmt(b, "\\u%04lx\\u%04lx", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
        } else {
            sbuf_fmt(b, "\\u%04lx", cp);
        }
        i += used;
    }
}

void sink_set(sink_result *res, sink_status st, const char *fmt, ...) {
    res->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ payload --- */

int sink_payload(const spool_delivery *d, char **out, size_t *len) {
    const char *v = d->verdict_json ? d->verdict_json : "";
    const char *p = v;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != '{')
        return nj_fail(NJ_EFORMAT, "sink: verdict of seq %lld is not a JSON object",
                       (long long)d->seq);
    sbuf b = {0};
    if (d->redelivery) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        sbuf_str(&b, *q == '}' ? "{\"redelivery\":true" : "{\"redelivery\":true,");
        sbuf_str(&b, p + 1);
    } else {
        sbuf_str(&b, p);
    }
    if (b.oom) { sbuf_free(&b); return nj_fail(-ENOMEM, "sink: out of memory"); }
    /* Trailing whitespace off; line breaks (only possible between tokens)
     * to spaces. */
    while (b.len && (b.p[b.len - 1] == ' ' || b.p[b.len - 1] == '\n' ||
                     b.p[b.len - 1] == '\r' || b.p[b.len - 1] == '\t'))
        b.p[--b.len] = 0;
    for (size_t i = 0; i < b.len; i++)
        if (b.p[i] == '\n' || b.p[i] == '\r') b.p[i] = ' ';
    *out = b.p;
    *len = b.len;
    return 0;
}

/* --------------------------------------------------------- spec parse --- */

static const char *const facilities[] = {
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
};
static const char *const severities[] = {
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

static int parse_int(const char *v, long long lo, long long hi, long long *out) {
    if (!*v) return -1;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi || !isdigit((unsigned char)v[0])) return -1;
    *out = x;
    return 0;
}

static int parse_name_or_int(const char *v, const char *const *names, size_t n, int *out) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v, names[i])) { *out = (int)i; return 0; }
    long long x;
    if (parse_int(v, 0, (long long)n - 1, &x)) return -1;
    *out = (int)x;
    return 0;
}

/* Where the options begin: the first ',' followed by [a-z_]+ '='. */
static const char *options_start(const char *s) {
    for (const char *p = strchr(s, ','); p; p = strchr(p + 1, ',')) {
        const char *q = p + 1;
        while ((*q >= 'a' && *q <= 'z') || *q == '_') q++;
        if (q > p + 1 && *q == '=') return p;
    }
    return s + strlen(s);
}

static bool printable_ascii(const char *s, bool space_ok) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c > 0x7e) {
            if (!(space_ok && c == ' ')) return false;
        }
    }
    return true;
}

static int read_token_file(const char *path, char **out) {
    FILE *f = fopen(path, "re");
    if (!f) return nj_fail(-EINVAL, "sink spec: cannot read token_file %s: %s", path, strerror(errno));
    char line[4096];
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!got) return nj_fail(-EINVAL, "sink spec: token_file %s is empty", path);
    size_t n = strlen(line);
    while (n && isspace((unsigned char)line[n - 1])) line[--n] = 0;
    if (!n) return nj_fail(-EINVAL, "sink spec: token_file %s is empty", path);
    *out = nj_strdup(line);
    return *out ? 0 : nj_fail(-ENOMEM, "sink spec: out of memory");
}

/* Split HOST:PORT (HOST may be [v6]). */
static int parse_host_port(const char *t, sink_spec *o) {
    const char *colon;
    char host[256];
    if (t[0] == '[') {
        const char *close = strchr(t, ']');
        if (!close || close[1] != ':')
            return nj_fail(-EINVAL, "sink spec: bad [IPv6]:PORT in \"%s\"", t);
        size_t n = (size_t)(close - t - 1);
        if (n == 0 || n >= sizeof host) return nj_fail(-EINVAL, "sink spec: bad host in \"%s\"", t);
        memcpy(host, t + 1, n);
        host[n] = 0;
        colon = close + 1;
    } else {
        colon = strrchr(t, ':');
        if (!colon) return nj_fail(-EINVAL, "sink spec: \"%s\" needs HOST:PORT", t);
        size_t n = (size_t)(colon - t);
        if (n == 0 || n >= sizeof host) return nj_fail(-EINVAL, "sink spec: bad host in \"%s\"", t);
        memcpy(host, t, n);
        host[n] = 0;
        if (strchr(host, ':'))
            return nj_fail(-EINVAL, "sink spec: write an IPv6 host in brackets: [%s]", host);
    }
    if (!printable_ascii(host, false))
        return nj_fail(-EINVAL, "sink spec: bad host \"%s\"", host);
    long long port;
    if (parse_int(colon + 1, 1, 65535, &port))
        return nj_fail(-EINVAL, "sink spec: bad port \"%s\" (1..65535)", colon + 1);
    o->host = nj_strdup(host);
    o->port = (int)port;
    return o->host ? 0 : nj_fail(-ENOMEM, "sink spec: out of memory");
}

/* The URL without user:password@ (for the sink's name). */
static char *url_without_userinfo(const char *url) {
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end) return nj_strdup(url);
    const char *host = scheme_end + 3;
    size_t hostlen = strcspn(host, "/?#");
    /* userinfo ends at the last '@' of the authority (a password may hold
     * an unescaped '@' that URL parsers still accept) */
    const char *at = memrchr(host, '@', hostlen);
    if (!at) return nj_strdup(url);
    size_t pre = (size_t)(host - url);
    char *out = nj_malloc(strlen(url) + 1);
    if (!out) return NULL;
    memcpy(out, url, pre);
    strcpy(out + pre, at + 1);
    return out;
}

static int apply_option(sink_spec *o, const char *key, const char *val) {
    long long x;
    switch (o->kind) {
    case SINK_JSONL:
        if (!strcmp(key, "max_mb")) {
            if (parse_int(val, 0, 1 << 20, &x)) break;
            o->max_bytes = x << 20;
            return 0;
        }
        if (!strcmp(key, "keep")) {
            if (parse_int(val, 0, 1000, &x)) break;
            o->keep = (int)x;
            return 0;
        }
        return nj_fail(-EINVAL, "sink spec: jsonl has no option \"%s\" (max_mb, keep)", key);
    case SINK_SYSLOG:
        if (!strcmp(key, "facility")) {
            if (parse_name_or_int(val, facilities, NJ_ARRAY_LEN(facilities), &o->facility)) break;
            return 0;
        }
        if (!strcmp(key, "severity")) {
            if (parse_name_or_int(val, severities, NJ_ARRAY_LEN(severities), &o->severity)) break;
            return 0;
        }
        if (!strcmp(key, "app")) {
            if (!*val || strlen(val) > 48 || !printable_ascii(val, false)) break;
            nj_free(o->app);
            return (o->app = nj_strdup(val)) ? 0 : -ENOMEM;
        }
        if (!strcmp(key, "sd_id")) {
            const char *at = strchr(val, '@');
            if (!at || at == val || !at[1] || strlen(val) > 32 || !printable_ascii(val, false) ||
                strpbrk(val, "=]\""))
                return nj_fail(-EINVAL, "sink spec: sd_id must be NAME@PEN (at most 32 printable "
                               "characters, no '=', ']' or '\"'), not \"%s\"", val);
            nj_free(o->sd_id);
            return (o->sd_id = nj_strdup(val)) ? 0 : -ENOMEM;
        }
        return nj_fail(-EINVAL, "sink spec: syslog has no option \"%s\" (facility, severity, "
                       "app, sd_id)", key);
    case SINK_WEBHOOK:
        if (!strcmp(key, "preset")) {
            if (!strcmp(val, "plain")) o->preset = SINK_PLAIN;
            else if (!strcmp(val, "splunk")) o->preset = SINK_SPLUNK;
            else if (!strcmp(val, "elastic")) o->preset = SINK_ELASTIC;
            else return nj_fail(-EINVAL, "sink spec: preset \"%s\" is not plain, splunk or "
                                "elastic", val);
            return 0;
        }
        if (!strcmp(key, "token") || !strcmp(key, "token_file")) {
            if (!*val) break;
            nj_free(o->token);
            o->token = NULL;
            if (!strcmp(key, "token_file")) return read_token_file(val, &o->token);
            if (!printable_ascii(val, false))
                return nj_fail(-EINVAL, "sink spec: token has characters not allowed in a header");
            return (o->token = nj_strdup(val)) ? 0 : -ENOMEM;
        }
        if (!strcmp(key, "timeout_ms")) {
            if (parse_int(val, 100, 600000, &x)) break;
            o->timeout_ms = (int)x;
            return 0;
        }
        return nj_fail(-EINVAL, "sink spec: webhook has no option \"%s\" (preset, token, "
                       "token_file, timeout_ms)", key);
    }
    return nj_fail(-EINVAL, "sink spec: bad value \"%s\" for %s", val, key);
}

void sink_spec_free(sink_spec *s) {
    if (!s) return;
    nj_free(s->name);
    nj_free(s->path);
    nj_free(s->host);
    nj_free(s->app);
    nj_free(s->sd_id);
    nj_free(s->url);
    nj_free(s->token);
    memset(s, 0, sizeof *s);
}

int sink_spec_parse(const char *text, sink_spec *out) {
    memset(out, 0, sizeof *out);
    if (!text) return nj_fail(-EINVAL, "sink spec: missing");
    sink_spec o = {0};
    const char *rest;
    if (!strncmp(text, "jsonl:", 6)) { o.kind = SINK_JSONL; rest = text + 6; }
    else if (!strncmp(text, "syslog:", 7)) { o.kind = SINK_SYSLOG; rest = text + 7; }
    else if (!strncmp(text, "webhook:", 8)) { o.kind = SINK_WEBHOOK; rest = text + 8; }
    else return nj_fail(-EINVAL, "sink spec \"%.80s\": expected jsonl:, syslog: or webhook:", text);
    o.max_bytes = 100ll << 20;
    o.keep = 5;
    o.facility = 16;
    o.severity = 5;
    o.preset = SINK_PLAIN;
    o.timeout_ms = 10000;

    const char *opt = options_start(rest);
    size_t tlen = (size_t)(opt - rest);
    int rc = 0;
    char *target = nj_strndup(rest, tlen);
    char *opts = nj_strdup(*opt ? opt + 1 : "");
    if (!target || !opts) { rc = nj_fail(-ENOMEM, "sink spec: out of memory"); goto done; }
    if (!*target) { rc = nj_fail(-EINVAL, "sink spec \"%.80s\": empty target", text); goto done; }
    for (const char *p = target; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            rc = nj_fail(-EINVAL, "sink spec: control character in target");
            goto done;
        }

    sbuf name = {0};
    switch (o.kind) {
    case SINK_JSONL:
        o.path = nj_strdup(target);
        if (!o.path) rc = -ENOMEM;
        sbuf_str(&name, "jsonl:");
        sbuf_str(&name, target);
        break;
    case SINK_SYSLOG:
        if (!strncmp(target, "unix:", 5)) {
            o.transport = SINK_UNIX;
            if (!target[5]) rc = nj_fail(-EINVAL, "sink spec: syslog:unix: needs a socket path");
            else if (strlen(target + 5) >= 108)
                rc = nj_fail(-EINVAL, "sink spec: socket path too long (max 107 bytes)");
            else if (!(o.path = nj_strdup(target + 5))) rc = -ENOMEM;
        } else if (!strncmp(target, "udp:", 4) || !strncmp(target, "tcp:", 4)) {
            o.transport = target[0] == 'u' ? SINK_UDP : SINK_TCP;
            rc = parse_host_port(target + 4, &o);
        } else {
            rc = nj_fail(-EINVAL, "sink spec: syslog target \"%.80s\" is not unix:PATH, "
                         "udp:HOST:PORT or tcp:HOST:PORT", target);
        }
        sbuf_str(&name, "syslog:");
        sbuf_str(&name, target);
        break;
    case SINK_WEBHOOK: {
        if (strncmp(target, "http://", 7) && strncmp(target, "https://", 8)) {
            rc = nj_fail(-EINVAL, "sink spec: webhook URL must start with http:// or https://");
            break;
        }
        if (!printable_ascii(target, false)) {
            rc = nj_fail(-EINVAL, "sink spec: webhook URL has spaces or non-ASCII bytes");
            break;
        }
        o.url = nj_strdup(target);
        char *clean = url_without_userinfo(target);
        if (!o.url || !clean) rc = -ENOMEM;
        else {
            sbuf_str(&name, "webhook:");
            sbuf_str(&name, clean);
        }
        nj_free(clean);
        break;
    }
    }
    /* Options: key=value, comma separated. */
    for (char *save = NULL, *kv = strtok_r(opts, ",", &save); rc == 0 && kv;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) { rc = nj_fail(-EINVAL, "sink spec: option \"%s\" is not key=value", kv); break; }
        *eq = 0;
        rc = apply_option(&o, kv, eq + 1);
    }
    if (rc == 0 && o.kind == SINK_SYSLOG) {
        if (!o.app && !(o.app = nj_strdup("nightjar"))) rc = -ENOMEM;
        if (!o.sd_id && !(o.sd_id = nj_strdup("nightjar@32473"))) rc = -ENOMEM;
    }
    if (rc == 0 && o.kind == SINK_WEBHOOK && o.preset == SINK_SPLUNK && !o.token)
        rc = nj_fail(-EINVAL, "sink spec: preset=splunk needs token= or token_file= (the HEC token)");
    if (rc == 0 && name.oom) rc = -ENOMEM;
    o.name = name.p;
    if (rc == -ENOMEM) nj_fail(-ENOMEM, "sink spec: out of memory");
done:
    nj_free(target);
    nj_free(opts);
    if (rc) { sink_spec_free(&o); return rc; }
    *out = o;
    return 0;
}

/* ----------------------------------------------------------- dispatch --- */

static char *dup_or_null(const char *s, bool *oom) {
    if (!s) return NULL;
    char *d = nj_strdup(s);
    if (!d) *oom = true;
    return d;
}

int sink_base_init(sink *s, const struct sink_ops *ops, const sink_spec *spec) {
    bool oom = false;
    s->ops = ops;
    s->spec = *spec;
    s->spec.name = dup_or_null(spec->name, &oom);
    s->spec.path = dup_or_null(spec->path, &oom);
    s->spec.host = dup_or_null(spec->host, &oom);
    s->spec.app = dup_or_null(spec->app, &oom);
    s->spec.sd_id = dup_or_null(spec->sd_id, &oom);
    s->spec.url = dup_or_null(spec->url, &oom);
    s->spec.token = dup_or_null(spec->token, &oom);
    if (oom) {
        sink_spec_free(&s->spec);
        return nj_fail(-ENOMEM, "sink: out of memory");
    }
    return 0;
}

void sink_base_free(sink *s) {
    if (!s) return;
    sink_spec_free(&s->spec);
    nj_free(s);
}

sink *sink_open(const sink_spec *spec, int *err) {
    int e = -EINVAL;
    if (!spec || !spec->name) {
        nj_fail(e, "sink_open: no spec");
        if (err) *err = e;
        return NULL;
    }
    switch (spec->kind) {
    case SINK_JSONL:   return sink_jsonl_open(spec, err);
    case SINK_SYSLOG:  return sink_syslog_open(spec, err);
    case SINK_WEBHOOK: return sink_webhook_open(spec, err);
    }
    nj_fail(e, "sink_open: unknown kind %d", (int)spec->kind);
    if (err) *err = e;
    return NULL;
}

void sink_close(sink *s) {
    if (s) s->ops->close(s);
}

const char *sink_name(const sink *s) { return s->spec.name; }

int sink_send(sink *s, const spool_delivery *items, size_t n, sink_result *res) {
    if (!s || (n && (!items || !res))) return nj_fail(-EINVAL, "sink_send: bad arguments");
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) sink_set(&res[i], SINK_RETRY, "not attempted");
    s->ops->send(s, items, n, res);
    int ok = 0;
    for (size_t i = 0; i < n; i++) ok += res[i].status == SINK_OK;
    return ok;
}
