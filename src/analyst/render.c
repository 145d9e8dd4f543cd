/*
 * render — see render.h.
 */
#include "render.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "util.h"

/* ---- growing buffer ---- */

void rbuf_free(rbuf *b) {
    nj_free(b->s);
    memset(b, 0, sizeof *b);
}

void rbuf_reset(rbuf *b) {
    b->len = 0;
    b->oom = false;
    if (b->s) b->s[0] = 0;
}

static bool rbuf_room(rbuf *b, size_t n) {
    if (b->oom) return false;
    if (b->len + n + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *s = nj_realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void rbuf_put(rbuf *b, const char *s, size_t n) {
    if (!rbuf_room(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void rbuf_puts(rbuf *b, const char *s) { rbuf_put(b, s, strlen(s)); }

void rbuf_printf(rbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        rbuf_put(b, tmp, (size_t)n);
        return;
    }
    if (!rbuf_room(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rbuf_put_quoted(rbuf *b, const char *s, size_t n) {
    rbuf_put(b, "\"", 1);
    size_t run = 0;   /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\t') esc = "\\t";
        else if (c == '\r') esc = "\\r";
        else if (c < 0x20 || c == 0x7f || c == '<' || c == '>') {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        if (!esc) continue;
        rbuf_put(b, s + run, i - run);
        rbuf_puts(b, esc);
        run = i + 1;
    }
    rbuf_put(b, s + run, n - run);
    rbuf_put(b, "\"", 1);
}

/* ---- masking volatile parts (cache keys) ---- */

static bool is_tmp_dir(const char *s, size_t n) {
    static const char *const dirs[] = {"/tmp/", "/var/tmp/", "/dev/shm/", "/private/tmp/",
                                       "/private/var/folders/", "/var/folders/"};
    for (size_t i = 0; i < NJ_ARRAY_LEN(dirs); i++) {
        size_t l = strlen(dirs[i]);
        if (n >= l && !memcmp(s, dirs[i], l)) return true;
    }
    return false;
}

/* A word that looks generated: 8+ characters of hex, or 16+ of base64 with
 * at least one digit. */
static bool looks_random(const char *s, size_t n) {
    if (n < 8) return false;
    size_t hex = 0, b64 = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isxdigit(c)) hex++;
        if (isalnum(c) || c == '+' || c == '/' || c == '=' || c == '_' || c == '-') b64++;
        if (isdigit(c)) digits++;
    }
    return (hex == n && digits > 0) || (n >= 16 && b64 == n && digits > 0);
}

/* Copy s[0..n) with temp file names and random-looking words masked.
 * Words are split at whitespace and shell punctuation; a word under a
 * temporary directory keeps its directory; elsewhere each '/'- or
 * '.'-separated part that looks generated is masked. */
static void put_masked(rbuf *b, const char *s, size_t n) {
    rbuf tmp = {0};
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !isspace((unsigned char)s[j]) && !strchr(";|&<>()`'\"=,", s[j])) j++;
        if (j == i) {   /* a separator */
            rbuf_put(&tmp, s + i, 1);
            i++;
            continue;
        }
        const char *w = s + i;
        size_t wl = j - i;
        if (is_tmp_dir(w, wl)) {
            const char *slash = w + wl;
            while (slash > w && slash[-1] != '/') slash--;
            rbuf_put(&tmp, w, (size_t)(slash - w));
            rbuf_puts(&tmp, "<tmp>");
        } else {
            /* path segments and dotted parts that look generated */
            size_t k = 0;
            while (k < wl) {
                size_t e = k;
                while (e < wl && w[e] != '/' && w[e] != '.') e++;
                if (looks_random(w + k, e - k)) rbuf_puts(&tmp, "<hex>");
                else rbuf_put(&tmp, w + k, e - k);
                if (e < wl) rbuf_put(&tmp, w + e, 1);
                k = e + 1;
            }
        }
        i = j;
    }
    if (tmp.oom) b->oom = true;
    else rbuf_put_quoted(b, tmp.s ? tmp.s : "", tmp.len);
    rbuf_free(&tmp);
}

/* ---- rendering ---- */

static void line_str(rbuf *b, const char *label, const char *v, bool mask) {
    if (!v) return;
    rbuf_puts(b, label);
    rbuf_puts(b, ": ");
    size_t n = strlen(v);
    if (n <= RENDER_VALUE_MAX) {
        if (mask) put_masked(b, v, n);
        else rbuf_put_quoted(b, v, n);
    } else {
        /* head and tail, both at character boundaries: padding in the
         * middle cannot push the end of a command out of sight */
        size_t head = RENDER_VALUE_MAX / 2, tail = n - RENDER_VALUE_MAX / 2;
        while (head > 0 && ((unsigned char)v[head] & 0xC0) == 0x80) head--;
        while (tail < n && ((unsigned char)v[tail] & 0xC0) == 0x80) tail++;
        if (mask) put_masked(b, v, head);
        else rbuf_put_quoted(b, v, head);
        rbuf_printf(b, " (%zu bytes cut) ", tail - head);
        if (mask) put_masked(b, v + tail, n - tail);
        else rbuf_put_quoted(b, v + tail, n - tail);
    }
    rbuf_puts(b, "\n");
}

static void line_int(rbuf *b, const char *label, const json_t *ev, ev_field f, bool mask) {
    long long v;
    if (event_get_int(ev, f, &v) != 0) return;
    if (mask) rbuf_printf(b, "%s: <n>\n", label);
    else rbuf_printf(b, "%s: %lld\n", label, v);
}

int render_event(rbuf *b, const json_t *ev, bool mask) {
    const char *kind = event_get_str(ev, EF_KIND);
    rbuf_printf(b, "kind: %s\n", kind ? kind : "other");
    const char *fmt = event_get_str(ev, EF_SOURCE_FORMAT);
    if (fmt) rbuf_printf(b, "source: %s\n", fmt);

    /* who */
    const char *user = event_get_str(ev, EF_USER_NAME);
    long long uid;
    if (user) line_str(b, "user", user, false);
    else if (event_get_int(ev, EF_USER_UID, &uid) == 0) rbuf_printf(b, "user: uid %lld\n", uid);
    long long euid;
    if (event_get_int(ev, EF_USER_EUID, &euid) == 0 && (event_get_int(ev, EF_USER_UID, &uid) != 0 || uid != euid))
        rbuf_printf(b, "effective uid: %lld\n", euid);
    line_str(b, "login user", event_get_str(ev, EF_USER_LOGIN), false);

    /* what ran */
    line_str(b, "process", event_get_str(ev, EF_PROC_PATH), mask);
    line_str(b, "command line", event_get_str(ev, EF_PROC_CMDLINE), mask);
    line_str(b, "working directory", event_get_str(ev, EF_PROC_CWD), mask);
    line_str(b, "tty", event_get_str(ev, EF_PROC_TTY), false);
    line_str(b, "signing id", event_get_str(ev, EF_PROC_SIGNING_ID), false);
    line_str(b, "team id", event_get_str(ev, EF_PROC_TEAM_ID), false);
    json_t *pb = event_get(ev, EF_PROC_PLATFORM_BINARY);
    if (json_is_boolean(pb)) rbuf_printf(b, "platform binary: %s\n", json_is_true(pb) ? "yes" : "no");
    line_int(b, "exit code", ev, EF_PROC_EXIT_CODE, false);
    line_str(b, "parent process", event_get_str(ev, EF_PARENT_PATH), mask);
    line_str(b, "parent command line", event_get_str(ev, EF_PARENT_CMDLINE), mask);

    /* network */
    line_str(b, "protocol", event_get_str(ev, EF_NET_PROTOCOL), false);
    line_str(b, "direction", event_get_str(ev, EF_NET_DIRECTION), false);
    line_str(b, "source address", event_get_str(ev, EF_NET_SRC_IP), false);
    line_str(b, "destination address", event_get_str(ev, EF_NET_DST_IP), false);
    line_int(b, "destination port", ev, EF_NET_DST_PORT, false);

    /* authentication */
    line_str(b, "auth service", event_get_str(ev, EF_AUTH_SERVICE), false);
    line_str(b, "auth result", event_get_str(ev, EF_AUTH_RESULT), false);
    line_str(b, "auth method", event_get_str(ev, EF_AUTH_METHOD), false);
    line_str(b, "auth user", event_get_str(ev, EF_AUTH_USER), false);
    json_t *inv = event_get(ev, EF_AUTH_INVALID_USER);
    if (json_is_true(inv)) rbuf_puts(b, "auth user exists: no\n");
    line_str(b, "auth from", event_get_str(ev, EF_AUTH_SRC_IP), false);
    line_int(b, "attempts", ev, EF_AUTH_COUNT, mask);
    json_t *users = event_get(ev, EF_AUTH_USERS);
    if (json_is_array(users) && json_array_size(users) > 0) {
        rbuf_puts(b, "users tried:");
        size_t i;
        json_t *u;
        json_array_foreach(users, i, u) {
            if (i >= 16) { rbuf_puts(b, " ..."); break; }
            rbuf_puts(b, " ");
            rbuf_put_quoted(b, json_string_value(u), json_string_length(u));
        }
        rbuf_puts(b, "\n");
    }
    line_int(b, "failures before", ev, EF_AUTH_AFTER_FAILURES, mask);

    /* files */
    line_str(b, "file", event_get_str(ev, EF_FILE_PATH), mask);
    line_str(b, "file action", event_get_str(ev, EF_FILE_ACTION), false);
    line_str(b, "audit key", event_get_str(ev, EF_AUDIT_KEY), false);
    return b->oom ? -ENOMEM : 0;
}

const char *render_query(rbuf *b, const json_t *ev, size_t *len) {
    const char *cmd = event_get_str(ev, EF_PROC_CMDLINE);
    if (!cmd) cmd = event_get_str(ev, EF_PROC_PATH);
    if (cmd) {
        *len = strlen(cmd);
        return cmd;
    }
    rbuf_reset(b);
    const char *kind = event_get_str(ev, EF_KIND);
    if (kind && (!strcmp(kind, "auth") || !strcmp(kind, "login"))) {
        const char *svc = event_get_str(ev, EF_AUTH_SERVICE);
        const char *res = event_get_str(ev, EF_AUTH_RESULT);
        const char *meth = event_get_str(ev, EF_AUTH_METHOD);
        const char *user = event_get_str(ev, EF_AUTH_USER);
        rbuf_printf(b, "%s %s %s%s %s", svc ? svc : "login", res ? res : "", meth ? meth : "",
                    json_is_true(event_get(ev, EF_AUTH_INVALID_USER)) ? " invalid user" : "",
                    user ? user : "");
    } else if (kind && !strcmp(kind, "network")) {
        long long port = 0;
        event_get_int(ev, EF_NET_DST_PORT, &port);
        const char *proto = event_get_str(ev, EF_NET_PROTOCOL);
        rbuf_printf(b, "connect %s %lld", proto ? proto : "", port);
    } else {
        const char *f = event_get_str(ev, EF_FILE_PATH);
        if (f) rbuf_puts(b, f);
    }
    if (b->oom || b->len == 0) return NULL;
    *len = b->len;
    return b->s;
}
