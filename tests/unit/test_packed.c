/* Unit tests for store/packed.c: many refs moved at once through
 * packed-refs, compare-and-swap, loose refs overridden and removed, tags'
 * peeled lines kept, and git reading the result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/git.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

struct fx {
	char dir[64];
	struct sgit *g;
	struct sgit_oid c1, c2;
	struct error err;
};

/* Run cmd with every "%s" in it replaced by dir. */
static int sh(const char *cmd, const char *dir)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	for (const char *p = cmd; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			strbuf_addstr(&sb, dir);
			p++;
		} else {
			strbuf_addch(&sb, *p);
		}
	}
	rc = system(sb.buf);
	strbuf_release(&sb);
	return rc;
}

static void commit(struct fx *f, const char *msg, struct sgit_oid *out)
{
	struct sgit_oid blob, tree;
	struct sgit_entry e = {"f", 0100644, {{0}}};

	assert_int_equal(
		sgit_write_blob(f->g, msg, strlen(msg), &blob, &f->err), 0);
	e.oid = blob;
	assert_int_equal(sgit_write_tree(f->g, &e, 1, &tree, &f->err), 0);
	assert_int_equal(
		sgit_write_commit(f->g, &tree, NULL, 0, msg, out, &f->err), 0);
	assert_int_equal(sgit_flush(f->g, &f->err), 0);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/pipe-packed-XXXXXX");
	if (!mkdtemp(f->dir) || sgit_open(&f->g, f->dir, &f->err))
		return -1;
	commit(f, "one", &f->c1);
	commit(f, "two", &f->c2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sgit_free(f->g);
	fs_remove_tree(f->dir);
	error_release(&f->err);
	free(f);
	return 0;
}

/* Ref name exists and points at want. */
static void ref_is(struct fx *f, const char *name, const struct sgit_oid *want)
{
	struct sgit_oid got;

	assert_int_equal(sgit_ref_read(f->g, name, &got, &f->err), 1);
	assert_true(sgit_oid_equal(&got, want));
}

static void test_move_many(void **state)
{
	struct fx *f = *state;
	struct sgit_ref_move mv[3] = {
		{"refs/pipe/stages/a", f->c1, 0, {{0}}},
		{"refs/pipe/stages/b", f->c1, 0, {{0}}},
		{"refs/pipe/datums/a", f->c2, 0, {{0}}},
	};
	assert_int_equal(sgit_refs_move(f->g, mv, 3, &f->err), 0);
	ref_is(f, "refs/pipe/stages/b", &f->c1);
	ref_is(f, "refs/pipe/datums/a", &f->c2);
	/* git reads them, fsck is happy, nothing is loose */
	assert_int_equal(sh("test $(git --git-dir '%s' show-ref | wc -l) = 3 "
			    "&& git --git-dir '%s' fsck --strict 2>/dev/null "
			    "&& test ! -e '%s/refs/pipe/stages/a'",
			    f->dir),
			 0);
	/* second move: compare-and-swap against the packed values */
	mv[0].has_old = 1;
	mv[0].old = f->c1;
	mv[0].oid = f->c2;
	assert_int_equal(sgit_refs_move(f->g, mv, 1, &f->err), 0);
	ref_is(f, "refs/pipe/stages/a", &f->c2);
}

/* One stale expectation: nothing moves, and the lock is gone. */
static void test_all_or_none(void **state)
{
	struct fx *f = *state;
	struct sgit_ref_move mv[2] = {
		{"refs/pipe/stages/a", f->c1, 0, {{0}}},
		{"refs/pipe/stages/b", f->c1, 0, {{0}}},
	};
	assert_int_equal(sgit_refs_move(f->g, mv, 2, &f->err), 0);
	mv[0].has_old = mv[1].has_old = 1;
	mv[0].old = f->c1;
	mv[1].old = f->c2; /* wrong */
	mv[0].oid = mv[1].oid = f->c2;
	assert_int_equal(sgit_refs_move(f->g, mv, 2, &f->err), -1);
	assert_non_null(strstr(f->err.msg.buf, "moved while pipe"));
	error_release(&f->err);
	ref_is(f, "refs/pipe/stages/a", &f->c1);
	assert_int_equal(sh("test ! -e '%s/packed-refs.lock'", f->dir), 0);
	/* a ref that must not exist yet, but does */
	mv[0].has_old = 0;
	assert_int_equal(sgit_refs_move(f->g, mv, 1, &f->err), -1);
	error_release(&f->err);
}

/* A loose ref overrides its packed value: it is what the swap compares
 * with, and it goes once the packed value is the new one (a batch of
 * more than one ref; one ref moves as a loose ref of its own). Tags'
 * peeled lines stay. */
static void test_loose_and_tags(void **state)
{
	struct fx *f = *state;
	struct sgit_ref_move mv[2] = {
		{"refs/pipe/runs", f->c2, 1, f->c1},
		{"refs/pipe/other", f->c2, 0, {{0}}},
	};
	assert_int_equal(
		sgit_ref_update(f->g, "refs/pipe/runs", &f->c1, NULL, &f->err),
		0); /* loose */
	/* the tag's identity is given: no test depends on the host's */
	assert_int_equal(sh("git -c user.name=t -c user.email=t@pipe.invalid "
			    "--git-dir '%s' tag -a -m t v1 "
			    "$(git --git-dir '%s' rev-parse refs/pipe/runs) "
			    "&& git --git-dir '%s' pack-refs --all",
			    f->dir),
			 0);
	assert_int_equal(sgit_ref_update(f->g, "refs/pipe/runs", &f->c1, &f->c1,
					 &f->err),
			 0);
	/* one ref: its loose file, the packed line left as it was */
	assert_int_equal(sgit_refs_move(f->g, mv, 1, &f->err), 0);
	ref_is(f, "refs/pipe/runs", &f->c2);
	assert_int_equal(sh("test -e '%s/refs/pipe/runs' && grep -q '^\\^' "
			    "'%s/packed-refs' && git --git-dir '%s' fsck "
			    "--strict 2>/dev/null",
			    f->dir),
			 0);
	/* two refs: packed, the loose file gone */
	mv[0].old = f->c2;
	mv[0].oid = f->c1;
	assert_int_equal(sgit_refs_move(f->g, mv, 2, &f->err), 0);
	ref_is(f, "refs/pipe/runs", &f->c1);
	ref_is(f, "refs/pipe/other", &f->c2);
	assert_int_equal(sh("test ! -e '%s/refs/pipe/runs' && grep -q '^\\^' "
			    "'%s/packed-refs' && git --git-dir '%s' fsck "
			    "--strict 2>/dev/null",
			    f->dir),
			 0);
}

/* A loose ref is folded into packed-refs under its lock: one another
 * writer holds stays loose (it still wins), and a moved one held by
 * another writer fails the batch, nothing written. */
static void test_fold_respects_locks(void **state)
{
	struct fx *f = *state;
	struct sgit_ref_move mv[2] = {
		{"refs/pipe/stages/a", f->c1, 0, {{0}}},
		{"refs/pipe/stages/b", f->c1, 0, {{0}}},
	};

	assert_int_equal(sgit_ref_update(f->g, "refs/pipe/stages/c", &f->c2,
					 NULL, &f->err),
			 0); /* loose */
	assert_int_equal(sh("touch '%s/refs/pipe/stages/c.lock'", f->dir), 0);
	assert_int_equal(sgit_refs_move(f->g, mv, 2, &f->err), 0);
	ref_is(f, "refs/pipe/stages/a", &f->c1);
	ref_is(f, "refs/pipe/stages/c", &f->c2);
	assert_int_equal(sh("test -e '%s/refs/pipe/stages/c' && "
			    "test ! -e '%s/refs/pipe/stages/a.lock'",
			    f->dir),
			 0);
	/* c moved while another writer holds it: refused */
	assert_int_equal(sh("rm '%s/refs/pipe/stages/c.lock'", f->dir), 0);
	assert_int_equal(sgit_ref_update(f->g, "refs/pipe/stages/a", &f->c2,
					 &f->c1, &f->err),
			 0); /* a loose again */
	assert_int_equal(sh("touch '%s/refs/pipe/stages/a.lock'", f->dir), 0);
	mv[0].has_old = 1;
	mv[0].old = f->c2;
	mv[0].oid = f->c1;
	mv[1].has_old = 1;
	mv[1].old = f->c1;
	mv[1].oid = f->c2;
	assert_int_equal(sgit_refs_move(f->g, mv, 2, &f->err), -1);
	assert_non_null(strstr(f->err.msg.buf, "locked by another writer"));
	error_release(&f->err);
	ref_is(f, "refs/pipe/stages/a", &f->c2);
	ref_is(f, "refs/pipe/stages/b", &f->c1);
	ref_is(f, "refs/pipe/stages/c", &f->c2);
	assert_int_equal(sh("test ! -e '%s/packed-refs.lock' && "
			    "test ! -e '%s/refs/pipe/stages/c.lock' && "
			    "test -e '%s/refs/pipe/stages/a.lock'",
			    f->dir),
			 0);
}

#define MANY 3000
#define HEADER "# pack-refs with: peeled fully-peeled sorted \n"

/* path's bytes into sb (emptied first). */
static void slurp(const char *dir, const char *name, struct strbuf *sb)
{
	struct strbuf path = STRBUF_INIT;

	strbuf_reset(sb);
	strbuf_addf(&path, "%s/%s", dir, name);
	assert_int_equal(strbuf_read_file(sb, path.buf, 0), 0);
	strbuf_release(&path);
}

static void spew(const char *dir, const char *name, const char *text)
{
	struct strbuf path = STRBUF_INIT;
	struct error err = ERROR_INIT;

	strbuf_addf(&path, "%s/%s", dir, name);
	assert_int_equal(fs_mkdir_parent(path.buf, 0755), 0);
	assert_int_equal(fs_write_atomic(path.buf, text, strlen(text), &err),
			 0);
	strbuf_release(&path);
}

/* A packed-refs of MANY stage refs at c1 (the 100th with a peeled line,
 * as a tag would have), a comment and a blank line among them, and a tag
 * with its peeled line at the end: in git's order, or (unsorted) the
 * stages backwards. */
static void many_refs(struct fx *f, int unsorted, struct strbuf *out)
{
	char h1[SGIT_HEXSZ + 1], h2[SGIT_HEXSZ + 1];

	sgit_oid_hex(&f->c1, h1);
	sgit_oid_hex(&f->c2, h2);
	strbuf_reset(out);
	strbuf_addstr(out, "# pack-refs with: peeled fully-peeled sorted \n");
	for (int k = 0; k < MANY; k++) {
		int i = unsorted ? MANY - 1 - k : k;

		strbuf_addf(out, "%s refs/pipe/stages/s%05d\n", h1, i);
		if (i == 100)
			strbuf_addf(out, "^%s\n", h2);
		if (i == 1234)
			strbuf_addstr(out, "# a comment\n\n");
	}
	strbuf_addf(out, "%s refs/tags/v1\n^%s\n", h1, h2);
}

/* What a move of many_refs' s00100 to c2, s00200 (loose at c2) to c1,
 * s01500x and refs/pipe/aaa (new) to c2 writes, zzz (loose at c2) folded:
 * git's header, the comment gone, the moved ref's peeled line gone. */
static void many_moved(struct fx *f, struct strbuf *out)
{
	char h1[SGIT_HEXSZ + 1], h2[SGIT_HEXSZ + 1];

	sgit_oid_hex(&f->c1, h1);
	sgit_oid_hex(&f->c2, h2);
	strbuf_reset(out);
	strbuf_addstr(out, HEADER);
	strbuf_addf(out, "%s refs/pipe/aaa\n", h2);
	for (int i = 0; i < MANY; i++) {
		strbuf_addf(out, "%s refs/pipe/stages/s%05d\n",
			    i == 100 ? h2 : h1, i);
		if (i == 1500)
			strbuf_addf(out, "%s refs/pipe/stages/s01500x\n", h2);
	}
	strbuf_addf(out, "%s refs/pipe/stages/zzz\n", h2);
	strbuf_addf(out, "%s refs/tags/v1\n^%s\n", h1, h2);
}

static int count_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	size_t *n = data;

	(void)name;
	(void)oid;
	(*n)++;
	return 0;
}

/* s00200's value as listed */
static int s200_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	if (!strcmp(name, "refs/pipe/stages/s00200"))
		*(struct sgit_oid *)data = *oid;
	return 0;
}

/* The moves many_moved describes, their loose refs made; the file
 * written as git would (sorted) or not: the same result, byte for byte,
 * the first streamed, the second parsed in memory. */
static void move_many_refs(struct fx *f, int unsorted)
{
	struct sgit_ref_move mv[4] = {
		{"refs/pipe/stages/s00200", f->c1, 1, f->c2},
		{"refs/pipe/stages/s00100", f->c2, 1, f->c1},
		{"refs/pipe/stages/s01500x", f->c2, 0, {{0}}},
		{"refs/pipe/aaa", f->c2, 0, {{0}}},
	};
	struct sgit_packed_report rep = {0, STRBUF_INIT, STRBUF_INIT,
					 STRVEC_INIT};
	struct strbuf text = STRBUF_INIT, want = STRBUF_INIT;
	char h1[SGIT_HEXSZ + 1], h2[SGIT_HEXSZ + 2];
	struct sgit_oid got = {{0}};
	size_t n = 0;

	sgit_oid_hex(&f->c1, h1);
	sgit_oid_hex(&f->c2, h2);
	many_refs(f, unsorted, &text);
	spew(f->dir, "packed-refs", text.buf);
	strcat(h2, "\n");
	spew(f->dir, "refs/pipe/stages/s00200", h2);
	spew(f->dir, "refs/pipe/stages/zzz", h2);
	spew(f->dir, "refs/pipe/datums/x", h2);
	h2[SGIT_HEXSZ] = '\0';
	/* listed: the loose refs win; lines cross the buffer's edges */
	assert_int_equal(sgit_refs_list(f->g, "refs/pipe/stages/", count_cb, &n,
					&f->err),
			 0);
	assert_int_equal(n, MANY + 1);
	assert_int_equal(
		sgit_refs_list(f->g, "refs/pipe/", s200_cb, &got, &f->err), 0);
	assert_true(sgit_oid_equal(&got, &f->c2));
	assert_int_equal(sgit_refs_move_report(f->g, mv, 4, &rep, &f->err), 0);
	slurp(f->dir, "packed-refs", &text);
	many_moved(f, &want);
	assert_int_equal(text.len, want.len);
	assert_string_equal(text.buf, want.buf);
	/* folded and moved loose files gone, the other folder's kept */
	assert_int_equal(sh("test ! -e '%s/refs/pipe/stages/s00200' && "
			    "test ! -e '%s/refs/pipe/stages/zzz' && "
			    "test -e '%s/refs/pipe/datums/x' && "
			    "test -z \"$(find '%s' -name '*.lock')\"",
			    f->dir),
			 0);
	ref_is(f, "refs/pipe/stages/s00200", &f->c1);
	ref_is(f, "refs/pipe/stages/zzz", &f->c2);
	/* the report: each move, then the folded ref not moved */
	assert_int_equal(rep.rewritten, 1);
	assert_int_equal(rep.packed.nr, 5);
	strbuf_reset(&want);
	strbuf_addf(&want, "refs/pipe/stages/s00200 %s", h1);
	assert_string_equal(rep.packed.v[0], want.buf);
	strbuf_reset(&want);
	strbuf_addf(&want, "refs/pipe/stages/zzz %s", h2);
	assert_string_equal(rep.packed.v[4], want.buf);
	assert_string_not_equal(rep.before.buf, rep.after.buf);
	strbuf_release(&text);
	strbuf_release(&want);
	strbuf_release(&rep.before);
	strbuf_release(&rep.after);
	strvec_clear(&rep.packed);
}

static void test_merge_many(void **state)
{
	move_many_refs(*state, 0);
}

static void test_merge_unsorted(void **state)
{
	move_many_refs(*state, 1);
}

/* A swap that fails in the middle of the file, or at its end (a ref
 * that should exist and does not): nothing written, packed-refs and the
 * loose refs as they were, no lock left. */
static void test_merge_mismatch(void **state)
{
	struct fx *f = *state;
	struct sgit_ref_move mv[3] = {
		{"refs/pipe/stages/s00010", f->c2, 1, f->c1},
		{"refs/pipe/stages/s01700", f->c2, 1, f->c2}, /* is c1 */
		{"refs/pipe/stages/s02000", f->c2, 1, f->c1},
	};
	struct strbuf text = STRBUF_INIT, before = STRBUF_INIT;
	char h2[SGIT_HEXSZ + 2];

	many_refs(f, 0, &text);
	spew(f->dir, "packed-refs", text.buf);
	sgit_oid_hex(&f->c2, h2);
	strcat(h2, "\n");
	spew(f->dir, "refs/pipe/stages/zzz", h2);
	slurp(f->dir, "packed-refs", &before);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(sgit_refs_move(f->g, mv, 3, &f->err), -1);
		assert_non_null(strstr(f->err.msg.buf, "moved while pipe"));
		assert_non_null(strstr(f->err.msg.buf, mv[1].name));
		error_release(&f->err);
		slurp(f->dir, "packed-refs", &text);
		assert_string_equal(text.buf, before.buf);
		assert_int_equal(sh("test -e '%s/refs/pipe/stages/zzz' && "
				    "test -z \"$(find '%s' -name '*.lock')\"",
				    f->dir),
				 0);
		mv[1].name = "refs/pipe/stages/s99999"; /* not there */
	}
	strbuf_release(&text);
	strbuf_release(&before);
}

/* A packed-refs with a line git would not write (torn, or garbage) goes
 * to libgit2 whole: no ref of ours listed before it. */
static void test_list_bad_line(void **state)
{
	struct fx *f = *state;
	struct strbuf text = STRBUF_INIT;
	size_t n;

	for (int bad = 0; bad < 2; bad++) {
		many_refs(f, 0, &text);
		if (bad) /* garbage in the middle */
			memcpy(strstr(text.buf, "refs/pipe/stages/s02000") - 41,
			       "xyz", 3);
		else /* torn: the last line cut short */
			strbuf_setlen(&text, text.len - 30);
		spew(f->dir, "packed-refs", text.buf);
		n = 0;
		/* libgit2 refuses the file: no ref listed, not even those
		 * before the bad line */
		assert_int_equal(sgit_refs_list(f->g, "refs/pipe/", count_cb,
						&n, &f->err),
				 -1);
		assert_non_null(strstr(f->err.msg.buf, "cannot list refs"));
		assert_int_equal(n, 0);
		error_release(&f->err);
	}
	strbuf_release(&text);
}

/* One ref's packed value is searched 64 KB at a time: the refs whose
 * lines cross from one to the next are found too. */
static void test_one_across_buffers(void **state)
{
	struct fx *f = *state;
	struct strbuf text = STRBUF_INIT, name = STRBUF_INIT;
	struct sgit_ref_move mv = {NULL, f->c2, 1, f->c1};
	int moved = 0;

	many_refs(f, 0, &text);
	spew(f->dir, "packed-refs", text.buf);
	for (size_t edge = 65536; edge < text.len; edge += 65536) {
		/* the lines starting up to ~2 lines before the edge */
		for (size_t at = edge - 130; at <= edge; at++) {
			const char *nl;

			if (text.buf[at - 1] != '\n')
				continue;
			nl = strchr(text.buf + at, '\n');
			strbuf_reset(&name);
			strbuf_add(&name, text.buf + at + SGIT_HEXSZ + 1,
				   (size_t)(nl - text.buf) - at - SGIT_HEXSZ -
					   1);
			mv.name = name.buf;
			assert_int_equal(sgit_refs_move(f->g, &mv, 1, &f->err),
					 0);
			ref_is(f, name.buf, &f->c2);
			moved++;
		}
	}
	assert_true(moved >= 4);
	strbuf_release(&text);
	strbuf_release(&name);
}

/* A line longer than the read buffer (64 KB): the buffer grows for it,
 * in a listing, a one-ref move's look-up and a merge, which copies it. */
static void test_long_line(void **state)
{
	struct fx *f = *state;
	struct sgit_ref_move mv[2] = {
		{"refs/pipe/x", f->c2, 1, f->c1},
		{"refs/pipe/y", f->c1, 0, {{0}}},
	};
	struct strbuf text = STRBUF_INIT, name = STRBUF_INIT;
	char h1[SGIT_HEXSZ + 1];
	size_t n = 0;

	sgit_oid_hex(&f->c1, h1);
	strbuf_addstr(&name, "refs/pipe/long/");
	for (int i = 0; i < 70000; i++)
		strbuf_addch(&name, 'a' + i % 26);
	strbuf_addf(&text, "%s%s %s\n%s refs/pipe/x\n", HEADER, h1, name.buf,
		    h1);
	spew(f->dir, "packed-refs", text.buf);
	assert_int_equal(
		sgit_refs_list(f->g, "refs/pipe/", count_cb, &n, &f->err), 0);
	assert_int_equal(n, 2);
	/* one ref: its packed value found past the long line */
	assert_int_equal(sgit_refs_move(f->g, mv, 1, &f->err), 0);
	ref_is(f, "refs/pipe/x", &f->c2);
	mv[0].old = f->c2;
	mv[0].oid = f->c1;
	assert_int_equal(sgit_refs_move(f->g, mv, 2, &f->err), 0);
	slurp(f->dir, "packed-refs", &text);
	assert_non_null(strstr(text.buf, name.buf));
	ref_is(f, "refs/pipe/x", &f->c1);
	ref_is(f, "refs/pipe/y", &f->c1);
	strbuf_release(&text);
	strbuf_release(&name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_move_many, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fold_respects_locks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_all_or_none, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_loose_and_tags, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_merge_many, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_merge_unsorted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_merge_mismatch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_list_bad_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_one_across_buffers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
