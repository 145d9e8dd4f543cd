/*
 * parse_sshd — OpenSSH server logs to auth / login / logout events.
 *
 * Line forms (detected per line, so a file may mix them):
 *   RFC 3164   "Dec 10 06:55:46 host sshd[24200]: MSG"       (no year, no zone)
 *   RFC 5424   "<38>1 2026-12-07T11:22:33.123Z host sshd 24200 - - MSG"
 *   ISO syslog "2026-12-07T11:22:33.123456+01:00 host sshd[24200]: MSG"
 *   macOS      "2020-03-23 06:47:42.801612-0700  localhost sshd[3186]: MSG"
 *              (`log show --style syslog`), and `log show`'s default style
 *              "2020-03-23 06:47:42.801612-0700 0x1f2a  Default  0x0  3186
 *              0  sshd: MSG" (thread, type, activity, pid, ttl; no host)
 *   journald   one JSON object per line from `journalctl -o json`
 *              (SYSLOG_IDENTIFIER, MESSAGE, _PID, __REALTIME_TIMESTAMP in
 *              microseconds, _HOSTNAME)
 * The program must be sshd (or sshd-session / sshd-auth, OpenSSH >= 9.8);
 * lines of other programs are skipped silently (an auth.log is mostly
 * other programs), as are sshd messages that carry no authentication fact.
 * A line that has no recognisable header is reported.
 *
 * Time.  RFC 3164 has no year: we take the latest year that puts the stamp
 * no later than reference_time + 1 day (so a December line read in January
 * lands in the previous year).  Stamps without a zone (RFC 3164, ISO
 * without offset) are local time at tz_offset_min minutes east of UTC.
 *
 * Messages -> events (auth.service "sshd" throughout):
 *   Accepted METHOD for U from IP port P ssh2[: KEYTYPE FP]  auth success
 *   Failed METHOD for [invalid user ]U from IP port P ssh2   auth failure
 *   Invalid user U from IP[ port P]                          auth failure, invalid_user
 *   pam_unix(sshd:auth): authentication failure; ... rhost=IP user=U
 *                                                            auth failure, method "pam"
 *   pam_unix(sshd:session): session opened|closed for user U login | logout
 *   Disconnected from [user U |invalid user U |authenticating user U ]IP port P
 *   Connection closed by [...]IP port P, Received disconnect from IP port P
 *                                                            logout
 * "message repeated N times: [ MSG ]" is read as MSG.
 */
#include "parse_internal.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

typedef struct sshd_parser { parser base; } sshd_parser;

typedef struct sysline {
    int64_t sec; long usec;
    const char *host; size_t host_len;
    const char *prog; size_t prog_len;
    long long pid;                      /* -1 if none */
    const char *msg; size_t msg_len;
} sysline;

static const char *const k_mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int num(const char *s, size_t n, size_t *i, int maxd, long long *out) {
    long long v = 0;
    int d = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9' && d < maxd) { v = v * 10 + (s[*i] - '0'); (*i)++; d++; }
    *out = v;
    return d;
}

static void skip_sp(const char *s, size_t n, size_t *i) { while (*i < n && s[*i] == ' ') (*i)++; }

/* "host prog[pid]: msg" or, for RFC 5424, "host prog pid msgid sd msg". */
static bool parse_tail(const char *s, size_t n, size_t i, bool rfc5424, sysline *L) {
    skip_sp(s, n, &i);
    size_t b = i;
    while (i < n && s[i] != ' ') i++;
    if (i == b || i >= n) return false;
    L->host = s + b; L->host_len = i - b;
    skip_sp(s, n, &i);
    b = i;
    L->pid = -1;
    if (rfc5424) {
        while (i < n && s[i] != ' ') i++;
        L->prog = s + b; L->prog_len = i - b;
        skip_sp(s, n, &i);
        long long pid;
        size_t pb = i;
        if (num(s, n, &i, 10, &pid) && (i == n || s[i] == ' ')) L->pid = pid;
        else { i = pb; while (i < n && s[i] != ' ') i++; }
        for (int k = 0; k < 2; k++) {                 /* MSGID, STRUCTURED-DATA */
            skip_sp(s, n, &i);
            if (i < n && s[i] == '[') { while (i < n && s[i] != ']') i++; if (i < n) i++; }
            else while (i < n && s[i] != ' ') i++;
        }
        skip_sp(s, n, &i);
        if (i + 3 <= n && (unsigned char)s[i] == 0xEF && (unsigned char)s[i + 1] == 0xBB && (unsigned char)s[i + 2] == 0xBF) i += 3;
        L->msg = s + i; L->msg_len = n - i;
        return L->prog_len > 0;
    }
    while (i < n && s[i] != '[' && s[i] != ':' && s[i] != ' ') i++;
    L->prog = s + b; L->prog_len = i - b;
    if (i < n && s[i] == '[') {
        i++;
        long long pid;
        if (!num(s, n, &i, 10, &pid) || i >= n || s[i] != ']') return false;
        L->pid = pid;
        i++;
    }
    if (i >= n || s[i] != ':') return false;
    i++;
    skip_sp(s, n, &i);
    L->msg = s + i; L->msg_len = n - i;
    return L->prog_len > 0;
}

/* ISO date-time at s[i..]: "YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|+HH:MM|+HHMM]". */
static bool parse_iso(const char *s, size_t n, size_t *i, int tz_min, int64_t *sec, long *usec) {
    long long Y, M, D, h, m, x;
    size_t j = *i;
    if (num(s, n, &j, 4, &Y) != 4 || j >= n || s[j++] != '-' || num(s, n, &j, 2, &M) != 2 || j >= n ||
        s[j++] != '-' || num(s, n, &j, 2, &D) != 2 || j >= n || (s[j] != 'T' && s[j] != ' '))
        return false;
    j++;
    if (num(s, n, &j, 2, &h) != 2 || j >= n || s[j++] != ':' || num(s, n, &j, 2, &m) != 2 || j >= n ||
        s[j++] != ':' || num(s, n, &j, 2, &x) != 2)
        return false;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || x > 60) return false;
    long us = 0;
    if (j < n && (s[j] == '.' || s[j] == ',')) {
        j++;
        int d = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9') { if (d < 6) us = us * 10 + (s[j] - '0'); d++; j++; }
        for (; d < 6; d++) us *= 10;
    }
    long off = tz_min * 60L;
    if (j < n && s[j] == 'Z') { off = 0; j++; }
    else if (j < n && (s[j] == '+' || s[j] == '-')) {
        int sign = s[j] == '-' ? -1 : 1;
        size_t k = j + 1;
        long long oh, om;
        if (num(s, n, &k, 2, &oh) == 2) {
            if (k < n && s[k] == ':') k++;
            if (num(s, n, &k, 2, &om) == 2) { off = sign * (long)(oh * 3600 + om * 60); j = k; }
        }
    }
    if (x == 60) x = 59;
    *sec = event_days_from_civil(Y, (int)M, (int)D) * 86400 + h * 3600 + m * 60 + x - off;
    *usec = us;
    *i = j;
    return true;
}

/* `log show` default style after the timestamp:
 * "0x1f2a     Default     0x0    3186   0    sshd: MESSAGE"
 * (thread, type, activity, pid, ttl, process).  No host column. */
static bool parse_log_show(const char *s, size_t n, size_t i, sysline *L) {
    skip_sp(s, n, &i);
    if (i + 2 >= n || s[i] != '0' || s[i + 1] != 'x') return false;
    while (i < n && s[i] != ' ') i++;                 /* thread */
    skip_sp(s, n, &i);
    while (i < n && s[i] != ' ') i++;                 /* type */
    skip_sp(s, n, &i);
    if (i + 2 >= n || s[i] != '0' || s[i + 1] != 'x') return false;
    while (i < n && s[i] != ' ') i++;                 /* activity */
    skip_sp(s, n, &i);
    long long pid, ttl;
    if (!num(s, n, &i, 10, &pid) || i >= n || s[i] != ' ') return false;
    skip_sp(s, n, &i);
    if (!num(s, n, &i, 10, &ttl) || i >= n || s[i] != ' ') return false;
    skip_sp(s, n, &i);
    size_t b = i;
    while (i < n && s[i] != ':' && s[i] != ' ') i++;
    if (i >= n || s[i] != ':' || i == b) return false;
    L->prog = s + b; L->prog_len = i - b;
    L->pid = pid;
    L->host = NULL; L->host_len = 0;
    i++;
    skip_sp(s, n, &i);
    L->msg = s + i; L->msg_len = n - i;
    return true;
}

static bool parse_syslog(const parser *p, const char *s, size_t n, sysline *L) {
    memset(L, 0, sizeof *L);
    size_t i = 0;
    bool rfc5424 = false;
    if (n && s[0] == '<') {                           /* <PRI>[VERSION ] */
        i = 1;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i >= n || s[i] != '>') return false;
        i++;
        if (i + 1 < n && s[i] >= '1' && s[i] <= '9' && s[i + 1] == ' ') { rfc5424 = true; i += 2; }
    }
    if (i + 3 < n && s[i + 3] == ' ' && !(s[i] >= '0' && s[i] <= '9')) {   /* RFC 3164 */
        int mon = -1;
        for (int k = 0; k < 12; k++) if (!memcmp(s + i, k_mon[k], 3)) mon = k;
        if (mon < 0) return false;
        i += 4;
        skip_sp(s, n, &i);
        long long d, h, m, x;
        if (!num(s, n, &i, 2, &d) || i >= n || s[i++] != ' ' || num(s, n, &i, 2, &h) != 2 || i >= n ||
            s[i++] != ':' || num(s, n, &i, 2, &m) != 2 || i >= n || s[i++] != ':' || num(s, n, &i, 2, &x) != 2)
            return false;
        if (d < 1 || d > 31 || h > 23 || m > 59 || x > 60) return false;
        long us = 0;
        if (i < n && s[i] == '.') {                   /* high-precision variant */
            i++;
            int dd = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9') { if (dd < 6) us = us * 10 + (s[i] - '0'); dd++; i++; }
            for (; dd < 6; dd++) us *= 10;
        }
        int64_t ref = p->ref_time;
        int64_t days = ref / 86400;
        int64_t y; int rm, rd;
        /* year of the reference time */
        {
            int64_t z = days + 719468;
            int64_t era = (z >= 0 ? z : z - 146096) / 146097;
            int64_t doe = z - era * 146097;
            int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
            int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            int64_t mp = (5 * doy + 2) / 153;
            rd = (int)(doy - (153 * mp + 2) / 5 + 1);
            rm = (int)(mp < 10 ? mp + 3 : mp - 9);
            y = yoe + era * 400 + (rm <= 2);
        }
        (void)rd;
        if (x == 60) x = 59;
        int64_t t = 0;
        for (int back = 0; back < 2; back++) {
            t = event_days_from_civil(y - back, mon + 1, (int)d) * 86400 + h * 3600 + m * 60 + x -
                p->o.tz_offset_min * 60LL;
            if (t <= ref + 86400) break;
        }
        L->sec = t; L->usec = us;
        return parse_tail(s, n, i, false, L);
    }
    if (!parse_iso(s, n, &i, p->o.tz_offset_min, &L->sec, &L->usec)) return false;
    if (!rfc5424 && parse_log_show(s, n, i, L)) return true;
    return parse_tail(s, n, i, rfc5424, L);
}

/* ---- message matching ---------------------------------------------------- */

typedef struct cur { const char *s; size_t n, i; } cur;

static bool lit(cur *c, const char *t) {
    size_t k = strlen(t);
    if (c->n - c->i < k || memcmp(c->s + c->i, t, k) != 0) return false;
    c->i += k;
    return true;
}
static bool word(cur *c, const char **w, size_t *wn) {
    size_t b = c->i;
    while (c->i < c->n && c->s[c->i] != ' ') c->i++;
    *w = c->s + b; *wn = c->i - b;
    return *wn > 0;
}
static bool port(cur *c, long long *pt) {
    size_t save = c->i;
    if (!lit(c, " port ")) return false;
    size_t i = c->i;
    long long v;
    if (!num(c->s, c->n, &i, 5, &v) || v > 65535) { c->i = save; return false; }
    *pt = v;
    c->i = i;
    return true;
}

/* Last occurrence of nd in h: user names are logged verbatim and may
 * themselves contain " from " or " port ", so the peer is what follows the
 * last one (a name cannot fake the address). */
static const char *last_of(const char *h, size_t hn, const char *nd) {
    const char *last = NULL, *p = h;
    size_t nn = strlen(nd);
    while ((p = nj_memmem(p, hn - (size_t)(p - h), nd, nn))) { last = p; p++; }
    return last;
}

typedef struct facts {
    const char *kind, *result, *method;
    const char *user; size_t user_len;
    const char *ip; size_t ip_len;
    long long port;
    bool invalid;
    const char *ktype; size_t ktype_len;
    const char *fp; size_t fp_len;
    char mbuf[64];
} facts;

/* "[user U |invalid user U |authenticating user U ]IP port P" (used by the
 * disconnect messages).  The user name may contain spaces in theory; sshd
 * logs it verbatim, so we take everything up to the last " IP port". */
static bool peer_tail(cur *c, facts *f) {
    if (lit(c, "invalid user ")) f->invalid = true;
    else if (!lit(c, "authenticating user ")) lit(c, "user ");
    size_t save = c->i;
    /* find the last " port " and take the word before it as the address */
    const char *pp = last_of(c->s + c->i, c->n - c->i, " port ");
    if (!pp) {                                        /* "Received disconnect from IP: 11: ..." */
        const char *w; size_t wn;
        word(c, &w, &wn);
        while (wn && (w[wn - 1] == ':')) wn--;
        f->ip = w; f->ip_len = wn;
        return wn > 0;
    }
    size_t pe = (size_t)(pp - c->s);
    size_t ib = pe;
    while (ib > save && c->s[ib - 1] != ' ') ib--;
    if (ib > save) { f->user = c->s + save; f->user_len = ib - 1 - save; }
    f->ip = c->s + ib; f->ip_len = pe - ib;
    c->i = pe;
    port(c, &f->port);
    return f->ip_len > 0;
}

static bool match_msg(const char *s, size_t n, facts *f) {
    memset(f, 0, sizeof *f);
    f->port = -1;
    cur c = {s, n, 0};
    const char *w; size_t wn;
    if (lit(&c, "Accepted ") || lit(&c, "Failed ")) {
        bool ok = s[0] == 'A';
        if (!word(&c, &w, &wn) || !lit(&c, " for ")) return false;
        f->kind = "auth"; f->result = ok ? "success" : "failure";
        snprintf(f->mbuf, sizeof f->mbuf, "%.*s", (int)NJ_MIN(wn, 63), w);
        f->method = f->mbuf;
        if (lit(&c, "invalid user ")) f->invalid = true;
        const char *fr = last_of(s + c.i, n - c.i, " from ");
        if (!fr) return false;
        f->user = s + c.i; f->user_len = (size_t)(fr - (s + c.i));
        c.i = (size_t)(fr - s) + 6;
        if (!word(&c, &w, &wn)) return false;
        f->ip = w; f->ip_len = wn;
        port(&c, &f->port);
        if (lit(&c, " ssh2: ")) {
            if (word(&c, &w, &wn)) { f->ktype = w; f->ktype_len = wn; }
            if (lit(&c, " ") && word(&c, &w, &wn)) { f->fp = w; f->fp_len = wn; }
        }
        return true;
    }
    if (lit(&c, "Invalid user ")) {
        const char *fr = last_of(s + c.i, n - c.i, " from ");
        if (!fr) return false;
        f->kind = "auth"; f->result = "failure"; f->invalid = true;
        f->user = s + c.i; f->user_len = (size_t)(fr - (s + c.i));
        c.i = (size_t)(fr - s) + 6;
        if (!word(&c, &w, &wn)) return false;
        f->ip = w; f->ip_len = wn;
        port(&c, &f->port);
        return true;
    }
    if (lit(&c, "pam_unix(sshd:auth): authentication failure;")) {
        f->kind = "auth"; f->result = "failure"; f->method = "pam";
        const char *r = nj_memmem(s, n, " rhost=", 7);
        if (r) {
            cur d = {s, n, (size_t)(r - s) + 7};
            if (word(&d, &w, &wn)) { f->ip = w; f->ip_len = wn; }
        }
        const char *u = nj_memmem(s, n, " user=", 6);
        if (u) {
            cur d = {s, n, (size_t)(u - s) + 6};
            if (word(&d, &w, &wn)) { f->user = w; f->user_len = wn; }
        }
        return true;
    }
    if (lit(&c, "pam_unix(sshd:session): session ")) {
        bool open = lit(&c, "opened for user ");
        if (!open && !lit(&c, "closed for user ")) return false;
        f->kind = open ? "login" : "logout";
        f->result = "success";
        word(&c, &w, &wn);
        const char *par = memchr(w, '(', wn);          /* "alice(uid=1000)" */
        if (par) wn = (size_t)(par - w);
        f->user = w; f->user_len = wn;
        return wn > 0;
    }
    if (lit(&c, "Disconnected from ") || lit(&c, "Connection closed by ") || lit(&c, "Received disconnect from ")) {
        f->kind = "logout";
        return peer_tail(&c, f);
    }
    return false;
}

static bool is_sshd(const char *p, size_t n) {
    return (n == 4 && !memcmp(p, "sshd", 4)) || (n == 12 && !memcmp(p, "sshd-session", 12)) ||
           (n == 9 && !memcmp(p, "sshd-auth", 9));
}

static int emit_facts(parser *p, const sysline *L, const facts *f, long lineno, const char *raw, size_t raw_len) {
    char id[256];
    const char *hn = L->host_len ? L->host : "-";
    snprintf(id, sizeof id, "sshd:%.*s:%lld.%06ld:%lld:%ld", (int)NJ_MIN(L->host_len ? L->host_len : 1, 100), hn,
             (long long)L->sec, L->usec, L->pid, lineno);
    int rc;
    json_t *ev = parser_event(p, f->kind, id, lineno, &rc);
    if (!ev) return rc;
    bool local = L->host_len == 0 || (L->host_len == 1 && L->host[0] == '-');
    if ((rc = event_set_time(ev, L->sec, L->usec)) ||
        (!local && (rc = event_set_str(ev, EF_HOST, L->host, L->host_len))) ||
        (L->pid >= 0 && L->pid <= 4294967295LL && (rc = event_set_int(ev, EF_PROC_PID, L->pid))) ||
        (rc = event_set_str(ev, EF_PROC_NAME, L->prog, L->prog_len)) ||
        (rc = event_set_str(ev, EF_AUTH_SERVICE, "sshd", 4)) ||
        (f->result && (rc = event_set_str(ev, EF_AUTH_RESULT, f->result, (size_t)-1))) ||
        (f->method && (rc = event_set_str(ev, EF_AUTH_METHOD, f->method, (size_t)-1))) ||
        (rc = event_set_str(ev, EF_AUTH_USER, f->user, f->user_len)) ||
        (rc = event_set_str(ev, EF_USER_NAME, f->user, f->user_len)) ||
        (rc = event_set_str(ev, EF_AUTH_SRC_IP, f->ip, f->ip_len)) ||
        (f->port >= 0 && (rc = event_set_int(ev, EF_AUTH_SRC_PORT, f->port))) ||
        (f->invalid && (rc = event_set_bool(ev, EF_AUTH_INVALID_USER, true))) ||
        (rc = event_set_str(ev, EF_AUTH_KEY_TYPE, f->ktype, f->ktype_len)) ||
        (rc = event_set_str(ev, EF_AUTH_KEY_FP, f->fp, f->fp_len))) {
        json_decref(ev);
        return rc;
    }
    if (f->invalid) event_unset(ev, EF_USER_NAME);    /* not an account of this host */
    return parser_emit(p, ev, lineno, raw, raw_len);
}

static int handle(parser *p, sysline *L, long lineno, const char *raw, size_t raw_len) {
    if (!is_sshd(L->prog, L->prog_len)) return 0;
    const char *m = L->msg;
    size_t mn = L->msg_len;
    if (mn > 17 && !memcmp(m, "message repeated ", 17)) {
        const char *b = memchr(m, '[', mn);
        if (b) {
            mn -= (size_t)(b + 1 - m);
            m = b + 1;
            while (mn && m[0] == ' ') { m++; mn--; }
            while (mn && (m[mn - 1] == ']' || m[mn - 1] == ' ')) mn--;
        }
    }
    facts f;
    if (!match_msg(m, mn, &f)) return 0;
    return emit_facts(p, L, &f, lineno, raw, raw_len);
}

/* journalctl -o json: one object per line. */
static int feed_journal(parser *p, const char *line, size_t len, long lineno) {
    json_error_t je;
    int rc;
    json_t *j = event_json_load(line, len, 0, &je, &rc);
    if (!j) {
        if (rc == -ENOMEM) return nj_fail(rc, "sshd: out of memory");
        parser_bad(p, lineno, "journal JSON: %s", je.text);
        return 0;
    }
    rc = 0;
    sysline L;
    memset(&L, 0, sizeof L);
    const char *ident = json_string_value(json_object_get(j, "SYSLOG_IDENTIFIER"));
    json_t *msg = json_object_get(j, "MESSAGE");
    const char *ts = json_string_value(json_object_get(j, "__REALTIME_TIMESTAMP"));
    char mbuf[2048];
    if (!json_is_object(j)) { parser_bad(p, lineno, "journal line is not a JSON object"); goto out; }
    if (!ident) ident = json_string_value(json_object_get(j, "_COMM"));
    if (!ident || !is_sshd(ident, strlen(ident))) goto out;
    if (json_is_array(msg)) {                         /* non-UTF-8 messages come as byte arrays */
        size_t k = 0;
        for (size_t i = 0; i < json_array_size(msg) && k < sizeof mbuf; i++)
            mbuf[k++] = (char)json_integer_value(json_array_get(msg, i));
        L.msg = mbuf; L.msg_len = k;
    } else if (json_is_string(msg)) {
        L.msg = json_string_value(msg); L.msg_len = json_string_length(msg);
    } else {
        parser_bad(p, lineno, "journal entry of sshd without MESSAGE");
        goto out;
    }
    long long us;
    if (!ts || !nj_parse_ll(ts, strlen(ts), &us) || us < 0) {
        parser_bad(p, lineno, "journal entry without a valid __REALTIME_TIMESTAMP");
        goto out;
    }
    L.sec = us / 1000000; L.usec = (long)(us % 1000000);
    const char *host = json_string_value(json_object_get(j, "_HOSTNAME"));
    if (host) { L.host = host; L.host_len = strlen(host); }
    L.prog = ident; L.prog_len = strlen(ident);
    const char *pid = json_string_value(json_object_get(j, "_PID"));
    if (!pid) pid = json_string_value(json_object_get(j, "SYSLOG_PID"));
    L.pid = -1;
    if (pid && !nj_parse_ll(pid, strlen(pid), &L.pid)) L.pid = -1;
    rc = handle(p, &L, lineno, line, len);
out:
    json_decref(j);
    return rc;
}

static int sshd_feed(parser *p, const char *line, size_t len, long lineno) {
    len = nj_chomp(line, len);
    if (len == 0) return 0;
    if (line[0] == '{') return feed_journal(p, line, len, lineno);
    sysline L;
    if (!parse_syslog(p, line, len, &L)) {
        parser_bad(p, lineno, "no syslog header (RFC 3164, RFC 5424, ISO 8601 or macOS log form)");
        return 0;
    }
    return handle(p, &L, lineno, line, len);
}

static int sshd_flush(parser *p) { (void)p; return 0; }
static void sshd_destroy(parser *p) { (void)p; }
static const parser_vt sshd_vt = {"sshd", sshd_feed, sshd_flush, sshd_destroy};

parser *parse_sshd_new(int *err) {
    sshd_parser *s = nj_calloc(1, sizeof *s);
    if (!s) { if (err) *err = nj_fail(-ENOMEM, "sshd: out of memory"); return NULL; }
    s->base.vt = &sshd_vt;
    return &s->base;
}
