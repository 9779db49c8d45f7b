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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
