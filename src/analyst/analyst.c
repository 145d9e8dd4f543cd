/*
 * analyst — see analyst.h for the pipeline.  This file holds the stages'
 * glue: loading, the verdict cache, the model path (prompt, label scoring,
 * schema-bound generation) and the verdict's JSON.
 *
 * The verdict cache is a hash table of normalised-event keys with an LRU
 * list; entries own a copy of the verdict (without the per-event fields).
 * It lives and dies with the analyst, one thread at a time (analyst.h).
 */
#include "analyst.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "event.h"
#include "guard.h"
#include "platform.h"
#include "remote.h"
#include "render.h"
#include "retrieve.h"
#include "sigma.h"
#include "util.h"

const char *const analyst_label_names[AV_NLABELS] = {"benign", "suspicious", "malicious"};

/* The verdict document the model completes, around the verdict property's
 * own schema: the published schema allows the three labels, the grammar of
 * a generation fixes the scored one (ensure_grammars).  Property order is
 * the order the grammar generates. */
#define VERDICT_SCHEMA(VERDICT)                                                          \
    "{\"type\": \"object\", \"properties\": {\"verdict\": " VERDICT ", "                \
    "\"techniques\": {\"type\": \"array\", \"items\": {\"type\": \"string\", "              \
    "\"pattern\": \"^T[0-9]{4}(\\\\.[0-9]{3})?$\"}, \"maxItems\": 4}, "                 \
    "\"summary\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200}}, "         \
    "\"required\": [\"verdict\", \"techniques\", \"summary\"], \"additionalProperties\": false}"
const char analyst_verdict_schema[] =
    VERDICT_SCHEMA("{\"enum\": [\"benign\", \"suspicious\", \"malicious\"]}");

/* The generated document when the techniques come from the rules and the
 * retrieved examples (prompt.json "techniques": "retrieval"): the summary
 * right after the scored verdict, nothing else, so the whole token budget
 * goes to the one part only the model can write. */
#define SUMMARY_SCHEMA(VERDICT)                                                          \
    "{\"type\": \"object\", \"properties\": {\"verdict\": " VERDICT ", "                \
    "\"summary\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 200}}, "         \
    "\"required\": [\"verdict\", \"summary\"], \"additionalProperties\": false}"

/* Techniques from the retrieval: at most this many, from neighbours that
 * scored at least this share of the nearest one's BM25 score. */
#define KNN_TECHNIQUES      2
#define KNN_TECHNIQUE_SHARE 0.5f

/* ATT&CK v19 renumbered defence-evasion techniques; models trained before
 * answer with the old ids.  Verdicts carry the current ones (eval/README.md
 * has the table and its sources). */
static const char *const attack_renamed[][2] = {
    {"T1562.001", "T1685"},     {"T1562.006", "T1685"}, {"T1562.012", "T1685.004"},
    {"T1070.002", "T1685.006"}, {"T1562.003", "T1690"}, {"T1562.004", "T1686"},
};

#define MAX_EXAMPLES 8

/* The combiner's inputs, in order: the model's label log-probabilities
 * renormalised over the three labels, the retrieval vote's label shares,
 * whether the vote had any neighbour, whether a rule already rated the
 * event suspicious. */
enum { AV_NFEATURES = 8 };
static const char *const combiner_features[AV_NFEATURES] = {
    "lp_benign", "lp_suspicious", "lp_malicious", "knn_benign", "knn_suspicious", "knn_malicious",
    "have_knn", "rule_suspicious"};
#define MAX_HITS     16
#define GEN_MAX      160   /* tokens of techniques + summary */

typedef struct centry {
    uint64_t       hash;
    char          *key;
    json_t        *verdict;     /* label, confidence, techniques, summary, scores, rule_ids */
    struct centry *next_hash;
    struct centry *prev, *next; /* LRU, most recent first */
} centry;

struct analyst {
    char         data_dir[1024];
    char         prompt_version[64];
    char        *system;          /* system prompt text */
    int          n_examples;
    double       diversity;
    int          knn_k;           /* neighbours in the retrieval vote */
    float        knn_weight;      /* share of the vote in the final probabilities */
    float        knn[AV_NLABELS]; /* this event's vote (score-weighted label shares) */
    bool         have_knn;
    kb_hit       knn_hits[MAX_EXAMPLES]; /* the vote's neighbours, nearest first */
    int          n_knn_hits;
    bool         knn_cmd;         /* the query was the event's command line or program path */
    bool         tech_retrieval;  /* prompt.json "techniques": "retrieval" (else "model") */
    float        bias[AV_NLABELS];
    bool         example_why;     /* examples carry their one-line reason */
    /* the fitted combiner (prompt.json "combiner"): probabilities are
     * softmax(cb + cw . features), features in combiner_features order */
    bool         have_combiner;
    float        cw[AV_NLABELS][AV_NFEATURES];
    float        cb[AV_NLABELS];
    int          max_summary_tokens;
    bool         exact_scoring;   /* prompt.json "label_scoring": "exact" (else "first-token") */
    char         model_name[256];
    const nj_model *tmpl_model;  /* the model tmpl_name was chosen for */
    const char   *tmpl_name;     /* its chat template when the file names none, else NULL */
    analyst_opts o;

    sigma_rules    *rules;
    remote         *remote;         /* the model stage elsewhere, or NULL */
    json_t         *schema;         /* analyst_verdict_schema parsed (remote openai) */
    nj_kb          *kb;
    nj_kb_searcher *searcher;

    /* each label's first token, for the model it was found for; ft_shared
     * when two labels begin with the same token (then scoring is exact) */
    const nj_model *ftmodel;
    int32_t         first_tok[AV_NLABELS];
    bool            ft_shared;

    /* grammars per label, for the model they were built on */
    const nj_model *gmodel;
    nj_grammar     *grammar[AV_NLABELS];
    nj_grammar     *grammar_any;   /* the published schema: any of the labels */

    /* verdict cache */
    centry      **buckets;
    size_t        n_buckets, n_entries, capacity;
    centry       *lru_head, *lru_tail;

    /* scratch reused across events */
    rbuf          text, user, key, query, gen;
    bool          gen_closed;     /* the last generation was closed by the budget */
    int32_t      *toks;
    int           toks_cap;
    float        *logits;
    int           n_vocab;

    analyst_stats st;
};

/* ---- files ---- */

/* nj_fail with "prefix: <the current error sentence>" (copied first: the
 * sentence lives in the buffer nj_fail writes). */
static int fail_prefixed(int code, const char *prefix) {
    char m[512];
    snprintf(m, sizeof m, "%s", nj_last_error());
    return nj_fail(code, "%s: %s", prefix, m);
}

static char *read_text(const char *path, size_t max, int *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = -errno;
        nj_set_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = nj_realloc(buf, cap);
            if (!nb) {
                nj_free(buf);
                fclose(f);
                *err = -ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len > max) {
            nj_free(buf);
            fclose(f);
            *err = NJ_ETOOBIG;
            nj_set_error("%s: larger than %zu bytes", path, max);
            return NULL;
        }
        if (n == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        nj_free(buf);
        *err = -EIO;
        nj_set_error("%s: read error", path);
        return NULL;
    }
    buf[len] = 0;
    *err = 0;
    return buf;
}

/* dir + "/" + name into out; false (and an error sentence) if it does not fit. */
static bool path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        nj_set_error("path too long: %s/%s", dir, name);
        return false;
    }
    return true;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *analyst_data_dir(void) {
    static char dir[1024];
    const char *env = getenv("NIGHTJAR_DATA");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    char exe[1024];
    if (platform_exe_path(exe, sizeof exe) > 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;   /* exe's folder */
            char probe[1200];
            if (path_join(probe, sizeof probe, exe, "../share/nightjar/prompts") && is_dir(probe) &&
                path_join(dir, sizeof dir, exe, "../share/nightjar"))
                return dir;
            /* build/nightjar (or build-asan/...) inside the repository */
            if (path_join(probe, sizeof probe, exe, "../prompts") && is_dir(probe) &&
                path_join(dir, sizeof dir, exe, ".."))
                return dir;
        }
    }
    snprintf(dir, sizeof dir, ".");
    return dir;
}

/* prompt.json's "combiner": {"features": [names in combiner_features
 * order], "weights": {label: [AV_NFEATURES numbers]}, "bias": {label: n}}.
 * The feature list is checked so a file fitted for another feature set
 * cannot be read with the wrong meaning. */
static int load_combiner(analyst *a, const json_t *c, const char *path) {
    const json_t *fe = json_object_get(c, "features"), *w = json_object_get(c, "weights"),
                 *b = json_object_get(c, "bias");
    if (json_array_size(fe) != AV_NFEATURES || !json_is_object(w) || !json_is_object(b))
        return nj_fail(NJ_EFORMAT, "%s: combiner needs \"features\" (%d names), \"weights\" and \"bias\"",
                       path, AV_NFEATURES);
    for (int i = 0; i < AV_NFEATURES; i++) {
        const char *n = json_string_value(json_array_get(fe, (size_t)i));
        if (!n || strcmp(n, combiner_features[i]))
            return nj_fail(NJ_EFORMAT, "%s: combiner feature %d is '%s', expected '%s'", path, i, n ? n : "?",
                           combiner_features[i]);
    }
    for (int l = 0; l < AV_NLABELS; l++) {
        const json_t *row = json_object_get(w, analyst_label_names[l]), *bl = json_object_get(b, analyst_label_names[l]);
        if (json_array_size(row) != AV_NFEATURES || !json_is_number(bl))
            return nj_fail(NJ_EFORMAT, "%s: combiner needs %d weights and a bias for '%s'", path, AV_NFEATURES,
                           analyst_label_names[l]);
        for (int i = 0; i < AV_NFEATURES; i++) {
            const json_t *x = json_array_get(row, (size_t)i);
            if (!json_is_number(x)) return nj_fail(NJ_EFORMAT, "%s: combiner weights must be numbers", path);
            a->cw[l][i] = (float)json_number_value(x);
        }
        a->cb[l] = (float)json_number_value(bl);
    }
    a->have_combiner = true;
    return 0;
}

/* A prompt.json field that names one of two ways, `first` when absent:
 * 1 for `second`, 0 for `first`, or NJ_EFORMAT (naming the field, the
 * file and both ways) for anything else. */
static int prompt_choice(const json_t *j, const char *key, const char *first, const char *second,
                         const char *path) {
    json_t *f = json_object_get(j, key);
    const char *v = f ? json_string_value(f) : first;
    if (v && !strcmp(v, first)) return 0;
    if (v && !strcmp(v, second)) return 1;
    return nj_fail(NJ_EFORMAT, "%s: %s must be \"%s\" or \"%s\"", path, key, first, second);
}

static int load_prompt(analyst *a, const char *pdir) {
    char path[1200];
    int err = 0;
    if (!path_join(path, sizeof path, pdir, "prompt.json")) return NJ_ETOOBIG;
    char *cfg = read_text(path, 1 << 20, &err);
    if (!cfg) return fail_prefixed(err, "prompt");
    json_error_t je;
    json_t *j = event_json_load(cfg, strlen(cfg), 0, &je, &err);   /* tells out-of-memory from bad JSON */
    nj_free(cfg);
    if (!j && err == -ENOMEM) return nj_fail(err, "%s: out of memory", path);
    if (!json_is_object(j)) {
        json_decref(j);
        return nj_fail(NJ_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    }
    int rc = 0;
    const char *ver = json_string_value(json_object_get(j, "version"));
    const char *sys = json_string_value(json_object_get(j, "system"));
    if (!ver || !sys || strlen(ver) >= sizeof a->prompt_version) {
        rc = nj_fail(NJ_EFORMAT, "%s: needs string fields \"version\" and \"system\"", path);
        goto out;
    }
    snprintf(a->prompt_version, sizeof a->prompt_version, "%s", ver);
    json_t *ne = json_object_get(j, "examples");
    a->n_examples = json_is_integer(ne) ? (int)json_integer_value(ne) : 4;
    json_t *dv = json_object_get(j, "example_diversity");
    a->diversity = json_is_number(dv) ? json_number_value(dv) : 0.0;
    json_t *kk = json_object_get(j, "knn_k"), *kw = json_object_get(j, "knn_weight");
    a->knn_k = json_is_integer(kk) ? (int)json_integer_value(kk) : 5;
    a->knn_weight = json_is_number(kw) ? (float)json_number_value(kw) : 0.0f;
    json_t *mt = json_object_get(j, "max_summary_tokens");
    a->max_summary_tokens = json_is_integer(mt) ? (int)json_integer_value(mt) : 96;
    json_t *bias = json_object_get(j, "label_bias");
    for (int l = 0; l < AV_NLABELS; l++) {
        json_t *b = json_object_get(bias, analyst_label_names[l]);
        a->bias[l] = json_is_number(b) ? (float)json_number_value(b) : 0.0f;
    }
    if ((rc = prompt_choice(j, "label_scoring", "exact", "first-token", path)) < 0) goto out;
    a->exact_scoring = !rc;
    if ((rc = prompt_choice(j, "techniques", "model", "retrieval", path)) < 0) goto out;
    a->tech_retrieval = rc;
    rc = 0;
    json_t *why = json_object_get(j, "example_why");
    a->example_why = why ? json_is_true(why) : true;
    /* the combiner fitted for this model, else the one for any model, else
     * none (the uncalibrated mix below) */
    json_t *cmb = NULL, *list = json_object_get(j, "combiners");
    if (list && !json_is_array(list)) {
        rc = nj_fail(NJ_EFORMAT, "%s: \"combiners\" must be a list", path);
        goto out;
    }
    size_t ci;
    json_t *c;
    json_array_foreach(list, ci, c) {
        const char *for_model = json_string_value(json_object_get(c, "model"));
        if (!for_model || !*for_model) {
            rc = nj_fail(NJ_EFORMAT, "%s: combiners[%zu] needs \"model\" (part of a model file name)", path, ci);
            goto out;
        }
        if (!cmb && strcasestr(a->model_name, for_model)) cmb = c;
    }
    if (!cmb) cmb = json_object_get(j, "combiner");
    if (cmb && (rc = load_combiner(a, cmb, path))) goto out;
    if (a->knn_k < 1 || a->knn_k > MAX_EXAMPLES || a->knn_weight < 0 || a->knn_weight > 1) {
        rc = nj_fail(NJ_EFORMAT, "%s: knn_k must be 1..%d and knn_weight 0..1", path, MAX_EXAMPLES);
        goto out;
    }
    if (a->n_examples < 0 || a->n_examples > MAX_EXAMPLES || a->diversity < 0 || a->diversity > 1 ||
        a->max_summary_tokens < 16 || a->max_summary_tokens > GEN_MAX) {
        rc = nj_fail(NJ_EFORMAT, "%s: examples must be 0..%d, example_diversity 0..1, "
                     "max_summary_tokens 16..%d", path, MAX_EXAMPLES, GEN_MAX);
        goto out;
    }
    if (!path_join(path, sizeof path, pdir, sys)) {
        rc = NJ_ETOOBIG;
        goto out;
    }
    a->system = read_text(path, 64 << 10, &err);
    if (!a->system) rc = fail_prefixed(err, "prompt");
out:
    json_decref(j);
    return rc;
}

analyst *analyst_new(const analyst_opts *o, int *err) {
    int rc = 0;
    analyst *a = nj_calloc(1, sizeof *a);
    if (!a) { rc = -ENOMEM; goto fail; }
    event_init();
    a->o = *o;
    snprintf(a->data_dir, sizeof a->data_dir, "%s", o->data_dir ? o->data_dir : analyst_data_dir());
    snprintf(a->model_name, sizeof a->model_name, "%s", o->model_name ? o->model_name : "none");
    a->o.data_dir = a->o.rules_path = a->o.prompt_dir = a->o.kb_path = a->o.model_name = NULL;

    char path[1200];
    if (o->prompt_dir) snprintf(path, sizeof path, "%s", o->prompt_dir);
    else if (!path_join(path, sizeof path, a->data_dir, "prompts/analyst-v4")) { rc = NJ_ETOOBIG; goto fail; }
    if ((rc = load_prompt(a, path))) goto fail;
    if (o->n_examples > 0) a->n_examples = NJ_MIN(o->n_examples, MAX_EXAMPLES);
    if (o->n_examples < 0 || o->no_retrieval) a->n_examples = 0;

    if (!o->no_rules) {
        a->rules = sigma_rules_new(&rc);
        if (!a->rules) goto fail;
        if (!path_join(path, sizeof path, a->data_dir, "rules/nightjar")) { rc = NJ_ETOOBIG; goto fail; }
        int n = sigma_load_path(a->rules, path);
        if (n < 0) { rc = fail_prefixed(n, path); goto fail; }
        if (o->rules_path) {
            n = sigma_load_path(a->rules, o->rules_path);
            if (n < 0) { rc = fail_prefixed(n, o->rules_path); goto fail; }
        }
    }
    /* the labelled examples: their vote feeds the combiner even when the
     * prompt shows none of them ("examples": 0) */
    if (!o->no_retrieval) {
        if (o->kb_path) snprintf(path, sizeof path, "%s", o->kb_path);
        else if (!path_join(path, sizeof path, a->data_dir, "kb/examples.jsonl")) { rc = NJ_ETOOBIG; goto fail; }
        a->kb = kb_load(path, NULL, &rc);
        if (!a->kb) goto fail;
        a->searcher = kb_searcher_new(a->kb, &rc);
        if (!a->searcher) goto fail;
    }
    if (o->backend) {
        remote_opts ro = {.spec = o->backend, .token = o->backend_token, .model = o->backend_model,
                          .timeout_ms = o->backend_timeout_ms, .retries = o->backend_retries};
        if (!(a->remote = remote_new(&ro, &rc))) goto fail;
        /* cache keys and rule verdicts name the backend until its model is known */
        snprintf(a->model_name, sizeof a->model_name, "%s", remote_name(a->remote));
        json_error_t je;
        a->schema = json_loads(analyst_verdict_schema, 0, &je);
        if (!a->schema) { rc = -ENOMEM; goto fail; }
    }
    a->capacity = o->cache_entries > 0 ? (size_t)o->cache_entries : 4096;
    a->n_buckets = 1;
    while (a->n_buckets < a->capacity * 2) a->n_buckets <<= 1;
    a->buckets = nj_calloc(a->n_buckets, sizeof *a->buckets);
    if (!a->buckets) { rc = -ENOMEM; goto fail; }
    if (err) *err = 0;
    return a;
fail:
    analyst_free(a);
    if (err) *err = rc ? rc : -ENOMEM;
    return NULL;
}

static void cache_clear(analyst *a) {
    centry *e = a->lru_head;
    while (e) {
        centry *n = e->next;
        json_decref(e->verdict);
        nj_free(e->key);
        nj_free(e);
        e = n;
    }
    a->lru_head = a->lru_tail = NULL;
    a->n_entries = 0;
    if (a->buckets) memset(a->buckets, 0, a->n_buckets * sizeof *a->buckets);
}

void analyst_free(analyst *a) {
    if (!a) return;
    cache_clear(a);
    nj_free(a->buckets);
    for (int l = 0; l < AV_NLABELS; l++) nj_grammar_free(a->grammar[l]);
    nj_grammar_free(a->grammar_any);
    kb_searcher_free(a->searcher);
    kb_free(a->kb);
    sigma_rules_free(a->rules);
    remote_free(a->remote);
    json_decref(a->schema);
    nj_free(a->system);
    rbuf_free(&a->text);
    rbuf_free(&a->user);
    rbuf_free(&a->key);
    rbuf_free(&a->query);
    rbuf_free(&a->gen);
    nj_free(a->toks);
    nj_free(a->logits);
    nj_free(a);
}

int analyst_rule_count(const analyst *a) { return a->rules ? sigma_rule_count(a->rules) : 0; }
int analyst_rule_skips(const analyst *a) { return a->rules ? sigma_skip_count(a->rules) : 0; }
void analyst_rule_skip(const analyst *a, int i, char *buf, size_t cap) {
    const sigma_skip *s = a->rules ? sigma_skip_at(a->rules, i) : NULL;
    snprintf(buf, cap, "%s: %s", s ? s->file : "?", s ? s->reason : "?");
}
const char *analyst_prompt_version(const analyst *a) { return a->prompt_version; }
void analyst_get_stats(const analyst *a, analyst_stats *out) {
    *out = a->st;
    if (a->remote) {
        remote_stats rs;
        remote_get_stats(a->remote, &rs);
        out->remote_requests = rs.requests;
        out->remote_retries = rs.retried;
        out->remote_failures = rs.failed;
    }
}
const char *analyst_backend(const analyst *a) { return a->remote ? remote_name(a->remote) : NULL; }

/* ---- verdict cache ---- */

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static void lru_unlink(analyst *a, centry *e) {
    if (e->prev) e->prev->next = e->next;
    else a->lru_head = e->next;
    if (e->next) e->next->prev = e->prev;
    else a->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(analyst *a, centry *e) {
    e->next = a->lru_head;
    e->prev = NULL;
    if (a->lru_head) a->lru_head->prev = e;
    a->lru_head = e;
    if (!a->lru_tail) a->lru_tail = e;
}

static centry *cache_find(analyst *a, const char *key, size_t n) {
    uint64_t h = fnv1a(key, n);
    for (centry *e = a->buckets[h & (a->n_buckets - 1)]; e; e = e->next_hash)
        if (e->hash == h && !strcmp(e->key, key)) {
            lru_unlink(a, e);
            lru_front(a, e);
            return e;
        }
    return NULL;
}

static void cache_drop(analyst *a, centry *e) {
    centry **pp = &a->buckets[e->hash & (a->n_buckets - 1)];
    while (*pp != e) pp = &(*pp)->next_hash;
    *pp = e->next_hash;
    lru_unlink(a, e);
    json_decref(e->verdict);
    nj_free(e->key);
    nj_free(e);
    a->n_entries--;
}

/* Store a copy of v under key (best effort: out of memory just skips). */
static void cache_put(analyst *a, const char *key, size_t n, const json_t *v) {
    if (a->o.no_cache) return;
    centry *e = nj_calloc(1, sizeof *e);
    if (!e) return;
    e->key = nj_strndup(key, n);
    e->verdict = json_deep_copy(v);
    if (!e->key || !e->verdict) {
        json_decref(e->verdict);
        nj_free(e->key);
        nj_free(e);
        return;
    }
    e->hash = fnv1a(key, n);
    if (a->n_entries >= a->capacity && a->lru_tail) cache_drop(a, a->lru_tail);
    centry **b = &a->buckets[e->hash & (a->n_buckets - 1)];
    e->next_hash = *b;
    *b = e;
    lru_front(a, e);
    a->n_entries++;
}

/* ---- verdict JSON ---- */

const char *analyst_technique_id(const char *t) {
    for (size_t i = 0; t && i < NJ_ARRAY_LEN(attack_renamed); i++)
        if (!strcmp(t, attack_renamed[i][0])) return attack_renamed[i][1];
    return t;
}

/* Append technique t (renamed ids mapped) unless present or 8 are there.
 * 0, or -ENOMEM. */
static int push_technique(json_t *arr, const char *t) {
    t = analyst_technique_id(t);
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) if (!strcmp(json_string_value(x), t)) return 0;
    if (json_array_size(arr) < 8 && json_array_append_new(arr, json_string(t))) return -ENOMEM;
    return 0;
}

static json_t *verdict_new(int label, double confidence, const char *source) {
    /* event_id first: verdicts are dumped in insertion order */
    return json_pack("{s:s, s:s, s:f, s:[], s:s, s:s, s:[]}", "event_id", "", "verdict", analyst_label_names[label],
                     "confidence", round(confidence * 1000) / 1000, "techniques", "summary", "",
                     "source", source, "rule_ids");
}

static int label_of(const json_t *v) {
    const char *s = json_string_value(json_object_get(v, "verdict"));
    for (int l = 0; l < AV_NLABELS; l++)
        if (s && !strcmp(s, analyst_label_names[l])) return l;
    return AV_BENIGN;
}

/* ---- stage 1: rules ---- */

/* Authentication rules that need the agent's aggregation (counts over a
 * window), which Sigma's single-event rules cannot express:
 *   nightjar-auth-guessing: >= 10 failures from one address in one window
 *     (auth.count), suspicious: password guessing, or spraying when more
 *     than one user was tried;
 *   nightjar-auth-success-after-failures: a success from an address that
 *     failed >= 5 times just before (auth.after_failures), malicious.
 * A verdict (new) or NULL. */
static int auth_rules(const json_t *ev, json_t **out) {
    *out = NULL;
    const char *kind = event_get_str(ev, EF_KIND);
    if (!kind || strcmp(kind, "auth")) return 0;
    const char *res = event_get_str(ev, EF_AUTH_RESULT);
    long long count = 0, after = 0;
    event_get_int(ev, EF_AUTH_COUNT, &count);
    event_get_int(ev, EF_AUTH_AFTER_FAILURES, &after);
    const char *id = NULL, *tech = NULL, *sum = NULL;
    int label = AV_BENIGN;
    if (res && !strcmp(res, "success") && after >= 5) {
        label = AV_MALICIOUS;
        id = "nightjar-auth-success-after-failures";
        tech = "T1110";
        sum = "A login succeeded from an address right after repeated failures: a guessed password.";
    } else if (res && !strcmp(res, "failure") && count >= 10) {
        json_t *users = event_get(ev, EF_AUTH_USERS);
        bool spray = json_is_array(users) && json_array_size(users) > 1;
        label = AV_SUSPICIOUS;
        id = "nightjar-auth-guessing";
        tech = spray ? "T1110.003" : "T1110.001";
        sum = spray ? "Many failed logins for several users from one address: password spraying."
                    : "Many failed logins for one user from one address: password guessing.";
    }
    if (label == AV_BENIGN) return 0;
    json_t *v = verdict_new(label, 0.95, "rule");
    if (!v || json_array_append_new(json_object_get(v, "rule_ids"), json_string(id)) ||
        json_array_append_new(json_object_get(v, "techniques"), json_string(tech)) ||
        json_object_set_new(v, "summary", json_string(sum))) {
        json_decref(v);
        return -ENOMEM;
    }
    *out = v;
    return 0;
}

/* The strongest decision of the rules that match: *out is a new verdict,
 * or NULL when no rule decides.  0, or -ENOMEM (never a missing verdict:
 * out of memory must not read as "no rule matched"). */
static int rules_judge(analyst *a, const json_t *ev, json_t **out) {
    *out = NULL;
    if (!a->rules) return 0;
    int rc = auth_rules(ev, out);
    if (rc || *out) return rc;
    sigma_hit hits[MAX_HITS];
    /* an auditd exec event is also matched as its SYSCALL record */
    int n = sigma_match_event(a->rules, ev, hits, MAX_HITS);
    if (n > MAX_HITS) n = MAX_HITS;
    int best = -1, label = AV_BENIGN;
    for (int i = 0; i < n; i++) {
        int l = hits[i].level >= SIGMA_HIGH ? AV_MALICIOUS : hits[i].level == SIGMA_MEDIUM ? AV_SUSPICIOUS : AV_BENIGN;
        if (l > label || (l == label && l > AV_BENIGN && best >= 0 && hits[i].level > hits[best].level)) {
            label = l;
            best = i;
        }
    }
    if (label == AV_BENIGN) return 0;
    json_t *v = verdict_new(label, hits[best].level >= SIGMA_CRITICAL ? 0.99 : 0.95, "rule");
    if (!v) return -ENOMEM;
    json_t *tech = json_object_get(v, "techniques"), *ids = json_object_get(v, "rule_ids");
    rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int l = hits[i].level >= SIGMA_HIGH ? AV_MALICIOUS : hits[i].level == SIGMA_MEDIUM ? AV_SUSPICIOUS : AV_BENIGN;
        if (l != label) continue;
        if (json_array_append_new(ids, json_string(hits[i].id))) rc = -ENOMEM;
        for (int t = 0; t < hits[i].n_techniques && !rc; t++) rc = push_technique(tech, hits[i].techniques[t]);
    }
    char sum[256];
    snprintf(sum, sizeof sum, "Sigma rule \"%.180s\" (%s) matched.", hits[best].title,
             sigma_level_name(hits[best].level));
    if (rc || json_object_set_new(v, "summary", json_string(sum))) {
        json_decref(v);
        return -ENOMEM;
    }
    *out = v;
    return 0;
}

/* ---- stage 3: the model ---- */

static int ensure_toks(analyst *a, int n) {
    if (n <= a->toks_cap) return 0;
    int cap = a->toks_cap ? a->toks_cap : 1024;
    while (cap < n) cap *= 2;
    int32_t *t = nj_realloc(a->toks, (size_t)cap * sizeof *t);
    if (!t) return -ENOMEM;
    a->toks = t;
    a->toks_cap = cap;
    return 0;
}

/* The retrieval vote: each of the knn_k nearest examples adds its BM25
 * score to its label; shares of the total in a->knn (have_knn false when
 * no example shares a token with the event). */
static void knn_vote(analyst *a, const char *q, size_t qn) {
    a->have_knn = false;
    memset(a->knn, 0, sizeof a->knn);
    kb_hit *hits = a->knn_hits;
    int nh = q ? kb_query(a->searcher, q, qn, a->knn_k, NULL, hits) : 0;
    a->n_knn_hits = nh > 0 ? nh : 0;
    double sum[AV_NLABELS] = {0}, tot = 0;
    for (int i = 0; i < nh; i++) {
        const kb_entry *e = kb_entry_at(a->kb, hits[i].index);
        sum[e->label] += hits[i].score;
        tot += hits[i].score;
    }
    if (tot <= 0) return;
    for (int l = 0; l < AV_NLABELS; l++) a->knn[l] = (float)(sum[l] / tot);
    a->have_knn = true;
}

/* The techniques of a model verdict from its retrieval neighbours: for a
 * suspicious or malicious verdict, the ids of the nearest examples that are
 * not benign themselves and scored at least KNN_TECHNIQUE_SHARE of the
 * nearest one, nearest first, at most KNN_TECHNIQUES.  A benign verdict
 * gets none, and so does an event without a command line or program path
 * (an auth or network event's query is a few words the base, made of
 * command lines, only matches by accident).  The ids are the knowledge
 * base's, which cites ATT&CK for each: grounded, where a small model's
 * generated ids often are not.
 * 0 or -ENOMEM. */
static int knn_techniques(analyst *a, int label, json_t *tech) {
    if (label == AV_BENIGN || a->n_knn_hits == 0 || !a->knn_cmd) return 0;
    float min_score = a->knn_hits[0].score * KNN_TECHNIQUE_SHARE;
    for (int i = 0; i < a->n_knn_hits && json_array_size(tech) < KNN_TECHNIQUES; i++) {
        const kb_entry *e = kb_entry_at(a->kb, a->knn_hits[i].index);
        if (a->knn_hits[i].score < min_score) break;
        if (!e || e->label == KB_BENIGN || !e->technique || !*e->technique) continue;
        int rc = push_technique(tech, e->technique);
        if (rc) return rc;
    }
    return 0;
}

/* The user message: examples, then the fenced event. */
static int build_user(analyst *a, const json_t *ev, int rule_hint) {
    rbuf *u = &a->user;
    rbuf_reset(u);
    a->have_knn = false;
    a->n_knn_hits = 0;
    a->knn_cmd = event_get_str(ev, EF_PROC_CMDLINE) || event_get_str(ev, EF_PROC_PATH);
    memset(a->knn, 0, sizeof a->knn);
    size_t qn = 0;
    const char *q = a->searcher ? render_query(&a->query, ev, &qn) : NULL;
    if (q) knn_vote(a, q, qn);
    if (q && a->n_examples > 0) {
        kb_hit hits[MAX_EXAMPLES];
        kb_query_opts qo = {.diversity = a->diversity};
        int nh = q ? kb_query(a->searcher, q, qn, a->n_examples, &qo, hits) : 0;
        if (nh > 0) {
            rbuf_puts(u, "Labelled examples of similar commands:\n");
            /* most similar last, nearest to the event */
            for (int i = nh - 1; i >= 0; i--) {
                const kb_entry *e = kb_entry_at(a->kb, hits[i].index);
                rbuf_puts(u, "- ");
                rbuf_put_quoted(u, e->cmd, strlen(e->cmd));
                rbuf_printf(u, " -> %s", kb_label_name((int)e->label));
                if (e->technique) rbuf_printf(u, " (%s)", e->technique);
                if (e->why && a->example_why) {
                    rbuf_puts(u, ": ");
                    rbuf_puts(u, e->why);
                }
                rbuf_puts(u, "\n");
            }
            rbuf_puts(u, "\n");
        }
    }
    if (rule_hint == AV_SUSPICIOUS)
        rbuf_puts(u, "A detection rule already rates this event at least suspicious.\n\n");
    rbuf_puts(u, "<event>\n");
    rbuf_reset(&a->text);
    int rc = render_event(&a->text, ev, false);
    if (rc) return rc;
    rbuf_put(u, a->text.s, a->text.len);
    rbuf_puts(u, "</event>");
    return u->oom ? -ENOMEM : 0;
}

static const char verdict_prefix[] = "{\"verdict\": \"";

/* Prompt tokens into a->toks: chat(system, user) + the assistant's opening
 * of the verdict document.  Returns the count or < 0. */
/* The chat template for m: the file's own, or for a file that names none
 * (base models and some conversions) its family's (gemma) or ChatML, with
 * a warning once per model. */
static const char *template_for(analyst *a, const nj_model *m) {
    if (a->tmpl_model == m) return a->tmpl_name;
    nj_model_desc d;
    nj_model_describe(m, &d);
    a->tmpl_model = m;
    a->tmpl_name = NULL;
    if (!d.chat_template) {
        a->tmpl_name = strncmp(d.arch, "gemma", 5) == 0 ? "gemma" : "chatml";
        NJ_WARN("%s: no chat template nightjar knows in the file; the analyst uses %s", d.name, a->tmpl_name);
    }
    return a->tmpl_name;
}

static int build_prompt(analyst *a, nj_model *m, int n_ctx) {
    nj_chat_msg msgs[2] = {{"system", a->system}, {"user", a->user.s}};
    const char *tmpl = template_for(a, m);
    int n = nj_chat_tokenize(m, tmpl, msgs, 2, true, a->toks, a->toks_cap);
    if (n > a->toks_cap) {
        if (ensure_toks(a, n + 64)) return -ENOMEM;
        n = nj_chat_tokenize(m, tmpl, msgs, 2, true, a->toks, a->toks_cap);
    }
    if (n < 0) return n;
    if (ensure_toks(a, n + 64)) return -ENOMEM;
    int k = nj_tokenize(m, verdict_prefix, strlen(verdict_prefix), false, false, a->toks + n, 64);
    if (k < 0 || k > 64) return k < 0 ? k : NJ_ESTATE;
    n += k;
    if (n + GEN_MAX + 8 > n_ctx)
        return nj_fail(NJ_ECTX, "the event's prompt (%d tokens) does not fit the context (%d)", n, n_ctx);
    return n;
}

static int ensure_grammars(analyst *a, const nj_model *m) {
    if (a->gmodel == m && a->grammar[0]) return 0;
    for (int l = 0; l < AV_NLABELS; l++) {
        nj_grammar_free(a->grammar[l]);
        a->grammar[l] = NULL;
    }
    nj_grammar_free(a->grammar_any);
    a->grammar_any = NULL;
    a->gmodel = m;
    for (int l = 0; l < AV_NLABELS; l++) {
        char schema[1024];
        /* the analyst's schema with the verdict fixed to the scored label */
        if (a->tech_retrieval)
            snprintf(schema, sizeof schema, SUMMARY_SCHEMA("{\"const\": \"%s\"}"), analyst_label_names[l]);
        else
            snprintf(schema, sizeof schema, VERDICT_SCHEMA("{\"const\": \"%s\"}"), analyst_label_names[l]);
        int err = 0;
        a->grammar[l] = nj_grammar_from_schema(m, schema, &err);
        if (!a->grammar[l]) return err;
    }
    int err = 0;
    a->grammar_any = nj_grammar_from_schema(m, analyst_verdict_schema, &err);
    return a->grammar_any ? 0 : err;
}

/* Ready for a walk from the verdict position: the logits scratch sized
 * for m, and g reset and walked over the verdict prefix the session
 * already holds.  0 or < 0. */
static int grammar_at_verdict(analyst *a, nj_model *m, nj_grammar *g) {
    nj_model_desc d;
    nj_model_describe(m, &d);
    if (!a->logits || a->n_vocab != d.n_vocab) {
        nj_free(a->logits);
        a->logits = nj_malloc((size_t)d.n_vocab * sizeof *a->logits);
        if (!a->logits) return -ENOMEM;
        a->n_vocab = d.n_vocab;
    }
    nj_grammar_reset(g);
    int32_t pre[64];
    int np = nj_tokenize(m, verdict_prefix, strlen(verdict_prefix), false, false, pre, 64);
    if (np < 0 || np > 64) return np < 0 ? np : NJ_ESTATE;
    for (int i = 0; i < np; i++) {
        int rc = nj_grammar_accept(g, pre[i]);
        if (rc) return nj_fail(rc, "verdict grammar refused its own prefix");
    }
    return 0;
}

/* The label greedy generation under the published schema would write at
 * the verdict position (the session's current logits): the best token the
 * grammar allows there.  The labels differ in their first byte, so that
 * token decides the label (the grammar forces the rest).  For measuring
 * label scoring against generation (explain).  The label index or < 0. */
static int generated_label(analyst *a, nj_model *m, nj_session *s) {
    int rc = ensure_grammars(a, m);
    if (rc) return rc;
    nj_grammar *g = a->grammar_any;
    if ((rc = grammar_at_verdict(a, m, g))) return rc;
    memcpy(a->logits, nj_session_logits(s), (size_t)a->n_vocab * sizeof *a->logits);
    int allowed = nj_grammar_mask(g, a->logits);
    if (allowed <= 0) return allowed < 0 ? allowed : NJ_ESTATE;
    int32_t best = 0;
    for (int v = 1; v < a->n_vocab; v++)
        if (a->logits[v] > a->logits[best]) best = v;
    char piece[64];
    int n = nj_token_to_piece(m, best, false, piece, sizeof piece);
    if (n <= 0 || n > (int)sizeof piece) return NJ_ESTATE;
    for (int l = 0; l < AV_NLABELS; l++)
        if (piece[0] == analyst_label_names[l][0]) return l;
    return NJ_ESTATE;
}

static int append_piece(analyst *a, nj_model *m, int32_t id) {
    char buf[256];
    int n = nj_token_to_piece(m, id, false, buf, sizeof buf);
    if (n < 0) return n;
    if ((size_t)n > sizeof buf) return NJ_ESTATE;
    rbuf_put(&a->gen, buf, (size_t)n);
    return a->gen.oom ? -ENOMEM : 0;
}

/* Generate the rest of the verdict document for `label` after the prompt
 * (which ends with the verdict prefix; its logits are current).  The
 * document's text ends up in a->gen.  0 or < 0. */
static int generate_rest(analyst *a, nj_model *m, nj_session *s, int label, int max_tokens) {
    int rc = ensure_grammars(a, m);
    if (rc) return rc;
    nj_grammar *g = a->grammar[label];
    rbuf_reset(&a->gen);
    if ((rc = grammar_at_verdict(a, m, g))) return rc;
    rbuf_puts(&a->gen, verdict_prefix);

    int32_t batch[64];
    int produced = 0;
    while (produced < max_tokens) {
        int nf = nj_grammar_forced(g, batch, (int)NJ_ARRAY_LEN(batch));
        if (nf < 0) return nf;
        if (nf == 0) {
            int done = nj_grammar_done(g);
            if (done == 2) break;
            memcpy(a->logits, nj_session_logits(s), (size_t)a->n_vocab * sizeof *a->logits);
            int allowed = nj_grammar_mask(g, a->logits);
            if (allowed < 0) return allowed;
            int32_t best = 0;
            for (int v = 1; v < a->n_vocab; v++)
                if (a->logits[v] > a->logits[best]) best = v;
            if (nj_token_is_eog(m, best)) break;   /* allowed only when complete */
            batch[0] = best;
            nf = 1;
        }
        for (int i = 0; i < nf; i++) {
            if ((rc = nj_grammar_accept(g, batch[i]))) return rc;
            if ((rc = append_piece(a, m, batch[i]))) return rc;
        }
        produced += nf;
        if (nj_grammar_done(g) == 2) break;
        if ((rc = nj_session_eval(s, batch, nf))) return rc;
        a->st.generated += (unsigned long long)nf;
    }
    a->gen_closed = false;
    if (nj_grammar_done(g) == 0) {
        /* out of budget: close the document the shortest way */
        a->gen_closed = true;
        int32_t close[64];
        int nc = nj_grammar_close(g, close, (int)NJ_ARRAY_LEN(close));
        if (nc < 0 || nc > (int)NJ_ARRAY_LEN(close)) return nc < 0 ? nc : NJ_ESTATE;
        for (int i = 0; i < nc; i++) {
            if ((rc = nj_grammar_accept(g, close[i]))) return rc;
            if ((rc = append_piece(a, m, close[i]))) return rc;
        }
    }
    return 0;
}

/* The labels' log-probabilities from the current logits alone: each
 * label's first token (the labels differ there, so under the verdict
 * grammar that token decides the label and the rest is forced).  No
 * forward pass.  0, or 1 when the labels share a first token for m (the
 * caller scores exactly instead), or < 0. */
static int first_token_scores(analyst *a, nj_model *m, nj_session *s, float *lp) {
    if (a->ftmodel != m) {
        a->ftmodel = m;
        a->ft_shared = false;
        for (int l = 0; l < AV_NLABELS; l++) {
            int32_t t[16];
            const char *name = analyst_label_names[l];
            int k = nj_tokenize(m, name, strlen(name), false, false, t, 16);
            if (k <= 0) {
                a->ftmodel = NULL;
                return k < 0 ? k : NJ_ESTATE;
            }
            a->first_tok[l] = t[0];
            for (int o = 0; o < l; o++)
                if (a->first_tok[o] == t[0]) a->ft_shared = true;
        }
        if (a->ft_shared) NJ_WARN("the verdict labels share a first token for this model; scoring them exactly");
    }
    if (a->ft_shared) return 1;
    nj_model_desc d;
    nj_model_describe(m, &d);
    const float *lg = nj_session_logits(s);
    float mx = lg[0];
    for (int v = 1; v < d.n_vocab; v++) mx = lg[v] > mx ? lg[v] : mx;
    double z = 0;
    for (int v = 0; v < d.n_vocab; v++) z += exp((double)lg[v] - mx);
    double lz = mx + log(z);
    for (int l = 0; l < AV_NLABELS; l++) lp[l] = (float)(lg[a->first_tok[l]] - lz);
    return 0;
}

/* The labels' log-probabilities into lp, the way the prompt (or the
 * caller's override) asks.  0 or < 0. */
static int score_labels(analyst *a, nj_model *m, nj_session *s, bool exact, float *lp) {
    if (!exact) {
        int rc = first_token_scores(a, m, s, lp);
        if (rc <= 0) return rc;
    }
    float probs[AV_NLABELS];
    int rc = nj_score_labels(s, analyst_label_names, AV_NLABELS, probs, lp);
    return rc < 0 ? rc : 0;
}

size_t analyst_word_cut(const char *s, size_t n) {
    size_t cut = n;
    while (cut > 0 && s[cut - 1] != ' ') cut--;
    while (cut > 0 && (s[cut - 1] == ' ' || s[cut - 1] == ',' || s[cut - 1] == ';' || s[cut - 1] == ':'))
        cut--;
    return cut >= 16 ? cut : n;
}

/* The model's verdict (new) for ev; rule_label is the rules' floor. */
static int model_judge(analyst *a, nj_model *m, nj_session *s, const json_t *ev, int rule_label,
                       json_t **out) {
    *out = NULL;
    /* the model reads the guard's view of the event (guard.h) */
    int hidden = 0, rc = 0;
    json_t *view = a->o.no_guard ? json_incref((json_t *)ev) : guard_event(ev, &hidden, &rc);
    if (!view) return rc;
    rc = build_user(a, view, rule_label);
    json_decref(view);
    if (rc) return rc;
    if (!a->toks && ensure_toks(a, 1024)) return -ENOMEM;
    int n = build_prompt(a, m, nj_session_n_ctx(s));
    if (n < 0) return n;
    int reused = 0;
    if ((rc = nj_session_eval_reuse(s, a->toks, n, &reused))) return rc;
    a->st.prompt_tokens += (unsigned long long)n;
    a->st.prompt_tokens_reused += (unsigned long long)reused;

    float probs[AV_NLABELS], lp[AV_NLABELS];
    bool exact = a->o.scoring ? a->o.scoring == ANALYST_SCORING_EXACT : a->exact_scoring;
    if ((rc = score_labels(a, m, s, exact, lp))) return rc;
    int label = 0;
    if (a->have_combiner) {
        /* features: the label log-probabilities renormalised over the
         * three labels, the retrieval vote, the rule's hint */
        double m3 = fmax(lp[0], fmax(lp[1], lp[2])), z3 = 0;
        for (int l = 0; l < AV_NLABELS; l++) z3 += exp(lp[l] - m3);
        float f[AV_NFEATURES];
        for (int l = 0; l < AV_NLABELS; l++) {
            f[l] = (float)(lp[l] - m3 - log(z3));
            f[3 + l] = a->have_knn ? a->knn[l] : 0.0f;
        }
        f[6] = a->have_knn ? 1.0f : 0.0f;
        f[7] = rule_label >= AV_SUSPICIOUS ? 1.0f : 0.0f;
        double zl[AV_NLABELS], mz = -INFINITY, zs = 0;
        for (int l = 0; l < AV_NLABELS; l++) {
            zl[l] = a->cb[l];
            for (int i = 0; i < AV_NFEATURES; i++) zl[l] += (double)a->cw[l][i] * f[i];
            mz = fmax(mz, zl[l]);
        }
        for (int l = 0; l < AV_NLABELS; l++) zs += exp(zl[l] - mz);
        for (int l = 0; l < AV_NLABELS; l++) {
            probs[l] = (float)(exp(zl[l] - mz) / zs);
            if (probs[l] > probs[label]) label = l;
        }
    } else {
        /* calibration: additive biases on the log-probabilities, softmax,
         * then the retrieval vote mixed in with its weight */
        double mx = -INFINITY, z = 0;
        for (int l = 0; l < AV_NLABELS; l++) mx = fmax(mx, lp[l] + a->bias[l]);
        for (int l = 0; l < AV_NLABELS; l++) z += exp(lp[l] + a->bias[l] - mx);
        float w = a->have_knn ? a->knn_weight : 0.0f;
        for (int l = 0; l < AV_NLABELS; l++) {
            probs[l] = (1.0f - w) * (float)(exp(lp[l] + a->bias[l] - mx) / z) + w * (a->have_knn ? a->knn[l] : 0.0f);
            if (probs[l] > probs[label]) label = l;
        }
    }
    if (label < rule_label) label = rule_label;   /* a rule is never lowered */

    json_t *v = verdict_new(label, probs[label], "model");
    if (!v) return -ENOMEM;
    if (a->tech_retrieval && (rc = knn_techniques(a, label, json_object_get(v, "techniques")))) {
        json_decref(v);
        return rc;
    }
    if (hidden > 0) json_object_set_new(v, "flags", json_pack("[s]", "prompt-injection"));
    json_object_set_new(v, "scores", json_pack("{s:f, s:f, s:f}", "benign", round(probs[0] * 1000) / 1000,
                                               "suspicious", round(probs[1] * 1000) / 1000,
                                               "malicious", round(probs[2] * 1000) / 1000));
    if (a->o.explain)   /* the raw evidence, for calibration */
        json_object_set_new(v, "explain", json_pack("{s:[f,f,f], s:[f,f,f], s:b, s:b, s:i, s:i}", "logprobs", lp[0],
                                                    lp[1], lp[2], "knn", a->knn[0], a->knn[1], a->knn[2],
                                                    "have_knn", a->have_knn, "rule_suspicious",
                                                    rule_label >= AV_SUSPICIOUS, "prompt_tokens", n,
                                                    "prompt_tokens_reused", reused));
    if (a->o.explain) {
        json_t *ex = json_object_get(v, "explain");
        json_object_set_new(ex, "hidden_spans", json_integer(hidden));
        bool was_exact = exact || (a->ftmodel == m && a->ft_shared);   /* shared first tokens fall back */
        json_object_set_new(ex, "scoring", json_string(was_exact ? "exact" : "first-token"));
        if (a->o.compare_scoring) {   /* the other way too, after the verdict */
            float lo[AV_NLABELS];
            if ((rc = score_labels(a, m, s, !exact, lo))) {
                json_decref(v);
                return rc;
            }
            json_object_set_new(ex, "logprobs_other", json_pack("[f,f,f]", lo[0], lo[1], lo[2]));
        }
        int gl = generated_label(a, m, s);
        if (gl < 0) {
            json_decref(v);
            return gl;
        }
        json_object_set_new(ex, "generated_label", json_string(analyst_label_names[gl]));
    }
    bool gen = !a->o.label_only && (a->o.full || label != AV_BENIGN);
    if (!gen) {
        char sum[128];
        snprintf(sum, sizeof sum, "Judged %s by the model (p = %.2f); no rule matched.",
                 analyst_label_names[label], probs[label]);
        json_object_set_new(v, "summary", json_string(sum));
    }
    if (gen) {
        rc = generate_rest(a, m, s, label, a->max_summary_tokens);
        if (rc) {
            json_decref(v);
            return rc;
        }
        json_error_t je;
        int perr = 0;
        json_t *doc = event_json_parse(a->gen.s, a->gen.len, 0, &je, &perr);
        if (!json_is_object(doc)) {
            json_decref(doc);
            json_decref(v);
            if (perr == -ENOMEM) return nj_fail(-ENOMEM, "out of memory while reading the generated verdict");
            return nj_fail(NJ_ESTATE, "the schema-bound verdict did not parse: %s", je.text);
        }
        json_t *tech = json_object_get(v, "techniques");
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(doc, "techniques"), i, t) push_technique(tech, json_string_value(t));
        const char *sm = json_string_value(json_object_get(doc, "summary"));
        if (a->gen_closed && sm) {
            /* cut by the budget mid-sentence: end at the last whole word */
            size_t n = strlen(sm), cut = analyst_word_cut(sm, n);
            if (cut < n) {
                char *t = nj_malloc(cut + 4);
                if (t) {
                    memcpy(t, sm, cut);
                    memcpy(t + cut, "\xe2\x80\xa6", 4);   /* U+2026 and the NUL */
                    json_object_set_new(v, "summary", json_string(t));
                    nj_free(t);
                    sm = NULL;
                }
            }
        }
        if (sm) json_object_set(v, "summary", json_object_get(doc, "summary"));
        json_decref(doc);
    }
    *out = v;
    return 0;
}

/* ---- stage 3 elsewhere: a remote backend (remote.h) ---- */

#define REMOTE_BATCH 16   /* events per /v1/analyze request (a nightjar's analyze_batch is 64) */

/* "BACKEND/MODEL", the model field of a remote verdict. */
static json_t *remote_model_json(analyst *a, const char *model) {
    char b[900];
    snprintf(b, sizeof b, "%s/%s", remote_name(a->remote), model && *model ? model : "unknown");
    return json_string(b);
}

/* A remote's techniques and summary into v: only ATT&CK-shaped ids
 * (T1234 or T1234.567, renumbered like a local model's), and the summary
 * cut to 400 bytes at a character boundary.  Whatever a server says is
 * untrusted text. */
static void remote_words(json_t *v, const json_t *techniques, const json_t *summary) {
    size_t i;
    json_t *t;
    json_array_foreach(techniques, i, t) {
        const char *x = json_string_value(t);
        size_t n = x ? strlen(x) : 0;
        bool ok = (n == 5 || (n == 9 && x[5] == '.')) && x[0] == 'T';
        for (size_t k = 1; ok && k < n; k++) ok = k == 5 || (x[k] >= '0' && x[k] <= '9');
        if (ok) push_technique(json_object_get(v, "techniques"), x);
    }
    const char *s = json_string_value(summary);
    if (!s) return;
    size_t n = strlen(s);
    if (n > 400) {
        n = 400;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    json_object_set_new(v, "summary", json_stringn(s, n));
}

/* A verdict of ours (new) from a remote nightjar's verdict rv, never below
 * rule_label.  NULL with NJ_EFORMAT when rv is not a verdict. */
static json_t *from_nightjar_verdict(analyst *a, const json_t *rv, int rule_label, int *err) {
    const char *lab = json_string_value(json_object_get(rv, "verdict"));
    int label = -1;
    for (int l = 0; l < AV_NLABELS; l++)
        if (lab && !strcmp(lab, analyst_label_names[l])) label = l;
    json_t *conf = json_object_get(rv, "confidence");
    if (label < 0 || !json_is_number(conf)) {
        *err = nj_fail(NJ_EFORMAT, "backend %s: an answer is not a verdict (no valid \"verdict\" and \"confidence\")",
                       remote_name(a->remote));
        return NULL;
    }
    double c = json_number_value(conf);
    if (label < rule_label) label = rule_label;   /* a rule is never lowered */
    json_t *v = verdict_new(label, c < 0 ? 0 : c > 1 ? 1 : c, "remote");
    if (!v) { *err = -ENOMEM; return NULL; }
    remote_words(v, json_object_get(rv, "techniques"), json_object_get(rv, "summary"));
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(rv, "rule_ids"), i, id)
        if (json_is_string(id) && i < 16) json_array_append(json_object_get(v, "rule_ids"), id);
    const char *rs = json_string_value(json_object_get(rv, "source"));
    json_object_set_new(v, "remote_source", json_string(rs ? rs : "unknown"));
    json_t *sc = json_object_get(rv, "scores");
    double p[AV_NLABELS];
    bool sc_ok = json_is_object(sc);
    for (int l = 0; sc_ok && l < AV_NLABELS; l++) {
        json_t *x = json_object_get(sc, analyst_label_names[l]);
        sc_ok = json_is_number(x) && (p[l] = json_number_value(x)) >= 0 && p[l] <= 1;
    }
    if (sc_ok)
        json_object_set_new(v, "scores", json_pack("{s:f, s:f, s:f}", "benign", p[0], "suspicious", p[1],
                                                   "malicious", p[2]));
    json_object_set_new(v, "model", remote_model_json(a, json_string_value(json_object_get(rv, "model"))));
    const char *pv = json_string_value(json_object_get(rv, "prompt"));
    json_object_set_new(v, "prompt", json_string(pv ? pv : a->prompt_version));
    *err = 0;
    return v;
}

/* The label's probabilities from an OpenAI-style logprobs block: the
 * candidates (top_logprobs) at the token where the verdict's value starts.
 * The position is found in the tokens' own text, which need not equal the
 * message content (llama-server may report tokens its JSON extraction
 * dropped, e.g. a code fence).  Servers report the distribution before
 * their grammar, i.e. what local label scoring reads too; a label missing
 * from the top candidates counts as 0.  true when at least one candidate
 * named a label (probs then sum to 1). */
static bool label_logprobs(const json_t *lp, float *probs) {
    json_t *toks = json_object_get(lp, "content");
    size_t nt = json_array_size(toks);
    if (nt == 0) return false;
    rbuf all = {0};
    size_t i;
    json_t *tk = NULL;
    json_array_foreach(toks, i, tk) {
        const char *text = json_string_value(json_object_get(tk, "token"));
        rbuf_puts(&all, text ? text : "");
    }
    bool ok = false;
    const char *k = all.oom || !all.s ? NULL : strstr(all.s, "\"verdict\"");
    const char *p = k ? k + 9 : NULL;
    if (p) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (*p == ':') {
            p++;
            while (*p == ' ' || *p == '\t' || *p == '\n') p++;
            ok = *p++ == '"';
        }
    }
    size_t at = ok ? (size_t)(p - all.s) : 0, off = 0;
    rbuf_free(&all);
    if (!ok) return false;
    json_array_foreach(toks, i, tk) {
        const char *text = json_string_value(json_object_get(tk, "token"));
        size_t n = text ? strlen(text) : 0;   /* as in the text built above */
        if (at < off + n) break;
        off += n;
    }
    if (i >= nt) return false;
    size_t skip = at - off;   /* bytes of the token before the value */
    double mass[AV_NLABELS] = {0}, tot = 0;
    size_t j;
    json_t *cand;
    json_array_foreach(json_object_get(tk, "top_logprobs"), j, cand) {
        const char *text = json_string_value(json_object_get(cand, "token"));
        json_t *l = json_object_get(cand, "logprob");
        if (!text || !json_is_number(l) || strlen(text) <= skip) continue;
        const char *rest = text + skip;
        size_t rn = strlen(rest);
        for (int lab = 0; lab < AV_NLABELS; lab++) {
            size_t ln = strlen(analyst_label_names[lab]);
            /* a prefix of the label ("mal"), or the label and what follows ("benign\"") */
            if (!strncmp(rest, analyst_label_names[lab], rn < ln ? rn : ln)) {
                mass[lab] += exp(json_number_value(l));
                tot += exp(json_number_value(l));
                break;
            }
        }
    }
    if (tot <= 0) return false;
    for (int lab = 0; lab < AV_NLABELS; lab++) probs[lab] = (float)(mass[lab] / tot);
    return true;
}

/* A chat completion's answer (resp, borrowed) as our verdict (new, in
 * *out), never below rule_label: the content must be a verdict document;
 * with want_lp the label's log-probabilities are read when present. */
static int openai_answer(analyst *a, const json_t *resp, bool want_lp, const char *model, int rule_label,
                         json_t **out) {
    *out = NULL;
    int rc;
    json_t *choice = json_array_get(json_object_get(resp, "choices"), 0);
    const char *content = json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    json_error_t je;
    json_t *doc = content ? event_json_parse(content, strlen(content), 0, &je, NULL) : NULL;
    const char *lab = json_string_value(json_object_get(doc, "verdict"));
    int label = -1;
    for (int l = 0; l < AV_NLABELS; l++)
        if (lab && !strcmp(lab, analyst_label_names[l])) label = l;
    if (label < 0) {
        rc = nj_fail(NJ_EFORMAT, "backend %s: the answer's content is not a verdict document: %.120s",
                     remote_name(a->remote), content ? content : "(no content)");
        json_decref(doc);
        return rc;
    }
    /* With the server's log-probabilities the label is decided as for a
     * local model: the retrieval vote mixed in, the rule's floor (the
     * prompt's label biases are not applied: they calibrate the local
     * model, not whatever the server runs).  Without them the
     * generated label counts as certain and the vote only lowers the
     * confidence. */
    float pm[AV_NLABELS] = {0}, probs[AV_NLABELS];
    bool have_lp = want_lp && label_logprobs(json_object_get(choice, "logprobs"), pm);
    int gen_label = label;
    if (!have_lp) pm[label] = 1.0f;
    float w = a->have_knn ? a->knn_weight : 0.0f;
    for (int l = 0; l < AV_NLABELS; l++) probs[l] = (1.0f - w) * pm[l] + w * (a->have_knn ? a->knn[l] : 0.0f);
    if (have_lp)
        for (int l = 0; l < AV_NLABELS; l++)
            if (probs[l] > probs[label]) label = l;
    if (label < rule_label) label = rule_label;
    json_t *v = verdict_new(label, probs[label], "remote");
    if (!v) { json_decref(doc); return -ENOMEM; }
    if (have_lp)
        json_object_set_new(v, "scores", json_pack("{s:f, s:f, s:f}", "benign", round(probs[0] * 1000) / 1000,
                                                   "suspicious", round(probs[1] * 1000) / 1000,
                                                   "malicious", round(probs[2] * 1000) / 1000));
    if (label != gen_label) {
        /* the words were written for another label: keep only the label */
        char sum[160];
        snprintf(sum, sizeof sum, "Judged %s by the model (p = %.2f).", analyst_label_names[label], probs[label]);
        json_object_set_new(doc, "summary", json_string(sum));
        json_object_set_new(doc, "techniques", json_array());
    }
    remote_words(v, json_object_get(doc, "techniques"), json_object_get(doc, "summary"));
    const char *rm = json_string_value(json_object_get(resp, "model"));
    json_object_set_new(v, "model", remote_model_json(a, model && model[0] ? model : rm));
    json_object_set_new(v, "prompt", json_string(a->prompt_version));
    json_decref(doc);
    *out = v;
    return 0;
}

/* The verdict (new) of an OpenAI-compatible server for ev: this analyst's
 * own messages, the verdict schema as response_format, temperature 0. */
static int openai_judge(analyst *a, const json_t *ev, int rule_label, json_t **out) {
    *out = NULL;
    int rc = build_user(a, ev, rule_label);
    if (rc) return rc;
    const char *model = remote_model(a->remote);
    for (int tries = 0;; tries++) {
        bool want_lp = remote_want_logprobs(a->remote);
        json_t *req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:f, s:i, s:{s:s, s:{s:s, s:b, s:O}}}",
                                "model", model[0] ? model : "default", "messages", "role", "system", "content",
                                a->system, "role", "user", "content", a->user.s, "temperature", 0.0,
                                "max_tokens", 256, "response_format", "type", "json_schema", "json_schema",
                                "name", "verdict", "strict", 1, "schema", a->schema);
        if (req && want_lp) {
            json_object_set_new(req, "logprobs", json_true());
            json_object_set_new(req, "top_logprobs", json_integer(20));
        }
        char *body = req ? event_json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body) return -ENOMEM;
        json_t *resp = NULL;
        long status = 0;
        rc = remote_post(a->remote, "/v1/chat/completions", body, strlen(body), &resp, &status);
        nj_free(body);
        if (rc == -EINVAL && status == 400 && want_lp && tries == 0) {
            /* e.g. nightjar refuses logprobs: ask without them from now on */
            remote_no_logprobs(a->remote);
            continue;
        }
        if (rc) return rc;
        rc = openai_answer(a, resp, want_lp, model, rule_label, out);
        json_decref(resp);
        return rc;
    }
}

int analyst_remote_answer(analyst *a, const char *text, size_t n, int rule_label, json_t **out) {
    *out = NULL;
    if (!a->remote) return nj_fail(NJ_ESTATE, "the analyst has no backend");
    if (rule_label < AV_BENIGN || rule_label > AV_MALICIOUS) return nj_fail(-EINVAL, "rule_label out of range");
    json_error_t je;
    int err = 0;
    json_t *doc = event_json_load(text, n, 0, &je, &err);
    if (!doc) return err == -ENOMEM ? err : nj_fail(NJ_EFORMAT, "not JSON: %s", je.text);
    int rc = 0;
    if (remote_get_kind(a->remote) == REMOTE_NIGHTJAR) {
        *out = from_nightjar_verdict(a, doc, rule_label, &rc);
    } else {
        a->have_knn = false;
        rc = openai_answer(a, doc, true, NULL, rule_label, out);
    }
    json_decref(doc);
    return rc;
}

/* ---- the pipeline ---- */

/* One event's way through analyst_judge_batch. */
typedef struct jstate {
    const json_t *ev;
    json_t       *v;           /* the verdict so far (a rule's), then the final one */
    json_t       *rule_ids;    /* the rules' verdict's ids, or NULL */
    int           rule_label;
    bool          need_model;
    char         *key;         /* cache key (nj_malloc'd), or NULL */
    size_t        key_len;
    double        t0, t1;      /* started, decided */
    int           rc;
} jstate;

/* Stages 1 and 2: rules, then the cache.  Sets need_model when neither
 * decided and a model (local or remote) can. */
static void judge_cheap(analyst *a, jstate *j, bool have_model) {
    j->t0 = nj_now();
    a->st.events++;
    json_t *v = NULL;
    if (rules_judge(a, j->ev, &v)) {
        j->rc = nj_fail(-ENOMEM, "out of memory while matching the rules");
        j->t1 = nj_now();
        return;
    }
    j->rule_label = v ? label_of(v) : AV_BENIGN;
    j->rule_ids = v ? json_incref(json_object_get(v, "rule_ids")) : NULL;
    if (v && j->rule_label == AV_MALICIOUS) {
        a->st.by_rule++;
    } else if (!have_model) {
        if (!v) {
            v = verdict_new(AV_BENIGN, 0.5, "rule");
            if (v && json_object_set_new(v, "summary", json_string("No rule matched."))) {
                json_decref(v);
                v = NULL;
            }
        }
        a->st.by_rule++;
    } else {
        /* cache key: model, prompt, settings, the masked event */
        rbuf_reset(&a->key);
        rbuf_printf(&a->key, "%s\n%s\n%d %d %d %d\n", a->model_name, a->prompt_version, a->n_examples,
                    j->rule_label, a->o.label_only, a->o.full);
        int rc = render_event(&a->key, j->ev, true);
        centry *hit = NULL;
        if (!rc && !a->o.no_cache) {
            a->st.cache_lookups++;
            hit = cache_find(a, a->key.s, a->key.len);
        }
        if (hit) {
            json_decref(v);
            v = json_deep_copy(hit->verdict);
            if (v && json_object_set_new(v, "source", json_string("cache"))) {
                json_decref(v);
                v = NULL;
            }
            a->st.by_cache++;
        } else {
            j->need_model = true;
            if (!rc && !a->key.oom && !a->o.no_cache) {
                j->key = nj_strndup(a->key.s, a->key.len);
                j->key_len = j->key ? a->key.len : 0;
            }
        }
    }
    j->v = v;
    j->t1 = nj_now();
    if (!v && !j->need_model && !j->rc) j->rc = nj_fail(-ENOMEM, "out of memory while writing the verdict");
}

/* The model's verdict mv (taken over) decides j, unless it only agrees
 * with the rule (then the rule decided). */
static void take_model(analyst *a, jstate *j, json_t *mv) {
    j->need_model = false;
    j->t1 = nj_now();
    if (j->v && label_of(mv) == j->rule_label) {
        json_decref(mv);
        a->st.by_rule++;
        return;
    }
    json_decref(j->v);
    j->v = mv;
    if (j->rule_ids && json_object_set(mv, "rule_ids", j->rule_ids)) {
        json_decref(mv);
        j->v = NULL;
        j->rc = nj_fail(-ENOMEM, "out of memory while writing the verdict");
        return;
    }
    if (a->remote) a->st.by_remote++;
    else a->st.by_model++;
    if (j->key) cache_put(a, j->key, j->key_len, mv);
}

/* A remote nightjar judges js[0..n)'s open events, REMOTE_BATCH at a time
 * in order.  A 413 halves the batch; a 400 on a batch of several is retried
 * one event per request, so one refused event holds back no other.  Stops
 * at the first unavailable backend (the rest keep rc NJ_ENET). */
static void nightjar_judge(analyst *a, jstate *js, size_t n) {
    size_t per = REMOTE_BATCH;
    size_t idx[REMOTE_BATCH];
    size_t i = 0;
    int down = 0;
    while (i < n) {
        size_t k = 0, next = i;
        for (; next < n && k < per; next++)
            if (js[next].need_model && !js[next].rc) idx[k++] = next;
        if (k == 0) break;
        if (down) {
            for (size_t q = 0; q < k; q++) js[idx[q]].rc = down;
            i = next;
            continue;
        }
        json_t *arr = json_array();
        for (size_t q = 0; arr && q < k; q++)
            if (json_array_append(arr, (json_t *)js[idx[q]].ev)) { json_decref(arr); arr = NULL; }
        json_t *req = arr ? json_pack("{s:o}", "events", arr) : NULL;
        char *body = req ? event_json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        json_t *resp = NULL;
        long status = 0;
        int rc = body ? remote_post(a->remote, "/v1/analyze", body, strlen(body), &resp, &status) : -ENOMEM;
        nj_free(body);
        if (rc == -EINVAL && (status == 413 || status == 400) && k > 1) {
            per = status == 413 ? (k / 2 ? k / 2 : 1) : 1;   /* the same events again, fewer at a time */
            continue;
        }
        json_t *vs = json_object_get(resp, "verdicts");
        if (!rc && (!json_is_array(vs) || json_array_size(vs) != k))
            rc = nj_fail(NJ_EFORMAT, "backend %s: /v1/analyze answered %zu verdicts for %zu events",
                         remote_name(a->remote), json_array_size(vs), k);
        for (size_t q = 0; q < k; q++) {
            jstate *j = &js[idx[q]];
            if (rc) { j->rc = rc; continue; }
            int err = 0;
            json_t *mv = from_nightjar_verdict(a, json_array_get(vs, q), j->rule_label, &err);
            if (mv) take_model(a, j, mv);
            else j->rc = err;
        }
        json_decref(resp);
        if (rc == NJ_ENET) down = rc;
        i = next;
    }
}

int analyst_judge_batch(analyst *a, nj_model *m, nj_session *s, const json_t *const *events, size_t n,
                        json_t **verdicts) {
    for (size_t i = 0; i < n; i++) verdicts[i] = NULL;
    if (n == 0) return 0;
    jstate *js = nj_calloc(n, sizeof *js);
    if (!js) return nj_fail(-ENOMEM, "out of memory while judging");
    bool have_model = (m && s) || a->remote;
    for (size_t i = 0; i < n; i++) {
        js[i].ev = events[i];
        judge_cheap(a, &js[i], have_model);
    }
    if (a->remote && remote_get_kind(a->remote) == REMOTE_NIGHTJAR) {
        nightjar_judge(a, js, n);
    } else {
        int down = 0;
        for (size_t i = 0; i < n; i++) {
            jstate *j = &js[i];
            if (!j->need_model || j->rc) continue;
            if (down) { j->rc = down; continue; }
            json_t *mv = NULL;
            int rc = a->remote ? openai_judge(a, j->ev, j->rule_label, &mv)
                               : model_judge(a, m, s, j->ev, j->rule_label, &mv);
            if (rc) {
                j->rc = rc;
                if (rc == NJ_ENET) down = rc;   /* the backend is down: do not wait on it per event */
            } else {
                take_model(a, j, mv);
            }
        }
    }
    int first = 0;
    char why[512] = "";
    for (size_t i = 0; i < n; i++) {
        jstate *j = &js[i];
        if (!j->rc && (!j->v || j->need_model)) j->rc = nj_fail(-ENOMEM, "out of memory while judging");
        if (j->rc) {
            if (!first) {
                first = j->rc;
                snprintf(why, sizeof why, "%s", nj_last_error());
            }
            json_decref(j->v);
        } else {
            json_t *v = j->v;
            const char *id = event_get_str(j->ev, EF_ID);
            if (json_object_set_new(v, "event_id", json_string(id ? id : "")) ||
                (!json_object_get(v, "model") && json_object_set_new(v, "model", json_string(a->model_name))) ||
                (!json_object_get(v, "prompt") &&
                 json_object_set_new(v, "prompt", json_string(a->prompt_version))) ||
                json_object_set_new(v, "latency_ms", json_real(round((j->t1 - j->t0) * 1e4) / 10))) {
                /* a verdict with a key left out is no verdict */
                json_decref(v);
                if (!first) {
                    first = -ENOMEM;
                    snprintf(why, sizeof why, "out of memory while writing the verdict");
                }
            } else {
                verdicts[i] = v;
            }
        }
        json_decref(j->rule_ids);
        nj_free(j->key);
    }
    nj_free(js);
    if (first) nj_set_error("%s", why);
    return first;
}

int analyst_judge(analyst *a, nj_model *m, nj_session *s, const json_t *ev, json_t **verdict) {
    return analyst_judge_batch(a, m, s, &ev, 1, verdict);
}
