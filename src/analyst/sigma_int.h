/*
 * sigma_int — the compiled form of a Sigma rule, shared by the loader
 * (sigma.c, sigma_compile.c) and the matcher (sigma_eval.c).  Private to the
 * sigma module: nothing outside src/analyst/sigma*.c includes this.
 *
 * A rule compiles to:
 *   condition tree (sj_cond) -> selections (sj_sel: OR of maps)
 *     -> maps (sj_map: AND of items) -> items (sj_item: one field, OR or AND
 *     of values) -> values (sj_val: one matcher).
 * Everything a rule owns lives in its arena (freed at once) except PCRE2
 * programs, which are chained through sj_val.next_re and freed with the rule.
 * Field names are interned in the rule set: an item names a field by index;
 * index 0 is the raw text searched by keywords.
 *
 * The literal prefilter: each rule also carries the literals its matches
 * need, as a conjunction of groups, each group an OR of (field, literal)
 * pairs (sj_lit); "some literal of every group occurs in its field, case
 * folded" holds for every event the rule matches.  When a rule is added, its
 * literals become atoms of the rule set (deduplicated, owned by the set) and
 * each group gets a number in the set; each atom lists the groups it is in
 * (sj_occ).  The matcher finds all atoms of a field with one pass over the
 * field and marks their groups; a rule is tried only when all of its groups
 * are marked (sigma_eval.c).
 */
#ifndef NJ_SIGMA_INT_H
#define NJ_SIGMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stddef.h>

#include "sigma.h"

/* One bump arena block list. */
typedef struct sj_block sj_block;
typedef struct sj_arena { sj_block *head; } sj_arena;
void *sj_alloc(sj_arena *a, size_t n);           /* zeroed, 16-aligned; NULL on OOM */
char *sj_strndup(sj_arena *a, const char *s, size_t n);
void  sj_arena_free(sj_arena *a);

enum { V_GLOB = 1, V_RE, V_CIDR, V_NUM, V_EXISTS, V_NULL, V_FIELDREF };
enum { NUM_GT = 1, NUM_GTE, NUM_LT, NUM_LTE };

/* A literal piece of a wildcard pattern.  bg: two hashed bigrams of it
 * (sj_bigram) used to rule a substring out before searching (0 when the
 * piece is shorter than 2 bytes or the value is cased). */
typedef struct sj_seg { const char *s; uint32_t n; uint16_t bg[2]; } sj_seg;

#define SJ_BG_BITS 4096
static inline uint16_t sj_bigram(unsigned char a, unsigned char b) {
    return (uint16_t)(((uint32_t)(a | b << 8) * 2654435761u) >> 20);
}

typedef struct sj_val {
    uint8_t kind;
    uint8_t cased;            /* compare against the raw value, not lower-cased */
    uint8_t anch_start;       /* V_GLOB: no leading '*' */
    uint8_t anch_end;         /* V_GLOB: no trailing '*' */
    uint8_t op;               /* V_NUM: NUM_*; V_EXISTS: 1 = must exist */
    uint8_t v6;               /* V_CIDR */
    uint16_t bits;            /* V_CIDR prefix length */
    uint32_t nseg;
    sj_seg *seg;              /* V_GLOB literal pieces between '*'; V_RE: one
                                 literal every match contains (nseg 0: none) */
    pcre2_code *re;           /* V_RE (also globs with '?' or windash) */
    uint32_t nneed;           /* V_RE: literals of which every match contains */
    sj_seg *need;             /* one (lower-cased; nneed 0: none known) */
    int jit;                  /* re was JIT-compiled */
    struct sj_val *next_re;   /* chain of values owning a pcre2_code */
    double num;               /* V_NUM */
    uint8_t addr[16];         /* V_CIDR network */
    int ref;                  /* V_FIELDREF: field index */
} sj_val;

typedef struct sj_item {
    int field;                /* index into the rule set's field names; 0 = raw */
    int all;                  /* values ANDed (|all) instead of ORed */
    int nval;
    int cost;                 /* evaluation order inside a map: cheap first */
    sj_val *val;
    /* When every value is a case-folded glob anchored at that end: the set
     * of possible first / last bytes (width 1), or of hashed first / last
     * byte pairs when every value's end piece has two bytes (width 2; see
     * sj_end_key), so most events fail the item with one bit test instead of
     * a loop over dozens of values.  Width 0: no set. */
    uint8_t has_first, has_last;
    uint64_t first[4], last[4];
} sj_item;

/* Key of an end set: the byte itself, or a hash of the pair (A, B) as they
 * appear in the text (A before B), in 0..255. */
static inline unsigned sj_end_key(unsigned char a, unsigned char b, int width) {
    return width == 2 ? (unsigned)(sj_bigram(a, b) & 255) : (unsigned)(width == 1 ? a : b);
}

typedef struct sj_map { int nitem; sj_item *item; } sj_map;

/* A literal a match needs in a field: S (N >= 1 bytes, ASCII lower-cased). */
typedef struct sj_lit { int field; uint32_t n; const char *s; } sj_lit;

typedef struct sj_sel {
    const char *name;
    int nmap;
    sj_map *map;              /* OR of maps */
} sj_sel;

enum { C_SEL = 1, C_AND, C_OR, C_NOT, C_NOF };

typedef struct sj_cond {
    int op;
    int sel;                  /* C_SEL */
    int n;                    /* C_NOF: how many must match; children count otherwise */
    int nkid;
    struct sj_cond **kid;     /* C_AND/C_OR/C_NOT children; C_NOF: selections as C_SEL */
} sj_cond;

/* A rule's cheapest necessary test, copied out of the rule so that most
 * rules are rejected from one contiguous array without touching their tree.
 * Either (field >= 0) an item every match must satisfy whose values are all
 * anchored globs, as first/last byte sets (see sj_item); or (nalt > 0) a
 * list of alternatives of which every match needs one: a field and a pair of
 * bigrams of a literal in it (used only when the rule has no literal groups,
 * see groups below).  None of these: the rule is always evaluated. */
#define SJ_ALT_MAX 8
typedef struct sj_pre {
    int field;
    uint8_t has_first, has_last;
    uint8_t nalt;
    /* Literal prefilter: -1, or where in sigma_rules.gdata the rule's
     * groups start: {ngroup, then per group: its number in the rule set,
     * the low and high halves of a mask of its atoms' fields numbered below
     * 64, how many more fields, those fields}.  The rule can match only if
     * every group has an atom present. */
    int groups;
    uint64_t first[4], last[4];
    int alt_field[SJ_ALT_MAX];
    uint16_t alt_bg[SJ_ALT_MAX][2];
} sj_pre;

typedef struct sj_rule {
    sigma_rule_info info;
    sj_arena arena;
    int nsel;
    sj_sel *sel;
    sj_cond *cond;
    sj_val *res;              /* PCRE2 owners */
    sj_pre pre;               /* see sj_pre; set by sj_compile */
    int nlgroup;              /* the literal prefilter as compiled: groups, */
    int *lgn;                 /* how many literals each has, */
    sj_lit *lit;              /* and the literals, group after group */
} sj_rule;

/* An atom of the literal prefilter: a distinct (field, literal) of the rule
 * set.  Atoms are found by their first K = min(n, 4) bytes (KEY, read as
 * sj_key does), through a chained hash table (sigma_rules.ahead, next). */
typedef struct sj_atom {
    int field;
    uint32_t n;
    uint32_t key;
    uint8_t k;
    int next;                 /* next atom in the same chain, or -1 */
    int occ;                  /* first of the groups it is in (sigma_rules.occ), or -1 */
    const char *s;            /* owned by sigma_rules.atom_arena */
} sj_atom;

/* One group an atom is in; next: the atom's next one, or -1. */
typedef struct sj_occ { int group, next; } sj_occ;

#define SJ_ATOM_MAX    65536        /* atoms per rule set */
#define SJ_GROUP_MAX   16384        /* literal groups per rule set (a bit each per call) */
#define SJ_AFILTER_BITS 65536       /* filter of (field, k, key) hashes */

/* The first K (1..4) bytes of S as a number, the same on every host. */
static inline uint32_t sj_key(const unsigned char *s, unsigned k) {
    uint32_t v = 0;
    for (unsigned i = 0; i < k; i++) v |= (uint32_t)s[i] << (8 * i);
    return v;
}

static inline uint32_t sj_atom_hash(int field, unsigned k, uint32_t key) {
    uint64_t x = (uint64_t)key | (uint64_t)k << 32 | (uint64_t)(unsigned)field << 35;
    return (uint32_t)((x * 0x9E3779B97F4A7C15ull) >> 32);
}

/* The part of sj_pre read for every rule tried: what a bucket keeps in its
 * flat array (the bigram alternatives, rarely needed, stay in the rule). */
typedef struct sj_hot {
    int field;
    uint8_t has_first, has_last;
    uint8_t nalt;
    int groups;
    uint64_t first[4], last[4];
} sj_hot;

typedef struct sj_bucket {
    const char *product, *category, *service;   /* "" = any */
    int n, cap;
    int *rules;
    sj_hot *pre;              /* parallel to rules */
} sj_bucket;

struct sigma_rules {
    int nrule, caprule;
    sj_rule **rule;
    int nskip, capskip;
    sigma_skip *skip;
    int nfield, capfield;
    char **field;             /* field[0] = "" (raw text) */
    int nbucket, capbucket;
    sj_bucket *bucket;
    pcre2_general_context *gctx;   /* compile-time allocations through nj_malloc */
    pcre2_general_context *mgctx;  /* match-time allocations from a stack arena */
    pcre2_match_context *mctx;
    /* Literal prefilter atoms (see sj_atom). */
    int natom, capatom;
    sj_atom *atom;
    int *ahead;                    /* chain heads, ahmask + 1 of them */
    uint32_t ahmask;
    int ngroup;                    /* literal groups numbered so far */
    int ngdata, capgdata;
    int *gdata;                    /* the rules' groups, see sj_pre.groups */
    int nocc, capocc;
    sj_occ *occ;
    uint8_t *fieldk;               /* per field: bit K-1 set when an atom has that K */
    int capfieldk;
    sj_arena atom_arena;
    uint64_t afilter[SJ_AFILTER_BITS / 64];
    uint64_t apair[65536 / 64];    /* first two bytes of atoms of 2+ bytes (any field) */
    uint64_t aone[256 / 64];       /* the bytes of one-byte atoms (any field) */
};

/* Field index for NAME, adding it.  Negative code on OOM. */
int sj_field(sigma_rules *rs, const char *name, size_t n);

/* Compile the YAML document DOC (yaml_document_t *) into R.  Returns 0,
 * 1 when the rule is skipped (reason written to WHY), or -ENOMEM. */
int sj_compile(sigma_rules *rs, sj_rule *r, void *doc, char *why, size_t whylen);

/* Test knob (sigma_eval.c): nonzero = skip the item end sets, the rule
 * prefilters and the regex literals, so tests can check that the filters
 * never change an answer.  Never set outside tests. */
extern int sj_no_prefilter;

/* Match-time PCRE2 allocator (sigma_eval.c). */
void *sj_md_alloc(size_t n, void *data);
void  sj_md_free(void *p, void *data);

#endif
