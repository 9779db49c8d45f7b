/* The module's front door: read a Pipefile, parse it into the model (see
 * pipefile.h), free it, find stages, and make located errors. */
#include "pipefile/internal.h"
#include "util/arena.h"
#include "util/hash.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char pipefile_starter[] =
	"# Pipefile: the stages of this project. `pipe run` runs each stage's\n"
	"# command when its command, inputs or upstream outputs changed, and\n"
	"# keeps every version of its outputs. `pipe validate` checks this "
	"file.\n"
	"version: 1\n"
	"\n"
	"# defaults:                   # inherited by every stage\n"
	"#   executor: local           # local | docker | kubernetes\n"
	"#   image: python:3.12-slim   # needed by docker and kubernetes\n"
	"#   env: { PYTHONHASHSEED: \"0\" }\n"
	"\n"
	"stages:\n"
	"  # Count the lines of every file in data/ into out/.\n"
	"  prepare:\n"
	"    # A string runs with /bin/sh -c; a list runs without a shell.\n"
	"    cmd: mkdir -p out && wc -l data/* > out/counts.txt\n"
	"    # Files, folders (ending in '/') and globs (\"data/**/*.csv\"),\n"
	"    # relative to this file's folder.\n"
	"    inputs: [data/]\n"
	"    # What the stage writes; stored as a versioned commit.\n"
	"    outputs: [out/]\n"
	"    # datums: \"data/*\"        # one run per match, in $PIPE_DATUM;\n"
	"    # parallelism: 4          # datums run at once\n"
	"    # timeout: 30m            # 90s, 30m, 2h, 1h30m\n"
	"\n"
	"  # Reading prepare's output makes report run after it.\n"
	"  report:\n"
	"    cmd: [sh, -c, \"sort -n out/counts.txt > report.txt\"]\n"
	"    inputs: [out/]\n"
	"    outputs: [report.txt]\n";

const char *pipefile_src_line(const struct pf_src *src, int line, size_t *len)
{
	const char *p = src->text, *end = src->text + src->len, *nl;

	if (line < 1)
		return NULL;
	for (int i = 1; i < line; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return NULL;
		p = nl + 1;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	*len = (size_t)((nl ? nl : end) - p);
	if (*len && p[*len - 1] == '\r')
		(*len)--;
	return p;
}

static int vsrc_error(const struct pf_src *src, struct error *err, int line,
		      int col, const char *fmt, va_list ap)
{
	struct strbuf msg = STRBUF_INIT;
	char *text = NULL;
	const char *s;
	size_t len;

	strbuf_vaddf(&msg, fmt, ap);
	s = pipefile_src_line(src, line, &len);
	/* a megabyte-long line makes a useless excerpt: keep the location */
	if (s && len <= 1024)
		text = xmemdupz(s, len);
	error_set_at(err, EXIT_USAGE, src->name, s ? line : 0, s ? col : 0,
		     text, "%s", msg.buf);
	free(text);
	strbuf_release(&msg);
	return -1;
}

int pipefile_src_error(const struct pf_src *src, struct error *err, int line,
		       int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsrc_error(src, err, line, col, fmt, ap);
	va_end(ap);
	return -1;
}

/* The text of a model read from the cache, which keeps only its hash:
 * read again for an excerpt, and used only when it is still the text the
 * model was made from. NULL otherwise (caller frees). */
static char *text_again(const struct pipefile *pf)
{
	struct strbuf sb = STRBUF_INIT;
	struct hash128 h;

	if (!pf->text_path ||
	    strbuf_read_file(&sb, pf->text_path, pf->text_len + 1) < 0 ||
	    sb.len != pf->text_len) {
		strbuf_release(&sb);
		return NULL;
	}
	hash_buf(sb.buf, sb.len, &h);
	if (!hash_equal(&h, &pf->text_hash)) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, NULL);
}

int pipefile_error_at(const struct pipefile *pf, struct error *err, int line,
		      int col, const char *fmt, ...)
{
	char *again = pf->text ? NULL : text_again(pf);
	struct pf_src src = {pf->path, pf->text ? pf->text : again,
			     pf->text_len};
	struct strbuf msg = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (src.text) {
		vsrc_error(&src, err, line, col, fmt, ap);
	} else {
		/* the file changed since: the place without the excerpt */
		strbuf_vaddf(&msg, fmt, ap);
		error_set_at(err, EXIT_USAGE, pf->path, line, col, NULL, "%s",
			     msg.buf);
	}
	va_end(ap);
	strbuf_release(&msg);
	free(again);
	return -1;
}

struct pipefile *pipefile_new(const char *name, const char *dir, char *text,
			      size_t len)
{
	struct pipefile *pf = xcalloc(1, sizeof(*pf));

	pf->path = xstrdup(name);
	pf->dir = xstrdup(dir ? dir : ".");
	pf->text = text;
	pf->text_len = len;
	pf->version = 1;
	pf->params_file = xstrdup("params.yaml");
	pf->docker_network = xstrdup("none");
	pf->keep.jobs = PF_KEEP_JOBS;
	pf->keep.log_bytes = PF_KEEP_LOG_BYTES;
	pf->kube.uid = pf->kube.gid = -1;
	strvec_init(&pf->kube.image_pull_secrets);
	pf->names = xcalloc(1, sizeof(*pf->names));
	pipefile_names_init(pf, 0);
	return pf;
}

int pipefile_parse(struct pipefile **out, const char *name, const char *dir,
		   const char *text, size_t len, struct error *err)
{
	struct pf_src src = {name, text, len};

	*out = NULL;
	if (len > PIPEFILE_MAX_BYTES)
		return pipefile_src_error(&src, err, 0, 0,
					  "file is larger than %u MiB",
					  PIPEFILE_MAX_BYTES >> 20);
	return pipefile_parse_owned(out, name, dir, xmemdupz(text, len), len,
				    err);
}

/* The model owns the text from here: one copy of it, not two. */
static void ctx_init(struct pf_ctx *c, const char *name, const char *dir,
		     char *text, size_t len, const struct pf_src *src,
		     struct error *err)
{
	memset(c, 0, sizeof(*c));
	c->pf = pipefile_new(name, dir, text, len);
	c->src = src;
	c->err = err;
	c->defaults.executor = "local";
	c->defaults.parallelism = 1;
}

int pipefile_parse_owned(struct pipefile **out, const char *name,
			 const char *dir, char *text, size_t len,
			 struct error *err)
{
	struct pf_src src = {name, text, len};
	struct ydoc doc = {0};
	struct pf_ctx c = {0};
	int ret;

	*out = NULL;
	if (len > PIPEFILE_MAX_BYTES) {
		pipefile_src_error(&src, err, 0, 0,
				   "file is larger than %u MiB",
				   PIPEFILE_MAX_BYTES >> 20);
		free(text);
		return -1;
	}
	/* each stage built as it is read; anything unusual or wrong, and
	 * the whole tree is built, as the messages expect */
	ctx_init(&c, name, dir, text, len, &src, err);
	/* PIPE_TEST_WHOLE_TREE=1: the tests compare the two ways */
	ret = getenv("PIPE_TEST_WHOLE_TREE")
		      ? 1
		      : pipefile_build_streamed(&c, &src);
	if (ret == 1) {
		c.pf->text = NULL; /* kept for the second pass */
		pipefile_free(c.pf);
		error_release(err);
		error_init(err);
		ctx_init(&c, name, dir, text, len, &src, err);
		ret = pipefile_yaml_load(&doc, &src, err);
		if (!ret)
			ret = pipefile_build(&c, doc.root);
		pipefile_yaml_release(&doc);
	}
	if (ret) {
		pipefile_free(c.pf);
		return -1;
	}
	*out = c.pf;
	return 0;
}

/* The folder holding path, as given: "Pipefile" -> ".", "a/b" -> "a". */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return xstrdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	return slash == path ? xstrdup("/")
			     : xstrndup(path, (size_t)(slash - path));
}

static int read_error(struct error *err, const char *path)
{
	if (errno == ENOENT)
		return error_set(err, EXIT_USAGE,
				 "cannot read '%s': %s (run 'pipe init' to "
				 "create one)",
				 path, strerror(errno));
	return error_set(err, EXIT_ENV, "cannot read '%s': %s", path,
			 strerror(errno));
}

int pipefile_read(const char *path, struct strbuf *text, char **dir,
		  struct error *err)
{
	struct stat st;
	long n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return read_error(err, path);
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		errno = EISDIR;
		return error_set(err, EXIT_USAGE, "cannot read '%s': %s", path,
				 strerror(errno));
	}
	/* room for the whole file at once: no slack left over from
	 * doubling (the text lives as long as the model) */
	if (S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size <= PIPEFILE_MAX_BYTES)
		strbuf_grow(text, (size_t)st.st_size + 1);
	/* never read more than the limit, whatever the file claims */
	n = strbuf_read_fd(text, fd, PIPEFILE_MAX_BYTES + 1);
	close(fd);
	if (n < 0) {
		strbuf_release(text);
		return read_error(err, path);
	}
	*dir = dir_of(path);
	return 0;
}

int pipefile_load(struct pipefile **out, const char *path, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	char *dir = NULL;
	size_t len;
	int ret;

	*out = NULL;
	if (pipefile_read(path, &sb, &dir, err))
		return -1;
	len = sb.len;
	ret = pipefile_parse_owned(out, path, dir, strbuf_detach(&sb, NULL),
				   len, err);
	free(dir);
	return ret;
}

static void free_paths(struct pf_paths *p)
{
	for (size_t i = 0; i < p->nr; i++)
		free(p->v[i].path);
	free(p->v);
}

static void free_kvs(struct pf_kvs *kv)
{
	for (size_t i = 0; i < kv->nr; i++) {
		free(kv->v[i].key);
		free(kv->v[i].value);
	}
	free(kv->v);
}

void pipefile_sched_release(struct pf_kube_sched *s)
{
	free_kvs(&s->node_selector);
	for (size_t i = 0; i < s->tolerations_nr; i++) {
		free(s->tolerations[i].key);
		free(s->tolerations[i].op);
		free(s->tolerations[i].value);
		free(s->tolerations[i].effect);
	}
	free(s->tolerations);
	free(s->service_account);
	memset(s, 0, sizeof(*s));
}

struct pf_kube_sched pipefile_no_sched;
struct pf_stage_rare pipefile_no_rare = {.argv = STRVEC_INIT};

int pipefile_rare_is_none(const struct pf_stage_rare *r)
{
	return !r->argv.nr && !r->network && !r->datums.path && !r->params_nr &&
	       !r->resources.cpu_milli && !r->resources.memory_bytes &&
	       !r->resources.gpu && !r->timeout_ms && !r->retries &&
	       !r->matrix.nr;
}

void pipefile_rare_free(struct pf_stage_rare *r)
{
	if (!r || r == &pipefile_no_rare)
		return;
	strvec_clear(&r->argv);
	free(r->network);
	free(r->datums.path);
	for (size_t i = 0; i < r->params_nr; i++) {
		free(r->params[i].file);
		free(r->params[i].key);
	}
	free(r->params);
	free_kvs(&r->matrix);
	free(r);
}

static void free_stage(struct pf_stage *st)
{
	free(st->name);
	free(st->base);
	free(st->cmd);
	free(st->executor);
	free(st->image);
	free_paths(&st->inputs);
	free_paths(&st->outputs);
	free_kvs(&st->env);
	pipefile_rare_free(st->rare);
	if (st->kube && st->kube != &pipefile_no_sched) {
		pipefile_sched_release(st->kube);
		free(st->kube);
	}
}

void pipefile_free(struct pipefile *pf)
{
	if (!pf)
		return;
	/* stages in an arena own nothing else */
	for (size_t i = 0; !pf->arena && i < pf->nr; i++)
		free_stage(&pf->stages[i]);
	if (pf->arena)
		arena_release(pf->arena);
	free(pf->arena);
	free(pf->stages);
	if (pf->names)
		free(pf->names->slots);
	free(pf->names);
	free(pf->kube.context);
	free(pf->kube.namespace);
	free(pf->kube.claim);
	free(pf->kube.host_path);
	free(pf->kube.mount_path);
	strvec_clear(&pf->kube.image_pull_secrets);
	pipefile_sched_release(&pf->kube.defaults);
	free(pf->path);
	free(pf->dir);
	free(pf->text);
	free(pf->text_path);
	free(pf->params_file);
	free(pf->docker_network);
	free(pf);
}

static size_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 32));
}

/* The slot of name: where it is, or the empty one it would go in. */
static size_t name_slot(const struct pipefile *pf, const char *name)
{
	const struct pf_names *m = pf->names;
	size_t mask = m->cap - 1, i = name_hash(name) & mask;

	while (m->slots[i] && strcmp(pf->stages[m->slots[i] - 1].name, name))
		i = (i + 1) & mask;
	return i;
}

void pipefile_names_init(struct pipefile *pf, size_t hint)
{
	struct pf_names *m = pf->names;
	size_t cap = 16;

	while (cap < 2 * hint)
		cap *= 2;
	free(m->slots);
	m->slots = xcalloc(cap, sizeof(*m->slots));
	m->cap = cap;
	m->nr = 0;
}

static void names_grow(struct pipefile *pf)
{
	struct pf_names *m = pf->names;
	uint32_t *old = m->slots;
	size_t old_cap = m->cap;

	m->cap *= 2;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	for (size_t k = 0; k < old_cap; k++)
		if (old[k])
			m->slots[name_slot(pf, pf->stages[old[k] - 1].name)] =
				old[k];
	free(old);
}

int pipefile_names_add(struct pipefile *pf, size_t at)
{
	struct pf_names *m = pf->names;
	size_t i;

	if (2 * (m->nr + 1) > m->cap)
		names_grow(pf);
	i = name_slot(pf, pf->stages[at].name);
	if (m->slots[i])
		return -1;
	m->slots[i] = (uint32_t)(at + 1);
	m->nr++;
	return 0;
}

const struct pf_stage *pipefile_find_stage(const struct pipefile *pf,
					   const char *name)
{
	size_t i;

	if (!pf || !name)
		return NULL;
	i = pf->names->slots[name_slot(pf, name)];
	return i ? &pf->stages[i - 1] : NULL;
}
