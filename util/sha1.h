/* SHA-1 (FIPS 180-4) for the checksums of git's pack and index files, which
 * the store writes itself (store/pack.c). Object ids are hashed by libgit2. */
#ifndef UTIL_SHA1_H
#define UTIL_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN 20

struct sha1 {
	uint32_t h[5];
	uint64_t len; /* bytes so far */
	unsigned char buf[64];
	size_t nbuf;
};

void sha1_init(struct sha1 *c);
void sha1_add(struct sha1 *c, const void *data, size_t len);
void sha1_final(struct sha1 *c, unsigned char out[SHA1_LEN]);

#endif
