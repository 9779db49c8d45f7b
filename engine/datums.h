/* The datums of a `datums:` stage: each unit writes a private PIPE_OUT
 * folder, its result is kept in the store under the datum's key (so a
 * datum reverted to earlier content is restored, not rerun), and the
 * stage's one output folder is the merge of the current datums' results. */
#ifndef ENGINE_DATUMS_H
#define ENGINE_DATUMS_H

#include <stddef.h>

#include "util/error.h"

struct engine;
struct stage_record;
struct state_datum;
struct store;

/* The PIPE_OUT folder of datum i of stage, workspace-relative; it lives
 * from the unit's start to the stage's merge. Caller frees. */
char *datums_out_dir(const char *stage, size_t i);

/* Before a datums stage runs: remove the PIPE_OUT folders a killed run
 * left, and move the results older pipes kept in .pipe/datums/STAGE into
 * the store. Returns 0 when some could not be moved (the stage's record
 * may then name results the store lacks: datums_stored must not trust
 * it), else 1. */
int datums_begin(struct store *st, const char *stage);
/* After it ran (merged or failed): remove its PIPE_OUT folders. */
void datums_end(const char *stage);

/* 1 when the store holds a result for datum d of stage, 0 when not. A
 * datum that old (the stage's record, or NULL) names with the same key is
 * stored: a record is saved only after the results it names. */
int datums_stored(struct store *st, const struct stage_record *old,
		  const char *stage, const struct state_datum *d,
		  struct error *err);

/* Datum i of cur succeeded: store its PIPE_OUT folder as its result and
 * fill its file list. The folder stays for datums_merge. */
int datums_keep(struct store *st, const char *stage, struct stage_record *cur,
		size_t i, struct error *err);

/* Bring the stage's output folder to the merge of cur's datums: those
 * with ran[i] set come from their PIPE_OUT folders (moved, not copied),
 * the others from the store. When the folder is as last recorded, only
 * datums that were added, changed, ran or removed are touched; otherwise
 * it is rebuilt. Two datums writing the same path (or a file where
 * another writes a folder) is an error naming both. Fills each datum's
 * file list in cur. */
int datums_merge(struct engine *e, size_t stage, struct store *st,
		 struct stage_record *cur, const unsigned char *ran,
		 struct error *err);

/* Fill each datum's file list in cur from its result in the store (pipe
 * checkout: the output folder came back whole from a stage commit, and
 * the next incremental merge needs to know which files are whose). */
int datums_files_from_store(struct store *st, const char *stage,
			    struct stage_record *cur, struct error *err);

#endif
