/* pipe run: bring the named stages (default: all) up to date. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "engine/run.h"
#include "engine/status.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --json: the events keep stdout to themselves. They go to a copy of it;
 * fd 1 becomes stderr, so what the stages print (streamed to fd 1 by the
 * executors) cannot mix with them. NULL (and a message) when stdout
 * cannot be copied. */
static FILE *events_stream(void)
{
	int fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
	FILE *f;

	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		log_error("--json: cannot use stdout: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	fflush(stdout);
	dup2(2, 1);
	return f;
}

/* The report's path as the user meant it: pipe works in the workspace. */
static char *absolute(const char *path)
{
	char *cwd;
	char *out;

	if (path[0] == '/')
		return xstrdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return xstrdup(path);
	out = xstrfmt("%s/%s", cwd, path);
	free(cwd);
	return out;
}

int cmd_run(struct cli *cli)
{
	struct engine_options eo = {.write = 1, .command = "pipe run"};
	struct run_options ro = {.version = cli_version};
	struct run_summary sum;
	struct engine *e = NULL;
	struct error err = ERROR_INIT;
	char **targets = calloc((size_t)cli->argc + 1, sizeof(*targets));
	const char *report_arg = NULL;
	char *report = NULL;
	const char *pull = NULL;
	int json = 0, rc;

	ro.targets = targets;
	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i];

		if (!strcmp(a, "-n") || !strcmp(a, "--dry-run")) {
			ro.dry_run = 1;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--force")) {
			ro.force = 1;
		} else if (!strcmp(a, "-k") || !strcmp(a, "--keep-going")) {
			ro.keep_going = 1;
		} else if (!strcmp(a, "--no-cache")) {
			ro.no_cache = 1;
		} else if (!strcmp(a, "--wait")) {
			eo.wait_lock = 1;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if (!strcmp(a, "--pull")) {
			if (i + 1 >= cli->argc || !*cli->argv[i + 1]) {
				free(targets);
				return cli_usage_error(cli, "--pull needs a "
							    "remote");
			}
			pull = cli->argv[++i];
		} else if (!strcmp(a, "--report")) {
			if (i + 1 >= cli->argc || !*cli->argv[i + 1]) {
				free(targets);
				return cli_usage_error(cli, "--report needs "
							    "a file name");
			}
			report_arg = cli->argv[++i];
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			log_verbosity = LOG_QUIET;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			log_verbosity++;
		} else if (!strcmp(a, "-j") || !strncmp(a, "-j", 2) ||
			   !strcmp(a, "--jobs")) {
			const char *v = a[2] && a[1] == 'j' ? a + 2
					: i + 1 < cli->argc ? cli->argv[++i]
							    : NULL;
			long n = cli_parse_count(v);

			if (n < 1 || n > 100000) {
				free(targets);
				return cli_usage_error(
					cli,
					"-j needs a number of jobs >= 1, "
					"not '%s'",
					v ? v : "");
			}
			ro.jobs = (int)n;
		} else if (!strcmp(a, "--executor")) {
			if (i + 1 >= cli->argc) {
				free(targets);
				return cli_usage_error(cli, "--executor needs "
							    "a name");
			}
			eo.executor = cli->argv[++i];
		} else if (!strcmp(a, "--context")) {
			if (i + 1 >= cli->argc) {
				free(targets);
				return cli_usage_error(cli, "--context needs "
							    "a kubeconfig "
							    "context");
			}
			eo.context = cli->argv[++i];
		} else if (a[0] == '-' && a[1]) {
			free(targets);
			return cli_usage_error(cli, "unknown option '%s'", a);
		} else {
			targets[ro.targets_nr++] = cli->argv[i];
		}
	}
	if (ro.dry_run)
		eo.write = 0;
	eo.project_early = !ro.dry_run; /* its runs record the git head */
	if (report_arg) {
		ro.report = report = absolute(report_arg);
		/* before the run: a user's file there stops it, untouched */
		if (junit_replaceable(report_arg, &err)) {
			free(targets);
			free(report);
			return cli_fail(&err);
		}
	}
	if (json && !(ro.events = events_stream())) {
		free(targets);
		free(report);
		return EXIT_ENV;
	}
	if (engine_open(&e, cli->pipefile_path, &eo, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	if (pull) {
		struct store *st;

		/* what the remote's run-cache has, before planning */
		if (engine_store(e, &st, &err) ||
		    cli_remote_pull(st, pull, 0, NULL, &err)) {
			rc = cli_fail(&err);
			engine_close(e);
			goto out;
		}
	}
	rc = engine_run(e, &ro, &sum, &err);
	if (err.exit_code)
		rc = cli_fail(&err);
	engine_exit(e); /* the model is not freed: the process ends */
out:
	if (ro.events)
		fclose(ro.events);
	free(targets);
	free(report);
	return rc;
}
