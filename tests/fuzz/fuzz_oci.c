/* Fuzz target: the strings executors/oci parses from outside: an image
 * reference (a Pipefile), a WWW-Authenticate header (a registry), Docker's
 * config.json and a credential helper's answer. The input is given whole
 * to each; references and headers stop at the first NUL. */
#include "executors/oci.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static void oci_fuzz_ref(const char *s)
{
	struct error err = ERROR_INIT;
	struct oci_ref r;

	if (oci_ref_parse(&r, s, &err)) {
		if (!err.msg.len || err.exit_code != EXIT_USAGE)
			abort();
		error_release(&err);
		return;
	}
	if (!r.host || !r.registry || !r.repo || !*r.repo ||
	    (!r.tag && !r.digest))
		abort();
	oci_insecure(r.registry);
	oci_ref_release(&r);
}

static void oci_fuzz_challenge(const char *s)
{
	struct oci_challenge c;

	if (oci_challenge_parse(&c, s))
		return;
	if (!c.scheme || (!strcmp(c.scheme, "bearer") && !c.realm))
		abort();
	oci_challenge_release(&c);
}

static void oci_fuzz_config(const char *text, size_t len)
{
	static const char *const hosts[] = {"docker.io", "127.0.0.1:5000",
					    "ghcr.io"};
	struct error err = ERROR_INIT;
	struct oci_cred c;
	char *helper;

	for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
		int r = oci_config_lookup(text, len, hosts[i], &c, &helper,
					  &err);

		if (r < 0 && !err.msg.len)
			abort();
		if (r == 1 && (!c.user || !c.secret))
			abort();
		if (r == 2 && !helper)
			abort();
		oci_cred_release(&c);
		free(helper);
		error_release(&err);
	}
	if (!oci_helper_parse(text, len, &c, &err) && (!c.user || !c.secret))
		abort();
	oci_cred_release(&c);
	error_release(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmemdupz(data, size);

	oci_fuzz_ref(s);
	oci_fuzz_challenge(s);
	oci_fuzz_config((const char *)data, size);
	free(s);
	return 0;
}
