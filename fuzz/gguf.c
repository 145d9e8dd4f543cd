/*
 * fuzz/gguf — libFuzzer target for the GGUF parser (gguf_open_mem).
 *
 * Any input must either be refused with a format error and a message, or
 * accepted with every view (keys, strings, arrays, tensor data) inside the
 * buffer; we touch the first and last byte of each view so ASan flags any
 * that is not.  Built and run by scripts/fuzz (clang -fsanitize=fuzzer).
 */
#include "gguf.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n) {
    if (!n) return;
    sink ^= ((const uint8_t *)p)[0];
    sink ^= ((const uint8_t *)p)[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy of exactly `size` bytes so overreads hit the redzone. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    int err = 0;
    gguf_file *f = gguf_open_mem(buf, size, &err);
    if (!f) {
        if (err != NJ_EFORMAT && err != NJ_EUNSUPPORTED && err != -ENOMEM) abort();
        if (!nj_last_error()[0]) abort();
        free(buf);
        return 0;
    }
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        touch(kv->key.ptr, kv->key.len);
        if (kv->type == GGUF_T_STRING) touch(kv->v.str.ptr, kv->v.str.len);
        if (kv->type == GGUF_T_ARRAY) {
            if (kv->v.arr.strs)
                for (uint64_t j = 0; j < kv->v.arr.n; j++) touch(kv->v.arr.strs[j].ptr, kv->v.arr.strs[j].len);
        }
    }
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        touch(t->name.ptr, t->name.len);
        touch(t->data, t->nbytes);
    }
    uint32_t u; float x; gguf_str s;
    (void)gguf_get_u32(f, "general.alignment", &u);
    (void)gguf_get_f32(f, "llama.rope.freq_base", &x);
    (void)gguf_get_str(f, "general.architecture", &s);
    gguf_close(f);
    free(buf);
    return 0;
}
