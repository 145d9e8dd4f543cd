/*
 * refharness — the llama.cpp side of nightjar's conformance checks.
 *
 * Conformance/benchmark only: links the peer's libllama (built by
 * bench/setup-peer in ~/.cache/nightjar/peer/llama.cpp/build/bin, for this
 * CPU) and is never part of nightjar.  It does the two things the
 * conformance scripts need from the reference, with llama.cpp's default
 * context parameters except n_ctx, n_batch and the thread count:
 *
 *   refharness greedy -m MODEL --prompt-ids "1 2 3" -n 64
 *       Decode the prompt in one batch, then generate n tokens greedily
 *       (argmax; ties go to the lowest id), one token per llama_decode.
 *       Prints one line per generated token:
 *           step <i> <id> <top1 logit> <top2 id> <top2 logit>
 *       and finally   ids <id> <id> ...
 *
 *   refharness logits -m MODEL --ids "1 2 3 ..." -o OUT.f32
 *       Teacher forcing: decode the whole sequence with logits requested at
 *       every position and write them as raw little-endian f32,
 *       n_pos rows of n_vocab (row i = the distribution after token i).
 *       Prints "n_pos <n> n_vocab <v>".
 *
 * Common options: -t THREADS (2), -c N_CTX (prompt+n rounded up, >= 256),
 * -ub N (physical batch; default llama.cpp's 512 — -ub 1 makes llama.cpp
 * evaluate a prompt token by token, the decode path), --fa auto|on|off (default auto, llama.cpp's default; on the CPU backend
 * auto resolves to flash attention ENABLED — the harness reports what
 * llama.cpp chose on stderr as "refharness: flash_attn ..."), -v (llama.cpp
 * logs), --ids-file F (ids from a file instead of the command line),
 * --kv f16|q8_0|q4_0 (the KV cache type, K and V alike; default f16).
 */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int verbose;

static void log_cb(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (verbose || level == GGML_LOG_LEVEL_ERROR) { fputs(text, stderr); return; }
    /* Always report how flash attention was resolved. */
    if (strstr(text, "flash_attn") || strstr(text, "Flash Attention"))
        fprintf(stderr, "refharness: %s", text);
}

static void usage(void) {
    fprintf(stderr,
            "usage: refharness greedy -m MODEL (--prompt-ids \"ids\" | --ids-file F) [-n N]\n"
            "       refharness logits -m MODEL (--ids \"ids\" | --ids-file F) -o OUT.f32\n"
            "options: -t THREADS  -c N_CTX  -ub N_UBATCH  --fa auto|on|off  -v\n");
    exit(2);
}

/* Parse ids separated by spaces, commas or newlines. */
static int parse_ids(const char *s, llama_token **out) {
    int cap = 64, n = 0;
    llama_token *v = malloc(sizeof *v * (size_t)cap);
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\n' || *s == '\t' || *s == '\r') s++;
        if (!*s) break;
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s) { fprintf(stderr, "refharness: bad id near '%.20s'\n", s); exit(2); }
        if (n == cap) { cap *= 2; v = realloc(v, sizeof *v * (size_t)cap); }
        v[n++] = (llama_token)x;
        s = end;
    }
    *out = v;
    return n;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(1); }
    b[n] = 0;
    fclose(f);
    return b;
}

/* Index of the largest logit (lowest id on ties) and the runner-up. */
static void top2(const float *l, int n, int *i1, int *i2) {
    int a = 0, b = -1;
    for (int i = 1; i < n; i++) {
        if (l[i] > l[a]) { b = a; a = i; }
        else if (b < 0 || l[i] > l[b]) b = i;
    }
    *i1 = a; *i2 = b;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *mode = argv[1], *model_path = NULL, *ids_str = NULL, *ids_file = NULL, *out = NULL;
    int n_gen = 64, threads = 2, n_ctx = 0, n_ubatch = 0;
    enum llama_flash_attn_type fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
    enum ggml_type kv = GGML_TYPE_F16;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "-m")) model_path = NEXT();
        else if (!strcmp(a, "--prompt-ids") || !strcmp(a, "--ids")) ids_str = NEXT();
        else if (!strcmp(a, "--ids-file")) ids_file = NEXT();
        else if (!strcmp(a, "-n")) n_gen = atoi(NEXT());
        else if (!strcmp(a, "-t")) threads = atoi(NEXT());
        else if (!strcmp(a, "-c")) n_ctx = atoi(NEXT());
        else if (!strcmp(a, "-o")) out = NEXT();
        else if (!strcmp(a, "-ub")) n_ubatch = atoi(NEXT());
        else if (!strcmp(a, "-v")) verbose = 1;
        else if (!strcmp(a, "--kv")) {
            const char *v = NEXT();
            kv = !strcmp(v, "q8_0") ? GGML_TYPE_Q8_0 : !strcmp(v, "q4_0") ? GGML_TYPE_Q4_0
               : !strcmp(v, "f16") ? GGML_TYPE_F16 : (usage(), GGML_TYPE_F16);
        } else if (!strcmp(a, "--fa")) {
            const char *v = NEXT();
            fa = !strcmp(v, "on") ? LLAMA_FLASH_ATTN_TYPE_ENABLED
               : !strcmp(v, "off") ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
        } else usage();
    }
    int greedy = !strcmp(mode, "greedy");
    if (!greedy && strcmp(mode, "logits")) usage();
    if (!model_path || (!ids_str && !ids_file) || (!greedy && !out)) usage();

    char *buf = ids_file ? read_file(ids_file) : NULL;
    llama_token *ids;
    int n_ids = parse_ids(buf ? buf : ids_str, &ids);
    free(buf);
    if (n_ids < 1) { fprintf(stderr, "refharness: no ids\n"); return 2; }

    llama_log_set(log_cb, NULL);
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) { fprintf(stderr, "refharness: cannot load %s\n", model_path); return 1; }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab) { fprintf(stderr, "refharness: id %d out of range\n", ids[i]); return 2; }

    int need = n_ids + (greedy ? n_gen : 0);
    if (n_ctx <= 0) n_ctx = need < 256 ? 256 : (need + 255) / 256 * 256;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)(n_ids > 512 ? n_ids : 512);  /* whole prompt in one llama_decode */
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.flash_attn_type = fa;
    cp.type_k = kv;
    cp.type_v = kv;
    if (n_ubatch > 0) cp.n_ubatch = (uint32_t)n_ubatch;
    cp.no_perf = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "refharness: cannot create context\n"); return 1; }

    struct llama_batch batch = llama_batch_init(n_ids > 1 ? n_ids : 1, 0, 1);
    for (int i = 0; i < n_ids; i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = greedy ? (i == n_ids - 1) : 1;
    }
    batch.n_tokens = n_ids;
    if (llama_decode(ctx, batch)) { fprintf(stderr, "refharness: decode failed\n"); return 1; }

    if (!greedy) {
        FILE *f = fopen(out, "wb");
        if (!f) { perror(out); return 1; }
        for (int i = 0; i < n_ids; i++) {
            const float *l = llama_get_logits_ith(ctx, i);
            if (!l || fwrite(l, sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab) {
                fprintf(stderr, "refharness: cannot write logits row %d\n", i);
                return 1;
            }
        }
        if (fclose(f)) { perror(out); return 1; }
        printf("n_pos %d n_vocab %d\n", n_ids, n_vocab);
    } else {
        llama_token *gen = malloc(sizeof *gen * (size_t)(n_gen > 0 ? n_gen : 1));
        int pos = n_ids;
        for (int s = 0; s < n_gen; s++) {
            const float *l = llama_get_logits_ith(ctx, -1);
            int a, b;
            top2(l, n_vocab, &a, &b);
            printf("step %d %d %.9g %d %.9g\n", s, a, l[a], b, l[b]);
            gen[s] = a;
            if (s + 1 == n_gen) break;
            batch.n_tokens = 1;
            batch.token[0] = a;
            batch.pos[0] = pos++;
            batch.n_seq_id[0] = 1;
            batch.seq_id[0][0] = 0;
            batch.logits[0] = 1;
            if (llama_decode(ctx, batch)) { fprintf(stderr, "refharness: decode failed at step %d\n", s); return 1; }
        }
        printf("ids");
        for (int s = 0; s < n_gen; s++) printf(" %d", gen[s]);
        printf("\n");
        free(gen);
    }
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(ids);
    return 0;
}
