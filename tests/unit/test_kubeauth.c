/* Unit tests for executors/kubeauth.c: static tokens, token files, and
 * exec plugins played by shell scripts (a counter file shows how often
 * they ran): caching, expiry, invalidation, their failures, and no token
 * in any message. */
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

#include "executors/json.h"
#include "executors/kubeauth.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define V1 "client.authentication.k8s.io/v1"
#define SECRET "SECRETTOKEN0123"

static char tmp[] = "/tmp/pipe-kubeauth-XXXXXX";

static char *write_file(const char *name, const char *text, int mode)
{
	char *path = xstrfmt("%s/%s", tmp, name);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	chmod(path, (mode_t)mode);
	return path;
}

static char *read_back(const char *name)
{
	char *path = xstrfmt("%s/%s", tmp, name);
	struct strbuf sb = STRBUF_INIT;

	if (strbuf_read_file(&sb, path, 0))
		strbuf_addstr(&sb, "(none)");
	free(path);
	strbuf_trim_trailing_newline(&sb);
	return strbuf_detach(&sb, NULL);
}

static int runs(void)
{
	char *s = read_back("count");
	int n = atoi(s);

	free(s);
	return n;
}

/* A plugin printing "tok-N" (N counts its runs), expiring LIFETIME s
 * from now (none when LIFETIME is empty). It saves its request and args. */
static const char plugin[] =
	"#!/bin/sh\n"
	"n=$(cat \"$DIR/count\" 2>/dev/null || echo 0); n=$((n + 1))\n"
	"echo $n >\"$DIR/count\"\n"
	"printf '%s' \"$KUBERNETES_EXEC_INFO\" >\"$DIR/info\"\n"
	"echo \"$*\" >\"$DIR/args\"\n"
	"exp=\n"
	"[ -n \"$LIFETIME\" ] && exp=\",\\\"expirationTimestamp\\\":\\\"$(date "
	"-u -d @$(($(date +%s) + LIFETIME)) +%Y-%m-%dT%H:%M:%SZ)\\\"\"\n"
	"printf '{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\","
	"\"status\":{\"token\":\"tok-%s\"%s}}\\n' \"$n\" \"$exp\"\n";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return fs_remove_tree(tmp);
}

/* A kube_config whose user runs script (written as "plugin") with env
 * LIFETIME=lifetime. */
static void exec_config(struct kube_config *kc, const char *script,
			const char *lifetime)
{
	char *count;

	memset(kc, 0, sizeof(*kc));
	kc->context = xstrdup("test");
	kc->server = xstrdup("https://k:6443");
	kc->ca_pem = xstrdup("-----BEGIN CERTIFICATE-----\n");
	kc->exec.command = write_file("plugin", script, 0755);
	kc->exec.api_version = xstrdup(V1);
	kc->exec.args = xcalloc(3, sizeof(char *));
	kc->exec.args[0] = xstrdup("get-token");
	kc->exec.args[1] = xstrdup("--x=1");
	kc->exec.env = xcalloc(3, sizeof(char *));
	kc->exec.env[0] = xstrfmt("DIR=%s", tmp);
	kc->exec.env[1] = xstrfmt("LIFETIME=%s", lifetime);
	kc->exec.provide_cluster_info = 1;
	count = xstrfmt("%s/count", tmp);
	unlink(count); /* runs() counts from 0 again */
	free(count);
}

static void check_secret_free(const struct error *err)
{
	if (strstr(err->msg.buf, SECRET) || strstr(err->msg.buf, "tok-"))
		fail_msg("token in message: %s", err->msg.buf);
}

static void get(struct kube_auth *a, const char *want)
{
	struct strbuf bearer = STRBUF_INIT;
	struct error err = ERROR_INIT;

	if (kube_auth_headers(a, &bearer, &err))
		fail_msg("unexpected error: %s", err.msg.buf);
	assert_string_equal(bearer.buf, want);
	strbuf_release(&bearer);
}

static void get_fails(struct kube_auth *a, const char *msg)
{
	struct strbuf bearer = STRBUF_INIT;
	struct error err = ERROR_INIT;

	assert_int_equal(kube_auth_headers(a, &bearer, &err), -1);
	if (!strstr(err.msg.buf, msg))
		fail_msg("want '%s', got '%s'", msg, err.msg.buf);
	assert_int_equal(err.exit_code, EXIT_ENV);
	check_secret_free(&err);
	error_release(&err);
	strbuf_release(&bearer);
}

static void test_static_and_file(void **state)
{
	struct kube_config kc = {0};
	struct kube_auth *a;
	struct error err = ERROR_INIT;
	const char *cert, *key;

	(void)state;
	kc.token = xstrdup(SECRET);
	kc.cert_pem = xstrdup("CERT");
	kc.key_pem = xstrdup("KEY");
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, SECRET);
	kube_auth_client_cert(a, &cert, &key);
	assert_string_equal(cert, "CERT");
	assert_string_equal(key, "KEY");
	kube_auth_free(a);
	kube_config_release(&kc);

	/* no credentials at all */
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, "");
	kube_auth_client_cert(a, &cert, &key);
	assert_null(cert);
	kube_auth_free(a);

	/* a token file is read, cached, and read again after a 401 */
	kc.token_file = write_file("token", SECRET "-1\n", 0600);
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, SECRET "-1");
	free(write_file("token", SECRET "-2", 0600));
	get(a, SECRET "-1");
	kube_auth_invalidate(a);
	get(a, SECRET "-2");
	free(write_file("token", "\n", 0600));
	kube_auth_invalidate(a);
	get_fails(a, "is empty");
	unlink(kc.token_file);
	get_fails(a, "cannot read token file");
	kube_auth_free(a);
	kube_config_release(&kc);
}

static void test_exec_cached(void **state)
{
	struct kube_config kc;
	struct kube_auth *a;
	struct error err = ERROR_INIT;
	struct json *info = NULL;
	char *s;

	(void)state;
	exec_config(&kc, plugin, "3600");
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	assert_int_equal(runs(), 0); /* nothing run before it is needed */
	get(a, "tok-1");
	get(a, "tok-1");
	assert_int_equal(runs(), 1);
	kube_auth_invalidate(a);
	get(a, "tok-2");
	assert_int_equal(runs(), 2);

	s = read_back("args");
	assert_string_equal(s, "get-token --x=1");
	free(s);
	s = read_back("info");
	assert_int_equal(json_parse(&info, s, strlen(s), &err), 0);
	assert_string_equal(json_get_str(info, "apiVersion"), V1);
	assert_string_equal(json_get_str(info, "kind"), "ExecCredential");
	assert_non_null(json_get(info, "spec.interactive"));
	assert_int_equal(json_get_bool(info, "spec.interactive"), 0);
	assert_string_equal(json_get_str(info, "spec.cluster.server"),
			    "https://k:6443");
	/* base64 of "-----BEGIN CERTIFICATE-----\n" */
	assert_string_equal(
		json_get_str(info, "spec.cluster.certificate-authority-data"),
		"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==");
	json_free(info);
	free(s);
	kube_auth_free(a);

	/* without provideClusterInfo, no spec.cluster */
	kc.exec.provide_cluster_info = 0;
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, "tok-3");
	s = read_back("info");
	assert_null(strstr(s, "cluster"));
	free(s);
	kube_auth_free(a);
	kube_config_release(&kc);
}

static void test_exec_expiry(void **state)
{
	struct kube_config kc;
	struct kube_auth *a;
	struct error err = ERROR_INIT;

	(void)state;
	/* 12 s of life, renewed 10 s early: cached for about 2 s */
	exec_config(&kc, plugin, "12");
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, "tok-1");
	get(a, "tok-1");
	sleep(3);
	get(a, "tok-2");
	assert_int_equal(runs(), 2);
	kube_auth_free(a);
	kube_config_release(&kc);

	/* expiring within the margin: run every time */
	exec_config(&kc, plugin, "5");
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, "tok-1");
	get(a, "tok-2");
	kube_auth_free(a);
	kube_config_release(&kc);

	/* no expirationTimestamp: until a 401 */
	exec_config(&kc, plugin, "");
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, "tok-1");
	get(a, "tok-1");
	kube_auth_invalidate(a);
	get(a, "tok-2");
	kube_auth_free(a);
	kube_config_release(&kc);
}

static void test_exec_failures(void **state)
{
	static const struct {
		const char *script, *msg;
	} cases[] = {
		{"#!/bin/sh\necho '{\"status\":{\"token\":\"" SECRET "\"}}'\n"
		 "printf '\\n  boom: bad creds\\nsecond\\n' >&2; exit 3\n",
		 "failed (exit status 3): boom: bad creds"},
		{"#!/bin/sh\necho '{\"token\": " SECRET "'\n",
		 "printed no valid ExecCredential JSON on stdout"},
		{"#!/bin/sh\necho '{\"apiVersion\":\"" SECRET
		 "\",\"kind\":\"ExecCredential\"}'\n",
		 "did not answer with an ExecCredential of apiVersion '" V1
		 "'"},
		{"#!/bin/sh\necho '{\"apiVersion\":\"" V1
		 "\",\"kind\":\"ExecCredential\",\"status\":{}}'\n",
		 "gave neither status.token nor"},
		{"#!/bin/sh\necho '{\"apiVersion\":\"" V1
		 "\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"" SECRET
		 "\",\"expirationTimestamp\":\"" SECRET "\"}}'\n",
		 "status.expirationTimestamp that is not RFC 3339"},
	};
	struct kube_config kc;
	struct kube_auth *a;
	struct error err = ERROR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		exec_config(&kc, cases[i].script, "");
		assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
		get_fails(a, cases[i].msg);
		kube_auth_free(a);
		kube_config_release(&kc);
	}

	/* removed after kube_auth_new(): the same message at run time */
	exec_config(&kc, plugin, "");
	kc.exec.install_hint = xstrdup("brew install it");
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	unlink(kc.exec.command);
	get_fails(a, "is not found: brew install it");
	kube_auth_free(a);
	kube_config_release(&kc);

	/* not found: the message carries the install hint */
	exec_config(&kc, plugin, "");
	free(kc.exec.command);
	kc.exec.command = xstrdup("pipe-no-such-plugin");
	kc.exec.install_hint = xstrdup("brew install pipe-no-such-plugin");
	assert_int_equal(kube_auth_new(&a, &kc, &err), -1);
	assert_null(a);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "exec plugin 'pipe-no-such-plugin'"
					    " (kubeconfig user of context "
					    "'test') is not found: brew "
					    "install pipe-no-such-plugin"));
	error_release(&err);
	kube_config_release(&kc);

	/* interactiveMode: Always without a terminal */
	exec_config(&kc, plugin, "");
	kc.exec.interactive = 1;
	if (!isatty(0)) {
		assert_int_equal(kube_auth_new(&a, &kc, &err), -1);
		assert_non_null(strstr(err.msg.buf, "wants a terminal"));
		error_release(&err);
	}
	kube_config_release(&kc);
}

static void test_exec_client_cert(void **state)
{
	static const char script[] =
		"#!/bin/sh\n"
		"n=$(cat \"$DIR/count\" 2>/dev/null || echo 0); n=$((n + 1))\n"
		"echo $n >\"$DIR/count\"\n"
		"printf '{\"apiVersion\":\"" V1
		"\",\"kind\":\"ExecCredential\","
		"\"status\":{\"clientCertificateData\":\"CERT%s\","
		"\"clientKeyData\":\"KEY%s\"}}' $n $n\n";
	struct kube_config kc;
	struct kube_auth *a;
	struct error err = ERROR_INIT;
	const char *cert, *key;
	unsigned gen;

	(void)state;
	exec_config(&kc, script, "");
	assert_int_equal(kube_auth_new(&a, &kc, &err), 0);
	get(a, "");
	gen = kube_auth_client_cert(a, &cert, &key);
	assert_string_equal(cert, "CERT1");
	assert_string_equal(key, "KEY1");
	kube_auth_invalidate(a);
	get(a, "");
	assert_int_not_equal(kube_auth_client_cert(a, &cert, &key), gen);
	assert_string_equal(cert, "CERT2");
	kube_auth_free(a);
	kube_config_release(&kc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_static_and_file),
		cmocka_unit_test(test_exec_cached),
		cmocka_unit_test(test_exec_expiry),
		cmocka_unit_test(test_exec_failures),
		cmocka_unit_test(test_exec_client_cert),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
