/* Freeing a decoded kubeconfig context (util/kubecfg.h); its secrets are
 * wiped before they are freed. */
#include "util/kubecfg.h"

#include <stdlib.h>
#include <string.h>

static void wipe(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void free_vec(char **v, int secret)
{
	for (char **p = v; p && *p; p++)
		if (secret)
			wipe(*p);
		else
			free(*p);
	free(v);
}

void kube_config_release(struct kube_config *kc)
{
	free(kc->context);
	free(kc->source);
	free(kc->server);
	free(kc->namespace);
	free(kc->ca_pem);
	free(kc->cert_pem);
	wipe(kc->key_pem);
	wipe(kc->token);
	free(kc->token_file);
	free(kc->username);
	wipe(kc->password);
	free(kc->tls_server_name);
	free(kc->exec.command);
	free_vec(kc->exec.args, 0);
	free_vec(kc->exec.env, 1);
	free(kc->exec.api_version);
	free(kc->exec.install_hint);
	memset(kc, 0, sizeof(*kc));
}
