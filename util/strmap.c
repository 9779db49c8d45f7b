/* A string-keyed hash map with open addressing, for duplicate keys,
 * anchors, stage names, refs and run entries: O(1) per lookup where pairwise
 * checks would make 10,000 stages cost 50 million comparisons. */
#include "util/strmap.h"
#include "util/xalloc.h"

#include <stdint.h>
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

void strmap_init(struct strmap *m, size_t hint)
{
	size_t cap = 16;

	while (cap < hint * 2)
		cap *= 2;
	m->keys = xcalloc(cap, sizeof(*m->keys));
	m->vals = xcalloc(cap, sizeof(*m->vals));
	m->nr = 0;
	m->cap = cap;
}

void strmap_release(struct strmap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->nr = m->cap = 0;
}

static size_t slot(const struct strmap *m, const char *key)
{
	size_t i = hash_str(key) & (m->cap - 1);

	while (m->keys[i] && strcmp(m->keys[i], key))
		i = (i + 1) & (m->cap - 1);
	return i;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = slot(m, key);
	return m->keys[i] ? m->vals[i] : NULL;
}

static void grow(struct strmap *m)
{
	struct strmap bigger;

	strmap_init(&bigger, m->cap);
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i])
			strmap_put(&bigger, m->keys[i], m->vals[i]);
	strmap_release(m);
	*m = bigger;
}

void *strmap_put(struct strmap *m, const char *key, void *val)
{
	size_t i;
	void *old;

	if (!m->cap)
		strmap_init(m, 0);
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
