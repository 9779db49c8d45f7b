/* Unit tests for util/: strbuf, strvec, path, glob. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/dl.h"
#include "util/error.h"
#include "util/glob.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/strvec.h"

static void test_strbuf(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_string_equal(sb.buf, "");
	strbuf_addstr(&sb, "abc");
	strbuf_addf(&sb, "-%d-%s", 42, "x");
	assert_string_equal(sb.buf, "abc-42-x");
	for (int i = 0; i < 1000; i++)
		strbuf_addch(&sb, 'y');
	assert_int_equal(sb.len, 8 + 1000);
	strbuf_reset(&sb);
	assert_string_equal(sb.buf, "");
	strbuf_release(&sb);
	strbuf_reset(&sb);
	assert_string_equal(sb.buf, "");
}

static void test_strvec(void **state)
{
	struct strvec sv = STRVEC_INIT;

	(void)state;
	assert_null(sv.v[0]);
	strvec_push(&sv, "a");
	strvec_pushf(&sv, "b%d", 2);
	assert_int_equal(sv.nr, 2);
	assert_string_equal(sv.v[1], "b2");
	assert_null(sv.v[2]);
	strvec_clear(&sv);
	assert_int_equal(sv.nr, 0);
}

static void check_norm(const char *in, const char *want)
{
	struct strbuf sb = STRBUF_INIT;
	const char *why = NULL;
	int rc = path_normalize(in, &sb, &why);

	if (want) {
		assert_int_equal(rc, 0);
		assert_string_equal(sb.buf, want);
	} else {
		assert_int_equal(rc, -1);
		assert_non_null(why);
	}
	strbuf_release(&sb);
}

static void test_path_normalize(void **state)
{
	(void)state;
	check_norm("a/b", "a/b");
	check_norm("a//b/./c/", "a/b/c/");
	check_norm("./a", "a");
	check_norm("a/b/../c", "a/c");
	check_norm(".", "");
	check_norm("/etc/passwd", NULL);
	check_norm("../x", NULL);
	check_norm("a/../../x", NULL);
	check_norm("", NULL);
}

static void test_path_inside(void **state)
{
	(void)state;
	assert_true(path_is_inside("out/a.txt", "out/"));
	assert_true(path_is_inside("out", "out/"));
	assert_false(path_is_inside("output", "out"));
	assert_true(path_is_inside("x", ""));
	assert_true(path_overlaps("out/", "out/a"));
	assert_false(path_overlaps("a/b", "a/c"));
}

static void test_glob(void **state)
{
	(void)state;
	assert_true(glob_match("data/raw/*.csv", "data/raw/a.csv"));
	assert_false(glob_match("data/raw/*.csv", "data/raw/sub/a.csv"));
	assert_true(glob_match("lib/**/*.py", "lib/a.py"));
	assert_true(glob_match("lib/**/*.py", "lib/x/y/a.py"));
	assert_false(glob_match("lib/**/*.py", "libx/a.py"));
	assert_true(glob_match("**", "a/b/c"));
	assert_true(glob_match("a?c", "abc"));
	assert_false(glob_match("a?c", "a/c"));
	assert_true(glob_match("f[0-9].txt", "f7.txt"));
	assert_false(glob_match("f[!0-9].txt", "f7.txt"));
	assert_true(glob_match("data/*/", "data/x"));
	assert_int_equal(glob_literal_prefix("data/raw/*.csv"), 9);
	assert_int_equal(glob_literal_prefix("*.csv"), 0);
}

static void test_glob_check(void **state)
{
	const char *why = NULL;
	int off = -1;

	(void)state;
	assert_int_equal(glob_check("a/[bc].txt", &why, &off), 0);
	assert_int_equal(glob_check("a/[bc.txt", &why, &off), -1);
	assert_int_equal(off, 2);
}

static double (*p_cos)(double);
static double (*p_sqrt)(double);
static void (*p_nothing)(void);

static void test_dl_load(void **state)
{
	const struct dl_fn fns[] = {{"cos", &p_cos}, {"sqrt", &p_sqrt}};
	const struct dl_fn bad[] = {{"sqrt", &p_sqrt},
				    {"no_such_fn", &p_nothing}};
	struct error err = ERROR_INIT;
	int loaded = 0, again = 0;

	(void)state;
	assert_int_equal(dl_load("libm.so.6", "libc6", fns, 2, &loaded, &err),
			 0);
	assert_int_equal(loaded, 1);
	assert_true(p_cos(0.0) == 1.0 && p_sqrt(4.0) == 2.0);
	/* loaded: nothing is looked up again */
	assert_int_equal(dl_load("libm.so.6", "libc6", bad, 2, &loaded, &err),
			 0);
	assert_int_equal(dl_load("libm.so.6", "libc6", bad, 2, &again, &err),
			 -1);
	assert_int_equal(again, 0);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "no 'no_such_fn' in it"));
	error_release(&err);
	assert_int_equal(
		dl_load("libpipe-none.so.9", "pipe-none", fns, 2, &again, &err),
		-1);
	assert_non_null(strstr(err.msg.buf, "cannot load libpipe-none.so.9"));
	assert_non_null(strstr(err.msg.buf, "(install pipe-none)"));
	error_release(&err);
}

static void test_error(void **state)
{
	struct error err = ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(error_set_at(&err, EXIT_USAGE, "Pipefile", 3, 5,
				      "  x: 1", "unknown key '%s'", "x"),
			 -1);
	error_prefix(&err, "stage '%s': ", "a");
	error_format(&err, &sb);
	assert_string_equal(sb.buf, "Pipefile:3:5: stage 'a': unknown key 'x'");
	assert_int_equal(err.exit_code, EXIT_USAGE);
	error_release(&err);
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strbuf),
		cmocka_unit_test(test_strvec),
		cmocka_unit_test(test_path_normalize),
		cmocka_unit_test(test_path_inside),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_glob_check),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_dl_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
