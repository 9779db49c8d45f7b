/* Many refs moved at once by rewriting packed-refs, as `git update-ref
 * --stdin` and `git pack-refs` would: one file written and fsynced per
 * batch instead of a loose ref file (two fsyncs) per stage, and no
 * thousands of loose refs for every ref walk to open (libgit2's pack
 * writer walks them all, looking for tags). The format is git's:
 * "# pack-refs with: ..." then "<hex> <refname>" lines sorted by name, each
 * tag followed by its "^<hex>" peeled line. Loose refs override packed
 * ones, so an updated ref's loose file is removed once the new packed-refs
 * is in place. A move of one ref (a run of one stage, a run record) writes
 * its loose file instead, here rather than through libgit2, which reads
 * every packed ref for it: O(1) where the rewrite is O(N refs); the next
 * batch folds the loose refs of the folders it moves refs in back into
 * packed-refs.
 *
 * packed-refs is never held whole (6.5 MB at 100,000 refs, twice that
 * parsed): it is read a line at a time through one buffer, and a batch
 * merges its few updates into the lines as it copies them to the new
 * file, which git writes sorted. An unsorted file (not git's) is parsed
 * and sorted in memory as before. */
#include "store/git.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strmap.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "# pack-refs with: peeled fully-peeled sorted \n"

struct packed_ref {
	char *name;
	char hex[SGIT_HEXSZ + 1];
	char *peeled;		  /* the "^<hex>" line of a tag, or NULL */
	char was[SGIT_HEXSZ + 1]; /* its packed value a merge read, or "" */
};

struct packed {
	struct packed_ref *v;
	size_t nr, alloc;
	size_t sorted; /* v[0, sorted) is sorted by name; new refs follow */
};

static void packed_release(struct packed *p)
{
	for (size_t i = 0; i < p->nr; i++) {
		free(p->v[i].name);
		free(p->v[i].peeled);
	}
	free(p->v);
}

static int is_hex40(const char *s)
{
	return strspn(s, "0123456789abcdef") >= SGIT_HEXSZ;
}

/* What a line of packed-refs is: '#' a comment or blank, '^' a tag's
 * peeled line, 'r' a ref ("<hex> <name>"), 0 none git writes. */
static int line_kind(const char *line)
{
	if (*line == '#' || !*line)
		return '#';
	if (*line == '^')
		return is_hex40(line + 1) ? '^' : 0;
	return is_hex40(line) && line[SGIT_HEXSZ] == ' ' ? 'r' : 0;
}

/* Parse text (packed-refs as read); -1 on anything git would not write. */
static int parse(char *text, struct packed *p)
{
	for (char *line = text; *line;) {
		char *nl = strchrnul(line, '\n'), *next = *nl ? nl + 1 : nl;
		int kind;

		*nl = '\0';
		kind = line_kind(line);
		if (!kind || (kind == '^' && !p->nr))
			return -1;
		if (kind == '^') {
			free(p->v[p->nr - 1].peeled);
			p->v[p->nr - 1].peeled = xstrdup(line);
		} else if (kind == 'r') {
			ALLOC_GROW(p->v, p->nr + 1, p->alloc);
			memcpy(p->v[p->nr].hex, line, SGIT_HEXSZ);
			p->v[p->nr].hex[SGIT_HEXSZ] = '\0';
			p->v[p->nr].name = xstrdup(line + SGIT_HEXSZ + 1);
			p->v[p->nr].peeled = NULL;
			p->v[p->nr].was[0] = '\0';
			p->nr++;
		}
		line = next;
	}
	return 0;
}

/* packed-refs read a line at a time by pread from an offset of its own
 * (a pass can start again on the same fd) into one buffer, 64 KB unless
 * a line is longer. fd -1 (no file): no lines. */
#define CHUNK 65536

struct lines {
	int fd;
	off_t off; /* of buf[end] in the file */
	size_t pos, end, alloc;
	int eof;
	char *buf;
};

static void lines_init(struct lines *l, int fd)
{
	l->fd = fd;
	l->off = 0;
	l->pos = l->end = 0;
	l->eof = fd < 0;
	l->alloc = CHUNK;
	l->buf = xmalloc(l->alloc + 1);
}

static void lines_rewind(struct lines *l)
{
	l->off = 0;
	l->pos = l->end = 0;
	l->eof = l->fd < 0;
}

static void lines_release(struct lines *l)
{
	free(l->buf);
	l->buf = NULL;
}

/* The next line, its '\n' made a '\0', into *line and *len: 1, 0 at the
 * end, -1 on a read error (errno). The line is the reader's until the
 * next call. */
static int lines_next(struct lines *l, char **line, size_t *len)
{
	for (;;) {
		char *at = l->buf + l->pos,
		     *nl = memchr(at, '\n', l->end - l->pos);
		ssize_t got;

		if (nl || (l->eof && l->pos < l->end)) {
			if (!nl) /* a last line without \n */
				nl = l->buf + l->end;
			*nl = '\0';
			*line = at;
			*len = (size_t)(nl - at);
			l->pos = (size_t)(nl - l->buf) + (nl < l->buf + l->end);
			return 1;
		}
		if (l->eof)
			return 0;
		memmove(l->buf, at, l->end - l->pos);
		l->end -= l->pos;
		l->pos = 0;
		if (l->end == l->alloc) { /* a line longer than the buffer */
			l->alloc *= 2;
			l->buf = xrealloc(l->buf, l->alloc + 1);
		}
		got = pread(l->fd, l->buf + l->end, l->alloc - l->end, l->off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -1;
		l->eof = !got;
		l->end += (size_t)got;
		l->off += got;
	}
}

/* Check packed-refs as parse() would take it, a line at a time: 0 when
 * it parses (*sorted 1 when its refs' names rise strictly, as git writes
 * them: a merge can stream it), -1 when it is not packed-refs (a NUL in
 * it too: parse() would drop what follows), -2 when it cannot be read
 * (errno). The reader is left at the start. */
static int check(struct lines *l, int *sorted)
{
	struct strbuf prev = STRBUF_INIT;
	char *line;
	size_t len;
	int rc = 0, kind, refs = 0, ret = 0;

	*sorted = 1;
	while (!ret && (rc = lines_next(l, &line, &len)) > 0) {
		kind = strlen(line) == len ? line_kind(line) : 0;
		if (!kind || (kind == '^' && !refs)) {
			ret = -1;
		} else if (kind == 'r') {
			line += SGIT_HEXSZ + 1;
			if (refs++ && strcmp(prev.buf, line) >= 0)
				*sorted = 0;
			strbuf_reset(&prev);
			strbuf_addstr(&prev, line);
		}
	}
	if (!ret && rc < 0)
		ret = -2;
	strbuf_release(&prev);
	lines_rewind(l);
	return ret;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct packed_ref *)a)->name,
		      ((const struct packed_ref *)b)->name);
}

static struct packed_ref *find(struct packed *p, const char *name)
{
	struct packed_ref key = {(char *)name, "", NULL, ""};

	return p->sorted
		       ? bsearch(&key, p->v, p->sorted, sizeof(*p->v), cmp_name)
		       : NULL;
}

/* The ref's value now: its loose file when there is one, else packed
 * (its packed value, or NULL). 1 and hex filled, 0 when it does not
 * exist, -1 when unreadable. */
static int current(const char *gitdir, const char *name, const char *packed,
		   char *hex)
{
	struct strbuf path = STRBUF_INIT, sb = STRBUF_INIT;
	int ret;

	strbuf_addf(&path, "%s/%s", gitdir, name);
	if (!strbuf_read_file(&sb, path.buf, 64)) {
		ret = is_hex40(sb.buf) ? 1 : -1;
		if (ret == 1)
			memcpy(hex, sb.buf, SGIT_HEXSZ + 1);
		hex[SGIT_HEXSZ] = '\0';
	} else if (errno == ENOENT || errno == ENOTDIR) {
		ret = packed ? 1 : 0;
		if (packed)
			memcpy(hex, packed, SGIT_HEXSZ + 1);
	} else {
		ret = -1;
	}
	strbuf_release(&path);
	strbuf_release(&sb);
	return ret;
}

/* Set name's packed value to hex, adding it when new. */
static void put(struct packed *p, const char *name, const char *hex)
{
	struct packed_ref *r = find(p, name);

	if (!r) {
		ALLOC_GROW(p->v, p->nr + 1, p->alloc);
		r = &p->v[p->nr++];
		r->name = xstrdup(name);
		r->peeled = NULL;
		r->was[0] = '\0';
	}
	memcpy(r->hex, hex, SGIT_HEXSZ + 1);
	free(r->peeled); /* a commit does not peel */
	r->peeled = NULL;
}

static void sort(struct packed *p)
{
	if (p->nr > p->sorted)
		qsort(p->v, p->nr, sizeof(*p->v), cmp_name);
	p->sorted = p->nr;
}

/* Check every move against the refs' values now. p is all of
 * packed-refs, and the moves are applied to it; or, merged (a streamed
 * rewrite), the updates only, the moves in them already, their values
 * before in was. */
static int apply(const char *gitdir, struct packed *p,
		 const struct sgit_ref_move *v, size_t n, int merged,
		 struct error *err)
{
	for (size_t i = 0; i < n; i++) {
		char now[SGIT_HEXSZ + 1], want[SGIT_HEXSZ + 1];
		const struct packed_ref *r = find(p, v[i].name);
		const char *packed = !r		 ? NULL
				     : !merged	 ? r->hex
				     : r->was[0] ? r->was
						 : NULL;
		int has = current(gitdir, v[i].name, packed, now);

		if (has < 0)
			return error_set(err, EXIT_ENV, "cannot read ref '%s'",
					 v[i].name);
		if (v[i].has_old)
			sgit_oid_hex(&v[i].old, want);
		if (has != v[i].has_old || (has && strcmp(now, want)))
			return error_set(err, EXIT_ENV,
					 "ref '%s' moved while pipe was "
					 "writing it; is another pipe running?",
					 v[i].name);
		sgit_oid_hex(&v[i].oid, want);
		if (!merged)
			put(p, v[i].name, want);
	}
	sort(p);
	return 0;
}

static int is_moved(const struct sgit_ref_move *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return 1;
	return 0;
}

/* Let go of the loose refs' locks fold_loose took (their names). */
static void unlock_folded(const char *gitdir, const struct strvec *folded)
{
	struct strbuf path = STRBUF_INIT;

	for (size_t i = 0; i < folded->nr; i++) {
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s.lock", gitdir, folded->v[i]);
		unlink(path.buf);
	}
	strbuf_release(&path);
}

/* The loose refs in the folders of the moved ones, into p (and their
 * names into folded, to remove once p is written): a move of one ref
 * leaves it loose (sgit_refs_move), and the next batch packs it. Each is
 * read under its lock (NAME.lock, as git and libgit2 take it), held until
 * unlock_folded: no one moves it between its read and its removal. A
 * loose ref someone else holds stays loose (it wins over its packed
 * value), unless it is one this batch moves: -1 then. */
static int fold_loose(const char *gitdir, struct packed *p,
		      const struct sgit_ref_move *v, size_t n,
		      struct strvec *folded, struct error *err)
{
	struct strvec dirs = STRVEC_INIT;
	struct strbuf path = STRBUF_INIT, sb = STRBUF_INIT;
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		const char *slash = strrchr(v[i].name, '/');
		size_t k = 0, len = slash ? (size_t)(slash - v[i].name) : 0;

		while (k < dirs.nr && (strlen(dirs.v[k]) != len ||
				       strncmp(dirs.v[k], v[i].name, len)))
			k++;
		if (len && k == dirs.nr)
			strvec_push_nodup(&dirs, xstrndup(v[i].name, len));
	}
	for (size_t k = 0; !ret && k < dirs.nr; k++) {
		DIR *d;
		struct dirent *de;

		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s", gitdir, dirs.v[k]);
		if (!(d = opendir(path.buf)))
			continue;
		while (!ret && (de = readdir(d))) {
			size_t dl = strlen(de->d_name);
			int fd;

			if (de->d_name[0] == '.' ||
			    (dl > 5 && !strcmp(de->d_name + dl - 5, ".lock")) ||
			    de->d_type == DT_DIR)
				continue;
			strbuf_reset(&path);
			strbuf_addf(&path, "%s/%s/%s.lock", gitdir, dirs.v[k],
				    de->d_name);
			fd = open(path.buf,
				  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				  0644);
			strbuf_setlen(&path, path.len - 5);
			if (fd < 0) {
				if (is_moved(v, n,
					     path.buf + strlen(gitdir) + 1))
					ret = error_set(
						err, EXIT_ENV,
						"ref '%s' is locked by another "
						"writer; is another pipe "
						"running?",
						path.buf + strlen(gitdir) + 1);
				continue; /* stays loose */
			}
			close(fd);
			strbuf_reset(&sb);
			if (strbuf_read_file(&sb, path.buf, 64) ||
			    sb.len < SGIT_HEXSZ || !is_hex40(sb.buf)) {
				strbuf_addstr(&path, ".lock");
				unlink(path.buf);
				continue; /* a folder, or not a plain ref */
			}
			sb.buf[SGIT_HEXSZ] = '\0';
			strbuf_reset(&path);
			strbuf_addf(&path, "%s/%s", dirs.v[k], de->d_name);
			put(p, path.buf, sb.buf);
			strvec_push(folded, path.buf);
		}
		closedir(d);
	}
	sort(p);
	strvec_clear(&dirs);
	strbuf_release(&path);
	strbuf_release(&sb);
	return ret;
}

static void add_ref(struct strbuf *w, const struct packed_ref *r)
{
	strbuf_addf(w, "%s %s\n", r->hex, r->name);
}

static void format(const struct packed *p, struct strbuf *out)
{
	strbuf_addstr(out, HEADER);
	for (size_t i = 0; i < p->nr; i++) {
		add_ref(out, &p->v[i]);
		if (p->v[i].peeled)
			strbuf_addf(out, "%s\n", p->v[i].peeled);
	}
}

/* The lock file fd, written, put in place as path. */
static int commit_lock(int fd, const char *lock, const char *path,
		       struct error *err)
{
	if (fsync(fd) || rename(lock, path))
		return error_set(err, EXIT_ENV, "cannot write '%s': %s", path,
				 strerror(errno));
	fs_fsync_parent(path);
	return 0;
}

/* Write buf to the lock file fd, then put it in place as path. */
static int write_locked(int fd, const char *lock, const char *path,
			const char *buf, size_t len, struct error *err)
{
	if (fs_write_all(fd, buf, len))
		return error_set(err, EXIT_ENV, "cannot write '%s': %s", path,
				 strerror(errno));
	return commit_lock(fd, lock, path, err);
}

/* Close the lock file fd; on failure, remove it. */
static void drop_lock(int fd, const char *lock, int failed)
{
	if (fd < 0)
		return;
	close(fd);
	if (failed)
		unlink(lock);
}

/* packed-refs opened into *fd (-1 when there is none) and, id not NULL,
 * its identity as opened into id (the file is replaced only by rename):
 * 0, or -1 (errno). */
static int open_packed(const char *path, int *fd, struct strbuf *id)
{
	struct stat st;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		if (errno != ENOENT)
			return -1;
		if (id)
			sgit_packed_identity(NULL, id);
		return 0;
	}
	if (id && fstat(*fd, &st)) {
		int saved = errno;

		close(*fd);
		*fd = -1;
		errno = saved;
		return -1;
	}
	if (id)
		sgit_packed_identity(&st, id);
	return 0;
}

/* name's line in packed-refs ("<hex> <name>"): 1 and hex filled, 0 when
 * packed-refs has none, -1 when unreadable. Found by its text, searched
 * in one buffer at a time (the end of one carried into the next), not by
 * parsing the N lines around it. */
static int packed_value(const char *gitdir, const char *name, char *hex)
{
	struct strbuf path = STRBUF_INIT, pat = STRBUF_INIT;
	size_t carry, keep = 0;
	off_t off = 0; /* of buf[keep] */
	char *buf = NULL;
	int fd = -1, ret = 0;

	strbuf_addf(&path, "%s/packed-refs", gitdir);
	strbuf_addf(&pat, " %s\n", name);
	carry = pat.len + SGIT_HEXSZ + 1; /* a match, its hex, the \n before */
	if (open_packed(path.buf, &fd, NULL))
		ret = -1;
	if (fd >= 0)
		buf = xmalloc(CHUNK + carry);
	while (fd >= 0 && !ret) { /* up to the name's first line */
		ssize_t got = pread(fd, buf + keep, CHUNK, off);
		size_t end = keep + (size_t)(got > 0 ? got : 0);
		const char *at, *line;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ret = -1;
			break;
		}
		for (const char *from = buf;
		     !ret && (at = memmem(from, end - (size_t)(from - buf),
					  pat.buf, pat.len));
		     from = at + 1) {
			line = at - SGIT_HEXSZ;
			/* a match in the carried bytes was seen before them */
			if (at + pat.len <= buf + keep || at < buf + SGIT_HEXSZ)
				continue;
			if ((line == buf ? off == (off_t)keep
					 : line[-1] == '\n') &&
			    is_hex40(line)) {
				memcpy(hex, line, SGIT_HEXSZ);
				hex[SGIT_HEXSZ] = '\0';
				ret = 1;
			}
		}
		if (!got)
			break;
		off += got;
		keep = end < carry ? end : carry;
		memmove(buf, buf + end - keep, keep);
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	strbuf_release(&path);
	strbuf_release(&pat);
	return ret;
}

/* One ref moved: its loose file written through NAME.lock, as git and
 * libgit2 write it, checked against its value now (the loose file, else
 * its packed-refs line). libgit2 would parse all N packed refs for it. */
static int move_one(const char *gitdir, const struct sgit_ref_move *m,
		    struct error *err)
{
	struct strbuf path = STRBUF_INIT, lock = STRBUF_INIT, sb = STRBUF_INIT;
	char hex[SGIT_HEXSZ + 1], want[SGIT_HEXSZ + 1];
	int fd = -1, ret = -1, rc;

	strbuf_addf(&path, "%s/%s", gitdir, m->name);
	strbuf_addf(&lock, "%s.lock", path.buf);
	if (fs_mkdir_parent(path.buf, 0755) ||
	    (fd = open(lock.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		       0644)) < 0) {
		error_set(err, EXIT_ENV, "cannot lock '%s': %s", lock.buf,
			  strerror(errno));
		goto out;
	}
	if (!strbuf_read_file(&sb, path.buf, 64))
		rc = sb.len == SGIT_HEXSZ + 1 && is_hex40(sb.buf) ? 1 : -1;
	else if (errno == ENOENT || errno == ENOTDIR)
		rc = packed_value(gitdir, m->name, hex);
	else
		rc = -1;
	if (rc == 1 && sb.len)
		memcpy(hex, sb.buf, SGIT_HEXSZ);
	hex[SGIT_HEXSZ] = '\0';
	if (m->has_old)
		sgit_oid_hex(&m->old, want);
	if (rc < 0) {
		error_set(err, EXIT_ENV, "cannot read ref '%s'", m->name);
		goto out;
	}
	if (rc != m->has_old || (rc && strcmp(hex, want))) {
		error_set(err, EXIT_ENV,
			  "ref '%s' moved while pipe was writing it; "
			  "is another pipe running?",
			  m->name);
		goto out;
	}
	sgit_oid_hex(&m->oid, hex);
	hex[SGIT_HEXSZ] = '\n';
	if (write_locked(fd, lock.buf, path.buf, hex, SGIT_HEXSZ + 1, err))
		goto out;
	ret = 0;
out:
	drop_lock(fd, lock.buf, ret);
	strbuf_release(&path);
	strbuf_release(&lock);
	strbuf_release(&sb);
	return ret;
}

void sgit_packed_identity(const struct stat *st, struct strbuf *out)
{
	strbuf_reset(out);
	if (!st) {
		strbuf_addstr(out, "none");
		return;
	}
	strbuf_addf(out, "%llu %lld.%09ld %lld.%09ld %llu %llu",
		    (unsigned long long)st->st_size,
		    (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		    (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec,
		    (unsigned long long)st->st_ino,
		    (unsigned long long)st->st_dev);
}

/* w written to fd when it holds a buffer's worth, or all of it: 0, or
 * -1 (errno). */
static int flush(int fd, struct strbuf *w, int all)
{
	if (!all && w->len < CHUNK)
		return 0;
	if (fs_write_all(fd, w->buf, w->len))
		return -1;
	strbuf_reset(w);
	return 0;
}

/* The new packed-refs into the lock file fd, streamed: l's lines (a
 * packed-refs checked sorted) as they are, upd's refs (sorted) merged
 * in, each in place of the line of the same name (its value before
 * noted in was) and of its peeled line, as put() does. The header is
 * git's, comments and blank lines go, as format() writes it. 0, -1 on a
 * read error, -2 on a write error (errno). */
static int merge(struct lines *l, int fd, struct packed *upd)
{
	struct strbuf w = STRBUF_INIT, peeled = STRBUF_INIT;
	size_t j = 0, len;
	char *line;
	int rc = 0, kept = 0, ret = 0;

	strbuf_addstr(&w, HEADER);
	while (!ret && (rc = lines_next(l, &line, &len)) > 0) {
		const char *name;

		if (*line == '#' || !*line)
			continue;
		if (*line == '^') { /* the last one stays, as in parse() */
			strbuf_reset(&peeled);
			if (kept)
				strbuf_addf(&peeled, "%s\n", line);
			continue;
		}
		name = line + SGIT_HEXSZ + 1;
		strbuf_add(&w, peeled.buf, peeled.len);
		strbuf_reset(&peeled);
		while (j < upd->nr && strcmp(upd->v[j].name, name) < 0)
			add_ref(&w, &upd->v[j++]);
		kept = j == upd->nr || strcmp(upd->v[j].name, name);
		if (kept) {
			strbuf_add(&w, line, len);
			strbuf_addch(&w, '\n');
		} else {
			memcpy(upd->v[j].was, line, SGIT_HEXSZ);
			upd->v[j].was[SGIT_HEXSZ] = '\0';
			add_ref(&w, &upd->v[j++]);
		}
		ret = flush(fd, &w, 0) ? -2 : 0;
	}
	if (!ret && rc < 0)
		ret = -1;
	strbuf_add(&w, peeled.buf, peeled.len);
	while (!ret && j < upd->nr)
		add_ref(&w, &upd->v[j++]);
	if (!ret && flush(fd, &w, 1))
		ret = -2;
	strbuf_release(&w);
	strbuf_release(&peeled);
	return ret;
}

/* A sorted packed-refs (l) rewritten into the lock file fd by merge():
 * the moves put into the updates (the folded loose refs), then checked
 * against the values the merge read. */
static int rewrite_merged(const char *gitdir, struct lines *l, int fd,
			  struct packed *upd, const struct sgit_ref_move *v,
			  size_t n, const char *path, struct error *err)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		char hex[SGIT_HEXSZ + 1];

		sgit_oid_hex(&v[i].oid, hex);
		put(upd, v[i].name, hex);
	}
	sort(upd);
	rc = merge(l, fd, upd);
	if (rc)
		return error_set(err, EXIT_ENV, "cannot %s '%s': %s",
				 rc == -1 ? "read" : "write", path,
				 strerror(errno));
	return apply(gitdir, upd, v, n, 1, err);
}

/* The same for a packed-refs (pfd) git did not write sorted: parsed,
 * sorted and written whole, as before the merge. */
static int rewrite_in_memory(const char *gitdir, int pfd, int fd,
			     const struct packed *upd,
			     const struct sgit_ref_move *v, size_t n,
			     const char *path, struct error *err)
{
	struct strbuf text = STRBUF_INIT;
	struct packed p = {NULL, 0, 0, 0};
	int ret = -1;

	if (pfd >= 0 && strbuf_read_fd(&text, pfd, (size_t)-1) < 0) {
		error_set(err, EXIT_ENV, "cannot read '%s': %s", path,
			  strerror(errno));
		goto out;
	}
	if (parse(text.buf, &p)) {
		error_set(err, EXIT_ENV, "'%s' is not a packed-refs file",
			  path);
		goto out;
	}
	sort(&p);
	for (size_t i = 0; i < upd->nr; i++)
		put(&p, upd->v[i].name, upd->v[i].hex);
	sort(&p);
	if (apply(gitdir, &p, v, n, 0, err))
		goto out;
	strbuf_reset(&text);
	format(&p, &text);
	if (fs_write_all(fd, text.buf, text.len)) {
		error_set(err, EXIT_ENV, "cannot write '%s': %s", path,
			  strerror(errno));
		goto out;
	}
	ret = 0;
out:
	packed_release(&p);
	strbuf_release(&text);
	return ret;
}

/* What a rewrite did, for rep: the identity before (id) and after, and
 * each ref written, moved or folded. */
static void report(struct sgit_packed_report *rep, const char *path,
		   const struct strbuf *id, struct packed *upd,
		   const struct strvec *folded, const struct sgit_ref_move *v,
		   size_t n)
{
	struct stat st;

	rep->rewritten = 1;
	strbuf_reset(&rep->before);
	strbuf_add(&rep->before, id->buf, id->len);
	sgit_packed_identity(stat(path, &st) ? NULL : &st, &rep->after);
	for (size_t i = 0; i < n; i++) {
		char hex[SGIT_HEXSZ + 1];

		sgit_oid_hex(&v[i].oid, hex);
		strvec_pushf(&rep->packed, "%s %s", v[i].name, hex);
	}
	for (size_t i = 0; i < folded->nr; i++) {
		const struct packed_ref *r = find(upd, folded->v[i]);

		if (r && !is_moved(v, n, folded->v[i]))
			strvec_pushf(&rep->packed, "%s %s", folded->v[i],
				     r->hex);
	}
}

/* The new packed-refs goes through packed-refs.lock, the lock git and
 * libgit2 take for it; then the updated refs' loose files go. The old
 * file is checked whole first (a pass of reads into one buffer): one git
 * would not read fails the batch before anything is written. */
int sgit_refs_move_report(struct sgit *g, const struct sgit_ref_move *v,
			  size_t n, struct sgit_packed_report *rep,
			  struct error *err)
{
	const char *gitdir = sgit_dir(g);
	struct strbuf path = STRBUF_INIT, lock = STRBUF_INIT, id = STRBUF_INIT;
	struct packed upd = {NULL, 0, 0, 0}; /* folded, then moved */
	struct strvec folded = STRVEC_INIT;
	struct lines l = {0};
	int fd = -1, pfd = -1, sorted = 0, ret = -1, rc = -2;

	if (rep) {
		rep->rewritten = 0;
		strvec_clear(&rep->packed);
	}
	if (!n)
		return 0;
	if (n == 1) /* one loose file, not all N refs rewritten */
		return move_one(gitdir, &v[0], err);
	strbuf_addf(&path, "%s/packed-refs", gitdir);
	strbuf_addf(&lock, "%s.lock", path.buf);
	fd = open(lock.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		error_set(err, EXIT_ENV, "cannot lock '%s': %s", lock.buf,
			  strerror(errno));
		goto out;
	}
	if (!open_packed(path.buf, &pfd, &id)) {
		lines_init(&l, pfd);
		rc = check(&l, &sorted);
	}
	if (rc == -1) {
		error_set(err, EXIT_ENV, "'%s' is not a packed-refs file",
			  path.buf);
		goto out;
	}
	if (rc) {
		error_set(err, EXIT_ENV, "cannot read '%s': %s", path.buf,
			  strerror(errno));
		goto out;
	}
	if (fold_loose(gitdir, &upd, v, n, &folded, err) ||
	    (sorted ? rewrite_merged(gitdir, &l, fd, &upd, v, n, path.buf, err)
		    : rewrite_in_memory(gitdir, pfd, fd, &upd, v, n, path.buf,
					err)) ||
	    commit_lock(fd, lock.buf, path.buf, err))
		goto out;
	if (rep)
		report(rep, path.buf, &id, &upd, &folded, v, n);
	/* the packed values are the ones now (the moved refs' loose files,
	 * if any, are among the folded: their folders were read) */
	for (size_t i = 0; i < folded.nr; i++) {
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s", gitdir, folded.v[i]);
		unlink(path.buf);
	}
	ret = 0;
out:
	drop_lock(fd, lock.buf, ret);
	if (pfd >= 0)
		close(pfd);
	lines_release(&l);
	unlock_folded(gitdir, &folded);
	packed_release(&upd);
	strvec_clear(&folded);
	strbuf_release(&path);
	strbuf_release(&lock);
	strbuf_release(&id);
	return ret;
}

int sgit_refs_move(struct sgit *g, const struct sgit_ref_move *v, size_t n,
		   struct error *err)
{
	return sgit_refs_move_report(g, v, n, NULL, err);
}

/* The loose refs below prefix, into loose (name, hex; a symbolic one, which
 * libgit2 skips, with "" for hex): 0, or -1 when one is not a ref pipe
 * writes (the caller asks libgit2 then). */
static int read_loose(const char *gitdir, const char *prefix,
		      struct packed *loose)
{
	struct strbuf path = STRBUF_INIT, sb = STRBUF_INIT;
	struct strvec names = STRVEC_INIT;
	int ret = 0;

	strbuf_addf(&path, "%s/%s", gitdir, prefix);
	if (fs_list_tree(path.buf, &names) && errno != ENOENT)
		ret = -1;
	for (size_t i = 0; !ret && i < names.nr; i++) {
		size_t len = strlen(names.v[i]);
		struct packed_ref *r;

		if (len > 5 && !strcmp(names.v[i] + len - 5, ".lock"))
			continue;
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s%s", gitdir, prefix, names.v[i]);
		strbuf_reset(&sb);
		if (strbuf_read_file(&sb, path.buf, 256) ||
		    (strncmp(sb.buf, "ref: ", 5) &&
		     (sb.len != SGIT_HEXSZ + 1 || !is_hex40(sb.buf) ||
		      sb.buf[SGIT_HEXSZ] != '\n'))) {
			ret = -1;
			break;
		}
		ALLOC_GROW(loose->v, loose->nr + 1, loose->alloc);
		r = &loose->v[loose->nr++];
		r->name = xstrfmt("%s%s", prefix, names.v[i]);
		r->peeled = NULL;
		memcpy(r->hex, sb.buf, SGIT_HEXSZ);
		r->hex[sb.buf[0] == 'r' ? 0 : SGIT_HEXSZ] = '\0';
	}
	strvec_clear(&names);
	strbuf_release(&path);
	strbuf_release(&sb);
	return ret;
}

/* Call fn for r unless it is symbolic; fn's value. */
static int list_one(const struct packed_ref *r, sgit_ref_fn fn, void *data)
{
	struct sgit_oid oid;

	if (!r->hex[0] || sgit_oid_parse(r->hex, &oid))
		return 0;
	return fn(r->name, &oid, data);
}

/* packed-refs read here, a line at a time, not through libgit2's
 * iterator (a reference object and a glob match per ref): 100,000 stage
 * refs are listed on each run. Anything unexpected goes to libgit2,
 * before any ref is listed: a first pass checks the whole file. */
int sgit_refs_list(struct sgit *g, const char *prefix, sgit_ref_fn fn,
		   void *data, struct error *err)
{
	const char *gitdir = sgit_dir(g);
	struct strbuf path = STRBUF_INIT;
	struct packed loose = {NULL, 0, 0, 0};
	struct strmap seen = {0};
	struct lines l = {0};
	size_t plen = strlen(prefix), len;
	char *line;
	int fd = -1, sorted, ret = 0, rc = 0, bad;

	strbuf_addf(&path, "%s/packed-refs", gitdir);
	bad = open_packed(path.buf, &fd, NULL);
	lines_init(&l, fd);
	if (bad || check(&l, &sorted) || read_loose(gitdir, prefix, &loose)) {
		strbuf_reset(&path); /* not ours to read: libgit2's */
		strbuf_addf(&path, "%s*", prefix);
		ret = sgit_ref_foreach(g, path.buf, fn, data, err);
		goto out;
	}
	strmap_init(&seen, loose.nr);
	for (size_t i = 0; !ret && i < loose.nr; i++) {
		strmap_put(&seen, loose.v[i].name, &loose.v[i]);
		ret = list_one(&loose.v[i], fn, data);
	}
	while (!ret && (rc = lines_next(&l, &line, &len)) > 0) {
		struct packed_ref r = {line, "", NULL, ""};

		if (*line == '#' || *line == '^' || !*line)
			continue;
		r.name += SGIT_HEXSZ + 1;
		if (strncmp(r.name, prefix, plen) || strmap_get(&seen, r.name))
			continue;
		memcpy(r.hex, line, SGIT_HEXSZ);
		ret = list_one(&r, fn, data);
	}
	if (!ret && rc < 0)
		ret = error_set(err, EXIT_ENV, "cannot read '%s': %s", path.buf,
				strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	lines_release(&l);
	strmap_release(&seen);
	packed_release(&loose);
	strbuf_release(&path);
	return ret;
}
