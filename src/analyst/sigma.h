/*
 * sigma — a native evaluator of Sigma detection rules.
 *
 * Purpose.  Sigma rules (YAML, https://sigmahq.io) describe known-bad
 * behaviour as field matches over log events.  nightjar runs them on every
 * canonical event before the model is asked anything: a rule hit on known-bad
 * behaviour is a fact the model cannot talk away.  This module loads rule
 * files with libyaml, compiles each rule once into a small tree of matchers
 * (lower-cased needles, wildcard patterns pre-split into literal segments,
 * PCRE2 programs with JIT), and matches events seen through an accessor, so
 * the evaluator knows nothing of JSON or of any event format.
 *
 * Design.
 *   - Loading never fails because of one bad rule.  A rule that uses a
 *     feature we do not evaluate (a modifier such as utf16le, an aggregation
 *     after '|' in the condition, a logsource no nightjar source produces) or
 *     that is malformed (YAML syntax error, missing detection) is skipped,
 *     and the skip is recorded as (file, reason).  Only out-of-memory and an
 *     unreadable top-level path are errors.
 *   - Rules are indexed by logsource: for each event only the rules whose
 *     product/category/service fit are tried (see sigma_event_view).
 *   - Matching is case-insensitive (ASCII) except `re`, base64 needles and
 *     `cased`.  Field values are fetched once per event and field, and
 *     lower-cased once, in a per-call cache on the stack: sigma_match does
 *     not allocate.
 *
 * Ownership.  A sigma_rules owns everything it compiled; hits and rule infos
 * point into it and stay valid until sigma_rules_free.  Values returned by
 * the event accessor are borrowed for the duration of one sigma_match call.
 *
 * Threads.  Loading mutates the rule set and must not overlap any other call
 * on it.  After loading, sigma_match is safe from any number of threads at
 * once on the same rule set: it only reads it, and its scratch (field cache,
 * lower-cased copies, PCRE2 match data) lives on the stack of the call
 * (sigma_eval.c says how PCRE2 is made to allocate there).
 */
#ifndef NJ_SIGMA_H
#define NJ_SIGMA_H

#include <stddef.h>

typedef struct sigma_rules sigma_rules;

enum sigma_level {
    SIGMA_INFORMATIONAL = 0,
    SIGMA_LOW,
    SIGMA_MEDIUM,
    SIGMA_HIGH,
    SIGMA_CRITICAL,
};

/* "informational" ... "critical"; "?" for anything else. */
const char *sigma_level_name(int level);

/* One rule as loaded.  Strings are never NULL ("" when the rule has none).
 * techniques: ATT&CK technique ids from tags, upper-cased ("T1059.004");
 * tactics: the other attack.* tags as written after "attack." ("execution"). */
typedef struct sigma_rule_info {
    const char *id, *title, *status, *file;
    int level;
    const char *product, *category, *service;   /* lower-cased, "" = any */
    const char *const *techniques;
    int n_techniques;
    const char *const *tactics;
    int n_tactics;
} sigma_rule_info;

/* A rule that was not loaded, and why (one sentence). */
typedef struct sigma_skip {
    const char *file;
    const char *reason;
} sigma_skip;

/* An empty rule set.  NULL on out-of-memory (*err = -ENOMEM). */
sigma_rules *sigma_rules_new(int *err);
void         sigma_rules_free(sigma_rules *rs);

/* Load a rule file, or every *.yml / *.yaml below a directory (recursively,
 * in name order, hidden entries ignored, links back to a parent directory
 * skipped).  Each YAML document of a file is one
 * rule; documents that are rule collections (`action: global`), correlations
 * or filters are skipped with a reason.
 * Returns the number of rules added (>= 0), or a negative code: -ENOENT and
 * friends when PATH itself cannot be read, -ENOMEM, or NJ_EFORMAT when PATH
 * is a single file that is not valid YAML (the skip is recorded too; rules
 * of documents before the error stay loaded).  Files inside a directory never
 * make the call fail: their problems are skips. */
int sigma_load_path(sigma_rules *rs, const char *path);

/* Load rules from YAML text (one or more documents).  NAME labels skips and
 * rule infos.  Returns rules added, NJ_EFORMAT for a YAML syntax error (with
 * nj_last_error() saying where), or -ENOMEM. */
int sigma_load_text(sigma_rules *rs, const char *name, const char *text, size_t len);

int               sigma_rule_count(const sigma_rules *rs);
const sigma_rule_info *sigma_rule(const sigma_rules *rs, int i);
int               sigma_skip_count(const sigma_rules *rs);
const sigma_skip *sigma_skip_at(const sigma_rules *rs, int i);

/* How an event is seen.  get(ctx, field, &len) returns the field's value and
 * its length, or NULL when the event does not have that field; the value must
 * stay valid until sigma_match returns (it is cached during the call).
 * raw/raw_len: the original text, searched by keyword rules (may be NULL).
 * product ("linux", "macos"), category ("process_creation",
 * "network_connection", "file_event") and service ("auditd", "sshd", ...)
 * say which rules fit, all lower-case:
 *   - a rule stating a product fits when the event states the same product
 *     or none (a bare command line has no known OS);
 *   - a rule stating a category or service fits only an event stating the
 *     same one. */
typedef struct sigma_event_view {
    const char *(*get)(void *ctx, const char *field, size_t *len);
    void *ctx;
    const char *raw;
    size_t raw_len;
    const char *product, *category, *service;
} sigma_event_view;

/* A rule that matched.  Pointers borrow from the rule set. */
typedef struct sigma_hit {
    int rule;                         /* index for sigma_rule() */
    const char *id, *title;
    int level;
    const char *const *techniques;
    int n_techniques;
} sigma_hit;

/* Try every fitting rule on EV, in load order; fill up to MAX hits.
 * Returns the number of rules that matched (may exceed MAX; only MAX are
 * written).  Never allocates; safe to call from several threads at once. */
int sigma_match(const sigma_rules *rs, const sigma_event_view *ev, sigma_hit *hits, int max);

/* --- the canonical event (docs/sigma.md has the field table) ----------- */

/* Scratch for one event's view: numbers rendered as text, comm, the auditd
 * key, each made on first use (most events are never asked for most fields).
 * Lives on the caller's stack; set up by sigma_view_from_event. */
typedef struct sigma_json_ctx {
    const void *event;              /* json_t *, borrowed */
    char num[8][24];                /* integer fields, rendered on first use */
    unsigned char num_state[8];     /* 0 not yet, 1 absent, 2 rendered */
    char comm[16];                  /* basename of the image, cut to 15 bytes as the kernel does */
    char key[256];                  /* auditd key="..." from the raw record */
    int comm_state, key_state;      /* 0 not yet, 1 absent, 2 present */
    int syscall_record;             /* auditd: seen as the SYSCALL record, not EXECVE */
} sigma_json_ctx;

/* Fill VIEW so that it reads the canonical event EVENT (a jansson json_t *,
 * contract v1) through CTX.  Logsource: category from kind (exec ->
 * process_creation, network -> network_connection, file -> file_event),
 * product from source.format (auditd/sysmon -> linux, eslogger -> macos,
 * otherwise unknown), service from source.format (auditd, sshd).
 * EVENT and CTX must outlive every sigma_match on VIEW. */
void sigma_view_from_event(sigma_event_view *view, sigma_json_ctx *ctx, const void *event);

/* sigma_view_from_event + sigma_match in one call, and more: an auditd exec
 * event joins an EXECVE record (type EXECVE, a0..aN = argv) and a SYSCALL
 * record (type SYSCALL, SYSCALL execve, exe, comm, uid, euid, auid, key) that
 * share field names, so rules written for either record type are tried
 * against the matching view and the hits are merged (each rule once, in
 * load order).  Returns the number of rules that matched; writes up to MAX. */
int sigma_match_event(const sigma_rules *rs, const void *event, sigma_hit *hits, int max);

#endif
