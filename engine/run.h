/* Bringing stages up to date: the explain pass (status, run -n) and the
 * scheduler (run). */
#ifndef ENGINE_RUN_H
#define ENGINE_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/plan.h"
#include "util/error.h"

struct engine;

struct stage_status {
	uint32_t stage; /* index into the Pipefile's stages */
	uint32_t stale;
	struct reasons reasons;
};

/* For every stage marked (mark == NULL: all), in run order: fresh or stale
 * with reasons. A stage whose upstream is stale is stale with "upstream
 * 'X' changed" (it may turn out fresh once X has run, if X's outputs come
 * out the same). forced marks stages to report as "forced". *out gets
 * *nr entries (free with engine_status_free). */
int engine_explain(struct engine *e, const unsigned char *mark,
		   const unsigned char *forced, struct stage_status **out,
		   size_t *nr, struct error *err);
void engine_status_free(struct stage_status *v, size_t nr);

struct run_options {
	char *const *targets; /* stage names; none: every stage */
	size_t targets_nr;
	int jobs;	     /* -j; <= 0: number of cores */
	int dry_run;	     /* -n */
	int force;	     /* -f: force the targets (all when none) */
	int keep_going;	     /* -k */
	int no_cache;	     /* --no-cache: never restore from the store */
	FILE *events;	     /* --json: events here, one a line; NULL: none */
	const char *report;  /* --report: a JUnit XML file; NULL: none */
	const char *version; /* pipe's, for the events */
};

struct run_summary {
	size_t ran, cached, fresh, failed, skipped;
	int interrupted;
};

/* The terminating signals pipe catches: HUP (an ssh drop), INT, QUIT,
 * TERM, USR1, USR2, ALRM, XCPU, XFSZ, VTALRM, PROF, PWR. SIGPIPE is
 * ignored (main.c); faults (SEGV, BUS, ...) and real-time signals are
 * not caught. */
#define ENGINE_STOP_SIGNALS 12
extern const int engine_stop_signals[ENGINE_STOP_SIGNALS];

/* Run what is stale among the targets and what they need. Returns the exit
 * code: EXIT_OK, EXIT_FAILED (a stage failed), EXIT_SIGNAL + the signal
 * that stopped it (130 for Ctrl-C), or the
 * error's code with err set (bad Pipefile, environment). */
int engine_run(struct engine *e, const struct run_options *o,
	       struct run_summary *sum, struct error *err);

#endif
