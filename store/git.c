/* The one file that includes libgit2: a bare repository behind pipe's types,
 * git_error_last() turned into struct error. */
#include "store/git.h"
#include "store/pack.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strmap.h"
#include "util/dl.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>
#include <time.h>
#include <git2/sys/commit.h>
#include <git2/sys/odb_backend.h>
#include <git2/sys/refdb_backend.h>
#include <git2/sys/repository.h>

#ifndef PIPE_LIBGIT2
#define PIPE_LIBGIT2 "libgit2.so"
#endif

#if defined(__SANITIZE_ADDRESS__)
/* make asan: libgit2 1.5 (Debian 12) leaks a PCRE2 match data each time
 * one of its regular expressions does not match (git_regexp_match returns
 * before freeing it; fixed upstream later), e.g. the url.*.insteadOf
 * lookup of every remote it opens. Not pipe's: LeakSanitizer is told. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

/* ... and says nothing of it (its table would go to the tests' stderr) */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}
#endif

/* libgit2 is loaded when first needed, not when pipe starts: `pipe status`
 * needs neither it nor the dozens of libraries it pulls in, and loading
 * them costs more than the whole no-op check. Every function used here
 * is in this list (one missing fails the link: pipe is not linked with
 * the library). PIPE_LIBGIT2 is the soname the build found. */
#define GIT_API(X)                                                             \
	X(git_blob_free)                                                       \
	X(git_blob_lookup)                                                     \
	X(git_blob_rawcontent)                                                 \
	X(git_blob_rawsize)                                                    \
	X(git_buf_dispose)                                                     \
	X(git_commit_create_from_ids)                                          \
	X(git_commit_free)                                                     \
	X(git_commit_lookup)                                                   \
	X(git_commit_message_raw)                                              \
	X(git_commit_parent_id)                                                \
	X(git_commit_parentcount)                                              \
	X(git_commit_time)                                                     \
	X(git_commit_tree_id)                                                  \
	X(git_config_free)                                                     \
	X(git_config_get_int64)                                                \
	X(git_config_set_int64)                                                \
	X(git_error_last)                                                      \
	X(git_graph_descendant_of)                                             \
	X(git_libgit2_init)                                                    \
	X(git_libgit2_opts)                                                    \
	X(git_libgit2_shutdown)                                                \
	X(git_object_free)                                                     \
	X(git_object_id)                                                       \
	X(git_object_lookup_prefix)                                            \
	X(git_object_type)                                                     \
	X(git_object_peel)                                                     \
	X(git_revparse_single)                                                 \
	X(git_repository_workdir)                                              \
	X(git_status_byindex)                                                  \
	X(git_tree_entry_type)                                                 \
	X(git_tree_entry_byindex)                                              \
	X(git_tree_entrycount)                                                 \
	X(git_odb_add_backend)                                                 \
	X(git_indexer_append)                                                  \
	X(git_indexer_commit)                                                  \
	X(git_indexer_free)                                                    \
	X(git_indexer_new)                                                     \
	X(git_odb_backend_data_alloc)                                          \
	X(git_odb_init_backend)                                                \
	X(git_odb_backend_loose)                                               \
	X(git_odb_backend_one_pack)                                            \
	X(git_odb_exists)                                                      \
	X(git_odb_exists_ext)                                                  \
	X(git_odb_free)                                                        \
	X(git_odb_open)                                                        \
	X(git_repository_set_odb)                                              \
	X(git_odb_get_backend)                                                 \
	X(git_odb_hash)                                                        \
	X(git_odb_num_backends)                                                \
	X(git_odb_object_data)                                                 \
	X(git_odb_object_free)                                                 \
	X(git_odb_object_size)                                                 \
	X(git_odb_object_type)                                                 \
	X(git_odb_read)                                                        \
	X(git_odb_read_header)                                                 \
	X(git_odb_refresh)                                                     \
	X(git_oid_fromstrn)                                                    \
	X(git_oid_tostr)                                                       \
	X(git_packbuilder_free)                                                \
	X(git_packbuilder_insert)                                              \
	X(git_packbuilder_name)                                                \
	X(git_packbuilder_new)                                                 \
	X(git_packbuilder_object_count)                                        \
	X(git_packbuilder_write)                                               \
	X(git_packbuilder_write_buf)                                           \
	X(git_reference_create)                                                \
	X(git_reference_create_matching)                                       \
	X(git_reference_free)                                                  \
	X(git_reference_iterator_free)                                         \
	X(git_reference_iterator_glob_new)                                     \
	X(git_reference_name)                                                  \
	X(git_reference_name_is_valid)                                         \
	X(git_reference_name_to_id)                                            \
	X(git_refdb_free)                                                      \
	X(git_refdb_init_backend)                                              \
	X(git_refdb_new)                                                       \
	X(git_refdb_set_backend)                                               \
	X(git_repository_set_config)                                           \
	X(git_repository_set_refdb)                                            \
	X(git_repository_wrap_odb)                                             \
	X(git_reference_next)                                                  \
	X(git_reference_remove)                                                \
	X(git_reference_target)                                                \
	X(git_repository_config)                                               \
	X(git_repository_free)                                                 \
	X(git_repository_init)                                                 \
	X(git_repository_odb)                                                  \
	X(git_repository_open_ext)                                             \
	X(git_revwalk_free)                                                    \
	X(git_revwalk_hide)                                                    \
	X(git_revwalk_new)                                                     \
	X(git_revwalk_next)                                                    \
	X(git_revwalk_push)                                                    \
	X(git_revwalk_simplify_first_parent)                                   \
	X(git_revwalk_sorting)                                                 \
	X(git_signature_free)                                                  \
	X(git_status_list_entrycount)                                          \
	X(git_status_list_free)                                                \
	X(git_status_list_new)                                                 \
	X(git_signature_now)                                                   \
	X(git_tree_entry_byname)                                               \
	X(git_tree_entry_bypath)                                               \
	X(git_tree_entry_filemode_raw)                                         \
	X(git_tree_entry_free)                                                 \
	X(git_tree_entry_id)                                                   \
	X(git_tree_entry_name)                                                 \
	X(git_tree_free)                                                       \
	X(git_tree_lookup)                                                     \
	X(git_tree_walk)                                                       \
	X(git_treebuilder_free)                                                \
	X(git_treebuilder_insert)                                              \
	X(git_treebuilder_new)                                                 \
	X(git_treebuilder_write)                                               \
	X(git_credential_ssh_key_from_agent)                                   \
	X(git_fetch_options_init)                                              \
	X(git_packbuilder_insert_walk)                                         \
	X(git_push_options_init)                                               \
	X(git_remote_create_anonymous)                                         \
	X(git_remote_fetch)                                                    \
	X(git_remote_free)                                                     \
	X(git_remote_lookup)                                                   \
	X(git_remote_push)                                                     \
	X(git_remote_url)

#define X(f) static __typeof__(f) *p_##f;
GIT_API(X)
#undef X

static int load_libgit2(struct error *err)
{
	static int loaded;
	static const struct dl_fn fns[] = {
#define X(f) {#f, &p_##f},
		GIT_API(X)
#undef X
	};

	return dl_load(PIPE_LIBGIT2, "Debian's libgit2-1.5", fns,
		       sizeof(fns) / sizeof(fns[0]), &loaded, err);
}

/* From here on, the names call through the pointers. */
#define git_credential_ssh_key_from_agent (*p_git_credential_ssh_key_from_agent)
#define git_fetch_options_init (*p_git_fetch_options_init)
#define git_packbuilder_insert_walk (*p_git_packbuilder_insert_walk)
#define git_push_options_init (*p_git_push_options_init)
#define git_remote_create_anonymous (*p_git_remote_create_anonymous)
#define git_remote_fetch (*p_git_remote_fetch)
#define git_remote_free (*p_git_remote_free)
#define git_remote_lookup (*p_git_remote_lookup)
#define git_remote_push (*p_git_remote_push)
#define git_remote_url (*p_git_remote_url)
#define git_blob_free (*p_git_blob_free)
#define git_blob_lookup (*p_git_blob_lookup)
#define git_blob_rawcontent (*p_git_blob_rawcontent)
#define git_blob_rawsize (*p_git_blob_rawsize)
#define git_commit_create_from_ids (*p_git_commit_create_from_ids)
#define git_commit_free (*p_git_commit_free)
#define git_commit_lookup (*p_git_commit_lookup)
#define git_commit_message_raw (*p_git_commit_message_raw)
#define git_commit_parent_id (*p_git_commit_parent_id)
#define git_commit_parentcount (*p_git_commit_parentcount)
#define git_commit_time (*p_git_commit_time)
#define git_commit_tree_id (*p_git_commit_tree_id)
#define git_config_free (*p_git_config_free)
#define git_config_get_int64 (*p_git_config_get_int64)
#define git_config_set_int64 (*p_git_config_set_int64)
#define git_error_last (*p_git_error_last)
#define git_graph_descendant_of (*p_git_graph_descendant_of)
#define git_libgit2_init (*p_git_libgit2_init)
#define git_libgit2_opts (*p_git_libgit2_opts)
#define git_libgit2_shutdown (*p_git_libgit2_shutdown)
#define git_object_free (*p_git_object_free)
#define git_object_id (*p_git_object_id)
#define git_object_lookup_prefix (*p_git_object_lookup_prefix)
#define git_object_type (*p_git_object_type)
#define git_object_peel (*p_git_object_peel)
#define git_revparse_single (*p_git_revparse_single)
#define git_repository_workdir (*p_git_repository_workdir)
#define git_status_byindex (*p_git_status_byindex)
#define git_tree_entry_type (*p_git_tree_entry_type)
#define git_tree_entry_byindex (*p_git_tree_entry_byindex)
#define git_tree_entrycount (*p_git_tree_entrycount)
#define git_odb_add_backend (*p_git_odb_add_backend)
#define git_indexer_append (*p_git_indexer_append)
#define git_indexer_commit (*p_git_indexer_commit)
#define git_indexer_free (*p_git_indexer_free)
#define git_indexer_new (*p_git_indexer_new)
#define git_odb_backend_data_alloc (*p_git_odb_backend_data_alloc)
#define git_odb_init_backend (*p_git_odb_init_backend)
#define git_odb_backend_loose (*p_git_odb_backend_loose)
#define git_odb_backend_one_pack (*p_git_odb_backend_one_pack)
#define git_odb_exists (*p_git_odb_exists)
#define git_odb_exists_ext (*p_git_odb_exists_ext)
#define git_odb_free (*p_git_odb_free)
#define git_odb_open (*p_git_odb_open)
#define git_repository_set_odb (*p_git_repository_set_odb)
#define git_odb_get_backend (*p_git_odb_get_backend)
#define git_odb_hash (*p_git_odb_hash)
#define git_odb_num_backends (*p_git_odb_num_backends)
#define git_odb_object_data (*p_git_odb_object_data)
#define git_odb_object_free (*p_git_odb_object_free)
#define git_odb_object_size (*p_git_odb_object_size)
#define git_odb_object_type (*p_git_odb_object_type)
#define git_odb_read (*p_git_odb_read)
#define git_odb_read_header (*p_git_odb_read_header)
#define git_odb_refresh (*p_git_odb_refresh)
#define git_oid_fromstrn (*p_git_oid_fromstrn)
#define git_oid_tostr (*p_git_oid_tostr)
#define git_packbuilder_free (*p_git_packbuilder_free)
#define git_packbuilder_insert (*p_git_packbuilder_insert)
#define git_packbuilder_name (*p_git_packbuilder_name)
#define git_packbuilder_new (*p_git_packbuilder_new)
#define git_packbuilder_object_count (*p_git_packbuilder_object_count)
#define git_packbuilder_write (*p_git_packbuilder_write)
#define git_packbuilder_write_buf (*p_git_packbuilder_write_buf)
#define git_buf_dispose (*p_git_buf_dispose)
#define git_reference_create (*p_git_reference_create)
#define git_reference_create_matching (*p_git_reference_create_matching)
#define git_reference_free (*p_git_reference_free)
#define git_reference_iterator_free (*p_git_reference_iterator_free)
#define git_reference_iterator_glob_new (*p_git_reference_iterator_glob_new)
#define git_reference_name (*p_git_reference_name)
#define git_reference_name_is_valid (*p_git_reference_name_is_valid)
#define git_reference_name_to_id (*p_git_reference_name_to_id)
#define git_refdb_free (*p_git_refdb_free)
#define git_refdb_init_backend (*p_git_refdb_init_backend)
#define git_refdb_new (*p_git_refdb_new)
#define git_refdb_set_backend (*p_git_refdb_set_backend)
#define git_repository_set_config (*p_git_repository_set_config)
#define git_repository_set_refdb (*p_git_repository_set_refdb)
#define git_repository_wrap_odb (*p_git_repository_wrap_odb)
#define git_reference_next (*p_git_reference_next)
#define git_reference_remove (*p_git_reference_remove)
#define git_reference_target (*p_git_reference_target)
#define git_repository_config (*p_git_repository_config)
#define git_repository_free (*p_git_repository_free)
#define git_repository_init (*p_git_repository_init)
#define git_repository_odb (*p_git_repository_odb)
#define git_repository_open_ext (*p_git_repository_open_ext)
#define git_revwalk_free (*p_git_revwalk_free)
#define git_revwalk_hide (*p_git_revwalk_hide)
#define git_revwalk_new (*p_git_revwalk_new)
#define git_revwalk_next (*p_git_revwalk_next)
#define git_revwalk_push (*p_git_revwalk_push)
#define git_revwalk_simplify_first_parent (*p_git_revwalk_simplify_first_parent)
#define git_revwalk_sorting (*p_git_revwalk_sorting)
#define git_signature_free (*p_git_signature_free)
#define git_status_list_entrycount (*p_git_status_list_entrycount)
#define git_status_list_free (*p_git_status_list_free)
#define git_status_list_new (*p_git_status_list_new)
#define git_signature_now (*p_git_signature_now)
#define git_tree_entry_byname (*p_git_tree_entry_byname)
#define git_tree_entry_bypath (*p_git_tree_entry_bypath)
#define git_tree_entry_filemode_raw (*p_git_tree_entry_filemode_raw)
#define git_tree_entry_free (*p_git_tree_entry_free)
#define git_tree_entry_id (*p_git_tree_entry_id)
#define git_tree_entry_name (*p_git_tree_entry_name)
#define git_tree_free (*p_git_tree_free)
#define git_tree_lookup (*p_git_tree_lookup)
#define git_tree_walk (*p_git_tree_walk)
#define git_treebuilder_free (*p_git_treebuilder_free)
#define git_treebuilder_insert (*p_git_treebuilder_insert)
#define git_treebuilder_new (*p_git_treebuilder_new)
#define git_treebuilder_write (*p_git_treebuilder_write)

/* Pending objects are written as a pack once they pass this many bytes:
 * they are on disk already (store/pack.c), but not yet fsynced, named or
 * seen by another process. */
#define FLUSH_BYTES (16u << 20)
/* libgit2 keeps every commit and tree it reads (the pack builder reads
 * each object it packs) in a cache of up to 256 MB: about 800 bytes a
 * stage of a full run, held to its end. pipe reads an object again
 * rarely. */
#define CACHE_MAX_BYTES (4 << 20)
/* Packs are read through windows mapped from them, up to 1 GB each and
 * 8 GB in all by default: what a run reads stays in its resident set.
 * After a full run of 100,000 stages the run record read each new stage
 * commit once, all over 60 MB of packs (+50 MB resident); a run of every
 * stage again reads each one's previous tree and manifest. Windows of
 * 2 MB, 8 MB mapped at most (8 and 32 MB before: at 20,000 stages the
 * reads with windows of a quarter of that took 342 ms against 374 and
 * peaked 5 MB lower). */
#define MWINDOW_BYTES ((size_t)2 << 20)
#define MWINDOW_MAPPED_BYTES ((size_t)8 << 20)
/* Commits and trees are not cached at all: a run record checks each new
 * stage commit once (100,000 of them after a full run), a rerun reads
 * each stage's previous tree once, and the cache's accounting counts the
 * raw object, not what it is parsed into (commits: 7.5 MB live at the end
 * of a full run of 20,000 stages against the 4 MB cap; trees: a 40-byte
 * tree of one entry holds a 512-byte table, 20 MB at 20,000 stages when
 * every stage reran after a Pipefile change). */
/* The pending objects' backend is asked first. */
#define PENDING_PRIORITY 1000
/* A flush of this few objects writes loose objects (two fsyncs each: the
 * file and its folder) rather than a pack (three: pack, index, folder; and
 * one more file to search until merge_packs). */
#define LOOSE_MAX 2
/* zlib's fastest level for new objects, git's core.looseCompression
 * default: most are written once and read once by the next run. Merged
 * packs keep their entries' bytes as they are. */
#define LOOSE_LEVEL 1
/* More packs than this, and the small ones are merged (see merge_packs),
 * this many objects at most in one merge (merge_budget). */
#define PACKS_MAX 16
#define MERGE_MAX_OBJECTS (1u << 17)

struct sgit {
	char *dir;
	git_repository *repo;
	git_odb *odb;
	struct packw *pending; /* objects written since the last flush */
	size_t pending_bytes;
	git_odb_backend *loose; /* ours, for tiny flushes; lazily made */
	git_repository *packer; /* for pack builders; lazily made */
	/* the ids the packs may hold (see "known ids"); known_bits 0: not
	 * made yet */
	uint64_t *known;
	size_t known_bits, known_nr;
};

/* The pending objects as libgit2 sees them: a backend of the store's
 * object database (above its packs and loose objects) whose objects are
 * the entries of the pack being written. It answers what git_commit_create
 * checks and what a batch reads back before its flush; writes through the
 * database (commits) land in it. */
struct pending_backend {
	git_odb_backend be;
	struct packw *w;
};

static struct packw *pending_of(git_odb_backend *be)
{
	return ((struct pending_backend *)(void *)be)->w;
}

static int pending_read(void **out, size_t *len, git_object_t *type,
			git_odb_backend *be, const git_oid *id)
{
	void *data;
	int t;

	if (!packw_has(pending_of(be), id->id))
		return GIT_ENOTFOUND;
	if (packw_read(pending_of(be), id->id, &t, &data, len))
		return -1;
	*out = git_odb_backend_data_alloc(be, *len + 1);
	if (*out)
		memcpy(*out, data, *len + 1);
	free(data);
	*type = (git_object_t)t;
	return *out ? 0 : -1;
}

static int pending_read_header(size_t *len, git_object_t *type,
			       git_odb_backend *be, const git_oid *id)
{
	int t;

	if (!packw_has(pending_of(be), id->id))
		return GIT_ENOTFOUND;
	if (packw_header(pending_of(be), id->id, &t, len))
		return -1;
	*type = (git_object_t)t;
	return 0;
}

static int pending_exists(git_odb_backend *be, const git_oid *id)
{
	return packw_has(pending_of(be), id->id);
}

static int pending_write(git_odb_backend *be, const git_oid *id,
			 const void *data, size_t len, git_object_t type)
{
	struct error err = ERROR_INIT;
	int rc = packw_add(pending_of(be), id->id, (int)type, data, len, &err);

	if (rc)
		log_warn("%s", err.msg.buf);
	error_release(&err);
	return rc;
}

/* The writer is the store's (g->pending), not the backend's: a backend
 * goes with its odb, and the odb is replaced after a merge (reopen_odb). */
static void pending_free(git_odb_backend *be)
{
	free(be);
}

static git_odb_backend *pending_backend(struct packw *w)
{
	struct pending_backend *pb = xcalloc(1, sizeof(*pb));

	if (git_odb_init_backend(&pb->be, GIT_ODB_BACKEND_VERSION)) {
		free(pb);
		return NULL;
	}
	pb->w = w;
	pb->be.read = pending_read;
	pb->be.read_header = pending_read_header;
	pb->be.exists = pending_exists;
	pb->be.write = pending_write;
	pb->be.free = pending_free;
	return &pb->be;
}

/* Set err to what pipe was doing, then libgit2's reason. */
__attribute__((format(printf, 2, 3))) static int fail(struct error *err,
						      const char *fmt, ...)
{
	const git_error *e = git_error_last();
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	error_set(err, EXIT_ENV, "%s: %s", sb.buf,
		  e && e->message ? e->message : "unknown libgit2 error");
	strbuf_release(&sb);
	return -1;
}

_Static_assert(sizeof(git_oid) == SGIT_RAWSZ, "git_oid is 20 raw bytes");

static const git_oid *goid(const struct sgit_oid *o)
{
	/* struct sgit_oid and git_oid are both the 20 raw bytes of SHA-1. */
	return (const git_oid *)(const void *)o->id;
}

static void from_goid(const git_oid *g, struct sgit_oid *o)
{
	memcpy(o->id, g->id, SGIT_RAWSZ);
}

/* Plain C, not libgit2: these run before any repository is open. */
void sgit_oid_hex(const struct sgit_oid *oid, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < SGIT_RAWSZ; i++) {
		out[2 * i] = digits[oid->id[i] >> 4];
		out[2 * i + 1] = digits[oid->id[i] & 15];
	}
	out[SGIT_HEXSZ] = '\0';
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
				      : -1;
}

int sgit_oid_parse(const char *hex, struct sgit_oid *out)
{
	if (strlen(hex) != SGIT_HEXSZ)
		return -1;
	for (size_t i = 0; i < SGIT_RAWSZ; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out->id[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int sgit_oid_equal(const struct sgit_oid *a, const struct sgit_oid *b)
{
	return !memcmp(a->id, b->id, SGIT_RAWSZ);
}

/* Create the store beside its place and rename it there, so a kill
 * during creation never leaves a folder that is not a repository. One that
 * is there anyway (an older pipe's) is moved aside, not deleted. */
static int init_repo(git_repository **repo, const char *gitdir,
		     struct error *err)
{
	struct strbuf tmp = STRBUF_INIT, aside = STRBUF_INIT;
	git_repository *r = NULL;
	int rc;

	(void)err;
	strbuf_addf(&tmp, "%s.init-%ld", gitdir, (long)getpid());
	fs_remove_tree(tmp.buf);
	rc = git_repository_init(&r, tmp.buf, 1);
	git_repository_free(r);
	if (!rc && access(gitdir, F_OK) == 0) {
		strbuf_addf(&aside, "%s.broken-%ld", gitdir, (long)time(NULL));
		rc = rename(gitdir, aside.buf);
	}
	if (!rc)
		rc = rename(tmp.buf, gitdir);
	if (!rc)
		rc = git_repository_open_ext(repo, gitdir,
					     GIT_REPOSITORY_OPEN_NO_SEARCH |
						     GIT_REPOSITORY_OPEN_BARE,
					     NULL);
	if (rc)
		fs_remove_tree(tmp.buf);
	strbuf_release(&tmp);
	strbuf_release(&aside);
	return rc;
}

static int open_repo(git_repository **repo, const char *gitdir,
		     struct error *err)
{
	int rc = git_repository_open_ext(
		repo, gitdir,
		GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE, NULL);

	if (rc == GIT_ENOTFOUND)
		rc = init_repo(repo, gitdir, err);
	if (rc)
		return fail(err, "cannot open store '%s'", gitdir);
	return 0;
}

/* Config the store relies on, written once. No delta search when packing:
 * big files live in the CAS, and searching deltas among thousands of
 * small new files costs more than zlib itself. libgit2 (up to 1.9 at
 * least) reads its threshold from pack.deltaCacheSize, git from
 * pack.bigFileThreshold; objects under 50 bytes never get deltas. */
static const struct {
	const char *key;
	int64_t value;
} store_config[] = {
	{"pack.bigFileThreshold", 1},
	{"pack.deltaCacheSize", 1},
};

static int configure(struct sgit *g, struct error *err)
{
	git_config *cfg = NULL;
	int ret = -1;

	if (git_repository_config(&cfg, g->repo)) {
		fail(err, "cannot read the config of '%s'", g->dir);
		goto out;
	}
	for (size_t i = 0; i < sizeof(store_config) / sizeof(*store_config);
	     i++) {
		int64_t v;

		if (!git_config_get_int64(&v, cfg, store_config[i].key) &&
		    v == store_config[i].value)
			continue;
		if (git_config_set_int64(cfg, store_config[i].key,
					 store_config[i].value)) {
			fail(err, "cannot write the config of '%s'", g->dir);
			goto out;
		}
	}
	ret = 0;
out:
	git_config_free(cfg);
	return ret;
}

int sgit_open(struct sgit **out, const char *gitdir, struct error *err)
{
	struct sgit *g = xcalloc(1, sizeof(*g));
	git_odb_backend *be;
	char *pack_dir;

	*out = NULL;
	if (load_libgit2(err)) {
		free(g);
		return -1;
	}
	git_libgit2_init();
	g->dir = xstrdup(gitdir);
	if (git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1) ||
	    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 1) ||
	    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1) ||
	    git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE,
			     (ssize_t)CACHE_MAX_BYTES) ||
	    git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_COMMIT,
			     (size_t)0) ||
	    git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE,
			     (size_t)0) ||
	    git_libgit2_opts(GIT_OPT_SET_MWINDOW_SIZE, MWINDOW_BYTES) ||
	    git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT,
			     MWINDOW_MAPPED_BYTES)) {
		fail(err, "cannot configure libgit2");
		goto fail;
	}
	if (open_repo(&g->repo, gitdir, err) || configure(g, err))
		goto fail;
	if (git_repository_odb(&g->odb, g->repo)) {
		fail(err, "cannot open the objects of '%s'", gitdir);
		goto fail;
	}
	pack_dir = xstrfmt("%s/objects/pack", gitdir);
	g->pending = packw_new(pack_dir, LOOSE_LEVEL);
	free(pack_dir);
	be = pending_backend(g->pending);
	if (!be || git_odb_add_backend(g->odb, be, PENDING_PRIORITY)) {
		if (be)
			be->free(be);
		fail(err, "cannot open the objects of '%s'", gitdir);
		goto fail;
	}
	*out = g;
	return 0;
fail:
	sgit_free(g);
	return -1;
}

void sgit_free(struct sgit *g)
{
	if (!g)
		return;
	/* the pending objects' backend goes with the odb, their writer
	 * after it: objects never flushed leave no trace */
	if (g->loose)
		g->loose->free(g->loose);
	git_repository_free(g->packer);
	git_odb_free(g->odb);
	git_repository_free(g->repo);
	packw_free(g->pending);
	free(g->known);
	free(g->dir);
	free(g);
	git_libgit2_shutdown();
}

const char *sgit_dir(const struct sgit *g)
{
	return g->dir;
}

static int note_pending(struct sgit *g, size_t bytes, struct error *err)
{
	g->pending_bytes += bytes;
	if (g->pending_bytes >= FLUSH_BYTES)
		return sgit_flush(g, err);
	return 0;
}

/* ---- known ids ----------------------------------------------------------
 *
 * A Bloom filter of the ids in the store's packs (read from their indexes
 * when the first object is written) and of the objects this process has
 * flushed since: a new object, one the filter never saw, is written
 * without a search of every pack's index for it. libgit2 maps each index
 * whole and each search touches a few of its pages: over a full run of
 * 100,000 stages the 400,000 searches made the index of the store's
 * 400,000 objects resident whole (14 MB at the run's end). 16 bits an id
 * when full, 32 when made, and eleven probes: one new object in 2,000 at
 * worst is still searched for (at ten bits and seven probes, 1% was
 * enough to make a 10 MB index resident whole again). An id
 * the filter lacks although the store has it (a loose object, or a pack
 * another process wrote since) is written again: a second copy, never a
 * lost one. */

#define KNOWN_BITS_PER_ID 16
#define KNOWN_PROBES 11

/* The probes of id: SHA-1's bytes are uniform, two words of them make the
 * eleven (Kirsch and Mitzenmacher). */
static void known_probe(const struct sgit *g, const unsigned char *id,
			size_t *bit)
{
	uint64_t h1, h2;

	memcpy(&h1, id, 8);
	memcpy(&h2, id + 8, 8);
	h2 |= 1;
	for (int i = 0; i < KNOWN_PROBES; i++, h1 += h2)
		bit[i] = (size_t)(h1 & (g->known_bits - 1));
}

static void known_add(struct sgit *g, const unsigned char *id)
{
	size_t bit[KNOWN_PROBES];

	known_probe(g, id, bit);
	for (int i = 0; i < KNOWN_PROBES; i++)
		g->known[bit[i] >> 6] |= (uint64_t)1 << (bit[i] & 63);
	g->known_nr++;
}

static uint32_t be32_at(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* The ids of the index at path (version 2), added when add, counted into
 * *nr. An index that cannot be read adds none. */
static void known_index(struct sgit *g, const char *path, int add, size_t *nr)
{
	unsigned char head[8 + 256 * 4], *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n, chunk = 4096;

	if (fd < 0)
		return;
	if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    memcmp(head, "\377tOc", 4) || be32_at(head + 4) != 2)
		goto out;
	n = be32_at(head + 8 + 255 * 4);
	*nr += n;
	if (!add)
		goto out;
	buf = xmalloc(chunk * SGIT_RAWSZ);
	for (size_t i = 0; i < n; i += chunk) {
		size_t k = n - i < chunk ? n - i : chunk;
		ssize_t r = pread(fd, buf, k * SGIT_RAWSZ,
				  (off_t)(sizeof(head) + i * SGIT_RAWSZ));

		if (r != (ssize_t)(k * SGIT_RAWSZ))
			break;
		for (size_t j = 0; j < k; j++)
			known_add(g, buf + j * SGIT_RAWSZ);
	}
out:
	free(buf);
	close(fd);
}

static void list_packs(struct sgit *g, struct strbuf *dir, char ***names,
		       size_t *nr, size_t *npacks);
static void free_names(char **names, size_t nr);

/* The filter of the packs' ids, with room for as many more. */
static void known_make(struct sgit *g)
{
	struct strbuf dir = STRBUF_INIT;
	char **names;
	size_t nr, npacks, ids = 0, dir_len;

	list_packs(g, &dir, &names, &nr, &npacks);
	dir_len = dir.len;
	for (int add = 0; add < 2; add++) {
		if (add) {
			g->known_bits = 1 << 16;
			while (g->known_bits / KNOWN_BITS_PER_ID < 2 * ids)
				g->known_bits <<= 1;
			g->known = xcalloc(g->known_bits / 64, 8);
			g->known_nr = 0;
		}
		for (size_t i = 0; i < nr; i++) {
			size_t len = strlen(names[i]);

			if (len < 5 || strcmp(names[i] + len - 4, ".idx"))
				continue;
			strbuf_setlen(&dir, dir_len);
			strbuf_addf(&dir, "/%s", names[i]);
			known_index(g, dir.buf, add, &ids);
		}
	}
	free_names(names, nr);
	strbuf_release(&dir);
}

/* 0 when the store's packs surely lack id. */
static int known_maybe(struct sgit *g, const unsigned char *id)
{
	size_t bit[KNOWN_PROBES];

	if (!g->known_bits)
		known_make(g);
	known_probe(g, id, bit);
	for (int i = 0; i < KNOWN_PROBES; i++)
		if (!(g->known[bit[i] >> 6] & (uint64_t)1 << (bit[i] & 63)))
			return 0;
	return 1;
}

/* The pending objects, about to be flushed: known from now on. A filter
 * past its room is made again, larger, from the packs at the next
 * write. */
static void known_flushed(struct sgit *g)
{
	size_t n = packw_count(g->pending);

	if (!g->known_bits)
		return;
	if ((g->known_nr + n) * KNOWN_BITS_PER_ID > g->known_bits) {
		free(g->known);
		g->known = NULL;
		g->known_bits = 0;
		return;
	}
	for (size_t i = 0; i < n; i++)
		known_add(g, packw_oid(g->pending, i));
}

/* Hash an object and append it to the pending pack unless the store has
 * it: no refresh of the pack list on a miss, no search of the packs for
 * an id never seen (known ids). */
static int write_object(struct sgit *g, const void *data, size_t len,
			git_object_t type, struct sgit_oid *out,
			struct error *err)
{
	git_oid id;

	if (git_odb_hash(&id, data, len, type))
		return fail(err, "cannot hash an object");
	from_goid(&id, out);
	if (packw_has(g->pending, id.id) ||
	    (known_maybe(g, id.id) &&
	     git_odb_exists_ext(g->odb, &id, GIT_ODB_LOOKUP_NO_REFRESH)))
		return 0;
	if (packw_add(g->pending, id.id, (int)type, data, len, err))
		return -1;
	return note_pending(g, len, err);
}

int sgit_write_blob(struct sgit *g, const void *data, size_t len,
		    struct sgit_oid *out, struct error *err)
{
	return write_object(g, data, len, GIT_OBJECT_BLOB, out, err);
}

/* Git's order of tree entries: by name, a folder's name as if it ended
 * in '/'. */
static int cmp_entry(const void *a, const void *b)
{
	const struct sgit_entry *x = *(const struct sgit_entry *const *)a;
	const struct sgit_entry *y = *(const struct sgit_entry *const *)b;
	size_t lx = strlen(x->name), ly = strlen(y->name);
	size_t n = lx < ly ? lx : ly;
	int c = memcmp(x->name, y->name, n);
	unsigned char cx, cy;

	if (c)
		return c;
	cx = lx > n ? (unsigned char)x->name[n]
		    : (x->mode == SGIT_MODE_TREE ? '/' : 0);
	cy = ly > n ? (unsigned char)y->name[n]
		    : (y->mode == SGIT_MODE_TREE ? '/' : 0);
	return cx - cy;
}

/* The names git (and libgit2's tree builder) refuse in a tree. */
static int bad_name(const char *name)
{
	return !*name || !strcmp(name, ".") || !strcmp(name, "..") ||
	       !strcasecmp(name, ".git") || strchr(name, '/');
}

/* Trees are serialized here rather than by libgit2's tree builder, whose
 * write goes through the object database (a file system "freshen" call
 * and a formatted error per new tree): a datums stage writes one tree
 * per datum. */
int sgit_write_tree(struct sgit *g, const struct sgit_entry *entries, size_t nr,
		    struct sgit_oid *out, struct error *err)
{
	const struct sgit_entry **v = xcalloc(nr + 1, sizeof(*v));
	struct strbuf sb = STRBUF_INIT;
	int ret = -1;

	for (size_t i = 0; i < nr; i++) {
		if (bad_name(entries[i].name)) {
			error_set(err, EXIT_ENV, "cannot add '%s' to a tree",
				  entries[i].name);
			goto out;
		}
		v[i] = &entries[i];
	}
	if (nr > 1)
		qsort(v, nr, sizeof(*v), cmp_entry);
	for (size_t i = 0; i < nr; i++) {
		char mode[12], *m = mode + sizeof(mode);

		/* octal by hand: a run record's shards are 100,000 entries */
		*--m = ' ';
		for (unsigned o = v[i]->mode; o || m == mode + 11; o >>= 3)
			*--m = (char)('0' + (o & 7));
		strbuf_add(&sb, m, (size_t)(mode + sizeof(mode) - m));
		strbuf_add(&sb, v[i]->name, strlen(v[i]->name) + 1);
		strbuf_add(&sb, v[i]->oid.id, SGIT_RAWSZ);
	}
	ret = write_object(g, sb.buf, sb.len, GIT_OBJECT_TREE, out, err);
out:
	strbuf_release(&sb);
	free(v);
	return ret;
}

/* Whether the store has id: pending, or in its packs or loose. */
static int has_object(struct sgit *g, const struct sgit_oid *id)
{
	return packw_has(g->pending, id->id) ||
	       git_odb_exists(g->odb, goid(id));
}

/* " <name> <<email>> <time> <+hhmm>\n", as git and libgit2 write it. */
static void add_signature(struct strbuf *sb, const git_signature *sig)
{
	int off = sig->when.offset;
	char sign = off < 0 || sig->when.sign == '-' ? '-' : '+';

	if (off < 0)
		off = -off;
	strbuf_addf(sb, " %s <%s> %lld %c%02d%02d\n", sig->name, sig->email,
		    (long long)sig->when.time, sign, off / 60, off % 60);
}

/* Serialized here and written as a tree is (write_object): through
 * libgit2's commit API, each commit's write searched every pack for its
 * id first (a "freshen"), past the filter of known ids: 100,000 misses
 * in a full run, the indexes resident whole again. The tree and parents
 * must exist, as libgit2's strict object creation checked. */
int sgit_write_commit(struct sgit *g, const struct sgit_oid *tree,
		      const struct sgit_oid *parents, size_t nparents,
		      const char *message, struct sgit_oid *out,
		      struct error *err)
{
	git_signature *sig = NULL;
	struct strbuf sb = STRBUF_INIT;
	char hex[SGIT_HEXSZ + 1];
	int ret = -1;

	if (!has_object(g, tree)) {
		sgit_oid_hex(tree, hex);
		error_set(
			err, EXIT_ENV,
			"cannot write a commit to '%s': its tree %s is missing",
			g->dir, hex);
		goto out;
	}
	sgit_oid_hex(tree, hex);
	strbuf_addf(&sb, "tree %s\n", hex);
	for (size_t i = 0; i < nparents; i++) {
		sgit_oid_hex(&parents[i], hex);
		if (!has_object(g, &parents[i])) {
			error_set(err, EXIT_ENV,
				  "cannot write a commit to '%s': its parent "
				  "%s is missing",
				  g->dir, hex);
			goto out;
		}
		strbuf_addf(&sb, "parent %s\n", hex);
	}
	if (git_signature_now(&sig, "pipe", "pipe@localhost")) {
		fail(err, "cannot make a signature");
		goto out;
	}
	strbuf_addstr(&sb, "author");
	add_signature(&sb, sig);
	strbuf_addstr(&sb, "committer");
	add_signature(&sb, sig);
	strbuf_addch(&sb, '\n');
	strbuf_addstr(&sb, message);
	ret = write_object(g, sb.buf, sb.len, GIT_OBJECT_COMMIT, out, err);
out:
	git_signature_free(sig);
	strbuf_release(&sb);
	return ret;
}

/* Copy the pending objects out of the pending pack as loose objects. */
static int write_loose(struct sgit *g, struct error *err)
{
	struct strbuf dir = STRBUF_INIT;
	int ret = -1;

	strbuf_addf(&dir, "%s/objects", g->dir);
	if (!g->loose &&
	    git_odb_backend_loose(&g->loose, dir.buf, LOOSE_LEVEL, 1, 0, 0)) {
		fail(err, "cannot open the objects of '%s'", g->dir);
		goto out;
	}
	for (size_t i = 0; i < packw_count(g->pending); i++) {
		const unsigned char *id = packw_oid(g->pending, i);
		void *data = NULL;
		size_t len = 0;
		int type, rc;

		rc = packw_read(g->pending, id, &type, &data, &len);
		if (!rc)
			rc = g->loose->write(g->loose, (const git_oid *)id,
					     data, len, (git_object_t)type);
		free(data);
		if (rc) {
			fail(err, "cannot write an object to '%s'", g->dir);
			goto out;
		}
	}
	ret = 0;
out:
	strbuf_release(&dir);
	return ret;
}

/* A pack builder lists every ref of its repository to put tagged objects
 * first (git_tag_foreach): in a store of 100,000 stage refs that costs
 * more than packing one stage's objects. Pack builders get this view of
 * the store instead: its objects and its config, a refdb without refs. */
static int no_refs_next(git_reference **ref, git_reference_iterator *it)
{
	(void)ref;
	(void)it;
	return GIT_ITEROVER;
}

static int no_refs_next_name(const char **name, git_reference_iterator *it)
{
	(void)name;
	(void)it;
	return GIT_ITEROVER;
}

static void no_refs_free(git_reference_iterator *it)
{
	free(it);
}

static int no_refs_iterator(git_reference_iterator **out, git_refdb_backend *be,
			    const char *glob)
{
	git_reference_iterator *it = xcalloc(1, sizeof(*it));

	(void)be;
	(void)glob;
	it->next = no_refs_next;
	it->next_name = no_refs_next_name;
	it->free = no_refs_free;
	*out = it;
	return 0;
}

static void no_refs_backend_free(git_refdb_backend *be)
{
	free(be);
}

/* The rest of what libgit2 requires of a refdb: no ref exists, none can
 * be written, no log is kept. */
static int no_refs_exists(int *exists, git_refdb_backend *be, const char *n)
{
	(void)be;
	(void)n;
	*exists = 0;
	return 0;
}

static int no_refs_lookup(git_reference **out, git_refdb_backend *be,
			  const char *n)
{
	(void)out;
	(void)be;
	(void)n;
	return GIT_ENOTFOUND;
}

static int no_refs_write(git_refdb_backend *be, const git_reference *ref,
			 int force, const git_signature *who, const char *msg,
			 const git_oid *old, const char *old_target)
{
	(void)be, (void)ref, (void)force, (void)who, (void)msg, (void)old;
	(void)old_target;
	return -1;
}

static int no_refs_rename(git_reference **out, git_refdb_backend *be,
			  const char *from, const char *to, int force,
			  const git_signature *who, const char *msg)
{
	(void)out, (void)be, (void)from, (void)to, (void)force, (void)who;
	(void)msg;
	return -1;
}

static int no_refs_del(git_refdb_backend *be, const char *n, const git_oid *old,
		       const char *old_target)
{
	(void)be, (void)n, (void)old, (void)old_target;
	return -1;
}

static int no_refs_log(git_refdb_backend *be, const char *n)
{
	(void)be, (void)n;
	return 0;
}

static int no_refs_log_read(git_reflog **out, git_refdb_backend *be,
			    const char *n)
{
	(void)out, (void)be, (void)n;
	return GIT_ENOTFOUND;
}

static int no_refs_log_write(git_refdb_backend *be, git_reflog *log)
{
	(void)be, (void)log;
	return -1;
}

static int no_refs_log_rename(git_refdb_backend *be, const char *from,
			      const char *to)
{
	(void)be, (void)from, (void)to;
	return -1;
}

static int no_refs_log_delete(git_refdb_backend *be, const char *n)
{
	(void)be, (void)n;
	return -1;
}

static git_refdb_backend *no_refs_backend(void)
{
	git_refdb_backend *be = xcalloc(1, sizeof(*be));

	if (git_refdb_init_backend(be, GIT_REFDB_BACKEND_VERSION)) {
		free(be);
		return NULL;
	}
	be->exists = no_refs_exists;
	be->lookup = no_refs_lookup;
	be->iterator = no_refs_iterator;
	be->write = no_refs_write;
	be->rename = no_refs_rename;
	be->del = no_refs_del;
	be->has_log = no_refs_log;
	be->ensure_log = no_refs_log;
	be->free = no_refs_backend_free;
	be->reflog_read = no_refs_log_read;
	be->reflog_write = no_refs_log_write;
	be->reflog_rename = no_refs_log_rename;
	be->reflog_delete = no_refs_log_delete;
	return be;
}

static int packer_repo(struct sgit *g, git_repository **out)
{
	git_refdb_backend *be = NULL;
	git_refdb *db = NULL;
	git_config *cfg = NULL;
	int rc;

	if (g->packer) {
		*out = g->packer;
		return 0;
	}
	rc = git_repository_wrap_odb(&g->packer, g->odb);
	if (!rc)
		rc = git_repository_config(&cfg, g->repo);
	if (!rc)
		rc = git_repository_set_config(g->packer, cfg);
	if (!rc)
		rc = git_refdb_new(&db, g->packer);
	if (!rc && !(be = no_refs_backend()))
		rc = -1;
	if (!rc && !(rc = git_refdb_set_backend(db, be)))
		be = NULL; /* the refdb's now */
	if (!rc)
		rc = git_repository_set_refdb(g->packer, db);
	free(be);
	git_refdb_free(db);
	git_config_free(cfg);
	if (rc) {
		git_repository_free(g->packer);
		g->packer = NULL;
		return -1;
	}
	*out = g->packer;
	return 0;
}

static int packbuilder_new(struct sgit *g, git_packbuilder **pb)
{
	git_repository *repo;

	return packer_repo(g, &repo) ? -1 : git_packbuilder_new(pb, repo);
}

static int merge_packs(struct sgit *g, struct error *err);

/* The pending pack finished: fsynced, indexed and named. */
static int write_pack(struct sgit *g, struct error *err)
{
	struct strbuf stem = STRBUF_INIT;
	int ret = packw_finish(g->pending, &stem, err);

	strbuf_release(&stem);
	return ret;
}

int sgit_flush(struct sgit *g, struct error *err)
{
	int ret = 0;

	if (!packw_count(g->pending))
		return 0;
	/* before the writer forgets them; a flush that fails leaves ids
	 * the packs lack: they are searched for, and written */
	known_flushed(g);
	if (packw_count(g->pending) <= LOOSE_MAX) {
		ret = write_loose(g, err);
	} else if (!(ret = write_pack(g, err))) {
		struct error merr = ERROR_INIT;

		/* The objects are safe; merging is housekeeping. */
		if (merge_packs(g, &merr))
			log_warn("%s", merr.msg.buf);
		error_release(&merr);
	}
	if (!ret) {
		sgit_discard(g);
		/* Know the new pack: lookups skip refreshing on a miss. */
		git_odb_refresh(g->odb);
	}
	return ret;
}

void sgit_discard(struct sgit *g)
{
	packw_reset(g->pending);
	g->pending_bytes = 0;
}

int sgit_ref_read(struct sgit *g, const char *name, struct sgit_oid *out,
		  struct error *err)
{
	git_oid id;
	int rc = git_reference_name_to_id(&id, g->repo, name);

	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc)
		return fail(err, "cannot read ref '%s'", name);
	from_goid(&id, out);
	return 1;
}

int sgit_ref_update(struct sgit *g, const char *name,
		    const struct sgit_oid *new_oid,
		    const struct sgit_oid *old_oid, struct error *err)
{
	git_reference *ref = NULL;
	int rc;

	if (old_oid)
		rc = git_reference_create_matching(&ref, g->repo, name,
						   goid(new_oid), 1,
						   goid(old_oid), NULL);
	else
		rc = git_reference_create(&ref, g->repo, name, goid(new_oid), 0,
					  NULL);
	git_reference_free(ref);
	if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS ||
	    (rc == GIT_ENOTFOUND && old_oid))
		return error_set(err, EXIT_ENV,
				 "ref '%s' moved while pipe was writing it; "
				 "is another pipe running?",
				 name);
	if (rc)
		return fail(err, "cannot update ref '%s'", name);
	return 0;
}

int sgit_ref_delete(struct sgit *g, const char *name, struct error *err)
{
	int rc = git_reference_remove(g->repo, name);

	if (rc && rc != GIT_ENOTFOUND)
		return fail(err, "cannot delete ref '%s'", name);
	return 0;
}

int sgit_ref_foreach(struct sgit *g, const char *glob, sgit_ref_fn fn,
		     void *data, struct error *err)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	int rc, ret = 0;

	if (git_reference_iterator_glob_new(&it, g->repo, glob))
		return fail(err, "cannot list refs '%s'", glob);
	while (!(rc = git_reference_next(&ref, it))) {
		const git_oid *t = git_reference_target(ref);
		struct sgit_oid oid;

		if (t) {
			from_goid(t, &oid);
			ret = fn(git_reference_name(ref), &oid, data);
		}
		git_reference_free(ref);
		if (ret)
			break;
	}
	if (!ret && rc != GIT_ITEROVER)
		ret = fail(err, "cannot list refs '%s'", glob);
	git_reference_iterator_free(it);
	return ret;
}

int sgit_ref_name_ok(const char *refname)
{
	struct error err = ERROR_INIT;
	int valid = 0;

	if (load_libgit2(&err)) {
		error_release(&err);
		return 0;
	}
	return !git_reference_name_is_valid(&valid, refname) && valid;
}

int sgit_read_commit(struct sgit *g, const struct sgit_oid *oid,
		     struct sgit_commit *out, struct error *err)
{
	git_commit *c = NULL;
	char hex[SGIT_HEXSZ + 1];

	memset(out, 0, sizeof(*out));
	if (git_commit_lookup(&c, g->repo, goid(oid))) {
		sgit_oid_hex(oid, hex);
		return fail(err, "cannot read commit '%s'", hex);
	}
	from_goid(git_commit_tree_id(c), &out->tree);
	out->nparents = git_commit_parentcount(c);
	out->parents = xcalloc(out->nparents + 1, sizeof(*out->parents));
	for (size_t i = 0; i < out->nparents; i++)
		from_goid(git_commit_parent_id(c, (unsigned)i),
			  &out->parents[i]);
	out->time = (long long)git_commit_time(c);
	out->message = xstrdup(git_commit_message_raw(c));
	git_commit_free(c);
	return 0;
}

void sgit_commit_release(struct sgit_commit *c)
{
	free(c->parents);
	free(c->message);
	memset(c, 0, sizeof(*c));
}

int sgit_read_blob(struct sgit *g, const struct sgit_oid *oid,
		   struct strbuf *out, struct error *err)
{
	git_blob *b = NULL;
	char hex[SGIT_HEXSZ + 1];

	if (git_blob_lookup(&b, g->repo, goid(oid))) {
		sgit_oid_hex(oid, hex);
		return fail(err, "cannot read blob '%s'", hex);
	}
	strbuf_add(out, git_blob_rawcontent(b), (size_t)git_blob_rawsize(b));
	git_blob_free(b);
	return 0;
}

int sgit_tree_lookup(struct sgit *g, const struct sgit_oid *tree,
		     const char *path, unsigned *mode, struct sgit_oid *oid,
		     struct error *err)
{
	git_tree *t = NULL;
	git_tree_entry *e = NULL;
	int rc, ret = -1;

	if (git_tree_lookup(&t, g->repo, goid(tree)))
		return fail(err, "cannot read a tree");
	rc = git_tree_entry_bypath(&e, t, path);
	if (rc == GIT_ENOTFOUND) {
		ret = 0;
	} else if (rc) {
		fail(err, "cannot look up '%s'", path);
	} else {
		*mode = (unsigned)git_tree_entry_filemode_raw(e);
		from_goid(git_tree_entry_id(e), oid);
		ret = 1;
	}
	git_tree_entry_free(e);
	git_tree_free(t);
	return ret;
}

struct walk_data {
	sgit_tree_fn fn;
	void *data;
	struct strbuf path;
	int stopped;
};

static int tree_cb(const char *root, const git_tree_entry *e, void *payload)
{
	struct walk_data *w = payload;
	struct sgit_oid oid;
	int rc;

	strbuf_reset(&w->path);
	strbuf_addstr(&w->path, root);
	strbuf_addstr(&w->path, git_tree_entry_name(e));
	from_goid(git_tree_entry_id(e), &oid);
	rc = w->fn(w->path.buf, (unsigned)git_tree_entry_filemode_raw(e), &oid,
		   w->data);
	if (rc < 0)
		w->stopped = 1;
	return rc;
}

int sgit_tree_walk(struct sgit *g, const struct sgit_oid *tree, sgit_tree_fn fn,
		   void *data, struct error *err)
{
	struct walk_data w = {fn, data, STRBUF_INIT, 0};
	git_tree *t = NULL;
	int rc;

	if (git_tree_lookup(&t, g->repo, goid(tree)))
		return fail(err, "cannot read a tree");
	rc = git_tree_walk(t, GIT_TREEWALK_PRE, tree_cb, &w);
	git_tree_free(t);
	strbuf_release(&w.path);
	if (w.stopped)
		return -1;
	if (rc)
		return fail(err, "cannot walk a tree");
	return 0;
}

int sgit_object_exists(struct sgit *g, const struct sgit_oid *oid)
{
	return git_odb_exists(g->odb, goid(oid));
}

int sgit_lookup_prefix(struct sgit *g, const char *hex, struct sgit_oid *out,
		       struct error *err)
{
	git_object *obj = NULL;
	git_oid id;
	size_t len = strlen(hex);
	int rc;

	if (len < GIT_OID_MINPREFIXLEN || len > SGIT_HEXSZ ||
	    git_oid_fromstrn(&id, hex, len))
		return 0;
	rc = git_object_lookup_prefix(&obj, g->repo, &id, len, GIT_OBJECT_ANY);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc == GIT_EAMBIGUOUS)
		return 2;
	if (rc)
		return fail(err, "cannot look up '%s'", hex);
	rc = git_object_type(obj) == GIT_OBJECT_COMMIT;
	if (rc)
		from_goid(git_object_id(obj), out);
	git_object_free(obj);
	return rc;
}

int sgit_walk(struct sgit *g, const struct sgit_oid *tips, size_t ntips,
	      const struct sgit_oid *hide, size_t nhide, int first_parent,
	      sgit_commit_fn fn, void *data, struct error *err)
{
	git_revwalk *w = NULL;
	git_oid id;
	int rc, ret = -1;

	if (git_revwalk_new(&w, g->repo) ||
	    git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME)) {
		fail(err, "cannot walk history");
		goto out;
	}
	if (first_parent)
		git_revwalk_simplify_first_parent(w);
	for (size_t i = 0; i < ntips; i++)
		if (git_revwalk_push(w, goid(&tips[i]))) {
			fail(err, "cannot walk history");
			goto out;
		}
	for (size_t i = 0; i < nhide; i++)
		if (git_revwalk_hide(w, goid(&hide[i]))) {
			fail(err, "cannot walk history");
			goto out;
		}
	ret = 0;
	while (!(rc = git_revwalk_next(&id, w))) {
		struct sgit_oid o;

		from_goid(&id, &o);
		if ((ret = fn(&o, data)))
			goto out;
	}
	if (rc != GIT_ITEROVER)
		ret = fail(err, "cannot walk history");
out:
	git_revwalk_free(w);
	return ret;
}

int sgit_descends(struct sgit *g, const struct sgit_oid *commit,
		  const struct sgit_oid *ancestor, struct error *err)
{
	int rc;

	if (sgit_oid_equal(commit, ancestor))
		return 1;
	rc = git_graph_descendant_of(g->repo, goid(commit), goid(ancestor));
	if (rc < 0)
		return fail(err, "cannot walk history");
	return rc;
}

/* A set of object ids: open addressing on the first 8 bytes. */
struct oidset {
	struct sgit_oid *slots;
	unsigned char *used;
	size_t nr, cap;
};

static size_t oidset_slot(const struct oidset *s, const struct sgit_oid *o)
{
	uint64_t h;
	size_t i;

	memcpy(&h, o->id, sizeof(h));
	i = (size_t)h & (s->cap - 1);
	while (s->used[i] && !sgit_oid_equal(&s->slots[i], o))
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int oidset_has(const struct oidset *s, const struct sgit_oid *o)
{
	return s->cap && s->used[oidset_slot(s, o)];
}

/* Returns 1 when o was added, 0 when it was there. */
static int oidset_add(struct oidset *s, const struct sgit_oid *o)
{
	size_t i;

	if ((s->nr + 1) * 2 > s->cap) {
		struct oidset n = {0};

		n.cap = s->cap ? s->cap * 2 : 1024;
		n.slots = xcalloc(n.cap, sizeof(*n.slots));
		n.used = xcalloc(n.cap, 1);
		for (size_t j = 0; j < s->cap; j++)
			if (s->used[j])
				oidset_add(&n, &s->slots[j]);
		free(s->slots);
		free(s->used);
		*s = n;
	}
	i = oidset_slot(s, o);
	if (s->used[i])
		return 0;
	s->used[i] = 1;
	s->slots[i] = *o;
	s->nr++;
	return 1;
}

static void oidset_clear(struct oidset *s)
{
	free(s->slots);
	free(s->used);
	memset(s, 0, sizeof(*s));
}

static int reach_cb(const char *path, unsigned mode, const struct sgit_oid *oid,
		    void *data)
{
	(void)path;
	if (mode == SGIT_MODE_GITLINK)
		return 0;
	/* A subtree seen before was walked before: skip it. */
	return !oidset_add(data, oid) && mode == SGIT_MODE_TREE;
}

static int reachable(struct sgit *g, const struct sgit_oid *keep, size_t n,
		     struct oidset *set, struct error *err)
{
	for (size_t i = 0; i < n; i++) {
		struct sgit_commit c;
		int rc = 0;

		if (!oidset_add(set, &keep[i]))
			continue;
		if (sgit_read_commit(g, &keep[i], &c, err))
			return -1;
		if (oidset_add(set, &c.tree))
			rc = sgit_tree_walk(g, &c.tree, reach_cb, set, err);
		sgit_commit_release(&c);
		if (rc)
			return -1;
	}
	return 0;
}

static unsigned long long file_size(const char *path)
{
	struct stat st;

	return lstat(path, &st) ? 0 : (unsigned long long)st.st_size;
}

static int is_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* Loose objects not in keep (all of them when all is set), and leftover
 * temp files: counted, and unlinked unless dry_run. */
static unsigned long long sweep_loose(struct sgit *g, const struct oidset *keep,
				      int all, int dry_run, size_t *seen)
{
	unsigned long long freed = 0;
	struct strbuf sb = STRBUF_INIT;

	for (int i = 0; i < 256; i++) {
		DIR *d;
		struct dirent *de;
		size_t base;

		strbuf_reset(&sb);
		strbuf_addf(&sb, "%s/objects/%02x", g->dir, i);
		if (!(d = opendir(sb.buf)))
			continue;
		strbuf_addch(&sb, '/');
		base = sb.len;
		while ((de = readdir(d))) {
			char hex[SGIT_HEXSZ + 1];
			struct sgit_oid o;
			int garbage = 1;

			if (de->d_name[0] == '.')
				continue;
			if (seen)
				(*seen)++;
			if (is_hex(de->d_name, SGIT_HEXSZ - 2)) {
				snprintf(hex, 3, "%02x", i);
				memcpy(hex + 2, de->d_name, SGIT_HEXSZ - 1);
				garbage = sgit_oid_parse(hex, &o) || all ||
					  !oidset_has(keep, &o);
			}
			if (!garbage)
				continue;
			strbuf_setlen(&sb, base);
			strbuf_addstr(&sb, de->d_name);
			freed += file_size(sb.buf);
			if (!dry_run)
				unlink(sb.buf);
		}
		closedir(d);
		if (!dry_run) {
			strbuf_setlen(&sb, base - 1);
			rmdir(sb.buf); /* only when empty */
		}
	}
	strbuf_release(&sb);
	return freed;
}

struct packed_scan {
	struct sgit *g;
	const struct oidset *keep;
	unsigned long long garbage; /* uncompressed bytes */
	struct strbuf path;
};

static int packed_cb(const git_oid *id, void *payload)
{
	struct packed_scan *p = payload;
	struct sgit_oid o;
	char hex[SGIT_HEXSZ + 1];
	size_t len;
	git_object_t type;

	from_goid(id, &o);
	if (oidset_has(p->keep, &o))
		return 0;
	sgit_oid_hex(&o, hex);
	strbuf_reset(&p->path);
	strbuf_addf(&p->path, "%s/objects/%.2s/%s", p->g->dir, hex, hex + 2);
	if (!access(p->path.buf, F_OK))
		return 0; /* loose: sweep_loose counts it */
	if (!git_odb_read_header(&len, &type, p->g->odb, id))
		p->garbage += len ? len : 1;
	return 0;
}

/* git_odb_foreach, skipping backends that cannot list (the mempack, whose
 * missing foreach git_odb_foreach would call). */
static int foreach_object(struct sgit *g, git_odb_foreach_cb cb, void *data)
{
	size_t n = git_odb_num_backends(g->odb);

	for (size_t i = 0; i < n; i++) {
		git_odb_backend *b;
		int rc;

		if (git_odb_get_backend(&b, g->odb, i))
			return -1;
		if (!b->foreach)
			continue;
		if ((rc = b->foreach (b, cb, data)))
			return rc;
	}
	return 0;
}

static unsigned long long dir_size(const char *path)
{
	unsigned long long total = 0;
	struct strbuf sb = STRBUF_INIT;
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		strbuf_reset(&sb);
		strbuf_addf(&sb, "%s/%s", path, de->d_name);
		if (lstat(sb.buf, &st))
			continue;
		if (S_ISDIR(st.st_mode))
			total += dir_size(sb.buf);
		else
			total += (unsigned long long)st.st_size;
	}
	closedir(d);
	strbuf_release(&sb);
	return total;
}

/* The files in objects/pack; *npacks counts the .pack ones. */
static void list_packs(struct sgit *g, struct strbuf *dir, char ***names,
		       size_t *nr, size_t *npacks)
{
	size_t alloc = 0;
	DIR *d;
	struct dirent *de;

	*names = NULL;
	*nr = *npacks = 0;
	strbuf_reset(dir);
	strbuf_addf(dir, "%s/objects/pack", g->dir);
	if (!(d = opendir(dir->buf)))
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if (n > 5 && !strcmp(de->d_name + n - 5, ".pack"))
			(*npacks)++;
		ALLOC_GROW(*names, *nr + 1, alloc);
		(*names)[(*nr)++] = xstrdup(de->d_name);
	}
	closedir(d);
}

static void free_names(char **names, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		free(names[i]);
	free(names);
}

/* Write one pack holding every kept object; returns its file name stem
 * ("pack-<hash>") or NULL with err set. */
static char *repack(struct sgit *g, const struct oidset *keep,
		    struct error *err)
{
	git_packbuilder *pb = NULL;
	struct strbuf dir = STRBUF_INIT;
	char *name = NULL;

	strbuf_addf(&dir, "%s/objects/pack", g->dir);
	if (packbuilder_new(g, &pb)) {
		fail(err, "cannot repack '%s'", g->dir);
		goto out;
	}
	for (size_t i = 0; i < keep->cap; i++)
		if (keep->used[i] &&
		    git_packbuilder_insert(pb, goid(&keep->slots[i]), NULL)) {
			fail(err, "cannot repack '%s'", g->dir);
			goto out;
		}
	if (git_packbuilder_write(pb, dir.buf, 0, NULL, NULL)) {
		fail(err, "cannot write a pack to '%s'", g->dir);
		goto out;
	}
	strbuf_reset(&dir);
	strbuf_addf(&dir, "pack-%s.", git_packbuilder_name(pb));
	name = strbuf_detach(&dir, NULL);
out:
	git_packbuilder_free(pb);
	strbuf_release(&dir);
	return name;
}

/* Replace every pack by one holding the kept objects (written and fsynced
 * first), then drop all loose objects: each kept one is in the new pack. */
static int rewrite_packs(struct sgit *g, const struct oidset *keep,
			 struct error *err)
{
	struct strbuf dir = STRBUF_INIT;
	char *stem = NULL, **names = NULL;
	size_t nr = 0, npacks;

	if (keep->nr && !(stem = repack(g, keep, err)))
		return -1;
	list_packs(g, &dir, &names, &nr, &npacks);
	for (size_t i = 0; i < nr; i++) {
		if (stem && !strncmp(names[i], stem, strlen(stem)))
			continue;
		strbuf_reset(&dir);
		strbuf_addf(&dir, "%s/objects/pack/%s", g->dir, names[i]);
		unlink(dir.buf);
	}
	sweep_loose(g, keep, 1, 0, NULL);
	git_odb_refresh(g->odb);
	free_names(names, nr);
	free(stem);
	strbuf_release(&dir);
	return 0;
}

/* The pack files a pipe killed while writing them left (tmp_pack_*,
 * tmp_idx_*; the workspace lock keeps out a pipe writing them now): their
 * size, removed unless dry_run. */
static unsigned long long sweep_tmp(struct sgit *g, char **names, size_t nr,
				    int dry_run)
{
	struct strbuf path = STRBUF_INIT;
	unsigned long long freed = 0;

	for (size_t i = 0; i < nr; i++) {
		if (strncmp(names[i], "tmp_", 4))
			continue;
		strbuf_reset(&path);
		strbuf_addf(&path, "%s/objects/pack/%s", g->dir, names[i]);
		freed += file_size(path.buf);
		if (!dry_run)
			unlink(path.buf);
	}
	strbuf_release(&path);
	return freed;
}

int sgit_gc(struct sgit *g, const struct sgit_oid *keep, size_t nkeep,
	    int dry_run, unsigned long long *freed, struct error *err)
{
	struct oidset set = {0};
	struct packed_scan scan = {g, &set, 0, STRBUF_INIT};
	struct strbuf objdir = STRBUF_INIT;
	char **names = NULL;
	size_t nr = 0, npacks = 0, nloose = 0;
	unsigned long long before, after, loose_garbage;
	int ret = -1;

	*freed = 0;
	if (sgit_flush(g, err) || reachable(g, keep, nkeep, &set, err))
		goto out;
	if (foreach_object(g, packed_cb, &scan)) {
		fail(err, "cannot list the objects of '%s'", g->dir);
		goto out;
	}
	list_packs(g, &objdir, &names, &nr, &npacks);
	strbuf_reset(&objdir);
	strbuf_addf(&objdir, "%s/objects", g->dir);
	loose_garbage = sweep_loose(g, &set, 0, 1, &nloose) +
			sweep_tmp(g, names, nr, dry_run);
	if (dry_run) {
		*freed = loose_garbage + scan.garbage;
		ret = 0;
		goto out;
	}
	before = dir_size(objdir.buf);
	/* Leave one pack of what is kept, unless that is what there is. */
	if ((scan.garbage || npacks != 1 || nloose) &&
	    rewrite_packs(g, &set, err))
		goto out;
	after = dir_size(objdir.buf);
	*freed = before > after ? before - after : 0;
	ret = 0;
out:
	free_names(names, nr);
	strbuf_release(&scan.path);
	strbuf_release(&objdir);
	oidset_clear(&set);
	return ret;
}

/* ---- pack merging ------------------------------------------------------ */

struct pack_info {
	char *stem; /* "pack-<hash>" */
	unsigned long long size;
	unsigned long long objects; /* as its index's size says */
};

static int cmp_pack(const void *a, const void *b)
{
	const struct pack_info *x = a, *y = b;

	return x->size < y->size ? -1 : x->size > y->size;
}

/* With packs sorted small to large, how many of the smallest to merge so
 * that each pack left is at least twice the size of everything smaller (as
 * `git repack --geometric=2`): merged work stays O(log) per object. */
static size_t geometric_split(const struct pack_info *p, size_t n)
{
	unsigned long long merged = 0;
	size_t split = 0;

	for (size_t i = n - 1; i > 0; i--)
		if (p[i - 1].size * 2 > p[i].size) {
			split = i;
			break;
		}
	for (size_t i = 0; i < split; i++)
		merged += p[i].size;
	while (split < n && p[split].size < 2 * merged)
		merged += p[split++].size;
	return split < 2 ? 2 : split;
}

/* How many of the first split packs one merge takes: no more objects
 * than MERGE_MAX_OBJECTS, whose table a merge holds (32 bytes and a slot
 * each). A merge of nearly the whole store, 420,000 objects at 100,000
 * stages, was a full run's highest moment (+18 MB, and its peak moved by
 * 14 MB with when it fell). Packs past that many are left as they are:
 * more than PACKS_MAX of them may stay, one per MERGE_MAX_OBJECTS of the
 * store; `pipe gc` packs everything into one. */
static size_t merge_budget(const struct pack_info *p, size_t split)
{
	unsigned long long objects = 0;
	size_t k = 0;

	while (k < split && objects + p[k].objects <= MERGE_MAX_OBJECTS)
		objects += p[k++].objects;
	return k;
}

/* Write one pack of the objects in packs p[0..n); returns its stem. */
static char *merge_into_one(struct sgit *g, const struct pack_info *p, size_t n,
			    struct error *err)
{
	char **stems = xcalloc(n + 1, sizeof(*stems));
	struct strbuf dir = STRBUF_INIT, stem = STRBUF_INIT;
	char *ret = NULL;

	for (size_t i = 0; i < n; i++)
		stems[i] = p[i].stem;
	strbuf_addf(&dir, "%s/objects/pack", g->dir);
	if (!pack_merge(dir.buf, stems, n, &stem, err))
		ret = strbuf_detach(&stem, NULL);
	free(stems);
	strbuf_release(&dir);
	strbuf_release(&stem);
	return ret;
}

/* The .pack files of the store, with their sizes. */
static size_t pack_infos(struct sgit *g, struct pack_info **out)
{
	struct strbuf dir = STRBUF_INIT;
	char **names;
	size_t nr, npacks, n = 0, alloc = 0;

	*out = NULL;
	list_packs(g, &dir, &names, &nr, &npacks);
	for (size_t i = 0; i < nr; i++) {
		size_t len = strlen(names[i]);
		struct stat st;

		if (len < 6 || strcmp(names[i] + len - 5, ".pack"))
			continue;
		strbuf_reset(&dir);
		strbuf_addf(&dir, "%s/objects/pack/%s", g->dir, names[i]);
		if (stat(dir.buf, &st))
			continue;
		ALLOC_GROW(*out, n + 1, alloc);
		(*out)[n].stem = xstrndup(names[i], len - 5);
		(*out)[n].size = (unsigned long long)st.st_size;
		/* an index of version 2: 1,072 bytes and 28 an object, or
		 * more with large offsets */
		strbuf_setlen(&dir, dir.len - 5);
		strbuf_addstr(&dir, ".idx");
		(*out)[n++].objects =
			stat(dir.buf, &st) || st.st_size < 1072
				? 0
				: (unsigned long long)(st.st_size - 1072) / 28;
	}
	free_names(names, nr);
	strbuf_release(&dir);
	return n;
}

/* A new object database in place of the repository's, the pending
 * backend on top as before. libgit2 never forgets a pack: a refresh adds
 * the new ones, and the ones a merge removed stay open, their index
 * mapped whole once searched (a full run of 100,000 stages ended with 94
 * removed packs mapped, 26 MB resident). The old database, and its packs
 * with it, go once nothing holds it (the pack builders' repository is
 * made again when needed). */
static int reopen_odb(struct sgit *g, struct error *err)
{
	char *objects = xstrfmt("%s/objects", g->dir);
	git_odb *odb = NULL;
	git_odb_backend *be = NULL;
	int ret = -1;

	if (git_odb_open(&odb, objects) ||
	    !(be = pending_backend(g->pending)) ||
	    git_odb_add_backend(odb, be, PENDING_PRIORITY)) {
		if (be) /* not added */
			be->free(be);
		fail(err, "cannot open the objects of '%s'", g->dir);
		goto out;
	}
	if (git_repository_set_odb(g->repo, odb)) {
		fail(err, "cannot open the objects of '%s'", g->dir);
		goto out;
	}
	git_repository_free(g->packer);
	g->packer = NULL;
	git_odb_free(g->odb);
	g->odb = odb;
	odb = NULL;
	ret = 0;
out:
	git_odb_free(odb);
	free(objects);
	return ret;
}

/* Keep the number of packs small: past PACKS_MAX, merge the smallest
 * (written and fsynced before the old ones go; their objects stay
 * readable throughout). */
static int merge_packs(struct sgit *g, struct error *err)
{
	struct pack_info *p;
	size_t n = pack_infos(g, &p), split;
	char *stem = NULL;
	struct strbuf path = STRBUF_INIT;
	static const char *const exts[] = {".keep", ".pack", ".idx", ".rev"};
	int ret = 0;

	if (n <= PACKS_MAX)
		goto out;
	qsort(p, n, sizeof(*p), cmp_pack);
	split = merge_budget(p, geometric_split(p, n));
	if (split < 2)
		goto out;
	if (!(stem = merge_into_one(g, p, split, err))) {
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < split; i++) {
		if (!strcmp(p[i].stem, stem))
			continue;
		for (size_t e = ARRAY_SIZE(exts); e-- > 0;) {
			strbuf_reset(&path);
			strbuf_addf(&path, "%s/objects/pack/%s%s", g->dir,
				    p[i].stem, exts[e]);
			unlink(path.buf);
		}
	}
	ret = reopen_odb(g, err);
out:
	for (size_t i = 0; i < n; i++)
		free(p[i].stem);
	free(p);
	free(stem);
	strbuf_release(&path);
	return ret;
}

/* ---- remotes (pipe push / pull) ---------------------------------------- */

static int looks_like_url(const char *spec)
{
	/* scheme://..., an absolute or relative path, or scp-like host:path */
	return strstr(spec, "://") || spec[0] == '/' || spec[0] == '.' ||
	       spec[0] == '~' || (strchr(spec, ':') && !strchr(spec, '/')) ||
	       (strchr(spec, ':') && strchr(spec, ':') < strchr(spec, '/'));
}

int sgit_remote_url(const char *spec, struct strbuf *url, struct error *err)
{
	git_repository *repo = NULL;
	git_remote *r = NULL;
	int found = 0;

	strbuf_reset(url);
	if (load_libgit2(err))
		return -1;
	if (looks_like_url(spec)) {
		strbuf_addstr(url, spec);
		return 0;
	}
	git_libgit2_init();
	if (!git_repository_open_ext(&repo, NULL, GIT_REPOSITORY_OPEN_FROM_ENV,
				     NULL) &&
	    !git_remote_lookup(&r, repo, spec) && git_remote_url(r)) {
		strbuf_addstr(url, git_remote_url(r));
		found = 1;
	}
	git_remote_free(r);
	git_repository_free(repo);
	git_libgit2_shutdown();
	if (found)
		return 0;
	if (access(spec, F_OK) == 0) { /* a folder named like a remote */
		strbuf_addstr(url, spec);
		return 0;
	}
	return error_set(err, EXIT_USAGE,
			 "unknown remote '%s': not a remote of the project's "
			 "git ('git remote -v' lists them), a path, a URL or "
			 "s3://bucket/prefix",
			 spec);
}

/* ssh: the agent's keys; https: what the URL or git's helpers give is
 * beyond libgit2's default, so only the agent is tried. */
static int cred_cb(git_credential **out, const char *url, const char *username,
		   unsigned int allowed, void *payload)
{
	int *tries = payload;

	(void)url;
	if (++*tries > 1 || !(allowed & GIT_CREDENTIAL_SSH_KEY))
		return GIT_PASSTHROUGH;
	return git_credential_ssh_key_from_agent(out,
						 username ? username : "git");
}

static void strarray_of(git_strarray *a, char *const *v)
{
	a->count = 0;
	while (v[a->count])
		a->count++;
	a->strings = (char **)v;
}

int sgit_fetch(struct sgit *g, const char *url, char *const *refspecs,
	       struct error *err)
{
	git_remote *r = NULL;
	git_fetch_options fo;
	git_strarray specs;
	int tries = 0, ret = 0;

	strarray_of(&specs, refspecs);
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks.credentials = cred_cb;
	fo.callbacks.payload = &tries;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.update_fetchhead = 0;
	fo.prune = GIT_FETCH_NO_PRUNE;
	if (git_remote_create_anonymous(&r, g->repo, url) ||
	    git_remote_fetch(r, &specs, &fo, NULL))
		ret = fail(err, "cannot fetch from '%s'", url);
	git_remote_free(r);
	git_odb_refresh(g->odb);
	return ret;
}

struct push_state {
	int tries;
	struct strbuf rejected;
};

static int push_ref_cb(const char *refname, const char *status, void *data)
{
	struct push_state *ps = data;

	if (status)
		strbuf_addf(&ps->rejected, "%s%s (%s)",
			    ps->rejected.len ? ", " : "", refname, status);
	return 0;
}

static int push_cred_cb(git_credential **out, const char *url,
			const char *username, unsigned int allowed,
			void *payload)
{
	return cred_cb(out, url, username, allowed,
		       &((struct push_state *)payload)->tries);
}

int sgit_push(struct sgit *g, const char *url, char *const *refspecs,
	      struct error *err)
{
	struct push_state ps = {0, STRBUF_INIT};
	git_remote *r = NULL;
	git_push_options po;
	git_strarray specs;
	int ret = 0;

	strarray_of(&specs, refspecs);
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	po.callbacks.credentials = push_cred_cb;
	po.callbacks.push_update_reference = push_ref_cb;
	po.callbacks.payload = &ps;
	if (git_remote_create_anonymous(&r, g->repo, url) ||
	    git_remote_push(r, &specs, &po))
		ret = fail(err, "cannot push to '%s'", url);
	else if (ps.rejected.len)
		ret = error_set(err, EXIT_ENV,
				"'%s' refused %s: push again (pipe fetches "
				"first and never overwrites a remote ref)",
				url, ps.rejected.buf);
	git_remote_free(r);
	strbuf_release(&ps.rejected);
	return ret;
}

int sgit_pack_build(struct sgit *g, const struct sgit_oid *tips, size_t ntips,
		    const struct sgit_oid *hide, size_t nhide,
		    struct strbuf *out, size_t *count, struct error *err)
{
	git_packbuilder *pb = NULL;
	git_revwalk *walk = NULL;
	git_buf buf = {0};
	int ret = -1;

	*count = 0;
	strbuf_reset(out);
	if (git_packbuilder_new(&pb, g->repo) ||
	    git_revwalk_new(&walk, g->repo))
		goto fail;
	for (size_t i = 0; i < ntips; i++)
		if (git_revwalk_push(walk, goid(&tips[i])))
			goto fail;
	for (size_t i = 0; i < nhide; i++)
		if (git_odb_exists(g->odb, goid(&hide[i])) &&
		    git_revwalk_hide(walk, goid(&hide[i])))
			goto fail;
	if (git_packbuilder_insert_walk(pb, walk))
		goto fail;
	*count = git_packbuilder_object_count(pb);
	if (*count) {
		if (git_packbuilder_write_buf(&buf, pb))
			goto fail;
		strbuf_add(out, buf.ptr, buf.size);
	}
	ret = 0;
	goto out;
fail:
	fail(err, "cannot pack objects of '%s'", g->dir);
out:
	git_buf_dispose(&buf);
	git_revwalk_free(walk);
	git_packbuilder_free(pb);
	return ret;
}

int sgit_pack_index(struct sgit *g, const char *path, struct error *err)
{
	struct strbuf dir = STRBUF_INIT;
	git_indexer *idx = NULL;
	git_indexer_progress stats;
	char buf[65536];
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = -1;

	memset(&stats, 0, sizeof(stats));
	strbuf_addf(&dir, "%s/objects/pack", g->dir);
	if (fd < 0) {
		error_set(err, EXIT_ENV, "cannot read '%s': %s", path,
			  strerror(errno));
		goto out;
	}
	if (git_indexer_new(&idx, dir.buf, 0, NULL, NULL))
		goto fail;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (git_indexer_append(idx, buf, (size_t)n, &stats))
			goto fail;
	if (n < 0 || git_indexer_commit(idx, &stats))
		goto fail;
	git_odb_refresh(g->odb);
	ret = 0;
	goto out;
fail:
	fail(err, "cannot index the pack '%s'", path);
out:
	if (fd >= 0)
		close(fd);
	git_indexer_free(idx);
	strbuf_release(&dir);
	return ret;
}

/* ---- the project's repository (run records, pipe reproduce) ------------- */

/* The current folder's path below repo's work tree ("" or "sub/") into
 * prefix; fails when repo has no work tree or the folder is outside it. */
static int workspace_prefix(git_repository *repo, struct strbuf *prefix,
			    struct error *err)
{
	const char *wd = git_repository_workdir(repo);
	char *here = NULL, *top = NULL;
	size_t len;
	int ret = -1;

	if (!wd || !(here = realpath(".", NULL)) ||
	    !(top = realpath(wd, NULL))) {
		error_set(err, EXIT_USAGE,
			  "the project's git repository has no work tree");
		goto out;
	}
	len = strlen(top);
	if (strncmp(here, top, len) || (here[len] && here[len] != '/')) {
		error_set(err, EXIT_USAGE,
			  "the workspace '%s' is not inside the work tree '%s'",
			  here, top);
		goto out;
	}
	strbuf_reset(prefix);
	if (here[len])
		strbuf_addf(prefix, "%s/", here + len + 1);
	ret = 0;
out:
	free(here);
	free(top);
	return ret;
}

/* The project's repository, found from the current folder as git finds it,
 * and the current folder's path below its work tree ("" or "sub/"). */
static int project_open(git_repository **repo, struct strbuf *prefix,
			struct error *err)
{
	*repo = NULL;
	if (git_repository_open_ext(repo, NULL, GIT_REPOSITORY_OPEN_FROM_ENV,
				    NULL))
		return error_set(err, EXIT_USAGE,
				 "not in a git repository: pipe reads the "
				 "project's history from git");
	if (workspace_prefix(*repo, prefix, err)) {
		git_repository_free(*repo);
		*repo = NULL;
		return -1;
	}
	return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The paths of both sides of each delta of list, sorted, into p. */
static void changed_paths(git_status_list *list, struct sgit_project *p)
{
	size_t alloc = 0, n = git_status_list_entrycount(list);

	for (size_t i = 0; i < n; i++) {
		const git_status_entry *e = git_status_byindex(list, i);
		const git_diff_delta *d[2] = {e->head_to_index,
					      e->index_to_workdir};

		for (int k = 0; k < 2; k++) {
			if (!d[k])
				continue;
			ALLOC_GROW(p->changed, p->changed_nr + 2, alloc);
			p->changed[p->changed_nr++] =
				xstrdup(d[k]->old_file.path);
			p->changed[p->changed_nr++] =
				xstrdup(d[k]->new_file.path);
		}
	}
	if (p->changed_nr)
		qsort(p->changed, p->changed_nr, sizeof(*p->changed), cmp_cstr);
}

/* One `git status --untracked-files=no` pass gives the dirty flag and the
 * changed paths both (two passes cost 0.5 s and 45 MB at 100,000 tracked
 * files). The index is read, never written: libgit2 writes it back only
 * when asked to (GIT_STATUS_OPT_UPDATE_INDEX). No rename detection: a
 * renamed file is its two paths. */
void sgit_project_read(struct sgit_project *p)
{
	git_status_options opt;
	git_repository *repo = NULL;
	git_status_list *list = NULL;
	git_oid oid;
	char hex[GIT_OID_HEXSZ + 1];
	struct error err = ERROR_INIT;

	memset(p, 0, sizeof(*p));
	strbuf_init(&p->head, 0);
	strbuf_init(&p->prefix, 0);
	if (load_libgit2(&err)) {
		error_release(&err);
		return;
	}
	git_libgit2_init();
	if (git_repository_open_ext(&repo, NULL, GIT_REPOSITORY_OPEN_FROM_ENV,
				    NULL) ||
	    git_reference_name_to_id(&oid, repo, "HEAD"))
		goto out; /* not a repository, or no commit yet */
	git_oid_tostr(hex, sizeof(hex), &oid);
	strbuf_addstr(&p->head, hex);
	p->in_tree = !workspace_prefix(repo, &p->prefix, &err);
	memset(&opt, 0, sizeof(opt));
	opt.version = GIT_STATUS_OPTIONS_VERSION;
	opt.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	opt.flags = 0; /* tracked files only */
	if (git_status_list_new(&list, repo, &opt)) {
		p->in_tree = 0; /* nothing known clean */
		goto out;
	}
	p->dirty = git_status_list_entrycount(list) > 0;
	changed_paths(list, p);
out:
	git_status_list_free(list);
	git_repository_free(repo);
	error_release(&err);
	git_libgit2_shutdown();
}

void sgit_project_release(struct sgit_project *p)
{
	for (size_t i = 0; i < p->changed_nr; i++)
		free(p->changed[i]);
	free(p->changed);
	strbuf_release(&p->head);
	strbuf_release(&p->prefix);
	memset(p, 0, sizeof(*p));
}

/* A folder of HEAD's tree, kept while the checker is open: libgit2 caches
 * no tree over 4 KB, and a folder of 100,000 inputs read and parsed again
 * for each took minutes. tree NULL: HEAD has no such folder. */
struct tracked_dir {
	char *name;
	git_tree *tree;
};

struct sgit_tracked {
	const struct sgit_project *p;
	git_repository *repo;
	git_tree *root;
	struct strmap dirs; /* folder -> struct tracked_dir */
	struct tracked_dir **all;
	size_t nr, alloc;
	struct tracked_dir *last; /* the folder t->dir names */
	struct strbuf full, dir;
};

int sgit_tracked_open(struct sgit_tracked **out, const struct sgit_project *p)
{
	struct sgit_tracked *t;
	git_commit *c = NULL;
	git_oid oid;
	struct error err = ERROR_INIT;

	*out = NULL;
	if (!p->head.len || !p->in_tree || load_libgit2(&err)) {
		error_release(&err);
		return 0;
	}
	git_libgit2_init();
	t = xcalloc(1, sizeof(*t));
	t->p = p;
	strmap_init(&t->dirs, 0);
	strbuf_init(&t->full, 0);
	strbuf_init(&t->dir, 0);
	/* HEAD as the status pass read it, not as it is now: the record
	 * names that commit */
	if (git_repository_open_ext(&t->repo, NULL,
				    GIT_REPOSITORY_OPEN_FROM_ENV, NULL) ||
	    git_oid_fromstrn(&oid, p->head.buf, p->head.len) ||
	    git_commit_lookup(&c, t->repo, &oid) ||
	    git_tree_lookup(&t->root, t->repo, git_commit_tree_id(c))) {
		git_commit_free(c);
		sgit_tracked_free(t);
		return 0;
	}
	git_commit_free(c);
	*out = t;
	return 1;
}

void sgit_tracked_free(struct sgit_tracked *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nr; i++) {
		git_tree_free(t->all[i]->tree);
		free(t->all[i]->name);
		free(t->all[i]);
	}
	free(t->all);
	strmap_release(&t->dirs);
	strbuf_release(&t->full);
	strbuf_release(&t->dir);
	git_tree_free(t->root);
	git_repository_free(t->repo);
	free(t);
	git_libgit2_shutdown();
}

/* HEAD's tree of folder path[0, len), or NULL when it has none. */
static git_tree *tracked_dir(struct sgit_tracked *t, const char *path,
			     size_t len)
{
	struct tracked_dir *d = t->last;
	git_tree_entry *te = NULL;

	/* the paths of a stage, and of stages in a row, share folders */
	if (d && t->dir.len == len && !memcmp(t->dir.buf, path, len))
		return d->tree;
	strbuf_reset(&t->dir);
	strbuf_add(&t->dir, path, len);
	d = t->last = strmap_get(&t->dirs, t->dir.buf);
	if (d)
		return d->tree;
	d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(t->dir.buf);
	if (!git_tree_entry_bypath(&te, t->root, d->name) &&
	    git_tree_entry_type(te) == GIT_OBJECT_TREE &&
	    git_tree_lookup(&d->tree, t->repo, git_tree_entry_id(te)))
		d->tree = NULL;
	git_tree_entry_free(te);
	ALLOC_GROW(t->all, t->nr + 1, t->alloc);
	t->all[t->nr++] = d;
	strmap_put(&t->dirs, d->name, d);
	t->last = d;
	return d->tree;
}

int sgit_tracked_clean(struct sgit_tracked *t, const char *path)
{
	const git_tree_entry *te = NULL;
	const char *key, *slash;
	git_tree *dir;

	strbuf_reset(&t->full);
	strbuf_add(&t->full, t->p->prefix.buf, t->p->prefix.len);
	strbuf_addstr(&t->full, path);
	key = t->full.buf;
	slash = strrchr(key, '/');
	dir = slash ? tracked_dir(t, key, (size_t)(slash - key)) : t->root;
	if (dir)
		te = git_tree_entry_byname(dir, slash ? slash + 1 : key);
	return te && git_tree_entry_type(te) == GIT_OBJECT_BLOB &&
	       !(t->p->changed_nr &&
		 bsearch(&key, t->p->changed, t->p->changed_nr,
			 sizeof(*t->p->changed), cmp_cstr));
}

int sgit_project_resolve(const char *rev, struct strbuf *commit,
			 struct strbuf *prefix, struct error *err)
{
	git_repository *repo = NULL;
	git_object *obj = NULL, *c = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int ret = -1;

	if (load_libgit2(err))
		return -1;
	git_libgit2_init();
	if (project_open(&repo, prefix, err))
		goto out;
	if (git_revparse_single(&obj, repo, rev) ||
	    git_object_peel(&c, obj, GIT_OBJECT_COMMIT)) {
		error_set(err, EXIT_USAGE,
			  "unknown revision '%s' in the project's git "
			  "repository",
			  rev);
		goto out;
	}
	git_oid_tostr(hex, sizeof(hex), git_object_id(c));
	strbuf_reset(commit);
	strbuf_addstr(commit, hex);
	ret = 0;
out:
	git_object_free(c);
	git_object_free(obj);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return ret;
}

struct exporter {
	git_repository *repo;
	const char *dir;
	struct strbuf path;
	struct error *err;
};

static int export_blob(struct exporter *x, const git_tree_entry *e,
		       git_filemode_t mode)
{
	git_blob *b = NULL;
	const char *data;
	size_t len;
	int fd, ret = -1;

	if (git_blob_lookup(&b, x->repo, git_tree_entry_id(e)))
		return fail(x->err, "cannot read '%s'", x->path.buf);
	data = git_blob_rawcontent(b);
	len = (size_t)git_blob_rawsize(b);
	if (mode == GIT_FILEMODE_LINK) {
		char *target = xstrndup(data, len);

		if (symlink(target, x->path.buf))
			error_set(x->err, EXIT_FAILED,
				  "cannot create link '%s': %s", x->path.buf,
				  strerror(errno));
		else
			ret = 0;
		free(target);
		goto out;
	}
	fd = open(x->path.buf,
		  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0777 : 0666);
	if (fd < 0 || fs_write_all(fd, data, len) || close(fd))
		error_set(x->err, EXIT_FAILED, "cannot write '%s': %s",
			  x->path.buf, strerror(errno));
	else
		ret = 0;
out:
	git_blob_free(b);
	return ret;
}

static int export_cb(const char *root, const git_tree_entry *e, void *payload)
{
	struct exporter *x = payload;
	const char *name = git_tree_entry_name(e);
	git_filemode_t mode = git_tree_entry_filemode_raw(e);

	if (!*name || !strcmp(name, ".") || !strcmp(name, "..") ||
	    !strcasecmp(name, ".git") || strchr(name, '/')) {
		error_set(x->err, EXIT_FAILED, "unsafe path '%s%s' in a tree",
			  root, name);
		return -1;
	}
	strbuf_reset(&x->path);
	strbuf_addf(&x->path, "%s/%s%s", x->dir, root, name);
	switch (mode) {
	case GIT_FILEMODE_TREE:
		if (mkdir(x->path.buf, 0777)) {
			error_set(x->err, EXIT_FAILED, "cannot create '%s': %s",
				  x->path.buf, strerror(errno));
			return -1;
		}
		return 0;
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
	case GIT_FILEMODE_LINK:
		return export_blob(x, e, mode) ? -1 : 0;
	default:
		return 0; /* submodules: not part of this repository */
	}
}

int sgit_project_export(const char *commit, const char *dir,
			const char *must_have, struct error *err)
{
	git_repository *repo = NULL;
	git_object *tree = NULL;
	git_tree_entry *te = NULL;
	struct strbuf prefix = STRBUF_INIT, spec = STRBUF_INIT;
	struct exporter x = {NULL, dir, STRBUF_INIT, err};
	int ret = -1;

	if (load_libgit2(err))
		return -1;
	git_libgit2_init();
	if (project_open(&repo, &prefix, err))
		goto out;
	strbuf_addf(&spec, "%s^{tree}", commit);
	if (git_revparse_single(&tree, repo, spec.buf)) {
		fail(err, "cannot read commit %.12s", commit);
		goto out;
	}
	strbuf_reset(&spec);
	strbuf_addf(&spec, "%s%s", prefix.buf, must_have);
	if (git_tree_entry_bypath(&te, (git_tree *)tree, spec.buf) ||
	    git_tree_entry_type(te) != GIT_OBJECT_BLOB) {
		error_set(err, EXIT_USAGE, "commit %.12s has no file '%s'",
			  commit, spec.buf);
		goto out;
	}
	x.repo = repo;
	if (!dir) {
		ret = 0;
		goto out;
	}
	if (git_tree_walk((git_tree *)tree, GIT_TREEWALK_PRE, export_cb, &x)) {
		if (!err->exit_code)
			fail(err, "cannot write commit %.12s into '%s'", commit,
			     dir);
		goto out;
	}
	ret = 0;
out:
	git_tree_entry_free(te);
	git_object_free(tree);
	git_repository_free(repo);
	git_libgit2_shutdown();
	strbuf_release(&prefix);
	strbuf_release(&spec);
	strbuf_release(&x.path);
	return ret;
}
