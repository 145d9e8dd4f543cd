/*
 * kvfile — see kvfile.h for the format and the trust rules.  The reader
 * checks the header completely before it touches the session, reads the
 * payload straight into the cache rows (no second copy of up to hundreds
 * of MB), checks the payload checksum and the file's length, and only
 * then makes the rows part of the cache; on any failure the session is
 * left empty.
 */
#include "kvfile.h"

#include <stdio.h>
#include <string.h>

#include "model.h"
#include "session.h"
#include "util.h"

/* ---- hash ---- */

#define H_P1 0x9E3779B185EBCA87ull
#define H_P2 0xC2B2AE3D27D4EB4Full
#define H_P3 0x165667B19E3779F9ull

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;   /* host order: files are written and read on one machine */
}

/* One lane step: bijective in the lane for a fixed word and in the word
 * for a fixed lane, so a changed word always changes the lane. */
static inline uint64_t lane(uint64_t h, uint64_t w) { return rotl64(h + w * H_P2, 31) * H_P1; }

uint64_t kvfile_hash(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data;
    uint64_t a = seed + H_P1 + H_P2, b = seed + H_P2, c = seed, d = seed - H_P1;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a = lane(a, rd64(p + i));
        b = lane(b, rd64(p + i + 8));
        c = lane(c, rd64(p + i + 16));
        d = lane(d, rd64(p + i + 24));
    }
    uint64_t h = rotl64(a, 1) + rotl64(b, 7) + rotl64(c, 12) + rotl64(d, 18);
    h ^= lane(0, a); h = h * H_P1 + H_P3;
    h ^= lane(0, b); h = h * H_P1 + H_P3;
    h ^= lane(0, c); h = h * H_P1 + H_P3;
    h ^= lane(0, d); h = h * H_P1 + H_P3;
    h += (uint64_t)n;
    for (; i + 8 <= n; i += 8) h = rotl64(h ^ lane(0, rd64(p + i)), 27) * H_P1 + H_P3;
    for (; i < n; i++) h = rotl64(h ^ (p[i] * H_P3), 11) * H_P1;
    /* finalizer: every input bit reaches every output bit */
    h ^= h >> 33; h *= H_P2;
    h ^= h >> 29; h *= H_P3;
    h ^= h >> 32;
    return h;
}

/* ---- header ---- */

static const char magic[8] = {'N', 'J', 'K', 'V', 'P', 'F', 'X', 0};

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void expect_of(const nj_session *s, kvfile_expect *e, session_kv *kv) {
    const nj_model *m = session_model(s);
    session_kv_get(s, kv);
    e->model_bytes = m->file_bytes;
    e->model_id = m->file_id;
    e->kv_type = kv->kv_type;
    e->n_layer = m->hp.n_layer;
    e->n_head_kv = m->hp.n_head_kv;
    e->head_dim_k = m->hp.head_dim_k;
    e->head_dim_v = m->hp.head_dim_v;
    e->k_rb = (uint32_t)kv->k_rb;
    e->v_rb = (uint32_t)kv->v_rb;
    e->max_tokens = kv->n_ctx;
}

int kvfile_check_header(const uint8_t *h, size_t len, const kvfile_expect *e, uint64_t *payload) {
    if (len < 16 || memcmp(h, magic, 8))
        return nj_fail(NJ_EFORMAT, "not a prefix cache file (bad magic)");
    const uint32_t ver = get32(h + 8), hb = get32(h + 12);
    if (ver != KVFILE_VERSION)
        return nj_fail(NJ_EUNSUPPORTED, "prefix cache file version %u, this build reads version %d", ver,
                       KVFILE_VERSION);
    if (hb != KVFILE_HEADER || len < KVFILE_HEADER)
        return nj_fail(NJ_EFORMAT, "prefix cache header of %u bytes (%zu present), expected %d", hb, len,
                       KVFILE_HEADER);
    if (get64(h + 88) != kvfile_hash(h, 88, 0))
        return nj_fail(NJ_ECHECKSUM, "prefix cache header checksum mismatch");
    if (get64(h + 16) != e->model_bytes || get64(h + 24) != e->model_id)
        return nj_fail(NJ_ESTATE, "prefix cache written for another model file (%llu bytes, id %016llx; "
                       "this one: %llu bytes, id %016llx)", (unsigned long long)get64(h + 16),
                       (unsigned long long)get64(h + 24), (unsigned long long)e->model_bytes,
                       (unsigned long long)e->model_id);
    const int kv = (int)get32(h + 32);
    if (kv != e->kv_type) {
        const char *fn = nj_kv_type_name(kv);
        return nj_fail(NJ_ESTATE, "prefix cache holds a %s KV cache, the session's is %s", fn ? fn : "unknown",
                       nj_kv_type_name(e->kv_type));
    }
    if ((int)get32(h + 36) != e->n_layer || (int)get32(h + 40) != e->n_head_kv ||
        (int)get32(h + 44) != e->head_dim_k || (int)get32(h + 48) != e->head_dim_v ||
        get32(h + 52) != e->k_rb || get32(h + 56) != e->v_rb)
        return nj_fail(NJ_ESTATE, "prefix cache shape (%u layers, %u kv heads, head dims %u/%u) does not "
                       "match the model's", get32(h + 36), get32(h + 40), get32(h + 44), get32(h + 48));
    const uint32_t n = get32(h + 60);
    if (n < 1 || n > (uint32_t)e->max_tokens)
        return nj_fail(NJ_ESTATE, "prefix cache of %u tokens does not fit a context of %d", n, e->max_tokens);
    const uint64_t want = 4ull * n + (uint64_t)e->n_layer * n * ((uint64_t)e->k_rb + e->v_rb);
    if (get64(h + 64) != want)
        return nj_fail(NJ_EFORMAT, "prefix cache payload size %llu, expected %llu for %u tokens",
                       (unsigned long long)get64(h + 64), (unsigned long long)want, n);
    *payload = want;
    return (int)n;
}

/* ---- save ---- */

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -EIO; }

int nj_session_save_prefix(const nj_session *s, int n, const char *path) {
    if (!s || !path) return nj_fail(-EINVAL, "save_prefix: no session or path");
    kvfile_expect e;
    session_kv kv;
    expect_of(s, &e, &kv);
    if (n < 1 || n > kv.pos)
        return nj_fail(-EINVAL, "save_prefix: %d tokens asked, the cache holds %d", n, kv.pos);
    if (kv.k_rb > UINT32_MAX || kv.v_rb > UINT32_MAX) return nj_fail(NJ_ETOOBIG, "KV rows too large to save");
    /* payload checksum, in file order */
    uint64_t ck = kvfile_hash(kv.hist, 4u * (size_t)n, 0);
    for (int il = 0; il < kv.n_layer; il++) {
        ck = kvfile_hash(kv.k + (size_t)il * kv.n_ctx * kv.k_rb, (size_t)n * kv.k_rb, ck);
        ck = kvfile_hash(kv.v + (size_t)il * kv.n_ctx * kv.v_rb, (size_t)n * kv.v_rb, ck);
    }
    uint8_t h[KVFILE_HEADER] = {0};
    memcpy(h, magic, 8);
    put32(h + 8, KVFILE_VERSION);
    put32(h + 12, KVFILE_HEADER);
    put64(h + 16, e.model_bytes);
    put64(h + 24, e.model_id);
    put32(h + 32, (uint32_t)e.kv_type);
    put32(h + 36, (uint32_t)e.n_layer);
    put32(h + 40, (uint32_t)e.n_head_kv);
    put32(h + 44, (uint32_t)e.head_dim_k);
    put32(h + 48, (uint32_t)e.head_dim_v);
    put32(h + 52, e.k_rb);
    put32(h + 56, e.v_rb);
    put32(h + 60, (uint32_t)n);
    put64(h + 64, 4ull * (uint64_t)n + (uint64_t)kv.n_layer * (uint64_t)n * (kv.k_rb + kv.v_rb));
    put64(h + 72, ck);
    put64(h + 88, kvfile_hash(h, 88, 0));

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return nj_fail(-ENAMETOOLONG, "prefix cache path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return nj_fail(-errno, "cannot create %s: %s", tmp, strerror(errno));
    int rc = write_all(f, h, sizeof h);
    if (!rc) rc = write_all(f, kv.hist, 4u * (size_t)n);
    for (int il = 0; il < kv.n_layer && !rc; il++) {
        rc = write_all(f, kv.k + (size_t)il * kv.n_ctx * kv.k_rb, (size_t)n * kv.k_rb);
        if (!rc) rc = write_all(f, kv.v + (size_t)il * kv.n_ctx * kv.v_rb, (size_t)n * kv.v_rb);
    }
    if (fclose(f) != 0 && !rc) rc = -EIO;
    if (!rc && rename(tmp, path) != 0) rc = -errno;
    if (rc) {
        remove(tmp);
        return nj_fail(rc, "cannot write the prefix cache %s: %s", path, strerror(-rc));
    }
    return 0;
}

/* ---- load ---- */

int nj_session_load_prefix(nj_session *s, const char *path) {
    if (!s || !path) return nj_fail(-EINVAL, "load_prefix: no session or path");
    kvfile_expect e;
    session_kv kv;
    expect_of(s, &e, &kv);
    session_kv_set_pos(s, 0);   /* from here on, a failure leaves the session empty */
    FILE *f = fopen(path, "rb");
    if (!f) return nj_fail(-errno, "cannot open %s: %s", path, strerror(errno));
    uint8_t h[KVFILE_HEADER];
    const size_t got = fread(h, 1, sizeof h, f);
    uint64_t payload = 0;
    int n = kvfile_check_header(h, got, &e, &payload);
    if (n < 0) {
        fclose(f);
        char why[256];
        snprintf(why, sizeof why, "%s", nj_last_error());
        return nj_fail(n, "%s: %s", path, why);
    }
    int rc = 0;
    const char *what = NULL;
    /* ids first, into the history; checked against the vocabulary below */
    if (fread(kv.hist, 4, (size_t)n, f) != (size_t)n) what = "truncated";
    uint64_t ck = what ? 0 : kvfile_hash(kv.hist, 4u * (size_t)n, 0);
    for (int il = 0; il < kv.n_layer && !what; il++) {
        uint8_t *kr = kv.k + (size_t)il * kv.n_ctx * kv.k_rb, *vr = kv.v + (size_t)il * kv.n_ctx * kv.v_rb;
        if (fread(kr, kv.k_rb, (size_t)n, f) != (size_t)n || fread(vr, kv.v_rb, (size_t)n, f) != (size_t)n) {
            what = "truncated";
            break;
        }
        ck = kvfile_hash(kr, (size_t)n * kv.k_rb, ck);
        ck = kvfile_hash(vr, (size_t)n * kv.v_rb, ck);
    }
    if (!what && fgetc(f) != EOF) what = "longer than its header says";
    fclose(f);
    if (what) {
        rc = nj_fail(NJ_EFORMAT, "%s: prefix cache file is %s", path, what);
    } else if (ck != get64(h + 72)) {
        rc = nj_fail(NJ_ECHECKSUM, "%s: prefix cache payload checksum mismatch", path);
    } else {
        const int V = session_model(s)->hp.n_vocab;
        for (int i = 0; i < n && !rc; i++)
            if (kv.hist[i] < 0 || kv.hist[i] >= V)
                rc = nj_fail(NJ_EFORMAT, "%s: prefix cache token id %d out of range", path, kv.hist[i]);
    }
    if (rc) return rc;
    session_kv_set_pos(s, n);
    return n;
}
