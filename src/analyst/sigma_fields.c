/*
 * sigma_fields — the canonical event (contract v1, a jansson object) seen
 * through Sigma's field names.  docs/sigma.md has the table; in short:
 *
 *   process_creation   Image, CommandLine, CurrentDirectory, User, LogonId,
 *                      ProcessId, ParentProcessId, ParentImage,
 *                      ParentCommandLine
 *   auditd             type, a0..aN, exe, comm, key, uid, auid, euid, name,
 *                      SYSCALL (sigma_match_event adds the SYSCALL-record view)
 *   network_connection DestinationIp, DestinationPort, SourceIp, SourcePort,
 *                      Initiated, Protocol
 *   file_event         TargetFilename
 *
 * Design: integer fields and the derived strings (comm, key) are rendered
 * into the caller's sigma_json_ctx the first time a rule asks for them, and
 * kept there, so every pointer the accessor returns stays valid as long as
 * the event and the context: nothing here allocates, and an event whose
 * rules look only at CommandLine costs one object lookup.  Absent facts stay absent
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

static json_t *num_src(const json_t *ev, int slot) {
    switch (slot) {
    case N_PID: return path2(ev, "process", "pid");
    case N_PPID: {
        json_t *v = path2(ev, "process", "ppid");
        return v ? v : path2(ev, "parent", "pid");
    }
    case N_UID: return path2(ev, "user", "uid");
    case N_AUID: return path2(ev, "user", "auid");
    case N_EUID: return path2(ev, "user", "euid");
    case N_SPORT: return path2(ev, "network", "src_port");
    default: return path2(ev, "network", "dst_port");
    }
}

/* An integer field as text (a string holding one is taken as is). */
static const char *num(sigma_json_ctx *c, int slot, size_t *len) {
    if (!c->num_state[slot]) {
        const json_t *v = num_src(c->event, slot);
        c->num_state[slot] = 1;
        if (json_is_integer(v)) {
            snprintf(c->num[slot], sizeof c->num[slot], "%lld", (long long)json_integer_value(v));
            c->num_state[slot] = 2;
        } else if (json_is_string(v) && json_string_length(v) < sizeof c->num[slot]) {
            snprintf(c->num[slot], sizeof c->num[slot], "%s", json_string_value(v));
            c->num_state[slot] = 2;
        }
    }
    if (c->num_state[slot] != 2) return NULL;
    *len = strlen(c->num[slot]);
    return c->num[slot];
}

static void find_key(sigma_json_ctx *c, const char *raw);
static void make_comm(sigma_json_ctx *c);

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
    case 'T':
        if (!strcmp(f, "TargetFilename")) return str2(ev, "file", "path", len);
        return NULL;
    case 't':
        if (!strcmp(f, "type")) {
            json_t *k = json_object_get(ev, "kind");
            if (!json_is_string(k)) return NULL;
            if (!c->syscall_record && !strcmp(json_string_value(k), "exec")) { *len = 6; return "EXECVE"; }
            *len = 7;
            return "SYSCALL";
        }
        return NULL;
    case 'S':
        if (!strcmp(f, "SourceIp")) return str2(ev, "network", "src_ip", len);
        if (!strcmp(f, "SourcePort")) return num(c, N_SPORT, len);
        if (!strcmp(f, "SYSCALL")) {
            const char *k = json_string_value(json_object_get(ev, "kind"));
            if (!k || strcmp(k, "exec")) return NULL;
            *len = 6;
            return "execve";
        }
        return NULL;
    case 'a':
        if (f[1] >= '0' && f[1] <= '9') {
            if (c->syscall_record) return NULL;    /* a SYSCALL record's aN are raw syscall arguments */
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
        if (!strcmp(f, "comm")) {
            if (!c->comm_state) make_comm(c);
            if (c->comm_state != 2) return NULL;
            *len = strlen(c->comm);
            return c->comm;
        }
        return NULL;
    case 'k':
        if (!strcmp(f, "key")) {
            if (!c->key_state) {
                c->key_state = 1;
                const char *fmt = json_string_value(path2(ev, "source", "format"));
                const char *raw = json_string_value(json_object_get(ev, "raw"));
                if (fmt && raw && !strcmp(fmt, "auditd")) find_key(c, raw);
            }
            if (c->key_state != 2) return NULL;
            *len = strlen(c->key);
            return c->key;
        }
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
        c->key_state = 2;
        return;
    }
}

/* comm: basename of the image (or of argv[0]), cut as the kernel cuts it. */
static void make_comm(sigma_json_ctx *c) {
    c->comm_state = 1;
    size_t n;
    const char *img = str2(c->event, "process", "path", &n);
    if (!img) {
        json_t *argv = path2(c->event, "process", "argv");
        json_t *a0 = json_is_array(argv) ? json_array_get(argv, 0) : NULL;
        img = json_is_string(a0) ? json_string_value(a0) : NULL;
    }
    if (!img || !*img) return;
    const char *b = strrchr(img, '/');
    b = b ? b + 1 : img;
    snprintf(c->comm, sizeof c->comm, "%s", b);
    if (c->comm[0]) c->comm_state = 2;
}

void sigma_view_from_event(sigma_event_view *view, sigma_json_ctx *c, const void *evp) {
    const json_t *ev = evp;
    memset(view, 0, sizeof *view);
    memset(c->num_state, 0, sizeof c->num_state);
    c->comm_state = c->key_state = 0;
    c->syscall_record = 0;
    c->event = ev;
    view->get = get;
    view->ctx = c;

    const char *format = json_string_value(path2(ev, "source", "format"));
    json_t *raw = json_object_get(ev, "raw");
    if (json_is_string(raw)) {
        view->raw = json_string_value(raw);
        view->raw_len = json_string_length(raw);
    } else {
        view->raw = str2(ev, "process", "cmdline", &view->raw_len);
    }

    const char *k = json_string_value(json_object_get(ev, "kind"));
    if (!k) k = "";
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

/* Insert hit H into the sorted list L (N entries, room for CAP) unless its
 * rule is there; returns 1 if it was new. */
static int merge_hit(sigma_hit *l, int *n, int cap, const sigma_hit *h) {
    int i = 0;
    while (i < *n && l[i].rule < h->rule) i++;
    if (i < *n && l[i].rule == h->rule) return 0;
    if (*n < cap) {
        memmove(&l[i + 1], &l[i], sizeof *l * (size_t)(*n - i));
        l[i] = *h;
        (*n)++;
    } else if (i < cap) {                 /* full: keep the first CAP by rule order */
        memmove(&l[i + 1], &l[i], sizeof *l * (size_t)(cap - 1 - i));
        l[i] = *h;
    }
    return 1;
}

int sigma_match_event(const sigma_rules *rs, const void *event, sigma_hit *hits, int max) {
    enum { CAP = 64 };
    sigma_json_ctx ctx;
    sigma_event_view view;
    sigma_hit a[CAP], b[CAP];
    sigma_view_from_event(&view, &ctx, event);
    int na = sigma_match(rs, &view, a, CAP);
    int total = na, nw = na < CAP ? na : CAP;
    if (view.service && !strcmp(view.service, "auditd") && view.category &&
        !strcmp(view.category, "process_creation")) {
        /* The SYSCALL record: only rules without a category (the auditd
         * service rules, product-wide keyword rules) can differ. */
        ctx.syscall_record = 1;
        view.category = NULL;
        int nb = sigma_match(rs, &view, b, CAP);
        for (int i = 0; i < nb && i < CAP; i++) total += merge_hit(a, &nw, CAP, &b[i]);
        if (nb > CAP) total += nb - CAP;  /* unseen beyond CAP: counted, maybe twice */
    }
    for (int i = 0; hits && i < nw && i < max; i++) hits[i] = a[i];
    return total;
}
