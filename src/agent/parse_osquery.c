/*
 * parse_osquery — osquery result logs (osqueryd.results.log, the filesystem
 * logger plugin) to canonical events.
 *
 * Line forms (one JSON object per line):
 *   differential  {"name","hostIdentifier","calendarTime","unixTime","epoch",
 *                  "counter","numerics","decorations","columns":{...},
 *                  "action":"added"|"removed"}
 *   batched       {..., "diffResults":{"added":[{...}],"removed":[{...}]}}
 *   snapshot      {..., "snapshot":[{...}], "action":"snapshot"}
 * Column values are strings unless the logger ran with numerics enabled;
 * both are read.  The query name is user-chosen ("pack_ir_process_events"),
 * so rows are classified by their columns, not by the name:
 *   remote_address/remote_port present       -> socket_events: kind network
 *   pid and (path or cmdline) present        -> process_events (Linux),
 *       es_process_events (macOS: event_type exec|fork|exit), or a
 *       processes snapshot: kind exec (fork/exit from event_type; a
 *       "removed" process row is an exit)
 * Other rows are skipped silently; "removed" socket rows too.
 *
 * Mapping: pid, parent -> process.ppid, path, cmdline (argv split on
 * whitespace, best effort), cwd, uid, euid, auid, username -> user.name,
 * signing_id, team_id, platform_binary, exit_code; socket action connect ->
 * direction outbound (src = local), accept -> inbound (src = remote);
 * protocol 6/17 -> tcp/udp.  Time: the row's `time` column (seconds) if
 * present, else unixTime (a number or a decimal string).  Host:
 * hostIdentifier (older examples in osquery's documentation say
 * "hostname").
 */
#include "parse_internal.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

typedef struct osquery_parser { parser base; } osquery_parser;

/* A column as text ("" if absent or null), numbers formatted. */
static const char *col(const json_t *row, const char *k, char *buf, size_t cap) {
    json_t *v = json_object_get(row, k);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) { snprintf(buf, cap, "%lld", (long long)json_integer_value(v)); return buf; }
    if (json_is_true(v)) return "1";
    if (json_is_false(v)) return "0";
    return "";
}

static bool col_ll(const json_t *row, const char *k, long long *out) {
    char b[32];
    const char *s = col(row, k, b, sizeof b);
    return *s && nj_parse_ll(s, strlen(s), out);
}

static int set_col_id(json_t *ev, ev_field f, const json_t *row, const char *k, long long max) {
    long long v;
    if (!col_ll(row, k, &v) || v < 0 || v > max) return 0;
    return event_set_int(ev, f, v);
}

static int set_col_str(json_t *ev, ev_field f, const json_t *row, const char *k) {
    char b[32];
    return event_set_str(ev, f, col(row, k, b, sizeof b), (size_t)-1);
}

typedef struct meta {
    const char *host, *name;
    long long unix_time, counter;
} meta;

static int emit_row(parser *p, const meta *m, const json_t *row, const char *action, size_t idx, long lineno,
                    const char *raw, size_t raw_len) {
    if (!json_is_object(row)) { parser_bad(p, lineno, "osquery: row %zu is not an object", idx); return 0; }
    bool sock = json_object_get(row, "remote_address") || json_object_get(row, "remote_port");
    bool proc = !sock && json_object_get(row, "pid") && (json_object_get(row, "path") || json_object_get(row, "cmdline"));
    if (!sock && !proc) return 0;
    bool removed = !strcmp(action, "removed");
    if (sock && removed) return 0;
    char b[64];
    const char *kind = sock ? "network" : removed ? "exit" : "exec";
    const char *et = col(row, "event_type", b, sizeof b);
    if (proc && !strcmp(et, "fork")) kind = "fork";
    else if (proc && !strcmp(et, "exit")) kind = "exit";
    long long t;
    if (!col_ll(row, "time", &t) || t <= 0) t = m->unix_time;
    if (t <= 0) { parser_bad(p, lineno, "osquery: row %zu has no time (no time column, no unixTime)", idx); return 0; }
    /* rows of one query run share name, unixTime and counter and each sits
     * at index 0 of its own line, so the line's bytes (FNV-1a) make the id
     * unique and stable */
    uint64_t hsh = 1469598103934665603ull;
    for (size_t i = 0; i < raw_len; i++) hsh = (hsh ^ (unsigned char)raw[i]) * 1099511628211ull;
    char id[512];
    snprintf(id, sizeof id, "osquery:%.100s:%.100s:%lld:%016llx:%c%zu", m->host ? m->host : "-",
             m->name ? m->name : "-", m->unix_time, (unsigned long long)hsh, action[0], idx);
    int rc;
    json_t *ev = parser_event(p, kind, id, lineno, &rc);
    if (!ev) return rc;
    if ((rc = event_set_time(ev, t, 0)) || (rc = event_set_str(ev, EF_HOST, m->host, (size_t)-1)) ||
        (rc = set_col_id(ev, EF_PROC_PID, row, "pid", 4294967294LL)) ||
        (rc = set_col_str(ev, EF_PROC_PATH, row, "path")))
        goto out;
    if (proc) {
        long long v;
        if ((rc = set_col_id(ev, EF_PROC_PPID, row, "parent", 4294967294LL)) ||
            (rc = set_col_str(ev, EF_PROC_CMDLINE, row, "cmdline")) || (rc = set_col_str(ev, EF_PROC_CWD, row, "cwd")) ||
            (rc = set_col_id(ev, EF_USER_UID, row, "uid", 4294967294LL)) ||
            (rc = set_col_id(ev, EF_USER_EUID, row, "euid", 4294967294LL)) ||
            (rc = set_col_id(ev, EF_USER_AUID, row, "auid", 4294967294LL)) ||
            (rc = set_col_str(ev, EF_USER_NAME, row, "username")) ||
            (rc = set_col_str(ev, EF_PROC_SIGNING_ID, row, "signing_id")) ||
            (rc = set_col_str(ev, EF_PROC_TEAM_ID, row, "team_id")))
            goto out;
        if (col_ll(row, "platform_binary", &v) && (rc = event_set_bool(ev, EF_PROC_PLATFORM_BINARY, v != 0))) goto out;
        if (!strcmp(kind, "exit") && col_ll(row, "exit_code", &v) && (rc = event_set_int(ev, EF_PROC_EXIT_CODE, v))) goto out;
        if (!strcmp(kind, "fork") && col_ll(row, "child_pid", &v) && v > 0) {
            /* es_process_events fork: the row's pid is the parent */
            long long pid;
            if (!event_get_int(ev, EF_PROC_PID, &pid) && (rc = event_set_int(ev, EF_PROC_PPID, pid))) goto out;
            if ((rc = event_set_int(ev, EF_PROC_PID, v))) goto out;
        }
    } else {
        const char *act = col(row, "action", b, sizeof b);
        bool in = !strcmp(act, "accept");
        long long proto;
        if (col_ll(row, "protocol", &proto)) {
            const char *pn = proto == 6 ? "tcp" : proto == 17 ? "udp" : NULL;
            if (pn && (rc = event_set_str(ev, EF_NET_PROTOCOL, pn, (size_t)-1))) goto out;
        }
        if (!strcmp(act, "connect") || in) {
            if ((rc = event_set_str(ev, EF_NET_DIRECTION, in ? "inbound" : "outbound", (size_t)-1))) goto out;
        }
        if ((rc = set_col_str(ev, in ? EF_NET_DST_IP : EF_NET_SRC_IP, row, "local_address")) ||
            (rc = set_col_id(ev, in ? EF_NET_DST_PORT : EF_NET_SRC_PORT, row, "local_port", 65535)) ||
            (rc = set_col_str(ev, in ? EF_NET_SRC_IP : EF_NET_DST_IP, row, "remote_address")) ||
            (rc = set_col_id(ev, in ? EF_NET_SRC_PORT : EF_NET_DST_PORT, row, "remote_port", 65535)) ||
            (rc = set_col_id(ev, EF_USER_AUID, row, "auid", 4294967294LL)))
            goto out;
        /* port 0 on an unbound side says nothing */
        long long port;
        if (!event_get_int(ev, EF_NET_SRC_PORT, &port) && port == 0) event_unset(ev, EF_NET_SRC_PORT);
    }
    rc = parser_emit(p, ev, lineno, raw, raw_len);
    ev = NULL;
out:
    json_decref(ev);
    return rc;
}

static int osquery_feed(parser *p, const char *line, size_t len, long lineno) {
    len = nj_chomp(line, len);
    if (len == 0) return 0;
    json_error_t je;
    int rc;
    json_t *j = event_json_load(line, len, 0, &je, &rc);
    if (!j) {
        if (rc == -ENOMEM) return nj_fail(rc, "osquery: out of memory");
        parser_bad(p, lineno, "invalid JSON at column %d: %s", je.column, je.text);
        return 0;
    }
    rc = 0;
    if (!json_is_object(j)) { parser_bad(p, lineno, "osquery: expected a JSON object"); goto out; }
    const char *host = json_string_value(json_object_get(j, "hostIdentifier"));
    if (!host) host = json_string_value(json_object_get(j, "hostname"));   /* older documentation examples */
    meta m = {host, json_string_value(json_object_get(j, "name")), 0, 0};
    col_ll(j, "unixTime", &m.unix_time);
    col_ll(j, "counter", &m.counter);
    json_t *cols = json_object_get(j, "columns"), *snap = json_object_get(j, "snapshot"),
           *diff = json_object_get(j, "diffResults");
    if (json_is_object(cols)) {
        const char *action = json_string_value(json_object_get(j, "action"));
        if (!action) { parser_bad(p, lineno, "osquery: differential row without \"action\""); goto out; }
        rc = emit_row(p, &m, cols, action, 0, lineno, line, len);
    } else if (json_is_array(snap)) {
        for (size_t i = 0; i < json_array_size(snap) && !rc; i++)
            rc = emit_row(p, &m, json_array_get(snap, i), "snapshot", i, lineno, line, len);
    } else if (json_is_object(diff)) {
        static const char *const acts[] = {"added", "removed"};
        size_t idx = 0;
        for (int a = 0; a < 2 && !rc; a++) {
            json_t *rows = json_object_get(diff, acts[a]);
            for (size_t i = 0; json_is_array(rows) && i < json_array_size(rows) && !rc; i++)
                rc = emit_row(p, &m, json_array_get(rows, i), acts[a], idx++, lineno, line, len);
        }
    } else {
        parser_bad(p, lineno, "osquery: no \"columns\", \"snapshot\" or \"diffResults\"");
    }
out:
    json_decref(j);
    return rc;
}

static int osquery_flush(parser *p) { (void)p; return 0; }
static void osquery_destroy(parser *p) { (void)p; }
static const parser_vt osquery_vt = {"osquery", osquery_feed, osquery_flush, osquery_destroy};

parser *parse_osquery_new(int *err) {
    osquery_parser *o = nj_calloc(1, sizeof *o);
    if (!o) { if (err) *err = nj_fail(-ENOMEM, "osquery: out of memory"); return NULL; }
    o->base.vt = &osquery_vt;
    return &o->base;
}
