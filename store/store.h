/* The store: every stage's outputs as a versioned commit with provenance in
 * a bare git repository (.pipe/store), large files content-addressed.
 *
 * Layout of .pipe/store (plain `git --git-dir .pipe/store` reads it):
 *   refs/pipe/stages/<stage>  a stage's history; each commit's parent is the
 *                             stage's previous commit
 *   refs/pipe/runs            run records; each one's parent is the previous
 *                             run
 *   refs/pipe/datums/<stage>  the results of a datums stage's datums by
 *                             datum key (see "datum results" below)
 *   cas/ab/cdef...            files of STORE_CAS_MIN bytes or more, named by
 *                             their XXH3-128 (read-only, never rewritten)
 *   pipe-keys                 run-cache index: stage key -> commit (a cache,
 *                             rebuilt from history when missing or corrupt)
 *
 * A stage commit's tree holds the outputs at their workspace paths (files
 * 100644/100755, symlinks 120000) and a top-level blob ".pipe-manifest":
 *
 *   pipe-manifest 1
 *   output out/clean/            declared outputs (folders end in '/')
 *   dir out/clean/empty/         folders without files, recreated on restore
 *   blob <xxh128> <size> <path>  a file stored as a git blob
 *   cas <xxh128> <size> <path>   a file stored in cas/; its blob in the tree
 *                                is a pointer: "pipe-cas 1\nxxh128 H\nsize N\n"
 *   link <xxh128> <size> <path>  a symlink (hash and size of its target)
 *
 * Only paths the manifest lists as "cas" are pointers: a user file that
 * looks like a pointer is a plain blob. Paths are escaped as in trailers
 * (see store_escape). A run record's tree holds one gitlink per stage commit
 * it used (stages/<shard>/<stage> -> commit; see "Run records, format 2"),
 * so gc and git keep them, and in a git
 * project inputs/, the input files git does not hold (see "untracked
 * inputs" below).
 *
 * Provenance is a block of git trailers in the commit message (see
 * store_prov_format). All functions return 0 (or a count) on success and -1
 * with err set on failure unless documented otherwise. Commit ids are 40
 * lowercase hex digits plus a NUL (STORE_ID_SIZE).
 */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <stddef.h>

#include "util/error.h"
#include "util/hash.h"
#include "util/strbuf.h"

#define STORE_ID_LEN 40
#define STORE_ID_SIZE (STORE_ID_LEN + 1)
/* Files this large or larger go to the content-addressed area. */
#define STORE_CAS_MIN (1024 * 1024)
/* The manifest's name at the top of a stage commit's tree (reserved). */
#define STORE_MANIFEST ".pipe-manifest"

struct store;
struct strvec;

/* Open (creating when missing) the store below pipe_dir (".pipe"). */
int store_open(struct store **out, const char *pipe_dir, struct error *err);
void store_free(struct store *st);

/* The project's git repository, found from the current folder (the
 * workspace) and read in one status pass: its HEAD, whether its tracked
 * files have changes, and which (for "untracked inputs"). Never fails;
 * the caller owns the result (store_project_free). */
struct store_project;
struct store_project *store_project_read(void);
/* The same, read from the folder dir by a child process while the caller
 * goes on; store_project_wait gives the result (a no-op on one read
 * already). The caller's memory is not the child's: the status pass's
 * (46 MB at 100,000 tracked files) does not add to it. Without a child
 * (fork failed), wait reads it then. */
struct store_project *store_project_start(const char *dir);
void store_project_wait(struct store_project *p);
/* HEAD's commit id ("" outside a repository or before its first commit)
 * and the dirty flag; the string is p's. */
const char *store_project_head(const struct store_project *p, int *dirty);
void store_project_free(struct store_project *p);

/* ---- provenance ---------------------------------------------------- */

struct store_input {
	char *path;
	char hash[HASH_HEX_LEN + 1];
};
struct store_upstream {
	char *stage;
	char commit[STORE_ID_SIZE];
};
struct store_kv {
	char *key;
	char *value;
};

/* Provenance of a stage commit. Strings are owned; NULL or 0 means "not
 * recorded" and writes no trailer. */
struct store_prov {
	char *stage;
	char key[HASH_HEX_LEN + 1]; /* the stage key; "" when unknown */
	char *state;		    /* "success" or "cached" */
	char *cached_from;	    /* state cached: the commit reused */
	struct store_input *inputs;
	size_t inputs_nr, inputs_alloc;
	struct store_upstream *upstreams;
	size_t upstreams_nr, upstreams_alloc;
	struct store_kv *params;
	size_t params_nr, params_alloc;
	char *image;	/* e.g. "example/pre:1.4@sha256:..." */
	char *executor; /* local, docker, kubernetes */
	char *git_head; /* the project's HEAD commit */
	int git_dirty;
	long long started; /* unix seconds, UTC */
	long long duration_ms;
	unsigned long long datums_processed, datums_skipped, datums_total;
	unsigned long long bytes_in, bytes_out;
	struct store_kv *extra; /* trailers pipe does not know, kept */
	size_t extra_nr, extra_alloc;
};

void store_prov_init(struct store_prov *p);
void store_prov_release(struct store_prov *p);
void store_prov_add_input(struct store_prov *p, const char *path,
			  const char *hash_hex);
void store_prov_add_upstream(struct store_prov *p, const char *stage,
			     const char *commit);
void store_prov_add_param(struct store_prov *p, const char *key,
			  const char *value);

/*
 * The commit message of a stage commit: a subject, a blank line and one
 * trailer per line, in this order:
 *   Pipe-Kind: stage            Pipe-Image: <image>
 *   Pipe-Stage: <stage>         Pipe-Executor: <executor>
 *   Pipe-Key: <32 hex>          Pipe-Git-Head: <sha> [dirty]
 *   Pipe-State: success|cached  Pipe-Started: <RFC 3339, UTC>
 *   Pipe-Cached-From: <commit>  Pipe-Duration-Ms: <n>
 *   Pipe-Input: <path> <hash>   Pipe-Datums: <processed>/<skipped>/<total>
 *   Pipe-Upstream: <stage> <c>  Pipe-Bytes-In: <n>
 *   Pipe-Param: <key>=<value>   Pipe-Bytes-Out: <n>
 * Values are escaped with store_escape, so any byte survives.
 */
void store_prov_format(const struct store_prov *p, struct strbuf *out);
/* Parse a message written by store_prov_format into out (initialised
 * here). Fails on a malformed trailer block. */
int store_prov_parse(const char *msg, struct store_prov *out,
		     struct error *err);

/* Escape for a trailer value or manifest path: '\' -> "\\", newline ->
 * "\n", other control bytes, DEL, and a leading or trailing space ->
 * "\xHH"; extra lists more bytes to write as "\xHH" (may be NULL). */
void store_escape(struct strbuf *out, const char *s, const char *extra);
/* Undo store_escape; fails on a bad escape. */
int store_unescape(struct strbuf *out, const char *s, size_t len);

/* ---- stage commits --------------------------------------------------- */

/*
 * Commit the outputs of stage (workspace-relative paths, folders ending in
 * '/', NULL-terminated) as a new commit on refs/pipe/stages/<stage>, its
 * parent the stage's current commit. Files of STORE_CAS_MIN bytes or more
 * are copied (reflink, else copy_file_range) into the CAS; the hash is taken
 * of the copy, so later edits of the workspace never reach the store.
 * Provenance comes from prov (may be NULL; prov->stage is ignored;
 * Pipe-Bytes-Out is what was committed). Objects and CAS files are fsynced
 * before the ref moves, and the ref moves only if nobody moved it meanwhile: a
 * crash leaves the previous commit in place. A missing output, a special file,
 * or an output path that is absolute, escapes the workspace, lies in .pipe/
 * or is STORE_MANIFEST fails.
 */
int store_commit_stage(struct store *st, const char *workspace,
		       const char *stage, char *const *outputs,
		       const struct store_prov *prov, char *out_commit,
		       struct error *err);

/* Content hashes the caller already knows: known(arg, path, st, out)
 * gives 1 and the XXH3-128 of the workspace file path (workspace-relative)
 * whose lstat is st, when it knows it for certain (engine: a trusted stat
 * cache entry), else 0. store_commit_stage then takes a small file whose
 * hash, size and mode equal those of the same path in the stage's
 * previous commit from that commit, without reading it: one changed datum
 * of 10,000 commits 9,999 files unread. */
struct stat;
typedef int (*store_known_fn)(void *arg, const char *path,
			      const struct stat *st, struct hash128 *out);
void store_set_known(struct store *st, store_known_fn known, void *arg);

/* A run-cache hit: a new commit on stage (parent its current commit)
 * holding the outputs of source, a stage commit, without copying anything.
 * Use prov->state "cached" and prov->cached_from = source. */
int store_commit_reuse(struct store *st, const char *stage, const char *source,
		       const struct store_prov *prov, char *out_commit,
		       struct error *err);

/*
 * Batch mode, for a run of many small stages: between store_batch_begin
 * and store_batch_flush, stage commits stay in memory (store_stage_head,
 * the run-cache and reads see them) and their refs are not moved; a flush
 * writes every pending object as one pack (one fsync) and then moves each
 * ref (compare-and-swap). A crash before a flush loses the batch's commits,
 * never the refs' earlier ones. CAS files are still written at once.
 */
void store_batch_begin(struct store *st);
int store_batch_flush(struct store *st, struct error *err);

/* The current commit of stage: 1 found, 0 no commit yet, -1 error. */
int store_stage_head(struct store *st, const char *stage, char *out_commit,
		     struct error *err);

/* The current commits of n stages at once (a run record names them all):
 * one pass over the refs rather than a ref read each. heads[i] gets
 * stages[i]'s commit, "" when it has none. Returns 0 or -1. */
int store_stage_heads(struct store *st, const char *const *stages, size_t n,
		      char (*heads)[STORE_ID_SIZE], struct error *err);
struct store_run;
/* The same into run (with no stages yet; struct store_run is below), in
 * their order, the stages
 * without a commit left out: run's names are stages' own (borrowed, not
 * copied: they must outlive run). Returns 0 or -1. */
int store_run_add_heads(struct store *st, struct store_run *run,
			const char *const *stages, size_t n, struct error *err);

/* Run-cache: a commit of stage (any stage when stage is NULL) whose
 * Pipe-Key is key_hex, on the history of any ref. Returns 1 found, 0 none,
 * -1 error. Uses the pipe-keys index and brings it up to date. */
int store_find_key(struct store *st, const char *stage, const char *key_hex,
		   char *out_commit, struct error *err);

int store_read_prov(struct store *st, const char *commit,
		    struct store_prov *out, struct error *err);

struct store_commit {
	char id[STORE_ID_SIZE];
	char parent[STORE_ID_SIZE]; /* "" for the first */
	long long time;		    /* commit time, unix seconds */
	struct store_prov prov;
};

/* The history of stage, newest first, at most max commits (0: all).
 * *out is an array the caller frees with store_commits_free. */
int store_stage_log(struct store *st, const char *stage, size_t max,
		    struct store_commit **out, size_t *nr, struct error *err);
void store_commits_free(struct store_commit *c, size_t nr);

/* ---- files of a commit ------------------------------------------------ */

enum store_file_kind { STORE_BLOB, STORE_CAS, STORE_LINK };

struct store_file {
	char *path; /* workspace-relative */
	enum store_file_kind kind;
	int exec;
	unsigned long long size;
	char hash[HASH_HEX_LEN + 1]; /* XXH3-128 of the content (link target) */
};

struct store_manifest {
	char **outputs; /* as declared; folders end in '/' */
	size_t outputs_nr, outputs_alloc;
	char **dirs; /* folders without files, ending in '/' */
	size_t dirs_nr, dirs_alloc;
	struct store_file *files; /* sorted by path */
	size_t files_nr, files_alloc;
};

void store_manifest_init(struct store_manifest *m);
void store_manifest_release(struct store_manifest *m);
/* The outputs and files of a stage commit, with their XXH3-128 hashes. */
int store_read_manifest(struct store *st, const char *commit,
			struct store_manifest *out, struct error *err);

/* Append the content of one file of a stage commit to out, or write it to
 * fd (CAS files are streamed, memory stays flat). A symlink gives its
 * target. */
int store_read_file(struct store *st, const char *commit, const char *path,
		    struct strbuf *out, struct error *err);
int store_read_file_fd(struct store *st, const char *commit, const char *path,
		       int fd, struct error *err);

/*
 * Put a stage commit's outputs back into workspace: each output path is
 * rebuilt in a temp sibling and renamed into place (swapped with what is
 * there, which is then removed), so a reader sees the old or the new
 * output, never a mix. Exec bits and symlinks are restored; CAS files are
 * reflinked or copied. Given a run record, restores each of its stage
 * commits. CAS files are not re-hashed here, which would double the cost:
 * they are named by the hash of the store's private copy, read-only, and
 * never rewritten; store_verify() re-hashes them all (pipe gc/fsck).
 */
int store_restore(struct store *st, const char *commit, const char *workspace,
		  struct error *err);
/* store_restore of a stage commit's outputs named in only (declared paths,
 * folders ending in '/', NULL-terminated; NULL: all): a restore writes
 * exactly what the stage declares now, never an output it dropped. */
int store_restore_outputs(struct store *st, const char *commit,
			  const char *workspace, char *const *only,
			  struct error *err);

/* ---- datum results ------------------------------------------------------ */

/*
 * The result of each datum of a `datums:` stage (its PIPE_OUT folder) is a
 * tree laid out as a stage commit's is: the folder's files at their paths
 * relative to it, and, when some of them went to the CAS, a STORE_MANIFEST
 * naming each top-level entry as an output (gc and verify read it as they
 * read stage commits). A result of small files needs no manifest: its
 * tree says all, and a run of 10,000 datums packs a third fewer objects. A
 * per-stage index finds them by datum key: refs/pipe/datums/<stage> points at a
 * commit ("Pipe-Kind: datums", its parent the index's previous commit) whose
 * tree maps the key's 32 hex digits, fanned out as <2 hex>/<30 hex>, to the
 * result tree. The index keeps every key it was given; a key stored again
 * points at its newest result. Index commits move their ref as stage commits
 * do: at once, or in batch mode at the next store_batch_flush (until then the
 * results are seen by this process only).
 */

/* Store the folder dir (read as it is now) as the result of datum key_hex
 * of stage. A top-level entry called ".pipe" or STORE_MANIFEST, a special
 * file, or an unreadable file fails. files (may be NULL) gets the paths of
 * the files and symlinks stored, relative to dir, sorted. */
int store_datum_put(struct store *st, const char *stage, const char *key_hex,
		    const char *dir, struct strvec *files, struct error *err);

/* 1 when stage's index has a result for key_hex, 0 when not, -1 error. */
int store_datum_has(struct store *st, const char *stage, const char *key_hex,
		    struct error *err);

/* The files and symlinks of a stored result, relative to its folder,
 * sorted, appended to files. A missing key fails. */
int store_datum_files(struct store *st, const char *stage, const char *key_hex,
		      struct strvec *files, struct error *err);

/* Write a stored result's files into the folder dir (made when missing),
 * which may hold other files: folders are reused, but no file of the
 * result may exist there yet. Symlinks and exec bits come back; CAS files
 * are reflinked or copied. Folders the datum left empty are not made. */
int store_datum_restore(struct store *st, const char *stage,
			const char *key_hex, const char *dir,
			struct error *err);

/* ---- refs and runs ------------------------------------------------------ */

/*
 * Resolve ref to a commit id: "STAGE" (its latest commit), "STAGE~N" (N
 * first parents back), "runs" / "runs~N" (run records), or a full or
 * abbreviated (at least 4 hex digits) commit id. An abbreviation several
 * commits share fails and lists them. *is_run (may be NULL) is set to 1 for
 * a run record.
 */
int store_resolve(struct store *st, const char *ref, char *out_commit,
		  int *is_run, struct error *err);

struct store_run_stage {
	char *stage;
	char commit[STORE_ID_SIZE];
	/* a stage commit this process wrote (see heads_ours): the record
	 * need not read it back to check that it is one */
	unsigned ours : 1;
};

struct store_run {
	char id[STORE_ID_SIZE];	    /* filled by reading */
	char parent[STORE_ID_SIZE]; /* filled by reading; "" for the first */
	long long time;		    /* filled by reading */
	/* the record's format, filled by reading: 1 (stages in the message)
	 * or STORE_RUN_FORMAT (stages in the tree only) */
	long long format;
	/* how many stages the record names, filled by reading: stages_nr
	 * once the stages are read */
	long long stage_count;
	struct store_run_stage *stages;
	size_t stages_nr, stages_alloc;
	int names_borrowed; /* stages[].stage are not run's to free */
	char *state;	    /* "success", "failed", ...; may be NULL */
	char *git_head;	    /* may be NULL */
	int git_dirty;
	long long started, duration_ms;
	struct store_kv *extra;
	size_t extra_nr, extra_alloc;
	/* the tree of the run's untracked inputs (see "untracked inputs"),
	 * 40 hex; "" when none were recorded */
	char inputs[STORE_ID_SIZE];
	/* for store_run_add_heads, or NULL: per stage given, nonzero when its
	 * head is a stage commit this process wrote (under the workspace
	 * lock). Borrowed. A full run of 100,000 stages then reads none of
	 * its 100,000 new commits back (1 s, and 8 MB of pack mapped). */
	const unsigned char *heads_ours;
};

void store_run_init(struct store_run *r);
void store_run_release(struct store_run *r);
void store_run_add_stage(struct store_run *r, const char *stage,
			 const char *commit);

/*
 * Run records, format 2 (Pipe-Run-Format: 2). The message holds the run's
 * fields and "Pipe-Stages: <count>"; the tree holds each stage commit as
 * a gitlink stages/<shard>/<entry>, entry the stage's escaped name
 * (store_stage_entry) and shard two hex digits of a hash of it
 * (store_run_shard), so that a record after a run that moved k of N stage
 * heads shares every shard no moved head falls in with the previous record:
 * those are neither written nor checked again. Format 1 (read, no longer
 * written) listed "Pipe-Stage: <stage> <commit>" for every stage in the
 * message, and the gitlinks as stages/<entry>. A record of a newer format
 * fails to read rather than being misread.
 */
#define STORE_RUN_FORMAT 2

/* Record a run on refs/pipe/runs, its parent the previous run, naming the
 * stage commits in run (each checked to be a stage commit unless the
 * previous record named it). */
int store_write_run(struct store *st, const struct store_run *run, char *out_id,
		    struct error *err);
/* A run record with its stages (format 2: sorted by name). */
int store_read_run(struct store *st, const char *id, struct store_run *out,
		   struct error *err);
/* Read the stages of a run that store_list_runs* returned without them
 * (stages_nr < stage_count); nothing to do otherwise. */
int store_run_read_stages(struct store *st, struct store_run *run,
			  struct error *err);
/* Run records, newest first, at most max (0: all); free with
 * store_runs_free. Summaries: a format-2 record's stages are not read
 * (stage_count says how many; see store_run_read_stages). */
int store_list_runs(struct store *st, size_t max, struct store_run **out,
		    size_t *nr, struct error *err);
void store_runs_free(struct store_run *r, size_t nr);
/* Every run record the store has, newest first: this workspace's and
 * those pulled from others (refs/pipe/remotes/ID/runs: pipe pull).
 * Summaries, as store_list_runs. */
int store_list_runs_all(struct store *st, struct store_run **out, size_t *nr,
			struct error *err);

/* ---- untracked inputs and the project's history (pipe reproduce) ------ */

/*
 * A run record also keeps what the project's git does not: the content of
 * every input file of its stages that no stage writes and that the
 * project's HEAD (Pipe-Git-Head) does not hold as it is (not in HEAD's tree,
 * or changed in the index or the work tree). They form the tree
 * inputs/ of the run's commit, laid out as a stage commit's: the files at
 * their workspace paths, each declared as an output in the manifest, files
 * of STORE_CAS_MIN bytes or more in the CAS. A file that the previous run
 * recorded with the hash the stat cache knows now is taken from it unread:
 * unchanged data costs no read and no new object.
 */

/* Mark in untracked[i] the paths (workspace-relative files) that the
 * project's HEAD, as p read it, does not hold as they are: not in HEAD's
 * tree, or changed in the index or the work tree. Returns 1, or 0
 * (nothing marked) outside a git repository, before its first commit or
 * outside its work tree. Asks p's child when it has one (store_project_
 * start), else reads HEAD's tree here. The current folder is the
 * workspace. */
int store_project_untracked(struct store_project *p, char *const *paths,
			    size_t n, unsigned char *untracked);

/* Store files (sorted by path, unique, workspace-relative; with the
 * hash, size, exec bit and kind the caller's scan found: STORE_LINK for
 * a symlink) as run's untracked inputs: sets run->inputs. When they are
 * exactly the previous run's, its tree is taken and nothing is read.
 * prev_m (may be NULL) is what store_prev_run_inputs read, if the caller
 * has it. Objects are pending until store_write_run. */
int store_run_set_inputs(struct store *st, const char *workspace,
			 const struct store_file *files, size_t nr,
			 const struct store_manifest *prev_m,
			 struct store_run *run, struct error *err);

/* The manifest of run's untracked inputs (files, sizes, hashes): 1 read,
 * 0 the run recorded none, -1 error. */
int store_run_inputs(struct store *st, const struct store_run *run,
		     struct store_manifest *out, struct error *err);

/* The manifest of the newest run's untracked inputs: 1 read, 0 none
 * (or unreadable: m is then empty). */
int store_prev_run_inputs(struct store *st, struct store_manifest *m);
/* The entry for path in m (sorted, as read), or NULL. */
const struct store_file *store_manifest_find(const struct store_manifest *m,
					     const char *path);

/* Write run's recorded inputs named in only (NULL: all) into workspace,
 * replacing what is there. */
int store_restore_run_inputs(struct store *st, const struct store_run *run,
			     const char *workspace, char *const *only,
			     struct error *err);

/* The project's commit for rev (40 hex into commit) and the workspace's
 * path below its work tree ("" or "sub/"): EXIT_USAGE outside a git
 * repository or for an unknown rev. Then write that commit's files into
 * the empty folder dir; it must hold must_have (workspace-relative). dir
 * NULL: only check that. */
int store_project_resolve(const char *rev, struct strbuf *commit,
			  struct strbuf *prefix, struct error *err);
int store_project_export(const char *commit, const char *dir,
			 const char *must_have, struct error *err);

/*
 * A scratch store at <pipe_dir>/store (replacing any there) that sees
 * everything main has and writes nothing to it: its git objects come from
 * main's through git's alternates, its refs start as copies of main's, and
 * its cas/ is main's (content-addressed and never rewritten, so a new file
 * there is at worst garbage for main's gc). Commits made in the scratch
 * store stay there. The caller holds main's workspace lock.
 */
int store_make_shadow(struct store *main, const char *pipe_dir,
		      struct error *err);

/* ---- displaced files ---------------------------------------------------- */

/*
 * Before pipe replaces or removes what it did not write (or what changed
 * since it wrote it), the content is kept here: a commit on
 * refs/pipe/displaced (its parent the previous one) holding paths
 * (normalized, workspace-relative, folders ending in '/', NULL-terminated)
 * as they are now, laid out as a stage commit. stage (may be NULL) and why
 * ("before running stage 'a'") are recorded with it. The commit and its
 * files are on disk before this returns, in batch mode too. kept (may be
 * NULL) gets its manifest. "displaced" and "displaced~N" resolve to these
 * commits (store_resolve).
 */
int store_keep_displaced(struct store *st, const char *workspace,
			 const char *stage, const char *why, char *const *paths,
			 struct store_manifest *kept, char *out_commit,
			 struct error *err);

struct store_displaced {
	char id[STORE_ID_SIZE];
	long long time; /* commit time, unix seconds */
	char *stage;	/* may be NULL */
	char *why;
	char **paths;
	size_t paths_nr;
};

/* Displaced commits, newest first, at most max (0: all). */
int store_displaced_log(struct store *st, size_t max,
			struct store_displaced **out, size_t *nr,
			struct error *err);
void store_displaced_free(struct store_displaced *v, size_t nr);

/* The newest displaced commit that holds the file path: 1 found (its id
 * in out_commit), 0 none, -1 error. */
int store_displaced_find(struct store *st, const char *path, char *out_commit,
			 struct error *err);

/* ---- maintenance -------------------------------------------------------- */

/*
 * Remove what no ref reaches (the stage refs, refs/pipe/runs with the
 * stage commits its records link to, and any other ref): git objects and
 * CAS files no reachable commit names; what is kept ends up in one pack.
 * dry_run only counts. *freed gets the bytes removed (dry run: an
 * estimate; packed objects count at their unpacked size). The caller holds
 * the workspace lock: a commit running meanwhile could lose objects.
 */
int store_gc(struct store *st, int dry_run, unsigned long long *freed,
	     struct error *err);

/* The ids of every commit store_gc keeps (what a ref reaches, with the
 * stage commits run records name), sorted for bsearch with strcmp; *out
 * is the caller's (free). */
int store_reachable(struct store *st, char (**out)[STORE_ID_SIZE], size_t *nr,
		    struct error *err);

/* Re-hash every CAS file that a reachable commit names; fails naming the
 * first missing or corrupt one. *checked gets the number verified. */
int store_verify(struct store *st, size_t *checked, struct error *err);

#endif
