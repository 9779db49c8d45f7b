/* A string-keyed hash map with open addressing (util/strmap.c). */
#ifndef UTIL_STRMAP_H
#define UTIL_STRMAP_H

#include <stddef.h>

/* Keys are borrowed and must outlive the map. */
struct strmap {
	const char **keys;
	void **vals;
	size_t nr, cap;
};

void strmap_init(struct strmap *m, size_t hint);
void strmap_release(struct strmap *m);
/* The value stored under key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Store val under key, replacing any earlier value; returns the earlier
 * value or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *val);

#endif
