/* Unit tests for remote/refkey.c: the names of ref objects on S3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "remote/remote.h"

#define WS "0123456789abcdef"
#define OID "00112233445566778899aabbccddeeff00112233"

static void test_parse_ok(void **state)
{
	char ws[REMOTE_WS_LEN + 1], hex[SGIT_HEXSZ + 1];
	struct sgit_oid oid;
	const char *suffix;

	(void)state;
	assert_int_equal(remote_ref_key_parse("refs/" WS "/" OID "/stages/a/b",
					      ws, &oid, &suffix),
			 0);
	assert_string_equal(ws, WS);
	sgit_oid_hex(&oid, hex);
	assert_string_equal(hex, OID);
	assert_string_equal(suffix, "stages/a/b");
	assert_int_equal(remote_ref_key_parse("refs/" WS "/" OID "/runs", ws,
					      &oid, &suffix),
			 0);
	assert_string_equal(suffix, "runs");
	assert_int_equal(remote_ref_key_parse("refs/" WS "/" OID
					      "/datums/st%2Fage",
					      ws, &oid, &suffix),
			 0);
}

static void test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"refs/",
		"refs/" WS "/" OID,
		"refs/" WS "/" OID "/",
		"refs/" WS "/" OID "/cas",
		"refs/" WS "/" OID "/stages/",
		"refs/" WS "/" OID "/stages/a//b",
		"refs/" WS "/" OID "/stages/../x",
		"refs/" WS "/" OID "/stages/.hidden",
		"refs/" WS "/" OID "/stages/a.lock",
		"refs/" WS "/" OID "/stages/a b",
		"refs/" WS "/" OID "/stages/a@{1}",
		"refs/" WS "/" OID "/stages/a\\b",
		"refs/" WS "/" OID "/runsx",
		"refs/0123456789ABCDEF/" OID "/runs",
		"refs/0123456789abcde/" OID "/runs",
		"refs/" WS "/00112233445566778899aabbccddeeff0011223/runs",
		"refs/" WS "/00112233445566778899aabbccddeeff0011223g/runs",
		"rafs/" WS "/" OID "/runs",
	};
	char ws[REMOTE_WS_LEN + 1];
	struct sgit_oid oid;
	const char *suffix;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (remote_ref_key_parse(bad[i], ws, &oid, &suffix) != -1)
			fail_msg("parsed '%s'", bad[i]);
}

static void test_suffix(void **state)
{
	(void)state;
	assert_true(remote_ref_suffix_ok("runs"));
	assert_true(remote_ref_suffix_ok("stages/x"));
	assert_true(remote_ref_suffix_ok("datums/x.y"));
	assert_false(remote_ref_suffix_ok("displaced"));
	assert_false(remote_ref_suffix_ok("remotes/" WS "/runs"));
	assert_false(remote_ref_suffix_ok("stages/x/"));
	assert_true(remote_is_s3("s3://b/p"));
	assert_false(remote_is_s3("origin"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_suffix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
