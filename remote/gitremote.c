/* pipe push / pull over a git remote (libgit2, through store/git.h).
 *
 * The remote holds refs/pipe/ws/<workspace id>/runs, stages/X, datums/X:
 * each workspace pushes its own refs there, fast-forward only, so two
 * workspaces never race for a ref and a remote ref never goes back. CAS
 * files travel as blobs on refs/pipe/ws/<id>/cas, a chain of commits
 * whose trees name each file by its hash (slow for big files: git keeps
 * them whole, in memory). The CAS commit is pushed before the refs
 * whose commits name its files. A fetch brings the remote's refs to
 * refs/pipe-fetch/ (outside refs/pipe/, dropped when done). */
#include "remote/sync.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FETCH_NS "refs/pipe-fetch/"
#define PUSH_REF "refs/pipe-push/cas"

struct fetched {
	struct sync_refs refs;	 /* runs, stages, datums by workspace */
	struct oid_list cas;	 /* the cas chains' tips */
	struct oid_list all;	 /* every fetched tip */
	struct sgit_oid own_cas; /* this workspace's, when has_own_cas */
	int has_own_cas;
	const char *ws;
};

static int fetched_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	struct fetched *f = data;
	const char *p = name + strlen(FETCH_NS), *slash = strchr(p, '/');
	char ws[REMOTE_WS_LEN + 1];

	if (!slash || slash - p != REMOTE_WS_LEN)
		return 0;
	memcpy(ws, p, REMOTE_WS_LEN);
	ws[REMOTE_WS_LEN] = '\0';
	ALLOC_GROW(f->all.v, f->all.nr + 1, f->all.alloc);
	f->all.v[f->all.nr++] = *oid;
	if (!strcmp(slash + 1, "cas")) {
		ALLOC_GROW(f->cas.v, f->cas.nr + 1, f->cas.alloc);
		f->cas.v[f->cas.nr++] = *oid;
		if (!strcmp(ws, f->ws)) {
			f->own_cas = *oid;
			f->has_own_cas = 1;
		}
	} else if (remote_ref_suffix_ok(slash + 1)) {
		sync_refs_add(&f->refs, ws, slash + 1, oid);
	}
	return 0;
}

static int drop_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	(void)oid;
	strvec_push(data, name);
	return 0;
}

/* Forget refs/pipe-fetch/ and refs/pipe-push/: what they kept alive
 * (blobs of CAS files) gc may then drop. */
static void drop_temp_refs(struct store *st)
{
	struct strvec names = STRVEC_INIT;
	struct error err = ERROR_INIT;

	sgit_ref_foreach(st->git, "refs/pipe-fetch/*", drop_cb, &names, &err);
	sgit_ref_foreach(st->git, "refs/pipe-push/*", drop_cb, &names, &err);
	for (size_t i = 0; i < names.nr; i++)
		sgit_ref_delete(st->git, names.v[i], &err);
	strvec_clear(&names);
	error_release(&err);
}

/* The remote's refs into FETCH_NS: every workspace's (pull), or only this
 * one's (push: libgit2 then sends only the objects the remote lacks, a
 * large file that another workspace sent included). */
static int fetch(struct store *st, const char *url, int own_only,
		 struct fetched *f, struct error *err)
{
	char *own =
		xstrfmt("+refs/pipe/ws/%s/*:" FETCH_NS "%s/*", f->ws, f->ws);
	char *specs[] = {own_only ? own : "+refs/pipe/ws/*:" FETCH_NS "*",
			 NULL};
	int rc;

	drop_temp_refs(st);
	rc = sgit_fetch(st->git, url, specs, err);
	free(own);
	if (rc)
		return -1;
	return sgit_ref_foreach(st->git, FETCH_NS "*", fetched_cb, f, err);
}

static void fetched_release(struct fetched *f)
{
	sync_refs_release(&f->refs);
	free(f->cas.v);
	free(f->all.v);
}

/* hex -> blob of every CAS file the remote's chains hold. */
struct cas_map {
	struct sgit_entry *v; /* name: the hash (owned) */
	size_t nr, alloc;
	struct store *st;
	struct error *err;
};

static int cas_tree_cb(const char *path, unsigned mode,
		       const struct sgit_oid *oid, void *data)
{
	struct cas_map *m = data;

	if (mode == SGIT_MODE_TREE)
		return 0;
	if (strlen(path) != HASH_HEX_LEN)
		return 0;
	ALLOC_GROW(m->v, m->nr + 1, m->alloc);
	m->v[m->nr].name = xstrdup(path);
	m->v[m->nr].mode = mode;
	m->v[m->nr++].oid = *oid;
	return 0;
}

static int cas_commit_cb(const struct sgit_oid *oid, void *data)
{
	struct cas_map *m = data;
	struct sgit_commit c;
	int rc;

	if (sgit_read_commit(m->st->git, oid, &c, m->err))
		return -1;
	rc = sgit_tree_walk(m->st->git, &c.tree, cas_tree_cb, m, m->err);
	sgit_commit_release(&c);
	return rc;
}

static int cmp_entry_name(const void *a, const void *b)
{
	return strcmp(((const struct sgit_entry *)a)->name,
		      ((const struct sgit_entry *)b)->name);
}

static int cas_map_load(struct store *st, const struct oid_list *tips,
			struct cas_map *m, struct error *err)
{
	m->st = st;
	m->err = err;
	if (tips->nr && sgit_walk(st->git, tips->v, tips->nr, NULL, 0, 0,
				  cas_commit_cb, m, err))
		return -1;
	if (m->nr)
		qsort(m->v, m->nr, sizeof(*m->v), cmp_entry_name);
	return 0;
}

static const struct sgit_entry *cas_map_find(const struct cas_map *m,
					     const char *hex)
{
	struct sgit_entry key = {.name = hex};

	return m->nr ? bsearch(&key, m->v, m->nr, sizeof(*m->v), cmp_entry_name)
		     : NULL;
}

static void cas_map_release(struct cas_map *m)
{
	for (size_t i = 0; i < m->nr; i++)
		free((char *)m->v[i].name);
	free(m->v);
}

/* The CAS files the pushed commits name and the remote lacks, as a new
 * commit on this workspace's cas chain, pushed. */
static int push_cas(struct store *st, const char *url, const char *ws,
		    const struct oid_list *tips, struct fetched *f,
		    struct remote_stats *s, struct error *err)
{
	struct cas_map have = {0};
	struct store_file *files = NULL;
	struct sgit_entry *ents = NULL;
	size_t nfiles = 0, nents = 0;
	struct strbuf data = STRBUF_INIT, spec = STRBUF_INIT;
	struct sgit_oid tree, commit;
	int ret = -1;

	if (sync_cas_named(st, tips, &f->all, &files, &nfiles, err) ||
	    cas_map_load(st, &f->cas, &have, err))
		goto out;
	ents = xcalloc(nfiles + 1, sizeof(*ents));
	for (size_t i = 0; i < nfiles; i++) {
		char *path;

		if ((i && !strcmp(files[i].hash, files[i - 1].hash)) ||
		    cas_map_find(&have, files[i].hash))
			continue;
		path = sync_cas_path(st, files[i].hash);
		strbuf_reset(&data);
		if (strbuf_read_file(&data, path, files[i].size) < 0) {
			error_set(err, EXIT_ENV,
				  "cannot read the CAS file '%s': %s", path,
				  strerror(errno));
			free(path);
			goto out;
		}
		free(path);
		ents[nents].name = files[i].hash;
		ents[nents].mode = SGIT_MODE_FILE;
		if (sgit_write_blob(st->git, data.buf, data.len,
				    &ents[nents].oid, err))
			goto out;
		nents++;
		s->files++;
		s->bytes += data.len;
	}
	if (!nents) {
		ret = 0;
		goto out;
	}
	strbuf_addf(&spec, "pipe: %zu CAS files\n", nents);
	if (sgit_write_tree(st->git, ents, nents, &tree, err) ||
	    sgit_write_commit(st->git, &tree, &f->own_cas, f->has_own_cas,
			      spec.buf, &commit, err) ||
	    sgit_flush(st->git, err))
		goto out;
	sgit_ref_delete(st->git, PUSH_REF, err);
	if (sgit_ref_update(st->git, PUSH_REF, &commit, NULL, err))
		goto out;
	strbuf_reset(&spec);
	strbuf_addf(&spec, PUSH_REF ":refs/pipe/ws/%s/cas", ws);
	{
		char *specs[] = {spec.buf, NULL};

		ret = sgit_push(st->git, url, specs, err);
	}
out:
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].path);
	free(files);
	free(ents);
	cas_map_release(&have);
	strbuf_release(&data);
	strbuf_release(&spec);
	return ret;
}

static const struct sync_ref *find_ref(const struct sync_refs *r,
				       const char *ws, const char *suffix)
{
	for (size_t i = 0; i < r->nr; i++)
		if (!strcmp(r->v[i].ws, ws) && !strcmp(r->v[i].suffix, suffix))
			return &r->v[i];
	return NULL;
}

int remote_git_push(struct store *st, const char *url, struct remote_stats *s,
		    struct error *err)
{
	struct fetched f = {0};
	struct sync_refs local = {0};
	struct oid_list tips = {0};
	struct strvec specs = STRVEC_INIT;
	char ws[REMOTE_WS_LEN + 1];
	int ret = -1;

	if (sync_ws_id(st, ws, err) || sync_local_refs(st, &local, err))
		goto out;
	f.ws = ws;
	if (fetch(st, url, 1, &f, err))
		goto out;
	for (size_t i = 0; i < local.nr; i++) {
		const struct sync_ref *r =
			find_ref(&f.refs, ws, local.v[i].suffix);

		if (r && sgit_oid_equal(&r->oid, &local.v[i].oid))
			continue;
		ALLOC_GROW(tips.v, tips.nr + 1, tips.alloc);
		tips.v[tips.nr++] = local.v[i].oid;
		strvec_push_nodup(&specs,
				  xstrfmt("refs/pipe/%s:refs/pipe/ws/%s/%s",
					  local.v[i].suffix, ws,
					  local.v[i].suffix));
	}
	if (!specs.nr) {
		ret = 0;
		goto out;
	}
	/* objects before refs: the CAS files first */
	if (push_cas(st, url, ws, &tips, &f, s, err))
		goto out;
	store_crash_point("push-git-before-refs");
	if (sgit_push(st->git, url, specs.v, err))
		goto out;
	s->refs = specs.nr;
	ret = 0;
out:
	drop_temp_refs(st);
	fetched_release(&f);
	sync_refs_release(&local);
	free(tips.v);
	strvec_clear(&specs);
	return ret;
}

static int track_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	struct oid_list *l = data;

	(void)name;
	ALLOC_GROW(l->v, l->nr + 1, l->alloc);
	l->v[l->nr++] = *oid;
	return 0;
}

/* Bring the CAS files that the commits reachable from tips (and not from
 * old) name and the store lacks. */
static int pull_cas(struct store *st, const struct oid_list *tips,
		    const struct oid_list *old, const struct cas_map *have,
		    struct remote_stats *s, struct error *err)
{
	struct store_file *files = NULL;
	struct strbuf data = STRBUF_INIT, tmp = STRBUF_INIT;
	size_t nfiles = 0;
	char *dir = NULL;
	int ret = -1;

	if (sync_cas_named(st, tips, old, &files, &nfiles, err))
		goto out;
	for (size_t i = 0; i < nfiles; i++) {
		const struct sgit_entry *e;

		if ((i && !strcmp(files[i].hash, files[i - 1].hash)) ||
		    sync_cas_have(st, files[i].hash))
			continue;
		e = cas_map_find(have, files[i].hash);
		if (!e) {
			error_set(err, EXIT_ENV,
				  "the remote lacks the CAS file %s its "
				  "commits name: push it again from a "
				  "workspace that has it",
				  files[i].hash);
			goto out;
		}
		if (!dir && !(dir = sync_tmp_dir(st, err)))
			goto out;
		strbuf_reset(&data);
		strbuf_reset(&tmp);
		strbuf_addf(&tmp, "%s/%s", dir, files[i].hash);
		if (sgit_read_blob(st->git, &e->oid, &data, err) ||
		    fs_write_atomic(tmp.buf, data.buf, data.len, err) ||
		    sync_cas_import(st, tmp.buf, files[i].hash, err))
			goto out;
		s->files++;
		s->bytes += data.len;
	}
	ret = 0;
out:
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].path);
	free(files);
	free(dir);
	strbuf_release(&data);
	strbuf_release(&tmp);
	return ret;
}

int remote_git_pull(struct store *st, const char *url, struct remote_stats *s,
		    struct error *err)
{
	struct fetched f = {0};
	struct oid_list old = {0}, tips = {0};
	struct cas_map have = {0};
	char ws[REMOTE_WS_LEN + 1];
	int ret = -1;

	if (sync_ws_id(st, ws, err) || store_batch_flush(st, err))
		goto out;
	f.ws = ws;
	if (sgit_ref_foreach(st->git, "refs/pipe/remotes/*", track_cb, &old,
			     err) ||
	    fetch(st, url, 0, &f, err))
		goto out;
	for (size_t i = 0; i < f.refs.nr; i++) {
		if (!strcmp(f.refs.v[i].ws, ws))
			continue; /* our own */
		ALLOC_GROW(tips.v, tips.nr + 1, tips.alloc);
		tips.v[tips.nr++] = f.refs.v[i].oid;
	}
	/* the files before the refs that name them */
	if (tips.nr && (cas_map_load(st, &f.cas, &have, err) ||
			pull_cas(st, &tips, &old, &have, s, err)))
		goto out;
	store_crash_point("pull-git-before-refs");
	for (size_t i = 0; i < f.refs.nr; i++) {
		int moved = 0;

		if (strcmp(f.refs.v[i].ws, ws) &&
		    sync_track(st, f.refs.v[i].ws, f.refs.v[i].suffix,
			       &f.refs.v[i].oid, &moved, err))
			goto out;
		s->refs += strcmp(f.refs.v[i].ws, ws) ? moved : 0;
	}
	ret = 0;
out:
	drop_temp_refs(st);
	fetched_release(&f);
	cas_map_release(&have);
	free(old.v);
	free(tips.v);
	return ret;
}
