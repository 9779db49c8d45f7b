/* The scheduler's shared state, private to engine/: one state byte per
 * stage of the run, one job per stage that is being run, one unit per
 * process or container, and the calls between the
 * files that make up `pipe run` (run.c schedules, units.c starts and ends
 * units, outputs.c moves outputs aside and back, record.c writes the
 * provenance, status.c reports). */
#ifndef ENGINE_SCHED_H
#define ENGINE_SCHED_H

#include <signal.h>
#include <stddef.h>

#include "engine/engine.h"
#include "engine/jobs.h"
#include "engine/run.h"
#include "engine/status.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/error.h"
#include "util/strbuf.h"
#include "util/strvec.h"

struct exec_done;

enum job_state {
	JOB_OFF,     /* not selected */
	JOB_WAITING, /* upstream not done yet */
	JOB_RUNNING,
	JOB_FRESH,
	JOB_DONE,
	JOB_FAILED,
	JOB_SKIPPED, /* an upstream stage failed */
};

/* A stale stage's run: made when a stage is found stale, freed when it
 * ends (sched_job_free), so that a run of N stages that runs a few holds
 * a few, not N (issue #17). Its state is in the sched's array. */
struct job {
	size_t stage;
	struct stage_record *cur; /* fingerprint while running */
	const struct executor *ops;
	struct exec_ctx *ctx;
	struct strvec ro, rw; /* container mounts */
	long long started_ms;
	int moved_aside; /* outputs are in .pipe/trash */
	size_t running;	 /* units running now */
	int batch;	 /* its datums were started as one batch: one slot */
	struct exec_sched *sched; /* where its pods may run (kubernetes) */
	struct strvec node_sel;
	struct exec_toleration *tols;
	int failed; /* a unit failed for good */
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
	unsigned char *state; /* per stage: its enum job_state */
	struct job **jobs;    /* per stage: its job while it is run, or NULL */
	unsigned char *forced;
	size_t total, finished;
	size_t settled; /* order[0..settled) neither wait nor run */
	int running, slots;
	int stop;	      /* a stage failed without -k */
	int dirty;	      /* records not saved yet */
	int kept;	      /* datum results not flushed to the store yet */
	long long kept_ms;    /* flush them at most this often (grows) */
	int store_used;	      /* something was committed: write a run record */
	int batching;	      /* the store is in batch mode */
	struct status status; /* progress and results, terminal or plain */
	long long saved_ms;
	long long save_took_ms; /* the last save's time */
	long long start_ms;
};

/* The signal that stopped the run (0: none), set by its handler. */
extern volatile sig_atomic_t sched_interrupted;

static inline const char *sched_stage_name(const struct sched *s, size_t i)
{
	return s->e->pf->stages[i].name;
}

/* Stage i's job, made when it is first needed; a finished one's freed
 * (its state stays in s->state). run.c. */
struct job *sched_job(struct sched *s, size_t i);
void sched_job_free(struct sched *s, struct job *j);

/* Wall-clock milliseconds (job records and provenance carry dates). */
long long sched_now_ms(void);

/* msg without a leading "stage 'name': ", which the caller says again. */
const char *sched_without_stage(const char *msg, const char *name);

/* The store, in batch mode for this run (run.c). */
int sched_store(struct sched *s, struct store **st, struct error *err);

/* Save the records and flush the store's batch when due, or now with
 * force (run.c). */
int sched_save(struct sched *s, int force, struct error *err);

/* units.c: start a stale stage on its executor; start pending datums
 * while slots allow; handle a unit that ended. */
int units_start_job(struct sched *s, struct job *j, struct error *err);
int units_fill(struct sched *s, struct job *j, struct error *err);
void units_done(struct sched *s, struct exec_done *d);

/* record.c: the provenance of what ran (stage commits, job records, the
 * run record). */
int record_commit(struct sched *s, struct job *j, struct error *err);
int record_reuse(struct sched *s, struct job *j, struct store *st,
		 const char *from, struct error *err);
void record_job(struct sched *s, struct job *j, const char *state);
int record_run(struct sched *s, int ret, struct error *err);

#endif
