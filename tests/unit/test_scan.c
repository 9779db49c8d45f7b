/* Unit tests for engine/scan: files, folders (Merkle hash), globs,
 * symlinks, and scan_glob for datums. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/scan.h"
#include "engine/statcache.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/strbuf.h"
#include "util/strvec.h"

static char ws[] = "/tmp/pipe-test-scan.XXXXXX";

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

static void link_to(const char *rel, const char *target)
{
	char *p = full(rel);

	assert_int_equal(fs_mkdir_parent(p, 0777), 0);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static void chmod_rel(const char *rel, mode_t mode)
{
	char *p = full(rel);

	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static void remove_rel(const char *rel)
{
	char *p = full(rel);

	assert_int_equal(fs_remove_tree(p), 0);
	free(p);
}

/* A clock far enough ahead that every file looks long settled. */
static int64_t later_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
	       10 * STATCACHE_RACY_NS;
}

static struct hash128 content_hash(const char *s)
{
	struct hash128 h;

	hash_buf(s, strlen(s), &h);
	return h;
}

/* The tree most tests use. */
static int make_tree(void **state)
{
	(void)state;
	put("data/a.csv", "a,1\n");
	put("data/sub/b.csv", "b,2\n");
	put("data/sub/deep/c.txt", "c\n");
	put("data/run.sh", "#!/bin/sh\n");
	chmod_rel("data/run.sh", 0755);
	link_to("data/sub/link", "../a.csv");
	put("top.txt", "top\n");
	put(".pipe/statcache", "not scanned");
	put(".git/HEAD", "not scanned");
	put("other/.git/x", "scanned below the top");
	return 0;
}

static int clear_tree(void **state)
{
	(void)state;
	assert_int_equal(fs_remove_tree(ws), 0);
	assert_int_equal(mkdir(ws, 0700), 0);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(ws) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return fs_remove_tree(ws);
}

/* Scans path (which must exist) and returns its combined hash. */
static struct hash128 scan_ok(struct statcache *sc, const char *path,
			      int is_glob, struct scan_list *out)
{
	struct scan_list own = SCAN_LIST_INIT;
	struct error err = ERROR_INIT;
	struct hash128 h;
	int found = -1;

	if (scan_path(sc, ws, path, is_glob, out ? out : &own, &found, &h,
		      &err))
		fail_msg("%s", err.msg.buf);
	assert_int_equal(found, 1);
	scan_list_release(&own);
	return h;
}

static void expect_paths(const struct scan_list *l, const char *const *want)
{
	size_t n = 0;

	for (; want[n]; n++) {
		assert_true(n < l->nr);
		assert_string_equal(l->v[n].path, want[n]);
	}
	assert_int_equal(l->nr, n);
}

static void test_file(void **state)
{
	struct scan_list l = SCAN_LIST_INIT;
	struct hash128 h, want = content_hash("a,1\n");

	(void)state;
	h = scan_ok(NULL, "data/a.csv", 0, &l);
	assert_int_equal(l.nr, 1);
	assert_string_equal(l.v[0].path, "data/a.csv");
	assert_int_equal(l.v[0].type, 'f');
	assert_int_equal(l.v[0].size, 4);
	assert_true(hash_equal(&l.v[0].hash, &want));
	assert_true(hash_equal(&h, &want)); /* what xxhsum -H2 prints */
	scan_list_release(&l);

	h = scan_ok(NULL, "data/run.sh", 0, &l);
	assert_int_equal(l.v[0].type, 'x');
	assert_false(hash_equal(&h, &l.v[0].hash));
	scan_list_release(&l);
}

static void test_folder(void **state)
{
	static const char *const want[] = {
		"data/a.csv",	       "data/run.sh",	"data/sub/b.csv",
		"data/sub/deep/c.txt", "data/sub/link", NULL,
	};
	struct scan_list l = SCAN_LIST_INIT;
	struct hash128 h1, h2, link = content_hash("../a.csv");

	(void)state;
	h1 = scan_ok(NULL, "data/", 0, &l);
	expect_paths(&l, want);
	assert_int_equal(l.v[1].type, 'x');
	assert_int_equal(l.v[4].type, 'l');
	assert_int_equal(l.v[4].size, 8);
	assert_true(hash_equal(&l.v[4].hash, &link));
	scan_list_release(&l);
	/* "data" without the slash names the same folder */
	h2 = scan_ok(NULL, "data", 0, NULL);
	assert_true(hash_equal(&h1, &h2));
}

/* The recipe in scan.h, computed by hand for a small tree. */
static void add_child(struct hasher *h, char type, const char *name,
		      const struct hash128 *hash)
{
	unsigned char n[8] = {0};

	n[0] = (unsigned char)strlen(name);
	hasher_add(h, &type, 1);
	hasher_add(h, n, 8);
	hasher_add(h, name, strlen(name));
	hasher_add_hash(h, hash);
}

static void test_merkle_recipe(void **state)
{
	struct hasher *root = hasher_new(), *a = hasher_new();
	struct hash128 ha, want, got, c1 = content_hash("1"),
				      c2 = content_hash("2");

	(void)state;
	put("m/a-b", "1");
	put("m/a.txt", "2");
	put("m/a/x", "1");
	/* git's tree order: "a-b" < "a.txt" < "a/" */
	add_child(a, 'f', "x", &c1);
	hasher_final(a, &ha);
	add_child(root, 'f', "a-b", &c1);
	add_child(root, 'f', "a.txt", &c2);
	add_child(root, 'd', "a", &ha);
	hasher_final(root, &want);
	got = scan_ok(NULL, "m/", 0, NULL);
	assert_true(hash_equal(&got, &want));
	hasher_free(root);
	hasher_free(a);

	/* the hash does not depend on where the folder lies */
	put("elsewhere/deeper/m/a-b", "1");
	put("elsewhere/deeper/m/a.txt", "2");
	put("elsewhere/deeper/m/a/x", "1");
	got = scan_ok(NULL, "elsewhere/deeper/m", 0, NULL);
	assert_true(hash_equal(&got, &want));

	/* an empty folder hashes as nothing at all, and adds nothing */
	{
		char *p = full("m/empty");

		assert_int_equal(mkdir(p, 0777), 0);
		free(p);
	}
	got = scan_ok(NULL, "m/", 0, NULL);
	assert_true(hash_equal(&got, &want));
	got = scan_ok(NULL, "m/empty/", 0, NULL);
	hash_buf("", 0, &want);
	assert_true(hash_equal(&got, &want));
}

static void test_merkle_changes(void **state)
{
	struct statcache *sc = NULL;
	struct error err = ERROR_INIT;
	struct hash128 base, h;
	struct timespec t[2] = {{1234567890, 0}, {1234567890, 0}};
	char *p;

	(void)state;
	assert_int_equal(statcache_open(&sc, "/nonexistent/sc", &err), 0);
	base = scan_ok(sc, "data/", 0, NULL);

	/* touch: same hash */
	p = full("data/sub/deep/c.txt");
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
	free(p);
	h = scan_ok(sc, "data/", 0, NULL);
	assert_true(hash_equal(&h, &base));

	/* one nested file changes, same size */
	put("data/sub/deep/c.txt", "C\n");
	h = scan_ok(sc, "data/", 0, NULL);
	assert_false(hash_equal(&h, &base));
	put("data/sub/deep/c.txt", "c\n");
	h = scan_ok(sc, "data/", 0, NULL);
	assert_true(hash_equal(&h, &base));

	/* a rename */
	p = full("data/sub/deep/c.txt");
	{
		char *q = full("data/sub/deep/d.txt");

		assert_int_equal(rename(p, q), 0);
		h = scan_ok(sc, "data/", 0, NULL);
		assert_false(hash_equal(&h, &base));
		assert_int_equal(rename(q, p), 0);
		free(q);
	}
	free(p);
	h = scan_ok(sc, "data/", 0, NULL);
	assert_true(hash_equal(&h, &base));

	/* the executable bit */
	chmod_rel("data/a.csv", 0755);
	h = scan_ok(sc, "data/", 0, NULL);
	assert_false(hash_equal(&h, &base));
	chmod_rel("data/a.csv", 0644);
	h = scan_ok(sc, "data/", 0, NULL);
	assert_true(hash_equal(&h, &base));

	/* a symlink's target */
	remove_rel("data/sub/link");
	link_to("data/sub/link", "b.csv");
	h = scan_ok(sc, "data/", 0, NULL);
	assert_false(hash_equal(&h, &base));
	statcache_free(sc);
}

static void test_cached_scan_reads_nothing(void **state)
{
	struct statcache *sc = NULL;
	struct error err = ERROR_INIT;
	struct statcache_stats st;
	struct scan_list cold = SCAN_LIST_INIT, warm = SCAN_LIST_INIT;
	struct hash128 h1, h2, h3;
	char *cache = full(".pipe/statcache");

	(void)state;
	remove_rel(".pipe");
	assert_int_equal(statcache_open(&sc, cache, &err), 0);
	h1 = scan_ok(sc, "data/", 0, &cold);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	/* just written, so racy: a new session reads them again once */
	assert_int_equal(statcache_open(&sc, cache, &err), 0);
	scan_ok(sc, "data/", 0, NULL);
	statcache_get_stats(sc, &st);
	assert_int_equal(st.misses, 4);
	statcache_set_clock(sc, later_ns);
	scan_ok(sc, "data/", 0, NULL);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);

	/* a session with every file settled reads no file */
	assert_int_equal(statcache_open(&sc, cache, &err), 0);
	h2 = scan_ok(sc, "data/", 0, &warm);
	assert_true(hash_equal(&h1, &h2));
	assert_int_equal(cold.nr, warm.nr);
	for (size_t i = 0; i < cold.nr; i++)
		assert_true(hash_equal(&cold.v[i].hash, &warm.v[i].hash));
	statcache_get_stats(sc, &st);
	assert_int_equal(st.misses, 0);
	assert_int_equal(st.hits, 4); /* the symlink is not cached */
	statcache_free(sc);

	/* the same without any cache */
	h3 = scan_ok(NULL, "data/", 0, NULL);
	assert_true(hash_equal(&h1, &h3));
	scan_list_release(&cold);
	scan_list_release(&warm);
	free(cache);
}

/* A settled cache of the tree: every file hashed, none racy. */
static struct statcache *settled_cache(void)
{
	struct statcache *sc = NULL;
	struct error err = ERROR_INIT;
	char *cache = full(".pipe/statcache");

	remove_rel(".pipe");
	assert_int_equal(statcache_open(&sc, cache, &err), 0);
	statcache_set_clock(sc, later_ns);
	scan_ok(sc, "", 0, NULL);
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);
	assert_int_equal(statcache_open(&sc, cache, &err), 0);
	statcache_set_clock(sc, later_ns);
	free(cache);
	return sc;
}

static void test_scan_ahead(void **state)
{
	struct scan_ahead v[] = {
		{.path = "data/"},
		{.path = "data/sub/"},
		{.path = "data/**/*.csv", .is_glob = 1},
		{.path = "top.txt"},
		{.path = "other/"}, /* changed after caching */
		{.path = "missing/"},
		{.path = "nothing/*.csv", .is_glob = 1},
		{.path = "top.txt/"}, /* not a folder: an error */
	};
	size_t n = sizeof(v) / sizeof(v[0]);
	struct statcache *sc = settled_cache();
	struct statcache_stats st;
	struct error err = ERROR_INIT;
	size_t hits = 0;

	(void)state;
	put("other/.git/x", "changed");
	scan_ahead(sc, ws, v, n);
	for (size_t i = 0; i < 4; i++) {
		struct scan_list l = SCAN_LIST_INIT;
		struct hash128 h = scan_ok(NULL, v[i].path, v[i].is_glob, &l);
		unsigned long long bytes = 0;

		for (size_t k = 0; k < l.nr; k++)
			bytes += l.v[k].size;
		assert_int_equal(v[i].done, 1);
		assert_true(hash_equal(&v[i].hash, &h));
		assert_int_equal(v[i].bytes, bytes);
		hits += v[i].hits;
		scan_list_release(&l);
	}
	assert_int_equal(v[0].hits, 4); /* the symlink is not cached */
	for (size_t i = 4; i < n; i++)
		assert_int_equal(v[i].done, 0); /* scan_path does them */

	/* taken, the results count as the cache's hits, and the files
	 * they covered stay in the cache */
	for (size_t i = 0; i < 4; i++)
		scan_ahead_take(sc, &v[i]);
	statcache_get_stats(sc, &st);
	assert_int_equal(st.hits, hits);
	assert_int_equal(st.misses, 0); /* nothing was read */
	assert_int_equal(statcache_save(sc, &err), 0);
	statcache_free(sc);
	{
		char *cache = full(".pipe/statcache");

		assert_int_equal(statcache_open(&sc, cache, &err), 0);
		statcache_set_clock(sc, later_ns);
		scan_ok(sc, "data/a.csv", 0, NULL);
		scan_ok(sc, "data/sub/b.csv", 0, NULL);
		statcache_get_stats(sc, &st);
		assert_int_equal(st.misses, 0);
		statcache_free(sc);
		free(cache);
	}
}

static void test_workspace_skips_state(void **state)
{
	struct scan_list l = SCAN_LIST_INIT;
	static const char *const want[] = {
		"data/a.csv",	  "data/run.sh",
		"data/sub/b.csv", "data/sub/deep/c.txt",
		"data/sub/link",  "other/.git/x",
		"top.txt",	  NULL,
	};

	(void)state;
	scan_ok(NULL, "", 0, &l);
	expect_paths(&l, want);
	scan_list_release(&l);
}

static void test_glob(void **state)
{
	struct scan_list l = SCAN_LIST_INIT;
	static const char *const csv[] = {"data/a.csv", "data/sub/b.csv", NULL};
	static const char *const sub[] = {
		"data/sub/b.csv", "data/sub/deep/c.txt", "data/sub/link", NULL};
	static const char *const one[] = {"data/a.csv", NULL};
	struct hash128 h1, h2;

	(void)state;
	h1 = scan_ok(NULL, "**/*.csv", 1, &l);
	expect_paths(&l, csv);
	scan_list_release(&l);
	h2 = scan_ok(NULL, "data/**/*.csv", 1, &l);
	expect_paths(&l, csv);
	assert_true(hash_equal(&h1, &h2)); /* same list, same hash */
	scan_list_release(&l);
	/* a matching folder brings all its files */
	scan_ok(NULL, "data/s*", 1, &l);
	expect_paths(&l, sub);
	scan_list_release(&l);
	/* '*' stays in one folder */
	scan_ok(NULL, "data/*.csv", 1, &l);
	expect_paths(&l, one);
	scan_list_release(&l);
	/* folders only */
	scan_ok(NULL, "data/*/", 1, &l);
	expect_paths(&l, sub);
	scan_list_release(&l);

	/* the list hash follows content */
	put("data/sub/b.csv", "B,2\n");
	h2 = scan_ok(NULL, "**/*.csv", 1, NULL);
	assert_false(hash_equal(&h1, &h2));
}

static void test_missing(void **state)
{
	struct scan_list l = SCAN_LIST_INIT;
	struct error err = ERROR_INIT;
	static const char *const paths[] = {
		"nope", "nope/", "data/nope.csv", "data/a.csv/x", "nope/x/y",
	};
	struct hash128 h;
	int found;

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		found = -1;
		assert_int_equal(
			scan_path(NULL, ws, paths[i], 0, &l, &found, &h, &err),
			0);
		assert_int_equal(found, 0);
		assert_int_equal(l.nr, 0);
	}
	found = -1;
	assert_int_equal(
		scan_path(NULL, ws, "data/*.none", 1, &l, &found, &h, &err), 0);
	assert_int_equal(found, 0);
	found = -1;
	assert_int_equal(
		scan_path(NULL, ws, "nope/**/x", 1, &l, &found, &h, &err), 0);
	assert_int_equal(found, 0);
	assert_int_equal(l.nr, 0);
	scan_list_release(&l);
}

static void expect_error(const char *path, int is_glob, const char *msg)
{
	struct scan_list l = SCAN_LIST_INIT;
	struct error err = ERROR_INIT;
	struct hash128 h;
	int found;

	assert_int_equal(
		scan_path(NULL, ws, path, is_glob, &l, &found, &h, &err), -1);
	assert_string_equal(err.msg.buf, msg);
	assert_int_equal(l.nr, 0);
	scan_list_release(&l);
	error_release(&err);
}

static void test_symlinks(void **state)
{
	struct scan_list l = SCAN_LIST_INIT;
	struct strbuf inside = STRBUF_INIT;

	(void)state;
	link_to("data/x", "../../etc/passwd");
	expect_error("data/", 0,
		     "symlink 'data/x' points outside the workspace");
	expect_error("data/x", 0,
		     "symlink 'data/x' points outside the workspace");
	expect_error("**/x", 1,
		     "symlink 'data/x' points outside the workspace");
	remove_rel("data/x");
	link_to("data/x", "/etc/passwd");
	expect_error("data/", 0,
		     "symlink 'data/x' points outside the workspace");
	remove_rel("data/x");

	/* an absolute target inside the workspace is fine, as is a dangling
	 * one inside */
	strbuf_addf(&inside, "%s/top.txt", ws);
	link_to("data/x", inside.buf);
	link_to("data/y", "sub/nothing/../../../top.txt");
	scan_ok(NULL, "data/x", 0, &l);
	assert_int_equal(l.v[0].type, 'l');
	scan_list_release(&l);
	scan_ok(NULL, "data/", 0, NULL);
	strbuf_release(&inside);

	/* a symlink to a folder is a leaf, never walked */
	link_to("data/dirlink", "sub");
	scan_ok(NULL, "data/dirlink", 0, &l);
	assert_int_equal(l.nr, 1);
	assert_int_equal(l.v[0].type, 'l');
	scan_list_release(&l);
	expect_error("data/dirlink/b.csv", 0,
		     "path 'data/dirlink/b.csv' goes through symlink "
		     "'data/dirlink'");
	expect_error("data/dirlink/", 0, "'data/dirlink/' is not a folder");
	expect_error("top.txt/", 0, "'top.txt/' is not a folder");
}

/* Enough files for the batch to be split across threads. */
static void test_many_files(void **state)
{
	struct statcache *sc = NULL;
	struct error err = ERROR_INIT;
	struct scan_list a = SCAN_LIST_INIT, b = SCAN_LIST_INIT;
	struct statcache_stats st;
	struct hash128 ha, hb;
	char name[64], *fifo;

	(void)state;
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "big/d%d/f%04d", i % 3, i);
		put(name, name);
	}
	assert_int_equal(statcache_open(&sc, "/nonexistent/sc", &err), 0);
	statcache_set_clock(sc, later_ns);
	ha = scan_ok(sc, "big/", 0, &a);
	hb = scan_ok(NULL, "big/", 0, &b);
	assert_true(hash_equal(&ha, &hb));
	assert_int_equal(a.nr, 3000);
	assert_int_equal(b.nr, 3000);
	for (size_t i = 0; i < a.nr; i++) {
		struct hash128 want;

		snprintf(name, sizeof(name), "big/d%zu/f%04zu", i / 1000,
			 (i % 1000) * 3 + i / 1000);
		want = content_hash(name);
		assert_string_equal(a.v[i].path, name);
		assert_true(hash_equal(&a.v[i].hash, &want));
		assert_true(hash_equal(&b.v[i].hash, &want));
	}
	scan_list_release(&b);
	hb = scan_ok(sc, "big/", 0, &b);
	assert_true(hash_equal(&ha, &hb));
	statcache_get_stats(sc, &st);
	assert_int_equal(st.misses, 3000);
	assert_int_equal(st.hits, 3000);

	/* an error in the middle of a batch names the file */
	fifo = full("big/d0/f1500");
	assert_int_equal(unlink(fifo), 0);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	expect_error("big/", 0,
		     "'big/d0/f1500' is not a file, folder or "
		     "symlink");
	free(fifo);
	scan_list_release(&a);
	scan_list_release(&b);
	statcache_free(sc);
}

static void expect_glob(const char *pattern, const char *const *want)
{
	struct strvec sv = STRVEC_INIT;
	struct error err = ERROR_INIT;
	size_t n = 0;

	if (scan_glob(ws, pattern, &sv, &err))
		fail_msg("%s", err.msg.buf);
	for (; want[n]; n++) {
		assert_true(n < sv.nr);
		assert_string_equal(sv.v[n], want[n]);
	}
	assert_int_equal(sv.nr, n);
	strvec_clear(&sv);
}

static void test_scan_glob(void **state)
{
	static const char *const star[] = {"data/a.csv", "data/run.sh",
					   "data/sub", NULL};
	static const char *const dirs[] = {"data/sub", NULL};
	static const char *const deep[] = {"data/a.csv", "data/sub/b.csv",
					   NULL};
	static const char *const any[] = {"data", "other", "top.txt", NULL};
	static const char *const none[] = {NULL};

	(void)state;
	expect_glob("data/*", star);
	expect_glob("data/*/", dirs);
	expect_glob("**/*.csv", deep);
	expect_glob("*", any);
	expect_glob("missing/*", none);
	expect_glob("data/*.none", none);
}

/* One file's hash through scan_path, the workspace being ".". */
static struct hash128 scan_here(struct statcache *sc, const char *path,
				int *found)
{
	struct scan_list l = SCAN_LIST_INIT;
	struct error err = ERROR_INIT;
	struct hash128 h;

	*found = -1;
	if (scan_path(sc, ".", path, 0, &l, found, &h, &err))
		fail_msg("%s", err.msg.buf);
	scan_list_release(&l);
	return h;
}

/* Stats taken ahead: each result is used once, for the pointer it was
 * taken for; a dropped path, and a path asked for again, is stat'ed anew,
 * so a file changed in between is seen changed. */
static void test_prestat(void **state)
{
	enum { N = SCAN_PRESTAT_MIN * 2 };
	char names[N][16];
	const char *paths[N + 1];
	struct statcache *sc = settled_cache();
	char old[PATH_MAX];
	struct hash128 h;
	int found;

	(void)state;
	assert_non_null(getcwd(old, sizeof(old)));
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "p/%d", i);
		if (i != 7) /* p/7 is missing */
			put(names[i], names[i]);
		paths[i] = names[i];
	}
	assert_int_equal(chdir(ws), 0);
	/* in the stat cache: an old stat would give the old hash */
	for (int i = 0; i < N; i++)
		scan_here(sc, paths[i], &found);
	scan_prestat_start(paths, N);
	scan_prestat_settle(); /* every result taken ahead */

	/* p/3 dropped, then changed: scan_path sees the change */
	scan_prestat_drop(paths[3]);
	put("p/3", "changed after the stats were taken");
	h = scan_here(sc, paths[3], &found);
	assert_int_equal(found, 1);
	{
		struct hash128 want =
			content_hash("changed after the stats were taken");

		assert_true(hash_equal(&h, &want));
	}
	/* the others as they were; each result once */
	for (int i = 0; i < N; i++) {
		struct hash128 want = content_hash(names[i]);

		if (i == 3)
			continue;
		h = scan_here(sc, paths[i], &found);
		assert_int_equal(found, i != 7);
		if (i != 7)
			assert_true(hash_equal(&h, &want));
	}
	/* asked for again after a change: not the old result */
	put("p/5", "a longer content than before");
	{
		struct hash128 want =
			content_hash("a longer content than before");

		h = scan_here(sc, paths[5], &found);
		assert_true(hash_equal(&h, &want));
	}
	/* a copy of the path is not the path: stat'ed anew */
	put("p/9", "nine, changed");
	{
		char copy[] = "p/9";
		struct hash128 want = content_hash("nine, changed");

		h = scan_here(sc, copy, &found);
		assert_true(hash_equal(&h, &want));
	}
	scan_prestat_stop();

	/* more paths than the thread may run ahead (its ring): each
	 * asked for in turn gets its own file's hash; the same names at
	 * other addresses are other paths */
	{
		size_t many = 3 * 4096 + 7;
		char **v = calloc(many, sizeof(*v));

		assert_non_null(v);
		for (size_t i = 0; i < many; i++) {
			v[i] = strdup(names[(i * 7) % N]);
			assert_non_null(v[i]);
		}
		scan_prestat_start((const char **)v, many);
		for (size_t i = 0; i < many; i++) {
			const char *name = names[(i * 7) % N];
			struct hash128 want = content_hash(name);

			if (!strcmp(name, "p/7") || !strcmp(name, "p/3") ||
			    !strcmp(name, "p/5") || !strcmp(name, "p/9"))
				continue; /* missing or changed above */
			h = scan_here(sc, v[i], &found);
			assert_int_equal(found, 1);
			assert_true(hash_equal(&h, &want));
		}
		scan_prestat_stop();
		for (size_t i = 0; i < many; i++)
			free(v[i]);
		free(v);
	}
	assert_int_equal(chdir(old), 0);
	statcache_free(sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_folder, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_merkle_recipe, NULL,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_merkle_changes, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_cached_scan_reads_nothing,
						make_tree, clear_tree),
		cmocka_unit_test_setup_teardown(test_scan_ahead, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_prestat, NULL, clear_tree),
		cmocka_unit_test_setup_teardown(test_workspace_skips_state,
						make_tree, clear_tree),
		cmocka_unit_test_setup_teardown(test_glob, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_missing, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_symlinks, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_scan_glob, make_tree,
						clear_tree),
		cmocka_unit_test_setup_teardown(test_many_files, NULL,
						clear_tree),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
