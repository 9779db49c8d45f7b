/* Unit tests for store/cas.c: objects committed without waiting for the
 * disk are listed, fsynced by the next writer on the same boot, and
 * re-hashed (the damaged ones removed) after a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/cas.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

struct fixture {
	char dir[64];
	char *cas;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/pipe-cas-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->cas = xstrfmt("%s/cas", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fs_remove_tree(f->dir);
	free(f->cas);
	free(f);
	return 0;
}

/* Commit a file holding text; its object's name goes to hex. */
static void add(struct fixture *f, const char *text, char *hex)
{
	struct error err = ERROR_INIT;
	struct cas_batch b;
	unsigned long long size;
	char *src = xstrfmt("%s/src", f->dir);

	assert_int_equal(fs_write_atomic(src, text, strlen(text), &err), 0);
	cas_batch_init(&b, f->cas);
	assert_int_equal(cas_add(&b, src, hex, &size, &err), 0);
	assert_int_equal(size, strlen(text));
	assert_int_equal(cas_commit(&b, &err), 0);
	cas_batch_release(&b);
	free(src);
}

static char *unsynced(struct fixture *f)
{
	struct strbuf sb = STRBUF_INIT;
	char *path = xstrfmt("%s/unsynced", f->cas);

	if (strbuf_read_file(&sb, path, 0))
		strbuf_release(&sb);
	free(path);
	return sb.len ? strbuf_detach(&sb, NULL) : NULL;
}

static int exists(struct fixture *f, const char *hex)
{
	char *path = cas_path(f->cas, hex);
	int rc = access(path, F_OK) == 0;

	free(path);
	return rc;
}

/* Set object hex's mtime seconds back, as if written then. */
static void age(struct fixture *f, const char *hex, int seconds)
{
	char *path = cas_path(f->cas, hex);
	struct timespec t[2];

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= seconds;
	t[1] = t[0];
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
	free(path);
}

static void test_same_boot(void **state)
{
	struct fixture *f = *state;
	struct error err = ERROR_INIT;
	char hex[HASH_HEX_LEN + 1], *list;
	struct strbuf boot = STRBUF_INIT;

	add(f, "large enough in spirit\n", hex);
	list = unsynced(f);
	assert_non_null(list);
	assert_int_equal(strbuf_read_file(&boot,
					  "/proc/sys/kernel/random/"
					  "boot_id",
					  0),
			 0);
	strbuf_trim_trailing_newline(&boot);
	assert_non_null(strstr(list, boot.buf));
	assert_non_null(strstr(list, hex));
	free(list);
	/* just written: left to the kernel's writeback, still listed (a
	 * reboot now would re-hash it) */
	assert_int_equal(cas_settle(f->cas, &err), 0);
	list = unsynced(f);
	assert_non_null(list);
	assert_non_null(strstr(list, hex));
	free(list);
	/* written back long ago: fsynced, and off the list */
	age(f, hex, 60);
	assert_int_equal(cas_settle(f->cas, &err), 0);
	assert_null(unsynced(f)); /* settled */
	assert_true(exists(f, hex));
	assert_int_equal(cas_verify(f->cas, hex, 23, &err), 0);
	assert_int_equal(cas_settle(f->cas, &err), 0); /* nothing to do */
	strbuf_release(&boot);
}

/* Of two objects, the old one is settled and the young one stays listed:
 * the list is rewritten with it alone. */
static void test_same_boot_mixed(void **state)
{
	struct fixture *f = *state;
	struct error err = ERROR_INIT;
	char old[HASH_HEX_LEN + 1], young[HASH_HEX_LEN + 1], *list;

	add(f, "old enough to be on disk\n", old);
	add(f, "young: still being written back\n", young);
	age(f, old, 3600);
	assert_int_equal(cas_settle(f->cas, &err), 0);
	list = unsynced(f);
	assert_non_null(list);
	assert_null(strstr(list, old));
	assert_non_null(strstr(list, young));
	assert_int_equal(strchr(list, '\n') - list + 1, (long)strlen(list));
	free(list);
	assert_true(exists(f, old));
	assert_true(exists(f, young));
}

static void test_after_restart(void **state)
{
	struct fixture *f = *state;
	struct error err = ERROR_INIT;
	char good[HASH_HEX_LEN + 1], bad[HASH_HEX_LEN + 1];
	char *path, *list_path = xstrfmt("%s/unsynced", f->cas);
	struct strbuf list = STRBUF_INIT;

	add(f, "kept: reached the disk\n", good);
	add(f, "lost: still in memory\n", bad);
	/* what a power cut leaves: the name, zeros for the content */
	path = cas_path(f->cas, bad);
	chmod(path, 0644);
	assert_int_equal(fs_write_atomic(path,
					 "\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
					 "\0\0\0\0\0\0\0\0",
					 22, &err),
			 0);
	/* listed by another boot, and a torn last line */
	strbuf_addf(&list,
		    "0000-other-boot %s 23\n0000-other-boot %s 22\n"
		    "0000-other-boot 12",
		    good, bad);
	assert_int_equal(fs_write_atomic(list_path, list.buf, list.len, &err),
			 0);
	assert_int_equal(cas_settle(f->cas, &err), 0);
	assert_true(exists(f, good));
	assert_false(exists(f, bad)); /* removed: its stage will run again */
	assert_null(unsynced(f));
	free(path);
	free(list_path);
	strbuf_release(&list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_same_boot, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_same_boot_mixed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_after_restart, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
