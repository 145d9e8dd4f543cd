/*
 * grammar — builder, NFA compiler, lazy DFA, token trie and masks.
 * The pipeline and its invariants are described in grammar.h; this essay
 * covers the representation.
 *
 * Builder.  Nodes live in one array and refer to each other by index
 * (children of SEQ/ALT in a shared kid pool), so the tree may be a DAG and,
 * through REF nodes, cyclic.  Byte sets are interned (256-bit masks).
 *
 * Compiler.  compile(node, k) returns the entry state of an NFA fragment
 * that matches the node and then continues at state k (continuation
 * passing).  Because every fragment is built in front of an existing
 * continuation, nothing is ever patched except the loop state of an
 * unbounded repetition, and a fragment whose language is empty is simply
 * not built (it returns GRAM_DEAD and its parent drops it): every state
 * created reaches the final state.  Results are memoised on (node, k), which
 * is what keeps shared suffixes shared: the object compiler's "rest of the
 * properties" nodes are reached from many places with the same continuation,
 * and without the memo optional properties would expand exponentially.
 *
 * DFA.  A DFA state is the sorted set of NFA states that consume a byte (or
 * the final state) reachable by epsilon moves; states are interned in a hash
 * table and their transitions, one int32 per byte class, are filled on
 * first use (-2 = not computed yet).
 *
 * Token trie.  Token byte strings sorted and laid out in preorder: node i
 * has a byte, a depth and `skip` (the index after its subtree), and the ids
 * of tokens that end there.  A mask walks the array once with a stack of DFA
 * states indexed by depth; a dead transition skips the whole subtree.
 */
#include "grammar.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "tokenizer.h"
#include "util.h"

/* ---- byte sets ---- */

typedef struct bset { uint64_t w[4]; } bset;

static inline bool bs_has(const bset *s, unsigned c) { return (s->w[c >> 6] >> (c & 63)) & 1u; }
static inline void bs_add(bset *s, unsigned c) { s->w[c >> 6] |= (uint64_t)1 << (c & 63); }
static inline bool bs_empty(const bset *s) { return !(s->w[0] | s->w[1] | s->w[2] | s->w[3]); }

static uint64_t hash64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Text characters of the mask shortcut: printable ASCII but '"' and '\\',
 * and the well-formed UTF-8 sequences of 2..4 bytes, by byte ranges. */
static inline bool plain_byte(int b) { return b >= 0x20 && b < 0x7f && b != '"' && b != '\\'; }
static const uint8_t UTF8_SHAPES[8][5][2] = {   /* [0][0] = length */
    {{2, 0}, {0xC2, 0xDF}, {0x80, 0xBF}},
    {{3, 0}, {0xE0, 0xE0}, {0xA0, 0xBF}, {0x80, 0xBF}},
    {{3, 0}, {0xE1, 0xEC}, {0x80, 0xBF}, {0x80, 0xBF}},
    {{3, 0}, {0xED, 0xED}, {0x80, 0x9F}, {0x80, 0xBF}},
    {{3, 0}, {0xEE, 0xEF}, {0x80, 0xBF}, {0x80, 0xBF}},
    {{4, 0}, {0xF0, 0xF0}, {0x90, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
    {{4, 0}, {0xF1, 0xF3}, {0x80, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
    {{4, 0}, {0xF4, 0xF4}, {0x80, 0x8F}, {0x80, 0xBF}, {0x80, 0xBF}},
};

/* Length of the text character at p[0..n) (1..4), or 0 if there is none. */
static int text_char(const uint8_t *p, int n) {
    if (n <= 0) return 0;
    if (p[0] < 0x80) return plain_byte(p[0]) ? 1 : 0;
    for (int k = 0; k < 8; k++) {
        const int L = UTF8_SHAPES[k][0][0];
        if (p[0] < UTF8_SHAPES[k][1][0] || p[0] > UTF8_SHAPES[k][1][1]) continue;
        if (L > n) return 0;
        for (int j = 1; j < L; j++)
            if (p[j] < UTF8_SHAPES[k][j + 1][0] || p[j] > UTF8_SHAPES[k][j + 1][1]) return 0;
        return L;
    }
    return 0;
}

/* Grow *p (elements of size sz) to hold at least need; returns 0 or -ENOMEM. */
static int grow(void **p, int *cap, int need, size_t sz) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > (1 << 29)) return -ENOMEM;
        nc *= 2;
    }
    void *q = nj_realloc(*p, (size_t)nc * sz);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}
#define GROW(arr, cap, need) grow((void **)&(arr), &(cap), (need), sizeof *(arr))

/* ---- builder ---- */

enum { N_SET, N_SEQ, N_ALT, N_REP, N_REF, N_EMPTY };

typedef struct gnode { uint8_t type; int32_t a, b, c; } gnode;

struct gb {
    gnode   *nodes; int n_nodes, cap_nodes;
    int32_t *kids;  int n_kids, cap_kids;
    bset    *sets;  int n_sets, cap_sets;
    int32_t *set_ht; int ht_cap;          /* interning of sets, open addressing */
    int      n_refs;
    int      err;
};

gb *gb_new(void) { return nj_calloc(1, sizeof(gb)); }

void gb_free(gb *b) {
    if (!b) return;
    nj_free(b->nodes);
    nj_free(b->kids);
    nj_free(b->sets);
    nj_free(b->set_ht);
    nj_free(b);
}

int gb_error(const gb *b) { return b->err; }

static int gb_fail_(gb *b, int code) {
    if (!b->err) b->err = code;
    return -1;
}

static int node_new(gb *b, int type, int a, int bb, int c) {
    if (b->err) return -1;
    if (b->n_nodes >= (1 << 28)) return gb_fail_(b, nj_fail(NJ_ETOOBIG, "grammar has too many nodes"));
    if (GROW(b->nodes, b->cap_nodes, b->n_nodes + 1)) return gb_fail_(b, -ENOMEM);
    b->nodes[b->n_nodes] = (gnode){(uint8_t)type, a, bb, c};
    return b->n_nodes++;
}

static uint64_t bs_hash(const bset *s) {
    return hash64(s->w[0] ^ hash64(s->w[1] ^ hash64(s->w[2] ^ hash64(s->w[3]))));
}

/* Index of the interned copy of s. */
static int set_intern(gb *b, const bset *s) {
    if (b->err) return -1;
    if (b->n_sets * 2 + 2 > b->ht_cap) {
        int nc = b->ht_cap ? b->ht_cap * 2 : 64;
        int32_t *ht = nj_malloc(sizeof *ht * (size_t)nc);
        if (!ht) return gb_fail_(b, -ENOMEM);
        for (int i = 0; i < nc; i++) ht[i] = -1;
        for (int i = 0; i < b->n_sets; i++) {
            size_t h = bs_hash(&b->sets[i]) & (size_t)(nc - 1);
            while (ht[h] >= 0) h = (h + 1) & (size_t)(nc - 1);
            ht[h] = i;
        }
        nj_free(b->set_ht);
        b->set_ht = ht;
        b->ht_cap = nc;
    }
    size_t h = bs_hash(s) & (size_t)(b->ht_cap - 1);
    while (b->set_ht[h] >= 0) {
        if (!memcmp(&b->sets[b->set_ht[h]], s, sizeof *s)) return b->set_ht[h];
        h = (h + 1) & (size_t)(b->ht_cap - 1);
    }
    if (GROW(b->sets, b->cap_sets, b->n_sets + 1)) return gb_fail_(b, -ENOMEM);
    b->sets[b->n_sets] = *s;
    b->set_ht[h] = b->n_sets;
    return b->n_sets++;
}

int gb_set(gb *b, const uint64_t w[4]) {
    bset s;
    memcpy(s.w, w, sizeof s.w);
    if (bs_empty(&s)) return gb_alt(b, NULL, 0);
    int si = set_intern(b, &s);
    return si < 0 ? -1 : node_new(b, N_SET, si, 0, 0);
}

int gb_range(gb *b, uint8_t lo, uint8_t hi) {
    bset s = {{0, 0, 0, 0}};
    for (unsigned c = lo; c <= hi; c++) bs_add(&s, c);
    return gb_set(b, s.w);
}

int gb_byte(gb *b, uint8_t c) { return gb_range(b, c, c); }

int gb_empty(gb *b) { return node_new(b, N_EMPTY, 0, 0, 0); }

static int list_node(gb *b, int type, const int *kids, int n) {
    if (b->err) return -1;
    for (int i = 0; i < n; i++)
        if (kids[i] < 0) return gb_fail_(b, -EINVAL);
    if (GROW(b->kids, b->cap_kids, b->n_kids + n)) return gb_fail_(b, -ENOMEM);
    int off = b->n_kids;
    for (int i = 0; i < n; i++) b->kids[off + i] = kids[i];
    b->n_kids += n;
    return node_new(b, type, off, n, 0);
}

int gb_seq(gb *b, const int *kids, int n) {
    if (n == 1 && kids[0] >= 0) return kids[0];
    return list_node(b, N_SEQ, kids, n);
}

int gb_alt(gb *b, const int *kids, int n) {
    if (n == 1 && kids[0] >= 0) return kids[0];
    return list_node(b, N_ALT, kids, n);
}

int gb_seq2(gb *b, int x, int y) { int k[2] = {x, y}; return gb_seq(b, k, 2); }
int gb_alt2(gb *b, int x, int y) { int k[2] = {x, y}; return gb_alt(b, k, 2); }

int gb_lit(gb *b, const char *s, size_t n) {
    if (n == 0) return gb_empty(b);
    int st[64], m = 0, acc = -1;
    for (size_t i = 0; i < n; i++) {
        st[m++] = gb_byte(b, (uint8_t)s[i]);
        if (m == 64 || i + 1 == n) {
            int piece = gb_seq(b, st, m);
            acc = acc < 0 ? piece : gb_seq2(b, acc, piece);
            m = 0;
        }
    }
    return acc;
}

int gb_rep(gb *b, int x, int min, int max) {
    if (x < 0) return gb_fail_(b, -EINVAL);
    if (min < 0 || (max >= 0 && max < min)) return gb_fail_(b, -EINVAL);
    if (max == 0) return gb_empty(b);
    if (min == 1 && max == 1) return x;
    return node_new(b, N_REP, x, min, max);
}

int gb_opt(gb *b, int x) { return gb_rep(b, x, 0, 1); }

int gb_ref(gb *b) { return node_new(b, N_REF, -1, b->n_refs++, 0); }

int gb_ref_set(gb *b, int ref, int body) {
    if (b->err) return -1;
    if (ref < 0 || ref >= b->n_nodes || b->nodes[ref].type != N_REF || body < 0)
        return gb_fail_(b, -EINVAL);
    b->nodes[ref].a = body;
    return ref;
}

/* ---- NFA ---- */

enum { S_BYTE, S_EPS, S_MATCH };

typedef struct nstate {
    uint8_t type;
    int32_t set;      /* S_BYTE: byte set index */
    int32_t out;      /* S_BYTE: next state */
    int32_t eo, en;   /* S_EPS: outs in eps[eo .. eo+en) */
} nstate;

typedef struct dstate {
    int32_t off, n;   /* NFA set in dset[off .. off+n) */
    bool    acc;
} dstate;

struct gram {
    /* NFA */
    nstate  *st;   int n_st, cap_st;
    int32_t *eps;  int n_eps, cap_eps;
    bset    *sets; int n_sets;
    int32_t  start_nfa, match;
    int32_t *dist;                  /* bytes to the final state, per NFA state */
    /* byte classes */
    uint8_t  cls[256];
    int      n_cls;
    uint8_t  rep[256];              /* one byte of each class */
    /* DFA */
    dstate  *ds;   int n_ds, cap_ds;
    int32_t *dset; int n_dset, cap_dset;
    int32_t *trans; int cap_trans;  /* n_ds * n_cls */
    int32_t *dht;  int dht_cap;
    int32_t  start;
    unsigned dfa_soft;              /* gram_compact_cache threshold */
    /* text depth per DFA state (mask_walk's shortcut), -1 unknown */
    int16_t  *pd; uint8_t *pd_exact; int cap_pd;
    uint8_t   plain_cls[256];       /* classes holding a plain ASCII byte */
    int       n_plain_cls;
    uint8_t   shp_cls[8][4][8];     /* classes of each UTF-8 shape position */
    uint8_t   shp_n[8][4];          /* their count; 0xff: too many to check */
    /* closure scratch */
    uint32_t *mark; uint32_t stamp;
    int32_t  *stk;  int cap_stk;
    int32_t  *tmp;  int cap_tmp;
    /* masks: per DFA state index into the cache, or -1 */
    int32_t  *mask_of; int cap_mask_of;
    uint64_t *masks;   int n_masks, mask_words, mask_cap;
    int32_t  *mask_owner;
    int32_t  *mask_cnt;
    int32_t  *walk;    int cap_walk;
    gram_stats stats;
};

/* Compiler context. */
typedef struct cctx {
    const gb *b;
    gram     *g;
    int       err;
    int      *ref_depth;
    uint64_t *memo_k; int32_t *memo_v; size_t memo_cap, memo_n;
    int       depth;
} cctx;

static int32_t st_new(cctx *c, int type) {
    gram *g = c->g;
    if (c->err) return GRAM_DEAD;
    if ((unsigned)g->n_st >= GRAM_MAX_STATES) {
        c->err = nj_fail(NJ_ETOOBIG, "grammar expands to more than %u automaton states",
                         GRAM_MAX_STATES);
        return GRAM_DEAD;
    }
    if (GROW(g->st, g->cap_st, g->n_st + 1)) { c->err = -ENOMEM; return GRAM_DEAD; }
    g->st[g->n_st] = (nstate){(uint8_t)type, -1, -1, 0, 0};
    return g->n_st++;
}

static int32_t st_eps(cctx *c, const int32_t *outs, int n) {
    int32_t s = st_new(c, S_EPS);
    if (s < 0) return s;
    gram *g = c->g;
    if (GROW(g->eps, g->cap_eps, g->n_eps + n)) { c->err = -ENOMEM; return GRAM_DEAD; }
    g->st[s].eo = g->n_eps;
    g->st[s].en = n;
    for (int i = 0; i < n; i++) g->eps[g->n_eps + i] = outs ? outs[i] : GRAM_DEAD;
    g->n_eps += n;
    return s;
}

static int memo_find(cctx *c, int node, int32_t k, int32_t *v) {
    if (!c->memo_cap) return 0;
    uint64_t key = ((uint64_t)(uint32_t)node << 32) | (uint32_t)k;
    size_t h = hash64(key) & (c->memo_cap - 1);
    while (c->memo_v[h] != -3) {
        if (c->memo_k[h] == key) { *v = c->memo_v[h]; return 1; }
        h = (h + 1) & (c->memo_cap - 1);
    }
    return 0;
}

static void memo_put(cctx *c, int node, int32_t k, int32_t v) {
    if (c->err) return;
    if ((c->memo_n + 1) * 2 > c->memo_cap) {
        size_t nc = c->memo_cap ? c->memo_cap * 2 : 1024;
        uint64_t *nk = nj_malloc(sizeof *nk * nc);
        int32_t *nv = nj_malloc(sizeof *nv * nc);
        if (!nk || !nv) { nj_free(nk); nj_free(nv); c->err = -ENOMEM; return; }
        for (size_t i = 0; i < nc; i++) nv[i] = -3;
        for (size_t i = 0; i < c->memo_cap; i++) {
            if (c->memo_v[i] == -3) continue;
            size_t h = hash64(c->memo_k[i]) & (nc - 1);
            while (nv[h] != -3) h = (h + 1) & (nc - 1);
            nk[h] = c->memo_k[i];
            nv[h] = c->memo_v[i];
        }
        nj_free(c->memo_k);
        nj_free(c->memo_v);
        c->memo_k = nk;
        c->memo_v = nv;
        c->memo_cap = nc;
    }
    uint64_t key = ((uint64_t)(uint32_t)node << 32) | (uint32_t)k;
    size_t h = hash64(key) & (c->memo_cap - 1);
    while (c->memo_v[h] != -3) {
        if (c->memo_k[h] == key) { c->memo_v[h] = v; return; }
        h = (h + 1) & (c->memo_cap - 1);
    }
    c->memo_k[h] = key;
    c->memo_v[h] = v;
    c->memo_n++;
}

/* Entry state of a fragment matching `node` and then continuing at k, or
 * GRAM_DEAD if that language is empty (or on error: c->err is set). */
static int32_t compile(cctx *c, int node, int32_t k) {
    if (c->err || k < 0) return GRAM_DEAD;
    const gnode *n = &c->b->nodes[node];
    if (n->type == N_EMPTY) return k;
    int32_t v;
    if (memo_find(c, node, k, &v)) return v;
    if (++c->depth > 4000) {
        c->err = nj_fail(NJ_ETOOBIG, "grammar nests too deeply");
        return GRAM_DEAD;
    }
    switch (n->type) {
    case N_SET:
        v = st_new(c, S_BYTE);
        if (v >= 0) { c->g->st[v].set = n->a; c->g->st[v].out = k; }
        break;
    case N_SEQ:
        v = k;
        for (int i = n->b - 1; i >= 0 && v >= 0; i--) v = compile(c, c->b->kids[n->a + i], v);
        break;
    case N_ALT: {
        int32_t small[16], *outs = n->b <= 16 ? small : nj_malloc(sizeof *outs * (size_t)n->b);
        if (!outs) { c->err = -ENOMEM; v = GRAM_DEAD; break; }
        int m = 0;
        for (int i = 0; i < n->b; i++) {
            int32_t e = compile(c, c->b->kids[n->a + i], k);
            if (e >= 0) {
                bool dup = false;
                for (int j = 0; j < m; j++) dup |= outs[j] == e;
                if (!dup) outs[m++] = e;
            }
        }
        v = m == 0 ? GRAM_DEAD : m == 1 ? outs[0] : st_eps(c, outs, m);
        if (outs != small) nj_free(outs);
        break;
    }
    case N_REP: {
        const int x = n->a, min = n->b, max = n->c;
        int32_t t;
        if (max < 0) {
            /* loop: L -> x -> L | k */
            int32_t L = st_eps(c, NULL, 2);
            if (L < 0) { v = GRAM_DEAD; break; }
            int32_t body = compile(c, x, L);
            gram *g = c->g;
            if (body >= 0 && body != L) {
                g->eps[g->st[L].eo] = body;
                g->eps[g->st[L].eo + 1] = k;
            } else {
                g->eps[g->st[L].eo] = k;
                g->st[L].en = 1;
            }
            t = L;
        } else {
            t = k;
            for (int i = 0; i < max - min && !c->err; i++) {
                int32_t e = compile(c, x, t);
                if (e < 0) { t = k; continue; }
                int32_t o[2] = {e, k};
                t = st_eps(c, o, 2);
            }
        }
        for (int i = 0; i < min && t >= 0; i++) t = compile(c, x, t);
        v = t;
        break;
    }
    case N_REF:
        if (n->a < 0) { c->err = nj_fail(-EINVAL, "grammar reference without a body"); v = GRAM_DEAD; break; }
        if (c->ref_depth[n->b] >= GRAM_REF_DEPTH) { v = GRAM_DEAD; break; }
        c->ref_depth[n->b]++;
        v = compile(c, n->a, k);
        c->ref_depth[n->b]--;
        break;
    default:
        v = GRAM_DEAD;
    }
    c->depth--;
    memo_put(c, node, k, v);
    return v;
}

/* Byte classes: refine the partition of 0..255 by every set in use. */
static void make_classes(gram *g) {
    uint8_t cls[256];
    memset(cls, 0, sizeof cls);
    int n = 1;
    for (int si = 0; si < g->n_sets; si++) {
        int16_t map_in[256], map_out[256];
        for (int i = 0; i < 256; i++) map_in[i] = map_out[i] = -1;
        int m = 0;
        uint8_t nc[256];
        for (int b = 0; b < 256; b++) {
            int16_t *map = bs_has(&g->sets[si], (unsigned)b) ? map_in : map_out;
            if (map[cls[b]] < 0) map[cls[b]] = (int16_t)m++;
            nc[b] = (uint8_t)map[cls[b]];
        }
        memcpy(cls, nc, sizeof cls);
        n = m;
    }
    memcpy(g->cls, cls, sizeof cls);
    g->n_cls = n;
    for (int b = 255; b >= 0; b--) g->rep[cls[b]] = (uint8_t)b;
    bool seen[256] = {false};
    g->n_plain_cls = 0;
    for (int b = 0x20; b < 0x7f; b++)
        if (plain_byte(b) && !seen[cls[b]]) {
            seen[cls[b]] = true;
            g->plain_cls[g->n_plain_cls++] = cls[b];
        }
    for (int k = 0; k < 8; k++)
        for (int j = 0; j < UTF8_SHAPES[k][0][0]; j++) {
            int m = 0;
            for (int b = UTF8_SHAPES[k][j + 1][0]; b <= UTF8_SHAPES[k][j + 1][1] && m <= 8; b++) {
                bool dup = false;
                for (int q = 0; q < m && q < 8; q++) dup |= g->shp_cls[k][j][q] == cls[b];
                if (!dup) {
                    if (m < 8) g->shp_cls[k][j][m] = cls[b];
                    m++;
                }
            }
            g->shp_n[k][j] = m > 8 ? 0xff : (uint8_t)m;
        }
}

/* dist[s]: fewest bytes from s to the final state (0-1 BFS on the reversed
 * graph). */
static int make_dist(gram *g) {
    const int n = g->n_st;
    int32_t *cnt = nj_calloc((size_t)n + 1, sizeof *cnt);
    int32_t *dq = nj_malloc(sizeof *dq * (size_t)(2 * n + 2));
    g->dist = nj_malloc(sizeof *g->dist * (size_t)n);
    int32_t *pred = NULL;
    int rc = -ENOMEM;
    if (!cnt || !dq || !g->dist) goto out;
    for (int s = 0; s < n; s++) {
        const nstate *x = &g->st[s];
        if (x->type == S_BYTE) cnt[x->out + 1]++;
        else if (x->type == S_EPS)
            for (int i = 0; i < x->en; i++) cnt[g->eps[x->eo + i] + 1]++;
    }
    for (int s = 0; s < n; s++) cnt[s + 1] += cnt[s];
    pred = nj_malloc(sizeof *pred * (size_t)(cnt[n] ? cnt[n] : 1));
    if (!pred) goto out;
    {
        int32_t *fill = nj_malloc(sizeof *fill * (size_t)(n ? n : 1));
        if (!fill) goto out;
        memcpy(fill, cnt, sizeof *fill * (size_t)n);
        for (int s = 0; s < n; s++) {
            const nstate *x = &g->st[s];
            if (x->type == S_BYTE) pred[fill[x->out]++] = s;
            else if (x->type == S_EPS)
                for (int i = 0; i < x->en; i++) pred[fill[g->eps[x->eo + i]]++] = s;
        }
        nj_free(fill);
    }
    for (int s = 0; s < n; s++) g->dist[s] = INT32_MAX;
    /* level by level: the zero-weight (epsilon) closure of a level, then
     * the byte edges into the next one; every state is assigned once */
    int32_t *cur = dq, *nxt = dq + n + 1;
    int n_cur = 0, level = 0;
    g->dist[g->match] = 0;
    cur[n_cur++] = g->match;
    while (n_cur) {
        for (int i = 0; i < n_cur; i++) {
            int32_t u = cur[i];
            for (int j = cnt[u]; j < cnt[u + 1]; j++) {
                int32_t p = pred[j];
                if (g->st[p].type == S_EPS && g->dist[p] == INT32_MAX) {
                    g->dist[p] = level;
                    cur[n_cur++] = p;
                }
            }
        }
        int n_nxt = 0;
        for (int i = 0; i < n_cur; i++) {
            int32_t u = cur[i];
            for (int j = cnt[u]; j < cnt[u + 1]; j++) {
                int32_t p = pred[j];
                if (g->st[p].type == S_BYTE && g->dist[p] == INT32_MAX) {
                    g->dist[p] = level + 1;
                    nxt[n_nxt++] = p;
                }
            }
        }
        int32_t *sw = cur; cur = nxt; nxt = sw;
        n_cur = n_nxt;
        level++;
    }
    rc = 0;
out:
    nj_free(cnt);
    nj_free(dq);
    nj_free(pred);
    return rc;
}

/* ---- DFA ---- */

void gram_mask_flush(gram *g);

static uint64_t set_hash(const int32_t *v, int n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) h = hash64(h ^ (uint32_t)v[i]);
    return h;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Add the epsilon closure of s to g->tmp[*n...] (BYTE and MATCH states only),
 * using the current stamp to skip states already added. */
static int closure_add(gram *g, int32_t s, int *n) {
    int sp = 0;
    if (GROW(g->stk, g->cap_stk, 1)) return -ENOMEM;
    g->stk[sp++] = s;
    while (sp) {
        int32_t u = g->stk[--sp];
        if (g->mark[u] == g->stamp) continue;
        g->mark[u] = g->stamp;
        const nstate *x = &g->st[u];
        if (x->type == S_EPS) {
            if (GROW(g->stk, g->cap_stk, sp + x->en)) return -ENOMEM;
            for (int i = x->en - 1; i >= 0; i--) g->stk[sp++] = g->eps[x->eo + i];
        } else {
            if (GROW(g->tmp, g->cap_tmp, *n + 1)) return -ENOMEM;
            g->tmp[(*n)++] = u;
        }
    }
    return 0;
}

static void new_stamp(gram *g) {
    if (++g->stamp == 0) {
        memset(g->mark, 0, sizeof *g->mark * (size_t)g->n_st);
        g->stamp = 1;
    }
}

/* Intern the set g->tmp[0..n) (sorted here); returns the DFA state id. */
static int32_t dfa_intern(gram *g, int n) {
    if (n == 0) return GRAM_DEAD;
    qsort(g->tmp, (size_t)n, sizeof *g->tmp, cmp_i32);
    uint64_t h0 = set_hash(g->tmp, n);
    if (g->dht_cap) {
        size_t h = h0 & (size_t)(g->dht_cap - 1);
        while (g->dht[h] >= 0) {
            const dstate *d = &g->ds[g->dht[h]];
            if (d->n == n && !memcmp(g->dset + d->off, g->tmp, sizeof *g->tmp * (size_t)n))
                return g->dht[h];
            h = (h + 1) & (size_t)(g->dht_cap - 1);
        }
    }
    if ((unsigned)g->n_ds >= GRAM_MAX_DFA)
        return nj_fail(NJ_ETOOBIG, "grammar automaton exceeds %u cached states", GRAM_MAX_DFA);
    if ((g->n_ds + 1) * 2 > g->dht_cap) {
        int nc = g->dht_cap ? g->dht_cap * 2 : 256;
        int32_t *ht = nj_malloc(sizeof *ht * (size_t)nc);
        if (!ht) return -ENOMEM;
        for (int i = 0; i < nc; i++) ht[i] = -1;
        for (int i = 0; i < g->n_ds; i++) {
            size_t h = set_hash(g->dset + g->ds[i].off, g->ds[i].n) & (size_t)(nc - 1);
            while (ht[h] >= 0) h = (h + 1) & (size_t)(nc - 1);
            ht[h] = i;
        }
        nj_free(g->dht);
        g->dht = ht;
        g->dht_cap = nc;
    }
    if (GROW(g->ds, g->cap_ds, g->n_ds + 1) || GROW(g->dset, g->cap_dset, g->n_dset + n) ||
        GROW(g->trans, g->cap_trans, (g->n_ds + 1) * g->n_cls))
        return -ENOMEM;
    int32_t id = g->n_ds++;
    dstate *d = &g->ds[id];
    d->off = g->n_dset;
    d->n = n;
    d->acc = false;
    memcpy(g->dset + g->n_dset, g->tmp, sizeof *g->tmp * (size_t)n);
    g->n_dset += n;
    for (int i = 0; i < n; i++) d->acc |= g->tmp[i] == g->match;
    for (int c = 0; c < g->n_cls; c++) g->trans[(size_t)id * (size_t)g->n_cls + (size_t)c] = -2;
    size_t h = h0 & (size_t)(g->dht_cap - 1);
    while (g->dht[h] >= 0) h = (h + 1) & (size_t)(g->dht_cap - 1);
    g->dht[h] = id;
    return id;
}

static int32_t dfa_compute(gram *g, int32_t st, int c) {
    const uint8_t byte = g->rep[c];
    g->stats.n_transitions++;
    new_stamp(g);
    int n = 0;
    const int32_t off = g->ds[st].off, cnt = g->ds[st].n;
    for (int i = 0; i < cnt; i++) {
        const nstate *x = &g->st[g->dset[off + i]];
        if (x->type == S_BYTE && bs_has(&g->sets[x->set], byte)) {
            int rc = closure_add(g, x->out, &n);
            if (rc) return rc;
        }
    }
    int32_t t = dfa_intern(g, n);
    if (t >= GRAM_DEAD) g->trans[(size_t)st * (size_t)g->n_cls + (size_t)c] = t;
    return t;
}

int gram_compact_cache(gram *g, int32_t *st) {
    if ((unsigned)g->n_ds <= g->dfa_soft || *st < 0) return 0;
    /* copy the held state's set out, then rebuild from the start state */
    int n = g->ds[*st].n;
    int32_t *keep = nj_malloc(sizeof *keep * (size_t)(n ? n : 1));
    if (!keep) return -ENOMEM;
    memcpy(keep, g->dset + g->ds[*st].off, sizeof *keep * (size_t)n);
    int32_t start_set_n = g->ds[g->start].n;
    int32_t *start_set = nj_malloc(sizeof *start_set * (size_t)(start_set_n ? start_set_n : 1));
    if (!start_set) { nj_free(keep); return -ENOMEM; }
    memcpy(start_set, g->dset + g->ds[g->start].off, sizeof *start_set * (size_t)start_set_n);
    g->n_ds = 0;
    g->n_dset = 0;
    for (int i = 0; i < g->dht_cap; i++) g->dht[i] = -1;
    for (int i = 0; i < g->cap_pd; i++) g->pd[i] = -1;
    gram_mask_flush(g);
    int rc = 0;
    if (GROW(g->tmp, g->cap_tmp, start_set_n > n ? start_set_n : n)) rc = -ENOMEM;
    if (!rc) {
        memcpy(g->tmp, start_set, sizeof *start_set * (size_t)start_set_n);
        g->start = dfa_intern(g, start_set_n);
        memcpy(g->tmp, keep, sizeof *keep * (size_t)n);
        *st = dfa_intern(g, n);
        if (g->start < 0 || *st < 0) rc = g->start < 0 ? g->start : *st;
    }
    nj_free(keep);
    nj_free(start_set);
    return rc;
}

void gram_set_cache_limit(gram *g, unsigned n) { g->dfa_soft = n; }

int32_t gram_start(const gram *g) { return g->start; }

int32_t gram_step(gram *g, int32_t st, uint8_t byte) {
    if (st < 0) return GRAM_DEAD;
    const int c = g->cls[byte];
    int32_t t = g->trans[(size_t)st * (size_t)g->n_cls + (size_t)c];
    return t != -2 ? t : dfa_compute(g, st, c);
}

int32_t gram_advance(gram *g, int32_t st, const void *bytes, size_t n) {
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n && st >= 0; i++) st = gram_step(g, st, p[i]);
    return st;
}

bool gram_accepting(const gram *g, int32_t st) { return st >= 0 && g->ds[st].acc; }

bool gram_final(gram *g, int32_t st) {
    if (st < 0) return true;
    for (int c = 0; c < g->n_cls; c++)
        if (gram_step(g, st, g->rep[c]) >= 0) return false;
    return true;
}

bool gram_matches(gram *g, const void *bytes, size_t n) {
    return gram_accepting(g, gram_advance(g, g->start, bytes, n));
}

int gram_forced_bytes(gram *g, int32_t st, char *buf, int cap) {
    int n = 0;
    while (n < cap && st >= 0 && !g->ds[st].acc) {
        int live = 0, only = -1;
        int32_t next = GRAM_DEAD;
        for (int c = 0; c < g->n_cls && live < 2; c++) {
            int32_t t = gram_step(g, st, g->rep[c]);
            if (t < GRAM_DEAD) return t;
            if (t < 0) continue;
            for (int b = 0; b < 256 && live < 2; b++)
                if (g->cls[b] == c) { live++; only = b; }
            next = t;
        }
        if (live != 1) break;
        buf[n++] = (char)only;
        st = next;
    }
    return n;
}

/* Preference order for a byte of a set when closing a document. */
static int byte_rank(int b) {
    if (b >= 'a' && b <= 'z') return b - 'a';
    if (b >= '0' && b <= '9') return 100 + b;
    if (b >= 'A' && b <= 'Z') return 200 + b;
    if (b >= 0x20 && b < 0x7f) return 300 + b;
    return 400 + b;
}

int gram_close_bytes(gram *g, int32_t st, char *buf, int cap) {
    int n = 0;
    while (st >= 0 && !g->ds[st].acc) {
        /* the byte state nearest the end; its best byte */
        int32_t best = -1, bd = INT32_MAX;
        for (int i = 0; i < g->ds[st].n; i++) {
            int32_t s = g->dset[g->ds[st].off + i];
            if (g->st[s].type != S_BYTE) continue;
            int32_t d = g->dist[g->st[s].out];
            if (d < bd) { bd = d; best = s; }
        }
        if (best < 0) return nj_fail(NJ_ESTATE, "grammar state cannot be completed");
        const bset *set = &g->sets[g->st[best].set];
        int pick = -1;
        for (int b = 0; b < 256; b++)
            if (bs_has(set, (unsigned)b) && (pick < 0 || byte_rank(b) < byte_rank(pick))) pick = b;
        if (n < cap) buf[n] = (char)pick;
        n++;
        st = gram_step(g, st, (uint8_t)pick);
        if (st < GRAM_DEAD) return st;
        if (n > (1 << 20)) return nj_fail(NJ_ETOOBIG, "grammar completion too long");
    }
    return n;
}

gram *gram_compile(const gb *b, int root, int *err) {
    int rc = b->err;
    cctx c = {.b = b};
    gram *g = NULL;
    if (rc) goto err;
    if (root < 0 || root >= b->n_nodes) { rc = nj_fail(-EINVAL, "no grammar root"); goto err; }
    g = nj_calloc(1, sizeof *g);
    c.ref_depth = nj_calloc((size_t)(b->n_refs ? b->n_refs : 1), sizeof *c.ref_depth);
    if (!g || !c.ref_depth) { rc = -ENOMEM; goto err; }
    c.g = g;
    g->n_sets = b->n_sets;
    g->sets = nj_malloc(sizeof *g->sets * (size_t)(b->n_sets ? b->n_sets : 1));
    if (!g->sets) { rc = -ENOMEM; goto err; }
    if (b->n_sets) memcpy(g->sets, b->sets, sizeof *g->sets * (size_t)b->n_sets);
    g->match = st_new(&c, S_MATCH);
    g->start_nfa = compile(&c, root, g->match);
    if (c.err) { rc = c.err; goto err; }
    if (g->start_nfa < 0) {
        rc = nj_fail(NJ_EUNSUPPORTED, "the grammar admits no document (recursion deeper than %d "
                     "expansions is not generated)", GRAM_REF_DEPTH);
        goto err;
    }
    make_classes(g);
    g->mark = nj_calloc((size_t)g->n_st, sizeof *g->mark);
    if (!g->mark || make_dist(g)) { rc = -ENOMEM; goto err; }
    new_stamp(g);
    int n = 0;
    if ((rc = closure_add(g, g->start_nfa, &n))) goto err;
    g->start = dfa_intern(g, n);
    if (g->start < 0) { rc = g->start; goto err; }
    g->dfa_soft = GRAM_DFA_SOFT;
    nj_free(c.ref_depth);
    nj_free(c.memo_k);
    nj_free(c.memo_v);
    if (err) *err = 0;
    return g;
err:
    nj_free(c.ref_depth);
    nj_free(c.memo_k);
    nj_free(c.memo_v);
    gram_free(g);
    if (err) *err = rc ? rc : -ENOMEM;
    return NULL;
}

void gram_free(gram *g) {
    if (!g) return;
    nj_free(g->st);
    nj_free(g->eps);
    nj_free(g->sets);
    nj_free(g->dist);
    nj_free(g->ds);
    nj_free(g->dset);
    nj_free(g->trans);
    nj_free(g->dht);
    nj_free(g->mark);
    nj_free(g->stk);
    nj_free(g->tmp);
    nj_free(g->mask_of);
    nj_free(g->masks);
    nj_free(g->mask_owner);
    nj_free(g->mask_cnt);
    nj_free(g->walk);
    nj_free(g->pd);
    nj_free(g->pd_exact);
    nj_free(g);
}

void gram_get_stats(const gram *g, gram_stats *st) {
    *st = g->stats;
    st->n_nfa = g->n_st;
    st->n_dfa = g->n_ds;
    st->n_classes = g->n_cls;
    st->n_sets = g->n_sets;
}

/* ---- token trie ---- */

/* 8 bytes, so a walk streams half as much memory; the ids ending at node
 * i are toks[tok_off[i] .. tok_off[i] + n_tok). */
typedef struct tnode {
    uint32_t skip;       /* index after this node's subtree */
    uint8_t  byte;
    uint8_t  depth;      /* 0 for the first byte of a token */
    uint16_t n_tok;
} tnode;

struct gram_trie {
    int       n_vocab;
    tnode    *nodes; int n_nodes;
    uint32_t *tok_off;
    uint8_t  *plain_span;      /* per node: 0, or (every token through it is
                                  whole text characters from here on) the most
                                  bytes from this node to a token's end */
    int       n_toks;
    int32_t  *toks;
    int32_t  *eog; int n_eog;
    char     *text;            /* all pieces */
    uint32_t *piece_off;       /* per id: offset into text, len in piece_len */
    uint16_t *piece_len;
    int       max_depth;
};

typedef struct tsort { const char *s; int len; int32_t id; } tsort;

static int tsort_cmp(const void *a, const void *b) {
    const tsort *x = a, *y = b;
    int n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->s, y->s, (size_t)n);
    if (r) return r;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

#define TRIE_MAX_PIECE 255   /* longer tokens are left out (never allowed) */

static gram_trie *trie_build(const nj_model *m, int *err) {
    int rc = -ENOMEM;
    const int V = m->hp.n_vocab > 0 ? m->hp.n_vocab : (m->tok ? tok_n_vocab(m->tok) : 0);
    gram_trie *t = nj_calloc(1, sizeof *t);
    tsort *ts = NULL;
    int32_t *open = NULL;
    if (!t) goto err;
    if (!m->tok) { rc = nj_fail(NJ_EUNSUPPORTED, "the model has no tokenizer"); goto err; }
    if (V <= 0) { rc = nj_fail(NJ_EFORMAT, "empty vocabulary"); goto err; }
    t->n_vocab = V;
    t->piece_off = nj_calloc((size_t)V, sizeof *t->piece_off);
    t->piece_len = nj_calloc((size_t)V, sizeof *t->piece_len);
    t->eog = nj_malloc(sizeof *t->eog * 16);
    ts = nj_malloc(sizeof *ts * (size_t)V);
    if (!t->piece_off || !t->piece_len || !t->eog || !ts) goto err;
    /* pieces into one text block */
    size_t cap = (size_t)V * 8, used = 0;
    t->text = nj_malloc(cap);
    if (!t->text) goto err;
    char buf[TRIE_MAX_PIECE];
    int n_ts = 0;
    for (int32_t id = 0; id < V; id++) {
        if (tok_is_eog(m->tok, id)) {
            if (t->n_eog < 16) t->eog[t->n_eog++] = id;
            continue;
        }
        if (tok_is_control(m->tok, id)) continue;
        int len = tok_piece(m->tok, id, false, buf, sizeof buf);
        if (len <= 0 || len > TRIE_MAX_PIECE) continue;
        if (used + (size_t)len > cap) {
            size_t nc = cap * 2;
            char *nt = nj_realloc(t->text, nc);
            if (!nt) goto err;
            t->text = nt;
            cap = nc;
        }
        memcpy(t->text + used, buf, (size_t)len);
        t->piece_off[id] = (uint32_t)used;
        t->piece_len[id] = (uint16_t)len;
        used += (size_t)len;
        ts[n_ts++] = (tsort){NULL, len, id};
    }
    for (int i = 0; i < n_ts; i++) ts[i].s = t->text + t->piece_off[ts[i].id];
    qsort(ts, (size_t)n_ts, sizeof *ts, tsort_cmp);
    /* nodes: at most the total number of bytes */
    t->nodes = nj_malloc(sizeof *t->nodes * (used ? used : 1));
    t->tok_off = nj_malloc(sizeof *t->tok_off * (used ? used : 1));
    t->toks = nj_malloc(sizeof *t->toks * (size_t)(n_ts ? n_ts : 1));
    open = nj_malloc(sizeof *open * (TRIE_MAX_PIECE + 1));
    if (!t->nodes || !t->tok_off || !t->toks || !open) goto err;
    int n_open = 0, nn = 0;
    const tsort *prev = NULL;
    for (int i = 0; i < n_ts; i++) {
        const tsort *x = &ts[i];
        int lcp = 0;
        if (prev) {
            int lim = prev->len < x->len ? prev->len : x->len;
            while (lcp < lim && prev->s[lcp] == x->s[lcp]) lcp++;
        }
        /* close nodes deeper than the common prefix */
        while (n_open > lcp) t->nodes[open[--n_open]].skip = (uint32_t)nn;
        for (int d = lcp; d < x->len; d++) {
            t->nodes[nn] = (tnode){0, (uint8_t)x->s[d], (uint8_t)d, 0};
            t->tok_off[nn] = (uint32_t)i;
            open[n_open++] = nn++;
            if (d + 1 > t->max_depth) t->max_depth = d + 1;
        }
        tnode *last = &t->nodes[open[n_open - 1]];
        if (last->n_tok == 0) t->tok_off[open[n_open - 1]] = (uint32_t)i;
        if (last->n_tok < UINT16_MAX) last->n_tok++;
        t->toks[i] = x->id;
        prev = x;
    }
    while (n_open > 0) t->nodes[open[--n_open]].skip = (uint32_t)nn;
    t->n_nodes = nn;
    t->n_toks = n_ts;
    /* text spans: node i is "bad" if some token through it is not a run
     * of whole text characters from i's depth on (marked per token along
     * its path, which is open[] right after the token was added); spans
     * from the longest token of each subtree, children before parents */
    t->plain_span = nj_malloc(nn ? (size_t)nn : 1);
    uint8_t *bad = nj_calloc(nn ? (size_t)nn : 1, 1);
    uint16_t *maxlen = nj_calloc(nn ? (size_t)nn : 1, sizeof *maxlen);
    uint8_t *ok = nj_malloc(TRIE_MAX_PIECE + 2);
    int32_t *path = nj_malloc(sizeof *path * (TRIE_MAX_PIECE + 1));
    if (!t->plain_span || !bad || !maxlen || !ok || !path) {
        nj_free(bad); nj_free(maxlen); nj_free(ok); nj_free(path);
        goto err;
    }
    {
        /* replay the sorted strings to recover each token's path */
        int np = 0, k = 0;
        const tsort *pv = NULL;
        for (int i = 0; i < n_ts; i++) {
            const tsort *x = &ts[i];
            int lcp = 0;
            if (pv) {
                int lim = pv->len < x->len ? pv->len : x->len;
                while (lcp < lim && pv->s[lcp] == x->s[lcp]) lcp++;
            }
            np = lcp;
            for (int d = lcp; d < x->len; d++) path[np++] = k++;
            const uint8_t *u = (const uint8_t *)x->s;
            ok[x->len] = 1;
            for (int d = x->len - 1; d >= 0; d--) {
                int L = text_char(u + d, x->len - d);
                ok[d] = L && ok[d + L];
            }
            for (int d = 0; d < x->len; d++) {
                if (!ok[d]) bad[path[d]] = 1;
                if (maxlen[path[d]] < x->len) maxlen[path[d]] = (uint16_t)x->len;
            }
            pv = x;
        }
    }
    for (int i = 0; i < nn; i++) {
        int span = maxlen[i] - t->nodes[i].depth;
        t->plain_span[i] = !bad[i] && span > 0 && span <= 255 ? (uint8_t)span : 0;
    }
    nj_free(bad); nj_free(maxlen); nj_free(ok); nj_free(path);
    nj_free(ts);
    nj_free(open);
    if (err) *err = 0;
    return t;
err:
    nj_free(ts);
    nj_free(open);
    gram_trie_free(t);
    if (err) *err = rc;
    return NULL;
}

void gram_trie_free(gram_trie *t) {
    if (!t) return;
    nj_free(t->nodes);
    nj_free(t->tok_off);
    nj_free(t->plain_span);
    nj_free(t->toks);
    nj_free(t->eog);
    nj_free(t->text);
    nj_free(t->piece_off);
    nj_free(t->piece_len);
    nj_free(t);
}

static pthread_mutex_t trie_mu = PTHREAD_MUTEX_INITIALIZER;

/* The trie is a cache on an otherwise read-only model: built once under
 * trie_mu, never changed afterwards, freed by nj_model_free. */
const gram_trie *gram_trie_get(const nj_model *cm, int *err) {
    nj_model *m = (nj_model *)cm;
    pthread_mutex_lock(&trie_mu);
    if (!m->gram_trie) m->gram_trie = trie_build(m, err);
    else if (err) *err = 0;
    gram_trie *t = m->gram_trie;
    pthread_mutex_unlock(&trie_mu);
    return t;
}

int gram_trie_n_vocab(const gram_trie *t) { return t->n_vocab; }
int gram_trie_n_nodes(const gram_trie *t) { return t->n_nodes; }

const char *gram_trie_piece(const gram_trie *t, int32_t id, int *len) {
    if (id < 0 || id >= t->n_vocab || !t->piece_len[id]) { *len = 0; return NULL; }
    *len = t->piece_len[id];
    return t->text + t->piece_off[id];
}

bool gram_trie_is_eog(const gram_trie *t, int32_t id) {
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

/* ---- masks ---- */

#define MASK_CACHE_MAX 64

#define PLAIN_MAX 48   /* deepest plain-text check (bytes) */

static int pd_ensure(gram *g) {
    if (g->n_ds <= g->cap_pd) return 0;
    int old = g->cap_pd, c1 = g->cap_pd;
    if (GROW(g->pd, g->cap_pd, g->n_ds) || GROW(g->pd_exact, c1, g->n_ds)) return -ENOMEM;
    for (int i = old; i < g->cap_pd; i++) g->pd[i] = -1;
    return 0;
}

/* The largest D <= budget such that every run of whole text characters
 * (plain ASCII, well-formed UTF-8) of at most D bytes keeps the automaton
 * live from t.  Memoised per state; a value equal to the budget it was
 * computed with is a lower bound.  Errors count as 0 (conservative). */
static int text_depth(gram *g, int32_t t, int budget);

/* Walk UTF-8 shape k from position j in state u; lowers *best. */
static void shape_depth(gram *g, int k, int j, int32_t u, int *best) {
    const int L = UTF8_SHAPES[k][0][0];
    if (L > *best) return;              /* longer than what is being checked */
    if (j == L) {
        int v = L + text_depth(g, u, *best - L);
        if (v < *best) *best = v;
        return;
    }
    if (g->shp_n[k][j] == 0xff) { *best = L - 1; return; }
    for (int q = 0; q < g->shp_n[k][j] && L <= *best; q++) {
        const int c = g->shp_cls[k][j][q];
        int32_t w = g->trans[(size_t)u * (size_t)g->n_cls + (size_t)c];
        if (w == -2) w = dfa_compute(g, u, c);
        if (w < 0) { if (L - 1 < *best) *best = L - 1; return; }
        shape_depth(g, k, j + 1, w, best);
    }
}

static int text_depth(gram *g, int32_t t, int budget) {
    if (budget <= 0 || pd_ensure(g)) return 0;
    if (g->pd[t] >= 0 && (g->pd_exact[t] || g->pd[t] >= budget))
        return g->pd[t] < budget ? g->pd[t] : budget;
    int best = budget;
    for (int k = 0; k < g->n_plain_cls && best > 0; k++) {
        const int c = g->plain_cls[k];
        int32_t u = g->trans[(size_t)t * (size_t)g->n_cls + (size_t)c];
        if (u == -2) u = dfa_compute(g, t, c);
        if (u < 0) { best = 0; break; }
        int v = 1 + text_depth(g, u, best - 1);
        if (v < best) best = v;
    }
    for (int k = 0; k < 8 && best >= 2; k++) shape_depth(g, k, 0, t, &best);
    if (pd_ensure(g)) return 0;
    g->pd[t] = (int16_t)best;
    g->pd_exact[t] = best < budget;
    return best;
}

/* Walk the trie from st and fill bits; returns the allowed count or < 0.
 * Shortcut: a subtree whose tokens are all whole text characters from its
 * depth on, none longer than text_depth of the state before it, is allowed
 * whole (its tokens are
 * one contiguous run of toks[]), with no transition per node. */
static int mask_walk(gram *g, const gram_trie *t, int32_t st, uint64_t *bits) {
    if (GROW(g->walk, g->cap_walk, t->max_depth + 2)) return -ENOMEM;
    int32_t *stk = g->walk;
    memset(bits, 0, sizeof *bits * (size_t)g->mask_words);
    int count = 0;
    stk[0] = st;
    const tnode *nodes = t->nodes;
    const int n_cls = g->n_cls;
    for (int i = 0; i < t->n_nodes;) {
        const tnode *x = &nodes[i];
        const int32_t from = stk[x->depth];
        const int span = t->plain_span[i];
        if (span && span <= PLAIN_MAX) {
            int pd = from < g->cap_pd && g->pd[from] >= 0 &&
                     (g->pd_exact[from] || g->pd[from] >= span) ? g->pd[from] : text_depth(g, from, PLAIN_MAX);
            if (pd >= span) {
                const uint32_t a = t->tok_off[i];
                const uint32_t e = x->skip < (uint32_t)t->n_nodes ? t->tok_off[x->skip] : (uint32_t)t->n_toks;
                for (uint32_t k = a; k < e; k++) {
                    int32_t id = t->toks[k];
                    bits[id >> 6] |= (uint64_t)1 << (id & 63);
                }
                count += (int)(e - a);
                i = (int)x->skip;
                continue;
            }
        }
        const int c = g->cls[x->byte];
        int32_t to = g->trans[(size_t)from * (size_t)n_cls + (size_t)c];
        if (to == -2) to = dfa_compute(g, from, c);
        g->stats.n_nodes_walked++;
        if (to < 0) {
            if (to < GRAM_DEAD) return to;
            i = (int)x->skip;
            continue;
        }
        for (uint32_t k = 0; k < x->n_tok; k++) {
            int32_t id = t->toks[t->tok_off[i] + k];
            bits[id >> 6] |= (uint64_t)1 << (id & 63);
            count++;
        }
        stk[x->depth + 1] = to;
        i++;
    }
    if (g->ds[st].acc)
        for (int i = 0; i < t->n_eog; i++) {
            int32_t id = t->eog[i];
            bits[id >> 6] |= (uint64_t)1 << (id & 63);
            count++;
        }
    return count;
}

void gram_mask_flush(gram *g) {
    for (int i = 0; i < g->cap_mask_of; i++) g->mask_of[i] = -1;
    g->n_masks = 0;
}

int gram_mask(gram *g, const gram_trie *t, int32_t st, const uint64_t **bits, int *n_allowed) {
    if (st < 0) return nj_fail(NJ_ESTATE, "grammar is in a dead state");
    const int words = (t->n_vocab + 63) / 64;
    if (g->mask_words != words) {
        nj_free(g->masks);
        nj_free(g->mask_owner);
        nj_free(g->mask_cnt);
        g->masks = nj_malloc(sizeof *g->masks * (size_t)words * MASK_CACHE_MAX);
        g->mask_owner = nj_malloc(sizeof *g->mask_owner * MASK_CACHE_MAX);
        g->mask_cnt = nj_malloc(sizeof *g->mask_cnt * MASK_CACHE_MAX);
        if (!g->masks || !g->mask_owner || !g->mask_cnt) {
            nj_free(g->masks);
            nj_free(g->mask_owner);
            nj_free(g->mask_cnt);
            g->masks = NULL;
            g->mask_owner = g->mask_cnt = NULL;
            g->mask_words = 0;
            return -ENOMEM;
        }
        g->mask_words = words;
        g->n_masks = 0;
        for (int i = 0; i < g->cap_mask_of; i++) g->mask_of[i] = -1;
    }
    if (st >= g->cap_mask_of) {
        int old = g->cap_mask_of;
        if (GROW(g->mask_of, g->cap_mask_of, st + 1)) return -ENOMEM;
        for (int i = old; i < g->cap_mask_of; i++) g->mask_of[i] = -1;
    }
    int slot = g->mask_of[st];
    if (slot >= 0) {
        g->stats.n_mask_hits++;
        *bits = g->masks + (size_t)slot * (size_t)words;
        *n_allowed = g->mask_cnt[slot];
        return 0;
    }
    /* round-robin replacement */
    slot = g->n_masks % MASK_CACHE_MAX;
    if (g->n_masks >= MASK_CACHE_MAX) g->mask_of[g->mask_owner[slot]] = -1;
    uint64_t *b = g->masks + (size_t)slot * (size_t)words;
    uint64_t t0 = nj_now_ns();
    int cnt = mask_walk(g, t, st, b);
    g->stats.mask_build_us += (double)(nj_now_ns() - t0) / 1e3;
    if (cnt < 0) return cnt;
    /* the walk may have grown mask_of's owner range: re-check capacity */
    if (st >= g->cap_mask_of) return nj_fail(NJ_ESTATE, "mask cache index out of range");
    g->n_masks++;
    g->stats.n_masks_built++;
    g->mask_owner[slot] = st;
    g->mask_cnt[slot] = cnt;
    g->mask_of[st] = slot;
    *bits = b;
    *n_allowed = cnt;
    return 0;
}

/* Trie node whose path spells bytes[0..n), or -1. */
static int trie_find(const gram_trie *t, const char *bytes, int n) {
    int i = 0, end = t->n_nodes;
    for (int d = 0; d < n; d++) {
        /* siblings at depth d in [i, end) */
        while (i < end && t->nodes[i].byte != (uint8_t)bytes[d]) i = (int)t->nodes[i].skip;
        if (i >= end || t->nodes[i].depth != d) return -1;
        if (d + 1 == n) return i;
        end = (int)t->nodes[i].skip;
        i++;
    }
    return -1;
}

int gram_trie_longest(const gram_trie *t, const char *bytes, int n, int32_t *id) {
    int i = 0, end = t->n_nodes, best = 0;
    for (int d = 0; d < n; d++) {
        while (i < end && t->nodes[i].byte != (uint8_t)bytes[d]) i = (int)t->nodes[i].skip;
        if (i >= end || t->nodes[i].depth != d) break;
        if (t->nodes[i].n_tok) { best = d + 1; *id = t->toks[t->tok_off[i]]; }
        end = (int)t->nodes[i].skip;
        i++;
    }
    return best;
}

bool gram_trie_extends(gram *g, const gram_trie *t, int32_t st_after, const char *piece, int len) {
    int at = trie_find(t, piece, len);
    if (at < 0 || st_after < 0) return false;
    int end = (int)t->nodes[at].skip;
    if (GROW(g->walk, g->cap_walk, t->max_depth + 2)) return true;   /* unsure: say yes */
    int32_t *stk = g->walk;
    stk[len] = st_after;
    for (int i = at + 1; i < end;) {
        const tnode *x = &t->nodes[i];
        int32_t to = gram_step(g, stk[x->depth], x->byte);
        if (to < 0) {
            if (to < GRAM_DEAD) return true;
            i = (int)x->skip;
            continue;
        }
        if (x->n_tok) return true;
        stk[x->depth + 1] = to;
        i++;
    }
    return false;
}
