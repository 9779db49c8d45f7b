/* Helpers shared by the libFuzzer targets of tests/fuzz/: each target is
 * one LLVMFuzzerTestOneInput over a parser of untrusted bytes; `make fuzz`
 * runs them (clang, libFuzzer, ASan, UBSan) and tests/unit/test_fuzz_replay.c
 * replays their corpora in `make test`. */
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/hash.h"
#include "util/strbuf.h"

/* Parsers that take a file name get the input as an anonymous in-memory
 * file (memfd), named "/proc/self/fd/N" in path: nothing touches the disk.
 * Returns the descriptor for fuzz_file_close, or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size,
			    struct strbuf *path)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);

		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	strbuf_reset(path);
	strbuf_addf(path, "/proc/self/fd/%d", fd);
	return fd;
}

/* Appends the XXH3-128 of out's contents so far as the binary state files
 * end (.pipe/statcache, .pipe/pipefile.cache): high then low half, each
 * little-endian. The fuzzer then reaches the parser behind the checksum
 * instead of stopping at it. */
static inline void fuzz_add_sum(struct strbuf *out)
{
	struct hash128 h;
	unsigned char b[16];

	hash_buf(out->buf, out->len, &h);
	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(h.high >> (8 * i));
		b[8 + i] = (unsigned char)(h.low >> (8 * i));
	}
	strbuf_add(out, b, sizeof(b));
}

#endif
