/* What a run records besides its stage commits: the inputs the project's
 * git does not hold (inputs/ in the run's tree), and the scratch stores
 * `pipe reproduce` runs against. */
#include "store/internal.h"
#include "util/fs.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INPUTS_ENTRY "inputs"

int store_project_untracked(char *const *paths, size_t n,
			    unsigned char *untracked)
{
	return sgit_project_untracked(paths, n, untracked);
}

int store_project_resolve(const char *rev, struct strbuf *commit,
			  struct strbuf *prefix, struct error *err)
{
	return sgit_project_resolve(rev, commit, prefix, err);
}

int store_project_export(const char *commit, const char *dir,
			 const char *must_have, struct error *err)
{
	return sgit_project_export(commit, dir, must_have, err);
}

/* The inputs tree of the commit ref points at: 1 found, 0 none, -1. */
static int head_inputs(struct store *st, const char *ref, struct sgit_oid *out,
		       struct error *err)
{
	struct sgit_oid commit;
	struct sgit_commit c;
	unsigned mode;
	int rc = sgit_ref_read(st->git, ref, &commit, err);

	if (rc <= 0)
		return rc;
	if (sgit_read_commit(st->git, &commit, &c, err))
		return -1;
	rc = sgit_tree_lookup(st->git, &c.tree, INPUTS_ENTRY, &mode, out, err);
	sgit_commit_release(&c);
	return rc > 0 && mode == SGIT_MODE_TREE ? 1 : rc < 0 ? -1 : 0;
}

int store_run_set_inputs(struct store *st, const char *workspace,
			 const struct store_file *files, size_t nr,
			 const struct store_manifest *prev_m,
			 struct store_run *run, struct error *err)
{
	struct sgit_oid prev, tree;
	int has_prev = head_inputs(st, RUNS_REF, &prev, err);

	run->inputs[0] = '\0';
	if (has_prev < 0)
		return -1;
	if (!nr)
		return 0;
	if (store_write_files(st, workspace, files, nr, has_prev ? &prev : NULL,
			      has_prev ? prev_m : NULL, &tree, err))
		return -1;
	sgit_oid_hex(&tree, run->inputs);
	return 0;
}

int store_prev_run_inputs(struct store *st, struct store_manifest *m)
{
	struct error ignore = ERROR_INIT;
	struct sgit_oid prev;
	int rc = head_inputs(st, RUNS_REF, &prev, &ignore);

	store_manifest_init(m);
	if (rc > 0 && store_tree_manifest(st, &prev, m, &ignore) != 1)
		rc = 0;
	error_release(&ignore);
	return rc > 0;
}

const struct store_file *store_manifest_find(const struct store_manifest *m,
					     const char *path)
{
	return manifest_find(m, path);
}

int store_run_root(struct store *st, const struct store_run *run,
		   const struct sgit_oid *stages, struct sgit_oid *out,
		   struct error *err)
{
	struct sgit_entry e[2];
	size_t nr = 0;

	if (stages)
		e[nr++] =
			(struct sgit_entry){"stages", SGIT_MODE_TREE, *stages};
	if (run->inputs[0]) {
		e[nr].name = INPUTS_ENTRY;
		e[nr].mode = SGIT_MODE_TREE;
		if (sgit_oid_parse(run->inputs, &e[nr++].oid))
			return error_set(err, EXIT_FAILED,
					 "bad inputs tree '%s'", run->inputs);
	}
	return sgit_write_tree(st->git, nr ? e : NULL, nr, out, err);
}

int store_run_read_inputs(struct store *st, const struct sgit_oid *tree,
			  struct store_run *run, struct error *err)
{
	struct sgit_oid oid;
	unsigned mode;
	int rc =
		sgit_tree_lookup(st->git, tree, INPUTS_ENTRY, &mode, &oid, err);

	run->inputs[0] = '\0';
	if (rc < 0)
		return -1;
	if (rc && mode == SGIT_MODE_TREE)
		sgit_oid_hex(&oid, run->inputs);
	return 0;
}

static int inputs_tree(struct store *st, const struct store_run *run,
		       struct sgit_oid *tree, struct store_manifest *m,
		       struct error *err)
{
	int rc;

	store_manifest_init(m);
	if (!run->inputs[0])
		return 0;
	if (sgit_oid_parse(run->inputs, tree))
		return error_set(err, EXIT_FAILED, "bad inputs tree '%s'",
				 run->inputs);
	rc = store_tree_manifest(st, tree, m, err);
	if (!rc)
		error_set(err, EXIT_FAILED,
			  "run %.12s: its inputs have no manifest", run->id);
	return rc == 1 ? 1 : -1;
}

int store_run_inputs(struct store *st, const struct store_run *run,
		     struct store_manifest *out, struct error *err)
{
	struct sgit_oid tree;

	return inputs_tree(st, run, &tree, out, err);
}

int store_restore_run_inputs(struct store *st, const struct store_run *run,
			     const char *workspace, char *const *only,
			     struct error *err)
{
	struct store_manifest m;
	struct sgit_oid tree;
	int rc = inputs_tree(st, run, &tree, &m, err);

	if (rc > 0)
		rc = store_restore_tree(st, &tree, &m, workspace, only, err);
	store_manifest_release(&m);
	return rc < 0 ? -1 : 0;
}

/* ---- scratch stores -------------------------------------------------- */

struct ref_copy {
	struct sgit_ref_move *v;
	size_t nr, alloc;
};

static int copy_ref(const char *name, const struct sgit_oid *oid, void *data)
{
	struct ref_copy *c = data;

	ALLOC_GROW(c->v, c->nr + 1, c->alloc);
	memset(&c->v[c->nr], 0, sizeof(c->v[c->nr]));
	c->v[c->nr].name = xstrdup(name);
	c->v[c->nr++].oid = *oid;
	return 0;
}

static int copy_refs(struct store *from, struct store *to, struct error *err)
{
	struct ref_copy c = {0};
	int ret;

	ret = sgit_ref_foreach(from->git, "refs/pipe/*", copy_ref, &c, err) < 0
		      ? -1
	      : c.nr ? sgit_refs_move(to->git, c.v, c.nr, err)
		     : 0;
	for (size_t i = 0; i < c.nr; i++)
		free((char *)c.v[i].name);
	free(c.v);
	return ret;
}

/* Point path at target (absolute): a symlink for cas/, a line in
 * objects/info/alternates for the objects. */
static int link_main(const char *git_dir, struct store *main, struct error *err)
{
	char *objects = path_join(main->git_dir, "objects");
	char *abs_objects = realpath(objects, NULL);
	char *abs_cas = NULL;
	char *alt = path_join(git_dir, "objects/info/alternates");
	char *cas = path_join(git_dir, "cas");
	struct strbuf line = STRBUF_INIT;
	int ret = -1;

	if (fs_mkdir_p(main->cas_dir, 0755) ||
	    !(abs_cas = realpath(main->cas_dir, NULL)) || !abs_objects) {
		error_set(err, EXIT_ENV, "cannot read the store '%s': %s",
			  main->git_dir, strerror(errno));
		goto out;
	}
	strbuf_addf(&line, "%s\n", abs_objects);
	fs_remove_tree(cas);
	if (fs_mkdir_parent(alt, 0755) ||
	    fs_write_atomic(alt, line.buf, line.len, err) ||
	    symlink(abs_cas, cas)) {
		if (!err->exit_code)
			error_set(err, EXIT_ENV, "cannot link '%s' to '%s': %s",
				  git_dir, main->git_dir, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&line);
	free(objects);
	free(abs_objects);
	free(abs_cas);
	free(alt);
	free(cas);
	return ret;
}

int store_make_shadow(struct store *main, const char *pipe_dir,
		      struct error *err)
{
	char *git_dir = path_join(pipe_dir, "store");
	struct store *st = NULL;
	int ret = -1;

	fs_remove_tree(git_dir);
	/* made first, then linked: the odb reads its alternates on open */
	if (store_open(&st, pipe_dir, err))
		goto out;
	store_free(st);
	st = NULL;
	if (link_main(git_dir, main, err) || store_open(&st, pipe_dir, err) ||
	    copy_refs(main, st, err))
		goto out;
	ret = 0;
out:
	if (ret)
		error_prefix(err, "scratch store '%s': ", git_dir);
	store_free(st);
	free(git_dir);
	return ret;
}
