/* SHA-256 (FIPS 180-4) for OCI digests:
 * small enough to keep here rather than depend on a crypto library. */
#ifndef UTIL_SHA256_H
#define UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

#define SHA256_LEN 32
#define SHA256_HEX_LEN 64

struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes so far */
	unsigned char buf[64];
	size_t nbuf;
};

void sha256_init(struct sha256 *c);
void sha256_add(struct sha256 *c, const void *data, size_t len);
void sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN]);

/* The digest of len bytes as 64 lowercase hex digits, appended to out. */
void sha256_hex(const void *data, size_t len, struct strbuf *out);

#endif
