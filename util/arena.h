/* A bump allocator for many small objects that die together (the strings
 * and arrays of 100,000 stages): one malloc per 64 KiB block instead of
 * one per object, no per-object header, freed at once. */
#ifndef UTIL_ARENA_H
#define UTIL_ARENA_H

#include <stddef.h>

struct arena {
	char *cur;     /* free space in the newest block */
	size_t left;   /* bytes free at cur */
	char **blocks; /* every block, for arena_release */
	size_t nr, alloc;
	size_t used; /* bytes handed out, for tests and traces */
};

#define ARENA_INIT                                                             \
	{                                                                      \
		NULL, 0, NULL, 0, 0, 0                                         \
	}

/* n zeroed bytes aligned for any object; never NULL (out of memory
 * aborts). Lives until arena_release. */
void *arena_alloc(struct arena *a, size_t n);
/* A copy of the n bytes at p with a NUL after them. */
char *arena_memdupz(struct arena *a, const void *p, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* Free every block; the arena is empty and usable again. */
void arena_release(struct arena *a);

#endif
