/* Fuzz target: a stage commit's .pipe-manifest (which may come from
 * another machine) through manifest_parse; a manifest that parses is
 * written back, and what is written parses to the same. */
#include "store/internal.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_manifest m, again;
	struct error err = ERROR_INIT;
	struct strbuf out = STRBUF_INIT, out2 = STRBUF_INIT;

	if (manifest_parse((const char *)data, size, &m, &err)) {
		if (!err.msg.len)
			abort();
		error_release(&err);
		return 0;
	}
	for (size_t i = 0; i < m.files_nr; i++)
		if (manifest_find(&m, m.files[i].path) == NULL)
			abort();
	manifest_format(&m, &out);
	if (manifest_parse(out.buf, out.len, &again, &err))
		abort(); /* what pipe writes, it reads back */
	manifest_format(&again, &out2);
	if (out.len != out2.len || memcmp(out.buf, out2.buf, out.len))
		abort();
	store_manifest_release(&again);
	store_manifest_release(&m);
	strbuf_release(&out);
	strbuf_release(&out2);
	error_release(&err);
	return 0;
}
