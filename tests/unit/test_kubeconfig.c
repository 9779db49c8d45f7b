/* Unit tests for pipefile/kubeconfig.c and util/base64.c: decoding a
 * context (certificates, tokens, exec plugins), merging KUBECONFIG's
 * files, relative paths, the in-cluster service account, and every error
 * located and free of secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipefile/kubeconfig.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define CERT                                                                   \
	"-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
#define KEY                                                                    \
	"-----BEGIN PRIVATE KEY-----\nSECRETKEYBODY\n-----END PRIVATE KEY-----\n"
#define TOKEN "SECRETTOKEN0123"
#define PASSWORD "hunter2secret"
#define ENVVAL "ENVSECRETVALUE"

static char tmp[] = "/tmp/pipe-kubeconfig-XXXXXX";

static char *b64(const char *s)
{
	struct strbuf sb = STRBUF_INIT;

	base64_encode(&sb, s, strlen(s));
	return strbuf_detach(&sb, NULL);
}

static char *write_file(const char *name, const char *text)
{
	char *path = xstrfmt("%s/%s", tmp, name);
	FILE *fp;

	assert_int_equal(fs_mkdir_parent(path, 0755), 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	setenv("HOME", tmp, 1);
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return fs_remove_tree(tmp);
}

static void parse_ok(struct kube_config *kc, const char *text,
		     const char *context)
{
	struct error err = ERROR_INIT;
	char *name = xstrfmt("%s/config", tmp);

	if (kubeconfig_parse(kc, name, text, strlen(text), context, &err)) {
		struct strbuf sb = STRBUF_INIT;

		error_format(&err, &sb);
		fail_msg("unexpected error: %s", sb.buf);
	}
	free(name);
}

static void test_base64(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	base64_encode(&sb, "hello!?", 7);
	assert_string_equal(sb.buf, "aGVsbG8hPw==");
	strbuf_reset(&sb);
	assert_int_equal(base64_decode(&sb, "aGVs\nbG8h Pw==", 14), 0);
	assert_string_equal(sb.buf, "hello!?");
	strbuf_reset(&sb);
	assert_int_equal(base64_decode(&sb, "aGVsbG8hPw", 10), 0);
	assert_string_equal(sb.buf, "hello!?");
	strbuf_reset(&sb);
	assert_int_equal(base64_decode(&sb, "aGV!", 4), -1);
	strbuf_reset(&sb);
	assert_int_equal(base64_decode(&sb, "aG==aG", 6), -1);
	strbuf_reset(&sb);
	assert_int_equal(base64_decode(&sb, "aGVsb", 5), -1);
	strbuf_release(&sb);
}

static void test_decode(void **state)
{
	struct kube_config kc;
	char *cert = b64(CERT), *key = b64(KEY);
	char *text = xstrfmt(
		"apiVersion: v1\nkind: Config\n"
		"current-context: dev\n"
		"clusters:\n"
		"- name: c1\n  cluster:\n    server: https://k.example:6443/\n"
		"    certificate-authority-data: %s\n"
		"    tls-server-name: kubernetes\n"
		"    insecure-skip-tls-verify: false\n"
		"- name: c2\n  cluster: {server: 10.0.0.1:443, "
		"insecure-skip-tls-verify: true}\n"
		"users:\n"
		"- name: u1\n  user:\n    token: " TOKEN "\n"
		"    client-certificate-data: %s\n    client-key-data: %s\n"
		"- name: u2\n  user:\n    exec:\n"
		"      apiVersion: client.authentication.k8s.io/v1\n"
		"      command: ./bin/plugin\n      args: [get-token, -v]\n"
		"      env:\n      - name: A\n        value: " ENVVAL "\n"
		"      installHint: brew install plugin\n"
		"      interactiveMode: Always\n"
		"      provideClusterInfo: true\n"
		"contexts:\n"
		"- name: dev\n  context: {cluster: c1, user: u1, namespace: ns1}\n"
		"- name: other\n  context: {cluster: c2, user: u2}\n"
		"- name: nouser\n  context: {cluster: c2}\n",
		cert, cert, key);

	(void)state;
	parse_ok(&kc, text, NULL);
	assert_string_equal(kc.context, "dev");
	assert_string_equal(kc.server, "https://k.example:6443");
	assert_string_equal(kc.namespace, "ns1");
	assert_string_equal(kc.ca_pem, CERT);
	assert_string_equal(kc.cert_pem, CERT);
	assert_string_equal(kc.key_pem, KEY);
	assert_string_equal(kc.token, TOKEN);
	assert_string_equal(kc.tls_server_name, "kubernetes");
	assert_int_equal(kc.insecure, 0);
	assert_null(kc.exec.command);
	kube_config_release(&kc);

	parse_ok(&kc, text, "other");
	assert_string_equal(kc.context, "other");
	assert_string_equal(kc.server, "https://10.0.0.1:443");
	assert_int_equal(kc.insecure, 1);
	assert_null(kc.namespace);
	assert_null(kc.token);
	assert_non_null(kc.exec.command);
	assert_true(!strncmp(kc.exec.command, tmp, strlen(tmp)));
	assert_string_equal(kc.exec.command + strlen(tmp), "/./bin/plugin");
	assert_string_equal(kc.exec.args[0], "get-token");
	assert_string_equal(kc.exec.args[1], "-v");
	assert_null(kc.exec.args[2]);
	assert_string_equal(kc.exec.env[0], "A=" ENVVAL);
	assert_null(kc.exec.env[1]);
	assert_string_equal(kc.exec.api_version,
			    "client.authentication.k8s.io/v1");
	assert_string_equal(kc.exec.install_hint, "brew install plugin");
	assert_int_equal(kc.exec.interactive, 1);
	assert_int_equal(kc.exec.provide_cluster_info, 1);
	kube_config_release(&kc);

	parse_ok(&kc, text, "nouser");
	assert_null(kc.token);
	assert_null(kc.cert_pem);
	kube_config_release(&kc);
	free(text);
	free(cert);
	free(key);
}

/* Paths relative to the kubeconfig's folder, as kubectl resolves them. */
static void test_relative_paths(void **state)
{
	struct kube_config kc;
	struct error err = ERROR_INIT;
	char *ca = write_file("rel/certs/ca.pem", CERT);
	char *tok = write_file("rel/tok", TOKEN "\n");
	char *k = write_file("rel/key.pem", KEY);
	char *path = write_file(
		"rel/config",
		"current-context: x\n"
		"clusters: [{name: c, cluster: {server: 'https://h', "
		"certificate-authority: certs/ca.pem}}]\n"
		"users: [{name: u, user: {tokenFile: tok, client-key: key.pem, "
		"client-certificate: certs/ca.pem}}]\n"
		"contexts: [{name: x, context: {cluster: c, user: u}}]\n");

	(void)state;
	setenv("KUBECONFIG", path, 1);
	assert_int_equal(kubeconfig_load(&kc, NULL, &err), 0);
	assert_string_equal(kc.ca_pem, CERT);
	assert_string_equal(kc.cert_pem, CERT);
	assert_string_equal(kc.key_pem, KEY);
	assert_string_equal(kc.token_file, tok);
	assert_null(kc.token);
	assert_string_equal(kc.source, path);
	kube_config_release(&kc);
	unsetenv("KUBECONFIG");
	free(ca);
	free(tok);
	free(k);
	free(path);
}

/* KUBECONFIG=a:missing:b: the first file defining a name wins, and the
 * first current-context. */
static void test_merge(void **state)
{
	struct kube_config kc;
	struct error err = ERROR_INIT;
	char *a = write_file(
		"merge/a", "current-context: one\n"
			   "clusters: [{name: c, cluster: {server: "
			   "'https://a'}}]\n"
			   "contexts: [{name: one, context: {cluster: c}}]\n");
	char *b = write_file("merge/b",
			     "current-context: two\n"
			     "clusters:\n"
			     "- {name: c, cluster: {server: 'https://b'}}\n"
			     "- {name: d, cluster: {server: 'https://d'}}\n"
			     "users: [{name: u, user: {token: t}}]\n"
			     "contexts:\n"
			     "- {name: two, context: {cluster: d, user: u}}\n"
			     "- {name: one, context: {cluster: d}}\n");
	char *list = xstrfmt("%s:%s/merge/missing::%s", a, tmp, b);

	(void)state;
	setenv("KUBECONFIG", list, 1);
	assert_int_equal(kubeconfig_load(&kc, NULL, &err), 0);
	assert_string_equal(kc.context, "one");
	assert_string_equal(kc.server, "https://a");
	assert_string_equal(kc.source, a);
	kube_config_release(&kc);
	assert_int_equal(kubeconfig_load(&kc, "two", &err), 0);
	assert_string_equal(kc.server, "https://d");
	assert_string_equal(kc.token, "t");
	assert_string_equal(kc.source, b);
	kube_config_release(&kc);

	/* every file missing, and not in a pod */
	setenv("KUBECONFIG", "/nonexistent/a:/nonexistent/b", 1);
	assert_int_equal(kubeconfig_load(&kc, NULL, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "none of the files"));
	error_release(&err);
	unsetenv("KUBECONFIG");
	/* ~/.kube/config missing */
	assert_int_equal(kubeconfig_load(&kc, NULL, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "/.kube/config' does not exist"));
	error_release(&err);
	free(a);
	free(b);
	free(list);
}

static void test_home_config(void **state)
{
	struct kube_config kc;
	struct error err = ERROR_INIT;
	char *p = write_file(".kube/config",
			     "clusters: [{name: c, cluster: {server: h:1}}]\n"
			     "contexts: [{name: x, context: {cluster: c}}]\n");

	(void)state;
	assert_int_equal(kubeconfig_load(&kc, "x", &err), 0);
	assert_string_equal(kc.server, "https://h:1");
	kube_config_release(&kc);
	/* --context "" is the current one, and there is none */
	assert_int_equal(kubeconfig_load(&kc, "", &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "no current-context is set"));
	error_release(&err);
	/* a folder where a certificate should be */
	free(write_file(".kube/config",
			"clusters: [{name: c, cluster: {server: h:1, "
			"certificate-authority: /}}]\n"
			"contexts: [{name: x, context: {cluster: c}}]\n"));
	assert_int_equal(kubeconfig_load(&kc, "x", &err), -1);
	assert_non_null(strstr(err.msg.buf, "cannot read certificate-authority "
					    "'/': Is a directory"));
	error_release(&err);
	unlink(p);
	free(p);
}

static void test_in_cluster(void **state)
{
	struct kube_config kc;
	struct error err = ERROR_INIT;
	char *ca = write_file("sa/ca.crt", CERT);
	char *tok = write_file("sa/token", TOKEN);
	char *ns = write_file("sa/namespace", "jobs\n");
	char *dir = xstrfmt("%s/sa", tmp);

	(void)state;
	setenv("KUBECONFIG", "/nonexistent/config", 1);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	setenv("PIPE_K8S_SA_DIR", dir, 1);
	assert_int_equal(kubeconfig_load(&kc, NULL, &err), 0);
	assert_string_equal(kc.server, "https://[fd00::1]:443");
	assert_string_equal(kc.ca_pem, CERT);
	assert_string_equal(kc.token_file, tok);
	assert_null(kc.token);
	assert_string_equal(kc.namespace, "jobs");
	assert_null(kc.context);
	kube_config_release(&kc);

	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	assert_int_equal(kubeconfig_load(&kc, NULL, &err), 0);
	assert_string_equal(kc.server, "https://10.0.0.1:443");
	kube_config_release(&kc);

	/* a named context does not exist in a pod */
	assert_int_equal(kubeconfig_load(&kc, "prod", &err), -1);
	assert_int_equal(err.exit_code, EXIT_USAGE);
	error_release(&err);

	/* no token mounted */
	unlink(tok);
	assert_int_equal(kubeconfig_load(&kc, NULL, &err), -1);
	assert_int_equal(err.exit_code, EXIT_ENV);
	assert_non_null(strstr(err.msg.buf, "service account token"));
	error_release(&err);

	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("PIPE_K8S_SA_DIR");
	free(ca);
	free(tok);
	free(ns);
	free(dir);
}

/* Users holding every kind of secret, shared by the error cases. */
#define USERS                                                                  \
	"users:\n"                                                             \
	"- name: tok\n  user:\n    token: " TOKEN "\n"                         \
	"- name: pw\n  user: {username: me, password: " PASSWORD "}\n"         \
	"- name: both\n  user:\n    token: " TOKEN "\n"                        \
	"    password: " PASSWORD "\n"                                         \
	"- name: badkey\n  user:\n    client-certificate-data: %s\n"           \
	"    client-key-data: " TOKEN "!!\n"                                   \
	"- name: keyonly\n  user: {client-key-data: %s}\n"                     \
	"- name: badenv\n  user:\n    exec:\n      command: p\n"               \
	"      apiVersion: client.authentication.k8s.io/v1\n"                  \
	"      env:\n      - {name: 'A=B', value: " ENVVAL "}\n"               \
	"- name: nocmd\n  user: {exec: {apiVersion: x}}\n"                     \
	"- name: badver\n  user: {exec: {command: p, apiVersion: v1alpha1}}\n" \
	"- name: gcp\n  user: {auth-provider: {name: gcp, config: "            \
	"{access-token: " TOKEN "}}}\n"

#define CLUSTERS                                                               \
	"clusters:\n"                                                          \
	"- {name: ok, cluster: {server: 'https://h'}}\n"                       \
	"- {name: noserver, cluster: {tls-server-name: x}}\n"                  \
	"- {name: badca, cluster: {server: h, certificate-authority: "         \
	"/nonexistent/ca.pem}}\n"                                              \
	"- {name: bad64, cluster: {server: h, certificate-authority-data: "    \
	"'%%%%'}}\n"                                                           \
	"- {name: notpem, cluster: {server: h, certificate-authority-data: "   \
	"aGVsbG8=}}\n"                                                         \
	"- {name: scheme, cluster: {server: 'ftp://h'}}\n"                     \
	"- {name: badbool, cluster: {server: h, insecure-skip-tls-verify: "    \
	"maybe}}\n"

struct bad_case {
	const char *context; /* passed as --context; NULL: current */
	const char *extra;   /* contexts: and current-context: lines */
	int exit_code;
	const char *msg; /* a part of the message */
	int line;	 /* 0: not located */
};

static const struct bad_case bad_cases[] = {
	{"nope", "- {name: dev, context: {cluster: ok}}\n", EXIT_USAGE,
	 "unknown context 'nope' (known contexts:", 0},
	{"dve", "- {name: dev, context: {cluster: ok}}\n", EXIT_USAGE,
	 "did you mean 'dev'?", 0},
	{NULL, "current-context: gone\n", EXIT_ENV,
	 "current-context 'gone' is not defined", -1},
	{NULL, "", EXIT_ENV, "no current-context is set", 0},
	{"x", "- {name: x, context: {cluster: nocluster}}\n", EXIT_ENV,
	 "context 'x': cluster 'nocluster' is not defined", -1},
	{"x", "- {name: x, context: {cluster: ok, user: nouser}}\n", EXIT_ENV,
	 "user 'nouser' is not defined", -1},
	{"x", "- {name: x, context: {user: tok}}\n", EXIT_ENV, "no 'cluster'",
	 -1},
	{"x", "- {name: x}\n", EXIT_ENV, "no 'context' mapping", -1},
	{"x", "- {name: x, context: {cluster: noserver}}\n", EXIT_ENV,
	 "cluster 'noserver': no 'server'", -1},
	{"x", "- {name: x, context: {cluster: badca}}\n", EXIT_ENV,
	 "cannot read certificate-authority '/nonexistent/ca.pem'", -1},
	{"x", "- {name: x, context: {cluster: bad64}}\n", EXIT_ENV,
	 "'certificate-authority-data' is not valid base64", -1},
	{"x", "- {name: x, context: {cluster: notpem}}\n", EXIT_ENV,
	 "does not hold PEM data", -1},
	{"x", "- {name: x, context: {cluster: scheme}}\n", EXIT_ENV,
	 "must be an https://", -1},
	{"x", "- {name: x, context: {cluster: badbool}}\n", EXIT_ENV,
	 "'insecure-skip-tls-verify' must be true or false", -1},
	{"x", "- {name: x, context: {cluster: ok, user: both}}\n", EXIT_ENV,
	 "user 'both': both a token and a username/password", -1},
	{"x", "- {name: x, context: {cluster: ok, user: badkey}}\n", EXIT_ENV,
	 "'client-key-data' is not valid base64", -1},
	{"x", "- {name: x, context: {cluster: ok, user: keyonly}}\n", EXIT_ENV,
	 "needs both client-certificate and client-key", -1},
	{"x", "- {name: x, context: {cluster: ok, user: badenv}}\n", EXIT_ENV,
	 "user 'badenv': exec: each of 'env' needs a 'name'", -1},
	{"x", "- {name: x, context: {cluster: ok, user: nocmd}}\n", EXIT_ENV,
	 "exec: no 'command'", -1},
	{"x", "- {name: x, context: {cluster: ok, user: badver}}\n", EXIT_ENV,
	 "'apiVersion' must be client.authentication.k8s.io/v1", -1},
	{"x", "- {name: x, context: {cluster: ok, user: gcp}}\n", EXIT_ENV,
	 "'auth-provider' is not supported", -1},
	{"x", "- {name: x, context: {cluster: ok, user: pw}}\n", 0, NULL, 0},
};

static void check_secret_free(const struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	static const char *const secrets[] = {TOKEN, PASSWORD, ENVVAL,
					      "SECRETKEYBODY"};

	error_format(err, &sb);
	if (err->source_line)
		strbuf_addf(&sb, "\n%s", err->source_line);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++)
		if (strstr(sb.buf, secrets[i]))
			fail_msg("secret in message: %s", sb.buf);
	strbuf_release(&sb);
}

static void test_errors(void **state)
{
	char *cert = b64(CERT), *key = b64(KEY);
	char *head = xstrfmt(USERS CLUSTERS "contexts:\n", cert, key);
	char *name = xstrfmt("%s/config", tmp);

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct kube_config kc;
		struct error err = ERROR_INIT;
		char *text = xstrfmt("%s%s", head, c->extra);
		int ret = kubeconfig_parse(&kc, name, text, strlen(text),
					   c->context, &err);

		if (!c->msg) {
			assert_int_equal(ret, 0);
			assert_string_equal(kc.password, PASSWORD);
			kube_config_release(&kc);
			free(text);
			continue;
		}
		if (ret != -1 || !strstr(err.msg.buf, c->msg))
			fail_msg("case %zu: want '%s', got '%s'", i, c->msg,
				 err.msg.buf);
		assert_int_equal(err.exit_code, c->exit_code);
		assert_null(kc.server);
		if (c->line)
			assert_true(err.line > 0 && err.col > 0 && err.file);
		check_secret_free(&err);
		error_release(&err);
		free(text);
	}
	free(head);
	free(name);
	free(cert);
	free(key);
}

/* Whole-file problems, with secrets on the lines they point at. */
static void test_file_errors(void **state)
{
	static const struct {
		const char *text, *msg;
		int line;
	} cases[] = {
		{"users:\n- name: u\n  user:\n    token: \"" TOKEN "\n",
		 "unclosed quote", 4},
		{"users:\n- name: u\n  user:\n\ttoken: " TOKEN "\n", "tab", 4},
		{"- clusters\n", "must be a mapping", 1},
		{"users: {token: " TOKEN "}\n", "'users' must be a list", 1},
		{"users:\n- {nam: u, user: {token: " TOKEN "}}\n",
		 "has no 'name'", 2},
		{"current-context: [a]\n", "'current-context' must be", 1},
	};
	char *name = xstrfmt("%s/config", tmp);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct kube_config kc;
		struct error err = ERROR_INIT;
		const char *t = cases[i].text;

		assert_int_equal(
			kubeconfig_parse(&kc, name, t, strlen(t), NULL, &err),
			-1);
		if (!strstr(err.msg.buf, cases[i].msg))
			fail_msg("case %zu: want '%s', got '%s'", i,
				 cases[i].msg, err.msg.buf);
		assert_int_equal(err.exit_code, EXIT_ENV);
		assert_int_equal(err.line, cases[i].line);
		assert_string_equal(err.file, name);
		check_secret_free(&err);
		error_release(&err);
	}
	free(name);
}

/* A located error on a line without secrets quotes it. */
static void test_excerpt(void **state)
{
	struct kube_config kc;
	struct error err = ERROR_INIT;
	const char *t = "clusters:\n- name: c\n  cluster:\n    server: "
			"'ftp://h'\ncontexts: [{name: x, context: {cluster: "
			"c}}]\n";

	(void)state;
	assert_int_equal(kubeconfig_parse(&kc, "kc", t, strlen(t), "x", &err),
			 -1);
	assert_int_equal(err.line, 4);
	assert_int_equal(err.col, 13);
	assert_string_equal(err.source_line, "    server: 'ftp://h'");
	error_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_home_config),
		cmocka_unit_test(test_in_cluster),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_excerpt),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
