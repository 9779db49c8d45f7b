/* Fuzz target: a Pipefile (YAML) through pipefile_parse, and a model that
 * parses through the cache's serialize/deserialize round trip. */
#include "pipefile/pipefile.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct error err = ERROR_INIT;
	struct pipefile *pf = NULL, *again = NULL;
	struct strbuf buf = STRBUF_INIT;

	if (pipefile_parse(&pf, "Pipefile", NULL, (const char *)data, size,
			   &err)) {
		if (pf || !err.msg.len)
			abort(); /* a failure always says why */
		error_release(&err);
		return 0;
	}
	for (size_t i = 0; i < pf->nr; i++)
		if (pipefile_find_stage(pf, pf->stages[i].name) !=
		    &pf->stages[i])
			abort();
	pipefile_serialize(pf, "fuzz", &buf);
	if (pipefile_deserialize(&again, "Pipefile", NULL, (const char *)data,
				 size, "fuzz", buf.buf, buf.len) ||
	    again->nr != pf->nr)
		abort(); /* what the cache writes, it reads back */
	pipefile_free(again);
	pipefile_free(pf);
	strbuf_release(&buf);
	error_release(&err);
	return 0;
}
