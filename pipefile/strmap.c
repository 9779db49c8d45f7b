/* A string-keyed hash map with open addressing, for duplicate keys,
 * anchors and stage names: O(1) per lookup where pairwise checks would
 * make 10,000 stages cost 50 million comparisons. */
#include "pipefile/internal.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: short keys, no adversary worth a keyed hash (the input is
 * bounded, and a collision only costs time). */
static size_t hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 32));
}

void pipefile_strmap_init(struct pf_strmap *m, size_t hint)
{
	size_t cap = 16;

	while (cap < hint * 2)
		cap *= 2;
	m->keys = xcalloc(cap, sizeof(*m->keys));
	m->vals = xcalloc(cap, sizeof(*m->vals));
	m->nr = 0;
	m->cap = cap;
}

void pipefile_strmap_release(struct pf_strmap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->nr = m->cap = 0;
}

static size_t slot(const struct pf_strmap *m, const char *key)
{
	size_t i = hash_str(key) & (m->cap - 1);

	while (m->keys[i] && strcmp(m->keys[i], key))
		i = (i + 1) & (m->cap - 1);
	return i;
}

void *pipefile_strmap_get(const struct pf_strmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = slot(m, key);
	return m->keys[i] ? m->vals[i] : NULL;
}

static void grow(struct pf_strmap *m)
{
	struct pf_strmap bigger;

	pipefile_strmap_init(&bigger, m->cap);
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i])
			pipefile_strmap_put(&bigger, m->keys[i], m->vals[i]);
	pipefile_strmap_release(m);
	*m = bigger;
}

void *pipefile_strmap_put(struct pf_strmap *m, const char *key, void *val)
{
	size_t i;
	void *old;

	if (!m->cap)
		pipefile_strmap_init(m, 0);
	if ((m->nr + 1) * 2 > m->cap)
		grow(m);
	i = slot(m, key);
	if (m->keys[i]) {
		old = m->vals[i];
		m->vals[i] = val;
		return old;
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->nr++;
	return NULL;
}
