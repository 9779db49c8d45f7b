/* Shared by remote/git.c and remote/s3sync.c (see remote/sync.c). */
#ifndef REMOTE_SYNC_H
#define REMOTE_SYNC_H

#include "remote/remote.h"
#include "store/internal.h"

/* A ref that travels: ws (NULL for the workspace's own), the name below
 * refs/pipe/ ("runs", "stages/x", "datums/x"), its commit. */
struct sync_ref {
	char *ws;
	char *suffix;
	struct sgit_oid oid;
};
struct sync_refs {
	struct sync_ref *v;
	size_t nr, alloc;
};
void sync_refs_add(struct sync_refs *r, const char *ws, const char *suffix,
		   const struct sgit_oid *oid);
void sync_refs_release(struct sync_refs *r);

/* This workspace's id (REMOTE_WS_LEN hex + NUL), made on first use. */
int sync_ws_id(struct store *st, char *ws, struct error *err);
/* The refs a push sends (batched commits flushed first). */
int sync_local_refs(struct store *st, struct sync_refs *out, struct error *err);
/* CAS files named by commits reachable from tips and not from hide. */
int sync_cas_named(struct store *st, const struct oid_list *tips,
		   const struct oid_list *hide, struct store_file **out,
		   size_t *nr, struct error *err);
int sync_cas_have(struct store *st, const char *hex);
char *sync_cas_path(struct store *st, const char *hex);
/* Move the tracking ref of (ws, suffix) to oid, never losing a commit;
 * *moved 1 when a ref moved. */
int sync_track(struct store *st, const char *ws, const char *suffix,
	       const struct sgit_oid *oid, int *moved, struct error *err);
/* Take the downloaded file tmp into the CAS as hex (re-hashed; removed). */
int sync_cas_import(struct store *st, const char *tmp, const char *hex,
		    struct error *err);
char *sync_tmp_dir(struct store *st, struct error *err);

/* The transports (remote/gitremote.c, remote/s3sync.c). */
int remote_git_push(struct store *st, const char *url, struct remote_stats *s,
		    struct error *err);
int remote_git_pull(struct store *st, const char *url, struct remote_stats *s,
		    struct error *err);
int remote_s3_push(struct store *st, const char *url,
		   const struct remote_opts *o, struct remote_stats *s,
		   struct error *err);
int remote_s3_pull(struct store *st, const char *url,
		   const struct remote_opts *o, struct remote_stats *s,
		   struct error *err);

#endif
