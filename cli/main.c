/* pipe's entry point: global options, then one command from the table. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "engine/run.h"
#include "pipefile/pipefile.h"
#include "util/log.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PIPE_VERSION
#define PIPE_VERSION "0.1.0"
#endif

const struct command commands[] = {
	{"init", cmd_init, "pipe init", "write a starter Pipefile and .pipe/",
	 "Writes a starter Pipefile (unless one exists) that validates, creates\n"
	 ".pipe/ and adds it to .gitignore."},
	{"validate", cmd_validate, "pipe validate",
	 "parse and check the Pipefile and its graph",
	 "Exits 0 with a one-line summary, or prints every error with\n"
	 "Pipefile:LINE:COL and a caret under the column, and exits 2."},
	{"run", cmd_run,
	 "pipe run [STAGE...] [-j N] [-n] [-f] [-k] [--no-cache] [--wait] "
	 "[--executor E] [--context C] [--json] [--report FILE] [--pull REMOTE]",
	 "bring stages and what they need up to date",
	 "Runs the stale stages among STAGE... (default: all) and the stale\n"
	 "stages they need, skipping fresh ones.\n\n"
	 "  -j N            run up to N stages at once (default: cores)\n"
	 "  -n, --dry-run   print the plan with reasons; run nothing\n"
	 "  -f, --force     run the named stages (all if none) even if fresh\n"
	 "  -k, --keep-going  after a failure, keep running independent "
	 "stages\n"
	 "  --no-cache      never restore a stage from the run-cache\n"
	 "  --wait          wait for another pipe run in this workspace\n"
	 "  --json          events on stdout, one JSON object a line; the\n"
	 "                  stages' output goes to stderr\n"
	 "  --report FILE   write a JUnit XML report of the run to FILE\n"
	 "  --pull REMOTE   pipe pull REMOTE first: what the remote's run-cache\n"
	 "                  has is restored, not run\n"
	 "  --executor E    run every stage with executor E\n"
	 "  --context C     the kubeconfig context for kubernetes stages\n"
	 "  -q, -v          less or more output\n\n"
	 "Exit: 0 all up to date, 1 a stage failed, 2 bad usage or Pipefile,\n"
	 "3 environment (workspace locked, daemon down), 128 + a signal\n"
	 "that stopped it (130 Ctrl-C, 129 hangup, 143 TERM)."},
	{"status", cmd_status, "pipe status [--json]",
	 "show every stage fresh or stale, with reasons",
	 "Exit 0 when every stage is fresh, 1 when any is stale, 2 on a bad\n"
	 "Pipefile. --json prints {\"stages\":[{\"name\",\"state\",\"reasons\":\n"
	 "[{\"kind\",\"path\",\"old\",\"new\",\"message\"}]}]}."},
	{"jobs", cmd_jobs, "pipe jobs [--json]",
	 "list jobs: what ran, when, with what result",
	 "One line per stage execution, newest first: ID, STAGE, output\n"
	 "COMMIT, STARTED, DURATION, DATUMS (processed+skipped/total), IN,\n"
	 "OUT, STATE (success, cached, failed, killed). --json: an array of\n"
	 "{id, stage, commit, started, duration_ms, datums{processed,skipped,\n"
	 "total}, bytes_in, bytes_out, state}."},
	{"logs", cmd_logs, "pipe logs JOB [--datum D]",
	 "print a job's captured output",
	 "JOB is an id from 'pipe jobs' (a unique prefix is enough). For a\n"
	 "datums stage every datum's log is printed, or only D's."},
	{"log", cmd_log, "pipe log STAGE", "the history of a stage's commits",
	 "Newest first: commit, time, state, duration, key.\n"
	 "'pipe log displaced' lists what pipe kept in the store before it\n"
	 "replaced files it had not written, newest first (displaced~N)."},
	{"inspect", cmd_inspect, "pipe inspect REF",
	 "provenance of a stage commit or a run",
	 "REF: a commit id (or a unique prefix), a run id, STAGE (latest),\n"
	 "STAGE~N, runs, runs~N. A stage commit is shown with its inputs and\n"
	 "hashes, parameters, image, git HEAD, times, sizes, and the upstream\n"
	 "commits it was made from, recursively."},
	{"get", cmd_get, "pipe get REF PATH [-o FILE]",
	 "print an output file as of a version",
	 "REF as for 'pipe inspect', or STAGE@REF (STAGE's commit in the run\n"
	 "REF, or REF itself when it is a commit of STAGE); PATH as in the\n"
	 "workspace. 'displaced' is the newest copy pipe kept of PATH before\n"
	 "replacing it ('pipe log displaced' lists them all, displaced~N).\n"
	 "Large files are streamed from the store."},
	{"checkout", cmd_checkout, "pipe checkout [--force] REF",
	 "put the outputs of a commit or run back into the workspace",
	 "Restores the outputs of REF (a stage commit, or every stage of a\n"
	 "run) that each stage declares now. A restored stage is fresh when\n"
	 "its current inputs give the key it was made with, stale otherwise.\n"
	 "Like git checkout, it refuses to overwrite outputs that pipe did not\n"
	 "write or that changed since, and names them.\n\n"
	 "  -f, --force   go ahead: keep a copy of those in the store first\n"
	 "                (pipe log displaced; pipe get displaced PATH)"},
	{"gc", cmd_gc, "pipe gc [--dry-run]",
	 "remove what no ref reaches from the store",
	 "Removes git objects and content-addressed files that no stage or\n"
	 "run ref reaches, and says how much it freed."},
	{"push", cmd_push, "pipe push [-j N] [--endpoint URL] [--json] REMOTE",
	 "send the store's commits, runs and large files to a remote",
	 "REMOTE is a git remote of the project ('origin'), a path, a file://,\n"
	 "ssh or https URL (anything libgit2 reaches), or s3://bucket/prefix\n"
	 "(AWS_ENDPOINT_URL_S3 or --endpoint, AWS_REGION, AWS_ACCESS_KEY_ID,\n"
	 "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or AWS_PROFILE). Sends only\n"
	 "what the remote lacks, objects before refs, and never overwrites a\n"
	 "remote ref: each workspace pushes to its own namespace. Large files\n"
	 "travel to a git remote as blobs (slow); S3 takes them in parallel.\n\n"
	 "  -j, --jobs N     transfers in flight (default 16)\n"
	 "  --endpoint URL   the S3 endpoint\n"
	 "  --json           the summary as one JSON object on stdout"},
	{"pull", cmd_pull, "pipe pull [-j N] [--endpoint URL] [--json] REMOTE",
	 "bring the remote's commits, runs and large files into the store",
	 "What other workspaces pushed lands under refs/pipe/remotes/ in the\n"
	 "store, where the run-cache finds it: the next 'pipe run' restores\n"
	 "what matches instead of running it. Never touches the workspace's\n"
	 "files nor moves a local stage. Options as for 'pipe push'."},
	{"reproduce", cmd_reproduce,
	 "pipe reproduce GIT-REV [--verify] [-o DIR]",
	 "run the project as of a git commit, from the store",
	 "Writes the project's files at GIT-REV (any git revision) into a\n"
	 "scratch tree, with the untracked inputs the runs at that commit\n"
	 "recorded, and runs the pipeline there: stages the store has are\n"
	 "restored, the rest run. Prints which came from the store, which\n"
	 "ran, and where the outputs are. The workspace's outputs, state and\n"
	 "store are left as they are.\n\n"
	 "  -o DIR      the scratch tree (default .pipe/reproduce/COMMIT);\n"
	 "              a folder holding files pipe did not write is refused\n"
	 "  --verify    run every stage again without the cache and compare\n"
	 "              its outputs with the recorded ones: 'identical', or\n"
	 "              'differs' and the paths; exit 1 if any differ\n\n"
	 "Exit: 0 reproduced (or all identical), 1 outputs differ or inputs\n"
	 "were never recorded, 2 unknown GIT-REV, no Pipefile or no run\n"
	 "at it, or DIR not pipe's, 3 workspace locked."},
	{"dag", cmd_dag, "pipe dag [--dot|--mermaid]", "print the stage graph",
	 "Without options: one line per stage in run order, with the stages it\n"
	 "reads from after '<-'. --dot: Graphviz. --mermaid: a Mermaid flowchart."},
	{"help", cmd_help, "pipe help [COMMAND|--man]",
	 "show help for a command",
	 "--man prints this whole manual as the pipe(1) man page (roff)."},
	{NULL, NULL, NULL, NULL, NULL},
};

const struct command *cli_find_command(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int cli_fail(struct error *err)
{
	int code = err->exit_code ? err->exit_code : EXIT_FAILED;

	error_print(err, stderr);
	error_release(err);
	return code;
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	const struct command *c = cli_find_command(cli->argv[0]);
	va_list ap;

	fputs("pipe: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c)
		fprintf(stderr, "usage: %s\n", c->usage);
	return EXIT_USAGE;
}

int cli_load_pipefile(const struct cli *cli, struct pipefile **out)
{
	struct error err = ERROR_INIT;

	/* through the model cache, as status and run: the same model for
	 * the same text, without parsing 100,000 stages again */
	if (pipefile_load_cached(out, cli->pipefile_path,
				 PIPE_DIR "/pipefile.cache", &err))
		return cli_fail(&err);
	return 0;
}

long cli_parse_count(const char *s)
{
	char *end;
	long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return -1;
	return v;
}

const char cli_version[] = PIPE_VERSION;
const char cli_summary[] = "make for data";
const char cli_synopsis[] = "pipe [-q|-v] [--pipefile PATH] COMMAND [ARGS]";
const char cli_description[] =
	"pipe is make for data: it reruns only the stale stages of a Pipefile.";

const struct cli_option cli_global_options[] = {
	{"--pipefile PATH", "the Pipefile (default: ./Pipefile, or $PIPEFILE)"},
	{"-q, --quiet", "only errors"},
	{"-v, --verbose", "more detail"},
	{"--version", "print the version"},
	{"-h, --help", "this help; `pipe help COMMAND` for one command"},
	{NULL, NULL},
};

static void print_usage(FILE *fp)
{
	fprintf(fp, "usage: %s\n\n%s\n\ncommands:\n", cli_synopsis,
		cli_description);
	for (const struct command *c = commands; c->name; c++)
		fprintf(fp, "  %-10s %s\n", c->name, c->summary);
	fprintf(fp, "\noptions:\n");
	for (const struct cli_option *o = cli_global_options; o->name; o++)
		fprintf(fp, "  %-16s %s\n", o->name, o->help);
}

int cmd_help(struct cli *cli)
{
	const struct command *c;

	if (cli->argc < 2) {
		print_usage(stdout);
		return EXIT_OK;
	}
	if (cli->argc > 2)
		return cli_usage_error(cli, "too many arguments");
	if (!strcmp(cli->argv[1], "--man"))
		return cli_print_man(stdout);
	c = cli_find_command(cli->argv[1]);
	if (!c) {
		fprintf(stderr, "pipe: error: unknown command '%s'\n",
			cli->argv[1]);
		return EXIT_USAGE;
	}
	printf("usage: %s\n\n%s\n", c->usage, c->summary);
	if (c->help)
		printf("\n%s\n", c->help);
	return EXIT_OK;
}

static volatile sig_atomic_t held_signal;

static void on_held_signal(int sig)
{
	static const char msg[] = "pipe: finishing what it writes first; "
				  "a second signal stops it at once\n";
	ssize_t n = write(2, msg, sizeof(msg) - 1);

	(void)n;
	held_signal = sig;
}

void cli_hold_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_held_signal;
	sa.sa_flags = SA_RESETHAND | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ENGINE_STOP_SIGNALS; i++)
		sigaction(engine_stop_signals[i], &sa, NULL);
}

int main(int argc, char **argv)
{
	struct cli cli = {0};
	const struct command *c;
	int i;

	/* `pipe run | head` must not kill pipe and orphan its stages */
	signal(SIGPIPE, SIG_IGN);
	/* Blocks of 256 KB and up are mapped on their own and given back
	 * whole when freed. glibc raises this bound to a freed block's size
	 * (up to 32 MB) by default, and then takes later large blocks (a
	 * pack merge's table, a save's buffer) from the heap, where a freed
	 * one stays resident under whatever was allocated after it. */
	mallopt(M_MMAP_THRESHOLD, 256 << 10);
	log_trace_phase("started");
	cli.pipefile_path = getenv("PIPEFILE");
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--version")) {
			printf("pipe %s\n", PIPE_VERSION);
			return EXIT_OK;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			log_verbosity = LOG_QUIET;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			log_verbosity++;
		} else if (!strcmp(a, "--pipefile") && i + 1 < argc) {
			cli.pipefile_path = argv[++i];
		} else if (!strncmp(a, "--pipefile=", 11)) {
			cli.pipefile_path = a + 11;
		} else {
			fprintf(stderr,
				"pipe: error: unknown option '%s'\n"
				"usage: pipe [-q|-v] [--pipefile PATH] "
				"COMMAND [ARGS]\n",
				a);
			return EXIT_USAGE;
		}
	}
	if (!cli.pipefile_path || !*cli.pipefile_path)
		cli.pipefile_path = "Pipefile";
	if (i >= argc) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	c = cli_find_command(argv[i]);
	if (!c) {
		fprintf(stderr,
			"pipe: error: unknown command '%s' (see 'pipe --help')\n",
			argv[i]);
		return EXIT_USAGE;
	}
	cli.argc = argc - i;
	cli.argv = argv + i;
	i = c->fn(&cli);
	return held_signal ? EXIT_SIGNAL + held_signal : i;
}
