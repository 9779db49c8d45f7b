/* The content-addressed area of the store: large files kept whole under
 * <cas_dir>/ab/cdef... (the 32 hex digits of their XXH3-128), read-only,
 * written temp + fsync + rename and never rewritten. */
#ifndef STORE_CAS_H
#define STORE_CAS_H

#include "util/error.h"
#include "util/hash.h"

/* <cas_dir>/<hex[0..2]>/<hex[2..]>; caller frees. */
char *cas_path(const char *cas_dir, const char *hex);

/* Copy src into the CAS (reflink when the filesystem can, else
 * copy_file_range, else read/write) and name it by the hash of the copy,
 * never of src, so a file edited meanwhile cannot poison the CAS. The copy
 * is fsynced before it gets its name; an object already there is kept and
 * the copy dropped. hex gets HASH_HEX_LEN + 1 bytes. */
int cas_put(const char *cas_dir, const char *src, char *hex,
	    unsigned long long *size, struct error *err);

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
