/* Names for commits (STAGE, STAGE~N, runs, abbreviated ids) and run
 * records, which tie a pipeline's stage commits together under one id. */
#include "store/internal.h"
#include "util/strmap.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <ctype.h>
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

/* The stage commits of the previous run record (entry name -> oid),
 * checked when it was written: a run of k stages out of N reads k stage
 * commits, not N. */
struct prev_run {
	struct strmap map;
	struct strbuf names; /* NUL-separated */
	struct sgit_oid *oids;
	size_t nr, alloc;
};

static int prev_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		   void *data)
{
	struct prev_run *p = data;

	if (mode != SGIT_MODE_GITLINK || strncmp(path, "stages/", 7))
		return 0;
	ALLOC_GROW(p->oids, p->nr + 1, p->alloc);
	p->oids[p->nr++] = *oid;
	strbuf_add(&p->names, path + 7, strlen(path + 7) + 1);
	return 0;
}

static void prev_load(struct store *st, const struct sgit_oid *parent,
		      struct prev_run *p)
{
	struct error ignore = ERROR_INIT;
	struct sgit_commit c;
	const char *name;

	if (sgit_read_commit(st->git, parent, &c, &ignore))
		goto out;
	if (sgit_tree_walk(st->git, &c.tree, prev_cb, p, &ignore))
		p->nr = 0; /* checked one by one then */
	sgit_commit_release(&c);
	strmap_init(&p->map, p->nr);
	name = p->names.buf;
	for (size_t i = 0; i < p->nr; name += strlen(name) + 1, i++)
		strmap_put(&p->map, name, &p->oids[i]);
out:
	error_release(&ignore);
}

static int in_prev(const struct prev_run *p, const char *name,
		   const char *commit)
{
	const struct sgit_oid *oid = p->nr ? strmap_get(&p->map, name) : NULL;
	char hex[SGIT_HEXSZ + 1];

	if (!oid)
		return 0;
	sgit_oid_hex(oid, hex);
	return !strcmp(hex, commit);
}

/* The run's tree: stages/<stage> -> gitlink to the stage commit. */
static int run_tree(struct store *st, const struct store_run *run,
		    const struct sgit_oid *parent, struct sgit_oid *out,
		    struct error *err)
{
	struct sgit_entry *e = xcalloc(run->stages_nr + 1, sizeof(*e));
	struct sgit_entry top = {"stages", SGIT_MODE_TREE, {{0}}};
	struct strmap seen;
	struct prev_run prev = {{0}, STRBUF_INIT, NULL, 0, 0};
	size_t i;
	int ret = -1;

	strmap_init(&seen, run->stages_nr);
	if (parent)
		prev_load(st, parent, &prev);
	for (i = 0; i < run->stages_nr; i++) {
		e[i].name = store_stage_entry(run->stages[i].stage);
		e[i].mode = SGIT_MODE_GITLINK;
		if (in_prev(&prev, e[i].name, run->stages[i].commit)) {
			if (store_parse_id(run->stages[i].commit, &e[i].oid,
					   err))
				goto out;
		} else if (check_stage_commit(st, &run->stages[i], &e[i].oid,
					      err)) {
			goto out;
		}
		if (strmap_put(&seen, e[i].name, &e[i])) {
			error_set(err, EXIT_USAGE,
				  "stage '%s' appears twice in a run",
				  run->stages[i].stage);
			goto out;
		}
	}
	if (!run->stages_nr)
		ret = store_run_root(st, run, NULL, out, err);
	else if (!sgit_write_tree(st->git, e, run->stages_nr, &top.oid, err))
		ret = store_run_root(st, run, &top.oid, out, err);
out:
	strmap_release(&seen);
	strmap_release(&prev.map);
	strbuf_release(&prev.names);
	free(prev.oids);
	for (size_t j = 0; j < i + (i < run->stages_nr); j++)
		free((char *)e[j].name);
	free(e);
	return ret;
}

int store_write_run(struct store *st, const struct store_run *run, char *out_id,
		    struct error *err)
{
	struct strbuf msg = STRBUF_INIT;
	struct sgit_oid tree, parent, commit;
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
	if (sgit_ref_update(st->git, RUNS_REF, &commit,
			    has_parent ? &parent : NULL, err))
		goto out;
	sgit_oid_hex(&commit, out_id);
	ret = 0;
out:
	if (ret)
		sgit_discard(st->git);
	strbuf_release(&msg);
	return ret;
}

static int read_run_oid(struct store *st, const struct sgit_oid *oid,
			struct store_run *out, struct error *err)
{
	struct sgit_commit c;
	int rc;

	store_run_init(out);
	if (sgit_read_commit(st->git, oid, &c, err))
		return -1;
	rc = store_run_parse(c.message, out, err);
	if (!rc) {
		sgit_oid_hex(oid, out->id);
		if (c.nparents)
			sgit_oid_hex(&c.parents[0], out->parent);
		out->time = c.time;
		rc = store_run_read_inputs(st, &c.tree, out, err);
	} else {
		sgit_oid_hex(oid, out->id);
		error_prefix(err, "commit '%s': ", out->id);
		out->id[0] = '\0';
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
	return read_run_oid(st, &oid, out, err);
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
		if (read_run_oid(st, &hist.v[i], &v[i], err))
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
			if (read_run_oid(st, &hist.v[i], &v[n], err))
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
