/* Unit tests for engine/graph.c: edges, overlaps, self-reads, cycles and
 * order, from Pipefiles parsed in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/graph.h"
#include "pipefile/pipefile.h"
#include "util/strbuf.h"

struct fixture {
	struct pipefile *pf;
	struct graph *g;
	struct error err;
};

/* Parse text and build its graph; returns graph_build's result. */
static int build(struct fixture *f, const char *text)
{
	error_init(&f->err);
	f->pf = NULL;
	f->g = NULL;
	if (pipefile_parse(&f->pf, "Pipefile", ".", text, strlen(text),
			   &f->err)) {
		fprintf(stderr, "parse: %s\n", f->err.msg.buf);
		fail();
	}
	return graph_build(&f->g, f->pf, &f->err);
}

static void release(struct fixture *f)
{
	graph_free(f->g);
	pipefile_free(f->pf);
	error_release(&f->err);
}

static const char *order_str(const struct fixture *f, struct strbuf *sb)
{
	strbuf_reset(sb);
	for (size_t i = 0; i < f->g->nr; i++)
		strbuf_addf(sb, "%s%s", i ? " " : "",
			    f->pf->stages[f->g->order[i]].name);
	return sb->buf;
}

static void test_edges_and_order(void **state)
{
	struct fixture f;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(build(&f, "stages:\n"
				   "  report:\n"
				   "    cmd: r\n"
				   "    inputs: [model/m.txt, out/clean/]\n"
				   "    outputs: [report.txt]\n"
				   "  train:\n"
				   "    cmd: t\n"
				   "    inputs: [out/]\n"
				   "    outputs: [model/]\n"
				   "  pre:\n"
				   "    cmd: p\n"
				   "    inputs: [data/]\n"
				   "    outputs: [out/clean/]\n"),
			 0);
	assert_string_equal(order_str(&f, &sb), "pre train report");
	/* train reads out/, which contains pre's out/clean/ */
	assert_int_equal(f.g->nodes[1].deps_nr, 1);
	assert_int_equal(f.g->nodes[1].deps[0], 2);
	/* report reads a file inside train's model/ and pre's folder */
	assert_int_equal(f.g->nodes[0].deps_nr, 2);
	release(&f);
	strbuf_release(&sb);
}

static void test_glob_edges(void **state)
{
	struct fixture f;

	(void)state;
	assert_int_equal(build(&f, "stages:\n"
				   "  a:\n"
				   "    cmd: a\n"
				   "    outputs: [out/x/, csv/t.csv]\n"
				   "  b:\n"
				   "    cmd: b\n"
				   "    inputs: [\"out/**/*.txt\"]\n"
				   "    outputs: [b/]\n"
				   "  c:\n"
				   "    cmd: c\n"
				   "    inputs: [\"csv/*.json\"]\n"
				   "    outputs: [c/]\n"
				   "  d:\n"
				   "    cmd: d\n"
				   "    inputs: [\"cs*/t.csv\"]\n"
				   "    outputs: [d/]\n"),
			 0);
	assert_int_equal(f.g->nodes[1].deps_nr, 1);
	assert_int_equal(f.g->nodes[2].deps_nr, 0);
	assert_int_equal(f.g->nodes[3].deps_nr, 1);
	release(&f);
}

static void test_overlap(void **state)
{
	struct fixture f;

	(void)state;
	assert_int_equal(build(&f, "stages:\n"
				   "  a:\n"
				   "    cmd: a\n"
				   "    outputs: [out/]\n"
				   "  b:\n"
				   "    cmd: b\n"
				   "    outputs: [out/sub/x.txt]\n"),
			 -1);
	assert_string_equal(f.err.msg.buf, "outputs of 'a' and 'b' overlap: "
					   "'out/' and 'out/sub/x.txt'");
	assert_int_equal(f.err.line, 7);
	assert_int_equal(f.err.col, 15);
	release(&f);

	assert_int_equal(build(&f, "stages:\n"
				   "  a:\n"
				   "    cmd: a\n"
				   "    outputs: [m.txt]\n"
				   "  b:\n"
				   "    cmd: b\n"
				   "    outputs: [m.txt]\n"),
			 -1);
	assert_non_null(strstr(f.err.msg.buf, "overlap"));
	release(&f);
}

static void test_self_read(void **state)
{
	struct fixture f;

	(void)state;
	assert_int_equal(build(&f, "stages:\n"
				   "  a:\n"
				   "    cmd: a\n"
				   "    inputs: [out/in.txt]\n"
				   "    outputs: [out/]\n"),
			 -1);
	assert_string_equal(f.err.msg.buf,
			    "stage 'a' reads its own output 'out/'");
	assert_int_equal(f.err.line, 4);
	release(&f);
}

static void test_cycle(void **state)
{
	struct fixture f;

	(void)state;
	assert_int_equal(build(&f, "stages:\n"
				   "  a:\n"
				   "    cmd: a\n"
				   "    inputs: [b.txt]\n"
				   "    outputs: [a.txt]\n"
				   "  b:\n"
				   "    cmd: b\n"
				   "    inputs: [a.txt]\n"
				   "    outputs: [b.txt]\n"
				   "  c:\n"
				   "    cmd: c\n"
				   "    outputs: [c.txt]\n"),
			 -1);
	assert_string_equal(f.err.msg.buf, "dependency cycle: a -> b -> a");
	release(&f);
}

static void test_select(void **state)
{
	struct fixture f;
	unsigned char mark[3];
	char *want[] = {"train"};
	char *bad[] = {"trian"};

	(void)state;
	assert_int_equal(build(&f, "stages:\n"
				   "  pre:\n"
				   "    cmd: p\n"
				   "    outputs: [out/]\n"
				   "  train:\n"
				   "    cmd: t\n"
				   "    inputs: [out/]\n"
				   "    outputs: [model/]\n"
				   "  other:\n"
				   "    cmd: o\n"
				   "    outputs: [o/]\n"),
			 0);
	assert_int_equal(graph_select(f.g, want, 1, mark, &f.err), 0);
	assert_int_equal(mark[0], 1);
	assert_int_equal(mark[1], 1);
	assert_int_equal(mark[2], 0);
	assert_int_equal(graph_select(f.g, bad, 1, mark, &f.err), -1);
	assert_string_equal(
		f.err.msg.buf,
		"no stage 'trian' in Pipefile (did you mean 'train'?)");
	release(&f);
}

static void test_large_graph_is_linear(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct fixture f;

	(void)state;
	strbuf_addstr(&sb, "stages:\n");
	for (int i = 0; i < 5000; i++)
		strbuf_addf(&sb,
			    "  s%d:\n    cmd: cp a b\n    inputs: [d/%d/]\n"
			    "    outputs: [d/%d/]\n",
			    i, i, i + 1);
	assert_int_equal(build(&f, sb.buf), 0);
	assert_int_equal(f.g->order[0], 0);
	assert_int_equal(f.g->order[4999], 4999);
	assert_int_equal(f.g->nodes[4999].deps_nr, 1);
	release(&f);
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edges_and_order),
		cmocka_unit_test(test_glob_edges),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_self_read),
		cmocka_unit_test(test_cycle),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_large_graph_is_linear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
