/* stderr logging with a verbosity level. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

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
