/*
 * oai — see oai.h.  Request validation is strict about the fields we act on
 * (types, ranges) and lenient about fields we ignore (clients send many);
 * features we cannot honour (n > 1, logprobs, tools, non-text content) are
 * refused with a 400 rather than silently ignored.
 */
#include "oai.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "event.h"
#include "util.h"

/* jansson's allocator is the process's one (event.h). */
void oai_init(void) { event_init(); }

const char *oai_priority_name(int p) {
    static const char *n[OAI_NPRIO] = {"critical", "high", "normal", "bulk"};
    return p >= 0 && p < OAI_NPRIO ? n[p] : "?";
}

int oai_priority_parse(const char *name) {
    if (!name) return -1;
    for (int k = 0; k < OAI_NPRIO; k++)
        if (!strcasecmp(name, oai_priority_name(k))) return k;
    return strcasecmp(name, "low") ? -1 : OAI_PRIO_BULK;
}

void oai_request_free(oai_request *r) {
    if (!r) return;
    if (r->root) json_decref((json_t *)r->root);
    for (int i = 0; i < r->n_owned; i++) nj_free(r->owned[i]);
    nj_free(r->owned);
    nj_free(r->msgs);
    memset(r, 0, sizeof *r);
}

static int bad(char *msg, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bad(char *msg, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int keep(oai_request *r, char *s) {
    char **o = nj_realloc(r->owned, (size_t)(r->n_owned + 1) * sizeof *o);
    if (!o) {
        nj_free(s);
        return -ENOMEM;
    }
    r->owned = o;
    r->owned[r->n_owned++] = s;
    return 0;
}

/* A JSON string that must not contain NUL (it goes to C APIs). */
static int get_cstr(json_t *v, const char *what, const char **out, size_t *len, char *msg, size_t cap) {
    if (!json_is_string(v)) return bad(msg, cap, "'%s' must be a string", what);
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (memchr(s, 0, n)) return bad(msg, cap, "'%s' must not contain NUL characters", what);
    *out = s;
    if (len) *len = n;
    return 0;
}

/* Optional number in [lo, hi]. */
static int get_num(json_t *root, const char *key, double lo, double hi, bool *has, double *out,
                   char *msg, size_t cap) {
    json_t *v = json_object_get(root, key);
    *has = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad(msg, cap, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) return bad(msg, cap, "'%s' must be between %g and %g", key, lo, hi);
    *has = true;
    *out = d;
    return 0;
}

/* Optional integer in [lo, hi]. */
static int get_int(json_t *root, const char *key, long long lo, long long hi, bool *has, long long *out,
                   char *msg, size_t cap) {
    json_t *v = json_object_get(root, key);
    *has = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return bad(msg, cap, "'%s' must be an integer", key);
    long long i = json_integer_value(v);
    if (i < lo || i > hi) return bad(msg, cap, "'%s' must be between %lld and %lld", key, lo, hi);
    *has = true;
    *out = i;
    return 0;
}

/* Message content: a string, null, or an array of {"type":"text","text":..}
 * parts joined without separator. */
static int parse_content(oai_request *r, json_t *c, int i, const char **out, char *msg, size_t cap) {
    char what[48];
    snprintf(what, sizeof what, "messages[%d].content", i);
    if (!c || json_is_null(c)) {
        *out = "";
        return 0;
    }
    if (json_is_string(c)) return get_cstr(c, what, out, NULL, msg, cap);
    if (!json_is_array(c)) return bad(msg, cap, "'%s' must be a string or an array of text parts", what);
    size_t total = 0, k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *t = json_object_get(part, "type"), *tx = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(t) || strcmp(json_string_value(t), "text"))
            return bad(msg, cap, "'%s[%zu]': only {\"type\":\"text\",\"text\":...} parts are supported", what, k);
        const char *s;
        size_t n;
        char pw[96];
        snprintf(pw, sizeof pw, "%s[%zu].text", what, k);
        int rc = get_cstr(tx, pw, &s, &n, msg, cap);
        if (rc) return rc;
        total += n;
    }
    char *joined = nj_malloc(total + 1);
    if (!joined) return -ENOMEM;
    size_t o = 0;
    json_array_foreach(c, k, part) {
        json_t *tx = json_object_get(part, "text");
        size_t n = json_string_length(tx);
        memcpy(joined + o, json_string_value(tx), n);
        o += n;
    }
    joined[o] = 0;
    if (keep(r, joined)) return -ENOMEM;
    *out = joined;
    return 0;
}

static int parse_messages(oai_request *r, json_t *root, char *msg, size_t cap) {
    static const char *roles[] = {"system", "user", "assistant", "tool", "developer"};
    json_t *ms = json_object_get(root, "messages");
    if (!ms) return bad(msg, cap, "'messages' is required");
    if (!json_is_array(ms)) return bad(msg, cap, "'messages' must be an array");
    size_t n = json_array_size(ms);
    if (n == 0) return bad(msg, cap, "'messages' must not be empty");
    if (n > OAI_MAX_MESSAGES) return bad(msg, cap, "'messages' has %zu entries (max %d)", n, OAI_MAX_MESSAGES);
    r->msgs = nj_calloc(n, sizeof *r->msgs);
    if (!r->msgs) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(ms, i);
        if (!json_is_object(m)) return bad(msg, cap, "'messages[%zu]' must be an object", i);
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) return bad(msg, cap, "'messages[%zu].role' must be a string", i);
        const char *rs = json_string_value(role);
        size_t j = 0;
        for (; j < NJ_ARRAY_LEN(roles); j++)
            if (!strcmp(rs, roles[j])) break;
        if (j == NJ_ARRAY_LEN(roles))
            return bad(msg, cap, "'messages[%zu].role' must be one of system, user, assistant, tool, developer", i);
        if (json_object_get(m, "tool_calls") && json_array_size(json_object_get(m, "tool_calls")))
            return bad(msg, cap, "'messages[%zu].tool_calls': tool calls are not supported", i);
        r->msgs[i].role = !strcmp(rs, "developer") ? "system" : rs;
        int rc = parse_content(r, json_object_get(m, "content"), (int)i, &r->msgs[i].content, msg, cap);
        if (rc) return rc;
        r->n_msgs = (int)i + 1;
    }
    return 0;
}

static int parse_prompt(oai_request *r, json_t *root, char *msg, size_t cap) {
    json_t *p = json_object_get(root, "prompt");
    if (!p) return bad(msg, cap, "'prompt' is required");
    if (json_is_array(p)) {
        if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0)))
            return bad(msg, cap, "'prompt' must be a string or an array of exactly one string");
        p = json_array_get(p, 0);
    }
    return get_cstr(p, "prompt", &r->prompt, &r->prompt_len, msg, cap);
}

static int parse_stop(oai_request *r, json_t *root, char *msg, size_t cap) {
    json_t *s = json_object_get(root, "stop");
    if (!s || json_is_null(s)) return 0;
    json_t *one[1] = {s};
    size_t n = 1;
    if (json_is_array(s)) n = json_array_size(s);
    else if (!json_is_string(s)) return bad(msg, cap, "'stop' must be a string or an array of strings");
    if (n > OAI_MAX_STOP) return bad(msg, cap, "'stop' has %zu strings (max %d)", n, OAI_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_is_array(s) ? json_array_get(s, i) : one[0];
        const char *str;
        size_t len;
        int rc = get_cstr(v, "stop", &str, &len, msg, cap);
        if (rc) return rc;
        if (len == 0) return bad(msg, cap, "'stop' strings must not be empty");
        if (len > OAI_MAX_STOP_LEN) return bad(msg, cap, "'stop' strings are limited to %d bytes", OAI_MAX_STOP_LEN);
        r->stop[r->n_stop] = str;
        r->stop_len[r->n_stop++] = len;
    }
    return 0;
}

static int parse_fields(oai_request *r, json_t *root, char *msg, size_t cap) {
    int rc;
    if (r->kind == OAI_CHAT) rc = parse_messages(r, root, msg, cap);
    else rc = parse_prompt(r, root, msg, cap);
    if (rc) return rc;

    json_t *v = json_object_get(root, "model");
    if (v && !json_is_null(v) && (rc = get_cstr(v, "model", &r->model, NULL, msg, cap))) return rc;

    bool has;
    long long i;
    double d;
    r->max_tokens = -1;
    const char *mt_key = json_object_get(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((rc = get_int(root, mt_key, 1, 1 << 24, &has, &i, msg, cap))) return rc;
    if (has) r->max_tokens = (int)i;
    if ((rc = get_int(root, "n", 1, 1, &has, &i, msg, cap))) {
        if (json_is_integer(json_object_get(root, "n")))
            return bad(msg, cap, "'n' must be 1 (one choice per request is supported)");
        return rc;
    }

    v = json_object_get(root, "stream");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) return bad(msg, cap, "'stream' must be true or false");
        r->stream = json_is_true(v);
    }
    v = json_object_get(root, "stream_options");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v)) return bad(msg, cap, "'stream_options' must be an object");
        json_t *u = json_object_get(v, "include_usage");
        if (u && !json_is_boolean(u)) return bad(msg, cap, "'stream_options.include_usage' must be true or false");
        r->include_usage = u && json_is_true(u);
    }

    r->priority = OAI_PRIO_NORMAL;
    v = json_object_get(root, "priority");
    if (v && !json_is_null(v)) {
        int k = oai_priority_parse(json_is_string(v) ? json_string_value(v) : NULL);
        if (k < 0)
            return bad(msg, cap, "'priority' must be \"critical\", \"high\", \"normal\" or \"bulk\" (or \"low\")");
        r->priority = k;
        r->has_priority = true;
    }
    v = json_object_get(root, "deadline_ms");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > OAI_MAX_DEADLINE_MS)
            return bad(msg, cap, "'deadline_ms' must be an integer from 1 to %lld", OAI_MAX_DEADLINE_MS);
        r->deadline_ms = (long long)json_integer_value(v);
    }

    if ((rc = get_num(root, "temperature", 0, 100, &r->has_temperature, &d, msg, cap))) return rc;
    r->temperature = (float)d;
    if ((rc = get_num(root, "top_p", 0, 1, &r->has_top_p, &d, msg, cap))) return rc;
    r->top_p = (float)d;
    if ((rc = get_num(root, "min_p", 0, 1, &r->has_min_p, &d, msg, cap))) return rc;
    r->min_p = (float)d;
    if ((rc = get_num(root, "repeat_penalty", 0, 10, &r->has_repeat_penalty, &d, msg, cap))) return rc;
    r->repeat_penalty = (float)d;
    if ((rc = get_int(root, "top_k", 0, 1 << 20, &r->has_top_k, &i, msg, cap))) return rc;
    r->top_k = (int)i;
    v = json_object_get(root, "seed");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) return bad(msg, cap, "'seed' must be an integer");
        r->has_seed = true;
        r->seed = (uint64_t)json_integer_value(v);
    }
    if ((rc = parse_stop(r, root, msg, cap))) return rc;

    /* response_format: text (default), json_object, or json_schema; the
     * schema goes to the engine as text, which compiles it (or refuses it
     * naming the keyword: a 400 from the worker).  Output under a schema is
     * always strict: "strict": false is accepted and changes nothing. */
    v = json_object_get(root, "response_format");
    if (v && !json_is_null(v)) {
        const char *t = json_string_value(json_object_get(v, "type"));
        if (!json_is_object(v) || !t)
            return bad(msg, cap, "'response_format' must be an object with a 'type'");
        if (!strcmp(t, "json_object")) {
            r->json_object = true;
        } else if (!strcmp(t, "json_schema")) {
            json_t *js = json_object_get(v, "json_schema");
            json_t *schema = json_object_get(js, "schema");
            json_t *strict = json_object_get(js, "strict");
            if (!json_is_object(js) || !json_is_object(schema))
                return bad(msg, cap, "'response_format.json_schema.schema' must be a JSON object");
            if (strict && !json_is_boolean(strict) && !json_is_null(strict))
                return bad(msg, cap, "'response_format.json_schema.strict' must be true or false");
            char *text = event_json_dumps(schema, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (!text || (rc = keep(r, text))) return -ENOMEM;
            r->schema = text;
        } else if (strcmp(t, "text")) {
            return bad(msg, cap, "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
        }
    }

    v = json_object_get(root, "logprobs");
    if (v && json_is_true(v)) return bad(msg, cap, "'logprobs' is not supported");
    v = json_object_get(root, "tools");
    if (v && json_array_size(v) > 0) return bad(msg, cap, "'tools' are not supported");
    return 0;
}

int oai_parse(int kind, const char *body, size_t len, oai_request *out, char *msg, size_t cap) {
    oai_init();
    memset(out, 0, sizeof *out);
    out->kind = kind;
    json_error_t jerr;
    int perr = 0;
    json_t *root = event_json_parse(body, len, JSON_REJECT_DUPLICATES, &jerr, &perr);
    if (!root && perr == -ENOMEM) {
        snprintf(msg, cap, "out of memory");
        return -ENOMEM;
    }
    if (!root) {
        snprintf(msg, cap, "malformed JSON body: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return NJ_EFORMAT;
    }
    out->root = root;
    if (!json_is_object(root)) {
        oai_request_free(out);
        snprintf(msg, cap, "the request body must be a JSON object");
        return NJ_EFORMAT;
    }
    int rc = parse_fields(out, root, msg, cap);
    if (rc) {
        if (rc == -ENOMEM) snprintf(msg, cap, "out of memory");
        oai_request_free(out);
        out->kind = kind;
    }
    return rc;
}

/* ---- UTF-8 ---- */

/* A JSON string of s[0..n); invalid bytes become U+FFFD. */
static json_t *json_text(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j || n == 0) return j ? j : json_string("");
    char *fixed = nj_malloc(n * 3 + 1);
    if (!fixed) return NULL;
    size_t o = nj_utf8_sanitize(s, n, fixed);
    j = json_stringn(fixed, o);
    nj_free(fixed);
    return j;
}

/* ---- builders ---- */

static char *dump(json_t *j, size_t *outlen) {
    if (!j) return NULL;
    char *s = event_json_dumps(j, JSON_COMPACT);   /* nj_malloc'd (event.h) */
    json_decref(j);
    if (s && outlen) *outlen = strlen(s);
    return s;
}

static json_t *usage_obj(const oai_usage *u) {
    json_t *o = json_pack("{s:i,s:i,s:i}", "prompt_tokens", u->prompt_tokens,
                          "completion_tokens", u->completion_tokens,
                          "total_tokens", u->prompt_tokens + u->completion_tokens);
    if (o && json_object_set_new(o, "prompt_tokens_details", json_pack("{s:i}", "cached_tokens", u->cached_tokens))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *oai_response_json(int kind, const oai_ident *id, const char *text, size_t len,
                        const char *finish_reason, const oai_usage *u, size_t *outlen) {
    oai_init();
    json_t *t = json_text(text, len);
    if (!t) return NULL;
    json_t *choice;
    if (kind == OAI_CHAT)
        choice = json_pack("{s:i,s:{s:s,s:o},s:n,s:s}", "index", 0, "message", "role", "assistant",
                           "content", t, "logprobs", "finish_reason", finish_reason);
    else
        choice = json_pack("{s:i,s:o,s:n,s:s}", "index", 0, "text", t, "logprobs",
                           "finish_reason", finish_reason);
    if (!choice) return NULL;
    json_t *root = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", id->id,
                             "object", kind == OAI_CHAT ? "chat.completion" : "text_completion",
                             "created", (json_int_t)id->created, "model", id->model, "choices", choice,
                             "usage", usage_obj(u));
    return dump(root, outlen);
}

/* "data: " + json + "\n\n" */
static char *sse(json_t *j, size_t *outlen) {
    size_t n;
    char *body = dump(j, &n);
    if (!body) return NULL;
    char *out = nj_malloc(n + 9);
    if (out) {
        memcpy(out, "data: ", 6);
        memcpy(out + 6, body, n);
        memcpy(out + 6 + n, "\n\n", 3);
        if (outlen) *outlen = n + 8;
    }
    nj_free(body);
    return out;
}

char *oai_chunk_sse(int kind, const oai_ident *id, const char *text, size_t len, bool role_first,
                    const char *finish_reason, const oai_usage *usage, size_t *outlen) {
    oai_init();
    json_t *choices = json_array();
    if (!choices) return NULL;
    if (!usage) {
        json_t *t = json_text(text, len), *choice;
        if (!t) {
            json_decref(choices);
            return NULL;
        }
        if (kind == OAI_CHAT) {
            json_t *delta = json_object();
            if (role_first) json_object_set_new(delta, "role", json_string("assistant"));
            if (len || !finish_reason) json_object_set_new(delta, "content", t);
            else json_decref(t);
            choice = json_pack("{s:i,s:o,s:n}", "index", 0, "delta", delta, "logprobs");
        } else {
            choice = json_pack("{s:i,s:o,s:n}", "index", 0, "text", t, "logprobs");
        }
        if (choice)
            json_object_set_new(choice, "finish_reason",
                                finish_reason ? json_string(finish_reason) : json_null());
        json_array_append_new(choices, choice);
    }
    json_t *root = json_pack("{s:s,s:s,s:I,s:s,s:o}", "id", id->id,
                             "object", kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion",
                             "created", (json_int_t)id->created, "model", id->model, "choices", choices);
    if (root && usage) json_object_set_new(root, "usage", usage_obj(usage));
    return sse(root, outlen);
}

char *oai_error_json(int status, const char *type, const char *message,
                     const char *const *extra_names, const long long *extra_values, int n_extra,
                     size_t *outlen) {
    oai_init();
    json_t *err = json_pack("{s:o,s:s,s:i}", "message", json_text(message, strlen(message)),
                            "type", type, "code", status);
    if (!err) return NULL;
    for (int i = 0; i < n_extra; i++)
        json_object_set_new(err, extra_names[i], json_integer(extra_values[i]));
    return dump(json_pack("{s:o}", "error", err), outlen);
}

char *oai_models_json(const char *model_id, long long created, size_t *outlen) {
    oai_init();
    json_t *root = json_pack("{s:s,s:[{s:o,s:s,s:I,s:s}]}", "object", "list", "data",
                             "id", json_text(model_id, strlen(model_id)), "object", "model",
                             "created", (json_int_t)created, "owned_by", "nightjar");
    return dump(root, outlen);
}
