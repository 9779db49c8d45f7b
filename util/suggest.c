/* Optimal string alignment distance, for typo suggestions. */
#include "util/suggest.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;

	return m < c ? m : c;
}

size_t suggest_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b), w = m + 1, d;
	size_t *t = xcalloc((n + 1) * w, sizeof(*t));

	for (size_t i = 0; i <= n; i++)
		t[i * w] = i;
	for (size_t j = 0; j <= m; j++)
		t[j] = j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			size_t cost = a[i - 1] != b[j - 1];

			t[i * w + j] = min3(t[(i - 1) * w + j] + 1,
					    t[i * w + j - 1] + 1,
					    t[(i - 1) * w + j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] &&
			    t[(i - 2) * w + j - 2] + 1 < t[i * w + j])
				t[i * w + j] = t[(i - 2) * w + j - 2] + 1;
		}
	}
	d = t[n * w + m];
	free(t);
	return d;
}

const char *suggest_closest(const char *word, const char *const *candidates,
			    size_t n)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1, len = strlen(word);

	for (size_t i = 0; i < n; i++) {
		size_t d = suggest_distance(word, candidates[i]);

		if (d < best_d) {
			best_d = d;
			best = candidates[i];
		}
	}
	if (!best || best_d > 2 || best_d * 2 >= len)
		return NULL;
	return best;
}
