/* pipe init: a starter Pipefile, .pipe/, and .pipe/ in .gitignore. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "pipefile/pipefile.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cmd_init(struct cli *cli)
{
	struct error err = ERROR_INIT;
	const char *path = cli->pipefile_path;

	if (cli->argc > 1)
		return cli_usage_error(cli, "unexpected argument '%s'",
				       cli->argv[1]);
	if (access(path, F_OK) == 0) {
		log_info("%s exists; leaving it as it is", path);
	} else {
		if (fs_write_atomic(path, pipefile_starter,
				    strlen(pipefile_starter), &err))
			return cli_fail(&err);
		log_info("wrote %s", path);
	}
	if (fs_mkdir_p(".pipe", 0755))
		return error_set(&err, EXIT_ENV, "cannot create '.pipe': %s",
				 strerror(errno)),
		       cli_fail(&err);
	if (engine_ignore_pipe_dir(&err))
		return cli_fail(&err);
	return EXIT_OK;
}
