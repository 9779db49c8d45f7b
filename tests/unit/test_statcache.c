/* Unit tests for engine/statcache: hits without reads, misses on change,
 * the racy-entry guard, persistence, corrupt files, pruning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/statcache.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/strbuf.h"

static char ws[] = "/tmp/pipe-test-statcache.XXXXXX";
static char *cache_path;

/* A clock far enough ahead that every file looks long settled. */
static int64_t later_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
	       10 * STATCACHE_RACY_NS;
}

static char *full(const char *rel)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/%s", ws, rel);
	return strbuf_detach(&sb, NULL);
}

static void put(const char *rel, const char *content)
{
	char *p = full(rel);
	FILE *fp;

	assert_int_equal(fs_mkdir_parent(p, 0777), 0);
	fp = fopen(p, "wb");
	assert_non_null(fp);
	fputs(content, fp);
	assert_int_equal(fclose(fp), 0);
	free(p);
}

static void lstat_rel(const char *rel, struct stat *st)
{
	char *p = full(rel);

	assert_int_equal(lstat(p, st), 0);
	free(p);
}

/* Every test runs twice: as it is, and with the entries merged into the
 * file every two (merge_every), as a long run merges them. */
static size_t merge_every;

static struct statcache *open_cache(void)
{
	struct statcache *sc = NULL;
	struct error err = ERROR_INIT;

	assert_int_equal(statcache_open(&sc, cache_path, &err), 0);
	assert_non_null(sc);
	if (merge_every)
		statcache_set_merge_min(sc, merge_every);
	return sc;
}

/* Hash rel through sc with a fresh lstat; returns the hash. */
static struct hash128 hash_rel(struct statcache *sc, const char *rel)
{
	struct error err = ERROR_INIT;
	struct hash128 h;
	struct stat st;

	lstat_rel(rel, &st);
	if (statcache_hash_file(sc, ws, rel, &st, &h, &err))
		fail_msg("%s", err.msg.buf);
	return h;
}

static struct hash128 content_hash(const char *s)
{
	struct hash128 h;

	hash_buf(s, strlen(s), &h);
	return h;
}

/* rel, through sc, hashes as content does. */
static void expect_hash(struct statcache *sc, const char *rel,
			const char *content)
{
	struct hash128 h = hash_rel(sc, rel), want = content_hash(content);

	assert_true(hash_equal(&h, &want));
}

/* The workspace emptied (for the next test, after many files). */
static void clear_ws(void)
{
	assert_int_equal(fs_remove_tree(ws), 0);
	assert_int_equal(mkdir(ws, 0700), 0);
}

static size_t misses(struct statcache *sc)
{
	struct statcache_stats st;

	statcache_get_stats(sc, &st);
	return st.misses;
}

static size_t entries(struct statcache *sc)
{
	struct statcache_stats st;

	statcache_get_stats(sc, &st);
	return st.entries;
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(ws))
		return -1;
	cache_path = full(".pipe/statcache");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(cache_path);
	return fs_remove_tree(ws);
}

static int fresh(void **state)
{
	(void)state;
	unlink(cache_path);
	merge_every = 0;
	return 0;
}

static int fresh_merging(void **state)
{
	fresh(state);
	merge_every = 2;
	return 0;
}

static void test_hit_does_not_read(void **state)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	struct hash128 h, want = content_hash("alpha\n");

	(void)state;
	statcache_set_clock(sc, later_ns);
	put("a.txt", "alpha\n");
	h = hash_rel(sc, "a.txt");
	assert_true(hash_equal(&h, &want));
	assert_int_equal(misses(sc), 1);
	h = hash_rel(sc, "a.txt");
	assert_true(hash_equal(&h, &want));
	assert_int_equal(misses(sc), 1);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	/* a new session trusts what the file recorded */
	sc = open_cache();
	assert_int_equal(entries(sc), 1);
	h = hash_rel(sc, "a.txt");
	assert_true(hash_equal(&h, &want));
	assert_int_equal(misses(sc), 0);
	statcache_free(sc);
}

static void test_change_and_touch(void **state)
{
	struct statcache *sc = open_cache();
	struct hash128 h1, h2, h3;
	struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
	char *p = full("b.txt");

	(void)state;
	statcache_set_clock(sc, later_ns);
	put("b.txt", "one\n");
	h1 = hash_rel(sc, "b.txt");
	put("b.txt", "two, longer\n");
	h2 = hash_rel(sc, "b.txt");
	assert_int_equal(misses(sc), 2);
	assert_false(hash_equal(&h1, &h2));
	/* a touch costs a re-read, and gives the same hash */
	assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
	h3 = hash_rel(sc, "b.txt");
	assert_int_equal(misses(sc), 3);
	assert_true(hash_equal(&h2, &h3));
	h3 = hash_rel(sc, "b.txt");
	assert_int_equal(misses(sc), 3);
	free(p);
	statcache_free(sc);
}

/* A same-size write within the filesystem's timestamp granularity, with
 * mtime put back, leaves stat data as they were on a coarse filesystem.
 * This test hands the cache the old stat data, as such a filesystem would
 * report them, and checks that a racy entry is not trusted. */
static void test_racy_entry(void **state)
{
	struct statcache *sc = open_cache();
	struct hash128 h, want1 = content_hash("1234\n");
	struct hash128 want2 = content_hash("5678\n");
	struct timespec times[2];
	struct stat st1, st2;
	struct error err = ERROR_INIT;
	char *p = full("r.txt");

	(void)state;
	put("r.txt", "1234\n");
	lstat_rel("r.txt", &st1);
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st1, &h, &err),
			 0);
	assert_true(hash_equal(&h, &want1));

	/* just written and just hashed: racy, so read again each time */
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st1, &h, &err),
			 0);
	assert_int_equal(misses(sc), 2);

	/* same size, other bytes, mtime restored */
	put("r.txt", "5678\n");
	times[0] = st1.st_atim;
	times[1] = st1.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
	lstat_rel("r.txt", &st2);
	assert_int_equal(st2.st_size, st1.st_size);
	assert_int_equal(st2.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	assert_int_equal(st2.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);

	/* the old stat data, as a coarse filesystem would report them: the
	 * entry matches them but is racy, so the file is read again */
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st1, &h, &err),
			 0);
	assert_true(hash_equal(&h, &want2));
	assert_int_equal(misses(sc), 3);
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st2, &h, &err),
			 0);
	assert_true(hash_equal(&h, &want2));
	assert_int_equal(misses(sc), 4);

	/* once settled, an entry is trusted on its stat data alone (the point
	 * of the cache): were the same stale stat data handed in, the old
	 * hash would come back. On a real filesystem the write moves ctime,
	 * by more than its granularity since the entry settled, so the
	 * fresh lstat misses. */
	statcache_set_clock(sc, later_ns);
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st2, &h, &err),
			 0);
	assert_int_equal(misses(sc), 5);
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st2, &h, &err),
			 0);
	assert_int_equal(misses(sc), 5);
	put("r.txt", "9999\n");
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st2, &h, &err),
			 0);
	assert_true(hash_equal(&h, &want2));
	assert_int_equal(misses(sc), 5);
	lstat_rel("r.txt", &st2);
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st2, &h, &err),
			 0);
	want2 = content_hash("9999\n");
	assert_true(hash_equal(&h, &want2));
	assert_int_equal(misses(sc), 6);
	free(p);
	statcache_free(sc);
}

static void test_save_only_when_changed(void **state)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	struct stat st;

	(void)state;
	statcache_set_clock(sc, later_ns);
	put("c.txt", "c\n");
	hash_rel(sc, "c.txt");
	assert_int_equal(statcache_save(sc, &err), 0);
	assert_int_equal(stat(cache_path, &st), 0);
	unlink(cache_path);
	hash_rel(sc, "c.txt"); /* a hit: nothing changed */
	assert_int_equal(statcache_save(sc, &err), 0);
	assert_int_not_equal(stat(cache_path, &st), 0);
	statcache_free(sc);
}

static void write_raw(const void *data, size_t len)
{
	struct error err = ERROR_INIT;

	assert_int_equal(fs_write_atomic(cache_path, data, len, &err), 0);
}

/* Saves a cache of two entries and returns its bytes. */
static struct strbuf saved_cache(void)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;

	statcache_set_clock(sc, later_ns);
	put("d1.txt", "d1\n");
	put("d2.txt", "d2\n");
	hash_rel(sc, "d1.txt");
	hash_rel(sc, "d2.txt");
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);
	assert_int_equal(strbuf_read_file(&sb, cache_path, 0), 0);
	return sb;
}

static void expect_rebuilt(void)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	struct hash128 h, want = content_hash("d1\n");

	assert_int_equal(entries(sc), 0);
	statcache_set_clock(sc, later_ns);
	h = hash_rel(sc, "d1.txt");
	assert_true(hash_equal(&h, &want));
	assert_int_equal(misses(sc), 1);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);
	sc = open_cache();
	assert_int_equal(entries(sc), 1);
	statcache_free(sc);
}

static void test_corrupt_files_rebuilt(void **state)
{
	struct strbuf good = saved_cache();
	struct statcache *sc = open_cache();

	(void)state;
	assert_int_equal(entries(sc), 2);
	statcache_free(sc);

	/* every truncation */
	for (size_t n = 0; n < good.len; n += n < 40 ? 1 : 7) {
		write_raw(good.buf, n);
		sc = open_cache();
		assert_int_equal(entries(sc), 0);
		statcache_free(sc);
	}
	/* one flipped bit anywhere */
	for (size_t i = 0; i < good.len; i += 3) {
		good.buf[i] ^= 0x10;
		write_raw(good.buf, good.len);
		good.buf[i] ^= 0x10;
		sc = open_cache();
		assert_int_equal(entries(sc), 0);
		statcache_free(sc);
	}
	/* another version */
	good.buf[15] = '2';
	write_raw(good.buf, good.len);
	expect_rebuilt();
	write_raw("garbage\n", 8);
	expect_rebuilt();
	strbuf_release(&good);
}

static void test_many_entries(void **state)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	char name[64];

	(void)state;
	statcache_set_clock(sc, later_ns);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "many/d%d/f%d", i % 7, i);
		put(name, name);
		hash_rel(sc, name);
	}
	assert_int_equal(misses(sc), 3000);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);
	sc = open_cache();
	assert_int_equal(entries(sc), 3000);
	for (int i = 0; i < 3000; i++) {
		struct hash128 h, want;

		snprintf(name, sizeof(name), "many/d%d/f%d", i % 7, i);
		h = hash_rel(sc, name);
		want = content_hash(name);
		assert_true(hash_equal(&h, &want));
	}
	assert_int_equal(misses(sc), 0);
	statcache_free(sc);
	clear_ws();
}

static void test_deleted_files_dropped(void **state)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	char *gone = full("p/b");

	(void)state;
	statcache_set_clock(sc, later_ns);
	put("p/a", "a");
	put("p/b", "b");
	put("p/sub/c", "c");
	put("q/keep", "k");
	put("g/x.csv", "x");
	put("g/y.txt", "y");
	hash_rel(sc, "p/a");
	hash_rel(sc, "p/b");
	hash_rel(sc, "p/sub/c");
	hash_rel(sc, "q/keep");
	hash_rel(sc, "g/x.csv");
	hash_rel(sc, "g/y.txt");
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	unlink(gone);
	sc = open_cache();
	statcache_set_clock(sc, later_ns);
	hash_rel(sc, "p/a");
	statcache_note_walked(sc, "p", NULL);	   /* p/b, p/sub/c gone */
	statcache_note_walked(sc, "g", "g/*.csv"); /* g/x.csv gone */
	put("new", "n");
	hash_rel(sc, "new"); /* something changed, so save writes */
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	sc = open_cache();
	assert_int_equal(entries(sc), 4); /* p/a, q/keep, g/y.txt, new */
	statcache_free(sc);
	free(gone);
}

/* A folder that became a file: its old files' entries go at the next
 * save, with no folder noted as walked (a plain file input is not), and
 * entries elsewhere that were not looked up stay. */
static void test_folder_became_file(void **state)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	char *dir = full("f");

	(void)state;
	statcache_set_clock(sc, later_ns);
	put("f/a", "a");
	put("f/sub/b", "b");
	put("f.txt", "t");
	put("q/keep", "k");
	hash_rel(sc, "f/a");
	hash_rel(sc, "f/sub/b");
	hash_rel(sc, "f.txt");
	hash_rel(sc, "q/keep");
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	assert_int_equal(fs_remove_tree(dir), 0);
	put("f", "now a file");
	sc = open_cache();
	statcache_set_clock(sc, later_ns);
	hash_rel(sc, "f"); /* a miss: the save writes */
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	sc = open_cache();
	assert_int_equal(entries(sc), 3); /* f, f.txt, q/keep */
	assert_int_equal(misses(sc), 0);
	hash_rel(sc, "f");
	hash_rel(sc, "f.txt");
	hash_rel(sc, "q/keep");
	assert_int_equal(misses(sc), 0);
	statcache_free(sc);
	free(dir);
}

/* Records re-hashed and paths added in a later session are merged back in
 * path order; lookups in any order find every record. */
static void test_reload_update_and_order(void **state)
{
	static const char *const names[] = {"o/b", "o/d", "o/f", "o/h"};
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	struct hash128 h, want;

	(void)state;
	statcache_set_clock(sc, later_ns);
	for (size_t i = 0; i < 4; i++) {
		put(names[i], names[i]);
		hash_rel(sc, names[i]);
	}
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	sc = open_cache();
	statcache_set_clock(sc, later_ns);
	put("o/d", "changed");
	put("o/a", "o/a");
	put("o/e", "o/e");
	put("o/z", "o/z");
	hash_rel(sc, "o/z");
	hash_rel(sc, "o/d");
	hash_rel(sc, "o/a");
	hash_rel(sc, "o/e");
	assert_int_equal(misses(sc), 4);
	assert_int_equal(entries(sc), 7);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	/* backwards, so that no lookup finds its record next to the last */
	sc = open_cache();
	assert_int_equal(entries(sc), 7);
	for (const char *p = "zhfedba"; *p; p++) {
		char name[8];

		snprintf(name, sizeof(name), "o/%c", *p);
		h = hash_rel(sc, name);
		want = content_hash(*p == 'd' ? "changed" : name);
		assert_true(hash_equal(&h, &want));
	}
	assert_int_equal(misses(sc), 0);
	statcache_free(sc);
}

static void test_not_regular(void **state)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	struct hash128 h;
	char *p = full("lnk");

	(void)state;
	assert_int_equal(symlink("target", p), 0);
	assert_int_equal(statcache_hash_file(sc, ws, "lnk", NULL, &h, &err),
			 -1);
	assert_string_equal(err.msg.buf, "'lnk' is not a regular file");
	error_release(&err);
	assert_int_equal(statcache_hash_file(sc, ws, "nothere", NULL, &h, &err),
			 -1);
	assert_string_equal(err.msg.buf, "cannot stat 'nothere': No such file "
					 "or directory");
	error_release(&err);
	unlink(p);
	free(p);
	statcache_free(sc);
}

/* The cache as another process would open it now (a kill here). */
static size_t entries_on_disk(void)
{
	struct statcache *sc = open_cache();
	size_t n = entries(sc);

	statcache_free(sc);
	return n;
}

/* Entries merged into the file during the session: found again in it
 * without a read (lookups and statcache_known), the file whole on disk
 * at each merge (a kill then loses only what came since), a file changed
 * after its merge hashed again, and all of it after a save. */
static void test_merge_during_session(void **state)
{
	struct statcache *sc = open_cache();
	struct error err = ERROR_INIT;
	struct hash128 h, want;
	struct stat st;
	size_t on_disk = 0;
	char name[64];

	(void)state;
	statcache_set_clock(sc, later_ns);
	statcache_set_merge_min(sc, 16);
	for (int i = 0; i < 300; i++) {
		size_t now;

		snprintf(name, sizeof(name), "m/d%d/f%d", i % 3, i);
		put(name, name);
		expect_hash(sc, name, name);
		now = entries_on_disk();
		assert_true(now >= on_disk && now <= (size_t)i + 1);
		on_disk = now;
	}
	/* merged at 16, 32, ... then at an eighth of the file */
	assert_true(on_disk >= 200 && on_disk < 300);
	assert_int_equal(misses(sc), 300);
	assert_int_equal(entries(sc), 300);
	put("m/d1/f7", "changed after its merge");
	for (int i = 299; i >= 0; i--) {
		snprintf(name, sizeof(name), "m/d%d/f%d", i % 3, i);
		want = content_hash(i == 7 ? "changed after its merge" : name);
		expect_hash(sc, name,
			    i == 7 ? "changed after its merge" : name);
		lstat_rel(name, &st);
		assert_int_equal(statcache_known(sc, name, &st, &h), 1);
		assert_true(hash_equal(&h, &want));
	}
	assert_int_equal(misses(sc), 301);
	assert_int_equal(entries(sc), 300);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	sc = open_cache();
	assert_int_equal(entries(sc), 300);
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "m/d%d/f%d", i % 3, i);
		expect_hash(sc, name,
			    i == 7 ? "changed after its merge" : name);
	}
	assert_int_equal(misses(sc), 0);
	statcache_free(sc);
	clear_ws();
}

/* A merge killed part way leaves the file as it was and its temp file
 * beside, which nothing reads; a merged file cut anywhere is rebuilt, not
 * trusted. */
static void test_merge_torn(void **state)
{
	struct statcache *sc = open_cache();
	struct strbuf good = STRBUF_INIT, tmp = STRBUF_INIT;
	char name[32];

	(void)state;
	statcache_set_clock(sc, later_ns);
	statcache_set_merge_min(sc, 8);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "t/f%d", i);
		put(name, name);
		hash_rel(sc, name);
	}
	statcache_free(sc); /* killed: never saved */
	assert_int_equal(strbuf_read_file(&good, cache_path, 0), 0);
	assert_int_equal(entries_on_disk(), 8);

	strbuf_addf(&tmp, "%s.tmp.%d", cache_path, 999999);
	assert_int_equal(fs_mkdir_parent(tmp.buf, 0777), 0);
	{
		FILE *fp = fopen(tmp.buf, "wb");

		assert_non_null(fp);
		assert_int_equal(fwrite(good.buf, 1, good.len / 2, fp),
				 good.len / 2);
		assert_int_equal(fclose(fp), 0);
	}
	assert_int_equal(entries_on_disk(), 8);
	unlink(tmp.buf);

	for (size_t n = 0; n < good.len; n += 5) {
		write_raw(good.buf, n);
		sc = open_cache();
		assert_int_equal(entries(sc), 0);
		statcache_set_clock(sc, later_ns);
		for (int i = 0; i < 8; i++) {
			snprintf(name, sizeof(name), "t/f%d", i);
			expect_hash(sc, name, name);
		}
		assert_int_equal(misses(sc), 8);
		statcache_free(sc);
	}
	strbuf_release(&good);
	strbuf_release(&tmp);
}

/* A racy entry stays racy once merged: read again in the session and
 * after a reopen, so a same-size write with mtime restored is seen. */
static void test_merge_racy(void **state)
{
	struct statcache *sc = open_cache();
	struct hash128 h, want2 = content_hash("5678\n");
	struct timespec times[2];
	struct error err = ERROR_INIT;
	struct stat st1;
	char *p = full("r.txt"), name[32];

	(void)state;
	statcache_set_merge_min(sc, 4);
	put("r.txt", "1234\n");
	lstat_rel("r.txt", &st1);
	hash_rel(sc, "r.txt");
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "x/f%d", i);
		put(name, name);
		hash_rel(sc, name);
	}
	assert_true(entries_on_disk() >= 4);
	assert_int_equal(misses(sc), 9);
	hash_rel(sc, "r.txt");
	assert_int_equal(misses(sc), 10);

	put("r.txt", "5678\n");
	times[0] = st1.st_atim;
	times[1] = st1.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st1, &h, &err),
			 0);
	assert_true(hash_equal(&h, &want2));
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	sc = open_cache();
	assert_int_equal(statcache_hash_file(sc, ws, "r.txt", &st1, &h, &err),
			 0);
	assert_true(hash_equal(&h, &want2));
	assert_int_equal(misses(sc), 1);
	statcache_free(sc);
	free(p);
}

/* A scan's batch is probed first (on threads) and committed after: when
 * its commits merge, the probes before still land on their files (found
 * again by path, the new files sorting before them), so the save of their
 * walked folder keeps them, seen, and drops the deleted one, even with
 * the last commit a merge. */
static void test_probe_across_merge(void **state)
{
	struct statcache *sc = open_cache();
	struct statcache_probe pr[18];
	struct error err = ERROR_INIT;
	struct stat st;
	char name[18][32];
	char *gone = full("w/old");

	(void)state;
	statcache_set_clock(sc, later_ns);
	put("w/old", "old");
	hash_rel(sc, "w/old");
	for (int i = 0; i < 10; i++) {
		snprintf(name[i], sizeof(name[i]), "w/a%d", i);
		put(name[i], name[i]);
		hash_rel(sc, name[i]);
	}
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);
	unlink(gone);

	sc = open_cache();
	statcache_set_clock(sc, later_ns);
	statcache_set_merge_min(sc, 4); /* at the 4th and 8th miss */
	for (int i = 0; i < 18; i++) {
		char *path;

		if (i >= 10) {
			snprintf(name[i], sizeof(name[i]), "w/0%d", i);
			put(name[i], name[i]);
		}
		path = full(name[i]);
		lstat_rel(name[i], &st);
		memset(&pr[i], 0, sizeof(pr[i]));
		pr[i].hint = SIZE_MAX;
		assert_int_equal(statcache_probe(sc, AT_FDCWD, path, name[i],
						 &st, &pr[i], &err),
				 0);
		assert_int_equal(pr[i].hit, i < 10);
		free(path);
	}
	for (int i = 17; i >= 10; i--)
		statcache_commit(sc, name[i], &pr[i]);
	assert_int_equal(entries_on_disk(), 19);
	for (int i = 0; i < 10; i++)
		statcache_commit(sc, name[i], &pr[i]);
	assert_int_equal(misses(sc), 8);
	statcache_note_walked(sc, "w", NULL);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	sc = open_cache();
	assert_int_equal(entries(sc), 18);
	statcache_set_clock(sc, later_ns);
	for (int i = 0; i < 18; i++)
		expect_hash(sc, name[i], name[i]);
	assert_int_equal(misses(sc), 0);
	statcache_free(sc);
	free(gone);
}

/* Entry i of test_merge_large: no file, stat data of its own. */
static void fake(struct strbuf *path, struct stat *st, struct hash128 *h, int i)
{
	strbuf_reset(path);
	strbuf_addf(path, "big/%d/a-path-of-some-length", i);
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0644;
	st->st_ino = (ino_t)i + 1;
	st->st_size = i;
	hash_buf(&i, sizeof(i), h);
}

static void expect_fake(struct statcache *sc, struct strbuf *path, int i)
{
	struct hash128 h, want;
	struct stat st;

	fake(path, &st, &want, i);
	assert_int_equal(statcache_known(sc, path->buf, &st, &h), 1);
	assert_true(hash_equal(&h, &want));
}

/* Merges of a file of megabytes (its pages given back as a merge reads
 * them, read in again by lookups): every entry found with its hash, in the
 * session and after a reopen. */
static void test_merge_large(void **state)
{
	struct statcache *sc = open_cache();
	struct strbuf path = STRBUF_INIT;
	struct error err = ERROR_INIT;
	int n = 30000;

	(void)state;
	for (int i = 0; i < n; i++) {
		struct statcache_probe p;

		memset(&p, 0, sizeof(p));
		fake(&path, &p.st, &p.hash, i);
		p.hashed_ns = 10 * STATCACHE_RACY_NS;
		statcache_commit(sc, path.buf, &p);
	}
	assert_int_equal(entries_on_disk(), 3 * 8192); /* MERGE_MIN */
	for (int i = 0; i < n; i++)
		expect_fake(sc, &path, i);
	assert_int_equal(entries(sc), n);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);
	sc = open_cache();
	assert_int_equal(entries(sc), n);
	for (int i = n - 1; i >= 0; i--)
		expect_fake(sc, &path, i);
	statcache_free(sc);
	strbuf_release(&path);
}

/* The same test with the entries merged every two. */
#define merging(f)                                                             \
	{                                                                      \
		"merging: " #f, f, fresh_merging, NULL, NULL                   \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hit_does_not_read, fresh),
		cmocka_unit_test_setup(test_change_and_touch, fresh),
		cmocka_unit_test_setup(test_racy_entry, fresh),
		cmocka_unit_test_setup(test_save_only_when_changed, fresh),
		cmocka_unit_test_setup(test_corrupt_files_rebuilt, fresh),
		cmocka_unit_test_setup(test_many_entries, fresh),
		cmocka_unit_test_setup(test_deleted_files_dropped, fresh),
		cmocka_unit_test_setup(test_folder_became_file, fresh),
		cmocka_unit_test_setup(test_reload_update_and_order, fresh),
		cmocka_unit_test_setup(test_not_regular, fresh),
		cmocka_unit_test_setup(test_merge_during_session, fresh),
		cmocka_unit_test_setup(test_merge_torn, fresh),
		cmocka_unit_test_setup(test_merge_racy, fresh),
		cmocka_unit_test_setup(test_probe_across_merge, fresh),
		cmocka_unit_test_setup(test_merge_large, fresh),
		merging(test_hit_does_not_read),
		merging(test_change_and_touch),
		merging(test_racy_entry),
		merging(test_save_only_when_changed),
		merging(test_corrupt_files_rebuilt),
		merging(test_many_entries),
		merging(test_deleted_files_dropped),
		merging(test_folder_became_file),
		merging(test_reload_update_and_order),
		merging(test_not_regular),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
