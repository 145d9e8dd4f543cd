/*
 * cli_quantize — `nightjar quantize`: write a model file with another
 * tensor-type recipe (engine/quantize.h), or back to F16/F32 with
 * --dequantize; --plan prints the type the recipe gives each tensor.
 *
 * On a terminal a progress line is redrawn after each slab of rows; the
 * closing summary goes to stderr either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gguf.h"
#include "quant.h"
#include "quantize.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar quantize [-t THREADS] [--allow-requantize] IN.gguf OUT.gguf TYPE\n"
        "       nightjar quantize --dequantize [-t THREADS] IN.gguf OUT.gguf [F16|F32|BF16]\n"
        "       nightjar quantize --plan IN.gguf TYPE\n"
        "  TYPE  Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0 (llama.cpp's recipes: some tensors get\n"
        "        more bits), or F16, F32, BF16\n"
        "  sources: F32, F16, BF16 or Q8_0 weights; --dequantize reads any type we run\n"
        "  (make a common F16 source from a quantized file); --allow-requantize lets a\n"
        "  quantized recipe read other quantized types (quality suffers twice)\n"
        "  -t    threads (default 2)\n"
        "  --plan  print each tensor's source and recipe type, write nothing\n");
}

typedef struct progress { double t0, last; bool tty; } progress;

static void on_progress(void *ctx, uint64_t done, uint64_t total, int i, int n, const char *name, int type) {
    progress *pr = ctx;
    if (!pr->tty) return;
    double now = nj_now();
    if (now - pr->last < 0.1 && done < total) return;
    pr->last = now;
    fprintf(stderr, "\r\033[K[%4d/%4d] %5.1f%%  %-32.32s -> %-5s %6.1f s", i + 1, n,
            total ? 100.0 * (double)done / (double)total : 100.0, name, quant_type_name(type), now - pr->t0);
    fflush(stderr);
}

static int print_plan(const char *in, int ftype) {
    int err = 0;
    gguf_file *f = gguf_open(in, &err);
    if (!f) {
        fprintf(stderr, "nightjar quantize: %s: %s (%s)\n", in, nj_strerror(err), nj_last_error());
        return 1;
    }
    int n = (int)gguf_n_tensors(f);
    int *types = nj_malloc(sizeof(int) * (size_t)(n ? n : 1));
    int rc = types ? quantize_plan(f, ftype, types) : -ENOMEM;
    if (rc == 0)
        for (int i = 0; i < n; i++) {
            const gguf_tensor *t = gguf_tensor_at(f, (uint64_t)i);
            printf("%.*s\t%s\t%s\n", (int)t->name.len, t->name.ptr, quant_type_name((int)t->type),
                   quant_type_name(types[i]));
        }
    else
        fprintf(stderr, "nightjar quantize: %s (%s)\n", nj_strerror(rc), nj_last_error());
    nj_free(types);
    gguf_close(f);
    return rc ? 1 : 0;
}

int cmd_quantize(int argc, char **argv) {
    quantize_params p = {.n_threads = 2};
    bool dequant = false, plan = false;
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--dequantize")) { dequant = true; continue; }
        if (!strcmp(a, "--allow-requantize")) { p.allow_requantize = true; continue; }
        if (!strcmp(a, "--plan")) { plan = true; continue; }
        if (!strcmp(a, "-t")) {
            if (i + 1 >= argc || (p.n_threads = atoi(argv[++i])) < 1 || p.n_threads > 512) {
                fprintf(stderr, "nightjar quantize: -t needs a thread count (1..512)\n");
                return 2;
            }
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "nightjar quantize: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (n_pos == 3) { fprintf(stderr, "nightjar quantize: too many arguments\n"); usage(stderr); return 2; }
        pos[n_pos++] = a;
    }
    const char *type_arg = plan ? (n_pos == 2 ? pos[1] : NULL) : n_pos == 3 ? pos[2] : dequant && n_pos == 2 ? "F16" : NULL;
    if (!type_arg || (plan && dequant)) { usage(stderr); return 2; }
    p.ftype = quantize_ftype_parse(type_arg);
    if (p.ftype < 0) {
        fprintf(stderr, "nightjar quantize: unknown type '%s' (Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, F16, F32, BF16)\n",
                type_arg);
        return 2;
    }
    if (plan) return print_plan(pos[0], p.ftype);
    bool unquantized = p.ftype == QFT_F16 || p.ftype == QFT_F32 || p.ftype == QFT_BF16;
    if (dequant && !unquantized) {
        fprintf(stderr, "nightjar quantize: --dequantize writes F16, F32 or BF16, not %s\n", type_arg);
        return 2;
    }
    if (dequant) p.allow_requantize = true;

    progress pr = {.t0 = nj_now(), .tty = isatty(2) != 0};
    p.progress = on_progress;
    p.progress_ctx = &pr;
    int rc = quantize_file(pos[0], pos[1], &p);
    if (pr.tty) fprintf(stderr, "\r\033[K");
    if (rc) {
        fprintf(stderr, "nightjar quantize: %s (%s)\n", nj_strerror(rc), nj_last_error());
        return 1;
    }
    int err = 0;
    gguf_file *f = gguf_open(pos[1], &err);
    if (!f) {
        fprintf(stderr, "nightjar quantize: wrote %s but cannot read it back: %s (%s)\n", pos[1],
                nj_strerror(err), nj_last_error());
        return 1;
    }
    fprintf(stderr, "nightjar quantize: %s -> %s (%s): %llu tensors, %.1f MiB, %.2f s, %d threads\n",
            pos[0], pos[1], quantize_ftype_name(p.ftype), (unsigned long long)gguf_n_tensors(f),
            (double)gguf_file_size(f) / (1 << 20), nj_now() - pr.t0, p.n_threads);
    gguf_close(f);
    return 0;
}
