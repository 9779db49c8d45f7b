/* The one way pipe talks to people: everything but requested output goes
 * to stderr through here. */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

enum log_level {
	LOG_QUIET = -1,
	LOG_NORMAL = 0,
	LOG_VERBOSE = 1,
	LOG_DEBUG = 2,
};

extern int log_verbosity;

__attribute__((format(printf, 1, 2))) void log_error(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_warn(const char *fmt, ...);
/* Shown unless -q. */
__attribute__((format(printf, 1, 2))) void log_info(const char *fmt, ...);
/* Shown with -v. */
__attribute__((format(printf, 1, 2))) void log_verbose(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_debug(const char *fmt, ...);

/* PIPE_TRACE_PERFORMANCE=1 in the environment (as GIT_TRACE_PERFORMANCE):
 * each call prints the time since the previous one (or since the first
 * call) with what was done and the peak RSS so far, to stderr. A phase
 * traced many times in a row (once per stage) prints one line with the
 * sum and the count. what must stay valid until the next call (a string
 * literal). Costs one getenv when off. */
void log_trace_phase(const char *what);

/* Called before any message is printed (to clear a progress line);
 * NULL: none. */
extern void (*log_before_print)(void);

#endif
