/* Garbage collection and verification: what every ref reaches stays, the
 * rest of the git objects and of the CAS goes. */
#include "store/cas.h"
#include "store/internal.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct reach {
	struct store *st;
	struct oid_list commits;
	struct oid_list links; /* stage commits named by run records */
	struct error *err;
};

static int link_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		   void *data)
{
	struct oid_list *l = data;

	(void)path;
	if (mode == SGIT_MODE_GITLINK) {
		ALLOC_GROW(l->v, l->nr + 1, l->alloc);
		l->v[l->nr++] = *oid;
	}
	return 0;
}

static int commit_cb(const struct sgit_oid *oid, void *data)
{
	struct reach *r = data;
	struct sgit_commit c;
	char *kind;
	int rc = 0;

	ALLOC_GROW(r->commits.v, r->commits.nr + 1, r->commits.alloc);
	r->commits.v[r->commits.nr++] = *oid;
	if (sgit_read_commit(r->st->git, oid, &c, r->err))
		return -1;
	kind = trailers_kind(c.message);
	if (kind && !strcmp(kind, "run"))
		rc = sgit_tree_walk(r->st->git, &c.tree, link_cb, &r->links,
				    r->err);
	free(kind);
	sgit_commit_release(&c);
	return rc;
}

/* Every commit a ref reaches, and the stage commits run records link to
 * (with their history). */
static int reachable(struct store *st, struct oid_list *out, struct error *err)
{
	struct reach r = {st, {0}, {0}, err};
	struct oid_list tips;
	int ret = -1;

	if (store_all_tips(st, &tips, err) ||
	    sgit_walk(st->git, tips.v, tips.nr, NULL, 0, 0, commit_cb, &r, err))
		goto out;
	if (r.links.nr) {
		struct oid_list links = r.links;

		r.links = (struct oid_list){0};
		ret = sgit_walk(st->git, links.v, links.nr, tips.v, tips.nr, 0,
				commit_cb, &r, err);
		free(links.v);
		if (ret)
			goto out;
	}
	*out = r.commits;
	r.commits.v = NULL;
	ret = 0;
out:
	free(r.commits.v);
	free(r.links.v);
	free(tips.v);
	return ret;
}

static int cmp_hex(const void *a, const void *b)
{
	return strcmp(a, b);
}

int store_reachable(struct store *st, char (**out)[STORE_ID_SIZE], size_t *nr,
		    struct error *err)
{
	struct oid_list commits = {0};
	char(*v)[STORE_ID_SIZE];

	*out = NULL;
	*nr = 0;
	if (store_batch_flush(st, err) || reachable(st, &commits, err)) {
		free(commits.v);
		return -1;
	}
	v = xcalloc(commits.nr + 1, sizeof(*v));
	for (size_t i = 0; i < commits.nr; i++)
		sgit_oid_hex(&commits.v[i], v[i]);
	qsort(v, commits.nr, sizeof(*v), cmp_hex);
	*out = v;
	*nr = commits.nr;
	free(commits.v);
	return 0;
}

/* The CAS files the commits name, sorted and unique. */
struct cas_keep {
	struct store_file *v; /* path unused */
	size_t nr, alloc;
};

static int cmp_hash(const void *a, const void *b)
{
	return strcmp(((const struct store_file *)a)->hash,
		      ((const struct store_file *)b)->hash);
}

/* Add the CAS files of the manifest at the top of tree, if it has one. */
static int keep_tree(struct store *st, const struct sgit_oid *tree,
		     struct cas_keep *keep, struct error *err)
{
	struct store_manifest m;
	int rc = store_tree_manifest(st, tree, &m, err);

	if (rc <= 0)
		return rc; /* none: a run record or a datum index */
	for (size_t j = 0; j < m.files_nr; j++) {
		if (m.files[j].kind != STORE_CAS)
			continue;
		ALLOC_GROW(keep->v, keep->nr + 1, keep->alloc);
		keep->v[keep->nr] = m.files[j];
		keep->v[keep->nr++].path = NULL;
	}
	store_manifest_release(&m);
	return 0;
}

/* The CAS files of a run record's untracked inputs. */
static int keep_run_inputs(struct store *st, const struct sgit_commit *c,
			   struct cas_keep *keep, struct error *err)
{
	char *kind = trailers_kind(c->message);
	struct store_run run;
	int rc = 0;

	if (kind && !strcmp(kind, "run")) {
		store_run_init(&run);
		rc = store_run_read_inputs(st, &c->tree, &run, err);
		if (!rc && run.inputs[0]) {
			struct sgit_oid tree;

			sgit_oid_parse(run.inputs, &tree);
			rc = keep_tree(st, &tree, keep, err);
		}
	}
	free(kind);
	return rc;
}

/* The CAS files of stage commits, of runs' inputs, and of the datum results
 * that datum index commits name. */
static int collect_cas(struct store *st, const struct oid_list *commits,
		       struct cas_keep *keep, struct error *err)
{
	struct oid_list results = {0};
	int ret = -1;

	for (size_t i = 0; i < commits->nr; i++) {
		struct sgit_commit c;
		int rc;

		if (sgit_read_commit(st->git, &commits->v[i], &c, err))
			goto out;
		rc = keep_tree(st, &c.tree, keep, err);
		if (!rc)
			rc = keep_run_inputs(st, &c, keep, err);
		sgit_commit_release(&c);
		if (rc)
			goto out;
	}
	if (dindex_result_trees(st, commits, &results, err))
		goto out;
	for (size_t i = 0; i < results.nr; i++)
		if (keep_tree(st, &results.v[i], keep, err))
			goto out;
	if (keep->nr)
		qsort(keep->v, keep->nr, sizeof(*keep->v), cmp_hash);
	ret = 0;
out:
	free(results.v);
	return ret;
}

int store_cas_named(struct store *st, const struct oid_list *commits,
		    struct store_file **out, size_t *nr, struct error *err)
{
	struct cas_keep keep = {0};

	*out = NULL;
	*nr = 0;
	if (collect_cas(st, commits, &keep, err)) {
		free(keep.v);
		return -1;
	}
	*out = keep.v;
	*nr = keep.nr;
	return 0;
}

static int kept(const struct cas_keep *keep, const char *hex)
{
	struct store_file key;

	memcpy(key.hash, hex, sizeof(key.hash));
	return keep->nr && bsearch(&key, keep->v, keep->nr, sizeof(*keep->v),
				   cmp_hash) != NULL;
}

struct sweep {
	const struct cas_keep *keep;
	int dry_run;
	unsigned long long freed;
};

static int sweep_cb(const char *hex, const char *path, unsigned long long size,
		    void *data)
{
	struct sweep *s = data;

	if (hex && kept(s->keep, hex))
		return 0;
	s->freed += size;
	if (!s->dry_run)
		unlink(path);
	return 0;
}

int store_gc(struct store *st, int dry_run, unsigned long long *freed,
	     struct error *err)
{
	struct oid_list commits = {0};
	struct cas_keep keep = {0};
	struct sweep s = {&keep, dry_run, 0};
	unsigned long long git_freed = 0;
	int ret = -1;

	*freed = 0;
	/* batched commits and datum results first, or gc would drop them */
	if (store_batch_flush(st, err) || reachable(st, &commits, err) ||
	    collect_cas(st, &commits, &keep, err) ||
	    cas_foreach(st->cas_dir, sweep_cb, &s, err) ||
	    sgit_gc(st->git, commits.v, commits.nr, dry_run, &git_freed, err))
		goto out;
	*freed = s.freed + git_freed;
	ret = 0;
	if (!dry_run) {
		/* Drop cached pack handles and index: reopen. */
		keys_free(st);
		sgit_free(st->git);
		st->git = NULL;
		ret = sgit_open(&st->git, st->git_dir, err);
	}
out:
	free(commits.v);
	free(keep.v);
	return ret;
}

int store_verify(struct store *st, size_t *checked, struct error *err)
{
	struct oid_list commits = {0};
	struct cas_keep keep = {0};
	int ret = -1;

	*checked = 0;
	if (reachable(st, &commits, err) ||
	    collect_cas(st, &commits, &keep, err))
		goto out;
	for (size_t i = 0; i < keep.nr; i++) {
		if (i && !strcmp(keep.v[i].hash, keep.v[i - 1].hash))
			continue;
		if (cas_verify(st->cas_dir, keep.v[i].hash, keep.v[i].size,
			       err))
			goto out;
		(*checked)++;
	}
	ret = 0;
out:
	free(commits.v);
	free(keep.v);
	return ret;
}
