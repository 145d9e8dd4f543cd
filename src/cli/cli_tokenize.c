/*
 * cli_tokenize — `nightjar tokenize`: show how a model's tokenizer cuts a
 * text, in the same form as llama.cpp's llama-tokenize so the two can be
 * compared line by line.
 *
 *   nightjar tokenize -m MODEL.gguf [--ids] [--no-bos] [--special] [-f FILE | TEXT]
 *
 * Only the GGUF metadata is needed (vocab-only files work): the file is
 * opened with gguf_open and the tokenizer loaded directly, no engine.
 * BOS/EOS are added when the model asks for them (tokenizer.ggml.add_bos_token)
 * unless --no-bos; --special lets control-token text such as "<|im_end|>"
 * become the control token (never do that with untrusted text).
 *
 * Testing aids (used by scripts/conformance-tokenizer and bench/tokenize):
 *   --batch FILE   FILE holds several texts separated by the line
 *                  "__ggml_vocab_test__" (llama.cpp's vocab test format);
 *                  print one line of ids per text.
 *   --chat FILE    render a conversation with the model's chat template
 *                  (or --template NAME) and tokenize the prompt with
 *                  control tokens recognised; FILE holds messages separated
 *                  by the line "__nj_msg__", each "role\ncontent".
 *                  --prompt prints the rendered prompt instead of ids;
 *                  --no-assistant leaves off the assistant header.
 *   --template-file FILE   with --chat: detect the family from the Jinja
 *                  template text in FILE instead of the model's.
 *   --roundtrip    with --batch: print "ok" per text whose ids decode back
 *                  to the exact input bytes, else "diff".
 *   --repeat N     tokenize N times and report the time per run on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"
#include "util.h"

static void usage(FILE *o) {
    fprintf(o,
        "usage: nightjar tokenize -m MODEL.gguf [options] [-f FILE | TEXT]\n"
        "  -m, --model FILE   GGUF model or vocab-only file\n"
        "  -f, --file FILE    read the text from FILE (raw bytes, no escapes)\n"
        "  --ids              print only the ids, space-separated on one line\n"
        "  --no-bos           do not add BOS/EOS even if the model asks for them\n"
        "  --special          recognise control-token text (trusted text only)\n"
        "  --batch FILE       texts separated by a line __ggml_vocab_test__; one line of ids each\n"
        "  --chat FILE        tokenize a conversation rendered with the chat template\n"
        "  --template NAME    chat template override (%s)\n"
        "  --template-file F  with --chat: detect the template family from the Jinja text in F\n"
        "  --prompt           with --chat: print the rendered prompt, not ids\n"
        "  --no-assistant     with --chat: do not open an assistant turn\n"
        "  --roundtrip        with --batch: print ok/diff per text (decode(encode(text)) == text)\n"
        "  --repeat N         tokenize N times, report time per run on stderr\n",
        chat_known_names());
}

/* Whole file into a nj_malloc'd buffer. */
static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = nj_malloc(cap + 1);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n, fp);
        n += k;
        if (n < cap) break;
        cap *= 2;
        char *p = nj_realloc(buf, cap + 1);
        if (!p) { nj_free(buf); buf = NULL; break; }
        buf = p;
    }
    fclose(fp);
    if (buf) { buf[n] = 0; *len = n; }
    return buf;
}

/* Print " 'piece'" with the bytes as they are (like llama-tokenize). */
static void print_tokens(const nj_tok *t, const int32_t *ids, int n, bool ids_only) {
    char piece[4096];
    for (int i = 0; i < n; i++) {
        if (ids_only) { printf(i ? " %d" : "%d", ids[i]); continue; }
        int k = tok_piece(t, ids[i], true, piece, sizeof piece);
        if (k < 0) k = 0;
        printf("%6d -> '%.*s'\n", ids[i], (int)NJ_MIN((size_t)k, sizeof piece), piece);
    }
    if (ids_only) printf("\n");
}

static int encode_alloc(const nj_tok *t, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t **out) {
    int cap = (int)NJ_MIN(len + 16, (size_t)1 << 20);
    int32_t *ids = nj_malloc((size_t)cap * sizeof *ids);
    if (!ids) return -ENOMEM;
    int n = tok_encode(t, text, len, add_special, parse_special, ids, cap);
    if (n > cap) {
        nj_free(ids);
        cap = n;
        ids = nj_malloc((size_t)cap * sizeof *ids);
        if (!ids) return -ENOMEM;
        n = tok_encode(t, text, len, add_special, parse_special, ids, cap);
    }
    if (n < 0) { nj_free(ids); return n; }
    *out = ids;
    return n;
}

/* Parse the --chat file: messages separated by "\n__nj_msg__\n", each
 * "role\ncontent".  Pointers point into buf (modified in place). */
static int parse_chat(char *buf, size_t len, nj_chat_msg *msgs, int max) {
    static const char sep[] = "\n__nj_msg__\n";
    int n = 0;
    char *p = buf, *end = buf + len;
    while (p < end && n < max) {
        char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        char *e = q ? q : end;
        *e = 0;
        char *nl = strchr(p, '\n');
        if (!nl) { msgs[n].role = p; msgs[n].content = e; }
        else { *nl = 0; msgs[n].role = p; msgs[n].content = nl + 1; }
        n++;
        if (!q) break;
        p = q + sizeof sep - 1;
    }
    return n;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *text = NULL, *batch = NULL, *chat = NULL, *tmpl_name = NULL,
               *tmpl_file = NULL;
    bool ids_only = false, no_bos = false, special = false, show_prompt = false, add_ass = true,
         roundtrip = false;
    long repeat = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) model = argv[++i];
        else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_val) file = argv[++i];
        else if (!strcmp(a, "--batch") && has_val) batch = argv[++i];
        else if (!strcmp(a, "--chat") && has_val) chat = argv[++i];
        else if (!strcmp(a, "--template") && has_val) tmpl_name = argv[++i];
        else if (!strcmp(a, "--template-file") && has_val) tmpl_file = argv[++i];
        else if (!strcmp(a, "--roundtrip")) roundtrip = true;
        else if (!strcmp(a, "--repeat") && has_val) repeat = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--ids")) ids_only = true;
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--prompt")) show_prompt = true;
        else if (!strcmp(a, "--no-assistant")) add_ass = false;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "nightjar tokenize: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!text) text = a;
        else { fprintf(stderr, "nightjar tokenize: more than one TEXT given\n"); return 2; }
    }
    int sources = (file != NULL) + (text != NULL) + (batch != NULL) + (chat != NULL);
    if (!model || sources != 1) {
        fprintf(stderr, "nightjar tokenize: need -m MODEL and exactly one of TEXT, -f, --batch, --chat\n");
        usage(stderr);
        return 2;
    }

    int err = 0, rc = 1;
    gguf_file *f = gguf_open(model, &err);
    if (!f) {
        fprintf(stderr, "nightjar tokenize: %s: %s (%s)\n", model, nj_strerror(err), nj_last_error());
        return 1;
    }
    nj_tok *t = tok_load(f, &err);
    char *data = NULL;
    int32_t *ids = NULL;
    if (!t) {
        fprintf(stderr, "nightjar tokenize: %s: %s (%s)\n", model, nj_strerror(err), nj_last_error());
        goto out;
    }
    /* as llama-tokenize: add_special only if the model wants BOS */
    bool add_special = tok_add_bos(t) && !no_bos;

    size_t len = 0;
    const char *src = text ? text : NULL;
    if (text) len = strlen(text);
    const char *path = file ? file : batch ? batch : chat;
    if (path) {
        data = read_file(path, &len);
        if (!data) { fprintf(stderr, "nightjar tokenize: cannot read %s\n", path); goto out; }
        src = data;
    }

    if (batch) {
        static const char sep[] = "\n__ggml_vocab_test__\n";
        const char *p = src, *end = src + len;
        while (p < end) {
            const char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
            size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
            int k = encode_alloc(t, p, n, add_special, special, &ids);
            if (k < 0) { fprintf(stderr, "nightjar tokenize: %s\n", nj_strerror(k)); goto out; }
            if (roundtrip) {
                unsigned fl = TOK_DECODE_NO_CLEAN | (special ? TOK_DECODE_SPECIAL : 0) |
                              (add_special ? TOK_DECODE_REMOVE_SPECIAL : 0);
                int m = tok_decode(t, ids, k, fl, NULL, 0);
                char *back = m >= 0 ? nj_malloc((size_t)m + 1) : NULL;
                if (back) tok_decode(t, ids, k, fl, back, (size_t)m + 1);
                puts(back && (size_t)m == n && memcmp(back, p, n) == 0 ? "ok" : "diff");
                nj_free(back);
            } else {
                print_tokens(t, ids, k, true);
            }
            nj_free(ids); ids = NULL;
            if (!q) break;
            p = q + sizeof sep - 1;
        }
        rc = 0;
        goto out;
    }

    char *prompt = NULL;
    if (chat) {
        nj_chat_msg msgs[256];
        int nm = parse_chat(data, len, msgs, 256);
        int tmpl;
        if (tmpl_name) tmpl = chat_from_name(tmpl_name);
        else if (tmpl_file) {
            size_t tl;
            char *tt = read_file(tmpl_file, &tl);
            if (!tt) { fprintf(stderr, "nightjar tokenize: cannot read %s\n", tmpl_file); goto out; }
            tmpl = chat_detect(tt, tl);
            nj_free(tt);
        } else {
            gguf_str ts;
            if (gguf_get_str(f, "tokenizer.chat_template", &ts)) {
                fprintf(stderr, "nightjar tokenize: the model has no chat template; use --template (%s)\n",
                        chat_known_names());
                goto out;
            }
            tmpl = chat_detect(ts.ptr, (size_t)ts.len);
        }
        if (tmpl < 0) { fprintf(stderr, "nightjar tokenize: %s\n", nj_last_error()); goto out; }
        int n = chat_apply(tmpl, msgs, nm, add_ass, NULL, 0);
        if (n < 0) { fprintf(stderr, "nightjar tokenize: %s\n", nj_last_error()); goto out; }
        prompt = nj_malloc((size_t)n + 1);
        if (!prompt) goto out;
        chat_apply(tmpl, msgs, nm, add_ass, prompt, (size_t)n + 1);
        nj_free(data);
        data = prompt;
        src = prompt;
        len = (size_t)n;
        special = true;   /* the template's own markers are control tokens */
        if (show_prompt) { fwrite(prompt, 1, len, stdout); rc = 0; goto out; }
    }

    int n = encode_alloc(t, src, len, add_special, special, &ids);
    if (n < 0) { fprintf(stderr, "nightjar tokenize: %s\n", nj_strerror(n)); goto out; }
    if (repeat > 0) {
        double t0 = nj_now();
        for (long r = 0; r < repeat; r++) tok_encode(t, src, len, add_special, special, ids, n);
        double dt = (nj_now() - t0) / (double)repeat;
        fprintf(stderr, "tokenize: %zu bytes -> %d tokens in %.3f ms (%.1f MB/s)\n",
                len, n, dt * 1e3, (double)len / dt / 1e6);
    }
    print_tokens(t, ids, n, ids_only);
    rc = 0;
out:
    nj_free(ids);
    nj_free(data);
    tok_free(t);
    gguf_close(f);
    return rc;
}
