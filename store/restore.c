/* Putting a commit's outputs back into the workspace, one output path at a
 * time: built in a temp sibling, then swapped into place. */
#include "store/cas.h"
#include "store/internal.h"
#include "util/fs.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct restorer {
	struct store *st;
	const struct store_manifest *m;
	const char *rel; /* the output, without a trailing '/'; NULL: the
			  * tree's paths are the manifest's */
	const char *tmp; /* where it is being built */
	int merge;	 /* tmp exists: reuse its folders */
	struct strbuf dst, full, data;
	struct error *err;
};

static int write_file(struct restorer *r, const char *dst, const char *full,
		      unsigned mode, const struct sgit_oid *oid)
{
	const struct store_file *f = manifest_find(r->m, full);
	int fd, ret = -1;

	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode == SGIT_MODE_EXEC ? 0777 : 0666);
	if (fd < 0)
		return error_set(r->err, EXIT_FAILED, "cannot create '%s': %s",
				 dst, strerror(errno));
	if (f && f->kind == STORE_CAS) {
		ret = cas_copy_out(r->st->cas_dir, f->hash, fd, 1, r->err);
	} else {
		strbuf_reset(&r->data);
		ret = sgit_read_blob(r->st->git, oid, &r->data, r->err);
		if (!ret && fs_write_all(fd, r->data.buf, r->data.len))
			ret = error_set(r->err, EXIT_FAILED,
					"cannot write '%s': %s", dst,
					strerror(errno));
	}
	if (close(fd) && !ret)
		ret = error_set(r->err, EXIT_FAILED, "cannot write '%s': %s",
				dst, strerror(errno));
	return ret;
}

/* Write one tree entry at dst; full is its path in the workspace. */
static int write_entry(struct restorer *r, const char *dst, const char *full,
		       unsigned mode, const struct sgit_oid *oid)
{
	switch (mode) {
	case SGIT_MODE_TREE:
		if (mkdir(dst, 0777) && !(r->merge && errno == EEXIST))
			return error_set(r->err, EXIT_FAILED,
					 "cannot create '%s': %s", dst,
					 strerror(errno));
		return 0;
	case SGIT_MODE_LINK:
		strbuf_reset(&r->data);
		if (sgit_read_blob(r->st->git, oid, &r->data, r->err))
			return -1;
		if (symlink(r->data.buf, dst))
			return error_set(r->err, EXIT_FAILED,
					 "cannot create link '%s': %s", dst,
					 strerror(errno));
		return 0;
	case SGIT_MODE_FILE:
	case SGIT_MODE_EXEC:
		return write_file(r, dst, full, mode, oid);
	default:
		return 0; /* gitlinks: not outputs */
	}
}

static int entry_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		    void *data)
{
	struct restorer *r = data;
	const char *name = strrchr(path, '/');

	name = name ? name + 1 : path;
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
		error_set(r->err, EXIT_FAILED, "unsafe path '%s/%s' in a tree",
			  r->rel ? r->rel : "", path);
		return -1;
	}
	if (!r->rel && !strcmp(path, STORE_MANIFEST))
		return 0;
	strbuf_reset(&r->dst);
	strbuf_addf(&r->dst, "%s/%s", r->tmp, path);
	strbuf_reset(&r->full);
	if (r->rel)
		strbuf_addf(&r->full, "%s/", r->rel);
	strbuf_addstr(&r->full, path);
	return write_entry(r, r->dst.buf, r->full.buf, mode, oid) ? -1 : 0;
}

/* Folders the manifest lists as empty, below the output. */
static int make_empty_dirs(struct restorer *r)
{
	size_t len = strlen(r->rel);

	for (size_t i = 0; i < r->m->dirs_nr; i++) {
		const char *d = r->m->dirs[i];

		if (strncmp(d, r->rel, len) || d[len] != '/' || !d[len + 1])
			continue;
		strbuf_reset(&r->dst);
		strbuf_addf(&r->dst, "%s/%s", r->tmp, d + len + 1);
		if (fs_mkdir_p(r->dst.buf, 0777))
			return error_set(r->err, EXIT_FAILED,
					 "cannot create '%s': %s", r->dst.buf,
					 strerror(errno));
	}
	return 0;
}

/* Build the output rel (a folder when folder is set) at r->tmp. */
static int build(struct restorer *r, const struct sgit_oid *tree, int folder)
{
	struct sgit_oid oid;
	unsigned mode = 0;
	int rc =
		sgit_tree_lookup(r->st->git, tree, r->rel, &mode, &oid, r->err);

	if (rc < 0)
		return -1;
	if (folder) {
		if (mkdir(r->tmp, 0777))
			return error_set(r->err, EXIT_FAILED,
					 "cannot create '%s': %s", r->tmp,
					 strerror(errno));
		if (rc && mode == SGIT_MODE_TREE &&
		    sgit_tree_walk(r->st->git, &oid, entry_cb, r, r->err))
			return -1;
		return make_empty_dirs(r);
	}
	if (!rc)
		return error_set(r->err, EXIT_FAILED,
				 "output '%s' is missing from its commit",
				 r->rel);
	return write_entry(r, r->tmp, r->rel, mode, &oid);
}

/* Move tmp to target: swap them atomically when the filesystem can, then
 * remove what was there. */
static int swap_into_place(const char *tmp, const char *target,
			   struct error *err)
{
	struct strbuf old = STRBUF_INIT;
	int ret = -1;

	if (!renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE)) {
		fs_remove_tree(tmp);
		return 0;
	}
	if (errno == ENOENT) {
		if (!rename(tmp, target))
			return 0;
	} else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
		strbuf_addf(&old, "%s.pipe-old-%ld", target, (long)getpid());
		fs_remove_tree(old.buf);
		if (!rename(target, old.buf) && !rename(tmp, target)) {
			fs_remove_tree(old.buf);
			ret = 0;
		}
	}
	if (ret)
		error_set(err, EXIT_FAILED, "cannot move '%s' into place: %s",
			  target, strerror(errno));
	strbuf_release(&old);
	return ret;
}

static int restore_output(struct restorer *r, const char *workspace,
			  const struct sgit_oid *tree, const char *out)
{
	size_t len = path_trimmed_len(out);
	char *rel = xstrndup(out, len);
	char *target = path_join(workspace, rel);
	const char *slash = strrchr(target, '/');
	struct strbuf tmp = STRBUF_INIT;
	int ret = -1;

	strbuf_addf(&tmp, "%.*s.%s.pipe-tmp-%ld",
		    slash ? (int)(slash - target + 1) : 0, target,
		    slash ? slash + 1 : target, (long)getpid());
	r->rel = rel;
	r->tmp = tmp.buf;
	if (fs_mkdir_parent(target, 0777)) {
		error_set(r->err, EXIT_FAILED,
			  "cannot create the folder of '%s': %s", target,
			  strerror(errno));
		goto out;
	}
	fs_remove_tree(tmp.buf);
	if (build(r, tree, out[len] == '/') ||
	    swap_into_place(tmp.buf, target, r->err)) {
		fs_remove_tree(tmp.buf);
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&tmp);
	free(target);
	free(rel);
	return ret;
}

int store_restore_into(struct store *st, const struct sgit_oid *tree,
		       const struct store_manifest *m, const char *dir,
		       struct error *err)
{
	struct restorer r = {st,	  m,	       NULL,	    dir, 1,
			     STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, err};
	int ret = sgit_tree_walk(st->git, tree, entry_cb, &r, err);

	strbuf_release(&r.dst);
	strbuf_release(&r.full);
	strbuf_release(&r.data);
	return ret;
}

static int wanted(const char *out, char *const *only)
{
	if (!only)
		return 1;
	for (size_t i = 0; only[i]; i++)
		if (!strcmp(only[i], out))
			return 1;
	return 0;
}

int store_restore_tree(struct store *st, const struct sgit_oid *tree,
		       const struct store_manifest *m, const char *workspace,
		       char *const *only, struct error *err)
{
	struct restorer r = {st,	  m,	       NULL,	    NULL, 0,
			     STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, err};
	int ret = 0;

	for (size_t i = 0; i < m->outputs_nr && !ret; i++)
		if (wanted(m->outputs[i], only))
			ret = restore_output(&r, workspace, tree,
					     m->outputs[i]);
	strbuf_release(&r.dst);
	strbuf_release(&r.full);
	strbuf_release(&r.data);
	return ret;
}

static int restore_stage(struct store *st, const struct sgit_oid *commit,
			 const char *workspace, char *const *only,
			 struct error *err)
{
	struct store_manifest m;
	struct sgit_oid tree;
	int ret = -1;

	if (!store_load_manifest(st, commit, &tree, &m, err))
		ret = store_restore_tree(st, &tree, &m, workspace, only, err);
	store_manifest_release(&m);
	return ret;
}

static int restore_run(struct store *st, const char *id, const char *workspace,
		       struct error *err)
{
	struct store_run run;
	int ret = -1;

	if (store_read_run(st, id, &run, err))
		return -1;
	for (size_t i = 0; i < run.stages_nr; i++) {
		struct sgit_oid oid;

		if (store_parse_id(run.stages[i].commit, &oid, err) ||
		    restore_stage(st, &oid, workspace, NULL, err)) {
			error_prefix(err, "stage '%s': ", run.stages[i].stage);
			goto out;
		}
	}
	ret = 0;
out:
	store_run_release(&run);
	return ret;
}

int store_restore(struct store *st, const char *commit, const char *workspace,
		  struct error *err)
{
	struct sgit_oid oid;
	struct sgit_commit c;
	char *kind;
	int rc;

	if (store_parse_id(commit, &oid, err) ||
	    sgit_read_commit(st->git, &oid, &c, err))
		return -1;
	kind = trailers_kind(c.message);
	sgit_commit_release(&c);
	if (kind && !strcmp(kind, "run"))
		rc = restore_run(st, commit, workspace, err);
	else
		rc = restore_stage(st, &oid, workspace, NULL, err);
	free(kind);
	return rc;
}

int store_restore_outputs(struct store *st, const char *commit,
			  const char *workspace, char *const *only,
			  struct error *err)
{
	struct sgit_oid oid;

	if (store_parse_id(commit, &oid, err))
		return -1;
	return restore_stage(st, &oid, workspace, only, err);
}
