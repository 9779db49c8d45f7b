/* The run-cache index: which commits carry which stage key. A cache over
 * the refs' history in .pipe/store/pipe-keys, brought up to date from the
 * refs on every lookup and rebuilt when missing, corrupt or stale:
 *
 *   pipe-keys 1
 *   tip <commit> <ref>                 ref tips the index covers
 *   key <key> <commit> <stage>         one per stage commit with a key
 */
#include "store/internal.h"
#include "util/fs.h"
#include "util/strmap.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_HEADER "pipe-keys 1\n"

struct key_entry {
	char key[HASH_HEX_LEN + 1];
	struct sgit_oid commit;
	char *stage;
};

struct key_tip {
	char *ref;
	struct sgit_oid oid;
};

/* Lookups by key and by ref are hashed: a run of N stages looks up N keys
 * and notes N tips, and a scan of the arrays for each would be quadratic.
 * by_key: open addressing over entry indexes + 1, one slot per distinct
 * key holding its newest entry; older[i] is the next older entry with the
 * same key (+ 1, 0 at the end). tip_at: ref -> index in tips + 1. */
struct keys {
	struct key_entry *v;
	size_t nr, alloc;
	size_t *older;
	size_t *by_key, key_cap;
	struct key_tip *tips;
	size_t tips_nr, tips_alloc;
	struct strmap tip_at;
	int dirty;
	int synced; /* with the refs, in this process */
};

static void keys_clear_tips(struct keys *k)
{
	for (size_t i = 0; i < k->tips_nr; i++)
		free(k->tips[i].ref);
	free(k->tips);
	strmap_release(&k->tip_at);
	k->tips = NULL;
	k->tips_nr = k->tips_alloc = 0;
}

static void keys_clear(struct keys *k)
{
	for (size_t i = 0; i < k->nr; i++)
		free(k->v[i].stage);
	free(k->v);
	free(k->older);
	free(k->by_key);
	keys_clear_tips(k);
	memset(k, 0, sizeof(*k));
}

/* The slot of key in by_key: its newest entry, or an empty slot. The key
 * is a hash already: its first 16 hex digits spread well. */
static size_t key_slot(const struct keys *k, const char *key)
{
	size_t i = 0;

	for (int d = 0; d < 16; d++)
		i = i << 4 |
		    (size_t)(key[d] <= '9' ? key[d] - '0' : key[d] - 'a' + 10);
	i &= k->key_cap - 1;

	while (k->by_key[i] &&
	       memcmp(k->v[k->by_key[i] - 1].key, key, HASH_HEX_LEN))
		i = (i + 1) & (k->key_cap - 1);
	return i;
}

/* Chain entry i in front of the older ones with its key. */
static void hash_key(struct keys *k, size_t i)
{
	size_t s = key_slot(k, k->v[i].key);

	k->older[i] = k->by_key[s];
	k->by_key[s] = i + 1;
}

static void add_key(struct keys *k, const char *key, const struct sgit_oid *c,
		    const char *stage)
{
	size_t older_alloc = k->alloc;

	ALLOC_GROW(k->v, k->nr + 1, k->alloc);
	if (k->alloc != older_alloc)
		k->older = xrealloc(k->older, k->alloc * sizeof(*k->older));
	memcpy(k->v[k->nr].key, key, HASH_HEX_LEN + 1);
	k->v[k->nr].commit = *c;
	k->v[k->nr].stage = xstrdup(stage);
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

static struct key_tip *find_tip(const struct keys *k, const char *ref)
{
	size_t i = (size_t)strmap_get(&k->tip_at, ref);

	return i ? &k->tips[i - 1] : NULL;
}

/* Add ref's tip, or move it. */
static void set_tip(struct keys *k, const char *ref, const struct sgit_oid *oid)
{
	struct key_tip *t = find_tip(k, ref);

	if (t) {
		t->oid = *oid;
		return;
	}
	ALLOC_GROW(k->tips, k->tips_nr + 1, k->tips_alloc);
	k->tips[k->tips_nr].ref = xstrdup(ref);
	k->tips[k->tips_nr++].oid = *oid;
	strmap_put(&k->tip_at, k->tips[k->tips_nr - 1].ref, (void *)k->tips_nr);
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
	char *hex;
	int ret = -1;

	if (!strncmp(line, "tip ", 4) && strlen(line) > 46 && line[44] == ' ') {
		line[44] = '\0';
		if (!sgit_oid_parse(line + 4, &oid) &&
		    !store_unescape(&sb, line + 45, strlen(line + 45))) {
			set_tip(k, sb.buf, &oid);
			ret = 0;
		}
	} else if (!strncmp(line, "key ", 4) && strlen(line) > 78 &&
		   line[36] == ' ' && line[77] == ' ') {
		hex = line + 4;
		line[36] = line[77] = '\0';
		if (is_hex(hex, HASH_HEX_LEN) &&
		    !sgit_oid_parse(line + 37, &oid) &&
		    !store_unescape(&sb, line + 78, strlen(line + 78))) {
			add_key(k, hex, &oid, sb.buf);
			ret = 0;
		}
	}
	strbuf_release(&sb);
	return ret;
}

/* Returns 0, or -1 when the file is missing or not an index we wrote. */
static int keys_load(const char *path, struct keys *k)
{
	struct strbuf sb = STRBUF_INIT;
	size_t hl = strlen(KEYS_HEADER);
	char *p, *nl;
	int ret = -1;

	if (strbuf_read_file(&sb, path, 0) || sb.len < hl ||
	    memcmp(sb.buf, KEYS_HEADER, hl) || sb.buf[sb.len - 1] != '\n')
		goto out;
	for (p = sb.buf + hl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl) /* a NUL byte before it */
			goto out;
		*nl = '\0';
		if (parse_line(k, p))
			goto out;
	}
	ret = 0;
out:
	if (ret)
		keys_clear(k);
	strbuf_release(&sb);
	return ret;
}

int keys_check_file(const char *path)
{
	struct keys k = {0};
	int ret = keys_load(path, &k);

	keys_clear(&k);
	return ret;
}

static int keys_save(const char *path, const struct keys *k, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;
	char hex[SGIT_HEXSZ + 1];
	int ret;

	strbuf_addstr(&sb, KEYS_HEADER);
	for (size_t i = 0; i < k->tips_nr; i++) {
		sgit_oid_hex(&k->tips[i].oid, hex);
		strbuf_addf(&sb, "tip %s ", hex);
		store_escape(&sb, k->tips[i].ref, NULL);
		strbuf_addch(&sb, '\n');
	}
	for (size_t i = 0; i < k->nr; i++) {
		sgit_oid_hex(&k->v[i].commit, hex);
		strbuf_addf(&sb, "key %s %s ", k->v[i].key, hex);
		store_escape(&sb, k->v[i].stage, NULL);
		strbuf_addch(&sb, '\n');
	}
	ret = fs_write_atomic(path, sb.buf, sb.len, err);
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

static int has_entry(const struct keys *k, const char *key,
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

	if (rc > 0 && !has_entry(w->k, w->ki.key, oid))
		add_key(w->k, w->ki.key, oid, w->ki.stage.buf);
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

/* Index the commits the refs gained since the index was written. Returns
 * 0, 1 when the index must be rebuilt (a ref vanished, or its old tip is
 * gone), or -1. */
static int keys_sync(struct store *st, struct keys *k, struct error *err)
{
	struct keys now = {0};
	struct oid_list push = {0}, hide = {0};
	struct index_walk w = {st, k, {0, {0}, STRBUF_INIT}, err};
	int rc, ret = -1;

	if (sgit_refs_list(st->git, "refs/pipe/", tips_cb, &now, err))
		goto out;
	for (size_t i = 0; i < now.tips_nr; i++) {
		const struct key_tip *t = find_tip(k, now.tips[i].ref);

		if (t && sgit_oid_equal(&t->oid, &now.tips[i].oid))
			continue;
		/* A ref that moved back or sideways drops commits. */
		if (t && sgit_object_exists(st->git, &t->oid) &&
		    (rc = sgit_descends(st->git, &now.tips[i].oid, &t->oid,
					err)) <= 0) {
			ret = rc < 0 ? -1 : 1;
			goto out;
		}
		ALLOC_GROW(push.v, push.nr + 1, push.alloc);
		push.v[push.nr++] = now.tips[i].oid;
		/* Only the moved refs' old tips are hidden: hiding all N
		 * would parse N commits for each run. Commits the walk meets
		 * that another ref already led to are indexed once
		 * (index_cb). */
		if (t) {
			ALLOC_GROW(hide.v, hide.nr + 1, hide.alloc);
			hide.v[hide.nr++] = t->oid;
		}
	}
	for (size_t i = 0; i < k->tips_nr; i++) {
		if (is_runs_ref(k->tips[i].ref)) /* an older index's line */
			continue;
		if (!find_tip(&now, k->tips[i].ref) ||
		    !sgit_object_exists(st->git, &k->tips[i].oid)) {
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
	keys_clear_tips(k);
	k->tips = now.tips;
	k->tips_nr = now.tips_nr;
	k->tips_alloc = now.tips_alloc;
	k->tip_at = now.tip_at;
	memset(&now.tip_at, 0, sizeof(now.tip_at));
	now.tips = NULL;
	now.tips_nr = 0;
	k->dirty = 1;
out:
	keys_clear(&now);
	free(push.v);
	free(hide.v);
	strbuf_release(&w.ki.stage);
	return ret;
}

/* Bring the index up to date: loaded from disk and synced with the refs
 * the first time (kept in st afterwards: a run of 2,000 stages looks up
 * 2,000 keys, and syncing each time would be quadratic), rebuilt when
 * needed. Commits this process makes are added by keys_note; the index is
 * saved by keys_free. Refs moved by another process meanwhile are seen by
 * the next process (pipe holds the workspace lock while it writes). */
static int keys_open(struct store *st, int rebuild, struct error *err)
{
	struct keys *k = st->keys;
	int rc = 1;

	if (k && k->synced && !rebuild)
		return 0;
	if (!k) {
		k = st->keys = xcalloc(1, sizeof(*k));
		if (!rebuild && keys_load(st->keys_path, k))
			rebuild = 1;
	}
	if (!rebuild)
		rc = keys_sync(st, k, err);
	if (rc == 1) {
		keys_clear(k);
		rc = keys_sync(st, k, err);
		k->dirty = 1;
	}
	/* saved dirty by keys_free, once, with what this process adds */
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

	if (!k || !k->synced || !key || !*key)
		return;
	add_key(k, key, commit, stage);
	set_tip(k, ref, commit);
	k->dirty = 1;
}

void keys_free(struct store *st)
{
	struct error err = ERROR_INIT;

	if (!st->keys)
		return;
	if (st->keys->dirty && keys_save(st->keys_path, st->keys, &err))
		error_release(&err); /* a cache: the next process rebuilds it */
	keys_clear(st->keys);
	free(st->keys);
	st->keys = NULL;
}

/* Newest entry first: later syncs append, and each walk goes newest
 * first. Returns 1 found and verified, 0 none, 2 stale, -1. */
static int keys_lookup(struct store *st, const struct keys *k,
		       const char *stage, const char *key, struct sgit_oid *out,
		       struct error *err)
{
	struct key_info ki = {0, {0}, STRBUF_INIT};
	int rc = 0;

	size_t i = k->key_cap ? k->by_key[key_slot(k, key)] : 0;

	for (; i; i = k->older[i - 1]) {
		const struct key_entry *e = &k->v[i - 1];

		if (stage && strcmp(e->stage, stage))
			continue;
		if (!sgit_object_exists(st->git, &e->commit) ||
		    commit_key(st, &e->commit, &ki, err) <= 0 ||
		    strcmp(ki.key, key)) {
			rc = 2;
			break;
		}
		*out = e->commit;
		rc = 1;
		break;
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
