/*
 * sha256 — SHA-256 (FIPS 180-4), streaming.
 *
 * Used to verify downloaded model files while they are written (so a
 * multi-gigabyte file is read once) and to name files by content.  Written
 * from the standard, checked against its test vectors in tests/test_sha256.c.
 * Not constant-time and not meant for secrets: it hashes public files.
 *
 * Usage: sha256_init(&c); sha256_update(&c, p, n) ...; sha256_final(&c, out).
 * The context is plain data, may be copied to hash a common prefix once.
 */
#ifndef NJ_SHA256_H
#define NJ_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];       /* chaining state H0..H7 */
    uint64_t len;        /* message length in bytes so far */
    uint8_t  buf[64];    /* partial block */
    size_t   nbuf;       /* bytes in buf, < 64 */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);

/* One-shot helpers. */
void sha256(const void *data, size_t n, uint8_t out[32]);
/* out gets 64 lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t digest[32], char out[65]);
/* Hash a whole file; 0 or -errno. */
int  sha256_file(const char *path, uint8_t out[32]);
/* Parse 64 hex digits (either case, nothing else); 0 or -EINVAL. */
int  sha256_parse_hex(const char *hex, uint8_t out[32]);

#endif
