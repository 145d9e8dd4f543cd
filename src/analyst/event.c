/*
 * event — canonical event v1: schema table, setters, validation, serialiser.
 * See event.h for the contract and docs/event.md for the field reference.
 *
 * The schema is one static table indexed by ev_field.  Each entry names the
 * field's JSON key, the object that holds it (-1 for the top level), its
 * type, its integer range and, for a few strings, the closed set of values.
 * Because members of an object follow the object's own entry in the enum,
 * "the members of X" is the run of entries after X whose parent is X, and
 * enum order is serialisation order.
 */
#include "event.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const k_kinds[] = {"exec", "fork", "exit", "auth", "login", "logout",
                                      "network", "file", "other", NULL};
static const char *const k_formats[] = {"eslogger", "auditd", "osquery", "sysmon", "sshd",
                                        "jsonl", "cmdline", "api", NULL};
static const char *const k_results[] = {"success", "failure", NULL};
static const char *const k_dirs[] = {"inbound", "outbound", NULL};

typedef struct ev_spec {
    const char *path;          /* "process.pid" */
    const char *key;           /* "pid" */
    int parent;                /* ev_field of the enclosing object, -1 = top */
    ev_type type;
    long long min, max;        /* EVT_INT range */
    bool required;
    const char *const *oneof;  /* closed value set for strings, or NULL */
} ev_spec;

#define ID_MAX  4294967295LL   /* uid/pid range: unsigned 32-bit */
#define OBJ(f, k)            [f] = {k, k, -1, EVT_OBJECT, 0, 0, false, NULL}
#define STR(f, p, k, par)    [f] = {p, k, par, EVT_STRING, 0, 0, false, NULL}
#define ENUM(f, p, k, par, s) [f] = {p, k, par, EVT_STRING, 0, 0, false, s}
#define INT(f, p, k, par, lo, hi) [f] = {p, k, par, EVT_INT, lo, hi, false, NULL}
#define BOOL(f, p, k, par)   [f] = {p, k, par, EVT_BOOL, 0, 0, false, NULL}
#define STRS(f, p, k, par)   [f] = {p, k, par, EVT_STRINGS, 0, 0, false, NULL}

static const ev_spec k_spec[EF_COUNT] = {
    [EF_V]    = {"v", "v", -1, EVT_INT, 1, 1, true, NULL},
    [EF_ID]   = {"id", "id", -1, EVT_STRING, 0, 0, true, NULL},
    [EF_KIND] = {"kind", "kind", -1, EVT_STRING, 0, 0, true, k_kinds},
    [EF_TIME] = {"time", "time", -1, EVT_STRING, 0, 0, true, NULL},
    STR(EF_HOST, "host", "host", -1),
    OBJ(EF_SOURCE, "source"),
    ENUM(EF_SOURCE_FORMAT, "source.format", "format", EF_SOURCE, k_formats),
    STR(EF_SOURCE_NAME, "source.name", "name", EF_SOURCE),
    INT(EF_SOURCE_LINE, "source.line", "line", EF_SOURCE, 0, INT64_MAX),
    OBJ(EF_USER, "user"),
    STR(EF_USER_NAME, "user.name", "name", EF_USER),
    INT(EF_USER_UID, "user.uid", "uid", EF_USER, 0, ID_MAX),
    INT(EF_USER_EUID, "user.euid", "euid", EF_USER, 0, ID_MAX),
    INT(EF_USER_AUID, "user.auid", "auid", EF_USER, 0, ID_MAX),
    STR(EF_USER_LOGIN, "user.login", "login", EF_USER),
    OBJ(EF_PROCESS, "process"),
    INT(EF_PROC_PID, "process.pid", "pid", EF_PROCESS, 0, ID_MAX),
    INT(EF_PROC_PPID, "process.ppid", "ppid", EF_PROCESS, 0, ID_MAX),
    STR(EF_PROC_PATH, "process.path", "path", EF_PROCESS),
    STR(EF_PROC_NAME, "process.name", "name", EF_PROCESS),
    STRS(EF_PROC_ARGV, "process.argv", "argv", EF_PROCESS),
    STR(EF_PROC_CMDLINE, "process.cmdline", "cmdline", EF_PROCESS),
    STR(EF_PROC_CWD, "process.cwd", "cwd", EF_PROCESS),
    STR(EF_PROC_TTY, "process.tty", "tty", EF_PROCESS),
    STR(EF_PROC_SIGNING_ID, "process.signing_id", "signing_id", EF_PROCESS),
    STR(EF_PROC_TEAM_ID, "process.team_id", "team_id", EF_PROCESS),
    BOOL(EF_PROC_PLATFORM_BINARY, "process.platform_binary", "platform_binary", EF_PROCESS),
    INT(EF_PROC_EXIT_CODE, "process.exit_code", "exit_code", EF_PROCESS, INT64_MIN, INT64_MAX),
    STR(EF_PROC_GUID, "process.guid", "guid", EF_PROCESS),
    OBJ(EF_PARENT, "parent"),
    INT(EF_PARENT_PID, "parent.pid", "pid", EF_PARENT, 0, ID_MAX),
    STR(EF_PARENT_PATH, "parent.path", "path", EF_PARENT),
    STR(EF_PARENT_CMDLINE, "parent.cmdline", "cmdline", EF_PARENT),
    STR(EF_PARENT_GUID, "parent.guid", "guid", EF_PARENT),
    OBJ(EF_NETWORK, "network"),
    STR(EF_NET_PROTOCOL, "network.protocol", "protocol", EF_NETWORK),
    ENUM(EF_NET_DIRECTION, "network.direction", "direction", EF_NETWORK, k_dirs),
    STR(EF_NET_SRC_IP, "network.src_ip", "src_ip", EF_NETWORK),
    INT(EF_NET_SRC_PORT, "network.src_port", "src_port", EF_NETWORK, 0, 65535),
    STR(EF_NET_DST_IP, "network.dst_ip", "dst_ip", EF_NETWORK),
    INT(EF_NET_DST_PORT, "network.dst_port", "dst_port", EF_NETWORK, 0, 65535),
    OBJ(EF_AUTH, "auth"),
    ENUM(EF_AUTH_RESULT, "auth.result", "result", EF_AUTH, k_results),
    STR(EF_AUTH_METHOD, "auth.method", "method", EF_AUTH),
    STR(EF_AUTH_USER, "auth.user", "user", EF_AUTH),
    STR(EF_AUTH_SRC_IP, "auth.src_ip", "src_ip", EF_AUTH),
    INT(EF_AUTH_SRC_PORT, "auth.src_port", "src_port", EF_AUTH, 0, 65535),
    STR(EF_AUTH_SERVICE, "auth.service", "service", EF_AUTH),
    STR(EF_AUTH_KEY_TYPE, "auth.key_type", "key_type", EF_AUTH),
    STR(EF_AUTH_KEY_FP, "auth.key_fingerprint", "key_fingerprint", EF_AUTH),
    BOOL(EF_AUTH_INVALID_USER, "auth.invalid_user", "invalid_user", EF_AUTH),
    INT(EF_AUTH_COUNT, "auth.count", "count", EF_AUTH, 1, INT64_MAX),
    STRS(EF_AUTH_USERS, "auth.users", "users", EF_AUTH),
    INT(EF_AUTH_AFTER_FAILURES, "auth.after_failures", "after_failures", EF_AUTH, 1, INT64_MAX),
    OBJ(EF_FILE, "file"),
    STR(EF_FILE_PATH, "file.path", "path", EF_FILE),
    STR(EF_FILE_ACTION, "file.action", "action", EF_FILE),
    OBJ(EF_AUDIT, "audit"),
    STR(EF_AUDIT_KEY, "audit.key", "key", EF_AUDIT),
    INT(EF_AUDIT_SYSCALL, "audit.syscall", "syscall", EF_AUDIT, 0, 65535),
    BOOL(EF_AUDIT_SUCCESS, "audit.success", "success", EF_AUDIT),
    STRS(EF_AUDIT_RECORDS, "audit.records", "records", EF_AUDIT),
    STR(EF_RAW, "raw", "raw", -1),
};

/* ---- allocator hook -------------------------------------------------- */

/* jansson's lexer does not survive a failed allocation: it drops the byte
 * it could not save and later hits assert(0) (jansson 2.14, load.c), or
 * returns a document with a cut string.  So while event_json_load() runs,
 * a failed allocation is served from a small per-thread emergency arena
 * instead, and the load is then discarded and reported as -ENOMEM.  Arena
 * blocks are never freed individually (json_free ignores them); the arena
 * is reset at the start of each load, when none can be live because every
 * document built during a failed load is destroyed before it returns.
 * Outside a load, a failure is returned to jansson as NULL, which its
 * object-building functions handle.  This is the only jansson allocator
 * of the process (the layers above call event_init() instead of
 * installing their own): with a second installer, whichever ran last
 * would win, and an arena block could reach plain nj_free. */
#define EMERGENCY_BYTES (64 * 1024)
static _Thread_local bool g_json_oom, g_in_load;
static _Thread_local _Alignas(16) unsigned char g_arena[EMERGENCY_BYTES];
static _Thread_local size_t g_arena_used;

/* The scratch arena being loaded into or released (event_json_load_scratch),
 * else NULL. */
struct event_scratch {
    unsigned char *mem;
    size_t         cap, used;
    bool           overflow;   /* a node of the live document is on the heap */
};
static _Thread_local event_scratch *g_scratch;

static void *json_alloc(size_t n) {
    event_scratch *s = g_scratch;
    if (s && g_in_load) {
        size_t need = (n + 15) & ~(size_t)15;
        if (need <= s->cap - s->used) {
            void *q = s->mem + s->used;
            s->used += need;
            return q;
        }
        s->overflow = true;
    }
    void *p = nj_malloc(n);
    if (p) return p;
    g_json_oom = true;
    if (!g_in_load) return NULL;
    size_t need = (n + 15) & ~(size_t)15;
    if (need > EMERGENCY_BYTES - g_arena_used) return NULL;
    p = g_arena + g_arena_used;
    g_arena_used += need;
    return p;
}
static void json_free(void *p) {
    if ((unsigned char *)p >= g_arena && (unsigned char *)p < g_arena + EMERGENCY_BYTES) return;
    event_scratch *s = g_scratch;
    if (s && (unsigned char *)p >= s->mem && (unsigned char *)p < s->mem + s->cap) return;
    nj_free(p);
}
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void init_once(void) { json_set_alloc_funcs(json_alloc, json_free); }
void event_init(void) { pthread_once(&g_once, init_once); }

json_t *event_json_load(const char *text, size_t n, size_t flags, json_error_t *je, int *err) {
    event_init();
    /* jansson refuses a document with invalid UTF-8 anywhere; a file name
     * with one stray byte must not hide the whole event, so such text is
     * sanitised first (each bad byte -> U+FFFD, which is valid in JSON
     * strings and cannot end one).  Raw NULs become U+FFFD as well. */
    char *fixed = NULL;
    if (!event_utf8_valid(text, n)) {
        size_t m;
        fixed = event_utf8_sanitize(text, n, n * 3 + 1, &m);
        if (!fixed) {
            memset(je, 0, sizeof *je);
            if (err) *err = -ENOMEM;
            return NULL;
        }
        text = fixed;
        n = m;
    }
    json_t *j = event_json_parse(text, n, flags, je, err);
    nj_free(fixed);
    return j;
}

json_t *event_json_parse(const char *text, size_t n, size_t flags, json_error_t *je, int *err) {
    event_init();
    g_json_oom = false;
    g_in_load = true;
    g_arena_used = 0;
    json_t *j = json_loadb(text, n, flags, je);
    g_in_load = false;
    if (g_json_oom || (!j && json_error_code(je) == json_error_out_of_memory)) {
        json_decref(j);
        if (err) *err = -ENOMEM;
        return NULL;
    }
    if (!j && err) *err = NJ_EFORMAT;
    return j;
}

#define SCRATCH_MIN (64u << 10)
#define SCRATCH_MAX (8u << 20)

event_scratch *event_scratch_new(int *err) {
    event_scratch *s = nj_calloc(1, sizeof *s);
    if (!s) {
        if (err) *err = nj_fail(-ENOMEM, "event: out of memory");
        return NULL;
    }
    if (err) *err = 0;
    return s;   /* the arena itself comes with the first load */
}

void event_scratch_free(event_scratch *s) {
    if (!s) return;
    nj_free(s->mem);
    nj_free(s);
}

json_t *event_json_load_scratch(event_scratch *s, const char *text, size_t n, size_t flags, json_error_t *je,
                                int *err) {
    if (!s->mem) {
        /* a failed allocation leaves cap 0: every node then goes to the heap */
        s->mem = nj_malloc(SCRATCH_MIN);
        s->cap = s->mem ? SCRATCH_MIN : 0;
    }
    s->used = 0;
    s->overflow = false;
    g_scratch = s;
    json_t *j = event_json_load(text, n, flags, je, err);
    g_scratch = NULL;
    if (!j) event_scratch_release(s, NULL);
    return j;
}

void event_scratch_release(event_scratch *s, json_t *j) {
    if (s->overflow) {
        /* some nodes are on the heap: free them (arena nodes are skipped) */
        g_scratch = s;
        json_decref(j);
        g_scratch = NULL;
        if (s->cap < SCRATCH_MAX) {
            unsigned char *m = nj_malloc(s->cap ? s->cap * 2 : SCRATCH_MIN);
            if (m) {
                nj_free(s->mem);
                s->mem = m;
                s->cap = s->cap ? s->cap * 2 : SCRATCH_MIN;
            }
        }
    }
    s->used = 0;
    s->overflow = false;
}

char *event_json_dumps(const json_t *j, size_t flags) {
    event_init();
    if (!j) return NULL;
    g_json_oom = false;
    char *s = json_dumps(j, flags);
    if (g_json_oom) {
        json_free(s);
        nj_fail(-ENOMEM, "out of memory while writing JSON");
        return NULL;
    }
    return s;
}

/* ---- schema lookups -------------------------------------------------- */

int event_field_lookup(const char *path) {
    if (!path) return -1;
    for (int f = 0; f < EF_COUNT; f++)
        if (strcmp(k_spec[f].path, path) == 0) return f;
    return -1;
}
const char *event_field_path(ev_field f) {
    return (unsigned)f < EF_COUNT ? k_spec[f].path : "?";
}
ev_type event_field_type(ev_field f) {
    return (unsigned)f < EF_COUNT ? k_spec[f].type : EVT_OBJECT;
}

/* ---- UTF-8 ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if the byte at s
 * does not start one (NUL counts as invalid: C consumers would cut there). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c >= 0x01 && c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;          /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0;         /* surrogates */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;          /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0;         /* > U+10FFFF */
        return 4;
    }
    return 0;
}

bool event_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII without NUL, eight bytes at a time: no byte has its top
         * bit set, and none is zero (the classic has-zero-byte test) */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if ((w | ((w - 0x0101010101010101ull) & ~w)) & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (u[i] >= 0x01 && u[i] < 0x80) { i++; continue; }
        size_t k = utf8_seq(u + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

char *event_utf8_sanitize(const char *s, size_t n, size_t max, size_t *out_len) {
    const unsigned char *u = (const unsigned char *)s;
    /* worst case every byte becomes 3; but never keep more than max */
    uint64_t want;
    if (!nj_mul_ok(n, 3, &want)) want = UINT64_MAX;
    size_t cap = (size_t)NJ_MIN(want, (uint64_t)max) + 1;
    char *out = nj_malloc(cap);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t k = utf8_seq(u + i, n - i);
        const char *src = (const char *)u + i;
        size_t w = k;
        if (!k) { src = "\xEF\xBF\xBD"; w = 3; k = 1; }
        if (o + w > max) break;                   /* cut at a character boundary */
        memcpy(out + o, src, w);
        o += w;
        i += k;
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

/* ---- time ------------------------------------------------------------ */

int64_t event_days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void event_time_format(int64_t sec, long usec, char buf[32]) {
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) { rem += 86400; days--; }
    int64_t y; int m, d;
    civil_from_days(days, &y, &m, &d);
    if (usec < 0 || usec > 999999) usec = 0;
    int yy = y < 0 ? 0 : y > 9999 ? 9999 : (int)y;   /* RFC 3339 has four-digit years */
    snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", yy, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60), (int)usec);
}

static int digits(const char *s, size_t n, size_t at, int k, int *out) {
    if (at + (size_t)k > n) return -1;
    int v = 0;
    for (int i = 0; i < k; i++) {
        char c = s[at + i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

int event_time_parse(const char *s, size_t n, int64_t *sec, long *usec) {
    int Y, M, D, h, mi, se;
    if (!s || digits(s, n, 0, 4, &Y) || n < 19 || s[4] != '-' || digits(s, n, 5, 2, &M) ||
        s[7] != '-' || digits(s, n, 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s, n, 11, 2, &h) || s[13] != ':' || digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        digits(s, n, 17, 2, &se))
        return -EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || se > 60)
        return -EINVAL;
    if (M == 2 && D == 29 && !((Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0)) return -EINVAL;
    size_t i = 19;
    long us = 0;
    if (i < n && s[i] == '.') {
        i++;
        int nd = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nd < 6) us = us * 10 + (s[i] - '0');
            nd++; i++;
        }
        if (nd == 0) return -EINVAL;
        for (; nd < 6; nd++) us *= 10;
    }
    int off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
            digits(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != n) return -EINVAL;
    if (se == 60) se = 59;                        /* leap second: clamp */
    *sec = event_days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + se - off;
    *usec = us;
    return 0;
}

/* ---- setters --------------------------------------------------------- */

static int bad_field(ev_field f, ev_type want) {
    if ((unsigned)f >= EF_COUNT) return nj_fail(-EINVAL, "event: field id %d out of range", (int)f);
    if (k_spec[f].type != want)
        return nj_fail(-EINVAL, "%s: wrong type for this setter", k_spec[f].path);
    return 0;
}

/* Stores value (a new reference, consumed even on failure) at field f,
 * creating the enclosing object if needed. */
static int put(json_t *ev, ev_field f, json_t *value) {
    if (!value) return nj_fail(-ENOMEM, "%s: out of memory", k_spec[f].path);
    int par = k_spec[f].parent;
    json_t *obj = ev;
    if (par >= 0) {
        obj = json_object_get(ev, k_spec[par].key);
        if (!obj) {
            obj = json_object();
            if (!obj || json_object_set_new(ev, k_spec[par].key, obj)) {
                json_decref(value);
                return nj_fail(-ENOMEM, "%s: out of memory", k_spec[f].path);
            }
        }
    }
    if (json_object_set_new(obj, k_spec[f].key, value)) {
        if (par >= 0 && json_object_size(obj) == 0) json_object_del(ev, k_spec[par].key);
        return nj_fail(-ENOMEM, "%s: out of memory", k_spec[f].path);
    }
    return 0;
}

/* A json string of s[0..n) made canonical (valid UTF-8, no NUL, cut to max). */
static json_t *make_string(const char *s, size_t n, size_t max) {
    if (n <= max && event_utf8_valid(s, n)) return json_stringn_nocheck(s, n);
    size_t m;
    char *t = event_utf8_sanitize(s, n, max, &m);
    if (!t) return NULL;
    json_t *j = json_stringn_nocheck(t, m);
    nj_free(t);
    return j;
}

int event_set_str(json_t *ev, ev_field f, const char *s, size_t n) {
    int rc = bad_field(f, EVT_STRING);
    if (rc) return rc;
    if (!s) return 0;
    if (n == (size_t)-1) n = strlen(s);
    if (n == 0) return 0;
    return put(ev, f, make_string(s, n, f == EF_RAW ? EV_RAW_MAX : EV_STR_MAX));
}

int event_set_raw(json_t *ev, const char *s, size_t n) { return event_set_str(ev, EF_RAW, s, n); }

int event_set_int(json_t *ev, ev_field f, long long v) {
    int rc = bad_field(f, EVT_INT);
    if (rc) return rc;
    if (v < k_spec[f].min || v > k_spec[f].max)
        return nj_fail(-EINVAL, "%s: %lld out of range [%lld, %lld]", k_spec[f].path, v,
                       k_spec[f].min, k_spec[f].max);
    return put(ev, f, json_integer(v));
}

int event_set_bool(json_t *ev, ev_field f, bool v) {
    int rc = bad_field(f, EVT_BOOL);
    if (rc) return rc;
    return put(ev, f, json_boolean(v));
}

int event_push_str(json_t *ev, ev_field f, const char *s, size_t n) {
    int rc = bad_field(f, EVT_STRINGS);
    if (rc) return rc;
    if (!s) { s = ""; n = 0; }
    if (n == (size_t)-1) n = strlen(s);
    json_t *arr = event_get(ev, f);
    if (arr && !json_is_array(arr)) return nj_fail(-EINVAL, "%s: not a list", k_spec[f].path);
    if (arr && json_array_size(arr) >= EV_ARGV_MAX) return 0;
    size_t total = 0;                                 /* bytes of the list so far */
    for (size_t i = 0; arr && i < json_array_size(arr); i++) total += json_string_length(json_array_get(arr, i));
    if (total >= EV_STR_MAX) return 0;
    json_t *str = make_string(s, n, EV_STR_MAX - total);
    if (!str) return nj_fail(-ENOMEM, "%s: out of memory", k_spec[f].path);
    if (!arr) {
        arr = json_array();
        if (!arr || json_array_append_new(arr, str)) {
            json_decref(arr);
            if (!arr) json_decref(str);
            return nj_fail(-ENOMEM, "%s: out of memory", k_spec[f].path);
        }
        return put(ev, f, arr);
    }
    if (json_array_append_new(arr, str)) return nj_fail(-ENOMEM, "%s: out of memory", k_spec[f].path);
    return 0;
}

void event_unset(json_t *ev, ev_field f) {
    if ((unsigned)f >= EF_COUNT || !ev) return;
    int par = k_spec[f].parent;
    if (par < 0) { json_object_del(ev, k_spec[f].key); return; }
    json_t *obj = json_object_get(ev, k_spec[par].key);
    if (!obj) return;
    json_object_del(obj, k_spec[f].key);
    if (json_object_size(obj) == 0) json_object_del(ev, k_spec[par].key);
}

int event_set_time(json_t *ev, int64_t sec, long usec) {
    char buf[32];
    if (usec < 0 || usec > 999999) return nj_fail(-EINVAL, "time: microseconds %ld out of range", usec);
    event_time_format(sec, usec, buf);
    return put(ev, EF_TIME, json_string_nocheck(buf));
}

/* ---- getters --------------------------------------------------------- */

json_t *event_get(const json_t *ev, ev_field f) {
    if ((unsigned)f >= EF_COUNT || !ev) return NULL;
    int par = k_spec[f].parent;
    const json_t *obj = ev;
    if (par >= 0) {
        obj = json_object_get(ev, k_spec[par].key);
        if (!obj) return NULL;
    }
    return json_object_get(obj, k_spec[f].key);
}

const char *event_get_str(const json_t *ev, ev_field f) {
    return json_string_value(event_get(ev, f));
}

int event_get_int(const json_t *ev, ev_field f, long long *out) {
    json_t *j = event_get(ev, f);
    if (!json_is_integer(j)) return -ENOENT;
    *out = json_integer_value(j);
    return 0;
}

/* ---- construction ---------------------------------------------------- */

static bool in_set(const char *const *set, const char *s, size_t n) {
    for (; *set; set++)
        if (strlen(*set) == n && memcmp(*set, s, n) == 0) return true;
    return false;
}

json_t *event_discard(json_t *ev, int rc, int *err) {
    json_decref(ev);
    if (err) *err = rc;
    return NULL;
}

json_t *event_new(const char *kind, const char *id, int *err) {
    event_init();
    int rc = -EINVAL;
    json_t *ev = NULL;
    if (!kind || !in_set(k_kinds, kind, strlen(kind))) {
        nj_fail(rc, "kind: '%s' is not a known kind", kind ? kind : "(null)");
        goto err;
    }
    if (!id || !*id) {
        nj_fail(rc, "id: required");
        goto err;
    }
    ev = json_object();
    if (!ev) { rc = nj_fail(-ENOMEM, "event: out of memory"); goto err; }
    if ((rc = event_set_int(ev, EF_V, EV_VERSION)) || (rc = event_set_str(ev, EF_ID, id, (size_t)-1)) ||
        (rc = put(ev, EF_KIND, json_string_nocheck(kind))))
        goto err;
    return ev;
err:
    return event_discard(ev, rc, err);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

int event_finish(json_t *ev) {
    json_t *argv = event_get(ev, EF_PROC_ARGV);
    const char *cmd = event_get_str(ev, EF_PROC_CMDLINE);
    if (json_is_array(argv) && json_array_size(argv) > 0 && !cmd) {
        size_t total = 0, na = json_array_size(argv);
        for (size_t i = 0; i < na; i++) total += json_string_length(json_array_get(argv, i)) + 1;
        char *buf = nj_malloc(total + 1);
        if (!buf) return nj_fail(-ENOMEM, "process.cmdline: out of memory");
        size_t o = 0;
        for (size_t i = 0; i < na; i++) {
            json_t *a = json_array_get(argv, i);
            if (i) buf[o++] = ' ';
            memcpy(buf + o, json_string_value(a), json_string_length(a));
            o += json_string_length(a);
        }
        /* all pieces are canonical UTF-8, so the only fix-up is the cut */
        if (o > EV_STR_MAX) {
            o = EV_STR_MAX;
            while (o > 0 && ((unsigned char)buf[o] & 0xC0) == 0x80) o--;
        }
        int rc = o ? put(ev, EF_PROC_CMDLINE, json_stringn_nocheck(buf, o)) : 0;
        nj_free(buf);
        return rc;
    }
    if (cmd && !argv) {
        size_t n = strlen(cmd), i = 0;
        while (i < n) {
            while (i < n && is_space(cmd[i])) i++;
            size_t b = i;
            while (i < n && !is_space(cmd[i])) i++;
            if (i > b) {
                int rc = event_push_str(ev, EF_PROC_ARGV, cmd + b, i - b);
                if (rc) { event_unset(ev, EF_PROC_ARGV); return rc; }
            }
        }
    }
    return 0;
}

json_t *event_from_cmdline(const char *line, size_t len, long n, int *err) {
    int rc;
    json_t *ev = NULL;
    if (!line) len = 0;
    while (len && is_space(line[len - 1])) len--;
    while (len && is_space(line[0])) { line++; len--; }
    if (!len) { rc = nj_fail(-EINVAL, "process.cmdline: empty command line"); goto err; }
    char id[48];
    snprintf(id, sizeof id, "cmdline:%ld", n);
    ev = event_new("exec", id, &rc);
    if (!ev) goto err;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((rc = event_set_time(ev, ts.tv_sec, ts.tv_nsec / 1000)) ||
        (rc = event_set_str(ev, EF_SOURCE_FORMAT, "cmdline", (size_t)-1)) ||
        (rc = event_set_str(ev, EF_PROC_CMDLINE, line, len)) || (rc = event_finish(ev)))
        goto err;
    return ev;
err:
    return event_discard(ev, rc, err);
}

/* ---- validation ------------------------------------------------------ */

static const char *jtype(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static int check_string(const char *path, const json_t *j, size_t max, bool allow_empty) {
    size_t n = json_string_length(j);
    const char *s = json_string_value(j);
    if (!allow_empty && n == 0) return nj_fail(-EINVAL, "%s: empty string (omit absent facts)", path);
    if (n > max) return nj_fail(-EINVAL, "%s: longer than %zu bytes", path, max);
    if (!event_utf8_valid(s, n)) return nj_fail(-EINVAL, "%s: not valid UTF-8 (or contains NUL)", path);
    return 0;
}

static int check_field(int f, const json_t *v) {
    const ev_spec *sp = &k_spec[f];
    const char *path = sp->path;
    switch (sp->type) {
    case EVT_STRING: {
        if (!json_is_string(v)) return nj_fail(-EINVAL, "%s: expected string, got %s", path, jtype(v));
        int rc = check_string(path, v, f == EF_RAW ? EV_RAW_MAX : EV_STR_MAX, false);
        if (rc) return rc;
        if (sp->oneof && !in_set(sp->oneof, json_string_value(v), json_string_length(v)))
            return nj_fail(-EINVAL, "%s: '%.64s' is not an allowed value", path, json_string_value(v));
        if (f == EF_TIME) {
            int64_t s; long us;
            if (event_time_parse(json_string_value(v), json_string_length(v), &s, &us))
                return nj_fail(-EINVAL, "%s: not an RFC 3339 time", path);
        }
        return 0;
    }
    case EVT_INT: {
        if (!json_is_integer(v)) return nj_fail(-EINVAL, "%s: expected integer, got %s", path, jtype(v));
        long long x = json_integer_value(v);
        if (x < sp->min || x > sp->max) {
            if (f == EF_V) return nj_fail(-EINVAL, "v: unsupported version %lld (expected %d)", x, EV_VERSION);
            return nj_fail(-EINVAL, "%s: %lld out of range [%lld, %lld]", path, x, sp->min, sp->max);
        }
        return 0;
    }
    case EVT_BOOL:
        if (!json_is_boolean(v)) return nj_fail(-EINVAL, "%s: expected boolean, got %s", path, jtype(v));
        return 0;
    case EVT_STRINGS: {
        if (!json_is_array(v)) return nj_fail(-EINVAL, "%s: expected array of strings, got %s", path, jtype(v));
        size_t n = json_array_size(v);
        if (n == 0) return nj_fail(-EINVAL, "%s: empty array (omit absent facts)", path);
        if (n > EV_ARGV_MAX) return nj_fail(-EINVAL, "%s: more than %d elements", path, EV_ARGV_MAX);
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            char p[96];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            if (!json_is_string(e)) return nj_fail(-EINVAL, "%s: expected string, got %s", p, jtype(e));
            int rc = check_string(p, e, EV_STR_MAX, f == EF_PROC_ARGV);
            if (rc) return rc;
            total += json_string_length(e);
        }
        if (total > EV_STR_MAX) return nj_fail(-EINVAL, "%s: more than %d bytes in all", path, EV_STR_MAX);
        return 0;
    }
    case EVT_OBJECT:
        break;
    }
    return nj_fail(-EINVAL, "%s: unexpected object", path);
}

static int check_object(const json_t *obj, int parent) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int f = -1;
        for (int g = 0; g < EF_COUNT; g++)
            if (k_spec[g].parent == parent && strcmp(k_spec[g].key, key) == 0) { f = g; break; }
        if (f < 0) {
            if (parent < 0) return nj_fail(-EINVAL, "%.64s: unknown field", key);
            return nj_fail(-EINVAL, "%s.%.64s: unknown field", k_spec[parent].key, key);
        }
        int rc;
        if (k_spec[f].type == EVT_OBJECT) {
            if (!json_is_object(v)) return nj_fail(-EINVAL, "%s: expected object, got %s", k_spec[f].path, jtype(v));
            if (json_object_size(v) == 0) return nj_fail(-EINVAL, "%s: empty object (omit absent facts)", k_spec[f].path);
            rc = check_object(v, f);
        } else {
            rc = check_field(f, v);
        }
        if (rc) return rc;
    }
    return 0;
}

int event_validate(const json_t *ev) {
    if (!json_is_object(ev)) return nj_fail(-EINVAL, "event: expected a JSON object");
    for (int f = 0; f < EF_COUNT; f++)
        if (k_spec[f].required && !json_object_get(ev, k_spec[f].key))
            return nj_fail(-EINVAL, "%s: required field missing", k_spec[f].path);
    return check_object(ev, -1);
}

json_t *event_parse(const char *text, size_t n, int *err) {
    event_init();
    int rc;
    json_error_t je;
    json_t *ev = event_json_load(text, n, JSON_REJECT_DUPLICATES, &je, &rc);
    if (!ev) {
        if (rc == -ENOMEM)
            nj_fail(rc, "event: out of memory");
        else
            nj_fail(rc, "event: invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        goto err;
    }
    if (!json_is_object(ev)) { rc = nj_fail(NJ_EFORMAT, "event: expected a JSON object, got %s", jtype(ev)); goto err; }
    if ((rc = event_validate(ev))) goto err;
    int64_t sec; long us;
    const char *t = event_get_str(ev, EF_TIME);
    event_time_parse(t, strlen(t), &sec, &us);
    if ((rc = event_set_time(ev, sec, us))) goto err;
    return ev;
err:
    return event_discard(ev, rc, err);
}

/* ---- serialisation --------------------------------------------------- */

typedef struct sbuf { char *p; size_t n, cap; bool bad; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->bad) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = nj_realloc(b->p, cap);
        if (!p) { b->bad = true; return; }
        b->p = p; b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void sb_c(sbuf *b, char c) { sb_put(b, &c, 1); }

/* s[0..n) as a JSON string.  Room for the worst case (every byte \u00XX)
 * is made once, then bytes are written without further checks. */
static void sb_json_str(sbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (b->bad) return;
    size_t need = b->n + n * 6 + 3;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;
        char *p = nj_realloc(b->p, cap);
        if (!p) { b->bad = true; return; }
        b->p = p;
        b->cap = cap;
    }
    char *o = b->p + b->n;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = hex[c >> 4]; *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->n = (size_t)(o - b->p);
}

/* Emits the members of object obj (schema parent `parent`) in schema order.
 * Returns -EINVAL if obj holds a key outside the schema or a value of the
 * wrong JSON type. */
static int dump_object(sbuf *b, const json_t *obj, int parent) {
    size_t seen = 0;
    bool first = true;
    sb_c(b, '{');
    for (int f = 0; f < EF_COUNT; f++) {
        if (k_spec[f].parent != parent) continue;
        json_t *v = json_object_get(obj, k_spec[f].key);
        if (!v) continue;
        seen++;
        if (!first) sb_c(b, ',');
        first = false;
        sb_json_str(b, k_spec[f].key, strlen(k_spec[f].key));
        sb_c(b, ':');
        switch (k_spec[f].type) {
        case EVT_OBJECT:
            if (!json_is_object(v)) return nj_fail(-EINVAL, "%s: expected object", k_spec[f].path);
            if (dump_object(b, v, f)) return -EINVAL;
            break;
        case EVT_STRING:
            if (!json_is_string(v)) return nj_fail(-EINVAL, "%s: expected string", k_spec[f].path);
            sb_json_str(b, json_string_value(v), json_string_length(v));
            break;
        case EVT_INT: {
            if (!json_is_integer(v)) return nj_fail(-EINVAL, "%s: expected integer", k_spec[f].path);
            char num[32];
            int k = snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            sb_put(b, num, (size_t)k);
            break;
        }
        case EVT_BOOL:
            if (!json_is_boolean(v)) return nj_fail(-EINVAL, "%s: expected boolean", k_spec[f].path);
            if (json_is_true(v)) sb_put(b, "true", 4); else sb_put(b, "false", 5);
            break;
        case EVT_STRINGS:
            if (!json_is_array(v)) return nj_fail(-EINVAL, "%s: expected array", k_spec[f].path);
            sb_c(b, '[');
            for (size_t i = 0; i < json_array_size(v); i++) {
                json_t *e = json_array_get(v, i);
                if (!json_is_string(e)) return nj_fail(-EINVAL, "%s[%zu]: expected string", k_spec[f].path, i);
                if (i) sb_c(b, ',');
                sb_json_str(b, json_string_value(e), json_string_length(e));
            }
            sb_c(b, ']');
            break;
        }
    }
    sb_c(b, '}');
    if (seen != json_object_size(obj))
        return nj_fail(-EINVAL, "%s: holds a field outside the schema", parent < 0 ? "event" : k_spec[parent].path);
    return 0;
}

char *event_dump(const json_t *ev, size_t *len) {
    if (!json_is_object(ev)) { nj_fail(-EINVAL, "event: expected a JSON object"); return NULL; }
    sbuf b = {0};
    int rc = dump_object(&b, ev, -1);
    sb_c(&b, 0);
    if (rc || b.bad) {
        if (b.bad && !rc) nj_fail(-ENOMEM, "event: out of memory while serialising");
        nj_free(b.p);
        return NULL;
    }
    if (len) *len = b.n - 1;
    return b.p;
}
