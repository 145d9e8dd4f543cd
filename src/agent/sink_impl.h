/*
 * sink_impl — what the sink implementations share (not part of the API).
 *
 * Each implementation (sink_jsonl.c, sink_syslog.c, sink_webhook.c) defines
 * a struct whose first member is `struct sink`, fills in its ops, and is
 * reached from sink_open through its *_open function.  The base owns a
 * copy of the spec; an implementation's close frees its own state and then
 * calls sink_base_free.
 */
#ifndef NJ_SINK_IMPL_H
#define NJ_SINK_IMPL_H

#include "sink.h"

#include <stdarg.h>

struct sink_ops {
    int  (*send)(sink *s, const spool_delivery *items, size_t n, sink_result *res);
    void (*close)(sink *s);
};

struct sink {
    const struct sink_ops *ops;
    sink_spec spec;
};

/* Copy spec into s->spec (all strings duplicated).  0 or -ENOMEM. */
int  sink_base_init(sink *s, const struct sink_ops *ops, const sink_spec *spec);
void sink_base_free(sink *s);   /* frees the spec copy and s itself */

sink *sink_jsonl_open(const sink_spec *spec, int *err);
sink *sink_syslog_open(const sink_spec *spec, int *err);
sink *sink_webhook_open(const sink_spec *spec, int *err);

/* res->status = st and a formatted reason. */
void sink_set(sink_result *res, sink_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A growable byte buffer (nj_malloc), always NUL terminated. */
typedef struct sbuf { char *p; size_t len, cap; bool oom; } sbuf;
void sbuf_add(sbuf *b, const void *data, size_t n);
void sbuf_str(sbuf *b, const char *s);
void sbuf_fmt(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sbuf_free(sbuf *b);

/* Append JSON text with every non-ASCII character written as \uXXXX
 * (surrogate pairs above U+FFFF, U+FFFD for invalid UTF-8).  Valid JSON
 * stays valid and means the same; the result is 7-bit clean. */
void sbuf_json_ascii(sbuf *b, const char *json, size_t n);

/* Elastic _bulk response -> per-item results (n items sent, in order).
 * Statuses 2xx and 409 (already indexed: a redelivery) are SINK_OK, 429 and
 * 5xx SINK_RETRY, other 4xx SINK_PERMANENT.  A body that does not parse or
 * does not list exactly n items makes every item SINK_MAYBE.  The body is
 * untrusted (fuzz/sink_bulk.c). */
void webhook_parse_bulk(const char *body, size_t len, size_t n, sink_result *res);

#endif
