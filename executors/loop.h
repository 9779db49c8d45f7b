/* The one event loop every executor runs on (as redis's ae.c, or git's
 * run-command.c pp_* functions): the units of every executor in one table,
 * their file descriptors (a child's pipes, a pidfd, an HTTP socket) and
 * their timers, waited on in one poll(). What every executor needs is
 * written here once: the unit table, timeouts and TERM-then-KILL (on a
 * timeout or a cancel), the output's "[label] " prefix and the unit's log,
 * and the report of an ended unit. An executor keeps what is its own: how
 * to start a unit, how to stop it, and how to learn that it ended. */
#ifndef EXECUTORS_LOOP_H
#define EXECUTORS_LOOP_H

#include <stddef.h>

#include "executors/executor.h"
#include "executors/unitlog.h"
#include "util/strbuf.h"

struct loop_unit;

/* What the loop asks of the executor that started a unit. */
struct loop_ops {
	/* Send sig (SIGTERM or SIGKILL) to the unit; only called while
	 * the unit is live. */
	void (*stop)(struct loop_unit *u, int sig);
	/* Free the executor's part (impl) once the unit is reported, or when
	 * the loop is torn down. */
	void (*release)(struct loop_unit *u);
};

/* One unit: what every executor tracks the same way. The executor sets
 * live, exit_code, term_signal, oom_killed and message; the loop sets
 * the rest. */
struct loop_unit {
	const struct loop_ops *ops;
	struct exec_ctx *owner; /* the executor instance that started it */
	void *impl;		/* the executor's own state of the unit */
	void *data;		/* exec_unit.data */
	const struct exec_options *opt; /* the owner's: stream, grace */
	char *prefix;			/* "[label] " */
	struct unit_log log;
	struct strbuf pending[3]; /* [1] stdout, [2] stderr: a cut line */
	long long timeout_ms, started_ms;
	long long deadline_ms; /* when to TERM for the timeout; 0: none */
	long long kill_ms;     /* when to KILL after a TERM; 0: none */
	int exit_code;	       /* -1 until known */
	int term_signal;
	unsigned live : 1; /* can take a signal: started, end not seen */
	unsigned ended : 1, timed_out : 1, cancelled : 1, oom_killed : 1;
	char *message;
	long long duration_ms;
};

/* Stream mode: append each complete line of pending + data to out as
 * prefix + line + '\n'; what follows the last newline stays in pending. A
 * pending line longer than 64 KiB is cut and emitted as a line of its own. */
void loop_prefix_lines(struct strbuf *out, struct strbuf *pending,
		       const char *prefix, const char *data, size_t len);

/* Emit what is left in pending (a last line without '\n') as a line. */
void loop_prefix_flush(struct strbuf *out, struct strbuf *pending,
		       const char *prefix);

/* "250ms", "1.5s", "30s", "2m", "1h5m": how timeouts are named in messages. */
void loop_format_duration(struct strbuf *out, long long ms);

/* Monotonic milliseconds, the loop's clock. */
long long loop_now_ms(void);

/* A new unit in the table, its timeout running from now. opt must outlive
 * the unit. */
struct loop_unit *loop_unit_add(const struct exec_unit *unit,
				const struct exec_options *opt,
				const struct loop_ops *ops,
				struct exec_ctx *owner, void *impl);

/* Output of the unit on stream to (1: stdout, 2: stderr): into its log
 * and, when streaming, to pipe's own stream line by line, prefixed. */
void loop_unit_output(struct loop_unit *u, int to, const char *data,
		      size_t len);
/* A line of pipe's own in the unit's log ("pipe: MSG"). */
void loop_unit_note(struct loop_unit *u, const char *msg);

/* The unit has ended: its last cut lines are written, its message set
 * ("cancelled", "timed out after 2s", "killed by signal 9 (Killed)")
 * unless the executor set one, its log closed; note_failure also writes a
 * message of a unit without an exit code into its log. The next wait
 * reports it. */
void loop_unit_end(struct loop_unit *u, int note_failure);

/* File descriptors: fn is called with the poll events that came. A
 * second watch of the same fd replaces the first. Unwatch before closing
 * the fd. */
typedef void loop_fd_fn(void *arg, int fd, short revents);
void loop_fd_watch(int fd, short events, loop_fd_fn *fn, void *arg);
void loop_fd_unwatch(int fd);

/* Timers, embedded in the executor's state: fn(arg) once at the time it
 * is armed for. Arming an armed timer moves it; disarm before freeing. */
struct loop_timer {
	void (*fn)(void *arg);
	void *arg;
	long long at;	     /* loop_now_ms() time; -1: disarmed */
	unsigned long round; /* the loop's: fired in this round */
};
void loop_timer_init(struct loop_timer *t, void (*fn)(void *arg), void *arg);
void loop_timer_arm(struct loop_timer *t, long long at);
void loop_timer_disarm(struct loop_timer *t);

/* The executor table's wait, running and cancel_all, the same for every
 * executor: ctx's units (NULL: every executor's, for the engine). wait
 * blocks in one poll() for every fd and timer of every executor, and
 * reports an ended unit of any executor at once. */
int loop_wait(struct exec_ctx *ctx, int timeout_ms, struct exec_done *done,
	      int max, struct error *err);
int loop_running(struct exec_ctx *ctx);
void loop_cancel_all(struct exec_ctx *ctx);

/* An executor's close: cancel ctx's units and wait for them (TERM, KILL
 * after the grace period), then release() what a poll error left. */
void loop_close(struct exec_ctx *ctx);

/* Drop ctx's units without reporting them: release() each. */
void loop_forget(struct exec_ctx *ctx);

#endif
