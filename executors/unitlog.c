/* A unit's log: the head goes to the file as it comes, the tail waits in a
 * ring in memory until the unit ends, so a stage that prints 300 MB leaves
 * a log of max bytes and never more on disk. */
#include "executors/unitlog.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void unit_log_init(struct unit_log *l, const char *path, long long max)
{
	memset(l, 0, sizeof(*l));
	l->path = path;
	l->fd = -1;
	if (max == 0)
		max = UNIT_LOG_DEFAULT_MAX;
	l->max = max < 0 ? (size_t)-1 : (size_t)max;
	if (l->max < 2)
		l->max = 2;
}

static size_t head_max(const struct unit_log *l)
{
	return l->max - l->max / 2;
}

static size_t tail_max(const struct unit_log *l)
{
	return l->max / 2;
}

static void fail(struct unit_log *l, const char *what)
{
	log_warn("cannot %s log '%s': %s", what, l->path, strerror(errno));
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->failed = 1;
}

/* Made on the first byte: a unit that prints nothing has no file. */
static int open_file(struct unit_log *l)
{
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC;

	if (l->fd >= 0)
		return 0;
	if (!l->path || l->failed || l->closed)
		return -1;
	l->fd = open(l->path, flags, 0644);
	if (l->fd < 0 && errno == ENOENT && !fs_mkdir_parent(l->path, 0755))
		l->fd = open(l->path, flags, 0644);
	/* never 0, 1 or 2: a child's stdio is set up from those */
	if (l->fd >= 0 && l->fd <= 2) {
		int fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 3);

		close(l->fd);
		l->fd = fd;
	}
	if (l->fd < 0) {
		fail(l, "create");
		return -1;
	}
	return 0;
}

static void put(struct unit_log *l, const void *p, size_t len)
{
	if (l->fd >= 0 && len && fs_write_all(l->fd, p, len))
		fail(l, "write");
}

/* Keep the last tail_max bytes seen past the head. */
static void ring_add(struct unit_log *l, const char *p, size_t len)
{
	size_t cap = tail_max(l);

	if (!cap)
		return;
	if (!l->tail)
		l->tail = xmalloc(cap);
	if (len >= cap) {
		memcpy(l->tail, p + len - cap, cap);
		l->tail_pos = 0;
		return;
	}
	while (len) {
		size_t n = cap - l->tail_pos < len ? cap - l->tail_pos : len;

		memcpy(l->tail + l->tail_pos, p, n);
		l->tail_pos = (l->tail_pos + n) % cap;
		p += n;
		len -= n;
	}
}

void unit_log_write(struct unit_log *l, const void *data, size_t len)
{
	const char *p = data;
	size_t head = head_max(l);

	if (!len || open_file(l))
		return;
	if (l->total < head) {
		size_t n = head - l->total < len ? head - l->total : len;

		put(l, p, n);
		if (n)
			l->last = p[n - 1];
		p += n;
		len -= n;
		l->total += n;
	}
	if (len) {
		ring_add(l, p, len);
		l->total += len;
	}
}

void unit_log_note(struct unit_log *l, const char *msg)
{
	unit_log_write(l, "pipe: ", 6);
	unit_log_write(l, msg, strlen(msg));
	unit_log_write(l, "\n", 1);
}

/* The tail in order; with bytes cut, from its first whole line on (the
 * bytes before it count as cut), after the line that says so. */
static void write_tail(struct unit_log *l)
{
	size_t cap = tail_max(l), kept, skip = 0;
	unsigned long long cut;
	char *buf, line[64];
	int n;

	if (l->total <= head_max(l) || !l->tail)
		return;
	kept = l->total - head_max(l) < cap ? l->total - head_max(l) : cap;
	buf = xmalloc(kept);
	if (kept < cap) {
		memcpy(buf, l->tail, kept);
	} else {
		memcpy(buf, l->tail + l->tail_pos, cap - l->tail_pos);
		memcpy(buf + cap - l->tail_pos, l->tail, l->tail_pos);
	}
	cut = l->total - head_max(l) - kept;
	if (cut) {
		char *nl = memchr(buf, '\n', kept);

		if (nl && nl + 1 < buf + kept)
			skip = (size_t)(nl + 1 - buf);
		cut += skip;
		n = snprintf(line, sizeof(line), "%s[... %llu bytes cut ...]\n",
			     l->last == '\n' ? "" : "\n", cut);
		put(l, line, (size_t)n);
	}
	put(l, buf + skip, kept - skip);
	free(buf);
}

void unit_log_close(struct unit_log *l)
{
	if (l->fd >= 0)
		write_tail(l);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	free(l->tail);
	l->tail = NULL;
	l->tail_pos = 0;
	l->total = 0;
	l->closed = 1;
}
