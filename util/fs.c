/* Filesystem helpers. Metadata is written temp + fsync + rename + fsync of
 * the folder, so a crash leaves the old or the new file, never half. */
#include "util/fs.h"
#include "util/error.h"
#include "util/strbuf.h"
#include "util/path.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? xstrndup(path, (size_t)(slash - path) + 1)
			  : xstrdup(".");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = -1;

	if (fd >= 0) {
		ret = fsync(fd);
		close(fd);
	}
	free(dir);
	return ret;
}

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN || poll(&pf, 1, -1) < 0)
				return -1;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_replace_open(struct fs_replace *r, const char *path, int sync,
		    struct error *err)
{
	r->path = path;
	r->sync = sync;
	r->error = 0;
	r->tmp = xstrfmt("%s.tmp.%ld", path, (long)getpid());
	r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (r->fd >= 0)
		return 0;
	error_set(err, EXIT_ENV, "cannot create '%s': %s", r->tmp,
		  strerror(errno));
	free(r->tmp);
	r->tmp = NULL;
	return -1;
}

void fs_replace_write(struct fs_replace *r, const void *data, size_t len)
{
	if (!r->error && fs_write_all(r->fd, data, len))
		r->error = errno;
}

void fs_replace_abort(struct fs_replace *r)
{
	if (!r->tmp)
		return;
	if (r->fd >= 0)
		close(r->fd);
	unlink(r->tmp);
	free(r->tmp);
	r->tmp = NULL;
	r->fd = -1;
}

int fs_replace_commit(struct fs_replace *r, struct error *err)
{
	if (!r->error && r->sync && fsync(r->fd))
		r->error = errno;
	if (r->error) {
		error_set(err, EXIT_ENV, "cannot write '%s': %s", r->tmp,
			  strerror(r->error));
		fs_replace_abort(r);
		return -1;
	}
	close(r->fd);
	r->fd = -1;
	if (rename(r->tmp, r->path)) {
		error_set(err, EXIT_ENV, "cannot rename '%s' to '%s': %s",
			  r->tmp, r->path, strerror(errno));
		fs_replace_abort(r);
		return -1;
	}
	if (r->sync)
		fs_fsync_parent(r->path);
	free(r->tmp);
	r->tmp = NULL;
	return 0;
}

static int write_renamed(const char *path, const void *data, size_t len,
			 int sync, struct error *err)
{
	struct fs_replace r;

	if (fs_replace_open(&r, path, sync, err))
		return -1;
	fs_replace_write(&r, data, len);
	return fs_replace_commit(&r, err);
}

int fs_write_atomic(const char *path, const void *data, size_t len,
		    struct error *err)
{
	return write_renamed(path, data, len, 1, err);
}

int fs_write_replace(const char *path, const void *data, size_t len,
		     struct error *err)
{
	return write_renamed(path, data, len, 0, err);
}

int fs_mkdir_p(const char *path, mode_t mode)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = path;
	int ret = 0;

	while (*p) {
		const char *e = strchr(p + (*p == '/'), '/');
		size_t n = e ? (size_t)(e - path) : strlen(path);

		strbuf_reset(&sb);
		strbuf_add(&sb, path, n);
		if (sb.len && mkdir(sb.buf, mode) && errno != EEXIST) {
			ret = -1;
			break;
		}
		if (!e)
			break;
		p = e + 1;
	}
	if (!ret) {
		struct stat st;

		if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
			if (!errno)
				errno = ENOTDIR;
			ret = -1;
		}
	}
	strbuf_release(&sb);
	return ret;
}

int fs_mkdir_parent(const char *path, mode_t mode)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int ret;

	if (!slash || slash == path)
		return 0;
	dir = xstrndup(path, (size_t)(slash - path));
	ret = fs_mkdir_p(dir, mode);
	free(dir);
	return ret;
}

int fs_remove_tree(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int ret = 0;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char *child;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		child = path_join(path, de->d_name);
		if (fs_remove_tree(child))
			ret = -1;
		free(child);
	}
	closedir(d);
	if (rmdir(path))
		ret = -1;
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_into(struct strbuf *path, size_t root_len, struct strvec *out)
{
	DIR *d = opendir(path->buf);
	struct dirent *de;
	int ret = 0;

	if (!d)
		return -1;
	while (!ret && (de = readdir(d))) {
		size_t len = path->len;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		strbuf_addch(path, '/');
		strbuf_addstr(path, de->d_name);
		if (lstat(path->buf, &st))
			ret = -1;
		else if (S_ISDIR(st.st_mode))
			ret = list_into(path, root_len, out);
		else
			strvec_push(out, path->buf + root_len + 1);
		strbuf_setlen(path, len);
	}
	closedir(d);
	return ret;
}

int fs_list_tree(const char *dir, struct strvec *out)
{
	struct strbuf path = STRBUF_INIT;
	size_t start = out->nr;
	int ret;

	strbuf_addstr(&path, dir);
	while (path.len > 1 && path.buf[path.len - 1] == '/')
		strbuf_setlen(&path, path.len - 1);
	ret = list_into(&path, path.len, out);
	if (out->nr - start > 1)
		qsort(out->v + start, out->nr - start, sizeof(char *), cmp_str);
	strbuf_release(&path);
	return ret;
}

unsigned long long fs_tree_bytes(const char *path)
{
	struct strvec files = STRVEC_INIT;
	struct strbuf sb = STRBUF_INIT;
	unsigned long long n = 0;
	struct stat st;

	if (lstat(path, &st))
		return 0;
	if (!S_ISDIR(st.st_mode))
		return (unsigned long long)st.st_size;
	fs_list_tree(path, &files);
	for (size_t i = 0; i < files.nr; i++) {
		strbuf_reset(&sb);
		strbuf_addf(&sb, "%s/%s", path, files.v[i]);
		if (!lstat(sb.buf, &st))
			n += (unsigned long long)st.st_size;
	}
	strbuf_release(&sb);
	strvec_clear(&files);
	return n;
}

static int copy_link(const char *src, const char *dst)
{
	struct strbuf target = STRBUF_INIT;
	ssize_t n;

	strbuf_grow(&target, 4096);
	n = readlink(src, target.buf, target.alloc - 1);
	if (n < 0) {
		strbuf_release(&target);
		return -1;
	}
	strbuf_setlen(&target, (size_t)n);
	unlink(dst);
	n = symlink(target.buf, dst);
	strbuf_release(&target);
	return n ? -1 : 0;
}

int fs_copy_file(const char *src, const char *dst)
{
	struct stat st;
	int in, out, ret = 0;

	if (lstat(src, &st))
		return -1;
	if (S_ISLNK(st.st_mode))
		return copy_link(src, dst);
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	unlink(dst);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		   st.st_mode & 07777);
	if (out < 0) {
		close(in);
		return -1;
	}
	for (off_t left = st.st_size; left > 0 && !ret;) {
		ssize_t n =
			copy_file_range(in, NULL, out, NULL, (size_t)left, 0);

		if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
			      errno == EINVAL || errno == EOPNOTSUPP)) {
			char buf[65536];

			n = read(in, buf, sizeof(buf));
			if (n > 0 && fs_write_all(out, buf, (size_t)n))
				n = -1;
		}
		if (n <= 0)
			ret = -1;
		else
			left -= n;
	}
	if (close(out))
		ret = -1;
	close(in);
	return ret;
}

int fs_map(const char *path, int flags, void **map, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;
	int prot = PROT_READ | (flags & FS_MAP_WRITABLE ? PROT_WRITE : 0);
	void *m = NULL;
	struct stat st;

	*map = NULL;
	*len = 0;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st))
		m = MAP_FAILED;
	else if (st.st_size > 0)
		/* populated in one go: cheaper than a fault per 64 KiB for
		 * a file that is read from start to end */
		m = mmap(NULL, (size_t)st.st_size, prot,
			 MAP_PRIVATE | (flags & FS_MAP_LAZY ? 0 : MAP_POPULATE),
			 fd, 0);
	saved = errno;
	close(fd);
	errno = saved;
	if (m == MAP_FAILED)
		return -1;
	*map = m;
	*len = m ? (size_t)st.st_size : 0;
	return 0;
}
