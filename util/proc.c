/* A helper program run to its end, its output collected (util/proc.h).
 * fork, then exec in the child with pipe's environment plus r->env; the
 * parent writes stdin and reads stdout and stderr in one poll() loop, so a
 * helper that prints a lot before reading its input cannot deadlock. */
#include "util/proc.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pipe's environment with r->env on top (a later KEY= wins). */
static void build_env(struct strvec *out, char *const *extra)
{
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t klen = eq ? (size_t)(eq - *e) : strlen(*e);
		int replaced = 0;

		for (char *const *x = extra; x && *x && !replaced; x++)
			replaced = !strncmp(*x, *e, klen) && (*x)[klen] == '=';
		if (!replaced)
			strvec_push(out, *e);
	}
	for (char *const *x = extra; x && *x; x++)
		strvec_push(out, *x);
}

static void child(const struct proc_run *r, int in, int out, int errfd,
		  char **envp)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(126);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	if (r->dir && chdir(r->dir))
		_exit(126);
	environ = envp;
	execvp(r->argv[0], r->argv);
	_exit(errno == ENOENT ? 127 : 126);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int proc_capture(const struct proc_run *r, struct strbuf *out,
		 struct strbuf *errout, struct error *err)
{
	const char *name = r->argv[0];
	size_t max_out = r->max_out ? r->max_out : (4u << 20);
	long timeout = r->timeout_ms ? r->timeout_ms : 60000;
	int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
	struct strvec env = STRVEC_INIT;
	size_t in_off = 0;
	long long deadline;
	int status, ret = -1, why = 0; /* 1: timeout, 2: too much */
	pid_t pid;

	if ((!r->keep_stdin && pipe(inp)) || pipe(outp) || pipe(errp)) {
		error_set(err, EXIT_ENV, "cannot run '%s': %s", name,
			  strerror(errno));
		goto close_all;
	}
	build_env(&env, r->env);
	pid = fork();
	if (pid < 0) {
		error_set(err, EXIT_ENV, "cannot run '%s': %s", name,
			  strerror(errno));
		goto close_all;
	}
	if (!pid)
		child(r, r->keep_stdin ? 0 : inp[0], outp[1], errp[1], env.v);
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	if (!r->keep_stdin) {
		close(inp[0]);
		inp[0] = -1;
		if (!r->in || !r->in_len) {
			close(inp[1]);
			inp[1] = -1;
		} else {
			set_nonblock(inp[1]);
		}
	}
	deadline = now_ms() + timeout;
	while (outp[0] >= 0 || errp[0] >= 0) {
		struct pollfd pf[3] = {{outp[0], POLLIN, 0},
				       {errp[0], POLLIN, 0},
				       {inp[1], POLLOUT, 0}};
		long long left = deadline - now_ms();
		char buf[8192];

		if (left <= 0) {
			why = 1;
			break;
		}
		if (poll(pf, 3, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i ? &errp[0] : &outp[0];
			ssize_t n;

			if (*fd < 0 || !pf[i].revents)
				continue;
			n = read(*fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(*fd);
				*fd = -1;
			} else if (!i) {
				if (out->len + (size_t)n > max_out) {
					why = 2;
					goto stop;
				}
				strbuf_add(out, buf, (size_t)n);
			} else if (errout && errout->len < 4096) {
				size_t room = 4096 - errout->len;

				strbuf_add(errout, buf,
					   (size_t)n < room ? (size_t)n : room);
			}
		}
		if (inp[1] >= 0 && pf[2].revents) {
			ssize_t n = write(inp[1], r->in + in_off,
					  r->in_len - in_off);

			if (n > 0)
				in_off += (size_t)n;
			if ((n < 0 && errno != EINTR && errno != EAGAIN) ||
			    in_off == r->in_len) {
				close(inp[1]);
				inp[1] = -1;
			}
		}
	}
stop:
	if (why)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	if (why == 1)
		error_set(err, EXIT_ENV, "'%s' did not finish within %ld%s",
			  name, timeout % 1000 ? timeout : timeout / 1000,
			  timeout % 1000 ? "ms" : "s");
	else if (why == 2)
		error_set(err, EXIT_ENV, "'%s' printed more than %zu bytes",
			  name, max_out);
	else if (status == -1 || !WIFEXITED(status))
		error_set(err, EXIT_ENV, "'%s' was killed by signal %d", name,
			  status == -1 ? 0 : WTERMSIG(status));
	else
		ret = WEXITSTATUS(status);
close_all:
	for (int i = 0; i < 2; i++) {
		if (inp[i] >= 0)
			close(inp[i]);
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	strvec_clear(&env);
	return ret;
}
