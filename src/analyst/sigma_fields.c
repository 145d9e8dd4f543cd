/*
 * sigma_fields — the canonical event (contract v1, a jansson object) seen
 * through Sigma's field names.  docs/sigma.md has the table; in short:
 *
 *   process_creation   Image, CommandLine, CurrentDirectory, User, LogonId,
 *                      ProcessId, ParentProcessId, ParentImage,
 *                      ParentCommandLine
 *   auditd             type, a0..aN, exe, comm, key, uid, auid, euid, name
 *   network_connection DestinationIp, DestinationPort, SourceIp, SourcePort,
 *                      Initiated, Protocol
 *   file_event         TargetFilename
 *
 * Design: sigma_view_from_event renders every integer field and the derived
 * strings (comm, key) into the caller's sigma_json_ctx once, so the accessor
 * only looks things up and returns pointers that stay valid as long as the
 * event and the context: nothing here allocates.  Absent facts stay absent
 * (NULL), as the contract omits them.
 */
#include "sigma.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_PID, N_PPID, N_UID, N_AUID, N_EUID, N_SPORT, N_DPORT, N_COUNT };

static json_t *path2(const json_t *ev, const char *a, const char *b) {
    json_t *o = json_object_get(ev, a);
    return json_is_object(o) ? json_object_get(o, b) : NULL;
}

static const char *str2(const json_t *ev, const char *a, const char *b, size_t *len) {
    json_t *v = path2(ev, a, b);
    if (!json_is_string(v)) return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static void render(sigma_json_ctx *c, int slot, const json_t *v) {
    c->num[slot][0] = 0;
    if (json_is_integer(v))
        snprintf(c->num[slot], sizeof c->num[slot], "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(c->num[slot], sizeof c->num[slot], "%s", json_string_value(v));
}

static const char *num(sigma_json_ctx *c, int slot, size_t *len) {
    if (!c->num[slot][0]) return NULL;
    *len = strlen(c->num[slot]);
    return c->num[slot];
}

static const char *get(void *ctxp, const char *f, size_t *len) {
    sigma_json_ctx *c = ctxp;
    const json_t *ev = c->event;
    switch (f[0]) {
    case 'I':
        if (!strcmp(f, "Image")) return str2(ev, "process", "path", len);
        if (!strcmp(f, "Initiated")) {
            size_t n;
            const char *d = str2(ev, "network", "direction", &n);
            if (!d) return NULL;
            if (!strcmp(d, "outbound")) { *len = 4; return "true"; }
            if (!strcmp(d, "inbound")) { *len = 5; return "false"; }
        }
        return NULL;
    case 'C':
        if (!strcmp(f, "CommandLine")) return str2(ev, "process", "cmdline", len);
        if (!strcmp(f, "CurrentDirectory")) return str2(ev, "process", "cwd", len);
        return NULL;
    case 'U':
        if (!strcmp(f, "User")) return str2(ev, "user", "name", len);
        return NULL;
    case 'L':
        if (!strcmp(f, "LogonId")) return num(c, N_AUID, len);
        return NULL;
    case 'P':
        if (!strcmp(f, "ProcessId")) return num(c, N_PID, len);
        if (!strcmp(f, "ParentProcessId")) return num(c, N_PPID, len);
        if (!strcmp(f, "ParentImage")) return str2(ev, "parent", "path", len);
        if (!strcmp(f, "ParentCommandLine")) return str2(ev, "parent", "cmdline", len);
        if (!strcmp(f, "Protocol")) return str2(ev, "network", "protocol", len);
        return NULL;
    case 'D':
        if (!strcmp(f, "DestinationIp")) return str2(ev, "network", "dst_ip", len);
        if (!strcmp(f, "DestinationPort")) return num(c, N_DPORT, len);
        return NULL;
    case 'S':
        if (!strcmp(f, "SourceIp")) return str2(ev, "network", "src_ip", len);
        if (!strcmp(f, "SourcePort")) return num(c, N_SPORT, len);
        return NULL;
    case 'T':
        if (!strcmp(f, "TargetFilename")) return str2(ev, "file", "path", len);
        return NULL;
    case 't':
        if (!strcmp(f, "type")) {
            json_t *k = json_object_get(ev, "kind");
            if (!json_is_string(k)) return NULL;
            if (!strcmp(json_string_value(k), "exec")) { *len = 6; return "EXECVE"; }
            *len = 7;
            return "SYSCALL";
        }
        return NULL;
    case 'a':
        if (f[1] >= '0' && f[1] <= '9') {
            char *end;
            long i = strtol(f + 1, &end, 10);
            if (*end || i < 0) return NULL;
            json_t *argv = path2(ev, "process", "argv");
            json_t *a = json_is_array(argv) ? json_array_get(argv, (size_t)i) : NULL;
            if (!json_is_string(a)) return NULL;
            *len = json_string_length(a);
            return json_string_value(a);
        }
        if (!strcmp(f, "auid")) return num(c, N_AUID, len);
        return NULL;
    case 'e':
        if (!strcmp(f, "exe")) return str2(ev, "process", "path", len);
        if (!strcmp(f, "euid")) return num(c, N_EUID, len);
        return NULL;
    case 'c':
        if (!strcmp(f, "comm") && c->has_comm) { *len = strlen(c->comm); return c->comm; }
        return NULL;
    case 'k':
        if (!strcmp(f, "key") && c->has_key) { *len = strlen(c->key); return c->key; }
        return NULL;
    case 'u':
        if (!strcmp(f, "uid")) return num(c, N_UID, len);
        return NULL;
    case 'n':
        if (!strcmp(f, "name")) return str2(ev, "file", "path", len);
        return NULL;
    }
    return NULL;
}

/* key="..." (or key=value) in an auditd record; "(null)" means none. */
static void find_key(sigma_json_ctx *c, const char *raw) {
    for (const char *p = raw; (p = strstr(p, "key=")); p += 4) {
        if (p != raw && p[-1] != ' ') continue;
        const char *v = p + 4, *e;
        if (*v == '"') { v++; e = strchr(v, '"'); if (!e) return; }
        else { e = v; while (*e && *e != ' ' && *e != '\n' && *e != '\x1d') e++; }
        size_t n = (size_t)(e - v);
        if (n == 0 || n >= sizeof c->key || (n == 6 && !memcmp(v, "(null)", 6))) return;
        memcpy(c->key, v, n);
        c->key[n] = 0;
        c->has_key = 1;
        return;
    }
}

void sigma_view_from_event(sigma_event_view *view, sigma_json_ctx *c, const void *evp) {
    const json_t *ev = evp;
    memset(view, 0, sizeof *view);
    memset(c, 0, sizeof *c);
    c->event = ev;
    view->get = get;
    view->ctx = c;

    json_t *ppid = path2(ev, "process", "ppid");
    if (!ppid) ppid = path2(ev, "parent", "pid");
    render(c, N_PID, path2(ev, "process", "pid"));
    render(c, N_PPID, ppid);
    render(c, N_UID, path2(ev, "user", "uid"));
    render(c, N_AUID, path2(ev, "user", "auid"));
    render(c, N_EUID, path2(ev, "user", "euid"));
    render(c, N_SPORT, path2(ev, "network", "src_port"));
    render(c, N_DPORT, path2(ev, "network", "dst_port"));

    size_t n;
    const char *img = str2(ev, "process", "path", &n);
    if (!img) {
        json_t *argv = path2(ev, "process", "argv");
        json_t *a0 = json_is_array(argv) ? json_array_get(argv, 0) : NULL;
        img = json_is_string(a0) ? json_string_value(a0) : NULL;
    }
    if (img && *img) {
        const char *b = strrchr(img, '/');
        b = b ? b + 1 : img;
        snprintf(c->comm, sizeof c->comm, "%s", b);
        c->has_comm = c->comm[0] != 0;
    }

    const char *format = NULL;
    json_t *fmt = path2(ev, "source", "format");
    if (json_is_string(fmt)) format = json_string_value(fmt);
    json_t *raw = json_object_get(ev, "raw");
    if (json_is_string(raw)) {
        view->raw = json_string_value(raw);
        view->raw_len = json_string_length(raw);
    } else {
        view->raw = str2(ev, "process", "cmdline", &view->raw_len);
    }
    if (format && !strcmp(format, "auditd") && json_is_string(raw)) find_key(c, json_string_value(raw));

    json_t *kind = json_object_get(ev, "kind");
    const char *k = json_is_string(kind) ? json_string_value(kind) : "";
    if (!strcmp(k, "exec")) view->category = "process_creation";
    else if (!strcmp(k, "network")) view->category = "network_connection";
    else if (!strcmp(k, "file")) view->category = "file_event";
    if (format) {
        if (!strcmp(format, "auditd")) { view->product = "linux"; view->service = "auditd"; }
        else if (!strcmp(format, "sysmon")) view->product = "linux";
        else if (!strcmp(format, "eslogger")) view->product = "macos";
        else if (!strcmp(format, "sshd")) view->service = "sshd";
    }
}
