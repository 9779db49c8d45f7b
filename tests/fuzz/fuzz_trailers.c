/* Fuzz target: a commit message's trailer block (provenance of a stage
 * commit, a run record) through store_prov_parse, store_run_parse and
 * trailers_kind; what parses is written back and parses again. */
#include "store/internal.h"
#include "store/store.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

static void trailers_prov(const char *msg)
{
	struct store_prov p, again;
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;

	if (store_prov_parse(msg, &p, &err)) {
		if (!err.msg.len)
			abort();
		error_release(&err);
		store_prov_release(&p);
		return;
	}
	store_prov_format(&p, &out);
	if (store_prov_parse(out.buf, &again, &err))
		abort(); /* what pipe writes, it reads back */
	store_prov_release(&again);
	store_prov_release(&p);
	strbuf_release(&out);
	error_release(&err);
}

static void trailers_run(const char *msg)
{
	struct store_run r, again;
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT;

	if (store_run_parse(msg, &r, &err)) {
		if (!err.msg.len)
			abort();
		error_release(&err);
		store_run_release(&r);
		return;
	}
	store_run_format(&r, &out);
	if (store_run_parse(out.buf, &again, &err))
		abort();
	store_run_release(&again);
	store_run_release(&r);
	strbuf_release(&out);
	error_release(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg = malloc(size + 1);

	if (!msg)
		abort();
	memcpy(msg, data, size);
	msg[size] = '\0'; /* libgit2 gives messages as C strings */
	free(trailers_kind(msg));
	trailers_prov(msg);
	trailers_run(msg);
	free(msg);
	return 0;
}
