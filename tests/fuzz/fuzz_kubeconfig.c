/* Fuzz target: a kubeconfig (untrusted YAML) through kubeconfig_parse,
 * for its current-context and for a context named "dev". A failure always
 * says why and leaves nothing decoded; a success has an http(s) server. */
#include "pipefile/kubeconfig.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const contexts[] = {NULL, "dev"};

	for (size_t i = 0; i < 2; i++) {
		struct kube_config kc;
		struct error err = ERROR_INIT;

		/* a folder that does not exist: relative paths read nothing */
		if (kubeconfig_parse(&kc, "/nonexistent/kubeconfig",
				     (const char *)data, size, contexts[i],
				     &err)) {
			if (!err.msg.len || !err.exit_code || kc.server)
				abort();
			error_release(&err);
			continue;
		}
		if (!kc.server || strncmp(kc.server, "http", 4) || err.msg.len)
			abort();
		kube_config_release(&kc);
	}
	return 0;
}
