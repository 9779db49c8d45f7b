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
 * packed-refs. */
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
	char *peeled; /* the "^<hex>" line of a tag, or NULL */
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

/* Parse text (packed-refs as read); -1 on anything git would not write. */
static int parse(char *text, struct packed *p)
{
	for (char *line = text; *line;) {
		char *nl = strchrnul(line, '\n'), *next = *nl ? nl + 1 : nl;

		*nl = '\0';
		if (*line == '#' || !*line) {
			line = next;
			continue;
		}
		if (*line == '^') {
			if (!p->nr || !is_hex40(line + 1))
				return -1;
			free(p->v[p->nr - 1].peeled);
			p->v[p->nr - 1].peeled = xstrdup(line);
		} else {
			if (!is_hex40(line) || line[SGIT_HEXSZ] != ' ')
				return -1;
			ALLOC_GROW(p->v, p->nr + 1, p->alloc);
			memcpy(p->v[p->nr].hex, line, SGIT_HEXSZ);
			p->v[p->nr].hex[SGIT_HEXSZ] = '\0';
			p->v[p->nr].name = xstrdup(line + SGIT_HEXSZ + 1);
			p->v[p->nr].peeled = NULL;
			p->nr++;
		}
		line = next;
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct packed_ref *)a)->name,
		      ((const struct packed_ref *)b)->name);
}

static struct packed_ref *find(struct packed *p, const char *name)
{
	struct packed_ref key = {(char *)name, "", NULL};

	return p->sorted
		       ? bsearch(&key, p->v, p->sorted, sizeof(*p->v), cmp_name)
		       : NULL;
}

/* The ref's value now: its loose file when there is one, else packed. 1
 * and hex filled, 0 when it does not exist, -1 when unreadable. */
static int current(const char *gitdir, struct packed *p, const char *name,
		   char *hex)
{
	struct strbuf path = STRBUF_INIT, sb = STRBUF_INIT;
	struct packed_ref *r;
	int ret;

	strbuf_addf(&path, "%s/%s", gitdir, name);
	if (!strbuf_read_file(&sb, path.buf, 64)) {
		ret = is_hex40(sb.buf) ? 1 : -1;
		if (ret == 1)
			memcpy(hex, sb.buf, SGIT_HEXSZ + 1);
		hex[SGIT_HEXSZ] = '\0';
	} else if (errno == ENOENT || errno == ENOTDIR) {
		r = find(p, name);
		ret = r ? 1 : 0;
		if (r)
			memcpy(hex, r->hex, SGIT_HEXSZ + 1);
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
	}
	memcpy(r->hex, hex, SGIT_HEXSZ + 1);
	free(r->peeled); /* a commit does not peel */
	r->peeled = NULL;
}

/* Check every move against the refs' values now and apply it to p. */
static int apply(const char *gitdir, struct packed *p,
		 const struct sgit_ref_move *v, size_t n, struct error *err)
{
	for (size_t i = 0; i < n; i++) {
		char now[SGIT_HEXSZ + 1], want[SGIT_HEXSZ + 1];
		int has = current(gitdir, p, v[i].name, now);

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
		put(p, v[i].name, want);
	}
	if (p->nr > p->sorted)
		qsort(p->v, p->nr, sizeof(*p->v), cmp_name);
	p->sorted = p->nr;
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
	if (p->nr > p->sorted)
		qsort(p->v, p->nr, sizeof(*p->v), cmp_name);
	p->sorted = p->nr;
	strvec_clear(&dirs);
	strbuf_release(&path);
	strbuf_release(&sb);
	return ret;
}

static void format(const struct packed *p, struct strbuf *out)
{
	strbuf_addstr(out, HEADER);
	for (size_t i = 0; i < p->nr; i++) {
		strbuf_addf(out, "%s %s\n", p->v[i].hex, p->v[i].name);
		if (p->v[i].peeled)
			strbuf_addf(out, "%s\n", p->v[i].peeled);
	}
}

/* Write buf to the lock file fd, then put it in place as path. */
static int write_locked(int fd, const char *lock, const char *path,
			const char *buf, size_t len, struct error *err)
{
	if (fs_write_all(fd, buf, len) || fsync(fd) || rename(lock, path))
		return error_set(err, EXIT_ENV, "cannot write '%s': %s", path,
				 strerror(errno));
	fs_fsync_parent(path);
	return 0;
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

/* name's line in packed-refs ("<hex> <name>"): 1 and hex filled, 0 when
 * packed-refs has none, -1 when unreadable. Found by its text, not by
 * parsing the N lines around it. */
static int packed_value(const char *gitdir, const char *name, char *hex)
{
	struct strbuf path = STRBUF_INIT, text = STRBUF_INIT, pat = STRBUF_INIT;
	const char *at = NULL, *from;
	int ret = 0;

	strbuf_addf(&path, "%s/packed-refs", gitdir);
	strbuf_addf(&pat, " %s\n", name);
	if (strbuf_read_file(&text, path.buf, 0))
		ret = errno == ENOENT ? 0 : -1;
	for (from = text.buf;
	     !ret && (at = memmem(from, text.len - (size_t)(from - text.buf),
				  pat.buf, pat.len));
	     from = at + 1) {
		size_t off = (size_t)(at - text.buf);
		const char *line =
			text.buf + (off >= SGIT_HEXSZ ? off - SGIT_HEXSZ : 0);

		if (off >= SGIT_HEXSZ &&
		    (line == text.buf || line[-1] == '\n') && is_hex40(line)) {
			memcpy(hex, line, SGIT_HEXSZ);
			hex[SGIT_HEXSZ] = '\0';
			ret = 1;
		}
	}
	strbuf_release(&path);
	strbuf_release(&text);
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

/* path read into text and its identity into id (as read: the file is
 * replaced only by rename); a missing file is empty. 0, or -1 (errno). */
static int read_packed(const char *path, struct strbuf *text, struct strbuf *id)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		if (errno != ENOENT)
			return -1;
		sgit_packed_identity(NULL, id);
		return 0;
	}
	ret = fstat(fd, &st) || strbuf_read_fd(text, fd, (size_t)-1) < 0;
	if (!ret)
		sgit_packed_identity(&st, id);
	close(fd);
	return ret ? -1 : 0;
}

/* The new packed-refs goes through packed-refs.lock, the lock git and
 * libgit2 take for it; then the updated refs' loose files go. */
int sgit_refs_move_report(struct sgit *g, const struct sgit_ref_move *v,
			  size_t n, struct sgit_packed_report *rep,
			  struct error *err)
{
	const char *gitdir = sgit_dir(g);
	struct strbuf path = STRBUF_INIT, lock = STRBUF_INIT,
		      text = STRBUF_INIT, id = STRBUF_INIT;
	struct packed p = {NULL, 0, 0, 0};
	struct strvec folded = STRVEC_INIT;
	struct stat st;
	int fd = -1, ret = -1;

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
	if (read_packed(path.buf, &text, &id)) {
		error_set(err, EXIT_ENV, "cannot read '%s': %s", path.buf,
			  strerror(errno));
		goto out;
	}
	if (parse(text.buf, &p)) {
		error_set(err, EXIT_ENV, "'%s' is not a packed-refs file",
			  path.buf);
		goto out;
	}
	if (p.nr > 1)
		qsort(p.v, p.nr, sizeof(*p.v), cmp_name);
	p.sorted = p.nr;
	if (fold_loose(gitdir, &p, v, n, &folded, err) ||
	    apply(gitdir, &p, v, n, err))
		goto out;
	strbuf_reset(&text);
	format(&p, &text);
	if (write_locked(fd, lock.buf, path.buf, text.buf, text.len, err))
		goto out;
	if (rep) {
		rep->rewritten = 1;
		strbuf_reset(&rep->before);
		strbuf_add(&rep->before, id.buf, id.len);
		sgit_packed_identity(stat(path.buf, &st) ? NULL : &st,
				     &rep->after);
		for (size_t i = 0; i < n; i++) {
			char hex[SGIT_HEXSZ + 1];

			sgit_oid_hex(&v[i].oid, hex);
			strvec_pushf(&rep->packed, "%s %s", v[i].name, hex);
		}
		for (size_t i = 0; i < folded.nr; i++) {
			const struct packed_ref *r = find(&p, folded.v[i]);

			if (r && !is_moved(v, n, folded.v[i]))
				strvec_pushf(&rep->packed, "%s %s", folded.v[i],
					     r->hex);
		}
	}
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
	unlock_folded(gitdir, &folded);
	packed_release(&p);
	strvec_clear(&folded);
	strbuf_release(&path);
	strbuf_release(&lock);
	strbuf_release(&text);
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

/* packed-refs read by its parser here, not through libgit2's iterator
 * (a reference object and a glob match per ref): 100,000 stage refs are
 * listed on each run. Anything unexpected goes to libgit2. */
int sgit_refs_list(struct sgit *g, const char *prefix, sgit_ref_fn fn,
		   void *data, struct error *err)
{
	const char *gitdir = sgit_dir(g);
	struct strbuf path = STRBUF_INIT, text = STRBUF_INIT;
	struct packed p = {NULL, 0, 0, 0}, loose = {NULL, 0, 0, 0};
	struct strmap seen = {0};
	size_t plen = strlen(prefix);
	int ret = 0;

	strbuf_addf(&path, "%s/packed-refs", gitdir);
	if ((strbuf_read_file(&text, path.buf, 0) && errno != ENOENT) ||
	    parse(text.buf, &p) || read_loose(gitdir, prefix, &loose)) {
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
	for (size_t i = 0; !ret && i < p.nr; i++)
		if (!strncmp(p.v[i].name, prefix, plen) &&
		    !strmap_get(&seen, p.v[i].name))
			ret = list_one(&p.v[i], fn, data);
out:
	strmap_release(&seen);
	packed_release(&p);
	packed_release(&loose);
	strbuf_release(&path);
	strbuf_release(&text);
	return ret;
}
