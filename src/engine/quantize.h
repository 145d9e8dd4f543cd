/*
 * quantize — rewrite a GGUF model file with other tensor types
 * (`nightjar quantize`).
 *
 * Purpose.  A user choosing a model file for the security analyst trades
 * memory and speed against verdict quality; the quantization sweep needs
 * files of every type made from one common source.  This module makes them:
 * Q8_0, Q6_K, Q5_K_M, Q4_K_M and Q4_0 files from an F32 / F16 / BF16 / Q8_0
 * source, and F16 / F32 / BF16 files from any source we can read (the
 * dequantize direction, used to make a common high-precision source from a
 * quantized download).  The files load in llama.cpp as well as in nightjar.
 *
 * Recipes.  A file type is a *recipe*: a default tensor type plus rules that
 * give some tensors more bits.  They are llama.cpp's (llama-quant.cpp's
 * tensor-type rules, read for the facts, for the dense architectures we
 * run), so a file of a type is laid out as llama-quantize lays it out:
 *   - only tensors of 2+ dimensions whose name ends in "weight" and is not
 *     a norm (and a few small special tables) are converted; the rest are
 *     copied as they are;
 *   - the output projection (and a tied token_embd) gets Q6_K unless the
 *     recipe is Q8_0; Q8_0 if its rows are not a multiple of the recipe's
 *     block;
 *   - Q4_K_M / Q5_K_M: attn_v and ffn_down get Q6_K in the "more bits"
 *     layers (the first and last eighth and every third between, counted
 *     in the order below); the rest Q4_K / Q5_K (fused attn_qkv and
 *     attn_kv_b count as attn_v);  80-layer llama/qwen2 (70B) attn_v
 *     Q4_K -> Q5_K;
 *     8-expert models attn_v / attn_k Q8_0 and attn_output Q5_K (Q4_K_M);
 *   - a row length that is not a multiple of the chosen type's block falls
 *     back: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and to F16 if even
 *     that does not fit.
 * Tensors are visited (and written) in llama.cpp's order: the tensors
 * outside blocks first, then block by block, names sorted within each; the
 * per-layer counters of the rules follow that order.
 *
 * Numerics.  The quantizers are format/quant.c's reference ones
 * (quant_file_quantizer: ggml's reference quantizers, no importance
 * matrix, including the K-quants' weighted-error scale search), so for the
 * same source and recipe the tensor bytes equal llama-quantize's.
 *
 * Threads and memory.  One pool of n_threads (the caller's thread is one of
 * them).  A tensor is processed in slabs of rows (at most ~64 MB of output);
 * within a slab the threads take chunks of rows from a shared counter
 * (a thread slowed by another process is covered by the others), each
 * converting its rows to f32 in a private scratch and quantizing into the
 * slab's output buffer; the calling thread then writes the slab.  Memory:
 * the slab buffer plus n_threads chunk scratches; the source is mmap'd.
 * The output goes to "<out>.part", renamed when complete.
 */
#ifndef NJ_QUANTIZE_H
#define NJ_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

/* Recipes, by llama.cpp's file-type numbers (written as general.file_type). */
enum quantize_ftype {
    QFT_F32 = 0, QFT_F16 = 1, QFT_Q4_0 = 2, QFT_Q8_0 = 7,
    QFT_Q4_K_M = 15, QFT_Q5_K_M = 17, QFT_Q6_K = 18, QFT_BF16 = 32,
};

/* Progress: called on the calling thread after each slab.  done/total in
 * source elements; tensor is the tensor being converted (NUL-terminated). */
typedef void (*quantize_progress_fn)(void *ctx, uint64_t done, uint64_t total,
                                     int i_tensor, int n_tensors, const char *tensor, int type);

typedef struct quantize_params {
    int  ftype;              /* enum quantize_ftype */
    int  n_threads;          /* <= 0: 2 */
    bool allow_requantize;   /* accept quantized sources other than Q8_0 for a
                                quantized target (quality suffers twice) */
    quantize_progress_fn progress;   /* may be NULL */
    void *progress_ctx;
} quantize_params;

/* Recipe from a name ("Q4_K_M", "q8_0", "F16", ...); -1 if unknown. */
int quantize_ftype_parse(const char *name);
const char *quantize_ftype_name(int ftype);   /* "?" if unknown */

/* The tensor types the recipe gives every tensor of f, in the file's tensor
 * order: types[i] for gguf_tensor_at(f, i).  Returns 0, or -EINVAL for an
 * unknown recipe. */
int quantize_plan(const gguf_file *f, int ftype, int *types);

/* Write `out` from `in` with the recipe.  0 or a negative code with a
 * sentence: -EINVAL (unknown recipe, in == out, a source type the recipe
 * may not read), NJ_EFORMAT (bad input file), NJ_EUNSUPPORTED (a tensor type
 * we cannot convert), -ENOMEM, -errno on I/O.  On failure no file is left
 * at `out`. */
int quantize_file(const char *in, const char *out, const quantize_params *p);

#endif
