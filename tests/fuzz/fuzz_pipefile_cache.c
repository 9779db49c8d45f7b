/* Fuzz target: .pipe/pipefile.cache through pipefile_deserialize. The
 * input is the model part of the file; the target adds the header, stamp,
 * Pipefile hash and checksum around it, so the fuzzer reaches the model
 * reader instead of stopping at the checksum. The raw input is tried too. */
#include "pipefile/pipefile.h"
#include "tests/fuzz/fuzz.h"
#include "util/hash.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char stamp[] = "fuzz", text[] = "stages: {}\n";
	struct strbuf buf = STRBUF_INIT;
	struct pipefile *pf = NULL;
	struct hash128 h;
	uint32_t n = sizeof(stamp) - 1;

	if (!pipefile_deserialize(&pf, "Pipefile", NULL, text, sizeof(text) - 1,
				  stamp, (const char *)data, size))
		pipefile_free(pf);
	strbuf_addstr(&buf, "pipe-pfcache 1\n");
	strbuf_add(&buf, &n, sizeof(n));
	strbuf_add(&buf, stamp, sizeof(stamp));
	hash_buf(text, sizeof(text) - 1, &h);
	strbuf_add(&buf, &h, sizeof(h));
	strbuf_add(&buf, data, size);
	fuzz_add_sum(&buf);
	pf = NULL;
	if (!pipefile_deserialize(&pf, "Pipefile", NULL, text, sizeof(text) - 1,
				  stamp, buf.buf, buf.len)) {
		for (size_t i = 0; i < pf->nr; i++)
			if (pipefile_find_stage(pf, pf->stages[i].name) !=
			    &pf->stages[i])
				abort();
		pipefile_free(pf);
	}
	strbuf_release(&buf);
	return 0;
}
