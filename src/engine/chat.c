/*
 * chat — see chat.h.  Each family's renderer is written from the documented
 * prompt format (and checked byte for byte against llama.cpp's
 * llama_chat_apply_template by scripts/conformance-tokenizer).
 *
 * Output goes through a tiny writer that counts every byte and stores the
 * ones that fit, so one pass both measures and fills.
 */
#include "chat.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* spans: when not NULL, every message content written gets its byte range
 * appended (room for one per message; each content is written at most once). */
typedef struct { char *buf; size_t cap, len; tok_span *spans; int n_spans; } writer;

static void put(writer *w, const char *s, size_t n) {
    if (w->len < w->cap) {
        size_t k = NJ_MIN(n, w->cap - w->len);
        memcpy(w->buf + w->len, s, k);
    }
    w->len += n;
}
static void puts_(writer *w, const char *s) { put(w, s, strlen(s)); }

static inline int c_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* content with C-locale whitespace trimmed at both ends */
static void put_trim(writer *w, const char *s) {
    size_t b = 0, e = strlen(s);
    while (b < e && c_space((unsigned char)s[b])) b++;
    while (e > b && c_space((unsigned char)s[e - 1])) e--;
    put(w, s + b, e - b);
}

/* Message content: written like puts_/put_trim, and its range recorded. */
static void put_content(writer *w, const char *s, bool trim) {
    size_t at = w->len;
    if (trim) put_trim(w, s); else puts_(w, s);
    if (w->spans) w->spans[w->n_spans++] = (tok_span){at, w->len - at};
}

static const char *const names[CHAT_COUNT] = {
    [CHAT_CHATML] = "chatml", [CHAT_LLAMA3] = "llama3", [CHAT_LLAMA2] = "llama2",
    [CHAT_LLAMA2_SYS] = "llama2-sys", [CHAT_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [CHAT_LLAMA2_SYS_STRIP] = "llama2-sys-strip", [CHAT_MISTRAL_V1] = "mistral-v1",
    [CHAT_MISTRAL_V3] = "mistral-v3", [CHAT_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [CHAT_MISTRAL_V7] = "mistral-v7", [CHAT_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [CHAT_GEMMA] = "gemma", [CHAT_PHI3] = "phi3",
};

/* Names llama.cpp accepts that we do not render. */
static const char *const foreign_names[] = {
    "phi4", "falcon3", "zephyr", "monarch", "orion", "openchat", "vicuna", "vicuna-orca",
    "deepseek", "deepseek2", "deepseek3", "deepseek-ocr", "command-r", "chatglm3", "chatglm4",
    "glmedge", "minicpm", "exaone3", "exaone4", "exaone-moe", "rwkv-world", "granite",
    "granite-4.0", "granite-4.1", "gigachat", "megrez", "yandex", "bailing", "bailing-think",
    "bailing2", "llama4", "smolvlm", "hunyuan-moe", "gpt-oss", "hunyuan-dense", "hunyuan-vl",
    "kimi-k2", "seed_oss", "grok-2", "pangu-embed", "solar-open", NULL,
};

const char *chat_name(int tmpl) {
    return tmpl >= 0 && tmpl < CHAT_COUNT ? names[tmpl] : "?";
}

const char *chat_known_names(void) {
    static char list[256];
    if (!list[0]) {
        size_t n = 0;
        for (int i = 0; i < CHAT_COUNT; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", names[i]);
    }
    return list;
}

int chat_from_name(const char *name) {
    if (!name) return nj_fail(-EINVAL, "chat template: no name given (known: %s)", chat_known_names());
    for (int i = 0; i < CHAT_COUNT; i++)
        if (!strcmp(name, names[i])) return i;
    for (const char *const *f = foreign_names; *f; f++)
        if (!strcmp(name, *f))
            return nj_fail(NJ_EUNSUPPORTED, "chat template '%s' is not implemented in nightjar (known: %s)",
                           name, chat_known_names());
    return nj_fail(-EINVAL, "unknown chat template '%s' (known: %s)", name, chat_known_names());
}

/* ---- detection ---- */

typedef struct { const char *s; size_t n; } text;

static bool has(text t, const char *needle) {
    size_t k = strlen(needle);
    return k <= t.n && memmem(t.s, t.n, needle, k) != NULL;
}

static int foreign(const char *family) {
    return nj_fail(NJ_EUNSUPPORTED,
                   "chat template looks like '%s', which nightjar does not implement; "
                   "choose one with a template override (known: %s)", family, chat_known_names());
}

int chat_detect(const char *tmpl_text, size_t len) {
    text t = {tmpl_text ? tmpl_text : "", tmpl_text ? len : 0};
    /* a bare name selects the family */
    if (t.n < 64) {
        char nm[64];
        memcpy(nm, t.s, t.n);
        nm[t.n] = 0;
        for (int i = 0; i < CHAT_COUNT; i++)
            if (!strcmp(nm, names[i])) return i;
        for (const char *const *f = foreign_names; *f; f++)
            if (!strcmp(nm, *f)) return foreign(*f);
    }
    /* the same checks, in the same order, as llama.cpp */
    if (has(t, "<|im_start|>")) {
        if (has(t, "<|im_sep|>")) return foreign("phi4");
        if (has(t, "<end_of_utterance>")) return foreign("smolvlm");
        return CHAT_CHATML;
    }
    if ((t.n >= 7 && memcmp(t.s, "mistral", 7) == 0) || has(t, "[INST]")) {
        if (has(t, "[SYSTEM_PROMPT]")) return CHAT_MISTRAL_V7;
        if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
            if (has(t, " [INST]")) return CHAT_MISTRAL_V1;
            if (has(t, "\"[INST]\"")) return CHAT_MISTRAL_V3_TEKKEN;
            return CHAT_MISTRAL_V3;
        }
        if (has(t, "content.strip()")) return CHAT_LLAMA2_SYS_STRIP;
        if (has(t, "bos_token + '[INST]")) return CHAT_LLAMA2_SYS_BOS;
        if (has(t, "<<SYS>>")) return CHAT_LLAMA2_SYS;
        return CHAT_LLAMA2;
    }
    if (has(t, "<|assistant|>") && has(t, "<|end|>")) return CHAT_PHI3;
    if (has(t, "[gMASK]<sop>")) return foreign("chatglm4");
    if (has(t, "<|assistant|>") && has(t, "<|user|>")) {
        if (has(t, "<|tool_declare|>")) return foreign("exaone-moe");
        return foreign(has(t, "</s>") ? "falcon3" : "glmedge");
    }
    if (has(t, "<|{{ item['role'] }}|>") && has(t, "<|begin_of_image|>")) return foreign("glmedge");
    if (has(t, "<|user|>") && has(t, "<|endoftext|>")) return foreign("zephyr");
    if (has(t, "bos_token + message['role']")) return foreign("monarch");
    if (has(t, "<start_of_turn>")) return CHAT_GEMMA;
    if (has(t, "'\\n\\nAssistant: ' + eos_token")) return foreign("orion");
    if (has(t, "GPT4 Correct ")) return foreign("openchat");
    if (has(t, "USER: ") && has(t, "ASSISTANT: ")) return foreign("vicuna");
    if (has(t, "### Instruction:") && has(t, "<|EOT|>")) return foreign("deepseek");
    if (has(t, "<|START_OF_TURN_TOKEN|>") && has(t, "<|USER_TOKEN|>")) return foreign("command-r");
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) return CHAT_LLAMA3;
    return nj_fail(NJ_EUNSUPPORTED,
                   "chat template not recognised (or of a family nightjar does not implement); "
                   "choose one with a template override (known: %s)", chat_known_names());
}

/* ---- rendering ---- */

int chat_apply(int tmpl, const nj_chat_msg *msgs, int n, bool add_ass, char *buf, size_t cap) {
    return chat_apply_spans(tmpl, msgs, n, add_ass, buf, cap, NULL, NULL);
}

int chat_apply_spans(int tmpl, const nj_chat_msg *msgs, int n, bool add_ass, char *buf, size_t cap,
                     tok_span *spans, int *n_spans) {
    writer w = {buf, buf ? cap : 0, 0, spans, 0};
    if (n_spans) *n_spans = 0;
    if (tmpl < 0 || tmpl >= CHAT_COUNT)
        return nj_fail(-EINVAL, "chat template id %d out of range (known: %s)", tmpl, chat_known_names());
    if (n < 0 || (n && !msgs)) return nj_fail(-EINVAL, "chat: bad message list");
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content) return nj_fail(-EINVAL, "chat: message %d has a NULL field", i);

    switch (tmpl) {
    case CHAT_CHATML:
        /* <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n */
        for (int i = 0; i < n; i++) {
            puts_(&w, "<|im_start|>"); puts_(&w, msgs[i].role); puts_(&w, "\n");
            put_content(&w, msgs[i].content, false); puts_(&w, "<|im_end|>\n");
        }
        if (add_ass) puts_(&w, "<|im_start|>assistant\n");
        break;

    case CHAT_LLAMA3:
        /* <|start_header_id|>{role}<|end_header_id|>\n\n{trimmed}<|eot_id|> */
        for (int i = 0; i < n; i++) {
            puts_(&w, "<|start_header_id|>"); puts_(&w, msgs[i].role);
            puts_(&w, "<|end_header_id|>\n\n"); put_content(&w, msgs[i].content, true);
            puts_(&w, "<|eot_id|>");
        }
        if (add_ass) puts_(&w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;

    case CHAT_LLAMA2: case CHAT_LLAMA2_SYS: case CHAT_LLAMA2_SYS_BOS: case CHAT_LLAMA2_SYS_STRIP: {
        /* [INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST]{assistant}</s>[INST] ...
         * The first [INST] has no <s>: the tokenizer adds BOS. */
        bool sys_ok = tmpl != CHAT_LLAMA2;
        bool bos_in_history = tmpl == CHAT_LLAMA2_SYS_BOS;
        bool strip = tmpl == CHAT_LLAMA2_SYS_STRIP;
        bool inside = true;
        puts_(&w, "[INST] ");
        for (int i = 0; i < n; i++) {
            const char *role = msgs[i].role;
            if (!inside) { inside = true; puts_(&w, bos_in_history ? "<s>[INST] " : "[INST] "); }
            if (!strcmp(role, "system")) {
                if (sys_ok) { puts_(&w, "<<SYS>>\n"); }
                put_content(&w, msgs[i].content, strip);
                puts_(&w, sys_ok ? "\n<</SYS>>\n\n" : "\n");
            } else if (!strcmp(role, "user")) {
                put_content(&w, msgs[i].content, strip);
                puts_(&w, " [/INST]");
            } else {
                put_content(&w, msgs[i].content, strip);
                puts_(&w, "</s>");
                inside = false;
            }
        }
        break;
    }

    case CHAT_MISTRAL_V1: case CHAT_MISTRAL_V3: case CHAT_MISTRAL_V3_TEKKEN: {
        /* v1: " [INST] {user} [/INST] {assistant}</s>"; v3: "[INST] {user}[/INST] {assistant}</s>"
         * (assistant trimmed); v3-tekken: "[INST]{user}[/INST]{assistant}</s>".  System
         * text opens the next [INST] followed by a blank line. */
        const char *lead = tmpl == CHAT_MISTRAL_V1 ? " " : "";
        const char *trail = tmpl == CHAT_MISTRAL_V3_TEKKEN ? "" : " ";
        bool trim_ass = tmpl == CHAT_MISTRAL_V3;
        bool inside = false;
        for (int i = 0; i < n; i++) {
            if (!inside) { puts_(&w, lead); puts_(&w, "[INST]"); puts_(&w, trail); inside = true; }
            const char *role = msgs[i].role;
            if (!strcmp(role, "system")) {
                put_content(&w, msgs[i].content, false); puts_(&w, "\n\n");
            } else if (!strcmp(role, "user")) {
                put_content(&w, msgs[i].content, false); puts_(&w, lead); puts_(&w, "[/INST]");
            } else {
                puts_(&w, trail);
                put_content(&w, msgs[i].content, trim_ass);
                puts_(&w, "</s>");
                inside = false;
            }
        }
        break;
    }

    case CHAT_MISTRAL_V7: case CHAT_MISTRAL_V7_TEKKEN: {
        /* [SYSTEM_PROMPT] {sys}[/SYSTEM_PROMPT][INST] {user}[/INST] {assistant}</s> */
        const char *sp = tmpl == CHAT_MISTRAL_V7 ? " " : "";
        for (int i = 0; i < n; i++) {
            const char *role = msgs[i].role;
            if (!strcmp(role, "system")) {
                puts_(&w, "[SYSTEM_PROMPT]"); puts_(&w, sp); put_content(&w, msgs[i].content, false);
                puts_(&w, "[/SYSTEM_PROMPT]");
            } else if (!strcmp(role, "user")) {
                puts_(&w, "[INST]"); puts_(&w, sp); put_content(&w, msgs[i].content, false); puts_(&w, "[/INST]");
            } else {
                puts_(&w, sp); put_content(&w, msgs[i].content, false); puts_(&w, "</s>");
            }
        }
        break;
    }

    case CHAT_GEMMA: {
        /* <start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n...
         * Gemma has no system role: the (trimmed) system text is held and put in
         * front of the next non-model turn.  "assistant" is called "model". */
        const char *sys[64];
        int nsys = 0;
        for (int i = 0; i < n; i++) {
            const char *role = msgs[i].role;
            if (!strcmp(role, "system")) {
                if (nsys < (int)NJ_ARRAY_LEN(sys)) sys[nsys++] = msgs[i].content;
                continue;
            }
            bool model = !strcmp(role, "assistant");
            puts_(&w, "<start_of_turn>"); puts_(&w, model ? "model" : role); puts_(&w, "\n");
            if (nsys && !model) {
                size_t before = w.len;
                for (int k = 0; k < nsys; k++) put_content(&w, sys[k], true);
                if (w.len > before) puts_(&w, "\n\n");
                nsys = 0;
            }
            put_content(&w, msgs[i].content, true);
            puts_(&w, "<end_of_turn>\n");
        }
        if (add_ass) puts_(&w, "<start_of_turn>model\n");
        break;
    }

    case CHAT_PHI3:
        /* <|{role}|>\n{content}<|end|>\n ... <|assistant|>\n */
        for (int i = 0; i < n; i++) {
            puts_(&w, "<|"); puts_(&w, msgs[i].role); puts_(&w, "|>\n");
            put_content(&w, msgs[i].content, false); puts_(&w, "<|end|>\n");
        }
        if (add_ass) puts_(&w, "<|assistant|>\n");
        break;
    }

    if (w.len > (size_t)INT32_MAX) return nj_fail(NJ_ETOOBIG, "chat: prompt too long");
    if (buf && w.len < cap) buf[w.len] = 0;
    if (n_spans) *n_spans = w.n_spans;
    return (int)w.len;
}
