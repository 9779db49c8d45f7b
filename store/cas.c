/* Large files at copy speed: a content-addressed area filled by reflink or
 * in-kernel copy, hashed with XXH3-128 from the private copy. */
#include "store/cas.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Copy this much per copy_file_range call, then hash it back from the page
 * cache and start its writeback, so the final fsync has little left. */
#define COPY_CHUNK (8u << 20)
#define READ_BUF (1u << 20)
/* Files this large are hashed by a second thread while they are copied;
 * below it, starting a thread costs more than it saves. */
#define THREAD_MIN (64ull << 20)

char *cas_path(const char *cas_dir, const char *hex)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/%.2s/%s", cas_dir, hex, hex + 2);
	return strbuf_detach(&sb, NULL);
}

static int io_fail(struct error *err, const char *what, const char *path)
{
	return error_set(err, EXIT_ENV, "cannot %s '%s': %s", what, path,
			 strerror(errno));
}

static int is_hex(const char *s, size_t n);

/* Hash len bytes of fd from off. */
static int hash_range(int fd, off_t off, size_t len, struct hasher *h,
		      char *buf)
{
	while (len) {
		ssize_t n =
			pread(fd, buf, len < READ_BUF ? len : READ_BUF, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		hasher_add(h, buf, (size_t)n);
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Plain read/write copy, hashing each block as written; out may be a pipe
 * or a file opened for appending. */
static int copy_rw(int in, int out, off_t off, struct hasher *h, char *buf,
		   unsigned long long *size)
{
	for (;;) {
		ssize_t n = pread(in, buf, READ_BUF, off), w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (!n)
			break;
		while (w < n) {
			ssize_t m = write(out, buf + w, (size_t)(n - w));

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return -1;
			w += m;
		}
		if (h)
			hasher_add(h, buf, (size_t)n);
		off += n;
	}
	*size = (unsigned long long)off;
	return 0;
}

static int no_cfr(int e)
{
	return e == EXDEV || e == ENOSYS || e == EINVAL || e == EOPNOTSUPP ||
	       e == EBADF;
}

/* A thread hashing the copy right behind the copier, so that hashing the
 * copy costs no extra time on a machine with two cores. */
struct behind {
	int fd;
	struct hasher *h;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	off_t ready; /* bytes copied so far */
	int done;    /* the copier stopped */
	int failed;  /* a read of the copy failed */
};

static void *hash_behind(void *arg)
{
	struct behind *b = arg;
	char *buf = xmalloc(READ_BUF);
	off_t off = 0;

	for (;;) {
		off_t ready;
		int done;

		pthread_mutex_lock(&b->mu);
		while (off == b->ready && !b->done)
			pthread_cond_wait(&b->cv, &b->mu);
		ready = b->ready;
		done = b->done;
		pthread_mutex_unlock(&b->mu);
		if (off < ready) {
			if (hash_range(b->fd, off, (size_t)(ready - off), b->h,
				       buf)) {
				b->failed = 1;
				break;
			}
			off = ready;
		} else if (done) {
			break;
		}
	}
	free(buf);
	return NULL;
}

static void behind_update(struct behind *b, off_t ready, int done)
{
	pthread_mutex_lock(&b->mu);
	b->ready = ready;
	b->done = done;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* copy_file_range in chunks, each hashed (by the helper thread when there
 * is one) and its writeback started. Returns 0, -1, or 1 when
 * copy_file_range cannot copy between these files at all. */
static int copy_range(int in, int out, struct hasher *h, int writeback,
		      unsigned long long *size)
{
	struct behind b = {
		out, h, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
		0,   0};
	struct stat st;
	pthread_t tid;
	int threaded = h && !fstat(in, &st) &&
		       (unsigned long long)st.st_size >= THREAD_MIN &&
		       !pthread_create(&tid, NULL, hash_behind, &b);
	char *buf = h && !threaded ? xmalloc(READ_BUF) : NULL;
	off_t off = 0;
	int ret = -1;

	for (;;) {
		ssize_t n = copy_file_range(in, &off, out, NULL, COPY_CHUNK, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = !n ? 0 : off == 0 && no_cfr(errno) ? 1 : -1;
			break;
		}
		if (threaded)
			behind_update(&b, off, 0);
		else if (h && hash_range(out, off - n, (size_t)n, h, buf))
			break;
		if (writeback)
			sync_file_range(out, off - n, n, SYNC_FILE_RANGE_WRITE);
	}
	if (threaded) {
		int saved = errno;

		behind_update(&b, off, 1);
		pthread_join(tid, NULL);
		if (b.failed && !ret)
			ret = -1;
		errno = saved;
	}
	free(buf);
	*size = (unsigned long long)off;
	return ret;
}

/* Copy in to the empty file out; when h is set, hash what lands in out.
 * Reflink first, then copy_file_range, then read/write. */
static int copy_file(int in, int out, struct hasher *h, int clone,
		     int writeback, unsigned long long *size)
{
	char *buf = NULL;
	struct stat st;
	int rc;

	if (clone && !ioctl(out, FICLONE, in)) {
		if (fstat(out, &st))
			return -1;
		*size = (unsigned long long)st.st_size;
		if (!h)
			return 0;
		buf = xmalloc(READ_BUF);
		rc = hash_range(out, 0, (size_t)st.st_size, h, buf);
		free(buf);
		return rc;
	}
	rc = copy_range(in, out, h, writeback, size);
	if (rc == 1) {
		buf = xmalloc(READ_BUF);
		rc = copy_rw(in, out, 0, h, buf, size);
		free(buf);
	}
	return rc;
}

/* Note that dir's entries changed (once). */
static void note_dir(struct strvec *dirs, const char *dir)
{
	for (size_t i = 0; i < dirs->nr; i++)
		if (!strcmp(dirs->v[i], dir))
			return;
	strvec_push(dirs, dir);
}

/* mkdir; a new folder changes its parent's entries. */
static int make_dir(const char *path, struct strvec *dirs)
{
	const char *slash = strrchr(path, '/');
	char *parent;

	if (mkdir(path, 0755))
		return errno == EEXIST ? 0 : -1;
	parent = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
	note_dir(dirs, parent);
	free(parent);
	return 0;
}

static char *temp_name(const char *cas_dir)
{
	static unsigned counter;
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/tmp-%ld-%u", cas_dir, (long)getpid(), counter++);
	return strbuf_detach(&sb, NULL);
}

/* An object of p's name and size is there already. */
static int have(const char *cas_dir, const struct cas_pending *p)
{
	char *dst = cas_path(cas_dir, p->hex);
	struct stat st;
	int rc = !lstat(dst, &st) && S_ISREG(st.st_mode) &&
		 (unsigned long long)st.st_size == p->size;

	free(dst);
	return rc;
}

/* Give the fsynced temp file its content name, unless an object of that
 * size is there already (it is never rewritten). */
static int publish(struct cas_batch *b, const struct cas_pending *p,
		   struct error *err)
{
	char *dst = cas_path(b->cas_dir, p->hex);
	char *dir = xstrndup(dst, strlen(b->cas_dir) + 3);
	int ret = -1;

	if (have(b->cas_dir, p)) {
		unlink(p->tmp);
		ret = 0;
		goto out;
	}
	if (make_dir(dir, &b->dirs)) {
		io_fail(err, "create", dir);
		goto out;
	}
	if (rename(p->tmp, dst)) {
		io_fail(err, "rename into", dst);
		goto out;
	}
	note_dir(&b->dirs, dir);
	ret = 0;
out:
	free(dir);
	free(dst);
	return ret;
}

void cas_batch_init(struct cas_batch *b, const char *cas_dir)
{
	memset(b, 0, sizeof(*b));
	b->cas_dir = cas_dir;
	strvec_init(&b->dirs);
}

void cas_batch_release(struct cas_batch *b)
{
	for (size_t i = 0; i < b->nr; i++) {
		unlink(b->v[i].tmp); /* fails once published */
		free(b->v[i].tmp);
	}
	free(b->v);
	strvec_clear(&b->dirs);
	cas_batch_init(b, b->cas_dir);
}

int cas_add(struct cas_batch *b, const char *src, char *hex,
	    unsigned long long *size, struct error *err)
{
	char *tmp = temp_name(b->cas_dir);
	struct hasher *h = hasher_new();
	struct hash128 sum;
	int in = -1, out = -1, ret = -1;

	if ((in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		io_fail(err, "open", src);
		goto out;
	}
	if (make_dir(b->cas_dir, &b->dirs) ||
	    (out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0444)) <
		    0) {
		io_fail(err, "create", tmp);
		goto out;
	}
	if (copy_file(in, out, h, 1, 0, size)) {
		io_fail(err, "copy into the store", src);
		goto out;
	}
	hasher_final(h, &sum);
	hash_to_hex(&sum, hex);
	ALLOC_GROW(b->v, b->nr + 1, b->alloc);
	b->v[b->nr].tmp = tmp;
	memcpy(b->v[b->nr].hex, hex, sizeof(b->v[b->nr].hex));
	b->v[b->nr++].size = *size;
	tmp = NULL;
	ret = 0;
out:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	if (tmp)
		unlink(tmp);
	hasher_free(h);
	free(tmp);
	return ret;
}

int cas_adopt(struct cas_batch *b, const char *src, char *hex,
	      unsigned long long *size, struct error *err)
{
	struct hasher *h;
	struct hash128 sum;
	struct stat st, dir;
	char *buf;
	int in, ret = -1;

	if ((in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return io_fail(err, "open", src);
	if (fstat(in, &st) || !S_ISREG(st.st_mode)) {
		close(in);
		return io_fail(err, "read", src);
	}
	if (make_dir(b->cas_dir, &b->dirs) || stat(b->cas_dir, &dir) ||
	    dir.st_dev != st.st_dev) {
		close(in); /* another file system: a rename cannot take it */
		return cas_add(b, src, hex, size, err);
	}
	h = hasher_new();
	buf = xmalloc(READ_BUF);
	if (hash_range(in, 0, (size_t)st.st_size, h, buf) || fchmod(in, 0444)) {
		io_fail(err, "read", src);
		goto out;
	}
	hasher_final(h, &sum);
	hash_to_hex(&sum, hex);
	*size = (unsigned long long)st.st_size;
	ALLOC_GROW(b->v, b->nr + 1, b->alloc);
	b->v[b->nr].tmp = xstrdup(src);
	memcpy(b->v[b->nr].hex, hex, sizeof(b->v[b->nr].hex));
	b->v[b->nr++].size = *size;
	ret = 0;
out:
	free(buf);
	hasher_free(h);
	close(in);
	return ret;
}

static int fsync_path(const char *path, int flags, struct error *err)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0 || fsync(fd)) {
		io_fail(err, "fsync", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* -------- durability: written behind, known before it matters --------
 *
 * Waiting for 1 GiB to reach the disk would double a commit (cp does not
 * wait either). So a commit names its new objects at once, with their
 * writeback already started while copying, and lists them in UNSYNCED
 * (fsynced: a few bytes) with the id of the running kernel. The next
 * writer settles the list (cas_settle): on the same boot nothing was lost,
 * and an fsync of data long written back costs nothing; after a reboot,
 * each listed object is re-hashed and removed when a power cut took its
 * content, so that a stage needing it runs again instead of restoring
 * garbage. */
#define UNSYNCED "unsynced"
#define BOOT_ID "/proc/sys/kernel/random/boot_id"

static void boot_id(struct strbuf *out)
{
	strbuf_reset(out);
	if (strbuf_read_file(out, BOOT_ID, 64))
		strbuf_reset(out);
	strbuf_trim_trailing_newline(out);
	if (!out->len)
		strbuf_addstr(out, "unknown");
}

static int note_unsynced(struct cas_batch *b, struct error *err)
{
	struct strbuf line = STRBUF_INIT, boot = STRBUF_INIT;
	char *path = xstrfmt("%s/" UNSYNCED, b->cas_dir);
	int fd, ret = -1;

	boot_id(&boot);
	for (size_t i = 0; i < b->nr; i++)
		strbuf_addf(&line, "%s %s %llu\n", boot.buf, b->v[i].hex,
			    b->v[i].size);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || fs_write_all(fd, line.buf, line.len) || fsync(fd))
		io_fail(err, "write", path);
	else
		ret = 0;
	if (fd >= 0)
		close(fd);
	free(path);
	strbuf_release(&line);
	strbuf_release(&boot);
	return ret;
}

/* Names first (the data's writeback was started while copying), then the
 * list of what is not known to be on disk yet, then the folders. */
int cas_commit(struct cas_batch *b, struct error *err)
{
	if (!b->nr)
		return 0;
	for (size_t i = 0; i < b->nr; i++)
		if (publish(b, &b->v[i], err))
			return -1;
	if (note_unsynced(b, err))
		return -1;
	for (size_t i = 0; i < b->dirs.nr; i++)
		if (fsync_path(b->dirs.v[i], O_RDONLY | O_DIRECTORY, err))
			return -1;
	return 0;
}

/* An object written less than this long ago is left listed, not fsynced:
 * the kernel writes dirty data back after 30 s by itself, and forcing it
 * sooner made the writer after a 1 GiB pull wait for the disk (1.5 s);
 * listed, it is still re-hashed after a reboot. */
#define SETTLE_AGE_S 35

/* One line of UNSYNCED: "BOOT HEX SIZE". 1: still to be kept listed. */
static int settle_one(const char *cas_dir, const char *line, const char *boot,
		      time_t now, struct error *err)
{
	char id[64], hex[HASH_HEX_LEN + 2];
	unsigned long long size;
	struct stat st;
	char *path;
	int ret = 0;

	if (sscanf(line, "%63s %33s %llu", id, hex, &size) != 3 ||
	    !is_hex(hex, HASH_HEX_LEN))
		return 0; /* a torn last line: its commit never happened */
	path = cas_path(cas_dir, hex);
	if (lstat(path, &st)) {
		free(path);
		return 0; /* collected since */
	}
	if (!strcmp(id, boot)) {
		if (st.st_mtime > now - SETTLE_AGE_S && st.st_mtime <= now)
			ret = 1; /* being written back: later */
		else
			ret = fsync_path(path, O_RDONLY, err);
	} else {
		struct error bad = ERROR_INIT;

		if (cas_verify(cas_dir, hex, size, &bad)) {
			log_warn("%s; removed: stages that made it will run "
				 "again",
				 bad.msg.buf);
			if (unlink(path) && errno != ENOENT)
				ret = io_fail(err, "remove", path);
		}
		error_release(&bad);
	}
	free(path);
	return ret;
}

int cas_settle(const char *cas_dir, struct error *err)
{
	struct strbuf list = STRBUF_INIT, boot = STRBUF_INIT;
	struct strbuf keep = STRBUF_INIT;
	char *path = xstrfmt("%s/" UNSYNCED, cas_dir);
	time_t now = time(NULL);
	size_t dropped = 0;
	int ret = 0;

	if (strbuf_read_file(&list, path, 0)) {
		if (errno != ENOENT)
			ret = io_fail(err, "read", path);
		goto out;
	}
	boot_id(&boot);
	for (char *p = list.buf; *p && ret >= 0;) {
		char *nl = strchrnul(p, '\n');
		int last = !*nl;

		*nl = '\0';
		ret = settle_one(cas_dir, p, boot.buf, now, err);
		if (ret == 1) {
			strbuf_addf(&keep, "%s\n", p);
			ret = 0;
		} else {
			dropped++;
		}
		p = last ? nl : nl + 1;
	}
	if (ret)
		goto out;
	if (keep.len) {
		if (dropped)
			ret = fs_write_atomic(path, keep.buf, keep.len, err);
	} else if (unlink(path) && errno != ENOENT) {
		ret = io_fail(err, "remove", path);
	}
out:
	free(path);
	strbuf_release(&list);
	strbuf_release(&keep);
	strbuf_release(&boot);
	return ret;
}

int cas_copy_out(const char *cas_dir, const char *hex, int out_fd, int clone,
		 struct error *err)
{
	char *path = cas_path(cas_dir, hex);
	unsigned long long size;
	int in, ret = 0;

	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		ret = error_set(
			err, EXIT_FAILED,
			"cannot open '%s' in the store: %s (run "
			"'pipe gc' with care; the store may be damaged)",
			path, strerror(errno));
		goto out;
	}
	if (copy_file(in, out_fd, NULL, clone, 0, &size))
		ret = io_fail(err, "copy out of the store", path);
	close(in);
out:
	free(path);
	return ret;
}

int cas_verify(const char *cas_dir, const char *hex, unsigned long long size,
	       struct error *err)
{
	char *path = cas_path(cas_dir, hex);
	struct hash128 sum;
	unsigned long long got = 0;
	char got_hex[HASH_HEX_LEN + 1];
	int ret = -1;

	if (hash_file(path, &sum, &got, err))
		goto out;
	hash_to_hex(&sum, got_hex);
	if (got != size || strcmp(got_hex, hex))
		error_set(err, EXIT_FAILED,
			  "store file '%s' is corrupt: %llu bytes hashing to "
			  "%s, want %llu bytes hashing to %s",
			  path, got, got_hex, size, hex);
	else
		ret = 0;
out:
	free(path);
	return ret;
}

static int is_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static int foreach_in(const char *dir, const char *prefix, cas_fn fn,
		      void *data)
{
	struct strbuf path = STRBUF_INIT;
	DIR *d = opendir(dir);
	struct dirent *de;
	int ret = 0;

	if (!d)
		return 0;
	while (!ret && (de = readdir(d))) {
		char hex[HASH_HEX_LEN + 1];
		struct stat st;

		if (!is_hex(de->d_name, HASH_HEX_LEN - 2))
			continue;
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s", dir, de->d_name);
		memcpy(hex, prefix, 2);
		memcpy(hex + 2, de->d_name, HASH_HEX_LEN - 1);
		if (!lstat(path.buf, &st))
			ret = fn(hex, path.buf, (unsigned long long)st.st_size,
				 data);
	}
	closedir(d);
	strbuf_release(&path);
	return ret;
}

int cas_foreach(const char *cas_dir, cas_fn fn, void *data, struct error *err)
{
	struct strbuf path = STRBUF_INIT;
	DIR *d = opendir(cas_dir);
	struct dirent *de;
	int ret = 0;

	if (!d)
		return errno == ENOENT ? 0 : io_fail(err, "list", cas_dir);
	while (!ret && (de = readdir(d))) {
		struct stat st;

		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s", cas_dir, de->d_name);
		if (is_hex(de->d_name, 2))
			ret = foreach_in(path.buf, de->d_name, fn, data);
		else if (!strncmp(de->d_name, "tmp-", 4) &&
			 !lstat(path.buf, &st))
			ret = fn(NULL, path.buf, (unsigned long long)st.st_size,
				 data);
	}
	closedir(d);
	strbuf_release(&path);
	return ret;
}
