/* MD5 (RFC 1321), for S3's ETags only (a part's ETag is the MD5 of its
 * bytes, a multipart object's that of its parts' MD5s): not for security. */
#ifndef UTIL_MD5_H
#define UTIL_MD5_H

#include <stddef.h>
#include <stdint.h>

#define MD5_LEN 16

struct md5 {
	uint32_t h[4];
	uint64_t len; /* bytes so far */
	unsigned char buf[64];
	size_t nbuf;
};

void md5_init(struct md5 *c);
void md5_add(struct md5 *c, const void *data, size_t len);
void md5_final(struct md5 *c, unsigned char out[MD5_LEN]);

#endif
