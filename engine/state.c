/* The state file: one record per stage, line-based and tab-separated with
 * C-style escapes, a version line first and a checksum line last, so a
 * truncated or edited file is caught (ninja's build log does the same).
 * Records saved since the file was written are appended to a journal
 * beside it (<path>.journal): a version line naming the file's checksum,
 * then batches of records, each closed by a checksum line of its own; a
 * record there replaces the file's. A batch cut short (a kill mid-append)
 * has no valid checksum line and is ignored with all after it. */
#include "engine/state.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STATE_MAGIC "pipe-state 1\n"
#define JOURNAL_MAGIC "pipe-state-journal 1\t"
/* "#\t<hex>\n": a file's or a batch's last line */
#define SUM_LINE_LEN (1 + 1 + HASH_HEX_LEN + 1)

static void kvs_free(struct state_kv *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	free(v);
}

/* The file lists: parsed into the heap even for a loaded record. */
static void files_free(struct state_path *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < v[i].files_nr; j++)
			free(v[i].files[j].path);
		free(v[i].files);
	}
}

static void paths_free(struct state_path *v, size_t n)
{
	files_free(v, n);
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

void state_datums_free(struct state_datum *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < v[i].files_nr; j++)
			free(v[i].files[j]);
		free(v[i].files);
		free(v[i].path);
	}
	free(v);
}

void stage_record_free(struct stage_record *rec)
{
	if (!rec)
		return;
	state_datums_free(rec->datum_list, rec->datum_nr);
	if (rec->loaded) {
		files_free(rec->inputs, rec->inputs_nr);
		files_free(rec->outputs, rec->outputs_nr);
		return;
	}
	free(rec->name);
	free(rec->executor);
	free(rec->image);
	free(rec->datums);
	kvs_free(rec->env, rec->env_nr);
	kvs_free(rec->params, rec->params_nr);
	kvs_free(rec->matrix, rec->matrix_nr);
	paths_free(rec->inputs, rec->inputs_nr);
	paths_free(rec->outputs, rec->outputs_nr);
	free(rec);
}

/* The record an entry holds, freed (its arena's memory goes with the
 * arena). */
static void drop_held(struct state_ent *e)
{
	if (!e->stub)
		stage_record_free(e->u.rec);
	e->u.rec = NULL;
}

/* The records read back are let go one by one; their arena, up to a few
 * blocks: a new block for each (64 KB calloc'd) cost 65,000 instructions
 * a record read back. */
#define BACK_ARENA_MAX (256u << 10)

static void release_back(struct state *st)
{
	if (!st->back)
		return;
	stage_record_free(st->back);
	if (st->back_arena.used > BACK_ARENA_MAX)
		arena_release(&st->back_arena);
	st->back = NULL;
	st->back_name = NULL;
}

static void close_readers(struct state *st)
{
	for (int i = 0; i < 2; i++) {
		if (st->rfd[i])
			close(st->rfd[i] - 1);
		st->rfd[i] = 0;
	}
}

static void clear(struct state *st)
{
	for (size_t i = 0; i < st->nr; i++)
		drop_held(st->recs[i]);
	free(st->recs);
	st->recs = NULL;
	st->nr = st->alloc = 0;
	release_back(st);
}

static void clear_pending(struct state *st)
{
	free(st->pending);
	st->pending = NULL;
	st->pending_nr = st->pending_alloc = 0;
}

void state_free(struct state *st)
{
	if (!st)
		return;
	clear(st);
	clear_pending(st);
	close_readers(st);
	arena_release(&st->arena);
	arena_release(&st->put_arena);
	arena_release(&st->names);
	arena_release(&st->ents);
	arena_release(&st->back_arena);
	free(st->path);
	free(st);
}

/* Binary search; *at gets the insertion point. */
static struct state_ent *lookup(const struct state *st, const char *name,
				size_t *at)
{
	size_t lo = 0, hi = st->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->recs[mid]->name, name);

		if (!c) {
			if (at)
				*at = mid;
			return st->recs[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (at)
		*at = lo;
	return NULL;
}

static struct stage_record *read_back(struct state *st,
				      const struct state_ent *e);

struct stage_record *state_find(const struct state *st, const char *name)
{
	struct state_ent *e = lookup(st, name, NULL);

	if (!e)
		return NULL;
	/* logically const: the slot read back is a cache */
	return e->stub ? read_back((struct state *)st, e) : e->u.rec;
}

/* A new entry at at for rec; its name copied into the pool unless it is
 * there already (pooled). */
static struct state_ent *insert(struct state *st, size_t at,
				struct stage_record *rec, int pooled)
{
	struct state_ent *e;

	ALLOC_GROW(st->recs, st->nr + 1, st->alloc);
	memmove(st->recs + at + 1, st->recs + at,
		(st->nr - at) * sizeof(*st->recs));
	st->nr++;
	e = st->recs[at] = arena_alloc(&st->ents, sizeof(*e));
	e->name = pooled ? rec->name : arena_strdup(&st->names, rec->name);
	e->u.rec = rec;
	return e;
}

/* Insert or replace rec, as read; pooled: its name is in the pool. */
static struct state_ent *put(struct state *st, struct stage_record *rec,
			     int pooled)
{
	size_t at;
	struct state_ent *e = lookup(st, rec->name, &at);

	if (!e)
		return insert(st, at, rec, pooled);
	if (st->back_name == e->name)
		release_back(st);
	if (e->stub || e->u.rec != rec)
		drop_held(e);
	e->stub = e->journal = 0;
	e->len = 0;
	e->u.rec = rec;
	return e;
}

static struct stage_record *compact(struct state *st, struct stage_record *rec);

void state_put(struct state *st, struct stage_record *rec)
{
	struct stage_record *now = compact(st, rec);
	struct state_ent *e;

	if (!now) {
		now = rec; /* none: pipe wrote the text; rec stays */
	} else if (!rec->loaded) {
		stage_record_free(rec); /* as the scheduler made it */
	} else if (rec != st->back) {
		/* rec itself, when it is the record held, goes in put */
		struct state_ent *old = lookup(st, rec->name, NULL);

		if (!old || old->stub || old->u.rec != rec)
			stage_record_free(rec);
	}
	e = put(st, now, 0);
	now->pending = 1;
	ALLOC_GROW(st->pending, st->pending_nr + 1, st->pending_alloc);
	st->pending[st->pending_nr++] = e->name;
}

void state_drop(struct state *st, const char *name)
{
	size_t at;
	struct state_ent *e = lookup(st, name, &at);

	if (!e)
		return;
	if (st->back_name == e->name)
		release_back(st);
	drop_held(e);
	memmove(st->recs + at, st->recs + at + 1,
		(st->nr - at - 1) * sizeof(*st->recs));
	st->nr--;
	st->full = 1; /* a journal only adds and replaces */
}

/* --- writing --- */

/* Written at every save of a run over 100,000 records: runs of plain bytes
 * go in at once, numbers without printf. */
static void add_escaped(struct strbuf *sb, const char *s)
{
	for (;;) {
		size_t k = strcspn(s, "\\\t\n\r");

		strbuf_add(sb, s, k);
		s += k;
		if (!*s)
			return;
		switch (*s++) {
		case '\\':
			strbuf_add(sb, "\\\\", 2);
			break;
		case '\t':
			strbuf_add(sb, "\\t", 2);
			break;
		case '\n':
			strbuf_add(sb, "\\n", 2);
			break;
		default:
			strbuf_add(sb, "\\r", 2);
		}
	}
}

static void add_field(struct strbuf *sb, const char *s)
{
	strbuf_addch(sb, '\t');
	add_escaped(sb, s ? s : "");
}

static void add_hash(struct strbuf *sb, const struct hash128 *h)
{
	char hex[1 + HASH_HEX_LEN + 1];

	hex[0] = '\t';
	hash_to_hex(h, hex + 1);
	strbuf_add(sb, hex, 1 + HASH_HEX_LEN);
}

/* A tab and n in decimal. */
static void add_number(struct strbuf *sb, long long n)
{
	char buf[24], *p = buf + sizeof(buf);
	unsigned long long v =
		n < 0 ? 0 - (unsigned long long)n : (unsigned long long)n;

	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	if (n < 0)
		*--p = '-';
	*--p = '\t';
	strbuf_add(sb, p, (size_t)(buf + sizeof(buf) - p));
}

static void add_kvs(struct strbuf *sb, char tag, const struct state_kv *v,
		    size_t n)
{
	for (size_t i = 0; i < n; i++) {
		strbuf_addch(sb, tag);
		add_field(sb, v[i].key);
		add_field(sb, v[i].value);
		strbuf_addch(sb, '\n');
	}
}

static void add_paths(struct strbuf *sb, char tag, const struct state_path *v,
		      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		strbuf_addch(sb, tag);
		add_field(sb, v[i].path);
		add_hash(sb, &v[i].hash);
		add_number(sb, v[i].missing);
		strbuf_addch(sb, '\n');
		if (v[i].files_raw) { /* never parsed: as it was read */
			strbuf_add(sb, v[i].files_raw, v[i].files_raw_len);
			strbuf_addch(sb, '\n');
		}
		if (v[i].single) { /* never parsed: the path itself */
			strbuf_addch(sb, 'f');
			add_field(sb, v[i].path);
			add_hash(sb, &v[i].hash);
			strbuf_addch(sb, '\n');
		}
		for (size_t j = 0; j < v[i].files_nr; j++) {
			strbuf_addch(sb, 'f');
			add_field(sb, v[i].files[j].path);
			add_hash(sb, &v[i].files[j].hash);
			strbuf_addch(sb, '\n');
		}
	}
}

static void add_record(struct strbuf *sb, const struct stage_record *r)
{
	strbuf_addch(sb, 'S');
	add_field(sb, r->name);
	strbuf_addstr(sb, "\nK");
	add_hash(sb, &r->key);
	strbuf_addstr(sb, "\nC");
	add_hash(sb, &r->cmd);
	strbuf_addstr(sb, "\nX");
	add_field(sb, r->executor);
	strbuf_addch(sb, '\n');
	if (r->image) {
		strbuf_addch(sb, 'I');
		add_field(sb, r->image);
		strbuf_addch(sb, '\n');
	}
	if (r->datums) {
		strbuf_addch(sb, 'D');
		add_field(sb, r->datums);
		strbuf_addch(sb, '\n');
	}
	add_kvs(sb, 'E', r->env, r->env_nr);
	add_kvs(sb, 'P', r->params, r->params_nr);
	add_kvs(sb, 'M', r->matrix, r->matrix_nr);
	add_paths(sb, 'i', r->inputs, r->inputs_nr);
	add_paths(sb, 'o', r->outputs, r->outputs_nr);
	for (size_t i = 0; i < r->datum_nr; i++) {
		const struct state_datum *d = &r->datum_list[i];

		strbuf_addch(sb, 'd');
		add_field(sb, d->path);
		add_hash(sb, &d->content);
		add_hash(sb, &d->key);
		strbuf_addch(sb, '\n');
		for (size_t j = 0; j < d->files_nr; j++) {
			strbuf_addch(sb, 'g');
			add_field(sb, d->files[j]);
			strbuf_addch(sb, '\n');
		}
	}
	strbuf_addch(sb, 'T');
	add_number(sb, r->started_ms);
	add_number(sb, r->duration_ms);
	strbuf_add(sb, "\n.\n", 3);
}

static char *journal_path(const char *path)
{
	return xstrfmt("%s.journal", path);
}

/* The descriptor a stub's bytes are read through (the file, or the
 * journal), opened when first needed; -1 (errno) when it cannot be. */
static int stub_fd(struct state *st, int journal)
{
	if (!st->rfd[journal]) {
		char *p = journal ? journal_path(st->path) : st->path;
		int fd = open(p, O_RDONLY | O_CLOEXEC);

		if (p != st->path)
			free(p);
		if (fd < 0)
			return -1;
		st->rfd[journal] = fd + 1;
	}
	return st->rfd[journal] - 1;
}

/* n bytes at off of fd, appended to sb. Returns 0 or -1 (errno; EIO for
 * a file shorter than that). */
static int read_at(int fd, uint64_t off, size_t n, struct strbuf *sb)
{
	strbuf_grow(sb, n);
	while (n) {
		ssize_t k = pread(fd, sb->buf + sb->len, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (!k)
				errno = EIO;
			return -1;
		}
		sb->len += (size_t)k;
		off += (uint64_t)k;
		n -= (size_t)k;
	}
	sb->buf[sb->len] = '\0';
	return 0;
}

/* Where the whole file goes: a buffer of about SINK_CHUNK written out
 * and hashed as it fills (r), or, with no r, all of it (state_serialize). */
#define SINK_CHUNK (64u << 10)
struct sink {
	struct strbuf *sb;
	struct hasher *h;
	struct fs_replace *r;
	uint64_t done; /* written out (and hashed) before sb */
};

static void sink_flush(struct sink *s, int all)
{
	if (!s->r || (!all && s->sb->len < SINK_CHUNK))
		return;
	hasher_add(s->h, s->sb->buf, s->sb->len);
	fs_replace_write(s->r, s->sb->buf, s->sb->len);
	s->done += s->sb->len;
	strbuf_reset(s->sb);
}

/* The saved bytes of the stubs [e, e + n), which follow each other in
 * one source (a run of the file's records), copied as they are a chunk
 * at a time; checked to start and end as a record does. */
static int copy_stubs(struct state *st, struct sink *s,
		      struct state_ent *const *e, size_t n, struct error *err)
{
	uint64_t off = e[0]->u.off, left = 0;
	int journal = e[0]->journal, fd = stub_fd(st, journal);

	for (size_t i = 0; i < n; i++)
		left += e[i]->len;
	for (int first = 1; left; first = 0) {
		size_t k = left < SINK_CHUNK ? (size_t)left : SINK_CHUNK;
		size_t at = s->sb->len;

		if (left - k && left - k < 3)
			k = (size_t)left - 3; /* the last piece holds ".\n" */
		if (fd < 0 || read_at(fd, off, k, s->sb))
			return error_set(err, EXIT_ENV,
					 "cannot read '%s%s': %s", st->path,
					 journal ? ".journal" : "",
					 strerror(errno));
		if ((first && memcmp(s->sb->buf + at, "S\t", 2)) ||
		    (k == left &&
		     memcmp(s->sb->buf + s->sb->len - 3, "\n.\n", 3)))
			return error_set(err, EXIT_ENV,
					 "'%s%s' changed under pipe: a saved "
					 "record is not where it was",
					 st->path, journal ? ".journal" : "");
		off += k;
		left -= k;
		sink_flush(s, 0);
	}
	return 0;
}

/* Every record in order: a held one serialized (its length noted in its
 * entry), runs of stubs copied. */
static int add_records(struct state *st, struct sink *s, struct error *err)
{
	for (size_t i = 0; i < st->nr;) {
		struct state_ent *e = st->recs[i], *const *run = st->recs + i;
		size_t n = 1;

		if (!e->stub) {
			size_t at = s->sb->len;

			add_record(s->sb, e->u.rec);
			if (s->sb->len - at > UINT32_MAX)
				return error_set(err, EXIT_ENV,
						 "the record of '%s' is too "
						 "large (4 GB or more)",
						 e->name);
			e->len = (uint32_t)(s->sb->len - at);
			sink_flush(s, 0);
			i++;
			continue;
		}
		while (i + n < st->nr && run[n]->stub &&
		       run[n]->journal == e->journal &&
		       run[n]->u.off == run[n - 1]->u.off + run[n - 1]->len)
			n++;
		if (copy_stubs(st, s, run, n, err))
			return -1;
		i += n;
	}
	return 0;
}

void state_serialize(const struct state *cst, struct strbuf *out)
{
	struct state *st = (struct state *)cst; /* its readers only */
	struct sink s = {out, NULL, NULL, 0};
	struct error err = ERROR_INIT;
	struct hash128 sum;
	size_t start = out->len;

	strbuf_addstr(out, STATE_MAGIC);
	if (add_records(st, &s, &err))
		log_warn("%s", err.msg.buf); /* tests and fuzzing only */
	error_release(&err);
	hash_buf(out->buf + start, out->len - start, &sum);
	strbuf_addch(out, '#');
	add_hash(out, &sum);
	strbuf_addch(out, '\n');
}

/* After the whole file is in place: every record is a stub into it, in
 * order from off, and what held them goes. */
static void stub_all(struct state *st, uint64_t off)
{
	for (size_t i = 0; i < st->nr; i++) {
		struct state_ent *e = st->recs[i];

		drop_held(e);
		e->u.off = off;
		e->stub = 1;
		e->journal = 0;
		off += e->len;
	}
	arena_release(&st->arena);
	arena_release(&st->put_arena);
}

/* The whole file, streamed; the journal, folded into it, goes. */
static int save_file(struct state *st, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	struct fs_replace r;
	struct sink s = {&sb, NULL, &r, 0};
	char *jp = journal_path(st->path), line[SUM_LINE_LEN];
	struct hash128 sum;
	int ret = -1;

	if (fs_replace_open(&r, st->path, 1, err))
		goto out;
	s.h = hasher_new();
	strbuf_grow(&sb, 2 * SINK_CHUNK);
	strbuf_addstr(&sb, STATE_MAGIC);
	if (add_records(st, &s, err)) {
		fs_replace_abort(&r);
		goto out;
	}
	sink_flush(&s, 1);
	hasher_final(s.h, &sum);
	line[0] = '#';
	line[1] = '\t';
	hash_to_hex(&sum, line + 2); /* NUL where the newline goes */
	line[SUM_LINE_LEN - 1] = '\n';
	fs_replace_write(&r, line, SUM_LINE_LEN);
	if (fs_replace_commit(&r, err))
		goto out;
	unlink(jp);	   /* names the old file: ignored if left */
	close_readers(st); /* the old file's and journal's */
	/* opened now: the stubs read this file, whatever is renamed over it
	 * later (on failure, when first read) */
	stub_fd(st, 0);
	stub_all(st, strlen(STATE_MAGIC));
	memcpy(st->base, line + 2, HASH_HEX_LEN);
	st->base[HASH_HEX_LEN] = '\0';
	st->file_len = (size_t)s.done + SUM_LINE_LEN;
	st->journal_len = 0;
	st->full = 0;
	clear_pending(st);
	ret = 0;
out:
	hasher_free(s.h);
	free(jp);
	strbuf_release(&sb);
	return ret;
}

/* The records put since the last save, as one batch closed by its
 * checksum, into sb; each one's length into its entry. */
static void add_batch(struct state *st, struct strbuf *sb)
{
	size_t start = sb->len;
	struct hash128 sum;

	for (size_t i = 0; i < st->pending_nr; i++) {
		struct state_ent *e = lookup(st, st->pending[i], NULL);
		size_t at = sb->len;

		if (!e || e->stub || !e->u.rec->pending)
			continue; /* once, if put twice */
		add_record(sb, e->u.rec);
		e->u.rec->pending = 0;
		/* a record of 4 GB stays held: 0 */
		e->len = sb->len - at > UINT32_MAX ? 0
						   : (uint32_t)(sb->len - at);
	}
	hash_buf(sb->buf + start, sb->len - start, &sum);
	strbuf_addch(sb, '#');
	add_hash(sb, &sum);
	strbuf_addch(sb, '\n');
}

/* The batch is in the journal from off: its records become stubs there,
 * in the order add_batch wrote them, and the memory they took goes. */
static void stub_batch(struct state *st, uint64_t off)
{
	int all = 1;

	for (size_t i = 0; i < st->pending_nr; i++) {
		struct state_ent *e = lookup(st, st->pending[i], NULL);

		if (!e || e->stub)
			continue; /* dropped, or the second put of one */
		if (!e->len) {
			all = 0;
			continue;
		}
		drop_held(e);
		e->u.off = off;
		e->stub = e->journal = 1;
		off += e->len;
	}
	/* every record put since the last save was in the batch (a failed
	 * one leaves the next save a whole file) */
	if (all)
		arena_release(&st->put_arena);
}

/* Append the batch to the journal, a torn tail (whatever follows its
 * whole batches) cut off first; a new journal starts with its version
 * line and is fsynced with its folder. */
static int append_journal(struct state *st, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	char *jp = journal_path(st->path);
	int fresh = !st->journal_len, fd, ret = -1;
	size_t head;

	if (fresh) {
		strbuf_addf(&sb, "%s%s\n", JOURNAL_MAGIC, st->base);
		if (st->rfd[1]) /* no stub points into it */
			close(st->rfd[1] - 1);
		st->rfd[1] = 0;
	}
	head = sb.len;
	add_batch(st, &sb);
	fd = open(jp, O_WRONLY | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : 0),
		  0644);
	if (fd < 0 ||
	    (!fresh && (ftruncate(fd, (off_t)st->journal_len) ||
			lseek(fd, 0, SEEK_END) != (off_t)st->journal_len)) ||
	    fs_write_all(fd, sb.buf, sb.len) || fsync(fd)) {
		error_set(err, EXIT_ENV, "cannot write '%s': %s", jp,
			  strerror(errno));
		st->full = 1; /* the batch's records: in the next save */
		goto out;
	}
	if (fresh)
		fs_fsync_parent(jp);
	stub_fd(st, 1);
	stub_batch(st, st->journal_len + head);
	st->journal_len += sb.len;
	ret = 0;
out:
	clear_pending(st);
	if (fd >= 0)
		close(fd);
	free(jp);
	strbuf_release(&sb);
	return ret;
}

int state_save(struct state *st, struct error *err)
{
	/* a batch as large as an eighth of the records, or a journal as
	 * large as an eighth of the file, is folded into a new file: a load
	 * reads the journal after the file */
	if (st->full || !st->base[0] || st->pending_nr * 8 > st->nr ||
	    st->journal_len > st->file_len / 8)
		return save_file(st, err);
	if (!st->pending_nr)
		return 0;
	return append_journal(st, err);
}

/* --- reading --- */

#define MAX_FIELDS 4

/* Splits one line in place into unescaped fields; returns their count or
 * -1 on a bad escape. */
static int split_line(char *line, char **f)
{
	int n = 0;
	char *w = line, *r = line;

	f[n++] = w;
	for (;;) {
		/* copy the plain run at once: most lines have no escapes */
		size_t k = strcspn(r, "\t\\");

		if (w != r)
			memmove(w, r, k);
		w += k;
		r += k;
		if (!*r)
			break;
		if (*r == '\t') {
			*w++ = '\0';
			if (n == MAX_FIELDS)
				return -1;
			f[n++] = w;
		} else {
			static const char from[] = "\\tnr", to[] = "\\\t\n\r";
			const char *p = r[1] ? strchr(from, r[1]) : NULL;

			if (!p)
				return -1;
			*w++ = to[p - from];
			r++;
		}
		r++;
	}
	*w = '\0';
	return n;
}

/* Loaded records, their strings, arrays and unparsed file lists come from
 * the state's arena, not one malloc each; nothing points into the file
 * read, which is unmapped after. */
struct reader {
	struct stage_record *rec;
	struct state_path *cur; /* the input/output 'f' lines belong to */
	struct arena *arena;
	int replace;	     /* a journal's: records replace earlier ones */
	struct arena *names; /* the records' names, put into the state: the
			      * state's pool */
	struct stage_record **one; /* or the one record read, not put */
};

/* Room for one more element in an arena array of nr: doubled at powers of
 * two, so a long list wastes at most half. */
static void *arena_push(struct arena *a, void *v, size_t nr, size_t size)
{
	void *nv;

	if (nr & (nr - 1)) /* not a power of two (nor 0): there is room */
		return v;
	nv = arena_alloc(a, (nr ? 2 * nr : 1) * size);
	if (nr)
		memcpy(nv, v, nr * size);
	return nv;
}

static int parse_hash(const char *s, struct hash128 *h)
{
	return hash_from_hex(s, h);
}

static struct state_kv *push_kv(struct reader *rd, struct state_kv **v,
				uint32_t *nr, char **f)
{
	struct state_kv *kv;

	*v = arena_push(rd->arena, *v, *nr, sizeof(**v));
	kv = &(*v)[(*nr)++];
	kv->key = arena_strdup(rd->arena, f[1]);
	kv->value = arena_strdup(rd->arena, f[2]);
	return kv;
}

static int push_path(struct reader *rd, struct state_path **v, uint32_t *nr,
		     char **f, int n)
{
	struct state_path *p;

	if (n != 4)
		return -1;
	*v = arena_push(rd->arena, *v, *nr, sizeof(**v));
	p = &(*v)[(*nr)++];
	memset(p, 0, sizeof(*p));
	p->path = arena_strdup(rd->arena, f[1]);
	p->missing = !strcmp(f[3], "1");
	rd->cur = p;
	return parse_hash(f[2], &p->hash);
}

/* A loaded record's executor: the three pipe knows are not copied for
 * each of 100,000 records (the strings of a loaded record are never
 * freed one by one). */
static char *executor_name(struct reader *rd, const char *name)
{
	static char local[] = "local", docker[] = "docker",
		    kubernetes[] = "kubernetes";

	if (!strcmp(name, local))
		return local;
	if (!strcmp(name, docker))
		return docker;
	if (!strcmp(name, kubernetes))
		return kubernetes;
	return arena_strdup(rd->arena, name);
}

static int parse_field_line(struct reader *rd, char **f, int n)
{
	struct stage_record *r = rd->rec;

	switch (f[0][0]) {
	case 'K':
		return n == 2 ? parse_hash(f[1], &r->key) : -1;
	case 'C':
		return n == 2 ? parse_hash(f[1], &r->cmd) : -1;
	case 'X': /* X, I, D: once */
		return n == 2 && !r->executor
			       ? (r->executor = executor_name(rd, f[1]), 0)
			       : -1;
	case 'I':
		return n == 2 && !r->image
			       ? (r->image = arena_strdup(rd->arena, f[1]), 0)
			       : -1;
	case 'D':
		return n == 2 && !r->datums
			       ? (r->datums = arena_strdup(rd->arena, f[1]), 0)
			       : -1;
	case 'E':
		return n == 3 ? (push_kv(rd, &r->env, &r->env_nr, f), 0) : -1;
	case 'P':
		return n == 3 ? (push_kv(rd, &r->params, &r->params_nr, f), 0)
			      : -1;
	case 'M':
		return n == 3 ? (push_kv(rd, &r->matrix, &r->matrix_nr, f), 0)
			      : -1;
	case 'i':
		return push_path(rd, &r->inputs, &r->inputs_nr, f, n);
	case 'o':
		return push_path(rd, &r->outputs, &r->outputs_nr, f, n);
	case 'T':
		if (n != 3)
			return -1;
		r->started_ms = atoll(f[1]);
		r->duration_ms = atoll(f[2]);
		return 0;
	case 'd': {
		struct state_datum *d;

		if (n != 4)
			return -1;
		ALLOC_GROW(r->datum_list, r->datum_nr + 1, r->datum_alloc);
		d = &r->datum_list[r->datum_nr++];
		memset(d, 0, sizeof(*d));
		d->path = xstrdup(f[1]);
		return parse_hash(f[2], &d->content) ||
				       parse_hash(f[3], &d->key)
			       ? -1
			       : 0;
	}
	case 'g': {
		struct state_datum *d;

		if (n != 2 || !r->datum_nr)
			return -1;
		d = &r->datum_list[r->datum_nr - 1];
		ALLOC_GROW(d->files, d->files_nr + 1, d->files_alloc);
		d->files[d->files_nr++] = xstrdup(f[1]);
		return 0;
	}
	}
	return -1;
}

/* One 'f' line (split into f) of path p. */
static int push_file(struct state_path *p, char **f, int n)
{
	struct state_file *sf;

	if (n != 3)
		return -1;
	ALLOC_GROW(p->files, p->files_nr + 1, p->files_alloc);
	sf = &p->files[p->files_nr++];
	sf->path = xstrdup(f[1]);
	return parse_hash(f[2], &sf->hash);
}

/* Whether the file lines [p, p + n) are one line naming path p itself
 * with its own hash, as a plain file's are (the usual case: 45 bytes a
 * stage not kept at 100,000 stages). sb is scratch. */
static int is_single(const struct state_path *path, const char *p, size_t n,
		     struct strbuf *sb)
{
	strbuf_reset(sb);
	strbuf_addch(sb, 'f');
	add_field(sb, path->path);
	add_hash(sb, &path->hash);
	return sb->len == n && !memcmp(sb->buf, p, n);
}

int state_path_files(const struct state_path *cp)
{
	struct state_path *p = (struct state_path *)cp;
	char *line = p->files_raw, *end;
	int ret = 0;

	if (p->single) {
		p->single = 0;
		ALLOC_GROW(p->files, 1, p->files_alloc);
		p->files[0].path = xstrdup(p->path);
		p->files[0].hash = p->hash;
		p->files_nr = 1;
		return 0;
	}
	if (!line)
		return 0;
	end = line + p->files_raw_len; /* not before: NULL + 0 is UB */
	p->files_raw = NULL;
	*end = '\0'; /* the newline after the last line */
	while (line < end && !ret) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char *f[MAX_FIELDS];

		if (nl)
			*nl = '\0';
		ret = push_file(p, f, split_line(line, f));
		line = nl ? nl + 1 : end;
	}
	if (ret) {
		for (size_t j = 0; j < p->files_nr; j++)
			free(p->files[j].path);
		p->files_nr = 0;
	}
	return ret;
}

static int parse_line(struct state *st, struct reader *rd, char *line)
{
	char *f[MAX_FIELDS];
	int n = split_line(line, f);

	if (n < 1 || strlen(f[0]) != 1)
		return -1;
	if (f[0][0] == 'S') {
		if (n != 2 || rd->rec)
			return -1;
		rd->rec = arena_alloc(rd->arena, sizeof(*rd->rec));
		rd->rec->loaded = 1;
		rd->rec->name =
			arena_strdup(rd->names ? rd->names : rd->arena, f[1]);
		rd->cur = NULL;
		return 0;
	}
	if (!rd->rec)
		return -1;
	if (f[0][0] == '.') {
		size_t nr = st->nr;

		if (!rd->rec->executor)
			return -1;
		if (rd->one) {
			if (*rd->one)
				return -1;
			*rd->one = rd->rec;
		} else if (!nr ||
			   strcmp(st->recs[nr - 1]->name, rd->rec->name) < 0) {
			/* pipe writes records sorted by name: each goes
			 * last, without a search */
			insert(st, nr, rd->rec, !!rd->names);
		} else if (!rd->replace && lookup(st, rd->rec->name, NULL)) {
			return -1;
		} else {
			put(st, rd->rec, !!rd->names);
		}
		rd->rec = NULL;
		return 0;
	}
	return parse_field_line(rd, f, n);
}

#define DROP_CHUNK (1u << 20)

/* Give back the pages of a mapped file already read: a no-op status
 * keeps only the records, not the 24 MB of text of 100,000 stages. */
static void drop_behind(const char *buf, const char *upto, size_t *dropped,
			int mapped)
{
	size_t off = (size_t)(upto - buf) & ~(size_t)(DROP_CHUNK - 1);

	if (!mapped || off <= *dropped)
		return;
	madvise((char *)buf + *dropped, off - *dropped, MADV_DONTNEED);
	*dropped = off;
}

/* The XXH3-128 of buf, a chunk at a time, dropping each behind. */
static void hash_dropping(const char *buf, size_t len, int mapped,
			  struct hash128 *out)
{
	struct hasher *h = hasher_new();
	size_t dropped = 0;

	for (size_t off = 0; off < len; off += DROP_CHUNK) {
		size_t n = len - off < DROP_CHUNK ? len - off : DROP_CHUNK;

		hasher_add(h, buf + off, n);
		drop_behind(buf, buf + off + n, &dropped, mapped);
	}
	hasher_final(h, out);
	hasher_free(h);
	if (mapped && dropped < len)
		madvise((char *)buf + dropped, len - dropped, MADV_DONTNEED);
}

/* Checks the version line and the trailing checksum; returns the length
 * of the body (records) or -1. */
static long check_envelope(const char *buf, size_t len, int mapped)
{
	const size_t tail = 1 + 1 + HASH_HEX_LEN + 1; /* "#\t<hex>\n" */
	struct hash128 want, got;
	char hex[HASH_HEX_LEN + 1];
	size_t mlen = strlen(STATE_MAGIC);

	if (len < mlen + tail || memcmp(buf, STATE_MAGIC, mlen))
		return -1;
	if (buf[len - tail] != '#' || buf[len - tail + 1] != '\t' ||
	    buf[len - 1] != '\n')
		return -1;
	memcpy(hex, buf + len - tail + 2, HASH_HEX_LEN);
	hex[HASH_HEX_LEN] = '\0';
	if (hash_from_hex(hex, &want))
		return -1;
	hash_dropping(buf, len - tail, mapped, &got);
	if (!hash_equal(&want, &got))
		return -1;
	return (long)(len - tail);
}

/* The 'f' lines from p on (up to end): their length without the last
 * newline. */
static size_t f_lines(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && q[0] == 'f' && q[1] == '\t') {
		const char *nl = memchr(q, '\n', (size_t)(end - q));

		if (!nl)
			return (size_t)(end - p);
		q = nl + 1;
	}
	return (size_t)(q - p) - 1;
}

/* Parse the records of buf from p to end into st (buf: a mapping whose
 * pages may be dropped as it is read, when mapped). */
static int parse_records(struct state *st, struct reader *rd, const char *buf,
			 const char *p, const char *end, int mapped)
{
	struct strbuf line = STRBUF_INIT;
	size_t dropped = 0;
	int ret = 0;

	while (p < end && !ret) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl) {
			ret = -1;
			break;
		}
		if (p[0] == 'f' && p[1] == '\t' && rd->cur) {
			/* the files of the last input or output: kept
			 * unparsed until asked for (state_path_files); pipe
			 * writes them right after their path, once */
			size_t n = f_lines(p, end);

			/* 4 GB of file lines under one path: refused, as a
			 * corrupt file (the stage runs again) */
			if (rd->cur->files_raw || rd->cur->single ||
			    n > UINT32_MAX) {
				ret = -1;
				break;
			}
			if (is_single(rd->cur, p, n, &line))
				rd->cur->single = 1;
			else {
				rd->cur->files_raw =
					arena_memdupz(&st->arena, p, n);
				rd->cur->files_raw_len = (uint32_t)n;
			}
			p += n + 1;
			continue;
		}
		strbuf_reset(&line);
		strbuf_add(&line, p, (size_t)(nl - p));
		ret = parse_line(st, rd, line.buf);
		p = nl + 1;
		drop_behind(buf, p, &dropped, mapped);
	}
	strbuf_release(&line);
	if (rd->rec) {
		stage_record_free(rd->rec);
		rd->rec = NULL;
		ret = -1;
	}
	return ret;
}

/* Parse buf (len bytes, left as it is) into st. mapped: buf is a mapping
 * whose pages may be dropped as it is read. */
static int parse_buf(struct state *st, const char *buf, size_t len, int mapped)
{
	struct reader rd = {NULL, NULL, &st->arena, 0, &st->names, NULL};
	long body = check_envelope(buf, len, mapped);

	if (body < 0 || parse_records(st, &rd, buf, buf + strlen(STATE_MAGIC),
				      buf + body, mapped)) {
		clear(st);
		return -1;
	}
	return 0;
}

/* The journal's batches whose checksums hold, after the file's records:
 * the first that does not (cut short by a kill, or not whole) ends it.
 * st->journal_len gets the length of what holds. */
static void load_journal(struct state *st)
{
	struct reader rd = {NULL, NULL, &st->arena, 1, &st->names, NULL};
	struct strbuf sb = STRBUF_INIT, hdr = STRBUF_INIT;
	char *jp = journal_path(st->path);
	const char *p, *end;

	st->journal_len = 0;
	strbuf_addf(&hdr, "%s%s\n", JOURNAL_MAGIC, st->base);
	if (strbuf_read_file(&sb, jp, 0) || sb.len < hdr.len ||
	    memcmp(sb.buf, hdr.buf, hdr.len))
		goto out; /* none, or another file's: the next save's is new */
	end = sb.buf + sb.len;
	for (p = sb.buf + hdr.len; p < end;) {
		const char *q = p, *sum;
		struct hash128 want, got;
		char hex[HASH_HEX_LEN + 1];

		/* the batch's checksum line: the first line starting '#' */
		while (q < end && *q != '#') {
			const char *nl = memchr(q, '\n', (size_t)(end - q));

			q = nl ? nl + 1 : end;
		}
		if ((size_t)(end - q) < SUM_LINE_LEN || q[1] != '\t' ||
		    q[SUM_LINE_LEN - 1] != '\n')
			break;
		sum = q + 2;
		memcpy(hex, sum, HASH_HEX_LEN);
		hex[HASH_HEX_LEN] = '\0';
		hash_buf(p, (size_t)(q - p), &got);
		if (hash_from_hex(hex, &want) || !hash_equal(&want, &got) ||
		    parse_records(st, &rd, sb.buf, p, q, 0))
			break;
		p = q + SUM_LINE_LEN;
		st->journal_len = (size_t)(p - sb.buf);
	}
	if (p < end) /* what does not hold is cut off by the next append */
		log_verbose("'%s': ignoring a batch cut short", jp);
out:
	free(jp);
	strbuf_release(&sb);
	strbuf_release(&hdr);
}

int state_parse(struct state *st, const char *buf, size_t len)
{
	return parse_buf(st, buf, len, 0);
}

/* The one record of text [buf, buf + len), parsed as a load gives it
 * into arena a (not put), or NULL. */
static struct stage_record *parse_one(struct state *st, struct arena *a,
				      const char *buf, size_t len)
{
	struct stage_record *rec = NULL;
	struct reader rd = {NULL, NULL, a, 1, NULL, &rec};

	if (parse_records(st, &rd, buf, buf, buf + len, 0) || !rec) {
		stage_record_free(rec);
		return NULL;
	}
	return rec;
}

/* A record put, as a load would give it: read back from its own text
 * into the state's arena of records put. A record as the scheduler made
 * it takes a malloc per string and per list (about 750 bytes of heap for
 * a stage of one input and one output, its plain files' lists included),
 * the loaded form about 340, until it is saved (then a stub of 24 bytes
 * and its name). Returns the copy, or NULL (none: pipe wrote the text). */
static struct stage_record *compact(struct state *st, struct stage_record *rec)
{
	struct strbuf sb = STRBUF_INIT;
	struct stage_record *now;

	add_record(&sb, rec);
	now = parse_one(st, &st->put_arena, sb.buf, sb.len);
	strbuf_release(&sb);
	return now;
}

static struct stage_record *read_back(struct state *st,
				      const struct state_ent *e)
{
	struct strbuf sb = STRBUF_INIT;
	struct stage_record *rec = NULL;
	int fd;

	if (st->back && st->back_name == e->name)
		return st->back;
	release_back(st);
	fd = stub_fd(st, e->journal);
	if (fd < 0 || read_at(fd, e->u.off, e->len, &sb))
		log_warn("cannot read '%s%s': %s", st->path,
			 e->journal ? ".journal" : "", strerror(errno));
	else if (!(rec = parse_one(st, &st->back_arena, sb.buf, sb.len)) ||
		 strcmp(rec->name, e->name))
		log_warn("'%s%s' changed under pipe: the record of '%s' is "
			 "not where it was",
			 st->path, e->journal ? ".journal" : "", e->name);
	strbuf_release(&sb);
	if (rec && strcmp(rec->name, e->name)) {
		stage_record_free(rec);
		rec = NULL;
	}
	if (!rec) {
		arena_release(&st->back_arena);
		return NULL;
	}
	st->back = rec;
	st->back_name = e->name;
	return rec;
}

/* The file is mapped and given back as it is parsed: what stays is the
 * records (the file lists under them unparsed: a no-op status only
 * checksums them). */
int state_load(struct state **out, const char *path, struct error *err)
{
	struct state *st = xcalloc(1, sizeof(*st));
	void *map;
	size_t len;

	st->path = xstrdup(path);
	*out = NULL;
	if (fs_map(path, FS_MAP_LAZY, &map, &len)) {
		if (errno != ENOENT) {
			error_set(err, EXIT_ENV, "cannot read '%s': %s", path,
				  strerror(errno));
			state_free(st);
			return -1;
		}
	} else if (map && parse_buf(st, map, len, 1)) {
		log_warn("'%s' is corrupt or truncated; ignoring it (every "
			 "stage will be treated as never run)",
			 path);
	} else if (map) {
		/* the journal extends this file: named by its checksum */
		memcpy(st->base, (char *)map + len - 1 - HASH_HEX_LEN,
		       HASH_HEX_LEN);
		st->base[HASH_HEX_LEN] = '\0';
		st->file_len = len;
	}
	if (map)
		munmap(map, len);
	if (st->base[0])
		load_journal(st);
	*out = st;
	return 0;
}

const struct state_datum *state_find_datum(const struct stage_record *rec,
					   const char *path)
{
	size_t lo = 0, hi = rec->datum_nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(rec->datum_list[mid].path, path);

		if (!c)
			return &rec->datum_list[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
