/* `pipe reproduce`: the scratch tree of an old commit, its recorded
 * inputs, and what its run gave compared with what was recorded. */
#include "engine/reproduce.h"
#include "engine/engine.h"
#include "engine/lock.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strmap.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file pipe writes first into a scratch tree it makes: a folder with
 * it is pipe's to replace; any other folder with files is the user's. */
#define MARKER ".pipe-reproduce"

/* The first entry of dir other than . and .., or NULL (caller frees). */
static char *first_entry(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *name = NULL;

	if (!d)
		return NULL;
	while (!name && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			name = xstrdup(de->d_name);
	closedir(d);
	return name;
}

/* Make dir empty and pipe's: a folder pipe made before is moved aside and
 * removed; a folder with anything else in it is refused. */
static int scratch_dir(const char *dir, struct error *err)
{
	struct strbuf tmp = STRBUF_INIT;
	struct stat sb;
	char *marker = path_join(dir, MARKER), *name = NULL;
	int ret = -1;

	if (!lstat(dir, &sb)) {
		if (!S_ISDIR(sb.st_mode)) {
			error_set(err, EXIT_USAGE,
				  "'%s' exists and is not a folder: pipe "
				  "reproduce writes a folder there",
				  dir);
			goto out;
		}
		if (access(marker, F_OK) && (name = first_entry(dir))) {
			error_set(err, EXIT_USAGE,
				  "'%s' exists and holds files pipe did not "
				  "write there ('%s'); name an empty or new "
				  "folder with -o",
				  dir, name);
			goto out;
		}
		/* aside first: a kill while removing leaves no half tree
		 * with the marker gone */
		strbuf_addf(&tmp, "%s.pipe-old-%ld", dir, (long)getpid());
		if (!access(marker, F_OK) && rename(dir, tmp.buf)) {
			error_set(err, EXIT_ENV, "cannot move '%s' aside: %s",
				  dir, strerror(errno));
			goto out;
		}
		fs_remove_tree(tmp.buf);
	}
	if (fs_mkdir_p(dir, 0777) ||
	    fs_write_atomic(marker, "pipe reproduce\n", 15, err)) {
		if (!err->exit_code)
			error_set(err, EXIT_ENV, "cannot create '%s': %s", dir,
				  strerror(errno));
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&tmp);
	free(marker);
	free(name);
	return ret;
}

/* The runs recorded at commit, newest first: this workspace's, and those
 * a pull brought from others. */
static int runs_at(struct reproduce *r, struct error *err)
{
	struct store_run *all = NULL;
	size_t nr = 0, n = 0;

	if (store_list_runs_all(r->st, &all, &nr, err))
		return -1;
	r->runs = xcalloc(nr + 1, sizeof(*r->runs));
	for (size_t i = 0; i < nr; i++) {
		if (all[i].git_head && !strcmp(all[i].git_head, r->commit)) {
			r->runs[n++] = all[i];
			store_run_init(&all[i]);
		}
	}
	r->runs_nr = n;
	store_runs_free(all, nr);
	for (size_t i = 0; i < n; i++) /* listed as summaries */
		if (store_run_read_stages(r->st, &r->runs[i], err))
			return -1;
	if (!n)
		return error_set(err, EXIT_USAGE,
				 "no run recorded at commit %.12s: pipe "
				 "reproduce needs the untracked inputs a "
				 "`pipe run` at that commit records",
				 r->commit);
	return 0;
}

static int has_path(const struct strvec *v, const char *path)
{
	for (size_t i = 0; i < v->nr; i++)
		if (!strcmp(v->v[i], path))
			return 1;
	return 0;
}

/* Each run's inputs, the newest run's copy of a path winning. */
static int restore_inputs(struct reproduce *r, struct error *err)
{
	struct strvec done = STRVEC_INIT;
	int ret = 0;

	for (size_t i = 0; i < r->runs_nr && !ret; i++) {
		struct strvec only = STRVEC_INIT;
		struct store_manifest m;

		if (store_run_inputs(r->st, &r->runs[i], &m, err) < 0) {
			ret = -1;
			break;
		}
		for (size_t k = 0; k < m.files_nr; k++)
			if (!has_path(&done, m.files[k].path)) {
				strvec_push(&only, m.files[k].path);
				strvec_push(&done, m.files[k].path);
			}
		if (only.nr)
			ret = store_restore_run_inputs(
				r->st, &r->runs[i], r->workspace, only.v, err);
		store_manifest_release(&m);
		strvec_clear(&only);
	}
	r->restored = done.nr;
	strvec_clear(&done);
	return ret;
}

/* in lies in (or is) an output of some stage: a run makes it. */
static int made_by_a_stage(const struct pipefile *pf, const char *in)
{
	for (size_t s = 0; s < pf->nr; s++)
		for (size_t j = 0; j < pf->stages[s].outputs.nr; j++)
			if (path_overlaps(in, pf->stages[s].outputs.v[j].path))
				return 1;
	return 0;
}

/* Every input no stage writes must be in the scratch workspace now. */
static int check_inputs(struct reproduce *r, struct error *err)
{
	struct pipefile *pf = NULL;
	struct strvec missing = STRVEC_INIT;
	struct strbuf list = STRBUF_INIT;
	int ret = -1;

	if (pipefile_load(&pf, r->pipefile, err)) {
		error_prefix(err, "the Pipefile at %.12s: ", r->commit);
		return -1;
	}
	for (size_t s = 0; s < pf->nr; s++) {
		const struct pf_paths *in = &pf->stages[s].inputs;

		for (size_t i = 0; i < in->nr; i++) {
			char *abs;

			if (in->v[i].is_glob ||
			    made_by_a_stage(pf, in->v[i].path) ||
			    has_path(&missing, in->v[i].path))
				continue;
			abs = path_join(r->workspace, in->v[i].path);
			if (access(abs, F_OK))
				strvec_push(&missing, in->v[i].path);
			free(abs);
		}
	}
	for (size_t i = 0; i < missing.nr; i++)
		strbuf_addf(&list, "%s'%s'", i ? ", " : "", missing.v[i]);
	if (missing.nr)
		error_set(err, EXIT_FAILED,
			  "input%s %s: neither in git at %.12s nor recorded by "
			  "the run%s at that commit",
			  missing.nr == 1 ? "" : "s", list.buf, r->commit,
			  r->runs_nr == 1 ? "" : "s");
	else
		ret = 0;
	pipefile_free(pf);
	strvec_clear(&missing);
	strbuf_release(&list);
	return ret;
}

/* The Pipefile's folder (absolute) and its name. */
static int split_pipefile(const char *path, char **dir, char **name,
			  struct error *err)
{
	const char *slash = strrchr(path, '/');
	char *d = slash ? xstrndup(path, (size_t)(slash - path + 1))
			: xstrdup(".");

	*dir = realpath(d, NULL);
	*name = xstrdup(slash ? slash + 1 : path);
	free(d);
	if (!*dir)
		return error_set(err, EXIT_USAGE, "cannot find '%s': %s", path,
				 strerror(errno));
	return 0;
}

static int open_workspace(struct reproduce *r, struct error *err)
{
	struct stat sb;

	if (stat(PIPE_DIR "/store", &sb))
		return error_set(err, EXIT_USAGE,
				 "no run recorded in this workspace (no "
				 "%s/store): run `pipe run` first",
				 PIPE_DIR);
	r->lock_fd = lock_acquire(PIPE_DIR "/lock", 0, "pipe reproduce", err);
	if (r->lock_fd < 0)
		return -1;
	return store_open(&r->st, PIPE_DIR, err);
}

/* *path resolved through its symlinks: git compares its ceiling folders
 * with real paths. */
static int canonical(char **path, struct error *err)
{
	char *real = realpath(*path, NULL);

	if (!real)
		return error_set(err, EXIT_ENV, "cannot resolve '%s': %s",
				 *path, strerror(errno));
	free(*path);
	*path = real;
	return 0;
}

int reproduce_prepare(struct reproduce *r, const struct reproduce_options *o,
		      struct error *err)
{
	struct strbuf commit = STRBUF_INIT, prefix = STRBUF_INIT;
	char *ws = NULL, *name = NULL, *scratch_pipe = NULL;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	r->lock_fd = -1;
	if (o->out_dir) { /* relative to where pipe was started */
		char *here = getcwd(NULL, 0);

		r->dir = o->out_dir[0] == '/' || !here
				 ? xstrdup(o->out_dir)
				 : path_join(here, o->out_dir);
		free(here);
	}
	if (split_pipefile(o->pipefile, &ws, &name, err))
		goto out;
	if (chdir(ws)) {
		error_set(err, EXIT_ENV, "cannot enter '%s': %s", ws,
			  strerror(errno));
		goto out;
	}
	if (store_project_resolve(o->rev, &commit, &prefix, err) ||
	    store_project_export(commit.buf, NULL, name, err) ||
	    open_workspace(r, err))
		goto out;
	snprintf(r->commit, sizeof(r->commit), "%s", commit.buf);
	if (runs_at(r, err))
		goto out;
	if (!r->dir)
		r->dir = xstrfmt("%s/" PIPE_DIR "/reproduce/%.12s", ws,
				 r->commit);
	if (fs_mkdir_parent(r->dir, 0777) || scratch_dir(r->dir, err) ||
	    canonical(&r->dir, err))
		goto out;
	r->workspace = prefix.len ? xstrfmt("%s/%.*s", r->dir,
					    (int)prefix.len - 1, prefix.buf)
				  : xstrdup(r->dir);
	r->pipefile = path_join(r->workspace, name);
	scratch_pipe = path_join(r->workspace, PIPE_DIR);
	if (store_project_export(r->commit, r->dir, name, err) ||
	    restore_inputs(r, err) || check_inputs(r, err) ||
	    fs_mkdir_p(scratch_pipe, 0777) ||
	    store_make_shadow(r->st, scratch_pipe, err))
		goto out;
	ret = 0;
out:
	if (ret && !err->exit_code)
		error_set(err, EXIT_ENV, "cannot create '%s': %s",
			  scratch_pipe ? scratch_pipe : r->dir,
			  strerror(errno));
	strbuf_release(&commit);
	strbuf_release(&prefix);
	free(ws);
	free(name);
	free(scratch_pipe);
	return ret;
}

/* The scratch workspace's newest run record. */
static int scratch_run(struct reproduce *r, struct store **st,
		       struct store_run *run, struct error *err)
{
	char *pipe_dir = path_join(r->workspace, PIPE_DIR);
	char id[STORE_ID_SIZE];
	int ret = -1;

	store_run_init(run);
	if (!store_open(st, pipe_dir, err) &&
	    !store_resolve(*st, "runs", id, NULL, err) &&
	    !store_read_run(*st, id, run, err))
		ret = 0;
	free(pipe_dir);
	return ret;
}

static void print_list(FILE *out, const char *what, const struct strvec *v)
{
	fprintf(out, "%-15s", what);
	for (size_t i = 0; i < v->nr; i++)
		fprintf(out, "%s%s", i ? ", " : "", v->v[i]);
	fprintf(out, "%s\n", v->nr ? "" : "(none)");
}

/* The run's stages in the Pipefile's order (a record lists them by
 * name); those it does not declare last. */
static size_t *pipefile_order(const struct reproduce *r,
			      const struct store_run *run)
{
	size_t *v = xcalloc(run->stages_nr + 1, sizeof(*v)), n = 0;
	unsigned char *done = xcalloc(run->stages_nr + 1, 1);
	struct error ignore = ERROR_INIT;
	struct pipefile *pf = NULL;
	struct strmap at;

	strmap_init(&at, run->stages_nr);
	for (size_t i = 0; i < run->stages_nr; i++)
		strmap_put(&at, run->stages[i].stage, (void *)(i + 1));
	if (!pipefile_load(&pf, r->pipefile, &ignore))
		for (size_t s = 0; s < pf->nr; s++) {
			size_t i = (size_t)strmap_get(&at, pf->stages[s].name);

			if (i && !done[i - 1]) {
				done[i - 1] = 1;
				v[n++] = i - 1;
			}
		}
	for (size_t i = 0; i < run->stages_nr; i++)
		if (!done[i])
			v[n++] = i;
	pipefile_free(pf);
	error_release(&ignore);
	strmap_release(&at);
	free(done);
	return v;
}

int reproduce_report(struct reproduce *r, FILE *out, struct error *err)
{
	struct strvec cached = STRVEC_INIT, ran = STRVEC_INIT;
	struct store *st = NULL;
	struct store_run run;
	size_t *order = NULL;
	int ret = -1;

	if (scratch_run(r, &st, &run, err))
		goto out;
	order = pipefile_order(r, &run);
	for (size_t k = 0; k < run.stages_nr; k++) {
		size_t i = order[k];
		struct store_prov p;

		if (store_read_prov(st, run.stages[i].commit, &p, err))
			goto out;
		strvec_push(p.state && !strcmp(p.state, "cached") ? &cached
								  : &ran,
			    run.stages[i].stage);
		store_prov_release(&p);
	}
	fprintf(out, "commit         %s\n", r->commit);
	fprintf(out, "inputs         %zu untracked file%s from the store\n",
		r->restored, r->restored == 1 ? "" : "s");
	print_list(out, "from the store", &cached);
	print_list(out, "ran", &ran);
	fprintf(out, "outputs in     %s\n", r->workspace);
	ret = 0;
out:
	free(order);
	store_run_release(&run);
	store_free(st);
	strvec_clear(&cached);
	strvec_clear(&ran);
	return ret;
}

/* The commit the runs at r->commit recorded for stage, or NULL. */
static const char *recorded(const struct reproduce *r, const char *stage)
{
	for (size_t i = 0; i < r->runs_nr; i++)
		for (size_t k = 0; k < r->runs[i].stages_nr; k++)
			if (!strcmp(r->runs[i].stages[k].stage, stage))
				return r->runs[i].stages[k].commit;
	return NULL;
}

static const struct store_file *find_file(const struct store_manifest *m,
					  const char *path)
{
	for (size_t i = 0; i < m->files_nr; i++)
		if (!strcmp(m->files[i].path, path))
			return &m->files[i];
	return NULL;
}

static int same_file(const struct store_file *a, const struct store_file *b)
{
	return a && b && !strcmp(a->hash, b->hash) && a->exec == b->exec &&
	       (a->kind == STORE_LINK) == (b->kind == STORE_LINK);
}

/* The paths whose content differs between the two commits' outputs. */
static int diff_commits(struct store *st, const char *a, const char *b,
			struct strvec *paths, struct error *err)
{
	struct store_manifest ma, mb;
	int ret = -1;

	store_manifest_init(&mb);
	if (store_read_manifest(st, a, &ma, err) ||
	    store_read_manifest(st, b, &mb, err))
		goto out;
	for (size_t i = 0; i < ma.files_nr; i++)
		if (!same_file(&ma.files[i], find_file(&mb, ma.files[i].path)))
			strvec_push(paths, ma.files[i].path);
	for (size_t i = 0; i < mb.files_nr; i++)
		if (!find_file(&ma, mb.files[i].path))
			strvec_push(paths, mb.files[i].path);
	ret = 0;
out:
	store_manifest_release(&ma);
	store_manifest_release(&mb);
	return ret;
}

int reproduce_verify(struct reproduce *r, FILE *out, size_t *differs,
		     struct error *err)
{
	struct store *st = NULL;
	struct store_run run;
	size_t *order = NULL;
	int ret = -1;

	*differs = 0;
	if (scratch_run(r, &st, &run, err))
		goto out;
	order = pipefile_order(r, &run);
	fprintf(out, "%-24s %s\n", "STAGE", "RESULT");
	for (size_t k = 0; k < run.stages_nr; k++) {
		size_t i = order[k];
		const char *rec = recorded(r, run.stages[i].stage);
		struct strvec paths = STRVEC_INIT;

		if (!rec) {
			fprintf(out, "%-24s not recorded at %.12s\n",
				run.stages[i].stage, r->commit);
			continue;
		}
		if (diff_commits(st, rec, run.stages[i].commit, &paths, err))
			goto out;
		fprintf(out, "%-24s %s", run.stages[i].stage,
			paths.nr ? "differs:" : "identical");
		for (size_t p = 0; p < paths.nr; p++)
			fprintf(out, " %s", paths.v[p]);
		fputc('\n', out);
		*differs += paths.nr > 0;
		strvec_clear(&paths);
	}
	ret = 0;
out:
	free(order);
	store_run_release(&run);
	store_free(st);
	return ret;
}

void reproduce_release(struct reproduce *r)
{
	store_runs_free(r->runs, r->runs_nr);
	store_free(r->st);
	if (r->lock_fd >= 0)
		lock_release(r->lock_fd);
	free(r->dir);
	free(r->workspace);
	free(r->pipefile);
	memset(r, 0, sizeof(*r));
	r->lock_fd = -1;
}
