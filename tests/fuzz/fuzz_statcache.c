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

static char statcache_dir_path[64];

static void statcache_dir_remove(void)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/b", statcache_dir_path);
	unlink(sb.buf);
	rmdir(statcache_dir_path);
	strbuf_release(&sb);
}

/* A folder of this process's (in /dev/shm when there is one: saving
 * fsyncs) holding one small file, "b", for the cache to hash. */
static const char *statcache_dir(void)
{
	char *dir = statcache_dir_path;
	struct strbuf b = STRBUF_INIT;
	FILE *f;

	if (dir[0])
		return dir;
	snprintf(dir, sizeof(statcache_dir_path), "%s/pipe-fuzz-XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	if (!mkdtemp(dir))
		abort();
	atexit(statcache_dir_remove);
	strbuf_addf(&b, "%s/b", dir);
	f = fopen(b.buf, "w");
	if (!f || fputs("b\n", f) < 0 || fclose(f))
		abort();
	strbuf_release(&b);
	return dir;
}

/* The cache loaded from a file, one file hashed into it, a folder noted as
 * walked (so unseen records are pruned), saved: what is saved loads back
 * with the hashed file in it. */
static void statcache_fuzz_save(const void *data, size_t size, int prune)
{
	const char *dir = statcache_dir();
	struct strbuf path = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct statcache *sc = NULL;
	struct statcache_stats stats;
	struct hash128 h;
	FILE *f;

	strbuf_addf(&path, "%s/statcache", dir);
	f = fopen(path.buf, "w");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) ||
	    statcache_open(&sc, path.buf, &err) ||
	    statcache_hash_file(sc, dir, "b", NULL, &h, &err))
		abort();
	if (prune)
		statcache_note_walked(sc, prune == 1 ? "" : "data", NULL);
	if (statcache_save(sc, &err))
		abort();
	statcache_free(sc);
	if (statcache_open(&sc, path.buf, &err))
		abort();
	statcache_get_stats(sc, &stats);
	if (stats.entries < 1)
		abort(); /* what pipe wrote, it did not read back */
	statcache_free(sc);
	unlink(path.buf);
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
	statcache_fuzz_save(buf.buf, buf.len, size ? data[size - 1] % 3 : 0);
	strbuf_release(&buf);
	return 0;
}
