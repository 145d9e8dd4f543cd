/*
 * tokenizer — see tokenizer.h for the contract.  This comment is about how
 * the code reproduces llama.cpp's output, because that is the hard part.
 *
 * Pipeline of tok_encode:
 *
 *   text ──special-token partition──> [raw][<|im_end|>][raw] ...
 *   each raw fragment ──SPM or BPE──> ids,  special fragments ──> their id
 *
 * 1. Partition.  llama.cpp walks its special-token list (control,
 *    user-defined and unknown tokens, longest text first) and, for each
 *    token in turn, cuts every still-raw fragment at each left-to-right
 *    non-overlapping occurrence.  Processing token by token (not a single
 *    leftmost-longest scan) decides overlapping cases, so we do the same.
 *    To keep this cheap when the list is long (llama3: 256 tokens,
 *    deepseek: 2400), a trie scan first finds which special tokens occur in
 *    the text at all; only those take part.  LSTRIP/RSTRIP attributes trim
 *    C-locale whitespace beside a match, as llama.cpp does for Phi-3.
 *
 * 2. SPM.  The fragment (with a leading space when add_space_prefix and the
 *    previous fragment was special or absent) has ' ' replaced by U+2581 and
 *    is cut into UTF-8 "characters" by lead byte only (no validation).  A
 *    binary heap holds adjacent pairs whose joined text is a vocabulary
 *    entry, keyed by (score desc, left index asc); popping merges the pair if
 *    both sides are unchanged.  Symbols that are not tokens become byte
 *    tokens <0xXX>.  (llama.cpp's rev_merge re-segmentation only ever
 *    applies to merged symbols, which are tokens by construction, so plain
 *    byte fallback is equivalent.)
 *
 * 3. BPE.  The fragment is decoded to code points with llama.cpp's lenient
 *    decoder (bad sequences become U+FFFD one byte at a time), then split
 *    into words by the steps of its pre-tokenizer, each step cutting every
 *    current piece.  Steps are either hand-written splitters (they mirror
 *    llama.cpp's custom gpt2/llama3/qwen2/qwen35/newline splitters, which
 *    are what llama.cpp actually runs for those patterns, including their
 *    small deviations from the regex) or PCRE2 regexes.  llama.cpp runs
 *    regexes that use \p{..} on a "collapsed" string where every non-ASCII
 *    code point is replaced by one byte naming its class (0xD1 number, 0xD2
 *    letter, 0xD3 punctuation, 0xD4 mark, 0xD5 symbol, 0x0B whitespace, 0xD0
 *    other) and \p{X} by that byte plus the ASCII members of X; we do the
 *    same translation at load (collapse_pattern) and run such patterns
 *    byte-wise with PCRE2.  Regexes without \p{..} run on the code points
 *    (non-ASCII whitespace replaced by 0x0B) in UTF mode.  Unmatched
 *    stretches between matches become pieces too.  The pattern lists are
 *    written as the models define them; compile_steps routes the five
 *    patterns llama.cpp special-cases to the splitters.
 *    Each word is then re-encoded to UTF-8 and merged: symbols start as
 *    single bytes (mapped through the GPT-2 byte alphabet), and a min-heap
 *    keyed by (merge rank, left index) applies merges.  Strings are
 *    interned: every vocabulary entry and every string a merge can produce
 *    has an integer id, and the merge table maps (left id, right id) to
 *    (rank, result id), so the merge loop never hashes strings.
 *
 * 4. Speed.  Long inputs (>= 16 KB) get a bounded per-call cache from word
 *    bytes to ids, and SPM text is cut into independent segments before each
 *    "\u2581" when the vocabulary makes that exact (see spm_encode), so the
 *    merge heaps stay word-sized.  Neither changes any output.
 *
 * Unicode general categories come from utf8proc; the only list written here
 * is the 25 White_Space code points (PropList.txt), which utf8proc does not
 * expose and llama.cpp uses for \s.
 *
 * Invariants: after tok_load everything is read-only.  All ids stored in the
 * tables are < n_vocab; "interned" ids >= n_vocab name strings that occur
 * only inside merges.
 */
#include "tokenizer.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include "util.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
        h ^= h >> 31;
        p += 8; n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ w) * 0x165667B19E3779F9ull;
    h ^= h >> 29;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33; x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33; x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* Growable arrays used as per-call scratch. */
typedef struct { int32_t *v; size_t n, cap; } i32vec;
typedef struct { uint32_t *v; size_t n, cap; } u32vec;

static int i32_reserve(i32vec *a, size_t need) {
    if (need <= a->cap) return 0;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < need) cap *= 2;
    void *p = nj_realloc(a->v, cap * sizeof *a->v);
    if (!p) return -ENOMEM;
    a->v = p; a->cap = cap;
    return 0;
}
static inline int i32_push(i32vec *a, int32_t x) {
    if (a->n == a->cap && i32_reserve(a, a->n + 1)) return -ENOMEM;
    a->v[a->n++] = x;
    return 0;
}
static int u32_reserve(u32vec *a, size_t need) {
    if (need <= a->cap) return 0;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < need) cap *= 2;
    void *p = nj_realloc(a->v, cap * sizeof *a->v);
    if (!p) return -ENOMEM;
    a->v = p; a->cap = cap;
    return 0;
}
static inline int u32_push(u32vec *a, uint32_t x) {
    if (a->n == a->cap && u32_reserve(a, a->n + 1)) return -ENOMEM;
    a->v[a->n++] = x;
    return 0;
}

/* Chunked arena for strings built at load time (pointers never move). */
typedef struct arena_blk { struct arena_blk *next; size_t used, cap; char data[]; } arena_blk;
static char *arena_alloc(arena_blk **head, size_t n) {
    arena_blk *b = *head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        arena_blk *nb = nj_malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b; nb->used = 0; nb->cap = cap;
        *head = b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}
static void arena_free(arena_blk *b) {
    while (b) { arena_blk *n = b->next; nj_free(b); b = n; }
}

/* ------------------------------------------------------------------ */
/* Unicode                                                             */
/* ------------------------------------------------------------------ */

/* Code point class bits (the flags llama.cpp derives from UnicodeData). */
enum {
    F_UNDEF = 1 << 0, F_NUMBER = 1 << 1, F_LETTER = 1 << 2, F_SEP = 1 << 3,
    F_MARK = 1 << 4, F_PUNCT = 1 << 5, F_SYMBOL = 1 << 6, F_CONTROL = 1 << 7,
    F_WS = 1 << 8,
};
#define OOR 0xFFFFFFFFu   /* "outside the piece" code point */

/* White_Space code points (PropList.txt), the set llama.cpp uses for \s. */
static bool cp_is_ws(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static uint16_t cp_flags_slow(uint32_t c) {
    uint16_t f;
    if (c > 0x10FFFF) return F_UNDEF;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: f = F_LETTER; break;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        f = F_MARK; break;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        f = F_NUMBER; break;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: f = F_PUNCT; break;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO: f = F_SYMBOL; break;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        f = F_SEP; break;
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: f = F_CONTROL; break;
    default: f = F_UNDEF; break;   /* Cn: unassigned */
    }
    if (cp_is_ws(c)) f |= F_WS;
    return f;
}

static uint16_t g_ascii_flags[128];

static void ascii_flags_init(void) {
    for (uint32_t c = 0; c < 128; c++) g_ascii_flags[c] = cp_flags_slow(c);
}

static inline uint16_t cp_flags(uint32_t c) {
    return c < 128 ? g_ascii_flags[c] : cp_flags_slow(c);
}

/* One code point from UTF-8 the way llama.cpp's unicode_cpt_from_utf8 +
 * unicode_cpts_from_utf8 do it: continuation bytes are checked, overlong
 * forms and surrogates are not; an invalid or truncated sequence yields
 * U+FFFD and consumes one byte.  (Values above U+10FFFF, which llama.cpp
 * would later abort on, also become U+FFFD.) */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
    size_t k = *i;
    uint8_t b = s[k];
    if (!(b & 0x80)) { *i = k + 1; return b; }
    if (!(b & 0x40)) goto bad;
    if (!(b & 0x20)) {
        if (k + 1 >= n || (s[k + 1] & 0xC0) != 0x80) goto bad;
        *i = k + 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[k + 1] & 0x3F);
    }
    if (!(b & 0x10)) {
        if (k + 2 >= n || (s[k + 1] & 0xC0) != 0x80 || (s[k + 2] & 0xC0) != 0x80) goto bad;
        *i = k + 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[k + 1] & 0x3F) << 6) | (s[k + 2] & 0x3F);
    }
    if (!(b & 0x08)) {
        if (k + 3 >= n || (s[k + 1] & 0xC0) != 0x80 || (s[k + 2] & 0xC0) != 0x80 ||
            (s[k + 3] & 0xC0) != 0x80) goto bad;
        *i = k + 4;
        uint32_t c = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[k + 1] & 0x3F) << 12) |
                     ((uint32_t)(s[k + 2] & 0x3F) << 6) | (s[k + 3] & 0x3F);
        return c > 0x10FFFF ? 0xFFFD : c;
    }
bad:
    *i = k + 1;
    return 0xFFFD;
}

/* Encode (any value <= 0x10FFFF, surrogates included, like llama.cpp). */
static inline int utf8_put(uint32_t c, uint8_t *o) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12)); o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F)); return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18)); o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Length of a UTF-8 sequence from its lead byte only (unicode_len_utf8). */
static inline size_t utf8_len_lead(uint8_t b) {
    static const uint8_t t[16] = {1,1,1,1,1,1,1,1,1,1,1,1,2,2,3,4};
    return t[b >> 4];
}

/* GPT-2 byte alphabet: bytes that are printable Latin-1 map to themselves,
 * the other 68 to U+0100.. in byte order.  Both directions are built once
 * (tables_init, under pthread_once). */
static uint32_t g_b2c[256];
static int16_t  g_c2b[0x144];

static void alphabet_init(void) {
    uint32_t n = 0;
    for (int i = 0; i < 0x144; i++) g_c2b[i] = -1;
    for (int c = 0; c < 256; c++) {
        bool keep = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        g_b2c[c] = keep ? (uint32_t)c : 256 + n++;
        g_c2b[g_b2c[c]] = (int16_t)c;
    }
}

static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;
static void tables_init(void) { ascii_flags_init(); alphabet_init(); }
static inline uint32_t byte_to_cp(uint8_t b) { return g_b2c[b]; }
static inline int cp_to_byte(uint32_t c) { return c < 0x144 ? g_c2b[c] : -1; }

/* ------------------------------------------------------------------ */
/* pre-tokenizers                                                      */
/* ------------------------------------------------------------------ */

/* How one pattern of a pre-tokenizer runs. */
enum step_kind { ST_NONE = 0, ST_GPT2, ST_LLAMA3, ST_QWEN2, ST_QWEN35, ST_NEWLINES,
                 ST_RE_BYTE /* regex over the collapsed class string */,
                 ST_RE_UTF  /* regex over the code points */ };

#define MAX_STEPS 6

/* Patterns llama.cpp runs with hand-written splitters (it recognises them by
 * exact text, so do we; the splitters below reproduce those). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3_I "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|" \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3 RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|" \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|" \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35 RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}|" \
    " ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_NEWLINES "[^\\n]+|[\\n]+"

static const struct { const char *re; int kind; } custom_steps[] = {
    {RE_GPT2, ST_GPT2}, {RE_LLAMA3_I, ST_LLAMA3}, {RE_LLAMA3, ST_LLAMA3},
    {RE_QWEN2, ST_QWEN2}, {RE_QWEN35, ST_QWEN35}, {RE_NEWLINES, ST_NEWLINES},
};

/* The pattern lists of the pre-tokenizers, as the models' tokenizer.json
 * files define them (in the adapted form llama.cpp runs: (?i:...) spelled
 * out; non-ASCII characters written as \x{..}).  Applied in order, each
 * pattern cutting every piece the previous ones produced. */
static const char *const RS_LLAMA3[] = {   /* llama3, dbrx, smaug, chatglm4 */
    RE_LLAMA3,
    NULL};
static const char *const RS_JAIS2[] = {   /* jais2 */
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|"
    "\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|"
    "\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}",
    NULL};
static const char *const RS_DEEPSEEK_LLM[] = {   /* deepseek_llm */
    "[\r\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-"
    "\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-"
    "\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-"
    "\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-"
    "\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-"
    "\\x{3002}]+",
    "\\s+$",
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}+",
    NULL};
static const char *const RS_DEEPSEEK3_LLM[] = {   /* deepseek3_llm, hunyuan_dense, joyai_llm, hy_v4 */
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
    "[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|"
    "\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_SPARK2_5[] = {   /* spark2_5 */
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
    "[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
    "\\p{N}",
    NULL};
static const char *const RS_YOUTU[] = {   /* youtu */
    "[\\x{AC00}-\\x{D7A3}\\x{3131}-\\x{318E}]+|[\\x{FF01}\\x{2026}\\x{201C}\\x{201D}\\x{2018}"
    "\\x{2019}\\x{2014}\\x{FF1A}\\x{FF1B}\\x{FF0C}\\x{3001}-\\x{303F}\\x{FE30}-\\x{FE4F}]+|["
    "\\x{3105}-\\x{312F}]+|[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
    "+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
    "*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_DEEPSEEK_CODER[] = {   /* deepseek_coder */
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
    NULL};
static const char *const RS_FALCON[] = {   /* falcon */
    "[\\p{P}\\$\\+<=>\\^~\\|`]+",
    RE_GPT2,
    "[0-9][0-9][0-9]",
    NULL};
static const char *const RS_STARCODER[] = {   /* starcoder, refact, command_r, smollm, codeshell, exaone, minerva, mellum2 */
    "\\p{N}",
    RE_GPT2,
    NULL};
static const char *const RS_GPT2[] = {   /* gpt2, mpt, olmo, jais, trillion, granite_docling */
    RE_GPT2,
    NULL};
static const char *const RS_QWEN2[] = {   /* qwen2, stablelm2, hunyuan, solar_open, grok_2 */
    RE_QWEN2,
    NULL};
static const char *const RS_QWEN35[] = {   /* qwen35 */
    RE_QWEN35,
    NULL};
static const char *const RS_PORO[] = {   /* poro, bloom, gpt3_finnish */
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+",
    NULL};
static const char *const RS_VIKING[] = {   /* viking */
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+",
    "\\p{N}",
    NULL};
static const char *const RS_TEKKEN[] = {   /* tekken */
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|"
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_CHAMELEON[] = {   /* chameleon */
    "<sentinel:[0-9]+>",
    "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    "([\\t\\n]|    |  )",
    "\\p{N}",
    "[\\p{P}!-/:-@\\[-`{-~]",
    RE_GPT2,
    NULL};
static const char *const RS_GPT4O[] = {   /* gpt4o, minimax_m2 */
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|"
    "'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|"
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|"
    "'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_GRANITE_EMB_MULTI[] = {   /* granite_emb_multi */
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+(?:'[sS]"
    "|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|"
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*(?:'[sS]"
    "|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_BAILINGMOE[] = {   /* bailingmoe */
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_SEED_CODER[] = {   /* seed_coder */
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_UFAKZEKA[] = {   /* ufakzeka */
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_LAGUNA[] = {   /* laguna */
    RE_NEWLINES,
    RE_QWEN2,
    NULL};
static const char *const RS_EXAONE_MOE[] = {   /* exaone_moe */
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|"
    "[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_GEMMA4[] = {   /* gemma4, sarvam_moe */
    RE_NEWLINES,
    NULL};
static const char *const RS_MINICPM5[] = {   /* minicpm5 */
    "\\p{N}{1,3}",
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const RS_DEFAULT[] = {   /* default */
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    RE_GPT2,
    "\\p{N}+",
    "[0-9][0-9][0-9]",
    NULL};

/* tokenizer.ggml.pre values we accept, as llama.cpp maps them. */
enum { PF_NO_CLEAN = 1, PF_IGNORE_MERGES = 2, PF_ADD_BOS = 4, PF_NO_BOS_ID = 8,
       PF_RAW_UTF8 = 16 /* no byte alphabet: U+2581 for spaces, <0xXX> fallback */,
       PF_GEMMA4 = 32   /* newline-only words may be one token; BOS forced */ };
static const struct pre_def { const char *names; const char *const *re; unsigned flags; } pre_defs[] = {
    {"default",                               RS_DEFAULT, 0},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
                                              RS_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"dbrx|smaug-bpe",                        RS_LLAMA3, 0},
    {"glm4|chatglm-bpe",                      RS_LLAMA3, PF_NO_BOS_ID},
    {"jais-2",                                RS_JAIS2, 0},
    {"minicpm5",                              RS_MINICPM5, PF_IGNORE_MERGES},
    {"deepseek-llm",                          RS_DEEPSEEK_LLM, PF_NO_CLEAN},
    {"deepseek-coder",                        RS_DEEPSEEK_CODER, PF_NO_CLEAN},
    {"deepseek-v3|hunyuan-dense|joyai-llm|hy_v4", RS_DEEPSEEK3_LLM, PF_NO_CLEAN},
    {"spark2_5",                              RS_SPARK2_5, PF_NO_CLEAN},
    {"youtu",                                 RS_YOUTU, PF_NO_CLEAN | PF_IGNORE_MERGES},
    {"falcon",                                RS_FALCON, 0},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
     "exaone4|jina-v1-en|jina-v2-code|roberta-bpe|mpt|olmo|jais",
                                              RS_GPT2, 0},
    {"trillion|granite-docling",              RS_GPT2, PF_NO_CLEAN},
    {"starcoder|refact|codeshell|exaone|minerva-7b|mellum2",
                                              RS_STARCODER, 0},
    {"command-r|smollm",                      RS_STARCODER, PF_NO_CLEAN},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|hunyuan|solar-open|grok-2",
                                              RS_QWEN2, PF_NO_CLEAN},
    {"megrez|stablelm2",                      RS_QWEN2, 0},
    {"qwen35",                                RS_QWEN35, PF_NO_CLEAN},
    {"poro-chat",                             RS_PORO, PF_NO_CLEAN},
    {"bloom|gpt3-finnish",                    RS_PORO, 0},
    {"viking",                                RS_VIKING, PF_NO_CLEAN},
    {"tekken",                                RS_TEKKEN, PF_NO_CLEAN | PF_IGNORE_MERGES | PF_ADD_BOS},
    {"chameleon",                             RS_CHAMELEON, PF_NO_CLEAN | PF_ADD_BOS},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", RS_GPT4O, PF_NO_CLEAN},
    {"granite-embed-multi-97m",               RS_GRANITE_EMB_MULTI, PF_NO_CLEAN | PF_IGNORE_MERGES},
    {"bailingmoe|bailingmoe2|llada-moe",      RS_BAILINGMOE, PF_NO_CLEAN},
    {"seed-coder",                            RS_SEED_CODER, PF_NO_CLEAN},
    {"ufakzeka",                              RS_UFAKZEKA, PF_NO_CLEAN},
    {"laguna",                                RS_LAGUNA, PF_NO_CLEAN},
    {"exaone-moe",                            RS_EXAONE_MOE, 0},
    {"gemma4|granite-embed-multi-311m",       RS_GEMMA4, PF_RAW_UTF8 | PF_GEMMA4},
    {"sarvam-moe",                            RS_GEMMA4, PF_RAW_UTF8 | PF_NO_CLEAN},
};

static const struct pre_def *find_pre(gguf_str name, char *canon, size_t cap) {
    for (size_t k = 0; k < NJ_ARRAY_LEN(pre_defs); k++) {
        const char *p = pre_defs[k].names;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            if (n == name.len && memcmp(p, name.ptr, n) == 0) {
                snprintf(canon, cap, "%.*s", (int)n, p);
                return &pre_defs[k];
            }
            p += n + (bar != NULL);
        }
    }
    return NULL;
}

/* \p{..} classes in the collapsed string: the class byte plus the ASCII
 * members (what llama.cpp substitutes before running std::regex). */
static const struct { const char *name; const char *set; } collapse_sets[] = {
    {"\\p{N}",  "\\x{D1}\\x{30}-\\x{39}"},
    {"\\p{L}",  "\\x{D2}\\x{41}-\\x{5A}\\x{61}-\\x{7A}"},
    {"\\p{P}",  "\\x{D3}\\x{21}-\\x{23}\\x{25}-\\x{2A}\\x{2C}-\\x{2F}\\x{3A}-\\x{3B}\\x{3F}-\\x{40}"
                "\\x{5B}-\\x{5D}\\x{5F}\\x{7B}\\x{7D}"},
    {"\\p{M}",  "\\x{D4}"},
    {"\\p{S}",  "\\x{D5}\\x{24}\\x{2B}\\x{3C}-\\x{3E}\\x{5E}\\x{60}\\x{7C}\\x{7E}"},
    {"\\p{Lu}", "\\x{D2}\\x{41}-\\x{5A}\\x{61}-\\x{7A}"},
    {"\\p{Ll}", "\\x{D2}\\x{41}-\\x{5A}\\x{61}-\\x{7A}"},
    {"\\p{Lt}", "\\x{D2}\\x{41}-\\x{5A}\\x{61}-\\x{7A}"},
    {"\\p{Lm}", "\\x{D2}\\x{41}-\\x{5A}\\x{61}-\\x{7A}"},
    {"\\p{Lo}", "\\x{D2}\\x{41}-\\x{5A}\\x{61}-\\x{7A}"},
};

static bool uses_classes(const char *re) {
    for (size_t k = 0; k < NJ_ARRAY_LEN(collapse_sets); k++)
        if (strstr(re, collapse_sets[k].name)) return true;
    return false;
}

/* Rewrite a pattern for the collapsed string: each known \p{X} becomes its
 * set, wrapped in [] unless already inside a bracket expression (tracked
 * the way llama.cpp tracks it: '[' or ']' not preceded by a backslash).
 * Returns a nj_malloc'd string or NULL. */
static char *collapse_pattern(const char *re) {
    size_t n = strlen(re);
    char *out = nj_malloc(n * 24 + 64);
    if (!out) return NULL;
    size_t o = 0;
    bool inside = false;
    for (size_t i = 0; i < n; i++) {
        if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) { out[o++] = '['; inside = true; continue; }
        if (inside && re[i] == ']' && re[i - 1] != '\\') { out[o++] = ']'; inside = false; continue; }
        if (re[i] == '\\' && i + 3 < n && re[i + 1] == 'p' && re[i + 2] == '{') {
            const char *close = strchr(re + i + 3, '}');
            if (close && (size_t)(close - re) <= i + 10) {
                size_t len = (size_t)(close - re) - i + 1;
                size_t k;
                for (k = 0; k < NJ_ARRAY_LEN(collapse_sets); k++)
                    if (strlen(collapse_sets[k].name) == len && !memcmp(re + i, collapse_sets[k].name, len)) break;
                if (k < NJ_ARRAY_LEN(collapse_sets)) {
                    if (!inside) out[o++] = '[';
                    size_t sl = strlen(collapse_sets[k].set);
                    memcpy(out + o, collapse_sets[k].set, sl);
                    o += sl;
                    if (!inside) out[o++] = ']';
                    i += len - 1;
                    continue;
                }
            }
        }
        out[o++] = re[i];
    }
    out[o] = 0;
    return out;
}

/* ------------------------------------------------------------------ */
/* the tokenizer object                                                */
/* ------------------------------------------------------------------ */

typedef struct { const char *ptr; uint32_t len; } strv;

/* string -> interned id; open addressing, linear probing */
typedef struct {
    int32_t  *slot;   /* -1 empty, else interned id */
    uint32_t *hash;   /* low 32 bits of the hash, for quick rejects */
    size_t    mask;
    size_t    count;
} strmap;

/* (left id, right id) -> (rank, result id) */
typedef struct { uint64_t key; int32_t rank; int32_t result; } merge_ent;

typedef struct trie_node { int32_t child, sibling, special; uint8_t byte; } trie_node;

struct nj_tok {
    const gguf_file *f;
    int      type;           /* TOK_TYPE_* */
    char     pre_name[32];
    int      n_vocab;

    /* interned strings: [0, n_vocab) are the vocabulary, then merge-only */
    strv    *str;
    size_t   n_str, cap_str;
    strmap   map;
    arena_blk *arena;

    float    *score;
    uint16_t *attr;

    /* merges */
    merge_ent *merge;
    size_t     merge_mask;
    int32_t    byte_sym[256];   /* interned id of the byte-alphabet char */
    int32_t    byte_tok1[256];  /* token of the 1-byte string, -1 */
    int32_t    byte_hex[256];   /* token "<0xXX>", -1 */
    int32_t    spm_byte[256];   /* SPM byte_to_token, -1 */

    /* pre-tokenizer steps */
    int          n_steps;
    int          step_kind[MAX_STEPS];
    pcre2_code  *step_re[MAX_STEPS];
    bool         need_flags, need_collapsed, need_retext;
    pcre2_general_context *gctx;

    /* special tokens, partition order (text length desc, id asc) */
    int32_t  *special;
    int       n_special;
    trie_node *trie;
    int32_t   trie_root[256];   /* first-level child per byte, -1 */
    size_t    n_trie, cap_trie;

    /* piece cache (special = true rendering) */
    char     *piece_buf;
    uint32_t *piece_off;        /* n_vocab + 1 */

    uint8_t  *eog;              /* n_vocab flags */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask_id, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces,
         escape_ws, byte_encode;
    bool spm_cut_ok;     /* SPM text may be cut before "\u2581" (see spm_encode) */
    bool gemma4;         /* gemma4 rules: newline-only words, forced BOS */
};

/* ---- strmap ---- */

static int strmap_init(strmap *m, size_t n) {
    size_t cap = pow2_at_least(n * 2 + 16);
    m->slot = nj_malloc(cap * sizeof *m->slot);
    m->hash = nj_malloc(cap * sizeof *m->hash);
    if (!m->slot || !m->hash) return -ENOMEM;
    memset(m->slot, 0xFF, cap * sizeof *m->slot);
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static int32_t strmap_get(const nj_tok *t, const void *s, size_t n) {
    uint64_t h = hash_bytes(s, n);
    size_t i = h & t->map.mask;
    for (;;) {
        int32_t id = t->map.slot[i];
        if (id < 0) return -1;
        if (t->map.hash[i] == (uint32_t)h && t->str[id].len == n &&
            memcmp(t->str[id].ptr, s, n) == 0)
            return id;
        i = (i + 1) & t->map.mask;
    }
}

static int strmap_grow(nj_tok *t);

/* Map string -> id; if present, overwrite (last wins, like token_to_id). */
static int strmap_put(nj_tok *t, const void *s, size_t n, int32_t id) {
    if ((t->map.count + 1) * 2 > t->map.mask + 1) {
        int rc = strmap_grow(t);
        if (rc) return rc;
    }
    uint64_t h = hash_bytes(s, n);
    size_t i = h & t->map.mask;
    for (;;) {
        int32_t cur = t->map.slot[i];
        if (cur < 0) break;
        if (t->map.hash[i] == (uint32_t)h && t->str[cur].len == n &&
            memcmp(t->str[cur].ptr, s, n) == 0) {
            t->map.slot[i] = id;
            return 0;
        }
        i = (i + 1) & t->map.mask;
    }
    t->map.slot[i] = id;
    t->map.hash[i] = (uint32_t)h;
    t->map.count++;
    return 0;
}

static int strmap_grow(nj_tok *t) {
    strmap old = t->map;
    int rc = strmap_init(&t->map, (old.mask + 1));
    if (rc) { nj_free(t->map.slot); nj_free(t->map.hash); t->map = old; return rc; }
    for (size_t i = 0; i <= old.mask; i++) {
        int32_t id = old.slot[i];
        if (id < 0) continue;
        /* only the low 32 bits are stored: recompute the full hash */
        uint64_t h = hash_bytes(t->str[id].ptr, t->str[id].len);
        size_t j = h & t->map.mask;
        while (t->map.slot[j] >= 0) j = (j + 1) & t->map.mask;
        t->map.slot[j] = id;
        t->map.hash[j] = (uint32_t)h;
        t->map.count++;
    }
    nj_free(old.slot);
    nj_free(old.hash);
    return 0;
}

/* Intern a string that is not a vocabulary entry (bytes must stay valid). */
static int32_t intern(nj_tok *t, const char *s, size_t n, bool copy) {
    int32_t id = strmap_get(t, s, n);
    if (id >= 0) return id;
    if (t->n_str == t->cap_str) {
        size_t cap = t->cap_str * 2 + 1024;
        strv *p = nj_realloc(t->str, cap * sizeof *p);
        if (!p) return -ENOMEM;
        t->str = p; t->cap_str = cap;
    }
    if (copy) {
        char *c = arena_alloc(&t->arena, n ? n : 1);
        if (!c) return -ENOMEM;
        memcpy(c, s, n);
        s = c;
    }
    id = (int32_t)t->n_str;
    t->str[t->n_str++] = (strv){s, (uint32_t)n};
    int rc = strmap_put(t, s, n, id);
    return rc ? rc : id;
}

/* ---- merges ---- */

static inline uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline const merge_ent *merge_find(const nj_tok *t, int32_t a, int32_t b) {
    uint64_t k = merge_key(a, b);
    size_t i = hash_u64(k) & t->merge_mask;
    for (;;) {
        const merge_ent *e = &t->merge[i];
        if (e->key == k) return e;
        if (e->key == UINT64_MAX) return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

/* ------------------------------------------------------------------ */
/* loading                                                             */
/* ------------------------------------------------------------------ */

int32_t tok_find(const nj_tok *t, const char *text, size_t len) {
    int32_t id = strmap_get(t, text, len);
    return id >= 0 && id < t->n_vocab ? id : -1;
}

static int32_t find_c(const nj_tok *t, const char *c) { return tok_find(t, c, strlen(c)); }

static void set_attr_bits(nj_tok *t, int32_t id, unsigned bits, bool on) {
    if (id < 0 || id >= t->n_vocab) return;
    if (on) t->attr[id] |= (uint16_t)bits; else t->attr[id] &= (uint16_t)~bits;
}

/* First token of `names` present in the vocabulary (priority = list order;
 * llama.cpp picks by hash-map iteration order, which only matters if a
 * vocabulary holds several of them). */
static int32_t find_first(const nj_tok *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = find_c(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* Special tokens in partition order: longer text first, then lower id
 * (llama.cpp's std::sort leaves equal lengths unordered; the order only
 * matters for two same-length tokens overlapping in a text). */
static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int trie_add(nj_tok *t, const strv *s, int32_t special_index) {
    if (s->len == 0) return 0;
    int32_t node = -1;
    for (uint32_t k = 0; k < s->len; k++) {
        uint8_t b = (uint8_t)s->ptr[k];
        int32_t *link = node < 0 ? &t->trie_root[b] : &t->trie[node].child;
        int32_t c = *link;
        if (node >= 0) {
            while (c >= 0 && t->trie[c].byte != b) c = t->trie[c].sibling;
        }
        if (c < 0) {
            if (t->n_trie == t->cap_trie) {
                size_t cap = t->cap_trie * 2 + 256;
                trie_node *p = nj_realloc(t->trie, cap * sizeof *p);
                if (!p) return -ENOMEM;
                t->trie = p; t->cap_trie = cap;
                link = node < 0 ? &t->trie_root[b] : &t->trie[node].child;
            }
            c = (int32_t)t->n_trie++;
            t->trie[c] = (trie_node){.child = -1, .sibling = node < 0 ? -1 : *link,
                                     .special = -1, .byte = b};
            *link = c;
        }
        node = c;
    }
    if (t->trie[node].special < 0) t->trie[node].special = special_index;
    return 0;
}

/* Piece text of token id with special = true, appended to out (as
 * llama_token_to_piece fills llama.cpp's piece cache). */
static int render_piece(const nj_tok *t, int32_t id, char **buf, size_t *len, size_t *cap) {
    const strv *s = &t->str[id];
    unsigned a = t->attr[id];
    char tmp[64];
    const char *src = NULL;
    size_t n = 0;
    char *dyn = NULL;

    if (a & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        src = s->ptr; n = s->len;
    } else if (a & TOK_ATTR_NORMAL) {
        if (t->type == TOK_TYPE_SPM || t->escape_ws) {
            /* U+2581 -> ' ' */
            dyn = nj_malloc(s->len + 1);
            if (!dyn) return -ENOMEM;
            for (uint32_t i = 0; i < s->len;) {
                if (i + 3 <= s->len && memcmp(s->ptr + i, "\xE2\x96\x81", 3) == 0) {
                    dyn[n++] = ' '; i += 3;
                } else dyn[n++] = s->ptr[i++];
            }
            src = dyn;
        } else {
            /* GPT-2 alphabet -> bytes; unmapped code points render as
             * "[UNK_BYTE_0x<hex>" + whole token text + "]" like llama.cpp
             * (sized in a first pass: a hostile file must not make this
             * quadratic in memory) */
            const uint8_t *p = (const uint8_t *)s->ptr;
            size_t i = 0, need = 1;
            while (i < s->len) {
                uint32_t c = utf8_next(p, s->len, &i);
                uint8_t u[4];
                need += cp_to_byte(c) >= 0 ? 1 : 13 + 2 * (size_t)utf8_put(c, u) + s->len + 1;
            }
            if (need > (16u << 20))
                return nj_fail(NJ_EFORMAT, "tokenizer: token %d renders to %zu bytes", (int)id, need);
            dyn = nj_malloc(need);
            if (!dyn) return -ENOMEM;
            i = 0;
            while (i < s->len) {
                uint32_t c = utf8_next(p, s->len, &i);
                int b = cp_to_byte(c);
                if (b >= 0) dyn[n++] = (char)b;
                else {
                    uint8_t u[4]; int m = utf8_put(c, u);
                    n += (size_t)sprintf(dyn + n, "[UNK_BYTE_0x");
                    for (int k = 0; k < m; k++) n += (size_t)sprintf(dyn + n, "%02x", u[k]);
                    memcpy(dyn + n, s->ptr, s->len); n += s->len;
                    dyn[n++] = ']';
                }
            }
            src = dyn;
        }
    } else if (a & TOK_ATTR_BYTE) {
        char hex[3] = {0, 0, 0};
        if (s->len > 3) hex[0] = s->ptr[3];
        if (s->len > 4) hex[1] = s->ptr[4];
        tmp[0] = (char)strtol(hex, NULL, 16);
        src = tmp; n = 1;
    }
    if (*len + n > *cap) {
        size_t c = *cap * 2 + n + 4096;
        char *p = nj_realloc(*buf, c);
        if (!p) { nj_free(dyn); return -ENOMEM; }
        *buf = p; *cap = c;
    }
    if (n) memcpy(*buf + *len, src, n);
    *len += n;
    nj_free(dyn);
    return 0;
}

static void *pcre_alloc(size_t n, void *ud) { (void)ud; return nj_malloc(n); }
static void  pcre_free(void *p, void *ud)  { (void)ud; nj_free(p); }

static int load_ids(nj_tok *t, const gguf_file *f) {
    static const struct { const char *key; size_t off; } keys[] = {
        {"tokenizer.ggml.bos_token_id",      offsetof(nj_tok, bos)},
        {"tokenizer.ggml.eos_token_id",      offsetof(nj_tok, eos)},
        {"tokenizer.ggml.eot_token_id",      offsetof(nj_tok, eot)},
        {"tokenizer.ggml.eom_token_id",      offsetof(nj_tok, eom)},
        {"tokenizer.ggml.unknown_token_id",  offsetof(nj_tok, unk)},
        {"tokenizer.ggml.seperator_token_id",offsetof(nj_tok, sep)},
        {"tokenizer.ggml.padding_token_id",  offsetof(nj_tok, pad)},
        {"tokenizer.ggml.mask_token_id",     offsetof(nj_tok, mask_id)},
        {"tokenizer.ggml.fim_pre_token_id",  offsetof(nj_tok, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id",  offsetof(nj_tok, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id",  offsetof(nj_tok, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id",  offsetof(nj_tok, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id",  offsetof(nj_tok, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id",  offsetof(nj_tok, fim_sep)},
        {"tokenizer.ggml.prefix_token_id",   offsetof(nj_tok, fim_pre)},
        {"tokenizer.ggml.suffix_token_id",   offsetof(nj_tok, fim_suf)},
        {"tokenizer.ggml.middle_token_id",   offsetof(nj_tok, fim_mid)},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(keys); i++) {
        int32_t *id = (int32_t *)((char *)t + keys[i].off);
        if (*id >= t->n_vocab) *id = -1;   /* default out of range: disable */
        uint32_t v;
        int rc = gguf_get_u32(f, keys[i].key, &v);
        if (rc == -ENOENT) continue;
        if (rc) return nj_fail(NJ_EFORMAT, "tokenizer: %s has a bad type", keys[i].key);
        if (v < (uint32_t)t->n_vocab) *id = (int32_t)v;
        else NJ_WARN("tokenizer: %s = %u is out of range, keeping default", keys[i].key, v);
    }
    return 0;
}

/* Attribute fix-ups llama.cpp applies by token text (EOT/EOM/FIM detection,
 * "unused" control tokens, the EOG set and its model-specific exceptions). */
static void detect_specials(nj_tok *t) {
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
        "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "<end_of_utterance>", NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    static const char *const pre_names[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>", "\xE2\x96\x81<PRE>",
        "<|code_prefix|>", "<|prefix|>", NULL};
    static const char *const suf_names[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>", "<SUF>", "\xE2\x96\x81<SUF>",
        "<|code_suffix|>", "<|suffix|>", NULL};
    static const char *const mid_names[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>", "\xE2\x96\x81<MID>",
        "<|code_middle|>", "<|middle|>", NULL};
    static const char *const pad_names[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
    static const char *const rep_names[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
        "<reponame>", NULL};
    static const char *const sep_names[] = {"<|file_sep|>", NULL};
    static const char *const eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>",
        "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
        "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "[e~[", NULL};

    struct { int32_t *id; const char *const *names; } det[] = {
        {&t->eot, eot_names}, {&t->eom, eom_names}, {&t->fim_pre, pre_names},
        {&t->fim_suf, suf_names}, {&t->fim_mid, mid_names}, {&t->fim_pad, pad_names},
        {&t->fim_rep, rep_names}, {&t->fim_sep, sep_names},
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(det); i++) {
        if (*det[i].id >= 0) continue;
        int32_t id = find_first(t, det[i].names);
        if (id >= 0) { *det[i].id = id; set_attr_bits(t, id, TOK_ATTR_CONTROL, true); }
    }

    /* control tokens named "...unused..." are unused */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & TOK_ATTR_CONTROL)) continue;
        const strv *s = &t->str[id];
        for (uint32_t k = 0; k + 6 <= s->len; k++)
            if (memcmp(s->ptr + k, "unused", 6) == 0) { t->attr[id] |= TOK_ATTR_UNUSED; break; }
    }

    /* end-of-generation set */
    if (t->fim_pad >= 0) t->eog[t->fim_pad] = 1;
    if (t->fim_rep >= 0) t->eog[t->fim_rep] = 1;
    if (t->fim_sep >= 0) t->eog[t->fim_sep] = 1;
    for (const char *const *n = eog_names; *n; n++) {
        int32_t id = find_c(t, *n);
        if (id >= 0) { t->eog[id] = 1; set_attr_bits(t, id, TOK_ATTR_CONTROL, true); }
    }
    /* gpt-oss: these always render */
    static const char *const ud_names[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
    for (const char *const *n = ud_names; *n; n++) {
        int32_t id = find_c(t, *n);
        if (id >= 0) t->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;
    /* o200k_harmony / solar-open: "<|end|>" is not end of generation */
    {
        int32_t ret = find_c(t, "<|return|>"), call = find_c(t, "<|call|>"),
                calls = find_c(t, "<|calls|>"), flush = find_c(t, "<|flush|>"),
                end = find_c(t, "<|end|>");
        bool has_ret = ret >= 0 && t->eog[ret], has_end = end >= 0 && t->eog[end];
        bool has_call = (call >= 0 && t->eog[call]) || (calls >= 0 && t->eog[calls]);
        bool has_flush = flush >= 0 && t->eog[flush];
        if ((has_ret && has_call && has_end) || (has_call && has_flush && has_end)) {
            t->eog[end] = 0;
            t->attr[end] = TOK_ATTR_USER_DEFINED;
        }
    }
    /* gemma4: "</s>" is not end of generation when "<|tool_response>" is */
    {
        int32_t tr = find_c(t, "<|tool_response>"), s = find_c(t, "</s>");
        if (tr >= 0 && t->eog[tr] && s >= 0 && t->eog[s]) {
            t->eog[s] = 0;
            t->attr[s] = TOK_ATTR_NORMAL;
        }
    }
}

static int build_merges(nj_tok *t, const gguf_str *merges, uint64_t n_merges) {
    size_t cap = pow2_at_least((size_t)n_merges * 2 + 16);
    t->merge = nj_malloc(cap * sizeof *t->merge);
    if (!t->merge) return -ENOMEM;
    for (size_t i = 0; i < cap; i++) t->merge[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;

    char *cat = NULL;
    size_t cat_cap = 0;
    for (uint64_t r = 0; r < n_merges; r++) {
        const char *w = merges[r].ptr;
        size_t n = (size_t)merges[r].len;
        /* split at the first space after position 0 */
        const char *sp = n > 1 ? memchr(w + 1, ' ', n - 1) : NULL;
        if (!sp) continue;   /* llama.cpp files it under ("", "") : never matches */
        size_t la = (size_t)(sp - w), lb = n - la - 1;
        if (n > UINT32_MAX / 4) { nj_free(cat); return nj_fail(NJ_EFORMAT, "tokenizer: merge %llu too long", (unsigned long long)r); }
        int32_t a = intern(t, w, la, false);
        int32_t b = intern(t, sp + 1, lb, false);
        if (a < 0 || b < 0) { nj_free(cat); return -ENOMEM; }
        if (la + lb > cat_cap) {
            cat_cap = (la + lb) * 2 + 64;
            char *p = nj_realloc(cat, cat_cap);
            if (!p) { nj_free(cat); return -ENOMEM; }
            cat = p;
        }
        memcpy(cat, w, la);
        memcpy(cat + la, sp + 1, lb);
        int32_t res = intern(t, cat, la + lb, true);
        if (res < 0) { nj_free(cat); return -ENOMEM; }
        uint64_t k = merge_key(a, b);
        size_t i = hash_u64(k) & t->merge_mask;
        while (t->merge[i].key != UINT64_MAX && t->merge[i].key != k) i = (i + 1) & t->merge_mask;
        if (t->merge[i].key == k) continue;   /* first (lowest) rank wins */
        t->merge[i] = (merge_ent){k, (int32_t)r, res};
    }
    nj_free(cat);
    return 0;
}

/* Prepare the steps of a pre-tokenizer: known patterns go to the
 * hand-written splitters, the rest are compiled with PCRE2 (collapsed when
 * they use \p{..}, else in UTF mode), as llama.cpp dispatches them. */
static int compile_steps(nj_tok *t, const char *const *re) {
    int rc = 0;
    t->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, NULL);
    if (!t->gctx) return -ENOMEM;
    pcre2_compile_context *cctx = pcre2_compile_context_create(t->gctx);
    if (!cctx) return -ENOMEM;
    for (int i = 0; re[i]; i++) {
        if (i == MAX_STEPS) { rc = nj_fail(NJ_EUNSUPPORTED, "tokenizer: too many pre-tokenizer steps"); break; }
        t->n_steps = i + 1;
        int kind = ST_NONE;
        for (size_t k = 0; k < NJ_ARRAY_LEN(custom_steps); k++)
            if (!strcmp(re[i], custom_steps[k].re)) kind = custom_steps[k].kind;
        if (kind != ST_NONE) {
            t->step_kind[i] = kind;
            if (kind != ST_NEWLINES) t->need_flags = true;
            continue;
        }
        bool coll = uses_classes(re[i]);
        char *pat = coll ? collapse_pattern(re[i]) : NULL;
        if (coll && !pat) { rc = -ENOMEM; break; }
        t->step_kind[i] = coll ? ST_RE_BYTE : ST_RE_UTF;
        uint32_t opt = PCRE2_DOLLAR_ENDONLY | (coll ? 0 : PCRE2_UTF);
        int ec;
        PCRE2_SIZE eo;
        t->step_re[i] = pcre2_compile((PCRE2_SPTR)(pat ? pat : re[i]), PCRE2_ZERO_TERMINATED, opt, &ec, &eo, cctx);
        nj_free(pat);
        if (!t->step_re[i]) {
            if (ec == PCRE2_ERROR_HEAP_FAILED) { rc = -ENOMEM; break; }
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            rc = nj_fail(NJ_EUNSUPPORTED, "tokenizer: pre-tokenizer pattern %d: %s at %zu", i, (char *)msg, (size_t)eo);
            break;
        }
        pcre2_jit_compile(t->step_re[i], PCRE2_JIT_COMPLETE);   /* best effort */
        if (coll) t->need_collapsed = t->need_flags = true; else t->need_retext = true;
    }
    pcre2_compile_context_free(cctx);
    return rc;
}

nj_tok *tok_load(const gguf_file *f, int *err) {
    int rc = 0;
    nj_tok *t = NULL;
    char *pbuf = NULL;
    pthread_once(&g_tables_once, tables_init);

    gguf_str model, pre = {"", 0};
    if (gguf_get_str(f, "tokenizer.ggml.model", &model)) {
        rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.model missing or not a string");
        goto err;
    }
    int has_pre = gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0;

    t = nj_calloc(1, sizeof *t);
    if (!t) { rc = -ENOMEM; goto err; }
    t->f = f;
    memset(t->trie_root, 0xFF, sizeof t->trie_root);
    t->byte_encode = true;
    t->nl = -1;
    t->eot = t->eom = t->sep = t->pad = t->mask_id = -1;
    t->fim_pre = t->fim_suf = t->fim_mid = t->fim_pad = t->fim_rep = t->fim_sep = -1;

    unsigned pflags = 0;
    const struct pre_def *pdef = NULL;
    if (gguf_str_eq(model, "llama")) {
        t->type = TOK_TYPE_SPM;
        t->bos = 1; t->eos = 2; t->unk = 0;
        t->add_space_prefix = true; t->add_bos = true;
    } else if (gguf_str_eq(model, "gpt2") || gguf_str_eq(model, "gemma4")) {
        t->type = TOK_TYPE_BPE;
        bool g4 = gguf_str_eq(model, "gemma4");
        if (g4) { pre.ptr = "gemma4"; pre.len = 6; has_pre = 1; t->bos = t->eos = t->unk = -1; }
        else { t->bos = 11; t->eos = 11; t->unk = -1; }
        t->clean_spaces = true;
        if (!has_pre || pre.len == 0) {
            NJ_WARN("tokenizer: no tokenizer.ggml.pre, using 'default' (quality may suffer)");
            pre.ptr = "default"; pre.len = 7;
        }
        pdef = find_pre(pre, t->pre_name, sizeof t->pre_name);
        if (!pdef) {
            rc = nj_fail(NJ_EUNSUPPORTED, "tokenizer: pre-tokenizer '%.*s' is not supported",
                         (int)NJ_MIN(pre.len, 64), pre.ptr);
            goto err;
        }
        pflags = pdef->flags;
        if (pflags & PF_NO_CLEAN) t->clean_spaces = false;
        if (pflags & PF_IGNORE_MERGES) t->ignore_merges = true;
        if (pflags & PF_ADD_BOS) t->add_bos = true;
        if (pflags & PF_NO_BOS_ID) t->bos = -1;
        if (pflags & PF_RAW_UTF8) { t->escape_ws = true; t->byte_encode = false; }
        if (pflags & PF_GEMMA4) t->gemma4 = true;
    } else {
        rc = nj_fail(NJ_EUNSUPPORTED, "tokenizer: model type '%.*s' is not supported (only llama/SPM, gpt2/BPE, gemma4)",
                     (int)NJ_MIN(model.len, 64), model.ptr);
        goto err;
    }
    {
        bool b;
        if (gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &b) == 0) t->add_space_prefix = b;
    }

    /* vocabulary */
    uint32_t et;
    uint64_t n;
    const gguf_str *toks;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n, NULL, &toks) || et != GGUF_T_STRING) {
        rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.tokens missing or not a string array");
        goto err;
    }
    if (n == 0 || n > (1u << 30)) { rc = nj_fail(NJ_EFORMAT, "tokenizer: bad vocabulary size %llu", (unsigned long long)n); goto err; }
    t->n_vocab = (int)n;
    t->cap_str = n + 1024;
    t->str = nj_malloc(t->cap_str * sizeof *t->str);
    t->score = nj_calloc(n, sizeof *t->score);
    t->attr = nj_calloc(n, sizeof *t->attr);
    t->eog = nj_calloc(n, 1);
    if (!t->str || !t->score || !t->attr || !t->eog || strmap_init(&t->map, n)) { rc = -ENOMEM; goto err; }
    for (uint64_t i = 0; i < n; i++) {
        if (toks[i].len == 0) {
            char tmp[32];
            int m = snprintf(tmp, sizeof tmp, "[EMPTY_%llu]", (unsigned long long)i);
            char *c = arena_alloc(&t->arena, (size_t)m);
            if (!c) { rc = -ENOMEM; goto err; }
            memcpy(c, tmp, (size_t)m);
            t->str[i] = (strv){c, (uint32_t)m};
        } else {
            if (toks[i].len > UINT32_MAX / 2) { rc = nj_fail(NJ_EFORMAT, "tokenizer: token %llu too long", (unsigned long long)i); goto err; }
            t->str[i] = (strv){toks[i].ptr, (uint32_t)toks[i].len};
        }
        t->attr[i] = TOK_ATTR_NORMAL;
    }
    t->n_str = n;
    for (uint64_t i = 0; i < n; i++)
        if ((rc = strmap_put(t, t->str[i].ptr, t->str[i].len, (int32_t)i))) goto err;

    {
        const void *data;
        uint64_t m;
        int r = gguf_get_arr(f, "tokenizer.ggml.scores", &et, &m, &data, NULL);
        if (r == 0) {
            if ((et != GGUF_T_FLOAT32 && et != GGUF_T_INT32) || m < n) {
                rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.scores has a bad type or size");
                goto err;
            }
            for (uint64_t i = 0; i < n; i++) {
                if (et == GGUF_T_FLOAT32) memcpy(&t->score[i], (const char *)data + 4 * i, 4);
                else { int32_t v; memcpy(&v, (const char *)data + 4 * i, 4); t->score[i] = (float)v; }
                if (t->score[i] == 0.0f) t->score[i] = 0.0f;   /* -0 == +0 in llama.cpp's compare */
            }
        }
        r = gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &m, &data, NULL);
        if (r == 0) {
            if (et != GGUF_T_INT32 || m < n) {
                rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.token_type has a bad type or size");
                goto err;
            }
            for (uint64_t i = 0; i < n; i++) {
                int32_t v; memcpy(&v, (const char *)data + 4 * i, 4);
                static const uint16_t map[] = {TOK_ATTR_UNDEFINED, TOK_ATTR_NORMAL, TOK_ATTR_UNKNOWN,
                    TOK_ATTR_CONTROL, TOK_ATTR_USER_DEFINED, TOK_ATTR_UNUSED, TOK_ATTR_BYTE};
                t->attr[i] = (v >= 0 && v <= 6) ? map[v] : TOK_ATTR_UNDEFINED;
            }
        }
    }

    if (t->type == TOK_TYPE_BPE) {
        const gguf_str *ms;
        uint64_t m;
        if (gguf_get_arr(f, "tokenizer.ggml.merges", &et, &m, NULL, &ms) || et != GGUF_T_STRING) {
            rc = nj_fail(NJ_EFORMAT, "tokenizer: tokenizer.ggml.merges missing or not a string array");
            goto err;
        }
        if ((rc = build_merges(t, ms, m))) goto err;
        if ((rc = compile_steps(t, pdef->re))) goto err;
    }

    if ((rc = load_ids(t, f))) goto err;
    {
        bool b;
        if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) == 0) t->add_bos = b;
        if (gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b) == 0) t->add_eos = b;
        if (t->gemma4) t->add_bos = true;   /* as llama.cpp does for Gemma 4 */
    }
    if (t->add_bos && t->bos < 0) { rc = nj_fail(NJ_EFORMAT, "tokenizer: add_bos set but no BOS token"); goto err; }
    if (t->add_eos && t->eos < 0) { rc = nj_fail(NJ_EFORMAT, "tokenizer: add_eos set but no EOS token"); goto err; }

    detect_specials(t);

    /* byte tables */
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int m = utf8_put(byte_to_cp((uint8_t)b), u);
        t->byte_sym[b] = strmap_get(t, u, (size_t)m);
        char one = (char)b;
        t->byte_tok1[b] = tok_find(t, &one, 1);
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_hex[b] = tok_find(t, hex, 6);
        t->spm_byte[b] = t->byte_hex[b] >= 0 ? t->byte_hex[b] : t->byte_tok1[b];
    }

    /* special tokens in partition order, and the trie over their text */
    {
        int cnt = 0;
        for (int32_t i = 0; i < t->n_vocab; i++)
            if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) cnt++;
        t->special = nj_malloc((size_t)(cnt ? cnt : 1) * sizeof *t->special);
        uint64_t *keys = nj_malloc((size_t)(cnt ? cnt : 1) * sizeof *keys);
        if (!t->special || !keys) { nj_free(keys); rc = -ENOMEM; goto err; }
        for (int32_t i = 0; i < t->n_vocab; i++)
            if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
                keys[t->n_special++] = ((uint64_t)(UINT32_MAX - t->str[i].len) << 32) | (uint32_t)i;
        qsort(keys, (size_t)t->n_special, sizeof *keys, u64_cmp);
        for (int i = 0; i < t->n_special; i++) t->special[i] = (int32_t)(keys[i] & 0xFFFFFFFFu);
        nj_free(keys);
        for (int i = 0; i < t->n_special; i++)
            if ((rc = trie_add(t, &t->str[t->special[i]], i))) goto err;
    }

    /* Phi-3 models: special tokens swallow the whitespace after them */
    {
        gguf_str name;
        if (gguf_get_str(f, "general.name", &name) == 0) {
            char low[256];
            size_t m = NJ_MIN((size_t)name.len, sizeof low - 1);
            for (size_t i = 0; i < m; i++) low[i] = (char)tolower((unsigned char)name.ptr[i]);
            low[m] = 0;
            if (strstr(low, "phi-3") || strstr(low, "phi3")) {
                for (int i = 0; i < t->n_special; i++) t->attr[t->special[i]] |= TOK_ATTR_RSTRIP;
                set_attr_bits(t, find_c(t, "</s>"), TOK_ATTR_RSTRIP, true);
                set_attr_bits(t, find_c(t, "<unk>"), TOK_ATTR_RSTRIP, false);
                set_attr_bits(t, find_c(t, "<s>"), TOK_ATTR_RSTRIP, false);
                set_attr_bits(t, find_c(t, "<|endoftext|>"), TOK_ATTR_RSTRIP, false);
            }
        }
    }

    /* piece cache */
    {
        size_t len = 0, cap = 0;
        t->piece_off = nj_malloc(((size_t)t->n_vocab + 1) * sizeof *t->piece_off);
        if (!t->piece_off) { rc = -ENOMEM; goto err; }
        for (int32_t i = 0; i < t->n_vocab; i++) {
            t->piece_off[i] = (uint32_t)len;
            if ((rc = render_piece(t, i, &pbuf, &len, &cap))) goto err;
            if (len > UINT32_MAX / 2) { rc = nj_fail(NJ_EFORMAT, "tokenizer: vocabulary text too large"); goto err; }
        }
        t->piece_off[t->n_vocab] = (uint32_t)len;
        t->piece_buf = pbuf;
        pbuf = NULL;
    }

    /* SPM segmentation is exact when every vocabulary entry is "\u2581"*X
     * with no "\u2581" inside X: then no merge can join a symbol that is not
     * "\u2581" to a following "\u2581" (merged symbols are always entries). */
    if (t->type == TOK_TYPE_SPM) {
        t->spm_cut_ok = true;
        for (int32_t i = 0; i < t->n_vocab && t->spm_cut_ok; i++) {
            const uint8_t *p = (const uint8_t *)t->str[i].ptr;
            size_t n = t->str[i].len, k = 0;
            while (k + 3 <= n && memcmp(p + k, "\xE2\x96\x81", 3) == 0) k += 3;
            for (; k + 3 <= n; k++)
                if (memcmp(p + k, "\xE2\x96\x81", 3) == 0) { t->spm_cut_ok = false; break; }
        }
    }

    /* newline token */
    if (t->type == TOK_TYPE_SPM) {
        t->nl = t->spm_byte['\n'] >= 0 ? t->spm_byte['\n'] : t->pad;
    } else {
        int32_t ids[8];
        int k = tok_encode(t, "\n", 1, false, false, ids, 8);
        t->nl = k > 0 ? ids[0] : t->pad;
    }

    if (err) *err = 0;
    return t;
err:
    nj_free(pbuf);
    tok_free(t);
    if (err) *err = rc ? rc : NJ_EFORMAT;
    return NULL;
}

void tok_free(nj_tok *t) {
    if (!t) return;
    for (int i = 0; i < MAX_STEPS; i++) pcre2_code_free(t->step_re[i]);
    pcre2_general_context_free(t->gctx);
    nj_free(t->str);
    nj_free(t->map.slot);
    nj_free(t->map.hash);
    arena_free(t->arena);
    nj_free(t->score);
    nj_free(t->attr);
    nj_free(t->merge);
    nj_free(t->special);
    nj_free(t->trie);
    nj_free(t->piece_buf);
    nj_free(t->piece_off);
    nj_free(t->eog);
    nj_free(t);
}

/* ------------------------------------------------------------------ */
/* encoding                                                            */
/* ------------------------------------------------------------------ */

/* Per-call scratch, freed at the end of tok_encode. */
typedef struct {
    i32vec out;
    /* BPE */
    u32vec cps;          /* code points of the fragment */
    uint16_t *flags; size_t flags_cap;
    uint8_t *coll; size_t coll_cap;     /* collapsed class string */
    uint8_t *retext; size_t retext_cap; /* UTF-8 for ST_RE_UTF */
    u32vec re_off;       /* byte offset of each code point in retext */
    u32vec words, words2;/* piece lengths in code points */
    uint8_t *clean; size_t clean_cap;   /* re-encoded UTF-8 */
    u32vec coff;         /* byte offset of each code point in clean */
    uint8_t *enc; size_t enc_cap;       /* byte-alphabet text of one word */
    /* merge state (BPE and SPM) */
    struct sym { int32_t id; uint32_t start, n; int32_t prev, next; } *sym;
    size_t sym_cap;
    struct hent { uint64_t key; int32_t left, right, a, b; } *heap;
    size_t heap_n, heap_cap;
    uint8_t *buf; size_t buf_cap;       /* SPM text / misc */
    pcre2_match_data *md[MAX_STEPS];
    /* word cache for long inputs: word bytes -> ids, bounded, this call only */
    struct wc_slot { uint64_t h; uint32_t key_off, ids_off; uint16_t key_len, n_ids; } *wc;
    uint8_t *wc_keys;
    int32_t *wc_ids;
    size_t wc_keys_used, wc_ids_used;
} scratch;

#define WC_SLOTS   16384          /* power of two */
#define WC_KEYS    (256u << 10)  /* bytes of cached word text */
#define WC_IDS     (64u << 10)   /* cached ids */
#define WC_MAXWORD 64
#define WC_MIN_TEXT (16u << 10)  /* inputs shorter than this are not cached */

static int wc_init(scratch *s) {
    s->wc = nj_calloc(WC_SLOTS, sizeof *s->wc);
    s->wc_keys = nj_malloc(WC_KEYS);
    s->wc_ids = nj_malloc(WC_IDS * sizeof *s->wc_ids);
    if (!s->wc || !s->wc_keys || !s->wc_ids) return -ENOMEM;
    return 0;
}

/* Cached ids of word w (appended to s->out) or false. */
static bool wc_get(scratch *s, const uint8_t *w, size_t n, uint64_t h) {
    const struct wc_slot *e = &s->wc[h & (WC_SLOTS - 1)];
    if (e->h != h || e->key_len != n || memcmp(s->wc_keys + e->key_off, w, n) != 0) return false;
    if (i32_reserve(&s->out, s->out.n + e->n_ids)) return false;   /* recompute instead */
    memcpy(s->out.v + s->out.n, s->wc_ids + e->ids_off, e->n_ids * sizeof *s->wc_ids);
    s->out.n += e->n_ids;
    return true;
}

/* Remember the ids out[first..] produced for word w; when a pool is full
 * the whole cache starts over (memory stays bounded). */
static void wc_put(scratch *s, const uint8_t *w, size_t n, uint64_t h, size_t first) {
    size_t k = s->out.n - first;
    if (k > 0xFFFF || k > WC_IDS) return;
    if (s->wc_keys_used + n > WC_KEYS || s->wc_ids_used + k > WC_IDS) {
        memset(s->wc, 0, WC_SLOTS * sizeof *s->wc);
        s->wc_keys_used = s->wc_ids_used = 0;
    }
    struct wc_slot *e = &s->wc[h & (WC_SLOTS - 1)];
    memcpy(s->wc_keys + s->wc_keys_used, w, n);
    memcpy(s->wc_ids + s->wc_ids_used, s->out.v + first, k * sizeof *s->wc_ids);
    *e = (struct wc_slot){h, (uint32_t)s->wc_keys_used, (uint32_t)s->wc_ids_used, (uint16_t)n, (uint16_t)k};
    s->wc_keys_used += n;
    s->wc_ids_used += k;
}

static int grow_bytes(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = nj_realloc(*p, c);
    if (!q) return -ENOMEM;
    *p = q; *cap = c;
    return 0;
}

static void scratch_free(scratch *s) {
    nj_free(s->out.v); nj_free(s->cps.v); nj_free(s->flags); nj_free(s->coll);
    nj_free(s->retext); nj_free(s->re_off.v); nj_free(s->words.v); nj_free(s->words2.v);
    nj_free(s->clean); nj_free(s->coff.v); nj_free(s->enc); nj_free(s->sym);
    nj_free(s->heap); nj_free(s->buf);
    nj_free(s->wc); nj_free(s->wc_keys); nj_free(s->wc_ids);
    for (int i = 0; i < MAX_STEPS; i++) pcre2_match_data_free(s->md[i]);
}

/* ---- binary min-heap on 64-bit keys ---- */

static int heap_push(scratch *s, struct hent e) {
    if (s->heap_n == s->heap_cap) {
        size_t c = s->heap_cap ? s->heap_cap * 2 : 256;
        void *p = nj_realloc(s->heap, c * sizeof *s->heap);
        if (!p) return -ENOMEM;
        s->heap = p; s->heap_cap = c;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p].key <= e.key) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
    return 0;
}

static struct hent heap_pop(scratch *s) {
    struct hent top = s->heap[0];
    struct hent last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1].key < s->heap[c].key) c++;
        if (last.key <= s->heap[c].key) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static int sym_reserve(scratch *s, size_t n) {
    if (n <= s->sym_cap) return 0;
    size_t c = s->sym_cap ? s->sym_cap : 256;
    while (c < n) c *= 2;
    void *p = nj_realloc(s->sym, c * sizeof *s->sym);
    if (!p) return -ENOMEM;
    s->sym = p; s->sym_cap = c;
    return 0;
}

/* ---- SPM ---- */

/* Order: higher score first, then lower left index.  Map the float to an
 * unsigned that sorts ascending, then invert so the min-heap pops max. */
static inline uint64_t spm_key(float score, int32_t left) {
    uint32_t u;
    memcpy(&u, &score, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)(~u) << 32) | (uint32_t)left;
}

static int spm_try_pair(const nj_tok *t, scratch *s, const uint8_t *text, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    size_t n = (size_t)s->sym[l].n + s->sym[r].n;
    int32_t id = tok_find(t, (const char *)text + s->sym[l].start, n);
    if (id < 0) return 0;
    return heap_push(s, (struct hent){spm_key(t->score[id], l), l, r, (int32_t)n, 0});
}

/* One SPM segment: merge with a heap, then ids (with byte fallback). */
static int spm_segment(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    int rc;
    if (len == 0) return 0;
    if ((rc = sym_reserve(s, len))) return rc;
    int32_t nsym = 0;
    for (size_t off = 0; off < len;) {
        size_t k = NJ_MIN(utf8_len_lead(text[off]), len - off);
        s->sym[nsym] = (struct sym){0, (uint32_t)off, (uint32_t)k, nsym - 1, -1};
        off += k;
        if (off < len) s->sym[nsym].next = nsym + 1;
        nsym++;
    }
    s->heap_n = 0;
    for (int32_t i = 1; i < nsym; i++)
        if ((rc = spm_try_pair(t, s, text, i - 1, i))) return rc;
    while (s->heap_n) {
        struct hent e = heap_pop(s);
        struct sym *L = &s->sym[e.left], *R = &s->sym[e.right];
        if (L->n == 0 || R->n == 0 || (int32_t)(L->n + R->n) != e.a) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) s->sym[R->next].prev = e.left;
        if ((rc = spm_try_pair(t, s, text, L->prev, e.left))) return rc;
        if ((rc = spm_try_pair(t, s, text, e.left, L->next))) return rc;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const struct sym *y = &s->sym[i];
        int32_t id = tok_find(t, (const char *)text + y->start, y->n);
        if (id >= 0) { if ((rc = i32_push(&s->out, id))) return rc; continue; }
        for (uint32_t k = 0; k < y->n; k++) {
            int32_t b = t->spm_byte[text[y->start + k]];
            if (b < 0) b = t->unk;   /* llama.cpp would throw here */
            if (b >= 0 && (rc = i32_push(&s->out, b))) return rc;
        }
    }
    return 0;
}

static int spm_segment_cached(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    if (!s->wc || len > WC_MAXWORD) return spm_segment(t, s, text, len);
    uint64_t h = hash_bytes(text, len);
    if (wc_get(s, text, len, h)) return 0;
    size_t first = s->out.n;
    int rc = spm_segment(t, s, text, len);
    if (rc == 0) wc_put(s, text, len, h, first);
    return rc;
}

/* SPM over a whole fragment.  When the vocabulary allows (spm_cut_ok), the
 * text is cut before every "\u2581" symbol that follows a symbol that is not
 * "\u2581": no merge can cross such a cut, merges on the two sides never
 * interact, and the (score, left) order within a side is unchanged, so the
 * result is the same as one global heap, with word-sized heaps. */
static int spm_encode(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    if (!t->spm_cut_ok) return spm_segment(t, s, text, len);
    size_t seg = 0;
    bool prev_sp = false;
    for (size_t off = 0; off < len;) {
        size_t k = NJ_MIN(utf8_len_lead(text[off]), len - off);
        bool sp = k == 3 && memcmp(text + off, "\xE2\x96\x81", 3) == 0;
        if (sp && !prev_sp && off > seg) {
            int rc = spm_segment_cached(t, s, text + seg, off - seg);
            if (rc) return rc;
            seg = off;
        }
        prev_sp = sp;
        off += k;
    }
    return spm_segment_cached(t, s, text + seg, len - seg);
}

/* ---- pre-tokenizer splitters (per piece [b, e) of code points) ---- */

#define CP(i) ((i) < e ? cp[i] : OOR)
#define FL(i) ((i) < e ? fl[i] : 0)

static inline uint32_t lower(uint32_t c) {
    if (c == OOR) return c;
    return c < 128 ? (uint32_t)tolower((int)c) : (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

/* Contractions: returns the length matched at pos (0 if none). */
static inline size_t contraction(const uint32_t *cp, size_t pos, size_t e, bool icase) {
    if (cp[pos] != '\'' || pos + 1 >= e) return 0;
    uint32_t a = icase ? lower(cp[pos + 1]) : cp[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 < e) {
        uint32_t b = icase ? lower(cp[pos + 2]) : cp[pos + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
 * — the hand-written form llama.cpp runs for this pattern. */
static int split_gpt2(const uint32_t *cp, const uint16_t *fl, size_t b, size_t e, u32vec *out) {
    size_t pos = b;
    int rc;
#define EMIT(to) do { size_t to_ = (to); if (to_ > pos) { if ((rc = u32_push(out, (uint32_t)(to_ - pos)))) return rc; } pos = to_; } while (0)
    while (pos < e) {
        uint32_t c = cp[pos];
        uint16_t f = fl[pos];
        size_t k = contraction(cp, pos, e, false);
        if (k) { EMIT(pos + k); continue; }
        uint16_t f2 = c == ' ' ? FL(pos + 1) : f;
        size_t q = pos + (c == ' ');
        if (f2 & F_LETTER) { while (FL(q) & F_LETTER) q++; EMIT(q); continue; }
        if (f2 & F_NUMBER) { while (FL(q) & F_NUMBER) q++; EMIT(q); continue; }
        if (!(f2 & (F_WS | F_LETTER | F_NUMBER)) && f2) {
            while (!(FL(q) & (F_WS | F_LETTER | F_NUMBER)) && FL(q)) q++;
            EMIT(q); continue;
        }
        size_t nws = 0;
        while (FL(pos + nws) & F_WS) nws++;
        if (nws > 1 && CP(pos + nws) != OOR) { EMIT(pos + nws - 1); continue; }
        if (nws > 0) { EMIT(pos + nws); continue; }
        EMIT(pos + 1);
    }
    return 0;
}

/* llama3 (digits=3), qwen2 (digits=1), qwen35 (digits=1, marks join letters):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static int split_llama3(const uint32_t *cp, const uint16_t *fl, size_t b, size_t e, u32vec *out,
                        int digits, bool marks) {
    size_t pos = b;
    int rc;
    const uint16_t LM = marks ? (F_LETTER | F_MARK) : F_LETTER;
    while (pos < e) {
        uint32_t c = cp[pos];
        uint16_t f = fl[pos];
        size_t k = contraction(cp, pos, e, true);
        if (k) { EMIT(pos + k); continue; }
        if (!(c == '\r' || c == '\n' || (f & F_NUMBER))) {
            if ((f & LM) || (FL(pos + 1) & LM)) {
                size_t q = pos + 1;
                while (FL(q) & LM) q++;
                EMIT(q); continue;
            }
        }
        if (f & F_NUMBER) {
            if (digits == 1) { EMIT(pos + 1); continue; }
            size_t q = pos, ini = pos;
            while (FL(q) & F_NUMBER) {
                if (++q - ini >= (size_t)digits) { EMIT(q); ini = q; }
            }
            EMIT(q); continue;
        }
        uint16_t f2 = c == ' ' ? FL(pos + 1) : f;
        if (!(f2 & (F_WS | LM | F_NUMBER)) && f) {
            size_t q = pos + (c == ' ');
            while (!(FL(q) & (F_WS | LM | F_NUMBER)) && FL(q)) q++;
            while (CP(q) == '\r' || CP(q) == '\n') q++;
            EMIT(q); continue;
        }
        size_t nws = 0, last_rn = 0;
        while (FL(pos + nws) & F_WS) {
            uint32_t c2 = cp[pos + nws];
            if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) { EMIT(last_rn); continue; }
        if (nws > 1 && CP(pos + nws) != OOR) { EMIT(pos + nws - 1); continue; }
        if (nws > 0) { EMIT(pos + nws); continue; }
        EMIT(pos + 1);
    }
    return 0;
}

/* [^\n]+|[\n]+ */
static int split_newlines(const uint32_t *cp, size_t b, size_t e, u32vec *out) {
    size_t pos = b;
    int rc;
    while (pos < e) {
        bool nl = cp[pos] == '\n';
        size_t q = pos;
        while (q < e && (cp[q] == '\n') == nl) q++;
        EMIT(q);
    }
    return 0;
}
#undef EMIT
#undef CP
#undef FL

/* Index of the code point starting at subject byte `off` in the UTF-8
 * re-text (re_off is strictly increasing; binary search in [lo, hi]). */
static size_t re_to_cp(const uint32_t *re_off, size_t lo, size_t hi, size_t off) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (re_off[mid] < off) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* Regex step over one piece [b, e) of code points.  The subject is either
 * the collapsed string (one byte per code point) or the UTF-8 re-text
 * (byte offsets mapped back through re_off).  Matches and the gaps between
 * them become pieces, as in llama.cpp's unicode_regex_split_stl. */
static int split_regex(const nj_tok *t, scratch *s, int step, size_t b, size_t e, u32vec *out) {
    bool utf = t->step_kind[step] == ST_RE_UTF;
    const uint8_t *subj;
    size_t sb, se;
    if (utf) { subj = s->retext; sb = s->re_off.v[b]; se = s->re_off.v[e]; }
    else     { subj = s->coll;   sb = b;              se = e; }
    pcre2_match_data *md = s->md[step];
    size_t at = sb, cprev = b;
    int rc;
    while (at < se) {
        int m = pcre2_match(t->step_re[step], subj + sb, se - sb, at - sb,
                            utf ? PCRE2_NO_UTF_CHECK : 0, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) return m == PCRE2_ERROR_NOMEMORY ? -ENOMEM : nj_fail(NJ_EFORMAT, "tokenizer: regex match failed (%d)", m);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = sb + ov[0], me = sb + ov[1];
        if (me == ms) {   /* empty match: none of our patterns can, be safe */
            at = ms + 1;
            if (utf) while (at < se && (subj[at] & 0xC0) == 0x80) at++;
            continue;
        }
        size_t cms = utf ? re_to_cp(s->re_off.v, cprev, e, ms) : ms;
        size_t cme = utf ? re_to_cp(s->re_off.v, cms, e, me) : me;
        if (cms > cprev && (rc = u32_push(out, (uint32_t)(cms - cprev)))) return rc;
        if ((rc = u32_push(out, (uint32_t)(cme - cms)))) return rc;
        cprev = cme;
        at = me;
    }
    if (e > cprev && (rc = u32_push(out, (uint32_t)(e - cprev)))) return rc;
    return 0;
}

static bool all_newlines(const uint8_t *w, size_t n) {
    for (size_t i = 0; i < n; i++) if (w[i] != '\n') return false;
    return true;
}

/* ---- BPE ---- */

static int bpe_add_pair(const nj_tok *t, scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    int32_t a = s->sym[l].id, b = s->sym[r].id;
    if (a < 0 || b < 0) return 0;
    const merge_ent *m = merge_find(t, a, b);
    if (!m) return 0;
    return heap_push(s, (struct hent){((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)l, l, r, a, b});
}

/* Merge one word: bytes [wb, we) of s->clean. */
static int bpe_word(const nj_tok *t, scratch *s, size_t wb, size_t we) {
    const uint8_t *w = s->clean + wb;
    size_t wl = we - wb;
    int rc;
    if (wl == 0) return 0;

    if (t->ignore_merges || (t->gemma4 && all_newlines(w, wl))) {
        /* whole word as one token if it is one */
        int32_t id;
        if (t->byte_encode) {
            if ((rc = grow_bytes(&s->enc, &s->enc_cap, wl * 2))) return rc;
            size_t n = 0;
            for (size_t i = 0; i < wl; i++) n += (size_t)utf8_put(byte_to_cp(w[i]), s->enc + n);
            id = tok_find(t, (const char *)s->enc, n);
        } else {
            id = tok_find(t, (const char *)w, wl);
        }
        if (id >= 0) return i32_push(&s->out, id);
    }

    if ((rc = sym_reserve(s, wl))) return rc;
    int32_t nsym = 0;
    if (t->byte_encode) {
        for (size_t i = 0; i < wl; i++) {
            s->sym[nsym] = (struct sym){t->byte_sym[w[i]], (uint32_t)i, 1, nsym - 1, nsym + 1};
            nsym++;
        }
    } else {
        for (size_t i = 0; i < wl;) {
            size_t k = NJ_MIN(utf8_len_lead(w[i]), wl - i);
            s->sym[nsym] = (struct sym){strmap_get(t, w + i, k), (uint32_t)i, (uint32_t)k, nsym - 1, nsym + 1};
            nsym++;
            i += k;
        }
    }
    s->sym[nsym - 1].next = -1;

    s->heap_n = 0;
    for (int32_t i = 1; i < nsym; i++)
        if ((rc = bpe_add_pair(t, s, i - 1, i))) return rc;
    while (s->heap_n) {
        struct hent e = heap_pop(s);
        struct sym *L = &s->sym[e.left], *R = &s->sym[e.right];
        if (L->n == 0 || R->n == 0 || L->id != e.a || R->id != e.b) continue;
        const merge_ent *m = merge_find(t, e.a, e.b);
        L->n += R->n;
        L->id = m->result;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) s->sym[R->next].prev = e.left;
        if ((rc = bpe_add_pair(t, s, L->prev, e.left))) return rc;
        if ((rc = bpe_add_pair(t, s, e.left, L->next))) return rc;
    }

    for (int32_t i = 0; i < nsym; i++) {
        const struct sym *y = &s->sym[i];
        if (y->n == 0) continue;
        if (y->id >= 0 && y->id < t->n_vocab) {
            if ((rc = i32_push(&s->out, y->id))) return rc;
            continue;
        }
        /* Not a token: llama.cpp looks up each byte of the symbol's
         * (alphabet-encoded) text as a one-byte string, or <0xXX> for
         * raw-UTF-8 BPE, and drops what it does not find. */
        for (uint32_t k = 0; k < y->n; k++) {
            uint8_t byte = w[y->start + k];
            if (!t->byte_encode) {
                if (t->byte_hex[byte] >= 0 && (rc = i32_push(&s->out, t->byte_hex[byte]))) return rc;
                continue;
            }
            uint8_t u[4];
            int m = utf8_put(byte_to_cp(byte), u);
            for (int j = 0; j < m; j++)
                if (t->byte_tok1[u[j]] >= 0 && (rc = i32_push(&s->out, t->byte_tok1[u[j]]))) return rc;
        }
    }
    return 0;
}

/* Tokenize one raw fragment with BPE: decode, pre-tokenize, merge words. */
static int bpe_fragment(const nj_tok *t, scratch *s, const uint8_t *text, size_t len) {
    int rc;
    if (t->escape_ws) {   /* ' ' -> U+2581 before anything else */
        size_t sp = 0;
        for (size_t i = 0; i < len; i++) sp += text[i] == ' ';
        if ((rc = grow_bytes(&s->buf, &s->buf_cap, len + 2 * sp + 1))) return rc;
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') { memcpy(s->buf + n, "\xE2\x96\x81", 3); n += 3; }
            else s->buf[n++] = text[i];
        }
        text = s->buf;
        len = n;
    }

    /* code points, llama.cpp's lenient decoding */
    s->cps.n = 0;
    if ((rc = u32_reserve(&s->cps, len + 1))) return rc;
    for (size_t i = 0; i < len;) s->cps.v[s->cps.n++] = utf8_next(text, len, &i);
    const size_t N = s->cps.n;
    const uint32_t *cp = s->cps.v;
    if (N == 0) return 0;

    if (t->need_flags) {
        if (N > s->flags_cap) {
            void *p = nj_realloc(s->flags, N * sizeof *s->flags);
            if (!p) return -ENOMEM;
            s->flags = p; s->flags_cap = N;
        }
        for (size_t i = 0; i < N; i++) s->flags[i] = cp_flags(cp[i]);
    }
    if (t->need_collapsed) {
        if ((rc = grow_bytes(&s->coll, &s->coll_cap, N))) return rc;
        for (size_t i = 0; i < N; i++) {
            uint32_t c = cp[i];
            uint16_t f = s->flags[i];
            uint8_t o;
            if (c < 128) o = (uint8_t)c;
            else if (f & F_WS) o = 0x0B;
            else if (f & F_NUMBER) o = 0xD1;
            else if (f & F_LETTER) o = 0xD2;
            else if (f & F_PUNCT) o = 0xD3;
            else if (f & F_MARK) o = 0xD4;
            else if (f & F_SYMBOL) o = 0xD5;
            else o = 0xD0;
            s->coll[i] = o;
        }
    }
    if (t->need_retext) {
        /* the code points as llama.cpp's wide-string regex sees them:
         * non-ASCII whitespace as 0x0B; surrogates (which PCRE2 cannot take
         * in UTF mode) as U+FFFF, which no pattern of ours matches either */
        if ((rc = grow_bytes(&s->retext, &s->retext_cap, N * 4 + 1))) return rc;
        s->re_off.n = 0;
        if ((rc = u32_reserve(&s->re_off, N + 1))) return rc;
        size_t n = 0;
        for (size_t i = 0; i < N; i++) {
            uint32_t c = cp[i];
            if (c > 0x7F && cp_is_ws(c)) c = 0x0B;
            else if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFF;
            s->re_off.v[i] = (uint32_t)n;
            n += (size_t)utf8_put(c, s->retext + n);
        }
        s->re_off.v[N] = (uint32_t)n;
        s->re_off.n = N + 1;
    }

    /* pre-tokenizer steps: each cuts every current piece */
    s->words.n = 0;
    if ((rc = u32_push(&s->words, (uint32_t)N))) return rc;
    for (int st = 0; st < t->n_steps; st++) {
        int kind = t->step_kind[st];
        if ((kind == ST_RE_BYTE || kind == ST_RE_UTF) && !s->md[st]) {
            s->md[st] = pcre2_match_data_create_from_pattern(t->step_re[st], t->gctx);
            if (!s->md[st]) return -ENOMEM;
        }
        s->words2.n = 0;
        size_t pos = 0;
        for (size_t w = 0; w < s->words.n; w++) {
            size_t b = pos, e = pos + s->words.v[w];
            pos = e;
            switch (kind) {
            case ST_GPT2:     rc = split_gpt2(cp, s->flags, b, e, &s->words2); break;
            case ST_LLAMA3:   rc = split_llama3(cp, s->flags, b, e, &s->words2, 3, false); break;
            case ST_QWEN2:    rc = split_llama3(cp, s->flags, b, e, &s->words2, 1, false); break;
            case ST_QWEN35:   rc = split_llama3(cp, s->flags, b, e, &s->words2, 1, true); break;
            case ST_NEWLINES: rc = split_newlines(cp, b, e, &s->words2); break;
            default:          rc = split_regex(t, s, st, b, e, &s->words2); break;
            }
            if (rc) return rc;
        }
        u32vec tmp = s->words; s->words = s->words2; s->words2 = tmp;
    }

    /* re-encode to UTF-8 (invalid input is now U+FFFD), then merge words */
    if ((rc = grow_bytes(&s->clean, &s->clean_cap, N * 4 + 1))) return rc;
    if ((rc = u32_reserve(&s->coff, N + 1))) return rc;
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        s->coff.v[i] = (uint32_t)n;
        n += (size_t)utf8_put(cp[i], s->clean + n);
    }
    s->coff.v[N] = (uint32_t)n;
    size_t pos = 0;
    for (size_t w = 0; w < s->words.n; w++) {
        size_t b = pos, e = pos + s->words.v[w];
        pos = e;
        size_t wb = s->coff.v[b], we = s->coff.v[e];
        if (s->wc && we - wb <= WC_MAXWORD) {
            uint64_t h = hash_bytes(s->clean + wb, we - wb);
            if (wc_get(s, s->clean + wb, we - wb, h)) continue;
            size_t first = s->out.n;
            if ((rc = bpe_word(t, s, wb, we))) return rc;
            wc_put(s, s->clean + wb, we - wb, h, first);
        } else if ((rc = bpe_word(t, s, wb, we))) return rc;
    }
    return 0;
}

/* ---- special-token partition ---- */

typedef struct { int32_t tok; size_t off, len; } frag;
typedef struct { frag *v; size_t n, cap; } fragvec;

static int frag_push(fragvec *a, int32_t tok, size_t off, size_t len) {
    if (a->n == a->cap) {
        size_t c = a->cap ? a->cap * 2 : 16;
        void *p = nj_realloc(a->v, c * sizeof *a->v);
        if (!p) return -ENOMEM;
        a->v = p; a->cap = c;
    }
    a->v[a->n++] = (frag){tok, off, len};
    return 0;
}

static inline bool c_isspace(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Does [off, off+len) overlap any literal span?  `lit` is sorted by offset
 * and its spans do not overlap each other (tok_encode_ex normalises it), so
 * the ends are sorted too: binary-search the first span ending after off. */
static bool in_literal(const tok_span *lit, size_t n_lit, size_t off, size_t len) {
    size_t lo = 0, hi = n_lit;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lit[mid].off + lit[mid].len <= off) lo = mid + 1; else hi = mid;
    }
    return lo < n_lit && lit[lo].off < off + len;
}

/* Split `text` into raw and special fragments (see the top comment).  A
 * special-token match overlapping a literal span is not a match: the search
 * goes on from the next byte and the bytes stay in the raw fragment.
 * On success *out holds the fragments (caller frees out->v). */
static int partition(const nj_tok *t, const uint8_t *text, size_t len, bool parse_special,
                     const tok_span *lit, size_t n_lit, fragvec *out) {
    int rc = 0;
    fragvec a = {0}, b = {0};
    uint8_t *found = NULL;
    out->v = NULL; out->n = out->cap = 0;
    if (len == 0) return 0;
    if ((rc = frag_push(&a, -1, 0, len))) goto done;
    if (t->n_special == 0) goto done;

    /* which special tokens occur anywhere in the text */
    found = nj_calloc((size_t)t->n_special, 1);
    if (!found) { rc = -ENOMEM; goto done; }
    bool any = false;
    for (size_t i = 0; i < len; i++) {
        int32_t node = t->trie_root[text[i]];
        size_t j = i;
        while (node >= 0) {
            if (t->trie[node].special >= 0) { found[t->trie[node].special] = 1; any = true; }
            if (++j >= len) break;
            uint8_t c = text[j];
            int32_t ch = t->trie[node].child;
            while (ch >= 0 && t->trie[ch].byte != c) ch = t->trie[ch].sibling;
            node = ch;
        }
    }
    if (!any) goto done;

    for (int si = 0; si < t->n_special; si++) {
        if (!found[si]) continue;
        int32_t id = t->special[si];
        unsigned at = t->attr[id];
        if (!parse_special && (at & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        const uint8_t *st = (const uint8_t *)t->str[id].ptr;
        size_t sl = t->str[id].len;
        b.n = 0;
        for (size_t k = 0; k < a.n; k++) {
            frag fr = a.v[k];
            if (fr.tok >= 0) { if ((rc = frag_push(&b, fr.tok, 0, 0))) goto done; continue; }
            /* raw fragment [base, base+blen); search it from `pos` on */
            size_t base = fr.off, blen = fr.len, pos = base;
            for (;;) {
                size_t rest = base + blen - pos;
                const uint8_t *m = rest >= sl ? memmem(text + pos, rest, st, sl) : NULL;
                if (!m) {
                    if (blen > 0 && (rc = frag_push(&b, -1, base, blen))) goto done;
                    break;
                }
                size_t mo = (size_t)(m - text);
                if (n_lit && in_literal(lit, n_lit, mo, sl)) { pos = mo + 1; continue; }
                if (mo > base) {
                    size_t ll = mo - base;
                    if (at & TOK_ATTR_LSTRIP)
                        while (ll > 0 && c_isspace(text[base + ll - 1])) ll--;
                    if (ll > 0 && (rc = frag_push(&b, -1, base, ll))) goto done;
                }
                if ((rc = frag_push(&b, id, 0, 0))) goto done;
                if (mo + sl < base + blen) {
                    size_t ro = mo + sl, rl = blen - (mo - base) - sl;
                    if (at & TOK_ATTR_RSTRIP)
                        while (rl > 0 && c_isspace(text[ro])) { ro++; rl--; }
                    base = pos = ro; blen = rl;
                    if (rl == 0) break;
                } else break;
            }
        }
        fragvec tmp = a; a = b; b = tmp;
    }
done:
    nj_free(found);
    nj_free(b.v);
    if (rc) { nj_free(a.v); return rc; }
    *out = a;
    return 0;
}

static int span_cmp(const void *x, const void *y) {
    const tok_span *a = x, *b = y;
    return a->off < b->off ? -1 : a->off > b->off;
}

/* Copy the non-empty literal spans, clipped to the text, sorted and merged
 * into disjoint runs.  *out is NULL when there are none. */
static int literal_norm(const tok_span *lit, int n_lit, size_t len, tok_span **out, size_t *n_out) {
    *out = NULL; *n_out = 0;
    if (n_lit <= 0) return 0;
    tok_span *v = nj_malloc((size_t)n_lit * sizeof *v);
    if (!v) return -ENOMEM;
    size_t n = 0;
    for (int i = 0; i < n_lit; i++) {
        if (lit[i].off >= len || lit[i].len == 0) continue;
        v[n].off = lit[i].off;
        v[n].len = NJ_MIN(lit[i].len, len - lit[i].off);
        n++;
    }
    qsort(v, n, sizeof *v, span_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && v[i].off <= v[m - 1].off + v[m - 1].len) {
            size_t end = NJ_MAX(v[m - 1].off + v[m - 1].len, v[i].off + v[i].len);
            v[m - 1].len = end - v[m - 1].off;
        } else {
            v[m++] = v[i];
        }
    }
    if (m == 0) { nj_free(v); return 0; }
    *out = v; *n_out = m;
    return 0;
}

int tok_encode(const nj_tok *t, const char *text, size_t len, bool add_special,
               bool parse_special, int32_t *ids, int max) {
    return tok_encode_ex(t, text, len, add_special, parse_special, NULL, 0, ids, max);
}

int tok_encode_ex(const nj_tok *t, const char *text, size_t len, bool add_special,
                  bool parse_special, const tok_span *literal, int n_literal,
                  int32_t *ids, int max) {
    scratch s = {0};
    fragvec fr = {0};
    tok_span *lit = NULL;
    size_t n_lit = 0;
    int rc;
    if (!t || (!text && len) || n_literal < 0 || (n_literal > 0 && !literal)) return -EINVAL;
    if (len > TOK_MAX_TEXT)   /* offsets inside are 32-bit; 4 bytes per code point */
        return nj_fail(NJ_ETOOBIG, "tokenizer: text of %zu bytes exceeds %u", len, (unsigned)TOK_MAX_TEXT);
    const uint8_t *u = (const uint8_t *)text;

    if (len >= WC_MIN_TEXT && (rc = wc_init(&s))) goto done;
    if (add_special && t->add_bos && (rc = i32_push(&s.out, t->bos))) goto done;
    if ((rc = literal_norm(literal, n_literal, len, &lit, &n_lit))) goto done;
    if ((rc = partition(t, u, len, parse_special, lit, n_lit, &fr))) goto done;

    if (t->type == TOK_TYPE_SPM) {
        bool prev_special = true;   /* the first fragment gets the space too */
        for (size_t k = 0; k < fr.n; k++) {
            if (fr.v[k].tok >= 0) {
                if ((rc = i32_push(&s.out, fr.v[k].tok))) goto done;
                prev_special = true;
                continue;
            }
            const uint8_t *p = u + fr.v[k].off;
            size_t n = fr.v[k].len, sp = 0;
            bool lead = t->add_space_prefix && prev_special;
            for (size_t i = 0; i < n; i++) sp += p[i] == ' ';
            if ((rc = grow_bytes(&s.buf, &s.buf_cap, n + 2 * sp + 4))) goto done;
            size_t m = 0;
            if (lead) { memcpy(s.buf, "\xE2\x96\x81", 3); m = 3; }
            for (size_t i = 0; i < n; i++) {
                if (p[i] == ' ') { memcpy(s.buf + m, "\xE2\x96\x81", 3); m += 3; }
                else s.buf[m++] = p[i];
            }
            /* spm_encode reads s.buf; it does not touch it otherwise */
            if ((rc = spm_encode(t, &s, s.buf, m))) goto done;
            prev_special = false;
        }
    } else {
        for (size_t k = 0; k < fr.n; k++) {
            if (fr.v[k].tok >= 0) { if ((rc = i32_push(&s.out, fr.v[k].tok))) goto done; continue; }
            if ((rc = bpe_fragment(t, &s, u + fr.v[k].off, fr.v[k].len))) goto done;
        }
    }
    if (add_special && t->add_eos && (rc = i32_push(&s.out, t->eos))) goto done;

    if (s.out.n > (size_t)INT32_MAX) { rc = NJ_ETOOBIG; goto done; }
    rc = (int)s.out.n;
    if (ids && max > 0 && rc > 0) memcpy(ids, s.out.v, (size_t)NJ_MIN(rc, max) * sizeof *ids);
done:
    nj_free(lit);
    nj_free(fr.v);
    scratch_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ */
/* pieces and decoding                                                 */
/* ------------------------------------------------------------------ */

int tok_piece(const nj_tok *t, int32_t id, bool special, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab) return -EINVAL;
    if (!special && (t->attr[id] & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL))) return 0;
    size_t n = t->piece_off[id + 1] - t->piece_off[id];
    if (buf && cap) memcpy(buf, t->piece_buf + t->piece_off[id], NJ_MIN(n, cap));
    return (int)n;
}

int tok_decode(const nj_tok *t, const int32_t *ids, int n, unsigned flags, char *buf, size_t cap) {
    if (!t || n < 0 || (n && !ids)) return -EINVAL;
    bool special = flags & TOK_DECODE_SPECIAL;
    bool remove_space = t->add_space_prefix;
    if ((flags & TOK_DECODE_REMOVE_SPECIAL) && t->add_bos && n > 0 && ids[0] == t->bos) {
        remove_space = false;   /* sic: llama.cpp keeps the space after a BOS */
        ids++; n--;
    }
    if ((flags & TOK_DECODE_REMOVE_SPECIAL) && t->add_eos && n > 0 && ids[n - 1] == t->eos) n--;

    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int k = tok_piece(t, ids[i], special, NULL, 0);
        if (k < 0) return k;
        total += (size_t)k;
    }
    char *tmp = nj_malloc(total + 1);
    if (!tmp) return -ENOMEM;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int k = tok_piece(t, ids[i], special, tmp + len, total - len);
        const char *p = tmp + len;
        if (remove_space && k > 0 && p[0] == ' ') { memmove(tmp + len, p + 1, (size_t)k - 1); k--; }
        remove_space = false;
        len += (size_t)k;
    }

    if (t->clean_spaces && !(flags & TOK_DECODE_NO_CLEAN) && len > 0) {
        /* the three clean-up passes of llama_detokenize, in place */
        char *x = tmp;
        size_t n1 = len, o = 1;
        for (size_t i = 1; i < n1; i++) {         /* " ?" " !" " ." " ," */
            char c = x[i];
            if (x[i - 1] == ' ' && (c == '?' || c == '!' || c == '.' || c == ',')) o--;
            x[o++] = c;
        }
        size_t n2 = o; o = 1;
        for (size_t i = 1; i < n2; i++) {         /* " ' " -> "'" */
            char c = x[i];
            if (c == '\'' && i + 1 < n2 && x[i - 1] == ' ' && x[i + 1] == ' ') {
                o--;
                x[++i] = '\0';
            }
            x[o++] = c;
        }
        size_t n3 = o; o = 1;
        for (size_t i = 1; i < n3; i++) {         /* " 's" " 'm" " 're" " 've" */
            char c = x[i];
            if (x[i - 1] == ' ' && c == '\'' && i + 1 < n3) {
                char c1 = x[i + 1];
                if (c1 == 's' || c1 == 'm') o--;
                else if (i + 2 < n3 && ((c1 == 'r' && x[i + 2] == 'e') || (c1 == 'v' && x[i + 2] == 'e'))) o--;
            }
            x[o++] = c;
        }
        len = o;
    }
    if (buf && cap) {
        memcpy(buf, tmp, NJ_MIN(len, cap));
        if (len < cap) buf[len] = 0;
    }
    nj_free(tmp);
    return len > (size_t)INT32_MAX ? NJ_ETOOBIG : (int)len;
}

/* ------------------------------------------------------------------ */
/* accessors                                                           */
/* ------------------------------------------------------------------ */

int         tok_n_vocab(const nj_tok *t)  { return t->n_vocab; }
int         tok_type(const nj_tok *t)     { return t->type; }
const char *tok_pre_name(const nj_tok *t) { return t->pre_name; }
int32_t     tok_bos(const nj_tok *t)      { return t->bos; }
int32_t     tok_eos(const nj_tok *t)      { return t->eos; }
int32_t     tok_eot(const nj_tok *t)      { return t->eot; }
int32_t     tok_unk(const nj_tok *t)      { return t->unk; }
int32_t     tok_pad(const nj_tok *t)      { return t->pad; }
int32_t     tok_nl(const nj_tok *t)       { return t->nl; }
bool        tok_add_bos(const nj_tok *t)  { return t->add_bos; }
bool        tok_add_eos(const nj_tok *t)  { return t->add_eos; }

bool tok_is_eog(const nj_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}
bool tok_is_control(const nj_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_CONTROL);
}
unsigned tok_attr(const nj_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->attr[id] : 0;
}
const char *tok_text(const nj_tok *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->str[id].len;
    return t->str[id].ptr;
}
