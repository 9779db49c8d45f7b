/* The output folder of a datums stage is the merge of its datums' results.
 * Each result is kept in the store under its datum key; a run after one
 * datum changed removes that datum's old files and moves its new ones in
 * from its PIPE_OUT folder; nothing else is touched. Results restored
 * from the store are copies (CAS files reflinked): a later edit of the
 * output folder never reaches the store. */
#include "engine/datums.h"
#include "engine/engine.h"
#include "engine/scan.h"
#include "engine/state.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OLD_DATUMS_DIR PIPE_DIR "/datums"

char *datums_out_dir(const char *stage, size_t i)
{
	return xstrfmt(PIPE_DIR "/tmp/%s/%zu", stage, i);
}

static char *tmp_dir(const char *stage)
{
	return xstrfmt(PIPE_DIR "/tmp/%s", stage);
}

void datums_end(const char *stage)
{
	char *dir = tmp_dir(stage);

	fs_remove_tree(dir);
	free(dir);
}

/* Results an older pipe kept in .pipe/datums/STAGE/KEY go into the
 * store, then the folder goes. Returns 0 when every one was imported. */
static int import_old(struct store *st, const char *stage)
{
	char *dir = xstrfmt(OLD_DATUMS_DIR "/%s", stage);
	DIR *d = opendir(dir);
	struct dirent *de;
	int ret = 0;

	while (d && (de = readdir(d))) {
		struct error err = ERROR_INIT;
		char *path;

		if (strlen(de->d_name) != HASH_HEX_LEN)
			continue;
		path = path_join(dir, de->d_name);
		if (store_datum_put(st, stage, de->d_name, path, NULL, &err)) {
			log_warn("stage '%s': %s", stage, err.msg.buf);
			ret = -1;
		}
		error_release(&err);
		free(path);
	}
	if (d) {
		closedir(d);
		fs_remove_tree(dir);
		rmdir(OLD_DATUMS_DIR); /* when no other stage's is left */
	}
	free(dir);
	return ret;
}

int datums_begin(struct store *st, const char *stage)
{
	int trust = 1;

	if (!access(OLD_DATUMS_DIR, F_OK))
		trust = !import_old(st, stage);
	datums_end(stage);
	return trust;
}

static int same(const struct state_datum *a, const struct state_datum *b)
{
	return a && b && hash_equal(&a->key, &b->key);
}

int datums_stored(struct store *st, const struct stage_record *old,
		  const char *stage, const struct state_datum *d,
		  struct error *err)
{
	char hex[HASH_HEX_LEN + 1];

	/* a record names only results the store holds (they are flushed
	 * before it is saved): no lookup for the unchanged datums */
	if (old && same(state_find_datum(old, d->path), d))
		return 1;
	hash_to_hex(&d->key, hex);
	return store_datum_has(st, stage, hex, err);
}

static void set_files(struct state_datum *d, struct strvec *files)
{
	d->files = files->nr ? files->v : NULL;
	d->files_nr = d->files_alloc = files->nr;
	strvec_init(files);
}

int datums_keep(struct store *st, const char *stage, struct stage_record *cur,
		size_t i, struct error *err)
{
	struct state_datum *d = &cur->datum_list[i];
	struct strvec files = STRVEC_INIT;
	char *dir = datums_out_dir(stage, i);
	char hex[HASH_HEX_LEN + 1];
	int ret;

	hash_to_hex(&d->key, hex);
	ret = store_datum_put(st, stage, hex, dir, &files, err);
	if (!ret) {
		for (size_t k = 0; k < d->files_nr; k++)
			free(d->files[k]);
		free(d->files);
		set_files(d, &files);
	}
	strvec_clear(&files);
	free(dir);
	return ret;
}

/* A result that should be in the store is not (its refs were deleted, or
 * an older pipe's kept results were removed by hand): say how to redo it. */
static void missing(struct error *err, const char *stage,
		    const struct state_datum *d)
{
	error_prefix(err, "datum '%s': ", d->path);
	strbuf_addf(&err->msg, " ('pipe run -f %s' runs every datum again)",
		    stage);
}

/* Each datum's file list: a datum that ran has it already; an unchanged
 * one has the recorded list (a run after one change of 10,000 datums
 * reads nothing else); the rest are read from the store. */
static int list_files(struct store *st, const char *stage,
		      const struct stage_record *old, struct stage_record *cur,
		      const unsigned char *ran, struct error *err)
{
	for (size_t i = 0; i < cur->datum_nr; i++) {
		struct state_datum *d = &cur->datum_list[i];
		const struct state_datum *od =
			old ? state_find_datum(old, d->path) : NULL;
		struct strvec files = STRVEC_INIT;
		char hex[HASH_HEX_LEN + 1];

		if (ran[i])
			continue;
		if (same(od, d)) {
			d->files = xcalloc(od->files_nr + 1, sizeof(char *));
			for (size_t k = 0; k < od->files_nr; k++)
				d->files[k] = xstrdup(od->files[k]);
			d->files_nr = d->files_alloc = od->files_nr;
			continue;
		}
		hash_to_hex(&d->key, hex);
		if (store_datum_files(st, stage, hex, &files, err)) {
			missing(err, stage, d);
			strvec_clear(&files);
			return -1;
		}
		set_files(d, &files);
	}
	return 0;
}

int datums_files_from_store(struct store *st, const char *stage,
			    struct stage_record *cur, struct error *err)
{
	unsigned char *ran = xcalloc(cur->datum_nr + 1, 1);
	int ret = list_files(st, stage, NULL, cur, ran, err);

	free(ran);
	return ret;
}

struct owner {
	const char *file;
	size_t datum;
};

static int cmp_owner(const void *a, const void *b)
{
	const struct owner *x = a, *y = b;
	int c = strcmp(x->file, y->file);

	if (c)
		return c;
	return x->datum < y->datum ? -1 : x->datum > y->datum;
}

static int cmp_file(const void *key, const void *elem)
{
	return strcmp(key, ((const struct owner *)elem)->file);
}

/* A file of one datum that is a folder of another's path. */
static const struct owner *file_above(const struct owner *v, size_t n,
				      const char *path, struct strbuf *sb)
{
	for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
		const struct owner *o;

		strbuf_reset(sb);
		strbuf_add(sb, path, (size_t)(s - path));
		if ((o = bsearch(sb->buf, v, n, sizeof(*v), cmp_file)))
			return o;
	}
	return NULL;
}

/* Two datums writing the same path, or a file where another datum writes
 * a folder, is an error naming both. */
static int check_conflicts(const struct stage_record *cur, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	struct owner *v;
	size_t n = 0, total = 0;
	int ret = 0;

	for (size_t i = 0; i < cur->datum_nr; i++)
		total += cur->datum_list[i].files_nr;
	v = xcalloc(total + 1, sizeof(*v));
	for (size_t i = 0; i < cur->datum_nr; i++)
		for (size_t j = 0; j < cur->datum_list[i].files_nr; j++) {
			v[n].file = cur->datum_list[i].files[j];
			v[n++].datum = i;
		}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_owner);
	for (size_t i = 0; i < n && !ret; i++) {
		const struct owner *o = file_above(v, n, v[i].file, &sb);

		if (i && !strcmp(v[i - 1].file, v[i].file))
			o = &v[i - 1];
		if (o)
			ret = error_set(err, EXIT_FAILED,
					"datums '%s' and '%s' both write '%s'",
					cur->datum_list[o->datum].path,
					cur->datum_list[v[i].datum].path,
					o->file);
	}
	strbuf_release(&sb);
	free(v);
	return ret;
}

/* Move datum i's files from its PIPE_OUT folder into to. */
static int move_datum(const char *stage, const struct state_datum *d, size_t i,
		      const char *to, struct error *err)
{
	char *from = datums_out_dir(stage, i);
	int ret = 0;

	for (size_t k = 0; k < d->files_nr && !ret; k++) {
		char *src = path_join(from, d->files[k]);
		char *dst = path_join(to, d->files[k]);

		if (fs_mkdir_parent(dst, 0755) ||
		    (rename(src, dst) &&
		     (errno != EXDEV || fs_copy_file(src, dst))))
			ret = error_set(err, EXIT_FAILED,
					"cannot move '%s' to '%s': %s", src,
					dst, strerror(errno));
		free(src);
		free(dst);
	}
	free(from);
	return ret;
}

/* Put datum i's result into to: moved from its PIPE_OUT folder when it
 * ran, else restored from the store. */
static int place_datum(struct store *st, const char *stage,
		       const struct state_datum *d, size_t i,
		       const unsigned char *ran, const char *to,
		       struct error *err)
{
	char hex[HASH_HEX_LEN + 1];

	if (ran[i])
		return move_datum(stage, d, i, to, err);
	hash_to_hex(&d->key, hex);
	if (!store_datum_restore(st, stage, hex, to, err))
		return 0;
	missing(err, stage, d);
	return -1;
}

static int rebuild(struct store *st, const char *stage, const char *out,
		   const struct stage_record *cur, const unsigned char *ran,
		   struct error *err)
{
	char *tmp = xstrfmt(PIPE_DIR "/tmp/%s/merged", stage);
	int ret = 0;

	fs_remove_tree(tmp);
	if (fs_mkdir_p(tmp, 0755))
		ret = error_set(err, EXIT_ENV, "cannot create '%s': %s", tmp,
				strerror(errno));
	for (size_t i = 0; i < cur->datum_nr && !ret; i++)
		ret = place_datum(st, stage, &cur->datum_list[i], i, ran, tmp,
				  err);
	if (!ret && (fs_remove_tree(out) || fs_mkdir_parent(out, 0755) ||
		     rename(tmp, out)))
		ret = error_set(err, EXIT_FAILED, "cannot replace '%s': %s",
				out, strerror(errno));
	fs_remove_tree(tmp);
	free(tmp);
	return ret;
}

/* Datum path of cur: ran now, or its key changed since old. */
static int changed(const struct stage_record *cur, const char *path,
		   const struct state_datum *od, const unsigned char *ran)
{
	const struct state_datum *d = state_find_datum(cur, path);

	return !same(od, d) || ran[d - cur->datum_list];
}

static int update(struct store *st, const char *stage, const char *out,
		  const struct stage_record *old,
		  const struct stage_record *cur, const unsigned char *ran,
		  struct error *err)
{
	for (size_t i = 0; i < old->datum_nr; i++) {
		const struct state_datum *od = &old->datum_list[i];

		if (!changed(cur, od->path, od, ran))
			continue;
		for (size_t k = 0; k < od->files_nr; k++) {
			char *f = path_join(out, od->files[k]);

			if (unlink(f) && errno != ENOENT) {
				error_set(err, EXIT_FAILED,
					  "cannot remove '%s': %s", f,
					  strerror(errno));
				free(f);
				return -1;
			}
			free(f);
		}
	}
	for (size_t i = 0; i < cur->datum_nr; i++) {
		const struct state_datum *nd = &cur->datum_list[i];

		if (changed(cur, nd->path, state_find_datum(old, nd->path),
			    ran) &&
		    place_datum(st, stage, nd, i, ran, out, err))
			return -1;
	}
	return 0;
}

/* True when the output folder still hashes to what old recorded. */
static int output_intact(struct engine *e, const char *out,
			 const struct stage_record *old,
			 const struct stage_record *cur, struct error *err)
{
	struct scan_list l = SCAN_LIST_INIT;
	struct hash128 now;
	int found = 0, ret;

	if (!old || old->outputs_nr != 1 || old->outputs[0].missing ||
	    !old->datums || !cur->datums || strcmp(old->datums, cur->datums))
		return 0;
	ret = scan_path(e->sc, ".", out, 0, &l, &found, &now, err);
	scan_list_release(&l);
	if (ret)
		return -1;
	return found && hash_equal(&now, &old->outputs[0].hash);
}

int datums_merge(struct engine *e, size_t si, struct store *st,
		 struct stage_record *cur, const unsigned char *ran,
		 struct error *err)
{
	const struct pf_stage *ps = &e->pf->stages[si];
	const struct stage_record *old = state_find(e->state, ps->name);
	char *out = xstrndup(ps->outputs.v[0].path,
			     path_trimmed_len(ps->outputs.v[0].path));
	int intact, ret = -1;

	if (list_files(st, ps->name, old, cur, ran, err) ||
	    check_conflicts(cur, err))
		goto out;
	intact = output_intact(e, ps->outputs.v[0].path, old, cur, err);
	if (intact < 0)
		goto out;
	if (intact)
		ret = update(st, ps->name, out, old, cur, ran, err);
	else
		ret = rebuild(st, ps->name, out, cur, ran, err);
out:
	if (ret)
		error_prefix(err, "stage '%s': ", ps->name);
	free(out);
	return ret;
}
