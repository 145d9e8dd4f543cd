/*
 * mkmodel — write a random-weight GGUF model (see src/modelgen.h).
 *
 *   mkmodel --preset tiny-llama --type Q4_K -o /tmp/m.gguf
 *   mkmodel --preset qwen2-7b --type Q4_K_M --tokenizer ggml-vocab-qwen2.gguf \
 *           -o ~/.cache/nightjar/models/random-qwen2-7b.Q4_K_M.gguf
 *
 * Shape options override the preset; --tokenizer copies tokenizer.* from a
 * GGUF file (default: a synthetic SentencePiece vocabulary of --synth-vocab
 * tokens); --vocab pads or truncates the vocabulary.
 */
#include "gguf.h"
#include "modelgen.h"
#include "quant.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr,
        "usage: mkmodel --preset NAME [options] -o OUT.gguf\n"
        "  --preset NAME      %s\n"
        "  --type T           F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M (default F32)\n"
        "  --seed N           (default 1)\n"
        "  -t, --threads N    generation threads (default 2; output does not depend on it)\n"
        "  --tokenizer FILE   copy tokenizer.* from a GGUF file\n"
        "  --vocab N          pad/truncate the vocabulary to N tokens\n"
        "  --synth-vocab N    size of the synthetic vocabulary (default 512)\n"
        "  --arch A --n-embd N --n-layer N --n-head N --n-head-kv N --head-dim N --n-ff N\n"
        "  --ctx N --rope-theta F --rms-eps F --swa N --tied 0|1 --qkv-bias 0|1 --qk-norm 0|1\n"
        "  --rope-freqs 0|1  --name S\n",
        modelgen_preset_names());
}

int main(int argc, char **argv) {
    modelgen_params p;
    const char *out = NULL, *tok = NULL;
    if (modelgen_preset("tiny-llama", &p)) return 1;
    p.n_threads = 2;
    /* The preset first, so other options override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset") && modelgen_preset(argv[i + 1], &p)) {
            fprintf(stderr, "mkmodel: %s\n", nj_last_error());
            return 2;
        }
    p.n_threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) { usage(); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--preset")) continue;
        else if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--type")) {
            p.type = modelgen_parse_type(v);
            if (p.type == -1) { fprintf(stderr, "mkmodel: unknown type %s\n", v); return 2; }
        }
        else if (!strcmp(a, "--seed")) p.seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) p.n_threads = atoi(v);
        else if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--vocab")) p.n_vocab = atoi(v);
        else if (!strcmp(a, "--synth-vocab")) p.synth_vocab = atoi(v);
        else if (!strcmp(a, "--arch")) snprintf(p.arch, sizeof p.arch, "%s", v);
        else if (!strcmp(a, "--name")) snprintf(p.name, sizeof p.name, "%s", v);
        else if (!strcmp(a, "--n-embd")) p.n_embd = atoi(v);
        else if (!strcmp(a, "--n-layer")) p.n_layer = atoi(v);
        else if (!strcmp(a, "--n-head")) p.n_head = atoi(v);
        else if (!strcmp(a, "--n-head-kv")) p.n_head_kv = atoi(v);
        else if (!strcmp(a, "--head-dim")) p.head_dim = atoi(v);
        else if (!strcmp(a, "--n-ff")) p.n_ff = atoi(v);
        else if (!strcmp(a, "--ctx")) p.n_ctx_train = atoi(v);
        else if (!strcmp(a, "--rope-theta")) p.rope_theta = strtof(v, NULL);
        else if (!strcmp(a, "--rms-eps")) p.rms_eps = strtof(v, NULL);
        else if (!strcmp(a, "--swa")) p.sliding_window = atoi(v);
        else if (!strcmp(a, "--tied")) p.tied_embd = atoi(v) != 0;
        else if (!strcmp(a, "--qkv-bias")) p.qkv_bias = atoi(v) != 0;
        else if (!strcmp(a, "--qk-norm")) p.qk_norm = atoi(v) != 0;
        else if (!strcmp(a, "--rope-freqs")) p.rope_freqs_llama3 = atoi(v) != 0;
        else { usage(); return 2; }
    }
    if (!out) { usage(); return 2; }
    gguf_file *tf = NULL;
    if (tok) {
        int err;
        tf = gguf_open(tok, &err);
        if (!tf) { fprintf(stderr, "mkmodel: %s\n", nj_last_error()); return 1; }
        p.tok_src = tf;
    }
    double t0 = nj_now();
    int rc = modelgen_write(&p, out);
    gguf_close(tf);
    if (rc) { fprintf(stderr, "mkmodel: %s (%s)\n", nj_last_error(), nj_strerror(rc)); return 1; }
    fprintf(stderr, "mkmodel: wrote %s (%s, %s, seed %llu) in %.1f s\n", out, p.arch,
            p.type == MODELGEN_Q4_K_M ? "Q4_K_M" : quant_type_name(p.type),
            (unsigned long long)p.seed, nj_now() - t0);
    return 0;
}
