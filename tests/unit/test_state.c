/* Unit tests for engine/state.c: the state file round trip, and file lists
 * parsed only when asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/state.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/strbuf.h"

/* A state with one stage whose folder input holds two files. */
static void sample(struct strbuf *out)
{
	struct state *st = calloc(1, sizeof(*st));
	struct stage_record *r = calloc(1, sizeof(*r));
	struct state_path *in = calloc(1, sizeof(*in));

	r->name = strdup("pre");
	r->executor = strdup("local");
	in->path = strdup("data/");
	in->files = calloc(2, sizeof(*in->files));
	in->files[0].path = strdup("data/a.csv");
	in->files[1].path = strdup("data/b\tc.csv"); /* escaped in the file */
	hash_buf("a", 1, &in->files[0].hash);
	hash_buf("b", 1, &in->files[1].hash);
	in->files_nr = in->files_alloc = 2;
	hash_buf("data", 4, &in->hash);
	r->inputs = in;
	r->inputs_nr = 1;
	state_put(st, r);
	state_serialize(st, out);
	state_free(st);
}

static void test_round_trip_lazy(void **state)
{
	struct strbuf text = STRBUF_INIT, again = STRBUF_INIT;
	struct state *st = calloc(1, sizeof(*st));
	struct stage_record *r;
	struct hash128 a;

	(void)state;
	sample(&text);
	assert_int_equal(state_parse(st, text.buf, text.len), 0);
	r = state_find(st, "pre");
	assert_non_null(r);
	assert_int_equal(r->inputs_nr, 1);
	assert_int_equal(r->inputs[0].files_nr, 0); /* not parsed yet */
	state_serialize(st, &again);		    /* written back as read */
	assert_string_equal(again.buf, text.buf);
	assert_int_equal(state_path_files(&r->inputs[0]), 0);
	assert_int_equal(r->inputs[0].files_nr, 2);
	assert_string_equal(r->inputs[0].files[0].path, "data/a.csv");
	assert_string_equal(r->inputs[0].files[1].path, "data/b\tc.csv");
	hash_buf("a", 1, &a);
	assert_true(hash_equal(&r->inputs[0].files[0].hash, &a));
	assert_int_equal(state_path_files(&r->inputs[0]), 0); /* once */
	assert_int_equal(r->inputs[0].files_nr, 2);
	strbuf_reset(&again);
	state_serialize(st, &again); /* and the same from the parsed list */
	assert_string_equal(again.buf, text.buf);
	state_free(st);
	strbuf_release(&text);
	strbuf_release(&again);
}

/* state_load maps the file: the lazy lists are parsed in the mapping (a
 * private copy of the pages: the file itself is never written), and a
 * missing, empty, truncated or corrupt file is an empty state. */
static void test_load_mapped(void **state)
{
	char dir[] = "/tmp/pipe-test-state.XXXXXX";
	struct strbuf text = STRBUF_INIT, file = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct state *st;
	struct stage_record *r;
	char *path;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = malloc(strlen(dir) + 7);
	sprintf(path, "%s/state", dir);
	sample(&text);

	assert_int_equal(state_load(&st, path, &err), 0); /* missing */
	assert_int_equal(st->nr, 0);
	state_free(st);

	assert_int_equal(fs_write_atomic(path, text.buf, text.len, &err), 0);
	assert_int_equal(state_load(&st, path, &err), 0);
	r = state_find(st, "pre");
	assert_non_null(r);
	assert_int_equal(state_path_files(&r->inputs[0]), 0);
	assert_int_equal(r->inputs[0].files_nr, 2);
	assert_string_equal(r->inputs[0].files[1].path, "data/b\tc.csv");
	state_free(st);
	assert_int_equal(strbuf_read_file(&file, path, 0), 0);
	assert_string_equal(file.buf, text.buf); /* the file as written */

	for (size_t cut = 0; cut < 3; cut++) {
		size_t len = cut == 0 ? 0 : cut == 1 ? text.len / 2 : text.len;

		if (cut == 2)
			text.buf[text.len / 3] ^= 1; /* checksum fails */
		assert_int_equal(fs_write_atomic(path, text.buf, len, &err), 0);
		assert_int_equal(state_load(&st, path, &err), 0);
		assert_int_equal(st->nr, 0);
		assert_null(state_find(st, "pre"));
		state_free(st);
	}
	unlink(path);
	rmdir(dir);
	free(path);
	strbuf_release(&text);
	strbuf_release(&file);
}

/* A record of stage name whose key is hashed from key. */
static struct stage_record *record(const char *name, const char *key)
{
	struct stage_record *r = calloc(1, sizeof(*r));

	r->name = strdup(name);
	r->executor = strdup("local");
	hash_buf(key, strlen(key), &r->key);
	return r;
}

static void assert_key(const struct state *st, const char *name,
		       const char *key)
{
	const struct stage_record *r = state_find(st, name);
	struct hash128 h;

	assert_non_null(r);
	hash_buf(key, strlen(key), &h);
	assert_true(hash_equal(&r->key, &h));
}

static char *path_in(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);

	sprintf(p, "%s/%s", dir, name);
	return p;
}

/* Whether stage name's entry is a stub into the journal. */
static int lookup_journal(const struct state *st, const char *name)
{
	for (size_t i = 0; i < st->nr; i++)
		if (!strcmp(st->recs[i]->name, name))
			return st->recs[i]->stub && st->recs[i]->journal;
	return 0;
}

/* A save of one changed record among many appends it to the journal and
 * leaves the file as it was; a load reads the journal after the file. A
 * batch cut short by a kill is ignored (its stage keeps its older record:
 * stale, never fresh) and cut off by the next append; a batch whose
 * checksum fails and a journal of another file are ignored; a dropped
 * record, or a journal grown past an eighth of the file, writes the file
 * anew and the journal goes. */
static void test_journal(void **state)
{
	char dir[] = "/tmp/pipe-test-state.XXXXXX";
	struct strbuf file = STRBUF_INIT, sb = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct state *st;
	char *path, *jp, name[16];
	size_t whole;
	int folded = 0;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = path_in(dir, "state");
	jp = path_in(dir, "state.journal");
	assert_int_equal(state_load(&st, path, &err), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		state_put(st, record(name, "old"));
	}
	assert_int_equal(state_save(st, &err), 0); /* no file: written */
	assert_int_equal(access(jp, F_OK), -1);
	assert_int_equal(strbuf_read_file(&file, path, 0), 0);
	state_put(st, record("s07", "new"));
	state_put(st, record("s07", "newer")); /* once in the batch */
	assert_int_equal(state_save(st, &err), 0);
	state_free(st);
	assert_int_equal(strbuf_read_file(&sb, path, 0), 0);
	assert_string_equal(sb.buf, file.buf); /* the file untouched */
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, jp, 0), 0);
	assert_int_equal(strncmp(sb.buf, "pipe-state-journal 1\t", 21), 0);
	assert_null(strstr(sb.buf, "s08"));
	assert_int_equal(state_load(&st, path, &err), 0);
	assert_int_equal(st->nr, 100);
	assert_key(st, "s07", "newer");
	assert_key(st, "s08", "old");
	state_put(st, record("s08", "new"));
	assert_int_equal(state_save(st, &err), 0);
	state_free(st);

	/* killed mid-append: every cut of the last batch reads as before */
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, jp, 0), 0);
	whole = sb.len;
	assert_int_equal(state_load(&st, path, &err), 0);
	state_put(st, record("s09", "new"));
	assert_int_equal(state_save(st, &err), 0);
	state_free(st);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, jp, 0), 0);
	for (size_t cut = whole; cut < sb.len; cut += 7) {
		assert_int_equal(fs_write_atomic(jp, sb.buf, cut, &err), 0);
		assert_int_equal(state_load(&st, path, &err), 0);
		assert_key(st, "s08", "new");
		assert_key(st, "s09", "old");
		state_free(st);
	}
	/* the torn tail is cut off by the next append */
	assert_int_equal(fs_write_atomic(jp, sb.buf, sb.len - 3, &err), 0);
	assert_int_equal(state_load(&st, path, &err), 0);
	state_put(st, record("s10", "new"));
	assert_int_equal(state_save(st, &err), 0);
	state_free(st);
	assert_int_equal(state_load(&st, path, &err), 0);
	assert_key(st, "s08", "new");
	assert_key(st, "s09", "old");
	assert_key(st, "s10", "new");
	state_free(st);
	/* a batch whose checksum fails is not read, nor what follows */
	strbuf_reset(&sb);
	assert_int_equal(strbuf_read_file(&sb, jp, 0), 0);
	sb.buf[sb.len - 40] ^= 1; /* in the last batch's last record */
	assert_int_equal(fs_write_atomic(jp, sb.buf, sb.len, &err), 0);
	assert_int_equal(state_load(&st, path, &err), 0);
	assert_key(st, "s10", "old");
	assert_key(st, "s08", "new");
	state_free(st);
	/* a journal of another file is ignored */
	assert_non_null(f = fopen(jp, "w"));
	fputs("pipe-state-journal 1\t0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	assert_int_equal(state_load(&st, path, &err), 0);
	assert_key(st, "s07", "old");
	/* a drop writes the whole file */
	state_put(st, record("s11", "new"));
	state_drop(st, "s12");
	assert_int_equal(state_save(st, &err), 0);
	assert_int_equal(access(jp, F_OK), -1);
	state_free(st);
	assert_int_equal(state_load(&st, path, &err), 0);
	assert_int_equal(st->nr, 99);
	assert_key(st, "s11", "new");
	strbuf_reset(&file);
	assert_int_equal(strbuf_read_file(&file, path, 0), 0);
	/* the journal outgrows an eighth of the file: folded into it */
	for (int i = 0; i < 40 && !folded; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		state_put(st, record(name, "again"));
		assert_int_equal(state_save(st, &err), 0);
		strbuf_reset(&sb);
		assert_int_equal(strbuf_read_file(&sb, path, 0), 0);
		folded = access(jp, F_OK) == -1;
		if (!folded) /* appended to the journal only */
			assert_string_equal(sb.buf, file.buf);
	}
	assert_true(folded);
	state_free(st);
	assert_int_equal(state_load(&st, path, &err), 0);
	assert_key(st, "s00", "again");
	state_free(st);

	unlink(jp);
	unlink(path);
	rmdir(dir);
	free(path);
	free(jp);
	strbuf_release(&file);
	strbuf_release(&sb);
	error_release(&err);
}

/* A plain file's one 'f' line names the file itself: not kept as text,
 * made again when asked for, and written back byte for byte; a line
 * naming another file, or another hash, is kept as it is. */
static void test_single_file(void **state)
{
	const char *paths[] = {"in/a\tb.csv", "in/c.csv", "in/d.csv"};
	const char *files[] = {"in/a\tb.csv", "in/other.csv", "in/d.csv"};
	struct state *st = calloc(1, sizeof(*st)), *again;
	struct strbuf text = STRBUF_INIT, back = STRBUF_INIT;
	struct hash128 h, other;

	(void)state;
	hash_buf("x", 1, &h);
	hash_buf("y", 1, &other);
	for (int i = 0; i < 3; i++) {
		struct stage_record *r = calloc(1, sizeof(*r));
		struct state_path *in = calloc(1, sizeof(*in));

		r->name = strdup(files[i] + 3);
		r->executor = strdup(i ? "local" : "my-executor");
		in->path = strdup(paths[i]);
		in->hash = h;
		in->files = calloc(1, sizeof(*in->files));
		in->files[0].path = strdup(files[i]);
		in->files[0].hash = i == 2 ? other : h;
		in->files_nr = in->files_alloc = 1;
		r->inputs = in;
		r->inputs_nr = 1;
		state_put(st, r);
	}
	state_serialize(st, &text);
	state_free(st);

	again = calloc(1, sizeof(*again));
	assert_int_equal(state_parse(again, text.buf, text.len), 0);
	state_serialize(again, &back);
	assert_string_equal(back.buf, text.buf); /* as read, unparsed */
	for (int i = 0; i < 3; i++) {
		struct stage_record *r = state_find(again, files[i] + 3);
		struct state_path *in;

		assert_non_null(r);
		in = &r->inputs[0];
		assert_int_equal(in->single, i == 0);
		assert_string_equal(r->executor, i ? "local" : "my-executor");
		assert_int_equal(state_path_files(in), 0);
		assert_int_equal(in->files_nr, 1);
		assert_string_equal(in->files[0].path, files[i]);
		assert_true(
			hash_equal(&in->files[0].hash, i == 2 ? &other : &h));
		assert_int_equal(state_path_files(in), 0); /* once */
		assert_int_equal(in->files_nr, 1);
	}
	strbuf_reset(&back);
	state_serialize(again, &back); /* and the same from the lists */
	assert_string_equal(back.buf, text.buf);
	state_free(again);
	strbuf_release(&text);
	strbuf_release(&back);
}

/* A record with every kind of line (env, params, matrix, image, a folder
 * input's files, a plain output, datums with files), put as the
 * scheduler puts it. */
static struct stage_record *full_record(const char *name)
{
	struct stage_record *r = record(name, name);
	struct state_path *in = calloc(1, sizeof(*in)),
			  *out = calloc(1, sizeof(*out));
	struct state_kv *kv = calloc(3, sizeof(*kv));
	struct state_datum *d = calloc(1, sizeof(*d));

	r->image = strdup("sha256:ab");
	r->datums = strdup("data/*.csv");
	kv[0].key = strdup("HOME"), kv[0].value = strdup("00ff");
	kv[1].key = strdup("lr"), kv[1].value = strdup("0.1\t2");
	kv[2].key = strdup("size"), kv[2].value = strdup("big");
	r->env = &kv[0], r->env_nr = 1;
	r->params = malloc(sizeof(*r->params));
	r->params[0] = kv[1], r->params_nr = 1;
	r->matrix = malloc(sizeof(*r->matrix));
	r->matrix[0] = kv[2], r->matrix_nr = 1;
	in->path = strdup("data/");
	hash_buf("data", 4, &in->hash);
	in->files = calloc(2, sizeof(*in->files));
	in->files[0].path = strdup("data/a.csv");
	in->files[1].path = strdup("data/b.csv");
	hash_buf("a", 1, &in->files[0].hash);
	hash_buf("b", 1, &in->files[1].hash);
	in->files_nr = in->files_alloc = 2;
	out->path = strdup("out/x");
	hash_buf("x", 1, &out->hash);
	out->files = calloc(1, sizeof(*out->files));
	out->files[0].path = strdup("out/x");
	out->files[0].hash = out->hash;
	out->files_nr = out->files_alloc = 1;
	r->inputs = in, r->inputs_nr = 1;
	r->outputs = out, r->outputs_nr = 1;
	d->path = strdup("data/a.csv");
	hash_buf("a", 1, &d->content);
	hash_buf("ka", 2, &d->key);
	d->files = calloc(1, sizeof(*d->files));
	d->files[0] = strdup("a.out");
	d->files_nr = d->files_alloc = 1;
	r->datum_list = d, r->datum_nr = r->datum_alloc = 1;
	r->has_files = 1;
	r->started_ms = 1700000000000LL, r->duration_ms = 42;
	return r;
}

/* A record put is held as a load gives it (in the arena, its file lists
 * unparsed), the same record: a save of the whole file and one to the
 * journal, and the file read back, all say the same. */
static void test_saved_records_compacted(void **state)
{
	char dir[] = "/tmp/pipe-test-state.XXXXXX";
	struct strbuf before = STRBUF_INIT, after = STRBUF_INIT,
		      back = STRBUF_INIT;
	struct error err = ERROR_INIT;
	struct state *st = calloc(1, sizeof(*st)), *loaded = NULL;
	const char *names[] = {"a", "b", "c", "d", "e", "f",
			       "g", "h", "i", "j", "k"};

	(void)state;
	assert_non_null(mkdtemp(dir));
	st->path = path_in(dir, "state");
	for (size_t i = 0; i < 10; i++) /* the whole file: no file yet */
		state_put(st, full_record(names[i]));
	state_serialize(st, &before);
	assert_int_equal(state_save(st, &err), 0);
	assert_true(state_find(st, "c")->loaded);
	state_serialize(st, &after);
	assert_string_equal(after.buf, before.buf);
	state_put(st, full_record("k")); /* one of 11: to the journal */
	assert_true(state_find(st, "k")->loaded); /* as soon as put */
	strbuf_reset(&before);
	state_serialize(st, &before);
	assert_int_equal(state_save(st, &err), 0);
	assert_true(state_find(st, "k")->loaded);
	strbuf_reset(&after);
	state_serialize(st, &after);
	assert_string_equal(after.buf, before.buf);
	assert_int_equal(state_path_files(&state_find(st, "k")->inputs[0]), 0);
	assert_int_equal(state_find(st, "k")->inputs[0].files_nr, 2);
	assert_string_equal(state_find(st, "k")->inputs[0].files[1].path,
			    "data/b.csv");
	assert_string_equal(state_find(st, "k")->params[0].value, "0.1\t2");
	assert_string_equal(state_find(st, "k")->datum_list[0].files[0],
			    "a.out");
	assert_int_equal(state_load(&loaded, st->path, &err), 0);
	state_serialize(loaded, &back);
	assert_string_equal(back.buf, before.buf);
	state_free(loaded);
	state_free(st);
	fs_remove_tree(dir);
	strbuf_release(&before);
	strbuf_release(&after);
	strbuf_release(&back);
	error_release(&err);
}

/* A temp folder for a state file and its journal. */
struct dir {
	char dir[32];
	char *path, *jp;
	struct error err;
};

static void dir_init(struct dir *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/pipe-test-state.XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	d->path = path_in(d->dir, "state");
	d->jp = path_in(d->dir, "state.journal");
	error_init(&d->err);
}

static void dir_release(struct dir *d)
{
	fs_remove_tree(d->dir);
	free(d->path);
	free(d->jp);
	error_release(&d->err);
}

/* How many entries hold their record (not stubs). */
static size_t held(const struct state *st)
{
	size_t n = 0;

	for (size_t i = 0; i < st->nr; i++)
		n += !st->recs[i]->stub;
	return n;
}

/* A folder input of n files: its record is larger than the 64 KB a save
 * writes at a time. */
static struct stage_record *big_record(const char *name, size_t n)
{
	struct stage_record *r = record(name, "big");
	struct state_path *in = calloc(1, sizeof(*in));
	char path[64];

	in->path = strdup("big/");
	hash_buf("big", 3, &in->hash);
	in->files = calloc(n, sizeof(*in->files));
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "big/file-%06zu.csv", i);
		in->files[i].path = strdup(path);
		hash_buf(path, strlen(path), &in->files[i].hash);
	}
	in->files_nr = in->files_alloc = n;
	r->inputs = in, r->inputs_nr = 1;
	r->has_files = 1;
	return r;
}

/* Each record found again is the one put: its key, and its text as a
 * state of it alone serializes it. */
static void assert_same(const struct state *st, const struct state *want)
{
	assert_int_equal(st->nr, want->nr);
	for (size_t i = 0; i < want->nr; i++) {
		const struct stage_record *w =
			state_find(want, want->recs[i]->name);
		const struct stage_record *r =
			state_find(st, want->recs[i]->name);

		assert_non_null(w);
		assert_non_null(r);
		assert_string_equal(r->name, w->name);
		assert_true(hash_equal(&r->key, &w->key));
		assert_int_equal(r->inputs_nr, w->inputs_nr);
		assert_int_equal(r->datum_nr, w->datum_nr);
	}
}

/* Once saved, a record is not held: its entry is a stub into the file or
 * the journal, found again by reading it back (one at a time, the same
 * one asked twice not read twice); a save of the whole file copies the
 * stubs' bytes (a record of 250 KB too, through the 64 KB buffer) and
 * points them into the new file; the file and journal on disk always
 * read as the records in memory. */
static void test_stubs(void **state)
{
	struct strbuf before = STRBUF_INIT, after = STRBUF_INIT,
		      disk = STRBUF_INIT;
	struct dir d;
	struct state *st, *loaded = NULL;
	struct stage_record *r;
	char name[16];

	(void)state;
	dir_init(&d);
	assert_int_equal(state_load(&st, d.path, &d.err), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		state_put(st,
			  i == 5 ? big_record(name, 6000) : full_record(name));
	}
	assert_int_equal(held(st), 40);
	state_serialize(st, &before);
	assert_true(before.len > 250000);
	assert_int_equal(state_save(st, &d.err), 0); /* the whole file */
	assert_int_equal(held(st), 0);
	assert_int_equal(st->put_arena.used, 0);
	assert_int_equal(strbuf_read_file(&disk, st->path, 0), 0);
	assert_string_equal(disk.buf, before.buf); /* streamed: the same */
	state_serialize(st, &after);		   /* stubs copied */
	assert_string_equal(after.buf, before.buf);
	r = state_find(st, "s07");
	assert_non_null(r);
	assert_true(r->loaded);
	assert_string_equal(r->params[0].value, "0.1\t2");
	assert_ptr_equal(state_find(st, "s07"), r); /* not read again */
	r = state_find(st, "s05");
	assert_int_equal(state_path_files(&r->inputs[0]), 0);
	assert_int_equal(r->inputs[0].files_nr, 6000);
	assert_string_equal(r->inputs[0].files[5999].path,
			    "big/file-005999.csv");

	/* two to the journal: stubs there */
	state_put(st, full_record("s03"));
	state_put(st, record("s40", "new"));
	assert_int_equal(held(st), 2);
	strbuf_reset(&before);
	state_serialize(st, &before);
	assert_int_equal(state_save(st, &d.err), 0);
	assert_int_equal(access(d.jp, F_OK), 0);
	assert_int_equal(held(st), 0);
	assert_true(lookup_journal(st, "s40"));
	assert_key(st, "s40", "new");
	assert_key(st, "s03", "s03");
	strbuf_reset(&after);
	state_serialize(st, &after);
	assert_string_equal(after.buf, before.buf);
	assert_int_equal(state_load(&loaded, st->path, &d.err), 0);
	assert_same(loaded, st);
	strbuf_reset(&after);
	state_serialize(loaded, &after);
	assert_string_equal(after.buf, before.buf);
	state_free(loaded);

	/* more, until a fold: every stub into the new file, the journal's
	 * and the big one's bytes copied */
	for (int i = 41; i < 47; i++) { /* 6 of 47: more than an eighth */
		snprintf(name, sizeof(name), "s%02d", i);
		state_put(st, record(name, "new"));
	}
	assert_int_equal(state_save(st, &d.err), 0);
	assert_int_equal(access(d.jp, F_OK), -1);
	assert_int_equal(held(st), 0);
	assert_false(lookup_journal(st, "s40"));
	assert_key(st, "s40", "new");
	assert_key(st, "s03", "s03");
	r = state_find(st, "s05");
	assert_int_equal(state_path_files(&r->inputs[0]), 0);
	assert_int_equal(r->inputs[0].files_nr, 6000);
	strbuf_reset(&before);
	state_serialize(st, &before);
	strbuf_reset(&disk);
	assert_int_equal(strbuf_read_file(&disk, st->path, 0), 0);
	assert_string_equal(disk.buf, before.buf);
	assert_int_equal(state_load(&loaded, st->path, &d.err), 0);
	assert_same(loaded, st);
	state_free(loaded);

	/* a record put over a stub, and dropped: held, then gone */
	state_put(st, record("s07", "again"));
	assert_key(st, "s07", "again");
	state_drop(st, "s08");
	assert_null(state_find(st, "s08"));
	assert_int_equal(state_save(st, &d.err), 0);
	assert_int_equal(held(st), 0);
	assert_key(st, "s07", "again");
	assert_null(state_find(st, "s08"));
	state_free(st);
	assert_int_equal(state_load(&st, d.path, &d.err), 0);
	assert_key(st, "s07", "again");
	assert_null(state_find(st, "s08"));
	state_free(st);
	dir_release(&d);
	strbuf_release(&before);
	strbuf_release(&after);
	strbuf_release(&disk);
}

/* A journal torn mid-batch (a kill mid-append): the next process's first
 * append cuts the tail off and its records are stubs into the journal
 * read back as they were put; the records of the file and the journal
 * loaded at the start are held until a fold stubs them. */
static void test_stubs_torn_journal(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct dir d;
	struct state *st;
	char name[16];

	(void)state;
	dir_init(&d);
	assert_int_equal(state_load(&st, d.path, &d.err), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		state_put(st, record(name, "old"));
	}
	assert_int_equal(state_save(st, &d.err), 0);
	state_put(st, record("s01", "one"));
	assert_int_equal(state_save(st, &d.err), 0);
	state_put(st, record("s02", "two"));
	assert_int_equal(state_save(st, &d.err), 0);
	state_free(st);
	assert_int_equal(strbuf_read_file(&sb, d.jp, 0), 0);
	assert_int_equal(fs_write_atomic(d.jp, sb.buf, sb.len - 20, &d.err), 0);

	assert_int_equal(state_load(&st, d.path, &d.err), 0);
	assert_int_equal(held(st), 100); /* loaded: held */
	assert_key(st, "s01", "one");
	assert_key(st, "s02", "old"); /* its batch torn: stale, not fresh */
	state_put(st, record("s03", "three"));
	assert_int_equal(state_save(st, &d.err), 0);
	assert_true(lookup_journal(st, "s03"));
	assert_int_equal(held(st), 99);
	assert_key(st, "s03", "three");
	assert_key(st, "s01", "one");
	state_free(st);
	assert_int_equal(state_load(&st, d.path, &d.err), 0);
	assert_key(st, "s01", "one");
	assert_key(st, "s02", "old");
	assert_key(st, "s03", "three");
	state_drop(st, "s04"); /* a fold: nothing held */
	assert_int_equal(state_save(st, &d.err), 0);
	assert_int_equal(held(st), 0);
	assert_int_equal(st->arena.used, 0);
	assert_key(st, "s03", "three");
	assert_key(st, "s99", "old");
	state_free(st);
	dir_release(&d);
	strbuf_release(&sb);
}

/* The stubs read the file pipe saved, even when another is renamed over
 * it; saved bytes changed in place are not trusted: not found (never
 * run), and a save of the whole file fails rather than copy them. */
static void test_stub_changed(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct dir d;
	struct state *st;
	int fd;

	(void)state;
	dir_init(&d);
	assert_int_equal(state_load(&st, d.path, &d.err), 0);
	state_put(st, record("a", "x"));
	state_put(st, record("b", "x"));
	assert_int_equal(state_save(st, &d.err), 0);
	assert_int_equal(strbuf_read_file(&sb, d.path, 0), 0);
	/* a file renamed over it is not read: the stubs read the one saved */
	assert_int_equal(fs_write_atomic(d.path, "x", 1, &d.err), 0);
	assert_key(st, "a", "x");
	state_free(st);
	assert_int_equal(fs_write_atomic(d.path, sb.buf, sb.len, &d.err), 0);
	assert_int_equal(state_load(&st, d.path, &d.err), 0);
	state_put(st, record("c", "x"));
	st->full = 1;
	assert_int_equal(state_save(st, &d.err), 0);
	/* the saved bytes changed in place */
	fd = open(d.path, O_WRONLY);
	assert_int_equal(pwrite(fd, "zzz", 3, strlen("pipe-state 1\n")), 3);
	close(fd);
	assert_null(state_find(st, "a"));
	st->full = 1;
	assert_int_equal(state_save(st, &d.err), -1);
	state_free(st);
	dir_release(&d);
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_lazy),
		cmocka_unit_test(test_load_mapped),
		cmocka_unit_test(test_journal),
		cmocka_unit_test(test_single_file),
		cmocka_unit_test(test_saved_records_compacted),
		cmocka_unit_test(test_stubs),
		cmocka_unit_test(test_stubs_torn_journal),
		cmocka_unit_test(test_stub_changed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
