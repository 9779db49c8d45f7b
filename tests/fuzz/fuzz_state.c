/* Fuzz target: .pipe/state through state_parse. The input is tried as a
 * whole file, and as the body of one: the target adds the checksum line,
 * so the fuzzer reaches the record parser. A state that parses has its
 * lazy file lists parsed and is written back, and what is written parses
 * again. */
#include "engine/state.h"
#include "tests/fuzz/fuzz.h"
#include "util/hash.h"
#include "util/strbuf.h"

static void state_fuzz_one(const char *buf, size_t len)
{
	struct state *st = calloc(1, sizeof(*st)), *again = NULL;
	struct strbuf out = STRBUF_INIT;

	if (!st || state_parse(st, buf, len))
		goto out;
	for (size_t i = 0; i < st->nr; i++) {
		struct stage_record *r = st->recs[i];

		if (state_find(st, r->name) != r)
			abort();
		for (size_t j = 0; j < r->inputs_nr; j++)
			state_path_files(&r->inputs[j]);
		for (size_t j = 0; j < r->outputs_nr; j++)
			state_path_files(&r->outputs[j]);
		for (size_t j = 0; j < r->datum_nr; j++)
			state_find_datum(r, r->datum_list[j].path);
	}
	state_serialize(st, &out);
	again = calloc(1, sizeof(*again));
	if (!again || state_parse(again, out.buf, out.len) ||
	    again->nr != st->nr)
		abort(); /* what pipe writes, it reads back */
out:
	state_free(again);
	state_free(st);
	strbuf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strbuf buf = STRBUF_INIT;
	struct hash128 h;
	char hex[HASH_HEX_LEN + 1];

	state_fuzz_one((const char *)data, size);
	strbuf_addstr(&buf, "pipe-state 1\n");
	strbuf_add(&buf, data, size);
	hash_buf(buf.buf, buf.len, &h);
	hash_to_hex(&h, hex);
	strbuf_addf(&buf, "#\t%s\n", hex);
	state_fuzz_one(buf.buf, buf.len);
	strbuf_release(&buf);
	return 0;
}
