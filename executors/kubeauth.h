/* Credentials for requests to a Kubernetes API server, as they are at
 * request time: a static token, a token file that rotates, or an exec
 * plugin's ExecCredential, cached until it expires. */
#ifndef EXECUTORS_KUBEAUTH_H
#define EXECUTORS_KUBEAUTH_H

#include "util/error.h"
#include "util/kubecfg.h"
#include "util/strbuf.h"

struct kube_auth;

/* How long a token file's content is trusted before it is read again,
 * and how long before an exec credential's expiry it is renewed. */
#define KUBE_AUTH_FILE_TTL_MS 60000
#define KUBE_AUTH_EARLY_S 10

/* Make the credential source of kc, which is borrowed: it must outlive
 * *out. Nothing is run or read yet, but an exec plugin is looked up on
 * PATH: returns 0, or -1 with err set (EXIT_ENV) when it is not found
 * (the message carries its installHint) or needs a terminal that pipe
 * does not have (interactiveMode: Always); *out is then NULL. */
int kube_auth_new(struct kube_auth **out, const struct kube_config *kc,
		  struct error *err);
/* Wipes the cached secrets; NULL is fine. */
void kube_auth_free(struct kube_auth *a);

/* The bearer token to send now into bearer (replaced; "" when there is
 * none: a client certificate, basic auth or an open cluster). In order:
 * kc->token; kc->token_file, re-read every KUBE_AUTH_FILE_TTL_MS; the
 * exec plugin, run again when its credential is within KUBE_AUTH_EARLY_S
 * of its expirationTimestamp (never before, when it has none). Returns 0,
 * or -1 with err set (EXIT_ENV): unreadable or empty token file, plugin
 * not found (with its installHint), failed (its exit status and the
 * first line of its stderr), timed out, or printing no valid
 * ExecCredential. No message holds a token or what the plugin printed on
 * stdout. */
int kube_auth_headers(struct kube_auth *a, struct strbuf *bearer,
		      struct error *err);

/* Forget the cached credential (the server answered 401): the next
 * kube_auth_headers() re-reads the token file or re-runs the plugin. */
void kube_auth_invalidate(struct kube_auth *a);

/* The client certificate and key (PEM) to present: the exec plugin's
 * when its last ExecCredential gave one, else kc's. Borrowed, valid until
 * the next kube_auth_headers() or kube_auth_invalidate(); NULL when none.
 * Returns a number that changes whenever they change (rebuild the TLS
 * connection then); call it after kube_auth_headers(). */
unsigned kube_auth_client_cert(const struct kube_auth *a, const char **cert_pem,
			       const char **key_pem);

#endif
