/* The output guard: what pipe did not write is kept in the store before an
 * output is replaced (see engine/guard.h). */
#include "engine/guard.h"
#include "engine/engine.h"
#include "engine/plan.h"
#include "engine/scan.h"
#include "engine/state.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Says at most this many files by name; the rest by count. */
#define GUARD_NAMED 10

/* Something to lose at path: a file, a link, or a folder with entries. */
static int holds_something(const char *path)
{
	struct stat sb;
	DIR *d;
	struct dirent *de;
	int any = 0;

	if (lstat(path, &sb))
		return 0;
	if (!S_ISDIR(sb.st_mode))
		return 1;
	if (!(d = opendir(path)))
		return 1; /* unreadable: let the copy say why */
	while (!any && (de = readdir(d)))
		any = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return any;
}

static int has_reason(const struct reasons *rs, enum reason_kind kind,
		      const char *path)
{
	for (size_t i = 0; i < rs->nr; i++)
		if (rs->v[i].kind == kind &&
		    (!path || (rs->v[i].path && !strcmp(rs->v[i].path, path))))
			return 1;
	return 0;
}

int guard_unsafe(struct engine *e, size_t si, const struct reasons *rs,
		 struct strvec *out, struct error *err)
{
	const struct pf_stage *s = &e->pf->stages[si];
	const struct stage_record *old = state_find(e->state, s->name);
	struct reasons own = {0};
	int recorded = old != NULL;

	if (rs)
		recorded = !has_reason(rs, REASON_NEVER_RUN, NULL);
	else if (old && plan_check_outputs(e, si, old, &own, err))
		return -1;
	for (size_t i = 0; i < s->outputs.nr; i++) {
		const char *p = s->outputs.v[i].path;
		int unsafe = recorded ? has_reason(rs ? rs : &own,
						   REASON_OUTPUT_MODIFIED, p)
				      : 1;
		char *plain;

		if (!unsafe)
			continue;
		plain = xstrndup(p, path_trimmed_len(p));
		if (holds_something(plain))
			strvec_push(out, p);
		free(plain);
	}
	reasons_release(&own);
	return 0;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct store_file *)a)->path,
		      ((const struct store_file *)b)->path);
}

/* True when the stage's last commit (m, may be empty) has f as it is. */
static int in_last(const struct store_manifest *m, const struct store_file *f)
{
	const struct store_file *o = m->files_nr
					     ? bsearch(f, m->files, m->files_nr,
						       sizeof(*f), cmp_file)
					     : NULL;

	return o && !strcmp(o->hash, f->hash) &&
	       (o->kind == STORE_LINK) == (f->kind == STORE_LINK);
}

static void tell(const char *commit, const struct store_manifest *kept,
		 const struct store_manifest *last)
{
	size_t named = 0, more = 0;

	for (size_t i = 0; i < kept->files_nr; i++) {
		const struct store_file *f = &kept->files[i];

		if (in_last(last, f))
			continue;
		if (named++ < GUARD_NAMED)
			log_info("kept your '%s' in the store: "
				 "pipe get displaced %s",
				 f->path, f->path);
		else
			more++;
	}
	if (more)
		log_info("kept %zu more file%s in the store: "
			 "pipe log displaced",
			 more, more == 1 ? "" : "s");
	log_verbose("displaced files kept as %.12s", commit);
}

/* paths as they are on disk: a folder ends in '/' whatever was declared
 * (a stage may have written a file where it declared a folder). */
static void as_found(char *const *paths, struct strvec *out)
{
	for (size_t i = 0; paths[i]; i++) {
		size_t len = path_trimmed_len(paths[i]);
		char *plain = xstrndup(paths[i], len);
		struct stat sb;

		if (!lstat(plain, &sb) && S_ISDIR(sb.st_mode))
			strvec_pushf(out, "%s/", plain);
		else
			strvec_push(out, plain);
		free(plain);
	}
}

int guard_keep(struct engine *e, const char *stage, const char *why,
	       char *const *paths, struct error *err)
{
	struct store_manifest kept, last;
	struct store *st;
	char commit[STORE_ID_SIZE], head[STORE_ID_SIZE];
	int rc;

	struct strvec as_is = STRVEC_INIT;

	if (!paths || !paths[0])
		return 0;
	if (engine_store(e, &st, err))
		return -1;
	store_manifest_init(&kept);
	store_manifest_init(&last);
	as_found(paths, &as_is);
	rc = store_keep_displaced(st, e->workspace, stage, why, as_is.v, &kept,
				  commit, err);
	strvec_clear(&as_is);
	if (rc) {
		store_manifest_release(&kept);
		return -1;
	}
	/* naming what changed is worth a read of the last commit, no more */
	rc = store_stage_head(st, stage, head, err);
	if (rc > 0 && store_read_manifest(st, head, &last, err))
		rc = -1;
	if (rc < 0) {
		error_release(err);
		store_manifest_init(&last);
	}
	tell(commit, &kept, &last);
	store_manifest_release(&kept);
	store_manifest_release(&last);
	return 0;
}

/* The last commit of stage's manifest (empty when none or unreadable). */
static void last_manifest(struct engine *e, const char *stage,
			  struct store_manifest *m)
{
	struct error err = ERROR_INIT;
	char head[STORE_ID_SIZE];
	struct store *st;
	int rc = engine_store(e, &st, &err);

	store_manifest_init(m);
	if (!rc)
		rc = store_stage_head(st, stage, head, &err);
	if (rc > 0 && store_read_manifest(st, head, m, &err)) {
		store_manifest_release(m);
		store_manifest_init(m);
	}
	error_release(&err);
}

int guard_files(struct engine *e, const char *stage, char *const *paths,
		struct strvec *out, struct error *err)
{
	struct store_manifest last;
	int ret = 0;

	last_manifest(e, stage, &last);
	for (size_t i = 0; paths[i] && !ret; i++) {
		struct scan_list l = SCAN_LIST_INIT;
		struct hash128 h;
		char *plain = xstrndup(paths[i], path_trimmed_len(paths[i]));
		size_t before = out->nr;
		int found = 0;

		/* as it is on disk: a file where a folder was declared too */
		ret = scan_path(e->sc, ".", plain, 0, &l, &found, &h, err);
		for (size_t k = 0; !ret && k < l.nr; k++) {
			struct store_file f = {.path = l.v[k].path};

			hash_to_hex(&l.v[k].hash, f.hash);
			f.kind = l.v[k].type == 'l' ? STORE_LINK : STORE_BLOB;
			if (!in_last(&last, &f))
				strvec_push(out, l.v[k].path);
		}
		if (!ret && out->nr == before)
			strvec_push(out, paths[i]);
		scan_list_release(&l);
		free(plain);
	}
	store_manifest_release(&last);
	return ret;
}

int guard_outputs(struct engine *e, size_t si, const struct reasons *rs,
		  const char *why, struct error *err)
{
	struct strvec v = STRVEC_INIT;
	int ret;

	ret = guard_unsafe(e, si, rs, &v, err);
	if (!ret && v.nr)
		ret = guard_keep(e, e->pf->stages[si].name, why, v.v, err);
	strvec_clear(&v);
	return ret;
}
