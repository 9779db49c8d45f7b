/* The job log (.pipe/jobs): one line per stage execution of every run —
 * ran, restored from the cache, failed or killed — for `pipe jobs` and
 * `pipe logs`. Lines are appended whole (O_APPEND) and each carries a
 * checksum, so a torn or edited line is skipped, never trusted. */
#ifndef ENGINE_JOBS_H
#define ENGINE_JOBS_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"

#define JOB_ID_LEN 12

struct job_rec {
	char id[JOB_ID_LEN + 1];
	char *stage;
	char *commit;	      /* output commit, or "" */
	char *state;	      /* success, cached, failed, killed */
	char *log;	      /* workspace-relative log file or folder */
	long long started_ms; /* unix time */
	long long duration_ms;
	unsigned long long processed, skipped, total; /* datums */
	unsigned long long bytes_in, bytes_out;
};

/* A new job id: 12 hex digits, unique per workspace in practice. */
void jobs_new_id(const char *stage, char *out);

/* Append one record to path. */
int jobs_append(const char *path, const struct job_rec *j, struct error *err);

/* Every valid record of path, oldest first (a missing file: none). */
int jobs_load(const char *path, struct job_rec **out, size_t *nr,
	      struct error *err);
void jobs_free(struct job_rec *v, size_t nr);

/* A datum's log file name in its job's log folder: the datum's path with
 * '%' and '/' escaped as %25 and %2F, + ".log" (one name per datum:
 * "d/a_b.txt" and "d/a/b.txt" get two). jobs_datum_of_log is the datum
 * back, or NULL when name is not such a name (caller frees). */
void jobs_datum_log_name(struct strbuf *out, const char *datum);
char *jobs_datum_of_log(const char *name);

/* What pipe gc (and pipe run, now and then) keeps of the job log: the
 * Pipefile's `keep:` with the time now. */
struct jobs_keep {
	long long jobs;	  /* the newest this many; <= 0: every one */
	long long days;	  /* none started longer ago; <= 0: no limit */
	long long now_ms; /* unix time */
	/* 1 when a job's output commit is gone from the store (no ref kept
	 * it); NULL: not asked */
	int (*gone)(const char *commit, void *arg);
	void *arg;
};

struct jobs_pruned {
	size_t jobs;		      /* records dropped */
	size_t logs;		      /* log files and folders removed */
	unsigned long long log_bytes; /* their size */
};

#define JOBS_DRY_RUN 1 /* count only */
#define JOBS_ORPHANS 2 /* also logs no record names (none may be running) */

/* Drop the records of path that keep does not keep, with their logs in
 * logs_dir (ID.log, or ID/ for datums); the newest job of each stage is
 * always kept. The file is rewritten atomically, and only when a record
 * goes. The caller holds the workspace lock. Fails only when the file
 * cannot be read or written; a log that cannot be removed stays. */
int jobs_prune(const char *path, const char *logs_dir,
	       const struct jobs_keep *keep, int flags, struct jobs_pruned *out,
	       struct error *err);

#endif
