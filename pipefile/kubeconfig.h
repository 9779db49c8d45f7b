/* Reading kubeconfig files (merged as kubectl merges them), or the pod's
 * service account, into the struct kube_config of one context. */
#ifndef PIPEFILE_KUBECONFIG_H
#define PIPEFILE_KUBECONFIG_H

#include <stddef.h>

#include "util/error.h"
#include "util/kubecfg.h"

/* Where a pod finds its service account. The environment variable
 * PIPE_K8S_SA_DIR replaces it; it exists for tests only. */
#define KUBECONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Fill out for context (NULL: the current-context) from the files named
 * by $KUBECONFIG (':'-separated; for clusters, users and contexts the
 * first file defining a name wins, current-context comes from the first
 * file setting it; missing files are skipped unless all are), else
 * ~/.kube/config. With no file at all and KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT set, the pod's service account (in-cluster:
 * out->token_file is set, never out->token, since the token rotates).
 *
 * Certificates and keys are read into memory; relative paths are resolved
 * against the folder of the file that names them. Returns 0, or -1 with
 * err set (out released): EXIT_USAGE when a context named here does not
 * exist, EXIT_ENV for every other missing or unusable setting. Errors
 * about a file's content are located (FILE:LINE:COL and the line) and
 * never show a secret (token, password, key, exec env values): a line
 * holding one is not quoted. */
int kubeconfig_load(struct kube_config *out, const char *context,
		    struct error *err);

/* The same for one kubeconfig held in memory (text need not end with a
 * NUL): name is the path used in messages and whose folder resolves
 * relative paths. Used by kubeconfig_load and by the fuzzer. */
int kubeconfig_parse(struct kube_config *out, const char *name,
		     const char *text, size_t len, const char *context,
		     struct error *err);

#endif
