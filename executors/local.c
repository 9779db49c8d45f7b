/* The local executor (SPEC §4): each unit is a child process in its own
 * process group, run in its workspace, its output kept in a log and, on
 * request, streamed with a "[label] " prefix. */
#include "executors/executor.h"
#include "executors/local.h"
#include "executors/unitlog.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

extern char **environ;

#define READ_CHUNK 65536
#define LINE_CAP 65536	   /* a longer line without '\n' is cut */
#define EVENT_CHUNKS 16	   /* reads per stream per event, for fairness */
#define DRAIN_CHUNKS 64	   /* reads after the process is gone */
#define FALLBACK_MAX_MS 64 /* longest poll without pidfd */
#define DEFAULT_GRACE_MS 5000
#define GROUP_GONE_MS 2000 /* longest wait for a KILLed group to go */

static int pidfd_disabled;

enum { OUT, ERR };

/* One of the unit's output pipes, in stream mode. */
struct stream {
	int fd; /* our read end; -1 at EOF or when not streaming */
	int to; /* where its lines go: 1 or 2 */
	struct strbuf pending; /* the line being read, not yet complete */
};

struct lunit {
	void *data;
	pid_t pid; /* also the process group id */
	int pidfd; /* -1: none, exits found by waitid(WNOHANG) */
	struct unit_log log;
	struct stream s[2];
	char *prefix; /* "[label] " */
	long long timeout_ms;
	long long started_ms;
	long long deadline_ms; /* when to TERM for the timeout; 0: none */
	long long kill_ms;     /* when to KILL after a TERM; 0: none */
	int exit_code, term_signal;
	unsigned reaped : 1, finished : 1, timed_out : 1, cancelled : 1;
	char *message;
	long long duration_ms;
};

/* What a poll entry watches. */
struct pollref {
	struct lunit *u;
	int what; /* OUT, ERR, or WATCH_PID */
};
#define WATCH_PID 2

struct exec_ctx {
	struct exec_options opt;
	int devnull;	      /* O_RDWR: stdin of every unit */
	struct lunit **units; /* started and not yet reported */
	size_t nr, alloc;
	struct pollfd *pfd;
	struct pollref *ref;
	size_t pfd_alloc, ref_alloc;
	char *buf;	   /* READ_CHUNK bytes */
	struct strbuf out; /* prefixed lines on their way to stdout/stderr */

	/* Scratch for start(), kept to spare allocations. */
	struct strvec argv, owned;
	const char **envp;
	size_t envp_alloc;
	struct strbuf paths;
	const char **cands, **shargv;
	size_t cands_alloc, shargv_alloc;
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

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
/* Output: lines with a prefix, written whole */

void local_prefix_flush(struct strbuf *out, struct strbuf *pending,
			const char *prefix)
{
	if (!pending->len)
		return;
	strbuf_addstr(out, prefix);
	strbuf_add(out, pending->buf, pending->len);
	strbuf_addch(out, '\n');
	strbuf_reset(pending);
}

void local_prefix_lines(struct strbuf *out, struct strbuf *pending,
			const char *prefix, const char *data, size_t len)
{
	const char *end = data + len;

	while (data < end) {
		const char *nl = memchr(data, '\n', (size_t)(end - data));

		if (!nl) {
			strbuf_add(pending, data, (size_t)(end - data));
			if (pending->len > LINE_CAP)
				local_prefix_flush(out, pending, prefix);
			return;
		}
		strbuf_addstr(out, prefix);
		strbuf_add(out, pending->buf, pending->len);
		strbuf_add(out, data, (size_t)(nl - data) + 1);
		strbuf_reset(pending);
		data = nl + 1;
	}
}

void local_format_duration(struct strbuf *out, long long ms)
{
	long long s = ms / 1000;

	if (ms < 1000) {
		strbuf_addf(out, "%lldms", ms);
	} else if (ms < 60000 && ms % 1000) {
		strbuf_addf(out, "%lld.%03lld", s, ms % 1000);
		while (out->buf[out->len - 1] == '0')
			strbuf_setlen(out, out->len - 1);
		strbuf_addch(out, 's');
	} else {
		if (s >= 3600)
			strbuf_addf(out, "%lldh", s / 3600);
		if (s % 3600 >= 60)
			strbuf_addf(out, "%lldm", s % 3600 / 60);
		if (s % 60)
			strbuf_addf(out, "%llds", s % 60);
	}
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

/* True when the KEY of "KEY=VALUE" a is the key of b. */
static int same_key(const char *a, const char *b)
{
	size_t n = strcspn(a, "=");

	return !strncmp(a, b, n) && (b[n] == '=' || !b[n]);
}

static int key_in(const char *e, char *const *list)
{
	for (; list && *list; list++)
		if (same_key(*list, e))
			return 1;
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
		if (!key_in(*e, unit->env) && !key_in(*e, ctx->owned.v))
			push_env(ctx, &n, *e);
	for (char *const *e = unit->env; e && *e; e++)
		if (!key_in(*e, e + 1) && !key_in(*e, ctx->owned.v))
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
	ALLOC_GROW(ctx->cands, n + 1, ctx->cands_alloc);
	for (size_t i = 0, at = 0; i < n; i++) {
		ctx->cands[i] = ctx->paths.buf + at;
		at += strlen(ctx->cands[i]) + 1;
	}
	ctx->cands[n] = NULL;
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
/* Units */

static struct lunit *unit_new(const struct exec_unit *unit)
{
	struct lunit *u = xcalloc(1, sizeof(*u));
	struct strbuf sb = STRBUF_INIT;

	u->data = unit->data;
	u->pidfd = -1;
	unit_log_init(&u->log, unit->log_path, unit->log_max);
	for (int i = OUT; i <= ERR; i++) {
		u->s[i].fd = -1;
		u->s[i].to = i == OUT ? 1 : 2;
		strbuf_init(&u->s[i].pending, 0);
	}
	strbuf_addf(&sb, "[%s] ",
		    unit->label ? unit->label
				: (unit->stage ? unit->stage : "?"));
	u->prefix = strbuf_detach(&sb, NULL);
	u->timeout_ms = unit->timeout_ms > 0 ? unit->timeout_ms : 0;
	u->exit_code = -1;
	return u;
}

static void unit_free(struct lunit *u)
{
	for (int i = OUT; i <= ERR; i++) {
		close_fd(&u->s[i].fd);
		strbuf_release(&u->s[i].pending);
	}
	close_fd(&u->pidfd);
	unit_log_close(&u->log);
	free(u->prefix);
	free(u->message);
	free(u);
}

static void emit(struct exec_ctx *ctx, struct lunit *u, struct stream *s,
		 const char *data, size_t len)
{
	unit_log_write(&u->log, data, len);
	if (!ctx->opt.stream)
		return;
	local_prefix_lines(&ctx->out, &s->pending, u->prefix, data, len);
	if (ctx->out.len && ctx->opt.before_output)
		ctx->opt.before_output(ctx->opt.output_arg);
	if (ctx->out.len)
		fs_write_all(s->to, ctx->out.buf, ctx->out.len);
	strbuf_reset(&ctx->out);
}

static void stream_close(struct exec_ctx *ctx, struct lunit *u,
			 struct stream *s)
{
	local_prefix_flush(&ctx->out, &s->pending, u->prefix);
	if (ctx->out.len && ctx->opt.before_output)
		ctx->opt.before_output(ctx->opt.output_arg);
	if (ctx->out.len)
		fs_write_all(s->to, ctx->out.buf, ctx->out.len);
	strbuf_reset(&ctx->out);
	close_fd(&s->fd);
}

/* Read what the stream has, up to max chunks; at EOF close it. */
static void stream_read(struct exec_ctx *ctx, struct lunit *u, struct stream *s,
			int max)
{
	for (int i = 0; i < max && s->fd >= 0; i++) {
		ssize_t n = read(s->fd, ctx->buf, READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			stream_close(ctx, u, s);
			return;
		}
		emit(ctx, u, s, ctx->buf, (size_t)n);
	}
}

static void set_message(struct lunit *u)
{
	struct strbuf sb = STRBUF_INIT;

	if (u->message)
		return;
	if (u->cancelled) {
		strbuf_addstr(&sb, "cancelled");
	} else if (u->timed_out) {
		strbuf_addstr(&sb, "timed out after ");
		local_format_duration(&sb, u->timeout_ms);
	} else if (u->term_signal) {
		strbuf_addf(&sb, "killed by signal %d (%s)", u->term_signal,
			    strsignal(u->term_signal));
	} else {
		return;
	}
	u->message = strbuf_detach(&sb, NULL);
}

/* The main process is gone: what is left of its group goes with it (as in
 * a container), the pipes are drained, not waited on, since a daemon that
 * left the group may hold them open for ever. */
static void finish(struct exec_ctx *ctx, struct lunit *u, int status)
{
	u->reaped = 1;
	u->duration_ms = now_ms() - u->started_ms;
	if (WIFEXITED(status)) {
		u->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		u->term_signal = WTERMSIG(status);
	}
	close_fd(&u->pidfd);
	for (int i = OUT; i <= ERR; i++) {
		stream_read(ctx, u, &u->s[i], DRAIN_CHUNKS);
		if (u->s[i].fd >= 0)
			stream_close(ctx, u, &u->s[i]);
	}
	unit_log_close(&u->log);
	set_message(u);
	u->finished = 1;
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
static void check_exit(struct exec_ctx *ctx, struct lunit *u)
{
	siginfo_t si;
	int status = 0;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)u->pid, &si, WEXITED | WNOHANG | WNOWAIT)) {
		if (errno != ECHILD)
			return;
		/* SIGCHLD ignored by someone: the status is lost */
		u->message = xstrdup("exit status lost");
		finish(ctx, u, status);
		u->exit_code = -1;
		return;
	}
	if (si.si_pid != u->pid)
		return;
	kill(-u->pid, SIGKILL);
	while (waitpid(u->pid, &status, 0) < 0 && errno == EINTR)
		;
	reap_group(u->pid);
	finish(ctx, u, status);
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
	unit_log_note(&u->log, sb.buf);
	unit_log_close(&u->log);
	u->message = strbuf_detach(&sb, NULL);
	for (int i = OUT; i <= ERR; i++)
		close_fd(&u->s[i].fd);
	u->exit_code = f->step == STEP_CHDIR ? -1
		       : f->err == ENOENT    ? 127
					     : 126;
	u->reaped = u->finished = 1;
	u->duration_ms = now_ms() - u->started_ms;
}

static void spawned(struct lunit *u)
{
	if (!pidfd_disabled) {
		u->pidfd = (int)syscall(SYS_pidfd_open, u->pid, 0);
		if (u->pidfd < 0 && (errno == ENOSYS || errno == EPERM))
			pidfd_disabled = 1;
		u->pidfd = above_stdio(u->pidfd);
	}
	for (int i = OUT; i <= ERR; i++)
		if (u->s[i].fd >= 0)
			fcntl(u->s[i].fd, F_SETFL, O_NONBLOCK);
	if (u->timeout_ms)
		u->deadline_ms = u->started_ms + u->timeout_ms;
}

static void add_unit(struct exec_ctx *ctx, struct lunit *u)
{
	ALLOC_GROW(ctx->units, ctx->nr + 1, ctx->alloc);
	ctx->units[ctx->nr++] = u;
}

/* Start the child, and learn whether it could exec. */
static int start_child(struct lunit *u, struct spawn *sp, int pipes[3][2],
		       struct error *err)
{
	struct spawn_failure f;
	ssize_t n;
	pid_t pid;

	pid = spawn_child(sp);
	if (pid < 0)
		return error_set(err, EXIT_ENV, "cannot fork: %s",
				 strerror(errno));
	setpgid(pid, pid);
	u->pid = pid;
	u->started_ms = now_ms();
	for (int i = 0; i < 3; i++)
		close_fd(&pipes[i][1]);
	for (int i = OUT; i <= ERR; i++) {
		u->s[i].fd = pipes[i][0];
		pipes[i][0] = -1;
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
	struct lunit *u = NULL;
	struct spawn sp;
	int use_sh, ret = -1;

	if (!unit->workspace)
		return error_set(err, EXIT_USAGE, "no workspace");
	if (prepare_argv(ctx, unit, &use_sh, err))
		return -1;
	prepare_env(ctx, unit);
	prepare_cands(ctx, use_sh);
	u = unit_new(unit);
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
		.cands = ctx->cands,
		.shargv = ctx->shargv,
	};
	if (start_child(u, &sp, pipes, err))
		goto out;
	add_unit(ctx, u);
	u = NULL;
	ret = 0;
out:
	for (int i = 0; i < 3; i++) {
		close_fd(&pipes[i][0]);
		close_fd(&pipes[i][1]);
	}
	if (u)
		unit_free(u);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Waiting */

static long long min_timeout(long long t, long long v)
{
	if (v < 0)
		v = 0;
	return t < 0 || v < t ? v : t;
}

/* TERM at a unit's deadline, KILL at the end of its grace period. */
static void run_timers(struct exec_ctx *ctx, long long now)
{
	for (size_t i = 0; i < ctx->nr; i++) {
		struct lunit *u = ctx->units[i];

		if (u->reaped)
			continue;
		if (u->deadline_ms && now >= u->deadline_ms) {
			kill(-u->pid, SIGTERM);
			u->timed_out = 1;
			u->deadline_ms = 0;
			u->kill_ms = now + ctx->opt.grace_ms;
		}
		if (u->kill_ms && now >= u->kill_ms) {
			kill(-u->pid, SIGKILL);
			u->kill_ms = 0;
		}
	}
}

/* Without pidfd, exits are found by looking, on a poll timeout that
 * doubles while nothing happens (backoff, in ms). */
static long long poll_timeout(struct exec_ctx *ctx, long long now,
			      long long until, int backoff)
{
	long long t = until < 0 ? -1 : min_timeout(-1, until - now);

	for (size_t i = 0; i < ctx->nr; i++) {
		struct lunit *u = ctx->units[i];

		if (u->reaped)
			continue;
		if (u->deadline_ms)
			t = min_timeout(t, u->deadline_ms - now);
		if (u->kill_ms)
			t = min_timeout(t, u->kill_ms - now);
		if (u->pidfd < 0)
			t = min_timeout(t, backoff);
	}
	return t > INT_MAX ? INT_MAX : t;
}

static void watch(struct exec_ctx *ctx, size_t *n, struct lunit *u, int fd,
		  int what)
{
	ctx->pfd[*n] = (struct pollfd){.fd = fd, .events = POLLIN};
	ctx->ref[*n] = (struct pollref){.u = u, .what = what};
	(*n)++;
}

/* Each unit's pipes first, then its pidfd: once the pidfd has reaped a
 * unit, no later entry of this round names its closed pipes. */
static size_t build_pollset(struct exec_ctx *ctx)
{
	size_t n = 0;

	ALLOC_GROW(ctx->pfd, ctx->nr * 3, ctx->pfd_alloc);
	ALLOC_GROW(ctx->ref, ctx->nr * 3, ctx->ref_alloc);
	for (size_t i = 0; i < ctx->nr; i++) {
		struct lunit *u = ctx->units[i];

		if (u->reaped)
			continue;
		for (int k = OUT; k <= ERR; k++)
			if (u->s[k].fd >= 0)
				watch(ctx, &n, u, u->s[k].fd, k);
		if (u->pidfd >= 0)
			watch(ctx, &n, u, u->pidfd, WATCH_PID);
	}
	return n;
}

static void handle_events(struct exec_ctx *ctx, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct lunit *u = ctx->ref[i].u;
		int what = ctx->ref[i].what;

		if (!ctx->pfd[i].revents || u->reaped)
			continue;
		if (what == WATCH_PID)
			check_exit(ctx, u);
		else
			stream_read(ctx, u, &u->s[what], EVENT_CHUNKS);
	}
}

static void check_exits_without_pidfd(struct exec_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr; i++)
		if (!ctx->units[i]->reaped && ctx->units[i]->pidfd < 0)
			check_exit(ctx, ctx->units[i]);
}

/* Move finished units to done[], at most max. */
static int collect(struct exec_ctx *ctx, struct exec_done *done, int max)
{
	int n = 0;

	for (size_t i = 0; i < ctx->nr && n < max;) {
		struct lunit *u = ctx->units[i];

		if (!u->finished) {
			i++;
			continue;
		}
		done[n++] = (struct exec_done){
			.data = u->data,
			.exit_code = u->exit_code,
			.term_signal = u->term_signal,
			.timed_out = u->timed_out,
			.cancelled = u->cancelled,
			.message = u->message,
			.duration_ms = u->duration_ms,
		};
		u->message = NULL;
		unit_free(u);
		ctx->units[i] = ctx->units[--ctx->nr];
	}
	return n;
}

static int local_wait(struct exec_ctx *ctx, int timeout_ms,
		      struct exec_done *done, int max, struct error *err)
{
	long long until = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int backoff = 1, polled = 0;

	for (;;) {
		long long now = now_ms(), t;
		size_t nfds;
		int n;

		run_timers(ctx, now);
		check_exits_without_pidfd(ctx);
		n = collect(ctx, done, max);
		if (n || !ctx->nr || max <= 0 ||
		    (polled && until >= 0 && now >= until))
			return n;
		t = poll_timeout(ctx, now, until, backoff);
		nfds = build_pollset(ctx);
		if (poll(ctx->pfd, (nfds_t)nfds, (int)t) < 0) {
			if (errno == EINTR)
				return 0; /* the engine looks at its flags */
			return error_set(err, EXIT_ENV, "poll: %s",
					 strerror(errno));
		}
		polled = 1;
		handle_events(ctx, nfds);
		if (backoff < FALLBACK_MAX_MS)
			backoff *= 2;
	}
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
	if (ctx->opt.grace_ms <= 0)
		ctx->opt.grace_ms = DEFAULT_GRACE_MS;
	ctx->devnull = above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (ctx->devnull < 0) {
		error_set(err, EXIT_ENV, "cannot open '/dev/null': %s",
			  strerror(errno));
		free(ctx);
		return -1;
	}
	ctx->buf = xmalloc(READ_CHUNK);
	strbuf_init(&ctx->out, 0);
	strbuf_init(&ctx->paths, 0);
	strvec_init(&ctx->argv);
	strvec_init(&ctx->owned);
	*out = ctx;
	return 0;
}

static int local_running(struct exec_ctx *ctx)
{
	return (int)ctx->nr;
}

/* TERM every group now and KILL it after the grace period; a second call
 * KILLs at once (a second Ctrl-C). */
static void local_cancel_all(struct exec_ctx *ctx)
{
	long long now = now_ms();

	for (size_t i = 0; i < ctx->nr; i++) {
		struct lunit *u = ctx->units[i];

		if (u->reaped)
			continue;
		if (u->cancelled) {
			kill(-u->pid, SIGKILL);
			u->kill_ms = 0;
			continue;
		}
		kill(-u->pid, SIGTERM);
		u->cancelled = 1;
		u->deadline_ms = 0;
		if (!u->kill_ms || u->kill_ms > now + ctx->opt.grace_ms)
			u->kill_ms = now + ctx->opt.grace_ms;
	}
}

static void local_close(struct exec_ctx *ctx)
{
	struct exec_done done[16];
	struct error err = ERROR_INIT;

	if (!ctx)
		return;
	local_cancel_all(ctx);
	while (ctx->nr) {
		int n = local_wait(ctx, -1, done, (int)ARRAY_SIZE(done), &err);

		if (n < 0)
			break;
		for (int i = 0; i < n; i++)
			free(done[i].message);
	}
	/* only after a poll error: no zombie left behind */
	for (size_t i = 0; i < ctx->nr; i++) {
		struct lunit *u = ctx->units[i];

		if (!u->reaped) {
			kill(-u->pid, SIGKILL);
			while (waitpid(u->pid, NULL, 0) < 0 && errno == EINTR)
				;
			reap_group(u->pid);
		}
		unit_free(u);
	}
	error_release(&err);
	close_fd(&ctx->devnull);
	free(ctx->units);
	free(ctx->pfd);
	free(ctx->ref);
	free(ctx->buf);
	strbuf_release(&ctx->out);
	strbuf_release(&ctx->paths);
	strvec_clear(&ctx->argv);
	strvec_clear(&ctx->owned);
	free(ctx->envp);
	free(ctx->cands);
	free(ctx->shargv);
	free(ctx);
}

const struct executor executor_local = {
	.name = "local",
	.open = local_open,
	.start = local_start,
	.wait = local_wait,
	.running = local_running,
	.cancel_all = local_cancel_all,
	.resolve_image = NULL,
	.close = local_close,
};
