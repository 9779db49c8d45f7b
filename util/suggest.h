/* "did you mean ...?" for misspelt keys, commands and stage names. */
#ifndef UTIL_SUGGEST_H
#define UTIL_SUGGEST_H

#include <stddef.h>

/* Edit distance (insertions, deletions, substitutions, adjacent swaps). */
size_t suggest_distance(const char *a, const char *b);

/* The candidate closest to word when it is close enough to be a likely
 * typo (distance <= 2, and less than half of word's length), else NULL.
 * Borrowed from candidates. */
const char *suggest_closest(const char *word, const char *const *candidates,
			    size_t n);

#endif
