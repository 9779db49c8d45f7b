/* pipe push / pipe pull (issue #16): the store's stage commits, datum
 * indexes, run records and CAS files to and from a git remote (anything
 * libgit2 reaches) or S3 (s3://bucket/prefix). Remotes only ever gain:
 * objects go before the refs that name them, no remote ref is ever
 * overwritten (each workspace pushes to its own namespace, fast-forward
 * only; on S3 one create-only object per pushed tip), and a pull never
 * moves a local ref of the workspace: what it brings lands under
 * refs/pipe/remotes/<workspace id>/, where the run-cache finds it. See
 * docs/DESIGN.md "Remotes". */
#ifndef REMOTE_REMOTE_H
#define REMOTE_REMOTE_H

#include <stddef.h>

#include "store/git.h"
#include "store/store.h"
#include "util/error.h"

struct remote_opts {
	const char *endpoint; /* S3 only; NULL: from the environment */
	int jobs;	      /* transfers in flight; 0: 16 */
};

struct remote_stats {
	size_t refs;		  /* refs pushed or updated */
	size_t objects;		  /* git objects sent in packs (S3) */
	size_t files;		  /* CAS files sent or received */
	unsigned long long bytes; /* their size */
	long requests;		  /* S3 requests sent */
};

/* 1 when spec names S3 (s3://...). */
int remote_is_s3(const char *spec);

int remote_push(struct store *st, const char *spec, const struct remote_opts *o,
		struct remote_stats *s, struct error *err);
/* Bring what the remote has that the store lacks; touches no file of the
 * workspace and no local ref outside refs/pipe/remotes/. */
int remote_pull(struct store *st, const char *spec, const struct remote_opts *o,
		struct remote_stats *s, struct error *err);

/*
 * The key of a ref object on S3, below the prefix:
 *   refs/<workspace id: 16 hex>/<commit: 40 hex>/<ref below refs/pipe/>
 * where the ref is "runs", "stages/<...>" or "datums/<...>". Parsing is
 * pure (fuzzed: fuzz_remote). Returns 0 and fills ws (17 bytes), oid and
 * *suffix (pointing into key), or -1 for anything else.
 */
#define REMOTE_WS_LEN 16
int remote_ref_key_parse(const char *key, char *ws, struct sgit_oid *oid,
			 const char **suffix);
/* 1 when suffix is one pipe pushes: "runs", "stages/X", "datums/X" with X
 * non-empty, no empty, "." or ".." component, no control byte, space or
 * any of ~^:?*[\ and no "@{" or ".lock" ending. */
int remote_ref_suffix_ok(const char *suffix);

#endif
