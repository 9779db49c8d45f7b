/* One `pipe` invocation's view of a workspace: the Pipefile, its graph,
 * the recorded state, the stat cache, the write lock, and the executors in
 * use. Commands open an engine, ask it things, and close it. */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stddef.h>

#include "util/error.h"

struct pipefile;
struct graph;
struct state;
struct statcache;
struct exec_ctx;
struct executor;
struct pf_params;
struct store_project;

#define PIPE_DIR ".pipe"

struct engine_options {
	int write;	      /* take the workspace lock (pipe run) */
	int wait_lock;	      /* --wait: block until the lock is free */
	const char *executor; /* --executor override, or NULL */
	const char *context;  /* --context: the kubeconfig context */
	const char *command;  /* "pipe run", for the lock message */
	/* read the project's git status in a child process while the
	 * Pipefile and the state load (engine_project then waits for it):
	 * its time hidden, its memory not on top of the run's */
	int project_early;
};

struct kube_config;
struct exec_kube;

struct open_executor {
	const struct executor *ops;
	struct exec_ctx *ctx;
};

struct engine {
	struct pipefile *pf;
	struct graph *g;
	struct state *state;
	struct statcache *sc;
	struct pf_params *params;
	char *workspace; /* absolute; the process's cwd while open */
	int lock_fd;	 /* -1 when not locked */
	struct engine_options opt;
	struct open_executor execs[4];
	struct kube_config *kube;    /* read when kubernetes opens */
	struct exec_kube *kube_opts; /* the Pipefile's, for it */
	struct error kube_err;	     /* why kube is NULL */
	size_t execs_nr;
	char **image_ids;    /* per stage, resolved lazily; NULL if none */
	struct store *store; /* opened on first use */
	void (*before_output)(void *arg); /* handed to executors */
	void *output_arg;
	struct store_project *project; /* its git status, read on first use */
	struct scan_ahead *ahead; /* a read-only pass's scans, done first */
	size_t ahead_nr;
};

struct store;

/* Put the outputs of REF (a stage commit or a run) back into the
 * workspace: the paths each stage declares now, and only those. Outputs
 * pipe did not write (or that changed since) make it fail naming them,
 * before anything is written; with force they are kept in the store first.
 * A restored stage is recorded fresh when its current inputs give the
 * commit's key (engine/checkout.c). */
int engine_checkout(struct engine *e, const char *ref, int force,
		    struct error *err);

/* True when the Pipefile has a stage called name. */
int engine_has_stage(const struct engine *e, const char *name);

/* The store (.pipe/store), opened on first use. */
int engine_store(struct engine *e, struct store **out, struct error *err);

/* The project's git repository, read in one status pass on first use
 * (store_project_read): the run's commits and its record share it. */
struct store_project *engine_project(struct engine *e);
/* Its HEAD ("" outside a git repository) and whether the work tree has
 * changes to tracked files. */
const char *engine_git_head(struct engine *e, int *dirty);

/* Add ".pipe/" to the project's .gitignore unless a line says so. */
int engine_ignore_pipe_dir(struct error *err);

/* Load the Pipefile at path, build its graph, chdir into its folder, open
 * .pipe/ (state, stat cache) and, with opt->write, take the lock. */
int engine_open(struct engine **out, const char *pipefile_path,
		const struct engine_options *opt, struct error *err);

/* Save the stat cache (best effort), release the lock, free everything. */
void engine_close(struct engine *e);
/* engine_close for a command about to exit: saves the stat cache and
 * releases the lock the same way, but leaves the memory to the exit
 * (freeing the model of a large pipeline is a good part of a no-op
 * `pipe status`). Sanitizer builds free everything. */
void engine_exit(struct engine *e);

/* The executor for a stage (opened on first use). */
int engine_executor(struct engine *e, size_t stage, const struct executor **ops,
		    struct exec_ctx **ctx, struct error *err);

/* The image id that enters a stage's key: resolved through its executor
 * (once per run) into *out (caller frees), or NULL for executors without
 * images. */
int engine_image_id(struct engine *e, size_t stage, char **out,
		    struct error *err);

/* The executor name a stage runs with (the --executor override, or the
 * stage's own). */
const char *engine_executor_name(const struct engine *e, size_t stage);

#endif
