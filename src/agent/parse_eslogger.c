/*
 * parse_eslogger — macOS Endpoint Security events as written by
 * `eslogger exec fork exit authentication login_login login_logout
 * openssh_login openssh_logout` (one JSON object per line).
 *
 * Shape (es_message_t as JSON).  Top level: event_type (es_event_type_t
 * number), time (RFC 3339 with nanoseconds), global_seq_num, seq_num,
 * mach_time, version (message version: 9 on macOS 15, 10 on macOS 26),
 * schema_version, process (the process that caused the event), and `event`
 * with exactly one key naming the event ("exec", "fork", ...).  We dispatch
 * on that key, not on the number, because the key is self-describing and
 * the numbers are only meaningful per SDK; event_type is checked for
 * consistency where we know it (9 exec, 11 fork, 15 exit).
 *
 * Process objects (es_process_t): audit_token, ppid, original_ppid,
 * executable.path, signing_id, team_id (null when unsigned or Apple),
 * is_platform_binary, tty.path, start_time.  audit_token is an object
 * {"pid","euid","ruid","auid",...} in message version <= 9 and an array of
 * eight integers [auid, euid, egid, ruid, rgid, pid, asid, pidversion] in
 * version 10 (macOS 26) — both are read.  Key order varies and "/" may be
 * escaped as "\/": jansson takes care of both.
 *
 * Events.
 *   exec            kind exec: process = event.exec.target; argv =
 *                   event.exec.args; cwd = event.exec.cwd.path
 *   fork            kind fork: process = event.fork.child (ppid = caller)
 *   exit            kind exit: process = caller; exit_code from the wait
 *                   status event.exit.stat (normal: stat >> 8; signal:
 *                   128 + signal number)
 *   authentication  kind auth: success, type (od | touchid | token |
 *                   auto_unlock -> auth.method), user from data.od.record_name
 *   login_login     kind login (auth on failure): username, success
 *   login_logout    kind logout
 *   openssh_login   kind auth: username, source_address, success
 *   openssh_logout  kind logout
 * Other event keys are skipped silently (eslogger can log ~150 kinds).
 */
#include "parse_internal.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* scratch: each line's document is read, copied out of and thrown away,
 * so it lives in an arena (event.h): no malloc per node, no free walk. */
typedef struct eslogger_parser { parser base; event_scratch *scratch; } eslogger_parser;

typedef struct token { long long pid, euid, ruid, auid; } token;

/* Reads an audit token in either form; fields absent are -1. */
static bool read_token(const json_t *t, token *out) {
    out->pid = out->euid = out->ruid = out->auid = -1;
    if (json_is_object(t)) {
        json_t *v;
        if (json_is_integer(v = json_object_get(t, "pid"))) out->pid = json_integer_value(v);
        if (json_is_integer(v = json_object_get(t, "euid"))) out->euid = json_integer_value(v);
        if (json_is_integer(v = json_object_get(t, "ruid"))) out->ruid = json_integer_value(v);
        if (json_is_integer(v = json_object_get(t, "auid"))) out->auid = json_integer_value(v);
        return out->pid >= 0;
    }
    if (json_is_array(t) && json_array_size(t) == 8) {
        long long a[8];
        for (int i = 0; i < 8; i++) {
            json_t *v = json_array_get(t, (size_t)i);
            if (!json_is_integer(v)) return false;
            a[i] = json_integer_value(v);
        }
        out->auid = a[0]; out->euid = a[1]; out->ruid = a[3]; out->pid = a[5];
        return true;
    }
    return false;
}

static int set_id_field(json_t *ev, ev_field f, long long v) {
    if (v < 0 || v >= 4294967295LL) return 0;        /* AU_DEFAUDITID = unset */
    return event_set_int(ev, f, v);
}

/* Fills process.* and user.* from an es_process_t. */
static int fill_process(json_t *ev, const json_t *pr) {
    int rc;
    if (!json_is_object(pr)) return 0;
    token tk;
    if (read_token(json_object_get(pr, "audit_token"), &tk)) {
        if ((rc = set_id_field(ev, EF_PROC_PID, tk.pid)) || (rc = set_id_field(ev, EF_USER_UID, tk.ruid)) ||
            (rc = set_id_field(ev, EF_USER_EUID, tk.euid)) || (rc = set_id_field(ev, EF_USER_AUID, tk.auid)))
            return rc;
    }
    json_t *v;
    if (json_is_integer(v = json_object_get(pr, "ppid")) && (rc = set_id_field(ev, EF_PROC_PPID, json_integer_value(v))))
        return rc;
    json_t *exe = json_object_get(pr, "executable");
    const char *path = json_string_value(json_object_get(exe, "path"));
    if (path && (rc = event_set_str(ev, EF_PROC_PATH, path, json_string_length(json_object_get(exe, "path")))))
        return rc;
    if (path) {
        const char *b = strrchr(path, '/');
        if ((rc = event_set_str(ev, EF_PROC_NAME, b ? b + 1 : path, (size_t)-1))) return rc;
    }
    const char *s;
    if ((s = json_string_value(json_object_get(pr, "signing_id"))) && (rc = event_set_str(ev, EF_PROC_SIGNING_ID, s, (size_t)-1)))
        return rc;
    if ((s = json_string_value(json_object_get(pr, "team_id"))) && (rc = event_set_str(ev, EF_PROC_TEAM_ID, s, (size_t)-1)))
        return rc;
    if (json_is_boolean(v = json_object_get(pr, "is_platform_binary")) &&
        (rc = event_set_bool(ev, EF_PROC_PLATFORM_BINARY, json_is_true(v))))
        return rc;
    const char *tty = json_string_value(json_object_get(json_object_get(pr, "tty"), "path"));
    if (tty) {
        if (!strncmp(tty, "/dev/", 5)) tty += 5;
        if ((rc = event_set_str(ev, EF_PROC_TTY, tty, (size_t)-1))) return rc;
    }
    return 0;
}

static int eslogger_feed(parser *p, const char *line, size_t len, long lineno) {
    len = nj_chomp(line, len);   /* raw text without its newline */
    json_t *j = NULL;
    event_scratch *scratch = ((eslogger_parser *)p)->scratch;
    int rc = parser_json_line_scratch(p, "eslogger", line, len, lineno, scratch, &j);
    if (!j) return rc;
    json_t *ev = NULL;
    json_t *event = json_object_get(j, "event");
    if (!json_is_object(j) || !json_is_object(event) || json_object_size(event) != 1) {
        parser_bad(p, lineno, "eslogger: expected an object with an \"event\" object of one key");
        goto out;
    }
    const char *name = json_object_iter_key(json_object_iter(event));
    json_t *body = json_object_iter_value(json_object_iter(event));
    json_t *et = json_object_get(j, "event_type");
    long long etype = json_is_integer(et) ? json_integer_value(et) : -1;
    const char *kind = NULL;
    if (!strcmp(name, "exec")) kind = "exec";
    else if (!strcmp(name, "fork")) kind = "fork";
    else if (!strcmp(name, "exit")) kind = "exit";
    else if (!strcmp(name, "authentication") || !strcmp(name, "openssh_login")) kind = "auth";
    else if (!strcmp(name, "login_login")) kind = "login";
    else if (!strcmp(name, "login_logout") || !strcmp(name, "openssh_logout")) kind = "logout";
    else goto out;                                     /* a kind we do not map */
    if (etype >= 0 && ((!strcmp(kind, "exec") && etype != 9) || (!strcmp(kind, "fork") && etype != 11) ||
                       (!strcmp(kind, "exit") && etype != 15))) {
        parser_bad(p, lineno, "eslogger: event \"%s\" with event_type %lld", name, etype);
        goto out;
    }
    if (!json_is_object(body)) { parser_bad(p, lineno, "eslogger: event.%s is not an object", name); goto out; }
    const char *ts = json_string_value(json_object_get(j, "time"));
    int64_t sec; long us;
    if (!ts || event_time_parse(ts, strlen(ts), &sec, &us)) {
        parser_bad(p, lineno, "eslogger: missing or invalid \"time\"");
        goto out;
    }
    json_t *gs = json_object_get(j, "global_seq_num"), *mt = json_object_get(j, "mach_time");
    char id[128];
    if (json_is_integer(gs))
        snprintf(id, sizeof id, "eslogger:%lld:%lld", (long long)json_integer_value(gs),
                 json_is_integer(mt) ? (long long)json_integer_value(mt) : 0LL);
    else
        snprintf(id, sizeof id, "eslogger:%lld.%06ld:%ld", (long long)sec, us, lineno);
    if (!strcmp(kind, "login") && json_is_false(json_object_get(body, "success"))) kind = "auth";
    if (!(ev = parser_event(p, kind, id, lineno, &rc))) goto out;
    if ((rc = event_set_time(ev, sec, us))) goto out;
    json_t *caller = json_object_get(j, "process");
    if (!strcmp(name, "exec")) {
        json_t *target = json_object_get(body, "target");
        if (!json_is_object(target)) { parser_bad(p, lineno, "eslogger: exec without target"); goto out; }
        if ((rc = fill_process(ev, target))) goto out;
        json_t *args = json_object_get(body, "args");
        for (size_t i = 0; json_is_array(args) && i < json_array_size(args); i++) {
            json_t *a = json_array_get(args, i);
            if (json_is_string(a) && (rc = event_push_str(ev, EF_PROC_ARGV, json_string_value(a), json_string_length(a))))
                goto out;
        }
        json_t *cwd = json_object_get(json_object_get(body, "cwd"), "path");
        if (json_is_string(cwd) && (rc = event_set_str(ev, EF_PROC_CWD, json_string_value(cwd), json_string_length(cwd))))
            goto out;
    } else if (!strcmp(name, "fork")) {
        json_t *child = json_object_get(body, "child");
        if (!json_is_object(child)) { parser_bad(p, lineno, "eslogger: fork without child"); goto out; }
        if ((rc = fill_process(ev, child))) goto out;
        token tk;
        if (read_token(json_object_get(caller, "audit_token"), &tk) && !event_get(ev, EF_PROC_PPID) &&
            (rc = set_id_field(ev, EF_PROC_PPID, tk.pid)))
            goto out;
    } else {
        if ((rc = fill_process(ev, caller))) goto out;
        if (!strcmp(name, "exit")) {
            json_t *st = json_object_get(body, "stat");
            if (json_is_integer(st)) {
                long long s = json_integer_value(st);
                long long code = (s & 0x7f) == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f);
                if ((rc = event_set_int(ev, EF_PROC_EXIT_CODE, code))) goto out;
            }
        } else {
            json_t *succ = json_object_get(body, "success");
            bool auth = !strcmp(kind, "auth") || !strcmp(kind, "login");
            if (auth && json_is_boolean(succ) &&
                (rc = event_set_str(ev, EF_AUTH_RESULT, json_is_true(succ) ? "success" : "failure", (size_t)-1)))
                goto out;
            const char *user = json_string_value(json_object_get(body, "username"));
            if (!strcmp(name, "authentication")) {
                static const char *const types[] = {"od", "touchid", "token", "auto_unlock"};
                json_t *ty = json_object_get(body, "type");
                long long t = json_is_integer(ty) ? json_integer_value(ty) : -1;
                if (t >= 0 && t < 4 && (rc = event_set_str(ev, EF_AUTH_METHOD, types[t], (size_t)-1))) goto out;
                json_t *data = json_object_get(body, "data");
                user = json_string_value(json_object_get(json_object_get(data, "od"), "record_name"));
            }
            if (!strncmp(name, "openssh_", 8)) {
                const char *src = json_string_value(json_object_get(body, "source_address"));
                if ((rc = event_set_str(ev, EF_AUTH_SRC_IP, src, (size_t)-1)) ||
                    (rc = event_set_str(ev, EF_AUTH_SERVICE, "sshd", 4)))
                    goto out;
            } else if (!strncmp(name, "login_", 6) && (rc = event_set_str(ev, EF_AUTH_SERVICE, "login", 5))) {
                goto out;
            }
            if ((rc = event_set_str(ev, EF_AUTH_USER, user, (size_t)-1))) goto out;
            /* login_login / openssh_login: "has_uid" + "uid":{"uid":N};
             * the logout events: "uid":N */
            json_t *uidj = json_object_get(body, "uid"), *uid = NULL;
            if (json_is_integer(uidj)) uid = uidj;
            else if (json_is_true(json_object_get(body, "has_uid"))) uid = json_object_get(uidj, "uid");
            if (json_is_integer(uid)) {
                /* the account that logged in, not the reporting process */
                if ((rc = set_id_field(ev, EF_USER_UID, json_integer_value(uid)))) goto out;
                event_unset(ev, EF_USER_EUID);
                event_unset(ev, EF_USER_AUID);
                if ((rc = event_set_str(ev, EF_USER_NAME, user, (size_t)-1))) goto out;
            }
        }
    }
    rc = parser_emit(p, ev, lineno, line, len);
    ev = NULL;
out:
    json_decref(ev);
    event_scratch_release(scratch, j);   /* every value was copied into ev */
    if (rc == -ENOMEM) nj_fail(rc, "eslogger: out of memory");
    return rc;
}

static int eslogger_flush(parser *p) { (void)p; return 0; }
static void eslogger_destroy(parser *p) { event_scratch_free(((eslogger_parser *)p)->scratch); }
static const parser_vt eslogger_vt = {"eslogger", eslogger_feed, eslogger_flush, eslogger_destroy};

parser *parse_eslogger_new(int *err) {
    eslogger_parser *e = nj_calloc(1, sizeof *e);
    if (!e) { if (err) *err = nj_fail(-ENOMEM, "eslogger: out of memory"); return NULL; }
    e->base.vt = &eslogger_vt;
    if (!(e->scratch = event_scratch_new(err))) {
        nj_free(e);
        return NULL;
    }
    return &e->base;
}
