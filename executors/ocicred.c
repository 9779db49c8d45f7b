/* Registry credentials from Docker's config.json and its credential
 * helpers (executors/oci.h). Secrets are wiped when freed and never put in
 * a message. */
#include "executors/json.h"
#include "executors/oci.h"
#include "util/proc.h"
#include "util/base64.h"
#include "util/sha256.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HUB_KEY "https://index.docker.io/v1/"

static void wipe_free(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

static void wipe_strbuf(struct strbuf *sb)
{
	explicit_bzero(sb->buf, sb->len);
	strbuf_release(sb);
}

void oci_cred_release(struct oci_cred *c)
{
	free(c->user);
	wipe_free(c->secret);
	memset(c, 0, sizeof(*c));
}

static int is_hub(const char *host)
{
	return !strcmp(host, "docker.io");
}

/* obj's member for host, under any of the keys Docker has used for it
 * (with a scheme and a path in older files; Docker Hub's own key). */
static const struct json *find_entry(const struct json *obj, const char *host)
{
	static const char *const hub[] = {HUB_KEY, "docker.io",
					  "index.docker.io",
					  "registry-1.docker.io"};
	static const char *const forms[][2] = {
		{"", ""},	   {"https://", ""},	 {"http://", ""},
		{"https://", "/"}, {"https://", "/v1/"}, {"https://", "/v2/"},
	};
	const struct json *v = NULL;

	for (size_t i = 0; is_hub(host) && !v && i < ARRAY_SIZE(hub); i++)
		v = json_member(obj, hub[i]);
	for (size_t i = 0; !v && i < ARRAY_SIZE(forms); i++) {
		char *key = xstrfmt("%s%s%s", forms[i][0], host, forms[i][1]);

		v = json_member(obj, key);
		free(key);
	}
	return v;
}

/* auths.{host}: "auth" is base64 "user:pass"; "identitytoken" a refresh
 * token. Returns 1 when it gave credentials, 0, or -1. */
static int from_auth(const struct json *entry, struct oci_cred *cred,
		     const char *host, struct error *err)
{
	const char *auth = json_get_str(entry, "auth");
	const char *idtok = json_get_str(entry, "identitytoken");
	struct strbuf plain = STRBUF_INIT;
	char *colon;

	if (idtok && *idtok) {
		cred->user = xstrdup("<token>");
		cred->secret = xstrdup(idtok);
		cred->identity_token = 1;
		return 1;
	}
	if (!auth || !*auth)
		return 0;
	if (base64_decode(&plain, auth, strlen(auth)) ||
	    !(colon = memchr(plain.buf, ':', plain.len)) ||
	    strlen(plain.buf) != plain.len) {
		wipe_strbuf(&plain);
		return error_set(err, EXIT_ENV,
				 "docker config: the 'auth' of '%s' is not "
				 "base64 of user:password",
				 host);
	}
	cred->user = xstrndup(plain.buf, (size_t)(colon - plain.buf));
	cred->secret = xstrdup(colon + 1);
	wipe_strbuf(&plain);
	return 1;
}

int oci_config_lookup(const char *text, size_t len, const char *host,
		      struct oci_cred *cred, char **helper, struct error *err)
{
	struct json *j = NULL;
	const struct json *entry;
	const char *name;
	int r = 0;

	memset(cred, 0, sizeof(*cred));
	*helper = NULL;
	if (json_parse(&j, text, len, err)) {
		/* jansson's reason may quote the text, a secret: cut it */
		char *why = strstr(err->msg.buf, ": ");

		if (why)
			strbuf_setlen(&err->msg, (size_t)(why - err->msg.buf));
		error_prefix(err, "docker config: ");
		return -1;
	}
	name = json_get_str(find_entry(json_member(j, "credHelpers"), host),
			    "");
	if (name && *name) {
		*helper = xstrdup(name);
		r = 2;
		goto out;
	}
	entry = find_entry(json_member(j, "auths"), host);
	if (entry && (r = from_auth(entry, cred, host, err)))
		goto out;
	name = json_get_str(j, "credsStore");
	if (name && *name) {
		*helper = xstrdup(name);
		r = 2;
	}
out:
	json_free(j);
	return r;
}

int oci_helper_parse(const char *text, size_t len, struct oci_cred *cred,
		     struct error *err)
{
	struct json *j = NULL;
	const char *user, *secret;

	memset(cred, 0, sizeof(*cred));
	if (json_parse(&j, text, len, err))
		return -1;
	user = json_get_str(j, "Username");
	secret = json_get_str(j, "Secret");
	if (!user || !secret) {
		json_free(j);
		return error_set(err, EXIT_ENV,
				 "no Username and Secret in its answer");
	}
	cred->identity_token = !strcmp(user, "<token>");
	cred->user = xstrdup(user);
	cred->secret = xstrdup(secret);
	json_free(j);
	return 0;
}

/* "credentials not found" is how helpers say they have none. */
static int run_helper(const char *helper, const char *host,
		      struct oci_cred *cred, struct error *err)
{
	char *prog = xstrfmt("docker-credential-%s", helper);
	char *argv[] = {prog, "get", NULL};
	const char *server = is_hub(host) ? HUB_KEY : host;
	struct proc_run r = {.argv = argv,
			     .in = server,
			     .in_len = strlen(server),
			     .timeout_ms = 30000,
			     .max_out = 1 << 20};
	struct strbuf out = STRBUF_INIT, errout = STRBUF_INIT;
	int st = proc_capture(&r, &out, &errout, err), ret;

	if (st < 0) {
		ret = -1;
	} else if (st != 0) {
		ret = strstr(out.buf, "credentials not found") ||
				      strstr(errout.buf,
					     "credentials not found")
			      ? 0
			      : error_set(err, EXIT_ENV,
					  "'%s get' for '%s' exited with %d",
					  prog, server, st);
	} else if (oci_helper_parse(out.buf, out.len, cred, err)) {
		/* its output may hold a secret: not in the message */
		error_set(err, EXIT_ENV,
			  "'%s get' for '%s': its answer is not "
			  "{\"Username\", \"Secret\"}",
			  prog, server);
		ret = -1;
	} else {
		ret = 1;
	}
	wipe_strbuf(&out);
	wipe_strbuf(&errout);
	free(prog);
	return ret;
}

static void config_path(struct strbuf *out)
{
	const char *dir = getenv("DOCKER_CONFIG"), *home = getenv("HOME");

	if (dir && *dir)
		strbuf_addf(out, "%s/config.json", dir);
	else
		strbuf_addf(out, "%s/.docker/config.json", home ? home : "");
}

int oci_creds(const char *host, struct oci_cred *cred, struct error *err)
{
	struct strbuf path = STRBUF_INIT, text = STRBUF_INIT;
	char *helper = NULL;
	int r;

	memset(cred, 0, sizeof(*cred));
	config_path(&path);
	if (strbuf_read_file(&text, path.buf, 4096)) {
		r = errno == ENOENT
			    ? 0
			    : error_set(err, EXIT_ENV, "cannot read '%s': %s",
					path.buf, strerror(errno));
		goto out;
	}
	r = oci_config_lookup(text.buf, text.len, host, cred, &helper, err);
	if (r < 0)
		error_prefix(err, "%s: ", path.buf);
	if (r == 2)
		r = run_helper(helper, host, cred, err);
out:
	wipe_strbuf(&text);
	strbuf_release(&path);
	free(helper);
	return r;
}
