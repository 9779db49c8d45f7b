/* One kubeconfig context decoded into struct kube_config: its namespace,
 * its cluster (server, CA, TLS) and its user (client certificate, token,
 * basic auth, exec plugin), with certificates read into memory. */
#include "pipefile/kubeint.h"
#include "util/base64.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KC_MAX_PEM (1u << 20) /* a certificate or key file */

/* The mapping values are read from, and what to call it in messages:
 * "cluster 'prod'", "user 'me': exec". */
struct where {
	struct kc *k;
	const struct kc_entry *e;
	const struct ynode *map;
	const char *section; /* NULL, or "exec" */
};

__attribute__((format(printf, 4, 5))) static int wfail(const struct where *w,
						       const struct ynode *n,
						       int code,
						       const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT;
	va_list ap;
	int ret;

	strbuf_addf(&msg, "%s '%s': ", kc_kind_name[w->e->kind],
		    w->e->name->str);
	if (w->section)
		strbuf_addf(&msg, "%s: ", w->section);
	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	ret = kc_fail(w->k, w->e->f, n ? n : w->e->name, code, "%s", msg.buf);
	strbuf_release(&msg);
	return ret;
}

/* A string: *out NULL when key is absent, null or ""; -1 for a list or
 * mapping. *node (may be NULL) gets the value's node. */
static int get_str(const struct where *w, const char *key,
		   const struct ynode **node, const char **out)
{
	const struct ynode *n = kc_get(w->map, key);

	*out = NULL;
	if (node)
		*node = n;
	if (!n || (n->kind == YNODE_SCALAR && pipefile_yaml_is_null(n)))
		return 0;
	if (n->kind != YNODE_SCALAR)
		return wfail(w, n, EXIT_ENV, "'%s' must be a string", key);
	*out = n->nr ? n->str : NULL;
	return 0;
}

static int get_bool(const struct where *w, const char *key, int *out)
{
	static const char *const yes[] = {"true", "True", "TRUE"};
	static const char *const no[] = {"false", "False", "FALSE"};
	const struct ynode *n;
	const char *s;

	*out = 0;
	if (get_str(w, key, &n, &s))
		return -1;
	if (!s)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcmp(s, yes[i]))
			return *out = 1, 0;
		if (!strcmp(s, no[i]))
			return 0;
	}
	return wfail(w, n, EXIT_ENV, "'%s' must be true or false", key);
}

/* A path of the kubeconfig, relative ones against the file's folder (as
 * kubectl resolves them). Caller frees. */
static char *resolve(const struct where *w, const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	return xstrfmt("%s%s", w->e->f->dir, path);
}

/* key_data (base64) or else the file at key_path, read into *out: a PEM
 * block is required. Neither given: *out stays NULL. */
static int read_pem(const struct where *w, const char *key_path,
		    const char *key_data, char **out)
{
	const struct ynode *n, *nd;
	const char *path, *data, *key = key_data;
	struct strbuf sb = STRBUF_INIT;
	char *full = NULL;
	int ret = -1;

	if (get_str(w, key_path, &n, &path) || get_str(w, key_data, &nd, &data))
		return -1;
	if (data) {
		n = nd;
		if (base64_decode(&sb, data, nd->nr)) {
			wfail(w, n, EXIT_ENV,
			      "'%s' is not valid base64 (write the PEM file's "
			      "base64, or name the file with '%s')",
			      key_data, key_path);
			goto out;
		}
	} else if (path) {
		key = key_path;
		full = resolve(w, path);
		if (kc_read_file(full, KC_MAX_PEM, &sb)) {
			wfail(w, n, EXIT_ENV, "cannot read %s '%s': %s",
			      key_path, full, kc_strerror(errno));
			goto out;
		}
	} else {
		return 0;
	}
	if (!memmem(sb.buf, sb.len, "-----BEGIN ", 11)) {
		wfail(w, n, EXIT_ENV,
		      "'%s' does not hold PEM data (-----BEGIN ...)", key);
		goto out;
	}
	*out = xmemdupz(sb.buf, sb.len);
	ret = 0;
out:
	explicit_bzero(sb.buf, sb.len);
	strbuf_release(&sb);
	free(full);
	return ret;
}

/* https://host:port without a trailing '/'; "host:port" gets https://. */
static int set_server(const struct where *w, const struct ynode *n,
		      const char *s, struct kube_config *out)
{
	const char *scheme = strstr(s, "://");
	size_t len = strlen(s);

	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return wfail(w, n, EXIT_ENV,
				     "'server' has a space or control "
				     "character");
	if (scheme && strncmp(s, "https://", 8) && strncmp(s, "http://", 7))
		return wfail(w, n, EXIT_ENV,
			     "'server' must be an https:// (or http://) URL");
	while (len && s[len - 1] == '/')
		len--;
	if (len <= (scheme ? (size_t)(scheme - s) + 3 : 0))
		return wfail(w, n, EXIT_ENV, "'server' names no host");
	out->server = xstrfmt("%s%.*s", scheme ? "" : "https://", (int)len, s);
	return 0;
}

static int decode_cluster(struct kc *k, const struct kc_entry *e,
			  struct kube_config *out)
{
	struct where w = {k, e, e->body, NULL};
	const struct ynode *n;
	const char *server, *name;

	if (!e->body || e->body->kind != YNODE_MAP)
		return wfail(&w, e->body, EXIT_ENV,
			     "no 'cluster' mapping (with 'server')");
	if (get_str(&w, "server", &n, &server))
		return -1;
	if (!server)
		return wfail(&w, n, EXIT_ENV,
			     "no 'server' (the API server's URL, e.g. "
			     "https://host:6443)");
	if (set_server(&w, n, server, out) ||
	    read_pem(&w, "certificate-authority", "certificate-authority-data",
		     &out->ca_pem) ||
	    get_bool(&w, "insecure-skip-tls-verify", &out->insecure) ||
	    get_str(&w, "tls-server-name", NULL, &name))
		return -1;
	out->tls_server_name = name ? xstrdup(name) : NULL;
	return 0;
}

static const char *const api_versions[] = {
	"client.authentication.k8s.io/v1",
	"client.authentication.k8s.io/v1beta1",
};

static int exec_args(const struct where *w, struct kube_exec *x)
{
	const struct ynode *args = kc_get(w->map, "args");
	struct strvec v = STRVEC_INIT;

	if (args && !pipefile_yaml_is_null(args)) {
		if (args->kind != YNODE_SEQ)
			return wfail(w, args, EXIT_ENV,
				     "'args' must be a list of strings");
		for (uint32_t i = 0; i < args->nr; i++) {
			if (args->items[i]->kind != YNODE_SCALAR) {
				strvec_clear(&v);
				return wfail(w, args->items[i], EXIT_ENV,
					     "each of 'args' must be a string");
			}
			strvec_push(&v, args->items[i]->str);
		}
	}
	x->args = xcalloc(v.nr + 1, sizeof(char *));
	memcpy(x->args, v.v, v.nr * sizeof(char *));
	if (v.nr)
		free(v.v);
	return 0;
}

/* env: [{name, value}] -> "NAME=value"; the values are secrets. */
static int exec_env(const struct where *w, struct kube_exec *x)
{
	const struct ynode *env = kc_get(w->map, "env");
	size_t nr = env && env->kind == YNODE_SEQ ? env->nr : 0;

	x->env = xcalloc(nr + 1, sizeof(char *));
	if (env && !pipefile_yaml_is_null(env) && env->kind != YNODE_SEQ)
		return wfail(w, env, EXIT_ENV,
			     "'env' must be a list of {name, value}");
	for (size_t i = 0; i < nr; i++) {
		const struct ynode *it = env->items[i];
		const struct ynode *name = kc_get(it, "name");
		const struct ynode *value = kc_get(it, "value");

		if (!name || name->kind != YNODE_SCALAR || !name->nr ||
		    strchr(name->str, '='))
			return wfail(w, name ? name : it, EXIT_ENV,
				     "each of 'env' needs a 'name' (without "
				     "'=')");
		if (value && value->kind != YNODE_SCALAR)
			return wfail(w, value, EXIT_ENV,
				     "the 'value' of env '%s' must be a string",
				     name->str);
		x->env[i] = xstrfmt("%s=%s", name->str,
				    value && !pipefile_yaml_is_null(value)
					    ? value->str
					    : "");
	}
	return 0;
}

static int decode_exec(struct kc *k, const struct kc_entry *e,
		       const struct ynode *map, struct kube_exec *x)
{
	struct where w = {k, e, map, "exec"};
	const struct ynode *n, *vn;
	const char *cmd, *ver, *hint, *mode;
	size_t i;

	if (map->kind != YNODE_MAP)
		return wfail(&w, map, EXIT_ENV,
			     "must be a mapping (command, args, env, "
			     "apiVersion)");
	if (get_str(&w, "command", &n, &cmd) ||
	    get_str(&w, "apiVersion", &vn, &ver) ||
	    get_str(&w, "installHint", NULL, &hint) ||
	    get_str(&w, "interactiveMode", &n, &mode) ||
	    get_bool(&w, "provideClusterInfo", &x->provide_cluster_info))
		return -1;
	if (!cmd)
		return wfail(&w, map, EXIT_ENV, "no 'command'");
	for (i = 0; ver && i < ARRAY_SIZE(api_versions); i++)
		if (!strcmp(ver, api_versions[i]))
			break;
	if (!ver || i == ARRAY_SIZE(api_versions))
		return wfail(&w, vn ? vn : map, EXIT_ENV,
			     "'apiVersion' must be %s or %s", api_versions[0],
			     api_versions[1]);
	if (mode && strcmp(mode, "Never") && strcmp(mode, "IfAvailable") &&
	    strcmp(mode, "Always"))
		return wfail(&w, n, EXIT_ENV,
			     "'interactiveMode' must be Never, IfAvailable or "
			     "Always");
	/* a relative path with a '/' is the kubeconfig's, as kubectl has it;
	 * a bare name is looked up on PATH */
	x->command = strchr(cmd, '/') ? resolve(&w, cmd) : xstrdup(cmd);
	x->api_version = xstrdup(ver);
	x->install_hint = hint ? xstrdup(hint) : NULL;
	x->interactive = mode && !strcmp(mode, "Always");
	return exec_args(&w, x) || exec_env(&w, x) ? -1 : 0;
}

/* Secrets and paths of the user that are plain strings. */
static int user_strings(const struct where *w, struct kube_config *out)
{
	const struct ynode *n;
	const char *token, *file, *user, *pass;

	if (get_str(w, "token", NULL, &token) ||
	    get_str(w, "tokenFile", &n, &file) ||
	    get_str(w, "username", NULL, &user) ||
	    get_str(w, "password", NULL, &pass))
		return -1;
	if ((token || file) && (user || pass))
		return wfail(w, w->map, EXIT_ENV,
			     "both a token and a username/password are set: "
			     "keep one");
	out->token = token ? xstrdup(token) : NULL;
	out->username = user ? xstrdup(user) : NULL;
	out->password = pass ? xstrdup(pass) : NULL;
	if (file && !token) {
		out->token_file = resolve(w, file);
		if (access(out->token_file, R_OK))
			return wfail(w, n, EXIT_ENV,
				     "cannot read tokenFile '%s': %s",
				     out->token_file, strerror(errno));
	}
	return 0;
}

static int decode_user(struct kc *k, const struct kc_entry *e,
		       struct kube_config *out)
{
	struct where w = {k, e, e->body, NULL};
	const struct ynode *exec = kc_get(e->body, "exec");
	const struct ynode *ap = kc_get(e->body, "auth-provider");

	if (!e->body || pipefile_yaml_is_null(e->body))
		return 0; /* no credentials: an open (or proxied) cluster */
	if (e->body->kind != YNODE_MAP)
		return wfail(&w, e->body, EXIT_ENV,
			     "'user' must be a mapping (token, exec, "
			     "client-certificate, ...)");
	if (read_pem(&w, "client-certificate", "client-certificate-data",
		     &out->cert_pem) ||
	    read_pem(&w, "client-key", "client-key-data", &out->key_pem) ||
	    user_strings(&w, out))
		return -1;
	if (!out->cert_pem != !out->key_pem)
		return wfail(&w, e->body, EXIT_ENV,
			     "a client certificate needs both "
			     "client-certificate and client-key");
	if (exec && !pipefile_yaml_is_null(exec) &&
	    decode_exec(k, e, exec, &out->exec))
		return -1;
	if (ap && !out->exec.command && !out->token && !out->token_file &&
	    !out->cert_pem)
		return wfail(&w, ap, EXIT_ENV,
			     "'auth-provider' is not supported (kubectl "
			     "dropped it too): use an exec plugin such as "
			     "gke-gcloud-auth-plugin or kubelogin");
	return 0;
}

int kc_decode_context(struct kc *k, const struct kc_entry *ctx,
		      struct kube_config *out)
{
	struct where w = {k, ctx, ctx->body, NULL};
	const struct ynode *cn, *un;
	const char *cluster, *user, *ns;
	const struct kc_entry *ce, *ue = NULL;
	struct strbuf known = STRBUF_INIT;

	if (!ctx->body || ctx->body->kind != YNODE_MAP)
		return wfail(&w, ctx->body, EXIT_ENV,
			     "no 'context' mapping (with 'cluster' and "
			     "'user')");
	if (get_str(&w, "cluster", &cn, &cluster) ||
	    get_str(&w, "user", &un, &user) ||
	    get_str(&w, "namespace", NULL, &ns))
		return -1;
	if (!cluster)
		return wfail(&w, cn, EXIT_ENV, "no 'cluster'");
	ce = kc_find(k, KC_CLUSTERS, cluster);
	if (user)
		ue = kc_find(k, KC_USERS, user);
	if (!ce || (user && !ue)) {
		kc_known(k, ce ? KC_USERS : KC_CLUSTERS, &known);
		wfail(&w, ce ? un : cn, EXIT_ENV,
		      "%s '%s' is not defined in the kubeconfig (%s)",
		      ce ? "user" : "cluster", ce ? user : cluster, known.buf);
		strbuf_release(&known);
		return -1;
	}
	out->namespace = ns ? xstrdup(ns) : NULL;
	if (decode_cluster(k, ce, out) || (ue && decode_user(k, ue, out)))
		return -1;
	return 0;
}
