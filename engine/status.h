/* How `pipe run` reports what it does, behind one interface: a terminal
 * implementation (result lines and a live progress line redrawn in place),
 * a plain one (result lines only, for pipes and CI logs), and JSON events
 * (`--json`: one object a line, status_json.c). A JUnit report
 * (`--report FILE`, junit.c) is one more table, fed the same calls beside
 * the one that talks. */
#ifndef ENGINE_STATUS_H
#define ENGINE_STATUS_H

#include <stdio.h>
#include <stddef.h>

struct json;
struct reason;
struct reasons;
struct run_summary;

/* A running stage, for the live view. */
struct status_running {
	const char *name;
	size_t datums_done, datums_total; /* total 0: not a datums stage */
};

/* What a run is about to do, for its first event. */
struct status_begin {
	const char *version;   /* pipe's */
	const char *workspace; /* absolute */
	char *const *targets;  /* as named; none: every stage */
	size_t targets_nr;
	int jobs; /* -j, or what it defaulted to */
	int dry_run;
	const char *const *stages; /* the selected stages, in run order */
	size_t stages_nr;
};

/* A unit (a whole stage, or one datum of it) that started or ended. */
struct status_unit {
	const char *stage;
	const char *datum;    /* NULL: not a datums stage */
	const char *log_path; /* NULL: it printed nothing (yet) */
	int attempt;	      /* 1, then 2... on a retry */
	/* at its end: */
	int ok;
	int exit_code;	     /* -1: none (signal, cancelled, not started) */
	const char *message; /* how it ended in words ("exit status 2") */
	long long ms;
};

struct status;

struct status_ops {
	/* The run starts; NULL: nothing to say. */
	void (*begin)(struct status *st, const struct status_begin *b);
	/* A stage was decided: verb "run ", "cache" or "would run", the
	 * reasons, and a tail ("(restored from 3f2a…)") or NULL. */
	void (*decided)(struct status *st, const char *verb, const char *name,
			const struct reasons *rs, const char *tail);
	/* A stage is fresh: nothing to do. */
	void (*fresh)(struct status *st, const char *name);
	/* A unit started or ended; NULL: not reported. */
	void (*unit_started)(struct status *st, const struct status_unit *u);
	void (*unit_finished)(struct status *st, const struct status_unit *u);
	/* A stage succeeded; datums < 0: not a datums stage. */
	void (*ok)(struct status *st, const char *name, long long datums_done,
		   size_t datums_skipped, long long ms);
	/* A stage failed, in words (msg NULL: it was stopped by a signal,
	 * which was said already). */
	void (*failed)(struct status *st, const char *name, const char *msg);
	/* A stage did not run, code "upstream_failed", "stopped" (after
	 * another's failure, without -k) or "interrupted" (a signal), and
	 * the message to show (NULL: none). */
	void (*skipped)(struct status *st, const char *name, const char *code,
			const char *msg);
	/* The live view; NULL when the implementation has none (then the
	 * caller need not gather the running stages). */
	void (*progress)(struct status *st, size_t finished, size_t total,
			 const struct status_running *v, size_t nr);
	/* Take the live view off the screen before other output; NULL:
	 * there is none. */
	void (*clear)(struct status *st);
	/* The end: counts, time, the exit code and pipe's own error (NULL:
	 * none). */
	void (*summary)(struct status *st, const struct run_summary *sum,
			long long ms, int exit_code, const char *error);
};

struct status {
	const struct status_ops *ops;
	long long start_ms; /* for the elapsed time (wall clock, ms) */
	FILE *events;	    /* --json: where the events go */
	/* a second table fed the same calls (the JUnit report), or NULL */
	const struct status_ops *tee;
	void *tee_data;
};

extern const struct status_ops status_terminal, status_plain, status_json;

/* 1 when a live view may be drawn: stdout and stderr are terminals, and
 * neither NO_COLOR (any non-empty value) nor CI (non-empty, not "false"
 * or "0") is set. Escape sequences of any kind follow the same rule. */
int status_can_redraw(void);

/* Choose JSON events to events when it is not NULL; else the terminal
 * implementation when status_can_redraw() and pipe is not quiet; else the
 * plain one. Allocates nothing. */
void status_init(struct status *st, long long start_ms, FILE *events);

/* Until status_release(): other output (log lines, a unit's streamed
 * lines) first takes the live view off the screen. */
void status_hook_output(struct status *st, void (**before_output)(void *),
			void **arg);
void status_release(struct status *st);

/* Each call goes to st->ops and then to st->tee (a NULL hook is
 * skipped). */
void status_begin(struct status *st, const struct status_begin *b);
void status_decided(struct status *st, const char *verb, const char *name,
		    const struct reasons *rs, const char *tail);
void status_fresh(struct status *st, const char *name);
void status_unit_started(struct status *st, const struct status_unit *u);
void status_unit_finished(struct status *st, const struct status_unit *u);
void status_ok(struct status *st, const char *name, long long datums_done,
	       size_t datums_skipped, long long ms);
void status_failed(struct status *st, const char *name, const char *msg);
void status_skipped(struct status *st, const char *name, const char *code,
		    const char *msg);
void status_summary(struct status *st, const struct run_summary *sum,
		    long long ms, int exit_code, const char *error);

/* A reason as `status --json` and the events give it: kind (a machine
 * code), path, old, new, message. The caller owns the value. */
struct json *status_reason_json(const struct reason *r);

/* The JUnit report (junit.c): st->tee writes path (temp + rename) at
 * status_summary(). */
void junit_attach(struct status *st, const char *path);
/* 0 when --report may write path: nothing is there, an empty file, or a
 * report pipe wrote, unchanged (its mark hashes the rest). Otherwise -1
 * with err naming path (EXIT_USAGE): pipe does not replace what it did
 * not write. */
struct error;
int junit_replaceable(const char *path, struct error *err);
/* Frees what junit_attach() made; the report, unless written, is not. */
void junit_detach(struct status *st);

#endif
