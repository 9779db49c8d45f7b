/* Stale lock files: git's lockfile protocol leaves NAME.lock behind when
 * the writer dies, and then refuses to update NAME. pipe's own workspace
 * lock tells when nobody else can be writing, so they can go. */
#include "store/recover.h"
#include "store/cas.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with_lock(const char *name)
{
	size_t n = strlen(name);

	return n > 5 && !strcmp(name + n - 5, ".lock");
}

static int sweep(const char *dir, int recurse)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int removed = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char *path;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		path = path_join(dir, de->d_name);
		if (lstat(path, &st) == 0) {
			if (S_ISDIR(st.st_mode) && recurse) {
				removed += sweep(path, 1);
			} else if (S_ISREG(st.st_mode) &&
				   ends_with_lock(de->d_name) &&
				   unlink(path) == 0) {
				log_verbose("removed stale lock '%s'", path);
				removed++;
			}
		}
		free(path);
	}
	closedir(d);
	return removed;
}

int store_clear_stale_locks(const char *pipe_dir)
{
	struct strbuf sb = STRBUF_INIT;
	int removed;

	strbuf_addf(&sb, "%s/store", pipe_dir);
	removed = sweep(sb.buf, 0);
	strbuf_addstr(&sb, "/refs");
	removed += sweep(sb.buf, 1);
	strbuf_release(&sb);
	return removed;
}

int store_settle(const char *pipe_dir, struct error *err)
{
	char *cas = xstrfmt("%s/store/cas", pipe_dir);
	int ret = cas_settle(cas, err);

	free(cas);
	return ret;
}
