/* One entry of `stages:` -> one model stage, or one per combination of its
 * matrix: settings inherited from defaults, ${var} checked and
 * substituted, paths normalized and checked, datums rules, unique names. */
#include "pipefile/internal.h"
#include "util/glob.h"
#include "util/path.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* One merged env entry: defaults' and the stage's, sorted by name. */
struct env_entry {
	const struct ynode *key, *val;
	int rank; /* 0 defaults, 1 stage: the stage wins */
};

/* What an entry of stages: says, before expansion. */
struct stage_src {
	const struct ynode *key; /* the stage's name */
	const char *name;
	const struct ynode *vals[K__NR], *keys[K__NR];
	struct pf_settings set;
	const struct ynode *cmd_one, *const *cmd; /* argv words */
	size_t cmd_nr;
	const struct ynode *in_one, *const *in, *out_one, *const *out;
	size_t in_nr, out_nr;
	const struct ynode *par_one, *const *par;
	size_t par_nr;
	struct env_entry *env;
	const char **env_names; /* sorted, for ${NAME} checks */
	size_t env_nr;
	struct pf_matrix matrix;
	struct pf_kube_sched kube; /* its own `kubernetes:` keys */
	unsigned kube_set;	   /* which: PF_SCHED_ bits */
};

static int check_name(struct pf_ctx *c, const struct ynode *k)
{
	const char *s = k->str, *why = NULL;
	size_t ok = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
			      "vwxyz0123456789_.-");

	if (!*s)
		why = "is empty";
	else if (strchr(s, '@'))
		why = "uses '@', which is reserved for matrix stages "
		      "('sweep@lr=0.1')";
	else if (!strcmp(s, "runs") || !strcmp(s, "displaced"))
		why = "is reserved: REFs 'runs' and 'displaced' name pipe's "
		      "run records and the copies it kept of your files";
	else if (ok != k->nr)
		why = "may use only letters, digits, '_', '.' and '-'";
	else if (*s == '.' || *s == '-')
		why = "must start with a letter, a digit or '_'";
	else if (strstr(s, ".."))
		why = "may not contain '..'";
	else if (k->nr >= 5 && !strcmp(s + k->nr - 5, ".lock"))
		why = "may not end in '.lock'";
	if (!why)
		return 0;
	return pipefile_src_error(c->src, c->err, k->line, k->col,
				  "stage name '%s' %s", s, why);
}

static int is_blank(const char *s)
{
	return s[strspn(s, " \t\r\n")] == '\0';
}

static int read_cmd(struct pf_ctx *c, struct stage_src *s,
		    const struct pf_where *w)
{
	const struct ynode *n = s->vals[K_CMD], *k = s->keys[K_CMD];

	if (!k)
		return pipefile_src_error(c->src, c->err, s->key->line,
					  s->key->col,
					  "stage '%s' has no 'cmd' (add 'cmd:' "
					  "with the command to run)",
					  s->name);
	if (!n || (n->kind == YNODE_SCALAR && is_blank(n->str)) ||
	    (n->kind == YNODE_SEQ && !n->nr))
		return pipefile_src_error(c->src, c->err, n ? n->line : k->line,
					  n ? n->col : k->col,
					  "empty 'cmd' in stage '%s'", s->name);
	if (pipefile_get_list(c, "cmd", n, w, &s->cmd, &s->cmd_nr, &s->cmd_one))
		return -1;
	if (n->kind == YNODE_SEQ && !s->cmd[0]->nr)
		return pipefile_src_error(
			c->src, c->err, s->cmd[0]->line, s->cmd[0]->col,
			"empty program name in 'cmd' of stage '%s'", s->name);
	return 0;
}

static int cmp_env(const void *a, const void *b)
{
	const struct env_entry *x = a, *y = b;
	int r = strcmp(x->key->str, y->key->str);

	return r ? r : x->rank - y->rank;
}

static void add_env(struct stage_src *s, const struct ynode *map, int rank,
		    size_t *nr)
{
	for (uint32_t i = 0; map && i < map->nr; i++) {
		s->env[*nr].key = map->items[2 * i];
		s->env[*nr].val = map->items[2 * i + 1];
		s->env[*nr].rank = rank;
		(*nr)++;
	}
}

/* defaults.env overlaid with the stage's env, sorted by name. */
static void merge_env(struct stage_src *s)
{
	const struct ynode *d = s->set.env, *own = s->vals[K_ENV];
	size_t nr = 0, out = 0;

	s->env = xcalloc((d ? d->nr : 0) + (own ? own->nr : 0) + 1,
			 sizeof(*s->env));
	add_env(s, d, 0, &nr);
	add_env(s, own, 1, &nr);
	qsort(s->env, nr, sizeof(*s->env), cmp_env);
	for (size_t i = 0; i < nr; i++) {
		if (out &&
		    !strcmp(s->env[out - 1].key->str, s->env[i].key->str))
			out--; /* the later one (the stage's) wins */
		s->env[out++] = s->env[i];
	}
	s->env_nr = out;
	s->env_names = xcalloc(out + 1, sizeof(*s->env_names));
	for (size_t i = 0; i < out; i++)
		s->env_names[i] = s->env[i].key->str;
}

/* ${name} references that nothing defines are errors, found once per
 * stage on the text as written. */
static int check_refs(struct pf_ctx *c, const struct stage_src *s,
		      const struct ynode *n, const char *what)
{
	size_t len;
	long off = pipefile_find_undefined(n->str, s->matrix.vars, s->matrix.nr,
					   s->env_names, s->env_nr, &len);
	int col;

	if (off < 0)
		return 0;
	col = pipefile_yaml_col_at(n, c->src, (size_t)off);
	if (!len)
		return pipefile_src_error(c->src, c->err, n->line, col,
					  "unclosed '${' in %s of stage '%s'",
					  what, s->name);
	return pipefile_src_error(
		c->src, c->err, n->line, col,
		"undefined variable '%.*s' in %s of stage '%s' (define it "
		"in 'matrix' or 'env', or write '$%.*s' to pass it to the "
		"shell)",
		(int)len, n->str + off, what, s->name, (int)len, n->str + off);
}

static int check_all_refs(struct pf_ctx *c, const struct stage_src *s)
{
	const struct ynode *dat = s->vals[K_DATUMS];

	for (size_t i = 0; i < s->cmd_nr; i++)
		if (check_refs(c, s, s->cmd[i], "'cmd'"))
			return -1;
	for (size_t i = 0; i < s->in_nr; i++)
		if (check_refs(c, s, s->in[i], "'inputs'"))
			return -1;
	for (size_t i = 0; i < s->out_nr; i++)
		if (check_refs(c, s, s->out[i], "'outputs'"))
			return -1;
	if (dat && check_refs(c, s, dat, "'datums'"))
		return -1;
	for (size_t i = 0; i < s->env_nr; i++)
		if (check_refs(c, s, s->env[i].val, "'env'"))
			return -1;
	return 0;
}

static int check_image(struct pf_ctx *c, const struct stage_src *s)
{
	const struct ynode *at =
		s->vals[K_EXECUTOR] ? s->vals[K_EXECUTOR] : s->key;

	if (!strcmp(s->set.executor, "local") || s->set.image)
		return 0;
	return pipefile_src_error(c->src, c->err, at->line, at->col,
				  "stage '%s' runs on '%s' but has no 'image' "
				  "(set 'image' in the stage or in defaults)",
				  s->name, s->set.executor);
}

static int read_source(struct pf_ctx *c, struct stage_src *s)
{
	struct pf_where w = {.stage = s->name};
	const struct ynode *dat;

	s->set = c->defaults;
	if (pipefile_read_settings(c, s->vals, &w, &s->set) ||
	    check_image(c, s) ||
	    pipefile_read_stage_kube(c, s->keys[K_KUBE], s->vals[K_KUBE],
				     s->name, s->set.executor, &s->kube,
				     &s->kube_set) ||
	    read_cmd(c, s, &w))
		return -1;
	if (s->vals[K_INPUTS] &&
	    pipefile_get_list(c, "inputs", s->vals[K_INPUTS], &w, &s->in,
			      &s->in_nr, &s->in_one))
		return -1;
	if (s->vals[K_OUTPUTS] &&
	    pipefile_get_list(c, "outputs", s->vals[K_OUTPUTS], &w, &s->out,
			      &s->out_nr, &s->out_one))
		return -1;
	if (s->vals[K_PARAMS] &&
	    pipefile_get_list(c, "params", s->vals[K_PARAMS], &w, &s->par,
			      &s->par_nr, &s->par_one))
		return -1;
	dat = s->vals[K_DATUMS];
	if (dat && (dat->kind != YNODE_SCALAR || !dat->nr))
		return pipefile_bad_type(c, "datums", dat, &w,
					 "one glob, e.g. \"data/*.csv\"");
	merge_env(s);
	if (s->vals[K_MATRIX] && s->vals[K_MATRIX]->dup) {
		w.section = "matrix";
		return pipefile_dup_error(c, s->vals[K_MATRIX], "key", &w);
	}
	if (pipefile_matrix_init(&s->matrix, s->vals[K_MATRIX], s->name, c->src,
				 c->err))
		return -1;
	return check_all_refs(c, s);
}

static void release_source(struct stage_src *s)
{
	free(s->env);
	free(s->env_names);
	pipefile_matrix_release(&s->matrix);
	pipefile_sched_release(&s->kube);
}

/* The model's memory is counted as it is built, close to what malloc
 * really uses, so that no matrix or ${var} bomb can exhaust memory. */
#define COST(n) ((((size_t)(n)) + 16 + 15) & ~(size_t)15)

static char *own(struct pf_ctx *c, const char *str)
{
	size_t n = strlen(str);

	c->model_bytes += COST(n + 1);
	return xmemdupz(str, n);
}

static int too_big(struct pf_ctx *c, const struct stage_src *s)
{
	return pipefile_src_error(c->src, c->err, s->key->line, s->key->col,
				  "stage '%s' makes the Pipefile larger than "
				  "%u MiB in memory (too large a matrix?)",
				  s->name, PIPEFILE_MAX_MODEL_BYTES >> 20);
}

/* n's text with the current matrix values; caller frees. */
static int expand(struct pf_ctx *c, const struct stage_src *s,
		  const struct ynode *n, char **out)
{
	struct strbuf sb = STRBUF_INIT;
	size_t room = c->model_bytes < PIPEFILE_MAX_MODEL_BYTES
			      ? PIPEFILE_MAX_MODEL_BYTES - c->model_bytes
			      : 0;
	int rc = pipefile_substitute(&sb, n->str, s->matrix.vars, s->matrix.nr,
				     room);

	if (!rc)
		*out = own(c, sb.buf);
	strbuf_release(&sb);
	return rc ? too_big(c, s) : 0;
}

/* Some component of p is ".git". */
static int has_git_dir(const char *p)
{
	for (const char *c = p; *c;) {
		size_t n = strcspn(c, "/");

		if (n == 4 && !memcmp(c, ".git", 4))
			return 1;
		c += n;
		c += strspn(c, "/");
	}
	return 0;
}

/* What is wrong with a normalized path, or NULL; *detail says more about
 * a bad glob, at byte *off. */
static const char *path_problem(const char *p, int output, const char **detail,
				int *off)
{
	if (!*p)
		return "is the whole workspace (name a file or folder in it)";
	if (path_is_inside(p, ".pipe"))
		return "is inside '.pipe/', which holds pipe's own state";
	if (output && has_git_dir(p))
		return "names a '.git' folder, a git repository's own "
		       "files";
	if (!glob_has_magic(p))
		return NULL;
	if (output)
		return "is a glob (outputs are files, or folders ending in "
		       "'/')";
	if (glob_check(p, detail, off))
		return "is a bad glob";
	return NULL;
}

/* Normalize and check one path written at n (text: after substitution). */
static int make_path(struct pf_ctx *c, const struct ynode *n, const char *text,
		     const char *key, const char *stage, int output,
		     struct pf_path *p)
{
	struct strbuf sb = STRBUF_INIT;
	const char *problem, *detail = NULL;
	int off = 0, col = n->col;

	if (!*text)
		return pipefile_src_error(c->src, c->err, n->line, n->col,
					  "empty path in '%s' of stage '%s'",
					  key, stage);
	if (path_normalize(text, &sb, &detail)) {
		problem = strcmp(detail, "absolute path")
				  ? "escapes the workspace"
				  : "is an absolute path (paths are relative "
				    "to the Pipefile's folder)";
		detail = NULL;
	} else {
		problem = path_problem(sb.buf, output, &detail, &off);
	}
	if (problem) {
		if (detail && !strcmp(sb.buf, n->str))
			col = pipefile_yaml_col_at(n, c->src, (size_t)off);
		pipefile_src_error(c->src, c->err, n->line, col,
				   "'%s' in '%s' of stage '%s' %s%s%s", text,
				   key, stage, problem, detail ? ": " : "",
				   detail ? detail : "");
		strbuf_release(&sb);
		return -1;
	}
	p->line = n->line;
	p->col = n->col;
	p->is_glob = glob_has_magic(sb.buf);
	p->is_dir = sb.buf[sb.len - 1] == '/';
	p->path = own(c, sb.buf);
	strbuf_release(&sb);
	return 0;
}

static int add_paths(struct pf_ctx *c, const struct stage_src *s,
		     struct pf_stage *st, const struct ynode *const *items,
		     size_t nr, int output)
{
	struct pf_paths *list = output ? &st->outputs : &st->inputs;
	const char *key = output ? "outputs" : "inputs";

	if (!nr)
		return 0;
	list->v = xcalloc(nr, sizeof(*list->v));
	list->alloc = nr;
	c->model_bytes += COST(nr * sizeof(*list->v));
	for (size_t i = 0; i < nr; i++) {
		char *text;
		int rc;

		if (expand(c, s, items[i], &text))
			return -1;
		rc = make_path(c, items[i], text, key, st->name, output,
			       &list->v[list->nr]);
		free(text);
		if (rc)
			return -1;
		list->nr++;
	}
	return 0;
}

/* A datums stage writes exactly one output folder, which pipe assembles
 * from the datums' private folders. */
static int check_datums(struct pf_ctx *c, const struct stage_src *s,
			const struct pf_stage *st)
{
	const struct ynode *d = s->vals[K_DATUMS];

	if (st->outputs.nr == 1 && st->outputs.v[0].is_dir)
		return 0;
	if (st->outputs.nr == 1)
		return pipefile_src_error(
			c->src, c->err, st->outputs.v[0].line,
			st->outputs.v[0].col,
			"output '%s' of stage '%s' must be a folder: a stage "
			"with 'datums' writes one output folder (end it with "
			"'/')",
			st->outputs.v[0].path, st->name);
	return pipefile_src_error(c->src, c->err, d->line, d->col,
				  "stage '%s' has 'datums' and %u outputs: "
				  "it needs exactly one output folder, e.g. "
				  "outputs: [out/]",
				  st->name, st->outputs.nr);
}

static int add_datums(struct pf_ctx *c, const struct stage_src *s,
		      struct pf_stage *st)
{
	const struct ynode *d = s->vals[K_DATUMS];
	char *text;
	int rc;

	if (!d)
		return 0;
	if (expand(c, s, d, &text))
		return -1;
	rc = make_path(c, d, text, "datums", st->name, 0, &st->rare->datums);
	free(text);
	return rc ? -1 : check_datums(c, s, st);
}

static int bad_param(struct pf_ctx *c, const struct ynode *n, const char *stage)
{
	return pipefile_src_error(c->src, c->err, n->line, n->col,
				  "bad entry '%s' in 'params' of stage '%s' "
				  "(use 'key.path' or 'file.yaml:key.path')",
				  n->str, stage);
}

/* "pre.min_len" reads the default params file, "other.yaml:key" another
 * file of the workspace. */
static int read_param(struct pf_ctx *c, const struct ynode *n,
		      const char *stage, struct pf_param *p)
{
	const char *colon = strchr(n->str, ':'), *why;
	const char *key = colon ? colon + 1 : n->str;
	struct strbuf sb = STRBUF_INIT;
	char *file;
	int bad;

	if (!*key || strpbrk(key, " \t:"))
		return bad_param(c, n, stage);
	if (!colon) {
		p->file = xstrdup(c->pf->params_file);
	} else {
		file = xstrndup(n->str, (size_t)(colon - n->str));
		bad = path_normalize(file, &sb, &why) || !sb.len ||
		      sb.buf[sb.len - 1] == '/';
		free(file);
		if (bad) {
			strbuf_release(&sb);
			return bad_param(c, n, stage);
		}
		p->file = xstrdup(sb.buf);
		strbuf_release(&sb);
	}
	p->key = xstrdup(key);
	p->line = n->line;
	p->col = n->col;
	return 0;
}

static int add_params(struct pf_ctx *c, const struct stage_src *s,
		      struct pf_stage *st)
{
	if (!s->par_nr)
		return 0;
	st->rare->params = xcalloc(s->par_nr, sizeof(*st->rare->params));
	c->model_bytes += COST(s->par_nr * sizeof(*st->rare->params));
	for (size_t i = 0; i < s->par_nr; i++) {
		if (read_param(c, s->par[i], st->name, &st->rare->params[i]))
			return -1;
		c->model_bytes += COST(strlen(st->rare->params[i].file) + 1) +
				  COST(strlen(st->rare->params[i].key) + 1);
		st->rare->params_nr++;
	}
	return 0;
}

static int add_cmd(struct pf_ctx *c, const struct stage_src *s,
		   struct pf_stage *st)
{
	const struct ynode *n = s->vals[K_CMD];
	char *word;

	st->cmd_line = n->line;
	st->cmd_col = n->col;
	if (n->kind == YNODE_SCALAR) {
		st->cmd_kind = PF_CMD_SHELL;
		return expand(c, s, n, &st->cmd);
	}
	st->cmd_kind = PF_CMD_ARGV;
	st->rare->argv.v = xcalloc(s->cmd_nr + 1, sizeof(*st->rare->argv.v));
	st->rare->argv.alloc = s->cmd_nr + 1;
	c->model_bytes += COST((s->cmd_nr + 1) * sizeof(*st->rare->argv.v));
	for (size_t i = 0; i < s->cmd_nr; i++) {
		if (expand(c, s, s->cmd[i], &word))
			return -1;
		strvec_push_nodup(&st->rare->argv, word);
	}
	return 0;
}

static int add_env_matrix(struct pf_ctx *c, const struct stage_src *s,
			  struct pf_stage *st)
{
	const struct pf_matrix *m = &s->matrix;

	if (s->env_nr) {
		st->env.v = xcalloc(s->env_nr, sizeof(*st->env.v));
		st->env.alloc = s->env_nr;
		c->model_bytes += COST(s->env_nr * sizeof(*st->env.v));
	}
	for (size_t i = 0; i < s->env_nr; i++) {
		struct pf_kv *kv = &st->env.v[i];

		if (expand(c, s, s->env[i].val, &kv->value))
			return -1;
		kv->key = own(c, s->env[i].key->str);
		kv->line = s->env[i].key->line;
		kv->col = s->env[i].key->col;
		st->env.nr++;
	}
	if (!m->nr)
		return 0;
	st->rare->matrix.v = xcalloc(m->nr, sizeof(*st->rare->matrix.v));
	st->rare->matrix.alloc = m->nr;
	c->model_bytes += COST(m->nr * sizeof(*st->rare->matrix.v));
	for (size_t i = 0; i < m->nr; i++) {
		st->rare->matrix.v[i].key = own(c, m->vars[i].name);
		st->rare->matrix.v[i].value = own(c, m->vars[i].value);
		st->rare->matrix.v[i].line = m->keys[i]->line;
		st->rare->matrix.v[i].col = m->keys[i]->col;
	}
	st->rare->matrix.nr = m->nr;
	return 0;
}

static void copy_settings(struct pf_ctx *c, const struct pf_settings *set,
			  struct pf_stage *st)
{
	st->executor = own(c, set->executor);
	st->image = set->image ? own(c, set->image) : NULL;
	st->rare->network = set->network ? own(c, set->network) : NULL;
	st->parallelism = set->parallelism;
	st->rare->retries = set->retries;
	st->rare->timeout_ms = set->timeout_ms;
	st->rare->resources = set->res;
}

static void copy_kvs(struct pf_ctx *c, const struct pf_kvs *src,
		     struct pf_kvs *dst)
{
	if (!src->nr)
		return;
	dst->v = xcalloc(src->nr, sizeof(*dst->v));
	dst->alloc = dst->nr = src->nr;
	c->model_bytes += COST(src->nr * sizeof(*dst->v));
	for (size_t i = 0; i < src->nr; i++) {
		dst->v[i] = src->v[i];
		dst->v[i].key = own(c, src->v[i].key);
		dst->v[i].value = own(c, src->v[i].value);
	}
}

static char *own_or_null(struct pf_ctx *c, const char *s)
{
	return s ? own(c, s) : NULL;
}

static void copy_tolerations(struct pf_ctx *c, const struct pf_kube_sched *src,
			     struct pf_kube_sched *dst)
{
	if (!src->tolerations_nr)
		return;
	dst->tolerations =
		xcalloc(src->tolerations_nr, sizeof(*dst->tolerations));
	dst->tolerations_nr = src->tolerations_nr;
	c->model_bytes += COST(src->tolerations_nr * sizeof(*dst->tolerations));
	for (size_t i = 0; i < src->tolerations_nr; i++) {
		const struct pf_toleration *from = &src->tolerations[i];
		struct pf_toleration *to = &dst->tolerations[i];

		to->key = own_or_null(c, from->key);
		to->op = own_or_null(c, from->op);
		to->value = own_or_null(c, from->value);
		to->effect = own_or_null(c, from->effect);
		to->seconds = from->seconds;
	}
}

/* A kubernetes stage's scheduling: each key the stage gives, else the
 * top-level default, so that the executor reads only the stage. */
static void copy_kube(struct pf_ctx *c, const struct stage_src *s,
		      struct pf_stage *st)
{
	const struct pf_kube_sched *d = &c->pf->kube.defaults, *mine = &s->kube;

	if (strcmp(st->executor, "kubernetes"))
		return;
	st->kube = xcalloc(1, sizeof(*st->kube));
	c->model_bytes += COST(sizeof(*st->kube));
	copy_kvs(c,
		 s->kube_set & PF_SCHED_NODE_SELECTOR ? &mine->node_selector
						      : &d->node_selector,
		 &st->kube->node_selector);
	copy_tolerations(c, s->kube_set & PF_SCHED_TOLERATIONS ? mine : d,
			 st->kube);
	st->kube->service_account =
		own_or_null(c, s->kube_set & PF_SCHED_SERVICE_ACCOUNT
				       ? mine->service_account
				       : d->service_account);
}

static struct pf_stage *new_stage(struct pipefile *pf)
{
	struct pf_stage *st;

	ALLOC_GROW(pf->stages, pf->nr + 1, pf->alloc);
	st = &pf->stages[pf->nr++];
	memset(st, 0, sizeof(*st));
	st->kube = &pipefile_no_sched;
	st->rare = xcalloc(1, sizeof(*st->rare));
	strvec_init(&st->rare->argv);
	return st;
}

/* A stage that sets none of the rare keys shares pipefile_no_rare. */
static void share_rare(struct pf_ctx *c, struct pf_stage *st)
{
	if (pipefile_rare_is_none(st->rare)) {
		pipefile_rare_free(st->rare);
		st->rare = &pipefile_no_rare;
		return;
	}
	c->model_bytes += COST(sizeof(*st->rare));
}

/* The stage for the matrix's current combination. */
static int add_one(struct pf_ctx *c, const struct stage_src *s)
{
	struct strbuf name = STRBUF_INIT;
	struct pf_stage *st;
	size_t at = c->pf->nr;

	if (c->pf->nr >= PIPEFILE_MAX_STAGES)
		return pipefile_src_error(c->src, c->err, s->key->line,
					  s->key->col,
					  "more than %u stages (after matrix "
					  "expansion)",
					  PIPEFILE_MAX_STAGES);
	st = new_stage(c->pf);
	/* the stages array grows by half; the name index holds a 4-byte
	 * slot at most half full, and the 64 covers it */
	c->model_bytes += sizeof(*st) * 3 / 2 + 64;
	pipefile_matrix_name(&s->matrix, s->name, &name);
	st->name = own(c, name.buf);
	strbuf_release(&name);
	st->base = own(c, s->name);
	st->line = s->key->line;
	st->col = s->key->col;
	copy_settings(c, &s->set, st);
	copy_kube(c, s, st);
	if (add_cmd(c, s, st) || add_paths(c, s, st, s->in, s->in_nr, 0) ||
	    add_paths(c, s, st, s->out, s->out_nr, 1) || add_datums(c, s, st) ||
	    add_params(c, s, st) || add_env_matrix(c, s, st))
		return -1;
	share_rare(c, st);
	if (c->model_bytes > PIPEFILE_MAX_MODEL_BYTES)
		return too_big(c, s);
	if (pipefile_names_add(c->pf, at))
		return pipefile_src_error(
			c->src, c->err, s->vals[K_MATRIX]->line,
			s->vals[K_MATRIX]->col,
			"the matrix of stage '%s' makes two stages named '%s' "
			"(is a value repeated?)",
			s->name, st->name);
	return 0;
}

int pipefile_add_stage(struct pf_ctx *c, const struct ynode *key,
		       const struct ynode *val)
{
	struct stage_src s = {.key = key, .name = key->str};
	struct pf_where w = {.stage = key->str};
	int ret = -1;

	if (check_name(c, key))
		return -1;
	if (pipefile_yaml_is_null(val))
		return pipefile_src_error(
			c->src, c->err, key->line, key->col,
			"stage '%s' is empty (give it at least "
			"a 'cmd')",
			key->str);
	if (val->kind != YNODE_MAP)
		return pipefile_src_error(
			c->src, c->err, val->line, val->col,
			"stage '%s' must be a mapping with at "
			"least 'cmd', not %s",
			key->str,
			val->kind == YNODE_SEQ ? "a list" : "a string");
	if (pipefile_collect(c, val, pipefile_stage_keys, K__NR, ~0ul, &w,
			     s.vals, s.keys))
		return -1;
	if (read_source(c, &s))
		goto out;
	while (pipefile_matrix_next(&s.matrix))
		if (add_one(c, &s))
			goto out;
	ret = 0;
out:
	release_source(&s);
	return ret;
}

/* The params files the stages read (each once), and the top-level one
 * when params_set. */
static void params_files(const struct pipefile *pf, int params_set,
			 struct strvec *files)
{
	const char *last = NULL;

	if (params_set)
		strvec_push(files, pf->params_file);
	for (size_t i = 0; i < pf->nr; i++) {
		for (size_t j = 0; j < pf->stages[i].rare->params_nr; j++) {
			const char *f = pf->stages[i].rare->params[j].file;
			size_t k = 0;

			if (last && !strcmp(f, last))
				continue;
			while (k < files->nr && strcmp(files->v[k], f))
				k++;
			if (k == files->nr)
				strvec_push(files, f);
			last = f;
		}
	}
}

/* The file an output must not be or hold, or NULL: pipe's own inputs
 * (the Pipefile, the params files) and the .gitignore pipe edits. A run
 * moves a stage's outputs aside before it runs. */
static const char *reserved(const struct pipefile *pf, const char *out,
			    const struct strvec *params, const char **what)
{
	const char *name = strrchr(pf->path, '/');

	name = name ? name + 1 : pf->path;
	*what = "the Pipefile";
	if (path_is_inside(name, out))
		return name;
	*what = "the project's '.gitignore', which pipe edits";
	if (path_is_inside(".gitignore", out))
		return ".gitignore";
	*what = "a params file";
	for (size_t i = 0; i < params->nr; i++)
		if (path_is_inside(params->v[i], out))
			return params->v[i];
	return NULL;
}

static int reserved_error(struct pf_ctx *c, const struct pf_stage *st,
			  const struct pf_path *o, const char *file,
			  const char *what)
{
	if (path_trimmed_len(o->path) == strlen(file))
		return pipefile_src_error(c->src, c->err, o->line, o->col,
					  "'%s' in 'outputs' of stage '%s' is "
					  "%s",
					  o->path, st->name, what);
	return pipefile_src_error(c->src, c->err, o->line, o->col,
				  "'%s' in 'outputs' of stage '%s' holds "
				  "'%s', %s",
				  o->path, st->name, file, what);
}

int pipefile_check_outputs(struct pf_ctx *c, int params_set)
{
	const struct pipefile *pf = c->pf;
	struct strvec params = STRVEC_INIT;
	int ret = 0;

	params_files(pf, params_set, &params);
	for (size_t i = 0; i < pf->nr && !ret; i++) {
		const struct pf_stage *st = &pf->stages[i];

		for (size_t j = 0; j < st->outputs.nr && !ret; j++) {
			const struct pf_path *o = &st->outputs.v[j];
			const char *what, *file;

			file = reserved(pf, o->path, &params, &what);
			if (file)
				ret = reserved_error(c, st, o, file, what);
		}
	}
	strvec_clear(&params);
	return ret;
}
