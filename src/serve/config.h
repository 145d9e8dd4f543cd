/*
 * config — settings of `nightjar serve`, from four layers.
 *
 * Every setting has a default and can be given in a config file, in the
 * environment and as a command-line flag; a later layer overrides an earlier
 * one:  flags > environment > file > defaults.  One table in config.c lists
 * the settings (name, environment variable, kind, range, whether it may change
 * while the server runs), so the file keys, the flags (`--ctx-size` for key
 * `ctx_size`) and the variables (CTX_SIZE, NIGHTJAR_PORT...) cannot drift apart.
 *
 * File format: UTF-8 text, one `key = value` per line; blank lines and lines
 * whose first non-blank character is '#' are ignored; the value may be wrapped
 * in double quotes to keep leading/trailing blanks; '-' and '_' are the same
 * in keys.  Unknown keys and bad values are errors naming file:line.
 *
 * Values: integers are decimal; sizes take K/M/G/T suffixes (binary: 6G =
 * 6*2^30; "GB"/"GiB" mean the same); durations take s/m/h (300, 5m).
 *
 * Errors: config_load() returns -EINVAL (bad value, unknown key, usage),
 * -ENOENT (an explicitly named config file is missing) or -ENOMEM, with a
 * sentence in nj_last_error().  It returns 1 for --help (usage printed by the
 * caller with config_usage()).
 *
 * Ownership: nj_config owns its strings (nj_malloc'd); config_free releases
 * them.  No globals, no threads: the server keeps one nj_config and builds a
 * fresh one on SIGHUP (config_load again with the same argv/env) and copies
 * the settings marked live.
 */
#ifndef NJ_CONFIG_H
#define NJ_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Where a setting's value came from. */
enum { NJ_SRC_DEFAULT = 0, NJ_SRC_FILE, NJ_SRC_ENV, NJ_SRC_FLAG };

/* Setting ids (index into the table and into nj_config.source). */
enum nj_cfg_key {
    NJ_CFG_MODEL, NJ_CFG_SOCKET, NJ_CFG_HOST, NJ_CFG_PORT, NJ_CFG_TOKEN,
    NJ_CFG_THREADS, NJ_CFG_NICE, NJ_CFG_CTX_SIZE, NJ_CFG_KV_TYPE,
    NJ_CFG_MAX_TOKENS, NJ_CFG_MAX_BODY, NJ_CFG_MEM_BUDGET, NJ_CFG_IDLE_UNLOAD,
    NJ_CFG_SHUTDOWN_TIMEOUT, NJ_CFG_LOG_LEVEL, NJ_CFG_QOS, NJ_CFG_CHAT_TEMPLATE,
    NJ_CFG_MAX_QUEUE, NJ_CFG_MAX_CONNECTIONS, NJ_CFG_RULES, NJ_CFG_ANALYZE_BATCH,
    NJ_CFG_PARALLEL, NJ_CFG_CHUNK, NJ_CFG_AGING_MS,

    NJ_CFG_WATCH, NJ_CFG_SINK, NJ_CFG_SPOOL_PATH,

    NJ_CFG_PREFIX_CACHE,
    NJ_CFG_NKEYS
};

/* qos: none (Linux, or leave as is), utility, background (macOS QoS). */
enum { NJ_CFG_QOS_NONE = -1 };

typedef struct nj_config {
    char    *model;            /* GGUF path (required) */
    char    *socket_path;      /* NULL: <runtime dir>/nightjar.sock; "" or "none": no socket */
    char    *host;             /* TCP address; NULL: 127.0.0.1 when port > 0 */
    int      port;             /* 0: no TCP listener */
    char    *token;            /* bearer token; NULL: none */
    int      threads;          /* THREADS, default 2 */
    int      nice;             /* NICE_LEVEL, default 10 */
    int      ctx_size;         /* CTX_SIZE, default 4096 */
    int      kv_type;          /* enum nj_kv_type */
    int      max_tokens;       /* default max_tokens of a request */
    uint64_t max_body;         /* bytes, default 1 MiB */
    uint64_t mem_budget;       /* bytes, default 6 GiB */
    int      idle_unload;      /* seconds; 0: never unload */
    int      shutdown_timeout; /* seconds to finish in-flight work */
    int      log_level;        /* NJ_LOG_* */
    int      qos;              /* NJ_QOS_* or NJ_CFG_QOS_NONE */
    char    *chat_template;    /* NULL: the model's own */
    int      max_queue;        /* queued requests before 503 */
    int      max_connections;  /* concurrent HTTP connections */
    char    *rules;            /* extra Sigma rules for the analyst; NULL: the pack only */
    int      analyze_batch;    /* events per /v1/analyze request before 413 */
    int      parallel;         /* slots: sequences held at once, each with its own KV cache */
    int      chunk;            /* prefill chunk in tokens (a preemption point after each) */
    int      aging_ms;         /* a waiting request's class rises one step per aging_ms; 0 = off */

    char    *watch;            /* event sources the service follows, "KIND:PATH;KIND:PATH"; NULL: none */
    char    *sink;             /* sink specs for their verdicts, ';'-separated; NULL: spool only */
    char    *spool_path;       /* the agent's spool; NULL: <cache dir>/spool.db */

    char    *prefix_cache;     /* directory of prefix cache files; NULL: <cache dir>/prefix;
                                  "off": none */

    char    *config_path;      /* file that was read, NULL if none */
    unsigned char source[NJ_CFG_NKEYS];   /* NJ_SRC_* per setting */
} nj_config;

/* Fill with defaults (no allocation; config_free is still safe). */
void config_defaults(nj_config *c);
void config_free(nj_config *c);

/* Build the full configuration: defaults, then the file (--config PATH, else
 * $NIGHTJAR_CONFIG, else $XDG_CONFIG_HOME/nightjar/config, else
 * $HOME/.config/nightjar/config; a missing default file is fine, a missing
 * named one is not), then `envp` (NULL-terminated "KEY=VALUE" strings, e.g.
 * environ), then the flags in argv[1..argc-1] (argv[0] is the command name).
 * Then checks cross-setting rules (a model is required; a non-loopback host
 * needs a token).  Returns 0, 1 for --help, or < 0 with nj_last_error(). */
int config_load(nj_config *c, int argc, char **argv, char *const *envp);

/* Single layers, for tests and for config_load.  `source` is NJ_SRC_*. */
int config_set(nj_config *c, const char *key, const char *value, int source);
int config_read_file(nj_config *c, const char *path);
int config_apply_env(nj_config *c, char *const *envp);
int config_apply_args(nj_config *c, int argc, char **argv);  /* 1 on --help */
int config_validate(const nj_config *c);

/* Table access. */
const char *config_key_name(int key);          /* "ctx_size" */
const char *config_key_env(int key);           /* "CTX_SIZE" */
bool        config_key_live(int key);          /* may change on SIGHUP */
const char *config_source_name(int source);    /* "default", "file", "env", "flag" */
/* The value of a setting as text (token shown as "(set)"), into buf. */
const char *config_value_str(const nj_config *c, int key, char *buf, size_t cap);
/* true if the two configurations differ in this setting. */
bool        config_differs(const nj_config *a, const nj_config *b, int key);
/* Copy one setting from src into dst (strings duplicated). 0 or -ENOMEM. */
int         config_copy_key(nj_config *dst, const nj_config *src, int key);

/* true if host is a loopback address ("localhost", 127.0.0.0/8, ::1). */
bool config_host_is_loopback(const char *host);

/* Parsers for the value kinds (exposed for tests).  0 or -EINVAL. */
int config_parse_int(const char *s, long long min, long long max, long long *out);
int config_parse_size(const char *s, uint64_t *out);
int config_parse_seconds(const char *s, long long *out);

void config_usage(FILE *out);

#endif
