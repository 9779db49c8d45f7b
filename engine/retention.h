/* What pipe keeps of its own history besides the store: job records and
 * their logs, pruned by the Pipefile's `keep:` (README "Retention"), and
 * what runs killed outright left in .pipe/trash. */
#ifndef ENGINE_RETENTION_H
#define ENGINE_RETENTION_H

#include "engine/jobs.h"
#include "util/error.h"

struct engine;

/* pipe gc: drop the job records `keep:` does not keep, those whose
 * output commit no ref keeps, and their logs, and logs no record names.
 * The engine holds the workspace lock. dry_run: count only. */
int engine_gc_jobs(struct engine *e, int dry_run, struct jobs_pruned *out,
		   struct error *err);

/* End of pipe run: when .pipe/jobs has grown well past what `keep:`
 * keeps (a stat tells), drop what `keep:` does not keep, as pipe gc
 * would but without looking into the store. Best effort: a failure is a
 * warning. */
void engine_trim_jobs(struct engine *e);

/* pipe gc, under the workspace lock (so no run is using them): remove
 * the staging folders of container outputs (.pipe/tmp/docker-PID-N) that
 * a killed run left; what they hold is what a container wrote, never the
 * workspace's own files. Returns the bytes (dry_run: that would go). */
unsigned long long engine_gc_tmp(int dry_run);

/* Folders in .pipe/trash (outputs moved aside by a run killed before it
 * could put them back): how many and their bytes. Left alone: pipe run
 * puts them back. */
void engine_trash_usage(size_t *folders, unsigned long long *bytes);

#endif
