/*
 * sigma — rule set life cycle and loading (the public half of sigma.h).
 *
 * Loading reads a file (at most MAX_FILE bytes), parses it with libyaml's
 * document API one document at a time, and hands each document to
 * sj_compile (sigma_compile.c).  A compiled rule is appended to the rule set
 * and to the bucket of its logsource; a skipped one leaves a (file, reason)
 * pair and frees its arena.  A YAML syntax error ends that file (documents
 * before it are kept) and is a skip with the parser's line and problem.
 * Directories are walked recursively in name order so rule indices are
 * stable across runs; hidden entries are ignored and depth is bounded (a
 * symlink loop ends there).
 *
 * Memory: the rule set's arrays, each rule's arena and PCRE2's compile-time
 * allocations go through nj_malloc (so nj_alloc_fail_after reaches all of
 * them); libyaml's own parser memory does not.  An out-of-memory anywhere
 * returns -ENOMEM and leaves the rule set as it was before the failing rule
 * (but for literals it may have added to the literal index, which no rule
 * refers to and which only ever mark unused groups).
 *
 * The literal index (sigma_int.h): adding a rule turns its literal groups
 * into atoms, deduplicated through a chained hash table keyed by field and
 * first bytes, with the filters the matcher's field scan reads (a bit per
 * hash, per first byte pair, per one-byte atom); each atom keeps the list
 * of groups it is in, and the rule's groups go to one flat array.
 */
#include "sigma_int.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_FILE  (1u << 20)    /* a Sigma rule is a few KiB */
#define MAX_DEPTH 16

const char *sigma_level_name(int level) {
    static const char *names[] = {"informational", "low", "medium", "high", "critical"};
    return level >= 0 && level < 5 ? names[level] : "?";
}

static void *pc_malloc(size_t n, void *data) { (void)data; return nj_malloc(n); }
static void  pc_free(void *p, void *data) { (void)data; nj_free(p); }

sigma_rules *sigma_rules_new(int *err) {
    sigma_rules *rs = nj_calloc(1, sizeof *rs);
    if (!rs) goto err;
    rs->gctx = pcre2_general_context_create(pc_malloc, pc_free, NULL);
    rs->mgctx = pcre2_general_context_create(sj_md_alloc, sj_md_free, NULL);
    if (!rs->gctx || !rs->mgctx) goto err;
    rs->mctx = pcre2_match_context_create(rs->gctx);
    if (!rs->mctx) goto err;
    /* Bounds for interpreted (non-JIT) matching: regexes come from rule
     * files, and a pathological one must not stall the pipeline. */
    pcre2_set_match_limit(rs->mctx, 100000);
    pcre2_set_depth_limit(rs->mctx, 1000);
    pcre2_set_heap_limit(rs->mctx, 24);
    if (sj_field(rs, "", 0) != 0) goto err;
    if (err) *err = 0;
    return rs;
err:
    sigma_rules_free(rs);
    if (err) *err = -ENOMEM;
    nj_set_error("out of memory creating a Sigma rule set");
    return NULL;
}

static void rule_free(sj_rule *r) {
    if (!r) return;
    for (sj_val *v = r->res; v; v = v->next_re) pcre2_code_free(v->re);
    sj_arena_free(&r->arena);
    nj_free(r);
}

void sigma_rules_free(sigma_rules *rs) {
    if (!rs) return;
    for (int i = 0; i < rs->nrule; i++) rule_free(rs->rule[i]);
    nj_free(rs->rule);
    for (int i = 0; i < rs->nskip; i++) {
        nj_free((char *)rs->skip[i].file);
        nj_free((char *)rs->skip[i].reason);
    }
    nj_free(rs->skip);
    for (int i = 0; i < rs->nfield; i++) nj_free(rs->field[i]);
    nj_free(rs->field);
    for (int i = 0; i < rs->nbucket; i++) {
        nj_free(rs->bucket[i].rules);
        nj_free(rs->bucket[i].pre);
    }
    nj_free(rs->bucket);
    nj_free(rs->atom);
    nj_free(rs->ahead);
    nj_free(rs->occ);
    nj_free(rs->gdata);
    nj_free(rs->fieldk);
    sj_arena_free(&rs->atom_arena);
    if (rs->mctx) pcre2_match_context_free(rs->mctx);
    if (rs->gctx) pcre2_general_context_free(rs->gctx);
    if (rs->mgctx) pcre2_general_context_free(rs->mgctx);
    nj_free(rs);
}

/* Grow *P (element size SZ) so that index N fits. */
static int grow(void **p, int *cap, int n, size_t sz) {
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    void *q = nj_realloc(*p, (size_t)nc * sz);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

int sj_field(sigma_rules *rs, const char *name, size_t n) {
    for (int i = 0; i < rs->nfield; i++)
        if (strlen(rs->field[i]) == n && !memcmp(rs->field[i], name, n)) return i;
    if (grow((void **)&rs->field, &rs->capfield, rs->nfield, sizeof(char *))) return -ENOMEM;
    char *s = nj_strndup(name, n);
    if (!s) return -ENOMEM;
    rs->field[rs->nfield] = s;
    return rs->nfield++;
}

static int add_skip(sigma_rules *rs, const char *file, const char *reason) {
    if (grow((void **)&rs->skip, &rs->capskip, rs->nskip, sizeof(sigma_skip))) return -ENOMEM;
    char *f = nj_strdup(file), *r = nj_strdup(reason);
    if (!f || !r) { nj_free(f); nj_free(r); return -ENOMEM; }
    rs->skip[rs->nskip].file = f;
    rs->skip[rs->nskip].reason = r;
    rs->nskip++;
    return 0;
}

/* The atom for literal (FIELD, S, N), added if new.  Returns its number,
 * -1 when the set is full (SJ_ATOM_MAX: the rule goes without its literal
 * prefilter), or -ENOMEM. */
static int atom_of(sigma_rules *rs, int field, const char *s, uint32_t n) {
    unsigned k = n < 4 ? n : 4;
    uint32_t key = sj_key((const unsigned char *)s, k);
    uint32_t h = sj_atom_hash(field, k, key);
    if (rs->ahead)
        for (int i = rs->ahead[h & rs->ahmask]; i >= 0; i = rs->atom[i].next) {
            const sj_atom *a = &rs->atom[i];
            if (a->field == field && a->n == n && !memcmp(a->s, s, n)) return i;
        }
    if (rs->natom >= SJ_ATOM_MAX) return -1;
    if (grow((void **)&rs->atom, &rs->capatom, rs->natom, sizeof(sj_atom))) return -ENOMEM;
    if (field >= rs->capfieldk) {
        int cap = rs->capfieldk;
        while (cap <= field) cap = cap ? cap * 2 : 64;
        uint8_t *fk = nj_realloc(rs->fieldk, (size_t)cap);
        if (!fk) return -ENOMEM;
        memset(fk + rs->capfieldk, 0, (size_t)(cap - rs->capfieldk));
        rs->fieldk = fk;
        rs->capfieldk = cap;
    }
    if ((uint32_t)rs->natom + 1 > (rs->ahead ? (rs->ahmask + 1) / 2 : 0)) {
        /* Rehash into twice the heads (load factor at most one half). */
        uint32_t nh = rs->ahead ? (rs->ahmask + 1) * 2 : 1024;
        int *heads = nj_malloc(sizeof(int) * nh);
        if (!heads) return -ENOMEM;
        for (uint32_t i = 0; i < nh; i++) heads[i] = -1;
        for (int i = 0; i < rs->natom; i++) {
            sj_atom *a = &rs->atom[i];
            uint32_t j = sj_atom_hash(a->field, a->k, a->key) & (nh - 1);
            a->next = heads[j];
            heads[j] = i;
        }
        nj_free(rs->ahead);
        rs->ahead = heads;
        rs->ahmask = nh - 1;
    }
    char *copy = sj_strndup(&rs->atom_arena, s, n);
    if (!copy) return -ENOMEM;
    sj_atom *a = &rs->atom[rs->natom];
    a->field = field;
    a->n = n;
    a->key = key;
    a->k = (uint8_t)k;
    a->s = copy;
    a->occ = -1;
    a->next = rs->ahead[h & rs->ahmask];
    rs->ahead[h & rs->ahmask] = rs->natom;
    uint32_t fb = h >> 16;                   /* filter bit: other bits than the chain's */
    rs->afilter[fb >> 6] |= (uint64_t)1 << (fb & 63);
    rs->fieldk[field] |= (uint8_t)(1u << (k - 1));
    if (n == 1) {
        unsigned c = (unsigned char)s[0];
        rs->aone[c >> 6] |= (uint64_t)1 << (c & 63);
    }
    if (n >= 2) {
        unsigned pr = (unsigned char)s[0] | (unsigned)(unsigned char)s[1] << 8;
        rs->apair[pr >> 6] |= (uint64_t)1 << (pr & 63);
    }
    return rs->natom++;
}

/* Turn R's literal groups into numbered groups of atoms, appended to
 * rs->gdata (r->pre.groups says where), each atom noting the group.  Leaves
 * r->pre.groups at -1 when the rule has no literals or the set is out of
 * atoms or groups.  -ENOMEM or 0. */
static int rule_groups(sigma_rules *rs, sj_rule *r) {
    r->pre.groups = -1;
    if (r->nlgroup == 0 || rs->ngroup + r->nlgroup > SJ_GROUP_MAX) return 0;
    int total = 0;
    for (int g = 0; g < r->nlgroup; g++) total += r->lgn[g];
    /* At most: the count, and per group its number, the field mask, the
     * count of further fields and those fields. */
    int need = 1 + 4 * r->nlgroup + total;
    if (rs->ngdata + need > rs->capgdata) {
        int cap = rs->capgdata ? rs->capgdata : 1024;
        while (cap < rs->ngdata + need) cap *= 2;
        int *q = nj_realloc(rs->gdata, sizeof(int) * (size_t)cap);
        if (!q) return -ENOMEM;
        rs->gdata = q;
        rs->capgdata = cap;
    }
    int *p = rs->gdata + rs->ngdata;
    /* The numbers are taken now, whatever happens below: a group number
     * that atoms already point at is never given to another rule. */
    int first = rs->ngroup, w = 0, l = 0;
    rs->ngroup += r->nlgroup;
    p[w++] = r->nlgroup;
    for (int g = 0; g < r->nlgroup; g++) {
        int gid = first + g;
        p[w++] = gid;
        uint64_t fm = 0;
        int fmw = w;
        w += 2;
        int nfw = w++;
        p[nfw] = 0;
        for (int j = 0; j < r->lgn[g]; j++, l++) {
            const sj_lit *lit = &r->lit[l];
            int id = atom_of(rs, lit->field, lit->s, lit->n);
            if (id == -ENOMEM) return id;
            if (id < 0) return 0;
            if (grow((void **)&rs->occ, &rs->capocc, rs->nocc, sizeof(sj_occ))) return -ENOMEM;
            rs->occ[rs->nocc].group = gid;
            rs->occ[rs->nocc].next = rs->atom[id].occ;
            rs->atom[id].occ = rs->nocc++;
            if (lit->field < 64) {
                fm |= (uint64_t)1 << lit->field;
                continue;
            }
            int seen = 0;
            for (int k = 0; k < p[nfw] && !seen; k++) seen = p[nfw + 1 + k] == lit->field;
            if (!seen) { p[w++] = lit->field; p[nfw]++; }
        }
        p[fmw] = (int)(uint32_t)fm;
        p[fmw + 1] = (int)(uint32_t)(fm >> 32);
    }
    r->pre.groups = rs->ngdata;
    rs->ngdata += w;
    return 0;
}

/* Append rule R (already compiled) and index it by logsource. */
static int add_rule(sigma_rules *rs, sj_rule *r) {
    if (grow((void **)&rs->rule, &rs->caprule, rs->nrule, sizeof(sj_rule *))) return -ENOMEM;
    if (rule_groups(rs, r)) return -ENOMEM;
    const sigma_rule_info *in = &r->info;
    sj_bucket *b = NULL;
    for (int i = 0; i < rs->nbucket; i++)
        if (!strcmp(rs->bucket[i].product, in->product) && !strcmp(rs->bucket[i].category, in->category) &&
            !strcmp(rs->bucket[i].service, in->service))
            b = &rs->bucket[i];
    if (!b) {
        if (grow((void **)&rs->bucket, &rs->capbucket, rs->nbucket, sizeof(sj_bucket))) return -ENOMEM;
        b = &rs->bucket[rs->nbucket];
        memset(b, 0, sizeof *b);
        /* The strings live in the first rule's arena, which lives as long. */
        b->product = in->product;
        b->category = in->category;
        b->service = in->service;
        rs->nbucket++;
    }
    if (b->n >= b->cap) {
        int cap = b->cap;
        if (grow((void **)&b->rules, &cap, b->n, sizeof(int))) return -ENOMEM;
        sj_hot *p = nj_realloc(b->pre, (size_t)cap * sizeof(sj_hot));
        if (!p) return -ENOMEM;       /* rules grew; cap stays, so it grows again next time */
        b->pre = p;
        b->cap = cap;
    }
    sj_hot *h = &b->pre[b->n];
    h->field = r->pre.field;
    h->has_first = r->pre.has_first;
    h->has_last = r->pre.has_last;
    h->nalt = r->pre.nalt;
    h->groups = r->pre.groups;
    memcpy(h->first, r->pre.first, sizeof h->first);
    memcpy(h->last, r->pre.last, sizeof h->last);
    b->rules[b->n++] = rs->nrule;
    rs->rule[rs->nrule++] = r;
    return 0;
}

int sigma_load_text(sigma_rules *rs, const char *name, const char *text, size_t len) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return nj_fail(-ENOMEM, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int added = 0, rc = 0, ndoc = 0;
    char why[256];
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                rc = nj_fail(-ENOMEM, "out of memory parsing %s", name);
                break;
            }
            snprintf(why, sizeof why, "YAML error at line %zu, column %zu: %s%s%s",
                     parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "syntax error",
                     parser.context ? " " : "", parser.context ? parser.context : "");
            rc = add_skip(rs, name, why);
            if (rc) { nj_set_error("out of memory"); break; }
            rc = nj_fail(NJ_EFORMAT, "%s: %s", name, why);
            break;
        }
        if (!yaml_document_get_root_node(&doc)) {     /* end of stream */
            yaml_document_delete(&doc);
            if (ndoc == 0) {
                rc = add_skip(rs, name, "empty file");
                if (rc) nj_set_error("out of memory");
            }
            break;
        }
        ndoc++;
        sj_rule *r = nj_calloc(1, sizeof *r);
        if (!r) { yaml_document_delete(&doc); rc = nj_fail(-ENOMEM, "out of memory"); break; }
        why[0] = 0;
        int c = sj_compile(rs, r, &doc, why, sizeof why);
        yaml_document_delete(&doc);
        if (c == 0) {
            r->info.file = sj_strndup(&r->arena, name, strlen(name));
            if (!r->info.file) c = -ENOMEM;
        }
        if (c == 0) {
            if (add_rule(rs, r)) { rule_free(r); rc = nj_fail(-ENOMEM, "out of memory"); break; }
            added++;
            continue;
        }
        rule_free(r);
        if (c < 0) { rc = nj_fail(-ENOMEM, "out of memory compiling a rule of %s", name); break; }
        if (ndoc > 1) {
            size_t l = strlen(why);
            snprintf(why + l, sizeof why - l, " (document %d)", ndoc);
        }
        if (add_skip(rs, name, why)) { rc = nj_fail(-ENOMEM, "out of memory"); break; }
    }
    yaml_parser_delete(&parser);
    return rc ? rc : added;
}

/* Read a whole file (bounded by MAX_FILE).  *OUT is nj_malloc'd, sized to
 * the file (a file that grows while read is cut at its size when opened). */
static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return nj_fail(-errno, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return nj_fail(-EINVAL, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > MAX_FILE) {
        fclose(f);
        return nj_fail(NJ_ETOOBIG, "%s is larger than %u bytes", path, MAX_FILE);
    }
    size_t size = (size_t)st.st_size;
    char *buf = nj_malloc(size + 1);
    if (!buf) { fclose(f); return nj_fail(-ENOMEM, "out of memory reading %s", path); }
    size_t n = fread(buf, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) { nj_free(buf); return nj_fail(-EIO, "cannot read %s", path); }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static int load_file(sigma_rules *rs, const char *path) {
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len);
    if (rc) return rc;
    rc = sigma_load_text(rs, path, text, len);
    nj_free(text);
    return rc;
}

static int has_ext(const char *name) {
    size_t n = strlen(name);
    return (n > 4 && !strcmp(name + n - 4, ".yml")) || (n > 5 && !strcmp(name + n - 5, ".yaml"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The directories from the top of a walk down to the current one, so that a
 * symlink back to an ancestor is noticed instead of loaded again. */
typedef struct walk {
    dev_t dev[MAX_DEPTH + 2];
    ino_t ino[MAX_DEPTH + 2];
    int n;
} walk;

/* Load every rule file below DIR; file problems become skips.  Returns 0 or
 * a negative code (-ENOMEM; or why the top directory cannot be read). */
static int load_dir(sigma_rules *rs, const char *dir, walk *w) {
    int depth = w->n;
    struct stat ds;
    if (stat(dir, &ds)) return depth == 0 ? nj_fail(-errno, "cannot read %s: %s", dir, strerror(errno))
                                          : add_skip(rs, dir, "cannot read directory");
    for (int i = 0; i < w->n; i++)
        if (w->dev[i] == ds.st_dev && w->ino[i] == ds.st_ino)
            return add_skip(rs, dir, "directory loop (a link back to a parent directory)");
    if (depth > MAX_DEPTH) return add_skip(rs, dir, "directory nesting too deep");
    DIR *d = opendir(dir);
    if (!d) return depth == 0 ? nj_fail(-errno, "cannot open %s: %s", dir, strerror(errno))
                              : add_skip(rs, dir, "cannot open directory");
    w->dev[w->n] = ds.st_dev;
    w->ino[w->n] = ds.st_ino;
    w->n++;
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (grow((void **)&names, &cap, n, sizeof(char *))) { rc = -ENOMEM; break; }
        if (!(names[n] = nj_strdup(e->d_name))) { rc = -ENOMEM; break; }
        n++;
    }
    closedir(d);
    if (!rc) qsort(names, (size_t)n, sizeof(char *), cmp_str);
    for (int i = 0; i < n && !rc; i++) {
        size_t l = strlen(dir) + strlen(names[i]) + 2;
        char *p = nj_malloc(l);
        if (!p) { rc = -ENOMEM; break; }
        snprintf(p, l, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            int r = load_dir(rs, p, w);
            if (r < 0) rc = r;
        } else if (has_ext(names[i])) {
            int r = load_file(rs, p);
            if (r == -ENOMEM) rc = r;
            else if (r < 0 && r != NJ_EFORMAT && add_skip(rs, p, nj_last_error())) rc = -ENOMEM;
        }
        nj_free(p);
    }
    w->n--;
    for (int i = 0; i < n; i++) nj_free(names[i]);
    nj_free(names);
    if (rc == -ENOMEM) return nj_fail(rc, "out of memory loading rules from %s", dir);
    return rc;
}

int sigma_load_path(sigma_rules *rs, const char *path) {
    struct stat st;
    if (stat(path, &st)) return nj_fail(-errno, "cannot read %s: %s", path, strerror(errno));
    int before = rs->nrule;
    if (S_ISDIR(st.st_mode)) {
        walk w;
        w.n = 0;
        int rc = load_dir(rs, path, &w);
        return rc < 0 ? rc : rs->nrule - before;
    }
    return load_file(rs, path);
}

int sigma_rule_count(const sigma_rules *rs) { return rs->nrule; }

const sigma_rule_info *sigma_rule(const sigma_rules *rs, int i) {
    return i >= 0 && i < rs->nrule ? &rs->rule[i]->info : NULL;
}

int sigma_skip_count(const sigma_rules *rs) { return rs->nskip; }

const sigma_skip *sigma_skip_at(const sigma_rules *rs, int i) {
    return i >= 0 && i < rs->nskip ? &rs->skip[i] : NULL;
}
