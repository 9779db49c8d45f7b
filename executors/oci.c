/* Tags resolved to digests at the registry (executors/oci.h): HEAD the
 * manifest, answer a 401 with a token or Basic credentials, keep what was
 * learnt for the run. */
#include "executors/http.h"
#include "executors/json.h"
#include "executors/oci.h"
#include "util/base64.h"
#include "util/sha256.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_MS 30000
#define CERTS_D "/etc/docker/certs.d"
#define ACCEPT                                                                 \
	"Accept: application/vnd.oci.image.index.v1+json, "                    \
	"application/vnd.oci.image.manifest.v1+json, "                         \
	"application/vnd.docker.distribution.manifest.list.v2+json, "          \
	"application/vnd.docker.distribution.manifest.v2+json"

struct site { /* a base URL, a registry's or a token server's */
	char *base;
	struct http *http;
};

struct reg {
	char *registry; /* "ghcr.io", "127.0.0.1:5000" */
	char *auth;	/* "Authorization: …" once earned; a secret */
	struct oci_cred cred;
	int creds; /* 0: not looked up; 1: found; -1: none */
};

struct pin {
	char *image, *pinned;
};

struct oci {
	struct site *sites;
	size_t nr_sites, alloc_sites;
	struct reg *regs;
	size_t nr_regs, alloc_regs;
	struct pin *pins;
	size_t nr_pins, alloc_pins;
};

struct oci *oci_new(void)
{
	return xcalloc(1, sizeof(struct oci));
}

static void wipe_free(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

void oci_free(struct oci *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->nr_sites; i++) {
		free(o->sites[i].base);
		http_free(o->sites[i].http);
	}
	for (size_t i = 0; i < o->nr_regs; i++) {
		free(o->regs[i].registry);
		wipe_free(o->regs[i].auth);
		oci_cred_release(&o->regs[i].cred);
	}
	for (size_t i = 0; i < o->nr_pins; i++) {
		free(o->pins[i].image);
		free(o->pins[i].pinned);
	}
	free(o->sites);
	free(o->regs);
	free(o->pins);
	free(o);
}

/* certs.d/HOST/NAME (Docker's per-registry certificates) into out, when
 * it is there. Returns 0, or -1 when it is there but cannot be read. */
static int read_cert(const char *host, const char *name, struct strbuf *out,
		     struct error *err)
{
	const char *dir = getenv("PIPE_REGISTRY_CERTS_D");
	char *path =
		xstrfmt("%s/%s/%s", dir && *dir ? dir : CERTS_D, host, name);
	int ret = 0;

	if (strbuf_read_file(out, path, 0) && errno != ENOENT)
		ret = error_set(err, EXIT_ENV, "cannot read '%s': %s", path,
				strerror(errno));
	free(path);
	return ret;
}

/* The http handle for base, made on first use with the CA and client
 * certificate of certs.d/HOST/ (ca.crt, client.cert, client.key) when an
 * https host has them, as Docker does. */
static int site_http(struct oci *o, const char *base, struct http **out,
		     struct error *err)
{
	struct http_target t = {.base_url = base};
	struct strbuf ca = STRBUF_INIT, cert = STRBUF_INIT, key = STRBUF_INIT;
	const char *host = base + strlen("https://");
	struct site *s;
	int ret = -1;

	for (size_t i = 0; i < o->nr_sites; i++)
		if (!strcmp(o->sites[i].base, base)) {
			*out = o->sites[i].http;
			return 0;
		}
	if (!strncmp(base, "https://", 8) &&
	    (read_cert(host, "ca.crt", &ca, err) ||
	     read_cert(host, "client.cert", &cert, err) ||
	     read_cert(host, "client.key", &key, err)))
		goto out;
	t.ca_pem = ca.len ? ca.buf : NULL;
	t.cert_pem = cert.len && key.len ? cert.buf : NULL;
	t.key_pem = cert.len && key.len ? key.buf : NULL;
	if (http_new(out, &t, err))
		goto out;
	ALLOC_GROW(o->sites, o->nr_sites + 1, o->alloc_sites);
	s = &o->sites[o->nr_sites++];
	s->base = xstrdup(base);
	s->http = *out;
	ret = 0;
out:
	strbuf_release(&ca);
	strbuf_release(&cert);
	explicit_bzero(key.buf, key.len);
	strbuf_release(&key);
	return ret;
}

static struct reg *find_reg(struct oci *o, const char *registry)
{
	struct reg *r;

	for (size_t i = 0; i < o->nr_regs; i++)
		if (!strcmp(o->regs[i].registry, registry))
			return &o->regs[i];
	ALLOC_GROW(o->regs, o->nr_regs + 1, o->alloc_regs);
	r = &o->regs[o->nr_regs++];
	memset(r, 0, sizeof(*r));
	r->registry = xstrdup(registry);
	return r;
}

/* One request to base + path; a transport error is not a failure here. */
static int request(struct oci *o, const char *base, struct http_request *req,
		   struct http_xfer **x, struct error *err)
{
	struct http *h;

	req->timeout_ms = REQUEST_MS;
	if (site_http(o, base, &h, err))
		return -1;
	return http_run(h, req, x, err);
}

static int unreachable(const struct http_xfer *x, const char *image,
		       const char *what, const char *url, struct error *err)
{
	const char *why = http_xfer_error(x);

	if (!strncmp(url, "https://", 8) && strstr(why, "certificate"))
		return error_set(err, EXIT_ENV,
				 "image '%s': cannot reach %s at %s: %s\n"
				 "hint: a private CA's certificate goes in "
				 "%s/%s/ca.crt",
				 image, what, url, why, CERTS_D, url + 8);
	return error_set(err, EXIT_ENV,
			 "image '%s': cannot reach %s at %s: %s\n"
			 "hint: is it up and reachable from here?%s",
			 image, what, url, why,
			 !strncmp(url, "https://", 8)
				 ? " For a registry on plain http, list it "
				   "in PIPE_INSECURE_REGISTRIES=host:port,..."
				 : "");
}

/* ------------------------------------------------------------------ */
/* Authentication */

static int load_creds(struct reg *r, const char *host, struct error *err)
{
	int found;

	if (r->creds)
		return 0;
	found = oci_creds(host, &r->cred, err);
	if (found < 0)
		return -1;
	r->creds = found ? 1 : -1;
	return 0;
}

static void basic_header(const struct oci_cred *c, struct strbuf *out)
{
	struct strbuf plain = STRBUF_INIT;

	strbuf_addf(&plain, "%s:%s", c->user, c->secret);
	strbuf_addstr(out, "Authorization: Basic ");
	base64_encode(out, plain.buf, plain.len);
	explicit_bzero(plain.buf, plain.len);
	strbuf_release(&plain);
}

/* "?key=val" after a path, "&key=val" after a query or a form */
static void add_param(struct strbuf *q, const char *key, const char *val)
{
	if (!val)
		return;
	strbuf_addch(q, strchr(q->buf, '?') || strchr(q->buf, '=') ? '&' : '?');
	strbuf_addf(q, "%s=", key);
	http_escape(q, val);
}

/* "https://h:1/p?q" -> base "https://h:1", path "/p?q" */
static int split_url(const char *url, struct strbuf *base, const char **path)
{
	const char *p;

	if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7))
		return -1;
	p = strchr(url, ':') + 3;
	p += strcspn(p, "/?");
	strbuf_add(base, url, (size_t)(p - url));
	*path = p;
	return 0;
}

/* What a token server's error body says: Docker Hub's "details", OAuth2's
 * "error_description" or "error", else as the APIs say it. */
static void token_error(const struct strbuf *body, struct strbuf *out)
{
	static const char *const keys[] = {"details", "error_description",
					   "error"};
	struct error err = ERROR_INIT;
	struct json *j = NULL;
	const char *s = NULL;

	if (!json_parse(&j, body->buf, body->len, &err))
		for (size_t i = 0; i < ARRAY_SIZE(keys) && !s; i++)
			s = json_get_str(j, keys[i]);
	if (s)
		strbuf_addf(out, "%.300s", s);
	else
		json_error_message(body->buf, body->len, out);
	json_free(j);
	error_release(&err);
}

/* The realm's request: a GET with Basic credentials when there are any,
 * a POST of the refresh token when they are an identity token (OAuth2, as
 * Docker does). q holds the path, form the body or the header (secret). */
static void token_request(const struct reg *r, const struct oci_challenge *ch,
			  const char *scope, struct strbuf *q,
			  struct strbuf *form, struct http_request *req)
{
	if (r->creds > 0 && r->cred.identity_token) {
		req->method = "POST";
		req->content_type = "application/x-www-form-urlencoded";
		strbuf_addstr(form, "grant_type=refresh_token&client_id=pipe");
		add_param(form, "service", ch->service);
		add_param(form, "scope", scope);
		add_param(form, "refresh_token", r->cred.secret);
		req->body = form->buf;
		req->body_len = form->len;
		return;
	}
	add_param(q, "service", ch->service);
	add_param(q, "scope", scope);
	if (r->creds > 0)
		basic_header(&r->cred, form);
}

/* The token in a token server's answer ("token" or "access_token"),
 * appended to token (empty on entry). */
static int token_answer(const struct http_xfer *x, const struct reg *r,
			const char *realm, const char *image,
			struct strbuf *token, struct error *err)
{
	long st = http_xfer_status(x);
	const struct strbuf *body = http_xfer_body(x);
	struct strbuf msg = STRBUF_INIT;
	struct json *j = NULL;
	const char *tok = NULL;

	if (st != 200) {
		token_error(body, &msg);
		error_set(err, EXIT_ENV,
			  "image '%s': unauthorized: the token server %s "
			  "answered %ld (%s)\nhint: %s `docker login %s`",
			  image, realm, st, msg.buf,
			  r->creds > 0 ? "check the credentials of"
				       : "log in with",
			  r->registry);
		strbuf_release(&msg);
		return -1;
	}
	/* not jansson's reason: it may quote the token */
	if (!json_parse(&j, body->buf, body->len, err)) {
		tok = json_get_str(j, "token");
		if (!tok || !*tok)
			tok = json_get_str(j, "access_token");
	}
	if (tok && *tok)
		strbuf_addstr(token, tok);
	else
		error_set(err, EXIT_ENV,
			  "image '%s': the token server %s sent no token",
			  image, realm);
	json_free(j);
	return token->len ? 0 : -1;
}

/* The token of a Bearer challenge, from its realm. */
static int fetch_token(struct oci *o, struct reg *r,
		       const struct oci_challenge *ch, const char *repo,
		       const char *image, struct strbuf *token,
		       struct error *err)
{
	struct strbuf base = STRBUF_INIT, q = STRBUF_INIT, form = STRBUF_INIT;
	char *scope = ch->scope ? xstrdup(ch->scope)
				: xstrfmt("repository:%s:pull", repo);
	const char *path;
	char *headers[2] = {NULL, NULL};
	struct http_request req = {.method = "GET", .headers = headers};
	struct http_xfer *x = NULL;
	int ret = -1;

	if (split_url(ch->realm, &base, &path)) {
		error_set(err, EXIT_ENV,
			  "image '%s': registry %s names a token realm that "
			  "is not an http(s) URL: '%s'",
			  image, r->registry, ch->realm);
		goto out;
	}
	strbuf_addstr(&q, path);
	token_request(r, ch, scope, &q, &form, &req);
	if (!req.body && form.len)
		headers[0] = form.buf;
	req.path = q.buf;
	if (request(o, base.buf, &req, &x, err))
		goto out;
	if (!http_xfer_status(x))
		unreachable(x, image, "the token server", ch->realm, err);
	else
		ret = token_answer(x, r, ch->realm, image, token, err);
out:
	http_xfer_free(x);
	explicit_bzero(form.buf, form.len);
	strbuf_release(&form);
	strbuf_release(&q);
	strbuf_release(&base);
	free(scope);
	return ret;
}

static int no_creds(const struct oci_ref *ref, const char *image,
		    struct error *err)
{
	return error_set(err, EXIT_ENV,
			 "image '%s': unauthorized at %s: no credentials\n"
			 "hint: log in with `docker login %s` (pipe reads "
			 "~/.docker/config.json or $DOCKER_CONFIG)",
			 image, ref->registry, ref->host);
}

/* Answer a 401's challenge: r->auth set for the retry. */
static int authorize(struct oci *o, struct reg *r, const struct oci_ref *ref,
		     const char *image, const char *challenge,
		     struct error *err)
{
	struct oci_challenge ch;
	struct strbuf hdr = STRBUF_INIT, tok = STRBUF_INIT;
	int ret = -1;

	if (!challenge || oci_challenge_parse(&ch, challenge))
		return error_set(err, EXIT_ENV,
				 "image '%s': registry %s asks for an "
				 "authentication pipe does not know: '%.200s'",
				 image, ref->registry,
				 challenge ? challenge : "(none)");
	if (load_creds(r, ref->host, err)) {
		error_prefix(err, "image '%s': credentials for %s: ", image,
			     ref->host);
		goto out;
	}
	if (!strcmp(ch.scheme, "basic")) {
		if (r->creds < 0) {
			no_creds(ref, image, err);
			goto out;
		}
		basic_header(&r->cred, &hdr);
	} else {
		if (fetch_token(o, r, &ch, ref->repo, image, &tok, err))
			goto out;
		strbuf_addf(&hdr, "Authorization: Bearer %s", tok.buf);
	}
	wipe_free(r->auth);
	r->auth = strbuf_detach(&hdr, NULL);
	ret = 0;
out:
	oci_challenge_release(&ch);
	explicit_bzero(tok.buf, tok.len);
	strbuf_release(&tok);
	return ret;
}

/* ------------------------------------------------------------------ */
/* The manifest */

/* method on the tag's manifest, through one 401 and its challenge. */
static int manifest(struct oci *o, struct reg *r, const struct oci_ref *ref,
		    const char *image, const char *method, struct http_xfer **x,
		    struct error *err)
{
	struct strbuf base = STRBUF_INIT, path = STRBUF_INIT;
	int ret = -1;

	strbuf_addf(&base, "%s://%s",
		    oci_insecure(ref->registry) ? "http" : "https",
		    ref->registry);
	strbuf_addf(&path, "/v2/%s/manifests/", ref->repo);
	http_escape(&path, ref->tag);
	for (int attempt = 0;; attempt++) {
		char *headers[] = {ACCEPT, r->auth, NULL};
		struct http_request req = {
			.method = method, .path = path.buf, .headers = headers};

		http_xfer_free(*x);
		*x = NULL;
		if (request(o, base.buf, &req, x, err))
			goto out;
		if (!http_xfer_status(*x)) {
			unreachable(*x, image, "the registry", base.buf, err);
			goto out;
		}
		if (http_xfer_status(*x) != 401 || attempt)
			break;
		if (authorize(o, r, ref, image,
			      http_xfer_header(*x, "WWW-Authenticate"), err))
			goto out;
	}
	ret = 0;
out:
	strbuf_release(&base);
	strbuf_release(&path);
	return ret;
}

static int valid_digest(const char *d)
{
	return d && !strncmp(d, "sha256:", 7) && strlen(d + 7) == 64 &&
	       strspn(d + 7, "0123456789abcdef") == 64;
}

/* The distribution API's error body: {"errors":[{"code","message"}]}. */
static void registry_error(const struct strbuf *body, struct strbuf *out)
{
	struct error err = ERROR_INIT;
	struct json *j = NULL;
	const struct json *e = NULL;
	const char *code = NULL, *msg = NULL;

	if (!json_parse(&j, body->buf, body->len, &err)) {
		e = json_array_at(json_get(j, "errors"), 0);
		code = json_get_str(e, "code");
		msg = json_get_str(e, "message");
	}
	if (code || msg)
		strbuf_addf(out, "%.60s%s%.300s", code ? code : "",
			    code && msg ? ": " : "", msg ? msg : "");
	else
		json_error_message(body->buf, body->len, out);
	json_free(j);
	error_release(&err);
}

/* A status other than 200, in words. */
static int bad_status(const struct http_xfer *x, const struct oci_ref *ref,
		      const char *image, struct error *err)
{
	long st = http_xfer_status(x);
	struct strbuf msg = STRBUF_INIT;
	const struct strbuf *body = http_xfer_body(x);

	if (st == 404)
		return error_set(err, EXIT_USAGE,
				 "image '%s' not found at %s\nhint: check "
				 "the name and the tag, and that it was pushed",
				 image, ref->registry);
	if (st == 401 || st == 403)
		return error_set(err, EXIT_ENV,
				 "image '%s': unauthorized at %s (HTTP %ld)\n"
				 "hint: check that it exists and that `docker "
				 "login %s` gives access to it",
				 image, ref->registry, st, ref->host);
	if (body->len) /* a HEAD's answer has none */
		registry_error(body, &msg);
	error_set(err, EXIT_ENV, "image '%s': registry %s answered %ld%s%s%s%s",
		  image, ref->registry, st, msg.len ? " (" : "", msg.buf,
		  msg.len ? ")" : "",
		  st == 429 ? "\nhint: a pull rate limit: log in (`docker "
			      "login`) or try again later"
			    : "");
	strbuf_release(&msg);
	return -1;
}

/* The digest: Docker-Content-Digest of a HEAD, else the sha256 of a GET's
 * body (checked against its header when it has one). */
static int fetch_digest(struct oci *o, const struct oci_ref *ref,
			const char *image, struct strbuf *digest,
			struct error *err)
{
	struct reg *r = find_reg(o, ref->registry);
	struct http_xfer *x = NULL;
	const char *d;
	int ret = -1;

	if (manifest(o, r, ref, image, "HEAD", &x, err))
		goto out;
	if (http_xfer_status(x) != 200) {
		bad_status(x, ref, image, err);
		goto out;
	}
	d = http_xfer_header(x, "Docker-Content-Digest");
	if (!d) {
		if (manifest(o, r, ref, image, "GET", &x, err))
			goto out;
		if (http_xfer_status(x) != 200) {
			bad_status(x, ref, image, err);
			goto out;
		}
		strbuf_addstr(digest, "sha256:");
		sha256_hex(http_xfer_body(x)->buf, http_xfer_body(x)->len,
			   digest);
		d = http_xfer_header(x, "Docker-Content-Digest");
		if (!d || !strcmp(d, digest->buf)) {
			ret = 0;
			goto out;
		}
	}
	if (!valid_digest(d)) {
		error_set(
			err, EXIT_ENV,
			"image '%s': registry %s sent a bad "
			"Docker-Content-Digest '%.100s' (want sha256:<64 hex>)",
			image, ref->registry, d);
		goto out;
	}
	if (digest->len) {
		error_set(err, EXIT_ENV,
			  "image '%s': the manifest from %s has digest %s, "
			  "not the %s it claims",
			  image, ref->registry, digest->buf, d);
		goto out;
	}
	strbuf_addstr(digest, d);
	ret = 0;
out:
	http_xfer_free(x);
	return ret;
}

int oci_resolve(struct oci *o, const char *image, struct strbuf *pinned,
		struct error *err)
{
	struct oci_ref ref;
	struct strbuf digest = STRBUF_INIT;
	struct pin *p;

	strbuf_reset(pinned);
	if (oci_ref_parse(&ref, image, err))
		return -1;
	if (ref.digest) {
		strbuf_addstr(pinned, image);
		goto out;
	}
	for (size_t i = 0; i < o->nr_pins; i++)
		if (!strcmp(o->pins[i].image, image)) {
			strbuf_addstr(pinned, o->pins[i].pinned);
			goto out;
		}
	if (fetch_digest(o, &ref, image, &digest, err)) {
		oci_ref_release(&ref);
		strbuf_release(&digest);
		return -1;
	}
	strbuf_addf(pinned, "%s/%s@%s", ref.host, ref.repo, digest.buf);
	ALLOC_GROW(o->pins, o->nr_pins + 1, o->alloc_pins);
	p = &o->pins[o->nr_pins++];
	p->image = xstrdup(image);
	p->pinned = xstrdup(pinned->buf);
out:
	oci_ref_release(&ref);
	strbuf_release(&digest);
	return 0;
}
