/* Unit tests for util/proc.c: a helper's exit status, its stdout and
 * stderr, stdin fed to it, the environment added, and the failures
 * (not startable, timed out, too much output, killed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/proc.h"
#include "util/strbuf.h"

/* sh -c SCRIPT with r's other fields; returns proc_capture's result. */
static int sh(struct proc_run *r, const char *script, struct strbuf *out,
	      struct strbuf *errout, struct error *err)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};

	r->argv = argv;
	return proc_capture(r, out, errout, err);
}

static void test_status_and_output(void **state)
{
	struct proc_run r = {0};
	struct strbuf out = STRBUF_INIT, errout = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)state;
	assert_int_equal(sh(&r, "echo out; echo err >&2", &out, &errout, &err),
			 0);
	assert_string_equal(out.buf, "out\n");
	assert_string_equal(errout.buf, "err\n");
	strbuf_reset(&out);
	assert_int_equal(sh(&r, "printf x; exit 7", &out, NULL, &err), 7);
	assert_string_equal(out.buf, "x");
	assert_int_equal(err.exit_code, 0);
	strbuf_reset(&out);
	/* stdin is /dev/null unless given */
	assert_int_equal(sh(&r, "cat", &out, NULL, &err), 0);
	assert_string_equal(out.buf, "");
	/* a working folder */
	r.dir = "/";
	assert_int_equal(sh(&r, "pwd", &out, NULL, &err), 0);
	assert_string_equal(out.buf, "/\n");
	strbuf_release(&out);
	strbuf_release(&errout);
}

/* stdin written while stdout is read: more than a pipe holds both ways. */
static void test_stdin(void **state)
{
	struct proc_run r = {0};
	struct strbuf out = STRBUF_INIT, in = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)state;
	for (int i = 0; i < 200000; i++)
		strbuf_addch(&in, 'a' + i % 26);
	r.in = in.buf;
	r.in_len = in.len;
	assert_int_equal(sh(&r, "cat", &out, NULL, &err), 0);
	assert_int_equal(out.len, in.len);
	assert_memory_equal(out.buf, in.buf, in.len);
	strbuf_release(&out);
	strbuf_release(&in);
}

static void test_env(void **state)
{
	char *env[] = {"PIPE_TEST_A=one two", "HOME=/elsewhere", NULL};
	struct proc_run r = {.env = env};
	struct strbuf out = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)state;
	setenv("PIPE_TEST_KEPT", "kept", 1);
	assert_int_equal(sh(&r,
			    "echo \"$PIPE_TEST_A|$HOME|$PIPE_TEST_KEPT\"; "
			    "env | grep -c '^HOME='",
			    &out, NULL, &err),
			 0);
	assert_string_equal(out.buf, "one two|/elsewhere|kept\n1\n");
	unsetenv("PIPE_TEST_KEPT");
	strbuf_release(&out);
}

static void test_failures(void **state)
{
	char *missing[] = {"pipe-no-such-helper", NULL};
	struct proc_run r = {.argv = missing};
	struct strbuf out = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)state;
	/* not found: the child's exec fails with 127, as a shell says */
	assert_int_equal(proc_capture(&r, &out, NULL, &err), 127);

	memset(&r, 0, sizeof(r));
	r.timeout_ms = 1000;
	assert_int_equal(sh(&r, "echo secret; sleep 5", &out, NULL, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_string_equal(err.msg.buf, "'sh' did not finish within 1s");
	error_release(&err);

	memset(&r, 0, sizeof(r));
	r.max_out = 1000;
	strbuf_reset(&out);
	assert_int_equal(sh(&r, "yes secret", &out, NULL, &err), -1);
	assert_string_equal(err.msg.buf, "'sh' printed more than 1000 bytes");
	assert_null(strstr(err.msg.buf, "secret\n"));
	error_release(&err);

	memset(&r, 0, sizeof(r));
	assert_int_equal(sh(&r, "kill -9 $$", &out, NULL, &err), -1);
	assert_string_equal(err.msg.buf, "'sh' was killed by signal 9");
	error_release(&err);
	strbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_and_output),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
