/* Declarations shared by the files of store/ and by nobody else. */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include "store/git.h"
#include "store/store.h"
#include "util/strmap.h"

struct store {
	char *pipe_dir;
	char *git_dir;	 /* <pipe_dir>/store */
	char *cas_dir;	 /* <git_dir>/cas */
	char *keys_path; /* <git_dir>/pipe-keys */
	struct sgit *git;
	struct keys *keys; /* the run-cache index, once loaded */
	/* batch mode (store_batch_begin): stage commits wait in memory and
	 * their refs move together at the next store_batch_flush */
	int batch;
	struct pending_ref {
		char *ref;
		struct sgit_oid oid, old;
		int has_old;
	} * pend;
	size_t pend_nr, pend_alloc;
	struct strmap pend_at; /* ref -> index in pend + 1 */
	struct strbuf buf;     /* file contents being stored, reused */
	store_known_fn known;  /* store_set_known */
	void *known_arg;
	/* datum indexes loaded or written by this process (store/datums.c) */
	struct dindex **dindex;
	size_t dindex_nr, dindex_alloc;
};

/* The commit ref points at, counting batched updates not yet applied: 1
 * found, 0 none, -1. */
int store_ref_head(struct store *st, const char *ref, struct sgit_oid *out,
		   struct error *err);

/* Move ref from parent (NULL: none) to commit: queued in batch mode, else
 * flush the pending objects and move it now (compare-and-swap). */
int store_publish_ref(struct store *st, const char *ref,
		      const struct sgit_oid *commit,
		      const struct sgit_oid *parent, struct error *err);

#define STAGE_REF_PREFIX "refs/pipe/stages/"
/* Bytes a stage name's ref entry holds as they are, whatever is around
 * them (a dot is not one: its place matters; see ref_safe in store.c). */
#define SAFE_ENTRY_CHARS                                                       \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=,@"
#define DATUMS_REF_PREFIX "refs/pipe/datums/"
#define RUNS_REF "refs/pipe/runs"
#define DISPLACED_REF "refs/pipe/displaced"

/* refs/pipe/stages/<stage>, with bytes a ref name may not hold written as
 * %XX; NULL (err set) for an empty stage name. Caller frees. */
char *store_stage_ref(const char *stage, struct error *err);
/* refs/pipe/datums/<stage>, escaped the same way. */
char *store_datums_ref(const char *stage, struct error *err);
/* The tree entry name of a stage in a run record ("%XX" as for refs). */
char *store_stage_entry(const char *stage);
/* The stage an entry names, into out: 0, or -1 for a malformed entry. */
int store_entry_stage(const char *entry, struct strbuf *out);

/* Trailer blocks (store/prov.c). fn gets each trailer's key and its raw,
 * still escaped value; returns 0 or -1 with err set. */
typedef int (*trailer_fn)(const char *key, const char *value, size_t len,
			  void *data, struct error *err);
int trailers_parse(const char *msg, trailer_fn fn, void *data,
		   struct error *err);
/* "Pipe-Kind" of a message: "stage", "run", or NULL. Caller frees. */
char *trailers_kind(const char *msg);
void store_run_format(const struct store_run *r, struct strbuf *out);
int store_run_parse(const char *msg, struct store_run *out, struct error *err);
void store_format_time(struct strbuf *out, long long t);
int store_parse_time(const char *s, long long *out);

/* Manifests (store/manifest.c). */
void manifest_format(const struct store_manifest *m, struct strbuf *out);
int manifest_parse(const char *buf, size_t len, struct store_manifest *m,
		   struct error *err);
/* The entry for path, or NULL; m->files must be sorted. */
const struct store_file *manifest_find(const struct store_manifest *m,
				       const char *path);
void manifest_sort(struct store_manifest *m);
/* The pointer blob that stands for a CAS file in a commit's tree. */
void manifest_pointer(struct strbuf *out, const char *hash_hex,
		      unsigned long long size);

/* Commit lists (store/store.c). */
struct oid_list {
	struct sgit_oid *v;
	size_t nr, alloc, max;
};
/* First-parent history of ref, newest first, at most max (0: all); no
 * commits when ref is missing. Caller frees out->v. */
int store_history(struct store *st, const char *ref, size_t max,
		  struct oid_list *out, struct error *err);
/* The commits all refs point at. */
int store_all_tips(struct store *st, struct oid_list *out, struct error *err);
/* Tests set PIPE_TEST_CRASH=<point> to _exit(99) there, as a crash would. */
void store_crash_point(const char *point);

/* Drop the in-memory run-cache index (store/keys.c). */
void keys_free(struct store *st);
/* Read the run-cache index file path as a lookup would, and forget it: 0
 * when it is one pipe wrote, else -1 (tests, fuzzing). */
int keys_check_file(const char *path);
/* Add a commit this process made to the in-memory run-cache index. */
void keys_note(struct store *st, const char *ref, const struct sgit_oid *commit,
	       const char *key, const char *stage);
/* A batch's objects and ref moves are on disk: what the index learnt
 * from its commits goes to the index's log (a kill after it leaves the
 * index covering them). */
void keys_flushed(struct store *st);
/* What a batch of ref moves did to packed-refs (sgit_refs_move_report),
 * so that the index still covers the refs after its own rewrites. */
void keys_packed(struct store *st, const struct sgit_packed_report *rep);

/* Reading commits (store/store.c). */
int store_parse_id(const char *commit, struct sgit_oid *oid, struct error *err);
int store_load_manifest(struct store *st, const struct sgit_oid *commit,
			struct sgit_oid *tree, struct store_manifest *m,
			struct error *err);
/* The manifest at the top of tree: 1 read, 0 tree has none, -1 error. */
int store_tree_manifest(struct store *st, const struct sgit_oid *tree,
			struct store_manifest *m, struct error *err);

/* The tree of outputs (NULL-terminated paths below workspace, checked as
 * store_commit_stage does: normalized, distinct, folders ending in '/')
 * with its manifest at the top; without manifest set, the manifest is
 * left out unless some file went to the CAS (a tree of small files says
 * all by itself). CAS files are durable on return, git objects pending
 * (see sgit_flush). m (may be NULL) gets the manifest, *bytes the bytes
 * of the files stored. */
int store_write_outputs(struct store *st, const char *workspace,
			char *const *outputs, int manifest,
			struct sgit_oid *tree, struct store_manifest *m,
			unsigned long long *bytes, struct error *err);

/* store_write_outputs of files (sorted by path, unique, normalized,
 * workspace-relative file paths with the hash, size, exec bit and kind
 * (STORE_LINK or not) the caller's scan found), always with a manifest.
 * A file that the tree prev (may be NULL; one this function wrote) holds
 * just so is taken from it without a look at the file, CAS files too;
 * when all are, *tree is prev. The rest are read (and a small one the
 * stat cache vouches for still taken from prev, as for stage commits).
 * prev_m (may be NULL: read here) is prev's manifest, as read. */
int store_write_files(struct store *st, const char *workspace,
		      const struct store_file *files, size_t nr,
		      const struct sgit_oid *prev,
		      const struct store_manifest *prev_m,
		      struct sgit_oid *tree, struct error *err);

/* Write the files of tree (a stage-commit-like tree whose manifest is m)
 * into the folder dir, which may exist and hold other files: folders are
 * reused, each file must be new. Empty folders are not made
 * (store/restore.c). */
int store_restore_into(struct store *st, const struct sgit_oid *tree,
		       const struct store_manifest *m, const char *dir,
		       struct error *err);

/* Put the outputs of tree (laid out as a stage commit's, m its manifest)
 * named in only (NULL: all) into workspace, each swapped into place as
 * store_restore does. */
int store_restore_tree(struct store *st, const struct sgit_oid *tree,
		       const struct store_manifest *m, const char *workspace,
		       char *const *only, struct error *err);

/* The root of a run record's tree: stages/ (stages, NULL: none) and, when
 * run->inputs is set, inputs/ (store/untracked.c). */
int store_run_root(struct store *st, const struct store_run *run,
		   const struct sgit_oid *stages, struct sgit_oid *out,
		   struct error *err);

/* Fill run->inputs from the run commit's tree (store/untracked.c). */
int store_run_read_inputs(struct store *st, const struct sgit_oid *tree,
			  struct store_run *run, struct error *err);

/* Datum indexes (store/datums.c): 1 when some hold entries not written
 * yet; write them (their refs move as store_publish_ref does); forget
 * them all. */
int dindex_pending(const struct store *st);
int dindex_write_all(struct store *st, struct error *err);
void dindex_free(struct store *st);
/* The datum result trees that the datum index commits among commits
 * name, each once (others are skipped). Caller frees out->v. */
int dindex_result_trees(struct store *st, const struct oid_list *commits,
			struct oid_list *out, struct error *err);

/* The CAS files the commits (stage commits, datum index commits) name,
 * sorted by hash, possibly repeated; path unset. *out is the caller's
 * (free). For gc and for remote/ (push and pull). */
int store_cas_named(struct store *st, const struct oid_list *commits,
		    struct store_file **out, size_t *nr, struct error *err);

#endif
