/* How `pipe run` reports what it does, behind one interface: a terminal
 * implementation (result lines and a live progress line redrawn in place)
 * and a plain one (result lines only, for pipes and CI logs). A JSON-events
 * implementation is one more table of these operations. */
#ifndef ENGINE_STATUS_H
#define ENGINE_STATUS_H

#include <stddef.h>

struct reasons;
struct run_summary;

/* A running stage, for the live view. */
struct status_running {
	const char *name;
	size_t datums_done, datums_total; /* total 0: not a datums stage */
};

struct status;

struct status_ops {
	/* A stage was decided: verb "run ", "cache" or "would run", the
	 * first reasons, and a tail ("(restored from 3f2a…)") or NULL. */
	void (*decided)(struct status *st, const char *verb, const char *name,
			const struct reasons *rs, const char *tail);
	/* A stage succeeded; datums < 0: not a datums stage. */
	void (*ok)(struct status *st, const char *name, long long datums_done,
		   size_t datums_skipped, long long ms);
	/* A stage failed or was skipped, in words. */
	void (*failed)(struct status *st, const char *msg);
	/* The live view; NULL when the implementation has none (then the
	 * caller need not gather the running stages). */
	void (*progress)(struct status *st, size_t finished, size_t total,
			 const struct status_running *v, size_t nr);
	/* Take the live view off the screen before other output. */
	void (*clear)(struct status *st);
	/* The last line: counts and time. */
	void (*summary)(struct status *st, const struct run_summary *sum,
			long long ms);
};

struct status {
	const struct status_ops *ops;
	long long start_ms; /* for the elapsed time (wall clock, ms) */
};

extern const struct status_ops status_terminal, status_plain;

/* Choose the terminal implementation when stderr is a terminal and pipe
 * is not quiet, else the plain one. Allocates nothing. */
void status_init(struct status *st, long long start_ms);

/* Until status_release(): other output (log lines, a unit's streamed
 * lines) first takes the live view off the screen. */
void status_hook_output(struct status *st, void (**before_output)(void *),
			void **arg);
void status_release(struct status *st);

#endif
