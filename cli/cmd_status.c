/* pipe status: every stage fresh or stale, with the reasons; exit 1 when
 * anything is stale. */
#include "cli/cli.h"
#include "cli/json.h"
#include "engine/engine.h"
#include "engine/run.h"
#include "pipefile/pipefile.h"
#include "util/log.h"

#include <stdio.h>
#include <string.h>

static void print_text(const struct engine *e, const struct stage_status *v,
		       size_t nr)
{
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < nr; i++) {
		printf("%-5s %s\n", v[i].stale ? "stale" : "fresh",
		       e->pf->stages[v[i].stage].name);
		for (size_t k = 0; k < v[i].reasons.nr; k++) {
			strbuf_reset(&sb);
			reason_format(&v[i].reasons.v[k], &sb);
			printf("      %s\n", sb.buf);
		}
	}
	strbuf_release(&sb);
}

int cmd_status(struct cli *cli)
{
	struct engine_options eo = {0};
	struct engine *e = NULL;
	struct error err = ERROR_INIT;
	struct stage_status *v = NULL;
	size_t nr = 0;
	int json = 0, rc = EXIT_OK;

	for (int i = 1; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "--json"))
			json = 1;
		else
			return cli_usage_error(cli, "unknown option '%s'",
					       cli->argv[i]);
	}
	if (engine_open(&e, cli->pipefile_path, &eo, &err))
		return cli_fail(&err);
	if (engine_explain(e, NULL, NULL, &v, &nr, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	log_trace_phase("explained");
	if (json)
		cli_json_status(e, v, nr);
	else
		print_text(e, v, nr);
	for (size_t i = 0; i < nr; i++)
		if (v[i].stale)
			rc = EXIT_FAILED;
out:
	engine_status_free(v, nr);
	engine_exit(e);
	return rc;
}
