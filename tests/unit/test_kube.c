/* Unit tests for the Kubernetes executor's pure parts, without a cluster:
 * Job names and label values (DNS and label rules), the index lists of a
 * Job's status, the per-datum env files (run through the real /bin/sh)
 * and the Job manifest, whose datum wrapper is run locally as a pod would
 * run it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executors/executor.h"
#include "executors/json.h"
#include "executors/kube.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#define ID "0a1b2c3d4e5f"
#define ID2 "0a1b2c3d4e60"

static int is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* A DNS-1123 label of at most max characters. */
static int dns_label_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!n || n > max || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/* A Kubernetes label value: at most 63 of [A-Za-z0-9._-], alphanumeric at
 * both ends, or empty. */
static int label_ok(const char *s)
{
	size_t n = strlen(s);

	if (n > 63 || (n && (!is_alnum(s[0]) || !is_alnum(s[n - 1]))))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

static char *job_name(const char *stage, const char *id)
{
	struct strbuf sb = STRBUF_INIT;

	kube_job_name(&sb, stage, id);
	return strbuf_detach(&sb, NULL);
}

static char *label_value(const char *s)
{
	struct strbuf sb = STRBUF_INIT;

	kube_label_value(&sb, s);
	return strbuf_detach(&sb, NULL);
}

static char *repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ------------------------------------------------------------------ */
/* kube_job_name */

static void expect_name(const char *stage, const char *want)
{
	char *got = job_name(stage, ID);

	assert_string_equal(got, want);
	assert_true(dns_label_ok(got, 52));
	free(got);
}

static void test_job_name_plain(void **state)
{
	(void)state;
	expect_name("train", "pipe-train-" ID);
	expect_name("Train_Model", "pipe-train-model-" ID);
	expect_name("sweep@depth=3,lr=0.1", "pipe-sweep-depth-3-lr-0-1-" ID);
	expect_name("_prep..x--y", "pipe-prep-x-y-" ID);
}

static void test_job_name_limits(void **state)
{
	char *long_name = repeat('a', 200), *got;
	/* the cut falls on the '_': no '-' may end the stage part */
	char *edge = repeat('c', 34 + 1);

	(void)state;
	got = job_name(long_name, ID);
	assert_true(dns_label_ok(got, 52));
	assert_int_equal(strlen(got), 52);
	assert_string_equal(got + strlen(got) - strlen("-" ID), "-" ID);
	free(got);

	for (const char *const *s =
		     (const char *const[]){"@@@", "", "-", "___",
					   "\xc3\xa9t\xc3\xa9", "A", NULL};
	     *s; s++) {
		got = job_name(*s, ID);
		assert_true(dns_label_ok(got, 52));
		assert_string_equal(got + strlen(got) - strlen("-" ID), "-" ID);
		assert_int_equal(strncmp(got, "pipe-", 5), 0);
		free(got);
	}

	edge[33] = '_';
	got = job_name(edge, ID);
	assert_true(dns_label_ok(got, 52));
	assert_null(strstr(got, "--"));
	free(got);
	for (size_t len = 30; len < 40; len++) {
		char *s = repeat('d', len);

		s[len - 2] = '.';
		got = job_name(s, ID);
		assert_true(dns_label_ok(got, 52));
		assert_null(strstr(got, "--"));
		free(got);
		free(s);
	}
	free(edge);
	free(long_name);
}

/* Stage names that differ only past the cut share the stage part; the
 * job id keeps their Jobs apart. */
static void test_job_name_unique(void **state)
{
	char *a = repeat('x', 100), *b = repeat('x', 100);
	const char *ids[] = {ID, ID2, "ffffffffffff", "000000000000", "0"};
	const char *stages[] = {
		"train", "Train", "sweep@lr=0.1", "sweep@lr=0.2", "@@@",
		"",	 NULL};
	char *na, *nb;

	(void)state;
	b[99] = 'y';
	na = job_name(a, ID);
	nb = job_name(b, ID);
	assert_string_equal(na, nb); /* the cut */
	free(nb);
	nb = job_name(b, ID2);
	assert_string_not_equal(na, nb);
	assert_true(dns_label_ok(nb, 52));
	free(na);
	free(nb);

	stages[6] = a;
	for (size_t s = 0; s < 7; s++)
		for (size_t i = 0; i < 5; i++)
			for (size_t t = 0; t < 7; t++)
				for (size_t k = 0; k < 5; k++) {
					if (i == k)
						continue;
					na = job_name(stages[s], ids[i]);
					nb = job_name(stages[t], ids[k]);
					if (strlen(ids[i]) == strlen(ids[k]))
						assert_string_not_equal(na, nb);
					free(na);
					free(nb);
				}
	free(a);
	free(b);
}

/* ------------------------------------------------------------------ */
/* kube_label_value */

static void expect_label(const char *s, const char *want)
{
	char *got = label_value(s);

	assert_string_equal(got, want);
	assert_true(label_ok(got));
	free(got);
}

static void test_label_value(void **state)
{
	char *long_name = repeat('a', 200), *got;

	(void)state;
	expect_label("train", "train");
	expect_label("Train_Model", "Train_Model");
	expect_label("sweep@depth=3,lr=0.1", "sweep_depth_3_lr_0.1");
	expect_label("@@@", "");
	expect_label("", "");
	expect_label("._-", "");
	expect_label("_prep_", "prep");
	expect_label("a@", "a");
	expect_label("\xc3\xa9t\xc3\xa9", "t");

	got = label_value(long_name);
	assert_int_equal(strlen(got), 63);
	assert_true(label_ok(got));
	free(got);
	long_name[62] = '@'; /* the cut lands on a '_' */
	got = label_value(long_name);
	assert_true(label_ok(got));
	assert_int_equal(strlen(got), 62);
	free(got);
	free(long_name);
}

/* Stage names may start with '_' (pipefile/stage.c): what follows a long
 * run of them is still the stage's name, and the label should keep it
 * rather than come out empty. */
static void test_label_value_leading_run(void **state)
{
	char *s = repeat('_', 80);
	char *t = xstrfmt("%strain", s);
	char *got = label_value(t);

	(void)state;
	assert_true(label_ok(got));
	assert_string_equal(got, "train");
	free(got);
	free(t);
	free(s);
}

/* ------------------------------------------------------------------ */
/* kube_each_index */

struct seen {
	size_t v[64];
	size_t n;
};

static void collect(void *arg, size_t index)
{
	struct seen *s = arg;

	assert_true(s->n < 64);
	s->v[s->n++] = index;
}

static void expect_indexes(const char *list, size_t limit, const char *want)
{
	struct seen s = {.n = 0};
	struct strbuf got = STRBUF_INIT;

	kube_each_index(list, limit, collect, &s);
	for (size_t i = 0; i < s.n; i++) {
		assert_true(s.v[i] < limit);
		strbuf_addf(&got, "%s%zu", i ? "," : "", s.v[i]);
	}
	if (strcmp(got.buf, want))
		fail_msg("'%s' (limit %zu): got '%s', want '%s'",
			 list ? list : "(null)", limit, got.buf, want);
	strbuf_release(&got);
}

static void test_each_index(void **state)
{
	(void)state;
	expect_indexes("0,2-4,7", 10, "0,2,3,4,7");
	expect_indexes("0,2-4,7", 8, "0,2,3,4,7");
	expect_indexes("0,2-4,7", 7, "0,2,3,4");
	expect_indexes("0,2-4,7", 4, "0,2,3");
	expect_indexes("0,2-4,7", 0, "");
	expect_indexes("5", 6, "5");
	expect_indexes("0-0", 1, "0");
	expect_indexes("", 10, "");
	expect_indexes(NULL, 10, "");
}

/* Malformed lists end where they go wrong; nothing past the limit or from
 * a bad item is reported. */
static void test_each_index_malformed(void **state)
{
	(void)state;
	expect_indexes("1-", 10, "");
	expect_indexes("a", 10, "");
	expect_indexes("-", 10, "");
	expect_indexes(",", 10, "");
	expect_indexes("3,,4", 10, "3");
	expect_indexes("5-2", 10, "");
	expect_indexes("1-3x", 10, "1,2,3");
	expect_indexes("1;2", 10, "1");
	expect_indexes("1,-3", 10, "1");
	expect_indexes("-3-2", 10, "");
	expect_indexes("2-1-0", 10, "");
	expect_indexes("0x2", 10, "0");
}

static void test_each_index_large(void **state)
{
	(void)state;
	expect_indexes("18446744073709551615", 10, "");
	expect_indexes("18446744073709551616", 10, "");
	expect_indexes("99999999999999999999999999", 10, "");
	/* ranges end at the limit, not at their end (or overflow) */
	expect_indexes("2-18446744073709551615", 5, "2,3,4");
	expect_indexes("2-99999999999999999999999999", 5, "2,3,4");
	expect_indexes("0-4294967296", 3, "0,1,2");
	expect_indexes("4294967296-4294967300,1", 3, "1");
}

/* ------------------------------------------------------------------ */
/* kube_split_env */

/* Runs argv (envp) with stdout captured in out; returns the exit code. */
static int run(char *const *argv, char *const *envp, const char *cwd,
	       struct strbuf *out)
{
	int fd[2], status;
	pid_t pid;
	char buf[4096];
	ssize_t n;

	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		if (cwd && chdir(cwd))
			_exit(126);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(fd[1]);
	while ((n = read(fd[0], buf, sizeof(buf))) > 0 ||
	       (n < 0 && errno == EINTR))
		if (n > 0)
			strbuf_add(out, buf, (size_t)n);
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Every temp dir made, removed at the end even when a test failed. */
static struct strvec tmp_dirs = STRVEC_INIT;

static char *tmp_dir(void)
{
	char *d = xstrdup("/tmp/pipe-test-kube-XXXXXX");

	assert_non_null(mkdtemp(d));
	strvec_push(&tmp_dirs, d);
	return d;
}

static int remove_tmp_dirs(void **state)
{
	(void)state;
	for (size_t i = 0; i < tmp_dirs.nr; i++)
		fs_remove_tree(tmp_dirs.v[i]);
	strvec_clear(&tmp_dirs);
	return 0;
}

static void write_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, text, len), 0);
	assert_int_equal(close(fd), 0);
}

/* What sh makes of an env file: PIPE_DATUM's bytes, exactly. */
static void sourced(const char *file, const char *var, struct strbuf *out)
{
	char *script = xstrfmt(". \"$1\"; printf %%s \"$%s\"", var);
	char *argv[] = {"/bin/sh", "-c", script, "sh", (char *)file, NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};

	assert_int_equal(run(argv, envp, NULL, out), 0);
	free(script);
}

static void test_split_env_common(void **state)
{
	char *e0[] = {"A=1", "B=two words", "C=x", "PIPE_DATUM=a", NULL};
	char *e1[] = {"A=1", "C=y", "B=two words", "D=z", "PIPE_DATUM=b", NULL};
	struct exec_unit u[2] = {{.stage = "s", .env = e0},
				 {.stage = "s", .env = e1}};
	struct strvec common = STRVEC_INIT;
	struct strbuf files[2];

	(void)state;
	assert_int_equal(kube_split_env(u, 2, &common, files), 1);
	assert_int_equal(common.nr, 2);
	assert_string_equal(common.v[0], "A=1");
	assert_string_equal(common.v[1], "B=two words");
	assert_string_equal(files[0].buf,
			    "export C='x'\nexport PIPE_DATUM='a'\n");
	assert_string_equal(files[1].buf, "export C='y'\nexport D='z'\n"
					  "export PIPE_DATUM='b'\n");
	strbuf_release(&files[0]);
	strbuf_release(&files[1]);
	strvec_clear(&common);

	/* one unit: all of it is common, no file */
	assert_int_equal(kube_split_env(u, 1, &common, files), 0);
	assert_int_equal(common.nr, 4);
	assert_int_equal(files[0].len, 0);
	strbuf_release(&files[0]);
	strvec_clear(&common);

	/* the same everywhere: no file either */
	u[1].env = e0;
	assert_int_equal(kube_split_env(u, 2, &common, files), 0);
	assert_int_equal(common.nr, 4);
	strbuf_release(&files[0]);
	strbuf_release(&files[1]);
	strvec_clear(&common);

	/* no environment at all */
	u[0].env = u[1].env = NULL;
	assert_int_equal(kube_split_env(u, 2, &common, files), 0);
	assert_int_equal(common.nr, 0);
	strbuf_release(&files[0]);
	strbuf_release(&files[1]);
	strvec_clear(&common);
}

/* Datum paths may hold any byte but NUL: what sh reads back from each
 * unit's file is the value, byte for byte. */
static void test_split_env_quoting(void **state)
{
	static const char *const values[] = {
		"plain",
		"with space",
		"it's",
		"''",
		"'",
		"a'b'c'",
		"line1\nline2",
		"trailing\n\n",
		"$HOME",
		"${PATH}",
		"`id`",
		"$(id)",
		"\\",
		"back\\slash\\",
		"\"dq\"",
		"-n",
		"%s%d",
		"*",
		"a;b&&c|d>e<f",
		"\t \r",
		"",
		"!x #y ~z",
	};
	char all[256];
	char *dir = tmp_dir(), *file = xstrfmt("%s/env", dir);
	size_t nv = sizeof(values) / sizeof(*values);

	(void)state;
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	for (size_t i = 0; i <= nv; i++) {
		const char *v = i < nv ? values[i] : all;
		char *kv = xstrfmt("PIPE_DATUM=%s", v);
		char *e0[] = {"PIPE_OUT=.pipe/tmp/s/0", kv, NULL};
		char *e1[] = {"PIPE_OUT=.pipe/tmp/s/1", "PIPE_DATUM=other",
			      NULL};
		struct exec_unit u[2] = {{.stage = "s", .env = e0},
					 {.stage = "s", .env = e1}};
		struct strvec common = STRVEC_INIT;
		struct strbuf files[2], out = STRBUF_INIT;

		assert_int_equal(kube_split_env(u, 2, &common, files), 1);
		write_file(file, files[0].buf, files[0].len);
		sourced(file, "PIPE_DATUM", &out);
		if (out.len != strlen(v) || memcmp(out.buf, v, out.len))
			fail_msg("value %zu: sh read back %zu bytes, want %zu",
				 i, out.len, strlen(v));
		strbuf_reset(&out);
		sourced(file, "PIPE_OUT", &out);
		assert_string_equal(out.buf, ".pipe/tmp/s/0");
		strbuf_release(&out);
		strbuf_release(&files[0]);
		strbuf_release(&files[1]);
		strvec_clear(&common);
		free(kv);
	}
	fs_remove_tree(dir);
	free(file);
	free(dir);
}

/* ------------------------------------------------------------------ */
/* kube_job_manifest */

/* A temp workspace with .git/ and data/ (an input) and two datums of
 * stage "train" (argv or shell), as engine/units.c makes them. */
struct fixture {
	char *ws;
	char *env_dir; /* workspace-relative */
	char *e[2][4];
	char *ro[2][6];
	char *rw[2][2];
	struct exec_unit u[2];
	struct exec_sched sched;
	struct exec_toleration tol;
	struct exec_kube kopt;
	struct strvec common;
	struct strbuf files[2];
	struct kube_job_spec spec;
	int own;
};

static char *node_sel[] = {"disk=ssd", "zone=a=b", NULL};
static char *pull[] = {"regcred", "other", NULL};
static char *argv_cmd[] = {
	"/bin/sh",
	"-c",
	"printf '%s|%s|%s' \"$PIPE_DATUM\" \"$PIPE_OUT\" \"$1\"",
	"x",
	"a b 'c' $HOME",
	NULL};
#define SHELL_CMD "printf '%s|%s' \"$PIPE_DATUM\" \"$PIPE_OUT\""
#define DATUM1 "data/b b's $x `y`\n.txt"

static void fixture_init(struct fixture *f, size_t n, int shell)
{
	static const char *const datum[] = {"data/a.txt", DATUM1};
	char *p;

	memset(f, 0, sizeof(*f));
	f->ws = tmp_dir();
	p = xstrfmt("%s/.git", f->ws);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	p = xstrfmt("%s/data", f->ws);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	for (size_t i = 0; i < 2; i++) {
		f->e[i][0] = xstrdup("A=1");
		f->e[i][1] = xstrfmt("PIPE_DATUM=%s", datum[i]);
		f->e[i][2] = xstrfmt("PIPE_OUT=.pipe/tmp/train/%zu", i);
		f->ro[i][0] = xstrdup("data/");
		f->ro[i][1] = xstrdup("missing");
		f->ro[i][2] = xstrdup("*.csv");
		f->ro[i][3] = xstrdup("params.yaml");
		f->ro[i][4] = xstrdup(datum[i]);
		f->rw[i][0] = xstrfmt(".pipe/tmp/train/%zu/", i);
		f->u[i] = (struct exec_unit){
			.stage = "Train_Model",
			.workspace = f->ws,
			.shell = shell,
			.cmd = shell ? SHELL_CMD : NULL,
			.argv = shell ? NULL : argv_cmd,
			.env = f->e[i],
			.timeout_ms = 90500,
			.image = "reg/img@sha256:abc",
			.ro_paths = f->ro[i],
			.rw_paths = f->rw[i],
			.cpu_milli = 500,
			.memory_bytes = 64LL << 20,
			.gpu = 1,
			.job_id = ID,
			.retries = 2,
			.sched = &f->sched,
		};
	}
	f->tol = (struct exec_toleration){.key = "gpu",
					  .op = "Exists",
					  .effect = "NoSchedule",
					  .seconds = -1};
	f->sched = (struct exec_sched){.node_selector = node_sel,
				       .tolerations = &f->tol,
				       .tolerations_nr = 1,
				       .service_account = "runner"};
	f->kopt = (struct exec_kube){
		.namespace = "ns", .uid = -1, .gid = -1, .pull_secrets = pull};
	strvec_init(&f->common);
	f->own = kube_split_env(f->u, n, &f->common, f->files);
	if (f->own)
		f->env_dir = xstrdup(".pipe/k8s/pipe-train-model-" ID);
	f->spec = (struct kube_job_spec){
		.name = "pipe-train-model-" ID,
		.namespace = "ns",
		.workspace_label = "0123456789abcdef",
		.units = f->u,
		.n = n,
		.parallelism = 2,
		.image = "reg/img@sha256:abc",
		.kopt = &f->kopt,
		.uid = 1000,
		.gid = 1001,
		.env_dir = f->env_dir,
		.common_env = f->common.v,
	};
}

static void fixture_release(struct fixture *f)
{
	for (size_t i = 0; i < 2; i++) {
		for (size_t k = 0; f->e[i][k]; k++)
			free(f->e[i][k]);
		for (size_t k = 0; f->ro[i][k]; k++)
			free(f->ro[i][k]);
		free(f->rw[i][0]);
		strbuf_release(&f->files[i]);
	}
	strvec_clear(&f->common);
	fs_remove_tree(f->ws);
	free(f->ws);
	free(f->env_dir);
}

/* The manifest as the API server gets it: dumped, then parsed back. */
static struct json *manifest(const struct kube_job_spec *spec)
{
	struct json *m = kube_job_manifest(spec), *back = NULL;
	struct strbuf sb = STRBUF_INIT;
	struct error err = ERROR_INIT;

	json_dump(m, &sb);
	json_free(m);
	assert_int_equal(json_parse(&back, sb.buf, sb.len, &err), 0);
	strbuf_release(&sb);
	error_release(&err);
	return back;
}

/* The compact JSON of the value at path ("" when missing). */
static void dump_at(const struct json *j, const char *path, struct strbuf *out)
{
	const struct json *v = json_get(j, path);

	strbuf_reset(out);
	if (v)
		json_dump(v, out);
}

#define assert_json(j, path, want)                                             \
	do {                                                                   \
		struct strbuf d_ = STRBUF_INIT;                                \
		dump_at(j, path, &d_);                                         \
		if (strcmp(d_.buf, want))                                      \
			fail_msg("%s: got '%s', want '%s'", path, d_.buf,      \
				 want);                                        \
		strbuf_release(&d_);                                           \
	} while (0)

static const struct json *container(const struct json *job)
{
	const struct json *c = json_array_at(
		json_get(job, "spec.template.spec.containers"), 0);

	assert_non_null(c);
	return c;
}

/* The volume mount at path (mountPath), or NULL. */
static const struct json *mount_at(const struct json *job, const char *path)
{
	const struct json *m = json_get(container(job), "volumeMounts");

	for (size_t i = 0; i < json_array_len(m); i++) {
		const char *p = json_get_str(json_array_at(m, i), "mountPath");

		if (p && !strcmp(p, path))
			return json_array_at(m, i);
	}
	return NULL;
}

/* The kubelet expands $(NAME) in a container's command, args and env
 * values (from the variables defined before it) and turns $$ into $
 * (kubernetes third_party/forked/golang/expansion: Expand); undefined
 * names stay as written. */
static void kubelet_expand(const char *s, const struct json *env, size_t upto,
			   struct strbuf *out)
{
	size_t len = strlen(s);

	strbuf_reset(out);
	for (size_t i = 0; i < len; i++) {
		const char *close;

		if (s[i] != '$' || i + 1 == len) {
			strbuf_addch(out, s[i]);
			continue;
		}
		if (s[i + 1] == '$') {
			strbuf_addch(out, '$');
			i++;
		} else if (s[i + 1] == '(' &&
			   (close = strchr(s + i + 2, ')'))) {
			size_t nl = (size_t)(close - (s + i + 2));
			const char *val = NULL;

			for (size_t k = 0; k < upto; k++) {
				const struct json *e = json_array_at(env, k);
				const char *n = json_get_str(e, "name");

				if (n && strlen(n) == nl &&
				    !memcmp(n, s + i + 2, nl))
					val = json_get_str(e, "value");
			}
			if (val)
				strbuf_addstr(out, val);
			else
				strbuf_add(out, s + i, nl + 3);
			i += nl + 2;
		} else {
			strbuf_addch(out, '$');
			strbuf_addch(out, s[i + 1]);
			i++;
		}
	}
}

/* The value of the container's variable name as the pod sees it (the
 * kubelet's expansion done), or NULL; the caller frees it. */
static char *env_of(const struct json *job, const char *name)
{
	const struct json *e = json_get(container(job), "env");
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < json_array_len(e); i++) {
		const char *n = json_get_str(json_array_at(e, i), "name");

		if (n && !strcmp(n, name)) {
			kubelet_expand(
				json_get_str(json_array_at(e, i), "value"), e,
				i, &sb);
			return strbuf_detach(&sb, NULL);
		}
	}
	strbuf_release(&sb);
	return NULL;
}

#define assert_env(job, name, want)                                            \
	do {                                                                   \
		char *v_ = env_of(job, name);                                  \
		if (!v_)                                                       \
			fail_msg("no variable %s", name);                      \
		assert_string_equal(v_, want);                                 \
		free(v_);                                                      \
	} while (0)

#define assert_no_env(job, name)                                               \
	do {                                                                   \
		char *v_ = env_of(job, name);                                  \
		if (v_)                                                        \
			fail_msg("unexpected variable %s='%s'", name, v_);     \
	} while (0)

/* The container's command as the pod runs it (the kubelet's expansion
 * done). */
static void pod_argv(const struct json *job, struct strvec *out)
{
	const struct json *c = json_get(container(job), "command");
	const struct json *e = json_get(container(job), "env");
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < json_array_len(c); i++) {
		kubelet_expand(json_get_str(json_array_at(c, i), ""), e,
			       json_array_len(e), &sb);
		strvec_push(out, sb.buf);
	}
	strbuf_release(&sb);
}

static void expect_mount(const struct json *job, const char *ws,
			 const char *rel, int ro)
{
	char *path = rel ? xstrfmt("%s/%s", ws, rel) : xstrdup(ws);
	const struct json *m = mount_at(job, path);

	if (!m)
		fail_msg("no volume mount at '%s'", path);
	assert_string_equal(json_get_str(m, "name"), "workspace");
	if (rel)
		assert_string_equal(json_get_str(m, "subPath"), rel);
	else
		assert_null(json_get(m, "subPath"));
	assert_int_equal(json_get_bool(m, "readOnly"), ro);
	free(path);
}

static void expect_no_mount(const struct json *job, const char *ws,
			    const char *rel)
{
	char *path = xstrfmt("%s/%s", ws, rel);

	if (mount_at(job, path))
		fail_msg("unexpected volume mount at '%s'", path);
	free(path);
}

static void test_manifest_job(void **state)
{
	struct fixture f;
	struct json *job;
	const struct json *pod, *t;
	long long v;
	char *p;

	(void)state;
	fixture_init(&f, 2, 1);
	assert_int_equal(f.own, 1);
	job = manifest(&f.spec);
	assert_string_equal(json_get_str(job, "apiVersion"), "batch/v1");
	assert_string_equal(json_get_str(job, "kind"), "Job");
	assert_string_equal(json_get_str(job, "metadata.name"),
			    "pipe-train-model-" ID);
	assert_string_equal(json_get_str(job, "metadata.namespace"), "ns");
	t = json_get(job, "metadata.labels");
	assert_string_equal(json_member_str(t, KUBE_LABEL_MANAGED), "pipe");
	assert_string_equal(json_member_str(t, KUBE_LABEL_WORKSPACE),
			    "0123456789abcdef");
	assert_string_equal(json_member_str(t, KUBE_LABEL_STAGE),
			    "Train_Model");
	assert_string_equal(json_member_str(t, KUBE_LABEL_JOB), ID);
	t = json_get(job, "spec.template.metadata.labels");
	assert_string_equal(json_member_str(t, KUBE_LABEL_STAGE),
			    "Train_Model");

	assert_string_equal(json_get_str(job, "spec.completionMode"),
			    "Indexed");
	assert_int_equal(json_get_int(job, "spec.completions", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(json_get_int(job, "spec.parallelism", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(json_get_int(job, "spec.backoffLimitPerIndex", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(json_get_int(job, "spec.ttlSecondsAfterFinished", &v),
			 0);

	pod = json_get(job, "spec.template.spec");
	assert_string_equal(json_get_str(pod, "restartPolicy"), "Never");
	/* a service account is asked for: its token is mounted (without
	 * one: test_manifest_defaults) */
	assert_null(json_get(pod, "automountServiceAccountToken"));
	assert_json(pod, "securityContext.runAsNonRoot", "true");
	assert_json(pod, "securityContext.runAsUser", "1000");
	assert_json(pod, "securityContext.runAsGroup", "1001");
	assert_json(pod, "securityContext.seccompProfile.type",
		    "\"RuntimeDefault\"");
	assert_json(pod, "activeDeadlineSeconds", "91");
	assert_json(pod, "nodeSelector", "{\"disk\":\"ssd\",\"zone\":\"a=b\"}");
	assert_json(pod, "tolerations",
		    "[{\"key\":\"gpu\",\"operator\":\"Exists\","
		    "\"effect\":\"NoSchedule\"}]");
	assert_json(pod, "serviceAccountName", "\"runner\"");
	assert_json(pod, "imagePullSecrets",
		    "[{\"name\":\"regcred\"},{\"name\":\"other\"}]");
	t = json_array_at(json_get(pod, "volumes"), 0);
	assert_int_equal(json_array_len(json_get(pod, "volumes")), 2);
	assert_string_equal(json_get_str(t, "name"), "workspace");
	assert_string_equal(json_get_str(t, "hostPath.path"), f.ws);
	assert_string_equal(json_get_str(t, "hostPath.type"), "Directory");
	assert_null(json_get(t, "persistentVolumeClaim"));
	/* the datums' folder: a volume of its own (no subPath to set up) */
	t = json_array_at(json_get(pod, "volumes"), 1);
	assert_string_equal(json_get_str(t, "name"), "out-0");
	p = xstrfmt("%s/.pipe/tmp/train", f.ws);
	assert_string_equal(json_get_str(t, "hostPath.path"), p);
	free(p);
	assert_string_equal(json_get_str(t, "hostPath.type"), "Directory");

	t = container(job);
	assert_string_equal(json_get_str(t, "name"), "stage");
	assert_string_equal(json_get_str(t, "image"), "reg/img@sha256:abc");
	assert_string_equal(json_get_str(t, "workingDir"), f.ws);
	assert_json(t, "securityContext.allowPrivilegeEscalation", "false");
	assert_json(t, "securityContext.runAsNonRoot", "true");
	assert_json(t, "securityContext.capabilities.drop", "[\"ALL\"]");
	assert_json(t, "resources",
		    "{\"requests\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"},"
		    "\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\","
		    "\"nvidia.com/gpu\":\"1\"}}");
	json_free(job);
	fixture_release(&f);
}

static void test_manifest_datum_command_env(void **state)
{
	struct fixture f;
	struct json *job;
	struct strvec argv = STRVEC_INIT;
	char *dir;

	(void)state;
	fixture_init(&f, 2, 1);
	job = manifest(&f.spec);
	pod_argv(job, &argv);
	assert_int_equal(argv.nr, 5);
	assert_string_equal(argv.v[0], "/bin/sh");
	assert_string_equal(argv.v[1], "-c");
	assert_non_null(strstr(argv.v[2], "$JOB_COMPLETION_INDEX"));
	assert_string_equal(argv.v[4], SHELL_CMD);
	strvec_clear(&argv);
	/* the common part as plain variables, the rest by file */
	assert_env(job, "A", "1");
	assert_no_env(job, "PIPE_DATUM");
	assert_no_env(job, "PIPE_OUT");
	dir = xstrfmt("%s/.pipe/k8s/pipe-train-model-" ID, f.ws);
	assert_env(job, "PIPE_ENV_DIR", dir);
	free(dir);
	json_free(job);
	fixture_release(&f);

	/* one unit: its variables inline, the command as is */
	fixture_init(&f, 1, 1);
	assert_int_equal(f.own, 0);
	job = manifest(&f.spec);
	pod_argv(job, &argv);
	assert_int_equal(argv.nr, 3);
	assert_string_equal(argv.v[0], "/bin/sh");
	assert_string_equal(argv.v[1], "-c");
	assert_string_equal(argv.v[2], SHELL_CMD);
	strvec_clear(&argv);
	assert_env(job, "PIPE_DATUM", "data/a.txt");
	assert_env(job, "PIPE_OUT", ".pipe/tmp/train/0");
	assert_no_env(job, "PIPE_ENV_DIR");
	json_free(job);
	fixture_release(&f);

	/* one unit, argv: exactly its argv */
	fixture_init(&f, 1, 0);
	job = manifest(&f.spec);
	pod_argv(job, &argv);
	assert_int_equal(argv.nr, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(argv.v[i], argv_cmd[i]);
	strvec_clear(&argv);
	json_free(job);
	fixture_release(&f);
}

/* A mount of volume name at path, subPath sub (NULL: none). */
static void expect_volume_mount(const struct json *job, const char *path,
				const char *name, const char *sub, int ro)
{
	const struct json *m = mount_at(job, path);

	if (!m)
		fail_msg("no volume mount at '%s'", path);
	assert_string_equal(json_get_str(m, "name"), name);
	if (sub)
		assert_string_equal(json_get_str(m, "subPath"), sub);
	else
		assert_null(json_get(m, "subPath"));
	assert_int_equal(json_get_bool(m, "readOnly"), ro);
}

static size_t mounts_nr(const struct json *job)
{
	return json_array_len(json_get(container(job), "volumeMounts"));
}

/* Datums write only their PIPE_OUT: the workspace is read-only to them,
 * their folder read-write, two mounts whatever the inputs. */
static void test_manifest_mounts(void **state)
{
	struct fixture f;
	struct json *job;
	char *p, *q;

	(void)state;
	fixture_init(&f, 2, 1);
	job = manifest(&f.spec);
	expect_mount(job, f.ws, NULL, 1);
	/* the stage's datum folder: each pod writes its own PIPE_OUT in it */
	p = xstrfmt("%s/.pipe/tmp/train", f.ws);
	expect_volume_mount(job, p, "out-0", NULL, 0);
	free(p);
	expect_no_mount(job, f.ws, ".pipe");
	expect_no_mount(job, f.ws, "data");
	expect_no_mount(job, f.ws, "data/a.txt");
	assert_int_equal(mounts_nr(job), 2);
	json_free(job);

	/* another mount path: the host path is the node's */
	f.kopt.mount_path = "/w";
	f.kopt.host_path = "/srv/ws";
	job = manifest(&f.spec);
	expect_mount(job, "/w", NULL, 1);
	expect_volume_mount(job, "/w/.pipe/tmp/train", "out-0", NULL, 0);
	assert_string_equal(json_get_str(container(job), "workingDir"), "/w");
	assert_env(job, "PIPE_ENV_DIR", "/w/.pipe/k8s/pipe-train-model-" ID);
	assert_json(job, "spec.template.spec.volumes",
		    "[{\"hostPath\":{\"path\":\"/srv/ws\",\"type\":"
		    "\"Directory\"},\"name\":\"workspace\"},"
		    "{\"hostPath\":{\"path\":\"/srv/ws/.pipe/tmp/train\","
		    "\"type\":\"Directory\"},\"name\":\"out-0\"}]");
	json_free(job);

	/* a claim instead of a hostPath: the folder is a subPath of it */
	f.kopt.claim = "ws-claim";
	job = manifest(&f.spec);
	assert_json(job, "spec.template.spec.volumes",
		    "[{\"persistentVolumeClaim\":{\"claimName\":"
		    "\"ws-claim\"},\"name\":\"workspace\"}]");
	expect_mount(job, "/w", NULL, 1);
	expect_mount(job, "/w", ".pipe/tmp/train", 0);
	assert_int_equal(mounts_nr(job), 2);
	json_free(job);
	fixture_release(&f);

	/* one datum: its own folder */
	fixture_init(&f, 1, 1);
	job = manifest(&f.spec);
	expect_mount(job, f.ws, NULL, 1);
	p = xstrfmt("%s/.pipe/tmp/train/0", f.ws);
	expect_volume_mount(job, p, "out-0", NULL, 0);
	free(p);
	assert_int_equal(mounts_nr(job), 2);
	json_free(job);
	fixture_release(&f);

	/* a whole stage writes its outputs in the workspace: read-write,
	 * with .pipe, .git and every input that exists read-only over it */
	fixture_init(&f, 1, 1);
	free(f.rw[0][0]);
	f.rw[0][0] = xstrdup("out/");
	free(f.ro[0][4]);
	f.ro[0][4] = NULL;
	p = xstrfmt("%s/params.yaml", f.ws);
	write_file(p, "a: 1", 4);
	free(p);
	job = manifest(&f.spec);
	expect_mount(job, f.ws, NULL, 0);
	expect_mount(job, f.ws, ".pipe", 1);
	expect_mount(job, f.ws, ".git", 1);
	expect_mount(job, f.ws, "data", 1);
	expect_mount(job, f.ws, "params.yaml", 1);
	expect_no_mount(job, f.ws, "missing");
	expect_no_mount(job, f.ws, "*.csv");
	expect_no_mount(job, f.ws, "out");
	assert_int_equal(mounts_nr(job), 5);
	assert_int_equal(
		json_array_len(json_get(job, "spec.template.spec.volumes")), 1);
	json_free(job);

	/* no .git: no mount for it */
	q = xstrfmt("%s/.git", f.ws);
	assert_int_equal(rmdir(q), 0);
	free(q);
	job = manifest(&f.spec);
	expect_no_mount(job, f.ws, ".git");
	assert_int_equal(mounts_nr(job), 4);
	json_free(job);
	fixture_release(&f);
}

/* Only the .pipe folder is pipe's: an input named ".pipeline" is the
 * user's, and read-only like any other input. */
static void test_manifest_dot_pipe_prefix_input(void **state)
{
	struct fixture f;
	struct json *job;
	char *p;

	(void)state;
	fixture_init(&f, 1, 1);
	free(f.rw[0][0]);
	f.rw[0][0] = xstrdup("out/");
	p = xstrfmt("%s/.pipeline", f.ws);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	free(f.ro[0][1]);
	f.ro[0][1] = xstrdup(".pipeline/");
	job = manifest(&f.spec);
	expect_mount(job, f.ws, ".pipeline", 1);
	json_free(job);
	fixture_release(&f);
}

/* The stage's full name is kept as an annotation: one key with dots, a
 * string value (annotations are a map of strings). */
static void test_manifest_annotation(void **state)
{
	struct fixture f;
	struct json *job;

	(void)state;
	fixture_init(&f, 1, 1);
	job = manifest(&f.spec);
	assert_json(job, "metadata.annotations",
		    "{\"" KUBE_ANNOTATION_STAGE "\":\"Train_Model\"}");
	json_free(job);
	fixture_release(&f);
}

static void test_manifest_defaults(void **state)
{
	struct fixture f;
	struct json *job;
	long long v;

	(void)state;
	fixture_init(&f, 1, 1);
	for (size_t i = 0; i < 2; i++) {
		f.u[i].cpu_milli = 0;
		f.u[i].memory_bytes = 1536;
		f.u[i].gpu = 0;
		f.u[i].timeout_ms = 0;
		f.u[i].sched = NULL;
	}
	f.kopt.pull_secrets = NULL;
	f.spec.parallelism = 0;
	job = manifest(&f.spec);
	assert_int_equal(json_get_int(job, "spec.parallelism", &v), 0);
	assert_int_equal(v, 1);
	assert_json(container(job), "resources",
		    "{\"requests\":{\"memory\":\"1536\"},"
		    "\"limits\":{\"memory\":\"1536\"}}");
	assert_null(json_get(job, "spec.template.spec.activeDeadlineSeconds"));
	assert_null(json_get(job, "spec.template.spec.nodeSelector"));
	assert_null(json_get(job, "spec.template.spec.tolerations"));
	assert_null(json_get(job, "spec.template.spec.serviceAccountName"));
	assert_null(json_get(job, "spec.template.spec.imagePullSecrets"));
	assert_json(json_get(job, "spec.template.spec"),
		    "automountServiceAccountToken", "false");
	json_free(job);
	for (size_t i = 0; i < 2; i++)
		f.u[i].memory_bytes = 3LL << 30;
	job = manifest(&f.spec);
	assert_json(container(job), "resources.limits.memory", "\"3Gi\"");
	json_free(job);
	fixture_release(&f);
}

/* What the pod gets is what the Pipefile said: "$$" and "$(NAME)" in a
 * command or a value pass the kubelet untouched. */
static void test_manifest_kubelet_expansion(void **state)
{
	static const char *const cmds[] = {"echo $$ $(A) $(HOME) $", SHELL_CMD};
	struct fixture f;
	struct json *job;
	struct strbuf got = STRBUF_INIT;

	(void)state;
	for (size_t n = 1; n <= 2; n++) {
		const struct json *c, *e;

		fixture_init(&f, n, 1);
		free(f.e[0][0]);
		f.e[0][0] = xstrdup("A=a$$b$(PIPE_OUT)c");
		free(f.e[1][0]);
		f.e[1][0] = xstrdup("A=a$$b$(PIPE_OUT)c");
		free(f.e[0][1]);
		f.e[0][1] = xstrdup("PIPE_DATUM=data/x$$y$(A)z");
		strvec_clear(&f.common);
		strbuf_release(&f.files[0]);
		strbuf_release(&f.files[1]);
		kube_split_env(f.u, n, &f.common, f.files);
		f.spec.common_env = f.common.v;
		for (size_t k = 0; k < 2; k++) {
			f.u[0].cmd = f.u[1].cmd = cmds[k];
			job = manifest(&f.spec);
			c = json_get(container(job), "command");
			e = json_get(container(job), "env");
			kubelet_expand(
				json_get_str(json_array_at(c, n == 1 ? 2 : 4),
					     ""),
				e, json_array_len(e), &got);
			assert_string_equal(got.buf, cmds[k]);
			for (size_t i = 0; i < json_array_len(e); i++) {
				const char *name = json_get_str(
					json_array_at(e, i), "name");
				const char *want = NULL;

				for (char **kv = f.e[0]; *kv; kv++)
					if (!strncmp(*kv, name, strlen(name)) &&
					    (*kv)[strlen(name)] == '=')
						want = *kv + strlen(name) + 1;
				if (!want) /* PIPE_ENV_DIR */
					continue;
				kubelet_expand(json_get_str(json_array_at(e, i),
							    "value"),
					       e, i, &got);
				assert_string_equal(got.buf, want);
			}
			json_free(job);
		}
		fixture_release(&f);
	}
	strbuf_release(&got);
}

/* A datum path may hold any byte but NUL, and JSON carries only UTF-8:
 * a lone datum whose path is not UTF-8 (Latin-1 "caf\xe9") still gets a
 * Job, and its pod the path's exact bytes (by its env file). Run in a
 * child: jansson refuses such a string and json.c's must() aborts. */
static void test_manifest_non_utf8(void **state)
{
	struct fixture f;
	pid_t pid;
	int status;

	(void)state;
	fixture_init(&f, 1, 1);
	free(f.e[0][1]);
	f.e[0][1] = xstrdup("PIPE_DATUM=data/caf\xe9.txt");
	strvec_clear(&f.common);
	strbuf_release(&f.files[0]);
	strbuf_release(&f.files[1]);
	f.own = kube_split_env(f.u, 1, &f.common, f.files);
	f.spec.common_env = f.common.v;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct json *job;
		char *v;

		signal(SIGABRT, SIG_DFL);
		job = manifest(&f.spec);
		v = env_of(job, "PIPE_DATUM");
		/* inline only if exact, else from an env file */
		status = v ? strcmp(v, "data/caf\xe9.txt") != 0 : !f.own;
		free(v);
		json_free(job);
		_exit(status ? 3 : 0); /* the parent removes the files */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the manifest died of signal %d", WTERMSIG(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	fixture_release(&f);
}

/* ------------------------------------------------------------------ */
/* The datum wrapper, run as the pod runs it */

/* Writes the env files where PIPE_ENV_DIR says and runs the manifest's
 * command as completion index (its env as the container's); out gets its
 * stdout. */
static int run_pod(struct fixture *f, const struct json *job, size_t index,
		   struct strbuf *out)
{
	const struct json *e = json_get(container(job), "env");
	struct strvec argv = STRVEC_INIT, envp = STRVEC_INIT;
	struct strbuf v = STRBUF_INIT;
	int rc;

	for (size_t i = 0; i < f->spec.n; i++) {
		char *p = xstrfmt("%s/%s/%zu", f->ws, f->env_dir, i);

		assert_int_equal(fs_mkdir_parent(p, 0755), 0);
		write_file(p, f->files[i].buf, f->files[i].len);
		free(p);
	}
	pod_argv(job, &argv);
	strvec_push(&envp, "PATH=/usr/bin:/bin");
	strvec_pushf(&envp, "JOB_COMPLETION_INDEX=%zu", index);
	for (size_t i = 0; i < json_array_len(e); i++) {
		const struct json *x = json_array_at(e, i);

		if (!json_get_str(x, "value")) { /* the pod's name */
			assert_string_equal(
				json_get_str(x, "valueFrom.fieldRef.fieldPath"),
				"metadata.name");
			strvec_pushf(&envp, "%s=pod-%zu",
				     json_get_str(x, "name"), index);
			continue;
		}
		kubelet_expand(json_get_str(x, "value"), e, i, &v);
		strvec_pushf(&envp, "%s=%s", json_get_str(x, "name"), v.buf);
	}
	rc = run(argv.v, envp.v, f->ws, out);
	strbuf_release(&v);
	strvec_clear(&argv);
	strvec_clear(&envp);
	return rc;
}

static void test_wrapper_runs(void **state)
{
	struct fixture f;
	struct json *job;
	struct strbuf out = STRBUF_INIT;

	(void)state;
	fixture_init(&f, 2, 1);
	job = manifest(&f.spec);
	assert_int_equal(run_pod(&f, job, 1, &out), 0);
	assert_string_equal(out.buf, DATUM1 "|.pipe/tmp/train/1");
	strbuf_reset(&out);
	assert_int_equal(run_pod(&f, job, 0, &out), 0);
	assert_string_equal(out.buf, "data/a.txt|.pipe/tmp/train/0");
	json_free(job);
	fixture_release(&f);

	/* argv: the wrapper execs it with its arguments untouched */
	fixture_init(&f, 2, 0);
	job = manifest(&f.spec);
	strbuf_reset(&out);
	assert_int_equal(run_pod(&f, job, 1, &out), 0);
	assert_string_equal(out.buf, DATUM1 "|.pipe/tmp/train/1|a b 'c' $HOME");
	strbuf_reset(&out);
	assert_int_equal(run_pod(&f, job, 0, &out), 0);
	assert_string_equal(out.buf, "data/a.txt|.pipe/tmp/train/0|a b 'c' "
				     "$HOME");
	json_free(job);
	fixture_release(&f);
	strbuf_release(&out);
}

static char *read_text(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strbuf_add(&sb, buf, (size_t)n);
	close(fd);
	return strbuf_detach(&sb, NULL);
}

/* A Job of several datums: the pod's output goes to the container and,
 * by tee, to "PIPE_OUT-POD.log" beside its PIPE_OUT; its exit code is
 * the command's. Without tee on PATH (or a folder it cannot write) the
 * command runs as before and no file is written. */
static void test_wrapper_log_file(void **state)
{
	static const char *const cmds[] = {
		"printf 'out %s\\n' \"$PIPE_OUT\"; echo err >&2; exit 3",
		"echo quiet"};
	struct fixture f;
	struct json *job;
	struct strbuf out = STRBUF_INIT;
	char *p, *log;

	(void)state;
	for (int shell = 1; shell >= 0; shell--) {
		char *argv[] = {"/bin/sh", "-c", (char *)cmds[0], NULL};

		fixture_init(&f, 2, shell);
		assert_true(kube_job_file_logs(&f.spec));
		f.u[0].cmd = f.u[1].cmd = shell ? (char *)cmds[0] : NULL;
		f.u[0].argv = f.u[1].argv = shell ? NULL : argv;
		p = xstrfmt("%s/.pipe/tmp/train/1", f.ws);
		assert_int_equal(fs_mkdir_p(p, 0755), 0);
		free(p);
		job = manifest(&f.spec);
		strbuf_reset(&out);
		assert_int_equal(run_pod(&f, job, 1, &out), 3);
		assert_string_equal(out.buf, "out .pipe/tmp/train/1\nerr\n");
		p = xstrfmt("%s/.pipe/tmp/train/1-pod-1.log", f.ws);
		log = read_text(p);
		assert_non_null(log);
		assert_string_equal(log, out.buf);
		free(log);
		free(p);
		/* index 0: its folder's parent is missing, it cannot write
		 * its log file; it runs all the same */
		p = xstrfmt("%s/.pipe/tmp/train", f.ws);
		assert_int_equal(fs_remove_tree(p), 0);
		free(p);
		strbuf_reset(&out);
		assert_int_equal(run_pod(&f, job, 0, &out), 3);
		/* (its stderr is the container's own, not captured here) */
		assert_string_equal(out.buf, "out .pipe/tmp/train/0\n");
		json_free(job);
		fixture_release(&f);
	}
	/* one datum: no file, the API gives the log */
	fixture_init(&f, 1, 1);
	assert_false(kube_job_file_logs(&f.spec));
	job = manifest(&f.spec);
	assert_null(env_of(job, "PIPE_POD"));
	json_free(job);
	fixture_release(&f);
	strbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_name_plain),
		cmocka_unit_test(test_job_name_limits),
		cmocka_unit_test(test_job_name_unique),
		cmocka_unit_test(test_label_value),
		cmocka_unit_test(test_label_value_leading_run),
		cmocka_unit_test(test_each_index),
		cmocka_unit_test(test_each_index_malformed),
		cmocka_unit_test(test_each_index_large),
		cmocka_unit_test(test_split_env_common),
		cmocka_unit_test(test_split_env_quoting),
		cmocka_unit_test(test_manifest_job),
		cmocka_unit_test(test_manifest_datum_command_env),
		cmocka_unit_test(test_manifest_mounts),
		cmocka_unit_test(test_manifest_dot_pipe_prefix_input),
		cmocka_unit_test(test_manifest_annotation),
		cmocka_unit_test(test_manifest_defaults),
		cmocka_unit_test(test_manifest_kubelet_expansion),
		cmocka_unit_test(test_manifest_non_utf8),
		cmocka_unit_test(test_wrapper_runs),
		cmocka_unit_test(test_wrapper_log_file),
	};

	return cmocka_run_group_tests(tests, NULL, remove_tmp_dirs);
}
