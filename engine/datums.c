/* The output folder of a datums stage is the merge of its datums' results.
 * Results are kept per datum key, so a run after one datum changed removes
 * that datum's old files and copies its new ones; nothing else is touched.
 * Copies, not links: a later edit of the output folder must never reach
 * the kept results. */
#include "engine/datums.h"
#include "engine/engine.h"
#include "engine/scan.h"
#include "engine/state.h"
#include "pipefile/pipefile.h"
#include "util/fs.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char *cache_dir(const char *stage, const struct hash128 *key)
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(key, hex);
	return xstrfmt(PIPE_DIR "/datums/%s/%s", stage, hex);
}

/* Each datum's file list, read from its kept result. */
static int same(const struct state_datum *a, const struct state_datum *b);

/* Each datum's file list: the recorded one when the datum is unchanged
 * (a run after one change of 10,000 datums reads one folder, not all),
 * else read from its kept result. */
static int list_files(const char *stage, const struct stage_record *old,
		      struct stage_record *cur, struct error *err)
{
	for (size_t i = 0; i < cur->datum_nr; i++) {
		struct state_datum *d = &cur->datum_list[i];
		const struct state_datum *od =
			old ? state_find_datum(old, d->path) : NULL;
		char *dir;
		struct strvec files = STRVEC_INIT;

		if (same(od, d)) {
			d->files = xcalloc(od->files_nr + 1, sizeof(char *));
			for (size_t k = 0; k < od->files_nr; k++)
				d->files[k] = xstrdup(od->files[k]);
			d->files_nr = d->files_alloc = od->files_nr;
			continue;
		}
		dir = cache_dir(stage, &d->key);

		if (fs_list_tree(dir, &files)) {
			error_set(err, EXIT_FAILED,
				  "cannot read the result of datum '%s' in "
				  "'%s': %s",
				  d->path, dir, strerror(errno));
			strvec_clear(&files);
			free(dir);
			return -1;
		}
		free(dir);
		d->files = files.nr ? files.v : NULL;
		d->files_nr = d->files_alloc = files.nr;
	}
	return 0;
}

/* Two datums writing the same path is an error naming both. */
static int check_conflicts(const struct stage_record *cur, struct error *err)
{
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
	for (size_t i = 1; i < n && !ret; i++)
		if (!strcmp(v[i - 1].file, v[i].file))
			ret = error_set(err, EXIT_FAILED,
					"datums '%s' and '%s' both write '%s'",
					cur->datum_list[v[i - 1].datum].path,
					cur->datum_list[v[i].datum].path,
					v[i].file);
	free(v);
	return ret;
}

static int copy_datum(const char *stage, const struct state_datum *d,
		      const char *to, struct error *err)
{
	char *from = cache_dir(stage, &d->key);
	int ret = 0;

	for (size_t i = 0; i < d->files_nr && !ret; i++) {
		char *src = path_join(from, d->files[i]);
		char *dst = path_join(to, d->files[i]);

		if (fs_mkdir_parent(dst, 0755) || fs_copy_file(src, dst))
			ret = error_set(err, EXIT_FAILED,
					"cannot copy '%s' to '%s': %s", src,
					dst, strerror(errno));
		free(src);
		free(dst);
	}
	free(from);
	return ret;
}

static int rebuild(const char *stage, const char *out,
		   const struct stage_record *cur, struct error *err)
{
	char *tmp = xstrfmt(PIPE_DIR "/tmp/%s/merged", stage);
	int ret = 0;

	fs_remove_tree(tmp);
	if (fs_mkdir_p(tmp, 0755))
		ret = error_set(err, EXIT_ENV, "cannot create '%s': %s", tmp,
				strerror(errno));
	for (size_t i = 0; i < cur->datum_nr && !ret; i++)
		ret = copy_datum(stage, &cur->datum_list[i], tmp, err);
	if (!ret && (fs_remove_tree(out) || fs_mkdir_parent(out, 0755) ||
		     rename(tmp, out)))
		ret = error_set(err, EXIT_FAILED, "cannot replace '%s': %s",
				out, strerror(errno));
	fs_remove_tree(tmp);
	free(tmp);
	return ret;
}

static int same(const struct state_datum *a, const struct state_datum *b)
{
	return a && b && hash_equal(&a->key, &b->key);
}

static int update(const char *stage, const char *out,
		  const struct stage_record *old,
		  const struct stage_record *cur, struct error *err)
{
	for (size_t i = 0; i < old->datum_nr; i++) {
		const struct state_datum *od = &old->datum_list[i];

		if (same(od, state_find_datum(cur, od->path)))
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

		if (!same(nd, state_find_datum(old, nd->path)) &&
		    copy_datum(stage, nd, out, err))
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

int datums_merge(struct engine *e, size_t si, struct stage_record *cur,
		 struct error *err)
{
	const struct pf_stage *st = &e->pf->stages[si];
	const struct stage_record *old = state_find(e->state, st->name);
	char *out = xstrndup(st->outputs.v[0].path,
			     path_trimmed_len(st->outputs.v[0].path));
	int intact, ret = -1;

	if (list_files(st->name, old, cur, err) || check_conflicts(cur, err))
		goto out;
	intact = output_intact(e, st->outputs.v[0].path, old, cur, err);
	if (intact < 0)
		goto out;
	if (intact) {
		ret = update(st->name, out, old, cur, err);
	} else {
		ret = rebuild(st->name, out, cur, err);
	}
out:
	if (ret)
		error_prefix(err, "stage '%s': ", st->name);
	free(out);
	return ret;
}
