/* pipe init: a starter Pipefile, .pipe/, and .pipe/ in .gitignore. */
#include "cli/cli.h"
#include "pipefile/pipefile.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Adds ".pipe/" to .gitignore unless a line already says so. */
static int ignore_pipe_dir(struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	int ret = 0;

	if (strbuf_read_file(&sb, ".gitignore", 0) && errno != ENOENT) {
		ret = error_set(err, EXIT_ENV, "cannot read '.gitignore': %s",
				strerror(errno));
		goto out;
	}
	for (const char *p = sb.buf; *p;) {
		const char *e = strchrnul(p, '\n');
		size_t n = (size_t)(e - p);

		if ((n == 6 && !memcmp(p, ".pipe/", 6)) ||
		    (n == 5 && !memcmp(p, ".pipe", 5)) ||
		    (n == 7 && !memcmp(p, "/.pipe/", 7)))
			goto out;
		p = *e ? e + 1 : e;
	}
	if (sb.len && sb.buf[sb.len - 1] != '\n')
		strbuf_addch(&sb, '\n');
	strbuf_addstr(&sb, ".pipe/\n");
	ret = fs_write_atomic(".gitignore", sb.buf, sb.len, err);
out:
	strbuf_release(&sb);
	return ret;
}

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
	if (ignore_pipe_dir(&err))
		return cli_fail(&err);
	return EXIT_OK;
}
