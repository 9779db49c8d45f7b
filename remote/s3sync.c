/* pipe push / pull over S3 (remote/s3.h). Layout below s3://bucket/prefix:
 *
 *   packs/<40 hex>.pack     git packs (named by their checksum), each
 *                           holding what one push sent; create-only
 *   cas/<2 hex>/<30 hex>    CAS files by their XXH3-128; create-only
 *   refs/<ws>/<commit>/<r>  empty: workspace ws pushed commit as its
 *                           refs/pipe/<r>; create-only, one per pushed tip
 *
 * A push sends the pack, then the CAS files, then the ref objects: a
 * ref object exists only once everything its commit reaches is there.
 * Nothing is ever overwritten or deleted, so concurrent pushes cannot
 * lose each other's commits; a pull reads every ref object, and of one
 * workspace's tips of one ref keeps the newest (the others are its
 * ancestors). The packs a pull indexed are listed in <store>/pipe-pulled
 * ("<url> <pack>" per line) so the next pull skips them. */
#include "remote/s3.h"
#include "remote/sync.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int open_s3(struct s3 **s3, const char *url, const struct remote_opts *o,
		   struct error *err)
{
	struct s3_opts so = {0};

	so.endpoint = o->endpoint;
	so.parallel = o->jobs > 0 ? o->jobs : 16;
	return s3_open(s3, url, &so, err);
}

/* Every ref object of the remote; own (may be NULL) gets this
 * workspace's. */
static int list_refs(struct s3 *s3, struct sync_refs *out, struct error *err)
{
	struct strvec keys = STRVEC_INIT;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (s3_list(s3, "refs/", &keys, NULL, err) < 0)
		goto out;
	for (size_t i = 0; i < keys.nr; i++) {
		char ws[REMOTE_WS_LEN + 1];
		struct sgit_oid oid;
		const char *suffix;

		if (remote_ref_key_parse(keys.v[i], ws, &oid, &suffix))
			log_warn("ignoring '%s' on the remote: not a ref pipe "
				 "wrote",
				 keys.v[i]);
		else
			sync_refs_add(out, ws, suffix, &oid);
	}
	ret = 0;
out:
	strvec_clear(&keys);
	return ret;
}

static int has_ref(const struct sync_refs *r, const char *ws,
		   const char *suffix, const struct sgit_oid *oid)
{
	for (size_t i = 0; i < r->nr; i++)
		if (!strcmp(r->v[i].ws, ws) &&
		    !strcmp(r->v[i].suffix, suffix) &&
		    sgit_oid_equal(&r->v[i].oid, oid))
			return 1;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int listed(const struct strvec *sorted, const char *key)
{
	const char *k = key;

	return sorted->nr && bsearch(&k, sorted->v, sorted->nr,
				     sizeof(*sorted->v), cmp_str) != NULL;
}

static char *cas_key(const char *hex)
{
	return xstrfmt("cas/%.2s/%s", hex, hex + 2);
}

static int run_batch(struct s3 *s3, struct s3_xfer *x, size_t n, int put,
		     const struct remote_opts *o, struct error *err)
{
	int par = o->jobs > 0 ? o->jobs : 16;

	if (!n)
		return 0;
	return put ? s3_batch_put_files(s3, x, n, par, err)
		   : s3_batch_get_files(s3, x, n, par, err);
}

static int push_cas(struct store *st, struct s3 *s3,
		    const struct oid_list *tips, const struct oid_list *hide,
		    const struct remote_opts *o, struct remote_stats *s,
		    struct error *err)
{
	struct store_file *files = NULL;
	struct strvec there = STRVEC_INIT, keys = STRVEC_INIT,
		      paths = STRVEC_INIT;
	struct s3_xfer *x = NULL;
	size_t nfiles = 0, n = 0;
	int ret = -1;

	if (sync_cas_named(st, tips, hide, &files, &nfiles, err))
		goto out;
	if (!nfiles) {
		ret = 0;
		goto out;
	}
	if (s3_list(s3, "cas/", &there, NULL, err) < 0)
		goto out;
	qsort(there.v, there.nr, sizeof(*there.v), cmp_str);
	for (size_t i = 0; i < nfiles; i++) {
		char *key;

		if (i && !strcmp(files[i].hash, files[i - 1].hash))
			continue;
		key = cas_key(files[i].hash);
		if (listed(&there, key)) {
			free(key);
			continue;
		}
		strvec_push_nodup(&keys, key);
		strvec_push_nodup(&paths, sync_cas_path(st, files[i].hash));
		s->bytes += files[i].size;
	}
	x = xcalloc(keys.nr + 1, sizeof(*x));
	for (size_t i = 0; i < keys.nr; i++) {
		x[n].key = keys.v[i];
		x[n].path = paths.v[i];
		x[n++].create_only = 1;
	}
	s->files += n;
	ret = run_batch(s3, x, n, 1, o, err);
out:
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].path);
	free(files);
	free(x);
	strvec_clear(&there);
	strvec_clear(&keys);
	strvec_clear(&paths);
	return ret;
}

int remote_s3_push(struct store *st, const char *url,
		   const struct remote_opts *o, struct remote_stats *s,
		   struct error *err)
{
	struct s3 *s3 = NULL;
	struct sync_refs remote = {0}, local = {0};
	struct oid_list tips = {0}, hide = {0};
	struct strbuf pack = STRBUF_INIT, key = STRBUF_INIT;
	char ws[REMOTE_WS_LEN + 1], hex[SGIT_HEXSZ + 1];
	size_t count = 0;
	int ret = -1;

	if (open_s3(&s3, url, o, err) || sync_ws_id(st, ws, err) ||
	    sync_local_refs(st, &local, err) || list_refs(s3, &remote, err))
		goto out;
	for (size_t i = 0; i < remote.nr; i++) {
		ALLOC_GROW(hide.v, hide.nr + 1, hide.alloc);
		hide.v[hide.nr++] = remote.v[i].oid;
	}
	for (size_t i = 0; i < local.nr; i++) {
		if (has_ref(&remote, ws, local.v[i].suffix, &local.v[i].oid))
			continue;
		ALLOC_GROW(tips.v, tips.nr + 1, tips.alloc);
		tips.v[tips.nr++] = local.v[i].oid;
	}
	if (!tips.nr) {
		ret = 0;
		goto out;
	}
	/* 1. the objects, as one pack */
	if (sgit_pack_build(st->git, tips.v, tips.nr, hide.v, hide.nr, &pack,
			    &count, err))
		goto out;
	if (count) {
		struct sgit_oid sum;

		memcpy(sum.id, pack.buf + pack.len - SGIT_RAWSZ, SGIT_RAWSZ);
		sgit_oid_hex(&sum, hex);
		strbuf_addf(&key, "packs/%s.pack", hex);
		if (s3_put_mem(s3, key.buf, pack.buf, pack.len, 1, err) < 0)
			goto out;
		s->objects = count;
	}
	store_crash_point("push-s3-after-pack");
	/* 2. the CAS files */
	if (push_cas(st, s3, &tips, &hide, o, s, err))
		goto out;
	store_crash_point("push-s3-before-refs");
	/* 3. the refs, each a new object */
	for (size_t i = 0; i < local.nr; i++) {
		if (has_ref(&remote, ws, local.v[i].suffix, &local.v[i].oid))
			continue;
		sgit_oid_hex(&local.v[i].oid, hex);
		strbuf_reset(&key);
		strbuf_addf(&key, "refs/%s/%s/%s", ws, hex, local.v[i].suffix);
		if (s3_put_mem(s3, key.buf, "", 0, 1, err) < 0)
			goto out;
		s->refs++;
		store_crash_point("push-s3-one-ref");
	}
	ret = 0;
out:
	if (s3)
		s->requests = s3_requests(s3);
	s3_close(s3);
	sync_refs_release(&remote);
	sync_refs_release(&local);
	free(tips.v);
	free(hide.v);
	strbuf_release(&pack);
	strbuf_release(&key);
	return ret;
}

/* Index every pack of the remote this store has not indexed yet. */
static int pull_packs(struct store *st, struct s3 *s3, const char *url,
		      const char *dir, struct error *err)
{
	struct strvec keys = STRVEC_INIT;
	struct strbuf seen = STRBUF_INIT, path = STRBUF_INIT,
		      line = STRBUF_INIT, tmp = STRBUF_INIT;
	int ret = -1;

	strbuf_addf(&path, "%s/pipe-pulled", st->git_dir);
	strbuf_read_file(&seen, path.buf, 4096); /* missing: none */
	if (s3_list(s3, "packs/", &keys, NULL, err) < 0)
		goto out;
	for (size_t i = 0; i < keys.nr; i++) {
		strbuf_reset(&line);
		strbuf_addf(&line, "%s %s\n", url, keys.v[i]);
		if (strstr(seen.buf ? seen.buf : "", line.buf))
			continue;
		strbuf_reset(&tmp);
		strbuf_addf(&tmp, "%s/pack", dir);
		if (s3_get_file(s3, keys.v[i], tmp.buf, err) < 0 ||
		    sgit_pack_index(st->git, tmp.buf, err))
			goto out;
		unlink(tmp.buf);
		strbuf_addstr(&seen, line.buf);
		if (fs_write_atomic(path.buf, seen.buf, seen.len, err))
			goto out;
	}
	ret = 0;
out:
	strvec_clear(&keys);
	strbuf_release(&seen);
	strbuf_release(&path);
	strbuf_release(&line);
	strbuf_release(&tmp);
	return ret;
}

static int pull_cas(struct store *st, struct s3 *s3,
		    const struct oid_list *tips, const struct oid_list *old,
		    const char *dir, const struct remote_opts *o,
		    struct remote_stats *s, struct error *err)
{
	struct store_file *files = NULL;
	struct strvec keys = STRVEC_INIT, paths = STRVEC_INIT,
		      hexes = STRVEC_INIT;
	struct s3_xfer *x = NULL;
	size_t nfiles = 0;
	int ret = -1;

	if (sync_cas_named(st, tips, old, &files, &nfiles, err))
		goto out;
	for (size_t i = 0; i < nfiles; i++) {
		if ((i && !strcmp(files[i].hash, files[i - 1].hash)) ||
		    sync_cas_have(st, files[i].hash))
			continue;
		strvec_push_nodup(&keys, cas_key(files[i].hash));
		strvec_push_nodup(&paths, xstrfmt("%s/%s", dir, files[i].hash));
		strvec_push(&hexes, files[i].hash);
		s->bytes += files[i].size;
	}
	x = xcalloc(keys.nr + 1, sizeof(*x));
	for (size_t i = 0; i < keys.nr; i++) {
		x[i].key = keys.v[i];
		x[i].path = paths.v[i];
	}
	if (run_batch(s3, x, keys.nr, 0, o, err))
		goto out;
	for (size_t i = 0; i < keys.nr; i++) {
		if (x[i].result == S3_MISSING) {
			error_set(err, EXIT_ENV,
				  "the remote lacks the CAS file %s its "
				  "commits name: push it again from a "
				  "workspace that has it",
				  hexes.v[i]);
			goto out;
		}
		if (sync_cas_import(st, paths.v[i], hexes.v[i], err))
			goto out;
		s->files++;
	}
	ret = 0;
out:
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].path);
	free(files);
	free(x);
	strvec_clear(&keys);
	strvec_clear(&paths);
	strvec_clear(&hexes);
	return ret;
}

static int old_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	struct oid_list *l = data;

	(void)name;
	ALLOC_GROW(l->v, l->nr + 1, l->alloc);
	l->v[l->nr++] = *oid;
	return 0;
}

int remote_s3_pull(struct store *st, const char *url,
		   const struct remote_opts *o, struct remote_stats *s,
		   struct error *err)
{
	struct s3 *s3 = NULL;
	struct sync_refs remote = {0};
	struct oid_list tips = {0}, old = {0};
	char ws[REMOTE_WS_LEN + 1];
	char *dir = NULL;
	int missing = 0, ret = -1;

	if (open_s3(&s3, url, o, err) || sync_ws_id(st, ws, err) ||
	    store_batch_flush(st, err) ||
	    sgit_ref_foreach(st->git, "refs/pipe/remotes/*", old_cb, &old,
			     err) ||
	    list_refs(s3, &remote, err))
		goto out;
	for (size_t i = 0; i < remote.nr; i++) {
		if (!strcmp(remote.v[i].ws, ws))
			continue;
		ALLOC_GROW(tips.v, tips.nr + 1, tips.alloc);
		tips.v[tips.nr++] = remote.v[i].oid;
		missing += !sgit_object_exists(st->git, &remote.v[i].oid);
	}
	if (!tips.nr) {
		ret = 0;
		goto out;
	}
	if (!(dir = sync_tmp_dir(st, err)))
		goto out;
	if (missing && pull_packs(st, s3, url, dir, err))
		goto out;
	for (size_t i = 0; i < tips.nr; i++)
		if (!sgit_object_exists(st->git, &tips.v[i])) {
			char hex[SGIT_HEXSZ + 1];

			sgit_oid_hex(&tips.v[i], hex);
			error_set(err, EXIT_ENV,
				  "'%s' names commit %s, which none of its "
				  "packs holds: the remote is damaged",
				  url, hex);
			goto out;
		}
	store_crash_point("pull-s3-after-packs");
	/* the files before the refs that name them */
	if (pull_cas(st, s3, &tips, &old, dir, o, s, err))
		goto out;
	for (size_t i = 0; i < remote.nr; i++) {
		int moved = 0;

		if (!strcmp(remote.v[i].ws, ws))
			continue;
		if (sync_track(st, remote.v[i].ws, remote.v[i].suffix,
			       &remote.v[i].oid, &moved, err))
			goto out;
		s->refs += moved;
	}
	ret = 0;
out:
	if (s3)
		s->requests = s3_requests(s3);
	s3_close(s3);
	sync_refs_release(&remote);
	free(tips.v);
	free(old.v);
	free(dir);
	return ret;
}

int remote_push(struct store *st, const char *spec, const struct remote_opts *o,
		struct remote_stats *s, struct error *err)
{
	struct strbuf url = STRBUF_INIT;
	int ret;

	memset(s, 0, sizeof(*s));
	if (remote_is_s3(spec))
		return remote_s3_push(st, spec, o, s, err);
	ret = sgit_remote_url(spec, &url, err);
	if (!ret)
		ret = remote_git_push(st, url.buf, s, err);
	strbuf_release(&url);
	return ret;
}

int remote_pull(struct store *st, const char *spec, const struct remote_opts *o,
		struct remote_stats *s, struct error *err)
{
	struct strbuf url = STRBUF_INIT;
	int ret;

	memset(s, 0, sizeof(*s));
	if (remote_is_s3(spec))
		return remote_s3_pull(st, spec, o, s, err);
	ret = sgit_remote_url(spec, &url, err);
	if (!ret)
		ret = remote_git_pull(st, url.buf, s, err);
	strbuf_release(&url);
	return ret;
}
