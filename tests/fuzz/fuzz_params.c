/* Fuzz target: a params file (YAML or JSON) through pipefile_params_get,
 * looking up keys of several shapes. */
#include "pipefile/pipefile.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = {
		"a", "a.b", "pre.min_len", "lr.decay", "x.y.z", "0", "",
	};
	struct strbuf path = STRBUF_INIT, out = STRBUF_INIT;
	struct pf_params *pp;
	int fd = fuzz_file(data, size, &path);

	if (fd < 0)
		abort();
	pp = pipefile_params_new();
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		struct pf_param p = {.file = path.buf, .key = (char *)keys[i]};
		struct error err = ERROR_INIT;

		strbuf_reset(&out);
		if (pipefile_params_get(pp, &p, &out, &err) && !err.msg.len)
			abort();
		error_release(&err);
	}
	pipefile_params_free(pp);
	close(fd);
	strbuf_release(&path);
	strbuf_release(&out);
	return 0;
}
