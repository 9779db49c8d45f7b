/* Unit tests for remote/s3*: the pure parts (url, SigV4's encodings, the
 * XML picks, the INI files, credentials and endpoint) and that no secret
 * reaches a message; `test_s3 drive ...` is the driver of the end-to-end
 * test against a real S3 server (tests/e2e/t48-s3.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "remote/s3.h"
#include "remote/s3int.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

static char tmpdir[] = "/tmp/pipe-s3-unit.XXXXXX";

static const char *const aws_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_REGION",	     "AWS_DEFAULT_REGION",
	"AWS_ENDPOINT_URL",  "AWS_ENDPOINT_URL_S3",
	"AWS_CONFIG_FILE",   "AWS_SHARED_CREDENTIALS_FILE",
};

static void clear_env(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(aws_vars); i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", tmpdir, 1);
}

static void write_file(const char *name, const char *text)
{
	char *path = xstrfmt("%s/%s", tmpdir, name);
	struct error err = ERROR_INIT;

	assert_int_equal(fs_mkdir_parent(path, 0755), 0);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), &err), 0);
	free(path);
}

/* ------------------------------------------------------------------ */

static void url_ok(const char *url, const char *bucket, const char *prefix)
{
	char *b, *p;
	struct error err = ERROR_INIT;

	assert_int_equal(s3_parse_url(url, &b, &p, &err), 0);
	assert_string_equal(b, bucket);
	assert_string_equal(p, prefix);
	free(b);
	free(p);
}

static void test_url(void **state)
{
	static const char *const bad[] = {"http://b/p", "s3://",  "s3:///p",
					  "s3://a b/p", "S3://b", "b/p"};

	(void)state;
	url_ok("s3://bucket", "bucket", "");
	url_ok("s3://bucket/", "bucket", "");
	url_ok("s3://bucket/team/proj", "bucket", "team/proj/");
	url_ok("s3://my.bucket-1/a/b/", "my.bucket-1", "a/b/");
	url_ok("s3://b//x", "b", "x/");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct error err = ERROR_INIT;
		char *b, *p;

		assert_int_equal(s3_parse_url(bad[i], &b, &p, &err), -1);
		assert_int_equal(err.exit_code, EXIT_USAGE);
		assert_non_null(strstr(err.msg.buf, "bad s3 url"));
		assert_null(b);
		error_release(&err);
	}
}

static void enc(const char *in, int keep_slash, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	s3_encode(&sb, in, keep_slash);
	assert_string_equal(sb.buf, want);
	strbuf_release(&sb);
}

static void test_encode_path(void **state)
{
	(void)state;
	enc("a+b", 1, "a%2Bb");
	enc("café", 1, "caf%C3%A9");
	enc("dir with spaces/file name.txt", 1,
	    "dir%20with%20spaces/file%20name.txt");
	enc("a/b/c", 1, "a/b/c");
	enc("a/b", 0, "a%2Fb");
	enc("-_.~AZaz09", 1, "-_.~AZaz09");
	enc("x=y&z%", 1, "x%3Dy%26z%25");
	enc("tab\there", 1, "tab%09here");
}

static void query(const char *const *pairs, size_t n, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	s3_canonical_query(&sb, pairs, n);
	assert_string_equal(sb.buf, want);
	strbuf_release(&sb);
}

static void test_query(void **state)
{
	const char *list[] = {"prefix",	  "dir/", "list-type", "2",
			      "max-keys", "1",	  "delimiter", "/"};
	const char *token[] = {"list-type", "2", "continuation-token",
			       "1ab+/c=="};
	const char *uploads[] = {"uploads", NULL};
	const char *part[] = {"uploadId", "x y", "partNumber", "12"};
	const char *utf[] = {"prefix", "café/a+b c"};
	const char *order[] = {"a-b", "1", "a", "2", "b", "y", "b", "x"};

	(void)state;
	query(list, 4, "delimiter=%2F&list-type=2&max-keys=1&prefix=dir%2F");
	query(token, 2, "continuation-token=1ab%2B%2Fc%3D%3D&list-type=2");
	query(uploads, 1, "uploads=");
	query(part, 2, "partNumber=12&uploadId=x%20y");
	query(utf, 1, "prefix=caf%C3%A9%2Fa%2Bb%20c");
	query(order, 4, "a=2&a-b=1&b=x&b=y");
	query(NULL, 0, "");
}

static void pick(const char *xml, const char *name, int found, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(s3_xml_pick(xml, strlen(xml), name, &sb), found);
	assert_string_equal(sb.buf, want);
	strbuf_release(&sb);
}

static void test_xml_pick(void **state)
{
	const char *e =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
		"<Code>SignatureDoesNotMatch</Code><Message>The request "
		"signature we calculated does not match &amp; &lt;so&gt;"
		" &quot;no&quot; &apos;x&apos; &#233;&#x41;</Message>"
		"<Key>k</Key><KeyCount>3</KeyCount><Empty/></Error>";

	(void)state;
	pick(e, "Code", 1, "SignatureDoesNotMatch");
	pick(e, "Message", 1,
	     "The request signature we calculated does not match & <so> "
	     "\"no\" 'x' \xc3\xa9"
	     "A");
	pick(e, "Key", 1, "k");
	pick(e, "KeyCount", 1, "3");
	pick(e, "Empty", 1, "");
	pick(e, "Missing", 0, "");
	pick("<Code>unclosed", "Code", 0, "");
	pick("<Code>a &bogus; &#0; &#xD800; &#99999999; &</Code>", "Code", 1,
	     "a &bogus; &#0; &#xD800; &#99999999; &");
	pick("<Code attr=\"1\">x</Code>", "Code", 1, "x");
	pick("", "Code", 0, "");
}

static void test_parse_list(void **state)
{
	const char *page =
		"<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3."
		"amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/"
		"</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
		"<IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;b</Key>"
		"<LastModified>2026-12-04T20:00:00Z</LastModified><ETag>&quot;"
		"x&quot;</ETag><Size>5</Size></Contents><Contents><Key>p/caf"
		"\xc3\xa9</Key><Size>0</Size></Contents><NextContinuationToken>"
		"t+/=</NextContinuationToken></ListBucketResult>";
	const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated>"
			   "</ListBucketResult>";
	const char *bad[] = {
		"<Error><Code>x</Code></Error>",
		"<ListBucketResult><IsTruncated>true</IsTruncated>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Size>1</Size></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size>"
		"</Contents></ListBucketResult>",
	};
	struct s3_page p;

	(void)state;
	s3_page_init(&p);
	assert_int_equal(s3_parse_list(page, strlen(page), &p), 0);
	assert_int_equal(p.keys.nr, 2);
	assert_string_equal(p.keys.v[0], "p/a&b");
	assert_string_equal(p.keys.v[1], "p/caf\xc3\xa9");
	assert_string_equal(p.sizes.v[0], "5");
	assert_int_equal(p.truncated, 1);
	assert_string_equal(p.next_token.buf, "t+/=");
	s3_page_release(&p);
	s3_page_init(&p);
	assert_int_equal(s3_parse_list(last, strlen(last), &p), 0);
	assert_int_equal(p.keys.nr, 0);
	assert_int_equal(p.truncated, 0);
	s3_page_release(&p);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		s3_page_init(&p);
		assert_int_equal(s3_parse_list(bad[i], strlen(bad[i]), &p), -1);
		s3_page_release(&p);
	}
}

static void ini(const char *text, const char *sect, const char *key,
		const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(s3_ini_get(text, strlen(text), sect, key, &sb),
			 want != NULL);
	if (want)
		assert_string_equal(sb.buf, want);
	strbuf_release(&sb);
}

static void test_ini(void **state)
{
	const char *t =
		"# comment\r\n[default]\r\naws_access_key_id = AKIDEF\r\n"
		"aws_secret_access_key=s3cr3t/+x=\n; other comment\n"
		"[ prod ]\n  region = nested-not-top\nregion = eu-west-1"
		"  \nAWS_Session_Token = tok==\ns3 =\n  addressing_style"
		" = path\n[profile dev]\nregion=ap-south-1\n[broken\n"
		"region = x";

	(void)state;
	ini(t, "default", "aws_access_key_id", "AKIDEF");
	ini(t, "default", "aws_secret_access_key", "s3cr3t/+x=");
	ini(t, "default", "region", NULL);
	ini(t, "prod", "region", "eu-west-1");
	ini(t, "prod", "aws_session_token", "tok==");
	ini(t, "prod", "addressing_style", NULL);
	ini(t, "profile dev", "region", "ap-south-1");
	ini(t, "dev", "region", NULL);
	ini(t, "broken", "region", NULL);
	ini("", "default", "x", NULL);
	ini("[default]\nnovalue\nk=", "default", "k", "");
}

static void test_config_env(void **state)
{
	struct s3_config c;
	struct error err = ERROR_INIT;
	struct s3_opts o = {.endpoint = "http://127.0.0.1:7070/"};

	(void)state;
	clear_env();
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SECRETKEY", 1);
	setenv("AWS_SESSION_TOKEN", "TOKEN", 1);
	setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
	assert_int_equal(s3_config_load(&c, "s3://b/p", NULL, &err), 0);
	assert_string_equal(c.base_url,
			    "https://b.s3.eu-central-1.amazonaws.com");
	assert_int_equal(c.path_style, 0);
	assert_string_equal(c.key_id, "AKID");
	assert_string_equal(c.secret, "SECRETKEY");
	assert_string_equal(c.token, "TOKEN");
	assert_string_equal(c.prefix, "p/");
	s3_config_release(&c);
	/* AWS_REGION first; an endpoint: path style, its trailing / gone */
	setenv("AWS_REGION", "us-west-2", 1);
	setenv("AWS_ENDPOINT_URL", "http://other:1", 1);
	setenv("AWS_ENDPOINT_URL_S3", "http://s3only:2", 1);
	assert_int_equal(s3_config_load(&c, "s3://b", NULL, &err), 0);
	assert_string_equal(c.region, "us-west-2");
	assert_string_equal(c.base_url, "http://s3only:2");
	assert_int_equal(c.path_style, 1);
	s3_config_release(&c);
	assert_int_equal(s3_config_load(&c, "s3://b", &o, &err), 0);
	assert_string_equal(c.base_url, "http://127.0.0.1:7070");
	s3_config_release(&c);
	o.endpoint = "ftp://x";
	assert_int_equal(s3_config_load(&c, "s3://b", &o, &err), -1);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	error_release(&err);
	/* half the pair */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(s3_config_load(&c, "s3://b", NULL, &err), -1);
	assert_string_equal(err.msg.buf, "AWS_ACCESS_KEY_ID is set but "
					 "AWS_SECRET_ACCESS_KEY is not");
	error_release(&err);
}

static void test_config_profile(void **state)
{
	struct s3_config c;
	struct error err = ERROR_INIT;
	(void)state;
	clear_env();
	write_file(".aws/credentials",
		   "[default]\naws_access_key_id = DEFID\n"
		   "aws_secret_access_key = DEFSECRET\n[prod]\n"
		   "aws_access_key_id=PRODID\naws_secret_access_key=PRODSECRET"
		   "\naws_session_token=PRODTOKEN\n");
	write_file(
		".aws/config",
		"[default]\nregion = eu-west-3\n[profile prod]\n"
		"region = ap-northeast-1\n[profile cfgonly]\n"
		"aws_access_key_id=CFGID\naws_secret_access_key=CFGSECRET\n");
	/* ~/.aws/ by default */
	assert_int_equal(s3_config_load(&c, "s3://b", NULL, &err), 0);
	assert_string_equal(c.key_id, "DEFID");
	assert_string_equal(c.secret, "DEFSECRET");
	assert_null(c.token);
	assert_string_equal(c.region, "eu-west-3");
	s3_config_release(&c);
	setenv("AWS_PROFILE", "prod", 1);
	assert_int_equal(s3_config_load(&c, "s3://b", NULL, &err), 0);
	assert_string_equal(c.key_id, "PRODID");
	assert_string_equal(c.token, "PRODTOKEN");
	assert_string_equal(c.region, "ap-northeast-1");
	s3_config_release(&c);
	setenv("AWS_PROFILE", "cfgonly", 1);
	assert_int_equal(s3_config_load(&c, "s3://b", NULL, &err), 0);
	assert_string_equal(c.key_id, "CFGID");
	assert_string_equal(c.region, "us-east-1");
	s3_config_release(&c);
	/* the variables name other files */
	setenv("AWS_PROFILE", "prod", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/creds", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
	assert_int_equal(s3_config_load(&c, "s3://b", NULL, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "no AWS credentials for 'b'"));
	assert_non_null(strstr(err.msg.buf, "profile 'prod'"));
	error_release(&err);
	clear_env();
}

/* No secret in any message: a refused connection, a 'redacted' echo. */
static void test_no_secret_in_messages(void **state)
{
	struct s3 *s3;
	struct error err = ERROR_INIT;
	struct s3_opts o = {.endpoint = "http://127.0.0.1:1",
			    .attempts = 2,
			    .backoff_ms = 1};
	struct strbuf sb = STRBUF_INIT;
	struct s3_stat st;

	(void)state;
	clear_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIDVISIBLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SUPERSECRETVALUE", 1);
	setenv("AWS_SESSION_TOKEN", "SESSIONTOKENVALUE", 1);
	assert_int_equal(s3_open(&s3, "s3://b/p", &o, &err), 0);
	assert_int_equal(s3_head(s3, "k", &st, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "head 's3://b/p/k': "
					    "http://127.0.0.1:1: "));
	assert_non_null(strstr(err.msg.buf, "(2 attempts)"));
	assert_null(strstr(err.msg.buf, "SUPERSECRET"));
	assert_null(strstr(err.msg.buf, "SESSIONTOKEN"));
	assert_int_equal(s3_requests(s3), 2);
	error_release(&err);
	s3_close(s3);
	strbuf_addstr(&sb, "a SUPERSECRETVALUE b SUPERSECRETVALUE");
	s3_redact(&sb, "SUPERSECRETVALUE");
	assert_string_equal(sb.buf, "a [redacted] b [redacted]");
	s3_redact(&sb, "abc"); /* too short to be a secret */
	strbuf_release(&sb);
	clear_env();
}

/* ------------------------------------------------------------------ */
/* The driver: test_s3 drive [OPTIONS] URL CMD ARGS... */

static double secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* putdir DIR PREFIX: every file below DIR to PREFIX + its path; getdir
 * DIR PREFIX: every key under PREFIX into DIR. */
static int batch_dir(struct s3 *s3, int put, const char *dir,
		     const char *prefix, int create, int parallel,
		     struct error *err)
{
	struct strvec names = STRVEC_INIT, paths = STRVEC_INIT;
	struct strvec keys = STRVEC_INIT;
	struct s3_xfer *v;
	int ret = 0;
	double t0 = secs();

	if (put) {
		assert_int_equal(fs_list_tree(dir, &names), 0);
	} else if (s3_list(s3, prefix, &keys, NULL, err)) {
		return -1;
	}
	for (size_t i = 0; !put && i < keys.nr; i++)
		strvec_push(&names, keys.v[i] + strlen(prefix));
	strvec_clear(&keys);
	v = xcalloc(names.nr + 1, sizeof(*v));
	for (size_t i = 0; i < names.nr; i++) {
		strvec_pushf(&paths, "%s/%s", dir, names.v[i]);
		strvec_pushf(&keys, "%s%s", prefix, names.v[i]);
		if (!put)
			fs_mkdir_parent(paths.v[i], 0755);
	}
	for (size_t i = 0; i < names.nr; i++) {
		v[i].key = keys.v[i];
		v[i].path = paths.v[i];
		v[i].create_only = create;
	}
	ret = put ? s3_batch_put_files(s3, v, names.nr, parallel, err)
		  : s3_batch_get_files(s3, v, names.nr, parallel, err);
	printf("%s %zu files in %.3f s\n", put ? "put" : "got", names.nr,
	       secs() - t0);
	free(v);
	strvec_clear(&names);
	strvec_clear(&paths);
	strvec_clear(&keys);
	return ret;
}

static int command(struct s3 *s3, int argc, char **argv, int parallel,
		   struct error *err)
{
	const char *cmd = argv[0];
	int create = argc > 3 && !strcmp(argv[argc - 1], "create");
	int r = 0;
	struct s3_stat st;
	struct strvec keys = STRVEC_INIT, sizes = STRVEC_INIT;
	double t0 = secs();
	static const char *const said[] = {"ok", "exists", "missing"};

	if (!strcmp(cmd, "put") && argc >= 3) {
		r = s3_put_file(s3, argv[1], argv[2], create, err);
	} else if (!strcmp(cmd, "putmem") && argc >= 3) {
		r = s3_put_mem(s3, argv[1], argv[2], strlen(argv[2]), create,
			       err);
	} else if (!strcmp(cmd, "get") && argc >= 3) {
		r = s3_get_file(s3, argv[1], argv[2], err);
	} else if (!strcmp(cmd, "head") && argc >= 2) {
		r = s3_head(s3, argv[1], &st, err);
		if (r == S3_OK)
			printf("size=%lld etag=%s\n", st.size, st.etag);
	} else if (!strcmp(cmd, "delete") && argc >= 2) {
		r = s3_delete(s3, argv[1], err);
	} else if (!strcmp(cmd, "list")) {
		r = s3_list(s3, argc > 1 ? argv[1] : "", &keys, &sizes, err);
		for (size_t i = 0; !r && i < keys.nr; i++)
			printf("%s %s\n", keys.v[i], sizes.v[i]);
		if (!r)
			printf("keys: %zu\n", keys.nr);
	} else if ((!strcmp(cmd, "putdir") || !strcmp(cmd, "getdir")) &&
		   argc >= 3) {
		r = batch_dir(s3, cmd[0] == 'p', argv[1], argv[2],
			      argc > 3 && !strcmp(argv[3], "create"), parallel,
			      err);
	} else {
		fprintf(stderr, "test_s3 drive: bad command '%s'\n", cmd);
		return -2;
	}
	if (r >= 0 && strcmp(cmd, "list") && strcmp(cmd, "putdir") &&
	    strcmp(cmd, "getdir"))
		printf("%s in %.3f s\n", said[r], secs() - t0);
	strvec_clear(&keys);
	strvec_clear(&sizes);
	return r;
}

/* A signal interrupts the wait (as in pipe, whose handlers do not
 * restart system calls). */
static void on_signal(int sig)
{
	(void)sig;
}

static int drive(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct s3_opts o = {0};
	struct s3 *s3;
	struct error err = ERROR_INIT;
	int i = 0, r;

	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		const char *k = argv[i] + 2, *v = argv[i + 1];

		if (!strcmp(k, "endpoint"))
			o.endpoint = v;
		else if (!strcmp(k, "parallel"))
			o.parallel = atoi(v);
		else if (!strcmp(k, "part-size"))
			o.part_size = atoll(v);
		else if (!strcmp(k, "threshold"))
			o.multipart_threshold = atoll(v);
		else if (!strcmp(k, "attempts"))
			o.attempts = atoi(v);
		else if (!strcmp(k, "backoff"))
			o.backoff_ms = atol(v);
		else
			break;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: test_s3 drive [--endpoint URL] "
				"[--parallel N] [--part-size B] [--threshold "
				"B] [--attempts N] [--backoff MS] S3URL CMD "
				"ARGS...\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	if (s3_open(&s3, argv[i], &o, &err)) {
		error_print(&err, stderr);
		return err.exit_code;
	}
	r = command(s3, argc - i - 1, argv + i + 1, o.parallel, &err);
	fprintf(stderr, "requests: %ld\n", s3_requests(s3));
	s3_close(s3);
	if (r == -2)
		return 2;
	if (r < 0) {
		error_print(&err, stderr);
		r = err.exit_code;
		error_release(&err);
		return r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_encode_path),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_xml_pick),
		cmocka_unit_test(test_parse_list),
		cmocka_unit_test(test_ini),
		cmocka_unit_test(test_config_env),
		cmocka_unit_test(test_config_profile),
		cmocka_unit_test(test_no_secret_in_messages),
	};
	int r;

	if (argc > 1 && !strcmp(argv[1], "drive"))
		return drive(argc - 2, argv + 2);
	if (!mkdtemp(tmpdir))
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	if (fs_remove_tree(tmpdir))
		r = r ? r : 1;
	return r;
}
