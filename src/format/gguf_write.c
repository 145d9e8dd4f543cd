/*
 * gguf_write — GGUF v3 writer.  See gguf_write.h for the format and the
 * two-phase protocol (describe, then stream data).
 *
 * Each key/value is kept as its serialized payload (the bytes after the
 * u32 type), built once when set, so writing the header is a loop of
 * fwrite()s and replacing a key is swapping one buffer.  Tensor offsets are
 * assigned when the file is opened: tensor i starts at the sum of the
 * previous sizes, each rounded up to the alignment.
 */
#include "gguf_write.h"
#include "quant.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "gguf_write assumes a little-endian host");

typedef struct wkv {
    char    *key;
    size_t   klen;
    uint32_t type;
    uint8_t *val;      /* serialized payload */
    size_t   vlen;
} wkv;

typedef struct wtensor {
    char     name[GGUF_WRITE_MAX_NAME + 1];
    uint32_t n_dims;
    int64_t  ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t nbytes;
    uint64_t offset;   /* assigned at open */
} wtensor;

struct gguf_writer {
    wkv      *kv;
    uint64_t  n_kv, cap_kv;
    wtensor  *t;
    uint64_t  n_t, cap_t;
    uint64_t  alignment;
    /* output state */
    FILE     *fp;
    bool      own_fp, opened, finished, failed;
    char     *path, *part;
    uint64_t  cur;        /* tensor being written */
    uint64_t  cur_done;   /* bytes of it written */
};

/* ---- small growable byte buffer for serializing values ---- */
typedef struct bb { uint8_t *p; size_t n, cap; bool oom; } bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->oom || n == 0) return;
    if (n > SIZE_MAX - b->n) { b->oom = true; return; }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap = cap > SIZE_MAX / 2 ? b->n + n : cap * 2;
        uint8_t *q = nj_realloc(b->p, cap);
        if (!q) { b->oom = true; return; }
        b->p = q; b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s, uint64_t n) { bb_u64(b, n); bb_put(b, s, (size_t)n); }

gguf_writer *gguf_writer_new(int *err) {
    gguf_writer *w = nj_calloc(1, sizeof *w);
    if (!w) {
        if (err) *err = nj_fail(-ENOMEM, "gguf_write: out of memory");
        return NULL;
    }
    w->alignment = 32;
    if (err) *err = 0;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    if (w->fp && w->own_fp) fclose(w->fp);
    if (w->part && !w->finished) unlink(w->part);
    for (uint64_t i = 0; i < w->n_kv; i++) { nj_free(w->kv[i].key); nj_free(w->kv[i].val); }
    nj_free(w->kv);
    nj_free(w->t);
    nj_free(w->path);
    nj_free(w->part);
    nj_free(w);
}

static int check_describing(gguf_writer *w) {
    if (w->opened) return nj_fail(NJ_ESTATE, "gguf_write: metadata and tensors must be set before gguf_writer_open");
    return 0;
}

static int64_t find_kv(const gguf_writer *w, const char *key, size_t klen) {
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (w->kv[i].klen == klen && memcmp(w->kv[i].key, key, klen) == 0) return (int64_t)i;
    return -1;
}

/* Take ownership of a serialized payload and store it under key. */
static int put_kv(gguf_writer *w, const char *key, size_t klen, uint32_t type, bb *val) {
    int rc = check_describing(w);
    if (rc) { nj_free(val->p); return rc; }
    if (val->oom) { nj_free(val->p); return nj_fail(-ENOMEM, "gguf_write: out of memory for key value"); }
    if (klen == 0) { nj_free(val->p); return nj_fail(-EINVAL, "gguf_write: empty key"); }
    if (!val->p) {   /* empty payload (e.g. empty string never happens: len is serialized) */
        val->p = nj_malloc(1);
        if (!val->p) return nj_fail(-ENOMEM, "gguf_write: out of memory");
    }
    int64_t i = find_kv(w, key, klen);
    if (i >= 0) {
        nj_free(w->kv[i].val);
        w->kv[i].type = type;
        w->kv[i].val = val->p;
        w->kv[i].vlen = val->n;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        uint64_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *n = nj_realloc(w->kv, (size_t)cap * sizeof *n);
        if (!n) { nj_free(val->p); return nj_fail(-ENOMEM, "gguf_write: out of memory"); }
        w->kv = n; w->cap_kv = cap;
    }
    char *k = nj_strndup(key, klen);
    if (!k) { nj_free(val->p); return nj_fail(-ENOMEM, "gguf_write: out of memory"); }
    w->kv[w->n_kv++] = (wkv){.key = k, .klen = klen, .type = type, .val = val->p, .vlen = val->n};
    return 0;
}

static int set_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v) {
    bb b = {0};
    bb_put(&b, v, gguf_vtype_size(type));
    return put_kv(w, key, strlen(key), type, &b);
}

int gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v)   { return set_scalar(w, key, GGUF_T_UINT8, &v); }
int gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v)    { return set_scalar(w, key, GGUF_T_INT8, &v); }
int gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, GGUF_T_UINT16, &v); }
int gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v)  { return set_scalar(w, key, GGUF_T_INT16, &v); }
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v)  { return set_scalar(w, key, GGUF_T_INT32, &v); }
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v)    { return set_scalar(w, key, GGUF_T_FLOAT32, &v); }
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, GGUF_T_UINT64, &v); }
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v)  { return set_scalar(w, key, GGUF_T_INT64, &v); }
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v)   { return set_scalar(w, key, GGUF_T_FLOAT64, &v); }
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_T_BOOL, &b);
}

/* general.alignment steers the layout, so it is validated here. */
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    if (strcmp(key, "general.alignment") == 0) {
        if (v == 0 || (v & (v - 1)) || v > 65536)
            return nj_fail(-EINVAL, "gguf_write: general.alignment must be a power of two <= 65536 (got %u)", v);
        int rc = check_describing(w);
        if (rc) return rc;
        w->alignment = v;
    }
    return set_scalar(w, key, GGUF_T_UINT32, &v);
}

int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len) {
    bb b = {0};
    bb_str(&b, s, len);
    return put_kv(w, key, strlen(key), GGUF_T_STRING, &b);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s) {
    return gguf_writer_set_strn(w, key, s, strlen(s));
}

static int arr_checked(gguf_writer *w, const char *key, size_t klen, uint32_t et, const void *data, uint64_t n) {
    size_t es = gguf_vtype_size(et);
    if (!es) return nj_fail(-EINVAL, "gguf_write: array '%s' has element type %u (use the string-array setter for strings)", key, et);
    uint64_t bytes;
    if (!nj_mul_ok(n, es, &bytes) || bytes > SIZE_MAX) return nj_fail(-EINVAL, "gguf_write: array '%s' too large", key);
    if (et == GGUF_T_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1) return nj_fail(-EINVAL, "gguf_write: bool array '%s' holds a value other than 0/1", key);
    bb b = {0};
    bb_u32(&b, et);
    bb_u64(&b, n);
    bb_put(&b, data, (size_t)bytes);
    return put_kv(w, key, klen, GGUF_T_ARRAY, &b);
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t et, const void *data, uint64_t n) {
    return arr_checked(w, key, strlen(key), et, data, n);
}

static int arr_str(gguf_writer *w, const char *key, size_t klen, const gguf_str *strs,
                   const char *const *cstrs, uint64_t n) {
    bb b = {0};
    bb_u32(&b, GGUF_T_STRING);
    bb_u64(&b, n);
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        if (strs) bb_str(&b, strs[i].ptr, strs[i].len);
        else bb_str(&b, cstrs[i], strlen(cstrs[i]));
    }
    return put_kv(w, key, klen, GGUF_T_ARRAY, &b);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n) {
    return arr_str(w, key, strlen(key), strs, NULL, n);
}

int gguf_writer_set_arr_cstr(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    return arr_str(w, key, strlen(key), NULL, strs, n);
}

int gguf_writer_set_kv(gguf_writer *w, const gguf_kv *kv) {
    const char *k = kv->key.ptr;
    size_t kl = (size_t)kv->key.len;
    bb b = {0};
    switch (kv->type) {
    case GGUF_T_STRING:
        bb_str(&b, kv->v.str.ptr, kv->v.str.len);
        return put_kv(w, k, kl, GGUF_T_STRING, &b);
    case GGUF_T_ARRAY:
        if (kv->v.arr.type == GGUF_T_STRING) return arr_str(w, k, kl, kv->v.arr.strs, NULL, kv->v.arr.n);
        return arr_checked(w, k, kl, kv->v.arr.type, kv->v.arr.data, kv->v.arr.n);
    case GGUF_T_UINT8: case GGUF_T_UINT16: case GGUF_T_UINT32: case GGUF_T_UINT64: {
        uint64_t v = kv->v.u64;            /* little-endian: the low bytes */
        if (kv->type == GGUF_T_UINT32 && gguf_str_eq(kv->key, "general.alignment")) {
            if (v == 0 || (v & (v - 1)) || v > 65536) return nj_fail(-EINVAL, "gguf_write: bad general.alignment %llu", (unsigned long long)v);
            if (!w->opened) w->alignment = v;
        }
        bb_put(&b, &v, gguf_vtype_size(kv->type));
        return put_kv(w, k, kl, kv->type, &b);
    }
    case GGUF_T_INT8: case GGUF_T_INT16: case GGUF_T_INT32: case GGUF_T_INT64: {
        int64_t v = kv->v.i64;             /* two's complement truncation keeps the value */
        bb_put(&b, &v, gguf_vtype_size(kv->type));
        return put_kv(w, k, kl, kv->type, &b);
    }
    case GGUF_T_FLOAT32: { float v = (float)kv->v.f64; bb_put(&b, &v, 4); return put_kv(w, k, kl, kv->type, &b); }
    case GGUF_T_FLOAT64: { double v = kv->v.f64; bb_put(&b, &v, 8); return put_kv(w, k, kl, kv->type, &b); }
    case GGUF_T_BOOL: { uint8_t v = kv->v.b ? 1 : 0; bb_put(&b, &v, 1); return put_kv(w, k, kl, kv->type, &b); }
    default:
        return nj_fail(-EINVAL, "gguf_write: cannot copy key '%.*s' of type %u", (int)NJ_MIN(kl, 200), k, kv->type);
    }
}

int gguf_writer_unset(gguf_writer *w, const char *key) {
    int rc = check_describing(w);
    if (rc) return rc;
    int64_t i = find_kv(w, key, strlen(key));
    if (i < 0) return 0;
    if (strcmp(key, "general.alignment") == 0) w->alignment = 32;
    nj_free(w->kv[i].key);
    nj_free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->n_kv - (uint64_t)i - 1) * sizeof *w->kv);
    w->n_kv--;
    return 0;
}

uint64_t gguf_writer_n_kv(const gguf_writer *w) { return w->n_kv; }
uint64_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_t; }
uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, uint64_t i) { return i < w->n_t ? w->t[i].nbytes : 0; }
uint64_t gguf_writer_cur_tensor(const gguf_writer *w) { return w->cur; }

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims,
                           const int64_t *ne, uint32_t type) {
    int rc = check_describing(w);
    if (rc) return rc;
    size_t nl = strlen(name);
    if (nl == 0 || nl > GGUF_WRITE_MAX_NAME)
        return nj_fail(-EINVAL, "gguf_write: tensor name '%s' must be 1..%d bytes", name, GGUF_WRITE_MAX_NAME);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return nj_fail(-EINVAL, "gguf_write: tensor '%s': %u dimensions (1..4 allowed)", name, n_dims);
    const nj_type_traits *tt = quant_traits_ref((int)type);
    if (!tt) return nj_fail(-EINVAL, "gguf_write: tensor '%s': unknown type id %u", name, type);
    for (uint64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return nj_fail(-EINVAL, "gguf_write: duplicate tensor name '%s'", name);
    wtensor t = {.n_dims = n_dims, .type = type};
    memcpy(t.name, name, nl + 1);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        int64_t x = d < n_dims ? ne[d] : 1;
        if (x <= 0 || !nj_mul_ok(nel, (uint64_t)x, &nel))
            return nj_fail(-EINVAL, "gguf_write: tensor '%s': bad dimension %u = %lld", name, d, (long long)x);
        t.ne[d] = x;
    }
    if (t.ne[0] % tt->blck)
        return nj_fail(-EINVAL, "gguf_write: tensor '%s': row of %lld is not a multiple of %s's block %d",
                       name, (long long)t.ne[0], tt->name, tt->blck);
    if (!nj_mul_ok(nel / (uint64_t)tt->blck, tt->size, &t.nbytes))
        return nj_fail(-EINVAL, "gguf_write: tensor '%s': byte size overflows", name);
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *n = nj_realloc(w->t, (size_t)cap * sizeof *n);
        if (!n) return nj_fail(-ENOMEM, "gguf_write: out of memory");
        w->t = n; w->cap_t = cap;
    }
    w->t[w->n_t] = t;
    return (int)w->n_t++;
}

/* ---- output ---- */

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int wr(gguf_writer *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->fp) != n) {
        int e = errno ? -errno : -EIO;
        w->failed = true;
        return nj_fail(e, "gguf_write: write to %s failed: %s", w->part ? w->part : "stream", strerror(-e));
    }
    return 0;
}

static int wr_zeros(gguf_writer *w, uint64_t n) {
    static const uint8_t z[256];
    while (n) {
        size_t k = (size_t)NJ_MIN(n, sizeof z);
        int rc = wr(w, z, k);
        if (rc) return rc;
        n -= k;
    }
    return 0;
}

/* After a tensor's last byte: pad it and move to the next. */
static int next_tensor(gguf_writer *w) {
    uint64_t n = w->t[w->cur].nbytes;
    int rc = wr_zeros(w, pad_to(n, w->alignment) - n);
    w->cur++;
    w->cur_done = 0;
    return rc;
}

/* Zero-byte tensors cannot exist (dims >= 1), but keep the loop honest. */
static int skip_full(gguf_writer *w) {
    while (w->cur < w->n_t && w->cur_done == w->t[w->cur].nbytes) {
        int rc = next_tensor(w);
        if (rc) return rc;
    }
    return 0;
}

static int write_header(gguf_writer *w) {
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        if (!nj_add_ok(off, pad_to(w->t[i].nbytes, w->alignment), &off))
            return nj_fail(-EINVAL, "gguf_write: total tensor data overflows");
    }
    uint64_t pos = 0;
    int rc = 0;
    uint32_t version = 3;
    rc = rc ? rc : wr(w, "GGUF", 4);
    rc = rc ? rc : wr(w, &version, 4);
    rc = rc ? rc : wr(w, &w->n_t, 8);
    rc = rc ? rc : wr(w, &w->n_kv, 8);
    pos = 24;
    for (uint64_t i = 0; i < w->n_kv && !rc; i++) {
        const wkv *kv = &w->kv[i];
        uint64_t kl = kv->klen;
        rc = wr(w, &kl, 8);
        rc = rc ? rc : wr(w, kv->key, kv->klen);
        rc = rc ? rc : wr(w, &kv->type, 4);
        rc = rc ? rc : wr(w, kv->val, kv->vlen);
        pos += 8 + kv->klen + 4 + kv->vlen;
    }
    for (uint64_t i = 0; i < w->n_t && !rc; i++) {
        const wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        rc = wr(w, &nl, 8);
        rc = rc ? rc : wr(w, t->name, (size_t)nl);
        rc = rc ? rc : wr(w, &t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && !rc; d++) rc = wr(w, &t->ne[d], 8);
        rc = rc ? rc : wr(w, &t->type, 4);
        rc = rc ? rc : wr(w, &t->offset, 8);
        pos += 8 + nl + 4 + 8ull * t->n_dims + 4 + 8;
    }
    if (!rc) rc = wr_zeros(w, pad_to(pos, w->alignment) - pos);
    if (!rc) rc = skip_full(w);
    return rc;
}

int gguf_writer_open_fp(gguf_writer *w, FILE *fp) {
    int rc = check_describing(w);
    if (rc) return rc;
    w->fp = fp;
    w->own_fp = false;
    w->opened = true;
    return write_header(w);
}

int gguf_writer_open(gguf_writer *w, const char *path) {
    int rc = check_describing(w);
    if (rc) return rc;
    size_t n = strlen(path);
    w->path = nj_strdup(path);
    w->part = nj_malloc(n + 6);
    if (!w->path || !w->part) return nj_fail(-ENOMEM, "gguf_write: out of memory");
    memcpy(w->part, path, n);
    memcpy(w->part + n, ".part", 6);
    w->fp = fopen(w->part, "wb");
    if (!w->fp) {
        int e = -errno;
        nj_free(w->part); w->part = NULL;
        return nj_fail(e, "gguf_write: cannot create %s.part: %s", path, strerror(-e));
    }
    setvbuf(w->fp, NULL, _IOFBF, 1 << 20);
    w->own_fp = true;
    w->opened = true;
    return write_header(w);
}

int gguf_writer_write(gguf_writer *w, const void *data, size_t n) {
    if (!w->opened || w->finished) return nj_fail(NJ_ESTATE, "gguf_write: write outside open..finish");
    if (w->failed) return nj_fail(-EIO, "gguf_write: an earlier write failed");
    const uint8_t *p = data;
    while (n) {
        if (w->cur >= w->n_t)
            return nj_fail(-EINVAL, "gguf_write: %zu bytes of data beyond the last tensor", n);
        uint64_t room = w->t[w->cur].nbytes - w->cur_done;
        size_t k = (size_t)NJ_MIN((uint64_t)n, room);
        int rc = wr(w, p, k);
        if (rc) return rc;
        p += k; n -= k;
        w->cur_done += k;
        rc = skip_full(w);
        if (rc) return rc;
    }
    return 0;
}

int gguf_writer_finish(gguf_writer *w) {
    if (!w->opened || w->finished) return nj_fail(NJ_ESTATE, "gguf_write: finish without open (or twice)");
    if (w->cur < w->n_t)
        return nj_fail(-EINVAL, "gguf_write: tensor '%s' got %llu of %llu bytes", w->t[w->cur].name,
                       (unsigned long long)w->cur_done, (unsigned long long)w->t[w->cur].nbytes);
    if (w->failed) return nj_fail(-EIO, "gguf_write: an earlier write failed");
    if (fflush(w->fp)) { int e = -errno; return nj_fail(e, "gguf_write: flush failed: %s", strerror(-e)); }
    if (w->own_fp) {
        if (fsync(fileno(w->fp))) { int e = -errno; return nj_fail(e, "gguf_write: fsync %s: %s", w->part, strerror(-e)); }
        int c = fclose(w->fp);
        w->fp = NULL;
        if (c) { int e = -errno; return nj_fail(e, "gguf_write: close %s: %s", w->part, strerror(-e)); }
        if (rename(w->part, w->path)) {
            int e = -errno;
            return nj_fail(e, "gguf_write: rename %s -> %s: %s", w->part, w->path, strerror(-e));
        }
    }
    w->finished = true;
    return 0;
}

int gguf_writer_to_mem(gguf_writer *w, const void *const *data, void **out, size_t *len) {
    char *mp = NULL;
    size_t ml = 0;
    *out = NULL; *len = 0;
    FILE *fp = open_memstream(&mp, &ml);
    if (!fp) return nj_fail(-ENOMEM, "gguf_write: open_memstream failed");
    int rc = gguf_writer_open_fp(w, fp);
    for (uint64_t i = 0; i < w->n_t && !rc; i++) rc = gguf_writer_write(w, data[i], (size_t)w->t[i].nbytes);
    if (!rc) rc = gguf_writer_finish(w);
    fclose(fp);
    if (!rc) {
        *out = nj_malloc(ml ? ml : 1);
        if (!*out) rc = nj_fail(-ENOMEM, "gguf_write: out of memory");
        else { memcpy(*out, mp, ml); *len = ml; }
    }
    free(mp);
    return rc;
}
