/* Unit tests for a unit's log (executors/unitlog.c): made on the first
 * byte, never before; capped with its head and tail kept and the cut
 * named; a ring that wraps many times keeps the last bytes in order. */
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

#include "executors/unitlog.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static char *dir_new(void)
{
	char tmpl[] = "/tmp/pipe-unitlog.XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static char *slurp(const char *path)
{
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, path, 0)) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, NULL);
}

static void test_no_output_no_file(void **state)
{
	char *dir = dir_new();
	char *path = xstrfmt("%s/logs/job/d.log", dir);
	struct unit_log l;
	struct stat st;

	(void)state;
	unit_log_init(&l, path, 0);
	unit_log_write(&l, "", 0);
	unit_log_close(&l);
	assert_int_not_equal(stat(path, &st), 0);
	free(path);
	path = xstrfmt("%s/logs", dir);
	assert_int_not_equal(stat(path, &st), 0); /* nor its folder */
	free(path);
	path = xstrfmt("%s/logs/job/d.log", dir);
	unit_log_init(&l, path, 0);
	unit_log_note(&l, "cannot run 'x'");
	unit_log_close(&l);
	{
		char *s = slurp(path);

		assert_string_equal(s, "pipe: cannot run 'x'\n");
		free(s);
	}
	free(path);
	fs_remove_tree(dir);
	free(dir);
}

static void test_under_cap_whole(void **state)
{
	char *dir = dir_new();
	char *path = xstrfmt("%s/a.log", dir);
	struct unit_log l;
	char *s;

	(void)state;
	unit_log_init(&l, path, 100);
	unit_log_write(&l, "0123456789\n", 11);
	for (int i = 0; i < 8; i++)
		unit_log_write(&l, "abcdefghi\n", 10);
	unit_log_write(&l, "z", 1); /* 92 bytes: nothing cut */
	unit_log_close(&l);
	s = slurp(path);
	assert_int_equal(strlen(s), 92);
	assert_null(strstr(s, "cut"));
	assert_int_equal(s[91], 'z');
	free(s);
	free(path);
	fs_remove_tree(dir);
	free(dir);
}

/* 10,000 numbered lines through a 4 KiB cap, in writes of odd sizes: the
 * first lines, the cut, then the last lines whole and in order. */
static void test_cap_head_and_tail(void **state)
{
	char *dir = dir_new();
	char *path = xstrfmt("%s/b.log", dir);
	struct strbuf all = STRBUF_INIT;
	struct unit_log l;
	char *s, *mark, *tail;
	unsigned long long cut;
	size_t off = 0, step = 1;

	(void)state;
	for (int i = 0; i < 10000; i++)
		strbuf_addf(&all, "line %05d\n", i);
	unit_log_init(&l, path, 4096);
	while (off < all.len) {
		size_t n = all.len - off < step ? all.len - off : step;

		unit_log_write(&l, all.buf + off, n);
		off += n;
		step = step * 7 % 1531 + 1;
	}
	unit_log_close(&l);
	s = slurp(path);
	assert_non_null(s);
	assert_true(strlen(s) <= 4096 + 64);
	assert_memory_equal(s, all.buf, 2048); /* the head as written */
	mark = strstr(s, "[... ");
	assert_non_null(mark);
	assert_true(mark == s + 2048 || mark == s + 2049);
	assert_int_equal(sscanf(mark, "[... %llu bytes cut ...]", &cut), 1);
	tail = strchr(mark, '\n') + 1;
	/* the tail starts on a whole line and runs to the end */
	assert_memory_equal(tail, "line ", 5);
	assert_string_equal(tail, all.buf + all.len - strlen(tail));
	/* every byte is kept, named as cut, or the newline before the mark */
	assert_int_equal(2048 + cut + strlen(tail), all.len);
	free(s);
	strbuf_release(&all);
	free(path);
	fs_remove_tree(dir);
	free(dir);
}

/* A second use of the same path (a retry) starts the file afresh. */
static void test_rewritten(void **state)
{
	char *dir = dir_new();
	char *path = xstrfmt("%s/c.log", dir);
	struct unit_log l;
	char *s;

	(void)state;
	unit_log_init(&l, path, -1);
	for (int i = 0; i < 1000; i++)
		unit_log_write(&l, "0123456789abcdef", 16);
	unit_log_close(&l);
	s = slurp(path);
	assert_int_equal(strlen(s), 16000); /* no cap */
	free(s);
	unit_log_init(&l, path, 0);
	unit_log_write(&l, "again\n", 6);
	unit_log_close(&l);
	unit_log_write(&l, "late\n", 5); /* after the end: dropped */
	unit_log_close(&l);
	s = slurp(path);
	assert_string_equal(s, "again\n");
	free(s);
	free(path);
	fs_remove_tree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_output_no_file),
		cmocka_unit_test(test_under_cap_whole),
		cmocka_unit_test(test_cap_head_and_tail),
		cmocka_unit_test(test_rewritten),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
