/* Fuzz target: the names of ref objects pipe reads from an S3 remote
 * (remote/refkey.c): a key that parses names a valid ref below refs/pipe/
 * and prints back to itself. */
#include "remote/remote.h"
#include "tests/fuzz/fuzz.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf key = STRBUF_INIT, back = STRBUF_INIT;
	char ws[REMOTE_WS_LEN + 1], hex[SGIT_HEXSZ + 1];
	struct sgit_oid oid;
	const char *suffix;

	strbuf_add(&key, data, size);
	if (!remote_ref_key_parse(key.buf, ws, &oid, &suffix)) {
		sgit_oid_hex(&oid, hex);
		strbuf_addf(&back, "refs/%s/%s/%s", ws, hex, suffix);
		if (strcmp(back.buf, key.buf) || !remote_ref_suffix_ok(suffix))
			abort();
	}
	strbuf_release(&key);
	strbuf_release(&back);
	return 0;
}
