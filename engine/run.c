/* The scheduler: stages become ready when everything upstream is done, are
 * fingerprinted then (with their upstream's real outputs), skipped when
 * fresh, and otherwise started on their executor while slots are free
 * (-j). A stage's record is written only after it succeeded and its
 * outputs were hashed, so an interrupted run never leaves a stage that
 * looks fresh but is not. */
#include "engine/datums.h"
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/guard.h"
#include "engine/jobs.h"
#include "engine/retention.h"
#include "engine/run.h"
#include "engine/scan.h"
#include "engine/state.h"
#include "executors/executor.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/glob.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum job_state {
	JOB_OFF,     /* not selected */
	JOB_WAITING, /* upstream not done yet */
	JOB_RUNNING,
	JOB_FRESH,
	JOB_DONE,
	JOB_FAILED,
	JOB_SKIPPED, /* an upstream stage failed */
};

struct job {
	size_t stage;
	enum job_state state;
	struct stage_record *cur; /* fingerprint while running */
	const struct executor *ops;
	struct exec_ctx *ctx;
	struct strvec ro, rw; /* container mounts */
	long long started_ms;
	int moved_aside; /* outputs are in .pipe/trash */
	size_t running;	 /* units running now */
	int failed;	 /* a unit failed for good */
	struct strbuf fail_msg;
	size_t *pending; /* datums to run (indices) */
	size_t pending_nr, next_datum;
	unsigned char *ran; /* per datum: ran now, result in its PIPE_OUT */
	size_t datums_done, datums_skipped, datums_failed;
	char id[JOB_ID_LEN + 1];    /* the job's id (pipe jobs) */
	char commit[STORE_ID_SIZE]; /* its output commit */
};

struct sched {
	struct engine *e;
	const struct run_options *o;
	struct run_summary *sum;
	struct job *jobs;
	unsigned char *forced;
	size_t total, finished;
	int running, slots;
	int stop;	   /* a stage failed without -k */
	int dirty;	   /* records not saved yet */
	int kept;	   /* datum results not flushed to the store yet */
	long long kept_ms; /* flush them at most this often (grows) */
	int store_used;	   /* something was committed: write a run record */
	int tty;	   /* stderr is a terminal: draw a progress line */
	int batching;	   /* the store is in batch mode */
	long long saved_ms;
	long long start_ms;
};

/* The signal that stopped the run (0: none) and how many arrived: a
 * second one KILLs at once. */
static volatile sig_atomic_t interrupted, signals_seen;

static void on_signal(int sig)
{
	interrupted = sig;
	signals_seen++;
}

/* Every terminating signal pipe can catch ends the run as Ctrl-C does:
 * an ssh drop (HUP) must not leave a stage writing in its own process
 * group after pipe is gone and the lock is free. */
const int engine_stop_signals[ENGINE_STOP_SIGNALS] = {
	SIGHUP,	 SIGINT,  SIGQUIT, SIGTERM,   SIGUSR1, SIGUSR2,
	SIGALRM, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGPWR,
};

struct saved_signals {
	struct sigaction old[ENGINE_STOP_SIGNALS];
};

/* Set a flag and interrupt the executors' waits (no SA_RESTART), so the
 * loop can stop every unit and record nothing. */
static void catch_signals(struct saved_signals *saved)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ENGINE_STOP_SIGNALS; i++)
		sigaction(engine_stop_signals[i], &sa, &saved->old[i]);
}

static void restore_signals(const struct saved_signals *saved)
{
	for (size_t i = 0; i < ENGINE_STOP_SIGNALS; i++)
		sigaction(engine_stop_signals[i], &saved->old[i], NULL);
}

/* msg without a leading "stage 'name': ", which the caller says again. */
static const char *without_stage(const char *msg, const char *name)
{
	size_t n = strlen(name);

	if (!strncmp(msg, "stage '", 7) && !strncmp(msg + 7, name, n) &&
	    !strncmp(msg + 7 + n, "': ", 3))
		return msg + 7 + n + 3;
	return msg;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *stage_name(const struct sched *s, size_t i)
{
	return s->e->pf->stages[i].name;
}

/* --- the progress line (terminals only) --- */

static int progress_shown;

static void progress_clear(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		progress_shown = 0;
	}
}

static void progress_clear_arg(void *arg)
{
	(void)arg;
	progress_clear();
}

/* "[7/12] running: train, eval  0:42", redrawn in place. */
static void progress_draw(struct sched *s)
{
	struct strbuf sb = STRBUF_INIT;
	long long secs = (now_ms() - s->start_ms) / 1000;
	size_t shown = 0;

	if (!s->tty)
		return;
	strbuf_addf(&sb, "\r\033[K[%zu/%zu] running: ", s->finished, s->total);
	for (size_t k = 0; k < s->e->g->nr; k++) {
		const struct job *j = &s->jobs[s->e->g->order[k]];

		if (j->state != JOB_RUNNING)
			continue;
		if (shown++ == 3) {
			strbuf_addstr(&sb, ", ...");
			break;
		}
		strbuf_addf(&sb, "%s%s", shown > 1 ? ", " : "",
			    stage_name(s, j->stage));
		if (j->cur && j->cur->datum_nr)
			strbuf_addf(&sb, " (%zu/%zu datums)",
				    j->datums_done + j->datums_skipped,
				    j->cur->datum_nr);
	}
	strbuf_addf(&sb, "  %lld:%02lld", secs / 60, secs % 60);
	fputs(sb.buf, stderr);
	fflush(stderr);
	progress_shown = 1;
	strbuf_release(&sb);
}

/* --- moving stale outputs aside --- */

static char *trash_path(const char *stage, size_t i)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, PIPE_DIR "/trash/%s/%zu", stage, i);
	return strbuf_detach(&sb, NULL);
}

/* A declared output without its trailing '/': a stage may have written a
 * file where it declared a folder, or the other way round. */
static char *plain_path(const char *declared)
{
	return xstrndup(declared, path_trimmed_len(declared));
}

static int move_aside(struct sched *s, struct job *j, struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	struct strbuf dir = STRBUF_INIT;
	int ret = 0;

	strbuf_addf(&dir, PIPE_DIR "/trash/%s", st->name);
	fs_remove_tree(dir.buf);
	for (size_t i = 0; i < st->outputs.nr && !ret; i++) {
		char *out = plain_path(st->outputs.v[i].path);
		char *to = trash_path(st->name, i);
		struct stat sb;

		if (fs_mkdir_parent(out, 0755) && errno != EEXIST)
			ret = error_set(err, EXIT_FAILED,
					"cannot create the folder of '%s': %s",
					out, strerror(errno));
		else if (lstat(out, &sb) == 0 &&
			 (fs_mkdir_p(dir.buf, 0755) || rename(out, to)))
			ret = error_set(err, EXIT_FAILED,
					"cannot move '%s' aside: %s", out,
					strerror(errno));
		free(to);
		free(out);
	}
	j->moved_aside = 1;
	strbuf_release(&dir);
	return ret;
}

/* Put moved-aside outputs back (after a failure) or drop them. */
static void put_back(struct sched *s, struct job *j, int restore)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	struct strbuf dir = STRBUF_INIT;

	if (!j->moved_aside)
		return;
	for (size_t i = 0; restore && i < st->outputs.nr; i++) {
		char *out = plain_path(st->outputs.v[i].path);
		char *from = trash_path(st->name, i);

		if (access(from, F_OK) == 0) {
			/* what the failed command wrote there is its own */
			fs_remove_tree(out);
			if (rename(from, out))
				log_warn("cannot put '%s' back: %s", out,
					 strerror(errno));
		}
		free(from);
		free(out);
	}
	strbuf_addf(&dir, PIPE_DIR "/trash/%s", st->name);
	fs_remove_tree(dir.buf);
	strbuf_release(&dir);
	j->moved_aside = 0;
}

/* A run killed with SIGKILL leaves outputs in .pipe/trash: put back those
 * whose place is still empty (the stage is stale anyway: its record was
 * never updated), drop the rest. */
static void recover_trash(struct sched *s)
{
	for (size_t i = 0; i < s->e->pf->nr; i++) {
		const struct pf_stage *st = &s->e->pf->stages[i];
		struct strbuf dir = STRBUF_INIT;

		strbuf_addf(&dir, PIPE_DIR "/trash/%s", st->name);
		if (access(dir.buf, F_OK) == 0) {
			for (size_t k = 0; k < st->outputs.nr; k++) {
				char *from = trash_path(st->name, k);
				char *out = plain_path(st->outputs.v[k].path);
				struct stat sb;

				if (access(from, F_OK) == 0 &&
				    lstat(out, &sb) && rename(from, out))
					log_warn("cannot restore '%s'", out);
				free(from);
				free(out);
			}
			fs_remove_tree(dir.buf);
		}
		strbuf_release(&dir);
	}
}

/* --- starting --- */

static char *log_file_path(const char *workspace, const char *job)
{
	return xstrfmt("%s/" PIPE_DIR "/logs/%s.log", workspace, job);
}

static void print_reasons(const char *verb, const char *name,
			  const struct reasons *rs, const char *tail)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s %s", verb, name);
	for (size_t i = 0; i < rs->nr && i < 3; i++) {
		strbuf_addstr(&sb, i ? ", " : ": ");
		reason_format(&rs->v[i], &sb);
	}
	if (rs->nr > 3)
		strbuf_addf(&sb, " (and %zu more)", rs->nr - 3);
	if (tail)
		strbuf_addf(&sb, " %s", tail);
	log_info("%s", sb.buf);
	strbuf_release(&sb);
}

/* What a container may see: inputs (a glob as such: the executor mounts
 * what it matches, never a folder holding a file it does not match) and
 * params files read-only, outputs read-write. A datum unit adds its own
 * datum (start_unit), not the others. */
static void mounts(const struct pf_stage *st, struct job *j)
{
	strvec_clear(&j->ro);
	strvec_clear(&j->rw);
	for (size_t i = 0; i < st->inputs.nr; i++)
		strvec_push(&j->ro, st->inputs.v[i].path);
	for (size_t i = 0; i < st->params_nr; i++)
		if (st->params[i].file)
			strvec_push(&j->ro, st->params[i].file);
	for (size_t i = 0; i < st->outputs.nr; i++)
		strvec_push(&j->rw, st->outputs.v[i].path);
}

/* One process or container: a whole stage, or one datum of it. */
struct unit {
	struct job *job;
	long datum; /* index in job->cur->datum_list, or -1 */
	int tries;
	struct strvec env;
	struct strvec ro; /* a datum's: the stage's and the datum */
	struct strvec rw; /* a datum's PIPE_OUT */
	char *log_path;
	char *out_dir; /* PIPE_OUT, workspace-relative (datums) */
	long long started_ms;
};

static void unit_free(struct unit *u)
{
	strvec_clear(&u->env);
	strvec_clear(&u->ro);
	strvec_clear(&u->rw);
	free(u->log_path);
	free(u->out_dir);
	free(u);
}

static void finish_stage(struct sched *s, struct job *j);

/* Datum units get a log and a label named after their match. */
static char *datum_log_path(const char *workspace, const char *job,
			    const char *datum)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/" PIPE_DIR "/logs/%s/", workspace, job);
	jobs_datum_log_name(&sb, datum);
	return strbuf_detach(&sb, NULL);
}

static int start_unit(struct sched *s, struct job *j, struct unit *un,
		      struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	struct strbuf label = STRBUF_INIT;
	struct exec_unit u;
	int ret;

	strvec_clear(&un->env);
	for (size_t i = 0; i < st->env.nr; i++)
		strvec_pushf(&un->env, "%s=%s", st->env.v[i].key,
			     st->env.v[i].value);
	memset(&u, 0, sizeof(u));
	strbuf_addstr(&label, st->name);
	if (un->datum >= 0) {
		const char *path = j->cur->datum_list[un->datum].path;

		free(un->out_dir);
		un->out_dir = datums_out_dir(st->name, (size_t)un->datum);
		fs_remove_tree(un->out_dir);
		if (fs_mkdir_p(un->out_dir, 0755))
			return error_set(err, EXIT_ENV,
					 "cannot create '%s': %s", un->out_dir,
					 strerror(errno));
		strvec_pushf(&un->env, "PIPE_DATUM=%s", path);
		strvec_pushf(&un->env, "PIPE_OUT=%s", un->out_dir);
		strbuf_addf(&label, " %s", path);
		if (!un->log_path)
			un->log_path =
				datum_log_path(s->e->workspace, j->id, path);
	} else if (!un->log_path) {
		un->log_path = log_file_path(s->e->workspace, j->id);
	}
	u.stage = st->name;
	u.label = label.buf;
	u.workspace = s->e->workspace;
	u.shell = st->cmd_kind == PF_CMD_SHELL;
	u.cmd = st->cmd;
	u.argv = st->argv.v;
	u.env = un->env.v;
	u.log_path = un->log_path;
	u.log_max = s->e->pf->keep.log_bytes;
	u.timeout_ms = st->timeout_ms;
	u.image = j->cur->image;
	u.network = st->network ? st->network : s->e->pf->docker_network;
	u.ro_paths = j->ro.v;
	u.rw_paths = j->rw.v;
	if (un->datum >= 0) {
		/* a datum reads its own match, writes only its PIPE_OUT */
		strvec_clear(&un->ro);
		for (size_t i = 0; i < j->ro.nr; i++)
			strvec_push(&un->ro, j->ro.v[i]);
		strvec_push(&un->ro, j->cur->datum_list[un->datum].path);
		u.ro_paths = un->ro.v;
		strvec_clear(&un->rw);
		strvec_pushf(&un->rw, "%s/", un->out_dir);
		u.rw_paths = un->rw.v;
	}
	u.cpu_milli = st->resources.cpu_milli;
	u.memory_bytes = st->resources.memory_bytes;
	u.gpu = st->resources.gpu;
	u.data = un;
	un->started_ms = now_ms();
	ret = j->ops->start(j->ctx, &u, err);
	strbuf_release(&label);
	if (ret)
		return -1;
	j->running++;
	s->running++;
	return 0;
}

/* Start pending datums while the stage's parallelism and -j allow. */
static int fill(struct sched *s, struct job *j, struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];

	/* a failed datum does not stop the others: the rerun then does only
	 * the failed ones */
	while (j->next_datum < j->pending_nr &&
	       j->running < (size_t)st->parallelism && s->running < s->slots &&
	       !interrupted) {
		struct unit *un = xcalloc(1, sizeof(*un));

		un->job = j;
		un->datum = (long)j->pending[j->next_datum++];
		strvec_init(&un->env);
		strvec_init(&un->ro);
		strvec_init(&un->rw);
		if (start_unit(s, j, un, err)) {
			unit_free(un);
			return -1;
		}
	}
	return 0;
}

static int run_store(struct sched *s, struct store **st, struct error *err);

/* A stale datums stage: datums whose key has a result in the store are
 * done already (a reverted datum is restored, not rerun); the rest run. */
static int start_datums(struct sched *s, struct job *j, struct error *err)
{
	const char *name = stage_name(s, j->stage);
	struct state_datum *v = j->cur->datum_list;
	const struct stage_record *old = state_find(s->e->state, name);
	struct store *st;
	size_t k = 0;

	if (run_store(s, &st, err))
		return -1;
	if (!datums_begin(st, name))
		old = NULL;
	/* stored datums first out of the way: keep the rest contiguous */
	j->pending = xcalloc(j->cur->datum_nr + 1, sizeof(*j->pending));
	j->ran = xcalloc(j->cur->datum_nr + 1, 1);
	for (size_t i = 0; i < j->cur->datum_nr; i++) {
		int rc = s->forced[j->stage]
				 ? 0
				 : datums_stored(st, old, name, &v[i], err);

		if (rc < 0)
			return -1;
		if (rc)
			j->datums_skipped++;
		else
			j->pending[k++] = i;
	}
	j->pending_nr = k;
	if (fill(s, j, err))
		return -1;
	if (!j->running && !j->pending_nr)
		finish_stage(s, j); /* every datum came from the cache */
	return 0;
}

static int start_job(struct sched *s, struct job *j, struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	struct unit *un;

	if (engine_executor(s->e, j->stage, &j->ops, &j->ctx, err))
		return -1;
	mounts(st, j);
	if (fs_mkdir_p(PIPE_DIR "/logs", 0755))
		return error_set(err, EXIT_ENV, "cannot create '%s': %s",
				 PIPE_DIR "/logs", strerror(errno));
	j->started_ms = now_ms();
	j->state = JOB_RUNNING;
	jobs_new_id(st->name, j->id);
	if (st->datums.path)
		return start_datums(s, j, err);
	if (move_aside(s, j, err))
		return -1;
	un = xcalloc(1, sizeof(*un));
	un->job = j;
	un->datum = -1;
	strvec_init(&un->env);
	strvec_init(&un->ro);
	strvec_init(&un->rw);
	if (start_unit(s, j, un, err)) {
		unit_free(un);
		return -1;
	}
	return 0;
}

/* --- finishing --- */

static void fail_job(struct sched *s, struct job *j)
{
	j->state = JOB_FAILED;
	s->sum->failed++;
	if (!s->o->keep_going)
		s->stop = 1;
}

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
	p->duration_ms = now_ms() - j->started_ms;
	p->datums_processed = j->datums_done;
	p->datums_skipped = j->datums_skipped;
	p->datums_total = r->datum_nr;
	p->bytes_in = r->bytes_in;
	return 0;
}

/* Commit the stage's outputs with their provenance (state "success", or
 * "cached" with the commit they came from). */
static int commit_outputs(struct sched *s, struct job *j, const char *state,
			  const char *cached_from, struct error *err)
{
	const struct pf_stage *ps = &s->e->pf->stages[j->stage];
	struct strvec outs = STRVEC_INIT;
	struct store_prov p;
	struct store *st;
	int ret = -1;

	if (run_store(s, &st, err))
		return -1;
	store_prov_init(&p);
	p.stage = xstrdup(ps->name);
	p.state = xstrdup(state);
	p.cached_from = cached_from ? xstrdup(cached_from) : NULL;
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
static int reuse_commit(struct sched *s, struct job *j, struct store *st,
			const char *from, struct error *err)
{
	struct store_prov p;
	int ret = -1;

	store_prov_init(&p);
	p.stage = xstrdup(stage_name(s, j->stage));
	p.state = xstrdup("cached");
	p.cached_from = xstrdup(from);
	if (!fill_prov(s, j, st, &p, err))
		ret = store_commit_reuse(st, p.stage, from, &p, j->commit, err);
	s->store_used = 1;
	store_prov_release(&p);
	return ret;
}

static void record_job(struct sched *s, struct job *j, const char *state)
{
	const struct pf_stage *ps = &s->e->pf->stages[j->stage];
	struct job_rec r;
	struct error err = ERROR_INIT;
	char *log = ps->datums.path ? xstrfmt(PIPE_DIR "/logs/%s/", j->id)
				    : xstrfmt(PIPE_DIR "/logs/%s.log", j->id);

	memset(&r, 0, sizeof(r));
	memcpy(r.id, j->id, sizeof(r.id));
	r.stage = (char *)ps->name;
	r.commit = j->commit;
	r.state = (char *)state;
	r.log = log;
	r.started_ms = j->started_ms;
	r.duration_ms = now_ms() - j->started_ms;
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

/* Records are saved at most every STATE_SAVE_MS and at the end: a record
 * lost to a kill only makes its stage look stale, never fresh, and saving
 * (with fsync) after each of 2,000 trivial stages would cost more than
 * running them. */
#define STATE_SAVE_MS 1000
/* Datum results alone are flushed 1, 2, 4, then every 8 s: each flush
 * writes a pack, and a long stage of small datums would otherwise leave
 * dozens of packs to merge. A kill loses at most that much datum work. */
#define DATUMS_SAVE_MAX_MS 8000

static int save_state(struct sched *s, int force, struct error *err)
{
	long long now = now_ms();
	int dirty = s->dirty;

	if ((!dirty && !s->kept) ||
	    (!force &&
	     now - s->saved_ms < (dirty ? STATE_SAVE_MS : s->kept_ms)))
		return 0;
	if (!dirty && !force && s->kept_ms < DATUMS_SAVE_MAX_MS)
		s->kept_ms *= 2;
	s->dirty = s->kept = 0;
	s->saved_ms = now;
	/* the store's batched commits and datum results first: a record
	 * without its commit is harmless, the other way round would lose
	 * history, or name datum results that are not there */
	if (s->e->store && store_batch_flush(s->e->store, err))
		return -1;
	return dirty ? state_save(s->e->state, err) : 0;
}

/* The store, in batch mode for this run: stage commits are written as
 * one pack and their refs moved together when the records are saved. */
static int run_store(struct sched *s, struct store **st, struct error *err)
{
	if (engine_store(s->e, st, err))
		return -1;
	if (!s->batching) {
		store_batch_begin(*st);
		s->batching = 1;
	}
	return 0;
}

/* A declared output that is not there: missing, or a file where a folder
 * was declared (access("out/") fails on a file). */
static int output_kind_error(const struct pf_stage *st, const char *out,
			     struct error *err)
{
	char *plain = plain_path(out);
	struct stat sb;
	int is_file = !lstat(plain, &sb) && !S_ISDIR(sb.st_mode);

	if (is_file)
		error_set(err, EXIT_FAILED,
			  "stage '%s' wrote a file at '%s', but declares a "
			  "folder '%s'",
			  st->name, plain, out);
	else
		error_set(err, EXIT_FAILED, "stage '%s' did not write '%s'",
			  st->name, out);
	free(plain);
	return -1;
}

/* Every declared output must exist; then hash them and record the run. */
static int record_success(struct sched *s, struct job *j, long long dur,
			  struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];

	for (size_t i = 0; i < st->outputs.nr; i++)
		if (access(st->outputs.v[i].path, F_OK))
			return output_kind_error(st, st->outputs.v[i].path,
						 err);
	if (plan_hash_outputs(s->e, j->stage, j->cur, err))
		return -1;
	log_trace_phase("outputs hashed");
	j->cur->started_ms = j->started_ms;
	j->cur->duration_ms = dur;
	if (commit_outputs(s, j, "success", NULL, err))
		return -1;
	log_trace_phase("outputs committed");
	record_job(s, j, "success");
	state_put(s->e->state, j->cur);
	j->cur = NULL;
	s->dirty = 1;
	return save_state(s, 0, err);
}

static void describe_end(const struct exec_done *d, struct strbuf *sb)
{
	if (d->message)
		strbuf_addstr(sb, d->message);
	else if (d->timed_out)
		strbuf_addstr(sb, "timed out");
	else if (d->cancelled)
		strbuf_addstr(sb, "interrupted");
	else if (d->term_signal)
		strbuf_addf(sb, "killed by signal %d (%s)", d->term_signal,
			    strsignal(d->term_signal));
	else
		strbuf_addf(sb, "exit status %d", d->exit_code);
	if (d->oom_killed && !strstr(sb->buf, "memory"))
		strbuf_addstr(sb, " (out of memory)");
}

static void finish_stage(struct sched *s, struct job *j)
{
	const char *name = stage_name(s, j->stage);
	long long dur = now_ms() - j->started_ms;
	struct error err = ERROR_INIT;
	int ok = !j->failed;

	s->finished++;
	if (ok && j->cur->datum_list) {
		log_trace_phase("datums ran");
		if (datums_merge(s->e, j->stage, s->e->store, j->cur, j->ran,
				 &err))
			ok = 0;
		log_trace_phase("datums merged");
	}
	if (j->ran)
		datums_end(name);
	if (ok && record_success(s, j, dur, &err))
		ok = 0;
	if (ok) {
		put_back(s, j, 0);
		j->state = JOB_DONE;
		s->sum->ran++;
		if (s->e->pf->stages[j->stage].datums.path)
			log_info("ok   %s (%zu datums: %zu processed, %zu "
				 "skipped) (%.2fs)",
				 name, j->datums_done + j->datums_skipped,
				 j->datums_done, j->datums_skipped,
				 (double)dur / 1000);
		else
			log_info("ok   %s (%.2fs)", name, (double)dur / 1000);
	} else {
		put_back(s, j, 1);
		fail_job(s, j);
		record_job(s, j, interrupted ? "killed" : "failed");
		if (err.exit_code)
			log_error("stage '%s' failed: %s", name,
				  without_stage(err.msg.buf, name));
		else if (j->fail_msg.len && j->datums_failed > 1)
			log_error("%s (and %zu more datums failed)",
				  j->fail_msg.buf, j->datums_failed - 1);
		else if (j->fail_msg.len)
			log_error("%s", j->fail_msg.buf);
	}
	error_release(&err);
	stage_record_free(j->cur);
	j->cur = NULL;
}

/* Store a datum's PIPE_OUT as its result (on disk with the next flush,
 * at most DATUMS_SAVE_MAX_MS later); the folder becomes part of the
 * output folder when every datum is done. */
static int keep_datum(struct sched *s, struct unit *un, struct error *err)
{
	struct job *j = un->job;

	if (datums_keep(s->e->store, stage_name(s, j->stage), j->cur,
			(size_t)un->datum, err))
		return -1;
	j->ran[un->datum] = 1;
	s->kept = 1;
	return save_state(s, 0, err);
}

static void unit_done(struct sched *s, struct exec_done *d)
{
	struct unit *un = d->data;
	struct job *j = un->job;
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	struct error err = ERROR_INIT;
	int ok = d->exit_code == 0 && !d->term_signal && !d->cancelled &&
		 !d->timed_out;

	s->running--;
	j->running--;
	scan_forget_folders();
	if (ok && un->datum >= 0 && keep_datum(s, un, &err))
		ok = 0;
	if (ok) {
		if (un->datum >= 0)
			j->datums_done++;
	} else if (!d->cancelled && !interrupted && un->tries < st->retries) {
		struct strbuf why = STRBUF_INIT;

		describe_end(d, &why);
		un->tries++;
		log_info("retry %s (%d of %d): %s",
			 un->datum >= 0 ? j->cur->datum_list[un->datum].path
					: st->name,
			 un->tries, st->retries, why.buf);
		strbuf_release(&why);
		if (un->datum < 0) {
			for (size_t i = 0; i < st->outputs.nr; i++)
				fs_remove_tree(st->outputs.v[i].path);
		}
		unlink(un->log_path); /* the log is the last attempt's */
		if (!start_unit(s, j, un, &err)) {
			free(d->message);
			error_release(&err);
			return;
		}
		j->failed = 1;
		strbuf_addf(&j->fail_msg, "stage '%s': %s", st->name,
			    without_stage(err.msg.buf, st->name));
	} else {
		struct strbuf why = STRBUF_INIT;

		if (err.exit_code)
			strbuf_addstr(&why,
				      without_stage(err.msg.buf, st->name));
		else
			describe_end(d, &why);
		if (!j->failed && !d->cancelled) {
			if (un->datum >= 0)
				strbuf_addf(&j->fail_msg,
					    "stage '%s' failed: datum '%s': %s",
					    st->name,
					    j->cur->datum_list[un->datum].path,
					    why.buf);
			else
				strbuf_addf(&j->fail_msg,
					    "stage '%s' failed: %s", st->name,
					    why.buf);
			/* a unit that printed nothing has no log */
			if (access(un->log_path, F_OK))
				strbuf_addstr(&j->fail_msg, " (no output)");
			else
				strbuf_addf(&j->fail_msg, " (log: %s)",
					    un->log_path);
		}
		j->failed = 1;
		j->datums_failed += un->datum >= 0;
		strbuf_release(&why);
	}
	free(d->message);
	error_release(&err);
	if (un->out_dir && !ok)
		fs_remove_tree(un->out_dir);
	unit_free(un);
	if (!j->running && (j->next_datum >= j->pending_nr || interrupted))
		finish_stage(s, j);
}

/* --- the loop --- */

/* 1: every upstream stage is done or fresh; 0: not yet; -1: one failed. */
static int deps_ready(const struct sched *s, size_t si)
{
	const struct graph_node *n = &s->e->g->nodes[si];
	int ready = 1;

	for (size_t d = 0; d < n->deps_nr; d++) {
		enum job_state st = s->jobs[n->deps[d]].state;

		if (st == JOB_FAILED || st == JOB_SKIPPED)
			return -1;
		if (st != JOB_DONE && st != JOB_FRESH && st != JOB_OFF)
			ready = 0;
	}
	return ready;
}

static int try_cache(struct sched *s, struct job *j, const struct reasons *rs,
		     struct error *err);

/* Decide a ready stage: fresh (skip) or stale (start). Returns 1 when it
 * was started or settled, 0 when no slot is free, -1 on error. */
static int consider(struct sched *s, struct job *j, struct error *err)
{
	struct strbuf why = STRBUF_INIT;
	struct reasons rs = {0};
	int stale;

	if (!j->cur && plan_fingerprint_cmp(
			       s->e, j->stage,
			       state_find(s->e->state, stage_name(s, j->stage)),
			       &j->cur, err))
		return -1;
	log_trace_phase("fingerprinted");
	if (s->forced[j->stage])
		reasons_add(&rs, REASON_FORCED, NULL, NULL, NULL);
	stale = plan_compare(s->e, j->stage,
			     state_find(s->e->state, stage_name(s, j->stage)),
			     j->cur, &rs, err);
	if (stale < 0) {
		reasons_release(&rs);
		return -1;
	}
	if (!rs.nr) {
		j->state = JOB_FRESH;
		s->sum->fresh++;
		s->finished++;
		log_verbose("fresh %s", stage_name(s, j->stage));
		stage_record_free(j->cur);
		j->cur = NULL;
		reasons_release(&rs);
		return 1;
	}
	if (s->running >= s->slots) {
		reasons_release(&rs);
		return 0;
	}
	if (!j->cur->has_files) {
		/* fresh by key, stale by outputs or -f: the record to be
		 * saved needs the file lists */
		stage_record_free(j->cur);
		j->cur = NULL;
		if (plan_fingerprint(s->e, j->stage, &j->cur, 1, err)) {
			reasons_release(&rs);
			return -1;
		}
	}
	/* what pipe did not write goes to the store before anything below
	 * replaces it (a restore, the move aside, a datum merge) */
	strbuf_addf(&why,
		    "before 'pipe run' replaced the outputs of stage "
		    "'%s'",
		    stage_name(s, j->stage));
	stale = guard_outputs(s->e, j->stage, &rs, why.buf, err);
	strbuf_release(&why);
	if (stale) {
		reasons_release(&rs);
		return -1;
	}
	stale = try_cache(s, j, &rs, err);
	if (stale) {
		reasons_release(&rs);
		return stale;
	}
	print_reasons("run ", stage_name(s, j->stage), &rs, NULL);
	reasons_release(&rs);
	return start_job(s, j, err) ? -1 : 1;
}

/* Restore commit's outputs that the stage declares now, and only those
 * (the key holds the declared outputs, so they are the commit's too). */
static int restore_declared(struct sched *s, struct job *j, struct store *st,
			    const char *commit, struct error *err)
{
	const struct pf_stage *ps = &s->e->pf->stages[j->stage];
	struct strvec only = STRVEC_INIT;
	int ret;

	for (size_t i = 0; i < ps->outputs.nr; i++)
		strvec_push(&only, ps->outputs.v[i].path);
	ret = store_restore_outputs(st, commit, s->e->workspace, only.v, err);
	strvec_clear(&only);
	return ret;
}

/* Run-cache: a stale stage whose key some earlier commit has (any branch,
 * any run, another machine after a pull) gets that commit's outputs back
 * instead of running. Returns 1 restored, 0 not cached, -1 error. */
static int try_cache(struct sched *s, struct job *j, const struct reasons *rs,
		     struct error *err)
{
	struct strbuf why = STRBUF_INIT;
	const char *name = stage_name(s, j->stage);
	char key[HASH_HEX_LEN + 1], from[STORE_ID_SIZE];
	struct store *st;
	int found;

	if (s->o->no_cache || s->forced[j->stage] || !s->e->pf->nr)
		return 0;
	hash_to_hex(&j->cur->key, key);
	if (run_store(s, &st, err))
		return -1;
	found = store_find_key(st, name, key, from, err);
	if (found <= 0)
		return found;
	j->started_ms = now_ms();
	jobs_new_id(name, j->id);
	scan_forget_folders();
	if (restore_declared(s, j, st, from, err)) {
		/* e.g. its content was lost in a power cut: run it instead
		 * (its outputs are moved aside before it starts) */
		log_warn("cannot restore '%s' from the store: %s; running it",
			 name, err->msg.buf);
		error_release(err);
		return 0;
	}
	if (plan_hash_outputs(s->e, j->stage, j->cur, err) ||
	    reuse_commit(s, j, st, from, err))
		return -1;
	strbuf_addf(&why, "(restored from %.12s)", from);
	print_reasons("cache", name, rs, why.buf);
	strbuf_release(&why);
	record_job(s, j, "cached");
	j->cur->started_ms = j->started_ms;
	state_put(s->e->state, j->cur);
	j->cur = NULL;
	s->dirty = 1;
	j->state = JOB_DONE;
	s->sum->cached++;
	s->finished++;
	return save_state(s, 0, err) ? -1 : 1;
}

/* Walk the stages in run order and start what can start. */
static int launch(struct sched *s, struct error *err)
{
	int progress;

	do {
		progress = 0;
		for (size_t k = 0; k < s->e->g->nr; k++) {
			struct job *j = &s->jobs[s->e->g->order[k]];
			int r;

			if (j->state == JOB_RUNNING && j->cur &&
			    j->next_datum < j->pending_nr) {
				size_t before = j->next_datum;

				if (fill(s, j, err))
					return -1;
				progress |= j->next_datum != before;
				continue;
			}
			if (j->state != JOB_WAITING || s->stop || interrupted)
				continue;
			r = deps_ready(s, j->stage);
			if (r < 0) {
				j->state = JOB_SKIPPED;
				s->sum->skipped++;
				s->finished++;
				progress = 1;
				continue;
			}
			if (!r)
				continue;
			r = consider(s, j, err);
			if (r < 0)
				return -1;
			if (r == 0)
				return 0; /* no free slot */
			progress = 1;
		}
	} while (progress);
	return 0;
}

/* Wait on every executor with running units and handle what finished. */
static int reap(struct sched *s, struct error *err)
{
	struct exec_done done[16];
	int busy = 0;

	for (size_t i = 0; i < s->e->execs_nr; i++)
		if (s->e->execs[i].ops->running(s->e->execs[i].ctx))
			busy++;
	for (size_t i = 0; i < s->e->execs_nr; i++) {
		const struct open_executor *x = &s->e->execs[i];
		int n;

		if (!x->ops->running(x->ctx))
			continue;
		n = x->ops->wait(x->ctx, busy > 1 ? 20 : 500, done,
				 (int)ARRAY_SIZE(done), err);
		if (n < 0)
			return -1;
		for (int k = 0; k < n; k++)
			unit_done(s, &done[k]);
	}
	return 0;
}

static void cancel_everything(struct sched *s)
{
	for (size_t i = 0; i < s->e->execs_nr; i++)
		s->e->execs[i].ops->cancel_all(s->e->execs[i].ctx);
}

/* "interrupted (SIGHUP): stopping 2 running stages (4 datums)" */
static void say_stopping(struct sched *s)
{
	struct strbuf sb = STRBUF_INIT;
	size_t stages = 0, datums = 0;

	for (size_t i = 0; i < s->e->g->nr; i++) {
		const struct job *j = &s->jobs[i];

		if (!j->running)
			continue;
		stages++;
		if (s->e->pf->stages[j->stage].datums.path)
			datums += j->running;
	}
	strbuf_addf(&sb, "interrupted (SIG%s): stopping %zu running stage%s",
		    sigabbrev_np(interrupted), stages, stages == 1 ? "" : "s");
	if (datums)
		strbuf_addf(&sb, " (%zu datum%s)", datums,
			    datums == 1 ? "" : "s");
	log_error("%s", sb.buf);
	strbuf_release(&sb);
}

static int loop(struct sched *s, struct error *err)
{
	int cancelled = 0;

	for (;;) {
		if (!interrupted && launch(s, err))
			goto fail;
		if (interrupted && cancelled < signals_seen) {
			if (!cancelled)
				say_stopping(s);
			cancel_everything(s);
			cancelled = signals_seen;
		}
		if (!s->running)
			break;
		progress_draw(s);
		if (reap(s, err))
			goto fail;
	}
	return 0;
fail:
	/* an engine error: stop what runs, record nothing more */
	cancel_everything(s);
	while (s->running) {
		struct error ignored = ERROR_INIT;

		if (reap(s, &ignored))
			break;
		error_release(&ignored);
	}
	return -1;
}

/* After a failure: name what did not run, and why. After an error of
 * pipe's own (a params file, the daemon), which names its cause, no stage
 * failed: nothing to list. */
static void list_skipped(struct sched *s, int error)
{
	for (size_t k = 0; k < s->e->g->nr; k++) {
		struct job *j = &s->jobs[s->e->g->order[k]];

		if (j->state == JOB_WAITING && deps_ready(s, j->stage) < 0) {
			j->state = JOB_SKIPPED;
			s->sum->skipped++;
		}
		if (j->state == JOB_SKIPPED)
			log_error("skipped '%s': an upstream stage failed",
				  stage_name(s, j->stage));
		else if (j->state == JOB_WAITING && !interrupted && !error)
			log_error("not run '%s': stopped after a failure "
				  "(-k keeps going)",
				  stage_name(s, j->stage));
	}
}

static int setup(struct sched *s, struct error *err)
{
	struct engine *e = s->e;
	unsigned char *mark = xcalloc(e->g->nr + 1, 1);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	s->jobs = xcalloc(e->g->nr + 1, sizeof(*s->jobs));
	s->forced = xcalloc(e->g->nr + 1, 1);
	s->slots = s->o->jobs > 0 ? s->o->jobs : (ncpu > 0 ? (int)ncpu : 1);
	/* without -j, a stage's own parallelism may go past the cores */
	for (size_t i = 0; !s->o->jobs && i < e->g->nr; i++)
		if (e->pf->stages[i].parallelism > s->slots)
			s->slots = e->pf->stages[i].parallelism;
	if (graph_select(e->g, s->o->targets, s->o->targets_nr, mark, err)) {
		free(mark);
		return -1;
	}
	for (size_t i = 0; i < e->g->nr; i++) {
		s->jobs[i].stage = i;
		s->jobs[i].state = mark[i] ? JOB_WAITING : JOB_OFF;
		strvec_init(&s->jobs[i].ro);
		strbuf_init(&s->jobs[i].fail_msg, 0);
		strvec_init(&s->jobs[i].rw);
		s->total += mark[i];
	}
	if (s->o->force) {
		/* -f forces the named stages, not what they need */
		if (!s->o->targets_nr)
			memcpy(s->forced, mark, e->g->nr);
		for (size_t t = 0; t < s->o->targets_nr; t++)
			for (size_t i = 0; i < e->g->nr; i++) {
				const struct pf_stage *st = &e->pf->stages[i];

				if (!strcmp(st->name, s->o->targets[t]) ||
				    (st->base &&
				     !strcmp(st->base, s->o->targets[t])))
					s->forced[i] = 1;
			}
	}
	free(mark);
	return 0;
}

static void teardown(struct sched *s)
{
	for (size_t i = 0; s->jobs && i < s->e->g->nr; i++) {
		stage_record_free(s->jobs[i].cur);
		strvec_clear(&s->jobs[i].ro);
		strvec_clear(&s->jobs[i].rw);
		strbuf_release(&s->jobs[i].fail_msg);
		free(s->jobs[i].pending);
		free(s->jobs[i].ran);
	}
	free(s->jobs);
	free(s->forced);
}

static int dry_run(struct sched *s, struct error *err)
{
	unsigned char *mark = xcalloc(s->e->g->nr + 1, 1);
	struct stage_status *v = NULL;
	size_t nr = 0;

	for (size_t i = 0; i < s->e->g->nr; i++)
		mark[i] = s->jobs[i].state != JOB_OFF;
	if (engine_explain(s->e, mark, s->forced, &v, &nr, err)) {
		free(mark);
		return -1;
	}
	for (size_t i = 0; i < nr; i++) {
		if (v[i].stale) {
			print_reasons("would run", stage_name(s, v[i].stage),
				      &v[i].reasons, NULL);
			s->sum->ran++;
		} else {
			log_verbose("fresh %s", stage_name(s, v[i].stage));
			s->sum->fresh++;
		}
	}
	engine_status_free(v, nr);
	free(mark);
	return 0;
}

/* One id for the whole pipeline state: every selected stage's commit. */
static int write_run(struct sched *s, int ret, struct error *err)
{
	struct store_run run;
	struct store *st;
	char commit[STORE_ID_SIZE], id[STORE_ID_SIZE];
	const char *head;
	int r = 0;

	if (!s->store_used || engine_store(s->e, &st, err))
		return s->store_used ? -1 : 0;
	store_run_init(&run);
	for (size_t k = 0; k < s->e->g->nr && r >= 0; k++) {
		size_t i = s->e->g->order[k];

		if (s->jobs[i].state == JOB_OFF)
			continue;
		r = store_stage_head(st, stage_name(s, i), commit, err);
		if (r > 0)
			store_run_add_stage(&run, stage_name(s, i), commit);
	}
	run.state = xstrdup(ret == EXIT_OK	 ? "success"
			    : ret >= EXIT_SIGNAL ? "killed"
						 : "failed");
	head = engine_git_head(s->e, &run.git_dirty);
	run.git_head = *head ? xstrdup(head) : NULL;
	run.started = s->start_ms / 1000;
	run.duration_ms = now_ms() - s->start_ms;
	if (r >= 0)
		r = store_write_run(st, &run, id, err);
	if (r >= 0)
		log_verbose("run %.12s", id);
	store_run_release(&run);
	return r < 0 ? -1 : 0;
}

int engine_run(struct engine *e, const struct run_options *o,
	       struct run_summary *sum, struct error *err)
{
	struct sched s = {0};
	struct saved_signals saved;
	int ret;

	memset(sum, 0, sizeof(*sum));
	s.e = e;
	s.o = o;
	s.sum = sum;
	s.start_ms = now_ms();
	if (setup(&s, err)) {
		teardown(&s);
		return err->exit_code;
	}
	if (o->dry_run) {
		ret = dry_run(&s, err) ? err->exit_code : EXIT_OK;
		teardown(&s);
		return ret;
	}
	recover_trash(&s);
	interrupted = signals_seen = 0;
	s.tty = isatty(2) && log_verbosity >= LOG_NORMAL;
	if (s.tty) {
		log_before_print = progress_clear;
		e->before_output = progress_clear_arg;
	}
	catch_signals(&saved);
	s.saved_ms = now_ms();
	s.kept_ms = STATE_SAVE_MS;
	ret = loop(&s, err) ? err->exit_code : EXIT_OK;
	{
		struct error serr = ERROR_INIT;

		if (save_state(&s, 1, &serr) && !ret) {
			error_release(err);
			*err = serr;
			error_init(&serr);
			ret = err->exit_code;
		}
		error_release(&serr);
	}
	restore_signals(&saved);
	progress_clear();
	log_before_print = NULL;
	list_skipped(&s, ret);
	{
		struct error werr = ERROR_INIT;

		if (write_run(&s,
			      ret	    ? ret
			      : sum->failed ? EXIT_FAILED
			      : interrupted ? EXIT_SIGNAL + interrupted
					    : EXIT_OK,
			      &werr))
			log_warn("could not record the run: %s", werr.msg.buf);
		error_release(&werr);
	}
	engine_trim_jobs(e); /* keep: now and then, cheaply */
	sum->interrupted = interrupted;
	if (!ret && interrupted)
		ret = EXIT_SIGNAL + interrupted;
	else if (!ret && sum->failed)
		ret = EXIT_FAILED;
	log_info("%zu ran, %zu cached, %zu fresh, %zu failed, %zu skipped in "
		 "%.2fs",
		 sum->ran, sum->cached, sum->fresh, sum->failed, sum->skipped,
		 (double)(now_ms() - s.start_ms) / 1000);
	teardown(&s);
	return ret;
}
