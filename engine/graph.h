/* The stage graph: which stage reads what another writes, checked for
 * overlapping outputs and cycles before anything runs, and a deterministic
 * run order. */
#ifndef ENGINE_GRAPH_H
#define ENGINE_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct pipefile;

/* 32 bytes a stage, and 8 bytes each way an edge (issue #17): the
 * counts are 32-bit (PIPEFILE_MAX_STAGES is 1,000,000), and once built
 * every list lies in one block (graph.edges), not a malloc each with
 * ALLOC_GROW's room for 24. */
struct graph_node {
	size_t *deps; /* upstream stage indices, ascending, unique */
	uint32_t deps_nr, deps_alloc;
	size_t *rdeps; /* downstream stage indices, ascending */
	uint32_t rdeps_nr, rdeps_alloc;
};

struct graph {
	const struct pipefile *pf; /* borrowed */
	struct graph_node *nodes;  /* nodes[i] is pf->stages[i] */
	size_t nr;
	size_t *order; /* topological; ties keep file order */
	size_t *edges; /* private: the nodes' deps and rdeps lists */
};

/* Build the graph of pf. An edge A -> B exists when an input (or the datums
 * glob) of B equals, contains, lies inside, or matches by glob an output of
 * A. Errors (located in the Pipefile, exit code EXIT_USAGE): two stages'
 * outputs overlap; a stage reads its own output; a dependency cycle
 * ("dependency cycle: a -> b -> a"). *out is caller-owned (graph_free). */
int graph_build(struct graph **out, const struct pipefile *pf,
		struct error *err);
void graph_free(struct graph *g);

/* Index of the stage called name, or -1. Matrix stages can also be named
 * by their base name: then every expansion is marked (see graph_select). */
long graph_find(const struct graph *g, const char *name);

/* Mark (mark[i] = 1) the stages named in names[0..n) — exact names or the
 * base name of a matrix stage — and every stage they need, transitively.
 * n == 0 marks everything. Returns 0, or -1 naming an unknown stage (with
 * "did you mean" when one is close). */
int graph_select(const struct graph *g, char *const *names, size_t n,
		 unsigned char *mark, struct error *err);

#endif
