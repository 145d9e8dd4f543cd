/*
 * analyst — one canonical event in, one verdict out.
 *
 * Purpose.  This is why nightjar exists: given an endpoint event (see
 * docs/event.md), say whether it is benign, suspicious or malicious, which
 * ATT&CK techniques it shows and why, in a verdict that always parses, fast
 * enough for a laptop (<= 2.5 s per event) and hard to talk out of a
 * detection.
 *
 * Pipeline, cheapest first (each stage may decide; later stages run only
 * for what earlier ones left open):
 *   1. Sigma rules (sigma.h): the team's pack in rules/nightjar plus any
 *      --rules DIR (a SigmaHQ checkout works).  A hit of level high or
 *      critical is malicious, medium is suspicious; the verdict comes from
 *      the rule (source "rule") and the model is not asked.  A suspicious
 *      rule verdict is still shown to the model, which may raise it to
 *      malicious but never lower it: no text in an event can undo a rule.
 *   2. The verdict cache: the same event, with its volatile parts masked
 *      (render.h), judged by the same model and prompt version, gets the
 *      stored verdict (source "cache").
 *   3. The model (source "model"): the fixed system prompt (a prefix the
 *      engine keeps in its KV cache), then the nearest labelled examples of
 *      the command line from the knowledge base (retrieve.h, BM25), then the
 *      event, fenced and escaped.  The model reads the guard's view of the
 *      event (guard.h: instruction-like text and shell comments cut; the
 *      verdict then carries "flags": ["prompt-injection"] when such text
 *      was found).  The assistant turn starts with {"verdict": " and the
 *      label comes from the model's probabilities of "benign", "suspicious"
 *      and "malicious" at that position (nj_score_labels: one forward pass
 *      over the event, plus the label tokens), combined with the retrieval
 *      vote by the prompt's calibration (a fitted combiner, or per-label
 *      biases and a vote weight in older prompt versions).  Only
 *      when the verdict is not benign (or when asked: full) are techniques
 *      and summary generated, under the verdict JSON schema (nj_grammar:
 *      the document always parses; forced tokens are fast-forwarded).  A
 *      prompt with "techniques": "retrieval" has the model write only the
 *      summary; a suspicious or malicious verdict then takes its ATT&CK
 *      ids from the nearest non-benign examples of the retrieval (the
 *      knowledge base's cited ids), label path or not.
 *
 * Remote model.  With opts.backend the model stage runs on another server
 * (remote.h): another nightjar's /v1/analyze (events in batches, order
 * kept) or an OpenAI-compatible /v1/chat/completions fed this analyst's
 * own messages and verdict schema.  Rules and the cache still run here
 * first, so nothing a rule decides needs the network, and a rule's
 * verdict is a floor for the remote's as for a local model's.  Such
 * verdicts say source "remote" and name the model as BACKEND/MODEL.
 *
 * Provenance.  Every verdict names its source, the rules that decided it,
 * the model file and the prompt version (prompts/<version>/), and its
 * latency.
 *
 * Ownership and threads.  An analyst owns its rules, knowledge base, prompt
 * text and verdict cache.  analyst_judge mutates the cache and uses the
 * session it is given, so one analyst is used by one thread at a time (the
 * service's engine thread, or the CLI's main thread).  The model and session
 * are borrowed for the call.
 */
#ifndef NJ_ANALYST_H
#define NJ_ANALYST_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "nightjar.h"

typedef struct analyst analyst;

enum { AV_BENIGN = 0, AV_SUSPICIOUS = 1, AV_MALICIOUS = 2, AV_NLABELS = 3 };
extern const char *const analyst_label_names[AV_NLABELS];

enum { ANALYST_SCORING_FIRST = 1, ANALYST_SCORING_EXACT = 2 };

typedef struct analyst_opts {
    const char *data_dir;      /* holds rules/, kb/, prompts/; NULL: analyst_data_dir() */
    const char *rules_path;    /* extra Sigma rules (file or directory), or NULL */
    const char *prompt_dir;    /* NULL: <data>/prompts/analyst-v4 */
    const char *kb_path;       /* NULL: <data>/kb/examples.jsonl */
    const char *model_name;    /* provenance ("model" field); NULL: "none" */
    bool        no_rules;      /* skip stage 1 (the pack and rules_path) */
    bool        no_retrieval;  /* no examples in the prompt */
    bool        no_cache;      /* skip stage 2 */
    bool        no_guard;      /* the model sees instruction-like text and comments (measuring only) */
    bool        label_only;    /* never generate techniques and summary */
    bool        full;          /* always generate them, benign included */
    bool        explain;       /* model verdicts carry "explain": raw log-probabilities and the retrieval vote */
    int         n_examples;    /* examples per prompt; 0: the prompt's own; < 0: none */
    int         scoring;       /* ANALYST_SCORING_*: label scoring; 0: the prompt's own */
    bool        compare_scoring; /* explain also carries the labels scored the other way */
    int         cache_entries; /* verdict cache capacity; 0: 4096 */
    /* The model stage on another server instead of a local model
     * (remote.h): rules and the cache still run here, first. */
    const char *backend;       /* "nightjar+http://..." | "openai+http://..." | NULL: local */
    const char *backend_token; /* Bearer token for it, or NULL */
    const char *backend_model; /* openai: the request's model; NULL: the server's own */
    int         backend_timeout_ms; /* per request; 0: 120 s */
    int         backend_retries;    /* extra attempts after a transient failure; 0: 3, < 0: none */
} analyst_opts;

/* Where to end a summary the token budget cut off: the length up to its
 * last whole word (trailing spaces and , ; : dropped), or n when that would
 * leave fewer than 16 bytes or the text has no space.  The analyst then
 * appends an ellipsis (U+2026). */
size_t analyst_word_cut(const char *s, size_t n);

/* The current ATT&CK id of t: ids that ATT&CK v19 renumbered map to their
 * new ones (verdicts carry those), others are returned as they are. */
const char *analyst_technique_id(const char *t);

/* The folder holding rules/, kb/ and prompts/: $NIGHTJAR_DATA, else
 * <exe>/../share/nightjar when it exists, else the repository root when
 * the binary runs from a build folder inside it, else ".".  Static buffer. */
const char *analyst_data_dir(void);

/* Loads rules, knowledge base and prompt.  NULL with *err and
 * nj_last_error() (naming the file) when one cannot be read; rules that
 * Sigma cannot load are skips, not errors (analyst_rule_skips). */
analyst *analyst_new(const analyst_opts *o, int *err);
void     analyst_free(analyst *a);

int         analyst_rule_count(const analyst *a);
int         analyst_rule_skips(const analyst *a);
/* Skip i: "file: reason" into buf. */
void        analyst_rule_skip(const analyst *a, int i, char *buf, size_t cap);
const char *analyst_prompt_version(const analyst *a);

/* Judge one canonical event (validated by the caller: event_validate).
 * m and s may be NULL: then the backend judges what rules leave open, or
 * without one only rules decide, and an event no rule decides is benign
 * with source "rule" and no rule ids.  On success *verdict is a new JSON
 * object (json_decref it):
 *   {"event_id", "verdict", "confidence", "techniques": [...], "summary",
 *    "source": "rule"|"model"|"cache"|"remote", "rule_ids": [...],
 *    "remote_source" (nightjar backend: the remote's own source), "model",
 *    "prompt", "scores": {"benign", "suspicious", "malicious"} (model path
 *    only), "latency_ms"}
 * Returns 0 or < 0 with nj_last_error(); the session may have been
 * changed either way (its cached prefix is kept when it can be). */
int analyst_judge(analyst *a, nj_model *m, nj_session *s, const json_t *event, json_t **verdict);

/* Judge n events in order; verdicts[i] is the new verdict of events[i],
 * or NULL when that event could not be judged (its error is the return
 * value's).  Same as n calls of analyst_judge, except that with a
 * nightjar backend the events the rules and the cache leave open go to
 * the remote in batches.  Events a rule decides get their verdict even
 * when the backend is down.  Returns 0 when every event has a verdict,
 * else the first failure's code: NJ_ENET means the backend is unavailable
 * (after its retries), so the caller should keep the events and try again
 * later. */
int analyst_judge_batch(analyst *a, nj_model *m, nj_session *s, const json_t *const *events, size_t n,
                        json_t **verdicts);

/* What a backend's answer makes of one event, without the network (tests
 * and fuzzing): text is a nightjar verdict object or an OpenAI chat
 * completion, per the analyst's backend kind; rule_label the rules' floor.
 * 0 and a new verdict in *out, or NJ_EFORMAT / NJ_ESTATE (no backend). */
int analyst_remote_answer(analyst *a, const char *text, size_t n, int rule_label, json_t **out);

/* The backend's name without credentials, or NULL when the model is local. */
const char *analyst_backend(const analyst *a);

/* Counters since analyst_new (for /metrics and eval). */
typedef struct analyst_stats {
    unsigned long long events, by_rule, by_cache, by_model, cache_lookups, generated;
    unsigned long long prompt_tokens, prompt_tokens_reused;
    unsigned long long by_remote, remote_requests, remote_retries, remote_failures;
} analyst_stats;
void analyst_get_stats(const analyst *a, analyst_stats *out);

/* The verdict JSON schema (the document the model completes). */
extern const char analyst_verdict_schema[];

#endif
