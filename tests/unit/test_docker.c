/* Unit tests for the Docker executor against the real daemon (started by
 * tests/docker-env.sh when needed): outputs, read-only inputs, no network,
 * exit codes and logs, OOM, timeouts, cancel, cleanup, image resolution;
 * and its parsers (log frames, image names, JSON) without a daemon. The
 * daemon tests skip only when no daemon can be started, and fail instead
 * in CI or with PIPE_REQUIRE=docker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executors/docker.h"
#include "executors/executor.h"
#include "executors/loop.h"
#include "executors/http.h"
#include "executors/json.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

static const struct executor *const ex = &executor_docker;

static int docker_up;  /* a daemon answers */
static char *image_id; /* of pipe-test/busybox:1 */
static char *root;     /* the repository */

#define IMAGE "pipe-test/busybox:1"

/* Whether a skipped docker test is a failure here: in CI (CI set, but not
 * to "false" or "0") or when PIPE_REQUIRE names docker or all (as
 * tests/test-env.sh decides for the shell tests). */
static int skip_fails(void)
{
	const char *ci = getenv("CI"), *req = getenv("PIPE_REQUIRE");

	if (ci && *ci && strcmp(ci, "false") && strcmp(ci, "0"))
		return 1;
	return req && (strstr(req, "docker") || strstr(req, "all"));
}

/* Where skips are not allowed a missing daemon fails the test. */
#define NEED_DOCKER()                                                          \
	do {                                                                   \
		if (!docker_up) {                                              \
			if (skip_fails())                                      \
				fail_msg("no Docker daemon (CI or "            \
					 "PIPE_REQUIRE)");                     \
			skip();                                                \
		}                                                              \
	} while (0)

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Workspaces and files */

static char *ws_new(void)
{
	char tmpl[] = "/tmp/pipe-docker.XXXXXX";
	char *real;

	assert_non_null(mkdtemp(tmpl));
	chmod(tmpl, 0755);
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

static void put_file(const char *ws, const char *name, const char *text)
{
	char *path = ws_path(ws, name);
	int fd;

	assert_int_equal(fs_mkdir_parent(path, 0755), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	free(path);
}

static void assert_file(const char *ws, const char *name, const char *want)
{
	char *s = slurp(ws, name);

	if (!s)
		fail_msg("'%s' missing", name);
	assert_string_equal(s, want);
	free(s);
}

static int exists(const char *ws, const char *name)
{
	char *path = ws_path(ws, name);
	struct stat st;
	int r = !lstat(path, &st);

	free(path);
	return r;
}

static uid_t owner(const char *ws, const char *name)
{
	char *path = ws_path(ws, name);
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	free(path);
	return st.st_uid;
}

/* Number of entries in a folder of the workspace (-1: none). */
static int count_entries(const char *ws, const char *name)
{
	char *path = ws_path(ws, name);
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	free(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* Running units */

static struct exec_unit unit_sh(const char *ws, const char *cmd)
{
	return (struct exec_unit){
		.stage = "st",
		.workspace = ws,
		.shell = 1,
		.cmd = cmd,
		/* the tag, not the id: e2e tests rebuild the image */
		.image = IMAGE,
	};
}

static struct exec_ctx *open_ctx(const struct exec_options *opt)
{
	struct exec_ctx *ctx = NULL;
	struct error err = ERROR_INIT;

	if (ex->open(&ctx, opt, &err))
		fail_msg("open: %s", err.msg.buf);
	return ctx;
}

static struct exec_done wait_one(struct exec_ctx *ctx)
{
	struct error err = ERROR_INIT;
	struct exec_done d;
	int n;

	do
		n = loop_wait(ctx, -1, &d, 1, &err);
	while (n == 0);
	if (n < 0)
		fail_msg("wait: %s", err.msg.buf);
	assert_int_equal(n, 1);
	return d;
}

static struct exec_done run_opt(const struct exec_options *opt,
				struct exec_unit *u)
{
	struct exec_ctx *ctx = open_ctx(opt);
	struct error err = ERROR_INIT;
	struct exec_done d;
	char *log = NULL;

	if (!u->log_path)
		u->log_path = log = ws_path(u->workspace, ".pipe/logs/st.log");
	if (ex->start(ctx, u, &err))
		fail_msg("start: %s", err.msg.buf);
	assert_int_equal(loop_running(ctx), 1);
	d = wait_one(ctx);
	assert_int_equal(loop_running(ctx), 0);
	ex->close(ctx);
	if (log)
		u->log_path = NULL;
	free(log);
	return d;
}

static struct exec_done run(struct exec_unit *u)
{
	struct exec_options opt = {.grace_ms = 1000};

	return run_opt(&opt, u);
}

/* A GET to the daemon, unversioned; the body's JSON, or NULL. */
static struct json *daemon_get(const char *path)
{
	struct http_target t = {.unix_socket = "/var/run/docker.sock"};
	struct http *h;
	struct http_xfer *x;
	struct http_request req = {.method = "GET", .path = path};
	struct error err = ERROR_INIT;
	struct json *j = NULL;

	assert_int_equal(http_new(&h, &t, &err), 0);
	assert_int_equal(http_run(h, &req, &x, &err), 0);
	assert_int_equal(http_xfer_status(x), 200);
	assert_int_equal(json_parse(&j, http_xfer_body(x)->buf,
				    http_xfer_body(x)->len, &err),
			 0);
	http_xfer_free(x);
	http_free(h);
	return j;
}

/* Containers labelled with this workspace (status "running": only those
 * running), whatever their state. */
static int containers(const char *ws, const char *status)
{
	struct strbuf path = STRBUF_INIT, filters = STRBUF_INIT;
	struct json *j;
	size_t n;

	strbuf_addf(&filters, "{\"label\":[\"pipe.workspace=%s\"]", ws);
	if (status)
		strbuf_addf(&filters, ",\"status\":[\"%s\"]", status);
	strbuf_addch(&filters, '}');
	strbuf_addstr(&path, "/containers/json?all=1&filters=");
	http_escape(&path, filters.buf);
	j = daemon_get(path.buf);
	n = json_array_len(j);
	json_free(j);
	strbuf_release(&path);
	strbuf_release(&filters);
	return (int)n;
}

/* Wait until n containers of ws run (bounded: 60 s). */
static void wait_running(struct exec_ctx *ctx, const char *ws, int n)
{
	struct error err = ERROR_INIT;
	struct exec_done d;
	long long until = now_ms() + 60000;

	while (containers(ws, "running") < n) {
		assert_true(now_ms() < until);
		assert_int_equal(loop_wait(ctx, 100, &d, 1, &err), 0);
	}
}

static char *sh_output(const char *cmd)
{
	struct strbuf sb = STRBUF_INIT;
	FILE *fp = popen(cmd, "r");

	assert_non_null(fp);
	strbuf_read_fd(&sb, fileno(fp), 1 << 20);
	assert_int_equal(pclose(fp), 0);
	strbuf_trim_trailing_newline(&sb);
	return strbuf_detach(&sb, NULL);
}

/* ------------------------------------------------------------------ */
/* Without a daemon */

struct demuxed {
	struct strbuf s[3];
	int pieces;
};

static void on_piece(void *arg, int stream, const char *data, size_t len)
{
	struct demuxed *d = arg;

	assert_true(stream >= 0 && stream <= 2);
	strbuf_add(&d->s[stream], data, len);
	d->pieces++;
}

static void frame(struct strbuf *sb, int stream, const char *data, size_t len)
{
	unsigned char h[8] = {(unsigned char)stream,
			      0,
			      0,
			      0,
			      (unsigned char)(len >> 24),
			      (unsigned char)(len >> 16),
			      (unsigned char)(len >> 8),
			      (unsigned char)len};

	strbuf_add(sb, h, 8);
	strbuf_add(sb, data, len);
}

static void test_demux(void **state)
{
	struct strbuf in = STRBUF_INIT, big = STRBUF_INIT;

	(void)state;
	strbuf_addchars(&big, 'x', 70000);
	big.buf[123] = '\0'; /* binary is fine */
	frame(&in, 1, "hello\n", 6);
	frame(&in, 2, "err", 3);
	frame(&in, 1, "", 0);
	frame(&in, 1, big.buf, big.len);
	frame(&in, 2, "\n", 1);
	/* every chunk size, so that headers are cut everywhere */
	for (size_t chunk = 1; chunk <= 17; chunk++) {
		struct docker_demux dm;
		struct demuxed out;

		memset(&dm, 0, sizeof(dm));
		for (int i = 0; i < 3; i++)
			strbuf_init(&out.s[i], 0);
		for (size_t at = 0; at < in.len; at += chunk)
			docker_demux_feed(&dm, in.buf + at,
					  in.len - at < chunk ? in.len - at
							      : chunk,
					  on_piece, &out);
		assert_int_equal(out.s[1].len, 6 + big.len);
		assert_memory_equal(out.s[1].buf, "hello\n", 6);
		assert_memory_equal(out.s[1].buf + 6, big.buf, big.len);
		assert_string_equal(out.s[2].buf, "err\n");
		assert_int_equal(out.s[0].len, 0);
		assert_int_equal(dm.left, 0);
		assert_int_equal(dm.hdr_len, 0);
		for (int i = 0; i < 3; i++)
			strbuf_release(&out.s[i]);
	}
	strbuf_release(&in);
	strbuf_release(&big);
}

static void check_image(const char *image, const char *repo, const char *tag)
{
	struct strbuf r = STRBUF_INIT, t = STRBUF_INIT;
	struct error err = ERROR_INIT;

	assert_int_equal(docker_split_image(image, &r, &t, &err), 0);
	assert_string_equal(r.buf, repo);
	assert_string_equal(t.buf, tag);
	strbuf_release(&r);
	strbuf_release(&t);
}

static void test_split_image(void **state)
{
	struct strbuf r = STRBUF_INIT, t = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)state;
	check_image("busybox", "busybox", "latest");
	check_image("busybox:1.36", "busybox", "1.36");
	check_image("pipe-test/busybox:1", "pipe-test/busybox", "1");
	check_image("reg.io:5000/a/b", "reg.io:5000/a/b", "latest");
	check_image("reg.io:5000/a/b:2", "reg.io:5000/a/b", "2");
	check_image("a/b@sha256:abc", "a/b", "sha256:abc");
	assert_int_equal(docker_split_image("a b", &r, &t, &err), -1);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	assert_string_equal(err.msg.buf, "invalid image name 'a b'");
	assert_int_equal(docker_split_image("", &r, &t, &err), -1);
	error_release(&err);
	strbuf_release(&r);
	strbuf_release(&t);
}

static void test_socket_path(void **state)
{
	struct strbuf p = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)state;
	assert_int_equal(docker_socket_path(NULL, &p, &err), 0);
	assert_string_equal(p.buf, "/var/run/docker.sock");
	strbuf_reset(&p);
	assert_int_equal(docker_socket_path("", &p, &err), 0);
	assert_string_equal(p.buf, "/var/run/docker.sock");
	strbuf_reset(&p);
	assert_int_equal(docker_socket_path("unix:///run/d.sock", &p, &err), 0);
	assert_string_equal(p.buf, "/run/d.sock");
	assert_int_equal(docker_socket_path("tcp://h:2376", &p, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_string_equal(err.msg.buf,
			    "DOCKER_HOST 'tcp://h:2376' is not supported: only "
			    "unix:// sockets for now (tcp:// with TLS is "
			    "planned)");
	error_release(&err);
	strbuf_release(&p);
}

static void test_json(void **state)
{
	static const char doc[] = "{\"State\":{\"OOMKilled\":true,"
				  "\"ExitCode\":137},\"Id\":\"abc\","
				  "\"A\":[1,\"x\"]}";
	struct json *j = NULL, *o;
	struct error err = ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;
	long long v = 0;

	(void)state;
	assert_int_equal(json_parse(&j, doc, strlen(doc), &err), 0);
	assert_true(json_get_bool(j, "State.OOMKilled"));
	assert_false(json_get_bool(j, "State.Nope"));
	assert_int_equal(json_get_int(j, "State.ExitCode", &v), 0);
	assert_int_equal(v, 137);
	assert_int_equal(json_get_int(j, "Id", &v), -1);
	assert_string_equal(json_get_str(j, "Id"), "abc");
	assert_null(json_get_str(j, "Id.x"));
	assert_int_equal(json_array_len(json_get(j, "A")), 2);
	assert_null(json_array_at(json_get(j, "A"), 2));
	json_free(j);

	assert_int_equal(json_parse(&j, "{\"a\":", 5, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "invalid JSON at line 1"));

	o = json_new_object();
	json_set_str(o, "HostConfig.NetworkMode", "none");
	json_set_int(o, "HostConfig.Memory", 8);
	json_set_bool(o, "Tty", 0);
	json_put_str(o, "pipe.stage", "s\"1");
	json_dump(o, &sb);
	assert_string_equal(sb.buf, "{\"HostConfig\":{\"NetworkMode\":\"none\","
				    "\"Memory\":8},\"Tty\":false,"
				    "\"pipe.stage\":\"s\\\"1\"}");
	json_free(o);

	strbuf_reset(&sb);
	json_error_message("{\"message\":\"No such image: x\"}", 30, &sb);
	assert_string_equal(sb.buf, "No such image: x");
	strbuf_reset(&sb);
	json_error_message("  page not found\nmore", 21, &sb);
	assert_string_equal(sb.buf, "page not found");
	strbuf_reset(&sb);
	json_error_message("", 0, &sb);
	assert_string_equal(sb.buf, "(no message)");
	strbuf_release(&sb);
	error_release(&err);
}

static void test_registry(void **state)
{
	(void)state;
	assert_ptr_equal(executor_find("docker"), &executor_docker);
}

static void test_unreachable(void **state)
{
	struct exec_ctx *ctx = NULL;
	struct error err = ERROR_INIT;
	char *old =
		getenv("DOCKER_HOST") ? xstrdup(getenv("DOCKER_HOST")) : NULL;

	(void)state;
	setenv("DOCKER_HOST", "unix:///nonexistent", 1);
	assert_int_equal(ex->open(&ctx, NULL, &err), -1);
	assert_null(ctx);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_string_equal(err.msg.buf,
			    "cannot reach the Docker daemon at /nonexistent: "
			    "No such file or directory");
	/* a socket nobody listens on */
	setenv("DOCKER_HOST", "unix:///dev/null", 1);
	assert_int_equal(ex->open(&ctx, NULL, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(
		err.msg.buf, "cannot reach the Docker daemon at /dev/null: "));
	setenv("DOCKER_HOST", "tcp://127.0.0.1:2375", 1);
	assert_int_equal(ex->open(&ctx, NULL, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	if (old)
		setenv("DOCKER_HOST", old, 1);
	else
		unsetenv("DOCKER_HOST");
	free(old);
	error_release(&err);
}

/* ------------------------------------------------------------------ */
/* Images */

static char *resolve(struct exec_ctx *ctx, const char *image)
{
	struct strbuf id = STRBUF_INIT;
	struct error err = ERROR_INIT;

	if (ex->resolve_image(ctx, image, &id, &err))
		fail_msg("resolve '%s': %s", image, err.msg.buf);
	return strbuf_detach(&id, NULL);
}

static void test_resolve_image(void **state)
{
	struct exec_ctx *ctx;
	char *want, *id;

	(void)state;
	NEED_DOCKER();
	ctx = open_ctx(NULL);
	id = resolve(ctx, IMAGE);
	want = sh_output("docker image inspect -f '{{.Id}}' " IMAGE);
	assert_string_equal(id, want);
	assert_int_equal(strncmp(id, "sha256:", 7), 0);
	ex->close(ctx);
	free(want);
	free(id);
}

static void build_image(const char *tag, const char *label)
{
	struct strbuf cmd = STRBUF_INIT;

	strbuf_addf(&cmd,
		    "bash -c '. \"%s/tests/docker-env.sh\" && "
		    "pipe_test_build_image %s %s' >/dev/null",
		    root, tag, label);
	assert_int_equal(system(cmd.buf), 0);
	strbuf_release(&cmd);
}

static void test_rebuild_changes_id(void **state)
{
	struct exec_ctx *ctx;
	struct strbuf tag = STRBUF_INIT, cmd = STRBUF_INIT;
	char *a, *b, *a2;

	(void)state;
	NEED_DOCKER();
	strbuf_addf(&tag, "pipe-test/rebuild-%ld:1", (long)getpid());
	ctx = open_ctx(NULL);
	build_image(tag.buf, "one");
	a = resolve(ctx, tag.buf);
	a2 = resolve(ctx, tag.buf);
	assert_string_equal(a, a2);
	build_image(tag.buf, "two");
	b = resolve(ctx, tag.buf);
	assert_string_not_equal(a, b);
	assert_int_equal(strncmp(b, "sha256:", 7), 0);
	ex->close(ctx);
	strbuf_addf(&cmd, "docker rmi -f %s >/dev/null 2>&1", tag.buf);
	assert_int_equal(system(cmd.buf), 0);
	free(a);
	free(a2);
	free(b);
	strbuf_release(&tag);
	strbuf_release(&cmd);
}

static void test_pull_error(void **state)
{
	struct exec_ctx *ctx;
	struct strbuf id = STRBUF_INIT, name = STRBUF_INIT, want = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)state;
	NEED_DOCKER();
	ctx = open_ctx(NULL);
	strbuf_addf(&name, "pipe-test/no-such-image-%ld:1", (long)getpid());
	assert_int_equal(ex->resolve_image(ctx, name.buf, &id, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	strbuf_addf(&want, "cannot pull image '%s': ", name.buf);
	assert_int_equal(strncmp(err.msg.buf, want.buf, want.len), 0);
	assert_true(err.msg.len > want.len + 5); /* and why */
	assert_int_equal(id.len, 0);
	/* a name no reference can have: not even asked */
	assert_int_equal(ex->resolve_image(ctx, "bad name", &id, &err), -1);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	ex->close(ctx);
	error_release(&err);
	strbuf_release(&id);
	strbuf_release(&name);
	strbuf_release(&want);
}

/* ------------------------------------------------------------------ */
/* Running */

static void test_exit_code_and_log(void **state)
{
	char *ws;
	struct exec_unit u;
	struct exec_done d;
	char *s;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	u = unit_sh(ws, "echo out; echo err >&2; exit 3");
	d = run(&u);
	assert_int_equal(d.exit_code, 3);
	assert_false(d.timed_out || d.cancelled || d.oom_killed);
	assert_null(d.message);
	s = slurp(ws, ".pipe/logs/st.log");
	assert_non_null(s);
	assert_non_null(strstr(s, "out\n"));
	assert_non_null(strstr(s, "err\n"));
	assert_int_equal(strlen(s), 8);
	free(s);
	assert_int_equal(containers(ws, NULL), 0);

	/* a unit that prints nothing makes no log */
	s = ws_path(ws, ".pipe/logs/st.log");
	assert_int_equal(unlink(s), 0);
	u = unit_sh(ws, "true");
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_false(exists(ws, ".pipe/logs/st.log"));
	free(s);
	ws_free(ws);
}

static void test_argv(void **state)
{
	char *ws;
	char *argv[] = {"echo", "a  b", "$HOME", "'q'", NULL};
	struct exec_unit u;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	u = unit_sh(ws, NULL);
	u.shell = 0;
	u.argv = argv;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, ".pipe/logs/st.log", "a  b $HOME 'q'\n");

	/* a program the image does not have: 127, as docker run */
	argv[0] = "no-such-program";
	d = run(&u);
	assert_int_equal(d.exit_code, 127);
	free(d.message);
	ws_free(ws);
}

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
	for (int i = 0; i < 2; i++) {
		dup2(c->saved[i], i + 1);
		close(c->saved[i]);
	}
}

static void test_stream_prefix(void **state)
{
	char *ws;
	struct exec_options opt = {.stream = 1};
	struct exec_unit u;
	struct capture c;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	u = unit_sh(ws, "printf 'a\\nb\\npartial'; echo e >&2; printf e2 >&2");
	u.label = "lbl";
	capture_begin(&c, ws);
	d = run_opt(&opt, &u);
	capture_end(&c);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, "captured.out", "[lbl] a\n[lbl] b\n[lbl] partial\n");
	assert_file(ws, "captured.err", "[lbl] e\n[lbl] e2\n");
	ws_free(ws);
}

static void test_large_output(void **state)
{
	char *ws;
	struct exec_unit u;
	struct exec_done d;
	char *s;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	u = unit_sh(ws, "head -c 3000000 /dev/zero | tr '\\0' x; echo; "
			"head -c 1000 /dev/zero | tr '\\0' y >&2");
	u.log_max = -1; /* all of it */
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	s = slurp(ws, ".pipe/logs/st.log");
	assert_non_null(s);
	assert_int_equal(strlen(s), 3001001);
	/* the streams' order is the daemon's (its copiers run apart) */
	{
		size_t n[3] = {0, 0, 0};

		for (const char *p = s; *p; p++)
			n[*p == 'x' ? 0 : *p == 'y' ? 1 : 2]++;
		assert_int_equal(n[0], 3000000);
		assert_int_equal(n[1], 1000);
		assert_int_equal(n[2], 1);
	}
	free(s);

	/* by default the log keeps 1 MiB: its head and its tail */
	u.log_max = 0;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	s = slurp(ws, ".pipe/logs/st.log");
	assert_non_null(s);
	assert_true(strlen(s) <= (1 << 20) + 64);
	assert_non_null(strstr(s, " bytes cut ...]\n"));
	free(s);
	ws_free(ws);
}

static void test_outputs(void **state)
{
	char *ws;
	char *ro[] = {"in.txt", NULL};
	char *rw[] = {"out/", "res.txt", "sub/deep/f.txt", "sub/g.txt", NULL};
	struct exec_unit u;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	put_file(ws, "in.txt", "input\n");
	put_file(ws, "res.txt", "old\n");
	u = unit_sh(ws, "cat in.txt > res.txt && echo a > out/a && "
			"mkdir out/d && echo b > out/d/b && "
			"echo f > sub/deep/f.txt && echo junk > sub/deep/j && "
			"echo x > extra.txt && echo g > sub/g.txt");
	u.ro_paths = ro;
	u.rw_paths = rw;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, "res.txt", "input\n");
	assert_file(ws, "out/a", "a\n");
	assert_file(ws, "out/d/b", "b\n");
	assert_file(ws, "sub/deep/f.txt", "f\n");
	assert_file(ws, "sub/g.txt", "g\n");
	/* only declared outputs come out */
	assert_false(exists(ws, "extra.txt"));
	assert_false(exists(ws, "sub/deep/j"));
	assert_int_equal(count_entries(ws, "sub"), 2);
	/* owned by the caller, not by the daemon */
	assert_int_equal(owner(ws, "res.txt"), getuid());
	assert_int_equal(owner(ws, "out/d/b"), getuid());
	assert_int_equal(owner(ws, "sub/deep/f.txt"), getuid());
	/* staging is gone */
	assert_int_equal(count_entries(ws, ".pipe/tmp"), 0);

	/* not written: the workspace's file stays as it was */
	u = unit_sh(ws, "true");
	u.rw_paths = rw;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, "res.txt", "input\n");
	ws_free(ws);
}

static void test_inputs_read_only(void **state)
{
	char *ws;
	char *ro[] = {"in.txt", "data/", "lib/**/*.py", "*.cfg", NULL};
	struct exec_unit u;
	struct exec_done d;
	char *s;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	put_file(ws, "in.txt", "in\n");
	put_file(ws, "data/x", "x\n");
	put_file(ws, "lib/a/m.py", "py\n");
	put_file(ws, "a.cfg", "cfg\n");
	put_file(ws, "secret", "not an input\n");
	u = unit_sh(ws, "exec 2>&1; cat in.txt data/x lib/a/m.py a.cfg; "
			"echo no > in.txt || echo ro1; "
			"echo no > data/x || echo ro2; "
			"touch data/new || echo ro3; "
			"echo no > lib/a/m.py || echo ro4; "
			"cat secret || echo hidden; ls -A /workspace");
	u.ro_paths = ro;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	s = slurp(ws, ".pipe/logs/st.log");
	assert_non_null(s);
	assert_non_null(strstr(s, "in\nx\npy\ncfg\n"));
	for (int i = 1; i <= 4; i++) {
		char want[16];

		snprintf(want, sizeof(want), "ro%d\n", i);
		assert_non_null(strstr(s, want));
	}
	assert_non_null(strstr(s, "Read-only file system"));
	assert_non_null(strstr(s, "hidden\n"));
	/* nothing else of the host under /workspace */
	assert_non_null(strstr(s, "a.cfg\ndata\nin.txt\nlib\n"));
	assert_null(strstr(s, "secret\n"));
	assert_null(strstr(s, ".pipe"));
	free(s);
	assert_file(ws, "in.txt", "in\n");
	assert_file(ws, "data/x", "x\n");
	assert_false(exists(ws, "data/new"));
	ws_free(ws);
}

/* An input inside the folder of a file output: bound read-only on top of
 * the staging folder; no mount point left in the workspace. */
static void test_input_beside_file_output(void **state)
{
	char *ws;
	char *ro[] = {"d/in.txt", "d/lib/", NULL};
	char *rw[] = {"d/out.txt", "top.txt", NULL};
	struct exec_unit u;
	struct exec_done d;
	char *s;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	put_file(ws, "d/in.txt", "in\n");
	put_file(ws, "d/lib/l", "l\n");
	u = unit_sh(ws, "cat d/in.txt d/lib/l > d/out.txt; "
			"echo no > d/in.txt || echo ro; "
			"touch d/lib/new || echo ro2; ls d > top.txt");
	u.ro_paths = ro;
	u.rw_paths = rw;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, "d/out.txt", "in\nl\n");
	assert_file(ws, "d/in.txt", "in\n");
	assert_file(ws, "top.txt", "in.txt\nlib\nout.txt\n");
	s = slurp(ws, ".pipe/logs/st.log");
	assert_non_null(strstr(s, "ro\n"));
	assert_non_null(strstr(s, "ro2\n"));
	free(s);
	assert_int_equal(count_entries(ws, "d"), 3);
	assert_int_equal(count_entries(ws, "d/lib"), 1);
	assert_int_equal(count_entries(ws, ".pipe/tmp"), 0);
	ws_free(ws);
}

static void test_no_network(void **state)
{
	char *ws;
	struct exec_unit u;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	u = unit_sh(ws, "ls /sys/class/net");
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, ".pipe/logs/st.log", "lo\n");

	/* asked for: the daemon's bridge */
	u.network = "bridge";
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, ".pipe/logs/st.log", "eth0\nlo\n");
	ws_free(ws);
}

static void test_env_user_cwd(void **state)
{
	char *ws;
	char *env[4];
	struct exec_unit u;
	struct exec_done d;
	struct strbuf want = STRBUF_INIT;
	struct strvec e = STRVEC_INIT;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	strvec_push(&e, "FOO=one");
	strvec_pushf(&e, "PIPE_DATUM=%s/data/a.csv", ws);
	strvec_push(&e, "FOO=two");
	env[0] = e.v[0];
	env[1] = e.v[1];
	env[2] = e.v[2];
	env[3] = NULL;
	u = unit_sh(ws,
		    "echo \"$FOO $PIPE_DATUM $PIPE_STAGE $PIPE_WORKSPACE\"; "
		    "id -u; id -g; pwd; cat /proc/self/status | "
		    "grep -E '^(CapEff|NoNewPrivs)'");
	u.env = env;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	strbuf_addf(&want,
		    "two /workspace/data/a.csv st /workspace\n%u\n%u\n"
		    "/workspace\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n",
		    (unsigned)getuid(), (unsigned)getgid());
	assert_file(ws, ".pipe/logs/st.log", want.buf);
	strbuf_release(&want);
	strvec_clear(&e);
	ws_free(ws);
}

/* PIPE_DATUM and PIPE_OUT as host paths (a datum's private folder under
 * .pipe), or relative as the engine sets them: rewritten, and PIPE_OUT
 * writable though not listed in rw_paths. */
static void test_datum_paths(void **state)
{
	char *ws;
	char *env[3];
	char *ro[] = {"data/", NULL};
	char *dir;
	struct strvec e = STRVEC_INIT;
	struct exec_unit u;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	put_file(ws, "data/a.csv", "1,2\n");
	dir = ws_path(ws, ".pipe/tmp/st/0");
	assert_int_equal(fs_mkdir_p(dir, 0755), 0);
	free(dir);
	strvec_pushf(&e, "PIPE_DATUM=%s/data/a.csv", ws);
	strvec_pushf(&e, "PIPE_OUT=%s/.pipe/tmp/st/0", ws);
	env[0] = e.v[0];
	env[1] = e.v[1];
	env[2] = NULL;
	u = unit_sh(ws, "cp \"$PIPE_DATUM\" \"$PIPE_OUT/\" && echo $PIPE_OUT");
	u.env = env;
	u.ro_paths = ro;
	u.label = "st data/a.csv";
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, ".pipe/tmp/st/0/a.csv", "1,2\n");
	assert_file(ws, ".pipe/logs/st.log", "/workspace/.pipe/tmp/st/0\n");
	strvec_clear(&e);

	strvec_push(&e, "PIPE_DATUM=data/a.csv");
	strvec_push(&e, "PIPE_OUT=.pipe/tmp/st/1");
	env[0] = e.v[0];
	env[1] = e.v[1];
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_file(ws, ".pipe/tmp/st/1/a.csv", "1,2\n");
	strvec_clear(&e);
	ws_free(ws);
}

static void test_oom(void **state)
{
	char *ws;
	struct exec_unit u;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	/* tail keeps the whole (newline-free) input in memory */
	u = unit_sh(ws, "head -c 200000000 /dev/zero | tail > /dev/null");
	u.memory_bytes = 8 << 20;
	d = run(&u);
	assert_int_equal(d.exit_code, 137);
	assert_true(d.oom_killed);
	assert_string_equal(d.message, "out of memory (OOM-killed)");
	free(d.message);

	/* killed, but not for want of memory */
	u = unit_sh(ws, "kill -9 $$");
	d = run(&u);
	assert_int_equal(d.exit_code, 137);
	assert_false(d.oom_killed);
	assert_null(d.message);

	/* the same limit is plenty for a small command */
	u = unit_sh(ws, "echo fine");
	u.memory_bytes = 8 << 20;
	u.cpu_milli = 500;
	d = run(&u);
	assert_int_equal(d.exit_code, 0);
	assert_false(d.oom_killed);
	ws_free(ws);
}

static void test_timeout(void **state)
{
	char *ws;
	struct exec_unit u;
	struct exec_done d;
	long long t0;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	u = unit_sh(ws, "sleep 60");
	u.timeout_ms = 1000;
	t0 = now_ms();
	d = run(&u);
	assert_true(d.timed_out);
	assert_false(d.cancelled);
	assert_int_equal(d.exit_code, 143); /* TERM reached the command */
	assert_string_equal(d.message, "timed out after 1s");
	assert_true(now_ms() - t0 < 30000);
	free(d.message);

	/* TERM ignored: KILL after the grace period (1 s here) */
	u = unit_sh(ws, "trap '' TERM; sleep 60 & wait; sleep 60");
	u.timeout_ms = 1500;
	d = run(&u);
	assert_true(d.timed_out);
	assert_int_equal(d.exit_code, 137);
	assert_string_equal(d.message, "timed out after 1.5s");
	assert_true(d.duration_ms >= 2500);
	free(d.message);
	assert_int_equal(containers(ws, NULL), 0);
	ws_free(ws);
}

static void test_cancel(void **state)
{
	char *ws;
	struct exec_options opt = {.grace_ms = 60000};
	struct exec_ctx *ctx;
	struct exec_unit u[3];
	struct error err = ERROR_INIT;
	long long t0;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	ctx = open_ctx(&opt);
	u[0] = unit_sh(ws, "sleep 60");
	u[1] = unit_sh(ws, "trap 'exit 5' TERM; sleep 60 & wait");
	u[2] = unit_sh(ws, "trap '' TERM; sleep 60 & wait; sleep 60");
	for (int i = 0; i < 3; i++) {
		u[i].data = &u[i];
		assert_int_equal(ex->start(ctx, &u[i], &err), 0);
	}
	wait_running(ctx, ws, 3);
	t0 = now_ms();
	loop_cancel_all(ctx);
	/* TERM: two end, the third ignores it until the second call */
	for (int i = 0; i < 2; i++) {
		struct exec_done d = wait_one(ctx);

		assert_true(d.cancelled);
		assert_string_equal(d.message, "cancelled");
		assert_int_equal(d.exit_code, d.data == &u[0] ? 143 : 5);
		free(d.message);
	}
	assert_int_equal(loop_running(ctx), 1);
	loop_cancel_all(ctx);
	{
		struct exec_done d = wait_one(ctx);

		assert_ptr_equal(d.data, &u[2]);
		assert_true(d.cancelled);
		assert_int_equal(d.exit_code, 137);
		free(d.message);
	}
	assert_true(now_ms() - t0 < 30000); /* not the 60 s grace */
	ex->close(ctx);
	assert_int_equal(containers(ws, NULL), 0);
	ws_free(ws);
}

/* Cancelled before its container was even created or started. */
static void test_cancel_before_start(void **state)
{
	char *ws;
	struct exec_ctx *ctx;
	struct exec_unit u;
	struct error err = ERROR_INIT;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	ctx = open_ctx(NULL);
	u = unit_sh(ws, "echo never > out.txt");
	u.rw_paths = (char *[]){"out.txt", NULL};
	assert_int_equal(ex->start(ctx, &u, &err), 0);
	loop_cancel_all(ctx);
	d = wait_one(ctx);
	assert_true(d.cancelled);
	assert_false(exists(ws, "out.txt"));
	free(d.message);
	ex->close(ctx);
	assert_int_equal(containers(ws, NULL), 0);
	ws_free(ws);
}

/* close() with units running: stopped and removed. */
static void test_close_removes(void **state)
{
	char *ws;
	struct exec_options opt = {.grace_ms = 1000};
	struct exec_ctx *ctx;
	struct exec_unit u;
	struct error err = ERROR_INIT;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	ctx = open_ctx(&opt);
	u = unit_sh(ws, "sleep 60");
	assert_int_equal(ex->start(ctx, &u, &err), 0);
	assert_int_equal(ex->start(ctx, &u, &err), 0);
	wait_running(ctx, ws, 2);
	ex->close(ctx);
	assert_int_equal(containers(ws, NULL), 0);
	ws_free(ws);
}

/* A signal interrupts wait(), which returns 0 at once. */
static void on_alarm(int sig)
{
	(void)sig;
}

static void test_wait_interrupted(void **state)
{
	char *ws;
	struct exec_options opt = {.grace_ms = 1000};
	struct exec_ctx *ctx;
	struct exec_unit u;
	struct error err = ERROR_INIT;
	struct exec_done d;
	struct sigaction sa, old;
	struct itimerval it = {.it_value = {.tv_usec = 300000},
			       .it_interval = {.tv_usec = 300000}};
	struct itimerval off = {{0, 0}, {0, 0}};
	long long t0;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	ctx = open_ctx(&opt);
	u = unit_sh(ws, "sleep 60");
	assert_int_equal(ex->start(ctx, &u, &err), 0);
	wait_running(ctx, ws, 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, &old);
	t0 = now_ms();
	setitimer(ITIMER_REAL, &it, NULL);
	assert_int_equal(loop_wait(ctx, -1, &d, 1, &err), 0);
	setitimer(ITIMER_REAL, &off, NULL);
	assert_true(now_ms() - t0 < 10000);
	sigaction(SIGALRM, &old, NULL);
	assert_int_equal(loop_running(ctx), 1);
	ex->close(ctx);
	assert_int_equal(containers(ws, NULL), 0);
	ws_free(ws);
}

/* Many units at once: each waits until all have started, which only
 * works when they run concurrently (else they time out and fail). */
static void test_concurrent(void **state)
{
	enum { N = 6 };
	char *ws;
	struct exec_ctx *ctx;
	struct exec_unit u[N];
	char *rw[] = {"marks/", NULL};
	char cmds[N][200], labels[N][16];
	struct error err = ERROR_INIT;
	int seen[N] = {0};

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	ctx = open_ctx(NULL);
	for (int i = 0; i < N; i++) {
		snprintf(cmds[i], sizeof(cmds[i]),
			 "touch marks/%d; n=0; while [ $(ls marks | wc -l) "
			 "-lt %d ]; do sleep 0.1; n=$((n+1)); "
			 "[ $n -gt 600 ] && exit 1; done; echo %d",
			 i, N, i);
		snprintf(labels[i], sizeof(labels[i]), "st@%d", i);
		u[i] = unit_sh(ws, cmds[i]);
		u[i].label = labels[i];
		u[i].rw_paths = rw;
		u[i].data = &seen[i];
		assert_int_equal(ex->start(ctx, &u[i], &err), 0);
	}
	assert_int_equal(loop_running(ctx), N);
	for (int i = 0; i < N; i++) {
		struct exec_done d = wait_one(ctx);

		assert_int_equal(d.exit_code, 0);
		(*(int *)d.data)++;
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(count_entries(ws, "marks"), N);
	ex->close(ctx);
	assert_int_equal(containers(ws, NULL), 0);
	ws_free(ws);
}

static void test_engine_errors_verbatim(void **state)
{
	char *ws;
	struct exec_unit u;
	struct exec_done d;

	(void)state;
	NEED_DOCKER();
	ws = ws_new();
	u = unit_sh(ws, "true");
	u.image = "sha256:000000000000000000000000000000000000000000000000000"
		  "0000000000000";
	d = run(&u);
	assert_int_equal(d.exit_code, -1);
	assert_non_null(d.message);
	assert_non_null(strstr(d.message, "No such image"));
	free(d.message);
	ws_free(ws);
}

/* The caller is not root: outputs are owned by the caller. The test
 * forks, and the child takes uid and gid 4321 with the socket's group. */
static void test_non_root_caller(void **state)
{
	enum { UID = 4321 };
	char *ws;
	struct stat st;
	pid_t pid;
	int status;

	(void)state;
	NEED_DOCKER();
	if (getuid() != 0 || stat("/var/run/docker.sock", &st) ||
	    !(st.st_mode & S_IWGRP) || st.st_gid == 0) {
		if (skip_fails())
			fail_msg("cannot run as a non-root docker user here");
		skip();
	}
	ws = ws_new();
	put_file(ws, "in.txt", "in\n");
	assert_int_equal(chown(ws, UID, UID), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		gid_t g = st.st_gid;
		char *ro[] = {"in.txt", NULL};
		char *rw[] = {"out/", "res.txt", NULL};
		struct exec_unit u =
			unit_sh(ws, "cp in.txt res.txt && id -u "
				    "> out/id && echo no > in.txt");
		struct exec_ctx *ctx;
		struct error err = ERROR_INIT;
		struct exec_done d;
		int n;

		if (setgroups(1, &g) || setgid(UID) || setuid(UID))
			_exit(90);
		u.ro_paths = ro;
		u.rw_paths = rw;
		u.log_path = ws_path(ws, ".pipe/logs/st.log");
		if (ex->open(&ctx, NULL, &err))
			_exit(91);
		if (ex->start(ctx, &u, &err))
			_exit(92);
		while ((n = loop_wait(ctx, -1, &d, 1, &err)) == 0)
			;
		ex->close(ctx);
		_exit(n == 1 && d.exit_code == 1 ? 0 : 93);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_file(ws, "res.txt", "in\n");
	assert_file(ws, "out/id", "4321\n");
	assert_file(ws, "in.txt", "in\n");
	assert_int_equal(owner(ws, "res.txt"), UID);
	assert_int_equal(owner(ws, "out"), UID);
	assert_int_equal(owner(ws, "out/id"), UID);
	assert_int_equal(owner(ws, ".pipe/logs/st.log"), UID);
	ws_free(ws);
}

/* ------------------------------------------------------------------ */

static char *find_root(void)
{
	char *exe = realpath("/proc/self/exe", NULL);
	char *p;

	if (getenv("PIPE_ROOT"))
		return xstrdup(getenv("PIPE_ROOT"));
	/* ROOT/build/tests/test_docker */
	for (int i = 0; exe && i < 3 && (p = strrchr(exe, '/')); i++)
		*p = '\0';
	return exe ? exe : xstrdup(".");
}

static int setup(void **state)
{
	struct strbuf cmd = STRBUF_INIT;
	struct exec_ctx *ctx = NULL;
	struct error err = ERROR_INIT;
	struct strbuf id = STRBUF_INIT;

	(void)state;
	root = find_root();
	strbuf_addf(&cmd, "bash '%s/tests/docker-env.sh'", root);
	if (system(cmd.buf) == 0 && !ex->open(&ctx, NULL, &err) &&
	    !ex->resolve_image(ctx, IMAGE, &id, &err)) {
		docker_up = 1;
		image_id = strbuf_detach(&id, NULL);
	} else {
		const char *why = getenv("DOCKER_WHY");

		/* tests/run.sh prints this reason with the skip count */
		if (err.msg.len)
			why = err.msg.buf;
		fprintf(stderr, "# skip: no Docker daemon: %s\n",
			why && *why ? why : "docker-env.sh failed");
	}
	ex->close(ctx);
	error_release(&err);
	strbuf_release(&id);
	strbuf_release(&cmd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(image_id);
	free(root);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demux),
		cmocka_unit_test(test_split_image),
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_resolve_image),
		cmocka_unit_test(test_rebuild_changes_id),
		cmocka_unit_test(test_pull_error),
		cmocka_unit_test(test_exit_code_and_log),
		cmocka_unit_test(test_argv),
		cmocka_unit_test(test_stream_prefix),
		cmocka_unit_test(test_large_output),
		cmocka_unit_test(test_outputs),
		cmocka_unit_test(test_inputs_read_only),
		cmocka_unit_test(test_input_beside_file_output),
		cmocka_unit_test(test_no_network),
		cmocka_unit_test(test_env_user_cwd),
		cmocka_unit_test(test_datum_paths),
		cmocka_unit_test(test_oom),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_cancel_before_start),
		cmocka_unit_test(test_close_removes),
		cmocka_unit_test(test_wait_interrupted),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_engine_errors_verbatim),
		cmocka_unit_test(test_non_root_caller),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
