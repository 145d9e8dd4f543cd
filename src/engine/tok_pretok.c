/*
 * tok_pretok — byte-level BPE's pre-tokenizers: which patterns each
 * tokenizer.ggml.pre value runs, how they are prepared at load, and the
 * splitters that cut a fragment's code points into words at encode time.
 *
 * A pre-tokenizer is a list of steps, each cutting every current piece
 * (the whole fragment at first) into smaller ones.  Steps are either
 * hand-written splitters or PCRE2 regexes:
 *
 *  - Splitters mirror llama.cpp's custom gpt2/llama3/qwen2/qwen35/newline
 *    splitters, which are what llama.cpp actually runs for those five
 *    patterns (it recognises them by exact text, and so does
 *    tok_compile_steps), including their small deviations from the regex.
 *  - llama.cpp runs regexes that use \p{..} on a "collapsed" string where
 *    every non-ASCII code point is replaced by one byte naming its class
 *    (0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4 mark, 0xD5 symbol,
 *    0x0B whitespace, 0xD0 other) and \p{X} by that byte plus the ASCII
 *    members of X; we do the same translation at load (collapse_pattern)
 *    and run such patterns byte-wise.  Regexes without \p{..} run on the
 *    code points (non-ASCII whitespace replaced by 0x0B) in UTF mode.
 *    Unmatched stretches between matches become pieces too.
 *
 * The pattern lists are written as the models define them.  tok_bpe.c
 * builds the per-fragment inputs (code points, class flags, collapsed
 * string, UTF-8 re-text) and calls the steps in order.
 *
 * Unicode general categories come from utf8proc; the only list written
 * here is the 25 White_Space code points (PropList.txt), which utf8proc
 * does not expose and llama.cpp uses for \s.
 *
 * Threads: the tables are constant; tok_ascii_flags is filled once (from
 * tok_load, under pthread_once); compiled patterns belong to the nj_tok and
 * match data to the caller's scratch.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer_int.h"

/* ------------------------------------------------------------------ */
/* Unicode classes                                                    */
/* ------------------------------------------------------------------ */

uint16_t tok_cp_flags_slow(uint32_t c) {
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

uint16_t tok_ascii_flags[128];

void tok_ascii_flags_init(void) {
    for (uint32_t c = 0; c < 128; c++) tok_ascii_flags[c] = tok_cp_flags_slow(c);
}

/* ------------------------------------------------------------------ */
/* pattern lists                                                      */
/* ------------------------------------------------------------------ */

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
static const struct pre_def pre_defs[] = {
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

const struct pre_def *tok_pre_find(gguf_str name, char *canon, size_t cap) {
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

/* ------------------------------------------------------------------ */
/* compiling the patterns                                             */
/* ------------------------------------------------------------------ */

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

static void *pcre_alloc(size_t n, void *ud) { (void)ud; return nj_malloc(n); }
static void  pcre_free(void *p, void *ud)  { (void)ud; nj_free(p); }

/* Prepare the steps of a pre-tokenizer: known patterns go to the
 * hand-written splitters, the rest are compiled with PCRE2 (collapsed when
 * they use \p{..}, else in UTF mode), as llama.cpp dispatches them. */
int tok_compile_steps(nj_tok *t, const char *const *re) {
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

/* ------------------------------------------------------------------ */
/* splitters                                                          */
/* ------------------------------------------------------------------ */

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
int tok_split_gpt2(const uint32_t *cp, const uint16_t *fl, size_t b, size_t e, u32vec *out) {
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
int tok_split_llama3(const uint32_t *cp, const uint16_t *fl, size_t b, size_t e, u32vec *out,
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
int tok_split_newlines(const uint32_t *cp, size_t b, size_t e, u32vec *out) {
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
int tok_split_regex(const nj_tok *t, scratch *s, int step, size_t b, size_t e, u32vec *out) {
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
