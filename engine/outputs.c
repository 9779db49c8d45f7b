/* Moving a stage's outputs aside, back, and checking them (see
 * engine/outputs.h). */
#include "engine/engine.h"
#include "engine/outputs.h"
#include "pipefile/pipefile.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *trash_path(const char *stage, size_t i)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, PIPE_DIR "/trash/%s/%zu", stage, i);
	return strbuf_detach(&sb, NULL);
}

/* A declared output without its trailing '/': a stage may have written a
 * file where it declared a folder, or the other way round. */
static char *plain_path(const char *declared)
{
	return xstrndup(declared, path_trimmed_len(declared));
}

int outputs_aside(struct engine *e, size_t stage, struct error *err)
{
	const struct pf_stage *st = &e->pf->stages[stage];
	struct strbuf dir = STRBUF_INIT;
	int ret = 0;

	strbuf_addf(&dir, PIPE_DIR "/trash/%s", st->name);
	fs_remove_tree(dir.buf);
	for (size_t i = 0; i < st->outputs.nr && !ret; i++) {
		char *out = plain_path(st->outputs.v[i].path);
		char *to = trash_path(st->name, i);
		struct stat sb;

		if (fs_mkdir_parent(out, 0755) && errno != EEXIST)
			ret = error_set(err, EXIT_FAILED,
					"cannot create the folder of '%s': %s",
					out, strerror(errno));
		else if (lstat(out, &sb) == 0 &&
			 (fs_mkdir_p(dir.buf, 0755) || rename(out, to)))
			ret = error_set(err, EXIT_FAILED,
					"cannot move '%s' aside: %s", out,
					strerror(errno));
		free(to);
		free(out);
	}
	strbuf_release(&dir);
	return ret;
}

void outputs_back(struct engine *e, size_t stage, int restore)
{
	const struct pf_stage *st = &e->pf->stages[stage];
	struct strbuf dir = STRBUF_INIT;

	for (size_t i = 0; restore && i < st->outputs.nr; i++) {
		char *out = plain_path(st->outputs.v[i].path);
		char *from = trash_path(st->name, i);

		if (access(from, F_OK) == 0) {
			/* what the failed command wrote there is its own */
			fs_remove_tree(out);
			if (rename(from, out))
				log_warn("cannot put '%s' back: %s", out,
					 strerror(errno));
		}
		free(from);
		free(out);
	}
	strbuf_addf(&dir, PIPE_DIR "/trash/%s", st->name);
	fs_remove_tree(dir.buf);
	strbuf_release(&dir);
}

/* Whether the trash folder holds anything: one look, not one per stage. */
static int trash_in_use(void)
{
	DIR *d = opendir(PIPE_DIR "/trash");
	struct dirent *de;
	int used = 0;

	if (!d)
		return errno != ENOENT; /* look stage by stage, as before */
	while (!used && (de = readdir(d)))
		used = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return used;
}

void outputs_recover(struct engine *e)
{
	if (!trash_in_use())
		return;
	for (size_t i = 0; i < e->pf->nr; i++) {
		const struct pf_stage *st = &e->pf->stages[i];
		struct strbuf dir = STRBUF_INIT;

		strbuf_addf(&dir, PIPE_DIR "/trash/%s", st->name);
		if (access(dir.buf, F_OK) == 0) {
			for (size_t k = 0; k < st->outputs.nr; k++) {
				char *from = trash_path(st->name, k);
				char *out = plain_path(st->outputs.v[k].path);
				struct stat sb;

				if (access(from, F_OK) == 0 &&
				    lstat(out, &sb) && rename(from, out))
					log_warn("cannot restore '%s'", out);
				free(from);
				free(out);
			}
			fs_remove_tree(dir.buf);
		}
		strbuf_release(&dir);
	}
}

/* A declared output that is not there: missing, or a file where a folder
 * was declared (access("out/") fails on a file). */
static int kind_error(const struct pf_stage *st, const char *out,
		      struct error *err)
{
	char *plain = plain_path(out);
	struct stat sb;
	int is_file = !lstat(plain, &sb) && !S_ISDIR(sb.st_mode);

	if (is_file)
		error_set(err, EXIT_FAILED,
			  "stage '%s' wrote a file at '%s', but declares a "
			  "folder '%s'",
			  st->name, plain, out);
	else
		error_set(err, EXIT_FAILED, "stage '%s' did not write '%s'",
			  st->name, out);
	free(plain);
	return -1;
}

int outputs_verify(struct engine *e, size_t stage, struct error *err)
{
	const struct pf_stage *st = &e->pf->stages[stage];

	for (size_t i = 0; i < st->outputs.nr; i++)
		if (access(st->outputs.v[i].path, F_OK))
			return kind_error(st, st->outputs.v[i].path, err);
	return 0;
}
