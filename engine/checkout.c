/* pipe checkout: put the outputs of a stage commit or a whole run back into
 * the workspace, exactly the paths each stage declares now, and record each
 * restored stage as fresh exactly when its current inputs give the key the
 * commit was made with. What pipe did not write is never overwritten
 * silently: checkout refuses and names it, or with --force keeps a copy
 * in the store first (engine/guard.h). */
#include "engine/datums.h"
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/guard.h"
#include "engine/plan.h"
#include "engine/state.h"
#include "pipefile/pipefile.h"
#include "store/store.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* One stage commit to put back. */
struct target {
	char *stage;
	char commit[STORE_ID_SIZE];
	size_t si;
	int known;	      /* the stage is in the Pipefile */
	struct strvec write;  /* its outputs to restore, as declared */
	struct strvec unsafe; /* of those, what pipe did not write */
};

struct checkout {
	struct engine *e;
	struct store *st;
	struct target *v;
	size_t nr, alloc;
};

static void add_target(struct checkout *c, const char *stage,
		       const char *commit)
{
	struct target *t;

	ALLOC_GROW(c->v, c->nr + 1, c->alloc);
	t = &c->v[c->nr++];
	memset(t, 0, sizeof(*t));
	t->stage = xstrdup(stage ? stage : "");
	memcpy(t->commit, commit, STORE_ID_SIZE);
	strvec_init(&t->write);
	strvec_init(&t->unsafe);
}

static void checkout_release(struct checkout *c)
{
	for (size_t i = 0; i < c->nr; i++) {
		free(c->v[i].stage);
		strvec_clear(&c->v[i].write);
		strvec_clear(&c->v[i].unsafe);
	}
	free(c->v);
}

static int targets(struct checkout *c, const char *ref, struct error *err)
{
	char id[STORE_ID_SIZE];
	int is_run = 0;

	if (store_resolve(c->st, ref, id, &is_run, err))
		return -1;
	if (is_run) {
		struct store_run run;

		if (store_read_run(c->st, id, &run, err))
			return -1;
		for (size_t i = 0; i < run.stages_nr; i++)
			add_target(c, run.stages[i].stage,
				   run.stages[i].commit);
		store_run_release(&run);
	} else {
		struct store_prov p;

		if (store_read_prov(c->st, id, &p, err))
			return -1;
		add_target(c, p.stage, id);
		store_prov_release(&p);
	}
	return 0;
}

static int declared(const struct pf_stage *s, const char *out)
{
	for (size_t i = 0; i < s->outputs.nr; i++)
		if (!strcmp(s->outputs.v[i].path, out))
			return 1;
	return 0;
}

/* What t writes: the commit's outputs that its stage declares now; and
 * which of those hold what pipe did not write. */
static int plan_target(struct checkout *c, struct target *t, struct error *err)
{
	const struct pf_stage *ps = pipefile_find_stage(c->e->pf, t->stage);
	struct store_manifest m;
	struct strvec unsafe = STRVEC_INIT;
	int ret = -1;

	if (!ps) {
		log_warn("stage '%s' of %.12s is not in the Pipefile: "
			 "nothing restored",
			 t->stage, t->commit);
		return 0;
	}
	t->known = 1;
	t->si = (size_t)(ps - c->e->pf->stages);
	if (store_read_manifest(c->st, t->commit, &m, err))
		return -1;
	for (size_t i = 0; i < m.outputs_nr; i++)
		if (declared(ps, m.outputs[i]))
			strvec_push(&t->write, m.outputs[i]);
		else
			log_warn("'%s' is no longer an output of stage '%s': "
				 "not restored",
				 m.outputs[i], t->stage);
	if (guard_unsafe(c->e, t->si, NULL, &unsafe, err))
		goto out;
	for (size_t i = 0; i < unsafe.nr; i++)
		for (size_t k = 0; k < t->write.nr; k++)
			if (!strcmp(unsafe.v[i], t->write.v[k]))
				strvec_push(&t->unsafe, unsafe.v[i]);
	ret = 0;
out:
	strvec_clear(&unsafe);
	store_manifest_release(&m);
	return ret;
}

/* As `git checkout` does: name every path and stop, before writing. */
static int refuse(struct checkout *c, const char *ref, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n = 0;

	for (size_t i = 0; i < c->nr; i++) {
		struct strvec files = STRVEC_INIT;

		if (c->v[i].unsafe.nr &&
		    guard_files(c->e, c->v[i].stage, c->v[i].unsafe.v, &files,
				err)) {
			strvec_clear(&files);
			strbuf_release(&sb);
			return -1;
		}
		for (size_t k = 0; k < files.nr; k++, n++)
			strbuf_addf(&sb, "\n    %s", files.v[k]);
		strvec_clear(&files);
	}
	if (!n) {
		strbuf_release(&sb);
		return 0;
	}
	error_set(err, EXIT_FAILED,
		  "checkout of '%s' would overwrite or remove %s that pipe "
		  "did not write (or that changed since):%s\n"
		  "move %s away first, or use 'pipe checkout --force %s' "
		  "(pipe keeps a copy in the store first)",
		  ref, n == 1 ? "this file" : "these files", sb.buf,
		  n == 1 ? "it" : "them", ref);
	strbuf_release(&sb);
	return -1;
}

/* Each input's hash as the commit recorded it, where it did. */
static void take_recorded_inputs(struct stage_record *rec,
				 const struct store_prov *p)
{
	for (size_t i = 0; i < rec->inputs_nr; i++)
		for (size_t k = 0; k < p->inputs_nr; k++)
			if (!strcmp(p->inputs[k].path, rec->inputs[i].path))
				hash_from_hex(p->inputs[k].hash,
					      &rec->inputs[i].hash);
}

/* Only the outputs the checkout wrote are pipe's now. Another declared
 * output (the commit did not have it) keeps what the old record said of
 * it, or is recorded missing: whatever is there stays someone else's
 * until pipe writes it. */
static void claim_restored(struct engine *e, const struct target *t,
			   struct stage_record *cur)
{
	const struct stage_record *old = state_find(e->state, t->stage);

	for (size_t i = 0; i < cur->outputs_nr; i++) {
		struct state_path *o = &cur->outputs[i];
		size_t k = 0, n;

		while (k < t->write.nr && strcmp(t->write.v[k], o->path))
			k++;
		if (k < t->write.nr)
			continue;
		memset(&o->hash, 0, sizeof(o->hash));
		o->missing = 1;
		for (n = 0; old && n < old->outputs_nr; n++)
			if (!strcmp(old->outputs[n].path, o->path)) {
				o->hash = old->outputs[n].hash;
				o->missing = old->outputs[n].missing;
			}
	}
}

/*
 * After the files are back: a stage whose fingerprint now has the commit's
 * key is fresh (its record is replaced). Otherwise it is stale, and its
 * record becomes the commit's key with the outputs as they are now, so
 * that status names the inputs that differ and later commands know these
 * outputs are pipe's (a datums stage keeps its old record: its per-datum
 * lists must match its outputs).
 */
static int settle(struct engine *e, struct store *st, const struct target *t,
		  struct error *err)
{
	struct stage_record *cur = NULL;
	struct store_prov p;
	char key[HASH_HEX_LEN + 1];
	int match, ret = 0;

	if (store_read_prov(st, t->commit, &p, err))
		return -1;
	if (plan_fingerprint(e, t->si, &cur, 1, err)) {
		store_prov_release(&p);
		return -1;
	}
	hash_to_hex(&cur->key, key);
	match = !strcmp(key, p.key);
	if (!match && cur->datum_nr) {
		log_info("%-5s %s (%.12s): its inputs have changed since",
			 "stale", t->stage, t->commit);
		goto out;
	}
	ret = plan_hash_outputs(e, t->si, cur, err);
	if (!ret && match && cur->datum_nr &&
	    datums_files_from_store(st, t->stage, cur, err)) {
		/* without them a later merge could leave stale files: the
		 * stage stays as it was recorded */
		log_warn("%s; '%s' is left as it was recorded", err->msg.buf,
			 t->stage);
		error_release(err);
	} else if (!ret) {
		if (match) {
			log_info("%-5s %s (%.12s)", "fresh", t->stage,
				 t->commit);
		} else {
			log_info("%-5s %s (%.12s): its inputs have changed "
				 "since",
				 "stale", t->stage, t->commit);
			hash_from_hex(p.key, &cur->key);
			take_recorded_inputs(cur, &p);
			claim_restored(e, t, cur);
		}
		state_put(e->state, cur);
		cur = NULL;
	}
out:
	stage_record_free(cur);
	store_prov_release(&p);
	return ret;
}

int engine_checkout(struct engine *e, const char *ref, int force,
		    struct error *err)
{
	struct checkout c = {.e = e};
	struct strbuf why = STRBUF_INIT;
	int ret = -1;

	if (engine_store(e, &c.st, err) || targets(&c, ref, err))
		goto out;
	for (size_t i = 0; i < c.nr; i++)
		if (plan_target(&c, &c.v[i], err))
			goto out;
	if (!force && refuse(&c, ref, err))
		goto out;
	strbuf_addf(&why, "before 'pipe checkout --force %s'", ref);
	for (size_t i = 0; i < c.nr; i++)
		if (c.v[i].unsafe.nr &&
		    guard_keep(e, c.v[i].stage, why.buf, c.v[i].unsafe.v, err))
			goto out;
	for (size_t i = 0; i < c.nr; i++) {
		struct target *t = &c.v[i];

		if (!t->known || !t->write.nr)
			continue;
		if (store_restore_outputs(c.st, t->commit, e->workspace,
					  t->write.v, err)) {
			error_prefix(err, "stage '%s': ", t->stage);
			goto out;
		}
	}
	for (size_t i = 0; i < c.nr; i++)
		if (c.v[i].known && settle(e, c.st, &c.v[i], err))
			goto out;
	ret = state_save(e->state, err);
out:
	strbuf_release(&why);
	checkout_release(&c);
	return ret;
}
