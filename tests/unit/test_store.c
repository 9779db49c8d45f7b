/* Unit tests for store/: commit + restore, provenance, run-cache, refs,
 * runs, gc, crash safety; `git fsck --strict` after every test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/internal.h" /* the door, for compare-and-swap */
#include "store/store.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

struct fx {
	char *root;	/* temp folder */
	char *ws;	/* workspace: root/ws */
	char *pipe_dir; /* ws/.pipe */
	char *git_dir;	/* ws/.pipe/store */
	struct store *st;
	struct error err;
	struct strvec garbage; /* strings freed at teardown */
};

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, f);
	strbuf_vaddf(&sb, f, ap);
	va_end(ap);
	return strbuf_detach(&sb, NULL);
}

/* A formatted string the fixture frees at teardown. */
static char *own(struct fx *fx, const char *f, ...)
	__attribute__((format(printf, 2, 3)));
static char *own(struct fx *fx, const char *f, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, f);
	strbuf_vaddf(&sb, f, ap);
	va_end(ap);
	strvec_push_nodup(&fx->garbage, strbuf_detach(&sb, NULL));
	return fx->garbage.v[fx->garbage.nr - 1];
}

#define CHECK(fx, call)                                                        \
	do {                                                                   \
		if ((call) < 0) {                                              \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__,     \
				(fx)->err.msg.buf);                            \
			fail();                                                \
		}                                                              \
	} while (0)

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/pipe-store-test.XXXXXX";

	if (!mkdtemp(tmpl))
		return -1;
	fx->root = xstrdup(tmpl);
	fx->ws = fmt("%s/ws", fx->root);
	fx->pipe_dir = fmt("%s/.pipe", fx->ws);
	fx->git_dir = fmt("%s/store", fx->pipe_dir);
	error_init(&fx->err);
	strvec_init(&fx->garbage);
	if (fs_mkdir_p(fx->ws, 0755) ||
	    store_open(&fx->st, fx->pipe_dir, &fx->err))
		return -1;
	*state = fx;
	return 0;
}

/* Run a shell command; returns its exit status. */
static int sh(const char *f, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *f, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, f);
	strbuf_vaddf(&sb, f, ap);
	va_end(ap);
	rc = system(sb.buf);
	strbuf_release(&sb);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* git fsck --strict; its output (but the notice about an unborn HEAD
 * before the first run) goes to stderr. */
static int fsck(struct fx *fx)
{
	return sh("out=$(git --git-dir '%s' fsck --strict --no-progress 2>&1);"
		  " rc=$?; printf '%%s' \"$out\" | "
		  "grep -v '^notice: HEAD points to an unborn' >&2; exit $rc",
		  fx->git_dir);
}

static void assert_fsck(struct fx *fx)
{
	assert_int_equal(fsck(fx), 0);
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int ok = fsck(fx) == 0;

	store_free(fx->st);
	fs_remove_tree(fx->root);
	error_release(&fx->err);
	strvec_clear(&fx->garbage);
	free(fx->root);
	free(fx->ws);
	free(fx->pipe_dir);
	free(fx->git_dir);
	free(fx);
	return ok ? 0 : -1;
}

static void reopen(struct fx *fx)
{
	store_free(fx->st);
	CHECK(fx, store_open(&fx->st, fx->pipe_dir, &fx->err));
}

/* ---- workspace helpers -------------------------------------------------- */

static void put(struct fx *fx, const char *rel, const void *data, size_t len,
		mode_t mode)
{
	char *path = fmt("%s/%s", fx->ws, rel);
	int fd;

	assert_int_equal(fs_mkdir_parent(path, 0755), 0);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	chmod(path, mode);
	free(path);
}

static void put_str(struct fx *fx, const char *rel, const char *s)
{
	put(fx, rel, s, strlen(s), 0644);
}

/* Deterministic pseudo-random bytes. */
static char *noise(size_t len, uint64_t seed)
{
	char *p = xmalloc(len);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (char)(x >> 24);
	}
	return p;
}

static void assert_content(struct fx *fx, const char *rel, const void *data,
			   size_t len)
{
	char *path = fmt("%s/%s", fx->ws, rel);
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(strbuf_read_file(&sb, path, len), 0);
	assert_int_equal(sb.len, len);
	assert_memory_equal(sb.buf, data, len);
	strbuf_release(&sb);
	free(path);
}

static mode_t mode_of(struct fx *fx, const char *rel)
{
	char *path = fmt("%s/%s", fx->ws, rel);
	struct stat st;
	int rc = lstat(path, &st);

	free(path);
	return rc ? 0 : st.st_mode;
}

static int exists(struct fx *fx, const char *rel)
{
	return mode_of(fx, rel) != 0;
}

static void commit(struct fx *fx, const char *stage, char *const *outs,
		   const char *key, char *id)
{
	struct store_prov p;

	store_prov_init(&p);
	if (key)
		snprintf(p.key, sizeof(p.key), "%s", key);
	CHECK(fx, store_commit_stage(fx->st, fx->ws, stage, outs, &p, id,
				     &fx->err));
	store_prov_release(&p);
}

/* ---- tests ----------------------------------------------------------------
 */

#define BIG (STORE_CAS_MIN * 2 + 12345)

static void make_outputs(struct fx *fx, char *big)
{
	put_str(fx, "out/clean/a.csv", "id,name\n1,a\n");
	put(fx, "out/clean/sub/big.bin", big, BIG, 0644);
	put_str(fx, "out/clean/deep/er/x.txt", "deep\n");
	put(fx, "out/clean/run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	put(fx, "out/clean/bigexec", big, STORE_CAS_MIN, 0755);
	assert_int_equal(symlink("a.csv", own(fx, "%s/out/clean/link", fx->ws)),
			 0);
	assert_int_equal(
		fs_mkdir_p(own(fx, "%s/out/clean/empty/inner", fx->ws), 0755),
		0);
	put_str(fx, "model/m.txt", "weights\n");
	assert_int_equal(fs_mkdir_p(own(fx, "%s/logs", fx->ws), 0755), 0);
}

static void check_outputs(struct fx *fx, const char *big)
{
	char target[64] = {0};
	char *link = own(fx, "%s/out/clean/link", fx->ws);

	assert_content(fx, "out/clean/a.csv", "id,name\n1,a\n", 12);
	assert_content(fx, "out/clean/sub/big.bin", big, BIG);
	assert_content(fx, "out/clean/bigexec", big, STORE_CAS_MIN);
	assert_content(fx, "out/clean/deep/er/x.txt", "deep\n", 5);
	assert_content(fx, "out/clean/run.sh", "#!/bin/sh\necho hi\n", 18);
	assert_true(mode_of(fx, "out/clean/run.sh") & S_IXUSR);
	assert_true(mode_of(fx, "out/clean/bigexec") & S_IXUSR);
	assert_false(mode_of(fx, "out/clean/a.csv") & S_IXUSR);
	assert_true(S_ISLNK(mode_of(fx, "out/clean/link")));
	assert_int_equal(readlink(link, target, sizeof(target) - 1), 5);
	assert_string_equal(target, "a.csv");
	assert_true(S_ISDIR(mode_of(fx, "out/clean/empty/inner")));
	assert_true(S_ISDIR(mode_of(fx, "logs")));
	assert_content(fx, "model/m.txt", "weights\n", 8);
}

static void test_roundtrip(void **state)
{
	struct fx *fx = *state;
	char *big = noise(BIG, 1);
	char *outs[] = {"out/clean/", "model/m.txt", "logs/", NULL};
	char id[STORE_ID_SIZE];
	struct store_manifest m;
	int fd;

	make_outputs(fx, big);
	commit(fx, "clean", outs, NULL, id);
	assert_fsck(fx);

	/* Wreck the workspace, editing the big file in place (same inode): the
	 * store has its own copy. */
	fd = open(own(fx, "%s/out/clean/sub/big.bin", fx->ws), O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XXXX", 4, 100), 4);
	close(fd);
	put_str(fx, "out/clean/a.csv", "changed\n");
	put_str(fx, "out/clean/extra.txt", "not in the commit\n");
	unlink(own(fx, "%s/out/clean/run.sh", fx->ws));
	fs_remove_tree(own(fx, "%s/out/clean/empty", fx->ws));
	fs_remove_tree(own(fx, "%s/model", fx->ws));
	put_str(fx, "logs/new.log", "x\n");

	CHECK(fx, store_restore(fx->st, id, fx->ws, &fx->err));
	check_outputs(fx, big);
	assert_false(exists(fx, "out/clean/extra.txt"));
	assert_false(exists(fx, "logs/new.log"));
	assert_false(exists(fx, "out/.clean.pipe-tmp-0")); /* sanity */

	CHECK(fx, store_read_manifest(fx->st, id, &m, &fx->err));
	assert_int_equal(m.outputs_nr, 3);
	assert_string_equal(m.outputs[0], "out/clean/");
	assert_int_equal(m.files_nr, 7);
	assert_string_equal(m.files[0].path, "model/m.txt");
	assert_string_equal(m.files[2].path, "out/clean/bigexec");
	assert_int_equal(m.files[2].kind, STORE_CAS);
	assert_int_equal(m.files[2].exec, 1);
	assert_int_equal(m.files[2].size, STORE_CAS_MIN);
	assert_int_equal(m.files[1].kind, STORE_BLOB);
	/* CAS names are the XXH3-128 of `xxhsum -H2`. */
	assert_int_equal(
		sh("xxhsum -H2 '%s/out/clean/bigexec' | grep -q '^%s '", fx->ws,
		   m.files[2].hash),
		0);
	assert_int_equal(m.dirs_nr, 2); /* empty/inner/ and logs/ */
	store_manifest_release(&m);

	/* Plain git reads it: the pointer blob and the manifest. */
	assert_int_equal(sh("git --git-dir '%s' cat-file -p "
			    "refs/pipe/stages/clean:out/clean/sub/big.bin | "
			    "grep -q '^pipe-cas 1$'",
			    fx->git_dir),
			 0);
	assert_int_equal(sh("git --git-dir '%s' ls-tree -r %s | grep -q "
			    "'^100755 blob .*out/clean/run.sh$'",
			    fx->git_dir, id),
			 0);
	free(big);
}

static void test_restore_replaces_kinds(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"out/", "one.txt", NULL};
	char id[STORE_ID_SIZE];

	put_str(fx, "out/f.txt", "f\n");
	put_str(fx, "one.txt", "1\n");
	commit(fx, "s", outs, NULL, id);
	/* A file where the folder was, a folder where the file was. */
	fs_remove_tree(own(fx, "%s/out", fx->ws));
	put_str(fx, "out", "now a file\n");
	unlink(own(fx, "%s/one.txt", fx->ws));
	put_str(fx, "one.txt/inside", "now a folder\n");
	CHECK(fx, store_restore(fx->st, id, fx->ws, &fx->err));
	assert_content(fx, "out/f.txt", "f\n", 2);
	assert_content(fx, "one.txt", "1\n", 2);
	/* And into an empty workspace. */
	fs_remove_tree(own(fx, "%s/out", fx->ws));
	unlink(own(fx, "%s/one.txt", fx->ws));
	CHECK(fx, store_restore(fx->st, id, fx->ws, &fx->err));
	assert_content(fx, "out/f.txt", "f\n", 2);
}

static void test_pointer_lookalike(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"fake.txt", NULL};
	char id[STORE_ID_SIZE];
	struct strbuf sb = STRBUF_INIT;
	const char *fake = "pipe-cas 1\nxxh128 "
			   "00112233445566778899aabbccddeeff\nsize 5\n";

	put_str(fx, "fake.txt", fake);
	commit(fx, "s", outs, NULL, id);
	unlink(own(fx, "%s/fake.txt", fx->ws));
	CHECK(fx, store_restore(fx->st, id, fx->ws, &fx->err));
	assert_content(fx, "fake.txt", fake, strlen(fake));
	CHECK(fx, store_read_file(fx->st, id, "fake.txt", &sb, &fx->err));
	assert_string_equal(sb.buf, fake);
	strbuf_release(&sb);
}

/* A commit made elsewhere (pipe pull) whose manifest reaches outside the
 * workspace is refused, and writes nothing. */
static void test_hostile_manifest(void **state)
{
	struct fx *fx = *state;
	const char *bad[] = {"output ../evil/",	       "output /tmp/evil/",
			     "output a/\noutput a/b/", "output .pipe/x/",
			     "output a/\ndir b/",      "output a/./b/"};
	char *idfile = own(fx, "%s/id", fx->root);
	struct strbuf id = STRBUF_INIT;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(
			sh("cd '%s' && g='git -c user.name=t "
			   "-c user.email=t@pipe.invalid --git-dir %s' && "
			   "b=$(printf 'pipe-manifest 1\n%s\n' | $g "
			   "hash-object -w --stdin) && "
			   "t=$(printf '100644 blob %%s\t.pipe-manifest\n' $b | "
			   "$g mktree) && $g commit-tree $t -m x > '%s'",
			   fx->root, fx->git_dir, bad[i], idfile),
			0);
		strbuf_reset(&id);
		assert_int_equal(strbuf_read_file(&id, idfile, 0), 0);
		strbuf_trim_trailing_newline(&id);
		assert_int_equal(
			store_restore(fx->st, id.buf, fx->ws, &fx->err), -1);
		assert_non_null(strstr(fx->err.msg.buf, "unsafe"));
	}
	assert_int_equal(access(own(fx, "%s/evil", fx->root), F_OK), -1);
	strbuf_release(&id);
}

static void test_parent_chain(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c1[STORE_ID_SIZE], c2[STORE_ID_SIZE], head[STORE_ID_SIZE];
	struct store_commit *log;
	size_t nr;

	assert_int_equal(store_stage_head(fx->st, "s", head, &fx->err), 0);
	put_str(fx, "o.txt", "1\n");
	commit(fx, "s", outs, NULL, c1);
	put_str(fx, "o.txt", "2\n");
	commit(fx, "s", outs, NULL, c2);
	assert_int_equal(store_stage_head(fx->st, "s", head, &fx->err), 1);
	assert_string_equal(head, c2);
	CHECK(fx, store_stage_log(fx->st, "s", 0, &log, &nr, &fx->err));
	assert_int_equal(nr, 2);
	assert_string_equal(log[0].id, c2);
	assert_string_equal(log[0].parent, c1);
	assert_string_equal(log[1].id, c1);
	assert_string_equal(log[1].parent, "");
	assert_string_equal(log[0].prov.stage, "s");
	assert_int_equal(log[0].prov.bytes_out, 2);
	store_commits_free(log, nr);
	CHECK(fx, store_stage_log(fx->st, "s", 1, &log, &nr, &fx->err));
	assert_int_equal(nr, 1);
	store_commits_free(log, nr);
	CHECK(fx, store_stage_log(fx->st, "none", 0, &log, &nr, &fx->err));
	assert_int_equal(nr, 0);
	store_commits_free(log, nr);
}

static void fill_prov(struct store_prov *p)
{
	store_prov_init(p);
	p->stage = xstrdup("sweep@lr=0.1,depth=3");
	snprintf(p->key, sizeof(p->key), "%s",
		 "0123456789abcdef0123456789abcdef");
	p->state = xstrdup("cached");
	p->cached_from = xstrdup("1111111111111111111111111111111111111111");
	store_prov_add_input(p, "data/raw/a b.csv",
			     "ffffffffffffffffffffffffffffffff");
	store_prov_add_input(p, "weird\nname\\with\tctl ",
			     "00000000000000000000000000000000");
	store_prov_add_upstream(p, "pre process",
				"2222222222222222222222222222222222222222");
	store_prov_add_param(p, "pre.min_len", "5");
	store_prov_add_param(p, "k=ey", " spaced value \n: Pipe-Key: x");
	store_prov_add_param(p, "empty", "");
	store_prov_add_param(p, "utf8", "naïve ☃");
	p->image = xstrdup("example/pre:1.4@sha256:abc");
	p->executor = xstrdup("docker");
	p->git_head = xstrdup("3333333333333333333333333333333333333333");
	p->git_dirty = 1;
	p->started = 1714564800; /* 2024-05-01T12:00:00Z */
	p->duration_ms = 1234;
	p->datums_processed = 3;
	p->datums_skipped = 1;
	p->datums_total = 4;
	p->bytes_in = 99;
	p->bytes_out = 77;
	ALLOC_GROW(p->extra, 1, p->extra_alloc);
	p->extra[0].key = xstrdup("Pipe-Future");
	p->extra[0].value = xstrdup("kept\x01");
	p->extra_nr = 1;
}

static void check_prov(const struct store_prov *a, const struct store_prov *b)
{
	assert_string_equal(a->stage, b->stage);
	assert_string_equal(a->key, b->key);
	assert_string_equal(a->state, b->state);
	assert_string_equal(a->cached_from, b->cached_from);
	assert_int_equal(a->inputs_nr, b->inputs_nr);
	for (size_t i = 0; i < a->inputs_nr; i++) {
		assert_string_equal(a->inputs[i].path, b->inputs[i].path);
		assert_string_equal(a->inputs[i].hash, b->inputs[i].hash);
	}
	assert_int_equal(a->upstreams_nr, b->upstreams_nr);
	assert_string_equal(a->upstreams[0].stage, b->upstreams[0].stage);
	assert_string_equal(a->upstreams[0].commit, b->upstreams[0].commit);
	assert_int_equal(a->params_nr, b->params_nr);
	for (size_t i = 0; i < a->params_nr; i++) {
		assert_string_equal(a->params[i].key, b->params[i].key);
		assert_string_equal(a->params[i].value, b->params[i].value);
	}
	assert_string_equal(a->image, b->image);
	assert_string_equal(a->executor, b->executor);
	assert_string_equal(a->git_head, b->git_head);
	assert_int_equal(a->git_dirty, b->git_dirty);
	assert_int_equal(a->started, b->started);
	assert_int_equal(a->duration_ms, b->duration_ms);
	assert_int_equal(a->datums_processed, b->datums_processed);
	assert_int_equal(a->datums_skipped, b->datums_skipped);
	assert_int_equal(a->datums_total, b->datums_total);
	assert_int_equal(a->bytes_in, b->bytes_in);
	assert_int_equal(a->extra_nr, b->extra_nr);
	assert_string_equal(a->extra[0].key, b->extra[0].key);
	assert_string_equal(a->extra[0].value, b->extra[0].value);
}

static void test_prov_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct store_prov p, q;
	struct strbuf msg = STRBUF_INIT;
	char *outs[] = {"o.txt", NULL};
	char id[STORE_ID_SIZE];

	fill_prov(&p);
	store_prov_format(&p, &msg);
	assert_non_null(
		strstr(msg.buf, "\nPipe-Started: 2024-05-01T12:00:00Z\n"));
	assert_non_null(strstr(msg.buf, "\nPipe-Datums: 3/1/4\n"));
	assert_non_null(strstr(
		msg.buf,
		"\nPipe-Git-Head: 3333333333333333333333333333333333333333 dirty\n"));
	assert_non_null(strstr(
		msg.buf,
		"\nPipe-Param: k\\x3dey=\\x20spaced value \\n: Pipe-Key: x\n"));
	CHECK(fx, store_prov_parse(msg.buf, &q, &fx->err));
	check_prov(&p, &q);
	assert_int_equal(q.bytes_out, 77);
	store_prov_release(&q);

	/* Through a commit: the store records the bytes it committed. */
	put_str(fx, "o.txt", "abc");
	CHECK(fx, store_commit_stage(fx->st, fx->ws, p.stage, outs, &p, id,
				     &fx->err));
	CHECK(fx, store_read_prov(fx->st, id, &q, &fx->err));
	check_prov(&p, &q);
	assert_int_equal(q.bytes_out, 3);
	store_prov_release(&q);
	/* git itself parses the trailers. */
	assert_int_equal(
		sh("git --git-dir '%s' log -1 --format=%%B %s | "
		   "git interpret-trailers --parse | "
		   "grep -qx 'Pipe-Key: 0123456789abcdef0123456789abcdef'",
		   fx->git_dir, id),
		0);

	/* Broken blocks fail. */
	assert_int_equal(store_prov_parse("no trailers", &q, &fx->err), -1);
	assert_int_equal(
		store_prov_parse("s\n\nPipe-Kind: stage\nbroken line\n", &q,
				 &fx->err),
		-1);
	assert_int_equal(
		store_prov_parse("s\n\nPipe-Kind: stage\nPipe-Key: xyz\n", &q,
				 &fx->err),
		-1);
	assert_int_equal(
		store_prov_parse("s\n\nPipe-Kind: stage\nPipe-Param: a=\\q\n",
				 &q, &fx->err),
		-1);
	store_prov_release(&p);
	strbuf_release(&msg);
}

static void test_escape(void **state)
{
	const char *cases[] = {"",     "plain", " lead",    "trail ",
			       "a\\b", "\n",	"\x01\x7f", "x\\x41"};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf e = STRBUF_INIT, u = STRBUF_INIT;

		store_escape(&e, cases[i], "=");
		assert_null(strchr(e.buf, '\n'));
		assert_int_equal(store_unescape(&u, e.buf, e.len), 0);
		assert_string_equal(u.buf, cases[i]);
		strbuf_release(&e);
		strbuf_release(&u);
	}
}

static const char *key_n(int n)
{
	static char k[HASH_HEX_LEN + 1];

	snprintf(k, sizeof(k), "%032x", n);
	return k;
}

static void test_find_key(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[3][STORE_ID_SIZE], got[STORE_ID_SIZE];
	char *keys = own(fx, "%s/pipe-keys", fx->git_dir);
	struct strbuf sb = STRBUF_INIT;

	for (int i = 0; i < 3; i++) {
		put(fx, "o.txt", &i, sizeof(i), 0644);
		commit(fx, "s", outs, key_n(i + 1), c[i]);
		if (i == 0) /* the index catches up with later commits */
			assert_int_equal(store_find_key(fx->st, "s", key_n(1),
							got, &fx->err),
					 1);
	}
	put_str(fx, "o.txt", "other stage");
	commit(fx, "t", outs, key_n(9), got);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_find_key(fx->st, "s", key_n(i + 1), got,
						&fx->err),
				 1);
		assert_string_equal(got, c[i]);
	}
	assert_int_equal(store_find_key(fx->st, "s", key_n(7), got, &fx->err),
			 0);
	assert_int_equal(store_find_key(fx->st, "s", key_n(9), got, &fx->err),
			 0);
	assert_int_equal(store_find_key(fx->st, NULL, key_n(9), got, &fx->err),
			 1);
	assert_int_equal(store_find_key(fx->st, "s", "nothex", got, &fx->err),
			 -1);

	reopen(fx); /* the index is saved when the store is freed */
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	assert_int_equal(strncmp(sb.buf, "pipe-keys 2 ", 12), 0);
	/* Corrupt, truncated and missing indexes are rebuilt (reopening the
	 * store: an open one keeps its index in memory). */
	assert_int_equal(fs_write_atomic(keys, "garbage\n", 8, &fx->err), 0);
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "s", key_n(2), got, &fx->err),
			 1);
	assert_string_equal(got, c[1]);
	reopen(fx);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	assert_int_equal(strncmp(sb.buf, "pipe-keys 2 ", 12), 0);
	assert_int_equal(fs_write_atomic(keys, sb.buf, sb.len / 2, &fx->err),
			 0);
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "s", key_n(3), got, &fx->err),
			 1);
	unlink(keys);
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "s", key_n(1), got, &fx->err),
			 1);
	assert_string_equal(got, c[0]);
	/* A ref moved behind the index's back (like `pipe pull`): the next
	 * process sees it (one process syncs once: it holds the lock). */
	assert_int_equal(
		sh("git --git-dir '%s' update-ref refs/pipe/stages/s %s",
		   fx->git_dir, c[0]),
		0);
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "s", key_n(3), got, &fx->err),
			 0);
	assert_int_equal(store_find_key(fx->st, "s", key_n(1), got, &fx->err),
			 1);
	strbuf_release(&sb);
}

/* Append text to the file at path. */
static void append(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);

	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* The refs digest the index covers (its log's last, else its file's):
 * "-" when the next process must read every ref and load the whole
 * index. */
static char *last_refs(struct fx *fx)
{
	char *log = fmt("%s/pipe-keys.log", fx->git_dir), *at = NULL, *ret;
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, log, 0) == 0)
		for (char *p = sb.buf; (p = strstr(p, "\nrefs ")); p++)
			at = p + 6;
	if (!at) { /* the file, written whole: "pipe-keys 2 <id> <refs> " */
		free(log);
		log = fmt("%s/pipe-keys", fx->git_dir);
		strbuf_reset(&sb);
		assert_int_equal(strbuf_read_file(&sb, log, 0), 0);
		at = strchr(sb.buf + 12, ' ') + 1;
		*strchr(at, ' ') = '\n';
	}
	ret = xstrndup(at, strcspn(at, "\n"));
	strbuf_release(&sb);
	free(log);
	return ret;
}

/* A run record's heads from one pass over the refs (store_run_add_heads):
 * names that are their own ref entries and names that are escaped, a
 * ref loose and packed, a batch's pending move winning over its ref, a
 * stage without a commit left out; the record borrows the names and
 * reads back with every head. */
static void test_run_add_heads(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	const char *names[] = {"plain", "with.dot", "m@n=1", "none", "p2"};
	char c[5][STORE_ID_SIZE], now[STORE_ID_SIZE], id[STORE_ID_SIZE];
	struct store_run run, back;
	char *borrowed[5];

	for (int i = 0; i < 5; i++) {
		if (i == 3)
			continue;
		put(fx, "o.txt", &i, sizeof(i), 0644);
		commit(fx, names[i], outs, NULL, c[i]);
	}
	/* p2 moves in a batch not yet flushed: its pending commit wins */
	store_batch_begin(fx->st);
	put_str(fx, "o.txt", "later");
	commit(fx, "p2", outs, NULL, now);
	for (int i = 0; i < 5; i++)
		borrowed[i] = xstrdup(names[i]);
	store_run_init(&run);
	CHECK(fx,
	      store_run_add_heads(fx->st, &run, (const char *const *)borrowed,
				  5, &fx->err));
	assert_int_equal(run.stages_nr, 4);
	assert_ptr_equal(run.stages[0].stage, borrowed[0]);
	assert_string_equal(run.stages[0].commit, c[0]);
	assert_string_equal(run.stages[1].stage, "with.dot");
	assert_string_equal(run.stages[1].commit, c[1]);
	assert_string_equal(run.stages[2].stage, "m@n=1");
	assert_string_equal(run.stages[2].commit, c[2]);
	assert_string_equal(run.stages[3].stage, "p2");
	assert_string_equal(run.stages[3].commit, now);
	assert_int_equal(store_run_add_heads(fx->st, &run,
					     (const char *const *)borrowed, 5,
					     &fx->err),
			 -1);
	error_release(&fx->err);
	error_init(&fx->err);
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	CHECK(fx, store_write_run(fx->st, &run, id, &fx->err));
	store_run_release(&run);
	for (int i = 0; i < 5; i++)
		assert_string_equal(borrowed[i], names[i]); /* not freed */
	CHECK(fx, store_read_run(fx->st, id, &back, &fx->err));
	CHECK(fx, store_run_read_stages(fx->st, &back, &fx->err));
	assert_int_equal(back.stages_nr, 4);
	for (size_t i = 0; i < back.stages_nr; i++)
		if (!strcmp(back.stages[i].stage, "p2"))
			assert_string_equal(back.stages[i].commit, now);
	store_run_release(&back);
	for (int i = 0; i < 5; i++)
		free(borrowed[i]);
}

/* A batch of two or more moved refs rewrites packed-refs; the index
 * follows that rewrite (keys_packed) and stays mapped for the next
 * process, with the refs' digest of after the rewrite. A packed-refs
 * rewritten by someone else meanwhile is not taken for ours: "-", and
 * the next lookup reads the refs again and finds the right commits. */
static void test_keys_batch(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[6][STORE_ID_SIZE], got[STORE_ID_SIZE], *refs;
	char *packed = own(fx, "%s/packed-refs", fx->git_dir);
	char *moved = own(fx, "%s/packed-refs.new", fx->git_dir);
	const char *names[] = {"a", "b", "c"};

	for (int i = 0; i < 3; i++) {
		put(fx, "o.txt", &i, sizeof(i), 0644);
		commit(fx, names[i], outs, key_n(i + 1), c[i]);
	}
	assert_int_equal(store_find_key(fx->st, "a", key_n(1), got, &fx->err),
			 1);
	reopen(fx);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(
			store_find_key(fx->st, "a", key_n(1), got, &fx->err),
			1);
		store_batch_begin(fx->st);
		for (int i = 0; i < 2; i++) {
			int n = 10 * (round + 1) + i;

			put(fx, "o.txt", &n, sizeof(n), 0644);
			commit(fx, names[i], outs, key_n(n), c[3 + i]);
		}
		if (round == 1) { /* someone else's packed-refs: same refs */
			struct strbuf sb = STRBUF_INIT;

			assert_int_equal(strbuf_read_file(&sb, packed, 0), 0);
			assert_int_equal(fs_write_atomic(moved, sb.buf, sb.len,
							 &fx->err),
					 0);
			assert_int_equal(rename(moved, packed), 0);
			strbuf_release(&sb);
		}
		CHECK(fx, store_batch_flush(fx->st, &fx->err));
		reopen(fx);
		refs = last_refs(fx);
		if (round == 0)
			assert_int_not_equal(strcmp(refs, "-"), 0);
		else
			assert_string_equal(refs, "-");
		free(refs);
		for (int i = 0; i < 2; i++) {
			int n = 10 * (round + 1) + i;

			assert_int_equal(store_find_key(fx->st, names[i],
							key_n(n), got,
							&fx->err),
					 1);
			assert_string_equal(got, c[3 + i]);
		}
		assert_int_equal(
			store_find_key(fx->st, "c", key_n(3), got, &fx->err),
			1);
		assert_string_equal(got, c[2]);
		reopen(fx);
	}
}

/* The index's log (pipe-keys 2): one process's commits are appended to it
 * and the file is left as it was; a log cut short mid-line is read up to
 * its last whole line; a damaged log, a log of another file, an entry
 * naming a commit of another key and an index of the old format are never
 * trusted; what one process appended stays when another appends. */
static void test_keys_log(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[4][STORE_ID_SIZE], got[STORE_ID_SIZE], *line;
	char *keys = own(fx, "%s/pipe-keys", fx->git_dir);
	char *log = own(fx, "%s/pipe-keys.log", fx->git_dir);
	struct strbuf file = STRBUF_INIT, sb = STRBUF_INIT;
	struct store *other;

	for (int i = 0; i < 2; i++) {
		put(fx, "o.txt", &i, sizeof(i), 0644);
		commit(fx, "s", outs, key_n(i + 1), c[i]);
	}
	assert_int_equal(store_find_key(fx->st, "s", key_n(1), got, &fx->err),
			 1);
	reopen(fx);
	assert_int_equal(strbuf_read_file(&file, keys, 0), 0);
	assert_int_equal(strncmp(file.buf, "pipe-keys 2 ", 12), 0);
	/* one more commit: appended to the log, the file untouched */
	assert_int_equal(store_find_key(fx->st, "s", key_n(3), got, &fx->err),
			 0);
	put_str(fx, "o.txt", "three");
	commit(fx, "s", outs, key_n(3), c[2]);
	reopen(fx);
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	assert_string_equal(sb.buf, file.buf);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, log, 0), 0);
	assert_non_null(strstr(sb.buf, key_n(3)));
	assert_non_null(strstr(sb.buf, "\nrefs "));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_find_key(fx->st, "s", key_n(i + 1), got,
						&fx->err),
				 1);
		assert_string_equal(got, c[i]);
	}
	/* killed mid-append: the torn line is ignored, then cut off */
	reopen(fx);
	append(log, "key 0000000000000000");
	put_str(fx, "o.txt", "four");
	assert_int_equal(store_find_key(fx->st, "s", key_n(3), got, &fx->err),
			 1);
	assert_string_equal(got, c[2]);
	commit(fx, "s", outs, key_n(4), c[3]);
	reopen(fx);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, log, 0), 0);
	assert_null(strstr(sb.buf, "key 0000000000000000key"));
	assert_int_equal(store_find_key(fx->st, "s", key_n(4), got, &fx->err),
			 1);
	assert_string_equal(got, c[3]);
	/* an entry whose commit carries another key is not trusted */
	reopen(fx);
	line = fmt("key %s %s s\n", key_n(7), c[0]);
	append(log, line);
	free(line);
	assert_int_equal(store_find_key(fx->st, "s", key_n(7), got, &fx->err),
			 0);
	/* a damaged log: the index is rebuilt, the log folded away */
	reopen(fx);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	line = fmt("pipe-keys-log 2 %.32s\n\x01garbage\n", sb.buf + 12);
	assert_int_equal(fs_write_atomic(log, line, strlen(line), &fx->err), 0);
	free(line);
	assert_int_equal(store_find_key(fx->st, "s", key_n(2), got, &fx->err),
			 1);
	assert_string_equal(got, c[1]);
	reopen(fx);
	assert_int_equal(access(log, F_OK), -1);
	/* a log of another index file is ignored */
	assert_int_equal(fs_write_atomic(log,
					 "pipe-keys-log 2 "
					 "0123456789abcdef0123456789abcdef\n",
					 49, &fx->err),
			 0);
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "s", key_n(4), got, &fx->err),
			 1);
	assert_string_equal(got, c[3]);
	/* the old format (pipe-keys 1) is rebuilt as the new */
	reopen(fx);
	line = fmt("pipe-keys 1\nkey %s %s s\n", key_n(1), c[3]);
	assert_int_equal(fs_write_atomic(keys, line, strlen(line), &fx->err),
			 0);
	free(line);
	unlink(log);
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "s", key_n(1), got, &fx->err),
			 1);
	assert_string_equal(got, c[0]);
	reopen(fx);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	assert_int_equal(strncmp(sb.buf, "pipe-keys 2 ", 12), 0);
	assert_int_equal(keys_check_file(keys), 0);
	/* two processes: what the first appended stays when the second,
	 * which read the log before, appends in turn */
	reopen(fx);
	CHECK(fx, store_open(&other, fx->pipe_dir, &fx->err));
	assert_int_equal(store_find_key(fx->st, "s", key_n(5), got, &fx->err),
			 0);
	assert_int_equal(store_find_key(other, "s", key_n(5), got, &fx->err),
			 0);
	put_str(fx, "o.txt", "five");
	commit(fx, "s", outs, key_n(5), c[0]);
	reopen(fx);
	store_free(other);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, log, 0), 0);
	assert_non_null(strstr(sb.buf, key_n(5)));
	assert_int_equal(store_find_key(fx->st, "s", key_n(5), got, &fx->err),
			 1);
	assert_string_equal(got, c[0]);
	strbuf_release(&file);
	strbuf_release(&sb);
}

/* What a process learns goes to the index's log at each flush of its
 * batch, not held as text to its end (issue #17): killed after a flush,
 * it leaves the log with those entries and "refs -" (the refs are read
 * again), and the next process finds them; a process that ends as it
 * should says the refs' digest. A batch that makes the log outgrow its
 * share folds it into a new file, with every entry. */
static void test_keys_flushed(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[STORE_ID_SIZE], got[STORE_ID_SIZE], head[STORE_ID_SIZE], *refs;
	char *keys = own(fx, "%s/pipe-keys", fx->git_dir);
	char *log = own(fx, "%s/pipe-keys.log", fx->git_dir);
	const char *names[] = {"a", "b", "c"};
	struct strbuf file = STRBUF_INIT, sb = STRBUF_INIT;
	int status;
	pid_t pid;

	for (int i = 0; i < 3; i++) {
		put(fx, "o.txt", &i, sizeof(i), 0644);
		commit(fx, names[i], outs, key_n(i + 1), c);
	}
	assert_int_equal(store_find_key(fx->st, "a", key_n(1), got, &fx->err),
			 1);
	reopen(fx);
	assert_int_equal(strbuf_read_file(&file, keys, 0), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) { /* a run killed after its first flush */
		if (store_find_key(fx->st, "a", key_n(1), got, &fx->err) != 1)
			_exit(1);
		store_batch_begin(fx->st);
		for (int i = 0; i < 2; i++) {
			int n = 11 + i;

			put(fx, "o.txt", &n, sizeof(n), 0644);
			commit(fx, names[i], outs, key_n(n), c);
		}
		_exit(store_batch_flush(fx->st, &fx->err) ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(strbuf_read_file(&sb, log, 0), 0);
	assert_non_null(strstr(sb.buf, key_n(11)));
	assert_non_null(strstr(sb.buf, key_n(12)));
	refs = last_refs(fx);
	assert_string_equal(refs, "-");
	free(refs);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(store_find_key(fx->st, names[i], key_n(11 + i),
						got, &fx->err),
				 1);
		assert_int_equal(
			store_stage_head(fx->st, names[i], head, &fx->err), 1);
		assert_string_equal(got, head);
	}
	/* a run that ends: the digest of the refs it moved */
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "c", key_n(3), got, &fx->err),
			 1);
	store_batch_begin(fx->st);
	put_str(fx, "o.txt", "thirteen");
	commit(fx, "c", outs, key_n(13), c);
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	reopen(fx);
	refs = last_refs(fx);
	assert_string_not_equal(refs, "-");
	free(refs);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	assert_string_equal(sb.buf, file.buf); /* the file as it was */
	assert_int_equal(store_find_key(fx->st, "c", key_n(13), got, &fx->err),
			 1);
	assert_string_equal(got, c);
	/* 60 more: the log outgrows its share and is folded */
	store_batch_begin(fx->st);
	for (int i = 0; i < 60; i++) {
		int n = 100 + i;

		put(fx, "o.txt", &n, sizeof(n), 0644);
		commit(fx, names[i % 3], outs, key_n(n), c);
		if (i % 20 == 19)
			CHECK(fx, store_batch_flush(fx->st, &fx->err));
	}
	reopen(fx);
	assert_int_equal(access(log, F_OK), -1);
	assert_int_equal(keys_check_file(keys), 0);
	refs = last_refs(fx); /* its rewrites of packed-refs were followed */
	assert_string_not_equal(refs, "-");
	free(refs);
	for (int i = 0; i < 60; i++)
		assert_int_equal(store_find_key(fx->st, names[i % 3],
						key_n(100 + i), got, &fx->err),
				 1);
	assert_string_equal(got, c);
	for (int i = 0; i < 2; i++)
		assert_int_equal(store_find_key(fx->st, names[i], key_n(11 + i),
						got, &fx->err),
				 1);
	strbuf_release(&file);
	strbuf_release(&sb);
}

/* A lookup that meets a stale entry rebuilds the index in the middle of
 * a process: what it moved before is still known at its end, and the
 * index it writes says the refs' digest, not "-". */
static void test_keys_noted_rebuild(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[3][STORE_ID_SIZE], got[STORE_ID_SIZE], *line, *refs;
	char *keys = own(fx, "%s/pipe-keys", fx->git_dir);
	char *log = own(fx, "%s/pipe-keys.log", fx->git_dir);
	struct strbuf sb = STRBUF_INIT;

	put_str(fx, "o.txt", "a");
	commit(fx, "a", outs, key_n(1), c[0]);
	put_str(fx, "o.txt", "b");
	commit(fx, "b", outs, key_n(2), c[1]);
	assert_int_equal(store_find_key(fx->st, "a", key_n(1), got, &fx->err),
			 1);
	reopen(fx);
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	line = fmt("pipe-keys-log 2 %.32s\nkey %s %s a\n", sb.buf + 12,
		   key_n(99), c[0]);
	assert_int_equal(fs_write_atomic(log, line, strlen(line), &fx->err), 0);
	free(line);
	assert_int_equal(store_find_key(fx->st, "a", key_n(1), got, &fx->err),
			 1);
	store_batch_begin(fx->st);
	put_str(fx, "o.txt", "a2");
	commit(fx, "a", outs, key_n(21), c[2]);
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	/* the entry's commit carries another key: rebuilt */
	assert_int_equal(store_find_key(fx->st, "a", key_n(99), got, &fx->err),
			 0);
	reopen(fx);
	refs = last_refs(fx);
	assert_string_not_equal(refs, "-");
	free(refs);
	assert_int_equal(store_find_key(fx->st, "a", key_n(21), got, &fx->err),
			 1);
	assert_string_equal(got, c[2]);
	assert_int_equal(store_find_key(fx->st, "b", key_n(2), got, &fx->err),
			 1);
	assert_string_equal(got, c[1]);
	strbuf_release(&sb);
}

/* store_find_key finds key for stage, in commit. */
static void expect_key(struct fx *fx, const char *stage, const char *key,
		       const char *commit)
{
	char got[STORE_ID_SIZE];

	assert_int_equal(store_find_key(fx->st, stage, key, got, &fx->err), 1);
	assert_string_equal(got, commit);
}

/* The index says the refs' digest: the next process maps it. */
static void expect_refs_known(struct fx *fx)
{
	char *refs = last_refs(fx);

	assert_string_not_equal(refs, "-");
	free(refs);
}

/* The number of lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p;
	     p = strchr(p, '\n'), p = p ? p + 1 : p)
		n += !strncmp(p, prefix, strlen(prefix));
	return n;
}

/* A process that rebuilds the index writes it at once and then keeps
 * only notes of what it learns (where the lines are, in the log or not
 * yet): a key it noted is found before its batch is flushed and after,
 * the newest of two commits with one key, for its stage only; at its end
 * the index says the refs' digest. */
static void test_keys_notes(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[4][STORE_ID_SIZE], got[STORE_ID_SIZE];
	char *keys = own(fx, "%s/pipe-keys", fx->git_dir);
	char *log = own(fx, "%s/pipe-keys.log", fx->git_dir);
	struct strbuf sb = STRBUF_INIT;

	put_str(fx, "o.txt", "old");
	commit(fx, "a", outs, key_n(1), c[0]);
	unlink(keys);
	reopen(fx);
	/* rebuilt from the refs by the first lookup, and written then */
	expect_key(fx, "a", key_n(1), c[0]);
	assert_int_equal(keys_check_file(keys), 0);
	store_batch_begin(fx->st);
	put_str(fx, "o.txt", "one");
	commit(fx, "a", outs, key_n(2), c[1]);
	/* not flushed: read back from what waits for the log */
	expect_key(fx, "a", key_n(2), c[1]);
	put_str(fx, "o.txt", "two");
	commit(fx, "b", outs, key_n(3), c[2]);
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	assert_int_equal(strbuf_read_file(&sb, log, 0), 0);
	assert_non_null(strstr(sb.buf, key_n(3)));
	/* flushed: read back from the log; newest first, by stage */
	put_str(fx, "o.txt", "three");
	commit(fx, "b", outs, key_n(3), c[3]);
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	expect_key(fx, "b", key_n(3), c[3]);
	assert_int_equal(store_find_key(fx->st, "a", key_n(3), got, &fx->err),
			 0);
	expect_key(fx, NULL, key_n(2), c[1]);
	assert_int_equal(store_find_key(fx->st, "a", key_n(9), got, &fx->err),
			 0);
	reopen(fx);
	expect_refs_known(fx);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(store_find_key(fx->st, i == 3 ? "b" : "a",
						key_n(i < 3 ? i + 1 : 3), got,
						&fx->err),
				 i == 2 ? 0 : 1);
		if (i != 2)
			assert_string_equal(got, c[i]);
	}
	strbuf_release(&sb);
}

/* A flush whose append to the log fails keeps what it learnt for the
 * next: found meanwhile, in the log after, and the index says the refs'
 * digest at the end. A fold keeps the file's tips the log did not move
 * and the log's last for each ref it moved. */
static void test_keys_notes_kept(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[6][STORE_ID_SIZE], got[STORE_ID_SIZE];
	char *keys = own(fx, "%s/pipe-keys", fx->git_dir);
	char *log = own(fx, "%s/pipe-keys.log", fx->git_dir);
	const char *names[] = {"a", "b", "c", "a", "b", "a"};
	struct strbuf sb = STRBUF_INIT;

	for (int i = 0; i < 3; i++) {
		put(fx, "o.txt", &i, sizeof(i), 0644);
		commit(fx, names[i], outs, key_n(i + 1), c[i]);
	}
	assert_int_equal(store_find_key(fx->st, "a", key_n(1), got, &fx->err),
			 1);
	reopen(fx);
	assert_int_equal(store_find_key(fx->st, "a", key_n(1), got, &fx->err),
			 1);
	assert_int_equal(mkdir(log, 0755), 0); /* no log can be written */
	store_batch_begin(fx->st);
	for (int i = 0; i < 2; i++) {
		int n = 10 + i;

		put(fx, "o.txt", &n, sizeof(n), 0644);
		commit(fx, names[i], outs, key_n(n), c[3 + i]);
	}
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	expect_key(fx, "b", key_n(11), c[4]);
	assert_int_equal(rmdir(log), 0);
	put_str(fx, "o.txt", "twelve");
	commit(fx, "a", outs, key_n(12), c[5]);
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	assert_int_equal(strbuf_read_file(&sb, log, 0), 0);
	assert_non_null(strstr(sb.buf, key_n(10)));
	assert_non_null(strstr(sb.buf, key_n(12)));
	expect_key(fx, "a", key_n(10), c[3]);
	reopen(fx);
	expect_refs_known(fx);
	for (int i = 0; i < 6; i++) {
		int n = i < 3 ? i + 1 : 7 + i;

		assert_int_equal(store_find_key(fx->st, names[i], key_n(n), got,
						&fx->err),
				 1);
		assert_string_equal(got, c[i]);
	}
	/* many more: folded, one tip a ref, the moved ones' last */
	store_batch_begin(fx->st);
	for (int i = 0; i < 40; i++) {
		int n = 100 + i;

		put(fx, "o.txt", &n, sizeof(n), 0644);
		commit(fx, names[i % 2], outs, key_n(n), c[i % 2]);
		if (i % 10 == 9)
			CHECK(fx, store_batch_flush(fx->st, &fx->err));
	}
	reopen(fx);
	assert_int_equal(access(log, F_OK), -1);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, keys, 0), 0);
	assert_int_equal(count_lines(sb.buf, "tip "), 3);
	assert_int_equal(count_lines(sb.buf, "key "), 46);
	assert_int_equal(keys_check_file(keys), 0);
	for (int i = 0; i < 3; i++) { /* each ref's tip: its last commit */
		char *tip = fmt("tip %s refs/pipe/stages/%s\n", c[i], names[i]);

		assert_non_null(strstr(sb.buf, tip));
		free(tip);
	}
	expect_refs_known(fx);
	expect_key(fx, "b", key_n(139), c[1]);
	expect_key(fx, "c", key_n(3), c[2]);
	strbuf_release(&sb);
}

static void test_reuse(void **state)
{
	struct fx *fx = *state;
	char *big = noise(BIG, 5);
	char *outs[] = {"o/", NULL};
	char c1[STORE_ID_SIZE], c2[STORE_ID_SIZE], c3[STORE_ID_SIZE];
	char got[STORE_ID_SIZE];
	struct store_prov p, q;

	put(fx, "o/big", big, BIG, 0755);
	put_str(fx, "o/small", "s\n");
	commit(fx, "s", outs, key_n(1), c1);
	put_str(fx, "o/small", "changed\n");
	CHECK(fx, store_commit_stage(fx->st, fx->ws, "s", outs, NULL, c2,
				     &fx->err));
	/* The key comes back: reuse c1's outputs without copying. */
	assert_int_equal(store_find_key(fx->st, "s", key_n(1), got, &fx->err),
			 1);
	assert_string_equal(got, c1);
	store_prov_init(&p);
	snprintf(p.key, sizeof(p.key), "%s", key_n(1));
	p.state = xstrdup("cached");
	p.cached_from = xstrdup(c1);
	CHECK(fx, store_commit_reuse(fx->st, "s", c1, &p, c3, &fx->err));
	CHECK(fx, store_read_prov(fx->st, c3, &q, &fx->err));
	assert_string_equal(q.state, "cached");
	assert_string_equal(q.cached_from, c1);
	assert_int_equal(q.bytes_out, BIG + 2);
	store_prov_release(&q);
	CHECK(fx, store_resolve(fx->st, "s~1", got, NULL, &fx->err));
	assert_string_equal(got, c2);
	assert_int_equal(sh("test $(git --git-dir '%s' rev-parse %s^{tree}) = "
			    "$(git --git-dir '%s' rev-parse %s^{tree})",
			    fx->git_dir, c1, fx->git_dir, c3),
			 0);
	fs_remove_tree(own(fx, "%s/o", fx->ws));
	CHECK(fx, store_restore(fx->st, c3, fx->ws, &fx->err));
	assert_content(fx, "o/big", big, BIG);
	assert_content(fx, "o/small", "s\n", 2);
	/* Only stage commits can be reused. */
	assert_int_equal(
		store_commit_reuse(fx->st, "s", "0123", &p, got, &fx->err), -1);
	store_prov_release(&p);
	free(big);
}

static void test_resolve(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o.txt", NULL};
	char c[3][STORE_ID_SIZE], got[STORE_ID_SIZE], abbrev[9];
	int is_run = -1;

	for (int i = 0; i < 3; i++) {
		put(fx, "o.txt", &i, sizeof(i), 0644);
		commit(fx, "train", outs, NULL, c[i]);
	}
	CHECK(fx, store_resolve(fx->st, "train", got, &is_run, &fx->err));
	assert_string_equal(got, c[2]);
	assert_int_equal(is_run, 0);
	CHECK(fx, store_resolve(fx->st, "train~2", got, NULL, &fx->err));
	assert_string_equal(got, c[0]);
	CHECK(fx, store_resolve(fx->st, "train~", got, NULL, &fx->err));
	assert_string_equal(got, c[1]);
	assert_int_equal(store_resolve(fx->st, "train~3", got, NULL, &fx->err),
			 -1);
	assert_non_null(strstr(fx->err.msg.buf, "goes back only 2 commits"));
	CHECK(fx, store_resolve(fx->st, c[1], got, NULL, &fx->err));
	assert_string_equal(got, c[1]);
	snprintf(abbrev, sizeof(abbrev), "%.8s", c[0]);
	CHECK(fx, store_resolve(fx->st, abbrev, got, NULL, &fx->err));
	assert_string_equal(got, c[0]);
	abbrev[0] = abbrev[0] == 'f' ? 'e' : 'f';
	abbrev[1] = abbrev[1] == 'f' ? 'e' : 'f';
	assert_int_equal(store_resolve(fx->st, abbrev, got, NULL, &fx->err),
			 -1);
	assert_int_equal(store_resolve(fx->st, "nosuch", got, NULL, &fx->err),
			 -1);
	assert_non_null(strstr(fx->err.msg.buf, "unknown ref 'nosuch'"));
	assert_int_equal(store_resolve(fx->st, "runs", got, NULL, &fx->err),
			 -1);
}

/* Make run records until two share their first 4 hex digits (a birthday
 * collision: ~300 commits on average, at most a few thousand). */
static void test_ambiguous(void **state)
{
	struct fx *fx = *state;
	char(*ids)[STORE_ID_SIZE] = xcalloc(5000, sizeof(*ids));
	unsigned short seen[65536] = {0};
	struct store_run run;
	char got[STORE_ID_SIZE], prefix[5] = {0};
	size_t n;
	int a = -1, b = -1;

	store_run_init(&run);
	for (n = 0; n < 5000 && a < 0; n++) {
		unsigned long v;

		run.started = (long long)n + 1;
		CHECK(fx, store_write_run(fx->st, &run, ids[n], &fx->err));
		snprintf(prefix, sizeof(prefix), "%.4s", ids[n]);
		v = strtoul(prefix, NULL, 16);
		if (seen[v]) {
			a = seen[v] - 1;
			b = (int)n;
		}
		seen[v] = (unsigned short)(n + 1);
	}
	assert_true(a >= 0);
	assert_int_equal(store_resolve(fx->st, prefix, got, NULL, &fx->err),
			 -1);
	assert_non_null(strstr(fx->err.msg.buf, "is ambiguous"));
	/* The message names both commits. */
	assert_non_null(strstr(fx->err.msg.buf, own(fx, "%.12s", ids[a])));
	assert_non_null(strstr(fx->err.msg.buf, own(fx, "%.12s", ids[b])));
	CHECK(fx, store_resolve(fx->st, ids[a], got, NULL, &fx->err));
	assert_string_equal(got, ids[a]);
	CHECK(fx, store_resolve(fx->st, "runs~1", got, NULL, &fx->err));
	assert_string_equal(got, ids[n - 2]);
	free(ids);
}

/* Stage a (a/x "a1") and stage b (b.txt "b1") committed once each. */
static void two_stages(struct fx *fx, char *a1, char *b1)
{
	char *o1[] = {"a/", NULL}, *o2[] = {"b.txt", NULL};

	put_str(fx, "a/x", "a1\n");
	commit(fx, "a", o1, NULL, a1);
	put_str(fx, "b.txt", "b1\n");
	commit(fx, "b", o2, NULL, b1);
}

static void test_runs(void **state)
{
	struct fx *fx = *state;
	char *o1[] = {"a/", NULL};
	char a1[STORE_ID_SIZE], a2[STORE_ID_SIZE], b1[STORE_ID_SIZE];
	char r1[STORE_ID_SIZE], r2[STORE_ID_SIZE], got[STORE_ID_SIZE];
	struct store_run run, back, *list;
	size_t nr;
	int is_run = 0;

	two_stages(fx, a1, b1);
	store_run_init(&run);
	store_run_add_stage(&run, "a", a1);
	store_run_add_stage(&run, "b", b1);
	run.state = xstrdup("success");
	run.git_head = xstrdup("4444444444444444444444444444444444444444");
	run.started = 1714564800;
	run.duration_ms = 5;
	CHECK(fx, store_write_run(fx->st, &run, r1, &fx->err));
	put_str(fx, "a/x", "a2\n");
	commit(fx, "a", o1, NULL, a2);
	store_run_release(&run);
	store_run_init(&run);
	store_run_add_stage(&run, "a", a2);
	store_run_add_stage(&run, "b", b1);
	CHECK(fx, store_write_run(fx->st, &run, r2, &fx->err));

	CHECK(fx, store_read_run(fx->st, r1, &back, &fx->err));
	assert_int_equal(back.stages_nr, 2);
	assert_string_equal(back.stages[0].stage, "a");
	assert_string_equal(back.stages[0].commit, a1);
	assert_string_equal(back.state, "success");
	assert_string_equal(back.git_head,
			    "4444444444444444444444444444444444444444");
	assert_int_equal(back.started, 1714564800);
	assert_string_equal(back.parent, "");
	store_run_release(&back);
	CHECK(fx, store_list_runs(fx->st, 0, &list, &nr, &fx->err));
	assert_int_equal(nr, 2);
	assert_string_equal(list[0].id, r2);
	assert_string_equal(list[0].parent, r1);
	store_runs_free(list, nr);
	CHECK(fx, store_resolve(fx->st, "runs~1", got, &is_run, &fx->err));
	assert_string_equal(got, r1);
	assert_int_equal(is_run, 1);
	/* The run keeps its stage commits as gitlinks. */
	assert_int_equal(sh("git --git-dir '%s' ls-tree -r %s | grep -q "
			    "'^160000 commit %s'",
			    fx->git_dir, r1, a1),
			 0);
	/* Restoring a run restores all its stages. */
	fs_remove_tree(own(fx, "%s/a", fx->ws));
	unlink(own(fx, "%s/b.txt", fx->ws));
	CHECK(fx, store_restore(fx->st, r1, fx->ws, &fx->err));
	assert_content(fx, "a/x", "a1\n", 3);
	assert_content(fx, "b.txt", "b1\n", 3);
	/* A run naming something that is not a stage commit fails. */
	store_run_add_stage(&run, "c", r1);
	assert_int_equal(store_write_run(fx->st, &run, got, &fx->err), -1);
	store_run_release(&run);
}

/* A format-1 run record (its stages in the message, gitlinks
 * stages/<entry>), as pipe wrote them before format 2, made here with git:
 * still read, listed, restored, and the base of the next record. */
static void test_run_format1(void **state)
{
	struct fx *fx = *state;
	char *o1[] = {"a/", NULL};
	char a1[STORE_ID_SIZE], a2[STORE_ID_SIZE], b1[STORE_ID_SIZE];
	char old[STORE_ID_SIZE], r2[STORE_ID_SIZE];
	struct store_run run, back, *list;
	size_t nr;
	int is_run = 0;

	two_stages(fx, a1, b1);
	assert_int_equal(
		sh("export GIT_DIR='%s' GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t "
		   "GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t && "
		   "t=$(printf '160000 commit %s\\ta\\n160000 commit %s\\tb\\n' "
		   "| git mktree) && "
		   "r=$(printf '040000 tree %%s\\tstages\\n' $t | git mktree) && "
		   "c=$(printf 'run: 2 stages\\n\\nPipe-Kind: run\\n"
		   "Pipe-State: success\\nPipe-Duration-Ms: 7\\n"
		   "Pipe-Stage: b %s\\nPipe-Stage: a %s\\n' | "
		   "git commit-tree $r) && git update-ref refs/pipe/runs $c",
		   fx->git_dir, a1, b1, b1, a1),
		0);
	CHECK(fx, store_resolve(fx->st, "runs", old, &is_run, &fx->err));
	assert_int_equal(is_run, 1);
	CHECK(fx, store_read_run(fx->st, old, &back, &fx->err));
	assert_int_equal(back.format, 1);
	assert_int_equal(back.stage_count, 2);
	assert_int_equal(back.stages_nr, 2); /* in the message's order */
	assert_string_equal(back.stages[0].stage, "b");
	assert_string_equal(back.stages[0].commit, b1);
	assert_string_equal(back.stages[1].stage, "a");
	assert_string_equal(back.stages[1].commit, a1);
	assert_string_equal(back.state, "success");
	assert_int_equal(back.duration_ms, 7);
	store_run_release(&back);
	fs_remove_tree(own(fx, "%s/a", fx->ws));
	unlink(own(fx, "%s/b.txt", fx->ws));
	CHECK(fx, store_restore(fx->st, old, fx->ws, &fx->err));
	assert_content(fx, "a/x", "a1\n", 3);
	assert_content(fx, "b.txt", "b1\n", 3);

	/* the next record, format 2, on top of it */
	put_str(fx, "a/x", "a2\n");
	commit(fx, "a", o1, NULL, a2);
	store_run_init(&run);
	store_run_add_stage(&run, "b", b1);
	store_run_add_stage(&run, "a", a2);
	CHECK(fx, store_write_run(fx->st, &run, r2, &fx->err));
	store_run_release(&run);
	CHECK(fx, store_read_run(fx->st, r2, &back, &fx->err));
	assert_int_equal(back.format, STORE_RUN_FORMAT);
	assert_string_equal(back.parent, old);
	assert_int_equal(back.stages_nr, 2); /* sorted by name */
	assert_string_equal(back.stages[0].stage, "a");
	assert_string_equal(back.stages[0].commit, a2);
	assert_string_equal(back.stages[1].stage, "b");
	assert_string_equal(back.stages[1].commit, b1);
	store_run_release(&back);
	assert_int_equal(sh("git --git-dir '%s' log -1 --format=%%B %s | "
			    "grep -q '^Pipe-Stage:'",
			    fx->git_dir, r2),
			 1);
	assert_int_equal(sh("git --git-dir '%s' ls-tree -r %s | grep -q "
			    "'^160000 commit %s	stages/[0-9a-f][0-9a-f]/a$'",
			    fx->git_dir, r2, a2),
			 0);
	/* listed as summaries: a format-2 record's stages read on demand */
	CHECK(fx, store_list_runs(fx->st, 0, &list, &nr, &fx->err));
	assert_int_equal(nr, 2);
	assert_int_equal(list[0].stage_count, 2);
	assert_int_equal(list[0].stages_nr, 0);
	assert_int_equal(list[1].stages_nr, 2);
	CHECK(fx, store_run_read_stages(fx->st, &list[0], &fx->err));
	assert_int_equal(list[0].stages_nr, 2);
	assert_string_equal(list[0].stages[0].commit, a2);
	store_runs_free(list, nr);
	CHECK(fx, store_restore(fx->st, old, fx->ws, &fx->err));
	assert_content(fx, "a/x", "a1\n", 3);
	CHECK(fx, store_restore(fx->st, r2, fx->ws, &fx->err));
	assert_content(fx, "a/x", "a2\n", 3);
}

/* A record names the heads it is given, whatever moved them since the
 * previous record (a run that was killed before its record, one of other
 * stages): only the shard of a moved head is new. A record of a newer
 * format is refused, not misread. */
static void test_run_moved_head(void **state)
{
	struct fx *fx = *state;
	char *o2[] = {"b.txt", NULL};
	const char *names[] = {"a", "b"};
	char heads[2][STORE_ID_SIZE], b1[STORE_ID_SIZE], b2[STORE_ID_SIZE];
	char r1[STORE_ID_SIZE], r2[STORE_ID_SIZE], r3[STORE_ID_SIZE];
	struct store_run run, back;

	two_stages(fx, heads[0], b1);
	for (int pass = 0; pass < 2; pass++) {
		if (pass) { /* b's head moves outside any record */
			put_str(fx, "b.txt", "b2\n");
			commit(fx, "b", o2, NULL, b2);
		}
		CHECK(fx, store_stage_heads(fx->st, names, 2, heads, &fx->err));
		store_run_init(&run);
		for (int i = 0; i < 2; i++)
			store_run_add_stage(&run, names[i], heads[i]);
		CHECK(fx,
		      store_write_run(fx->st, &run, pass ? r2 : r1, &fx->err));
		store_run_release(&run);
	}
	CHECK(fx, store_read_run(fx->st, r2, &back, &fx->err));
	assert_string_equal(back.stages[1].stage, "b");
	assert_string_equal(back.stages[1].commit, b2);
	store_run_release(&back);
	/* a's shard is r1's tree; b's is not */
	assert_int_equal(
		sh("export GIT_DIR='%s' && "
		   "n=$(git ls-tree %s:stages | wc -l) && "
		   "d=$(git ls-tree %s:stages; git ls-tree %s:stages) && "
		   "test $(echo \"$d\" | sort | uniq -d | wc -l) "
		   "-eq $((n - 1))",
		   fx->git_dir, r1, r1, r2),
		0);
	assert_int_equal(sh("export GIT_DIR='%s' GIT_AUTHOR_NAME=t "
			    "GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t "
			    "GIT_COMMITTER_EMAIL=t@t && "
			    "printf 'run\\n\\nPipe-Kind: run\\n"
			    "Pipe-Run-Format: 3\\nPipe-Stages: 0\\n' | "
			    "git commit-tree %s^{tree} -p %s > '%s/id'",
			    fx->git_dir, r2, r2, fx->root),
			 0);
	assert_int_equal(sh("test -s '%s/id'", fx->root), 0);
	{
		struct strbuf sb = STRBUF_INIT;

		assert_int_equal(
			strbuf_read_file(&sb, own(fx, "%s/id", fx->root), 0),
			0);
		snprintf(r3, sizeof(r3), "%.40s", sb.buf);
		strbuf_release(&sb);
	}
	assert_int_equal(store_read_run(fx->st, r3, &back, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg.buf, "newer than this pipe"));
	error_release(&fx->err);
}

/* gc keeps the stage commits a format-2 record names in its shards, and
 * their history, when no stage ref reaches them any more. */
static void test_run_keeps_stages(void **state)
{
	struct fx *fx = *state;
	char a1[STORE_ID_SIZE], b1[STORE_ID_SIZE], r1[STORE_ID_SIZE];
	struct store_run run;
	unsigned long long freed = 0;

	two_stages(fx, a1, b1);
	store_run_init(&run);
	store_run_add_stage(&run, "a", a1);
	CHECK(fx, store_write_run(fx->st, &run, r1, &fx->err));
	store_run_release(&run);
	assert_int_equal(
		sh("git --git-dir '%s' update-ref -d refs/pipe/stages/a "
		   "&& git --git-dir '%s' update-ref -d "
		   "refs/pipe/stages/b",
		   fx->git_dir, fx->git_dir),
		0);
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	assert_int_equal(
		sh("git --git-dir '%s' cat-file -e %s", fx->git_dir, a1), 0);
	assert_int_equal(sh("git --git-dir '%s' cat-file -e %s 2>/dev/null",
			    fx->git_dir, b1),
			 1);
	fs_remove_tree(own(fx, "%s/a", fx->ws));
	CHECK(fx, store_restore(fx->st, r1, fx->ws, &fx->err));
	assert_content(fx, "a/x", "a1\n", 3);
}

static void test_read_file(void **state)
{
	struct fx *fx = *state;
	char *big = noise(BIG, 2);
	char *outs[] = {"d/", NULL};
	char id[STORE_ID_SIZE];
	struct strbuf sb = STRBUF_INIT;
	char *path = own(fx, "%s/copy", fx->root);
	int fd, pfd[2];

	put_str(fx, "d/small", "small\n");
	put(fx, "d/big", big, BIG, 0644);
	assert_int_equal(symlink("small", own(fx, "%s/d/ln", fx->ws)), 0);
	commit(fx, "s", outs, NULL, id);
	CHECK(fx, store_read_file(fx->st, id, "d/small", &sb, &fx->err));
	assert_string_equal(sb.buf, "small\n");
	strbuf_reset(&sb);
	CHECK(fx, store_read_file(fx->st, id, "./d//big", &sb, &fx->err));
	assert_int_equal(sb.len, BIG);
	assert_memory_equal(sb.buf, big, BIG);
	strbuf_reset(&sb);
	CHECK(fx, store_read_file(fx->st, id, "d/ln", &sb, &fx->err));
	assert_string_equal(sb.buf, "small");
	/* To a file opened for appending, and to a pipe. */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	assert_int_equal(write(fd, "head", 4), 4);
	CHECK(fx, store_read_file_fd(fx->st, id, "d/big", fd, &fx->err));
	close(fd);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, path, 0), 0);
	assert_int_equal(sb.len, BIG + 4);
	assert_memory_equal(sb.buf + 4, big, BIG);
	assert_int_equal(pipe(pfd), 0);
	CHECK(fx, store_read_file_fd(fx->st, id, "d/small", pfd[1], &fx->err));
	close(pfd[1]);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_fd(&sb, pfd[0], 100), 6);
	close(pfd[0]);
	assert_int_equal(store_read_file(fx->st, id, "d", &sb, &fx->err), -1);
	assert_int_equal(store_read_file(fx->st, id, "d/none", &sb, &fx->err),
			 -1);
	assert_non_null(strstr(fx->err.msg.buf, "no file 'd/none'"));
	assert_int_equal(
		store_read_file(fx->st, id, ".pipe-manifest", &sb, &fx->err),
		-1);
	strbuf_release(&sb);
	free(big);
}

/* A stand-in for the stat cache: "knows" the hashes it was told, for the
 * paths it was told, and counts the questions. */
struct knowing {
	const char *path[4];
	struct hash128 hash[4];
	size_t asked;
};

static int known(void *arg, const char *path, const struct stat *st,
		 struct hash128 *out)
{
	struct knowing *k = arg;

	(void)st;
	k->asked++;
	for (size_t i = 0; i < 4 && k->path[i]; i++)
		if (!strcmp(k->path[i], path)) {
			*out = k->hash[i];
			return 1;
		}
	return 0;
}

/* The file path of commit id holds want. */
static void stored_is(struct fx *fx, const char *id, const char *path,
		      const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	CHECK(fx, store_read_file(fx->st, id, path, &sb, &fx->err));
	assert_string_equal(sb.buf, want);
	strbuf_release(&sb);
}

static void test_known_hashes(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"d/", NULL};
	char id[STORE_ID_SIZE], id2[STORE_ID_SIZE];
	struct knowing k = {.path = {"d/a", "d/b", "d/x"}};

	put_str(fx, "d/a", "aaaa\n");
	put_str(fx, "d/b", "bbbb\n");
	put(fx, "d/x", "#!/bin/sh\n", 10, 0755);
	put_str(fx, "d/c", "cccc\n");
	hash_buf("aaaa\n", 5, &k.hash[0]);
	hash_buf("bbbb\n", 5, &k.hash[1]);
	hash_buf("#!/bin/sh\n", 10, &k.hash[2]);
	store_set_known(fx->st, known, &k);
	commit(fx, "s", outs, NULL, id);
	assert_int_equal(k.asked, 0); /* no parent: nothing to take */

	/* a file whose hash the caller knows, the same as in the parent,
	 * is taken from the parent unread: shown by a lie about d/a */
	put_str(fx, "d/a", "AAAA\n");
	put_str(fx, "d/c", "CCCC\n");
	commit(fx, "s", outs, NULL, id2);
	assert_int_equal(k.asked, 4);
	stored_is(fx, id2, "d/a", "aaaa\n");
	/* one it does not know is read */
	stored_is(fx, id2, "d/c", "CCCC\n");
	stored_is(fx, id2, "d/x", "#!/bin/sh\n");

	/* the truth, and a hash that is not the parent's, a size that
	 * differs, or the executable bit gone: read */
	hash_buf("AAAA\n", 5, &k.hash[0]);
	put_str(fx, "d/b", "bbbbbb\n");
	chmod(own(fx, "%s/d/x", fx->ws), 0644);
	commit(fx, "s", outs, NULL, id);
	stored_is(fx, id, "d/a", "AAAA\n");
	stored_is(fx, id, "d/b", "bbbbbb\n");
	assert_fsck(fx);

	/* what was taken unread is what a reading commit writes */
	store_set_known(fx->st, NULL, NULL);
	commit(fx, "t", outs, NULL, id2);
	assert_int_equal(
		sh("test \"$(git --git-dir '%s' rev-parse %s^{tree})\" "
		   "= \"$(git --git-dir '%s' rev-parse %s^{tree})\"",
		   fx->git_dir, id, fx->git_dir, id2),
		0);
}

static void test_bad_outputs(void **state)
{
	struct fx *fx = *state;
	char id[STORE_ID_SIZE];
	char *missing[] = {"nope/", NULL}, *escape[] = {"../x", NULL};
	char *pipe[] = {".pipe/store/", NULL}, *notdir[] = {"f.txt/", NULL};
	char *dir[] = {"d", NULL}, *overlap[] = {"d/", "d/x", NULL};
	char *manifest[] = {".pipe-manifest", NULL}, *abs[] = {"/etc/", NULL};
	char **bad[] = {missing, escape,  pipe,	    notdir,
			dir,	 overlap, manifest, abs};
	struct store_prov p;

	put_str(fx, "f.txt", "f");
	put_str(fx, "d/x", "x");
	put_str(fx, ".pipe-manifest", "x");
	store_prov_init(&p);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(store_commit_stage(fx->st, fx->ws, "s", bad[i],
						    &p, id, &fx->err),
				 -1);
		assert_int_equal(strncmp(fx->err.msg.buf, "stage 's': ", 11),
				 0);
	}
	assert_int_equal(store_stage_head(fx->st, "s", id, &fx->err), 0);
	assert_int_equal(
		store_commit_stage(fx->st, fx->ws, "", dir, &p, id, &fx->err),
		-1);
}

static char *cas_file(struct fx *fx, const char *commit, const char *path)
{
	struct store_manifest m;
	char *ret = NULL;

	CHECK(fx, store_read_manifest(fx->st, commit, &m, &fx->err));
	for (size_t i = 0; i < m.files_nr; i++)
		if (!strcmp(m.files[i].path, path))
			ret = own(fx, "%s/cas/%.2s/%s", fx->git_dir,
				  m.files[i].hash, m.files[i].hash + 2);
	store_manifest_release(&m);
	return ret;
}

static void test_gc(void **state)
{
	struct fx *fx = *state;
	char *big = noise(BIG, 3);
	char *outs[] = {"big.bin", NULL};
	char s1[STORE_ID_SIZE], s2[STORE_ID_SIZE], t1[STORE_ID_SIZE];
	char *cs1, *cs2, *ct1;
	unsigned long long freed = 0;
	size_t checked = 0;

	put(fx, "big.bin", big, BIG, 0644);
	commit(fx, "s", outs, key_n(1), s1);
	big[0]++;
	put(fx, "big.bin", big, BIG, 0644);
	commit(fx, "s", outs, key_n(2), s2);
	big[0]++;
	put(fx, "big.bin", big, BIG, 0644);
	commit(fx, "t", outs, key_n(3), t1);
	cs1 = cas_file(fx, s1, "big.bin");
	cs2 = cas_file(fx, s2, "big.bin");
	ct1 = cas_file(fx, t1, "big.bin");
	assert_true(access(cs1, F_OK) == 0 && access(ct1, F_OK) == 0);
	assert_int_equal(store_find_key(fx->st, NULL, key_n(3), t1, &fx->err),
			 1);
	CHECK(fx, store_verify(fx->st, &checked, &fx->err));
	assert_int_equal(checked, 3);

	/* Nothing to collect yet (one pack per commit get merged, though). */
	CHECK(fx, store_gc(fx->st, 1, &freed, &fx->err));
	assert_int_equal(freed, 0);

	/* Drop stage t: its commit and CAS file become garbage. */
	assert_int_equal(
		sh("git --git-dir '%s' update-ref -d refs/pipe/stages/t",
		   fx->git_dir),
		0);
	CHECK(fx, store_gc(fx->st, 1, &freed, &fx->err));
	assert_true(freed >= BIG);
	assert_int_equal(access(ct1, F_OK), 0); /* dry run */
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	assert_true(freed >= BIG);
	assert_int_equal(access(ct1, F_OK), -1);
	assert_int_equal(access(cs1, F_OK), 0); /* history keeps s~1 */
	assert_int_equal(access(cs2, F_OK), 0);
	assert_int_equal(sh("test -z \"$(git --git-dir '%s' fsck --unreachable "
			    "--no-reflogs --no-progress 2>&1 | grep -v "
			    "'^notice: HEAD')\"",
			    fx->git_dir),
			 0);
	assert_int_equal(sh("test $(ls '%s'/objects/pack/*.pack | wc -l) = 1",
			    fx->git_dir),
			 0);
	/* Every ref still restores, and the run-cache forgets t. */
	unlink(own(fx, "%s/big.bin", fx->ws));
	CHECK(fx, store_restore(fx->st, s1, fx->ws, &fx->err));
	big[0] -= 2;
	assert_content(fx, "big.bin", big, BIG);
	CHECK(fx, store_restore(fx->st, s2, fx->ws, &fx->err));
	assert_int_equal(store_find_key(fx->st, NULL, key_n(3), t1, &fx->err),
			 0);
	assert_int_equal(store_find_key(fx->st, NULL, key_n(1), t1, &fx->err),
			 1);
	assert_string_equal(t1, s1);
	/* A second gc has nothing left to do. */
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	assert_int_equal(freed, 0);
	CHECK(fx, store_verify(fx->st, &checked, &fx->err));
	assert_int_equal(checked, 2);
	/* A damaged CAS file is found by verify. */
	assert_int_equal(chmod(cs1, 0644), 0);
	assert_int_equal(sh("printf x >> '%s'", cs1), 0);
	assert_int_equal(store_verify(fx->st, &checked, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg.buf, "is corrupt"));
	free(big);
}

/* Each commit of many objects writes a pack; past 16 the small ones are
 * merged, and every commit still reads back. */
static void test_pack_merge(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o/", NULL};
	char ids[40][STORE_ID_SIZE];
	struct strbuf sb = STRBUF_INIT;

	for (int i = 0; i < 40; i++) {
		for (int f = 0; f < 6; f++)
			put_str(fx, own(fx, "o/f%d", f),
				own(fx, "%d-%d", i, f));
		commit(fx, "s", outs, NULL, ids[i]);
	}
	assert_int_equal(
		sh("test $(ls '%s'/objects/pack/*.pack | wc -l) -le 17",
		   fx->git_dir),
		0);
	for (int i = 0; i < 40; i++) {
		strbuf_reset(&sb);
		CHECK(fx,
		      store_read_file(fx->st, ids[i], "o/f3", &sb, &fx->err));
		assert_string_equal(sb.buf, own(fx, "%d-3", i));
	}
	reopen(fx);
	strbuf_reset(&sb);
	CHECK(fx, store_read_file(fx->st, ids[0], "o/f5", &sb, &fx->err));
	assert_string_equal(sb.buf, "0-5");
	strbuf_release(&sb);
}

/* Small files past the in-memory bound are flushed mid-commit; a second
 * commit that changes one file writes only what is new. */
static void test_many_small(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o/", NULL};
	char c1[STORE_ID_SIZE], c2[STORE_ID_SIZE];
	size_t n = STORE_CAS_MIN - 1;
	char *data = noise(n, 6);
	struct strbuf sb = STRBUF_INIT;
	char *du = own(fx, "du -sk '%s/objects' | cut -f1", fx->git_dir);

	for (int i = 0; i < 24; i++) {
		data[0] = (char)i;
		put(fx, own(fx, "o/f%02d", i), data, n, 0644);
	}
	commit(fx, "s", outs, NULL, c1);
	assert_int_equal(sh("test $(%s) -gt 20000", du), 0);
	assert_int_equal(sh("echo $(%s) > '%s/du1'", du, fx->root), 0);
	put_str(fx, "o/f07", "small now");
	commit(fx, "s", outs, NULL, c2);
	assert_int_equal(
		sh("test $(%s) -lt $(( $(cat '%s/du1') + 200 ))", du, fx->root),
		0);
	fs_remove_tree(own(fx, "%s/o", fx->ws));
	CHECK(fx, store_restore(fx->st, c1, fx->ws, &fx->err));
	for (int i = 0; i < 24; i++) {
		data[0] = (char)i;
		assert_content(fx, own(fx, "o/f%02d", i), data, n);
	}
	CHECK(fx, store_read_file(fx->st, c2, "o/f07", &sb, &fx->err));
	assert_string_equal(sb.buf, "small now");
	strbuf_release(&sb);
	free(data);
}

/* The door's ref update is compare-and-swap. */
static void test_ref_cas(void **state)
{
	struct fx *fx = *state;
	struct sgit_oid tree, a, b, got;

	CHECK(fx, sgit_write_tree(fx->st->git, NULL, 0, &tree, &fx->err));
	CHECK(fx, sgit_write_commit(fx->st->git, &tree, NULL, 0, "a\n", &a,
				    &fx->err));
	CHECK(fx, sgit_write_commit(fx->st->git, &tree, &a, 1, "b\n", &b,
				    &fx->err));
	CHECK(fx, sgit_flush(fx->st->git, &fx->err));
	CHECK(fx,
	      sgit_ref_update(fx->st->git, "refs/pipe/x", &a, NULL, &fx->err));
	/* Creating an existing ref, or moving one from a stale value, fails
	 * and changes nothing. */
	assert_int_equal(
		sgit_ref_update(fx->st->git, "refs/pipe/x", &b, NULL, &fx->err),
		-1);
	assert_non_null(strstr(fx->err.msg.buf, "moved"));
	assert_int_equal(
		sgit_ref_update(fx->st->git, "refs/pipe/x", &b, &b, &fx->err),
		-1);
	assert_int_equal(
		sgit_ref_read(fx->st->git, "refs/pipe/x", &got, &fx->err), 1);
	assert_true(sgit_oid_equal(&got, &a));
	CHECK(fx,
	      sgit_ref_update(fx->st->git, "refs/pipe/x", &b, &a, &fx->err));
	assert_int_equal(
		sgit_ref_read(fx->st->git, "refs/pipe/x", &got, &fx->err), 1);
	assert_true(sgit_oid_equal(&got, &b));
	assert_int_equal(
		sgit_ref_update(fx->st->git, "refs/pipe/y", &b, &a, &fx->err),
		-1);
}

static void test_crash_before_ref(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"o/", NULL};
	char *big = noise(BIG, 4);
	char c1[STORE_ID_SIZE], head[STORE_ID_SIZE], c2[STORE_ID_SIZE];
	unsigned long long freed;
	pid_t pid;
	int status;

	put_str(fx, "o/a", "old\n");
	commit(fx, "s", outs, NULL, c1);
	put_str(fx, "o/a", "new\n");
	put(fx, "o/big", big, BIG, 0644);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *st;
		struct store_prov p;

		setenv("PIPE_TEST_CRASH", "store-before-ref", 1);
		store_prov_init(&p);
		if (store_open(&st, fx->pipe_dir, &fx->err))
			_exit(1);
		store_commit_stage(st, fx->ws, "s", outs, &p, c2, &fx->err);
		_exit(2); /* not reached: the crash point exits 99 */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 99);
	/* The objects are there, the ref is not moved. */
	assert_int_equal(store_stage_head(fx->st, "s", head, &fx->err), 1);
	assert_string_equal(head, c1);
	assert_fsck(fx);
	CHECK(fx, store_restore(fx->st, c1, fx->ws, &fx->err));
	assert_content(fx, "o/a", "old\n", 4);
	assert_false(exists(fx, "o/big"));
	/* The next commit goes on from c1, and gc drops the orphans. */
	put(fx, "o/big", big, 10, 0644);
	commit(fx, "s", outs, NULL, c2);
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	assert_true(freed >= BIG);
	assert_int_equal(
		sh("test -z \"$(ls '%s'/cas/*/ 2>/dev/null)\"", fx->git_dir),
		0);
	free(big);
}

static void test_stage_names(void **state)
{
	struct fx *fx = *state;
	const char *names[] = {"sweep@lr=0.1,depth=3",
			       "a b",
			       "x..y",
			       ".hid",
			       "end.",
			       "n.lock",
			       "uni☃",
			       "p%q",
			       "a/b"};
	char *outs[] = {"o.txt", NULL};
	char id[STORE_ID_SIZE], got[STORE_ID_SIZE];

	put_str(fx, "o.txt", "x");
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		commit(fx, names[i], outs, NULL, id);
		CHECK(fx, store_resolve(fx->st, names[i], got, NULL, &fx->err));
		assert_string_equal(got, id);
	}
}

/* ---- datum results ------------------------------------------------------ */

/* A datum key in bucket b (its first two hex digits), told apart by n. */
static const char *dkey(unsigned b, unsigned n)
{
	static char k[HASH_HEX_LEN + 1];

	snprintf(k, sizeof(k), "%02x%030x", b & 255, n);
	return k;
}

/* A datum's PIPE_OUT folder: files, a subfolder, an exec file, a symlink
 * and a CAS-sized file. */
static void make_datum(struct fx *fx, const char *dir, const char *big)
{
	put_str(fx, own(fx, "%s/a.txt", dir), "A\n");
	put_str(fx, own(fx, "%s/sub/b.txt", dir), "B\n");
	put(fx, own(fx, "%s/run.sh", dir), "#!/bin/sh\n", 10, 0755);
	put(fx, own(fx, "%s/big.bin", dir), big, STORE_CAS_MIN, 0644);
	assert_int_equal(symlink("a.txt", own(fx, "%s/%s/link", fx->ws, dir)),
			 0);
}

static void check_datum(struct fx *fx, const char *dir, const char *big)
{
	char target[16] = {0};

	assert_content(fx, own(fx, "%s/a.txt", dir), "A\n", 2);
	assert_content(fx, own(fx, "%s/sub/b.txt", dir), "B\n", 2);
	assert_content(fx, own(fx, "%s/run.sh", dir), "#!/bin/sh\n", 10);
	assert_true(mode_of(fx, own(fx, "%s/run.sh", dir)) & S_IXUSR);
	assert_content(fx, own(fx, "%s/big.bin", dir), big, STORE_CAS_MIN);
	assert_int_equal(readlink(own(fx, "%s/%s/link", fx->ws, dir), target,
				  sizeof(target) - 1),
			 5);
	assert_string_equal(target, "a.txt");
}

static void test_datum_roundtrip(void **state)
{
	struct fx *fx = *state;
	char *big = noise(STORE_CAS_MIN, 7);
	struct strvec files = STRVEC_INIT, listed = STRVEC_INIT;
	const char *want[] = {"a.txt", "big.bin", "link", "run.sh",
			      "sub/b.txt"};

	make_datum(fx, "d1", big);
	CHECK(fx, store_datum_put(fx->st, "up", dkey(0xab, 1),
				  own(fx, "%s/d1", fx->ws), &files, &fx->err));
	assert_int_equal(files.nr, ARRAY_SIZE(want));
	for (size_t i = 0; i < files.nr; i++)
		assert_string_equal(files.v[i], want[i]);
	/* the key is found, others are not, and the ref is readable by git */
	assert_int_equal(store_datum_has(fx->st, "up", dkey(0xab, 1), &fx->err),
			 1);
	assert_int_equal(store_datum_has(fx->st, "up", dkey(0xab, 2), &fx->err),
			 0);
	assert_int_equal(
		store_datum_has(fx->st, "other", dkey(0xab, 1), &fx->err), 0);
	assert_int_equal(sh("git --git-dir '%s' cat-file -e "
			    "refs/pipe/datums/up:ab/%s/sub/b.txt",
			    fx->git_dir, dkey(0xab, 1) + 2),
			 0);
	assert_int_equal(sh("git --git-dir '%s' log --format=%%B "
			    "refs/pipe/datums/up | grep -q 'Pipe-Kind: datums'",
			    fx->git_dir),
			 0);
	/* the big file is in the CAS, not a blob */
	assert_int_equal(sh("test $(ls '%s'/cas/*/* | wc -l) = 1", fx->git_dir),
			 0);
	/* read back from a fresh process: files, and every kind of file */
	fs_remove_tree(own(fx, "%s/d1", fx->ws));
	reopen(fx);
	CHECK(fx, store_datum_files(fx->st, "up", dkey(0xab, 1), &listed,
				    &fx->err));
	assert_int_equal(listed.nr, files.nr);
	for (size_t i = 0; i < listed.nr; i++)
		assert_string_equal(listed.v[i], files.v[i]);
	CHECK(fx, store_datum_restore(fx->st, "up", dkey(0xab, 1),
				      own(fx, "%s/r", fx->ws), &fx->err));
	check_datum(fx, "r", big);
	strvec_clear(&files);
	strvec_clear(&listed);
	free(big);
}

/* Restoring merges into a folder with other files; a file that is there
 * already is an error, and a missing key names it. */
static void test_datum_merge(void **state)
{
	struct fx *fx = *state;
	struct strvec files = STRVEC_INIT;

	put_str(fx, "d/x/one.txt", "1\n");
	put(fx, "d/x/run", "#!/bin/sh\n", 10, 0755);
	assert_int_equal(symlink("x/one.txt", own(fx, "%s/d/a-link", fx->ws)),
			 0);
	CHECK(fx, store_datum_put(fx->st, "s", dkey(1, 1),
				  own(fx, "%s/d", fx->ws), NULL, &fx->err));
	/* small files only: no manifest, the tree says it all */
	assert_int_equal(sh("git --git-dir '%s' cat-file -e "
			    "refs/pipe/datums/s:01/%s/" STORE_MANIFEST
			    " 2>/dev/null",
			    fx->git_dir, dkey(1, 1) + 2),
			 128);
	CHECK(fx, store_datum_files(fx->st, "s", dkey(1, 1), &files, &fx->err));
	assert_int_equal(files.nr, 3);
	assert_string_equal(files.v[0], "a-link");
	assert_string_equal(files.v[1], "x/one.txt");
	assert_string_equal(files.v[2], "x/run");
	strvec_clear(&files);
	put_str(fx, "out/x/other.txt", "other\n");
	CHECK(fx, store_datum_restore(fx->st, "s", dkey(1, 1),
				      own(fx, "%s/out", fx->ws), &fx->err));
	assert_content(fx, "out/x/one.txt", "1\n", 2);
	assert_content(fx, "out/x/other.txt", "other\n", 6);
	assert_true(mode_of(fx, "out/x/run") & S_IXUSR);
	assert_true(S_ISLNK(mode_of(fx, "out/a-link")));
	assert_int_equal(store_datum_restore(fx->st, "s", dkey(1, 1),
					     own(fx, "%s/out", fx->ws),
					     &fx->err),
			 -1);
	error_release(&fx->err);
	assert_int_equal(
		store_datum_files(fx->st, "s", dkey(1, 2), &files, &fx->err),
		-1);
	assert_non_null(strstr(fx->err.msg.buf, dkey(1, 2)));
	assert_int_equal(files.nr, 0);
	error_release(&fx->err);
	assert_int_equal(store_datum_has(fx->st, "s", "xyz", &fx->err), -1);
	error_release(&fx->err);
	/* names pipe reserves cannot be stored */
	put_str(fx, "bad/" STORE_MANIFEST, "x");
	assert_int_equal(store_datum_put(fx->st, "s", dkey(1, 3),
					 own(fx, "%s/bad", fx->ws), NULL,
					 &fx->err),
			 -1);
	assert_non_null(strstr(fx->err.msg.buf, "reserves"));
	error_release(&fx->err);
	/* an empty result is a result */
	assert_int_equal(fs_mkdir_p(own(fx, "%s/empty", fx->ws), 0755), 0);
	CHECK(fx,
	      store_datum_put(fx->st, "s", dkey(1, 4),
			      own(fx, "%s/empty", fx->ws), &files, &fx->err));
	assert_int_equal(files.nr, 0);
	assert_int_equal(store_datum_has(fx->st, "s", dkey(1, 4), &fx->err), 1);
	strvec_clear(&files);
}

/* Batch mode: results are seen at once by this process, on disk only
 * after the flush; the index keeps every key (a union) over many
 * commits and buckets. */
static void test_datum_batch(void **state)
{
	struct fx *fx = *state;
	char *dir = own(fx, "%s/d", fx->ws);

	store_batch_begin(fx->st);
	for (unsigned i = 0; i < 600; i++) {
		put_str(fx, "d/f.txt", own(fx, "%u\n", i));
		CHECK(fx, store_datum_put(fx->st, "s", dkey(i * 7, i), dir,
					  NULL, &fx->err));
		if (i == 300) {
			assert_int_equal(sh("git --git-dir '%s' rev-parse -q "
					    "--verify refs/pipe/datums/s "
					    ">/dev/null",
					    fx->git_dir),
					 1);
			assert_int_equal(store_datum_has(fx->st, "s",
							 dkey(7, 1), &fx->err),
					 1);
			CHECK(fx, store_batch_flush(fx->st, &fx->err));
		}
	}
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	assert_int_equal(sh("test $(git --git-dir '%s' rev-list --count "
			    "refs/pipe/datums/s) = 2",
			    fx->git_dir),
			 0);
	reopen(fx);
	for (unsigned i = 0; i < 600; i++) {
		struct strvec files = STRVEC_INIT;

		assert_int_equal(
			store_datum_has(fx->st, "s", dkey(i * 7, i), &fx->err),
			1);
		if (i % 97)
			continue;
		fs_remove_tree(own(fx, "%s/r", fx->ws));
		CHECK(fx,
		      store_datum_restore(fx->st, "s", dkey(i * 7, i),
					  own(fx, "%s/r", fx->ws), &fx->err));
		assert_content(fx, "r/f.txt", own(fx, "%u\n", i),
			       strlen(own(fx, "%u\n", i)));
		strvec_clear(&files);
	}
	/* a key stored again points at its newest result */
	put_str(fx, "d/f.txt", "again\n");
	CHECK(fx,
	      store_datum_put(fx->st, "s", dkey(0, 0), dir, NULL, &fx->err));
	reopen(fx);
	fs_remove_tree(own(fx, "%s/r", fx->ws));
	CHECK(fx, store_datum_restore(fx->st, "s", dkey(0, 0),
				      own(fx, "%s/r", fx->ws), &fx->err));
	assert_content(fx, "r/f.txt", "again\n", 6);
}

/* gc keeps datum results and their CAS files (a replaced result too: an
 * older index commit names it); verify checks them. */
static void test_datum_gc(void **state)
{
	struct fx *fx = *state;
	char *big = noise(STORE_CAS_MIN + 1, 8);
	char *dir = own(fx, "%s/d", fx->ws);
	unsigned long long freed = 0;
	size_t checked = 0;

	put(fx, "d/big.bin", big, STORE_CAS_MIN + 1, 0644);
	CHECK(fx,
	      store_datum_put(fx->st, "s", dkey(3, 1), dir, NULL, &fx->err));
	big[0]++;
	put(fx, "d/big.bin", big, STORE_CAS_MIN + 1, 0644);
	CHECK(fx,
	      store_datum_put(fx->st, "s", dkey(3, 1), dir, NULL, &fx->err));
	big[0]++;
	put(fx, "d/big.bin", big, STORE_CAS_MIN + 1, 0644);
	CHECK(fx,
	      store_datum_put(fx->st, "s", dkey(4, 2), dir, NULL, &fx->err));
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	assert_int_equal(sh("test $(ls '%s'/cas/*/* | wc -l) = 3", fx->git_dir),
			 0);
	CHECK(fx, store_verify(fx->st, &checked, &fx->err));
	assert_int_equal(checked, 3);
	fs_remove_tree(dir);
	CHECK(fx, store_datum_restore(fx->st, "s", dkey(4, 2), dir, &fx->err));
	assert_content(fx, "d/big.bin", big, STORE_CAS_MIN + 1);
	/* without the ref, everything goes */
	assert_int_equal(
		sh("git --git-dir '%s' update-ref -d refs/pipe/datums/s",
		   fx->git_dir),
		0);
	reopen(fx);
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	assert_true(freed >= 3 * (unsigned long long)STORE_CAS_MIN);
	assert_int_equal(
		sh("test -z \"$(find '%s/cas' -type f ! -name unsynced)\"",
		   fx->git_dir),
		0);
	assert_int_equal(store_datum_has(fx->st, "s", dkey(4, 2), &fx->err), 0);
	free(big);
}

/* ---- displaced files ------------------------------------------------ */

static void test_displaced(void **state)
{
	struct fx *fx = *state;
	char *paths1[] = {"notes/", "a.txt", NULL};
	char *paths2[] = {"a.txt", NULL};
	char *big = noise(BIG, 7);
	char id1[STORE_ID_SIZE], id2[STORE_ID_SIZE], found[STORE_ID_SIZE];
	struct store_displaced *v = NULL;
	struct strbuf sb = STRBUF_INIT;
	size_t nr = 0;
	unsigned long long freed;

	put_str(fx, "notes/n.md", "my notes");
	put(fx, "notes/big.bin", big, BIG, 0644);
	put_str(fx, "a.txt", "first");
	CHECK(fx, store_keep_displaced(fx->st, fx->ws, "s", "before x", paths1,
				       NULL, id1, &fx->err));
	put_str(fx, "a.txt", "second");
	/* in a batch the copy is on disk (and its ref moved) at once */
	store_batch_begin(fx->st);
	CHECK(fx, store_keep_displaced(fx->st, fx->ws, NULL, "before y", paths2,
				       NULL, id2, &fx->err));
	assert_int_equal(sh("git --git-dir %s rev-parse -q --verify "
			    "refs/pipe/displaced | grep -q %s",
			    fx->git_dir, id2),
			 0);
	CHECK(fx, store_batch_flush(fx->st, &fx->err));
	/* the newest copy of each path */
	assert_int_equal(store_displaced_find(fx->st, "a.txt", found, &fx->err),
			 1);
	assert_string_equal(found, id2);
	assert_int_equal(
		store_displaced_find(fx->st, "notes/n.md", found, &fx->err), 1);
	assert_string_equal(found, id1);
	assert_int_equal(store_displaced_find(fx->st, "nope", found, &fx->err),
			 0);
	CHECK(fx, store_read_file(fx->st, found, "notes/n.md", &sb, &fx->err));
	assert_string_equal(sb.buf, "my notes");
	strbuf_reset(&sb);
	CHECK(fx, store_resolve(fx->st, "displaced~1", found, NULL, &fx->err));
	assert_string_equal(found, id1);
	CHECK(fx, store_read_file(fx->st, found, "a.txt", &sb, &fx->err));
	assert_string_equal(sb.buf, "first");
	/* the log, newest first, with reasons and paths */
	CHECK(fx, store_displaced_log(fx->st, 0, &v, &nr, &fx->err));
	assert_int_equal(nr, 2);
	assert_string_equal(v[0].why, "before y");
	assert_null(v[0].stage);
	assert_int_equal(v[1].paths_nr, 2);
	assert_string_equal(v[1].paths[0], "notes/");
	assert_string_equal(v[1].stage, "s");
	store_displaced_free(v, nr);
	/* gc keeps displaced copies, the CAS file included */
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	strbuf_reset(&sb);
	CHECK(fx, store_read_file(fx->st, id1, "notes/big.bin", &sb, &fx->err));
	assert_int_equal(sb.len, BIG);
	assert_memory_equal(sb.buf, big, BIG);
	assert_fsck(fx);
	strbuf_release(&sb);
	free(big);
}

/* The project's status read by a child (store_project_start), the
 * workspace a folder below the work tree's top: HEAD, the dirty flag and
 * which files HEAD holds as they are; outside git, no HEAD and nothing
 * marked. */
static void test_project_child(void **state)
{
	struct fx *fx = *state;
	struct store_project *p;
	char *paths[] = {"a.txt",     "b.txt", "sub/c.txt",
			 "sub/d.txt", "e.txt", NULL};
	unsigned char untracked[5];
	struct strbuf head = STRBUF_INIT;
	int dirty = -1;

	p = store_project_start(fx->ws);
	memset(untracked, 7, sizeof(untracked));
	assert_int_equal(store_project_untracked(p, paths, 5, untracked), 0);
	assert_string_equal(store_project_head(p, &dirty), "");
	assert_int_equal(dirty, 0);
	assert_int_equal(untracked[0], 7); /* nothing marked */
	store_project_free(p);

	assert_int_equal(
		sh("cd '%s' && git init -q && mkdir -p ws/sub && "
		   "echo .pipe/ > .gitignore && echo a > ws/a.txt && "
		   "echo c > ws/sub/c.txt && echo d > ws/sub/d.txt && "
		   "echo e > ws/e.txt && git add -A && git -c user.name=t "
		   "-c user.email=t@t commit -qm t && echo b > ws/b.txt && "
		   "echo d2 > ws/sub/d.txt && git rm -q --cached ws/e.txt && "
		   "git rev-parse HEAD > head",
		   fx->root),
		0);
	assert_int_equal(
		strbuf_read_file(&head, own(fx, "%s/head", fx->root), 0), 0);
	strbuf_trim_trailing_newline(&head);
	p = store_project_start(fx->ws);
	assert_int_equal(store_project_untracked(p, paths, 5, untracked), 1);
	assert_string_equal(store_project_head(p, &dirty), head.buf);
	assert_int_equal(dirty, 1);
	assert_int_equal(untracked[0], 0);
	assert_int_equal(untracked[1], 1); /* not in git */
	assert_int_equal(untracked[2], 0);
	assert_int_equal(untracked[3], 1); /* changed in the work tree */
	assert_int_equal(untracked[4], 1); /* out of the index */
	store_project_free(p);
	strbuf_release(&head);
}

/* A restore writes only the outputs asked for. */
/* A run's untracked inputs: written as a tree with a manifest (large
 * files in the CAS), read back, restored; an unchanged file is taken
 * from the previous run unread (a second identical run writes no new
 * object but its commit); gc keeps their CAS files; a scratch store sees
 * all of it and writes nothing to the main one. */
static void test_run_inputs(void **state)
{
	struct fx *fx = *state;
	char *big = noise(BIG, 7);
	struct store_file files[2] = {{"data/a.txt", STORE_BLOB, 0, 5, ""},
				      {"data/big.bin", STORE_BLOB, 0, BIG, ""}};
	struct knowing k = {.path = {"data/a.txt", "data/big.bin"}};
	char r1[STORE_ID_SIZE], r2[STORE_ID_SIZE], got[STORE_ID_SIZE];
	char *shadow = own(fx, "%s/scratch/.pipe", fx->root);
	char *other = own(fx, "%s/other", fx->root);
	struct store_run run, back;
	struct store_manifest m;
	struct store *sh_st;
	unsigned long long freed;
	size_t checked;

	put_str(fx, "data/a.txt", "aaaa\n");
	put(fx, "data/big.bin", big, BIG, 0644);
	hash_buf("aaaa\n", 5, &k.hash[0]);
	hash_buf(big, BIG, &k.hash[1]);
	hash_to_hex(&k.hash[0], files[0].hash);
	hash_to_hex(&k.hash[1], files[1].hash);
	store_set_known(fx->st, known, &k);

	store_run_init(&run);
	run.git_head = xstrdup("5555555555555555555555555555555555555555");
	CHECK(fx, store_run_set_inputs(fx->st, fx->ws, files, 2, NULL, &run,
				       &fx->err));
	assert_int_equal(strlen(run.inputs), 40);
	CHECK(fx, store_write_run(fx->st, &run, r1, &fx->err));
	CHECK(fx, store_read_run(fx->st, r1, &back, &fx->err));
	assert_string_equal(back.inputs, run.inputs);
	assert_int_equal(store_run_inputs(fx->st, &back, &m, &fx->err), 1);
	assert_int_equal(m.files_nr, 2);
	assert_string_equal(m.files[0].path, "data/a.txt");
	assert_int_equal(m.files[0].kind, STORE_BLOB);
	assert_int_equal(m.files[0].size, 5);
	assert_string_equal(m.files[1].path, "data/big.bin");
	assert_int_equal(m.files[1].kind, STORE_CAS);
	assert_int_equal(m.files[1].size, BIG);
	store_manifest_release(&m);
	store_run_release(&back);
	/* the message is the one it was: no new trailer (Kind, Run-Format,
	 * Stages, Git-Head, Duration-Ms) */
	assert_int_equal(sh("git --git-dir '%s' log -1 --format=%%B %s | "
			    "grep -c '^Pipe-' | grep -qx 5",
			    fx->git_dir, r1),
			 0);

	/* the same files again, as the scan found them: the previous tree,
	 * nothing read or even asked (shown by changing both behind the
	 * scan's back), and no object but the run's commit is new (its root
	 * tree is r1's) */
	put_str(fx, "data/a.txt", "AAAA\n");
	big[0]++;
	put(fx, "data/big.bin", big, BIG, 0644);
	big[0]--;
	assert_int_equal(sh("git --git-dir '%s' count-objects -v | "
			    "awk '/^count|^in-pack/ {n += $2} END {print n}' "
			    "> '%s/n1'",
			    fx->git_dir, fx->root),
			 0);
	k.asked = 0;
	memcpy(got, run.inputs, sizeof(got));
	CHECK(fx, store_run_set_inputs(fx->st, fx->ws, files, 2, NULL, &run,
				       &fx->err));
	assert_int_equal(k.asked, 0);
	assert_string_equal(run.inputs, got);
	CHECK(fx, store_write_run(fx->st, &run, r2, &fx->err));
	assert_int_equal(sh("git --git-dir '%s' count-objects -v | "
			    "awk '/^count|^in-pack/ {n += $2} END {print n}' "
			    "> '%s/n2'; test $(cat '%s/n2') = "
			    "$(( $(cat '%s/n1') + 1 ))",
			    fx->git_dir, fx->root, fx->root, fx->root),
			 0);

	/* one file new: the others, as the scan found them, are taken from
	 * the previous run without a look (not even at the stat cache), the
	 * CAS file too; the new one is read */
	{
		struct store_run run3;
		struct store_file three[3] = {
			files[0],
			files[1],
			{"data/c.txt", STORE_BLOB, 0, 2, ""}};
		struct strbuf sb = STRBUF_INIT;

		put_str(fx, "data/c.txt", "c\n");
		hash_buf("c\n", 2, &k.hash[2]);
		hash_to_hex(&k.hash[2], three[2].hash);
		k.path[2] = "data/c.txt";
		k.asked = 0;
		store_run_init(&run3);
		CHECK(fx, store_run_set_inputs(fx->st, fx->ws, three, 3, NULL,
					       &run3, &fx->err));
		assert_int_equal(k.asked, 0);
		assert_string_not_equal(run3.inputs, got);
		assert_int_equal(store_run_inputs(fx->st, &run3, &m, &fx->err),
				 1);
		assert_int_equal(m.files_nr, 3);
		assert_string_equal(m.files[0].hash, files[0].hash);
		assert_string_equal(m.files[1].hash, files[1].hash);
		assert_int_equal(m.files[1].kind, STORE_CAS);
		store_manifest_release(&m);
		CHECK(fx, store_write_run(fx->st, &run3, r2, &fx->err));
		CHECK(fx, store_read_run(fx->st, r2, &back, &fx->err));
		assert_int_equal(store_restore_run_inputs(fx->st, &back, other,
							  NULL, &fx->err),
				 0);
		assert_int_equal(
			strbuf_read_file(&sb, own(fx, "%s/data/a.txt", other),
					 0),
			0);
		assert_memory_equal(sb.buf, "aaaa\n", 5); /* unread */
		strbuf_release(&sb);
		store_run_release(&back);
		store_run_release(&run3);
		fs_remove_tree(other);
		unlink(own(fx, "%s/data/c.txt", fx->ws));
	}

	/* restored as recorded, into a folder holding other files */
	assert_int_equal(fs_mkdir_p(own(fx, "%s/data", other), 0755), 0);
	assert_int_equal(sh("echo old > '%s/data/a.txt'", other), 0);
	CHECK(fx, store_read_run(fx->st, r1, &back, &fx->err));
	CHECK(fx,
	      store_restore_run_inputs(fx->st, &back, other, NULL, &fx->err));
	assert_int_equal(
		sh("printf 'aaaa\\n' | cmp -s - '%s/data/a.txt'", other), 0);
	assert_int_equal(
		sh("cmp -s '%s/data/big.bin' '%s/data/big.bin'", other, fx->ws),
		1); /* the workspace's copy changed since */
	store_run_release(&back);

	/* gc keeps the CAS file only a run's inputs name */
	CHECK(fx, store_gc(fx->st, 0, &freed, &fx->err));
	CHECK(fx, store_verify(fx->st, &checked, &fx->err));
	assert_int_equal(checked, 1);
	assert_fsck(fx);

	/* a scratch store sees the runs and their inputs; what it commits
	 * stays in it */
	assert_int_equal(fs_mkdir_p(shadow, 0755), 0);
	CHECK(fx, store_make_shadow(fx->st, shadow, &fx->err));
	CHECK(fx, store_open(&sh_st, shadow, &fx->err));
	CHECK(fx, store_resolve(sh_st, "runs", got, NULL, &fx->err));
	assert_string_equal(got, r2);
	CHECK(fx, store_read_run(sh_st, r1, &back, &fx->err));
	assert_int_equal(store_run_inputs(sh_st, &back, &m, &fx->err), 1);
	assert_int_equal(m.files_nr, 2);
	store_manifest_release(&m);
	store_run_release(&back);
	store_run_release(&run);
	store_run_init(&run);
	CHECK(fx, store_write_run(sh_st, &run, got, &fx->err));
	store_free(sh_st);
	CHECK(fx, store_resolve(fx->st, "runs", got, NULL, &fx->err));
	assert_string_equal(got, r2);
	assert_int_equal(sh("git --git-dir '%s/store' fsck --strict "
			    "--no-progress 2>/dev/null",
			    shadow),
			 0);
	store_run_release(&run);
	free(big);
}

static void test_restore_only(void **state)
{
	struct fx *fx = *state;
	char *outs[] = {"a.txt", "b.txt", NULL};
	char *only[] = {"a.txt", NULL};
	char id[STORE_ID_SIZE];

	put_str(fx, "a.txt", "A");
	put_str(fx, "b.txt", "B");
	commit(fx, "s", outs, NULL, id);
	put_str(fx, "a.txt", "changed");
	put_str(fx, "b.txt", "mine");
	CHECK(fx, store_restore_outputs(fx->st, id, fx->ws, only, &fx->err));
	assert_content(fx, "a.txt", "A", 1);
	assert_content(fx, "b.txt", "mine", 4);
	CHECK(fx, store_restore_outputs(fx->st, id, fx->ws, NULL, &fx->err));
	assert_content(fx, "b.txt", "B", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_restore_replaces_kinds,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pointer_lookalike, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_manifest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_parent_chain, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prov_roundtrip, setup,
						teardown),
		cmocka_unit_test(test_escape),
		cmocka_unit_test_setup_teardown(test_keys_batch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_add_heads, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keys_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_notes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keys_notes_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keys_flushed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keys_noted_rebuild, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_find_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ambiguous, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_format1, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_moved_head, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_keeps_stages, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_known_hashes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_outputs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_merge, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_small, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ref_cas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_ref, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stage_names, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_datum_roundtrip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_datum_merge, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_datum_batch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_datum_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_displaced, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_project_child, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_inputs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_restore_only, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
