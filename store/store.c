/* The store's entry points: open, commit a stage's outputs, read commits,
 * files and history, resolve refs, record runs. */
#include "store/cas.h"
#include "store/internal.h"
#include "util/log.h"
#include "util/fs.h"
#include "util/path.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int store_open(struct store **out, const char *pipe_dir, struct error *err)
{
	struct store *st = xcalloc(1, sizeof(*st));

	*out = NULL;
	strbuf_init(&st->buf, 0);
	st->pipe_dir = xstrdup(pipe_dir);
	st->git_dir = path_join(pipe_dir, "store");
	st->cas_dir = path_join(st->git_dir, "cas");
	st->keys_path = path_join(st->git_dir, "pipe-keys");
	if (fs_mkdir_p(pipe_dir, 0755)) {
		error_set(err, EXIT_ENV, "cannot create '%s': %s", pipe_dir,
			  strerror(errno));
		goto fail;
	}
	if (sgit_open(&st->git, st->git_dir, err))
		goto fail;
	*out = st;
	return 0;
fail:
	store_free(st);
	return -1;
}

void store_free(struct store *st)
{
	if (!st)
		return;
	if (st->pend_nr || dindex_pending(st)) {
		struct error err = ERROR_INIT;

		if (store_batch_flush(st, &err))
			log_warn("%s", err.msg.buf);
		error_release(&err);
	}
	free(st->pend);
	strmap_release(&st->pend_at);
	dindex_free(st);
	strbuf_release(&st->buf);
	keys_free(st);
	sgit_free(st->git);
	free(st->pipe_dir);
	free(st->git_dir);
	free(st->cas_dir);
	free(st->keys_path);
	free(st);
}

/* Bytes a ref name (and a tree entry) may hold as they are; the rest,
 * and dots where git forbids them, become %XX. */
static int ref_safe(const char *s, size_t i)
{
	unsigned char c = (unsigned char)s[i];

	if (c == '.')
		return i > 0 && s[i + 1] && s[i + 1] != '.' &&
		       strcmp(s + i, ".lock");
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("_-+=,@", c);
}

static void add_stage_entry(struct strbuf *sb, const char *stage)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; stage[i]; i++) {
		unsigned char c = (unsigned char)stage[i];
		char esc[3] = {'%', hex[c >> 4], hex[c & 15]};

		if (ref_safe(stage, i))
			strbuf_addch(sb, stage[i]);
		else
			strbuf_add(sb, esc, 3);
	}
}

char *store_stage_entry(const char *stage)
{
	struct strbuf sb = STRBUF_INIT;

	add_stage_entry(&sb, stage);
	return strbuf_detach(&sb, NULL);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int store_entry_stage(const char *entry, struct strbuf *out)
{
	strbuf_reset(out);
	for (size_t i = 0; entry[i]; i++) {
		int hi, lo;

		if (entry[i] != '%') {
			strbuf_addch(out, entry[i]);
			continue;
		}
		if ((hi = hexval(entry[i + 1])) < 0 ||
		    (lo = hexval(entry[i + 2])) < 0)
			return -1;
		strbuf_addch(out, (char)(hi << 4 | lo));
		i += 2;
	}
	return out->len ? 0 : -1;
}

/* prefix + the escaped stage name, checked to be a valid ref name. */
static char *stage_ref(const char *prefix, const char *stage, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	char *enc, *ref;

	if (!stage || !*stage) {
		error_set(err, EXIT_USAGE, "empty stage name");
		return NULL;
	}
	enc = store_stage_entry(stage);
	strbuf_addf(&sb, "%s%s", prefix, enc);
	ref = strbuf_detach(&sb, NULL);
	free(enc);
	if (!sgit_ref_name_ok(ref)) {
		error_set(err, EXIT_USAGE, "stage name '%s' cannot be stored",
			  stage);
		free(ref);
		return NULL;
	}
	return ref;
}

char *store_stage_ref(const char *stage, struct error *err)
{
	return stage_ref(STAGE_REF_PREFIX, stage, err);
}

char *store_datums_ref(const char *stage, struct error *err)
{
	return stage_ref(DATUMS_REF_PREFIX, stage, err);
}

int store_parse_id(const char *commit, struct sgit_oid *oid, struct error *err)
{
	if (!commit || sgit_oid_parse(commit, oid))
		return error_set(err, EXIT_USAGE,
				 "'%s' is not a full commit id (40 hex digits)",
				 commit ? commit : "");
	return 0;
}

/* Hashed: a batch of thousands of stage commits looks up each ref. */
static struct pending_ref *find_pending(struct store *st, const char *ref)
{
	size_t i = (size_t)strmap_get(&st->pend_at, ref);

	return i ? &st->pend[i - 1] : NULL;
}

int store_ref_head(struct store *st, const char *ref, struct sgit_oid *out,
		   struct error *err)
{
	const struct pending_ref *p = find_pending(st, ref);

	if (p) {
		*out = p->oid;
		return 1;
	}
	return sgit_ref_read(st->git, ref, out, err);
}

void store_batch_begin(struct store *st)
{
	st->batch = 1;
}

static int is_datums_ref(const char *ref)
{
	return !strncmp(ref, DATUMS_REF_PREFIX, strlen(DATUMS_REF_PREFIX));
}

int store_batch_flush(struct store *st, struct error *err)
{
	struct sgit_packed_report rep = {0, STRBUF_INIT, STRBUF_INIT,
					 STRVEC_INIT};
	int ret = 0;

	/* datum indexes first: their commits join this flush's pack */
	if (dindex_write_all(st, err) || sgit_flush(st->git, err))
		return -1;
	store_crash_point("store-batch-before-refs");
	/* datum results before stage commits: a kill between them keeps
	 * the work of the datums that ran */
	for (int pass = 0; pass < 2 && !ret; pass++) {
		struct sgit_ref_move *mv =
			xcalloc(st->pend_nr + 1, sizeof(*mv));
		size_t n = 0;

		for (size_t i = 0; i < st->pend_nr; i++) {
			struct pending_ref *p = &st->pend[i];

			if (is_datums_ref(p->ref) != !pass)
				continue;
			mv[n].name = p->ref;
			mv[n].oid = p->oid;
			mv[n].has_old = p->has_old;
			mv[n++].old = p->old;
		}
		ret = sgit_refs_move_report(st->git, mv, n, &rep, err);
		if (!ret)
			keys_packed(st, &rep);
		free(mv);
		if (!pass)
			store_crash_point("store-batch-datums-moved");
	}
	if (!ret)
		keys_flushed(st);
	for (size_t i = 0; i < st->pend_nr; i++)
		free(st->pend[i].ref);
	/* not kept at the largest batch's size to the end */
	free(st->pend);
	st->pend = NULL;
	st->pend_nr = st->pend_alloc = 0;
	strmap_release(&st->pend_at);
	strbuf_release(&rep.before);
	strbuf_release(&rep.after);
	strvec_clear(&rep.packed);
	return ret;
}

/* Queue a ref update of batch mode; a later one for the same ref keeps
 * the first expected value (the ref's value on disk). */
static void queue_ref(struct store *st, const char *ref,
		      const struct sgit_oid *oid, const struct sgit_oid *old)
{
	struct pending_ref *p = find_pending(st, ref);

	if (p) {
		p->oid = *oid;
		return;
	}
	ALLOC_GROW(st->pend, st->pend_nr + 1, st->pend_alloc);
	p = &st->pend[st->pend_nr++];
	p->ref = xstrdup(ref);
	strmap_put(&st->pend_at, p->ref, (void *)st->pend_nr);
	p->oid = *oid;
	p->has_old = old != NULL;
	if (old)
		p->old = *old;
}

int store_stage_head(struct store *st, const char *stage, char *out_commit,
		     struct error *err)
{
	char *ref = store_stage_ref(stage, err);
	struct sgit_oid oid;
	int rc;

	if (!ref)
		return -1;
	rc = store_ref_head(st, ref, &oid, err);
	if (rc == 1)
		sgit_oid_hex(&oid, out_commit);
	free(ref);
	return rc;
}

/* The stage refs, read in one pass over the ref list, each looked up
 * among the stages asked for: a table of their indexes by their ref
 * entries' hash (4 bytes a slot), not a copy of every ref's name and
 * commit (8 MB at 100,000 stages, at the peak of a run's end). */
struct heads_pass {
	const char *const *stages;
	size_t n, mask;
	uint32_t *slot; /* stage index + 1, 0 empty */
	struct strbuf a, b;
	void (*put)(void *arg, size_t i, const struct sgit_oid *oid);
	void *arg;
};

static uint64_t entry_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* The slot of entry (len bytes), or the empty slot where it would go. */
static uint32_t *heads_slot(struct heads_pass *h, const char *entry, size_t len)
{
	size_t i = (size_t)entry_hash(entry, len) & h->mask;

	for (;; i = (i + 1) & h->mask) {
		if (!h->slot[i])
			return &h->slot[i];
		strbuf_reset(&h->b);
		add_stage_entry(&h->b, h->stages[h->slot[i] - 1]);
		if (h->b.len == len && !memcmp(h->b.buf, entry, len))
			return &h->slot[i];
	}
}

/* The stage a ref names, if it is one asked for: its index + 1, or 0. */
static uint32_t heads_find(struct heads_pass *h, const char *ref)
{
	size_t plen = strlen(STAGE_REF_PREFIX);

	if (strncmp(ref, STAGE_REF_PREFIX, plen))
		return 0;
	return *heads_slot(h, ref + plen, strlen(ref + plen));
}

static int heads_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	struct heads_pass *h = data;
	uint32_t i = heads_find(h, name);

	if (i)
		h->put(h->arg, i - 1, oid);
	return 0;
}

/* put(arg, i, oid) for each of the n stages that has a commit, the
 * batch's pending moves winning over the refs. */
static int heads_each(struct store *st, const char *const *stages, size_t n,
		      void (*put)(void *, size_t, const struct sgit_oid *),
		      void *arg, struct error *err)
{
	struct heads_pass h = {stages,	    n,		 0,   NULL,
			       STRBUF_INIT, STRBUF_INIT, put, arg};
	size_t cap = 16;
	int ret;

	while (cap < 2 * n)
		cap *= 2;
	h.slot = xcalloc(cap, sizeof(*h.slot));
	h.mask = cap - 1;
	for (size_t i = 0; i < n; i++) {
		uint32_t *at;

		strbuf_reset(&h.a);
		add_stage_entry(&h.a, stages[i]);
		at = heads_slot(&h, h.a.buf, h.a.len);
		if (!*at) /* a name asked twice: its first */
			*at = (uint32_t)i + 1;
	}
	ret = sgit_refs_list(st->git, STAGE_REF_PREFIX, heads_cb, &h, err);
	for (size_t k = 0; !ret && k < st->pend_nr; k++) {
		uint32_t i = heads_find(&h, st->pend[k].ref);

		if (i)
			put(arg, i - 1, &st->pend[k].oid);
	}
	free(h.slot);
	strbuf_release(&h.a);
	strbuf_release(&h.b);
	return ret;
}

/* A stage without a commit: its name checked (a name found is a ref's; N
 * checks cost more than the lookups). */
static int check_headless(const char *stage, struct error *err)
{
	char *checked = store_stage_ref(stage, err);

	free(checked);
	return checked ? 0 : -1;
}

static void put_hex(void *arg, size_t i, const struct sgit_oid *oid)
{
	char(*heads)[STORE_ID_SIZE] = arg;

	sgit_oid_hex(oid, heads[i]);
}

int store_stage_heads(struct store *st, const char *const *stages, size_t n,
		      char (*heads)[STORE_ID_SIZE], struct error *err)
{
	for (size_t i = 0; i < n; i++)
		heads[i][0] = '\0';
	if (heads_each(st, stages, n, put_hex, heads, err))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!heads[i][0] && check_headless(stages[i], err))
			return -1;
	return 0;
}

static void put_run(void *arg, size_t i, const struct sgit_oid *oid)
{
	struct store_run *run = arg;

	sgit_oid_hex(oid, run->stages[i].commit);
}

int store_run_add_heads(struct store *st, struct store_run *run,
			const char *const *stages, size_t n, struct error *err)
{
	size_t k = 0;

	if (run->stages_nr) /* its names would be mixed */
		return error_set(err, EXIT_ENV,
				 "a run record's heads added twice");
	run->stages = xcalloc(n + 1, sizeof(*run->stages));
	run->stages_alloc = n + 1;
	run->names_borrowed = 1;
	for (size_t i = 0; i < n; i++)
		run->stages[i].stage = (char *)stages[i];
	if (heads_each(st, stages, n, put_run, run, err))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!run->stages[i].commit[0]) {
			if (check_headless(stages[i], err))
				return -1;
			continue;
		}
		run->stages[i].ours = run->heads_ours && run->heads_ours[i];
		run->stages[k++] = run->stages[i];
	}
	run->stages_nr = k;
	return 0;
}

int store_tree_manifest(struct store *st, const struct sgit_oid *tree,
			struct store_manifest *m, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	struct sgit_oid blob;
	unsigned mode;
	int rc;

	store_manifest_init(m);
	rc = sgit_tree_lookup(st->git, tree, STORE_MANIFEST, &mode, &blob, err);
	if (rc <= 0 || mode != SGIT_MODE_FILE)
		return rc < 0 ? -1 : 0;
	if (sgit_read_blob(st->git, &blob, &sb, err))
		return -1;
	rc = manifest_parse(sb.buf, sb.len, m, err);
	strbuf_release(&sb);
	return rc ? -1 : 1;
}

int store_load_manifest(struct store *st, const struct sgit_oid *commit,
			struct sgit_oid *tree, struct store_manifest *m,
			struct error *err)
{
	struct sgit_commit c;
	char hex[SGIT_HEXSZ + 1];
	int rc;

	store_manifest_init(m);
	if (sgit_read_commit(st->git, commit, &c, err))
		return -1;
	*tree = c.tree;
	sgit_commit_release(&c);
	rc = store_tree_manifest(st, tree, m, err);
	if (rc < 0)
		return -1;
	if (!rc) {
		sgit_oid_hex(commit, hex);
		return error_set(err, EXIT_USAGE,
				 "commit '%s' is not a stage commit", hex);
	}
	return 0;
}

int store_read_manifest(struct store *st, const char *commit,
			struct store_manifest *out, struct error *err)
{
	struct sgit_oid oid, tree;

	store_manifest_init(out);
	if (store_parse_id(commit, &oid, err))
		return -1;
	return store_load_manifest(st, &oid, &tree, out, err);
}

static int read_prov_oid(struct store *st, const struct sgit_oid *oid,
			 struct store_prov *out, long long *time, char *parent,
			 struct error *err)
{
	struct sgit_commit c;
	char hex[SGIT_HEXSZ + 1];
	int rc;

	store_prov_init(out);
	if (sgit_read_commit(st->git, oid, &c, err))
		return -1;
	rc = store_prov_parse(c.message, out, err);
	if (rc) {
		sgit_oid_hex(oid, hex);
		error_prefix(err, "commit '%s': ", hex);
	}
	if (time)
		*time = c.time;
	if (parent) {
		parent[0] = '\0';
		if (c.nparents)
			sgit_oid_hex(&c.parents[0], parent);
	}
	sgit_commit_release(&c);
	return rc;
}

int store_read_prov(struct store *st, const char *commit,
		    struct store_prov *out, struct error *err)
{
	struct sgit_oid oid;

	store_prov_init(out);
	if (store_parse_id(commit, &oid, err))
		return -1;
	return read_prov_oid(st, &oid, out, NULL, NULL, err);
}

/* ---- history --------------------------------------------------------- */

static int tip_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	struct oid_list *l = data;

	(void)name;
	ALLOC_GROW(l->v, l->nr + 1, l->alloc);
	l->v[l->nr++] = *oid;
	return 0;
}

static int list_cb(const struct sgit_oid *oid, void *data)
{
	struct oid_list *l = data;

	ALLOC_GROW(l->v, l->nr + 1, l->alloc);
	l->v[l->nr++] = *oid;
	return l->max && l->nr >= l->max;
}

int store_history(struct store *st, const char *ref, size_t max,
		  struct oid_list *out, struct error *err)
{
	struct sgit_oid tip;
	int rc = sgit_ref_read(st->git, ref, &tip, err);

	memset(out, 0, sizeof(*out));
	out->max = max;
	if (rc <= 0)
		return rc;
	return sgit_walk(st->git, &tip, 1, NULL, 0, 1, list_cb, out, err) < 0
		       ? -1
		       : 0;
}

int store_all_tips(struct store *st, struct oid_list *out, struct error *err)
{
	memset(out, 0, sizeof(*out));
	return sgit_ref_foreach(st->git, "refs/*", tip_cb, out, err);
}

void store_commits_free(struct store_commit *c, size_t nr)
{
	if (!c)
		return;
	for (size_t i = 0; i < nr; i++)
		store_prov_release(&c[i].prov);
	free(c);
}

int store_stage_log(struct store *st, const char *stage, size_t max,
		    struct store_commit **out, size_t *nr, struct error *err)
{
	char *ref = store_stage_ref(stage, err);
	struct oid_list hist = {0};
	struct store_commit *v = NULL;
	size_t i = 0;
	int ret = -1;

	*out = NULL;
	*nr = 0;
	if (!ref || store_history(st, ref, max, &hist, err))
		goto out;
	v = xcalloc(hist.nr + 1, sizeof(*v));
	for (i = 0; i < hist.nr; i++) {
		sgit_oid_hex(&hist.v[i], v[i].id);
		if (read_prov_oid(st, &hist.v[i], &v[i].prov, &v[i].time,
				  v[i].parent, err))
			goto out;
	}
	*out = v;
	*nr = hist.nr;
	v = NULL;
	ret = 0;
out:
	store_commits_free(v, i);
	free(hist.v);
	free(ref);
	return ret;
}

/* ---- committing a stage ------------------------------------------------ */

/* A tree under construction: folders hold kids, files an object id. */
struct tnode {
	char *name;
	unsigned mode;
	struct sgit_oid oid;
	struct tnode *kids;
	size_t nr, alloc;
};

/* The files of a stage's previous commit, whose blobs a new commit may
 * take (store_set_known). */
struct reuse {
	struct store_manifest man;
	struct sgit_oid *oid; /* of man.files[i], when has[i] */
	unsigned char *has;
	int cas; /* CAS files too: the caller's hashes are of the file itself
		  * (recorded inputs), not of a copy taken now */
	/* what the caller knows of each path it stores (store_write_files),
	 * in the order of the paths: one the parent holds just so is taken
	 * without a look at the file */
	const struct store_file *given;
	int man_borrowed; /* man is the caller's: not released here */
};

struct committer {
	struct store *st;
	const char *workspace;
	const struct reuse *reuse; /* NULL: read every file */
	struct tnode root;
	struct store_manifest man;
	unsigned long long bytes;
	struct strbuf abs, data;
	struct cas_batch cas;
};

/* The folder kid of n called name, made when missing. Searched newest
 * first: files arrive folder by folder, so it is almost always the last. */
static struct tnode *tnode_dir(struct tnode *n, const char *name, size_t len)
{
	struct tnode *k;

	for (size_t i = n->nr; i-- > 0;)
		if (n->kids[i].mode == SGIT_MODE_TREE &&
		    !strncmp(n->kids[i].name, name, len) &&
		    !n->kids[i].name[len])
			return &n->kids[i];
	ALLOC_GROW(n->kids, n->nr + 1, n->alloc);
	k = &n->kids[n->nr++];
	memset(k, 0, sizeof(*k));
	k->name = xstrndup(name, len);
	k->mode = SGIT_MODE_TREE;
	return k;
}

/* Add a file at path. Each path comes once (outputs do not overlap), so
 * the file itself is appended without a search. */
static void tnode_add(struct tnode *root, const char *path, unsigned mode,
		      const struct sgit_oid *oid)
{
	const char *slash;
	struct tnode *n = root, *k;

	while ((slash = strchr(path, '/'))) {
		n = tnode_dir(n, path, (size_t)(slash - path));
		path = slash + 1;
	}
	ALLOC_GROW(n->kids, n->nr + 1, n->alloc);
	k = &n->kids[n->nr++];
	memset(k, 0, sizeof(*k));
	k->name = xstrdup(path);
	k->mode = mode;
	k->oid = *oid;
}

static void tnode_release(struct tnode *n)
{
	for (size_t i = 0; i < n->nr; i++)
		tnode_release(&n->kids[i]);
	free(n->kids);
	free(n->name);
}

/* Write n's folders bottom-up. Returns 1 written, 0 empty (skipped), -1. */
static int tnode_write(struct sgit *g, struct tnode *n, struct error *err)
{
	struct sgit_entry *e = xcalloc(n->nr + 1, sizeof(*e));
	size_t nr = 0;
	int ret = -1;

	for (size_t i = 0; i < n->nr; i++) {
		struct tnode *k = &n->kids[i];

		if (k->mode == SGIT_MODE_TREE) {
			int rc = tnode_write(g, k, err);

			if (rc < 0)
				goto out;
			if (!rc)
				continue;
		}
		e[nr].name = k->name;
		e[nr].mode = k->mode;
		e[nr++].oid = k->oid;
	}
	if (!nr) {
		ret = 0;
		goto out;
	}
	ret = sgit_write_tree(g, e, nr, &n->oid, err) ? -1 : 1;
out:
	free(e);
	return ret;
}

static struct store_file *add_file_entry(struct committer *c, const char *rel,
					 enum store_file_kind kind)
{
	struct store_file *f;

	ALLOC_GROW(c->man.files, c->man.files_nr + 1, c->man.files_alloc);
	f = &c->man.files[c->man.files_nr++];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(rel);
	f->kind = kind;
	return f;
}

/* A small file the previous commit holds as it is now: its blob, unread. */
static int reused(struct committer *c, const char *rel, const struct stat *sb,
		  int exec, struct sgit_oid *oid, char *hex)
{
	const struct reuse *r = c->reuse;
	const struct store_file *f;
	struct hash128 h;
	size_t i;

	if (!r || !(f = manifest_find(&r->man, rel)))
		return 0;
	i = (size_t)(f - r->man.files);
	if (!r->has[i] ||
	    (f->kind != STORE_BLOB && !(r->cas && f->kind == STORE_CAS)) ||
	    f->exec != exec || f->size != (unsigned long long)sb->st_size ||
	    !c->st->known(c->st->known_arg, rel, sb, &h))
		return 0;
	hash_to_hex(&h, hex);
	if (strcmp(hex, f->hash))
		return 0;
	*oid = r->oid[i];
	return 1;
}

static int add_regular(struct committer *c, const char *rel,
		       const struct stat *sb, struct error *err)
{
	int exec = (sb->st_mode & S_IXUSR) != 0;
	int big = (unsigned long long)sb->st_size >= STORE_CAS_MIN;
	struct store_file *f;
	struct sgit_oid oid;
	struct hash128 h;
	unsigned long long size;
	char hex[HASH_HEX_LEN + 1];

	strbuf_reset(&c->data);
	if ((!big || (c->reuse && c->reuse->cas)) &&
	    reused(c, rel, sb, exec, &oid, hex)) {
		size = (unsigned long long)sb->st_size;
		goto add;
	}
	if (big) {
		if (cas_add(&c->cas, c->abs.buf, hex, &size, err))
			return -1;
		manifest_pointer(&c->data, hex, size);
	} else {
		if (strbuf_read_file(&c->data, c->abs.buf, (size_t)sb->st_size))
			return error_set(err, EXIT_FAILED,
					 "cannot read output '%s': %s", rel,
					 strerror(errno));
		size = c->data.len;
		hash_buf(c->data.buf, c->data.len, &h);
		hash_to_hex(&h, hex);
	}
	if (sgit_write_blob(c->st->git, c->data.buf, c->data.len, &oid, err))
		return -1;
add:
	f = add_file_entry(c, rel, big ? STORE_CAS : STORE_BLOB);
	f->exec = exec;
	f->size = size;
	memcpy(f->hash, hex, sizeof(hex));
	tnode_add(&c->root, rel, exec ? SGIT_MODE_EXEC : SGIT_MODE_FILE, &oid);
	c->bytes += size;
	return 0;
}

static int add_link(struct committer *c, const char *rel, struct error *err)
{
	struct store_file *f;
	struct sgit_oid oid;
	struct hash128 h;
	ssize_t n;

	strbuf_reset(&c->data);
	for (size_t want = 256;; want *= 2) {
		strbuf_grow(&c->data, want);
		n = readlink(c->abs.buf, c->data.buf, want);
		if (n < 0)
			return error_set(err, EXIT_FAILED,
					 "cannot read link '%s': %s", rel,
					 strerror(errno));
		if ((size_t)n < want)
			break;
	}
	strbuf_setlen(&c->data, (size_t)n);
	if (sgit_write_blob(c->st->git, c->data.buf, c->data.len, &oid, err))
		return -1;
	f = add_file_entry(c, rel, STORE_LINK);
	f->size = c->data.len;
	hash_buf(c->data.buf, c->data.len, &h);
	hash_to_hex(&h, f->hash);
	tnode_add(&c->root, rel, SGIT_MODE_LINK, &oid);
	return 0;
}

static int add_dir(struct committer *c, const char *rel, struct error *err);

static int add_entry(struct committer *c, const char *rel,
		     const struct stat *sb, struct error *err)
{
	if (S_ISREG(sb->st_mode))
		return add_regular(c, rel, sb, err);
	if (S_ISLNK(sb->st_mode))
		return add_link(c, rel, err);
	if (S_ISDIR(sb->st_mode))
		return add_dir(c, rel, err);
	return error_set(err, EXIT_FAILED,
			 "output '%s' is not a file, folder or symlink", rel);
}

/* The folder's entries are stat'ed relative to it: no path lookup from
 * the root for each of 10,000 files. */
static int add_dir(struct committer *c, const char *rel, struct error *err)
{
	struct strvec names = STRVEC_INIT;
	DIR *d = opendir(c->abs.buf);
	size_t skip = strlen(rel) + 1;
	struct dirent *de;
	int ret = 0;

	if (!d)
		return error_set(err, EXIT_FAILED,
				 "cannot read folder '%s': %s", rel,
				 strerror(errno));
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			strvec_pushf(&names, "%s/%s", rel, de->d_name);
	if (!names.nr) {
		struct strbuf dir = STRBUF_INIT;

		strbuf_addf(&dir, "%s/", rel);
		ALLOC_GROW(c->man.dirs, c->man.dirs_nr + 1, c->man.dirs_alloc);
		c->man.dirs[c->man.dirs_nr++] = strbuf_detach(&dir, NULL);
	}
	for (size_t i = 0; !ret && i < names.nr; i++) {
		struct stat sb;

		strbuf_reset(&c->abs);
		strbuf_addf(&c->abs, "%s/%s", c->workspace, names.v[i]);
		if (fstatat(dirfd(d), names.v[i] + skip, &sb,
			    AT_SYMLINK_NOFOLLOW))
			ret = error_set(err, EXIT_FAILED,
					"output '%s' is missing: %s",
					names.v[i], strerror(errno));
		else
			ret = add_entry(c, names.v[i], &sb, err);
	}
	closedir(d);
	strvec_clear(&names);
	return ret;
}

static int add_path(struct committer *c, const char *rel, struct error *err)
{
	struct stat sb;

	strbuf_reset(&c->abs);
	strbuf_addf(&c->abs, "%s/%s", c->workspace, rel);
	if (lstat(c->abs.buf, &sb))
		return error_set(err, EXIT_FAILED, "output '%s' is missing: %s",
				 rel, strerror(errno));
	return add_entry(c, rel, &sb, err);
}

/* Normalize and check the declared outputs; folders keep their '/'. */
static int check_outputs(char *const *outputs, struct strvec *out,
			 struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	int ret = -1;

	for (size_t i = 0; outputs && outputs[i]; i++) {
		const char *why = NULL;
		size_t len;

		strbuf_reset(&sb);
		if (path_normalize(outputs[i], &sb, &why)) {
			error_set(err, EXIT_USAGE, "output '%s': %s",
				  outputs[i], why);
			goto out;
		}
		len = path_trimmed_len(sb.buf);
		if (!len || path_is_inside(sb.buf, ".pipe") ||
		    (len == strlen(STORE_MANIFEST) &&
		     !strncmp(sb.buf, STORE_MANIFEST, len))) {
			error_set(err, EXIT_USAGE,
				  "output '%s' cannot be stored: it is the "
				  "workspace, .pipe/ or '%s'",
				  outputs[i], STORE_MANIFEST);
			goto out;
		}
		for (size_t j = 0; j < out->nr; j++)
			if (path_overlaps(out->v[j], sb.buf)) {
				error_set(err, EXIT_USAGE,
					  "outputs '%s' and '%s' overlap",
					  out->v[j], sb.buf);
				goto out;
			}
		strvec_push(out, sb.buf);
	}
	ret = 0;
out:
	strbuf_release(&sb);
	return ret;
}

static int add_output(struct committer *c, const char *out, struct error *err)
{
	size_t len = path_trimmed_len(out);
	int folder = out[len] == '/';
	char *rel = xstrndup(out, len);
	struct stat sb;
	int ret = -1;

	strbuf_reset(&c->abs);
	strbuf_addf(&c->abs, "%s/%s", c->workspace, rel);
	if (lstat(c->abs.buf, &sb))
		error_set(err, EXIT_FAILED, "output '%s' is missing: %s", out,
			  strerror(errno));
	else if (folder && !S_ISDIR(sb.st_mode))
		error_set(err, EXIT_FAILED, "output '%s' is not a folder", out);
	else if (!folder && S_ISDIR(sb.st_mode))
		error_set(err, EXIT_FAILED,
			  "output '%s' is a folder; declare it as '%s/'", out,
			  out);
	else
		ret = add_path(c, rel, err);
	if (!ret) {
		ALLOC_GROW(c->man.outputs, c->man.outputs_nr + 1,
			   c->man.outputs_alloc);
		c->man.outputs[c->man.outputs_nr++] = xstrdup(out);
	}
	free(rel);
	return ret;
}

/* Tests set PIPE_TEST_CRASH=<point> to die there, as a crash would. */
void store_crash_point(const char *point)
{
	const char *e = getenv("PIPE_TEST_CRASH");

	if (e && !strcmp(e, point))
		_exit(99);
}

int store_publish_ref(struct store *st, const char *ref,
		      const struct sgit_oid *commit,
		      const struct sgit_oid *parent, struct error *err)
{
	if (st->batch) {
		/* the first queued update keeps the ref's value on disk as
		 * what the flush expects to replace */
		queue_ref(st, ref, commit, parent);
		return 0;
	}
	if (sgit_flush(st->git, err))
		return -1;
	store_crash_point("store-before-ref");
	return sgit_ref_update(st->git, ref, commit, parent, err);
}

/* Commit tree on stage's ref (its parent the ref's value when read,
 * parent, or none), flush, and move the ref only if nobody moved it
 * meanwhile. */
static int publish_stage(struct store *st, const char *ref, const char *stage,
			 const struct sgit_oid *tree,
			 const struct sgit_oid *parent,
			 const struct store_prov *prov,
			 unsigned long long bytes_out, char *out_commit,
			 struct error *err)
{
	struct store_prov empty, p;
	struct strbuf msg = STRBUF_INIT;
	struct sgit_oid commit;
	int ret = -1;

	store_prov_init(&empty);
	p = prov ? *prov : empty; /* shallow: only two fields change */
	p.stage = (char *)stage;
	p.bytes_out = bytes_out;
	store_prov_format(&p, &msg);
	if (sgit_write_commit(st->git, tree, parent, parent ? 1 : 0, msg.buf,
			      &commit, err) ||
	    store_publish_ref(st, ref, &commit, parent, err))
		goto out;
	sgit_oid_hex(&commit, out_commit);
	keys_note(st, ref, &commit, p.key, stage);
	ret = 0;
out:
	strbuf_release(&msg);
	return ret;
}

/* Write the manifest and the trees. */
static int has_cas(const struct store_manifest *m)
{
	for (size_t i = 0; i < m->files_nr; i++)
		if (m->files[i].kind == STORE_CAS)
			return 1;
	return 0;
}

/* Write the manifest (unless it may be left out) and the trees; an empty
 * root is the empty tree. */
static int write_stage_tree(struct committer *c, int manifest,
			    struct error *err)
{
	struct sgit_oid blob;
	int rc;

	manifest_sort(&c->man);
	if (manifest || has_cas(&c->man)) {
		strbuf_reset(&c->data);
		manifest_format(&c->man, &c->data);
		if (sgit_write_blob(c->st->git, c->data.buf, c->data.len, &blob,
				    err))
			return -1;
		tnode_add(&c->root, STORE_MANIFEST, SGIT_MODE_FILE, &blob);
	}
	rc = tnode_write(c->st->git, &c->root, err);
	if (!rc)
		rc = sgit_write_tree(c->st->git, NULL, 0, &c->root.oid, err);
	return rc < 0 ? -1 : 0;
}

static int same_file(const struct store_file *a, const struct store_file *b)
{
	return !strcmp(a->hash, b->hash) && a->size == b->size &&
	       a->exec == b->exec &&
	       (a->kind == STORE_LINK) == (b->kind == STORE_LINK);
}

/* The file g, as the caller found it, is the parent's: take its entry. */
static int take_given(struct committer *c, const struct store_file *g)
{
	const struct reuse *r = c->reuse;
	const struct store_file *f = manifest_find(&r->man, g->path);
	struct store_file *n;
	size_t i;

	if (!f || !r->has[i = (size_t)(f - r->man.files)] || !same_file(f, g))
		return 0;
	n = add_file_entry(c, g->path, f->kind);
	n->exec = f->exec;
	n->size = f->size;
	memcpy(n->hash, f->hash, sizeof(n->hash));
	tnode_add(&c->root, g->path,
		  f->kind == STORE_LINK ? SGIT_MODE_LINK
		  : f->exec		? SGIT_MODE_EXEC
					: SGIT_MODE_FILE,
		  &r->oid[i]);
	c->bytes += f->size;
	ALLOC_GROW(c->man.outputs, c->man.outputs_nr + 1, c->man.outputs_alloc);
	c->man.outputs[c->man.outputs_nr++] = xstrdup(g->path);
	return 1;
}

static int write_outputs(struct store *st, const char *workspace,
			 char *const *outputs, int manifest,
			 const struct reuse *reuse, struct sgit_oid *tree,
			 struct store_manifest *m, unsigned long long *bytes,
			 struct error *err)
{
	/* the file buffer is the store's: a stage of 10,000 datums stores
	 * 10,000 small results, each read through a 64 KiB buffer */
	struct committer c = {.st = st,
			      .workspace = workspace,
			      .reuse = reuse,
			      .abs = STRBUF_INIT,
			      .data = st->buf};
	int ret = -1;

	strbuf_init(&st->buf, 0);
	cas_batch_init(&c.cas, st->cas_dir);
	for (size_t i = 0; outputs[i]; i++)
		if (!(reuse && reuse->given &&
		      take_given(&c, &reuse->given[i])) &&
		    add_output(&c, outputs[i], err))
			goto out;
	if (cas_commit(&c.cas, err) || write_stage_tree(&c, manifest, err))
		goto out;
	*tree = c.root.oid;
	*bytes = c.bytes;
	if (m) {
		*m = c.man;
		store_manifest_init(&c.man);
	}
	ret = 0;
out:
	tnode_release(&c.root);
	store_manifest_release(&c.man);
	strbuf_release(&c.abs);
	strbuf_release(&st->buf);
	st->buf = c.data;
	strbuf_reset(&st->buf);
	cas_batch_release(&c.cas);
	return ret;
}

int store_write_outputs(struct store *st, const char *workspace,
			char *const *outputs, int manifest,
			struct sgit_oid *tree, struct store_manifest *m,
			unsigned long long *bytes, struct error *err)
{
	return write_outputs(st, workspace, outputs, manifest, NULL, tree, m,
			     bytes, err);
}

void store_set_known(struct store *st, store_known_fn known, void *arg)
{
	st->known = known;
	st->known_arg = arg;
}

static int reuse_entry(const char *path, unsigned mode,
		       const struct sgit_oid *oid, void *data)
{
	struct reuse *r = data;
	const struct store_file *f;

	if (mode != SGIT_MODE_FILE && mode != SGIT_MODE_EXEC)
		return 0;
	if ((f = manifest_find(&r->man, path))) {
		r->oid[f - r->man.files] = *oid;
		r->has[f - r->man.files] = 1;
	}
	return 0;
}

static void reuse_release(struct reuse *r)
{
	if (!r->man_borrowed)
		store_manifest_release(&r->man);
	free(r->oid);
	free(r->has);
	memset(r, 0, sizeof(*r));
}

/* The blobs of the files of r->man, found in tree. */
static void reuse_blobs(struct store *st, const struct sgit_oid *tree,
			struct reuse *r, struct error *err)
{
	r->oid = xcalloc(r->man.files_nr + 1, sizeof(*r->oid));
	r->has = xcalloc(r->man.files_nr + 1, 1);
	if (sgit_tree_walk(st->git, tree, reuse_entry, r, err))
		reuse_release(r);
}

/* The files of commit parent with their blobs. Anything amiss leaves r
 * empty: the files are then read, as without a parent. */
static void reuse_load(struct store *st, const struct sgit_oid *parent,
		       struct reuse *r)
{
	struct error err = ERROR_INIT;
	struct sgit_oid tree;

	memset(r, 0, sizeof(*r));
	if (!st->known)
		return;
	if (store_load_manifest(st, parent, &tree, &r->man, &err))
		reuse_release(r);
	else
		reuse_blobs(st, &tree, r, &err);
	error_release(&err);
}

int store_write_files(struct store *st, const char *workspace,
		      const struct store_file *files, size_t nr,
		      const struct sgit_oid *prev,
		      const struct store_manifest *prev_m,
		      struct sgit_oid *tree, struct error *err)
{
	struct error ignore = ERROR_INIT;
	struct reuse reuse = {0};
	unsigned long long bytes;
	char **paths = xcalloc(nr + 1, sizeof(*paths));
	size_t same = 0;
	int ret = 0;

	if (prev && prev_m) {
		reuse.man = *prev_m;
		reuse.man_borrowed = 1;
		reuse_blobs(st, prev, &reuse, &ignore);
	} else if (prev &&
		   store_tree_manifest(st, prev, &reuse.man, &ignore) == 1) {
		reuse_blobs(st, prev, &reuse, &ignore);
	}
	error_release(&ignore);
	for (size_t i = 0; i < nr; i++) {
		paths[i] = files[i].path;
		same += i < reuse.man.files_nr &&
			!strcmp(reuse.man.files[i].path, files[i].path) &&
			same_file(&reuse.man.files[i], &files[i]);
	}
	if (prev && reuse.has && same == nr && nr == reuse.man.files_nr) {
		*tree = *prev; /* nothing changed: not even a look */
	} else {
		reuse.cas = 1;
		reuse.given = reuse.has ? files : NULL;
		ret = write_outputs(st, workspace, paths, 1, &reuse, tree, NULL,
				    &bytes, err);
	}
	reuse_release(&reuse);
	free(paths);
	return ret;
}

/* A commit of stage failed: drop its pending objects (in a batch, other
 * stages' objects wait in memory too) and name it in err. */
static void stage_failed(struct store *st, const char *stage, struct error *err)
{
	if (!st->batch)
		sgit_discard(st->git);
	error_prefix(err, "stage '%s': ", stage ? stage : "");
}

int store_commit_stage(struct store *st, const char *workspace,
		       const char *stage, char *const *outputs,
		       const struct store_prov *prov, char *out_commit,
		       struct error *err)
{
	char *ref = store_stage_ref(stage, err);
	struct strvec outs = STRVEC_INIT;
	struct sgit_oid parent, tree;
	struct reuse reuse = {0};
	unsigned long long bytes = 0;
	int has_parent = 0, ret = -1;

	if (!ref || check_outputs(outputs, &outs, err) ||
	    (has_parent = store_ref_head(st, ref, &parent, err)) < 0)
		goto out;
	if (has_parent)
		reuse_load(st, &parent, &reuse);
	if (write_outputs(st, workspace, outs.v, 1, &reuse, &tree, NULL, &bytes,
			  err) ||
	    publish_stage(st, ref, stage, &tree, has_parent ? &parent : NULL,
			  prov, bytes, out_commit, err))
		goto out;
	ret = 0;
out:
	if (ret)
		stage_failed(st, stage, err);
	reuse_release(&reuse);
	strvec_clear(&outs);
	free(ref);
	return ret;
}

int store_commit_reuse(struct store *st, const char *stage, const char *source,
		       const struct store_prov *prov, char *out_commit,
		       struct error *err)
{
	char *ref = store_stage_ref(stage, err);
	struct store_manifest m;
	struct sgit_oid src, tree, parent;
	unsigned long long bytes = 0;
	int has_parent = 0, ret = -1;

	store_manifest_init(&m);
	if (!ref || store_parse_id(source, &src, err) ||
	    store_load_manifest(st, &src, &tree, &m, err) ||
	    (has_parent = store_ref_head(st, ref, &parent, err)) < 0)
		goto out;
	for (size_t i = 0; i < m.files_nr; i++)
		if (m.files[i].kind != STORE_LINK)
			bytes += m.files[i].size;
	if (publish_stage(st, ref, stage, &tree, has_parent ? &parent : NULL,
			  prov, bytes, out_commit, err))
		goto out;
	ret = 0;
out:
	if (ret)
		stage_failed(st, stage, err);
	store_manifest_release(&m);
	free(ref);
	return ret;
}

/* ---- reading files ------------------------------------------------------ */

/* Find the file path in a stage commit: its manifest entry (*f points
 * into m) and its blob. */
static int find_file(struct store *st, const char *commit, const char *path,
		     struct store_manifest *m, const struct store_file **f,
		     struct sgit_oid *blob, struct error *err)
{
	struct sgit_oid oid, tree;
	struct strbuf norm = STRBUF_INIT;
	const char *why = NULL;
	unsigned mode;
	int rc = -1;

	if (store_parse_id(commit, &oid, err) ||
	    store_load_manifest(st, &oid, &tree, m, err))
		goto out;
	if (path_normalize(path, &norm, &why)) {
		error_set(err, EXIT_USAGE, "path '%s': %s", path, why);
		goto out;
	}
	strbuf_setlen(&norm, path_trimmed_len(norm.buf));
	if (!(*f = manifest_find(m, norm.buf))) {
		error_set(err, EXIT_USAGE, "no file '%s' in commit '%.12s'",
			  norm.buf, commit);
		goto out;
	}
	rc = sgit_tree_lookup(st->git, &tree, norm.buf, &mode, blob, err);
	if (!rc)
		error_set(err, EXIT_FAILED,
			  "commit '%.12s' lists '%s' but its tree lacks it",
			  commit, norm.buf);
	rc = rc > 0 ? 0 : -1;
out:
	strbuf_release(&norm);
	return rc;
}

int store_read_file(struct store *st, const char *commit, const char *path,
		    struct strbuf *out, struct error *err)
{
	struct store_manifest m;
	const struct store_file *f;
	struct sgit_oid blob;
	char *cas = NULL;
	int ret = -1;

	if (find_file(st, commit, path, &m, &f, &blob, err))
		goto out;
	if (f->kind != STORE_CAS) {
		ret = sgit_read_blob(st->git, &blob, out, err);
		goto out;
	}
	cas = cas_path(st->cas_dir, f->hash);
	if (strbuf_read_file(out, cas, (size_t)f->size)) {
		error_set(err, EXIT_FAILED, "cannot read '%s': %s", cas,
			  strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(cas);
	store_manifest_release(&m);
	return ret;
}

int store_read_file_fd(struct store *st, const char *commit, const char *path,
		       int fd, struct error *err)
{
	struct store_manifest m;
	const struct store_file *f;
	struct sgit_oid blob;
	struct strbuf sb = STRBUF_INIT;
	int ret = -1;

	if (find_file(st, commit, path, &m, &f, &blob, err))
		goto out;
	if (f->kind == STORE_CAS) {
		ret = cas_copy_out(st->cas_dir, f->hash, fd, 0, err);
		goto out;
	}
	if (sgit_read_blob(st->git, &blob, &sb, err))
		goto out;
	if (fs_write_all(fd, sb.buf, sb.len)) {
		error_set(err, EXIT_FAILED, "cannot write '%s': %s", path,
			  strerror(errno));
		goto out;
	}
	ret = 0;
out:
	strbuf_release(&sb);
	store_manifest_release(&m);
	return ret;
}
