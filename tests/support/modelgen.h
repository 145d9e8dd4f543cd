/*
 * modelgen — random-weight GGUF models for conformance and golden tests.
 *
 * Purpose.  We cannot ship real models of every architecture x tensor type,
 * but the engine must match llama.cpp on all of them.  modelgen writes a
 * model of a given architecture (llama, qwen2, qwen3, gemma3) and shape,
 * with seeded random weights, in any tensor type nightjar reads (or a
 * llama.cpp-style "Q4_K_M" mix), with the exact tensor names, shapes and
 * metadata keys llama.cpp's loader expects.  Both engines then run the same
 * file and their logits are compared (scripts/conformance-engine,
 * tests/test_golden.c).  The tool is tools/mkmodel.c.
 *
 * Determinism.  Every row of every tensor has its own generator, seeded
 * with (seed, tensor name, row), so a tensor does not change when the shape
 * of another does, the bytes do not depend on the thread count, and the same
 * seed gives the same float weights for every tensor type (only the
 * quantization differs).  The generator and the quantizers are plain scalar
 * C: the same bytes on every machine.
 *
 * Distributions (chosen so activations stay O(1) and logits are peaked
 * enough that greedy decoding is not a coin toss): matrices
 * N(0, 1/sqrt(row length)) (gain 1); an untied embedding N(0, 0.1);
 * the output projection (or tied embedding) N(0, 2/sqrt(n_embd)) so logits
 * have a standard deviation near 2; norm weights 1 + N(0, 0.1) (not all
 * ones, so a skipped norm multiply is caught); biases N(0, 0.05).
 *
 * Memory.  Tensors are generated, quantized and written a slab of rows at a
 * time through gguf_write's streaming interface: a 7B model needs a few MB.
 *
 * Tokenizer.  Copied from a GGUF file (all tokenizer.* keys; --vocab may pad
 * it with "[PADn]" tokens as the HF converters do, or truncate it, keeping
 * only BPE merges whose parts survive), or synthesized: a self-consistent
 * SentencePiece-style ("llama") vocabulary of n tokens — <unk> <s> </s>,
 * the 256 byte tokens, then letter pieces with decreasing scores.
 */
#ifndef NJ_MODELGEN_H
#define NJ_MODELGEN_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

/* Pseudo type id for the llama.cpp-style Q4_K_M mix (see modelgen.c). */
#define MODELGEN_Q4_K_M (-15)

typedef struct modelgen_params {
    char     arch[16];        /* "llama", "qwen2", "qwen3", "gemma3" */
    char     name[64];        /* general.name */
    int      n_embd, n_layer, n_head, n_head_kv;
    int      head_dim;        /* 0 = n_embd / n_head */
    int      n_ff;
    int      n_ctx_train;
    int      n_vocab;         /* 0 = the tokenizer's size; else pad/truncate to it */
    float    rope_theta;
    float    rms_eps;
    int      sliding_window;  /* gemma3: attention.sliding_window (0 = none) */
    bool     tied_embd;       /* no output.weight: the LM head is token_embd */
    bool     qkv_bias;        /* attn_{q,k,v}.bias (qwen2) */
    bool     qk_norm;         /* attn_{q,k}_norm (qwen3, gemma3) */
    bool     rope_freqs_llama3; /* write rope_freqs.weight for llama3 rope scaling (factor 32) */
    int      type;            /* NJ_* tensor type of the weight matrices, or MODELGEN_Q4_K_M */
    uint64_t seed;
    const gguf_file *tok_src; /* tokenizer source; NULL = synthetic SPM */
    int      synth_vocab;     /* size of the synthetic vocabulary (default 512) */
    int      n_threads;       /* generation/quantization threads (<= 1: the caller's only);
                                 the bytes do not depend on it */
} modelgen_params;

/* Fill p from a named preset ("tiny-llama", "tiny-qwen2", "tiny-qwen3",
 * "tiny-gemma3", "smollm2-135m", "llama3-1b", "qwen2-7b", "qwen2-0.5b",
 * "qwen3-0.6b", "gemma3-270m").  Type F32, seed 1, synthetic tokenizer.
 * Returns 0 or -EINVAL for an unknown name. */
int modelgen_preset(const char *name, modelgen_params *p);
/* Comma-separated list of preset names (static string). */
const char *modelgen_preset_names(void);

/* Parse a type name ("F32", "q4_k", "Q4_K_M", ...) into an NJ_* id or
 * MODELGEN_Q4_K_M; -1 if unknown. */
int modelgen_parse_type(const char *s);

/* Write the model to path (atomically, via gguf_write).  0 or < 0 with
 * nj_last_error() set; NJ_EUNSUPPORTED if a needed quantizer is missing. */
int modelgen_write(const modelgen_params *p, const char *path);

/* The type modelgen gives tensor `name` with row length ne0 (exposed for
 * tests and for `nightjar quantize` to share the mix rules). */
int modelgen_tensor_type(const modelgen_params *p, const char *name, int n_dims, int64_t ne0);

#endif
