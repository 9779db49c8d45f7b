/* flock-based workspace lock; the file says who holds it, for the message
 * the second process prints. */
#include "engine/lock.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* How long a lock whose named holder is dead is waited for. */
#define LOCK_ORPHAN_WAIT_MS 3000

/* The holder's pid as the lock file names it (0: none), and a
 * description of it in desc. */
static long read_holder(int fd, struct strbuf *desc)
{
	struct strbuf sb = STRBUF_INIT;
	char *pid = NULL, *what = NULL, *started = NULL;
	long n = 0;

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
	strbuf_reset(desc);
	if (pid) {
		n = strtol(pid, NULL, 10);
		strbuf_addf(desc,
			    "workspace is locked by pid %s (%s, started %s)",
			    pid, what ? what : "pipe",
			    started ? started : "at an unknown time");
	} else {
		strbuf_addstr(desc,
			      "workspace is locked by another pipe process");
	}
	strbuf_release(&sb);
	return n > 0 ? n : 0;
}

static int holder_alive(long pid)
{
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
}

/* Take the lock if it is free. Else, when the holder named in the file
 * is gone (or none is named yet), poll a while before giving up: a
 * process the holder started may hold the lock fd between fork and exec
 * (exec closes it; a killed pipe leaves such a child), or a new holder
 * is between taking the lock and writing its pid; either lasts moments.
 * Returns 0 with the lock, 1 held (desc says by whom), -1 an error. */
static int try_lock(int fd, struct strbuf *desc)
{
	struct timespec nap = {0, 10 * 1000 * 1000};
	int polls = 0;
	long pid;

	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return -1;
		pid = read_holder(fd, desc);
		if (holder_alive(pid))
			return 1;
		if (polls++ == LOCK_ORPHAN_WAIT_MS / 10) {
			if (pid)
				strbuf_addstr(
					desc,
					", which has exited; a process "
					"it started still holds the lock");
			return 1;
		}
		nanosleep(&nap, NULL);
	}
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
	struct strbuf sb = STRBUF_INIT;
	int r;

	if (fd < 0)
		return error_set(err, EXIT_ENV, "cannot open '%s': %s", path,
				 strerror(errno));
	r = try_lock(fd, &sb);
	if (r == 1 && !wait) {
		error_set(err, EXIT_ENV, "%s (use --wait to wait for it)",
			  sb.buf);
		goto fail;
	}
	if (r == 1) {
		log_info("%s; waiting", sb.buf);
		r = flock(fd, LOCK_EX);
		if (r && errno == EINTR) {
			/* interrupted while waiting: give up */
			error_set(err, EXIT_INTERRUPTED, "interrupted");
			goto fail;
		}
	}
	if (r) {
		error_set(err, EXIT_ENV, "cannot lock '%s': %s", path,
			  strerror(errno));
		goto fail;
	}
	strbuf_release(&sb);
	write_holder(fd, what);
	return fd;
fail:
	strbuf_release(&sb);
	close(fd);
	return -1;
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
