/* Fuzz target: the run-cache index (.pipe/store/pipe-keys) through the
 * loader a lookup uses (keys_check_file). */
#include "store/internal.h"
#include "tests/fuzz/fuzz.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf path = STRBUF_INIT;
	int fd = fuzz_file(data, size, &path);

	if (fd < 0)
		abort();
	keys_check_file(path.buf);
	close(fd);
	strbuf_release(&path);
	return 0;
}
