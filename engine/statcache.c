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
 * build log). Loaded paths point into the file's buffer: 100,000 entries
 * load with one read, one checksum and no allocation per entry.
 *
 * Lookups. The loaded entries stay in path order, which is the order in
 * which scans ask for files (engine/scan.c walks folders sorted), so a
 * lookup first tries the entry after the previous one: a no-op scan finds
 * every file there, without hashing a path or building any table. Other
 * loaded paths are found by binary search; paths added in this session go
 * into an open-addressing hash table. Saving merges both in path order.
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
#include <time.h>
#include <unistd.h>

static const char MAGIC[] = "pipe-statcache 1\n";
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define FAMILY_LEN (sizeof("pipe-statcache ") - 1)
#define REC_FIXED 72
#define SUM_LEN 16

struct entry {
	const char *path; /* into sc->file, or owned when e->owned */
	uint32_t len;
	uint8_t owned, seen, dropped;
	uint64_t phash;
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns, hashed_ns;
	uint32_t mode;
	struct hash128 hash;
};

struct walked_glob {
	char *dir, *glob;
};

struct statcache {
	char *path;
	struct strbuf file; /* the loaded file; loaded paths point here */
	struct entry *e;    /* loaded (sorted by path), then added */
	size_t nr, alloc, nsorted;
	uint32_t *slots;      /* added entries: index + 1 into e; 0: empty */
	size_t nslots;	      /* 0, or a power of two >= twice the added */
	size_t cursor;	      /* where the next lookup probably lands */
	struct strvec walked; /* folders walked in full, sorted at save */
	struct walked_glob *globs;
	size_t nglobs, globs_alloc;
	int dirty;
	uid_t euid;
	int64_t (*now_ns)(void);
	struct statcache_stats stats;
};

static int64_t real_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

static int is_path(const struct entry *e, const char *p, size_t len)
{
	return e->len == len && !memcmp(e->path, p, len);
}

/* Loaded entries are sorted: binary search. */
static size_t find_sorted(const struct statcache *sc, const char *p, size_t len)
{
	size_t lo = 0, hi = sc->nsorted;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct entry *e = &sc->e[mid];
		int c = cmp_path(e->path, e->len, p, len);

		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* Entries added in this session: open addressing on the path hash. */
static uint32_t *find_slot(const struct statcache *sc, const char *p,
			   size_t len, uint64_t ph)
{
	size_t mask = sc->nslots - 1, i = (size_t)ph & mask;

	for (;; i = (i + 1) & mask) {
		const struct entry *e;

		if (!sc->slots[i])
			return &sc->slots[i];
		e = &sc->e[sc->slots[i] - 1];
		if (e->phash == ph && is_path(e, p, len))
			return &sc->slots[i];
	}
}

static void index_added(struct statcache *sc, size_t idx)
{
	size_t added = sc->nr - sc->nsorted, n = 1024;
	struct entry *e = &sc->e[idx];

	if (2 * added <= sc->nslots) {
		*find_slot(sc, e->path, e->len, e->phash) = (uint32_t)idx + 1;
		return;
	}
	while (n < 2 * added)
		n *= 2;
	free(sc->slots);
	sc->slots = xcalloc(n, sizeof(*sc->slots));
	sc->nslots = n;
	for (size_t i = sc->nsorted; i < sc->nr; i++) {
		e = &sc->e[i];
		*find_slot(sc, e->path, e->len, e->phash) = (uint32_t)i + 1;
	}
}

/* The index of path's entry, or SIZE_MAX. hint is where it probably is:
 * scans look files up in path order, the order of the loaded entries, so
 * a no-op scan finds each entry next to the one before, never hashing a
 * path. Changes nothing, so it is safe on several threads. */
static size_t find(const struct statcache *sc, const char *p, size_t len,
		   size_t hint)
{
	size_t i;

	if (hint < sc->nr && is_path(&sc->e[hint], p, len))
		return hint;
	i = find_sorted(sc, p, len);
	if (i != SIZE_MAX || !sc->nslots)
		return i;
	i = *find_slot(sc, p, len, path_hash(p, len));
	return i ? i - 1 : SIZE_MAX;
}

/* The entry for path; a blank one is added when there is none. */
static struct entry *find_or_add(struct statcache *sc, const char *p,
				 size_t len)
{
	size_t i = find(sc, p, len, sc->cursor);
	struct entry *e;

	if (i == SIZE_MAX) {
		ALLOC_GROW(sc->e, sc->nr + 1, sc->alloc);
		i = sc->nr++;
		e = &sc->e[i];
		memset(e, 0, sizeof(*e));
		e->path = xmemdupz(p, len);
		e->len = (uint32_t)len;
		e->owned = 1;
		e->phash = path_hash(p, len);
		index_added(sc, i);
	}
	sc->cursor = i + 1;
	return &sc->e[i];
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

/* Parses one record at *pp (before end); returns NULL when it is bad. */
static const char *parse_record(struct statcache *sc, const unsigned char **pp,
				const unsigned char *end)
{
	const unsigned char *p = *pp;
	struct entry *e, *prev;
	uint32_t len;

	if ((size_t)(end - p) < REC_FIXED)
		return "truncated record";
	len = get32(p);
	if (!len || (size_t)(end - p - REC_FIXED) < len)
		return "bad path length";
	if (memchr(p + REC_FIXED, '\0', len))
		return "NUL in a path";
	ALLOC_GROW(sc->e, sc->nr + 1, sc->alloc);
	e = &sc->e[sc->nr++];
	memset(e, 0, sizeof(*e));
	e->path = (const char *)p + REC_FIXED;
	e->len = len;
	prev = sc->nr > 1 ? e - 1 : NULL;
	if (prev && cmp_path(prev->path, prev->len, e->path, e->len) >= 0)
		return "paths out of order";
	e->mode = get32(p + 4);
	e->dev = get64(p + 8);
	e->ino = get64(p + 16);
	e->size = get64(p + 24);
	e->mtime_ns = (int64_t)get64(p + 32);
	e->ctime_ns = (int64_t)get64(p + 40);
	e->hashed_ns = (int64_t)get64(p + 48);
	e->hash.high = get64(p + 56);
	e->hash.low = get64(p + 64);
	*pp = p + REC_FIXED + len;
	return NULL;
}

/* Checks and loads sc->file; returns why it is unusable, or NULL. */
static const char *parse(struct statcache *sc)
{
	const unsigned char *p = (const unsigned char *)sc->file.buf;
	const unsigned char *end = p + sc->file.len;
	struct hash128 sum;
	uint64_t count;

	if (sc->file.len < MAGIC_LEN || memcmp(p, MAGIC, MAGIC_LEN))
		return sc->file.len >= FAMILY_LEN &&
				       !memcmp(p, MAGIC, FAMILY_LEN)
			       ? "unknown version"
			       : "not a stat cache (or truncated)";
	if (sc->file.len < MAGIC_LEN + 8 + SUM_LEN)
		return "truncated";
	end -= SUM_LEN;
	hash_buf(p, (size_t)(end - p), &sum);
	if (get64(end) != sum.high || get64(end + 8) != sum.low)
		return "checksum mismatch (truncated or corrupt)";
	count = get64(p + MAGIC_LEN);
	if (count > (uint64_t)(end - p) / REC_FIXED)
		return "bad entry count";
	sc->e = xmalloc((size_t)count * sizeof(*sc->e) + 1);
	sc->alloc = (size_t)count;
	p += MAGIC_LEN + 8;
	for (uint64_t i = 0; i < count; i++) {
		const char *why = parse_record(sc, &p, end);

		if (why)
			return why;
	}
	if (p != end)
		return "trailing bytes";
	sc->nsorted = sc->nr;
	return NULL;
}

static void clear_entries(struct statcache *sc)
{
	for (size_t i = 0; i < sc->nr; i++)
		if (sc->e[i].owned)
			free((char *)sc->e[i].path);
	sc->nr = sc->nsorted = sc->cursor = 0;
	free(sc->slots);
	sc->slots = NULL;
	sc->nslots = 0;
}

int statcache_open(struct statcache **out, const char *cache_path,
		   struct error *err)
{
	struct statcache *sc = xcalloc(1, sizeof(*sc));
	const char *why;

	sc->path = xstrdup(cache_path);
	strbuf_init(&sc->file, 0);
	strvec_init(&sc->walked);
	sc->now_ns = real_now_ns;
	sc->euid = geteuid();
	*out = sc;
	if (strbuf_read_file(&sc->file, cache_path, 0)) {
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
		clear_entries(sc);
		strbuf_release(&sc->file);
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
	e->dropped = 0;
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
	size_t i = find(sc, relpath, strlen(relpath), p->hint);
	const struct entry *e = i == SIZE_MAX ? NULL : &sc->e[i];

	p->hit = 0;
	p->entry = i;
	if (e && !e->dropped && same_stat(e, st) && !is_racy(e)) {
		p->hit = 1;
		p->hash = e->hash;
		return 0;
	}
	if (!S_ISREG(st->st_mode))
		return error_set(err, EXIT_USAGE, "'%s' is not a regular file",
				 relpath);
	return read_file(sc, dirfd, name, relpath, st, p, err);
}

void statcache_commit(struct statcache *sc, const char *relpath,
		      const struct statcache_probe *p)
{
	struct entry *e;

	if (p->hit) {
		sc->e[p->entry].seen = 1;
		sc->cursor = p->entry + 1;
		sc->stats.hits++;
		return;
	}
	e = find_or_add(sc, relpath, strlen(relpath));
	e->seen = 1;
	record(e, &p->st, p->hashed_ns, &p->hash);
	sc->stats.misses++;
	sc->stats.bytes_hashed += p->bytes;
	sc->dirty = 1;
}

int statcache_hash_at(struct statcache *sc, int dirfd, const char *name,
		      const char *relpath, const struct stat *st,
		      struct hash128 *out, struct error *err)
{
	struct statcache_probe p;

	p.hint = sc->cursor;
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
	char *full = path_join(workspace_dir, relpath);
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

static int walked_here(const struct statcache *sc, const char *s)
{
	if (bsearch(&s, sc->walked.v, sc->walked.nr, sizeof(char *), cmp_str))
		return 1;
	for (size_t i = 0; i < sc->nglobs; i++)
		if (path_is_inside(s, sc->globs[i].dir) &&
		    glob_match(sc->globs[i].glob, s))
			return 1;
	return 0;
}

/* True when p (len bytes) or one of its folders was walked in full, or
 * matches a walked glob: a file there that was not looked up is gone. The
 * walked folders are sorted (serialize), so this costs a binary search per
 * folder level. */
static int in_walked(const struct statcache *sc, const char *p, size_t len)
{
	char *s = xmemdupz(p, len);
	int hit = 0;

	for (size_t n = len;; n--) {
		if (n == len || n == 0 || s[n] == '/') {
			char c = s[n];

			s[n] = '\0';
			hit = walked_here(sc, s);
			s[n] = c;
		}
		if (hit || n == 0)
			break;
	}
	free(s);
	return hit;
}

static void put_entry(struct strbuf *sb, const struct entry *e)
{
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

static int cmp_index(const void *a, const void *b, void *arg)
{
	const struct entry *e = arg, *x = &e[*(const size_t *)a],
			   *y = &e[*(const size_t *)b];

	return cmp_path(x->path, x->len, y->path, y->len);
}

/* Every entry's index, in path order: the loaded ones are sorted already,
 * the added ones are sorted and merged in. */
static size_t *path_order(struct statcache *sc)
{
	size_t nadd = sc->nr - sc->nsorted, *add, *out, a = 0, b = 0, k = 0;

	add = xmalloc((nadd + 1) * sizeof(*add));
	out = xmalloc((sc->nr + 1) * sizeof(*out));
	for (size_t i = 0; i < nadd; i++)
		add[i] = sc->nsorted + i;
	qsort_r(add, nadd, sizeof(*add), cmp_index, sc->e);
	while (a < sc->nsorted || b < nadd) {
		if (b == nadd ||
		    (a < sc->nsorted && cmp_index(&a, &add[b], sc->e) < 0))
			out[k++] = a++;
		else
			out[k++] = add[b++];
	}
	free(add);
	return out;
}

static void serialize(struct statcache *sc, struct strbuf *sb)
{
	size_t count_at, count = 0, *order = path_order(sc);
	int prune = sc->walked.nr || sc->nglobs;
	struct hash128 sum;

	qsort(sc->walked.v, sc->walked.nr, sizeof(char *), cmp_str);
	strbuf_add(sb, MAGIC, MAGIC_LEN);
	count_at = sb->len;
	put64(sb, 0);
	for (size_t i = 0; i < sc->nr; i++) {
		struct entry *e = &sc->e[order[i]];

		if (prune && !e->seen && !e->dropped &&
		    in_walked(sc, e->path, e->len))
			e->dropped = 1;
		if (e->dropped)
			continue;
		put_entry(sb, e);
		count++;
	}
	for (int i = 0; i < 8; i++)
		sb->buf[count_at + i] = (char)(count >> (8 * i));
	hash_buf(sb->buf, sb->len, &sum);
	put_hash(sb, &sum);
	free(order);
}

int statcache_save(struct statcache *sc, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	int ret;

	if (!sc->dirty)
		return 0;
	serialize(sc, &sb);
	if (fs_mkdir_parent(sc->path, 0777)) {
		ret = error_set(err, EXIT_ENV,
				"cannot create the folder of '%s': %s",
				sc->path, strerror(errno));
		goto out;
	}
	ret = fs_write_atomic(sc->path, sb.buf, sb.len, err);
	if (!ret)
		sc->dirty = 0;
out:
	strbuf_release(&sb);
	return ret;
}

void statcache_get_stats(const struct statcache *sc,
			 struct statcache_stats *out)
{
	*out = sc->stats;
	out->entries = 0;
	for (size_t i = 0; i < sc->nr; i++)
		out->entries += !sc->e[i].dropped;
}

void statcache_set_clock(struct statcache *sc, int64_t (*now_ns)(void))
{
	sc->now_ns = now_ns ? now_ns : real_now_ns;
}

void statcache_free(struct statcache *sc)
{
	if (!sc)
		return;
	clear_entries(sc);
	for (size_t i = 0; i < sc->nglobs; i++) {
		free(sc->globs[i].dir);
		free(sc->globs[i].glob);
	}
	free(sc->globs);
	strvec_clear(&sc->walked);
	free(sc->slots);
	free(sc->e);
	strbuf_release(&sc->file);
	free(sc->path);
	free(sc);
}
