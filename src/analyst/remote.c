/*
 * remote — see remote.h.  One curl easy handle per remote; every request
 * goes through attempt(), which classifies the outcome as done, transient
 * (retry after a backoff) or permanent.
 */
#include "remote.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "util.h"

#define RESP_MAX (16u << 20)

struct remote {
    remote_kind kind;
    char        name[600];      /* the spec without credentials */
    char        base[1100];     /* URL prefix requests are appended to, no trailing '/' */
    char        unix_path[256]; /* "" unless a Unix socket */
    char        model[256];     /* from the server, "" until asked */
    bool        model_asked;
    bool        no_logprobs;
    remote_opts o;
    char       *auth;           /* "Authorization: Bearer ..." or NULL */
    CURL       *curl;
    struct curl_slist *headers;
    char        errbuf[CURL_ERROR_SIZE];
    char       *resp;
    size_t      resp_len, resp_cap;
    bool        resp_over;
    uint64_t    rng;
    remote_stats st;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_curl_rc;
static void init_once(void) { g_curl_rc = (int)curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    remote *r = ud;
    size_t n = size * nmemb;
    if (r->resp_over || r->resp_len + n + 1 > RESP_MAX) {
        r->resp_over = true;
        return n;   /* keep reading; the answer is refused afterwards */
    }
    if (r->resp_len + n + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap : 4096;
        while (cap < r->resp_len + n + 1) cap *= 2;
        char *nb = nj_realloc(r->resp, cap);
        if (!nb) {
            r->resp_over = true;
            return n;
        }
        r->resp = nb;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, p, n);
    r->resp_len += n;
    r->resp[r->resp_len] = 0;
    return n;
}

static const char spec_forms[] =
    "expected nightjar+http://HOST:PORT, nightjar+https://..., nightjar+unix:/PATH (another nightjar's "
    "/v1/analyze) or openai+http://HOST:PORT[/v1], openai+https://..., openai+unix:/PATH (an "
    "OpenAI-compatible /v1/chat/completions)";

/* Fill kind, name, base, unix_path from the spec. */
static int parse_spec(remote *r, const char *spec) {
    const char *plus = strchr(spec, '+');
    if (!plus) return nj_fail(-EINVAL, "backend '%s': no mode; %s", spec, spec_forms);
    size_t kl = (size_t)(plus - spec);
    if (kl == 8 && !strncmp(spec, "nightjar", 8)) r->kind = REMOTE_NIGHTJAR;
    else if (kl == 6 && !strncmp(spec, "openai", 6)) r->kind = REMOTE_OPENAI;
    else return nj_fail(-EINVAL, "backend '%s': unknown mode '%.*s'; %s", spec, (int)kl, spec, spec_forms);
    const char *u = plus + 1;
    if (!strncmp(u, "unix:", 5)) {
        const char *p = u + 5;
        while (p[0] == '/' && p[1] == '/') p++;   /* unix:///run/x.sock */
        if (p[0] != '/' || strlen(p) >= sizeof r->unix_path)
            return nj_fail(-EINVAL, "backend '%s': the socket must be an absolute path shorter than %zu bytes",
                           spec, sizeof r->unix_path);
        snprintf(r->unix_path, sizeof r->unix_path, "%s", p);
        snprintf(r->base, sizeof r->base, "http://localhost");
        snprintf(r->name, sizeof r->name, "%s", spec);
        return 0;
    }
    size_t sl = !strncmp(u, "http://", 7) ? 7 : !strncmp(u, "https://", 8) ? 8 : 0;
    if (!sl || !u[sl] || u[sl] == '/') return nj_fail(-EINVAL, "backend '%s': %s", spec, spec_forms);
    if (strlen(u) >= sizeof r->base - 32) return nj_fail(-EINVAL, "backend '%s': URL too long", spec);
    if (strpbrk(u, " \t\r\n")) return nj_fail(-EINVAL, "backend '%s': whitespace in the URL", spec);
    snprintf(r->base, sizeof r->base, "%s", u);
    size_t n = strlen(r->base);
    while (n > sl && r->base[n - 1] == '/') r->base[--n] = 0;
    /* openai clients are configured with ".../v1"; requests add it again */
    if (r->kind == REMOTE_OPENAI && n >= 3 && !strcmp(r->base + n - 3, "/v1")) r->base[n -= 3] = 0;
    /* name: MODE+ and the base URL without user:password@ */
    const char *host = r->base + sl, *slash = strchr(host, '/'), *at = strchr(host, '@');
    if (at && (!slash || at < slash)) host = at + 1;
    snprintf(r->name, sizeof r->name, "%.*s%.*s%s", (int)(plus - spec + 1), spec, (int)sl, r->base, host);
    return 0;
}

remote *remote_new(const remote_opts *o, int *err) {
    int rc = 0;
    remote *r = NULL;
    pthread_once(&g_once, init_once);
    if (g_curl_rc != 0) { rc = nj_fail(NJ_ENET, "libcurl could not be initialised"); goto fail; }
    if (!o || !o->spec) { rc = nj_fail(-EINVAL, "no backend given"); goto fail; }
    if (!(r = nj_calloc(1, sizeof *r))) { rc = -ENOMEM; goto fail; }
    event_init();   /* jansson through the counting allocator */
    r->o = *o;
    r->o.spec = r->o.token = r->o.model = NULL;
    if (r->o.timeout_ms <= 0) r->o.timeout_ms = 120000;
    if (r->o.connect_ms <= 0) r->o.connect_ms = 5000;
    if (r->o.retries == 0) r->o.retries = 3;
    if (r->o.retries < 0) r->o.retries = 0;
    if (r->o.backoff_ms <= 0) r->o.backoff_ms = 500;
    if ((rc = parse_spec(r, o->spec))) goto fail;
    if (o->model) snprintf(r->model, sizeof r->model, "%s", o->model);
    r->model_asked = o->model != NULL;
    r->rng = nj_now_ns() | 1;
    if (!(r->curl = curl_easy_init())) { rc = nj_fail(-ENOMEM, "curl_easy_init failed"); goto fail; }
    if (o->token && *o->token) {
        size_t n = strlen(o->token) + 32;
        if (!(r->auth = nj_malloc(n))) { rc = -ENOMEM; goto fail; }
        snprintf(r->auth, n, "Authorization: Bearer %s", o->token);
    }
    /* "Expect:" turns off curl's 100-continue round trip for large bodies */
    const char *hdrs[] = {"Content-Type: application/json", "Expect:", r->auth};
    for (size_t i = 0; i < NJ_ARRAY_LEN(hdrs) && hdrs[i]; i++) {
        struct curl_slist *h = curl_slist_append(r->headers, hdrs[i]);
        if (!h) { rc = -ENOMEM; goto fail; }
        r->headers = h;
    }
    CURL *c = r->curl;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->o.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->o.connect_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (r->unix_path[0]) curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, r->unix_path);
    if (err) *err = 0;
    return r;
fail:
    remote_free(r);
    if (err) *err = rc ? rc : -ENOMEM;
    return NULL;
}

void remote_free(remote *r) {
    if (!r) return;
    if (r->curl) curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    nj_free(r->auth);
    nj_free(r->resp);
    nj_free(r);
}

remote_kind remote_get_kind(const remote *r) { return r->kind; }
const char *remote_name(const remote *r) { return r->name; }
bool remote_want_logprobs(const remote *r) { return r->kind == REMOTE_OPENAI && !r->no_logprobs; }
void remote_no_logprobs(remote *r) { r->no_logprobs = true; }
void remote_get_stats(const remote *r, remote_stats *out) { *out = r->st; }

enum { A_DONE, A_RETRY, A_FAIL };

/* One request: a GET when body is NULL.  Returns A_DONE (a 2xx answer in
 * r->resp), A_RETRY or A_FAIL with a sentence in why. */
static int attempt(remote *r, const char *path, const char *body, size_t len, long *status, char *why, size_t cap) {
    char url[1200];
    snprintf(url, sizeof url, "%s%s", r->base, path);
    CURL *c = r->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    r->resp_len = 0;
    r->resp_over = false;
    if (r->resp) r->resp[0] = 0;
    r->errbuf[0] = 0;
    r->st.attempts++;
    CURLcode cc = curl_easy_perform(c);
    *status = 0;
    if (cc != CURLE_OK) {
        snprintf(why, cap, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
        /* the server may come back (refused, reset, timeout, DNS hiccup);
         * a malformed URL or an unsupported protocol will not */
        return cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ? A_FAIL : A_RETRY;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300) {
        if (r->resp_over) {
            snprintf(why, cap, "the answer is larger than %u bytes", RESP_MAX);
            return A_FAIL;
        }
        return A_DONE;
    }
    /* the server's own error sentence when it sent one */
    char msg[300] = "";
    json_error_t je;
    json_t *doc = r->resp ? event_json_parse(r->resp, r->resp_len, 0, &je, NULL) : NULL;
    json_t *m = json_object_get(json_object_get(doc, "error"), "message");
    if (json_is_string(m)) snprintf(msg, sizeof msg, "%s", json_string_value(m));
    else if (json_is_string(json_object_get(doc, "error"))) snprintf(msg, sizeof msg, "%s", json_string_value(json_object_get(doc, "error")));
    else if (r->resp) snprintf(msg, sizeof msg, "%.200s", r->resp);
    json_decref(doc);
    for (char *p = msg; *p; p++) if (*p == '\n' || *p == '\r') *p = ' ';
    snprintf(why, cap, "HTTP %ld%s%s", *status, msg[0] ? ": " : "", msg);
    return *status == 408 || *status == 429 || *status >= 500 ? A_RETRY : A_FAIL;
}

/* Sleep d/2..d ms after the n-th failed attempt (d = base * 2^(n-1), at
 * most 8 s).  A signal cuts the sleep short (then no more attempts). */
static bool backoff(remote *r, int n) {
    long d = r->o.backoff_ms;
    for (int i = 1; i < n && d < 8000; i++) d *= 2;
    if (d > 8000) d = 8000;
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    long ms = d / 2 + (long)(r->rng % (uint64_t)(d / 2 + 1));
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    return nanosleep(&ts, NULL) == 0;
}

static int call(remote *r, const char *path, const char *body, size_t len, json_t **out, long *status) {
    *out = NULL;
    long st = 0;
    char why[400] = "";
    r->st.requests++;
    for (int n = 0;; n++) {
        int a = attempt(r, path, body, len, &st, why, sizeof why);
        if (status) *status = st;
        if (a == A_DONE) break;
        if (a == A_FAIL) {
            r->st.failed++;
            return nj_fail(st ? -EINVAL : NJ_ENET, "backend %s%s: %s", r->name, path, why);
        }
        if (n >= r->o.retries || !backoff(r, n + 1)) {
            r->st.failed++;
            return nj_fail(NJ_ENET, "backend %s%s unavailable after %d attempt%s: %s", r->name, path, n + 1,
                           n ? "s" : "", why);
        }
        r->st.retried++;
        NJ_DEBUG("backend %s%s: %s; retrying", r->name, path, why);
    }
    json_error_t je;
    int err = 0;
    *out = event_json_load(r->resp ? r->resp : "", r->resp_len, 0, &je, &err);
    if (!*out) {
        if (err == -ENOMEM) return -ENOMEM;
        return nj_fail(NJ_EFORMAT, "backend %s%s: the answer is not JSON: %s", r->name, path, je.text);
    }
    return 0;
}

int remote_post(remote *r, const char *path, const char *body, size_t len, json_t **out, long *status) {
    return call(r, path, body, len, out, status);
}

const char *remote_model(remote *r) {
    if (!r->model_asked) {
        r->model_asked = true;
        json_t *doc = NULL;
        long st = 0;
        if (call(r, "/v1/models", NULL, 0, &doc, &st) == 0) {
            const char *id = json_string_value(json_object_get(json_array_get(json_object_get(doc, "data"), 0), "id"));
            if (id) snprintf(r->model, sizeof r->model, "%s", id);
        } else {
            r->model_asked = false;   /* ask again next time */
        }
        json_decref(doc);
    }
    return r->model;
}
