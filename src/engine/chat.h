/*
 * chat — render a conversation into the prompt text a chat model expects.
 *
 * Purpose.  Instruction-tuned models are trained on conversations wrapped in
 * model-specific markers (ChatML's <|im_start|>, Llama 3's header ids, ...).
 * GGUF files carry the original Jinja template in tokenizer.chat_template;
 * like llama.cpp's llama_chat_apply_template we do not run Jinja: we
 * recognise the family by distinctive substrings of the template (in the
 * same order llama.cpp's llm_chat_detect_template checks them, so both pick
 * the same family) and render it with hand-written code that produces the
 * same bytes as llama.cpp.
 *
 * Families: chatml (Qwen, SmolLM), llama3, llama2 and its -sys, -sys-bos,
 * -sys-strip variants, mistral-v1/-v3/-v3-tekken/-v7/-v7-tekken, gemma
 * (Gemma 2/3: system text folded into the first user turn), phi3.
 * A template of a family we do not implement fails with NJ_EUNSUPPORTED and
 * a message naming the family and listing the known names; the caller can
 * override with chat_from_name().
 *
 * The rendered prompt contains control-token text; tokenize it with
 * parse_special = true.  Message contents are inserted verbatim (the
 * renderer must match llama.cpp byte for byte), so content holding
 * "<|im_end|>" would become a real control token.  chat_apply_spans reports
 * where each content landed so the tokenizer can fence those bytes off
 * (tok_encode_ex literal spans; nj_chat_tokenize does both).  Roles are
 * written as template text and are NOT fenced: pass only known role names.  BOS is not part of the text:
 * the tokenizer adds it when the model asks for it.
 *
 * Ownership/threads: pure functions over caller memory; no state.
 */
#ifndef NJ_CHAT_H
#define NJ_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "nightjar.h"   /* nj_chat_msg */
#include "tokenizer.h"  /* tok_span */

enum chat_tmpl {
    CHAT_CHATML = 0,
    CHAT_LLAMA3,
    CHAT_LLAMA2,
    CHAT_LLAMA2_SYS,
    CHAT_LLAMA2_SYS_BOS,
    CHAT_LLAMA2_SYS_STRIP,
    CHAT_MISTRAL_V1,
    CHAT_MISTRAL_V3,
    CHAT_MISTRAL_V3_TEKKEN,
    CHAT_MISTRAL_V7,
    CHAT_MISTRAL_V7_TEKKEN,
    CHAT_GEMMA,
    CHAT_PHI3,
    CHAT_COUNT
};

/* Family of a Jinja template text (len bytes, need not be NUL-terminated).
 * A text equal to one of our names selects that family.  Returns a
 * chat_tmpl >= 0, or NJ_EUNSUPPORTED with nj_last_error() saying which
 * family it looks like (or that it is not recognised) and the known names. */
int chat_detect(const char *tmpl_text, size_t len);

/* Family by name ("chatml", "llama3", ...).  -EINVAL for an unknown name,
 * NJ_EUNSUPPORTED for a name llama.cpp knows but we do not implement; both
 * with a message listing the known names. */
int chat_from_name(const char *name);

const char *chat_name(int tmpl);         /* "chatml"...; "?" if out of range */
const char *chat_known_names(void);      /* "chatml, llama3, ..." */

/* Render msgs[0..n) (role and content NUL-terminated) with family `tmpl`.
 * add_assistant: end with the header that opens the assistant's turn (for
 * families that have one).  Writes min(len, cap) bytes into buf, plus a NUL
 * when len < cap, and returns len (may exceed cap: call again with more);
 * -EINVAL for a bad family or NULL message fields. */
int chat_apply(int tmpl, const nj_chat_msg *msgs, int n, bool add_assistant,
               char *buf, size_t cap);

/* chat_apply, and when `spans` is not NULL also the byte range of every
 * message content in the rendered text, in text order: spans must have room
 * for n entries; *n_spans (if not NULL) gets how many were written (<= n:
 * Gemma drops system texts it cannot fold, trimmed contents may be empty).
 * Ranges are offsets into the full text even when it did not fit in cap.
 * The text is byte-identical to chat_apply's. */
int chat_apply_spans(int tmpl, const nj_chat_msg *msgs, int n, bool add_assistant,
                     char *buf, size_t cap, tok_span *spans, int *n_spans);

#endif
