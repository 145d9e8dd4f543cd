/*
 * sink_webhook — verdicts POSTed over HTTP(S) with libcurl.
 *
 * Presets (what one request carries):
 *   plain    one request per verdict; the body is the payload (sink.h),
 *            Content-Type application/json; token= is sent as
 *            "Authorization: Bearer TOKEN".
 *   splunk   HTTP Event Collector (URL .../services/collector/event): one
 *            request per batch, the body the HEC events concatenated,
 *              {"time":1733570553.123,"sourcetype":"nightjar:verdict","event":PAYLOAD}
 *            (time = judged_at in epoch seconds), with
 *            "Authorization: Splunk TOKEN".  HEC accepts or refuses a
 *            request as a whole; indexer acknowledgement is not used, so a
 *            200 counts as delivered.
 *   elastic  the _bulk API (URL .../INDEX/_bulk): one request per batch,
 *            NDJSON of {"create":{"_id":ID}} + PAYLOAD line pairs,
 *            Content-Type application/x-ndjson, token= sent as
 *            "Authorization: ApiKey TOKEN".  ID is the hex SHA-256 of
 *            source NUL event_id, so a redelivered verdict is refused with
 *            409 (already indexed), which counts as delivered: Elastic
 *            ends up with each verdict once.  Per-item outcomes come from
 *            the response's items[] (webhook_parse_bulk).  _bulk was chosen
 *            over one document per request for throughput and because it
 *            reports each item on its own.
 *
 * Outcomes.  2xx: delivered.  408, 429, 500, 502, 503: refused, retried
 * after the spool's backoff.  504 and transfer errors after the request
 * started going out (timeout, reset): unknown, retried flagged as a
 * redelivery.  401, 403, 404: retried too, because they are fixed by the
 * operator (token, URL) and nothing should be lost meanwhile.  Other 4xx
 * and 3xx (redirects are not followed): permanent.  For splunk and elastic
 * a 400 or 413 on a batch of several is retried one item per request, so
 * one bad verdict does not hold back the others.  Connection failures
 * before anything was sent: refused; the rest of the batch is left for the
 * next round.
 *
 * One easy handle per sink (keep-alive across batches); timeouts: the
 * request as a whole timeout_ms (default 10 s), connecting at most 5 s.
 * Only http and https are allowed, also for redirects (none followed).
 *
 * Threads: one thread at a time (sink.h); curl_global_init runs once.
 */
#include "sink_impl.h"
#include "event.h"
#include "sha256.h"
#include "util.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define RESP_MAX (1u << 20)

typedef struct webhook {
    sink base;
    CURL *curl;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    sbuf resp;
} webhook;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    event_init();   /* the process's one jansson allocator */
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    webhook *w = ud;
    size_t n = size * nmemb;
    if (w->resp.len + n <= RESP_MAX) sbuf_add(&w->resp, p, n);
    return n;
}

/* One POST.  Returns the HTTP status (> 0), or the negated curl code with
 * *sent telling whether any of the request went out. */
static long post(webhook *w, const char *body, size_t len, bool *sent) {
    CURL *c = w->curl;
    w->resp.len = 0;
    if (w->resp.p) w->resp.p[0] = 0;
    w->errbuf[0] = 0;
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode rc = curl_easy_perform(c);
    curl_off_t up = 0;
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
    long req = 0;
    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &req);
    /* Once the connection was up and the transfer began, the server may
     * have the request even if curl cannot tell how much went out. */
    curl_off_t pre = 0;
    curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pre);
    *sent = up > 0 || req > 0 || pre > 0;
    if (rc != CURLE_OK) return -(long)rc;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static sink_status classify(long status) {
    if (status >= 200 && status < 300) return SINK_OK;
    if (status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
        status == 401 || status == 403 || status == 404)
        return SINK_RETRY;
    if (status == 504) return SINK_MAYBE;
    if (status >= 500) return SINK_RETRY;
    return SINK_PERMANENT;
}

/* Set res from a post() result; returns true if the connection itself
 * failed (stop sending the rest of the batch). */
static bool set_result(webhook *w, long r, bool sent, sink_result *res) {
    if (r < 0) {
        sink_set(res, sent ? SINK_MAYBE : SINK_RETRY, "%s: %s", w->base.spec.name,
                 w->errbuf[0] ? w->errbuf : curl_easy_strerror((CURLcode)-r));
        return true;
    }
    sink_status st = classify(r);
    if (st == SINK_OK) { res->status = SINK_OK; res->error[0] = 0; return false; }
    char snippet[96] = "";
    if (w->resp.p) snprintf(snippet, sizeof snippet, "%s", w->resp.p);
    for (char *p = snippet; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    sink_set(res, st, "HTTP %ld from %s%s%s", r, w->base.spec.name, snippet[0] ? ": " : "", snippet);
    return false;
}

/* Build the body of a batch (splunk, elastic) or of one item (plain). */
static int build_body(webhook *w, const spool_delivery *items, size_t n, sbuf *b, sink_result *res,
                      bool *included) {
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        included[i] = false;
        char *payload = NULL;
        size_t plen = 0;
        int rc = sink_payload(&items[i], &payload, &plen);
        if (rc == NJ_EFORMAT) { sink_set(&res[i], SINK_PERMANENT, "%s", nj_last_error()); continue; }
        if (rc) { sink_set(&res[i], SINK_RETRY, "out of memory"); continue; }
        switch (w->base.spec.preset) {
        case SINK_SPLUNK:
            sbuf_fmt(b, "{\"time\":%lld.%03d,\"sourcetype\":\"nightjar:verdict\",\"event\":",
                     (long long)(items[i].judged_at / 1000), (int)(items[i].judged_at % 1000));
            sbuf_add(b, payload, plen);
            sbuf_str(b, "}\n");
            break;
        case SINK_ELASTIC: {
            sha256_ctx h;
            uint8_t dig[32];
            char hex[65];
            const char *src = items[i].source ? items[i].source : "";
            const char *id = items[i].event_id ? items[i].event_id : "";
            sha256_init(&h);
            sha256_update(&h, src, strlen(src) + 1); /* with its NUL */
            sha256_update(&h, id, strlen(id));
            sha256_final(&h, dig);
            sha256_hex(dig, hex);
            sbuf_fmt(b, "{\"create\":{\"_id\":\"%s\"}}\n", hex);
            sbuf_add(b, payload, plen);
            sbuf_str(b, "\n");
            break;
        }
        case SINK_PLAIN:
            sbuf_add(b, payload, plen);
            break;
        }
        nj_free(payload);
        included[i] = true;
        count++;
    }
    return b->oom ? -ENOMEM : count;
}

static bool send_each(webhook *w, const spool_delivery *items, size_t n, sink_result *res);

/* One request for the batch (splunk, elastic).  Returns true when the
 * connection itself failed. */
static bool send_batch(webhook *w, const spool_delivery *items, size_t n, sink_result *res) {
    bool *inc = nj_calloc(n, sizeof *inc);
    sbuf b = {0};
    int count = inc ? build_body(w, items, n, &b, res, inc) : -ENOMEM;
    bool conn_failed = false;
    if (count <= 0) {
        if (count < 0)
            for (size_t i = 0; i < n; i++) sink_set(&res[i], SINK_RETRY, "out of memory");
        goto out;
    }
    bool sent = false;
    long r = post(w, b.p, b.len, &sent);
    if ((r == 400 || r == 413) && count > 1) {
        conn_failed = send_each(w, items, n, res);
        goto out;
    }
    sink_result one;
    conn_failed = set_result(w, r, sent, &one);
    if (one.status == SINK_OK && w->base.spec.preset == SINK_ELASTIC) {
        /* Per-item outcomes, for the items that were in the request. */
        sink_result *per = nj_calloc((size_t)count, sizeof *per);
        if (per) {
            webhook_parse_bulk(w->resp.p ? w->resp.p : "", w->resp.len, (size_t)count, per);
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                if (inc[i]) res[i] = per[k++];
            nj_free(per);
            goto out;
        }
        sink_set(&one, SINK_MAYBE, "out of memory reading the _bulk response");
    }
    for (size_t i = 0; i < n; i++)
        if (inc[i]) res[i] = one;
out:
    sbuf_free(&b);
    nj_free(inc);
    return conn_failed;
}

/* One request per item (plain, and the fallback of the batch presets).
 * Stops at a connection failure, leaving the rest for the next round;
 * returns true then. */
static bool send_each(webhook *w, const spool_delivery *items, size_t n, sink_result *res) {
    for (size_t i = 0; i < n; i++) {
        if (w->base.spec.preset != SINK_PLAIN) {
            if (send_batch(w, &items[i], 1, &res[i])) return true;
            continue;
        }
        bool inc;
        sbuf b = {0};
        int count = build_body(w, &items[i], 1, &b, &res[i], &inc);
        if (count < 0) { sink_set(&res[i], SINK_RETRY, "out of memory"); sbuf_free(&b); return false; }
        if (count == 0) { sbuf_free(&b); continue; }
        bool sent = false;
        long r = post(w, b.p, b.len, &sent);
        sbuf_free(&b);
        if (set_result(w, r, sent, &res[i])) return true;
    }
    return false;
}

static int webhook_send(sink *s, const spool_delivery *items, size_t n, sink_result *res) {
    webhook *w = (webhook *)s;
    if (s->spec.preset == SINK_PLAIN) send_each(w, items, n, res);
    else send_batch(w, items, n, res);
    return 0;
}

void webhook_parse_bulk(const char *body, size_t len, size_t n, sink_result *res) {
    json_error_t jerr;
    json_t *root = event_json_parse(body, len, 0, &jerr, NULL);
    json_t *items = root ? json_object_get(root, "items") : NULL;
    if (!json_is_array(items) || json_array_size(items) != n) {
        for (size_t i = 0; i < n; i++)
            sink_set(&res[i], SINK_MAYBE, "_bulk response %s",
                     root ? "does not list one result per item" : "is not JSON");
        json_decref(root);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        const char *action = NULL;
        json_t *val = NULL;
        json_t *r = NULL;
        if (json_is_object(it) && json_object_size(it) == 1) {
            json_object_foreach(it, action, val) r = val;
        }
        json_t *st = json_is_object(r) ? json_object_get(r, "status") : NULL;
        if (!json_is_integer(st)) {
            sink_set(&res[i], SINK_MAYBE, "_bulk item %zu has no status", i);
            continue;
        }
        json_int_t code = json_integer_value(st);
        if ((code >= 200 && code < 300) || code == 409) {
            res[i].status = SINK_OK;
            res[i].error[0] = 0;
            continue;
        }
        const char *type = "", *reason = "";
        json_t *e = json_object_get(r, "error");
        if (json_is_object(e)) {
            if (json_is_string(json_object_get(e, "type"))) type = json_string_value(json_object_get(e, "type"));
            if (json_is_string(json_object_get(e, "reason"))) reason = json_string_value(json_object_get(e, "reason"));
        }
        sink_set(&res[i], code == 429 || code >= 500 ? SINK_RETRY : SINK_PERMANENT,
                 "_bulk item status %lld %s %.100s", (long long)code, type, reason);
    }
    json_decref(root);
}

static void webhook_close(sink *s) {
    webhook *w = (webhook *)s;
    if (w->curl) curl_easy_cleanup(w->curl);
    curl_slist_free_all(w->headers);
    sbuf_free(&w->resp);
    sink_base_free(s);
}

static const struct sink_ops webhook_ops = {.send = webhook_send, .close = webhook_close};

sink *sink_webhook_open(const sink_spec *spec, int *err) {
    pthread_once(&g_once, init_once);
    webhook *w = nj_calloc(1, sizeof *w);
    int rc;
    if (!w) { rc = nj_fail(-ENOMEM, "webhook sink: out of memory"); goto err; }
    if ((rc = sink_base_init(&w->base, &webhook_ops, spec))) { nj_free(w); w = NULL; goto err; }
    if (!spec->url) { rc = nj_fail(-EINVAL, "webhook sink: no URL"); goto err; }
    if (spec->preset == SINK_SPLUNK && !spec->token) {
        rc = nj_fail(-EINVAL, "webhook sink: the splunk preset needs a token");
        goto err;
    }
    w->curl = curl_easy_init();
    if (!w->curl) { rc = nj_fail(-ENOMEM, "webhook sink: curl_easy_init failed"); goto err; }
    char line[4200];
    const char *ctype = spec->preset == SINK_ELASTIC ? "application/x-ndjson" : "application/json";
    snprintf(line, sizeof line, "Content-Type: %s", ctype);
    struct curl_slist *h = curl_slist_append(NULL, line);
    bool oom = !h;
    if (!oom && !curl_slist_append(h, "Expect:")) oom = true; /* no 100-continue wait */
    if (!oom && spec->token) {
        const char *scheme = spec->preset == SINK_SPLUNK ? "Splunk"
                             : spec->preset == SINK_ELASTIC ? "ApiKey" : "Bearer";
        snprintf(line, sizeof line, "Authorization: %s %s", scheme, spec->token);
        if (!curl_slist_append(h, line)) oom = true;
    }
    w->headers = h;
    if (oom) { rc = nj_fail(-ENOMEM, "webhook sink: out of memory"); goto err; }
    CURL *c = w->curl;
    int timeout = spec->timeout_ms > 0 ? spec->timeout_ms : 10000;
    curl_easy_setopt(c, CURLOPT_URL, spec->url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, w->errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)NJ_MIN(timeout, 5000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "nightjar");
    return &w->base;
err:
    if (err) *err = rc;
    if (w) webhook_close(&w->base);
    return NULL;
}
