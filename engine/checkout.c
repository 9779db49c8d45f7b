/* pipe checkout: put the outputs of a stage commit or a whole run back into
 * the workspace, and record each restored stage as fresh exactly when its
 * current inputs give the key the commit was made with. */
#include "engine/datums.h"
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/plan.h"
#include "engine/state.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* After the files are back: a stage whose fingerprint now has the
 * commit's key is fresh (its record is replaced); otherwise its old record
 * stays, and status reports the outputs as modified. */
static int settle(struct engine *e, struct store *st, const char *stage,
		  const char *commit, struct error *err)
{
	const struct pf_stage *ps = pipefile_find_stage(e->pf, stage);
	struct stage_record *cur = NULL;
	struct store_prov p;
	char key[HASH_HEX_LEN + 1];
	int ret = 0;

	if (!ps) {
		log_warn("stage '%s' of %.12s is not in the Pipefile", stage,
			 commit);
		return 0;
	}
	if (store_read_prov(st, commit, &p, err))
		return -1;
	if (plan_fingerprint(e, (size_t)(ps - e->pf->stages), &cur, 1, err)) {
		store_prov_release(&p);
		return -1;
	}
	hash_to_hex(&cur->key, key);
	if (!strcmp(key, p.key)) {
		ret = plan_hash_outputs(e, (size_t)(ps - e->pf->stages), cur,
					err);
		if (!ret && cur->datum_nr &&
		    datums_files_from_store(st, stage, cur, err)) {
			/* without them a later merge could leave stale files:
			 * the stage stays as it was recorded */
			log_warn("%s; '%s' is left as it was recorded",
				 err->msg.buf, stage);
			error_release(err);
		} else if (!ret) {
			log_info("%-5s %s (%.12s)", "fresh", stage, commit);
			state_put(e->state, cur);
			cur = NULL;
		}
	} else {
		log_info("%-5s %s (%.12s): its inputs have changed since",
			 "stale", stage, commit);
	}
	stage_record_free(cur);
	store_prov_release(&p);
	return ret;
}

int engine_checkout(struct engine *e, const char *ref, struct error *err)
{
	struct store *st;
	struct store_run run;
	struct store_prov p;
	char id[STORE_ID_SIZE];
	int is_run = 0, ret = 0;

	if (engine_store(e, &st, err) ||
	    store_resolve(st, ref, id, &is_run, err) ||
	    store_restore(st, id, e->workspace, err))
		return -1;
	if (!is_run) {
		if (store_read_prov(st, id, &p, err))
			return -1;
		ret = settle(e, st, p.stage, id, err);
		store_prov_release(&p);
	} else {
		if (store_read_run(st, id, &run, err))
			return -1;
		for (size_t i = 0; i < run.stages_nr && !ret; i++)
			ret = settle(e, st, run.stages[i].stage,
				     run.stages[i].commit, err);
		store_run_release(&run);
	}
	return ret ? -1 : state_save(e->state, err);
}
