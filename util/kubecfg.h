/* How to reach a Kubernetes API server: what the kubeconfig (or the pod's
 * service account) says for one context, decoded. pipefile/kubeconfig.c
 * fills it (the libyaml door), executors/kubernetes.c uses it; neither
 * includes the other. Every string is owned; secrets (key_pem, token, the
 * exec plugin's env) are never printed. */
#ifndef UTIL_KUBECFG_H
#define UTIL_KUBECFG_H

struct kube_exec {
	char *command;	    /* NULL: no exec plugin */
	char **args;	    /* NULL-terminated */
	char **env;	    /* "NAME=value", NULL-terminated */
	char *api_version;  /* client.authentication.k8s.io/v1 or v1beta1 */
	char *install_hint; /* shown when command is not found */
	int interactive;    /* interactiveMode: Always (stdin passed) */
	int provide_cluster_info;
};

struct kube_config {
	char *context;	 /* the context chosen; NULL in-cluster */
	char *source;	 /* where it came from, for messages: a file path
			  * or "in-cluster service account" */
	char *server;	 /* "https://127.0.0.1:6443", no trailing slash */
	char *namespace; /* the context's namespace; NULL: none given */
	char *ca_pem;	 /* NULL: the system's CAs */
	char *cert_pem;	 /* client certificate; NULL: none */
	char *key_pem;
	char *token;		   /* a bearer token; NULL: none */
	char *token_file;	   /* re-read on each connection (rotates) */
	char *username, *password; /* basic auth (old clusters) */
	int insecure;		   /* insecure-skip-tls-verify: true */
	char *tls_server_name;
	struct kube_exec exec;
};

void kube_config_release(struct kube_config *kc);

#endif
