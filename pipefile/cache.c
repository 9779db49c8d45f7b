/* The parsed Pipefile, remembered: `pipe status` on an unchanged Pipefile
 * reads the model from a binary file instead of parsing YAML again (the
 * parse of 2,000 stages costs more than everything else a no-op status
 * does). The cache is keyed by the Pipefile's content hash and by the pipe
 * binary that wrote it, and carries a checksum: a stale, foreign, truncated
 * or corrupt cache is ignored and rewritten, never trusted. */
#include "pipefile/internal.h"
#include "util/fs.h"
#include "util/arena.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "pipe-pfcache 1\n"
#define NIL UINT32_MAX /* the length of a NULL string */

/* -------- writing -------- */

static void put_u32(struct strbuf *sb, uint32_t v)
{
	strbuf_add(sb, &v, sizeof(v));
}

static void put_i64(struct strbuf *sb, int64_t v)
{
	strbuf_add(sb, &v, sizeof(v));
}

static void put_str(struct strbuf *sb, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	put_u32(sb, s ? (uint32_t)n : NIL);
	if (s)
		strbuf_add(sb, s, n + 1);
}

static void put_path(struct strbuf *sb, const struct pf_path *p)
{
	put_str(sb, p->path);
	put_u32(sb, (uint32_t)p->line);
	put_u32(sb, (uint32_t)p->col);
	put_u32(sb, p->is_glob | p->is_dir << 1);
}

static void put_paths(struct strbuf *sb, const struct pf_paths *p)
{
	put_u32(sb, (uint32_t)p->nr);
	for (size_t i = 0; i < p->nr; i++)
		put_path(sb, &p->v[i]);
}

static void put_kvs(struct strbuf *sb, const struct pf_kvs *kv)
{
	put_u32(sb, (uint32_t)kv->nr);
	for (size_t i = 0; i < kv->nr; i++) {
		put_str(sb, kv->v[i].key);
		put_str(sb, kv->v[i].value);
		put_u32(sb, (uint32_t)kv->v[i].line);
		put_u32(sb, (uint32_t)kv->v[i].col);
	}
}

static void put_sched(struct strbuf *sb, const struct pf_kube_sched *k)
{
	put_kvs(sb, &k->node_selector);
	put_u32(sb, (uint32_t)k->tolerations_nr);
	for (size_t i = 0; i < k->tolerations_nr; i++) {
		put_str(sb, k->tolerations[i].key);
		put_str(sb, k->tolerations[i].op);
		put_str(sb, k->tolerations[i].value);
		put_str(sb, k->tolerations[i].effect);
		put_i64(sb, k->tolerations[i].seconds);
	}
	put_str(sb, k->service_account);
}

static void put_stage(struct strbuf *sb, const struct pf_stage *st)
{
	put_str(sb, st->name);
	put_str(sb, st->base);
	put_u32(sb, (uint32_t)st->line);
	put_u32(sb, (uint32_t)st->col);
	put_u32(sb, (uint32_t)st->cmd_kind);
	put_str(sb, st->cmd);
	put_u32(sb, (uint32_t)st->rare->argv.nr);
	for (size_t i = 0; i < st->rare->argv.nr; i++)
		put_str(sb, st->rare->argv.v[i]);
	put_u32(sb, (uint32_t)st->cmd_line);
	put_u32(sb, (uint32_t)st->cmd_col);
	put_str(sb, st->executor);
	put_str(sb, st->image);
	put_str(sb, st->rare->network);
	put_paths(sb, &st->inputs);
	put_paths(sb, &st->outputs);
	put_path(sb, &st->rare->datums);
	put_u32(sb, (uint32_t)st->parallelism);
	put_u32(sb, (uint32_t)st->rare->params_nr);
	for (size_t i = 0; i < st->rare->params_nr; i++) {
		put_str(sb, st->rare->params[i].file);
		put_str(sb, st->rare->params[i].key);
		put_u32(sb, (uint32_t)st->rare->params[i].line);
		put_u32(sb, (uint32_t)st->rare->params[i].col);
	}
	put_kvs(sb, &st->env);
	put_i64(sb, st->rare->resources.cpu_milli);
	put_i64(sb, st->rare->resources.memory_bytes);
	put_u32(sb, (uint32_t)st->rare->resources.gpu);
	put_u32(sb, (uint32_t)st->rare->retries);
	put_i64(sb, st->rare->timeout_ms);
	put_kvs(sb, &st->rare->matrix);
	put_sched(sb, st->kube);
}

/* The model into out; with w, out is written to it a megabyte at a time
 * and emptied (the cache of 100,000 stages is 22 MB: a copy of it in
 * memory was a third of a cold parse's peak). */
static void serialize(const struct pipefile *pf, const char *stamp,
		      struct strbuf *out, struct fs_replace *w)
{
	struct hasher *sum = hasher_new();
	struct hash128 h;
	size_t start = out->len;

	strbuf_addstr(out, MAGIC);
	put_str(out, stamp);
	if (pf->text)
		hash_buf(pf->text, pf->text_len, &h);
	else
		h = pf->text_hash;
	strbuf_add(out, &h, sizeof(h));
	put_u32(out, (uint32_t)pf->version);
	put_str(out, pf->params_file);
	put_str(out, pf->docker_network);
	put_i64(out, pf->keep.jobs);
	put_i64(out, pf->keep.days);
	put_i64(out, pf->keep.log_bytes);
	put_str(out, pf->kube.context);
	put_str(out, pf->kube.namespace);
	put_str(out, pf->kube.claim);
	put_str(out, pf->kube.host_path);
	put_str(out, pf->kube.mount_path);
	put_i64(out, pf->kube.uid);
	put_i64(out, pf->kube.gid);
	put_u32(out, (uint32_t)pf->kube.image_pull_secrets.nr);
	for (size_t i = 0; i < pf->kube.image_pull_secrets.nr; i++)
		put_str(out, pf->kube.image_pull_secrets.v[i]);
	put_sched(out, &pf->kube.defaults);
	put_u32(out, (uint32_t)pf->nr);
	for (size_t i = 0; i < pf->nr; i++) {
		put_stage(out, &pf->stages[i]);
		if (w && out->len - start >= (1u << 20)) {
			hasher_add(sum, out->buf + start, out->len - start);
			fs_replace_write(w, out->buf + start, out->len - start);
			strbuf_setlen(out, start);
		}
	}
	hasher_add(sum, out->buf + start, out->len - start);
	hasher_final(sum, &h);
	hasher_free(sum);
	strbuf_add(out, &h, sizeof(h));
	if (w) {
		fs_replace_write(w, out->buf + start, out->len - start);
		strbuf_setlen(out, start);
	}
}

void pipefile_serialize(const struct pipefile *pf, const char *stamp,
			struct strbuf *out)
{
	serialize(pf, stamp, out, NULL);
}

/* -------- reading: every get checks the bounds and sets bad -------- */

struct reader {
	const char *p, *end;
	int bad;
	struct arena *arena; /* the stages': their strings and arrays go
			      * here; NULL: the heap */
};

static void *get_array(struct reader *r, size_t n, size_t size)
{
	if (!n)
		return NULL;
	return r->arena ? arena_alloc(r->arena, n * size) : xcalloc(n, size);
}

static void get_raw(struct reader *r, void *dst, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p, n);
	r->p += n;
}

static uint32_t get_u32(struct reader *r)
{
	uint32_t v;

	get_raw(r, &v, sizeof(v));
	return v;
}

static int get_int(struct reader *r)
{
	return (int)get_u32(r);
}

static int64_t get_i64(struct reader *r)
{
	int64_t v;

	get_raw(r, &v, sizeof(v));
	return v;
}

/* A count of things each at least min bytes long: bounded by what is left,
 * so a corrupt count cannot ask for a huge allocation. */
static size_t get_count(struct reader *r, size_t min)
{
	uint32_t n = get_u32(r);

	if (r->bad || (size_t)(r->end - r->p) / min < n) {
		r->bad = 1;
		return 0;
	}
	return n;
}

static char *get_str(struct reader *r)
{
	uint32_t n = get_u32(r);
	char *s;

	if (r->bad || n == NIL)
		return NULL;
	if ((size_t)(r->end - r->p) <= n || r->p[n]) {
		r->bad = 1;
		return NULL;
	}
	s = r->arena ? arena_memdupz(r->arena, r->p, n) : xmemdupz(r->p, n);
	r->p += n + 1;
	return s;
}

static void get_path(struct reader *r, struct pf_path *p)
{
	uint32_t flags;

	p->path = get_str(r);
	p->line = get_int(r);
	p->col = get_int(r);
	flags = get_u32(r);
	p->is_glob = flags & 1;
	p->is_dir = (flags >> 1) & 1;
}

static void get_paths(struct reader *r, struct pf_paths *p)
{
	size_t n = get_count(r, 16);

	p->v = get_array(r, n, sizeof(*p->v));
	for (p->nr = p->alloc = 0; p->nr < n; p->nr++, p->alloc++)
		get_path(r, &p->v[p->nr]);
}

static void get_kvs(struct reader *r, struct pf_kvs *kv)
{
	size_t n = get_count(r, 16);

	kv->v = get_array(r, n, sizeof(*kv->v));
	for (kv->nr = kv->alloc = 0; kv->nr < n; kv->nr++, kv->alloc++) {
		struct pf_kv *e = &kv->v[kv->nr];

		e->key = get_str(r);
		e->value = get_str(r);
		e->line = get_int(r);
		e->col = get_int(r);
	}
}

static void get_sched(struct reader *r, struct pf_kube_sched *k)
{
	size_t n;

	get_kvs(r, &k->node_selector);
	n = get_count(r, 24);
	k->tolerations = get_array(r, n, sizeof(*k->tolerations));
	for (k->tolerations_nr = 0; k->tolerations_nr < n;
	     k->tolerations_nr++) {
		struct pf_toleration *t = &k->tolerations[k->tolerations_nr];

		t->key = get_str(r);
		t->op = get_str(r);
		t->value = get_str(r);
		t->effect = get_str(r);
		t->seconds = get_i64(r);
	}
	k->service_account = get_str(r);
}

/* Strings, each pushed: a NULL one (no parse writes it) is corrupt. A
 * stage's are an arena array, which the strvec functions must not free or
 * grow (the model is read-only). */
static void get_strvec(struct reader *r, struct strvec *sv)
{
	size_t n = get_count(r, 4);

	if (r->arena && n) {
		sv->v = arena_alloc(r->arena, (n + 1) * sizeof(*sv->v));
		for (sv->nr = 0; sv->nr < n && !r->bad; sv->nr++)
			if (!(sv->v[sv->nr] = get_str(r)))
				r->bad = 1;
		return;
	}
	for (size_t i = 0; i < n && !r->bad; i++) {
		char *a = get_str(r);

		if (a)
			strvec_push_nodup(sv, a);
		else
			r->bad = 1;
	}
}

/* A stage's kubernetes: keys; the shared empty ones when there are none. */
static void get_stage_sched(struct reader *r, struct pf_stage *st)
{
	struct pf_kube_sched k = {0};

	get_sched(r, &k);
	if (!k.node_selector.nr && !k.tolerations_nr && !k.service_account) {
		st->kube = &pipefile_no_sched;
		return;
	}
	st->kube = arena_alloc(r->arena, sizeof(*st->kube));
	*st->kube = k;
}

static void get_stage(struct reader *r, struct pf_stage *st)
{
	struct pf_stage_rare rare = {.argv = STRVEC_INIT}, *x = &rare;
	size_t n;

	st->name = get_str(r);
	st->base = get_str(r);
	st->line = get_int(r);
	st->col = get_int(r);
	st->cmd_kind = get_u32(r) ? PF_CMD_ARGV : PF_CMD_SHELL;
	st->cmd = get_str(r);
	get_strvec(r, &x->argv);
	st->cmd_line = get_int(r);
	st->cmd_col = get_int(r);
	st->executor = get_str(r);
	st->image = get_str(r);
	x->network = get_str(r);
	get_paths(r, &st->inputs);
	get_paths(r, &st->outputs);
	get_path(r, &x->datums);
	st->parallelism = get_int(r);
	n = get_count(r, 16);
	x->params = get_array(r, n, sizeof(*x->params));
	for (x->params_nr = 0; x->params_nr < n; x->params_nr++) {
		struct pf_param *p = &x->params[x->params_nr];

		p->file = get_str(r);
		p->key = get_str(r);
		p->line = get_int(r);
		p->col = get_int(r);
	}
	get_kvs(r, &st->env);
	x->resources.cpu_milli = get_i64(r);
	x->resources.memory_bytes = get_i64(r);
	x->resources.gpu = get_int(r);
	x->retries = get_int(r);
	x->timeout_ms = get_i64(r);
	get_kvs(r, &x->matrix);
	get_stage_sched(r, st);
	/* the rare keys: shared when the stage sets none */
	st->rare = &pipefile_no_rare;
	if (!pipefile_rare_is_none(x)) {
		st->rare = arena_alloc(r->arena, sizeof(*st->rare));
		*st->rare = rare;
	}
}

/* Replace a default string of the new model with what the cache holds. */
static void get_owned(struct reader *r, char **slot)
{
	free(*slot);
	*slot = get_str(r);
}

int pipefile_deserialize(struct pipefile **out, const char *name,
			 const char *dir, const char *text, size_t len,
			 const char *stamp, const char *buf, size_t n)
{
	if (pipefile_deserialize_model(out, name, dir, text, len, stamp, buf,
				       n))
		return -1;
	(*out)->text = xmemdupz(text, len);
	return 0;
}

int pipefile_deserialize_model(struct pipefile **out, const char *name,
			       const char *dir, const char *text, size_t len,
			       const char *stamp, const char *buf, size_t n)
{
	struct reader r = {buf, buf + n, 0, NULL};
	struct pipefile *pf;
	struct hash128 want, got;
	char *s;
	size_t nr;

	*out = NULL;
	if (n < strlen(MAGIC) + 2 * sizeof(want) ||
	    memcmp(buf, MAGIC, strlen(MAGIC)))
		return -1;
	hash_buf(buf, n - sizeof(want), &got);
	memcpy(&want, buf + n - sizeof(want), sizeof(want));
	if (!hash_equal(&want, &got))
		return -1;
	r.p += strlen(MAGIC);
	r.end -= sizeof(want);
	s = get_str(&r);
	if (!s || strcmp(s, stamp)) {
		free(s);
		return -1;
	}
	free(s);
	get_raw(&r, &want, sizeof(want));
	hash_buf(text, len, &got);
	if (r.bad || !hash_equal(&want, &got))
		return -1;

	pf = pipefile_new(name, dir, NULL, len);
	pf->version = get_int(&r);
	get_owned(&r, &pf->params_file);
	get_owned(&r, &pf->docker_network);
	pf->keep.jobs = get_i64(&r);
	pf->keep.days = get_i64(&r);
	pf->keep.log_bytes = get_i64(&r);
	pf->kube.context = get_str(&r);
	pf->kube.namespace = get_str(&r);
	pf->kube.claim = get_str(&r);
	pf->kube.host_path = get_str(&r);
	pf->kube.mount_path = get_str(&r);
	pf->kube.uid = get_i64(&r);
	pf->kube.gid = get_i64(&r);
	get_strvec(&r, &pf->kube.image_pull_secrets);
	get_sched(&r, &pf->kube.defaults);
	nr = get_count(&r, 64);
	pf->stages = nr ? xcalloc(nr, sizeof(*pf->stages)) : NULL;
	pf->alloc = nr;
	pipefile_names_init(pf, nr);
	/* the stages' strings and small arrays: one arena, not a malloc each
	 * (at 100,000 stages the headers alone were megabytes) */
	pf->arena = xcalloc(1, sizeof(*pf->arena));
	r.arena = pf->arena;
	for (; pf->nr < nr && !r.bad; pf->nr++) {
		get_stage(&r, &pf->stages[pf->nr]);
		/* a stage without a name, or a second of one name: no parse
		 * writes that */
		if (!pf->stages[pf->nr].name || pipefile_names_add(pf, pf->nr))
			r.bad = 1;
	}
	if (r.bad || r.p != r.end || pf->nr != nr) {
		pipefile_free(pf);
		return -1;
	}
	*out = pf;
	return 0;
}

/* -------- the file -------- */

/* Which pipe wrote a cache: a rebuilt binary may parse differently, so it
 * ignores caches of any other. */
static void exe_stamp(struct strbuf *out)
{
	struct stat st;

	strbuf_addstr(out, PIPE_CACHE_VERSION);
	if (stat("/proc/self/exe", &st) == 0)
		strbuf_addf(out, " %llu:%llu:%lld:%lld.%09ld",
			    (unsigned long long)st.st_dev,
			    (unsigned long long)st.st_ino,
			    (long long)st.st_size, (long long)st.st_mtim.tv_sec,
			    st.st_mtim.tv_nsec);
}

/* Only where pipe keeps its files already: `validate` in a new project
 * creates nothing. A cache that cannot be written is no error. */
/* The model into the cache file beside the Pipefile, when its folder is
 * there: 0, or -1 when it was not written (the next run parses again;
 * this one goes on). */
static int save(char *cache, const struct pipefile *pf, const char *stamp)
{
	struct error err = ERROR_INIT;
	struct strbuf buf = STRBUF_INIT;
	struct fs_replace w;
	char *slash = strrchr(cache, '/');
	struct stat st;
	int has_dir = 1;

	if (slash) {
		*slash = '\0';
		has_dir = !stat(cache, &st) && S_ISDIR(st.st_mode);
		*slash = '/';
	}
	if (!has_dir)
		return -1;
	if (!fs_replace_open(&w, cache, 1, &err)) {
		serialize(pf, stamp, &buf, &w);
		fs_replace_commit(&w, &err);
	}
	if (err.exit_code)
		log_verbose("could not save the Pipefile cache: %s",
			    err.msg.buf);
	has_dir = err.exit_code ? -1 : 0;
	error_release(&err);
	strbuf_release(&buf);
	return has_dir;
}

/* The model of text from the cache file, when it holds text's: 0, or -1
 * (stale, damaged, missing, another binary's). */
static int from_cache(struct pipefile **out, const char *path, const char *dir,
		      const char *text, size_t len, const char *cache,
		      const char *stamp)
{
	void *map = NULL;
	size_t map_len = 0;
	int ret = -1;

	/* mapped, not read: its pages go back whole when it is unmapped,
	 * while the model stays */
	if (!fs_map(cache, 0, &map, &map_len) && map &&
	    !pipefile_deserialize_model(out, path, dir, text, len, stamp, map,
					map_len)) {
		/* the text only serves error excerpts: at 100,000 stages
		 * it is 11 MB, read again on the rare error instead */
		hash_buf(text, len, &(*out)->text_hash);
		(*out)->text_path = realpath(path, NULL);
		ret = 0;
	}
	if (map)
		munmap(map, map_len);
	return ret;
}

int pipefile_load_cached(struct pipefile **out, const char *path,
			 const char *cache_name, struct error *err)
{
	struct strbuf text = STRBUF_INIT, stamp = STRBUF_INIT;
	struct pipefile *parsed;
	char *dir = NULL, *cache = NULL, *own = NULL;
	size_t len;
	int ret = 0;

	*out = NULL;
	if (pipefile_read(path, &text, &dir, err))
		return -1;
	cache = !strcmp(dir, ".") ? xstrdup(cache_name)
				  : xstrfmt("%s/%s", dir, cache_name);
	exe_stamp(&stamp);
	if (!from_cache(out, path, dir, text.buf, text.len, cache, stamp.buf))
		goto out;
	len = text.len;
	ret = pipefile_parse_owned(&parsed, path, dir,
				   strbuf_detach(&text, NULL), len, err);
	if (ret)
		goto out;
	if (save(cache, parsed, stamp.buf)) {
		*out = parsed;
		goto out;
	}
	/* the model as a cached load gives it: its strings in one arena,
	 * no text kept (at 100,000 stages 20 MB less for the rest of a run
	 * after the Pipefile changed), for one read of what was written; the
	 * parsed one goes first, or both would be held at once */
	own = parsed->text;
	parsed->text = NULL;
	pipefile_free(parsed);
	if (from_cache(out, path, dir, own, len, cache, stamp.buf)) {
		ret = pipefile_parse_owned(out, path, dir, own, len, err);
		own = NULL;
	}
out:
	free(own);
	strbuf_release(&stamp);
	strbuf_release(&text);
	free(cache);
	free(dir);
	return ret;
}
