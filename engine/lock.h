/* The workspace write lock (.pipe/lock): flock held for a whole run,
 * released by the kernel if pipe dies. */
#ifndef ENGINE_LOCK_H
#define ENGINE_LOCK_H

#include "util/error.h"

/* Take the lock at path. wait: block until free; otherwise fail with
 * EXIT_ENV and "workspace is locked by pid N (pipe run, started TIME)".
 * what names the holder ("pipe run"). Returns the fd (>= 0) or -1. */
int lock_acquire(const char *path, int wait, const char *what,
		 struct error *err);
void lock_release(int fd);

#endif
