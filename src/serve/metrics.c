/*
 * metrics — see metrics.h.  The text is built in a growable buffer after a
 * snapshot is copied under the lock, so the lock is never held while
 * formatting or allocating.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_SERIES 96   /* (endpoint, code) pairs; routes x codes stays far below */

typedef struct req_series { const char *endpoint; int code; unsigned long long n; } req_series;

struct nj_metrics {
    pthread_mutex_t mu;
    double counters[NJ_M_NCOUNTERS];
    double gauges[NJ_M_NGAUGES];
    req_series req[MAX_SERIES];
    int n_req;
    unsigned long long req_dropped;   /* series beyond MAX_SERIES */
};

static const struct { const char *name, *help; bool integer; } counter_info[NJ_M_NCOUNTERS] = {
    [NJ_M_PROMPT_TOKENS]    = {"nightjar_prompt_tokens_total", "Prompt tokens evaluated (cache hits excluded).", true},
    [NJ_M_PROMPT_SECONDS]   = {"nightjar_prompt_seconds_total", "Seconds spent evaluating prompts.", false},
    [NJ_M_GEN_TOKENS]       = {"nightjar_generated_tokens_total", "Tokens generated.", true},
    [NJ_M_GEN_SECONDS]      = {"nightjar_generation_seconds_total", "Seconds spent generating tokens.", false},
    [NJ_M_CACHE_HITS]       = {"nightjar_prompt_cache_hits_total", "Requests that reused a cached prompt prefix.", true},
    [NJ_M_CACHE_HIT_TOKENS] = {"nightjar_prompt_cache_hit_tokens_total", "Prompt tokens reused from the KV cache.", true},
    [NJ_M_PREFIX_READS] = {"nightjar_prefix_cache_reads_total", "Prefix cache files read back after a load.", true},
    [NJ_M_PREFIX_WRITES] = {"nightjar_prefix_cache_writes_total", "Prefix cache files written.", true},
    [NJ_M_PREFIX_REJECTS] = {"nightjar_prefix_cache_rejects_total", "Prefix cache files found but not used (stale or corrupt).", true},
    [NJ_M_MODEL_LOADS]      = {"nightjar_model_loads_total", "Model loads (start and reloads after an idle unload).", true},
    [NJ_M_MODEL_UNLOADS]    = {"nightjar_model_unloads_total", "Model unloads after the idle timeout.", true},
    [NJ_M_VERDICTS_RULE]    = {"nightjar_verdicts_rule_total", "Verdicts decided by a Sigma rule.", true},
    [NJ_M_VERDICTS_MODEL]   = {"nightjar_verdicts_model_total", "Verdicts decided by the model.", true},
    [NJ_M_VERDICTS_CACHE]   = {"nightjar_verdicts_cache_total", "Verdicts taken from the verdict cache.", true},
    [NJ_M_VCACHE_LOOKUPS]   = {"nightjar_verdict_cache_lookups_total",
                               "Verdict-cache lookups; hit rate = nightjar_verdicts_cache_total / this.", true},
    [NJ_M_PREEMPTIONS]      = {"nightjar_preemptions_total",
                               "Steps of a more urgent request run while another was mid-way (it kept its KV cache).", true},
    [NJ_M_CANCELLED]        = {"nightjar_cancelled_total", "Admitted requests dropped because the client went away.", true},
    [NJ_M_DEADLINES_MISSED] = {"nightjar_deadlines_missed_total", "Requests finished after their deadline.", true},
    [NJ_M_BATCHED_STEPS]    = {"nightjar_batched_steps_total", "Decode steps that advanced several sequences in one pass.", true},
    [NJ_M_BATCHED_TOKENS]   = {"nightjar_batched_tokens_total", "Tokens decoded in batched steps.", true},
};

static const struct { const char *name, *help; const char *label; bool integer; } gauge_info[NJ_M_NGAUGES] = {
    [NJ_M_QUEUE_CRITICAL]    = {"nightjar_queue_depth", "Requests waiting in the queue, by priority.", "priority=\"critical\"", true},
    [NJ_M_QUEUE_HIGH]        = {"nightjar_queue_depth", NULL, "priority=\"high\"", true},
    [NJ_M_QUEUE_NORMAL]      = {"nightjar_queue_depth", NULL, "priority=\"normal\"", true},
    [NJ_M_QUEUE_BULK]        = {"nightjar_queue_depth", NULL, "priority=\"bulk\"", true},
    [NJ_M_BUSY]              = {"nightjar_engine_busy", "1 while the engine is running a request.", NULL, true},
    [NJ_M_SLOTS_BUSY]        = {"nightjar_slots_busy", "Requests admitted into slots (sessions).", NULL, true},
    [NJ_M_MODEL_LOADED]      = {"nightjar_model_loaded", "1 if the model is loaded, 0 if unloaded.", NULL, true},
    [NJ_M_LAST_LOAD_SECONDS] = {"nightjar_model_last_load_seconds", "Duration of the last model (re)load.", NULL, false},
    [NJ_M_RSS_BYTES]         = {"nightjar_resident_memory_bytes", "Resident set size of the process.", NULL, true},
    [NJ_M_CTX_SIZE]          = {"nightjar_context_size_tokens", "Context size of the loaded session.", NULL, true},
};

nj_metrics *metrics_new(int *err) {
    nj_metrics *m = nj_calloc(1, sizeof *m);
    if (!m) {
        if (err) *err = -ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    if (err) *err = 0;
    return m;
}

void metrics_free(nj_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    nj_free(m);
}

void metrics_add(nj_metrics *m, int c, double v) {
    if (c < 0 || c >= NJ_M_NCOUNTERS) return;
    pthread_mutex_lock(&m->mu);
    m->counters[c] += v;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set(nj_metrics *m, int g, double v) {
    if (g < 0 || g >= NJ_M_NGAUGES) return;
    pthread_mutex_lock(&m->mu);
    m->gauges[g] = v;
    pthread_mutex_unlock(&m->mu);
}

double metrics_get(nj_metrics *m, int which, int is_gauge) {
    double v = 0;
    pthread_mutex_lock(&m->mu);
    if (is_gauge && which >= 0 && which < NJ_M_NGAUGES) v = m->gauges[which];
    else if (!is_gauge && which >= 0 && which < NJ_M_NCOUNTERS) v = m->counters[which];
    pthread_mutex_unlock(&m->mu);
    return v;
}

void metrics_request(nj_metrics *m, const char *endpoint, int code) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    for (; i < m->n_req; i++)
        if (m->req[i].code == code && !strcmp(m->req[i].endpoint, endpoint)) break;
    if (i == m->n_req) {
        if (m->n_req == MAX_SERIES) {
            m->req_dropped++;
            pthread_mutex_unlock(&m->mu);
            return;
        }
        m->req[i] = (req_series){endpoint, code, 0};
        m->n_req++;
    }
    m->req[i].n++;
    pthread_mutex_unlock(&m->mu);
}

/* Growable text buffer; on allocation failure `ok` turns false and later
 * appends are ignored. */
typedef struct tbuf { char *p; size_t len, cap; bool ok; } tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void tb_printf(tbuf *b, const char *fmt, ...) {
    if (!b->ok) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->ok = false; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t ncap = b->cap * 2 + (size_t)n;
        char *q = nj_realloc(b->p, ncap);
        if (!q) { b->ok = false; return; }
        b->p = q;
        b->cap = ncap;
    }
}

static void tb_value(tbuf *b, double v, bool integer) {
    if (integer) tb_printf(b, "%.0f\n", v);
    else tb_printf(b, "%.6f\n", v);
}

char *metrics_render(nj_metrics *m, size_t *len) {
    nj_metrics s;   /* snapshot (the mutex in it is never used) */
    pthread_mutex_lock(&m->mu);
    memcpy(s.counters, m->counters, sizeof s.counters);
    memcpy(s.gauges, m->gauges, sizeof s.gauges);
    memcpy(s.req, m->req, sizeof s.req);
    s.n_req = m->n_req;
    s.req_dropped = m->req_dropped;
    pthread_mutex_unlock(&m->mu);

    tbuf b = {nj_malloc(4096), 0, 4096, true};
    if (!b.p) return NULL;
    tb_printf(&b, "# HELP nightjar_requests_total HTTP responses by endpoint and status code.\n"
                  "# TYPE nightjar_requests_total counter\n");
    for (int i = 0; i < s.n_req; i++)
        tb_printf(&b, "nightjar_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
                  s.req[i].endpoint, s.req[i].code, s.req[i].n);
    if (s.req_dropped)
        tb_printf(&b, "nightjar_requests_total{endpoint=\"overflow\",code=\"0\"} %llu\n", s.req_dropped);
    for (int c = 0; c < NJ_M_NCOUNTERS; c++) {
        tb_printf(&b, "# HELP %s %s\n# TYPE %s counter\n%s ", counter_info[c].name, counter_info[c].help,
                  counter_info[c].name, counter_info[c].name);
        tb_value(&b, s.counters[c], counter_info[c].integer);
    }
    for (int g = 0; g < NJ_M_NGAUGES; g++) {
        if (gauge_info[g].help)
            tb_printf(&b, "# HELP %s %s\n# TYPE %s gauge\n", gauge_info[g].name, gauge_info[g].help,
                      gauge_info[g].name);
        if (gauge_info[g].label) tb_printf(&b, "%s{%s} ", gauge_info[g].name, gauge_info[g].label);
        else tb_printf(&b, "%s ", gauge_info[g].name);
        tb_value(&b, s.gauges[g], gauge_info[g].integer);
    }
    if (!b.ok) {
        nj_free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
