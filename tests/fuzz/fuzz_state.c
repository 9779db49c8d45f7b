/* Fuzz target: .pipe/state through state_parse. The input is tried as a
 * whole file, and as the body of one: the target adds the checksum line,
 * so the fuzzer reaches the record parser. A state that parses has its
 * lazy file lists parsed and is written back, and what is written parses
 * again. The input is also tried as a batch of .pipe/state.journal
 * beside an empty state file (the target adds the journal's header and
 * the batch's checksum line), read by state_load, saved whole and each
 * record read back from the file. */
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
		struct stage_record *r = st->recs[i]->u.rec;

		if (st->recs[i]->stub || state_find(st, st->recs[i]->name) != r)
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

#include "util/error.h"
#include "util/fs.h"

#include <limits.h>

static char journal_dir[] = "/tmp/pipe-fuzz-state.XXXXXX";

static void journal_cleanup(void)
{
	fs_remove_tree(journal_dir);
}

static void journal_fuzz_one(const uint8_t *data, size_t size)
{
	static int made;
	struct strbuf file = STRBUF_INIT, journal = STRBUF_INIT;
	struct state *empty = calloc(1, sizeof(*empty)), *st = NULL;
	struct error err = ERROR_INIT;
	char path[PATH_MAX], jpath[PATH_MAX + 16], hex[HASH_HEX_LEN + 1];
	struct hash128 h;

	if (!made) {
		if (!mkdtemp(journal_dir))
			abort();
		atexit(journal_cleanup);
		made = 1;
	}
	snprintf(path, sizeof(path), "%s/state", journal_dir);
	snprintf(jpath, sizeof(jpath), "%s.journal", path);
	if (!empty)
		abort();
	state_serialize(empty, &file); /* its last line: "#\t<checksum>" */
	strbuf_addf(&journal, "pipe-state-journal 1\t%.*s\n", HASH_HEX_LEN,
		    file.buf + file.len - 1 - HASH_HEX_LEN);
	strbuf_add(&journal, data, size);
	hash_buf((const char *)data, size, &h);
	hash_to_hex(&h, hex);
	strbuf_addf(&journal, "#\t%s\n", hex);
	if (fs_write_replace(path, file.buf, file.len, &err) ||
	    fs_write_replace(jpath, journal.buf, journal.len, &err))
		abort();
	if (!state_load(&st, path, &err)) {
		for (size_t i = 0; i < st->nr; i++)
			if (st->recs[i]->stub ||
			    state_find(st, st->recs[i]->name) !=
				    st->recs[i]->u.rec)
				abort();
		/* written whole: every record a stub, read back as saved */
		st->full = 1;
		if (state_save(st, &err))
			abort();
		for (size_t i = 0; i < st->nr; i++)
			if (!st->recs[i]->stub ||
			    !state_find(st, st->recs[i]->name))
				abort();
	}
	state_free(st);
	state_free(empty);
	error_release(&err);
	strbuf_release(&file);
	strbuf_release(&journal);
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
	journal_fuzz_one(data, size);
	strbuf_release(&buf);
	return 0;
}
