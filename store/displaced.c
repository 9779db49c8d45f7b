/* Displaced files: what pipe is about to replace or remove although it did
 * not write it (or it changed since), kept as commits on refs/pipe/displaced
 * first, so that every byte a user wrote can be given back. */
#include "store/internal.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/*
 * A displaced commit's tree is laid out as a stage commit's (the files at
 * their workspace paths and a manifest), its message:
 *
 *   pipe: kept 2 paths before running stage 'train'
 *
 *   Pipe-Kind: displaced
 *   Pipe-Stage: train
 *   Pipe-Reason: before running stage 'train'
 *   Pipe-Path: model/
 *   Pipe-Path: notes.md
 *
 * Its parent is the previous displaced commit: the ref is a history of
 * everything pipe ever moved out of a user's way, and gc keeps it.
 */

static void format_message(const char *stage, const char *why,
			   char *const *paths, struct strbuf *msg)
{
	size_t n = 0;

	while (paths[n])
		n++;
	strbuf_addf(msg, "pipe: kept %zu path%s %s\n\nPipe-Kind: displaced\n",
		    n, n == 1 ? "" : "s", why);
	if (stage) {
		strbuf_addstr(msg, "Pipe-Stage: ");
		store_escape(msg, stage, NULL);
		strbuf_addch(msg, '\n');
	}
	strbuf_addstr(msg, "Pipe-Reason: ");
	store_escape(msg, why, NULL);
	strbuf_addch(msg, '\n');
	for (size_t i = 0; i < n; i++) {
		strbuf_addstr(msg, "Pipe-Path: ");
		store_escape(msg, paths[i], NULL);
		strbuf_addch(msg, '\n');
	}
}

int store_keep_displaced(struct store *st, const char *workspace,
			 const char *stage, const char *why, char *const *paths,
			 struct store_manifest *kept, char *out_commit,
			 struct error *err)
{
	struct strbuf msg = STRBUF_INIT;
	struct sgit_oid parent, tree, commit;
	unsigned long long bytes = 0;
	int has_parent, ret = -1;

	if ((has_parent = store_ref_head(st, DISPLACED_REF, &parent, err)) < 0)
		goto out;
	if (store_write_outputs(st, workspace, paths, 1, &tree, kept, &bytes,
				err))
		goto out;
	format_message(stage, why, paths, &msg);
	if (sgit_write_commit(st->git, &tree, has_parent ? &parent : NULL,
			      has_parent ? 1 : 0, msg.buf, &commit, err) ||
	    store_publish_ref(st, DISPLACED_REF, &commit,
			      has_parent ? &parent : NULL, err))
		goto out;
	/* what follows removes the files: the copy must be on disk first,
	 * even in the middle of a batch */
	if (st->batch && store_batch_flush(st, err))
		goto out;
	sgit_oid_hex(&commit, out_commit);
	ret = 0;
out:
	if (ret) {
		if (!st->batch)
			sgit_discard(st->git);
		error_prefix(err, "cannot keep a copy of what would be "
				  "replaced: ");
	}
	strbuf_release(&msg);
	return ret;
}

void store_displaced_free(struct store_displaced *v, size_t nr)
{
	for (size_t i = 0; v && i < nr; i++) {
		free(v[i].stage);
		free(v[i].why);
		for (size_t j = 0; j < v[i].paths_nr; j++)
			free(v[i].paths[j]);
		free(v[i].paths);
	}
	free(v);
}

static int displaced_cb(const char *key, const char *value, size_t len,
			void *data, struct error *err)
{
	struct store_displaced *d = data;
	struct strbuf sb = STRBUF_INIT;

	if (strcmp(key, "Pipe-Stage") && strcmp(key, "Pipe-Reason") &&
	    strcmp(key, "Pipe-Path"))
		return 0;
	if (store_unescape(&sb, value, len)) {
		strbuf_release(&sb);
		return error_set(err, EXIT_FAILED, "bad escape in %s", key);
	}
	if (!strcmp(key, "Pipe-Stage")) {
		free(d->stage);
		d->stage = strbuf_detach(&sb, NULL);
	} else if (!strcmp(key, "Pipe-Reason")) {
		free(d->why);
		d->why = strbuf_detach(&sb, NULL);
	} else {
		d->paths = xrealloc(d->paths,
				    (d->paths_nr + 1) * sizeof(*d->paths));
		d->paths[d->paths_nr++] = strbuf_detach(&sb, NULL);
	}
	return 0;
}

static int read_one(struct store *st, const struct sgit_oid *oid,
		    struct store_displaced *d, struct error *err)
{
	struct sgit_commit c;
	int ret;

	memset(d, 0, sizeof(*d));
	sgit_oid_hex(oid, d->id);
	if (sgit_read_commit(st->git, oid, &c, err))
		return -1;
	d->time = c.time;
	ret = trailers_parse(c.message, displaced_cb, d, err);
	sgit_commit_release(&c);
	return ret;
}

int store_displaced_log(struct store *st, size_t max,
			struct store_displaced **out, size_t *nr,
			struct error *err)
{
	struct oid_list hist = {0};
	struct store_displaced *v = NULL;
	size_t i = 0;
	int ret = -1;

	*out = NULL;
	*nr = 0;
	if (store_history(st, DISPLACED_REF, max, &hist, err))
		goto out;
	v = xcalloc(hist.nr + 1, sizeof(*v));
	for (i = 0; i < hist.nr; i++)
		if (read_one(st, &hist.v[i], &v[i], err)) {
			i++;
			goto out;
		}
	*out = v;
	*nr = hist.nr;
	v = NULL;
	ret = 0;
out:
	store_displaced_free(v, i);
	free(hist.v);
	return ret;
}

int store_displaced_find(struct store *st, const char *path, char *out_commit,
			 struct error *err)
{
	struct oid_list hist = {0};
	struct strbuf norm = STRBUF_INIT;
	const char *why = NULL;
	int ret = 0;

	if (path_normalize(path, &norm, &why)) {
		strbuf_release(&norm);
		return error_set(err, EXIT_USAGE, "path '%s': %s", path, why);
	}
	strbuf_setlen(&norm, path_trimmed_len(norm.buf));
	if (store_history(st, DISPLACED_REF, 0, &hist, err))
		ret = -1;
	for (size_t i = 0; !ret && i < hist.nr; i++) {
		struct store_manifest m;
		struct sgit_oid tree;

		if (store_load_manifest(st, &hist.v[i], &tree, &m, err)) {
			ret = -1;
			break;
		}
		if (manifest_find(&m, norm.buf)) {
			sgit_oid_hex(&hist.v[i], out_commit);
			ret = 1;
		}
		store_manifest_release(&m);
	}
	free(hist.v);
	strbuf_release(&norm);
	return ret;
}
