/* XXH3-128 content hashing; the one file that includes <xxhash.h>. */
#include "util/hash.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

/* Small files (most inputs) are read into a stack buffer and hashed in one
 * call; larger ones are streamed through a heap buffer of this size, which
 * measured fastest on 1 GiB files (see the hash report in the README). */
#define SMALL_READ (64 * 1024)
#define BLOCK_SIZE (256 * 1024)

/* Keys are hashed a few bytes at a time (a length, a path, a flag): the
 * bytes are gathered here and handed to XXH3 in bulk, which gives the same
 * hash as streaming them one by one at a fraction of the calls. */
#define HASHER_BUF 512

struct hasher {
	XXH3_state_t *state;
	size_t len;
	unsigned char buf[HASHER_BUF];
};

static void from_xxh(XXH128_hash_t h, struct hash128 *out)
{
	out->high = h.high64;
	out->low = h.low64;
}

static void canonical(const struct hash128 *h, unsigned char out[16])
{
	XXH128_hash_t x = {.low64 = h->low, .high64 = h->high};
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, x);
	memcpy(out, c.digest, 16);
}

void hash_to_hex(const struct hash128 *h, char *out)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char b[16];

	canonical(h, b);
	for (int i = 0; i < 16; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}

/* Each byte's hex digit value plus one; 0: not a hex digit. */
#define D(c, v) [c] = (v) + 1
static const unsigned char hex_digit[256] = {
	D('0', 0),  D('1', 1),	D('2', 2),  D('3', 3),	D('4', 4),  D('5', 5),
	D('6', 6),  D('7', 7),	D('8', 8),  D('9', 9),	D('a', 10), D('b', 11),
	D('c', 12), D('d', 13), D('e', 14), D('f', 15), D('A', 10), D('B', 11),
	D('C', 12), D('D', 13), D('E', 14), D('F', 15),
};
#undef D

/* The canonical form is big-endian: high 64 bits first. Read straight
 * into the two halves (the state file holds 400,000 hashes at 100,000
 * stages: a table, not a test per digit); stops at the first non-digit,
 * so a short string is never read past its end. */
static int half_from_hex(const char *hex, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < 16; i++) {
		unsigned d = hex_digit[(unsigned char)hex[i]];

		if (!d)
			return -1;
		v = v << 4 | (d - 1);
	}
	*out = v;
	return 0;
}

int hash_from_hex(const char *hex, struct hash128 *out)
{
	struct hash128 h;

	if (half_from_hex(hex, &h.high) || half_from_hex(hex + 16, &h.low) ||
	    hex[HASH_HEX_LEN] != '\0')
		return -1;
	*out = h;
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

	h->state = XXH3_createState();
	if (!h->state) {
		fputs("pipe: fatal: out of memory\n", stderr);
		abort();
	}
	XXH3_128bits_reset(h->state);
	h->len = 0;
	return h;
}

static void flush(struct hasher *h)
{
	if (h->len)
		XXH3_128bits_update(h->state, h->buf, h->len);
	h->len = 0;
}

void hasher_add(struct hasher *h, const void *data, size_t len)
{
	if (len > HASHER_BUF - h->len) {
		flush(h);
		if (len >= HASHER_BUF) {
			XXH3_128bits_update(h->state, data, len);
			return;
		}
	}
	memcpy(h->buf + h->len, data, len);
	h->len += len;
}

void hasher_add_str(struct hasher *h, const char *s)
{
	uint64_t n = strlen(s);
	unsigned char len[8];

	/* little-endian, so the key does not depend on the machine */
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)(n >> (8 * i));
	hasher_add(h, len, sizeof(len));
	hasher_add(h, s, n);
}

void hasher_add_hash(struct hasher *h, const struct hash128 *v)
{
	unsigned char b[16];

	canonical(v, b);
	hasher_add(h, b, sizeof(b));
}

void hasher_final(struct hasher *h, struct hash128 *out)
{
	flush(h);
	from_xxh(XXH3_128bits_digest(h->state), out);
}

void hasher_free(struct hasher *h)
{
	if (!h)
		return;
	XXH3_freeState(h->state);
	free(h);
}

/* Fills buf from fd until it is full or at end of file; returns the count
 * or -1 (errno). */
static ssize_t read_full(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The rest of a file longer than SMALL_READ: first holds its head. */
static int stream_rest(int fd, const unsigned char *first, size_t n,
		       XXH128_hash_t *out, unsigned long long *total)
{
	XXH3_state_t *st = XXH3_createState();
	unsigned char *buf = xmalloc(BLOCK_SIZE);
	ssize_t got;
	int ret = -1;

	if (!st) {
		fputs("pipe: fatal: out of memory\n", stderr);
		abort();
	}
	/* big enough for read-ahead to matter */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, first, n);
	*total = n;
	while ((got = read_full(fd, buf, BLOCK_SIZE)) > 0) {
		XXH3_128bits_update(st, buf, (size_t)got);
		*total += (unsigned long long)got;
		if ((size_t)got < BLOCK_SIZE)
			break;
	}
	if (got >= 0) {
		*out = XXH3_128bits_digest(st);
		ret = 0;
	}
	free(buf);
	XXH3_freeState(st);
	return ret;
}

int hash_fd(int fd, const char *name, struct hash128 *out,
	    unsigned long long *bytes, struct error *err)
{
	unsigned char small[SMALL_READ];
	unsigned long long total;
	XXH128_hash_t h;
	ssize_t n;

	n = read_full(fd, small, sizeof(small));
	if (n >= 0 && (size_t)n < sizeof(small)) {
		h = XXH3_128bits(small, (size_t)n);
		total = (unsigned long long)n;
	} else if (n < 0 || stream_rest(fd, small, (size_t)n, &h, &total)) {
		return error_set(err, EXIT_ENV, "cannot read '%s': %s", name,
				 strerror(errno));
	}
	from_xxh(h, out);
	if (bytes)
		*bytes = total;
	return 0;
}

int hash_file(const char *path, struct hash128 *out, unsigned long long *bytes,
	      struct error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return error_set(err, EXIT_ENV, "cannot open '%s': %s", path,
				 strerror(errno));
	ret = hash_fd(fd, path, out, bytes, err);
	close(fd);
	return ret;
}
