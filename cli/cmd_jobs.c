/* pipe jobs, pipe logs and pipe checkout: what ran, what it printed, and
 * putting an old result back. */
#include "cli/cli.h"
#include "cli/json.h"
#include "engine/engine.h"
#include "engine/jobs.h"
#include "engine/plan.h"
#include "engine/state.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void human_bytes(unsigned long long n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f%s" : "%.0f%s", v, units[u]);
}

static void print_job(const struct job_rec *j)
{
	char when[32], in[16], out[16], datums[48];
	time_t t = (time_t)(j->started_ms / 1000);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	human_bytes(j->bytes_in, in, sizeof(in));
	human_bytes(j->bytes_out, out, sizeof(out));
	if (j->total)
		snprintf(datums, sizeof(datums), "%llu+%llu/%llu", j->processed,
			 j->skipped, j->total);
	else
		snprintf(datums, sizeof(datums), "-");
	printf("%-12s  %-20s  %-12.12s  %s  %8.2fs  %-13s  %8s  %8s  %s\n",
	       j->id, j->stage, *j->commit ? j->commit : "-", when,
	       (double)j->duration_ms / 1000, datums, in, out, j->state);
}

static int load_jobs(struct cli *cli, struct engine **e, struct job_rec **v,
		     size_t *nr)
{
	struct engine_options eo = {0};
	struct error err = ERROR_INIT;

	if (engine_open(e, cli->pipefile_path, &eo, &err))
		return cli_fail(&err);
	if (jobs_load(PIPE_DIR "/jobs", v, nr, &err)) {
		engine_close(*e);
		return cli_fail(&err);
	}
	return 0;
}

int cmd_jobs(struct cli *cli)
{
	struct engine *e;
	struct job_rec *v = NULL;
	size_t nr = 0;
	int json = 0, rc;

	for (int i = 1; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "--json"))
			json = 1;
		else
			return cli_usage_error(cli, "unknown option '%s'",
					       cli->argv[i]);
	}
	if ((rc = load_jobs(cli, &e, &v, &nr)))
		return rc;
	if (json) {
		cli_json_jobs(v, nr);
	} else {
		printf("%-12s  %-20s  %-12s  %-19s  %9s  %-13s  %8s  %8s  %s\n",
		       "ID", "STAGE", "COMMIT", "STARTED", "DURATION", "DATUMS",
		       "IN", "OUT", "STATE");
		for (size_t i = nr; i-- > 0;)
			print_job(&v[i]);
	}
	jobs_free(v, nr);
	engine_close(e);
	return EXIT_OK;
}

static int cat_file(const char *path, const char *header)
{
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, path, 0)) {
		strbuf_release(&sb);
		return -1;
	}
	if (header)
		printf("== %s ==\n", header);
	fwrite(sb.buf, 1, sb.len, stdout);
	strbuf_release(&sb);
	return 0;
}

/* A datums job keeps one log per datum that printed something, named
 * after it. */
static int print_datum_logs(const char *dir, const char *datum)
{
	struct strvec files = STRVEC_INIT;
	struct strbuf want = STRBUF_INIT;
	int shown = 0;

	if (datum)
		jobs_datum_log_name(&want, datum);
	if (fs_list_tree(dir, &files) == 0) {
		for (size_t i = 0; i < files.nr; i++) {
			char *path = xstrfmt("%s/%s", dir, files.v[i]);
			char *name = jobs_datum_of_log(files.v[i]);

			if (!datum || !strcmp(files.v[i], want.buf))
				shown += !cat_file(path, datum	? NULL
							 : name ? name
								: files.v[i]);
			free(name);
			free(path);
		}
	}
	strvec_clear(&files);
	strbuf_release(&want);
	return shown ? 0 : -1;
}

int cmd_logs(struct cli *cli)
{
	struct engine *e;
	struct job_rec *v = NULL, *hit = NULL;
	struct error err = ERROR_INIT;
	const char *id = NULL, *datum = NULL;
	size_t nr = 0, hits = 0;
	int rc;

	for (int i = 1; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "--datum") && i + 1 < cli->argc)
			datum = cli->argv[++i];
		else if (cli->argv[i][0] == '-' || id)
			return cli_usage_error(cli, "unexpected '%s'",
					       cli->argv[i]);
		else
			id = cli->argv[i];
	}
	if (!id)
		return cli_usage_error(cli, "name a JOB (see 'pipe jobs')");
	if ((rc = load_jobs(cli, &e, &v, &nr)))
		return rc;
	for (size_t i = 0; i < nr; i++)
		if (!strncmp(v[i].id, id, strlen(id))) {
			hits++;
			hit = &v[i];
		}
	if (!hit)
		rc = error_set(&err, EXIT_USAGE,
			       "no job '%s' (see 'pipe jobs')", id);
	else if (hits > 1)
		rc = error_set(&err, EXIT_USAGE,
			       "job id '%s' is ambiguous: give more digits",
			       id);
	else if (hit->log[strlen(hit->log) - 1] == '/') {
		/* a log is made on a unit's first byte: none, no output */
		if (print_datum_logs(hit->log, datum))
			log_info("job '%s'%s%s printed nothing", hit->id,
				 datum ? ": datum " : "", datum ? datum : "");
	} else if (cat_file(hit->log, NULL)) {
		if (errno == ENOENT && !strcmp(hit->state, "cached"))
			log_info("job '%s' ran nothing: its outputs came from "
				 "the cache",
				 hit->id);
		else if (errno == ENOENT)
			log_info("job '%s' printed nothing", hit->id);
		else
			rc = error_set(&err, EXIT_ENV,
				       "cannot read the log of job '%s': %s",
				       hit->id, strerror(errno));
	}
	if (rc)
		rc = cli_fail(&err);
	jobs_free(v, nr);
	engine_close(e);
	return rc;
}

int cmd_checkout(struct cli *cli)
{
	struct engine_options eo = {.write = 1, .command = "pipe checkout"};
	struct engine *e;
	struct error err = ERROR_INIT;
	const char *ref = NULL;
	int rc = EXIT_OK, force = 0;

	for (int i = 1; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "-f") ||
		    !strcmp(cli->argv[i], "--force"))
			force = 1;
		else if (cli->argv[i][0] == '-')
			return cli_usage_error(cli, "unknown option '%s'",
					       cli->argv[i]);
		else if (!ref)
			ref = cli->argv[i];
		else
			return cli_usage_error(cli, "name one REF");
	}
	if (!ref)
		return cli_usage_error(cli, "name one REF");
	cli_hold_signals();
	if (engine_open(&e, cli->pipefile_path, &eo, &err))
		return cli_fail(&err);
	if (engine_checkout(e, ref, force, &err))
		rc = cli_fail(&err);
	engine_close(e);
	return rc;
}
