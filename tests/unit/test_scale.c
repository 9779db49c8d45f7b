/* Scale: the paths whose cost grew with the square of the stage count
 * (issue #17), each on 50,000 or 100,000 stages with a bound a linear
 * path meets many times over and a quadratic one misses by far, in CPU
 * seconds of this process (a loaded machine stretches wall time, not
 * these). The only timed tests: elsewhere tests assert outcomes, never
 * timings. Under VALGRIND=1 the bounds are 50 times wider. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/state.h"
#include "store/internal.h" /* the door: commits and refs in bulk */
#include "store/store.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

struct fx {
	char root[64];
	struct strbuf pipe_dir;
	struct store *st;
	struct error err;
};

/* A door or store call that must succeed. */
static void check(struct fx *fx, int rc)
{
	if (rc < 0)
		fail_msg("%s", fx->err.msg.buf);
}

static int setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof(*fx));

	snprintf(fx->root, sizeof(fx->root), "/tmp/pipe-scale-test.XXXXXX");
	if (!mkdtemp(fx->root))
		return -1;
	strbuf_init(&fx->pipe_dir, 0);
	strbuf_addf(&fx->pipe_dir, "%s/.pipe", fx->root);
	error_init(&fx->err);
	if (store_open(&fx->st, fx->pipe_dir.buf, &fx->err))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	store_free(fx->st);
	fs_remove_tree(fx->root);
	strbuf_release(&fx->pipe_dir);
	error_release(&fx->err);
	free(fx);
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void assert_within(double t0, double seconds, const char *what)
{
	double took = now() - t0;

	if (getenv("VALGRIND") && !strcmp(getenv("VALGRIND"), "1"))
		seconds *= 50;
#if defined(__SANITIZE_ADDRESS__)
	seconds *= 10; /* make asan: every access checked, 3-5x slower */
#endif
	if (getenv("PIPE_SCALE_VERBOSE"))
		fprintf(stderr, "%s: %.2f s\n", what, took);
	if (took >= seconds)
		fail_msg("%s took %.2f s (bound %.1f s)", what, took, seconds);
}

static const char *key_n(size_t n)
{
	static char k[HASH_HEX_LEN + 1];

	/* spread over the hex digits, as real keys are */
	snprintf(k, sizeof(k), "%016zx%016zx",
		 (size_t)(n * 0x9e3779b97f4a7c15ull), n);
	return k;
}

/* n stage commits s<i> with key key_n(i), each under its stage ref, made
 * through the door in bulk (one packed-refs write). */
static void make_stages(struct fx *fx, size_t n, char (*ids)[STORE_ID_SIZE])
{
	struct sgit_ref_move *mv = xcalloc(n, sizeof(*mv));
	struct strbuf msg = STRBUF_INIT, ref = STRBUF_INIT;
	char **names = xcalloc(n, sizeof(*names));
	struct sgit_oid tree;

	check(fx, sgit_write_tree(fx->st->git, NULL, 0, &tree, &fx->err));
	for (size_t i = 0; i < n; i++) {
		strbuf_reset(&msg);
		strbuf_addf(&msg,
			    "stage s%zu\n\nPipe-Kind: stage\nPipe-Stage: s%zu\n"
			    "Pipe-Key: %s\n",
			    i, i, key_n(i));
		check(fx, sgit_write_commit(fx->st->git, &tree, NULL, 0,
					    msg.buf, &mv[i].oid, &fx->err));
		strbuf_reset(&ref);
		strbuf_addf(&ref, "%ss%zu", STAGE_REF_PREFIX, i);
		names[i] = strbuf_detach(&ref, NULL);
		mv[i].name = names[i];
		if (ids)
			sgit_oid_hex(&mv[i].oid, ids[i]);
	}
	check(fx, sgit_flush(fx->st->git, &fx->err));
	check(fx, sgit_refs_move(fx->st->git, mv, n, &fx->err));
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(mv);
	strbuf_release(&msg);
}

/* A run record of 100,000 stages: its duplicate check compared each stage
 * with every earlier one (5 billion comparisons). */
static void test_run_record(void **state)
{
	struct fx *fx = *state;
	size_t n = 100000;
	char(*ids)[STORE_ID_SIZE] = xcalloc(1, sizeof(*ids));
	char stage[32], id[STORE_ID_SIZE];
	struct store_run run, back;
	double t0;

	make_stages(fx, 1, ids);
	store_run_init(&run);
	for (size_t i = 0; i < n; i++) {
		snprintf(stage, sizeof(stage), "s%zu", i);
		store_run_add_stage(&run, stage, ids[0]);
	}
	t0 = now();
	check(fx, store_write_run(fx->st, &run, id, &fx->err));
	check(fx, store_write_run(fx->st, &run, id, &fx->err));
	assert_within(t0, 3, "two run records of 100,000 stages");
	check(fx, store_read_run(fx->st, id, &back, &fx->err));
	assert_int_equal(back.stages_nr, n);
	store_run_release(&back);
	/* Still refused: a stage twice, and a commit that is no stage's,
	 * also for a stage the previous record had. */
	store_run_add_stage(&run, "s7", ids[0]);
	assert_int_equal(store_write_run(fx->st, &run, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg.buf, "'s7' appears twice"));
	error_release(&fx->err);
	store_run_release(&run);
	store_run_init(&run);
	check(fx, store_resolve(fx->st, "runs", id, NULL, &fx->err));
	store_run_add_stage(&run, "s1", id);
	assert_int_equal(store_write_run(fx->st, &run, id, &fx->err), -1);
	assert_non_null(strstr(fx->err.msg.buf, "is not a stage commit"));
	error_release(&fx->err);
	store_run_release(&run);
	/* A head this process wrote as a stage commit (heads_ours) is not
	 * read back to be checked: given the run commit, taken unread. */
	store_run_init(&run);
	{
		const char *name = "s0";
		const unsigned char ours = 1;
		char head[STORE_ID_SIZE];

		check(fx, store_resolve(fx->st, "runs", head, NULL, &fx->err));
		run.heads_ours = &ours;
		check(fx,
		      store_run_add_heads(fx->st, &run, &name, 1, &fx->err));
		run.heads_ours = NULL;
		assert_int_equal(run.stages_nr, 1);
		assert_true(run.stages[0].ours);
		snprintf(run.stages[0].commit, STORE_ID_SIZE, "%s", head);
		check(fx, store_write_run(fx->st, &run, id, &fx->err));
	}
	store_run_release(&run);
	free(ids);
}

/* 50,000 stage refs, each key looked up once: the index found a ref's tip
 * and a key by scanning all of them, for each. */
static void test_find_keys(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000;
	char(*ids)[STORE_ID_SIZE] = xcalloc(n, sizeof(*ids));
	char stage[32], got[STORE_ID_SIZE];
	double t0;

	make_stages(fx, n, ids);
	t0 = now();
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			snprintf(stage, sizeof(stage), "s%zu", i);
			assert_int_equal(store_find_key(fx->st, stage, key_n(i),
							got, &fx->err),
					 1);
			assert_string_equal(got, ids[i]);
		}
		/* the second pass reads the index back from disk */
		store_free(fx->st);
		check(fx, store_open(&fx->st, fx->pipe_dir.buf, &fx->err));
	}
	assert_within(t0, 4, "50,000 key lookups, twice");
	assert_int_equal(store_find_key(fx->st, "s1", key_n(2), got, &fx->err),
			 0);
	free(ids);
}

/* 50,000 stage commits in one batch (as a run between two saves): the
 * batch found each stage's pending ref by scanning all of them. */
static void test_batch(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000;
	char *outs[] = {"o.txt", NULL};
	char stage[32], id[STORE_ID_SIZE], head[STORE_ID_SIZE];
	struct strbuf path = STRBUF_INIT;
	double t0;

	strbuf_addf(&path, "%s/o.txt", fx->root);
	check(fx, fs_write_atomic(path.buf, "o\n", 2, &fx->err));
	store_batch_begin(fx->st);
	t0 = now();
	for (size_t i = 0; i < n; i++) {
		snprintf(stage, sizeof(stage), "s%zu", i);
		check(fx, store_commit_stage(fx->st, fx->root, stage, outs,
					     NULL, id, &fx->err));
	}
	check(fx, store_batch_flush(fx->st, &fx->err));
	strbuf_release(&path);
	assert_within(t0, 10, "50,000 stage commits in a batch");
	check(fx, store_stage_head(fx->st, stage, head, &fx->err));
	assert_string_equal(head, id);
}

/* A run record of n stages s<i>, with the commits of ids (m of them)
 * in turn. */
static void write_run(struct fx *fx, size_t n, char (*ids)[STORE_ID_SIZE],
		      size_t m)
{
	struct store_run run;
	char stage[32], id[STORE_ID_SIZE];

	store_run_init(&run);
	for (size_t i = 0; i < n; i++) {
		snprintf(stage, sizeof(stage), "s%zu", i);
		store_run_add_stage(&run, stage, ids[i % m]);
	}
	check(fx, store_write_run(fx->st, &run, id, &fx->err));
	store_run_release(&run);
}

/* The run-cache index after each of 5 runs of 100,000 stages that moved
 * the runs ref: syncing it walked the new run record, which names every
 * stage (6 MB) and holds no key. 1,000 stage refs keep the rest small. */
static void test_keys_after_runs(void **state)
{
	struct fx *fx = *state;
	size_t n = 100000, m = 1000;
	char(*ids)[STORE_ID_SIZE] = xcalloc(m, sizeof(*ids));
	char got[STORE_ID_SIZE];
	double took = 0, t0;

	make_stages(fx, m, ids);
	write_run(fx, n, ids, m);
	check(fx, store_find_key(fx->st, "s1", key_n(1), got, &fx->err));
	for (int i = 0; i < 5; i++) { /* as 5 one-stage runs would */
		write_run(fx, n, ids, m);
		store_free(fx->st); /* the index is saved */
		check(fx, store_open(&fx->st, fx->pipe_dir.buf, &fx->err));
		t0 = now();
		assert_int_equal(
			store_find_key(fx->st, "s7", key_n(7), got, &fx->err),
			1);
		took += now() - t0;
		assert_string_equal(got, ids[7]);
	}
	assert_within(now() - took, 0.5,
		      "5 key lookups after runs of 100,000 stages");
	free(ids);
}

/* "s0" .. "s<n-1>", and one more slot; free with free_names. */
static const char **stage_names(size_t n)
{
	const char **names = xcalloc(n + 1, sizeof(*names));

	for (size_t i = 0; i < n; i++)
		names[i] = xstrfmt("s%zu", i);
	return names;
}

static void free_names(const char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)names[i]);
	free(names);
}

/* The heads of 50,000 stages at once (a run record names them all),
 * among them refs a batch has not moved yet. */
static void test_stage_heads(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000;
	char(*ids)[STORE_ID_SIZE] = xcalloc(n, sizeof(*ids));
	char(*heads)[STORE_ID_SIZE] = xcalloc(n + 1, sizeof(*heads));
	const char **names;
	char *outs[] = {"o.txt", NULL};
	struct strbuf path = STRBUF_INIT;
	char id[STORE_ID_SIZE];
	double t0;

	make_stages(fx, n, ids);
	strbuf_addf(&path, "%s/o.txt", fx->root);
	check(fx, fs_write_atomic(path.buf, "o\n", 2, &fx->err));
	store_batch_begin(fx->st);
	check(fx, store_commit_stage(fx->st, fx->root, "s9", outs, NULL, id,
				     &fx->err));
	names = stage_names(n);
	names[n] = "none";
	t0 = now();
	for (int pass = 0; pass < 5; pass++)
		check(fx,
		      store_stage_heads(fx->st, names, n + 1, heads, &fx->err));
	assert_within(t0, 2, "the heads of 50,000 stages, 5 times");
	for (size_t i = 0; i < n; i++)
		assert_string_equal(heads[i], i == 9 ? id : ids[i]);
	assert_string_equal(heads[n], "");
	check(fx, store_batch_flush(fx->st, &fx->err));
	free_names(names, n);
	free(heads);
	free(ids);
	strbuf_release(&path);
}

/* 200 moves of one ref each among 50,000 packed refs (as 200 one-stage
 * runs): each rewrote packed-refs whole. A batch of two then folds the
 * loose refs back into packed-refs. */
static void test_one_ref_moves(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000;
	char(*ids)[STORE_ID_SIZE] = xcalloc(n, sizeof(*ids));
	char(*heads)[STORE_ID_SIZE] = xcalloc(n, sizeof(*heads));
	const char **names;
	struct sgit_ref_move mv[2];
	struct strbuf ref = STRBUF_INIT, path = STRBUF_INIT;
	double t0;

	make_stages(fx, n, ids);
	t0 = now();
	for (size_t i = 0; i < 200; i++) { /* s<i> to s<i+1>'s commit */
		strbuf_reset(&ref);
		strbuf_addf(&ref, "%ss%zu", STAGE_REF_PREFIX, i);
		mv[0].name = ref.buf;
		mv[0].has_old = 1;
		check(fx, sgit_oid_parse(ids[i], &mv[0].old));
		check(fx, sgit_oid_parse(ids[i + 1], &mv[0].oid));
		check(fx, sgit_refs_move(fx->st->git, mv, 1, &fx->err));
	}
	assert_within(t0, 1, "200 moves of one ref among 50,000");
	/* a stale expectation is still refused */
	assert_int_equal(sgit_refs_move(fx->st->git, mv, 1, &fx->err), -1);
	error_release(&fx->err);
	mv[0].name = STAGE_REF_PREFIX "s300";
	mv[1].name = STAGE_REF_PREFIX "s301";
	for (int i = 0; i < 2; i++) {
		mv[i].has_old = 1;
		check(fx, sgit_oid_parse(ids[300 + i], &mv[i].old));
		check(fx, sgit_oid_parse(ids[0], &mv[i].oid));
	}
	check(fx, sgit_refs_move(fx->st->git, mv, 2, &fx->err));
	strbuf_addf(&path, "%s/store/%ss7", fx->pipe_dir.buf, STAGE_REF_PREFIX);
	assert_int_equal(access(path.buf, F_OK), -1); /* folded */
	names = stage_names(n);
	check(fx, store_stage_heads(fx->st, names, n, heads, &fx->err));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(heads[i], i < 200 ? ids[i + 1]
					      : i == 300 || i == 301 ? ids[0]
								     : ids[i]);
	free_names(names, n);
	free(heads);
	free(ids);
	strbuf_release(&ref);
	strbuf_release(&path);
}

struct listed {
	struct strbuf names;
	size_t nr;
};

static int listed_cb(const char *name, const struct sgit_oid *oid, void *data)
{
	struct listed *l = data;
	char hex[SGIT_HEXSZ + 1];

	sgit_oid_hex(oid, hex);
	strbuf_addf(&l->names, "%s=%.4s ", name + strlen(STAGE_REF_PREFIX),
		    hex);
	l->nr++;
	return 0;
}

/* sgit_refs_list as libgit2 would list: a loose ref over its packed
 * value, a symbolic ref and a lock file left out. */
static void test_refs_list(void **state)
{
	struct fx *fx = *state;
	char(*ids)[STORE_ID_SIZE] = xcalloc(3, sizeof(*ids));
	struct listed l = {STRBUF_INIT, 0};
	struct strbuf path = STRBUF_INIT, want = STRBUF_INIT;
	const char *files[][2] = {
		{"s1", NULL}, /* ids[2] */
		{"sym", "ref: " STAGE_REF_PREFIX "s0\n"},
		{"s2.lock", "0000\n"},
	};

	make_stages(fx, 3, ids);
	for (size_t i = 0; i < 3; i++) {
		char *text = files[i][1] ? xstrdup(files[i][1])
					 : xstrfmt("%s\n", ids[2]);

		strbuf_reset(&path);
		strbuf_addf(&path, "%s/store/%s%s", fx->pipe_dir.buf,
			    STAGE_REF_PREFIX, files[i][0]);
		check(fx, fs_mkdir_parent(path.buf, 0755));
		check(fx,
		      fs_write_atomic(path.buf, text, strlen(text), &fx->err));
		free(text);
	}
	check(fx, sgit_refs_list(fx->st->git, STAGE_REF_PREFIX, listed_cb, &l,
				 &fx->err));
	strbuf_addf(&want, "s1=%.4s s0=%.4s s2=%.4s ", ids[2], ids[0], ids[2]);
	assert_string_equal(l.names.buf, want.buf);
	strbuf_release(&l.names);
	strbuf_release(&path);
	strbuf_release(&want);
	free(ids);
}

/* The shard trees of run record id (its stages/ entries), into v. */
static int shard_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		    void *data)
{
	struct oid_list *v = data;

	(void)path;
	(void)mode;
	ALLOC_GROW(v->v, v->nr + 1, v->alloc);
	v->v[v->nr++] = *oid;
	return 1;
}

static void shards_of(struct fx *fx, const char *id, struct oid_list *v)
{
	struct sgit_oid oid, stages;
	struct sgit_commit c;
	unsigned mode;

	check(fx, sgit_oid_parse(id, &oid));
	check(fx, sgit_read_commit(fx->st->git, &oid, &c, &fx->err));
	assert_int_equal(sgit_tree_lookup(fx->st->git, &c.tree, "stages", &mode,
					  &stages, &fx->err),
			 1);
	check(fx, sgit_tree_walk(fx->st->git, &stages, shard_cb, v, &fx->err));
	sgit_commit_release(&c);
}

/* A run record after a one-stage change in a 50,000-stage pipeline: the
 * record listed every stage in its message (5 MB) and wrote and hashed a
 * tree of all of them, each time. Now one shard changes; the others are
 * the previous record's trees. */
static void test_run_record_one_change(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000, differ = 0;
	char(*ids)[STORE_ID_SIZE] = xcalloc(n + 1, sizeof(*ids));
	char stage[32], id[STORE_ID_SIZE], first[STORE_ID_SIZE];
	struct oid_list a = {0}, b = {0};
	struct store_run run, back;
	double t0;

	make_stages(fx, n + 1, ids); /* ids[n]: s9's next commit */
	store_run_init(&run);
	for (size_t i = 0; i < n; i++) {
		snprintf(stage, sizeof(stage), "s%zu", i);
		store_run_add_stage(&run, stage, ids[i]);
	}
	check(fx, store_write_run(fx->st, &run, first, &fx->err));
	t0 = now();
	for (int pass = 0; pass < 20; pass++) { /* s9 back and forth */
		memcpy(run.stages[9].commit, ids[pass % 2 ? 9 : n],
		       STORE_ID_SIZE);
		check(fx, store_write_run(fx->st, &run, id, &fx->err));
	}
	assert_within(t0, 1.3, "20 run records of 50,000 stages, one changed");
	check(fx, store_read_run(fx->st, id, &back, &fx->err));
	assert_int_equal(back.stages_nr, n);
	for (size_t i = 0; i < back.stages_nr; i++)
		if (!strcmp(back.stages[i].stage, "s9"))
			assert_string_equal(back.stages[i].commit, ids[9]);
	store_run_release(&back);
	shards_of(fx, first, &a);
	shards_of(fx, id, &b);
	assert_int_equal(a.nr, 256);
	assert_int_equal(b.nr, 256);
	for (size_t i = 0; i < a.nr; i++)
		differ += !sgit_oid_equal(&a.v[i], &b.v[i]);
	assert_int_equal(differ, 0); /* s9 is back where it was */
	memcpy(run.stages[9].commit, ids[n], STORE_ID_SIZE);
	check(fx, store_write_run(fx->st, &run, id, &fx->err));
	b.nr = 0;
	shards_of(fx, id, &b);
	for (size_t i = 0; i < a.nr; i++)
		differ += !sgit_oid_equal(&a.v[i], &b.v[i]);
	assert_int_equal(differ, 1);
	store_run_release(&run);
	free(a.v);
	free(b.v);
	free(ids);
}

/* One stage commit flushed in a store whose last run record has 50,000
 * stages: the pack builder listed every ref (git_tag_foreach), and the
 * previous run record was read whole. */
static void test_flush_after_big_record(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000;
	char(*ids)[STORE_ID_SIZE] = xcalloc(n, sizeof(*ids));
	char *outs[] = {"o/", NULL};
	char stage[32], id[STORE_ID_SIZE], head[STORE_ID_SIZE];
	struct strbuf path = STRBUF_INIT, text = STRBUF_INIT;
	struct store_run run;
	double t0;

	make_stages(fx, n, ids);
	store_run_init(&run);
	for (size_t i = 0; i < n; i++) {
		snprintf(stage, sizeof(stage), "s%zu", i);
		store_run_add_stage(&run, stage, ids[i]);
	}
	check(fx, store_write_run(fx->st, &run, id, &fx->err));
	store_run_release(&run);
	strbuf_addf(&path, "%s/o/0", fx->root);
	check(fx, fs_mkdir_parent(path.buf, 0755));
	t0 = now();
	for (int pass = 0; pass < 20; pass++) {
		/* three files: a pack, not loose objects */
		for (int f = 0; f < 3; f++) {
			strbuf_reset(&path);
			strbuf_addf(&path, "%s/o/%d", fx->root, f);
			strbuf_reset(&text);
			strbuf_addf(&text, "%d %d\n", pass, f);
			check(fx, fs_write_atomic(path.buf, text.buf, text.len,
						  &fx->err));
		}
		store_batch_begin(fx->st);
		check(fx, store_commit_stage(fx->st, fx->root, "s9", outs, NULL,
					     id, &fx->err));
		check(fx, store_batch_flush(fx->st, &fx->err));
	}
	assert_within(t0, 0.2, "20 one-stage flushes after a 50,000-stage run");
	assert_int_equal(store_stage_head(fx->st, "s9", head, &fx->err), 1);
	assert_string_equal(head, id);
	strbuf_release(&path);
	strbuf_release(&text);
	free(ids);
}

/* Stage s<i> moved from old to a new commit with key key_n(k), as a run
 * of that stage publishes it: one loose ref, noted in the index. */
static void move_stage(struct fx *fx, size_t i, const char *old, size_t k)
{
	struct strbuf msg = STRBUF_INIT, ref = STRBUF_INIT;
	struct sgit_oid tree, commit, parent;

	check(fx, sgit_write_tree(fx->st->git, NULL, 0, &tree, &fx->err));
	strbuf_addf(&msg,
		    "stage s%zu\n\nPipe-Kind: stage\nPipe-Stage: s%zu\n"
		    "Pipe-Key: %s\n",
		    i, i, key_n(k));
	check(fx, sgit_write_commit(fx->st->git, &tree, NULL, 0, msg.buf,
				    &commit, &fx->err));
	check(fx, sgit_flush(fx->st->git, &fx->err));
	strbuf_addf(&ref, "%ss%zu", STAGE_REF_PREFIX, i);
	check(fx, sgit_oid_parse(old, &parent));
	check(fx, sgit_ref_update(fx->st->git, ref.buf, &commit, &parent,
				  &fx->err));
	keys_note(fx->st, ref.buf, &commit, key_n(k), ref.buf + 17);
	strbuf_release(&msg);
	strbuf_release(&ref);
}

/* 20 runs of one stage over an index of 50,000 entries, each after one
 * ref moved: a lookup loaded the whole index, listed the 50,000 refs to
 * sync it and wrote it all back at the end. */
static void test_find_key_one_moved(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000;
	char(*ids)[STORE_ID_SIZE] = xcalloc(n, sizeof(*ids));
	char got[STORE_ID_SIZE];
	double took = 0, t0;

	make_stages(fx, n, ids);
	check(fx, store_find_key(fx->st, "s1", key_n(1), got, &fx->err));
	store_free(fx->st); /* the index is written */
	check(fx, store_open(&fx->st, fx->pipe_dir.buf, &fx->err));
	for (size_t r = 0; r < 20; r++) {
		size_t i = r * 2477 % n;

		/* the stage's new key is not there yet; its old one is */
		t0 = now();
		assert_int_equal(store_find_key(fx->st, NULL, key_n(n + r), got,
						&fx->err),
				 0);
		assert_int_equal(
			store_find_key(fx->st, NULL, key_n(i), got, &fx->err),
			1);
		took += now() - t0;
		move_stage(fx, i, ids[i], n + r); /* libgit2: O(refs) */
		t0 = now();
		store_free(fx->st); /* the index saved, as at exit */
		took += now() - t0;
		check(fx, store_open(&fx->st, fx->pipe_dir.buf, &fx->err));
		t0 = now();
		assert_int_equal(store_find_key(fx->st, NULL, key_n(n + r), got,
						&fx->err),
				 1);
		took += now() - t0;
	}
	t0 = now() - took;
	assert_within(t0, 0.2,
		      "20 one-stage runs' lookups and saves over an index of "
		      "50,000 entries");
	free(ids);
}

/* A record of stage s<i> reading in/<k>. */
static struct stage_record *state_record(size_t i, size_t k)
{
	struct stage_record *r = xcalloc(1, sizeof(*r));

	r->name = xstrfmt("s%zu", i);
	r->executor = xstrdup("local");
	r->inputs = xcalloc(1, sizeof(*r->inputs));
	r->inputs[0].path = xstrfmt("in/%zu", k);
	r->outputs = xcalloc(1, sizeof(*r->outputs));
	r->outputs[0].path = xstrfmt("out/%zu", i);
	r->inputs_nr = r->outputs_nr = 1;
	hash_buf(&k, sizeof(k), &r->key);
	return r;
}

/* 50 saves of the state, each after one record of 50,000 changed (as a
 * run of one stage): each wrote the whole file. */
static void test_state_save_one(void **state)
{
	struct fx *fx = *state;
	size_t n = 50000;
	struct state *st;
	struct strbuf path = STRBUF_INIT;
	double t0;

	strbuf_addf(&path, "%s/state", fx->pipe_dir.buf);
	check(fx, state_load(&st, path.buf, &fx->err));
	for (size_t i = 0; i < n; i++)
		state_put(st, state_record(i, i));
	check(fx, state_save(st, &fx->err));
	t0 = now();
	for (size_t r = 0; r < 50; r++) {
		state_put(st, state_record(r * 2477 % n, n + r));
		check(fx, state_save(st, &fx->err));
	}
	assert_within(t0, 0.15,
		      "50 state saves of one changed record among 50,000");
	state_free(st);
	check(fx, state_load(&st, path.buf, &fx->err));
	assert_int_equal(st->nr, n);
	assert_string_equal(state_find(st, "s2477")->inputs[0].path,
			    "in/50001");
	assert_string_equal(state_find(st, "s2478")->inputs[0].path, "in/2478");
	state_free(st);
	strbuf_release(&path);
}

/* The inputs a run record checks against the project's git (issue #17):
 * each path's tree entry was looked up from the root, and libgit2 caches
 * no tree over 4 KB, so the folder of 20,000 inputs was read and parsed
 * again for each: 20,000 x 20,000 entries. Each folder's tree is read
 * once now, in any order of the paths (a stage's inputs come in the
 * Pipefile's order, two folders taking turns here), asked here and of
 * the child that read the status (the same answers). */
static void test_project_untracked(void **state)
{
	struct fx *fx = *state;
	size_t n = 20000;
	char **paths = xcalloc(n + 1, sizeof(*paths));
	unsigned char *untracked = xcalloc(n + 1, 1);
	unsigned char *asked = xcalloc(n + 1, 1);
	struct store_project *here, *child;
	struct strbuf sb = STRBUF_INIT;
	char cwd[4096];
	double t0;
	int dirty;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	for (size_t i = 0; i < n; i++) {
		const char *dir = i % 2 ? "in" : "data/a";

		strbuf_reset(&sb);
		strbuf_addf(&sb, "%s/%s/%zu", fx->root, dir, i);
		assert_int_equal(fs_mkdir_parent(sb.buf, 0755), 0);
		check(fx, fs_write_atomic(sb.buf, "x\n", 2, &fx->err));
		paths[i] = xstrfmt("%s/%zu", dir, i);
	}
	paths[n - 1][0] = 'j'; /* "jn/...": not in git */
	strbuf_reset(&sb);
	strbuf_addf(&sb,
		    "cd '%s' && echo .pipe/ > .gitignore && git init -q && "
		    "git add -A && git -c user.name=t -c user.email=t@t "
		    "commit -qm t && echo changed > in/7 && "
		    "git rm -q --cached data/a/8",
		    fx->root);
	assert_int_equal(system(sb.buf), 0);
	assert_int_equal(chdir(fx->root), 0);
	t0 = now();
	here = store_project_read();
	assert_int_equal(store_project_untracked(here, paths, n, untracked), 1);
	assert_within(t0, 3.0, "20,000 inputs checked against git");
	child = store_project_start(".");
	assert_int_equal(store_project_untracked(child, paths, n, asked), 1);
	assert_int_equal(chdir(cwd), 0);
	assert_memory_equal(untracked, asked, n);
	assert_string_equal(store_project_head(here, &dirty),
			    store_project_head(child, &dirty));
	assert_int_equal(dirty, 1);
	assert_int_equal(strlen(store_project_head(here, &dirty)), 40);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(untracked[i], i == 7 || i == 8 || i == n - 1);
	store_project_free(here);
	store_project_free(child);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	free(untracked);
	free(asked);
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_run_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_find_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_after_runs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stage_heads, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_one_ref_moves, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refs_list, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_record_one_change,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_after_big_record,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_key_one_moved, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_project_untracked, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_state_save_one, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
