/* Git pack files written by the store itself (store/pack.h): the pack
 * format is git's Documentation/gitformat-pack.txt, version 2 packs and
 * version 2 indexes. The only file that includes <zlib.h>. */
#include "store/pack.h"

#include "util/fs.h"
#include "util/sha1.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define BUF_SIZE (64u << 10)
#define HEADER_SIZE 12
/* An entry's header: the type and size (up to 10 bytes for 64 bits) and an
 * offset delta's distance (up to 10 more). */
#define ENTRY_HEADER_MAX 32
/* Objects below this size are deflated with zlib's smallest hash table
 * (memLevel 1: 512 bytes to clear, not 64 KB); they are most of what a
 * run writes (commits, trees, small outputs). */
#define SMALL_OBJECT (8u << 10)

struct pack_entry {
	unsigned char oid[PACK_RAWSZ];
	uint32_t crc;
	uint64_t off;
};

struct packw {
	char *dir;
	int level;
	int fd; /* -1 until the first add */
	char *tmp;
	uint64_t off;	    /* the pack's size, with what buf holds */
	uint64_t on_disk;   /* of which written to fd */
	unsigned char *buf; /* BUF_SIZE bytes, not yet written */
	size_t buf_len;
	struct pack_entry *v;
	size_t nr, alloc;
	uint32_t *slots; /* open addressing: entry index + 1, 0 empty */
	size_t nslots;	 /* a power of two */
	/* one stream for small objects, one for the rest: a reset clears
	 * the stream's hash table, 64 KB at zlib's default memLevel (27% of
	 * a full run's instructions at 2,000 stages, one reset an object) */
	z_stream z[2];
	int z_ready[2];
	/* an add failed part way: its bytes may be in the file, so the
	 * pack cannot be finished, only reset */
	int broken;
};

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static size_t slot_of(const unsigned char *oid, size_t nslots)
{
	/* ids are SHA-1: their first bytes are as good as any hash */
	return get_be32(oid) & (nslots - 1);
}

static long find(const struct packw *w, const unsigned char *oid)
{
	if (!w->nslots)
		return -1;
	for (size_t s = slot_of(oid, w->nslots);;
	     s = (s + 1) & (w->nslots - 1)) {
		uint32_t i = w->slots[s];

		if (!i)
			return -1;
		if (!memcmp(w->v[i - 1].oid, oid, PACK_RAWSZ))
			return (long)i - 1;
	}
}

static void place(struct packw *w, size_t i)
{
	size_t s = slot_of(w->v[i].oid, w->nslots);

	while (w->slots[s])
		s = (s + 1) & (w->nslots - 1);
	w->slots[s] = (uint32_t)i + 1;
}

/* Note entry nr (filled in by the caller) as added. */
static void add_entry(struct packw *w)
{
	if ((w->nr + 1) * 2 > w->nslots) {
		free(w->slots);
		w->nslots = w->nslots ? 2 * w->nslots : 1024;
		w->slots = xcalloc(w->nslots, sizeof(*w->slots));
		for (size_t i = 0; i < w->nr; i++)
			place(w, i);
	}
	place(w, w->nr++);
}

/* Room for n entries in all. A merge knows how many it may copy: a table
 * grown by half again at each step held the old and the new one at once,
 * and the last step's slack (up to 80 bytes an object for a moment, at
 * the end of a merge of the 400,000 objects of 100,000 stages). */
static void reserve(struct packw *w, size_t n)
{
	size_t ns = w->nslots ? w->nslots : 1024;

	if (n > w->alloc) {
		w->v = xrealloc(w->v, n * sizeof(*w->v));
		w->alloc = n;
	}
	while (ns < 2 * n)
		ns *= 2;
	if (ns == w->nslots)
		return;
	free(w->slots);
	w->nslots = ns;
	w->slots = xcalloc(ns, sizeof(*w->slots));
	for (size_t i = 0; i < w->nr; i++)
		place(w, i);
}

struct packw *packw_new(const char *dir, int level)
{
	struct packw *w = xcalloc(1, sizeof(*w));

	w->dir = xstrdup(dir);
	w->level = level;
	w->fd = -1;
	return w;
}

static void clear(struct packw *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->tmp);
	w->tmp = NULL;
	w->off = w->on_disk = 0;
	w->buf_len = 0;
	w->nr = 0;
	w->broken = 0;
	if (w->nslots)
		memset(w->slots, 0, w->nslots * sizeof(*w->slots));
}

void packw_reset(struct packw *w)
{
	if (w->tmp)
		unlink(w->tmp);
	clear(w);
}

void packw_free(struct packw *w)
{
	if (!w)
		return;
	packw_reset(w);
	for (int i = 0; i < 2; i++)
		if (w->z_ready[i])
			deflateEnd(&w->z[i]);
	free(w->buf);
	free(w->v);
	free(w->slots);
	free(w->dir);
	free(w);
}

size_t packw_count(const struct packw *w)
{
	return w->nr;
}

const unsigned char *packw_oid(const struct packw *w, size_t i)
{
	return w->v[i].oid;
}

int packw_has(const struct packw *w, const unsigned char *oid)
{
	return find(w, oid) >= 0;
}

static int io_error(struct error *err, const char *what, const char *path)
{
	return error_set(err, EXIT_ENV, "cannot %s '%s': %s", what, path,
			 strerror(errno));
}

static int flush_buf(struct packw *w, struct error *err)
{
	if (w->buf_len && fs_write_all(w->fd, w->buf, w->buf_len))
		return io_error(err, "write", w->tmp);
	w->on_disk += w->buf_len;
	w->buf_len = 0;
	return 0;
}

static int start(struct packw *w, struct error *err)
{
	static const unsigned char header[HEADER_SIZE] = {'P', 'A', 'C', 'K',
							  0,   0,   0,	 2};
	struct strbuf path = STRBUF_INIT;

	if (w->fd >= 0)
		return 0;
	strbuf_addf(&path, "%s/tmp_pack_XXXXXX", w->dir);
	w->fd = mkostemp(path.buf, O_CLOEXEC);
	if (w->fd < 0) {
		io_error(err, "create", path.buf);
		strbuf_release(&path);
		return -1;
	}
	w->tmp = strbuf_detach(&path, NULL);
	if (!w->buf)
		w->buf = xmalloc(BUF_SIZE);
	memcpy(w->buf, header, HEADER_SIZE);
	w->buf_len = w->off = HEADER_SIZE;
	return 0;
}

/* Append n bytes, taking them into *crc. */
static int put(struct packw *w, const void *p, size_t n, uint32_t *crc,
	       struct error *err)
{
	const unsigned char *s = p;

	*crc = (uint32_t)crc32(*crc, s, (uInt)n);
	while (n) {
		size_t k =
			BUF_SIZE - w->buf_len < n ? BUF_SIZE - w->buf_len : n;

		memcpy(w->buf + w->buf_len, s, k);
		w->buf_len += k;
		w->off += k;
		s += k;
		n -= k;
		if (w->buf_len == BUF_SIZE && flush_buf(w, err))
			return -1;
	}
	return 0;
}

/* The type and size header of an entry, into h: its length. */
static size_t encode_header(unsigned char *h, int type, uint64_t size)
{
	size_t n = 0;
	unsigned char c = (unsigned char)(type << 4 | (size & 15));

	for (size = size >> 4; size; size >>= 7) {
		h[n++] = c | 0x80;
		c = size & 0x7f;
	}
	h[n++] = c;
	return n;
}

/* An offset delta's distance to its base, as git writes it. */
static size_t encode_distance(unsigned char *h, uint64_t d)
{
	unsigned char tmp[16];
	size_t pos = sizeof(tmp) - 1, n;

	tmp[pos] = d & 0x7f;
	while (d >>= 7)
		tmp[--pos] = (unsigned char)(0x80 | (--d & 0x7f));
	n = sizeof(tmp) - pos;
	memcpy(h, tmp + pos, n);
	return n;
}

/* Parse an entry's type and size from p[0, n): the header's length, or 0
 * when it is cut short or too long. */
static size_t decode_header(const unsigned char *p, size_t n, int *type,
			    uint64_t *size)
{
	size_t i = 0;
	unsigned shift = 4;
	unsigned char c;

	if (!n)
		return 0;
	c = p[i++];
	*type = (c >> 4) & 7;
	*size = c & 15;
	while (c & 0x80) {
		if (i >= n || shift > 57)
			return 0;
		c = p[i++];
		*size |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
	}
	return i;
}

static size_t decode_distance(const unsigned char *p, size_t n, uint64_t *d)
{
	size_t i = 0;
	unsigned char c;

	if (!n)
		return 0;
	c = p[i++];
	*d = c & 0x7f;
	while (c & 0x80) {
		if (i >= n || *d >= (UINT64_MAX >> 8))
			return 0;
		c = p[i++];
		*d = ((*d + 1) << 7) | (c & 0x7f);
	}
	return i;
}

static int add_one(struct packw *w, const unsigned char *oid, int type,
		   const void *data, size_t len, struct error *err)
{
	unsigned char h[ENTRY_HEADER_MAX];
	const unsigned char *in = data;
	size_t left = len;
	uint32_t crc = 0;
	struct pack_entry *e;
	int k = len < SMALL_OBJECT, rc;
	z_stream *z = &w->z[k];

	if (find(w, oid) >= 0)
		return 0;
	if (start(w, err))
		return -1;
	ALLOC_GROW(w->v, w->nr + 1, w->alloc);
	e = &w->v[w->nr];
	memcpy(e->oid, oid, PACK_RAWSZ);
	e->off = w->off;
	if (put(w, h, encode_header(h, type, len), &crc, err))
		return -1;
	if (!w->z_ready[k]) {
		memset(z, 0, sizeof(*z));
		if (deflateInit2(z, w->level, Z_DEFLATED, 15, k ? 1 : 8,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return error_set(err, EXIT_ENV, "cannot start zlib");
		w->z_ready[k] = 1;
	} else if (deflateReset(z) != Z_OK) {
		return error_set(err, EXIT_ENV, "cannot start zlib");
	}
	do {
		size_t chunk = left < UINT_MAX ? left : UINT_MAX;
		unsigned char *out = w->buf + w->buf_len;

		z->next_in = (Bytef *)(uintptr_t)in;
		z->avail_in = (uInt)chunk;
		z->next_out = out;
		z->avail_out = (uInt)(BUF_SIZE - w->buf_len);
		rc = deflate(z, chunk == left ? Z_FINISH : Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			return error_set(err, EXIT_ENV, "cannot deflate");
		in += chunk - z->avail_in;
		left -= chunk - z->avail_in;
		crc = (uint32_t)crc32(crc, out, (uInt)(z->next_out - out));
		w->off += (uint64_t)(z->next_out - out);
		w->buf_len += (size_t)(z->next_out - out);
		if (w->buf_len == BUF_SIZE && flush_buf(w, err))
			return -1;
	} while (rc != Z_STREAM_END);
	e->crc = crc;
	add_entry(w);
	return 0;
}

int packw_add(struct packw *w, const unsigned char *oid, int type,
	      const void *data, size_t len, struct error *err)
{
	if (w->broken)
		return error_set(err, EXIT_ENV,
				 "cannot add to '%s': an earlier write failed",
				 w->tmp ? w->tmp : w->dir);
	if (add_one(w, oid, type, data, len, err)) {
		w->broken = 1;
		return -1;
	}
	return 0;
}

/* Entry i's bytes, malloc'd, into *raw and *n. */
static int read_entry(struct packw *w, size_t i, unsigned char **raw, size_t *n)
{
	uint64_t end = i + 1 < w->nr ? w->v[i + 1].off : w->off;
	struct error err = ERROR_INIT;
	ssize_t got;

	if (flush_buf(w, &err)) {
		error_release(&err);
		return -1;
	}
	*n = (size_t)(end - w->v[i].off);
	*raw = xmalloc(*n ? *n : 1);
	got = pread(w->fd, *raw, *n, (off_t)w->v[i].off);
	if (got < 0 || (size_t)got != *n) {
		free(*raw);
		*raw = NULL;
		return -1;
	}
	return 0;
}

int packw_header(struct packw *w, const unsigned char *oid, int *type,
		 size_t *len)
{
	long i = find(w, oid);
	unsigned char *raw;
	uint64_t size;
	size_t n;
	int ret = -1;

	if (i < 0 || read_entry(w, (size_t)i, &raw, &n))
		return -1;
	if (decode_header(raw, n, type, &size) && size <= SIZE_MAX) {
		*len = (size_t)size;
		ret = 0;
	}
	free(raw);
	return ret;
}

int packw_read(struct packw *w, const unsigned char *oid, int *type,
	       void **data, size_t *len)
{
	long i = find(w, oid);
	unsigned char *raw, *out = NULL;
	uint64_t size;
	size_t n, h;
	z_stream z;
	int ret = -1;

	if (i < 0 || read_entry(w, (size_t)i, &raw, &n))
		return -1;
	h = decode_header(raw, n, type, &size);
	memset(&z, 0, sizeof(z));
	if (!h || size >= UINT_MAX || inflateInit(&z) != Z_OK)
		goto out;
	out = xmalloc((size_t)size + 1);
	z.next_in = raw + h;
	z.avail_in = (uInt)(n - h);
	z.next_out = out;
	z.avail_out = (uInt)size + 1;
	if (inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == size) {
		out[size] = '\0';
		*data = out;
		*len = (size_t)size;
		out = NULL;
		ret = 0;
	}
	inflateEnd(&z);
out:
	free(raw);
	free(out);
	return ret;
}

/* ---- finishing: checksum, index, names --------------------------------- */

struct out_file {
	int fd;
	unsigned char *buf;
	size_t len;
	struct sha1 sum;
};

static int out_put(struct out_file *o, const void *p, size_t n)
{
	sha1_add(&o->sum, p, n);
	if (o->len + n > BUF_SIZE) {
		if (fs_write_all(o->fd, o->buf, o->len))
			return -1;
		o->len = 0;
	}
	if (n > BUF_SIZE)
		return fs_write_all(o->fd, p, n);
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

static int cmp_oid(const void *a, const void *b, void *arg)
{
	const struct packw *w = arg;

	return memcmp(w->v[*(const uint32_t *)a].oid,
		      w->v[*(const uint32_t *)b].oid, PACK_RAWSZ);
}

/* The index (version 2) of w's pack whose checksum is sum, into fd. */
static int write_index(struct packw *w, int fd, const unsigned char *sum)
{
	static const unsigned char magic[8] = {0xff, 't', 'O', 'c', 0, 0, 0, 2};
	uint32_t *order = xcalloc(w->nr + 1, sizeof(*order));
	struct out_file o = {fd, w->buf, 0, {{0}, 0, {0}, 0}};
	unsigned char b[8], digest[SHA1_LEN];
	uint32_t fan = 0, big = 0;
	int ret = -1;

	sha1_init(&o.sum);
	for (size_t i = 0; i < w->nr; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, w->nr, sizeof(*order), cmp_oid, w);
	if (out_put(&o, magic, sizeof(magic)))
		goto out;
	for (unsigned f = 0; f < 256; f++) {
		while (fan < w->nr && w->v[order[fan]].oid[0] <= f)
			fan++;
		put_be32(b, fan);
		if (out_put(&o, b, 4))
			goto out;
	}
	for (size_t i = 0; i < w->nr; i++)
		if (out_put(&o, w->v[order[i]].oid, PACK_RAWSZ))
			goto out;
	for (size_t i = 0; i < w->nr; i++) {
		put_be32(b, w->v[order[i]].crc);
		if (out_put(&o, b, 4))
			goto out;
	}
	for (size_t i = 0; i < w->nr; i++) {
		uint64_t off = w->v[order[i]].off;

		put_be32(b, off < 0x80000000u ? (uint32_t)off
					      : 0x80000000u | big++);
		if (out_put(&o, b, 4))
			goto out;
	}
	for (size_t i = 0; i < w->nr; i++) {
		uint64_t off = w->v[order[i]].off;

		if (off < 0x80000000u)
			continue;
		put_be32(b, (uint32_t)(off >> 32));
		put_be32(b + 4, (uint32_t)off);
		if (out_put(&o, b, 8))
			goto out;
	}
	if (out_put(&o, sum, SHA1_LEN))
		goto out;
	sha1_final(&o.sum, digest);
	if (fs_write_all(fd, o.buf, o.len) ||
	    fs_write_all(fd, digest, SHA1_LEN))
		goto out;
	ret = 0;
out:
	free(order);
	return ret;
}

/* The pack's checksum: the count into its header, then its bytes read
 * back (from the page cache) and hashed, the sum after them. */
static int seal(struct packw *w, unsigned char *sum, struct error *err)
{
	unsigned char count[4];
	struct sha1 c;

	if (flush_buf(w, err))
		return -1;
	if (w->nr > UINT32_MAX)
		return error_set(err, EXIT_ENV, "too many objects for a pack");
	put_be32(count, (uint32_t)w->nr);
	if (pwrite(w->fd, count, 4, 8) != 4)
		return io_error(err, "write", w->tmp);
	sha1_init(&c);
	for (uint64_t at = 0; at < w->off;) {
		size_t n = w->off - at < BUF_SIZE ? (size_t)(w->off - at)
						  : BUF_SIZE;
		ssize_t got = pread(w->fd, w->buf, n, (off_t)at);

		if (got <= 0)
			return io_error(err, "read", w->tmp);
		sha1_add(&c, w->buf, (size_t)got);
		at += (uint64_t)got;
	}
	sha1_final(&c, sum);
	if (pwrite(w->fd, sum, SHA1_LEN, (off_t)w->off) != SHA1_LEN ||
	    fchmod(w->fd, 0444) || fsync(w->fd))
		return io_error(err, "write", w->tmp);
	return 0;
}

int packw_finish(struct packw *w, struct strbuf *stem, struct error *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char sum[SHA1_LEN];
	struct strbuf idx_tmp = STRBUF_INIT, path = STRBUF_INIT;
	size_t stem_at;
	int fd = -1, ret = -1;

	strbuf_reset(stem);
	if (!w->nr && !w->broken) {
		packw_reset(w);
		return 0;
	}
	if (w->broken) {
		error_set(
			err, EXIT_ENV,
			"cannot write a pack to '%s': an earlier write failed",
			w->dir);
		goto out;
	}
	if (seal(w, sum, err))
		goto out;
	strbuf_addf(&idx_tmp, "%s/tmp_idx_XXXXXX", w->dir);
	fd = mkostemp(idx_tmp.buf, O_CLOEXEC);
	if (fd < 0) {
		io_error(err, "create", idx_tmp.buf);
		strbuf_reset(&idx_tmp);
		goto out;
	}
	if (write_index(w, fd, sum) || fchmod(fd, 0444) || fsync(fd)) {
		io_error(err, "write", idx_tmp.buf);
		goto out;
	}
	strbuf_addstr(stem, "pack-");
	for (size_t i = 0; i < SHA1_LEN; i++) {
		strbuf_addch(stem, hex[sum[i] >> 4]);
		strbuf_addch(stem, hex[sum[i] & 15]);
	}
	/* the pack first, then its index: a pack is seen by its index */
	strbuf_addf(&path, "%s/%s.pack", w->dir, stem->buf);
	stem_at = path.len - 5;
	if (rename(w->tmp, path.buf)) {
		io_error(err, "rename", path.buf);
		goto out;
	}
	free(w->tmp);
	w->tmp = NULL;
	strbuf_setlen(&path, stem_at);
	strbuf_addstr(&path, ".idx");
	if (rename(idx_tmp.buf, path.buf)) {
		io_error(err, "rename", path.buf);
		goto out;
	}
	strbuf_reset(&idx_tmp);
	if (fs_fsync_parent(path.buf)) {
		io_error(err, "sync", w->dir);
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (idx_tmp.len)
		unlink(idx_tmp.buf);
	if (ret)
		strbuf_reset(stem);
	strbuf_release(&idx_tmp);
	strbuf_release(&path);
	packw_reset(w);
	return ret;
}

/* ---- merging ------------------------------------------------------------ */

/* A pack being merged. Its index is read, not mapped: its entries are
 * copied in id order, a window of ids and CRCs read at a time, and only
 * the offsets are held whole (12 bytes an entry with their order). A map
 * searched in pack order made the whole index resident (10 MB for the
 * 370,000 objects of 100,000 stages, twice when libgit2 had it mapped
 * too). */
#define SRC_WINDOW 4096
/* A delta's base is copied before it: a chain longer than this is
 * refused rather than followed on the stack (git makes them up to 50). */
#define MAX_DELTA_DEPTH 4096

struct src {
	const char *name; /* for messages */
	int idx_fd, fd;
	uint32_t n;
	uint64_t *offs;	  /* by index position */
	uint32_t *by_off; /* index positions in pack order */
	uint64_t end;	  /* where the entries end: before the checksum */
	/* ids and CRCs of index positions [win, win + win_n) */
	unsigned char *win_oids, *win_crcs;
	uint32_t win, win_n;
};

#define IDX_HEAD (8 + 256 * 4)

static int cmp_off(const void *a, const void *b, void *arg)
{
	const struct src *s = arg;
	uint64_t x = s->offs[*(const uint32_t *)a];
	uint64_t y = s->offs[*(const uint32_t *)b];

	return x < y ? -1 : x > y;
}

static void src_close(struct src *s)
{
	if (s->idx_fd >= 0)
		close(s->idx_fd);
	if (s->fd >= 0)
		close(s->fd);
	free(s->offs);
	free(s->by_off);
	free(s->win_oids);
	free(s->win_crcs);
	memset(s, 0, sizeof(*s));
	s->idx_fd = s->fd = -1;
}

static int damaged(struct error *err, const struct src *s, const char *why)
{
	return error_set(err, EXIT_ENV, "pack '%s' is damaged: %s", s->name,
			 why);
}

static int read_at(int fd, void *buf, size_t len, uint64_t at)
{
	ssize_t r = pread(fd, buf, len, (off_t)at);

	return r >= 0 && (size_t)r == len ? 0 : -1;
}

/* The offsets, read a window at a time (the large ones from the table
 * after them). */
static int read_offsets(struct src *s, uint64_t nbig, struct error *err)
{
	uint64_t at = IDX_HEAD + (uint64_t)s->n * (PACK_RAWSZ + 4);
	unsigned char *buf = xmalloc(SRC_WINDOW * 4), big[8];
	int ret = 0;

	for (uint32_t i = 0; i < s->n && !ret; i += SRC_WINDOW) {
		uint32_t k = s->n - i < SRC_WINDOW ? s->n - i : SRC_WINDOW;

		if (read_at(s->idx_fd, buf, (size_t)k * 4,
			    at + 4 * (uint64_t)i))
			ret = damaged(err, s, "its index cannot be read");
		for (uint32_t j = 0; j < k && !ret; j++) {
			uint32_t o = get_be32(buf + 4 * (size_t)j);

			s->offs[i + j] = o;
			if (!(o & 0x80000000u))
				continue;
			o &= 0x7fffffffu;
			if (o >= nbig ||
			    read_at(s->idx_fd, big, 8,
				    at + 4 * (uint64_t)s->n + 8 * (uint64_t)o))
				ret = damaged(err, s,
					      "an offset is out of place");
			else
				s->offs[i + j] = (uint64_t)get_be32(big) << 32 |
						 get_be32(big + 4);
		}
	}
	free(buf);
	return ret;
}

/* Open dir/stem.idx (version 2) and dir/stem.pack. */
static int src_open(struct src *s, const char *dir, const char *stem,
		    struct strbuf *path, struct error *err)
{
	unsigned char head[IDX_HEAD];
	struct stat st;
	uint64_t need, nbig;

	s->idx_fd = s->fd = -1;
	s->name = stem;
	strbuf_reset(path);
	strbuf_addf(path, "%s/%s.idx", dir, stem);
	s->idx_fd = open(path->buf, O_RDONLY | O_CLOEXEC);
	if (s->idx_fd < 0 || fstat(s->idx_fd, &st))
		return io_error(err, "read", path->buf);
	if ((uint64_t)st.st_size < IDX_HEAD + 40 ||
	    read_at(s->idx_fd, head, IDX_HEAD, 0) ||
	    memcmp(head, "\377tOc", 4) || get_be32(head + 4) != 2)
		return damaged(err, s, "its index is not git's version 2");
	s->n = get_be32(head + 8 + 255 * 4);
	need = IDX_HEAD + (uint64_t)s->n * 28 + 40;
	if ((uint64_t)st.st_size < need || ((uint64_t)st.st_size - need) % 8)
		return damaged(err, s, "its index is cut short");
	nbig = ((uint64_t)st.st_size - need) / 8;
	s->offs = xcalloc((size_t)s->n + 1, sizeof(*s->offs));
	if (read_offsets(s, nbig, err))
		return -1;
	strbuf_setlen(path, path->len - 4);
	strbuf_addstr(path, ".pack");
	s->fd = open(path->buf, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0 || fstat(s->fd, &st))
		return io_error(err, "read", path->buf);
	if (st.st_size < HEADER_SIZE + SHA1_LEN ||
	    read_at(s->fd, head, HEADER_SIZE, 0) || memcmp(head, "PACK", 4) ||
	    get_be32(head + 8) != s->n)
		return damaged(err, s, "its header does not match its index");
	s->end = (uint64_t)st.st_size - SHA1_LEN;
	s->by_off = xcalloc((size_t)s->n + 1, sizeof(*s->by_off));
	for (uint32_t i = 0; i < s->n; i++)
		s->by_off[i] = i;
	qsort_r(s->by_off, s->n, sizeof(*s->by_off), cmp_off, s);
	for (uint32_t k = 0; k < s->n; k++) {
		uint64_t o = s->offs[s->by_off[k]];

		if (o < HEADER_SIZE || o >= s->end ||
		    (k && o == s->offs[s->by_off[k - 1]]))
			return damaged(err, s, "an offset is out of place");
	}
	s->win_oids = xmalloc((size_t)SRC_WINDOW * PACK_RAWSZ);
	s->win_crcs = xmalloc((size_t)SRC_WINDOW * 4);
	return 0;
}

/* The window of ids and CRCs from index position i on. */
static int src_window(struct src *s, uint32_t i, struct error *err)
{
	uint32_t k = s->n - i < SRC_WINDOW ? s->n - i : SRC_WINDOW;

	if (read_at(s->idx_fd, s->win_oids, (size_t)k * PACK_RAWSZ,
		    IDX_HEAD + (uint64_t)i * PACK_RAWSZ) ||
	    read_at(s->idx_fd, s->win_crcs, (size_t)k * 4,
		    IDX_HEAD + (uint64_t)s->n * PACK_RAWSZ + 4 * (uint64_t)i))
		return damaged(err, s, "its index cannot be read");
	s->win = i;
	s->win_n = k;
	return 0;
}

/* The id and CRC of index position i: from the window, or read alone (a
 * delta's base). */
static int src_id(const struct src *s, uint32_t i, unsigned char *oid,
		  uint32_t *crc, struct error *err)
{
	unsigned char c[4];

	if (i >= s->win && i - s->win < s->win_n) {
		memcpy(oid, s->win_oids + (size_t)(i - s->win) * PACK_RAWSZ,
		       PACK_RAWSZ);
		*crc = get_be32(s->win_crcs + 4 * (size_t)(i - s->win));
		return 0;
	}
	if (read_at(s->idx_fd, oid, PACK_RAWSZ,
		    IDX_HEAD + (uint64_t)i * PACK_RAWSZ) ||
	    read_at(s->idx_fd, c, 4,
		    IDX_HEAD + (uint64_t)s->n * PACK_RAWSZ + 4 * (uint64_t)i))
		return damaged(err, s, "its index cannot be read");
	*crc = get_be32(c);
	return 0;
}

/* The pack-order rank of the entry at offset off, or UINT32_MAX. */
static uint32_t src_rank(const struct src *s, uint64_t off)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t o = s->offs[s->by_off[mid]];

		if (o == off)
			return (uint32_t)mid;
		if (o < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return UINT32_MAX;
}

/* Copy the entry at index position i of s into w, an offset delta's base
 * first (depth: how many deltas wait for this one). */
static int copy_entry(struct packw *w, struct src *s, uint32_t i, int depth,
		      unsigned char *buf, struct error *err)
{
	unsigned char oid[PACK_RAWSZ];
	uint64_t off = s->offs[i], at, end;
	uint32_t rank = src_rank(s, off), want_crc;
	unsigned char h[ENTRY_HEADER_MAX], nh[ENTRY_HEADER_MAX];
	size_t got, hlen, dlen = 0, nlen;
	uint32_t src_crc = 0, crc = 0;
	struct pack_entry *e;
	uint64_t size, dist;
	int type;
	ssize_t r;

	if (src_id(s, i, oid, &want_crc, err))
		return -1;
	if (find(w, oid) >= 0)
		return 0; /* in an earlier pack too, or a base copied */
	end = rank + 1 < s->n ? s->offs[s->by_off[rank + 1]] : s->end;
	got = end - off < sizeof(h) ? (size_t)(end - off) : sizeof(h);
	r = pread(s->fd, h, got, (off_t)off);
	if (r < 0 || (size_t)r != got)
		return io_error(err, "read", s->name);
	hlen = decode_header(h, got, &type, &size);
	if (!hlen || type == 0 || type == 5)
		return damaged(err, s, "an entry's header is not git's");
	memcpy(nh, h, hlen);
	nlen = hlen;
	if (type == PACK_OFS_DELTA) {
		unsigned char base[PACK_RAWSZ];
		uint32_t bcrc, brank;
		long b;

		dlen = decode_distance(h + hlen, got - hlen, &dist);
		if (!dlen || !dist || dist > off ||
		    (brank = src_rank(s, off - dist)) == UINT32_MAX)
			return damaged(err, s,
				       "a delta's base is out of place");
		if (src_id(s, s->by_off[brank], base, &bcrc, err))
			return -1;
		if (find(w, base) < 0) {
			if (depth >= MAX_DELTA_DEPTH)
				return damaged(err, s,
					       "a chain of deltas is too long");
			if (copy_entry(w, s, s->by_off[brank], depth + 1, buf,
				       err))
				return -1;
		}
		b = find(w, base);
		if (b < 0)
			return damaged(err, s, "a delta's base is missing");
		nlen += encode_distance(nh + nlen, w->off - w->v[b].off);
	}
	ALLOC_GROW(w->v, w->nr + 1, w->alloc);
	e = &w->v[w->nr];
	memcpy(e->oid, oid, PACK_RAWSZ);
	e->off = w->off;
	src_crc = (uint32_t)crc32(0, h, (uInt)(hlen + dlen));
	if (put(w, nh, nlen, &crc, err))
		return -1;
	for (at = off + hlen + dlen; at < end;) {
		size_t n = end - at < BUF_SIZE ? (size_t)(end - at) : BUF_SIZE;

		r = pread(s->fd, buf, n, (off_t)at);
		if (r <= 0)
			return io_error(err, "read", s->name);
		src_crc = (uint32_t)crc32(src_crc, buf, (uInt)r);
		if (put(w, buf, (size_t)r, &crc, err))
			return -1;
		at += (uint64_t)r;
	}
	if (src_crc != want_crc)
		return damaged(err, s, "an entry does not match its CRC-32");
	w->v[w->nr].crc = crc;
	add_entry(w);
	return 0;
}

/* How many entries the indexes dir/<stems[i]>.idx list in all, as their
 * headers say (a damaged one is refused later, by src_open). */
static size_t merge_count(const char *dir, char *const *stems, size_t n,
			  struct strbuf *path)
{
	unsigned char head[8 + 256 * 4];
	size_t total = 0;

	for (size_t p = 0; p < n; p++) {
		struct stat st;
		int fd;

		strbuf_reset(path);
		strbuf_addf(path, "%s/%s.idx", dir, stems[p]);
		fd = open(path->buf, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!fstat(fd, &st) &&
		    pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
		    !memcmp(head, "\377tOc", 4) && get_be32(head + 4) == 2) {
			uint64_t k = get_be32(head + 8 + 255 * 4);

			/* no more than the file has room for */
			if (sizeof(head) + k * 28 + 40 <= (uint64_t)st.st_size)
				total += (size_t)k;
		}
		close(fd);
	}
	return total;
}

int pack_merge(const char *dir, char *const *stems, size_t n,
	       struct strbuf *stem, struct error *err)
{
	struct packw *w = packw_new(dir, Z_DEFAULT_COMPRESSION);
	struct strbuf path = STRBUF_INIT;
	unsigned char *buf = xmalloc(BUF_SIZE);
	struct src s;
	int ret = -1;

	memset(&s, 0, sizeof(s));
	s.idx_fd = s.fd = -1;
	strbuf_reset(stem);
	if (start(w, err))
		goto out;
	reserve(w, merge_count(dir, stems, n, &path));
	for (size_t p = 0; p < n; p++) {
		int rc = src_open(&s, dir, stems[p], &path, err);

		for (uint32_t i = 0; !rc && i < s.n; i++)
			if (i % SRC_WINDOW || !(rc = src_window(&s, i, err)))
				rc = copy_entry(w, &s, i, 0, buf, err);
		src_close(&s);
		if (rc)
			goto out;
	}
	ret = packw_finish(w, stem, err);
out:
	src_close(&s);
	packw_free(w);
	free(buf);
	strbuf_release(&path);
	return ret;
}
