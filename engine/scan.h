/* Scanning inputs: one Pipefile path (a file, a folder or a glob) becomes
 * the sorted list of files it covers, each with its content hash, plus one
 * combined hash for the whole path. */
#ifndef ENGINE_SCAN_H
#define ENGINE_SCAN_H

#include <stddef.h>

#include "engine/statcache.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/strvec.h"

struct scan_entry {
	char *path; /* workspace-relative, no trailing '/'; in the list's
		     * arena, so copy it to keep it past scan_list_release */
	struct hash128 hash; /* content; for a symlink, its target text */
	char type;	     /* 'f' file, 'x' executable file, 'l' symlink */
	unsigned long long size;
};

struct scan_chunk;

struct scan_list {
	struct scan_entry *v;
	size_t nr, alloc;
	struct scan_chunk *chunks; /* the paths, 64 KiB at a time */
};

/* clang-format off */
#define SCAN_LIST_INIT { NULL, 0, 0, NULL }
/* clang-format on */

/*
 * Append to out the files that path covers, sorted by path (byte order),
 * hashed through sc (NULL: read every file). path is normalized and
 * workspace-relative (util/path.h); "" is the whole workspace.
 *
 *   a file or symlink   one entry
 *   a folder            every file and symlink below it, recursively;
 *                       ".pipe" and ".git" are skipped at the top of the
 *                       workspace; empty folders contribute nothing (as
 *                       in git)
 *   a glob (is_glob)    every file matching it, and everything below a
 *                       folder matching it; a pattern ending in '/'
 *                       matches folders only
 *
 * Symlinks are never followed: an entry of type 'l' is hashed over the
 * target text, and a target that, resolved lexically from the link's
 * folder, leaves the workspace is an error. So is a path that goes through
 * a symlink, and anything that is not a file, folder or symlink.
 *
 * *found is 0 when path does not exist (or the glob matches nothing); that
 * is not an error, and out is left as it was. Otherwise *combined is:
 *
 *   a file        type 'f': its content hash, what `xxhsum -H2` prints;
 *                 type 'x' or 'l': XXH3-128 over the type byte followed by
 *                 the 16 canonical bytes of the content hash
 *   a folder      its Merkle hash. The hash of a folder is XXH3-128 over
 *                 its children that hold files, in byte order of their
 *                 names with '/' appended to folder names (git's tree
 *                 order), each child as
 *                   type byte ('f', 'x', 'l', or 'd' for a folder),
 *                   name length (u64 little-endian), name bytes,
 *                   16 canonical bytes of the child's hash
 *                 (a file's content hash, a link's target hash, a
 *                 folder's own hash). Names are relative to their folder,
 *                 so the hash does not depend on where the folder lies.
 *   a glob        XXH3-128 over the sorted list, each entry as
 *                   path length (u64 little-endian), path bytes,
 *                   type byte, 16 canonical bytes of the hash
 *
 * Returns 0, or -1 with err naming the file or folder at fault.
 */
int scan_path(struct statcache *sc, const char *workspace, const char *path,
	      int is_glob, struct scan_list *out, int *found,
	      struct hash128 *combined, struct error *err);

/* scan_path's quick case alone, for a plain file in the current folder
 * when its file list is not wanted: 1 and its combined hash and size
 * when it is a regular file reached through real folders; 0 when
 * scan_path must say what is there (or sc is NULL); -1 on error. */
int scan_file(struct statcache *sc, const char *path, struct hash128 *combined,
	      unsigned long long *bytes, struct error *err);

/* Scanning ahead. A read-only pass that will call scan_path on many paths
 * in turn (pipe status) can have them walked at once first, one whole path
 * per thread on every CPU, with hashes taken from the stat cache only. A
 * path whose walk would read a file (one changed or new), hits an error,
 * or finds nothing is left undone: scan_path does it in turn, as ever, and
 * reports what it finds. Nothing else may use sc meanwhile. */
struct scan_ahead {
	const char *path; /* in, as for scan_path */
	int is_glob;	  /* in */
	int done;	  /* out: hash and bytes are what scan_path gives */
	struct hash128 hash;
	unsigned long long bytes; /* the files' sizes, summed */
	size_t hits;		  /* stat cache entries used */
};

void scan_ahead(struct statcache *sc, const char *workspace,
		struct scan_ahead *v, size_t n);

/* Use a done result in place of scan_path with found 1: notes in sc what
 * the walk covered, as scan_path would. */
void scan_ahead_take(struct statcache *sc, const struct scan_ahead *a);

/* Stats taken ahead. A pass that will call scan_path on many plain files
 * in turn, in a known order (the fingerprints of a run or of pipe status),
 * can have their lstat calls taken on a second thread first; scan_path
 * then uses each result once, when asked for that very pointer (paths are
 * found by address, not by content; the workspace is the current folder).
 * Drop a path before anything may change it (its stage is about to run):
 * scan_path then stats it itself. Fewer than SCAN_PRESTAT_MIN paths, or
 * one CPU: nothing is started. Stop before the paths are freed. */
#define SCAN_PRESTAT_MIN 64
void scan_prestat_start(const char **paths, size_t n);
void scan_prestat_drop(const char *path);
void scan_prestat_stop(void);
/* Wait until every stat was taken ahead (tests). */
void scan_prestat_settle(void);

/* The paths matching pattern themselves (files, symlinks or folders, at
 * whatever depth they match; nothing below a matching folder), sorted, no
 * trailing '/'. A pattern ending in '/' matches folders only. For `datums:`,
 * one unit of work per match. No match leaves out as it was. */
int scan_glob(const char *workspace, const char *pattern, struct strvec *out,
	      struct error *err);

void scan_list_release(struct scan_list *list);

/* Forget which folders were found to be real folders (not symlinks): call
 * after anything ran that may have changed the tree. */
void scan_forget_folders(void);

#endif
