/* Unit tests for pipefile/: the model built from Pipefile text (every key,
 * defaults, env merge, cmd kinds, matrix, units, paths, merge keys),
 * located errors, hostile input, and a replay of tests/data/pipefile/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipefile/internal.h"
#include "pipefile/pipefile.h"
#include "util/error.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

/* Through the cache and back: the model read from the cache must
 * serialize to the same bytes as the parsed one, and every test below then
 * checks the model that came out of the cache. */
static struct pipefile *round_trip(struct pipefile *pf, const char *text)
{
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	struct pipefile *back = NULL;

	pipefile_serialize(pf, "test", &a);
	assert_int_equal(pipefile_deserialize(&back, pf->path, pf->dir, text,
					      strlen(text), "test", a.buf,
					      a.len),
			 0);
	pipefile_serialize(back, "test", &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.buf, b.buf, a.len);
	assert_int_equal(back->nr, pf->nr);
	for (size_t i = 0; i < pf->nr; i++)
		assert_ptr_equal(pipefile_find_stage(back, pf->stages[i].name),
				 &back->stages[i]);
	pipefile_free(pf);
	strbuf_release(&a);
	strbuf_release(&b);
	return back;
}

static struct pipefile *parse_ok(const char *text)
{
	struct error err = ERROR_INIT;
	struct pipefile *pf = NULL;

	if (pipefile_parse(&pf, "Pipefile", NULL, text, strlen(text), &err)) {
		struct strbuf sb = STRBUF_INIT;

		error_format(&err, &sb);
		fail_msg("unexpected error: %s", sb.buf);
	}
	error_release(&err);
	return round_trip(pf, text);
}

/* Parse text that must fail at line:col with a message containing want. */
static void parse_bad(const char *text, int line, int col, const char *want)
{
	struct error err = ERROR_INIT;
	struct pipefile *pf = (struct pipefile *)1;

	assert_int_equal(
		pipefile_parse(&pf, "Pipefile", NULL, text, strlen(text), &err),
		-1);
	assert_null(pf);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	if (!strstr(err.msg.buf, want))
		fail_msg("message '%s' lacks '%s'", err.msg.buf, want);
	assert_string_equal(err.file, "Pipefile");
	if (err.line != line || err.col != col)
		fail_msg("'%s' at %d:%d, want %d:%d", err.msg.buf, err.line,
			 err.col, line, col);
	error_release(&err);
}

static const char spec_example[] =
	"version: 1\n"
	"defaults:\n"
	"  executor: local\n"
	"  image: python:3.12-slim\n"
	"  env: { PYTHONHASHSEED: \"0\" }\n"
	"params: params.yaml\n"
	"docker:\n"
	"  network: none\n"
	"kubernetes:\n"
	"  context: ci-cluster\n"
	"  namespace: pipelines\n"
	"  workspace: { claim: pipe-ws, mountPath: /workspace }\n"
	"stages:\n"
	"  pre_process:\n"
	"    executor: docker\n"
	"    image: example/pre:1.4\n"
	"    cmd: python pre_process.py \"$PIPE_DATUM\" \"$PIPE_OUT\"\n"
	"    inputs: [data/raw/, pre_process.py, \"lib/**/*.py\"]\n"
	"    datums: \"data/raw/*.csv\"\n"
	"    parallelism: 4\n"
	"    outputs: [out/clean/]\n"
	"    params: [pre.lowercase, pre.min_len]\n"
	"    env: { LANG: C.UTF-8 }\n"
	"    resources: { cpu: 2, memory: 4Gi, gpu: 1 }\n"
	"    retries: 2\n"
	"    timeout: 30m\n"
	"  train:\n"
	"    cmd: [python, train.py, out/clean, model/]\n"
	"    inputs: [out/clean/, train.py]\n"
	"    outputs: [model/]\n"
	"  sweep:\n"
	"    matrix: { lr: [0.1, 0.01], depth: [3, 5] }\n"
	"    cmd: python train.py --lr ${lr} --depth ${depth} --out "
	"models/${lr}-${depth}\n"
	"    inputs: [out/clean/, train.py]\n"
	"    outputs: [\"models/${lr}-${depth}/\"]\n";

static void test_spec_example(void **state)
{
	struct pipefile *pf = parse_ok(spec_example);
	const struct pf_stage *s;

	(void)state;
	assert_int_equal(pf->version, 1);
	assert_string_equal(pf->dir, ".");
	assert_string_equal(pf->params_file, "params.yaml");
	assert_string_equal(pf->docker_network, "none");
	assert_string_equal(pf->kube.context, "ci-cluster");
	assert_string_equal(pf->kube.namespace, "pipelines");
	assert_string_equal(pf->kube.claim, "pipe-ws");
	assert_null(pf->kube.host_path);
	assert_string_equal(pf->kube.mount_path, "/workspace");
	assert_int_equal(pf->nr, 6);

	s = &pf->stages[0];
	assert_string_equal(s->name, "pre_process");
	assert_string_equal(s->base, "pre_process");
	assert_int_equal(s->line, 14);
	assert_int_equal(s->col, 3);
	assert_string_equal(s->executor, "docker");
	assert_string_equal(s->image, "example/pre:1.4");
	assert_null(s->rare->network);
	assert_int_equal(s->cmd_kind, PF_CMD_SHELL);
	assert_string_equal(
		s->cmd, "python pre_process.py \"$PIPE_DATUM\" \"$PIPE_OUT\"");
	assert_int_equal(s->cmd_line, 17);
	assert_int_equal(s->cmd_col, 10);
	assert_int_equal(s->inputs.nr, 3);
	assert_string_equal(s->inputs.v[0].path, "data/raw/");
	assert_true(s->inputs.v[0].is_dir);
	assert_false(s->inputs.v[0].is_glob);
	assert_string_equal(s->inputs.v[1].path, "pre_process.py");
	assert_false(s->inputs.v[1].is_dir);
	assert_string_equal(s->inputs.v[2].path, "lib/**/*.py");
	assert_true(s->inputs.v[2].is_glob);
	assert_int_equal(s->inputs.v[2].line, 18);
	assert_int_equal(s->inputs.v[2].col, 41);
	assert_string_equal(s->rare->datums.path, "data/raw/*.csv");
	assert_true(s->rare->datums.is_glob);
	assert_int_equal(s->parallelism, 4);
	assert_int_equal(s->outputs.nr, 1);
	assert_string_equal(s->outputs.v[0].path, "out/clean/");
	assert_int_equal(s->rare->params_nr, 2);
	assert_string_equal(s->rare->params[0].file, "params.yaml");
	assert_string_equal(s->rare->params[0].key, "pre.lowercase");
	assert_string_equal(s->rare->params[1].key, "pre.min_len");
	assert_int_equal(s->env.nr, 2);
	assert_string_equal(s->env.v[0].key, "LANG");
	assert_string_equal(s->env.v[0].value, "C.UTF-8");
	assert_string_equal(s->env.v[1].key, "PYTHONHASHSEED");
	assert_string_equal(s->env.v[1].value, "0");
	assert_int_equal(s->rare->resources.cpu_milli, 2000);
	assert_int_equal(s->rare->resources.memory_bytes, 4294967296ll);
	assert_int_equal(s->rare->resources.gpu, 1);
	assert_int_equal(s->rare->retries, 2);
	assert_int_equal(s->rare->timeout_ms, 30 * 60 * 1000);
	assert_int_equal(s->rare->matrix.nr, 0);

	s = pipefile_find_stage(pf, "train");
	assert_ptr_equal(s, &pf->stages[1]);
	assert_int_equal(s->cmd_kind, PF_CMD_ARGV);
	assert_null(s->cmd);
	assert_int_equal(s->rare->argv.nr, 4);
	assert_string_equal(s->rare->argv.v[0], "python");
	assert_string_equal(s->rare->argv.v[3], "model/");
	assert_null(s->rare->argv.v[4]);
	assert_string_equal(s->executor, "local");
	assert_string_equal(s->image, "python:3.12-slim");
	assert_int_equal(s->parallelism, 1);
	assert_int_equal(s->rare->retries, 0);
	assert_int_equal(s->rare->timeout_ms, 0);
	assert_null(s->rare->datums.path);
	assert_int_equal(s->env.nr, 1);

	assert_string_equal(pf->stages[2].name, "sweep@lr=0.1,depth=3");
	assert_string_equal(pf->stages[3].name, "sweep@lr=0.1,depth=5");
	assert_string_equal(pf->stages[4].name, "sweep@lr=0.01,depth=3");
	assert_string_equal(pf->stages[5].name, "sweep@lr=0.01,depth=5");
	s = pipefile_find_stage(pf, "sweep@lr=0.01,depth=3");
	assert_ptr_equal(s, &pf->stages[4]);
	assert_string_equal(s->base, "sweep");
	assert_string_equal(s->cmd, "python train.py --lr 0.01 --depth 3 --out "
				    "models/0.01-3");
	assert_string_equal(s->outputs.v[0].path, "models/0.01-3/");
	assert_int_equal(s->rare->matrix.nr, 2);
	assert_string_equal(s->rare->matrix.v[0].key, "lr");
	assert_string_equal(s->rare->matrix.v[0].value, "0.01");
	assert_string_equal(s->rare->matrix.v[1].key, "depth");
	assert_string_equal(s->rare->matrix.v[1].value, "3");
	assert_null(pipefile_find_stage(pf, "sweep"));
	assert_null(pipefile_find_stage(pf, "nope"));
	pipefile_free(pf);
}

static void test_defaults(void **state)
{
	struct pipefile *pf = parse_ok(
		"defaults:\n"
		"  executor: docker\n"
		"  image: base:1\n"
		"  network: bridge\n"
		"  env: { B: from-defaults, A: a, C: \"3\" }\n"
		"  resources: { cpu: 500m, memory: 1Gi }\n"
		"  retries: 3\n"
		"  timeout: 1h30m\n"
		"  parallelism: 2\n"
		"docker: { network: host }\n"
		"params: conf/params.yml\n"
		"stages:\n"
		"  a:\n"
		"    cmd: run\n"
		"  b:\n"
		"    cmd: run\n"
		"    executor: local\n"
		"    image: mine:2\n"
		"    network: none\n"
		"    env: { B: from-stage, D: true, E: 1.50 }\n"
		"    resources: { memory: 512Mi, gpu: 2 }\n"
		"    retries: 0\n"
		"    timeout: 90\n"
		"    parallelism: 8\n"
		"    params: [x.y, \"other.yaml:z\", ./sub/../p.json:k.l]\n");
	const struct pf_stage *a = &pf->stages[0], *b = &pf->stages[1];

	(void)state;
	assert_string_equal(pf->docker_network, "host");
	assert_string_equal(pf->params_file, "conf/params.yml");
	assert_string_equal(a->executor, "docker");
	assert_string_equal(a->image, "base:1");
	assert_string_equal(a->rare->network, "bridge");
	assert_int_equal(a->env.nr, 3);
	assert_string_equal(a->env.v[0].key, "A");
	assert_string_equal(a->env.v[1].value, "from-defaults");
	assert_int_equal(a->rare->resources.cpu_milli, 500);
	assert_int_equal(a->rare->resources.memory_bytes, 1ll << 30);
	assert_int_equal(a->rare->retries, 3);
	assert_int_equal(a->rare->timeout_ms, 90 * 60 * 1000);
	assert_int_equal(a->parallelism, 2);

	assert_string_equal(b->executor, "local");
	assert_string_equal(b->image, "mine:2");
	assert_string_equal(b->rare->network, "none");
	/* env merged key by key, sorted, numbers and bools as written */
	assert_int_equal(b->env.nr, 5);
	assert_string_equal(b->env.v[0].key, "A");
	assert_string_equal(b->env.v[1].key, "B");
	assert_string_equal(b->env.v[1].value, "from-stage");
	assert_string_equal(b->env.v[2].key, "C");
	assert_string_equal(b->env.v[3].key, "D");
	assert_string_equal(b->env.v[3].value, "true");
	assert_string_equal(b->env.v[4].value, "1.50");
	/* resources merged key by key */
	assert_int_equal(b->rare->resources.cpu_milli, 500);
	assert_int_equal(b->rare->resources.memory_bytes, 512ll << 20);
	assert_int_equal(b->rare->resources.gpu, 2);
	assert_int_equal(b->rare->retries, 0);
	assert_int_equal(b->rare->timeout_ms, 90000);
	assert_int_equal(b->parallelism, 8);
	assert_int_equal(b->rare->params_nr, 3);
	assert_string_equal(b->rare->params[0].file, "conf/params.yml");
	assert_string_equal(b->rare->params[0].key, "x.y");
	assert_string_equal(b->rare->params[1].file, "other.yaml");
	assert_string_equal(b->rare->params[1].key, "z");
	assert_string_equal(b->rare->params[2].file, "p.json");
	assert_string_equal(b->rare->params[2].key, "k.l");
	pipefile_free(pf);
}

static void test_cmd_and_paths(void **state)
{
	struct pipefile *pf =
		parse_ok("stages:\n"
			 "  s:\n"
			 "    cmd: |\n"
			 "      echo one\n"
			 "      echo two\n"
			 "    inputs: ./data//raw/./\n"
			 "    outputs: [out/x/../y.txt, \"res/\"]\n"
			 "  t:\n"
			 "    cmd: [python, -c, 42, 'a b']\n"
			 "    inputs: [\"f[0-9].csv\", 'a/?.txt']\n"
			 "    outputs: out2/\n"
			 "    datums: data/*/\n");
	const struct pf_stage *s = &pf->stages[0], *t = &pf->stages[1];

	(void)state;
	assert_int_equal(s->cmd_kind, PF_CMD_SHELL);
	assert_string_equal(s->cmd, "echo one\necho two\n");
	assert_int_equal(s->inputs.nr, 1);
	assert_string_equal(s->inputs.v[0].path, "data/raw/");
	assert_true(s->inputs.v[0].is_dir);
	assert_string_equal(s->outputs.v[0].path, "out/y.txt");
	assert_false(s->outputs.v[0].is_dir);
	assert_string_equal(s->outputs.v[1].path, "res/");
	assert_true(s->outputs.v[1].is_dir);
	assert_int_equal(t->cmd_kind, PF_CMD_ARGV);
	assert_int_equal(t->rare->argv.nr, 4);
	assert_string_equal(t->rare->argv.v[2], "42");
	assert_string_equal(t->rare->argv.v[3], "a b");
	assert_true(t->inputs.v[0].is_glob);
	assert_true(t->inputs.v[1].is_glob);
	assert_string_equal(t->rare->datums.path, "data/*/");
	assert_true(t->rare->datums.is_dir);
	assert_true(t->rare->datums.is_glob);
	pipefile_free(pf);
}

static void test_matrix(void **state)
{
	struct pipefile *pf = parse_ok(
		"defaults:\n"
		"  env: { SEED: \"${seed}\" }\n"
		"stages:\n"
		"  m:\n"
		"    matrix:\n"
		"      seed: [1, 2]\n"
		"      mode: [fast, slow, \"x.y\"]\n"
		"      unused: [u]\n"
		"    env: { OUT: \"res/${mode}\", HOME2: x }\n"
		"    cmd: [run, \"--seed=${seed}\", \"$${HOME2}\", \"${PIPE_OUT}\","
		" \"${HOME2}\", \"$$x ${mode}${mode}\"]\n"
		"    inputs: \"in/${seed}.csv\"\n"
		"    outputs: [\"out/${mode}/${seed}/\"]\n"
		"    datums: \"in/${mode}/*\"\n");
	const struct pf_stage *s;

	(void)state;
	assert_int_equal(pf->nr, 6);
	assert_string_equal(pf->stages[0].name, "m@seed=1,mode=fast,unused=u");
	assert_string_equal(pf->stages[1].name, "m@seed=1,mode=slow,unused=u");
	assert_string_equal(pf->stages[2].name, "m@seed=1,mode=x.y,unused=u");
	assert_string_equal(pf->stages[3].name, "m@seed=2,mode=fast,unused=u");
	s = &pf->stages[4];
	assert_string_equal(s->name, "m@seed=2,mode=slow,unused=u");
	assert_string_equal(s->rare->argv.v[1], "--seed=2");
	assert_string_equal(s->rare->argv.v[2], "${HOME2}");
	assert_string_equal(s->rare->argv.v[3], "${PIPE_OUT}");
	assert_string_equal(s->rare->argv.v[4], "${HOME2}");
	assert_string_equal(s->rare->argv.v[5], "$$x slowslow");
	assert_string_equal(s->inputs.v[0].path, "in/2.csv");
	assert_string_equal(s->outputs.v[0].path, "out/slow/2/");
	assert_string_equal(s->rare->datums.path, "in/slow/*");
	assert_int_equal(s->env.nr, 3);
	assert_string_equal(s->env.v[0].key, "HOME2");
	assert_string_equal(s->env.v[1].key, "OUT");
	assert_string_equal(s->env.v[1].value, "res/slow");
	assert_string_equal(s->env.v[2].key, "SEED");
	assert_string_equal(s->env.v[2].value, "2");
	assert_int_equal(s->rare->matrix.nr, 3);
	assert_string_equal(s->rare->matrix.v[2].key, "unused");
	assert_int_equal(s->rare->matrix.v[0].line, 6);
	assert_int_equal(s->rare->matrix.v[0].col, 7);
	pipefile_free(pf);
}

static void test_units(void **state)
{
	static const struct {
		int (*fn)(const char *, long long *);
		const char *in;
		long long want; /* -1: must fail */
	} cases[] = {
		{pipefile_parse_cpu, "500m", 500},
		{pipefile_parse_cpu, "2", 2000},
		{pipefile_parse_cpu, "0.5", 500},
		{pipefile_parse_cpu, "1.25", 1250},
		{pipefile_parse_cpu, "0", -1},
		{pipefile_parse_cpu, "0.0005", -1},
		{pipefile_parse_cpu, "lots", -1},
		{pipefile_parse_cpu, "2.5m", -1},
		{pipefile_parse_cpu, "-1", -1},
		{pipefile_parse_cpu, "1e3", -1},
		{pipefile_parse_size, "4Gi", 4294967296ll},
		{pipefile_parse_size, "512Mi", 536870912ll},
		{pipefile_parse_size, "1G", 1000000000ll},
		{pipefile_parse_size, "100K", 100000},
		{pipefile_parse_size, "100k", 100000},
		{pipefile_parse_size, "1Ti", 1ll << 40},
		{pipefile_parse_size, "1.5Gi", 3ll << 29},
		{pipefile_parse_size, "123", 123},
		{pipefile_parse_size, "4GB", -1},
		{pipefile_parse_size, "Gi", -1},
		{pipefile_parse_size, "-1Gi", -1},
		{pipefile_parse_size, "99999999999Pi", -1},
		{pipefile_parse_duration, "90s", 90000},
		{pipefile_parse_duration, "30m", 1800000},
		{pipefile_parse_duration, "2h", 7200000},
		{pipefile_parse_duration, "1h30m", 5400000},
		{pipefile_parse_duration, "500ms", 500},
		{pipefile_parse_duration, "1m30s500ms", 90500},
		{pipefile_parse_duration, "1.5h", 5400000},
		{pipefile_parse_duration, "1d", 86400000},
		{pipefile_parse_duration, "45", 45000},
		{pipefile_parse_duration, "0", 0},
		{pipefile_parse_duration, "", -1},
		{pipefile_parse_duration, "10x", -1},
		{pipefile_parse_duration, "h", -1},
		{pipefile_parse_duration, "-5s", -1},
		{pipefile_parse_duration, "1h 30m", -1},
		{pipefile_parse_duration, "99999999999999999d", -1},
		{pipefile_parse_int, "42", 42},
		{pipefile_parse_int, "0", 0},
		{pipefile_parse_int, "4x", -1},
		{pipefile_parse_int, "0x10", -1},
		{pipefile_parse_int, "99999999999999999999", -1},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		long long v = -7;
		int rc = cases[i].fn(cases[i].in, &v);

		if (cases[i].want < 0 && rc == 0)
			fail_msg("'%s' parsed as %lld", cases[i].in, v);
		if (cases[i].want >= 0 && (rc || v != cases[i].want))
			fail_msg("'%s': rc %d, %lld, want %lld", cases[i].in,
				 rc, v, cases[i].want);
	}
	assert_int_equal(pipefile_edit_distance("inputs", "input", 2), 1);
	assert_int_equal(pipefile_edit_distance("outptus", "outputs", 2), 2);
	assert_int_equal(pipefile_edit_distance("abc", "xyz", 2), 3);
}

static void test_merge_keys(void **state)
{
	struct pipefile *pf =
		parse_ok("defaults: &d\n"
			 "  image: img:1\n"
			 "stages:\n"
			 "  a: &base\n"
			 "    cmd: one\n"
			 "    inputs: [in/]\n"
			 "    env: &env { X: \"1\", Y: \"2\" }\n"
			 "  b:\n"
			 "    <<: *base\n"
			 "    cmd: two\n"
			 "  c:\n"
			 "    <<: [*base, { outputs: [c/], cmd: never }]\n"
			 "    env:\n"
			 "      <<: *env\n"
			 "      Y: \"3\"\n");
	const struct pf_stage *b = &pf->stages[1], *c = &pf->stages[2];

	(void)state;
	assert_int_equal(pf->nr, 3);
	assert_string_equal(b->cmd, "two");
	assert_string_equal(b->inputs.v[0].path, "in/");
	assert_int_equal(b->env.nr, 2);
	assert_string_equal(c->cmd, "one");
	assert_string_equal(c->outputs.v[0].path, "c/");
	assert_string_equal(c->env.v[0].value, "1");
	assert_string_equal(c->env.v[1].value, "3");
	assert_string_equal(c->image, "img:1");
	pipefile_free(pf);
}

static void test_errors_located(void **state)
{
	(void)state;
	parse_bad("stages:\n  train:\n    cmd: x\n    dependz: [data/]\n", 4, 5,
		  "unknown key 'dependz' in stage 'train'");
	parse_bad("stages:\n  train:\n    cmd: x\n    input: [data/]\n", 4, 5,
		  "(did you mean 'inputs'?)");
	parse_bad("stages:\n  train:\n    cmd: x\n    inputs: a\n    cmd: y\n",
		  5, 5,
		  "duplicate key 'cmd' in stage 'train' (first at line 3)");
	parse_bad("stages:\n  train:\n    inputs: [a]\n", 2, 3,
		  "stage 'train' has no 'cmd'");
	parse_bad("stages:\n  t:\n    cmd: []\n", 3, 10, "empty 'cmd'");
	parse_bad("stages:\n  t:\n    cmd: \"\"\n", 3, 10, "empty 'cmd'");
	parse_bad("stages:\n  t:\n    cmd:\n", 3, 5, "empty 'cmd'");
	parse_bad("stages:\n  t:\n    cmd: x\n    parallelism: lots\n", 4, 18,
		  "'parallelism' in stage 't' must be a whole number >= 1, not "
		  "'lots'");
	parse_bad("stages:\n  t:\n    cmd: x\n    parallelism: 0\n", 4, 18,
		  ">= 1, not '0'");
	parse_bad("stages:\n  t:\n    cmd: x\n    retries: -1\n", 4, 14,
		  "'retries' in stage 't' must be a whole number >= 0");
	parse_bad("stages:\n  t:\n    cmd: x\n    image: [a]\n", 4, 12,
		  "must be a string, not a list");
	parse_bad("stages:\n  t:\n    cmd: x\n    inputs: {a: b}\n", 4, 13,
		  "must be a string or a list of strings, not a mapping");
	parse_bad("stages:\n  t:\n    cmd: x\n    timeout: 5x\n", 4, 14,
		  "bad duration '5x' for 'timeout' in stage 't'");
	parse_bad("stages:\n  t:\n    cmd: x\n    outputs: [\"o/*.csv\"]\n", 4,
		  15, "is a glob");
	parse_bad("stages:\n  t:\n    cmd: x\n    inputs: [a, /etc/x]\n", 4, 17,
		  "'/etc/x' in 'inputs' of stage 't' is an absolute path");
	parse_bad("stages:\n  t:\n    cmd: x\n    inputs: [a/../../b]\n", 4, 14,
		  "escapes the workspace");
	parse_bad("stages:\n  t:\n    cmd: x\n    inputs: [\"d/[ab.csv\"]\n", 4,
		  17, "is a bad glob: unclosed '['");
	parse_bad("stages:\n  t:\n    cmd: echo ${nope} here\n", 3, 15,
		  "undefined variable '${nope}'");
	parse_bad("stages:\n  t:\n    cmd: \"echo ${x\"\n", 3, 16,
		  "unclosed '${'");
	parse_bad("version: 2\nstages: {}\n", 1, 10, "unsupported version 2");
	parse_bad("stages:\n  t:\n    cmd: x\n    executor: dockr\n", 4, 15,
		  "unknown executor 'dockr' in stage 't' (did you mean "
		  "'docker'?)");
	parse_bad("stages:\n  t:\n    cmd: x\n    executor: docker\n", 4, 15,
		  "runs on 'docker' but has no 'image'");
	parse_bad("stages:\n  a b:\n    cmd: x\n", 2, 3, "stage name 'a b'");
	parse_bad("stages:\n  a@b:\n    cmd: x\n", 2, 3, "reserved");
	parse_bad("stages:\n  t:\n    cmd: x\n    datums: 'd/*'\n", 4, 13,
		  "has 'datums' and 0 outputs");
	parse_bad("stages:\n  t:\n    cmd: x\n    datums: 'd/*'\n"
		  "    outputs: [a/, b/]\n",
		  4, 13, "has 'datums' and 2 outputs");
	parse_bad("stages:\n  t:\n    cmd: x\n    datums: 'd/*'\n"
		  "    outputs: out.txt\n",
		  5, 14, "must be a folder");
	parse_bad("stages:\n  t:\n    cmd: x\n    matrix: {a: [1, 1]}\n", 4, 13,
		  "two stages named 't@a=1'");
	parse_bad("", 0, 0, "file is empty");
	parse_bad("- a\n- b\n", 1, 1, "must be a mapping");
	parse_bad("version: 1\n", 0, 0, "no 'stages'");
	parse_bad("stages:\n", 1, 1, "'stages' is empty");
	parse_bad("a: [x, y\n", 1, 4, "YAML syntax error: did not find");
	parse_bad("stages:\n  t:\n    cmd: x\n    resources: {cpu: lots}\n", 4,
		  22, "bad cpu amount 'lots'");
	parse_bad("stages:\n  t:\n    cmd: x\n    resources: {memory: 4GB}\n",
		  4, 25,
		  "bad size '4GB' for 'memory' in 'resources' of stage 't'");
	parse_bad("stages:\n  t:\n    cmd: x\n    resources: {cpus: 1}\n", 4,
		  17,
		  "unknown key 'cpus' in 'resources' of stage 't' (did you "
		  "mean 'cpu'?)");
	parse_bad("docker: {netwrk: x}\nstages: {}\n", 1, 10,
		  "unknown key 'netwrk' in 'docker' (did you mean 'network'?)");
	parse_bad("kubernetes: {namespac: x}\nstages: {}\n", 1, 14,
		  "unknown key 'namespac' in 'kubernetes'");
	parse_bad("defaults: {cmd: x}\nstages: {}\n", 1, 12,
		  "'cmd' cannot be set in defaults");
	parse_bad("stagez: {}\n", 1, 1, "(did you mean 'stages'?)");
	parse_bad("stages:\n  t:\n    cmd: x\n  t:\n    cmd: y\n", 4, 3,
		  "duplicate stage 't' at the top level (first at line 2)");
	parse_bad("a: *nope\n", 1, 4, "alias '*nope' names no anchor");
}

/* The top-level `kubernetes:` keys: the pods' identity and the
 * scheduling defaults, which a stage not on kubernetes does not get. */
static void test_kube_top(void **state)
{
	struct pipefile *pf = parse_ok(
		"kubernetes:\n"
		"  context: lab\n"
		"  workspace: {hostPath: /data/ws}\n"
		"  runAsUser: 1000\n"
		"  runAsGroup: 0\n"
		"  imagePullSecrets: [regcred, {name: mirror.cred}]\n"
		"  nodeSelector:\n"
		"    zone: a\n"
		"    example.com/disk: ssd\n"
		"    empty: \"\"\n"
		"    nothing:\n"
		"    bool: true\n"
		"  tolerations:\n"
		"    - {key: dedicated, operator: Equal, value: pipe, effect: "
		"NoSchedule}\n"
		"    - key: node.kubernetes.io/unreachable\n"
		"      operator: Exists\n"
		"      effect: NoExecute\n"
		"      tolerationSeconds: 300\n"
		"    - {operator: Exists, key: \"\", value: \"\"}\n"
		"    - {key: x, value: \"\"}\n"
		"  serviceAccountName: pipe-runner\n"
		"stages:\n"
		"  t:\n"
		"    cmd: x\n");
	const struct pf_kube *k = &pf->kube;
	const struct pf_toleration *t = k->defaults.tolerations;

	(void)state;
	assert_string_equal(k->context, "lab");
	assert_string_equal(k->host_path, "/data/ws");
	assert_int_equal(k->uid, 1000);
	assert_int_equal(k->gid, 0);
	assert_int_equal(k->image_pull_secrets.nr, 2);
	assert_string_equal(k->image_pull_secrets.v[0], "regcred");
	assert_string_equal(k->image_pull_secrets.v[1], "mirror.cred");
	/* sorted by key; a null label value is empty, as Kubernetes reads
	 * it */
	assert_int_equal(k->defaults.node_selector.nr, 5);
	assert_string_equal(k->defaults.node_selector.v[0].key, "bool");
	assert_string_equal(k->defaults.node_selector.v[0].value, "true");
	assert_string_equal(k->defaults.node_selector.v[1].key, "empty");
	assert_string_equal(k->defaults.node_selector.v[1].value, "");
	assert_string_equal(k->defaults.node_selector.v[2].key,
			    "example.com/disk");
	assert_int_equal(k->defaults.node_selector.v[2].line, 9);
	assert_int_equal(k->defaults.node_selector.v[2].col, 5);
	assert_string_equal(k->defaults.node_selector.v[3].value, "");
	assert_string_equal(k->defaults.node_selector.v[4].key, "zone");
	assert_int_equal(k->defaults.tolerations_nr, 4);
	assert_string_equal(t[0].key, "dedicated");
	assert_string_equal(t[0].op, "Equal");
	assert_string_equal(t[0].value, "pipe");
	assert_string_equal(t[0].effect, "NoSchedule");
	assert_int_equal(t[0].seconds, -1);
	assert_string_equal(t[1].key, "node.kubernetes.io/unreachable");
	assert_string_equal(t[1].op, "Exists");
	assert_null(t[1].value);
	assert_string_equal(t[1].effect, "NoExecute");
	assert_int_equal(t[1].seconds, 300);
	assert_null(t[2].key); /* "" is how Kubernetes writes none */
	assert_null(t[2].value);
	assert_null(t[2].effect);
	assert_string_equal(t[3].key, "x");
	assert_null(t[3].op);
	assert_string_equal(t[3].value, "");
	assert_string_equal(k->defaults.service_account, "pipe-runner");
	/* a local stage gets none of it */
	assert_int_equal(pf->stages[0].kube->node_selector.nr, 0);
	assert_int_equal(pf->stages[0].kube->tolerations_nr, 0);
	assert_null(pf->stages[0].kube->service_account);
	pipefile_free(pf);

	pf = parse_ok("kubernetes: {imagePullSecrets: one}\n"
		      "stages: {t: {cmd: x}}\n");
	assert_int_equal(pf->kube.uid, -1);
	assert_int_equal(pf->kube.gid, -1);
	assert_int_equal(pf->kube.image_pull_secrets.nr, 1);
	assert_string_equal(pf->kube.image_pull_secrets.v[0], "one");
	pipefile_free(pf);
}

/* A kubernetes stage's scheduling is the defaults with each key the
 * stage gives replaced whole, in every matrix expansion. */
static void test_kube_merge(void **state)
{
	struct pipefile *pf;
	const struct pf_stage *s;

	(void)state;
	pf = parse_ok("kubernetes:\n"
		      "  nodeSelector: {disk: ssd, zone: a}\n"
		      "  tolerations: [{key: dedicated, value: pipe}]\n"
		      "  serviceAccountName: runner\n"
		      "defaults:\n"
		      "  executor: kubernetes\n"
		      "  image: img:1\n"
		      "stages:\n"
		      "  all-defaults:\n"
		      "    cmd: x\n"
		      "  own-selector:\n"
		      "    cmd: x\n"
		      "    kubernetes:\n"
		      "      nodeSelector: {gpu: \"true\"}\n"
		      "  own-rest:\n"
		      "    cmd: x\n"
		      "    kubernetes:\n"
		      "      nodeSelector:\n"
		      "      tolerations: []\n"
		      "      serviceAccountName: other\n"
		      "  empty:\n"
		      "    cmd: x\n"
		      "    kubernetes: {nodeSelector: {}}\n"
		      "  on-local:\n"
		      "    executor: local\n"
		      "    cmd: x\n"
		      "    kubernetes:\n"
		      "  sweep:\n"
		      "    matrix: {lr: [1, 2]}\n"
		      "    cmd: x ${lr}\n"
		      "    kubernetes:\n"
		      "      tolerations: [{key: gpu, operator: Exists}]\n");
	assert_int_equal(pf->nr, 7);

	s = pipefile_find_stage(pf, "all-defaults");
	assert_int_equal(s->kube->node_selector.nr, 2);
	assert_string_equal(s->kube->node_selector.v[0].key, "disk");
	assert_string_equal(s->kube->node_selector.v[1].value, "a");
	assert_int_equal(s->kube->tolerations_nr, 1);
	assert_string_equal(s->kube->tolerations[0].key, "dedicated");
	assert_string_equal(s->kube->tolerations[0].value, "pipe");
	assert_string_equal(s->kube->service_account, "runner");

	s = pipefile_find_stage(pf, "own-selector");
	assert_int_equal(s->kube->node_selector.nr, 1); /* replaced whole */
	assert_string_equal(s->kube->node_selector.v[0].key, "gpu");
	assert_string_equal(s->kube->node_selector.v[0].value, "true");
	assert_int_equal(s->kube->tolerations_nr, 1);
	assert_string_equal(s->kube->service_account, "runner");

	s = pipefile_find_stage(pf, "own-rest");
	assert_int_equal(s->kube->node_selector.nr, 2); /* null: not set */
	assert_int_equal(s->kube->tolerations_nr, 0);
	assert_string_equal(s->kube->service_account, "other");

	s = pipefile_find_stage(pf, "empty");
	assert_int_equal(s->kube->node_selector.nr, 0);
	assert_int_equal(s->kube->tolerations_nr, 1);

	s = pipefile_find_stage(pf, "on-local"); /* `kubernetes:` null */
	assert_string_equal(s->executor, "local");
	assert_int_equal(s->kube->node_selector.nr, 0);
	assert_null(s->kube->service_account);

	for (int i = 5; i < 7; i++) {
		s = &pf->stages[i];
		assert_string_equal(s->base, "sweep");
		assert_int_equal(s->kube->node_selector.nr, 2);
		assert_int_equal(s->kube->tolerations_nr, 1);
		assert_string_equal(s->kube->tolerations[0].key, "gpu");
		assert_string_equal(s->kube->tolerations[0].op, "Exists");
		assert_string_equal(s->kube->service_account, "runner");
	}
	assert_ptr_not_equal(pf->stages[5].kube->tolerations,
			     pf->stages[6].kube->tolerations);
	pipefile_free(pf);
}

/* Kubernetes' rules for labels and names, each error at the byte at
 * fault; stage keys are checked before pipe says it cannot run them. */
static void test_kube_errors(void **state)
{
	static const char k8s[] = "stages:\n"
				  "  t:\n"
				  "    executor: kubernetes\n"
				  "    image: i\n"
				  "    cmd: x\n";
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	parse_bad("kubernetes: {nodeSelector: {-disk: a}}\nstages: {}\n", 1, 29,
		  "bad label key '-disk' in 'kubernetes.nodeSelector': "
		  "must start with a letter or digit (use up to 63");
	parse_bad("kubernetes: {nodeSelector: {disk_: a}}\nstages: {}\n", 1, 33,
		  "must end with a letter or digit");
	parse_bad("kubernetes: {nodeSelector: {a/b/c: a}}\nstages: {}\n", 1, 32,
		  "has more than one '/'");
	parse_bad("kubernetes: {nodeSelector: {/b: a}}\nstages: {}\n", 1, 29,
		  "its prefix is empty");
	parse_bad("kubernetes: {nodeSelector: {a.com/: a}}\nstages: {}\n", 1,
		  35, "its name is empty");
	parse_bad("kubernetes: {nodeSelector: {a..com/b: a}}\nstages: {}\n", 1,
		  30, "each '.' must have a letter or digit on either side");
	parse_bad("kubernetes: {nodeSelector: {a: b c}}\nstages: {}\n", 1, 33,
		  "bad label value 'b c' for 'a' in 'kubernetes.nodeSelector': "
		  "a space is not allowed");
	parse_bad("kubernetes: {nodeSelector: {a: [b]}}\nstages: {}\n", 1, 32,
		  "'a' in 'kubernetes.nodeSelector' must be a label value");
	parse_bad("kubernetes: {serviceAccountName: Runner}\nstages: {}\n", 1,
		  34, "bad name 'Runner' for 'serviceAccountName'");
	parse_bad("kubernetes: {serviceAccountName: run-}\nstages: {}\n", 1, 37,
		  "must end with a letter or digit");
	parse_bad("kubernetes: {imagePullSecrets: [{}]}\nstages: {}\n", 1, 33,
		  "an entry in 'kubernetes.imagePullSecrets' needs a 'name'");
	parse_bad("kubernetes: {imagePullSecrets: {name: x}}\nstages: {}\n", 1,
		  32, "must be a list of secret names");
	parse_bad("kubernetes: {runAsUser: -3}\nstages: {}\n", 1, 25,
		  "must be a whole number >= 1, not '-3'");
	parse_bad("kubernetes: {runAsUser: 2147483648}\nstages: {}\n", 1, 25,
		  "a whole number from 1 to 2147483647");
	parse_bad("kubernetes: {tolerations: [{key: a, operator: Exists, "
		  "effect: NoExecute, tolerationSeconds: x}]}\nstages: {}\n",
		  1, 93,
		  "'tolerationSeconds' in 'kubernetes.tolerations' must "
		  "be a whole number >= 0");
	parse_bad("kubernetes: {tolerations: [gpu]}\nstages: {}\n", 1, 28,
		  "must be a list of mappings");
	parse_bad("kubernetes: {tolerations: [{}]}\nstages: {}\n", 1, 28,
		  "without a 'key' must have 'operator: Exists'");
	parse_bad("stages:\n  t:\n    cmd: x\n    kubernetes: {}\n", 4, 5,
		  "'kubernetes' applies to stages with executor: kubernetes, "
		  "and stage 't' runs on 'local'");

	/* the bounds: a label name of 63, a name of 253 */
	strbuf_addf(&sb,
		    "kubernetes:\n  nodeSelector: {p.io/%063d: v}\n"
		    "  serviceAccountName: %0253d\nstages: {}\n",
		    0, 0);
	parse_bad(sb.buf, 4, 1, "'stages' is empty");
	strbuf_reset(&sb);
	strbuf_addf(&sb, "kubernetes: {nodeSelector: {p.io/%064d: v}}\n", 0);
	parse_bad(sb.buf, 1, 97, "its name is longer than 63 characters");
	strbuf_reset(&sb);
	strbuf_addf(&sb, "kubernetes: {serviceAccountName: %0254d}\n", 0);
	parse_bad(sb.buf, 1, 287, "is longer than 253 characters");
	strbuf_reset(&sb);

	/* a stage running on kubernetes: its keys are checked first */
	strbuf_addf(&sb, "%s    kubernetes: [x]\n", k8s);
	parse_bad(sb.buf, 6, 17, "'kubernetes' in stage 't' must be a mapping");
	strbuf_reset(&sb);
	strbuf_addf(&sb, "%s    kubernetes: {runAsUser: 5}\n", k8s);
	parse_bad(sb.buf, 6, 18,
		  "'runAsUser' cannot be set in a stage, only in the "
		  "top-level 'kubernetes'");
	strbuf_reset(&sb);
	strbuf_addf(&sb, "%s    kubernetes: {serviceAccountName: A}\n", k8s);
	parse_bad(sb.buf, 6, 38,
		  "bad name 'A' for 'serviceAccountName' in 'kubernetes' of "
		  "stage 't'");
	strbuf_release(&sb);
}

/* Columns count bytes, also after multi-byte characters. */
static void test_utf8_columns(void **state)
{
	(void)state;
	parse_bad("# é\nstages:\n  t:\n    cmd: \"é\"\n    inptus: x\n", 5, 5,
		  "did you mean 'inputs'");
	parse_bad("stages:\n  t:\n    env: {É: 1}\n    cmd: x\n", 3, 11,
		  "bad variable name");
	parse_bad("stages:\n  t:\n    cmd: \"é ${x}\"\n", 3, 14,
		  "undefined variable '${x}'");
}

static void test_hostile(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct pipefile *pf = NULL;
	clock_t t0 = clock();

	(void)state;
	/* billion laughs: 9 levels of 9 aliases each */
	strbuf_addstr(&sb, "a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 10; i++) {
		strbuf_addf(&sb, "a%d: &a%d [", i, i);
		for (int j = 0; j < 9; j++)
			strbuf_addf(&sb, "%s*a%d", j ? ", " : "", i - 1);
		strbuf_addstr(&sb, "]\n");
	}
	strbuf_addstr(&sb, "stages: {}\n");
	assert_int_equal(
		pipefile_parse(&pf, "Pipefile", NULL, sb.buf, sb.len, &err),
		-1);
	assert_non_null(strstr(err.msg.buf, "alias bomb"));
	assert_true(clock() - t0 < CLOCKS_PER_SEC);
	error_release(&err);

	strbuf_reset(&sb);
	for (int i = 0; i < PIPEFILE_MAX_DEPTH + 1; i++)
		strbuf_addch(&sb, '[');
	parse_bad(sb.buf, 1, 65, "nesting deeper than 64 levels");

	strbuf_reset(&sb);
	strbuf_addchars(&sb, '#', PIPEFILE_MAX_BYTES + 1);
	parse_bad(sb.buf, 0, 0, "file is larger than 16 MiB");
	strbuf_release(&sb);

	parse_bad("a: 1\n---\nb: 2\n", 2, 1, "more than one YAML document");
	parse_bad("a: \"\\x00\"\nb: \x01\n", 2, 4, "YAML syntax error");
	parse_bad("x: &a [*a]\n", 1, 8, "names no anchor");
	parse_bad("stages:\n  <<: 5\n", 2, 7, "'<<' merges a mapping");
}

/* 10,000 stages: linear time, and a duplicate near the end is found. */
static void test_many_stages(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pipefile *pf;
	const int n = 10000;

	(void)state;
	strbuf_addstr(&sb, "stages:\n");
	for (int i = 0; i < n; i++)
		strbuf_addf(&sb,
			    "  s%d:\n    cmd: run %d\n    inputs: [in/%d/, "
			    "lib.py]\n    outputs: [out/%d/]\n",
			    i, i, i, i);
	pf = parse_ok(sb.buf);
	assert_int_equal(pf->nr, n);
	assert_string_equal(pipefile_find_stage(pf, "s9999")->cmd, "run 9999");
	pipefile_free(pf);
	strbuf_addstr(&sb, "  s17:\n    cmd: again\n");
	parse_bad(sb.buf, 4 * n + 2, 3,
		  "duplicate stage 's17' at the top level (first at line 70)");
	strbuf_release(&sb);
}

static void test_error_at_and_starter(void **state)
{
	struct error err = ERROR_INIT;
	struct pipefile *pf = parse_ok(pipefile_starter);

	(void)state;
	assert_int_equal(pf->nr, 2);
	assert_string_equal(pf->stages[0].name, "prepare");
	assert_string_equal(pf->stages[1].inputs.v[0].path,
			    pf->stages[0].outputs.v[0].path);
	assert_int_equal(pipefile_error_at(pf, &err, pf->stages[1].line,
					   pf->stages[1].col, "cycle %s", "x"),
			 -1);
	assert_string_equal(err.msg.buf, "cycle x");
	assert_string_equal(err.file, "Pipefile");
	assert_int_equal(err.exit_code, EXIT_USAGE);
	assert_string_equal(err.source_line, "  report:");
	error_release(&err);
	pipefile_free(pf);
	pipefile_free(NULL);
}

static void test_load(void **state)
{
	struct error err = ERROR_INIT;
	struct pipefile *pf = NULL;
	char dir[] = "/tmp/pipe-test-XXXXXX";
	struct strbuf path = STRBUF_INIT;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	strbuf_addf(&path, "%s/Pipefile", dir);
	assert_int_equal(pipefile_load(&pf, path.buf, &err), -1);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	assert_non_null(strstr(err.msg.buf, "(run 'pipe init' to create one)"));
	error_release(&err);
	fp = fopen(path.buf, "w");
	assert_non_null(fp);
	fputs("stages: {t: {cmd: x}}\n", fp);
	fclose(fp);
	assert_int_equal(pipefile_load(&pf, path.buf, &err), 0);
	assert_string_equal(pf->dir, dir);
	assert_string_equal(pf->path, path.buf);
	pipefile_free(pf);
	remove(path.buf);
	rmdir(dir);
	strbuf_release(&path);
}

/* A cache is used only when intact, written by the same stamp, and for
 * the same text; anything else is refused, never half-read. */
static void test_cache_refuses(void **state)
{
	const char *text = "stages: {t: {cmd: x, inputs: [a], outputs: [b]}}\n";
	struct pipefile *pf = parse_ok(text), *back = NULL;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	pipefile_serialize(pf, "one", &sb);
	assert_int_equal(pipefile_deserialize(&back, "P", ".", text,
					      strlen(text), "two", sb.buf,
					      sb.len),
			 -1);
	assert_int_equal(pipefile_deserialize(&back, "P", ".", "x: 1\n", 5,
					      "one", sb.buf, sb.len),
			 -1);
	for (size_t n = 0; n < sb.len; n += 7) /* every truncation */
		assert_int_equal(pipefile_deserialize(&back, "P", ".", text,
						      strlen(text), "one",
						      sb.buf, n),
				 -1);
	for (size_t i = 0; i < sb.len; i += 5) { /* flipped bytes */
		sb.buf[i] ^= 0x40;
		assert_int_equal(pipefile_deserialize(&back, "P", ".", text,
						      strlen(text), "one",
						      sb.buf, sb.len),
				 -1);
		sb.buf[i] ^= 0x40;
	}
	assert_null(back);
	assert_int_equal(pipefile_deserialize(&back, "P", ".", text,
					      strlen(text), "one", sb.buf,
					      sb.len),
			 0);
	assert_string_equal(back->stages[0].outputs.v[0].path, "b");
	pipefile_free(back);
	pipefile_free(pf);
	strbuf_release(&sb);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* pipefile_load_cached: writes the cache only where its folder exists,
 * reads it back without rewriting it (the first load too, for the model
 * a cached load gives), and follows an edited Pipefile. */
static void test_load_cached(void **state)
{
	struct error err = ERROR_INIT;
	struct pipefile *pf = NULL;
	char dir[] = "/tmp/pipe-test-XXXXXX";
	struct strbuf path = STRBUF_INIT, cache = STRBUF_INIT,
		      sub = STRBUF_INIT;
	struct stat st1, st2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	strbuf_addf(&path, "%s/Pipefile", dir);
	strbuf_addf(&sub, "%s/.pipe", dir);
	strbuf_addf(&cache, "%s/.pipe/pf.cache", dir);
	write_file(path.buf, "stages: {t: {cmd: one}}\n");
	assert_int_equal(
		pipefile_load_cached(&pf, path.buf, ".pipe/pf.cache", &err), 0);
	assert_string_equal(pf->stages[0].cmd, "one");
	pipefile_free(pf);
	assert_int_equal(access(cache.buf, F_OK), -1); /* no .pipe: none */
	assert_int_equal(mkdir(sub.buf, 0755), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pipefile_load_cached(&pf, path.buf,
						      ".pipe/pf.cache", &err),
				 0);
		assert_string_equal(pf->stages[0].cmd, "one");
		assert_string_equal(pf->dir, dir);
		/* the first one parsed, wrote the cache and read it back:
		 * a cached model, its text not kept */
		assert_non_null(pf->arena);
		assert_null(pf->text);
		pipefile_free(pf);
		assert_int_equal(stat(cache.buf, i ? &st2 : &st1), 0);
	}
	assert_int_equal(st1.st_ino, st2.st_ino); /* read, not rewritten */
	write_file(path.buf, "stages: {t: {cmd: two}}\n");
	assert_int_equal(
		pipefile_load_cached(&pf, path.buf, ".pipe/pf.cache", &err), 0);
	assert_string_equal(pf->stages[0].cmd, "two");
	pipefile_free(pf);
	write_file(cache.buf, "pipe-pfcache 1\ngarbage");
	assert_int_equal(
		pipefile_load_cached(&pf, path.buf, ".pipe/pf.cache", &err), 0);
	assert_string_equal(pf->stages[0].cmd, "two");
	pipefile_free(pf);
	write_file(path.buf, "stages: {t: {cmd: [}}\n");
	assert_int_equal(
		pipefile_load_cached(&pf, path.buf, ".pipe/pf.cache", &err),
		-1);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	error_release(&err);
	remove(cache.buf);
	rmdir(sub.buf);
	remove(path.buf);
	rmdir(dir);
	strbuf_release(&path);
	strbuf_release(&cache);
	strbuf_release(&sub);
}

/* The keys few stages set: the stages that set none share one empty
 * pipefile_no_rare, parsed and from the cache alike; one that sets one
 * has its own, with every value kept. */
static void check_rare(const struct pipefile *pf)
{
	const struct pf_stage *a = pipefile_find_stage(pf, "a");
	const struct pf_stage *b = pipefile_find_stage(pf, "b");
	const struct pf_stage *c = pipefile_find_stage(pf, "c");
	const struct pf_stage *m = pipefile_find_stage(pf, "m@n=1");

	assert_ptr_equal(a->rare, &pipefile_no_rare);
	assert_ptr_equal(c->rare, &pipefile_no_rare);
	assert_ptr_not_equal(b->rare, &pipefile_no_rare);
	assert_int_equal(b->rare->retries, 2);
	assert_int_equal(b->rare->timeout_ms, 0);
	assert_null(b->rare->datums.path);
	assert_ptr_not_equal(m->rare, &pipefile_no_rare);
	assert_int_equal(m->rare->matrix.nr, 1);
	assert_string_equal(m->rare->matrix.v[0].value, "1");
	assert_true(pipefile_rare_is_none(&pipefile_no_rare));
}

static void test_rare_shared(void **state)
{
	const char *text = "stages:\n"
			   "  a: {cmd: x, outputs: [a]}\n"
			   "  b: {cmd: x, outputs: [b], retries: 2}\n"
			   "  c: {cmd: x, outputs: [c]}\n"
			   "  m: {cmd: x, outputs: [\"m${n}\"], matrix: "
			   "{n: [1, 2]}}\n";
	struct error err = ERROR_INIT;
	struct pipefile *pf = NULL;

	(void)state;
	assert_int_equal(
		pipefile_parse(&pf, "Pipefile", NULL, text, strlen(text), &err),
		0);
	check_rare(pf);
	pf = round_trip(pf, text);
	check_rare(pf);
	pipefile_free(pf);
	assert_true(pipefile_rare_is_none(&pipefile_no_rare));
}

/* The model (or the error) of text built from the whole YAML tree is the
 * one pf (or err) built stage by stage (pipefile_build_streamed). */
static void same_as_whole_tree(const char *text, const struct pipefile *pf,
			       const struct error *err)
{
	struct error werr = ERROR_INIT;
	struct pipefile *whole = NULL;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	int rc;

	setenv("PIPE_TEST_WHOLE_TREE", "1", 1);
	rc = pipefile_parse(&whole, "Pipefile", NULL, text, strlen(text),
			    &werr);
	unsetenv("PIPE_TEST_WHOLE_TREE");
	assert_int_equal(rc, pf ? 0 : -1);
	if (!pf) {
		assert_string_equal(werr.msg.buf, err->msg.buf);
		assert_int_equal(werr.exit_code, err->exit_code);
	} else {
		pipefile_serialize(pf, "test", &a);
		pipefile_serialize(whole, "test", &b);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.buf, b.buf, a.len);
	}
	pipefile_free(whole);
	error_release(&werr);
	strbuf_release(&a);
	strbuf_release(&b);
}

/* Stages built one by one as their YAML ends give the model and the
 * errors the whole tree gives, whatever comes where: anchors in a stage
 * that a later one merges, root keys after the stages, a repeated stage
 * name or root key, a stage's error before a syntax error, anchored or
 * aliased or empty stages, matrix stages. */
static void test_streamed_as_whole(void **state)
{
	static const char *const cases[] = {
		"stages:\n  a: &base {cmd: x, outputs: [a], retries: 2}\n"
		"  b: {cmd: y, outputs: [b]}\n"
		"  c:\n    <<: *base\n    outputs: [c]\n",
		"stages:\n  a: {cmd: x, outputs: [a]}\n"
		"defaults: {retries: 3}\n",
		"version: 1\nstages:\n  a: {cmd: x, outputs: [a]}\n"
		"  b: {cmd: x, outputs: [b]}\n  a: {cmd: z, outputs: [z]}\n",
		"version: 1\nversion: 1\nstages:\n  a: {cmd: x, outputs: [a]}\n",
		"stages:\n  a: {cmd: x, outputs: [a]}\n  b: {cmd: x, bogus: 1}\n"
		"  c: {cmd: 'x}\n",
		"stages:\n  a: {cmd: x, outputs: [a]}\n  b: {cmd: x, bogus: 1}\n",
		"stages: &s\n  a: {cmd: x, outputs: [a]}\n",
		"x-common: &s\n  a: {cmd: x, outputs: [a]}\nstages: *s\n",
		"stages: {}\n",
		"stages:\n",
		"defaults: {executor: local}\nkeep: {jobs: 5}\nstages:\n"
		"  m:\n    cmd: x $n\n    matrix: {n: [1, 2, 3]}\n"
		"    outputs: ['m${n}']\n  n: {cmd: y, inputs: [m1], outputs: "
		"[n]}\n",
		"stages:\n  a: {cmd: x, outputs: [a]}\n  b: ~\n",
		"stages:\n  a: {cmd: x, outputs: [o]}\n  b: {cmd: x, outputs: "
		"[o]}\n",
		"stages:\n  a: {cmd: x, outputs: [a]}\n  b: *nothing\n",
		"kubernetes: {namespace: a}\nstages:\n  a: {cmd: x, outputs: "
		"[a]}\nkubernetes: {namespace: b}\nstages:\n  b: {cmd: y}\n",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct error err = ERROR_INIT;
		struct pipefile *pf = NULL;

		print_message("case %zu\n", i);
		pipefile_parse(&pf, "Pipefile", NULL, cases[i],
			       strlen(cases[i]), &err);
		same_as_whole_tree(cases[i], pf, &err);
		pipefile_free(pf);
		error_release(&err);
	}
}

/* Every case of tests/data/pipefile/ parses or fails with a message:
 * never a crash. */
static void test_corpus(void **state)
{
	struct strbuf dir = STRBUF_INIT, path = STRBUF_INIT, text = STRBUF_INIT;
	const char *file = __FILE__, *slash = strrchr(file, '/');
	struct dirent *de;
	DIR *d;
	int seen = 0;

	(void)state;
	strbuf_add(&dir, file, slash ? (size_t)(slash - file + 1) : 0);
	strbuf_addstr(&dir, "../data/pipefile");
	d = opendir(dir.buf);
	assert_non_null(d);
	while ((de = readdir(d))) {
		struct error err = ERROR_INIT;
		struct pipefile *pf = NULL;
		size_t n = strlen(de->d_name);
		int rc;

		if (n < 5 || strcmp(de->d_name + n - 4, ".yml"))
			continue;
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/%s", dir.buf, de->d_name);
		strbuf_reset(&text);
		assert_int_equal(strbuf_read_file(&text, path.buf, 0), 0);
		rc = pipefile_parse(&pf, "Pipefile", NULL, text.buf, text.len,
				    &err);
		assert_true(rc == 0 || (rc == -1 && err.msg.len > 0));
		assert_true(rc == 0 ? pf != NULL : pf == NULL);
		same_as_whole_tree(text.buf, pf, &err);
		if (pf)
			pf = round_trip(pf, text.buf);
		pipefile_free(pf);
		error_release(&err);
		seen++;
	}
	closedir(d);
	assert_true(seen >= 20);
	strbuf_release(&dir);
	strbuf_release(&path);
	strbuf_release(&text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_cache_refuses),
		cmocka_unit_test(test_load_cached),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_cmd_and_paths),
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_merge_keys),
		cmocka_unit_test(test_streamed_as_whole),
		cmocka_unit_test(test_errors_located),
		cmocka_unit_test(test_kube_top),
		cmocka_unit_test(test_kube_merge),
		cmocka_unit_test(test_kube_errors),
		cmocka_unit_test(test_utf8_columns),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_many_stages),
		cmocka_unit_test(test_error_at_and_starter),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_rare_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
