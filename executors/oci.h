/* Image tags resolved to digests at their registry over the OCI
 * distribution API (issue #15 §3): a stage's `image: NAME:TAG` becomes
 * `HOST/REPO@sha256:…`, so the digest enters the stage's key and a pod
 * runs exactly that image even if the tag moves. */
#ifndef EXECUTORS_OCI_H
#define EXECUTORS_OCI_H

#include "util/error.h"
#include "util/strbuf.h"

/* An image reference, parsed as Docker does. All strings owned. */
struct oci_ref {
	char *host;	/* as named: "docker.io", "127.0.0.1:5000" */
	char *registry; /* where its API is: "registry-1.docker.io" */
	char *repo;	/* "library/busybox" */
	char *tag;	/* "latest" when neither tag nor digest */
	char *digest;	/* "sha256:<64 hex>"; NULL when not pinned */
};

/* "busybox" -> docker.io, library/busybox, latest; "h:5000/a/b:1";
 * "localhost/x"; "ghcr.io/o/r:t"; "name@sha256:…", "name:tag@sha256:…".
 * A first component is a host when it has a '.' or ':' or is "localhost".
 * Errors (EXIT_USAGE) name the reference and what is wrong with it. */
int oci_ref_parse(struct oci_ref *ref, const char *image, struct error *err);
void oci_ref_release(struct oci_ref *ref);

/* Whether the registry is spoken to over plain http: localhost,
 * 127.0.0.0/8, ::1, and the hosts listed in PIPE_INSECURE_REGISTRIES
 * ("host:port,host,..."; an entry without a port matches every port), as
 * Docker treats its insecure registries. Otherwise https, verified with
 * the system's CAs, or with /etc/docker/certs.d/HOST:PORT/ca.crt when
 * there is one (and client.cert + client.key as client certificate), as
 * Docker does; PIPE_REGISTRY_CERTS_D names another folder for that. */
int oci_insecure(const char *registry);

/* A WWW-Authenticate challenge: "Bearer realm=\"…\",service=\"…\",…" or
 * "Basic realm=\"…\"". Returns 0, or -1 when the header is not one. */
struct oci_challenge {
	char *scheme;		       /* "bearer", "basic" (lowercased) */
	char *realm, *service, *scope; /* NULL when absent */
};
int oci_challenge_parse(struct oci_challenge *c, const char *header);
void oci_challenge_release(struct oci_challenge *c);

/* Credentials for a registry, from Docker's config.json. */
struct oci_cred {
	char *user, *secret; /* secret wiped when released */
	int identity_token;  /* secret is an OAuth2 refresh token */
};
void oci_cred_release(struct oci_cred *c);

/* Look up host ("docker.io" or "127.0.0.1:5000") in the text of a
 * config.json: credHelpers.{host}, then auths.{host}.auth (base64
 * "user:pass") or .identitytoken, then credsStore. Docker Hub's entries
 * may also be under "https://index.docker.io/v1/". Returns 1 with *cred
 * filled, 0 when the file has none for host, 2 with *helper set (the
 * caller frees) when a credential helper holds them, or -1 (EXIT_ENV, the
 * message never holds a secret). */
int oci_config_lookup(const char *json, size_t len, const char *host,
		      struct oci_cred *cred, char **helper, struct error *err);

/* The credentials for host: $DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json, and `docker-credential-HELPER get` when it says
 * so. Returns 1 (found), 0 (none), or -1. */
int oci_creds(const char *host, struct oci_cred *cred, struct error *err);

/* Parse a credential helper's answer {"Username","Secret"} (Username
 * "<token>": Secret is an identity token). Returns 0 or -1. */
int oci_helper_parse(const char *json, size_t len, struct oci_cred *cred,
		     struct error *err);

struct oci; /* an http handle per registry, tokens, resolved tags */

struct oci *oci_new(void);
void oci_free(struct oci *o); /* NULL is fine */

/* Resolve image to "HOST/REPO@sha256:…" into pinned (reset first): HEAD
 * /v2/REPO/manifests/TAG (index, manifest, list or v2 manifest), the
 * digest from Docker-Content-Digest, else a GET and the sha256 of its
 * body; through a Bearer token or Basic credentials when the registry
 * asks. An already pinned reference is returned as is, with no request.
 * Answers are kept for the life of o. Errors name the image: not found
 * (EXIT_USAGE), unauthorized, unreachable, a bad digest (EXIT_ENV),
 * interrupted (EXIT_INTERRUPTED). */
int oci_resolve(struct oci *o, const char *image, struct strbuf *pinned,
		struct error *err);

#endif
