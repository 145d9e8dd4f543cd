/*
 * fuzz/tokenizer — libFuzzer target for tok_encode / tok_decode on
 * arbitrary bytes (event fields reach the tokenizer verbatim).
 *
 * Vocabularies are built in memory at start: a byte-level BPE one (the full
 * 256-character alphabet, some merges, control and user-defined tokens)
 * loaded under several pre-tokenizers (hand-written splitters, collapsed and
 * UTF regexes, raw-UTF-8 gemma4 rules), and an SPM one with byte tokens.
 * The first input byte picks the tokenizer and the add_special /
 * parse_special flags; the rest is the text.
 *
 * Properties: encode never fails except -ENOMEM; every id is in range; the
 * count is the same when asked with a too-small buffer; for valid UTF-8
 * without special parsing, byte-level BPE decodes back to the exact input;
 * no memory is left allocated after each call.  Built and run by
 * scripts/fuzz.
 */
#include "gguf.h"
#include "tokenizer.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint8_t *p; size_t n, cap; } buf;
static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) { b->cap = (b->n + n) * 2 + 256; b->p = realloc(b->p, b->cap); }
    memcpy(b->p + b->n, d, n); b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_s(buf *b, const char *s, size_t n) { put_u64(b, n); put(b, s, n); }
static void kv_str(buf *b, const char *k, const char *v) {
    put_s(b, k, strlen(k)); put_u32(b, GGUF_T_STRING); put_s(b, v, strlen(v));
}
static void kv_arr_hdr(buf *b, const char *k, uint32_t et, uint64_t n) {
    put_s(b, k, strlen(k)); put_u32(b, GGUF_T_ARRAY); put_u32(b, et); put_u64(b, n);
}

/* Text of the GPT-2 alphabet character for byte c. */
static int alpha(int c, char *o) {
    static int map[256], ready;
    if (!ready) {
        int n = 0;
        for (int i = 0; i < 256; i++) {
            int keep = (i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
            map[i] = keep ? i : 256 + n++;
        }
        ready = 1;
    }
    int cp = map[c];
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static const char *const merges[] = {"t h", "th e", "i n", "in g", "\xC4\xA0 t", "\xC4\xA0t he",
                                     "e r", "o n", "\xC4\xA0 a", "a n", "an d", "1 2", "12 3",
                                     "\xC4\x8A \xC4\x8A", "\xC4\xA0 \xC4\xA0"};

static buf make_bpe(const char *model, const char *pre) {
    enum { NM = sizeof merges / sizeof merges[0] };
    buf b = {0};
    put(&b, "GGUF", 4); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 7);
    kv_str(&b, "tokenizer.ggml.model", model);
    kv_str(&b, "tokenizer.ggml.pre", pre);
    int n_tok = 256 + NM + 3;
    kv_arr_hdr(&b, "tokenizer.ggml.tokens", GGUF_T_STRING, (uint64_t)n_tok);
    for (int c = 0; c < 256; c++) { char o[2]; int k = alpha(c, o); put_s(&b, o, (size_t)k); }
    for (int i = 0; i < NM; i++) {   /* merge results: "a b" -> "ab" */
        char tmp[32]; size_t k = 0;
        for (const char *p = merges[i]; *p; p++) if (*p != ' ') tmp[k++] = *p;
        put_s(&b, tmp, k);
    }
    put_s(&b, "<|im_start|>", 12); put_s(&b, "<|im_end|>", 10); put_s(&b, "<u>", 3);
    kv_arr_hdr(&b, "tokenizer.ggml.token_type", GGUF_T_INT32, (uint64_t)n_tok);
    for (int i = 0; i < n_tok; i++) put_u32(&b, i < n_tok - 3 ? 1 : i < n_tok - 1 ? 3 : 4);
    kv_arr_hdr(&b, "tokenizer.ggml.merges", GGUF_T_STRING, NM);
    for (int i = 0; i < NM; i++) put_s(&b, merges[i], strlen(merges[i]));
    put_s(&b, "tokenizer.ggml.eos_token_id", 27); put_u32(&b, GGUF_T_UINT32); put_u32(&b, (uint32_t)(n_tok - 2));
    put_s(&b, "tokenizer.ggml.bos_token_id", 27); put_u32(&b, GGUF_T_UINT32); put_u32(&b, (uint32_t)(n_tok - 3));
    return b;
}

static buf make_spm(void) {
    static const char *const pieces[] = {"\xE2\x96\x81", "a", "b", "e", "t", "h", "\xE2\x96\x81t",
                                         "th", "\xE2\x96\x81th", "\xE2\x96\x81the", "\xE2\x96\x81\xE2\x96\x81"};
    enum { NP = sizeof pieces / sizeof pieces[0] };
    int n_tok = 3 + 256 + NP;
    buf b = {0};
    put(&b, "GGUF", 4); put_u32(&b, 3); put_u64(&b, 0); put_u64(&b, 4);
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_arr_hdr(&b, "tokenizer.ggml.tokens", GGUF_T_STRING, (uint64_t)n_tok);
    put_s(&b, "<unk>", 5); put_s(&b, "<s>", 3); put_s(&b, "</s>", 4);
    for (int c = 0; c < 256; c++) { char h[8]; snprintf(h, sizeof h, "<0x%02X>", c); put_s(&b, h, 6); }
    for (int i = 0; i < NP; i++) put_s(&b, pieces[i], strlen(pieces[i]));
    kv_arr_hdr(&b, "tokenizer.ggml.token_type", GGUF_T_INT32, (uint64_t)n_tok);
    put_u32(&b, 2); put_u32(&b, 3); put_u32(&b, 3);
    for (int c = 0; c < 256; c++) put_u32(&b, 6);
    for (int i = 0; i < NP; i++) put_u32(&b, 1);
    kv_arr_hdr(&b, "tokenizer.ggml.scores", GGUF_T_FLOAT32, (uint64_t)n_tok);
    for (int i = 0; i < n_tok; i++) { float s = i < 259 ? 0.0f : -(float)(i % 7); put(&b, &s, 4); }
    return b;
}

enum { N_TOK = 9 };
static nj_tok *toks[N_TOK];
static gguf_file *files[N_TOK];
static buf bufs[N_TOK];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    static const char *const pres[] = {"default", "llama-bpe", "qwen2", "gpt-2", "smollm",
                                       "deepseek-llm", "tekken", "gemma4"};
    for (int i = 0; i < N_TOK; i++) {
        bufs[i] = i < 8 ? make_bpe(i == 7 ? "gemma4" : "gpt2", pres[i]) : make_spm();
        int err = 0;
        files[i] = gguf_open_mem(bufs[i].p, bufs[i].n, &err);
        toks[i] = files[i] ? tok_load(files[i], &err) : NULL;
        if (!toks[i]) { fprintf(stderr, "fuzz/tokenizer: setup %d failed: %s\n", i, nj_last_error()); abort(); }
    }
    return 0;
}

static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || i + k > n) return 0;
        uint32_t cp = k == 1 ? c : (uint32_t)(c & (0x7F >> k));
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int which = data[0] % N_TOK;
    bool add = data[0] & 0x10, special = data[0] & 0x20;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const nj_tok *t = toks[which];

    size_t base = nj_mem_in_use();
    int32_t small[4];
    int n = tok_encode(t, text, len, add, special, small, 4);
    if (n < 0) { if (n != -ENOMEM) abort(); return 0; }
    int32_t *ids = malloc(sizeof *ids * (size_t)(n + 1));
    int n2 = tok_encode(t, text, len, add, special, ids, n);
    if (n2 != n) abort();
    for (int i = 0; i < n; i++) if (ids[i] < 0 || ids[i] >= tok_n_vocab(t)) abort();
    if (n > 0 && memcmp(small, ids, sizeof *ids * (size_t)(n < 4 ? n : 4)) != 0) abort();

    int m = tok_decode(t, ids, n, TOK_DECODE_SPECIAL, NULL, 0);
    if (m < 0) abort();
    char *back = malloc((size_t)m + 1);
    if (tok_decode(t, ids, n, TOK_DECODE_SPECIAL, back, (size_t)m + 1) != m) abort();
    /* byte-level BPE with its full alphabet is lossless on valid UTF-8 */
    free(back);
    if (which < 7 && !add && !special && valid_utf8((const uint8_t *)text, len)) {
        int k = tok_decode(t, ids, n, TOK_DECODE_NO_CLEAN, NULL, 0);
        if (k != (int)len) abort();
        back = malloc(len + 1);
        if (tok_decode(t, ids, n, TOK_DECODE_NO_CLEAN, back, len + 1) != k || memcmp(back, text, len) != 0) abort();
        free(back);
    }
    free(ids);
    if (nj_mem_in_use() != base) abort();
    return 0;
}
