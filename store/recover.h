/* Cleaning up after a pipe that was killed while it wrote the store. */
#ifndef STORE_RECOVER_H
#define STORE_RECOVER_H

/* Remove the lock files (refs/..., packed-refs.lock, pipe-keys.lock) a
 * killed writer left in pipe_dir/store: while they exist no ref can move.
 * Call only while holding the workspace lock, which proves that no other
 * pipe is writing. Returns how many were removed. */
int store_clear_stale_locks(const char *pipe_dir);

/* Make sure the large files earlier commits wrote without waiting for the
 * disk are on it, or, after a restart, that a power cut did not damage
 * them (see cas_settle). Same condition: the workspace lock is held. */
struct error;
int store_settle(const char *pipe_dir, struct error *err);

#endif
