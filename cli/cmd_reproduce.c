/* pipe reproduce GIT-REV [--verify] [-o DIR]: the project at an old
 * commit, run again from the store (engine/reproduce.c prepares it; the
 * run is `pipe run` in the scratch workspace, a process of its own). */
#include "cli/cli.h"
#include "engine/reproduce.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child;

/* TERM or HUP for pipe reaches the run too; Ctrl-C reaches it from the
 * terminal already. pipe waits for it to stop its stages. */
static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

/* The child: it dies with pipe, which holds the workspace's lock while it
 * runs (the run writes nothing there, but reads the store gc sweeps; the
 * lock is not handed down, or a stage that outlives the run would keep
 * it), and it sees no git repository around the scratch tree. */
/* This program, for the run: the file the kernel was asked to execute
 * (under valgrind /proc/self/exe is valgrind's tool), made absolute before
 * anything changes folder. */
static char *self_path(void)
{
	const char *fn = (const char *)getauxval(AT_EXECFN);
	char *p = fn ? realpath(fn, NULL) : NULL;

	return p ? p : xstrdup("/proc/self/exe");
}

static char *self;

static void exec_run(const struct reproduce *r, int verify)
{
	char *ceiling = xstrdup(r->dir);
	char *argv[] = {"pipe", "--pipefile", r->pipefile, "run",
			NULL,	NULL,	      NULL};

	if (verify) { /* every stage runs, none from the store */
		argv[4] = "-f";
		argv[5] = "--no-cache";
	}

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	*strrchr(ceiling, '/') = '\0';
	setenv("GIT_CEILING_DIRECTORIES", *ceiling ? ceiling : "/", 1);
	unsetenv("GIT_DIR");
	unsetenv("GIT_WORK_TREE");
	unsetenv("GIT_INDEX_FILE");
	unsetenv("PIPEFILE");
	if (chdir(r->workspace) == 0)
		execv(self, argv);
	log_error("cannot run pipe in '%s': %s", r->workspace, strerror(errno));
	_exit(EXIT_ENV);
}

static int run_in_scratch(const struct reproduce *r, int verify)
{
	struct sigaction sa, old_term, old_hup, old_int;
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		log_error("cannot start pipe run: %s", strerror(errno));
		return EXIT_ENV;
	}
	if (!pid)
		exec_run(r, verify);
	child = pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, &old_int);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	sigaction(SIGINT, &old_int, NULL);
	child = 0;
	if (WIFSIGNALED(status))
		return EXIT_SIGNAL + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int cmd_reproduce(struct cli *cli)
{
	struct reproduce_options o = {NULL, NULL, cli->pipefile_path};
	struct reproduce r;
	struct error err = ERROR_INIT;
	size_t differs = 0;
	int verify = 0, rc;

	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i];

		if (!strcmp(a, "--verify"))
			verify = 1;
		else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (++i >= cli->argc || !*cli->argv[i])
				return cli_usage_error(cli,
						       "-o needs a folder");
			o.out_dir = cli->argv[i];
		} else if (a[0] == '-' && a[1])
			return cli_usage_error(cli, "unknown option '%s'", a);
		else if (o.rev)
			return cli_usage_error(cli, "name one GIT-REV");
		else
			o.rev = a;
	}
	if (!o.rev)
		return cli_usage_error(cli, "name the GIT-REV to reproduce");
	self = self_path();
	if (reproduce_prepare(&r, &o, &err)) {
		free(self);
		reproduce_release(&r);
		return cli_fail(&err);
	}
	log_info("reproducing %.12s in %s", r.commit, r.workspace);
	rc = run_in_scratch(&r, verify);
	if (rc != EXIT_OK)
		log_error("the run in '%s' failed (exit %d)", r.workspace, rc);
	else if (verify ? reproduce_verify(&r, stdout, &differs, &err)
			: reproduce_report(&r, stdout, &err))
		rc = cli_fail(&err);
	else if (differs)
		rc = EXIT_FAILED;
	reproduce_release(&r);
	free(self);
	return rc;
}
