/* Fuzz target: the job log (.pipe/jobs) through jobs_load. The input is
 * tried as a whole file, and as lines without their checksums (the target
 * appends each line's), so the fuzzer reaches the field parser. */
#include "engine/jobs.h"
#include "tests/fuzz/fuzz.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/strbuf.h"

static void jobs_fuzz_one(const void *data, size_t size)
{
	struct strbuf path = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct job_rec *v = NULL;
	size_t nr = 0;
	int fd = fuzz_file(data, size, &path);

	if (fd < 0 || jobs_load(path.buf, &v, &nr, &err))
		abort(); /* the file is there: only a failed read fails */
	jobs_free(v, nr);
	close(fd);
	strbuf_release(&path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct strbuf buf = STRBUF_INIT;

	jobs_fuzz_one(data, size);
	strbuf_addstr(&buf, "pipe-jobs 1\n");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p), at = buf.len;
		struct hash128 h;
		char hex[HASH_HEX_LEN + 1];

		strbuf_add(&buf, p, len);
		hash_buf(buf.buf + at, len, &h);
		hash_to_hex(&h, hex);
		strbuf_addf(&buf, "\t%s\n", hex);
		p += len + 1;
	}
	jobs_fuzz_one(buf.buf, buf.len);
	strbuf_release(&buf);
	return 0;
}
