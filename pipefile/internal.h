/* What the files of pipefile/ share and nothing above it sees: the YAML
 * node tree that pipefile/yaml.c builds, a string hash map, unit parsers,
 * and the located-error helper. */
#ifndef PIPEFILE_INTERNAL_H
#define PIPEFILE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pipefile/pipefile.h"
#include "util/error.h"
#include "util/strbuf.h"
#include "util/strmap.h"

/* Bounds on the node tree against hostile input (see pipefile.h). */
#define PIPEFILE_MAX_NODES 2000000u /* nodes written in the file */
#define PIPEFILE_ALIAS_RATIO 4u	    /* alias budget per written node */
#define PIPEFILE_MAX_MODEL_BYTES (256u << 20) /* expanded stages, estimate */

/* A source: the name used in messages and the text, for excerpts. */
struct pf_src {
	const char *name;
	const char *text;
	size_t len;
};

/* Set a located error (EXIT_USAGE) naming src->name:line:col and copying
 * the text of that line; returns -1. line 0 means no location. */
__attribute__((format(printf, 5, 6))) int pipefile_src_error(
	const struct pf_src *src, struct error *err, int line, int col,
	const char *fmt, ...);

/* The text of 1-based line (without its newline) and its length, or NULL
 * when the source has no such line. */
const char *pipefile_src_line(const struct pf_src *src, int line, size_t *len);

/* -------- pipefile/yaml.c: YAML text -> node tree -------- */

enum ynode_kind { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP };

enum ynode_style {
	YSTYLE_PLAIN,
	YSTYLE_SINGLE, /* 'quoted' */
	YSTYLE_DOUBLE, /* "quoted" */
	YSTYLE_BLOCK,  /* | or > */
};

/* One node. Aliases share the node they name, so the tree is a DAG;
 * merge keys (<<) are already applied to mappings. */
struct ynode {
	unsigned char kind;  /* enum ynode_kind */
	unsigned char style; /* enum ynode_style, scalars */
	int line, col;	     /* 1-based; col counts bytes */
	uint32_t nr;	     /* scalar: length; seq: items; map: pairs */
	uint32_t dup;	     /* map: pair index + 1 of a repeated key */
	uint32_t dup_first;  /* map: pair index + 1 of its first use */
	uint32_t weight;     /* nodes in the subtree, aliases expanded */
	union {
		char *str;	      /* scalar, NUL-terminated */
		struct ynode **items; /* seq: nr items; map: 2 * nr,
				       * key then value */
	};
};

struct pf_arena;

struct ydoc {
	struct ynode *root;	/* NULL for an empty file */
	struct pf_arena *arena; /* owns every node and string */
};

/* Parse text into doc (one document). On error returns -1 with a located
 * error: libyaml's own problem text, alias bombs, nesting, size. Either
 * way the caller releases doc. */
int pipefile_yaml_load(struct ydoc *doc, const struct pf_src *src,
		       struct error *err);
void pipefile_yaml_release(struct ydoc *doc);

/* The same, handing the root's "stages:" mapping over pair by pair as
 * each ends, so that its nodes go before the next stage's come (the tree
 * of 100,000 stages is 57 MB; one stage's is a few hundred bytes). When
 * the stages mapping starts, begin gets the root's pairs before it (keys
 * at even indices): 0 to stream. Each pair then goes to stage, and is
 * left out of the tree when it returns 0. The root's pairs after
 * "stages:" are kept as usual. Returns 0, -1 (located error), or 1 when a
 * hook returned non-zero: the caller parses again with
 * pipefile_yaml_load, which gives the error a whole tree would. A stage
 * with an anchor keeps its nodes (an alias may name them later). */
struct ystream {
	int (*begin)(void *arg, struct ynode *const *pairs, size_t nr);
	int (*stage)(void *arg, const struct ynode *key,
		     const struct ynode *val);
	void *arg;
};
int pipefile_yaml_stream(struct ydoc *doc, const struct pf_src *src,
			 const struct ystream *s, struct error *err);

/* True for a plain scalar that YAML reads as null: "", "~", "null". */
int pipefile_yaml_is_null(const struct ynode *n);

/* The column of byte offset off inside scalar n's value, when the value
 * stands verbatim in the source (plain or quoted, one line); else n->col. */
int pipefile_yaml_col_at(const struct ynode *n, const struct pf_src *src,
			 size_t off);

/* -------- pipefile/pipefile.c, for cache.c -------- */

/* The kubernetes: keys of every stage not on kubernetes (never written,
 * never freed). */
extern struct pf_kube_sched pipefile_no_sched;
/* The rare keys of every stage that sets none of them (all zero). */
extern struct pf_stage_rare pipefile_no_rare;

/* A model with no stages and the defaults, owning copies of name and dir
 * and text itself (malloc'd, or NULL). */
struct pipefile *pipefile_new(const char *name, const char *dir, char *text,
			      size_t len);
/* pipefile_parse taking text (malloc'd, len bytes, NUL after them): the
 * model keeps it, and it is freed on failure. */
int pipefile_parse_owned(struct pipefile **out, const char *name,
			 const char *dir, char *text, size_t len,
			 struct error *err);
/* pipefile_deserialize leaving pf->text NULL for the caller to set. */
int pipefile_deserialize_model(struct pipefile **out, const char *name,
			       const char *dir, const char *text, size_t len,
			       const char *stamp, const char *buf, size_t n);
/* Read the Pipefile at path (at most PIPEFILE_MAX_BYTES + 1 bytes) into
 * text, and give the folder holding it in *dir (the caller frees it). */
int pipefile_read(const char *path, struct strbuf *text, char **dir,
		  struct error *err);

/* -------- pipefile/units.c: numbers, durations, sizes, cpu -------- */

/* Each returns 0, or -1 when s is not well formed (or overflows). */
int pipefile_parse_int(const char *s, long long *out);
/* "90s", "30m", "2h", "1h30m", "500ms", "1.5h", "2d"; bare number: s */
int pipefile_parse_duration(const char *s, long long *ms);
/* "4Gi", "512Mi", "1G", "100K", "1.5Gi", bare bytes */
int pipefile_parse_size(const char *s, long long *bytes);
/* "2", "0.5", "500m" -> millicores; must be > 0 */
int pipefile_parse_cpu(const char *s, long long *milli);

/* Edit distance between a and b, stopping early above max (returns
 * max + 1 then). */
int pipefile_edit_distance(const char *a, const char *b, int max);

/* -------- pipefile/matrix.c: ${var} and matrix expansion -------- */

/* A name -> value binding used by substitution. */
struct pf_var {
	const char *name;
	const char *value;
};

/* Find the first ${name} in s that names no var, does not start with
 * PIPE_ and is not in env (sorted names). Returns its byte offset and
 * sets *ref_len to the length of the whole reference ("${x}"; 0 for an
 * unclosed "${"), or -1 when every reference is fine. "$${" escapes. */
long pipefile_find_undefined(const char *s, const struct pf_var *vars,
			     size_t nr, const char *const *env, size_t env_nr,
			     size_t *ref_len);

/* Append s to out with ${name} replaced by its value from vars, "$${"
 * turned into "${", and any other reference left as written. Returns 0,
 * or -1 (out partly filled) when out would grow past max bytes. */
int pipefile_substitute(struct strbuf *out, const char *s,
			const struct pf_var *vars, size_t nr, size_t max);

/* A stage's matrix, walked one combination at a time: first key slowest,
 * values in the order written. */
struct pf_matrix {
	size_t nr; /* keys; 0 for a stage without matrix */
	const struct ynode **keys, **vals; /* key and its list */
	size_t *idx;			   /* the current combination */
	struct pf_var *vars;		   /* the current bindings */
	size_t combos;			   /* stages it expands to (>= 1) */
	int started;
};

/* Read node (NULL: no matrix; its duplicate keys checked already) for
 * stage. Returns 0, or -1 with a located
 * error: not a mapping, a key that is not a name, an empty or non-scalar
 * value list, a value with characters unfit for a stage name, or more
 * than PIPEFILE_MAX_STAGES combinations. */
int pipefile_matrix_init(struct pf_matrix *m, const struct ynode *node,
			 const char *stage, const struct pf_src *src,
			 struct error *err);
/* Move to the next combination (the first one on the first call);
 * returns 0 when all have been seen. */
int pipefile_matrix_next(struct pf_matrix *m);
/* "base@k1=v1,k2=v2" for the current combination, or base. */
void pipefile_matrix_name(const struct pf_matrix *m, const char *base,
			  struct strbuf *out);
void pipefile_matrix_release(struct pf_matrix *m);

/* -------- pipefile/parse.c and stage.c: node tree -> model -------- */

/* Where a value sits, for messages: "at the top level", "in stage
 * 'train'", "in defaults", "in 'resources' of stage 'train'", "in
 * 'docker'". */
struct pf_where {
	const char *section; /* a key holding a mapping, or NULL */
	const char *stage;   /* NULL outside stages */
	int defaults;
};

void pipefile_where(const struct pf_where *w, struct strbuf *out);

/* What defaults give every stage, and a stage may override. */
struct pf_settings {
	const char *executor;		   /* "local" unless set */
	const struct ynode *executor_node; /* where it was set, or NULL */
	const char *image, *network;	   /* NULL unless set */
	const struct ynode *env;	   /* an env mapping, checked */
	struct pf_resources res;
	int parallelism, retries;
	long long timeout_ms;
};

/* The keys a stage may have; defaults take a subset. */
enum pf_key {
	K_CMD,
	K_IMAGE,
	K_EXECUTOR,
	K_NETWORK,
	K_INPUTS,
	K_OUTPUTS,
	K_DATUMS,
	K_PARALLELISM,
	K_PARAMS,
	K_ENV,
	K_RESOURCES,
	K_RETRIES,
	K_TIMEOUT,
	K_MATRIX,
	K_KUBE,
	K__NR
};

struct pf_ctx {
	struct pipefile *pf;
	const struct pf_src *src;
	struct error *err;
	struct pf_settings defaults;
	size_t model_bytes; /* a running estimate, against bombs */
};

/* Located errors about a value: each returns -1. */
int pipefile_bad_type(struct pf_ctx *c, const char *key, const struct ynode *n,
		      const struct pf_where *w, const char *want);
/* map->dup as "duplicate WHAT 'k' WHERE (first at line N)". */
int pipefile_dup_error(struct pf_ctx *c, const struct ynode *map,
		       const char *what, const struct pf_where *w);
/* Values of key: a non-empty string; a whole number in [min, max]. */
int pipefile_get_string(struct pf_ctx *c, const char *key,
			const struct ynode *n, const struct pf_where *w,
			const char **out);
int pipefile_get_int(struct pf_ctx *c, const char *key, const struct ynode *n,
		     const struct pf_where *w, long long min, long long max,
		     long long *out);
/* A string that is one of table[0..nr): else "unknown KEY 'x' WHERE (did
 * you mean 'y'?)", or "(use LIST)" when nothing is close. */
int pipefile_get_enum(struct pf_ctx *c, const char *key, const struct ynode *n,
		      const struct pf_where *w, const char *const *table,
		      size_t nr, const char *list, const char **out);
/* A string or a list of strings: *items points at nr scalar nodes (at
 * *one for a lone string). */
int pipefile_get_list(struct pf_ctx *c, const char *key, const struct ynode *n,
		      const struct pf_where *w,
		      const struct ynode *const **items, size_t *nr,
		      const struct ynode **one);
/* Check a mapping's duplicate keys and fill vals/keys (indexed by table
 * position) from it; unknown keys, and keys outside allowed (a bit per
 * table position), are errors. */
int pipefile_collect(struct pf_ctx *c, const struct ynode *map,
		     const char *const *table, size_t n, unsigned long allowed,
		     const struct pf_where *w, const struct ynode **vals,
		     const struct ynode **keys);
/* Read the settings keys (executor, image, network, parallelism,
 * resources, retries, timeout, env) found in vals into s. */
int pipefile_read_settings(struct pf_ctx *c, const struct ynode **vals,
			   const struct pf_where *w, struct pf_settings *s);

extern const char *const pipefile_stage_keys[K__NR];

/* Build the model's stage(s) for one entry of stages: (pipefile/stage.c) */
int pipefile_add_stage(struct pf_ctx *c, const struct ynode *key,
		       const struct ynode *val);

/* -------- pipefile/kube.c: the `kubernetes:` keys -------- */

/* The top-level `kubernetes:` mapping n into c->pf->kube: the cluster
 * (context, namespace, workspace), the pods' identity (runAsUser,
 * runAsGroup, imagePullSecrets) and the scheduling defaults of every
 * kubernetes stage (nodeSelector, tolerations, serviceAccountName). */
int pipefile_read_kube(struct pf_ctx *c, const struct ynode *n);

/* A stage's own `kubernetes:` (n: its value, NULL when not set; key:
 * where it was written) into out (empty, owned by the caller), and in
 * *set a PF_SCHED_ bit for each key it gives: those replace the same keys
 * of the top-level defaults. Refused on a stage that does not run on
 * kubernetes. */
#define PF_SCHED_NODE_SELECTOR 1u
#define PF_SCHED_TOLERATIONS 2u
#define PF_SCHED_SERVICE_ACCOUNT 4u
int pipefile_read_stage_kube(struct pf_ctx *c, const struct ynode *key,
			     const struct ynode *n, const char *stage,
			     const char *executor, struct pf_kube_sched *out,
			     unsigned *set);

/* Free what s holds (pipefile/pipefile.c) and empty it. */
void pipefile_sched_release(struct pf_kube_sched *s);
/* The stages' name index (pipefile_find_stage): open addressing over
 * stage numbers (index + 1; 0: empty), 4 bytes a slot where a strmap's
 * key and value pointers took 16 (issue #17). */
struct pf_names {
	uint32_t *slots;
	size_t nr, cap; /* cap: a power of 2, at least twice nr */
};

/* Empty the index of pf, with room for hint names. */
void pipefile_names_init(struct pipefile *pf, size_t hint);
/* Index stage at by its name; -1 when a stage of that name is in. */
int pipefile_names_add(struct pipefile *pf, size_t at);

/* r sets none of the rare keys; free one (not the shared one). */
int pipefile_rare_is_none(const struct pf_stage_rare *r);
void pipefile_rare_free(struct pf_stage_rare *r);

/* Build pf from the node tree. */
int pipefile_build(struct pf_ctx *c, const struct ynode *root);
/* The same from the text, each stage built as its YAML ends
 * (pipefile_yaml_stream): 0, -1 (c->err), or 1 when the whole tree must
 * be built instead (c->err may hold a message to drop). */
int pipefile_build_streamed(struct pf_ctx *c, const struct pf_src *src);
/* No output is, or holds, the Pipefile, a params file (the top-level one
 * when params_set) or the .gitignore: a located error. */
int pipefile_check_outputs(struct pf_ctx *c, int params_set);

#endif
