/* The stat cache: content hashes remembered by (dev, inode, size, mtime,
 * ctime, mode), so that an unchanged file is never read twice (git's index,
 * DVC's state). Kept in one file, `.pipe/statcache`. */
#ifndef ENGINE_STATCACHE_H
#define ENGINE_STATCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "util/error.h"
#include "util/hash.h"

struct statcache;

/* What a session did, for `-v` and for tests. */
struct statcache_stats {
	size_t entries; /* files known, loaded or added */
	size_t hits;	/* answered without reading the file */
	size_t misses;	/* files read and hashed */
	unsigned long long bytes_hashed;
};

/* A cached entry is trusted only when the file's last change (the later of
 * mtime and ctime) is at least this much older than the moment the entry
 * was hashed; see "racily clean" in statcache.c. */
#define STATCACHE_RACY_NS (3LL * 1000 * 1000 * 1000)

/* Load the cache kept at cache_path. A missing file gives an empty cache; a
 * truncated, corrupt or foreign-version file is logged (log_verbose) and
 * replaced by an empty cache, never trusted. Fails only when the file exists
 * but cannot be read. The caller owns *out (statcache_free). */
int statcache_open(struct statcache **out, const char *cache_path,
		   struct error *err);

/* The content hash of the regular file workspace_dir/relpath, whose lstat
 * the caller took (st; NULL makes statcache lstat it). relpath is the
 * workspace-relative key. Reads the file only when its stat data differ
 * from the cached entry, or the entry is racy. Symlinks are not followed:
 * anything but a regular file is an error. */
int statcache_hash_file(struct statcache *sc, const char *workspace_dir,
			const char *relpath, const struct stat *st,
			struct hash128 *out, struct error *err);

/* The same, for a file named name inside the open folder dirfd (scan's
 * fast path: no path resolution per file). */
int statcache_hash_at(struct statcache *sc, int dirfd, const char *name,
		      const char *relpath, const struct stat *st,
		      struct hash128 *out, struct error *err);

/* Hashing on several threads. statcache_probe may run on many threads at
 * once while no other statcache function runs: it answers from the cache
 * or reads the file, and changes nothing. statcache_commit then applies
 * each successful probe, on one thread. statcache_hash_at is the two in
 * one. A commit may merge the entries added so far into the file (see
 * statcache.c); probes taken before it stay valid (found again by path). */
struct statcache_probe {
	/* in: where the entry probably is: when files are probed in path
	 * order, the previous probe's next (SIZE_MAX: no idea) */
	size_t hint;
	/* in: answer from the cache only; a file it would read is left
	 * with hit 0 (scan_ahead) */
	int lookup_only;
	struct hash128 hash; /* out: the content hash */
	int hit;	     /* out: answered without reading the file */
	size_t next;	     /* out: the hint for the next path in order */
	/* private to statcache */
	unsigned gen; /* the cache's merges when probed */
	size_t entry;
	struct stat st;
	int64_t hashed_ns;
	unsigned long long bytes;
};

int statcache_probe(const struct statcache *sc, int dirfd, const char *name,
		    const char *relpath, const struct stat *st,
		    struct statcache_probe *p, struct error *err);
void statcache_commit(struct statcache *sc, const char *relpath,
		      const struct statcache_probe *p);

/* For a probe that hit, on any thread while others do the same (and
 * nothing else changes sc): note the file as seen, as statcache_commit
 * would. statcache_add_hits then counts them, on one thread. */
void statcache_mark_seen(struct statcache *sc, const struct statcache_probe *p);
void statcache_add_hits(struct statcache *sc, size_t n);

/* 1 and the content hash of relpath, whose lstat is st, when a trusted
 * entry has it (no file is read); else 0. */
int statcache_known(const struct statcache *sc, const char *relpath,
		    const struct stat *st, struct hash128 *out);

/* Tell the cache that every existing file at or below dir (a
 * workspace-relative path, "" for the whole workspace) was looked up in
 * this session, or, with glob, every existing file matching glob or lying in
 * a folder that matches it. Entries there that were not looked up belong to
 * deleted files and are dropped by the next save. */
void statcache_note_walked(struct statcache *sc, const char *dir,
			   const char *glob);

/* Write the cache back when anything changed (temp file, fsync, rename,
 * fsync of the folder; the folder is created if needed). Entries not looked
 * up in this session are kept, except deleted ones (statcache_note_walked).
 * Returns 0, or -1 with err set. */
int statcache_save(struct statcache *sc, struct error *err);

void statcache_get_stats(const struct statcache *sc,
			 struct statcache_stats *out);

/* Replace the wall clock (nanoseconds since the epoch) used to stamp
 * entries; for tests of the racy-entry guard. NULL restores the real one.
 * The clock must be safe to call from several threads. */
void statcache_set_clock(struct statcache *sc, int64_t (*now_ns)(void));

/* Merge the entries added into the file once there are at least n of them
 * (and an eighth of its records); for tests. 0 restores the default,
 * SIZE_MAX leaves them all to statcache_save. */
void statcache_set_merge_min(struct statcache *sc, size_t n);

void statcache_free(struct statcache *sc);

#endif
