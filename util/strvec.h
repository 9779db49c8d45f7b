/* A growable NULL-terminated array of owned strings (argv-style). */
#ifndef UTIL_STRVEC_H
#define UTIL_STRVEC_H

#include <stddef.h>

struct strvec {
	char **v; /* never NULL: points at an empty array when nr == 0 */
	size_t nr;
	size_t alloc;
};

extern char *strvec_empty[];
#define STRVEC_INIT                                                            \
	{                                                                      \
		strvec_empty, 0, 0                                             \
	}

void strvec_init(struct strvec *sv);
void strvec_push(struct strvec *sv, const char *s);
/* Takes ownership of s. */
void strvec_push_nodup(struct strvec *sv, char *s);
__attribute__((format(printf, 2, 3))) void strvec_pushf(struct strvec *sv,
							const char *fmt, ...);
void strvec_clear(struct strvec *sv);
/* Copies every string of src to the end of dst. */
void strvec_pushv(struct strvec *dst, char *const *src);

/* True when list (NULL-terminated "KEY=VALUE" strings; NULL is empty)
 * has an entry for the KEY of kv ("KEY=VALUE" or "KEY"). */
int strvec_has_key(char *const *list, const char *kv);

#endif
