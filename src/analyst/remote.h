/*
 * remote — the analyst's model stage on another server.
 *
 * Purpose.  A laptop whose own model is too small or too slow can send the
 * events its rules leave open to a stronger machine: another nightjar, or
 * any OpenAI-compatible server (llama-server, vLLM).  Rules, the verdict
 * cache and the prompt stay on the laptop (analyst.c); this module only
 * carries requests and answers, with timeouts, retries and backoff.
 *
 * Backends, named by an explicit scheme (never guessed from the URL):
 *   nightjar+http://HOST:PORT, nightjar+https://..., nightjar+unix:/PATH
 *       another nightjar's POST /v1/analyze: canonical events in one batch,
 *       verdicts back in the same order.  The remote runs its own analyst
 *       (rules, cache, model).
 *   openai+http://HOST:PORT[/v1], openai+https://..., openai+unix:/PATH
 *       POST /v1/chat/completions with the analyst's own messages (system
 *       prompt, examples, fenced event) and response_format json_schema =
 *       the analyst's verdict schema, temperature 0.  Log-probabilities of
 *       the label are asked for and used when the server gives them.
 *
 * Failure model.  remote_call retries what may succeed later (a connection
 * that could not be made, a timeout, HTTP 408, 429, 5xx) up to `retries`
 * times, sleeping an exponential, jittered backoff between attempts; then
 * it returns NJ_ENET.  Anything else (HTTP 4xx but 408/429, a body that is
 * not JSON) is returned at once as NJ_EFORMAT or -EINVAL: retrying the same
 * request would fail the same way.  Callers keep the events (the agent's
 * spool) until a verdict is stored, so NJ_ENET never loses one.
 *
 * Ownership and threads.  A remote owns one curl easy handle (keep-alive
 * across calls) and its response buffer; one thread at a time uses it (the
 * analyst's rule).  curl_global_init runs once.
 */
#ifndef NJ_REMOTE_H
#define NJ_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef enum remote_kind { REMOTE_NIGHTJAR = 0, REMOTE_OPENAI = 1 } remote_kind;

typedef struct remote_opts {
    const char *spec;          /* "nightjar+http://..." or "openai+http://..." (see above) */
    const char *token;         /* sent as "Authorization: Bearer TOKEN"; NULL: none */
    const char *model;         /* openai: the request's "model"; NULL: the server's first /v1/models id */
    int         timeout_ms;    /* per request; 0: 120000 */
    int         connect_ms;    /* 0: 5000 */
    int         retries;       /* extra attempts after a transient failure; < 0: 0; 0: 3 */
    int         backoff_ms;    /* first backoff; 0: 500 (doubles, capped at 8 s, jittered) */
} remote_opts;

typedef struct remote remote;

/* Parses the spec (a bad one is -EINVAL naming the accepted forms).  Makes
 * no connection.  NULL with *err. */
remote *remote_new(const remote_opts *o, int *err);
void    remote_free(remote *r);

remote_kind remote_get_kind(const remote *r);
/* The backend as the user wrote it, without credentials ("nightjar+http://h:8080"). */
const char *remote_name(const remote *r);
/* The model the server reports (GET /v1/models, asked once on first use);
 * "" until known.  */
const char *remote_model(remote *r);
/* openai: whether to ask for log-probabilities (turned off for good after
 * a server refused them). */
bool remote_want_logprobs(const remote *r);
void remote_no_logprobs(remote *r);

/* POST body (JSON text) to PATH under the backend ("/v1/analyze"), parse
 * the JSON answer into *out (new reference).  Retries as described above.
 * 0; NJ_ENET (unavailable after the retries), NJ_EFORMAT (the answer is
 * not JSON), -EINVAL (HTTP 4xx: *status and the sentence say which and
 * why), -ENOMEM.  *status: the last HTTP status, 0 when none. */
int remote_post(remote *r, const char *path, const char *body, size_t len, json_t **out, long *status);

/* Counters since remote_new. */
typedef struct remote_stats {
    unsigned long long requests, attempts, retried, failed;
} remote_stats;
void remote_get_stats(const remote *r, remote_stats *out);

#endif
