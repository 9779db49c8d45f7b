/* Opening a workspace: Pipefile, graph, .pipe/ state, lock, executors. */
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/lock.h"
#include "engine/scan.h"
#include "engine/state.h"
#include "engine/statcache.h"
#include "executors/executor.h"
#include "pipefile/kubeconfig.h"
#include "pipefile/pipefile.h"
#include "store/recover.h"
#include "store/store.h"
#include "util/fs.h"
#include "util/kubecfg.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int engine_ignore_pipe_dir(struct error *err)
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

static int enter_workspace(struct engine *e, struct error *err)
{
	const char *dir = e->pf->dir && *e->pf->dir ? e->pf->dir : ".";
	char *cwd;

	if (chdir(dir))
		return error_set(err, EXIT_ENV, "cannot enter '%s': %s", dir,
				 strerror(errno));
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return error_set(err, EXIT_ENV,
				 "cannot get the workspace "
				 "path: %s",
				 strerror(errno));
	e->workspace = cwd;
	return 0;
}

static int open_state(struct engine *e, struct error *err)
{
	if (e->opt.write) {
		/* the first run adds .pipe/ to .gitignore (as pipe init does);
		 * later runs leave the user's file alone */
		int first = access(PIPE_DIR, F_OK) != 0;

		if (fs_mkdir_p(PIPE_DIR, 0755))
			return error_set(err, EXIT_ENV,
					 "cannot create '%s': %s", PIPE_DIR,
					 strerror(errno));
		e->lock_fd = lock_acquire(
			PIPE_DIR "/lock", e->opt.wait_lock,
			e->opt.command ? e->opt.command : "pipe run", err);
		if (e->lock_fd < 0)
			return -1;
		if (first && engine_ignore_pipe_dir(err))
			return -1;
		/* large files earlier runs committed without waiting for the
		 * disk: known to be on it, or checked after a restart */
		if (store_settle(PIPE_DIR, err))
			return -1;
	}
	if (state_load(&e->state, PIPE_DIR "/state", err))
		return -1;
	log_trace_phase("state loaded");
	if (statcache_open(&e->sc, PIPE_DIR "/statcache", err))
		return -1;
	log_trace_phase("stat cache loaded");
	return 0;
}

/* The graph, built on a second thread while the state file loads: each
 * takes 60 to 90 ms at 100,000 stages. Only where .pipe/ exists already,
 * so that a first run's graph error (a cycle, two writers of a path)
 * still comes before pipe creates anything. */
#define GRAPH_THREAD_MIN 1000

struct graph_job {
	struct engine *e;
	struct error err;
	int ret;
};

static void *build_graph(void *arg)
{
	struct graph_job *j = arg;

	j->ret = graph_build(&j->e->g, j->e->pf, &j->err);
	return NULL;
}

static int open_graph_and_state(struct engine *e, struct error *err)
{
	struct graph_job j = {e, ERROR_INIT, 0};
	pthread_t th;
	int ret;

	if (e->pf->nr < GRAPH_THREAD_MIN || access(PIPE_DIR, F_OK) ||
	    pthread_create(&th, NULL, build_graph, &j)) {
		if (graph_build(&e->g, e->pf, err))
			return -1;
		log_trace_phase("graph built");
		return open_state(e, err);
	}
	ret = open_state(e, err);
	pthread_join(th, NULL);
	log_trace_phase("graph built (beside the state)");
	if (j.ret) { /* its error first, as when built first */
		error_release(err);
		*err = j.err;
		return -1;
	}
	error_release(&j.err);
	return ret;
}

/* The project's git status, read from the Pipefile's folder in a child
 * process begun before anything loads: a status pass at 100,000 tracked
 * files takes 0.28 s and 46 MB, which were added to the run's time and
 * to its peak (134 MB) when read at the first commit. */
static void start_project(struct engine *e, const char *pipefile_path)
{
	const char *slash = strrchr(pipefile_path, '/');
	char *dir = !slash ? xstrdup(".")
		    : slash == pipefile_path
			    ? xstrdup("/")
			    : xstrndup(pipefile_path,
				       (size_t)(slash - pipefile_path));

	e->project = store_project_start(dir);
	free(dir);
}

int engine_open(struct engine **out, const char *pipefile_path,
		const struct engine_options *opt, struct error *err)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	error_init(&e->kube_err);

	*out = NULL;
	e->lock_fd = -1;
	e->opt = *opt;
	if (opt->project_early)
		start_project(e, pipefile_path);
	if (pipefile_load_cached(&e->pf, pipefile_path,
				 PIPE_DIR "/pipefile.cache", err))
		goto fail;
	log_trace_phase("Pipefile parsed");
	if (enter_workspace(e, err) || open_graph_and_state(e, err))
		goto fail;
	e->params = pipefile_params_new();
	e->image_ids = xcalloc(e->pf->nr + 1, sizeof(*e->image_ids));
	*out = e;
	return 0;
fail:
	engine_close(e);
	return -1;
}

static void close_engine(struct engine *e, int free_all)
{
	struct error err = ERROR_INIT;

	if (!e)
		return;
	for (size_t i = 0; i < e->execs_nr; i++)
		e->execs[i].ops->close(e->execs[i].ctx);
	if (e->sc && (e->opt.write || access(PIPE_DIR, W_OK) == 0) &&
	    statcache_save(e->sc, &err)) {
		log_verbose("could not save the stat cache: %s", err.msg.buf);
		error_release(&err);
	}
	log_trace_phase("stat cache saved");
	store_free(e->store);
	lock_release(e->lock_fd);
	e->store = NULL;
	e->lock_fd = -1;
	log_trace_phase("stat cache and store saved");
	if (!free_all) { /* the stat cache too: 100,000 entries */
		/* but not a child still reading the project's status */
		store_project_free(e->project);
		e->project = NULL;
		/* still reachable, so leak checkers stay quiet; volatile,
		 * or -O2 drops the store and valgrind calls it lost */
		static struct engine *volatile parked;

		parked = e;
		(void)parked;
		return;
	}
	statcache_free(e->sc);
	store_project_free(e->project);
	if (e->kube)
		kube_config_release(e->kube);
	free(e->kube);
	free(e->kube_opts);
	error_release(&e->kube_err);
	state_free(e->state);
	if (e->image_ids)
		for (size_t i = 0; i < e->pf->nr; i++)
			free(e->image_ids[i]);
	free(e->image_ids);
	if (e->params)
		pipefile_params_free(e->params);
	graph_free(e->g);
	pipefile_free(e->pf);
	free(e->workspace);
	free(e);
}

void engine_close(struct engine *e)
{
	close_engine(e, 1);
	log_trace_phase("closed");
}

/* Sanitizer builds free everything, so that leaks still show there. */
#if defined(__SANITIZE_ADDRESS__)
#define FREE_AT_EXIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FREE_AT_EXIT 1
#endif
#endif
#ifndef FREE_AT_EXIT
#define FREE_AT_EXIT 0
#endif

void engine_exit(struct engine *e)
{
	close_engine(e, FREE_AT_EXIT);
	log_trace_phase("closed");
}

const char *engine_executor_name(const struct engine *e, size_t stage)
{
	if (e->opt.executor)
		return e->opt.executor;
	return e->pf->stages[stage].executor ? e->pf->stages[stage].executor
					     : "local";
}

/* The cluster (kubeconfig; --context, else the Pipefile's, else the
 * current context) and the Pipefile's kubernetes: keys. */
static int kube_options(struct engine *e, struct exec_options *eo,
			struct error *err)
{
	const struct pf_kube *k = &e->pf->kube;

	(void)err;
	if (!e->kube_opts) {
		e->kube = xcalloc(1, sizeof(*e->kube));
		/* status and a fresh run need no cluster: a kubeconfig that
		 * cannot be read fails the first Job, not the open */
		if (kubeconfig_load(e->kube,
				    e->opt.context ? e->opt.context
						   : k->context,
				    &e->kube_err)) {
			kube_config_release(e->kube);
			free(e->kube);
			e->kube = NULL;
		}
		e->kube_opts = xcalloc(1, sizeof(*e->kube_opts));
		e->kube_opts->namespace = k->namespace;
		e->kube_opts->claim = k->claim;
		e->kube_opts->host_path = k->host_path;
		e->kube_opts->mount_path = k->mount_path;
		e->kube_opts->uid = k->uid;
		e->kube_opts->gid = k->gid;
		e->kube_opts->pull_secrets = k->image_pull_secrets.v;
	}
	eo->kube = e->kube;
	eo->kube_opts = e->kube_opts;
	eo->kube_err = &e->kube_err;
	return 0;
}

int engine_executor(struct engine *e, size_t stage, const struct executor **ops,
		    struct exec_ctx **ctx, struct error *err)
{
	const char *name = engine_executor_name(e, stage);
	const struct executor *x;
	struct exec_options eo = {0};

	for (size_t i = 0; i < e->execs_nr; i++) {
		if (!strcmp(e->execs[i].ops->name, name)) {
			*ops = e->execs[i].ops;
			*ctx = e->execs[i].ctx;
			return 0;
		}
	}
	x = executor_find(name);
	if (x && !strcmp(name, "kubernetes") && kube_options(e, &eo, err))
		return -1;
	if (!x)
		return error_set(err, EXIT_USAGE,
				 "stage '%s': executor '%s' is not available "
				 "in this build of pipe",
				 e->pf->stages[stage].name, name);
	if (e->execs_nr == ARRAY_SIZE(e->execs))
		return error_set(err, EXIT_FAILED, "too many executors");
	eo.stream = log_verbosity >= LOG_NORMAL;
	eo.before_output = e->before_output;
	eo.output_arg = e->output_arg;
	if (x->open(ctx, &eo, err))
		return -1;
	e->execs[e->execs_nr].ops = x;
	e->execs[e->execs_nr].ctx = *ctx;
	e->execs_nr++;
	*ops = x;
	return 0;
}

int engine_image_id(struct engine *e, size_t stage, char **out,
		    struct error *err)
{
	const struct pf_stage *s = &e->pf->stages[stage];
	const struct executor *ops;
	struct exec_ctx *ctx;
	struct strbuf id = STRBUF_INIT;

	*out = NULL;
	if (!s->image)
		return 0;
	if (!e->image_ids[stage]) {
		if (engine_executor(e, stage, &ops, &ctx, err))
			return -1;
		if (!ops->resolve_image)
			return 0;
		if (ops->resolve_image(ctx, s->image, &id, err))
			return -1;
		e->image_ids[stage] = strbuf_detach(&id, NULL);
	}
	*out = xstrdup(e->image_ids[stage]);
	return 0;
}

/* What the store may take from the stat cache instead of reading. */
static int known_hash(void *arg, const char *path, const struct stat *st,
		      struct hash128 *out)
{
	return statcache_known(arg, path, st, out);
}

int engine_store(struct engine *e, struct store **out, struct error *err)
{
	/* holding the workspace lock: locks in the store are a dead pipe's */
	if (!e->store && e->lock_fd >= 0)
		store_clear_stale_locks(PIPE_DIR);
	if (!e->store && store_open(&e->store, PIPE_DIR, err))
		return -1;
	/* the stat cache may open after the store (engine_open settles the
	 * store first) */
	if (e->sc)
		store_set_known(e->store, known_hash, e->sc);
	*out = e->store;
	return 0;
}

struct store_project *engine_project(struct engine *e)
{
	if (!e->project)
		e->project = store_project_read();
	store_project_wait(e->project);
	return e->project;
}

const char *engine_git_head(struct engine *e, int *dirty)
{
	return store_project_head(engine_project(e), dirty);
}

int engine_has_stage(const struct engine *e, const char *name)
{
	return pipefile_find_stage(e->pf, name) != NULL;
}
