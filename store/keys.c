/* The run-cache index: which commits carry which stage key. A cache over
 * the refs' history in .pipe/store/pipe-keys, brought up to date from the
 * refs and rebuilt when missing, corrupt or stale:
 *
 *   pipe-keys 2 <id> <refs> <bytes>    <bytes>: the length of the key lines
 *   key <key> <commit> <stage>         sorted by key, older first
 *   tip <commit> <ref>                 ref tips the index covers
 *
 * and what later processes learnt, appended to pipe-keys.log:
 *
 *   pipe-keys-log 2 <id>               the index file it extends
 *   key ... / tip ...                  as above, newer than the file's
 *   refs <refs>                        after each append
 *
 * <refs> is a digest of the refs under refs/pipe/ as the index last saw
 * them (packed-refs' size, times and inode; each loose ref's name and
 * value), or "-". While it is the digest of the refs now, no ref moved:
 * a lookup maps the file and searches its sorted key lines and reads the
 * log, without listing 100,000 refs nor loading 100,000 entries. Else the
 * index is loaded and synced with the refs. The log is folded into a new
 * file once it outgrows a fraction of it; a torn last line is ignored.
 * A process appends what it learnt at each flush of its batch, once the
 * commits and refs are on disk, with "refs -" (a kill then leaves the
 * index covering them, and the refs to be read again), and the digest at
 * its end. An index it rebuilt at its start is written then: from there
 * on it holds of each commit it notes where the lines are (8 bytes and a
 * slot) and reads them back when asked, and a fold at its end merges the
 * file and the log as they are on disk. */
#include "store/internal.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/strmap.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEYS_MAGIC "pipe-keys 2 "
#define LOG_MAGIC "pipe-keys-log 2 "
#define NO_REFS "-"
/* "key " <key> " " <commit> " " */
#define KEY_PREFIX_LEN (4 + HASH_HEX_LEN + 1 + SGIT_HEXSZ + 1)

/* 40 bytes an entry, the stage's name in the index's pool of names: a
 * run of 100,000 stages learns 100,000 of them and holds them to its
 * end (a hex key, an oid and a malloc'd name took about 150 with the
 * tables over them). */
struct key_entry {
	struct hash128 key;
	struct sgit_oid commit;
	uint32_t stage; /* offset of its NUL-terminated name in names */
};

struct key_tip {
	struct sgit_oid oid;
	uint32_t ref;	/* offset of its name in the tips' names */
	uint8_t noted;	/* moved to oid by this process (keys_note) */
	uint8_t packed; /* written with oid by this process's last rewrite
			 * of packed-refs that wrote it (keys_packed) */
};

/* Ref tips, hashed by name: slot holds index + 1, 0 empty. */
struct tip_set {
	struct key_tip *v;
	size_t nr, alloc;
	uint32_t *slot;
	size_t cap; /* 0, or a power of two over twice nr */
	struct strbuf names;
};

/* The refs under refs/pipe/ as seen at one moment: packed-refs' identity
 * and the loose refs ("<name> <value>" lines, sorted), run records' refs
 * left out (the index does not follow them). */
struct refs_seen {
	struct strbuf packed;
	struct strvec loose;
	char digest[HASH_HEX_LEN + 1];
};

/* packed-refs as this process rewrote it (keys_packed): its identity
 * after the last rewrite, the refs the rewrites wrote with the value
 * they last wrote (a tip marked packed: its own; in other: the rest),
 * and broken when one did not start from the file seen or last written
 * (someone else wrote it between). */
struct packed_ours {
	struct strbuf after;
	struct tip_set other;
	int broken;
};

/* Lookups by key and by ref are hashed: a run of N stages looks up N keys
 * and notes N tips, and a scan of the arrays for each would be quadratic.
 * by_key: open addressing over entry indexes + 1, one slot per distinct
 * key holding its newest entry; older[i] is the next older entry with the
 * same key (+ 1, 0 at the end).
 *
 * Mapped (no ref moved since the index was saved, or rebuilt and written
 * by this process), v and tips hold the lines the log had when read, and
 * the file's key lines are searched in map. What this process learns is
 * a note (below), its lines in pending until the flush of the store's
 * batch puts them in the log (keys_flushed); the save folds the log from
 * disk when it outgrew its share. Loaded (the refs were read and synced,
 * or rebuilt in the middle of a process), v and tips hold it all, and
 * what is learnt is added to them; the whole file is written when it is
 * to be (rewrite, or fold), with no text kept for the log. */
struct keys {
	struct key_entry *v;
	size_t nr, alloc;
	uint32_t *older;
	uint32_t *by_key;
	size_t key_cap;
	struct strbuf names; /* the entries' stage names */
	struct tip_set tips;
	int synced; /* with the refs, in this process */
	int mapped;
	char *map;		     /* the index file, mapped */
	size_t map_len;		     /* its length */
	size_t key_beg, key_end;     /* its key lines in map */
	char id[HASH_HEX_LEN + 1];   /* the file's, "" when none is valid */
	char refs[HASH_HEX_LEN + 1]; /* the digest the index covers */
	size_t log_whole;      /* bytes of whole lines in the log, 0: none */
	struct strbuf pending; /* lines for the log, not yet there */
	int rewrite;	       /* the whole file is to be written */
	int fold;	       /* the log is to be folded into a new file */
	struct refs_seen seen; /* the refs when opened */
	/* the tips this process noted before a rebuild replaced the tips
	 * (with them, the tips marked noted are what it moved) */
	struct tip_set noted_before;
	struct packed_ours ours;
	/* What this process learnt while mapped, where its lines are: a
	 * note for each commit noted, the offset of its key line (its tip
	 * line follows) << 1 | packed (the last rewrite of packed-refs in
	 * its batch wrote its tip). An offset below log_whole is the log's;
	 * from there on, pending's. The lines are read back when a lookup or
	 * the save needs them: 8 bytes a commit, and its slot. */
	uint64_t *note;
	size_t note_nr, note_alloc;
	/* the notes by key: a tag of the key (note_tag, which also places
	 * it) << 32 | note index + 1, 0 empty */
	uint64_t *note_slot;
	size_t note_cap; /* 0, or a power of two, at most 3/4 full */
};

static void seen_release(struct refs_seen *s)
{
	strbuf_release(&s->packed);
	strvec_clear(&s->loose);
}

static void tips_release(struct tip_set *t)
{
	free(t->v);
	free(t->slot);
	strbuf_release(&t->names);
	memset(t, 0, sizeof(*t));
	strbuf_init(&t->names, 0);
}

static void ours_release(struct packed_ours *o)
{
	strbuf_release(&o->after);
	tips_release(&o->other);
	o->broken = 0;
}

static const char *tip_ref(const struct tip_set *t, size_t i)
{
	return t->names.buf + t->v[i].ref;
}

static void keys_clear(struct keys *k)
{
	free(k->v);
	free(k->older);
	free(k->by_key);
	strbuf_release(&k->names);
	tips_release(&k->tips);
	strbuf_release(&k->tips.names);
	if (k->map)
		munmap(k->map, k->map_len);
	strbuf_release(&k->pending);
	seen_release(&k->seen);
	tips_release(&k->noted_before);
	strbuf_release(&k->noted_before.names);
	ours_release(&k->ours);
	free(k->note);
	free(k->note_slot);
	memset(k, 0, sizeof(*k));
	strbuf_init(&k->pending, 0);
	strbuf_init(&k->names, 0);
	strbuf_init(&k->tips.names, 0);
	strbuf_init(&k->noted_before.names, 0);
	strbuf_init(&k->seen.packed, 0);
}

static void set_tip(struct tip_set *t, const char *ref,
		    const struct sgit_oid *oid);

/* Forget the entries and tips, keep what was seen and noted. */
static void keys_clear_entries(struct keys *k)
{
	struct refs_seen seen = k->seen;
	struct tip_set noted = k->noted_before;
	struct packed_ours ours = k->ours;

	for (size_t i = 0; i < k->tips.nr; i++) {
		if (k->tips.v[i].noted)
			set_tip(&noted, tip_ref(&k->tips, i),
				&k->tips.v[i].oid);
		if (k->tips.v[i].packed)
			set_tip(&ours.other, tip_ref(&k->tips, i),
				&k->tips.v[i].oid);
	}
	memset(&k->seen, 0, sizeof(k->seen));
	memset(&k->noted_before, 0, sizeof(k->noted_before));
	memset(&k->ours, 0, sizeof(k->ours));
	keys_clear(k);
	strbuf_release(&k->seen.packed);
	strbuf_release(&k->noted_before.names);
	k->seen = seen;
	k->noted_before = noted;
	k->ours = ours;
}

static struct keys *keys_new(void)
{
	struct keys *k = xcalloc(1, sizeof(*k));

	strbuf_init(&k->pending, 0);
	strbuf_init(&k->names, 0);
	strbuf_init(&k->tips.names, 0);
	strbuf_init(&k->noted_before.names, 0);
	strbuf_init(&k->seen.packed, 0);
	return k;
}

/* The slot of key in by_key: its newest entry, or an empty slot. The key
 * is a hash already: its high half spreads well. */
static size_t key_slot(const struct keys *k, const struct hash128 *key)
{
	size_t i = (size_t)key->high & (k->key_cap - 1);

	while (k->by_key[i] && !hash_equal(&k->v[k->by_key[i] - 1].key, key))
		i = (i + 1) & (k->key_cap - 1);
	return i;
}

/* Chain entry i in front of the older ones with its key. */
static void hash_key(struct keys *k, size_t i)
{
	size_t s = key_slot(k, &k->v[i].key);

	k->older[i] = k->by_key[s];
	k->by_key[s] = (uint32_t)(i + 1);
}

static const char *entry_stage(const struct keys *k, const struct key_entry *e)
{
	return k->names.buf + e->stage;
}

static void format_key(struct strbuf *sb, const struct hash128 *key,
		       const struct sgit_oid *c, const char *stage)
{
	char hex[SGIT_HEXSZ + 1], khex[HASH_HEX_LEN + 1];

	hash_to_hex(key, khex);
	sgit_oid_hex(c, hex);
	strbuf_add(sb, "key ", 4);
	strbuf_add(sb, khex, HASH_HEX_LEN);
	strbuf_addch(sb, ' ');
	strbuf_add(sb, hex, SGIT_HEXSZ);
	strbuf_addch(sb, ' ');
	store_escape(sb, stage, NULL);
	strbuf_addch(sb, '\n');
}

static void format_tip(struct strbuf *sb, const char *ref,
		       const struct sgit_oid *oid)
{
	char hex[SGIT_HEXSZ + 1];

	sgit_oid_hex(oid, hex);
	strbuf_add(sb, "tip ", 4);
	strbuf_add(sb, hex, SGIT_HEXSZ);
	strbuf_addch(sb, ' ');
	store_escape(sb, ref, NULL);
	strbuf_addch(sb, '\n');
}

/* s NUL-terminated at the end of pool: its offset. */
static uint32_t pool_add(struct strbuf *pool, const char *s)
{
	size_t at = pool->len;

	if (at > UINT32_MAX - 4096) {
		fputs("pipe: fatal: the run-cache index's names outgrew 4 GB\n",
		      stderr);
		abort();
	}
	strbuf_add(pool, s, strlen(s) + 1);
	return (uint32_t)at;
}

static void add_key(struct keys *k, const struct hash128 *key,
		    const struct sgit_oid *c, const char *stage)
{
	size_t older_alloc = k->alloc;

	ALLOC_GROW(k->v, k->nr + 1, k->alloc);
	if (k->alloc != older_alloc)
		k->older = xrealloc(k->older, k->alloc * sizeof(*k->older));
	k->v[k->nr].key = *key;
	k->v[k->nr].commit = *c;
	k->v[k->nr].stage = pool_add(&k->names, stage);
	if ((k->nr + 1) * 2 > k->key_cap) {
		free(k->by_key);
		k->key_cap = k->key_cap ? k->key_cap * 2 : 64;
		while (k->key_cap < (k->nr + 1) * 2)
			k->key_cap *= 2;
		k->by_key = xcalloc(k->key_cap, sizeof(*k->by_key));
		for (size_t i = 0; i < k->nr; i++)
			hash_key(k, i);
	}
	hash_key(k, k->nr++);
}

/* An entry learnt in this process: kept, and written to the log unless
 * the whole file is to be written. */
static void learn_key(struct keys *k, const struct hash128 *key,
		      const struct sgit_oid *c, const char *stage)
{
	add_key(k, key, c, stage);
	if (!k->rewrite && !k->fold)
		format_key(&k->pending, key, c, stage);
}

static uint64_t ref_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The slot of ref in t: its tip, or an empty slot. */
static uint32_t *tip_slot(const struct tip_set *t, const char *ref)
{
	size_t i = (size_t)ref_hash(ref) & (t->cap - 1);

	for (;; i = (i + 1) & (t->cap - 1))
		if (!t->slot[i] || !strcmp(tip_ref(t, t->slot[i] - 1), ref))
			return &t->slot[i];
}

static struct key_tip *find_tip(const struct tip_set *t, const char *ref)
{
	uint32_t i = t->cap ? *tip_slot(t, ref) : 0;

	return i ? &t->v[i - 1] : NULL;
}

/* Add ref's tip, or move it. */
static void set_tip(struct tip_set *t, const char *ref,
		    const struct sgit_oid *oid)
{
	struct key_tip *tip = find_tip(t, ref);

	if (tip) {
		tip->oid = *oid;
		return;
	}
	ALLOC_GROW(t->v, t->nr + 1, t->alloc);
	t->v[t->nr].oid = *oid;
	t->v[t->nr].ref = pool_add(&t->names, ref);
	t->v[t->nr].noted = t->v[t->nr].packed = 0;
	t->nr++;
	if (t->nr * 2 > t->cap) {
		free(t->slot);
		t->cap = t->cap ? t->cap * 2 : 64;
		while (t->cap < t->nr * 2)
			t->cap *= 2;
		t->slot = xcalloc(t->cap, sizeof(*t->slot));
		for (size_t i = 0; i + 1 < t->nr; i++)
			*tip_slot(t, tip_ref(t, i)) = (uint32_t)(i + 1);
	}
	*tip_slot(t, ref) = (uint32_t)t->nr;
}

static int is_hex(const char *s, size_t n)
{
	return strspn(s, "0123456789abcdef") >= n;
}

/* One line, without its newline. */
static int parse_line(struct keys *k, char *line)
{
	struct strbuf sb = STRBUF_INIT;
	struct sgit_oid oid;
	struct hash128 key;
	char *hex;
	int ret = -1;

	if (!strncmp(line, "tip ", 4) && strlen(line) > 46 && line[44] == ' ') {
		line[44] = '\0';
		if (!sgit_oid_parse(line + 4, &oid) &&
		    !store_unescape(&sb, line + 45, strlen(line + 45))) {
			set_tip(&k->tips, sb.buf, &oid);
			ret = 0;
		}
	} else if (!strncmp(line, "key ", 4) && strlen(line) > KEY_PREFIX_LEN &&
		   line[36] == ' ' && line[77] == ' ') {
		hex = line + 4;
		line[36] = line[77] = '\0';
		if (is_hex(hex, HASH_HEX_LEN) && !hash_from_hex(hex, &key) &&
		    !sgit_oid_parse(line + 37, &oid) &&
		    !store_unescape(&sb, line + 78, strlen(line + 78))) {
			add_key(k, &key, &oid, sb.buf);
			ret = 0;
		}
	}
	strbuf_release(&sb);
	return ret;
}

/* The lines of text[0, len) into k; -1 at the first one that is not an
 * entry or a tip (or not whole). */
static int parse_lines(struct keys *k, const char *text, size_t len)
{
	struct strbuf line = STRBUF_INIT;
	int ret = 0;

	for (size_t at = 0; !ret && at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);

		if (!nl)
			return -1;
		strbuf_reset(&line);
		strbuf_add(&line, text + at, (size_t)(nl - text) - at);
		ret = strlen(line.buf) != line.len ? -1
						   : parse_line(k, line.buf);
		at = (size_t)(nl - text) + 1;
	}
	strbuf_release(&line);
	return ret;
}

/* Map the index file and read its header: 0, or -1 when it is missing or
 * not an index this version wrote. */
static int map_file(const char *path, struct keys *k)
{
	size_t ml = strlen(KEYS_MAGIC), hl;
	char *nl, *end;
	unsigned long long bytes;
	void *m;

	if (fs_map(path, FS_MAP_LAZY, &m, &k->map_len))
		return -1;
	k->map = m;
	if (k->map_len < ml || memcmp(k->map, KEYS_MAGIC, ml) ||
	    k->map[k->map_len - 1] != '\n' ||
	    !(nl = memchr(k->map, '\n', k->map_len)))
		return -1;
	hl = (size_t)(nl - k->map) + 1;
	/* <id> <refs> <bytes> */
	if (hl < ml + HASH_HEX_LEN + 4 || k->map[ml + HASH_HEX_LEN] != ' ' ||
	    !is_hex(k->map + ml, HASH_HEX_LEN))
		return -1;
	memcpy(k->id, k->map + ml, HASH_HEX_LEN);
	k->id[HASH_HEX_LEN] = '\0';
	{
		const char *r = k->map + ml + HASH_HEX_LEN + 1;
		const char *sp = memchr(r, ' ', (size_t)(nl - r));

		if (!sp ||
		    !((sp - r == HASH_HEX_LEN && is_hex(r, HASH_HEX_LEN)) ||
		      (sp - r == 1 && *r == '-')))
			return -1;
		memcpy(k->refs, r, (size_t)(sp - r));
		k->refs[sp - r] = '\0';
		errno = 0;
		bytes = strtoull(sp + 1, &end, 10);
		if (errno || end != nl || sp[1] < '0' || sp[1] > '9' ||
		    bytes > k->map_len - hl ||
		    (bytes && k->map[hl + bytes - 1] != '\n'))
			return -1;
	}
	k->key_beg = hl;
	k->key_end = hl + (size_t)bytes;
	return 0;
}

/* One line of the log (without its newline) that parse_line may take. */
static int is_entry_line(const char *line, size_t len)
{
	return len > 4 &&
	       (!memcmp(line, "key ", 4) || !memcmp(line, "tip ", 4)) &&
	       !memchr(line, '\0', len);
}

/* Read the log of the index file in k: its entry and tip lines into
 * entries, its last "refs" line into k->refs. Returns 0, 1 when it has a
 * line that is neither (the log is to be folded away), or -1 when there is
 * none for this file. A last line without its newline (an append cut
 * short) is left out; k->log_whole is where it starts. */
static int read_log(const char *path, struct keys *k, struct strbuf *entries)
{
	struct strbuf hdr = STRBUF_INIT, log = STRBUF_INIT;
	size_t at;
	int ret = -1;

	strbuf_addf(&hdr, "%s%s\n", LOG_MAGIC, k->id);
	if (strbuf_read_file(&log, path, 0) || log.len < hdr.len ||
	    memcmp(log.buf, hdr.buf, hdr.len))
		goto out;
	ret = 0;
	for (at = hdr.len; at < log.len;) {
		const char *line = log.buf + at;
		const char *nl = memchr(line, '\n', log.len - at);
		size_t ll;

		if (!nl)
			break;
		ll = (size_t)(nl - line);
		if (ll > 5 && !memcmp(line, "refs ", 5) &&
		    ((ll == 5 + HASH_HEX_LEN &&
		      is_hex(line + 5, HASH_HEX_LEN)) ||
		     (ll == 6 && line[5] == '-'))) {
			memcpy(k->refs, line + 5, ll - 5);
			k->refs[ll - 5] = '\0';
		} else if (is_entry_line(line, ll)) {
			strbuf_add(entries, line, ll + 1);
		} else {
			ret = 1;
			break;
		}
		at += ll + 1;
	}
	k->log_whole = at;
out:
	strbuf_release(&hdr);
	strbuf_release(&log);
	return ret;
}

/* Load the index file and its log whole: 0, or -1. */
static int load_all(struct keys *k, const struct strbuf *log)
{
	if (parse_lines(k, k->map + k->key_beg, k->map_len - k->key_beg) ||
	    parse_lines(k, log->buf, log->len))
		return -1;
	munmap(k->map, k->map_len);
	k->map = NULL;
	k->map_len = 0;
	return 0;
}

int keys_check_file(const char *path)
{
	struct keys *k = keys_new();
	struct strbuf none = STRBUF_INIT;
	int ret = map_file(path, k) || load_all(k, &none) ? -1 : 0;

	keys_clear(k);
	free(k);
	return ret;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct key_entry *x = *(const struct key_entry *const *)a;
	const struct key_entry *y = *(const struct key_entry *const *)b;

	/* the hex's order: the high half's digits come first */
	if (x->key.high != y->key.high)
		return x->key.high < y->key.high ? -1 : 1;
	if (x->key.low != y->key.low)
		return x->key.low < y->key.low ? -1 : 1;
	return (x > y) - (x < y); /* older first */
}

static char *log_path(const char *keys_path)
{
	return xstrfmt("%s.log", keys_path);
}

/* A new index file, written as it is made (no text of it all in memory:
 * 15 MB at 100,000 stages, twice): a header of the length it will have,
 * the lines, then the header itself, whose id is a digest of the time,
 * the process, the refs and the lines (an id no other file of this index
 * had: a log names the file it extends). */
struct out_file {
	struct fs_replace r;
	struct strbuf buf; /* lines not written yet */
	struct hasher *h;
	char *path;
	const char *refs;
	size_t key_bytes, hdr_len;
};

static void out_header(struct strbuf *sb, const char *id, const char *refs,
		       size_t key_bytes)
{
	strbuf_addf(sb, "%s%s %s %zu\n", KEYS_MAGIC, id, refs, key_bytes);
}

static int out_begin(struct out_file *o, const char *path, const char *refs,
		     size_t key_bytes, struct error *err)
{
	struct timespec ts;

	memset(o, 0, sizeof(*o));
	strbuf_init(&o->buf, 0);
	if (fs_replace_open(&o->r, path, 1, err))
		return -1;
	o->path = xstrdup(path);
	o->refs = refs;
	o->key_bytes = key_bytes;
	out_header(&o->buf, "0123456789abcdef0123456789abcdef", refs,
		   key_bytes);
	o->hdr_len = o->buf.len;
	memset(o->buf.buf, ' ', o->buf.len);
	o->h = hasher_new();
	clock_gettime(CLOCK_REALTIME, &ts);
	{
		struct strbuf stamp = STRBUF_INIT;

		strbuf_addf(&stamp, "%lld.%09ld %d %s", (long long)ts.tv_sec,
			    ts.tv_nsec, (int)getpid(), refs);
		hasher_add(o->h, stamp.buf, stamp.len);
		strbuf_release(&stamp);
	}
	fs_replace_write(&o->r, o->buf.buf, o->buf.len);
	strbuf_reset(&o->buf);
	return 0;
}

static void out_drain(struct out_file *o)
{
	hasher_add(o->h, o->buf.buf, o->buf.len);
	fs_replace_write(&o->r, o->buf.buf, o->buf.len);
	strbuf_reset(&o->buf);
}

static void out_add(struct out_file *o, const char *s, size_t len)
{
	strbuf_add(&o->buf, s, len);
	if (o->buf.len >= 65536)
		out_drain(o);
}

static void out_line(struct out_file *o, const struct strbuf *line)
{
	out_add(o, line->buf, line->len);
	out_add(o, "\n", 1);
}

/* The header in place, the file renamed over the index's, its log
 * gone: 0, or -1 (nothing replaced). */
static int out_finish(struct out_file *o, struct error *err)
{
	struct strbuf hdr = STRBUF_INIT;
	struct hash128 d;
	char id[HASH_HEX_LEN + 1], *lp;
	int ret;

	out_drain(o);
	hasher_final(o->h, &d);
	hash_to_hex(&d, id);
	out_header(&hdr, id, o->refs, o->key_bytes);
	if (!o->r.error &&
	    (hdr.len != o->hdr_len ||
	     pwrite(o->r.fd, hdr.buf, hdr.len, 0) != (ssize_t)hdr.len))
		o->r.error = hdr.len != o->hdr_len ? EINVAL : errno;
	ret = fs_replace_commit(&o->r, err);
	lp = log_path(o->path);
	if (!ret)
		unlink(lp);
	free(lp);
	hasher_free(o->h);
	free(o->path);
	strbuf_release(&o->buf);
	strbuf_release(&hdr);
	return ret;
}

static void out_abort(struct out_file *o)
{
	fs_replace_abort(&o->r);
	hasher_free(o->h);
	free(o->path);
	strbuf_release(&o->buf);
}

/* The whole index (all of it in k) into a new file; its log goes. */
static int write_file(const char *path, const struct keys *k, const char *refs,
		      struct error *err)
{
	struct strbuf line = STRBUF_INIT;
	const struct key_entry **ord = xcalloc(k->nr + 1, sizeof(*ord));
	struct out_file o;
	size_t key_bytes = 0;
	int ret = -1;

	for (size_t i = 0; i < k->nr; i++)
		ord[i] = &k->v[i];
	qsort(ord, k->nr, sizeof(*ord), cmp_entry);
	for (size_t i = 0; i < k->nr; i++) { /* for the header, first */
		strbuf_reset(&line);
		format_key(&line, &ord[i]->key, &ord[i]->commit,
			   entry_stage(k, ord[i]));
		key_bytes += line.len;
	}
	if (out_begin(&o, path, refs, key_bytes, err))
		goto out;
	for (size_t i = 0; i < k->nr; i++) {
		strbuf_reset(&line);
		format_key(&line, &ord[i]->key, &ord[i]->commit,
			   entry_stage(k, ord[i]));
		out_add(&o, line.buf, line.len);
	}
	for (size_t i = 0; i < k->tips.nr; i++) {
		strbuf_reset(&line);
		format_tip(&line, tip_ref(&k->tips, i), &k->tips.v[i].oid);
		out_add(&o, line.buf, line.len);
	}
	ret = out_finish(&o, err);
out:
	free(ord);
	strbuf_release(&line);
	return ret;
}

/* Where the log's whole lines end, from on: its length less a last line
 * without its newline (an append cut short). What another process
 * appended whole since this one read the log stays. */
static off_t whole_end(int fd, off_t from)
{
	char buf[4096];
	struct stat st;
	off_t end;

	if (fstat(fd, &st))
		return from;
	for (end = st.st_size; end > from;) {
		size_t n = end - from < (off_t)sizeof(buf)
				   ? (size_t)(end - from)
				   : sizeof(buf);

		if (pread(fd, buf, n, end - (off_t)n) != (ssize_t)n)
			return from;
		for (size_t i = n; i > 0; i--)
			if (buf[i - 1] == '\n')
				return end - (off_t)n + (off_t)i;
		end -= (off_t)n;
	}
	return from;
}

/* Whether the log with what is pending stays within an eighth of the
 * index (else it is folded into a new file). */
static int log_fits(const struct keys *k)
{
	return k->log_whole + k->pending.len <
	       (k->map_len + k->nr * 128) / 8 + 4096;
}

/* What this process learnt since its last append, to the log, a
 * cut-short last line cut off first, with a "refs <refs>" line; a log of
 * another file is replaced. *base: where pending went in it. Returns 0
 * or -1. */
static int append_log(const char *path, struct keys *k, const char *refs,
		      uint64_t *base)
{
	char *lp = log_path(path);
	struct strbuf sb = STRBUF_INIT;
	off_t from = (off_t)k->log_whole;
	off_t end;
	int fd, ret = -1;

	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_APPEND, 0644);
	if (fd < 0)
		goto out;
	strbuf_addf(&sb, "%s%s\n", LOG_MAGIC, k->id);
	if (!from) { /* none when read: one begun since is kept */
		char *hdr = xmalloc(sb.len);

		if (pread(fd, hdr, sb.len, 0) == (ssize_t)sb.len &&
		    !memcmp(hdr, sb.buf, sb.len))
			from = (off_t)sb.len;
		free(hdr);
	}
	end = from ? whole_end(fd, from) : 0;
	if (ftruncate(fd, end))
		goto out;
	if (from)
		strbuf_reset(&sb);
	*base = (uint64_t)end + sb.len;
	strbuf_add(&sb, k->pending.buf, k->pending.len);
	strbuf_addf(&sb, "refs %s\n", refs);
	ret = fs_write_all(fd, sb.buf, sb.len);
	if (!ret)
		k->log_whole = (size_t)end + sb.len;
out:
	if (fd >= 0)
		close(fd);
	free(lp);
	strbuf_release(&sb);
	return ret;
}

/* What the index needs of a commit message. */
struct key_info {
	int stage_kind;
	char key[HASH_HEX_LEN + 1];
	struct strbuf stage;
};

static int info_cb(const char *key, const char *value, size_t len, void *data,
		   struct error *err)
{
	struct key_info *ki = data;

	(void)err;
	if (!strcmp(key, "Pipe-Kind"))
		ki->stage_kind = len == 5 && !memcmp(value, "stage", 5);
	else if (!strcmp(key, "Pipe-Key") && len == HASH_HEX_LEN &&
		 is_hex(value, HASH_HEX_LEN))
		memcpy(ki->key, value, HASH_HEX_LEN);
	else if (!strcmp(key, "Pipe-Stage") && !ki->stage.len)
		store_unescape(&ki->stage, value, len);
	return 0;
}

/* Read a commit's key and stage: 1 when it has both, 0 when not, -1. */
static int commit_key(struct store *st, const struct sgit_oid *oid,
		      struct key_info *ki, struct error *err)
{
	struct error ignore = ERROR_INIT;
	struct sgit_commit c;
	int rc;

	memset(ki->key, 0, sizeof(ki->key));
	ki->stage_kind = 0;
	strbuf_reset(&ki->stage);
	if (sgit_read_commit(st->git, oid, &c, err))
		return -1;
	rc = !trailers_parse(c.message, info_cb, ki, &ignore) &&
	     ki->stage_kind && ki->key[0] && ki->stage.len;
	error_release(&ignore);
	sgit_commit_release(&c);
	return rc;
}

struct index_walk {
	struct store *st;
	struct keys *k;
	struct key_info ki;
	struct error *err;
};

static int has_entry(const struct keys *k, const struct hash128 *key,
		     const struct sgit_oid *commit)
{
	size_t i = k->key_cap ? k->by_key[key_slot(k, key)] : 0;

	for (; i; i = k->older[i - 1])
		if (sgit_oid_equal(&k->v[i - 1].commit, commit))
			return 1;
	return 0;
}

static int index_cb(const struct sgit_oid *oid, void *data)
{
	struct index_walk *w = data;
	int rc = commit_key(w->st, oid, &w->ki, w->err);
	struct hash128 key;

	if (rc > 0 && !hash_from_hex(w->ki.key, &key) &&
	    !has_entry(w->k, &key, oid))
		learn_key(w->k, &key, oid, w->ki.stage.buf);
	return rc < 0 ? -1 : 0;
}

/* A ref of run records (ours or a remote's): run commits carry no key and
 * their parents are run commits, so the index need not follow it. A run
 * commit names every stage, megabytes at 100,000 stages: walking one to
 * learn nothing cost more than all the rest of a one-stage run. */
static int is_runs_ref(const char *name)
{
	size_t len = strlen(name);

	return !strcmp(name, RUNS_REF) ||
	       (len > 5 && !strcmp(name + len - 5, "/runs") &&
		!strncmp(name, "refs/pipe/remotes/", 18));
}

static int tips_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	if (!is_runs_ref(name))
		set_tip(data, name, oid);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What the refs under refs/pipe/ are now, in O(loose refs): packed-refs
 * is only stat'ed (it is replaced by rename when rewritten). digest is
 * "-" when they cannot be read. */
static void see_refs(struct store *st, struct refs_seen *s)
{
	struct strbuf path = STRBUF_INIT, sb = STRBUF_INIT;
	struct strvec names = STRVEC_INIT;
	struct hasher *h;
	struct hash128 d;
	struct stat pst;
	int ok = 1;

	strbuf_reset(&s->packed);
	strvec_clear(&s->loose);
	strbuf_addf(&path, "%s/packed-refs", st->git_dir);
	if (!stat(path.buf, &pst))
		sgit_packed_identity(&pst, &s->packed);
	else if (errno == ENOENT)
		sgit_packed_identity(NULL, &s->packed);
	else
		ok = 0;
	strbuf_reset(&path);
	strbuf_addf(&path, "%s/refs/pipe", st->git_dir);
	if (fs_list_tree(path.buf, &names) && errno != ENOENT)
		ok = 0;
	for (size_t i = 0; ok && i < names.nr; i++) {
		size_t len = strlen(names.v[i]);

		strbuf_reset(&path);
		strbuf_addf(&path, "refs/pipe/%s", names.v[i]);
		if ((len > 5 && !strcmp(names.v[i] + len - 5, ".lock")) ||
		    is_runs_ref(path.buf))
			continue;
		strbuf_reset(&sb);
		strbuf_addf(&sb, "%s/%s", st->git_dir, path.buf);
		strbuf_addch(&path, ' ');
		if (strbuf_read_file(&path, sb.buf, 256) ||
		    strlen(path.buf) != path.len)
			ok = 0;
		if (path.buf[path.len - 1] == '\n')
			strbuf_setlen(&path, path.len - 1);
		strvec_push(&s->loose, path.buf);
	}
	if (s->loose.nr > 1)
		qsort(s->loose.v, s->loose.nr, sizeof(*s->loose.v), cmp_str);
	h = hasher_new();
	hasher_add_str(h, s->packed.buf);
	for (size_t i = 0; i < s->loose.nr; i++) {
		hasher_add_str(h, "\n");
		hasher_add_str(h, s->loose.v[i]);
	}
	hasher_final(h, &d);
	hasher_free(h);
	if (ok)
		hash_to_hex(&d, s->digest);
	else
		strcpy(s->digest, NO_REFS);
	strvec_clear(&names);
	strbuf_release(&path);
	strbuf_release(&sb);
}

/* Put each "<ref> <value>" line of lines into want (ref -> value). */
static void want_lines(struct strmap *want, struct strvec *names,
		       const struct strvec *lines)
{
	for (size_t i = 0; i < lines->nr; i++) {
		const char *sp = strchr(lines->v[i], ' ');
		char *name = xstrndup(lines->v[i], (size_t)(sp - lines->v[i]));

		strvec_push_nodup(names, name);
		strmap_put(want, name, (void *)(sp + 1));
	}
}

/* name's value in the "<name> <value>" lines of map, or NULL. */
static const char *line_value(const struct strmap *map, struct strbuf *name,
			      const char *line, const char **value)
{
	const char *sp = strchr(line, ' ');

	strbuf_reset(name);
	strbuf_add(name, line, (size_t)(sp - line));
	*value = sp + 1;
	return strmap_get(map, name->buf);
}

/* Lines read back by offset through a buffer: the log's for the notes,
 * the file's and the log's for a fold (read, not mapped: the pages of a
 * mapping read whole would count in the process's resident memory). */
struct reader {
	int fd;
	char *buf;
	size_t cap, len;
	uint64_t off; /* of buf[0] in the file */
};

#define READER_INIT(cap)                                                       \
	{                                                                      \
		-1, NULL, (cap), 0, 0                                          \
	}

static int reader_open(struct reader *r, const char *path)
{
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return -1;
	r->buf = xmalloc(r->cap);
	r->len = 0;
	return 0;
}

static void reader_close(struct reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	r->fd = -1;
	r->buf = NULL;
}

/* The whole line at `at` into line, without its newline: 0, or -1 when
 * there is none (the file ends first, or cannot be read). */
static int reader_line(struct reader *r, uint64_t at, struct strbuf *line)
{
	for (int fresh = 0;; fresh = 1) {
		ssize_t n;

		if (at >= r->off && at < r->off + r->len) {
			size_t i = (size_t)(at - r->off);
			const char *nl = memchr(r->buf + i, '\n', r->len - i);

			if (nl) {
				strbuf_reset(line);
				strbuf_add(line, r->buf + i,
					   (size_t)(nl - r->buf) - i);
				return 0;
			}
			if (fresh && r->len < r->cap)
				return -1;
			if (fresh) {
				r->cap *= 2;
				r->buf = xrealloc(r->buf, r->cap);
			}
		}
		n = pread(r->fd, r->buf, r->cap, (off_t)at);
		if (n <= 0)
			return -1;
		r->off = at;
		r->len = (size_t)n;
	}
}

/* The line at a note's offset at into line: pending's, or the log's
 * (r, opened on first use). */
static int note_line(struct store *st, const struct keys *k, struct reader *r,
		     uint64_t at, struct strbuf *line)
{
	if (at >= k->log_whole) {
		size_t i = (size_t)(at - k->log_whole);
		const char *nl = i < k->pending.len
					 ? memchr(k->pending.buf + i, '\n',
						  k->pending.len - i)
					 : NULL;

		if (!nl)
			return -1;
		strbuf_reset(line);
		strbuf_add(line, k->pending.buf + i,
			   (size_t)(nl - k->pending.buf) - i);
		return 0;
	}
	if (r->fd < 0) {
		char *lp = log_path(st->keys_path);
		int rc = reader_open(r, lp);

		free(lp);
		if (rc)
			return -1;
	}
	return reader_line(r, at, line);
}

/* A key line's key, commit and stage (line is cut up): 0, or -1. */
static int split_key(struct strbuf *line, struct hash128 *key,
		     struct sgit_oid *c, struct strbuf *stage)
{
	char *s = line->buf;

	if (line->len <= KEY_PREFIX_LEN || strncmp(s, "key ", 4) ||
	    s[36] != ' ' || s[77] != ' ')
		return -1;
	s[36] = s[77] = '\0';
	strbuf_reset(stage);
	return !is_hex(s + 4, HASH_HEX_LEN) || hash_from_hex(s + 4, key) ||
			       sgit_oid_parse(s + 37, c) ||
			       store_unescape(stage, s + 78, line->len - 78)
		       ? -1
		       : 0;
}

/* A tip line's commit and ref (line is cut up): 0, or -1. */
static int split_tip(struct strbuf *line, struct sgit_oid *oid,
		     struct strbuf *ref)
{
	char *s = line->buf;

	if (line->len <= 45 || strncmp(s, "tip ", 4) || s[44] != ' ')
		return -1;
	s[44] = '\0';
	strbuf_reset(ref);
	return sgit_oid_parse(s + 4, oid) ||
			       store_unescape(ref, s + 45, line->len - 45)
		       ? -1
		       : 0;
}

/* Note i's tip: its ref and commit. */
static int note_tip(struct store *st, const struct keys *k, struct reader *r,
		    size_t i, struct strbuf *line, struct sgit_oid *oid,
		    struct strbuf *ref)
{
	uint64_t at = k->note[i] >> 1;

	if (note_line(st, k, r, at, line))
		return -1;
	return note_line(st, k, r, at + line->len + 1, line) ||
			       split_tip(line, oid, ref)
		       ? -1
		       : 0;
}

/* A note's tag: 32 bits of its key, both halves mixed (the key is a
 * hash, but a test's may have one half zero). */
static uint32_t note_tag(const struct hash128 *key)
{
	uint64_t x = key->high ^ key->low;

	return (uint32_t)(x ^ (x >> 32));
}

static void note_hash(struct keys *k, uint64_t v)
{
	size_t i = (uint32_t)(v >> 32) & (k->note_cap - 1);

	while (k->note_slot[i])
		i = (i + 1) & (k->note_cap - 1);
	k->note_slot[i] = v;
}

/* A commit noted while mapped: its lines to pending, a note of where. */
static void note_add(struct keys *k, const struct hash128 *key,
		     const struct sgit_oid *c, const char *stage,
		     const char *ref)
{
	uint64_t tag = note_tag(key);

	if (k->note_nr >= UINT32_MAX - 1) {
		fputs("pipe: fatal: the run-cache index noted 4 billion "
		      "commits\n",
		      stderr);
		abort();
	}
	ALLOC_GROW(k->note, k->note_nr + 1, k->note_alloc);
	k->note[k->note_nr] = (uint64_t)(k->log_whole + k->pending.len) << 1;
	format_key(&k->pending, key, c, stage);
	format_tip(&k->pending, ref, c);
	if ((k->note_nr + 1) * 4 > k->note_cap * 3) {
		uint64_t *old = k->note_slot;
		size_t old_cap = k->note_cap;

		k->note_cap = old_cap ? old_cap * 2 : 64;
		k->note_slot = xcalloc(k->note_cap, sizeof(*k->note_slot));
		for (size_t i = 0; i < old_cap; i++)
			if (old[i])
				note_hash(k, old[i]);
		free(old);
	}
	note_hash(k, tag << 32 | (k->note_nr + 1));
	k->note_nr++;
}

/* The newest note with key (of stage, unless NULL): 1 and its commit in
 * out, 0 none, -1 when a note's line cannot be read back. */
static int find_note(struct store *st, const struct keys *k, const char *stage,
		     const struct hash128 *key, struct sgit_oid *out)
{
	struct reader r = READER_INIT(256);
	struct strbuf line = STRBUF_INIT, name = STRBUF_INIT;
	uint32_t tag = note_tag(key);
	size_t best = 0;
	int ret = 0;

	for (size_t i = tag & (k->note_cap - 1); k->note_cap && k->note_slot[i];
	     i = (i + 1) & (k->note_cap - 1)) {
		uint64_t v = k->note_slot[i];
		size_t n = (uint32_t)v;
		struct hash128 h;
		struct sgit_oid c;

		if ((uint32_t)(v >> 32) != tag || n <= best)
			continue;
		if (note_line(st, k, &r, k->note[n - 1] >> 1, &line) ||
		    split_key(&line, &h, &c, &name)) {
			ret = -1;
			break;
		}
		if (hash_equal(&h, key) &&
		    (!stage || !strcmp(name.buf, stage))) {
			best = n;
			*out = c;
			ret = 1;
		}
	}
	reader_close(&r);
	strbuf_release(&line);
	strbuf_release(&name);
	return ret;
}

/* pending to the log with "refs <refs>": the notes in it now point
 * there. 0, or -1 (pending kept for the next try). */
static int notes_append(struct store *st, struct keys *k, const char *refs)
{
	uint64_t old = k->log_whole, base;

	if (append_log(st->keys_path, k, refs, &base))
		return -1;
	if (base != old)
		for (size_t i = 0; i < k->note_nr; i++)
			if (k->note[i] >> 1 >= old)
				k->note[i] += (base - old) << 1;
	strcpy(k->refs, refs);
	strbuf_reset(&k->pending);
	return 0;
}

/* Before a rebuild drops the notes: what they moved and packed, as the
 * tips of a loaded index keep it. A note that cannot be read is left
 * out (the save then cannot say the refs are covered). */
static void notes_to_tips(struct store *st, struct keys *k)
{
	struct reader r = READER_INIT(65536);
	struct strbuf line = STRBUF_INIT, ref = STRBUF_INIT;
	struct sgit_oid oid;

	for (size_t i = 0; i < k->note_nr; i++) {
		if (note_tip(st, k, &r, i, &line, &oid, &ref))
			continue;
		set_tip(&k->noted_before, ref.buf, &oid);
		if (k->note[i] & 1)
			set_tip(&k->ours.other, ref.buf, &oid);
	}
	reader_close(&r);
	strbuf_release(&line);
	strbuf_release(&ref);
}

/* The notes of the batch not yet in the log (pending's), by ref: the
 * last for each, as its index + 1 in *out (note index, commit). */
struct batch_note {
	size_t note;
	struct sgit_oid oid;
};

static void batch_notes(struct store *st, const struct keys *k,
			struct strmap *by_ref, struct strvec *refs,
			struct batch_note **out)
{
	struct reader none = READER_INIT(0);
	struct strbuf line = STRBUF_INIT, ref = STRBUF_INIT;
	size_t first = k->note_nr, n = 0;

	while (first && k->note[first - 1] >> 1 >= k->log_whole)
		first--;
	*out = xcalloc(k->note_nr - first + 1, sizeof(**out));
	strmap_init(by_ref, k->note_nr - first);
	for (size_t i = first; i < k->note_nr; i++) {
		struct sgit_oid oid;

		if (note_tip(st, k, &none, i, &line, &oid, &ref))
			continue;
		(*out)[n].note = i;
		(*out)[n].oid = oid;
		strvec_push(refs, ref.buf);
		strmap_put(by_ref, refs->v[refs->nr - 1], (void *)(++n));
	}
	strbuf_release(&line);
	strbuf_release(&ref);
}

/* A note's ref by the hash of its name, for the last of each. */
struct note_ref {
	uint64_t hash;
	size_t i;
};

static int cmp_note_ref(const void *a, const void *b)
{
	const struct note_ref *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

/* Which notes are a ref's last (1 in last[i]): a ref noted twice, its
 * older notes left out. 0, or -1 when a line cannot be read or two refs
 * share a hash (not sorted out). */
static int last_notes(struct store *st, const struct keys *k, char *last)
{
	struct reader r = READER_INIT(65536);
	struct strbuf line = STRBUF_INIT, ref = STRBUF_INIT,
		      other = STRBUF_INIT;
	struct note_ref *v = xcalloc(k->note_nr + 1, sizeof(*v));
	struct sgit_oid oid;
	int ret = -1;

	for (size_t i = 0; i < k->note_nr; i++) {
		if (note_tip(st, k, &r, i, &line, &oid, &ref))
			goto out;
		v[i].hash = ref_hash(ref.buf);
		v[i].i = i;
	}
	qsort(v, k->note_nr, sizeof(*v), cmp_note_ref);
	for (size_t j = 0; j < k->note_nr; j++) {
		int later = j + 1 < k->note_nr && v[j + 1].hash == v[j].hash;

		last[v[j].i] = !later;
		if (!later) /* the same ref, or two that share a hash? */
			continue;
		if (note_tip(st, k, &r, v[j].i, &line, &oid, &ref) ||
		    note_tip(st, k, &r, v[j + 1].i, &line, &oid, &other) ||
		    strcmp(ref.buf, other.buf))
			goto out;
	}
	ret = 0;
out:
	reader_close(&r);
	free(v);
	strbuf_release(&line);
	strbuf_release(&ref);
	strbuf_release(&other);
	return ret;
}

/* The tips this process noted while mapped (newer than the rest), into
 * moved_by_us's maps: a ref among the few those hold gets its last noted
 * value there; any other must have been packed with it by one of our
 * rewrites of packed-refs (marked: a run packs every ref it moves).
 * 1 when the notes fit, else 0 (then the next process reads the refs).
 * held keeps the values put. */
static int notes_moved(struct store *st, const struct keys *k, int ours,
		       struct strmap *want, struct strvec *names,
		       const struct strmap *loose, struct strmap *packed,
		       struct strvec *pnames, struct strvec *held)
{
	struct reader r = READER_INIT(65536);
	struct strbuf line = STRBUF_INIT, ref = STRBUF_INIT;
	char *last = xcalloc(k->note_nr + 1, 1);
	int ret = 0;

	if (last_notes(st, k, last))
		goto out;
	for (size_t i = 0; i < k->note_nr; i++) {
		int mark = ours && (k->note[i] & 1);
		struct sgit_oid oid;
		char hex[SGIT_HEXSZ + 1];
		const char *v, *p;

		if (!last[i])
			continue;
		if (note_tip(st, k, &r, i, &line, &oid, &ref))
			goto out;
		if (!strmap_get(want, ref.buf) && !strmap_get(loose, ref.buf) &&
		    !strmap_get(packed, ref.buf)) {
			if (!mark) /* neither loose nor packed by us */
				goto out;
			continue;
		}
		sgit_oid_hex(&oid, hex);
		strvec_push(held, hex);
		v = held->v[held->nr - 1];
		if (!strmap_get(want, ref.buf)) {
			strvec_push(names, ref.buf);
			strmap_put(want, names->v[names->nr - 1], (void *)v);
		} else {
			strmap_put(want, ref.buf, (void *)v); /* its key kept */
		}
		if (!mark)
			continue;
		p = strmap_get(packed, ref.buf);
		if (p && strcmp(p, v)) /* packed after by another value */
			goto out;
		if (!p) {
			strvec_push(pnames, ref.buf);
			strmap_put(packed, pnames->v[pnames->nr - 1],
				   (void *)v);
		}
	}
	ret = 1;
out:
	reader_close(&r);
	free(last);
	strbuf_release(&line);
	strbuf_release(&ref);
	return ret;
}

/* A fold without the index in memory: the file's key lines (sorted) and
 * the log's (sorted here by key, then by place: older first) merged, the
 * file's tips but those the log moved, then the log's last tip for each
 * ref. What it holds is 24 bytes for each key line of the log and 16 for
 * each tip, not the entries and tips loaded and the text (at 100,000
 * stages ~13 MB, then 30 MB more at the end of a full run). */
struct log_key {
	struct hash128 key;
	uint64_t at;
};

struct log_tip {
	uint64_t hash, at;
};

static int cmp_log_key(const void *a, const void *b)
{
	const struct log_key *x = a, *y = b;

	if (x->key.high != y->key.high)
		return x->key.high < y->key.high ? -1 : 1;
	if (x->key.low != y->key.low)
		return x->key.low < y->key.low ? -1 : 1;
	return (x->at > y->at) - (x->at < y->at);
}

static int cmp_log_tip(const void *a, const void *b)
{
	const struct log_tip *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return (x->at > y->at) - (x->at < y->at);
}

/* The last tip line of the log for a ref's hash, or NULL. */
static const struct log_tip *last_tip(const struct log_tip *v, size_t nr,
				      uint64_t hash)
{
	size_t lo = 0, hi = nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].hash < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nr && v[lo].hash == hash ? &v[lo] : NULL;
}

struct fold {
	struct log_key *keys;
	size_t keys_nr, keys_alloc;
	struct log_tip *tips;
	size_t tips_nr, tips_alloc;
	size_t key_bytes;
	uint64_t start; /* the log's first line */
};

/* The log's key and tip lines, where they are (a tip by its ref's hash,
 * its last line only). */
static int fold_scan(struct reader *lr, const struct keys *k, struct fold *f)
{
	struct strbuf line = STRBUF_INIT;
	size_t n = 0;
	int ret = 0;

	for (uint64_t at = f->start; at < k->log_whole; at += line.len + 1) {
		if (reader_line(lr, at, &line)) {
			ret = -1;
			break;
		}
		if (line.len > KEY_PREFIX_LEN && !memcmp(line.buf, "key ", 4)) {
			struct log_key *e;

			ALLOC_GROW(f->keys, f->keys_nr + 1, f->keys_alloc);
			e = &f->keys[f->keys_nr];
			line.buf[4 + HASH_HEX_LEN] = '\0';
			if (!is_hex(line.buf + 4, HASH_HEX_LEN) ||
			    hash_from_hex(line.buf + 4, &e->key)) {
				ret = -1;
				break;
			}
			e->at = at;
			f->keys_nr++;
			f->key_bytes += line.len + 1;
		} else if (line.len > 45 && !memcmp(line.buf, "tip ", 4)) {
			ALLOC_GROW(f->tips, f->tips_nr + 1, f->tips_alloc);
			f->tips[f->tips_nr].hash = ref_hash(line.buf + 45);
			f->tips[f->tips_nr++].at = at;
		}
	}
	qsort(f->keys, f->keys_nr, sizeof(*f->keys), cmp_log_key);
	qsort(f->tips, f->tips_nr, sizeof(*f->tips), cmp_log_tip);
	for (size_t i = 0; i < f->tips_nr; i++) /* the last of each */
		if (!n || f->tips[n - 1].hash != f->tips[i].hash)
			f->tips[n++] = f->tips[i];
		else
			f->tips[n - 1] = f->tips[i];
	f->tips_nr = n;
	strbuf_release(&line);
	return ret;
}

/* The merged key lines, then the tips, into o. */
static int fold_write(struct reader *fr, struct reader *lr, struct reader *rr,
		      const struct keys *k, const struct fold *f,
		      struct out_file *o)
{
	struct strbuf line = STRBUF_INIT, lline = STRBUF_INIT;
	uint64_t at = k->key_beg;
	size_t j = 0;
	int ret = -1;

	while (at < k->key_end || j < f->keys_nr) {
		int file_first = at < k->key_end;

		if (file_first && reader_line(fr, at, &line))
			goto out;
		if (file_first && j < f->keys_nr) {
			char hex[HASH_HEX_LEN + 1];

			hash_to_hex(&f->keys[j].key, hex);
			file_first =
				line.len > KEY_PREFIX_LEN &&
				memcmp(line.buf + 4, hex, HASH_HEX_LEN) <= 0;
		}
		if (file_first) {
			at += line.len + 1;
			out_line(o, &line);
			continue;
		}
		if (reader_line(rr, f->keys[j++].at, &lline))
			goto out;
		out_line(o, &lline);
	}
	for (at = k->key_end; at < k->map_len; at += line.len + 1) {
		if (reader_line(fr, at, &line))
			goto out;
		if (line.len > 45 && !memcmp(line.buf, "tip ", 4) &&
		    last_tip(f->tips, f->tips_nr, ref_hash(line.buf + 45)))
			continue; /* the log moved it */
		out_line(o, &line);
	}
	for (at = f->start; at < k->log_whole; at += line.len + 1) {
		const struct log_tip *t;

		if (reader_line(lr, at, &line))
			goto out;
		if (line.len <= 45 || memcmp(line.buf, "tip ", 4) ||
		    !(t = last_tip(f->tips, f->tips_nr,
				   ref_hash(line.buf + 45))) ||
		    t->at != at)
			continue;
		out_line(o, &line);
	}
	ret = 0;
out:
	strbuf_release(&line);
	strbuf_release(&lline);
	return ret;
}

/* Fold the log into a new file (the refs it covers: refs). 0, or -1. */
static int fold_file(struct store *st, const struct keys *k, const char *refs,
		     struct error *err)
{
	struct reader fr = READER_INIT(65536), lr = READER_INIT(65536),
		      rr = READER_INIT(256);
	struct fold f = {0};
	struct out_file o;
	char *lp = log_path(st->keys_path);
	int ret = -1;

	f.start = strlen(LOG_MAGIC) + HASH_HEX_LEN + 1;
	if (reader_open(&fr, st->keys_path) ||
	    (k->log_whole && (reader_open(&lr, lp) || reader_open(&rr, lp))))
		goto out;
	if (k->log_whole && fold_scan(&lr, k, &f))
		goto out;
	if (out_begin(&o, st->keys_path, refs,
		      k->key_end - k->key_beg + f.key_bytes, err))
		goto out;
	if (fold_write(&fr, &lr, &rr, k, &f, &o)) {
		out_abort(&o);
		goto out;
	}
	ret = out_finish(&o, err);
out:
	reader_close(&fr);
	reader_close(&lr);
	reader_close(&rr);
	free(f.keys);
	free(f.tips);
	free(lp);
	return ret;
}

/* "<ref> <commit>" for each tip of a, then each of b marked (noted, or
 * packed): a's are older. */
static void tip_lines(const struct tip_set *a, const struct tip_set *b,
		      int packed, struct strvec *out)
{
	const struct tip_set *sets[] = {a, b};

	for (size_t s = 0; s < 2; s++)
		for (size_t i = 0; i < sets[s]->nr; i++) {
			const struct key_tip *t = &sets[s]->v[i];
			char hex[SGIT_HEXSZ + 1];

			if (s == 1 && !(packed ? t->packed : t->noted))
				continue;
			sgit_oid_hex(&t->oid, hex);
			strvec_pushf(out, "%s %s", tip_ref(sets[s], i), hex);
		}
}

/* "<ref> <commit>" for each ref this process moved, older first; and for
 * each its rewrites of packed-refs wrote, with the value last written:
 * made at the save only (a run of 100,000 stages held the text of each
 * to its end, twice). */
static void noted_lines(const struct keys *k, struct strvec *out)
{
	tip_lines(&k->noted_before, &k->tips, 0, out);
}

static void packed_lines(const struct keys *k, struct strvec *out)
{
	tip_lines(&k->ours.other, &k->tips, 1, out);
}

/* Whether the refs moved from k->seen to now by this process's moves
 * only (noted_lines): then the index, with what it noted, covers now. With
 * packed-refs as seen, the loose refs now are those seen and noted. When
 * this process rewrote packed-refs (a batch of moves, k->ours), starting
 * each time from the file seen or last written, a ref noted or seen loose
 * may be packed now, with the value noted; and every ref a rewrite
 * packed and that is not loose now has the value noted or seen. A run of
 * two stages then does not cost the next one a load of the whole index
 * and a read of every ref. */
static int moved_by_us(struct store *st, const struct keys *k,
		       const struct refs_seen *now)
{
	struct strmap want = {0}, loose = {0}, packed = {0};
	struct strvec names = STRVEC_INIT, lnames = STRVEC_INIT,
		      pnames = STRVEC_INIT, noted = STRVEC_INIT,
		      plines = STRVEC_INIT, held = STRVEC_INIT;
	struct strbuf name = STRBUF_INIT;
	int ret = 0, ours = 0;

	if (!strcmp(now->digest, NO_REFS) || !strcmp(k->seen.digest, NO_REFS))
		return 0;
	if (strcmp(now->packed.buf, k->seen.packed.buf)) {
		if (k->ours.broken || !k->ours.after.len ||
		    strcmp(now->packed.buf, k->ours.after.buf))
			return 0;
		ours = 1;
	}
	noted_lines(k, &noted);
	strmap_init(&want, k->seen.loose.nr + noted.nr);
	want_lines(&want, &names, &k->seen.loose);
	want_lines(&want, &names, &noted);
	strmap_init(&loose, now->loose.nr);
	want_lines(&loose, &lnames, &now->loose);
	if (ours)
		packed_lines(k, &plines);
	strmap_init(&packed, plines.nr);
	want_lines(&packed, &pnames, &plines);
	if (k->note_nr && !notes_moved(st, k, ours, &want, &names, &loose,
				       &packed, &pnames, &held))
		goto out;
	for (size_t i = 0; i < now->loose.nr; i++) { /* loose: noted or seen */
		const char *v,
			*w = line_value(&want, &name, now->loose.v[i], &v);

		if (!w || strcmp(w, v))
			goto out;
	}
	for (size_t i = 0; i < names.nr; i++) { /* the rest: packed by us */
		const char *w = strmap_get(&want, names.v[i]), *p;

		if (strmap_get(&loose, names.v[i]))
			continue;
		p = strmap_get(&packed, names.v[i]);
		if (!p || strcmp(p, w))
			goto out;
	}
	for (size_t i = 0; i < pnames.nr; i++) { /* and nothing else */
		const char *w = strmap_get(&want, pnames.v[i]);

		if (strmap_get(&loose, pnames.v[i]) || is_runs_ref(pnames.v[i]))
			continue;
		if (!w || strcmp(w, strmap_get(&packed, pnames.v[i])))
			goto out;
	}
	ret = 1;
out:
	strmap_release(&want);
	strmap_release(&loose);
	strmap_release(&packed);
	strvec_clear(&names);
	strvec_clear(&lnames);
	strvec_clear(&pnames);
	strvec_clear(&noted);
	strvec_clear(&plines);
	strvec_clear(&held);
	strbuf_release(&name);
	return ret;
}

void keys_packed(struct store *st, const struct sgit_packed_report *rep)
{
	struct keys *k = st->keys;
	struct strbuf name = STRBUF_INIT;
	struct strmap batch = {0};
	struct strvec brefs = STRVEC_INIT;
	struct batch_note *bn = NULL;
	const char *from;

	if (!k || !rep->rewritten)
		return;
	if (k->note_nr)
		batch_notes(st, k, &batch, &brefs, &bn);
	from = k->ours.after.len ? k->ours.after.buf : k->seen.packed.buf;
	if (strcmp(rep->before.buf, from))
		k->ours.broken = 1;
	strbuf_reset(&k->ours.after);
	strbuf_add(&k->ours.after, rep->after.buf, rep->after.len);
	for (size_t i = 0; i < rep->packed.nr; i++) {
		const char *line = rep->packed.v[i], *sp = strchr(line, ' ');
		struct sgit_oid oid;
		struct key_tip *t;
		size_t n;

		strbuf_reset(&name);
		if (!sp || sgit_oid_parse(sp + 1, &oid)) {
			k->ours.broken = 1; /* not a line pipe wrote */
			continue;
		}
		strbuf_add(&name, line, (size_t)(sp - line));
		/* a tip with this value is marked, not copied: a run packs
		 * every ref it moves; a note of this batch's the same */
		n = (size_t)strmap_get(&batch, name.buf);
		if (n && sgit_oid_equal(&bn[n - 1].oid, &oid)) {
			k->note[bn[n - 1].note] |= 1;
			if ((t = find_tip(&k->ours.other, name.buf)))
				t->oid = oid; /* this packing is the last */
			if ((t = find_tip(&k->tips, name.buf))) {
				t->oid = oid;
				t->packed = 0;
			}
			continue;
		}
		t = find_tip(&k->tips, name.buf);
		if (t && sgit_oid_equal(&t->oid, &oid)) {
			t->packed = 1;
			continue;
		}
		set_tip(&k->ours.other, name.buf, &oid);
		if (t)
			t->packed = 0;
	}
	strbuf_release(&name);
	strmap_release(&batch);
	strvec_clear(&brefs);
	free(bn);
}

/* Index the commits the refs gained since the index was written. Returns
 * 0, 1 when the index must be rebuilt (a ref vanished, or its old tip is
 * gone), or -1. */
static int keys_sync(struct store *st, struct keys *k, struct error *err)
{
	struct tip_set now = {NULL, 0, 0, NULL, 0, STRBUF_INIT};
	struct oid_list push = {0}, hide = {0};
	struct index_walk w = {st, k, {0, {0}, STRBUF_INIT}, err};
	int rc, ret = -1;

	if (sgit_refs_list(st->git, "refs/pipe/", tips_cb, &now, err))
		goto out;
	for (size_t i = 0; i < now.nr; i++) {
		const struct key_tip *t = find_tip(&k->tips, tip_ref(&now, i));

		if (t && sgit_oid_equal(&t->oid, &now.v[i].oid))
			continue;
		/* A ref that moved back or sideways drops commits. */
		if (t && sgit_object_exists(st->git, &t->oid) &&
		    (rc = sgit_descends(st->git, &now.v[i].oid, &t->oid,
					err)) <= 0) {
			ret = rc < 0 ? -1 : 1;
			goto out;
		}
		ALLOC_GROW(push.v, push.nr + 1, push.alloc);
		push.v[push.nr++] = now.v[i].oid;
		/* Only the moved refs' old tips are hidden: hiding all N
		 * would parse N commits for each run. Commits the walk meets
		 * that another ref already led to are indexed once
		 * (index_cb). */
		if (t) {
			ALLOC_GROW(hide.v, hide.nr + 1, hide.alloc);
			hide.v[hide.nr++] = t->oid;
		}
	}
	for (size_t i = 0; i < k->tips.nr; i++) {
		const char *ref = tip_ref(&k->tips, i);

		if (is_runs_ref(ref)) /* an older index's line */
			continue;
		if (!find_tip(&now, ref) ||
		    !sgit_object_exists(st->git, &k->tips.v[i].oid)) {
			ret = 1;
			goto out;
		}
	}
	ret = 0;
	if (!push.nr)
		goto out;
	if (sgit_walk(st->git, push.v, push.nr, hide.v, hide.nr, 0, index_cb,
		      &w, err)) {
		ret = -1;
		goto out;
	}
	/* the moved tips after the entries they cover */
	for (size_t i = 0; i < now.nr; i++) {
		const struct key_tip *t = find_tip(&k->tips, tip_ref(&now, i));

		if (!k->rewrite && !k->fold &&
		    (!t || !sgit_oid_equal(&t->oid, &now.v[i].oid)))
			format_tip(&k->pending, tip_ref(&now, i),
				   &now.v[i].oid);
	}
	tips_release(&k->tips);
	k->tips = now;
	memset(&now, 0, sizeof(now));
	strbuf_init(&now.names, 0);
out:
	tips_release(&now);
	free(push.v);
	free(hide.v);
	strbuf_release(&w.ki.stage);
	return ret;
}

/* Read the index file and its log into k: mapped when no ref moved since
 * they were written, else loaded whole. Returns 0, or 1 when the index is
 * to be rebuilt (missing, damaged, of another version). */
static int open_file(struct store *st, struct keys *k)
{
	struct strbuf log = STRBUF_INIT;
	char *lp = log_path(st->keys_path);
	int rc, ret = 1;

	if (map_file(st->keys_path, k))
		goto out;
	rc = read_log(lp, k, &log);
	if (rc == 1) /* not an append cut short: fold it away */
		goto out;
	if (rc < 0)
		k->log_whole = 0; /* none, or another file's: replaced */
	if (strcmp(k->refs, NO_REFS) && !strcmp(k->refs, k->seen.digest)) {
		if (parse_lines(k, log.buf, log.len))
			goto out;
		k->mapped = 1;
	} else if (load_all(k, &log)) {
		goto out;
	}
	ret = 0;
out:
	if (ret)
		keys_clear_entries(k);
	free(lp);
	strbuf_release(&log);
	return ret;
}

/* An index rebuilt at the start of a process, written at once and
 * mapped: what the process learns then goes to the log at each flush and
 * is read back from there, not held to its end (a full run's 100,000
 * entries and tips, and their text at the end). Left as it is when it
 * cannot be written. */
static void to_mapped(struct store *st, struct keys *k)
{
	struct error err = ERROR_INIT;
	struct keys *m = keys_new();

	/* it covers the refs seen: synced with them just now */
	if (write_file(st->keys_path, k, k->seen.digest, &err) ||
	    map_file(st->keys_path, m)) {
		error_release(&err);
		keys_clear(m);
		free(m);
		return;
	}
	keys_clear_entries(k);
	k->map = m->map;
	k->map_len = m->map_len;
	k->key_beg = m->key_beg;
	k->key_end = m->key_end;
	memcpy(k->id, m->id, sizeof(k->id));
	memcpy(k->refs, m->refs, sizeof(k->refs));
	k->mapped = 1;
	m->map = NULL;
	keys_clear(m);
	free(m);
}

/* Bring the index up to date: read and checked against the refs the
 * first time (kept in st afterwards: a run of 2,000 stages looks up 2,000
 * keys, and syncing each time would be quadratic), synced with them when
 * one moved, rebuilt when needed. Commits this process makes are added by
 * keys_note; the index is saved by keys_free. Refs moved by another
 * process meanwhile are seen by the next process (pipe holds the
 * workspace lock while it writes). */
static int keys_open(struct store *st, int rebuild, struct error *err)
{
	struct keys *k = st->keys;
	int rc = 1, first = !k;

	if (k && k->synced && !rebuild)
		return 0;
	if (!k) {
		k = st->keys = keys_new();
		see_refs(st, &k->seen);
		if (!rebuild && open_file(st, k))
			rebuild = 1;
	}
	if (!rebuild)
		rc = k->mapped ? 0 : keys_sync(st, k, err);
	if (rc == 1) {
		notes_to_tips(st, k);
		keys_clear_entries(k);
		k->rewrite = 1;
		rc = keys_sync(st, k, err);
		if (!rc && first)
			to_mapped(st, k);
	}
	if (rc) {
		keys_clear(k);
		free(k);
		st->keys = NULL;
		return -1;
	}
	k->synced = 1;
	return 0;
}

void keys_note(struct store *st, const char *ref, const struct sgit_oid *commit,
	       const char *key, const char *stage)
{
	struct keys *k = st->keys;
	struct key_tip *t;
	struct hash128 h;

	/* a key a lookup cannot ask for is not kept */
	if (!k || !k->synced || !key || strlen(key) != HASH_HEX_LEN ||
	    !is_hex(key, HASH_HEX_LEN) || hash_from_hex(key, &h))
		return;
	if (k->mapped) {
		/* a tip of the log's: moved, as a loaded index would */
		t = find_tip(&k->tips, ref);
		if (t && !sgit_oid_equal(&t->oid, commit)) {
			if (t->packed)
				set_tip(&k->ours.other, ref, &t->oid);
			t->packed = 0;
			t->oid = *commit;
		}
		note_add(k, &h, commit, stage, ref);
		return;
	}
	learn_key(k, &h, commit, stage);
	t = find_tip(&k->tips, ref);
	if (t && t->packed && !sgit_oid_equal(&t->oid, commit)) {
		/* what packed-refs holds for it stays known */
		set_tip(&k->ours.other, ref, &t->oid);
		t->packed = 0;
	}
	set_tip(&k->tips, ref, commit);
	find_tip(&k->tips, ref)->noted = 1;
	if (!k->rewrite && !k->fold)
		format_tip(&k->pending, ref, commit);
	if (!k->rewrite && !k->fold && !log_fits(k)) {
		/* the save folds the log into a new file from the entries:
		 * their text is not needed */
		k->fold = 1;
		strbuf_release(&k->pending);
	}
}

void keys_flushed(struct store *st)
{
	struct keys *k = st->keys;
	uint64_t base;

	if (k && k->synced && k->mapped && k->pending.len) {
		notes_append(st, k, NO_REFS); /* else kept for the next */
		return;
	}
	if (!k || !k->synced || k->rewrite || k->fold || !k->pending.len)
		return;
	/* the refs this covers are moved, but the digest of them all is
	 * for the save to say: "-" until then, as a kill would leave it */
	if (append_log(st->keys_path, k, NO_REFS, &base)) {
		k->rewrite = 1; /* the save writes the whole file */
		strbuf_release(&k->pending);
		return;
	}
	strcpy(k->refs, NO_REFS);
	strbuf_reset(&k->pending);
}

/* Save what this process learnt: appended to the log, or the whole index
 * written anew when it was rebuilt or its log outgrew an eighth of it. */
static int keys_save(struct store *st, struct keys *k, struct error *err)
{
	struct refs_seen now = {STRBUF_INIT, STRVEC_INIT, {0}};
	const char *refs;
	uint64_t base;
	int ret = 0;

	see_refs(st, &now);
	refs = moved_by_us(st, k, &now) ? now.digest : NO_REFS;
	if (k->mapped) {
		/* what is left to the log, then the log folded from disk
		 * when it outgrew its share */
		if ((k->pending.len || strcmp(refs, k->refs)) &&
		    notes_append(st, k, refs))
			ret = -1;
		else if (!log_fits(k))
			ret = fold_file(st, k, refs, err);
		goto out;
	}
	if (!k->rewrite && !k->fold && !k->pending.len &&
	    !strcmp(refs, k->refs))
		goto out;
	if (!k->rewrite && !k->fold && log_fits(k)) {
		ret = append_log(st->keys_path, k, refs, &base);
		goto out;
	}
	ret = write_file(st->keys_path, k, refs, err);
out:
	seen_release(&now);
	return ret;
}

void keys_free(struct store *st)
{
	struct error err = ERROR_INIT;

	if (!st->keys)
		return;
	if (st->keys->synced && keys_save(st, st->keys, &err))
		error_release(&err); /* a cache: the next process rebuilds it */
	keys_clear(st->keys);
	free(st->keys);
	st->keys = NULL;
}

/* The newest entry with key (of stage, unless NULL) in k's memory. */
static const struct key_entry *find_entry(const struct keys *k,
					  const char *stage,
					  const struct hash128 *key)
{
	size_t i = k->key_cap ? k->by_key[key_slot(k, key)] : 0;

	for (; i; i = k->older[i - 1])
		if (!stage || !strcmp(entry_stage(k, &k->v[i - 1]), stage))
			return &k->v[i - 1];
	return NULL;
}

/* The offset of the line at or before at in the file's key lines. */
static size_t line_start(const struct keys *k, size_t at)
{
	while (at > k->key_beg && k->map[at - 1] != '\n')
		at--;
	return at;
}

/* The file's key lines with key into found: a binary search of the sorted
 * lines, O(log N), then those lines parsed. Returns 0, or -1 when a line
 * met is not a key line (the file is damaged). */
static int search_file(const struct keys *k, const char *key,
		       struct keys *found)
{
	size_t lo = k->key_beg, hi = k->key_end;
	struct strbuf line = STRBUF_INIT;
	int ret = 0;

	while (lo < hi) {
		size_t p = line_start(k, lo + (hi - lo) / 2);
		const char *nl = memchr(k->map + p, '\n', k->key_end - p);

		if (!nl || (size_t)(nl - k->map) - p <= KEY_PREFIX_LEN ||
		    memcmp(k->map + p, "key ", 4))
			return -1;
		if (memcmp(k->map + p + 4, key, HASH_HEX_LEN) < 0)
			lo = (size_t)(nl - k->map) + 1;
		else
			hi = p;
	}
	while (!ret && lo < k->key_end) {
		const char *nl = memchr(k->map + lo, '\n', k->key_end - lo);

		if (!nl || (size_t)(nl - k->map) - lo <= KEY_PREFIX_LEN ||
		    memcmp(k->map + lo + 4, key, HASH_HEX_LEN))
			break;
		strbuf_reset(&line);
		strbuf_add(&line, k->map + lo, (size_t)(nl - k->map) - lo);
		ret = strlen(line.buf) != line.len
			      ? -1
			      : parse_line(found, line.buf);
		lo = (size_t)(nl - k->map) + 1;
	}
	strbuf_release(&line);
	return ret;
}

/* The newest entry first: the log's and this process's, then the file's
 * (later syncs append, each walk goes newest first, and the file keeps
 * the order of equal keys). Returns 1 found and verified, 0 none, 2 stale
 * or damaged, -1. */
static int keys_lookup(struct store *st, const struct keys *k,
		       const char *stage, const char *key, struct sgit_oid *out,
		       struct error *err)
{
	struct key_info ki = {0, {0}, STRBUF_INIT};
	struct keys *found = NULL;
	const struct key_entry *e = NULL;
	struct sgit_oid commit;
	struct hash128 h;
	int rc = 0, noted = 0;

	if (hash_from_hex(key, &h))
		goto out;
	if (k->note_nr && (noted = find_note(st, k, stage, &h, &commit)) < 0) {
		rc = 2;
		goto out;
	}
	if (!noted)
		e = find_entry(k, stage, &h);
	if (!noted && !e && k->mapped && k->key_beg < k->key_end) {
		found = keys_new();
		if (search_file(k, key, found)) {
			rc = 2;
			goto out;
		}
		e = find_entry(found, stage, &h);
	}
	if (!noted && !e)
		goto out;
	if (e)
		commit = e->commit;
	if (!sgit_object_exists(st->git, &commit) ||
	    commit_key(st, &commit, &ki, err) <= 0 || strcmp(ki.key, key)) {
		rc = 2;
		goto out;
	}
	*out = commit;
	rc = 1;
out:
	if (found) {
		keys_clear(found);
		free(found);
	}
	strbuf_release(&ki.stage);
	return rc;
}

int store_find_key(struct store *st, const char *stage, const char *key_hex,
		   char *out_commit, struct error *err)
{
	struct sgit_oid oid;
	int rc = -1;

	if (!key_hex || strlen(key_hex) != HASH_HEX_LEN ||
	    !is_hex(key_hex, HASH_HEX_LEN))
		return error_set(err, EXIT_USAGE,
				 "'%s' is not a stage key (32 hex digits)",
				 key_hex ? key_hex : "");
	for (int attempt = 0; attempt < 2; attempt++) {
		if (keys_open(st, attempt, err))
			return -1;
		rc = keys_lookup(st, st->keys, stage, key_hex, &oid, err);
		if (rc != 2)
			break;
	}
	if (rc == 2)
		rc = 0;
	if (rc == 1)
		sgit_oid_hex(&oid, out_commit);
	return rc;
}
