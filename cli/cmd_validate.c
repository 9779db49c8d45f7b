/* pipe validate: parse and check the Pipefile and its graph. */
#include "cli/cli.h"
#include "pipefile/pipefile.h"

#include <stdio.h>

int cmd_validate(struct cli *cli)
{
	struct pipefile *pf = NULL;
	int rc;

	if (cli->argc > 1)
		return cli_usage_error(cli, "unexpected argument '%s'",
				       cli->argv[1]);
	rc = cli_load_pipefile(cli, &pf);
	if (rc)
		return rc;
	printf("%s: ok, %zu stage%s\n", cli->pipefile_path, pf->nr,
	       pf->nr == 1 ? "" : "s");
	pipefile_free(pf);
	return EXIT_OK;
}
