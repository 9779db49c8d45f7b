/* The explain pass: fingerprint each stage in run order and compare it
 * with its record, without running anything (pipe status, pipe run -n). */
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/plan.h"
#include "engine/run.h"
#include "engine/scan.h"
#include "engine/state.h"
#include "pipefile/pipefile.h"
#include "util/xalloc.h"

#include <stdlib.h>

static int explain_one(struct engine *e, size_t si, const unsigned char *stale,
		       int forced, struct stage_status *st, struct error *err)
{
	const struct graph_node *n = &e->g->nodes[si];
	const struct stage_record *old =
		state_find(e->state, e->pf->stages[si].name);
	struct stage_record *cur = NULL;
	int rc;

	st->stage = si;
	if (forced)
		reasons_add(&st->reasons, REASON_FORCED, NULL, NULL, NULL);
	for (size_t d = 0; d < n->deps_nr; d++)
		if (stale[n->deps[d]])
			reasons_add(&st->reasons, REASON_UPSTREAM,
				    e->pf->stages[n->deps[d]].name, NULL, NULL);
	if (plan_fingerprint_cmp(e, si, old, &cur, err))
		return -1;
	rc = plan_compare(e, si, old, cur, &st->reasons, err);
	stage_record_free(cur);
	if (rc < 0)
		return -1;
	st->stale = st->reasons.nr > 0;
	return 0;
}

int engine_explain(struct engine *e, const unsigned char *mark,
		   const unsigned char *forced, struct stage_status **out,
		   size_t *nr, struct error *err)
{
	unsigned char *stale = xcalloc(e->g->nr + 1, 1);
	struct stage_status *v = xcalloc(e->g->nr + 1, sizeof(*v));
	size_t n = 0;
	int ret = 0;

	plan_scan_ahead(e, mark);
	plan_prestat(e, mark);
	for (size_t k = 0; k < e->g->nr; k++) {
		size_t si = e->g->order[k];

		if (mark && !mark[si])
			continue;
		if (explain_one(e, si, stale, forced && forced[si], &v[n],
				err)) {
			n++;
			ret = -1;
			break;
		}
		stale[si] = v[n].stale;
		n++;
	}
	scan_prestat_stop();
	plan_scan_ahead_end(e);
	free(stale);
	if (ret) {
		engine_status_free(v, n);
		v = NULL;
		n = 0;
	}
	*out = v;
	*nr = n;
	return ret;
}

void engine_status_free(struct stage_status *v, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		reasons_release(&v[i].reasons);
	free(v);
}
