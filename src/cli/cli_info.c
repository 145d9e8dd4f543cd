/*
 * cli_info — `nightjar info MODEL.gguf [-c CTX] [--kv TYPE]`: what a model
 * file is (architecture, shape, tensor types, parameter count) and what
 * running it would cost in memory (and the KV cache's bytes per context
 * size and KV type).  `nightjar info --cpu` prints the CPU
 * features and the kernel level chosen (kernels_describe()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "kernels.h"
#include "model.h"
#include "nightjar.h"
#include "quant.h"
#include "session.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar info MODEL.gguf [-c CTX] [--kv TYPE]\n"
        "       nightjar info --cpu\n"
        "  -c CTX     context size for the memory estimate (default 4096)\n"
        "  --kv TYPE  KV cache type for the estimate: f16 (default), q8_0, q4_0\n");
}

static void human(char *buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", b / 1073741824.0);
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.1f MiB", b / 1048576.0);
    else snprintf(buf, cap, "%.1f KiB", b / 1024.0);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int n_ctx = 4096, kv = NJ_KV_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--cpu")) { printf("%s\n", kernels_describe()); return 0; }
        if (!strcmp(a, "-c") && i + 1 < argc) {
            char *e;
            long v = strtol(argv[++i], &e, 10);
            if (*e || v < 1 || v > (1 << 24)) { fprintf(stderr, "nightjar info: bad -c\n"); return 2; }
            n_ctx = (int)v;
        } else if (!strcmp(a, "--kv") && i + 1 < argc) {
            const char *t = argv[++i];
            kv = nj_kv_type_from_name(t);
            if (kv < 0) { fprintf(stderr, "nightjar info: unknown KV type '%s' (supported: f16, q8_0, q4_0)\n", t); return 2; }
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            fprintf(stderr, "nightjar info: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path) { usage(stderr); return 2; }

    int err = 0;
    nj_model_params mp = {0};
    nj_model *m = nj_model_load(path, &mp, &err);
    if (!m) {
        fprintf(stderr, "nightjar info: %s: %s: %s\n", path, nj_strerror(err), nj_last_error());
        return 1;
    }
    nj_model_desc d;
    nj_model_describe(m, &d);
    const nj_hparams *hp = &m->hp;
    char b1[32], b2[32], b3[32], b4[32];

    printf("file          %s\n", path);
    printf("name          %s\n", d.name);
    printf("architecture  %s\n", d.arch);
    human(b1, sizeof b1, d.file_bytes);
    human(b2, sizeof b2, d.weight_bytes);
    printf("size          %s (%s of tensor data), GGUF v%u\n", b1, b2, gguf_version(m->gf));
    printf("parameters    %.1f M (%.2f bits per weight)\n", d.n_params / 1e6,
           d.n_params ? 8.0 * d.weight_bytes / d.n_params : 0.0);
    printf("layers        %d (embd %d, ff %d, vocab %d, context %d)\n", d.n_layer, d.n_embd,
           d.n_ff, d.n_vocab, d.n_ctx_train);
    printf("attention     %d heads, %d kv heads, head dim %d/%d, rope %s %d dims base %g%s\n",
           d.n_head, d.n_head_kv, hp->head_dim_k, hp->head_dim_v,
           hp->rope_neox ? "neox" : "normal", hp->n_rot, hp->rope_base,
           m->rope_freqs ? " + freq factors" : "");
    if (hp->rope_scale != 1.0f)
        printf("rope scaling  x%g%s\n", 1.0f / hp->rope_scale, hp->yarn_ext_factor ? " (yarn)" : "");
    if (hp->n_swa) {
        int n_local = 0;
        for (int il = 0; il < hp->n_layer; il++) n_local += m->layers[il].swa;
        printf("sliding win.  %d tokens on %d of %d layers (local rope base %g)\n", hp->n_swa,
               n_local, hp->n_layer, hp->rope_base_swa);
    }
    printf("output        %s", m->tied_output ? "tied to token_embd" : "output.weight");
    if (hp->final_softcap) printf(", final logit softcap %g", hp->final_softcap);
    printf("\n");
    printf("tokens        bos %d, eos %d, eot %d\n", d.bos, d.eos, d.eot);

    /* tensor types */
    uint64_t count[NJ_TYPE_COUNT] = {0}, bytes[NJ_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < gguf_n_tensors(m->gf); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->gf, i);
        if (t->type < NJ_TYPE_COUNT) { count[t->type]++; bytes[t->type] += t->nbytes; }
    }
    printf("tensor types ");
    for (int t = 0; t < NJ_TYPE_COUNT; t++) {
        if (!count[t]) continue;
        human(b1, sizeof b1, bytes[t]);
        printf(" %s x%llu (%s)", quant_type_name(t), (unsigned long long)count[t], b1);
    }
    printf("\n");

    /* memory */
    int ctx = n_ctx < d.n_ctx_train ? n_ctx : d.n_ctx_train;
    int n_batch = ctx < 256 ? ctx : 256;
    uint64_t est = nj_model_mem_estimate(m, ctx, kv);
    human(b1, sizeof b1, d.file_bytes);
    human(b2, sizeof b2, model_kv_bytes(m, ctx, kv));
    human(b3, sizeof b3, session_scratch_bytes(m, n_batch, m->n_threads));
    human(b4, sizeof b4, est);
    char b5[48] = "";
    if (m->release_embd) {
        char t[24];
        human(t, sizeof t, (uint64_t)m->tok_embd.rows * m->tok_embd.row_bytes);
        snprintf(b5, sizeof b5, " - token_embd %s", t);
    }
    printf("memory        %s at context %d: file %s%s + KV %s %s + buffers %s (+ tables)\n", b4,
           ctx, b1, b5, nj_kv_type_name(kv), b2, b3);
    if (m->release_embd)
        printf("              (the untied token_embd is read row by row and not kept resident)\n");
    /* the KV cache alone, per context size and type */
    printf("KV cache     ");
    for (int t = 0; t < NJ_KV_TYPE_COUNT; t++) printf(" %12s", nj_kv_type_name(t));
    printf("\n");
    for (int c = 2048; c <= 32768 && c <= d.n_ctx_train; c *= 2) {
        printf("  ctx %-7d", c);
        for (int t = 0; t < NJ_KV_TYPE_COUNT; t++) {
            human(b2, sizeof b2, model_kv_bytes(m, c, t));
            printf(" %12s", b2);
        }
        printf("\n");
    }
    nj_model_free(m);
    return 0;
}
