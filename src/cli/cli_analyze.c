/*
 * cli_analyze — `nightjar analyze`: judge events from a file or stdin and
 * print one verdict JSON line per event, no server needed.
 *
 * Input: canonical events (one JSON object a line, docs/event.md) or plain
 * command lines, told apart line by line; or, with --format, a source's own
 * log format read by the agent's parsers (eslogger, auditd, osquery, sysmon,
 * sshd, jsonl), whose verdicts carry their canonical event under "event".
 * --parse-only prints the canonical events instead of judging them.
 *
 * The model, session and analyst set up here (cli_judge_*) are shared with
 * `nightjar eval` (cli_eval.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyst.h"
#include "cli.h"
#include "event.h"
#include "modelcache.h"
#include "parse.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar analyze [options] FILE|-\n"
        "  -m MODEL           model name or path (default qwen2.5-coder-1.5b, else smollm2)\n"
        "  --no-model         rules only: events no rule decides are benign\n"
        "  --rules PATH       more Sigma rules (a file or a directory, e.g. a SigmaHQ checkout)\n"
        "  --no-rules         skip the Sigma rules\n"
        "  --no-retrieval     no labelled examples in the prompt\n"
        "  --no-guard         let the model read instruction-like text and comments (measuring)\n"
        "  --label-only       never generate techniques and summary\n"
        "  --full             always generate them (benign verdicts too)\n"
        "  --examples N       labelled examples per prompt (default: the prompt's own)\n"
        "  --scoring first-token|exact  how the labels are scored (default: the prompt's own)\n"
        "  --backend SPEC     judge on another server instead of loading a model (rules still run\n"
        "                     here): nightjar+http://HOST:PORT (another nightjar's /v1/analyze) or\n"
        "                     openai+http://HOST:PORT[/v1] (an OpenAI-compatible server, e.g.\n"
        "                     llama-server); +https and +unix:/PATH too (docs/agent.md)\n"
        "  --backend-token T  Bearer token for it (else $NIGHTJAR_BACKEND_TOKEN)\n"
        "  --backend-model M  openai: the model to ask for (default: the server's first)\n"
        "  --backend-timeout MS  per request (120000); transient failures are retried 3 times\n"
        "  --format F         input in a source's format: %s\n"
        "  --parse-only       with --format: print canonical events, judge nothing\n"
        "  --table            after the verdicts, a summary table on stderr\n"
        "  --prompt DIR       prompt folder (default <data>/prompts/analyst-v4)\n"
        "  -t THREADS -c CTX  compute threads (2), context size (4096)\n"
        "Input without --format: each line a canonical event (JSON) or a command line.\n",
        "eslogger auditd osquery sysmon sshd jsonl");
}

/* ---- shared with eval ---- */

int cli_judge_open(cli_judge *j) {
    char path[1024];
    int err = 0;
    if (j->opts.backend && !j->opts.backend_token) {
        const char *t = getenv("NIGHTJAR_BACKEND_TOKEN");
        if (t && *t) j->opts.backend_token = t;
    }
    if (j->opts.backend && j->no_model) {
        fprintf(stderr, "nightjar: --backend and --no-model contradict each other\n");
        return 2;
    }
    if (!j->no_model && !j->opts.backend) {
        const char *name = j->model_arg;
        if (!name) {
            name = "qwen2.5-coder-1.5b";
            if (modelcache_find(name, NULL, path, sizeof path) != 0) name = MODELCACHE_DEFAULT;
        }
        err = modelcache_find(name, NULL, path, sizeof path);
        if (err) {
            fprintf(stderr, "nightjar: %s\n", nj_last_error());
            return 1;
        }
        nj_model_params mp = {.n_threads = j->threads};
        j->model = nj_model_load(path, &mp, &err);
        if (!j->model) {
            fprintf(stderr, "nightjar: cannot load %s: %s (%s)\n", path, nj_last_error(), nj_strerror(err));
            return 1;
        }
        nj_session_params sp = {.n_ctx = j->ctx, .n_threads = j->threads};
        j->session = nj_session_new(j->model, &sp, &err);
        if (!j->session) {
            fprintf(stderr, "nightjar: cannot create a session: %s (%s)\n", nj_last_error(), nj_strerror(err));
            return 1;
        }
        const char *base = strrchr(path, '/');
        snprintf(j->model_name, sizeof j->model_name, "%s", base ? base + 1 : path);
        j->opts.model_name = j->model_name;
    }
    j->analyst = analyst_new(&j->opts, &err);
    if (!j->analyst) {
        fprintf(stderr, "nightjar: cannot set up the analyst: %s (%s)\n", nj_last_error(), nj_strerror(err));
        return 1;
    }
    if (analyst_rule_skips(j->analyst) > 0 && j->verbose) {
        for (int i = 0; i < analyst_rule_skips(j->analyst); i++) {
            char b[512];
            analyst_rule_skip(j->analyst, i, b, sizeof b);
            fprintf(stderr, "rule skipped: %s\n", b);
        }
    }
    return 0;
}

void cli_judge_close(cli_judge *j) {
    analyst_free(j->analyst);
    nj_session_free(j->session);
    nj_model_free(j->model);
    j->analyst = NULL;
    j->session = NULL;
    j->model = NULL;
}

/* Common options; returns 1 if argv[*i] was one (consuming its value), 0 if
 * not, -1 on a bad value. */
int cli_judge_option(cli_judge *j, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "-m") && v) { j->model_arg = v; ++*i; }
    else if (!strcmp(a, "--no-model")) j->no_model = true;
    else if (!strcmp(a, "--rules") && v) { j->opts.rules_path = v; ++*i; }
    else if (!strcmp(a, "--no-rules")) j->opts.no_rules = true;
    else if (!strcmp(a, "--no-retrieval")) j->opts.no_retrieval = true;
    else if (!strcmp(a, "--no-guard")) j->opts.no_guard = true;
    else if (!strcmp(a, "--label-only")) j->opts.label_only = true;
    else if (!strcmp(a, "--full")) j->opts.full = true;
    else if (!strcmp(a, "--no-cache")) j->opts.no_cache = true;
    else if (!strcmp(a, "--prompt") && v) { j->opts.prompt_dir = v; ++*i; }
    else if (!strcmp(a, "--backend") && v) { j->opts.backend = v; ++*i; }
    else if (!strcmp(a, "--backend-token") && v) { j->opts.backend_token = v; ++*i; }
    else if (!strcmp(a, "--backend-model") && v) { j->opts.backend_model = v; ++*i; }
    else if (!strcmp(a, "--backend-timeout") && v) {
        char *e;
        long n = strtol(v, &e, 10);
        if (*e || n < 1 || n > 3600000) return -1;
        j->opts.backend_timeout_ms = (int)n;
        ++*i;
    }
    else if (!strcmp(a, "--examples") && v) { j->opts.n_examples = atoi(v); ++*i; }
    else if (!strcmp(a, "--scoring") && v) {
        if (!strcmp(v, "first-token")) j->opts.scoring = ANALYST_SCORING_FIRST;
        else if (!strcmp(v, "exact")) j->opts.scoring = ANALYST_SCORING_EXACT;
        else return -1;
        ++*i;
    }
    else if (!strcmp(a, "--compare-scoring")) j->opts.compare_scoring = true;
    else if ((!strcmp(a, "-t") || !strcmp(a, "-c")) && v) {
        char *e;
        long n = strtol(v, &e, 10);
        if (*e || n < 1 || n > (1 << 20)) return -1;
        if (a[1] == 't') j->threads = (int)n;
        else j->ctx = (int)n;
        ++*i;
    } else if (!strcmp(a, "-v")) j->verbose = true;
    else return 0;
    return 1;
}

void cli_judge_defaults(cli_judge *j) {
    memset(j, 0, sizeof *j);
    j->threads = 2;
    j->ctx = 4096;
}

/* ---- analyze ---- */

#define ANALYZE_BATCH 16   /* events per backend request */

typedef struct run {
    cli_judge *j;
    bool       parse_only, with_event;
    long       n, errors;
    long       by_label[AV_NLABELS];
    double     ms_total;
    json_t    *q[ANALYZE_BATCH];   /* events waiting to be judged together (remote backend) */
    size_t     nq;
} run;

/* Print one verdict (taken over). */
static int print_verdict(run *r, json_t *v, json_t *ev) {
    if (r->with_event) json_object_set(v, "event", ev);
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    const char *lab = json_string_value(json_object_get(v, "verdict"));
    for (int l = 0; l < AV_NLABELS; l++)
        if (lab && !strcmp(lab, analyst_label_names[l])) r->by_label[l]++;
    r->ms_total += json_number_value(json_object_get(v, "latency_ms"));
    json_decref(v);
    if (!s) return -ENOMEM;
    printf("%s\n", s);
    fflush(stdout);
    nj_free(s);   /* jansson allocates through nj_malloc (event_init) */
    r->n++;
    return 0;
}

/* Judge the queued events in one batch and print their verdicts in order. */
static int flush_queue(run *r) {
    if (r->nq == 0) return 0;
    json_t *v[ANALYZE_BATCH];
    int rc = analyst_judge_batch(r->j->analyst, r->j->model, r->j->session, (const json_t *const *)r->q, r->nq, v);
    int out = 0;
    for (size_t i = 0; i < r->nq; i++) {
        if (v[i]) {
            if (!out) out = print_verdict(r, v[i], r->q[i]);
            else json_decref(v[i]);
        } else {
            const char *id = event_get_str(r->q[i], EF_ID);
            fprintf(stderr, "nightjar analyze: event %s: %s (%s)\n", id ? id : "?", nj_last_error(), nj_strerror(rc));
            r->errors++;
        }
        json_decref(r->q[i]);
    }
    r->nq = 0;
    return out;
}

/* Judge ev (borrowed) and print its verdict: at once with a local model,
 * in batches of ANALYZE_BATCH with a remote backend (order kept). */
static int judge_print(run *r, json_t *ev) {
    if (r->parse_only) {
        char *s = event_dump(ev, NULL);
        if (!s) return -ENOMEM;
        printf("%s\n", s);
        nj_free(s);
        r->n++;
        return 0;
    }
    r->q[r->nq++] = json_incref(ev);
    if (r->nq < (r->j->opts.backend ? ANALYZE_BATCH : 1)) return 0;
    return flush_queue(r);
}

static int emit_cb(void *ctx, json_t *ev) {
    int rc = judge_print(ctx, ev);
    json_decref(ev);
    return rc;
}

static void error_cb(void *ctx, const char *source, long lineno, const char *reason) {
    run *r = ctx;
    r->errors++;
    fprintf(stderr, "nightjar analyze: %s:%ld: %s\n", source, lineno, reason);
}

int cmd_analyze(int argc, char **argv) {
    cli_judge j;
    cli_judge_defaults(&j);
    const char *file = NULL, *format = NULL;
    bool parse_only = false, table = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = cli_judge_option(&j, argc, argv, &i);
        if (k < 0) { fprintf(stderr, "nightjar analyze: bad value for %s\n", a); return 2; }
        if (k > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--format") && i + 1 < argc) format = argv[++i];
        else if (!strcmp(a, "--parse-only")) parse_only = true;
        else if (!strcmp(a, "--table")) table = true;
        else if ((a[0] != '-' || !strcmp(a, "-")) && !file) file = a;
        else { fprintf(stderr, "nightjar analyze: unknown option '%s'\n", a); usage(stderr); return 2; }
    }
    if (!file) { usage(stderr); return 2; }
    if (parse_only && !format) { fprintf(stderr, "nightjar analyze: --parse-only needs --format\n"); return 2; }
    FILE *in = strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (!in) { fprintf(stderr, "nightjar analyze: %s: %s\n", file, strerror(errno)); return 1; }
    if (parse_only) j.no_model = true;
    event_init();
    int rc = parse_only ? 0 : cli_judge_open(&j);
    run r = {.j = &j, .parse_only = parse_only, .with_event = format != NULL};
    parser *p = NULL;
    if (!rc && format) {
        parser_opts po = {.emit = emit_cb, .on_error = error_cb, .ctx = &r, .source_name = file};
        int err = 0;
        p = parser_new(format, &po, &err);
        if (!p) {
            fprintf(stderr, "nightjar analyze: %s\n", nj_last_error());
            rc = 2;
        }
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    while (!rc && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (p) {
            int e = parser_feed(p, line, (size_t)len, lineno);
            if (e) { fprintf(stderr, "nightjar analyze: %s\n", nj_strerror(e)); rc = 1; }
            continue;
        }
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        size_t s = 0;
        while (s < n && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s == n) continue;
        int err = 0;
        json_t *ev = line[s] == '{' ? event_parse(line + s, n - s, &err)
                                    : event_from_cmdline(line + s, n - s, lineno, &err);
        if (!ev) {
            error_cb(&r, file, lineno, nj_last_error());
            continue;
        }
        if (judge_print(&r, ev)) rc = 1;
        json_decref(ev);
    }
    if (p && !rc) parser_flush(p);
    if (!rc && flush_queue(&r)) rc = 1;
    parser_free(p);
    free(line);
    if (in != stdin) fclose(in);
    if (table && !parse_only) {
        fprintf(stderr, "\n| verdict | events |\n| --- | ---: |\n");
        for (int l = 0; l < AV_NLABELS; l++) fprintf(stderr, "| %s | %ld |\n", analyst_label_names[l], r.by_label[l]);
        if (j.analyst) {
            analyst_stats st;
            analyst_get_stats(j.analyst, &st);
            fprintf(stderr, "\n%ld events in %.0f ms (%.0f ms each): %llu by rules, %llu by the model, %llu from the cache; "
                    "%ld input errors; model %s, prompt %s\n", r.n, r.ms_total, r.n ? r.ms_total / (double)r.n : 0.0,
                    st.by_rule, st.by_model + st.by_remote, st.by_cache, r.errors,
                    analyst_backend(j.analyst) ? analyst_backend(j.analyst) : j.no_model ? "none" : j.model_name,
                    analyst_prompt_version(j.analyst));
        }
    }
    cli_judge_close(&j);
    if (rc) return rc;
    return r.errors ? 1 : 0;
}
