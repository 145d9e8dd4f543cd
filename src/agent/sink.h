/*
 * sink — where verdicts go: JSON lines, syslog, webhooks.
 *
 * Purpose.  A sink takes a batch of deliveries claimed from the spool
 * (spool_next_delivery) and reports, per item, whether it was delivered,
 * refused (retry later), left in doubt (retry, flagged as a redelivery) or
 * can never be delivered as it is (failed).  The delivery loop (deliver.h)
 * turns those results into spool_mark_delivered / spool_mark_failed; the
 * sinks know nothing of SQLite.
 *
 * Configuration is one string per sink (docs/agent.md, "Spool and sinks"):
 *   jsonl:PATH[,max_mb=N][,keep=N]
 *   syslog:unix:PATH | syslog:udp:HOST:PORT | syslog:tcp:HOST:PORT
 *        [,facility=NAME|N][,severity=NAME|N][,app=NAME][,sd_id=NAME@PEN]
 *   webhook:URL[,preset=plain|splunk|elastic][,token=T][,token_file=PATH]
 *        [,timeout_ms=N]
 * The target runs up to the first "," that starts a `key=` option, so a
 * path or URL may contain commas but not ",word=".  Values cannot contain
 * commas.  HOST may be a bracketed IPv6 literal ([::1]).
 *
 * What a sink sends for an item is the verdict JSON as stored, with
 * "redelivery": true added as the object's first member when the spool
 * flags the item (sink_payload); "redelivery" is therefore reserved as a
 * top-level member name of verdicts.  Raw line breaks, which valid JSON can
 * only have between tokens, become spaces, so one verdict is one line.
 *
 * Names.  sink_spec.name is the spec without its options and without
 * credentials in a URL ("webhook:https://siem.example/hook"); the spool
 * keys delivery rows by it, so changing a token or a rotation size keeps
 * the backlog, while changing the target starts a new one.
 *
 * Threads.  A sink handle is used by one thread at a time (the delivery
 * loop gives each sink its own thread).  Different sinks are independent.
 */
#ifndef NJ_SINK_H
#define NJ_SINK_H

#include "spool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sink_kind { SINK_JSONL = 1, SINK_SYSLOG, SINK_WEBHOOK } sink_kind;
typedef enum sink_transport { SINK_UNIX = 1, SINK_UDP, SINK_TCP } sink_transport;
typedef enum sink_preset { SINK_PLAIN = 1, SINK_SPLUNK, SINK_ELASTIC } sink_preset;

/* A parsed sink spec.  Strings are owned (sink_spec_free). */
typedef struct sink_spec {
    sink_kind kind;
    char *name;             /* canonical name, see above */
    /* jsonl */
    char *path;             /* also the unix socket path of syslog:unix */
    int64_t max_bytes;      /* rotate when a file would exceed this; 0 never (max_mb, default 100) */
    int keep;               /* rotated files kept: PATH.1 .. PATH.keep (default 5) */
    /* syslog */
    sink_transport transport;
    char *host;             /* without brackets */
    int port;
    int facility;           /* 0..23 (default 16, local0) */
    int severity;           /* 0..7 (default 5, notice) */
    char *app;              /* APP-NAME (default "nightjar") */
    char *sd_id;            /* SD-ID (default "nightjar@32473") */
    /* webhook */
    char *url;
    sink_preset preset;
    char *token;            /* from token= or the first line of token_file= */
    int timeout_ms;         /* whole request (default 10000) */
} sink_spec;

/* Parse a spec string.  0, or -EINVAL with a sentence naming the problem
 * (unknown kind or option, bad number, missing port, ...).  token_file is
 * read here (first line, trailing whitespace removed).  On failure out is
 * left empty (nothing to free). */
int  sink_spec_parse(const char *text, sink_spec *out);
void sink_spec_free(sink_spec *s);

/* Outcome of one item. */
typedef enum sink_status {
    SINK_OK = 0,        /* delivered (the receiver has it) */
    SINK_RETRY,         /* not taken (refused, not connected): retry */
    SINK_MAYBE,         /* outcome unknown (timeout after sending): retry, flag */
    SINK_PERMANENT,     /* will never be taken as it is */
} sink_status;

typedef struct sink_result {
    sink_status status;
    char error[200];    /* why, when not SINK_OK */
} sink_result;

typedef struct sink sink;

/* Open a sink from a spec (copied).  JSONL opens/creates its file (0600,
 * parent directories 0700); syslog and webhook connect lazily, on the first
 * send, so a collector that is down at start does not stop the agent.
 * NULL with *err on failure. */
sink *sink_open(const sink_spec *spec, int *err);
void  sink_close(sink *s);

/* The spec's canonical name (owned by the sink). */
const char *sink_name(const sink *s);

/* Deliver n items; res[i] gets item i's outcome.  Returns the number
 * delivered (SINK_OK), or -EINVAL for bad arguments. */
int sink_send(sink *s, const spool_delivery *items, size_t n, sink_result *res);

/* The bytes sent for one item: the verdict JSON, "redelivery": true first
 * when d->redelivery, line breaks as spaces.  *out is nj_malloc'd (NUL
 * terminated, length in *len).  0, -ENOMEM, or NJ_EFORMAT when the verdict
 * is not a JSON object. */
int sink_payload(const spool_delivery *d, char **out, size_t *len);

#endif
