/*
 * cli_run — `nightjar run`: load a model, evaluate a prompt, stream the
 * continuation to stdout.  Also the hook the conformance scripts use:
 * --prompt-ids feeds token ids directly (no tokenizer involved), --ids
 * prints generated ids instead of text, --dump-logits writes the logits
 * behind every sampling decision as raw little-endian f32 rows.
 *
 * --schema FILE / --json-object bind the output to a grammar: the forced
 * continuation is fed in one batch (fast-forward), the rest is sampled
 * under the grammar's mask, and a document that runs out of -n budget is
 * finished with the grammar's shortest completion.  --runs N repeats the
 * generation N times (seeds seed, seed+1, ...) from the same evaluated
 * prompt, one document per line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nightjar.h"
#include "grammar.h"
#include "sampler.h"
#include "session.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar run -m MODEL.gguf (-p PROMPT | --prompt-ids \"1 2 3\") [options]\n"
        "  -n N                 tokens to generate (default 128; 0 = only evaluate the prompt)\n"
        "  --temp T             temperature (default 0.8; <= 0 greedy)\n"
        "  --top-k K            (default 40; 0 off)\n"
        "  --top-p P            (default 0.95; 1 off)\n"
        "  --min-p P            (default 0.05; 0 off)\n"
        "  --repeat-penalty R   (default 1.0 = off)\n"
        "  --repeat-last-n N    penalty window (default 64)\n"
        "  --seed S             RNG seed (default random)\n"
        "  -t THREADS           compute threads (default 2)\n"
        "  -c CTX               context size (default 4096)\n"
        "  --kv TYPE            KV cache type: f16 (default), q8_0 or q4_0\n"
        "  -b BATCH             prefill chunk (default 256)\n"
        "  --chat               wrap the prompt as a user message in the model's chat template\n"
        "  --system TEXT        system message for --chat\n"
        "  --chat-template NAME the template for --chat (chatml, llama3, gemma, ...; default: the model's)\n"
        "  --ids                print generated token ids instead of text\n"
        "  --ignore-eos         keep generating past end-of-generation tokens\n"
        "  --dump-logits FILE   write logits as raw f32 rows of n_vocab: the prompt's last position,\n"
        "                       then one row after each generated token that is fed back\n"
        "  --all-logits         with --dump-logits: a row for every prompt position instead of the last\n"
        "  --schema FILE        generate one JSON document valid under the JSON schema in FILE\n"
        "  --json-object        generate one JSON object (any keys)\n"
        "  --runs N             with --schema/--json-object: N documents, seeds S, S+1, ... (default 1)\n"
        "  -v                   print timings to stderr\n");
}

static int parse_int(const char *s, int *out) {
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < -2147483647L || v > 2147483647L) return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *s, float *out) {
    char *e;
    errno = 0;
    float v = strtof(s, &e);
    if (errno || e == s || *e) return -1;
    *out = v;
    return 0;
}

/* "1 2 3" or "1,2,3" -> ids; returns count or -1. */
static int parse_ids(const char *s, int32_t **out) {
    int cap = 16, n = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    if (!ids) return -1;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n') s++;
        if (!*s) break;
        char *e;
        errno = 0;
        long v = strtol(s, &e, 10);
        if (errno || e == s || v < 0 || v > 0x7fffffffL) { free(ids); return -1; }
        if (n == cap) {
            cap *= 2;
            int32_t *t = realloc(ids, sizeof *ids * (size_t)cap);
            if (!t) { free(ids); return -1; }
            ids = t;
        }
        ids[n++] = (int32_t)v;
        s = e;
    }
    *out = ids;
    return n;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            char *t = realloc(buf, cap * 2);
            if (!t) { free(buf); buf = NULL; break; }
            buf = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

typedef struct gen_stats { long tokens, evals, forced, saved, closed, docs; } gen_stats;

static void put_token(const nj_model *m, int32_t id, bool print_ids, bool first) {
    char piece[256];
    if (print_ids) { printf("%s%d", first ? "" : " ", id); return; }
    int len = nj_token_to_piece(m, id, false, piece, sizeof piece);
    if (len > 0) fwrite(piece, 1, (size_t)(len < (int)sizeof piece ? len : (int)sizeof piece), stdout);
}

/* One grammar-bound document from the session's current logits.  Returns 0
 * or < 0 (message printed). */
static int gen_constrained(const nj_model *m, nj_session *s, nj_sampler *smp, nj_grammar *g,
                           int n_vocab, int n_predict, bool print_ids, gen_stats *st) {
    int32_t ids[256];
    int n_gen = 0, err;
    while (n_gen < n_predict) {
        int k = nj_grammar_forced(g, ids, (int)NJ_ARRAY_LEN(ids));
        if (k < 0) { err = k; goto fail; }
        if (k > n_predict - n_gen) k = n_predict - n_gen;
        if (k > 0) {
            for (int i = 0; i < k; i++) {
                if ((err = nj_grammar_accept(g, ids[i]))) goto fail;
                nj_sampler_accept(smp, ids[i]);
                put_token(m, ids[i], print_ids, n_gen + i == 0);
            }
            n_gen += k;
            st->forced += k;
            if (nj_grammar_done(g) == 2 || n_gen >= n_predict) break;
            if ((err = nj_session_eval(s, ids, k))) goto fail;
            st->evals++;
            st->saved += k - 1;
            continue;
        }
        if (nj_grammar_done(g) == 2) break;
        int32_t id = nj_sampler_sample(smp, nj_session_logits(s), n_vocab);
        if (id < 0) { err = id; goto fail; }
        if ((err = nj_grammar_accept(g, id))) goto fail;
        nj_sampler_accept(smp, id);
        if (nj_token_is_eog(m, id)) break;
        put_token(m, id, print_ids, n_gen == 0);
        n_gen++;
        if (nj_grammar_done(g) == 2 || n_gen >= n_predict) break;
        if ((err = nj_session_eval(s, &id, 1))) goto fail;
        st->evals++;
    }
    st->tokens += n_gen;
    if (nj_grammar_done(g) == 0) {
        /* out of budget: finish with the shortest completion */
        int k = nj_grammar_close(g, ids, (int)NJ_ARRAY_LEN(ids));
        if (k < 0) { err = k; goto fail; }
        if (k > (int)NJ_ARRAY_LEN(ids)) { err = nj_fail(NJ_ETOOBIG, "completion too long"); goto fail; }
        for (int i = 0; i < k; i++) {
            if ((err = nj_grammar_accept(g, ids[i]))) goto fail;
            put_token(m, ids[i], print_ids, false);
        }
        st->closed++;
    }
    st->docs++;
    printf("\n");
    fflush(stdout);
    return 0;
fail:
    fprintf(stderr, "\nnightjar run: constrained generation: %s: %s\n", nj_strerror(err), nj_last_error());
    return err;
}

static int write_rows(FILE *f, const float *rows, size_t n_floats) {
    return fwrite(rows, sizeof(float), n_floats, f) == n_floats ? 0 : -1;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_ids = NULL, *dump_path = NULL;
    const char *system_msg = NULL, *schema_path = NULL, *chat_tmpl = NULL;
    bool json_object = false;
    int n_runs = 1;
    int n_predict = 128, n_threads = 2, n_ctx = 4096, n_batch = 256, kv_type = NJ_KV_F16;
    bool chat = false, print_ids = false, ignore_eos = false, all_logits = false, verbose = false;
    nj_sampler_params sp;
    nj_sampler_default_params(&sp);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
#define NEEDV() do { if (!v) { fprintf(stderr, "nightjar run: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEEDV(); model_path = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { NEEDV(); prompt = v; }
        else if (!strcmp(a, "--prompt-ids")) { NEEDV(); prompt_ids = v; }
        else if (!strcmp(a, "-n")) { NEEDV(); bad = parse_int(v, &n_predict); }
        else if (!strcmp(a, "--temp")) { NEEDV(); bad = parse_float(v, &sp.temp); }
        else if (!strcmp(a, "--top-k")) { NEEDV(); bad = parse_int(v, &sp.top_k); }
        else if (!strcmp(a, "--top-p")) { NEEDV(); bad = parse_float(v, &sp.top_p); }
        else if (!strcmp(a, "--min-p")) { NEEDV(); bad = parse_float(v, &sp.min_p); }
        else if (!strcmp(a, "--repeat-penalty")) { NEEDV(); bad = parse_float(v, &sp.repeat_penalty); }
        else if (!strcmp(a, "--repeat-last-n")) { NEEDV(); bad = parse_int(v, &sp.repeat_last_n); }
        else if (!strcmp(a, "--seed")) {
            NEEDV();
            char *e;
            errno = 0;
            unsigned long long s = strtoull(v, &e, 10);
            bad = errno || e == v || *e;
            sp.seed = s;
        }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { NEEDV(); bad = parse_int(v, &n_threads) || n_threads < 1; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { NEEDV(); bad = parse_int(v, &n_ctx) || n_ctx < 1; }
        else if (!strcmp(a, "--kv")) { NEEDV(); kv_type = nj_kv_type_from_name(v); bad = kv_type < 0; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) { NEEDV(); bad = parse_int(v, &n_batch) || n_batch < 1; }
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "--system")) { NEEDV(); system_msg = v; }
        else if (!strcmp(a, "--chat-template")) { NEEDV(); chat_tmpl = v; }
        else if (!strcmp(a, "--ids")) print_ids = true;
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = true;
        else if (!strcmp(a, "--dump-logits")) { NEEDV(); dump_path = v; }
        else if (!strcmp(a, "--all-logits")) all_logits = true;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) verbose = true;
        else if (!strcmp(a, "--schema")) { NEEDV(); schema_path = v; }
        else if (!strcmp(a, "--json-object")) json_object = true;
        else if (!strcmp(a, "--runs")) { NEEDV(); bad = parse_int(v, &n_runs) || n_runs < 1; }
        else { fprintf(stderr, "nightjar run: unknown option '%s'\n", a); usage(stderr); return 2; }
#undef NEEDV
        if (bad) { fprintf(stderr, "nightjar run: bad value for %s: '%s'\n", a, v); return 2; }
    }
    if (!model_path || (!prompt && !prompt_ids) || (prompt && prompt_ids) || n_predict < 0 ||
        (schema_path && json_object) || ((schema_path || json_object) && (dump_path || ignore_eos))) {
        usage(stderr);
        return 2;
    }

    int rc = 1, err = 0;
    nj_model *m = NULL;
    nj_session *s = NULL;
    nj_sampler *smp = NULL;
    int32_t *ids = NULL;
    char *text = NULL;
    float *rows = NULL;
    FILE *dump = NULL;
    int n_ids = 0;
    nj_grammar *gram = NULL;
    char *schema = NULL;
    float *prompt_logits = NULL;

    nj_model_params mp = {.n_threads = n_threads};
    double t0 = nj_now();
    m = nj_model_load(model_path, &mp, &err);
    if (!m) {
        fprintf(stderr, "nightjar run: cannot load %s: %s: %s\n", model_path, nj_strerror(err),
                nj_last_error());
        goto out;
    }
    nj_model_desc d;
    nj_model_describe(m, &d);
    double t_load = nj_now() - t0;

    if (prompt_ids) {
        n_ids = parse_ids(prompt_ids, &ids);
        if (n_ids < 0) { fprintf(stderr, "nightjar run: bad --prompt-ids\n"); rc = 2; goto out; }
    } else {
        const char *src = prompt;
        if (chat) {
            nj_chat_msg msgs[2];
            int nm = 0;
            if (system_msg) msgs[nm++] = (nj_chat_msg){"system", system_msg};
            msgs[nm++] = (nj_chat_msg){"user", prompt};
            int len = nj_chat_apply(m, chat_tmpl, msgs, nm, true, NULL, 0);
            if (len >= 0) {
                text = malloc((size_t)len + 1);
                if (!text) goto out;
                len = nj_chat_apply(m, chat_tmpl, msgs, nm, true, text, (size_t)len + 1);
            }
            if (len < 0) {
                fprintf(stderr, "nightjar run: chat template: %s: %s\n", nj_strerror(len), nj_last_error());
                goto out;
            }
            src = text;
        }
        int n = nj_tokenize(m, src, strlen(src), true, true, NULL, 0);
        if (n >= 0) {
            ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1));
            if (!ids) goto out;
            n = nj_tokenize(m, src, strlen(src), true, true, ids, n);
        }
        if (n < 0) {
            fprintf(stderr, "nightjar run: tokenize: %s: %s\n", nj_strerror(n), nj_last_error());
            goto out;
        }
        n_ids = n;
    }
    if (n_ids == 0) { fprintf(stderr, "nightjar run: empty prompt\n"); rc = 2; goto out; }
    if (schema_path) {
        schema = read_file(schema_path);
        if (!schema) { fprintf(stderr, "nightjar run: cannot read %s\n", schema_path); goto out; }
        gram = nj_grammar_from_schema(m, schema, &err);
    } else if (json_object) {
        gram = nj_grammar_json_object(m, &err);
    }
    if ((schema_path || json_object) && !gram) {
        fprintf(stderr, "nightjar run: schema: %s: %s\n", nj_strerror(err), nj_last_error());
        rc = err == NJ_EUNSUPPORTED || err == NJ_EFORMAT ? 3 : 1;
        goto out;
    }

    nj_session_params ps = {.n_ctx = n_ctx, .kv_type = kv_type, .n_batch = n_batch, .n_threads = n_threads};
    s = nj_session_new(m, &ps, &err);
    if (!s) {
        fprintf(stderr, "nightjar run: session: %s: %s\n", nj_strerror(err), nj_last_error());
        goto out;
    }
    smp = nj_sampler_new(&sp, &err);
    if (!smp) {
        fprintf(stderr, "nightjar run: sampler: %s: %s\n", nj_strerror(err), nj_last_error());
        goto out;
    }
    for (int i = 0; i < n_ids; i++) nj_sampler_accept(smp, ids[i]);

    if (dump_path) {
        dump = fopen(dump_path, "wb");
        if (!dump) { fprintf(stderr, "nightjar run: cannot write %s\n", dump_path); goto out; }
    }
    const size_t V = (size_t)d.n_vocab;
    if (dump && all_logits) {
        rows = malloc(sizeof(float) * V * (size_t)n_ids);
        if (!rows) { fprintf(stderr, "nightjar run: out of memory for all logits\n"); goto out; }
    }

    double t1 = nj_now();
    err = session_eval_ex(s, ids, n_ids, rows);
    if (err) {
        fprintf(stderr, "nightjar run: eval: %s: %s\n", nj_strerror(err), nj_last_error());
        goto out;
    }
    double t_prompt = nj_now() - t1;
    /* rows: every prompt position (--all-logits) or the last one, then one
     * per generated token that is fed back */
    if (dump && write_rows(dump, rows ? rows : nj_session_logits(s), rows ? V * (size_t)n_ids : V))
        goto io_err;

    if (gram) {
        gen_stats gs = {0};
        prompt_logits = malloc(sizeof(float) * V);
        if (!prompt_logits) goto out;
        memcpy(prompt_logits, nj_session_logits(s), sizeof(float) * V);
        double t3 = nj_now();
        for (int r = 0; r < n_runs; r++) {
            if (r > 0) {
                /* same prompt, fresh grammar state and sampler seed */
                nj_sampler_free(smp);
                nj_sampler_params rp = sp;
                if (sp.seed != NJ_SEED_RANDOM) rp.seed = sp.seed + (uint64_t)r;
                smp = nj_sampler_new(&rp, &err);
                if (!smp) goto out;
                for (int i = 0; i < n_ids; i++) nj_sampler_accept(smp, ids[i]);
                if ((err = nj_session_truncate(s, n_ids))) goto out;
                session_set_logits(s, prompt_logits);
                nj_grammar_reset(gram);
            }
            nj_sampler_set_grammar(smp, gram);
            if (gen_constrained(m, s, smp, gram, d.n_vocab, n_predict, print_ids, &gs)) goto out;
        }
        if (verbose) {
            double tg = nj_now() - t3;
            grammar_counters gc;
            grammar_get_counters(gram, &gc);
            fprintf(stderr, "load %.2f s | prompt %d tok %.3f s | %ld docs, %ld tokens in %.3f s, "
                    "%ld forward passes (%ld tokens forced, %ld passes saved), %ld closed at the budget | "
                    "masks: %ld calls, %.1f us each (%d walks, %.1f us each; %d cache hits) | "
                    "automaton: %d NFA / %d DFA states, %d byte classes\n",
                    t_load, n_ids, t_prompt, gs.docs, gs.tokens, tg, gs.evals, gs.forced, gs.saved,
                    gs.closed, gc.n_mask_calls, gc.n_mask_calls ? gc.mask_us / gc.n_mask_calls : 0.0,
                    gc.g.n_masks_built, gc.g.n_masks_built ? gc.g.mask_build_us / gc.g.n_masks_built : 0.0,
                    gc.g.n_mask_hits, gc.g.n_nfa, gc.g.n_dfa, gc.g.n_classes);
        }
        rc = 0;
        goto out;
    }

    char piece[256];
    int n_gen = 0;
    double t2 = nj_now();
    for (; n_gen < n_predict; n_gen++) {
        const float *lg = nj_session_logits(s);
        if (dump && n_gen > 0 && write_rows(dump, lg, V)) goto io_err;
        int32_t id = nj_sampler_sample(smp, lg, d.n_vocab);
        if (id < 0) {
            fprintf(stderr, "nightjar run: sample: %s: %s\n", nj_strerror(id), nj_last_error());
            goto out;
        }
        nj_sampler_accept(smp, id);
        bool eog = nj_token_is_eog(m, id);
        if (print_ids) {
            printf("%s%d", n_gen ? " " : "", id);
        } else if (!eog) {
            int len = nj_token_to_piece(m, id, false, piece, sizeof piece);
            if (len > 0) fwrite(piece, 1, (size_t)(len < (int)sizeof piece ? len : (int)sizeof piece), stdout);
        }
        fflush(stdout);
        if (eog && !ignore_eos) { n_gen++; break; }
        if (n_gen + 1 == n_predict) { n_gen++; break; }   /* no need to evaluate the last one */
        err = nj_session_eval(s, &id, 1);
        if (err) {
            fprintf(stderr, "\nnightjar run: eval: %s: %s\n", nj_strerror(err), nj_last_error());
            goto out;
        }
    }
    double t_gen = nj_now() - t2;
    if (print_ids || n_gen) printf("\n");
    if (verbose) {
        fprintf(stderr, "load %.2f s | prompt %d tok %.3f s (%.1f tok/s) | gen %d tok %.3f s (%.1f tok/s)\n",
                t_load, n_ids, t_prompt, n_ids / (t_prompt > 0 ? t_prompt : 1e-9), n_gen, t_gen,
                n_gen > 1 ? (n_gen - 1) / (t_gen > 0 ? t_gen : 1e-9) : 0.0);
    }
    rc = 0;
    goto out;
io_err:
    fprintf(stderr, "nightjar run: write error on %s\n", dump_path);
    rc = 1;
out:
    if (dump && fclose(dump) && rc == 0) { fprintf(stderr, "nightjar run: write error on %s\n", dump_path); rc = 1; }
    free(rows);
    free(prompt_logits);
    free(schema);
    nj_grammar_free(gram);
    free(ids);
    free(text);
    nj_sampler_free(smp);
    nj_session_free(s);
    nj_model_free(m);
    return rc;
}
