/* The store's door to libgit2: a bare repository seen through pipe's types
 * (raw object ids, strbufs, struct error). Only store/git.c includes
 * <git2.h>; the rest of store/ goes through these functions. */
#ifndef STORE_GIT_H
#define STORE_GIT_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"
#include "util/strvec.h"

#define SGIT_RAWSZ 20
#define SGIT_HEXSZ 40

/* Tree entry modes, as git writes them. */
#define SGIT_MODE_TREE 0040000
#define SGIT_MODE_FILE 0100644
#define SGIT_MODE_EXEC 0100755
#define SGIT_MODE_LINK 0120000
#define SGIT_MODE_GITLINK 0160000

struct sgit_oid {
	unsigned char id[SGIT_RAWSZ];
};

/* out holds SGIT_HEXSZ + 1 bytes. */
void sgit_oid_hex(const struct sgit_oid *oid, char *out);
/* Parses exactly 40 hex digits; returns 0 or -1. */
int sgit_oid_parse(const char *hex, struct sgit_oid *out);
int sgit_oid_equal(const struct sgit_oid *a, const struct sgit_oid *b);

struct sgit;

/* Open the bare repository at gitdir, creating it when missing. Turns on
 * fsync of everything written below gitdir (objects, packs, refs); hash
 * verification stays on. */
int sgit_open(struct sgit **out, const char *gitdir, struct error *err);
void sgit_free(struct sgit *g);
const char *sgit_dir(const struct sgit *g);

/*
 * Writing. New objects collect in memory (a mempack) and sgit_flush()
 * writes them, fsynced: a few as loose objects, more as one pack (and past
 * 16 packs the small ones are merged). A size bound flushes earlier, so
 * memory stays bounded. A crash before the flush leaves no trace, a crash
 * after it unreferenced objects that gc removes.
 */
int sgit_write_blob(struct sgit *g, const void *data, size_t len,
		    struct sgit_oid *out, struct error *err);

struct sgit_entry {
	const char *name; /* one path component */
	unsigned mode;	  /* SGIT_MODE_* */
	struct sgit_oid oid;
};

/* Entries in any order; names must be unique. */
int sgit_write_tree(struct sgit *g, const struct sgit_entry *entries, size_t nr,
		    struct sgit_oid *out, struct error *err);
int sgit_write_commit(struct sgit *g, const struct sgit_oid *tree,
		      const struct sgit_oid *parents, size_t nparents,
		      const char *message, struct sgit_oid *out,
		      struct error *err);
/* Write pending objects to disk, fsynced. */
int sgit_flush(struct sgit *g, struct error *err);
/* Forget pending objects (after an error). */
void sgit_discard(struct sgit *g);

/*
 * Refs. sgit_ref_update is compare-and-swap: it moves name to new_oid only
 * when the ref still points at old_oid (old_oid NULL: only when the ref does
 * not exist yet), else fails with "ref moved" and changes nothing.
 */
int sgit_ref_read(struct sgit *g, const char *name, struct sgit_oid *out,
		  struct error *err); /* 1 found, 0 missing, -1 error */
int sgit_ref_update(struct sgit *g, const char *name,
		    const struct sgit_oid *new_oid,
		    const struct sgit_oid *old_oid, struct error *err);
/* Move many refs at once, each compare-and-swap (has_old: it must have
 * old now; else it must not exist), by rewriting packed-refs (see
 * store/packed.c): all move or, on a mismatch or error, none. Names are
 * unique. */
struct sgit_ref_move {
	const char *name;
	struct sgit_oid oid;
	int has_old;
	struct sgit_oid old;
};
int sgit_refs_move(struct sgit *g, const struct sgit_ref_move *v, size_t n,
		   struct error *err);
/* The same, saying what it did to packed-refs (rewritten: 1 when it
 * was): its identity (sgit_packed_identity) as read and as written, and
 * "<name> <hex>" of each ref it wrote there, moved or folded from its
 * loose file. The run-cache index (store/keys.c) follows its own
 * rewrites with it instead of reading every ref again. */
struct sgit_packed_report {
	int rewritten;
	struct strbuf before, after;
	struct strvec packed;
};
int sgit_refs_move_report(struct sgit *g, const struct sgit_ref_move *v,
			  size_t n, struct sgit_packed_report *rep,
			  struct error *err);
/* packed-refs' identity from its stat data: size, times, inode, device
 * (it is only ever replaced by rename), or "none" when st is NULL. */
struct stat;
void sgit_packed_identity(const struct stat *st, struct strbuf *out);
int sgit_ref_delete(struct sgit *g, const char *name, struct error *err);
/* Calls fn for every ref whose name matches glob (fnmatch style, where '*'
 * also matches '/'); fn returns 0 to go on, non-zero to stop (returned). */
typedef int (*sgit_ref_fn)(const char *name, const struct sgit_oid *oid,
			   void *data);
int sgit_ref_foreach(struct sgit *g, const char *glob, sgit_ref_fn fn,
		     void *data, struct error *err);
/* The same for every ref whose name starts with prefix (a folder, with
 * its '/'), read from packed-refs and the loose files directly: much less
 * work per ref than libgit2's iterator (store/packed.c). */
int sgit_refs_list(struct sgit *g, const char *prefix, sgit_ref_fn fn,
		   void *data, struct error *err);
/* 1 when refname is a valid git ref name. */
int sgit_ref_name_ok(const char *refname);

/* Reading. */
struct sgit_commit {
	struct sgit_oid tree;
	struct sgit_oid *parents;
	size_t nparents;
	long long time; /* committer time, unix seconds */
	char *message;	/* owned */
};
int sgit_read_commit(struct sgit *g, const struct sgit_oid *oid,
		     struct sgit_commit *out, struct error *err);
void sgit_commit_release(struct sgit_commit *c);
int sgit_read_blob(struct sgit *g, const struct sgit_oid *oid,
		   struct strbuf *out, struct error *err);
/* Look up path ("a/b/c", no trailing slash) below tree. Returns 1 and
 * fills mode and oid, 0 when absent, -1 on error. */
int sgit_tree_lookup(struct sgit *g, const struct sgit_oid *tree,
		     const char *path, unsigned *mode, struct sgit_oid *oid,
		     struct error *err);
/* Pre-order walk of tree; path is relative to tree's root. fn returns 0 to
 * go on, 1 to skip a subtree, -1 to stop (the walk then returns -1 and fn
 * should have set err). */
typedef int (*sgit_tree_fn)(const char *path, unsigned mode,
			    const struct sgit_oid *oid, void *data);
int sgit_tree_walk(struct sgit *g, const struct sgit_oid *tree, sgit_tree_fn fn,
		   void *data, struct error *err);
int sgit_object_exists(struct sgit *g, const struct sgit_oid *oid);

/* A commit whose id starts with hex (4 to 40 digits). Returns 1 found, 0
 * when no object starts so, 2 when several objects do (out unset), -1
 * error. */
int sgit_lookup_prefix(struct sgit *g, const char *hex, struct sgit_oid *out,
		       struct error *err);

/* Commits reachable from tips and not from hide, newest first. fn returns
 * 0 to go on, non-zero to stop (returned). first_parent follows only the
 * first parent of each commit. */
typedef int (*sgit_commit_fn)(const struct sgit_oid *oid, void *data);
int sgit_walk(struct sgit *g, const struct sgit_oid *tips, size_t ntips,
	      const struct sgit_oid *hide, size_t nhide, int first_parent,
	      sgit_commit_fn fn, void *data, struct error *err);

/* 1 when commit is ancestor or descends from it, 0 when not, -1 error. */
int sgit_descends(struct sgit *g, const struct sgit_oid *commit,
		  const struct sgit_oid *ancestor, struct error *err);

/*
 * Garbage collection: keep every object reachable from the commits in keep
 * (their trees and blobs; gitlinks are not followed), delete every other
 * object. Loose garbage is unlinked; when a pack holds garbage, or there is
 * more than one pack, everything kept is repacked into one pack (written
 * and fsynced before the old ones go). dry_run changes nothing. *freed gets
 * the bytes removed (dry run: an estimate). The caller must hold the store
 * lock: objects written meanwhile would be lost.
 */
int sgit_gc(struct sgit *g, const struct sgit_oid *keep, size_t nkeep,
	    int dry_run, unsigned long long *freed, struct error *err);

/* The project's git repository (found from the current folder as git finds
 * it, GIT_DIR included), read in one `git status --untracked-files=no`
 * pass. Never fails: what it cannot read is left empty. */
struct sgit_project {
	/* HEAD's commit id; "" outside a repository or before its first
	 * commit */
	struct strbuf head;
	int dirty;	      /* a tracked file has changes, staged or not */
	int in_tree;	      /* the workspace lies in the work tree */
	struct strbuf prefix; /* its path there: "" or "sub/" */
	/* tracked paths (from the work tree's top) whose index or work tree
	 * differs from HEAD, both sides of a change, sorted */
	char **changed;
	size_t changed_nr;
};
void sgit_project_read(struct sgit_project *p);
void sgit_project_release(struct sgit_project *p);

/* HEAD's tree as p read it, open for lookups. Returns 1, or 0 (*out
 * NULL) when p has no HEAD or the workspace lies outside the work tree.
 * p must outlive it. */
struct sgit_tracked;
int sgit_tracked_open(struct sgit_tracked **out, const struct sgit_project *p);
/* 1 when HEAD holds path (a workspace-relative file) as it is now: a file
 * (or symlink) of HEAD's tree that p did not find changed; else 0. */
int sgit_tracked_clean(struct sgit_tracked *t, const char *path);
void sgit_tracked_free(struct sgit_tracked *t);

/* ---- remotes (pipe push / pull) ----
 * spec is a remote name of the project's git (found from the current
 * folder as git finds it), a path, or a URL libgit2 reaches (file://,
 * ssh, https); url gets what to hand to sgit_fetch / sgit_push. An
 * unknown name fails with EXIT_USAGE. */
int sgit_remote_url(const char *spec, struct strbuf *url, struct error *err);
/* Fetch refspecs (NULL-terminated, git's syntax) from url into g. */
int sgit_fetch(struct sgit *g, const char *url, char *const *refspecs,
	       struct error *err);
/* Push refspecs to url; a ref the remote refuses (not a fast-forward,
 * moved meanwhile) fails naming it, with EXIT_ENV. */
int sgit_push(struct sgit *g, const char *url, char *const *refspecs,
	      struct error *err);
/* A pack (git's format, whole: no deltas against missing objects) of the
 * objects reachable from tips and not from hide (hide ids g lacks are
 * skipped) into out; *count objects (0: out empty). Its name is the hex of
 * its last 20 bytes (the pack's checksum). */
int sgit_pack_build(struct sgit *g, const struct sgit_oid *tips, size_t ntips,
		    const struct sgit_oid *hide, size_t nhide,
		    struct strbuf *out, size_t *count, struct error *err);
/* Index the pack file at path into g's objects/pack (the indexer checks
 * every object), then see its objects. */
int sgit_pack_index(struct sgit *g, const char *path, struct error *err);
/* Resolve rev (anything git rev-parse takes) in the project's repository
 * to a commit id (40 hex) into commit, and the workspace's path below the
 * work tree ("" or "sub/") into prefix. EXIT_USAGE outside a repository
 * or for an unknown rev. */
int sgit_project_resolve(const char *rev, struct strbuf *commit,
			 struct strbuf *prefix, struct error *err);

/* Write the files of the project's commit (40 hex) into the folder dir,
 * which exists and is empty: the whole work tree, files, exec bits and
 * symlinks; submodules are left out. Fails (EXIT_USAGE) when the commit
 * has no file must_have (relative to the workspace). dir NULL: only that
 * check. */
int sgit_project_export(const char *commit, const char *dir,
			const char *must_have, struct error *err);

#endif
