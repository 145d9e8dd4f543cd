/*
 * guard — see guard.h.  The patterns below are the families of prompt
 * injection, each written as behaviour (what the text tries to do), not as
 * any particular payload.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "guard.h"

#include <pcre2.h>
#include <pthread.h>
#include <errno.h>
#include <string.h>

#include "util.h"

/* back: the span grows backward to the start of its sentence (the pattern
 * matches in the middle of one); all spans grow forward to its end, except
 * value spans (value: an assignment), which end where the assigned value
 * ends (',', '}', ';', a newline). */
static const struct { bool back, value; const char *re; } patterns[] = {
    /* orders to drop or replace the instructions */
    {true, false, "\\b(?:ignore|disregard|forget|override|bypass)\\b[^.\\n]{0,40}?"
           "\\b(?:instructions?|rules?|prompts?|guidelines|directions|directives|context|above|everything)\\b"},
    /* role markers and chat-template tokens */
    {false, false, "\\b(?:system|assistant|developer)\\s*(?:prompt\\s*)?:"},
    {false, false, "<\\|[a-z_]{2,24}\\|>|\\[/?INST\\]|<</?SYS>>|<(?:start|end)_of_turn>|###\\s*(?:instruction|response|system)\\b"},
    /* the prompt's own fence */
    {false, false, "</?\\s*event\\s*>"},
    /* verdict or label assignments, JSON verdicts */
    {false, true, "\\b(?:verdict|label|classification|severity)\\b\\s*[\"']?\\s*[:=]"},
    /* requests to classify the event one way */
    {true, false, "\\b(?:classify|flag|mark|label|rate|treat|report|consider|answer|respond|reply|output|return|judge|score)\\b"
           "[^.\\n]{0,40}?\\b(?:benign|malicious|suspicious|harmless|legitimate)\\b"},
    /* claims about the event, addressed to whoever judges it */
    {true, false, "\\b(?:this|the)\\s+(?:event|command|process|activity|action|request|line|script|file|binary)\\b[^.\\n]{0,30}?"
           "\\b(?:is|was|are)\\s+(?:\\w+\\s+){0,2}?(?:benign|safe|harmless|routine|legitimate|authori[sz]ed|approved|"
           "expected|normal|malicious|a false positive)\\b"},
    {true, false, "\\b(?:approved|authori[sz]ed|whitelisted|allow-?listed|sanctioned|cleared|signed\\s+off)\\b[^.\\n]{0,30}?"
           "\\bby\\s+(?:the\\s+)?(?:security|soc|it|admin|blue|red|incident)"},
    {true, false, "\\b(?:security|soc|it|admin\\w*|blue)\\s+team\\b[^.\\n]{0,20}?"
           "\\b(?:approved|authori[sz]ed|cleared|allowed|sanctioned|whitelisted|verified)\\b"},
    /* forged "field: value" lines after a newline */
    {false, false, "\\n(?:kind|source|user|process|command line|working directory|parent process|parent command line|"
            "verdict|summary|techniques)\\s*:"},
    /* text addressed to an AI reader */
    {false, false, "\\b(?:dear|attention|hey|note\\s+(?:to|for))\\s+(?:the\\s+)?(?:ai|assistant|analyst|model|llm|reviewer|"
            "classifier|bot|detector)\\b"},
    {true, false, "\\b(?:you\\s+are\\s+now|as\\s+an\\s+ai|you\\s+must\\s+(?:answer|say|reply|respond|output|classify|ignore)|"
           "do\\s+not\\s+(?:flag|report|alert|classify|mark))\\b"},
};
#define N_PATTERNS (sizeof patterns / sizeof patterns[0])

static pcre2_code    *codes[N_PATTERNS];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int            init_rc;

static void compile_all(void) {
    for (size_t i = 0; i < N_PATTERNS; i++) {
        int ec;
        PCRE2_SIZE off;
        codes[i] = pcre2_compile((PCRE2_SPTR)patterns[i].re, PCRE2_ZERO_TERMINATED,
                                 PCRE2_CASELESS | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &off, NULL);
        if (!codes[i]) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(ec, msg, sizeof msg);
            init_rc = nj_fail(NJ_ESTATE, "guard pattern %zu does not compile at %zu: %s", i, (size_t)off, (char *)msg);
            return;
        }
        pcre2_jit_compile(codes[i], PCRE2_JIT_COMPLETE);   /* interpreted if JIT is unavailable */
    }
}

int guard_init(void) {
    pthread_once(&once, compile_all);
    return init_rc;
}

static bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* A span grows to its sentence: back to the previous separator, forward to
 * the end of the sentence.  Shell separators end a sentence both ways, so a
 * span never swallows the next command of a command line. */
static bool is_sep_back(char c) {
    return c == '.' || c == '!' || c == '?' || c == '\n' || c == ';' || c == '|' || c == '&' || c == '\'' ||
           c == '"' || c == '/' || c == '#' || c == '(' || c == ')';
}
static bool is_sep_fwd(char c) {
    return c == '.' || c == '!' || c == '?' || c == '\n' || c == ';' || c == '|' || c == '&' || c == '\'' ||
           c == '"' || c == '#' || c == '`' || c == '$' || c == '(' || c == ')';
}

static int add_span(guard_span *sp, int ns, int max, size_t a, size_t b, bool comment) {
    /* merge with any overlapping or touching span, keep sorted */
    for (int i = 0; i < ns; i++) {
        if (a <= sp[i].end && b >= sp[i].start) {
            sp[i].start = a < sp[i].start ? a : sp[i].start;
            sp[i].end = b > sp[i].end ? b : sp[i].end;
            sp[i].comment = sp[i].comment && comment;
            /* the grown span may now touch later ones */
            int j = i + 1;
            while (j < ns && sp[j].start <= sp[i].end) {
                if (sp[j].end > sp[i].end) sp[i].end = sp[j].end;
                memmove(&sp[j], &sp[j + 1], (size_t)(ns - j - 1) * sizeof *sp);
                ns--;
            }
            return ns;
        }
    }
    if (ns == max) {   /* out of room: fold into the last span (hides more, never less) */
        if (b > sp[ns - 1].end) sp[ns - 1].end = b;
        if (a < sp[ns - 1].start) sp[ns - 1].start = a;
        sp[ns - 1].comment = sp[ns - 1].comment && comment;
        /* the grown span may now reach back over earlier ones */
        while (ns > 1 && sp[ns - 2].end >= sp[ns - 1].start) {
            if (sp[ns - 1].start < sp[ns - 2].start) sp[ns - 2].start = sp[ns - 1].start;
            sp[ns - 2].end = sp[ns - 1].end;
            sp[ns - 2].comment = sp[ns - 2].comment && sp[ns - 1].comment;
            ns--;
        }
        return ns;
    }
    int k = ns;
    while (k > 0 && sp[k - 1].start > a) k--;
    memmove(&sp[k + 1], &sp[k], (size_t)(ns - k) * sizeof *sp);
    sp[k] = (guard_span){a, b, comment};
    return ns + 1;
}

/* The offset of an unquoted `#` that starts a word, or n. */
static size_t comment_start(const char *s, size_t n) {
    char q = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (q == '\'') { if (c == '\'') q = 0; continue; }
        if (c == '\\') { i++; continue; }
        if (q == '"') { if (c == '"') q = 0; continue; }
        if (c == '\'' || c == '"') { q = c; continue; }
        if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t' || s[i - 1] == '\n' || s[i - 1] == ';'))
            return i;
    }
    return n;
}

int guard_scan(const char *s, size_t n, bool shell_comment, guard_span *spans, int max) {
    int rc = guard_init();
    if (rc) return rc;
    if (!s || n == 0 || max <= 0) return 0;
    int ns = 0;
    if (shell_comment) {
        size_t c = comment_start(s, n);
        if (c < n) {
            size_t e = c;
            while (e < n && s[e] != '\n') e++;
            while (c > 0 && (s[c - 1] == ' ' || s[c - 1] == '\t')) c--;
            ns = add_span(spans, ns, max, c, e, true);
        }
    }
    for (size_t p = 0; p < N_PATTERNS; p++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(codes[p], NULL);
        if (!md) return -ENOMEM;
        size_t off = 0;
        while (off < n) {
            int r = pcre2_match(codes[p], (PCRE2_SPTR)s, n, off, 0, md, NULL);
            if (r < 0) break;   /* no match (or a match limit: nothing more to hide) */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t a = ov[0], b = ov[1];
            if (patterns[p].back)
                while (a > 0 && !is_sep_back(s[a - 1])) a--;
            if (patterns[p].value)
                while (b < n && s[b] != ',' && s[b] != '}' && s[b] != ';' && s[b] != '\n') b++;
            else
                while (b < n && !is_sep_fwd(s[b])) b++;
            while (a < n && is_cont((unsigned char)s[a])) a++;
            while (b < n && is_cont((unsigned char)s[b])) b++;
            ns = add_span(spans, ns, max, a, b, false);
            off = ov[1] > off ? ov[1] : off + 1;
            while (off < n && is_cont((unsigned char)s[off])) off++;
        }
        pcre2_match_data_free(md);
    }
    return ns;
}

void guard_clean(rbuf *b, const char *s, size_t n, const guard_span *spans, int ns) {
    size_t at = 0;
    for (int i = 0; i < ns; i++) {
        if (spans[i].start > at) rbuf_put(b, s + at, spans[i].start - at);
        at = spans[i].end;
    }
    if (at < n) rbuf_put(b, s + at, n - at);
}

/* Cleans every string below j in place (j is the caller's private copy). */
static int clean_tree(json_t *j, const char *key, int depth, int *hidden, rbuf *tmp) {
    if (depth > 16) return 0;   /* canonical events are shallow; deeper is data nobody renders */
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            if (depth == 0 && (!strcmp(k, "raw") || !strcmp(k, "id") || !strcmp(k, "time") || !strcmp(k, "kind") ||
                               !strcmp(k, "v")))
                continue;
            int rc = clean_tree(v, k, depth + 1, hidden, tmp);
            if (rc) return rc;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            int rc = clean_tree(v, key, depth + 1, hidden, tmp);
            if (rc) return rc;
        }
    } else if (json_is_string(j)) {
        guard_span sp[GUARD_MAX_SPANS];
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        int ns = guard_scan(s, n, key && !strcmp(key, "cmdline"), sp, GUARD_MAX_SPANS);
        if (ns < 0) return ns;
        if (ns == 0) return 0;
        for (int i = 0; i < ns; i++) *hidden += !sp[i].comment;
        rbuf_reset(tmp);
        guard_clean(tmp, s, n, sp, ns);
        if (tmp->oom) return -ENOMEM;
        if (json_string_setn(j, tmp->s ? tmp->s : "", tmp->len)) return -ENOMEM;
    }
    return 0;
}

json_t *guard_event(const json_t *ev, int *hidden, int *err) {
    *hidden = 0;
    int rc = guard_init();
    if (rc) {
        *err = rc;
        return NULL;
    }
    json_t *c = json_deep_copy(ev);
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    rbuf tmp = {0};
    rc = clean_tree(c, NULL, 0, hidden, &tmp);
    rbuf_free(&tmp);
    if (rc) {
        json_decref(c);
        *err = rc;
        return NULL;
    }
    return c;
}
