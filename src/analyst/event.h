/*
 * event — the canonical event, version 1: the one shape every source becomes.
 *
 * Purpose.  Parsers (eslogger, auditd, osquery, Sysmon, sshd, JSON lines,
 * plain command lines) and the HTTP API all hand the analyst the same JSON
 * object, specified in docs/event.md.  This module is that contract in code:
 * build helpers for parsers, validation for events that arrive from outside,
 * and one serialiser with a stable key order so an event's text (and hence a
 * verdict-cache key or a spool row) does not depend on who built it.
 *
 * Representation.  An event is a jansson object (json_t *) shaped exactly as
 * the JSON: sub-objects "source", "user", "process", "parent", "network",
 * "auth", "file", "audit".  We chose json_t over a C struct because events
 * arrive as JSON (HTTP, files, jsonl), are stored as JSON (spool) and are
 * matched by field path (Sigma), and because absent facts must stay absent:
 * an object that lacks a key says that directly.  Every field is named by an
 * ev_field id (below); a static schema table gives each id its path, type,
 * range and position, and drives the setters, validation and serialisation.
 *
 * Invariants of an event built here or accepted by event_validate():
 *   - only fields of the schema are present (unknown keys are an error);
 *   - strings are valid UTF-8 without NUL; invalid bytes (and NUL) were
 *     replaced by U+FFFD when set; no string is empty (setters skip empty
 *     values: absent facts are omitted, never "");
 *   - strings are at most EV_STR_MAX bytes, "raw" at most EV_RAW_MAX bytes
 *     (longer values are cut at a character boundary when set);
 *   - ids (pid, uid, port) are integers in their range;
 *   - "time" is RFC 3339; events built or parsed here carry it in UTC with
 *     six fractional digits ("2026-12-07T11:22:33.123456Z").
 *
 * Memory.  event_init() installs the process's one jansson allocator
 * (nj_malloc/nj_free underneath, with the emergency arena described in
 * event.c), so events count against the memory budget and fail cleanly
 * under nj_alloc_fail_after().  jansson's allocator is process-wide: no
 * other module installs one (two installers would each win depending on
 * start-up order, and a block from this one's arena must never reach
 * plain nj_free).  Every
 * function that returns a json_t * returns a new reference (json_decref it);
 * strings returned by event_dump() are nj_malloc'd (nj_free them).
 *
 * Errors.  Functions return 0 or a negative code (-ENOMEM, -EINVAL,
 * NJ_EFORMAT) and leave a sentence in nj_last_error() that names the field
 * path first ("process.pid: expected integer").
 *
 * Threads.  No shared state beyond event_init()'s one-time setup; an event
 * object is owned by one thread at a time.
 */
#ifndef NJ_EVENT_H
#define NJ_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EV_VERSION   1
#define EV_RAW_MAX   4096        /* bytes kept of "raw" */
#define EV_STR_MAX   65536       /* bytes kept of any other string */
#define EV_ARGV_MAX  1024        /* elements kept of a list (process.argv, ...); a
                                    list also holds at most EV_STR_MAX bytes */

/* Every field of the schema, in serialisation order (objects first name the
 * object, then its members).  The order here IS the stable key order. */
typedef enum ev_field {
    EF_V = 0, EF_ID, EF_KIND, EF_TIME, EF_HOST,
    EF_SOURCE, EF_SOURCE_FORMAT, EF_SOURCE_NAME, EF_SOURCE_LINE,
    EF_USER, EF_USER_NAME, EF_USER_UID, EF_USER_EUID, EF_USER_AUID, EF_USER_LOGIN,
    EF_PROCESS, EF_PROC_PID, EF_PROC_PPID, EF_PROC_PATH, EF_PROC_NAME, EF_PROC_ARGV,
    EF_PROC_CMDLINE, EF_PROC_CWD, EF_PROC_TTY, EF_PROC_SIGNING_ID, EF_PROC_TEAM_ID,
    EF_PROC_PLATFORM_BINARY, EF_PROC_EXIT_CODE, EF_PROC_GUID,
    EF_PARENT, EF_PARENT_PID, EF_PARENT_PATH, EF_PARENT_CMDLINE, EF_PARENT_GUID,
    EF_NETWORK, EF_NET_PROTOCOL, EF_NET_DIRECTION, EF_NET_SRC_IP, EF_NET_SRC_PORT,
    EF_NET_DST_IP, EF_NET_DST_PORT,
    EF_AUTH, EF_AUTH_RESULT, EF_AUTH_METHOD, EF_AUTH_USER, EF_AUTH_SRC_IP,
    EF_AUTH_SRC_PORT, EF_AUTH_SERVICE, EF_AUTH_KEY_TYPE, EF_AUTH_KEY_FP,
    EF_AUTH_INVALID_USER, EF_AUTH_COUNT, EF_AUTH_USERS, EF_AUTH_AFTER_FAILURES,
    EF_FILE, EF_FILE_PATH, EF_FILE_ACTION,
    EF_AUDIT, EF_AUDIT_KEY, EF_AUDIT_SYSCALL, EF_AUDIT_SUCCESS, EF_AUDIT_RECORDS,
    EF_RAW,
    EF_COUNT
} ev_field;

typedef enum ev_type { EVT_OBJECT, EVT_STRING, EVT_INT, EVT_BOOL, EVT_STRINGS } ev_type;

/* Install the counting allocator into jansson (idempotent, thread-safe).
 * Every constructor below calls it; call it yourself before using jansson
 * directly on events. */
void event_init(void);

/* json_loadb() for untrusted text: tells out-of-memory apart from bad
 * input (jansson reports a failed allocation as a syntax error and can
 * return a document with a cut string), and replaces invalid UTF-8 bytes
 * by U+FFFD before parsing (jansson would refuse the whole document, so
 * one bad byte in a file name could hide an event).  Every untrusted-JSON
 * parser in the agent loads through here.  NULL with *err = -ENOMEM or
 * NJ_EFORMAT (je filled). */
json_t *event_json_load(const char *text, size_t n, size_t flags, json_error_t *je, int *err);

/* A scratch arena for documents that are read once and thrown away: a
 * source's line parsed to pick out a few fields.  Loading into it costs a
 * pointer bump per node instead of a malloc, and releasing the document is
 * a reset instead of a walk that frees every node.  The price is a rule:
 * nothing of a scratch document may outlive event_scratch_release (copy
 * values out; never json_incref or json_object_set a node of it into
 * another document).  A document that does not fit is completed on the
 * heap and freed node by node at release; the arena then doubles (up to
 * 8 MiB) for the next one.  One thread at a time; owned by the caller. */
typedef struct event_scratch event_scratch;
event_scratch *event_scratch_new(int *err);
void           event_scratch_free(event_scratch *s);
/* event_json_load into s.  At most one document of s is live at a time. */
json_t *event_json_load_scratch(event_scratch *s, const char *text, size_t n, size_t flags, json_error_t *je,
                                int *err);
/* Ends the life of j (NULL is fine), a document of event_json_load_scratch. */
void    event_scratch_release(event_scratch *s, json_t *j);

/* The same without the UTF-8 repair: json_loadb() of text that must be
 * valid JSON as it is (an HTTP request body, a knowledge-base line, model
 * output), telling out-of-memory (-ENOMEM) from bad input (NJ_EFORMAT, je
 * filled).  Every parse of untrusted JSON in the product goes through one
 * of the two. */
json_t *event_json_parse(const char *text, size_t n, size_t flags, json_error_t *je, int *err);

/* json_dumps() that is NULL (nj_last_error set) when an allocation failed
 * on the way: jansson's dumper carries on past a failed append and can
 * return a document with a key or a value left out.  nj_free the text. */
char *event_json_dumps(const json_t *j, size_t flags);

/* Field lookup: "process.pid" -> EF_PROC_PID, or -1 if not a field. */
int         event_field_lookup(const char *path);
const char *event_field_path(ev_field f);       /* "process.pid" */
ev_type     event_field_type(ev_field f);

/* A new event {"v":1,"id":id,"kind":kind}.  kind must be one of exec fork
 * exit auth login logout network file other (-EINVAL otherwise); id is
 * sanitised like any string and must be non-empty.  NULL on failure, code in
 * *err (may be NULL). */
json_t *event_new(const char *kind, const char *id, int *err);

/* The failure exit of a constructor that returns an event: releases ev
 * (may be NULL), puts rc in *err (err may be NULL) and returns NULL. */
json_t *event_discard(json_t *ev, int rc, int *err);

/* Setters.  Each creates the enclosing sub-object on demand and replaces an
 * earlier value.  Strings: n == (size_t)-1 means strlen(s); invalid UTF-8 and
 * NUL become U+FFFD; cut to EV_STR_MAX (EV_RAW_MAX for EF_RAW) at a character
 * boundary; an empty or NULL string sets nothing and returns 0.  Integers are
 * range-checked against the schema (-EINVAL with a sentence if outside).
 * Wrong type for the field: -EINVAL.  Out of memory: -ENOMEM, event unchanged
 * or with the field absent. */
int event_set_str(json_t *ev, ev_field f, const char *s, size_t n);
int event_set_int(json_t *ev, ev_field f, long long v);
int event_set_bool(json_t *ev, ev_field f, bool v);
/* Appends one element to a string-list field (process.argv, auth.users,
 * audit.records); the empty string IS kept in argv (an argument may be
 * empty).  Elements beyond EV_ARGV_MAX are dropped, and the element that
 * would take the list past EV_STR_MAX bytes is cut to fit (later ones are
 * dropped): returns 0 in both cases. */
int event_push_str(json_t *ev, ev_field f, const char *s, size_t n);
/* Removes a field (no-op if absent); an emptied sub-object is removed too. */
void event_unset(json_t *ev, ev_field f);
/* "time" from seconds since the epoch (UTC) and microseconds [0, 1e6). */
int event_set_time(json_t *ev, int64_t sec, long usec);
/* "raw": like event_set_str(ev, EF_RAW, ...) (cut to EV_RAW_MAX bytes). */
int event_set_raw(json_t *ev, const char *s, size_t n);

/* Getters (borrowed; NULL / -ENOENT when absent or of another type). */
const char *event_get_str(const json_t *ev, ev_field f);
int         event_get_int(const json_t *ev, ev_field f, long long *out);
json_t     *event_get(const json_t *ev, ev_field f);

/* Completes the argv/cmdline pair: argv only -> cmdline = argv joined by
 * single spaces (cut to EV_STR_MAX); cmdline only -> argv = cmdline split on
 * ASCII whitespace (best effort).  Parsers call it before emitting. */
int event_finish(json_t *ev);

/* Checks that ev is a canonical v1 event (see the invariants above; the time
 * may carry any RFC 3339 offset).  Returns 0, or -EINVAL with the offending
 * field path first in nj_last_error(): "process.pid: expected integer". */
int event_validate(const json_t *ev);

/* Parses and validates an incoming canonical event (HTTP body, file line).
 * Returns a new event with "time" normalised to UTC, or NULL with *err =
 * NJ_EFORMAT (not JSON, not an object), -EINVAL (a field is wrong; sentence
 * names the path) or -ENOMEM. */
json_t *event_parse(const char *text, size_t n, int *err);

/* Compact JSON with the schema's stable key order; nj_malloc'd, NUL-ended,
 * length in *len (may be NULL).  NULL on out of memory or if ev holds a key
 * or type outside the schema (-EINVAL; validate first). */
char *event_dump(const json_t *ev, size_t *len);

/* A plain command line -> {"v":1,"id":"cmdline:<n>","kind":"exec",
 * "time":<now>,"source":{"format":"cmdline"},"process":{"cmdline":LINE,
 * "argv":[...]}}.  Leading/trailing whitespace (incl. CR/LF) is trimmed; an
 * empty line is -EINVAL.  NULL on failure, code in *err. */
json_t *event_from_cmdline(const char *line, size_t len, long n, int *err);

/* RFC 3339 text -> seconds since the epoch (UTC) and microseconds (extra
 * fractional digits truncated).  0 or -EINVAL. */
int event_time_parse(const char *s, size_t n, int64_t *sec, long *usec);
/* Seconds + microseconds -> "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" into buf (>= 28). */
void event_time_format(int64_t sec, long usec, char buf[32]);
/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t event_days_from_civil(int64_t y, int m, int d);

/* UTF-8 helpers (exposed for parsers and tests).  event_utf8_valid: true if
 * s[0..n) is valid UTF-8 without NUL.  event_utf8_sanitize: a new nj_malloc'd
 * NUL-ended copy with each invalid byte (or NUL) replaced by U+FFFD and cut
 * to at most max bytes at a character boundary; length in *out_len. */
bool  event_utf8_valid(const char *s, size_t n);
char *event_utf8_sanitize(const char *s, size_t n, size_t max, size_t *out_len);

#endif
