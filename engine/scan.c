/* Walking the workspace for scan_path and scan_glob: readdir and fstatat
 * relative to open folders (no path resolution per file), symlinks never
 * followed, one allocation per file (its path), one sort at the end. */
#include "engine/scan.h"
#include "util/glob.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct walk {
	struct statcache *sc; /* NULL: hash every file */
	const char *ws;
	struct scan_list *out;	/* scan_path: files found */
	struct strvec *matches; /* scan_glob: matches, instead of files */
	const char *glob;	/* NULL: take everything below the start */
	int dirs_only;		/* the glob ends in '/' */
	int max_depth;		/* components a match can have; 0: any */
	struct strbuf path;	/* workspace-relative path being visited */
	struct strbuf link;
	char *ws_abs; /* realpath of ws, for absolute link targets */
	struct error *err;
};

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

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

/* True when target, read from the link at w->path, stays inside. */
static int link_inside(struct walk *w, const char *target)
{
	struct strbuf sb = STRBUF_INIT, norm = STRBUF_INIT;
	const char *slash = strrchr(w->path.buf, '/'), *why;
	int ok;

	if (target[0] == '/')
		return abs_link_inside(w, target);
	if (slash)
		strbuf_add(&sb, w->path.buf, (size_t)(slash - w->path.buf) + 1);
	strbuf_addstr(&sb, target);
	ok = !path_normalize(sb.buf, &norm, &why);
	strbuf_release(&sb);
	strbuf_release(&norm);
	return ok;
}

static int hash_link(struct walk *w, int dfd, const char *name,
		     struct hash128 *out)
{
	ssize_t n;

	for (size_t size = 256;; size *= 2) {
		strbuf_reset(&w->link);
		strbuf_grow(&w->link, size);
		n = readlinkat(dfd, name, w->link.buf, size);
		if (n < 0)
			return error_set(w->err, EXIT_ENV,
					 "cannot read symlink '%s': %s",
					 w->path.buf, strerror(errno));
		if ((size_t)n < size)
			break;
	}
	strbuf_setlen(&w->link, (size_t)n);
	if (!link_inside(w, w->link.buf))
		return error_set(w->err, EXIT_USAGE,
				 "symlink '%s' points outside the workspace",
				 w->path.buf);
	hash_buf(w->link.buf, w->link.len, out);
	return 0;
}

static int hash_uncached(struct walk *w, int dfd, const char *name,
			 struct hash128 *out)
{
	int fd = openat(dfd, name,
			O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	int ret;

	if (fd < 0)
		return error_set(w->err, EXIT_ENV, "cannot open '%s': %s",
				 w->path.buf, strerror(errno));
	ret = hash_fd(fd, w->path.buf, out, NULL, w->err);
	close(fd);
	return ret;
}

/* Adds the file or symlink at w->path (named name in dfd) to w->out. */
static int add_leaf(struct walk *w, int dfd, const char *name,
		    const struct stat *st)
{
	struct scan_entry e = {NULL, {0, 0}, 0, 0};
	int ret;

	if (S_ISREG(st->st_mode)) {
		e.type = st->st_mode & S_IXUSR ? 'x' : 'f';
		ret = w->sc ? statcache_hash_at(w->sc, dfd, name, w->path.buf,
						st, &e.hash, w->err)
			    : hash_uncached(w, dfd, name, &e.hash);
	} else if (S_ISLNK(st->st_mode)) {
		e.type = 'l';
		ret = hash_link(w, dfd, name, &e.hash);
	} else {
		ret = error_set(w->err, EXIT_USAGE,
				"'%s' is not a file, folder or symlink",
				w->path.buf);
	}
	if (ret)
		return ret;
	e.size = (unsigned long long)st->st_size;
	e.path = xmemdupz(w->path.buf, w->path.len);
	ALLOC_GROW(w->out->v, w->out->nr + 1, w->out->alloc);
	w->out->v[w->out->nr++] = e;
	return 0;
}

static int walk_dir(struct walk *w, int fd, int depth, int all);

static int descend(struct walk *w, int dfd, const char *name, int depth,
		   int all)
{
	int fd = openat(dfd, name, DIR_FLAGS);

	if (fd < 0)
		return error_set(w->err, EXIT_ENV,
				 "cannot open folder '%s': %s", w->path.buf,
				 strerror(errno));
	return walk_dir(w, fd, depth, all);
}

static int stat_entry(struct walk *w, int dfd, const char *name,
		      struct stat *st)
{
	if (!fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW))
		return 0;
	if (errno == ENOENT)
		return 1; /* deleted meanwhile */
	return error_set(w->err, EXIT_ENV, "cannot stat '%s': %s", w->path.buf,
			 strerror(errno));
}

/* One entry of a folder; w->path names it. all: inside a match. The entry
 * is stat'ed only when it is kept, or readdir did not give its type. */
static int visit(struct walk *w, int dfd, const struct dirent *de, int depth,
		 int all)
{
	struct stat st;
	int have_st = de->d_type == DT_UNKNOWN, is_dir, ret;

	if (have_st && (ret = stat_entry(w, dfd, de->d_name, &st)))
		return ret > 0 ? 0 : ret;
	is_dir = have_st ? S_ISDIR(st.st_mode) : de->d_type == DT_DIR;
	if (w->glob && !all) {
		int hit = (is_dir || !w->dirs_only) &&
			  glob_match(w->glob, w->path.buf);

		if (hit && w->matches) {
			strvec_push(w->matches, w->path.buf);
			return 0;
		}
		if (hit)
			all = 1;
		else if (!is_dir || (w->max_depth && depth >= w->max_depth))
			return 0;
	}
	if (is_dir)
		return descend(w, dfd, de->d_name, depth, all);
	if (!have_st && (ret = stat_entry(w, dfd, de->d_name, &st)))
		return ret > 0 ? 0 : ret;
	return add_leaf(w, dfd, de->d_name, &st);
}

/* Walks the open folder fd (closed here), named by w->path, which has
 * depth components. */
static int walk_dir(struct walk *w, int fd, int depth, int all)
{
	DIR *d = fdopendir(fd);
	size_t base = w->path.len;
	struct dirent *de;
	int ret = 0;

	if (!d) {
		close(fd);
		return error_set(w->err, EXIT_ENV,
				 "cannot read folder '%s': %s", w->path.buf,
				 strerror(errno));
	}
	while (!ret && (errno = 0, de = readdir(d))) {
		if (skip_name(de->d_name, depth == 0))
			continue;
		if (base)
			strbuf_addch(&w->path, '/');
		strbuf_addstr(&w->path, de->d_name);
		ret = visit(w, dirfd(d), de, depth + 1, all);
		strbuf_setlen(&w->path, base);
	}
	if (!ret && errno)
		ret = error_set(w->err, EXIT_ENV, "cannot read folder '%s': %s",
				w->path.buf, strerror(errno));
	closedir(d);
	return ret;
}

static int depth_of(const char *path)
{
	int n = *path ? 1 : 0;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* Walks from path (trimmed; "" is the workspace). A folder is walked; a
 * file or symlink is added (or, for a glob's start, ignored). */
static int walk_from(struct walk *w, const char *path, int want_dir, int *found)
{
	const char *leaf;
	struct stat st;
	int fd, ret;

	if (open_parent(w, path, &fd, &leaf, found) || fd < 0)
		return *found ? -1 : 0;
	strbuf_reset(&w->path);
	strbuf_addstr(&w->path, path);
	if (!*leaf)
		return walk_dir(w, fd, 0, 0);
	if (fstatat(fd, leaf, &st, AT_SYMLINK_NOFOLLOW)) {
		*found = 0;
		ret = errno == ENOENT || errno == ENOTDIR
			      ? 0
			      : error_set(w->err, EXIT_ENV,
					  "cannot stat '%s': %s", path,
					  strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		ret = descend(w, fd, leaf, depth_of(path), 0);
	} else if (w->glob) {
		*found = 0; /* a glob's start that is not a folder */
		ret = 0;
	} else if (want_dir) {
		ret = error_set(w->err, EXIT_USAGE, "'%s/' is not a folder",
				path);
	} else {
		ret = add_leaf(w, fd, leaf, &st);
	}
	close(fd);
	return ret;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct scan_entry *)a)->path,
		      ((const struct scan_entry *)b)->path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_child(struct hasher *h, char type, const char *name, size_t len,
		      const struct hash128 *hash)
{
	unsigned char n[8];

	for (int i = 0; i < 8; i++)
		n[i] = (unsigned char)((uint64_t)len >> (8 * i));
	hasher_add(h, &type, 1);
	hasher_add(h, n, sizeof(n));
	hasher_add(h, name, len);
	hasher_add_hash(h, hash);
}

struct level {
	struct hasher *h;
	size_t end; /* length of the folder's prefix "a/b/" */
};

static void close_level(struct level *lv, size_t *nr, struct strbuf *prefix)
{
	struct level *top = &lv[*nr - 1], *up = &lv[*nr - 2];
	struct hash128 h;

	hasher_final(top->h, &h);
	hasher_free(top->h);
	add_child(up->h, 'd', prefix->buf + up->end, top->end - up->end - 1,
		  &h);
	(*nr)--;
	strbuf_setlen(prefix, up->end);
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

	ALLOC_GROW(lv, 1, alloc);
	lv[nr++] = (struct level){hasher_new(), 0};
	for (size_t i = 0; i < n; i++) {
		const char *rel = v[i].path + skip, *p, *slash;

		while (nr > 1 && strncmp(rel, prefix.buf, lv[nr - 1].end))
			close_level(lv, &nr, &prefix);
		for (p = rel + lv[nr - 1].end; (slash = strchr(p, '/'));
		     p = slash + 1) {
			strbuf_add(&prefix, p, (size_t)(slash - p) + 1);
			ALLOC_GROW(lv, nr + 1, alloc);
			lv[nr++] = (struct level){hasher_new(), prefix.len};
		}
		add_child(lv[nr - 1].h, v[i].type, p, strlen(p), &v[i].hash);
	}
	while (nr > 1)
		close_level(lv, &nr, &prefix);
	hasher_final(lv[0].h, out);
	hasher_free(lv[0].h);
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

static void walk_init(struct walk *w, struct statcache *sc, const char *ws,
		      struct error *err)
{
	memset(w, 0, sizeof(*w));
	w->sc = sc;
	w->ws = ws;
	w->err = err;
	strbuf_init(&w->path, 0);
	strbuf_init(&w->link, 0);
}

static void walk_release(struct walk *w)
{
	strbuf_release(&w->path);
	strbuf_release(&w->link);
	free(w->ws_abs);
}

/* Sets up w for pattern and returns the folder to walk from (owned). */
static char *glob_start(struct walk *w, const char *pattern)
{
	size_t plen = glob_literal_prefix(pattern);

	w->glob = pattern;
	w->dirs_only = pattern[0] && pattern[strlen(pattern) - 1] == '/';
	w->max_depth = strstr(pattern, "**") ? 0 : depth_of(pattern);
	if (w->dirs_only && w->max_depth)
		w->max_depth--; /* the trailing slash counted one more */
	return xstrndup(pattern, plen ? plen - 1 : 0);
}

static void finish(struct walk *w, struct scan_list *out, size_t first,
		   const char *start, struct hash128 *combined)
{
	struct scan_entry *v = out->v + first;
	size_t n = out->nr - first;

	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_entry);
	if (w->glob)
		hash_glob_list(v, n, combined);
	else if (n == 1 && !strcmp(v[0].path, start))
		hash_one(&v[0], combined);
	else
		merkle(v, n, *start ? strlen(start) + 1 : 0, combined);
}

int scan_path(struct statcache *sc, const char *workspace, const char *path,
	      int is_glob, struct scan_list *out, int *found,
	      struct hash128 *combined, struct error *err)
{
	struct walk w;
	size_t first = out->nr;
	char *start;
	int ret;

	walk_init(&w, sc, workspace, err);
	w.out = out;
	if (is_glob && glob_has_magic(path))
		start = glob_start(&w, path);
	else
		start = xstrndup(path, path_trimmed_len(path));
	memset(combined, 0, sizeof(*combined));
	ret = walk_from(&w, start, path_trimmed_len(path) != strlen(path),
			found);
	if (!ret && w.glob && out->nr == first)
		*found = 0;
	if (!ret && sc)
		statcache_note_walked(sc, start, w.glob);
	if (!ret && *found)
		finish(&w, out, first, start, combined);
	if (ret) {
		while (out->nr > first)
			free(out->v[--out->nr].path);
	}
	free(start);
	walk_release(&w);
	return ret;
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
	for (size_t i = 0; i < list->nr; i++)
		free(list->v[i].path);
	free(list->v);
	list->v = NULL;
	list->nr = list->alloc = 0;
}
