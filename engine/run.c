/* The scheduler: stages become ready when everything upstream is done, are
 * fingerprinted then (with their upstream's real outputs), skipped when
 * fresh, restored from the run-cache when some commit has their key, and
 * otherwise started on their executor while slots are free (-j, -k,
 * retries in units.c). A stage's record is written only after it
 * succeeded and its outputs were hashed, so an interrupted run never
 * leaves a stage that looks fresh but is not. */
#include "engine/graph.h"
#include "engine/guard.h"
#include "engine/jobs.h"
#include "engine/outputs.h"
#include "engine/plan.h"
#include "engine/retention.h"
#include "engine/run.h"
#include "engine/scan.h"
#include "engine/sched.h"
#include "engine/state.h"
#include "executors/executor.h"
#include "executors/loop.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The signal that stopped the run (0: none) and how many arrived: a
 * second one KILLs at once. */
volatile sig_atomic_t sched_interrupted;
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
	sched_interrupted = sig;
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
const char *sched_without_stage(const char *msg, const char *name)
{
	size_t n = strlen(name);

	if (!strncmp(msg, "stage '", 7) && !strncmp(msg + 7, name, n) &&
	    !strncmp(msg + 7 + n, "': ", 3))
		return msg + 7 + n + 3;
	return msg;
}

long long sched_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records are saved at most every STATE_SAVE_MS and at the end: a record
 * lost to a kill only makes its stage look stale, never fresh, and saving
 * (with fsync) after each of 2,000 trivial stages would cost more than
 * running them. */
#define STATE_SAVE_MS 1000
/* A save costs time in proportion to the stage count (the state file and
 * packed-refs are written whole): the interval grows to this many times
 * what the last save took, so saving stays a twentieth of the run at
 * 100,000 stages as at 100. */
#define STATE_SAVE_FACTOR 20
/* Datum results alone are flushed 1, 2, 4, then every 8 s: each flush
 * writes a pack, and a long stage of small datums would otherwise leave
 * dozens of packs to merge. A kill loses at most that much datum work. */
#define DATUMS_SAVE_MAX_MS 8000

int sched_save(struct sched *s, int force, struct error *err)
{
	long long now = sched_now_ms();
	int dirty = s->dirty;

	long long every = STATE_SAVE_MS;
	int ret;

	if (every < s->save_took_ms * STATE_SAVE_FACTOR)
		every = s->save_took_ms * STATE_SAVE_FACTOR;
	if ((!dirty && !s->kept) ||
	    (!force && now - s->saved_ms < (dirty ? every : s->kept_ms)))
		return 0;
	if (!dirty && !force && s->kept_ms < DATUMS_SAVE_MAX_MS)
		s->kept_ms *= 2;
	s->dirty = s->kept = 0;
	/* the store's batched commits and datum results first: a record
	 * without its commit is harmless, the other way round would lose
	 * history, or name datum results that are not there */
	if (s->e->store && store_batch_flush(s->e->store, err))
		return -1;
	ret = dirty ? state_save(s->e->state, err) : 0;
	s->saved_ms = sched_now_ms();
	s->save_took_ms = s->saved_ms - now;
	return ret;
}

/* The store, in batch mode for this run: stage commits are written as
 * one pack and their refs moved together when the records are saved. */
int sched_store(struct sched *s, struct store **st, struct error *err)
{
	if (engine_store(s->e, st, err))
		return -1;
	if (!s->batching) {
		store_batch_begin(*st);
		s->batching = 1;
	}
	return 0;
}

/* 1: every upstream stage is done or fresh; 0: not yet; -1: one failed. */
static int deps_ready(const struct sched *s, size_t si)
{
	const struct graph_node *n = &s->e->g->nodes[si];
	int ready = 1;

	for (size_t d = 0; d < n->deps_nr; d++) {
		enum job_state st = s->state[n->deps[d]];

		if (st == JOB_FAILED || st == JOB_SKIPPED)
			return -1;
		if (st != JOB_DONE && st != JOB_FRESH && st != JOB_OFF)
			ready = 0;
	}
	return ready;
}

struct job *sched_job(struct sched *s, size_t i)
{
	struct job *j = s->jobs[i];

	if (!j) {
		j = s->jobs[i] = xcalloc(1, sizeof(*j));
		j->stage = i;
		strvec_init(&j->ro);
		strvec_init(&j->rw);
		strbuf_init(&j->fail_msg, 0);
	}
	return j;
}

void sched_job_free(struct sched *s, struct job *j)
{
	if (!j)
		return;
	s->jobs[j->stage] = NULL;
	stage_record_free(j->cur);
	strvec_clear(&j->ro);
	strvec_clear(&j->rw);
	strbuf_release(&j->fail_msg);
	free(j->pending);
	free(j->ran);
	if (j->sched)
		strvec_clear(&j->node_sel);
	free(j->sched);
	free(j->tols);
	free(j);
}

/* A fresh stage: skipped, its fingerprint dropped, and no job made for
 * it (a stale one that waited for a slot and is fresh now loses its). */
static void settle_fresh(struct sched *s, size_t si, struct stage_record *cur)
{
	s->state[si] = JOB_FRESH;
	s->sum->fresh++;
	s->finished++;
	status_fresh(&s->status, sched_stage_name(s, si));
	stage_record_free(cur);
	sched_job_free(s, s->jobs[si]);
}

static int start_stale(struct sched *s, struct job *j, struct reasons *rs,
		       struct error *err);

/* Decide a ready stage: fresh (skip) or stale (start). Returns 1 when it
 * was started or settled, 0 when no slot is free, -1 on error. A stale
 * stage waiting for a slot keeps its fingerprint in its job. */
static int consider(struct sched *s, size_t si, struct error *err)
{
	const char *name = sched_stage_name(s, si);
	struct reasons rs = {0};
	struct stage_record *cur = NULL;
	struct job *j = s->jobs[si];
	int stale;

	if (j) { /* stale before, and no slot was free */
		cur = j->cur;
		j->cur = NULL;
	}
	if (!cur && plan_fingerprint_cmp(
			    s->e, si, state_find(s->e->state, name), &cur, err))
		return -1;
	log_trace_phase("fingerprinted");
	if (s->forced[si])
		reasons_add(&rs, REASON_FORCED, NULL, NULL, NULL);
	stale = plan_compare(s->e, si, state_find(s->e->state, name), cur, &rs,
			     err);
	if (!stale && !rs.nr) {
		settle_fresh(s, si, cur);
		return 1;
	}
	/* stale (or an error): its job owns the fingerprint from here */
	j = sched_job(s, si);
	j->cur = cur;
	if (stale >= 0)
		stale = start_stale(s, j, &rs, err);
	reasons_release(&rs);
	return stale;
}

static int try_cache(struct sched *s, struct job *j, const struct reasons *rs,
		     struct error *err);

/* A stale stage: restored from the run-cache or started, when a slot is
 * free. Returns as consider does. */
static int start_stale(struct sched *s, struct job *j, struct reasons *rs,
		       struct error *err)
{
	struct strbuf why = STRBUF_INIT;
	int ret;

	/* its outputs may change from here on */
	plan_prestat_drop(s->e, j->stage);
	if (s->running >= s->slots)
		return 0;
	if (!j->cur->has_files) {
		/* fresh by key, stale by outputs or -f: the record to be
		 * saved needs the file lists */
		stage_record_free(j->cur);
		j->cur = NULL;
		if (plan_fingerprint(s->e, j->stage, &j->cur, 1, err))
			return -1;
	}
	/* what pipe did not write goes to the store before anything below
	 * replaces it (a restore, the move aside, a datum merge) */
	strbuf_addf(&why,
		    "before 'pipe run' replaced the outputs of stage "
		    "'%s'",
		    sched_stage_name(s, j->stage));
	ret = guard_outputs(s->e, j->stage, rs, why.buf, err);
	strbuf_release(&why);
	if (ret)
		return -1;
	ret = try_cache(s, j, rs, err);
	if (ret)
		return ret;
	status_decided(&s->status, "run ", sched_stage_name(s, j->stage), rs,
		       NULL);
	return units_start_job(s, j, err) ? -1 : 1;
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
	const char *name = sched_stage_name(s, j->stage);
	char key[HASH_HEX_LEN + 1], from[STORE_ID_SIZE];
	struct store *st;
	int found;

	if (s->o->no_cache || s->forced[j->stage] || !s->e->pf->nr)
		return 0;
	hash_to_hex(&j->cur->key, key);
	if (sched_store(s, &st, err))
		return -1;
	found = store_find_key(st, name, key, from, err);
	if (found <= 0)
		return found;
	j->started_ms = sched_now_ms();
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
	    record_reuse(s, j, st, from, err))
		return -1;
	strbuf_addf(&why, "(restored from %.12s)", from);
	status_decided(&s->status, "cache", name, rs, why.buf);
	strbuf_release(&why);
	record_job(s, j, "cached");
	j->cur->started_ms = j->started_ms;
	state_put(s->e->state, j->cur);
	j->cur = NULL;
	s->dirty = 1;
	s->state[j->stage] = JOB_DONE;
	sched_job_free(s, j);
	s->sum->cached++;
	s->finished++;
	return sched_save(s, 0, err) ? -1 : 1;
}

/* A stage launch must still look at: waiting, or running (datums to
 * start). No stage comes back from the other states in a run. */
static int job_open(enum job_state st)
{
	return st == JOB_WAITING || st == JOB_RUNNING;
}

/* The first stage in run order that is still open: launch and the live
 * view start there, not at the first stage, so that a run of N stages
 * does not look at all N after each one ends. */
static size_t first_open(struct sched *s)
{
	const struct graph *g = s->e->g;

	while (s->settled < g->nr && !job_open(s->state[g->order[s->settled]]))
		s->settled++;
	return s->settled;
}

/* Walk the stages in run order and start what can start. */
static int launch(struct sched *s, struct error *err)
{
	int progress;

	do {
		progress = 0;
		for (size_t k = first_open(s); k < s->e->g->nr; k++) {
			size_t si = s->e->g->order[k];
			struct job *j = s->jobs[si];
			int r;

			if (s->state[si] == JOB_RUNNING && j->cur &&
			    j->next_datum < j->pending_nr) {
				size_t before = j->next_datum;

				if (units_fill(s, j, err))
					return -1;
				progress |= j->next_datum != before;
				continue;
			}
			if (s->state[si] != JOB_WAITING || s->stop ||
			    sched_interrupted)
				continue;
			r = deps_ready(s, si);
			if (r < 0) {
				s->state[si] = JOB_SKIPPED;
				s->sum->skipped++;
				s->finished++;
				progress = 1;
				continue;
			}
			if (!r)
				continue;
			r = consider(s, si, err);
			if (r < 0)
				return -1;
			if (r == 0)
				return 0; /* no free slot */
			progress = 1;
		}
	} while (progress);
	return 0;
}

/* Block in the executors' one loop until a unit of any executor ends (or
 * half a second passes: the progress line's clock), and handle what
 * ended. */
static int reap(struct sched *s, struct error *err)
{
	struct exec_done done[16];
	int n = loop_wait(NULL, 500, done, (int)ARRAY_SIZE(done), err);

	if (n < 0)
		return -1;
	for (int k = 0; k < n; k++)
		units_done(s, &done[k]);
	return 0;
}

/* "interrupted (SIGHUP): stopping 2 running stages (4 datums)" */
static void say_stopping(struct sched *s)
{
	struct strbuf sb = STRBUF_INIT;
	size_t stages = 0, datums = 0;

	for (size_t i = 0; i < s->e->g->nr; i++) {
		const struct job *j = s->jobs[i];

		if (!j || !j->running)
			continue;
		stages++;
		if (s->e->pf->stages[j->stage].rare->datums.path)
			datums += j->running;
	}
	strbuf_addf(&sb, "interrupted (SIG%s): stopping %zu running stage%s",
		    sigabbrev_np(sched_interrupted), stages,
		    stages == 1 ? "" : "s");
	if (datums)
		strbuf_addf(&sb, " (%zu datum%s)", datums,
			    datums == 1 ? "" : "s");
	log_error("%s", sb.buf);
	strbuf_release(&sb);
}

/* The live view, when the status has one: the running stages in order. */
static void show_progress(struct sched *s)
{
	struct status_running v[4];
	size_t nr = 0;

	if (!s->status.ops->progress)
		return;
	for (size_t k = first_open(s); k < s->e->g->nr && nr < ARRAY_SIZE(v);
	     k++) {
		size_t si = s->e->g->order[k];
		const struct job *j = s->jobs[si];

		if (s->state[si] != JOB_RUNNING || !j)
			continue;
		v[nr].name = sched_stage_name(s, si);
		v[nr].datums_done = j->datums_done + j->datums_skipped;
		v[nr].datums_total = j->cur ? j->cur->datum_nr : 0;
		nr++;
	}
	s->status.ops->progress(&s->status, s->finished, s->total, v, nr);
}

static int loop(struct sched *s, struct error *err)
{
	int cancelled = 0;

	for (;;) {
		if (!sched_interrupted && launch(s, err))
			goto fail;
		if (sched_interrupted && cancelled < signals_seen) {
			if (!cancelled)
				say_stopping(s);
			loop_cancel_all(NULL);
			cancelled = signals_seen;
		}
		if (!s->running)
			break;
		show_progress(s);
		if (reap(s, err))
			goto fail;
	}
	return 0;
fail:
	/* an engine error: stop what runs, record nothing more */
	loop_cancel_all(NULL);
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
		size_t si = s->e->g->order[k];
		unsigned char *st = &s->state[si];
		const char *name = sched_stage_name(s, si);
		char *msg = NULL;

		if (*st == JOB_WAITING && deps_ready(s, si) < 0) {
			*st = JOB_SKIPPED;
			s->sum->skipped++;
		}
		if (*st == JOB_SKIPPED) {
			msg = xstrfmt("skipped '%s': an upstream stage failed",
				      name);
			status_skipped(&s->status, name, "upstream_failed",
				       msg);
		} else if (*st == JOB_WAITING && sched_interrupted) {
			status_skipped(&s->status, name, "interrupted", NULL);
		} else if (*st == JOB_WAITING && !error) {
			msg = xstrfmt("not run '%s': stopped after a failure "
				      "(-k keeps going)",
				      name);
			status_skipped(&s->status, name, "stopped", msg);
		}
		free(msg);
	}
}

static int setup(struct sched *s, struct error *err)
{
	struct engine *e = s->e;
	unsigned char *mark = xcalloc(e->g->nr + 1, 1);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	s->state = xcalloc(e->g->nr + 1, 1);
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
		s->state[i] = mark[i] ? JOB_WAITING : JOB_OFF;
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
	for (size_t i = 0; s->jobs && i < s->e->g->nr; i++)
		sched_job_free(s, s->jobs[i]);
	free(s->jobs);
	free(s->state);
	free(s->forced);
}

static int dry_run(struct sched *s, struct error *err)
{
	unsigned char *mark = xcalloc(s->e->g->nr + 1, 1);
	struct stage_status *v = NULL;
	size_t nr = 0;

	for (size_t i = 0; i < s->e->g->nr; i++)
		mark[i] = s->state[i] != JOB_OFF;
	if (engine_explain(s->e, mark, s->forced, &v, &nr, err)) {
		free(mark);
		return -1;
	}
	for (size_t i = 0; i < nr; i++) {
		if (v[i].stale) {
			status_decided(&s->status, "would run",
				       sched_stage_name(s, v[i].stage),
				       &v[i].reasons, NULL);
			s->sum->ran++;
		} else {
			status_fresh(&s->status,
				     sched_stage_name(s, v[i].stage));
			s->sum->fresh++;
		}
	}
	engine_status_free(v, nr);
	free(mark);
	return 0;
}

/* The selected stages' plain files, stat'ed ahead on a second CPU. */
static void prestat(struct sched *s)
{
	unsigned char *mark = xcalloc(s->e->g->nr + 1, 1);

	for (size_t i = 0; i < s->e->g->nr; i++)
		mark[i] = s->state[i] != JOB_OFF;
	plan_prestat(s->e, mark);
	free(mark);
}

/* The run proper, after setup: the loop, the records, the exit code. */
static int run(struct sched *s, struct error *err)
{
	struct engine *e = s->e;
	struct run_summary *sum = s->sum;
	struct saved_signals saved;
	int ret;

	outputs_recover(e);
	prestat(s);
	sched_interrupted = signals_seen = 0;
	status_hook_output(&s->status, &e->before_output, &e->output_arg);
	catch_signals(&saved);
	s->saved_ms = sched_now_ms();
	s->kept_ms = STATE_SAVE_MS;
	ret = loop(s, err) ? err->exit_code : EXIT_OK;
	scan_prestat_stop();
	{
		struct error serr = ERROR_INIT;

		if (sched_save(s, 1, &serr) && !ret) {
			error_release(err);
			*err = serr;
			error_init(&serr);
			ret = err->exit_code;
		}
		error_release(&serr);
	}
	log_trace_phase("state saved");
	restore_signals(&saved);
	status_release(&s->status);
	list_skipped(s, ret);
	{
		struct error werr = ERROR_INIT;

		if (record_run(s,
			       ret	     ? ret
			       : sum->failed ? EXIT_FAILED
			       : sched_interrupted
				       ? EXIT_SIGNAL + sched_interrupted
				       : EXIT_OK,
			       &werr))
			log_warn("could not record the run: %s", werr.msg.buf);
		error_release(&werr);
	}
	state_free(e->state); /* when record_run had no store to free it */
	e->state = NULL;
	log_trace_phase("run recorded");
	engine_trim_jobs(e); /* keep: now and then, cheaply */
	sum->interrupted = sched_interrupted;
	if (!ret && sched_interrupted)
		ret = EXIT_SIGNAL + sched_interrupted;
	else if (!ret && sum->failed)
		ret = EXIT_FAILED;
	return ret;
}

/* The first event: what the run will look at. */
static void begin(struct sched *s)
{
	struct status_begin b = {0};
	const char **names = xcalloc(s->total + 1, sizeof(*names));

	for (size_t k = 0; k < s->e->g->nr; k++)
		if (s->state[s->e->g->order[k]] != JOB_OFF)
			names[b.stages_nr++] =
				sched_stage_name(s, s->e->g->order[k]);
	b.version = s->o->version;
	b.workspace = s->e->workspace;
	b.targets = s->o->targets;
	b.targets_nr = s->o->targets_nr;
	b.jobs = s->slots;
	b.dry_run = s->o->dry_run;
	b.stages = names;
	b.stages_nr = s->total;
	status_begin(&s->status, &b);
	free(names);
}

/* The last event; -n says nothing more on a terminal, but its events
 * and its report end as a run's do. */
static void end(struct sched *s, int ret, const struct error *err)
{
	long long ms = sched_now_ms() - s->start_ms;
	const char *msg = ret && err->exit_code ? err->msg.buf : NULL;
	struct status *st = &s->status;

	if (!s->o->dry_run) {
		status_summary(st, s->sum, ms, ret, msg);
		return;
	}
	if (st->ops == &status_json)
		st->ops->summary(st, s->sum, ms, ret, msg);
	if (st->tee)
		st->tee->summary(st, s->sum, ms, ret, msg);
}

int engine_run(struct engine *e, const struct run_options *o,
	       struct run_summary *sum, struct error *err)
{
	struct sched s = {0};
	int ret;

	memset(sum, 0, sizeof(*sum));
	s.e = e;
	s.o = o;
	s.sum = sum;
	s.start_ms = sched_now_ms();
	status_init(&s.status, s.start_ms, o->events);
	if (setup(&s, err)) {
		teardown(&s);
		return err->exit_code;
	}
	if (o->report)
		junit_attach(&s.status, o->report);
	begin(&s);
	if (o->dry_run)
		ret = dry_run(&s, err) ? err->exit_code : EXIT_OK;
	else
		ret = run(&s, err);
	end(&s, ret, err);
	junit_detach(&s.status);
	teardown(&s);
	return ret;
}
