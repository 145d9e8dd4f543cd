/*
 * parse_sysmon — Sysmon for Linux events, as written to syslog: each line is
 * a syslog header, the tag (`sysmon:`), then one XML document
 * `<Event><System>...</System><EventData><Data Name="...">value</Data>...
 * </EventData></Event>`.  The header is not needed: the document carries
 * its own host (<Computer>) and time (<TimeCreated SystemTime="...Z"/>,
 * nanoseconds), so lines relayed by any syslog daemon parse the same.
 *
 * XML.  Parsed with libexpat through the counting allocator (so memory is
 * budgeted and allocation failure is testable); one expat parser per
 * sysmon parser, reset per line.  Only the <Event>...</Event> span of the
 * line is parsed, so nothing can precede the root element, and a span
 * holding markup declarations ("<!") is refused (no entity expansion
 * tricks).  Pre-repair: real captures contain
 * entity references without their semicolon ("&quot" in command lines,
 * where a field was cut by the syslog size limit or by FieldSizes), which
 * a conforming parser rejects.  Before expat sees the document we add the
 * missing ';' after &quot &amp &lt &gt &apos, and turn any other '&' that
 * does not start a well-formed reference into "&amp;".  The repaired text
 * is only used for parsing; "raw" keeps the original line.
 *
 * Events (Data names as Sysmon writes them; "-" means absent):
 *   1  process create   kind exec: ProcessId, Image, CommandLine,
 *      CurrentDirectory, User, LogonId (-> user.auid), ProcessGuid,
 *      ParentProcessId, ParentImage, ParentCommandLine, ParentProcessGuid
 *   3  network connect  kind network: Protocol, Initiated (true ->
 *      outbound), SourceIp/Port, DestinationIp/Port, Image, ProcessId
 *   5  process terminated  kind exit
 *   11 file create      kind file, action create: TargetFilename
 *   23, 26 file delete  kind file, action delete
 * Other event ids are skipped silently.
 */
#include "parse_internal.h"
#include "util.h"

#include <expat.h>
#include <stdio.h>
#include <string.h>

#define SM_MAX_DATA 96

typedef struct sysmon_parser {
    parser base;
    XML_Parser xp;
    /* per document */
    char *text;                   /* accumulated character data of all fields */
    size_t tn, tcap;
    bool oom;
    int depth;
    int cur;                      /* index of the field collecting text, -1 none */
    struct { size_t off, len; bool used; } f[SM_MAX_DATA];
    char names[SM_MAX_DATA][48];
    int nf;
    char system_time[64];
    char *fix;                    /* repaired document */
    size_t fcap;
} sysmon_parser;

static const XML_Memory_Handling_Suite k_mem = {nj_malloc, nj_realloc, nj_free};

/* Fields of <System> we keep, by element name (Data fields by Name). */
static int field_slot(sysmon_parser *s, const char *name) {
    for (int i = 0; i < s->nf; i++)
        if (!strcmp(s->names[i], name)) return i;
    if (s->nf >= SM_MAX_DATA) return -1;
    snprintf(s->names[s->nf], sizeof s->names[0], "%s", name);
    s->f[s->nf].off = s->f[s->nf].len = 0;
    s->f[s->nf].used = false;
    return s->nf++;
}

static void XMLCALL on_start(void *ud, const XML_Char *el, const XML_Char **attr) {
    sysmon_parser *s = ud;
    s->depth++;
    s->cur = -1;
    if (!strcmp(el, "Data")) {
        for (int i = 0; attr[i]; i += 2)
            if (!strcmp(attr[i], "Name")) s->cur = field_slot(s, attr[i + 1]);
    } else if (!strcmp(el, "EventID") || !strcmp(el, "EventRecordID") || !strcmp(el, "Computer")) {
        char n[32];
        snprintf(n, sizeof n, "#%s", el);               /* '#': cannot clash with a Data name */
        s->cur = field_slot(s, n);
    } else if (!strcmp(el, "TimeCreated")) {
        for (int i = 0; attr[i]; i += 2)
            if (!strcmp(attr[i], "SystemTime")) snprintf(s->system_time, sizeof s->system_time, "%s", attr[i + 1]);
    }
    if (s->cur >= 0) { s->f[s->cur].off = s->tn; s->f[s->cur].len = 0; s->f[s->cur].used = true; }
}

static void XMLCALL on_end(void *ud, const XML_Char *el) {
    (void)el;
    sysmon_parser *s = ud;
    s->depth--;
    s->cur = -1;
}

static void XMLCALL on_text(void *ud, const XML_Char *t, int n) {
    sysmon_parser *s = ud;
    if (s->cur < 0 || n <= 0) return;
    if (s->tn + (size_t)n + 1 > s->tcap) {
        size_t cap = s->tcap ? s->tcap : 1024;
        while (cap < s->tn + (size_t)n + 1) cap *= 2;
        char *p = nj_realloc(s->text, cap);
        if (!p) { s->oom = true; XML_StopParser(s->xp, XML_FALSE); return; }
        s->text = p;
        s->tcap = cap;
    }
    /* a field's text is contiguous unless fields nest, which they do not */
    memcpy(s->text + s->tn, t, (size_t)n);
    s->tn += (size_t)n;
    s->f[s->cur].len += (size_t)n;
}

/* Field text, or NULL if absent, empty or "-". */
static const char *get(sysmon_parser *s, const char *name, size_t *len) {
    for (int i = 0; i < s->nf; i++) {
        if (strcmp(s->names[i], name) || !s->f[i].used) continue;
        const char *v = s->text + s->f[i].off;
        size_t n = s->f[i].len;
        if (n == 0 || (n == 1 && v[0] == '-')) return NULL;
        *len = n;
        return v;
    }
    return NULL;
}

static bool get_ll(sysmon_parser *s, const char *name, long long *out) {
    size_t n;
    const char *v = get(s, name, &n);
    return v && nj_parse_ll(v, n, out);
}

static int set_f(sysmon_parser *s, json_t *ev, ev_field f, const char *name) {
    size_t n;
    const char *v = get(s, name, &n);
    return v ? event_set_str(ev, f, v, n) : 0;
}

static int set_i(sysmon_parser *s, json_t *ev, ev_field f, const char *name, long long max) {
    long long v;
    if (!get_ll(s, name, &v) || v < 0 || v > max) return 0;
    return event_set_int(ev, f, v);
}

/* The pre-repair described above; returns the repaired length or -1 (OOM). */
static long repair(sysmon_parser *s, const char *x, size_t n) {
    size_t cap = n + n / 4 + 64;
    if (cap > s->fcap) {
        char *p = nj_realloc(s->fix, cap);
        if (!p) return -1;
        s->fix = p;
        s->fcap = cap;
    }
    static const char *const ents[] = {"quot", "amp", "lt", "gt", "apos"};
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 8 > s->fcap) {
            size_t c2 = s->fcap * 2;
            char *p = nj_realloc(s->fix, c2);
            if (!p) return -1;
            s->fix = p;
            s->fcap = c2;
        }
        if (x[i] != '&') { s->fix[o++] = x[i]; continue; }
        /* &#123; / &#x1F; / &name; are fine as they are */
        size_t j = i + 1;
        if (j < n && x[j] == '#') {
            j++;
            bool hex = j < n && (x[j] == 'x' || x[j] == 'X');
            if (hex) j++;
            size_t d = j;
            while (j < n && (hex ? nj_is_hex((char[]){'0', x[j]}, 2) : (x[j] >= '0' && x[j] <= '9'))) j++;
            if (j > d && j < n && x[j] == ';') { s->fix[o++] = '&'; continue; }
            memcpy(s->fix + o, "&amp;", 5); o += 5;
            continue;
        }
        int known = -1;
        for (int k = 0; k < 5; k++) {
            size_t L = strlen(ents[k]);
            if (n - j >= L && !memcmp(x + j, ents[k], L)) { known = k; break; }
        }
        if (known < 0) { memcpy(s->fix + o, "&amp;", 5); o += 5; continue; }
        size_t L = strlen(ents[known]);
        s->fix[o++] = '&';
        memcpy(s->fix + o, ents[known], L);
        o += L;
        i = j + L - 1;
        if (!(j + L < n && x[j + L] == ';')) s->fix[o++] = ';';
        else { s->fix[o++] = ';'; i++; }
    }
    return (long)o;
}

static int sysmon_feed(parser *p, const char *line, size_t len, long lineno) {
    sysmon_parser *s = (sysmon_parser *)p;
    len = nj_chomp(line, len);
    if (len == 0) return 0;
    const char *b = nj_memmem(line, len, "<Event>", 7);
    if (!b) b = nj_memmem(line, len, "<Event ", 7);
    if (!b) { parser_bad(p, lineno, "sysmon: no <Event> document in the line"); return 0; }
    const char *e = nj_memmem(b, len - (size_t)(b - line), "</Event>", 8);
    if (!e) { parser_bad(p, lineno, "sysmon: <Event> document not closed (line cut by the syslog size limit?)"); return 0; }
    size_t dn = (size_t)(e + 8 - b);
    if (nj_memmem(b, dn, "<!", 2)) { parser_bad(p, lineno, "sysmon: DOCTYPE or declarations are not accepted"); return 0; }
    long fn = repair(s, b, dn);
    if (fn < 0) return nj_fail(-ENOMEM, "sysmon: out of memory");
    if (!s->xp) {
        s->xp = XML_ParserCreate_MM("UTF-8", &k_mem, NULL);
        if (!s->xp) return nj_fail(-ENOMEM, "sysmon: out of memory");
    } else if (!XML_ParserReset(s->xp, "UTF-8")) {
        return nj_fail(-ENOMEM, "sysmon: out of memory");
    }
    XML_SetUserData(s->xp, s);
    XML_SetElementHandler(s->xp, on_start, on_end);
    XML_SetCharacterDataHandler(s->xp, on_text);
    s->tn = 0; s->nf = 0; s->cur = -1; s->depth = 0; s->oom = false; s->system_time[0] = 0;
    enum XML_Status st = XML_Parse(s->xp, s->fix, (int)fn, XML_TRUE);
    if (s->oom || (st != XML_STATUS_OK && XML_GetErrorCode(s->xp) == XML_ERROR_NO_MEMORY)) {
        /* expat's state after an allocation failure is not to be reused */
        XML_ParserFree(s->xp);
        s->xp = NULL;
        return nj_fail(-ENOMEM, "sysmon: out of memory");
    }
    if (st != XML_STATUS_OK) {
        parser_bad(p, lineno, "sysmon: XML error at column %lu: %s", (unsigned long)XML_GetCurrentColumnNumber(s->xp),
                   XML_ErrorString(XML_GetErrorCode(s->xp)));
        return 0;
    }
    long long id;
    if (!get_ll(s, "#EventID", &id)) { parser_bad(p, lineno, "sysmon: no EventID"); return 0; }
    const char *kind = id == 1 ? "exec" : id == 3 ? "network" : id == 5 ? "exit" : (id == 11 || id == 23 || id == 26) ? "file" : NULL;
    if (!kind) return 0;
    int64_t sec; long us;
    if (event_time_parse(s->system_time, strlen(s->system_time), &sec, &us)) {
        size_t n;
        const char *u = get(s, "UtcTime", &n);                /* "2021-10-12 15:55:06.123" */
        char tb[64];
        if (!u || n > 40) { parser_bad(p, lineno, "sysmon: no valid TimeCreated SystemTime or UtcTime"); return 0; }
        snprintf(tb, sizeof tb, "%.*sZ", (int)n, u);
        if (event_time_parse(tb, strlen(tb), &sec, &us)) { parser_bad(p, lineno, "sysmon: no valid TimeCreated SystemTime or UtcTime"); return 0; }
    }
    size_t cn = 0, rn = 0;
    const char *comp = get(s, "#Computer", &cn), *rec = get(s, "#EventRecordID", &rn);
    char evid[256];
    if (rec) snprintf(evid, sizeof evid, "sysmon:%.*s:%.*s", (int)NJ_MIN(cn, 100), comp ? comp : "-", (int)NJ_MIN(rn, 40), rec);
    else snprintf(evid, sizeof evid, "sysmon:%.*s:%lld.%06ld:%ld", (int)NJ_MIN(cn, 100), comp ? comp : "-", (long long)sec, us, lineno);
    int rc;
    json_t *ev = parser_event(p, kind, evid, lineno, &rc);
    if (!ev) return rc;
    if ((rc = event_set_time(ev, sec, us)) || (comp && (rc = event_set_str(ev, EF_HOST, comp, cn))) ||
        (rc = set_i(s, ev, EF_PROC_PID, "ProcessId", 4294967294LL)) || (rc = set_f(s, ev, EF_PROC_PATH, "Image")) ||
        (rc = set_f(s, ev, EF_PROC_GUID, "ProcessGuid")) || (rc = set_f(s, ev, EF_USER_NAME, "User")))
        goto out;
    if (id == 1) {
        if ((rc = set_f(s, ev, EF_PROC_CMDLINE, "CommandLine")) || (rc = set_f(s, ev, EF_PROC_CWD, "CurrentDirectory")) ||
            (rc = set_i(s, ev, EF_USER_AUID, "LogonId", 4294967294LL)) ||
            (rc = set_i(s, ev, EF_PROC_PPID, "ParentProcessId", 4294967294LL)) ||
            (rc = set_i(s, ev, EF_PARENT_PID, "ParentProcessId", 4294967294LL)) ||
            (rc = set_f(s, ev, EF_PARENT_PATH, "ParentImage")) ||
            (rc = set_f(s, ev, EF_PARENT_CMDLINE, "ParentCommandLine")) ||
            (rc = set_f(s, ev, EF_PARENT_GUID, "ParentProcessGuid")))
            goto out;
    } else if (id == 3) {
        size_t n;
        const char *v = get(s, "Protocol", &n);
        if (v && (rc = event_set_str(ev, EF_NET_PROTOCOL, v, n))) goto out;
        v = get(s, "Initiated", &n);
        if (v && (rc = event_set_str(ev, EF_NET_DIRECTION, n == 4 && !memcmp(v, "true", 4) ? "outbound" : "inbound", (size_t)-1)))
            goto out;
        if ((rc = set_f(s, ev, EF_NET_SRC_IP, "SourceIp")) || (rc = set_i(s, ev, EF_NET_SRC_PORT, "SourcePort", 65535)) ||
            (rc = set_f(s, ev, EF_NET_DST_IP, "DestinationIp")) ||
            (rc = set_i(s, ev, EF_NET_DST_PORT, "DestinationPort", 65535)))
            goto out;
    } else if (id != 5) {
        if ((rc = set_f(s, ev, EF_FILE_PATH, "TargetFilename")) ||
            (rc = event_set_str(ev, EF_FILE_ACTION, id == 11 ? "create" : "delete", (size_t)-1)))
            goto out;
    }
    rc = parser_emit(p, ev, lineno, line, len);
    ev = NULL;
out:
    json_decref(ev);
    if (rc == -ENOMEM) nj_fail(rc, "sysmon: out of memory");
    return rc;
}

static int sysmon_flush(parser *p) { (void)p; return 0; }
static void sysmon_destroy(parser *p) {
    sysmon_parser *s = (sysmon_parser *)p;
    if (s->xp) XML_ParserFree(s->xp);
    nj_free(s->text);
    nj_free(s->fix);
}
static const parser_vt sysmon_vt = {"sysmon", sysmon_feed, sysmon_flush, sysmon_destroy};

parser *parse_sysmon_new(int *err) {
    sysmon_parser *s = nj_calloc(1, sizeof *s);
    if (!s) { if (err) *err = nj_fail(-ENOMEM, "sysmon: out of memory"); return NULL; }
    s->base.vt = &sysmon_vt;
    s->cur = -1;
    return &s->base;
}
