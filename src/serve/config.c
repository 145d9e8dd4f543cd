/*
 * config — see config.h for the layers, the file format and the ownership.
 *
 * One table (`keys`) drives everything: config_set() converts and range-
 * checks a text value for any layer, the flag parser derives `--ctx-size` from
 * the key name, the environment layer looks up each key's variable.  Adding a
 * setting means one table row and one struct field.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "nightjar.h"
#include "util.h"

enum kind { K_STR, K_INT, K_SIZE, K_SECS, K_ENUM };

static const char *const log_choices[] = {"error", "warn", "info", "debug", NULL};
/* index = enum nj_kv_type */
static const char *const kv_choices[]  = {"f16", "q8_0", "q4_0", NULL};
static const char *const qos_choices[] = {"none", "utility", "background", NULL};

typedef struct keydef {
    const char *name;       /* file key; flag is "--" + name with '_' -> '-' */
    const char *env;        /* environment variable */
    char        shortflag;  /* e.g. 'm' for -m, or 0 */
    int         kind;
    size_t      off;        /* offset of the field in nj_config */
    long long   min, max;   /* K_INT / K_SIZE / K_SECS range */
    const char *const *choices;   /* K_ENUM names; stored value = index + base */
    int         base;
    bool        live;       /* applied on SIGHUP without a restart */
    const char *help;
} keydef;

#define F(field) offsetof(nj_config, field)
#define GiB (1024ll * 1024 * 1024)

/* Order must match enum nj_cfg_key. */
static const keydef keys[NJ_CFG_NKEYS] = {
    [NJ_CFG_MODEL]   = {"model", "NIGHTJAR_MODEL", 'm', K_STR, F(model), 0, 0, NULL, 0, false,
                        "GGUF model file (required)"},
    [NJ_CFG_SOCKET]  = {"socket", "NIGHTJAR_SOCKET", 0, K_STR, F(socket_path), 0, 0, NULL, 0, false,
                        "Unix socket path; \"none\" for no socket (default <runtime dir>/nightjar.sock)"},
    [NJ_CFG_HOST]    = {"host", "NIGHTJAR_HOST", 0, K_STR, F(host), 0, 0, NULL, 0, false,
                        "TCP address (default 127.0.0.1; non-loopback needs a token)"},
    [NJ_CFG_PORT]    = {"port", "NIGHTJAR_PORT", 0, K_INT, F(port), 0, 65535, NULL, 0, false,
                        "TCP port; 0 = no TCP listener (default 0)"},
    [NJ_CFG_TOKEN]   = {"token", "NIGHTJAR_TOKEN", 0, K_STR, F(token), 0, 0, NULL, 0, true,
                        "bearer token required on every request (default none)"},
    [NJ_CFG_THREADS] = {"threads", "THREADS", 't', K_INT, F(threads), 1, 512, NULL, 0, false,
                        "compute threads (default 2)"},
    [NJ_CFG_NICE]    = {"nice", "NICE_LEVEL", 0, K_INT, F(nice), -20, 19, NULL, 0, false,
                        "nice level applied at start (default 10)"},
    [NJ_CFG_CTX_SIZE]= {"ctx_size", "CTX_SIZE", 'c', K_INT, F(ctx_size), 16, 1 << 20, NULL, 0, false,
                        "context size in tokens (default 4096)"},
    [NJ_CFG_KV_TYPE] = {"kv_type", "NIGHTJAR_KV_TYPE", 0, K_ENUM, F(kv_type), 0, 0, kv_choices, 0, false,
                        "KV cache type: f16 (default), q8_0 (half the memory) or q4_0"},
    [NJ_CFG_MAX_TOKENS] = {"max_tokens", "NIGHTJAR_MAX_TOKENS", 0, K_INT, F(max_tokens), 1, 1 << 20,
                        NULL, 0, true, "max_tokens of a request that gives none (default 512)"},
    [NJ_CFG_MAX_BODY] = {"max_body", "NIGHTJAR_MAX_BODY", 0, K_SIZE, F(max_body), 1024, GiB, NULL, 0, true,
                        "largest request body (default 1M)"},
    [NJ_CFG_MEM_BUDGET] = {"mem_budget", "NIGHTJAR_MEM_BUDGET", 0, K_SIZE, F(mem_budget), 16ll << 20,
                        1024 * GiB, NULL, 0, false, "memory budget for weights + KV + buffers (default 6G)"},
    [NJ_CFG_IDLE_UNLOAD] = {"idle_unload", "NIGHTJAR_IDLE_UNLOAD", 0, K_SECS, F(idle_unload), 0,
                        100000000, NULL, 0, true, "seconds without requests before the model is unloaded; 0 = never (default 300)"},
    [NJ_CFG_SHUTDOWN_TIMEOUT] = {"shutdown_timeout", "NIGHTJAR_SHUTDOWN_TIMEOUT", 0, K_SECS,
                        F(shutdown_timeout), 0, 86400, NULL, 0, true,
                        "seconds to finish in-flight requests on SIGTERM (default 30)"},
    [NJ_CFG_LOG_LEVEL] = {"log_level", "NIGHTJAR_LOG", 0, K_ENUM, F(log_level), 0, 0, log_choices, 0, true,
                        "error, warn, info, debug (default info)"},
    [NJ_CFG_QOS]     = {"qos", "NIGHTJAR_QOS", 0, K_ENUM, F(qos), 0, 0, qos_choices, -1, false,
                        "macOS QoS class: none, utility, background (default none)"},
    [NJ_CFG_CHAT_TEMPLATE] = {"chat_template", "NIGHTJAR_CHAT_TEMPLATE", 0, K_STR, F(chat_template), 0, 0,
                        NULL, 0, false, "chat template name (chatml, llama3, ...; default: the model's)"},
    [NJ_CFG_MAX_QUEUE] = {"max_queue", "NIGHTJAR_MAX_QUEUE", 0, K_INT, F(max_queue), 1, 1000000, NULL, 0,
                        true, "queued requests before answering 503 (default 64)"},
    [NJ_CFG_MAX_CONNECTIONS] = {"max_connections", "NIGHTJAR_MAX_CONNECTIONS", 0, K_INT,
                        F(max_connections), 1, 4096, NULL, 0, false, "concurrent HTTP connections (default 32)"},
    [NJ_CFG_RULES] = {"rules", "NIGHTJAR_RULES", 0, K_STR, F(rules), 0, 0, NULL, 0, false,
                        "more Sigma rules for /v1/analyze: a file or directory (default: the team's pack only)"},
    [NJ_CFG_ANALYZE_BATCH] = {"analyze_batch", "NIGHTJAR_ANALYZE_BATCH", 0, K_INT, F(analyze_batch), 1, 100000,
                        NULL, 0, true, "events in one /v1/analyze request before 413 (default 64)"},
    [NJ_CFG_PARALLEL] = {"parallel", "NIGHTJAR_PARALLEL", 0, K_INT, F(parallel), 1, 16, NULL, 0, false,
                        "requests held at once, each with its own KV cache, sized within mem_budget (default 2)"},
    [NJ_CFG_CHUNK] = {"chunk", "NIGHTJAR_CHUNK", 0, K_INT, F(chunk), 1, 4096, NULL, 0, false,
                        "prompt tokens per step below critical; a more urgent request may run between steps (default 64)"},
    [NJ_CFG_AGING_MS] = {"aging_ms", "NIGHTJAR_AGING_MS", 0, K_INT, F(aging_ms), 0, 86400000, NULL, 0, true,
                        "a waiting request's class rises one step per this many ms (bounds starvation; 0 = off; default 5000)"},

    [NJ_CFG_WATCH] = {"watch", "NIGHTJAR_WATCH", 0, K_STR, F(watch), 0, 0, NULL, 0, false,
                        "event sources to follow, KIND:PATH[;KIND:PATH...] as for `nightjar watch --source` (default none)"},
    [NJ_CFG_SINK] = {"sink", "NIGHTJAR_SINKS", 0, K_STR, F(sink), 0, 0, NULL, 0, false,
                        "where their verdicts go: sink specs separated by ';' (docs/agent.md; default: the spool only)"},
    [NJ_CFG_SPOOL_PATH] = {"spool_path", "NIGHTJAR_SPOOL", 0, K_STR, F(spool_path), 0, 0, NULL, 0, false,
                        "the agent's spool for watched events (default <cache dir>/spool.db)"},

    [NJ_CFG_PREFIX_CACHE] = {"prefix_cache", "NIGHTJAR_PREFIX_CACHE", 0, K_STR, F(prefix_cache), 0, 0, NULL, 0,
                        false, "directory where the system prefix's KV cache is kept across restarts and "
                        "idle unloads (default <cache dir>/prefix; off: none)"},
};

void config_defaults(nj_config *c) {
    memset(c, 0, sizeof *c);
    c->threads = 2;
    c->nice = 10;
    c->ctx_size = 4096;
    c->kv_type = NJ_KV_F16;
    c->max_tokens = 512;
    c->max_body = 1 << 20;
    c->mem_budget = 6 * (uint64_t)GiB;
    c->idle_unload = 300;
    c->shutdown_timeout = 30;
    c->log_level = NJ_LOG_INFO;
    c->qos = NJ_CFG_QOS_NONE;
    c->max_queue = 64;
    c->max_connections = 32;
    c->analyze_batch = 64;
    c->parallel = 2;
    c->chunk = 64;
    c->aging_ms = 5000;
}

void config_free(nj_config *c) {
    for (int k = 0; k < NJ_CFG_NKEYS; k++)
        if (keys[k].kind == K_STR) {
            char **p = (char **)((char *)c + keys[k].off);
            nj_free(*p);
            *p = NULL;
        }
    nj_free(c->config_path);
    c->config_path = NULL;
}

const char *config_key_name(int k) { return k >= 0 && k < NJ_CFG_NKEYS ? keys[k].name : "?"; }
const char *config_key_env(int k)  { return k >= 0 && k < NJ_CFG_NKEYS ? keys[k].env : "?"; }
bool config_key_live(int k)        { return k >= 0 && k < NJ_CFG_NKEYS && keys[k].live; }

const char *config_source_name(int s) {
    static const char *n[] = {"default", "file", "env", "flag"};
    return s >= 0 && s <= NJ_SRC_FLAG ? n[s] : "?";
}

/* ---- value parsers ---- */

static const char *skip_blank(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

int config_parse_int(const char *s, long long min, long long max, long long *out) {
    const char *p = skip_blank(s);
    if (!*p) return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno == ERANGE) return -EINVAL;
    if (*skip_blank(end)) return -EINVAL;
    if (v < min || v > max) return -ERANGE;
    *out = v;
    return 0;
}

/* Case-insensitive equality of [s, s+n) and lit. */
static bool suffix_is(const char *s, size_t n, const char *lit) {
    if (strlen(lit) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s[i]) != lit[i]) return false;
    return true;
}

int config_parse_size(const char *s, uint64_t *out) {
    const char *p = skip_blank(s);
    if (!isdigit((unsigned char)*p)) return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno == ERANGE) return -EINVAL;
    const char *suf = skip_blank(end);
    size_t n = strlen(suf);
    while (n && (suf[n - 1] == ' ' || suf[n - 1] == '\t')) n--;
    uint64_t mul = 1;
    if (n == 0 || suffix_is(suf, n, "b")) mul = 1;
    else {
        static const char units[] = "kmgt";
        const char *u = strchr(units, tolower((unsigned char)suf[0]));
        if (!u || !*u) return -EINVAL;
        if (!(n == 1 || suffix_is(suf + 1, n - 1, "b") || suffix_is(suf + 1, n - 1, "ib")))
            return -EINVAL;
        mul = 1ull << (10 * (u - units + 1));
    }
    uint64_t r;
    if (!nj_mul_ok(v, mul, &r)) return -ERANGE;
    *out = r;
    return 0;
}

int config_parse_seconds(const char *s, long long *out) {
    const char *p = skip_blank(s);
    if (!isdigit((unsigned char)*p)) return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno == ERANGE) return -EINVAL;
    const char *suf = skip_blank(end);
    size_t n = strlen(suf);
    while (n && (suf[n - 1] == ' ' || suf[n - 1] == '\t')) n--;
    long long mul;
    if (n == 0 || suffix_is(suf, n, "s")) mul = 1;
    else if (suffix_is(suf, n, "m") || suffix_is(suf, n, "min")) mul = 60;
    else if (suffix_is(suf, n, "h")) mul = 3600;
    else return -EINVAL;
    if (v > (long long)1e12) return -ERANGE;
    *out = v * mul;
    return 0;
}

/* Key lookup: '-' and '_' are equivalent, case-sensitive otherwise. */
static int find_key(const char *name, size_t len) {
    for (int k = 0; k < NJ_CFG_NKEYS; k++) {
        const char *kn = keys[k].name;
        if (strlen(kn) != len) continue;
        size_t i = 0;
        for (; i < len; i++) {
            char a = name[i] == '-' ? '_' : name[i];
            if (a != kn[i]) break;
        }
        if (i == len) return k;
    }
    return -1;
}

static void choices_text(const keydef *d, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; d->choices[i] && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", d->choices[i]);
}

static int set_key(nj_config *c, int k, const char *value, int source) {
    const keydef *d = &keys[k];
    void *field = (char *)c + d->off;
    long long v;
    uint64_t u;
    int rc;
    switch (d->kind) {
    case K_STR: {
        char **p = field;
        char *dup = NULL;
        if (*value) {
            dup = nj_strdup(value);
            if (!dup) return nj_fail(-ENOMEM, "out of memory");
        }
        nj_free(*p);
        *p = dup;      /* "" unsets (e.g. token = "") */
        break;
    }
    case K_INT:
        rc = config_parse_int(value, d->min, d->max, &v);
        if (rc == -ERANGE)
            return nj_fail(-EINVAL, "%s: %s is out of range (%lld..%lld)", d->name, value, d->min, d->max);
        if (rc) return nj_fail(-EINVAL, "%s: '%s' is not an integer", d->name, value);
        *(int *)field = (int)v;
        break;
    case K_SIZE:
        rc = config_parse_size(value, &u);
        if (rc) return nj_fail(-EINVAL, "%s: '%s' is not a size (e.g. 1048576, 512K, 6G)", d->name, value);
        if (u < (uint64_t)d->min || u > (uint64_t)d->max)
            return nj_fail(-EINVAL, "%s: %s is out of range (%lld..%lld bytes)", d->name, value, d->min, d->max);
        *(uint64_t *)field = u;
        break;
    case K_SECS:
        rc = config_parse_seconds(value, &v);
        if (rc == -EINVAL)
            return nj_fail(-EINVAL, "%s: '%s' is not a duration (e.g. 300, 30s, 5m, 1h)", d->name, value);
        if (rc || v < d->min || v > d->max)
            return nj_fail(-EINVAL, "%s: %s is out of range (%lld..%lld seconds)", d->name, value, d->min, d->max);
        *(int *)field = (int)v;
        break;
    case K_ENUM: {
        const char *p = skip_blank(value);
        size_t n = strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        for (int i = 0; d->choices[i]; i++)
            if (suffix_is(p, n, d->choices[i])) {
                *(int *)field = i + d->base;
                goto done;
            }
        char ch[128];
        choices_text(d, ch, sizeof ch);
        return nj_fail(-EINVAL, "%s: '%s' is not one of: %s", d->name, value, ch);
    }
    }
done:
    c->source[k] = (unsigned char)source;
    return 0;
}

int config_set(nj_config *c, const char *key, const char *value, int source) {
    int k = find_key(key, strlen(key));
    if (k < 0) return nj_fail(-EINVAL, "unknown setting '%s'", key);
    return set_key(c, k, value, source);
}

/* ---- file layer ---- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = 0;
    return s;
}

int config_read_file(nj_config *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return nj_fail(-errno, "config file %s: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            rc = nj_fail(-EINVAL, "%s:%d: line too long (max %zu bytes)", path, lineno, sizeof line - 2);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = nj_fail(-EINVAL, "%s:%d: expected 'key = value', got '%s'", path, lineno, s);
            break;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        size_t vn = strlen(val);
        if (vn >= 2 && val[0] == '"' && val[vn - 1] == '"') {
            val[vn - 1] = 0;
            val++;
        }
        int k = find_key(key, strlen(key));
        if (k < 0) {
            rc = nj_fail(-EINVAL, "%s:%d: unknown setting '%s'", path, lineno, key);
            break;
        }
        rc = set_key(c, k, val, NJ_SRC_FILE);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nj_last_error());
            rc = nj_fail(rc, "%s:%d: %s", path, lineno, msg);
            break;
        }
    }
    if (!rc && ferror(f)) rc = nj_fail(-EIO, "config file %s: read error", path);
    fclose(f);
    if (!rc) {
        nj_free(c->config_path);
        c->config_path = nj_strdup(path);
        if (!c->config_path) rc = nj_fail(-ENOMEM, "out of memory");
    }
    return rc;
}

/* ---- environment layer ---- */

static const char *env_get(char *const *envp, const char *name) {
    if (!envp) return NULL;
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

int config_apply_env(nj_config *c, char *const *envp) {
    for (int k = 0; k < NJ_CFG_NKEYS; k++) {
        const char *v = env_get(envp, keys[k].env);
        if (!v) continue;
        int rc = set_key(c, k, v, NJ_SRC_ENV);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nj_last_error());
            return nj_fail(rc, "environment %s: %s", keys[k].env, msg);
        }
    }
    return 0;
}

/* ---- flag layer ---- */

/* Match argv element `a` against "--<key>" or "--<key>=..." or "-x".
 * Returns the key id (or -2 for --config, -3 for --help), sets *inl to the
 * inline value after '=' if any. */
static int match_flag(const char *a, const char **inl) {
    *inl = NULL;
    if (a[0] != '-') return -1;
    if (a[1] != '-') {
        if (!a[1] || a[2]) return -1;
        if (a[1] == 'h') return -3;
        for (int k = 0; k < NJ_CFG_NKEYS; k++)
            if (keys[k].shortflag && keys[k].shortflag == a[1]) return k;
        return -1;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    if (eq) *inl = eq + 1;
    if (n == 4 && !strncmp(name, "help", 4)) return -3;
    if (n == 6 && !strncmp(name, "config", 6)) return -2;
    if (n == 5 && !strncmp(name, "model", 5)) return NJ_CFG_MODEL;
    return find_key(name, n);
}

int config_apply_args(nj_config *c, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        int k = match_flag(a, &val);
        if (k == -3) return 1;
        if (k == -1) return nj_fail(-EINVAL, "unknown option '%s' (see --help)", a);
        if (!val) {
            if (i + 1 >= argc) return nj_fail(-EINVAL, "option '%s' needs a value", a);
            val = argv[++i];
        }
        if (k == -2) continue;            /* --config: read before this layer */
        int rc = set_key(c, k, val, NJ_SRC_FLAG);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nj_last_error());
            return nj_fail(rc, "option %s: %s", a, msg);
        }
    }
    return 0;
}

/* --config PATH from argv, or NULL; -EINVAL through *err when it lacks a value. */
static const char *args_config(int argc, char **argv, int *err) {
    const char *path = NULL;
    *err = 0;
    for (int i = 1; i < argc; i++) {
        const char *val;
        int k = match_flag(argv[i], &val);
        if (k == -1 || k == -3) continue;
        if (!val) {
            if (i + 1 >= argc) break;     /* reported by config_apply_args */
            val = argv[++i];
        }
        if (k == -2) path = val;
    }
    return path;
}

bool config_host_is_loopback(const char *host) {
    if (!host || !strcmp(host, "localhost")) return true;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char lo[16] = {[15] = 1};
        return !memcmp(a, lo, 16);
    }
    return false;
}

int config_validate(const nj_config *c) {
    if (!c->model)
        return nj_fail(-EINVAL, "no model: give -m MODEL.gguf (or `model = ...` in the config file, or NIGHTJAR_MODEL)");
    if (c->host && c->port == 0)
        return nj_fail(-EINVAL, "host %s given without a port: add --port", c->host);
    if (c->port && !config_host_is_loopback(c->host) && !c->token)
        return nj_fail(-EINVAL, "refusing to listen on non-loopback address %s without a token: "
                       "set --token or NIGHTJAR_TOKEN, or use 127.0.0.1", c->host);
    bool no_socket = c->socket_path && !strcmp(c->socket_path, "none");
    if (no_socket && c->port == 0)
        return nj_fail(-EINVAL, "no listener: socket is \"none\" and no --port given");
    return 0;
}

int config_load(nj_config *c, int argc, char **argv, char *const *envp) {
    config_defaults(c);
    int rc;
    const char *path = args_config(argc, argv, &rc);
    bool named = path != NULL;
    char def[1024];
    if (!path) {
        path = env_get(envp, "NIGHTJAR_CONFIG");
        named = path != NULL;
    }
    if (!path) {
        const char *xdg = env_get(envp, "XDG_CONFIG_HOME"), *home = env_get(envp, "HOME");
        if (xdg && *xdg) snprintf(def, sizeof def, "%s/nightjar/config", xdg);
        else if (home && *home) snprintf(def, sizeof def, "%s/.config/nightjar/config", home);
        else def[0] = 0;
        if (def[0]) path = def;
    }
    if (path) {
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            if ((rc = config_read_file(c, path))) return rc;
        } else if (named || errno != ENOENT) {
            return nj_fail(errno ? -errno : -ENOENT, "config file %s: %s", path, strerror(errno));
        }
    }
    if ((rc = config_apply_env(c, envp))) return rc;
    if ((rc = config_apply_args(c, argc, argv))) return rc;
    return config_validate(c);
}

/* ---- introspection ---- */

const char *config_value_str(const nj_config *c, int k, char *buf, size_t cap) {
    const keydef *d = &keys[k];
    const void *field = (const char *)c + d->off;
    switch (d->kind) {
    case K_STR: {
        const char *s = *(char *const *)field;
        if (k == NJ_CFG_TOKEN) snprintf(buf, cap, "%s", s ? "(set)" : "(none)");
        else snprintf(buf, cap, "%s", s ? s : "(default)");
        break;
    }
    case K_INT: case K_SECS: snprintf(buf, cap, "%d", *(const int *)field); break;
    case K_SIZE: snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case K_ENUM: {
        int i = *(const int *)field - d->base;
        snprintf(buf, cap, "%s", i >= 0 ? d->choices[i] : "?");
        break;
    }
    }
    return buf;
}

bool config_differs(const nj_config *a, const nj_config *b, int k) {
    const keydef *d = &keys[k];
    const void *fa = (const char *)a + d->off, *fb = (const char *)b + d->off;
    switch (d->kind) {
    case K_STR: {
        const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
        if (!sa || !sb) return sa != sb;
        return strcmp(sa, sb) != 0;
    }
    case K_SIZE: return *(const uint64_t *)fa != *(const uint64_t *)fb;
    default: return *(const int *)fa != *(const int *)fb;
    }
}

int config_copy_key(nj_config *dst, const nj_config *src, int k) {
    const keydef *d = &keys[k];
    void *fd = (char *)dst + d->off;
    const void *fs = (const char *)src + d->off;
    switch (d->kind) {
    case K_STR: {
        const char *s = *(char *const *)fs;
        char *dup = NULL;
        if (s && !(dup = nj_strdup(s))) return -ENOMEM;
        nj_free(*(char **)fd);
        *(char **)fd = dup;
        break;
    }
    case K_SIZE: *(uint64_t *)fd = *(const uint64_t *)fs; break;
    default: *(int *)fd = *(const int *)fs; break;
    }
    dst->source[k] = src->source[k];
    return 0;
}

void config_usage(FILE *out) {
    fprintf(out,
        "usage: nightjar serve -m MODEL.gguf [options]\n\n"
        "Settings come from flags > environment > config file > defaults.\n"
        "  --config PATH                 config file (default $XDG_CONFIG_HOME/nightjar/config;\n"
        "                                env NIGHTJAR_CONFIG); lines `key = value`\n");
    for (int k = 0; k < NJ_CFG_NKEYS; k++) {
        char flag[64];
        int n = snprintf(flag, sizeof flag, "--%s", keys[k].name);
        for (int i = 2; i < n; i++) if (flag[i] == '_') flag[i] = '-';
        char left[96];
        if (keys[k].shortflag) snprintf(left, sizeof left, "-%c, %s", keys[k].shortflag, flag);
        else snprintf(left, sizeof left, "    %s", flag);
        fprintf(out, "  %-28s  %s\n  %-28s  [file: %s, env: %s%s]\n", left, keys[k].help, "",
                keys[k].name, keys[k].env, keys[k].live ? ", reloaded on SIGHUP" : "");
    }
    fprintf(out, "  -h, --help                    this text\n");
}
