/* Image references, plain-http registries and WWW-Authenticate challenges
 * (executors/oci.h): the parsers of the strings a Pipefile and a registry
 * hand us. */
#include "executors/oci.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DOCKER_HUB "docker.io"
#define DOCKER_HUB_API "registry-1.docker.io"
#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128

void oci_ref_release(struct oci_ref *ref)
{
	free(ref->host);
	free(ref->registry);
	free(ref->repo);
	free(ref->tag);
	free(ref->digest);
	memset(ref, 0, sizeof(*ref));
}

static int is_lower_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)* */
static int valid_component(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t run = 0;

		while (i < len && is_lower_alnum(s[i]))
			i++, run++;
		if (!run)
			return 0;
		if (i == len)
			return 1;
		if (s[i] == '.')
			i++;
		else if (s[i] == '_')
			i += i + 1 < len && s[i + 1] == '_' ? 2 : 1;
		else if (s[i] == '-')
			while (i < len && s[i] == '-')
				i++;
		else
			return 0;
		if (i == len)
			return 0;
	}
	return 0;
}

static const char *check_repo(const char *s)
{
	const char *p = s;

	if (!*s)
		return "no repository name";
	for (; *p; p++)
		if (isupper((unsigned char)*p))
			return "repository name must be lowercase";
	for (p = s;;) {
		size_t len = strcspn(p, "/");

		if (!valid_component(p, len))
			return "invalid repository name";
		if (!p[len])
			return NULL;
		p += len + 1;
	}
}

/* host[:port], the host a name or an IP address ([v6] bracketed) */
static int valid_host(const char *s)
{
	size_t len = strlen(s);
	const char *colon = strrchr(s, ':');

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || end == s + 1 ||
		    strspn(s + 1, "0123456789abcdefABCDEF:.") !=
			    (size_t)(end - s - 1))
			return 0;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (!colon && end[1])
			return 0;
	} else {
		size_t hlen = colon ? (size_t)(colon - s) : len;

		if (!hlen || s[0] == '-' || s[0] == '.' ||
		    strspn(s,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
			    hlen)
			return 0;
	}
	if (colon)
		return colon[1] &&
		       strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
		       strlen(colon + 1) <= 5;
	return 1;
}

static int valid_tag(const char *t)
{
	size_t len = strlen(t);
	const char *ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789_.-";

	return len && len <= TAG_MAX_LEN && t[0] != '.' && t[0] != '-' &&
	       strspn(t, ok) == len;
}

static int valid_digest(const char *d)
{
	return !strncmp(d, "sha256:", 7) && strlen(d + 7) == 64 &&
	       strspn(d + 7, "0123456789abcdef") == 64;
}

/* Split "name[:tag][@digest]" into its parts; returns the reason it is
 * bad, or NULL. */
static const char *split(struct oci_ref *ref, const char *image)
{
	char *name = xstrdup(image), *at = strchr(name, '@'), *slash, *colon;
	const char *why = NULL;

	if (at) {
		*at = '\0';
		ref->digest = xstrdup(at + 1);
		if (!valid_digest(ref->digest))
			why = "a digest is sha256: and 64 lowercase hex digits";
	}
	slash = strrchr(name, '/');
	colon = strrchr(name, ':');
	if (!why && colon && (!slash || colon > slash)) {
		*colon = '\0';
		ref->tag = xstrdup(colon + 1);
		if (!valid_tag(ref->tag))
			why = "invalid tag (letters, digits, '_', '.', '-'; "
			      "at most 128)";
	}
	slash = strchr(name, '/');
	if (!why && slash &&
	    (memchr(name, '.', (size_t)(slash - name)) ||
	     memchr(name, ':', (size_t)(slash - name)) ||
	     !strncmp(name, "localhost/", 10) || name[0] == '[')) {
		ref->host = xstrndup(name, (size_t)(slash - name));
		ref->repo = xstrdup(slash + 1);
		if (!valid_host(ref->host))
			why = "invalid registry host";
	} else if (!why) {
		ref->host = xstrdup(DOCKER_HUB);
		ref->repo = xstrdup(name);
	}
	if (!why && strlen(ref->repo) > NAME_MAX_LEN)
		why = "repository name longer than 255 characters";
	if (!why)
		why = check_repo(ref->repo);
	free(name);
	return why;
}

int oci_ref_parse(struct oci_ref *ref, const char *image, struct error *err)
{
	const char *why;

	memset(ref, 0, sizeof(*ref));
	why = !*image ? "empty" : split(ref, image);
	if (why) {
		oci_ref_release(ref);
		return error_set(err, EXIT_USAGE,
				 "invalid image reference '%s': %s", image,
				 why);
	}
	if (!strcmp(ref->host, DOCKER_HUB) ||
	    !strcmp(ref->host, "index.docker.io")) {
		free(ref->host);
		ref->host = xstrdup(DOCKER_HUB);
		ref->registry = xstrdup(DOCKER_HUB_API);
		if (!strchr(ref->repo, '/')) {
			char *r = xstrfmt("library/%s", ref->repo);

			free(ref->repo);
			ref->repo = r;
		}
	} else {
		ref->registry = xstrdup(ref->host);
	}
	if (!ref->tag && !ref->digest)
		ref->tag = xstrdup("latest");
	return 0;
}

/* "h:5000" -> "h"; "[::1]:5000" -> "::1" (into out) */
static void host_only(const char *registry, struct strbuf *out)
{
	const char *end;

	if (registry[0] == '[' && (end = strchr(registry, ']'))) {
		strbuf_add(out, registry + 1, (size_t)(end - registry - 1));
		return;
	}
	end = strrchr(registry, ':');
	strbuf_add(out, registry,
		   end ? (size_t)(end - registry) : strlen(registry));
}

static int listed(const char *registry, const char *host, const char *list)
{
	while (list && *list) {
		size_t len = strcspn(list, ", ");

		if (len && ((strlen(registry) == len &&
			     !strncmp(list, registry, len)) ||
			    (strlen(host) == len && !strncmp(list, host, len))))
			return 1;
		list += len;
		list += strspn(list, ", ");
	}
	return 0;
}

int oci_insecure(const char *registry)
{
	struct strbuf host = STRBUF_INIT;
	int r;

	host_only(registry, &host);
	r = !strcmp(host.buf, "localhost") || !strcmp(host.buf, "::1") ||
	    (!strncmp(host.buf, "127.", 4) &&
	     strspn(host.buf, "0123456789.") == host.len) ||
	    listed(registry, host.buf, getenv("PIPE_INSECURE_REGISTRIES"));
	strbuf_release(&host);
	return r;
}

void oci_challenge_release(struct oci_challenge *c)
{
	free(c->scheme);
	free(c->realm);
	free(c->service);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}

/* A quoted-string (RFC 7230: backslash escapes) or a token, at *p. */
static char *param_value(const char **p)
{
	struct strbuf v = STRBUF_INIT;
	const char *s = *p;

	if (*s == '"') {
		for (s++; *s && *s != '"'; s++) {
			if (*s == '\\' && s[1])
				s++;
			strbuf_addch(&v, *s);
		}
		if (*s == '"')
			s++;
	} else {
		size_t len = strcspn(s, ", \t");

		strbuf_add(&v, s, len);
		s += len;
	}
	*p = s;
	return strbuf_detach(&v, NULL);
}

static void set_param(struct oci_challenge *c, const char *key, size_t klen,
		      char *val)
{
	static const char *const names[] = {"realm", "service", "scope"};
	char **slots[] = {&c->realm, &c->service, &c->scope};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == klen &&
		    !strncasecmp(key, names[i], klen) && !*slots[i]) {
			*slots[i] = val;
			return;
		}
	free(val);
}

int oci_challenge_parse(struct oci_challenge *c, const char *header)
{
	const char *p = header + strspn(header, " \t");
	size_t len = strcspn(p, " \t,");

	memset(c, 0, sizeof(*c));
	if (!len)
		return -1;
	c->scheme = xstrndup(p, len);
	for (char *s = c->scheme; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	if (strcmp(c->scheme, "bearer") && strcmp(c->scheme, "basic")) {
		oci_challenge_release(c);
		return -1;
	}
	p += len;
	for (;;) {
		const char *key;
		size_t klen;

		p += strspn(p, " \t,");
		key = p;
		klen = strcspn(p, "= \t,");
		if (!klen || key[klen] != '=')
			break;
		p = key + klen + 1;
		set_param(c, key, klen, param_value(&p));
	}
	if (!strcmp(c->scheme, "bearer") && !c->realm) {
		oci_challenge_release(c);
		return -1;
	}
	return 0;
}
