/* The provenance record of a run (SPEC §5): each stage's commit with its
 * provenance, each job's line in .pipe/jobs, and the run record that ties
 * the stage commits of one `pipe run` together. */
#include "engine/graph.h"
#include "engine/jobs.h"
#include "engine/scan.h"
#include "engine/sched.h"
#include "engine/state.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* Provenance of j's stage commit (SPEC §5). */
static int fill_prov(struct sched *s, struct job *j, struct store *st,
		     struct store_prov *p, struct error *err)
{
	const struct pf_stage *ps = &s->e->pf->stages[j->stage];
	const struct graph_node *n = &s->e->g->nodes[j->stage];
	const struct stage_record *r = j->cur;
	char commit[STORE_ID_SIZE];
	const char *head;

	hash_to_hex(&r->key, p->key);
	for (size_t i = 0; i < r->inputs_nr; i++) {
		char hex[HASH_HEX_LEN + 1];

		if (r->inputs[i].missing)
			continue;
		hash_to_hex(&r->inputs[i].hash, hex);
		store_prov_add_input(p, r->inputs[i].path, hex);
	}
	for (size_t d = 0; d < n->deps_nr; d++) {
		int found = store_stage_head(
			st, s->e->pf->stages[n->deps[d]].name, commit, err);

		if (found < 0)
			return -1;
		if (found)
			store_prov_add_upstream(
				p, s->e->pf->stages[n->deps[d]].name, commit);
	}
	for (size_t i = 0; i < r->params_nr; i++)
		store_prov_add_param(p, r->params[i].key, r->params[i].value);
	if (ps->image)
		p->image = r->image ? xstrfmt("%s@%s", ps->image, r->image)
				    : xstrdup(ps->image);
	p->executor = xstrdup(r->executor);
	head = engine_git_head(s->e, &p->git_dirty);
	p->git_head = *head ? xstrdup(head) : NULL;
	p->started = j->started_ms / 1000;
	p->duration_ms = sched_now_ms() - j->started_ms;
	p->datums_processed = j->datums_done;
	p->datums_skipped = j->datums_skipped;
	p->datums_total = r->datum_nr;
	p->bytes_in = r->bytes_in;
	return 0;
}

/* Commit the stage's outputs with their provenance, state "success". */
int record_commit(struct sched *s, struct job *j, struct error *err)
{
	const struct pf_stage *ps = &s->e->pf->stages[j->stage];
	struct strvec outs = STRVEC_INIT;
	struct store_prov p;
	struct store *st;
	int ret = -1;

	if (sched_store(s, &st, err))
		return -1;
	store_prov_init(&p);
	p.stage = xstrdup(ps->name);
	p.state = xstrdup("success");
	for (size_t i = 0; i < ps->outputs.nr; i++)
		strvec_push(&outs, ps->outputs.v[i].path);
	if (!fill_prov(s, j, st, &p, err))
		ret = store_commit_stage(st, s->e->workspace, ps->name, outs.v,
					 &p, j->commit, err);
	s->store_used = 1;
	strvec_clear(&outs);
	store_prov_release(&p);
	return ret;
}

/* A run-cache hit is a new commit with the reused commit's tree: nothing
 * is copied again. */
int record_reuse(struct sched *s, struct job *j, struct store *st,
		 const char *from, struct error *err)
{
	struct store_prov p;
	int ret = -1;

	store_prov_init(&p);
	p.stage = xstrdup(sched_stage_name(s, j->stage));
	p.state = xstrdup("cached");
	p.cached_from = xstrdup(from);
	if (!fill_prov(s, j, st, &p, err))
		ret = store_commit_reuse(st, p.stage, from, &p, j->commit, err);
	s->store_used = 1;
	store_prov_release(&p);
	return ret;
}

void record_job(struct sched *s, struct job *j, const char *state)
{
	const struct pf_stage *ps = &s->e->pf->stages[j->stage];
	struct job_rec r;
	struct error err = ERROR_INIT;
	char *log = ps->rare->datums.path
			    ? xstrfmt(PIPE_DIR "/logs/%s/", j->id)
			    : xstrfmt(PIPE_DIR "/logs/%s.log", j->id);

	memset(&r, 0, sizeof(r));
	memcpy(r.id, j->id, sizeof(r.id));
	r.stage = (char *)ps->name;
	r.commit = j->commit;
	r.state = (char *)state;
	r.log = log;
	r.started_ms = j->started_ms;
	r.duration_ms = sched_now_ms() - j->started_ms;
	if (j->cur) {
		r.processed = j->datums_done;
		r.skipped = j->datums_skipped;
		r.total = j->cur->datum_nr;
		r.bytes_in = j->cur->bytes_in;
		for (size_t i = 0; i < j->cur->outputs_nr; i++)
			r.bytes_out += j->cur->outputs[i].bytes;
	}
	if (jobs_append(PIPE_DIR "/jobs", &r, &err)) {
		log_warn("%s", err.msg.buf);
		error_release(&err);
	}
	free(log);
}

/* file lies in an output of a stage si reads from: the store has it. */
static int written_upstream(const struct engine *e, size_t si, const char *file)
{
	const struct graph_node *n = &e->g->nodes[si];

	for (size_t d = 0; d < n->deps_nr; d++) {
		const struct pf_paths *outs =
			&e->pf->stages[n->deps[d]].outputs;

		for (size_t j = 0; j < outs->nr; j++)
			if (path_overlaps(file, outs->v[j].path))
				return 1;
	}
	return 0;
}

/* The input files of a run, as its scans found them. */
struct file_list {
	struct store_file *v;
	size_t nr, alloc;
};

static void files_release(struct file_list *l)
{
	for (size_t i = 0; i < l->nr; i++)
		free(l->v[i].path);
	free(l->v);
}

static struct store_file *add_file(struct file_list *files)
{
	struct store_file *f;

	ALLOC_GROW(files->v, files->nr + 1, files->alloc);
	f = &files->v[files->nr++];
	memset(f, 0, sizeof(*f));
	return f;
}

/* A plain file input whose hash, as this run found it (the stage's
 * record), is the one the previous run recorded for that path: that
 * entry, without a look at the file. A plain file's hash is its
 * content's (an executable's or a link's is not, and they are scanned). */
static int as_before(struct sched *s, size_t si, const struct pf_path *in,
		     const struct store_manifest *prev, struct file_list *files)
{
	const struct stage_record *r = s->jobs[si] ? s->jobs[si]->cur : NULL;
	const struct store_file *f;
	char hex[HASH_HEX_LEN + 1];

	if (in->is_glob || in->is_dir || !prev ||
	    !(f = store_manifest_find(prev, in->path)) ||
	    f->kind == STORE_LINK || f->exec)
		return 0;
	if (!r)
		r = state_find(s->e->state, sched_stage_name(s, si));
	for (size_t i = 0; r && i < r->inputs_nr; i++) {
		if (strcmp(r->inputs[i].path, in->path) || r->inputs[i].missing)
			continue;
		hash_to_hex(&r->inputs[i].hash, hex);
		if (strcmp(hex, f->hash))
			return 0;
		*add_file(files) = *f;
		files->v[files->nr - 1].path = xstrdup(f->path);
		return 1;
	}
	return 0;
}

/* The files of input in of stage si, into files; none when clean (HEAD
 * holds it as it is: a file the record would drop once checked). */
static int add_files(struct sched *s, size_t si, const struct pf_path *in,
		     const struct store_manifest *prev, int clean,
		     struct file_list *files, struct error *err)
{
	struct engine *e = s->e;
	struct scan_list l = SCAN_LIST_INIT;
	struct hash128 h;
	int found = 0, ret;

	if (clean)
		return 0;
	if (!written_upstream(e, si, in->path) &&
	    as_before(s, si, in, prev, files))
		return 0;
	ret = scan_path(e->sc, ".", in->path, in->is_glob, &l, &found, &h, err);
	for (size_t k = 0; !ret && k < l.nr; k++) {
		const struct scan_entry *se = &l.v[k];
		struct store_file *f;

		if (written_upstream(e, si, se->path))
			continue;
		f = add_file(files);
		f->path = xstrdup(se->path);
		f->kind = se->type == 'l' ? STORE_LINK : STORE_BLOB;
		f->exec = se->type == 'x';
		f->size = se->size;
		hash_to_hex(&se->hash, f->hash);
	}
	scan_list_release(&l);
	return ret;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct store_file *)a)->path,
		      ((const struct store_file *)b)->path);
}

/* A file path, not a folder or a glob: HEAD's tree is asked about it
 * before any look at it. */
static int plain_file(const struct pf_path *in)
{
	return in->path && !in->is_glob && !in->is_dir;
}

/* Calls fn for each input (the datums folder last) of each selected
 * stage, in one order. */
static int each_input(struct sched *s,
		      int (*fn)(struct sched *s, size_t si,
				const struct pf_path *in, void *data),
		      void *data)
{
	const struct pipefile *pf = s->e->pf;

	for (size_t i = 0; i < s->e->g->nr; i++) {
		const struct pf_stage *ps = &pf->stages[i];

		if (s->state[i] == JOB_OFF)
			continue;
		for (size_t k = 0; k < ps->inputs.nr; k++)
			if (fn(s, i, &ps->inputs.v[k], data))
				return -1;
		if (ps->rare->datums.path && fn(s, i, &ps->rare->datums, data))
			return -1;
	}
	return 0;
}

/* The plain file inputs asked about so far, ASK paths at a time: one
 * exchange with the child up to 65,536 inputs (a list of every one would
 * take 0.8 MB at 100,000 stages, on top of the record's memory). */
#define ASK 65536

struct plain_ask {
	struct store_project *p;
	const char *v[ASK];
	size_t nr, done;
	unsigned char *untracked; /* per plain file input */
	size_t alloc;
	int failed;
};

static void ask_plain(struct plain_ask *a)
{
	ALLOC_GROW(a->untracked, a->done + a->nr, a->alloc);
	if (!a->failed && a->nr &&
	    store_project_untracked(a->p, (char *const *)a->v, a->nr,
				    a->untracked + a->done) <= 0)
		a->failed = 1;
	a->done += a->nr;
	a->nr = 0;
}

static int add_plain(struct sched *s, size_t si, const struct pf_path *in,
		     void *data)
{
	struct plain_ask *a = data;

	(void)s;
	(void)si;
	if (plain_file(in)) {
		if (a->nr == ASK)
			ask_plain(a);
		a->v[a->nr++] = in->path;
	}
	return 0;
}

struct source_walk {
	const struct store_manifest *prev;
	const unsigned char *untracked; /* per plain file, or NULL */
	size_t next;			/* the next plain file's */
	struct file_list *files, *known;
	struct error *err;
};

static int add_source(struct sched *s, size_t si, const struct pf_path *in,
		      void *data)
{
	struct source_walk *w = data;
	size_t first = w->known->nr, n = first;

	if (!w->untracked || !plain_file(in))
		return add_files(s, si, in, w->prev, 0, w->files, w->err);
	if (!w->untracked[w->next++])
		return 0; /* HEAD holds it as it is */
	if (add_files(s, si, in, w->prev, 0, w->known, w->err))
		return -1;
	/* a folder named without its '/' gives its files: to be checked */
	for (size_t i = first; i < w->known->nr; i++)
		if (!strcmp(w->known->v[i].path, in->path))
			w->known->v[n++] = w->known->v[i];
		else
			*add_file(w->files) = w->known->v[i];
	w->known->nr = n;
	return 0;
}

/* The files the selected stages read that no stage writes, into files
 * (to be checked against git) and known (untracked already). Hashes come
 * from the stat cache, which this run filled. A plain file input that
 * HEAD holds as it is would be dropped once checked: p (NULL: not) is
 * asked about all of them first, so that they cost a lookup in HEAD's
 * tree, not a scan each (a one-change run at 100,000 stages spent 0.13 s
 * scanning inputs git holds, then 0.27 s in a second status pass and the
 * lookups), and the others are not asked about twice. */
static int source_files(struct sched *s, const struct store_manifest *prev,
			struct store_project *p, struct file_list *files,
			struct file_list *known, struct error *err)
{
	struct plain_ask *a = NULL;
	struct source_walk w = {prev, NULL, 0, files, known, err};
	int ret;

	if (p) {
		a = xcalloc(1, sizeof(*a));
		a->p = p;
		each_input(s, add_plain, a);
		ask_plain(a);
		if (!a->failed)
			w.untracked = a->untracked;
	}
	ret = each_input(s, add_source, &w);
	if (a)
		free(a->untracked);
	free(a);
	return ret;
}

/* Sort l by path and drop repeated paths. */
static void sort_unique(struct file_list *l)
{
	size_t n = 0;

	if (!l->nr)
		return;
	qsort(l->v, l->nr, sizeof(*l->v), cmp_file);
	for (size_t i = 0; i < l->nr; i++)
		if (!n || strcmp(l->v[n - 1].path, l->v[i].path))
			l->v[n++] = l->v[i];
		else
			free(l->v[i].path);
	l->nr = n;
}

/* Of files, keep those HEAD does not hold as they are (p asked), then
 * add known: sorted, unique. 1, or 0 when p cannot tell. */
static int keep_untracked(struct store_project *p, struct file_list *files,
			  struct file_list *known)
{
	unsigned char *untracked = xcalloc(files->nr + 1, 1);
	char **paths = xcalloc(files->nr + 1, sizeof(*paths));
	size_t n = 0;
	int ret = 0;

	for (size_t i = 0; i < files->nr; i++)
		paths[i] = files->v[i].path;
	if (files->nr &&
	    store_project_untracked(p, paths, files->nr, untracked) <= 0)
		goto out;
	for (size_t i = 0; i < files->nr; i++)
		if (untracked[i])
			files->v[n++] = files->v[i];
		else
			free(files->v[i].path);
	files->nr = n;
	for (size_t i = 0; i < known->nr; i++)
		*add_file(files) = known->v[i];
	known->nr = 0;
	sort_unique(files);
	ret = 1;
out:
	free(untracked);
	free(paths);
	return ret;
}

/* The run's inputs the project's git does not hold as they are, into the
 * run record (store.h, "untracked inputs"). Outside a git repository there
 * is no commit to reproduce from, and nothing is recorded. A failure costs
 * the record its inputs, never the run. PIPE_TEST_FULL_INPUTS lists every
 * input before any is checked against git, as pipe did before: the tests
 * compare the two records. */
static void record_inputs(struct sched *s, struct store *st,
			  struct store_run *run)
{
	struct file_list files = {0}, known = {0};
	struct error err = ERROR_INIT;
	struct store_manifest prev;
	struct store_project *p = engine_project(s->e);
	const char *full = getenv("PIPE_TEST_FULL_INPUTS");
	int has_prev = store_prev_run_inputs(st, &prev);

	if (source_files(s, has_prev ? &prev : NULL, full && *full ? NULL : p,
			 &files, &known, &err) ||
	    (!files.nr && !known.nr))
		goto out;
	sort_unique(&files);
	log_trace_phase("inputs listed");
	if (!keep_untracked(p, &files, &known))
		goto out;
	log_trace_phase("inputs checked against git");
	store_run_set_inputs(st, s->e->workspace, files.v, files.nr,
			     has_prev ? &prev : NULL, run, &err);
out:
	if (err.exit_code)
		log_warn("the run record lacks its untracked inputs: %s",
			 err.msg.buf);
	error_release(&err);
	files_release(&files);
	files_release(&known);
	store_manifest_release(&prev);
}

/* The selected stages' commits, in run order, read in one pass; the
 * record borrows the model's names. */
static int run_stages(struct sched *s, struct store *st, struct store_run *run,
		      struct error *err)
{
	size_t nr = s->e->g->nr, n = 0;
	const char **names = xcalloc(nr + 1, sizeof(*names));
	unsigned char *ours = xcalloc(nr + 1, 1);
	int ret;

	for (size_t k = 0; k < nr; k++) {
		size_t i = s->e->g->order[k];

		if (s->state[i] == JOB_OFF)
			continue;
		/* done: its head is the commit record_commit wrote */
		ours[n] = s->state[i] == JOB_DONE;
		names[n++] = sched_stage_name(s, i);
	}
	run->heads_ours = ours;
	ret = store_run_add_heads(st, run, names, n, err);
	run->heads_ours = NULL;
	free(ours);
	free(names);
	return ret;
}

/* One id for the whole pipeline state: every selected stage's commit. */
int record_run(struct sched *s, int ret, struct error *err)
{
	struct store_run run;
	struct store *st;
	char id[STORE_ID_SIZE];
	const char *head;
	int r;

	if (!s->store_used || engine_store(s->e, &st, err))
		return s->store_used ? -1 : 0;
	store_run_init(&run);
	run.state = xstrdup(ret == EXIT_OK	 ? "success"
			    : ret >= EXIT_SIGNAL ? "killed"
						 : "failed");
	head = engine_git_head(s->e, &run.git_dirty);
	run.git_head = *head ? xstrdup(head) : NULL;
	run.started = s->start_ms / 1000;
	if (*head) {
		record_inputs(s, st, &run);
		log_trace_phase("untracked inputs recorded");
	}
	/* the records are saved (sched_save), and the inputs' hashes were
	 * their last reader: the stage heads and the record's trees reuse
	 * their memory (34 MB at 100,000 stages) instead of adding to the
	 * run's peak */
	state_free(s->e->state);
	s->e->state = NULL;
	r = run_stages(s, st, &run, err);
	log_trace_phase("run record's stages read");
	run.duration_ms = sched_now_ms() - s->start_ms;
	if (r >= 0)
		r = store_write_run(st, &run, id, err);
	if (r >= 0)
		log_verbose("run %.12s", id);
	store_run_release(&run);
	return r < 0 ? -1 : 0;
}
