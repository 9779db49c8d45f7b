/* flock-based workspace lock; the file says who holds it, for the message
 * the second process prints. */
#include "engine/lock.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static void describe_holder(int fd, struct strbuf *out)
{
	struct strbuf sb = STRBUF_INIT;
	char *pid = NULL, *what = NULL, *started = NULL;

	lseek(fd, 0, SEEK_SET);
	strbuf_read_fd(&sb, fd, 4096);
	/* "pid N\nwhat pipe run\nstarted TIME\n" */
	for (char *line = sb.buf; line && *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		if (!strncmp(line, "pid ", 4))
			pid = line + 4;
		else if (!strncmp(line, "what ", 5))
			what = line + 5;
		else if (!strncmp(line, "started ", 8))
			started = line + 8;
		line = nl ? nl + 1 : NULL;
	}
	if (pid)
		strbuf_addf(out,
			    "workspace is locked by pid %s (%s, started %s)",
			    pid, what ? what : "pipe",
			    started ? started : "at an unknown time");
	else
		strbuf_addstr(out,
			      "workspace is locked by another pipe process");
	strbuf_release(&sb);
}

static void write_holder(int fd, const char *what)
{
	struct strbuf sb = STRBUF_INIT;
	char when[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	strbuf_addf(&sb, "pid %ld\nwhat %s\nstarted %s\n", (long)getpid(), what,
		    when);
	if (ftruncate(fd, 0) == 0 &&
	    pwrite(fd, sb.buf, sb.len, 0) != (ssize_t)sb.len)
		log_verbose("could not describe the lock holder");
	strbuf_release(&sb);
}

int lock_acquire(const char *path, int wait, const char *what,
		 struct error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return error_set(err, EXIT_ENV, "cannot open '%s': %s", path,
				 strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		struct strbuf sb = STRBUF_INIT;

		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			error_set(err, EXIT_ENV, "cannot lock '%s': %s", path,
				  strerror(errno));
			close(fd);
			return -1;
		}
		describe_holder(fd, &sb);
		if (!wait) {
			error_set(err, EXIT_ENV,
				  "%s (use --wait to wait for it)", sb.buf);
			strbuf_release(&sb);
			close(fd);
			return -1;
		}
		log_info("%s; waiting", sb.buf);
		strbuf_release(&sb);
		if (flock(fd, LOCK_EX) == 0)
			break;
		if (errno != EINTR) {
			error_set(err, EXIT_ENV, "cannot lock '%s': %s", path,
				  strerror(errno));
			close(fd);
			return -1;
		}
		/* interrupted while waiting: give up */
		close(fd);
		return error_set(err, EXIT_INTERRUPTED, "interrupted");
	}
	write_holder(fd, what);
	return fd;
}

void lock_release(int fd)
{
	if (fd < 0)
		return;
	if (ftruncate(fd, 0))
		log_verbose("could not clear the lock file");
	flock(fd, LOCK_UN);
	close(fd);
}
