/*
 * oai — the OpenAI-compatible wire format: request bodies in, JSON out.
 *
 * Design.  Pure functions, no I/O, no model: oai_parse() turns an untrusted
 * request body into a validated oai_request (or a sentence saying what is
 * wrong), and the oai_*_json() builders turn results into response bodies and
 * server-sent-event chunks.  Keeping this apart from the HTTP and engine code
 * makes it unit-testable and fuzzable on its own (fuzz/fuzz_oai.c).
 *
 * All JSON goes through jansson; nothing here scans JSON by hand.  Text from
 * the model may be cut in the middle of a UTF-8 sequence; the builders replace
 * invalid bytes by U+FFFD so the output is always valid JSON (and
 * nj_utf8_complete() in util tells the streamer how much of a buffer can be
 * sent without splitting a character).
 *
 * Ownership.  oai_request owns the parsed JSON document; message and prompt
 * strings are borrowed from it (or owned copies when content parts had to be
 * joined) and live until oai_request_free().  Builders return nj_malloc'd
 * NUL-terminated text (free with nj_free) or NULL on out-of-memory.
 *
 * Threads: no shared state except oai_init(), which installs the counting
 * allocator into jansson once (idempotent, thread-safe).
 */
#ifndef NJ_OAI_H
#define NJ_OAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nightjar.h"

enum oai_kind { OAI_CHAT = 0, OAI_COMPLETION = 1 };
/* Request classes, most urgent first ("low" is accepted as bulk). */
enum oai_priority { OAI_PRIO_CRITICAL = 0, OAI_PRIO_HIGH = 1, OAI_PRIO_NORMAL = 2, OAI_PRIO_BULK = 3, OAI_NPRIO = 4 };
#define OAI_MAX_DEADLINE_MS 86400000ll

#define OAI_MAX_STOP     8
#define OAI_MAX_STOP_LEN 256
#define OAI_MAX_MESSAGES 4096

typedef struct oai_request {
    int          kind;            /* enum oai_kind */
    void        *root;            /* json_t * of the body (owned) */
    nj_chat_msg *msgs;            /* chat: n_msgs messages */
    int          n_msgs;
    const char  *prompt;          /* completion: the prompt text */
    size_t       prompt_len;
    const char  *model;           /* as sent, may be NULL */
    int          max_tokens;      /* -1: not given */
    bool         stream;
    bool         include_usage;   /* stream_options.include_usage */
    int          priority;        /* enum oai_priority */
    bool         has_priority;    /* 'priority' was given (else a header may set it) */
    long long    deadline_ms;     /* 'deadline_ms', 1..OAI_MAX_DEADLINE_MS; 0: none */

    /* sampling: has_* says whether the field was given */
    bool  has_temperature, has_top_p, has_top_k, has_min_p, has_repeat_penalty, has_seed;
    float temperature, top_p, min_p, repeat_penalty;
    int   top_k;
    uint64_t seed;

    const char *schema;           /* response_format json_schema: the schema as JSON text, or NULL */
    bool        json_object;      /* response_format json_object */
    const char *stop[OAI_MAX_STOP];
    size_t      stop_len[OAI_MAX_STOP];
    int         n_stop;

    char      **owned;            /* strings built while parsing */
    int         n_owned;
} oai_request;

/* Install nj_malloc/nj_free as jansson's allocator (once). */
void oai_init(void);

/* Parse and validate a request body of the given kind.  Returns 0, or
 * NJ_EFORMAT (not JSON / not an object), -EINVAL (a field is wrong) or
 * -ENOMEM, with a sentence for the client in msg.  On failure *out is left
 * freed (oai_request_free is still safe to call). */
int  oai_parse(int kind, const char *body, size_t len, oai_request *out, char *msg, size_t cap);
void oai_request_free(oai_request *r);

const char *oai_priority_name(int p);
/* The class named (case-insensitive: critical, high, normal, bulk, low),
 * or -1. */
int         oai_priority_parse(const char *name);


/* Identity of one completion, shared by all its chunks. */
typedef struct oai_ident {
    char        id[48];           /* "chatcmpl-..." / "cmpl-..." */
    long long   created;          /* unix seconds */
    const char *model;            /* model id reported back */
} oai_ident;

typedef struct oai_usage { int prompt_tokens, completion_tokens, cached_tokens; } oai_usage;

/* Whole (non-streaming) response body. */
char *oai_response_json(int kind, const oai_ident *id, const char *text, size_t len,
                        const char *finish_reason, const oai_usage *u, size_t *outlen);

/* One SSE event "data: {...}\n\n".  Chat: role_first adds the assistant
 * role to the delta (first chunk); finish_reason NULL for middle chunks.
 * usage non-NULL makes the usage chunk (empty choices). */
char *oai_chunk_sse(int kind, const oai_ident *id, const char *text, size_t len, bool role_first,
                    const char *finish_reason, const oai_usage *usage, size_t *outlen);

/* {"error":{"message":...,"type":...,"code":status}} plus optional integer
 * fields (name/value pairs, n_extra of them) inside the error object. */
char *oai_error_json(int status, const char *type, const char *message,
                     const char *const *extra_names, const long long *extra_values, int n_extra,
                     size_t *outlen);

/* GET /v1/models body for one model. */
char *oai_models_json(const char *model_id, long long created, size_t *outlen);

#endif
