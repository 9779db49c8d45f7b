/* Unit tests for engine/state.c: the state file round trip, and file lists
 * parsed only when asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/state.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/strbuf.h"

/* A state with one stage whose folder input holds two files. */
static void sample(struct strbuf *out)
{
	struct state st = {0};
	struct stage_record *r = calloc(1, sizeof(*r));
	struct state_path *in = calloc(1, sizeof(*in));

	r->name = strdup("pre");
	r->executor = strdup("local");
	in->path = strdup("data/");
	in->files = calloc(2, sizeof(*in->files));
	in->files[0].path = strdup("data/a.csv");
	in->files[1].path = strdup("data/b\tc.csv"); /* escaped in the file */
	hash_buf("a", 1, &in->files[0].hash);
	hash_buf("b", 1, &in->files[1].hash);
	in->files_nr = in->files_alloc = 2;
	hash_buf("data", 4, &in->hash);
	r->inputs = in;
	r->inputs_nr = 1;
	state_put(&st, r);
	state_serialize(&st, out);
	stage_record_free(st.recs[0]);
	free(st.recs);
}

static void test_round_trip_lazy(void **state)
{
	struct strbuf text = STRBUF_INIT, again = STRBUF_INIT;
	struct state *st = calloc(1, sizeof(*st));
	struct stage_record *r;
	struct hash128 a;

	(void)state;
	sample(&text);
	assert_int_equal(state_parse(st, text.buf, text.len), 0);
	r = state_find(st, "pre");
	assert_non_null(r);
	assert_int_equal(r->inputs_nr, 1);
	assert_int_equal(r->inputs[0].files_nr, 0); /* not parsed yet */
	state_serialize(st, &again);		    /* written back as read */
	assert_string_equal(again.buf, text.buf);
	assert_int_equal(state_path_files(&r->inputs[0]), 0);
	assert_int_equal(r->inputs[0].files_nr, 2);
	assert_string_equal(r->inputs[0].files[0].path, "data/a.csv");
	assert_string_equal(r->inputs[0].files[1].path, "data/b\tc.csv");
	hash_buf("a", 1, &a);
	assert_true(hash_equal(&r->inputs[0].files[0].hash, &a));
	assert_int_equal(state_path_files(&r->inputs[0]), 0); /* once */
	assert_int_equal(r->inputs[0].files_nr, 2);
	strbuf_reset(&again);
	state_serialize(st, &again); /* and the same from the parsed list */
	assert_string_equal(again.buf, text.buf);
	state_free(st);
	strbuf_release(&text);
	strbuf_release(&again);
}

/* state_load maps the file: the lazy lists are parsed in the mapping (a
 * private copy of the pages: the file itself is never written), and a
 * missing, empty, truncated or corrupt file is an empty state. */
static void test_load_mapped(void **state)
{
	char dir[] = "/tmp/pipe-test-state.XXXXXX";
	struct strbuf text = STRBUF_INIT, file = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct state *st;
	struct stage_record *r;
	char *path;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = malloc(strlen(dir) + 7);
	sprintf(path, "%s/state", dir);
	sample(&text);

	assert_int_equal(state_load(&st, path, &err), 0); /* missing */
	assert_int_equal(st->nr, 0);
	state_free(st);

	assert_int_equal(fs_write_atomic(path, text.buf, text.len, &err), 0);
	assert_int_equal(state_load(&st, path, &err), 0);
	r = state_find(st, "pre");
	assert_non_null(r);
	assert_int_equal(state_path_files(&r->inputs[0]), 0);
	assert_int_equal(r->inputs[0].files_nr, 2);
	assert_string_equal(r->inputs[0].files[1].path, "data/b\tc.csv");
	state_free(st);
	assert_int_equal(strbuf_read_file(&file, path, 0), 0);
	assert_string_equal(file.buf, text.buf); /* the file as written */

	for (size_t cut = 0; cut < 3; cut++) {
		size_t len = cut == 0 ? 0 : cut == 1 ? text.len / 2 : text.len;

		if (cut == 2)
			text.buf[text.len / 3] ^= 1; /* checksum fails */
		assert_int_equal(fs_write_atomic(path, text.buf, len, &err), 0);
		assert_int_equal(state_load(&st, path, &err), 0);
		assert_int_equal(st->nr, 0);
		assert_null(state_find(st, "pre"));
		state_free(st);
	}
	unlink(path);
	rmdir(dir);
	free(path);
	strbuf_release(&text);
	strbuf_release(&file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_lazy),
		cmocka_unit_test(test_load_mapped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
