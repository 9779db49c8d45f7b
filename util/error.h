/* Errors as values: the deepest function that knows the cause fills a
 * struct error; callers add context; cli/ prints it once (ninja, git). */
#ifndef UTIL_ERROR_H
#define UTIL_ERROR_H

#include <stdio.h>

#include "util/strbuf.h"

/* Process exit codes (SPEC §6). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1, /* a stage failed; status: something stale */
	EXIT_USAGE = 2,	 /* bad usage or bad Pipefile */
	EXIT_ENV = 3,	 /* daemon down, cluster unreachable, locked */
	/* a run stopped by a signal exits EXIT_SIGNAL + the signal, as
	 * shells report it; Ctrl-C is EXIT_INTERRUPTED */
	EXIT_SIGNAL = 128,
	EXIT_INTERRUPTED = 130,
};

struct error {
	int exit_code;	   /* one of EXIT_*; 0 while no error is set */
	char *file;	   /* owned; NULL when the error is not about a file */
	int line, col;	   /* 1-based; 0 when unknown */
	char *source_line; /* owned; the offending line, shown with a caret */
	struct strbuf msg; /* lowercase, no final period */
};

#define ERROR_INIT                                                             \
	{                                                                      \
		0, NULL, 0, 0, NULL, STRBUF_INIT                               \
	}

void error_init(struct error *err);
void error_release(struct error *err);

/* Set the error (replacing any earlier one); always returns -1 so that
 * callers can write `return error_set(err, EXIT_USAGE, "...")`. */
__attribute__((format(printf, 3, 4))) int error_set(struct error *err,
						    int exit_code,
						    const char *fmt, ...);

/* Like error_set, with a location: file, 1-based line and column, and the
 * text of that line (copied; may be NULL). */
__attribute__((format(printf, 7, 8))) int error_set_at(
	struct error *err, int exit_code, const char *file, int line, int col,
	const char *source_line, const char *fmt, ...);

/* Prepend context to the message: "stage 'train': " + old message; not
 * when the message starts with that context already. */
__attribute__((format(printf, 2, 3))) void error_prefix(struct error *err,
							const char *fmt, ...);

/* Print as
 *   pipe: error: FILE:LINE:COL: MESSAGE
 *      12 |     dependz: [data/]
 *         |     ^
 * The message may span several lines (a hint after the first). */
void error_print(const struct error *err, FILE *fp);

/* Format the first line the way error_print does, without the prefix
 * "pipe: error: " and without the source excerpt. */
void error_format(const struct error *err, struct strbuf *out);

#endif
