/* Filesystem helpers: atomic metadata writes (git's lockfile), mkdir -p,
 * rm -r. */
#ifndef UTIL_FS_H
#define UTIL_FS_H

#include <stddef.h>
#include <sys/types.h>

struct error;

/* Write data to path atomically: temp file beside it, fsync, rename, fsync
 * the folder. Readers see the old or the new file, never a mix. */
int fs_write_atomic(const char *path, const void *data, size_t len,
		    struct error *err);

/* The same without waiting for the disk (no fsync): for a cache whose
 * reader checks a checksum and rebuilds what fails it, where an older
 * copy after a power cut is as good as the newer (the stat cache). */
int fs_write_replace(const char *path, const void *data, size_t len,
		     struct error *err);

/* The same, written as it is made: fs_replace_open creates the temp file
 * beside path, fs_replace_write appends (a failure is kept for the
 * commit), fs_replace_commit (fsync when sync, rename, fsync the folder)
 * puts it in place, or removes it and says why; fs_replace_abort removes
 * it. A file of 16 MB needs no 16 MB buffer. */
struct fs_replace {
	const char *path;
	char *tmp;
	int fd, sync, error;
};
int fs_replace_open(struct fs_replace *r, const char *path, int sync,
		    struct error *err);
void fs_replace_write(struct fs_replace *r, const void *data, size_t len);
int fs_replace_commit(struct fs_replace *r, struct error *err);
void fs_replace_abort(struct fs_replace *r);

/* Write all of p to fd, retrying after EINTR and waiting (poll) when a
 * non-blocking fd is full. Returns 0, or -1 (errno) when the reader is
 * gone or the disk is full. */
int fs_write_all(int fd, const void *p, size_t len);

/* mkdir -p; existing folders are fine. Returns 0 or -1 (errno). */
int fs_mkdir_p(const char *path, mode_t mode);

/* mkdir -p of the folder that would hold path. */
int fs_mkdir_parent(const char *path, mode_t mode);

/* rm -rf; a missing path is fine. Returns 0 or -1 (errno). */
int fs_remove_tree(const char *path);

/* fsync the folder holding path (after a rename into it). */
int fs_fsync_parent(const char *path);

struct strvec;

/* Every file and symlink at or below dir, as paths relative to dir,
 * sorted; folders are walked, not listed. Returns 0 or -1 (errno). */
int fs_list_tree(const char *dir, struct strvec *out);

/* The size of the file (or symlink) at path, or of every file and
 * symlink below the folder; 0 when it does not exist. */
unsigned long long fs_tree_bytes(const char *path);

/* Copy the file (or symlink) src to dst, replacing dst; keeps the mode's
 * permission bits. Uses copy_file_range (a reflink where the filesystem
 * can). Returns 0 or -1 (errno). */
int fs_copy_file(const char *src, const char *dst);

/* Map the whole file at path, private to this process: with
 * FS_MAP_WRITABLE, writes go to copies of the pages written (parsers put
 * NULs in place), never to the file. Read in at once, unless FS_MAP_LAZY
 * (a reader that gives pages back as it goes: madvise). Readers of files
 * that are only ever replaced by rename (fs_write_atomic), never truncated
 * in place. *len gets the size; an empty file maps to NULL with *len 0.
 * Returns 0 or -1 (errno). */
#define FS_MAP_WRITABLE 1
#define FS_MAP_LAZY 2
int fs_map(const char *path, int flags, void **map, size_t *len);

#endif
