/* stderr logging with a verbosity level. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int log_verbosity = LOG_NORMAL;
void (*log_before_print)(void);

static void emit(const char *prefix, const char *fmt, va_list ap)
{
	if (log_before_print)
		log_before_print();
	if (prefix)
		fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

#define LOG_FN(name, level, prefix)                                            \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
		if (log_verbosity < (level))                                   \
			return;                                                \
		va_start(ap, fmt);                                             \
		emit((prefix), fmt, ap);                                       \
		va_end(ap);                                                    \
	}

LOG_FN(log_error, LOG_QUIET, "pipe: error: ")
LOG_FN(log_warn, LOG_QUIET, "pipe: warning: ")
LOG_FN(log_info, LOG_NORMAL, NULL)
LOG_FN(log_verbose, LOG_VERBOSE, NULL)
LOG_FN(log_debug, LOG_DEBUG, "debug: ")

void log_trace_phase(const char *what)
{
	static int on = -1;
	static struct timespec last;
	struct timespec now;

	if (on < 0) {
		const char *v = getenv("PIPE_TRACE_PERFORMANCE");

		on = v && *v && *v != '0';
		clock_gettime(CLOCK_MONOTONIC, &last);
	}
	if (!on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	fprintf(stderr, "trace: %8.3f ms  %s\n",
		(double)(now.tv_sec - last.tv_sec) * 1e3 +
			(double)(now.tv_nsec - last.tv_nsec) / 1e6,
		what);
	last = now;
}
