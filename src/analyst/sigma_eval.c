/*
 * sigma_eval — matching events against a compiled rule set (sigma_match).
 *
 * Per call, a small cache on the stack holds each field's value as the
 * accessor returned it and, on first need, an ASCII lower-cased copy in a
 * fixed stack buffer; so an event's CommandLine is fetched and folded once
 * however many rules look at it.  When the buffer is full (very long values)
 * the matcher falls back to comparing with on-the-fly folding: slower, same
 * answer.  Only rules of logsource buckets that fit the event are tried.
 * Each rule first meets its prefilter (sj_hot, in a flat array per bucket):
 * a first/last byte test of a necessary anchored item, then its literal
 * groups (sigma_int.h): the first time a rule needs a field, one pass over
 * the folded value finds every atom of that field of the whole rule set
 * (a pair filter, then a hash of the first 1-4 bytes, then a full compare)
 * and marks the groups those atoms are in, so each later rule costs a bit
 * test per group however many literals it has.  A rule without literal
 * groups falls back to "one of these literals" tested against a bigram set
 * of the field.  Survivors have their condition tree walked with
 * short-circuit AND/OR; map items were sorted at load time so cheap anchored
 * checks run before substring searches and regexes, and each regex with a
 * literal every match contains checks that literal with memmem first.
 * Values with a non-ASCII byte skip the literal tests taken from regexes
 * (a caseless regex folds more than ASCII: 'k' also matches U+212A): the
 * filters only ever save work, never change an answer.
 *
 * Regexes need a pcre2_match_data.  Creating one allocates, so the match
 * general context of the rule set hands out memory from a per-call stack
 * arena (through a thread-local cursor): no heap allocation, and concurrent
 * calls on the same rule set never share scratch.
 */
#include "sigma_int.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define FC_MAX   256        /* fields cached per call; more are fetched each time */
#define LO_BUF   16384      /* bytes of lower-cased values per call */
#define MD_ARENA 32768      /* PCRE2 match data + interpreter frames */
#define BG_MIN   16         /* values this long get a bigram filter */
#define BG_MAX   6          /* bigram filters per call */

int sj_no_prefilter;

static _Thread_local unsigned char *tl_arena;
static _Thread_local size_t tl_left;

/* Inside sigma_match (tl_arena set): carve from the call's stack arena.
 * Outside (creating or freeing the general context itself): the heap. */
void *sj_md_alloc(size_t n, void *data) {
    (void)data;
    if (!tl_arena) return nj_malloc(n);
    n = (n + 15) & ~(size_t)15;
    if (n > tl_left) return NULL;
    void *p = tl_arena;
    tl_arena += n;
    tl_left -= n;
    return p;
}

void sj_md_free(void *p, void *data) {
    (void)data;
    if (!tl_arena) nj_free(p);
}

typedef struct fval {
    const char *v;          /* as returned by the accessor */
    const char *lo;         /* lower-cased copy, or NULL if not (yet) made */
    uint32_t n;
    int8_t st;              /* 0 not fetched, 1 absent, 2 present */
    int8_t lo_tried;
    int8_t bg_tried;
    int8_t at;              /* atoms: 0 not looked for, 1 found (bits set), 2 cannot say */
    int8_t hi;              /* lo made and the value has a non-ASCII byte */
    const uint64_t *bg;     /* bigrams present in lo (SJ_BG_BITS bits), or NULL */
} fval;

typedef struct mstate {
    const sigma_rules *rs;
    const sigma_event_view *ev;
    int nf;
    fval f[FC_MAX];
    fval tmp;
    char lo[LO_BUF];
    size_t loused;
    pcre2_match_data *md;
    unsigned char *arena;
    int nbg;
    uint64_t bgs[BG_MAX][SJ_BG_BITS / 64];
    uint64_t groups[SJ_GROUP_MAX / 64]; /* literal groups with an atom found so far */
    uint64_t scanned, unsure;           /* fields < 64 with at = 1 or 2; with at = 2 */
} mstate;

static const unsigned char fold[256] = {
#define R(i) [i] = (unsigned char)((i) >= 'A' && (i) <= 'Z' ? (i) + 32 : (i))
#define R4(i) R(i), R(i + 1), R(i + 2), R(i + 3)
#define R16(i) R4(i), R4(i + 4), R4(i + 8), R4(i + 12)
#define R64(i) R16(i), R16(i + 16), R16(i + 32), R16(i + 48)
    R64(0), R64(64), R64(128), R64(192)
#undef R
#undef R4
#undef R16
#undef R64
};

static fval *field(mstate *m, int id) {
    fval *f = id < FC_MAX ? &m->f[id] : &m->tmp;
    if (id >= FC_MAX) memset(f, 0, sizeof *f);
    if (f->st) return f;
    const char *v;
    size_t n = 0;
    if (id == 0) {
        v = m->ev->raw;
        n = v ? m->ev->raw_len : 0;
    } else {
        v = m->ev->get ? m->ev->get(m->ev->ctx, m->rs->field[id], &n) : NULL;
    }
    if (n > UINT32_MAX) n = UINT32_MAX;
    f->v = v;
    f->n = (uint32_t)n;
    f->st = v ? 2 : 1;
    return f;
}

/* Lower-cased view of F, made once; NULL when the buffer is full. */
static const char *lower(mstate *m, fval *f) {
    if (f->lo || f->lo_tried) return f->lo;
    f->lo_tried = 1;
    if (f->n > LO_BUF - m->loused) return NULL;
    char *d = m->lo + m->loused;
    unsigned hi = 0;
    for (uint32_t i = 0; i < f->n; i++) {
        unsigned char c = (unsigned char)f->v[i];
        hi |= c;
        d[i] = (char)fold[c];
    }
    f->hi = (int8_t)(hi >> 7);
    m->loused += f->n;
    f->lo = d;
    return d;
}

/* Which hashed bigrams the lower-cased value has; made once per field and
 * call, for long values only.  A middle segment whose bigrams are not all
 * here cannot occur, and most needles of most rules are ruled out so. */
static const uint64_t *bigrams(mstate *m, fval *f) {
    if (f->bg || f->bg_tried) return f->bg;
    f->bg_tried = 1;
    if (f->n < BG_MIN || !f->lo || m->nbg == BG_MAX) return NULL;
    uint64_t *b = m->bgs[m->nbg++];
    memset(b, 0, SJ_BG_BITS / 8);
    const unsigned char *p = (const unsigned char *)f->lo;
    for (uint32_t i = 0; i + 1 < f->n; i++) {
        uint16_t h = sj_bigram(p[i], p[i + 1]);
        b[h >> 6] |= (uint64_t)1 << (h & 63);
    }
    f->bg = b;
    return b;
}

static inline int has_bg(const uint64_t *b, uint16_t h) { return (b[h >> 6] >> (h & 63)) & 1; }

static int eq_fold(const char *h, const char *s, size_t n, int folded) {
    if (folded) return !memcmp(h, s, n);
    for (size_t i = 0; i < n; i++)
        if (fold[(unsigned char)h[i]] != (unsigned char)s[i]) return 0;
    return 1;
}

/* First occurrence of S (N bytes) in H (HN bytes); folded = H is already in
 * the needle's case, else fold H on the fly. */
static const char *find(const char *h, size_t hn, const char *s, size_t n, int folded) {
    if (folded) return memmem(h, hn, s, n);
    if (n > hn) return NULL;
    unsigned char c0 = (unsigned char)s[0];
    for (size_t i = 0; i + n <= hn; i++)
        if (fold[(unsigned char)h[i]] == c0 && eq_fold(h + i, s, n, 0)) return h + i;
    return NULL;
}

/* '*'-only wildcard pattern: anchored first/last segments, leftmost search
 * for the middle ones (exact for '*'-only patterns).  BG: bigrams of H, or
 * NULL.  First and last bytes are compared inline before any call. */
static int glob(const sj_val *v, const char *h, size_t n, int folded, const uint64_t *bg) {
    uint32_t ns = v->nseg, i = 0, last = ns;
    if (ns == 0) return !(v->anch_start && v->anch_end) || n == 0;
    size_t pos = 0, end = n;
    if (v->anch_start) {
        const sj_seg *s = &v->seg[0];
        if (n < s->n || (folded && h[0] != s->s[0]) || !eq_fold(h, s->s, s->n, folded)) return 0;
        if (ns == 1 && v->anch_end) return n == s->n;
        pos = s->n;
        i = 1;
    }
    if (v->anch_end && i < ns) {
        const sj_seg *s = &v->seg[ns - 1];
        if (end - pos < s->n || (folded && h[n - 1] != s->s[s->n - 1]) ||
            !eq_fold(h + n - s->n, s->s, s->n, folded))
            return 0;
        end = n - s->n;
        last = ns - 1;
    }
    if (bg)
        for (uint32_t k = i; k < last; k++)
            if (v->seg[k].n >= 2 && (!has_bg(bg, v->seg[k].bg[0]) || !has_bg(bg, v->seg[k].bg[1]))) return 0;
    for (; i < last; i++) {
        const sj_seg *s = &v->seg[i];
        const char *p = find(h + pos, end - pos, s->s, s->n, folded);
        if (!p) return 0;
        pos = (size_t)(p - h) + s->n;
    }
    return 1;
}

static int regex(mstate *m, const sj_val *v, const char *h, size_t n) {
    if (!m->md) {
        tl_arena = m->arena;
        tl_left = MD_ARENA;
        m->md = pcre2_match_data_create(1, m->rs->mgctx);
        if (!m->md) return 0;
    }
    int rc = v->jit ? pcre2_jit_match(v->re, (PCRE2_SPTR)h, n, 0, 0, m->md, m->rs->mctx)
                    : pcre2_match(v->re, (PCRE2_SPTR)h, n, 0, 0, m->md, m->rs->mctx);
    return rc >= 0;
}

/* Copy a short value into BUF as a C string; 0 if it does not fit. */
static int cstr(const fval *f, char *buf, size_t cap) {
    if (f->n >= cap) return 0;
    memcpy(buf, f->v, f->n);
    buf[f->n] = 0;
    return 1;
}

static int cidr(const sj_val *v, const fval *f) {
    char buf[64];
    unsigned char a[16];
    if (!cstr(f, buf, sizeof buf)) return 0;
    if (inet_pton(v->v6 ? AF_INET6 : AF_INET, buf, a) != 1) return 0;
    unsigned bits = v->bits, full = bits / 8, rest = bits % 8;
    if (memcmp(a, v->addr, full)) return 0;
    if (!rest) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (v->addr[full] & mask);
}

static int num(const sj_val *v, const fval *f) {
    char buf[64], *end;
    if (!cstr(f, buf, sizeof buf)) return 0;
    double d = strtod(buf, &end);
    if (end == buf || *end) return 0;
    switch (v->op) {
    case NUM_GT: return d > v->num;
    case NUM_GTE: return d >= v->num;
    case NUM_LT: return d < v->num;
    default: return d <= v->num;
    }
}

static int value(mstate *m, const sj_val *v, fval *f) {
    if (f->st == 1) return v->kind == V_NULL || (v->kind == V_EXISTS && !v->op);
    switch (v->kind) {
    case V_NULL: return f->n == 0;
    case V_EXISTS: return v->op;
    case V_GLOB: {
        if (v->cased) return glob(v, f->v, f->n, 1, NULL);
        const char *lo = lower(m, f);
        if (!lo) return glob(v, f->v, f->n, 0, NULL);
        return glob(v, lo, f->n, 1, bigrams(m, f));
    }
    case V_RE:
        if (v->nseg && !sj_no_prefilter) {     /* literal every match contains */
            /* Not for non-ASCII values: a caseless regex matches 'k' to
             * U+212A and 's' to U+017F, which ASCII folding does not. */
            const char *lo = lower(m, f);
            if (lo && !f->hi && !glob(v, lo, f->n, 1, bigrams(m, f))) return 0;
        }
        return regex(m, v, f->v, f->n);
    case V_CIDR: return cidr(v, f);
    case V_NUM: return num(v, f);
    case V_FIELDREF: {
        /* Copy F's fields: fetching the other field may reuse m->tmp. */
        fval a = *f;
        fval *b = field(m, v->ref);
        if (b->st != 2 || b->n != a.n) return 0;
        for (uint32_t i = 0; i < a.n; i++)
            if (fold[(unsigned char)a.v[i]] != fold[(unsigned char)b->v[i]]) return 0;
        return 1;
    }
    }
    return 0;
}

/* Could F's first / last bytes (or byte pairs, width 2) be in the end sets?
 * An absent or empty field cannot. */
static int ends_fit(int wf, const uint64_t *first, int wl, const uint64_t *last, const fval *f) {
    if (f->st != 2 || f->n == 0) return 0;
    const unsigned char *v = (const unsigned char *)f->v;
    uint32_t n = f->n;
    if (wf) {
        if (wf == 2 && n < 2) return 0;
        unsigned k = sj_end_key(fold[v[0]], wf == 2 ? fold[v[1]] : 0, wf);
        if (!((first[k >> 6] >> (k & 63)) & 1)) return 0;
    }
    if (wl) {
        if (wl == 2 && n < 2) return 0;
        unsigned k = sj_end_key(wl == 2 ? fold[v[n - 2]] : fold[v[n - 1]], fold[v[n - 1]], wl);
        if (!((last[k >> 6] >> (k & 63)) & 1)) return 0;
    }
    return 1;
}

static int item(mstate *m, const sj_item *it) {
    fval *f = field(m, it->field);
    /* Every value is an anchored, case-folded glob: an absent or empty
     * field, or ends no value has, fail them all. */
    if ((it->has_first | it->has_last) && !sj_no_prefilter && !ends_fit(it->has_first, it->first, it->has_last, it->last, f))
        return 0;
    for (int i = 0; i < it->nval; i++) {
        int r = value(m, &it->val[i], f);
        if (it->all && !r) return 0;
        if (!it->all && r) return 1;
        if (it->field >= FC_MAX) f = field(m, it->field);   /* tmp may be reused */
    }
    return it->all;
}

static int sel(mstate *m, const sj_sel *s) {
    for (int i = 0; i < s->nmap; i++) {
        const sj_map *mp = &s->map[i];
        int ok = 1;
        for (int j = 0; j < mp->nitem && ok; j++) ok = item(m, &mp->item[j]);
        if (ok) return 1;
    }
    return 0;
}

static int cond(mstate *m, const sj_rule *r, const sj_cond *c) {
    switch (c->op) {
    case C_SEL: return sel(m, &r->sel[c->sel]);
    case C_NOT: return !cond(m, r, c->kid[0]);
    case C_AND:
        for (int i = 0; i < c->nkid; i++) if (!cond(m, r, c->kid[i])) return 0;
        return 1;
    case C_OR:
        for (int i = 0; i < c->nkid; i++) if (cond(m, r, c->kid[i])) return 1;
        return 0;
    case C_NOF: {
        int hit = 0;
        for (int i = 0; i < c->nkid; i++) {
            hit += cond(m, r, c->kid[i]);
            if (hit >= c->n) return 1;
            if (hit + (c->nkid - i - 1) < c->n) return 0;
        }
        return 0;
    }
    }
    return 0;
}

/* Could one of the rule's necessary literals be there?  A field too short
 * for a bigram set (or past the per-call limit) cannot rule anything out. */
static int alt_present(mstate *m, const sj_pre *pre) {
    for (int k = 0; k < pre->nalt; k++) {
        fval *f = field(m, pre->alt_field[k]);
        if (f->st != 2) continue;
        const uint64_t *bg = lower(m, f) && !f->hi ? bigrams(m, f) : NULL;
        if (!bg || (has_bg(bg, pre->alt_bg[k][0]) && has_bg(bg, pre->alt_bg[k][1]))) return 1;
    }
    return 0;
}

/* Mark the groups of every atom of field FID that starts at V (LEFT bytes
 * on): K is the prefix length, KEY its bytes as sj_key reads them. */
static inline void probe(mstate *m, int fid, unsigned k, uint32_t key, const unsigned char *v, uint32_t left) {
    const sigma_rules *rs = m->rs;
    uint32_t h = sj_atom_hash(fid, k, key);
    uint32_t fb = h >> 16;
    if (!((rs->afilter[fb >> 6] >> (fb & 63)) & 1)) return;
    for (int a = rs->ahead[h & rs->ahmask]; a >= 0; a = rs->atom[a].next) {
        const sj_atom *at = &rs->atom[a];
        if (at->field != fid || at->k != k || at->key != key || at->n > left) continue;
        if (at->n > k && memcmp(v + k, at->s + k, at->n - k)) continue;
        for (int o = at->occ; o >= 0; o = rs->occ[o].next) {
            int g = rs->occ[o].group;
            m->groups[g >> 6] |= (uint64_t)1 << (g & 63);
        }
    }
}

/* Find every atom of field FID (< FC_MAX) in its value: one pass over the
 * folded value; at each position a one-byte table (for one-byte atoms) and
 * a filter of first byte pairs (for the others) rule most places out; the
 * rest hash (field, K, first K bytes) for each prefix length K the field's
 * atoms use, test that against the rule set's filter, and only on a hit
 * walk the chain of candidates, each compared in full.  Sets f->at (and the
 * masks for small field numbers): 1 done, 2 cannot say (a value that cannot
 * be folded, or has a non-ASCII byte: every atom counts as present). */
static void scan_atoms(mstate *m, int fid) {
    const sigma_rules *rs = m->rs;
    fval *f = field(m, fid);
    f->at = 1;
    if (fid < 64) m->scanned |= (uint64_t)1 << fid;
    if (f->st != 2) return;                /* absent: no literal is there */
    const char *lo = lower(m, f);
    /* A non-ASCII value: regex literals cannot be trusted there (a caseless
     * 'k' matches U+212A), so every atom counts as present. */
    if (!lo || f->hi) {
        f->at = 2;
        if (fid < 64) m->unsure |= (uint64_t)1 << fid;
        return;
    }
    const unsigned char *v = (const unsigned char *)lo;
    unsigned km = rs->fieldk[fid];
    uint32_t n = f->n;
    static const uint32_t mask[5] = {0, 0xff, 0xffff, 0xffffff, 0xffffffff};
    for (uint32_t i = 0; i < n; i++) {
        uint32_t left = n - i;
        unsigned c0 = v[i];
        if ((km & 1) && ((rs->aone[c0 >> 6] >> (c0 & 63)) & 1)) probe(m, fid, 1, c0, v + i, left);
        if (left < 2 || !(km & 14)) continue;
        unsigned pr = c0 | (unsigned)v[i + 1] << 8;
        if (!((rs->apair[pr >> 6] >> (pr & 63)) & 1)) continue;
        uint32_t key4 = pr;
        if (left > 2) key4 |= (uint32_t)v[i + 2] << 16;
        if (left > 3) key4 |= (uint32_t)v[i + 3] << 24;
        for (unsigned k = 2; k <= 4 && k <= left; k++)
            if ((km >> (k - 1)) & 1) probe(m, fid, k, key4 & mask[k], v + i, left);
    }
}

/* The literal prefilter P (in sigma_rules.gdata, see sj_pre.groups): has
 * every group an atom present?  A group's fields are scanned first (once
 * per call); a field that cannot be scanned, or lies past the cache, counts
 * as holding every atom. */
static int groups_ok(mstate *m, const int *p) {
    int ng = *p++;
    for (int g = 0; g < ng; g++) {
        int gid = p[0], nx = p[3];
        uint64_t fm = (uint64_t)(uint32_t)p[1] | (uint64_t)(uint32_t)p[2] << 32;
        for (uint64_t todo = fm & ~m->scanned; todo; todo &= todo - 1)
            scan_atoms(m, __builtin_ctzll(todo));
        int sure = (fm & m->unsure) != 0;
        for (int k = 0; k < nx; k++) {        /* fields numbered 64 and up */
            int fid = p[4 + k];
            if (fid >= FC_MAX) { sure = 1; continue; }
            fval *f = &m->f[fid];
            if (!f->at) scan_atoms(m, fid);
            if (f->at == 2) sure = 1;
        }
        if (!sure && !((m->groups[gid >> 6] >> (gid & 63)) & 1)) return 0;
        p += 4 + nx;
    }
    return 1;
}

/* Does bucket B's logsource fit the event?  See sigma.h for the rules. */
static int fits(const sj_bucket *b, const sigma_event_view *ev) {
    if (b->product[0] && ev->product && strcmp(b->product, ev->product)) return 0;
    if (b->category[0] && (!ev->category || strcmp(b->category, ev->category))) return 0;
    if (b->service[0]) {
        if (!ev->service) return 0;
        if (strcmp(b->service, ev->service)) {
            /* sshd, cron and sudo lines are syslog lines too. */
            static const char *const syslogs[] = {"sshd", "cron", "sudo", "auth"};
            int ok = 0;
            if (!strcmp(b->service, "syslog"))
                for (size_t i = 0; i < NJ_ARRAY_LEN(syslogs); i++)
                    if (!strcmp(ev->service, syslogs[i])) ok = 1;
            if (!ok) return 0;
        }
    }
    return 1;
}

int sigma_match(const sigma_rules *rs, const sigma_event_view *ev, sigma_hit *hits, int max) {
    _Alignas(16) unsigned char arena[MD_ARENA];
    mstate m;
    m.rs = rs;
    m.ev = ev;
    m.nf = rs->nfield < FC_MAX ? rs->nfield : FC_MAX;
    memset(m.f, 0, sizeof(fval) * (size_t)m.nf);
    m.loused = 0;
    m.md = NULL;
    m.arena = arena;
    m.nbg = 0;
    memset(m.groups, 0, sizeof(uint64_t) * (size_t)((rs->ngroup + 63) / 64));
    m.scanned = m.unsure = 0;
    int total = 0, written = 0, buckets = 0;
    for (int b = 0; b < rs->nbucket; b++) {
        const sj_bucket *bk = &rs->bucket[b];
        if (!fits(bk, ev)) continue;
        buckets++;
        for (int i = 0; i < bk->n; i++) {
            const sj_hot *pre = &bk->pre[i];
            if (sj_no_prefilter) {
                /* evaluate every rule */
            } else {
                /* The rule's necessary anchored item, from the flat array;
                 * then its literals (or, without, the bigram alternatives). */
                if (pre->field >= 0 &&
                    !ends_fit(pre->has_first, pre->first, pre->has_last, pre->last, field(&m, pre->field)))
                    continue;
                if (pre->groups >= 0) {
                    if (!groups_ok(&m, rs->gdata + pre->groups)) continue;
                } else if (pre->field < 0 && pre->nalt && !alt_present(&m, &rs->rule[bk->rules[i]]->pre)) {
                    continue;
                }
            }
            const sj_rule *r = rs->rule[bk->rules[i]];
            if (!cond(&m, r, r->cond)) continue;
            total++;
            if (written < max && hits) {
                sigma_hit *h = &hits[written++];
                h->rule = bk->rules[i];
                h->id = r->info.id;
                h->title = r->info.title;
                h->level = r->info.level;
                h->techniques = r->info.techniques;
                h->n_techniques = r->info.n_techniques;
            }
        }
    }
    if (m.md) pcre2_match_data_free(m.md);
    tl_arena = NULL;
    tl_left = 0;
    /* Hits from several buckets: restore load order (few hits, insertion sort). */
    if (buckets > 1)
        for (int i = 1; i < written; i++) {
            sigma_hit h = hits[i];
            int j = i;
            while (j > 0 && hits[j - 1].rule > h.rule) { hits[j] = hits[j - 1]; j--; }
            hits[j] = h;
        }
    return total;
}
