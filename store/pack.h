/* Git pack files written by the store itself, and the door to zlib.
 *
 * A pack writer appends each new object to a temporary pack file as it
 * comes (deflated, its entry's CRC-32 taken) and keeps only its id, offset
 * and CRC: a batch of pending objects costs 32 bytes each in memory,
 * however large, instead of the objects themselves held until a flush and
 * packed again by libgit2's pack builder (about five times their size for
 * a moment). Finishing writes the count into the header, the checksum
 * after the last entry and the index (version 2), fsyncs both and gives
 * them their names, as git's pack-objects does.
 *
 * pack_merge copies the entries of several packs into one without
 * inflating them (deltas kept: an offset delta's base offset is moved
 * with it), each entry checked against its source index's CRC-32 first. */
#ifndef STORE_PACK_H
#define STORE_PACK_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"

#define PACK_RAWSZ 20

/* Object types as a pack stores them (and as git_object_t numbers them). */
enum pack_type {
	PACK_COMMIT = 1,
	PACK_TREE = 2,
	PACK_BLOB = 3,
	PACK_TAG = 4,
	PACK_OFS_DELTA = 6,
	PACK_REF_DELTA = 7,
};

struct packw;

/* A new pack in dir (a store's objects/pack), made on the first add. */
struct packw *packw_new(const char *dir, int level);
/* Append an object of type PACK_COMMIT..PACK_TAG whose id is oid; adding
 * an id already added does nothing. 0, or -1 with err set. */
int packw_add(struct packw *w, const unsigned char *oid, int type,
	      const void *data, size_t len, struct error *err);
/* Whether oid was added. */
int packw_has(const struct packw *w, const unsigned char *oid);
size_t packw_count(const struct packw *w);
/* The id of the i-th object added, in the order they came. */
const unsigned char *packw_oid(const struct packw *w, size_t i);
/* An added object's type and size: 0, or -1 when it was not added. */
int packw_header(struct packw *w, const unsigned char *oid, int *type,
		 size_t *len);
/* An added object's bytes, malloc'd (and NUL-terminated) into *data:
 * 0, -1 when it was not added or cannot be read. */
int packw_read(struct packw *w, const unsigned char *oid, int *type,
	       void **data, size_t *len);
/* Finish the pack: "pack-<hex>" into stem. With no object added there is
 * nothing to write and stem is left empty. The writer starts again empty
 * after a finish, failed or not. */
int packw_finish(struct packw *w, struct strbuf *stem, struct error *err);
/* Forget every object added; the temporary file is removed. */
void packw_reset(struct packw *w);
void packw_free(struct packw *w);

/* One pack in dir of every object of the packs dir/<stems[i]>.pack (ids
 * in two packs are copied once): "pack-<hex>" into stem. The old packs
 * are left for the caller to remove. 0, or -1 with err set and nothing
 * left behind. */
int pack_merge(const char *dir, char *const *stems, size_t n,
	       struct strbuf *stem, struct error *err);

#endif
