/* The output guard: pipe never deletes or overwrites a byte it cannot give
 * back. Before an output is replaced or removed (a run, a restore from the
 * run-cache, a checkout), what pipe did not write as it is now is kept in
 * the store (refs/pipe/displaced), or the command refuses and names it. */
#ifndef ENGINE_GUARD_H
#define ENGINE_GUARD_H

#include <stddef.h>

#include "util/error.h"

struct engine;
struct reasons;
struct strvec;

/*
 * The declared outputs of stage that pipe did not write as they are now:
 * with a record, each output that differs from what was recorded; without
 * one, each output that exists (an empty folder holds nothing to lose).
 * rs is what plan_compare said of the stage (NULL: worked out here).
 * The paths are appended to out as declared (folders end in '/').
 */
int guard_unsafe(struct engine *e, size_t stage, const struct reasons *rs,
		 struct strvec *out, struct error *err);

/*
 * Keep paths (declared outputs of stage, as guard_unsafe gives them) in
 * the store, on disk before this returns, and say so for each file that
 * is not in the stage's last commit as it is now: "kept your 'x' in the
 * store: pipe get displaced x". why: "before running stage 'a'".
 */
int guard_keep(struct engine *e, const char *stage, const char *why,
	       char *const *paths, struct error *err);

/* The files under paths (outputs of stage, as guard_unsafe gives them)
 * that the stage's last commit does not hold as they are, appended to out;
 * an output with no such file (a type changed, or a file went missing) is
 * appended itself. For messages that name every path. */
int guard_files(struct engine *e, const char *stage, char *const *paths,
		struct strvec *out, struct error *err);

/* guard_unsafe, then guard_keep of what it found. */
int guard_outputs(struct engine *e, size_t stage, const struct reasons *rs,
		  const char *why, struct error *err);

#endif
