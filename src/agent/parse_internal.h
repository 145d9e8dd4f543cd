/*
 * parse_internal — what the format modules (parse_*.c) share: the parser
 * base struct and its vtable, the emit path (finish, proctable, validate,
 * aggregate, hand over) and small text helpers.  Not a public header: only
 * src/agent/parse*.c include it.
 *
 * Every format module defines `struct <fmt>_parser { parser base; ... }`
 * with `base` first, a vtable, and a constructor registered in parse.c.
 */
#ifndef NJ_PARSE_INTERNAL_H
#define NJ_PARSE_INTERNAL_H

#include "parse.h"
#include "event.h"
#include "proctable.h"
#include "aggregate.h"

typedef struct parser_vt {
    const char *format;
    int  (*feed)(parser *p, const char *line, size_t len, long lineno);
    int  (*flush)(parser *p);
    void (*destroy)(parser *p);     /* frees the module's own state only */
} parser_vt;

struct parser {
    const parser_vt *vt;
    parser_opts o;                   /* string members point at the copies below */
    char *source_name, *host;
    proctable *pt;                   /* NULL: no table */
    bool own_pt;
    aggregate *agg;                  /* NULL: no aggregation */
    int64_t ref_time;                /* resolved reference time */
    bool emit_failed;                /* emit returned an error during this call */
    parser_stats st;
};

/* Module constructors (below) allocate the module struct with `base`
 * first, set vt and do format-specific setup; parser_new fills the base. */

/* Reports a malformed or unusable line (counted; on_error called). */
void parser_bad(parser *p, long lineno, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A new event with id, kind, source.format/name/line and the default host.
 * NULL with -ENOMEM/-EINVAL in *err. */
json_t *parser_event(parser *p, const char *kind, const char *id, long lineno, int *err);

/* Hands an event over: raw (unless no_raw), event_finish, parent fill from
 * and update of the process table, validation (a failure is reported as a
 * bad line and the event dropped), aggregation, emit.  Consumes ev. */
int parser_emit(parser *p, json_t *ev, long lineno, const char *raw, size_t raw_len);

/* One line of a JSON-lines source: *out gets the parsed document (a new
 * reference) and 0; a blank line gives *out = NULL and 0; a line that is
 * not JSON is reported (parser_bad: column and reason) and gives *out =
 * NULL and 0; out of memory is nj_fail(-ENOMEM, "<name>: out of memory"). */
int parser_json_line(parser *p, const char *name, const char *line, size_t len, long lineno, json_t **out);
/* The same into a scratch arena (event.h: the document must be given back
 * with event_scratch_release, and nothing of it kept); NULL: the heap. */
int parser_json_line_scratch(parser *p, const char *name, const char *line, size_t len, long lineno,
                             event_scratch *scratch, json_t **out);

/* ---- text helpers ---- */

/* Hex text (even length, [0-9A-Fa-f]) -> bytes in out (cap >= n/2 + 1,
 * NUL-ended).  Returns the byte count, or -1 if s is not hex. */
long nj_hex_decode(const char *s, size_t n, char *out);
bool nj_is_hex(const char *s, size_t n);
/* Decimal integer of exactly s[0..n) (optional leading '-'); false if not. */
bool nj_parse_ll(const char *s, size_t n, long long *out);
/* Trims a trailing "\n" / "\r\n". */
size_t nj_chomp(const char *s, size_t n);
/* memmem for portability. */
const char *nj_memmem(const char *h, size_t hn, const char *n, size_t nn);

/* Module registrations (parse_<fmt>.c). */
parser *parse_auditd_new(int *err);
parser *parse_eslogger_new(int *err);
parser *parse_osquery_new(int *err);
parser *parse_sysmon_new(int *err);
parser *parse_sshd_new(int *err);
parser *parse_jsonl_new(const parser_opts *o, int *err);
parser *parse_cmdline_new(int *err);

#endif
