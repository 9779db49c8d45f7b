/* Walking the workspace for scan_path and scan_glob. Each folder is read
 * whole, sorted (a folder as "name/": git's tree order) and walked depth
 * first, so files come out in byte order of their paths with no global
 * sort. Files are stat'ed and hashed in batches on a few threads, with
 * fstatat and openat relative to their open folder (no path resolution per
 * file); the results are applied in order on the calling thread. Symlinks
 * are never followed. */
#include "engine/scan.h"
#include "util/glob.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH 4096   /* files queued before their results are applied */
#define CHUNK 256    /* files a thread takes at once */
#define MAX_HELD 128 /* read folders kept open for a pending batch */
/* Threads, at most: for stat calls and cache lookups, and once files are
 * being read (more reads in flight when they come from disk). */
#define CPU_THREADS 8
#define IO_THREADS 16

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* A file or symlink waiting in the batch. */
struct item {
	char *path;	 /* in the list's arena */
	size_t name_off; /* the file name within path */
	int dirfd;
	int gone; /* deleted since the folder was read */
	struct stat st;
	struct statcache_probe probe;
};

/* One name read from a folder; its path lies in the folder's buffer. */
struct dent {
	uint32_t path_off; /* of "base/name" in the buffer */
	uint32_t name_off; /* of the name within that path */
	uint32_t name_len;
	unsigned char type; /* DT_DIR, DT_REG, DT_LNK, ... */
	uint64_t key;	    /* sort_key() */
};

struct walk {
	struct statcache *sc; /* NULL: hash every file */
	const char *ws;
	struct scan_list *out;	/* scan_path: files found */
	struct strvec *matches; /* scan_glob: matches, instead of files */
	const char *glob;	/* NULL: take everything below the start */
	int dirs_only;		/* the glob ends in '/' */
	int max_depth;		/* components a match can have; 0: any */
	int nthreads;
	int ahead;	    /* scan_ahead: cache hits only, sc unchanged */
	size_t hits;	    /* ahead: cache hits */
	struct pool *pool;  /* NULL until the scan needs threads */
	struct item *items; /* room for BATCH */
	size_t nitems;
	size_t reads;  /* files read so far (not answered by the cache) */
	size_t failed; /* the first item at fault, or SIZE_MAX */
	struct error batch_err; /* its error */
	DIR **held;
	size_t nheld, held_alloc;
	struct strbuf link;
	char *ws_abs; /* realpath of ws, for absolute link targets */
	struct error *err;
};

static int skip_name(const char *name, int at_top)
{
	if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
		return 1;
	return at_top && (!strcmp(name, ".git") || !strcmp(name, ".pipe"));
}

/* An intermediate component could not be opened as a folder. */
static int through_failed(struct walk *w, int fd, const char *comp,
			  const char *path, size_t upto, int *found)
{
	struct stat st;
	int e = errno;

	if (e == ENOENT || ((e == ENOTDIR || e == ELOOP) &&
			    !fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) &&
			    !S_ISLNK(st.st_mode))) {
		*found = 0;
		return 0;
	}
	if (e == ENOTDIR || e == ELOOP)
		return error_set(w->err, EXIT_USAGE,
				 "path '%s' goes through symlink '%.*s'", path,
				 (int)upto, path);
	return error_set(w->err, EXIT_ENV, "cannot open folder '%.*s': %s",
			 (int)upto, path, strerror(e));
}

/* Opens the folder holding the last component of path (no trailing '/'),
 * walking the components without following symlinks. *leaf points into
 * path; it is "" for the workspace itself. *fd is -1 when not found. */
static int open_parent(struct walk *w, const char *path, int *fd,
		       const char **leaf, int *found)
{
	const char *p = path, *slash;
	int dfd = open(w->ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*fd = -1;
	*found = 1;
	if (dfd < 0)
		return error_set(w->err, EXIT_ENV,
				 "cannot open workspace '%s': %s", w->ws,
				 strerror(errno));
	while ((slash = strchr(p, '/'))) {
		char *comp = xstrndup(p, (size_t)(slash - p));
		int sub = openat(dfd, comp,
				 O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int ret = 0;

		if (sub < 0)
			ret = through_failed(w, dfd, comp, path,
					     (size_t)(slash - path), found);
		free(comp);
		close(dfd);
		if (sub < 0)
			return ret;
		dfd = sub;
		p = slash + 1;
	}
	*fd = dfd;
	*leaf = p;
	return 0;
}

static int abs_link_inside(struct walk *w, const char *target)
{
	struct strbuf norm = STRBUF_INIT;
	const char *why;
	size_t n;
	int ok;

	if (!w->ws_abs && !(w->ws_abs = realpath(w->ws, NULL)))
		return 0;
	n = strlen(w->ws_abs);
	if (n == 1)
		n = 0; /* the workspace is "/" */
	if (strncmp(target, w->ws_abs, n) || (target[n] && target[n] != '/'))
		return 0;
	target += n;
	while (*target == '/')
		target++;
	ok = !*target || !path_normalize(target, &norm, &why);
	strbuf_release(&norm);
	return ok;
}

/* True when target, read from the link at path, stays inside. */
static int link_inside(struct walk *w, const char *path, const char *target)
{
	struct strbuf sb = STRBUF_INIT, norm = STRBUF_INIT;
	const char *slash = strrchr(path, '/'), *why;
	int ok;

	if (target[0] == '/')
		return abs_link_inside(w, target);
	if (slash)
		strbuf_add(&sb, path, (size_t)(slash - path) + 1);
	strbuf_addstr(&sb, target);
	ok = !path_normalize(sb.buf, &norm, &why);
	strbuf_release(&sb);
	strbuf_release(&norm);
	return ok;
}

static int hash_link(struct walk *w, const struct item *it, struct hash128 *out)
{
	ssize_t n;

	for (size_t size = 256;; size *= 2) {
		strbuf_reset(&w->link);
		strbuf_grow(&w->link, size);
		n = readlinkat(it->dirfd, it->path + it->name_off, w->link.buf,
			       size);
		if (n < 0)
			return error_set(w->err, EXIT_ENV,
					 "cannot read symlink '%s': %s",
					 it->path, strerror(errno));
		if ((size_t)n < size)
			break;
	}
	strbuf_setlen(&w->link, (size_t)n);
	if (!link_inside(w, it->path, w->link.buf))
		return error_set(w->err, EXIT_USAGE,
				 "symlink '%s' points outside the workspace",
				 it->path);
	hash_buf(w->link.buf, w->link.len, out);
	return 0;
}

/* The batch. Files are stat'ed and hashed by a few threads while the
 * calling thread goes on reading folders: it hands them out in chunks as
 * they are queued and, at a flush, helps finish them, then applies the
 * results in order. Workers only read the stat cache and write their own
 * items; the mutex orders everything else. */

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t more; /* chunks were queued, or a walk came */
	pthread_cond_t idle; /* the last chunk in progress finished */
	struct walk *w;	     /* the walk being served, or NULL */
	size_t queued;	     /* items [0, queued) are handed out */
	size_t next;	     /* the first item not taken yet */
	size_t busy;	     /* chunks in progress */
	int nthreads;
	pthread_t th[IO_THREADS];
};

/* One pool for the whole process: its threads start when the first big
 * scan needs them and serve every later walk (a status over 100 folder
 * inputs would otherwise start and join 100 threads). They wait for work
 * until the process exits. */
static struct pool shared_pool = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.more = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
};

static int hash_uncached(struct item *it, struct error *err)
{
	int fd = openat(it->dirfd, it->path + it->name_off,
			O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	int ret;

	if (fd < 0)
		return error_set(err, EXIT_ENV, "cannot open '%s': %s",
				 it->path, strerror(errno));
	ret = hash_fd(fd, it->path, &it->probe.hash, NULL, err);
	close(fd);
	return ret;
}

/* Stats the item and hashes a regular file (through the cache, trying the
 * entry after the previous one first: *hint). */
static int prepare_item(struct walk *w, struct item *it, size_t *hint,
			struct error *err)
{
	const char *name = it->path + it->name_off;

	if (fstatat(it->dirfd, name, &it->st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT) {
			it->gone = 1;
			return 0;
		}
		return error_set(err, EXIT_ENV, "cannot stat '%s': %s",
				 it->path, strerror(errno));
	}
	if (!S_ISREG(it->st.st_mode))
		return 0; /* applied on the calling thread */
	if (!w->sc)
		return hash_uncached(it, err);
	it->probe.hint = *hint;
	it->probe.lookup_only = w->ahead;
	if (statcache_probe(w->sc, it->dirfd, name, it->path, &it->st,
			    &it->probe, err))
		return -1;
	if (w->ahead && !it->probe.hit)
		return error_set(err, EXIT_FAILED, "'%s' needs reading",
				 it->path); /* scan_path will */
	*hint = it->probe.next;
	return 0;
}

static int was_read(const struct walk *w, const struct item *it)
{
	return !it->gone && S_ISREG(it->st.st_mode) &&
	       (!w->sc || !it->probe.hit);
}

/* Prepares items [lo, hi); on a failure, keeps the earliest one's error. */
static void run_chunk(struct walk *w, size_t lo, size_t hi)
{
	struct error err = ERROR_INIT;
	size_t hint = SIZE_MAX, i, reads = 0;

	for (i = lo; i < hi; i++) {
		if (prepare_item(w, &w->items[i], &hint, &err))
			break;
		reads += was_read(w, &w->items[i]);
	}
	if (w->pool)
		pthread_mutex_lock(&w->pool->mu);
	w->reads += reads;
	if (i < hi) {
		if (i < w->failed) {
			w->failed = i;
			error_set(&w->batch_err, err.exit_code, "%s",
				  err.msg.buf);
		}
	}
	if (w->pool)
		pthread_mutex_unlock(&w->pool->mu);
	error_release(&err);
}

/* Takes the next chunk, with the mutex held; 0 when there is none. */
static int take(struct pool *p, size_t *lo, size_t *hi)
{
	if (p->next >= p->queued)
		return 0;
	*lo = p->next;
	*hi = p->next + CHUNK < p->queued ? p->next + CHUNK : p->queued;
	p->next = *hi;
	p->busy++;
	return 1;
}

/* Runs chunks until none is queued; with the mutex held. */
static void drain(struct walk *w)
{
	struct pool *p = w->pool;
	size_t lo, hi;

	while (take(p, &lo, &hi)) {
		pthread_mutex_unlock(&p->mu);
		run_chunk(w, lo, hi);
		pthread_mutex_lock(&p->mu);
		if (!--p->busy && p->next >= p->queued)
			pthread_cond_signal(&p->idle);
	}
}

static void *worker(void *arg)
{
	struct pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->w)
			drain(p->w);
		pthread_cond_wait(&p->more, &p->mu);
	}
	return NULL;
}

/* Serve w with the shared pool, unless another walk has it (then w runs on
 * its own thread). */
static void start_pool(struct walk *w)
{
	struct pool *p = &shared_pool;

	pthread_mutex_lock(&p->mu);
	if (!p->w) {
		p->w = w;
		p->queued = p->next = 0;
		w->pool = p;
	}
	pthread_mutex_unlock(&p->mu);
}

/* Adds workers up to n (the calling thread is one more); mutex held. */
static void grow_pool(struct pool *p, int n)
{
	pthread_attr_t attr;

	if (p->nthreads >= n || pthread_attr_init(&attr))
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (p->nthreads < n) {
		if (pthread_create(&p->th[p->nthreads], &attr, worker, p))
			break;
		p->nthreads++;
	}
	pthread_attr_destroy(&attr);
}

/* Hand the pool back once no chunk of w is in progress. */
static void stop_pool(struct walk *w)
{
	struct pool *p = w->pool;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	while (p->busy)
		pthread_cond_wait(&p->idle, &p->mu);
	p->queued = p->next = 0;
	p->w = NULL;
	pthread_mutex_unlock(&p->mu);
	w->pool = NULL;
}

/* Hands the items queued so far to the workers. They start when a scan
 * turns out big enough to need them: one per CPU for stat calls and cache
 * lookups (more would only contend), IO_THREADS once files are being read,
 * which is I/O-bound when they come from disk. */
static void publish(struct walk *w)
{
	int io;

	if (!w->pool && w->nthreads == 1 && w->reads < CHUNK)
		return;
	if (!w->pool)
		start_pool(w);
	if (!w->pool)
		return;
	pthread_mutex_lock(&w->pool->mu);
	io = w->reads >= CHUNK;
	grow_pool(w->pool, io ? IO_THREADS - 1 : w->nthreads - 1);
	w->pool->queued = w->nitems;
	pthread_cond_broadcast(&w->pool->more);
	pthread_mutex_unlock(&w->pool->mu);
}

/* Prepares every queued item, with the workers' help. */
static int prepare_batch(struct walk *w)
{
	struct pool *p = w->pool;

	if (!p) {
		run_chunk(w, 0, w->nitems);
	} else {
		pthread_mutex_lock(&p->mu);
		p->queued = w->nitems;
		pthread_cond_broadcast(&p->more);
		drain(w);
		while (p->busy)
			pthread_cond_wait(&p->idle, &p->mu);
		p->queued = p->next = 0;
		pthread_mutex_unlock(&p->mu);
	}
	if (w->failed == SIZE_MAX)
		return 0;
	error_set(w->err, w->batch_err.exit_code, "%s", w->batch_err.msg.buf);
	w->failed = SIZE_MAX;
	return -1;
}

/* Moves the prepared item into the list. */
static int apply_item(struct walk *w, struct item *it)
{
	struct scan_entry e = {it->path, it->probe.hash, 0,
			       (unsigned long long)it->st.st_size};
	mode_t mode = it->st.st_mode;

	if (S_ISREG(mode)) {
		e.type = mode & S_IXUSR ? 'x' : 'f';
		if (w->ahead) {
			statcache_mark_seen(w->sc, &it->probe);
			w->hits++;
		} else if (w->sc) {
			statcache_commit(w->sc, it->path, &it->probe);
		}
	} else if (S_ISLNK(mode)) {
		e.type = 'l';
		if (hash_link(w, it, &e.hash))
			return -1;
	} else {
		return error_set(
			w->err, EXIT_USAGE,
			S_ISDIR(mode) ? "'%s' changed while being scanned"
				      : "'%s' is not a file, folder or symlink",
			it->path);
	}
	ALLOC_GROW(w->out->v, w->out->nr + 1, w->out->alloc);
	w->out->v[w->out->nr++] = e;
	it->path = NULL;
	return 0;
}

/* Stats and hashes the pending files, adds them to the list in order, and
 * closes the folders that were waiting for them. */
static int flush(struct walk *w)
{
	int ret = w->nitems ? prepare_batch(w) : 0;

	for (size_t i = 0; i < w->nitems; i++) {
		struct item *it = &w->items[i];

		if (!ret && !it->gone)
			ret = apply_item(w, it);
	}
	w->nitems = 0;
	for (size_t i = 0; i < w->nheld; i++)
		closedir(w->held[i]);
	w->nheld = 0;
	return ret;
}

/* Strings of a scan_list live in chunks it owns. */
struct scan_chunk {
	struct scan_chunk *next;
	size_t used, size;
	char data[];
};

static char *list_strdup(struct scan_list *l, const char *s, size_t len)
{
	struct scan_chunk *c = l->chunks;
	char *p;

	if (!c || c->size - c->used < len + 1) {
		size_t size = len + 1 > 65536 ? len + 1 : 65536;

		c = xmalloc(sizeof(*c) + size);
		c->next = l->chunks;
		c->used = 0;
		c->size = size;
		l->chunks = c;
	}
	p = c->data + c->used;
	memcpy(p, s, len);
	p[len] = '\0';
	c->used += len + 1;
	return p;
}

/* Queues the file at path (name at name_off) in folder dfd. */
static int add_item(struct walk *w, int dfd, const char *path, size_t len,
		    size_t name_off)
{
	struct item *it;

	if (!w->items) /* fixed: workers hold pointers into it */
		w->items = xmalloc(BATCH * sizeof(*w->items));
	it = &w->items[w->nitems++];
	it->path = list_strdup(w->out, path, len);
	it->name_off = name_off;
	it->dirfd = dfd;
	it->gone = 0;
	if (w->nitems >= BATCH)
		return flush(w);
	if (w->nitems % CHUNK == 0)
		publish(w);
	return 0;
}

/* Reading folders. */

static unsigned char mode_type(mode_t m)
{
	return S_ISDIR(m)   ? DT_DIR
	       : S_ISREG(m) ? DT_REG
	       : S_ISLNK(m) ? DT_LNK
			    : DT_UNKNOWN;
}

/* The first 8 bytes of the name with '/' appended to a folder's, padded
 * with NULs, as a big-endian number: most names differ there, so most
 * comparisons are one integer comparison. */
static uint64_t sort_key(const char *name, uint32_t len, int is_dir)
{
	uint64_t k = 0;

	for (uint32_t i = 0; i < 8; i++) {
		unsigned c = i < len		  ? (unsigned char)name[i]
			     : i == len && is_dir ? '/'
						  : 0;

		k = k << 8 | c;
	}
	return k;
}

/* readdir gave no type (some filesystems): ask. */
static int dent_type(struct walk *w, DIR *d, const char *path, const char *name,
		     unsigned char *type)
{
	struct stat st;

	if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW))
		return error_set(w->err, EXIT_ENV, "cannot stat '%s': %s", path,
				 strerror(errno));
	*type = mode_type(st.st_mode);
	return 0;
}

/* Reads the names of folder d (named base) into *v, their paths into buf
 * ("base/name", NUL-terminated). */
static int list_dir(struct walk *w, DIR *d, const char *base, int at_top,
		    struct strbuf *buf, struct dent **v, size_t *n,
		    size_t *alloc)
{
	size_t blen = strlen(base);
	struct dirent *de;

	while ((errno = 0, de = readdir(d))) {
		size_t nlen = strlen(de->d_name);
		struct dent *t;
		const char *path;

		if (skip_name(de->d_name, at_top))
			continue;
		ALLOC_GROW(*v, *n + 1, *alloc);
		t = &(*v)[(*n)++];
		t->path_off = (uint32_t)buf->len;
		t->name_off = (uint32_t)(blen ? blen + 1 : 0);
		t->name_len = (uint32_t)nlen;
		if (blen) {
			strbuf_add(buf, base, blen);
			strbuf_addch(buf, '/');
		}
		strbuf_add(buf, de->d_name, nlen + 1);
		path = buf->buf + t->path_off;
		t->type = de->d_type;
		if (t->type == DT_UNKNOWN &&
		    dent_type(w, d, path, de->d_name, &t->type))
			return -1;
		t->key = sort_key(de->d_name, t->name_len, t->type == DT_DIR);
	}
	if (errno)
		return error_set(w->err, EXIT_ENV,
				 "cannot read folder '%s': %s", base,
				 strerror(errno));
	return 0;
}

/* Byte order of names, a folder's name taken with '/' appended. */
static int cmp_dent(const char *buf, const struct dent *a, const struct dent *b)
{
	const char *x = buf + a->path_off + a->name_off;
	const char *y = buf + b->path_off + b->name_off;
	uint32_t n;
	int c, cx, cy;

	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	n = a->name_len < b->name_len ? a->name_len : b->name_len;
	c = memcmp(x, y, n);
	if (c || a->name_len == b->name_len)
		return c;
	cx = n < a->name_len	 ? (unsigned char)x[n]
	     : a->type == DT_DIR ? '/'
				 : 0;
	cy = n < b->name_len	 ? (unsigned char)y[n]
	     : b->type == DT_DIR ? '/'
				 : 0;
	return cx - cy;
}

/* A stable merge sort: qsort's call through a pointer per comparison
 * cost more than the comparisons themselves. */
static void sort_dents(const char *buf, struct dent *v, size_t n)
{
	struct dent *tmp, *src = v, *dst, *t;

	if (n < 2)
		return;
	tmp = xmalloc(n * sizeof(*v));
	dst = tmp;
	for (size_t width = 1; width < n; width *= 2) {
		for (size_t i = 0; i < n; i += 2 * width) {
			size_t mid = i + width < n ? i + width : n;
			size_t end = i + 2 * width < n ? i + 2 * width : n;
			size_t a = i, b = mid, k = i;

			while (a < mid && b < end)
				dst[k++] = cmp_dent(buf, &src[b], &src[a]) < 0
						   ? src[b++]
						   : src[a++];
			while (a < mid)
				dst[k++] = src[a++];
			while (b < end)
				dst[k++] = src[b++];
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != v)
		memcpy(v, src, n * sizeof(*v));
	free(tmp);
}

static int walk_dir(struct walk *w, int fd, const char *base, int depth,
		    int all);

/* Walks the folder name in dfd, whose path is path. */
static int descend(struct walk *w, int dfd, const char *path, const char *name,
		   int depth, int all)
{
	int fd = openat(dfd, name, DIR_FLAGS);

	if (fd < 0)
		return error_set(w->err, EXIT_ENV,
				 "cannot open folder '%s': %s", path,
				 strerror(errno));
	return walk_dir(w, fd, path, depth, all);
}

/* One name of a folder, at depth components. all: inside a match. */
static int visit(struct walk *w, int dfd, const char *buf, const struct dent *d,
		 int depth, int all)
{
	const char *path = buf + d->path_off, *name = path + d->name_off;
	int is_dir = d->type == DT_DIR;

	if (w->glob && !all) {
		int hit =
			(is_dir || !w->dirs_only) && glob_match(w->glob, path);

		if (hit && w->matches) {
			strvec_push(w->matches, path);
			return 0;
		}
		if (hit)
			all = 1;
		else if (!is_dir || (w->max_depth && depth >= w->max_depth))
			return 0;
	}
	if (is_dir)
		return descend(w, dfd, path, name, depth, all);
	if (w->matches)
		return 0;
	return add_item(w, dfd, path, d->name_off + d->name_len, d->name_off);
}

/* Walks the open folder fd, named base, which has depth components. The
 * folder stays open (held) until the files queued from it are done. */
static int walk_dir(struct walk *w, int fd, const char *base, int depth,
		    int all)
{
	DIR *d = fdopendir(fd);
	struct strbuf buf = STRBUF_INIT;
	struct dent *v = NULL;
	size_t n = 0, alloc = 0;
	int ret;

	if (!d) {
		close(fd);
		return error_set(w->err, EXIT_ENV,
				 "cannot read folder '%s': %s", base,
				 strerror(errno));
	}
	ret = list_dir(w, d, base, depth == 0, &buf, &v, &n, &alloc);
	if (!ret)
		sort_dents(buf.buf, v, n);
	for (size_t i = 0; !ret && i < n; i++)
		ret = visit(w, dirfd(d), buf.buf, &v[i], depth + 1, all);
	free(v);
	strbuf_release(&buf);
	ALLOC_GROW(w->held, w->nheld + 1, w->held_alloc);
	w->held[w->nheld++] = d;
	if (!ret && w->nheld >= MAX_HELD)
		ret = flush(w);
	return ret;
}

static int depth_of(const char *path)
{
	int n = *path ? 1 : 0;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* Walks from path (trimmed; "" is the workspace): a folder is walked, a
 * file or symlink is queued (or, at a glob's start, ignored). */
static int walk_from(struct walk *w, const char *path, int want_dir, int *found)
{
	struct stat st;
	const char *leaf;
	int fd, ret;

	if (open_parent(w, path, &fd, &leaf, found) || fd < 0)
		return *found ? -1 : 0;
	if (!*leaf) {
		ret = walk_dir(w, fd, "", 0, 0);
		return ret ? ret : flush(w);
	}
	if (fstatat(fd, leaf, &st, AT_SYMLINK_NOFOLLOW)) {
		*found = 0;
		ret = errno == ENOENT || errno == ENOTDIR
			      ? 0
			      : error_set(w->err, EXIT_ENV,
					  "cannot stat '%s': %s", path,
					  strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		ret = descend(w, fd, path, leaf, depth_of(path), 0);
	} else if (w->glob) {
		*found = 0; /* a glob's start that is not a folder */
		ret = 0;
	} else if (want_dir) {
		ret = error_set(w->err, EXIT_USAGE, "'%s/' is not a folder",
				path);
	} else {
		ret = add_item(w, fd, path, strlen(path),
			       (size_t)(leaf - path));
	}
	if (!ret)
		ret = flush(w); /* before fd closes */
	close(fd);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends one child, as scan.h describes, to a folder's serialization. */
static void add_child(struct strbuf *sb, char type, const char *name,
		      size_t len, const struct hash128 *hash)
{
	unsigned char b[8 + 16];

	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)((uint64_t)len >> (8 * i));
		b[8 + i] = (unsigned char)(hash->high >> (56 - 8 * i));
		b[16 + i] = (unsigned char)(hash->low >> (56 - 8 * i));
	}
	strbuf_addch(sb, type);
	strbuf_add(sb, b, 8);
	strbuf_add(sb, name, len);
	strbuf_add(sb, b + 8, 16);
}

/* An open folder: its children so far, hashed in one go when it closes. */
struct level {
	struct strbuf buf;
	size_t end; /* length of the folder's prefix "a/b/" */
};

static void close_level(struct level *lv, size_t *nr, struct strbuf *prefix)
{
	struct level *top = &lv[*nr - 1], *up = &lv[*nr - 2];
	struct hash128 h;

	hash_buf(top->buf.buf, top->buf.len, &h);
	strbuf_reset(&top->buf);
	add_child(&up->buf, 'd', prefix->buf + up->end, top->end - up->end - 1,
		  &h);
	(*nr)--;
	strbuf_setlen(prefix, up->end);
}

/* Opens a level for the folder whose prefix is now prefix; the strbufs of
 * closed levels are kept for reuse. */
static void open_level(struct level **lv, size_t *nr, size_t *alloc, size_t end)
{
	if (*nr == *alloc) {
		ALLOC_GROW(*lv, *nr + 1, *alloc);
		for (size_t i = *nr; i < *alloc; i++)
			strbuf_init(&(*lv)[i].buf, 0);
	}
	(*lv)[(*nr)++].end = end;
}

/* The Merkle hash (see scan.h) of v[0..n), sorted, whose paths all start
 * with skip bytes naming the folder. In byte order, each folder's entries
 * are contiguous and come in git's tree order, so one pass with a stack of
 * open folders hashes the whole tree. */
static void merkle(const struct scan_entry *v, size_t n, size_t skip,
		   struct hash128 *out)
{
	struct level *lv = NULL;
	size_t nr = 0, alloc = 0;
	struct strbuf prefix = STRBUF_INIT;

	open_level(&lv, &nr, &alloc, 0);
	for (size_t i = 0; i < n; i++) {
		const char *rel = v[i].path + skip, *p, *slash;

		while (nr > 1 && strncmp(rel, prefix.buf, lv[nr - 1].end))
			close_level(lv, &nr, &prefix);
		for (p = rel + lv[nr - 1].end; (slash = strchr(p, '/'));
		     p = slash + 1) {
			strbuf_add(&prefix, p, (size_t)(slash - p) + 1);
			open_level(&lv, &nr, &alloc, prefix.len);
		}
		add_child(&lv[nr - 1].buf, v[i].type, p, strlen(p), &v[i].hash);
	}
	while (nr > 1)
		close_level(lv, &nr, &prefix);
	hash_buf(lv[0].buf.buf, lv[0].buf.len, out);
	for (size_t i = 0; i < alloc; i++)
		strbuf_release(&lv[i].buf);
	free(lv);
	strbuf_release(&prefix);
}

static void hash_glob_list(const struct scan_entry *v, size_t n,
			   struct hash128 *out)
{
	struct hasher *h = hasher_new();

	for (size_t i = 0; i < n; i++) {
		hasher_add_str(h, v[i].path);
		hasher_add(h, &v[i].type, 1);
		hasher_add_hash(h, &v[i].hash);
	}
	hasher_final(h, out);
	hasher_free(h);
}

static void hash_one(const struct scan_entry *e, struct hash128 *out)
{
	struct hasher *h;

	if (e->type == 'f') {
		*out = e->hash;
		return;
	}
	h = hasher_new();
	hasher_add(h, &e->type, 1);
	hasher_add_hash(h, &e->hash);
	hasher_final(h, out);
	hasher_free(h);
}

static int cpu_count(void)
{
	static int cached;
	cpu_set_t set;
	int n = 1;

	if (cached)
		return cached;
	if (!sched_getaffinity(0, sizeof(set), &set))
		n = CPU_COUNT(&set);
	cached = n < 1 ? 1 : n > CPU_THREADS ? CPU_THREADS : n;
	return cached;
}

static void walk_init(struct walk *w, struct statcache *sc, const char *ws,
		      struct error *err)
{
	memset(w, 0, sizeof(*w));
	w->nthreads = cpu_count();
	w->failed = SIZE_MAX;
	error_init(&w->batch_err);
	w->sc = sc;
	w->ws = ws;
	w->err = err;
	strbuf_init(&w->link, 0);
}

static void walk_release(struct walk *w)
{
	stop_pool(w); /* before the items and folders it uses go */
	for (size_t i = 0; i < w->nheld; i++)
		closedir(w->held[i]);
	free(w->items);
	free(w->held);
	error_release(&w->batch_err);
	strbuf_release(&w->link);
	free(w->ws_abs);
}

/* The folder a walk of pattern starts from (owned): its literal part. */
static char *glob_dir(const char *pattern)
{
	size_t plen = glob_literal_prefix(pattern);

	return xstrndup(pattern, plen ? plen - 1 : 0);
}

/* Sets up w for pattern and returns the folder to walk from (owned). */
static char *glob_start(struct walk *w, const char *pattern)
{
	w->glob = pattern;
	w->dirs_only = pattern[0] && pattern[strlen(pattern) - 1] == '/';
	w->max_depth = strstr(pattern, "**") ? 0 : depth_of(pattern);
	if (w->dirs_only && w->max_depth)
		w->max_depth--; /* the trailing slash counted one more */
	return glob_dir(pattern);
}

/* The folder to walk from (owned), set up for a glob. */
static char *walk_start(struct walk *w, const char *path, int is_glob)
{
	if (is_glob && glob_has_magic(path))
		return glob_start(w, path);
	return xstrndup(path, path_trimmed_len(path));
}

/* The list is already in byte order (see the top of this file). */
static void finish(struct walk *w, struct scan_list *out, size_t first,
		   const char *start, struct hash128 *combined)
{
	struct scan_entry *v = out->v + first;
	size_t n = out->nr - first;

	if (w->glob)
		hash_glob_list(v, n, combined);
	else if (n == 1 && !strcmp(v[0].path, start))
		hash_one(&v[0], combined);
	else
		merkle(v, n, *start ? strlen(start) + 1 : 0, combined);
}

/* The folders that check_folders last found to be real folders all the
 * way down: 2,000 stages reading in/N and writing out/N check "in" and
 * "out" once, not 2,000 times each. Forgotten whenever a command may
 * have changed the tree (scan_forget_folders). */
#define CHECKED_MAX 8
static _Thread_local struct strbuf checked[CHECKED_MAX];
static _Thread_local size_t checked_next;

void scan_forget_folders(void)
{
	for (size_t i = 0; i < CHECKED_MAX; i++)
		strbuf_release(&checked[i]);
}

static int was_checked(const char *dir, size_t n)
{
	for (size_t i = 0; i < CHECKED_MAX; i++)
		if (checked[i].len == n && !memcmp(checked[i].buf, dir, n))
			return 1;
	return 0;
}

/* ---- stats taken ahead ------------------------------------------------ */

/* The pass before a run asks for one lstat per declared plain file, in
 * stage order: 200,000 path lookups in the kernel at 100,000 stages, while
 * the calling thread hashes keys and compares records. A second thread
 * takes those lstat calls ahead, in the same order, as git's preload-index
 * does for the index, so the two overlap. It stays at most PRESTAT_RING
 * paths ahead of the caller, its results in a ring of that many slots, so
 * that the memory does not grow with N. Each path's result is used at
 * most once: a path asked for or dropped (its stage is about to write it)
 * is marked gone, and from then on stat'ed by the caller as before. */
#define PRESTAT_RING 4096
#define PRESTAT_NAP_NS 200000 /* the thread's wait when it is far ahead */

enum { SLOT_FREE, SLOT_BUSY, SLOT_DONE, SLOT_READING };

/* What scan_path and the stat cache use of a struct stat, in 64 bytes
 * rather than 144. */
struct prestat {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	uint32_t mode, uid;
	int rc;
	uint32_t pos; /* the path it holds */
	int state;    /* atomic: SLOT_* */
};

static void pack_stat(struct prestat *p, const struct stat *st)
{
	p->dev = st->st_dev;
	p->ino = st->st_ino;
	p->size = (uint64_t)st->st_size;
	p->mtime_ns =
		(int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	p->ctime_ns =
		(int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	p->mode = st->st_mode;
	p->uid = st->st_uid;
}

static void unpack_stat(const struct prestat *p, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = p->dev;
	st->st_ino = p->ino;
	st->st_size = (off_t)p->size;
	st->st_mtim.tv_sec = p->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = p->mtime_ns % 1000000000;
	st->st_ctim.tv_sec = p->ctime_ns / 1000000000;
	st->st_ctim.tv_nsec = p->ctime_ns % 1000000000;
	st->st_mode = p->mode;
	st->st_uid = p->uid;
	st->st_nlink = 1;
}

static struct {
	const char **paths;   /* in the order they will be asked for */
	uint32_t *by_path;    /* positions in paths, by path pointer */
	unsigned char *gone;  /* atomic: asked for or dropped, by position */
	struct prestat *ring; /* PRESTAT_RING slots, position % size */
	size_t n;
	size_t reached; /* atomic: the furthest position asked for, + 1 */
	pthread_t th;
	int running;
	int stop; /* atomic */
} pre;

static int cmp_by_path(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)pre.paths[*(const uint32_t *)a];
	uintptr_t y = (uintptr_t)pre.paths[*(const uint32_t *)b];

	return x < y ? -1 : x > y;
}

static int claim(struct prestat *p, int from, int to)
{
	return __atomic_compare_exchange_n(&p->state, &from, to, 0,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static int stopped(void)
{
	return __atomic_load_n(&pre.stop, __ATOMIC_RELAXED);
}

/* The slot for the thread to fill: free, or done with a path the caller
 * no longer needs; the caller reads a slot only for a moment. */
static void take_slot(struct prestat *p)
{
	for (;;) {
		int s = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);

		if (s != SLOT_READING && claim(p, s, SLOT_BUSY))
			return;
		sched_yield();
	}
}

static void *prestat_thread(void *arg)
{
	struct timespec nap = {0, PRESTAT_NAP_NS};

	(void)arg;
	for (size_t i = 0; i < pre.n && !stopped(); i++) {
		struct prestat *p = &pre.ring[i % PRESTAT_RING];
		struct stat st;
		int rc;

		while (i >= __atomic_load_n(&pre.reached, __ATOMIC_RELAXED) +
				       PRESTAT_RING &&
		       !stopped())
			nanosleep(&nap, NULL);
		if (__atomic_load_n(&pre.gone[i], __ATOMIC_RELAXED))
			continue;
		rc = fstatat(AT_FDCWD, pre.paths[i], &st, AT_SYMLINK_NOFOLLOW);
		take_slot(p);
		if (!rc)
			pack_stat(p, &st);
		p->rc = rc;
		p->pos = (uint32_t)i;
		__atomic_store_n(&p->state, SLOT_DONE, __ATOMIC_RELEASE);
	}
	return NULL;
}

void scan_prestat_start(const char **paths, size_t n)
{
	scan_prestat_stop();
	if (n < SCAN_PRESTAT_MIN || n > UINT32_MAX || cpu_count() < 2)
		return;
	pre.paths = xcalloc(n, sizeof(*pre.paths));
	pre.by_path = xcalloc(n, sizeof(*pre.by_path));
	pre.gone = xcalloc(n, 1);
	pre.ring = xcalloc(PRESTAT_RING, sizeof(*pre.ring));
	for (size_t i = 0; i < n; i++) {
		pre.paths[i] = paths[i];
		pre.by_path[i] = (uint32_t)i;
	}
	pre.n = n;
	pre.reached = 0;
	pre.stop = 0;
	/* the model's strings lie in its order, most often: nothing to sort */
	for (size_t i = 1; i < n; i++)
		if ((uintptr_t)paths[i - 1] > (uintptr_t)paths[i]) {
			qsort(pre.by_path, n, sizeof(*pre.by_path),
			      cmp_by_path);
			break;
		}
	pre.running = !pthread_create(&pre.th, NULL, prestat_thread, NULL);
	if (!pre.running)
		scan_prestat_stop();
}

void scan_prestat_settle(void)
{
	if (pre.running)
		pthread_join(pre.th, NULL);
	pre.running = 0;
}

void scan_prestat_stop(void)
{
	if (pre.running) {
		__atomic_store_n(&pre.stop, 1, __ATOMIC_RELAXED);
		pthread_join(pre.th, NULL);
		pre.running = 0;
	}
	free(pre.paths);
	free(pre.by_path);
	free(pre.gone);
	free(pre.ring);
	memset(&pre, 0, sizeof(pre));
}

/* The position of path (by its address), or -1. */
static ptrdiff_t prestat_find(const char *path)
{
	size_t lo = 0, hi = pre.n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *at = pre.paths[pre.by_path[mid]];

		if (at == path)
			return pre.by_path[mid];
		if ((uintptr_t)at < (uintptr_t)path)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void scan_prestat_drop(const char *path)
{
	ptrdiff_t pos = prestat_find(path);

	if (pos >= 0)
		__atomic_store_n(&pre.gone[pos], 1, __ATOMIC_RELAXED);
}

/* lstat(path) for the caller: taken ahead when the other thread has it,
 * otherwise here. Either way the path is gone from the prefetch after. */
static int prestat_lstat(const char *path, const char *full, struct stat *st)
{
	ptrdiff_t pos = prestat_find(path);
	struct prestat *p;
	size_t next;
	int rc;

	if (pos < 0)
		return lstat(full, st);
	next = (size_t)pos + 1;
	if (next > __atomic_load_n(&pre.reached, __ATOMIC_RELAXED))
		__atomic_store_n(&pre.reached, next, __ATOMIC_RELAXED);
	if (__atomic_load_n(&pre.gone[pos], __ATOMIC_RELAXED))
		return lstat(full, st); /* used once already, or dropped */
	__atomic_store_n(&pre.gone[pos], 1, __ATOMIC_RELAXED);
	p = &pre.ring[pos % PRESTAT_RING];
	if (!claim(p, SLOT_DONE, SLOT_READING))
		return lstat(full, st); /* not taken yet */
	if (p->pos != (uint32_t)pos) {
		__atomic_store_n(&p->state, SLOT_DONE, __ATOMIC_RELEASE);
		return lstat(full, st); /* another path's */
	}
	unpack_stat(p, st);
	rc = p->rc;
	__atomic_store_n(&p->state, SLOT_FREE, __ATOMIC_RELEASE);
	if (rc)
		errno = ENOENT;
	return rc;
}

/* Whether every folder on the way from the workspace to the file full
 * (the workspace's part is base bytes long) is a real folder: none
 * missing, none a symlink. 0 when so. full is put back as it was. */
static int check_folders(char *full, size_t base)
{
	char *last = strrchr(full + base, '/');
	size_t n = last ? (size_t)(last - full) : 0;
	struct stat st;
	int bad;

	if (!n || was_checked(full, n))
		return 0;
	for (char *slash = strchr(full + base, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		bad = lstat(full, &st) || !S_ISDIR(st.st_mode);
		*slash = '/';
		if (bad)
			return -1;
	}
	strbuf_reset(&checked[checked_next]);
	strbuf_add(&checked[checked_next], full, n);
	checked_next = (checked_next + 1) % CHECKED_MAX;
	return 0;
}

/* The common case of a stage reading or writing one plain file: lstat its
 * folders (none may be a symlink) and the file, and ask the stat cache —
 * two or three syscalls instead of opening every folder on the way.
 * Returns 1 when it handled path (st and hash filled), 0 to take the
 * general walk, -1. */
static int one_file(struct statcache *sc, const char *workspace,
		    const char *path, struct stat *st, struct hash128 *hash,
		    struct error *err)
{
	char own[1024], *full = own;
	size_t len = strlen(path), base = 0;
	int here = !strcmp(workspace, "."), ret = 0;

	if (!len || path[len - 1] == '/')
		return 0;
	if (!here)
		base = strlen(workspace) + 1;
	if (base + len + 1 > sizeof(own))
		full = xmalloc(base + len + 1);
	if (!here) {
		memcpy(full, workspace, base - 1);
		full[base - 1] = '/';
	}
	memcpy(full + base, path, len + 1);
	if (check_folders(full, base))
		goto out; /* missing or a symlink: the walk says which */
	if ((here ? prestat_lstat(path, full, st) : lstat(full, st)) ||
	    !S_ISREG(st->st_mode))
		goto out;
	if (statcache_hash_file(sc, workspace, path, st, hash, err)) {
		ret = -1;
		goto out;
	}
	ret = 1; /* nothing is inside it: the save knows it was seen */
out:
	if (full != own)
		free(full);
	return ret;
}

static int scan_one_file(struct statcache *sc, const char *workspace,
			 const char *path, struct scan_list *out, int *found,
			 struct hash128 *combined, struct error *err)
{
	struct stat st;
	struct hash128 h;
	struct scan_entry *e;
	int ret = one_file(sc, workspace, path, &st, &h, err);

	if (ret <= 0)
		return ret;
	ALLOC_GROW(out->v, out->nr + 1, out->alloc);
	e = &out->v[out->nr];
	e->hash = h;
	e->path = list_strdup(out, path, strlen(path));
	e->type = st.st_mode & S_IXUSR ? 'x' : 'f';
	e->size = (unsigned long long)st.st_size;
	out->nr++;
	hash_one(e, combined);
	*found = 1;
	return 1;
}

int scan_file(struct statcache *sc, const char *path, struct hash128 *combined,
	      unsigned long long *bytes, struct error *err)
{
	struct stat st;
	struct hash128 h;
	struct scan_entry e;
	int ret;

	if (!sc)
		return 0;
	ret = one_file(sc, ".", path, &st, &h, err);
	if (ret <= 0)
		return ret;
	e.hash = h;
	e.type = st.st_mode & S_IXUSR ? 'x' : 'f';
	hash_one(&e, combined);
	*bytes = (unsigned long long)st.st_size;
	return 1;
}

int scan_path(struct statcache *sc, const char *workspace, const char *path,
	      int is_glob, struct scan_list *out, int *found,
	      struct hash128 *combined, struct error *err)
{
	struct walk w;
	size_t first = out->nr;
	char *start;
	int ret;

	if (sc && !(is_glob && glob_has_magic(path))) {
		ret = scan_one_file(sc, workspace, path, out, found, combined,
				    err);
		if (ret)
			return ret < 0 ? -1 : 0;
	}
	walk_init(&w, sc, workspace, err);
	w.out = out;
	start = walk_start(&w, path, is_glob);
	memset(combined, 0, sizeof(*combined));
	ret = walk_from(&w, start, path_trimmed_len(path) != strlen(path),
			found);
	if (!ret && w.glob && out->nr == first)
		*found = 0;
	if (!ret && sc)
		statcache_note_walked(sc, start, w.glob);
	if (!ret && *found)
		finish(&w, out, first, start, combined);
	if (ret)
		out->nr = first; /* their paths stay in the arena until released
				  */
	free(start);
	walk_release(&w);
	return ret;
}

/* Scanning ahead: each thread takes the next path until none is left. */
struct ahead {
	struct statcache *sc;
	const char *ws;
	struct scan_ahead *v;
	size_t n, next; /* next: atomic */
};

static void ahead_one(struct ahead *a, struct scan_ahead *r)
{
	struct error err = ERROR_INIT;
	struct scan_list l = SCAN_LIST_INIT;
	struct walk w;
	char *start;
	int found = 0;

	walk_init(&w, a->sc, a->ws, &err);
	w.nthreads = 1; /* the other CPUs walk other paths */
	w.ahead = 1;
	w.out = &l;
	start = walk_start(&w, r->path, r->is_glob);
	if (!walk_from(&w, start, path_trimmed_len(r->path) != strlen(r->path),
		       &found) &&
	    found && !(w.glob && !l.nr)) {
		finish(&w, &l, 0, start, &r->hash);
		for (size_t i = 0; i < l.nr; i++)
			r->bytes += l.v[i].size;
		r->hits = w.hits;
		r->done = 1;
	}
	free(start);
	walk_release(&w);
	scan_list_release(&l);
	error_release(&err);
}

static void *ahead_thread(void *arg)
{
	struct ahead *a = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&a->next, 1, __ATOMIC_RELAXED)) < a->n)
		ahead_one(a, &a->v[i]);
	return NULL;
}

void scan_ahead(struct statcache *sc, const char *workspace,
		struct scan_ahead *v, size_t n)
{
	struct ahead a = {sc, workspace, v, n, 0};
	pthread_t th[CPU_THREADS];
	int nth = 0, want = cpu_count() - 1;

	for (size_t i = 0; i < n; i++) {
		v[i].done = 0;
		v[i].bytes = 0;
		v[i].hits = 0;
	}
	if (!sc)
		return;
	while (nth < want && (size_t)nth + 1 < n &&
	       !pthread_create(&th[nth], NULL, ahead_thread, &a))
		nth++;
	ahead_thread(&a);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
}

void scan_ahead_take(struct statcache *sc, const struct scan_ahead *a)
{
	int glob = a->is_glob && glob_has_magic(a->path);
	char *start = glob ? glob_dir(a->path)
			   : xstrndup(a->path, path_trimmed_len(a->path));

	statcache_note_walked(sc, start, glob ? a->path : NULL);
	statcache_add_hits(sc, a->hits);
	free(start);
}

int scan_glob(const char *workspace, const char *pattern, struct strvec *out,
	      struct error *err)
{
	struct strvec found = STRVEC_INIT;
	struct walk w;
	char *start;
	int ret, any;

	walk_init(&w, NULL, workspace, err);
	w.matches = &found;
	start = glob_start(&w, pattern);
	ret = walk_from(&w, start, 0, &any);
	if (!ret) {
		/* the walk gives git's order ("a.txt" before folder "a") */
		if (found.nr > 1)
			qsort(found.v, found.nr, sizeof(char *), cmp_str);
		strvec_pushv(out, found.v);
	}
	strvec_clear(&found);
	free(start);
	walk_release(&w);
	return ret;
}

void scan_list_release(struct scan_list *list)
{
	while (list->chunks) {
		struct scan_chunk *c = list->chunks;

		list->chunks = c->next;
		free(c);
	}
	free(list->v);
	list->v = NULL;
	list->nr = list->alloc = 0;
}
