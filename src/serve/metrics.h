/*
 * metrics — counters and gauges of the service, rendered as Prometheus text.
 *
 * Design.  A fixed set of named series (enum below) plus one labelled family,
 * requests by endpoint and status code.  Everything sits behind one mutex:
 * updates are a few per request or per generated token, far below any
 * contention that would matter, and a render sees a consistent snapshot.
 * Endpoint labels must be static strings from the server's route table (or
 * "other"), so the label set stays bounded whatever clients send.
 *
 * Threads: any thread may update; metrics_render copies under the lock.
 * Ownership: metrics_new/metrics_free; the rendered text is nj_malloc'd and
 * freed by the caller with nj_free.
 */
#ifndef NJ_METRICS_H
#define NJ_METRICS_H

#include <stddef.h>

typedef struct nj_metrics nj_metrics;

/* Monotonic counters (add only). */
enum nj_metric_counter {
    NJ_M_PROMPT_TOKENS,       /* prompt tokens evaluated (excluding cache hits) */
    NJ_M_PROMPT_SECONDS,      /* wall time spent in prompt evaluation */
    NJ_M_GEN_TOKENS,          /* tokens generated */
    NJ_M_GEN_SECONDS,         /* wall time spent generating */
    NJ_M_CACHE_HITS,          /* requests that reused a cached prompt prefix */
    NJ_M_CACHE_HIT_TOKENS,    /* prompt tokens reused from the KV cache */
    NJ_M_PREFIX_READS,        /* prefix cache files read back into a new session */
    NJ_M_PREFIX_WRITES,       /* prefix cache files written */
    NJ_M_PREFIX_REJECTS,      /* prefix cache files found but not used (stale, corrupt) */
    NJ_M_MODEL_LOADS,         /* model loads (start + reloads after idle) */
    NJ_M_MODEL_UNLOADS,       /* idle unloads */
    NJ_M_VERDICTS_RULE,       /* verdicts decided by a Sigma rule */
    NJ_M_VERDICTS_MODEL,      /* verdicts decided by the model */
    NJ_M_VERDICTS_CACHE,      /* verdicts taken from the verdict cache */
    NJ_M_VCACHE_LOOKUPS,      /* verdict-cache lookups (hit rate = cache / lookups) */
    NJ_M_PREEMPTIONS,         /* a step of another request ran while one was mid-way */
    NJ_M_CANCELLED,           /* admitted requests dropped because the client went away */
    NJ_M_DEADLINES_MISSED,    /* requests finished after their deadline */
    NJ_M_BATCHED_STEPS,       /* decode steps that advanced more than one sequence */
    NJ_M_BATCHED_TOKENS,      /* tokens decoded in those steps */
    NJ_M_NCOUNTERS
};

/* Gauges (set). */
enum nj_metric_gauge {
    NJ_M_QUEUE_CRITICAL, NJ_M_QUEUE_HIGH, NJ_M_QUEUE_NORMAL, NJ_M_QUEUE_BULK,   /* queued, by class */
    NJ_M_BUSY,                /* 1 while the engine runs a request */
    NJ_M_SLOTS_BUSY,          /* requests admitted into slots */
    NJ_M_MODEL_LOADED,        /* 1 loaded, 0 unloaded */
    NJ_M_LAST_LOAD_SECONDS,   /* duration of the last model (re)load */
    NJ_M_RSS_BYTES,           /* resident set, set before each render */
    NJ_M_CTX_SIZE,            /* context of the loaded session */
    NJ_M_NGAUGES
};

nj_metrics *metrics_new(int *err);
void        metrics_free(nj_metrics *m);

void metrics_add(nj_metrics *m, int counter, double v);
void metrics_set(nj_metrics *m, int gauge, double v);
double metrics_get(nj_metrics *m, int which, int is_gauge);   /* for /health and tests */
/* Count one HTTP response.  `endpoint` must outlive the metrics object. */
void metrics_request(nj_metrics *m, const char *endpoint, int code);

/* Prometheus text exposition format 0.0.4.  Returns nj_malloc'd text and
 * its length in *len, or NULL on out-of-memory. */
char *metrics_render(nj_metrics *m, size_t *len);

#endif
