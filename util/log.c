/* stderr logging with a verbosity level. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* A phase traced again right after itself (one per stage, as the
 * scheduler's "fingerprinted") is summed into one line, printed when
 * another phase comes or at exit. */
static struct {
	const char *what;
	double ms;
	unsigned long count;
	long rss_mb; /* peak RSS at its last call */
} pending;

static void trace_flush(void)
{
	if (!pending.what)
		return;
	if (pending.count > 1)
		fprintf(stderr,
			"trace: %8.3f ms  %s (%lu times), peak RSS %ld MB\n",
			pending.ms, pending.what, pending.count,
			pending.rss_mb);
	else
		fprintf(stderr, "trace: %8.3f ms  %s, peak RSS %ld MB\n",
			pending.ms, pending.what, pending.rss_mb);
	pending.what = NULL;
}

void log_trace_phase(const char *what)
{
	static int on = -1;
	static struct timespec last;
	struct timespec now;
	struct rusage ru;
	double ms;

	if (on < 0) {
		const char *v = getenv("PIPE_TRACE_PERFORMANCE");

		on = v && *v && *v != '0';
		clock_gettime(CLOCK_MONOTONIC, &last);
		if (on)
			atexit(trace_flush);
	}
	if (!on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (double)(now.tv_sec - last.tv_sec) * 1e3 +
	     (double)(now.tv_nsec - last.tv_nsec) / 1e6;
	last = now;
	if (pending.what && strcmp(pending.what, what))
		trace_flush();
	if (!pending.what) {
		pending.what = what;
		pending.ms = 0;
		pending.count = 0;
	}
	pending.ms += ms;
	pending.count++;
	getrusage(RUSAGE_SELF, &ru);
	pending.rss_mb = ru.ru_maxrss / 1024;
}
