/* Fuzz target: a Pipefile (YAML) through pipefile_parse, and a model that
 * parses through the cache's serialize/deserialize round trip. Each input
 * is parsed both ways, stage by stage and from the whole YAML tree
 * (PIPE_TEST_WHOLE_TREE): the same model, or the same error. */
#include "pipefile/pipefile.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

#include <stdlib.h>
#include <string.h>

/* The whole tree's result for the input is pf's (or err's). */
static void same_as_whole(const uint8_t *data, size_t size,
			  const struct pipefile *pf, const struct error *err)
{
	struct error werr = ERROR_INIT;
	struct pipefile *whole = NULL;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	int rc;

	setenv("PIPE_TEST_WHOLE_TREE", "1", 1);
	rc = pipefile_parse(&whole, "Pipefile", NULL, (const char *)data, size,
			    &werr);
	unsetenv("PIPE_TEST_WHOLE_TREE");
	if ((rc == 0) != (pf != NULL))
		abort();
	if (!pf && strcmp(werr.msg.buf, err->msg.buf))
		abort();
	if (pf) {
		pipefile_serialize(pf, "fuzz", &a);
		pipefile_serialize(whole, "fuzz", &b);
		if (a.len != b.len || memcmp(a.buf, b.buf, a.len))
			abort();
	}
	pipefile_free(whole);
	error_release(&werr);
	strbuf_release(&a);
	strbuf_release(&b);
}

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
		same_as_whole(data, size, NULL, &err);
		error_release(&err);
		return 0;
	}
	same_as_whole(data, size, pf, &err);
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
