/* Allocation that never fails: out of memory aborts with a message. */
#ifndef UTIL_XALLOC_H
#define UTIL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Like memdup: copies n bytes and adds a NUL after them. */
void *xmemdupz(const void *p, size_t n);

/* Grow array x (of type T*) so that at least nr elements fit; alloc holds
 * the current capacity. Amortised doubling, as git's ALLOC_GROW. */
#define ALLOC_GROW(x, nr, alloc)                                               \
	do {                                                                   \
		if ((size_t)(nr) > (size_t)(alloc)) {                          \
			size_t want_ = ((size_t)(alloc) + 16) * 3 / 2;         \
			if (want_ < (size_t)(nr))                              \
				want_ = (size_t)(nr);                          \
			(x) = xrealloc((x), want_ * sizeof(*(x)));             \
			(alloc) = want_;                                       \
		}                                                              \
	} while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
