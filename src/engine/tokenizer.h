/*
 * tokenizer — text <-> token ids, matching llama.cpp token for token.
 *
 * Purpose.  The engine must feed a model exactly the ids llama.cpp would feed
 * it for the same GGUF file, or logits cannot be compared and prompts cached
 * by one cannot be reused by the other.  This module reads the tokenizer.ggml.*
 * keys of a GGUF file (a full model or a vocab-only file) and implements the
 * two tokenizer families the project's models use:
 *
 *   "llama"  SentencePiece-style (SPM): spaces become U+2581, an optional
 *            leading space, then greedy merging of the adjacent pair whose
 *            joined text is the highest-scoring vocabulary entry; text that
 *            never forms a token falls back to <0xXX> byte tokens.
 *   "gpt2"   byte-level BPE: a pre-tokenizer chosen by tokenizer.ggml.pre
 *            cuts the text into words (regexes, or hand-written splitters
 *            that behave like llama.cpp's), each word's bytes are mapped to
 *            the GPT-2 printable-unicode alphabet, and ranked merges from
 *            tokenizer.ggml.merges are applied lowest rank first.
 *   "gemma4" BPE on raw UTF-8 with U+2581 for spaces and <0xXX> fallback.
 *
 * Pre-tokenizers (tokenizer.ggml.pre): default, llama3/llama-bpe (and the
 * names llama.cpp maps to them), gpt-2, mpt, olmo, smollm, starcoder, refact,
 * command-r, qwen2, qwen35, stablelm2, deepseek-llm, deepseek-coder,
 * deepseek-v3, falcon, tekken, gpt-4o/llama4, chatglm, jais, jais-2, poro,
 * bloom, viking, chameleon, minicpm5, youtu, spark2_5, seed-coder,
 * bailingmoe, ufakzeka, grok-2, laguna, exaone, exaone-moe, granite,
 * gemma4, sarvam-moe ... (pre_defs in tok_pretok.c).  Not implemented
 * (NJ_EUNSUPPORTED at load): kimi-k2, afmoe, tiny_aya, superbpe, and the
 * tokenizer models bert (WordPiece), t5 (Unigram), rwkv, plamo2.
 *
 * Special tokens (control, user-defined, unknown) are cut out of the text
 * before either tokenizer runs, longest first, exactly as llama.cpp's
 * tokenizer_st_partition does.  Control tokens are recognised only when the
 * caller passes parse_special = true; NEVER set it for untrusted text (an
 * event field containing "<|im_end|>" must stay plain text).  User-defined
 * tokens are always recognised, as in llama.cpp and HF tokenizers.
 * tok_encode_ex adds "literal" byte spans in which no special token of any
 * kind may be matched: a rendered chat prompt is tokenized with its
 * template markers parsed as special and the message contents fenced off
 * (see nj_chat_tokenize).  Fencing only vetoes matches; the text between
 * accepted special tokens is tokenized exactly as tok_encode would, so for
 * content that holds no special-token text the ids are the same.
 *
 * Ownership.  tok_load borrows the GGUF mapping: token texts are views into
 * it, so the gguf_file must stay open until tok_free.  Everything else
 * (hash tables, merge table, piece cache, compiled regexes) is owned by the
 * nj_tok and allocated with nj_malloc at load; nothing grows afterwards.
 *
 * Threads.  An nj_tok is immutable after tok_load; every function below may
 * be called from any number of threads at once.  tok_encode allocates its
 * scratch per call (proportional to the input) and frees it before
 * returning; it keeps no cache between calls.
 *
 * Known differences from llama.cpp: Unicode character classes come from
 * utf8proc (Unicode 15.0 on Debian 12) while llama.cpp embeds a newer table,
 * so code points assigned after 15.0 may split differently.  Input that
 * makes llama.cpp's BPE tokenizer abort the process is handled instead:
 * 4-byte sequences above U+10FFFF read as U+FFFD, and an overlong-encoded
 * space in raw-UTF-8 BPE (gemma4) simply does not merge.  Where several
 * vocabulary entries could be the EOT/FIM token, llama.cpp's choice follows
 * hash-map order; ours follows a fixed priority list.  Same-length special
 * tokens that overlap in a text are tried in id order (llama.cpp: unspecified).
 */
#ifndef NJ_TOKENIZER_H
#define NJ_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct nj_tok nj_tok;

/* Tokenizer family (tokenizer.ggml.model). */
enum tok_type { TOK_TYPE_SPM = 1, TOK_TYPE_BPE = 2 };

/* Per-token attributes, the same bits llama.cpp uses (llama_token_attr). */
enum tok_attr {
    TOK_ATTR_UNDEFINED    = 0,
    TOK_ATTR_UNKNOWN      = 1 << 0,
    TOK_ATTR_UNUSED       = 1 << 1,
    TOK_ATTR_NORMAL       = 1 << 2,
    TOK_ATTR_CONTROL      = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE         = 1 << 5,
    TOK_ATTR_LSTRIP       = 1 << 7,
    TOK_ATTR_RSTRIP       = 1 << 8,
};

/* Load the tokenizer from an open GGUF file (needs only the tokenizer.ggml.*
 * keys, so vocab-only files work).  NULL on failure with *err set:
 * NJ_EFORMAT for missing/ill-typed keys, NJ_EUNSUPPORTED for a tokenizer
 * model or pre-tokenizer we do not implement (the message names it), -ENOMEM.
 * `f` is borrowed and must outlive the returned object. */
nj_tok *tok_load(const gguf_file *f, int *err);
void    tok_free(nj_tok *t);

/* Largest text tok_encode accepts (bytes); longer gives NJ_ETOOBIG. */
#define TOK_MAX_TEXT (256u << 20)

/* Encode `len` bytes of text (need not be NUL-terminated, may contain NUL).
 * add_special: add BOS/EOS as the model's add_bos/add_eos flags say.
 * parse_special: also recognise control tokens written as text ("<|im_end|>").
 * Writes min(count, max) ids and returns count, which may exceed max (call
 * again with a bigger buffer); < 0 on error (-ENOMEM, NJ_ETOOBIG). `ids` may
 * be NULL when max is 0. */
int tok_encode(const nj_tok *t, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t *ids, int max);

/* A byte range [off, off + len) of a text. */
typedef struct tok_span { size_t off, len; } tok_span;

/* tok_encode, except that no special token (control, user-defined or
 * unknown, whatever parse_special says) is recognised where its match would
 * overlap one of the n_literal spans in `literal`: such a match is skipped,
 * the search goes on from the next byte, and the bytes stay plain text.
 * Spans may come in any order, overlap, be empty or reach past the text
 * (they are clipped).  `literal` may be NULL when n_literal is 0, which is
 * tok_encode.  Returns as tok_encode; -EINVAL for n_literal < 0. */
int tok_encode_ex(const nj_tok *t, const char *text, size_t len, bool add_special,
                  bool parse_special, const tok_span *literal, int n_literal,
                  int32_t *ids, int max);

/* Bytes of one token's text, as llama_token_to_piece: byte-level BPE pieces
 * are mapped back from the GPT-2 alphabet, SPM U+2581 becomes a space and
 * <0x0A> becomes the byte 0x0A.  Control/unknown tokens render as "" unless
 * `special`.  Writes min(n, cap) bytes (no NUL) and returns n; < 0 for an id
 * out of range. */
int tok_piece(const nj_tok *t, int32_t id, bool special, char *buf, size_t cap);

/* Flags for tok_decode. */
enum {
    TOK_DECODE_SPECIAL       = 1 << 0, /* render control tokens' text             */
    TOK_DECODE_REMOVE_SPECIAL= 1 << 1, /* drop a leading BOS / trailing EOS the
                                          model adds by itself                     */
    TOK_DECODE_NO_CLEAN      = 1 << 2, /* skip the clean_up_tokenization_spaces
                                          pass even if the model asks for it       */
};
/* Detokenize n ids into buf, as llama_detokenize: concatenated pieces, the
 * SPM leading space removed, and (BPE models that ask for it) llama.cpp's
 * clean-up of " ." " ," " 's" ...  Returns the byte length (may exceed cap;
 * min(len, cap) bytes written, NUL added when len < cap) or < 0. */
int tok_decode(const nj_tok *t, const int32_t *ids, int n, unsigned flags,
               char *buf, size_t cap);

/* Vocabulary facts. */
int         tok_n_vocab(const nj_tok *t);
int         tok_type(const nj_tok *t);           /* enum tok_type */
const char *tok_pre_name(const nj_tok *t);       /* "smollm", "llama3", "" for SPM */
int32_t     tok_bos(const nj_tok *t);            /* -1 if none */
int32_t     tok_eos(const nj_tok *t);
int32_t     tok_eot(const nj_tok *t);
int32_t     tok_unk(const nj_tok *t);
int32_t     tok_pad(const nj_tok *t);
int32_t     tok_nl(const nj_tok *t);             /* id of "\n" (first id) */
bool        tok_add_bos(const nj_tok *t);
bool        tok_add_eos(const nj_tok *t);
bool        tok_is_eog(const nj_tok *t, int32_t id);  /* end of generation */
bool        tok_is_control(const nj_tok *t, int32_t id);
unsigned    tok_attr(const nj_tok *t, int32_t id);    /* enum tok_attr bits */
/* Raw vocabulary text of a token (not NUL-terminated); NULL if out of range. */
const char *tok_text(const nj_tok *t, int32_t id, size_t *len);
/* Exact-text lookup of a vocabulary entry; -1 if absent. */
int32_t     tok_find(const nj_tok *t, const char *text, size_t len);

#endif
