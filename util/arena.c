/* The bump allocator of arena.h. */
#include "util/arena.h"
#include "util/xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK (64u << 10)
#define ALIGN 8u

static void *new_block(struct arena *a, size_t n)
{
	char *b = xcalloc(1, n);

	ALLOC_GROW(a->blocks, a->nr + 1, a->alloc);
	a->blocks[a->nr++] = b;
	return b;
}

void *arena_alloc(struct arena *a, size_t n)
{
	/* strings are packed unaligned: step to the next boundary */
	size_t pad = (size_t)(-(uintptr_t)a->cur & (ALIGN - 1));
	char *p;

	if (!n)
		n = 1;
	a->used += n;
	/* a large object gets a block of its own: the current block's
	 * free space stays usable */
	if (n > BLOCK / 4)
		return new_block(a, n);
	if (pad + n > a->left) {
		a->cur = new_block(a, BLOCK);
		a->left = BLOCK;
		pad = 0;
	}
	p = a->cur + pad;
	a->cur = p + n;
	a->left -= pad + n;
	return p;
}

char *arena_memdupz(struct arena *a, const void *p, size_t n)
{
	char *q;

	if (n + 1 < n)
		xmalloc(SIZE_MAX); /* aborts with the message */
	/* strings need no alignment: pack them */
	if (n + 1 <= a->left) {
		q = a->cur;
		a->cur += n + 1;
		a->left -= n + 1;
		a->used += n + 1;
	} else {
		q = arena_alloc(a, n + 1);
	}
	if (n)
		memcpy(q, p, n);
	q[n] = '\0';
	return q;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_memdupz(a, s, strlen(s));
}

void arena_release(struct arena *a)
{
	for (size_t i = 0; i < a->nr; i++)
		free(a->blocks[i]);
	free(a->blocks);
	memset(a, 0, sizeof(*a));
}
