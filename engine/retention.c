/* Retention: pipe gc and the end of pipe run prune the job log and the
 * logs by `keep:`; the store's own gc is store_gc. */
#include "engine/engine.h"
#include "engine/jobs.h"
#include "engine/retention.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define JOBS_PATH PIPE_DIR "/jobs"
#define LOGS_DIR PIPE_DIR "/logs"
#define TRASH_DIR PIPE_DIR "/trash"
#define TMP_DIR PIPE_DIR "/tmp"

/* A record line is about 150 bytes: trim when the file holds about
 * twice what keep keeps, and at least 64 KiB, so that a trim (a read and a
 * rewrite of the file) comes once in many runs. */
#define RECORD_BYTES 160
#define TRIM_MIN_BYTES (64LL << 10)

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keep_init(const struct engine *e, struct jobs_keep *k)
{
	memset(k, 0, sizeof(*k));
	k->jobs = e->pf->keep.jobs;
	k->days = e->pf->keep.days;
	k->now_ms = now_ms();
}

struct reach {
	char (*v)[STORE_ID_SIZE];
	size_t nr;
};

static int cmp_hex(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int gone(const char *commit, void *arg)
{
	const struct reach *r = arg;

	return strlen(commit) != STORE_ID_LEN ||
	       !bsearch(commit, r->v, r->nr, sizeof(*r->v), cmp_hex);
}

int engine_gc_jobs(struct engine *e, int dry_run, struct jobs_pruned *out,
		   struct error *err)
{
	struct reach r = {0};
	struct jobs_keep k;
	struct store *st;
	int ret;

	memset(out, 0, sizeof(*out));
	keep_init(e, &k);
	if (engine_store(e, &st, err) || store_reachable(st, &r.v, &r.nr, err))
		return -1;
	k.gone = gone;
	k.arg = &r;
	ret = jobs_prune(JOBS_PATH, LOGS_DIR, &k,
			 JOBS_ORPHANS | (dry_run ? JOBS_DRY_RUN : 0), out, err);
	free(r.v);
	return ret;
}

void engine_trim_jobs(struct engine *e)
{
	struct error err = ERROR_INIT;
	struct jobs_pruned p;
	struct jobs_keep k;
	struct stat st;
	long long want;

	keep_init(e, &k);
	want = (k.jobs + (long long)e->pf->nr) * RECORD_BYTES * 2;
	if (want < TRIM_MIN_BYTES)
		want = TRIM_MIN_BYTES;
	if (stat(JOBS_PATH, &st) || st.st_size <= want)
		return;
	if (jobs_prune(JOBS_PATH, LOGS_DIR, &k, 0, &p, &err))
		log_warn("could not trim the job log: %s", err.msg.buf);
	else if (p.jobs)
		log_verbose("dropped %zu job records and %zu logs (%llu bytes) "
			    "that keep: does not keep",
			    p.jobs, p.logs, p.log_bytes);
	error_release(&err);
}

unsigned long long engine_gc_tmp(int dry_run)
{
	DIR *d = opendir(TMP_DIR);
	struct dirent *de;
	unsigned long long bytes = 0;

	while (d && (de = readdir(d))) {
		char *dir;

		if (strncmp(de->d_name, "docker-", 7))
			continue;
		dir = xstrfmt(TMP_DIR "/%s", de->d_name);
		bytes += fs_tree_bytes(dir);
		if (!dry_run)
			fs_remove_tree(dir);
		free(dir);
	}
	if (d)
		closedir(d);
	return bytes;
}

void engine_trash_usage(size_t *folders, unsigned long long *bytes)
{
	DIR *d = opendir(TRASH_DIR);
	struct dirent *de;

	*folders = 0;
	*bytes = 0;
	while (d && (de = readdir(d))) {
		char *dir;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		dir = xstrfmt(TRASH_DIR "/%s", de->d_name);
		(*folders)++;
		*bytes += fs_tree_bytes(dir);
		free(dir);
	}
	if (d)
		closedir(d);
}
