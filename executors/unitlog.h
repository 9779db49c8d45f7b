/* A unit's log file (.pipe/logs/JOB.log, or one per datum), shared by the
 * executors: made on the unit's first byte of output, so that a unit that
 * prints nothing costs no file, and capped: past max bytes it keeps the
 * first half and the last half, with a line between them saying how many
 * bytes were cut. What is streamed to the terminal is not cut. */
#ifndef EXECUTORS_UNITLOG_H
#define EXECUTORS_UNITLOG_H

#include <stddef.h>

/* The cap when the unit names none (exec_unit.log_max 0): 1 MiB. */
#define UNIT_LOG_DEFAULT_MAX (1LL << 20)

struct unit_log {
	const char *path; /* borrowed; NULL: nothing is kept */
	int fd;		  /* -1 until the first byte, or after a failure */
	unsigned failed : 1;
	unsigned closed : 1;	  /* later writes are dropped */
	char last;		  /* the head's last byte */
	size_t max;		  /* head + tail */
	unsigned long long total; /* bytes received */
	char *tail;	 /* ring of max / 2 bytes, once the head is full */
	size_t tail_pos; /* where the next byte goes in the ring */
};

/* Nothing is created yet. max < 0: no cap; 0: the default. */
void unit_log_init(struct unit_log *l, const char *path, long long max);

/* Keep data: the file is created (or truncated, its folder made) on the
 * first call. A file that cannot be made or written is warned about once,
 * and the unit runs on without a log. */
void unit_log_write(struct unit_log *l, const void *data, size_t len);

/* A line of pipe's own: "pipe: MSG\n". */
void unit_log_note(struct unit_log *l, const char *msg);

/* Write the tail kept in memory, if any, after a line "[... N bytes cut
 * ...]", and close; what is written later is dropped (unit_log_init
 * starts the file afresh, as a retry does). Closing twice is fine. */
void unit_log_close(struct unit_log *l);

#endif
