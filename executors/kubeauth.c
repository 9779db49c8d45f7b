/* Kubernetes credentials at request time (executors/kubeauth.h): a static
 * token, a rotating token file, or an exec plugin's ExecCredential run
 * through proc_capture and cached until shortly before it expires. */
#include "executors/kubeauth.h"
#include "executors/json.h"
#include "util/base64.h"
#include "util/proc.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_MAX (1u << 20)

struct kube_auth {
	const struct kube_config *kc;
	struct strbuf token;	  /* the cached bearer token: a secret */
	int have;		  /* token (or the plugin's cert) is current */
	long long read_ms;	  /* token file: when it was read (monotonic) */
	time_t expiry;		  /* exec: expirationTimestamp; 0: none */
	char *cert_pem, *key_pem; /* exec: from status; key is a secret */
	unsigned cert_gen;	  /* bumped when they change */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wipe_str(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

static void wipe_buf(struct strbuf *sb)
{
	explicit_bzero(sb->buf, sb->len);
	strbuf_reset(sb);
}

/* 1 when the plugin's command can be run: a path that is executable, or
 * a name found on PATH. */
static int plugin_exists(const char *cmd)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL;
	int found = 0;

	if (strchr(cmd, '/'))
		return !access(cmd, X_OK);
	copy = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *d = strtok_r(copy, ":", &save); d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		char *full = xstrfmt("%s/%s", d, cmd);

		found = !access(full, X_OK);
		free(full);
	}
	free(copy);
	return found;
}

static int not_found(const struct kube_config *kc, struct error *err)
{
	const struct kube_exec *x = &kc->exec;

	return error_set(err, EXIT_ENV,
			 "exec plugin '%s' (kubeconfig user of context '%s') "
			 "is not found: %s",
			 x->command, kc->context ? kc->context : "-",
			 x->install_hint ? x->install_hint
					 : "install it, or fix the user's exec "
					   "command");
}

int kube_auth_new(struct kube_auth **out, const struct kube_config *kc,
		  struct error *err)
{
	const struct kube_exec *x = &kc->exec;

	*out = NULL;
	if (x->command && !plugin_exists(x->command))
		return not_found(kc, err);
	if (x->command && x->interactive && !isatty(0))
		return error_set(err, EXIT_ENV,
				 "exec plugin '%s' wants a terminal "
				 "(interactiveMode: Always) and pipe's stdin "
				 "is not one: log in first, or set "
				 "interactiveMode: IfAvailable",
				 x->command);
	*out = xcalloc(1, sizeof(**out));
	(*out)->kc = kc;
	strbuf_init(&(*out)->token, 0);
	return 0;
}

void kube_auth_free(struct kube_auth *a)
{
	if (!a)
		return;
	wipe_buf(&a->token);
	strbuf_release(&a->token);
	free(a->cert_pem);
	wipe_str(&a->key_pem);
	free(a);
}

void kube_auth_invalidate(struct kube_auth *a)
{
	a->have = 0;
}

unsigned kube_auth_client_cert(const struct kube_auth *a, const char **cert_pem,
			       const char **key_pem)
{
	int plugin = a->cert_pem != NULL;

	*cert_pem = plugin ? a->cert_pem : a->kc->cert_pem;
	*key_pem = plugin ? a->key_pem : a->kc->key_pem;
	return a->cert_gen;
}

/* -------- the token file -------- */

static int read_token_file(struct kube_auth *a, struct error *err)
{
	const char *path = a->kc->token_file;
	struct strbuf sb = STRBUF_INIT;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n = fd < 0 ? -1 : strbuf_read_fd(&sb, fd, TOKEN_MAX);

	if (fd >= 0)
		close(fd);
	if (n < 0) {
		strbuf_release(&sb);
		return error_set(err, EXIT_ENV,
				 "cannot read token file '%s': %s", path,
				 strerror(errno));
	}
	while (sb.len && strchr(" \t\r\n", sb.buf[sb.len - 1]))
		strbuf_setlen(&sb, sb.len - 1);
	wipe_buf(&a->token);
	strbuf_add(&a->token, sb.buf, sb.len);
	wipe_buf(&sb);
	strbuf_release(&sb);
	if (!a->token.len)
		return error_set(err, EXIT_ENV, "token file '%s' is empty",
				 path);
	a->read_ms = now_ms();
	a->have = 1;
	return 0;
}

/* -------- the exec plugin -------- */

/* The ExecCredential request given in KUBERNETES_EXEC_INFO. */
static void exec_info(const struct kube_config *kc, struct strbuf *out)
{
	struct json *j = json_new_object();

	json_set_str(j, "apiVersion", kc->exec.api_version);
	json_set_str(j, "kind", "ExecCredential");
	json_set_bool(j, "spec.interactive", kc->exec.interactive);
	if (kc->exec.provide_cluster_info) {
		struct strbuf ca = STRBUF_INIT;

		json_set_str(j, "spec.cluster.server", kc->server);
		if (kc->tls_server_name)
			json_set_str(j, "spec.cluster.tls-server-name",
				     kc->tls_server_name);
		if (kc->insecure)
			json_set_bool(
				j, "spec.cluster.insecure-skip-tls-verify", 1);
		if (kc->ca_pem) {
			base64_encode(&ca, kc->ca_pem, strlen(kc->ca_pem));
			json_set_str(j,
				     "spec.cluster.certificate-authority-data",
				     ca.buf);
		}
		strbuf_release(&ca);
	}
	json_dump(j, out);
	json_free(j);
}

/* RFC 3339 ("2026-12-04T19:30:00Z", "...00.123+01:00") -> seconds. */
static int parse_time(const char *s, time_t *out)
{
	struct tm tm;
	const char *p;
	int sign, hh, mm;

	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	*out = timegm(&tm);
	if ((*p == 'Z' || *p == 'z') && !p[1])
		return 0;
	if ((*p != '+' && *p != '-') ||
	    sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || strlen(p) != 6)
		return -1;
	sign = *p == '+' ? 1 : -1;
	*out -= sign * (hh * 3600 + mm * 60);
	return 0;
}

/* Read the plugin's ExecCredential out of what it printed. */
static int take_credential(struct kube_auth *a, const char *name,
			   const struct strbuf *out, struct error *err)
{
	struct json *j = NULL;
	struct error jerr = ERROR_INIT;
	const char *token, *cert, *key, *exp, *ver;
	int ret = -1;

	/* jansson's message quotes the text near the problem: not shown */
	if (json_parse(&j, out->buf, out->len, &jerr)) {
		error_set(err, EXIT_ENV,
			  "exec plugin '%s' printed no valid ExecCredential "
			  "JSON on stdout",
			  name);
		goto out;
	}
	ver = json_get_str(j, "apiVersion");
	token = json_get_str(j, "status.token");
	cert = json_get_str(j, "status.clientCertificateData");
	key = json_get_str(j, "status.clientKeyData");
	exp = json_get_str(j, "status.expirationTimestamp");
	if (!ver || strcmp(ver, a->kc->exec.api_version) ||
	    !json_get_str(j, "kind") ||
	    strcmp(json_get_str(j, "kind"), "ExecCredential")) {
		error_set(err, EXIT_ENV,
			  "exec plugin '%s' did not answer with an "
			  "ExecCredential of apiVersion '%s'",
			  name, a->kc->exec.api_version);
		goto out;
	}
	if ((!token || !*token) && (!cert || !key || !*cert || !*key)) {
		error_set(err, EXIT_ENV,
			  "exec plugin '%s' gave neither status.token nor "
			  "status.clientCertificateData and clientKeyData",
			  name);
		goto out;
	}
	if (exp && parse_time(exp, &a->expiry)) {
		error_set(err, EXIT_ENV,
			  "exec plugin '%s' gave a status.expirationTimestamp "
			  "that is not RFC 3339 (2006-01-02T15:04:05Z)",
			  name);
		goto out;
	}
	if (!exp)
		a->expiry = 0;
	wipe_buf(&a->token);
	strbuf_addstr(&a->token, token ? token : "");
	free(a->cert_pem);
	wipe_str(&a->key_pem);
	a->cert_pem = cert && key && *cert && *key ? xstrdup(cert) : NULL;
	a->key_pem = a->cert_pem ? xstrdup(key) : NULL;
	a->cert_gen++;
	a->have = 1;
	ret = 0;
out:
	json_free(j);
	error_release(&jerr);
	return ret;
}

/* The first line of the plugin's stderr, for the message. */
static void first_line(const struct strbuf *errout, struct strbuf *msg)
{
	const char *s = errout->buf;
	size_t n;

	s += strspn(s, " \t\r\n");
	n = strcspn(s, "\r\n");
	if (n > 300)
		n = 300;
	if (n)
		strbuf_addf(msg, ": %.*s", (int)n, s);
}

static int run_plugin(struct kube_auth *a, struct error *err)
{
	const struct kube_exec *x = &a->kc->exec;
	struct strvec argv = STRVEC_INIT, env = STRVEC_INIT;
	struct strbuf info = STRBUF_INIT, out = STRBUF_INIT;
	struct strbuf errout = STRBUF_INIT;
	struct proc_run r = {0};
	int status, ret = -1;

	strvec_push(&argv, x->command);
	strvec_pushv(&argv, x->args);
	strvec_pushv(&env, x->env);
	exec_info(a->kc, &info);
	strvec_pushf(&env, "KUBERNETES_EXEC_INFO=%s", info.buf);
	r.argv = argv.v;
	r.env = env.v;
	r.keep_stdin = x->interactive;
	status = proc_capture(&r, &out, &errout, err);
	if (status < 0) {
		error_prefix(err, "exec plugin: ");
	} else if (status == 127 && !plugin_exists(x->command)) {
		not_found(a->kc, err); /* removed since kube_auth_new() */
	} else if (status) {
		error_set(err, EXIT_ENV,
			  "exec plugin '%s' failed (exit status %d)",
			  x->command, status);
		first_line(&errout, &err->msg);
	} else {
		ret = take_credential(a, x->command, &out, err);
	}
	wipe_buf(&out);
	strbuf_release(&out);
	strbuf_release(&errout);
	strbuf_release(&info);
	for (size_t i = 0; i < env.nr; i++)
		explicit_bzero(env.v[i], strlen(env.v[i]));
	strvec_clear(&env);
	strvec_clear(&argv);
	return ret;
}

/* -------- the bearer token now -------- */

static int fresh(const struct kube_auth *a)
{
	const struct kube_config *kc = a->kc;

	if (!a->have)
		return 0;
	if (kc->token_file)
		return now_ms() - a->read_ms < KUBE_AUTH_FILE_TTL_MS;
	return !a->expiry || time(NULL) < a->expiry - KUBE_AUTH_EARLY_S;
}

int kube_auth_headers(struct kube_auth *a, struct strbuf *bearer,
		      struct error *err)
{
	const struct kube_config *kc = a->kc;

	wipe_buf(bearer);
	if (kc->token) {
		strbuf_addstr(bearer, kc->token);
		return 0;
	}
	if (!kc->token_file && !kc->exec.command)
		return 0;
	if (!fresh(a) &&
	    (kc->token_file ? read_token_file(a, err) : run_plugin(a, err))) {
		a->have = 0;
		return -1;
	}
	strbuf_add(bearer, a->token.buf, a->token.len);
	return 0;
}
