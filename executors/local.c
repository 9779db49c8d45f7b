/* The local executor (SPEC §4): each unit is a child process in its own
 * process group, run in its workspace, its output kept in a log and, on
 * request, streamed with a "[label] " prefix. */
#include "executors/executor.h"
#include "executors/local.h"
#include "executors/loop.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strmap.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

extern char **environ;

#define READ_CHUNK 65536
#define EVENT_CHUNKS 16	   /* reads per stream per event, for fairness */
#define DRAIN_CHUNKS 64	   /* reads after the process is gone */
#define FALLBACK_MAX_MS 64 /* longest wait between looks without pidfd */
#define GROUP_GONE_MS 2000 /* longest wait for a KILLed group to go */

static int pidfd_disabled;

enum { OUT, ERR };

/* What is the local executor's own in a unit; the rest is the loop's. */
struct lunit {
	struct loop_unit *lu;
	struct exec_ctx *ctx;
	pid_t pid; /* also the process group id */
	int pidfd; /* -1: none, exits found by waitid(WNOHANG) */
	int fd[2]; /* our read ends of its stdout and stderr; -1 at EOF */
	unsigned reaped : 1;
};

struct exec_ctx {
	struct exec_options opt;
	int devnull; /* O_RDWR: stdin of every unit */
	char *buf;   /* READ_CHUNK bytes */
	/* Units without a pidfd: their exits are looked for on a timer
	 * whose period doubles while nothing happens. */
	struct lunit **look;
	size_t nr_look, alloc_look;
	struct loop_timer look_timer;
	int backoff;

	/* Scratch for start(), kept to spare allocations. */
	struct strvec argv, owned;
	const char **envp;
	size_t envp_alloc;
	struct strbuf paths;
	const char **cands, **shargv;
	size_t cands_alloc, shargv_alloc;
	int cands_skip; /* 1: cands[0] is no program found before */
	/* Programs found on PATH: "<PATH>\n<name>" -> the first candidate
	 * that is an executable file, tried first (as sh's hash table), so
	 * that 2,000 units of cp do not each fail execve in every PATH
	 * directory before it. Owned keys and values in found_owned. */
	struct strmap found;
	struct strvec found_owned;
};

/* Everything the child needs, prepared before vfork: between vfork and
 * exec it makes system calls only (no malloc, no stdio, no locks). */
struct spawn {
	const char *cwd;
	int in, out, err; /* become the child's 0, 1, 2 */
	int report;	  /* CLOEXEC pipe: a spawn_failure, or EOF on exec */
	char *const *argv, *const *envp;
	const char **cands;  /* programs to try in order, as execvp */
	const char **shargv; /* "sh" cand argv[1]...: a script without #! */
};

enum { STEP_CHDIR = 1, STEP_EXEC };

struct spawn_failure {
	int step;
	int err;
};

void local_disable_pidfd(int disable)
{
	pidfd_disabled = disable;
}

/* ------------------------------------------------------------------ */
/* Commands: split when sh is not needed (make's fast path) */

/* Characters that mean quoting, expansion, redirection, globbing, job
 * control, a comment, an assignment or several lines. */
static const char shell_chars[] = "|&;<>()$`\\\"'*?[]#~=%{}!\n";

/* Words that sh must run: reserved words and builtins that act on the
 * shell itself or have no program of their name (make's list, and more). */
static const char *const sh_words[] = {
	".",	   ":",	      "alias",	  "bg",	      "break",	"case",
	"cd",	   "command", "continue", "declare",  "do",	"done",
	"elif",	   "else",    "esac",	  "eval",     "exec",	"exit",
	"export",  "fc",      "fg",	  "fi",	      "for",	"function",
	"getopts", "hash",    "if",	  "in",	      "jobs",	"let",
	"local",   "logout",  "read",	  "readonly", "return", "select",
	"set",	   "shift",   "source",	  "test",     "then",	"time",
	"times",   "trap",    "type",	  "typeset",  "ulimit", "umask",
	"unalias", "unset",   "until",	  "wait",     "while",
};

static int is_sh_word(const char *w, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(sh_words); i++)
		if (strlen(sh_words[i]) == len && !memcmp(sh_words[i], w, len))
			return 1;
	return 0;
}

int local_split_command(const char *cmd, struct strvec *argv)
{
	const char *p = cmd + strspn(cmd, " \t");
	size_t len = strcspn(p, " \t");

	if (!len || strpbrk(cmd, shell_chars) || is_sh_word(p, len))
		return 0;
	while (*p) {
		len = strcspn(p, " \t");
		strvec_push_nodup(argv, xstrndup(p, len));
		p += len;
		p += strspn(p, " \t");
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* File descriptors */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Keep our descriptors off 0, 1 and 2 (pipe may run with one closed), so
 * that the child's dup2() calls never clobber each other. */
static int above_stdio(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

static int make_pipe(int p[2], struct error *err)
{
	if (pipe2(p, O_CLOEXEC) < 0) {
		p[0] = p[1] = -1;
		return error_set(err, EXIT_ENV, "cannot create a pipe: %s",
				 strerror(errno));
	}
	p[0] = above_stdio(p[0]);
	p[1] = above_stdio(p[1]);
	if (p[0] < 0 || p[1] < 0) {
		int e = errno;

		close_fd(&p[0]);
		close_fd(&p[1]);
		return error_set(err, EXIT_ENV, "cannot create a pipe: %s",
				 strerror(e));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Preparing a unit: argv, program paths, environment */

static int prepare_argv(struct exec_ctx *ctx, const struct exec_unit *unit,
			int *use_sh, struct error *err)
{
	strvec_clear(&ctx->argv);
	*use_sh = 0;
	if (unit->shell) {
		if (!unit->cmd || !*unit->cmd)
			return error_set(err, EXIT_USAGE, "empty command");
		if (local_split_command(unit->cmd, &ctx->argv))
			return 0;
		strvec_push(&ctx->argv, "sh");
		strvec_push(&ctx->argv, "-c");
		strvec_push(&ctx->argv, unit->cmd);
		*use_sh = 1;
		return 0;
	}
	if (!unit->argv || !unit->argv[0] || !*unit->argv[0])
		return error_set(err, EXIT_USAGE, "empty command");
	strvec_pushv(&ctx->argv, unit->argv);
	return 0;
}

static void push_env(struct exec_ctx *ctx, size_t *n, const char *e)
{
	ALLOC_GROW(ctx->envp, *n + 2, ctx->envp_alloc);
	ctx->envp[(*n)++] = e;
	ctx->envp[*n] = NULL;
}

/* pipe's environment, then the unit's (a later entry wins), then
 * PIPE_STAGE and PIPE_WORKSPACE. The strings are borrowed. */
static void prepare_env(struct exec_ctx *ctx, const struct exec_unit *unit)
{
	size_t n = 0;

	strvec_clear(&ctx->owned);
	strvec_pushf(&ctx->owned, "PIPE_STAGE=%s",
		     unit->stage ? unit->stage : "");
	strvec_pushf(&ctx->owned, "PIPE_WORKSPACE=%s", unit->workspace);
	for (char **e = environ; e && *e; e++)
		if (!strvec_has_key(unit->env, *e) &&
		    !strvec_has_key(ctx->owned.v, *e))
			push_env(ctx, &n, *e);
	for (char *const *e = unit->env; e && *e; e++)
		if (!strvec_has_key(e + 1, *e) &&
		    !strvec_has_key(ctx->owned.v, *e))
			push_env(ctx, &n, *e);
	for (size_t i = 0; i < ctx->owned.nr; i++)
		push_env(ctx, &n, ctx->owned.v[i]);
}

static const char *env_path(struct exec_ctx *ctx)
{
	for (const char **e = ctx->envp; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			return *e + 5;
	return "/bin:/usr/bin"; /* glibc's default, as execvp */
}

/* The first of cands (NULL-terminated, from PATH) that is an executable
 * regular file, looked up once per PATH and name; NULL when a relative
 * directory comes first (it depends on the unit's folder) or none is. */
static const char *find_program(struct exec_ctx *ctx, const char *file,
				const char **cands)
{
	struct strbuf key = STRBUF_INIT;
	const char *got;
	struct stat sb;

	strbuf_addf(&key, "%s\n%s", env_path(ctx), file);
	got = strmap_get(&ctx->found, key.buf);
	if (got) {
		strbuf_release(&key);
		return got;
	}
	for (; *cands && **cands == '/'; cands++)
		if (!stat(*cands, &sb) && S_ISREG(sb.st_mode) &&
		    !access(*cands, X_OK))
			break;
	if (!*cands || **cands != '/') {
		strbuf_release(&key);
		return NULL;
	}
	strvec_push_nodup(&ctx->found_owned, strbuf_detach(&key, NULL));
	strvec_push(&ctx->found_owned, *cands);
	got = ctx->found_owned.v[ctx->found_owned.nr - 1];
	strmap_put(&ctx->found, ctx->found_owned.v[ctx->found_owned.nr - 2],
		   (void *)got);
	return got;
}

/* The programs execvp would try, searched in the unit's own PATH (as sh
 * would), relative entries resolved in the workspace after chdir. */
static void prepare_cands(struct exec_ctx *ctx, int use_sh)
{
	const char *file = use_sh ? "/bin/sh" : ctx->argv.v[0];
	const char *p = env_path(ctx);
	size_t n = 0, argc = ctx->argv.nr;

	strbuf_reset(&ctx->paths);
	if (strchr(file, '/')) {
		strbuf_add(&ctx->paths, file, strlen(file) + 1);
		n = 1;
		p = NULL;
	}
	while (p) {
		size_t len = strcspn(p, ":");

		if (len) {
			strbuf_add(&ctx->paths, p, len);
			strbuf_addch(&ctx->paths, '/');
		}
		strbuf_add(&ctx->paths, file, strlen(file) + 1);
		n++;
		p = p[len] ? p + len + 1 : NULL;
	}
	ALLOC_GROW(ctx->cands, n + 2, ctx->cands_alloc);
	for (size_t i = 0, at = 0; i < n; i++) {
		ctx->cands[i + 1] = ctx->paths.buf + at;
		at += strlen(ctx->cands[i + 1]) + 1;
	}
	ctx->cands[n + 1] = NULL;
	/* the one found before first; the others after it, as execvp would
	 * try them, should it be gone since */
	ctx->cands[0] = n > 1 ? find_program(ctx, file, ctx->cands + 1) : NULL;
	ctx->cands_skip = !ctx->cands[0];
	ALLOC_GROW(ctx->shargv, argc + 2, ctx->shargv_alloc);
	ctx->shargv[0] = "sh";
	ctx->shargv[1] = NULL; /* the candidate, set in the child */
	for (size_t i = 1; i <= argc; i++)
		ctx->shargv[i + 1] = ctx->argv.v[i];
}

/* ------------------------------------------------------------------ */
/* The child, between vfork and exec */

static void report(const struct spawn *sp, int step, int e)
{
	struct spawn_failure f = {step, e};
	ssize_t n;

	do
		n = write(sp->report, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/* execvp's loop over PATH, with the unit's environment; a file that is not
 * a program (ENOEXEC) is run by /bin/sh, as execvp does. */
static void child_exec(const struct spawn *sp)
{
	int e = ENOENT, denied = 0;

	for (const char **c = sp->cands; *c; c++) {
		execve(*c, sp->argv, sp->envp);
		e = errno;
		if (e == ENOEXEC) {
			sp->shargv[1] = *c;
			execve("/bin/sh", (char *const *)sp->shargv, sp->envp);
			e = errno;
			break;
		}
		if (e == EACCES)
			denied = 1;
		else if (e != ENOENT && e != ENOTDIR && e != ESTALE &&
			 e != ENODEV && e != ETIMEDOUT)
			break;
	}
	if (denied && (e == ENOENT || e == ENOTDIR))
		e = EACCES;
	report(sp, STEP_EXEC, e);
}

static void __attribute__((noreturn)) child_run(const struct spawn *sp)
{
	struct sigaction dfl;
	sigset_t none;

	if (dup2(sp->in, 0) < 0 || dup2(sp->out, 1) < 0 || dup2(sp->err, 2) < 0)
		report(sp, STEP_EXEC, errno);
	/* Exec closes pipe's fds (all CLOEXEC), but a pipe killed before
	 * that would leave them to this child, the workspace lock with
	 * them: close them first thing (all but the report pipe). */
	if (sp->report > 3)
		close_range(3, (unsigned)sp->report - 1, 0);
	close_range((unsigned)sp->report + 1, ~0U, 0);
	/* Also done by the parent: whichever runs first, the group exists
	 * before exec and before the parent signals it. */
	setpgid(0, 0);
	/* pipe's handlers and ignored signals (SIGPIPE) are not the
	 * command's: every signal back to its default, none blocked. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (chdir(sp->cwd) < 0)
		report(sp, STEP_CHDIR, errno);
	child_exec(sp);
	_exit(127);
}

/* vfork, not fork: fork copies the page tables of pipe's whole heap, 3 ms
 * a unit at 300 MB, and the child execs at once anyway. The child shares
 * our memory until it execs, so every signal is blocked around vfork (no
 * handler of pipe's may run in the child), and the child writes nothing
 * of ours but sp->shargv[1]. */
static pid_t spawn_child(const struct spawn *sp)
{
	sigset_t all, old;
	pid_t pid;
	int e;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = vfork();
	if (!pid)
		child_run(sp);
	e = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return pid;
}

/* ------------------------------------------------------------------ */
/* Units: reading their output, seeing them end */

/* Stop watching and close: the loop may hand the number out again. */
static void unwatch_close(int *fd)
{
	if (*fd >= 0)
		loop_fd_unwatch(*fd);
	close_fd(fd);
}

/* Read what stream k has, up to max chunks; at EOF close it. */
static void stream_read(struct lunit *u, int k, int max)
{
	for (int i = 0; i < max && u->fd[k] >= 0; i++) {
		ssize_t n = read(u->fd[k], u->ctx->buf, READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			unwatch_close(&u->fd[k]);
			return;
		}
		loop_unit_output(u->lu, k == OUT ? 1 : 2, u->ctx->buf,
				 (size_t)n);
	}
}

static void unlook(struct lunit *u)
{
	struct exec_ctx *ctx = u->ctx;

	for (size_t i = 0; i < ctx->nr_look; i++)
		if (ctx->look[i] == u) {
			ctx->look[i] = ctx->look[--ctx->nr_look];
			break;
		}
	if (!ctx->nr_look)
		loop_timer_disarm(&ctx->look_timer);
}

/* The main process is gone: what is left of its group goes with it (as in
 * a container), the pipes are drained, not waited on, since a daemon that
 * left the group may hold them open for ever. */
static void finish(struct lunit *u, int status)
{
	u->reaped = 1;
	if (WIFEXITED(status))
		u->lu->exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		u->lu->term_signal = WTERMSIG(status);
	unwatch_close(&u->pidfd);
	unlook(u);
	for (int k = OUT; k <= ERR; k++) {
		stream_read(u, k, DRAIN_CHUNKS);
		unwatch_close(&u->fd[k]);
	}
	loop_unit_end(u->lu, 0);
}

/* The rest of a unit's group was KILLed with its main process: wait
 * (briefly) until it is gone, so that nothing of the unit writes after
 * pipe has hashed its outputs or let the workspace lock go. Orphans of
 * the group come to pipe, a child subreaper (local_open), to be reaped. */
static void reap_group(pid_t pgid)
{
	struct timespec nap = {0, 5 * 1000 * 1000};

	for (int i = 0; i < GROUP_GONE_MS / 5; i++) {
		pid_t p = waitpid(-pgid, NULL, WNOHANG);

		if (p > 0 || (p < 0 && errno == EINTR))
			continue;
		if (p < 0 && kill(-pgid, 0) < 0 && errno == ESRCH)
			return;
		nanosleep(&nap, NULL);
	}
}

/* Reap the unit if its main process has exited. It is only looked at
 * (WNOWAIT) first, so that its pid, which names the group, cannot be
 * reused while the group is killed. */
static void check_exit(struct lunit *u)
{
	siginfo_t si;
	int status = 0;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)u->pid, &si, WEXITED | WNOHANG | WNOWAIT)) {
		if (errno != ECHILD)
			return;
		/* SIGCHLD ignored by someone: the status is lost */
		u->lu->message = xstrdup("exit status lost");
		finish(u, status);
		u->lu->exit_code = -1;
		return;
	}
	if (si.si_pid != u->pid)
		return;
	kill(-u->pid, SIGKILL);
	while (waitpid(u->pid, &status, 0) < 0 && errno == EINTR)
		;
	reap_group(u->pid);
	finish(u, status);
}

static void on_pipe(void *arg, int fd, short revents)
{
	struct lunit *u = arg;

	(void)revents;
	stream_read(u, fd == u->fd[OUT] ? OUT : ERR, EVENT_CHUNKS);
}

static void on_pidfd(void *arg, int fd, short revents)
{
	(void)fd;
	(void)revents;
	check_exit(arg);
}

static void on_look(void *arg)
{
	struct exec_ctx *ctx = arg;

	for (size_t i = ctx->nr_look; i-- > 0;)
		if (i < ctx->nr_look)
			check_exit(ctx->look[i]);
	if (ctx->backoff < FALLBACK_MAX_MS)
		ctx->backoff *= 2;
	if (ctx->nr_look)
		loop_timer_arm(&ctx->look_timer, loop_now_ms() + ctx->backoff);
}

/* The child could not exec: reap it and keep the reason, in the log too. */
static void spawn_failed(struct lunit *u, const struct spawn_failure *f,
			 const char *prog, const char *cwd)
{
	struct strbuf sb = STRBUF_INIT;
	int status;

	while (waitpid(u->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (f->step == STEP_CHDIR)
		strbuf_addf(&sb, "cannot enter workspace '%s': %s", cwd,
			    strerror(f->err));
	else
		strbuf_addf(&sb, "cannot run '%s': %s", prog, strerror(f->err));
	loop_unit_note(u->lu, sb.buf);
	u->lu->message = strbuf_detach(&sb, NULL);
	for (int k = OUT; k <= ERR; k++)
		close_fd(&u->fd[k]);
	u->lu->exit_code = f->step == STEP_CHDIR ? -1
			   : f->err == ENOENT	 ? 127
						 : 126;
	u->reaped = 1;
	loop_unit_end(u->lu, 0);
}

/* It runs: watch its pipes, then its end (a pidfd, or a look now and
 * then): pipes first, so that a round's output is read before the pidfd
 * drains and closes them. */
static void spawned(struct lunit *u)
{
	struct exec_ctx *ctx = u->ctx;

	if (!pidfd_disabled) {
		u->pidfd = (int)syscall(SYS_pidfd_open, u->pid, 0);
		if (u->pidfd < 0 && (errno == ENOSYS || errno == EPERM))
			pidfd_disabled = 1;
		u->pidfd = above_stdio(u->pidfd);
	}
	u->lu->live = 1;
	for (int k = OUT; k <= ERR; k++) {
		fcntl(u->fd[k], F_SETFL, O_NONBLOCK);
		loop_fd_watch(u->fd[k], POLLIN, on_pipe, u);
	}
	if (u->pidfd >= 0) {
		loop_fd_watch(u->pidfd, POLLIN, on_pidfd, u);
		return;
	}
	ALLOC_GROW(ctx->look, ctx->nr_look + 1, ctx->alloc_look);
	ctx->look[ctx->nr_look++] = u;
	ctx->backoff = 1;
	loop_timer_arm(&ctx->look_timer, loop_now_ms() + ctx->backoff);
}

static void local_stop(struct loop_unit *lu, int sig)
{
	struct lunit *u = lu->impl;

	if (!u->reaped)
		kill(-u->pid, sig);
}

/* After a poll error, or at close: no zombie is left behind. */
static void local_release(struct loop_unit *lu)
{
	struct lunit *u = lu->impl;

	if (!u->reaped) {
		kill(-u->pid, SIGKILL);
		while (waitpid(u->pid, NULL, 0) < 0 && errno == EINTR)
			;
		unlook(u);
	}
	unwatch_close(&u->pidfd);
	for (int k = OUT; k <= ERR; k++)
		unwatch_close(&u->fd[k]);
	free(u);
}

static const struct loop_ops local_ops = {
	.stop = local_stop,
	.release = local_release,
};

/* Start the child, and learn whether it could exec. */
static int start_child(struct exec_ctx *ctx, const struct exec_unit *unit,
		       struct spawn *sp, int pipes[3][2], struct error *err)
{
	struct lunit *u;
	struct spawn_failure f;
	ssize_t n;
	pid_t pid;

	pid = spawn_child(sp);
	if (pid < 0)
		return error_set(err, EXIT_ENV, "cannot fork: %s",
				 strerror(errno));
	setpgid(pid, pid);
	u = xcalloc(1, sizeof(*u));
	u->ctx = ctx;
	u->pid = pid;
	u->pidfd = -1;
	u->lu = loop_unit_add(unit, &ctx->opt, &local_ops, ctx, u);
	for (int i = 0; i < 3; i++)
		close_fd(&pipes[i][1]);
	for (int k = OUT; k <= ERR; k++) {
		u->fd[k] = pipes[k][0];
		pipes[k][0] = -1;
	}
	do
		n = read(pipes[2][0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(f))
		spawn_failed(u, &f, sp->argv[0], sp->cwd);
	else
		spawned(u);
	return 0;
}

static int local_start(struct exec_ctx *ctx, const struct exec_unit *unit,
		       struct error *err)
{
	int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	struct spawn sp;
	int use_sh, ret = -1;

	if (!unit->workspace)
		return error_set(err, EXIT_USAGE, "no workspace");
	if (prepare_argv(ctx, unit, &use_sh, err))
		return -1;
	prepare_env(ctx, unit);
	prepare_cands(ctx, use_sh);
	/* output always comes through pipes, streamed or not: the log is
	 * made on its first byte and capped (unitlog.h) */
	if (make_pipe(pipes[OUT], err) || make_pipe(pipes[ERR], err) ||
	    make_pipe(pipes[2], err))
		goto out;
	sp = (struct spawn){
		.cwd = unit->workspace,
		.in = ctx->devnull,
		.out = pipes[OUT][1],
		.err = pipes[ERR][1],
		.report = pipes[2][1],
		.argv = ctx->argv.v,
		.envp = (char *const *)ctx->envp,
		.cands = ctx->cands + ctx->cands_skip,
		.shargv = ctx->shargv,
	};
	if (start_child(ctx, unit, &sp, pipes, err))
		goto out;
	ret = 0;
out:
	for (int i = 0; i < 3; i++) {
		close_fd(&pipes[i][0]);
		close_fd(&pipes[i][1]);
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* The executor */

static int local_open(struct exec_ctx **out, const struct exec_options *opt,
		      struct error *err)
{
	struct exec_ctx *ctx = xcalloc(1, sizeof(*ctx));

	/* what a unit leaves behind when its parent dies comes to pipe, not
	 * to init: reap_group can wait for the whole group */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (opt)
		ctx->opt = *opt;
	ctx->devnull = above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (ctx->devnull < 0) {
		error_set(err, EXIT_ENV, "cannot open '/dev/null': %s",
			  strerror(errno));
		free(ctx);
		return -1;
	}
	ctx->buf = xmalloc(READ_CHUNK);
	loop_timer_init(&ctx->look_timer, on_look, ctx);
	strbuf_init(&ctx->paths, 0);
	strvec_init(&ctx->argv);
	strvec_init(&ctx->owned);
	strvec_init(&ctx->found_owned);
	*out = ctx;
	return 0;
}

static void local_close(struct exec_ctx *ctx)
{
	if (!ctx)
		return;
	loop_close(ctx);
	loop_timer_disarm(&ctx->look_timer);
	close_fd(&ctx->devnull);
	free(ctx->look);
	free(ctx->buf);
	strbuf_release(&ctx->paths);
	strvec_clear(&ctx->argv);
	strvec_clear(&ctx->owned);
	strmap_release(&ctx->found);
	strvec_clear(&ctx->found_owned);
	free(ctx->envp);
	free(ctx->cands);
	free(ctx->shargv);
	free(ctx);
}

/* The default executor: no images to resolve. */
const struct executor executor_local = {
	.name = "local",
	.open = local_open,
	.start = local_start,
	.close = local_close,
};
