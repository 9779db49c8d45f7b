/* Fuzz target: .pipe/statcache through statcache_open, then lookups. The
 * input is tried as a whole file, and as one without its checksum (the
 * target appends it), so the fuzzer reaches the record index. */
#include "engine/statcache.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

#include <sys/stat.h>

static void statcache_fuzz_one(const void *data, size_t size)
{
	static const char *const paths[] = {"a", "b", "data/a.csv", "z"};
	struct strbuf path = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct statcache *sc = NULL;
	struct statcache_stats stats;
	int fd = fuzz_file(data, size, &path);

	if (fd < 0)
		abort();
	if (statcache_open(&sc, path.buf, &err))
		abort(); /* the file exists: only a failed read fails */
	for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
		struct stat st = {.st_mode = S_IFREG | 0644,
				  .st_dev = 1,
				  .st_ino = (ino_t)i + 1,
				  .st_size = 1};
		struct hash128 h;

		statcache_known(sc, paths[i], &st, &h);
	}
	statcache_get_stats(sc, &stats);
	statcache_free(sc);
	close(fd);
	error_release(&err);
	strbuf_release(&path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf buf = STRBUF_INIT;

	statcache_fuzz_one(data, size);
	strbuf_add(&buf, data, size);
	fuzz_add_sum(&buf);
	statcache_fuzz_one(buf.buf, buf.len);
	strbuf_release(&buf);
	return 0;
}
