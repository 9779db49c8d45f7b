/* Content hashing: XXH3-128 of files and buffers, printed as 32 lowercase
 * hex digits in the canonical (big-endian) form of `xxhsum -H2`. xxhash is
 * included only by util/hash.c (the store and the engine both hash). */
#ifndef UTIL_HASH_H
#define UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct hash128 {
	uint64_t high, low;
};

#define HASH_HEX_LEN 32

/* out must hold HASH_HEX_LEN + 1 bytes. */
void hash_to_hex(const struct hash128 *h, char *out);
/* Returns 0, or -1 when hex is not 32 hex digits. */
int hash_from_hex(const char *hex, struct hash128 *out);
int hash_equal(const struct hash128 *a, const struct hash128 *b);
int hash_is_zero(const struct hash128 *h);

void hash_buf(const void *data, size_t len, struct hash128 *out);

/* Streaming hasher for keys and Merkle hashes. */
struct hasher;
struct hasher *hasher_new(void);
void hasher_add(struct hasher *h, const void *data, size_t len);
/* Adds s with its length, so ("ab","c") and ("a","bc") differ. */
void hasher_add_str(struct hasher *h, const char *s);
void hasher_add_hash(struct hasher *h, const struct hash128 *v);
void hasher_final(struct hasher *h, struct hash128 *out);
void hasher_free(struct hasher *h);

/* Hash a file's content, read in large blocks; memory is flat in the file
 * size. Returns 0, or -1 with err naming the file. *bytes gets the size
 * read when not NULL. */
int hash_file(const char *path, struct hash128 *out, unsigned long long *bytes,
	      struct error *err);

/* The same for an open file, read from its current offset to the end; name
 * is used in the error message. The caller keeps fd. */
int hash_fd(int fd, const char *name, struct hash128 *out,
	    unsigned long long *bytes, struct error *err);

#endif
