/*
 * gguf — parser.  See gguf.h for the format and the ownership rules.
 *
 * Parsing is a single forward pass with a bounds-checked cursor (struct rd):
 * every read first asks `need(r, n)`, which fails cleanly when fewer than n
 * bytes remain.  Nothing is trusted: element counts are checked against the
 * bytes that could hold them *before* any allocation sized by them, so a
 * file claiming 2^60 keys fails fast instead of exhausting memory.  Tensor
 * extents are computed with overflow-checked multiplication and must lie
 * wholly inside the data section.
 */
#include "gguf.h"
#include "quant.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGN 32
#define GGUF_MAX_STR (1ull << 30)   /* no legitimate string is 1 GiB */

struct gguf_file {
    const uint8_t *base;
    size_t         size;
    bool           mapped;       /* we own an mmap of base..size */
    uint32_t       version;
    uint64_t       alignment;
    uint64_t       data_off;
    uint64_t       n_kv, n_tensors;
    gguf_kv       *kv;
    gguf_tensor   *tensors;
    gguf_str      *strpool;      /* backing for all string-array views */
};

typedef struct rd {
    const uint8_t *p;
    size_t         off, size;
} rd;

static bool need(rd *r, uint64_t n) { return n <= r->size - r->off; }

#define RD_SCALAR(name, type)                                   \
    static bool name(rd *r, type *out) {                        \
        if (!need(r, sizeof(type))) return false;               \
        memcpy(out, r->p + r->off, sizeof(type));               \
        r->off += sizeof(type);                                 \
        return true;                                            \
    }
RD_SCALAR(rd_u32, uint32_t)
RD_SCALAR(rd_u64, uint64_t)

static bool rd_str(rd *r, gguf_str *s) {
    uint64_t len;
    if (!rd_u64(r, &len)) return false;
    if (len > GGUF_MAX_STR || !need(r, len)) return false;
    s->ptr = (const char *)r->p + r->off;
    s->len = len;
    r->off += len;
    return true;
}

size_t gguf_vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: return 1;
    case GGUF_T_UINT16: case GGUF_T_INT16: return 2;
    case GGUF_T_UINT32: case GGUF_T_INT32: case GGUF_T_FLOAT32: return 4;
    case GGUF_T_UINT64: case GGUF_T_INT64: case GGUF_T_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_vtype_name(uint32_t t) {
    static const char *n[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                              "string", "array", "u64", "i64", "f64"};
    return t < GGUF_T_COUNT ? n[t] : "?";
}

bool gguf_is_mapped(const gguf_file *f) { return f && f->mapped; }

bool gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

/* Read one scalar of type t into kv->v (widened). */
static bool rd_scalar(rd *r, uint32_t t, gguf_kv *kv) {
    size_t n = gguf_vtype_size(t);
    if (!n || !need(r, n)) return false;
    const uint8_t *p = r->p + r->off;
    switch (t) {
    case GGUF_T_UINT8:  kv->v.u64 = p[0]; break;
    case GGUF_T_INT8:   kv->v.i64 = (int8_t)p[0]; break;
    case GGUF_T_BOOL:   if (p[0] > 1) return false; kv->v.b = p[0]; break;
    case GGUF_T_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u64 = x; break; }
    case GGUF_T_INT16:  { int16_t x;  memcpy(&x, p, 2); kv->v.i64 = x; break; }
    case GGUF_T_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u64 = x; break; }
    case GGUF_T_INT32:  { int32_t x;  memcpy(&x, p, 4); kv->v.i64 = x; break; }
    case GGUF_T_FLOAT32:{ float x;    memcpy(&x, p, 4); kv->v.f64 = x; break; }
    case GGUF_T_UINT64: { uint64_t x; memcpy(&x, p, 8); kv->v.u64 = x; break; }
    case GGUF_T_INT64:  { int64_t x;  memcpy(&x, p, 8); kv->v.i64 = x; break; }
    case GGUF_T_FLOAT64:{ double x;   memcpy(&x, p, 8); kv->v.f64 = x; break; }
    default: return false;
    }
    r->off += n;
    return true;
}

static int bad(const char *what, uint64_t a, uint64_t b) {
    return nj_fail(NJ_EFORMAT, "gguf: %s (%llu, %llu)", what,
                   (unsigned long long)a, (unsigned long long)b);
}

static int cmp_strp(const void *a, const void *b) {
    const gguf_str *x = *(const gguf_str *const *)a, *y = *(const gguf_str *const *)b;
    int c = memcmp(x->ptr, y->ptr, (size_t)NJ_MIN(x->len, y->len));
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Duplicate keys or tensor names make a file ambiguous (llama.cpp refuses
 * them too): sort views of the names and compare neighbours, O(n log n). */
static int check_unique(const gguf_str *first, size_t stride, uint64_t n, const char *what) {
    if (n < 2) return 0;
    const gguf_str **v = nj_malloc((size_t)n * sizeof *v);
    if (!v) return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) v[i] = (const gguf_str *)((const char *)first + i * stride);
    qsort(v, (size_t)n, sizeof *v, cmp_strp);
    int rc = 0;
    for (uint64_t i = 1; i < n && !rc; i++)
        if (cmp_strp(&v[i - 1], &v[i]) == 0)
            rc = nj_fail(NJ_EFORMAT, "gguf: duplicate %s '%.*s'", what, (int)NJ_MIN(v[i]->len, 200), v[i]->ptr);
    nj_free(v);
    return rc;
}

static int parse(gguf_file *f) {
    rd r = {f->base, 0, f->size};
    uint32_t magic;
    if (!rd_u32(&r, &magic)) return nj_fail(NJ_EFORMAT, "gguf: file too short for a header (%zu bytes)", f->size);
    if (memcmp(&magic, "GGUF", 4) != 0) return nj_fail(NJ_EFORMAT, "gguf: bad magic (not a GGUF file)");
    if (!rd_u32(&r, &f->version)) return nj_fail(NJ_EFORMAT, "gguf: truncated header (version)");
    if (f->version != 2 && f->version != 3)
        return nj_fail(NJ_EUNSUPPORTED, "gguf: version %u not supported (need 2 or 3)", f->version);
    if (!rd_u64(&r, &f->n_tensors) || !rd_u64(&r, &f->n_kv))
        return nj_fail(NJ_EFORMAT, "gguf: truncated header (counts)");
    /* Each kv needs >= 8+4 bytes and each tensor >= 8+4+4+8: bound the counts
     * by the bytes left before allocating anything sized by them. */
    uint64_t left = f->size - r.off;
    if (f->n_kv > left / 12) return bad("key/value count larger than the file can hold", f->n_kv, left);
    if (f->n_tensors > left / 24) return bad("tensor count larger than the file can hold", f->n_tensors, left);

    f->kv = nj_calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->tensors = nj_calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) return -ENOMEM;

    /* First pass over kvs: count string-array elements for one pool. */
    uint64_t n_arr_strs = 0;
    size_t kv_start = r.off;
    f->alignment = GGUF_DEFAULT_ALIGN;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        if (!rd_str(&r, &kv->key)) return nj_fail(NJ_EFORMAT, "gguf: truncated key #%llu", (unsigned long long)i);
        if (!rd_u32(&r, &kv->type)) return nj_fail(NJ_EFORMAT, "gguf: truncated type of key '%.*s'", (int)NJ_MIN(kv->key.len, 200), kv->key.ptr);
        if (kv->type == GGUF_T_STRING) {
            if (!rd_str(&r, &kv->v.str))
                return nj_fail(NJ_EFORMAT, "gguf: bad string value for key '%.*s'", (int)NJ_MIN(kv->key.len, 200), kv->key.ptr);
        } else if (kv->type == GGUF_T_ARRAY) {
            uint32_t et; uint64_t n;
            if (!rd_u32(&r, &et) || !rd_u64(&r, &n))
                return nj_fail(NJ_EFORMAT, "gguf: truncated array header for key '%.*s'", (int)NJ_MIN(kv->key.len, 200), kv->key.ptr);
            kv->v.arr.type = et;
            kv->v.arr.n = n;
            if (et == GGUF_T_STRING) {
                if (n > (r.size - r.off) / 8)
                    return nj_fail(NJ_EFORMAT, "gguf: string array '%.*s' claims %llu elements, more than the file holds", (int)NJ_MIN(kv->key.len, 200), kv->key.ptr, (unsigned long long)n);
                kv->v.arr.data = r.p + r.off;
                for (uint64_t j = 0; j < n; j++) {
                    gguf_str s;
                    if (!rd_str(&r, &s))
                        return nj_fail(NJ_EFORMAT, "gguf: string #%llu of array '%.*s' is truncated or too long", (unsigned long long)j, (int)NJ_MIN(kv->key.len, 200), kv->key.ptr);
                }
                if (!nj_add_ok(n_arr_strs, n, &n_arr_strs)) return bad("string array total overflows", n_arr_strs, n);
            } else {
                size_t es = gguf_vtype_size(et);
                uint64_t bytes;
                if (!es) return nj_fail(NJ_EFORMAT, "gguf: array '%.*s' has bad element type %u", (int)NJ_MIN(kv->key.len, 200), kv->key.ptr, et);
                if (!nj_mul_ok(n, es, &bytes) || !need(&r, bytes))
                    return nj_fail(NJ_EFORMAT, "gguf: array '%.*s' (%llu x %s) runs past the end of the file", (int)NJ_MIN(kv->key.len, 200), kv->key.ptr, (unsigned long long)n, gguf_vtype_name(et));
                kv->v.arr.data = r.p + r.off;
                r.off += bytes;
            }
        } else if (!rd_scalar(&r, kv->type, kv)) {
            return nj_fail(NJ_EFORMAT, "gguf: key '%.*s' has bad type %u or truncated value", (int)NJ_MIN(kv->key.len, 200), kv->key.ptr, kv->type);
        }
        if (gguf_str_eq(kv->key, "general.alignment")) {
            if (kv->type != GGUF_T_UINT32 || kv->v.u64 == 0 || (kv->v.u64 & (kv->v.u64 - 1)) || kv->v.u64 > 65536)
                return nj_fail(NJ_EFORMAT, "gguf: general.alignment must be a u32 power of two <= 65536");
            f->alignment = kv->v.u64;
        }
    }
    (void)kv_start;

    /* String-array views: one pool, filled by re-walking each array. */
    if (n_arr_strs) {
        f->strpool = nj_calloc(n_arr_strs, sizeof(gguf_str));
        if (!f->strpool) return -ENOMEM;
        uint64_t k = 0;
        for (uint64_t i = 0; i < f->n_kv; i++) {
            gguf_kv *kv = &f->kv[i];
            if (kv->type != GGUF_T_ARRAY || kv->v.arr.type != GGUF_T_STRING) continue;
            rd ar = {f->base, (size_t)((const uint8_t *)kv->v.arr.data - f->base), f->size};
            kv->v.arr.strs = &f->strpool[k];
            for (uint64_t j = 0; j < kv->v.arr.n; j++) (void)rd_str(&ar, &f->strpool[k++]);
        }
    }

    /* Tensor infos. */
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (!rd_str(&r, &t->name) || t->name.len > 256)
            return nj_fail(NJ_EFORMAT, "gguf: tensor #%llu: truncated or overlong name", (unsigned long long)i);
        if (!rd_u32(&r, &t->n_dims)) return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': truncated", (int)t->name.len, t->name.ptr);
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
            return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': %u dimensions (1..4 allowed)", (int)t->name.len, t->name.ptr, t->n_dims);
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne;
            if (!rd_u64(&r, &ne)) return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': truncated shape", (int)t->name.len, t->name.ptr);
            if (ne == 0 || ne > (1ull << 40) || !nj_mul_ok(nel, ne, &nel) || nel > (1ull << 42))
                return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': dimension %u = %llu is zero or too large", (int)t->name.len, t->name.ptr, d, (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
        }
        if (!rd_u32(&r, &t->type) || !rd_u64(&r, &t->offset))
            return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': truncated type/offset", (int)t->name.len, t->name.ptr);
        const nj_type_traits *tt = quant_traits_ref((int)t->type);
        if (!tt) return nj_fail(NJ_EUNSUPPORTED, "gguf: tensor '%.*s': unknown or unsupported type id %u", (int)t->name.len, t->name.ptr, t->type);
        if (t->ne[0] % tt->blck)
            return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': row of %lld elements is not a multiple of %s's block %d", (int)t->name.len, t->name.ptr, (long long)t->ne[0], tt->name, tt->blck);
        uint64_t nb;
        if (!nj_mul_ok(nel / (uint64_t)tt->blck, tt->size, &nb)) return bad("tensor byte size overflows", nel, tt->size);
        t->nbytes = nb;
        if (t->offset % f->alignment)
            return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': offset %llu not aligned to %llu", (int)t->name.len, t->name.ptr, (unsigned long long)t->offset, (unsigned long long)f->alignment);
    }

    uint64_t data = (r.off + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors && data > f->size) return bad("tensor data section starts past the end of the file", data, f->size);
    f->data_off = data;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t end;
        if (!nj_add_ok(data, t->offset, &end) || !nj_add_ok(end, t->nbytes, &end) || end > f->size)
            return nj_fail(NJ_EFORMAT, "gguf: tensor '%.*s': data [%llu, +%llu) lies past the end of the file (%zu bytes)", (int)t->name.len, t->name.ptr, (unsigned long long)(data + t->offset), (unsigned long long)t->nbytes, f->size);
        t->data = f->base + data + t->offset;
    }
    int rc = check_unique(&f->kv[0].key, sizeof *f->kv, f->n_kv, "key");
    if (!rc) rc = check_unique(&f->tensors[0].name, sizeof *f->tensors, f->n_tensors, "tensor name");
    return rc;
}

static gguf_file *finish_open(gguf_file *f, int *err) {
    int rc = parse(f);
    if (rc) {
        if (err) *err = rc;
        gguf_close(f);
        return NULL;
    }
    if (err) *err = 0;
    return f;
}

gguf_file *gguf_open_mem(const void *buf, size_t len, int *err) {
    gguf_file *f = nj_calloc(1, sizeof *f);
    if (!f) { if (err) *err = -ENOMEM; return NULL; }
    f->base = buf;
    f->size = len;
    return finish_open(f, err);
}

gguf_file *gguf_open(const char *path, int *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        nj_set_error("gguf: cannot open %s: %s", path, strerror(-e));
        if (err) *err = e;
        return NULL;
    }
    struct stat st;
    int frc = fstat(fd, &st);
    if (frc < 0 || !S_ISREG(st.st_mode)) {
        /* st is unset when fstat failed: decide from frc first */
        int e = frc < 0 ? -errno : -EINVAL;
        nj_set_error(frc < 0 ? "gguf: cannot stat %s" : "gguf: %s is not a regular file", path);
        close(fd);
        if (err) *err = e;
        return NULL;
    }
    if (st.st_size < 8) {
        close(fd);
        nj_set_error("gguf: %s is too short (%lld bytes) to be a GGUF file", path, (long long)st.st_size);
        if (err) *err = NJ_EFORMAT;
        return NULL;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        int e = -errno;
        nj_set_error("gguf: cannot map %s: %s", path, strerror(-e));
        if (err) *err = e;
        return NULL;
    }
    gguf_file *f = nj_calloc(1, sizeof *f);
    if (!f) { munmap(p, (size_t)st.st_size); if (err) *err = -ENOMEM; return NULL; }
    f->base = p;
    f->size = (size_t)st.st_size;
    f->mapped = true;
    return finish_open(f, err);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    nj_free(f->kv);
    nj_free(f->tensors);
    nj_free(f->strpool);
    nj_free(f);
}

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_file_size(const gguf_file *f) { return f->size; }
const void *gguf_base(const gguf_file *f) { return f->base; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_off; }
uint64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i) { return i < f->n_kv ? &f->kv[i] : NULL; }
uint64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) { return i < f->n_tensors ? &f->tensors[i] : NULL; }

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static bool is_signed(uint32_t t) {
    return t == GGUF_T_INT8 || t == GGUF_T_INT16 || t == GGUF_T_INT32 || t == GGUF_T_INT64;
}
static bool is_unsigned(uint32_t t) {
    return t == GGUF_T_UINT8 || t == GGUF_T_UINT16 || t == GGUF_T_UINT32 || t == GGUF_T_UINT64;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -ENOENT;
    if (is_signed(kv->type)) { *out = kv->v.i64; return 0; }
    if (is_unsigned(kv->type) && kv->v.u64 <= INT64_MAX) { *out = (int64_t)kv->v.u64; return 0; }
    return nj_fail(NJ_EFORMAT, "gguf: key %s has type %s, expected an integer", key, gguf_vtype_name(kv->type));
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    int64_t v;
    int rc = gguf_get_i64(f, key, &v);
    if (rc) return rc;
    if (v < 0 || v > UINT32_MAX) return nj_fail(NJ_EFORMAT, "gguf: key %s = %lld is out of range", key, (long long)v);
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -ENOENT;
    if (kv->type == GGUF_T_FLOAT32 || kv->type == GGUF_T_FLOAT64) { *out = (float)kv->v.f64; return 0; }
    if (is_signed(kv->type)) { *out = (float)kv->v.i64; return 0; }
    if (is_unsigned(kv->type)) { *out = (float)kv->v.u64; return 0; }
    return nj_fail(NJ_EFORMAT, "gguf: key %s has type %s, expected a number", key, gguf_vtype_name(kv->type));
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -ENOENT;
    if (kv->type != GGUF_T_BOOL) return nj_fail(NJ_EFORMAT, "gguf: key %s has type %s, expected bool", key, gguf_vtype_name(kv->type));
    *out = kv->v.b;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -ENOENT;
    if (kv->type != GGUF_T_STRING) return nj_fail(NJ_EFORMAT, "gguf: key %s has type %s, expected string", key, gguf_vtype_name(kv->type));
    *out = kv->v.str;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, uint32_t *type, uint64_t *n,
                 const void **data, const gguf_str **strs) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -ENOENT;
    if (kv->type != GGUF_T_ARRAY) return nj_fail(NJ_EFORMAT, "gguf: key %s has type %s, expected array", key, gguf_vtype_name(kv->type));
    if (type) *type = kv->v.arr.type;
    if (n) *n = kv->v.arr.n;
    if (data) *data = kv->v.arr.data;
    if (strs) *strs = kv->v.arr.strs;
    return 0;
}
