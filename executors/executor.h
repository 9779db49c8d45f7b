/* The one interface every executor implements (local, docker, kubernetes).
 * The engine hands units of work to an executor through this table and
 * never names a backend. An executor runs many units at once on the one
 * event loop of executors/loop.h, which waits for every executor's units
 * at once (loop_wait), counts them (loop_running) and stops them
 * (loop_cancel_all): an executor only starts its units, stops one when the
 * loop asks, and tells the loop when one has ended. */
#ifndef EXECUTORS_EXECUTOR_H
#define EXECUTORS_EXECUTOR_H

#include <stddef.h>

#include "util/error.h"

/* Where a Kubernetes pod may run (the stage's `kubernetes:` keys). */
struct exec_toleration {
	const char *key, *op, *value, *effect; /* NULL: unset */
	long long seconds;		       /* -1: unset */
};

struct exec_sched {
	char *const *node_selector; /* "key=value", NULL-terminated */
	const struct exec_toleration *tolerations;
	size_t tolerations_nr;
	const char *service_account; /* NULL: none */
};

/* One unit of work: a whole stage, or one datum of it. Every pointer is
 * borrowed and must stay valid until the unit is reported done. */
struct exec_unit {
	const char *stage;     /* stage name: labels, PIPE_STAGE */
	const char *label;     /* output prefix "[label]"; NULL: the stage */
	const char *workspace; /* absolute path; the unit's working folder */
	int shell;	       /* 1: cmd runs under /bin/sh -c (or split and
				* exec'd when it has no shell syntax);
				* 0: argv via execvp */
	const char *cmd;       /* shell == 1 */
	char *const *argv;     /* shell == 0; NULL-terminated */
	char *const *env;      /* "KEY=VALUE" added to the caller's
				* environment, NULL-terminated; may be NULL */
	const char *log_path;  /* absolute; the unit's output is kept here,
				* the file (and its folder) made or truncated
				* on the first byte: no output, no file;
				* NULL: not kept */
	long long log_max;     /* the log's cap in bytes, its head and tail
				* kept (unitlog.h); 0: 1 MiB; < 0: none */
	long long timeout_ms;  /* 0: none; then TERM, KILL after grace */

	/* For container executors; local ignores them. */
	const char *image;     /* resolved image (id or digest) */
	const char *network;   /* NULL: none */
	char *const *ro_paths; /* workspace-relative, mounted read-only */
	char *const *rw_paths; /* workspace-relative, mounted read-write */
	long long cpu_milli, memory_bytes;
	int gpu;

	/* For executors that retry and schedule by themselves (Kubernetes:
	 * own_retries in struct executor). */
	const char *job_id;		/* the job's id, for labels */
	int retries;			/* tries after the first */
	const struct exec_sched *sched; /* NULL: anywhere */

	void *data; /* the caller's; handed back in exec_done */
};

/* How a unit ended. */
struct exec_done {
	void *data;	 /* exec_unit.data */
	int exit_code;	 /* the command's exit status, or -1 */
	int term_signal; /* the signal that ended it, or 0 */
	unsigned timed_out : 1;
	unsigned cancelled : 1; /* stopped by loop_cancel_all() */
	unsigned oom_killed : 1;
	char *message; /* owned by the receiver (free()); why it could
			* not start or was killed, or NULL */
	long long duration_ms;
};

struct exec_options {
	int stream;   /* 1: copy output to pipe's stdout, each line
		       * prefixed "[label] "; 0: only the log */
	int grace_ms; /* between TERM and KILL; default 5000 */
	/* called before streamed output is written, so that the caller can
	 * clear a progress line; may be NULL */
	void (*before_output)(void *arg);
	void *output_arg;
	/* Kubernetes: the cluster (kubeconfig) and the Pipefile's
	 * kubernetes: keys; NULL for the other executors. */
	const struct kube_config *kube;
	const struct exec_kube *kube_opts;
	/* why there is no kube (no kubeconfig): the executor still opens,
	 * resolves images, and fails a unit's start with this */
	const struct error *kube_err;
};

/* The Pipefile's top-level kubernetes: keys, for the executor. */
struct exec_kube {
	const char *namespace;	   /* NULL: the context's, or "default" */
	const char *claim;	   /* workspace PVC; NULL: hostPath */
	const char *host_path;	   /* NULL: the workspace's own path */
	const char *mount_path;	   /* NULL: the workspace's own path */
	long long uid, gid;	   /* -1: pipe's own (non-root) */
	char *const *pull_secrets; /* NULL-terminated; may be NULL */
};

struct exec_ctx; /* an executor's private state */
struct kube_config;

struct executor {
	const char *name; /* "local", "docker", "kubernetes" */
	/* 1: the executor retries a failed unit itself (exec_unit.retries)
	 * and its units take no local slot (-j): the cluster runs them */
	int own_retries;

	/* Set up (connect to a daemon, read a kubeconfig). Errors with exit
	 * code EXIT_ENV when the backend is unreachable. */
	int (*open)(struct exec_ctx **out, const struct exec_options *opt,
		    struct error *err);

	/* Start a unit on the loop. Returns 0, or -1 when it could not be
	 * started (no done entry follows). A command that cannot be executed
	 * is started: loop_wait() reports it with exit code 127 (126: not
	 * executable) and a message. A unit ends when its main process does;
	 * what it left running (its process group, its container) is killed
	 * then, as a container's processes would be. */
	int (*start)(struct exec_ctx *ctx, const struct exec_unit *unit,
		     struct error *err);

	/* Start n units of one stage at once, at most parallelism of them
	 * running together (Kubernetes: one Indexed Job). Each is reported
	 * on its own. NULL: the engine starts them one at a time. */
	int (*start_batch)(struct exec_ctx *ctx, const struct exec_unit *units,
			   size_t n, int parallelism, struct error *err);

	/* Resolve an image name to the id that enters the stage key. NULL
	 * for executors without images. */
	int (*resolve_image)(struct exec_ctx *ctx, const char *image,
			     struct strbuf *id, struct error *err);

	/* Release everything; running units are cancelled first. */
	void (*close)(struct exec_ctx *ctx);
};

extern const struct executor executor_local;

/* The executor called name, or NULL. */
const struct executor *executor_find(const char *name);

#endif
