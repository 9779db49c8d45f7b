/* The content-addressed area of the store: large files kept whole under
 * <cas_dir>/ab/cdef... (the 32 hex digits of their XXH3-128), read-only,
 * written temp + fsync + rename and never rewritten. */
#ifndef STORE_CAS_H
#define STORE_CAS_H

#include "util/error.h"
#include "util/hash.h"
#include "util/strvec.h"

/* <cas_dir>/<hex[0..2]>/<hex[2..]>; caller frees. */
char *cas_path(const char *cas_dir, const char *hex);

/*
 * Adding files, for one commit: cas_add() copies src into the CAS
 * (reflink when the filesystem can, else copy_file_range, else read/write)
 * under a temp name and hashes the copy, never src, so a file edited
 * meanwhile cannot poison the CAS. cas_commit() then gives the copies
 * their content names (an object already there is kept and the copy
 * dropped), lists them as not yet known to be on disk (see cas_settle) and
 * fsyncs the folders; only then may a commit name them.
 * cas_batch_release() drops what was not committed.
 */
struct cas_pending {
	char *tmp;
	char hex[HASH_HEX_LEN + 1];
	unsigned long long size;
};

struct cas_batch {
	const char *cas_dir;
	struct cas_pending *v;
	size_t nr, alloc;
	struct strvec dirs; /* folders whose entries changed */
};

void cas_batch_init(struct cas_batch *b, const char *cas_dir);
void cas_batch_release(struct cas_batch *b);
/* hex gets HASH_HEX_LEN + 1 bytes. */
int cas_add(struct cas_batch *b, const char *src, char *hex,
	    unsigned long long *size, struct error *err);
/* As cas_add, but src (a file of pipe's own, e.g. a download) is taken
 * as it is: hashed by one read and renamed into place at commit instead of
 * copied; copied when it is on another file system. Removed by
 * cas_batch_release when the commit does not happen. */
int cas_adopt(struct cas_batch *b, const char *src, char *hex,
	      unsigned long long *size, struct error *err);
int cas_commit(struct cas_batch *b, struct error *err);
/* Settle the objects committed without waiting for their data to reach the
 * disk: fsync them when the machine has not restarted since (their
 * writeback is long done, usually), else re-hash each and remove those a
 * power cut damaged. Call before writing the store, with the workspace
 * lock held. */
int cas_settle(const char *cas_dir, struct error *err);

/* Write object hex to out_fd: with clone set, out_fd is an empty file and
 * may get a reflink; otherwise it may be a pipe or an appending file. */
int cas_copy_out(const char *cas_dir, const char *hex, int out_fd, int clone,
		 struct error *err);

/* Re-hash object hex; fails when it is missing, not size bytes long, or
 * its content does not hash to hex. */
int cas_verify(const char *cas_dir, const char *hex, unsigned long long size,
	       struct error *err);

/* Calls fn for every object (and every leftover temp file, hex NULL). fn
 * returns 0 to go on. */
typedef int (*cas_fn)(const char *hex, const char *path,
		      unsigned long long size, void *data);
int cas_foreach(const char *cas_dir, cas_fn fn, void *data, struct error *err);

#endif
