/* pipe validate: parse and check the Pipefile and its graph. */
#include "cli/cli.h"
#include "engine/graph.h"
#include "pipefile/pipefile.h"

#include <stdio.h>

int cmd_validate(struct cli *cli)
{
	struct pipefile *pf = NULL;
	struct graph *g = NULL;
	struct error err = ERROR_INIT;
	int rc;

	if (cli->argc > 1)
		return cli_usage_error(cli, "unexpected argument '%s'",
				       cli->argv[1]);
	rc = cli_load_pipefile(cli, &pf);
	if (rc)
		return rc;
	if (graph_build(&g, pf, &err)) {
		rc = cli_fail(&err);
	} else {
		size_t edges = 0;

		for (size_t i = 0; i < g->nr; i++)
			edges += g->nodes[i].deps_nr;
		printf("%s: ok: %zu stage%s, %zu edge%s\n", cli->pipefile_path,
		       pf->nr, pf->nr == 1 ? "" : "s", edges,
		       edges == 1 ? "" : "s");
	}
	graph_free(g);
	pipefile_free(pf);
	return rc;
}
