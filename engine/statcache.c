/* The stat cache: workspace-relative path -> stat data and content hash,
 * loaded from and saved to one binary file.
 *
 * File format (integers little-endian):
 *   "pipe-statcache 1\n"
 *   u64 count
 *   count records, in byte order of their paths:
 *                  u32 path_len, u32 mode, u64 dev, u64 ino, u64 size,
 *                  i64 mtime_ns, i64 ctime_ns, i64 hashed_ns,
 *                  16-byte hash (canonical), path_len bytes of path
 *   16-byte XXH3-128 (canonical) of everything before it
 * A file that fails any check is rebuilt empty, never trusted (ninja's
 * build log).
 *
 * In memory. The file is mapped and its records are used where they lie:
 * loading 100,000 entries is one checksum and one pass noting where each
 * record starts, with no copy and no allocation per entry. Records stay in
 * path order, which is the order in which scans ask for files
 * (engine/scan.c walks folders sorted), so a lookup first tries the record
 * after the previous one: a no-op scan finds every file there, without
 * hashing a path or building any table. Other loaded paths are found by
 * binary search. Paths added or re-hashed in this session become entries
 * in an open-addressing hash table (a re-hashed record is marked moved):
 * 80 bytes each in blocks of ENTRY_BLOCK, a flag byte beside, their paths
 * in an arena, about 95 bytes an entry with its slots.
 * Saving merges records and entries in path order, copying unchanged
 * records as they are.
 *
 * Merges during the session. A full run of 100,000 stages adds 200,000
 * entries (17.7 MB, held to its end before). So once the entries number
 * MERGE_MIN and one for MERGE_DIV records, a commit merges them into a
 * new file as a save would (every record kept, drops left to the save),
 * puts it in place and uses it as if loaded: the entries are freed, and
 * what stays of each record is its offset, flag byte and path tag (the
 * low 32 bits of its path's hash) with a slot over the tags, about 15
 * bytes; the map, not populated, is read in only where a lookup lands.
 * The tags find a path without a binary search, which would read in the
 * whole map (its top levels are a record in every page), and tell a path
 * the file lacks (each new file of a run) without a page of it. Each
 * merge writes the whole file, which is then at least an eighth larger,
 * so a run writes at most nine times what it adds (0.06 s of system time
 * at 200,000 entries), and at most a ninth of its entries wait as entries:
 * 200,000 entries peak at 5.9 MB of heap, 20.3 held as entries. A merge
 * reads the old map through and gives its pages back behind it, as a
 * save of a merged file does, and lookups give theirs back every
 * GIVE_EVERY (a run record looks up every input). A kill at any moment leaves
 * the old file or the new one, whole (the temp file beside it is never read),
 * and every record of either maps stat data to the hash read then; racy entries
 * are written as they are and stay untrusted (below). A probe taken
 * before a merge (statcache.h) is found again by its path at its commit.
 * Entries of 80 bytes packed tighter would still be 60; a side file of
 * records, for its part, would need its entries sorted at the save (or
 * read back in pieces), where a merged file is in order already.
 *
 * Racily clean entries (git's racy-git problem). Stat data name a version
 * of a file only as finely as the filesystem's timestamps: 1 s on ext3 or
 * HFS+, 2 s for FAT's mtime, and about a scheduler tick even on nanosecond
 * filesystems, because the kernel stamps files from a coarse clock. A
 * same-size write within the tick of the last recorded change leaves dev,
 * inode, size, mtime and ctime all as they were, and a cache trusting them
 * would keep the old hash. What protects us is ctime: nobody can set it
 * (utimensat and every write set it to "now"). So each entry records
 * hashed_ns, the wall clock before the file was opened, and is trusted only
 * when the file's last change (the later of mtime and ctime) lies at least
 * STATCACHE_RACY_NS before it. Any write after the hash then lands at least
 * that long after the recorded ctime, which is more than any timestamp
 * granularity, so its new ctime cannot equal the recorded one and the entry
 * misses. Entries hashed sooner after a change are kept but re-read at the
 * next lookup; the re-read, taken later, makes them trusted. This assumes
 * the filesystem's clock agrees with ours to within STATCACHE_RACY_NS (true
 * for local filesystems; an NFS server running behind by more would defeat
 * it, one running ahead only costs re-reads). */
#include "engine/statcache.h"
#include "util/arena.h"
#include "util/fs.h"
#include "util/glob.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char MAGIC[] = "pipe-statcache 1\n";
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define FAMILY_LEN (sizeof("pipe-statcache ") - 1)
#define HEAD_LEN (MAGIC_LEN + 8)
#define REC_FIXED 72
#define SUM_LEN 16

/* Flags of a loaded record; F_SEEN and F_DROPPED of an entry too. */
enum { F_SEEN = 1, F_DROPPED = 2, F_MOVED = 4 };

/* An entry added or re-hashed in this session; also the decoded form of a
 * record. */
struct entry {
	const char *path; /* into the paths arena, or the map */
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns, hashed_ns;
	struct hash128 hash;
	uint32_t len;
	uint32_t mode;
};

#define ENTRY_BLOCK 1024

/* Entries added are merged into the file once there are MERGE_MIN, and
 * one for MERGE_DIV records (see the top of the file). */
#define MERGE_MIN 8192
#define MERGE_DIV 8

/* Entries never move once added: a block is not reallocated. */
struct entry_block {
	struct entry e[ENTRY_BLOCK];
	uint8_t flag[ENTRY_BLOCK]; /* F_SEEN, F_DROPPED */
};

struct walked_glob {
	char *dir, *glob;
};

struct statcache {
	char *path;
	const unsigned char *map; /* the loaded file, or NULL */
	size_t map_len;
	uint32_t *rec;	/* where each loaded record starts, in path order */
	uint8_t *flag;	/* F_* of each loaded record */
	size_t nloaded; /* indexes [0, nloaded) are records */
	/* when the file is one this session merged: each record's path hash
	 * (its low 32 bits) and a table over them (i + 1; 0 is empty), so
	 * that a path the file lacks is known without touching the map */
	uint32_t *tag, *rslot;
	size_t nrslots;
	int lazy;	  /* the map is read in as used (a merged file) */
	size_t uses;	  /* commits and hits since its pages were given back */
	unsigned gen;	  /* merges so far: a probe from before one is stale */
	size_t merge_min; /* no merge for fewer entries (SIZE_MAX: never) */
	struct entry_block **blk; /* indexes nloaded + i are entry i */
	size_t nr, blk_alloc;
	struct arena paths;   /* of the entries that are no record */
	uint32_t *slots;      /* over e: i + 1; 0 is empty */
	size_t nslots;	      /* 0, or a power of two >= twice nr */
	size_t cursor;	      /* where the next lookup probably lands */
	struct strvec walked; /* folders walked in full, sorted at save */
	int walked_sorted;    /* since the last note */
	/* the last folder seen_file was asked about, and its answer: a save
	 * asks about "in" for each of 100,000 unseen "in/N" */
	struct strbuf memo;
	int memo_hit, memo_valid;
	struct walked_glob *globs;
	size_t nglobs, globs_alloc;
	int dirty;
	uid_t euid;
	int64_t (*now_ns)(void);
	struct statcache_stats stats;
};

static void merge_added(struct statcache *sc);

static int64_t real_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put64(struct strbuf *sb, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	strbuf_add(sb, b, sizeof(b));
}

static void put32(struct strbuf *sb, uint32_t v)
{
	unsigned char b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	strbuf_add(sb, b, sizeof(b));
}

static void put_hash(struct strbuf *sb, const struct hash128 *h)
{
	put64(sb, h->high);
	put64(sb, h->low);
}

static struct entry *ent(const struct statcache *sc, size_t i)
{
	return &sc->blk[i / ENTRY_BLOCK]->e[i % ENTRY_BLOCK];
}

static uint8_t *ent_flag(const struct statcache *sc, size_t i)
{
	return &sc->blk[i / ENTRY_BLOCK]->flag[i % ENTRY_BLOCK];
}

static const unsigned char *rec_at(const struct statcache *sc, size_t i)
{
	return sc->map + sc->rec[i];
}

static void rec_path(const struct statcache *sc, size_t i, const char **p,
		     size_t *len)
{
	const unsigned char *r = rec_at(sc, i);

	*len = get32(r);
	*p = (const char *)r + REC_FIXED;
}

/* The record decoded (its path left in the map). */
static void rec_decode(const struct statcache *sc, size_t i, struct entry *e)
{
	const unsigned char *r = rec_at(sc, i);

	e->path = (const char *)r + REC_FIXED;
	e->len = get32(r);
	e->mode = get32(r + 4);
	e->dev = get64(r + 8);
	e->ino = get64(r + 16);
	e->size = get64(r + 24);
	e->mtime_ns = (int64_t)get64(r + 32);
	e->ctime_ns = (int64_t)get64(r + 40);
	e->hashed_ns = (int64_t)get64(r + 48);
	e->hash.high = get64(r + 56);
	e->hash.low = get64(r + 64);
}

static uint64_t path_hash(const char *p, size_t len)
{
	struct hash128 h;

	hash_buf(p, len, &h);
	return h.low;
}

/* Paths compare as strcmp would: bytes, then length. */
static int cmp_path(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int rec_is(const struct statcache *sc, size_t i, const char *p,
		  size_t len)
{
	const char *rp;
	size_t rlen;

	rec_path(sc, i, &rp, &rlen);
	return rlen == len && !memcmp(rp, p, len);
}

/* Loaded records are sorted: binary search. */
static size_t find_rec(const struct statcache *sc, const char *p, size_t len)
{
	size_t lo = 0, hi = sc->nloaded;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, rlen;
		const char *rp;
		int c;

		rec_path(sc, mid, &rp, &rlen);
		c = cmp_path(rp, rlen, p, len);
		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* A merged file's record by its path's hash: the map is read only for a
 * record whose tag matches, so a path it lacks costs no page of it. */
static size_t find_tagged(const struct statcache *sc, const char *p, size_t len,
			  uint32_t tag)
{
	size_t mask = sc->nrslots - 1;

	for (size_t i = tag & mask;; i = (i + 1) & mask) {
		uint32_t r = sc->rslot[i];

		if (!r)
			return SIZE_MAX;
		if (sc->tag[r - 1] == tag && rec_is(sc, r - 1, p, len))
			return r - 1;
	}
}

/* The table over the records' tags: a power of two over 4/3 of them
 * (4 to 8 bytes a record). */
static void index_tags(struct statcache *sc)
{
	size_t n = 1024, mask;

	while (3 * n < 4 * sc->nloaded)
		n *= 2;
	sc->rslot = xcalloc(n, sizeof(*sc->rslot));
	sc->nrslots = n;
	mask = n - 1;
	for (size_t r = 0; r < sc->nloaded; r++) {
		size_t i = sc->tag[r] & mask;

		while (sc->rslot[i])
			i = (i + 1) & mask;
		sc->rslot[i] = (uint32_t)r + 1;
	}
}

static uint32_t *find_slot(const struct statcache *sc, const char *p,
			   size_t len, uint64_t ph)
{
	size_t mask = sc->nslots - 1, i = (size_t)ph & mask;

	for (;; i = (i + 1) & mask) {
		const struct entry *e;

		if (!sc->slots[i])
			return &sc->slots[i];
		e = ent(sc, sc->slots[i] - 1);
		if (e->len == len && !memcmp(e->path, p, len))
			return &sc->slots[i];
	}
}

/* Entry idx into the table, ph its path's hash; the table grown (each
 * path hashed again: not kept, 8 bytes an entry) when half full. */
static void index_entry(struct statcache *sc, size_t idx, uint64_t ph)
{
	size_t n = 1024;
	const struct entry *e = ent(sc, idx);

	if (2 * sc->nr <= sc->nslots) {
		*find_slot(sc, e->path, e->len, ph) = (uint32_t)idx + 1;
		return;
	}
	while (n < 2 * sc->nr)
		n *= 2;
	free(sc->slots);
	sc->slots = xcalloc(n, sizeof(*sc->slots));
	sc->nslots = n;
	for (size_t i = 0; i < sc->nr; i++) {
		e = ent(sc, i);
		*find_slot(sc, e->path, e->len, path_hash(e->path, e->len)) =
			(uint32_t)i + 1;
	}
}

/* The index of path (see struct statcache), or SIZE_MAX; *pos gets the
 * record's position when path is a loaded record, moved or not, for the
 * next lookup's hint. Changes nothing, so it is safe on several threads. */
static size_t find(const struct statcache *sc, const char *p, size_t len,
		   size_t hint, size_t *pos)
{
	size_t i = SIZE_MAX;
	uint64_t ph = 0;

	if (hint < sc->nloaded && rec_is(sc, hint, p, len)) {
		i = hint;
	} else if (sc->tag) {
		ph = path_hash(p, len);
		i = find_tagged(sc, p, len, (uint32_t)ph);
	} else if (sc->nloaded) {
		i = find_rec(sc, p, len);
	}
	*pos = i;
	/* a scan ahead's threads set F_SEEN in the same byte meanwhile */
	if (i != SIZE_MAX &&
	    !(__atomic_load_n(&sc->flag[i], __ATOMIC_RELAXED) & F_MOVED))
		return i;
	if (!sc->nslots)
		return SIZE_MAX;
	i = *find_slot(sc, p, len, ph ? ph : path_hash(p, len));
	return i ? sc->nloaded + i - 1 : SIZE_MAX;
}

/* The entry for path (its index among the entries), added when there is
 * none (a loaded record is marked moved). */
static size_t entry_for(struct statcache *sc, const char *p, size_t len)
{
	size_t pos, i = find(sc, p, len, sc->cursor, &pos), n = sc->nr;
	struct entry *e;

	if (pos != SIZE_MAX)
		sc->cursor = pos + 1;
	if (i != SIZE_MAX && i >= sc->nloaded)
		return i - sc->nloaded;
	if (n % ENTRY_BLOCK == 0) {
		ALLOC_GROW(sc->blk, n / ENTRY_BLOCK + 1, sc->blk_alloc);
		sc->blk[n / ENTRY_BLOCK] = xmalloc(sizeof(**sc->blk));
	}
	e = ent(sc, n);
	memset(e, 0, sizeof(*e));
	*ent_flag(sc, n) = 0;
	if (i != SIZE_MAX) {
		rec_decode(sc, i, e);
		sc->flag[i] |= F_MOVED;
	} else {
		e->path = arena_memdupz(&sc->paths, p, len);
		e->len = (uint32_t)len;
	}
	sc->nr++;
	index_entry(sc, n, path_hash(p, len));
	return n;
}

/* Notes where each record starts; returns why the file is unusable, or
 * NULL. */
static const char *index_records(struct statcache *sc, size_t count,
				 const unsigned char *end)
{
	const unsigned char *p = sc->map + HEAD_LEN;
	const char *prev = NULL;
	size_t prev_len = 0;

	sc->rec = xmalloc((count + 1) * sizeof(*sc->rec));
	sc->flag = xcalloc(count + 1, 1);
	for (size_t i = 0; i < count; i++) {
		uint32_t len;

		if ((size_t)(end - p) < REC_FIXED)
			return "truncated record";
		len = get32(p);
		if (!len || (size_t)(end - p - REC_FIXED) < len)
			return "bad path length";
		if (prev && cmp_path(prev, prev_len,
				     (const char *)p + REC_FIXED, len) >= 0)
			return "paths out of order";
		sc->rec[i] = (uint32_t)(p - sc->map);
		prev = (const char *)p + REC_FIXED;
		prev_len = len;
		p += REC_FIXED + len;
	}
	if (p != end)
		return "trailing bytes";
	sc->nloaded = count;
	return NULL;
}

/* Checks the mapped file; returns why it is unusable, or NULL. */
static const char *parse(struct statcache *sc)
{
	const unsigned char *p = sc->map, *end;
	struct hash128 sum;
	uint64_t count;

	if (sc->map_len < MAGIC_LEN || memcmp(p, MAGIC, MAGIC_LEN))
		return sc->map_len >= FAMILY_LEN &&
				       !memcmp(p, MAGIC, FAMILY_LEN)
			       ? "unknown version"
			       : "not a stat cache (or truncated)";
	if (sc->map_len < HEAD_LEN + SUM_LEN)
		return "truncated";
	if (sc->map_len > UINT32_MAX)
		return "too big";
	end = p + sc->map_len - SUM_LEN; /* not before: an empty file is NULL */
	hash_buf(p, (size_t)(end - p), &sum);
	if (get64(end) != sum.high || get64(end + 8) != sum.low)
		return "checksum mismatch (truncated or corrupt)";
	count = get64(p + MAGIC_LEN);
	if (count > (uint64_t)(end - p) / REC_FIXED)
		return "bad entry count";
	return index_records(sc, (size_t)count, end);
}

static void unload(struct statcache *sc)
{
	if (sc->map)
		munmap((void *)sc->map, sc->map_len);
	sc->map = NULL;
	sc->map_len = sc->nloaded = 0;
	free(sc->rec);
	free(sc->flag);
	free(sc->tag);
	free(sc->rslot);
	sc->rec = NULL;
	sc->flag = NULL;
	sc->tag = sc->rslot = NULL;
	sc->nrslots = 0;
	sc->lazy = 0;
}

/* Maps the file; 0, or -1 with errno (ENOENT: there is none). An empty
 * file maps to nothing, which parse calls truncated. The map is private
 * and read-only: pipe replaces the file by renaming a new one over it,
 * which leaves this one as it was. */
static int map_file(struct statcache *sc)
{
	void *m;

	if (fs_map(sc->path, 0, &m, &sc->map_len))
		return -1;
	sc->map = m;
	return 0;
}

int statcache_open(struct statcache **out, const char *cache_path,
		   struct error *err)
{
	struct statcache *sc = xcalloc(1, sizeof(*sc));
	const char *why;

	sc->path = xstrdup(cache_path);
	strvec_init(&sc->walked);
	strbuf_init(&sc->memo, 0);
	sc->now_ns = real_now_ns;
	sc->euid = geteuid();
	sc->merge_min = MERGE_MIN;
	*out = sc;
	if (map_file(sc)) {
		if (errno == ENOENT)
			return 0;
		error_set(err, EXIT_ENV, "cannot read '%s': %s", cache_path,
			  strerror(errno));
		statcache_free(sc);
		*out = NULL;
		return -1;
	}
	why = parse(sc);
	if (why) {
		log_verbose("stat cache '%s': %s; rebuilding it", cache_path,
			    why);
		unload(sc);
		sc->dirty = 1;
	}
	return 0;
}

static int same_stat(const struct entry *e, const struct stat *st)
{
	return e->dev == (uint64_t)st->st_dev &&
	       e->ino == (uint64_t)st->st_ino &&
	       e->size == (uint64_t)st->st_size &&
	       e->mtime_ns == (int64_t)st->st_mtim.tv_sec * 1000000000 +
				      st->st_mtim.tv_nsec &&
	       e->ctime_ns == (int64_t)st->st_ctim.tv_sec * 1000000000 +
				      st->st_ctim.tv_nsec &&
	       e->mode == (uint32_t)st->st_mode;
}

static int is_racy(const struct entry *e)
{
	int64_t last = e->mtime_ns > e->ctime_ns ? e->mtime_ns : e->ctime_ns;

	return last > e->hashed_ns - STATCACHE_RACY_NS;
}

static void record(struct entry *e, const struct stat *st, int64_t hashed_ns,
		   const struct hash128 *h)
{
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->size = (uint64_t)st->st_size;
	e->mtime_ns =
		(int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	e->ctime_ns =
		(int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	e->mode = (uint32_t)st->st_mode;
	e->hashed_ns = hashed_ns;
	e->hash = *h;
}

/* Opens name without following a symlink or blocking on a FIFO swapped in
 * since the caller's lstat, and without touching atime where allowed. */
static int open_file(const struct statcache *sc, int dirfd, const char *name,
		     const struct stat *st)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
	int fd;

	if (sc->euid == 0 || st->st_uid == sc->euid)
		flags |= O_NOATIME;
	fd = openat(dirfd, name, flags);
	if (fd < 0 && errno == EPERM && (flags & O_NOATIME))
		fd = openat(dirfd, name, flags & ~O_NOATIME);
	return fd;
}

/* Reads and hashes the file into p, with the stat data of what was read. */
static int read_file(const struct statcache *sc, int dirfd, const char *name,
		     const char *relpath, const struct stat *st,
		     struct statcache_probe *p, struct error *err)
{
	int fd, ret = -1;

	p->hashed_ns = sc->now_ns();
	fd = open_file(sc, dirfd, name, st);
	if (fd < 0)
		return error_set(err, EXIT_ENV, "cannot open '%s': %s", relpath,
				 strerror(errno));
	if (fstat(fd, &p->st))
		error_set(err, EXIT_ENV, "cannot stat '%s': %s", relpath,
			  strerror(errno));
	else if (!S_ISREG(p->st.st_mode))
		error_set(err, EXIT_USAGE, "'%s' is not a regular file",
			  relpath);
	else
		ret = hash_fd(fd, relpath, &p->hash, &p->bytes, err);
	close(fd);
	return ret;
}

int statcache_probe(const struct statcache *sc, int dirfd, const char *name,
		    const char *relpath, const struct stat *st,
		    struct statcache_probe *p, struct error *err)
{
	size_t pos, i = find(sc, relpath, strlen(relpath), p->hint, &pos);
	struct entry view;
	const struct entry *e = NULL;

	unsigned flag = 0;

	p->hit = 0;
	p->gen = sc->gen;
	p->entry = i;
	p->next = pos == SIZE_MAX ? SIZE_MAX : pos + 1;
	/* a scan ahead's threads set F_SEEN meanwhile */
	if (i != SIZE_MAX && i < sc->nloaded) {
		rec_decode(sc, i, &view);
		e = &view;
		flag = __atomic_load_n(&sc->flag[i], __ATOMIC_RELAXED);
	} else if (i != SIZE_MAX) {
		e = ent(sc, i - sc->nloaded);
		flag = __atomic_load_n(ent_flag(sc, i - sc->nloaded),
				       __ATOMIC_RELAXED);
	}
	if (e && !(flag & F_DROPPED) && same_stat(e, st) && !is_racy(e)) {
		p->hit = 1;
		p->hash = e->hash;
		return 0;
	}
	if (!S_ISREG(st->st_mode))
		return error_set(err, EXIT_USAGE, "'%s' is not a regular file",
				 relpath);
	if (p->lookup_only)
		return 0;
	return read_file(sc, dirfd, name, relpath, st, p, err);
}

/* A lookup that lands in a merged file reads in the page of its record
 * and, the kernel faulting around it, 64 KB about it: a run record's
 * lookup of every input would read in the whole map (16 MB at 100,000
 * stages). So its pages are given back every GIVE_EVERY uses, 2 MB at
 * most (the file is in the page cache: a lookup reads it in again). */
#define GIVE_EVERY 32

static void used(struct statcache *sc, size_t n)
{
	if (!sc->lazy || (sc->uses += n) < GIVE_EVERY)
		return;
	madvise((void *)sc->map, sc->map_len, MADV_DONTNEED);
	sc->uses = 0;
}

void statcache_commit(struct statcache *sc, const char *relpath,
		      const struct statcache_probe *p)
{
	size_t n, i = p->entry, pos;

	used(sc, 1);
	if (p->hit) {
		/* a merge since the probe moved its entry: by path, then */
		if (p->gen != sc->gen) {
			i = find(sc, relpath, strlen(relpath), SIZE_MAX, &pos);
			if (i == SIZE_MAX)
				return;
		} else if (p->next != SIZE_MAX) {
			sc->cursor = p->next;
		}
		if (i < sc->nloaded)
			sc->flag[i] |= F_SEEN;
		else
			*ent_flag(sc, i - sc->nloaded) |= F_SEEN;
		sc->stats.hits++;
		return;
	}
	n = entry_for(sc, relpath, strlen(relpath));
	*ent_flag(sc, n) = F_SEEN; /* and not dropped */
	record(ent(sc, n), &p->st, p->hashed_ns, &p->hash);
	sc->stats.misses++;
	sc->stats.bytes_hashed += p->bytes;
	sc->dirty = 1;
	if (sc->nr >= sc->merge_min && MERGE_DIV * sc->nr >= sc->nloaded)
		merge_added(sc);
}

void statcache_mark_seen(struct statcache *sc, const struct statcache_probe *p)
{
	if (p->gen != sc->gen)
		return; /* never: no commit runs between (a seen mark lost) */
	if (p->entry < sc->nloaded)
		__atomic_fetch_or(&sc->flag[p->entry], F_SEEN,
				  __ATOMIC_RELAXED);
	else
		__atomic_fetch_or(ent_flag(sc, p->entry - sc->nloaded), F_SEEN,
				  __ATOMIC_RELAXED);
}

void statcache_add_hits(struct statcache *sc, size_t n)
{
	used(sc, n);
	sc->stats.hits += n;
}

int statcache_known(const struct statcache *sc, const char *relpath,
		    const struct stat *st, struct hash128 *out)
{
	struct statcache_probe p;
	struct error err = ERROR_INIT;
	int hit;

	p.hint = sc->cursor;
	p.lookup_only = 1;
	hit = S_ISREG(st->st_mode) &&
	      !statcache_probe(sc, -1, relpath, relpath, st, &p, &err) && p.hit;
	error_release(&err);
	if (hit)
		*out = p.hash;
	return hit;
}

int statcache_hash_at(struct statcache *sc, int dirfd, const char *name,
		      const char *relpath, const struct stat *st,
		      struct hash128 *out, struct error *err)
{
	struct statcache_probe p;

	p.hint = sc->cursor;
	p.lookup_only = 0;
	if (statcache_probe(sc, dirfd, name, relpath, st, &p, err))
		return -1;
	statcache_commit(sc, relpath, &p);
	*out = p.hash;
	return 0;
}

int statcache_hash_file(struct statcache *sc, const char *workspace_dir,
			const char *relpath, const struct stat *st,
			struct hash128 *out, struct error *err)
{
	/* "." joined is the path itself: no copy per file */
	char *full = strcmp(workspace_dir, ".")
			     ? path_join(workspace_dir, relpath)
			     : (char *)relpath;
	struct stat own;
	int ret = -1;

	if (!st) {
		if (lstat(full, &own)) {
			error_set(err, EXIT_ENV, "cannot stat '%s': %s",
				  relpath, strerror(errno));
			goto out;
		}
		st = &own;
	}
	ret = statcache_hash_at(sc, AT_FDCWD, full, relpath, st, out, err);
out:
	if (full != relpath)
		free(full);
	return ret;
}

void statcache_note_walked(struct statcache *sc, const char *dir,
			   const char *glob)
{
	struct walked_glob *w;

	if (!glob) {
		strvec_push_nodup(&sc->walked,
				  xstrndup(dir, path_trimmed_len(dir)));
		sc->walked_sorted = 0;
		return;
	}
	ALLOC_GROW(sc->globs, sc->nglobs + 1, sc->globs_alloc);
	w = &sc->globs[sc->nglobs++];
	w->dir = xstrndup(dir, path_trimmed_len(dir));
	w->glob = xstrdup(glob);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether s was looked up this run: a regular file then, which nothing
 * can be inside. */
static int seen_file(struct statcache *sc, const char *s)
{
	size_t pos, i;

	if (sc->memo_valid && !strcmp(sc->memo.buf, s))
		return sc->memo_hit;
	i = find(sc, s, strlen(s), SIZE_MAX, &pos);
	if (i == SIZE_MAX)
		sc->memo_hit = 0;
	else if (i < sc->nloaded)
		sc->memo_hit = !!(sc->flag[i] & F_SEEN);
	else
		sc->memo_hit = (*ent_flag(sc, i - sc->nloaded) &
				(F_SEEN | F_DROPPED)) == F_SEEN;
	strbuf_reset(&sc->memo);
	strbuf_addstr(&sc->memo, s);
	sc->memo_valid = 1;
	return sc->memo_hit;
}

/* Whether nothing below s that was not looked up is there: s was walked
 * in full (or matches a walked glob), or s, a folder of the path asked
 * about (folder), is a file seen this run (a plain file input is not
 * noted as walked: 100,000 copies of its path). */
static int walked_here(struct statcache *sc, const char *s, int folder)
{
	if (bsearch(&s, sc->walked.v, sc->walked.nr, sizeof(char *), cmp_str) ||
	    (folder && *s && seen_file(sc, s)))
		return 1;
	for (size_t i = 0; i < sc->nglobs; i++)
		if (path_is_inside(s, sc->globs[i].dir) &&
		    glob_match(sc->globs[i].glob, s))
			return 1;
	return 0;
}

/* True when p (len bytes) or one of its folders was walked in full, or
 * matches a walked glob: a file there that was not looked up is gone. The
 * walked folders are sorted at the first call of a save (a run after one
 * change sees every file, and 100,000 walked inputs need no sort), so
 * this costs a binary search per folder level. */
static int in_walked(struct statcache *sc, const char *p, size_t len)
{
	char *s = xmemdupz(p, len);
	int hit = 0;

	if (!sc->walked_sorted) {
		qsort(sc->walked.v, sc->walked.nr, sizeof(char *), cmp_str);
		sc->walked_sorted = 1;
	}

	for (size_t n = len;; n--) {
		if (n == len || n == 0 || s[n] == '/') {
			char c = s[n];

			s[n] = '\0';
			hit = walked_here(sc, s, n < len);
			s[n] = c;
		}
		if (hit || n == 0)
			break;
	}
	free(s);
	return hit;
}

/* The file is written as it is made, 256 KB at a time, its checksum
 * taken on the way: at 100,000 files it is 16 MB, and a copy of it in
 * memory would be most of what a run holds at its end (a merge during
 * the run is part of its peak: 1 MB at a time added 1 MB). */
#define SAVE_CHUNK (1 << 18)

struct saver {
	struct strbuf sb;
	struct hasher *h;
	struct fs_replace out;
	size_t written; /* bytes flushed */
	/* the map's pages before given are given back (give_back) as the
	 * merge passes them: a merged file is mapped as it is read, and a
	 * merge reads all of it */
	size_t given, page;
	int give_back;
	/* a merge during the session: the new file's index, made as it is
	 * written (n records so far); NULL for statcache_save */
	uint32_t *rec, *tag;
	uint8_t *flag;
	size_t n;
};

/* Notes the record about to be added to sv->sb in the new file's index. */
static void note_written(struct saver *sv, const char *p, size_t len,
			 const uint32_t *tag, uint8_t flag)
{
	if (!sv->rec)
		return;
	sv->rec[sv->n] = (uint32_t)(sv->written + sv->sb.len);
	sv->tag[sv->n] = tag ? *tag : (uint32_t)path_hash(p, len);
	sv->flag[sv->n] = flag & F_SEEN;
	sv->n++;
}

static void put_entry(struct saver *sv, const struct entry *e, uint8_t flag)
{
	struct strbuf *sb = &sv->sb;

	note_written(sv, e->path, e->len, NULL, flag);
	put32(sb, e->len);
	put32(sb, e->mode);
	put64(sb, e->dev);
	put64(sb, e->ino);
	put64(sb, e->size);
	put64(sb, (uint64_t)e->mtime_ns);
	put64(sb, (uint64_t)e->ctime_ns);
	put64(sb, (uint64_t)e->hashed_ns);
	put_hash(sb, &e->hash);
	strbuf_add(sb, e->path, e->len);
}

static void put_record(const struct statcache *sc, size_t r, struct saver *sv)
{
	const char *p;
	size_t len;

	rec_path(sc, r, &p, &len);
	note_written(sv, p, len, sc->tag ? &sc->tag[r] : NULL, sc->flag[r]);
	strbuf_add(&sv->sb, rec_at(sc, r), REC_FIXED + len);
}

static int cmp_entry(const void *a, const void *b, void *arg)
{
	const struct entry *x = ent(arg, *(const uint32_t *)a);
	const struct entry *y = ent(arg, *(const uint32_t *)b);

	return cmp_path(x->path, x->len, y->path, y->len);
}

/* Whether the next thing to write is a record (or an entry); both lists
 * are in path order. */
static int record_first(const struct statcache *sc, size_t r,
			const struct entry *e)
{
	const char *p;
	size_t len;

	if (r == sc->nloaded)
		return 0;
	if (!e)
		return 1;
	rec_path(sc, r, &p, &len);
	return cmp_path(p, len, e->path, e->len) < 0;
}

/* Whether record r is written: not moved or gone, and not an unseen one
 * whose file is gone (marked dropped then). */
static int keep_record(struct statcache *sc, size_t r)
{
	const char *p;
	size_t len;

	if (sc->flag[r] & (F_MOVED | F_DROPPED))
		return 0;
	rec_path(sc, r, &p, &len);
	if (!(sc->flag[r] & F_SEEN) && in_walked(sc, p, len)) {
		sc->flag[r] |= F_DROPPED;
		return 0;
	}
	return 1;
}

static int keep_added(struct statcache *sc, size_t i)
{
	uint8_t *f = ent_flag(sc, i);

	if (!*f && in_walked(sc, ent(sc, i)->path, ent(sc, i)->len))
		*f |= F_DROPPED;
	return !(*f & F_DROPPED);
}

static void save_flush(struct saver *sv)
{
	hasher_add(sv->h, sv->sb.buf, sv->sb.len);
	fs_replace_write(&sv->out, sv->sb.buf, sv->sb.len);
	sv->written += sv->sb.len;
	strbuf_reset(&sv->sb);
}

/* The map's pages below byte off, SAVE_CHUNK at a time, given back: read
 * again from the page cache if a lookup needs them. */
static void give_back(const struct statcache *sc, struct saver *sv, size_t off)
{
	size_t end = off & ~(sv->page - 1);

	if (!sv->give_back || end < sv->given + SAVE_CHUNK)
		return;
	madvise((void *)(sc->map + sv->given), end - sv->given, MADV_DONTNEED);
	sv->given = end;
}

/* Both lists in path order, merged: the records kept counted (!write) or
 * written. Returns how many. */
static size_t merge_out(struct statcache *sc, const uint32_t *added,
			struct saver *sv, int write)
{
	size_t count = 0, r = 0, a = 0;

	sv->given = 0;
	while (r < sc->nloaded || a < sc->nr) {
		if (record_first(sc, r,
				 a < sc->nr ? ent(sc, added[a]) : NULL)) {
			if (!write)
				count += keep_record(sc, r);
			else if (!(sc->flag[r] & (F_MOVED | F_DROPPED)))
				put_record(sc, r, sv);
			give_back(sc, sv, sc->rec[r]);
			r++;
		} else {
			uint8_t f;

			if (!write)
				count += keep_added(sc, added[a]);
			else if (!((f = *ent_flag(sc, added[a])) & F_DROPPED))
				put_entry(sv, ent(sc, added[a]), f);
			a++;
		}
		if (write && sv->sb.len >= SAVE_CHUNK)
			save_flush(sv);
	}
	return count;
}

/* Records not moved or dropped, and entries not dropped. */
static size_t kept(const struct statcache *sc)
{
	size_t n = 0;

	for (size_t i = 0; i < sc->nloaded; i++)
		n += !(sc->flag[i] & (F_MOVED | F_DROPPED));
	for (size_t i = 0; i < sc->nr; i++)
		n += !(*ent_flag(sc, i) & F_DROPPED);
	return n;
}

/* Writes the file, the records kept and the entries added in path order,
 * and puts it in place. A save (final) drops what deleted files left; a
 * merge keeps every entry, makes the new file's index in sv (its arrays
 * the caller's), and gets the file open for reading in *fd. */
static int write_file(struct statcache *sc, struct saver *sv, int final,
		      int *fd, struct error *err)
{
	uint32_t *added;
	struct hash128 sum;
	size_t count;
	int ret = -1;

	if (fs_mkdir_parent(sc->path, 0777))
		return error_set(err, EXIT_ENV,
				 "cannot create the folder of '%s': %s",
				 sc->path, strerror(errno));
	/* a cache: its checksum rejects a torn copy, and any whole copy,
	 * older or newer, maps stat data to the right hashes, so it does
	 * not wait for the disk (16 MB fsynced at each run of 100,000
	 * stages) */
	if (fs_replace_open(&sv->out, sc->path, 0, err))
		return -1;
	sc->memo_valid = 0; /* what was seen may have changed since */
	sv->page = (size_t)sysconf(_SC_PAGESIZE);
	sv->give_back = sc->lazy || !final;
	added = xmalloc((sc->nr + 1) * sizeof(*added));
	for (size_t i = 0; i < sc->nr; i++)
		added[i] = (uint32_t)i;
	qsort_r(added, sc->nr, sizeof(*added), cmp_entry, sc);
	/* the drops first: the count */
	count = final ? merge_out(sc, added, sv, 0) : kept(sc);
	if (!final) {
		sv->rec = xmalloc((count + 1) * sizeof(*sv->rec));
		sv->tag = xmalloc((count + 1) * sizeof(*sv->tag));
		sv->flag = xmalloc(count + 1);
	}
	sv->h = hasher_new();
	strbuf_grow(&sv->sb, SAVE_CHUNK + REC_FIXED + 4096);
	strbuf_add(&sv->sb, MAGIC, MAGIC_LEN);
	put64(&sv->sb, count);
	merge_out(sc, added, sv, 1);
	save_flush(sv);
	hasher_final(sv->h, &sum);
	put_hash(&sv->sb, &sum);
	fs_replace_write(&sv->out, sv->sb.buf, sv->sb.len);
	sv->written += sv->sb.len;
	free(added);
	hasher_free(sv->h);
	strbuf_release(&sv->sb);
	/* the name is this process's (pid): what is renamed is what it
	 * maps, whatever replaces the cache file meanwhile */
	if (fd && (*fd = open(sv->out.tmp, O_RDONLY | O_CLOEXEC)) < 0) {
		error_set(err, EXIT_ENV, "cannot open '%s': %s", sv->out.tmp,
			  strerror(errno));
		fs_replace_abort(&sv->out);
	} else if (fd && sv->written > UINT32_MAX) {
		error_set(err, EXIT_ENV, "'%s' would be too big", sc->path);
		fs_replace_abort(&sv->out);
	} else {
		ret = fs_replace_commit(&sv->out, err);
	}
	if (ret && fd && *fd >= 0)
		close(*fd);
	return ret;
}

static void release_added(struct statcache *sc)
{
	for (size_t i = 0; i < sc->nr; i += ENTRY_BLOCK)
		free(sc->blk[i / ENTRY_BLOCK]);
	free(sc->blk);
	sc->blk = NULL;
	sc->nr = sc->blk_alloc = 0;
	arena_release(&sc->paths);
	free(sc->slots);
	sc->slots = NULL;
	sc->nslots = 0;
}

/* The entries added so far and the records, merged into a new file that
 * the cache then uses as if it had loaded it (see the top of the file).
 * On a failure the cache goes on as it was, and merges no more. */
static void merge_added(struct statcache *sc)
{
	struct saver sv = {STRBUF_INIT, NULL, {0},  0,	  0, 0,
			   0,		NULL, NULL, NULL, 0};
	struct error err = ERROR_INIT;
	void *m = MAP_FAILED;
	int fd = -1;

	/* nothing is looked up meanwhile: the slots go first (1 MB of the
	 * peak at 200,000 records) */
	free(sc->rslot);
	sc->rslot = NULL;
	if (!write_file(sc, &sv, 0, &fd, &err)) {
		m = mmap(NULL, sv.written, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			error_set(&err, EXIT_ENV, "cannot map '%s': %s",
				  sc->path, strerror(errno));
		close(fd);
	}
	if (m == MAP_FAILED) {
		log_verbose("stat cache: %s; kept in memory", err.msg.buf);
		sc->merge_min = SIZE_MAX;
		free(sv.rec);
		free(sv.tag);
		free(sv.flag);
		error_release(&err);
		if (sc->tag)
			index_tags(sc);
		return;
	}
	/* lookups touch a page here and there */
	madvise(m, sv.written, MADV_RANDOM);
	release_added(sc);
	unload(sc);
	sc->map = m;
	sc->map_len = sv.written;
	sc->rec = sv.rec;
	sc->tag = sv.tag;
	sc->flag = sv.flag;
	sc->nloaded = sv.n;
	index_tags(sc);
	sc->lazy = 1;
	sc->gen++;
	sc->cursor = SIZE_MAX;
	/* the file holds it all; but a save may still drop an unseen record
	 * of a deleted file */
	sc->dirty = 0;
	for (size_t i = 0; i < sc->nloaded && !sc->dirty; i++)
		sc->dirty = !(sc->flag[i] & F_SEEN);
}

int statcache_save(struct statcache *sc, struct error *err)
{
	struct saver sv = {STRBUF_INIT, NULL, {0},  0,	  0, 0,
			   0,		NULL, NULL, NULL, 0};

	if (!sc->dirty)
		return 0;
	if (write_file(sc, &sv, 1, NULL, err))
		return -1;
	sc->dirty = 0;
	return 0;
}

void statcache_get_stats(const struct statcache *sc,
			 struct statcache_stats *out)
{
	*out = sc->stats;
	out->entries = kept(sc);
}

void statcache_set_clock(struct statcache *sc, int64_t (*now_ns)(void))
{
	sc->now_ns = now_ns ? now_ns : real_now_ns;
}

void statcache_set_merge_min(struct statcache *sc, size_t n)
{
	sc->merge_min = n ? n : MERGE_MIN;
}

void statcache_free(struct statcache *sc)
{
	if (!sc)
		return;
	release_added(sc);
	unload(sc);
	for (size_t i = 0; i < sc->nglobs; i++) {
		free(sc->globs[i].dir);
		free(sc->globs[i].glob);
	}
	free(sc->globs);
	strvec_clear(&sc->walked);
	strbuf_release(&sc->memo);
	free(sc->path);
	free(sc);
}
