/* Staleness: a stage's current fingerprint (its key and the parts it is
 * made of) compared with what was recorded, with every reason in words. */
#ifndef ENGINE_PLAN_H
#define ENGINE_PLAN_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"

struct engine;
struct pf_stage;
struct stage_record;

enum reason_kind {
	REASON_NEVER_RUN,
	REASON_DEFINITION,
	REASON_FORCED,
	REASON_COMMAND,
	REASON_EXECUTOR,
	REASON_IMAGE,
	REASON_ENV,
	REASON_PARAM,
	REASON_MATRIX,
	REASON_DATUMS,
	REASON_INPUT_CHANGED,
	REASON_INPUT_ADDED,
	REASON_INPUT_REMOVED,
	REASON_UPSTREAM,
	REASON_OUTPUT_MODIFIED,
	REASON_OUTPUT_MISSING,
	REASON_OUTPUT_ADDED,   /* an output declared now, not then */
	REASON_OUTPUT_DROPPED, /* an output declared then, not now */
};

struct reason {
	enum reason_kind kind;
	char *path;	 /* file, env or param key, stage; or NULL */
	char *old_value; /* params, images: the old value, or NULL */
	char *new_value;
};

struct reasons {
	struct reason *v;
	size_t nr, alloc;
};

void reasons_add(struct reasons *rs, enum reason_kind kind, const char *path,
		 const char *old_value, const char *new_value);
void reasons_release(struct reasons *rs);
/* "input 'data/a.csv' changed", "param 'pre.min_len' 3 -> 5", ... */
void reason_format(const struct reason *r, struct strbuf *out);
/* Stable identifier for --json: "never_run", "input_changed", ... */
const char *reason_kind_name(enum reason_kind kind);

/* Compute stage's current fingerprint: definition, resolved image, param
 * values and the hash of every input file (through the stat cache). The
 * record has no outputs yet. Errors: unreadable inputs, params, an input
 * that is missing and that no stage writes (EXIT_USAGE, located). */
int plan_fingerprint(struct engine *e, size_t stage, struct stage_record **out,
		     int with_files, struct error *err);

/* Before a read-only pass over the marked stages (all when mark is
 * NULL), walk their folder and glob inputs and outputs at once on every
 * CPU (engine/scan.h, scan_ahead); the fingerprints then use what was
 * found. plan_scan_ahead_end forgets it. */
void plan_scan_ahead(struct engine *e, const unsigned char *mark);
void plan_scan_ahead_end(struct engine *e);

/* The lstat calls of the selected stages' plain files (inputs no upstream
 * stage writes, and outputs), taken ahead on a second thread in stage
 * order (engine/scan.h, scan_prestat). Drop a stage's outputs before
 * anything writes them; scan_prestat_stop ends it. */
void plan_prestat(struct engine *e, const unsigned char *mark);
void plan_prestat_drop(struct engine *e, size_t si);

/* The fingerprint to compare with old (the recorded run, or NULL): without
 * per-file lists when the key matches (a no-op status over 100,000 files
 * copies none), with them otherwise (to name each changed file, and to be
 * recorded). A datums stage's has them from the start: it is computed once. */
int plan_fingerprint_cmp(struct engine *e, size_t stage,
			 const struct stage_record *old,
			 struct stage_record **out, struct error *err);

/* Compare the recorded run (old, may be NULL) with the current
 * fingerprint (cur) and the outputs in the workspace; append every reason
 * to rs. Returns 1 when stale, 0 when fresh, -1 on error. */
int plan_compare(struct engine *e, size_t stage, const struct stage_record *old,
		 const struct stage_record *cur, struct reasons *rs,
		 struct error *err);

/* Append to rs a reason for each declared output of stage that is missing
 * (REASON_OUTPUT_MISSING) or differs from what old (not NULL) recorded
 * (REASON_OUTPUT_MODIFIED). Returns 0 or -1. */
int plan_check_outputs(struct engine *e, size_t stage,
		       const struct stage_record *old, struct reasons *rs,
		       struct error *err);

/* Hash the stage's declared outputs into rec->outputs. A missing output
 * gets missing = 1. */
int plan_hash_outputs(struct engine *e, size_t stage, struct stage_record *rec,
		      struct error *err);

#endif
