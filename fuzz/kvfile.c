/*
 * fuzz/kvfile — libFuzzer target for the prefix cache file header check
 * (kvfile_check_header), the part of nj_session_load_prefix that decides
 * from untrusted bytes whether and how much to read.
 *
 * Properties checked:
 *   - any input is accepted or refused with one of the documented codes
 *     and a sentence;
 *   - an accepted header names 1..max_tokens tokens and exactly the
 *     payload size the expected shape implies;
 *   - a copy of the input with its header checksum recomputed is judged
 *     the same way apart from the checksum (so the fields behind the
 *     checksum are reached, not just the checksum test).
 * Built and run by scripts/fuzz (clang -fsanitize=fuzzer).
 */
#include "kvfile.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const kvfile_expect E = {
    .model_bytes = 123456, .model_id = 0x1234abcd5678ef01ull, .kv_type = NJ_KV_Q8_0, .n_layer = 3,
    .n_head_kv = 2, .head_dim_k = 64, .head_dim_v = 64, .k_rb = 136, .v_rb = 136, .max_tokens = 512,
};

static void check(const uint8_t *h, size_t n) {
    uint64_t payload = 0;
    int rc = kvfile_check_header(h, n, &E, &payload);
    if (rc >= 0) {
        if (rc < 1 || rc > E.max_tokens) abort();
        if (payload != 4ull * (uint64_t)rc + (uint64_t)E.n_layer * (uint64_t)rc * (E.k_rb + E.v_rb)) abort();
    } else if (rc != NJ_EFORMAT && rc != NJ_ECHECKSUM && rc != NJ_EUNSUPPORTED && rc != NJ_ESTATE) {
        abort();
    } else if (!nj_last_error()[0]) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size);
    if (size >= KVFILE_HEADER) {
        uint8_t h[KVFILE_HEADER];
        memcpy(h, data, sizeof h);
        const uint64_t ck = kvfile_hash(h, 88, 0);
        memcpy(h + 88, &ck, 8);
        check(h, sizeof h);
    }
    return 0;
}
