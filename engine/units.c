/* A stage's units on their executor: a whole stage, or one unit per datum.
 * Starting them (environment, mounts, logs), and what happens when one
 * ends: a retry, a datum's result kept, or the stage finished, its outputs
 * checked and committed, or put back after a failure. */
#include "engine/datums.h"
#include "engine/outputs.h"
#include "engine/plan.h"
#include "engine/scan.h"
#include "engine/sched.h"
#include "engine/state.h"
#include "executors/executor.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *log_file_path(const char *workspace, const char *job)
{
	return xstrfmt("%s/" PIPE_DIR "/logs/%s.log", workspace, job);
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
	for (size_t i = 0; i < st->rare->params_nr; i++)
		if (st->rare->params[i].file)
			strvec_push(&j->ro, st->rare->params[i].file);
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
	char *label;   /* "[label]": the stage, and a datum's match */
	char *out_dir; /* PIPE_OUT, workspace-relative (datums) */
	long long started_ms;
};

static void unit_free(struct unit *u)
{
	strvec_clear(&u->env);
	strvec_clear(&u->ro);
	strvec_clear(&u->rw);
	free(u->log_path);
	free(u->label);
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

/* Where a stage's pods may run: its kubernetes: keys, for the executor
 * (kept in the job while its units run). */
static const struct exec_sched *job_sched(const struct pf_stage *st,
					  struct job *j)
{
	const struct pf_kube_sched *k = st->kube;

	if (!j->sched) {
		j->sched = xcalloc(1, sizeof(*j->sched));
		strvec_init(&j->node_sel);
		for (size_t i = 0; i < k->node_selector.nr; i++)
			strvec_pushf(&j->node_sel, "%s=%s",
				     k->node_selector.v[i].key,
				     k->node_selector.v[i].value);
		j->sched->node_selector = j->node_sel.v;
		j->tols = xcalloc(k->tolerations_nr + 1, sizeof(*j->tols));
		for (size_t i = 0; i < k->tolerations_nr; i++) {
			const struct pf_toleration *t = &k->tolerations[i];

			j->tols[i] = (struct exec_toleration){
				t->key, t->op, t->value, t->effect, t->seconds};
		}
		j->sched->tolerations = j->tols;
		j->sched->tolerations_nr = k->tolerations_nr;
		j->sched->service_account = k->service_account;
	}
	return j->sched;
}

/* The exec_unit of un; what it points at lives in un and j. */
static int prepare_unit(struct sched *s, struct job *j, struct unit *un,
			struct exec_unit *up, struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	struct strbuf label = STRBUF_INIT;
	struct exec_unit u;

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
		if (fs_mkdir_p(un->out_dir, 0755)) {
			strbuf_release(&label);
			return error_set(err, EXIT_ENV,
					 "cannot create '%s': %s", un->out_dir,
					 strerror(errno));
		}
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
	u.workspace = s->e->workspace;
	u.shell = st->cmd_kind == PF_CMD_SHELL;
	u.cmd = st->cmd;
	u.argv = st->rare->argv.v;
	u.env = un->env.v;
	u.log_path = un->log_path;
	u.log_max = s->e->pf->keep.log_bytes;
	u.timeout_ms = st->rare->timeout_ms;
	u.image = j->cur->image;
	u.network = st->rare->network ? st->rare->network
				      : s->e->pf->docker_network;
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
	u.cpu_milli = st->rare->resources.cpu_milli;
	u.memory_bytes = st->rare->resources.memory_bytes;
	u.gpu = st->rare->resources.gpu;
	u.job_id = j->id;
	u.retries = st->rare->retries;
	u.sched = job_sched(st, j);
	u.data = un;
	un->started_ms = sched_now_ms();
	free(un->label);
	un->label = strbuf_detach(&label, NULL);
	u.label = un->label;
	*up = u;
	return 0;
}

/* What the status says of un; the pointers are borrowed from un. */
static void unit_status(const struct sched *s, const struct unit *un,
			struct status_unit *su)
{
	const struct job *j = un->job;

	memset(su, 0, sizeof(*su));
	su->stage = sched_stage_name(s, j->stage);
	su->datum = un->datum >= 0 ? j->cur->datum_list[un->datum].path : NULL;
	su->log_path = un->log_path;
	su->attempt = un->tries + 1;
	su->exit_code = -1;
}

static void say_started(struct sched *s, const struct unit *un)
{
	struct status_unit su;

	unit_status(s, un, &su);
	status_unit_started(&s->status, &su);
}

static int start_unit(struct sched *s, struct job *j, struct unit *un,
		      struct error *err)
{
	struct exec_unit u;

	if (prepare_unit(s, j, un, &u, err) || j->ops->start(j->ctx, &u, err))
		return -1;
	j->running++;
	s->running++;
	say_started(s, un);
	return 0;
}

/* A unit of j (datum: its index, or -1 for the whole stage), started. */
static int new_unit(struct sched *s, struct job *j, long datum,
		    struct error *err)
{
	struct unit *un = xcalloc(1, sizeof(*un));

	un->job = j;
	un->datum = datum;
	strvec_init(&un->env);
	strvec_init(&un->ro);
	strvec_init(&un->rw);
	if (start_unit(s, j, un, err)) {
		unit_free(un);
		return -1;
	}
	return 0;
}

/* Every pending datum at once on an executor that runs a batch (one
 * Indexed Job): it keeps the stage's parallelism, and takes one slot. */
static int start_batch(struct sched *s, struct job *j, struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	size_t n = j->pending_nr - j->next_datum, k = 0;
	struct exec_unit *v = xcalloc(n + 1, sizeof(*v));
	struct unit **made = xcalloc(n + 1, sizeof(*made));
	int ret = -1;

	for (; k < n; k++) {
		struct unit *un = xcalloc(1, sizeof(*un));

		un->job = j;
		un->datum = (long)j->pending[j->next_datum + k];
		strvec_init(&un->env);
		strvec_init(&un->ro);
		strvec_init(&un->rw);
		made[k] = un;
		if (prepare_unit(s, j, un, &v[k], err)) {
			k++;
			goto out;
		}
	}
	if (j->ops->start_batch(j->ctx, v, n, st->parallelism, err))
		goto out;
	j->next_datum += n;
	j->running += n;
	j->batch = 1;
	s->running++;
	for (size_t i = 0; i < n; i++)
		say_started(s, made[i]);
	ret = 0;
out:
	for (size_t i = 0; ret && i < k; i++)
		unit_free(made[i]);
	free(made);
	free(v);
	return ret;
}

/* Start pending datums while the stage's parallelism and -j allow. */
int units_fill(struct sched *s, struct job *j, struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];

	if (j->ops->start_batch && !sched_interrupted &&
	    j->next_datum < j->pending_nr)
		return j->running ? 0 : start_batch(s, j, err);

	/* a failed datum does not stop the others: the rerun then does only
	 * the failed ones */
	while (j->next_datum < j->pending_nr &&
	       j->running < (size_t)st->parallelism && s->running < s->slots &&
	       !sched_interrupted) {
		if (new_unit(s, j, (long)j->pending[j->next_datum++], err))
			return -1;
	}
	return 0;
}

/* A stale datums stage: datums whose key has a result in the store are
 * done already (a reverted datum is restored, not rerun); the rest run. */
static int start_datums(struct sched *s, struct job *j, struct error *err)
{
	const char *name = sched_stage_name(s, j->stage);
	struct state_datum *v = j->cur->datum_list;
	const struct stage_record *old = state_find(s->e->state, name);
	struct store *st;
	size_t k = 0;

	if (sched_store(s, &st, err))
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
	if (units_fill(s, j, err))
		return -1;
	if (!j->running && !j->pending_nr)
		finish_stage(s, j); /* every datum came from the cache */
	return 0;
}

int units_start_job(struct sched *s, struct job *j, struct error *err)
{
	const struct pf_stage *st = &s->e->pf->stages[j->stage];

	if (engine_executor(s->e, j->stage, &j->ops, &j->ctx, err))
		return -1;
	mounts(st, j);
	if (fs_mkdir_p(PIPE_DIR "/logs", 0755))
		return error_set(err, EXIT_ENV, "cannot create '%s': %s",
				 PIPE_DIR "/logs", strerror(errno));
	j->started_ms = sched_now_ms();
	s->state[j->stage] = JOB_RUNNING;
	jobs_new_id(st->name, j->id);
	if (st->rare->datums.path)
		return start_datums(s, j, err);
	j->moved_aside = 1;
	if (outputs_aside(s->e, j->stage, err))
		return -1;
	return new_unit(s, j, -1, err);
}

static void fail_job(struct sched *s, struct job *j)
{
	s->state[j->stage] = JOB_FAILED;
	s->sum->failed++;
	if (!s->o->keep_going)
		s->stop = 1;
}

/* Every declared output must exist; then hash them and record the run. */
static int record_success(struct sched *s, struct job *j, long long dur,
			  struct error *err)
{
	if (outputs_verify(s->e, j->stage, err))
		return -1;
	if (plan_hash_outputs(s->e, j->stage, j->cur, err))
		return -1;
	log_trace_phase("outputs hashed");
	j->cur->started_ms = j->started_ms;
	j->cur->duration_ms = dur;
	if (record_commit(s, j, err))
		return -1;
	log_trace_phase("outputs committed");
	record_job(s, j, "success");
	state_put(s->e->state, j->cur);
	j->cur = NULL;
	s->dirty = 1;
	return sched_save(s, 0, err);
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

static void say_failure(struct sched *s, struct job *j, const struct error *err)
{
	const char *name = sched_stage_name(s, j->stage);
	struct strbuf sb = STRBUF_INIT;

	if (err->exit_code)
		strbuf_addf(&sb, "stage '%s' failed: %s", name,
			    sched_without_stage(err->msg.buf, name));
	else if (j->fail_msg.len && j->datums_failed > 1)
		strbuf_addf(&sb, "%s (and %zu more datums failed)",
			    j->fail_msg.buf, j->datums_failed - 1);
	else
		strbuf_add(&sb, j->fail_msg.buf, j->fail_msg.len);
	/* stopped by a signal, which was said: no message */
	status_failed(&s->status, name, sb.len ? sb.buf : NULL);
	strbuf_release(&sb);
}

static void finish_stage(struct sched *s, struct job *j)
{
	const char *name = sched_stage_name(s, j->stage);
	long long dur = sched_now_ms() - j->started_ms;
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
	if (j->moved_aside)
		outputs_back(s->e, j->stage, !ok);
	j->moved_aside = 0;
	if (ok) {
		s->state[j->stage] = JOB_DONE;
		s->sum->ran++;
		status_ok(&s->status, name,
			  s->e->pf->stages[j->stage].rare->datums.path
				  ? (long long)j->datums_done
				  : -1,
			  j->datums_skipped, dur);
	} else {
		fail_job(s, j);
		record_job(s, j, sched_interrupted ? "killed" : "failed");
		say_failure(s, j, &err);
	}
	error_release(&err);
	sched_job_free(s, j); /* nothing reads it after its end */
}

/* Store a datum's PIPE_OUT as its result (on disk with the next flush,
 * at most DATUMS_SAVE_MAX_MS later); the folder becomes part of the
 * output folder when every datum is done. */
static int keep_datum(struct sched *s, struct unit *un, struct error *err)
{
	struct job *j = un->job;

	if (datums_keep(s->e->store, sched_stage_name(s, j->stage), j->cur,
			(size_t)un->datum, err))
		return -1;
	j->ran[un->datum] = 1;
	s->kept = 1;
	return sched_save(s, 0, err);
}

static void say_finished(struct sched *s, const struct unit *un,
			 const struct exec_done *d, int ok,
			 const struct error *err)
{
	struct status_unit su;
	struct strbuf why = STRBUF_INIT;

	unit_status(s, un, &su);
	if (access(un->log_path, F_OK))
		su.log_path = NULL; /* it printed nothing */
	su.ok = ok;
	su.exit_code = d->term_signal || d->cancelled ? -1 : d->exit_code;
	if (err->exit_code)
		strbuf_addstr(&why, err->msg.buf);
	else
		describe_end(d, &why);
	su.message = why.buf;
	su.ms = d->duration_ms > 0 ? d->duration_ms
				   : sched_now_ms() - un->started_ms;
	status_unit_finished(&s->status, &su);
	strbuf_release(&why);
}

void units_done(struct sched *s, struct exec_done *d)
{
	struct unit *un = d->data;
	struct job *j = un->job;
	const struct pf_stage *st = &s->e->pf->stages[j->stage];
	struct error err = ERROR_INIT;
	int ok = d->exit_code == 0 && !d->term_signal && !d->cancelled &&
		 !d->timed_out;

	j->running--;
	if (!j->batch || !j->running)
		s->running--;
	scan_forget_folders();
	if (ok && un->datum >= 0 && keep_datum(s, un, &err))
		ok = 0;
	say_finished(s, un, d, ok, &err);
	if (ok) {
		if (un->datum >= 0)
			j->datums_done++;
	} else if (!d->cancelled && !sched_interrupted &&
		   un->tries < st->rare->retries && !j->ops->own_retries) {
		struct strbuf why = STRBUF_INIT;

		describe_end(d, &why);
		un->tries++;
		log_info("retry %s (%d of %d): %s",
			 un->datum >= 0 ? j->cur->datum_list[un->datum].path
					: st->name,
			 un->tries, st->rare->retries, why.buf);
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
			    sched_without_stage(err.msg.buf, st->name));
	} else {
		struct strbuf why = STRBUF_INIT;

		if (err.exit_code)
			strbuf_addstr(&why, sched_without_stage(err.msg.buf,
								st->name));
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
	if (!j->running &&
	    (j->next_datum >= j->pending_nr || sched_interrupted))
		finish_stage(s, j);
}
