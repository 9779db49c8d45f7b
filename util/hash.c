/* XXH3-128 content hashing (minimal stand-in until the util/hash helper's
 * version lands; same API as util/hash.h). */
#include "util/hash.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define HASH_BLOCK (1 << 20)

struct hasher {
	XXH3_state_t *st;
};

static void from_xxh(XXH128_hash_t v, struct hash128 *out)
{
	out->high = v.high64;
	out->low = v.low64;
}

void hash_to_hex(const struct hash128 *h, char *out)
{
	static const char digits[] = "0123456789abcdef";
	XXH128_canonical_t c;
	XXH128_hash_t v = {h->low, h->high};

	XXH128_canonicalFromHash(&c, v);
	for (int i = 0; i < 16; i++) {
		out[2 * i] = digits[c.digest[i] >> 4];
		out[2 * i + 1] = digits[c.digest[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hash_from_hex(const char *hex, struct hash128 *out)
{
	XXH128_canonical_t c;

	for (int i = 0; i < 16; i++) {
		int hi = hexval((unsigned char)hex[2 * i]);
		int lo = hi < 0 ? -1 : hexval((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		c.digest[i] = (unsigned char)(hi << 4 | lo);
	}
	if (hex[HASH_HEX_LEN])
		return -1;
	from_xxh(XXH128_hashFromCanonical(&c), out);
	return 0;
}

int hash_equal(const struct hash128 *a, const struct hash128 *b)
{
	return a->high == b->high && a->low == b->low;
}

int hash_is_zero(const struct hash128 *h)
{
	return !h->high && !h->low;
}

void hash_buf(const void *data, size_t len, struct hash128 *out)
{
	from_xxh(XXH3_128bits(data, len), out);
}

struct hasher *hasher_new(void)
{
	struct hasher *h = xmalloc(sizeof(*h));

	h->st = XXH3_createState();
	if (!h->st)
		abort();
	XXH3_128bits_reset(h->st);
	return h;
}

void hasher_add(struct hasher *h, const void *data, size_t len)
{
	XXH3_128bits_update(h->st, data, len);
}

void hasher_add_str(struct hasher *h, const char *s)
{
	uint64_t n = strlen(s);

	hasher_add(h, &n, sizeof(n));
	hasher_add(h, s, n);
}

void hasher_add_hash(struct hasher *h, const struct hash128 *v)
{
	XXH128_canonical_t c;
	XXH128_hash_t x = {v->low, v->high};

	XXH128_canonicalFromHash(&c, x);
	hasher_add(h, c.digest, sizeof(c.digest));
}

void hasher_final(struct hasher *h, struct hash128 *out)
{
	from_xxh(XXH3_128bits_digest(h->st), out);
}

void hasher_free(struct hasher *h)
{
	if (!h)
		return;
	XXH3_freeState(h->st);
	free(h);
}

int hash_file(const char *path, struct hash128 *out, unsigned long long *bytes,
	      struct error *err)
{
	struct hasher *h = NULL;
	char *buf = NULL;
	unsigned long long total = 0;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, EXIT_FAILED, "cannot open '%s': %s", path,
				 strerror(errno));
	h = hasher_new();
	buf = xmalloc(HASH_BLOCK);
	for (;;) {
		ssize_t n = read(fd, buf, HASH_BLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, EXIT_FAILED, "cannot read '%s': %s",
				  path, strerror(errno));
			goto out;
		}
		if (!n)
			break;
		hasher_add(h, buf, (size_t)n);
		total += (unsigned long long)n;
	}
	hasher_final(h, out);
	if (bytes)
		*bytes = total;
	ret = 0;
out:
	free(buf);
	hasher_free(h);
	close(fd);
	return ret;
}
