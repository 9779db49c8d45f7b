/* Datum results in the store: each datum's PIPE_OUT folder kept as a tree
 * and found by datum key through a per-stage index commit, so that a datum
 * reverted to earlier content gets its result back instead of running. */
#include "store/internal.h"
#include "util/fs.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FANOUT 256

struct dslot {
	struct hash128 key;
	struct sgit_oid tree;
	int used;
};

/* One stage's index as this process sees it: what its ref's commit holds
 * plus the results added since (dirty buckets), written by dindex_write.
 * Buckets are read when first needed: a run that changed one datum of
 * 10,000 reads one bucket of about 40 entries, not all 256. */
struct dindex {
	char *stage, *ref;
	int has_tip;
	struct sgit_oid tip; /* the index's commit, on disk or queued */
	struct sgit_oid bucket[FANOUT];
	unsigned char has_bucket[FANOUT], loaded[FANOUT], dirty[FANOUT];
	size_t added; /* results since the last write */
	struct dslot *slots;
	size_t nr, cap;
};

static unsigned bucket_of(const struct hash128 *key)
{
	return (unsigned)(key->high >> 56);
}

/* The slot of key: its own, or the empty one where it would go. */
static struct dslot *slot(struct dindex *x, const struct hash128 *key)
{
	size_t i = (size_t)key->low & (x->cap - 1);

	while (x->slots[i].used && !hash_equal(&x->slots[i].key, key))
		i = (i + 1) & (x->cap - 1);
	return &x->slots[i];
}

static const struct sgit_oid *lookup(struct dindex *x,
				     const struct hash128 *key)
{
	struct dslot *s = x->cap ? slot(x, key) : NULL;

	return s && s->used ? &s->tree : NULL;
}

static void set(struct dindex *x, const struct hash128 *key,
		const struct sgit_oid *tree)
{
	struct dslot *s;

	if ((x->nr + 1) * 2 > x->cap) {
		struct dslot *old = x->slots;
		size_t n = x->cap;

		x->cap = n ? n * 2 : 1024;
		x->slots = xcalloc(x->cap, sizeof(*x->slots));
		x->nr = 0;
		for (size_t i = 0; i < n; i++)
			if (old[i].used)
				set(x, &old[i].key, &old[i].tree);
		free(old);
	}
	s = slot(x, key);
	if (!s->used)
		x->nr++;
	s->used = 1;
	s->key = *key;
	s->tree = *tree;
}

static void dindex_release(struct dindex *x)
{
	free(x->stage);
	free(x->ref);
	free(x->slots);
	free(x);
}

/* Reading an index's root: its "ab" buckets. Anything else is not
 * pipe's and is left alone. */
static int root_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		   void *data)
{
	struct dindex *x = data;
	unsigned b;

	if (mode == SGIT_MODE_TREE && strlen(path) == 2 &&
	    strspn(path, "0123456789abcdef") == 2) {
		b = (unsigned)strtoul(path, NULL, 16);
		x->bucket[b] = *oid;
		x->has_bucket[b] = 1;
	}
	return 1;
}

struct bucket_load {
	struct dindex *x;
	unsigned b;
};

/* Reading a bucket: "<30 hex>" results. */
static int bucket_cb(const char *path, unsigned mode,
		     const struct sgit_oid *oid, void *data)
{
	struct bucket_load *l = data;
	char hex[HASH_HEX_LEN + 1];
	struct hash128 key;

	if (mode != SGIT_MODE_TREE || strlen(path) != HASH_HEX_LEN - 2)
		return 1;
	snprintf(hex, sizeof(hex), "%02x%s", l->b, path);
	if (strspn(hex, "0123456789abcdef") == HASH_HEX_LEN &&
	    !hash_from_hex(hex, &key))
		set(l->x, &key, oid);
	return 1; /* a result's files are not the index's business */
}

/* Read bucket b into the map unless it is there. */
static int load_bucket(struct store *st, struct dindex *x, unsigned b,
		       struct error *err)
{
	struct bucket_load l = {x, b};

	if (x->loaded[b] || !x->has_bucket[b]) {
		x->loaded[b] = 1;
		return 0;
	}
	if (sgit_tree_walk(st->git, &x->bucket[b], bucket_cb, &l, err))
		return -1;
	x->loaded[b] = 1;
	return 0;
}

static int load(struct store *st, struct dindex *x, struct error *err)
{
	struct sgit_commit c;
	int rc = store_ref_head(st, x->ref, &x->tip, err);

	if (rc <= 0)
		return rc;
	x->has_tip = 1;
	if (sgit_read_commit(st->git, &x->tip, &c, err))
		return -1;
	rc = sgit_tree_walk(st->git, &c.tree, root_cb, x, err);
	sgit_commit_release(&c);
	return rc;
}

/* The index of stage, loaded on first use. */
static int get_index(struct store *st, const char *stage, struct dindex **out,
		     struct error *err)
{
	struct dindex *x;

	for (size_t i = 0; i < st->dindex_nr; i++)
		if (!strcmp(st->dindex[i]->stage, stage)) {
			*out = st->dindex[i];
			return 0;
		}
	x = xcalloc(1, sizeof(*x));
	x->stage = xstrdup(stage);
	if (!(x->ref = store_datums_ref(stage, err)) || load(st, x, err)) {
		dindex_release(x);
		return -1;
	}
	ALLOC_GROW(st->dindex, st->dindex_nr + 1, st->dindex_alloc);
	st->dindex[st->dindex_nr++] = x;
	*out = x;
	return 0;
}

/* Forget x (after a failed write: the next use reloads it from disk). */
static void drop_index(struct store *st, struct dindex *x)
{
	for (size_t i = 0; i < st->dindex_nr; i++)
		if (st->dindex[i] == x) {
			st->dindex[i] = st->dindex[--st->dindex_nr];
			break;
		}
	dindex_release(x);
}

void dindex_free(struct store *st)
{
	for (size_t i = 0; i < st->dindex_nr; i++)
		dindex_release(st->dindex[i]);
	free(st->dindex);
	st->dindex = NULL;
	st->dindex_nr = st->dindex_alloc = 0;
}

int dindex_pending(const struct store *st)
{
	for (size_t i = 0; i < st->dindex_nr; i++)
		if (st->dindex[i]->added)
			return 1;
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

struct bucket_entries {
	struct sgit_entry *v;
	char (*names)[HASH_HEX_LEN - 1];
	size_t nr, alloc;
};

/* Write the dirty buckets' trees (one pass over the slots fills them). */
static int write_buckets(struct store *st, struct dindex *x, struct error *err)
{
	struct bucket_entries *be = xcalloc(FANOUT, sizeof(*be));
	int ret = 0;

	for (size_t i = 0; i < x->cap; i++) {
		const struct dslot *s = &x->slots[i];
		struct bucket_entries *b;
		char hex[HASH_HEX_LEN + 1];

		if (!s->used || !x->dirty[bucket_of(&s->key)])
			continue;
		b = &be[bucket_of(&s->key)];
		if (b->nr == b->alloc) {
			b->alloc = b->alloc ? 2 * b->alloc : 64;
			b->v = xrealloc(b->v, b->alloc * sizeof(*b->v));
			b->names = xrealloc(b->names,
					    b->alloc * sizeof(*b->names));
		}
		hash_to_hex(&s->key, hex);
		memcpy(b->names[b->nr], hex + 2, HASH_HEX_LEN - 1);
		b->v[b->nr].mode = SGIT_MODE_TREE;
		b->v[b->nr++].oid = s->tree;
	}
	for (unsigned k = 0; k < FANOUT; k++) {
		for (size_t i = 0; i < be[k].nr; i++)
			be[k].v[i].name = be[k].names[i];
		if (!ret && x->dirty[k] &&
		    sgit_write_tree(st->git, be[k].v, be[k].nr, &x->bucket[k],
				    err))
			ret = -1;
		x->has_bucket[k] |= x->dirty[k];
		free(be[k].v);
		free(be[k].names);
	}
	free(be);
	return ret;
}

static int write_root(struct store *st, struct dindex *x, struct sgit_oid *root,
		      struct error *err)
{
	struct sgit_entry e[FANOUT];
	char names[FANOUT][3];
	size_t n = 0;

	for (unsigned k = 0; k < FANOUT; k++) {
		if (!x->has_bucket[k])
			continue;
		snprintf(names[k], sizeof(names[k]), "%02x", k);
		e[n].name = names[k];
		e[n].mode = SGIT_MODE_TREE;
		e[n++].oid = x->bucket[k];
	}
	return sgit_write_tree(st->git, e, n, root, err);
}

/* A new commit of x's index, its parent the previous one, published on
 * its ref. */
static int dindex_write(struct store *st, struct dindex *x, struct error *err)
{
	struct strbuf msg = STRBUF_INIT;
	struct sgit_oid root, commit;
	int ret = -1;

	if (write_buckets(st, x, err) || write_root(st, x, &root, err))
		goto out;
	strbuf_addf(&msg,
		    "datums: %zu new result%s\n\nPipe-Kind: datums\n"
		    "Pipe-Stage: ",
		    x->added, x->added == 1 ? "" : "s");
	store_escape(&msg, x->stage, NULL);
	strbuf_addch(&msg, '\n');
	if (sgit_write_commit(st->git, &root, &x->tip, x->has_tip, msg.buf,
			      &commit, err) ||
	    store_publish_ref(st, x->ref, &commit, x->has_tip ? &x->tip : NULL,
			      err))
		goto out;
	x->tip = commit;
	x->has_tip = 1;
	x->added = 0;
	memset(x->dirty, 0, sizeof(x->dirty));
	ret = 0;
out:
	strbuf_release(&msg);
	return ret;
}

int dindex_write_all(struct store *st, struct error *err)
{
	for (size_t i = 0; i < st->dindex_nr; i++)
		if (st->dindex[i]->added &&
		    dindex_write(st, st->dindex[i], err))
			return -1;
	return 0;
}

/* ---- the API --------------------------------------------------------------
 */

/* The outputs of a result: dir's top-level entries, folders ending in
 * '/'. They are distinct single names, so they cannot overlap. */
static int top_entries(const char *dir, struct strvec *out, struct error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct strbuf path = STRBUF_INIT;
	int ret = 0;

	if (!d)
		return error_set(err, EXIT_FAILED, "cannot read '%s': %s", dir,
				 strerror(errno));
	while (!ret && (de = readdir(d))) {
		struct stat sb;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!strcmp(de->d_name, ".pipe") ||
		    !strcmp(de->d_name, STORE_MANIFEST)) {
			ret = error_set(err, EXIT_FAILED,
					"'%s' cannot be stored: pipe reserves "
					"the name",
					de->d_name);
			break;
		}
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s", dir, de->d_name);
		if (lstat(path.buf, &sb))
			ret = error_set(err, EXIT_FAILED,
					"cannot read '%s': %s", path.buf,
					strerror(errno));
		else
			strvec_pushf(out, "%s%s", de->d_name,
				     S_ISDIR(sb.st_mode) ? "/" : "");
	}
	closedir(d);
	strbuf_release(&path);
	return ret;
}

static int parse_key(const char *key_hex, struct hash128 *key,
		     struct error *err)
{
	if (!key_hex || strlen(key_hex) != HASH_HEX_LEN ||
	    strspn(key_hex, "0123456789abcdef") != HASH_HEX_LEN ||
	    hash_from_hex(key_hex, key))
		return error_set(err, EXIT_USAGE,
				 "'%s' is not a datum key (32 hex digits)",
				 key_hex ? key_hex : "");
	return 0;
}

static void push_files(const struct store_manifest *m, struct strvec *files)
{
	for (size_t i = 0; files && i < m->files_nr; i++)
		strvec_push(files, m->files[i].path);
}

int store_datum_put(struct store *st, const char *stage, const char *key_hex,
		    const char *dir, struct strvec *files, struct error *err)
{
	struct strvec outs = STRVEC_INIT;
	struct store_manifest m;
	struct dindex *x = NULL;
	struct hash128 key;
	struct sgit_oid tree;
	unsigned long long bytes;
	int ret = -1;

	store_manifest_init(&m);
	if (parse_key(key_hex, &key, err) || get_index(st, stage, &x, err) ||
	    load_bucket(st, x, bucket_of(&key), err) ||
	    top_entries(dir, &outs, err) ||
	    store_write_outputs(st, dir, outs.v, 0, &tree, &m, &bytes, err))
		goto out;
	set(x, &key, &tree);
	x->dirty[bucket_of(&key)] = 1;
	x->added++;
	if (!st->batch && dindex_write(st, x, err)) {
		sgit_discard(st->git);
		drop_index(st, x);
		goto out;
	}
	push_files(&m, files);
	ret = 0;
out:
	if (ret)
		error_prefix(err, "datum result '%s': ", dir);
	store_manifest_release(&m);
	strvec_clear(&outs);
	return ret;
}

/* The result tree of key_hex in stage's index: 1 found, 0 not, -1. */
static int find(struct store *st, const char *stage, const char *key_hex,
		struct sgit_oid *tree, struct error *err)
{
	struct dindex *x;
	struct hash128 key;
	const struct sgit_oid *t;

	if (parse_key(key_hex, &key, err) || get_index(st, stage, &x, err) ||
	    load_bucket(st, x, bucket_of(&key), err))
		return -1;
	if (!(t = lookup(x, &key)))
		return 0;
	*tree = *t;
	return 1;
}

int store_datum_has(struct store *st, const char *stage, const char *key_hex,
		    struct error *err)
{
	struct sgit_oid tree;

	return find(st, stage, key_hex, &tree, err);
}

/* A stored result: its tree, and its manifest (empty when it has none:
 * then every file is a plain blob). Returns 1 with a manifest, 0 without,
 * -1 on error or when the key has no result. */
static int load_result(struct store *st, const char *stage, const char *key_hex,
		       struct sgit_oid *tree, struct store_manifest *m,
		       struct error *err)
{
	int rc = find(st, stage, key_hex, tree, err);

	store_manifest_init(m);
	if (!rc)
		error_set(err, EXIT_FAILED,
			  "no result for datum key '%s' of stage '%s' in the "
			  "store",
			  key_hex, stage);
	if (rc <= 0)
		return -1;
	return store_tree_manifest(st, tree, m, err);
}

static int file_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		   void *data)
{
	(void)oid;
	if (mode != SGIT_MODE_TREE && mode != SGIT_MODE_GITLINK &&
	    strcmp(path, STORE_MANIFEST))
		strvec_push(data, path);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_datum_files(struct store *st, const char *stage, const char *key_hex,
		      struct strvec *files, struct error *err)
{
	struct store_manifest m;
	struct sgit_oid tree;
	size_t start = files->nr;
	int rc = load_result(st, stage, key_hex, &tree, &m, err);

	if (rc > 0)
		push_files(&m, files);
	else if (!rc && sgit_tree_walk(st->git, &tree, file_cb, files, err))
		rc = -1;
	else if (!rc && files->nr - start > 1)
		qsort(files->v + start, files->nr - start, sizeof(char *),
		      cmp_str);
	store_manifest_release(&m);
	return rc < 0 ? -1 : 0;
}

int store_datum_restore(struct store *st, const char *stage,
			const char *key_hex, const char *dir, struct error *err)
{
	struct store_manifest m;
	struct sgit_oid tree;
	int ret = -1;

	if (load_result(st, stage, key_hex, &tree, &m, err) < 0)
		return -1;
	if (fs_mkdir_p(dir, 0777))
		error_set(err, EXIT_FAILED, "cannot create '%s': %s", dir,
			  strerror(errno));
	else
		ret = store_restore_into(st, &tree, &m, dir, err);
	store_manifest_release(&m);
	return ret;
}

/* ---- gc --------------------------------------------------------------------
 */

static int cmp_oid(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sgit_oid));
}

static void push_oid(struct oid_list *l, const struct sgit_oid *oid)
{
	ALLOC_GROW(l->v, l->nr + 1, l->alloc);
	l->v[l->nr++] = *oid;
}

static void sort_unique(struct oid_list *l)
{
	size_t n = 0;

	if (l->nr < 2)
		return;
	qsort(l->v, l->nr, sizeof(*l->v), cmp_oid);
	for (size_t i = 0; i < l->nr; i++)
		if (!n || !sgit_oid_equal(&l->v[n - 1], &l->v[i]))
			l->v[n++] = l->v[i];
	l->nr = n;
}

/* Every subtree one level below each tree of in, each once. */
static int subtrees_cb(const char *path, unsigned mode,
		       const struct sgit_oid *oid, void *data)
{
	(void)path;
	if (mode == SGIT_MODE_TREE)
		push_oid(data, oid);
	return 1;
}

static int subtrees(struct store *st, const struct oid_list *in,
		    struct oid_list *out, struct error *err)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < in->nr; i++)
		if (sgit_tree_walk(st->git, &in->v[i], subtrees_cb, out, err))
			return -1;
	sort_unique(out);
	return 0;
}

int dindex_result_trees(struct store *st, const struct oid_list *commits,
			struct oid_list *out, struct error *err)
{
	struct oid_list roots = {0}, buckets = {0};
	int ret = -1;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < commits->nr; i++) {
		struct sgit_commit c;
		char *kind;

		if (sgit_read_commit(st->git, &commits->v[i], &c, err))
			goto out;
		kind = trailers_kind(c.message);
		if (kind && !strcmp(kind, "datums"))
			push_oid(&roots, &c.tree);
		free(kind);
		sgit_commit_release(&c);
	}
	/* index commits share most of their buckets: walk each once */
	sort_unique(&roots);
	if (subtrees(st, &roots, &buckets, err) ||
	    subtrees(st, &buckets, out, err))
		goto out;
	ret = 0;
out:
	free(roots.v);
	free(buckets.v);
	return ret;
}
