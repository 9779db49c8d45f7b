/* Unit tests for util/hash: hex form, streaming, and hash_file against
 * `xxhsum -H2`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/md5.h"
#include "util/strbuf.h"

static char tmpdir[] = "/tmp/pipe-test-hash.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return fs_remove_tree(tmpdir);
}

static char *write_file(const char *name, const void *data, size_t len)
{
	struct strbuf path = STRBUF_INIT;
	FILE *fp;

	strbuf_addf(&path, "%s/%s", tmpdir, name);
	fp = fopen(path.buf, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	return strbuf_detach(&path, NULL);
}

/* What `xxhsum -H2 path` prints, or "" when xxhsum is not installed. */
static void xxhsum(const char *path, char *out)
{
	struct strbuf cmd = STRBUF_INIT;
	FILE *p;

	out[0] = '\0';
	strbuf_addf(&cmd, "xxhsum -H2 '%s' 2>/dev/null", path);
	p = popen(cmd.buf, "r");
	assert_non_null(p);
	if (!fgets(out, HASH_HEX_LEN + 1, p))
		out[0] = '\0';
	pclose(p);
	strbuf_release(&cmd);
}

static void test_known_values(void **state)
{
	struct hash128 h;
	char hex[HASH_HEX_LEN + 1];

	(void)state;
	/* printed by xxhsum 0.8.1 -H2 for an empty file and "hello" */
	hash_buf("", 0, &h);
	hash_to_hex(&h, hex);
	assert_string_equal(hex, "99aa06d3014798d86001c324468d497f");
	hash_buf("hello", 5, &h);
	hash_to_hex(&h, hex);
	assert_string_equal(hex, "b5e9c1ad071b3e7fc779cfaa5e523818");
}

static void test_hex_round_trip(void **state)
{
	struct hash128 h = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
	struct hash128 back;
	char hex[HASH_HEX_LEN + 1];

	(void)state;
	hash_to_hex(&h, hex);
	assert_string_equal(hex, "0123456789abcdeffedcba9876543210");
	assert_int_equal(hash_from_hex(hex, &back), 0);
	assert_true(hash_equal(&h, &back));
	assert_int_equal(
		hash_from_hex("0123456789ABCDEFFEDCBA9876543210", &back), 0);
	assert_true(hash_equal(&h, &back));
	assert_int_equal(hash_from_hex("0123", &back), -1);
	assert_int_equal(
		hash_from_hex("0123456789abcdeffedcba98765432100", &back), -1);
	assert_int_equal(
		hash_from_hex("0123456789abcdeffedcba987654321g", &back), -1);
	assert_int_equal(hash_from_hex("", &back), -1);
	memset(&back, 0, sizeof(back));
	assert_true(hash_is_zero(&back));
	assert_false(hash_is_zero(&h));
	assert_false(hash_equal(&h, &back));
}

static void test_hasher(void **state)
{
	struct hasher *a = hasher_new(), *b = hasher_new();
	struct hash128 ha, hb, whole;
	const char *text = "the quick brown fox jumps over the lazy dog";

	(void)state;
	/* streamed in pieces == in one go */
	hasher_add(a, text, 10);
	hasher_add(a, text + 10, strlen(text) - 10);
	hasher_final(a, &ha);
	hash_buf(text, strlen(text), &whole);
	assert_true(hash_equal(&ha, &whole));
	hasher_free(a);

	/* lengths keep ("ab","c") apart from ("a","bc") */
	a = hasher_new();
	hasher_add_str(a, "ab");
	hasher_add_str(a, "c");
	hasher_final(a, &ha);
	hasher_add_str(b, "a");
	hasher_add_str(b, "bc");
	hasher_final(b, &hb);
	assert_false(hash_equal(&ha, &hb));
	hasher_free(a);
	hasher_free(b);

	/* hasher_add_hash takes the canonical bytes */
	a = hasher_new();
	hasher_add_hash(a, &whole);
	hasher_final(a, &ha);
	{
		unsigned char bytes[16];

		for (int i = 0; i < 8; i++) {
			bytes[i] = (unsigned char)(whole.high >> (56 - 8 * i));
			bytes[8 + i] =
				(unsigned char)(whole.low >> (56 - 8 * i));
		}
		hash_buf(bytes, sizeof(bytes), &hb);
	}
	assert_true(hash_equal(&ha, &hb));
	hasher_free(a);
	hasher_free(NULL);
}

/* Sizes around the stack buffer (64 KiB) and the read block (256 KiB). */
static const size_t sizes[] = {
	0,	 1,
	5,	 240,
	65535,	 65536,
	65537,	 256 * 1024 + 3,
	1 << 20, (1 << 20) + 1,
	3 << 20, (5 << 20) - 7,
};

static void test_file_matches_xxhsum(void **state)
{
	unsigned char *data = malloc(5 << 20);
	int checked = 0;

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < (size_t)5 << 20; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char name[32], hex[HASH_HEX_LEN + 1], want[HASH_HEX_LEN + 1];
		struct error err = ERROR_INIT;
		unsigned long long bytes = 0;
		struct hash128 h, mem;
		char *path;

		snprintf(name, sizeof(name), "f%zu", sizes[i]);
		path = write_file(name, data, sizes[i]);
		assert_int_equal(hash_file(path, &h, &bytes, &err), 0);
		assert_int_equal(bytes, sizes[i]);
		hash_buf(data, sizes[i], &mem);
		assert_true(hash_equal(&h, &mem));
		hash_to_hex(&h, hex);
		xxhsum(path, want);
		if (*want) {
			assert_string_equal(hex, want);
			checked++;
		}
		free(path);
	}
	free(data);
	if (!checked)
		skip(); /* xxhsum is not installed */
}

static void test_missing_file(void **state)
{
	struct error err = ERROR_INIT;
	struct hash128 h;

	(void)state;
	assert_int_equal(hash_file("/nonexistent/pipe-x", &h, NULL, &err), -1);
	assert_string_equal(err.msg.buf, "cannot open '/nonexistent/pipe-x': "
					 "No such file or directory");
	assert_int_equal(err.exit_code, EXIT_ENV);
	error_release(&err);
}

/* RFC 1321's test suite, and input across block boundaries in pieces. */
static void test_md5(void **state)
{
	static const char *const v[][2] = {
		{"", "d41d8cd98f00b204e9800998ecf8427e"},
		{"a", "0cc175b9c0f1b6a831c399e269772661"},
		{"abc", "900150983cd24fb0d6963f7d28e17f72"},
		{"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
		{"abcdefghijklmnopqrstuvwxyz",
		 "c3fcd3d76192e4007dfb496cca67e13b"},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		 "d174ab98d277d9f5a5611c2c9f419d9f"},
		{"1234567890123456789012345678901234567890123456789012345678901234"
		 "5678901234567890",
		 "57edf4a22be3c955ac49da2e2107b67a"},
	};
	unsigned char out[MD5_LEN];
	char hex[2 * MD5_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		for (size_t step = 1; step <= 64; step *= 4) {
			struct md5 c;
			size_t len = strlen(v[i][0]);

			md5_init(&c);
			for (size_t off = 0; off < len; off += step)
				md5_add(&c, v[i][0] + off,
					len - off < step ? len - off : step);
			md5_final(&c, out);
			for (int k = 0; k < MD5_LEN; k++)
				snprintf(hex + 2 * k, 3, "%02x", out[k]);
			assert_string_equal(hex, v[i][1]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_hasher),
		cmocka_unit_test(test_file_matches_xxhsum),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_md5),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
