/* The Pipefile schema: tables of the keys allowed at the top level, in
 * defaults, docker, kubernetes and resources, and the typed readers that
 * turn nodes into the model with one located error for anything else. */
#include "pipefile/internal.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

const char *const pipefile_stage_keys[K__NR] = {
	[K_CMD] = "cmd",
	[K_IMAGE] = "image",
	[K_EXECUTOR] = "executor",
	[K_NETWORK] = "network",
	[K_INPUTS] = "inputs",
	[K_OUTPUTS] = "outputs",
	[K_DATUMS] = "datums",
	[K_PARALLELISM] = "parallelism",
	[K_PARAMS] = "params",
	[K_ENV] = "env",
	[K_RESOURCES] = "resources",
	[K_RETRIES] = "retries",
	[K_TIMEOUT] = "timeout",
	[K_MATRIX] = "matrix",
	[K_KUBE] = "kubernetes",
};

#define BIT(k) (1ul << (k))
#define DEFAULTS_KEYS                                                          \
	(BIT(K_EXECUTOR) | BIT(K_IMAGE) | BIT(K_ENV) | BIT(K_NETWORK) |        \
	 BIT(K_RESOURCES) | BIT(K_RETRIES) | BIT(K_TIMEOUT) |                  \
	 BIT(K_PARALLELISM))
#define ALL_KEYS (~0ul)

enum {
	T_VERSION,
	T_DEFAULTS,
	T_PARAMS,
	T_DOCKER,
	T_KUBE,
	T_KEEP,
	T_STAGES,
	T__NR
};
static const char *const top_keys[T__NR] = {
	"version",    "defaults", "params", "docker",
	"kubernetes", "keep",	  "stages",
};

static const char *const executors[] = {"local", "docker", "kubernetes"};

void pipefile_where(const struct pf_where *w, struct strbuf *out)
{
	if (w->stage && w->section)
		strbuf_addf(out, "in '%s' of stage '%s'", w->section, w->stage);
	else if (w->stage)
		strbuf_addf(out, "in stage '%s'", w->stage);
	else if (w->defaults && w->section)
		strbuf_addf(out, "in '%s' of defaults", w->section);
	else if (w->defaults)
		strbuf_addstr(out, "in defaults");
	else if (w->section)
		strbuf_addf(out, "in '%s'", w->section);
	else
		strbuf_addstr(out, "at the top level");
}

static void describe(const struct ynode *n, struct strbuf *out)
{
	if (pipefile_yaml_is_null(n))
		strbuf_addstr(out, "empty");
	else if (n->kind == YNODE_SCALAR && n->nr <= 40)
		strbuf_addf(out, "'%s'", n->str);
	else if (n->kind == YNODE_SCALAR)
		strbuf_addf(out, "'%.37s...'", n->str);
	else
		strbuf_addstr(out,
			      n->kind == YNODE_SEQ ? "a list" : "a mapping");
}

int pipefile_bad_type(struct pf_ctx *c, const char *key, const struct ynode *n,
		      const struct pf_where *w, const char *want)
{
	struct strbuf where = STRBUF_INIT, got = STRBUF_INIT;

	pipefile_where(w, &where);
	describe(n, &got);
	pipefile_src_error(c->src, c->err, n->line, n->col,
			   "'%s' %s must be %s, not %s", key, where.buf, want,
			   got.buf);
	strbuf_release(&where);
	strbuf_release(&got);
	return -1;
}

int pipefile_get_string(struct pf_ctx *c, const char *key,
			const struct ynode *n, const struct pf_where *w,
			const char **out)
{
	if (n->kind != YNODE_SCALAR || !n->nr)
		return pipefile_bad_type(c, key, n, w, "a string");
	*out = n->str;
	return 0;
}

int pipefile_get_int(struct pf_ctx *c, const char *key, const struct ynode *n,
		     const struct pf_where *w, long long min, long long max,
		     long long *out)
{
	struct strbuf want = STRBUF_INIT;
	long long v;

	if (n->kind == YNODE_SCALAR && !pipefile_parse_int(n->str, &v) &&
	    v >= min && v <= max) {
		*out = v;
		return 0;
	}
	if (n->kind == YNODE_SCALAR && !pipefile_parse_int(n->str, &v) &&
	    v > max)
		strbuf_addf(&want, "a whole number from %lld to %lld", min,
			    max);
	else
		strbuf_addf(&want, "a whole number >= %lld", min);
	pipefile_bad_type(c, key, n, w, want.buf);
	strbuf_release(&want);
	return -1;
}

int pipefile_get_list(struct pf_ctx *c, const char *key, const struct ynode *n,
		      const struct pf_where *w,
		      const struct ynode *const **items, size_t *nr,
		      const struct ynode **one)
{
	if (n->kind == YNODE_MAP)
		return pipefile_bad_type(c, key, n, w,
					 "a string or a list of strings");
	if (n->kind == YNODE_SCALAR) {
		/* a string is a list of one */
		*one = n;
		*items = one;
		*nr = 1;
		return 0;
	}
	for (uint32_t i = 0; i < n->nr; i++)
		if (n->items[i]->kind != YNODE_SCALAR)
			return pipefile_bad_type(c, key, n->items[i], w,
						 "a list of strings");
	*items = (const struct ynode *const *)n->items;
	*nr = n->nr;
	return 0;
}

/* The table entry closest to key within a small edit distance. */
static const char *suggest(const char *key, const char *const *table, size_t n,
			   unsigned long allowed)
{
	const char *best = NULL;
	int best_d = 3;

	for (size_t i = 0; i < n; i++) {
		int max = strlen(table[i]) <= 3 ? 1 : 2;
		int d = pipefile_edit_distance(key, table[i], max);

		if ((allowed & BIT(i)) && d <= max && d < best_d) {
			best = table[i];
			best_d = d;
		}
	}
	return best;
}

int pipefile_dup_error(struct pf_ctx *c, const struct ynode *map,
		       const char *what, const struct pf_where *w)
{
	const struct ynode *k = map->items[2 * (map->dup - 1)];
	const struct ynode *first = map->items[2 * (map->dup_first - 1)];
	struct strbuf where = STRBUF_INIT, at = STRBUF_INIT;

	pipefile_where(w, &where);
	if (first->line == k->line)
		strbuf_addf(&at, "column %d", first->col);
	else
		strbuf_addf(&at, "line %d", first->line);
	pipefile_src_error(c->src, c->err, k->line, k->col,
			   "duplicate %s '%s' %s (first at %s)", what, k->str,
			   where.buf, at.buf);
	strbuf_release(&where);
	strbuf_release(&at);
	return -1;
}

static int unknown_key(struct pf_ctx *c, const struct ynode *k,
		       const char *const *table, size_t n,
		       unsigned long allowed, const struct pf_where *w)
{
	struct strbuf where = STRBUF_INIT;
	const char *hint = suggest(k->str, table, n, allowed);

	pipefile_where(w, &where);
	pipefile_src_error(c->src, c->err, k->line, k->col,
			   "unknown key '%s' %s%s%s%s", k->str, where.buf,
			   hint ? " (did you mean '" : "", hint ? hint : "",
			   hint ? "'?)" : "");
	strbuf_release(&where);
	return -1;
}

/* A key of the table that this mapping may not have. */
static int not_here(struct pf_ctx *c, const struct ynode *k,
		    const struct pf_where *w)
{
	if (w->stage)
		return pipefile_src_error(c->src, c->err, k->line, k->col,
					  "'%s' cannot be set in a stage, only "
					  "in the top-level '%s'",
					  k->str, w->section);
	if (!strcmp(k->str, "kubernetes"))
		return pipefile_src_error(c->src, c->err, k->line, k->col,
					  "'kubernetes' cannot be set in "
					  "defaults (set the defaults of "
					  "kubernetes stages in the top-level "
					  "'kubernetes')");
	return pipefile_src_error(c->src, c->err, k->line, k->col,
				  "'%s' cannot be set in defaults, only in a "
				  "stage",
				  k->str);
}

int pipefile_collect(struct pf_ctx *c, const struct ynode *map,
		     const char *const *table, size_t n, unsigned long allowed,
		     const struct pf_where *w, const struct ynode **vals,
		     const struct ynode **keys)
{
	if (map->dup)
		return pipefile_dup_error(c, map, "key", w);
	for (size_t i = 0; i < n; i++)
		vals[i] = keys[i] = NULL;
	for (uint32_t i = 0; i < map->nr; i++) {
		const struct ynode *k = map->items[2 * i];
		size_t j;

		for (j = 0; j < n && strcmp(k->str, table[j]); j++)
			;
		if (j == n)
			return unknown_key(c, k, table, n, allowed, w);
		if (!(allowed & BIT(j)))
			return not_here(c, k, w);
		/* null means "not set here"; the key stays, for messages */
		keys[j] = k;
		if (!pipefile_yaml_is_null(map->items[2 * i + 1]))
			vals[j] = map->items[2 * i + 1];
	}
	return 0;
}

static int is_env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
	      *s == '_'))
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_") == strlen(s);
}

static int check_env(struct pf_ctx *c, const struct ynode *env,
		     const struct pf_where *w)
{
	struct pf_where ew = *w;

	if (env->kind != YNODE_MAP)
		return pipefile_bad_type(c, "env", env, w,
					 "a mapping of names to values");
	ew.section = "env";
	if (env->dup)
		return pipefile_dup_error(c, env, "key", &ew);
	for (uint32_t i = 0; i < env->nr; i++) {
		const struct ynode *k = env->items[2 * i];
		const struct ynode *v = env->items[2 * i + 1];
		struct strbuf where = STRBUF_INIT;

		if (!is_env_name(k->str)) {
			pipefile_where(&ew, &where);
			pipefile_src_error(c->src, c->err, k->line, k->col,
					   "bad variable name '%s' %s (use "
					   "letters, digits and '_', not "
					   "starting with a digit)",
					   k->str, where.buf);
			strbuf_release(&where);
			return -1;
		}
		if (v->kind != YNODE_SCALAR)
			return pipefile_bad_type(c, k->str, v, &ew, "a string");
	}
	return 0;
}

int pipefile_get_enum(struct pf_ctx *c, const char *key, const struct ynode *n,
		      const struct pf_where *w, const char *const *table,
		      size_t nr, const char *list, const char **out)
{
	struct strbuf where = STRBUF_INIT;
	const char *hint;

	if (pipefile_get_string(c, key, n, w, out))
		return -1;
	for (size_t i = 0; i < nr; i++)
		if (!strcmp(n->str, table[i]))
			return 0;
	hint = suggest(n->str, table, nr, ALL_KEYS);
	pipefile_where(w, &where);
	pipefile_src_error(c->src, c->err, n->line, n->col,
			   "unknown %s '%s' %s (%s%s%s)", key, n->str,
			   where.buf, hint ? "did you mean '" : "use ",
			   hint ? hint : list, hint ? "'?" : "");
	strbuf_release(&where);
	return -1;
}

static int read_executor(struct pf_ctx *c, const struct ynode *n,
			 const struct pf_where *w, struct pf_settings *s)
{
	if (pipefile_get_enum(c, "executor", n, w, executors,
			      ARRAY_SIZE(executors),
			      "local, docker or kubernetes", &s->executor))
		return -1;
	s->executor_node = n;
	return 0;
}

/* A number with a unit, and the largest one a Pipefile may give (so that
 * no deadline, nor a limit an executor scales, overflows). */
struct unit_kind {
	int (*parse)(const char *, long long *);
	const char *what, *examples;
	long long max;
	const char *max_text;
};

static const struct unit_kind unit_timeout = {
	pipefile_parse_duration, "duration", "90s, 30m, 2h, 1h30m or 500ms",
	PIPEFILE_MAX_TIMEOUT_MS, "365d"};
static const struct unit_kind unit_cpu = {pipefile_parse_cpu, "cpu amount",
					  "2, 0.5 or 500m",
					  PIPEFILE_MAX_CPU_MILLI, "10000 cpus"};
static const struct unit_kind unit_memory = {
	pipefile_parse_size, "size", "512Mi, 4Gi, 1G or a number of bytes",
	PIPEFILE_MAX_MEMORY, "1Pi"};

/* A scalar parsed by u->parse; on failure, "bad WHAT 'x' for 'key' WHERE
 * (use e.g. ...)", past the bound "'key' WHERE is 'x', over the limit
 * of MAX". */
static int read_unit(struct pf_ctx *c, const char *key, const struct ynode *n,
		     const struct pf_where *w, const struct unit_kind *u,
		     long long *out)
{
	struct strbuf where = STRBUF_INIT, got = STRBUF_INIT;

	if (n->kind == YNODE_SCALAR && !u->parse(n->str, out) && *out <= u->max)
		return 0;
	pipefile_where(w, &where);
	describe(n, &got);
	if (n->kind == YNODE_SCALAR && !u->parse(n->str, out))
		pipefile_src_error(c->src, c->err, n->line, n->col,
				   "'%s' %s is %s, over the limit of %s", key,
				   where.buf, got.buf, u->max_text);
	else
		pipefile_src_error(c->src, c->err, n->line, n->col,
				   "bad %s %s for '%s' %s (use e.g. %s)",
				   u->what, got.buf, key, where.buf,
				   u->examples);
	strbuf_release(&where);
	strbuf_release(&got);
	return -1;
}

static const struct unit_kind unit_log = {pipefile_parse_size, "size",
					  "1Mi, 256Ki, or 0 for no cap",
					  PIPEFILE_MAX_MEMORY, "1Pi"};

enum { R_CPU, R_MEMORY, R_GPU, R__NR };
static const char *const resource_keys[R__NR] = {"cpu", "memory", "gpu"};

/* A stage's resources override the defaults' key by key. */
static int read_resources(struct pf_ctx *c, const struct ynode *n,
			  const struct pf_where *w, struct pf_resources *r)
{
	const struct ynode *v[R__NR], *k[R__NR];
	struct pf_where rw = *w;
	long long gpu;

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "resources", n, w,
					 "a mapping, e.g. { cpu: 2, memory: "
					 "4Gi }");
	rw.section = "resources";
	if (pipefile_collect(c, n, resource_keys, R__NR, ALL_KEYS, &rw, v, k))
		return -1;
	if (v[R_CPU] &&
	    read_unit(c, "cpu", v[R_CPU], &rw, &unit_cpu, &r->cpu_milli))
		return -1;
	if (v[R_MEMORY] && read_unit(c, "memory", v[R_MEMORY], &rw,
				     &unit_memory, &r->memory_bytes))
		return -1;
	if (v[R_GPU]) {
		if (pipefile_get_int(c, "gpu", v[R_GPU], &rw, 0,
				     PIPEFILE_MAX_GPU, &gpu))
			return -1;
		r->gpu = (int)gpu;
	}
	return 0;
}

static int read_counts(struct pf_ctx *c, const struct ynode **vals,
		       const struct pf_where *w, struct pf_settings *s)
{
	long long v;

	if (vals[K_PARALLELISM]) {
		if (pipefile_get_int(c, "parallelism", vals[K_PARALLELISM], w,
				     1, 1 << 20, &v))
			return -1;
		s->parallelism = (int)v;
	}
	if (vals[K_RETRIES]) {
		if (pipefile_get_int(c, "retries", vals[K_RETRIES], w, 0, 1000,
				     &v))
			return -1;
		s->retries = (int)v;
	}
	if (vals[K_TIMEOUT] && read_unit(c, "timeout", vals[K_TIMEOUT], w,
					 &unit_timeout, &s->timeout_ms))
		return -1;
	return 0;
}

int pipefile_read_settings(struct pf_ctx *c, const struct ynode **vals,
			   const struct pf_where *w, struct pf_settings *s)
{
	if (vals[K_EXECUTOR] && read_executor(c, vals[K_EXECUTOR], w, s))
		return -1;
	if (vals[K_IMAGE] &&
	    pipefile_get_string(c, "image", vals[K_IMAGE], w, &s->image))
		return -1;
	if (vals[K_NETWORK] &&
	    pipefile_get_string(c, "network", vals[K_NETWORK], w, &s->network))
		return -1;
	if (vals[K_RESOURCES] &&
	    read_resources(c, vals[K_RESOURCES], w, &s->res))
		return -1;
	if (vals[K_ENV] && check_env(c, vals[K_ENV], w))
		return -1;
	return read_counts(c, vals, w, s);
}

static int read_defaults(struct pf_ctx *c, const struct ynode *n)
{
	const struct ynode *vals[K__NR], *keys[K__NR];
	struct pf_where w = {.defaults = 1}, top = {0};

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "defaults", n, &top, "a mapping");
	if (pipefile_collect(c, n, pipefile_stage_keys, K__NR, DEFAULTS_KEYS,
			     &w, vals, keys) ||
	    pipefile_read_settings(c, vals, &w, &c->defaults))
		return -1;
	c->defaults.env = vals[K_ENV];
	return 0;
}

static int read_version(struct pf_ctx *c, const struct ynode *n)
{
	struct pf_where w = {0};
	long long v;

	if (pipefile_get_int(c, "version", n, &w, 1, 1 << 30, &v))
		return -1;
	if (v != 1)
		return pipefile_src_error(c->src, c->err, n->line, n->col,
					  "unsupported version %lld (this pipe "
					  "reads version 1)",
					  v);
	c->pf->version = 1;
	return 0;
}

static int read_params_file(struct pf_ctx *c, const struct ynode *n)
{
	struct pf_where w = {0};
	struct strbuf sb = STRBUF_INIT;
	const char *s = NULL, *why;

	if (pipefile_get_string(c, "params", n, &w, &s))
		return -1;
	if (path_normalize(s, &sb, &why) || !sb.len ||
	    sb.buf[sb.len - 1] == '/') {
		strbuf_release(&sb);
		return pipefile_src_error(c->src, c->err, n->line, n->col,
					  "'params' must name a file in the "
					  "workspace, not '%s'",
					  s);
	}
	free(c->pf->params_file);
	c->pf->params_file = strbuf_detach(&sb, NULL);
	return 0;
}

static int read_docker(struct pf_ctx *c, const struct ynode *n)
{
	static const char *const keys[] = {"network"};
	const struct ynode *v[1], *k[1];
	struct pf_where w = {.section = "docker"}, top = {0};
	const char *net = NULL;

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "docker", n, &top, "a mapping");
	if (pipefile_collect(c, n, keys, 1, ALL_KEYS, &w, v, k))
		return -1;
	if (v[0]) {
		if (pipefile_get_string(c, "network", v[0], &w, &net))
			return -1;
		free(c->pf->docker_network);
		c->pf->docker_network = xstrdup(net);
	}
	return 0;
}

enum { KEEP_JOBS, KEEP_DAYS, KEEP_LOG, KEEP__NR };
static const char *const keep_keys[KEEP__NR] = {"jobs", "days", "log"};

/* keep: { jobs: 100, days: 30, log: 1Mi } */
static int read_keep(struct pf_ctx *c, const struct ynode *n)
{
	const struct ynode *v[KEEP__NR], *k[KEEP__NR];
	struct pf_where w = {.section = "keep"}, top = {0};
	struct pf_keep *keep = &c->pf->keep;

	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "keep", n, &top,
					 "a mapping, e.g. { jobs: 100, days: "
					 "30 }");
	if (pipefile_collect(c, n, keep_keys, KEEP__NR, ALL_KEYS, &w, v, k))
		return -1;
	if (v[KEEP_JOBS] && pipefile_get_int(c, "jobs", v[KEEP_JOBS], &w, 1,
					     1 << 30, &keep->jobs))
		return -1;
	if (v[KEEP_DAYS] && pipefile_get_int(c, "days", v[KEEP_DAYS], &w, 1,
					     1 << 20, &keep->days))
		return -1;
	if (v[KEEP_LOG]) {
		if (read_unit(c, "log", v[KEEP_LOG], &w, &unit_log,
			      &keep->log_bytes))
			return -1;
		if (!keep->log_bytes)
			keep->log_bytes = -1;
	}
	return 0;
}

static int read_stages(struct pf_ctx *c, const struct ynode *n,
		       const struct ynode *key)
{
	struct pf_where w = {0};

	if (!n || pipefile_yaml_is_null(n) || (n->kind == YNODE_MAP && !n->nr))
		return pipefile_src_error(
			c->src, c->err, key->line, key->col,
			"'stages' is empty (add a stage with a 'cmd')");
	if (n->kind != YNODE_MAP)
		return pipefile_bad_type(c, "stages", n, &w,
					 "a mapping of stage names to stages");
	if (n->dup)
		return pipefile_dup_error(c, n, "stage", &w);
	for (uint32_t i = 0; i < n->nr; i++)
		if (pipefile_add_stage(c, n->items[2 * i], n->items[2 * i + 1]))
			return -1;
	return 0;
}

/* The root's keys but the stages, in their order, then whether there
 * are stages; v and k get the keys' values and keys. */
static int build_top(struct pf_ctx *c, const struct ynode *root,
		     const struct ynode **v, const struct ynode **k)
{
	struct pf_where w = {0};

	if (pipefile_collect(c, root, top_keys, T__NR, ALL_KEYS, &w, v, k))
		return -1;
	if (v[T_VERSION] && read_version(c, v[T_VERSION]))
		return -1;
	if (v[T_PARAMS] && read_params_file(c, v[T_PARAMS]))
		return -1;
	if (v[T_DOCKER] && read_docker(c, v[T_DOCKER]))
		return -1;
	if (v[T_KUBE] && pipefile_read_kube(c, v[T_KUBE]))
		return -1;
	if (v[T_KEEP] && read_keep(c, v[T_KEEP]))
		return -1;
	if (v[T_DEFAULTS] && read_defaults(c, v[T_DEFAULTS]))
		return -1;
	if (!k[T_STAGES])
		return pipefile_src_error(c->src, c->err, 0, 0,
					  "no 'stages' (add 'stages:' with at "
					  "least one stage)");
	return 0;
}

int pipefile_build(struct pf_ctx *c, const struct ynode *root)
{
	const struct ynode *v[T__NR], *k[T__NR];

	if (!root || pipefile_yaml_is_null(root))
		return pipefile_src_error(c->src, c->err, 0, 0,
					  "file is empty (it needs 'stages:'; "
					  "'pipe init' writes a starter)");
	if (root->kind != YNODE_MAP)
		return pipefile_src_error(c->src, c->err, root->line, root->col,
					  "the Pipefile must be a mapping with "
					  "'stages:', not %s",
					  root->kind == YNODE_SEQ ? "a list"
								  : "a string");
	if (build_top(c, root, v, k) ||
	    read_stages(c, v[T_STAGES], k[T_STAGES]))
		return -1;
	return pipefile_check_outputs(c, v[T_PARAMS] != NULL);
}

/* ---- streaming: each stage built as its YAML ends (pipefile_yaml_stream)
 *
 * The root's keys before "stages:" are read when the stages begin, each
 * stage as it ends; what a whole tree would have caught later (a root key
 * after the stages, a repeated root key or stage name, an empty stages
 * mapping) and any error at all make the caller parse again the whole way,
 * so messages and their order are the whole tree's. */
struct stream_build {
	struct pf_ctx *c;
	int began, params_set;
	size_t stages;
	uint64_t *names; /* stage names' hashes, open addressing, 0 empty */
	size_t names_cap;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

/* 0, or 1 when h was there (a repeated name, or two names alike). */
static int names_add(struct stream_build *b, uint64_t h)
{
	size_t mask, i;

	if (2 * (b->stages + 1) > b->names_cap) {
		uint64_t *old = b->names;
		size_t cap = b->names_cap;

		b->names_cap = cap ? 2 * cap : 1024;
		b->names = xcalloc(b->names_cap, sizeof(*b->names));
		for (size_t j = 0; j < cap; j++)
			if (old[j]) {
				mask = b->names_cap - 1;
				for (i = old[j] & mask; b->names[i];
				     i = (i + 1) & mask)
					;
				b->names[i] = old[j];
			}
		free(old);
	}
	mask = b->names_cap - 1;
	for (i = h & mask; b->names[i]; i = (i + 1) & mask)
		if (b->names[i] == h)
			return 1;
	b->names[i] = h;
	return 0;
}

static int stream_begin(void *arg, struct ynode *const *pairs, size_t nr)
{
	static const struct ynode empty = {.kind = YNODE_MAP};
	struct stream_build *b = arg;
	const struct ynode *v[T__NR], *k[T__NR];
	struct ynode **items = xcalloc(2 * nr + 3, sizeof(*items));
	struct ynode top = {.kind = YNODE_MAP, .nr = (uint32_t)(nr + 1)};
	int ret;

	if (b->began) { /* "stages:" twice: the whole tree says so */
		free(items);
		return 1;
	}
	memcpy(items, pairs, (2 * nr + 1) * sizeof(*items));
	items[2 * nr + 1] = (struct ynode *)&empty;
	top.items = items;
	ret = build_top(b->c, &top, v, k);
	b->params_set = v[T_PARAMS] != NULL;
	b->began = 1;
	free(items);
	return ret;
}

static int stream_stage(void *arg, const struct ynode *key,
			const struct ynode *val)
{
	struct stream_build *b = arg;

	if (key->kind != YNODE_SCALAR || names_add(b, name_hash(key->str)))
		return 1;
	b->stages++;
	return pipefile_add_stage(b->c, key, val);
}

int pipefile_build_streamed(struct pf_ctx *c, const struct pf_src *src)
{
	struct stream_build b = {.c = c};
	struct ystream ys = {stream_begin, stream_stage, &b};
	struct ydoc doc = {0};
	const struct ynode *root, *last;
	int ret = pipefile_yaml_stream(&doc, src, &ys, c->err);

	root = doc.root;
	if (ret == 0 && !b.began) { /* no stages mapping streamed */
		ret = pipefile_build(c, root);
		goto out;
	}
	last = !ret && root && root->kind == YNODE_MAP && root->nr
		       ? root->items[2 * (root->nr - 1)]
		       : NULL;
	if (!last || root->dup || strcmp(last->str, "stages") || !b.stages) {
		ret = 1;
		goto out;
	}
	ret = pipefile_check_outputs(c, b.params_set);
out:
	free(b.names);
	pipefile_yaml_release(&doc);
	return b.began && ret ? 1 : ret;
}
