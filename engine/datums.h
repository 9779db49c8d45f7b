/* Merging the outputs of a datums stage: each datum's private PIPE_OUT
 * folder, kept under its key in .pipe/datums/STAGE/KEY, becomes part of
 * the stage's one output folder. */
#ifndef ENGINE_DATUMS_H
#define ENGINE_DATUMS_H

#include <stddef.h>

#include "util/error.h"

struct engine;
struct stage_record;

/* Bring the stage's output folder to the merge of cur's datums. When the
 * folder is as last recorded, only datums that were added, changed or
 * removed are touched; otherwise it is rebuilt. Two datums writing the same
 * path is an error naming both. Fills each datum's file list in cur. */
int datums_merge(struct engine *e, size_t stage, struct stage_record *cur,
		 struct error *err);

#endif
