/*
 * parse_auditd — Linux audit logs (audit.log, `ausearch --raw`, audisp
 * output) to canonical events.
 *
 * Records.  A line is `[node=HOST ]type=TYPE msg=audit(SEC.MS:SERIAL): BODY`
 * with an optional enrichment tail after a \x1d byte (`UID="alice"
 * AUID="alice" ...`, log_format=ENRICHED).  BODY is key=value pairs; values
 * are "double-quoted" strings, bare tokens, or — for string fields that
 * contain spaces, quotes or control bytes — bare hex (exe=2F7573...).  User
 * space records nest their own pairs in msg='...'.  Long execve arguments
 * are split: `a1_len=N a1[0]=HEX a1[1]=HEX ...`, possibly across several
 * EXECVE records; PROCTITLE is hex with NUL between arguments.
 *
 * Grouping.  All records of one serial make one event.  Serials interleave
 * (the kernel and user space write concurrently; real logs show a PATH of
 * serial N after records of N+1), so a serial is held until it is complete:
 * on its EOE record; at once for user-space single-record types (USER_*,
 * CRED_*, ...) unless other records of that serial are already held; when
 * `reorder` newer serials have started after it (default 4; 1 = as soon as
 * a newer serial starts); when more than `max_pending` serials are held
 * (the oldest goes first); or at flush.  Records arriving for a serial
 * emitted lately (one of the last 64) start a new group that has no
 * SYSCALL or user record: it is dropped and reported as a bad line ("late
 * record").  (Serials are not monotonic in a file: they restart at boot
 * and differ per node.)  Memory is bounded: at most max_pending serials,
 * AUD_MAX_RECORDS records per serial, AUD_MAX_LINE bytes per record and
 * AUD_MAX_HELD bytes of held text in all (the oldest serials complete
 * early when a new record would pass it).
 *
 * Events.  execve/execveat (syscall 59/322 on x86_64, 221/281 on aarch64,
 * 11/358 on i386, or the names when the log is interpreted), or any group
 * with an EXECVE record -> kind exec; USER_LOGIN -> login (auth on failure),
 * USER_START -> login, USER_END/USER_LOGOUT -> logout, USER_AUTH -> auth,
 * USER_CMD (sudo) -> exec with the command line; connect (42 x86_64, 203
 * aarch64) and accept/accept4 (43/288, 202/242) -> network, the peer
 * decoded from the SOCKADDR record (AF_INET, AF_INET6; outbound for
 * connect, inbound for accept); anything else -> other.
 * See docs/event.md for the field mapping.
 */
#include "parse_internal.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

#define AUD_MAX_RECORDS 256
#define AUD_MAX_LINE    (1 << 20)
#define AUD_MAX_KV      512
#define AUD_RECENT      64
#define AUD_MAX_HELD    (16u << 20)   /* bytes of record text held at most */

typedef struct rec {
    char *line;
    size_t len;
    long lineno;
    size_t type_off, type_len, body_off, body_len, enr_off, enr_len;
} rec;

typedef struct group {
    uint64_t serial;
    char stamp[32];               /* "SEC.MS" as written */
    int64_t sec;
    long ms;
    char node[128];
    rec *r;
    int n, cap;
    int age;                      /* newer serials started since */
} group;

typedef struct kv {
    const char *k, *v;
    size_t kn, vn;
    char q;                       /* '"', '\'' or 0 */
} kv;

typedef struct auditd_parser {
    parser base;
    group *g;
    int n, cap;
    uint64_t recent[AUD_RECENT];  /* serials emitted lately, to name late records */
    int nrecent, rpos;
    size_t held;                  /* bytes of record lines held */
    char *scratch;
    size_t scap;
    kv kvs[AUD_MAX_KV];
    int nkv;
} auditd_parser;

/* ---- record header ---------------------------------------------------- */

typedef struct hdr {
    const char *node; size_t node_len;
    const char *type; size_t type_len;
    const char *stamp; size_t stamp_len;
    int64_t sec; long ms; uint64_t serial;
    size_t body_off;
} hdr;

static bool parse_hdr(const char *s, size_t n, hdr *h) {
    memset(h, 0, sizeof *h);
    const char *t = nj_memmem(s, n, "type=", 5);
    if (!t) return false;
    const char *nd = nj_memmem(s, (size_t)(t - s), "node=", 5);
    if (nd) {
        h->node = nd + 5;
        const char *e = h->node;
        while (e < t && *e != ' ') e++;
        h->node_len = (size_t)(e - h->node);
    }
    h->type = t + 5;
    const char *e = h->type;
    const char *end = s + n;
    while (e < end && *e != ' ') e++;
    h->type_len = (size_t)(e - h->type);
    if (!h->type_len) return false;
    const char *m = nj_memmem(e, (size_t)(end - e), "audit(", 6);
    if (!m) return false;
    const char *p = m + 6;
    h->stamp = p;
    int64_t sec = 0;
    int nd1 = 0;
    while (p < end && *p >= '0' && *p <= '9' && nd1 < 15) { sec = sec * 10 + (*p - '0'); p++; nd1++; }
    if (!nd1 || p >= end || *p != '.') return false;
    p++;
    long ms = 0;
    int nd2 = 0;
    while (p < end && *p >= '0' && *p <= '9' && nd2 < 9) { ms = ms * 10 + (*p - '0'); p++; nd2++; }
    if (!nd2 || p >= end || *p != ':') return false;
    while (nd2 < 3) { ms *= 10; nd2++; }
    while (nd2 > 3) { ms /= 10; nd2--; }
    h->stamp_len = (size_t)(p - h->stamp);
    p++;
    uint64_t serial = 0;
    int nd3 = 0;
    while (p < end && *p >= '0' && *p <= '9' && nd3 < 19) { serial = serial * 10 + (uint64_t)(*p - '0'); p++; nd3++; }
    if (!nd3 || p >= end || *p != ')') return false;
    p++;
    if (p < end && *p == ':') p++;
    while (p < end && *p == ' ') p++;
    h->sec = sec; h->ms = ms; h->serial = serial;
    h->body_off = (size_t)(p - s);
    return true;
}

/* ---- key=value scanning ------------------------------------------------ */

static bool key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '[' || c == ']' || c == '-';
}

/* Appends the pairs of s[0..n) to a->kvs (pairs inside msg='...' too). */
static void kv_scan(auditd_parser *a, const char *s, size_t n, int depth) {
    size_t i = 0;
    while (i < n && a->nkv < AUD_MAX_KV) {
        while (i < n && (s[i] == ' ' || s[i] == ',' || s[i] == '(' || s[i] == ')')) i++;
        size_t kb = i;
        while (i < n && key_char(s[i])) i++;
        if (i >= n || s[i] != '=' || i == kb) {          /* not a pair: skip the word */
            if (i < n && s[i] == '\'') { i++; while (i < n && s[i] != '\'') i++; }
            else if (i < n && s[i] == '"') { i++; while (i < n && s[i] != '"') i++; }
            while (i < n && s[i] != ' ') i++;
            continue;
        }
        kv x = {.k = s + kb, .kn = i - kb};
        i++;                                            /* '=' */
        if (i < n && (s[i] == '"' || s[i] == '\'')) {
            char q = s[i++];
            size_t vb = i;
            while (i < n && s[i] != q) i++;
            x.v = s + vb; x.vn = i - vb; x.q = q;
            if (i < n) i++;
        } else {
            size_t vb = i;
            while (i < n && s[i] != ' ') i++;
            x.v = s + vb; x.vn = i - vb;
        }
        a->kvs[a->nkv++] = x;
        if (x.q == '\'' && depth == 0) kv_scan(a, x.v, x.vn, 1);
    }
}

static const kv *kv_get(const auditd_parser *a, int from, int to, const char *key) {
    size_t kl = strlen(key);
    for (int i = from; i < to; i++)
        if (a->kvs[i].kn == kl && memcmp(a->kvs[i].k, key, kl) == 0) return &a->kvs[i];
    return NULL;
}

static bool kv_is(const kv *x, const char *s) {
    return x && x->vn == strlen(s) && memcmp(x->v, s, x->vn) == 0;
}

/* Absent-value markers of the audit format. */
static bool kv_absent(const kv *x) {
    return !x || x->vn == 0 || kv_is(x, "?") || kv_is(x, "(null)") || kv_is(x, "(none)") ||
           (x->q == 0 && (kv_is(x, "unset") || kv_is(x, "4294967295") || kv_is(x, "-1")));
}

static int scratch_fit(auditd_parser *a, size_t n) {
    if (n + 1 <= a->scap) return 0;
    size_t cap = a->scap ? a->scap : 4096;
    while (cap < n + 1) cap *= 2;
    char *s = nj_realloc(a->scratch, cap);
    if (!s) return nj_fail(-ENOMEM, "auditd: out of memory");
    a->scratch = s;
    a->scap = cap;
    return 0;
}

/* The text of a string field: quoted as is, bare hex decoded, else bare.
 * Returns a pointer into the line or into scratch (valid until the next
 * call), or NULL on allocation failure. */
static const char *kv_text(auditd_parser *a, const kv *x, size_t *len) {
    if (x->q == 0 && nj_is_hex(x->v, x->vn)) {
        if (scratch_fit(a, x->vn / 2)) return NULL;
        *len = (size_t)nj_hex_decode(x->v, x->vn, a->scratch);
        return a->scratch;
    }
    *len = x->vn;
    return x->v;
}

static int set_text(auditd_parser *a, json_t *ev, ev_field f, const kv *x) {
    if (kv_absent(x)) return 0;
    size_t n;
    const char *t = kv_text(a, x, &n);
    if (!t) return -ENOMEM;
    if (f == EF_PROC_TTY && n > 5 && !memcmp(t, "/dev/", 5)) { t += 5; n -= 5; }   /* "pts/2" as the kernel says */
    return event_set_str(ev, f, t, n);
}

/* uid-like field: a number -> int field, a name (interpreted logs) -> name field. */
static int set_id(json_t *ev, ev_field fint, ev_field fname, const kv *x) {
    if (kv_absent(x)) return 0;
    long long v;
    if (nj_parse_ll(x->v, x->vn, &v)) {
        if (v < 0 || v >= 4294967295LL) return 0;
        return event_set_int(ev, fint, v);
    }
    return fname == (ev_field)-1 ? 0 : event_set_str(ev, fname, x->v, x->vn);
}

/* ---- groups ------------------------------------------------------------ */

static void group_clear(group *g) {
    for (int i = 0; i < g->n; i++) nj_free(g->r[i].line);
    nj_free(g->r);
    memset(g, 0, sizeof *g);
}

static bool type_is(const rec *r, const char *t) {
    return r->type_len == strlen(t) && memcmp(r->line + r->type_off, t, r->type_len) == 0;
}

static bool type_prefix(const char *t, size_t n, const char *p) {
    size_t k = strlen(p);
    return n >= k && memcmp(t, p, k) == 0;
}

/* User-space record types that are whole events by themselves. */
static bool standalone_type(const char *t, size_t n) {
    static const char *const pre[] = {"USER_", "CRED_", "ADD_", "DEL_", "GRP_", "ACCT_", "DAEMON_",
                                      "SERVICE_", "SYSTEM_", "SOFTWARE_UPDATE", "CRYPTO_", "VIRT_",
                                      "ROLE_", "ANOM_LOGIN", "CHGRP_ID", "CHUSER_ID", "USYS_", NULL};
    for (int i = 0; pre[i]; i++)
        if (type_prefix(t, n, pre[i])) return true;
    return false;
}

static bool exec_syscall(const kv *arch, const kv *sc) {
    if (!sc) return false;
    if (kv_is(sc, "execve") || kv_is(sc, "execveat")) return true;
    long long n;
    if (!nj_parse_ll(sc->v, sc->vn, &n)) return false;
    if (!arch || kv_is(arch, "c000003e") || kv_is(arch, "x86_64")) return n == 59 || n == 322;
    if (kv_is(arch, "c00000b7") || kv_is(arch, "aarch64")) return n == 221 || n == 281;
    if (kv_is(arch, "40000003") || kv_is(arch, "i386")) return n == 11 || n == 358;
    return false;
}

/* connect -> 1 (outbound), accept/accept4 -> 2 (inbound), else 0. */
static int net_syscall(const kv *arch, const kv *sc) {
    if (!sc) return 0;
    if (kv_is(sc, "connect")) return 1;
    if (kv_is(sc, "accept") || kv_is(sc, "accept4")) return 2;
    long long n;
    if (!nj_parse_ll(sc->v, sc->vn, &n)) return 0;
    if (!arch || kv_is(arch, "c000003e") || kv_is(arch, "x86_64")) return n == 42 ? 1 : (n == 43 || n == 288) ? 2 : 0;
    if (kv_is(arch, "c00000b7") || kv_is(arch, "aarch64")) return n == 203 ? 1 : (n == 202 || n == 242) ? 2 : 0;
    return 0;
}

/* SOCKADDR saddr (hex of struct sockaddr): AF_INET = family 2 (host order,
 * little-endian on the architectures above), port (network order), 4
 * address bytes; AF_INET6 = family 10, port, flowinfo, 16 address bytes.
 * Writes the address text and port; false for other families. */
static bool parse_saddr(const kv *x, char *ip, size_t cap, long *port) {
    unsigned char b[28];
    if (!x || x->q || x->vn < 16 || !nj_is_hex(x->v, x->vn >= 56 ? 56 : 16)) return false;
    size_t nb = x->vn >= 56 ? 28 : 8;
    char tmp[57];
    memcpy(tmp, x->v, nb * 2);
    if (nj_hex_decode(tmp, nb * 2, tmp) < 0) return false;
    memcpy(b, tmp, nb);
    int fam = b[0] | b[1] << 8;
    *port = b[2] << 8 | b[3];
    if (fam == 2) {
        snprintf(ip, cap, "%u.%u.%u.%u", b[4], b[5], b[6], b[7]);
        return true;
    }
    if (fam == 10 && nb == 28) {
        const unsigned char *a6 = b + 8;
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(a6, v4mapped, 12)) { snprintf(ip, cap, "%u.%u.%u.%u", a6[12], a6[13], a6[14], a6[15]); return true; }
        /* RFC 5952 text: longest run of zero groups (>= 2) as "::" */
        unsigned g[8];
        for (int i = 0; i < 8; i++) g[i] = (unsigned)a6[2 * i] << 8 | a6[2 * i + 1];
        int best = -1, bl = 0;
        for (int i = 0; i < 8;) {
            if (g[i]) { i++; continue; }
            int j = i;
            while (j < 8 && !g[j]) j++;
            if (j - i > bl && j - i >= 2) { best = i; bl = j - i; }
            i = j;
        }
        size_t o = 0;
        for (int i = 0; i < 8 && o + 6 < cap; i++) {
            if (i == best) { o += (size_t)snprintf(ip + o, cap - o, "::"); i += bl - 1; continue; }
            if (o && ip[o - 1] != ':') ip[o++] = ':';
            o += (size_t)snprintf(ip + o, cap - o, "%x", g[i]);
        }
        ip[o < cap ? o : cap - 1] = 0;
        return true;
    }
    return false;
}

/* One argv slot being assembled from aN / aN[i] pieces. */
typedef struct slot { char *s; size_t n; } slot;

static int slot_add(slot *sl, const char *t, size_t n) {
    char *p = nj_realloc(sl->s, sl->n + n + 1);
    if (!p) return nj_fail(-ENOMEM, "auditd: out of memory");
    memcpy(p + sl->n, t, n);
    sl->n += n;
    p[sl->n] = 0;
    sl->s = p;
    return 0;
}

/* Collects argv from the EXECVE records of g into ev.  Returns 0 or -ENOMEM. */
static int build_argv(auditd_parser *a, group *g, json_t *ev, bool *have) {
    long long argc = -1;
    slot *sl = NULL;
    int rc = 0;
    for (int r = 0; r < g->n; r++) {
        rec *R = &g->r[r];
        if (!type_is(R, "EXECVE")) continue;
        a->nkv = 0;
        kv_scan(a, R->line + R->body_off, R->body_len, 0);
        const kv *ac = kv_get(a, 0, a->nkv, "argc");
        if (argc < 0 && ac && nj_parse_ll(ac->v, ac->vn, &argc)) {
            if (argc < 0) argc = 0;
            if (argc > EV_ARGV_MAX) argc = EV_ARGV_MAX;
            sl = nj_calloc(argc ? (size_t)argc : 1, sizeof *sl);
            if (!sl) return nj_fail(-ENOMEM, "auditd: out of memory");
        }
        if (!sl) continue;
        for (int i = 0; i < a->nkv; i++) {
            const kv *x = &a->kvs[i];
            if (x->kn < 2 || x->k[0] != 'a' || x->k[1] < '0' || x->k[1] > '9') continue;
            size_t j = 1;
            long long idx = 0;
            while (j < x->kn && x->k[j] >= '0' && x->k[j] <= '9' && idx < 1000000) idx = idx * 10 + (x->k[j++] - '0');
            if (idx >= argc) continue;
            if (j == x->kn || x->k[j] == '[') {          /* aN or aN[i]: a value piece */
                size_t n;
                const char *t;
                if (x->k[j] == '[') {                    /* pieces are always hex */
                    if (scratch_fit(a, x->vn / 2)) { rc = -ENOMEM; goto out; }
                    long k = nj_hex_decode(x->v, x->vn, a->scratch);
                    t = a->scratch;
                    n = k < 0 ? 0 : (size_t)k;
                    if (k < 0) { t = x->v; n = x->vn; }
                } else if (!(t = kv_text(a, x, &n))) {
                    rc = -ENOMEM; goto out;
                }
                if ((rc = slot_add(&sl[idx], t, n))) goto out;
            }
        }
    }
    if (sl) {
        for (long long i = 0; i < argc; i++)
            if ((rc = event_push_str(ev, EF_PROC_ARGV, sl[i].s ? sl[i].s : "", sl[i].n))) goto out;
        *have = argc > 0;
    }
out:
    if (sl) for (long long i = 0; i < (argc > 0 ? argc : 1); i++) nj_free(sl[i].s);
    nj_free(sl);
    return rc;
}

static int build(auditd_parser *a, group *g) {
    parser *p = &a->base;
    int rc = 0;
    json_t *ev = NULL;
    int isys = -1, iuser = -1, iexecve = -1;
    for (int r = 0; r < g->n; r++) {
        rec *R = &g->r[r];
        if (isys < 0 && type_is(R, "SYSCALL")) isys = r;
        else if (iexecve < 0 && type_is(R, "EXECVE")) iexecve = r;
        else if (iuser < 0 && standalone_type(R->line + R->type_off, R->type_len)) iuser = r;
    }
    long lineno = g->r[0].lineno;
    if (isys < 0 && iuser < 0 && iexecve < 0) {
        bool late = false;
        for (int i = 0; i < a->nrecent; i++) late |= a->recent[i] == g->serial;
        if (late)
            parser_bad(p, lineno, "late auditd record for serial %llu (already emitted)", (unsigned long long)g->serial);
        else if (!(g->n == 1 && (type_is(&g->r[0], "PROCTITLE") || type_is(&g->r[0], "CWD") || type_is(&g->r[0], "PATH"))))
            goto build;                                  /* kernel records of their own (AVC, ...) */
        else
            parser_bad(p, lineno, "auditd serial %llu has only auxiliary records", (unsigned long long)g->serial);
        return 0;
    }
build:;
    /* kind */
    const char *kind = "other";
    int ifirst = isys >= 0 ? isys : iuser >= 0 ? iuser : 0;
    a->nkv = 0;
    kv_scan(a, g->r[ifirst].line + g->r[ifirst].body_off, g->r[ifirst].body_len, 0);
    int nk = a->nkv;
    const kv *res = kv_get(a, 0, nk, "res");
    bool ok = !res || kv_is(res, "success") || kv_is(res, "yes") || kv_is(res, "1");
    if (isys >= 0) {
        if (exec_syscall(kv_get(a, 0, nk, "arch"), kv_get(a, 0, nk, "syscall")) || iexecve >= 0) kind = "exec";
        else if (net_syscall(kv_get(a, 0, nk, "arch"), kv_get(a, 0, nk, "syscall"))) kind = "network";
    } else if (iuser >= 0) {
        rec *U = &g->r[iuser];
        const char *t = U->line + U->type_off;
        size_t tn = U->type_len;
        if (tn == 10 && !memcmp(t, "USER_LOGIN", 10)) kind = ok ? "login" : "auth";
        else if (tn == 10 && !memcmp(t, "USER_START", 10)) kind = "login";
        else if ((tn == 8 && !memcmp(t, "USER_END", 8)) || (tn == 11 && !memcmp(t, "USER_LOGOUT", 11))) kind = "logout";
        else if (tn == 9 && !memcmp(t, "USER_AUTH", 9)) kind = "auth";
        else if (tn == 8 && !memcmp(t, "USER_CMD", 8)) kind = "exec";
    } else if (iexecve >= 0) {
        kind = "exec";
    }
    char id[256];
    snprintf(id, sizeof id, "auditd:%s:%s:%llu", g->node[0] ? g->node : p->host ? p->host : "-", g->stamp,
             (unsigned long long)g->serial);
    if (!(ev = parser_event(p, kind, id, lineno, &rc))) return rc;
    if ((rc = event_set_time(ev, g->sec, g->ms * 1000))) goto out;
    if (g->node[0] && (rc = event_set_str(ev, EF_HOST, g->node, (size_t)-1))) goto out;

    /* SYSCALL or user record: identity and process */
    if ((rc = set_id(ev, EF_PROC_PID, (ev_field)-1, kv_get(a, 0, nk, "pid"))) ||
        (rc = set_id(ev, EF_PROC_PPID, (ev_field)-1, kv_get(a, 0, nk, "ppid"))) ||
        (rc = set_id(ev, EF_USER_UID, EF_USER_NAME, kv_get(a, 0, nk, "uid"))) ||
        (rc = set_id(ev, EF_USER_EUID, (ev_field)-1, kv_get(a, 0, nk, "euid"))) ||
        (rc = set_id(ev, EF_USER_AUID, EF_USER_LOGIN, kv_get(a, 0, nk, "auid"))) ||
        (rc = set_text(a, ev, EF_PROC_TTY, kv_get(a, 0, nk, "tty"))) ||
        (rc = set_text(a, ev, EF_PROC_NAME, kv_get(a, 0, nk, "comm"))) ||
        (rc = set_text(a, ev, EF_PROC_PATH, kv_get(a, 0, nk, "exe"))) ||
        (rc = set_text(a, ev, EF_AUDIT_KEY, kv_get(a, 0, nk, "key"))))
        goto out;
    if (isys >= 0) {
        const kv *sc = kv_get(a, 0, nk, "syscall");
        long long n;
        if (sc && nj_parse_ll(sc->v, sc->vn, &n) && n >= 0 && n <= 65535 && (rc = event_set_int(ev, EF_AUDIT_SYSCALL, n))) goto out;
        const kv *su = kv_get(a, 0, nk, "success");
        if (su && (rc = event_set_bool(ev, EF_AUDIT_SUCCESS, kv_is(su, "yes")))) goto out;
    }
    if (iuser >= 0 && isys < 0) {
        const kv *acct = kv_get(a, 0, nk, "acct");
        size_t an = 0;
        const char *at = NULL;
        if (!kv_absent(acct) && !(at = kv_text(a, acct, &an))) { rc = -ENOMEM; goto out; }
        bool invalid = at && an == 14 && memcmp(at, "(invalid user)", 14) == 0;
        const char *k = kind;
        bool authish = !strcmp(k, "auth") || !strcmp(k, "login") || !strcmp(k, "logout");
        /* acct names the account of authentication records; elsewhere
         * (ADD_GROUP, ...) it names an object, not the acting user */
        if (at && !invalid && authish) {
            if ((rc = event_set_str(ev, EF_AUTH_USER, at, an))) goto out;
            if (!event_get_str(ev, EF_USER_NAME) && (rc = event_set_str(ev, EF_USER_NAME, at, an))) goto out;
        }
        if (authish) {
            /* uid/euid of these records are the PAM caller's (sshd: 0); the
             * user of an auth event is the account, so only auid stays */
            event_unset(ev, EF_USER_UID);
            event_unset(ev, EF_USER_EUID);
            if ((rc = event_set_str(ev, EF_AUTH_RESULT, ok ? "success" : "failure", (size_t)-1))) goto out;
            if (invalid && (rc = event_set_bool(ev, EF_AUTH_INVALID_USER, true))) goto out;
            const kv *addr = kv_get(a, 0, nk, "addr");
            if ((rc = set_text(a, ev, EF_AUTH_SRC_IP, addr))) goto out;
            const char *exe = event_get_str(ev, EF_PROC_PATH);
            if (exe) {
                const char *b = strrchr(exe, '/');
                if ((rc = event_set_str(ev, EF_AUTH_SERVICE, b ? b + 1 : exe, (size_t)-1))) goto out;
            }
        }
        if ((rc = set_text(a, ev, EF_PROC_TTY, kv_get(a, 0, nk, "terminal"))) ||
            (rc = set_text(a, ev, EF_PROC_CWD, kv_get(a, 0, nk, "cwd"))))
            goto out;
        const kv *cmd = kv_get(a, 0, nk, "cmd");
        if (!strcmp(kind, "exec") && (rc = set_text(a, ev, EF_PROC_CMDLINE, cmd))) goto out;
    }
    /* enrichment of the main record: names of ids */
    rec *M = &g->r[ifirst];
    if (M->enr_len) {
        a->nkv = 0;
        kv_scan(a, M->line + M->enr_off, M->enr_len, 1);
        const kv *U = kv_get(a, 0, a->nkv, "UID"), *AU = kv_get(a, 0, a->nkv, "AUID");
        if ((!event_get_str(ev, EF_USER_NAME) && (rc = set_text(a, ev, EF_USER_NAME, U))) ||
            (!event_get_str(ev, EF_USER_LOGIN) && (rc = set_text(a, ev, EF_USER_LOGIN, AU))))
            goto out;
    }
    /* auxiliary records */
    bool have_argv = false;
    if ((rc = build_argv(a, g, ev, &have_argv))) goto out;
    for (int r = 0; r < g->n; r++) {
        rec *R = &g->r[r];
        if (type_is(R, "CWD") && !event_get_str(ev, EF_PROC_CWD)) {
            a->nkv = 0;
            kv_scan(a, R->line + R->body_off, R->body_len, 0);
            if ((rc = set_text(a, ev, EF_PROC_CWD, kv_get(a, 0, a->nkv, "cwd")))) goto out;
        } else if (type_is(R, "PROCTITLE") && !have_argv && !event_get_str(ev, EF_PROC_CMDLINE)) {
            a->nkv = 0;
            kv_scan(a, R->line + R->body_off, R->body_len, 0);
            const kv *pt = kv_get(a, 0, a->nkv, "proctitle");
            if (kv_absent(pt)) continue;
            size_t n;
            const char *t = kv_text(a, pt, &n);
            if (!t) { rc = -ENOMEM; goto out; }
            while (n && t[n - 1] == 0) n--;
            size_t b = 0;
            for (size_t i = 0; i <= n; i++)
                if (i == n || t[i] == 0) {
                    if ((rc = event_push_str(ev, EF_PROC_ARGV, t + b, i - b))) goto out;
                    b = i + 1;
                }
            have_argv = true;
        }
        /* record types, in order, once each */
        char tb[64];
        size_t tl = NJ_MIN(R->type_len, sizeof tb - 1);
        memcpy(tb, R->line + R->type_off, tl);
        tb[tl] = 0;
        json_t *recs = event_get(ev, EF_AUDIT_RECORDS);
        bool seen = false;
        for (size_t i = 0; recs && i < json_array_size(recs); i++)
            if (!strcmp(json_string_value(json_array_get(recs, i)), tb)) seen = true;
        if (!seen && (rc = event_push_str(ev, EF_AUDIT_RECORDS, tb, tl))) goto out;
    }
    /* connect / accept with an inet SOCKADDR: the peer */
    if (!strcmp(kind, "network")) {
        a->nkv = 0;
        kv_scan(a, g->r[isys].line + g->r[isys].body_off, g->r[isys].body_len, 0);
        int dir = net_syscall(kv_get(a, 0, a->nkv, "arch"), kv_get(a, 0, a->nkv, "syscall"));
        for (int r = 0; r < g->n; r++) {
            if (!type_is(&g->r[r], "SOCKADDR")) continue;
            a->nkv = 0;
            kv_scan(a, g->r[r].line + g->r[r].body_off, g->r[r].body_len, 0);
            char ip[64];
            long port;
            if (!parse_saddr(kv_get(a, 0, a->nkv, "saddr"), ip, sizeof ip, &port)) continue;
            bool out = dir == 1;
            if ((rc = event_set_str(ev, EF_NET_DIRECTION, out ? "outbound" : "inbound", (size_t)-1)) ||
                (rc = event_set_str(ev, out ? EF_NET_DST_IP : EF_NET_SRC_IP, ip, (size_t)-1)) ||
                (rc = event_set_int(ev, out ? EF_NET_DST_PORT : EF_NET_SRC_PORT, port)))
                goto out;
            break;
        }
        /* a local (unix) socket or no address: not a network connection */
        if (!event_get(ev, EF_NETWORK) && (rc = event_set_str(ev, EF_KIND, "other", 5))) goto out;
    }
    /* raw: the records, one per line, cut to the raw limit */
    size_t total = 0;
    for (int r = 0; r < g->n && total < EV_RAW_MAX; r++) total += g->r[r].len + 1;
    if ((rc = scratch_fit(a, total))) goto out;
    size_t o = 0;
    for (int r = 0; r < g->n && o < EV_RAW_MAX; r++) {
        if (o) a->scratch[o++] = '\n';
        memcpy(a->scratch + o, g->r[r].line, g->r[r].len);
        o += g->r[r].len;
    }
    rc = parser_emit(p, ev, lineno, a->scratch, o);
    ev = NULL;
out:
    json_decref(ev);
    if (rc == -ENOMEM) nj_fail(rc, "auditd: out of memory");
    return rc;
}

/* Emits and removes group i (groups stay sorted by arrival). */
static int complete(auditd_parser *a, int i) {
    group g = a->g[i];
    for (int r = 0; r < g.n; r++) a->held -= g.r[r].len;
    memmove(a->g + i, a->g + i + 1, (size_t)(a->n - i - 1) * sizeof *a->g);
    a->n--;
    int rc = build(a, &g);
    a->recent[a->rpos] = g.serial;
    a->rpos = (a->rpos + 1) % AUD_RECENT;
    if (a->nrecent < AUD_RECENT) a->nrecent++;
    group_clear(&g);
    return rc;
}

static int auditd_feed(parser *p, const char *line, size_t len, long lineno) {
    auditd_parser *a = (auditd_parser *)p;
    len = nj_chomp(line, len);
    if (len == 0) return 0;
    if (len > AUD_MAX_LINE) { parser_bad(p, lineno, "auditd record longer than %d bytes", AUD_MAX_LINE); return 0; }
    hdr h;
    if (!parse_hdr(line, len, &h)) {
        parser_bad(p, lineno, "not an audit record (expected type=... msg=audit(SEC.MS:SERIAL):)");
        return 0;
    }
    bool eoe = h.type_len == 3 && memcmp(h.type, "EOE", 3) == 0;
    int rc = 0;
    while (a->n > 0 && a->held + len > AUD_MAX_HELD) {      /* byte bound: oldest first */
        int r = complete(a, 0);
        if (r && !rc) rc = r;
    }
    int gi = -1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->g[i].serial == h.serial) { gi = i; break; }
    if (eoe) {
        int r = gi >= 0 ? complete(a, gi) : 0;
        return rc ? rc : r;
    }
    if (gi < 0) {
        /* a new serial: age the held ones, complete those past the reorder window */
        int reorder = p->o.reorder > 0 ? p->o.reorder : 4;
        for (int i = 0; i < a->n;) {
            if (h.serial > a->g[i].serial && ++a->g[i].age >= reorder) {
                int r = complete(a, i);
                if (r && !rc) rc = r;
                continue;
            }
            i++;
        }
        int maxp = p->o.max_pending > 0 ? p->o.max_pending : 256;
        while (a->n >= maxp) {
            int r = complete(a, 0);
            if (r && !rc) rc = r;
        }
        if (a->n == a->cap) {
            int cap = a->cap ? a->cap * 2 : 16;
            group *ng = nj_realloc(a->g, (size_t)cap * sizeof *ng);
            if (!ng) return nj_fail(-ENOMEM, "auditd: out of memory");
            a->g = ng;
            a->cap = cap;
        }
        group *g = &a->g[a->n];
        memset(g, 0, sizeof *g);
        g->serial = h.serial;
        g->sec = h.sec;
        g->ms = h.ms;
        snprintf(g->stamp, sizeof g->stamp, "%.*s", (int)NJ_MIN(h.stamp_len, sizeof g->stamp - 1), h.stamp);
        if (h.node_len) snprintf(g->node, sizeof g->node, "%.*s", (int)NJ_MIN(h.node_len, sizeof g->node - 1), h.node);
        gi = a->n++;
    }
    group *g = &a->g[gi];
    if (g->n >= AUD_MAX_RECORDS) {
        parser_bad(p, lineno, "auditd serial %llu has more than %d records", (unsigned long long)h.serial, AUD_MAX_RECORDS);
        return rc;
    }
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 8;
        rec *nr = nj_realloc(g->r, (size_t)cap * sizeof *nr);
        if (!nr) {
            if (g->n == 0) { a->n--; memmove(a->g + gi, a->g + gi + 1, (size_t)(a->n - gi) * sizeof *a->g); }
            return nj_fail(-ENOMEM, "auditd: out of memory");
        }
        g->r = nr;
        g->cap = cap;
    }
    rec *R = &g->r[g->n];
    memset(R, 0, sizeof *R);
    if (!(R->line = nj_strndup(line, len))) {
        if (g->n == 0) { nj_free(g->r); a->n--; memmove(a->g + gi, a->g + gi + 1, (size_t)(a->n - gi) * sizeof *a->g); }
        return nj_fail(-ENOMEM, "auditd: out of memory");
    }
    R->len = len;
    a->held += len;
    R->lineno = lineno;
    R->type_off = (size_t)(h.type - line);
    R->type_len = h.type_len;
    R->body_off = h.body_off;
    const char *gs = memchr(line + h.body_off, 0x1d, len - h.body_off);
    R->body_len = (gs ? (size_t)(gs - line) : len) - h.body_off;
    if (gs) { R->enr_off = (size_t)(gs - line) + 1; R->enr_len = len - R->enr_off; }
    g->n++;
    if (g->n == 1 && standalone_type(h.type, h.type_len)) {
        int r = complete(a, gi);
        if (r && !rc) rc = r;
    }
    return rc;
}

static int auditd_flush(parser *p) {
    auditd_parser *a = (auditd_parser *)p;
    int rc = 0;
    while (a->n > 0) {
        int r = complete(a, 0);
        if (r && !rc) rc = r;
    }
    return rc;
}

static void auditd_destroy(parser *p) {
    auditd_parser *a = (auditd_parser *)p;
    for (int i = 0; i < a->n; i++) group_clear(&a->g[i]);
    nj_free(a->g);
    nj_free(a->scratch);
}

static const parser_vt auditd_vt = {"auditd", auditd_feed, auditd_flush, auditd_destroy};

parser *parse_auditd_new(int *err) {
    auditd_parser *a = nj_calloc(1, sizeof *a);
    if (!a) { if (err) *err = nj_fail(-ENOMEM, "auditd: out of memory"); return NULL; }
    a->base.vt = &auditd_vt;
    return &a->base;
}
