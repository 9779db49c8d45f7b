/* The Pipefile model: what pipefile_load() returns after parsing and
 * validating a Pipefile (SPEC §1). Everything above pipefile/ reads this
 * model and never sees YAML. Names in this module start with pf_ (types)
 * or pipefile_ (functions). */
#ifndef PIPEFILE_PIPEFILE_H
#define PIPEFILE_PIPEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/hash.h"
#include "util/strvec.h"

struct pf_names;
struct arena;

/* Largest Pipefile accepted, and other bounds against hostile input. */
#define PIPEFILE_MAX_BYTES (16u << 20) /* 16 MiB */
#define PIPEFILE_MAX_DEPTH 64	       /* nested collections */
/* Nodes reached through aliases: this many, plus 4 per node written. */
#define PIPEFILE_MAX_ALIAS_NODES 100000
#define PIPEFILE_MAX_STAGES 1000000 /* after matrix expansion */

/* One entry of inputs, outputs or datums. */
struct pf_path {
	char *path;	      /* normalized, workspace-relative, e.g.
			       * "data/raw/" (folder: trailing '/'),
			       * a glob ("data/raw/?.csv"), "train.py" */
	int line;	      /* where it was written, 1-based */
	unsigned col : 30;    /* 16 bytes a path, not 24 */
	unsigned is_glob : 1; /* has * ? or [ */
	unsigned is_dir : 1;  /* written with a trailing '/' */
};

struct pf_paths {
	struct pf_path *v;
	uint32_t nr, alloc; /* 32-bit: a stage's 16 bytes, not 24 */
};

/* A key and its string value: env entries, matrix values. */
struct pf_kv {
	char *key;
	char *value;
	int line, col; /* of the key */
};

struct pf_kvs {
	struct pf_kv *v;
	uint32_t nr, alloc; /* 32-bit: a stage's 16 bytes, not 24 */
};

/* One entry of a stage's `params:` list: "pre.min_len" (from the top-level
 * params file) or "other.yaml:key" (from another file). */
struct pf_param {
	char *file; /* params file, workspace-relative */
	char *key;  /* dotted key, e.g. "pre.min_len" */
	int line, col;
};

enum pf_cmd_kind {
	PF_CMD_SHELL, /* cmd: "string" -> /bin/sh -c (or split) */
	PF_CMD_ARGV,  /* cmd: [list] -> execvp, no shell */
};

/* The largest timeout and resources a Pipefile may ask for; past them
 * it is an error (so no deadline or executor limit overflows). */
#define PIPEFILE_MAX_TIMEOUT_MS (365LL * 24 * 3600 * 1000) /* 365d */
#define PIPEFILE_MAX_CPU_MILLI (10000LL * 1000)		   /* 10000 cpus */
#define PIPEFILE_MAX_MEMORY (1LL << 50)			   /* 1Pi */
#define PIPEFILE_MAX_GPU 1024

struct pf_resources {
	long long cpu_milli;	/* 2 -> 2000, "500m" -> 500; 0 = unset */
	long long memory_bytes; /* "4Gi" -> 4294967296; 0 = unset */
	int gpu;		/* 0 = unset */
};

/* A stage's Kubernetes scheduling keys (`kubernetes:` in the stage,
 * over the top-level `kubernetes:` defaults of the same keys). Not in the
 * stage's key: they choose where it runs, not what it computes. */
struct pf_toleration {
	char *key;	   /* NULL: any (operator Exists) */
	char *op;	   /* "Equal" or "Exists"; NULL: Equal */
	char *value;	   /* NULL: none */
	char *effect;	   /* NoSchedule, PreferNoSchedule, NoExecute;
			    * NULL: all */
	long long seconds; /* tolerationSeconds; -1: unset */
};

struct pf_kube_sched {
	struct pf_kvs node_selector; /* sorted by key */
	struct pf_toleration *tolerations;
	size_t tolerations_nr;
	char *service_account; /* serviceAccountName; NULL: none (and the
				* token is never mounted) */
};

/* The keys of a stage that few stages set (issue #17: 100,000 stages
 * of a cmd, inputs and outputs should not each carry room for them).
 * A stage that sets none points at the one shared pipefile_no_rare,
 * which is all zero; the model is read-only, so nothing writes it. */
struct pf_stage_rare {
	struct strvec argv;    /* PF_CMD_ARGV: the words */
	char *network;	       /* docker network; NULL: the docker default */
	struct pf_path datums; /* datums.path == NULL when not set */
	struct pf_param *params;
	size_t params_nr;
	struct pf_resources resources;
	long long timeout_ms; /* 0 = none */
	int retries;	      /* >= 0 */
	struct pf_kvs
		matrix; /* this expansion's values, in the order written */
};

struct pf_stage {
	char *name;    /* "train", or "sweep@depth=3,lr=0.1" */
	char *base;    /* name before matrix expansion ("sweep") */
	int line, col; /* of the stage's key under stages: */

	enum pf_cmd_kind cmd_kind;
	int parallelism; /* >= 1; default 1 */
	char *cmd;	 /* PF_CMD_SHELL: the string; PF_CMD_ARGV: NULL,
			  * the words in rare->argv */
	int cmd_line, cmd_col;

	char *executor; /* "local", "docker" or "kubernetes" */
	char *image;	/* NULL when none (local) */

	struct pf_paths inputs;
	struct pf_paths outputs;

	struct pf_kvs env;	    /* defaults.env overlaid with the stage's
				     * env, sorted by key */
	struct pf_stage_rare *rare; /* never NULL: argv, network, datums,
				     * params, resources, timeout, retries,
				     * matrix; one shared empty one when
				     * none is set */
	struct pf_kube_sched *kube; /* never NULL; executor kubernetes:
				     * each key the stage gives, else the
				     * top-level default's; on other
				     * executors one empty one all share
				     * (one pointer, not 56 bytes a stage) */
};

struct pf_kube {
	char *context;	    /* NULL: current-context */
	char *namespace;    /* NULL: "default" */
	char *claim;	    /* workspace PVC, or NULL */
	char *host_path;    /* workspace hostPath, or NULL */
	char *mount_path;   /* NULL: the workspace's own absolute path */
	long long uid, gid; /* runAsUser/runAsGroup; -1: unset (pipe's own
			     * uid and gid, or 65534 when pipe is root) */
	struct strvec image_pull_secrets; /* imagePullSecrets: names */
	struct pf_kube_sched defaults;	  /* stages' keys, as defaults */
};

/* `keep:` how much of its own history pipe keeps (README "Retention"). */
struct pf_keep {
	long long jobs;	     /* job records (and logs) pipe gc keeps: the
			      * newest this many; default PF_KEEP_JOBS */
	long long days;	     /* and none older than this; 0: no age limit */
	long long log_bytes; /* each unit's log is capped at this, its head
			      * and tail kept; default 1 MiB; -1: no cap */
};

#define PF_KEEP_JOBS 1000
#define PF_KEEP_LOG_BYTES (1LL << 20)

struct pipefile {
	char *path; /* as given on the command line, for messages */
	char *dir;  /* the workspace: the folder holding it */
	char *text; /* the source, for error excerpts; NULL when the model
		     * came from the cache (pipefile_error_at reads it again) */
	size_t text_len;
	char *text_path;	  /* private: absolute, to read it again */
	struct hash128 text_hash; /* private: of the text, when text is NULL */
	int version;		  /* 1 */
	char *params_file;	  /* default file for params keys:
				   * "params.yaml" unless set */
	char *docker_network;	  /* default "none" */
	struct pf_keep keep;
	struct pf_kube kube;
	struct pf_stage *stages; /* in file order; matrix expansions
				  * in order of their values */
	size_t nr, alloc;
	struct pf_names *names; /* stage name -> index, private */
	struct arena *arena;	/* private: when the model came from the
				 * cache, its stages' strings and arrays */
};

/* Read, parse and validate the Pipefile at path. On success *out is owned
 * by the caller (pipefile_free). On error returns -1, *out is NULL, and err
 * names path:LINE:COL with the offending line, exit code EXIT_USAGE (a
 * missing file too: "run 'pipe init'"; EXIT_ENV when an existing file
 * cannot be read). */
int pipefile_load(struct pipefile **out, const char *path, struct error *err);

/* pipefile_load, remembering the model in cache_name (a file name relative
 * to the Pipefile's folder, e.g. ".pipe/pipefile.cache"): when the cache
 * was written by this pipe binary for the same Pipefile content, the model
 * comes from it without parsing. The cache is written only when its folder
 * exists; failing to write it is no error. Same results as pipefile_load. */
int pipefile_load_cached(struct pipefile **out, const char *path,
			 const char *cache_name, struct error *err);

/* The cache's format, for tests: pipefile_serialize appends pf to out,
 * tagged with stamp (who wrote it); pipefile_deserialize rebuilds the model
 * when buf is intact, was written with the same stamp and for this text,
 * else returns -1 (no error message: the caller parses instead). */
struct strbuf;
void pipefile_serialize(const struct pipefile *pf, const char *stamp,
			struct strbuf *out);
int pipefile_deserialize(struct pipefile **out, const char *name,
			 const char *dir, const char *text, size_t len,
			 const char *stamp, const char *buf, size_t n);
/* Bumped whenever the parser's results or the cache format change. */
#define PIPE_CACHE_VERSION "pipefile-cache-3"

/* Same from memory; name is used in messages ("Pipefile"), dir is the
 * workspace ("." when NULL). */
int pipefile_parse(struct pipefile **out, const char *name, const char *dir,
		   const char *text, size_t len, struct error *err);

void pipefile_free(struct pipefile *pf);

/* The stage called name, or NULL. O(1): a hash lookup. */
const struct pf_stage *pipefile_find_stage(const struct pipefile *pf,
					   const char *name);

/* Set err to a located error in this Pipefile (path, line, col and the text
 * of that line), exit code EXIT_USAGE; returns -1. For checks done above
 * the parser, such as the graph's. */
__attribute__((format(printf, 5, 6))) int pipefile_error_at(
	const struct pipefile *pf, struct error *err, int line, int col,
	const char *fmt, ...);

/* Values of params keys, read from YAML or JSON params files (each file
 * parsed once per cache). */
struct pf_params;
struct pf_params *pipefile_params_new(void);
void pipefile_params_free(struct pf_params *pp);
/* The value of p as canonical text: a scalar as written ("5", "0.1",
 * "true"), a list or mapping in YAML flow form ("[1, 2]", "{a: 1, b: x}").
 * Errors (EXIT_USAGE): the file cannot be read or parsed, the key is not
 * in it ("param 'pre.min_len' is not in 'params.yaml'"). */
int pipefile_params_get(struct pf_params *pp, const struct pf_param *p,
			struct strbuf *out, struct error *err);

/* A starter Pipefile that validates (pipe init). */
extern const char pipefile_starter[];

#endif
