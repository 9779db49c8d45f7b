/* Moving a stage's outputs aside before it runs, back after it fails,
 * and checking them after it succeeds (the output guard's other half:
 * engine/guard.c keeps what pipe did not write before any of this). */
#ifndef ENGINE_OUTPUTS_H
#define ENGINE_OUTPUTS_H

#include <stddef.h>

#include "util/error.h"

struct engine;

/* Move every declared output of stage that exists into
 * .pipe/trash/STAGE/, making the folders the outputs go in. */
int outputs_aside(struct engine *e, size_t stage, struct error *err);

/* Put the moved-aside outputs back (restore: after a failure; what the
 * failed command wrote in their place is its own) or drop them. */
void outputs_back(struct engine *e, size_t stage, int restore);

/* A run killed with SIGKILL leaves outputs in .pipe/trash: put back those
 * whose place is still empty, drop the rest. */
void outputs_recover(struct engine *e);

/* After a stage exited 0: every declared output must exist, and be a
 * folder where a folder is declared. */
int outputs_verify(struct engine *e, size_t stage, struct error *err);

#endif
