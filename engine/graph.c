/* Builds the stage graph from the Pipefile model: edges from writers to
 * readers found through a sorted index of outputs (so 10,000 stages cost
 * O(n log n), not n^2), then overlap, self-read and cycle checks and a
 * deterministic topological order. */
#include "engine/graph.h"
#include "pipefile/pipefile.h"
#include "util/glob.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/suggest.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

struct out_ref {
	const char *path; /* borrowed from the model */
	size_t len;	  /* without trailing slashes */
	size_t stage;
	const struct pf_path *pp;
};

struct builder {
	const struct pipefile *pf;
	struct graph *g;
	struct out_ref *outs;
	size_t outs_nr;
	/* the last ancestor searched ("in" of "in/5") and where it lands:
	 * 100,000 stages ask for the same few folders again and again */
	struct strbuf up;
	size_t up_at;
	int up_set;
};

static int cmp_prefix(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = memcmp(a, b, n);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int cmp_out(const void *a, const void *b)
{
	const struct out_ref *x = a, *y = b;
	int c = cmp_prefix(x->path, x->len, y->path, y->len);

	if (c)
		return c;
	return x->stage < y->stage ? -1 : x->stage > y->stage;
}

/* First output whose path is >= (s, n). */
static size_t lower_bound(const struct builder *b, const char *s, size_t n)
{
	size_t lo = 0, hi = b->outs_nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct out_ref *o = &b->outs[mid];

		if (cmp_prefix(o->path, o->len, s, n) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void add_dep(struct graph *g, size_t from, size_t to)
{
	struct graph_node *n = &g->nodes[to];

	ALLOC_GROW(n->deps, n->deps_nr + 1, n->deps_alloc);
	n->deps[n->deps_nr++] = from;
}

static int self_read(struct builder *b, size_t stage, const struct pf_path *in,
		     const struct out_ref *o, struct error *err)
{
	return pipefile_error_at(b->pf, err, in->line, in->col,
				 "stage '%s' reads its own output '%s'",
				 b->pf->stages[stage].name, o->pp->path);
}

static int link(struct builder *b, size_t reader, const struct pf_path *in,
		const struct out_ref *o, struct error *err)
{
	if (o->stage == reader)
		return self_read(b, reader, in, o, err);
	add_dep(b->g, o->stage, reader);
	return 0;
}

/* lower_bound of an ancestor folder, remembered for the next stage. */
static size_t ancestor_bound(struct builder *b, const char *s, size_t n)
{
	if (b->up_set && b->up.len == n && !memcmp(b->up.buf, s, n))
		return b->up_at;
	strbuf_reset(&b->up);
	strbuf_add(&b->up, s, n);
	b->up_at = lower_bound(b, s, n);
	b->up_set = 1;
	return b->up_at;
}

/* Outputs equal to (s, n) or to one of its ancestors. */
static int link_ancestors(struct builder *b, size_t reader,
			  const struct pf_path *in, const char *s, size_t n,
			  int is_glob, struct error *err)
{
	for (size_t cut = n; cut > 0;) {
		size_t i = cut == n ? lower_bound(b, s, cut)
				    : ancestor_bound(b, s, cut);

		for (; i < b->outs_nr &&
		       !cmp_prefix(b->outs[i].path, b->outs[i].len, s, cut);
		     i++) {
			if (is_glob &&
			    !glob_match_under(in->path, b->outs[i].path))
				continue;
			if (link(b, reader, in, &b->outs[i], err))
				return -1;
		}
		while (cut > 0 && s[cut - 1] != '/')
			cut--;
		while (cut > 0 && s[cut - 1] == '/')
			cut--;
	}
	return 0;
}

/* Outputs strictly inside (s, n): a contiguous range in sorted order. */
static int link_inside(struct builder *b, size_t reader,
		       const struct pf_path *in, const char *s, size_t n,
		       int is_glob, struct error *err)
{
	struct strbuf key = STRBUF_INIT;
	size_t i;
	int ret = 0;

	strbuf_add(&key, s, n);
	if (n)
		strbuf_addch(&key, '/');
	for (i = lower_bound(b, key.buf, key.len); i < b->outs_nr; i++) {
		const struct out_ref *o = &b->outs[i];

		if (o->len < key.len || memcmp(o->path, key.buf, key.len))
			break;
		if (is_glob && !glob_match_under(in->path, o->path))
			continue;
		if ((ret = link(b, reader, in, o, err)))
			break;
	}
	strbuf_release(&key);
	return ret;
}

static int link_input(struct builder *b, size_t reader,
		      const struct pf_path *in, struct error *err)
{
	size_t n;

	if (in->is_glob) {
		n = glob_literal_prefix(in->path);
		while (n > 0 && in->path[n - 1] == '/')
			n--;
	} else {
		n = path_trimmed_len(in->path);
	}
	if (link_ancestors(b, reader, in, in->path, n, in->is_glob, err))
		return -1;
	return link_inside(b, reader, in, in->path, n, in->is_glob, err);
}

static int check_overlaps(struct builder *b, struct error *err)
{
	for (size_t i = 0; i < b->outs_nr; i++) {
		const struct out_ref *o = &b->outs[i];

		/* an ancestor (or an equal path) of o that another stage
		 * writes: sorted order puts it before o */
		for (size_t cut = o->len; cut > 0;) {
			size_t j = cut == o->len
					   ? lower_bound(b, o->path, cut)
					   : ancestor_bound(b, o->path, cut);

			for (; j < b->outs_nr && j != i &&
			       !cmp_prefix(b->outs[j].path, b->outs[j].len,
					   o->path, cut);
			     j++) {
				const struct out_ref *p = &b->outs[j];

				if (p->stage == o->stage)
					continue;
				return pipefile_error_at(
					b->pf, err, o->pp->line, o->pp->col,
					"outputs of '%s' and '%s' overlap: "
					"'%s' and '%s'",
					b->pf->stages[p->stage].name,
					b->pf->stages[o->stage].name,
					p->pp->path, o->pp->path);
			}
			while (cut > 0 && o->path[cut - 1] != '/')
				cut--;
			while (cut > 0 && o->path[cut - 1] == '/')
				cut--;
		}
	}
	return 0;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort and dedupe each stage's deps; then move every list into one
 * block (graph.edges): the deps, then the reverse edges, filled in stage
 * order so that each list is ascending. */
static void finish_edges(struct graph *g)
{
	size_t total = 0, at = 0;

	for (size_t i = 0; i < g->nr; i++) {
		struct graph_node *n = &g->nodes[i];
		uint32_t k = 0;

		if (n->deps_nr > 1)
			qsort(n->deps, n->deps_nr, sizeof(*n->deps), cmp_size);
		for (size_t j = 0; j < n->deps_nr; j++)
			if (!k || n->deps[k - 1] != n->deps[j])
				n->deps[k++] = n->deps[j];
		n->deps_nr = k;
		total += k;
		for (size_t j = 0; j < k; j++)
			g->nodes[n->deps[j]].rdeps_alloc++;
	}
	if (!total)
		return; /* no list, no block */
	g->edges = xcalloc(2 * total, sizeof(*g->edges));
	for (size_t i = 0; i < g->nr; i++) {
		struct graph_node *n = &g->nodes[i];
		size_t *own = n->deps;

		n->deps = n->deps_nr ? memcpy(g->edges + at, own,
					      n->deps_nr * sizeof(*own))
				     : NULL;
		n->deps_alloc = n->deps_nr;
		at += n->deps_nr;
		free(own);
	}
	for (size_t i = 0; i < g->nr; i++) {
		struct graph_node *n = &g->nodes[i];

		n->rdeps = n->rdeps_alloc ? g->edges + at : NULL;
		at += n->rdeps_alloc;
	}
	for (size_t i = 0; i < g->nr; i++)
		for (size_t j = 0; j < g->nodes[i].deps_nr; j++) {
			struct graph_node *up = &g->nodes[g->nodes[i].deps[j]];

			up->rdeps[up->rdeps_nr++] = i;
		}
}

/* Min-heap of ready stage indices, so ties keep file order. */
static void heap_push(size_t *h, size_t *n, size_t v)
{
	size_t i = (*n)++;

	while (i && h[(i - 1) / 2] > v) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static size_t heap_pop(size_t *h, size_t *n)
{
	size_t top = h[0], v = h[--(*n)], i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1] < h[c])
			c++;
		if (h[c] >= v)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
	return top;
}

/* Stages a cycle's message names at most: the first and last half. */
#define CYCLE_SHOWN 8

/* Walks upstream from a stage left over by Kahn's algorithm until a stage
 * repeats, then reports that loop in the direction data flows. */
static int report_cycle(const struct graph *g, const size_t *indeg,
			struct error *err)
{
	size_t *pos = xmalloc(g->nr * sizeof(*pos)), *path = NULL;
	size_t path_nr = 0, path_alloc = 0, cur = 0;
	struct strbuf sb = STRBUF_INIT;
	int ret;

	for (size_t i = 0; i < g->nr; i++)
		pos[i] = (size_t)-1;
	while (indeg[cur] == 0)
		cur++;
	while (pos[cur] == (size_t)-1) {
		const struct graph_node *n = &g->nodes[cur];

		pos[cur] = path_nr;
		ALLOC_GROW(path, path_nr + 1, path_alloc);
		path[path_nr++] = cur;
		for (size_t j = 0; j < n->deps_nr; j++) {
			if (indeg[n->deps[j]]) {
				cur = n->deps[j];
				break;
			}
		}
	}
	/* path[pos[cur]..] walks upstream: data flows the other way. Print
	 * it in flow order, starting from the stage written first. */
	{
		size_t from = pos[cur], len = path_nr - from, first = 0;
		const struct pf_stage *s;

		for (size_t k = 1; k < len; k++)
			if (path[from + k] < path[from + first])
				first = k;
		/* a long one: its first and last stages, and its length */
		if (len > CYCLE_SHOWN)
			strbuf_addf(&sb,
				    "dependency cycle of %zu stages: ", len);
		else
			strbuf_addstr(&sb, "dependency cycle: ");
		for (size_t k = 0; k <= len; k++) {
			size_t at = (first + len - k % len) % len;

			if (k == len)
				at = first;
			if (len > CYCLE_SHOWN && k == CYCLE_SHOWN / 2) {
				strbuf_addstr(&sb, " -> ...");
				k = len - CYCLE_SHOWN / 2;
				at = (first + len - k) % len;
			}
			strbuf_addf(&sb, "%s%s", k ? " -> " : "",
				    g->pf->stages[path[from + at]].name);
		}
		s = &g->pf->stages[path[from + first]];
		ret = pipefile_error_at(g->pf, err, s->line, s->col, "%s",
					sb.buf);
	}
	strbuf_release(&sb);
	free(path);
	free(pos);
	return ret;
}

static int order(struct graph *g, struct error *err)
{
	size_t *indeg = xcalloc(g->nr, sizeof(*indeg));
	size_t *heap = xmalloc(g->nr * sizeof(*heap)), heap_nr = 0, done = 0;
	int ret = 0;

	g->order = xmalloc(g->nr * sizeof(*g->order));
	for (size_t i = 0; i < g->nr; i++) {
		indeg[i] = g->nodes[i].deps_nr;
		if (!indeg[i])
			heap_push(heap, &heap_nr, i);
	}
	while (heap_nr) {
		size_t v = heap_pop(heap, &heap_nr);
		const struct graph_node *n = &g->nodes[v];

		g->order[done++] = v;
		for (size_t j = 0; j < n->rdeps_nr; j++)
			if (--indeg[n->rdeps[j]] == 0)
				heap_push(heap, &heap_nr, n->rdeps[j]);
	}
	if (done < g->nr)
		ret = report_cycle(g, indeg, err);
	free(heap);
	free(indeg);
	return ret;
}

static void collect_outputs(struct builder *b)
{
	const struct pipefile *pf = b->pf;
	size_t alloc = 0;

	for (size_t i = 0; i < pf->nr; i++) {
		const struct pf_paths *o = &pf->stages[i].outputs;

		for (size_t j = 0; j < o->nr; j++) {
			struct out_ref *r;

			ALLOC_GROW(b->outs, b->outs_nr + 1, alloc);
			r = &b->outs[b->outs_nr++];
			r->path = o->v[j].path;
			r->len = path_trimmed_len(o->v[j].path);
			r->stage = i;
			r->pp = &o->v[j];
		}
	}
	if (b->outs_nr)
		qsort(b->outs, b->outs_nr, sizeof(*b->outs), cmp_out);
}

static int link_stage(struct builder *b, size_t i, struct error *err)
{
	const struct pf_stage *s = &b->pf->stages[i];

	for (size_t j = 0; j < s->inputs.nr; j++)
		if (link_input(b, i, &s->inputs.v[j], err))
			return -1;
	if (s->rare->datums.path && link_input(b, i, &s->rare->datums, err))
		return -1;
	return 0;
}

int graph_build(struct graph **out, const struct pipefile *pf,
		struct error *err)
{
	struct builder b = {pf, NULL, NULL, 0, STRBUF_INIT, 0, 0};
	struct graph *g = xcalloc(1, sizeof(*g));
	int ret = -1;

	*out = NULL;
	g->pf = pf;
	g->nr = pf->nr;
	g->nodes = xcalloc(pf->nr, sizeof(*g->nodes));
	b.g = g;
	collect_outputs(&b);
	if (check_overlaps(&b, err))
		goto out;
	for (size_t i = 0; i < pf->nr; i++)
		if (link_stage(&b, i, err))
			goto out;
	finish_edges(g);
	if (order(g, err))
		goto out;
	*out = g;
	g = NULL;
	ret = 0;
out:
	free(b.outs);
	strbuf_release(&b.up);
	graph_free(g);
	return ret;
}

void graph_free(struct graph *g)
{
	if (!g)
		return;
	/* before finish_edges (an error), each deps list is its own */
	for (size_t i = 0; !g->edges && i < g->nr; i++)
		free(g->nodes[i].deps);
	free(g->edges);
	free(g->nodes);
	free(g->order);
	free(g);
}

long graph_find(const struct graph *g, const char *name)
{
	for (size_t i = 0; i < g->nr; i++)
		if (!strcmp(g->pf->stages[i].name, name))
			return (long)i;
	return -1;
}

static void mark_upstream(const struct graph *g, size_t i, unsigned char *mark)
{
	size_t *stack = xmalloc(g->nr * sizeof(*stack)), n = 0;

	if (mark[i])
		goto out;
	mark[i] = 1;
	stack[n++] = i;
	while (n) {
		const struct graph_node *node = &g->nodes[stack[--n]];

		for (size_t j = 0; j < node->deps_nr; j++) {
			if (!mark[node->deps[j]]) {
				mark[node->deps[j]] = 1;
				stack[n++] = node->deps[j];
			}
		}
	}
out:
	free(stack);
}

static int unknown_stage(const struct graph *g, const char *name,
			 struct error *err)
{
	const char **names = xmalloc((g->nr + 1) * sizeof(*names));
	const char *best;

	for (size_t i = 0; i < g->nr; i++)
		names[i] = g->pf->stages[i].name;
	best = suggest_closest(name, names, g->nr);
	if (best)
		error_set(err, EXIT_USAGE,
			  "no stage '%s' in %s (did you mean '%s'?)", name,
			  g->pf->path, best);
	else
		error_set(err, EXIT_USAGE, "no stage '%s' in %s", name,
			  g->pf->path);
	free(names);
	return -1;
}

int graph_select(const struct graph *g, char *const *names, size_t n,
		 unsigned char *mark, struct error *err)
{
	memset(mark, 0, g->nr);
	if (!n) {
		memset(mark, 1, g->nr);
		return 0;
	}
	for (size_t k = 0; k < n; k++) {
		int hit = 0;

		for (size_t i = 0; i < g->nr; i++) {
			const struct pf_stage *s = &g->pf->stages[i];

			if (!strcmp(s->name, names[k]) ||
			    (s->base && !strcmp(s->base, names[k]))) {
				mark_upstream(g, i, mark);
				hit = 1;
			}
		}
		if (!hit)
			return unknown_stage(g, names[k], err);
	}
	return 0;
}
