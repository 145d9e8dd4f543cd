/*
 * parse — streaming parsers from endpoint log formats to the canonical event.
 *
 * Purpose.  One interface for every source the agent reads: eslogger JSON
 * lines (macOS), auditd logs, osquery result logs, Sysmon for Linux in
 * syslog, sshd logs (syslog, ISO, macOS unified log, journalctl -o json),
 * generic JSON lines with a field-mapping file, and plain command lines.
 * The caller feeds lines; the parser calls `emit` with 0..n canonical events
 * per line (docs/event.md) and `on_error` for each line it cannot use.
 *
 * Design.  A parser is a small state machine behind a vtable (parse_*.c, one
 * module per format).  Most formats are one event per line; auditd groups
 * records by serial and holds a bounded set of pending serials (see
 * parse_auditd.c); sshd failures may be held by the aggregator (aggregate.h)
 * until their window closes.  parser_flush() releases everything held (call
 * it at end of input, and on an idle timeout when tailing).  Every emitted
 * event has passed event_finish() and event_validate(): a parser bug
 * surfaces as a reported line, never as a malformed event downstream.
 * Parsers of formats that carry only a parent pid (auditd, eslogger,
 * osquery) keep a process table (proctable.h) and fill parent.path and
 * parent.cmdline from it.
 *
 * Errors.  A malformed line is reported through on_error(ctx, source,
 * lineno, reason) and skipped; parsing goes on.  parser_feed() returns a
 * negative code only when it could not do its job: -ENOMEM (the line is
 * lost, the parser stays usable and leak-free) or the first non-zero value
 * returned by emit (the event was handed over; the caller decides).
 *
 * Ownership.  emit receives a new reference to each event and owns it
 * (json_decref when done), also when it returns an error.  The parser copies
 * the strings of parser_opts it keeps; `procs` is borrowed (shared table).
 *
 * Threads.  A parser belongs to one thread; different parsers may run on
 * different threads (a shared proctable must then be used by one of them
 * only: the table has no lock).
 */
#ifndef NJ_PARSE_H
#define NJ_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct parser parser;
typedef struct proctable proctable;

/* Receives one canonical event (ownership passes; return 0 or a negative
 * code, which parser_feed/parser_flush pass back to their caller). */
typedef int (*parser_emit_fn)(void *ctx, json_t *ev);
/* A line that could not be used: source name ("-" if none), 1-based line
 * number, and a sentence. */
typedef void (*parser_error_fn)(void *ctx, const char *source, long lineno, const char *reason);

typedef struct parser_opts {
    parser_emit_fn  emit;          /* required */
    parser_error_fn on_error;      /* may be NULL (errors only counted) */
    void           *ctx;
    const char *source_name;       /* source.name of events, e.g. the file path */
    const char *host;              /* host when the source does not say one */
    bool        no_raw;            /* omit "raw" (default: keep, cut to 4096 B) */
    /* sshd / syslog: timestamps without a year (RFC 3164 "Dec 10 06:55:46")
     * take the year that puts them closest before reference_time + 1 day
     * (seconds since the epoch; 0 = now).  tz_offset_min: the offset from UTC
     * of timestamps that carry no zone (RFC 3164, ISO without offset),
     * minutes east of UTC; default 0 (UTC). */
    int64_t     reference_time;
    int         tz_offset_min;
    /* auditd: at most max_pending serials held (0 = 256); a serial is
     * complete on EOE, when `reorder` newer serials have started after it
     * (0 = 4; 1 = as soon as a newer serial starts), when the bound is hit
     * (oldest first) or at flush. */
    int         max_pending;
    int         reorder;
    /* process table for parent.path/cmdline (auditd, eslogger, osquery):
     * procs = shared table, or NULL for a private one of proc_capacity
     * entries (0 = 4096; -1 = no table). */
    proctable  *procs;
    int         proc_capacity;
    /* sshd: failures per source address within agg_window seconds (0 = 60)
     * become one event with auth.count/auth.users once there are at least
     * agg_threshold of them (0 = 5; -1 = no aggregation). */
    int         agg_window;
    int         agg_threshold;
    /* jsonl: the field mapping (docs/event.md), as JSON text or a file path
     * (text wins). */
    const char *mapping_json;
    const char *mapping_file;
} parser_opts;

/* A parser for format eslogger | auditd | osquery | sysmon | sshd | jsonl |
 * cmdline (a plain command line per line).  NULL on failure with *err =
 * -EINVAL (unknown format, missing emit, bad mapping: sentence in
 * nj_last_error()) or -ENOMEM. */
parser *parser_new(const char *format, const parser_opts *o, int *err);

/* One line of input (without or with its trailing newline; it need not be
 * NUL-terminated).  lineno is the caller's 1-based line number, used in
 * events (source.line) and error reports. */
int parser_feed(parser *p, const char *line, size_t len, long lineno);

/* Emits everything held (pending auditd serials, open aggregation windows).
 * The parser stays usable. */
int parser_flush(parser *p);

void parser_free(parser *p);

/* Counters since creation. */
typedef struct parser_stats { long lines, events, errors; } parser_stats;
void parser_get_stats(const parser *p, parser_stats *out);

/* Names accepted by parser_new, NULL-terminated. */
extern const char *const parser_formats[];

#endif
