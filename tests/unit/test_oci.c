/* Unit tests for executors/oci (image references, WWW-Authenticate, Docker
 * credentials, resolving without a network) and util/sha256; and, as
 * `test_oci resolve IMAGE...`, the driver tests/e2e/t42-registry.sh runs
 * against real registries: one pinned reference a line on stdout, or the
 * error on stderr and its exit code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executors/oci.h"
#include "util/error.h"
#include "util/base64.h"
#include "util/sha256.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define SECRET "s3cr3t-Pa55"
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Every error message the tests saw, to check that no secret is in one. */
static struct strbuf messages = STRBUF_INIT;

static void keep(struct error *err)
{
	strbuf_addf(&messages, "%s\n", err->msg.buf);
}

/* ------------------------------------------------------------------ */
/* sha256, base64 */

static void sha_of(const char *data, size_t len, const char *want)
{
	struct strbuf hex = STRBUF_INIT;

	sha256_hex(data, len, &hex);
	assert_string_equal(hex.buf, want);
	strbuf_release(&hex);
}

static void test_sha256(void **state)
{
	static const struct {
		size_t n; /* of 'a' */
		const char *want;
	} runs[] = {
		{55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e91"
		     "0f734318"},
		{56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef797068"
		     "6ec6738a"},
		{63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da45"
		     "7ddc2f34"},
		{64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df"
		     "154668eb"},
		{1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d"
			  "39ccc7112cd0"},
	};
	const char *abc56 =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	unsigned char d1[SHA256_LEN], d2[SHA256_LEN];
	struct sha256 c;
	char *a;

	(void)state;
	sha_of("", 0,
	       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
	       "1b7852b855");
	sha_of("abc", 3,
	       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410"
	       "ff61f20015ad");
	sha_of(abc56, 56,
	       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6e"
	       "cedd419db06c1");
	for (size_t i = 0; i < ARRAY_SIZE(runs); i++) {
		a = xmalloc(runs[i].n);
		memset(a, 'a', runs[i].n);
		sha_of(a, runs[i].n, runs[i].want);
		free(a);
	}
	/* pieces of any size give the same digest */
	sha256_init(&c);
	for (const char *p = abc56; *p; p += 7)
		sha256_add(&c, p, 7);
	sha256_final(&c, d1);
	sha256_init(&c);
	sha256_add(&c, abc56, 56);
	sha256_final(&c, d2);
	assert_memory_equal(d1, d2, SHA256_LEN);
}

static void test_base64(void **state)
{
	static const char *const v[][2] = {
		{"", ""},
		{"f", "Zg=="},
		{"fo", "Zm8="},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg=="},
		{"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"},
	};
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		strbuf_reset(&sb);
		base64_encode(&sb, v[i][0], strlen(v[i][0]));
		assert_string_equal(sb.buf, v[i][1]);
		strbuf_reset(&sb);
		assert_int_equal(base64_decode(&sb, v[i][1], strlen(v[i][1])),
				 0);
		assert_string_equal(sb.buf, v[i][0]);
	}
	strbuf_reset(&sb);
	assert_int_equal(base64_decode(&sb, "Zm9vYg", 6), 0); /* no '=' */
	assert_string_equal(sb.buf, "foob");
	assert_int_equal(base64_decode(&sb, "Zm9v!", 5), -1);
	assert_int_equal(base64_decode(&sb, "Z", 1), -1);
	strbuf_release(&sb);
}

/* ------------------------------------------------------------------ */
/* References */

static void ref_is(const char *image, const char *host, const char *registry,
		   const char *repo, const char *tag, const char *digest)
{
	struct error err = ERROR_INIT;
	struct oci_ref r;

	if (oci_ref_parse(&r, image, &err))
		fail_msg("'%s': %s", image, err.msg.buf);
	assert_string_equal(r.host, host);
	assert_string_equal(r.registry, registry);
	assert_string_equal(r.repo, repo);
	if (tag)
		assert_string_equal(r.tag, tag);
	else
		assert_null(r.tag);
	if (digest)
		assert_string_equal(r.digest, digest);
	else
		assert_null(r.digest);
	oci_ref_release(&r);
}

static void test_ref_parse(void **state)
{
	(void)state;
	ref_is("busybox", "docker.io", "registry-1.docker.io",
	       "library/busybox", "latest", NULL);
	ref_is("busybox:1.36", "docker.io", "registry-1.docker.io",
	       "library/busybox", "1.36", NULL);
	ref_is("user/app", "docker.io", "registry-1.docker.io", "user/app",
	       "latest", NULL);
	ref_is("docker.io/busybox", "docker.io", "registry-1.docker.io",
	       "library/busybox", "latest", NULL);
	ref_is("index.docker.io/u/a:t", "docker.io", "registry-1.docker.io",
	       "u/a", "t", NULL);
	ref_is("127.0.0.1:5000/pipe-test/busybox:1", "127.0.0.1:5000",
	       "127.0.0.1:5000", "pipe-test/busybox", "1", NULL);
	ref_is("127.0.0.1:5000/x", "127.0.0.1:5000", "127.0.0.1:5000", "x",
	       "latest", NULL);
	ref_is("localhost/x", "localhost", "localhost", "x", "latest", NULL);
	ref_is("localhost:5000/a/b/c:v1.0-rc_2", "localhost:5000",
	       "localhost:5000", "a/b/c", "v1.0-rc_2", NULL);
	ref_is("ghcr.io/o/r:t", "ghcr.io", "ghcr.io", "o/r", "t", NULL);
	ref_is("[::1]:5000/x:y", "[::1]:5000", "[::1]:5000", "x", "y", NULL);
	ref_is("a__b/c-d--e.f_g", "docker.io", "registry-1.docker.io",
	       "a__b/c-d--e.f_g", "latest", NULL);
	ref_is("busybox@sha256:" HEX64, "docker.io", "registry-1.docker.io",
	       "library/busybox", NULL, "sha256:" HEX64);
	ref_is("h.io/x:tag@sha256:" HEX64, "h.io", "h.io", "x", "tag",
	       "sha256:" HEX64);
}

static void test_ref_bad(void **state)
{
	static const char *const bad[][2] = {
		{"", "empty"},
		{"Busybox", "must be lowercase"},
		{"busybox:", "invalid tag"},
		{"busybox:-x", "invalid tag"},
		{"busybox:a/b", "invalid registry host"},
		{"busybox@sha256:abc", "a digest is sha256:"},
		{"busybox@md5:" HEX64, "a digest is sha256:"},
		{"busybox@sha256:" HEX64 "0", "a digest is sha256:"},
		{"a//b", "invalid repository name"},
		{"a/b/", "invalid repository name"},
		{"-a", "invalid repository name"},
		{"a..b", "invalid repository name"},
		{"a___b", "invalid repository name"},
		{"h.io/", "no repository name"},
		{"h:xx/a", "invalid registry host"},
		{"h:123456/a", "invalid registry host"},
		{"[zz]:5/a", "invalid registry host"},
		{"x y", "invalid repository name"},
	};
	struct error err = ERROR_INIT;
	struct oci_ref r;
	char *want;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		error_release(&err);
		if (!oci_ref_parse(&r, bad[i][0], &err))
			fail_msg("'%s' parsed", bad[i][0]);
		want = xstrfmt("invalid image reference '%s': ", bad[i][0]);
		assert_non_null(strstr(err.msg.buf, want));
		if (!strstr(err.msg.buf, bad[i][1]))
			fail_msg("'%s': %s", bad[i][0], err.msg.buf);
		assert_int_equal(err.exit_code, EXIT_USAGE);
		free(want);
	}
	error_release(&err);
}

static void test_insecure(void **state)
{
	(void)state;
	unsetenv("PIPE_INSECURE_REGISTRIES");
	assert_true(oci_insecure("localhost"));
	assert_true(oci_insecure("localhost:5000"));
	assert_true(oci_insecure("127.0.0.1:5000"));
	assert_true(oci_insecure("127.1.2.3"));
	assert_true(oci_insecure("[::1]:5000"));
	assert_false(oci_insecure("127.example.com"));
	assert_false(oci_insecure("registry-1.docker.io"));
	assert_false(oci_insecure("reg.lan:5000"));
	setenv("PIPE_INSECURE_REGISTRIES", "reg.lan:5000, other", 1);
	assert_true(oci_insecure("reg.lan:5000"));
	assert_false(oci_insecure("reg.lan:5001"));
	assert_true(oci_insecure("other:443"));
	assert_true(oci_insecure("other"));
	assert_false(oci_insecure("other2"));
	unsetenv("PIPE_INSECURE_REGISTRIES");
}

/* ------------------------------------------------------------------ */
/* WWW-Authenticate */

static void test_challenge(void **state)
{
	struct oci_challenge c;

	(void)state;
	assert_int_equal(
		oci_challenge_parse(
			&c, "Bearer realm=\"https://auth.docker.io/token\","
			    "service=\"registry.docker.io\","
			    "scope=\"repository:library/busybox:pull,push\""),
		0);
	assert_string_equal(c.scheme, "bearer");
	assert_string_equal(c.realm, "https://auth.docker.io/token");
	assert_string_equal(c.service, "registry.docker.io");
	assert_string_equal(c.scope, "repository:library/busybox:pull,push");
	oci_challenge_release(&c);

	assert_int_equal(oci_challenge_parse(&c, "basic realm=\"Registry "
						 "\\\"Realm\\\"\""),
			 0);
	assert_string_equal(c.scheme, "basic");
	assert_string_equal(c.realm, "Registry \"Realm\"");
	assert_null(c.service);
	oci_challenge_release(&c);

	assert_int_equal(oci_challenge_parse(&c, "Basic"), 0);
	oci_challenge_release(&c);
	assert_int_equal(oci_challenge_parse(&c, "  BEARER  realm=http://t/x ,"
						 " Service=s"),
			 0);
	assert_string_equal(c.realm, "http://t/x");
	assert_string_equal(c.service, "s");
	oci_challenge_release(&c);

	assert_int_equal(oci_challenge_parse(&c, "Bearer service=\"s\""), -1);
	assert_int_equal(oci_challenge_parse(&c, "Negotiate abc"), -1);
	assert_int_equal(oci_challenge_parse(&c, ""), -1);
	assert_int_equal(oci_challenge_parse(&c, "Bearer realm=\"unclosed"), 0);
	assert_string_equal(c.realm, "unclosed");
	oci_challenge_release(&c);
}

/* ------------------------------------------------------------------ */
/* Docker's config.json and credential helpers */

static int lookup(const char *json, const char *host, struct oci_cred *c,
		  char **helper)
{
	struct error err = ERROR_INIT;
	int r = oci_config_lookup(json, strlen(json), host, c, helper, &err);

	if (r < 0) {
		keep(&err);
		assert_int_equal(err.exit_code, EXIT_ENV);
	}
	error_release(&err);
	return r;
}

static void test_config(void **state)
{
	/* "bob:s3cr3t-Pa55" and "hub:s3cr3t-Pa55" */
	const char *cfg =
		"{\"auths\":{\"127.0.0.1:5000\":{\"auth\":"
		"\"Ym9iOnMzY3IzdC1QYTU1\"},"
		"\"https://index.docker.io/v1/\":{\"auth\":"
		"\"aHViOnMzY3IzdC1QYTU1\"},"
		"\"https://old.example\":{\"auth\":\"Ym9iOnMzY3IzdC1QYTU1\"},"
		"\"id.example\":{\"identitytoken\":\"" SECRET "\"},"
		"\"empty.example\":{}},"
		"\"credHelpers\":{\"gcr.io\":\"gcloud\"}}";
	struct oci_cred c;
	char *helper;

	(void)state;
	assert_int_equal(lookup(cfg, "127.0.0.1:5000", &c, &helper), 1);
	assert_string_equal(c.user, "bob");
	assert_string_equal(c.secret, SECRET);
	assert_false(c.identity_token);
	oci_cred_release(&c);
	assert_int_equal(lookup(cfg, "docker.io", &c, &helper), 1);
	assert_string_equal(c.user, "hub");
	oci_cred_release(&c);
	assert_int_equal(lookup(cfg, "old.example", &c, &helper), 1);
	assert_string_equal(c.user, "bob");
	oci_cred_release(&c);
	assert_int_equal(lookup(cfg, "id.example", &c, &helper), 1);
	assert_true(c.identity_token);
	assert_string_equal(c.secret, SECRET);
	oci_cred_release(&c);
	assert_int_equal(lookup(cfg, "empty.example", &c, &helper), 0);
	assert_int_equal(lookup(cfg, "ghcr.io", &c, &helper), 0);
	assert_int_equal(lookup(cfg, "gcr.io", &c, &helper), 2);
	assert_string_equal(helper, "gcloud");
	free(helper);
	assert_int_equal(lookup("{\"credsStore\":\"desktop\",\"auths\":"
				"{\"ghcr.io\":{}}}",
				"ghcr.io", &c, &helper),
			 2);
	assert_string_equal(helper, "desktop");
	free(helper);

	/* bad ones: the messages must not show the secret */
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"auth\":\"" SECRET "\"}}}",
				"h", &c, &helper),
			 -1);
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"auth\":"
				"\"czNjcjN0LVBhNTU=\"}}}", /* no ':' */
				"h", &c, &helper),
			 -1);
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"auth\":" SECRET "}}}",
				"h", &c, &helper),
			 -1);
	assert_int_equal(lookup("{\"auths\":{\"h\":{\"auth\":\"" SECRET, "h",
				&c, &helper),
			 -1);
}

static char tmpdir[] = "/tmp/pipe-oci.XXXXXX";

static void write_file(const char *name, const char *text, int mode)
{
	char *path = xstrfmt("%s/%s", tmpdir, name);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	chmod(path, (mode_t)mode);
	free(path);
}

static int creds(const char *host, struct oci_cred *c)
{
	struct error err = ERROR_INIT;
	int r = oci_creds(host, c, &err);

	if (r < 0)
		keep(&err);
	error_release(&err);
	return r;
}

/* A fake docker-credential-fake on PATH: it answers by the server it is
 * asked about, as the real helpers do. */
static void test_helper(void **state)
{
	char *path = xstrfmt("%s:%s", tmpdir, getenv("PATH"));
	struct oci_cred c;

	(void)state;
	write_file(
		"docker-credential-fake",
		"#!/bin/sh\n"
		"[ \"$1\" = get ] || exit 2\n"
		"read -r server\n"
		"case $server in\n"
		"https://index.docker.io/v1/) echo '{\"ServerURL\":\"x\","
		"\"Username\":\"<token>\",\"Secret\":\"" SECRET "\"}' ;;\n"
		"reg.example) echo '{\"Username\":\"ann\",\"Secret\":\"" SECRET
		"\"}' ;;\n"
		"bad.example) echo 'not json " SECRET "' ;;\n"
		"fail.example) echo 'oops " SECRET "' >&2; exit 3 ;;\n"
		"*) echo 'credentials not found in native keychain'; exit 1 "
		";;\n"
		"esac\n",
		0755);
	write_file("config.json",
		   "{\"credsStore\":\"fake\",\"credHelpers\":"
		   "{\"nohelper.example\":\"missing\"}}",
		   0644);
	setenv("PATH", path, 1);
	setenv("DOCKER_CONFIG", tmpdir, 1);
	assert_int_equal(creds("reg.example", &c), 1);
	assert_string_equal(c.user, "ann");
	assert_string_equal(c.secret, SECRET);
	assert_false(c.identity_token);
	oci_cred_release(&c);
	assert_int_equal(creds("docker.io", &c), 1);
	assert_true(c.identity_token);
	oci_cred_release(&c);
	assert_int_equal(creds("other.example", &c), 0);
	assert_int_equal(creds("bad.example", &c), -1);
	assert_int_equal(creds("fail.example", &c), -1);
	assert_int_equal(creds("nohelper.example", &c), -1);
	assert_non_null(strstr(messages.buf, "docker-credential-missing"));
	/* no config file: no credentials */
	setenv("DOCKER_CONFIG", "/nonexistent", 1);
	assert_int_equal(creds("reg.example", &c), 0);
	unsetenv("DOCKER_CONFIG");
	free(path);
}

/* ------------------------------------------------------------------ */
/* Resolving */

static void test_resolve_offline(void **state)
{
	const char *pinned[] = {
		"127.0.0.1:1/x@sha256:" HEX64,
		"127.0.0.1:1/x:t@sha256:" HEX64,
		"busybox@sha256:" HEX64,
	};
	struct oci *o = oci_new();
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;

	(void)state;
	/* pinned: as is, and no request (port 1 would refuse it) */
	for (size_t i = 0; i < ARRAY_SIZE(pinned); i++) {
		assert_int_equal(oci_resolve(o, pinned[i], &out, &err), 0);
		assert_string_equal(out.buf, pinned[i]);
	}
	assert_int_equal(oci_resolve(o, "Bad", &out, &err), -1);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	assert_string_equal(out.buf, "");
	error_release(&err);
	/* nothing listens on port 1 */
	assert_int_equal(oci_resolve(o, "127.0.0.1:1/x:y", &out, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "image '127.0.0.1:1/x:y': cannot "
					    "reach the registry at "
					    "http://127.0.0.1:1"));
	keep(&err);
	error_release(&err);
	strbuf_release(&out);
	oci_free(o);
	oci_free(NULL);
}

static void test_no_secret_in_messages(void **state)
{
	(void)state;
	assert_true(messages.len > 0);
	if (strstr(messages.buf, SECRET) || strstr(messages.buf, "czNjcjN0"))
		fail_msg("a secret in a message:\n%s", messages.buf);
}

/* The driver: resolve each argument with one struct oci (so the second
 * time an image comes, it is the run's cache that answers). */
static int resolve_main(int argc, char **argv)
{
	struct oci *o = oci_new();
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	int code = 0;

	for (int i = 0; i < argc && !code; i++) {
		if (oci_resolve(o, argv[i], &out, &err)) {
			fprintf(stderr, "error: %s\n", err.msg.buf);
			code = err.exit_code ? err.exit_code : 1;
		} else {
			printf("%s\n", out.buf);
		}
	}
	error_release(&err);
	strbuf_release(&out);
	oci_free(o);
	return code;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_ref_parse),
		cmocka_unit_test(test_ref_bad),
		cmocka_unit_test(test_insecure),
		cmocka_unit_test(test_challenge),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_helper),
		cmocka_unit_test(test_resolve_offline),
		cmocka_unit_test(test_no_secret_in_messages),
	};
	char rm[64];
	int r;

	/* as pipe's main does: a credential helper that exits before
	 * reading the host it is sent (t42's, some of test_helper's) is an
	 * EPIPE, not the end of this process (t42 failed so, rc 141, when
	 * the helper won the race under load) */
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "resolve"))
		return resolve_main(argc - 2, argv + 2);
	if (!mkdtemp(tmpdir))
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(rm, sizeof(rm), "rm -rf %s", tmpdir);
	if (system(rm))
		r = r ? r : 1;
	strbuf_release(&messages);
	return r;
}
