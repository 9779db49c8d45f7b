/* `pipe reproduce`: the project as of an old git commit, in a scratch
 * tree, with the untracked inputs its runs recorded, run against a
 * scratch store that sees the workspace's store (and writes nothing to
 * it), so that what the store has is restored and only the rest runs. */
#ifndef ENGINE_REPRODUCE_H
#define ENGINE_REPRODUCE_H

#include <stddef.h>
#include <stdio.h>

#include "util/error.h"

struct store;
struct store_run;

struct reproduce_options {
	const char *rev;      /* anything git rev-parse takes */
	const char *out_dir;  /* -o DIR, or NULL: .pipe/reproduce/<commit> */
	const char *pipefile; /* the workspace's Pipefile (its name is looked
			       * up at rev, in the same folder) */
};

struct reproduce {
	char commit[41];	/* rev's commit */
	char *dir;		/* the scratch tree (absolute) */
	char *workspace;	/* the workspace in it (absolute) */
	char *pipefile;		/* its Pipefile (absolute) */
	int lock_fd;		/* the workspace's lock, held throughout */
	struct store *st;	/* the workspace's store */
	struct store_run *runs; /* the runs at commit, newest first */
	size_t runs_nr;
	size_t restored; /* untracked input files restored */
};

/*
 * Take the workspace's lock, resolve rev, make the scratch tree (refusing
 * an -o DIR that holds files pipe did not write there; one pipe wrote is
 * replaced), write the project's files at rev into it, then the untracked
 * inputs the runs at that commit recorded (the newest run's copy of a
 * path wins), check that every input no stage writes is there, and make
 * the scratch workspace's store (store_make_shadow). Errors name what is
 * missing: EXIT_USAGE for a bad rev, a rev without the Pipefile, no run
 * at that commit or a -o DIR that is not pipe's; EXIT_FAILED for inputs
 * no run recorded. The caller then runs `pipe run` in r->workspace.
 */
int reproduce_prepare(struct reproduce *r, const struct reproduce_options *o,
		      struct error *err);

/* After the run: which stages came from the store and which ran (the
 * scratch workspace's newest run record), and where the outputs are. */
int reproduce_report(struct reproduce *r, FILE *out, struct error *err);

/* After a run without the cache: each stage's outputs against the commit
 * the runs at r->commit recorded for it, one line per stage, "identical"
 * or "differs" with the paths. *differs gets the number that differ. */
int reproduce_verify(struct reproduce *r, FILE *out, size_t *differs,
		     struct error *err);

void reproduce_release(struct reproduce *r);

#endif
