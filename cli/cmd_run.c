/* pipe run: bring the named stages (default: all) up to date. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "engine/run.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

int cmd_run(struct cli *cli)
{
	struct engine_options eo = {.write = 1, .command = "pipe run"};
	struct run_options ro = {0};
	struct run_summary sum;
	struct engine *e = NULL;
	struct error err = ERROR_INIT;
	char **targets = calloc((size_t)cli->argc + 1, sizeof(*targets));
	int rc;

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
	if (engine_open(&e, cli->pipefile_path, &eo, &err)) {
		free(targets);
		return cli_fail(&err);
	}
	rc = engine_run(e, &ro, &sum, &err);
	if (err.exit_code)
		rc = cli_fail(&err);
	engine_close(e);
	free(targets);
	return rc;
}
