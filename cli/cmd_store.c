/* The commands that read the versioned store: pipe log, inspect, get, and
 * pipe gc, which trims it. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "engine/retention.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Open the workspace read-only (or locked, for gc) and its store. */
static int open_store(struct cli *cli, int write, struct engine **e,
		      struct store **st)
{
	struct engine_options eo = {.write = write, .command = cli->argv[0]};
	struct error err = ERROR_INIT;

	*e = NULL;
	if (write)
		cli_hold_signals();
	if (engine_open(e, cli->pipefile_path, &eo, &err))
		return cli_fail(&err);
	if (access(PIPE_DIR "/store", F_OK) && !write) {
		error_set(&err, EXIT_USAGE,
			  "nothing is stored yet: run 'pipe run' first");
		engine_close(*e);
		*e = NULL;
		return cli_fail(&err);
	}
	if (engine_store(*e, st, &err)) {
		engine_close(*e);
		*e = NULL;
		return cli_fail(&err);
	}
	return 0;
}

static void format_time(long long t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* pipe log displaced: what pipe kept out of the user's way, newest first. */
static int log_displaced(struct store *st)
{
	struct store_displaced *v = NULL;
	struct error err = ERROR_INIT;
	size_t nr = 0;

	if (store_displaced_log(st, 0, &v, &nr, &err))
		return cli_fail(&err);
	if (!nr)
		fprintf(stderr, "nothing was displaced\n");
	for (size_t i = 0; i < nr; i++) {
		char when[32];

		format_time(v[i].time, when, sizeof(when));
		printf("%.12s  %s  displaced~%zu  %s\n", v[i].id, when, i,
		       v[i].why ? v[i].why : "");
		for (size_t k = 0; k < v[i].paths_nr; k++)
			printf("    %s\n", v[i].paths[k]);
	}
	store_displaced_free(v, nr);
	return 0;
}

int cmd_log(struct cli *cli)
{
	struct engine *e;
	struct store *st;
	struct store_commit *c = NULL;
	struct error err = ERROR_INIT;
	size_t nr = 0;
	int rc;

	if (cli->argc != 2 || cli->argv[1][0] == '-')
		return cli_usage_error(cli, "name one stage");
	if ((rc = open_store(cli, 0, &e, &st)))
		return rc;
	if (!strcmp(cli->argv[1], "displaced"))
		rc = log_displaced(st);
	else if (!engine_has_stage(e, cli->argv[1]))
		rc = error_set(&err, EXIT_USAGE, "no stage '%s' in %s",
			       cli->argv[1], cli->pipefile_path),
		rc = cli_fail(&err);
	else if (store_stage_log(st, cli->argv[1], 0, &c, &nr, &err))
		rc = cli_fail(&err);
	for (size_t i = 0; !rc && i < nr; i++) {
		char when[32];

		format_time(c[i].prov.started ? c[i].prov.started : c[i].time,
			    when, sizeof(when));
		printf("%.12s  %s  %-7s  %6.2fs  key %.12s", c[i].id, when,
		       c[i].prov.state ? c[i].prov.state : "?",
		       (double)c[i].prov.duration_ms / 1000, c[i].prov.key);
		if (c[i].prov.cached_from)
			printf("  (from %.12s)", c[i].prov.cached_from);
		putchar('\n');
	}
	store_commits_free(c, nr);
	engine_close(e);
	return rc;
}

static void print_prov(const char *id, const struct store_prov *p,
		       const char *indent)
{
	char when[32];

	format_time(p->started, when, sizeof(when));
	printf("%scommit    %s\n", indent, id);
	printf("%sstage     %s\n", indent, p->stage ? p->stage : "?");
	printf("%skey       %s\n", indent, p->key);
	printf("%sstate     %s", indent, p->state ? p->state : "?");
	if (p->cached_from)
		printf(" (from %s)", p->cached_from);
	printf("\n%sexecutor  %s\n", indent, p->executor ? p->executor : "?");
	if (p->image)
		printf("%simage     %s\n", indent, p->image);
	if (p->git_head)
		printf("%sgit head  %s%s\n", indent, p->git_head,
		       p->git_dirty ? " (dirty)" : "");
	printf("%sstarted   %s\n%sduration  %.3fs\n", indent, when, indent,
	       (double)p->duration_ms / 1000);
	if (p->datums_total)
		printf("%sdatums    %llu processed, %llu skipped, %llu total\n",
		       indent, p->datums_processed, p->datums_skipped,
		       p->datums_total);
	printf("%sbytes     %llu in, %llu out\n", indent, p->bytes_in,
	       p->bytes_out);
	for (size_t i = 0; i < p->inputs_nr; i++)
		printf("%sinput     %s  %s\n", indent, p->inputs[i].hash,
		       p->inputs[i].path);
	for (size_t i = 0; i < p->params_nr; i++)
		printf("%sparam     %s = %s\n", indent, p->params[i].key,
		       p->params[i].value);
}

/* A stage commit, then the commits it came from, indented. */
static int inspect_commit(struct store *st, const char *id, int depth,
			  struct error *err)
{
	struct store_prov p;
	char indent[64];
	int ret = 0;

	if (depth > 30)
		return 0;
	memset(indent, ' ', (size_t)depth * 2);
	indent[depth * 2] = '\0';
	if (store_read_prov(st, id, &p, err))
		return -1;
	print_prov(id, &p, indent);
	for (size_t i = 0; i < p.upstreams_nr && !ret; i++) {
		printf("%supstream  %s %s\n", indent, p.upstreams[i].stage,
		       p.upstreams[i].commit);
		ret = inspect_commit(st, p.upstreams[i].commit, depth + 1, err);
	}
	store_prov_release(&p);
	return ret;
}

/* The inputs git does not hold, as the run recorded them. */
static int print_run_inputs(struct store *st, const struct store_run *r,
			    struct error *err)
{
	struct store_manifest m;
	int rc = store_run_inputs(st, r, &m, err);

	if (rc < 0)
		return -1;
	printf("untracked %zu input file%s recorded%s\n", m.files_nr,
	       m.files_nr == 1 ? "" : "s", m.files_nr ? ":" : "");
	for (size_t i = 0; i < m.files_nr; i++)
		printf("input     %s  %llu  %s%s\n", m.files[i].hash,
		       m.files[i].size, m.files[i].path,
		       m.files[i].kind == STORE_CAS ? "  (cas)" : "");
	store_manifest_release(&m);
	return 0;
}

static int inspect_run(struct store *st, const char *id, struct error *err)
{
	struct store_run r;
	char when[32];
	int rc;

	if (store_read_run(st, id, &r, err))
		return -1;
	format_time(r.started ? r.started : r.time, when, sizeof(when));
	printf("run       %s\nstate     %s\nstarted   %s\nduration  %.3fs\n",
	       r.id, r.state ? r.state : "?", when,
	       (double)r.duration_ms / 1000);
	if (r.git_head)
		printf("git head  %s%s\n", r.git_head,
		       r.git_dirty ? " (dirty)" : "");
	else
		printf("git head  none (not in a git repository)\n");
	for (size_t i = 0; i < r.stages_nr; i++)
		printf("stage     %s %s\n", r.stages[i].stage,
		       r.stages[i].commit);
	rc = print_run_inputs(st, &r, err);
	store_run_release(&r);
	return rc;
}

int cmd_inspect(struct cli *cli)
{
	struct engine *e;
	struct store *st;
	struct error err = ERROR_INIT;
	char id[STORE_ID_SIZE];
	int rc, is_run = 0;

	if (cli->argc != 2 || cli->argv[1][0] == '-')
		return cli_usage_error(cli, "name one REF");
	if ((rc = open_store(cli, 0, &e, &st)))
		return rc;
	if (store_resolve(st, cli->argv[1], id, &is_run, &err) ||
	    (is_run ? inspect_run(st, id, &err)
		    : inspect_commit(st, id, 0, &err)))
		rc = cli_fail(&err);
	engine_close(e);
	return rc;
}

/* The commit `pipe get REF PATH` reads: STAGE@REF (as in `pachctl get
 * file repo@commit:path`) is STAGE's commit in the run REF, or REF itself
 * when it is a commit of STAGE; "displaced" alone is the newest displaced
 * commit that holds PATH. */
static int resolve_get(struct engine *e, struct store *st, const char *ref,
		       const char *path, char *id, struct error *err)
{
	const char *at = strchr(ref, '@');
	struct store_prov p;
	struct store_run run;
	char *stage;
	int is_run = 0, ret = -1;

	if (!strcmp(ref, "displaced")) {
		int rc = store_displaced_find(st, path, id, err);

		if (!rc)
			error_set(err, EXIT_USAGE,
				  "'%s' was never displaced: see "
				  "'pipe log displaced'",
				  path);
		return rc > 0 ? 0 : -1;
	}
	if (!at || engine_has_stage(e, ref))
		return store_resolve(st, ref, id, NULL, err);
	stage = xstrndup(ref, (size_t)(at - ref));
	if (store_resolve(st, at + 1, id, &is_run, err))
		goto out;
	if (is_run) {
		if (store_read_run(st, id, &run, err))
			goto out;
		for (size_t i = 0; i < run.stages_nr && ret; i++)
			if (!strcmp(run.stages[i].stage, stage)) {
				memcpy(id, run.stages[i].commit, STORE_ID_SIZE);
				ret = 0;
			}
		store_run_release(&run);
		if (ret)
			error_set(err, EXIT_USAGE, "run '%s' has no stage '%s'",
				  at + 1, stage);
		goto out;
	}
	if (store_read_prov(st, id, &p, err))
		goto out;
	if (p.stage && !strcmp(p.stage, stage))
		ret = 0;
	else
		error_set(err, EXIT_USAGE,
			  "'%s' is a commit of stage '%s', "
			  "not of '%s'",
			  at + 1, p.stage ? p.stage : "?", stage);
	store_prov_release(&p);
out:
	free(stage);
	return ret;
}

int cmd_get(struct cli *cli)
{
	struct engine *e;
	struct store *st;
	struct error err = ERROR_INIT;
	char id[STORE_ID_SIZE];
	const char *ref = NULL, *path = NULL, *outfile = NULL;
	int rc, fd = 1;

	for (int i = 1; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "-o") && i + 1 < cli->argc)
			outfile = cli->argv[++i];
		else if (cli->argv[i][0] == '-')
			return cli_usage_error(cli, "unknown option '%s'",
					       cli->argv[i]);
		else if (!ref)
			ref = cli->argv[i];
		else if (!path)
			path = cli->argv[i];
		else
			return cli_usage_error(cli, "too many arguments");
	}
	if (!ref || !path)
		return cli_usage_error(cli, "name a REF and a PATH");
	if ((rc = open_store(cli, 0, &e, &st)))
		return rc;
	if (resolve_get(e, st, ref, path, id, &err)) {
		rc = cli_fail(&err);
	} else {
		if (outfile) {
			/* never over a file: pipe did not write it */
			fd = open(outfile,
				  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				  0644);
			if (fd < 0 && errno == EEXIST)
				error_set(&err, EXIT_USAGE,
					  "'%s' exists: pipe get -o does not "
					  "replace a file; move it away or "
					  "name another",
					  outfile);
			else if (fd < 0)
				error_set(&err, EXIT_ENV,
					  "cannot create '%s': %s", outfile,
					  strerror(errno));
		}
		if (fd >= 0 && store_read_file_fd(st, id, path, fd, &err)) {
			if (outfile) {
				close(fd);
				unlink(outfile); /* the part pipe wrote */
			}
			fd = -2;
		}
		if (err.exit_code)
			rc = cli_fail(&err);
		if (outfile && fd >= 0)
			close(fd);
	}
	engine_close(e);
	return rc;
}

/* What pipe gc did besides the store: the job log and logs by keep:,
 * and what it leaves in .pipe/trash. */
static void print_retention(const struct jobs_pruned *jobs, int dry)
{
	unsigned long long trash_bytes;
	size_t trash;

	if (jobs->jobs || jobs->logs)
		printf("%s %zu job record%s and %zu log%s (%.1f MiB)\n",
		       dry ? "would drop" : "dropped", jobs->jobs,
		       jobs->jobs == 1 ? "" : "s", jobs->logs,
		       jobs->logs == 1 ? "" : "s",
		       (double)jobs->log_bytes / (1024 * 1024));
	engine_trash_usage(&trash, &trash_bytes);
	if (trash)
		printf("left %.1f MiB in " PIPE_DIR "/trash: outputs of %zu "
		       "stage%s moved aside by a killed run ('pipe run' "
		       "puts them back)\n",
		       (double)trash_bytes / (1024 * 1024), trash,
		       trash == 1 ? "" : "s");
}

int cmd_gc(struct cli *cli)
{
	struct engine *e;
	struct store *st;
	struct error err = ERROR_INIT;
	struct jobs_pruned jobs = {0};
	unsigned long long freed = 0;
	int rc, dry = 0;

	for (int i = 1; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "-n") ||
		    !strcmp(cli->argv[i], "--dry-run"))
			dry = 1;
		else
			return cli_usage_error(cli, "unknown option '%s'",
					       cli->argv[i]);
	}
	if ((rc = open_store(cli, 1, &e, &st)))
		return rc;
	if (store_gc(st, dry, &freed, &err) ||
	    engine_gc_jobs(e, dry, &jobs, &err)) {
		rc = cli_fail(&err);
	} else {
		freed += engine_gc_tmp(dry);
		printf("%s %.1f MiB (%llu bytes)\n",
		       dry ? "would free" : "freed",
		       (double)(freed + jobs.log_bytes) / (1024 * 1024),
		       freed + jobs.log_bytes);
		print_retention(&jobs, dry);
	}
	engine_close(e);
	return rc;
}
