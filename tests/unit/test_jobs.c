/* Unit tests for the job log (engine/jobs.c): records round-trip, and
 * jobs_prune keeps what `keep:` keeps — the newest N, none too old, none
 * whose commit is gone, always the newest of each stage — with their
 * logs, and drops logs no record names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/jobs.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define DAY 86400000LL
#define NOW (1800000000000LL)

struct ws {
	char *dir, *jobs, *logs;
};

static void ws_new(struct ws *w)
{
	char tmpl[] = "/tmp/pipe-jobs.XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	w->dir = xstrdup(tmpl);
	w->jobs = xstrfmt("%s/jobs", w->dir);
	w->logs = xstrfmt("%s/logs", w->dir);
	assert_int_equal(fs_mkdir_p(w->logs, 0755), 0);
}

static void ws_free(struct ws *w)
{
	fs_remove_tree(w->dir);
	free(w->dir);
	free(w->jobs);
	free(w->logs);
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int exists(const struct ws *w, const char *name)
{
	char *p = xstrfmt("%s/%s", w->logs, name);
	struct stat st;
	int rc = !lstat(p, &st);

	free(p);
	return rc;
}

/* Job n of stage: id "00000000000n" (hex), started days_ago, a log of
 * 100 bytes (a folder with one for datums). */
static void add(const struct ws *w, int n, const char *stage,
		const char *commit, long long days_ago, int datums)
{
	struct job_rec r;
	struct error err = ERROR_INIT;
	char *log;

	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%012x", n);
	r.stage = (char *)stage;
	r.commit = (char *)commit;
	r.state = (char *)(*commit ? "success" : "failed");
	r.log = datums ? xstrfmt(".pipe/logs/%s/", r.id)
		       : xstrfmt(".pipe/logs/%s.log", r.id);
	r.started_ms = NOW - days_ago * DAY;
	assert_int_equal(jobs_append(w->jobs, &r, &err), 0);
	if (datums) {
		char *dir = xstrfmt("%s/%s", w->logs, r.id);

		assert_int_equal(fs_mkdir_p(dir, 0755), 0);
		log = xstrfmt("%s/a.csv.log", dir);
		free(dir);
	} else {
		log = xstrfmt("%s/%s.log", w->logs, r.id);
	}
	put(log, "0123456789012345678901234567890123456789012345678901234567"
		 "89012345678901234567890123456789012345678\n");
	free(log);
	free(r.log);
}

static char *ids(const struct ws *w)
{
	struct job_rec *v;
	struct error err = ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;
	size_t nr;

	assert_int_equal(jobs_load(w->jobs, &v, &nr, &err), 0);
	for (size_t i = 0; i < nr; i++)
		strbuf_addf(&sb, "%s%d", i ? " " : "",
			    (int)strtol(v[i].id, NULL, 16));
	jobs_free(v, nr);
	return strbuf_detach(&sb, NULL);
}

static const char *const C1 = "1111111111111111111111111111111111111111";
static const char *const C2 = "2222222222222222222222222222222222222222";

static void test_keep_newest_and_each_stage(void **state)
{
	struct ws w;
	struct jobs_keep k = {.jobs = 3, .now_ms = NOW};
	struct jobs_pruned p;
	struct error err = ERROR_INIT;
	char *s;

	(void)state;
	ws_new(&w);
	add(&w, 1, "prep", C1, 0, 0); /* the only prep: kept */
	for (int i = 2; i <= 8; i++)
		add(&w, i, "train", i % 2 ? C2 : "", 0, 0);
	add(&w, 9, "each", C1, 0, 1);
	add(&w, 10, "each", C1, 0, 1);

	/* a dry run counts and changes nothing */
	assert_int_equal(jobs_prune(w.jobs, w.logs, &k, JOBS_DRY_RUN, &p, &err),
			 0);
	assert_int_equal(p.jobs, 6);
	assert_int_equal(p.logs, 6);
	assert_int_equal(p.log_bytes, 600);
	s = ids(&w);
	assert_string_equal(s, "1 2 3 4 5 6 7 8 9 10");
	free(s);

	assert_int_equal(jobs_prune(w.jobs, w.logs, &k, 0, &p, &err), 0);
	assert_int_equal(p.jobs, 6);
	s = ids(&w);
	assert_string_equal(s, "1 8 9 10");
	free(s);
	assert_true(exists(&w, "000000000001.log"));
	assert_false(exists(&w, "000000000007.log"));
	assert_true(exists(&w, "000000000008.log"));
	assert_true(exists(&w, "000000000009/a.csv.log"));

	/* nothing more to drop: the file is left as it is */
	assert_int_equal(jobs_prune(w.jobs, w.logs, &k, 0, &p, &err), 0);
	assert_int_equal(p.jobs, 0);
	ws_free(&w);
}

static void test_keep_days(void **state)
{
	struct ws w;
	struct jobs_keep k = {.jobs = 100, .days = 30, .now_ms = NOW};
	struct jobs_pruned p;
	struct error err = ERROR_INIT;
	char *s;

	(void)state;
	ws_new(&w);
	add(&w, 1, "a", C1, 90, 0);
	add(&w, 2, "a", C1, 31, 0);
	add(&w, 3, "a", C1, 29, 0);
	add(&w, 4, "b", C1, 400, 0); /* the newest of b, however old */
	assert_int_equal(jobs_prune(w.jobs, w.logs, &k, 0, &p, &err), 0);
	s = ids(&w);
	assert_string_equal(s, "3 4");
	free(s);
	assert_false(exists(&w, "000000000001.log"));
	assert_true(exists(&w, "000000000004.log"));
	ws_free(&w);
}

static int gone_c2(const char *commit, void *arg)
{
	(void)arg;
	return !strcmp(commit, C2);
}

/* A job whose commit no ref keeps goes; one that made no commit (failed)
 * stays while keep keeps it. Logs no record names go, other names stay. */
static void test_gone_and_orphans(void **state)
{
	struct ws w;
	struct jobs_keep k = {.jobs = 100, .now_ms = NOW, .gone = gone_c2};
	struct jobs_pruned p;
	struct error err = ERROR_INIT;
	char *s, *path;

	(void)state;
	ws_new(&w);
	add(&w, 1, "a", C2, 0, 0);
	add(&w, 2, "a", "", 0, 0);
	add(&w, 3, "a", C1, 0, 0);
	path = xstrfmt("%s/00000000abcd.log", w.logs); /* killed run's */
	put(path, "orphan\n");
	free(path);
	path = xstrfmt("%s/00000000abce", w.logs);
	assert_int_equal(fs_mkdir_p(path, 0755), 0);
	free(path);
	path = xstrfmt("%s/notes.txt", w.logs); /* not a log's name */
	put(path, "mine\n");
	free(path);
	assert_int_equal(jobs_prune(w.jobs, w.logs, &k, JOBS_ORPHANS, &p, &err),
			 0);
	assert_int_equal(p.jobs, 1);
	assert_int_equal(p.logs, 3);
	s = ids(&w);
	assert_string_equal(s, "2 3");
	free(s);
	assert_false(exists(&w, "000000000001.log"));
	assert_true(exists(&w, "000000000002.log"));
	assert_false(exists(&w, "00000000abcd.log"));
	assert_false(exists(&w, "00000000abce"));
	assert_true(exists(&w, "notes.txt"));
	ws_free(&w);
}

/* No record read (no file, or a foreign one): no log is an orphan. */
static void test_no_records_no_orphans(void **state)
{
	struct ws w;
	struct jobs_keep k = {.jobs = 1, .now_ms = NOW};
	struct jobs_pruned p;
	struct error err = ERROR_INIT;
	char *path;

	(void)state;
	ws_new(&w);
	path = xstrfmt("%s/00000000abcd.log", w.logs);
	put(path, "kept\n");
	free(path);
	assert_int_equal(jobs_prune(w.jobs, w.logs, &k, JOBS_ORPHANS, &p, &err),
			 0);
	put(w.jobs, "something else\n");
	assert_int_equal(jobs_prune(w.jobs, w.logs, &k, JOBS_ORPHANS, &p, &err),
			 0);
	assert_int_equal(p.logs, 0);
	assert_true(exists(&w, "00000000abcd.log"));
	ws_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep_newest_and_each_stage),
		cmocka_unit_test(test_keep_days),
		cmocka_unit_test(test_gone_and_orphans),
		cmocka_unit_test(test_no_records_no_orphans),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
