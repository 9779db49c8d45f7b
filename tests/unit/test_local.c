/* Unit tests for the local executor: exit codes, argv and shell modes, the
 * environment, logs and streaming, exec failures, timeouts, cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "executors/executor.h"
#include "executors/local.h"
#include "executors/loop.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

static const struct executor *const ex = &executor_local;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *ws_new(void)
{
	char tmpl[] = "/tmp/pipe-local.XXXXXX";
	char *real;

	assert_non_null(mkdtemp(tmpl));
	real = realpath(tmpl, NULL);
	assert_non_null(real);
	return real;
}

static void ws_free(char *ws)
{
	assert_int_equal(fs_remove_tree(ws), 0);
	free(ws);
}

static char *ws_path(const char *ws, const char *name)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/%s", ws, name);
	return strbuf_detach(&sb, NULL);
}

/* The file's content, or NULL when it does not exist. */
static char *slurp(const char *ws, const char *name)
{
	struct strbuf sb = STRBUF_INIT;
	char *path = ws_path(ws, name);
	int rc = strbuf_read_file(&sb, path, 0);

	free(path);
	if (rc) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, NULL);
}

static void put_file(const char *ws, const char *name, const char *text,
		     mode_t mode)
{
	char *path = ws_path(ws, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	chmod(path, mode);
	free(path);
}

static struct exec_unit shell_unit(const char *ws, const char *cmd)
{
	return (struct exec_unit){
		.stage = "st",
		.workspace = ws,
		.shell = 1,
		.cmd = cmd,
	};
}

/* Wait for one unit, however many calls it takes. */
static struct exec_done wait_one(struct exec_ctx *ctx)
{
	struct error err = ERROR_INIT;
	struct exec_done d;
	int n;

	do
		n = loop_wait(ctx, -1, &d, 1, &err);
	while (n == 0);
	assert_int_equal(n, 1);
	return d;
}

static struct exec_done run_opt(const struct exec_options *opt,
				const struct exec_unit *u)
{
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	struct exec_done d;

	assert_int_equal(ex->open(&ctx, opt, &err), 0);
	assert_int_equal(ex->start(ctx, u, &err), 0);
	assert_int_equal(loop_running(ctx), 1);
	d = wait_one(ctx);
	assert_int_equal(loop_running(ctx), 0);
	ex->close(ctx);
	return d;
}

static struct exec_done run(const struct exec_unit *u)
{
	struct exec_options opt = {0};

	return run_opt(&opt, u);
}

static int run_code(const char *ws, const char *cmd)
{
	struct exec_unit u = shell_unit(ws, cmd);
	struct exec_done d = run(&u);

	free(d.message);
	return d.exit_code;
}

/* Dead: gone, or a zombie nobody reaped yet (an orphan waits for init). */
static int dead(pid_t pid)
{
	char path[64], buf[256];
	FILE *fp;
	char *p;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (!fp)
		return 1;
	p = fgets(buf, sizeof(buf), fp);
	fclose(fp);
	p = p ? strrchr(buf, ')') : NULL;
	return !p || p[2] == 'Z' || p[2] == 'X';
}

static int eventually_dead(pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		if (dead(pid))
			return 1;
		usleep(10000);
	}
	return 0;
}

/* The pid a unit wrote to a file, waiting up to 10 s for it. */
static pid_t read_pid(const char *ws, const char *name)
{
	for (int i = 0; i < 1000; i++) {
		char *s = slurp(ws, name);
		pid_t pid = s && strchr(s, '\n') ? (pid_t)atoi(s) : 0;

		free(s);
		if (pid > 0)
			return pid;
		usleep(10000);
	}
	fail_msg("no pid in '%s'", name);
	return 0;
}

static void test_registry(void **state)
{
	(void)state;
	assert_ptr_equal(executor_find("local"), &executor_local);
	assert_null(executor_find("nope"));
	assert_null(executor_find(NULL));
	assert_null(executor_local.resolve_image);
}

static void check_split(const char *cmd, const char *want)
{
	struct strvec sv = STRVEC_INIT;
	struct strbuf got = STRBUF_INIT;
	int rc = local_split_command(cmd, &sv);

	if (!want) {
		assert_int_equal(rc, 0);
		assert_int_equal(sv.nr, 0);
		return;
	}
	assert_int_equal(rc, 1);
	for (size_t i = 0; i < sv.nr; i++)
		strbuf_addf(&got, "%s<%s>", i ? " " : "", sv.v[i]);
	assert_string_equal(got.buf, want);
	strbuf_release(&got);
	strvec_clear(&sv);
}

static void test_split(void **state)
{
	(void)state;
	check_split("true", "<true>");
	check_split("  ls  -l\t/tmp ", "<ls> <-l> </tmp>");
	check_split("python train.py --lr 0.1 --out models/a-b",
		    "<python> <train.py> <--lr> <0.1> <--out> <models/a-b>");
	check_split("./run.sh x,y:z@w+v", "<./run.sh> <x,y:z@w+v>");
	check_split("echo $HOME", NULL);
	check_split("a | b", NULL);
	check_split("a && b", NULL);
	check_split("a; b", NULL);
	check_split("a > out", NULL);
	check_split("echo 'x y'", NULL);
	check_split("echo \"x\"", NULL);
	check_split("echo a\\ b", NULL);
	check_split("ls *.csv", NULL);
	check_split("echo ~", NULL);
	check_split("FOO=1 cmd", NULL);
	check_split("cmd # comment", NULL);
	check_split("echo {a,b}", NULL);
	check_split("a\nb", NULL);
	check_split("cd /tmp", NULL);
	check_split("exit 3", NULL);
	check_split("export A", NULL);
	check_split(". ./env.sh", NULL);
	check_split("source env.sh", NULL);
	check_split("test -f x", NULL);
	check_split("ulimit -n", NULL);
	check_split("", NULL);
	check_split("   ", NULL);
	check_split("cdx /tmp", "<cdx> </tmp>");
	check_split("exitcode", "<exitcode>");
}

static void test_prefix_lines(void **state)
{
	struct strbuf out = STRBUF_INIT, pending = STRBUF_INIT;
	char *big;

	(void)state;
	loop_prefix_lines(&out, &pending, "[a] ", "one\ntw", 6);
	assert_string_equal(out.buf, "[a] one\n");
	assert_string_equal(pending.buf, "tw");
	loop_prefix_lines(&out, &pending, "[a] ", "o\n\nthree\nfo", 11);
	assert_string_equal(out.buf, "[a] one\n[a] two\n[a] \n[a] three\n");
	assert_string_equal(pending.buf, "fo");
	strbuf_reset(&out);
	loop_prefix_flush(&out, &pending, "[a] ");
	assert_string_equal(out.buf, "[a] fo\n");
	assert_int_equal(pending.len, 0);
	strbuf_reset(&out);
	loop_prefix_flush(&out, &pending, "[a] ");
	assert_string_equal(out.buf, "");

	/* a line longer than 64 KiB is cut, not kept for ever */
	big = xmalloc(70000);
	memset(big, 'x', 70000);
	loop_prefix_lines(&out, &pending, "[a] ", big, 70000);
	assert_int_equal(out.len, 4 + 70000 + 1);
	assert_int_equal(pending.len, 0);
	free(big);
	strbuf_release(&out);
	strbuf_release(&pending);
}

static void check_duration(long long ms, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	loop_format_duration(&sb, ms);
	assert_string_equal(sb.buf, want);
	strbuf_release(&sb);
}

static void test_format_duration(void **state)
{
	(void)state;
	check_duration(0, "0ms");
	check_duration(250, "250ms");
	check_duration(1000, "1s");
	check_duration(1500, "1.5s");
	check_duration(1250, "1.25s");
	check_duration(30000, "30s");
	check_duration(90000, "1m30s");
	check_duration(1800000, "30m");
	check_duration(3900000, "1h5m");
}

static void test_exit_codes(void **state)
{
	char *ws = ws_new();
	char *const argv[] = {"sh", "-c", "exit 4", NULL};
	struct exec_unit u = {.stage = "s", .workspace = ws, .argv = argv};
	struct exec_done d;

	(void)state;
	assert_int_equal(run_code(ws, "true"), 0);
	assert_int_equal(run_code(ws, "false"), 1);
	assert_int_equal(run_code(ws, "exit 3"), 3);
	assert_int_equal(run_code(ws, "sh -c exit\\ 5"), 5);
	d = run(&u);
	assert_int_equal(d.exit_code, 4);
	assert_int_equal(d.term_signal, 0);
	assert_null(d.message);
	assert_false(d.timed_out);
	assert_false(d.cancelled);

	u = shell_unit(ws, "kill -9 $$");
	d = run(&u);
	assert_int_equal(d.exit_code, -1);
	assert_int_equal(d.term_signal, SIGKILL);
	assert_non_null(d.message);
	assert_non_null(strstr(d.message, "killed by signal 9"));
	free(d.message);
	ws_free(ws);
}

static void test_argv_spaces(void **state)
{
	char *ws = ws_new();
	char *const argv[] = {"sh",    "-c",  "printf '%s|' \"$@\" > args",
			      "sh",    "a b", "c  'd'",
			      "$HOME", NULL};
	struct exec_unit u = {.stage = "s", .workspace = ws, .argv = argv};
	struct exec_done d = run(&u);
	char *args;

	(void)state;
	assert_int_equal(d.exit_code, 0);
	args = slurp(ws, "args");
	assert_string_equal(args, "a b|c  'd'|$HOME|");
	free(args);
	ws_free(ws);
}

static void test_env_and_cwd(void **state)
{
	char *ws = ws_new();
	char *const env[] = {"FOO=bar baz", "PIPE_STAGE=not-this", "X=1", "X=2",
			     NULL};
	struct exec_unit u = shell_unit(
		ws, "printf '%s|%s|%s|%s|%s\\n' \"$FOO\" \"$PIPE_STAGE\" "
		    "\"$PIPE_WORKSPACE\" \"$X\" \"$PIPE_LOCAL_TEST\" > env; "
		    "pwd -P > cwd; test -t 0 || cat > stdin");
	struct exec_done d;
	struct strbuf want = STRBUF_INIT;
	char *s, *log;

	(void)state;
	setenv("PIPE_LOCAL_TEST", "inherited", 1);
	u.env = env;
	u.stage = "train";
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	strbuf_addf(&want, "bar baz|train|%s|2|inherited\n", ws);
	s = slurp(ws, "env");
	assert_string_equal(s, want.buf);
	free(s);
	strbuf_reset(&want);
	strbuf_addf(&want, "%s\n", ws);
	s = slurp(ws, "cwd");
	assert_string_equal(s, want.buf);
	free(s);
	s = slurp(ws, "stdin"); /* /dev/null: empty */
	assert_string_equal(s, "");
	free(s);

	/* without a shell too: env(1) is run directly */
	u = shell_unit(ws, "env");
	u.env = env;
	u.stage = "direct";
	u.log_path = s = ws_path(ws, "env.log");
	d = run(&u);
	free(s);
	assert_int_equal(d.exit_code, 0);
	log = slurp(ws, "env.log");
	assert_non_null(strstr(log, "\nFOO=bar baz\n"));
	assert_non_null(strstr(log, "\nPIPE_STAGE=direct\n"));
	assert_non_null(strstr(log, "\nX=2\n"));
	assert_null(strstr(log, "X=1\n"));
	assert_null(strstr(log, "not-this"));
	assert_non_null(strstr(log, "\nPIPE_LOCAL_TEST=inherited\n"));
	free(log);
	unsetenv("PIPE_LOCAL_TEST");
	strbuf_release(&want);
	ws_free(ws);
}

/* The unit's own PATH finds its programs, as sh would. */
static void test_path_lookup(void **state)
{
	char *ws = ws_new();
	char *bin = ws_path(ws, "bin");
	struct strbuf path = STRBUF_INIT;
	char *env[] = {NULL, NULL};
	struct exec_unit u = shell_unit(ws, "mytool one");
	struct exec_done d;
	char *s;

	(void)state;
	assert_int_equal(fs_mkdir_p(bin, 0755), 0);
	put_file(ws, "bin/mytool", "#!/bin/sh\necho \"$1\" > tool.out\n", 0755);
	strbuf_addf(&path, "PATH=/nonexistent::%s:/usr/bin:/bin", bin);
	env[0] = path.buf;
	u.env = env;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	s = slurp(ws, "tool.out");
	assert_string_equal(s, "one\n");
	free(s);

	/* a script without #! runs under sh, as with execvp */
	put_file(ws, "script", "echo hi > script.out\n", 0755);
	u = shell_unit(ws, "./script");
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	s = slurp(ws, "script.out");
	assert_string_equal(s, "hi\n");
	free(s);

	/* not executable: 126 */
	put_file(ws, "noexec", "echo no\n", 0644);
	u = shell_unit(ws, "./noexec");
	d = run(&u);
	assert_int_equal(d.exit_code, 126);
	assert_string_equal(d.message,
			    "cannot run './noexec': Permission denied");
	free(d.message);
	strbuf_release(&path);
	free(bin);
	ws_free(ws);
}

/* Run u in ctx: it succeeds and tool.out holds want. */
static void assert_tool_says(struct exec_ctx *ctx, const struct exec_unit *u,
			     const char *want)
{
	struct error err = ERROR_INIT;
	struct exec_done d;
	char *s;

	assert_int_equal(ex->start(ctx, u, &err), 0);
	d = wait_one(ctx);
	assert_int_equal(d.exit_code, 0);
	s = slurp(u->workspace, "tool.out");
	assert_string_equal(s, want);
	free(s);
}

/* Programs are looked up on PATH once per executor (as sh's hash table):
 * the one found is tried first, the rest of PATH after it as execvp
 * would, and another PATH is looked up on its own. */
static void test_path_found_once(void **state)
{
	char *ws = ws_new();
	char *one = ws_path(ws, "one"), *two = ws_path(ws, "two");
	char *tool = ws_path(ws, "one/tool");
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	char *env_a[] = {NULL, NULL}, *env_b[] = {NULL, NULL};
	struct exec_unit u = shell_unit(ws, "tool x");
	struct error err = ERROR_INIT;
	struct exec_ctx *ctx;

	(void)state;
	assert_int_equal(fs_mkdir_p(one, 0755), 0);
	assert_int_equal(fs_mkdir_p(two, 0755), 0);
	put_file(ws, "one/tool", "#!/bin/sh\necho one > tool.out\n", 0755);
	put_file(ws, "two/tool", "#!/bin/sh\necho two > tool.out\n", 0755);
	strbuf_addf(&a, "PATH=%s/one:%s/two:/usr/bin:/bin", ws, ws);
	strbuf_addf(&b, "PATH=%s/two:/usr/bin:/bin", ws);
	env_a[0] = a.buf;
	env_b[0] = b.buf;
	assert_int_equal(ex->open(&ctx, NULL, &err), 0);
	u.env = env_a;
	assert_tool_says(ctx, &u, "one\n");
	/* gone since it was found: the rest of PATH, in order */
	assert_int_equal(unlink(tool), 0);
	assert_tool_says(ctx, &u, "two\n");
	put_file(ws, "one/tool", "#!/bin/sh\necho one > tool.out\n", 0755);
	u.env = env_b;
	assert_tool_says(ctx, &u, "two\n");
	ex->close(ctx);
	strbuf_release(&a);
	strbuf_release(&b);
	free(one);
	free(two);
	free(tool);
	ws_free(ws);
}

static void test_log_both_streams(void **state)
{
	char *ws = ws_new();
	char *log_path = ws_path(ws, "logs/deep/st.log");
	struct exec_unit u = shell_unit(ws, "echo out; echo err >&2; exit 2");
	struct exec_done d;
	struct stat st;
	char *log;

	(void)state;
	u.log_path = log_path;
	d = run(&u);
	assert_int_equal(d.exit_code, 2);
	log = slurp(ws, "logs/deep/st.log");
	assert_string_equal(log, "out\nerr\n");
	free(log);
	assert_int_equal(stat(log_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	/* truncated on the next run */
	u = shell_unit(ws, "echo again");
	u.log_path = log_path;
	d = run(&u);
	log = slurp(ws, "logs/deep/st.log");
	assert_string_equal(log, "again\n");
	free(log);
	free(log_path);
	ws_free(ws);
}

/* A unit that prints nothing leaves no log file, streamed or not. */
static void test_log_only_on_output(void **state)
{
	char *ws = ws_new();
	char *log_path = ws_path(ws, "logs/quiet.log");
	struct exec_options opt = {.stream = 1};
	struct exec_unit u = shell_unit(ws, "true");
	struct stat st;

	(void)state;
	u.log_path = log_path;
	assert_int_equal(run(&u).exit_code, 0);
	assert_int_not_equal(stat(log_path, &st), 0);
	assert_int_equal(run_opt(&opt, &u).exit_code, 0);
	assert_int_not_equal(stat(log_path, &st), 0);
	free(log_path);
	log_path = ws_path(ws, "logs");
	assert_int_not_equal(stat(log_path, &st), 0);
	free(log_path);
	ws_free(ws);
}

/* Pipe's stdout and stderr go to files while fn runs. */
struct capture {
	int saved[2];
};

static void capture_begin(struct capture *c, const char *ws)
{
	const char *names[] = {"captured.out", "captured.err"};

	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 2; i++) {
		char *p = ws_path(ws, names[i]);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		assert_true(fd >= 0);
		c->saved[i] = dup(i + 1);
		dup2(fd, i + 1);
		close(fd);
		free(p);
	}
}

static void capture_end(struct capture *c)
{
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 2; i++) {
		dup2(c->saved[i], i + 1);
		close(c->saved[i]);
	}
}

static void test_stream_prefix(void **state)
{
	char *ws = ws_new();
	struct exec_options opt = {.stream = 1};
	struct exec_unit u = shell_unit(
		ws, "printf 'a\\nb\\npartial'; echo e >&2; printf 'e2' >&2");
	struct capture c;
	struct exec_done d;
	char *s;

	(void)state;
	u.label = "lbl";
	u.log_path = s = ws_path(ws, "x.log");
	capture_begin(&c, ws);
	d = run_opt(&opt, &u);
	capture_end(&c);
	free(s);
	assert_int_equal(d.exit_code, 0);
	s = slurp(ws, "captured.out");
	assert_string_equal(s, "[lbl] a\n[lbl] b\n[lbl] partial\n");
	free(s);
	s = slurp(ws, "captured.err");
	assert_string_equal(s, "[lbl] e\n[lbl] e2\n");
	free(s);
	s = slurp(ws, "x.log");
	assert_non_null(strstr(s, "a\nb\npartial"));
	assert_non_null(strstr(s, "e\n"));
	assert_int_equal(strlen(s), strlen("a\nb\npartiale\ne2"));
	free(s);

	/* no label: the stage */
	u = shell_unit(ws, "echo hi");
	capture_begin(&c, ws);
	d = run_opt(&opt, &u);
	capture_end(&c);
	s = slurp(ws, "captured.out");
	assert_string_equal(s, "[st] hi\n");
	free(s);
	ws_free(ws);
}

/* A unit printing much more than the cap: the log keeps its head and
 * tail, the terminal gets every line. */
static void test_log_capped(void **state)
{
	char *ws = ws_new();
	struct exec_options opt = {.stream = 1};
	struct exec_unit u = shell_unit(ws, "seq 1 200000");
	struct capture c;
	struct exec_done d;
	char *s, *log = ws_path(ws, "big.log");
	struct stat st;

	(void)state;
	u.log_path = log;
	u.log_max = 10000;
	capture_begin(&c, ws);
	d = run_opt(&opt, &u);
	capture_end(&c);
	assert_int_equal(d.exit_code, 0);
	assert_int_equal(stat(log, &st), 0);
	assert_true(st.st_size <= 10000 + 64);
	s = slurp(ws, "big.log");
	assert_memory_equal(s, "1\n2\n3\n", 6);
	assert_non_null(strstr(s, " bytes cut ...]\n"));
	assert_non_null(strstr(s, "\n199999\n200000\n"));
	free(s);
	s = slurp(ws, "captured.out");
	assert_non_null(strstr(s, "[st] 100000\n"));
	assert_non_null(strstr(s, "[st] 200000\n"));
	free(s);

	/* not streamed (-q): the same log */
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_int_equal(stat(log, &st), 0);
	assert_true(st.st_size <= 10000 + 64);
	free(log);
	ws_free(ws);
}

/* Two units printing many lines at once: every line arrives whole. */
static void test_stream_no_interleave(void **state)
{
	static const char cmd[] =
		"i=0; while [ $i -lt 3000 ]; do "
		"echo \"$PIPE_STAGE-$i-0123456789012345678901234567890123456789"
		"01234567890123456789\"; i=$((i+1)); done";
	char *ws = ws_new();
	struct exec_options opt = {.stream = 1};
	struct exec_unit u[2] = {shell_unit(ws, cmd), shell_unit(ws, cmd)};
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	struct capture c;
	int count[2] = {0, 0};
	char *s, *line, *save;

	(void)state;
	u[0].stage = "a";
	u[1].stage = "b";
	capture_begin(&c, ws);
	assert_int_equal(ex->open(&ctx, &opt, &err), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(ex->start(ctx, &u[i], &err), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(wait_one(ctx).exit_code, 0);
	ex->close(ctx);
	capture_end(&c);
	s = slurp(ws, "captured.out");
	for (line = strtok_r(s, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int k = line[1] == 'a' ? 0 : 1;
		char want[128];

		snprintf(want, sizeof(want),
			 "[%c] %c-%d-012345678901234567890123456789012345678901"
			 "234567890123456789",
			 line[1], line[1], count[k]);
		assert_string_equal(line, want);
		count[k]++;
	}
	assert_int_equal(count[0], 3000);
	assert_int_equal(count[1], 3000);
	free(s);
	ws_free(ws);
}

static void test_not_found(void **state)
{
	char *ws = ws_new();
	char *const argv[] = {"no-such-cmd-xyz", "a b", NULL};
	struct exec_unit u = shell_unit(ws, "no-such-cmd-xyz arg");
	struct exec_done d;
	char *s;

	(void)state;
	u.log_path = s = ws_path(ws, "nf.log");
	d = run(&u);
	free(s);
	assert_int_equal(d.exit_code, 127);
	assert_string_equal(
		d.message,
		"cannot run 'no-such-cmd-xyz': No such file or directory");
	free(d.message);
	s = slurp(ws, "nf.log");
	assert_string_equal(
		s,
		"pipe: cannot run 'no-such-cmd-xyz': No such file or directory\n");
	free(s);

	u = (struct exec_unit){.stage = "s", .workspace = ws, .argv = argv};
	d = run(&u);
	assert_int_equal(d.exit_code, 127);
	assert_string_equal(
		d.message,
		"cannot run 'no-such-cmd-xyz': No such file or directory");
	free(d.message);

	/* through sh: the shell's own 127 */
	assert_int_equal(run_code(ws, "no-such-cmd-xyz 2>/dev/null"), 127);

	/* a missing workspace */
	s = ws_path(ws, "gone");
	u = shell_unit(s, "true");
	d = run(&u);
	assert_int_equal(d.exit_code, -1);
	assert_non_null(strstr(d.message, "cannot enter workspace '"));
	assert_non_null(strstr(d.message, "/gone': No such file or directory"));
	free(d.message);
	free(s);
	ws_free(ws);
}

static void test_start_errors(void **state)
{
	char *ws = ws_new();
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	char *const empty[] = {NULL};
	struct exec_unit u = shell_unit(ws, "");

	(void)state;
	assert_int_equal(ex->open(&ctx, NULL, &err), 0);
	assert_int_equal(ex->start(ctx, &u, &err), -1);
	assert_string_equal(err.msg.buf, "empty command");
	u = (struct exec_unit){.stage = "s", .workspace = ws, .argv = empty};
	assert_int_equal(ex->start(ctx, &u, &err), -1);
	assert_int_equal(loop_running(ctx), 0);
	ex->close(ctx);
	error_release(&err);
	ws_free(ws);
}

static void test_timeout_kills_group(void **state)
{
	char *ws = ws_new();
	struct exec_options opt = {.grace_ms = 2000};
	struct exec_unit u =
		shell_unit(ws, "sleep 30 & echo $! > pid; sleep 30");
	long long t0 = now_ms();
	struct exec_done d;

	(void)state;
	u.timeout_ms = 1000;
	d = run_opt(&opt, &u);
	assert_true(now_ms() - t0 < 10000);
	assert_true(d.timed_out);
	assert_false(d.cancelled);
	assert_int_equal(d.term_signal, SIGTERM);
	assert_int_equal(d.exit_code, -1);
	assert_string_equal(d.message, "timed out after 1s");
	assert_true(d.duration_ms >= 1000);
	assert_true(eventually_dead(read_pid(ws, "pid")));
	free(d.message);
	ws_free(ws);
}

/* TERM ignored: KILL after the grace period. */
static void test_timeout_grace(void **state)
{
	char *ws = ws_new();
	struct exec_options opt = {.grace_ms = 300};
	struct exec_unit u = shell_unit(ws, "trap '' TERM; sleep 30");
	long long t0 = now_ms();
	struct exec_done d;

	(void)state;
	u.timeout_ms = 1000; /* sh sets its trap well before */
	d = run_opt(&opt, &u);
	assert_true(now_ms() - t0 < 10000);
	assert_true(d.timed_out);
	assert_int_equal(d.term_signal, SIGKILL);
	assert_true(d.duration_ms >= 1300);
	assert_string_equal(d.message, "timed out after 1s");
	free(d.message);
	ws_free(ws);
}

static void test_cancel_all(void **state)
{
	char *ws = ws_new();
	struct exec_options opt = {.grace_ms = 2000};
	struct exec_unit u[2] = {
		shell_unit(ws, "sleep 30 & echo $! > pid0; sleep 30"),
		shell_unit(ws, "sleep 30 & echo $! > pid1; sleep 30"),
	};
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	struct exec_done d[2];
	pid_t pid[2];
	long long t0 = now_ms();
	int n = 0;

	(void)state;
	u[0].data = &u[0];
	u[1].data = &u[1];
	assert_int_equal(ex->open(&ctx, &opt, &err), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(ex->start(ctx, &u[i], &err), 0);
	pid[0] = read_pid(ws, "pid0");
	pid[1] = read_pid(ws, "pid1");
	assert_int_equal(loop_running(ctx), 2);
	assert_int_equal(loop_wait(ctx, 0, d, 2, &err), 0);
	loop_cancel_all(ctx);
	while (n < 2) {
		int k = loop_wait(ctx, -1, d + n, 2 - n, &err);

		assert_true(k >= 0);
		n += k;
	}
	assert_true(now_ms() - t0 < 15000);
	assert_int_equal(loop_running(ctx), 0);
	assert_true(d[0].data != d[1].data);
	for (int i = 0; i < 2; i++) {
		assert_true(d[i].cancelled);
		assert_false(d[i].timed_out);
		assert_string_equal(d[i].message, "cancelled");
		free(d[i].message);
		assert_true(eventually_dead(pid[i]));
	}
	ex->close(ctx);
	ws_free(ws);
}

/* close() with units still running cancels them and reaps them. */
static void test_close_running(void **state)
{
	char *ws = ws_new();
	struct exec_options opt = {.grace_ms = 200};
	struct exec_unit u = shell_unit(ws, "trap '' TERM; echo $$ > pid; "
					    "sleep 30");
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	long long t0 = now_ms();
	pid_t pid;

	(void)state;
	assert_int_equal(ex->open(&ctx, &opt, &err), 0);
	assert_int_equal(ex->start(ctx, &u, &err), 0);
	pid = read_pid(ws, "pid");
	ex->close(ctx);
	assert_true(now_ms() - t0 < 10000);
	assert_true(kill(pid, 0) < 0 && errno == ESRCH);
	ws_free(ws);
}

static long long read_ll(const char *ws, const char *name)
{
	char *s = slurp(ws, name);
	long long v;

	assert_non_null(s);
	v = atoll(s);
	free(s);
	return v;
}

static void test_parallel_overlap(void **state)
{
	char *ws = ws_new();
	struct exec_unit u[2] = {
		shell_unit(ws, "date +%s%N > s0; sleep 0.5; date +%s%N > e0"),
		shell_unit(ws, "date +%s%N > s1; sleep 0.5; date +%s%N > e1"),
	};
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	long long s0, s1, e0, e1;

	(void)state;
	assert_int_equal(ex->open(&ctx, NULL, &err), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(ex->start(ctx, &u[i], &err), 0);
	assert_int_equal(loop_running(ctx), 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(wait_one(ctx).exit_code, 0);
	ex->close(ctx);
	s0 = read_ll(ws, "s0");
	s1 = read_ll(ws, "s1");
	e0 = read_ll(ws, "e0");
	e1 = read_ll(ws, "e1");
	assert_true((s0 > s1 ? s0 : s1) < (e0 < e1 ? e0 : e1));
	ws_free(ws);
}

static void test_running_counts(void **state)
{
	char *ws = ws_new();
	struct exec_unit u[3] = {
		shell_unit(ws, "true"),
		shell_unit(ws, "no-such-cmd-xyz"),
		shell_unit(ws, "sleep 0.2"),
	};
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	struct exec_done d[3];
	int n = 0;

	(void)state;
	assert_int_equal(ex->open(&ctx, NULL, &err), 0);
	assert_int_equal(loop_running(ctx), 0);
	assert_int_equal(loop_wait(ctx, -1, d, 3, &err), 0); /* none: at once */
	for (int i = 0; i < 3; i++) {
		u[i].data = &u[i];
		assert_int_equal(ex->start(ctx, &u[i], &err), 0);
		assert_int_equal(loop_running(ctx), i + 1);
	}
	while (n < 3) {
		int k = loop_wait(ctx, -1, d + n, 1, &err);

		assert_true(k == 0 || k == 1);
		n += k;
		assert_int_equal(loop_running(ctx), 3 - n);
	}
	for (int i = 0; i < 3; i++) {
		struct exec_unit *w = d[i].data;

		assert_int_equal(d[i].exit_code, w == &u[1] ? 127 : 0);
		free(d[i].message);
	}
	ex->close(ctx);
	ws_free(ws);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* wait() returns 0 on its timeout and when a signal interrupts it. */
static void test_wait_timeout_and_signal(void **state)
{
	char *ws = ws_new();
	struct exec_unit u = shell_unit(ws, "sleep 30");
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	struct exec_done d;
	struct sigaction sa, old;
	struct itimerval it = {{0, 20000}, {0, 20000}}, off = {0};

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART, as the engine's */
	sigaction(SIGALRM, &sa, &old);
	assert_int_equal(ex->open(&ctx, NULL, &err), 0);
	assert_int_equal(ex->start(ctx, &u, &err), 0);
	/* the child reset its handlers, not ours (it shares our memory) */
	sigaction(SIGALRM, NULL, &sa);
	assert_ptr_equal(sa.sa_handler, on_alarm);
	assert_int_equal(loop_wait(ctx, 0, &d, 1, &err), 0);
	assert_int_equal(loop_wait(ctx, 50, &d, 1, &err), 0);

	setitimer(ITIMER_REAL, &it, NULL);
	assert_int_equal(loop_wait(ctx, -1, &d, 1, &err), 0);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	assert_true(alarms > 0);
	assert_int_equal(loop_running(ctx), 1);

	loop_cancel_all(ctx);
	d = wait_one(ctx);
	assert_true(d.cancelled);
	assert_int_equal(d.term_signal, SIGTERM);
	free(d.message);
	ex->close(ctx);
	ws_free(ws);
}

/* A daemon that left the group keeps the pipes open: the unit still ends
 * when its main process does. */
static void test_daemon_holds_pipe(void **state)
{
	char *ws = ws_new();
	struct exec_options opt = {.stream = 1};
	struct exec_unit u = shell_unit(
		ws, "setsid sh -c 'echo $$ > dpid; exec sleep 30' & "
		    "while ! test -s dpid; do sleep 0.01; done; echo main");
	struct capture c;
	long long t0 = now_ms();
	struct exec_done d;
	char *s;
	pid_t pid;

	(void)state;
	capture_begin(&c, ws);
	d = run_opt(&opt, &u);
	capture_end(&c);
	assert_int_equal(d.exit_code, 0);
	assert_true(now_ms() - t0 < 10000);
	s = slurp(ws, "captured.out");
	assert_string_equal(s, "[st] main\n");
	free(s);
	pid = read_pid(ws, "dpid");
	kill(pid, SIGKILL);
	ws_free(ws);
}

static void run_basic_units(const char *ws)
{
	struct exec_unit u = shell_unit(ws, "sleep 30");
	struct exec_options opt = {.grace_ms = 200};
	struct exec_done d;

	assert_int_equal(run_code(ws, "true"), 0);
	assert_int_equal(run_code(ws, "false"), 1);
	assert_int_equal(run_code(ws, "sleep 0.1; exit 3"), 3);
	u.timeout_ms = 100;
	d = run_opt(&opt, &u);
	assert_true(d.timed_out);
	free(d.message);
}

/* Kernels before 5.3 have no pidfd_open: exits are polled for. */
static void test_without_pidfd(void **state)
{
	char *ws = ws_new();

	(void)state;
	local_disable_pidfd(1);
	run_basic_units(ws);
	local_disable_pidfd(0);
	ws_free(ws);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Many short units, two at a time, all reported; no descriptor leaks. */
static void test_many_units(void **state)
{
	enum { N = 400 };
	char *ws = ws_new();
	struct exec_options opt = {.stream = 1};
	struct exec_unit u = shell_unit(ws, "true");
	struct exec_ctx *ctx;
	struct error err = ERROR_INIT;
	struct exec_done d[2];
	int fds = count_fds(), started = 0, ended = 0;
	long long t0 = now_ms();
	char *log = ws_path(ws, "true.log");

	(void)state;
	u.log_path = log;
	assert_int_equal(ex->open(&ctx, &opt, &err), 0);
	while (ended < N) {
		int n;

		while (started < N && loop_running(ctx) < 2) {
			assert_int_equal(ex->start(ctx, &u, &err), 0);
			started++;
		}
		n = loop_wait(ctx, -1, d, 2, &err);
		assert_true(n >= 0);
		for (int i = 0; i < n; i++)
			assert_int_equal(d[i].exit_code, 0);
		ended += n;
	}
	ex->close(ctx);
	print_message("%d units of 'true' in %lld ms\n", N, now_ms() - t0);
	assert_int_equal(count_fds(), fds);
	free(log);
	ws_free(ws);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_prefix_lines),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_argv_spaces),
		cmocka_unit_test(test_env_and_cwd),
		cmocka_unit_test(test_path_lookup),
		cmocka_unit_test(test_path_found_once),
		cmocka_unit_test(test_log_both_streams),
		cmocka_unit_test(test_stream_prefix),
		cmocka_unit_test(test_stream_no_interleave),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_log_only_on_output),
		cmocka_unit_test(test_log_capped),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_timeout_grace),
		cmocka_unit_test(test_cancel_all),
		cmocka_unit_test(test_close_running),
		cmocka_unit_test(test_parallel_overlap),
		cmocka_unit_test(test_running_counts),
		cmocka_unit_test(test_wait_timeout_and_signal),
		cmocka_unit_test(test_daemon_holds_pipe),
		cmocka_unit_test(test_without_pidfd),
		cmocka_unit_test(test_many_units),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
