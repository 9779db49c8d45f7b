/* Names for commits (STAGE, STAGE~N, runs, abbreviated ids) and run
 * records, which tie a pipeline's stage commits together under one id. */
#include "store/internal.h"
#include "util/strmap.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "base~N" (or "base~", N = 1) into base and n; else base = ref, n = 0. */
static char *split_tilde(const char *ref, unsigned long *n)
{
	const char *t = strrchr(ref, '~');

	*n = 0;
	if (!t || t == ref || strspn(t + 1, "0123456789") != strlen(t + 1) ||
	    strlen(t + 1) > 9)
		return xstrdup(ref);
	*n = t[1] ? strtoul(t + 1, NULL, 10) : 1;
	return xstrndup(ref, (size_t)(t - ref));
}

static int go_back(struct store *st, struct sgit_oid *oid, unsigned long n,
		   const char *ref, struct error *err)
{
	for (unsigned long i = 0; i < n; i++) {
		struct sgit_commit c;
		int root;

		if (sgit_read_commit(st->git, oid, &c, err))
			return -1;
		root = !c.nparents;
		if (!root)
			*oid = c.parents[0];
		sgit_commit_release(&c);
		if (root)
			return error_set(err, EXIT_USAGE,
					 "'%s' goes back only %lu commit%s",
					 ref, i, i == 1 ? "" : "s");
	}
	return 0;
}

struct prefix_scan {
	const char *hex;
	struct sgit_oid *found;
	size_t nr, alloc;
};

static int prefix_cb(const struct sgit_oid *oid, void *data)
{
	struct prefix_scan *p = data;
	char hex[SGIT_HEXSZ + 1];

	sgit_oid_hex(oid, hex);
	if (!strncmp(hex, p->hex, strlen(p->hex))) {
		ALLOC_GROW(p->found, p->nr + 1, p->alloc);
		p->found[p->nr++] = *oid;
	}
	return 0;
}

static int ambiguous(const char *hex, const struct prefix_scan *p,
		     struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	char id[SGIT_HEXSZ + 1];

	for (size_t i = 0; i < p->nr && i < 8; i++) {
		sgit_oid_hex(&p->found[i], id);
		strbuf_addf(&sb, "%s%.12s", i ? ", " : "", id);
	}
	if (p->nr > 8)
		strbuf_addstr(&sb, ", ...");
	if (p->nr)
		error_set(err, EXIT_USAGE,
			  "commit id '%s' is ambiguous: it starts %s", hex,
			  sb.buf);
	else
		error_set(err, EXIT_USAGE,
			  "commit id '%s' is ambiguous; give more digits", hex);
	strbuf_release(&sb);
	return -1;
}

/* Several objects start with hex: pick the one commit the refs reach. */
static int disambiguate(struct store *st, const char *hex, struct sgit_oid *out,
			struct error *err)
{
	struct prefix_scan p = {hex, NULL, 0, 0};
	struct oid_list tips;
	int ret = -1;

	if (store_all_tips(st, &tips, err) ||
	    sgit_walk(st->git, tips.v, tips.nr, NULL, 0, 0, prefix_cb, &p,
		      err) < 0)
		goto out;
	if (p.nr == 1) {
		*out = p.found[0];
		ret = 1;
	} else {
		ambiguous(hex, &p, err);
	}
out:
	free(p.found);
	free(tips.v);
	return ret;
}

/* A full or abbreviated commit id: 1 found, 0 not an id we know, -1. */
static int resolve_hex(struct store *st, const char *ref, struct sgit_oid *out,
		       struct error *err)
{
	size_t len = strlen(ref);
	char *hex;
	int rc;

	if (len < 4 || len > SGIT_HEXSZ ||
	    strspn(ref, "0123456789abcdefABCDEF") != len)
		return 0;
	hex = xstrdup(ref);
	for (char *p = hex; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	rc = sgit_lookup_prefix(st->git, hex, out, err);
	if (rc == 2)
		rc = disambiguate(st, hex, out, err);
	free(hex);
	return rc;
}

/* STAGE or runs: 1 found, 0 no such ref, -1. */
static int resolve_name(struct store *st, const char *base,
			struct sgit_oid *out, struct error *err)
{
	struct error ignore = ERROR_INIT;
	char *ref;
	int rc;

	if (!strcmp(base, "runs"))
		return sgit_ref_read(st->git, RUNS_REF, out, err);
	if (!strcmp(base, "displaced"))
		return sgit_ref_read(st->git, DISPLACED_REF, out, err);
	ref = store_stage_ref(base, &ignore);
	error_release(&ignore);
	if (!ref)
		return 0;
	rc = sgit_ref_read(st->git, ref, out, err);
	free(ref);
	return rc;
}

int store_resolve(struct store *st, const char *ref, char *out_commit,
		  int *is_run, struct error *err)
{
	unsigned long n;
	char *base = split_tilde(ref, &n);
	struct sgit_oid oid;
	struct sgit_commit c;
	char *kind;
	int rc;

	rc = resolve_name(st, base, &oid, err);
	if (!rc)
		rc = resolve_hex(st, base, &oid, err);
	if (!rc)
		error_set(err, EXIT_USAGE,
			  "unknown ref '%s': not a stage with commits, 'runs', "
			  "'displaced' or a commit id",
			  base);
	free(base);
	if (rc <= 0 || go_back(st, &oid, n, ref, err))
		return -1;
	if (sgit_read_commit(st->git, &oid, &c, err))
		return -1;
	kind = trailers_kind(c.message);
	if (is_run)
		*is_run = kind && !strcmp(kind, "run");
	free(kind);
	sgit_commit_release(&c);
	sgit_oid_hex(&oid, out_commit);
	return 0;
}

/* ---- run records -------------------------------------------------------- */

static int check_stage_commit(struct store *st, const struct store_run_stage *s,
			      struct sgit_oid *oid, struct error *err)
{
	struct sgit_commit c;
	char *kind;
	int ok;

	if (store_parse_id(s->commit, oid, err) ||
	    sgit_read_commit(st->git, oid, &c, err)) {
		error_prefix(err, "stage '%s': ", s->stage);
		return -1;
	}
	kind = trailers_kind(c.message);
	ok = kind && !strcmp(kind, "stage");
	free(kind);
	sgit_commit_release(&c);
	if (!ok)
		return error_set(err, EXIT_USAGE,
				 "stage '%s': '%s' is not a stage commit",
				 s->stage, s->commit);
	return 0;
}

/* ---- writing a record (format 2, store.h) ----------------------------- */

#define SHARDS 256

/* The shard of a stage's entry: FNV-1a of its bytes, the low 8 bits. Part
 * of the format: a changed function would still read, but the next record
 * would share no shard with the previous one. */
static unsigned shard_of(const char *entry)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)entry; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h & (SHARDS - 1);
}

/* The previous record: format 2, its shards' trees; format 1, its
 * entries. map (entry -> oid) holds a format-1 record's entries, or those
 * of the one shard being checked. Stage commits it names were checked when
 * it was written: a run of k stages out of N checks k stage commits. */
struct prev_run {
	int v1;
	unsigned char has[SHARDS];
	struct sgit_oid shard[SHARDS];
	struct strmap map;
	struct strbuf names; /* NUL-separated */
	struct sgit_oid *oids;
	size_t nr, alloc;
};

static void prev_add(struct prev_run *p, const char *name,
		     const struct sgit_oid *oid)
{
	ALLOC_GROW(p->oids, p->nr + 1, p->alloc);
	p->oids[p->nr++] = *oid;
	strbuf_add(&p->names, name, strlen(name) + 1);
}

/* Index what prev_add added (names may move while they are added). */
static void prev_index(struct prev_run *p)
{
	const char *name = p->names.buf;

	strmap_release(&p->map);
	strmap_init(&p->map, p->nr);
	for (size_t i = 0; i < p->nr; name += strlen(name) + 1, i++)
		strmap_put(&p->map, name, &p->oids[i]);
}

static void prev_release(struct prev_run *p)
{
	strmap_release(&p->map);
	strbuf_release(&p->names);
	free(p->oids);
}

static int hex2(const char *s)
{
	static const char digits[] = "0123456789abcdef";
	const char *hi = s[0] ? strchr(digits, s[0]) : NULL;
	const char *lo = hi && s[1] ? strchr(digits, s[1]) : NULL;

	return lo && !s[2] ? (int)((hi - digits) << 4 | (lo - digits)) : -1;
}

/* The top of stages/: shards (format 2) or gitlinks (format 1). */
static int prev_top_cb(const char *path, unsigned mode,
		       const struct sgit_oid *oid, void *data)
{
	struct prev_run *p = data;
	int s = hex2(path);

	if (mode == SGIT_MODE_TREE) {
		if (s >= 0) {
			p->has[s] = 1;
			p->shard[s] = *oid;
		}
		return 1; /* a shard's entries are read when it changed */
	}
	if (mode == SGIT_MODE_GITLINK) {
		p->v1 = 1;
		prev_add(p, path, oid);
	}
	return 0;
}

static void prev_load(struct store *st, const struct sgit_oid *parent,
		      struct prev_run *p)
{
	struct error ignore = ERROR_INIT;
	struct sgit_commit c;
	struct sgit_oid stages;
	unsigned mode;

	if (sgit_read_commit(st->git, parent, &c, &ignore))
		goto out;
	if (sgit_tree_lookup(st->git, &c.tree, "stages", &mode, &stages,
			     &ignore) == 1 &&
	    mode == SGIT_MODE_TREE &&
	    sgit_tree_walk(st->git, &stages, prev_top_cb, p, &ignore)) {
		/* unreadable: every stage is checked then */
		memset(p->has, 0, sizeof(p->has));
		p->nr = 0;
	}
	sgit_commit_release(&c);
	if (p->v1)
		prev_index(p);
out:
	error_release(&ignore);
}

static int prev_shard_cb(const char *path, unsigned mode,
			 const struct sgit_oid *oid, void *data)
{
	if (mode == SGIT_MODE_GITLINK)
		prev_add(data, path, oid);
	return 0;
}

/* The entries of the previous record's shard s, into p->map. */
static void prev_load_shard(struct store *st, struct prev_run *p, unsigned s)
{
	struct error ignore = ERROR_INIT;

	strbuf_reset(&p->names);
	p->nr = 0;
	if (p->has[s] &&
	    sgit_tree_walk(st->git, &p->shard[s], prev_shard_cb, p, &ignore))
		p->nr = 0;
	prev_index(p);
	error_release(&ignore);
}

static int in_prev(const struct prev_run *p, const char *name,
		   const struct sgit_oid *oid)
{
	const struct sgit_oid *was = p->nr ? strmap_get(&p->map, name) : NULL;

	return was && sgit_oid_equal(was, oid);
}

/* The run's stages grouped by shard: order[start[s] .. start[s + 1]). */
struct run_build {
	char **entries;
	struct sgit_oid *oids;
	size_t *order;
	size_t start[SHARDS + 1];
};

static int build_init(struct run_build *b, const struct store_run *run,
		      struct error *err)
{
	size_t n = run->stages_nr, at[SHARDS];
	unsigned *sh = xcalloc(n + 1, sizeof(*sh));
	int ret = 0;

	memset(b->start, 0, sizeof(b->start));
	b->entries = xcalloc(n + 1, sizeof(*b->entries));
	b->oids = xcalloc(n + 1, sizeof(*b->oids));
	b->order = xcalloc(n + 1, sizeof(*b->order));
	for (size_t i = 0; i < n && !ret; i++) {
		const char *name = run->stages[i].stage;

		/* most names are their own entries: no copy of each */
		b->entries[i] = name[strspn(name, SAFE_ENTRY_CHARS)]
					? store_stage_entry(name)
					: (char *)name;
		sh[i] = shard_of(b->entries[i]);
		b->start[sh[i] + 1]++;
		if (store_parse_id(run->stages[i].commit, &b->oids[i], err)) {
			error_prefix(err, "stage '%s': ", run->stages[i].stage);
			ret = -1;
		}
	}
	for (unsigned s = 0; s < SHARDS; s++)
		b->start[s + 1] += b->start[s];
	memcpy(at, b->start, sizeof(at));
	for (size_t i = 0; i < n && !ret; i++)
		b->order[at[sh[i]]++] = i;
	free(sh);
	return ret;
}

static void build_release(struct run_build *b, const struct store_run *run)
{
	for (size_t i = 0; i < run->stages_nr; i++)
		if (b->entries[i] != run->stages[i].stage)
			free(b->entries[i]);
	free(b->entries);
	free(b->oids);
	free(b->order);
}

/* A shard unlike the previous record's: no stage twice, and every stage
 * commit the previous record did not name in it is a stage commit. */
static int check_shard(struct store *st, const struct store_run *run,
		       const struct run_build *b, unsigned s,
		       struct prev_run *prev, struct error *err)
{
	struct strmap seen;
	int ret = 0;

	if (!prev->v1)
		prev_load_shard(st, prev, s);
	strmap_init(&seen, b->start[s + 1] - b->start[s]);
	for (size_t k = b->start[s]; k < b->start[s + 1] && !ret; k++) {
		size_t i = b->order[k];
		struct sgit_oid oid;

		if (strmap_put(&seen, b->entries[i], (void *)b->entries[i]))
			ret = error_set(err, EXIT_USAGE,
					"stage '%s' appears twice in a run",
					run->stages[i].stage);
		else if (!run->stages[i].ours &&
			 !in_prev(prev, b->entries[i], &b->oids[i]))
			ret = check_stage_commit(st, &run->stages[i], &oid,
						 err);
	}
	strmap_release(&seen);
	return ret;
}

/* Shard s's tree. One equal to the previous record's was checked then:
 * only a changed shard is read and checked. */
static int shard_tree(struct store *st, const struct store_run *run,
		      const struct run_build *b, unsigned s,
		      struct prev_run *prev, struct sgit_oid *out,
		      struct error *err)
{
	size_t n = b->start[s + 1] - b->start[s];
	struct sgit_entry *e = xcalloc(n + 1, sizeof(*e));
	int ret;

	for (size_t k = 0; k < n; k++) {
		size_t i = b->order[b->start[s] + k];

		e[k] = (struct sgit_entry){b->entries[i], SGIT_MODE_GITLINK,
					   b->oids[i]};
	}
	ret = sgit_write_tree(st->git, e, n, out, err);
	if (!ret && !(prev->has[s] && sgit_oid_equal(&prev->shard[s], out)))
		ret = check_shard(st, run, b, s, prev, err);
	free(e);
	return ret;
}

/* The run's tree: stages/<shard>/<entry> -> gitlink to the stage commit,
 * and the untracked inputs. */
static int run_tree(struct store *st, const struct store_run *run,
		    const struct sgit_oid *parent, struct sgit_oid *out,
		    struct error *err)
{
	struct run_build b;
	struct prev_run prev;
	struct sgit_entry top[SHARDS];
	char names[SHARDS][3];
	struct sgit_oid stages;
	size_t ntop = 0;
	int ret = -1;

	if (!run->stages_nr)
		return store_run_root(st, run, NULL, out, err);
	memset(&prev, 0, sizeof(prev));
	strbuf_init(&prev.names, 0);
	if (build_init(&b, run, err))
		goto out;
	if (parent)
		prev_load(st, parent, &prev);
	for (unsigned s = 0; s < SHARDS; s++) {
		if (b.start[s] == b.start[s + 1])
			continue;
		snprintf(names[ntop], sizeof(names[ntop]), "%02x", s);
		top[ntop].name = names[ntop];
		top[ntop].mode = SGIT_MODE_TREE;
		if (shard_tree(st, run, &b, s, &prev, &top[ntop++].oid, err))
			goto out;
	}
	if (!sgit_write_tree(st->git, top, ntop, &stages, err))
		ret = store_run_root(st, run, &stages, out, err);
out:
	prev_release(&prev);
	build_release(&b, run);
	return ret;
}

int store_write_run(struct store *st, const struct store_run *run, char *out_id,
		    struct error *err)
{
	struct strbuf msg = STRBUF_INIT;
	struct sgit_oid tree, parent, commit;
	struct sgit_ref_move mv;
	int has_parent, ret = -1;

	if ((has_parent = sgit_ref_read(st->git, RUNS_REF, &parent, err)) < 0 ||
	    run_tree(st, run, has_parent ? &parent : NULL, &tree, err))
		goto out;
	store_run_format(run, &msg);
	if (sgit_write_commit(st->git, &tree, &parent, has_parent ? 1 : 0,
			      msg.buf, &commit, err) ||
	    sgit_flush(st->git, err))
		goto out;
	store_crash_point("store-run-before-ref");
	/* one ref moved: its loose file (libgit2 would read every packed
	 * ref to check that no ref is named refs/pipe/runs/...) */
	mv.name = RUNS_REF;
	mv.oid = commit;
	mv.has_old = has_parent;
	if (has_parent)
		mv.old = parent;
	if (sgit_refs_move(st->git, &mv, 1, err))
		goto out;
	sgit_oid_hex(&commit, out_id);
	ret = 0;
out:
	if (ret)
		sgit_discard(st->git);
	strbuf_release(&msg);
	return ret;
}

/* ---- reading records ----------------------------------------------- */

struct stages_read {
	struct store_run *run;
	struct strbuf name;
	struct error *err;
};

static int stage_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		    void *data)
{
	struct stages_read *r = data;
	const char *entry = strrchr(path, '/');
	char hex[SGIT_HEXSZ + 1];

	if (mode != SGIT_MODE_GITLINK)
		return 0;
	entry = entry ? entry + 1 : path;
	if (store_entry_stage(entry, &r->name))
		return error_set(r->err, EXIT_FAILED,
				 "malformed stage entry '%s'", path);
	sgit_oid_hex(oid, hex);
	store_run_add_stage(r->run, r->name.buf, hex);
	return 0;
}

static int by_stage(const void *a, const void *b)
{
	return strcmp(((const struct store_run_stage *)a)->stage,
		      ((const struct store_run_stage *)b)->stage);
}

/* A format-2 record's stages, from its tree: every shard is read. */
static int read_stages(struct store *st, const struct sgit_oid *tree,
		       struct store_run *run, struct error *err)
{
	struct stages_read r = {run, STRBUF_INIT, err};
	struct sgit_oid stages;
	unsigned mode;
	int rc = 0;

	if (run->format < 2 || (long long)run->stages_nr >= run->stage_count)
		return 0;
	rc = sgit_tree_lookup(st->git, tree, "stages", &mode, &stages, err);
	if (rc > 0)
		rc = mode == SGIT_MODE_TREE
			     ? sgit_tree_walk(st->git, &stages, stage_cb, &r,
					      err)
			     : error_set(err, EXIT_FAILED,
					 "'stages' is not a folder");
	strbuf_release(&r.name);
	if (rc < 0)
		return -1;
	if ((long long)run->stages_nr != run->stage_count)
		return error_set(err, EXIT_FAILED,
				 "the record names %lld stages, its tree %zu",
				 run->stage_count, run->stages_nr);
	qsort(run->stages, run->stages_nr, sizeof(*run->stages), by_stage);
	return 0;
}

/* A run record; with_stages 0 leaves a format-2 record's stages unread. */
static int read_run_oid(struct store *st, const struct sgit_oid *oid,
			int with_stages, struct store_run *out,
			struct error *err)
{
	struct sgit_commit c;
	int rc;

	store_run_init(out);
	if (sgit_read_commit(st->git, oid, &c, err))
		return -1;
	rc = store_run_parse(c.message, out, err);
	sgit_oid_hex(oid, out->id);
	if (!rc) {
		if (c.nparents)
			sgit_oid_hex(&c.parents[0], out->parent);
		out->time = c.time;
		rc = store_run_read_inputs(st, &c.tree, out, err);
		if (!rc && with_stages)
			rc = read_stages(st, &c.tree, out, err);
	}
	if (rc) {
		error_prefix(err, "run record '%s': ", out->id);
		store_run_release(out);
	}
	sgit_commit_release(&c);
	return rc;
}

int store_read_run(struct store *st, const char *id, struct store_run *out,
		   struct error *err)
{
	struct sgit_oid oid;

	store_run_init(out);
	if (store_parse_id(id, &oid, err))
		return -1;
	return read_run_oid(st, &oid, 1, out, err);
}

int store_run_read_stages(struct store *st, struct store_run *run,
			  struct error *err)
{
	struct sgit_oid oid;
	struct sgit_commit c;
	int rc;

	if (run->format < 2 || (long long)run->stages_nr >= run->stage_count)
		return 0;
	if (store_parse_id(run->id, &oid, err) ||
	    sgit_read_commit(st->git, &oid, &c, err))
		return -1;
	rc = read_stages(st, &c.tree, run, err);
	sgit_commit_release(&c);
	if (rc)
		error_prefix(err, "run record '%s': ", run->id);
	return rc;
}

void store_runs_free(struct store_run *r, size_t nr)
{
	if (!r)
		return;
	for (size_t i = 0; i < nr; i++)
		store_run_release(&r[i]);
	free(r);
}

int store_list_runs(struct store *st, size_t max, struct store_run **out,
		    size_t *nr, struct error *err)
{
	struct oid_list hist = {0};
	struct store_run *v = NULL;
	size_t i = 0;
	int ret = -1;

	*out = NULL;
	*nr = 0;
	if (store_history(st, RUNS_REF, max, &hist, err))
		goto out;
	v = xcalloc(hist.nr + 1, sizeof(*v));
	for (i = 0; i < hist.nr; i++)
		if (read_run_oid(st, &hist.v[i], 0, &v[i], err))
			goto out;
	*out = v;
	*nr = hist.nr;
	v = NULL;
	ret = 0;
out:
	store_runs_free(v, i);
	free(hist.v);
	return ret;
}

struct runs_refs {
	struct strvec names;
};

static int runs_ref_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	struct runs_refs *r = data;
	size_t len = strlen(name);

	(void)oid;
	if (len > 5 && !strcmp(name + len - 5, "/runs"))
		strvec_push(&r->names, name);
	return 0;
}

static int by_time_desc(const void *a, const void *b)
{
	const struct store_run *x = a, *y = b;

	return (x->time < y->time) - (x->time > y->time);
}

int store_list_runs_all(struct store *st, struct store_run **out, size_t *nr,
			struct error *err)
{
	struct runs_refs refs = {STRVEC_INIT};
	struct oid_list hist = {0};
	struct store_run *v = NULL;
	size_t n = 0, alloc = 0;
	int ret = -1;

	*out = NULL;
	*nr = 0;
	strvec_push(&refs.names, RUNS_REF);
	if (sgit_ref_foreach(st->git, "refs/pipe/remotes/*", runs_ref_cb, &refs,
			     err))
		goto out;
	for (size_t r = 0; r < refs.names.nr; r++) {
		free(hist.v); /* store_history starts a new list */
		if (store_history(st, refs.names.v[r], 0, &hist, err))
			goto out;
		for (size_t i = 0; i < hist.nr; i++) {
			char hex[SGIT_HEXSZ + 1];
			int dup = 0;

			/* a pulled history shares its older runs with others */
			sgit_oid_hex(&hist.v[i], hex);
			for (size_t k = 0; k < n && !dup; k++)
				dup = !strcmp(v[k].id, hex);
			if (dup)
				continue;
			ALLOC_GROW(v, n + 1, alloc);
			if (read_run_oid(st, &hist.v[i], 0, &v[n], err))
				goto out;
			n++;
		}
	}
	qsort(v, n, sizeof(*v), by_time_desc);
	*out = v;
	*nr = n;
	v = NULL;
	ret = 0;
out:
	store_runs_free(v, n);
	free(hist.v);
	strvec_clear(&refs.names);
	return ret;
}
