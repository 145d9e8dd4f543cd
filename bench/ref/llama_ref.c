/*
 * llama_ref — reference outputs from llama.cpp's own library, for
 * scripts/conformance-tokenizer and bench/tokenize only.  It is NOT part of
 * nightjar: it links the peer's prebuilt libllama and calls its public C API
 * (llama_tokenize, llama_chat_apply_template) so our output can be compared
 * with llama.cpp's without spawning one llama-tokenize per string.
 *
 *   llama_ref tokenize MODEL FILE [--no-special-add] [--parse-special] [--repeat N]
 *       FILE: texts separated by "\n__ggml_vocab_test__\n"; one line of ids each.
 *       Adds BOS/EOS when the model asks (like llama-tokenize) unless
 *       --no-special-add.
 *   llama_ref chat MODEL CONV [--template NAME] [--prompt] [--no-assistant]
 *       CONV: messages "role\ncontent" separated by "\n__nj_msg__\n".
 *       Renders with llama_chat_apply_template (the model's template unless
 *       --template) and prints the prompt (--prompt) or its ids
 *       (add_special as llama-tokenize, parse_special = true).
 *   llama_ref render TEMPLATE_FILE CONV
 *       Render CONV with the template text in TEMPLATE_FILE (no model);
 *       prints the prompt, or "UNSUPPORTED" when llama.cpp returns -1.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

static void quiet(enum ggml_log_level l, const char *t, void *u) { (void)l; (void)t; (void)u; }

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(1); }
    fclose(f);
    s[n] = 0;
    *len = (size_t)n;
    return s;
}

static int tokenize(const struct llama_vocab *v, const char *s, size_t n, int add, int parse, llama_token **out) {
    int cap = (int)n + 16;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    int k = llama_tokenize(v, s, (int32_t)n, ids, cap, add, parse);
    if (k < 0) {
        cap = -k;
        ids = realloc(ids, sizeof *ids * (size_t)cap);
        k = llama_tokenize(v, s, (int32_t)n, ids, cap, add, parse);
    }
    *out = ids;
    return k;
}

static void print_ids(const llama_token *ids, int n) {
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
}

static int parse_conv(char *buf, size_t len, struct llama_chat_message *m, int max) {
    static const char sep[] = "\n__nj_msg__\n";
    int n = 0;
    char *p = buf, *end = buf + len;
    while (p < end && n < max) {
        char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        char *e = q ? q : end;
        *e = 0;
        char *nl = strchr(p, '\n');
        if (!nl) { m[n].role = p; m[n].content = e; }
        else { *nl = 0; m[n].role = p; m[n].content = nl + 1; }
        n++;
        if (!q) break;
        p = q + sizeof sep - 1;
    }
    return n;
}

static char *render(const char *tmpl, struct llama_chat_message *m, int n, int add_ass, int *len) {
    int cap = 1 << 16;
    char *buf = malloc((size_t)cap);
    int k = llama_chat_apply_template(tmpl, m, (size_t)n, add_ass, buf, cap);
    if (k > cap) {
        cap = k + 1;
        buf = realloc(buf, (size_t)cap);
        k = llama_chat_apply_template(tmpl, m, (size_t)n, add_ass, buf, cap);
    }
    *len = k;
    return buf;
}

static struct llama_model *load(const char *path) {
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) { fprintf(stderr, "llama_ref: cannot load %s\n", path); exit(1); }
    return model;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: see the comment in llama_ref.c\n"); return 2; }
    const char *cmd = argv[1];

    if (!strcmp(cmd, "render")) {
        size_t tl, cl;
        char *tmpl = slurp(argv[2], &tl);
        char *conv = slurp(argv[3], &cl);
        struct llama_chat_message m[256];
        int n = parse_conv(conv, cl, m, 256);
        int len;
        char *p = render(tmpl, m, n, 1, &len);
        if (len < 0) printf("UNSUPPORTED");
        else fwrite(p, 1, (size_t)len, stdout);
        return 0;
    }

    struct llama_model *model = load(argv[2]);
    const struct llama_vocab *v = llama_model_get_vocab(model);
    int add = llama_vocab_get_add_bos(v);

    if (!strcmp(cmd, "tokenize")) {
        int parse = 0, repeat = 0;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "--no-special-add")) add = 0;
            else if (!strcmp(argv[i], "--parse-special")) parse = 1;
            else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        }
        size_t len;
        char *buf = slurp(argv[3], &len);
        if (repeat > 0) {   /* whole file as one text, timed */
            llama_token *ids;
            int n = 0;
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            for (int r = 0; r < repeat; r++) { n = tokenize(v, buf, len, add, parse, &ids); free(ids); }
            clock_gettime(CLOCK_MONOTONIC, &b);
            double dt = ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9) / repeat;
            fprintf(stderr, "tokenize: %zu bytes -> %d tokens in %.3f ms (%.1f MB/s)\n",
                    len, n, dt * 1e3, (double)len / dt / 1e6);
            return 0;
        }
        static const char sep[] = "\n__ggml_vocab_test__\n";
        char *p = buf, *end = buf + len;
        while (p < end) {
            char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
            size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
            llama_token *ids;
            int k = tokenize(v, p, n, add, parse, &ids);
            print_ids(ids, k);
            free(ids);
            if (!q) break;
            p = q + sizeof sep - 1;
        }
        return 0;
    }

    if (!strcmp(cmd, "chat")) {
        const char *tname = NULL;
        int show = 0, add_ass = 1;
        for (int i = 4; i < argc; i++) {
            if (!strcmp(argv[i], "--template") && i + 1 < argc) tname = argv[++i];
            else if (!strcmp(argv[i], "--prompt")) show = 1;
            else if (!strcmp(argv[i], "--no-assistant")) add_ass = 0;
        }
        const char *tmpl = tname ? tname : llama_model_chat_template(model, NULL);
        if (!tmpl) { fprintf(stderr, "llama_ref: model has no chat template\n"); return 1; }
        size_t cl;
        char *conv = slurp(argv[3], &cl);
        struct llama_chat_message m[256];
        int n = parse_conv(conv, cl, m, 256);
        int len;
        char *p = render(tmpl, m, n, add_ass, &len);
        if (len < 0) { fprintf(stderr, "llama_ref: template not supported by llama.cpp\n"); return 1; }
        if (show) { fwrite(p, 1, (size_t)len, stdout); return 0; }
        llama_token *ids;
        int k = tokenize(v, p, (size_t)len, add, 1, &ids);
        print_ids(ids, k);
        return 0;
    }
    fprintf(stderr, "llama_ref: unknown command %s\n", cmd);
    return 2;
}
